//! TCP: a listener with a real backlog, and streams each on their own NI channel and
//! smoltcp interface. The design and its trade-offs are in the [module docs](super).
//!
//! [`TcpStream`] is here; the state a connection shares with the listener and the stack's
//! threads is in `conn.rs`, the listener and its handshakes in `listener.rs`.

mod conn;
mod listener;

use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, SocketAddrV4};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lrp_core::flow::{FlowKey, Proto};
use smoltcp::socket::tcp::State;
use smoltcp::wire::{IpAddress, IpEndpoint, IpListenEndpoint};

use super::threads::Lingering;
use super::udp::cap;
use super::{lock, SocketStats, Stack, IPV4_ONLY};
use crate::rule::Rule;
use conn::{tcp_socket, ConnShared};

pub use listener::TcpListener;

/// How long [`TcpStream::connect`] waits for the handshake (Linux's default with its
/// six SYN retransmissions is about two minutes; 75 s is the classic BSD limit).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(75);

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
