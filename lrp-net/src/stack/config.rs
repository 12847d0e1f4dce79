//! The stack's configuration: [`StackConfig`] as the application writes it, and
//! [`Resolved`], the checked configuration the stack runs with ([`resolve`]).

use std::net::Ipv4Addr;
use std::time::Duration;

use smoltcp::wire::EthernetAddress;

use crate::error::{Error, Result};
use crate::nic::Nic;

/// Who runs the shared poll step in [`Mode::Eager`] (ignored in the LRP modes).
///
/// [`Mode::Eager`]: crate::Mode::Eager
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EagerDriver {
    /// A dedicated thread of the stack runs it continuously, like interrupt-time
    /// processing; its CPU time is charged to the stack's eager account
    /// ([`Stack::eager_stats`]).
    ///
    /// [`Stack::eager_stats`]: super::Stack::eager_stats
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
///
/// [`Stack`]: super::Stack
/// [`Stack::new`]: super::Stack::new
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
    /// The most TCP handshakes in progress per listener (its SYN queue); a SYN beyond
    /// it evicts the oldest.
    pub syn_backlog: usize,
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
            syn_backlog: 512,
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
    ///
    /// [`Stack::poll_control`]: super::Stack::poll_control
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

    /// The most TCP handshakes in progress per listener, its SYN queue (default 512).
    /// When a SYN arrives and the queue is full, the oldest handshake in progress is
    /// dropped silently to make room (counted in [`SocketStats::syn_evictions`]), so a
    /// SYN flood cannot lock legitimate clients out: a client whose final ACK arrives
    /// before `syn_backlog` newer SYNs have is served. Give it room beyond the
    /// listener's channel (2 × the accept backlog, at least 64 frames) for the SYNs
    /// that arrive within one round trip. Each handshake holds a socket with the TCP
    /// buffers ([`tcp_buffers`](Self::tcp_buffers)), so this also bounds the memory a
    /// flood can take. See the [module docs](super) on the backlog.
    ///
    /// [`SocketStats::syn_evictions`]: super::SocketStats::syn_evictions
    pub fn syn_backlog(mut self, handshakes: usize) -> Self {
        self.syn_backlog = handshakes;
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
    pub(crate) syn_backlog: usize,
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

pub(super) fn resolve(config: &StackConfig, nic: &Nic) -> Result<Resolved> {
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
    if config.udp_batch == 0
        || config.conn_capacity == 0
        || config.host_capacity == 0
        || config.syn_backlog == 0
    {
        return Err(Error::InvalidConfig(
            "batch, channel capacities and the SYN backlog must be non-zero",
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
        syn_backlog: config.syn_backlog,
        linger: config.linger,
        eager_driver: config.eager_driver,
        control_thread: config.control_thread,
    })
}
