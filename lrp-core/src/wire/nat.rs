//! In-place address and port rewriting with incremental checksum updates (NAT).
//!
//! Written here because smoltcp rewrites a header only by re-emitting it and recomputing
//! its checksums over the payload, which a forwarder on the hot path must not do.
//!
//! A director in NAT mode rewrites the destination of client→service frames (VIP:port →
//! real server) and the source of server→client frames, then transmits the same frame
//! buffer. These functions take the frame and the [`Offsets`] that
//! [`classify`](super::classify::classify) found, rewrite the field, and fix the IPv4
//! header checksum and the UDP/TCP checksum with RFC 1624 updates (see
//! [`checksum::Delta`]) — no pass over the payload, no allocation.
//!
//! Every bound is checked before the first byte is written: a call either rewrites
//! everything it should or returns an error and leaves the frame untouched.
//!
//! UDP: a zero checksum ("none", IPv4) stays zero; a result of zero is written as
//! `0xffff`. For a first fragment the transport checksum sits in this frame and is
//! updated as usual; for later fragments pass `None` as the transport protocol to
//! rewrite addresses in the IP header only. ICMPv6 checksums (which cover the IPv6
//! addresses) are not updated here; use [`checksum::Delta`] directly.

use std::net::{IpAddr, SocketAddr};

use smoltcp::wire::{IPV4_HEADER_LEN, IPV6_HEADER_LEN};

use super::{checksum, checksum::Delta};
use crate::flow::{Offsets, Proto};

/// Offsets of the fields rewritten here, from the start of their header.
mod field {
    pub(super) const IPV4_TTL: usize = 8;
    pub(super) const IPV4_CHECKSUM: usize = 10;
    pub(super) const IPV4_SRC_ADDR: usize = 12;
    pub(super) const IPV4_DST_ADDR: usize = 16;
    pub(super) const IPV6_HOP_LIMIT: usize = 7;
    pub(super) const IPV6_SRC_ADDR: usize = 8;
    pub(super) const IPV6_DST_ADDR: usize = 24;
    /// UDP and TCP both start with source port, destination port.
    pub(super) const SRC_PORT: usize = 0;
    pub(super) const DST_PORT: usize = 2;
    pub(super) const UDP_CHECKSUM: usize = 6;
    pub(super) const TCP_CHECKSUM: usize = 16;
}

/// Read a big-endian `u16` at `at`. Callers have checked `at + 2 <= buf.len()`.
#[inline(always)]
fn get_u16(buf: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([buf[at], buf[at + 1]])
}

/// Write a big-endian `u16` at `at`. Callers have checked `at + 2 <= buf.len()`.
#[inline(always)]
fn set_u16(buf: &mut [u8], at: usize, value: u16) {
    buf[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

/// Copy a fixed-size array out of `buf` at `at`. Callers have checked the length.
#[inline(always)]
fn get_array<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&buf[at..at + N]);
    out
}

/// Which end of the packet to rewrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The source address/port.
    Src,
    /// The destination address/port.
    Dst,
}

/// Why a rewrite was refused (the frame is left unchanged).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum RewriteError {
    /// The offsets point outside the frame, or a header does not fit in it.
    #[error("the offsets point outside the frame")]
    OutOfBounds,
    /// The new address is not of the frame's IP version (or the version is neither 4
    /// nor 6).
    #[error("the new address is not of the frame's IP version")]
    FamilyMismatch,
}

/// Where a rewrite lands.
struct Plan {
    v6: bool,
    l3: usize,
    /// Offset of the transport checksum field and whether it is UDP.
    l4_checksum: Option<(usize, bool)>,
}

fn plan(frame: &[u8], offsets: &Offsets, proto: Option<Proto>) -> Result<Plan, RewriteError> {
    let l3 = usize::from(offsets.l3);
    let v6 = match frame.get(l3).map(|b| b >> 4) {
        Some(4) if frame.len() >= l3 + IPV4_HEADER_LEN => false,
        Some(6) if frame.len() >= l3 + IPV6_HEADER_LEN => true,
        Some(4 | 6) | None => return Err(RewriteError::OutOfBounds),
        Some(_) => return Err(RewriteError::FamilyMismatch),
    };
    let l4_checksum = match proto {
        None => None,
        Some(p) => {
            let (at, is_udp) = match p {
                Proto::Udp => (usize::from(offsets.l4) + field::UDP_CHECKSUM, true),
                Proto::Tcp => (usize::from(offsets.l4) + field::TCP_CHECKSUM, false),
            };
            if frame.len() < at + 2 || usize::from(offsets.l4) < l3 {
                return Err(RewriteError::OutOfBounds);
            }
            Some((at, is_udp))
        }
    };
    Ok(Plan {
        v6,
        l3,
        l4_checksum,
    })
}

fn port_offset(offsets: &Offsets, side: Side) -> usize {
    usize::from(offsets.l4)
        + match side {
            Side::Src => field::SRC_PORT,
            Side::Dst => field::DST_PORT,
        }
}

fn addr_offset(plan: &Plan, side: Side) -> usize {
    plan.l3
        + match (plan.v6, side) {
            (false, Side::Src) => field::IPV4_SRC_ADDR,
            (false, Side::Dst) => field::IPV4_DST_ADDR,
            (true, Side::Src) => field::IPV6_SRC_ADDR,
            (true, Side::Dst) => field::IPV6_DST_ADDR,
        }
}

/// Write the address and return the old one with the checksum delta of the change.
/// `plan` guarantees the header is in the frame.
fn swap_addr(
    frame: &mut [u8],
    plan: &Plan,
    side: Side,
    new: IpAddr,
) -> Result<(IpAddr, Delta), RewriteError> {
    let at = addr_offset(plan, side);
    match (plan.v6, new) {
        (false, IpAddr::V4(new)) => {
            let old = std::net::Ipv4Addr::from(get_array::<4>(frame, at));
            frame[at..at + 4].copy_from_slice(&new.octets());
            Ok((IpAddr::V4(old), Delta::new().ipv4(old, new)))
        }
        (true, IpAddr::V6(new)) => {
            let old = std::net::Ipv6Addr::from(get_array::<16>(frame, at));
            frame[at..at + 16].copy_from_slice(&new.octets());
            Ok((IpAddr::V6(old), Delta::new().ipv6(&old, &new)))
        }
        _ => Err(RewriteError::FamilyMismatch),
    }
}

fn fix_ip_header(frame: &mut [u8], plan: &Plan, delta: Delta) {
    if !plan.v6 {
        let at = plan.l3 + field::IPV4_CHECKSUM;
        set_u16(frame, at, delta.apply(get_u16(frame, at)));
    }
}

fn fix_l4(frame: &mut [u8], plan: &Plan, delta: Delta) {
    if let Some((at, is_udp)) = plan.l4_checksum {
        let hc = get_u16(frame, at);
        set_u16(
            frame,
            at,
            if is_udp {
                delta.apply_udp(hc)
            } else {
                delta.apply(hc)
            },
        );
    }
}

/// Rewrite the source or destination IP address in place, fixing the IPv4 header
/// checksum and the checksum of `proto` (`None`: no transport checksum in this frame,
/// e.g. a later fragment). Returns the old address.
pub fn set_addr(
    frame: &mut [u8],
    offsets: &Offsets,
    proto: Option<Proto>,
    side: Side,
    new: IpAddr,
) -> Result<IpAddr, RewriteError> {
    let plan = plan(frame, offsets, proto)?;
    let (old, delta) = swap_addr(frame, &plan, side, new)?;
    fix_ip_header(frame, &plan, delta);
    fix_l4(frame, &plan, delta);
    Ok(old)
}

/// Rewrite the source or destination port in place, fixing the transport checksum.
/// Returns the old port.
pub fn set_port(
    frame: &mut [u8],
    offsets: &Offsets,
    proto: Proto,
    side: Side,
    new: u16,
) -> Result<u16, RewriteError> {
    let plan = plan(frame, offsets, Some(proto))?;
    let at = port_offset(offsets, side);
    if frame.len() < at + 2 {
        return Err(RewriteError::OutOfBounds);
    }
    let old = get_u16(frame, at);
    set_u16(frame, at, new);
    fix_l4(frame, &plan, Delta::new().u16(old, new));
    Ok(old)
}

/// Rewrite the source or destination address and port together (the usual NAT step),
/// with one checksum update each for the IPv4 header and the transport. Returns the old
/// address and port.
pub fn set_endpoint(
    frame: &mut [u8],
    offsets: &Offsets,
    proto: Proto,
    side: Side,
    new: SocketAddr,
) -> Result<SocketAddr, RewriteError> {
    let plan = plan(frame, offsets, Some(proto))?;
    let port_at = port_offset(offsets, side);
    if frame.len() < port_at + 2 {
        return Err(RewriteError::OutOfBounds);
    }
    let (old_addr, addr_delta) = swap_addr(frame, &plan, side, new.ip())?;
    let old_port = get_u16(frame, port_at);
    set_u16(frame, port_at, new.port());
    fix_ip_header(frame, &plan, addr_delta);
    fix_l4(frame, &plan, addr_delta.u16(old_port, new.port()));
    Ok(SocketAddr::new(old_addr, old_port))
}

/// Decrement the IPv4 TTL (fixing the header checksum) or the IPv6 hop limit, as a
/// router does when it forwards. Returns the new value; `0` means the packet must not
/// be forwarded (RFC 1812 §5.3.1). A TTL that is already 0 is left as it is.
pub fn decrement_ttl(frame: &mut [u8], offsets: &Offsets) -> Result<u8, RewriteError> {
    let plan = plan(frame, offsets, None)?;
    if plan.v6 {
        let at = plan.l3 + field::IPV6_HOP_LIMIT;
        let new = frame[at].saturating_sub(1);
        frame[at] = new;
        return Ok(new);
    }
    let at = plan.l3 + field::IPV4_TTL;
    let old_word = get_u16(frame, at);
    let [ttl, protocol] = old_word.to_be_bytes();
    let new = ttl.saturating_sub(1);
    frame[at] = new;
    let ck = plan.l3 + field::IPV4_CHECKSUM;
    let new_word = u16::from_be_bytes([new, protocol]);
    set_u16(
        frame,
        ck,
        checksum::update16(get_u16(frame, ck), old_word, new_word),
    );
    Ok(new)
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::flow::Classification;
    use crate::wire::classify::classify;
    use crate::wire::verify;

    // Ethernet + IPv4 + TCP SYN 192.168.1.10:40000 -> 192.168.1.20:80; checksums zero,
    // filled in by `fixed_syn`.
    static TCP_SYN: [u8; 54] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x45,
        0x00, 0x00, 0x28, 0x00, 0x00, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, 0xc0, 0xa8, 0x01, 0x0a,
        0xc0, 0xa8, 0x01, 0x14, 0x9c, 0x40, 0x00, 0x50, 0x12, 0x34, 0x56, 0x78, 0x00, 0x00, 0x00,
        0x00, 0x50, 0x02, 0xfa, 0xf0, 0x00, 0x00, 0x00, 0x00,
    ];

    fn fixed_syn() -> Vec<u8> {
        let mut f = TCP_SYN.to_vec();
        let ipc = checksum::checksum(&f[14..34]);
        f[24..26].copy_from_slice(&ipc.to_be_bytes());
        let (s, d) = (
            "192.168.1.10".parse().unwrap(),
            "192.168.1.20".parse().unwrap(),
        );
        let c = checksum::l4(&s, &d, 6, &f[34..]);
        f[50..52].copy_from_slice(&c.to_be_bytes());
        f
    }

    fn offsets(f: &[u8]) -> (Offsets, Proto) {
        match classify(f) {
            Classification::Flow { offsets, key, .. } => (offsets, key.proto),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn endpoint_rewrite_keeps_checksums_valid() {
        let mut f = fixed_syn();
        assert_eq!(verify(&f, &classify(&f)), Ok(()));
        let (offs, proto) = offsets(&f);
        let rs: SocketAddr = "10.0.0.7:8080".parse().unwrap();
        let old = set_endpoint(&mut f, &offs, proto, Side::Dst, rs).unwrap();
        assert_eq!(old, "192.168.1.20:80".parse().unwrap());
        let c = classify(&f);
        assert_eq!(verify(&f, &c), Ok(()));
        match c {
            Classification::Flow { key, .. } => {
                assert_eq!((key.dst, key.dport), (rs.ip(), 8080));
            }
            other => panic!("{other:?}"),
        }
        // And back: set_addr + set_port give the original bytes.
        set_addr(&mut f, &offs, Some(proto), Side::Dst, old.ip()).unwrap();
        set_port(&mut f, &offs, proto, Side::Dst, old.port()).unwrap();
        assert_eq!(f, fixed_syn());
    }

    #[test]
    fn refusals_leave_frame_unchanged() {
        let mut f = fixed_syn();
        let (offs, proto) = offsets(&f);
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(
            set_addr(&mut f, &offs, Some(proto), Side::Src, v6),
            Err(RewriteError::FamilyMismatch)
        );
        let far = Offsets {
            l3: 14,
            l4: 60,
            l3_len: 40,
        };
        assert_eq!(
            set_endpoint(&mut f, &far, proto, Side::Src, "1.2.3.4:5".parse().unwrap()),
            Err(RewriteError::OutOfBounds)
        );
        let outside = Offsets {
            l3: 100,
            l4: 120,
            l3_len: 40,
        };
        assert_eq!(
            set_port(&mut f, &outside, proto, Side::Src, 1),
            Err(RewriteError::OutOfBounds)
        );
        assert_eq!(f, fixed_syn());
    }

    #[test]
    fn ttl() {
        let mut f = fixed_syn();
        let (offs, _) = offsets(&f);
        assert_eq!(decrement_ttl(&mut f, &offs), Ok(63));
        assert_eq!(verify(&f, &classify(&f)), Ok(()));
        f[22] = 1;
        f[24..26].fill(0);
        let c = checksum::checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        assert_eq!(decrement_ttl(&mut f, &offs), Ok(0));
        assert_eq!(verify(&f, &classify(&f)), Ok(()));
        assert_eq!(decrement_ttl(&mut f, &offs), Ok(0));
        assert_eq!(verify(&f, &classify(&f)), Ok(()));
    }
}
