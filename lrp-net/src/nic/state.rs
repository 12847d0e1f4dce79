//! The facade's state: the NIC ([`NicInner`]), its demux [`Table`] and the per-channel
//! state ([`ChannelShared`]). The locks are described in the [parent module](super).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use lrp_core::account::Account;
use lrp_core::channel::{Endpoint, Endpoints};
use lrp_core::demux::{ChannelId, Demux, ListenerKey};
use lrp_core::eager::EagerPipeline;

use super::wait::Feeders;
use crate::backend::{Backend, NiQueue};
use crate::config::NicConfig;
use crate::notify::Notifier;
use crate::pool::{Frame, FramePool};
use crate::rule::Rule;

/// Take a mutex, ignoring poison: every structure behind the facade's mutexes stays
/// consistent at every point a panic could leave it (plain values, or frames that a
/// later step returns to the pool), so serving on is better than propagating a panic.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Which channels use a listener key, as plain listener and as SYN rule.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct ListenerSlots {
    pub(super) plain: Option<ChannelId>,
    pub(super) syn: Option<ChannelId>,
}

/// The demux table and the endpoints, under one lock: the poll step reads them for a
/// batch, rule changes write them (briefly: the NIC is updated outside this lock).
pub(super) struct Table {
    pub(super) demux: Demux,
    pub(super) endpoints: Endpoints<Frame>,
    /// Per-channel state beyond the core endpoint, by the same id.
    pub(super) channels: Vec<Option<Arc<ChannelShared>>>,
    pub(super) listeners: HashMap<ListenerKey, ListenerSlots>,
}

impl Table {
    pub(super) fn channel(&self, id: ChannelId) -> Option<&Arc<ChannelShared>> {
        self.channels.get(id.0 as usize)?.as_ref()
    }
}

/// What the facade keeps per channel.
pub(super) struct ChannelShared {
    pub(super) id: ChannelId,
    /// The endpoint. Its core queue holds the channel's frames in SOFT-LRP and EAGER and
    /// for a soft NI-LRP channel; for an NI-LRP channel with a slot it is the *stash*:
    /// frames of this channel that the poll step took from its ring while moving soft
    /// channels' frames out of it (`step::service_ni`), received before the ring.
    pub(super) endpoint: Arc<Endpoint<Frame>>,
    /// NI-LRP: the channel's queue in the NIC. `None` in the other modes and for a soft
    /// channel.
    pub(super) ni: Option<Arc<dyn NiQueue>>,
    /// NI-LRP: a soft channel — the NIC had no slot left for it. Exact rules only, kept
    /// in the facade's table alone; its frames arrive in the ring of the channel whose
    /// NIC rule claims them and are moved here (`step::divert`).
    pub(super) soft: bool,
    /// NI-LRP: the channel has a listener, SYN, source or host rule, so its ring may carry
    /// soft channels' frames (it is a *feeder*, see [`Feeders`]).
    pub(super) wide: AtomicBool,
    /// NI-LRP: held while taking frames from the channel's ring (by its receiver, or by
    /// the poll step moving soft channels' frames out), so that the channel's own frames
    /// keep their order through the stash.
    pub(super) rx_lock: Mutex<()>,
    /// Signalled when a frame is queued in the endpoint's core queue (by the poll step,
    /// the simulated NIC, or a soft channel's frame being moved).
    pub(super) notifier: Notifier,
    /// The channel's rules (changed under the NIC's control lock).
    pub(super) rules: Mutex<Vec<Rule>>,
    pub(super) delivered_packets: AtomicU64,
    pub(super) delivered_bytes: AtomicU64,
}

impl ChannelShared {
    /// NI-LRP: the channel's ring in the NIC if soft channels' frames may arrive in it.
    pub(super) fn wide_ni(&self) -> Option<&Arc<dyn NiQueue>> {
        self.ni
            .as_ref()
            .filter(|_| self.wide.load(Ordering::Relaxed))
    }
}

/// The receive path state.
pub(super) enum RxPath {
    /// The NIC demultiplexes; the rings of soft channels' feeders.
    Ni(Feeders),
    /// SOFT-LRP: the demux step needs no state beyond the table.
    Soft,
    /// EAGER: the shared input queue and its accounting.
    Eager(Box<EagerPipeline<Frame>>),
}

pub(super) struct NicInner {
    pub(super) config: NicConfig,
    /// The interface (`None` on the simulated NIC).
    pub(super) ifname: Option<String>,
    /// The interface's MAC address, if known.
    pub(super) mac: Option<smoltcp::wire::EthernetAddress>,
    /// The interface's MTU.
    pub(super) mtu: u32,
    pub(super) pool: FramePool,
    pub(super) backend: Arc<dyn Backend>,
    /// Serializes rule and channel changes, which update the NIC (BPF maps, AF_XDP
    /// sockets: slow system calls) without holding `table`.
    pub(super) control: Mutex<()>,
    pub(super) table: RwLock<Table>,
    pub(super) path: RxPath,
    /// Drops that belong to no channel, and the CPU time of the poll step.
    pub(super) account: Account,
    pub(super) rx_frames: AtomicU64,
    /// The poll-step lock, with its scratch batch.
    pub(super) step: Mutex<Vec<Frame>>,
    /// The last refill could not fill the fill ring (the pool is exhausted).
    pub(super) starving: AtomicBool,
    /// NI-LRP: at the last step some channel had frames waiting behind an open gate.
    pub(super) watch_gates: AtomicBool,
    /// NI-LRP: open soft channels (no slot in the NIC).
    pub(super) soft_channels: AtomicUsize,
    /// NI-LRP: the last step left frames in a ring that may hold soft channels' frames.
    pub(super) soft_left: AtomicBool,
    /// Time base of `last_step`.
    pub(super) epoch: Instant,
    /// When the last poll step started (nanoseconds since `epoch`).
    pub(super) last_step: AtomicU64,
}

impl NicInner {
    pub(super) fn read_table(&self) -> RwLockReadGuard<'_, Table> {
        // A panic while holding the lock cannot leave the table half-updated in a way that
        // breaks memory safety; keep serving rather than propagate the poison.
        self.table.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn write_table(&self) -> RwLockWriteGuard<'_, Table> {
        self.table.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// NI-LRP: the feeder rings of soft channels.
    pub(super) fn feeders(&self) -> Option<&Feeders> {
        match &self.path {
            RxPath::Ni(f) => Some(f),
            _ => None,
        }
    }
}

/// A network interface queue driven by lrp, in one [`Mode`](crate::Mode). A cheap,
/// cloneable handle (`Send + Sync`); the NIC lives until the last handle and the last
/// [`Channel`](crate::Channel) are dropped.
///
/// See the [module docs](crate::nic) for an example and for who runs the poll step.
#[derive(Clone)]
pub struct Nic {
    pub(super) inner: Arc<NicInner>,
}
