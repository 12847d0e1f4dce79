//! Traffic generation for experiments: frame templates with spoofable sources, an
//! open-loop pacer, and the guard that keeps a generator inside a network namespace.
//!
//! The `lrp-gen` binary sends through lrp's own AF_XDP transmit path
//! ([`Nic::transmit`](lrp_net::Nic::transmit)), which outruns the kernel's UDP sender on
//! veth. Each frame is a copy of one template whose source address and port are then
//! rewritten in place with lrp-core's incremental checksum update
//! ([`lrp_core::wire::nat::set_endpoint`]): no checksum pass over the payload per frame.
//!
//! Generators are bounded (a frame count or a duration, at most [`MAX_SECONDS`]) and
//! refuse to run in the host's network namespace ([`require_private_netns`]): they exist to
//! load the test networks an experiment builds, never a real network.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use lrp_core::flow::{classify, Classification, Offsets, Proto};
use lrp_core::wire::nat::{self, Side};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpProtocol, Ipv4Cidr,
    Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber, UdpPacket, UdpRepr,
};

/// The longest run a generator accepts.
pub const MAX_SECONDS: u64 = 600;

/// What a template frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A UDP datagram with this many payload bytes.
    Udp {
        /// Payload bytes.
        payload: usize,
    },
    /// A TCP connection request (SYN with an MSS option), as a SYN flood sends.
    Syn,
}

/// One frame to copy, with where its source lives.
#[derive(Debug, Clone)]
pub struct Template {
    bytes: Vec<u8>,
    offsets: Offsets,
    proto: Proto,
}

impl Template {
    /// A frame from `src_mac`/`src` to `dst_mac`/`dst` with valid IPv4 and UDP/TCP
    /// checksums.
    pub fn new(
        kind: Kind,
        src_mac: EthernetAddress,
        dst_mac: EthernetAddress,
        src: SocketAddrV4,
        dst: SocketAddrV4,
    ) -> Template {
        let caps = ChecksumCapabilities::default();
        let payload = match kind {
            Kind::Udp { payload } => vec![0x5a; payload],
            Kind::Syn => Vec::new(),
        };
        let tcp = TcpRepr {
            src_port: src.port(),
            dst_port: dst.port(),
            control: TcpControl::Syn,
            seq_number: TcpSeqNumber(0x1234_5678),
            ack_number: None,
            window_len: 64240,
            window_scale: None,
            max_seg_size: Some(1460),
            sack_permitted: false,
            sack_ranges: [None; 3],
            timestamp: None,
            payload: &[],
        };
        let udp = UdpRepr {
            src_port: src.port(),
            dst_port: dst.port(),
        };
        let (proto, l4_len) = match kind {
            Kind::Udp { .. } => (Proto::Udp, udp.header_len() + payload.len()),
            Kind::Syn => (Proto::Tcp, tcp.buffer_len()),
        };
        let ip = Ipv4Repr {
            src_addr: *src.ip(),
            dst_addr: *dst.ip(),
            next_header: match proto {
                Proto::Udp => IpProtocol::Udp,
                Proto::Tcp => IpProtocol::Tcp,
            },
            payload_len: l4_len,
            hop_limit: 64,
        };
        let eth = EthernetRepr {
            src_addr: src_mac,
            dst_addr: dst_mac,
            ethertype: EthernetProtocol::Ipv4,
        };
        let mut bytes = vec![0u8; eth.buffer_len() + ip.buffer_len() + l4_len];
        let mut frame = EthernetFrame::new_unchecked(&mut bytes[..]);
        eth.emit(&mut frame);
        let mut packet = Ipv4Packet::new_unchecked(frame.payload_mut());
        ip.emit(&mut packet, &caps);
        let (s, d) = (ip.src_addr.into(), ip.dst_addr.into());
        match kind {
            Kind::Udp { .. } => udp.emit(
                &mut UdpPacket::new_unchecked(packet.payload_mut()),
                &s,
                &d,
                payload.len(),
                |b| b.copy_from_slice(&payload),
                &caps,
            ),
            Kind::Syn => tcp.emit(
                &mut TcpPacket::new_unchecked(packet.payload_mut()),
                &s,
                &d,
                &caps,
            ),
        }
        let Classification::Flow { offsets, .. } = classify(&bytes) else {
            unreachable!("a UDP or TCP frame built here classifies as a flow");
        };
        Template {
            bytes,
            offsets,
            proto,
        }
    }

    /// The template's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Write the template into `out` (a frame buffer of the same length) with source
    /// `src`, fixing the checksums incrementally.
    pub fn write(&self, out: &mut [u8], src: SocketAddrV4) -> Result<(), nat::RewriteError> {
        out.copy_from_slice(&self.bytes);
        nat::set_endpoint(
            out,
            &self.offsets,
            self.proto,
            Side::Src,
            SocketAddr::V4(src),
        )?;
        Ok(())
    }
}

/// Source addresses and ports, walked in a fixed pseudo-random order: `addrs` hosts of a
/// subnet (network and broadcast addresses excluded for prefixes up to /30) and a port
/// range.
#[derive(Debug, Clone)]
pub struct Sources {
    base: u32,
    hosts: u32,
    ports: (u16, u16),
    state: u64,
}

impl Sources {
    /// Sources in `net`, ports `ports.0..=ports.1`. `seed` fixes the order.
    pub fn new(net: Ipv4Cidr, ports: (u16, u16), seed: u64) -> Result<Sources, String> {
        if ports.0 == 0 || ports.0 > ports.1 {
            return Err(format!("bad source port range {}-{}", ports.0, ports.1));
        }
        let prefix = u32::from(net.prefix_len());
        let size = if prefix >= 32 {
            1u64
        } else {
            1u64 << (32 - prefix)
        };
        let network = u32::from(net.network().address());
        let (base, hosts) = if size > 2 {
            (network + 1, (size - 2) as u32)
        } else {
            (network, size as u32)
        };
        Ok(Sources {
            base,
            hosts,
            ports,
            state: seed,
        })
    }

    /// The number of distinct addresses.
    pub fn addresses(&self) -> u32 {
        self.hosts
    }

    /// The next source (SplitMix64 over address and port).
    pub fn next_source(&mut self) -> SocketAddrV4 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let host = (z as u32) % self.hosts;
        let span = u32::from(self.ports.1 - self.ports.0) + 1;
        let port = self.ports.0 + ((z >> 32) as u32 % span) as u16;
        SocketAddrV4::new(Ipv4Addr::from(self.base + host), port)
    }
}

/// Open-loop pacing: how many frames are due at a moment, for a fixed rate from a start.
#[derive(Debug, Clone, Copy)]
pub struct Pacer {
    start: Instant,
    rate: f64,
}

impl Pacer {
    /// A pacer for `rate` frames per second (0: as fast as possible), starting now.
    pub fn new(rate: u64) -> Pacer {
        Pacer {
            start: Instant::now(),
            rate: rate as f64,
        }
    }

    /// Frames due by `now` given `sent` so far, at most `burst` (0 if none is due yet).
    pub fn due(&self, now: Instant, sent: u64, burst: u64) -> u64 {
        if self.rate == 0.0 {
            return burst;
        }
        let target = (now.duration_since(self.start).as_secs_f64() * self.rate) as u64;
        target.saturating_sub(sent).min(burst)
    }

    /// How long to wait until the next frame is due.
    pub fn until_next(&self, now: Instant, sent: u64) -> Duration {
        if self.rate == 0.0 {
            return Duration::ZERO;
        }
        let at = Duration::from_secs_f64((sent + 1) as f64 / self.rate);
        (self.start + at).saturating_duration_since(now)
    }
}

/// The name of the named network namespace (`ip netns add NAME`, bind-mounted under
/// `/run/netns`) this process runs in; an error if it runs in any other namespace, the
/// host's included. A generator must only load a test network, inside a namespace an
/// experiment made (`ip netns exec NS lrp-gen ...`).
pub fn require_private_netns() -> Result<String, String> {
    use std::os::unix::fs::MetadataExt;
    let own =
        std::fs::metadata("/proc/self/ns/net").map_err(|e| format!("/proc/self/ns/net: {e}"))?;
    let refuse = || {
        "refusing to generate traffic outside a named test network namespace: run it as \
         `ip netns exec NS lrp-gen ...` in a namespace made with `ip netns add`"
            .to_string()
    };
    let Ok(dir) = std::fs::read_dir("/run/netns") else {
        return Err(refuse());
    };
    for entry in dir.flatten() {
        if let Ok(m) = entry.metadata() {
            if (m.dev(), m.ino()) == (own.dev(), own.ino()) {
                return Ok(entry.file_name().to_string_lossy().into_owned());
            }
        }
    }
    Err(refuse())
}

/// Whether `addr` is IPv4 (the generators are IPv4-only).
pub fn ipv4(addr: SocketAddr) -> Result<SocketAddrV4, String> {
    match addr {
        SocketAddr::V4(a) => Ok(a),
        SocketAddr::V6(_) => Err(format!("{addr}: the generators are IPv4-only")),
    }
}

/// The address of a [`SocketAddrV4`] as an [`IpAddr`].
pub fn ip_of(a: SocketAddrV4) -> IpAddr {
    IpAddr::V4(*a.ip())
}

#[cfg(test)]
mod tests {
    use super::*;
    use lrp_core::wire::verify;

    fn mac(last: u8) -> EthernetAddress {
        EthernetAddress([2, 0, 0, 0, 0, last])
    }

    #[test]
    fn templates_rewritten_per_source_keep_valid_checksums() {
        let dst: SocketAddrV4 = "10.0.0.2:80".parse().unwrap();
        for kind in [
            Kind::Syn,
            Kind::Udp { payload: 18 },
            Kind::Udp { payload: 1400 },
        ] {
            let t = Template::new(kind, mac(1), mac(2), "10.0.0.1:1000".parse().unwrap(), dst);
            let mut sources =
                Sources::new("10.200.0.0/16".parse().unwrap(), (1024, 65535), 7).unwrap();
            let mut out = vec![0u8; t.bytes().len()];
            for _ in 0..1000 {
                let src = sources.next_source();
                t.write(&mut out, src).unwrap();
                let class = classify(&out);
                let Classification::Flow { key, flags, .. } = class else {
                    panic!("{kind:?}: not a flow: {class:?}");
                };
                assert_eq!((key.src, key.sport), (ip_of(src), src.port()));
                assert_eq!((key.dst, key.dport), (ip_of(dst), 80));
                assert_eq!(flags.is_syn_only(), kind == Kind::Syn);
                verify(&out, &class).unwrap_or_else(|e| panic!("{kind:?}: {e:?}"));
            }
        }
    }

    #[test]
    fn sources_stay_inside_the_subnet_and_port_range() {
        let mut s = Sources::new("10.9.8.0/24".parse().unwrap(), (2000, 2009), 1).unwrap();
        assert_eq!(s.addresses(), 254);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..20_000 {
            let a = s.next_source();
            let o = a.ip().octets();
            assert_eq!(&o[..3], &[10, 9, 8]);
            assert!((1..=254).contains(&o[3]), "{a}");
            assert!((2000..=2009).contains(&a.port()));
            seen.insert(*a.ip());
        }
        assert_eq!(seen.len(), 254, "every host is used");
        assert!(Sources::new("10.0.0.0/8".parse().unwrap(), (0, 10), 1).is_err());
        assert!(Sources::new("10.0.0.0/8".parse().unwrap(), (10, 9), 1).is_err());
        let one = Sources::new("10.0.0.7/32".parse().unwrap(), (1, 1), 1).unwrap();
        assert_eq!(one.addresses(), 1);
    }

    #[test]
    fn pacer_releases_frames_at_the_rate() {
        let p = Pacer::new(1000);
        let t = p.start;
        assert_eq!(p.due(t, 0, 64), 0);
        assert_eq!(p.due(t + Duration::from_millis(10), 0, 64), 10);
        assert_eq!(p.due(t + Duration::from_millis(10), 4, 64), 6);
        assert_eq!(p.due(t + Duration::from_secs(1), 0, 64), 64);
        assert_eq!(p.until_next(t, 0), Duration::from_millis(1));
        assert_eq!(Pacer::new(0).due(t, 5, 32), 32);
    }
}
