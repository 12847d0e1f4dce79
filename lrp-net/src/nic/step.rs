//! The poll step ([`Nic::poll_rx`](crate::Nic::poll_rx)): reclaim transmitted frames,
//! run the receive path, refill the fill ring. One thread at a time runs it (the
//! poll-step lock). The receive paths over one shared RX ring are the SOFT-LRP demux step
//! and the eager baseline's poll step; in NI-LRP the step re-evaluates the gates and
//! services the rings that feed soft channels. Each charges its time to the NIC's own
//! account. (A step's
//! time is taken from the monotonic clock: a step never blocks, so its wall time is its
//! CPU time unless the thread is preempted in it; the thread CPU clock would cost a system
//! call per step, more than the step itself at small batches.)
//!
//! **SOFT-LRP** ([`demux_step`]) does per frame only what early demultiplexing needs — a
//! one-pass [`classify`] and a [`Demux`](lrp_core::demux::Demux) lookup — and pushes the
//! frame to its endpoint's [`NiChannel`](lrp_core::channel::NiChannel). When that channel
//! is full the frame is discarded at once (its chunk goes straight back to the pool) and
//! counted on the endpoint as [`DropReason::SoftDiscard`](crate::DropReason::SoftDiscard): no checksum, no protocol work
//! was spent on it. Checksums and protocol processing happen later, when the endpoint's
//! owner receives, on its thread.
//!
//! **EAGER** ([`eager_step`]) is the conventional path: the "interrupt" half moves every
//! frame the NIC has into one shared input queue (dropping when it is full, with nobody
//! to blame), and the "software interrupt" half does the protocol work for every queued
//! frame — classification, checksum verification ([`lrp_core::wire::verify`]), lookup —
//! before queueing it to its endpoint, where it is dropped if the endpoint's queue is
//! full ([`DropReason::EndpointFull`](crate::DropReason::EndpointFull)), after the work was spent. The CPU time is charged
//! to the NIC, not to the endpoint it was spent for: the eager path cannot tell.
//!
//! **NI-LRP soft channels** ([`divert`], [`service_ni`]). When the NIC has no slot left
//! for a channel with an exact rule, the channel is a soft channel: its rule lives only in
//! the facade's table, so the NIC keeps sending its frames where its own, wider rules say
//! (the listener's, the SYN, the source or the host channel's ring). Whoever takes frames from such a
//! ring runs them through the facade's exact table first and moves a soft channel's frames
//! to it, discarding early (counted on the soft channel) when it is full. The cost is one
//! classification per frame on those rings, paid only while soft channels exist.

use std::sync::atomic::Ordering;
use std::sync::{MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use lrp_core::account::DropReason;
use lrp_core::demux::{ChannelId, Verdict};
use lrp_core::eager::{Disposition, EagerPipeline, Fate};
use lrp_core::flow::{classify, Classification};
use lrp_core::wire;

use super::state::{NicInner, RxPath, Table};
use crate::pool::Frame;

impl NicInner {
    /// Run the poll step if no other thread is running it. Returns the frames it took
    /// from the shared RX ring, or `None` if another thread holds the step.
    pub(super) fn try_step(&self, budget: usize) -> Option<usize> {
        match self.step.try_lock() {
            Ok(mut scratch) => Some(self.step_locked(&mut scratch, budget)),
            Err(TryLockError::Poisoned(p)) => Some(self.step_locked(&mut p.into_inner(), budget)),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// Run the poll step, waiting for another thread running it to finish first.
    pub(super) fn step(&self, budget: usize) -> usize {
        let mut scratch: MutexGuard<'_, Vec<Frame>> =
            self.step.lock().unwrap_or_else(|e| e.into_inner());
        self.step_locked(&mut scratch, budget)
    }

    /// Whether a poll step started less than `slice` ago.
    pub(super) fn stepped_within(&self, slice: Duration) -> bool {
        let last = self.last_step.load(Ordering::Relaxed);
        self.now_ns().saturating_sub(last) < slice.as_nanos() as u64
    }

    fn step_locked(&self, scratch: &mut Vec<Frame>, budget: usize) -> usize {
        self.last_step.store(self.now_ns(), Ordering::Relaxed);
        // Frames left over by a step that panicked go back to the pool.
        scratch.clear();
        self.backend.reclaim();
        let n = match &self.path {
            RxPath::Ni(_) => {
                let table = self.read_table();
                let mut watch = false;
                for ch in table.channels.iter().flatten() {
                    if let Some(q) = &ch.ni {
                        watch |= q.observe_gate();
                    }
                }
                self.watch_gates.store(watch, Ordering::Relaxed);
                drop(table);
                if budget > 0 && self.soft_channels.load(Ordering::Relaxed) > 0 {
                    let left = service_ni(self, scratch, budget);
                    self.soft_left.store(left, Ordering::Relaxed);
                }
                0
            }
            RxPath::Soft => demux_step(self, scratch, budget),
            RxPath::Eager(eager) => eager_step(self, eager, scratch, budget),
        };
        self.rx_frames.fetch_add(n as u64, Ordering::Relaxed);
        let full = self.backend.refill();
        self.starving.store(!full, Ordering::Relaxed);
        n
    }
}

/// SOFT-LRP: take up to `budget` frames from the shared RX ring and demultiplex each to
/// its channel, discarding early when the channel is full. Returns how many frames were
/// taken.
fn demux_step(inner: &NicInner, scratch: &mut Vec<Frame>, budget: usize) -> usize {
    let n = inner.backend.rx_burst(budget, scratch);
    if n == 0 {
        return 0;
    }
    let t0 = Instant::now();
    let mut bytes = 0u64;
    {
        let table = inner.read_table();
        for frame in scratch.drain(..) {
            let len = frame.len();
            bytes += len as u64;
            let class = classify(&frame);
            match table.demux.lookup(&class) {
                Verdict::Channel(id) => match table.channel(id) {
                    Some(ch) => match ch.endpoint.channel().push(frame, len) {
                        Ok(()) => ch.notifier.notify(),
                        // Early discard: the frame is dropped here, its chunk returns to
                        // the pool before any protocol work.
                        Err(_frame) => ch.endpoint.account().record_drop(DropReason::SoftDiscard),
                    },
                    None => inner.account.record_drop(DropReason::NoEndpoint),
                },
                Verdict::Pass => inner.backend.pass_to_kernel(frame),
                Verdict::Drop => inner.account.record_drop(match class {
                    Classification::Malformed(_) => DropReason::Malformed,
                    _ => DropReason::NoEndpoint,
                }),
            }
        }
    }
    inner.account.record_rx_batch(n as u64, bytes);
    inner.account.charge_cpu(elapsed_ns(t0));
    n
}

/// EAGER: move up to `budget` frames from the RX ring into the shared input queue, then
/// do the protocol work for up to `budget` queued frames and queue them to their
/// endpoints. Returns how many frames were taken from the RX ring.
fn eager_step(
    inner: &NicInner,
    eager: &EagerPipeline<Frame>,
    scratch: &mut Vec<Frame>,
    budget: usize,
) -> usize {
    let n = inner.backend.rx_burst(budget, scratch);
    let mut bytes = 0u64;
    for frame in scratch.drain(..) {
        bytes += frame.len() as u64;
        // A full shared queue hands the frame back; dropping it returns the chunk.
        let _ = eager.ingress(frame);
    }
    if n > 0 {
        inner.account.record_rx_batch(n as u64, bytes);
    }
    if eager.backlog() == 0 || budget == 0 {
        return n;
    }
    let t0 = Instant::now();
    let mut touched: Vec<ChannelId> = Vec::new();
    {
        let table = inner.read_table();
        let work = |frame: &mut Frame| {
            let class = classify(frame);
            let disposition = Disposition::from_verdict(&class, table.demux.lookup(&class));
            if let Disposition::Deliver(id) = disposition {
                if wire::verify(frame, &class).is_err() {
                    return Disposition::Drop(DropReason::BadChecksum);
                }
                if touched.last() != Some(&id) {
                    touched.push(id);
                }
            }
            disposition
        };
        eager.process(&table.endpoints, budget, work, |undelivered| {
            if undelivered.fate == Fate::Pass {
                inner.backend.pass_to_kernel(undelivered.frame);
            }
        });
        // Wake receivers only after their frames are queued.
        touched.sort_unstable();
        touched.dedup();
        for id in touched {
            if let Some(ch) = table.channel(id) {
                ch.notifier.notify();
            }
        }
    }
    inner.account.charge_cpu(elapsed_ns(t0));
    n
}

/// Nanoseconds since `t0`.
fn elapsed_ns(t0: Instant) -> u64 {
    u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// NI-LRP with soft channels: if `frame`, taken from the NIC ring of channel `from`,
/// belongs to a soft channel (by the facade's exact table), queue it there — or discard it
/// early, counted on that channel, if it is full — and return `None`; otherwise hand it
/// back.
pub(super) fn divert(table: &Table, from: ChannelId, frame: Frame) -> Option<Frame> {
    let Classification::Flow { key, .. } = classify(&frame) else {
        return Some(frame);
    };
    let Some(id) = table.demux.flow(&key).filter(|&id| id != from) else {
        return Some(frame);
    };
    match table.channel(id) {
        Some(ch) if ch.soft => {
            let len = frame.len();
            match ch.endpoint.channel().push(frame, len) {
                Ok(()) => ch.notifier.notify(),
                // Early discard: the chunk returns to the pool before any protocol work.
                Err(_frame) => ch.endpoint.account().record_drop(DropReason::SoftDiscard),
            }
            None
        }
        _ => Some(frame),
    }
}

/// NI-LRP with soft channels, in the poll step: take up to `budget` frames from the ring
/// of every NI channel whose NIC rules may claim a soft channel's frames (listener, SYN,
/// source, host rules), move soft channels' frames to them ([`divert`]) and keep the others, in
/// order, in their own channel's stash (its core queue, which its `recv` empties before
/// its ring). A ring whose owner is receiving at the moment is skipped (the owner diverts
/// itself), and only as many frames are taken as the stash has room for, so the owner's
/// frames are never dropped here. Returns whether some ring still holds frames this step
/// did not take.
fn service_ni(inner: &NicInner, scratch: &mut Vec<Frame>, budget: usize) -> bool {
    let t0 = Instant::now();
    let table = inner.read_table();
    let mut left = false;
    let mut taken = 0usize;
    for ch in table.channels.iter().flatten() {
        let Some(q) = ch.wide_ni() else { continue };
        if q.len() == 0 {
            continue;
        }
        let _guard = match ch.rx_lock.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                left = true;
                continue;
            }
        };
        let stash = ch.endpoint.channel();
        let room = stash.capacity().saturating_sub(stash.len()).min(budget);
        if room == 0 {
            left = true;
            continue;
        }
        let got = q.recv_burst(room, scratch);
        taken += got;
        let mut kept = false;
        for frame in scratch.drain(..) {
            if let Some(frame) = divert(&table, ch.id, frame) {
                let len = frame.len();
                // Only the holder of `rx_lock` pushes to the stash and it checked the
                // room; a failure would be a bug, and drops the frame counted.
                match stash.push(frame, len) {
                    Ok(()) => kept = true,
                    Err(_frame) => ch.endpoint.account().record_drop(DropReason::SoftDiscard),
                }
            }
        }
        if kept {
            ch.notifier.notify();
        }
        left |= got == room && q.len() > 0;
    }
    if taken > 0 {
        inner.account.charge_cpu(elapsed_ns(t0));
    }
    left
}
