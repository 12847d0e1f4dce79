//! Health checks of real servers over lrp TCP: which servers may receive new flows.
//!
//! Two layers, in the quinn manner — a core without I/O and the I/O around it:
//!
//! * **The state machine** ([`HealthState`], [`CheckSchedule`]) is pure logic: it is told
//!   the result of each check and the time (`u64` nanoseconds on the caller's monotonic
//!   clock) and answers whether the server changed state; the schedule says which check
//!   is due next. No sockets, no clock, no threads; unit tests drive it step by step.
//! * **The [`Checker`]** runs the checks on an lrp [`Stack`]: one scheduling thread and
//!   a small fixed pool of worker threads (at most [`CheckerOptions::workers`], never one
//!   per server), each check bounded by its `timeout`. Results go to the state machine;
//!   the up/down states are published in a [`HealthView`] that the forwarding engine
//!   reads per new connection (one atomic load), and each transition is logged (`log`)
//!   and, if asked for, sent as a [`HealthEvent`] on a channel.
//!
//! # Semantics
//!
//! A check ([`check_once`]) is, per [`HealthCheck`]:
//!
//! * `tcp` — the server accepts a TCP connection within `timeout`; the connection is
//!   then dropped (closed gracefully in the background by the stack).
//! * `http` — the connection is accepted, `GET <path> HTTP/1.0` (with `Host`) is sent,
//!   and the status line read within `timeout` carries the expected status. Only the
//!   status line is read (parsed by `httparse`); the body is not.
//! * `none` — no check: the server is always up and never scheduled.
//!
//! Anything that does not complete within `timeout` — the handshake, the request, the
//! status line — is a failure ([`CheckFailure::TimedOut`]), and so is a success that
//! came back late ([`within`]).
//!
//! Counting is keepalived's and HAProxy's: an up server goes down after `fall`
//! *consecutive* failures, a down server comes up after `rise` consecutive successes; a
//! result of the other kind resets the run.
//!
//! **Start state (a decision).** A server starts **up, unproven** ([`StartAs::Up`], the
//! default): it receives flows at once, so a restarted director does not black-hole its
//! services for `rise × interval`, but until its first successful check a *single*
//! failure takes it down (HAProxy's start-up behaviour), so a server that is dead when
//! the director starts is out after its first check rather than after `fall`.
//! [`StartAs::Down`] is keepalived's `alpha` mode: out until `rise` successes.
//!
//! **Scheduling.** Each server is checked every `interval` of its own. The first checks
//! are spread evenly over the first interval (server *k* of *n* at `start + k ×
//! interval / n`), deterministically and without random jitter, and each later check is
//! due exactly one interval after the previous one was *due* (not after it finished),
//! so the spread is kept and checks of many servers never all fire at once. A check that
//! is still running when its server is due again is not doubled: that round is skipped.
//!
//! **Time to take a stopped server out.** A refused connection fails at once, so a
//! stopped server is down at most `fall × interval` (plus scheduling delay) after it
//! stopped; a server that hangs instead takes up to `fall × interval + timeout`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lrp_net::Stack;

use super::config::{Config, HealthCheck, HealthConfig};

/// A checked server: its index in the target list given to the [`Checker`] (for
/// [`Target::from_config`], services in file order, then their servers in file order).
pub type ServerId = usize;

/// How many worker threads run checks when [`CheckerOptions::workers`] is not set.
pub const DEFAULT_WORKERS: usize = 2;

/// The most bytes read while looking for an HTTP status line.
const MAX_STATUS_LINE: usize = 1024;

// ---------------------------------------------------------------------------------------
// The state machine
// ---------------------------------------------------------------------------------------

/// Why a check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CheckFailure {
    /// The server answered the connection request with a RST (nothing listens).
    #[error("connection refused")]
    Refused,
    /// The check did not complete within its timeout.
    #[error("timed out")]
    TimedOut,
    /// The connection closed before a complete HTTP status line arrived.
    #[error("connection closed before the status line")]
    Closed,
    /// The HTTP status line is malformed (or longer than 1 KiB).
    #[error("malformed HTTP status line")]
    Malformed,
    /// The HTTP status is not the expected one.
    #[error("HTTP status {got}, expected {expected}")]
    Status {
        /// The status the server sent.
        got: u16,
        /// The status the check expects.
        expected: u16,
    },
    /// Another socket error.
    #[error("{0}")]
    Io(io::ErrorKind),
}

/// The result of one check.
pub type CheckResult = Result<(), CheckFailure>;

/// A check's result as the state machine must count it: a success that took longer than
/// `timeout` (nanoseconds, like `elapsed`) is a [`CheckFailure::TimedOut`].
pub fn within(result: CheckResult, elapsed: u64, timeout: u64) -> CheckResult {
    match result {
        Ok(()) if elapsed > timeout => Err(CheckFailure::TimedOut),
        r => r,
    }
}

/// The consecutive results that change a server's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Consecutive successes that bring a down server up (at least 1).
    pub rise: u32,
    /// Consecutive failures that take an up server down (at least 1).
    pub fall: u32,
}

impl Thresholds {
    /// The thresholds of a health configuration.
    pub fn of(health: &HealthConfig) -> Thresholds {
        Thresholds {
            rise: health.rise,
            fall: health.fall,
        }
    }
}

/// The state a server starts in (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartAs {
    /// Up, unproven: in service at once; a failure before its first success takes it
    /// down (HAProxy's start-up behaviour). The default.
    #[default]
    Up,
    /// Down until `rise` consecutive successes (keepalived's `alpha`).
    Down,
}

/// A change of a server's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The server came up: it may receive new flows again.
    Up,
    /// The server went down: it receives no new flows.
    Down,
}

/// The health of one server: pure logic, time passed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthState {
    up: bool,
    /// Whether a check has succeeded since the start.
    proven: bool,
    successes: u32,
    failures: u32,
    checks: u64,
    last: Option<CheckResult>,
    changed_at: u64,
}

impl HealthState {
    /// A server's state at `now`, before any check.
    pub fn new(start: StartAs, now: u64) -> HealthState {
        HealthState {
            up: start == StartAs::Up,
            proven: false,
            successes: 0,
            failures: 0,
            checks: 0,
            last: None,
            changed_at: now,
        }
    }

    /// Count the result of a check finished at `now`; returns the transition it causes.
    ///
    /// A success resets the failure run and a failure the success run. A down server
    /// comes up at the `rise`-th consecutive success; an up server goes down at the
    /// `fall`-th consecutive failure, or at its first failure if no check has succeeded
    /// yet ([`StartAs::Up`]). Thresholds of 0 count as 1.
    pub fn record(&mut self, result: CheckResult, now: u64, t: Thresholds) -> Option<Transition> {
        self.checks += 1;
        self.last = Some(result);
        let change = match result {
            Ok(()) => {
                self.successes = self.successes.saturating_add(1);
                self.failures = 0;
                self.proven = true;
                (!self.up && self.successes >= t.rise.max(1)).then_some(Transition::Up)
            }
            Err(_) => {
                self.failures = self.failures.saturating_add(1);
                self.successes = 0;
                (self.up && (self.failures >= t.fall.max(1) || !self.proven))
                    .then_some(Transition::Down)
            }
        };
        if let Some(tr) = change {
            self.up = tr == Transition::Up;
            self.changed_at = now;
        }
        change
    }

    /// Whether the server may receive new flows.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Consecutive successful checks up to now.
    pub fn consecutive_successes(&self) -> u32 {
        self.successes
    }

    /// Consecutive failed checks up to now.
    pub fn consecutive_failures(&self) -> u32 {
        self.failures
    }

    /// Checks counted so far.
    pub fn checks(&self) -> u64 {
        self.checks
    }

    /// The result of the last check, if any.
    pub fn last_result(&self) -> Option<CheckResult> {
        self.last
    }

    /// When the server last changed state (or, if never, when it was created).
    pub fn changed_at(&self) -> u64 {
        self.changed_at
    }
}

/// When each server's next check is due: pure logic, time passed in (nanoseconds).
///
/// Server *k* of the *n* scheduled ones is first due at `start + k × interval_k / n`;
/// afterwards every `interval` after its previous due time, skipping whole periods
/// that were missed (the phase is kept). See the [module docs](self).
#[derive(Debug, Clone)]
pub struct CheckSchedule {
    due: BinaryHeap<Reverse<(u64, ServerId)>>,
    /// Per server: its interval, `None` when it is never checked.
    intervals: Vec<Option<u64>>,
}

impl CheckSchedule {
    /// A schedule of servers `0..intervals.len()`, each with its interval in nanoseconds
    /// (`None`: never checked; an interval of 0 counts as 1 ns), starting at `start`.
    pub fn new(intervals: Vec<Option<u64>>, start: u64) -> CheckSchedule {
        let intervals: Vec<Option<u64>> =
            intervals.into_iter().map(|i| i.map(|i| i.max(1))).collect();
        let n = intervals.iter().flatten().count() as u128;
        let mut due = BinaryHeap::with_capacity(n as usize);
        let mut k = 0u128;
        for (id, interval) in intervals.iter().enumerate() {
            if let Some(i) = *interval {
                // k < n, so the offset is below `i` and fits in a u64.
                let offset = (k * u128::from(i) / n) as u64;
                due.push(Reverse((start.saturating_add(offset), id)));
                k += 1;
            }
        }
        CheckSchedule { due, intervals }
    }

    /// When the earliest check is due; `None` if no server is checked.
    pub fn next_due(&self) -> Option<u64> {
        self.due.peek().map(|Reverse((t, _))| *t)
    }

    /// The server whose check is due at `now`, if any (the earliest first), rescheduled
    /// one interval after the time it was due (or the first such time after `now`).
    pub fn pop_due(&mut self, now: u64) -> Option<ServerId> {
        let &Reverse((due, id)) = self.due.peek()?;
        if due > now {
            return None;
        }
        self.due.pop();
        // Only scheduled servers are in the heap, and they have an interval.
        let interval = self.intervals[id].unwrap_or(1);
        let mut next = due.saturating_add(interval);
        if next <= now {
            let missed = (now - due) / interval;
            next = due.saturating_add((missed + 1).saturating_mul(interval));
        }
        self.due.push(Reverse((next, id)));
        Some(id)
    }
}

// ---------------------------------------------------------------------------------------
// One check over lrp TCP
// ---------------------------------------------------------------------------------------

/// Run one check of the server at `addr` from `stack`, bounded by `timeout`.
/// [`HealthCheck::None`] succeeds at once without touching the network.
pub fn check_once(
    stack: &Stack,
    addr: SocketAddr,
    check: &HealthCheck,
    timeout: Duration,
) -> CheckResult {
    let deadline = Instant::now() + timeout;
    match check {
        HealthCheck::None => Ok(()),
        HealthCheck::Tcp => {
            let stream = stack.tcp_connect_timeout(addr, timeout).map_err(failure)?;
            drop(stream);
            Ok(())
        }
        HealthCheck::Http { path, status } => {
            let mut stream = stack.tcp_connect_timeout(addr, timeout).map_err(failure)?;
            let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
            stream
                .set_write_timeout(Some(left(deadline)?))
                .map_err(failure)?;
            stream.write_all(request.as_bytes()).map_err(failure)?;
            let got = read_status(&mut stream, deadline)?;
            if got == *status {
                Ok(())
            } else {
                Err(CheckFailure::Status {
                    got,
                    expected: *status,
                })
            }
        }
    }
}

/// The time left before `deadline`, or a timeout failure.
fn left(deadline: Instant) -> Result<Duration, CheckFailure> {
    match deadline.checked_duration_since(Instant::now()) {
        Some(d) if !d.is_zero() => Ok(d),
        _ => Err(CheckFailure::TimedOut),
    }
}

/// Read until the status line is complete and return its code.
fn read_status(stream: &mut lrp_net::TcpStream, deadline: Instant) -> Result<u16, CheckFailure> {
    let mut buf = [0u8; MAX_STATUS_LINE];
    let mut len = 0;
    loop {
        stream
            .set_read_timeout(Some(left(deadline)?))
            .map_err(failure)?;
        let n = stream.read(&mut buf[len..]).map_err(failure)?;
        if n == 0 {
            return Err(CheckFailure::Closed);
        }
        let had = len;
        len += n;
        if buf[had..len].contains(&b'\n') {
            // The status line is complete: httparse fills in the code as soon as it
            // has parsed it, whether or not the headers are complete.
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let mut resp = httparse::Response::new(&mut headers);
            let _ = resp.parse(&buf[..len]);
            return resp.code.ok_or(CheckFailure::Malformed);
        }
        if len == buf.len() {
            return Err(CheckFailure::Malformed);
        }
    }
}

/// A socket error as a check failure.
fn failure(e: io::Error) -> CheckFailure {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => CheckFailure::Refused,
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => CheckFailure::TimedOut,
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted => CheckFailure::Closed,
        kind => CheckFailure::Io(kind),
    }
}

// ---------------------------------------------------------------------------------------
// The checker
// ---------------------------------------------------------------------------------------

/// A server to check and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The server's address and port.
    pub addr: SocketAddr,
    /// How, and how often, it is checked.
    pub health: HealthConfig,
}

impl Target {
    /// The targets of a configuration: every service's servers, services in file order
    /// and each service's servers in file order, with the service's resolved health
    /// check. A server of two services is two targets, checked independently (the
    /// services may check it differently).
    pub fn from_config(config: &Config) -> Vec<Target> {
        config
            .services
            .iter()
            .flat_map(|svc| {
                svc.servers.iter().map(|srv| Target {
                    addr: srv.socket_addr(),
                    health: svc.health.clone(),
                })
            })
            .collect()
    }
}

/// A server's change of state, as published by the [`Checker`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthEvent {
    /// Which server.
    pub server: ServerId,
    /// Its address.
    pub addr: SocketAddr,
    /// Up or down.
    pub transition: Transition,
    /// The check result that caused it.
    pub result: CheckResult,
    /// When the check finished.
    pub at: Instant,
}

/// How a [`Checker`] runs.
#[derive(Debug, Default)]
pub struct CheckerOptions {
    /// Worker threads running checks at once (0: [`DEFAULT_WORKERS`]); never more than
    /// the number of checked servers.
    pub workers: usize,
    /// The state servers start in.
    pub start: StartAs,
    /// Where to send each transition, besides the log.
    pub events: Option<Sender<HealthEvent>>,
}

/// The published health of the servers: cheap to clone and to read from any thread.
///
/// [`is_up`](Self::is_up) is one atomic load, meant to be called for every new flow;
/// [`generation`](Self::generation) grows at every transition, so a reader can cache
/// what it derived from the states and recompute only when it changes.
#[derive(Debug, Clone)]
pub struct HealthView {
    shared: Arc<ViewShared>,
}

#[derive(Debug)]
struct ViewShared {
    up: Box<[AtomicBool]>,
    generation: AtomicU64,
    states: Mutex<Vec<HealthState>>,
}

impl HealthView {
    fn new(states: Vec<HealthState>) -> HealthView {
        HealthView {
            shared: Arc::new(ViewShared {
                up: states.iter().map(|s| AtomicBool::new(s.is_up())).collect(),
                generation: AtomicU64::new(0),
                states: Mutex::new(states),
            }),
        }
    }

    /// Whether `server` may receive new flows. An unknown server is not up.
    pub fn is_up(&self, server: ServerId) -> bool {
        self.shared
            .up
            .get(server)
            .is_some_and(|b| b.load(Ordering::Acquire))
    }

    /// How many transitions have been published; changes whenever a server changes
    /// state.
    pub fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Acquire)
    }

    /// The number of servers.
    pub fn len(&self) -> usize {
        self.shared.up.len()
    }

    /// Whether there are no servers.
    pub fn is_empty(&self) -> bool {
        self.shared.up.is_empty()
    }

    /// A copy of every server's state (counts, last result), for statistics.
    pub fn states(&self) -> Vec<HealthState> {
        lock(&self.shared.states).clone()
    }

    fn publish(&self, server: ServerId, state: &HealthState, changed: bool) {
        lock(&self.shared.states)[server] = state.clone();
        if changed {
            self.shared.up[server].store(state.is_up(), Ordering::Release);
            self.shared.generation.fetch_add(1, Ordering::AcqRel);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the scheduling thread hears.
enum Msg {
    /// A worker finished a check.
    Done {
        server: ServerId,
        result: CheckResult,
        elapsed: Duration,
        at: Instant,
    },
    /// The checker is dropped.
    Stop,
}

/// Health checks of real servers on an lrp [`Stack`], on a scheduling thread and a small
/// pool of workers. Dropping it stops them: the scheduler at once, each worker after
/// the check it is running (bounded by that check's timeout).
#[derive(Debug)]
pub struct Checker {
    view: HealthView,
    control: Sender<Msg>,
    /// Set on drop: workers run no more checks, even ones already queued.
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Msg::Done { server, result, .. } => write!(f, "Done({server}, {result:?})"),
            Msg::Stop => f.write_str("Stop"),
        }
    }
}

impl Checker {
    /// Start checking `targets` from `stack`. Server `i` of the [`HealthView`] is
    /// `targets[i]`. Fails only if a thread cannot be started.
    pub fn new(stack: Stack, targets: Vec<Target>, options: CheckerOptions) -> io::Result<Checker> {
        let epoch = Instant::now();
        let states: Vec<HealthState> = targets
            .iter()
            .map(|t| match t.health.check {
                HealthCheck::None => HealthState::new(StartAs::Up, 0),
                _ => HealthState::new(options.start, 0),
            })
            .collect();
        let view = HealthView::new(states.clone());
        let intervals = targets
            .iter()
            .map(|t| match t.health.check {
                HealthCheck::None => None,
                _ => Some(nanos(t.health.interval)),
            })
            .collect::<Vec<_>>();
        let checked = intervals.iter().flatten().count();
        let workers = match options.workers {
            0 => DEFAULT_WORKERS,
            n => n,
        }
        .min(checked);
        let schedule = CheckSchedule::new(intervals, 0);

        let (control, inbox) = mpsc::channel::<Msg>();
        let (jobs_tx, jobs_rx) = mpsc::channel::<ServerId>();
        let jobs_rx = Arc::new(Mutex::new(jobs_rx));
        let targets = Arc::new(targets);
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::with_capacity(workers + 1);
        let mut spawn = |name: String, f: Box<dyn FnOnce() + Send>| -> io::Result<()> {
            threads.push(std::thread::Builder::new().name(name).spawn(f)?);
            Ok(())
        };
        for w in 0..workers {
            let (stack, targets, jobs, done, stop) = (
                stack.clone(),
                Arc::clone(&targets),
                Arc::clone(&jobs_rx),
                control.clone(),
                Arc::clone(&stop),
            );
            spawn(
                format!("lrp-health-{w}"),
                Box::new(move || worker(&stack, &targets, &jobs, &done, &stop)),
            )?;
        }
        let scheduler = Scheduler {
            targets,
            states,
            schedule,
            in_flight: vec![false; view.len()],
            view: view.clone(),
            events: options.events,
            epoch,
        };
        spawn(
            "lrp-health".into(),
            Box::new(move || scheduler.run(&inbox, &jobs_tx)),
        )?;
        Ok(Checker {
            view,
            control,
            stop,
            threads,
        })
    }

    /// The published health of the servers.
    pub fn view(&self) -> HealthView {
        self.view.clone()
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.control.send(Msg::Stop);
        // The scheduler stops at once and drops the job queue; each worker finishes the
        // check it is running (bounded by the check's timeout) and sees the queue closed.
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A worker: take a server off the queue, check it, report; until the queue closes.
fn worker(
    stack: &Stack,
    targets: &[Target],
    jobs: &Mutex<mpsc::Receiver<ServerId>>,
    done: &Sender<Msg>,
    stop: &AtomicBool,
) {
    loop {
        // Only one worker waits on the queue at a time; the others wait for the lock.
        let job = lock(jobs).recv();
        let Ok(server) = job else { return };
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let t = &targets[server];
        let started = Instant::now();
        let result = check_once(stack, t.addr, &t.health.check, t.health.timeout);
        let msg = Msg::Done {
            server,
            result,
            elapsed: started.elapsed(),
            at: Instant::now(),
        };
        if done.send(msg).is_err() {
            return;
        }
    }
}

/// The scheduling thread's state: the schedule, the state machines, the publication.
struct Scheduler {
    targets: Arc<Vec<Target>>,
    states: Vec<HealthState>,
    schedule: CheckSchedule,
    in_flight: Vec<bool>,
    view: HealthView,
    events: Option<Sender<HealthEvent>>,
    epoch: Instant,
}

impl Scheduler {
    fn run(mut self, inbox: &mpsc::Receiver<Msg>, jobs: &Sender<ServerId>) {
        loop {
            let now = nanos(self.epoch.elapsed());
            while let Some(server) = self.schedule.pop_due(now) {
                if self.in_flight[server] {
                    continue; // still running: skip this round
                }
                self.in_flight[server] = true;
                if jobs.send(server).is_err() {
                    return;
                }
            }
            let wait = match self.schedule.next_due() {
                Some(due) => Duration::from_nanos(due.saturating_sub(now)),
                None => Duration::from_secs(3600),
            };
            match inbox.recv_timeout(wait) {
                Ok(Msg::Done {
                    server,
                    result,
                    elapsed,
                    at,
                }) => self.done(server, result, elapsed, at),
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    fn done(&mut self, server: ServerId, result: CheckResult, elapsed: Duration, at: Instant) {
        self.in_flight[server] = false;
        let t = &self.targets[server];
        let result = within(result, nanos(elapsed), nanos(t.health.timeout));
        let now = nanos(at.saturating_duration_since(self.epoch));
        let state = &mut self.states[server];
        let change = state.record(result, now, Thresholds::of(&t.health));
        self.view.publish(server, state, change.is_some());
        let Some(transition) = change else { return };
        match (transition, result) {
            (Transition::Up, _) => log::info!(
                "health: {} is up ({} consecutive successful checks)",
                t.addr,
                state.consecutive_successes()
            ),
            (Transition::Down, Err(why)) => log::warn!(
                "health: {} is down ({} consecutive failed checks, last: {why})",
                t.addr,
                state.consecutive_failures()
            ),
            (Transition::Down, Ok(())) => {}
        }
        if let Some(tx) = &self.events {
            let _ = tx.send(HealthEvent {
                server,
                addr: t.addr,
                transition,
                result,
                at,
            });
        }
    }
}

#[cfg(test)]
mod tests;
