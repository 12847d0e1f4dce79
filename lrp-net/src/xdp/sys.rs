//! The system calls of the AF_XDP layer that xdpilone and aya do not make for us:
//! interface lookup, MTU, `RLIMIT_MEMLOCK`, the TX kick, `poll` and network namespaces.
//! One of lrp-net's named `unsafe` modules: every block has a `SAFETY` comment and nothing
//! here hands out a raw pointer to safe code.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
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

/// Run interface ioctl `request` (named `op` in errors) on an `ifreq` for `ifname` in
/// the calling thread's namespace, and return the filled request.
fn interface_ioctl(
    ifname: &str,
    op: &'static str,
    request: libc::Ioctl,
) -> Result<libc::ifreq, XdpError> {
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
    // SAFETY: the interface ioctls used here (SIOCGIFMTU, SIOCGIFHWADDR) read ifr_name and
    // write one member of ifr_ifru of the live `req`.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), request, &mut req) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENODEV) {
            return Err(XdpError::NoSuchInterface(ifname.to_owned()));
        }
        return Err(XdpError::os(op, "CAP_NET_ADMIN", e));
    }
    Ok(req)
}

/// The MTU of interface `ifname` (`SIOCGIFMTU`, calling thread's namespace).
pub fn interface_mtu(ifname: &str) -> Result<u32, XdpError> {
    let req = interface_ioctl(ifname, "SIOCGIFMTU", libc::SIOCGIFMTU)?;
    // SAFETY: the kernel filled the `ifru_mtu` member of the union.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu };
    Ok(u32::try_from(mtu).unwrap_or(0))
}

/// The hardware (MAC) address of interface `ifname` (`SIOCGIFHWADDR`, calling thread's
/// namespace).
pub fn interface_mac(ifname: &str) -> Result<smoltcp::wire::EthernetAddress, XdpError> {
    let req = interface_ioctl(ifname, "SIOCGIFHWADDR", libc::SIOCGIFHWADDR)?;
    // SAFETY: the kernel filled the `ifru_hwaddr` member of the union (a sockaddr whose
    // sa_data starts with the hardware address).
    let data = unsafe { req.ifr_ifru.ifru_hwaddr.sa_data };
    let mut mac = [0u8; 6];
    for (m, d) in mac.iter_mut().zip(data) {
        *m = d as u8;
    }
    Ok(smoltcp::wire::EthernetAddress(mac))
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

/// A handle on a network namespace: the one of the thread that created it. AF_XDP sockets
/// belong to the namespace of the thread that creates them (and bind to an interface
/// index of that namespace), so a NIC opened in one namespace must create its later
/// sockets there too, whichever thread asks ([`NetNs::run`]).
#[derive(Debug)]
pub(crate) struct NetNs {
    fd: OwnedFd,
    id: (u64, u64),
}

fn netns_id(fd: BorrowedFd<'_>) -> io::Result<(u64, u64)> {
    // SAFETY: `stat` is a plain C struct for which all-zero is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes one `stat` into the live local; `fd` is a live borrowed fd.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((st.st_dev, st.st_ino))
}

fn current_netns_file() -> io::Result<std::fs::File> {
    std::fs::File::open("/proc/thread-self/ns/net")
}

impl NetNs {
    /// The calling thread's network namespace.
    pub(crate) fn current() -> Result<NetNs, XdpError> {
        let op = "opening /proc/thread-self/ns/net";
        let f = current_netns_file().map_err(|e| XdpError::Syscall { op, source: e })?;
        let fd = OwnedFd::from(f);
        let id = netns_id(fd.as_fd()).map_err(|e| XdpError::Syscall {
            op: "fstat(netns)",
            source: e,
        })?;
        Ok(NetNs { fd, id })
    }

    /// A value that identifies the namespace (device and inode of its nsfs file).
    pub(crate) fn id(&self) -> (u64, u64) {
        self.id
    }

    /// Whether the calling thread is in this namespace.
    fn is_current(&self) -> bool {
        current_netns_file()
            .and_then(|f| netns_id(f.as_fd()))
            .is_ok_and(|id| id == self.id)
    }

    /// Run `f` in this namespace: on the calling thread if it is in it, else on a
    /// short-lived thread that enters it first (`setns`, which needs `CAP_SYS_ADMIN`).
    pub(crate) fn run<R, F>(&self, f: F) -> Result<R, XdpError>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        if self.is_current() {
            return Ok(f());
        }
        std::thread::scope(|s| {
            let h = std::thread::Builder::new()
                .name("lrp-netns".into())
                .spawn_scoped(s, || {
                    // SAFETY: setns on a valid, open namespace fd of the right type; it
                    // changes only this new thread's namespace, and the thread ends after
                    // `f`.
                    let rc = unsafe { libc::setns(self.fd.as_raw_fd(), libc::CLONE_NEWNET) };
                    if rc != 0 {
                        return Err(XdpError::os(
                            "entering the NIC's network namespace (setns)",
                            "CAP_SYS_ADMIN",
                            io::Error::last_os_error(),
                        ));
                    }
                    Ok(f())
                })
                .map_err(|e| XdpError::Syscall {
                    op: "spawning a thread",
                    source: e,
                })?;
            h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }
}

/// The system page size.
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(v).ok().filter(|&v| v > 0).unwrap_or(4096)
}
