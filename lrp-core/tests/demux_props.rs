//! Property tests for `Demux`: random tables and random classified frames against a
//! linear-scan reference model of the precedence rules, and add/remove consistency.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use lrp_core::demux::{
    ChannelId, DefaultAction, Demux, Listener, ListenerKey, MatchKind, SourceKey, Verdict,
};
use lrp_core::flow::{Classification, FlowKey, Malformed, Offsets, Proto, TcpFlags};
use proptest::prelude::*;

// Small universes, so that random tables and random frames collide often.
fn addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        (1u8..4).prop_map(|i| IpAddr::V4(Ipv4Addr::new(10, 0, 0, i))),
        (1u16..3).prop_map(|i| IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, i))),
    ]
}

fn proto() -> impl Strategy<Value = Proto> {
    prop_oneof![Just(Proto::Tcp), Just(Proto::Udp)]
}

fn port() -> impl Strategy<Value = u16> {
    prop_oneof![Just(80u16), Just(443), Just(53)]
}

fn channel() -> impl Strategy<Value = ChannelId> {
    (0u32..8).prop_map(ChannelId)
}

fn flow_key() -> impl Strategy<Value = FlowKey> {
    (
        proto(),
        addr(),
        addr(),
        prop_oneof![Just(1000u16), Just(2000)],
        port(),
    )
        .prop_map(|(proto, src, dst, sport, dport)| FlowKey {
            proto,
            src,
            dst,
            sport,
            dport,
        })
}

fn listener_key() -> impl Strategy<Value = ListenerKey> {
    (proto(), prop::option::of(addr()), port()).prop_map(|(proto, addr, port)| ListenerKey {
        proto,
        addr,
        port,
    })
}

/// Source keys over the same small universes as flow keys' sources, so that random
/// frames come from configured sources often.
fn source_key() -> impl Strategy<Value = SourceKey> {
    (proto(), addr(), prop_oneof![Just(1000u16), Just(2000)])
        .prop_map(|(proto, addr, port)| SourceKey { proto, addr, port })
}

fn listener() -> impl Strategy<Value = Listener> {
    (prop::option::of(channel()), prop::option::of(channel())).prop_map(|(channel, syn_channel)| {
        Listener {
            channel,
            syn_channel,
        }
    })
}

fn flags() -> impl Strategy<Value = TcpFlags> {
    prop_oneof![
        Just(TcpFlags(TcpFlags::SYN)),
        Just(TcpFlags(TcpFlags::SYN | TcpFlags::ACK)),
        Just(TcpFlags(TcpFlags::ACK)),
        any::<u8>().prop_map(TcpFlags),
    ]
}

fn classification() -> impl Strategy<Value = Classification> {
    prop_oneof![
        6 => (flow_key(), flags()).prop_map(|(key, flags)| Classification::Flow {
            key,
            flags,
            offsets: Offsets::default(),
        }),
        1 => (1u8..4).prop_map(|i| Classification::Arp { target: Ipv4Addr::new(10, 0, 0, i) }),
        1 => (addr(), any::<u8>()).prop_map(|(dst, icmp_type)| Classification::Icmp { dst, icmp_type }),
        1 => Just(Classification::Fragment),
        1 => any::<u8>().prop_map(Classification::OtherIp),
        1 => any::<u16>().prop_map(Classification::OtherEthertype),
        1 => prop::sample::select(Malformed::ALL.to_vec()).prop_map(Classification::Malformed),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    InsertFlow(FlowKey, ChannelId),
    RemoveFlow(FlowKey),
    InsertListener(ListenerKey, Listener),
    RemoveListener(ListenerKey),
    InsertSource(SourceKey, ChannelId),
    RemoveSource(SourceKey),
    InsertHost(IpAddr, ChannelId),
    RemoveHost(IpAddr),
    SetDefault(bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (flow_key(), channel()).prop_map(|(k, c)| Op::InsertFlow(k, c)),
        2 => flow_key().prop_map(Op::RemoveFlow),
        3 => (listener_key(), listener()).prop_map(|(k, l)| Op::InsertListener(k, l)),
        1 => listener_key().prop_map(Op::RemoveListener),
        2 => (source_key(), channel()).prop_map(|(k, c)| Op::InsertSource(k, c)),
        1 => source_key().prop_map(Op::RemoveSource),
        2 => (addr(), channel()).prop_map(|(a, c)| Op::InsertHost(a, c)),
        1 => addr().prop_map(Op::RemoveHost),
        1 => any::<bool>().prop_map(Op::SetDefault),
    ]
}

/// The reference: ordered maps, and lookup by scanning every rule and ranking the hits.
#[derive(Default)]
struct Model {
    flows: BTreeMap<FlowKey, ChannelId>,
    listeners: BTreeMap<ListenerKey, Listener>,
    sources: BTreeMap<SourceKey, ChannelId>,
    hosts: BTreeMap<IpAddr, ChannelId>,
    drop_by_default: bool,
}

impl Model {
    fn default_verdict(&self) -> (Verdict, MatchKind) {
        let v = if self.drop_by_default {
            Verdict::Drop
        } else {
            Verdict::Pass
        };
        (v, MatchKind::Default)
    }

    fn lookup(&self, c: &Classification) -> (Verdict, MatchKind) {
        let host = |a: IpAddr| {
            self.hosts
                .iter()
                .find(|(h, _)| **h == a)
                .map(|(_, c)| (Verdict::Channel(*c), MatchKind::Host))
                .unwrap_or(self.default_verdict())
        };
        match c {
            Classification::Malformed(_) => (Verdict::Drop, MatchKind::Malformed),
            Classification::Arp { target } => host(IpAddr::V4(*target)),
            Classification::Icmp { dst, .. } => host(*dst),
            Classification::Flow { key, flags, .. } => {
                // Rank every matching rule; the lowest rank wins.
                let mut hits: Vec<(u8, Verdict, MatchKind)> = Vec::new();
                for (k, ch) in &self.flows {
                    if k == key {
                        hits.push((0, Verdict::Channel(*ch), MatchKind::Exact));
                    }
                }
                // The most specific matching listener decides; its SYN channel takes
                // connection requests.
                let syn = key.proto == Proto::Tcp
                    && flags.0 & TcpFlags::SYN != 0
                    && flags.0 & TcpFlags::ACK == 0;
                for (k, l) in &self.listeners {
                    if k.proto != key.proto || k.port != key.dport {
                        continue;
                    }
                    let (rank, kind) = match k.addr {
                        Some(a) if a == key.dst => (1, MatchKind::Listener),
                        None => (2, MatchKind::WildcardListener),
                        Some(_) => continue,
                    };
                    match l.syn_channel {
                        Some(s) if syn => hits.push((rank, Verdict::Channel(s), MatchKind::Syn)),
                        _ => match l.channel {
                            Some(c) => hits.push((rank, Verdict::Channel(c), kind)),
                            // A SYN-only entry: the default action, whatever ranks lower.
                            None => {
                                let (v, k) = self.default_verdict();
                                hits.push((rank, v, k));
                            }
                        },
                    }
                }
                // Unclaimed UDP/TCP from a configured remote endpoint, whatever its
                // destination: the source channel.
                for (k, c) in &self.sources {
                    if k.proto == key.proto && k.addr == key.src && k.port == key.sport {
                        hits.push((3, Verdict::Channel(*c), MatchKind::Source));
                    }
                }
                // Unclaimed UDP/TCP to a local address: that address's host channel.
                if let Some((_, c)) = self.hosts.iter().find(|(h, _)| **h == key.dst) {
                    hits.push((4, Verdict::Channel(*c), MatchKind::Host));
                }
                hits.sort_by_key(|h| h.0);
                hits.first()
                    .map(|h| (h.1, h.2))
                    .unwrap_or(self.default_verdict())
            }
            _ => self.default_verdict(),
        }
    }
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn lookup_matches_reference_and_tables_stay_consistent(
        ops in prop::collection::vec(op(), 0..60),
        frames in prop::collection::vec(classification(), 1..40),
    ) {
        let mut d = Demux::new(DefaultAction::Pass);
        let mut m = Model::default();
        for op in ops {
            match op {
                Op::InsertFlow(k, c) => prop_assert_eq!(d.insert_flow(k, c), m.flows.insert(k, c)),
                Op::RemoveFlow(k) => prop_assert_eq!(d.remove_flow(&k), m.flows.remove(&k)),
                Op::InsertListener(k, l) => {
                    prop_assert_eq!(d.insert_listener(k, l), m.listeners.insert(k, l))
                }
                Op::RemoveListener(k) => {
                    prop_assert_eq!(d.remove_listener(&k), m.listeners.remove(&k))
                }
                Op::InsertSource(k, c) => {
                    prop_assert_eq!(d.insert_source(k, c), m.sources.insert(k, c))
                }
                Op::RemoveSource(k) => prop_assert_eq!(d.remove_source(&k), m.sources.remove(&k)),
                Op::InsertHost(a, c) => prop_assert_eq!(d.insert_host(a, c), m.hosts.insert(a, c)),
                Op::RemoveHost(a) => prop_assert_eq!(d.remove_host(&a), m.hosts.remove(&a)),
                Op::SetDefault(drop) => {
                    m.drop_by_default = drop;
                    d.set_default_action(if drop { DefaultAction::Drop } else { DefaultAction::Pass });
                }
            }
            // Lookups interleaved with mutations see the current tables.
            for c in &frames {
                prop_assert_eq!(d.lookup_explained(c), m.lookup(c), "frame {:?}", c);
                prop_assert_eq!(d.lookup(c), m.lookup(c).0);
            }
        }
        prop_assert_eq!(d.flows_len(), m.flows.len());
        prop_assert_eq!(d.listeners_len(), m.listeners.len());
        prop_assert_eq!(d.sources_len(), m.sources.len());
        prop_assert_eq!(d.hosts_len(), m.hosts.len());
        prop_assert_eq!(
            sorted(d.flows().map(|(k, c)| (*k, c)).collect()),
            m.flows.iter().map(|(k, c)| (*k, *c)).collect::<Vec<_>>()
        );
        prop_assert_eq!(
            sorted(d.listeners().map(|(k, l)| (*k, l.channel, l.syn_channel)).collect()),
            m.listeners.iter().map(|(k, l)| (*k, l.channel, l.syn_channel)).collect::<Vec<_>>()
        );
        prop_assert_eq!(
            sorted(d.sources().map(|(k, c)| (*k, c)).collect()),
            m.sources.iter().map(|(k, c)| (*k, *c)).collect::<Vec<_>>()
        );
        for (k, c) in &m.sources {
            prop_assert_eq!(d.source(k), Some(*c));
        }
        prop_assert_eq!(
            sorted(d.hosts().map(|(a, c)| (*a, c)).collect()),
            m.hosts.iter().map(|(a, c)| (*a, *c)).collect::<Vec<_>>()
        );
        for (k, c) in &m.flows {
            prop_assert_eq!(d.flow(k), Some(*c));
        }
    }

    /// The precedence chain stated directly: adding a higher-precedence rule for a frame
    /// always takes the frame over, removing it gives the frame back.
    #[test]
    fn higher_precedence_rule_takes_over(key in flow_key(), syn in any::<bool>()) {
        let flags = TcpFlags(if syn { TcpFlags::SYN } else { TcpFlags::ACK });
        let c = Classification::Flow { key, flags, offsets: Offsets::default() };
        let mut d = Demux::new(DefaultAction::Drop);
        prop_assert_eq!(d.lookup_explained(&c), (Verdict::Drop, MatchKind::Default));
        // A host entry for the destination claims the UDP/TCP nobody else does (the stack
        // that owns the address answers with a RST or an ICMP port unreachable) ...
        d.insert_host(key.dst, ChannelId(9));
        prop_assert_eq!(d.lookup_explained(&c), (Verdict::Channel(ChannelId(9)), MatchKind::Host));
        // ... and a host entry for another address claims nothing.
        if key.src != key.dst {
            d.insert_host(key.src, ChannelId(8));
            prop_assert_eq!(d.lookup(&c), Verdict::Channel(ChannelId(9)));
        }
        // A source entry for the sender beats the host entry; one for the destination
        // endpoint (the reverse direction) claims nothing.
        let source = SourceKey::of_flow(&key);
        let reverse = SourceKey::new(key.proto, key.dst, key.dport);
        if reverse != source {
            d.insert_source(reverse, ChannelId(7));
            prop_assert_eq!(d.lookup_explained(&c), (Verdict::Channel(ChannelId(9)), MatchKind::Host));
        }
        d.insert_source(source, ChannelId(6));
        prop_assert_eq!(d.lookup_explained(&c), (Verdict::Channel(ChannelId(6)), MatchKind::Source));
        d.insert_listener(ListenerKey::any(key.proto, key.dport), Listener::new(ChannelId(1)));
        prop_assert_eq!(d.lookup_explained(&c), (Verdict::Channel(ChannelId(1)), MatchKind::WildcardListener));
        let specific = ListenerKey::new(key.proto, key.dst, key.dport);
        d.insert_listener(specific, Listener::new(ChannelId(2)));
        prop_assert_eq!(d.lookup_explained(&c), (Verdict::Channel(ChannelId(2)), MatchKind::Listener));
        d.insert_listener(specific, Listener::new(ChannelId(2)).with_syn_channel(ChannelId(3)));
        let is_syn = syn && key.proto == Proto::Tcp;
        let want = if is_syn { (ChannelId(3), MatchKind::Syn) } else { (ChannelId(2), MatchKind::Listener) };
        prop_assert_eq!(d.lookup_explained(&c), (Verdict::Channel(want.0), want.1));
        d.insert_flow(key, ChannelId(4));
        prop_assert_eq!(d.lookup_explained(&c), (Verdict::Channel(ChannelId(4)), MatchKind::Exact));
        // The reverse direction is a different flow.
        let r = Classification::Flow { key: key.reversed(), flags, offsets: Offsets::default() };
        if key.reversed() != key {
            prop_assert_ne!(d.lookup_explained(&r).1, MatchKind::Exact);
        }
        // And back down the chain.
        d.remove_flow(&key);
        prop_assert_eq!(d.lookup_explained(&c), (Verdict::Channel(want.0), want.1));
        d.remove_listener(&specific);
        prop_assert_eq!(d.lookup(&c), Verdict::Channel(ChannelId(1)));
        d.remove_listener(&ListenerKey::any(key.proto, key.dport));
        prop_assert_eq!(d.lookup_explained(&c), (Verdict::Channel(ChannelId(6)), MatchKind::Source));
        d.remove_source(&source);
        prop_assert_eq!(d.lookup_explained(&c), (Verdict::Channel(ChannelId(9)), MatchKind::Host));
        prop_assert_eq!(d.lookup(&Classification::Icmp { dst: key.dst, icmp_type: 8 }), Verdict::Channel(ChannelId(9)));
        d.remove_host(&key.dst);
        prop_assert_eq!(d.lookup_explained(&c), (Verdict::Drop, MatchKind::Default));
    }
}
