//! Wake-ups for threads blocked on a channel: an `eventfd` signalled only while someone
//! waits.
//!
//! A producer (the demux step, or the simulated NIC) makes a condition true — a frame is
//! queued — and calls [`Notifier::notify`]. A waiter registers with
//! [`Notifier::begin_wait`], then loops: [`Waiting::consume`], check the condition,
//! `poll` the fd. The producer pays for a `write` system call only while a waiter is
//! registered, so a busy receiver that never blocks costs the demux step one fence and
//! one load per frame.
//!
//! Why no wake-up is lost: the waiter increments the waiter count and then checks the
//! condition; the producer makes the condition true and then reads the count, with a
//! `SeqCst` fence on each side. Either the producer sees the waiter (and signals) or the
//! waiter sees the condition. A waiter consumes the signal *before* checking, so a signal
//! that arrives after the check keeps the fd readable for the `poll`. When several
//! threads wait on one notifier and one of them consumes a signal meant for all, it
//! passes the signal on when it leaves ([`Waiting::finish`]).

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{fence, AtomicUsize, Ordering};

use crate::sys::EventFd;

/// An eventfd plus a count of registered waiters.
#[derive(Debug)]
pub(crate) struct Notifier {
    event: EventFd,
    waiters: AtomicUsize,
}

impl Notifier {
    /// A notifier with no waiter and no pending signal.
    pub(crate) fn new() -> io::Result<Notifier> {
        Ok(Notifier {
            event: EventFd::new()?,
            waiters: AtomicUsize::new(0),
        })
    }

    /// Producer side: call after making the condition true. Signals the fd if anyone
    /// waits.
    #[inline]
    pub(crate) fn notify(&self) {
        fence(Ordering::SeqCst);
        if self.waiters.load(Ordering::Relaxed) > 0 {
            self.event.signal();
        }
    }

    /// Register as a waiter. The registration ends when the returned guard drops.
    pub(crate) fn begin_wait(&self) -> Waiting<'_> {
        self.waiters.fetch_add(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        Waiting { notifier: self }
    }
}

/// A registered waiter of a [`Notifier`] (see the [module docs](self) for the protocol).
#[derive(Debug)]
pub(crate) struct Waiting<'a> {
    notifier: &'a Notifier,
}

impl Waiting<'_> {
    /// The fd to `poll` for readability.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.notifier.event.as_fd()
    }

    /// Reset the signal; call before each check of the condition.
    pub(crate) fn consume(&self) {
        self.notifier.event.clear();
        fence(Ordering::SeqCst);
    }

    /// Leave, saying whether the condition was found true. If it was and others still
    /// wait, the signal this waiter may have consumed is passed on.
    pub(crate) fn finish(self, ready: bool) {
        if ready && self.notifier.waiters.load(Ordering::Relaxed) > 1 {
            self.notifier.event.signal();
        }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.notifier.waiters.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::poll_readable;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn notify_without_waiter_does_not_signal() {
        let n = Notifier::new().unwrap();
        n.notify();
        let w = n.begin_wait();
        assert_eq!(
            poll_readable(&[w.fd()], Some(Duration::ZERO)).unwrap(),
            vec![false]
        );
        n.notify();
        assert_eq!(
            poll_readable(&[w.fd()], Some(Duration::ZERO)).unwrap(),
            vec![true]
        );
        w.consume();
        assert_eq!(
            poll_readable(&[w.fd()], Some(Duration::ZERO)).unwrap(),
            vec![false]
        );
    }

    #[test]
    fn no_lost_wakeup_across_threads() {
        // 200 rounds of: the waiter blocks until the flag is set; the producer sets it and
        // notifies. A lost wake-up would make the poll time out, which fails the test.
        for _ in 0..200 {
            let n = Arc::new(Notifier::new().unwrap());
            let flag = Arc::new(AtomicBool::new(false));
            let (n2, f2) = (Arc::clone(&n), Arc::clone(&flag));
            let producer = std::thread::spawn(move || {
                f2.store(true, Ordering::Relaxed);
                n2.notify();
            });
            let w = n.begin_wait();
            let mut woke = false;
            for _ in 0..3 {
                w.consume();
                if flag.load(Ordering::Relaxed) {
                    woke = true;
                    break;
                }
                // Readable means woken; a lost wake-up would time out (not readable).
                let r = poll_readable(&[w.fd()], Some(Duration::from_secs(10))).unwrap();
                assert_eq!(r, vec![true], "lost wake-up");
            }
            w.finish(woke);
            producer.join().unwrap();
            assert!(woke);
        }
    }
}
