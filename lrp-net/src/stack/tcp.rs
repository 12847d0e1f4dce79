//! TCP: a listener with a real backlog, and streams each on their own NI channel and
//! smoltcp interface. The design and its trade-offs are in the [module docs](super).

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use lrp_core::account::{Account, DropReason};
use lrp_core::flow::{self, Classification, FlowKey, Malformed, Proto};
use lrp_core::wire;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::{self, State};
use smoltcp::wire::{IpAddress, IpEndpoint, IpListenEndpoint};

use super::cpu::CpuMeter;
use super::engine::{Engine, StepIo};
use super::udp::{cap, time_left, wait_endpoint};
use super::{lock, EagerEndpoint, Lingering, Signal, SocketStats, Stack, StackInner, IPV4_ONLY};
use crate::error::{Error, Result};
use crate::nic::Channel;
use crate::pool::Frame;
use crate::rule::Rule;

/// How long after its handshake a connection may still receive frames forwarded by the
/// listener (frames that reached the listener's channel before the connection's exact
/// rule was installed).
/// How long [`TcpStream::connect`] waits for the handshake (Linux's default with its
/// six SYN retransmissions is about two minutes; 75 s is the classic BSD limit).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(75);

const HANDOFF_GRACE: Duration = Duration::from_secs(2);

/// The longest a connection waits in one slice during [`HANDOFF_GRACE`].
const HANDOFF_SLICE: Duration = Duration::from_millis(20);

/// The longest an endpoint waits in one slice while its interface waits for a neighbour.
const ARP_SLICE: Duration = Duration::from_millis(5);

/// Frames the listener takes off its channel per round.
const LISTENER_BATCH: usize = 64;

fn tcp_socket(stack: &StackInner) -> tcp::Socket<'static> {
    let rx = tcp::SocketBuffer::new(vec![0u8; stack.cfg.tcp_rx_buffer]);
    let tx = tcp::SocketBuffer::new(vec![0u8; stack.cfg.tcp_tx_buffer]);
    tcp::Socket::new(rx, tx)
}

/// States in which the connection went away without a FIN from the peer when it turns
/// `Closed`: a RST, a timeout, or a refused connection.
fn resets_to_closed(prev: State) -> bool {
    matches!(
        prev,
        State::SynSent
            | State::SynReceived
            | State::Established
            | State::FinWait1
            | State::FinWait2
            | State::CloseWait
    )
}

// ---- connections ------------------------------------------------------------------------

struct ConnState {
    engine: Engine,
    handle: SocketHandle,
    /// The last state seen after a step.
    last: State,
    /// The peer reset the connection (or it timed out, or was refused).
    reset: bool,
    /// `shutdown(Read)` was called: reads return end of stream.
    read_shut: bool,
    /// The application closed its side (shutdown(Write) or drop).
    closed: bool,
}

impl ConnState {
    fn socket(&mut self) -> &mut tcp::Socket<'static> {
        let h = self.handle;
        self.engine.sockets.get_mut::<tcp::Socket>(h)
    }

    /// Record the socket's state after a step, noticing a reset.
    fn observe(&mut self) {
        let now = self.socket().state();
        if now == State::Closed && resets_to_closed(self.last) && !self.closed {
            self.reset = true;
        }
        self.last = now;
    }
}

/// One TCP connection: its own channel (an exact 5-tuple rule), interface and account.
pub(crate) struct ConnShared {
    stack: Arc<StackInner>,
    channel: Channel,
    state: Mutex<ConnState>,
    /// Frames forwarded by the listener (see [`HANDOFF_GRACE`]).
    handoff: Mutex<Vec<Frame>>,
    local: SocketAddrV4,
    remote: SocketAddrV4,
    /// When the handshake completed.
    born: Instant,
    /// An ephemeral port to release when the connection goes (client connections).
    ephemeral: bool,
    signal: Signal,
    nonblocking: AtomicBool,
    read_timeout: Mutex<Option<Duration>>,
    write_timeout: Mutex<Option<Duration>>,
    delivered: AtomicU64,
    delivered_bytes: AtomicU64,
    linger_deadline: Mutex<Option<Instant>>,
}

impl ConnShared {
    fn lock(&self) -> MutexGuard<'_, ConnState> {
        lock(&self.state)
    }

    /// Lazy processing (LRP modes): forwarded frames, then everything in the channel,
    /// smoltcp ingress and egress, charged to this connection. In EAGER only forwarded
    /// frames, timers and egress (the eager poll step does the receiving).
    fn process(&self, st: &mut ConnState) {
        let account = self.channel.account();
        let forwarded: Vec<Frame> = std::mem::take(&mut *lock(&self.handoff));
        let src = *self.remote.ip();
        for frame in forwarded {
            st.engine.stage_verified(&self.stack, src, frame);
        }
        let max_frames = if self.stack.lazy() {
            self.channel.capacity()
        } else {
            0
        };
        let io = StepIo::channel(&self.channel, max_frames);
        let out = st.engine.step(&self.stack, &io);
        account.charge_cpu(out.cpu_ns);
        st.observe();
    }

    /// How long the owner may sleep before calling in again.
    fn wait_slice(
        &self,
        st: &mut ConnState,
        deadline: Option<Instant>,
    ) -> io::Result<Option<Duration>> {
        let mut wait = time_left(deadline, None)?;
        if let Some(timer) = st.engine.poll_delay(&self.stack) {
            wait = cap(wait, timer.max(Duration::from_micros(100)));
        }
        if st.engine.arp_pending() {
            wait = cap(wait, ARP_SLICE);
        }
        if self.born.elapsed() < HANDOFF_GRACE {
            wait = cap(wait, HANDOFF_SLICE);
        }
        Ok(wait)
    }

    fn wait(&self, seen: u64, wait: Option<Duration>) -> io::Result<()> {
        wait_endpoint(&self.stack, &self.channel, &self.signal, seen, wait)
    }

    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let nonblocking = self.nonblocking.load(Ordering::Relaxed);
        let timeout = *lock(&self.read_timeout);
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        loop {
            let (seen, wait) = {
                let mut st = self.lock();
                if st.read_shut {
                    return Ok(0);
                }
                self.process(&mut st);
                match st.socket().recv_slice(buf) {
                    Ok(0) => {}
                    Ok(n) => {
                        self.delivered.fetch_add(1, Ordering::Relaxed);
                        self.delivered_bytes.fetch_add(n as u64, Ordering::Relaxed);
                        // Reading opened the window: tell the peer now if it matters.
                        st.engine.egress_charged(&self.stack, &self.channel);
                        return Ok(n);
                    }
                    Err(tcp::RecvError::Finished) => return Ok(0),
                    Err(tcp::RecvError::InvalidState) => {
                        return if st.reset {
                            Err(io::ErrorKind::ConnectionReset.into())
                        } else {
                            Ok(0)
                        };
                    }
                }
                if nonblocking {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                let wait = self.wait_slice(&mut st, deadline)?;
                (self.signal.seq(), wait)
            };
            self.wait(seen, wait)?;
        }
    }

    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let nonblocking = self.nonblocking.load(Ordering::Relaxed);
        let timeout = *lock(&self.write_timeout);
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        loop {
            let (seen, wait) = {
                let mut st = self.lock();
                self.process(&mut st);
                if st.closed {
                    return Err(io::ErrorKind::BrokenPipe.into());
                }
                if st.reset {
                    return Err(io::ErrorKind::ConnectionReset.into());
                }
                match st.socket().send_slice(buf) {
                    Ok(0) => {}
                    Ok(n) => {
                        st.engine.egress_charged(&self.stack, &self.channel);
                        return Ok(n);
                    }
                    Err(tcp::SendError::InvalidState) => {
                        return Err(io::ErrorKind::BrokenPipe.into());
                    }
                }
                if nonblocking {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                let wait = self.wait_slice(&mut st, deadline)?;
                (self.signal.seq(), wait)
            };
            self.wait(seen, wait)?;
        }
    }

    fn shutdown_write(&self) {
        let mut st = self.lock();
        if !st.closed {
            st.closed = true;
            st.socket().close();
            st.engine.egress_charged(&self.stack, &self.channel);
        }
    }

    /// Whether the connection needs no more work: closed, or in TIME-WAIT (released at
    /// once; see the module docs).
    fn finished(st: &mut ConnState) -> bool {
        matches!(st.socket().state(), State::Closed | State::TimeWait)
    }
}

impl EagerEndpoint for ConnShared {
    fn eager_step(&self) -> usize {
        let mut st = self.lock();
        let io = StepIo::channel(&self.channel, self.channel.capacity());
        let out = st.engine.step(&self.stack, &io);
        st.observe();
        drop(st);
        if out.pulled > 0 || out.changed {
            self.signal.notify();
        }
        out.pulled
    }
}

impl Lingering for ConnShared {
    fn linger_step(&self, now: Instant) -> bool {
        let Ok(mut st) = self.state.try_lock() else {
            return false;
        };
        let account = self.channel.account();
        // Step only with something to do: frames waiting (or forwarded by the listener),
        // or a timer due (retransmission, delayed ACK).
        let due = !self.channel.is_empty()
            || !lock(&self.handoff).is_empty()
            || st
                .engine
                .poll_delay(&self.stack)
                .is_some_and(|d| d.is_zero());
        if due {
            let forwarded: Vec<Frame> = std::mem::take(&mut *lock(&self.handoff));
            let src = *self.remote.ip();
            for frame in forwarded {
                st.engine.stage_verified(&self.stack, src, frame);
            }
            let io = StepIo::channel(&self.channel, self.channel.capacity());
            let out = st.engine.step(&self.stack, &io);
            account.charge_cpu(out.cpu_ns);
        }
        if ConnShared::finished(&mut st) {
            return true;
        }
        let deadline = *lock(&self.linger_deadline);
        if deadline.is_none_or(|d| now >= d) {
            st.socket().abort();
            let ns = st.engine.egress(&self.stack, &self.channel, account);
            account.charge_cpu(ns);
            return true;
        }
        false
    }

    fn abort(&self) {
        let mut st = self.lock();
        st.socket().abort();
        let account = self.channel.account();
        st.engine.egress(&self.stack, &self.channel, account);
    }
}

impl Drop for ConnShared {
    fn drop(&mut self) {
        if self.ephemeral {
            self.stack
                .release_tcp_active(self.local.port(), self.remote);
        }
    }
}

/// A TCP connection on a [`Stack`]: its own NI channel (an exact 5-tuple rule), its own
/// smoltcp interface and its own account.
///
/// `read` and `write` do the connection's protocol work (incoming segments, ACKs,
/// retransmissions) on the caller's thread in the LRP modes. Implements `Read` and
/// `Write`, also on `&TcpStream`, so one thread can read while another writes. Dropping
/// it closes the connection gracefully (FIN) in the background, bounded by
/// [`StackConfig::linger`](super::StackConfig::linger).
pub struct TcpStream {
    conn: Arc<ConnShared>,
    /// Keeps the stack's threads alive while the connection exists.
    _stack: Stack,
}

impl std::fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpStream")
            .field("local", &self.conn.local)
            .field("remote", &self.conn.remote)
            .finish_non_exhaustive()
    }
}

impl TcpStream {
    /// Connect to `remote` (IPv4) from an ephemeral port, waiting at most
    /// [`CONNECT_TIMEOUT`] (75 s, Linux's default handshake limit) while smoltcp
    /// retransmits the SYN. Errors: `ConnectionRefused` (a RST), `TimedOut`,
    /// `Unsupported` (IPv6), `AddrInUse` (no ephemeral port left).
    pub fn connect(stack: &Stack, remote: SocketAddr) -> io::Result<TcpStream> {
        TcpStream::connect_timeout(stack, remote, CONNECT_TIMEOUT)
    }

    /// Connect to `remote`, waiting at most `timeout` for the handshake.
    pub fn connect_timeout(
        stack: &Stack,
        remote: SocketAddr,
        timeout: Duration,
    ) -> io::Result<TcpStream> {
        let inner = stack.inner();
        let SocketAddr::V4(remote) = remote else {
            return Err(io::Error::new(io::ErrorKind::Unsupported, IPV4_ONLY));
        };
        if remote.port() == 0 || remote.ip().is_unspecified() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "unaddressable destination",
            ));
        }
        let port = inner.claim_tcp_active(remote)?;
        let local = SocketAddrV4::new(inner.cfg.ip, port);
        let key = FlowKey {
            proto: Proto::Tcp,
            src: IpAddr::V4(*remote.ip()),
            dst: IpAddr::V4(inner.cfg.ip),
            sport: remote.port(),
            dport: port,
        };
        let channel = match inner.channel(Rule::exact(key), inner.cfg.conn_capacity) {
            Ok(c) => c,
            Err(e) => {
                inner.release_tcp_active(port, remote);
                return Err(e.into());
            }
        };
        let mut engine = inner.new_engine();
        let mut socket = tcp_socket(inner);
        let to = IpEndpoint::new(IpAddress::Ipv4(*remote.ip()), remote.port());
        let from = IpListenEndpoint {
            addr: Some(IpAddress::Ipv4(inner.cfg.ip)),
            port,
        };
        if let Err(e) = socket.connect(engine.iface.context(), to, from) {
            inner.release_tcp_active(port, remote);
            return Err(io::Error::new(io::ErrorKind::InvalidInput, e.to_string()));
        }
        let handle = engine.sockets.add(socket);
        let conn = ConnShared::new(
            inner,
            channel,
            engine,
            handle,
            local,
            remote,
            true,
            State::SynSent,
        );
        let stream = TcpStream {
            conn,
            _stack: stack.clone(),
        };
        let deadline = Instant::now() + timeout;
        loop {
            let (seen, wait) = {
                let mut st = stream.conn.lock();
                stream.conn.process(&mut st);
                match st.socket().state() {
                    State::SynSent | State::SynReceived => {}
                    State::Closed => {
                        return Err(io::Error::new(
                            io::ErrorKind::ConnectionRefused,
                            format!("connection to {remote} refused"),
                        ));
                    }
                    _ => {
                        drop(st);
                        return Ok(stream);
                    }
                }
                let wait = match stream.conn.wait_slice(&mut st, Some(deadline)) {
                    Ok(w) => w,
                    Err(e) => {
                        st.socket().abort();
                        return Err(io::Error::new(
                            e.kind(),
                            format!("connecting to {remote}: timed out"),
                        ));
                    }
                };
                (stream.conn.signal.seq(), wait)
            };
            stream.conn.wait(seen, wait)?;
        }
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(SocketAddr::V4(self.conn.local))
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(SocketAddr::V4(self.conn.remote))
    }

    /// Shut down the read side (reads return end of stream), the write side (a FIN
    /// follows the data already queued), or both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        if matches!(how, Shutdown::Read | Shutdown::Both) {
            self.conn.lock().read_shut = true;
        }
        if matches!(how, Shutdown::Write | Shutdown::Both) {
            self.conn.shutdown_write();
        }
        Ok(())
    }

    /// Make `read` and `write` return `WouldBlock` instead of waiting.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.conn.nonblocking.store(nonblocking, Ordering::Relaxed);
        Ok(())
    }

    /// Limit how long `read` waits (`None`: forever). Zero is refused.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        check_timeout(timeout)?;
        *lock(&self.conn.read_timeout) = timeout;
        Ok(())
    }

    /// Limit how long `write` waits for buffer space (`None`: forever). Zero is refused.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        check_timeout(timeout)?;
        *lock(&self.conn.write_timeout) = timeout;
        Ok(())
    }

    /// Disable (or enable) Nagle's algorithm: with `true`, small writes leave at once.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.conn.lock().socket().set_nagle_enabled(!nodelay);
        Ok(())
    }

    /// Process what waits in the connection's channel and run its timers, without
    /// blocking (in the LRP modes). For applications that hold a connection without
    /// reading or writing for a while.
    pub fn poll(&self) {
        let mut st = self.conn.lock();
        self.conn.process(&mut st);
    }

    /// The connection's statistics (its own channel and account).
    pub fn stats(&self) -> SocketStats {
        let c = &self.conn;
        SocketStats::from_channel(
            &c.channel,
            c.delivered.load(Ordering::Relaxed),
            c.delivered_bytes.load(Ordering::Relaxed),
        )
    }

    /// Close gracefully and wait (at most `timeout`) until the peer acknowledged the FIN
    /// and closed its side too. Aborts with a RST if that does not happen in time.
    pub fn close(self, timeout: Duration) -> io::Result<()> {
        self.conn.shutdown_write();
        let deadline = Instant::now() + timeout;
        loop {
            let (seen, wait) = {
                let mut st = self.conn.lock();
                self.conn.process(&mut st);
                if ConnShared::finished(&mut st) {
                    return Ok(());
                }
                match self.conn.wait_slice(&mut st, Some(deadline)) {
                    Ok(w) => (self.conn.signal.seq(), w),
                    Err(e) => {
                        st.socket().abort();
                        let account = self.conn.channel.account();
                        st.engine
                            .egress(&self.conn.stack, &self.conn.channel, account);
                        return Err(e);
                    }
                }
            };
            self.conn.wait(seen, wait)?;
        }
    }
}

fn check_timeout(timeout: Option<Duration>) -> io::Result<()> {
    if timeout == Some(Duration::ZERO) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "zero timeout"));
    }
    Ok(())
}

impl ConnShared {
    #[allow(clippy::too_many_arguments)]
    fn new(
        inner: &Arc<StackInner>,
        channel: Channel,
        engine: Engine,
        handle: SocketHandle,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        ephemeral: bool,
        last: State,
    ) -> Arc<ConnShared> {
        let conn = Arc::new(ConnShared {
            stack: Arc::clone(inner),
            channel,
            state: Mutex::new(ConnState {
                engine,
                handle,
                last,
                reset: false,
                read_shut: false,
                closed: false,
            }),
            handoff: Mutex::new(Vec::new()),
            local,
            remote,
            born: Instant::now(),
            ephemeral,
            signal: Signal::default(),
            nonblocking: AtomicBool::new(false),
            read_timeout: Mutex::new(None),
            write_timeout: Mutex::new(None),
            delivered: AtomicU64::new(0),
            delivered_bytes: AtomicU64::new(0),
            linger_deadline: Mutex::new(None),
        });
        let weak: Weak<dyn EagerEndpoint> = Arc::downgrade(&conn) as _;
        inner.register_eager(weak);
        conn
    }
}

impl Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.conn.read(buf)
    }
}

impl Read for &TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.conn.read(buf)
    }
}

impl Write for TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.conn.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for &TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.conn.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        let conn = &self.conn;
        conn.shutdown_write();
        {
            let mut st = conn.lock();
            conn.process(&mut st);
            if ConnShared::finished(&mut st) {
                return;
            }
        }
        let deadline = Instant::now() + conn.stack.cfg.linger;
        *lock(&conn.linger_deadline) = Some(deadline);
        if conn.stack.has_background_thread() {
            let lingering: Arc<dyn Lingering> = Arc::clone(conn) as _;
            conn.stack.add_lingering(lingering);
            return;
        }
        // No control thread: linger here, bounded by the deadline.
        while !conn.linger_step(Instant::now()) {
            let wait = {
                let mut st = conn.lock();
                conn.wait_slice(&mut st, Some(deadline))
                    .unwrap_or(Some(Duration::ZERO))
            };
            if conn
                .wait(conn.signal.seq(), cap(wait, Duration::from_millis(50)))
                .is_err()
            {
                break;
            }
        }
    }
}

// ---- listener -----------------------------------------------------------------------------

/// A connection whose handshake is in progress: its own interface with one socket,
/// fed by the listener.
struct Embryo {
    engine: Engine,
    handle: SocketHandle,
    deadline: Instant,
    remote: SocketAddrV4,
}

struct ListenerState {
    /// A socket-less interface: answers stray segments with RST.
    rst: Engine,
    embryos: HashMap<FlowKey, Embryo>,
    ready: VecDeque<Arc<ConnShared>>,
    handed: HashMap<FlowKey, (Weak<ConnShared>, Instant)>,
    scratch: Vec<Frame>,
}

struct ListenerShared {
    stack: Arc<StackInner>,
    channel: Channel,
    local: SocketAddrV4,
    backlog: usize,
    state: Mutex<ListenerState>,
    signal: Signal,
    nonblocking: AtomicBool,
    accepted: AtomicU64,
}

/// A TCP listener on a [`Stack`] with a real accept backlog. See the
/// [module docs](super) for how handshakes and per-connection channels work.
pub struct TcpListener {
    shared: Arc<ListenerShared>,
    stack: Stack,
}

impl std::fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpListener")
            .field("local", &self.shared.local)
            .field("backlog", &self.shared.backlog)
            .finish_non_exhaustive()
    }
}

impl TcpListener {
    /// Listen at `addr` (the stack's address or unspecified, with a port) with a backlog
    /// of `backlog` connections: handshakes in progress plus established connections not
    /// yet accepted. The listener's channel holds `max(64, 2 × backlog)` frames.
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
            state: Mutex::new(ListenerState {
                rst: inner.new_engine(),
                embryos: HashMap::new(),
                ready: VecDeque::new(),
                handed: HashMap::new(),
                scratch: Vec::new(),
            }),
            signal: Signal::default(),
            nonblocking: AtomicBool::new(false),
            accepted: AtomicU64::new(0),
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
                for e in st.embryos.values_mut() {
                    if let Some(t) = e.engine.poll_delay(&s.stack) {
                        wait = cap(wait, t.max(Duration::from_micros(100)));
                    }
                    if e.engine.arp_pending() {
                        wait = cap(wait, ARP_SLICE);
                    }
                    wait = cap(wait, e.deadline.saturating_duration_since(Instant::now()));
                }
                (s.signal.seq(), wait)
            };
            wait_endpoint(&s.stack, &s.channel, &s.signal, seen, wait)?;
        }
    }

    /// Handshakes in progress.
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

    /// The listener's statistics (its channel: SYNs and handshake segments; backlog-full
    /// drops; the CPU time of handshakes).
    pub fn stats(&self) -> SocketStats {
        let a = self.shared.accepted.load(Ordering::Relaxed);
        SocketStats::from_channel(&self.shared.channel, a, 0)
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
            if st.embryos.len() + st.ready.len() >= self.backlog {
                account.record_drop(DropReason::BacklogFull);
                return;
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
            let remote = SocketAddrV4::new(src, key.sport);
            let deadline = Instant::now() + stack.cfg.syn_timeout;
            st.embryos.insert(
                key,
                Embryo {
                    engine,
                    handle,
                    deadline,
                    remote,
                },
            );
        } else {
            // Not part of any connection we know: smoltcp answers with a RST.
            st.rst.stage_verified(stack, src, frame);
        }
    }

    /// Run every handshake in progress; promote, expire. The caller measures the CPU time.
    fn drive(&self, st: &mut ListenerState, account: &Account) {
        let stack = &self.stack;
        let now = Instant::now();
        let mut promote = Vec::new();
        let mut dead = Vec::new();
        for (key, e) in st.embryos.iter_mut() {
            e.engine.egress(stack, &self.channel, account);
            let state = e.engine.sockets.get_mut::<tcp::Socket>(e.handle).state();
            match state {
                State::SynReceived if now < e.deadline => {}
                State::Established | State::CloseWait => promote.push(*key),
                // Listen again (a RST), closed, or out of time.
                _ => dead.push(*key),
            }
        }
        for key in dead {
            if let Some(mut e) = st.embryos.remove(&key) {
                e.engine.sockets.get_mut::<tcp::Socket>(e.handle).abort();
                e.engine.egress(stack, &self.channel, account);
            }
        }
        for key in promote {
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
        st.rst.egress(stack, &self.channel, account);
        st.handed
            .retain(|_, (w, t)| w.strong_count() > 0 && now.duration_since(*t) < HANDOFF_GRACE);
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
