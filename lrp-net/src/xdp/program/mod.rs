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
//! the matching listener, listener, source, host, default).
//!
//! Loading and attaching are here; the map updates, counters and gates are in `maps.rs`.

mod maps;

use std::os::fd::{AsFd, OwnedFd};

use aya::maps::{Array, HashMap, MapData, PerCpuArray, XskMap};
use aya::programs::{TestRun, TestRunOptions, Xdp, XdpMode};
use aya::{Ebpf, EbpfError, EbpfLoader};

use super::abi::{
    self, RawConfig, RawFlowKey, RawGlobalStats, RawHostKey, RawListener, RawListenerKey,
    RawSlotStats, RawSourceKey,
};
use super::sys;
use super::XdpError;

pub use maps::{DemuxConfig, DemuxMode, Gates, ProgramCounters, SlotCounters, SlotGate};

/// The compiled XDP object (`lrp-net/bpf/lrp_xdp.o`, built by `bpf/build.sh`).
pub static EMBEDDED_OBJECT: &[u8] = aya::include_bytes_aligned!("../../../bpf/lrp_xdp.o");

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
    /// Source entries.
    pub max_sources: u32,
}

impl Default for ProgramConfig {
    fn default() -> Self {
        ProgramConfig {
            max_slots: abi::DEFAULT_MAX_SLOTS,
            max_flows: abi::DEFAULT_MAX_FLOWS,
            max_listeners: abi::DEFAULT_MAX_LISTENERS,
            max_hosts: abi::DEFAULT_MAX_HOSTS,
            max_sources: abi::DEFAULT_MAX_SOURCES,
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
    sources: HashMap<MapData, RawSourceKey, u32>,
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
            .map_max_entries("hosts", config.max_hosts)
            .map_max_entries("sources", config.max_sources);
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
            sources: take(&mut ebpf, "sources")?,
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
}
