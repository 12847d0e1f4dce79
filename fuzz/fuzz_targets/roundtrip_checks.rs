//! The checks of the `wire_roundtrip` fuzz target, shared with the corpus replay test
//! (`lrp-core/tests/wire_fuzz_corpus.rs`). The first input byte picks the check:
//!
//! * 0: a VLAN tag after smoltcp's Ethernet header parses and emits back to its bytes;
//! * 1, 4, 5: lrp's full checksums of an IPv4 header, a UDP datagram and a TCP segment
//!   (read with smoltcp's views) equal smoltcp's `fill_checksum`, and verify;
//! * 2, 3: the IPv6 extension-header walk, after smoltcp's fixed-header view or on raw
//!   bytes, stays inside the payload and within its header limit;
//! * 6: ARP parses and emits back to its bytes;
//! * 7: NAT rewrites keep valid checksums valid.
//!
//! Panics on a violation.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use lrp_core::flow::Classification;
use lrp_core::wire::ipv6::{walk_ext_headers, MAX_EXT_HEADERS};
use lrp_core::wire::{arp, checksum, classify::classify, nat, verify, vlan};
use smoltcp::wire::{EthernetFrame, IpAddress, Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket};

/// Run the check that the first byte of `input` selects on the rest.
pub(crate) fn run(input: &[u8]) {
    let Some((&which, data)) = input.split_first() else {
        return;
    };
    match which % 8 {
        0 => vlan_roundtrip(data),
        1 => ipv4_checksum(data),
        2 => ipv6_walk(data),
        3 => ext_walk(data),
        4 => udp_checksum(data),
        5 => tcp_checksum(data),
        6 => arp_roundtrip(data),
        _ => nat_keeps_checksums(data),
    }
}

fn vlan_roundtrip(data: &[u8]) {
    let Ok(frame) = EthernetFrame::new_checked(data) else {
        return;
    };
    if frame.ethertype() != vlan::TPID {
        return;
    }
    let Ok(tag) = vlan::Repr::parse(frame.payload()) else {
        assert!(frame.payload().len() < vlan::TAG_LEN);
        return;
    };
    let mut out = [0u8; vlan::TAG_LEN];
    tag.emit(&mut out);
    assert_eq!(&out[..], &frame.payload()[..vlan::TAG_LEN]);
    assert_eq!(vlan::Repr::parse(&out), Ok(tag));
}

fn ipv4_checksum(data: &[u8]) {
    let Ok(p) = Ipv4Packet::new_checked(data) else {
        return;
    };
    let mut header = data[..usize::from(p.header_len())].to_vec();
    header[10..12].fill(0);
    let ours = checksum::checksum(&header);
    let mut theirs = Ipv4Packet::new_unchecked(&mut header[..]);
    theirs.fill_checksum();
    assert_eq!(ours, theirs.checksum());
    assert_eq!(checksum::sum(&header), 0xffff);
}

fn ipv6_walk(data: &[u8]) {
    let Ok(p) = Ipv6Packet::new_checked(data) else {
        return;
    };
    if let Ok(chain) = walk_ext_headers(p.next_header().into(), p.payload()) {
        assert!(chain.len <= p.payload().len() && chain.count <= MAX_EXT_HEADERS);
    }
}

fn ext_walk(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    if let Ok(chain) = walk_ext_headers(first, rest) {
        assert!(chain.len <= rest.len() && chain.count <= MAX_EXT_HEADERS);
        if chain.is_later_fragment() {
            assert!(chain.is_fragment());
        }
    }
}

fn addrs(data: &[u8]) -> (IpAddr, IpAddr) {
    let mut a = [0u8; 32];
    let n = data.len().min(32);
    a[..n].copy_from_slice(&data[..n]);
    let s: [u8; 16] = a[..16].try_into().unwrap();
    let d: [u8; 16] = a[16..].try_into().unwrap();
    if data.first().is_some_and(|b| b & 1 == 0) {
        (
            Ipv4Addr::new(s[0], s[1], s[2], s[3]).into(),
            Ipv4Addr::new(d[0], d[1], d[2], d[3]).into(),
        )
    } else {
        (Ipv6Addr::from(s).into(), Ipv6Addr::from(d).into())
    }
}

fn udp_checksum(data: &[u8]) {
    let Ok(p) = UdpPacket::new_checked(data) else {
        return;
    };
    let (src, dst) = addrs(data);
    let mut seg = data[..usize::from(p.len())].to_vec();
    seg[6..8].fill(0);
    let ours = checksum::udp_finish(checksum::l4(&src, &dst, 17, &seg));
    let mut theirs = UdpPacket::new_unchecked(&mut seg[..]);
    theirs.fill_checksum(&IpAddress::from(src), &IpAddress::from(dst));
    assert_eq!(ours, theirs.checksum());
    assert!(checksum::verify_l4(&src, &dst, 17, &seg));
}

fn tcp_checksum(data: &[u8]) {
    // A segment longer than IP can carry is not a TCP segment (and would overflow
    // smoltcp's 32-bit checksum accumulator).
    if data.len() > usize::from(u16::MAX) || TcpPacket::new_checked(data).is_err() {
        return;
    }
    let (src, dst) = addrs(data);
    let mut seg = data.to_vec();
    seg[16..18].fill(0);
    let ours = checksum::l4(&src, &dst, 6, &seg);
    let mut theirs = TcpPacket::new_unchecked(&mut seg[..]);
    theirs.fill_checksum(&IpAddress::from(src), &IpAddress::from(dst));
    assert_eq!(ours, theirs.checksum());
    assert!(checksum::verify_l4(&src, &dst, 6, &seg));
}

fn arp_roundtrip(data: &[u8]) {
    let Ok(repr) = arp::parse(data) else { return };
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut arp::Packet::new_unchecked(&mut out[..]));
    assert_eq!(&out[..], &data[..arp::PACKET_LEN]);
}

/// A frame whose checksums verify still verifies after any NAT rewrite.
fn nat_keeps_checksums(data: &[u8]) {
    let Some((knobs, frame)) = data.split_first_chunk::<19>() else {
        return;
    };
    let mut frame = frame.to_vec();
    let class = classify(&frame);
    let Classification::Flow { key, offsets, .. } = class else {
        return;
    };
    if verify(&frame, &class).is_err() {
        return;
    }
    let new_ip: IpAddr = if key.src.is_ipv4() {
        Ipv4Addr::new(knobs[0], knobs[1], knobs[2], knobs[3]).into()
    } else {
        Ipv6Addr::from(<[u8; 16]>::try_from(&knobs[..16]).unwrap()).into()
    };
    let port = u16::from_be_bytes([knobs[16], knobs[17]]);
    let side = if knobs[18] & 1 == 0 {
        nat::Side::Src
    } else {
        nat::Side::Dst
    };
    nat::set_endpoint(
        &mut frame,
        &offsets,
        key.proto,
        side,
        SocketAddr::new(new_ip, port),
    )
    .expect("offsets from classify are in bounds");
    let after = classify(&frame);
    let Classification::Flow { key: new_key, .. } = after else {
        panic!("{after:?}")
    };
    assert_eq!(new_key.proto, key.proto);
    assert_eq!(verify(&frame, &after), Ok(()));
}
