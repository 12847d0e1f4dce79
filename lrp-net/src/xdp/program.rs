//! The XDP demux program (`lrp-net/bpf/lrp_xdp.c`): loading, attaching, and typed
//! handles on its maps and counters.
//!
//! The compiled object is embedded in the crate ([`EMBEDDED_OBJECT`]), so building needs
//! only the Rust toolchain. Setting `LRP_XDP_OBJECT=/path/to/lrp_xdp.o` makes
//! [`LrpXdp::load`] use that file instead (CI rebuilds the object from source with
//! `lrp-net/bpf/build.sh` and runs the same tests against it).
//!
//! The program is attached with a BPF link ([`LrpXdp::attach`]): it is detached when the
//! [`LrpXdp`] is dropped, and by the kernel if the process dies, so a crashed test never
//! leaves a program behind.
//!
//! What the maps mean is in the C header (`lrp_xdp.h`) and [`super::abi`]; the rules the
//! program applies are those of [`lrp_core::demux::Demux`] (exact 5-tuple, SYN channel of
//! the matching listener, listener, host, default).

use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use aya::maps::{Array, HashMap, MapData, PerCpuArray, XskMap};
use aya::programs::{TestRun, TestRunOptions, Xdp, XdpMode};
use aya::{Ebpf, EbpfError, EbpfLoader};
use lrp_core::channel::{Gate, GateState};
use lrp_core::demux::{ChannelId, DefaultAction, Listener, ListenerKey};
use lrp_core::flow::{FlowKey, Malformed};

use super::abi::{
    self, RawConfig, RawFlowKey, RawGlobalStats, RawHostKey, RawListener, RawListenerKey,
    RawSlotStats, MALFORMED_REASONS, NO_SLOT,
};
use super::sys;
use super::XdpError;

/// The compiled XDP object (`lrp-net/bpf/lrp_xdp.o`, built by `bpf/build.sh`).
pub static EMBEDDED_OBJECT: &[u8] = aya::include_bytes_aligned!("../../bpf/lrp_xdp.o");

/// Environment variable naming an XDP object file to load instead of the embedded one.
pub const OBJECT_ENV: &str = "LRP_XDP_OBJECT";

/// Name of the program in the object.
const PROGRAM: &str = "lrp_demux";

/// Where the program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttachMode {
    /// Generic XDP, after the kernel allocated the skb (`XDP_FLAGS_SKB_MODE`). Works on
    /// every interface; frames are still copied into the UMEM.
    Skb,
    /// Native XDP in the driver, before any skb (`XDP_FLAGS_DRV_MODE`). veth supports it
    /// at MTU <= ~3500 (on both ends of the pair).
    Driver,
}

impl AttachMode {
    fn aya(self) -> XdpMode {
        match self {
            AttachMode::Skb => XdpMode::Skb,
            AttachMode::Driver => XdpMode::Driver,
        }
    }
}

/// How the program demultiplexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DemuxMode {
    /// NI-LRP: the program looks the frame up and redirects it to its endpoint's slot.
    Ni,
    /// SOFT-LRP: the same lookup as [`DemuxMode::Ni`] only decides whether a rule claims
    /// the frame; every claimed frame goes to `slot` (one shared socket) and userspace
    /// demultiplexes it into its channels. Gates of the rules' slots are not consulted.
    /// Unclaimed frames take the default action, exactly as in NI mode.
    Soft {
        /// The single socket's slot.
        slot: u32,
    },
}

/// The program's run-time configuration (the `config` map).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DemuxConfig {
    /// NI or SOFT demultiplexing.
    pub mode: DemuxMode,
    /// What happens to frames no rule claims.
    pub default: DefaultAction,
}

impl Default for DemuxConfig {
    /// NI-LRP, unmatched frames passed to the kernel (ARP, ICMP, ssh keep working).
    fn default() -> Self {
        DemuxConfig {
            mode: DemuxMode::Ni,
            default: DefaultAction::Pass,
        }
    }
}

/// Map capacities fixed at load time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgramConfig {
    /// Channel slots: XSKMAP, gate and per-slot counter entries.
    pub max_slots: u32,
    /// Exact 5-tuple entries.
    pub max_flows: u32,
    /// Listener entries.
    pub max_listeners: u32,
    /// Host entries.
    pub max_hosts: u32,
}

impl Default for ProgramConfig {
    fn default() -> Self {
        ProgramConfig {
            max_slots: abi::DEFAULT_MAX_SLOTS,
            max_flows: abi::DEFAULT_MAX_FLOWS,
            max_listeners: abi::DEFAULT_MAX_LISTENERS,
            max_hosts: abi::DEFAULT_MAX_HOSTS,
        }
    }
}

/// An XDP return code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum XdpAction {
    /// `XDP_ABORTED` (0): a program error.
    Aborted,
    /// `XDP_DROP` (1).
    Drop,
    /// `XDP_PASS` (2): to the kernel stack.
    Pass,
    /// `XDP_TX` (3).
    Tx,
    /// `XDP_REDIRECT` (4): to an AF_XDP socket.
    Redirect,
    /// Anything else.
    Other(u32),
}

impl From<u32> for XdpAction {
    fn from(v: u32) -> Self {
        match v {
            0 => XdpAction::Aborted,
            1 => XdpAction::Drop,
            2 => XdpAction::Pass,
            3 => XdpAction::Tx,
            4 => XdpAction::Redirect,
            o => XdpAction::Other(o),
        }
    }
}

/// Per-slot counters, summed over CPUs. Outcomes are exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SlotCounters {
    /// Frames redirected to the slot's socket. Whether the kernel could then put them
    /// in the RX ring is in the socket's `XDP_STATISTICS` (`rx_ring_full`).
    pub redirected: u64,
    /// Frames dropped at the slot's closed gate, before any copy (early discard).
    pub gate_drops: u64,
    /// Frames for the slot while no socket was in its XSKMAP entry (default action).
    pub no_socket: u64,
}

/// Program-wide counters, summed over CPUs. `passed + dropped_default + bad_slot +
/// malformed_total()` plus the per-slot outcomes is the number of frames the program saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProgramCounters {
    /// Unmatched frames passed to the kernel.
    pub passed: u64,
    /// Unmatched frames dropped.
    pub dropped_default: u64,
    /// Frames whose rule named a slot beyond the maps (default action).
    pub bad_slot: u64,
    /// Malformed frames, dropped, by [`Malformed::index`].
    pub malformed: [u64; MALFORMED_REASONS],
    /// Slots chosen by an exact 5-tuple entry.
    pub hit_exact: u64,
    /// Slots chosen as a listener's SYN channel.
    pub hit_syn: u64,
    /// Slots chosen by a listener.
    pub hit_listener: u64,
    /// Slots chosen by a host entry.
    pub hit_host: u64,
    /// SOFT mode: claimed frames sent to the soft slot (counted in addition to the hit of
    /// the rule that claimed them).
    pub hit_soft: u64,
    /// Non-first IP fragments (default action).
    pub fragments: u64,
}

impl ProgramCounters {
    /// Malformed frames of every reason.
    pub fn malformed_total(&self) -> u64 {
        self.malformed.iter().sum()
    }

    /// Malformed frames of one reason.
    pub fn malformed(&self, reason: Malformed) -> u64 {
        self.malformed.get(reason.index()).copied().unwrap_or(0)
    }

    fn add(&mut self, r: &RawGlobalStats) {
        self.passed += r.passed;
        self.dropped_default += r.dropped_default;
        self.bad_slot += r.bad_slot;
        for (a, b) in self.malformed.iter_mut().zip(r.malformed.iter()) {
            *a += b;
        }
        self.hit_exact += r.hit_exact;
        self.hit_syn += r.hit_syn;
        self.hit_listener += r.hit_listener;
        self.hit_host += r.hit_host;
        self.hit_soft += r.hit_soft;
        self.fragments += r.fragments;
    }
}

fn map_err(map: &'static str, op: &'static str) -> impl FnOnce(aya::maps::MapError) -> XdpError {
    move |e| XdpError::Map {
        map,
        op,
        source: Box::new(e),
    }
}

/// A handle on the program's gate map. Cheap to create ([`LrpXdp::gates`]), `Send`:
/// give one to the thread that watches a channel's ring.
pub struct Gates {
    map: Array<MapData, u32>,
    max_slots: u32,
}

impl std::fmt::Debug for Gates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gates")
            .field("max_slots", &self.max_slots)
            .finish()
    }
}

impl Gates {
    /// A handle on the gate map behind `fd` (a duplicate is made).
    fn open(fd: BorrowedFd<'_>, max_slots: u32) -> Result<Gates, XdpError> {
        let fd = fd.try_clone_to_owned().map_err(|e| XdpError::Syscall {
            op: "dup(gate map fd)",
            source: e,
        })?;
        let data = MapData::from_fd(fd).map_err(map_err("gates", "open"))?;
        let map = Array::try_from(aya::maps::Map::Array(data))
            .map_err(|e| XdpError::AbiMismatch(format!("map `gates`: {e}")))?;
        Ok(Gates { map, max_slots })
    }

    /// Open (`GateState::Open`) or close a slot's gate. A closed gate makes the program
    /// drop the slot's frames before they are copied, counting them in
    /// [`SlotCounters::gate_drops`].
    pub fn set(&mut self, slot: u32, state: GateState) -> Result<(), XdpError> {
        check_slot(slot, self.max_slots)?;
        let v = u32::from(state == GateState::Closed);
        self.map.set(slot, v, 0).map_err(map_err("gates", "set"))
    }

    /// A slot's gate as the program sees it.
    pub fn get(&self, slot: u32) -> Result<GateState, XdpError> {
        check_slot(slot, self.max_slots)?;
        let v = self.map.get(&slot, 0).map_err(map_err("gates", "get"))?;
        Ok(if v != 0 {
            GateState::Closed
        } else {
            GateState::Open
        })
    }
}

/// The early-discard gate of one slot: hysteresis on the RX ring occupancy
/// ([`lrp_core::channel::Gate`], closes at 3/4, opens at 1/4), mirrored into the
/// program's gate map. Feed it the ring occupancy ([`super::XskSocket::rx_len`])
/// whenever the channel's consumer or a supervisor looks at the ring.
#[derive(Debug)]
pub struct SlotGate {
    slot: u32,
    gate: Gate,
}

impl SlotGate {
    /// A gate for `slot` whose RX ring has `rx_capacity` entries.
    pub fn new(slot: u32, rx_capacity: u32) -> SlotGate {
        SlotGate {
            slot,
            gate: Gate::new((rx_capacity as usize).max(1)),
        }
    }

    /// The slot.
    pub fn slot(&self) -> u32 {
        self.slot
    }

    /// Feed the ring occupancy; on a transition, publish the gate's state to the map and
    /// return it.
    pub fn observe(&self, rx_len: u32, gates: &mut Gates) -> Result<Option<GateState>, XdpError> {
        match self.gate.observe(rx_len as usize) {
            Some(_) => {
                // Publish the current state, not the transition: a late writer must not
                // publish a stale state (see `Gate::observe`).
                let state = self.gate.state();
                gates.set(self.slot, state)?;
                Ok(Some(state))
            }
            None => Ok(None),
        }
    }

    /// The gate's state.
    pub fn state(&self) -> GateState {
        self.gate.state()
    }

    /// How many times it closed.
    pub fn closings(&self) -> u64 {
        self.gate.closings()
    }
}

fn check_slot(slot: u32, max_slots: u32) -> Result<(), XdpError> {
    if slot >= max_slots {
        return Err(XdpError::SlotOutOfRange { slot, max_slots });
    }
    Ok(())
}

fn slot_of(c: ChannelId) -> u32 {
    c.0
}

/// The loaded XDP demux program and its maps. Dropping it detaches the program and
/// frees the maps.
pub struct LrpXdp {
    ebpf: Ebpf,
    link: Option<(aya::programs::xdp::XdpLinkId, u32, AttachMode)>,
    max_slots: u32,
    xsks: XskMap<MapData>,
    gates: Gates,
    /// The gate map's fd, kept to hand out more [`Gates`] handles.
    gates_fd: OwnedFd,
    config: Array<MapData, RawConfig>,
    flows: HashMap<MapData, RawFlowKey, u32>,
    listeners: HashMap<MapData, RawListenerKey, RawListener>,
    hosts: HashMap<MapData, RawHostKey, u32>,
    slot_stats: PerCpuArray<MapData, RawSlotStats>,
    global_stats: PerCpuArray<MapData, RawGlobalStats>,
}

impl std::fmt::Debug for LrpXdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LrpXdp")
            .field("max_slots", &self.max_slots)
            .field("attached", &self.link.as_ref().map(|(_, i, m)| (i, m)))
            .finish()
    }
}

pub(super) fn load_error(e: EbpfError) -> XdpError {
    match e {
        EbpfError::FileError { path, error } => XdpError::ObjectFile {
            path: path.display().to_string(),
            source: error,
        },
        EbpfError::MapError(aya::maps::MapError::CreateError { ref io_error, .. })
            if matches!(
                io_error.raw_os_error(),
                Some(libc::EPERM) | Some(libc::EACCES)
            ) =>
        {
            XdpError::PermissionDenied {
                op: "creating BPF maps",
                capability: "CAP_BPF",
            }
        }
        e => XdpError::Load(Box::new(e)),
    }
}

/// Program `name` of `ebpf`, as an XDP program; `op` names the step in the error if it is
/// of another type.
pub(super) fn find_xdp<'a>(
    ebpf: &'a mut Ebpf,
    name: &str,
    op: &'static str,
) -> Result<&'a mut Xdp, XdpError> {
    ebpf.program_mut(name)
        .ok_or_else(|| XdpError::AbiMismatch(format!("the object has no program `{name}`")))?
        .try_into()
        .map_err(|e| XdpError::Program {
            op,
            source: Box::new(e),
        })
}

/// Load (verify) `prog` in the kernel: a refusal for want of privilege is reported as
/// [`XdpError::PermissionDenied`] for `denied_op`, any other failure (the verifier's
/// rejection among them) as [`XdpError::Program`] for `failed_op`.
pub(super) fn load_xdp(
    prog: &mut Xdp,
    denied_op: &'static str,
    failed_op: &'static str,
) -> Result<(), XdpError> {
    prog.load().map_err(|e| match &e {
        aya::programs::ProgramError::LoadError { io_error, .. }
            if matches!(
                io_error.raw_os_error(),
                Some(libc::EPERM) | Some(libc::EACCES)
            ) =>
        {
            XdpError::PermissionDenied {
                op: denied_op,
                capability: "CAP_BPF and CAP_NET_ADMIN",
            }
        }
        _ => XdpError::Program {
            op: failed_op,
            source: Box::new(e),
        },
    })
}

fn take<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, XdpError>
where
    T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf
        .take_map(name)
        .ok_or_else(|| XdpError::AbiMismatch(format!("the object has no map `{name}`")))?;
    T::try_from(map).map_err(|e| XdpError::AbiMismatch(format!("map `{name}`: {e}")))
}

impl LrpXdp {
    /// Load the program: the file named by `LRP_XDP_OBJECT` if set, else the embedded
    /// object. Verifies it in the kernel and creates its maps (gates open, config:
    /// NI-LRP, default pass). Does not attach it.
    pub fn load(config: &ProgramConfig) -> Result<LrpXdp, XdpError> {
        match std::env::var_os(OBJECT_ENV) {
            Some(path) => {
                log::info!(
                    "loading XDP object from {OBJECT_ENV}={}",
                    path.to_string_lossy()
                );
                let mut loader = Self::loader(config);
                let ebpf = loader.load_file(&path).map_err(load_error)?;
                Self::finish(ebpf, config)
            }
            None => Self::load_object(EMBEDDED_OBJECT, config),
        }
    }

    /// Load the program from an object in memory (8-byte aligned, see
    /// [`aya::include_bytes_aligned`]).
    pub fn load_object(object: &[u8], config: &ProgramConfig) -> Result<LrpXdp, XdpError> {
        let ebpf = Self::loader(config).load(object).map_err(load_error)?;
        Self::finish(ebpf, config)
    }

    fn loader(config: &ProgramConfig) -> EbpfLoader<'static> {
        let mut l = EbpfLoader::new();
        l.map_max_entries("xsks", config.max_slots)
            .map_max_entries("gates", config.max_slots)
            .map_max_entries("slot_stats", config.max_slots)
            .map_max_entries("flows", config.max_flows)
            .map_max_entries("listeners", config.max_listeners)
            .map_max_entries("hosts", config.max_hosts);
        l
    }

    fn finish(mut ebpf: Ebpf, config: &ProgramConfig) -> Result<LrpXdp, XdpError> {
        if config.max_slots == 0 {
            return Err(XdpError::InvalidConfig(
                "max_slots must be at least 1".into(),
            ));
        }
        let prog = find_xdp(&mut ebpf, PROGRAM, "finding the XDP program")?;
        load_xdp(
            prog,
            "loading the XDP program",
            "loading (verifying) the XDP program",
        )?;
        let gates_fd = match ebpf.map("gates") {
            Some(aya::maps::Map::Array(data)) => {
                data.fd()
                    .as_fd()
                    .try_clone_to_owned()
                    .map_err(|e| XdpError::Syscall {
                        op: "dup(gate map fd)",
                        source: e,
                    })?
            }
            _ => {
                return Err(XdpError::AbiMismatch(
                    "the object has no array map `gates`".into(),
                ))
            }
        };
        let mut x = LrpXdp {
            xsks: take(&mut ebpf, "xsks")?,
            gates: Gates::open(gates_fd.as_fd(), config.max_slots)?,
            gates_fd,
            config: take(&mut ebpf, "config")?,
            flows: take(&mut ebpf, "flows")?,
            listeners: take(&mut ebpf, "listeners")?,
            hosts: take(&mut ebpf, "hosts")?,
            slot_stats: take(&mut ebpf, "slot_stats")?,
            global_stats: take(&mut ebpf, "global_stats")?,
            ebpf,
            link: None,
            max_slots: config.max_slots,
        };
        x.set_config(&DemuxConfig::default())?;
        Ok(x)
    }

    fn program(&self) -> Result<&Xdp, XdpError> {
        self.ebpf
            .program(PROGRAM)
            .ok_or_else(|| XdpError::AbiMismatch(format!("the object has no program `{PROGRAM}`")))?
            .try_into()
            .map_err(|e| XdpError::Program {
                op: "finding the XDP program",
                source: Box::new(e),
            })
    }

    /// Attach to interface `ifindex` (in the calling thread's network namespace) in
    /// `mode`, through a BPF link. Replaces nothing: fails if another program is
    /// attached. Check the MTU against the UMEM first ([`super::Umem::check_mtu`]).
    pub fn attach(&mut self, ifindex: u32, mode: AttachMode) -> Result<(), XdpError> {
        if self.link.is_some() {
            return Err(XdpError::InvalidConfig(
                "the program is already attached".into(),
            ));
        }
        let ifname = sys::interface_name(ifindex)?;
        let prog = find_xdp(&mut self.ebpf, PROGRAM, "finding the XDP program")?;
        let id = attach_to(prog, ifindex, &ifname, mode)?;
        self.link = Some((id, ifindex, mode));
        Ok(())
    }

    /// Detach from the interface (also done on drop).
    pub fn detach(&mut self) -> Result<(), XdpError> {
        let Some((id, _, _)) = self.link.take() else {
            return Ok(());
        };
        let prog = find_xdp(&mut self.ebpf, PROGRAM, "finding the XDP program")?;
        prog.detach(id).map_err(|e| XdpError::Program {
            op: "detaching",
            source: Box::new(e),
        })
    }

    /// The loaded program's fd (for a [`Dispatcher`](super::Dispatcher)'s program array).
    pub(crate) fn program_fd(&self) -> Result<&aya::programs::ProgramFd, XdpError> {
        self.program()?.fd().map_err(|e| XdpError::Program {
            op: "getting the program fd",
            source: Box::new(e),
        })
    }

    /// The interface index and mode the program is attached with, if attached.
    pub fn attachment(&self) -> Option<(u32, AttachMode)> {
        self.link.as_ref().map(|&(_, i, m)| (i, m))
    }

    /// Number of slots (XSKMAP entries).
    pub fn max_slots(&self) -> u32 {
        self.max_slots
    }

    /// Put socket `socket` into XSKMAP `slot`: frames the program sends to `slot` go to
    /// its RX ring. The socket must be bound to the interface and queue the frames
    /// arrive on.
    pub fn set_socket(&mut self, slot: u32, socket: &impl AsRawFd) -> Result<(), XdpError> {
        check_slot(slot, self.max_slots)?;
        self.xsks
            .set(slot, socket.as_raw_fd(), 0)
            .map_err(map_err("xsks", "set"))
    }

    /// Empty XSKMAP `slot` (frames for it then take the default action, counted as
    /// [`SlotCounters::no_socket`]).
    pub fn clear_socket(&mut self, slot: u32) -> Result<(), XdpError> {
        check_slot(slot, self.max_slots)?;
        self.xsks.unset(slot).map_err(map_err("xsks", "unset"))
    }

    /// Set the mode and default action.
    pub fn set_config(&mut self, c: &DemuxConfig) -> Result<(), XdpError> {
        let (mode, soft_slot) = match c.mode {
            DemuxMode::Ni => (abi::MODE_NI, 0),
            DemuxMode::Soft { slot } => {
                check_slot(slot, self.max_slots)?;
                (abi::MODE_SOFT, slot)
            }
        };
        let default_action = match c.default {
            DefaultAction::Pass => abi::XDP_PASS,
            DefaultAction::Drop => abi::XDP_DROP,
        };
        let raw = RawConfig {
            mode,
            default_action,
            soft_slot,
            reserved: 0,
        };
        self.config.set(0, raw, 0).map_err(map_err("config", "set"))
    }

    /// Change only the default action (keeps the mode).
    pub fn set_default_action(&mut self, default: DefaultAction) -> Result<(), XdpError> {
        let mode = self.demux_config()?.mode;
        self.set_config(&DemuxConfig { mode, default })
    }

    /// The current mode and default action.
    pub fn demux_config(&self) -> Result<DemuxConfig, XdpError> {
        let raw = self.config.get(&0, 0).map_err(map_err("config", "get"))?;
        let mode = if raw.mode == abi::MODE_SOFT {
            DemuxMode::Soft {
                slot: raw.soft_slot,
            }
        } else {
            DemuxMode::Ni
        };
        let default = if raw.default_action == abi::XDP_DROP {
            DefaultAction::Drop
        } else {
            DefaultAction::Pass
        };
        Ok(DemuxConfig { mode, default })
    }

    /// Insert or replace an exact 5-tuple entry (`key` as the frame carries it: `src` is
    /// the remote peer).
    pub fn insert_flow(&mut self, key: &FlowKey, channel: ChannelId) -> Result<(), XdpError> {
        check_slot(slot_of(channel), self.max_slots)?;
        self.flows
            .insert(RawFlowKey::from(key), slot_of(channel), 0)
            .map_err(map_err("flows", "insert"))
    }

    /// Remove an exact entry. Removing an absent entry is not an error.
    pub fn remove_flow(&mut self, key: &FlowKey) -> Result<(), XdpError> {
        absent_ok(self.flows.remove(&RawFlowKey::from(key)), "flows")
    }

    /// Insert or replace a listener entry. A listener without a plain channel has only a
    /// SYN channel: its other traffic takes the default action.
    pub fn insert_listener(&mut self, key: &ListenerKey, l: &Listener) -> Result<(), XdpError> {
        let slot = match l.channel {
            Some(c) => {
                check_slot(slot_of(c), self.max_slots)?;
                slot_of(c)
            }
            None => NO_SLOT,
        };
        let syn_slot = match l.syn_channel {
            Some(c) => {
                check_slot(slot_of(c), self.max_slots)?;
                slot_of(c)
            }
            None => NO_SLOT,
        };
        self.listeners
            .insert(RawListenerKey::from(key), RawListener { slot, syn_slot }, 0)
            .map_err(map_err("listeners", "insert"))
    }

    /// Remove a listener entry. Removing an absent entry is not an error.
    pub fn remove_listener(&mut self, key: &ListenerKey) -> Result<(), XdpError> {
        absent_ok(
            self.listeners.remove(&RawListenerKey::from(key)),
            "listeners",
        )
    }

    /// Insert or replace a host entry: ARP for `addr` and ICMP to it go to `channel`; in
    /// SOFT mode, `addr` is one of the addresses whose frames go to the SOFT slot. For
    /// IPv6, also register the solicited-node address
    /// ([`lrp_core::demux::solicited_node`]) so neighbor solicitations arrive.
    pub fn insert_host(&mut self, addr: IpAddr, channel: ChannelId) -> Result<(), XdpError> {
        check_slot(slot_of(channel), self.max_slots)?;
        self.hosts
            .insert(RawHostKey::from(addr), slot_of(channel), 0)
            .map_err(map_err("hosts", "insert"))
    }

    /// Remove a host entry. Removing an absent entry is not an error.
    pub fn remove_host(&mut self, addr: IpAddr) -> Result<(), XdpError> {
        absent_ok(self.hosts.remove(&RawHostKey::from(addr)), "hosts")
    }

    /// Open or close a slot's gate (see [`Gates::set`]).
    pub fn set_gate(&mut self, slot: u32, state: GateState) -> Result<(), XdpError> {
        self.gates.set(slot, state)
    }

    /// A slot's gate.
    pub fn gate(&self, slot: u32) -> Result<GateState, XdpError> {
        self.gates.get(slot)
    }

    /// Another handle on the gate map, for a thread that drives gates.
    pub fn gates(&self) -> Result<Gates, XdpError> {
        Gates::open(self.gates_fd.as_fd(), self.max_slots)
    }

    /// A slot's counters, summed over CPUs.
    pub fn slot_counters(&self, slot: u32) -> Result<SlotCounters, XdpError> {
        check_slot(slot, self.max_slots)?;
        let per_cpu = self
            .slot_stats
            .get(&slot, 0)
            .map_err(map_err("slot_stats", "get"))?;
        let mut c = SlotCounters::default();
        for v in per_cpu.iter() {
            c.redirected += v.redirected;
            c.gate_drops += v.gate_drops;
            c.no_socket += v.no_socket;
        }
        Ok(c)
    }

    /// The program-wide counters, summed over CPUs.
    pub fn counters(&self) -> Result<ProgramCounters, XdpError> {
        let per_cpu = self
            .global_stats
            .get(&0, 0)
            .map_err(map_err("global_stats", "get"))?;
        let mut c = ProgramCounters::default();
        for v in per_cpu.iter() {
            c.add(v);
        }
        Ok(c)
    }

    /// Run the program once on `frame` in the kernel (`BPF_PROG_TEST_RUN`), without any
    /// interface, and return its verdict. Maps and counters are the live ones: a frame
    /// for a slot without a socket counts as [`SlotCounters::no_socket`] and returns the
    /// default action. `frame` must be at least 14 bytes (the kernel's minimum).
    pub fn test_run(&self, frame: &[u8]) -> Result<XdpAction, XdpError> {
        let opts = TestRunOptions {
            data_in: Some(frame),
            ..TestRunOptions::default()
        };
        let r = self
            .program()?
            .test_run(opts)
            .map_err(|e| XdpError::Program {
                op: "BPF_PROG_TEST_RUN",
                source: Box::new(e),
            })?;
        Ok(XdpAction::from(r.return_value))
    }
}

/// Attach `prog` to `ifindex` in `mode` through a BPF link, with the kernel's answers
/// turned into errors that say what to do.
pub(crate) fn attach_to(
    prog: &mut Xdp,
    ifindex: u32,
    ifname: &str,
    mode: AttachMode,
) -> Result<aya::programs::xdp::XdpLinkId, XdpError> {
    prog.attach_to_if_index(ifindex, mode.aya()).map_err(|e| {
        let errno = match &e {
            aya::programs::ProgramError::SyscallError(s) => s.io_error.raw_os_error(),
            _ => None,
        };
        let source = || std::io::Error::from_raw_os_error(errno.unwrap_or(0));
        match errno {
            Some(libc::EPERM) | Some(libc::EACCES) => XdpError::PermissionDenied {
                op: "attaching the XDP program",
                capability: "CAP_NET_ADMIN and CAP_BPF",
            },
            Some(libc::EOPNOTSUPP) | Some(libc::EINVAL) => XdpError::ModeNotSupported {
                ifname: ifname.to_owned(),
                mode,
                source: source(),
            },
            Some(libc::ERANGE) => XdpError::MtuTooLargeForDriverMode {
                ifname: ifname.to_owned(),
                source: source(),
            },
            Some(libc::EBUSY) | Some(libc::EEXIST) => XdpError::AlreadyAttached {
                ifname: ifname.to_owned(),
                source: source(),
            },
            Some(libc::ENODEV) => XdpError::NoSuchInterface(ifname.to_owned()),
            _ => XdpError::Program {
                op: "attaching the XDP program",
                source: Box::new(e),
            },
        }
    })
}

fn absent_ok(r: Result<(), aya::maps::MapError>, map: &'static str) -> Result<(), XdpError> {
    match r {
        Ok(()) => Ok(()),
        Err(aya::maps::MapError::KeyNotFound) => Ok(()),
        Err(aya::maps::MapError::SyscallError(s))
            if s.io_error.raw_os_error() == Some(libc::ENOENT) =>
        {
            Ok(())
        }
        Err(e) => Err(XdpError::Map {
            map,
            op: "remove",
            source: Box::new(e),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_object_is_an_ebpf_elf() {
        // ELF magic, 64-bit, little endian, machine EM_BPF (247).
        assert_eq!(&EMBEDDED_OBJECT[..4], b"\x7fELF");
        assert_eq!(EMBEDDED_OBJECT[4], 2);
        assert_eq!(EMBEDDED_OBJECT[5], 1);
        assert_eq!(
            u16::from_le_bytes([EMBEDDED_OBJECT[18], EMBEDDED_OBJECT[19]]),
            247
        );
        assert_eq!(EMBEDDED_OBJECT.as_ptr() as usize % 8, 0);
    }

    #[test]
    fn xdp_action_codes() {
        assert_eq!(XdpAction::from(1), XdpAction::Drop);
        assert_eq!(XdpAction::from(2), XdpAction::Pass);
        assert_eq!(XdpAction::from(4), XdpAction::Redirect);
        assert_eq!(XdpAction::from(9), XdpAction::Other(9));
    }

    #[test]
    fn program_counters_sum_and_reasons() {
        let mut c = ProgramCounters::default();
        let mut r = RawGlobalStats {
            passed: 2,
            ..Default::default()
        };
        r.malformed[Malformed::BadUdpLen.index()] = 3;
        c.add(&r);
        c.add(&r);
        assert_eq!(c.passed, 4);
        assert_eq!(c.malformed(Malformed::BadUdpLen), 6);
        assert_eq!(c.malformed_total(), 6);
    }
}
