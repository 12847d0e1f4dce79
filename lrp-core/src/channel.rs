//! NI channels: a bounded queue per endpoint, with early discard and a hysteresis gate.
//!
//! In LRP every endpoint owns its own bounded queue of received, still unprocessed
//! frames — its NI channel. The demux puts a frame on its endpoint's channel; when the
//! channel is full the frame is discarded *at once* ([`NiChannel::push`] hands it back
//! untouched), before any protocol work is spent on it. One flooded endpoint fills only
//! its own channel, never a queue that others share.
//!
//! The [`Gate`] moves that discard earlier still. In NI-LRP the channel is an AF_XDP RX
//! ring in the kernel; a full ring drops frames only after the kernel has copied them.
//! Userspace watches the fill level and closes a gate (a BPF map entry) at 3/4 full, so
//! the XDP program drops before the copy, and reopens it at 1/4 full. The gap between the
//! two thresholds (hysteresis) keeps it from flapping on every frame.
//!
//! [`Endpoint`] bundles a channel with its [`Account`]; [`Endpoints`] is the registry
//! that both the LRP path and the eager baseline ([`crate::eager`]) deliver into.

use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

use crate::account::Account;
use crate::demux::ChannelId;

/// State of a [`Gate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GateState {
    /// Frames are admitted.
    Open,
    /// Frames are dropped before they reach the queue.
    Closed,
}

/// Hysteresis gate for a bounded queue of capacity `C`: closes when the occupancy reaches
/// `ceil(3C/4)`, reopens when it falls to `floor(C/4)`.
///
/// The gate only computes state; whoever enforces it (a BPF map read by the XDP program,
/// or a producer that checks [`Gate::is_closed`]) is the caller's choice. It is shared by
/// reference between threads: the state is an atomic flag and each transition is
/// reported by [`Gate::observe`] to exactly one caller.
#[derive(Debug)]
pub struct Gate {
    close_at: usize,
    open_at: usize,
    closed: AtomicBool,
    closings: AtomicU64,
}

impl Gate {
    /// A gate, initially open, for a queue of `capacity` slots: closes at
    /// `ceil(3 * capacity / 4)`, opens at `floor(capacity / 4)`.
    ///
    /// # Panics
    /// If `capacity` is zero (a zero-capacity queue has no meaningful thresholds).
    pub fn new(capacity: usize) -> Gate {
        assert!(capacity > 0, "Gate capacity must be non-zero");
        // Split as (c/4)*3 + ... so that 3*c cannot overflow for huge capacities.
        let close_at = capacity / 4 * 3 + (capacity % 4 * 3).div_ceil(4);
        let open_at = capacity / 4;
        // close_at - open_at >= capacity / 2 > 0 for every capacity >= 1.
        Gate {
            close_at,
            open_at,
            closed: AtomicBool::new(false),
            closings: AtomicU64::new(0),
        }
    }

    /// A gate with explicit thresholds: closes when the occupancy is `>= close_at`, opens
    /// when it is `<= open_at`. `None` unless `open_at < close_at`.
    pub fn with_thresholds(close_at: usize, open_at: usize) -> Option<Gate> {
        (open_at < close_at).then(|| Gate {
            close_at,
            open_at,
            closed: AtomicBool::new(false),
            closings: AtomicU64::new(0),
        })
    }

    /// Occupancy at or above which the gate closes.
    pub fn close_at(&self) -> usize {
        self.close_at
    }

    /// Occupancy at or below which the gate reopens.
    pub fn open_at(&self) -> usize {
        self.open_at
    }

    /// Feed the current occupancy; returns the new state if this call changed it.
    ///
    /// At `len >= close_at` the gate closes, at `len <= open_at` it opens, in between it
    /// keeps its state. When several threads observe concurrently, each transition is
    /// returned to exactly one of them.
    ///
    /// An occupancy read before a concurrent push or pop can be stale by the time it is
    /// observed. A caller driven by several threads should therefore, after every
    /// transition, read the occupancy again and observe once more (as [`NiChannel`]
    /// does): the flag is accessed with `SeqCst`, so if the occupancy itself is read with
    /// `SeqCst` (crossbeam's `ArrayQueue::len` is) the gate ends, once the threads are
    /// quiet, in the state the thresholds give for the final occupancy. A caller that
    /// mirrors the gate into a BPF map should write [`Gate::state`] after a transition
    /// rather than the returned value, so that a late writer cannot publish a stale state.
    #[inline]
    pub fn observe(&self, len: usize) -> Option<GateState> {
        // Load before swap: the common case (no transition) stays a plain read (a `mov` on
        // x86 even with SeqCst) and does not bounce the cache line between threads.
        if len >= self.close_at {
            if !self.closed.load(SeqCst) && !self.closed.swap(true, SeqCst) {
                self.closings.fetch_add(1, Relaxed);
                return Some(GateState::Closed);
            }
        } else if len <= self.open_at && self.closed.load(SeqCst) && self.closed.swap(false, SeqCst)
        {
            return Some(GateState::Open);
        }
        None
    }

    /// The current state.
    #[inline]
    pub fn state(&self) -> GateState {
        if self.is_closed() {
            GateState::Closed
        } else {
            GateState::Open
        }
    }

    /// Whether the gate is closed.
    #[inline]
    pub fn is_closed(&self) -> bool {
        self.closed.load(SeqCst)
    }

    /// How many times the gate has closed.
    pub fn closings(&self) -> u64 {
        self.closings.load(Relaxed)
    }
}

/// A snapshot of an [`NiChannel`]'s counters.
///
/// Every counter is monotonic. At a quiescent point (no push or pop in progress) the
/// snapshot is exact: `offered == enqueued + early_discarded` and
/// `enqueued == dequeued + len`. While pushes and pops run concurrently, the counters are
/// read one by one without a common instant and each may lag by the operations in
/// flight; in particular a frame popped right after it was pushed can be counted as
/// dequeued before it is counted as enqueued. `offered` is always exactly
/// `enqueued + early_discarded` of the same snapshot (it is derived, not stored, which
/// saves one atomic update per frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChannelCounters {
    /// Frames offered to [`NiChannel::push`].
    pub offered: u64,
    /// Frames accepted into the queue.
    pub enqueued: u64,
    /// Frames refused because the queue was full (early discard).
    pub early_discarded: u64,
    /// Frames taken out of the queue.
    pub dequeued: u64,
    /// Bytes of the frames accepted.
    pub bytes_enqueued: u64,
    /// Bytes of the frames refused.
    pub bytes_discarded: u64,
    /// Highest occupancy seen right after a push.
    pub high_water: usize,
    /// How many times the channel's gate closed.
    pub gate_closings: u64,
}

/// Counters written by producers, on their own cache line(s).
#[derive(Debug, Default)]
#[repr(align(128))]
struct ProducerCounters {
    enqueued: AtomicU64,
    early_discarded: AtomicU64,
    bytes_enqueued: AtomicU64,
    bytes_discarded: AtomicU64,
    high_water: AtomicUsize,
}

/// Counters written by consumers, on their own cache line(s).
#[derive(Debug, Default)]
#[repr(align(128))]
struct ConsumerCounters {
    dequeued: AtomicU64,
}

/// A bounded, lock-free, multi-producer multi-consumer queue of frame descriptors with
/// early discard, counters and a [`Gate`].
///
/// `T` is whatever names a frame: a UMEM descriptor in `lrp-net`, a `Vec<u8>` in tests.
#[derive(Debug)]
pub struct NiChannel<T> {
    queue: ArrayQueue<T>,
    produced: ProducerCounters,
    consumed: ConsumerCounters,
    gate: Gate,
}

impl<T> NiChannel<T> {
    /// An empty channel of `capacity` frames, with a [`Gate::new`]`(capacity)` gate.
    ///
    /// # Panics
    /// If `capacity` is zero.
    pub fn new(capacity: usize) -> NiChannel<T> {
        assert!(capacity > 0, "NiChannel capacity must be non-zero");
        NiChannel {
            queue: ArrayQueue::new(capacity),
            produced: ProducerCounters::default(),
            consumed: ConsumerCounters::default(),
            gate: Gate::new(capacity),
        }
    }

    /// Queue a frame of `bytes` bytes. If the channel is full the frame is discarded
    /// early: it is handed back untouched in `Err` for the caller to recycle, and counted.
    ///
    /// The gate is informational here: a push is refused only when the queue is full,
    /// never because the gate is closed.
    #[inline]
    pub fn push(&self, item: T, bytes: usize) -> Result<(), T> {
        let c = &self.produced;
        match self.queue.push(item) {
            Ok(()) => {
                c.enqueued.fetch_add(1, Relaxed);
                c.bytes_enqueued.fetch_add(bytes as u64, Relaxed);
                let len = self.queue.len();
                if len > c.high_water.load(Relaxed) {
                    c.high_water.fetch_max(len, Relaxed);
                }
                self.update_gate(len);
                Ok(())
            }
            Err(item) => {
                c.early_discarded.fetch_add(1, Relaxed);
                c.bytes_discarded.fetch_add(bytes as u64, Relaxed);
                // A full queue is always at or above the closing threshold.
                self.update_gate(self.queue.capacity());
                Err(item)
            }
        }
    }

    /// Take the oldest frame, if any.
    #[inline]
    pub fn pop(&self) -> Option<T> {
        let item = self.queue.pop()?;
        self.consumed.dequeued.fetch_add(1, Relaxed);
        // Popping can only open the gate, so when it is open there is nothing to check.
        if self.gate.is_closed() {
            self.update_gate(self.queue.len());
        }
        Some(item)
    }

    /// Take up to `max` frames, oldest first, handing each to `sink`. Returns how many
    /// were taken. Cheaper per frame than repeated [`pop`](NiChannel::pop): the counters
    /// and the gate are updated once per batch.
    pub fn pop_batch(&self, max: usize, mut sink: impl FnMut(T)) -> usize {
        let mut n = 0;
        while n < max {
            match self.queue.pop() {
                Some(item) => {
                    n += 1;
                    sink(item);
                }
                None => break,
            }
        }
        if n > 0 {
            self.consumed.dequeued.fetch_add(n as u64, Relaxed);
            if self.gate.is_closed() {
                self.update_gate(self.queue.len());
            }
        }
        n
    }

    /// Observe `len`, and after each transition re-read the occupancy and observe again,
    /// so that a stale `len` cannot leave the gate in the wrong state once the threads are
    /// quiet (see [`Gate::observe`]). Bounded: flapping beyond that is left to the next
    /// push or pop.
    #[inline]
    fn update_gate(&self, mut len: usize) {
        for _ in 0..4 {
            if self.gate.observe(len).is_none() {
                return;
            }
            len = self.queue.len();
        }
    }

    /// Number of frames queued (a moment's view when others push or pop concurrently).
    #[inline]
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether no frame is queued.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Whether the queue is full.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.queue.is_full()
    }

    /// Maximum number of frames queued.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.queue.capacity()
    }

    /// The channel's gate, updated by every push and by pops while it is closed.
    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    /// Whether the channel's gate is closed (occupancy reached 3/4 of the capacity and
    /// has not yet fallen back to 1/4).
    #[inline]
    pub fn gate_closed(&self) -> bool {
        self.gate.is_closed()
    }

    /// Read the counters (see [`ChannelCounters`] for the consistency guarantees).
    pub fn counters(&self) -> ChannelCounters {
        let p = &self.produced;
        let enqueued = p.enqueued.load(Relaxed);
        let early_discarded = p.early_discarded.load(Relaxed);
        ChannelCounters {
            offered: enqueued + early_discarded,
            enqueued,
            early_discarded,
            dequeued: self.consumed.dequeued.load(Relaxed),
            bytes_enqueued: p.bytes_enqueued.load(Relaxed),
            bytes_discarded: p.bytes_discarded.load(Relaxed),
            high_water: p.high_water.load(Relaxed),
            gate_closings: self.gate.closings(),
        }
    }
}

/// A frame descriptor that knows the length of the frame it names (for byte counters).
pub trait FrameLen {
    /// Length of the frame in bytes.
    fn frame_len(&self) -> usize;
}

impl FrameLen for Vec<u8> {
    fn frame_len(&self) -> usize {
        self.len()
    }
}

impl FrameLen for Box<[u8]> {
    fn frame_len(&self) -> usize {
        self.len()
    }
}

impl FrameLen for &[u8] {
    fn frame_len(&self) -> usize {
        self.len()
    }
}

/// An endpoint: its NI channel and its account.
///
/// Shared as `Arc<Endpoint<T>>` between the thread that delivers frames (the demux) and
/// the thread that receives them (the endpoint's owner).
#[derive(Debug)]
pub struct Endpoint<T> {
    id: ChannelId,
    channel: NiChannel<T>,
    account: Account,
}

impl<T> Endpoint<T> {
    /// An endpoint with an empty channel of `capacity` frames.
    ///
    /// # Panics
    /// If `capacity` is zero.
    pub fn new(id: ChannelId, capacity: usize) -> Endpoint<T> {
        Endpoint {
            id,
            channel: NiChannel::new(capacity),
            account: Account::new(),
        }
    }

    /// The id the demux uses for this endpoint.
    pub fn id(&self) -> ChannelId {
        self.id
    }

    /// The endpoint's NI channel.
    pub fn channel(&self) -> &NiChannel<T> {
        &self.channel
    }

    /// The endpoint's account.
    pub fn account(&self) -> &Account {
        &self.account
    }
}

/// Registry of endpoints by [`ChannelId`], with O(1) lookup.
///
/// Ids are small integers; the id of a removed endpoint is reused by a later insert, so
/// remove the endpoint's demux entries before (or together with) the endpoint — a frame
/// demultiplexed to a removed id finds no endpoint and is dropped as
/// [`NoEndpoint`](crate::account::DropReason::NoEndpoint).
#[derive(Debug)]
pub struct Endpoints<T> {
    slots: Vec<Option<Arc<Endpoint<T>>>>,
    free: Vec<u32>,
}

impl<T> Default for Endpoints<T> {
    fn default() -> Self {
        Endpoints {
            slots: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<T> Endpoints<T> {
    /// An empty registry.
    pub fn new() -> Endpoints<T> {
        Endpoints::default()
    }

    /// Create an endpoint with a channel of `capacity` frames and return it; its id is
    /// [`Endpoint::id`].
    ///
    /// # Panics
    /// If `capacity` is zero, or if more than `u32::MAX` endpoints exist at once.
    pub fn insert(&mut self, capacity: usize) -> Arc<Endpoint<T>> {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                // Invariant: at most u32::MAX ids exist (documented panic above).
                let i = u32::try_from(self.slots.len()).expect("more than u32::MAX endpoints");
                self.slots.push(None);
                i
            }
        };
        let endpoint = Arc::new(Endpoint::new(ChannelId(index), capacity));
        self.slots[index as usize] = Some(Arc::clone(&endpoint));
        endpoint
    }

    /// Remove an endpoint from the registry and return it. Frames still in its channel
    /// stay there for the holder of the returned `Arc` to drain and recycle.
    pub fn remove(&mut self, id: ChannelId) -> Option<Arc<Endpoint<T>>> {
        let endpoint = self.slots.get_mut(id.0 as usize)?.take()?;
        self.free.push(id.0);
        Some(endpoint)
    }

    /// The endpoint with this id.
    #[inline]
    pub fn get(&self, id: ChannelId) -> Option<&Arc<Endpoint<T>>> {
        self.slots.get(id.0 as usize)?.as_ref()
    }

    /// Number of endpoints.
    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Whether there is no endpoint.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All endpoints, in id order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Endpoint<T>>> + '_ {
        self.slots.iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_thresholds() {
        let cases = [
            (1, 1, 0),
            (2, 2, 0),
            (3, 3, 0),
            (4, 3, 1),
            (5, 4, 1),
            (8, 6, 2),
            (1024, 768, 256),
        ];
        for (cap, close, open) in cases {
            let g = Gate::new(cap);
            assert_eq!((g.close_at(), g.open_at()), (close, open), "capacity {cap}");
            // close_at is the smallest len with 4*len >= 3*cap; open_at the largest with 4*len <= cap.
            assert!(4 * close >= 3 * cap && 4 * (close - 1) < 3 * cap);
            assert!(4 * open <= cap && 4 * (open + 1) > cap);
        }
        let huge = Gate::new(usize::MAX);
        assert!(huge.close_at() > huge.open_at());
        assert!(Gate::with_thresholds(5, 5).is_none());
        assert!(Gate::with_thresholds(5, 4).is_some());
    }

    #[test]
    fn gate_hysteresis() {
        let g = Gate::new(8); // close at 6, open at 2
        assert_eq!(g.state(), GateState::Open);
        assert_eq!(g.observe(5), None);
        assert_eq!(g.observe(6), Some(GateState::Closed));
        assert_eq!(g.observe(8), None);
        assert_eq!(g.observe(3), None, "between thresholds: stays closed");
        assert!(g.is_closed());
        assert_eq!(g.observe(2), Some(GateState::Open));
        assert_eq!(g.observe(0), None);
        assert_eq!(g.observe(5), None, "between thresholds: stays open");
        assert_eq!(g.state(), GateState::Open);
        assert_eq!(g.observe(7), Some(GateState::Closed));
        assert_eq!(g.closings(), 2);
    }

    #[test]
    fn push_pop_counts_and_early_discard() {
        let ch = NiChannel::new(4);
        for i in 0..4u32 {
            assert_eq!(ch.push(i, 10), Ok(()));
        }
        assert!(ch.is_full());
        assert!(ch.gate_closed(), "4 >= 3 closes a capacity-4 gate");
        assert_eq!(ch.push(99, 7), Err(99), "full: handed back untouched");
        assert_eq!(ch.pop(), Some(0));
        assert_eq!(ch.pop(), Some(1));
        assert!(ch.gate_closed(), "2 > 1 keeps it closed");
        assert_eq!(ch.pop(), Some(2));
        assert!(!ch.gate_closed(), "1 <= 1 reopens");
        let mut rest = Vec::new();
        assert_eq!(ch.pop_batch(10, |x| rest.push(x)), 1);
        assert_eq!(rest, [3]);
        assert_eq!(ch.pop(), None);
        assert!(ch.is_empty());
        assert_eq!(
            ch.counters(),
            ChannelCounters {
                offered: 5,
                enqueued: 4,
                early_discarded: 1,
                dequeued: 4,
                bytes_enqueued: 40,
                bytes_discarded: 7,
                high_water: 4,
                gate_closings: 1,
            }
        );
    }

    #[test]
    fn pop_batch_respects_max_and_reopens_gate() {
        let ch = NiChannel::new(8);
        for i in 0..8 {
            ch.push(i, 1).unwrap();
        }
        assert!(ch.gate_closed());
        let mut got = Vec::new();
        assert_eq!(ch.pop_batch(5, |x| got.push(x)), 5);
        assert!(ch.gate_closed(), "3 left, open threshold is 2");
        assert_eq!(ch.pop_batch(1, |x| got.push(x)), 1);
        assert!(!ch.gate_closed());
        assert_eq!(got, [0, 1, 2, 3, 4, 5]);
        assert_eq!(ch.pop_batch(0, |_| unreachable!()), 0);
        assert_eq!(ch.counters().dequeued, 6);
    }

    #[test]
    fn endpoints_registry_reuses_ids() {
        let mut eps: Endpoints<u8> = Endpoints::new();
        let a = eps.insert(4);
        let b = eps.insert(8);
        assert_eq!((a.id(), b.id()), (ChannelId(0), ChannelId(1)));
        assert_eq!(eps.len(), 2);
        assert_eq!(
            eps.get(ChannelId(1)).map(|e| e.channel().capacity()),
            Some(8)
        );
        assert!(eps.get(ChannelId(2)).is_none());
        let removed = eps.remove(ChannelId(0)).unwrap();
        assert!(Arc::ptr_eq(&removed, &a));
        assert!(eps.get(ChannelId(0)).is_none());
        assert!(eps.remove(ChannelId(0)).is_none());
        assert_eq!(eps.len(), 1);
        let c = eps.insert(2);
        assert_eq!(c.id(), ChannelId(0));
        assert_eq!(
            eps.iter().map(|e| e.id()).collect::<Vec<_>>(),
            [ChannelId(0), ChannelId(1)]
        );
        assert!(!eps.is_empty());
    }
}
