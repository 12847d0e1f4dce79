//! Malformed and truncated frames: every valid test frame cut at every byte offset
//! classifies to the exact named reason a model predicts, and a table of hand-broken
//! frames yields the expected [`Malformed`] reason from `classify` or `verify`.
//!
//! The valid frames are the seed corpus of the `classify` fuzz target
//! (`fuzz/corpus/classify/*.bin`), checked-in byte files.

use std::net::{IpAddr, Ipv4Addr};

use lrp_core::flow::{Classification, Malformed, Offsets, Proto, TcpFlags};
use lrp_core::wire::{checksum, classify::classify, verify};

macro_rules! frame {
    ($name:literal) => {
        (
            $name,
            include_bytes!(concat!("../../fuzz/corpus/classify/", $name, ".bin")) as &[u8],
        )
    };
}

/// Every seed frame.
const FRAMES: [(&str, &[u8]); 18] = [
    frame!("ipv4_udp_dns"),
    frame!("ipv4_tcp_syn"),
    frame!("vlan_ipv4_tcp_psh"),
    frame!("ipv4_tcp_ack_padded"),
    frame!("ipv4_udp_zero_csum"),
    frame!("ipv4_opts_udp"),
    frame!("ipv4_icmp_echo"),
    frame!("ipv4_udp_first_frag"),
    frame!("ipv4_udp_later_frag"),
    frame!("ipv4_gre_other"),
    frame!("arp_request"),
    frame!("ipv6_udp"),
    frame!("ipv6_tcp_syn"),
    frame!("ipv6_icmp_echo"),
    frame!("ipv6_ext_udp"),
    frame!("ipv6_frag_first_udp"),
    frame!("ipv6_frag_later"),
    frame!("lldp_other"),
];

fn get(name: &str) -> Vec<u8> {
    FRAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, b)| b.to_vec())
        .expect("known frame")
}

fn v4(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The seed frames classify as expected (so the truncation model below starts right).
#[test]
fn seed_frames_classify() {
    let flow = |proto, sport, dport, l3, l4, l3_len, flags| {
        move |c: &Classification| match *c {
            Classification::Flow {
                key,
                flags: f,
                offsets,
            } => {
                key.proto == proto
                    && key.sport == sport
                    && key.dport == dport
                    && offsets == Offsets { l3, l4, l3_len }
                    && f == TcpFlags(flags)
            }
            _ => false,
        }
    };
    type Check = Box<dyn Fn(&Classification) -> bool>;
    let expect: Vec<(&str, Check)> = vec![
        (
            "ipv4_udp_dns",
            Box::new(flow(Proto::Udp, 53000, 53, 14, 34, 57, 0)),
        ),
        (
            "ipv4_tcp_syn",
            Box::new(flow(Proto::Tcp, 40000, 80, 14, 34, 60, 0x02)),
        ),
        (
            "vlan_ipv4_tcp_psh",
            Box::new(flow(Proto::Tcp, 40000, 80, 18, 38, 79, 0x18)),
        ),
        (
            "ipv4_tcp_ack_padded",
            Box::new(flow(Proto::Tcp, 40000, 80, 14, 34, 40, 0x10)),
        ),
        (
            "ipv4_udp_zero_csum",
            Box::new(flow(Proto::Udp, 5000, 6000, 14, 34, 33, 0)),
        ),
        (
            "ipv4_opts_udp",
            Box::new(flow(Proto::Udp, 1234, 5678, 14, 42, 39, 0)),
        ),
        (
            "ipv4_udp_first_frag",
            Box::new(flow(Proto::Udp, 7000, 8000, 14, 34, 52, 0)),
        ),
        (
            "ipv6_udp",
            Box::new(flow(Proto::Udp, 53000, 53, 14, 54, 77, 0)),
        ),
        (
            "ipv6_tcp_syn",
            Box::new(flow(Proto::Tcp, 40001, 443, 14, 54, 80, 0x02)),
        ),
        (
            "ipv6_ext_udp",
            Box::new(flow(Proto::Udp, 1111, 2222, 14, 70, 67, 0)),
        ),
        (
            "ipv6_frag_first_udp",
            Box::new(flow(Proto::Udp, 3333, 4444, 14, 62, 96, 0)),
        ),
        (
            "ipv4_icmp_echo",
            Box::new(|c: &Classification| {
                *c == Classification::Icmp {
                    dst: v4("192.168.1.20"),
                    icmp_type: 8,
                }
            }),
        ),
        (
            "ipv6_icmp_echo",
            Box::new(|c: &Classification| {
                *c == Classification::Icmp {
                    dst: v4("2001:db8::20"),
                    icmp_type: 128,
                }
            }),
        ),
        (
            "ipv4_udp_later_frag",
            Box::new(|c: &Classification| *c == Classification::Fragment),
        ),
        (
            "ipv6_frag_later",
            Box::new(|c: &Classification| *c == Classification::Fragment),
        ),
        (
            "ipv4_gre_other",
            Box::new(|c: &Classification| *c == Classification::OtherIp(47)),
        ),
        (
            "arp_request",
            Box::new(|c: &Classification| {
                *c == Classification::Arp {
                    target: Ipv4Addr::new(192, 168, 1, 20),
                }
            }),
        ),
        (
            "lldp_other",
            Box::new(|c: &Classification| *c == Classification::OtherEthertype(0x88cc)),
        ),
    ];
    assert_eq!(expect.len(), FRAMES.len());
    for (name, check) in &expect {
        let f = get(name);
        let c = classify(&f);
        assert!(check(&c), "{name}: {c:?}");
        assert_eq!(
            verify(&f, &c),
            Ok(()),
            "{name}: checksums of the seed frame"
        );
    }
}

/// Where the layers of a valid frame are, found independently of `classify`.
struct Layout {
    /// End of the Ethernet header (14 or 18).
    l3: usize,
    /// Minimum bytes the L3 header needs, and its full length (IHL, IPv6 fixed 40).
    l3_min: usize,
    l3_hdr: usize,
    /// End of the L3 packet (IP total length, ARP 28), or `l3` for other ethertypes.
    end: usize,
    is_arp: bool,
}

fn layout(f: &[u8]) -> Layout {
    let tagged = f[12..14] == [0x81, 0x00];
    let l3 = if tagged { 18 } else { 14 };
    match u16::from_be_bytes([f[l3 - 2], f[l3 - 1]]) {
        0x0800 => {
            let ihl = usize::from(f[l3] & 0xf) * 4;
            let total = usize::from(u16::from_be_bytes([f[l3 + 2], f[l3 + 3]]));
            Layout {
                l3,
                l3_min: 20,
                l3_hdr: ihl,
                end: l3 + total,
                is_arp: false,
            }
        }
        0x86dd => {
            let plen = usize::from(u16::from_be_bytes([f[l3 + 4], f[l3 + 5]]));
            Layout {
                l3,
                l3_min: 40,
                l3_hdr: 40,
                end: l3 + 40 + plen,
                is_arp: false,
            }
        }
        0x0806 => Layout {
            l3,
            l3_min: 28,
            l3_hdr: 28,
            end: l3 + 28,
            is_arp: true,
        },
        _ => Layout {
            l3,
            l3_min: 0,
            l3_hdr: 0,
            end: l3,
            is_arp: false,
        },
    }
}

/// Cutting the frame anywhere: before the end of the L3 packet the reason is exactly the
/// one the layer that runs short gives; in the Ethernet padding nothing changes.
#[test]
fn every_truncation_gives_the_named_reason() {
    for (name, full) in FRAMES {
        let lay = layout(full);
        let whole = classify(full);
        for n in 0..full.len() {
            let got = classify(&full[..n]);
            let expected = if n < 14 || (lay.l3 == 18 && n < 18) {
                Classification::Malformed(Malformed::TruncatedEthernet)
            } else if n >= lay.end {
                whole
            } else if lay.is_arp {
                Classification::Malformed(Malformed::BadArp)
            } else if n < lay.l3 + lay.l3_min {
                Classification::Malformed(Malformed::TruncatedIp)
            } else if n < lay.l3 + lay.l3_hdr {
                Classification::Malformed(Malformed::BadIpHeaderLen)
            } else {
                Classification::Malformed(Malformed::BadIpTotalLen)
            };
            assert_eq!(got, expected, "{name} cut to {n} bytes");
            // verify agrees with classify on the reason and never panics.
            if let Classification::Malformed(r) = got {
                assert_eq!(verify(&full[..n], &got), Err(r));
            }
        }
    }
}

/// Shorten the IP packet consistently (total/payload length and IPv4 header checksum
/// fixed to match), so the cut lands inside the transport header or IPv6 extension
/// headers: the transport-level reasons must come out.
#[test]
fn consistent_ip_truncation_reaches_transport_reasons() {
    for (name, full) in FRAMES {
        let lay = layout(full);
        let whole = classify(full);
        if lay.is_arp || lay.l3_min == 0 {
            continue;
        }
        let v6 = lay.l3_min == 40;
        for end in lay.l3 + lay.l3_hdr..lay.end {
            let mut f = full[..end].to_vec();
            let len = end - lay.l3;
            if v6 {
                f[lay.l3 + 4..lay.l3 + 6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
            } else {
                f[lay.l3 + 2..lay.l3 + 4].copy_from_slice(&(len as u16).to_be_bytes());
                f[lay.l3 + 10..lay.l3 + 12].fill(0);
                let c = checksum::checksum(&f[lay.l3..lay.l3 + lay.l3_hdr]);
                f[lay.l3 + 10..lay.l3 + 12].copy_from_slice(&c.to_be_bytes());
            }
            let got = classify(&f);
            let ok = match (whole, got) {
                // Classes without a transport header do not care.
                (Classification::Fragment, Classification::Fragment) => true,
                (Classification::OtherIp(a), Classification::OtherIp(b)) => a == b,
                // ICMP needs only its 4-byte header.
                (Classification::Icmp { .. }, Classification::Icmp { .. }) => true,
                // TCP has no length field: cutting its payload leaves a flow. A first
                // fragment's UDP length covers the whole datagram: still a flow while
                // the UDP header is there.
                (Classification::Flow { key, .. }, Classification::Flow { .. }) => {
                    key.proto == Proto::Tcp || name.contains("first")
                }
                (_, Classification::Malformed(r)) => matches!(
                    r,
                    Malformed::TruncatedL4
                        | Malformed::BadTcpDataOffset
                        | Malformed::BadUdpLen
                        | Malformed::BadIpv6ExtHeaders
                ),
                _ => false,
            };
            assert!(
                ok,
                "{name}: IP packet cut to {len} bytes gave {got:?} (whole: {whole:?})"
            );
            if let Classification::Malformed(r) = got {
                assert_eq!(verify(&f, &got), Err(r));
            }
        }
    }
}

fn reason(f: &[u8]) -> Malformed {
    match classify(f) {
        Classification::Malformed(r) => r,
        other => panic!("expected a malformed frame, got {other:?}"),
    }
}

/// Fix the IPv4 header checksum of a frame with an untagged IPv4 header at 14.
fn fix_ipv4_checksum(f: &mut [u8]) {
    let ihl = usize::from(f[14] & 0xf) * 4;
    f[24..26].fill(0);
    let c = checksum::checksum(&f[14..(14 + ihl).min(f.len())]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
}

#[test]
fn table_of_malformed_frames() {
    let dns = get("ipv4_udp_dns");
    let syn = get("ipv4_tcp_syn");
    let arp = get("arp_request");
    let v6_ext = get("ipv6_ext_udp");

    type Edit = fn(&mut Vec<u8>);
    let table: [(&str, &Vec<u8>, Edit, Malformed); 15] = [
        ("IHL 4", &dns, |f| f[14] = 0x44, Malformed::BadIpHeaderLen),
        ("IHL 0", &dns, |f| f[14] = 0x40, Malformed::BadIpHeaderLen),
        (
            "IHL 15 beyond frame",
            &get("ipv4_gre_other"),
            |f| f[14] = 0x4f,
            Malformed::BadIpHeaderLen,
        ),
        (
            "total length beyond frame",
            &dns,
            |f| f[17] += 1,
            Malformed::BadIpTotalLen,
        ),
        (
            "total length below header",
            &dns,
            |f| f[16..18].copy_from_slice(&[0, 19]),
            Malformed::BadIpTotalLen,
        ),
        (
            "IPv6 version in IPv4 ethertype",
            &dns,
            |f| f[14] = 0x65,
            Malformed::BadIpVersion,
        ),
        (
            "TCP data offset 4",
            &syn,
            |f| f[46] = 0x40,
            Malformed::BadTcpDataOffset,
        ),
        (
            "TCP data offset 0",
            &syn,
            |f| f[46] = 0x00,
            Malformed::BadTcpDataOffset,
        ),
        (
            "TCP data offset beyond packet",
            &syn,
            |f| f[46] = 0xf0,
            Malformed::BadTcpDataOffset,
        ),
        (
            "UDP length too long",
            &dns,
            |f| f[39] += 1,
            Malformed::BadUdpLen,
        ),
        (
            "UDP length too short",
            &dns,
            |f| f[39] -= 1,
            Malformed::BadUdpLen,
        ),
        (
            "UDP length below 8",
            &dns,
            |f| f[38..40].copy_from_slice(&[0, 7]),
            Malformed::BadUdpLen,
        ),
        ("ARP hardware type", &arp, |f| f[15] = 6, Malformed::BadArp),
        ("ARP operation 0", &arp, |f| f[21] = 0, Malformed::BadArp),
        (
            "IPv6 ext header runs past payload",
            &v6_ext,
            |f| f[55] = 9,
            Malformed::BadIpv6ExtHeaders,
        ),
    ];
    for (what, base, edit, expected) in table {
        let mut f = base.clone();
        edit(&mut f);
        if f[12..14] == [0x08, 0x00] && f[14] >> 4 == 4 && f[14] & 0xf >= 5 {
            fix_ipv4_checksum(&mut f);
        }
        assert_eq!(reason(&f), expected, "{what}");
        assert_eq!(verify(&f, &classify(&f)), Err(expected), "{what}");
    }

    // Hop-by-hop anywhere but first.
    let mut late_hbh = v6_ext.clone();
    late_hbh[20] = 60; // fixed header -> destination options
    late_hbh[54] = 0; // destination options -> hop-by-hop
    assert_eq!(reason(&late_hbh), Malformed::BadIpv6ExtHeaders);

    // Nine destination-options headers.
    let mut long_chain = v6_ext[..54].to_vec();
    long_chain[20] = 60;
    for i in 0..9 {
        long_chain.extend_from_slice(&[if i == 8 { 59 } else { 60 }, 0, 1, 4, 0, 0, 0, 0]);
    }
    long_chain[18..20].copy_from_slice(&(9u16 * 8).to_be_bytes());
    assert_eq!(reason(&long_chain), Malformed::BadIpv6ExtHeaders);
    // Eight are fine (they end in "no next header").
    let mut ok_chain = long_chain[..54 + 64].to_vec();
    ok_chain[54 + 56] = 59;
    ok_chain[18..20].copy_from_slice(&(8u16 * 8).to_be_bytes());
    assert_eq!(classify(&ok_chain), Classification::OtherIp(59));
}

#[test]
fn table_of_bad_checksums() {
    // (frame, byte to corrupt) — each corruption breaks exactly one checksum.
    let cases: [(&str, usize); 12] = [
        ("ipv4_udp_dns", 24),      // IPv4 header checksum field
        ("ipv4_udp_dns", 26),      // source address: IP header and UDP pseudo header
        ("ipv4_udp_dns", 40),      // UDP checksum field
        ("ipv4_udp_dns", 60),      // UDP payload
        ("ipv4_tcp_syn", 50),      // TCP checksum field
        ("ipv4_tcp_syn", 60),      // TCP option
        ("vlan_ipv4_tcp_psh", 90), // TCP payload behind a VLAN tag
        ("ipv4_icmp_echo", 50),    // ICMP data
        ("ipv4_opts_udp", 36),     // IPv4 option byte (header checksum)
        ("ipv6_udp", 70),          // UDP payload over IPv6
        ("ipv6_tcp_syn", 30),      // IPv6 source address (pseudo header)
        ("ipv6_icmp_echo", 65),    // ICMPv6 data
    ];
    for (name, at) in cases {
        let mut f = get(name);
        f[at] ^= 0x40;
        let c = classify(&f);
        assert!(
            !matches!(c, Classification::Malformed(_)),
            "{name}@{at}: {c:?}"
        );
        assert_eq!(verify(&f, &c), Err(Malformed::BadChecksum), "{name}@{at}");
    }

    // UDP checksum 0: "none" over IPv4, invalid over IPv6.
    let zero = get("ipv4_udp_zero_csum");
    assert_eq!(verify(&zero, &classify(&zero)), Ok(()));
    let mut v6_zero = get("ipv6_udp");
    v6_zero[60..62].fill(0);
    assert_eq!(
        verify(&v6_zero, &classify(&v6_zero)),
        Err(Malformed::BadChecksum)
    );

    // A first fragment: only the IP header is checked (the UDP checksum covers the
    // reassembled datagram), so corrupting its UDP payload is not detected here.
    let mut first = get("ipv4_udp_first_frag");
    first[50] ^= 1;
    assert_eq!(verify(&first, &classify(&first)), Ok(()));
    first[22] ^= 1; // TTL: header checksum
    assert_eq!(
        verify(&first, &classify(&first)),
        Err(Malformed::BadChecksum)
    );

    // A later fragment and another protocol: the IPv4 header checksum still counts.
    for name in ["ipv4_udp_later_frag", "ipv4_gre_other"] {
        let mut f = get(name);
        f[22] ^= 1;
        assert_eq!(
            verify(&f, &classify(&f)),
            Err(Malformed::BadChecksum),
            "{name}"
        );
    }
}
