//! The stack's background work: the control, linger and eager poll threads, the steps
//! they run (which socket calls also run inline), and the [`Signal`] that wakes socket
//! calls waiting for them.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lrp_core::account::Account;

use super::config::EagerDriver;
use super::cpu::CpuMeter;
use super::{lock, neighbors, StackInner};
use crate::config::Mode;

/// A sequence number plus a condition variable: wakes socket calls waiting for the
/// eager poll step to deliver into their buffers.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    seq: Mutex<u64>,
    cv: Condvar,
}

impl Signal {
    /// The current sequence number (read it before checking the condition).
    pub(crate) fn seq(&self) -> u64 {
        *lock(&self.seq)
    }

    /// Something changed: wake all waiters.
    pub(crate) fn notify(&self) {
        *lock(&self.seq) += 1;
        self.cv.notify_all();
    }

    /// Wait until the sequence number differs from `seen`, or `timeout` passes.
    pub(crate) fn wait(&self, seen: u64, timeout: Option<Duration>) {
        let guard = lock(&self.seq);
        match timeout {
            Some(t) => {
                drop(self.cv.wait_timeout_while(guard, t, |s| *s == seen));
            }
            None => {
                drop(self.cv.wait_while(guard, |s| *s == seen));
            }
        }
    }
}

/// An endpoint that the eager poll step drives.
pub(crate) trait EagerEndpoint: Send + Sync {
    /// Process every frame waiting in the endpoint's channel into its socket buffers.
    /// Returns how many frames were taken. Does not charge CPU time (the caller does).
    fn eager_step(&self) -> usize;
}

/// A TCP connection closing in the background.
pub(crate) trait Lingering: Send + Sync {
    /// Drive the close; `true` when done (closed, or aborted at the deadline).
    fn linger_step(&self, now: Instant) -> bool;
    /// Abort at once (the stack is going away).
    fn abort(&self);
}

impl StackInner {
    /// Run the control path once if no other thread is running it: learn neighbours
    /// from ARP, let the control interface answer ARP and ICMP. Charges the control
    /// channel's account unless `inline` (then the caller's meter covers it).
    pub(super) fn poll_control_charged(&self, charge: bool) -> usize {
        let Ok(mut engine) = self.control.try_lock() else {
            return 0;
        };
        let ch = &self.control_channel;
        let mut frames = Vec::new();
        // As in `Engine::step`: taking the channel's frames is its work, the NIC's poll
        // step that `try_recv_batch` runs on an empty channel is not.
        let early = (!ch.is_empty()).then(CpuMeter::start);
        let n = ch.try_recv_batch(64, &mut frames);
        if n == 0 && engine.staged() == 0 {
            return 0;
        }
        let meter = early.unwrap_or_else(CpuMeter::start);
        let account = ch.account();
        let now = Instant::now();
        for frame in frames {
            if let Some((ip, mac)) = neighbors::arp_sender(&frame, self.cfg.ip) {
                self.neighbors.learn(ip, mac, now);
            }
            engine.admit(self, frame, account);
        }
        engine.egress(self, ch, account);
        if charge {
            meter.charge(account);
        }
        n
    }

    /// [`StackInner::poll_control_charged`] from inside another endpoint's step.
    pub(crate) fn poll_control_inline(&self) {
        self.poll_control_charged(false);
    }

    pub(crate) fn register_eager(&self, endpoint: Weak<dyn EagerEndpoint>) {
        if !self.lazy() {
            lock(&self.eager).push(endpoint);
        }
    }

    /// The shared eager poll step: the NIC's poll step, then every endpoint's frames
    /// through smoltcp. Returns frames processed. The caller charges the CPU time.
    fn eager_step(&self) -> usize {
        let budget = self.nic.config().batch.max(1) * 4;
        let mut n = self.nic.poll_rx(budget);
        let endpoints: Vec<Arc<dyn EagerEndpoint>> = {
            let mut list = lock(&self.eager);
            list.retain(|w| w.strong_count() > 0);
            list.iter().filter_map(Weak::upgrade).collect()
        };
        for e in &endpoints {
            n += e.eager_step();
        }
        n
    }

    /// EAGER with [`EagerDriver::Callers`]: run the shared step, charging `account`.
    pub(crate) fn eager_step_charged(&self, account: &Account) -> usize {
        let meter = CpuMeter::start();
        let n = self.eager_step();
        meter.charge(account);
        n
    }

    /// Whether a thread of the stack drives lingering connections (the linger thread,
    /// or the eager poll thread).
    pub(crate) fn has_background_thread(&self) -> bool {
        self.cfg.control_thread
            || (self.mode() == Mode::Eager && self.cfg.eager_driver == EagerDriver::Thread)
    }

    pub(crate) fn add_lingering(&self, conn: Arc<dyn Lingering>) {
        lock(&self.lingering).push(conn);
        self.linger_signal.notify();
    }

    fn drive_lingering(&self) -> bool {
        let list: Vec<Arc<dyn Lingering>> = lock(&self.lingering).clone();
        if list.is_empty() {
            return false;
        }
        let now = Instant::now();
        let done: Vec<bool> = list.iter().map(|c| c.linger_step(now)).collect();
        let mut guard = lock(&self.lingering);
        guard.retain(|c| !list.iter().zip(&done).any(|(l, d)| *d && Arc::ptr_eq(l, c)));
        let busy = !guard.is_empty();
        drop(guard);
        for (conn, done) in list.into_iter().zip(done) {
            if done {
                self.release(conn);
            }
        }
        busy
    }

    /// Drop a connection that finished lingering (the last reference, but for a moment
    /// the clone of a concurrent `drive_lingering`), off this thread.
    ///
    /// Dropping a connection closes its channel. In NI-LRP that closes an AF_XDP socket,
    /// and the kernel's `xsk_release` waits for an RCU grace period (`synchronize_net`,
    /// about 10-15 ms on the test machines): closed one after the other on the linger
    /// thread, a busy server's connections were released slower than they arrived and
    /// exhausted the NIC's channel slots. Closed on threads of their own, the waits
    /// overlap and share grace periods. At most [`MAX_RELEASERS`] such threads run at
    /// once; beyond that (or if a thread cannot be spawned) the connection is dropped
    /// here.
    fn release(&self, conn: Arc<dyn Lingering>) {
        if self.releasers.fetch_add(1, Ordering::AcqRel) >= MAX_RELEASERS {
            self.releasers.fetch_sub(1, Ordering::AcqRel);
            drop(conn);
            return;
        }
        let count = Arc::clone(&self.releasers);
        let spawned = std::thread::Builder::new()
            .name("lrp-release".into())
            .spawn(move || {
                drop(conn);
                count.fetch_sub(1, Ordering::AcqRel);
            });
        if spawned.is_err() {
            // The closure (and the connection) was dropped with the error.
            self.releasers.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Stops and joins the stack's threads when the last handle goes.
pub(super) struct Threads {
    pub(super) inner: Arc<StackInner>,
    pub(super) handles: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Threads {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::Release);
        self.inner.linger_signal.notify();
        for h in lock(&self.handles).drain(..) {
            let _ = h.join();
        }
        let list: Vec<Arc<dyn Lingering>> = lock(&self.inner.lingering).drain(..).collect();
        for c in list {
            c.abort();
        }
    }
}

/// How often the linger thread looks at lingering connections.
const LINGER_SLICE: Duration = Duration::from_millis(1);

/// Most threads dropping released connections at once (see `StackInner::release`).
const MAX_RELEASERS: usize = 64;

pub(super) fn control_loop(inner: &StackInner) {
    let slice = Duration::from_millis(50);
    while !inner.stop.load(Ordering::Acquire) {
        inner.poll_control_charged(true);
        // An error waiting (EINTR, a closed NIC) must not spin: sleep the slice instead.
        if inner.control_channel.wait(Some(slice)).is_err() {
            std::thread::sleep(slice);
        }
    }
}

/// Drives lingering connections (LRP modes). Their frames arrive on their own channels,
/// which one thread cannot sleep on together: it is woken when a connection starts
/// lingering, then looks every [`LINGER_SLICE`] (a look at a connection with nothing to
/// do is a few atomic loads) until none is left.
pub(super) fn linger_loop(inner: &StackInner) {
    while !inner.stop.load(Ordering::Acquire) {
        let seen = inner.linger_signal.seq();
        let busy = inner.drive_lingering();
        let slice = if busy {
            LINGER_SLICE
        } else {
            Duration::from_secs(1)
        };
        inner.linger_signal.wait(seen, Some(slice));
    }
}

pub(super) fn eager_loop(inner: &StackInner) {
    while !inner.stop.load(Ordering::Acquire) {
        let n = inner.eager_step_charged(&inner.eager_account);
        let c = inner.poll_control_charged(true);
        let busy = inner.drive_lingering();
        if n + c == 0 {
            let slice = if busy {
                Duration::from_millis(5)
            } else {
                Duration::from_millis(50)
            };
            if inner.nic.wait_rx(Some(slice)).is_err() {
                std::thread::sleep(slice);
            }
        }
    }
}
