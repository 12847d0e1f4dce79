//! One smoltcp `Interface` + `SocketSet` driven over an NI channel: the protocol engine
//! of one endpoint.
//!
//! The device boundary is smoltcp's `phy::Device`, in the shape of Rx/Tx tokens: an
//! `RxToken` is a received [`Frame`] (smoltcp reads the UMEM chunk in place), a `TxToken`
//! is a frame from [`Channel::alloc`] that smoltcp writes in place and that goes to the TX
//! ring with [`Channel::transmit`]: no copy on either side.
//!
//! [`Engine::step`] is the lazy protocol processing of LRP: it takes frames from the
//! endpoint's channel, verifies them ([`lrp_core::wire::verify`], drops counted by reason
//! on the endpoint's account), runs smoltcp's ingress on each, then its egress, and
//! returns. Whoever calls it does the work on their own thread; the caller measures the
//! CPU time and charges it (see [`super::cpu`]).

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use lrp_core::account::{Account, DropReason};
use lrp_core::flow::{self, Classification, Malformed};
use lrp_core::wire;
use smoltcp::iface::{Config, Interface, PollIngressSingleResult, PollResult, SocketSet};
use smoltcp::phy::{self, Checksum, ChecksumCapabilities, DeviceCapabilities, Medium};
use smoltcp::wire::{EthernetAddress, EthernetFrame, HardwareAddress, IpCidr};

use super::config::Resolved;
use super::cpu::CpuMeter;
use super::neighbors::{arp_reply_frame, arp_request_target};
use super::StackInner;
use crate::nic::Channel;
use crate::pool::Frame;

/// A frame waiting for smoltcp: received from the channel (verified), or synthesized
/// (an ARP reply that teaches the interface a neighbour).
#[derive(Debug)]
pub(crate) enum RxItem {
    /// A received frame, in its UMEM chunk.
    Frame(Frame),
    /// A frame made by the stack.
    Synth(Vec<u8>),
}

impl RxItem {
    fn bytes(&self) -> &[u8] {
        match self {
            RxItem::Frame(f) => f,
            RxItem::Synth(v) => v,
        }
    }
}

/// The receive token: one frame, read in place.
pub(crate) struct FrameRx(RxItem);

impl phy::RxToken for FrameRx {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(self.0.bytes())
        // The frame drops here: its chunk returns to the pool.
    }
}

/// The transmit token: a frame allocated from the pool, written in place by smoltcp,
/// queued on the TX ring.
pub(crate) struct FrameTx<'a> {
    channel: &'a Channel,
    frame: Option<Frame>,
    account: &'a Account,
    arp_wanted: &'a mut Option<Ipv4Addr>,
}

impl phy::TxToken for FrameTx<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let frame = self.frame.or_else(|| self.channel.alloc());
        match frame.and_then(|mut f| f.set_len(len).is_ok().then_some(f)) {
            Some(mut frame) => {
                let r = f(&mut frame[..]);
                if let Some(target) = arp_request_target(&frame) {
                    *self.arp_wanted = Some(target);
                }
                // A full TX ring drops the frame and counts it on the channel's account;
                // TCP retransmits, UDP loses the datagram as on any NIC.
                let _ = self.channel.transmit(frame);
                r
            }
            None => {
                // No free frame (or smoltcp asked for more than a chunk holds, which the
                // MTU setting rules out): smoltcp's consume cannot fail, so build the
                // packet in a scratch buffer and drop it, counted.
                let mut scratch = vec![0u8; len];
                let r = f(&mut scratch);
                self.account.record_drop(DropReason::TxFull);
                r
            }
        }
    }
}

/// The `phy::Device` of one step: frames staged for ingress, a channel for egress.
struct ChannelDevice<'a> {
    tx: &'a Channel,
    rx: &'a mut VecDeque<RxItem>,
    account: &'a Account,
    arp_wanted: &'a mut Option<Ipv4Addr>,
    mtu: usize,
}

fn capabilities(mtu: usize) -> DeviceCapabilities {
    let mut caps = DeviceCapabilities::default();
    caps.medium = Medium::Ethernet;
    caps.max_transmission_unit = mtu + 14;
    caps.max_burst_size = None;
    // Received checksums were verified by `Engine::admit` (with lrp-core, so each failure
    // is counted by reason); smoltcp computes them on transmit.
    let mut checksum = ChecksumCapabilities::default();
    checksum.ipv4 = Checksum::Tx;
    checksum.udp = Checksum::Tx;
    checksum.tcp = Checksum::Tx;
    checksum.icmpv4 = Checksum::Tx;
    checksum.icmpv6 = Checksum::Tx;
    caps.checksum = checksum;
    caps
}

impl phy::Device for ChannelDevice<'_> {
    type RxToken<'b>
        = FrameRx
    where
        Self: 'b;
    type TxToken<'b>
        = FrameTx<'b>
    where
        Self: 'b;

    fn receive(
        &mut self,
        _timestamp: smoltcp::time::Instant,
    ) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let item = self.rx.pop_front()?;
        // The reply token allocates its frame only if smoltcp answers (an ACK, a RST).
        let tx = FrameTx {
            channel: self.tx,
            frame: None,
            account: self.account,
            arp_wanted: self.arp_wanted,
        };
        Some((FrameRx(item), tx))
    }

    fn transmit(&mut self, _timestamp: smoltcp::time::Instant) -> Option<Self::TxToken<'_>> {
        // No free frame: smoltcp keeps the data queued and retries on the next poll.
        let frame = self.tx.alloc()?;
        Some(FrameTx {
            channel: self.tx,
            frame: Some(frame),
            account: self.account,
            arp_wanted: self.arp_wanted,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        capabilities(self.mtu)
    }
}

/// A device that only describes capabilities, for `Interface::new`.
struct CapsOnly(usize);

impl phy::Device for CapsOnly {
    type RxToken<'b>
        = FrameRx
    where
        Self: 'b;
    type TxToken<'b>
        = FrameTx<'b>
    where
        Self: 'b;

    fn receive(
        &mut self,
        _timestamp: smoltcp::time::Instant,
    ) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        None
    }

    fn transmit(&mut self, _timestamp: smoltcp::time::Instant) -> Option<Self::TxToken<'_>> {
        None
    }

    fn capabilities(&self) -> DeviceCapabilities {
        capabilities(self.0)
    }
}

/// How long a neighbour taught to an interface is trusted before it is taught again
/// (smoltcp's own entries live 60 s and are refreshed by traffic from the neighbour).
const RETEACH_AFTER: Duration = Duration::from_secs(30);

/// The most neighbours one engine remembers having taught (smoltcp's cache holds 8).
const MAX_TAUGHT: usize = 64;

/// What one [`Engine::step`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StepOutcome {
    /// Frames taken from the channel.
    pub(crate) pulled: usize,
    /// Received frames that passed verification and were handed to smoltcp.
    pub(crate) admitted: usize,
    /// Frames smoltcp processed (admitted ones and synthesized ARP replies).
    pub(crate) ingested: usize,
    /// CPU nanoseconds this thread spent on the endpoint's work in the step (taking its
    /// frames off its channel, verification, smoltcp ingress and egress), not counting the
    /// NIC's poll step that `try_recv_batch` runs on an empty channel: the caller charges it to
    /// whom the work was for.
    pub(crate) cpu_ns: u64,
    /// Whether smoltcp reported a possible socket state change.
    pub(crate) changed: bool,
}

/// Where a step takes its frames from and sends its frames to.
pub(crate) struct StepIo<'a> {
    /// The channel to pull received frames from (`None`: only frames already staged with
    /// [`Engine::stage`]).
    pub(crate) source: Option<&'a Channel>,
    /// The channel whose TX path and pool carry the frames smoltcp sends.
    pub(crate) tx: &'a Channel,
    /// The account that drops found during verification are counted on.
    pub(crate) account: &'a Account,
    /// The most frames to pull from `source`.
    pub(crate) max_frames: usize,
}

impl<'a> StepIo<'a> {
    /// Pull up to `max_frames` from `channel`, transmit on it and count drops on its
    /// account: the usual step of a socket on its own channel.
    pub(crate) fn channel(channel: &'a Channel, max_frames: usize) -> StepIo<'a> {
        StepIo {
            source: Some(channel),
            tx: channel,
            account: channel.account(),
            max_frames,
        }
    }
}

/// One smoltcp interface and socket set, with the frames staged for it.
pub(crate) struct Engine {
    /// The interface (same IP and MAC as every other engine of the stack).
    pub(crate) iface: Interface,
    /// Its sockets (one, or none for the listener's reset responder).
    pub(crate) sockets: SocketSet<'static>,
    rx: VecDeque<RxItem>,
    arp_wanted: Option<Ipv4Addr>,
    taught: HashMap<Ipv4Addr, Instant>,
    scratch: Vec<Frame>,
    mtu: usize,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("staged", &self.rx.len())
            .field("arp_wanted", &self.arp_wanted)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// A fresh interface with the stack's addresses and no sockets.
    pub(crate) fn new(cfg: &Resolved, seed: u64, now: smoltcp::time::Instant) -> Engine {
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(cfg.mac)));
        config.random_seed = seed;
        let mut iface = Interface::new(config, &mut CapsOnly(cfg.mtu), now);
        iface.update_ip_addrs(|addrs| {
            // The stack validated the address and prefix; the list holds up to two.
            let _ = addrs.push(IpCidr::new(cfg.ip.into(), cfg.prefix_len));
        });
        if let Some(gw) = cfg.gateway {
            // The route table holds up to two entries and this is the only one.
            let _ = iface.routes_mut().add_default_ipv4_route(gw);
        }
        Engine {
            iface,
            sockets: SocketSet::new(Vec::new()),
            rx: VecDeque::new(),
            arp_wanted: None,
            taught: HashMap::new(),
            scratch: Vec::new(),
            mtu: cfg.mtu,
        }
    }

    /// Frames staged and not yet handed to smoltcp.
    pub(crate) fn staged(&self) -> usize {
        self.rx.len()
    }

    /// Whether the interface asked for a neighbour it does not know yet.
    pub(crate) fn arp_pending(&self) -> bool {
        self.arp_wanted.is_some()
    }

    /// Lazy validation of one received frame: classify, verify checksums, refuse what
    /// smoltcp could not use. Valid frames are staged (preceded, if needed, by an ARP
    /// reply that teaches the interface the sender's MAC); invalid ones are dropped and
    /// counted on `account` by reason. Returns whether the frame was staged.
    pub(crate) fn admit(&mut self, stack: &StackInner, frame: Frame, account: &Account) -> bool {
        let class = flow::classify(&frame);
        if let Err(reason) = wire::verify(&frame, &class) {
            account.record_drop(match reason {
                Malformed::BadChecksum => DropReason::BadChecksum,
                _ => DropReason::Malformed,
            });
            return false;
        }
        match class {
            Classification::Flow { key, offsets, .. } => {
                let IpAddr::V4(src) = key.src else {
                    // IPv6 is not configured on the stack's interfaces.
                    account.record_drop(DropReason::Rejected);
                    return false;
                };
                // smoltcp is built without IP reassembly: a first fragment would be
                // processed and silently dropped; count it here instead.
                let l3 = usize::from(offsets.l3);
                let frag = frame
                    .get(l3 + 6..l3 + 8)
                    .map(|b| b[0] & 0x3f != 0 || b[1] != 0);
                if frag != Some(false) {
                    account.record_drop(DropReason::Rejected);
                    return false;
                }
                self.glean(stack, src, &frame);
            }
            Classification::Arp { .. } | Classification::Icmp { .. } => {}
            _ => {
                account.record_drop(DropReason::Rejected);
                return false;
            }
        }
        self.rx.push_back(RxItem::Frame(frame));
        true
    }

    /// Stage a frame that was verified elsewhere (by the listener, for a connection still
    /// in its handshake), teaching the sender as [`admit`](Self::admit) does.
    pub(crate) fn stage_verified(&mut self, stack: &StackInner, src: Ipv4Addr, frame: Frame) {
        self.glean(stack, src, &frame);
        self.rx.push_back(RxItem::Frame(frame));
    }

    /// Make sure the interface knows the next hop towards `src` before it processes a
    /// frame from `src`, so that its answer does not wait for ARP. The shared table
    /// (filled from ARP by the control path) wins; otherwise the frame's own Ethernet
    /// source address is the next hop's MAC.
    fn glean(&mut self, stack: &StackInner, src: Ipv4Addr, frame: &[u8]) {
        let cfg = &stack.cfg;
        let hop = if cfg.on_link(src) {
            src
        } else {
            match cfg.gateway {
                Some(gw) => gw,
                None => return,
            }
        };
        let now = Instant::now();
        if self
            .taught
            .get(&hop)
            .is_some_and(|t| now.duration_since(*t) < RETEACH_AFTER)
        {
            return;
        }
        let mac = match stack.neighbors.get(hop) {
            Some(m) => m,
            None => match EthernetFrame::new_checked(frame) {
                Ok(eth) if eth.src_addr().is_unicast() => eth.src_addr(),
                _ => return,
            },
        };
        self.teach(stack, hop, mac, now);
    }

    fn teach(&mut self, stack: &StackInner, ip: Ipv4Addr, mac: EthernetAddress, now: Instant) {
        let cfg = &stack.cfg;
        if self.taught.len() >= MAX_TAUGHT && !self.taught.contains_key(&ip) {
            self.taught
                .retain(|_, t| now.duration_since(*t) < RETEACH_AFTER);
            if self.taught.len() >= MAX_TAUGHT {
                self.taught.clear();
            }
        }
        self.taught.insert(ip, now);
        let frame = arp_reply_frame(EthernetAddress(cfg.mac), cfg.ip, mac, ip);
        self.rx.push_back(RxItem::Synth(frame));
    }

    /// If the interface asked for a neighbour, teach it from the shared table. When the
    /// table does not know it yet, run the control path once (its channel may hold the
    /// ARP reply) and look again.
    fn resolve_wanted(&mut self, stack: &StackInner) {
        let Some(ip) = self.arp_wanted else { return };
        let mac = stack.neighbors.get(ip).or_else(|| {
            stack.poll_control_inline();
            stack.neighbors.get(ip)
        });
        if let Some(mac) = mac {
            self.arp_wanted = None;
            self.taught.remove(&ip);
            self.teach(stack, ip, mac, Instant::now());
        }
    }

    /// Pull up to `io.max_frames` frames from `io.source`, verify them, and run smoltcp
    /// ingress on everything staged, then egress. Does not measure or charge CPU time:
    /// the caller does (the receiving socket in the LRP modes, whoever runs the shared
    /// poll in EAGER).
    pub(crate) fn step(&mut self, stack: &StackInner, io: &StepIo<'_>) -> StepOutcome {
        let mut out = StepOutcome::default();
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut meter = None;
        if let Some(source) = io.source {
            if io.max_frames > 0 {
                // Taking the endpoint's own frames off its channel (its NI-LRP ring, its
                // soft channel) is the endpoint's work. On an empty channel `try_recv_batch`
                // runs the NIC's poll step for everybody instead, which is not: measure
                // only when frames are waiting (only this endpoint takes from its channel,
                // so they are still there).
                if !source.is_empty() {
                    meter = Some(CpuMeter::start());
                }
                out.pulled = source.try_recv_batch(io.max_frames, &mut scratch);
            }
        }
        let meter = meter.unwrap_or_else(CpuMeter::start);
        for frame in scratch.drain(..) {
            if self.admit(stack, frame, io.account) {
                out.admitted += 1;
            }
        }
        self.scratch = scratch;
        self.resolve_wanted(stack);
        out.changed |= self.drive(stack, io, &mut out.ingested);
        if self.arp_wanted.is_some() {
            // The egress just asked for a neighbour: the shared table may know it.
            self.resolve_wanted(stack);
            if !self.rx.is_empty() {
                out.changed |= self.drive(stack, io, &mut out.ingested);
            }
        }
        out.cpu_ns = meter.elapsed_ns();
        out
    }

    /// Ingress of every staged frame, then egress until smoltcp has nothing to send.
    fn drive(&mut self, stack: &StackInner, io: &StepIo<'_>, ingested: &mut usize) -> bool {
        let now = stack.now();
        let mut changed = false;
        let mut dev = ChannelDevice {
            tx: io.tx,
            rx: &mut self.rx,
            account: io.account,
            arp_wanted: &mut self.arp_wanted,
            mtu: self.mtu,
        };
        loop {
            match self
                .iface
                .poll_ingress_single(now, &mut dev, &mut self.sockets)
            {
                PollIngressSingleResult::None => break,
                PollIngressSingleResult::PacketProcessed => *ingested += 1,
                PollIngressSingleResult::SocketStateChanged => {
                    *ingested += 1;
                    changed = true;
                }
            }
        }
        // Bounded: every round sends at least one packet from a finite socket buffer, or
        // stops.
        for _ in 0..4096 {
            match self.iface.poll_egress(now, &mut dev, &mut self.sockets) {
                PollResult::None => break,
                PollResult::SocketStateChanged => changed = true,
            }
        }
        changed
    }

    /// Staged frames and egress only, without taking frames from a channel (after the
    /// application queued data, or for frames staged with [`stage_verified`]). Returns
    /// the CPU nanoseconds spent.
    ///
    /// [`stage_verified`]: Self::stage_verified
    pub(crate) fn egress(&mut self, stack: &StackInner, tx: &Channel, account: &Account) -> u64 {
        let io = StepIo {
            source: None,
            tx,
            account,
            max_frames: 0,
        };
        self.step(stack, &io).cpu_ns
    }

    /// [`egress`](Self::egress) on `channel`, charging the CPU time to its account.
    pub(crate) fn egress_charged(&mut self, stack: &StackInner, channel: &Channel) {
        let account = channel.account();
        let ns = self.egress(stack, channel, account);
        account.charge_cpu(ns);
    }

    /// How long until smoltcp wants to be polled again (a timer), if at all.
    pub(crate) fn poll_delay(&mut self, stack: &StackInner) -> Option<Duration> {
        let now = stack.now();
        self.iface
            .poll_delay(now, &self.sockets)
            .map(|d| Duration::from_micros(d.total_micros()))
    }
}
