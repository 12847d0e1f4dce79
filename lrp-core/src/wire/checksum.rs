//! The Internet checksum: full computation (RFC 1071) and incremental update (RFC 1624).
//!
//! Written here because smoltcp has no incremental (RFC 1624) update, which the in-place
//! rewrites of [`nat`](super::nat) need; the full sums beside it (smoltcp's
//! `wire::checksum` has its own) share its zero convention, so the two agree bit for bit.
//!
//! The checksum of IPv4 headers, UDP, TCP and ICMP is the ones'-complement of the
//! ones'-complement sum of 16-bit big-endian words. Here a *sum* is the folded
//! ones'-complement sum (a `u16`, not complemented) and a *checksum* is its complement,
//! the value written into the header.
//!
//! Full computation:
//! * [`sum`] over a byte slice, [`add`] to combine sums, [`pseudo_header_v4`] and
//!   [`pseudo_header_v6`] for the UDP/TCP/ICMPv6 pseudo header;
//! * [`l4_v4`] and [`l4_v6`]: the checksum of a whole transport segment;
//! * a received header or segment verifies when the sum over it (checksum field
//!   included, plus the pseudo header where one applies) is `0xffff`.
//!
//! Incremental update, for rewriting a field in place (the NAT director): when a 16-bit
//! word `m` of the covered data changes to `m'`, the new checksum is
//! `HC' = ~(~HC + ~m + m')` (RFC 1624, eqn. 3). [`Delta`] accumulates `~m + m'` over any
//! number of changed words — a 16-bit port, a 32-bit IPv4 address, a 128-bit IPv6 address
//! — and applies them in one step; [`update16`], [`update32`], [`update_ipv4_addr`] and
//! [`update_ipv6_addr`] are one-field shorthands. Everything here is allocation-free
//! arithmetic on fixed-size values.
//!
//! # Zero
//!
//! In ones'-complement arithmetic `0x0000` and `0xffff` are both zero. A full computation
//! over data that is not all zeros never yields a sum of `0x0000`, so it never yields a
//! checksum of `0xffff`; [`Delta::apply`] keeps the same convention, so an incremental
//! update of a correct checksum equals a full recomputation bit for bit. UDP adds two rules, handled by
//! [`Delta::apply_udp`] and [`udp_finish`]: a computed checksum of `0` is sent as `0xffff`,
//! and a checksum field of `0` in UDP over IPv4 means "no checksum" and must stay `0` after
//! a rewrite.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Fold a 64-bit accumulator of 16-bit words into a 16-bit ones'-complement sum.
#[inline(always)]
pub const fn fold(mut acc: u64) -> u16 {
    // Two folds bring any u64 below 2^17, two more below 2^16.
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    acc = (acc & 0xffff) + (acc >> 16);
    acc = (acc & 0xffff) + (acc >> 16);
    acc = (acc & 0xffff) + (acc >> 16);
    acc as u16
}

/// Add `data` to an unfolded accumulator.
///
/// Big-endian 32-bit words are added whole: since `2^16 ≡ 1 (mod 0xffff)`, a 32-bit word
/// contributes the same as its two 16-bit halves, and the compiler vectorizes the loop.
#[inline]
fn accumulate(mut acc: u64, data: &[u8]) -> u64 {
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    match *words.remainder() {
        [a, b, c] => acc + u64::from(u16::from_be_bytes([a, b])) + (u64::from(c) << 8),
        [a, b] => acc + u64::from(u16::from_be_bytes([a, b])),
        [a] => acc + (u64::from(a) << 8),
        _ => acc,
    }
}

/// The ones'-complement sum of `data` (not complemented). An odd trailing byte is padded
/// with a zero byte, as RFC 1071 specifies.
///
/// Only the last chunk may have odd length when sums of several chunks are combined with
/// [`add`].
#[inline]
pub fn sum(data: &[u8]) -> u16 {
    fold(accumulate(0, data))
}

/// Ones'-complement addition of two sums.
#[inline(always)]
pub const fn add(a: u16, b: u16) -> u16 {
    fold(a as u64 + b as u64)
}

/// The sum of the IPv4 pseudo header of a UDP or TCP segment of `length` bytes.
#[inline]
pub fn pseudo_header_v4(src: &Ipv4Addr, dst: &Ipv4Addr, protocol: u8, length: u16) -> u16 {
    let acc = u64::from(src.to_bits())
        + u64::from(dst.to_bits())
        + u64::from(protocol)
        + u64::from(length);
    fold(acc)
}

/// The sum of the IPv6 pseudo header (RFC 8200 §8.1) of an upper-layer packet of
/// `length` bytes.
#[inline]
pub fn pseudo_header_v6(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: u8, length: u32) -> u16 {
    let acc = accumulate(0, &src.octets());
    let acc = accumulate(acc, &dst.octets());
    fold(acc + u64::from(length) + u64::from(next_header))
}

/// The pseudo-header sum for a pair of addresses of either family: IPv4 (RFC 768/793) or
/// IPv6 (RFC 8200 §8.1). A mixed pair, which no real packet has, is summed as IPv6 with
/// the IPv4 address mapped (`::ffff:a.b.c.d`).
#[inline]
pub fn pseudo_header(src: &IpAddr, dst: &IpAddr, protocol: u8, length: u32) -> u16 {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => fold(
            u64::from(s.to_bits())
                + u64::from(d.to_bits())
                + u64::from(protocol)
                + u64::from(length),
        ),
        (IpAddr::V6(s), IpAddr::V6(d)) => pseudo_header_v6(s, d, protocol, length),
        _ => pseudo_header_v6(&to_v6(src), &to_v6(dst), protocol, length),
    }
}

fn to_v6(a: &IpAddr) -> Ipv6Addr {
    match a {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => *a,
    }
}

/// The checksum to write into an upper-layer segment over either IP version (checksum
/// field inside `segment` zero). For UDP pass the result through [`udp_finish`].
#[inline]
pub fn l4(src: &IpAddr, dst: &IpAddr, protocol: u8, segment: &[u8]) -> u16 {
    let len = u32::try_from(segment.len()).unwrap_or(u32::MAX);
    !add(pseudo_header(src, dst, protocol, len), sum(segment))
}

/// Whether an upper-layer segment, checksum field included, verifies against the pseudo
/// header of `src`, `dst` (the sum of both is `0xffff`).
#[inline]
pub fn verify_l4(src: &IpAddr, dst: &IpAddr, protocol: u8, segment: &[u8]) -> bool {
    let len = u32::try_from(segment.len()).unwrap_or(u32::MAX);
    add(pseudo_header(src, dst, protocol, len), sum(segment)) == 0xffff
}

/// The checksum to write into a UDP or TCP segment over IPv4 (or any upper layer using
/// the IPv4 pseudo header). The checksum field inside `segment` must be zero.
///
/// For UDP pass the result through [`udp_finish`]. Segments longer than `u16::MAX` get a
/// meaningless pseudo-header length (they cannot be carried by IPv4).
#[inline]
pub fn l4_v4(src: &Ipv4Addr, dst: &Ipv4Addr, protocol: u8, segment: &[u8]) -> u16 {
    let len = u16::try_from(segment.len()).unwrap_or(u16::MAX);
    !add(pseudo_header_v4(src, dst, protocol, len), sum(segment))
}

/// The checksum to write into an upper-layer packet over IPv6 (UDP, TCP, ICMPv6). The
/// checksum field inside `segment` must be zero. For UDP pass the result through
/// [`udp_finish`].
#[inline]
pub fn l4_v6(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: u8, segment: &[u8]) -> u16 {
    let len = u32::try_from(segment.len()).unwrap_or(u32::MAX);
    !add(pseudo_header_v6(src, dst, next_header, len), sum(segment))
}

/// The checksum of data without pseudo header (IPv4 header, ICMPv4): the checksum field
/// inside `data` must be zero.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !sum(data)
}

/// UDP's transmission rule: a computed checksum of `0` is sent as `0xffff`, because `0`
/// means "no checksum".
#[inline(always)]
pub const fn udp_finish(checksum: u16) -> u16 {
    if checksum == 0 {
        0xffff
    } else {
        checksum
    }
}

/// An incremental checksum update (RFC 1624): the accumulated `~m + m'` of every changed
/// 16-bit word, applied to a checksum with [`Delta::apply`] or [`Delta::apply_udp`].
///
/// ```
/// use lrp_core::wire::checksum::{self, Delta};
/// use std::net::Ipv4Addr;
/// let (old, new) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(192, 168, 7, 9));
/// // The same delta fixes the IPv4 header checksum and the TCP checksum.
/// let d = Delta::new().ipv4(old, new).u16(80, 8080);
/// # let hc = 0x1234;
/// let new_hc = d.apply(hc);
/// # let _ = new_hc;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[must_use]
pub struct Delta {
    acc: u64,
}

impl Delta {
    /// No change.
    #[inline(always)]
    pub const fn new() -> Delta {
        Delta { acc: 0 }
    }

    /// A 16-bit word changes from `old` to `new`.
    #[inline(always)]
    pub const fn u16(self, old: u16, new: u16) -> Delta {
        Delta {
            acc: self.acc + (!old) as u64 + new as u64,
        }
    }

    /// A 32-bit field (two aligned words) changes from `old` to `new`.
    #[inline(always)]
    pub const fn u32(self, old: u32, new: u32) -> Delta {
        self.u16((old >> 16) as u16, (new >> 16) as u16)
            .u16(old as u16, new as u16)
    }

    /// An IPv4 address changes.
    #[inline(always)]
    pub const fn ipv4(self, old: Ipv4Addr, new: Ipv4Addr) -> Delta {
        self.u32(old.to_bits(), new.to_bits())
    }

    /// An IPv6 address (eight words) changes.
    #[inline(always)]
    pub const fn ipv6(self, old: &Ipv6Addr, new: &Ipv6Addr) -> Delta {
        let (o, n) = (old.to_bits(), new.to_bits());
        self.u32((o >> 96) as u32, (n >> 96) as u32)
            .u32((o >> 64) as u32, (n >> 64) as u32)
            .u32((o >> 32) as u32, (n >> 32) as u32)
            .u32(o as u32, n as u32)
    }

    /// The checksum after the changes, given the checksum `hc` before them
    /// (`HC' = ~(~HC + Σ(~m + m'))`).
    ///
    /// Equal, bit for bit, to a full recomputation when `hc` was correct: then `~hc` is
    /// nonzero, so the folded sum lies in `1..=0xffff`, as the full sum over data with a
    /// nonzero word does, and two such values that are congruent modulo `0xffff` are equal.
    #[inline(always)]
    pub const fn apply(self, hc: u16) -> u16 {
        !fold((!hc) as u64 + self.acc)
    }

    /// [`Delta::apply`] with UDP's rules: a checksum field of `0` ("no checksum", UDP over
    /// IPv4) stays `0`, and a computed `0` is sent as `0xffff`.
    #[inline(always)]
    pub const fn apply_udp(self, hc: u16) -> u16 {
        if hc == 0 {
            0
        } else {
            udp_finish(self.apply(hc))
        }
    }
}

/// The checksum after a 16-bit word of the covered data changed from `old` to `new`.
#[inline(always)]
pub const fn update16(hc: u16, old: u16, new: u16) -> u16 {
    Delta::new().u16(old, new).apply(hc)
}

/// The checksum after a 32-bit field (two aligned words) changed from `old` to `new`.
#[inline(always)]
pub const fn update32(hc: u16, old: u32, new: u32) -> u16 {
    Delta::new().u32(old, new).apply(hc)
}

/// The checksum after an IPv4 address in the covered data changed.
#[inline(always)]
pub const fn update_ipv4_addr(hc: u16, old: Ipv4Addr, new: Ipv4Addr) -> u16 {
    Delta::new().ipv4(old, new).apply(hc)
}

/// The checksum after an IPv6 address in the covered data changed.
#[inline(always)]
pub const fn update_ipv6_addr(hc: u16, old: &Ipv6Addr, new: &Ipv6Addr) -> u16 {
    Delta::new().ipv6(old, new).apply(hc)
}

#[cfg(test)]
mod test {
    use super::*;

    // RFC 1071 §3 example: words 0001 f203 f4f5 f6f7 sum to 0xddf2.
    #[test]
    fn rfc1071_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(sum(&data), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
        // Odd length: the last byte is the high byte of a padded word.
        assert_eq!(sum(&data[..7]), fold(0x0001 + 0xf203 + 0xf4f5 + 0xf600));
        assert_eq!(sum(&data[..5]), fold(0x0001 + 0xf203 + 0xf400));
        assert_eq!(sum(&data[..6]), fold(0x0001 + 0xf203 + 0xf4f5));
        assert_eq!(sum(&[]), 0);
    }

    // A real IPv4 header (from a captured frame) verifies, and recomputing gives its value.
    #[test]
    fn ipv4_header_checksum() {
        let mut hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(sum(&hdr), 0xffff);
        hdr[10] = 0;
        hdr[11] = 0;
        assert_eq!(checksum(&hdr), 0xb861);
    }

    #[test]
    fn fold_extremes() {
        assert_eq!(fold(0), 0);
        assert_eq!(fold(0xffff), 0xffff);
        assert_eq!(fold(0x1_0000), 1);
        assert_eq!(fold(u64::MAX), 0xffff);
        assert_eq!(add(0xffff, 1), 1);
    }

    #[test]
    fn rfc1624_example() {
        // RFC 1624 §4: HC = 0xdd2f, m = 0x5555 changes to m' = 0x3285, HC' = 0x0000.
        assert_eq!(update16(0xdd2f, 0x5555, 0x3285), 0x0000);
        assert_eq!(Delta::new().u16(0x5555, 0x3285).apply_udp(0xdd2f), 0xffff);
    }

    #[test]
    fn update_matches_recompute() {
        let old = Ipv4Addr::new(10, 0, 0, 1);
        let new = Ipv4Addr::new(172, 16, 254, 3);
        let mut hdr = [
            0x45, 0x00, 0x00, 0x54, 0x12, 0x34, 0x40, 0x00, 0x40, 0x01, 0x00, 0x00, 10, 0, 0, 1,
            10, 0, 0, 2,
        ];
        let hc = checksum(&hdr);
        hdr[12..16].copy_from_slice(&new.octets());
        assert_eq!(update_ipv4_addr(hc, old, new), checksum(&hdr));
        assert_eq!(update32(hc, old.to_bits(), new.to_bits()), checksum(&hdr));
        // TTL 64 -> 63 changes the TTL/protocol word.
        let hc = checksum(&hdr);
        hdr[8] = 63;
        assert_eq!(update16(hc, 0x4001, 0x3f01), checksum(&hdr));
    }

    #[test]
    fn udp_zero_rules() {
        let d = Delta::new().u16(1000, 2000);
        assert_eq!(d.apply_udp(0), 0, "no checksum stays no checksum");
        assert_eq!(udp_finish(0), 0xffff);
        assert_eq!(udp_finish(0x1234), 0x1234);
    }

    #[test]
    fn ipv6_update_matches_recompute() {
        let src = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);
        let dst = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x20);
        let new = Ipv6Addr::new(0xfd00, 0xffff, 1, 2, 3, 4, 5, 6);
        let seg = [
            0x04, 0x57, 0x08, 0xae, 0x00, 0x0b, 0x00, 0x00, b'e', b'x', b't',
        ];
        let hc = l4_v6(&src, &dst, 17, &seg);
        assert_eq!(
            update_ipv6_addr(hc, &dst, &new),
            l4_v6(&src, &new, 17, &seg)
        );
    }
}
