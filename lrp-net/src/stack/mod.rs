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
//! * A SYN for which there is room in the backlog (handshakes in progress plus
//!   connections waiting in the accept queue) gets a fresh `Interface` + `SocketSet` with
//!   one listening socket; the SYN is handed to it, and it answers. A SYN beyond the
//!   backlog is dropped and counted (`BacklogFull`), as Linux does with a full queue.
//!   Other segments of a handshake in progress (the final ACK, early data) arrive on the
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
//! host rule comes after the exact and listener rules, see [`lrp_core::demux`]). A
//! control interface without sockets answers ARP requests and echo requests, a TCP
//! segment to a closed port with a RST (a RST itself is not answered), and a UDP datagram
//! to a closed port with an ICMP port unreachable — what a peer expects from the owner of
//! an address, which the kernel, not having the address, could not give. Neighbours learned from ARP
//! go into a table shared by all the stack's interfaces (smoltcp keeps one cache per
//! interface and fills it only from ARP it receives): an endpoint interface is taught a
//! neighbour by a synthesized ARP reply injected into its own receive path when it first
//! hears from that neighbour, or when it sent an ARP request of its own. See
//! `neighbors.rs`. IPv6 is not configured.

mod cpu;
mod engine;
mod neighbors;
mod stats;
mod tcp;
mod udp;

use std::collections::HashSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lrp_core::account::{Account, AccountSnapshot};
use smoltcp::wire::EthernetAddress;

use crate::config::Mode;
use crate::error::{Error, Result};
use crate::nic::{Channel, Nic};
use crate::rule::Rule;
use cpu::CpuMeter;
use engine::Engine;
use neighbors::Neighbors;

pub use cpu::thread_cpu_ns;
pub use stats::SocketStats;
pub use tcp::{TcpListener, TcpStream, CONNECT_TIMEOUT};
pub use udp::UdpSocket;

/// What an IPv6 address gets from the stack.
pub(crate) const IPV4_ONLY: &str =
    "lrp's socket stack is IPv4-only (IPv6 frames can still be demultiplexed to raw channels)";

/// Who runs the shared poll step in [`Mode::Eager`] (ignored in the LRP modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EagerDriver {
    /// A dedicated thread of the stack runs it continuously, like interrupt-time
    /// processing; its CPU time is charged to the stack's eager account
    /// ([`Stack::eager_stats`]).
    #[default]
    Thread,
    /// No thread: every blocking socket call runs it before waiting, and is charged for
    /// all the frames it processes, whoever they were for.
    Callers,
}

/// Configuration of a [`Stack`]: [`StackConfig::new`] with the address, then chained
/// setters or the public fields. The MAC address and MTU default to the interface's
/// ([`Nic::mac`], [`Nic::mtu`]); [`Stack::new`] checks the whole configuration.
///
/// ```
/// use lrp_net::StackConfig;
/// use std::time::Duration;
///
/// let config = StackConfig::new("10.0.0.2".parse().unwrap(), 24)
///     .gateway("10.0.0.1".parse().unwrap())
///     .linger(Duration::from_secs(2));
/// assert_eq!(config.prefix_len, 24);
/// assert_eq!(config.mac, None); // the interface's own
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StackConfig {
    /// The stack's IPv4 address (lrp's stack is IPv4-only).
    pub ip: Ipv4Addr,
    /// The prefix length of its subnet.
    pub prefix_len: u8,
    /// The MAC address (`None`: the interface's, [`Nic::mac`]).
    pub mac: Option<EthernetAddress>,
    /// The default gateway for destinations outside the prefix.
    pub gateway: Option<Ipv4Addr>,
    /// The IP MTU (`None`: the interface's, [`Nic::mtu`], as far as a frame holds it).
    pub mtu: Option<usize>,
    /// Static neighbour entries.
    pub neighbors: Vec<(Ipv4Addr, EthernetAddress)>,
    /// Whether the stack runs its control and linger threads
    /// (see [`control_thread`](Self::control_thread)).
    pub control_thread: bool,
    /// Capacity of the host channel, in frames.
    pub host_capacity: usize,
    /// UDP: the most datagrams one receive processes ahead.
    pub udp_batch: usize,
    /// TCP receive buffer per connection, in bytes.
    pub tcp_rx_buffer: usize,
    /// TCP transmit buffer per connection, in bytes.
    pub tcp_tx_buffer: usize,
    /// Capacity of each TCP connection's own channel, in frames.
    pub conn_capacity: usize,
    /// How long a TCP handshake may stay incomplete.
    pub syn_timeout: Duration,
    /// How long a dropped TCP connection may take to close gracefully.
    pub linger: Duration,
    /// Who runs the shared poll step in EAGER mode.
    pub eager_driver: EagerDriver,
}

impl StackConfig {
    /// A stack at `ip`/`prefix_len`, with the interface's MAC address and MTU.
    pub fn new(ip: Ipv4Addr, prefix_len: u8) -> StackConfig {
        StackConfig {
            ip,
            prefix_len,
            mac: None,
            gateway: None,
            mtu: None,
            neighbors: Vec::new(),
            control_thread: true,
            host_capacity: 256,
            udp_batch: 32,
            tcp_rx_buffer: 64 * 1024,
            tcp_tx_buffer: 64 * 1024,
            conn_capacity: 256,
            syn_timeout: Duration::from_secs(10),
            linger: Duration::from_secs(5),
            eager_driver: EagerDriver::Thread,
        }
    }

    /// The stack's MAC address, if not the interface's own ([`Nic::mac`], the default):
    /// frames must be addressed to it to reach the stack.
    pub fn mac(mut self, mac: EthernetAddress) -> Self {
        self.mac = Some(mac);
        self
    }

    /// The default gateway for destinations outside the prefix.
    pub fn gateway(mut self, gateway: Ipv4Addr) -> Self {
        self.gateway = Some(gateway);
        self
    }

    /// The IP MTU (default: the interface's, [`Nic::mtu`], or less if the NIC's frames
    /// are smaller).
    pub fn mtu(mut self, mtu: usize) -> Self {
        self.mtu = Some(mtu);
        self
    }

    /// A static neighbour entry: `ip` is at `mac` (no ARP needed for it).
    pub fn neighbor(mut self, ip: Ipv4Addr, mac: EthernetAddress) -> Self {
        self.neighbors.push((ip, mac));
        self
    }

    /// Whether the stack runs a control thread (default on) that answers ARP, ICMP and
    /// closed ports on the host channel, and a linger thread that closes dropped TCP
    /// connections in the background. Without them, ARP is answered only when sockets
    /// run [`Stack::poll_control`] (they do when they need a neighbour) or the
    /// application calls it, and dropping a `TcpStream` lingers in the dropping thread.
    /// In EAGER mode with [`EagerDriver::Thread`] the eager poll thread does this work
    /// instead, and this setting is ignored.
    pub fn control_thread(mut self, enabled: bool) -> Self {
        self.control_thread = enabled;
        self
    }

    /// Capacity of the host channel (ARP, ICMP, UDP/TCP to closed ports), in frames
    /// (default 256).
    pub fn host_capacity(mut self, frames: usize) -> Self {
        self.host_capacity = frames;
        self
    }

    /// UDP: the most datagrams one receive processes ahead into the socket buffer in the
    /// LRP modes (default 32); amortizes the CPU-time measurement.
    pub fn udp_batch(mut self, datagrams: usize) -> Self {
        self.udp_batch = datagrams;
        self
    }

    /// TCP socket buffer sizes in bytes (default 64 KiB each).
    pub fn tcp_buffers(mut self, rx: usize, tx: usize) -> Self {
        self.tcp_rx_buffer = rx;
        self.tcp_tx_buffer = tx;
        self
    }

    /// Capacity of each TCP connection's own channel, in frames (default 256).
    pub fn conn_capacity(mut self, frames: usize) -> Self {
        self.conn_capacity = frames;
        self
    }

    /// How long a TCP handshake may stay incomplete before its slot in the backlog is
    /// freed (default 10 s).
    pub fn syn_timeout(mut self, timeout: Duration) -> Self {
        self.syn_timeout = timeout;
        self
    }

    /// How long a dropped TCP connection may take to close gracefully before it is
    /// aborted with a RST (default 5 s).
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// Who runs the shared poll step in EAGER mode (default: a thread).
    pub fn eager_driver(mut self, driver: EagerDriver) -> Self {
        self.eager_driver = driver;
        self
    }
}

/// The validated configuration the stack runs with.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub(crate) ip: Ipv4Addr,
    pub(crate) prefix_len: u8,
    mask: u32,
    pub(crate) mac: [u8; 6],
    pub(crate) gateway: Option<Ipv4Addr>,
    pub(crate) mtu: usize,
    pub(crate) udp_batch: usize,
    pub(crate) tcp_rx_buffer: usize,
    pub(crate) tcp_tx_buffer: usize,
    pub(crate) conn_capacity: usize,
    pub(crate) syn_timeout: Duration,
    pub(crate) linger: Duration,
    pub(crate) eager_driver: EagerDriver,
    pub(crate) control_thread: bool,
}

impl Resolved {
    /// Whether `ip` is on the stack's subnet (reachable without the gateway).
    pub(crate) fn on_link(&self, ip: Ipv4Addr) -> bool {
        (u32::from(ip) ^ u32::from(self.ip)) & self.mask == 0
    }

    /// The largest UDP payload of one frame.
    pub(crate) fn max_udp_payload(&self) -> usize {
        self.mtu - 20 - 8
    }
}

/// Bytes the kernel keeps in front of a received frame in its chunk
/// (`XDP_PACKET_HEADROOM`): a received frame must fit in the rest.
const KERNEL_RX_HEADROOM: usize = 256;

fn resolve(config: &StackConfig, nic: &Nic) -> Result<Resolved> {
    let ip = config.ip;
    if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || ip.is_loopback() {
        return Err(Error::InvalidConfig(
            "the address must be a unicast IPv4 address",
        ));
    }
    if config.prefix_len == 0 || config.prefix_len > 32 {
        return Err(Error::InvalidConfig("the prefix length must be 1 to 32"));
    }
    let mac = config.mac.unwrap_or(nic.mac()).0;
    if !EthernetAddress(mac).is_unicast() {
        return Err(Error::InvalidConfig("the MAC address must be unicast"));
    }
    let mask = u32::MAX << (32 - u32::from(config.prefix_len));
    if let Some(gw) = config.gateway {
        if (u32::from(gw) ^ u32::from(ip)) & mask != 0 || gw == ip {
            return Err(Error::InvalidConfig(
                "the gateway must be another address on the subnet",
            ));
        }
    }
    let nic_cfg = nic.config();
    let chunk = nic_cfg.frame_size as usize;
    let room = chunk
        .saturating_sub(nic_cfg.headroom as usize)
        .saturating_sub(KERNEL_RX_HEADROOM)
        .saturating_sub(14);
    let mtu = config.mtu.unwrap_or((nic.mtu() as usize).min(room));
    if mtu < 576 || mtu > room {
        return Err(Error::InvalidConfig(
            "the MTU must be at least 576 and fit in the NIC's frames",
        ));
    }
    if config.udp_batch == 0 || config.conn_capacity == 0 || config.host_capacity == 0 {
        return Err(Error::InvalidConfig(
            "batch and channel capacities must be non-zero",
        ));
    }
    if config.tcp_rx_buffer < 1024 || config.tcp_tx_buffer < 1024 {
        return Err(Error::InvalidConfig("TCP buffers must hold at least 1 KiB"));
    }
    Ok(Resolved {
        ip,
        prefix_len: config.prefix_len,
        mask,
        mac,
        gateway: config.gateway,
        mtu,
        udp_batch: config.udp_batch,
        tcp_rx_buffer: config.tcp_rx_buffer,
        tcp_tx_buffer: config.tcp_tx_buffer,
        conn_capacity: config.conn_capacity,
        syn_timeout: config.syn_timeout,
        linger: config.linger,
        eager_driver: config.eager_driver,
        control_thread: config.control_thread,
    })
}

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

/// Ports in use on the stack.
#[derive(Debug, Default)]
struct Ports {
    udp: HashSet<u16>,
    tcp_listen: HashSet<u16>,
    tcp_active: HashSet<(u16, SocketAddrV4)>,
    next_ephemeral: u16,
}

const EPHEMERAL: std::ops::RangeInclusive<u16> = 49152..=65535;

/// A TCP connection closing in the background.
pub(crate) trait Lingering: Send + Sync {
    /// Drive the close; `true` when done (closed, or aborted at the deadline).
    fn linger_step(&self, now: Instant) -> bool;
    /// Abort at once (the stack is going away).
    fn abort(&self);
}

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

    /// Run the control path once if no other thread is running it: learn neighbours
    /// from ARP, let the control interface answer ARP and ICMP. Charges the control
    /// channel's account unless `inline` (then the caller's meter covers it).
    fn poll_control_charged(&self, charge: bool) -> usize {
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

    /// Open a channel for an endpoint of this stack.
    pub(crate) fn channel(&self, rule: Rule, capacity: usize) -> Result<Channel> {
        self.nic.channel(rule, capacity)
    }

    /// Check that `addr` is this stack's (or unspecified) and IPv4; returns the port.
    pub(crate) fn local_port(&self, addr: SocketAddr) -> Result<u16> {
        match addr {
            SocketAddr::V4(a) if a.ip().is_unspecified() || *a.ip() == self.cfg.ip => Ok(a.port()),
            SocketAddr::V4(_) => Err(Error::AddrNotAvailable(addr)),
            SocketAddr::V6(_) => Err(Error::Unsupported(IPV4_ONLY)),
        }
    }

    pub(crate) fn claim_udp(&self, port: u16) -> Result<u16> {
        let mut ports = lock(&self.ports);
        if port == 0 {
            return pick_udp(&mut ports);
        }
        if !ports.udp.insert(port) {
            return Err(Error::AddrInUse(SocketAddr::V4(SocketAddrV4::new(
                self.cfg.ip,
                port,
            ))));
        }
        Ok(port)
    }

    pub(crate) fn release_udp(&self, port: u16) {
        lock(&self.ports).udp.remove(&port);
    }

    pub(crate) fn claim_tcp_listen(&self, port: u16) -> Result<()> {
        if port == 0 {
            return Err(Error::InvalidConfig("a TCP listener needs a port"));
        }
        if !lock(&self.ports).tcp_listen.insert(port) {
            return Err(Error::AddrInUse(SocketAddr::V4(SocketAddrV4::new(
                self.cfg.ip,
                port,
            ))));
        }
        Ok(())
    }

    pub(crate) fn release_tcp_listen(&self, port: u16) {
        lock(&self.ports).tcp_listen.remove(&port);
    }

    /// An ephemeral port for a connection to `remote`.
    pub(crate) fn claim_tcp_active(&self, remote: SocketAddrV4) -> Result<u16> {
        let mut ports = lock(&self.ports);
        let span = u32::from(*EPHEMERAL.end() - *EPHEMERAL.start()) + 1;
        for _ in 0..span {
            let p = advance(&mut ports.next_ephemeral);
            if !ports.tcp_listen.contains(&p) && !ports.tcp_active.contains(&(p, remote)) {
                ports.tcp_active.insert((p, remote));
                return Ok(p);
            }
        }
        Err(Error::NoEphemeralPort)
    }

    pub(crate) fn release_tcp_active(&self, port: u16, remote: SocketAddrV4) {
        lock(&self.ports).tcp_active.remove(&(port, remote));
    }
}

/// A random seed: std's per-process random hasher keys (from the OS) mixed with `n`.
fn random_seed(n: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(n);
    h.finish()
}

/// A port of the ephemeral range chosen by `seed`.
fn first_ephemeral(seed: u64) -> u16 {
    let span = u64::from(*EPHEMERAL.end() - *EPHEMERAL.start()) + 1;
    // `seed % span` < span <= 16384: the sum stays within the range.
    *EPHEMERAL.start() + (seed % span) as u16
}

fn advance(next: &mut u16) -> u16 {
    if !EPHEMERAL.contains(next) {
        *next = *EPHEMERAL.start();
    }
    let p = *next;
    *next = if p == *EPHEMERAL.end() {
        *EPHEMERAL.start()
    } else {
        p + 1
    };
    p
}

fn pick_udp(ports: &mut Ports) -> Result<u16> {
    let span = u32::from(*EPHEMERAL.end() - *EPHEMERAL.start()) + 1;
    for _ in 0..span {
        let p = advance(&mut ports.next_ephemeral);
        if ports.udp.insert(p) {
            return Ok(p);
        }
    }
    Err(Error::NoEphemeralPort)
}

/// Stops and joins the stack's threads when the last handle goes.
struct Threads {
    inner: Arc<StackInner>,
    handles: Mutex<Vec<JoinHandle<()>>>,
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
    /// connections (handshakes in progress plus connections not yet accepted).
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

/// How often the linger thread looks at lingering connections.
const LINGER_SLICE: Duration = Duration::from_millis(1);

/// Most threads dropping released connections at once (see `StackInner::release`).
const MAX_RELEASERS: usize = 64;

fn control_loop(inner: &StackInner) {
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
fn linger_loop(inner: &StackInner) {
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

fn eager_loop(inner: &StackInner) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ephemeral_ports_start_anywhere_in_the_range_and_wrap() {
        assert_eq!(first_ephemeral(0), 49152);
        assert_eq!(first_ephemeral(16383), 65535);
        assert_eq!(first_ephemeral(16384), 49152);
        for seed in [1, 7777, u64::MAX] {
            assert!(EPHEMERAL.contains(&first_ephemeral(seed)));
        }
        let mut next = 65535;
        assert_eq!(advance(&mut next), 65535);
        assert_eq!(advance(&mut next), 49152);
        let mut unset = 0;
        assert_eq!(advance(&mut unset), 49152);
        assert_eq!(unset, 49153);
    }
}
