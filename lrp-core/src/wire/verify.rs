//! Lazy validation: the checksums that [`classify`](super::classify::classify) skips.
//!
//! Written here because it reuses the classifier's offsets instead of parsing the frame
//! again with smoltcp's views, and reports the classifier's [`Malformed`] reasons.

use std::net::IpAddr;

use super::checksum;
use super::classify::{layer3, Frag, IpLayer, Layer3};
use super::ipv6::walk_ext_headers;
use crate::flow::{Classification, FlowKey, Malformed, Offsets, Proto};

/// Verify the checksums of a classified frame: the lazy protocol-validation step, run by
/// the receiver (on its thread, charged to its endpoint) rather than on arrival.
///
/// `class` must be what [`classify`](super::classify::classify) returned for `frame`.
/// Checks, by class:
///
/// * `Flow`: the IPv4 header checksum, then the UDP or TCP checksum over the pseudo
///   header. A UDP checksum of 0 means "none" over IPv4 and fails over IPv6
///   (RFC 8200 §8.1). For a first fragment only the IP header is checked: the transport
///   checksum covers the reassembled datagram.
/// * `Icmp`: the IPv4 header checksum and the ICMPv4 checksum, or the ICMPv6 checksum
///   over the IPv6 pseudo header (not for a first fragment).
/// * `Fragment`, `OtherIp`: the IPv4 header checksum (IPv6 has none).
/// * `Arp`, `OtherEthertype`: nothing to check.
/// * `Malformed(reason)`: fails with `reason`.
///
/// Fails with [`Malformed::BadChecksum`]. Never panics, never allocates: if `class` does
/// not fit `frame` (offsets outside it), it fails with a length reason instead.
pub fn verify(frame: &[u8], class: &Classification) -> Result<(), Malformed> {
    match *class {
        Classification::Flow {
            ref key,
            ref offsets,
            ..
        } => verify_flow(frame, key, offsets),
        Classification::Icmp { .. } | Classification::Fragment | Classification::OtherIp(_) => {
            match layer3(frame)? {
                Layer3::Ip(ip) => {
                    verify_ip(frame, &ip, matches!(class, Classification::Icmp { .. }))
                }
                Layer3::Arp(_) | Layer3::Other(_) => Ok(()),
            }
        }
        Classification::Arp { .. } | Classification::OtherEthertype(_) => Ok(()),
        Classification::Malformed(reason) => Err(reason),
    }
}

#[inline]
fn ok_or_bad(good: bool) -> Result<(), Malformed> {
    if good {
        Ok(())
    } else {
        Err(Malformed::BadChecksum)
    }
}

/// Check the IPv4 header checksum of `packet` whose header is `header_len` bytes.
#[inline]
fn ipv4_header(packet: &[u8], header_len: usize) -> Result<(), Malformed> {
    let header = packet.get(..header_len).ok_or(Malformed::BadIpHeaderLen)?;
    ok_or_bad(checksum::sum(header) == 0xffff)
}

fn verify_flow(frame: &[u8], key: &FlowKey, offsets: &Offsets) -> Result<(), Malformed> {
    let l3 = usize::from(offsets.l3);
    let header_len = usize::from(offsets.l4)
        .checked_sub(l3)
        .ok_or(Malformed::BadIpHeaderLen)?;
    let packet = frame
        .get(l3..l3 + usize::from(offsets.l3_len))
        .ok_or(Malformed::BadIpTotalLen)?;
    let segment = packet.get(header_len..).ok_or(Malformed::TruncatedL4)?;
    let fragmented = match key.src {
        IpAddr::V4(_) => {
            ipv4_header(packet, header_len)?;
            let flags_offset = packet.get(6..8).ok_or(Malformed::TruncatedIp)?;
            flags_offset[0] & 0x3f != 0 || flags_offset[1] != 0
        }
        // Only a packet with extension headers can be a fragment.
        IpAddr::V6(_) if header_len > 40 => {
            let first = *packet.get(6).ok_or(Malformed::TruncatedIp)?;
            let ext = packet.get(40..).ok_or(Malformed::TruncatedIp)?;
            walk_ext_headers(first, ext)?.is_fragment()
        }
        IpAddr::V6(_) => false,
    };
    if fragmented {
        return Ok(());
    }
    match key.proto {
        Proto::Udp => {
            let field = segment.get(6..8).ok_or(Malformed::TruncatedL4)?;
            if field == [0, 0] {
                return ok_or_bad(key.src.is_ipv4());
            }
            ok_or_bad(checksum::verify_l4(&key.src, &key.dst, 17, segment))
        }
        Proto::Tcp => ok_or_bad(checksum::verify_l4(&key.src, &key.dst, 6, segment)),
    }
}

fn verify_ip(frame: &[u8], ip: &IpLayer, icmp: bool) -> Result<(), Malformed> {
    let packet = frame.get(ip.l3..ip.end).ok_or(Malformed::BadIpTotalLen)?;
    let segment = frame.get(ip.l4..ip.end).ok_or(Malformed::TruncatedL4)?;
    if !ip.v6 {
        ipv4_header(packet, ip.l4 - ip.l3)?;
    }
    if !icmp || ip.frag != Frag::None {
        return Ok(());
    }
    if ip.v6 {
        ok_or_bad(checksum::verify_l4(&ip.src, &ip.dst, 58, segment))
    } else {
        ok_or_bad(checksum::sum(segment) == 0xffff)
    }
}

#[cfg(test)]
mod test {
    use super::super::classify::classify;
    use super::*;

    // IPv4 UDP 192.168.1.10:5000 -> 192.168.1.20:6000 "hello", valid checksums.
    fn udp_frame() -> Vec<u8> {
        let mut f = vec![
            0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00,
            0x45, 0x00, 0x00, 0x21, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x01, 0x0a, 0xc0, 0xa8, 0x01, 0x14, 0x13, 0x88, 0x17, 0x70, 0x00, 0x0d, 0x00, 0x00,
            b'h', b'e', b'l', b'l', b'o',
        ];
        let c = checksum::checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        let (s, d) = (
            "192.168.1.10".parse().unwrap(),
            "192.168.1.20".parse().unwrap(),
        );
        let c = checksum::udp_finish(checksum::l4(&s, &d, 17, &f[34..]));
        f[40..42].copy_from_slice(&c.to_be_bytes());
        f
    }

    #[test]
    fn good_and_bad() {
        let f = udp_frame();
        let c = classify(&f);
        assert_eq!(verify(&f, &c), Ok(()));
        for at in [24, 30, 36, 40, 44] {
            let mut bad = f.clone();
            bad[at] ^= 0x01;
            let c = classify(&bad);
            assert_eq!(verify(&bad, &c), Err(Malformed::BadChecksum), "byte {at}");
        }
        let mut zero = f.clone();
        zero[40..42].fill(0);
        assert_eq!(verify(&zero, &classify(&zero)), Ok(()));
    }

    #[test]
    fn inconsistent_class_does_not_panic() {
        let f = udp_frame();
        let c = classify(&f);
        assert!(verify(&f[..20], &c).is_err());
        let Classification::Flow { key, flags, .. } = c else {
            panic!()
        };
        let wild = Classification::Flow {
            key,
            flags,
            offsets: Offsets {
                l3: 60000,
                l4: 10,
                l3_len: 65535,
            },
        };
        assert!(verify(&f, &wild).is_err());
        assert_eq!(
            verify(&f, &Classification::Malformed(Malformed::BadArp)),
            Err(Malformed::BadArp)
        );
    }
}
