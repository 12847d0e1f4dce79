//! [`Channel`]: an endpoint's handle on its NI channel.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use lrp_core::account::{Account, DropReason};
use lrp_core::demux::ChannelId;

use super::state::{lock, ChannelShared, Nic};
use super::stats::ChannelStats;
use super::step::divert;
use super::wait::{at_most, deadline, remaining, Armed, GATE_SLICE, SERVICE_SLICE, STEP_SLICE};
use crate::backend::Readiness;
use crate::config::Mode;
use crate::error::{Error, Result};
use crate::pool::Frame;
use crate::rule::Rule;
use crate::sys;

/// An endpoint's handle on its NI channel: receive the frames its rules select, transmit
/// frames, read its statistics. `Send + Sync`; dropping it closes the channel.
///
/// A forwarding application (the director) takes frames from its channels, rewrites
/// them in place and transmits them without a copy:
///
/// ```
/// use lrp_net::sim::SimConfig;
/// use lrp_net::{Nic, NicConfig, Proto, Rule};
///
/// let (nic, peer) = Nic::sim(SimConfig::new(NicConfig::default().frame_count(128)))?;
/// let ch = nic.channel(Rule::listener(Proto::Udp, None, 7), 32)?;
/// peer.send_udp("10.0.0.1:1234".parse()?, "10.0.0.2:7".parse()?, b"reflect me");
///
/// // A reflector: swap the Ethernet addresses in place and send the frame back.
/// let mut frame = ch.try_recv().expect("demultiplexed here");
/// let (dst, src) = frame.split_at_mut(6);
/// dst.swap_with_slice(&mut src[..6]);
/// ch.transmit(frame)?;
///
/// let sent = peer.take_tx();
/// assert_eq!(sent.len(), 1);
/// assert!(sent[0].ends_with(b"reflect me"));
/// println!("{}", ch.stats()); // channel 0: rx 1 pkts 52 B, tx 1 pkts 52 B, ...
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Channel {
    nic: Nic,
    shared: Arc<ChannelShared>,
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("id", &self.shared.id)
            .field("rules", &*lock(&self.shared.rules))
            .field("queued", &self.len())
            .field("capacity", &self.capacity())
            .finish()
    }
}

impl Channel {
    pub(super) fn new(nic: Nic, shared: Arc<ChannelShared>) -> Channel {
        Channel { nic, shared }
    }

    /// The channel's id (as the demux and the NIC know it).
    pub fn id(&self) -> ChannelId {
        self.shared.id
    }

    /// The NIC this channel belongs to.
    pub fn nic(&self) -> &Nic {
        &self.nic
    }

    /// The rules that select this channel's frames.
    pub fn rules(&self) -> Vec<Rule> {
        lock(&self.shared.rules).clone()
    }

    /// Add a rule to this channel (for example an exact rule for a flow the endpoint
    /// accepted, or the solicited-node address of a host channel).
    ///
    /// Errors: [`Error::RuleInUse`](crate::Error::RuleInUse) if another channel owns the rule,
    /// [`Error::InvalidRule`](crate::Error::InvalidRule) for a SYN rule on UDP or a wider rule on a soft channel, and
    /// the NIC's refusal (a full BPF map) as [`Error::Xdp`](crate::Error::Xdp).
    pub fn add_rule(&self, rule: Rule) -> Result<()> {
        self.nic.inner.add_rule(&self.shared, rule)
    }

    /// Remove one of this channel's rules. Returns whether the channel had it.
    pub fn remove_rule(&self, rule: &Rule) -> bool {
        self.nic.inner.remove_rule(&self.shared, rule)
    }

    /// Maximum number of frames queued in the channel.
    pub fn capacity(&self) -> usize {
        match &self.shared.ni {
            Some(q) => q.capacity(),
            None => self.shared.endpoint.channel().capacity(),
        }
    }

    /// Frames waiting in the channel. (NI-LRP: frames in its ring that belong to soft
    /// channels count here until they are moved.)
    pub fn len(&self) -> usize {
        let queued = self.shared.endpoint.channel().len();
        match &self.shared.ni {
            Some(q) => q.len() + queued,
            None => queued,
        }
    }

    /// NI-LRP: whether this is a soft channel, opened when the NIC had no slot left: its
    /// frames reach it through the ring of the channel whose rule claims them in the NIC
    /// (see [`Nic::channel`]). Always `false` in the other modes.
    pub fn is_soft(&self) -> bool {
        self.shared.soft
    }

    /// NI-LRP: whether frames taken from this channel's ring must go through the soft
    /// channels' table first.
    fn diverts(&self) -> bool {
        self.shared.wide.load(Ordering::Relaxed)
            && self.nic.inner.soft_channels.load(Ordering::Relaxed) > 0
    }

    /// Whether no frame waits in the channel.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn pop(&self) -> Option<Frame> {
        let stash = self.shared.endpoint.channel();
        let Some(q) = &self.shared.ni else {
            return stash.pop();
        };
        let _taking = lock(&self.shared.rx_lock);
        if let Some(frame) = stash.pop() {
            return Some(frame);
        }
        if !self.diverts() {
            return q.recv();
        }
        let table = self.nic.inner.read_table();
        // Bounded: a ring's worth of soft channels' frames, then report none for now.
        for _ in 0..q.capacity() {
            if let Some(frame) = divert(&table, self.shared.id, q.recv()?) {
                return Some(frame);
            }
        }
        None
    }

    fn record_delivery(&self, packets: u64, bytes: u64) {
        let s = &self.shared;
        s.delivered_packets.fetch_add(packets, Ordering::Relaxed);
        s.delivered_bytes.fetch_add(bytes, Ordering::Relaxed);
        // The eager path counted its frames as received when it queued them.
        if self.nic.mode() != Mode::Eager {
            s.endpoint.account().record_rx_batch(packets, bytes);
        }
    }

    /// Take the next frame, without blocking. If the channel is empty, first runs the
    /// poll step (unless another thread is running it), which may bring frames here.
    /// (In NI-LRP on AF_XDP the step cannot bring frames, and receiving already keeps the
    /// fill ring and the gates current: an empty channel just returns `None`.) To block,
    /// call [`wait`](Self::wait) first.
    pub fn try_recv(&self) -> Option<Frame> {
        let frame = match self.pop() {
            Some(f) => f,
            None if self.step_brings_nothing() => return None,
            None => {
                self.nic.inner.try_step(self.nic.inner.config.batch)?;
                self.pop()?
            }
        };
        self.record_delivery(1, frame.len() as u64);
        Some(frame)
    }

    /// Take up to `max` frames into `out` (appended), without blocking; like
    /// [`try_recv`](Self::try_recv), runs the poll step if the channel is empty. Returns
    /// how many.
    pub fn try_recv_batch(&self, max: usize, out: &mut Vec<Frame>) -> usize {
        let start = out.len();
        let mut n = self.pop_batch(max, out);
        if n == 0
            && max > 0
            && !self.step_brings_nothing()
            && self
                .nic
                .inner
                .try_step(self.nic.inner.config.batch)
                .is_some()
        {
            n = self.pop_batch(max, out);
        }
        let bytes: usize = out[start..].iter().map(|f| f.len()).sum();
        if n > 0 {
            self.record_delivery(n as u64, bytes as u64);
        }
        n
    }

    /// Whether running the poll step for an empty channel is useless: in NI-LRP it cannot
    /// bring frames, and a backend whose receive path maintains the fill ring and the
    /// gates has nothing else for it to do.
    fn step_brings_nothing(&self) -> bool {
        self.shared.ni.is_some() && self.nic.inner.backend.ni_receive_maintains()
    }

    fn pop_batch(&self, max: usize, out: &mut Vec<Frame>) -> usize {
        let stash = self.shared.endpoint.channel();
        let Some(q) = &self.shared.ni else {
            return stash.pop_batch(max, |f| out.push(f));
        };
        let _taking = lock(&self.shared.rx_lock);
        let mut n = stash.pop_batch(max, |f| out.push(f));
        if n == max {
            return n;
        }
        if !self.diverts() {
            return n + q.recv_burst(max - n, out);
        }
        let table = self.nic.inner.read_table();
        let mut burst = Vec::new();
        // Bounded: a few bursts when soft channels' frames crowd out this channel's.
        for _ in 0..4 {
            if n == max || q.recv_burst(max - n, &mut burst) == 0 {
                break;
            }
            for frame in burst.drain(..) {
                if let Some(frame) = divert(&table, self.shared.id, frame) {
                    out.push(frame);
                    n += 1;
                }
            }
        }
        n
    }

    /// Block until the channel has a frame or `timeout` passes (`None`: no limit); returns
    /// whether it has one. Does not spin: it runs the poll step itself when nobody else
    /// is, then sleeps in `poll(2)` on the channel's readiness — an eventfd the poll step
    /// (or the simulated NIC) signals, or in NI-LRP on AF_XDP the channel's socket — and,
    /// in SOFT-LRP and EAGER, on the shared RX ring, so that it wakes up to run the step
    /// when frames arrive and no other thread does. A soft NI-LRP channel
    /// ([`is_soft`](Self::is_soft)) also sleeps on the rings its frames arrive in — one
    /// descriptor for all of them, however many — and its step moves them over.
    ///
    /// Errors: only a failing `poll(2)` ([`Error::Io`](crate::Error::Io)).
    pub fn wait(&self, timeout: Option<Duration>) -> Result<bool> {
        let inner = &self.nic.inner;
        let deadline = deadline(timeout);
        let shared_rx = inner.config.mode != Mode::NiLrp;
        let feeders = inner.feeders().filter(|_| self.shared.soft);
        // Immediate re-steps after a lost wake-up, bounded so that a ring that stays
        // pending (e.g. the pool is exhausted) falls back to sleeping in slices.
        let mut resteps = 0u32;
        loop {
            if !self.is_empty() {
                return Ok(true);
            }
            // NI-LRP on a backend whose receive path maintains the fill ring and gates:
            // the step only has to run now and then for the sleepers (at most every
            // STEP_SLICE); running it on every wait would cost more than the frames.
            let stepped = if self.step_brings_nothing() && inner.stepped_within(STEP_SLICE) {
                false
            } else {
                inner.try_step(inner.config.batch).is_some()
            };
            let own = Armed::new(match &self.shared.ni {
                Some(q) => q.readiness(),
                None => Readiness::Notifier(&self.shared.notifier),
            });
            // NI-LRP: the stash, filled by the poll step while it moves soft channels'
            // frames out of this channel's ring.
            let stash = self
                .shared
                .ni
                .is_some()
                .then(|| Armed::new(Readiness::Notifier(&self.shared.notifier)));
            let rx = shared_rx.then(|| Armed::new(inner.backend.rx_readiness()));
            own.consume();
            if let Some(stash) = &stash {
                stash.consume();
            }
            if let Some(rx) = &rx {
                rx.consume();
            }
            let finish = |ready: bool, own: Armed<'_>, stash: Option<Armed<'_>>| {
                own.finish(ready);
                if let Some(stash) = stash {
                    stash.finish(ready);
                }
            };
            if !self.is_empty() {
                finish(true, own, stash);
                return Ok(true);
            }
            let Some(mut wait) = remaining(deadline) else {
                return Ok(false);
            };
            // Frames may have arrived in the shared ring after our step and before the
            // `consume` above cleared its readiness: run the step again rather than sleep
            // on a signal that is already gone (a lost wake-up).
            let pending = shared_rx && inner.backend.rx_pending();
            if pending && stepped && resteps < 4 {
                resteps += 1;
                finish(false, own, stash);
                if let Some(rx) = rx {
                    rx.finish(false);
                }
                continue;
            }
            // Frames are pending in the shared ring but this thread could not run the
            // step: another thread is running it and will deliver; sleep on our own
            // readiness only, for a slice, in case it stops before reaching our frames.
            let rx_busy = pending;
            if rx_busy || inner.starving.load(Ordering::Relaxed) {
                wait = at_most(wait, SERVICE_SLICE);
            }
            // NI-LRP: another channel's ring is filling behind an open gate (its owner is
            // not reading); wake up soon to run the step that closes it.
            if !shared_rx && inner.watch_gates.load(Ordering::Relaxed) {
                wait = at_most(wait, GATE_SLICE);
            }
            // A soft channel sleeps on the feeder rings as well, unless its step could not
            // empty them (another thread holds the step or a ring, or an owner's stash is
            // full) or some feeder cannot be watched: then it re-runs the step after a
            // slice rather than wake up at once for frames it cannot take.
            let mut feeder_fd = None;
            if let Some(feeders) = feeders {
                if !stepped || inner.soft_left.load(Ordering::Relaxed) || feeders.has_unwatched() {
                    wait = at_most(wait, SERVICE_SLICE);
                } else {
                    feeder_fd = Some(feeders.fd());
                }
            }
            // At most four descriptors, whatever the number of feeders.
            let fds = [
                Some(own.fd()),
                stash.as_ref().map(Armed::fd),
                rx.as_ref().filter(|_| !rx_busy).map(Armed::fd),
                feeder_fd,
            ];
            let mut polled = [own.fd(); 4];
            let mut n = 0;
            for fd in fds.into_iter().flatten() {
                polled[n] = fd;
                n += 1;
            }
            sys::poll_fds(&polled[..n], wait)?;
            finish(false, own, stash);
            if let Some(rx) = rx {
                rx.finish(false);
            }
        }
    }

    /// Transmit a frame as it is (zero copy: the chunk goes to the TX ring), e.g. a frame
    /// received here and rewritten in place. If the TX ring is full the frame is dropped,
    /// counted, and [`Error::TxFull`](crate::Error::TxFull) returned.
    pub fn transmit(&self, frame: Frame) -> Result<()> {
        if !self.nic.inner.pool.owns(&frame) {
            return Err(Error::ForeignFrame);
        }
        let len = frame.len();
        let account = self.shared.endpoint.account();
        if self.nic.inner.backend.transmit(frame) {
            account.record_tx(len);
            Ok(())
        } else {
            account.record_drop(DropReason::TxFull);
            Err(Error::TxFull)
        }
    }

    /// A free frame to build a packet in (empty, after the pool's headroom). If the pool
    /// is empty, first runs the poll step to reclaim transmitted frames. `None` if there
    /// is still none.
    pub fn alloc(&self) -> Option<Frame> {
        self.nic.alloc()
    }

    /// Copy `data` into a fresh frame and transmit it.
    pub fn send(&self, data: &[u8]) -> Result<()> {
        let mut frame = self.alloc().ok_or(Error::PoolExhausted)?;
        frame.copy_from(data)?;
        self.transmit(frame)
    }

    /// The endpoint's account: the stack charges its lazy protocol work here
    /// ([`Account::charge_cpu`]) and records the drops it decides (bad checksum, backlog
    /// full, rejected). Received frames are counted by the channel: in the LRP modes
    /// when `recv` hands them out, in EAGER when the poll step queues them.
    pub fn account(&self) -> &Account {
        self.shared.endpoint.account()
    }

    /// The channel's statistics.
    pub fn stats(&self) -> ChannelStats {
        let s = &self.shared;
        let mut account = s.endpoint.account().snapshot();
        let (queued, capacity, gate_closings, ni) = match &s.ni {
            Some(q) => (
                q.len() + s.endpoint.channel().len(),
                q.capacity(),
                q.gate_closings(),
                q.drops(),
            ),
            None => {
                let c = s.endpoint.channel();
                (
                    c.len(),
                    c.capacity(),
                    c.counters().gate_closings,
                    Default::default(),
                )
            }
        };
        account.drops[DropReason::Gate.index()] += ni.gate;
        account.drops[DropReason::RingFull.index()] += ni.ring_full;
        ChannelStats {
            id: s.id,
            soft: s.soft,
            rx_packets: s.delivered_packets.load(Ordering::Relaxed),
            rx_bytes: s.delivered_bytes.load(Ordering::Relaxed),
            gate_drops: account.drops(DropReason::Gate),
            ring_full_drops: account.drops(DropReason::RingFull),
            kernel_drops: ni.other,
            soft_discards: account.drops(DropReason::SoftDiscard),
            endpoint_full_drops: account.drops(DropReason::EndpointFull),
            tx_packets: account.tx_packets,
            tx_bytes: account.tx_bytes,
            tx_drops: account.drops(DropReason::TxFull),
            cpu_ns: account.cpu_ns,
            queued,
            capacity,
            gate_closings: if s.ni.is_some() { gate_closings } else { 0 },
            account,
        }
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        self.nic.inner.close_channel(&self.shared);
    }
}
