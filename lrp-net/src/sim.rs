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

pub mod build;

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};

use crossbeam_queue::ArrayQueue;
use lrp_core::channel::NiChannel;
use lrp_core::demux::{ChannelId, DefaultAction, Demux, Listener, ListenerKey, Verdict};
use lrp_core::flow::{classify, Classification, FlowKey};

use crate::backend::{Backend, BackendStats, NiDrops, NiQueue, Readiness, RingCensus, NO_CHANNEL};
use crate::error::{Error, Result};
use crate::nic::{Mode, NicConfig};
use crate::notify::Notifier;
use crate::pool::{Desc, Frame, FramePool};

/// Bytes the kernel leaves in front of a received frame in its chunk
/// (`XDP_PACKET_HEADROOM`).
pub const RX_HEADROOM: u32 = 256;

/// Configuration of a simulated NIC: the [`NicConfig`] of the NIC under test plus what
/// the simulated wire keeps.
///
/// ```
/// use lrp_net::{Mode, NicConfig};
/// use lrp_net::sim::SimConfig;
///
/// let sim = SimConfig::new(NicConfig::default().mode(Mode::NiLrp)).kernel_log(16);
/// assert_eq!(sim.nic().get_mode(), Mode::NiLrp);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimConfig {
    pub(crate) nic: NicConfig,
    kernel_log: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig::new(NicConfig::default())
    }
}

impl SimConfig {
    /// A simulated NIC configured like `nic`; keeps the last 1024 frames passed to the
    /// host kernel.
    pub fn new(nic: NicConfig) -> SimConfig {
        SimConfig {
            nic,
            kernel_log: 1024,
        }
    }

    /// How many frames passed to the host kernel to keep for [`SimPeer::take_kernel`]
    /// (the oldest are forgotten first; all are counted).
    pub fn kernel_log(mut self, frames: usize) -> Self {
        self.kernel_log = frames;
        self
    }

    /// The NIC configuration.
    pub fn nic(&self) -> &NicConfig {
        &self.nic
    }
}

#[derive(Debug, Default)]
struct Counters {
    rx_offered: AtomicU64,
    rx_accepted: AtomicU64,
    rx_no_buffer: AtomicU64,
    rx_ring_full: AtomicU64,
    rx_oversized: AtomicU64,
    gate_drops: AtomicU64,
    ni_ring_full: AtomicU64,
    xdp_drop_malformed: AtomicU64,
    xdp_drop_unmatched: AtomicU64,
    to_kernel: AtomicU64,
    tx_frames: AtomicU64,
    tx_bytes: AtomicU64,
    tx_ring_full: AtomicU64,
}

/// The simulated NIC's copy of the demux tables and its per-channel queues (what the XDP
/// program's BPF maps hold in NI-LRP).
struct Maps {
    demux: Demux,
    slots: Vec<Option<Arc<SimNiQueue>>>,
}

/// The simulated NIC (see the [module docs](self)).
pub(crate) struct SimBackend {
    pool: FramePool,
    mode: Mode,
    gate: bool,
    /// Offset of received data in its chunk.
    rx_offset: u64,
    /// Largest frame that fits in a chunk after the offset.
    max_len: usize,
    fill: ArrayQueue<u64>,
    fill_target: usize,
    /// NI-LRP: channel slots (`NicConfig::ni_slots`).
    ni_slots: u32,
    rx: ArrayQueue<Desc>,
    rx_ready: Notifier,
    tx: ArrayQueue<Desc>,
    completion: ArrayQueue<u64>,
    maps: RwLock<Maps>,
    kernel: Mutex<VecDeque<Vec<u8>>>,
    kernel_log: usize,
    c: Counters,
}

impl SimBackend {
    pub(crate) fn new(config: &SimConfig, pool: FramePool) -> Result<SimBackend> {
        let nic = &config.nic;
        let rx_offset = u64::from(RX_HEADROOM + pool.headroom());
        let max_len = (pool.frame_size() as usize).saturating_sub(rx_offset as usize);
        if max_len < 64 {
            return Err(Error::InvalidConfig("headroom leaves no room for a frame"));
        }
        Ok(SimBackend {
            mode: nic.get_mode(),
            gate: nic.get_gate(),
            rx_offset,
            max_len,
            fill: ArrayQueue::new(nic.get_fill_ring() as usize),
            fill_target: nic.fill_target(),
            ni_slots: nic.get_ni_slots(),
            rx: ArrayQueue::new(nic.get_rx_ring() as usize),
            rx_ready: Notifier::new()?,
            tx: ArrayQueue::new(nic.get_tx_ring() as usize),
            // The completion ring must take everything the TX ring can hold.
            completion: ArrayQueue::new(nic.get_completion_ring().max(nic.get_tx_ring()) as usize),
            maps: RwLock::new(Maps {
                demux: Demux::new(nic.get_default_action()),
                slots: Vec::new(),
            }),
            kernel: Mutex::new(VecDeque::new()),
            kernel_log: config.kernel_log,
            c: Counters::default(),
            pool,
        })
    }

    fn maps(&self) -> std::sync::RwLockReadGuard<'_, Maps> {
        self.maps.read().unwrap_or_else(|e| e.into_inner())
    }

    fn maps_mut(&self) -> std::sync::RwLockWriteGuard<'_, Maps> {
        self.maps.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The NIC's DMA write: copy `bytes` into the posted chunk at `chunk`. The pool's
    /// checked transitions make the chunk a `Frame` for the duration of the write, so the
    /// simulated NIC needs no `unsafe` and cannot write a chunk anybody holds.
    fn write_chunk(&self, chunk: u64, bytes: &[u8]) -> Option<Desc> {
        let desc = Desc {
            addr: chunk + self.rx_offset,
            len: bytes.len() as u32,
        };
        let mut frame = self.pool.frame_from_kernel(desc).ok()?;
        frame.copy_from_slice(bytes);
        Some(frame.into_kernel())
    }

    /// Give a posted chunk back to the fill ring (the kernel keeps it for the next frame).
    fn recycle(&self, chunk: u64) {
        if let Err(chunk) = self.fill.push(chunk) {
            let _ = self.pool.release_from_kernel(chunk);
        }
    }

    fn chunk_of(&self, addr: u64) -> u64 {
        addr & !u64::from(self.pool.frame_size() - 1)
    }

    fn inject(&self, bytes: &[u8]) -> bool {
        self.c.rx_offered.fetch_add(1, Relaxed);
        if bytes.len() > self.max_len {
            self.c.rx_oversized.fetch_add(1, Relaxed);
            return false;
        }
        match self.mode {
            Mode::NiLrp => self.inject_ni(bytes),
            Mode::SoftLrp | Mode::Eager => self.inject_shared(bytes),
        }
    }

    fn inject_shared(&self, bytes: &[u8]) -> bool {
        let Some(chunk) = self.fill.pop() else {
            self.c.rx_no_buffer.fetch_add(1, Relaxed);
            return false;
        };
        let Some(desc) = self.write_chunk(chunk, bytes) else {
            return false;
        };
        if self.rx.push(desc).is_err() {
            self.c.rx_ring_full.fetch_add(1, Relaxed);
            self.recycle(chunk);
            return false;
        }
        self.c.rx_accepted.fetch_add(1, Relaxed);
        self.rx_ready.notify();
        true
    }

    /// NI-LRP: what the XDP program does, then the kernel's copy into the channel's ring.
    fn inject_ni(&self, bytes: &[u8]) -> bool {
        let class = classify(bytes);
        let maps = self.maps();
        let verdict = match maps.demux.lookup(&class) {
            Verdict::Channel(NO_CHANNEL) => maps.demux.default_action().verdict(),
            v => v,
        };
        match verdict {
            Verdict::Channel(id) => {
                let Some(q) = maps.slots.get(id.0 as usize).and_then(Option::as_ref) else {
                    self.c.xdp_drop_unmatched.fetch_add(1, Relaxed);
                    return false;
                };
                if self.gate && q.ring.gate_closed() {
                    // XDP_DROP: before the copy, no buffer used.
                    q.gate_drops.fetch_add(1, Relaxed);
                    self.c.gate_drops.fetch_add(1, Relaxed);
                    return false;
                }
                let Some(chunk) = self.fill.pop() else {
                    self.c.rx_no_buffer.fetch_add(1, Relaxed);
                    return false;
                };
                let Some(desc) = self.write_chunk(chunk, bytes) else {
                    return false;
                };
                if q.ring.push(desc, bytes.len()).is_err() {
                    // The ring was full: dropped after the copy (counted by the ring).
                    self.c.ni_ring_full.fetch_add(1, Relaxed);
                    self.recycle(chunk);
                    return false;
                }
                self.c.rx_accepted.fetch_add(1, Relaxed);
                q.notifier.notify();
                true
            }
            Verdict::Pass => {
                self.to_kernel(bytes);
                true
            }
            Verdict::Drop => {
                let counter = match class {
                    Classification::Malformed(_) => &self.c.xdp_drop_malformed,
                    _ => &self.c.xdp_drop_unmatched,
                };
                counter.fetch_add(1, Relaxed);
                false
            }
        }
    }

    fn to_kernel(&self, bytes: &[u8]) {
        self.c.to_kernel.fetch_add(1, Relaxed);
        if self.kernel_log == 0 {
            return;
        }
        let mut log = self.kernel.lock().unwrap_or_else(|e| e.into_inner());
        if log.len() == self.kernel_log {
            log.pop_front();
        }
        log.push_back(bytes.to_vec());
    }

    /// The wire takes transmitted frames: TX ring → `f` → completion ring. Stops when the
    /// completion ring is full (the NIC's poll step has not reclaimed), as a NIC would.
    fn drain_tx(&self, mut f: impl FnMut(&[u8])) -> usize {
        let mut n = 0;
        while !self.completion.is_full() {
            let Some(desc) = self.tx.pop() else { break };
            let Ok(frame) = self.pool.frame_from_kernel(desc) else {
                // Refused (and counted) by the pool: not a chunk this NIC was given.
                continue;
            };
            f(&frame);
            self.c.tx_frames.fetch_add(1, Relaxed);
            self.c.tx_bytes.fetch_add(frame.len() as u64, Relaxed);
            let desc = frame.into_kernel();
            let chunk = self.chunk_of(desc.addr);
            if self.completion.push(chunk).is_err() {
                // Only this function pushes completions, after checking for room; if a
                // concurrent drain won the last slot, return the chunk directly.
                let _ = self.pool.release_from_kernel(chunk);
            }
            n += 1;
        }
        n
    }
}

impl Backend for SimBackend {
    fn pool(&self) -> &FramePool {
        &self.pool
    }

    fn rx_burst(&self, max: usize, out: &mut Vec<Frame>) -> usize {
        let mut n = 0;
        while n < max {
            let Some(desc) = self.rx.pop() else { break };
            if let Ok(frame) = self.pool.frame_from_kernel(desc) {
                out.push(frame);
                n += 1;
            }
        }
        if !self.rx.is_empty() {
            // Frames left behind (budget): keep the readiness signalled for waiters.
            self.rx_ready.notify();
        }
        n
    }

    fn rx_pending(&self) -> bool {
        !self.rx.is_empty()
    }

    fn rx_readiness(&self) -> Readiness<'_> {
        Readiness::Notifier(&self.rx_ready)
    }

    fn refill(&self) -> bool {
        while self.fill.len() < self.fill_target {
            let Some(chunk) = self.pool.take_for_kernel() else {
                return false;
            };
            if let Err(chunk) = self.fill.push(chunk) {
                let _ = self.pool.release_from_kernel(chunk);
                break;
            }
        }
        true
    }

    fn reclaim(&self) -> usize {
        let mut n = 0;
        while let Some(chunk) = self.completion.pop() {
            let _ = self.pool.release_from_kernel(chunk);
            n += 1;
        }
        n
    }

    fn transmit(&self, frame: Frame) -> bool {
        let desc = frame.into_kernel();
        match self.tx.push(desc) {
            Ok(()) => true,
            Err(desc) => {
                self.c.tx_ring_full.fetch_add(1, Relaxed);
                let _ = self.pool.release_from_kernel(desc.addr);
                false
            }
        }
    }

    fn pass_to_kernel(&self, frame: Frame) {
        self.to_kernel(&frame);
    }

    // The simulated NIC demultiplexes only in NI-LRP; in the other modes every frame goes
    // to the shared ring and its copy of the tables is simply not consulted.

    fn sync_flow(&self, key: &FlowKey, channel: Option<ChannelId>) -> Result<()> {
        let mut maps = self.maps_mut();
        match channel {
            Some(id) => maps.demux.insert_flow(*key, id),
            None => maps.demux.remove_flow(key),
        };
        Ok(())
    }

    fn sync_listener(&self, key: &ListenerKey, listener: Option<Listener>) -> Result<()> {
        let mut maps = self.maps_mut();
        match listener {
            Some(l) => maps.demux.insert_listener(*key, l),
            None => maps.demux.remove_listener(key),
        };
        Ok(())
    }

    fn sync_host(&self, addr: &IpAddr, channel: Option<ChannelId>) -> Result<()> {
        let mut maps = self.maps_mut();
        match channel {
            Some(id) => maps.demux.insert_host(*addr, id),
            None => maps.demux.remove_host(addr),
        };
        Ok(())
    }

    fn sync_default(&self, action: DefaultAction) -> Result<()> {
        self.maps_mut().demux.set_default_action(action);
        Ok(())
    }

    fn ni_open(&self, id: ChannelId, capacity: usize) -> Result<Arc<dyn NiQueue>> {
        if id.0 >= self.ni_slots {
            return Err(Error::NoChannelSlot(
                "every NI-LRP slot of the simulated NIC is taken (NicConfig::ni_slots)",
            ));
        }
        let q = Arc::new(SimNiQueue {
            pool: self.pool.clone(),
            ring: NiChannel::new(capacity),
            notifier: Notifier::new()?,
            gate: self.gate,
            gate_drops: AtomicU64::new(0),
        });
        let mut maps = self.maps_mut();
        let slot = id.0 as usize;
        if maps.slots.len() <= slot {
            maps.slots.resize_with(slot + 1, || None);
        }
        maps.slots[slot] = Some(Arc::clone(&q));
        Ok(q)
    }

    fn ni_close(&self, id: ChannelId) {
        // Holding the write lock, no injection is between its lookup and its push; once
        // the slot is gone no injection can reach the ring, and the queue returns what is
        // left in it when its last handle drops.
        let mut maps = self.maps_mut();
        if let Some(slot) = maps.slots.get_mut(id.0 as usize) {
            *slot = None;
        }
    }

    fn census(&self) -> RingCensus {
        let ni: usize = self
            .maps()
            .slots
            .iter()
            .flatten()
            .map(|q| q.ring.len())
            .sum();
        RingCensus {
            fill: self.fill.len(),
            rx: self.rx.len() + ni,
            tx: self.tx.len(),
            completion: self.completion.len(),
        }
    }

    fn stats(&self) -> BackendStats {
        let c = &self.c;
        BackendStats {
            rx_offered: c.rx_offered.load(Relaxed),
            rx_accepted: c.rx_accepted.load(Relaxed),
            rx_no_buffer: c.rx_no_buffer.load(Relaxed),
            rx_ring_full: c.rx_ring_full.load(Relaxed),
            rx_oversized: c.rx_oversized.load(Relaxed),
            gate_drops: c.gate_drops.load(Relaxed),
            ni_ring_full: c.ni_ring_full.load(Relaxed),
            xdp_drop_malformed: c.xdp_drop_malformed.load(Relaxed),
            xdp_drop_unmatched: c.xdp_drop_unmatched.load(Relaxed),
            to_kernel: c.to_kernel.load(Relaxed),
            to_kernel_dropped: 0,
            tx_frames: c.tx_frames.load(Relaxed),
            tx_bytes: c.tx_bytes.load(Relaxed),
            tx_ring_full: c.tx_ring_full.load(Relaxed),
        }
    }
}

/// An NI-LRP channel's ring in the simulated NIC, with its gate.
struct SimNiQueue {
    pool: FramePool,
    /// The ring: descriptors of chunks in the kernel state, with the hysteresis gate.
    ring: NiChannel<Desc>,
    notifier: Notifier,
    gate: bool,
    gate_drops: AtomicU64,
}

impl NiQueue for SimNiQueue {
    fn recv(&self) -> Option<Frame> {
        loop {
            let desc = self.ring.pop()?;
            if let Ok(frame) = self.pool.frame_from_kernel(desc) {
                return Some(frame);
            }
        }
    }

    fn recv_burst(&self, max: usize, out: &mut Vec<Frame>) -> usize {
        let start = out.len();
        self.ring.pop_batch(max, |desc| {
            if let Ok(frame) = self.pool.frame_from_kernel(desc) {
                out.push(frame);
            }
        });
        out.len() - start
    }

    fn len(&self) -> usize {
        self.ring.len()
    }

    fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    fn readiness(&self) -> Readiness<'_> {
        Readiness::Notifier(&self.notifier)
    }

    fn observe_gate(&self) -> bool {
        self.ring.gate().observe(self.ring.len());
        // The simulated NIC re-evaluates the gate on every frame it queues.
        false
    }

    fn gate_closings(&self) -> u64 {
        if self.gate {
            self.ring.gate().closings()
        } else {
            0
        }
    }

    fn drops(&self) -> NiDrops {
        NiDrops {
            gate: self.gate_drops.load(Relaxed),
            ring_full: self.ring.counters().early_discarded,
            other: 0,
        }
    }
}

impl Drop for SimNiQueue {
    fn drop(&mut self) {
        while let Some(desc) = self.ring.pop() {
            let _ = self.pool.release_from_kernel(desc.addr);
        }
    }
}

/// The far end of the simulated wire: injects frames into the NIC and captures what it
/// transmits or hands to the host kernel. Cloneable; every clone drives the same wire.
///
/// ```
/// use lrp_net::{Nic, NicConfig, Rule};
/// use lrp_net::sim::{build, SimConfig};
/// use lrp_core::flow::Proto;
///
/// let (nic, peer) = Nic::sim(SimConfig::new(NicConfig::default().frame_count(64)))?;
/// // Nothing listens on port 1: the default action passes it to the host kernel.
/// assert!(peer.inject(&build::udp_v4("10.0.0.1:9".parse()?, "10.0.0.2:1".parse()?, b"")));
/// nic.poll_rx(64);
/// assert_eq!(peer.take_kernel().len(), 1);
/// assert_eq!(peer.stats().rx_offered, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct SimPeer {
    sim: Arc<SimBackend>,
}

impl std::fmt::Debug for SimPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimPeer")
            .field("stats", &self.stats())
            .finish()
    }
}

impl SimPeer {
    pub(crate) fn new(sim: Arc<SimBackend>) -> SimPeer {
        SimPeer { sim }
    }

    /// Put one frame on the wire. Returns whether the NIC accepted it: `true` if it was
    /// written into an RX ring (or, in NI-LRP, passed to the host kernel by the XDP
    /// program); `false` if the NIC dropped it — no posted buffer, a full ring, a closed
    /// gate, too large, or dropped by the XDP program — which [`stats`](Self::stats) and
    /// the channel's statistics count.
    pub fn inject(&self, frame: &[u8]) -> bool {
        self.sim.inject(frame)
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
/// use lrp_net::{Nic, NicConfig, Rule};
/// use lrp_net::sim::{build, SimConfig, TrafficGen};
/// use lrp_core::flow::Proto;
/// use std::net::SocketAddrV4;
///
/// let (nic, peer) = Nic::sim(SimConfig::new(NicConfig::default().frame_count(512)))?;
/// let ch = nic.channel(Rule::listener(Proto::Udp, None, 9000), 1024)?;
/// // 4 ticks of 50 frames from random source ports; the receiver drains between ticks.
/// let mut gen = TrafficGen::new(42, |rng, _seq, buf| {
///     let src = SocketAddrV4::new([10, 0, 0, 1].into(), 1024 + rng.below(1000) as u16);
///     build::udp_v4_into(buf, src, "10.0.0.2:9000".parse().unwrap(), b"x");
/// });
/// let mut got = Vec::new();
/// let report = gen.run(&peer, 4, 50, |_tick| {
///     while ch.recv_batch(64, &mut got) > 0 {}
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
    use crate::nic::{Nic, Rule};
    use lrp_core::flow::Proto;
    use std::net::SocketAddrV4;

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
        let f = ch.recv().unwrap();
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
                while let Some(f) = ch.recv() {
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
