//! UDP sockets: one NI channel (a listener rule on the port), one smoltcp interface with
//! one UDP socket.

use std::io;
use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lrp_core::account::DropReason;
use lrp_core::flow::Proto;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::udp;
use smoltcp::wire::{IpAddress, IpEndpoint};

use super::config::EagerDriver;
use super::engine::{Engine, StepIo};
use super::threads::{EagerEndpoint, Signal};
use super::{lock, SocketStats, Stack, StackInner, IPV4_ONLY};
use crate::error::{Error, Result};
use crate::nic::Channel;
use crate::rule::Rule;

/// Packet slots of the transmit buffer.
const TX_SLOTS: usize = 64;

struct UdpState {
    engine: Engine,
    handle: SocketHandle,
    /// Datagrams in smoltcp's receive buffer (each processed frame yields exactly one:
    /// fragments and IPv6 are refused before smoltcp sees them).
    queued: usize,
    /// Receive buffer slots.
    slots: usize,
}

struct UdpShared {
    stack: Arc<StackInner>,
    channel: Channel,
    local: SocketAddrV4,
    state: Mutex<UdpState>,
    signal: Signal,
    nonblocking: AtomicBool,
    read_timeout: Mutex<Option<Duration>>,
    delivered: AtomicU64,
    delivered_bytes: AtomicU64,
}

/// A UDP socket on a [`Stack`]: an LRP endpoint with its own NI channel and account.
///
/// In the LRP modes `recv_from` does the protocol work of the frames it takes (checksum
/// verification, UDP), on the caller's thread, charged to this socket. Methods take
/// `&self`, so one thread can receive while another sends.
pub struct UdpSocket {
    shared: Arc<UdpShared>,
    _stack: Stack,
}

impl std::fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpSocket")
            .field("local", &self.shared.local)
            .finish_non_exhaustive()
    }
}

impl UdpSocket {
    /// Bind at `addr` on `stack` with a channel of `capacity` frames. Same as
    /// [`Stack::udp_bind`].
    pub fn bind(stack: &Stack, addr: SocketAddr, capacity: usize) -> Result<UdpSocket, Error> {
        let inner = stack.inner();
        let port = inner.local_port(addr)?;
        let port = inner.claim_udp(port)?;
        let ip = inner.cfg.ip;
        let channel =
            match inner.channel(Rule::listener(Proto::Udp, IpAddr::V4(ip), port), capacity) {
                Ok(c) => c,
                Err(e) => {
                    inner.release_udp(port);
                    return Err(e);
                }
            };
        // LRP: a receive processes at most `udp_batch` frames ahead. EAGER: the socket
        // buffer is the endpoint queue where the baseline drops, as large as the channel.
        let slots = if inner.lazy() {
            inner.cfg.udp_batch
        } else {
            capacity.max(1)
        };
        let payload = inner.cfg.max_udp_payload();
        let rx = udp::PacketBuffer::new(
            vec![udp::PacketMetadata::EMPTY; slots],
            vec![0u8; (slots + 1) * payload],
        );
        let tx = udp::PacketBuffer::new(
            vec![udp::PacketMetadata::EMPTY; TX_SLOTS],
            vec![0u8; (TX_SLOTS + 1) * payload],
        );
        let mut socket = udp::Socket::new(rx, tx);
        let local = SocketAddrV4::new(ip, port);
        // The port is non-zero, so binding cannot fail.
        let _ = socket.bind(IpEndpoint::new(IpAddress::Ipv4(ip), port));
        let mut engine = inner.new_engine();
        let handle = engine.sockets.add(socket);
        let shared = Arc::new(UdpShared {
            stack: Arc::clone(inner),
            channel,
            local,
            state: Mutex::new(UdpState {
                engine,
                handle,
                queued: 0,
                slots,
            }),
            signal: Signal::default(),
            nonblocking: AtomicBool::new(false),
            read_timeout: Mutex::new(None),
            delivered: AtomicU64::new(0),
            delivered_bytes: AtomicU64::new(0),
        });
        let weak: std::sync::Weak<dyn EagerEndpoint> = Arc::downgrade(&shared) as _;
        inner.register_eager(weak);
        Ok(UdpSocket {
            shared,
            _stack: stack.clone(),
        })
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(SocketAddr::V4(self.shared.local))
    }

    /// Make `recv_from` and `send_to` return `WouldBlock` instead of waiting.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.shared
            .nonblocking
            .store(nonblocking, Ordering::Relaxed);
        Ok(())
    }

    /// Limit how long `recv_from` waits (`None`: forever). A zero duration is refused,
    /// as by `std::net::UdpSocket`.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        if timeout == Some(Duration::ZERO) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "zero timeout"));
        }
        *lock(&self.shared.read_timeout) = timeout;
        Ok(())
    }

    /// Receive one datagram: its length and sender. Blocks until one arrives (unless
    /// non-blocking, or the read timeout passes: `WouldBlock` / `TimedOut`). A datagram
    /// longer than `buf` is truncated, the rest discarded (as with BSD sockets).
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let timeout = *lock(&self.shared.read_timeout);
        let nonblocking = self.shared.nonblocking.load(Ordering::Relaxed);
        self.shared.recv(
            buf,
            if nonblocking {
                Some(Duration::ZERO)
            } else {
                timeout
            },
        )
    }

    /// Receive one datagram if one is ready (after processing what waits in the channel),
    /// or fail with `WouldBlock`.
    pub fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.shared.recv(buf, Some(Duration::ZERO))
    }

    /// Send one datagram to `target`. Returns the bytes sent. Waits for room in the
    /// socket's transmit buffer when it is full (`WouldBlock` if non-blocking).
    pub fn send_to(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize> {
        let nonblocking = self.shared.nonblocking.load(Ordering::Relaxed);
        self.shared.send(buf, target, nonblocking)
    }

    /// Process what waits in the channel without blocking (in the LRP modes): frames
    /// are verified and delivered into the socket buffer as room allows. Returns how
    /// many frames were taken.
    pub fn poll(&self) -> usize {
        let mut st = lock(&self.shared.state);
        self.shared.process(&mut st)
    }

    /// The socket's statistics.
    pub fn stats(&self) -> SocketStats {
        let s = &self.shared;
        SocketStats::from_channel(
            &s.channel,
            s.delivered.load(Ordering::Relaxed),
            s.delivered_bytes.load(Ordering::Relaxed),
        )
    }
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        self.shared.stack.release_udp(self.shared.local.port());
    }
}

impl UdpShared {
    /// LRP: take as many frames as the socket buffer has free slots and process them
    /// here, charging this socket. Returns frames taken.
    fn process(&self, st: &mut UdpState) -> usize {
        if !self.stack.lazy() {
            return 0;
        }
        let free = st.slots.saturating_sub(st.queued);
        if free == 0 {
            return 0;
        }
        let account = self.channel.account();
        let io = StepIo::channel(&self.channel, free);
        let out = st.engine.step(&self.stack, &io);
        st.queued += out.admitted;
        account.charge_cpu(out.cpu_ns);
        out.pulled
    }

    fn recv(&self, buf: &mut [u8], timeout: Option<Duration>) -> io::Result<(usize, SocketAddr)> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        loop {
            let seen;
            let arp_pending;
            {
                let mut st = lock(&self.state);
                if st.queued == 0 {
                    self.process(&mut st);
                }
                let handle = st.handle;
                let socket = st.engine.sockets.get_mut::<udp::Socket>(handle);
                if let Ok((data, meta)) = socket.recv() {
                    let n = data.len().min(buf.len());
                    buf[..n].copy_from_slice(&data[..n]);
                    let from = match meta.endpoint.addr {
                        IpAddress::Ipv4(a) => SocketAddr::new(IpAddr::V4(a), meta.endpoint.port),
                        IpAddress::Ipv6(a) => SocketAddr::new(IpAddr::V6(a), meta.endpoint.port),
                    };
                    st.queued = st.queued.saturating_sub(1);
                    self.delivered.fetch_add(1, Ordering::Relaxed);
                    self.delivered_bytes.fetch_add(n as u64, Ordering::Relaxed);
                    return Ok((n, from));
                }
                // Nothing was delivered although frames may be queued (all invalid, or
                // the count drifted): resynchronize the slot count.
                st.queued = 0;
                seen = self.signal.seq();
                arp_pending = st.engine.arp_pending();
            }
            let wait = time_left(deadline, timeout)?;
            // While the interface waits for a neighbour, come back soon to teach it.
            let wait = if arp_pending {
                cap(wait, Duration::from_millis(5))
            } else {
                wait
            };
            self.wait(seen, wait)?;
        }
    }

    fn send(&self, data: &[u8], target: SocketAddr, nonblocking: bool) -> io::Result<usize> {
        let SocketAddr::V4(target) = target else {
            return Err(io::Error::new(io::ErrorKind::Unsupported, IPV4_ONLY));
        };
        if data.len() > self.stack.cfg.max_udp_payload() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "datagram larger than the MTU (no IP fragmentation)",
            ));
        }
        if target.port() == 0 || target.ip().is_unspecified() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "unaddressable destination",
            ));
        }
        let to = IpEndpoint::new(IpAddress::Ipv4(*target.ip()), target.port());
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let seen;
            {
                let mut st = lock(&self.state);
                let handle = st.handle;
                let socket = st.engine.sockets.get_mut::<udp::Socket>(handle);
                let queued = socket.send_slice(data, to).is_ok();
                st.engine.egress_charged(&self.stack, &self.channel);
                if queued {
                    return Ok(data.len());
                }
                seen = self.signal.seq();
            }
            if nonblocking {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            // The buffer is full only while the neighbour is unresolved or the TX path is
            // exhausted: retry in short slices, for a bounded time.
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "transmit buffer full (neighbour unresolved?)",
                ));
            }
            self.stack.poll_control_inline();
            self.wait(seen, Some(Duration::from_millis(2)))?;
        }
    }

    /// Block until something may have changed for this socket: frames in its channel
    /// (LRP), a delivery by the eager poll step (EAGER), or `timeout`.
    fn wait(&self, seen: u64, timeout: Option<Duration>) -> io::Result<()> {
        wait_endpoint(&self.stack, &self.channel, &self.signal, seen, timeout)
    }
}

/// The time left until `deadline` (`None`: no deadline, wait without limit). Once it
/// has passed: `WouldBlock` for a zero `timeout` (a non-blocking call), else `TimedOut`.
pub(crate) fn time_left(
    deadline: Option<Instant>,
    timeout: Option<Duration>,
) -> io::Result<Option<Duration>> {
    match deadline {
        None => Ok(None),
        Some(d) => match d.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => Ok(Some(left)),
            _ if timeout == Some(Duration::ZERO) => Err(io::ErrorKind::WouldBlock.into()),
            _ => Err(io::ErrorKind::TimedOut.into()),
        },
    }
}

/// `min(wait, limit)`, where `None` means no limit.
pub(crate) fn cap(wait: Option<Duration>, limit: Duration) -> Option<Duration> {
    Some(wait.map_or(limit, |w| w.min(limit)))
}

/// How a socket waits, by mode: on its channel (LRP), on its signal from the eager poll
/// thread (EAGER, [`EagerDriver::Thread`]), or by running the eager step itself
/// ([`EagerDriver::Callers`]).
pub(crate) fn wait_endpoint(
    stack: &StackInner,
    channel: &Channel,
    signal: &Signal,
    seen: u64,
    timeout: Option<Duration>,
) -> io::Result<()> {
    if stack.lazy() {
        channel.wait(timeout).map_err(io::Error::from)?;
        return Ok(());
    }
    match stack.cfg.eager_driver {
        EagerDriver::Thread => {
            signal.wait(seen, timeout);
            Ok(())
        }
        EagerDriver::Callers => {
            if stack.eager_step_charged(channel.account()) == 0 && signal.seq() == seen {
                // Another thread (the control thread) may run the NIC's poll step and
                // leave frames in endpoint channels without waking the shared ring's
                // waiters: wait in short slices.
                let slice = cap(timeout, Duration::from_millis(1));
                stack.nic.wait_rx(slice).map_err(io::Error::from)?;
            }
            Ok(())
        }
    }
}

impl EagerEndpoint for UdpShared {
    fn eager_step(&self) -> usize {
        let mut st = lock(&self.state);
        let account = self.channel.account();
        let io = StepIo::channel(&self.channel, self.channel.capacity());
        let out = st.engine.step(&self.stack, &io);
        // The work is done; smoltcp dropped what did not fit in the socket buffer.
        let free = st.slots.saturating_sub(st.queued);
        let late = out.admitted.saturating_sub(free);
        st.queued += out.admitted - late;
        if late > 0 {
            account.record_drops(DropReason::EndpointFull, late as u64);
        }
        drop(st);
        if out.admitted > 0 {
            self.signal.notify();
        }
        out.pulled
    }
}
