//! Errors of the AF_XDP layer, each with a message that says what to do about it.

use std::io;

use super::program::AttachMode;

/// Errors of the AF_XDP layer ([`crate::xdp`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum XdpError {
    /// The process lacks a capability the operation needs.
    #[error(
        "{op}: permission denied; run as root or grant {capability} \
         (e.g. `setcap cap_net_admin,cap_net_raw,cap_bpf,cap_ipc_lock+ep <binary>`)"
    )]
    PermissionDenied {
        /// What was attempted.
        op: &'static str,
        /// The capability (or capabilities) it needs.
        capability: &'static str,
    },
    /// No interface of that name or index in the calling thread's network namespace.
    #[error(
        "no such network interface `{0}` in this thread's network namespace \
         (check `ip link`; inside a namespace, call from a thread that entered it)"
    )]
    NoSuchInterface(String),
    /// The interface (driver) does not support XDP in the requested mode.
    #[error(
        "interface `{ifname}` does not support XDP in {mode:?} mode ({source}); \
         use generic (SKB) mode, which works on every interface (`XdpAttach::Skb`, \
         `AttachMode::Skb`)"
    )]
    ModeNotSupported {
        /// The interface.
        ifname: String,
        /// The requested mode.
        mode: AttachMode,
        /// The kernel's answer.
        source: io::Error,
    },
    /// Another XDP program is already attached to the interface.
    #[error(
        "interface `{ifname}` already has an XDP program attached in a conflicting way \
         ({source}); detach it first (`ip link set dev {ifname} xdp off`, or \
         `xdpgeneric off`)"
    )]
    AlreadyAttached {
        /// The interface.
        ifname: String,
        /// The kernel's answer.
        source: io::Error,
    },
    /// The interface MTU allows frames larger than a UMEM chunk can receive; the kernel
    /// would drop them silently.
    #[error(
        "interface `{ifname}` has MTU {mtu}: frames of up to {max_frame} bytes, but a UMEM \
         chunk receives at most {capacity} bytes; lower the MTU \
         (`ip link set dev {ifname} mtu {max_mtu}`) or use larger chunks"
    )]
    MtuTooLarge {
        /// The interface.
        ifname: String,
        /// Its MTU.
        mtu: u32,
        /// Largest Ethernet frame at that MTU (MTU + 14 + 4 for one VLAN tag).
        max_frame: u32,
        /// Bytes a chunk can receive (chunk size - headroom - `XDP_PACKET_HEADROOM`).
        capacity: u32,
        /// The largest MTU that fits.
        max_mtu: u32,
    },
    /// The driver refused native XDP at the current MTU (veth: about 3500 bytes at most,
    /// on both ends of the pair).
    #[error(
        "interface `{ifname}` refuses driver-mode XDP at its MTU ({source}); lower the MTU \
         on both ends (veth: <= 3000 is safe) or use generic (SKB) mode"
    )]
    MtuTooLargeForDriverMode {
        /// The interface.
        ifname: String,
        /// The kernel's answer.
        source: io::Error,
    },
    /// Registering the UMEM exceeded the locked-memory limit.
    #[error(
        "registering {bytes} bytes of UMEM exceeds the locked-memory limit \
         (RLIMIT_MEMLOCK soft limit {limit} bytes); raise it (`ulimit -l unlimited`, \
         LimitMEMLOCK=infinity in systemd) or grant CAP_IPC_LOCK"
    )]
    MemlockLimit {
        /// Size of the UMEM.
        bytes: u64,
        /// The soft limit in force (`u64::MAX`: unlimited).
        limit: u64,
    },
    /// The (interface, queue) is already bound by an AF_XDP socket with another UMEM.
    #[error(
        "queue {queue} of `{ifname}` is busy: another AF_XDP UMEM is bound to it (EBUSY); \
         sockets of one queue must share one UMEM (one lrp `Nic` per queue; raw layer: add \
         sockets with XskQueue::add_socket), or stop the other user of the queue"
    )]
    QueueBusy {
        /// The interface.
        ifname: String,
        /// The queue id.
        queue: u32,
    },
    /// A slot number beyond the program's maps.
    #[error("slot {slot} is out of range: the program was loaded with {max_slots} slots")]
    SlotOutOfRange {
        /// The slot.
        slot: u32,
        /// The number of slots.
        max_slots: u32,
    },
    /// A configuration value is not usable (the message says which rule was broken).
    #[error("invalid AF_XDP configuration: {0}")]
    InvalidConfig(String),
    /// The XDP object file named by `LRP_XDP_OBJECT` could not be read.
    #[error("cannot read the XDP object `{path}` (from LRP_XDP_OBJECT): {source}")]
    ObjectFile {
        /// The path.
        path: String,
        /// Why.
        source: io::Error,
    },
    /// The object's maps do not have the layouts of `lrp_xdp.h` as this crate knows them.
    #[error(
        "the XDP object does not match lrp-net's map layouts ({0}); rebuild it from \
         lrp-net/bpf with build.sh"
    )]
    AbiMismatch(String),
    /// Loading the BPF object (maps, BTF, relocations) failed.
    #[error("loading the XDP object failed: {0}")]
    Load(#[source] Box<aya::EbpfError>),
    /// Loading (verifying) or attaching the program failed for another reason.
    #[error("XDP program: {op} failed: {source}")]
    Program {
        /// What was attempted.
        op: &'static str,
        /// aya's error (includes the verifier log for a rejected program).
        source: Box<aya::programs::ProgramError>,
    },
    /// A map operation failed.
    #[error("BPF map `{map}`: {op} failed: {source}")]
    Map {
        /// The map.
        map: &'static str,
        /// What was attempted.
        op: &'static str,
        /// aya's error.
        source: Box<aya::maps::MapError>,
    },
    /// A system call failed.
    #[error("{op} failed: {source}")]
    Syscall {
        /// What was attempted.
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
}

impl XdpError {
    /// A failed system call, with `EPERM`/`EACCES` turned into
    /// [`XdpError::PermissionDenied`] naming `capability`.
    pub(crate) fn os(op: &'static str, capability: &'static str, source: io::Error) -> XdpError {
        match source.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => XdpError::PermissionDenied { op, capability },
            _ => XdpError::Syscall { op, source },
        }
    }

    /// A failed system call from an `errno` value (sign ignored: some bindings negate it).
    pub(crate) fn errno(op: &'static str, capability: &'static str, errno: i32) -> XdpError {
        XdpError::os(op, capability, io::Error::from_raw_os_error(errno.abs()))
    }
}
