//! Sockets over smoltcp with lazy receiver processing: UDP, TCP listen/accept/stream.
//!
//! A [`Stack`] owns one IPv4 address (and MAC) on a [`Nic`]. Every socket it opens is an
//! LRP endpoint: its own NI [`Channel`] chosen by a demux [`Rule`], its own smoltcp
//! `Interface` + `SocketSet` (the same address on each), and its own
//! [`Account`].
//!
//! ```text
//!  wire ─► NIC demux ─┬─► channel: UDP :9000  ─► UdpSocket::recv_from ─► smoltcp (iface A)
//!   (early demux,     ├─► channel: TCP :80    ─► TcpListener::accept  ─► handshakes (one iface each)
//!    early discard)   ├─► channel: 5-tuple #1 ─► TcpStream::read      ─► smoltcp (iface B)
//!                     ├─► channel: 5-tuple #2 ─► TcpStream::read      ─► smoltcp (iface C)
//!                     └─► channel: host (ARP, ICMP, ─► control thread ─► smoltcp (iface 0)
//!                           unclaimed UDP/TCP)
//! ```
//!
//! # Lazy protocol processing and accounting
//!
//! In [`Mode::NiLrp`] and [`Mode::SoftLrp`] a frame waits, unprocessed, in its endpoint's
//! channel until the endpoint's owner calls in: `recv_from`, `accept`, `read`, `write`.
//! That call takes the frames off the channel, verifies the checksums
//! ([`lrp_core::wire::verify`]; failures counted by reason on the endpoint's account) and
//! runs smoltcp's ingress and egress, on the caller's thread. The thread CPU time of that
//! work (`CLOCK_THREAD_CPUTIME_ID`, measured around each step, see [`thread_cpu_ns`]) is
//! charged to the endpoint's account, readable in [`SocketStats`]. Not charged: what the
//! call does for others — the NIC's poll step (refilling the NIC's buffers, moving other
//! endpoints' frames in SOFT-LRP), which a receiver runs when its channel is empty or
//! before it sleeps — and the copy of the data into the application's buffer, which is
//! the application's own work (measuring it would cost a clock read per datagram). A
//! flooded socket's excess is discarded at its own channel before any of this work, and
//! only its owner pays for the frames it does take.
//!
//! UDP processing is bounded by room: a receive takes at most as many frames off the
//! channel as the socket buffer has free slots, so smoltcp never drops a processed
//! datagram for lack of space (the drop, if any, is the channel's early discard). TCP
//! needs no such bound: smoltcp's receive window already limits what the peer sends.
//!
//! In [`Mode::Eager`] (the baseline) the same smoltcp work happens at poll time, for every
//! endpoint at once: a shared poll step ([`Stack::poll_eager`]) drains every channel into
//! the sockets' buffers and drops at a full socket buffer *after* the work (counted as
//! `EndpointFull`). Who pays is set by [`EagerDriver`]: a dedicated poll thread charges
//! the stack's eager account ([`Stack::eager_stats`], the analogue of interrupt time
//! billed to nobody), or with [`EagerDriver::Callers`] whichever socket call runs the
//! step is charged for everybody's frames (the 4.4BSD pathology: billed to whoever was
//! running). Either way an experiment sees where a flood's processing lands.
//!
//! # TCP: backlog and per-connection channels
//!
//! A smoltcp listening socket accepts exactly one connection and an established socket
//! cannot move between socket sets. [`TcpListener`] therefore does the listening itself:
//!
//! * Its channel (a listener rule on the port) receives the connection requests and every
//!   other segment for the port that no exact rule claims.
//! * Two queues, as in Linux. The **SYN queue** holds handshakes in progress, at most
//!   [`StackConfig::syn_backlog`] (default 512): a SYN gets a fresh `Interface` +
//!   `SocketSet` with one listening socket, is handed to it, and is answered at once.
//!   The **accept queue** holds completed connections not yet accepted, at most the
//!   listener's `backlog`; a SYN arriving while it is full is dropped and counted
//!   (`BacklogFull`), as Linux does, and a handshake that completes then waits in the
//!   SYN queue until `accept` makes room.
//! * **SYN floods.** When a SYN arrives and the SYN queue is full, the *oldest* handshake
//!   in progress is dropped, silently, to make room (counted in
//!   [`SocketStats::syn_evictions`]). Spoofed SYNs whose SYN-ACKs go nowhere therefore
//!   cannot lock legitimate clients out for the handshake timeout
//!   ([`StackConfig::syn_timeout`], 10 s), which is what a plain backlog did: a client's
//!   SYN is answered at once, and its handshake survives as long as its final ACK is
//!   processed before `syn_backlog` newer SYNs are. The limit is thus a flood rate of
//!   about `syn_backlog / (RTT + queueing)`: with 512 entries and 1 ms from SYN-ACK to
//!   the ACK's processing (round trip plus the SYNs queued ahead of it in the listener's
//!   channel, at most its capacity), 512k SYN/s; at 80k SYN/s a client has 6.4 ms. Past
//!   that (or when the listener's own processing cannot keep up and its channel
//!   overflows, which drops the client's segments as well as the flood's) clients need
//!   retransmissions. Memory stays bounded: at most `syn_backlog` handshakes, each an
//!   interface and a socket with its TCP buffers. SYN cookies (stateless, no queue to
//!   cycle) would remove the rate limit but need the handshake rebuilt from the final
//!   ACK inside smoltcp, which has no such entry point; eviction needs no change to it.
//!   Between sweeps every 5 ms (for SYN-ACK retransmission and expiry) only the
//!   handshakes that received a frame are run, so a large SYN queue costs nothing per
//!   SYN beyond the SYN's own handshake.
//! * Other segments of a handshake in progress (the final ACK, early data) arrive on the
//!   listener channel and are handed to that handshake's interface.
//! * When the handshake completes, the connection gets its **own channel** with an exact
//!   5-tuple rule and moves, with its interface, to the accept queue. From then on its
//!   frames bypass the listener: a SYN flood on the port fills only the listener's
//!   channel, and each connection's processing is charged to its own account.
//! * The exact channel is created only for completed handshakes, not for every SYN: in
//!   NI-LRP a channel is an AF_XDP socket, and a SYN flood must not create sockets.
//! * Segments not belonging to any handshake (an ACK for an unknown connection) are
//!   answered with a RST by a socket-less interface.
//!
//! The trade-offs, honestly:
//! * The handshake is the listener's work, done when the application calls
//!   [`TcpListener::accept`] (lazily, like everything else): a server must call `accept`
//!   from a thread of its own, or SYNs wait in the channel (and clients retransmit).
//! * Frames of a new connection that reached the listener's channel just before the
//!   connection's exact rule was installed are forwarded to the connection by the next
//!   `accept` call; during a short grace period after the handshake a connection waits
//!   in slices of at most 20 ms so it picks them up, and TCP retransmission covers the
//!   rest.
//! * One interface per connection costs memory (an `Interface` and two socket buffers)
//!   but keeps smoltcp's per-packet socket lookup trivial, which is the point of early
//!   demultiplexing.
//! * TCP timers (retransmission, delayed ACK) run when the connection's owner calls in.
//!   A dropped [`TcpStream`] closes gracefully in the background for at most
//!   [`StackConfig::linger`], then aborts: the stack's linger thread (or, in EAGER, the
//!   eager poll thread) drives it, charging the connection's account. The thread is
//!   woken when a connection starts lingering and then looks at the lingering
//!   connections every millisecond, stepping those with frames waiting or a timer due,
//!   so a connection is released (its channel — in NI-LRP a scarce NIC slot — freed)
//!   about as soon as the peer's last segment arrives. A connection in TIME-WAIT is
//!   released at once: a late retransmitted FIN is answered by the listener's RST
//!   responder (or, without a listener, the host channel's).
//!
//! # ARP, ICMP and closed ports
//!
//! The stack's host channel ([`Rule::host`]) receives ARP for and ICMP to its address,
//! and every UDP datagram or TCP segment to its address that no socket's rule claims (the
//! host rule comes after the exact, listener and source rules, see [`lrp_core::demux`]). A
//! control interface without sockets answers ARP requests and echo requests, a TCP
//! segment to a closed port with a RST (a RST itself is not answered), and a UDP datagram
//! to a closed port with an ICMP port unreachable — what a peer expects from the owner of
//! an address, which the kernel, not having the address, could not give. Neighbours learned from ARP
//! go into a table shared by all the stack's interfaces (smoltcp keeps one cache per
//! interface and fills it only from ARP it receives): an endpoint interface is taught a
//! neighbour by a synthesized ARP reply injected into its own receive path when it first
//! hears from that neighbour, or when it sent an ARP request of its own. See
//! `neighbors.rs`. IPv6 is not configured.

mod config;
mod cpu;
mod engine;
mod neighbors;
mod ports;
mod stats;
mod tcp;
mod threads;
mod udp;

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use lrp_core::account::{Account, AccountSnapshot};
use smoltcp::wire::EthernetAddress;

use crate::config::Mode;
use crate::error::Result;
use crate::nic::{Channel, Nic};
use crate::rule::Rule;
use config::{resolve, Resolved};
use engine::Engine;
use neighbors::Neighbors;
use ports::{first_ephemeral, Ports};
use threads::{control_loop, eager_loop, linger_loop, EagerEndpoint, Lingering, Signal, Threads};

pub use config::{EagerDriver, StackConfig};
pub use cpu::thread_cpu_ns;
pub use stats::SocketStats;
pub use tcp::{TcpListener, TcpStream, CONNECT_TIMEOUT};
pub use udp::UdpSocket;

/// What an IPv6 address gets from the stack.
pub(crate) const IPV4_ONLY: &str =
    "lrp's socket stack is IPv4-only (IPv6 frames can still be demultiplexed to raw channels)";

/// The state shared by the stack's handles, sockets and threads.
pub(crate) struct StackInner {
    pub(crate) nic: Nic,
    pub(crate) cfg: Resolved,
    pub(crate) neighbors: Neighbors,
    epoch: Instant,
    seed: AtomicU64,
    control_channel: Channel,
    control: Mutex<Engine>,
    ports: Mutex<Ports>,
    eager: Mutex<Vec<Weak<dyn EagerEndpoint>>>,
    eager_account: Account,
    lingering: Mutex<Vec<Arc<dyn Lingering>>>,
    /// Wakes the linger thread: a connection started lingering, or the stack stops.
    linger_signal: Signal,
    /// Threads dropping released connections now (see `StackInner::release`).
    releasers: Arc<AtomicUsize>,
    stop: AtomicBool,
}

impl std::fmt::Debug for StackInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("ip", &self.cfg.ip)
            .field("prefix_len", &self.cfg.prefix_len)
            .field("mode", &self.nic.mode())
            .finish_non_exhaustive()
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl StackInner {
    /// smoltcp's clock: microseconds since the stack started.
    pub(crate) fn now(&self) -> smoltcp::time::Instant {
        let us = self.epoch.elapsed().as_micros();
        smoltcp::time::Instant::from_micros(i64::try_from(us).unwrap_or(i64::MAX))
    }

    /// A fresh random seed for a new interface (TCP initial sequence numbers, IP ids).
    pub(crate) fn next_seed(&self) -> u64 {
        random_seed(self.seed.fetch_add(1, Ordering::Relaxed))
    }

    /// A new engine (interface without sockets) with the stack's addresses.
    pub(crate) fn new_engine(&self) -> Engine {
        Engine::new(&self.cfg, self.next_seed(), self.now())
    }

    /// The mode of the NIC.
    pub(crate) fn mode(&self) -> Mode {
        self.nic.mode()
    }

    /// Whether receive processing is lazy (NI-LRP, SOFT-LRP) rather than eager.
    pub(crate) fn lazy(&self) -> bool {
        self.nic.mode() != Mode::Eager
    }

    /// Open a channel for an endpoint of this stack.
    pub(crate) fn channel(&self, rule: Rule, capacity: usize) -> Result<Channel> {
        self.nic.channel(rule, capacity)
    }
}

/// A random seed: std's per-process random hasher keys (from the OS) mixed with `n`.
fn random_seed(n: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(n);
    h.finish()
}

/// A network stack on one [`Nic`]: an IPv4 address, its sockets, ARP and ICMP.
///
/// A cheap, cloneable handle; sockets keep the stack alive. See the
/// [module docs](self) for the design.
///
/// ```
/// use lrp_net::sim::SimConfig;
/// use lrp_net::{Nic, NicConfig, Stack, StackConfig};
///
/// let (nic, peer) = Nic::sim(SimConfig::new(NicConfig::default().frame_count(512)))?;
/// let stack = Stack::new(nic, StackConfig::new("10.0.0.2".parse()?, 24))?;
/// let sock = stack.udp_bind("10.0.0.2:9000".parse()?, 64)?;
///
/// peer.send_udp("10.0.0.1:5000".parse()?, "10.0.0.2:9000".parse()?, b"ping");
/// let mut buf = [0u8; 64];
/// let (n, from) = sock.recv_from(&mut buf)?; // verification + UDP processing run here
/// assert_eq!((&buf[..n], from), (&b"ping"[..], "10.0.0.1:5000".parse()?));
/// sock.send_to(b"pong", from)?;
/// assert_eq!(sock.stats().rx_packets, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Stack {
    inner: Arc<StackInner>,
    /// Keeps the stack's threads running while any handle or socket exists.
    _threads: Arc<Threads>,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

impl Stack {
    /// Open a stack on `nic` with `config`: opens the host channel for ARP, ICMP and
    /// unclaimed UDP/TCP to the stack's address and starts the control thread (and, in EAGER mode with
    /// [`EagerDriver::Thread`], the eager poll thread).
    pub fn new(nic: Nic, config: StackConfig) -> Result<Stack> {
        let cfg = resolve(&config, &nic)?;
        let control_channel = nic.channel(Rule::host(IpAddr::V4(cfg.ip)), config.host_capacity)?;
        let neighbors = Neighbors::new();
        for &(ip, mac) in &config.neighbors {
            neighbors.insert_static(ip, mac);
        }
        let epoch = Instant::now();
        let control = Engine::new(&cfg, random_seed(u64::MAX), smoltcp::time::Instant::ZERO);
        let inner = StackInner {
            nic,
            cfg,
            neighbors,
            epoch,
            seed: AtomicU64::new(0),
            control_channel,
            control: Mutex::new(control),
            ports: Mutex::new(Ports {
                // RFC 6056: start the ephemeral search at a random port, so that a new
                // stack (a restarted program) does not reuse the 4-tuples of its
                // predecessor, which peers may still hold in TIME-WAIT.
                next_ephemeral: first_ephemeral(random_seed(u64::MAX - 1)),
                ..Ports::default()
            }),
            eager: Mutex::new(Vec::new()),
            eager_account: Account::new(),
            lingering: Mutex::new(Vec::new()),
            linger_signal: Signal::default(),
            releasers: Arc::new(AtomicUsize::new(0)),
            stop: AtomicBool::new(false),
        };
        let inner = Arc::new(inner);
        let threads = Arc::new(Threads {
            inner: Arc::clone(&inner),
            handles: Mutex::new(Vec::new()),
        });
        let eager_thread =
            inner.mode() == Mode::Eager && inner.cfg.eager_driver == EagerDriver::Thread;
        if eager_thread {
            // The eager poll thread is the only one that runs the NIC's poll step (sockets
            // wait on their signals), so its wake-ups on the shared RX ring are reliable;
            // it also does the control path's work, like interrupt-time processing.
            let i = Arc::clone(&inner);
            let h = std::thread::Builder::new()
                .name("lrp-eager-poll".into())
                .spawn(move || eager_loop(&i))?;
            lock(&threads.handles).push(h);
        } else if inner.cfg.control_thread {
            let i = Arc::clone(&inner);
            let h = std::thread::Builder::new()
                .name("lrp-control".into())
                .spawn(move || control_loop(&i))?;
            lock(&threads.handles).push(h);
            let i = Arc::clone(&inner);
            let h = std::thread::Builder::new()
                .name("lrp-linger".into())
                .spawn(move || linger_loop(&i))?;
            lock(&threads.handles).push(h);
        }
        Ok(Stack {
            inner,
            _threads: threads,
        })
    }

    /// The NIC the stack runs on.
    pub fn nic(&self) -> &Nic {
        &self.inner.nic
    }

    /// The stack's IPv4 address.
    pub fn ip(&self) -> Ipv4Addr {
        self.inner.cfg.ip
    }

    /// The stack's MAC address.
    pub fn mac(&self) -> EthernetAddress {
        EthernetAddress(self.inner.cfg.mac)
    }

    /// The IP MTU the stack's interfaces use.
    pub fn mtu(&self) -> usize {
        self.inner.cfg.mtu
    }

    /// The receive path (from the NIC).
    pub fn mode(&self) -> Mode {
        self.inner.mode()
    }

    /// Bind a UDP socket at `addr` (the stack's address or unspecified; port 0 picks an
    /// ephemeral port) with a channel of `capacity` frames.
    pub fn udp_bind(&self, addr: SocketAddr, capacity: usize) -> Result<UdpSocket> {
        UdpSocket::bind(self, addr, capacity)
    }

    /// Listen for TCP connections at `addr` with an accept backlog of `backlog`
    /// connections not yet accepted (handshakes in progress are bounded by
    /// [`StackConfig::syn_backlog`]).
    pub fn tcp_listen(&self, addr: SocketAddr, backlog: usize) -> Result<TcpListener> {
        TcpListener::bind(self, addr, backlog)
    }

    /// Open a TCP connection to `remote` ([`TcpStream::connect`]: the same handshake
    /// timeout).
    pub fn tcp_connect(&self, remote: SocketAddr) -> io::Result<TcpStream> {
        TcpStream::connect(self, remote)
    }

    /// Open a TCP connection to `remote`, waiting at most `timeout` for the handshake
    /// ([`TcpStream::connect_timeout`]).
    pub fn tcp_connect_timeout(
        &self,
        remote: SocketAddr,
        timeout: Duration,
    ) -> io::Result<TcpStream> {
        TcpStream::connect_timeout(self, remote, timeout)
    }

    /// A raw channel on the stack's NIC, for forwarding applications (the director) that
    /// take frames chosen by `rule`, rewrite them in place and transmit them, without the
    /// stack's protocol processing.
    pub fn raw_channel(&self, rule: Rule, capacity: usize) -> Result<Channel> {
        self.inner.channel(rule, capacity)
    }

    /// Run the control path once (ARP, ICMP, closed ports), if no other thread is running it. Returns
    /// how many frames it took. Only needed without the control thread.
    pub fn poll_control(&self) -> usize {
        self.inner.poll_control_charged(true)
    }

    /// EAGER mode: run the shared poll step once — the NIC's poll step, then every
    /// endpoint's frames through smoltcp into the socket buffers — charging its CPU time
    /// to the stack's eager account. Returns how many frames it processed. A no-op
    /// returning 0 in the LRP modes.
    pub fn poll_eager(&self) -> usize {
        if self.inner.lazy() {
            return 0;
        }
        self.inner.eager_step_charged(&self.inner.eager_account)
    }

    /// The account of the EAGER shared poll step when run by the stack's thread or
    /// [`poll_eager`](Self::poll_eager): the CPU time spent on everybody's frames, not
    /// attributable to any socket. Zero in the LRP modes.
    pub fn eager_stats(&self) -> AccountSnapshot {
        self.inner.eager_account.snapshot()
    }

    /// Statistics of the host channel (ARP, ICMP, UDP/TCP to closed ports).
    pub fn control_stats(&self) -> SocketStats {
        SocketStats::from_channel(&self.inner.control_channel, 0, 0)
    }

    /// Neighbours known to the stack (learned from ARP or configured).
    pub fn neighbors(&self) -> Vec<(Ipv4Addr, EthernetAddress)> {
        self.inner.neighbors.snapshot().1
    }

    pub(crate) fn inner(&self) -> &Arc<StackInner> {
        &self.inner
    }
}
