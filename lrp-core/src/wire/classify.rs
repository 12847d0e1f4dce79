//! One-pass frame classification: the first step of early demultiplexing.
//!
//! Written here because [`classify`] runs on every received frame, before any protocol
//! work, and smoltcp has no single-pass classifier. It makes one forward pass over the
//! headers (not a `new_checked` + `Repr::parse` per layer), each length checked once
//! (fixed-size header chunks are taken with `first_chunk`, so field reads cannot go out
//! of bounds), with no allocation and no checksum. It finds
//!
//! * for UDP and TCP: the [`FlowKey`], the TCP flags and the [`Offsets`] of the layers;
//! * for what has no ports: ARP (target address), ICMP (destination, type), non-first
//!   IP fragments, other IP protocols, other ethertypes;
//! * for anything inconsistent: a named [`Malformed`] reason.
//!
//! Rules, in the order they are applied:
//!
//! | check | reason |
//! |---|---|
//! | frame shorter than 14 bytes, or than 18 with an 802.1Q tag | [`Malformed::TruncatedEthernet`] |
//! | ARP shorter than 28 bytes, not Ethernet/IPv4, operation not request/reply | [`Malformed::BadArp`] |
//! | fewer than 20 (IPv4) or 40 (IPv6) bytes after the Ethernet header | [`Malformed::TruncatedIp`] |
//! | IP version not the one of the ethertype | [`Malformed::BadIpVersion`] |
//! | IPv4 IHL below 5, or the header longer than the frame | [`Malformed::BadIpHeaderLen`] |
//! | IPv4 total length beyond the frame or below the header; IPv6 payload beyond the frame | [`Malformed::BadIpTotalLen`] |
//! | IPv6 extension chain truncated, longer than 8, misordered (see [`walk_ext_headers`]) | [`Malformed::BadIpv6ExtHeaders`] |
//! | non-first fragment (IPv4 offset ≠ 0, IPv6 fragment header offset ≠ 0) | [`Classification::Fragment`] |
//! | TCP/UDP/ICMP header shorter than 20/8/4 bytes | [`Malformed::TruncatedL4`] |
//! | TCP data offset below 5 or beyond the IP payload | [`Malformed::BadTcpDataOffset`] |
//! | UDP length ≠ IP payload (for a first fragment: below the fragment's payload) | [`Malformed::BadUdpLen`] |
//!
//! Ethernet padding after the IP packet is allowed; [`Offsets::l3_len`] is the IP length.
//! A first fragment (offset 0, more-fragments set) still has its ports and classifies as
//! a flow; only its UDP length check is relaxed. Packets whose offsets do not fit in 16
//! bits (only possible in frames over 64 KiB) are [`Malformed::BadIpTotalLen`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::ipv6::walk_ext_headers;
use crate::flow::{Classification, FlowKey, Malformed, Offsets, Proto, TcpFlags};

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;

/// Fragment state of an IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Frag {
    /// Not a fragment.
    None,
    /// The first fragment: offset 0, more fragments follow. Carries the L4 header.
    First,
    /// A later fragment: no L4 header.
    Later,
}

/// The IP layer of a frame, as found by [`layer3`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct IpLayer {
    /// Whether this is IPv6.
    pub(crate) v6: bool,
    /// Offset of the IP header in the frame.
    pub(crate) l3: usize,
    /// Offset of the upper-layer header (after options or extension headers).
    pub(crate) l4: usize,
    /// End of the IP packet in the frame (Ethernet padding excluded).
    pub(crate) end: usize,
    /// The upper-layer protocol.
    pub(crate) proto: u8,
    /// Fragment state.
    pub(crate) frag: Frag,
    /// Source address.
    pub(crate) src: IpAddr,
    /// Destination address.
    pub(crate) dst: IpAddr,
}

/// What sits above Ethernet.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Layer3 {
    /// ARP, with its target protocol address.
    Arp(Ipv4Addr),
    /// An IP packet.
    Ip(IpLayer),
    /// Another ethertype.
    Other(u16),
}

#[inline(always)]
const fn be16(hi: u8, lo: u8) -> u16 {
    u16::from_be_bytes([hi, lo])
}

/// Walk Ethernet, the VLAN tag and the IP header (with IPv6 extension headers).
#[inline(always)]
pub(crate) fn layer3(frame: &[u8]) -> Result<Layer3, Malformed> {
    let Some((eth, after_eth)) = frame.split_first_chunk::<14>() else {
        return Err(Malformed::TruncatedEthernet);
    };
    let mut ethertype = be16(eth[12], eth[13]);
    let mut l3 = 14;
    let mut rest = after_eth;
    if ethertype == ETHERTYPE_VLAN {
        let Some((tag, after_tag)) = after_eth.split_first_chunk::<4>() else {
            return Err(Malformed::TruncatedEthernet);
        };
        ethertype = be16(tag[2], tag[3]);
        l3 = 18;
        rest = after_tag;
    }
    match ethertype {
        ETHERTYPE_IPV4 => ipv4(rest, l3).map(Layer3::Ip),
        ETHERTYPE_IPV6 => ipv6(rest, l3).map(Layer3::Ip),
        ETHERTYPE_ARP => arp(rest).map(Layer3::Arp),
        other => Ok(Layer3::Other(other)),
    }
}

#[inline(always)]
fn arp(pkt: &[u8]) -> Result<Ipv4Addr, Malformed> {
    let Some(a) = pkt.first_chunk::<28>() else {
        return Err(Malformed::BadArp);
    };
    // Ethernet (1), IPv4, lengths 6 and 4, request (1) or reply (2).
    if a[..6] != [0, 1, 8, 0, 6, 4] || a[6] != 0 || !matches!(a[7], 1 | 2) {
        return Err(Malformed::BadArp);
    }
    Ok(Ipv4Addr::new(a[24], a[25], a[26], a[27]))
}

#[inline(always)]
fn ipv4(pkt: &[u8], l3: usize) -> Result<IpLayer, Malformed> {
    let Some(h) = pkt.first_chunk::<20>() else {
        return Err(Malformed::TruncatedIp);
    };
    if h[0] >> 4 != 4 {
        return Err(Malformed::BadIpVersion);
    }
    let ihl = usize::from(h[0] & 0x0f) * 4;
    if ihl < 20 || ihl > pkt.len() {
        return Err(Malformed::BadIpHeaderLen);
    }
    let total = usize::from(be16(h[2], h[3]));
    if total > pkt.len() || total < ihl {
        return Err(Malformed::BadIpTotalLen);
    }
    let flags_offset = be16(h[6], h[7]);
    let frag = if flags_offset & 0x1fff != 0 {
        Frag::Later
    } else if flags_offset & 0x2000 != 0 {
        Frag::First
    } else {
        Frag::None
    };
    Ok(IpLayer {
        v6: false,
        l3,
        l4: l3 + ihl,
        end: l3 + total,
        proto: h[9],
        frag,
        src: IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15])),
        dst: IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19])),
    })
}

#[inline(always)]
fn ipv6(pkt: &[u8], l3: usize) -> Result<IpLayer, Malformed> {
    let Some((h, after)) = pkt.split_first_chunk::<40>() else {
        return Err(Malformed::TruncatedIp);
    };
    if h[0] >> 4 != 6 {
        return Err(Malformed::BadIpVersion);
    }
    let payload_len = usize::from(be16(h[4], h[5]));
    let Some(payload) = after.get(..payload_len) else {
        return Err(Malformed::BadIpTotalLen);
    };
    let (upper, ext_len, frag) = if matches!(h[6], 0 | 43 | 44 | 60) {
        let chain = walk_ext_headers(h[6], payload)?;
        let frag = match chain.fragment {
            Some(f) if f.frag_offset != 0 => Frag::Later,
            Some(f) if f.more_frags => Frag::First,
            _ => Frag::None,
        };
        (chain.upper, chain.len, frag)
    } else {
        (h[6], 0, Frag::None)
    };
    let mut src = [0u8; 16];
    src.copy_from_slice(&h[8..24]);
    let mut dst = [0u8; 16];
    dst.copy_from_slice(&h[24..40]);
    Ok(IpLayer {
        v6: true,
        l3,
        l4: l3 + 40 + ext_len,
        end: l3 + 40 + payload_len,
        proto: upper,
        frag,
        src: IpAddr::V6(Ipv6Addr::from(src)),
        dst: IpAddr::V6(Ipv6Addr::from(dst)),
    })
}

/// Classify an Ethernet frame in one pass. Never panics, never allocates, on any input.
///
/// See the [module docs](self) for the rules. [`crate::flow::classify`] forwards here.
#[inline]
pub fn classify(frame: &[u8]) -> Classification {
    match layer3(frame) {
        Ok(Layer3::Ip(ip)) => transport(frame, &ip),
        Ok(Layer3::Arp(target)) => Classification::Arp { target },
        Ok(Layer3::Other(ethertype)) => Classification::OtherEthertype(ethertype),
        Err(reason) => Classification::Malformed(reason),
    }
}

#[inline(always)]
fn transport(frame: &[u8], ip: &IpLayer) -> Classification {
    if ip.frag == Frag::Later {
        return Classification::Fragment;
    }
    let segment = frame.get(ip.l4..ip.end).unwrap_or_default();
    let (proto, sport, dport, flags) = match ip.proto {
        6 => {
            let Some(t) = segment.first_chunk::<20>() else {
                return Classification::Malformed(Malformed::TruncatedL4);
            };
            let data_offset = usize::from(t[12] >> 4) * 4;
            if data_offset < 20 || data_offset > segment.len() {
                return Classification::Malformed(Malformed::BadTcpDataOffset);
            }
            (
                Proto::Tcp,
                be16(t[0], t[1]),
                be16(t[2], t[3]),
                TcpFlags(t[13]),
            )
        }
        17 => {
            let Some(u) = segment.first_chunk::<8>() else {
                return Classification::Malformed(Malformed::TruncatedL4);
            };
            let udp_len = usize::from(be16(u[4], u[5]));
            let ok = match ip.frag {
                Frag::First => udp_len >= segment.len(),
                _ => udp_len == segment.len(),
            };
            if !ok {
                return Classification::Malformed(Malformed::BadUdpLen);
            }
            (Proto::Udp, be16(u[0], u[1]), be16(u[2], u[3]), TcpFlags(0))
        }
        p @ (1 | 58) if (p == 58) == ip.v6 => {
            return match segment.first_chunk::<4>() {
                Some(m) => Classification::Icmp {
                    dst: ip.dst,
                    icmp_type: m[0],
                },
                None => Classification::Malformed(Malformed::TruncatedL4),
            };
        }
        other => return Classification::OtherIp(other),
    };
    let (Ok(l3), Ok(l4), Ok(l3_len)) = (
        u16::try_from(ip.l3),
        u16::try_from(ip.l4),
        u16::try_from(ip.end - ip.l3),
    ) else {
        return Classification::Malformed(Malformed::BadIpTotalLen);
    };
    Classification::Flow {
        key: FlowKey {
            proto,
            src: ip.src,
            dst: ip.dst,
            sport,
            dport,
        },
        flags,
        offsets: Offsets { l3, l4, l3_len },
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    // IPv4 header 10.0.0.1 -> 10.0.0.2 with the given protocol, flags/offset and payload.
    fn ipv4_frame(proto: u8, flags_offset: u16, payload: &[u8]) -> Vec<u8> {
        let total = (20 + payload.len()) as u16;
        let mut p = vec![
            0x45, 0, 0, 0, 0, 1, 0, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p[6..8].copy_from_slice(&flags_offset.to_be_bytes());
        p.extend_from_slice(payload);
        eth(ETHERTYPE_IPV4, &p)
    }

    const UDP_1234_53: [u8; 10] = [0x04, 0xd2, 0x00, 0x35, 0x00, 0x0a, 0x00, 0x00, b'h', b'i'];

    #[test]
    fn udp_flow() {
        let f = ipv4_frame(17, 0x4000, &UDP_1234_53);
        let expected = Classification::Flow {
            key: FlowKey {
                proto: Proto::Udp,
                src: "10.0.0.1".parse().unwrap(),
                dst: "10.0.0.2".parse().unwrap(),
                sport: 1234,
                dport: 53,
            },
            flags: TcpFlags(0),
            offsets: Offsets {
                l3: 14,
                l4: 34,
                l3_len: 30,
            },
        };
        assert_eq!(classify(&f), expected);
        // Ethernet padding does not change anything.
        let mut padded = f.clone();
        padded.resize(60, 0);
        assert_eq!(classify(&padded), expected);
    }

    #[test]
    fn tcp_syn_flow() {
        let mut tcp = [0u8; 20];
        tcp[..4].copy_from_slice(&[0x9c, 0x40, 0x00, 0x50]);
        tcp[12] = 0x50;
        tcp[13] = TcpFlags::SYN;
        match classify(&ipv4_frame(6, 0, &tcp)) {
            Classification::Flow {
                key,
                flags,
                offsets,
            } => {
                assert_eq!((key.proto, key.sport, key.dport), (Proto::Tcp, 40000, 80));
                assert!(flags.is_syn_only());
                assert_eq!(
                    offsets,
                    Offsets {
                        l3: 14,
                        l4: 34,
                        l3_len: 40
                    }
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn fragments() {
        // A later fragment has no ports.
        assert_eq!(
            classify(&ipv4_frame(17, 0x2001, &[0; 8])),
            Classification::Fragment
        );
        assert_eq!(
            classify(&ipv4_frame(6, 0x0010, &[0; 3])),
            Classification::Fragment
        );
        // A first fragment does, and its UDP length covers the whole datagram.
        let mut first = UDP_1234_53;
        first[5] = 200;
        assert!(matches!(
            classify(&ipv4_frame(17, 0x2000, &first)),
            Classification::Flow { .. }
        ));
        // Without MF the same UDP length is a mismatch.
        assert_eq!(
            classify(&ipv4_frame(17, 0, &first)),
            Classification::Malformed(Malformed::BadUdpLen)
        );
    }

    #[test]
    fn icmp_and_others() {
        let echo = [8, 0, 0, 0, 0, 1, 0, 1];
        assert_eq!(
            classify(&ipv4_frame(1, 0, &echo)),
            Classification::Icmp {
                dst: "10.0.0.2".parse().unwrap(),
                icmp_type: 8
            }
        );
        assert_eq!(
            classify(&ipv4_frame(1, 0, &echo[..3])),
            Classification::Malformed(Malformed::TruncatedL4)
        );
        // ICMPv6's number inside IPv4 is just another protocol.
        assert_eq!(
            classify(&ipv4_frame(58, 0, &echo)),
            Classification::OtherIp(58)
        );
        assert_eq!(
            classify(&ipv4_frame(47, 0, &[0; 4])),
            Classification::OtherIp(47)
        );
        assert_eq!(
            classify(&eth(0x88cc, &[0; 46])),
            Classification::OtherEthertype(0x88cc)
        );
    }

    #[test]
    fn vlan() {
        let inner = ipv4_frame(17, 0, &UDP_1234_53);
        let mut tagged = inner[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x64]);
        tagged.extend_from_slice(&inner[12..]);
        match classify(&tagged) {
            Classification::Flow { offsets, .. } => {
                assert_eq!(
                    offsets,
                    Offsets {
                        l3: 18,
                        l4: 38,
                        l3_len: 30
                    }
                )
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            classify(&tagged[..17]),
            Classification::Malformed(Malformed::TruncatedEthernet)
        );
        // QinQ: the inner tag is not looked through.
        let mut qinq = tagged[..16].to_vec();
        qinq.extend_from_slice(&[0x81, 0x00, 0x00, 0x01]);
        qinq.extend_from_slice(&tagged[16..]);
        assert_eq!(classify(&qinq), Classification::OtherEthertype(0x8100));
    }

    #[test]
    fn arp_rules() {
        let mut arp = [0u8; 28];
        arp[..8].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        arp[24..].copy_from_slice(&[10, 0, 0, 9]);
        assert_eq!(
            classify(&eth(ETHERTYPE_ARP, &arp)),
            Classification::Arp {
                target: Ipv4Addr::new(10, 0, 0, 9)
            }
        );
        let bad = Classification::Malformed(Malformed::BadArp);
        assert_eq!(classify(&eth(ETHERTYPE_ARP, &arp[..27])), bad);
        let mut rarp_op = arp;
        rarp_op[7] = 3;
        assert_eq!(classify(&eth(ETHERTYPE_ARP, &rarp_op)), bad);
        let mut ieee = arp;
        ieee[1] = 6;
        assert_eq!(classify(&eth(ETHERTYPE_ARP, &ieee)), bad);
    }

    #[test]
    fn ip_header_reasons() {
        let ok = ipv4_frame(17, 0, &UDP_1234_53);
        let m = |f: &[u8]| match classify(f) {
            Classification::Malformed(r) => r,
            other => panic!("{other:?}"),
        };
        assert_eq!(m(&ok[..33]), Malformed::TruncatedIp);
        let mut v6 = ok.clone();
        v6[14] = 0x65;
        assert_eq!(m(&v6), Malformed::BadIpVersion);
        let mut ihl4 = ok.clone();
        ihl4[14] = 0x44;
        assert_eq!(m(&ihl4), Malformed::BadIpHeaderLen);
        let mut long_total = ok.clone();
        long_total[17] = 31;
        assert_eq!(m(&long_total), Malformed::BadIpTotalLen);
        let mut short_total = ok.clone();
        short_total[17] = 19;
        assert_eq!(m(&short_total), Malformed::BadIpTotalLen);
        let mut no_udp_room = ok.clone();
        no_udp_room[17] = 27;
        assert_eq!(m(&no_udp_room), Malformed::TruncatedL4);
    }

    #[test]
    fn empty_and_tiny() {
        for n in 0..14 {
            assert_eq!(
                classify(&[0x08; 14][..n]),
                Classification::Malformed(Malformed::TruncatedEthernet)
            );
        }
    }
}
