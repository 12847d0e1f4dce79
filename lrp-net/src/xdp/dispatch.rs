//! One XDP program per interface, one demux program per receive queue.
//!
//! An interface has a single XDP hook, but an AF_XDP socket receives only the frames of
//! the queue it is bound to, so lrp serves a multi-queue interface with one NIC instance
//! per queue: its own UMEM, sockets, demux maps and gates, and its own instance of the
//! demux program ([`LrpXdp`]). The [`Dispatcher`] (`lrp-net/bpf/lrp_dispatch.c`) is what
//! is attached to the interface: for each frame it tail-calls the demux program
//! registered for the frame's receive queue ([`Dispatcher::register`]). Frames of queues
//! nobody registered go to the kernel (`XDP_PASS`) and are counted per queue
//! ([`Dispatcher::unserved`]) — so a NIC serving queue 0 of a multi-queue interface
//! leaves the other queues' traffic to Linux instead of losing it.
//!
//! ```no_run
//! use lrp_net::xdp::{interface_index, AttachMode, Dispatcher, LrpXdp, ProgramConfig};
//!
//! let ifindex = interface_index("eth0")?;
//! let mut dispatcher = Dispatcher::attach(ifindex, AttachMode::Skb)?;
//! let queue0 = LrpXdp::load(&ProgramConfig::default())?;
//! dispatcher.register(0, &queue0)?; // queue 0's frames now go through `queue0`'s maps
//! # Ok::<(), lrp_net::xdp::XdpError>(())
//! ```

use aya::maps::{MapData, PerCpuArray, ProgramArray};
use aya::programs::Xdp;
use aya::{Ebpf, EbpfLoader};

use super::abi::MAX_QUEUES;
use super::program::{attach_to, find_xdp, load_error, load_xdp, AttachMode, LrpXdp};
use super::sys;
use super::XdpError;

/// The compiled dispatcher (`lrp-net/bpf/lrp_dispatch.o`, built by `bpf/build.sh`).
pub static DISPATCH_OBJECT: &[u8] = aya::include_bytes_aligned!("../../bpf/lrp_dispatch.o");

const PROGRAM: &str = "lrp_dispatch";

/// The dispatcher attached to one interface (see the [module docs](self)). Dropping it
/// detaches it (a BPF link), which also ends every registered queue's demultiplexing.
pub struct Dispatcher {
    ebpf: Ebpf,
    queues: ProgramArray<MapData>,
    unserved: PerCpuArray<MapData, u64>,
    link: Option<aya::programs::xdp::XdpLinkId>,
    ifindex: u32,
    mode: AttachMode,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("ifindex", &self.ifindex)
            .field("mode", &self.mode)
            .finish()
    }
}

fn check_queue(queue: u32) -> Result<(), XdpError> {
    if queue >= MAX_QUEUES {
        return Err(XdpError::InvalidConfig(format!(
            "queue {queue} is beyond the dispatcher's {MAX_QUEUES} queues"
        )));
    }
    Ok(())
}

impl Dispatcher {
    /// Load the dispatcher and attach it to interface `ifindex` (in the calling thread's
    /// network namespace) in `mode`. No queue is served yet: every frame still goes to the
    /// kernel. Fails like [`LrpXdp::attach`] (no such interface, mode not supported, MTU
    /// too large for driver mode, another program attached, missing capability).
    pub fn attach(ifindex: u32, mode: AttachMode) -> Result<Dispatcher, XdpError> {
        let ifname = sys::interface_name(ifindex)?;
        let mut ebpf = EbpfLoader::new()
            .load(DISPATCH_OBJECT)
            .map_err(load_error)?;
        let take = |ebpf: &mut Ebpf, name: &'static str| {
            ebpf.take_map(name)
                .ok_or_else(|| XdpError::AbiMismatch(format!("the dispatcher has no map `{name}`")))
        };
        let queues = ProgramArray::try_from(take(&mut ebpf, "lrp_queues")?)
            .map_err(|e| XdpError::AbiMismatch(format!("map `lrp_queues`: {e}")))?;
        let unserved = PerCpuArray::try_from(take(&mut ebpf, "lrp_unserved")?)
            .map_err(|e| XdpError::AbiMismatch(format!("map `lrp_unserved`: {e}")))?;
        let prog = find_xdp(&mut ebpf, PROGRAM, "finding the dispatcher")?;
        load_xdp(
            prog,
            "loading the XDP dispatcher",
            "loading (verifying) the XDP dispatcher",
        )?;
        let link = attach_to(prog, ifindex, &ifname, mode)?;
        Ok(Dispatcher {
            ebpf,
            queues,
            unserved,
            link: Some(link),
            ifindex,
            mode,
        })
    }

    /// Hand the frames of receive queue `queue` to `program` (replacing any program
    /// registered for it). `program` need not be attached; it must stay loaded while
    /// registered (the kernel keeps it alive, but its sockets and maps are its owner's).
    pub fn register(&mut self, queue: u32, program: &LrpXdp) -> Result<(), XdpError> {
        check_queue(queue)?;
        let fd = program.program_fd()?;
        self.queues.set(queue, fd, 0).map_err(|e| XdpError::Map {
            map: "lrp_queues",
            op: "set",
            source: Box::new(e),
        })
    }

    /// Stop serving `queue`: its frames go to the kernel again. Unregistering a queue
    /// that is not registered is not an error.
    pub fn unregister(&mut self, queue: u32) -> Result<(), XdpError> {
        check_queue(queue)?;
        match self.queues.clear_index(&queue) {
            Ok(()) => Ok(()),
            Err(aya::maps::MapError::SyscallError(s))
                if s.io_error.raw_os_error() == Some(libc::ENOENT) =>
            {
                Ok(())
            }
            Err(e) => Err(XdpError::Map {
                map: "lrp_queues",
                op: "clear",
                source: Box::new(e),
            }),
        }
    }

    /// Frames that arrived on receive queue `queue` while no program was registered for it
    /// (passed to the kernel), summed over CPUs.
    pub fn unserved(&self, queue: u32) -> Result<u64, XdpError> {
        check_queue(queue)?;
        let per_cpu = self.unserved.get(&queue, 0).map_err(|e| XdpError::Map {
            map: "lrp_unserved",
            op: "get",
            source: Box::new(e),
        })?;
        Ok(per_cpu.iter().sum())
    }

    /// The interface index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The attach mode.
    pub fn mode(&self) -> AttachMode {
        self.mode
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        // Detach explicitly, before the maps go: frames stop reaching the demux programs
        // (whose sockets may be closing) at once. Dropping `ebpf` would do it too.
        let Some(link) = self.link.take() else { return };
        if let Some(prog) = self
            .ebpf
            .program_mut(PROGRAM)
            .and_then(|p| <&mut Xdp>::try_from(p).ok())
        {
            let _ = prog.detach(link);
        }
    }
}
