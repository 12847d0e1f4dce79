//! Waiting for frames: deadlines, a waiter armed on a queue's [`Readiness`], and the
//! [`Feeders`] of NI-LRP soft channels.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::backend::Readiness;
use crate::notify::Waiting;
use crate::sys::PollSet;

/// How long a blocked waiter sleeps before re-running the poll step itself when it
/// cannot rely on a wake-up: the pool is exhausted (frames freed by other threads do not
/// signal), or another thread holds the poll-step lock.
pub(super) const SERVICE_SLICE: Duration = Duration::from_millis(1);

/// NI-LRP: how long a blocked waiter sleeps before re-running the poll step while some
/// channel's ring fills with its gate open (its owner is not reading). The NIC fills
/// rings without telling anybody; the gate closes only when a thread looks, and it must
/// look before the last quarter of the ring fills (a 256-frame ring at 0.3 Mpps: 200 µs).
pub(super) const GATE_SLICE: Duration = Duration::from_micros(100);

/// NI-LRP on a backend whose receive path maintains the fill ring and the gates: a
/// waiter runs the poll step before sleeping only if none ran in this long.
pub(super) const STEP_SLICE: Duration = Duration::from_micros(50);

pub(super) fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    // A timeout too large to represent is as good as none.
    timeout.and_then(|t| Instant::now().checked_add(t))
}

/// Time left until `deadline`: `None` if it has passed, `Some(None)` if there is none.
pub(super) fn remaining(deadline: Option<Instant>) -> Option<Option<Duration>> {
    match deadline {
        None => Some(None),
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            (!left.is_zero()).then_some(Some(left))
        }
    }
}

/// `wait` capped at `slice` (`None`, no limit, becomes `slice`).
pub(super) fn at_most(wait: Option<Duration>, slice: Duration) -> Option<Duration> {
    Some(wait.map_or(slice, |w| w.min(slice)))
}

/// A waiter registered on a [`Readiness`].
pub(super) enum Armed<'a> {
    Notifier(Waiting<'a>),
    Fd(BorrowedFd<'a>),
}

impl<'a> Armed<'a> {
    pub(super) fn new(readiness: Readiness<'a>) -> Armed<'a> {
        match readiness {
            Readiness::Notifier(n) => Armed::Notifier(n.begin_wait()),
            Readiness::Fd(fd) => Armed::Fd(fd),
        }
    }

    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Armed::Notifier(w) => w.fd(),
            Armed::Fd(fd) => *fd,
        }
    }

    pub(super) fn consume(&self) {
        if let Armed::Notifier(w) = self {
            w.consume();
        }
    }

    pub(super) fn finish(self, ready: bool) {
        if let Armed::Notifier(w) = self {
            w.finish(ready);
        }
    }
}

/// NI-LRP: the rings in which soft channels' frames arrive (the rings of channels with a
/// listener, SYN, source or host rule: *feeders*), as **one** readiness source per NIC
/// queue. A soft channel waits on its own queue and on this set, whatever the number of
/// feeders.
///
/// Rings that signal through a descriptor (AF_XDP sockets, level-triggered) are members
/// of an epoll set, readable while any of them holds frames. Rings signalled through a
/// [`Notifier`](crate::notify::Notifier) (the simulated NIC) cannot be waited on by
/// others (the signal is their owner's to consume): while any exists, soft waiters
/// re-run the poll step every [`SERVICE_SLICE`] instead.
#[derive(Debug)]
pub(super) struct Feeders {
    set: PollSet,
    unwatched: AtomicUsize,
}

impl Feeders {
    pub(super) fn new() -> io::Result<Feeders> {
        Ok(Feeders {
            set: PollSet::new()?,
            unwatched: AtomicUsize::new(0),
        })
    }

    /// A ring became a feeder.
    pub(super) fn add(&self, readiness: Readiness<'_>) {
        match readiness {
            Readiness::Fd(fd) => {
                if let Err(e) = self.set.add(fd) {
                    // Not expected (an open socket fd); waiters then fall back to slices.
                    log::warn!("adding a feeder ring to the soft channels' wait set: {e}");
                    self.unwatched.fetch_add(1, Ordering::Relaxed);
                }
            }
            Readiness::Notifier(_) => {
                self.unwatched.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A ring stopped being a feeder (or closes).
    pub(super) fn remove(&self, readiness: Readiness<'_>) {
        match readiness {
            // Not in the set: its `add` failed and counted it as unwatched.
            Readiness::Fd(fd) if self.set.remove(fd) => {}
            Readiness::Fd(_) | Readiness::Notifier(_) => {
                self.unwatched.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Whether some feeder cannot be waited on (see the type docs).
    pub(super) fn has_unwatched(&self) -> bool {
        self.unwatched.load(Ordering::Relaxed) > 0
    }

    /// The descriptor readable while any watched feeder ring holds frames.
    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        self.set.as_fd()
    }
}
