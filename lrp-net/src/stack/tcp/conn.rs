//! One TCP connection's state, shared by its [`TcpStream`](super::TcpStream), the
//! listener that accepted it and the stack's threads: its channel, interface and account,
//! and the protocol work behind `read`, `write`, the eager poll step and lingering.

use std::io;
use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::{self, State};

use crate::nic::Channel;
use crate::pool::Frame;
use crate::stack::engine::{Engine, StepIo};
use crate::stack::threads::{EagerEndpoint, Lingering, Signal};
use crate::stack::udp::{cap, time_left, wait_endpoint};
use crate::stack::{lock, StackInner};

/// How long after its handshake a connection may still receive frames forwarded by the
/// listener (frames that reached the listener's channel before the connection's exact
/// rule was installed).
pub(super) const HANDOFF_GRACE: Duration = Duration::from_secs(2);

/// The longest a connection waits in one slice during [`HANDOFF_GRACE`].
const HANDOFF_SLICE: Duration = Duration::from_millis(20);

/// The longest an endpoint waits in one slice while its interface waits for a neighbour.
pub(super) const ARP_SLICE: Duration = Duration::from_millis(5);

pub(super) fn tcp_socket(stack: &StackInner) -> tcp::Socket<'static> {
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

pub(super) struct ConnState {
    pub(super) engine: Engine,
    handle: SocketHandle,
    /// The last state seen after a step.
    last: State,
    /// The peer reset the connection (or it timed out, or was refused).
    reset: bool,
    /// `shutdown(Read)` was called: reads return end of stream.
    pub(super) read_shut: bool,
    /// The application closed its side (shutdown(Write) or drop).
    closed: bool,
}

impl ConnState {
    pub(super) fn socket(&mut self) -> &mut tcp::Socket<'static> {
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
    pub(super) stack: Arc<StackInner>,
    pub(super) channel: Channel,
    state: Mutex<ConnState>,
    /// Frames forwarded by the listener (see [`HANDOFF_GRACE`]).
    pub(super) handoff: Mutex<Vec<Frame>>,
    pub(super) local: SocketAddrV4,
    pub(super) remote: SocketAddrV4,
    /// When the handshake completed.
    born: Instant,
    /// An ephemeral port to release when the connection goes (client connections).
    ephemeral: bool,
    pub(super) signal: Signal,
    pub(super) nonblocking: AtomicBool,
    pub(super) read_timeout: Mutex<Option<Duration>>,
    pub(super) write_timeout: Mutex<Option<Duration>>,
    pub(super) delivered: AtomicU64,
    pub(super) delivered_bytes: AtomicU64,
    pub(super) linger_deadline: Mutex<Option<Instant>>,
}

impl ConnShared {
    pub(super) fn lock(&self) -> MutexGuard<'_, ConnState> {
        lock(&self.state)
    }

    /// Lazy processing (LRP modes): forwarded frames, then everything in the channel,
    /// smoltcp ingress and egress, charged to this connection. In EAGER only forwarded
    /// frames, timers and egress (the eager poll step does the receiving).
    pub(super) fn process(&self, st: &mut ConnState) {
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
    pub(super) fn wait_slice(
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

    pub(super) fn wait(&self, seen: u64, wait: Option<Duration>) -> io::Result<()> {
        wait_endpoint(&self.stack, &self.channel, &self.signal, seen, wait)
    }

    pub(super) fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
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

    pub(super) fn write(&self, buf: &[u8]) -> io::Result<usize> {
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

    pub(super) fn shutdown_write(&self) {
        let mut st = self.lock();
        if !st.closed {
            st.closed = true;
            st.socket().close();
            st.engine.egress_charged(&self.stack, &self.channel);
        }
    }

    /// Whether the connection needs no more work: closed, or in TIME-WAIT (released at
    /// once; see the `stack` module docs).
    pub(super) fn finished(st: &mut ConnState) -> bool {
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

impl ConnShared {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
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
