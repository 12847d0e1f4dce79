//! [`TcpListener`]: the listening socket with a real backlog. It runs the handshakes, each
//! on an interface of its own, in a SYN queue bounded by [`StackConfig::syn_backlog`]
//! (oldest evicted first when full), and promotes completed ones to an accept queue
//! bounded by the listener's backlog, as connections with their own channels.
//!
//! [`StackConfig::syn_backlog`]: crate::StackConfig::syn_backlog

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use lrp_core::account::{Account, DropReason};
use lrp_core::flow::{self, Classification, FlowKey, Malformed, Proto};
use lrp_core::wire;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::{self, State};
use smoltcp::wire::{IpAddress, IpListenEndpoint};

use super::conn::{tcp_socket, ConnShared, ARP_SLICE, HANDOFF_GRACE};
use super::TcpStream;
use crate::error::{Error, Result};
use crate::nic::Channel;
use crate::pool::Frame;
use crate::rule::Rule;
use crate::stack::cpu::CpuMeter;
use crate::stack::engine::Engine;
use crate::stack::threads::{EagerEndpoint, Lingering, Signal};
use crate::stack::udp::{cap, time_left, wait_endpoint};
use crate::stack::{lock, SocketStats, Stack, StackInner};

/// Frames the listener takes off its channel per round.
const LISTENER_BATCH: usize = 64;

/// How often every handshake in progress is run (timers: SYN-ACK retransmission, ARP,
/// expiry); between sweeps only those that received a frame are.
const SWEEP_INTERVAL: Duration = ARP_SLICE;

/// A connection whose handshake is in progress: its own interface with one socket,
/// fed by the listener.
struct Embryo {
    engine: Engine,
    handle: SocketHandle,
    deadline: Instant,
    remote: SocketAddrV4,
    /// Arrival number: the SYN queue's order.
    seq: u64,
}

struct ListenerState {
    /// A socket-less interface: answers stray segments with RST.
    rst: Engine,
    /// The SYN queue: handshakes in progress, at most `syn_backlog`.
    embryos: HashMap<FlowKey, Embryo>,
    /// The SYN queue's arrival order, oldest first: `(seq, key)`, where entries whose
    /// embryo is gone (or was replaced, another `seq`) are skipped and compacted away.
    order: VecDeque<(u64, FlowKey)>,
    next_seq: u64,
    /// Handshakes that received a frame since the last `drive`.
    touched: Vec<FlowKey>,
    /// When every handshake was last run.
    last_sweep: Instant,
    /// The accept queue: completed connections, at most `backlog`.
    ready: VecDeque<Arc<ConnShared>>,
    handed: HashMap<FlowKey, (Weak<ConnShared>, Instant)>,
    scratch: Vec<Frame>,
}

struct ListenerShared {
    stack: Arc<StackInner>,
    channel: Channel,
    local: SocketAddrV4,
    backlog: usize,
    syn_backlog: usize,
    state: Mutex<ListenerState>,
    signal: Signal,
    nonblocking: AtomicBool,
    accepted: AtomicU64,
    syn_evictions: AtomicU64,
}

/// A TCP listener on a [`Stack`] with a real accept backlog. See the
/// [module docs](crate::stack) for how handshakes and per-connection channels work.
pub struct TcpListener {
    shared: Arc<ListenerShared>,
    stack: Stack,
}

impl std::fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpListener")
            .field("local", &self.shared.local)
            .field("backlog", &self.shared.backlog)
            .field("syn_backlog", &self.shared.syn_backlog)
            .finish_non_exhaustive()
    }
}

impl TcpListener {
    /// Listen at `addr` (the stack's address or unspecified, with a port) with an accept
    /// backlog of `backlog` established connections not yet accepted (a SYN arriving
    /// when it is full is dropped). Handshakes in progress are bounded separately, by
    /// [`StackConfig::syn_backlog`]. The listener's channel holds `max(64, 2 × backlog)`
    /// frames.
    ///
    /// [`StackConfig::syn_backlog`]: crate::StackConfig::syn_backlog
    pub fn bind(stack: &Stack, addr: SocketAddr, backlog: usize) -> Result<TcpListener, Error> {
        let inner = stack.inner();
        if backlog == 0 {
            return Err(Error::InvalidConfig("the backlog must be at least 1"));
        }
        let port = inner.local_port(addr)?;
        inner.claim_tcp_listen(port)?;
        let ip = inner.cfg.ip;
        let capacity = (2 * backlog).max(64);
        let channel =
            match inner.channel(Rule::listener(Proto::Tcp, IpAddr::V4(ip), port), capacity) {
                Ok(c) => c,
                Err(e) => {
                    inner.release_tcp_listen(port);
                    return Err(e);
                }
            };
        let shared = Arc::new(ListenerShared {
            stack: Arc::clone(inner),
            channel,
            local: SocketAddrV4::new(ip, port),
            backlog,
            syn_backlog: inner.cfg.syn_backlog,
            state: Mutex::new(ListenerState {
                rst: inner.new_engine(),
                embryos: HashMap::new(),
                order: VecDeque::new(),
                next_seq: 0,
                touched: Vec::new(),
                last_sweep: Instant::now(),
                ready: VecDeque::new(),
                handed: HashMap::new(),
                scratch: Vec::new(),
            }),
            signal: Signal::default(),
            nonblocking: AtomicBool::new(false),
            accepted: AtomicU64::new(0),
            syn_evictions: AtomicU64::new(0),
        });
        let weak: Weak<dyn EagerEndpoint> = Arc::downgrade(&shared) as _;
        inner.register_eager(weak);
        Ok(TcpListener {
            shared,
            stack: stack.clone(),
        })
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(SocketAddr::V4(self.shared.local))
    }

    /// Make `accept` return `WouldBlock` instead of waiting.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.shared
            .nonblocking
            .store(nonblocking, Ordering::Relaxed);
        Ok(())
    }

    /// Wait for a connection and return it with its peer's address. Handshakes are
    /// processed here (in the LRP modes), charged to the listener.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let nonblocking = self.shared.nonblocking.load(Ordering::Relaxed);
        self.accept_inner(if nonblocking {
            Some(Duration::ZERO)
        } else {
            None
        })
    }

    /// Like [`accept`](Self::accept), waiting at most `timeout` (`TimedOut` after).
    pub fn accept_timeout(&self, timeout: Duration) -> io::Result<(TcpStream, SocketAddr)> {
        self.accept_inner(Some(timeout))
    }

    fn accept_inner(&self, timeout: Option<Duration>) -> io::Result<(TcpStream, SocketAddr)> {
        let s = &self.shared;
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        loop {
            let (seen, wait) = {
                let mut st = lock(&s.state);
                if s.stack.lazy() {
                    s.process(&mut st, true);
                }
                if let Some(conn) = st.ready.pop_front() {
                    s.accepted.fetch_add(1, Ordering::Relaxed);
                    let peer = SocketAddr::V4(conn.remote);
                    return Ok((
                        TcpStream {
                            conn,
                            _stack: self.stack.clone(),
                        },
                        peer,
                    ));
                }
                let mut wait = time_left(deadline, timeout)?;
                if !st.embryos.is_empty() {
                    // Handshake timers run in sweeps (see `drive`): wake for the next.
                    let next = st.last_sweep + SWEEP_INTERVAL;
                    wait = cap(
                        wait,
                        next.saturating_duration_since(Instant::now())
                            .max(Duration::from_micros(100)),
                    );
                }
                (s.signal.seq(), wait)
            };
            wait_endpoint(&s.stack, &s.channel, &s.signal, seen, wait)?;
        }
    }

    /// Handshakes in progress (the SYN queue; at most [`StackConfig::syn_backlog`]).
    ///
    /// [`StackConfig::syn_backlog`]: crate::StackConfig::syn_backlog
    pub fn pending_handshakes(&self) -> usize {
        lock(&self.shared.state).embryos.len()
    }

    /// Established connections waiting for `accept`.
    pub fn accept_queue_len(&self) -> usize {
        lock(&self.shared.state).ready.len()
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }

    /// Handshakes in progress dropped so far to make room for newer SYNs.
    pub fn syn_evictions(&self) -> u64 {
        self.shared.syn_evictions.load(Ordering::Relaxed)
    }

    /// The listener's statistics (its channel: SYNs and handshake segments; SYNs dropped
    /// for a full accept queue, handshakes evicted from a full SYN queue; the CPU time
    /// of handshakes).
    pub fn stats(&self) -> SocketStats {
        let a = self.shared.accepted.load(Ordering::Relaxed);
        let mut stats = SocketStats::from_channel(&self.shared.channel, a, 0);
        stats.syn_evictions = self.syn_evictions();
        stats
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        let s = &self.shared;
        let mut st = lock(&s.state);
        // Refuse the handshakes in progress and the connections nobody accepted.
        let account = s.channel.account();
        for (_, mut e) in st.embryos.drain() {
            e.engine.sockets.get_mut::<tcp::Socket>(e.handle).abort();
            e.engine.egress(&s.stack, &s.channel, account);
        }
        for conn in st.ready.drain(..) {
            conn.abort();
        }
        drop(st);
        s.stack.release_tcp_listen(s.local.port());
    }
}

impl ListenerShared {
    /// The listener's protocol work: take frames off its channel, start handshakes for
    /// SYNs within the backlog, feed handshake segments to their interfaces, promote
    /// completed handshakes to connections with their own channels, expire stale ones.
    /// With `charge`, the CPU time is charged to the listener. Returns frames taken.
    fn process(&self, st: &mut ListenerState, charge: bool) -> usize {
        let account = self.channel.account();
        let mut total = 0;
        let mut cpu = 0;
        // Drain the channel (bounded), so frames of a just-promoted connection that
        // arrived before its exact rule are forwarded in this same call.
        for _ in 0..8 {
            let mut frames = std::mem::take(&mut st.scratch);
            // As in `Engine::step`: taking the listener's own frames is its work, the
            // NIC's poll step that `try_recv_batch` runs on an empty channel is not.
            let early = (!self.channel.is_empty()).then(CpuMeter::start);
            let n = self.channel.try_recv_batch(LISTENER_BATCH, &mut frames);
            let meter = early.unwrap_or_else(CpuMeter::start);
            for frame in frames.drain(..) {
                self.dispatch(st, frame, account);
            }
            st.scratch = frames;
            self.drive(st, account);
            cpu += meter.elapsed_ns();
            total += n;
            if n < LISTENER_BATCH {
                break;
            }
        }
        if charge {
            account.charge_cpu(cpu);
        }
        total
    }

    /// One frame from the listener's channel.
    fn dispatch(&self, st: &mut ListenerState, frame: Frame, account: &Account) {
        let stack = &*self.stack;
        let class = flow::classify(&frame);
        if let Err(reason) = wire::verify(&frame, &class) {
            account.record_drop(match reason {
                Malformed::BadChecksum => DropReason::BadChecksum,
                _ => DropReason::Malformed,
            });
            return;
        }
        let Classification::Flow { key, flags, .. } = class else {
            account.record_drop(DropReason::Rejected);
            return;
        };
        let IpAddr::V4(src) = key.src else {
            account.record_drop(DropReason::Rejected);
            return;
        };
        if key.proto != Proto::Tcp {
            account.record_drop(DropReason::Rejected);
            return;
        }
        if let Some(e) = st.embryos.get_mut(&key) {
            e.engine.stage_verified(stack, src, frame);
            st.touched.push(key);
            return;
        }
        if let Some((weak, _)) = st.handed.get(&key) {
            if let Some(conn) = weak.upgrade() {
                lock(&conn.handoff).push(frame);
                conn.signal.notify();
                return;
            }
        }
        if flags.is_syn_only() {
            if st.ready.len() >= self.backlog {
                // The accept queue is full: the application is not keeping up, and
                // answering would only make more connections it cannot take.
                account.record_drop(DropReason::BacklogFull);
                return;
            }
            if st.embryos.len() >= self.syn_backlog && st.evict_oldest() {
                self.syn_evictions.fetch_add(1, Ordering::Relaxed);
            }
            let mut engine = stack.new_engine();
            let mut socket = tcp_socket(stack);
            let local = IpListenEndpoint {
                addr: Some(IpAddress::Ipv4(*self.local.ip())),
                port: self.local.port(),
            };
            // The endpoint has a non-zero port and a fresh socket: listening cannot fail.
            let _ = socket.listen(local);
            let handle = engine.sockets.add(socket);
            engine.stage_verified(stack, src, frame);
            // Answer at once (not at the end of the batch): a handshake evicted by a
            // later SYN of the same batch has still sent its SYN-ACK. A SYN smoltcp did
            // not accept leaves the socket listening; the next sweep removes it.
            engine.egress(stack, &self.channel, account);
            let remote = SocketAddrV4::new(src, key.sport);
            let deadline = Instant::now() + stack.cfg.syn_timeout;
            let seq = st.next_seq;
            st.next_seq += 1;
            st.embryos.insert(
                key,
                Embryo {
                    engine,
                    handle,
                    deadline,
                    remote,
                    seq,
                },
            );
            st.order.push_back((seq, key));
        } else {
            // Not part of any connection we know: smoltcp answers with a RST.
            st.rst.stage_verified(stack, src, frame);
        }
    }

    /// Run the handshakes that received frames (all of them, every [`SWEEP_INTERVAL`],
    /// for their timers); promote, expire. The caller measures the CPU time.
    fn drive(&self, st: &mut ListenerState, account: &Account) {
        let stack = &self.stack;
        let now = Instant::now();
        let mut promote = Vec::new();
        let mut dead = Vec::new();
        let mut touched = std::mem::take(&mut st.touched);
        if now.duration_since(st.last_sweep) >= SWEEP_INTERVAL {
            st.last_sweep = now;
            touched.clear();
            touched.extend(st.embryos.keys().copied());
        } else {
            touched.sort_unstable();
            touched.dedup();
        }
        for key in touched.drain(..) {
            let Some(e) = st.embryos.get_mut(&key) else {
                continue;
            };
            e.engine.egress(stack, &self.channel, account);
            let state = e.engine.sockets.get_mut::<tcp::Socket>(e.handle).state();
            match state {
                State::SynReceived if now < e.deadline => {}
                State::Established | State::CloseWait => promote.push(key),
                // Listen again (a RST), closed, or out of time.
                _ => dead.push(key),
            }
        }
        st.touched = touched;
        for key in dead {
            if let Some(mut e) = st.embryos.remove(&key) {
                e.engine.sockets.get_mut::<tcp::Socket>(e.handle).abort();
                e.engine.egress(stack, &self.channel, account);
            }
        }
        for key in promote {
            if st.ready.len() >= self.backlog {
                // No room in the accept queue: the connection stays a handshake (its
                // frames are still answered) until `accept` makes room.
                st.touched.push(key);
                continue;
            }
            let Some(mut e) = st.embryos.remove(&key) else {
                continue;
            };
            match stack.channel(Rule::exact(key), stack.cfg.conn_capacity) {
                Ok(channel) => {
                    let local = self.local;
                    let remote = e.remote;
                    let state = e.engine.sockets.get_mut::<tcp::Socket>(e.handle).state();
                    let conn = ConnShared::new(
                        stack, channel, e.engine, e.handle, local, remote, false, state,
                    );
                    st.handed.insert(key, (Arc::downgrade(&conn), now));
                    st.ready.push_back(conn);
                    self.signal.notify();
                }
                Err(err) => {
                    // No channel for the connection (NI-LRP out of slots, and no soft
                    // channel possible): refuse it.
                    log::warn!("lrp tcp: no channel for accepted connection {key:?}: {err}");
                    account.record_drop(DropReason::Rejected);
                    e.engine.sockets.get_mut::<tcp::Socket>(e.handle).abort();
                    e.engine.egress(stack, &self.channel, account);
                }
            }
        }
        st.compact_order();
        st.rst.egress(stack, &self.channel, account);
        st.handed
            .retain(|_, (w, t)| w.strong_count() > 0 && now.duration_since(*t) < HANDOFF_GRACE);
    }
}

impl ListenerState {
    /// Drop the oldest handshake in progress, silently (no RST: under a flood its peer
    /// is most likely spoofed, and a real one retransmits its SYN). Returns whether
    /// there was one.
    fn evict_oldest(&mut self) -> bool {
        while let Some((seq, key)) = self.order.pop_front() {
            if self.embryos.get(&key).is_some_and(|e| e.seq == seq) {
                self.embryos.remove(&key);
                return true;
            }
        }
        false
    }

    /// Forget the order entries of handshakes that are gone, once they outnumber the
    /// live ones: the order queue stays within twice the SYN queue (plus a constant).
    fn compact_order(&mut self) {
        if self.order.len() > 2 * self.embryos.len() + LISTENER_BATCH {
            let embryos = &self.embryos;
            self.order
                .retain(|(seq, key)| embryos.get(key).is_some_and(|e| e.seq == *seq));
        }
    }
}

impl EagerEndpoint for ListenerShared {
    fn eager_step(&self) -> usize {
        let mut st = lock(&self.state);
        let n = self.process(&mut st, false);
        drop(st);
        if n > 0 {
            self.signal.notify();
        }
        n
    }
}
