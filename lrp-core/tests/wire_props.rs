//! Property tests for `lrp_core::wire`:
//! - an incremental checksum update equals a full recomputation, for random data and for
//!   random NAT rewrites of random IPv4/IPv6 UDP/TCP frames (UDP zero checksum included),
//!   the frames built from scratch with smoltcp's views and `Repr::emit`;
//! - `parse(emit(x)) == x` for lrp's own formats (the VLAN tag, ARP via `arp::parse`) and
//!   the IPv6 extension-header walk finds the chain it was given;
//! - `classify` and `verify` never panic, on arbitrary bytes and on mutated valid frames,
//!   and a `Flow`'s offsets always lie inside the frame.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use lrp_core::flow::{Classification, FlowKey, Proto, TcpFlags};
use lrp_core::wire::checksum::{self, Delta};
use lrp_core::wire::ipv6::{walk_ext_headers, ExtChain};
use lrp_core::wire::nat::{self, Side};
use lrp_core::wire::{arp, classify::classify, icmp, verify, vlan};
use lrp_core::wire::{EthernetAddress, EthernetProtocol, IpProtocol};
use proptest::collection::vec;
use proptest::prelude::*;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    EthernetFrame, EthernetRepr, IpAddress, Ipv4Packet, Ipv4Repr, Ipv6ExtHeader,
    Ipv6FragmentHeader, Ipv6FragmentRepr, Ipv6Packet, Ipv6Repr, TcpPacket, TcpSeqNumber, UdpPacket,
    UdpRepr, ETHERNET_HEADER_LEN, IPV4_HEADER_LEN, IPV6_HEADER_LEN, TCP_HEADER_LEN, UDP_HEADER_LEN,
};

/// An 802.1Q tag's priority, drop eligibility and VLAN id.
type Tag = (u8, bool, u16);

/// Everything needed to build one UDP or TCP frame from scratch.
#[derive(Debug, Clone)]
struct Spec {
    vlan: Option<Tag>,
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
    tos: u8,
    ident: u16,
    dont_frag: bool,
    flow_label: u32,
    ip_options: Vec<u8>,
    proto: Proto,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    tcp_options: Vec<u8>,
    payload: Vec<u8>,
    /// Send UDP without checksum (field 0).
    udp_no_checksum: bool,
}

fn vlan() -> impl Strategy<Value = Option<Tag>> {
    proptest::option::of((0u8..8, any::<bool>(), 0u16..4096))
}

/// Option bytes: a multiple of 4, at most 40.
fn options() -> impl Strategy<Value = Vec<u8>> {
    (0usize..=10).prop_flat_map(|words| vec(any::<u8>(), words * 4))
}

fn addr_pair() -> impl Strategy<Value = (IpAddr, IpAddr)> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<[u8; 4]>()).prop_map(|(s, d)| (
            IpAddr::from(Ipv4Addr::from(s)),
            IpAddr::from(Ipv4Addr::from(d))
        )),
        (any::<[u8; 16]>(), any::<[u8; 16]>()).prop_map(|(s, d)| (
            IpAddr::from(Ipv6Addr::from(s)),
            IpAddr::from(Ipv6Addr::from(d))
        )),
    ]
}

prop_compose! {
    fn spec()(
        vlan in vlan(),
        (src, dst) in addr_pair(),
        (ttl, tos, ident, dont_frag, flow_label) in (any::<u8>(), any::<u8>(), any::<u16>(), any::<bool>(), 0u32..0x10_0000),
        ip_options in options(),
        proto in prop_oneof![Just(Proto::Udp), Just(Proto::Tcp)],
        (sport, dport, seq, ack, flags, window) in (any::<u16>(), any::<u16>(), any::<u32>(), any::<u32>(), any::<u8>(), any::<u16>()),
        tcp_options in options(),
        payload in vec(any::<u8>(), 0..64),
        udp_no_checksum in prop::bool::weighted(0.2),
    ) -> Spec {
        Spec { vlan, src, dst, ttl, tos, ident, dont_frag, flow_label, ip_options, proto, sport, dport,
               seq, ack, flags, window, tcp_options, payload, udp_no_checksum }
    }
}

/// Build the frame described by `spec` with smoltcp's views and `Repr::emit`, computing
/// every checksum in full.
fn build(spec: &Spec) -> Vec<u8> {
    let caps = ChecksumCapabilities::default();
    let (src, dst) = (IpAddress::from(spec.src), IpAddress::from(spec.dst));
    let l4_len = match spec.proto {
        Proto::Udp => UDP_HEADER_LEN + spec.payload.len(),
        Proto::Tcp => TCP_HEADER_LEN + spec.tcp_options.len() + spec.payload.len(),
    };
    let ip_ethertype = if spec.src.is_ipv4() {
        EthernetProtocol::Ipv4
    } else {
        EthernetProtocol::Ipv6
    };
    let l3 = ETHERNET_HEADER_LEN + spec.vlan.map_or(0, |_| vlan::TAG_LEN);
    let ip_hdr = match spec.src {
        IpAddr::V4(_) => IPV4_HEADER_LEN + spec.ip_options.len(),
        IpAddr::V6(_) => IPV6_HEADER_LEN,
    };
    let mut f = vec![0xa5u8; l3 + ip_hdr + l4_len];

    let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
    EthernetRepr {
        src_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
        dst_addr: EthernetAddress([2, 0, 0, 0, 0, 2]),
        ethertype: spec.vlan.map_or(ip_ethertype, |_| vlan::TPID),
    }
    .emit(&mut eth);
    if let Some((pcp, dei, vid)) = spec.vlan {
        let tag = vlan::Repr {
            pcp,
            dei,
            vid,
            ethertype: ip_ethertype,
        };
        tag.emit(eth.payload_mut());
    }

    let next_header = IpProtocol::from(spec.proto.ip_number());
    match (spec.src, spec.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            f[l3 + IPV4_HEADER_LEN..l3 + ip_hdr].copy_from_slice(&spec.ip_options);
            let mut p = Ipv4Packet::new_unchecked(&mut f[l3..]);
            let repr = Ipv4Repr {
                src_addr: s,
                dst_addr: d,
                next_header,
                payload_len: l4_len,
                hop_limit: spec.ttl,
            };
            repr.emit(&mut p, &caps);
            // What smoltcp's Ipv4Repr does not carry, through the view.
            p.set_header_len(ip_hdr as u8);
            p.set_total_len((ip_hdr + l4_len) as u16);
            p.set_dscp(spec.tos >> 2);
            p.set_ecn(spec.tos & 3);
            p.set_ident(spec.ident);
            p.set_dont_frag(spec.dont_frag);
            p.fill_checksum();
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut p = Ipv6Packet::new_unchecked(&mut f[l3..]);
            let repr = Ipv6Repr {
                src_addr: s,
                dst_addr: d,
                next_header,
                payload_len: l4_len,
                hop_limit: spec.ttl,
            };
            repr.emit(&mut p);
            p.set_traffic_class(spec.tos);
            p.set_flow_label(spec.flow_label);
        }
        _ => unreachable!("addr_pair gives one family"),
    }

    let seg = &mut f[l3 + ip_hdr..];
    match spec.proto {
        Proto::Udp => {
            let mut p = UdpPacket::new_unchecked(seg);
            let repr = UdpRepr {
                src_port: spec.sport,
                dst_port: spec.dport,
            };
            let payload = &spec.payload;
            let emit_payload = |buf: &mut [u8]| buf.copy_from_slice(payload);
            repr.emit(&mut p, &src, &dst, payload.len(), emit_payload, &caps);
            if spec.udp_no_checksum {
                p.set_checksum(0);
            }
        }
        Proto::Tcp => {
            // smoltcp's TcpRepr keeps one control flag and the options it knows, so the
            // segment is written through the view: every flag, raw option bytes.
            let mut p = TcpPacket::new_unchecked(seg);
            p.set_src_port(spec.sport);
            p.set_dst_port(spec.dport);
            p.set_seq_number(TcpSeqNumber(spec.seq as i32));
            p.set_ack_number(TcpSeqNumber(spec.ack as i32));
            p.set_header_len((TCP_HEADER_LEN + spec.tcp_options.len()) as u8);
            p.clear_flags();
            p.set_fin(spec.flags & TcpFlags::FIN != 0);
            p.set_syn(spec.flags & TcpFlags::SYN != 0);
            p.set_rst(spec.flags & TcpFlags::RST != 0);
            p.set_psh(spec.flags & TcpFlags::PSH != 0);
            p.set_ack(spec.flags & TcpFlags::ACK != 0);
            p.set_urg(spec.flags & TcpFlags::URG != 0);
            p.set_ece(spec.flags & 0x40 != 0);
            p.set_cwr(spec.flags & 0x80 != 0);
            p.set_window_len(spec.window);
            p.set_urgent_at(0);
            p.options_mut().copy_from_slice(&spec.tcp_options);
            p.payload_mut().copy_from_slice(&spec.payload);
            p.fill_checksum(&src, &dst);
        }
    }
    f
}

fn flow_of(f: &[u8]) -> (FlowKey, lrp_core::flow::Offsets) {
    match classify(f) {
        Classification::Flow { key, offsets, .. } => (key, offsets),
        other => panic!("expected a flow, got {other:?}"),
    }
}

#[derive(Debug, Clone, Copy)]
enum Rewrite {
    Addr,
    Port,
    Endpoint,
}

proptest! {
    /// A built frame classifies to its own 5-tuple, and its checksums verify.
    #[test]
    fn built_frames_classify_and_verify(spec in spec()) {
        let f = build(&spec);
        let c = classify(&f);
        match c {
            Classification::Flow { key, flags, offsets } => {
                prop_assert_eq!(key, FlowKey { proto: spec.proto, src: spec.src, dst: spec.dst,
                                              sport: spec.sport, dport: spec.dport });
                let expected_flags = if spec.proto == Proto::Tcp { spec.flags } else { 0 };
                prop_assert_eq!(flags, TcpFlags(expected_flags));
                prop_assert_eq!(usize::from(offsets.l3) + usize::from(offsets.l3_len), f.len());
            }
            other => prop_assert!(false, "not a flow: {:?}", other),
        }
        let expected = if spec.udp_no_checksum && spec.proto == Proto::Udp && spec.src.is_ipv6() {
            Err(lrp_core::flow::Malformed::BadChecksum)
        } else {
            Ok(())
        };
        prop_assert_eq!(verify(&f, &c), expected);
    }

    /// A NAT rewrite with incremental checksum updates gives exactly the bytes of the
    /// frame built from scratch with the new address/port (full recomputation).
    #[test]
    fn nat_rewrite_equals_full_recompute(
        spec in spec(),
        side in prop_oneof![Just(Side::Src), Just(Side::Dst)],
        how in prop_oneof![Just(Rewrite::Addr), Just(Rewrite::Port), Just(Rewrite::Endpoint)],
        new4 in any::<[u8; 4]>(),
        new6 in any::<[u8; 16]>(),
        new_port in any::<u16>(),
    ) {
        let mut frame = build(&spec);
        let (key, offsets) = flow_of(&frame);
        let new_addr = if spec.src.is_ipv4() {
            IpAddr::from(Ipv4Addr::from(new4))
        } else {
            IpAddr::from(Ipv6Addr::from(new6))
        };
        let mut expected = spec.clone();
        let (addr_slot, port_slot) = match side {
            Side::Src => (&mut expected.src, &mut expected.sport),
            Side::Dst => (&mut expected.dst, &mut expected.dport),
        };
        match how {
            Rewrite::Addr => {
                let old = nat::set_addr(&mut frame, &offsets, Some(key.proto), side, new_addr).unwrap();
                prop_assert_eq!(old, *addr_slot);
                *addr_slot = new_addr;
            }
            Rewrite::Port => {
                let old = nat::set_port(&mut frame, &offsets, key.proto, side, new_port).unwrap();
                prop_assert_eq!(old, *port_slot);
                *port_slot = new_port;
            }
            Rewrite::Endpoint => {
                let new = SocketAddr::new(new_addr, new_port);
                let old = nat::set_endpoint(&mut frame, &offsets, key.proto, side, new).unwrap();
                prop_assert_eq!(old, SocketAddr::new(*addr_slot, *port_slot));
                *addr_slot = new_addr;
                *port_slot = new_port;
            }
        }
        prop_assert_eq!(frame, build(&expected));
    }

    /// The rare corner: a rewrite whose result is a computed checksum of 0 (UDP must
    /// send 0xffff, TCP sends 0). The new port is chosen to land exactly there.
    #[test]
    fn rewrite_to_computed_zero(spec in spec()) {
        let mut spec = spec;
        spec.udp_no_checksum = false;
        let mut frame = build(&spec);
        let (key, offsets) = flow_of(&frame);
        let at = usize::from(offsets.l4) + match key.proto {
            Proto::Udp => 6,  // UDP checksum field
            Proto::Tcp => 16, // TCP checksum field
        };
        let hc = u16::from_be_bytes([frame[at], frame[at + 1]]);
        // sum' = sum - old + new = -0  <=>  new = old + ~sum = old + hc.
        let new_port = checksum::add(spec.dport, hc);
        nat::set_port(&mut frame, &offsets, key.proto, Side::Dst, new_port).unwrap();
        let mut expected = spec.clone();
        expected.dport = new_port;
        let rebuilt = build(&expected);
        let want = if key.proto == Proto::Udp { 0xffff } else { 0 };
        prop_assert_eq!(u16::from_be_bytes([rebuilt[at], rebuilt[at + 1]]), want);
        prop_assert_eq!(frame, rebuilt);
    }

    /// RFC 1624 update of a 16-, 32- or 128-bit aligned field equals recomputing over the
    /// data. (The first word is nonzero, as in every real header: in ones'-complement an
    /// all-zero buffer would make +0 and -0 indistinguishable.)
    #[test]
    fn incremental_update_equals_recompute(
        words in vec(any::<u16>(), 9..64),
        width in prop_oneof![Just(1usize), Just(2), Just(8)],
        pos in 1usize..1000,
        new in any::<[u16; 8]>(),
        udp in any::<bool>(),
    ) {
        let mut words = words;
        words[0] |= 0x4000;
        let pos = 1 + pos % (words.len() - width);
        let bytes = |w: &[u16]| w.iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<u8>>();
        let finish = |c: u16| if udp { checksum::udp_finish(c) } else { c };
        let hc = finish(checksum::checksum(&bytes(&words)));
        let old: Vec<u16> = words[pos..pos + width].to_vec();
        words[pos..pos + width].copy_from_slice(&new[..width]);
        let d = old.iter().zip(&new[..width]).fold(Delta::new(), |d, (&o, &n)| d.u16(o, n));
        let updated = if udp { d.apply_udp(hc) } else { d.apply(hc) };
        prop_assert_eq!(updated, finish(checksum::checksum(&bytes(&words))));
        // The one-field shorthands agree with the accumulated delta.
        match width {
            1 => prop_assert_eq!(checksum::update16(hc, old[0], new[0]), d.apply(hc)),
            2 => prop_assert_eq!(
                checksum::update32(hc, (u32::from(old[0]) << 16) | u32::from(old[1]),
                                   (u32::from(new[0]) << 16) | u32::from(new[1])),
                d.apply(hc)
            ),
            _ => {
                let a = Ipv6Addr::new(old[0], old[1], old[2], old[3], old[4], old[5], old[6], old[7]);
                let b = Ipv6Addr::new(new[0], new[1], new[2], new[3], new[4], new[5], new[6], new[7]);
                prop_assert_eq!(checksum::update_ipv6_addr(hc, &a, &b), d.apply(hc));
            }
        }
    }

    /// The word-at-a-time sum equals a byte-pair reference sum, for any length.
    #[test]
    fn sum_matches_reference(data in vec(any::<u8>(), 0..300)) {
        let mut acc: u32 = 0;
        for pair in data.chunks(2) {
            acc += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
        }
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        prop_assert_eq!(u32::from(checksum::sum(&data)), acc);
    }

    /// A VLAN tag round-trips in both directions: repr -> bytes -> repr, and any 4 bytes
    /// -> repr -> the same bytes.
    #[test]
    fn vlan_roundtrip((pcp, dei, vid) in (0u8..8, any::<bool>(), 0u16..4096), et in any::<u16>(),
                      bytes in any::<[u8; 4]>()) {
        let repr = vlan::Repr { pcp, dei, vid, ethertype: EthernetProtocol::from(et) };
        let mut buf = [0u8; vlan::TAG_LEN];
        repr.emit(&mut buf);
        prop_assert_eq!(vlan::Repr::parse(&buf), Ok(repr));
        let mut out = [0u8; vlan::TAG_LEN];
        vlan::Repr::parse(&bytes).unwrap().emit(&mut out);
        prop_assert_eq!(out, bytes);
    }

    /// A chain of extension headers emitted with smoltcp's views (an optional hop-by-hop
    /// first, up to six routing or destination options headers, an optional fragment
    /// header last) is walked to its end.
    #[test]
    fn ipv6_ext_walk_finds_the_chain(
        hbh in any::<bool>(),
        middle in vec((prop_oneof![Just(43u8), Just(60u8)], 0u8..4), 0..7),
        frag in proptest::option::of((0u16..8192, any::<bool>(), any::<u32>())),
        upper in prop_oneof![Just(6u8), Just(17u8), Just(59u8)],
        fill in any::<u8>(),
    ) {
        let mut headers: Vec<(u8, u8)> = middle;
        if hbh {
            headers.insert(0, (0, 0));
        }
        let frag = frag.map(|(frag_offset, more_frags, ident)| Ipv6FragmentRepr { frag_offset, more_frags, ident });
        let kinds: Vec<u8> = headers.iter().map(|h| h.0).chain(frag.map(|_| 44)).chain([upper]).collect();
        let mut bytes = Vec::new();
        for (i, &(_, units)) in headers.iter().enumerate() {
            let mut h = vec![fill; 8 + 8 * usize::from(units)];
            let mut view = Ipv6ExtHeader::new_unchecked(&mut h[..]);
            view.set_next_header(IpProtocol::from(kinds[i + 1]));
            view.set_header_len(units);
            bytes.extend_from_slice(&h);
        }
        if let Some(repr) = frag {
            let mut h = [upper, fill, 0, 0, 0, 0, 0, 0];
            repr.emit(&mut Ipv6FragmentHeader::new_unchecked(&mut h[2..]));
            bytes.extend_from_slice(&h);
        }
        let expected = ExtChain { upper, len: bytes.len(), count: kinds.len() - 1, fragment: frag };
        bytes.extend_from_slice(&[fill; 8]);
        prop_assert_eq!(walk_ext_headers(kinds[0], &bytes), Ok(expected));
    }

    #[test]
    fn arp_icmp_roundtrip(
        op in prop_oneof![Just(arp::Operation::Request), Just(arp::Operation::Reply)],
        (sha, tha) in (any::<[u8; 6]>(), any::<[u8; 6]>()),
        (spa, tpa) in (any::<[u8; 4]>(), any::<[u8; 4]>()),
        (ident, seq_no) in (any::<u16>(), any::<u16>()),
        data in vec(any::<u8>(), 0..64),
        reply in any::<bool>(),
    ) {
        let a = arp::Repr::EthernetIpv4 { operation: op, source_hardware_addr: EthernetAddress(sha),
            source_protocol_addr: spa.into(), target_hardware_addr: EthernetAddress(tha),
            target_protocol_addr: tpa.into() };
        let mut buf = vec![0u8; a.buffer_len()];
        a.emit(&mut arp::Packet::new_unchecked(&mut buf[..]));
        prop_assert_eq!(arp::parse(&buf).unwrap(), a);

        let caps = icmp::ChecksumCapabilities::default();
        let e4 = if reply { icmp::Icmpv4Repr::EchoReply { ident, seq_no, data: &data } }
                 else { icmp::Icmpv4Repr::EchoRequest { ident, seq_no, data: &data } };
        let mut buf = vec![0u8; e4.buffer_len()];
        e4.emit(&mut icmp::Icmpv4Packet::new_unchecked(&mut buf[..]), &caps);
        prop_assert_eq!(icmp::Icmpv4Repr::parse(&icmp::Icmpv4Packet::new_checked(&buf[..]).unwrap(), &caps).unwrap(), e4);

        let (s6, d6) = (Ipv6Addr::LOCALHOST, Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, ident));
        let e6 = if reply { icmp::Icmpv6Repr::EchoReply { ident, seq_no, data: &data } }
                 else { icmp::Icmpv6Repr::EchoRequest { ident, seq_no, data: &data } };
        let mut buf = vec![0u8; e6.buffer_len()];
        e6.emit(&s6, &d6, &mut icmp::Icmpv6Packet::new_unchecked(&mut buf[..]), &caps);
        let p = icmp::Icmpv6Packet::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(icmp::Icmpv6Repr::parse(&s6, &d6, &p, &caps).unwrap(), e6);
    }

    /// Arbitrary bytes: no panic, and a flow's offsets lie inside the frame.
    #[test]
    fn classify_never_panics(bytes in vec(any::<u8>(), 0..200)) {
        check_total(&bytes)?;
    }

    /// Valid frames with random bytes changed and random truncation: no panic, sane offsets.
    #[test]
    fn classify_never_panics_on_mutated_frames(
        spec in spec(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut f = build(&spec);
        for (at, v) in edits {
            let i = at.index(f.len());
            f[i] = v;
        }
        let n = cut.index(f.len() + 1);
        check_total(&f[..n])?;
        check_total(&f)?;
    }
}

fn check_total(frame: &[u8]) -> Result<(), TestCaseError> {
    let c = classify(frame);
    if let Classification::Flow { offsets, .. } = c {
        let (l3, l4, len) = (
            usize::from(offsets.l3),
            usize::from(offsets.l4),
            usize::from(offsets.l3_len),
        );
        prop_assert!(
            l3 <= l4 && l4 <= l3 + len && l3 + len <= frame.len(),
            "{:?}",
            offsets
        );
    }
    let _ = verify(frame, &c);
    Ok(())
}
