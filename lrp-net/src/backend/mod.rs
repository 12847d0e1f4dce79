//! The seam between the NIC facade ([`Nic`](crate::Nic), [`Channel`](crate::Channel)) and
//! a NIC backend: the simulated NIC ([`crate::sim`], `sim/backend.rs`) and the AF_XDP
//! backend (`backend/af_xdp/`, behind [`Nic::open`](crate::Nic::open)).
//!
//! Backends depend on this module, the frame pool and the raw layers below them
//! ([`crate::xdp`] for AF_XDP), never on the facade: the facade turns its
//! [`NicConfig`](crate::NicConfig) into a [`BackendConfig`] (sizes and policy already
//! decided, e.g. the fill target) and hands it over.
//!
//! A backend owns the rings between the [`FramePool`] and the NIC and moves chunk
//! addresses through them; the facade owns the demux table, the endpoints, the LRP
//! receive paths and the accounting. The frame life cycle is the same for every backend:
//!
//! ```text
//!           refill()                 NIC writes               rx_burst() / NiQueue::recv()
//!  pool free ────────► fill ring ──────────────► RX ring(s) ─────────────────────────► Frame (held)
//!     ▲                                                                                  │
//!     │  reclaim()                NIC sends                     transmit()               │ drop
//!     └──────────── completion ◄──────────── TX ring ◄───────────────────────────────────┤
//!     └──────────────────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! Chunk state changes go through the pool's checked transitions (`take_for_kernel`,
//! `frame_from_kernel`, `Frame::into_kernel`, `release_from_kernel`), so a backend never
//! needs `unsafe` to hand out a [`Frame`] and can never hand out two for one chunk.
//!
//! # What a backend provides, by mode
//!
//! * **SOFT-LRP and EAGER** — one shared RX queue per (interface, queue): [`rx_burst`],
//!   [`rx_readiness`]. In AF_XDP that is one XSK socket to which the XDP program
//!   redirects every frame some rule claims, passing the rest with `XDP_PASS`. The
//!   facade demultiplexes.
//! * **NI-LRP** — the NIC demultiplexes: [`ni_open`] creates a per-channel receive queue
//!   ([`NiQueue`]: in AF_XDP an XSK socket bound with `XDP_SHARED_UMEM` to the same
//!   queue, its own RX ring, an XSKMAP slot and a gate entry), and the `sync_*` calls
//!   mirror the facade's demux tables into the NIC (BPF hash maps keyed like
//!   [`Demux`](lrp_core::demux::Demux)'s tables). A listener entry whose `channel` is
//!   `None` has only a SYN channel: its other traffic takes the default action.
//!   The facade mirrors its tables in every mode (a backend whose NIC does not
//!   demultiplex may ignore them; the AF_XDP backend uses them in SOFT-LRP and EAGER too,
//!   to tell claimed frames from the kernel's). A failed `sync_*` (a full BPF map) fails
//!   the facade call that made it, which leaves its tables unchanged.
//!   The gate of a channel closes at 3/4 of its ring and reopens at 1/4
//!   ([`lrp_core::channel::Gate`]); the NIC drops frames for a closed gate before copying
//!   them and counts them per channel.
//! * **Always** — the fill/completion owner ([`refill`], [`reclaim`]), TX
//!   ([`transmit`]), frames for the host kernel ([`pass_to_kernel`]), ring occupancy for
//!   the census ([`census`]) and counters ([`stats`]).
//!
//! The facade calls `refill`, `reclaim`, `rx_burst` and `observe_gate` from at most one
//! thread at a time (its poll step holds a lock); `transmit`, `pass_to_kernel`,
//! `NiQueue::recv*` and the read-only calls may come from any thread concurrently.
//!
//! [`rx_burst`]: Backend::rx_burst
//! [`rx_readiness`]: Backend::rx_readiness
//! [`ni_open`]: Backend::ni_open
//! [`refill`]: Backend::refill
//! [`reclaim`]: Backend::reclaim
//! [`transmit`]: Backend::transmit
//! [`pass_to_kernel`]: Backend::pass_to_kernel
//! [`census`]: Backend::census
//! [`stats`]: Backend::stats

use std::net::IpAddr;
use std::os::fd::BorrowedFd;
use std::sync::Arc;

use lrp_core::demux::{ChannelId, DefaultAction, Listener, ListenerKey, SourceKey};
use lrp_core::flow::FlowKey;

use crate::config::XdpAttach;
use crate::error::Result;
use crate::notify::Notifier;
use crate::pool::{Frame, FramePool};

pub(crate) mod af_xdp;

/// What a backend needs to know, decided by the facade from its
/// [`NicConfig`](crate::NicConfig).
#[derive(Debug, Clone)]
pub(crate) struct BackendConfig {
    /// The interface queue.
    pub(crate) queue: u32,
    /// NI-LRP: the NIC demultiplexes into per-channel queues ([`Backend::ni_open`]);
    /// otherwise every claimed frame goes to one shared RX ring.
    pub(crate) ni: bool,
    /// Entries of the shared RX ring.
    pub(crate) rx_ring: u32,
    /// Entries of the TX ring.
    pub(crate) tx_ring: u32,
    /// Entries of the fill ring (simulated NIC; AF_XDP sizes it for the whole pool).
    pub(crate) fill_ring: u32,
    /// Entries of the completion ring (simulated NIC; AF_XDP sizes it for the pool).
    pub(crate) completion_ring: u32,
    /// Frames to keep posted in the fill ring.
    pub(crate) fill_target: usize,
    /// How to attach the XDP program (AF_XDP).
    pub(crate) attach: XdpAttach,
    /// The action for frames no rule claims.
    pub(crate) default_action: DefaultAction,
    /// NI-LRP: whether channels have gates.
    pub(crate) gates: bool,
    /// NI-LRP: channel slots in the NIC.
    pub(crate) ni_slots: u32,
}

/// How a waiter learns that a queue became non-empty.
pub(crate) enum Readiness<'a> {
    /// Signalled by userspace (the simulated NIC, the demux step): register with the
    /// notifier, then poll its fd.
    Notifier(&'a Notifier),
    /// Signalled by the kernel, level-triggered: `POLLIN` while the queue is non-empty (an
    /// AF_XDP socket fd). Polling it also kicks the driver when the ring needs a wake-up.
    Fd(BorrowedFd<'a>),
}

/// Frames sitting in a backend's rings (all in the pool's **kernel** state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct RingCensus {
    /// Posted for reception.
    pub(crate) fill: usize,
    /// Received, not yet taken: the shared RX ring plus every NI channel's ring.
    pub(crate) rx: usize,
    /// Queued for transmission.
    pub(crate) tx: usize,
    /// Transmitted, not yet reclaimed.
    pub(crate) completion: usize,
}

/// Counters kept by the NIC backend (the simulated NIC here; for AF_XDP the kernel's
/// `XDP_STATISTICS` and the XDP program's counter map).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct BackendStats {
    /// Frames that arrived at the NIC.
    pub rx_offered: u64,
    /// Frames written into an RX ring (shared, or a channel's in NI-LRP).
    pub rx_accepted: u64,
    /// Frames dropped because the fill ring was empty (no posted buffer): these hit every
    /// channel alike, so keep the pool and fill ring large enough.
    pub rx_no_buffer: u64,
    /// SOFT-LRP/EAGER: frames dropped because the shared RX ring was full.
    pub rx_ring_full: u64,
    /// Frames too large for a chunk (dropped by the NIC). AF_XDP: the sockets'
    /// `rx_dropped`, which also counts frames the kernel found no buffer for.
    pub rx_oversized: u64,
    /// NI-LRP: frames dropped at a closed gate, all channels together.
    pub gate_drops: u64,
    /// NI-LRP: frames dropped at a full channel ring, all channels together.
    pub ni_ring_full: u64,
    /// NI-LRP: frames the XDP program dropped as malformed.
    pub xdp_drop_malformed: u64,
    /// NI-LRP: frames the XDP program dropped because nothing claimed them and the default
    /// action is to drop (or their channel had just been closed).
    pub xdp_drop_unmatched: u64,
    /// Frames handed to the host kernel (`XDP_PASS` in NI-LRP, `pass_to_kernel` in the
    /// other modes; AF_XDP: `XDP_PASS` in every mode).
    pub to_kernel: u64,
    /// Frames the software demux would hand to the host kernel but the backend cannot:
    /// AF_XDP has no way to give a frame back to the kernel's stack once it is in a
    /// socket, so these are dropped. The XDP program passes unclaimed frames before they
    /// reach a socket; this counts only frames whose rule went away while they waited.
    pub to_kernel_dropped: u64,
    /// Frames transmitted on the wire.
    pub tx_frames: u64,
    /// Bytes transmitted on the wire.
    pub tx_bytes: u64,
    /// Frames dropped because the TX ring was full.
    pub tx_ring_full: u64,
}

impl std::fmt::Display for BackendStats {
    /// One line: what arrived and where it went, then the drops that happened (zero
    /// counters left out).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rx offered {} accepted {}, to kernel {}, tx {} frames {} B",
            self.rx_offered, self.rx_accepted, self.to_kernel, self.tx_frames, self.tx_bytes
        )?;
        let drops = [
            ("no buffer", self.rx_no_buffer),
            ("shared ring full", self.rx_ring_full),
            ("oversized", self.rx_oversized),
            ("gate", self.gate_drops),
            ("ni ring full", self.ni_ring_full),
            ("xdp malformed", self.xdp_drop_malformed),
            ("xdp unmatched", self.xdp_drop_unmatched),
            ("to kernel dropped", self.to_kernel_dropped),
            ("tx ring full", self.tx_ring_full),
        ];
        for (i, (name, n)) in drops.iter().filter(|(_, n)| *n > 0).enumerate() {
            f.write_str(if i == 0 { ", drops: " } else { ", " })?;
            write!(f, "{name} {n}")?;
        }
        Ok(())
    }
}

/// Drops of one NI-LRP channel counted by the NIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct NiDrops {
    /// Dropped before the copy because the gate was closed.
    pub(crate) gate: u64,
    /// Dropped after the copy because the ring was full.
    pub(crate) ring_full: u64,
    /// Other kernel drops of this socket (AF_XDP: `rx_dropped`, invalid descriptors).
    pub(crate) other: u64,
}

/// A NIC backend. See the [module docs](self) for the contract.
pub(crate) trait Backend: Send + Sync + 'static {
    /// The pool whose chunks the rings carry.
    fn pool(&self) -> &FramePool;

    // ---- shared RX queue (SOFT-LRP, EAGER) ---------------------------------------------

    /// Move up to `max` received frames from the shared RX ring into `out` (appended).
    /// Returns how many. Always 0 in NI-LRP.
    fn rx_burst(&self, max: usize, out: &mut Vec<Frame>) -> usize;

    /// Whether the shared RX ring holds frames.
    fn rx_pending(&self) -> bool;

    /// Readiness of the shared RX ring.
    fn rx_readiness(&self) -> Readiness<'_>;

    // ---- fill / completion owner -------------------------------------------------------

    /// Post free chunks to the fill ring up to its target. Returns whether the target was
    /// reached (false: the pool is exhausted and reception may starve).
    fn refill(&self) -> bool;

    /// Return transmitted chunks from the completion ring to the pool. Returns how many.
    fn reclaim(&self) -> usize;

    // ---- TX and the host kernel --------------------------------------------------------

    /// Queue a frame for transmission. `false`: the TX ring was full and the frame was
    /// dropped (its chunk returned to the pool) and counted.
    fn transmit(&self, frame: Frame) -> bool;

    /// Hand a frame that no endpoint claims to the host kernel (or drop it if the backend
    /// has no path there). The chunk returns to the pool.
    fn pass_to_kernel(&self, frame: Frame);

    // ---- NI-LRP: the NIC's demux tables and per-channel queues --------------------------

    /// Mirror an exact-table entry (`None`: remove it).
    fn sync_flow(&self, key: &FlowKey, channel: Option<ChannelId>) -> Result<()>;
    /// Mirror a listener-table entry (`None`: remove it).
    fn sync_listener(&self, key: &ListenerKey, listener: Option<Listener>) -> Result<()>;
    /// Mirror a source-table entry (`None`: remove it).
    fn sync_source(&self, key: &SourceKey, channel: Option<ChannelId>) -> Result<()>;
    /// Mirror a host-table entry (`None`: remove it).
    fn sync_host(&self, addr: &IpAddr, channel: Option<ChannelId>) -> Result<()>;
    /// Mirror the default action.
    fn sync_default(&self, action: DefaultAction) -> Result<()>;

    /// Open the receive queue of channel `id` with room for `capacity` frames (a power of
    /// two). Called before any rule names `id`.
    fn ni_open(&self, id: ChannelId, capacity: usize) -> Result<Arc<dyn NiQueue>>;

    /// Close the receive queue of channel `id` after its rules were removed; frames still
    /// in its ring go back to the pool.
    fn ni_close(&self, id: ChannelId);

    /// NI-LRP: whether receiving on a channel ([`NiQueue::recv_burst`]) already keeps the
    /// fill ring topped up and every channel's gate current, so that a receiver whose
    /// channel is empty need not run the poll step (which could not bring it frames).
    fn ni_receive_maintains(&self) -> bool {
        false
    }

    // ---- observation -------------------------------------------------------------------

    /// Frames in the rings, for the census (exact when quiescent).
    fn census(&self) -> RingCensus;

    /// The backend's counters.
    fn stats(&self) -> BackendStats;
}

/// An NI-LRP channel's receive queue inside the NIC (AF_XDP: the channel's own XSK socket
/// and RX ring) with its gate.
pub(crate) trait NiQueue: Send + Sync {
    /// Take one received frame.
    fn recv(&self) -> Option<Frame>;
    /// Take up to `max` received frames into `out` (appended). Returns how many.
    fn recv_burst(&self, max: usize, out: &mut Vec<Frame>) -> usize;
    /// Frames waiting in the ring.
    fn len(&self) -> usize;
    /// Ring size.
    fn capacity(&self) -> usize;
    /// How a waiter learns that the ring became non-empty.
    fn readiness(&self) -> Readiness<'_>;
    /// Re-evaluate the gate from the ring's occupancy and publish a change to the NIC
    /// (called by the poll step for every channel, and after receiving). Returns whether
    /// the channel needs watching: its gate is open while frames wait in its ring, so it
    /// may have to close before the ring fills (a NIC that evaluates gates itself on
    /// every frame never needs it).
    fn observe_gate(&self) -> bool;
    /// How many times the gate closed.
    fn gate_closings(&self) -> u64;
    /// Drops counted by the NIC for this channel.
    fn drops(&self) -> NiDrops;
}
