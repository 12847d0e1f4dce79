//! The simulated NIC: an in-memory wire with the same rings and the same frame pool as the
//! AF_XDP backend, for tests and in-memory benchmarks without privileges.
//!
//! [`Nic::sim`](crate::Nic::sim) returns the [`Nic`](crate::Nic) and a [`SimPeer`], the
//! other end of the wire. The simulated NIC plays the kernel's part:
//!
//! * **RX**: [`SimPeer::inject`] takes a chunk from the fill ring (which the NIC's poll
//!   step keeps full), copies the frame into it 256 bytes in (the kernel's XDP headroom,
//!   plus the pool's headroom) and puts the descriptor on an RX ring. In SOFT-LRP and
//!   EAGER that is the one shared RX ring. In NI-LRP the injection first does what the XDP
//!   program does: classify the frame, look it up in the NIC's copy of the demux tables,
//!   and either drop it at the channel's closed gate (before any copy), copy it into the
//!   channel's own ring (dropping it there if the ring is full), pass it to the host
//!   kernel, or drop it. A frame that finds no posted buffer, no room in the shared ring,
//!   or does not fit in a chunk is dropped and counted, as a NIC would.
//! * **TX**: transmitted frames wait in the TX ring until the peer takes them
//!   ([`SimPeer::take_tx`], [`SimPeer::drain_tx`]); their chunks then go to the completion
//!   ring, from which the poll step returns them to the pool.
//! * **Host kernel**: frames handed to the kernel (`XDP_PASS`, or the default action
//!   `Pass` in the software paths) are counted and copied to a bounded log
//!   ([`SimPeer::take_kernel`]).
//!
//! The gate of an NI-LRP channel is re-evaluated on every frame put on its ring and taken
//! off it — as if userspace watched the ring continuously. The AF_XDP backend observes
//! the ring from the poll step and from receives, so there a few frames may still reach a
//! full ring before the gate closes; here the gate closes at exactly 3/4 of the ring.
//!
//! [`TrafficGen`] injects seeded, reproducible traffic, by count: no sleeping, so a test
//! decides the interleaving of arrivals and service (an "offered rate" is frames per
//! tick against the receivers' work per tick).

mod backend;
#[cfg(any(test, feature = "testing"))]
pub mod build;

use std::net::SocketAddrV4;
use std::sync::Arc;

use smoltcp::wire::EthernetAddress;

use crate::backend::{Backend, BackendStats};
use crate::config::NicConfig;
pub(crate) use backend::SimBackend;
pub use backend::RX_HEADROOM;

/// The simulated NIC's MAC address unless [`SimConfig::mac`] says otherwise.
pub const NIC_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x02]);
/// The MAC address of the [`SimPeer`] at the far end of the wire.
pub const PEER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x01]);

/// Configuration of a simulated NIC: the [`NicConfig`] of the NIC under test plus what
/// the simulated wire keeps.
///
/// ```
/// use lrp_net::sim::SimConfig;
/// use lrp_net::{Mode, NicConfig};
///
/// let sim = SimConfig::new(NicConfig::default().mode(Mode::NiLrp)).kernel_log(16);
/// assert_eq!(sim.nic.mode, Mode::NiLrp);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SimConfig {
    /// The configuration of the NIC under test.
    pub nic: NicConfig,
    /// How many frames passed to the host kernel to keep (see
    /// [`kernel_log`](Self::kernel_log)).
    pub kernel_log: usize,
    /// The simulated interface's MAC address ([`Nic::mac`](crate::Nic::mac)).
    pub mac: EthernetAddress,
    /// The simulated interface's MTU ([`Nic::mtu`](crate::Nic::mtu)).
    pub mtu: u32,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig::new(NicConfig::default())
    }
}

impl SimConfig {
    /// A simulated NIC configured like `nic`; keeps the last 1024 frames passed to the
    /// host kernel.
    /// The interface has MAC [`NIC_MAC`] and MTU 1500.
    pub fn new(nic: NicConfig) -> SimConfig {
        SimConfig {
            nic,
            kernel_log: 1024,
            mac: NIC_MAC,
            mtu: 1500,
        }
    }

    /// How many frames passed to the host kernel to keep for [`SimPeer::take_kernel`]
    /// (the oldest are forgotten first; all are counted).
    pub fn kernel_log(mut self, frames: usize) -> Self {
        self.kernel_log = frames;
        self
    }

    /// The simulated interface's MAC address.
    pub fn mac(mut self, mac: EthernetAddress) -> Self {
        self.mac = mac;
        self
    }

    /// The simulated interface's MTU.
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = mtu;
        self
    }
}

/// The far end of the simulated wire: injects frames into the NIC and captures what it
/// transmits or hands to the host kernel. Cloneable; every clone drives the same wire.
///
/// ```
/// use lrp_net::sim::SimConfig;
/// use lrp_net::{Nic, NicConfig};
///
/// let (nic, peer) = Nic::sim(SimConfig::new(NicConfig::default().frame_count(64)))?;
/// // Nothing listens on port 1: the default action passes it to the host kernel.
/// assert!(peer.send_udp("10.0.0.1:9".parse()?, "10.0.0.2:1".parse()?, b""));
/// nic.poll_rx(64);
/// assert_eq!(peer.take_kernel().len(), 1);
/// assert_eq!(peer.stats().rx_offered, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct SimPeer {
    sim: Arc<SimBackend>,
    /// The NIC's MAC address: the destination of what the peer sends.
    nic_mac: EthernetAddress,
}

impl std::fmt::Debug for SimPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimPeer")
            .field("stats", &self.stats())
            .finish()
    }
}

impl SimPeer {
    pub(crate) fn new(sim: Arc<SimBackend>, nic_mac: EthernetAddress) -> SimPeer {
        SimPeer { sim, nic_mac }
    }

    /// Put one frame on the wire. Returns whether the NIC accepted it: `true` if it was
    /// written into an RX ring (or, in NI-LRP, passed to the host kernel by the XDP
    /// program); `false` if the NIC dropped it — no posted buffer, a full ring, a closed
    /// gate, too large, or dropped by the XDP program — which [`stats`](Self::stats) and
    /// the channel's statistics count.
    pub fn inject(&self, frame: &[u8]) -> bool {
        self.sim.inject(frame)
    }

    /// Send a UDP datagram from `src` to `dst` over the wire, as a peer host would: an
    /// Ethernet frame from [`PEER_MAC`] to the NIC's MAC with correct IPv4 and UDP
    /// checksums. Returns whether the NIC took it (see [`inject`](Self::inject)).
    pub fn send_udp(&self, src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> bool {
        self.inject(&self.udp_frame(src, dst, payload))
    }

    /// The frame [`send_udp`](Self::send_udp) sends, to inject it many times (a flood)
    /// without building it each time.
    pub fn udp_frame(&self, src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
        use smoltcp::phy::ChecksumCapabilities;
        use smoltcp::wire::{
            EthernetFrame, EthernetProtocol, EthernetRepr, IpProtocol, Ipv4Packet, Ipv4Repr,
            UdpPacket, UdpRepr,
        };
        let caps = ChecksumCapabilities::default();
        let udp = UdpRepr {
            src_port: src.port(),
            dst_port: dst.port(),
        };
        let ip = Ipv4Repr {
            src_addr: *src.ip(),
            dst_addr: *dst.ip(),
            next_header: IpProtocol::Udp,
            payload_len: udp.header_len() + payload.len(),
            hop_limit: 64,
        };
        let eth = EthernetRepr {
            src_addr: PEER_MAC,
            dst_addr: self.nic_mac,
            ethertype: EthernetProtocol::Ipv4,
        };
        let mut buf = vec![0u8; eth.buffer_len() + ip.buffer_len() + ip.payload_len];
        let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
        eth.emit(&mut frame);
        let mut packet = Ipv4Packet::new_unchecked(frame.payload_mut());
        ip.emit(&mut packet, &caps);
        udp.emit(
            &mut UdpPacket::new_unchecked(packet.payload_mut()),
            &ip.src_addr.into(),
            &ip.dst_addr.into(),
            payload.len(),
            |b| b.copy_from_slice(payload),
            &caps,
        );
        buf
    }

    /// Take every frame waiting in the TX ring (up to the room in the completion ring),
    /// in transmission order.
    pub fn take_tx(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        self.sim.drain_tx(|f| out.push(f.to_vec()));
        out
    }

    /// Hand every frame waiting in the TX ring (up to the room in the completion ring) to
    /// `f`, without copying. Returns how many.
    pub fn drain_tx(&self, f: impl FnMut(&[u8])) -> usize {
        self.sim.drain_tx(f)
    }

    /// Frames waiting in the TX ring.
    pub fn tx_pending(&self) -> usize {
        self.sim.tx.len()
    }

    /// Take the log of frames handed to the host kernel (the most recent, up to
    /// [`SimConfig::kernel_log`]; [`BackendStats::to_kernel`] counts them all).
    pub fn take_kernel(&self) -> Vec<Vec<u8>> {
        let mut log = self.sim.kernel.lock().unwrap_or_else(|e| e.into_inner());
        log.drain(..).collect()
    }

    /// The simulated NIC's counters.
    pub fn stats(&self) -> BackendStats {
        self.sim.stats()
    }
}

/// A small, fast, seeded pseudo-random generator (SplitMix64) for reproducible traffic.
///
/// ```
/// use lrp_net::sim::SimRng;
/// let mut a = SimRng::new(7);
/// let mut b = SimRng::new(7);
/// assert_eq!(a.next_u64(), b.next_u64());
/// assert!(a.below(10) < 10);
/// ```
#[derive(Debug, Clone)]
pub struct SimRng {
    state: u64,
}

impl SimRng {
    /// A generator with the given seed.
    pub fn new(seed: u64) -> SimRng {
        SimRng { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`0` if `n` is 0), without modulo bias worth noticing
    /// (multiply-shift).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// `true` with probability `p` (never for `p <= 0`, always for `p >= 1`).
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

/// What a [`TrafficGen`] offered and the NIC accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GenReport {
    /// Frames injected.
    pub offered: u64,
    /// Frames the NIC accepted ([`SimPeer::inject`] returned `true`).
    pub accepted: u64,
}

/// Seeded traffic from a closure, driven by count. `make(rng, seq, buf)` writes frame
/// number `seq` into `buf` (cleared before each call).
///
/// ```
/// use lrp_net::sim::{SimConfig, TrafficGen};
/// use lrp_net::{Nic, NicConfig, Proto, Rule};
/// use std::net::SocketAddrV4;
///
/// let (nic, peer) = Nic::sim(SimConfig::new(NicConfig::default().frame_count(512)))?;
/// let ch = nic.channel(Rule::listener(Proto::Udp, None, 9000), 1024)?;
/// // 4 ticks of 50 frames from random source ports; the receiver drains between ticks.
/// let wire = peer.clone();
/// let mut gen = TrafficGen::new(42, move |rng, _seq, buf| {
///     let src = SocketAddrV4::new([10, 0, 0, 1].into(), 1024 + rng.below(1000) as u16);
///     buf.extend_from_slice(&wire.udp_frame(src, "10.0.0.2:9000".parse().unwrap(), b"x"));
/// });
/// let mut got = Vec::new();
/// let report = gen.run(&peer, 4, 50, |_tick| {
///     while ch.try_recv_batch(64, &mut got) > 0 {}
/// });
/// assert_eq!(report.offered, 200);
/// assert_eq!(got.len() as u64, report.accepted);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct TrafficGen<F> {
    rng: SimRng,
    make: F,
    buf: Vec<u8>,
    seq: u64,
    total: GenReport,
}

impl<F> std::fmt::Debug for TrafficGen<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrafficGen")
            .field("seq", &self.seq)
            .field("total", &self.total)
            .finish()
    }
}

impl<F: FnMut(&mut SimRng, u64, &mut Vec<u8>)> TrafficGen<F> {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64, make: F) -> TrafficGen<F> {
        TrafficGen {
            rng: SimRng::new(seed),
            make,
            buf: Vec::new(),
            seq: 0,
            total: GenReport::default(),
        }
    }

    /// Inject the next `count` frames back to back.
    pub fn inject(&mut self, peer: &SimPeer, count: u64) -> GenReport {
        let mut report = GenReport::default();
        for _ in 0..count {
            self.buf.clear();
            (self.make)(&mut self.rng, self.seq, &mut self.buf);
            self.seq += 1;
            report.offered += 1;
            if peer.inject(&self.buf) {
                report.accepted += 1;
            }
        }
        self.total.offered += report.offered;
        self.total.accepted += report.accepted;
        report
    }

    /// Offer `per_tick` frames per tick for `ticks` ticks, calling `between(tick)` after
    /// each tick (where the test lets receivers and the poll step do their share of
    /// work). The offered load relative to that work is the overload factor.
    pub fn run(
        &mut self,
        peer: &SimPeer,
        ticks: u64,
        per_tick: u64,
        mut between: impl FnMut(u64),
    ) -> GenReport {
        let mut report = GenReport::default();
        for tick in 0..ticks {
            let r = self.inject(peer, per_tick);
            report.offered += r.offered;
            report.accepted += r.accepted;
            between(tick);
        }
        report
    }

    /// Everything offered and accepted since the generator was made.
    pub fn total(&self) -> GenReport {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Error, Mode, Nic, Rule};
    use lrp_core::demux::DefaultAction;
    use lrp_core::flow::Proto;

    fn small(mode: Mode) -> NicConfig {
        NicConfig::default()
            .frame_count(64)
            .fill_ring(16)
            .rx_ring(8)
            .tx_ring(8)
            .completion_ring(8)
            .mode(mode)
    }

    fn udp(dport: u16) -> Vec<u8> {
        build::udp_v4(
            SocketAddrV4::new([10, 0, 0, 1].into(), 1000),
            SocketAddrV4::new([10, 0, 0, 2].into(), dport),
            b"payload",
        )
    }

    #[test]
    fn fill_ring_is_posted_and_received_data_sits_after_headroom() {
        let (nic, peer) = Nic::sim(SimConfig::new(small(Mode::SoftLrp).headroom(64))).unwrap();
        let c = nic.census();
        assert_eq!((c.fill, c.free), (16, 48));
        let ch = nic.channel(Rule::listener(Proto::Udp, None, 7), 8).unwrap();
        assert!(peer.inject(&udp(7)));
        let f = ch.try_recv().unwrap();
        assert_eq!(f.headroom(), (RX_HEADROOM + 64) as usize);
        assert_eq!(&f[..], &udp(7)[..]);
        assert!(nic.census().is_conserved());
    }

    #[test]
    fn nic_drops_are_counted() {
        let (nic, peer) = Nic::sim(SimConfig::new(small(Mode::SoftLrp))).unwrap();
        // Too large for a chunk after the 256-byte headroom.
        assert!(!peer.inject(&vec![0u8; 2048 - 256 + 1]));
        assert!(peer.inject(&vec![0u8; 2048 - 256]));
        // The shared RX ring holds 8: 7 more fit, the next is a ring-full drop.
        for _ in 0..7 {
            assert!(peer.inject(&udp(1)));
        }
        assert!(!peer.inject(&udp(1)));
        let s = peer.stats();
        assert_eq!(
            (s.rx_offered, s.rx_accepted, s.rx_oversized, s.rx_ring_full),
            (10, 8, 1, 1)
        );
        assert!(nic.census().is_conserved());
        // The poll step drains the ring (the zero frame is malformed, port 1 unclaimed)
        // and tops the fill ring up again.
        assert_eq!(nic.poll_rx(64), 8);
        let c = nic.census();
        assert_eq!(c.fill, 16);
        assert!(c.is_conserved());
    }

    #[test]
    fn no_buffer_when_fill_ring_is_empty() {
        let config = small(Mode::SoftLrp).fill_ring(4).rx_ring(16);
        let (nic, peer) = Nic::sim(SimConfig::new(config)).unwrap();
        for _ in 0..4 {
            assert!(peer.inject(&udp(1)));
        }
        assert!(!peer.inject(&udp(1)));
        assert_eq!(peer.stats().rx_no_buffer, 1);
        nic.poll_rx(64);
        assert!(peer.inject(&udp(1)));
        assert!(nic.census().is_conserved());
    }

    #[test]
    fn ni_xdp_verdicts() {
        let config = small(Mode::NiLrp).default_action(DefaultAction::Drop);
        let (nic, peer) = Nic::sim(SimConfig::new(config)).unwrap();
        let ch = nic.channel(Rule::listener(Proto::Udp, None, 7), 4).unwrap();
        assert!(peer.inject(&udp(7)));
        assert!(!peer.inject(&udp(8)), "unmatched, default drop");
        assert!(!peer.inject(&[0u8; 10]), "malformed");
        nic.set_default_action(DefaultAction::Pass).unwrap();
        assert!(peer.inject(&udp(8)), "passed to the kernel");
        let s = peer.stats();
        assert_eq!(
            (s.xdp_drop_unmatched, s.xdp_drop_malformed, s.to_kernel),
            (1, 1, 1)
        );
        assert_eq!(peer.take_kernel(), vec![udp(8)]);
        assert_eq!(ch.len(), 1);
        assert!(nic.census().is_conserved());
        drop(ch);
        let c = nic.census();
        assert_eq!(c.rx, 0, "closing the channel returned its ring's frames");
        assert!(c.is_conserved());
    }

    #[test]
    fn tx_waits_for_the_wire_and_completions_return_to_the_pool() {
        let (nic, peer) = Nic::sim(SimConfig::new(small(Mode::SoftLrp))).unwrap();
        let ch = nic.channel(Rule::listener(Proto::Udp, None, 7), 4).unwrap();
        for i in 0..8u8 {
            ch.send(&[i; 60]).unwrap();
        }
        assert!(matches!(ch.send(&[9; 60]), Err(Error::TxFull)));
        assert_eq!(ch.stats().tx_drops, 1);
        assert_eq!(peer.tx_pending(), 8);
        let c = nic.census();
        assert_eq!((c.tx, c.completion), (8, 0));
        assert!(c.is_conserved());
        let mut seen = Vec::new();
        assert_eq!(peer.drain_tx(|f| seen.push(f[0])), 8);
        assert_eq!(seen, (0..8).collect::<Vec<u8>>());
        let c = nic.census();
        assert_eq!((c.tx, c.completion), (0, 8));
        assert!(c.is_conserved());
        nic.poll_rx(0);
        let c = nic.census();
        assert_eq!(c.completion, 0);
        assert!(c.is_conserved());
        assert_eq!(peer.stats().tx_frames, 8);
    }

    #[test]
    fn kernel_log_is_bounded() {
        let config = SimConfig::new(small(Mode::SoftLrp)).kernel_log(2);
        let (nic, peer) = Nic::sim(config).unwrap();
        for port in 1..=4 {
            peer.inject(&udp(port));
        }
        nic.poll_rx(64);
        assert_eq!(peer.take_kernel(), vec![udp(3), udp(4)]);
        assert_eq!(peer.stats().to_kernel, 4);
        assert!(nic.census().is_conserved());
    }

    #[test]
    fn traffic_gen_is_reproducible_and_interleaves_service() {
        fn frames(seed: u64) -> (Vec<Vec<u8>>, GenReport, Vec<u64>) {
            let (nic, peer) = Nic::sim(SimConfig::new(small(Mode::SoftLrp))).unwrap();
            let ch = nic
                .channel(Rule::listener(Proto::Udp, None, 7), 64)
                .unwrap();
            let mut gen = TrafficGen::new(seed, |rng, seq, buf| {
                let src = SocketAddrV4::new([10, 0, 0, 1].into(), rng.below(60000) as u16);
                let dst = SocketAddrV4::new([10, 0, 0, 2].into(), 7);
                build::udp_v4_into(buf, src, dst, &seq.to_be_bytes());
            });
            let mut got = Vec::new();
            let mut ticks = Vec::new();
            // 5 frames per tick against an 8-entry RX ring: the receiver keeps up.
            let report = gen.run(&peer, 6, 5, |tick| {
                ticks.push(tick);
                while let Some(f) = ch.try_recv() {
                    got.push(f.to_vec());
                }
            });
            assert_eq!(gen.total(), report);
            (got, report, ticks)
        }
        let (a, report, ticks) = frames(9);
        assert_eq!(
            report,
            GenReport {
                offered: 30,
                accepted: 30
            }
        );
        assert_eq!(ticks, (0..6).collect::<Vec<_>>());
        assert_eq!(a.len(), 30);
        assert_eq!(frames(9).0, a, "same seed, same frames");
        assert_ne!(frames(10).0, a, "another seed, other source ports");
    }

    #[test]
    fn rng_is_deterministic_and_in_range() {
        let mut a = SimRng::new(1);
        let xs: Vec<u64> = (0..100).map(|_| a.below(7)).collect();
        let mut b = SimRng::new(1);
        assert_eq!(xs, (0..100).map(|_| b.below(7)).collect::<Vec<_>>());
        assert!(xs.iter().all(|&x| x < 7));
        assert!((0..7).all(|v| xs.contains(&v)));
        assert_eq!(a.below(0), 0);
        assert!(!a.chance(0.0));
        assert!(a.chance(1.0));
    }
}
