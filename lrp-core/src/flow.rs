//! Flow keys and one-pass frame classification (the first half of early demultiplexing).
//!
//! [`classify`] walks an Ethernet frame once — Ethernet (one 802.1Q tag), IPv4 or IPv6
//! (bounded extension-header walk), then the UDP or TCP ports — and returns a
//! [`Classification`]: either a [`FlowKey`] with the TCP flags the demux needs, or a
//! class for what has no ports (ARP, ICMP, non-first fragments, other protocols), or a
//! named [`Malformed`] reason. It verifies lengths but no checksums: checksum
//! verification is protocol work and is done lazily, by the receiver.

use std::net::IpAddr;

/// Transport protocol of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    /// TCP (IP protocol 6).
    Tcp,
    /// UDP (IP protocol 17).
    Udp,
}

impl Proto {
    /// The IP protocol number.
    pub const fn ip_number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
        }
    }
}

/// The 5-tuple of a frame as seen on the wire: `src` is the sender, `dst` the receiver.
///
/// For a frame arriving at a local endpoint, `dst`/`dport` are the local side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    /// Transport protocol.
    pub proto: Proto,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
}

impl FlowKey {
    /// The key of the opposite direction (source and destination swapped).
    pub const fn reversed(&self) -> FlowKey {
        FlowKey {
            proto: self.proto,
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
        }
    }
}

impl std::fmt::Display for Proto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

impl std::fmt::Display for FlowKey {
    /// `tcp 10.0.0.1:5000 -> 10.0.0.2:80` (IPv6 addresses in brackets).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let src = std::net::SocketAddr::new(self.src, self.sport);
        let dst = std::net::SocketAddr::new(self.dst, self.dport);
        write!(f, "{} {src} -> {dst}", self.proto)
    }
}

/// TCP flag bits as they appear in byte 13 of the TCP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// FIN
    pub const FIN: u8 = 0x01;
    /// SYN
    pub const SYN: u8 = 0x02;
    /// RST
    pub const RST: u8 = 0x04;
    /// PSH
    pub const PSH: u8 = 0x08;
    /// ACK
    pub const ACK: u8 = 0x10;
    /// URG
    pub const URG: u8 = 0x20;
    /// A connection request: SYN set, ACK clear.
    pub const fn is_syn_only(self) -> bool {
        self.0 & (Self::SYN | Self::ACK) == Self::SYN
    }
}

/// Where the layers of a classified frame start, so later stages need not re-parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Offsets {
    /// Offset of the IP header (after Ethernet and any VLAN tag).
    pub l3: u16,
    /// Offset of the transport header (after IPv4 options or IPv6 extension headers).
    pub l4: u16,
    /// Length of the IP packet per its header (frame may carry Ethernet padding beyond).
    pub l3_len: u16,
}

/// Result of [`classify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Classification {
    /// A UDP or TCP frame with ports: demultiplexed by its [`FlowKey`].
    Flow {
        /// The 5-tuple.
        key: FlowKey,
        /// TCP flags (zero for UDP).
        flags: TcpFlags,
        /// Layer offsets.
        offsets: Offsets,
    },
    /// ARP (request or reply) for IPv4 over Ethernet.
    Arp {
        /// The target protocol address (whom the request asks for / the reply is to).
        target: std::net::Ipv4Addr,
    },
    /// ICMPv4 or ICMPv6 (including NDP).
    Icmp {
        /// Destination address of the IP packet.
        dst: IpAddr,
        /// ICMP type byte.
        icmp_type: u8,
    },
    /// A non-first IP fragment: has no transport header.
    Fragment,
    /// An IP protocol other than UDP/TCP/ICMP (the number is given).
    OtherIp(u8),
    /// An ethertype other than IPv4/IPv6/ARP (the ethertype is given).
    OtherEthertype(u16),
    /// The frame is malformed; the reason is named.
    Malformed(Malformed),
}

/// Why a frame was classified as malformed. Each reason is counted separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Malformed {
    /// Shorter than an Ethernet header (or VLAN tag).
    TruncatedEthernet,
    /// Shorter than the fixed IP header.
    TruncatedIp,
    /// IPv4 IHL below 5 or header longer than the frame.
    BadIpHeaderLen,
    /// IP version field does not match the ethertype.
    BadIpVersion,
    /// IP total/payload length larger than the frame, or smaller than the header.
    BadIpTotalLen,
    /// IPv6 extension header chain too long or truncated.
    BadIpv6ExtHeaders,
    /// Transport header truncated.
    TruncatedL4,
    /// TCP data offset below 5 or beyond the packet.
    BadTcpDataOffset,
    /// UDP length field does not match the IP payload.
    BadUdpLen,
    /// ARP packet truncated or of an unsupported hardware/protocol type.
    BadArp,
    /// A checksum did not verify (reported by lazy verification, not by [`classify`]).
    BadChecksum,
}

impl Malformed {
    /// Every reason, in a stable order (for counters indexed by reason).
    pub const ALL: [Malformed; 11] = [
        Malformed::TruncatedEthernet,
        Malformed::TruncatedIp,
        Malformed::BadIpHeaderLen,
        Malformed::BadIpVersion,
        Malformed::BadIpTotalLen,
        Malformed::BadIpv6ExtHeaders,
        Malformed::TruncatedL4,
        Malformed::BadTcpDataOffset,
        Malformed::BadUdpLen,
        Malformed::BadArp,
        Malformed::BadChecksum,
    ];
    /// Index of this reason in [`Malformed::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// Classify an Ethernet frame in one pass. Never panics, on any input.
pub fn classify(frame: &[u8]) -> Classification {
    crate::wire::classify::classify(frame)
}

impl Malformed {
    /// A short human-readable description of the reason.
    pub const fn as_str(self) -> &'static str {
        match self {
            Malformed::TruncatedEthernet => "truncated Ethernet header",
            Malformed::TruncatedIp => "truncated IP header",
            Malformed::BadIpHeaderLen => "bad IPv4 header length",
            Malformed::BadIpVersion => "IP version does not match the ethertype",
            Malformed::BadIpTotalLen => "IP length inconsistent with the frame",
            Malformed::BadIpv6ExtHeaders => "bad IPv6 extension header chain",
            Malformed::TruncatedL4 => "truncated transport header",
            Malformed::BadTcpDataOffset => "bad TCP data offset",
            Malformed::BadUdpLen => "UDP length does not match the IP payload",
            Malformed::BadArp => "bad ARP packet",
            Malformed::BadChecksum => "bad checksum",
        }
    }
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for Malformed {}
