//! Early demultiplexing: from a classified frame to the endpoint's channel, in O(1).
//!
//! LRP decides who a frame belongs to the moment it arrives, before any protocol work,
//! so that the frame can be queued on — or discarded from — that endpoint's own
//! [`NiChannel`](crate::channel::NiChannel). [`flow::classify`] does the one-pass parse;
//! [`Demux`] maps the resulting [`Classification`] to a [`Verdict`].
//!
//! # Tables and precedence
//!
//! A lookup consults, in this order, and the first hit wins:
//!
//! 1. **exact** — a 5-tuple entry keyed by the frame's [`FlowKey`] as seen on the wire
//!    (`src` = remote peer, `dst` = local address). Established TCP connections and
//!    connected UDP sockets live here.
//! 2. **new connection** — a TCP segment with SYN set and ACK clear
//!    ([`TcpFlags::is_syn_only`]) whose matching listener (the one step 3 would pick) has
//!    a [`Listener::syn_channel`]. A SYN flood then fills only that channel and is
//!    discarded early, while the listener's other traffic keeps its own channel.
//! 3. **listener** — `(proto, local address, local port)`; an entry for the frame's exact
//!    destination address beats a wildcard entry ([`ListenerKey::any`]).
//! 4. **source** — `(proto, remote address, remote port)` ([`SourceKey`]): UDP / TCP *from*
//!    a given peer endpoint, whatever its destination, that steps 1–3 leave unclaimed. This
//!    is how an LVS director in NAT mode receives its real servers' replies: they come
//!    from (real server address, real server port) and are addressed to the client, an
//!    address and port the director cannot enumerate in advance.
//! 5. **host** — ARP whose target address is a registered local address, ICMP / ICMPv6
//!    addressed to one, and UDP / TCP addressed to one that steps 1–4 leave unclaimed go to
//!    that address's host channel (the stack's control channel). An address registered
//!    here is owned by the lrp stack, not by the kernel: a TCP segment to a closed port
//!    must be answered with a RST and a UDP datagram with an ICMP port unreachable, and
//!    only the stack that owns the address can do that — passing them to a kernel that
//!    does not have the address configured would leave the peer waiting for a timeout.
//! 6. **default** — [`DefaultAction`]: hand the frame to the kernel, or drop it.
//!
//! ## Why the source rule sits between listeners and hosts
//!
//! *After the listeners*: a listener is keyed by the frame's destination, a local
//! endpoint, and says "this is addressed to me"; a source rule says "whatever it is
//! addressed to, it comes from there" (an exact entry names both ends and beats both). A frame addressed to a local listener belongs to
//! that listener even when a configured real server sent it (a real server that is also a
//! client of a local service, a UDP server that sends queries from its service port): if
//! a source rule came first, adding a real server could silently take a local endpoint's
//! traffic away from it. The cost of this order is small and avoidable: a NAT reply is
//! addressed to a client, which is never a local address, so it can only meet a listener
//! if a *wildcard* listener ([`ListenerKey::any`]) has the client's port. A director
//! binds its services to their VIPs (address-specific listeners), which never collide.
//! A listener entry that claims a frame but has no plain channel (a SYN-only entry) gives
//! it the default action; the source rule does not get it either.
//!
//! *Before the hosts*: a host entry is the catch-all of a local address ("unclaimed UDP /
//! TCP to me: answer with a RST or a port unreachable"); a source entry is more specific
//! (protocol, address and port of the sender). When replies are addressed to a local
//! address — a director that also rewrites the client's address to one of its own
//! (full NAT / SNAT), or replies to probes the director sends from an address it owns —
//! the source channel must get them, not the RST responder.
//!
//! ICMP carries no ports and is never matched by a source rule (an ICMP error from a real
//! server about a NAT flow goes to the host rule of its destination, or the default).
//!
//! A [`Classification::Malformed`] frame is always dropped, whatever the tables say.
//! Non-first fragments, other IP protocols and other ethertypes carry no ports or host
//! address this demux understands and take the default action.
//!
//! # Hashing
//!
//! The exact table is keyed by the remote address and port, which **an attacker chooses**.
//! With a fixed, known hash function an attacker can send flows that all land in one
//! bucket chain and turn every lookup into a scan (hash flooding). That table therefore
//! uses [`ahash::RandomState`], a keyed hasher seeded from the OS random source once per
//! [`Demux`]. The listener, source and host tables are keyed by values the administrator
//! chooses (local addresses and ports; the real servers' addresses and ports), so they use
//! the faster, unkeyed FxHash ([`rustc_hash`]). A lookup probes them with values from the
//! frame (its destination, or for the source table its source, which an attacker does
//! choose), but a probe can only be as slow as the chains of the entries the
//! administrator put there: an attacker who cannot insert entries cannot build a long
//! chain, whatever keys they probe with. The source table is probed only while it has
//! entries, so a stack without source rules pays nothing for it.
//!
//! Lookups never allocate. Mutations take `&mut self`; a caller that updates the tables
//! while other threads look up wraps the `Demux` in its own synchronization (or clones,
//! edits and swaps it).
//!
//! [`flow::classify`]: crate::flow::classify

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};

use rustc_hash::FxHashMap;

use crate::flow::{self, Classification, FlowKey, Proto, TcpFlags};

/// Identifies an endpoint's channel (an NI channel, or an AF_XDP socket in NI-LRP).
///
/// The demux only stores and returns ids; what an id refers to is the caller's
/// registry (for example [`Endpoints`](crate::channel::Endpoints)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelId(pub u32);

/// The outcome of a demux lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Queue the frame on this channel.
    Channel(ChannelId),
    /// Not ours: hand the frame to the host kernel (`XDP_PASS` in NI-LRP).
    Pass,
    /// Drop the frame.
    Drop,
}

/// What to do with a frame that matches no table entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DefaultAction {
    /// Hand it to the host kernel, so the box stays reachable for everything lrp does not
    /// own (SSH, management, other services).
    Pass,
    /// Drop it.
    Drop,
}

impl DefaultAction {
    /// The verdict this action produces.
    pub const fn verdict(self) -> Verdict {
        match self {
            DefaultAction::Pass => Verdict::Pass,
            DefaultAction::Drop => Verdict::Drop,
        }
    }
}

/// Which rule produced a verdict (see the precedence list in the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MatchKind {
    /// The frame was malformed: always dropped.
    Malformed,
    /// An exact 5-tuple entry.
    Exact,
    /// The new-connection (SYN) channel of the matching listener.
    Syn,
    /// A listener entry bound to the frame's destination address.
    Listener,
    /// A wildcard-address listener entry.
    WildcardListener,
    /// A source entry: UDP / TCP from a configured remote (address, port) that no exact or
    /// listener entry claims.
    Source,
    /// A host rule: ARP or ICMP to a registered local address, or UDP / TCP to one that no
    /// exact, listener or source entry claims.
    Host,
    /// No entry matched: the default action.
    Default,
}

/// Key of a listener entry: protocol, local address (or any), local port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenerKey {
    /// Transport protocol.
    pub proto: Proto,
    /// Local address, or `None` for every local address (both IPv4 and IPv6).
    pub addr: Option<IpAddr>,
    /// Local port.
    pub port: u16,
}

impl ListenerKey {
    /// A listener on one local address.
    pub const fn new(proto: Proto, addr: IpAddr, port: u16) -> ListenerKey {
        ListenerKey {
            proto,
            addr: Some(addr),
            port,
        }
    }

    /// A listener on every local address (the wildcard).
    pub const fn any(proto: Proto, port: u16) -> ListenerKey {
        ListenerKey {
            proto,
            addr: None,
            port,
        }
    }
}

/// Key of a source entry: protocol, remote (source) address, remote (source) port — for
/// example a real server's (address, port), whose NAT replies are addressed to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceKey {
    /// Transport protocol.
    pub proto: Proto,
    /// Remote address: the frame's source address.
    pub addr: IpAddr,
    /// Remote port: the frame's source port.
    pub port: u16,
}

impl SourceKey {
    /// Frames of `proto` from `addr`:`port`.
    pub const fn new(proto: Proto, addr: IpAddr, port: u16) -> SourceKey {
        SourceKey { proto, addr, port }
    }

    /// The source key of a frame's 5-tuple (`src` and `sport` as the frame carries them).
    pub const fn of_flow(key: &FlowKey) -> SourceKey {
        SourceKey {
            proto: key.proto,
            addr: key.src,
            port: key.sport,
        }
    }
}

/// The channels of a listener entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Listener {
    /// Channel for all traffic matching the listener that no other rule claims. `None`:
    /// the entry only separates connection requests ([`syn_channel`](Self::syn_channel));
    /// the listener's other traffic takes the default action.
    pub channel: Option<ChannelId>,
    /// Channel for new TCP connection requests (SYN without ACK), if they are to be
    /// separated from the rest. Ignored for UDP.
    pub syn_channel: Option<ChannelId>,
}

impl Listener {
    /// A listener whose traffic all goes to `channel`.
    pub const fn new(channel: ChannelId) -> Listener {
        Listener {
            channel: Some(channel),
            syn_channel: None,
        }
    }

    /// A listener that only takes new TCP connection requests (SYN without ACK), to
    /// `syn_channel`; its other traffic takes the default action.
    pub const fn syn_only(syn_channel: ChannelId) -> Listener {
        Listener {
            channel: None,
            syn_channel: Some(syn_channel),
        }
    }

    /// Send connection requests (SYN without ACK) to `syn_channel` instead.
    pub const fn with_syn_channel(self, syn_channel: ChannelId) -> Listener {
        Listener {
            channel: self.channel,
            syn_channel: Some(syn_channel),
        }
    }
}

/// The demultiplexing tables. See the [module docs](self) for the precedence and hashing.
#[derive(Debug, Clone)]
pub struct Demux {
    /// Exact 5-tuples, keyed by attacker-influenced values: keyed hasher.
    flows: HashMap<FlowKey, ChannelId, ahash::RandomState>,
    /// Listeners, keyed by administrator-chosen values: FxHash.
    listeners: FxHashMap<ListenerKey, Listener>,
    /// Remote (source) endpoints, keyed by administrator-chosen values: FxHash.
    sources: FxHashMap<SourceKey, ChannelId>,
    /// Local addresses and their host (control) channel: FxHash.
    hosts: FxHashMap<IpAddr, ChannelId>,
    default: DefaultAction,
}

impl Default for Demux {
    /// Empty tables; unmatched frames are passed to the kernel.
    fn default() -> Self {
        Demux::new(DefaultAction::Pass)
    }
}

impl Demux {
    /// Empty tables with the given default action.
    pub fn new(default: DefaultAction) -> Demux {
        Demux::with_capacity(default, 0)
    }

    /// Empty tables with room for `flows` exact entries before the exact table grows.
    pub fn with_capacity(default: DefaultAction, flows: usize) -> Demux {
        Demux {
            flows: HashMap::with_capacity_and_hasher(flows, ahash::RandomState::new()),
            listeners: FxHashMap::default(),
            sources: FxHashMap::default(),
            hosts: FxHashMap::default(),
            default,
        }
    }

    /// The action for frames no entry matches.
    pub fn default_action(&self) -> DefaultAction {
        self.default
    }

    /// Change the action for frames no entry matches.
    pub fn set_default_action(&mut self, default: DefaultAction) {
        self.default = default;
    }

    // ---- exact table -------------------------------------------------------------------

    /// Add or replace the exact entry for `key` (the key of frames *arriving* on the flow:
    /// `src` is the remote peer). Returns the previous channel, if any.
    pub fn insert_flow(&mut self, key: FlowKey, channel: ChannelId) -> Option<ChannelId> {
        self.flows.insert(key, channel)
    }

    /// Remove the exact entry for `key`. Returns its channel, if it existed.
    pub fn remove_flow(&mut self, key: &FlowKey) -> Option<ChannelId> {
        self.flows.remove(key)
    }

    /// The channel of the exact entry for `key`.
    pub fn flow(&self, key: &FlowKey) -> Option<ChannelId> {
        self.flows.get(key).copied()
    }

    /// Keep only the exact entries for which `keep` returns true (for example, remove every
    /// flow of a closed channel).
    pub fn retain_flows(&mut self, mut keep: impl FnMut(&FlowKey, ChannelId) -> bool) {
        self.flows.retain(|k, c| keep(k, *c));
    }

    /// Number of exact entries.
    pub fn flows_len(&self) -> usize {
        self.flows.len()
    }

    /// All exact entries, in no particular order.
    pub fn flows(&self) -> impl ExactSizeIterator<Item = (&FlowKey, ChannelId)> + '_ {
        self.flows.iter().map(|(k, c)| (k, *c))
    }

    // ---- listener table ----------------------------------------------------------------

    /// Add or replace a listener entry. Returns the previous entry for `key`, if any.
    pub fn insert_listener(&mut self, key: ListenerKey, listener: Listener) -> Option<Listener> {
        self.listeners.insert(key, listener)
    }

    /// Remove a listener entry. Returns it, if it existed.
    pub fn remove_listener(&mut self, key: &ListenerKey) -> Option<Listener> {
        self.listeners.remove(key)
    }

    /// The listener entry stored under exactly `key` (no wildcard fallback).
    pub fn listener(&self, key: &ListenerKey) -> Option<Listener> {
        self.listeners.get(key).copied()
    }

    /// Number of listener entries.
    pub fn listeners_len(&self) -> usize {
        self.listeners.len()
    }

    /// All listener entries, in no particular order.
    pub fn listeners(&self) -> impl ExactSizeIterator<Item = (&ListenerKey, Listener)> + '_ {
        self.listeners.iter().map(|(k, l)| (k, *l))
    }

    // ---- source table ------------------------------------------------------------------

    /// Add or replace a source entry: UDP / TCP frames from `key`'s (address, port) that
    /// no exact or listener entry claims go to `channel`, whatever their destination.
    /// Returns the previous channel for `key`, if any.
    pub fn insert_source(&mut self, key: SourceKey, channel: ChannelId) -> Option<ChannelId> {
        self.sources.insert(key, channel)
    }

    /// Remove a source entry. Returns its channel, if it existed.
    pub fn remove_source(&mut self, key: &SourceKey) -> Option<ChannelId> {
        self.sources.remove(key)
    }

    /// The channel of the source entry for `key`.
    pub fn source(&self, key: &SourceKey) -> Option<ChannelId> {
        self.sources.get(key).copied()
    }

    /// Number of source entries.
    pub fn sources_len(&self) -> usize {
        self.sources.len()
    }

    /// All source entries, in no particular order.
    pub fn sources(&self) -> impl ExactSizeIterator<Item = (&SourceKey, ChannelId)> + '_ {
        self.sources.iter().map(|(k, c)| (k, *c))
    }

    // ---- host table --------------------------------------------------------------------

    /// Register a local address whose ARP and ICMP traffic, and whose UDP / TCP traffic
    /// that no exact, listener or source entry claims, goes to `channel`. Returns the previous
    /// channel for `addr`, if any.
    ///
    /// IPv6 neighbor solicitations are sent to the address's solicited-node multicast
    /// group; register [`solicited_node`]`(addr)` too for the stack to receive them.
    pub fn insert_host(&mut self, addr: IpAddr, channel: ChannelId) -> Option<ChannelId> {
        self.hosts.insert(addr, channel)
    }

    /// Unregister a local address. Returns its channel, if it was registered.
    pub fn remove_host(&mut self, addr: &IpAddr) -> Option<ChannelId> {
        self.hosts.remove(addr)
    }

    /// The host channel of a local address.
    pub fn host(&self, addr: &IpAddr) -> Option<ChannelId> {
        self.hosts.get(addr).copied()
    }

    /// Number of host entries.
    pub fn hosts_len(&self) -> usize {
        self.hosts.len()
    }

    /// All host entries, in no particular order.
    pub fn hosts(&self) -> impl ExactSizeIterator<Item = (&IpAddr, ChannelId)> + '_ {
        self.hosts.iter().map(|(a, c)| (a, *c))
    }

    // ---- lookup ------------------------------------------------------------------------

    /// The verdict for a classified frame. Allocation-free, O(1): at most one exact, two
    /// listener, one source (only while the source table has entries) and one host probe.
    #[inline]
    pub fn lookup(&self, class: &Classification) -> Verdict {
        self.lookup_explained(class).0
    }

    /// The verdict for a classified frame, and which rule produced it.
    #[inline]
    pub fn lookup_explained(&self, class: &Classification) -> (Verdict, MatchKind) {
        match *class {
            Classification::Flow { ref key, flags, .. } => self.lookup_flow(key, flags),
            Classification::Arp { target } => self.lookup_host(&IpAddr::V4(target)),
            Classification::Icmp { ref dst, .. } => self.lookup_host(dst),
            Classification::Malformed(_) => (Verdict::Drop, MatchKind::Malformed),
            Classification::Fragment
            | Classification::OtherIp(_)
            | Classification::OtherEthertype(_) => (self.default.verdict(), MatchKind::Default),
        }
    }

    /// Classify a frame ([`flow::classify`]) and look it up in one call.
    #[inline]
    pub fn classify_and_lookup(&self, frame: &[u8]) -> (Classification, Verdict) {
        let class = flow::classify(frame);
        let verdict = self.lookup(&class);
        (class, verdict)
    }

    fn lookup_flow(&self, key: &FlowKey, flags: TcpFlags) -> (Verdict, MatchKind) {
        if let Some(&channel) = self.flows.get(key) {
            return (Verdict::Channel(channel), MatchKind::Exact);
        }
        if self.listeners.is_empty() {
            return self.lookup_source_or_host(key);
        }
        let specific = ListenerKey::new(key.proto, key.dst, key.dport);
        let (listener, kind) = match self.listeners.get(&specific) {
            Some(l) => (l, MatchKind::Listener),
            None => match self.listeners.get(&ListenerKey::any(key.proto, key.dport)) {
                Some(l) => (l, MatchKind::WildcardListener),
                // Unclaimed by the destination: a source entry for the sender, else the
                // owner of the destination address answers (RST, ICMP).
                None => return self.lookup_source_or_host(key),
            },
        };
        if key.proto == Proto::Tcp && flags.is_syn_only() {
            if let Some(syn) = listener.syn_channel {
                return (Verdict::Channel(syn), MatchKind::Syn);
            }
        }
        match listener.channel {
            Some(channel) => (Verdict::Channel(channel), kind),
            // A SYN-only entry: the listener's other traffic is nobody's.
            None => (self.default.verdict(), MatchKind::Default),
        }
    }

    /// Steps 4 and 5 for UDP / TCP that no exact or listener entry claims.
    #[inline]
    fn lookup_source_or_host(&self, key: &FlowKey) -> (Verdict, MatchKind) {
        if !self.sources.is_empty() {
            if let Some(&channel) = self.sources.get(&SourceKey::of_flow(key)) {
                return (Verdict::Channel(channel), MatchKind::Source);
            }
        }
        self.lookup_host(&key.dst)
    }

    fn lookup_host(&self, addr: &IpAddr) -> (Verdict, MatchKind) {
        match self.hosts.get(addr) {
            Some(&channel) => (Verdict::Channel(channel), MatchKind::Host),
            None => (self.default.verdict(), MatchKind::Default),
        }
    }
}

/// The solicited-node multicast address of an IPv6 address (RFC 4291 §2.7.1):
/// `ff02::1:ffXX:XXXX` with the low 24 bits of `addr`. IPv6 neighbor solicitations for
/// `addr` are sent there.
pub const fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | o[13] as u16,
        (o[14] as u16) << 8 | o[15] as u16,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::{Malformed, Offsets};
    use std::net::Ipv4Addr;

    const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
    const OTHER_LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3));
    const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));

    fn key(proto: Proto, sport: u16, dst: IpAddr, dport: u16) -> FlowKey {
        FlowKey {
            proto,
            src: PEER,
            dst,
            sport,
            dport,
        }
    }

    fn flow(key: FlowKey, flags: u8) -> Classification {
        Classification::Flow {
            key,
            flags: TcpFlags(flags),
            offsets: Offsets::default(),
        }
    }

    const SYN: u8 = TcpFlags::SYN;
    const ACK: u8 = TcpFlags::ACK;

    fn ch(n: u32) -> Verdict {
        Verdict::Channel(ChannelId(n))
    }

    #[test]
    fn empty_demux_takes_default_action() {
        let mut d = Demux::new(DefaultAction::Pass);
        let c = flow(key(Proto::Udp, 1000, LOCAL, 53), 0);
        assert_eq!(d.lookup_explained(&c), (Verdict::Pass, MatchKind::Default));
        d.set_default_action(DefaultAction::Drop);
        assert_eq!(d.lookup_explained(&c), (Verdict::Drop, MatchKind::Default));
        assert_eq!(d.lookup(&Classification::Fragment), Verdict::Drop);
        assert_eq!(d.lookup(&Classification::OtherIp(47)), Verdict::Drop);
        assert_eq!(
            d.lookup(&Classification::OtherEthertype(0x88cc)),
            Verdict::Drop
        );
    }

    #[test]
    fn malformed_is_always_dropped() {
        let mut d = Demux::new(DefaultAction::Pass);
        d.insert_host(LOCAL, ChannelId(9));
        d.insert_listener(
            ListenerKey::any(Proto::Udp, 53),
            Listener::new(ChannelId(1)),
        );
        for m in Malformed::ALL {
            assert_eq!(
                d.lookup_explained(&Classification::Malformed(m)),
                (Verdict::Drop, MatchKind::Malformed)
            );
        }
    }

    #[test]
    fn precedence_exact_syn_listener_wildcard() {
        let mut d = Demux::new(DefaultAction::Drop);
        let k = key(Proto::Tcp, 40000, LOCAL, 80);
        d.insert_listener(
            ListenerKey::any(Proto::Tcp, 80),
            Listener::new(ChannelId(1)),
        );
        assert_eq!(
            d.lookup_explained(&flow(k, ACK)),
            (ch(1), MatchKind::WildcardListener)
        );
        // A SYN rule on the wildcard listener.
        d.insert_listener(
            ListenerKey::any(Proto::Tcp, 80),
            Listener::new(ChannelId(1)).with_syn_channel(ChannelId(2)),
        );
        assert_eq!(d.lookup_explained(&flow(k, SYN)), (ch(2), MatchKind::Syn));
        assert_eq!(
            d.lookup_explained(&flow(k, SYN | ACK)),
            (ch(1), MatchKind::WildcardListener)
        );
        // A specific listener beats the wildcard entirely (including its SYN channel).
        d.insert_listener(
            ListenerKey::new(Proto::Tcp, LOCAL, 80),
            Listener::new(ChannelId(3)),
        );
        assert_eq!(
            d.lookup_explained(&flow(k, SYN)),
            (ch(3), MatchKind::Listener)
        );
        assert_eq!(
            d.lookup_explained(&flow(k, ACK)),
            (ch(3), MatchKind::Listener)
        );
        // ... but only for its own address.
        let other = key(Proto::Tcp, 40000, OTHER_LOCAL, 80);
        assert_eq!(d.lookup(&flow(other, SYN)), ch(2));
        // An exact entry beats everything, even for a SYN.
        assert_eq!(d.insert_flow(k, ChannelId(4)), None);
        assert_eq!(d.lookup_explained(&flow(k, SYN)), (ch(4), MatchKind::Exact));
        assert_eq!(d.lookup_explained(&flow(k, ACK)), (ch(4), MatchKind::Exact));
        // Removing it falls back to the listener.
        assert_eq!(d.remove_flow(&k), Some(ChannelId(4)));
        assert_eq!(d.lookup(&flow(k, ACK)), ch(3));
    }

    #[test]
    fn syn_channel_is_tcp_only_and_proto_is_part_of_the_key() {
        let mut d = Demux::new(DefaultAction::Drop);
        d.insert_listener(
            ListenerKey::any(Proto::Udp, 80),
            Listener::new(ChannelId(1)).with_syn_channel(ChannelId(2)),
        );
        // UDP has no flags; even a nonsense SYN bit must not select the SYN channel.
        assert_eq!(d.lookup(&flow(key(Proto::Udp, 1, LOCAL, 80), SYN)), ch(1));
        assert_eq!(
            d.lookup(&flow(key(Proto::Tcp, 1, LOCAL, 80), SYN)),
            Verdict::Drop
        );
    }

    #[test]
    fn host_rules_for_arp_and_icmp() {
        let mut d = Demux::new(DefaultAction::Pass);
        d.insert_host(LOCAL, ChannelId(7));
        let IpAddr::V4(local4) = LOCAL else {
            unreachable!()
        };
        let IpAddr::V4(other4) = OTHER_LOCAL else {
            unreachable!()
        };
        assert_eq!(
            d.lookup_explained(&Classification::Arp { target: local4 }),
            (ch(7), MatchKind::Host)
        );
        assert_eq!(
            d.lookup(&Classification::Arp { target: other4 }),
            Verdict::Pass
        );
        assert_eq!(
            d.lookup(&Classification::Icmp {
                dst: LOCAL,
                icmp_type: 8
            }),
            ch(7)
        );
        assert_eq!(
            d.lookup(&Classification::Icmp {
                dst: OTHER_LOCAL,
                icmp_type: 8
            }),
            Verdict::Pass
        );
        // Unclaimed UDP/TCP to a host address goes to the host channel (the stack answers
        // with ICMP port unreachable or a RST); to any other address, the default.
        assert_eq!(
            d.lookup_explained(&flow(key(Proto::Udp, 1, LOCAL, 9), 0)),
            (ch(7), MatchKind::Host)
        );
        assert_eq!(
            d.lookup_explained(&flow(key(Proto::Tcp, 1, LOCAL, 9), SYN)),
            (ch(7), MatchKind::Host)
        );
        assert_eq!(
            d.lookup_explained(&flow(key(Proto::Tcp, 1, OTHER_LOCAL, 9), SYN)),
            (Verdict::Pass, MatchKind::Default)
        );
        // IPv6: NDP to the solicited-node group once it is registered.
        let v6: Ipv6Addr = "fd00::1:2345:6789".parse().unwrap();
        let group = solicited_node(v6);
        assert_eq!(group, "ff02::1:ff45:6789".parse::<Ipv6Addr>().unwrap());
        d.insert_host(IpAddr::V6(v6), ChannelId(8));
        assert_eq!(
            d.lookup(&Classification::Icmp {
                dst: IpAddr::V6(group),
                icmp_type: 135
            }),
            Verdict::Pass
        );
        d.insert_host(IpAddr::V6(group), ChannelId(8));
        assert_eq!(
            d.lookup(&Classification::Icmp {
                dst: IpAddr::V6(group),
                icmp_type: 135
            }),
            ch(8)
        );
        assert_eq!(d.remove_host(&LOCAL), Some(ChannelId(7)));
        assert_eq!(
            d.lookup(&Classification::Icmp {
                dst: LOCAL,
                icmp_type: 8
            }),
            Verdict::Pass
        );
    }

    #[test]
    fn insert_returns_previous_and_iterators_match_lens() {
        let mut d = Demux::default();
        let k = key(Proto::Udp, 5, LOCAL, 6);
        assert_eq!(d.insert_flow(k, ChannelId(1)), None);
        assert_eq!(d.insert_flow(k, ChannelId(2)), Some(ChannelId(1)));
        assert_eq!(d.flow(&k), Some(ChannelId(2)));
        let lk = ListenerKey::new(Proto::Udp, LOCAL, 6);
        assert_eq!(d.insert_listener(lk, Listener::new(ChannelId(3))), None);
        assert_eq!(
            d.insert_listener(lk, Listener::new(ChannelId(4))),
            Some(Listener::new(ChannelId(3)))
        );
        assert_eq!(d.insert_host(LOCAL, ChannelId(5)), None);
        assert_eq!(d.insert_host(LOCAL, ChannelId(6)), Some(ChannelId(5)));
        assert_eq!((d.flows_len(), d.listeners_len(), d.hosts_len()), (1, 1, 1));
        assert_eq!(d.flows().collect::<Vec<_>>(), vec![(&k, ChannelId(2))]);
        assert_eq!(
            d.listeners().collect::<Vec<_>>(),
            vec![(&lk, Listener::new(ChannelId(4)))]
        );
        assert_eq!(d.hosts().collect::<Vec<_>>(), vec![(&LOCAL, ChannelId(6))]);
        d.insert_flow(key(Proto::Udp, 7, LOCAL, 6), ChannelId(9));
        d.retain_flows(|_, c| c != ChannelId(9));
        assert_eq!(d.flows_len(), 1);
        assert_eq!(d.remove_listener(&lk), Some(Listener::new(ChannelId(4))));
        assert_eq!(d.remove_listener(&lk), None);
    }

    /// Ethernet + IPv4 (checksums left zero: classification does not verify them).
    fn ipv4_frame(proto: u8, l4: &[u8]) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
        let total = (20 + l4.len()) as u16;
        f.extend_from_slice(&[
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0x40,
            0,
            64,
            proto,
        ]);
        f.extend_from_slice(&[0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        f.extend_from_slice(l4);
        f
    }

    #[test]
    fn classify_and_lookup_on_real_frames() {
        let mut d = Demux::new(DefaultAction::Drop);
        d.insert_listener(
            ListenerKey::new(Proto::Udp, LOCAL, 53),
            Listener::new(ChannelId(1)),
        );
        d.insert_listener(
            ListenerKey::any(Proto::Tcp, 80),
            Listener::new(ChannelId(2)).with_syn_channel(ChannelId(3)),
        );
        d.insert_host(LOCAL, ChannelId(4));
        // UDP 10.0.0.1:1000 -> 10.0.0.2:53
        let udp = ipv4_frame(
            17,
            &[0x03, 0xe8, 0, 53, 0, 12, 0, 0, b'a', b'b', b'c', b'd'],
        );
        let (class, verdict) = d.classify_and_lookup(&udp);
        assert!(matches!(class, Classification::Flow { key, .. } if key.dport == 53));
        assert_eq!(verdict, ch(1));
        // TCP SYN and ACK to :80
        let mut tcp = [0u8; 20];
        tcp[0..4].copy_from_slice(&[0x9c, 0x40, 0, 80]);
        tcp[12] = 5 << 4;
        tcp[13] = SYN;
        assert_eq!(d.classify_and_lookup(&ipv4_frame(6, &tcp)).1, ch(3));
        tcp[13] = ACK;
        assert_eq!(d.classify_and_lookup(&ipv4_frame(6, &tcp)).1, ch(2));
        // ARP request: who has 10.0.0.2?
        let mut arp = vec![0xff; 6];
        arp.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
        arp.extend_from_slice(&[2, 0, 0, 0, 0, 1, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2]);
        assert_eq!(d.classify_and_lookup(&arp).1, ch(4));
        // UDP to a port nobody listens on: the host channel of the destination address
        // (which answers with ICMP port unreachable); without the host entry, the default.
        let other = ipv4_frame(17, &[0x03, 0xe8, 0, 54, 0, 8, 0, 0]);
        assert_eq!(d.classify_and_lookup(&other).1, ch(4));
        d.remove_host(&LOCAL);
        assert_eq!(d.classify_and_lookup(&other).1, Verdict::Drop);
    }

    #[test]
    fn host_catches_only_what_exact_and_listener_rules_leave() {
        let mut d = Demux::new(DefaultAction::Pass);
        d.insert_host(LOCAL, ChannelId(9));
        let k = key(Proto::Tcp, 40000, LOCAL, 80);
        // No listener at all: the host channel (the stack's RST responder).
        assert_eq!(d.lookup_explained(&flow(k, SYN)), (ch(9), MatchKind::Host));
        // A listener on another port changes nothing for this one.
        d.insert_listener(
            ListenerKey::new(Proto::Tcp, LOCAL, 443),
            Listener::new(ChannelId(1)),
        );
        assert_eq!(d.lookup_explained(&flow(k, ACK)), (ch(9), MatchKind::Host));
        // Nor does a UDP listener on the same port.
        d.insert_listener(
            ListenerKey::any(Proto::Udp, 80),
            Listener::new(ChannelId(2)),
        );
        assert_eq!(d.lookup_explained(&flow(k, SYN)), (ch(9), MatchKind::Host));
        // A wildcard listener, its SYN channel, a specific listener and an exact entry all
        // take precedence over the host rule.
        d.insert_listener(
            ListenerKey::any(Proto::Tcp, 80),
            Listener::new(ChannelId(3)).with_syn_channel(ChannelId(4)),
        );
        assert_eq!(
            d.lookup_explained(&flow(k, ACK)),
            (ch(3), MatchKind::WildcardListener)
        );
        assert_eq!(d.lookup_explained(&flow(k, SYN)), (ch(4), MatchKind::Syn));
        d.insert_listener(
            ListenerKey::new(Proto::Tcp, LOCAL, 80),
            Listener::new(ChannelId(5)),
        );
        assert_eq!(
            d.lookup_explained(&flow(k, SYN)),
            (ch(5), MatchKind::Listener)
        );
        d.insert_flow(k, ChannelId(6));
        assert_eq!(d.lookup_explained(&flow(k, ACK)), (ch(6), MatchKind::Exact));
        // Back down the chain.
        d.remove_flow(&k);
        d.remove_listener(&ListenerKey::new(Proto::Tcp, LOCAL, 80));
        d.remove_listener(&ListenerKey::any(Proto::Tcp, 80));
        assert_eq!(d.lookup_explained(&flow(k, ACK)), (ch(9), MatchKind::Host));
        // Other addresses, fragments and other protocols are not the host rule's.
        let elsewhere = key(Proto::Tcp, 40000, OTHER_LOCAL, 80);
        assert_eq!(
            d.lookup_explained(&flow(elsewhere, SYN)),
            (Verdict::Pass, MatchKind::Default)
        );
        assert_eq!(d.lookup(&Classification::Fragment), Verdict::Pass);
        assert_eq!(d.lookup(&Classification::OtherIp(47)), Verdict::Pass);
    }

    /// A real server's reply in NAT mode: from (real server, service port), addressed to a
    /// client the director cannot enumerate.
    fn reply(proto: Proto, rs: IpAddr, rs_port: u16, client: IpAddr, cport: u16) -> FlowKey {
        FlowKey {
            proto,
            src: rs,
            dst: client,
            sport: rs_port,
            dport: cport,
        }
    }

    const RS: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 10));
    const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));

    #[test]
    fn source_rule_takes_replies_to_any_client() {
        let mut d = Demux::new(DefaultAction::Drop);
        let sk = SourceKey::new(Proto::Tcp, RS, 8080);
        assert_eq!(d.insert_source(sk, ChannelId(5)), None);
        for cport in [1, 1024, 40000, 65535] {
            for flags in [SYN | ACK, ACK, 0] {
                assert_eq!(
                    d.lookup_explained(&flow(reply(Proto::Tcp, RS, 8080, CLIENT, cport), flags)),
                    (ch(5), MatchKind::Source)
                );
            }
        }
        // Another port of the same server, the same port of another server, and the other
        // protocol are not the rule's.
        for k in [
            reply(Proto::Tcp, RS, 8081, CLIENT, 40000),
            reply(Proto::Tcp, PEER, 8080, CLIENT, 40000),
            reply(Proto::Udp, RS, 8080, CLIENT, 40000),
        ] {
            assert_eq!(
                d.lookup_explained(&flow(k, ACK)),
                (Verdict::Drop, MatchKind::Default)
            );
        }
        // The key is the frame's source: a frame *to* the server's endpoint is not matched.
        let to_rs = reply(Proto::Tcp, CLIENT, 40000, RS, 8080);
        assert_eq!(d.lookup(&flow(to_rs, SYN)), Verdict::Drop);
        // ICMP from the server carries no ports: never a source match.
        assert_eq!(
            d.lookup(&Classification::Icmp {
                dst: CLIENT,
                icmp_type: 3
            }),
            Verdict::Drop
        );
        assert_eq!(d.insert_source(sk, ChannelId(6)), Some(ChannelId(5)));
        assert_eq!(d.source(&sk), Some(ChannelId(6)));
        assert_eq!(d.sources_len(), 1);
        assert_eq!(d.sources().collect::<Vec<_>>(), vec![(&sk, ChannelId(6))]);
        assert_eq!(d.remove_source(&sk), Some(ChannelId(6)));
        assert_eq!(d.remove_source(&sk), None);
        assert_eq!(d.sources_len(), 0);
        let k = reply(Proto::Tcp, RS, 8080, CLIENT, 40000);
        assert_eq!(d.lookup(&flow(k, ACK)), Verdict::Drop);
        // IPv6 and UDP.
        let rs6: IpAddr = "fd00::10".parse().unwrap();
        let client6: IpAddr = "2001:db8::7".parse().unwrap();
        d.insert_source(SourceKey::new(Proto::Udp, rs6, 53), ChannelId(7));
        assert_eq!(
            d.lookup_explained(&flow(reply(Proto::Udp, rs6, 53, client6, 5353), 0)),
            (ch(7), MatchKind::Source)
        );
        assert_eq!(
            SourceKey::of_flow(&reply(Proto::Udp, rs6, 53, client6, 5353)),
            SourceKey::new(Proto::Udp, rs6, 53)
        );
    }

    #[test]
    fn precedence_exact_listener_source_host() {
        let mut d = Demux::new(DefaultAction::Pass);
        // A reply from the real server addressed to a local address (full NAT / probes).
        let k = reply(Proto::Udp, RS, 53, LOCAL, 40000);
        let c = flow(k, 0);
        d.insert_host(LOCAL, ChannelId(9));
        assert_eq!(d.lookup_explained(&c), (ch(9), MatchKind::Host));
        // The source rule beats the host rule ...
        d.insert_source(SourceKey::new(Proto::Udp, RS, 53), ChannelId(1));
        assert_eq!(d.lookup_explained(&c), (ch(1), MatchKind::Source));
        // ... a wildcard and a specific listener for the destination beat the source rule
        // ...
        d.insert_listener(
            ListenerKey::any(Proto::Udp, 40000),
            Listener::new(ChannelId(2)),
        );
        assert_eq!(d.lookup_explained(&c), (ch(2), MatchKind::WildcardListener));
        d.insert_listener(
            ListenerKey::new(Proto::Udp, LOCAL, 40000),
            Listener::new(ChannelId(3)),
        );
        assert_eq!(d.lookup_explained(&c), (ch(3), MatchKind::Listener));
        // ... and an exact entry beats everything.
        d.insert_flow(k, ChannelId(4));
        assert_eq!(d.lookup_explained(&c), (ch(4), MatchKind::Exact));
        // A SYN-only listener claims the port: its other traffic takes the default, the
        // source rule does not get it.
        d.remove_flow(&k);
        d.remove_listener(&ListenerKey::any(Proto::Udp, 40000));
        d.remove_listener(&ListenerKey::new(Proto::Udp, LOCAL, 40000));
        let t = reply(Proto::Tcp, RS, 80, LOCAL, 40000);
        d.insert_source(SourceKey::new(Proto::Tcp, RS, 80), ChannelId(5));
        assert_eq!(
            d.lookup_explained(&flow(t, ACK)),
            (ch(5), MatchKind::Source)
        );
        d.insert_listener(
            ListenerKey::any(Proto::Tcp, 40000),
            Listener::syn_only(ChannelId(6)),
        );
        assert_eq!(
            d.lookup_explained(&flow(t, ACK)),
            (Verdict::Pass, MatchKind::Default)
        );
        assert_eq!(d.lookup_explained(&flow(t, SYN)), (ch(6), MatchKind::Syn));
        // Back down the chain.
        d.remove_listener(&ListenerKey::any(Proto::Tcp, 40000));
        d.remove_source(&SourceKey::new(Proto::Udp, RS, 53));
        assert_eq!(d.lookup_explained(&c), (ch(9), MatchKind::Host));
        d.remove_host(&LOCAL);
        assert_eq!(d.lookup_explained(&c), (Verdict::Pass, MatchKind::Default));
    }

    #[test]
    fn classify_and_lookup_drops_what_classify_rejects() {
        let d = Demux::new(DefaultAction::Pass);
        let (class, verdict) = d.classify_and_lookup(&[0u8; 3]);
        assert!(matches!(class, Classification::Malformed(_)));
        assert_eq!(verdict, Verdict::Drop);
    }
}
