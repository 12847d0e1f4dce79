//! The few system calls the channel layer needs: `eventfd`, `epoll` (as one pollable
//! readiness source for a set of descriptors), `poll` and the thread CPU clock.
//!
//! Hand-written over `libc` rather than taken from `mio`/`polling`/`nix`: the waits need
//! exactly these calls with sub-millisecond `ppoll` timeouts, an epoll set nested inside
//! that `ppoll`, and no allocation per wait; a reactor crate would own the waiting
//! instead, and four thin wrappers do not justify another dependency. Every call goes through this module (one of lrp-net's named `unsafe` modules),
//! so the rest of the crate stays safe.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// A non-blocking Linux `eventfd`: a kernel counter that is readable (for `poll`) while
/// non-zero. Used to wake a thread blocked in [`poll_readable`].
#[derive(Debug)]
pub(crate) struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    /// A new eventfd with counter 0 (not readable).
    pub(crate) fn new() -> io::Result<EventFd> {
        // SAFETY: plain syscall with constant flags; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a freshly created descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(EventFd { fd })
    }

    /// Add one to the counter, making the fd readable. Never blocks: a counter at its
    /// maximum stays readable, which is all a wake-up needs.
    pub(crate) fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live local to an fd we own.
        let _ = unsafe {
            libc::write(
                self.fd.as_raw_fd(),
                (&one as *const u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
    }

    /// Reset the counter to zero (not readable). Returns whether it was signalled.
    pub(crate) fn clear(&self) -> bool {
        let mut v: u64 = 0;
        // SAFETY: reads at most 8 bytes into a live local from an fd we own; non-blocking.
        let n = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                (&mut v as *mut u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
        n == std::mem::size_of::<u64>() as isize && v > 0
    }
}

impl AsFd for EventFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A set of descriptors behind one pollable descriptor (`epoll`, level-triggered): the
/// epoll fd is readable while any descriptor of the set is. Lets a waiter wait on any
/// number of rings with one entry in its [`poll_fds`] call.
#[derive(Debug)]
pub(crate) struct PollSet {
    fd: OwnedFd,
}

impl PollSet {
    /// An empty set (never readable).
    pub(crate) fn new() -> io::Result<PollSet> {
        // SAFETY: plain syscall with a constant flag; the result is checked.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a freshly created descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(PollSet { fd })
    }

    /// Add `fd` (watched for readability). The caller removes it before closing it.
    pub(crate) fn add(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: fd.as_raw_fd() as u64,
        };
        // SAFETY: both descriptors are open (owned / borrowed); `ev` is a live struct.
        let rc = unsafe {
            libc::epoll_ctl(
                self.fd.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                fd.as_raw_fd(),
                &mut ev,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Remove `fd` from the set. Returns whether it was in it.
    pub(crate) fn remove(&self, fd: BorrowedFd<'_>) -> bool {
        // SAFETY: both descriptors are open; EPOLL_CTL_DEL ignores the event pointer.
        let rc = unsafe {
            libc::epoll_ctl(
                self.fd.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd.as_raw_fd(),
                std::ptr::null_mut(),
            )
        };
        rc == 0
    }
}

impl AsFd for PollSet {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Most descriptors one wait polls (a channel's own readiness and the shared RX ring).
const MAX_POLL_FDS: usize = 4;

/// Block until one of `fds` (at most 4) is readable or `timeout` passes (`None`: no
/// limit). Returns one flag per fd, `true` if it was readable, in the first `fds.len()`
/// entries. An interrupted call (`EINTR`) returns all `false`; callers loop on their own
/// condition anyway. Does not allocate: waiters call it on every sleep.
pub(crate) fn poll_fds(
    fds: &[BorrowedFd<'_>],
    timeout: Option<Duration>,
) -> io::Result<[bool; MAX_POLL_FDS]> {
    if fds.len() > MAX_POLL_FDS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "too many descriptors to poll",
        ));
    }
    let mut pfds = [libc::pollfd {
        fd: -1,
        events: 0,
        revents: 0,
    }; MAX_POLL_FDS];
    for (p, fd) in pfds.iter_mut().zip(fds) {
        p.fd = fd.as_raw_fd();
        p.events = libc::POLLIN;
    }
    // `ppoll` rather than `poll`: sub-millisecond timeouts (NI-LRP's gate watch) must not
    // round up to a whole millisecond.
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `pfds` is a live array of pollfd of which the first `fds.len()` entries are
    // passed; the descriptors are borrowed, hence open; `ts_ptr` is null or points to a
    // live timespec; a null signal mask leaves the mask unchanged (as `poll`).
    let rc = unsafe {
        libc::ppoll(
            pfds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            ts_ptr,
            std::ptr::null(),
        )
    };
    let mut ready = [false; MAX_POLL_FDS];
    if rc < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            return Ok(ready);
        }
        return Err(err);
    }
    for (r, p) in ready.iter_mut().zip(&pfds[..fds.len()]) {
        *r = p.revents & (libc::POLLIN | libc::POLLERR | libc::POLLHUP) != 0;
    }
    Ok(ready)
}

/// [`poll_fds`], with the flags as a vector of `fds.len()` entries.
#[cfg(test)]
pub(crate) fn poll_readable(
    fds: &[BorrowedFd<'_>],
    timeout: Option<Duration>,
) -> io::Result<Vec<bool>> {
    Ok(poll_fds(fds, timeout)?[..fds.len()].to_vec())
}

/// CPU time consumed by the calling thread, in nanoseconds (`CLOCK_THREAD_CPUTIME_ID`).
/// Used to charge protocol work to the account of whoever it was done for.
pub(crate) fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a live, writable timespec; the clock id is a constant Linux supports.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eventfd_signal_poll_clear() {
        let e = EventFd::new().unwrap();
        assert_eq!(
            poll_readable(&[e.as_fd()], Some(Duration::ZERO)).unwrap(),
            vec![false]
        );
        assert!(!e.clear());
        e.signal();
        e.signal();
        assert_eq!(
            poll_readable(&[e.as_fd()], Some(Duration::ZERO)).unwrap(),
            vec![true]
        );
        assert!(e.clear());
        assert_eq!(
            poll_readable(&[e.as_fd()], Some(Duration::from_millis(1))).unwrap(),
            vec![false]
        );
    }

    #[test]
    fn poll_wakes_from_another_thread() {
        let e = std::sync::Arc::new(EventFd::new().unwrap());
        let e2 = std::sync::Arc::clone(&e);
        let t = std::thread::spawn(move || e2.signal());
        let r = poll_readable(&[e.as_fd()], Some(Duration::from_secs(10))).unwrap();
        t.join().unwrap();
        assert_eq!(r, vec![true]);
    }

    #[test]
    fn poll_set_is_readable_while_a_member_is() {
        let set = PollSet::new().unwrap();
        let members: Vec<EventFd> = (0..8).map(|_| EventFd::new().unwrap()).collect();
        for m in &members {
            set.add(m.as_fd()).unwrap();
        }
        let readable = |t| poll_readable(&[set.as_fd()], Some(t)).unwrap()[0];
        assert!(!readable(Duration::ZERO));
        members[5].signal();
        assert!(readable(Duration::ZERO));
        // Level-triggered: still readable until the member is cleared.
        assert!(readable(Duration::ZERO));
        members[5].clear();
        assert!(!readable(Duration::ZERO));
        // A removed member no longer counts.
        set.remove(members[2].as_fd());
        members[2].signal();
        assert!(!readable(Duration::ZERO));
        // A wake-up from another thread reaches a waiter on the set.
        let set = std::sync::Arc::new(set);
        let m7 = std::sync::Arc::new(members.into_iter().nth(7).unwrap());
        let m = std::sync::Arc::clone(&m7);
        let t = std::thread::spawn(move || m.signal());
        assert!(poll_readable(&[set.as_fd()], Some(Duration::from_secs(10))).unwrap()[0]);
        t.join().unwrap();
    }

    #[test]
    fn thread_cpu_clock_advances() {
        let a = thread_cpu_ns();
        let mut x = 0u64;
        for i in 0..200_000u64 {
            x = x.wrapping_mul(31).wrapping_add(std::hint::black_box(i));
        }
        std::hint::black_box(x);
        assert!(thread_cpu_ns() > a);
    }
}
