//! Frame builders for tests, examples and in-memory benchmarks: well-formed Ethernet
//! frames with correct checksums, so that classification and lazy verification pass.
//!
//! ```
//! use lrp_net::sim::build;
//! use lrp_core::flow::{classify, Classification};
//!
//! let f = build::udp_v4("10.0.0.1:5000".parse()?, "10.0.0.2:53".parse()?, b"query");
//! assert_eq!(f.len(), build::UDP_V4_HEADER_LEN + 5);
//! assert!(matches!(classify(&f), Classification::Flow { .. }));
//! # Ok::<(), std::net::AddrParseError>(())
//! ```

use std::net::{Ipv4Addr, SocketAddrV4};

use lrp_core::wire::checksum;

/// Source MAC address of built frames (a locally administered address).
pub const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// Destination MAC address of built frames (a locally administered address).
pub const LOCAL_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

/// Ethernet + IPv4 (no options) + UDP header bytes: the payload's offset.
pub const UDP_V4_HEADER_LEN: usize = 14 + 20 + 8;
/// Ethernet + IPv4 (no options) + TCP (no options) header bytes: the payload's offset.
pub const TCP_V4_HEADER_LEN: usize = 14 + 20 + 20;

const ETH_IPV4: [u8; 2] = [0x08, 0x00];
const ETH_ARP: [u8; 2] = [0x08, 0x06];

fn ethernet(buf: &mut Vec<u8>, ethertype: [u8; 2]) {
    buf.extend_from_slice(&LOCAL_MAC);
    buf.extend_from_slice(&PEER_MAC);
    buf.extend_from_slice(&ethertype);
}

/// Append an IPv4 header (no options, DF, TTL 64) for `payload_len` bytes of `proto`.
fn ipv4(buf: &mut Vec<u8>, src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload_len: usize) {
    let start = buf.len();
    let total = u16::try_from(20 + payload_len).unwrap_or(u16::MAX);
    buf.extend_from_slice(&[0x45, 0]);
    buf.extend_from_slice(&total.to_be_bytes());
    buf.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0]);
    buf.extend_from_slice(&src.octets());
    buf.extend_from_slice(&dst.octets());
    let sum = checksum::checksum(&buf[start..start + 20]);
    buf[start + 10..start + 12].copy_from_slice(&sum.to_be_bytes());
}

/// An Ethernet/IPv4/UDP frame from `src` to `dst` carrying `payload`.
pub fn udp_v4(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(UDP_V4_HEADER_LEN + payload.len());
    udp_v4_into(&mut buf, src, dst, payload);
    buf
}

/// [`udp_v4`] into `buf` (cleared first), to reuse one allocation.
pub fn udp_v4_into(buf: &mut Vec<u8>, src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) {
    buf.clear();
    ethernet(buf, ETH_IPV4);
    let udp_len = 8 + payload.len();
    ipv4(buf, *src.ip(), *dst.ip(), 17, udp_len);
    let l4 = buf.len();
    buf.extend_from_slice(&src.port().to_be_bytes());
    buf.extend_from_slice(&dst.port().to_be_bytes());
    buf.extend_from_slice(&u16::try_from(udp_len).unwrap_or(u16::MAX).to_be_bytes());
    buf.extend_from_slice(&[0, 0]);
    buf.extend_from_slice(payload);
    let sum = checksum::udp_finish(checksum::l4_v4(src.ip(), dst.ip(), 17, &buf[l4..]));
    buf[l4 + 6..l4 + 8].copy_from_slice(&sum.to_be_bytes());
}

/// An Ethernet/IPv4/TCP frame from `src` to `dst` with `flags` (see
/// [`TcpFlags`](lrp_core::flow::TcpFlags)), sequence number 1, acknowledgment number 1
/// if ACK is set, window 65535, carrying `payload`.
pub fn tcp_v4(src: SocketAddrV4, dst: SocketAddrV4, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(TCP_V4_HEADER_LEN + payload.len());
    tcp_v4_into(&mut buf, src, dst, flags, payload);
    buf
}

/// [`tcp_v4`] into `buf` (cleared first), to reuse one allocation.
pub fn tcp_v4_into(
    buf: &mut Vec<u8>,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    flags: u8,
    payload: &[u8],
) {
    buf.clear();
    ethernet(buf, ETH_IPV4);
    ipv4(buf, *src.ip(), *dst.ip(), 6, 20 + payload.len());
    let l4 = buf.len();
    let ack: u32 = if flags & lrp_core::flow::TcpFlags::ACK != 0 {
        1
    } else {
        0
    };
    buf.extend_from_slice(&src.port().to_be_bytes());
    buf.extend_from_slice(&dst.port().to_be_bytes());
    buf.extend_from_slice(&1u32.to_be_bytes());
    buf.extend_from_slice(&ack.to_be_bytes());
    buf.extend_from_slice(&[5 << 4, flags, 0xff, 0xff, 0, 0, 0, 0]);
    buf.extend_from_slice(payload);
    let sum = checksum::l4_v4(src.ip(), dst.ip(), 6, &buf[l4..]);
    buf[l4 + 16..l4 + 18].copy_from_slice(&sum.to_be_bytes());
}

/// An ARP request (Ethernet/IPv4) from `sender` asking for `target`, broadcast.
pub fn arp_request(sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut buf = Vec::with_capacity(42);
    buf.extend_from_slice(&[0xff; 6]);
    buf.extend_from_slice(&PEER_MAC);
    buf.extend_from_slice(&ETH_ARP);
    // htype 1 (Ethernet), ptype IPv4, hlen 6, plen 4, op 1 (request)
    buf.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    buf.extend_from_slice(&PEER_MAC);
    buf.extend_from_slice(&sender.octets());
    buf.extend_from_slice(&[0; 6]);
    buf.extend_from_slice(&target.octets());
    buf
}

/// An ICMPv4 echo request from `src` to `dst`.
pub fn icmp_echo_v4(src: Ipv4Addr, dst: Ipv4Addr, ident: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(14 + 20 + 8 + payload.len());
    ethernet(&mut buf, ETH_IPV4);
    ipv4(&mut buf, src, dst, 1, 8 + payload.len());
    let l4 = buf.len();
    buf.extend_from_slice(&[8, 0, 0, 0]);
    buf.extend_from_slice(&ident.to_be_bytes());
    buf.extend_from_slice(&seq.to_be_bytes());
    buf.extend_from_slice(payload);
    let sum = checksum::checksum(&buf[l4..]);
    buf[l4 + 2..l4 + 4].copy_from_slice(&sum.to_be_bytes());
    buf
}

/// Turn a received Ethernet/IPv4 UDP or TCP frame into its reply, in place: swap the MAC
/// addresses, the IPv4 addresses and the ports. The checksums stay valid (the sums are
/// commutative), so an echo server or a test responder needs no recomputation. Returns
/// `false` (and leaves the frame unchanged) if it is not an untagged IPv4 frame with a
/// complete UDP or TCP port pair.
pub fn swap_endpoints_v4(frame: &mut [u8]) -> bool {
    if frame.len() < 14 + 20 || frame[12..14] != ETH_IPV4 || frame[14] >> 4 != 4 {
        return false;
    }
    let ihl = usize::from(frame[14] & 0x0f) * 4;
    let l4 = 14 + ihl;
    if ihl < 20 || frame.len() < l4 + 4 || !matches!(frame[14 + 9], 6 | 17) {
        return false;
    }
    for i in 0..6 {
        frame.swap(i, 6 + i);
    }
    for i in 0..4 {
        frame.swap(14 + 12 + i, 14 + 16 + i);
    }
    for i in 0..2 {
        frame.swap(l4 + i, l4 + 2 + i);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use lrp_core::flow::{classify, Classification, FlowKey, Proto, TcpFlags};
    use lrp_core::wire::verify;

    fn sa(s: &str) -> SocketAddrV4 {
        s.parse().unwrap()
    }

    #[test]
    fn udp_frames_classify_and_verify() {
        let f = udp_v4(sa("10.0.0.1:5000"), sa("10.0.0.2:53"), b"hello");
        let class = classify(&f);
        let Classification::Flow { key, .. } = class else {
            panic!("{class:?}")
        };
        assert_eq!(
            key,
            FlowKey {
                proto: Proto::Udp,
                src: "10.0.0.1".parse().unwrap(),
                dst: "10.0.0.2".parse().unwrap(),
                sport: 5000,
                dport: 53
            }
        );
        assert_eq!(verify(&f, &class), Ok(()));
        assert_eq!(&f[UDP_V4_HEADER_LEN..], b"hello");
    }

    #[test]
    fn tcp_frames_classify_and_verify() {
        let f = tcp_v4(sa("10.0.0.1:4000"), sa("10.0.0.2:80"), TcpFlags::SYN, b"");
        let class = classify(&f);
        let Classification::Flow { key, flags, .. } = class else {
            panic!("{class:?}")
        };
        assert!(flags.is_syn_only());
        assert_eq!((key.proto, key.dport), (Proto::Tcp, 80));
        assert_eq!(verify(&f, &class), Ok(()));
        let g = tcp_v4(
            sa("10.0.0.1:4000"),
            sa("10.0.0.2:80"),
            TcpFlags::ACK,
            b"data",
        );
        assert_eq!(verify(&g, &classify(&g)), Ok(()));
    }

    #[test]
    fn arp_and_icmp_classify() {
        let target: Ipv4Addr = "10.0.0.2".parse().unwrap();
        let arp = arp_request("10.0.0.1".parse().unwrap(), target);
        assert_eq!(classify(&arp), Classification::Arp { target });
        let icmp = icmp_echo_v4("10.0.0.1".parse().unwrap(), target, 1, 2, b"ping");
        let class = classify(&icmp);
        assert_eq!(
            class,
            Classification::Icmp {
                dst: target.into(),
                icmp_type: 8
            }
        );
        assert_eq!(verify(&icmp, &class), Ok(()));
    }

    #[test]
    fn swap_builds_a_valid_reply() {
        let mut f = udp_v4(sa("10.0.0.1:5000"), sa("10.0.0.2:53"), b"odd");
        assert!(swap_endpoints_v4(&mut f));
        // Everything after the MAC addresses, checksums included, is the reverse frame.
        let reverse = udp_v4(sa("10.0.0.2:53"), sa("10.0.0.1:5000"), b"odd");
        assert_eq!(&f[12..], &reverse[12..]);
        assert_eq!(&f[0..6], &PEER_MAC);
        assert_eq!(&f[6..12], &LOCAL_MAC);
        assert_eq!(verify(&f, &classify(&f)), Ok(()));
        let mut short = [0u8; 20];
        assert!(!swap_endpoints_v4(&mut short));
        let mut arp = arp_request(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST);
        assert!(!swap_endpoints_v4(&mut arp));
    }
}
