//! Frame builders for tests, examples and in-memory benchmarks: well-formed Ethernet
//! frames with correct checksums, so that classification and lazy verification pass.
//! Headers are written with smoltcp's `Repr::emit` (checksums filled in by the default
//! [`ChecksumCapabilities`]).
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

use lrp_core::flow::TcpFlags;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, Icmpv4Packet, Icmpv4Repr, IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr,
    TcpControl, TcpPacket, TcpRepr, TcpSeqNumber, UdpPacket, UdpRepr, ETHERNET_HEADER_LEN,
    IPV4_HEADER_LEN, TCP_HEADER_LEN, UDP_HEADER_LEN,
};

/// Source MAC address of built frames (a locally administered address).
pub const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// Destination MAC address of built frames (a locally administered address).
pub const LOCAL_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

/// Ethernet + IPv4 (no options) + UDP header bytes: the payload's offset.
pub const UDP_V4_HEADER_LEN: usize = ETHERNET_HEADER_LEN + IPV4_HEADER_LEN + UDP_HEADER_LEN;
/// Ethernet + IPv4 (no options) + TCP (no options) header bytes: the payload's offset.
pub const TCP_V4_HEADER_LEN: usize = ETHERNET_HEADER_LEN + IPV4_HEADER_LEN + TCP_HEADER_LEN;

/// Size `buf` for an Ethernet/IPv4 frame (PEER_MAC → LOCAL_MAC; IPv4 without options, DF,
/// TTL 64) carrying `payload_len` bytes of `protocol`, and emit both headers. Returns the
/// IPv4 payload, to be filled by the caller. `payload_len` must fit in one IPv4 packet.
fn eth_ipv4(
    buf: &mut Vec<u8>,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: IpProtocol,
    payload_len: usize,
) -> &mut [u8] {
    buf.clear();
    buf.resize(ETHERNET_HEADER_LEN + IPV4_HEADER_LEN + payload_len, 0);
    let eth = EthernetRepr {
        src_addr: EthernetAddress(PEER_MAC),
        dst_addr: EthernetAddress(LOCAL_MAC),
        ethertype: EthernetProtocol::Ipv4,
    };
    eth.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
    let ip = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: protocol,
        payload_len,
        hop_limit: 64,
    };
    let mut packet = Ipv4Packet::new_unchecked(&mut buf[ETHERNET_HEADER_LEN..]);
    ip.emit(&mut packet, &ChecksumCapabilities::default());
    &mut buf[ETHERNET_HEADER_LEN + IPV4_HEADER_LEN..]
}

/// An Ethernet/IPv4/UDP frame from `src` to `dst` carrying `payload`.
pub fn udp_v4(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(UDP_V4_HEADER_LEN + payload.len());
    udp_v4_into(&mut buf, src, dst, payload);
    buf
}

/// [`udp_v4`] into `buf` (cleared first), to reuse one allocation.
pub fn udp_v4_into(buf: &mut Vec<u8>, src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) {
    let udp_len = UDP_HEADER_LEN + payload.len();
    let segment = eth_ipv4(buf, *src.ip(), *dst.ip(), IpProtocol::Udp, udp_len);
    let udp = UdpRepr {
        src_port: src.port(),
        dst_port: dst.port(),
    };
    udp.emit(
        &mut UdpPacket::new_unchecked(segment),
        &IpAddress::Ipv4(*src.ip()),
        &IpAddress::Ipv4(*dst.ip()),
        payload.len(),
        |buf| buf.copy_from_slice(payload),
        &ChecksumCapabilities::default(),
    );
}

/// An Ethernet/IPv4/TCP frame from `src` to `dst` with `flags` (see
/// [`TcpFlags`]), sequence number 1, acknowledgment number 1
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
    let tcp_len = TCP_HEADER_LEN + payload.len();
    let segment = eth_ipv4(buf, *src.ip(), *dst.ip(), IpProtocol::Tcp, tcp_len);
    // smoltcp's TcpRepr carries ACK (as an acknowledgment number) and one control flag;
    // other combinations are written through the view below.
    let (control, exact) = match flags & !TcpFlags::ACK {
        0 => (TcpControl::None, true),
        TcpFlags::SYN => (TcpControl::Syn, true),
        TcpFlags::FIN => (TcpControl::Fin, true),
        TcpFlags::RST => (TcpControl::Rst, true),
        TcpFlags::PSH => (TcpControl::Psh, true),
        _ => (TcpControl::None, false),
    };
    let tcp = TcpRepr {
        src_port: src.port(),
        dst_port: dst.port(),
        control,
        seq_number: TcpSeqNumber(1),
        ack_number: (flags & TcpFlags::ACK != 0).then_some(TcpSeqNumber(1)),
        window_len: 0xffff,
        window_scale: None,
        max_seg_size: None,
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        payload,
    };
    let (src, dst) = (IpAddress::Ipv4(*src.ip()), IpAddress::Ipv4(*dst.ip()));
    let mut packet = TcpPacket::new_unchecked(segment);
    tcp.emit(&mut packet, &src, &dst, &ChecksumCapabilities::default());
    if !exact {
        packet.clear_flags();
        packet.set_fin(flags & TcpFlags::FIN != 0);
        packet.set_syn(flags & TcpFlags::SYN != 0);
        packet.set_rst(flags & TcpFlags::RST != 0);
        packet.set_psh(flags & TcpFlags::PSH != 0);
        packet.set_ack(flags & TcpFlags::ACK != 0);
        packet.set_urg(flags & TcpFlags::URG != 0);
        packet.set_ece(flags & 0x40 != 0);
        packet.set_cwr(flags & 0x80 != 0);
        packet.fill_checksum(&src, &dst);
    }
}

/// An ARP request (Ethernet/IPv4) from `sender` asking for `target`, broadcast.
pub fn arp_request(sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let arp = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: EthernetAddress(PEER_MAC),
        source_protocol_addr: sender,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: target,
    };
    let eth = EthernetRepr {
        src_addr: EthernetAddress(PEER_MAC),
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EthernetProtocol::Arp,
    };
    let mut buf = vec![0u8; eth.buffer_len() + arp.buffer_len()];
    let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.emit(&mut frame);
    arp.emit(&mut ArpPacket::new_unchecked(frame.payload_mut()));
    buf
}

/// An ICMPv4 echo request from `src` to `dst`.
pub fn icmp_echo_v4(src: Ipv4Addr, dst: Ipv4Addr, ident: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let icmp = Icmpv4Repr::EchoRequest {
        ident,
        seq_no: seq,
        data: payload,
    };
    let mut buf = Vec::new();
    let message = eth_ipv4(&mut buf, src, dst, IpProtocol::Icmp, icmp.buffer_len());
    icmp.emit(
        &mut Icmpv4Packet::new_unchecked(message),
        &ChecksumCapabilities::default(),
    );
    buf
}

/// Turn a received Ethernet/IPv4 UDP or TCP frame into its reply, in place: swap the MAC
/// addresses, the IPv4 addresses and the ports. The checksums stay valid (the sums are
/// commutative), so an echo server or a test responder needs no recomputation. Returns
/// `false` (and leaves the frame unchanged) if it is not an untagged IPv4 frame (as
/// smoltcp's `EthernetFrame` and `Ipv4Packet` check it) with a complete UDP or TCP port
/// pair.
pub fn swap_endpoints_v4(frame: &mut [u8]) -> bool {
    let Ok(mut eth) = EthernetFrame::new_checked(frame) else {
        return false;
    };
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return false;
    }
    let (src_mac, dst_mac) = (eth.src_addr(), eth.dst_addr());
    let Ok(mut ip) = Ipv4Packet::new_checked(eth.payload_mut()) else {
        return false;
    };
    if ip.version() != 4 || !matches!(ip.next_header(), IpProtocol::Udp | IpProtocol::Tcp) {
        return false;
    }
    // UDP and TCP both start with the source port and the destination port.
    let Some(ports) = ip.payload_mut().get_mut(..4) else {
        return false;
    };
    ports.rotate_left(2);
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    ip.set_src_addr(dst);
    ip.set_dst_addr(src);
    eth.set_src_addr(dst_mac);
    eth.set_dst_addr(src_mac);
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
        // An IPv4 total length beyond the frame: smoltcp's view refuses it.
        let mut truncated = udp_v4(sa("10.0.0.1:5000"), sa("10.0.0.2:53"), b"odd");
        truncated.pop();
        assert!(!swap_endpoints_v4(&mut truncated));
        let mut arp = arp_request(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST);
        assert!(!swap_endpoints_v4(&mut arp));
    }
}
