//! The AF_XDP backend of [`Nic::open`](crate::Nic::open): the facade's `Backend` seam
//! over the raw layer of this module, on the memory of the NIC's [`FramePool`].
//!
//! One NIC is one `(interface, queue)`:
//!
//! ```text
//!   interface ── Dispatcher (attached, one per interface and process)
//!                  │ tail call by rx queue
//!   queue q ──── LrpXdp (this NIC's demux maps, gates, counters)
//!                  │ XSKMAP slot
//!                  ├─ NI-LRP: slot = channel id → that channel's own socket + RX ring
//!                  └─ SOFT-LRP / EAGER: every claimed frame → slot 0 → the shared socket
//!   XskQueue ─── fill ring (sized for every frame) + completion ring, one owner
//!   TX socket ── the queue's first socket: every channel transmits through its TX ring
//!   UMEM ─────── the FramePool's area: frames are received, rewritten and sent in place
//! ```
//!
//! **Fill ring.** It can hold every frame of the pool, and the poll step (and, in
//! NI-LRP, every 64 frames a channel receives) tops it up to
//! [`NicConfig::fill_ring`](crate::NicConfig::fill_ring) frames (at most half the pool): the kernel runs out of
//! posted buffers only when the pool itself is exhausted, so a flooded channel fills its
//! own ring and drops at its own gate, never empties the fill ring for everybody. The
//! kernel publishes its fill-ring consumer index lazily (once per batch it has cached),
//! so the fill level is computed from the backend's own counters: posted, minus taken
//! from RX rings, minus waiting in RX rings. The same counters make the census exact.
//!
//! **Gates.** A channel's gate (in the program's gate map) follows its RX ring's
//! occupancy: closed at 3/4, open again at 1/4 ([`lrp_core::channel::Gate`]). It is
//! re-evaluated whenever the channel receives and at every poll step, so a channel
//! whose owner stopped reading is closed within one step: its excess is dropped before
//! the kernel copies it (gate drops), not after (ring-full drops).
//!
//! **The kernel.** Frames no rule claims never reach a socket: the program passes them
//! (`XDP_PASS`, the default action) or drops them. AF_XDP cannot give a frame back to the
//! kernel's stack, so a frame the software demux finds unclaimed (its rule was removed
//! while it waited) is dropped and counted (`to_kernel_dropped`).
//!
//! The receive sockets and the NI-LRP channel queues with their gates are in `rx.rs`, the
//! dispatcher shared by the NICs of an interface in `attached.rs`.

mod attached;
mod rx;

use std::net::IpAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use lrp_core::channel::{Gate, GateState};
use lrp_core::demux::{ChannelId, DefaultAction, Listener, ListenerKey, SourceKey};
use lrp_core::flow::FlowKey;

use super::{Backend, BackendConfig, BackendStats, NiQueue, Readiness, RingCensus};
use crate::config::XdpAttach;
use crate::error::{Error, Result};
use crate::pool::{Frame, FramePool};
use crate::xdp::program::{AttachMode, DemuxConfig, DemuxMode, LrpXdp, ProgramConfig};
use crate::xdp::sys::{self, NetNs};
use crate::xdp::xsk::{BindMode, QueueConfig, SocketConfig, Umem, XskQueue, XskSocket};
use crate::xdp::XdpError;
use attached::Attached;
use rx::{NiGate, RxSocket, XdpNiQueue};

/// Ring size of the rings a socket has but does not use (the TX socket's RX ring, a
/// channel socket's TX ring): the kernel wants every socket to have a ring.
const UNUSED_RING: u32 = 64;

/// How many times a transmit kicks the kernel when it asks to be called again.
const KICKS: usize = 4;

/// How long `Nic::open` retries a queue that is still busy (see `open_queue`).
const BUSY_RETRY: Duration = Duration::from_millis(500);

/// A receiving channel re-evaluates every channel's gate at most this often.
const GATE_SWEEP: Duration = Duration::from_micros(50);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves no broken invariant worth more than
    // a lost frame; keep serving.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug, Default)]
struct Counters {
    /// Chunks posted to the fill ring.
    posted: AtomicU64,
    /// Descriptors taken from RX rings (every socket, including rings drained on close).
    received: AtomicU64,
    tx_submitted: AtomicU64,
    tx_bytes: AtomicU64,
    tx_completed: AtomicU64,
    tx_ring_full: AtomicU64,
    to_kernel_dropped: AtomicU64,
    /// Kernel counters of NI sockets that were closed (their sockets are gone).
    closed_ring_full: AtomicU64,
    closed_dropped: AtomicU64,
}

/// Everything of one NIC's AF_XDP side; NI queues hold a handle on it.
struct Shared {
    pool: FramePool,
    /// NI-LRP: a socket per channel; otherwise one shared RX socket.
    per_channel: bool,
    gates: bool,
    fill_target: usize,
    queue_id: u32,
    netns: NetNs,
    /// The fill/completion owner and socket factory.
    fq: Mutex<XskQueue>,
    /// This queue's demux program and maps.
    program: Mutex<LrpXdp>,
    max_slots: u32,
    /// The transmit socket (the queue's first socket) and a one-frame staging vector.
    tx: Mutex<(XskSocket, Vec<Frame>)>,
    /// A duplicate of the TX socket's fd (never readable: nothing is redirected to it).
    tx_poll_fd: OwnedFd,
    /// SOFT-LRP / EAGER: the shared RX socket (slot 0).
    rx: Option<RxSocket>,
    /// NI-LRP: the channels' queues by slot (= channel id).
    ni: RwLock<Vec<Option<Arc<XdpNiQueue>>>>,
    c: Counters,
    /// Time base of `last_sweep`.
    epoch: Instant,
    /// When the gates were last swept (nanoseconds since `epoch`).
    last_sweep: AtomicU64,
    /// Kept alive (and attached) while this NIC exists.
    attached: Arc<Attached>,
}

impl Shared {
    fn ni(&self) -> RwLockReadGuard<'_, Vec<Option<Arc<XdpNiQueue>>>> {
        self.ni.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Frames waiting in every RX ring.
    fn in_rx_rings(&self) -> u64 {
        let shared = self.rx.as_ref().map_or(0, |r| u64::from(r.len()));
        let ni: u64 = self
            .ni()
            .iter()
            .flatten()
            .map(|q| u64::from(q.rx.len()))
            .sum();
        shared + ni
    }

    /// Chunks the kernel holds on the fill side: posted and not yet delivered into an RX
    /// ring (in the fill ring, or taken by the kernel for a frame it then dropped).
    fn fill_level(&self) -> u64 {
        // Rings first, then `received`: a frame taken by a reader between the two reads
        // makes the level look lower (an extra post), never higher (a missed one).
        let in_rings = self.in_rx_rings();
        let received = self.c.received.load(Relaxed);
        let posted = self.c.posted.load(Relaxed);
        posted.saturating_sub(received).saturating_sub(in_rings)
    }

    fn refill_locked(&self, fq: &mut XskQueue) -> bool {
        let level = self.fill_level() as usize;
        if level >= self.fill_target {
            return true;
        }
        let want = self.fill_target - level;
        // Cannot fail: the UMEM was made from the pool.
        let n = fq.fill_from_pool(want).unwrap_or(0);
        self.c.posted.fetch_add(n as u64, Relaxed);
        if n > 0 && fq.needs_wakeup() {
            fq.wake();
        }
        n == want
    }

    /// Re-evaluate every channel's gate, at most once per [`GATE_SWEEP`]: a busy receiver
    /// (whose own channel never runs empty, so it never runs the poll step) keeps the
    /// gates of stalled channels current.
    fn sweep_gates(&self) {
        let now = self.epoch.elapsed().as_nanos() as u64;
        let last = self.last_sweep.load(Relaxed);
        if now.saturating_sub(last) < GATE_SWEEP.as_nanos() as u64
            || self
                .last_sweep
                .compare_exchange(last, now, Relaxed, Relaxed)
                .is_err()
        {
            return;
        }
        for q in self.ni().iter().flatten() {
            q.observe_gate();
        }
    }

    /// Top the fill ring up unless another thread is at it.
    fn try_refill(&self) {
        if let Ok(mut fq) = self.fq.try_lock() {
            self.refill_locked(&mut fq);
        }
    }

    fn reclaim_locked(&self, fq: &mut XskQueue) -> usize {
        let mut total = 0;
        loop {
            // Cannot fail: the UMEM was made from the pool.
            let n = fq.complete_to_pool(256).unwrap_or(0) as usize;
            total += n;
            if n < 256 {
                break;
            }
        }
        self.c.tx_completed.fetch_add(total as u64, Relaxed);
        total
    }

    /// Kick the TX ring until the kernel has taken everything or stops asking.
    fn kick(sock: &XskSocket) {
        for _ in 0..KICKS {
            match sock.kick() {
                Ok(true) => return,
                Ok(false) if sock.tx_pending() > 0 => std::thread::yield_now(),
                Ok(false) => return,
                Err(e) => {
                    log::debug!("TX kick failed: {e}");
                    return;
                }
            }
        }
    }

    /// The socket slot of channel `id` in the program's maps: its own slot in NI-LRP; in
    /// SOFT-LRP and EAGER any valid slot (the program sends claimed frames to slot 0).
    fn slot(&self, id: ChannelId) -> u32 {
        if self.per_channel {
            id.0
        } else {
            0
        }
    }

    fn channel_for_map(&self, id: ChannelId) -> ChannelId {
        ChannelId(self.slot(id))
    }
}

/// The AF_XDP backend (see the [module docs](self)).
pub(crate) struct XdpBackend {
    shared: Arc<Shared>,
}

impl Drop for XdpBackend {
    fn drop(&mut self) {
        // Stop the dispatcher from handing this queue's frames to the program before the
        // sockets close; the last NIC of the interface detaches the dispatcher (when
        // `attached` drops with `shared`).
        let s = &self.shared;
        if let Err(e) = lock(&s.attached.dispatcher).unregister(s.queue_id) {
            log::warn!(
                "unregistering queue {} from the dispatcher: {e}",
                s.queue_id
            );
        }
    }
}

fn attach_mode(a: XdpAttach) -> AttachMode {
    match a {
        XdpAttach::Skb => AttachMode::Skb,
        XdpAttach::Driver => AttachMode::Driver,
    }
}

/// Open queue `config.queue` of `ifname` on the memory of `pool` (see
/// [`Nic::open`](crate::Nic::open)).
pub(crate) fn open(ifname: &str, config: &BackendConfig, pool: FramePool) -> Result<XdpBackend> {
    let bytes = u64::from(pool.frame_size()) * u64::from(pool.frame_count());
    if !bytes.is_multiple_of(sys::page_size() as u64) {
        return Err(Error::InvalidConfig(
            "the frame area must be a whole number of 4 KiB pages: with 2048-byte frames \
             the frame count must be even",
        ));
    }
    let netns = NetNs::current()?;
    let ifindex = crate::xdp::interface_index(ifname)?;
    let qc = QueueConfig {
        bind: BindMode::Auto,
        need_wakeup: true,
        socket: SocketConfig {
            rx_size: UNUSED_RING,
            tx_size: config.tx_ring,
        },
    };
    let (fq, tx) = open_queue(&pool, ifindex, config.queue, &qc)?;
    let mut program = LrpXdp::load(&ProgramConfig {
        max_slots: config.ni_slots,
        ..ProgramConfig::default()
    })?;
    let rx = if config.ni {
        None
    } else {
        let sock = fq.add_socket(&SocketConfig {
            rx_size: config.rx_ring,
            tx_size: UNUSED_RING,
        })?;
        program.set_socket(0, &sock)?;
        Some(RxSocket::new(sock)?)
    };
    program.set_config(&DemuxConfig {
        mode: if config.ni {
            DemuxMode::Ni
        } else {
            DemuxMode::Soft { slot: 0 }
        },
        default: config.default_action,
    })?;
    let tx_poll_fd = tx.as_fd().try_clone_to_owned()?;
    let attached = Attached::get(&netns, ifindex, ifname, attach_mode(config.attach))?;
    let max_slots = program.max_slots();
    let shared = Arc::new(Shared {
        pool,
        per_channel: config.ni,
        gates: config.gates,
        fill_target: config.fill_target,
        queue_id: config.queue,
        netns,
        fq: Mutex::new(fq),
        program: Mutex::new(program),
        max_slots,
        tx: Mutex::new((tx, Vec::with_capacity(1))),
        tx_poll_fd,
        rx,
        ni: RwLock::new(Vec::new()),
        c: Counters::default(),
        epoch: Instant::now(),
        last_sweep: AtomicU64::new(0),
        attached,
    });
    {
        let mut fq = lock(&shared.fq);
        shared.refill_locked(&mut fq);
    }
    // Last: from here on the queue's frames reach the program.
    lock(&shared.attached.dispatcher).register(shared.queue_id, &lock(&shared.program))?;
    Ok(XdpBackend { shared })
}

/// Register the pool as a UMEM and open the queue. The kernel releases a closed socket's
/// hold on a queue asynchronously, so a queue whose previous user (another NIC, a raw
/// socket) closed a moment ago may still be busy: `EBUSY` is retried for up to
/// [`BUSY_RETRY`] before it is reported.
fn open_queue(
    pool: &FramePool,
    ifindex: u32,
    queue: u32,
    config: &QueueConfig,
) -> Result<(XskQueue, XskSocket)> {
    let deadline = Instant::now() + BUSY_RETRY;
    loop {
        // The UMEM first: its errors (memlock limit, CAP_NET_RAW) are about this NIC's
        // configuration; the program's (CAP_BPF) about the host. A UMEM whose first
        // bind failed cannot be used again, so every attempt registers a new one.
        let umem = Umem::from_pool(pool)?;
        match XskQueue::open(&umem, ifindex, queue, config) {
            Err(XdpError::QueueBusy { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            r => return r.map_err(Error::Xdp),
        }
    }
}

impl XdpBackend {
    fn map_result(r: std::result::Result<(), XdpError>) -> Result<()> {
        r.map_err(Error::Xdp)
    }
}

impl Backend for XdpBackend {
    fn pool(&self) -> &FramePool {
        &self.shared.pool
    }

    fn rx_burst(&self, max: usize, out: &mut Vec<Frame>) -> usize {
        let s = &self.shared;
        let Some(rx) = &s.rx else { return 0 };
        let start = out.len();
        let max = u32::try_from(max).unwrap_or(u32::MAX);
        let taken = lock(&rx.sock).receive_each(&s.pool, max, |f| out.push(f));
        s.c.received.fetch_add(u64::from(taken), Relaxed);
        out.len() - start
    }

    fn rx_pending(&self) -> bool {
        self.shared.rx.as_ref().is_some_and(|r| r.len() > 0)
    }

    fn rx_readiness(&self) -> Readiness<'_> {
        match &self.shared.rx {
            Some(rx) => Readiness::Fd(rx.fd.as_fd()),
            // NI-LRP has no shared ring; the facade does not wait on it. The TX socket's
            // RX ring is never filled, so this fd never becomes readable.
            None => Readiness::Fd(self.shared.tx_poll_fd.as_fd()),
        }
    }

    fn refill(&self) -> bool {
        let s = &self.shared;
        let mut fq = lock(&s.fq);
        s.refill_locked(&mut fq)
    }

    fn reclaim(&self) -> usize {
        let s = &self.shared;
        // Frames left in the TX ring by a transmit that gave up kicking go out now.
        if let Ok(tx) = s.tx.try_lock() {
            if tx.0.tx_pending() > 0 {
                Shared::kick(&tx.0);
            }
        }
        let mut fq = lock(&s.fq);
        s.reclaim_locked(&mut fq)
    }

    fn transmit(&self, frame: Frame) -> bool {
        let s = &self.shared;
        let len = frame.len() as u64;
        let mut guard = lock(&s.tx);
        let (sock, staged) = &mut *guard;
        staged.push(frame);
        let sent = match sock.transmit_frames(staged) {
            Ok(n) => n == 1,
            Err(e) => {
                // Cannot happen (one pool, checked by the facade); dropped below.
                log::warn!("transmit: {e}");
                false
            }
        };
        if !sent {
            // The TX ring is full: the frame goes back to the pool.
            staged.clear();
            drop(guard);
            s.c.tx_ring_full.fetch_add(1, Relaxed);
            return false;
        }
        s.c.tx_submitted.fetch_add(1, Relaxed);
        s.c.tx_bytes.fetch_add(len, Relaxed);
        Shared::kick(sock);
        drop(guard);
        if let Ok(mut fq) = s.fq.try_lock() {
            s.reclaim_locked(&mut fq);
        }
        true
    }

    fn pass_to_kernel(&self, frame: Frame) {
        drop(frame);
        self.shared.c.to_kernel_dropped.fetch_add(1, Relaxed);
    }

    fn sync_flow(&self, key: &FlowKey, channel: Option<ChannelId>) -> Result<()> {
        let s = &self.shared;
        let mut p = lock(&s.program);
        Self::map_result(match channel {
            Some(id) => p.insert_flow(key, s.channel_for_map(id)),
            None => p.remove_flow(key),
        })
    }

    fn sync_listener(&self, key: &ListenerKey, listener: Option<Listener>) -> Result<()> {
        let s = &self.shared;
        let mut p = lock(&s.program);
        Self::map_result(match listener {
            Some(l) => p.insert_listener(
                key,
                &Listener {
                    channel: l.channel.map(|c| s.channel_for_map(c)),
                    syn_channel: l.syn_channel.map(|c| s.channel_for_map(c)),
                },
            ),
            None => p.remove_listener(key),
        })
    }

    fn sync_source(&self, key: &SourceKey, channel: Option<ChannelId>) -> Result<()> {
        let s = &self.shared;
        let mut p = lock(&s.program);
        Self::map_result(match channel {
            Some(id) => p.insert_source(key, s.channel_for_map(id)),
            None => p.remove_source(key),
        })
    }

    fn sync_host(&self, addr: &IpAddr, channel: Option<ChannelId>) -> Result<()> {
        let s = &self.shared;
        let mut p = lock(&s.program);
        Self::map_result(match channel {
            Some(id) => p.insert_host(*addr, s.channel_for_map(id)),
            None => p.remove_host(*addr),
        })
    }

    fn sync_default(&self, action: DefaultAction) -> Result<()> {
        Self::map_result(lock(&self.shared.program).set_default_action(action))
    }

    fn ni_open(&self, id: ChannelId, capacity: usize) -> Result<Arc<dyn NiQueue>> {
        let s = &self.shared;
        let slot = id.0;
        if slot >= s.max_slots {
            return Err(Error::NoChannelSlot(
                "every NI-LRP slot of this NIC queue is taken (XSKMAP size: NicConfig::ni_slots)",
            ));
        }
        let rx_size = u32::try_from(capacity)
            .map_err(|_| Error::InvalidConfig("NI-LRP channel capacity above 65536"))?;
        let config = SocketConfig {
            rx_size,
            tx_size: UNUSED_RING,
        };
        // The socket must be created in the NIC's namespace, whichever thread asks.
        let sock = {
            let mut fq = lock(&s.fq);
            let fq: &mut XskQueue = &mut fq;
            s.netns.run(move || fq.add_socket(&config))??
        };
        let rx = RxSocket::new(sock)?;
        let (gate, gate_base) = {
            let mut p = lock(&s.program);
            p.set_gate(slot, GateState::Open)?;
            let gate = if s.gates {
                Some(NiGate {
                    gate: Gate::new(rx.capacity as usize),
                    map: Mutex::new(p.gates()?),
                })
            } else {
                None
            };
            let base = p.slot_counters(slot)?.gate_drops;
            p.set_socket(slot, &*lock(&rx.sock))?;
            (gate, base)
        };
        let q = Arc::new(XdpNiQueue {
            shared: Arc::clone(s),
            slot,
            rx,
            gate,
            gate_base,
            since_refill: AtomicU32::new(0),
        });
        let mut ni = s.ni.write().unwrap_or_else(|e| e.into_inner());
        let i = slot as usize;
        if ni.len() <= i {
            ni.resize_with(i + 1, || None);
        }
        ni[i] = Some(Arc::clone(&q));
        Ok(q)
    }

    fn ni_close(&self, id: ChannelId) {
        let s = &self.shared;
        let q = {
            let mut ni = s.ni.write().unwrap_or_else(|e| e.into_inner());
            ni.get_mut(id.0 as usize).and_then(Option::take)
        };
        let Some(q) = q else { return };
        if let Err(e) = lock(&s.program).clear_socket(q.slot) {
            log::warn!("clearing XSKMAP slot {}: {e}", q.slot);
        }
        // Frames already in the ring go back to the pool (more that were in flight when
        // the slot was cleared are drained when the queue drops).
        q.drain();
        let stats = lock(&q.rx.sock).statistics();
        if let Ok(st) = stats {
            s.c.closed_ring_full.fetch_add(st.rx_ring_full, Relaxed);
            s.c.closed_dropped.fetch_add(st.rx_dropped, Relaxed);
        }
    }

    fn ni_receive_maintains(&self) -> bool {
        // `XdpNiQueue::after_receive`: every receive re-evaluates the gates (at most every
        // GATE_SWEEP) and every REFILL_EVERY frames tops up the fill ring.
        true
    }

    fn census(&self) -> RingCensus {
        let s = &self.shared;
        let rx = s.in_rx_rings();
        let completion = u64::from(lock(&s.fq).completion_pending());
        let received = s.c.received.load(Relaxed);
        let posted = s.c.posted.load(Relaxed);
        let fill = posted.saturating_sub(received).saturating_sub(rx);
        let completed = s.c.tx_completed.load(Relaxed);
        let submitted = s.c.tx_submitted.load(Relaxed);
        let tx = submitted
            .saturating_sub(completed)
            .saturating_sub(completion);
        RingCensus {
            fill: fill as usize,
            rx: rx as usize,
            tx: tx as usize,
            completion: completion as usize,
        }
    }

    fn stats(&self) -> BackendStats {
        let s = &self.shared;
        let c = &s.c;
        let (pc, slots) = {
            let p = lock(&s.program);
            let pc = p.counters().unwrap_or_default();
            let slots: Vec<_> = (0..s.max_slots)
                .filter_map(|i| p.slot_counters(i).ok())
                .collect();
            (pc, slots)
        };
        let slot_sum =
            |f: fn(&crate::xdp::program::SlotCounters) -> u64| slots.iter().map(f).sum::<u64>();
        let (redirected, gate_drops, no_socket) = (
            slot_sum(|c| c.redirected),
            slot_sum(|c| c.gate_drops),
            slot_sum(|c| c.no_socket),
        );
        let tx_stats = lock(&s.tx).0.statistics().unwrap_or_default();
        let shared_rx =
            s.rx.as_ref()
                .and_then(|r| lock(&r.sock).statistics().ok())
                .unwrap_or_default();
        let (mut ni_ring_full, mut ni_dropped) = (
            c.closed_ring_full.load(Relaxed),
            c.closed_dropped.load(Relaxed),
        );
        for q in s.ni().iter().flatten() {
            if let Ok(st) = lock(&q.rx.sock).statistics() {
                ni_ring_full += st.rx_ring_full;
                ni_dropped += st.rx_dropped;
            }
        }
        BackendStats {
            rx_offered: pc.passed
                + pc.dropped_default
                + pc.bad_slot
                + pc.malformed_total()
                + redirected
                + gate_drops
                + no_socket,
            rx_accepted: c.received.load(Relaxed) + s.in_rx_rings(),
            rx_no_buffer: tx_stats.rx_fill_ring_empty_descs,
            rx_ring_full: shared_rx.rx_ring_full,
            rx_oversized: shared_rx.rx_dropped + ni_dropped,
            gate_drops,
            ni_ring_full,
            xdp_drop_malformed: pc.malformed_total(),
            xdp_drop_unmatched: pc.dropped_default + pc.bad_slot,
            to_kernel: pc.passed,
            to_kernel_dropped: c.to_kernel_dropped.load(Relaxed),
            tx_frames: c.tx_submitted.load(Relaxed),
            tx_bytes: c.tx_bytes.load(Relaxed),
            tx_ring_full: c.tx_ring_full.load(Relaxed),
        }
    }
}
