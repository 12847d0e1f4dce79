//! The system calls of the AF_XDP layer that xdpilone and aya do not make for us:
//! interface lookup, MTU, `RLIMIT_MEMLOCK`, the TX kick, `poll` and the anonymous
//! mapping of an owned frame area. One of lrp-net's named `unsafe` modules: every block
//! has a `SAFETY` comment and nothing here hands out a raw pointer to safe code.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::time::Duration;

use super::XdpError;

/// Capability numbers (`linux/capability.h`).
pub(crate) mod cap {
    /// `CAP_IPC_LOCK`: exempts UMEM registration from `RLIMIT_MEMLOCK`.
    pub(crate) const IPC_LOCK: u32 = 14;
}

/// The calling thread's effective capability set, from `/proc/thread-self/status`.
/// `None` if it cannot be read.
pub(crate) fn effective_capabilities() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/thread-self/status")
        .or_else(|_| std::fs::read_to_string("/proc/self/status"))
        .ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// Whether the calling thread has capability `cap` (false if unknown).
pub(crate) fn has_capability(cap: u32) -> bool {
    effective_capabilities().is_some_and(|set| cap < 64 && set & (1u64 << cap) != 0)
}

/// Index of the interface `name` in the calling thread's network namespace.
pub fn interface_index(name: &str) -> Result<u32, XdpError> {
    let c = CString::new(name).map_err(|_| XdpError::NoSuchInterface(name.to_owned()))?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        return Err(XdpError::NoSuchInterface(name.to_owned()));
    }
    Ok(idx)
}

/// Name of the interface with index `ifindex` in the calling thread's network namespace.
pub fn interface_name(ifindex: u32) -> Result<String, XdpError> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buf` has the IF_NAMESIZE bytes if_indextoname may write, and lives across
    // the call; the result is checked for NULL.
    let p = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    if p.is_null() {
        return Err(XdpError::NoSuchInterface(format!("#{ifindex}")));
    }
    // SAFETY: on success if_indextoname wrote a NUL-terminated name into `buf`.
    let name = unsafe { CStr::from_ptr(buf.as_ptr()) };
    Ok(name.to_string_lossy().into_owned())
}

/// The MTU of interface `ifname` (`SIOCGIFMTU`, calling thread's namespace).
pub fn interface_mtu(ifname: &str) -> Result<u32, XdpError> {
    let op = "SIOCGIFMTU";
    let sock = dgram_socket().map_err(|e| XdpError::os(op, "CAP_NET_ADMIN", e))?;
    // SAFETY: `ifreq` is a plain C struct for which all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = ifname.as_bytes();
    if bytes.is_empty() || bytes.len() >= req.ifr_name.len() {
        return Err(XdpError::NoSuchInterface(ifname.to_owned()));
    }
    for (d, s) in req.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFMTU reads ifr_name and writes ifr_ifru.ifru_mtu of the live `req`.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFMTU, &mut req) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENODEV) {
            return Err(XdpError::NoSuchInterface(ifname.to_owned()));
        }
        return Err(XdpError::os(op, "CAP_NET_ADMIN", e));
    }
    // SAFETY: the kernel filled the `ifru_mtu` member of the union.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu };
    Ok(u32::try_from(mtu).unwrap_or(0))
}

fn dgram_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with constant arguments; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The soft and hard `RLIMIT_MEMLOCK` (bytes; `u64::MAX` for unlimited).
pub(crate) fn memlock_limit() -> (u64, u64) {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` into the live local.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut r) } != 0 {
        return (0, 0);
    }
    let conv = |v: libc::rlim_t| {
        if v == libc::RLIM_INFINITY {
            u64::MAX
        } else {
            v
        }
    };
    (conv(r.rlim_cur), conv(r.rlim_max))
}

/// Raise the soft `RLIMIT_MEMLOCK` to at least `bytes` if the hard limit (or
/// `CAP_SYS_RESOURCE`) allows. Best effort: the caller reports a failure later, when the
/// kernel refuses the registration.
pub(crate) fn raise_memlock(bytes: u64) {
    let (soft, hard) = memlock_limit();
    if soft >= bytes {
        return;
    }
    let want = |v: u64| {
        if v == u64::MAX {
            libc::RLIM_INFINITY
        } else {
            v
        }
    };
    for target in [u64::MAX, hard] {
        if target < bytes {
            continue;
        }
        let r = libc::rlimit {
            rlim_cur: want(target),
            rlim_max: want(target.max(hard)),
        };
        // SAFETY: setrlimit reads one `rlimit` from the live local.
        if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &r) } == 0 {
            return;
        }
    }
}

/// Kick the kernel to process an AF_XDP socket's TX ring (`sendto` with no data).
///
/// Returns `Ok(true)` if the kernel took everything it could, `Ok(false)` if it asks to
/// be called again (`EAGAIN`/`EBUSY`/`ENOBUFS`: copy mode sends a bounded batch per call,
/// the completion ring is full, or another thread is transmitting).
pub(crate) fn kick_tx(fd: BorrowedFd<'_>) -> io::Result<bool> {
    // SAFETY: sendto with a null, zero-length buffer and no address only signals the
    // socket; `fd` is a live borrowed descriptor.
    let rc = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            std::ptr::null(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null(),
            0,
        )
    };
    if rc >= 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EBUSY) | Some(libc::ENOBUFS) | Some(libc::EINTR) => {
            Ok(false)
        }
        _ => Err(e),
    }
}

/// Wait until `fd` is readable or `timeout` passes. `EINTR` counts as "not readable".
pub(crate) fn poll_in(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<bool> {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: poll reads and writes exactly one live `pollfd`.
    let rc = unsafe { libc::poll(&mut p, 1, ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return if e.raw_os_error() == Some(libc::EINTR) {
            Ok(false)
        } else {
            Err(e)
        };
    }
    Ok(rc > 0 && p.revents & libc::POLLIN != 0)
}

/// An owned, page-aligned, anonymous private mapping. Unmapped on drop.
#[derive(Debug)]
pub(crate) struct Mapping {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: `Mapping` only owns the address range; it never reads or writes the bytes
// itself. Access to them is mediated by the owners (the chunk state machine of
// `frames::UmemFrames`), so moving or sharing the owner between threads is sound.
unsafe impl Send for Mapping {}
// SAFETY: see `Send`: `&Mapping` gives no access to the bytes.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Map `len` bytes of zeroed memory.
    pub(crate) fn anonymous(len: usize) -> io::Result<Mapping> {
        if len == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty mapping"));
        }
        // SAFETY: an anonymous private mapping with a null hint creates fresh memory and
        // touches no existing mapping; the result is checked against MAP_FAILED.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base =
            NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Mapping { base, len })
    }

    /// The mapped range (page aligned).
    pub(crate) fn as_slice_ptr(&self) -> NonNull<[u8]> {
        NonNull::slice_from_raw_parts(self.base, self.len)
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` are exactly the mapping created in `anonymous`, unmapped
        // once here. Owners keep an `Arc<Mapping>` for as long as they (or the kernel
        // through a UMEM they registered) may access it.
        let rc = unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
        debug_assert_eq!(rc, 0, "munmap failed");
    }
}

/// The system page size.
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(v).ok().filter(|&v| v > 0).unwrap_or(4096)
}
