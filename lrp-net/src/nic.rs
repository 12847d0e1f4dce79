//! The NIC facade: [`Nic`], its [`NicConfig`] and [`Mode`], demux [`Rule`]s and the
//! endpoints' [`Channel`]s.
//!
//! A [`Nic`] is one (interface, queue) with its [`FramePool`]. Every endpoint — a
//! socket, a listener, a virtual service — asks it for a [`Channel`] with a [`Rule`] that
//! says which frames are its own; the channel is the endpoint's NI channel (its own
//! bounded queue, its own [`Account`]). What happens between the wire and the channel
//! depends on the [`Mode`]:
//!
//! * [`Mode::NiLrp`] — the NIC demultiplexes (the XDP program; on the simulated NIC, the
//!   injection itself) into the channel's own ring and drops at a closed gate before any
//!   copy.
//! * [`Mode::SoftLrp`] — one shared RX ring; the **poll step** classifies each frame and
//!   puts it on its channel, discarding it at once if that channel is full.
//! * [`Mode::Eager`] — the baseline: the poll step moves frames into one shared input
//!   queue and does the protocol work (classification, checksum verification, lookup) for
//!   every frame before queueing it to its endpoint, dropping only at a full endpoint
//!   queue.
//!
//! # Who runs the poll step
//!
//! [`Nic::poll_rx`] is the poll step. It moves frames from the shared RX ring to the
//! channels (SOFT-LRP, EAGER), re-evaluates the gates (NI-LRP), returns transmitted
//! frames to the pool and posts free frames for reception. At most one thread runs it at
//! a time (a lock). Either a dedicated thread calls it in a loop (with
//! [`Nic::wait_rx`] to sleep while idle), or nobody does and the receivers run it
//! themselves: [`Channel::recv`] runs it when its own channel is empty and
//! [`Channel::wait`] runs it before blocking, each only if no other thread is running it
//! (a `try_lock`), so receivers never wait for each other. In the LRP modes the step is
//! cheap (a classification and a lookup per frame); the protocol work happens later, on
//! the receiver's thread, and is charged to the receiver's account.
//!
//! ```
//! use lrp_net::{Mode, Nic, NicConfig, Rule};
//! use lrp_net::sim::{build, SimConfig};
//! use lrp_core::flow::Proto;
//!
//! let config = NicConfig::default().frame_count(256).mode(Mode::SoftLrp);
//! let (nic, peer) = Nic::sim(SimConfig::new(config))?;
//! let ch = nic.channel(Rule::listener(Proto::Udp, None, 9000), 64)?;
//!
//! let frame = build::udp_v4("10.0.0.1:5000".parse()?, "10.0.0.2:9000".parse()?, b"ping");
//! assert!(peer.inject(&frame));
//! let got = ch.recv().expect("demultiplexed to the channel");
//! assert_eq!(&got[..], &frame[..]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard, TryLockError};
use std::time::{Duration, Instant};

use lrp_core::account::{Account, AccountSnapshot, DropReason};
use lrp_core::channel::{Endpoint, Endpoints};
use lrp_core::demux::{ChannelId, DefaultAction, Demux, Listener, ListenerKey};
use lrp_core::eager::EagerPipeline;
use lrp_core::flow::{FlowKey, Proto};

use crate::backend::{Backend, BackendStats, NiQueue, Readiness, NO_CHANNEL};
use crate::error::{Error, Result};
use crate::notify::{Notifier, Waiting};
use crate::pool::{Frame, FramePool, PoolCensus};
use crate::sim::{SimBackend, SimConfig, SimPeer};
use crate::{soft, sys};

/// How long a blocked waiter sleeps before re-running the poll step itself when it
/// cannot rely on a wake-up: the pool is exhausted (frames freed by other threads do not
/// signal), or another thread holds the poll-step lock.
const SERVICE_SLICE: Duration = Duration::from_millis(1);

/// NI-LRP: how long a blocked waiter sleeps before re-running the poll step while some
/// channel's ring fills with its gate open (its owner is not reading). The NIC fills
/// rings without telling anybody; the gate closes only when a thread looks, and it must
/// look before the last quarter of the ring fills (a 256-frame ring at 0.3 Mpps: 200 µs).
const GATE_SLICE: Duration = Duration::from_micros(100);

/// NI-LRP on a backend whose receive path maintains the fill ring and the gates: a
/// waiter runs the poll step before sleeping only if none ran in this long.
const STEP_SLICE: Duration = Duration::from_micros(50);

/// Largest NI-LRP channel ring (AF_XDP rings are powers of two; this bounds memory).
const MAX_NI_RING: usize = 1 << 16;

/// Default NI-LRP channel slots ([`NicConfig::ni_slots`]).
const DEFAULT_NI_SLOTS: u32 = 64;
/// Fewest NI-LRP slots: a listener and its host channel.
const MIN_NI_SLOTS: u32 = 2;
/// Most NI-LRP slots: every slot is a socket with its own ring, and the NIC's statistics
/// read every slot's counters.
const MAX_NI_SLOTS: u32 = 1024;

/// Which receive path a [`Nic`] runs. The same program runs in every mode; benchmarks
/// compare them by changing this one setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// NI-LRP: demultiplexing in the NIC. Each channel has its own receive ring in the
    /// NIC (an AF_XDP socket chosen by the XDP program) and a gate that drops a saturated
    /// channel's frames before they are copied. Limited to tens or hundreds of channels
    /// ([`NicConfig::ni_slots`]); beyond them, channels for exact rules are soft channels
    /// fed in software (see [`Nic::channel`]).
    NiLrp,
    /// SOFT-LRP: one shared RX ring; the poll step demultiplexes into per-channel
    /// [`NiChannel`](lrp_core::channel::NiChannel)s and discards early when one is full.
    /// Scales to many thousands of channels.
    #[default]
    SoftLrp,
    /// The eager baseline (4.4BSD-like): one shared input queue, protocol work for every
    /// frame in the poll step, drops only at a full endpoint queue.
    Eager,
}

/// How the XDP program is attached ([`Nic::open`] only; the simulated NIC ignores it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum XdpAttach {
    /// Generic (SKB) mode: works on every interface, after the kernel built an skb.
    #[default]
    Skb,
    /// Native (driver) mode: in the driver, before any skb (veth: MTU <= ~3500).
    Driver,
}

/// Configuration of a [`Nic`], built by chaining setters on [`NicConfig::default`].
///
/// ```
/// use lrp_net::{Mode, NicConfig, XdpAttach};
/// use lrp_core::demux::DefaultAction;
///
/// let config = NicConfig::default()
///     .queue(0)
///     .frame_size(2048)
///     .frame_count(8192)
///     .rx_ring(2048)
///     .attach(XdpAttach::Driver)
///     .mode(Mode::NiLrp)
///     .default_action(DefaultAction::Pass);
/// assert_eq!(config.get_mode(), Mode::NiLrp);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicConfig {
    queue: u32,
    frame_size: u32,
    frame_count: u32,
    headroom: u32,
    rx_ring: u32,
    tx_ring: u32,
    fill_ring: u32,
    completion_ring: u32,
    attach: XdpAttach,
    mode: Mode,
    default_action: DefaultAction,
    gate: bool,
    eager_queue: u32,
    batch: usize,
    ni_slots: u32,
}

impl Default for NicConfig {
    /// Queue 0, 8192 frames of 2048 bytes, 2048-entry RX/TX/completion rings, a
    /// 4096-entry fill ring, SKB attach, SOFT-LRP, unmatched frames passed to the kernel,
    /// gates on, a 1024-frame eager input queue, poll batches of 64, 64 NI-LRP slots.
    fn default() -> Self {
        NicConfig {
            queue: 0,
            frame_size: 2048,
            frame_count: 8192,
            headroom: 0,
            rx_ring: 2048,
            tx_ring: 2048,
            fill_ring: 4096,
            completion_ring: 2048,
            attach: XdpAttach::Skb,
            mode: Mode::SoftLrp,
            default_action: DefaultAction::Pass,
            gate: true,
            eager_queue: 1024,
            batch: 64,
            ni_slots: DEFAULT_NI_SLOTS,
        }
    }
}

impl NicConfig {
    /// The interface queue to attach to.
    pub fn queue(mut self, queue: u32) -> Self {
        self.queue = queue;
        self
    }
    /// Chunk size of the frame pool: a power of two, 2048 or 4096. Frames larger than a
    /// chunk (less the kernel's 256-byte RX headroom) are dropped by the NIC.
    pub fn frame_size(mut self, bytes: u32) -> Self {
        self.frame_size = bytes;
        self
    }
    /// Number of frames in the pool. It must cover the fill ring plus every frame that
    /// may sit in channels, in the application's hands and in the TX ring; when the pool
    /// runs dry the NIC drops for every channel alike. With AF_XDP ([`Nic::open`]) the
    /// pool must be a whole number of 4 KiB pages: with 2048-byte frames, an even count.
    pub fn frame_count(mut self, count: u32) -> Self {
        self.frame_count = count;
        self
    }
    /// Bytes reserved in front of each frame for prepending headers in place.
    pub fn headroom(mut self, bytes: u32) -> Self {
        self.headroom = bytes;
        self
    }
    /// Entries of the shared RX ring (SOFT-LRP, EAGER). Power of two.
    pub fn rx_ring(mut self, entries: u32) -> Self {
        self.rx_ring = entries;
        self
    }
    /// Entries of the TX ring. Power of two.
    pub fn tx_ring(mut self, entries: u32) -> Self {
        self.tx_ring = entries;
        self
    }
    /// Entries of the fill ring. Power of two. The poll step keeps
    /// `min(fill_ring, frame_count / 2)` frames posted in it (as far as the pool allows),
    /// leaving the rest of the pool to channels, the application and TX. (AF_XDP: the
    /// kernel's fill ring is sized to hold every frame of the pool, so it never refuses
    /// a post; this setting is only the posted target.)
    pub fn fill_ring(mut self, entries: u32) -> Self {
        self.fill_ring = entries;
        self
    }
    /// Entries of the completion ring. Power of two. (AF_XDP: the kernel's completion
    /// ring is sized to hold every frame of the pool; this setting is then unused.)
    pub fn completion_ring(mut self, entries: u32) -> Self {
        self.completion_ring = entries;
        self
    }
    /// How to attach the XDP program (AF_XDP backend).
    pub fn attach(mut self, attach: XdpAttach) -> Self {
        self.attach = attach;
        self
    }
    /// The receive path.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }
    /// What to do with frames no rule claims (default: pass them to the host kernel, so
    /// the box stays reachable).
    pub fn default_action(mut self, action: DefaultAction) -> Self {
        self.default_action = action;
        self
    }
    /// NI-LRP: whether channels have a gate (default on). Without it a saturated channel
    /// drops at its full ring, after the copy — the comparison point for the gate.
    pub fn gate(mut self, enabled: bool) -> Self {
        self.gate = enabled;
        self
    }
    /// EAGER: capacity of the shared input queue.
    pub fn eager_queue(mut self, frames: u32) -> Self {
        self.eager_queue = frames;
        self
    }
    /// Frames the poll step handles per call when a receiver runs it opportunistically.
    pub fn batch(mut self, frames: usize) -> Self {
        self.batch = frames;
        self
    }
    /// NI-LRP: how many channels get a receive queue of their own in the NIC (AF_XDP: the
    /// size of the XDP program's XSKMAP, gate and per-slot counter maps), from 2 to
    /// 1024; default 64. A slot is a socket with its own RX ring (and its memory), so
    /// keep it to tens or hundreds. When every slot is taken, further channels with
    /// exact rules become *soft channels* (see [`Nic::channel`]).
    pub fn ni_slots(mut self, slots: u32) -> Self {
        self.ni_slots = slots;
        self
    }

    /// The interface queue.
    pub fn get_queue(&self) -> u32 {
        self.queue
    }
    /// The chunk size.
    pub fn get_frame_size(&self) -> u32 {
        self.frame_size
    }
    /// The number of frames.
    pub fn get_frame_count(&self) -> u32 {
        self.frame_count
    }
    /// The headroom.
    pub fn get_headroom(&self) -> u32 {
        self.headroom
    }
    /// Shared RX ring entries.
    pub fn get_rx_ring(&self) -> u32 {
        self.rx_ring
    }
    /// TX ring entries.
    pub fn get_tx_ring(&self) -> u32 {
        self.tx_ring
    }
    /// Fill ring entries.
    pub fn get_fill_ring(&self) -> u32 {
        self.fill_ring
    }
    /// Completion ring entries.
    pub fn get_completion_ring(&self) -> u32 {
        self.completion_ring
    }
    /// The XDP attach mode.
    pub fn get_attach(&self) -> XdpAttach {
        self.attach
    }
    /// The receive path.
    pub fn get_mode(&self) -> Mode {
        self.mode
    }
    /// The action for unmatched frames.
    pub fn get_default_action(&self) -> DefaultAction {
        self.default_action
    }
    /// Whether NI-LRP gates are enabled.
    pub fn get_gate(&self) -> bool {
        self.gate
    }
    /// The eager input queue capacity.
    pub fn get_eager_queue(&self) -> u32 {
        self.eager_queue
    }
    /// The opportunistic poll batch.
    pub fn get_batch(&self) -> usize {
        self.batch
    }
    /// NI-LRP channel slots in the NIC.
    pub fn get_ni_slots(&self) -> u32 {
        self.ni_slots
    }

    /// Check the settings the pool does not check itself.
    pub(crate) fn validate(&self) -> Result<()> {
        let rings = [
            self.rx_ring,
            self.tx_ring,
            self.fill_ring,
            self.completion_ring,
        ];
        if rings.iter().any(|r| !r.is_power_of_two()) {
            return Err(Error::InvalidConfig(
                "ring sizes must be non-zero powers of two",
            ));
        }
        if self.eager_queue == 0 {
            return Err(Error::InvalidConfig(
                "the eager input queue needs room for a frame",
            ));
        }
        if self.batch == 0 {
            return Err(Error::InvalidConfig(
                "the poll batch must be at least one frame",
            ));
        }
        if !(MIN_NI_SLOTS..=MAX_NI_SLOTS).contains(&self.ni_slots) {
            return Err(Error::InvalidConfig(
                "ni_slots must be between 2 and 1024 (NI-LRP channel slots in the NIC)",
            ));
        }
        Ok(())
    }

    /// Frames the fill ring is kept at: at most half the pool, so that the other half
    /// stays for channels, the application and TX.
    pub(crate) fn fill_target(&self) -> usize {
        self.fill_ring.min(self.frame_count / 2).max(1) as usize
    }
}

/// A demux rule: which frames belong to a channel. Precedence (first match wins): exact
/// 5-tuple, SYN rule of the matching listener, listener, host, default action (see
/// [`lrp_core::demux`]).
///
/// ```
/// use lrp_net::Rule;
/// use lrp_core::flow::{FlowKey, Proto};
/// use std::net::IpAddr;
///
/// let vip: IpAddr = "10.0.0.100".parse().unwrap();
/// let established = Rule::from(Rule::listener(Proto::Tcp, vip, 80));
/// let new_conns = Rule::listener(Proto::Tcp, vip, 80).syn_only();
/// let any_dns = Rule::from(Rule::listener(Proto::Udp, None, 53));
/// let control = Rule::host(vip); // ARP and ICMP for the VIP
/// let flow = Rule::exact(FlowKey {
///     proto: Proto::Udp,
///     src: "10.0.0.1".parse().unwrap(),
///     dst: "10.0.0.2".parse().unwrap(),
///     sport: 5000,
///     dport: 9000,
/// });
/// assert_ne!(established, new_conns);
/// # let _ = (any_dns, control, flow);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// Frames of one flow, keyed as they arrive (`src` = the remote peer).
    Exact(FlowKey),
    /// Frames to a local (proto, address or any, port) that no exact rule claims.
    Listener(ListenerKey),
    /// New TCP connection requests (SYN without ACK) to a listener's (address, port): a
    /// SYN flood then fills only this channel. Without a plain listener rule for the same
    /// key, the listener's other frames take the default action.
    Syn(ListenerKey),
    /// ARP for, and ICMP to, a local address (the stack's control channel).
    Host(IpAddr),
}

impl Rule {
    /// A rule for one flow; `key` as the frames arrive (`src` = the remote peer).
    pub fn exact(key: FlowKey) -> Rule {
        Rule::Exact(key)
    }

    /// A listener on `port` at `addr` (`None`: every local address). Use it as a rule with
    /// `Rule::from` / `.into()`, or make it a new-connection rule with
    /// [`ListenerRule::syn_only`].
    pub fn listener(proto: Proto, addr: impl Into<Option<IpAddr>>, port: u16) -> ListenerRule {
        ListenerKey {
            proto,
            addr: addr.into(),
            port,
        }
        .into()
    }

    /// ARP for, and ICMP to, a local address.
    pub fn host(addr: IpAddr) -> Rule {
        Rule::Host(addr)
    }
}

/// A listener rule under construction (from [`Rule::listener`]): converts into
/// [`Rule::Listener`], or into [`Rule::Syn`] with [`syn_only`](Self::syn_only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerRule {
    key: ListenerKey,
}

impl ListenerRule {
    /// The rule for new connection requests (TCP SYN without ACK) only.
    pub fn syn_only(self) -> Rule {
        Rule::Syn(self.key)
    }

    /// The listener key.
    pub fn key(&self) -> ListenerKey {
        self.key
    }
}

impl From<ListenerKey> for ListenerRule {
    fn from(key: ListenerKey) -> Self {
        ListenerRule { key }
    }
}

impl From<ListenerRule> for Rule {
    fn from(rule: ListenerRule) -> Rule {
        Rule::Listener(rule.key)
    }
}

/// Statistics of one channel. Counters are monotonic; a snapshot taken while frames move
/// is approximate, one taken at a quiescent point exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelStats {
    /// The channel.
    pub id: ChannelId,
    /// NI-LRP: a soft channel, without a slot in the NIC (see [`Nic::channel`]): its
    /// frames are moved to it in software, and it has no gate (its full-queue drops count
    /// as `early_discards`). `false` in the other modes.
    pub soft: bool,
    /// Frames handed to the application by `recv`/`recv_batch`.
    pub delivered_packets: u64,
    /// Bytes of those frames.
    pub delivered_bytes: u64,
    /// NI-LRP: frames dropped by the NIC at the closed gate, before the copy.
    pub gate_drops: u64,
    /// NI-LRP: frames dropped by the NIC at the full ring, after the copy.
    pub ring_full_drops: u64,
    /// NI-LRP: other kernel drops of the channel's socket (zero on the simulated NIC).
    pub kernel_drops: u64,
    /// SOFT-LRP, and NI-LRP soft channels: frames discarded early by the software demux
    /// because the channel was full.
    pub early_discards: u64,
    /// EAGER: frames dropped at the full endpoint queue after protocol processing.
    pub endpoint_full_drops: u64,
    /// Frames queued for transmission through this channel.
    pub tx_packets: u64,
    /// Bytes of those frames.
    pub tx_bytes: u64,
    /// Frames dropped because the TX ring was full.
    pub tx_drops: u64,
    /// CPU nanoseconds charged to this channel (by the stack's lazy protocol work).
    pub cpu_ns: u64,
    /// Frames waiting in the channel now.
    pub queued: usize,
    /// The channel's capacity.
    pub capacity: usize,
    /// How many times the channel's gate closed.
    pub gate_closings: u64,
    /// The full account, with every drop reason (including those recorded by the stack,
    /// e.g. bad checksums) and the NIC-counted gate and ring-full drops folded in.
    pub account: AccountSnapshot,
}

/// Statistics of the NIC as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NicStats {
    /// The receive path.
    pub mode: Mode,
    /// Open channels.
    pub channels: usize,
    /// NI-LRP: how many of them are soft channels, without a slot in the NIC (see
    /// [`Nic::channel`]). Zero in the other modes.
    pub soft_channels: usize,
    /// Frames the poll step took from the shared RX ring.
    pub rx_frames: u64,
    /// Drops that belong to no channel (malformed, unclaimed, shared queue full, eager
    /// protocol drops) and the CPU time of the poll step.
    pub account: AccountSnapshot,
    /// Frames waiting in the eager shared input queue.
    pub eager_backlog: usize,
    /// The backend's counters.
    pub backend: BackendStats,
}

/// Where every frame of the pool is, for checking that none is lost. See
/// [`Nic::census`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Census {
    /// Frames in the pool.
    pub total: usize,
    /// On the pool's free list.
    pub free: usize,
    /// Posted in the fill ring.
    pub fill: usize,
    /// In RX rings (the shared one, or NI-LRP channel rings), not yet taken.
    pub rx: usize,
    /// Queued in channels (SOFT-LRP and EAGER endpoint queues, the eager input queue).
    pub channels: usize,
    /// Held by the application (`Frame` handles outside any channel).
    pub held: usize,
    /// Queued for transmission.
    pub tx: usize,
    /// Transmitted, not yet returned to the pool.
    pub completion: usize,
    /// The pool's own audit of its chunk states.
    pub pool: PoolCensus,
}

impl Census {
    /// Whether every frame is accounted for exactly once: the parts sum to the total, the
    /// ring counts match the chunks in the kernel state, the channel and application
    /// counts match the chunks held, and the pool saw no violation.
    pub fn is_conserved(&self) -> bool {
        let parts =
            self.free + self.fill + self.rx + self.channels + self.held + self.tx + self.completion;
        parts == self.total
            && self.pool.is_conserved()
            && self.pool.violations == 0
            && self.free == self.pool.free
            && self.fill + self.rx + self.tx + self.completion == self.pool.kernel
            && self.channels + self.held == self.pool.held
    }
}

/// Which channels use a listener key, as plain listener and as SYN rule.
#[derive(Debug, Default, Clone, Copy)]
struct ListenerSlots {
    plain: Option<ChannelId>,
    syn: Option<ChannelId>,
}

/// The demux table and the endpoints, under one lock: the poll step reads them for a
/// batch, channel creation and removal write them.
pub(crate) struct Table {
    pub(crate) demux: Demux,
    pub(crate) endpoints: Endpoints<Frame>,
    /// Per-channel state beyond the core endpoint, by the same id.
    pub(crate) channels: Vec<Option<Arc<ChannelShared>>>,
    listeners: HashMap<ListenerKey, ListenerSlots>,
}

impl Table {
    pub(crate) fn channel(&self, id: ChannelId) -> Option<&Arc<ChannelShared>> {
        self.channels.get(id.0 as usize)?.as_ref()
    }
}

/// What the facade keeps per channel.
pub(crate) struct ChannelShared {
    pub(crate) id: ChannelId,
    /// The endpoint. Its core queue holds the channel's frames in SOFT-LRP and EAGER and
    /// for a soft NI-LRP channel; for an NI-LRP channel with a slot it is the *stash*:
    /// frames of this channel that the poll step took from its ring while moving soft
    /// channels' frames out of it ([`soft::service_ni`]), received before the ring.
    pub(crate) endpoint: Arc<Endpoint<Frame>>,
    /// NI-LRP: the channel's queue in the NIC. `None` in the other modes and for a soft
    /// channel.
    ni: Option<Arc<dyn NiQueue>>,
    /// NI-LRP: a soft channel — the NIC had no slot left for it. Exact rules only, kept
    /// in the facade's table alone; its frames arrive in the ring of the channel whose
    /// NIC rule claims them and are moved here ([`soft::divert`]).
    pub(crate) soft: bool,
    /// NI-LRP: the channel has a listener, SYN or host rule, so its ring may carry soft
    /// channels' frames.
    wide: AtomicBool,
    /// NI-LRP: held while taking frames from the channel's ring (by its receiver, or by
    /// the poll step moving soft channels' frames out), so that the channel's own frames
    /// keep their order through the stash.
    pub(crate) rx_lock: Mutex<()>,
    /// Signalled when a frame is queued in the endpoint's core queue (by the poll step,
    /// the simulated NIC, or a soft channel's frame being moved).
    pub(crate) notifier: Notifier,
    rules: Mutex<Vec<Rule>>,
    delivered_packets: AtomicU64,
    delivered_bytes: AtomicU64,
}

impl ChannelShared {
    /// NI-LRP: the channel's ring in the NIC if soft channels' frames may arrive in it.
    pub(crate) fn wide_ni(&self) -> Option<&Arc<dyn NiQueue>> {
        self.ni
            .as_ref()
            .filter(|_| self.wide.load(Ordering::Relaxed))
    }

    /// Whether the channel has a rule other than an exact one.
    fn update_wide(&self, rules: &[Rule]) {
        let wide = rules.iter().any(|r| !matches!(r, Rule::Exact(_)));
        self.wide.store(wide, Ordering::Relaxed);
    }
}

/// The receive path state.
pub(crate) enum RxPath {
    /// The NIC demultiplexes; nothing to hold here.
    Ni,
    /// SOFT-LRP: the demux step needs no state beyond the table.
    Soft,
    /// EAGER: the shared input queue and its accounting.
    Eager(Box<EagerPipeline<Frame>>),
}

pub(crate) struct NicInner {
    pub(crate) config: NicConfig,
    pub(crate) pool: FramePool,
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) table: RwLock<Table>,
    pub(crate) path: RxPath,
    /// Drops that belong to no channel, and the CPU time of the poll step.
    pub(crate) account: Account,
    pub(crate) rx_frames: AtomicU64,
    /// The poll-step lock, with its scratch batch.
    step: Mutex<Vec<Frame>>,
    /// The last refill could not fill the fill ring (the pool is exhausted).
    starving: AtomicBool,
    /// NI-LRP: at the last step some channel had frames waiting behind an open gate.
    watch_gates: AtomicBool,
    /// NI-LRP: open soft channels (no slot in the NIC).
    soft_channels: AtomicUsize,
    /// NI-LRP: the last step left frames in a ring that may hold soft channels' frames.
    soft_left: AtomicBool,
    /// Time base of `last_step`.
    epoch: Instant,
    /// When the last poll step started (nanoseconds since `epoch`).
    last_step: AtomicU64,
}

impl NicInner {
    pub(crate) fn read_table(&self) -> RwLockReadGuard<'_, Table> {
        // A panic while holding the lock cannot leave the table half-updated in a way that
        // breaks memory safety; keep serving rather than propagate the poison.
        self.table.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_table(&self) -> RwLockWriteGuard<'_, Table> {
        self.table.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Run the poll step if no other thread is running it. Returns the frames it took
    /// from the shared RX ring, or `None` if another thread holds the step.
    fn try_step(&self, budget: usize) -> Option<usize> {
        match self.step.try_lock() {
            Ok(mut scratch) => Some(self.step_locked(&mut scratch, budget)),
            Err(TryLockError::Poisoned(p)) => Some(self.step_locked(&mut p.into_inner(), budget)),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    fn step(&self, budget: usize) -> usize {
        let mut scratch: MutexGuard<'_, Vec<Frame>> =
            self.step.lock().unwrap_or_else(|e| e.into_inner());
        self.step_locked(&mut scratch, budget)
    }

    /// Whether a poll step started less than `slice` ago.
    fn stepped_within(&self, slice: Duration) -> bool {
        let last = self.last_step.load(Ordering::Relaxed);
        self.now_ns().saturating_sub(last) < slice.as_nanos() as u64
    }

    /// NI-LRP: the channels whose rings may carry soft channels' frames.
    fn feeders(&self) -> Vec<Arc<ChannelShared>> {
        let table = self.read_table();
        table
            .channels
            .iter()
            .flatten()
            .filter(|c| c.wide_ni().is_some())
            .cloned()
            .collect()
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn step_locked(&self, scratch: &mut Vec<Frame>, budget: usize) -> usize {
        self.last_step.store(self.now_ns(), Ordering::Relaxed);
        // Frames left over by a step that panicked go back to the pool.
        scratch.clear();
        self.backend.reclaim();
        let n = match &self.path {
            RxPath::Ni => {
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
                    let left = soft::service_ni(self, scratch, budget);
                    self.soft_left.store(left, Ordering::Relaxed);
                }
                0
            }
            RxPath::Soft => soft::demux_step(self, scratch, budget),
            RxPath::Eager(eager) => soft::eager_step(self, eager, scratch, budget),
        };
        self.rx_frames.fetch_add(n as u64, Ordering::Relaxed);
        let full = self.backend.refill();
        self.starving.store(!full, Ordering::Relaxed);
        n
    }
}

/// A network interface queue driven by lrp, in one [`Mode`]. A cheap, cloneable handle
/// (`Send + Sync`); the NIC lives until the last handle and the last [`Channel`] are
/// dropped.
///
/// See the [module docs](self) for an example and for who runs the poll step.
#[derive(Clone)]
pub struct Nic {
    inner: Arc<NicInner>,
}

impl fmt::Debug for Nic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Nic")
            .field("mode", &self.inner.config.mode)
            .field("channels", &self.inner.read_table().endpoints.len())
            .field("pool", &self.inner.pool)
            .finish()
    }
}

impl Nic {
    /// A NIC on the simulated wire, and the peer that drives the wire: it injects frames
    /// and captures what the NIC transmits or hands to the host kernel. No privileges
    /// needed; the receive paths are the same as on a real interface.
    ///
    /// ```
    /// use lrp_net::{Nic, NicConfig};
    /// use lrp_net::sim::SimConfig;
    ///
    /// let (nic, peer) = Nic::sim(SimConfig::new(NicConfig::default().frame_count(64)))?;
    /// assert!(nic.census().is_conserved());
    /// # drop(peer);
    /// # Ok::<(), lrp_net::Error>(())
    /// ```
    pub fn sim(config: SimConfig) -> Result<(Nic, SimPeer)> {
        config.nic.validate()?;
        let pool = FramePool::new(
            config.nic.frame_count,
            config.nic.frame_size,
            config.nic.headroom,
        )?;
        let backend = Arc::new(SimBackend::new(&config, pool)?);
        let nic = Nic::from_backend(config.nic.clone(), backend.clone())?;
        Ok((nic, SimPeer::new(backend)))
    }

    /// Open queue [`config.queue`](NicConfig::queue) of interface `ifname` with AF_XDP.
    ///
    /// **Call it on a thread in the interface's network namespace** (interface names and
    /// AF_XDP sockets are per namespace). The returned `Nic` and its channels may then be
    /// used from any thread; channels opened later from a thread in another namespace
    /// create their sockets in the NIC's namespace (which needs `CAP_SYS_ADMIN`).
    ///
    /// What it sets up (see [`crate::xdp`]): a [`FramePool`] of `frame_count` frames whose
    /// area is the AF_XDP UMEM, the fill/completion rings of the queue (sized to hold every
    /// frame), a TX socket, the demux program with this NIC's maps and, for
    /// [`Mode::SoftLrp`] and [`Mode::Eager`], the shared RX socket. In [`Mode::NiLrp`]
    /// every [`channel`](Self::channel) gets its own socket (RX ring of the channel's
    /// capacity) and gate, while the program's [`NicConfig::ni_slots`] slots last (then
    /// exact-rule channels are soft channels, see [`channel`](Self::channel)). The
    /// program is attached to the interface in [`NicConfig::attach`] mode through a
    /// per-interface dispatcher: one `Nic` per queue, any number of queues of one
    /// interface in one process. Frames that no rule claims take [`NicConfig::default_action`] in the program (`Pass`: the kernel keeps
    /// ARP, ICMP, ssh and every port lrp does not serve). Dropping the last `Nic` handle
    /// and channel of an interface detaches the program (a BPF link: also when the
    /// process dies).
    ///
    /// # A multi-queue interface
    ///
    /// A NIC serves one queue; frames that arrive on other queues go to the kernel. To
    /// serve every queue, open one `Nic` per queue (each with its own pool and channels,
    /// typically one worker thread per queue) with the same rules on each: the hardware
    /// (RSS) picks the queue of each flow, and the flow's channel on that queue receives
    /// it. On veth, the receive queue of a frame is the sender's transmit queue (driver
    /// mode), which the sender's kernel picks per flow. Alternatively steer the traffic
    /// lrp serves to one queue (`ethtool -N`) or use one queue (`ethtool -L`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a bad configuration (a frame area that is not a
    /// whole number of pages: with 2048-byte frames the count must be even);
    /// [`Error::Pool`] if the frame area cannot be mapped; otherwise [`Error::Xdp`] with
    /// the AF_XDP layer's reason and what to do about it: missing privileges
    /// ([`XdpError::PermissionDenied`](crate::xdp::XdpError::PermissionDenied) names the
    /// capability), no such interface in this thread's namespace, XDP not supported in the
    /// requested mode (or driver mode refused at this MTU), an MTU larger than a frame can
    /// receive, the locked-memory limit, a queue already bound by another UMEM (EBUSY:
    /// another `Nic` or program on this queue; since the kernel releases a closed socket's
    /// queue asynchronously, this is retried for half a second first), another XDP program
    /// on the interface.
    ///
    /// ```no_run
    /// use lrp_net::{Mode, Nic, NicConfig, Rule, XdpAttach};
    /// use lrp_core::flow::Proto;
    ///
    /// let config = NicConfig::default().mode(Mode::NiLrp).attach(XdpAttach::Skb);
    /// let nic = Nic::open("eth0", config)?;
    /// let dns = nic.channel(Rule::listener(Proto::Udp, None, 53), 1024)?;
    /// while let Some(frame) = dns.recv() {
    ///     // parse, answer in place, transmit ...
    /// #   drop(frame);
    /// }
    /// # Ok::<(), lrp_net::Error>(())
    /// ```
    pub fn open(ifname: &str, config: NicConfig) -> Result<Nic> {
        config.validate()?;
        let backend = crate::xdp::backend::open(ifname, &config)?;
        Nic::from_backend(config, Arc::new(backend))
    }

    /// Build a NIC over a backend: the seam where a real backend plugs in.
    pub(crate) fn from_backend(config: NicConfig, backend: Arc<dyn Backend>) -> Result<Nic> {
        config.validate()?;
        let pool = backend.pool().clone();
        let path = match config.mode {
            Mode::NiLrp => RxPath::Ni,
            Mode::SoftLrp => RxPath::Soft,
            Mode::Eager => RxPath::Eager(Box::new(EagerPipeline::new(config.eager_queue as usize))),
        };
        backend.sync_default(config.default_action)?;
        let full = backend.refill();
        let inner = NicInner {
            table: RwLock::new(Table {
                demux: Demux::new(config.default_action),
                endpoints: Endpoints::new(),
                channels: Vec::new(),
                listeners: HashMap::new(),
            }),
            pool,
            backend,
            path,
            account: Account::new(),
            rx_frames: AtomicU64::new(0),
            step: Mutex::new(Vec::with_capacity(config.batch)),
            starving: AtomicBool::new(!full),
            watch_gates: AtomicBool::new(false),
            soft_channels: AtomicUsize::new(0),
            soft_left: AtomicBool::new(false),
            epoch: Instant::now(),
            last_step: AtomicU64::new(0),
            config,
        };
        Ok(Nic {
            inner: Arc::new(inner),
        })
    }

    /// The receive path.
    pub fn mode(&self) -> Mode {
        self.inner.config.mode
    }

    /// The configuration the NIC was opened with.
    pub fn config(&self) -> &NicConfig {
        &self.inner.config
    }

    /// The frame pool (for allocating frames to transmit, or checking occupancy).
    pub fn pool(&self) -> &FramePool {
        &self.inner.pool
    }

    /// Open a channel for the frames `rule` selects, with room for `capacity` frames.
    /// The channel is an endpoint: its own queue, its own [`Account`]. In NI-LRP the
    /// capacity is rounded up to a power of two (the size of the channel's ring in the
    /// NIC); see [`Channel::capacity`].
    ///
    /// # NI-LRP: slots, then soft channels
    ///
    /// In NI-LRP a channel gets a slot in the NIC — its own ring and gate — while slots
    /// last ([`NicConfig::ni_slots`]). When none is left, a channel for an **exact** rule
    /// is opened as a *soft channel* ([`Channel::is_soft`], [`ChannelStats::soft`]): a
    /// bounded queue in the facade only, as in SOFT-LRP. The NIC does not know its rule
    /// and keeps delivering its frames to the channel whose rule claims them there (the
    /// listener's, the SYN or the host channel); whoever takes frames from that ring — its
    /// receiver, or the poll step that the soft channel's own `recv`/`wait` run — moves
    /// them to the soft channel first, discarding early (counted as
    /// [`DropReason::SoftDiscard`]) when it is full. A soft channel keeps early
    /// demultiplexing, its own queue, lazy processing and accounting; what it loses is
    /// the NIC's gate (its frames are copied before they can be discarded) and, since its
    /// frames share the claiming channel's ring, some isolation from that channel.
    /// Its rules can only be exact rules. A soft channel is opened only if a listener or
    /// host rule of an NI channel claims the flow in the NIC; otherwise, and for other
    /// rules, the call fails with [`Error::NoChannelSlot`].
    ///
    /// Errors: [`Error::RuleInUse`] if another channel owns the rule,
    /// [`Error::InvalidRule`] for a SYN rule on UDP, [`Error::InvalidConfig`] for a zero
    /// capacity, [`Error::NoChannelSlot`] if an NI-LRP backend has no slot left and the
    /// channel cannot be soft (see above).
    pub fn channel(&self, rule: impl Into<Rule>, capacity: usize) -> Result<Channel> {
        let rule = rule.into();
        check_rule(&rule)?;
        if capacity == 0 {
            return Err(Error::InvalidConfig(
                "a channel needs room for at least one frame",
            ));
        }
        let inner = &self.inner;
        let mut table = inner.write_table();
        if rule_owner(&table, &rule).is_some() {
            return Err(Error::RuleInUse(rule));
        }
        // In NI-LRP frames queue in the NIC's ring, not in the core NiChannel, which
        // stays empty; it still carries the endpoint's id and account.
        let (ni, core_capacity) = if inner.config.mode == Mode::NiLrp {
            let ring = capacity
                .checked_next_power_of_two()
                .filter(|&r| r <= MAX_NI_RING)
                .ok_or(Error::InvalidConfig("NI-LRP channel capacity above 65536"))?;
            // The core queue is the stash (or, for a soft channel, the queue itself).
            (Some(ring), ring)
        } else {
            (None, capacity)
        };
        let endpoint = table.endpoints.insert(core_capacity);
        let id = endpoint.id();
        let mut soft = false;
        let ni = match ni {
            Some(ring) => match inner.backend.ni_open(id, ring) {
                Ok(q) => Some(q),
                Err(Error::NoChannelSlot(_)) if soft_feasible(&table, &rule) => {
                    soft = true;
                    None
                }
                Err(e) => {
                    table.endpoints.remove(id);
                    return Err(e);
                }
            },
            None => None,
        };
        let notifier = match Notifier::new() {
            Ok(n) => n,
            Err(e) => {
                table.endpoints.remove(id);
                if ni.is_some() {
                    inner.backend.ni_close(id);
                }
                return Err(e.into());
            }
        };
        let shared = Arc::new(ChannelShared {
            id,
            endpoint,
            ni,
            soft,
            wide: AtomicBool::new(false),
            rx_lock: Mutex::new(()),
            notifier,
            rules: Mutex::new(Vec::new()),
            delivered_packets: AtomicU64::new(0),
            delivered_bytes: AtomicU64::new(0),
        });
        let slot = id.0 as usize;
        if table.channels.len() <= slot {
            table.channels.resize_with(slot + 1, || None);
        }
        table.channels[slot] = Some(Arc::clone(&shared));
        if let Err(e) = self.install(&mut table, &shared, rule) {
            table.channels[slot] = None;
            table.endpoints.remove(id);
            if shared.ni.is_some() {
                inner.backend.ni_close(id);
            }
            return Err(e);
        }
        if soft {
            inner.soft_channels.fetch_add(1, Ordering::Relaxed);
        }
        drop(table);
        Ok(Channel {
            nic: self.clone(),
            shared,
        })
    }

    /// Close a channel: remove its rules and its endpoint; frames still queued go back to
    /// the pool. Returns its final statistics. (Dropping a [`Channel`] does the same.)
    pub fn remove_channel(&self, channel: Channel) -> ChannelStats {
        let stats = channel.stats();
        drop(channel);
        stats
    }

    /// The poll step, for up to `budget` frames: return transmitted frames to the pool,
    /// move received frames to their channels (SOFT-LRP: demux and early discard; EAGER:
    /// shared queue and protocol work; NI-LRP: re-evaluate the gates — the NIC already
    /// demultiplexed), then post free frames for reception. Returns how many frames it
    /// took from the shared RX ring (0 in NI-LRP). Waits if another thread is running it.
    pub fn poll_rx(&self, budget: usize) -> usize {
        self.inner.step(budget)
    }

    /// Block until the shared RX ring has frames for [`poll_rx`](Self::poll_rx), or until
    /// `timeout` (`None`: no limit). Returns whether frames are pending. For a dedicated
    /// poll thread in SOFT-LRP or EAGER: `loop { nic.wait_rx(None)?; nic.poll_rx(64); }`.
    /// While the pool is exhausted it returns after at most 1 ms, so that the loop's poll
    /// step refills the fill ring as frames are freed. In NI-LRP there is no shared ring:
    /// the call sleeps for `timeout` (or 1 ms if `None`), at most 100 µs while some
    /// channel's ring fills behind an open gate, and returns `false`, which paces a
    /// service loop that keeps the fill ring full and the gates current.
    pub fn wait_rx(&self, timeout: Option<Duration>) -> Result<bool> {
        let inner = &self.inner;
        if inner.config.mode == Mode::NiLrp {
            let slice = if inner.watch_gates.load(Ordering::Relaxed) {
                GATE_SLICE
            } else {
                SERVICE_SLICE
            };
            std::thread::sleep(timeout.map_or(slice, |t| t.min(slice)));
            return Ok(false);
        }
        let deadline = deadline(timeout);
        loop {
            let armed = Armed::new(inner.backend.rx_readiness());
            armed.consume();
            if inner.backend.rx_pending() {
                armed.finish(true);
                return Ok(true);
            }
            let Some(wait) = remaining(deadline) else {
                armed.finish(false);
                return Ok(false);
            };
            if inner.starving.load(Ordering::Relaxed) {
                // The pool is exhausted and frames freed elsewhere signal nothing: return
                // after a slice so that the caller's poll step can refill the fill ring.
                let slice = wait.map_or(SERVICE_SLICE, |w| w.min(SERVICE_SLICE));
                sys::poll_fds(&[armed.fd()], Some(slice))?;
                let pending = inner.backend.rx_pending();
                armed.finish(pending);
                return Ok(pending);
            }
            sys::poll_fds(&[armed.fd()], wait)?;
            armed.finish(false);
        }
    }

    /// Change the action for frames no rule claims. Fails only if the NIC refuses the
    /// update (AF_XDP: the BPF map write failed), leaving the action unchanged.
    pub fn set_default_action(&self, action: DefaultAction) -> Result<()> {
        let mut table = self.inner.write_table();
        self.inner.backend.sync_default(action)?;
        table.demux.set_default_action(action);
        Ok(())
    }

    /// Statistics of the NIC as a whole.
    pub fn stats(&self) -> NicStats {
        let inner = &self.inner;
        let table = inner.read_table();
        let mut account = inner.account.snapshot();
        let mut eager_backlog = 0;
        if let RxPath::Eager(eager) = &inner.path {
            account = account.plus(&eager.account().snapshot());
            eager_backlog = eager.backlog();
        }
        NicStats {
            mode: inner.config.mode,
            channels: table.endpoints.len(),
            soft_channels: inner.soft_channels.load(Ordering::Relaxed),
            rx_frames: inner.rx_frames.load(Ordering::Relaxed),
            account,
            eager_backlog,
            backend: inner.backend.stats(),
        }
    }

    /// Where every frame of the pool is. Exact at a quiescent point (no thread receiving,
    /// transmitting, injecting or polling), where [`Census::is_conserved`] must hold:
    /// lrp never loses a frame.
    ///
    /// ```
    /// # use lrp_net::{Nic, NicConfig};
    /// # use lrp_net::sim::SimConfig;
    /// let (nic, _peer) = Nic::sim(SimConfig::new(NicConfig::default().frame_count(64)))?;
    /// let held = nic.pool().alloc().unwrap();
    /// let c = nic.census();
    /// assert_eq!(c.held, 1);
    /// assert!(c.is_conserved());
    /// # drop(held);
    /// # Ok::<(), lrp_net::Error>(())
    /// ```
    pub fn census(&self) -> Census {
        let inner = &self.inner;
        let table = inner.read_table();
        let pool = inner.pool.census();
        let rings = inner.backend.census();
        let mut channels: usize = table.endpoints.iter().map(|e| e.channel().len()).sum();
        if let RxPath::Eager(eager) = &inner.path {
            channels += eager.backlog();
        }
        Census {
            total: pool.total,
            free: inner.pool.free_len(),
            fill: rings.fill,
            rx: rings.rx,
            channels,
            held: pool.held.saturating_sub(channels),
            tx: rings.tx,
            completion: rings.completion,
            pool,
        }
    }

    /// Install `rule` for channel `ch` (the caller checked that it is free): in the NIC
    /// first, then in the facade's tables. If the NIC refuses it (a full BPF map), nothing
    /// changes and the error is returned.
    fn install(&self, table: &mut Table, ch: &ChannelShared, rule: Rule) -> Result<()> {
        let backend = &self.inner.backend;
        if ch.soft && !matches!(rule, Rule::Exact(_)) {
            return Err(Error::InvalidRule {
                rule,
                reason: "a soft NI-LRP channel (opened when the NIC had no slot left) takes \
                         exact rules only",
            });
        }
        match rule {
            Rule::Exact(key) => {
                // A soft channel's rule stays out of the NIC: its frames arrive where the
                // NIC's wider rules send them and are moved to it from there.
                if !ch.soft {
                    backend.sync_flow(&key, Some(ch.id))?;
                }
                table.demux.insert_flow(key, ch.id);
            }
            Rule::Listener(key) | Rule::Syn(key) => {
                let mut slots = table.listeners.get(&key).copied().unwrap_or_default();
                if matches!(rule, Rule::Syn(_)) {
                    slots.syn = Some(ch.id);
                } else {
                    slots.plain = Some(ch.id);
                }
                self.apply_listener(table, key, slots)?;
            }
            Rule::Host(addr) => {
                backend.sync_host(&addr, Some(ch.id))?;
                table.demux.insert_host(addr, ch.id);
            }
        }
        let mut rules = lock(&ch.rules);
        rules.push(rule);
        ch.update_wide(&rules);
        Ok(())
    }

    /// Remove `rule` of channel `ch` from the tables. Returns whether `ch` owned it.
    fn uninstall(&self, table: &mut Table, ch: &ChannelShared, rule: &Rule) -> bool {
        if rule_owner(table, rule) != Some(ch.id) {
            return false;
        }
        // Removing (or shrinking) an entry does not fail in practice; if the NIC refuses,
        // its stale entry names a channel that is going away, whose frames then take the
        // default action there. The facade's tables are updated regardless.
        let backend = &self.inner.backend;
        let synced = match *rule {
            Rule::Exact(key) => {
                table.demux.remove_flow(&key);
                if ch.soft {
                    Ok(())
                } else {
                    backend.sync_flow(&key, None)
                }
            }
            Rule::Listener(key) | Rule::Syn(key) => {
                let mut slots = table.listeners.get(&key).copied().unwrap_or_default();
                if matches!(rule, Rule::Syn(_)) {
                    slots.syn = None;
                } else {
                    slots.plain = None;
                }
                let synced = self.apply_listener(table, key, slots);
                if synced.is_err() {
                    Self::set_listener(table, key, slots);
                }
                synced
            }
            Rule::Host(addr) => {
                table.demux.remove_host(&addr);
                backend.sync_host(&addr, None)
            }
        };
        if let Err(e) = synced {
            log::warn!("removing rule {rule:?} from the NIC failed: {e}");
        }
        let mut rules = lock(&ch.rules);
        rules.retain(|r| r != rule);
        ch.update_wide(&rules);
        true
    }

    /// The demux entry for a listener key with these channels (`None`: no entry).
    fn listener_entry(slots: ListenerSlots) -> Option<Listener> {
        match (slots.plain, slots.syn) {
            (None, None) => None,
            (plain, syn) => Some(Listener {
                channel: plain.unwrap_or(NO_CHANNEL),
                syn_channel: syn,
            }),
        }
    }

    /// Set the listener entry for `key` to `slots`: in the NIC, then (if it accepted) in
    /// the facade's bookkeeping and demux.
    fn apply_listener(
        &self,
        table: &mut Table,
        key: ListenerKey,
        slots: ListenerSlots,
    ) -> Result<()> {
        self.inner
            .backend
            .sync_listener(&key, Self::listener_entry(slots))?;
        Self::set_listener(table, key, slots);
        Ok(())
    }

    fn set_listener(table: &mut Table, key: ListenerKey, slots: ListenerSlots) {
        match Self::listener_entry(slots) {
            None => {
                table.listeners.remove(&key);
                table.demux.remove_listener(&key);
            }
            Some(listener) => {
                table.listeners.insert(key, slots);
                table.demux.insert_listener(key, listener);
            }
        }
    }

    /// Remove a channel entirely (its rules, NIC queue and endpoint).
    fn close(&self, ch: &ChannelShared) {
        let mut table = self.inner.write_table();
        let rules: Vec<Rule> = lock(&ch.rules).clone();
        for rule in &rules {
            self.uninstall(&mut table, ch, rule);
        }
        if let Some(slot) = table.channels.get_mut(ch.id.0 as usize) {
            *slot = None;
        }
        table.endpoints.remove(ch.id);
        if ch.ni.is_some() {
            self.inner.backend.ni_close(ch.id);
        }
        if ch.soft {
            self.inner.soft_channels.fetch_sub(1, Ordering::Relaxed);
        }
        // Frames still queued in the endpoint's NiChannel return to the pool when the last
        // reference to the endpoint (the Channel's) drops.
    }
}

fn check_rule(rule: &Rule) -> Result<()> {
    match rule {
        Rule::Syn(key) if key.proto != Proto::Tcp => Err(Error::InvalidRule {
            rule: *rule,
            reason: "a SYN rule applies to TCP listeners only",
        }),
        _ => Ok(()),
    }
}

/// NI-LRP: whether a channel for `rule` can be soft: an exact rule whose frames an NI
/// channel's rule claims in the NIC (a listener's plain rule for its destination, or with
/// no listener for it, a host rule for its destination address), so that they reach a
/// ring from which they are moved to it.
fn soft_feasible(table: &Table, rule: &Rule) -> bool {
    let Rule::Exact(key) = rule else {
        return false;
    };
    let listener = table
        .demux
        .listener(&ListenerKey::new(key.proto, key.dst, key.dport))
        .or_else(|| {
            table
                .demux
                .listener(&ListenerKey::any(key.proto, key.dport))
        });
    let claimer = match listener {
        Some(l) if l.channel == NO_CHANNEL => None,
        Some(l) => Some(l.channel),
        None => table.demux.host(&key.dst),
    };
    claimer
        .and_then(|id| table.channel(id))
        .is_some_and(|c| c.ni.is_some())
}

/// The channel that owns `rule`, if any.
fn rule_owner(table: &Table, rule: &Rule) -> Option<ChannelId> {
    match rule {
        Rule::Exact(key) => table.demux.flow(key),
        Rule::Listener(key) => table.listeners.get(key).and_then(|s| s.plain),
        Rule::Syn(key) => table.listeners.get(key).and_then(|s| s.syn),
        Rule::Host(addr) => table.demux.host(addr),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    // A timeout too large to represent is as good as none.
    timeout.and_then(|t| Instant::now().checked_add(t))
}

/// Time left until `deadline`: `None` if it has passed, `Some(None)` if there is none.
fn remaining(deadline: Option<Instant>) -> Option<Option<Duration>> {
    match deadline {
        None => Some(None),
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            (!left.is_zero()).then_some(Some(left))
        }
    }
}

/// A waiter registered on a [`Readiness`].
enum Armed<'a> {
    Notifier(Waiting<'a>),
    Fd(BorrowedFd<'a>),
}

impl<'a> Armed<'a> {
    fn new(readiness: Readiness<'a>) -> Armed<'a> {
        match readiness {
            Readiness::Notifier(n) => Armed::Notifier(n.begin_wait()),
            Readiness::Fd(fd) => Armed::Fd(fd),
        }
    }

    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Armed::Notifier(w) => w.fd(),
            Armed::Fd(fd) => *fd,
        }
    }

    fn consume(&self) {
        if let Armed::Notifier(w) = self {
            w.consume();
        }
    }

    fn finish(self, ready: bool) {
        if let Armed::Notifier(w) = self {
            w.finish(ready);
        }
    }
}

/// An endpoint's handle on its NI channel: receive the frames its rules select, transmit
/// frames, read its statistics. `Send + Sync`; dropping it closes the channel.
///
/// ```
/// use lrp_net::{Mode, Nic, NicConfig, Rule};
/// use lrp_net::sim::{build, SimConfig};
/// use lrp_core::flow::Proto;
///
/// let (nic, peer) = Nic::sim(SimConfig::new(NicConfig::default().frame_count(128)))?;
/// let ch = nic.channel(Rule::listener(Proto::Udp, None, 7), 32)?;
/// peer.inject(&build::udp_v4("10.0.0.1:1234".parse()?, "10.0.0.2:7".parse()?, b"echo me"));
///
/// // An echo server: swap the addresses in place and send the same frame back.
/// let mut frame = ch.recv().unwrap();
/// build::swap_endpoints_v4(&mut frame);
/// ch.transmit(frame)?;
///
/// let sent = peer.take_tx();
/// assert_eq!(sent.len(), 1);
/// assert_eq!(&sent[0][42..], b"echo me");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Channel {
    nic: Nic,
    shared: Arc<ChannelShared>,
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("id", &self.shared.id)
            .field("rules", &*lock(&self.shared.rules))
            .field("queued", &self.len())
            .field("capacity", &self.capacity())
            .finish()
    }
}

impl Channel {
    /// The channel's id (as the demux and the NIC know it).
    pub fn id(&self) -> ChannelId {
        self.shared.id
    }

    /// The NIC this channel belongs to.
    pub fn nic(&self) -> &Nic {
        &self.nic
    }

    /// The rules that select this channel's frames.
    pub fn rules(&self) -> Vec<Rule> {
        lock(&self.shared.rules).clone()
    }

    /// Add a rule to this channel (for example an exact rule for a flow the endpoint
    /// accepted, or the solicited-node address of a host channel).
    pub fn add_rule(&self, rule: impl Into<Rule>) -> Result<()> {
        let rule = rule.into();
        check_rule(&rule)?;
        let mut table = self.nic.inner.write_table();
        if rule_owner(&table, &rule).is_some() {
            return Err(Error::RuleInUse(rule));
        }
        self.nic.install(&mut table, &self.shared, rule)
    }

    /// Remove one of this channel's rules. Returns whether the channel had it.
    pub fn remove_rule(&self, rule: &Rule) -> bool {
        let mut table = self.nic.inner.write_table();
        self.nic.uninstall(&mut table, &self.shared, rule)
    }

    /// Maximum number of frames queued in the channel.
    pub fn capacity(&self) -> usize {
        match &self.shared.ni {
            Some(q) => q.capacity(),
            None => self.shared.endpoint.channel().capacity(),
        }
    }

    /// Frames waiting in the channel. (NI-LRP: frames in its ring that belong to soft
    /// channels count here until they are moved.)
    pub fn len(&self) -> usize {
        let queued = self.shared.endpoint.channel().len();
        match &self.shared.ni {
            Some(q) => q.len() + queued,
            None => queued,
        }
    }

    /// NI-LRP: whether this is a soft channel, opened when the NIC had no slot left: its
    /// frames reach it through the ring of the channel whose rule claims them in the NIC
    /// (see [`Nic::channel`]). Always `false` in the other modes.
    pub fn is_soft(&self) -> bool {
        self.shared.soft
    }

    /// NI-LRP: whether frames taken from this channel's ring must go through the soft
    /// channels' table first.
    fn diverts(&self) -> bool {
        self.shared.wide.load(Ordering::Relaxed)
            && self.nic.inner.soft_channels.load(Ordering::Relaxed) > 0
    }

    /// Whether no frame waits in the channel.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn pop(&self) -> Option<Frame> {
        let stash = self.shared.endpoint.channel();
        let Some(q) = &self.shared.ni else {
            return stash.pop();
        };
        let _taking = lock(&self.shared.rx_lock);
        if let Some(frame) = stash.pop() {
            return Some(frame);
        }
        if !self.diverts() {
            return q.recv();
        }
        let table = self.nic.inner.read_table();
        // Bounded: a ring's worth of soft channels' frames, then report none for now.
        for _ in 0..q.capacity() {
            if let Some(frame) = soft::divert(&table, self.shared.id, q.recv()?) {
                return Some(frame);
            }
        }
        None
    }

    fn record_delivery(&self, packets: u64, bytes: u64) {
        let s = &self.shared;
        s.delivered_packets.fetch_add(packets, Ordering::Relaxed);
        s.delivered_bytes.fetch_add(bytes, Ordering::Relaxed);
        // The eager path counted its frames as received when it queued them.
        if self.nic.mode() != Mode::Eager {
            s.endpoint.account().record_rx_batch(packets, bytes);
        }
    }

    /// Take the next frame, without blocking. If the channel is empty, first runs the
    /// poll step (unless another thread is running it), which may bring frames here.
    /// (In NI-LRP on AF_XDP the step cannot bring frames, and receiving already keeps the
    /// fill ring and the gates current: an empty channel just returns `None`.)
    pub fn recv(&self) -> Option<Frame> {
        let frame = match self.pop() {
            Some(f) => f,
            None if self.step_brings_nothing() => return None,
            None => {
                self.nic.inner.try_step(self.nic.inner.config.batch)?;
                self.pop()?
            }
        };
        self.record_delivery(1, frame.len() as u64);
        Some(frame)
    }

    /// Take up to `max` frames into `out` (appended), without blocking; like
    /// [`recv`](Self::recv), runs the poll step if the channel is empty. Returns how many.
    pub fn recv_batch(&self, max: usize, out: &mut Vec<Frame>) -> usize {
        let start = out.len();
        let mut n = self.pop_batch(max, out);
        if n == 0
            && max > 0
            && !self.step_brings_nothing()
            && self
                .nic
                .inner
                .try_step(self.nic.inner.config.batch)
                .is_some()
        {
            n = self.pop_batch(max, out);
        }
        let bytes: usize = out[start..].iter().map(|f| f.len()).sum();
        if n > 0 {
            self.record_delivery(n as u64, bytes as u64);
        }
        n
    }

    /// Whether running the poll step for an empty channel is useless: in NI-LRP it cannot
    /// bring frames, and a backend whose receive path maintains the fill ring and the
    /// gates has nothing else for it to do.
    fn step_brings_nothing(&self) -> bool {
        self.shared.ni.is_some() && self.nic.inner.backend.ni_receive_maintains()
    }

    fn pop_batch(&self, max: usize, out: &mut Vec<Frame>) -> usize {
        let stash = self.shared.endpoint.channel();
        let Some(q) = &self.shared.ni else {
            return stash.pop_batch(max, |f| out.push(f));
        };
        let _taking = lock(&self.shared.rx_lock);
        let mut n = stash.pop_batch(max, |f| out.push(f));
        if n == max {
            return n;
        }
        if !self.diverts() {
            return n + q.recv_burst(max - n, out);
        }
        let table = self.nic.inner.read_table();
        let mut burst = Vec::new();
        // Bounded: a few bursts when soft channels' frames crowd out this channel's.
        for _ in 0..4 {
            if n == max || q.recv_burst(max - n, &mut burst) == 0 {
                break;
            }
            for frame in burst.drain(..) {
                if let Some(frame) = soft::divert(&table, self.shared.id, frame) {
                    out.push(frame);
                    n += 1;
                }
            }
        }
        n
    }

    /// Block until the channel has a frame or `timeout` passes (`None`: no limit); returns
    /// whether it has one. Does not spin: it runs the poll step itself when nobody else
    /// is, then sleeps in `poll(2)` on the channel's readiness — an eventfd the poll step
    /// (or the simulated NIC) signals, or in NI-LRP on AF_XDP the channel's socket — and,
    /// in SOFT-LRP and EAGER, on the shared RX ring, so that it wakes up to run the step
    /// when frames arrive and no other thread does. A soft NI-LRP channel
    /// ([`is_soft`](Self::is_soft)) sleeps on the rings its frames arrive in as well, and
    /// its step moves them over.
    pub fn wait(&self, timeout: Option<Duration>) -> Result<bool> {
        let inner = &self.nic.inner;
        let deadline = deadline(timeout);
        let shared_rx = inner.config.mode != Mode::NiLrp;
        // Immediate re-steps after a lost wake-up, bounded so that a ring that stays
        // pending (e.g. the pool is exhausted) falls back to sleeping in slices.
        let mut resteps = 0u32;
        loop {
            if !self.is_empty() {
                return Ok(true);
            }
            // NI-LRP on a backend whose receive path maintains the fill ring and gates:
            // the step only has to run now and then for the sleepers (at most every
            // STEP_SLICE); running it on every wait would cost more than the frames.
            let stepped = if self.step_brings_nothing() && inner.stepped_within(STEP_SLICE) {
                false
            } else {
                inner.try_step(inner.config.batch).is_some()
            };
            let own = Armed::new(match &self.shared.ni {
                Some(q) => q.readiness(),
                None => Readiness::Notifier(&self.shared.notifier),
            });
            // NI-LRP: the stash, filled by the poll step while it moves soft channels'
            // frames out of this channel's ring.
            let stash = self
                .shared
                .ni
                .is_some()
                .then(|| Armed::new(Readiness::Notifier(&self.shared.notifier)));
            let rx = shared_rx.then(|| Armed::new(inner.backend.rx_readiness()));
            // A soft channel: the rings its frames arrive in (level-triggered socket fds;
            // a ring signalled through a notifier is checked every slice instead, since
            // its signal is its owner's to consume).
            let feeders = if self.shared.soft {
                inner.feeders()
            } else {
                Vec::new()
            };
            let mut feeder_fds = Vec::new();
            let mut feeders_unwatched = !stepped || inner.soft_left.load(Ordering::Relaxed);
            for q in feeders.iter().filter_map(|c| c.wide_ni()) {
                match q.readiness() {
                    Readiness::Fd(fd) => feeder_fds.push(fd),
                    Readiness::Notifier(_) => feeders_unwatched = true,
                }
            }
            own.consume();
            if let Some(stash) = &stash {
                stash.consume();
            }
            if let Some(rx) = &rx {
                rx.consume();
            }
            if !self.is_empty() {
                own.finish(true);
                if let Some(stash) = stash {
                    stash.finish(true);
                }
                return Ok(true);
            }
            let Some(mut wait) = remaining(deadline) else {
                return Ok(false);
            };
            // Frames may have arrived in the shared ring after our step and before the
            // `consume` above cleared its readiness: run the step again rather than sleep
            // on a signal that is already gone (a lost wake-up).
            let pending = shared_rx && inner.backend.rx_pending();
            if pending && stepped && resteps < 4 {
                resteps += 1;
                own.finish(false);
                if let Some(stash) = stash {
                    stash.finish(false);
                }
                if let Some(rx) = rx {
                    rx.finish(false);
                }
                continue;
            }
            // Frames are pending in the shared ring but this thread could not run the
            // step: another thread is running it and will deliver; sleep on our own
            // readiness only, for a slice, in case it stops before reaching our frames.
            let rx_busy = pending;
            if rx_busy || inner.starving.load(Ordering::Relaxed) {
                wait = Some(wait.map_or(SERVICE_SLICE, |w| w.min(SERVICE_SLICE)));
            }
            // NI-LRP: another channel's ring is filling behind an open gate (its owner is
            // not reading); wake up soon to run the step that closes it.
            if !shared_rx && inner.watch_gates.load(Ordering::Relaxed) {
                wait = Some(wait.map_or(GATE_SLICE, |w| w.min(GATE_SLICE)));
            }
            // A soft channel whose step could not empty the rings its frames arrive in
            // (another thread holds the step or a ring, or an owner's stash is full):
            // re-run the step after a slice rather than wake up at once for frames it
            // cannot take.
            if self.shared.soft && feeders_unwatched {
                feeder_fds.clear();
                wait = Some(wait.map_or(SERVICE_SLICE, |w| w.min(SERVICE_SLICE)));
            }
            let mut fds = vec![own.fd()];
            if let Some(stash) = &stash {
                fds.push(stash.fd());
            }
            if let (Some(rx), false) = (&rx, rx_busy) {
                fds.push(rx.fd());
            }
            fds.extend(feeder_fds);
            sys::poll_fds(&fds, wait)?;
            drop(fds);
            own.finish(false);
            if let Some(stash) = stash {
                stash.finish(false);
            }
            if let Some(rx) = rx {
                rx.finish(false);
            }
        }
    }

    /// Transmit a frame as it is (zero copy: the chunk goes to the TX ring), e.g. a frame
    /// received here and rewritten in place. If the TX ring is full the frame is dropped,
    /// counted, and [`Error::TxFull`] returned.
    pub fn transmit(&self, frame: Frame) -> Result<()> {
        if !self.nic.inner.pool.owns(&frame) {
            return Err(Error::ForeignFrame);
        }
        let len = frame.len();
        let account = self.shared.endpoint.account();
        if self.nic.inner.backend.transmit(frame) {
            account.record_tx(len);
            Ok(())
        } else {
            account.record_drop(DropReason::TxFull);
            Err(Error::TxFull)
        }
    }

    /// A free frame to build a packet in (empty, after the pool's headroom). If the pool
    /// is empty, first runs the poll step to reclaim transmitted frames. `None` if there
    /// is still none.
    pub fn alloc(&self) -> Option<Frame> {
        let inner = &self.nic.inner;
        inner.pool.alloc().or_else(|| {
            inner.try_step(0);
            inner.pool.alloc()
        })
    }

    /// Copy `data` into a fresh frame and transmit it.
    pub fn send(&self, data: &[u8]) -> Result<()> {
        let mut frame = self.alloc().ok_or(Error::PoolExhausted)?;
        frame.copy_from(data)?;
        self.transmit(frame)
    }

    /// The endpoint's account: the stack charges its lazy protocol work here
    /// ([`Account::charge_cpu`]) and records the drops it decides (bad checksum, backlog
    /// full, rejected). Received frames are counted by the channel: in the LRP modes
    /// when `recv` hands them out, in EAGER when the poll step queues them.
    pub fn account(&self) -> &Account {
        self.shared.endpoint.account()
    }

    /// The channel's statistics.
    pub fn stats(&self) -> ChannelStats {
        let s = &self.shared;
        let mut account = s.endpoint.account().snapshot();
        let (queued, capacity, gate_closings, ni) = match &s.ni {
            Some(q) => (
                q.len() + s.endpoint.channel().len(),
                q.capacity(),
                q.gate_closings(),
                q.drops(),
            ),
            None => {
                let c = s.endpoint.channel();
                (
                    c.len(),
                    c.capacity(),
                    c.counters().gate_closings,
                    Default::default(),
                )
            }
        };
        account.drops[DropReason::Gate.index()] += ni.gate;
        account.drops[DropReason::RingFull.index()] += ni.ring_full;
        ChannelStats {
            id: s.id,
            soft: s.soft,
            delivered_packets: s.delivered_packets.load(Ordering::Relaxed),
            delivered_bytes: s.delivered_bytes.load(Ordering::Relaxed),
            gate_drops: account.drops(DropReason::Gate),
            ring_full_drops: account.drops(DropReason::RingFull),
            kernel_drops: ni.other,
            early_discards: account.drops(DropReason::SoftDiscard),
            endpoint_full_drops: account.drops(DropReason::EndpointFull),
            tx_packets: account.tx_packets,
            tx_bytes: account.tx_bytes,
            tx_drops: account.drops(DropReason::TxFull),
            cpu_ns: account.cpu_ns,
            queued,
            capacity,
            gate_closings: if s.ni.is_some() { gate_closings } else { 0 },
            account,
        }
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        self.nic.close(&self.shared);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::build;
    use lrp_core::flow::TcpFlags;
    use std::net::{Ipv4Addr, SocketAddrV4};

    fn sim(mode: Mode) -> (Nic, SimPeer) {
        let config = NicConfig::default()
            .frame_count(256)
            .fill_ring(64)
            .rx_ring(64)
            .tx_ring(64)
            .completion_ring(64)
            .mode(mode);
        Nic::sim(SimConfig::new(config)).unwrap()
    }

    fn sa(ip: [u8; 4], port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::from(ip), port)
    }

    #[test]
    fn handles_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Nic>();
        check::<Channel>();
        check::<Frame>();
        check::<FramePool>();
        check::<SimPeer>();
    }

    #[test]
    fn config_validation() {
        let bad = NicConfig::default().rx_ring(100);
        assert!(matches!(
            Nic::sim(SimConfig::new(bad)),
            Err(Error::InvalidConfig(_))
        ));
        let bad = NicConfig::default().frame_size(1000);
        assert!(matches!(Nic::sim(SimConfig::new(bad)), Err(Error::Pool(_))));
        // 2048-byte frames must come in pairs (the UMEM is a whole number of pages).
        assert!(matches!(
            Nic::open("lo", NicConfig::default().frame_count(1001)),
            Err(Error::InvalidConfig(_))
        ));
    }

    #[test]
    fn rules_are_exclusive_and_released_on_drop() {
        let (nic, _peer) = sim(Mode::SoftLrp);
        let a = nic
            .channel(Rule::listener(Proto::Udp, None, 53), 8)
            .unwrap();
        assert!(matches!(
            nic.channel(Rule::listener(Proto::Udp, None, 53), 8),
            Err(Error::RuleInUse(_))
        ));
        // A SYN rule is a different rule for the same key.
        let syn = nic
            .channel(Rule::listener(Proto::Tcp, None, 80).syn_only(), 8)
            .unwrap();
        assert!(matches!(
            nic.channel(Rule::listener(Proto::Udp, None, 80).syn_only(), 8),
            Err(Error::InvalidRule { .. })
        ));
        assert!(matches!(
            nic.channel(Rule::host(Ipv4Addr::LOCALHOST.into()), 0),
            Err(Error::InvalidConfig(_))
        ));
        drop(a);
        let b = nic
            .channel(Rule::listener(Proto::Udp, None, 53), 8)
            .unwrap();
        assert_eq!(
            b.rules(),
            vec![Rule::from(Rule::listener(Proto::Udp, None, 53))]
        );
        drop(syn);
        assert_eq!(nic.stats().channels, 1);
        let table = nic.inner.read_table();
        assert_eq!(table.demux.listeners_len(), 1);
    }

    #[test]
    fn add_and_remove_rules() {
        let (nic, peer) = sim(Mode::SoftLrp);
        let ch = nic
            .channel(Rule::listener(Proto::Udp, None, 1000), 8)
            .unwrap();
        ch.add_rule(Rule::listener(Proto::Udp, None, 1001)).unwrap();
        assert!(matches!(
            ch.add_rule(Rule::listener(Proto::Udp, None, 1001)),
            Err(Error::RuleInUse(_))
        ));
        for port in [1000, 1001] {
            assert!(peer.inject(&build::udp_v4(
                sa([10, 0, 0, 1], 1),
                sa([10, 0, 0, 2], port),
                b""
            )));
        }
        let mut got = Vec::new();
        assert_eq!(ch.recv_batch(10, &mut got), 2);
        assert!(ch.remove_rule(&Rule::from(Rule::listener(Proto::Udp, None, 1001))));
        assert!(!ch.remove_rule(&Rule::from(Rule::listener(Proto::Udp, None, 1001))));
        assert!(peer.inject(&build::udp_v4(
            sa([10, 0, 0, 1], 1),
            sa([10, 0, 0, 2], 1001),
            b""
        )));
        assert!(ch.recv().is_none());
        assert_eq!(
            peer.take_kernel().len(),
            1,
            "unclaimed now: passed to the kernel"
        );
        drop(got);
        assert!(nic.census().is_conserved());
    }

    #[test]
    fn syn_rule_without_listener_takes_default_for_other_segments() {
        for mode in [Mode::SoftLrp, Mode::Eager, Mode::NiLrp] {
            let (nic, peer) = sim(mode);
            let syn = nic
                .channel(Rule::listener(Proto::Tcp, None, 80).syn_only(), 8)
                .unwrap();
            let c = sa([10, 0, 0, 1], 4000);
            let s = sa([10, 0, 0, 2], 80);
            assert!(peer.inject(&build::tcp_v4(c, s, TcpFlags::SYN, b"")));
            assert!(peer.inject(&build::tcp_v4(c, s, TcpFlags::ACK, b"")));
            nic.poll_rx(64);
            assert!(syn.recv().is_some(), "{mode:?}");
            assert!(syn.recv().is_none(), "{mode:?}");
            assert_eq!(
                peer.take_kernel().len(),
                1,
                "{mode:?}: ACK passed to the kernel"
            );
            assert!(nic.census().is_conserved());
        }
    }

    #[test]
    fn wait_times_out_and_wakes() {
        for mode in [Mode::SoftLrp, Mode::Eager, Mode::NiLrp] {
            let (nic, peer) = sim(mode);
            let ch = nic.channel(Rule::listener(Proto::Udp, None, 9), 8).unwrap();
            assert!(!ch.wait(Some(Duration::from_millis(5))).unwrap());
            let t = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                peer.inject(&build::udp_v4(
                    sa([10, 0, 0, 1], 1),
                    sa([10, 0, 0, 2], 9),
                    b"x",
                ))
            });
            assert!(ch.wait(Some(Duration::from_secs(10))).unwrap(), "{mode:?}");
            assert!(t.join().unwrap());
            assert!(ch.recv().is_some());
        }
    }

    #[test]
    fn wait_rx_sees_pending_frames() {
        let (nic, peer) = sim(Mode::SoftLrp);
        assert!(!nic.wait_rx(Some(Duration::from_millis(2))).unwrap());
        peer.inject(&build::udp_v4(
            sa([10, 0, 0, 1], 1),
            sa([10, 0, 0, 2], 9),
            b"x",
        ));
        assert!(nic.wait_rx(Some(Duration::from_secs(1))).unwrap());
        assert_eq!(nic.poll_rx(64), 1);
        assert_eq!(nic.stats().rx_frames, 1);
    }

    #[test]
    fn send_and_alloc() {
        let (nic, peer) = sim(Mode::SoftLrp);
        let ch = nic
            .channel(Rule::host(Ipv4Addr::new(10, 0, 0, 2).into()), 4)
            .unwrap();
        ch.send(b"raw bytes").unwrap();
        assert!(matches!(
            ch.send(&[0u8; 4096]),
            Err(Error::FrameTooLarge(_))
        ));
        assert_eq!(peer.take_tx(), vec![b"raw bytes".to_vec()]);
        let s = ch.stats();
        assert_eq!((s.tx_packets, s.tx_bytes), (1, 9));
        // Exhaust the pool: alloc reports None, and send reports it as an error.
        let held: Vec<Frame> = std::iter::from_fn(|| ch.alloc()).collect();
        assert!(!held.is_empty());
        assert!(matches!(ch.send(b"x"), Err(Error::PoolExhausted)));
        assert_eq!(nic.census().held, held.len());
        drop(held);
        assert!(nic.census().is_conserved());
    }

    #[test]
    fn foreign_frames_are_refused() {
        let (nic_a, _pa) = sim(Mode::SoftLrp);
        let (nic_b, _pb) = sim(Mode::SoftLrp);
        let ch = nic_a
            .channel(Rule::listener(Proto::Udp, None, 1), 4)
            .unwrap();
        let f = nic_b.pool().alloc().unwrap();
        assert!(matches!(ch.transmit(f), Err(Error::ForeignFrame)));
        assert!(nic_b.census().is_conserved());
    }
}
