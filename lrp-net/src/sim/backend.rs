//! The simulated NIC's backend: the rings, the NIC's copy of the demux tables and the
//! per-channel queues of NI-LRP (see the [parent module](super) for what it simulates).

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};

use crossbeam_queue::ArrayQueue;
use lrp_core::channel::NiChannel;
use lrp_core::demux::{ChannelId, DefaultAction, Demux, Listener, ListenerKey, SourceKey, Verdict};
use lrp_core::flow::{classify, Classification, FlowKey};

use crate::backend::{
    Backend, BackendConfig, BackendStats, NiDrops, NiQueue, Readiness, RingCensus,
};
use crate::error::{Error, Result};
use crate::notify::Notifier;
use crate::pool::{Desc, Frame, FramePool};

/// Bytes the kernel leaves in front of a received frame in its chunk
/// (`XDP_PACKET_HEADROOM`).
pub const RX_HEADROOM: u32 = 256;

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
    /// NI-LRP: the NIC demultiplexes.
    ni: bool,
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
    pub(super) tx: ArrayQueue<Desc>,
    completion: ArrayQueue<u64>,
    maps: RwLock<Maps>,
    pub(super) kernel: Mutex<VecDeque<Vec<u8>>>,
    kernel_log: usize,
    c: Counters,
}

impl SimBackend {
    pub(crate) fn new(
        nic: &BackendConfig,
        kernel_log: usize,
        pool: FramePool,
    ) -> Result<SimBackend> {
        let rx_offset = u64::from(RX_HEADROOM + pool.headroom());
        let max_len = (pool.frame_size() as usize).saturating_sub(rx_offset as usize);
        if max_len < 64 {
            return Err(Error::InvalidConfig("headroom leaves no room for a frame"));
        }
        Ok(SimBackend {
            ni: nic.ni,
            gate: nic.gates,
            rx_offset,
            max_len,
            fill: ArrayQueue::new(nic.fill_ring as usize),
            fill_target: nic.fill_target,
            ni_slots: nic.ni_slots,
            rx: ArrayQueue::new(nic.rx_ring as usize),
            rx_ready: Notifier::new()?,
            tx: ArrayQueue::new(nic.tx_ring as usize),
            // The completion ring must take everything the TX ring can hold.
            completion: ArrayQueue::new(nic.completion_ring.max(nic.tx_ring) as usize),
            maps: RwLock::new(Maps {
                demux: Demux::new(nic.default_action),
                slots: Vec::new(),
            }),
            kernel: Mutex::new(VecDeque::new()),
            kernel_log,
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

    pub(super) fn inject(&self, bytes: &[u8]) -> bool {
        self.c.rx_offered.fetch_add(1, Relaxed);
        if bytes.len() > self.max_len {
            self.c.rx_oversized.fetch_add(1, Relaxed);
            return false;
        }
        if self.ni {
            self.inject_ni(bytes)
        } else {
            self.inject_shared(bytes)
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
        match maps.demux.lookup(&class) {
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
    pub(super) fn drain_tx(&self, mut f: impl FnMut(&[u8])) -> usize {
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

    fn sync_source(&self, key: &SourceKey, channel: Option<ChannelId>) -> Result<()> {
        let mut maps = self.maps_mut();
        match channel {
            Some(id) => maps.demux.insert_source(*key, id),
            None => maps.demux.remove_source(key),
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
