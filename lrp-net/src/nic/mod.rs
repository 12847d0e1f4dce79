//! The NIC facade: [`Nic`], its [`NicConfig`] and [`Mode`], demux [`Rule`]s and the
//! endpoints' [`Channel`]s.
//!
//! A [`Nic`] is one (interface, queue) with its [`FramePool`]. Every endpoint — a
//! socket, a listener, a virtual service — asks it for a [`Channel`] with a [`Rule`] that
//! says which frames are its own; the channel is the endpoint's NI channel (its own
//! bounded queue, its own [`Account`]). What happens between the wire and the channel
//! depends on the [`Mode`]:
//!
//! * [`Mode::NiLrp`] — the NIC demultiplexes (the XDP program; on the simulated NIC, the
//!   injection itself) into the channel's own ring and drops at a closed gate before any
//!   copy.
//! * [`Mode::SoftLrp`] — one shared RX ring; the **poll step** classifies each frame and
//!   puts it on its channel, discarding it at once if that channel is full.
//! * [`Mode::Eager`] — the baseline: the poll step moves frames into one shared input
//!   queue and does the protocol work (classification, checksum verification, lookup) for
//!   every frame before queueing it to its endpoint, dropping only at a full endpoint
//!   queue.
//!
//! # Who runs the poll step
//!
//! [`Nic::poll_rx`] is the poll step. It moves frames from the shared RX ring to the
//! channels (SOFT-LRP, EAGER), re-evaluates the gates (NI-LRP), returns transmitted
//! frames to the pool and posts free frames for reception. At most one thread runs it at
//! a time (a lock). Either a dedicated thread calls it in a loop (with
//! [`Nic::wait_rx`] to sleep while idle), or nobody does and the receivers run it
//! themselves: [`Channel::try_recv`] runs it when its own channel is empty and
//! [`Channel::wait`] runs it before blocking, each only if no other thread is running it
//! (a `try_lock`), so receivers never wait for each other. In the LRP modes the step is
//! cheap (a classification and a lookup per frame); the protocol work happens later, on
//! the receiver's thread, and is charged to the receiver's account.
//!
//! ```
//! use lrp_net::sim::SimConfig;
//! use lrp_net::{Mode, Nic, NicConfig, Proto, Rule};
//!
//! let config = NicConfig::default().frame_count(256).mode(Mode::SoftLrp);
//! let (nic, peer) = Nic::sim(SimConfig::new(config))?;
//! let ch = nic.channel(Rule::listener(Proto::Udp, None, 9000), 64)?;
//!
//! assert!(peer.send_udp("10.0.0.1:5000".parse()?, "10.0.0.2:9000".parse()?, b"ping"));
//! let got = ch.try_recv().expect("demultiplexed to the channel");
//! assert!(got.ends_with(b"ping"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Locks
//!
//! Where the facade takes locks, in the order they may nest (a thread holding one may
//! take those below it, never those above):
//!
//! | lock | protects | held by | held across a system call? |
//! |---|---|---|---|
//! | `NicInner::control` (mutex) | rule and channel changes, one at a time | [`Nic::channel`], [`Channel::add_rule`], [`Channel::remove_rule`], closing a channel, [`Nic::set_default_action`] | yes: BPF map updates, AF_XDP socket open and close — which is why it is not the table lock |
//! | `NicInner::step` (mutex) | the poll step and its scratch batch | [`Nic::poll_rx`]; receivers and waiters through `try_lock` only | the backend's refill/reclaim (ring wake-ups) |
//! | `ChannelShared::rx_lock` (mutex, NI-LRP) | taking frames from a channel's ring, so its frames keep their order through the stash | the channel's receiver; the poll step through `try_lock` only | no |
//! | `NicInner::table` (rwlock) | the demux table, endpoints, channel states | read: the poll step, receivers moving soft channels' frames, stats; write: the in-memory part of a rule change | never |
//! | `ChannelShared::rules` (mutex) | a channel's list of rules | rule changes, [`Channel::rules`] | never |
//!
//! The SOFT-LRP demux step needs only the table's read lock, and nobody holds the table
//! for longer than an in-memory update: opening a channel in NI-LRP (an AF_XDP socket,
//! milliseconds in the kernel) or writing a BPF map never stalls the demux of other
//! channels. The backends' own locks (the AF_XDP TX socket, the fill ring owner) are
//! leaves below all of these.

mod channel;
mod rules;
mod state;
mod stats;
mod step;
mod wait;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use lrp_core::account::Account;
use lrp_core::channel::Endpoints;
use lrp_core::demux::{DefaultAction, Demux};
use lrp_core::eager::EagerPipeline;

use crate::backend::{af_xdp, Backend, BackendConfig};
use crate::config::{Mode, NicConfig};
use crate::error::Result;
use crate::pool::{Frame, FramePool};
use crate::rule::Rule;
use crate::sim::{SimBackend, SimConfig, SimPeer};
use crate::sys;
use state::{NicInner, RxPath, Table};
use wait::{at_most, deadline, remaining, Armed, Feeders, GATE_SLICE, SERVICE_SLICE};

pub use channel::Channel;
pub use state::Nic;
pub(crate) use stats::write_drops;
pub use stats::{Census, ChannelStats, NicStats};

impl fmt::Debug for Nic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Nic")
            .field("interface", &self.inner.ifname)
            .field("mode", &self.inner.config.mode)
            .field("channels", &self.inner.read_table().endpoints.len())
            .field("pool", &self.inner.pool)
            .finish()
    }
}

/// The backend's share of a NIC configuration.
fn backend_config(config: &NicConfig) -> BackendConfig {
    BackendConfig {
        queue: config.queue,
        ni: config.mode == Mode::NiLrp,
        rx_ring: config.rx_ring,
        tx_ring: config.tx_ring,
        fill_ring: config.fill_ring,
        completion_ring: config.completion_ring,
        // At most half the pool, so that the other half stays for channels, the
        // application and TX.
        fill_target: config.fill_ring.min(config.frame_count / 2).max(1) as usize,
        attach: config.attach,
        default_action: config.default_action,
        gates: config.gate,
        ni_slots: config.ni_slots,
    }
}

/// The interface a NIC was opened on.
struct Interface {
    name: Option<String>,
    mac: Option<smoltcp::wire::EthernetAddress>,
    mtu: u32,
}

impl Nic {
    /// A NIC on the simulated wire, and the peer that drives the wire: it injects frames
    /// and captures what the NIC transmits or hands to the host kernel. No privileges
    /// needed; the receive paths are the same as on a real interface.
    ///
    /// ```
    /// use lrp_net::{Nic, NicConfig};
    /// use lrp_net::sim::SimConfig;
    ///
    /// let (nic, peer) = Nic::sim(SimConfig::new(NicConfig::default().frame_count(64)))?;
    /// assert!(nic.census().is_conserved());
    /// # drop(peer);
    /// # Ok::<(), lrp_net::Error>(())
    /// ```
    pub fn sim(config: SimConfig) -> Result<(Nic, SimPeer)> {
        let nic = &config.nic;
        nic.validate()?;
        let pool = FramePool::new(nic.frame_count, nic.frame_size, nic.headroom)?;
        let backend = Arc::new(SimBackend::new(
            &backend_config(nic),
            config.kernel_log,
            pool,
        )?);
        let interface = Interface {
            name: None,
            mac: Some(config.mac),
            mtu: config.mtu,
        };
        let nic = Nic::from_backend(config.nic.clone(), interface, backend.clone())?;
        Ok((nic, SimPeer::new(backend, config.mac)))
    }

    /// Open queue [`config.queue`](NicConfig::queue) of interface `ifname` with AF_XDP.
    ///
    /// **Call it on a thread in the interface's network namespace** (interface names and
    /// AF_XDP sockets are per namespace). The returned `Nic` and its channels may then be
    /// used from any thread; channels opened later from a thread in another namespace
    /// create their sockets in the NIC's namespace (which needs `CAP_SYS_ADMIN`).
    ///
    /// What it sets up (see [`crate::xdp`]): a [`FramePool`] of `frame_count` frames whose
    /// area is the AF_XDP UMEM, the fill/completion rings of the queue (sized to hold every
    /// frame), a TX socket, the demux program with this NIC's maps and, for
    /// [`Mode::SoftLrp`] and [`Mode::Eager`], the shared RX socket. In [`Mode::NiLrp`]
    /// every [`channel`](Self::channel) gets its own socket (RX ring of the channel's
    /// capacity) and gate, while the program's [`NicConfig::ni_slots`] slots last (then
    /// exact-rule channels are soft channels, see [`channel`](Self::channel)). The
    /// program is attached to the interface in [`NicConfig::attach`] mode through a
    /// per-interface dispatcher: one `Nic` per queue, any number of queues of one
    /// interface in one process. Frames that no rule claims take [`NicConfig::default_action`] in the program (`Pass`: the kernel keeps
    /// ARP, ICMP, ssh and every port lrp does not serve). Dropping the last `Nic` handle
    /// and channel of an interface detaches the program (a BPF link: also when the
    /// process dies).
    ///
    /// # A multi-queue interface
    ///
    /// A NIC serves one queue; frames that arrive on other queues go to the kernel. To
    /// serve every queue, open one `Nic` per queue (each with its own pool and channels,
    /// typically one worker thread per queue) with the same rules on each: the hardware
    /// (RSS) picks the queue of each flow, and the flow's channel on that queue receives
    /// it. On veth, the receive queue of a frame is the sender's transmit queue (driver
    /// mode), which the sender's kernel picks per flow. Alternatively steer the traffic
    /// lrp serves to one queue (`ethtool -N`) or use one queue (`ethtool -L`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) for a bad configuration (a frame area that is not a
    /// whole number of pages: with 2048-byte frames the count must be even);
    /// [`Error::Pool`](crate::Error::Pool) if the frame area cannot be mapped; otherwise [`Error::Xdp`](crate::Error::Xdp) with
    /// the AF_XDP layer's reason and what to do about it: missing privileges
    /// ([`XdpError::PermissionDenied`](crate::xdp::XdpError::PermissionDenied) names the
    /// capability), no such interface in this thread's namespace, XDP not supported in the
    /// requested mode (or driver mode refused at this MTU), an MTU larger than a frame can
    /// receive, the locked-memory limit, a queue already bound by another UMEM (EBUSY:
    /// another `Nic` or program on this queue; since the kernel releases a closed socket's
    /// queue asynchronously, this is retried for half a second first), another XDP program
    /// on the interface.
    ///
    /// ```no_run
    /// use lrp_net::{Mode, Nic, NicConfig, Proto, Rule, XdpAttach};
    ///
    /// let config = NicConfig::default().mode(Mode::NiLrp).attach(XdpAttach::Skb);
    /// let nic = Nic::open("eth0", config)?;
    /// let dns = nic.channel(Rule::listener(Proto::Udp, None, 53), 1024)?;
    /// while let Some(frame) = dns.try_recv() {
    ///     // parse, answer in place, transmit ...
    /// #   drop(frame);
    /// }
    /// # Ok::<(), lrp_net::Error>(())
    /// ```
    pub fn open(ifname: &str, config: NicConfig) -> Result<Nic> {
        config.validate()?;
        let interface = Interface {
            name: Some(ifname.to_owned()),
            mac: Some(crate::xdp::interface_mac(ifname)?),
            mtu: crate::xdp::interface_mtu(ifname)?,
        };
        let pool = FramePool::new(config.frame_count, config.frame_size, config.headroom)?;
        let backend = af_xdp::open(ifname, &backend_config(&config), pool)?;
        Nic::from_backend(config, interface, Arc::new(backend))
    }

    /// Build a NIC over a backend: the seam where a backend plugs in.
    fn from_backend(
        config: NicConfig,
        interface: Interface,
        backend: Arc<dyn Backend>,
    ) -> Result<Nic> {
        let pool = backend.pool().clone();
        let path = match config.mode {
            Mode::NiLrp => RxPath::Ni(Feeders::new()?),
            Mode::SoftLrp => RxPath::Soft,
            Mode::Eager => RxPath::Eager(Box::new(EagerPipeline::new(config.eager_queue as usize))),
        };
        backend.sync_default(config.default_action)?;
        let full = backend.refill();
        let inner = NicInner {
            table: RwLock::new(Table {
                demux: Demux::new(config.default_action),
                endpoints: Endpoints::new(),
                channels: Vec::new(),
                listeners: HashMap::new(),
            }),
            ifname: interface.name,
            mac: interface.mac,
            mtu: interface.mtu,
            pool,
            backend,
            control: Mutex::new(()),
            path,
            account: Account::new(),
            rx_frames: AtomicU64::new(0),
            step: Mutex::new(Vec::with_capacity(config.batch)),
            starving: AtomicBool::new(!full),
            watch_gates: AtomicBool::new(false),
            soft_channels: AtomicUsize::new(0),
            soft_left: AtomicBool::new(false),
            epoch: Instant::now(),
            last_step: AtomicU64::new(0),
            config,
        };
        Ok(Nic {
            inner: Arc::new(inner),
        })
    }

    /// The interface's name (`None` on the simulated NIC).
    pub fn interface(&self) -> Option<&str> {
        self.inner.ifname.as_deref()
    }

    /// The interface's MAC address, read when the NIC was opened (on the simulated NIC,
    /// [`SimConfig::mac`]). [`Stack::new`](crate::Stack::new) uses it unless
    /// [`StackConfig::mac`](crate::StackConfig::mac) says otherwise.
    pub fn mac(&self) -> smoltcp::wire::EthernetAddress {
        self.inner
            .mac
            .unwrap_or(smoltcp::wire::EthernetAddress([0; 6]))
    }

    /// The interface's MTU (IP packet size), read when the NIC was opened (on the
    /// simulated NIC, [`SimConfig::mtu`]). [`Stack::new`](crate::Stack::new) uses it
    /// unless [`StackConfig::mtu`](crate::StackConfig::mtu) says otherwise.
    pub fn mtu(&self) -> u32 {
        self.inner.mtu
    }

    /// The receive path.
    pub fn mode(&self) -> Mode {
        self.inner.config.mode
    }

    /// The configuration the NIC was opened with.
    pub fn config(&self) -> &NicConfig {
        &self.inner.config
    }

    /// The frame pool (for allocating frames to transmit, or checking occupancy).
    pub fn pool(&self) -> &FramePool {
        &self.inner.pool
    }

    /// Open a channel for the frames `rule` selects, with room for `capacity` frames.
    /// The channel is an endpoint: its own queue, its own [`Account`]. In NI-LRP the
    /// capacity is rounded up to a power of two (the size of the channel's ring in the
    /// NIC); see [`Channel::capacity`].
    ///
    /// # NI-LRP: slots, then soft channels
    ///
    /// In NI-LRP a channel gets a slot in the NIC — its own ring and gate — while slots
    /// last ([`NicConfig::ni_slots`]). When none is left, a channel for an **exact** rule
    /// is opened as a *soft channel* ([`Channel::is_soft`], [`ChannelStats::soft`]): a
    /// bounded queue in the facade only, as in SOFT-LRP. The NIC does not know its rule
    /// and keeps delivering its frames to the channel whose rule claims them there (the
    /// listener's, the SYN, the source or the host channel); whoever takes frames from that ring — its
    /// receiver, or the poll step that the soft channel's own `recv`/`wait` run — moves
    /// them to the soft channel first, discarding early (counted as
    /// [`DropReason::SoftDiscard`](crate::DropReason::SoftDiscard)) when it is full. A soft channel keeps early
    /// demultiplexing, its own queue, lazy processing and accounting; what it loses is
    /// the NIC's gate (its frames are copied before they can be discarded) and, since its
    /// frames share the claiming channel's ring, some isolation from that channel.
    /// Its rules can only be exact rules. A soft channel is opened only if a listener,
    /// source or host rule of an NI channel claims the flow in the NIC; otherwise, and for other
    /// rules, the call fails with [`Error::NoChannelSlot`](crate::Error::NoChannelSlot).
    ///
    /// Errors: [`Error::RuleInUse`](crate::Error::RuleInUse) if another channel owns the rule,
    /// [`Error::InvalidRule`](crate::Error::InvalidRule) for a SYN rule on UDP, [`Error::InvalidConfig`](crate::Error::InvalidConfig) for a zero
    /// capacity, [`Error::NoChannelSlot`](crate::Error::NoChannelSlot) if an NI-LRP backend has no slot left and the
    /// channel cannot be soft (see above).
    pub fn channel(&self, rule: Rule, capacity: usize) -> Result<Channel> {
        let shared = self.inner.open_channel(rule, capacity)?;
        Ok(Channel::new(self.clone(), shared))
    }

    /// Close a channel: remove its rules and its endpoint; frames still queued go back to
    /// the pool. Returns its final statistics. (Dropping a [`Channel`] does the same.)
    pub fn remove_channel(&self, channel: Channel) -> ChannelStats {
        let stats = channel.stats();
        drop(channel);
        stats
    }

    /// A free frame to build a packet in, without a channel (a traffic generator, a
    /// forwarder's own frames). If the pool is empty, first runs the poll step to reclaim
    /// transmitted frames; `None` if there is still none.
    pub fn alloc(&self) -> Option<Frame> {
        let inner = &self.inner;
        inner.pool.alloc().or_else(|| {
            inner.try_step(0);
            inner.pool.alloc()
        })
    }

    /// Transmit a frame without a channel (counted in the NIC's own account,
    /// [`NicStats::account`]). A full TX ring drops the frame, counts it and returns
    /// [`Error::TxFull`](crate::Error::TxFull); a frame of another NIC's pool is refused
    /// ([`Error::ForeignFrame`](crate::Error::ForeignFrame)).
    pub fn transmit(&self, frame: Frame) -> Result<()> {
        let inner = &self.inner;
        if !inner.pool.owns(&frame) {
            return Err(crate::Error::ForeignFrame);
        }
        let len = frame.len();
        if inner.backend.transmit(frame) {
            inner.account.record_tx(len);
            Ok(())
        } else {
            inner
                .account
                .record_drop(lrp_core::account::DropReason::TxFull);
            Err(crate::Error::TxFull)
        }
    }

    /// The poll step, for up to `budget` frames: return transmitted frames to the pool,
    /// move received frames to their channels (SOFT-LRP: demux and early discard; EAGER:
    /// shared queue and protocol work; NI-LRP: re-evaluate the gates — the NIC already
    /// demultiplexed), then post free frames for reception. Returns how many frames it
    /// took from the shared RX ring (0 in NI-LRP). Waits if another thread is running it.
    pub fn poll_rx(&self, budget: usize) -> usize {
        self.inner.step(budget)
    }

    /// Block until the shared RX ring has frames for [`poll_rx`](Self::poll_rx), or until
    /// `timeout` (`None`: no limit). Returns whether frames are pending. For a dedicated
    /// poll thread in SOFT-LRP or EAGER: `loop { nic.wait_rx(None)?; nic.poll_rx(64); }`.
    /// While the pool is exhausted it returns after at most 1 ms, so that the loop's poll
    /// step refills the fill ring as frames are freed. In NI-LRP there is no shared ring:
    /// the call sleeps for `timeout` (or 1 ms if `None`), at most 100 µs while some
    /// channel's ring fills behind an open gate, and returns `false`, which paces a
    /// service loop that keeps the fill ring full and the gates current.
    pub fn wait_rx(&self, timeout: Option<Duration>) -> Result<bool> {
        let inner = &self.inner;
        if inner.config.mode == Mode::NiLrp {
            let slice = if inner.watch_gates.load(Ordering::Relaxed) {
                GATE_SLICE
            } else {
                SERVICE_SLICE
            };
            std::thread::sleep(timeout.map_or(slice, |t| t.min(slice)));
            return Ok(false);
        }
        let deadline = deadline(timeout);
        loop {
            let armed = Armed::new(inner.backend.rx_readiness());
            armed.consume();
            if inner.backend.rx_pending() {
                armed.finish(true);
                return Ok(true);
            }
            let Some(wait) = remaining(deadline) else {
                armed.finish(false);
                return Ok(false);
            };
            if inner.starving.load(Ordering::Relaxed) {
                // The pool is exhausted and frames freed elsewhere signal nothing: return
                // after a slice so that the caller's poll step can refill the fill ring.
                sys::poll_fds(&[armed.fd()], at_most(wait, SERVICE_SLICE))?;
                let pending = inner.backend.rx_pending();
                armed.finish(pending);
                return Ok(pending);
            }
            sys::poll_fds(&[armed.fd()], wait)?;
            armed.finish(false);
        }
    }

    /// Change the action for frames no rule claims. Fails only if the NIC refuses the
    /// update (AF_XDP: the BPF map write failed), leaving the action unchanged.
    pub fn set_default_action(&self, action: DefaultAction) -> Result<()> {
        self.inner.set_default_action(action)
    }

    /// Statistics of the NIC as a whole.
    pub fn stats(&self) -> NicStats {
        let inner = &self.inner;
        let table = inner.read_table();
        let mut account = inner.account.snapshot();
        let mut eager_backlog = 0;
        if let RxPath::Eager(eager) = &inner.path {
            account = account.plus(&eager.account().snapshot());
            eager_backlog = eager.backlog();
        }
        NicStats {
            mode: inner.config.mode,
            channels: table.endpoints.len(),
            soft_channels: inner.soft_channels.load(Ordering::Relaxed),
            rx_frames: inner.rx_frames.load(Ordering::Relaxed),
            account,
            eager_backlog,
            backend: inner.backend.stats(),
        }
    }

    /// Where every frame of the pool is. Exact at a quiescent point (no thread receiving,
    /// transmitting, injecting or polling), where [`Census::is_conserved`] must hold:
    /// lrp never loses a frame.
    ///
    /// ```
    /// # use lrp_net::{Nic, NicConfig};
    /// # use lrp_net::sim::SimConfig;
    /// let (nic, _peer) = Nic::sim(SimConfig::new(NicConfig::default().frame_count(64)))?;
    /// let held = nic.pool().alloc().unwrap();
    /// let c = nic.census();
    /// assert_eq!(c.held, 1);
    /// assert!(c.is_conserved());
    /// # drop(held);
    /// # Ok::<(), lrp_net::Error>(())
    /// ```
    pub fn census(&self) -> Census {
        let inner = &self.inner;
        let table = inner.read_table();
        let pool = inner.pool.census();
        let rings = inner.backend.census();
        let mut channels: usize = table.endpoints.iter().map(|e| e.channel().len()).sum();
        if let RxPath::Eager(eager) = &inner.path {
            channels += eager.backlog();
        }
        Census {
            total: pool.total,
            free: inner.pool.free_len(),
            fill: rings.fill,
            rx: rings.rx,
            channels,
            held: pool.held.saturating_sub(channels),
            tx: rings.tx,
            completion: rings.completion,
            pool,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::sim::build;
    use lrp_core::flow::Proto;
    use lrp_core::flow::TcpFlags;
    use std::net::{Ipv4Addr, SocketAddrV4};

    fn sim(mode: Mode) -> (Nic, SimPeer) {
        let config = NicConfig::default()
            .frame_count(256)
            .fill_ring(64)
            .rx_ring(64)
            .tx_ring(64)
            .completion_ring(64)
            .mode(mode);
        Nic::sim(SimConfig::new(config)).unwrap()
    }

    fn sa(ip: [u8; 4], port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::from(ip), port)
    }

    #[test]
    fn handles_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Nic>();
        check::<Channel>();
        check::<Frame>();
        check::<FramePool>();
        check::<SimPeer>();
    }

    #[test]
    fn config_validation() {
        let bad = NicConfig::default().rx_ring(100);
        assert!(matches!(
            Nic::sim(SimConfig::new(bad)),
            Err(Error::InvalidConfig(_))
        ));
        let bad = NicConfig::default().frame_size(1000);
        assert!(matches!(Nic::sim(SimConfig::new(bad)), Err(Error::Pool(_))));
        // 2048-byte frames must come in pairs (the UMEM is a whole number of pages).
        assert!(matches!(
            Nic::open("lo", NicConfig::default().frame_count(1001)),
            Err(Error::InvalidConfig(_))
        ));
    }

    #[test]
    fn rules_are_exclusive_and_released_on_drop() {
        let (nic, _peer) = sim(Mode::SoftLrp);
        let a = nic
            .channel(Rule::listener(Proto::Udp, None, 53), 8)
            .unwrap();
        assert!(matches!(
            nic.channel(Rule::listener(Proto::Udp, None, 53), 8),
            Err(Error::RuleInUse(_))
        ));
        // A SYN rule is a different rule for the same key.
        let syn = nic
            .channel(Rule::listener(Proto::Tcp, None, 80).syn_only(), 8)
            .unwrap();
        assert!(matches!(
            nic.channel(Rule::listener(Proto::Udp, None, 80).syn_only(), 8),
            Err(Error::InvalidRule { .. })
        ));
        assert!(matches!(
            nic.channel(Rule::host(Ipv4Addr::LOCALHOST.into()), 0),
            Err(Error::InvalidConfig(_))
        ));
        drop(a);
        let b = nic
            .channel(Rule::listener(Proto::Udp, None, 53), 8)
            .unwrap();
        assert_eq!(b.rules(), vec![Rule::listener(Proto::Udp, None, 53)]);
        drop(syn);
        assert_eq!(nic.stats().channels, 1);
        let table = nic.inner.read_table();
        assert_eq!(table.demux.listeners_len(), 1);
    }

    #[test]
    fn add_and_remove_rules() {
        let (nic, peer) = sim(Mode::SoftLrp);
        let ch = nic
            .channel(Rule::listener(Proto::Udp, None, 1000), 8)
            .unwrap();
        ch.add_rule(Rule::listener(Proto::Udp, None, 1001)).unwrap();
        assert!(matches!(
            ch.add_rule(Rule::listener(Proto::Udp, None, 1001)),
            Err(Error::RuleInUse(_))
        ));
        for port in [1000, 1001] {
            assert!(peer.inject(&build::udp_v4(
                sa([10, 0, 0, 1], 1),
                sa([10, 0, 0, 2], port),
                b""
            )));
        }
        let mut got = Vec::new();
        assert_eq!(ch.try_recv_batch(10, &mut got), 2);
        assert!(ch.remove_rule(&Rule::listener(Proto::Udp, None, 1001)));
        assert!(!ch.remove_rule(&Rule::listener(Proto::Udp, None, 1001)));
        assert!(peer.inject(&build::udp_v4(
            sa([10, 0, 0, 1], 1),
            sa([10, 0, 0, 2], 1001),
            b""
        )));
        assert!(ch.try_recv().is_none());
        assert_eq!(
            peer.take_kernel().len(),
            1,
            "unclaimed now: passed to the kernel"
        );
        drop(got);
        assert!(nic.census().is_conserved());
    }

    #[test]
    fn syn_rule_without_listener_takes_default_for_other_segments() {
        for mode in [Mode::SoftLrp, Mode::Eager, Mode::NiLrp] {
            let (nic, peer) = sim(mode);
            let syn = nic
                .channel(Rule::listener(Proto::Tcp, None, 80).syn_only(), 8)
                .unwrap();
            let c = sa([10, 0, 0, 1], 4000);
            let s = sa([10, 0, 0, 2], 80);
            assert!(peer.inject(&build::tcp_v4(c, s, TcpFlags::SYN, b"")));
            assert!(peer.inject(&build::tcp_v4(c, s, TcpFlags::ACK, b"")));
            nic.poll_rx(64);
            assert!(syn.try_recv().is_some(), "{mode:?}");
            assert!(syn.try_recv().is_none(), "{mode:?}");
            assert_eq!(
                peer.take_kernel().len(),
                1,
                "{mode:?}: ACK passed to the kernel"
            );
            assert!(nic.census().is_conserved());
        }
    }

    #[test]
    fn wait_times_out_and_wakes() {
        for mode in [Mode::SoftLrp, Mode::Eager, Mode::NiLrp] {
            let (nic, peer) = sim(mode);
            let ch = nic.channel(Rule::listener(Proto::Udp, None, 9), 8).unwrap();
            assert!(!ch.wait(Some(Duration::from_millis(5))).unwrap());
            let t = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                peer.inject(&build::udp_v4(
                    sa([10, 0, 0, 1], 1),
                    sa([10, 0, 0, 2], 9),
                    b"x",
                ))
            });
            assert!(ch.wait(Some(Duration::from_secs(10))).unwrap(), "{mode:?}");
            assert!(t.join().unwrap());
            assert!(ch.try_recv().is_some());
        }
    }

    #[test]
    fn wait_rx_sees_pending_frames() {
        let (nic, peer) = sim(Mode::SoftLrp);
        assert!(!nic.wait_rx(Some(Duration::from_millis(2))).unwrap());
        peer.inject(&build::udp_v4(
            sa([10, 0, 0, 1], 1),
            sa([10, 0, 0, 2], 9),
            b"x",
        ));
        assert!(nic.wait_rx(Some(Duration::from_secs(1))).unwrap());
        assert_eq!(nic.poll_rx(64), 1);
        assert_eq!(nic.stats().rx_frames, 1);
    }

    #[test]
    fn send_and_alloc() {
        let (nic, peer) = sim(Mode::SoftLrp);
        let ch = nic
            .channel(Rule::host(Ipv4Addr::new(10, 0, 0, 2).into()), 4)
            .unwrap();
        ch.send(b"raw bytes").unwrap();
        assert!(matches!(
            ch.send(&[0u8; 4096]),
            Err(Error::FrameTooLarge(_))
        ));
        assert_eq!(peer.take_tx(), vec![b"raw bytes".to_vec()]);
        let s = ch.stats();
        assert_eq!((s.tx_packets, s.tx_bytes), (1, 9));
        // Exhaust the pool: alloc reports None, and send reports it as an error.
        let held: Vec<Frame> = std::iter::from_fn(|| ch.alloc()).collect();
        assert!(!held.is_empty());
        assert!(matches!(ch.send(b"x"), Err(Error::PoolExhausted)));
        assert_eq!(nic.census().held, held.len());
        drop(held);
        assert!(nic.census().is_conserved());
    }

    #[test]
    fn the_nic_transmits_without_a_channel() {
        let (nic, peer) = sim(Mode::NiLrp);
        let mut frame = nic.alloc().unwrap();
        frame.copy_from(b"generated").unwrap();
        nic.transmit(frame).unwrap();
        assert_eq!(peer.take_tx(), vec![b"generated".to_vec()]);
        let s = nic.stats();
        assert_eq!((s.account.tx_packets, s.account.tx_bytes), (1, 9));
        let (other, _p) = sim(Mode::NiLrp);
        let foreign = other.alloc().unwrap();
        assert!(matches!(nic.transmit(foreign), Err(Error::ForeignFrame)));
        assert!(nic.census().is_conserved());
    }

    #[test]
    fn foreign_frames_are_refused() {
        let (nic_a, _pa) = sim(Mode::SoftLrp);
        let (nic_b, _pb) = sim(Mode::SoftLrp);
        let ch = nic_a
            .channel(Rule::listener(Proto::Udp, None, 1), 4)
            .unwrap();
        let f = nic_b.pool().alloc().unwrap();
        assert!(matches!(ch.transmit(f), Err(Error::ForeignFrame)));
        assert!(nic_b.census().is_conserved());
    }
}
