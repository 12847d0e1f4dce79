//! The sockets whose RX rings userspace reads ([`RxSocket`]: the shared ring in SOFT-LRP
//! and EAGER, or one channel's), and the NI-LRP channel queues ([`XdpNiQueue`]) with
//! their gates.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use lrp_core::channel::Gate;

use super::{lock, Shared};
use crate::backend::{NiDrops, NiQueue, Readiness};
use crate::error::Result;
use crate::pool::Frame;
use crate::xdp::program::Gates;
use crate::xdp::xsk::XskSocket;

/// A channel tops up the fill ring after receiving this many frames (NI-LRP, where the
/// poll step may run rarely while channels are busy).
const REFILL_EVERY: u32 = 64;

/// A socket whose RX ring userspace reads: the shared ring (SOFT-LRP, EAGER) or one NI
/// channel's ring.
pub(super) struct RxSocket {
    pub(super) sock: Mutex<XskSocket>,
    /// A duplicate of the socket's fd, to `poll` without taking the lock.
    pub(super) fd: OwnedFd,
    pub(super) capacity: u32,
}

impl RxSocket {
    pub(super) fn new(sock: XskSocket) -> Result<RxSocket> {
        let fd = sock.as_fd().try_clone_to_owned()?;
        Ok(RxSocket {
            capacity: sock.rx_capacity(),
            sock: Mutex::new(sock),
            fd,
        })
    }

    /// Frames waiting in the ring (exact when the kernel and the readers are quiet).
    pub(super) fn len(&self) -> u32 {
        lock(&self.sock).rx_len()
    }
}

pub(super) struct NiGate {
    pub(super) gate: Gate,
    /// This queue's handle on the program's gate map.
    pub(super) map: Mutex<Gates>,
}

/// An NI-LRP channel: its own socket (XSKMAP slot = channel id), RX ring and gate.
pub(super) struct XdpNiQueue {
    pub(super) shared: Arc<Shared>,
    pub(super) slot: u32,
    pub(super) rx: RxSocket,
    /// `None` when the NIC was configured without gates.
    pub(super) gate: Option<NiGate>,
    /// The slot's gate-drop counter when this channel opened (slots are reused).
    pub(super) gate_base: u64,
    pub(super) since_refill: AtomicU32,
}

impl XdpNiQueue {
    /// After taking `n` frames: account, re-evaluate the gate, top up the fill ring.
    fn after_receive(&self, n: u32) {
        if n == 0 {
            return;
        }
        let s = &self.shared;
        s.c.received.fetch_add(u64::from(n), Relaxed);
        self.observe_gate();
        s.sweep_gates();
        if self.since_refill.fetch_add(n, Relaxed) + n >= REFILL_EVERY {
            self.since_refill.store(0, Relaxed);
            s.try_refill();
        }
    }

    /// Return every frame in the ring to the pool.
    pub(super) fn drain(&self) {
        let s = &self.shared;
        let mut sock = lock(&self.rx.sock);
        loop {
            let n = sock.receive_each(&s.pool, 256, drop);
            s.c.received.fetch_add(u64::from(n), Relaxed);
            if n == 0 {
                break;
            }
        }
    }

    fn publish_gate(&self, g: &NiGate) {
        let state = g.gate.state();
        if let Err(e) = lock(&g.map).set(self.slot, state) {
            log::warn!("gate of slot {}: {e}", self.slot);
        }
    }
}

impl Drop for XdpNiQueue {
    fn drop(&mut self) {
        self.drain();
    }
}

impl NiQueue for XdpNiQueue {
    fn recv(&self) -> Option<Frame> {
        let mut got = None;
        let n = lock(&self.rx.sock).receive_each(&self.shared.pool, 1, |f| got = Some(f));
        self.after_receive(n);
        got
    }

    fn recv_burst(&self, max: usize, out: &mut Vec<Frame>) -> usize {
        let start = out.len();
        let max = u32::try_from(max).unwrap_or(u32::MAX);
        let n = lock(&self.rx.sock).receive_each(&self.shared.pool, max, |f| out.push(f));
        self.after_receive(n);
        out.len() - start
    }

    fn len(&self) -> usize {
        self.rx.len() as usize
    }

    fn capacity(&self) -> usize {
        self.rx.capacity as usize
    }

    fn readiness(&self) -> Readiness<'_> {
        Readiness::Fd(self.rx.fd.as_fd())
    }

    fn observe_gate(&self) -> bool {
        let Some(g) = &self.gate else { return false };
        let mut len = self.rx.len();
        if g.gate.observe(len as usize).is_some() {
            self.publish_gate(g);
            // The ring may have moved while we published: observe once more, so the gate
            // ends in the state the thresholds give for the latest occupancy.
            len = self.rx.len();
            if g.gate.observe(len as usize).is_some() {
                self.publish_gate(g);
            }
        }
        len > 0 && !g.gate.is_closed()
    }

    fn gate_closings(&self) -> u64 {
        self.gate.as_ref().map_or(0, |g| g.gate.closings())
    }

    fn drops(&self) -> NiDrops {
        let s = &self.shared;
        let gate = lock(&s.program)
            .slot_counters(self.slot)
            .map(|c| c.gate_drops.saturating_sub(self.gate_base))
            .unwrap_or(0);
        let st = lock(&self.rx.sock).statistics().unwrap_or_default();
        NiDrops {
            gate,
            ring_full: st.rx_ring_full,
            other: st.rx_dropped + st.rx_invalid_descs,
        }
    }
}
