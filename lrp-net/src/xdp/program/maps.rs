//! The program's maps: the demux configuration and rules ([`LrpXdp`]'s map updates), the
//! gates ([`Gates`], [`SlotGate`]) and the counters ([`SlotCounters`], [`ProgramCounters`]).

use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use aya::maps::{Array, MapData};
use lrp_core::channel::{Gate, GateState};
use lrp_core::demux::{ChannelId, DefaultAction, Listener, ListenerKey, SourceKey};
use lrp_core::flow::{FlowKey, Malformed};

use super::LrpXdp;
use crate::xdp::abi::{
    self, RawConfig, RawFlowKey, RawGlobalStats, RawHostKey, RawListener, RawListenerKey,
    RawSourceKey, MALFORMED_REASONS, NO_SLOT,
};
use crate::xdp::XdpError;

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
    /// Slots chosen by a source entry.
    pub hit_source: u64,
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
        self.hit_source += r.hit_source;
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
    pub(super) fn open(fd: BorrowedFd<'_>, max_slots: u32) -> Result<Gates, XdpError> {
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
///
/// [`super::XskSocket::rx_len`]: crate::xdp::XskSocket::rx_len
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

impl LrpXdp {
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

    /// Insert or replace a source entry: UDP / TCP from `key`'s (address, port) that no
    /// exact or listener entry claims goes to `channel`, whatever its destination (an LVS
    /// director's NAT replies from a real server). In SOFT mode it is one of the rules
    /// whose frames go to the SOFT slot.
    pub fn insert_source(&mut self, key: &SourceKey, channel: ChannelId) -> Result<(), XdpError> {
        check_slot(slot_of(channel), self.max_slots)?;
        self.sources
            .insert(RawSourceKey::from(key), slot_of(channel), 0)
            .map_err(map_err("sources", "insert"))
    }

    /// Remove a source entry. Removing an absent entry is not an error.
    pub fn remove_source(&mut self, key: &SourceKey) -> Result<(), XdpError> {
        absent_ok(self.sources.remove(&RawSourceKey::from(key)), "sources")
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
