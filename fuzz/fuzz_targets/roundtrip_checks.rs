//! The checks of the `wire_roundtrip` fuzz target, shared with the corpus replay test
//! (`lrp-core/tests/wire_fuzz_corpus.rs`): whatever `new_checked` + `Repr::parse` accept
//! must emit back to the same header bytes (up to reserved bits and recomputed
//! checksums) and parse again to the same `Repr`. The first input byte picks the layer;
//! layer 7 checks that NAT rewrites keep valid checksums valid. Panics on a violation.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use lrp_core::flow::Classification;
use lrp_core::wire::{arp, classify::classify, ethernet, ipv4, ipv6, nat, tcp, udp, verify};

/// Run the check that the first byte of `input` selects on the rest.
pub(crate) fn run(input: &[u8]) {
    let Some((&which, data)) = input.split_first() else {
        return;
    };
    match which % 8 {
        0 => ethernet_roundtrip(data),
        1 => ipv4_roundtrip(data),
        2 => ipv6_roundtrip(data),
        3 => ipv6_ext_roundtrip(data),
        4 => udp_roundtrip(data),
        5 => tcp_roundtrip(data),
        6 => arp_roundtrip(data),
        _ => nat_keeps_checksums(data),
    }
}

fn ethernet_roundtrip(data: &[u8]) {
    let Ok(frame) = ethernet::Frame::new_checked(data) else {
        return;
    };
    let repr = ethernet::Repr::parse(&frame).expect("checked frame parses");
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut ethernet::Frame::new_unchecked(&mut out[..]));
    assert_eq!(&out[..], &data[..frame.header_len()]);
    let back = ethernet::Repr::parse(&ethernet::Frame::new_checked(&out[..]).unwrap()).unwrap();
    assert_eq!(back, repr);
}

fn ipv4_roundtrip(data: &[u8]) {
    let Ok(p) = ipv4::Packet::new_checked(data) else {
        return;
    };
    let Ok(repr) = ipv4::Repr::parse(&p) else {
        return;
    };
    let mut out = vec![0u8; repr.buffer_len() + repr.payload_len];
    let mut q = ipv4::Packet::new_unchecked(&mut out[..]);
    repr.emit(&mut q);
    q.payload_mut().copy_from_slice(p.payload());
    let q = ipv4::Packet::new_checked(&out[..]).unwrap();
    assert!(q.verify_checksum());
    assert_eq!(ipv4::Repr::parse(&q).unwrap(), repr);
    // Same bytes except the checksum and the reserved flag bit.
    let mut expect = data[..out.len()].to_vec();
    expect[6] &= 0x7f;
    expect[10..12].copy_from_slice(&out[10..12]);
    assert_eq!(out, expect);
}

fn ipv6_roundtrip(data: &[u8]) {
    let Ok(p) = ipv6::Packet::new_checked(data) else {
        return;
    };
    let _ = p.ext_chain();
    let Ok(repr) = ipv6::Repr::parse(&p) else {
        return;
    };
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut ipv6::Packet::new_unchecked(&mut out[..]));
    assert_eq!(&out[..], &data[..ipv6::HEADER_LEN]);
}

fn ipv6_ext_roundtrip(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    if let Ok(chain) = ipv6::walk_ext_headers(first, rest) {
        assert!(chain.len <= rest.len() && chain.count <= ipv6::MAX_EXT_HEADERS);
    }
    if let Ok(h) = ipv6::ExtHeader::new_checked(rest) {
        let repr = ipv6::ExtHeaderRepr::parse(&h).unwrap();
        let mut out = vec![0u8; repr.buffer_len()];
        repr.emit(&mut ipv6::ExtHeader::new_unchecked(&mut out[..]));
        assert_eq!(&out[..], &rest[..h.header_len()]);
    }
    if let Ok(h) = ipv6::FragmentHeader::new_checked(rest) {
        let repr = ipv6::FragmentRepr::parse(&h).unwrap();
        let mut out = [0u8; ipv6::FRAGMENT_HEADER_LEN];
        repr.emit(&mut ipv6::FragmentHeader::new_unchecked(&mut out[..]));
        let mut expect = [0u8; ipv6::FRAGMENT_HEADER_LEN];
        expect.copy_from_slice(&rest[..ipv6::FRAGMENT_HEADER_LEN]);
        expect[1] = 0; // reserved
        expect[3] &= 0xf9; // reserved bits between offset and M
        assert_eq!(out, expect);
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

fn udp_roundtrip(data: &[u8]) {
    let Ok(p) = udp::Packet::new_checked(data) else {
        return;
    };
    let repr = udp::Repr::parse(&p).unwrap();
    let (src, dst) = addrs(data);
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(
        &mut udp::Packet::new_unchecked(&mut out[..]),
        p.payload(),
        &src,
        &dst,
    );
    let q = udp::Packet::new_checked(&out[..]).unwrap();
    assert!(q.verify_checksum(&src, &dst));
    assert_eq!(udp::Repr::parse(&q).unwrap(), repr);
    assert_eq!(&out[..6], &data[..6]);
    assert_eq!(&out[8..], &data[8..repr.buffer_len()]);
}

fn tcp_roundtrip(data: &[u8]) {
    let Ok(p) = tcp::Packet::new_checked(data) else {
        return;
    };
    let _ = p.options_iter().count();
    let repr = tcp::Repr::parse(&p).unwrap();
    let (src, dst) = addrs(data);
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(
        &mut tcp::Packet::new_unchecked(&mut out[..]),
        p.payload(),
        &src,
        &dst,
    );
    let q = tcp::Packet::new_checked(&out[..]).unwrap();
    assert!(q.verify_checksum(&src, &dst));
    assert_eq!(tcp::Repr::parse(&q).unwrap(), repr);
    let mut expect = data.to_vec();
    expect[12] &= 0xf0;
    expect[16..18].copy_from_slice(&out[16..18]);
    assert_eq!(out, expect);
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
