//! The configuration of a [`Nic`](crate::Nic): its receive path ([`Mode`]), how the XDP
//! program is attached ([`XdpAttach`]) and the sizes of its pool and rings
//! ([`NicConfig`]). A leaf module: it knows nothing of the facade or the backends.

use lrp_core::demux::DefaultAction;

use crate::error::{Error, Result};

/// Default NI-LRP channel slots ([`NicConfig::ni_slots`]).
const DEFAULT_NI_SLOTS: u32 = 64;
/// Fewest NI-LRP slots: a listener and its host channel.
const MIN_NI_SLOTS: u32 = 2;
/// Most NI-LRP slots: every slot is a socket with its own ring, and the NIC's statistics
/// read every slot's counters.
const MAX_NI_SLOTS: u32 = 1024;

/// Which receive path a [`Nic`](crate::Nic) runs. The same program runs in every mode;
/// benchmarks compare them by changing this one setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
pub enum Mode {
    /// NI-LRP: demultiplexing in the NIC. Each channel has its own receive ring in the
    /// NIC (an AF_XDP socket chosen by the XDP program) and a gate that drops a saturated
    /// channel's frames before they are copied. Limited to tens or hundreds of channels
    /// ([`NicConfig::ni_slots`]); beyond them, channels for exact rules are soft channels
    /// fed in software (see [`Nic::channel`](crate::Nic::channel)).
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

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::NiLrp => "NI-LRP",
            Mode::SoftLrp => "SOFT-LRP",
            Mode::Eager => "EAGER",
        })
    }
}

/// How the XDP program is attached ([`Nic::open`](crate::Nic::open) only; the simulated
/// NIC ignores it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum XdpAttach {
    /// Generic (SKB) mode: works on every interface, after the kernel built an skb.
    #[default]
    Skb,
    /// Native (driver) mode: in the driver, before any skb (veth: MTU <= ~3500).
    Driver,
}

/// Configuration of a [`Nic`](crate::Nic): start from [`NicConfig::default`] and chain
/// the setters, or set the public fields. [`Nic::open`](crate::Nic::open) and
/// [`Nic::sim`](crate::Nic::sim) check the whole configuration and say what is wrong
/// ([`Error::InvalidConfig`]).
///
/// ```
/// use lrp_net::{DefaultAction, Mode, NicConfig, XdpAttach};
///
/// let config = NicConfig::default()
///     .queue(0)
///     .frame_size(2048)
///     .frame_count(8192)
///     .rx_ring(2048)
///     .attach(XdpAttach::Driver)
///     .mode(Mode::NiLrp)
///     .default_action(DefaultAction::Pass);
/// assert_eq!(config.mode, Mode::NiLrp);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NicConfig {
    /// The interface queue to attach to.
    pub queue: u32,
    /// Chunk size of the frame pool: a power of two, 2048 or 4096. Frames larger than a
    /// chunk (less the kernel's 256-byte RX headroom) are dropped by the NIC.
    pub frame_size: u32,
    /// Number of frames in the pool (see [`frame_count`](Self::frame_count)).
    pub frame_count: u32,
    /// Bytes reserved in front of each frame for prepending headers in place.
    pub headroom: u32,
    /// Entries of the shared RX ring (SOFT-LRP, EAGER). Power of two.
    pub rx_ring: u32,
    /// Entries of the TX ring. Power of two.
    pub tx_ring: u32,
    /// Fill-ring target (see [`fill_ring`](Self::fill_ring)). Power of two.
    pub fill_ring: u32,
    /// Entries of the completion ring. Power of two.
    pub completion_ring: u32,
    /// How to attach the XDP program (AF_XDP only).
    pub attach: XdpAttach,
    /// The receive path.
    pub mode: Mode,
    /// What to do with frames no rule claims.
    pub default_action: DefaultAction,
    /// NI-LRP: whether channels have a gate.
    pub gate: bool,
    /// EAGER: capacity of the shared input queue.
    pub eager_queue: u32,
    /// Frames the poll step handles per call when a receiver runs it opportunistically.
    pub batch: usize,
    /// NI-LRP: channel slots in the NIC (see [`ni_slots`](Self::ni_slots)).
    pub ni_slots: u32,
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
    /// runs dry the NIC drops for every channel alike. With AF_XDP
    /// ([`Nic::open`](crate::Nic::open)) the pool must be a whole number of 4 KiB pages:
    /// with 2048-byte frames, an even count.
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
    /// exact rules become *soft channels* (see [`Nic::channel`](crate::Nic::channel)).
    pub fn ni_slots(mut self, slots: u32) -> Self {
        self.ni_slots = slots;
        self
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
}
