//! The XDP demux program against lrp-core's `classify` + `Demux`, frame by frame, in the
//! kernel (`BPF_PROG_TEST_RUN`, no interface needed; root for loading BPF).
//!
//! The program's per-slot and global counters say which rule fired (a slot without a
//! socket counts `no_socket` and returns the default action), so every frame's outcome
//! is compared exactly: channel, pass, drop, or malformed with its reason, and which table
//! matched. The corpus is a set of valid frames of every kind plus every truncation and
//! seeded random byte mutations of them.
//!
//! The rules include source entries (an LVS director's NAT replies: from a real server's
//! (address, port), addressed to any client), and the corpus has real servers' replies to
//! arbitrary client ports, replies that also match a listener (which wins), that match a
//! SYN-only listener (the default action wins), that match an exact entry, or that go to a
//! local address with a host entry (the source rule wins), in IPv4 and IPv6, TCP and UDP.

mod xdp_util;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use lrp_core::channel::GateState;
use lrp_core::demux::{
    ChannelId, DefaultAction, Demux, Listener, ListenerKey, MatchKind, SourceKey, Verdict,
};
use lrp_core::flow::{Classification, FlowKey, Proto, TcpFlags};
use lrp_net::testnet;
use lrp_net::xdp::{
    DemuxConfig, DemuxMode, LrpXdp, ProgramConfig, ProgramCounters, SlotCounters, XdpAction,
    XdpError,
};
use xdp_util::*;

const L: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const L2: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);
const R: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const L6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
const R6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
/// A real server (NAT mode: its replies are addressed to clients).
const RS: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
const RS6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 1, 0, 0, 0, 0x10);
/// Clients: addresses the director does not own and cannot enumerate.
const C: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 7);
const C6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7);
const SLOTS: u32 = 16;

/// What happened to one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Channel(u32),
    Pass,
    Drop,
    Malformed(usize),
}

/// Which table chose the channel (None for pass/drop/malformed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hit {
    Exact,
    Syn,
    Listener,
    Source,
    Host,
}

struct Snapshot {
    global: ProgramCounters,
    slots: Vec<SlotCounters>,
}

fn snapshot(x: &LrpXdp) -> Snapshot {
    Snapshot {
        global: x.counters().unwrap(),
        slots: (0..SLOTS).map(|s| x.slot_counters(s).unwrap()).collect(),
    }
}

/// Run one frame and derive its outcome from the counter deltas (NI mode: the soft
/// counter must not move).
fn run(x: &LrpXdp, frame: &[u8]) -> (XdpAction, Outcome, Option<Hit>) {
    let (action, outcome, hit, soft) = run_counted(x, frame);
    assert!(!soft, "the soft counter moved in NI mode");
    (action, outcome, hit)
}

/// Run one frame: its verdict, its outcome, the rule that matched, and whether it was
/// sent to the soft slot (SOFT mode counts that in addition to the rule).
fn run_counted(x: &LrpXdp, frame: &[u8]) -> (XdpAction, Outcome, Option<Hit>, bool) {
    let a = snapshot(x);
    let action = x.test_run(frame).unwrap();
    let b = snapshot(x);
    let mut outcomes = Vec::new();
    for s in 0..SLOTS as usize {
        let (p, q) = (a.slots[s], b.slots[s]);
        assert_eq!(
            q.redirected, p.redirected,
            "no socket is bound in test runs"
        );
        assert_eq!(q.gate_drops, p.gate_drops, "no gate is closed here");
        if q.no_socket != p.no_socket {
            outcomes.push(Outcome::Channel(s as u32));
        }
    }
    let (g, h) = (a.global, b.global);
    if h.passed != g.passed {
        outcomes.push(Outcome::Pass);
    }
    if h.dropped_default != g.dropped_default {
        outcomes.push(Outcome::Drop);
    }
    for r in 0..h.malformed.len() {
        if h.malformed[r] != g.malformed[r] {
            outcomes.push(Outcome::Malformed(r));
        }
    }
    assert_eq!(h.bad_slot, g.bad_slot);
    assert_eq!(
        outcomes.len(),
        1,
        "exactly one outcome per frame: {outcomes:?} for {frame:02x?}"
    );
    let mut hits = Vec::new();
    if h.hit_exact != g.hit_exact {
        hits.push(Hit::Exact);
    }
    if h.hit_syn != g.hit_syn {
        hits.push(Hit::Syn);
    }
    if h.hit_listener != g.hit_listener {
        hits.push(Hit::Listener);
    }
    if h.hit_source != g.hit_source {
        hits.push(Hit::Source);
    }
    if h.hit_host != g.hit_host {
        hits.push(Hit::Host);
    }
    let soft = h.hit_soft != g.hit_soft;
    assert!(hits.len() <= 1, "{hits:?}");
    (action, outcomes[0], hits.first().copied(), soft)
}

fn expected(d: &Demux, frame: &[u8]) -> (Outcome, Option<Hit>) {
    let class = lrp_core::flow::classify(frame);
    let (verdict, kind) = d.lookup_explained(&class);
    let outcome = match (verdict, class) {
        (Verdict::Channel(c), _) => Outcome::Channel(c.0),
        (Verdict::Pass, _) => Outcome::Pass,
        (Verdict::Drop, Classification::Malformed(r)) => Outcome::Malformed(r.index()),
        (Verdict::Drop, _) => Outcome::Drop,
    };
    let hit = match kind {
        MatchKind::Exact => Some(Hit::Exact),
        MatchKind::Syn => Some(Hit::Syn),
        MatchKind::Listener | MatchKind::WildcardListener => Some(Hit::Listener),
        MatchKind::Source => Some(Hit::Source),
        MatchKind::Host => Some(Hit::Host),
        MatchKind::Malformed | MatchKind::Default => None,
    };
    (outcome, hit)
}

fn ch(n: u32) -> ChannelId {
    ChannelId(n)
}

/// The same rules in the program and in a `Demux`.
fn rules(x: &mut LrpXdp, default: DefaultAction) -> Demux {
    let mut d = Demux::new(default);
    x.set_config(&DemuxConfig {
        mode: DemuxMode::Ni,
        default,
    })
    .unwrap();
    let exact = FlowKey {
        proto: Proto::Udp,
        src: R.into(),
        dst: L.into(),
        sport: 5555,
        dport: 9000,
    };
    // One of a real server's replies has an exact entry (beats its source entry).
    let reply = FlowKey {
        proto: Proto::Udp,
        src: RS.into(),
        dst: C.into(),
        sport: 53,
        dport: 33333,
    };
    for k in [exact, reply] {
        x.insert_flow(&k, ch(1)).unwrap();
        d.insert_flow(k, ch(1));
    }
    let listeners = [
        (
            ListenerKey::new(Proto::Udp, L.into(), 9000),
            Listener::new(ch(2)),
        ),
        (ListenerKey::any(Proto::Udp, 9000), Listener::new(ch(3))),
        (
            ListenerKey::new(Proto::Tcp, L.into(), 80),
            Listener::new(ch(4)).with_syn_channel(ch(5)),
        ),
        (
            ListenerKey::new(Proto::Tcp, L6.into(), 80),
            Listener::new(ch(6)).with_syn_channel(ch(7)),
        ),
        (ListenerKey::any(Proto::Udp, 53), Listener::new(ch(8))),
        (
            ListenerKey::any(Proto::Tcp, 22),
            Listener::new(ch(11)).with_syn_channel(ch(5)),
        ),
        // SYN-only: its other segments take the default action, even from a source.
        (
            ListenerKey::any(Proto::Tcp, 2222),
            Listener::syn_only(ch(5)),
        ),
    ];
    for (k, l) in listeners {
        x.insert_listener(&k, &l).unwrap();
        d.insert_listener(k, l);
    }
    for (a, c) in [(IpAddr::V4(L), 9), (IpAddr::V6(L6), 10)] {
        x.insert_host(a, ch(c)).unwrap();
        d.insert_host(a, ch(c));
    }
    for (k, c) in sources() {
        x.insert_source(&k, ch(c)).unwrap();
        d.insert_source(k, ch(c));
    }
    d
}

/// Source entries: real servers' service endpoints, and a peer endpoint (R:7777) whose
/// frames to local listeners must stay the listeners'.
fn sources() -> [(SourceKey, u32); 6] {
    [
        (SourceKey::new(Proto::Tcp, RS.into(), 8080), 12),
        (SourceKey::new(Proto::Udp, RS.into(), 53), 13),
        (SourceKey::new(Proto::Tcp, RS6.into(), 8080), 14),
        (SourceKey::new(Proto::Udp, RS6.into(), 53), 15),
        (SourceKey::new(Proto::Udp, R.into(), 7777), 13),
        (SourceKey::new(Proto::Tcp, R.into(), 7777), 12),
    ]
}

/// Frames that exercise the source entries (see [`sources`]).
fn source_corpus() -> Vec<Vec<u8>> {
    let syn = TcpFlags::SYN;
    let ack = TcpFlags::ACK;
    let psh_ack = TcpFlags::ACK | 0x08;
    let mut c = Vec::new();
    // Replies of the real servers to arbitrary client ports: the source entry.
    for cport in [1, 1024, 40000, 65535] {
        for flags in [syn | ack, ack, psh_ack, TcpFlags::FIN | ack] {
            c.push(eth(0x0800, &ipv4(RS, C, 6, 0, &tcp(8080, cport, flags))));
            c.push(eth(0x86dd, &ipv6(RS6, C6, 6, &tcp(8080, cport, flags))));
        }
        c.push(eth(0x0800, &ipv4(RS, C, 17, 0, &udp(53, cport, b"answer"))));
        c.push(eth(0x86dd, &ipv6(RS6, C6, 17, &udp(53, cport, b"answer"))));
    }
    c.extend([
        // The exact entry beats the source entry; the next client port does not.
        eth(0x0800, &ipv4(RS, C, 17, 0, &udp(53, 33333, b"exact"))),
        eth(0x0800, &ipv4(RS, C, 17, 0, &udp(53, 33334, b"source"))),
        // A client port that a wildcard listener has: the listener wins.
        eth(
            0x0800,
            &ipv4(RS, C, 17, 0, &udp(53, 53, b"wildcard udp 53")),
        ),
        eth(0x86dd, &ipv6(RS6, C6, 17, &udp(53, 53, b"wildcard udp 53"))),
        eth(0x0800, &ipv4(RS, C, 6, 0, &tcp(8080, 22, ack))),
        eth(0x0800, &ipv4(RS, C, 6, 0, &tcp(8080, 22, syn))),
        // A SYN-only listener claims its port: a SYN goes to its channel, the rest to
        // the default action, not to the source entry.
        eth(0x0800, &ipv4(RS, C, 6, 0, &tcp(8080, 2222, ack))),
        eth(0x0800, &ipv4(RS, C, 6, 0, &tcp(8080, 2222, syn))),
        eth(0x86dd, &ipv6(RS6, C6, 6, &tcp(8080, 2222, ack))),
        // To a local address: a specific listener wins; without one, the source entry
        // beats the host entry.
        eth(0x86dd, &ipv6(RS6, L6, 6, &tcp(8080, 80, ack))),
        eth(0x86dd, &ipv6(RS6, L6, 6, &tcp(8080, 80, syn))),
        eth(0x86dd, &ipv6(RS6, L6, 6, &tcp(8080, 81, ack))),
        eth(0x0800, &ipv4(RS, L, 17, 0, &udp(53, 9001, b"full nat"))),
        // A peer endpoint with source entries, to every kind of destination.
        eth(0x0800, &ipv4(R, L, 17, 0, &udp(7777, 9000, b"listener"))),
        eth(0x0800, &ipv4(R, L2, 17, 0, &udp(7777, 9000, b"wildcard"))),
        eth(0x0800, &ipv4(R, L, 17, 0, &udp(7777, 53, b"wildcard dns"))),
        eth(0x0800, &ipv4(R, L, 17, 0, &udp(7777, 9001, b"beats host"))),
        eth(
            0x0800,
            &ipv4(R, L2, 17, 0, &udp(7777, 9001, b"beats default")),
        ),
        eth(0x0800, &ipv4(R, L, 6, 0, &tcp(7777, 80, syn))),
        eth(0x0800, &ipv4(R, L, 6, 0, &tcp(7777, 80, ack))),
        eth(0x0800, &ipv4(R, L, 6, 0, &tcp(7777, 81, ack))),
        eth(0x0800, &ipv4(R, L2, 6, 0, &tcp(7777, 81, syn))),
        // Not the entries': other port, other protocol, other server, other family, the
        // reverse direction.
        eth(0x0800, &ipv4(RS, C, 6, 0, &tcp(8081, 40000, ack))),
        eth(0x0800, &ipv4(RS, C, 17, 0, &udp(8080, 40000, b"udp"))),
        eth(0x0800, &ipv4(RS, C, 6, 0, &tcp(53, 40000, ack))),
        eth(0x0800, &ipv4(R, C, 6, 0, &tcp(8080, 40000, ack))),
        eth(0x86dd, &ipv6(RS6, C6, 6, &tcp(53, 40000, ack))),
        eth(0x0800, &ipv4(C, RS, 6, 0, &tcp(40000, 8080, syn))),
        eth(0x86dd, &ipv6(C6, RS6, 17, &udp(40000, 53, b"query"))),
        // ICMP from a real server carries no ports: never a source match.
        eth(0x0800, &ipv4(RS, C, 1, 0, &[3, 3, 0, 0, 0, 0, 0, 0])),
        eth(0x86dd, &ipv6(RS6, C6, 58, &[1, 4, 0, 0, 0, 0, 0, 0])),
        // A later fragment has no ports (default); a first fragment does (source).
        eth(0x0800, &ipv4(RS, C, 17, 0x0003, &[0; 16])),
        eth(
            0x0800,
            &ipv4(RS, C, 17, 0x2000, &{
                let mut u = udp(53, 40000, &[7; 16]);
                u[4..6].copy_from_slice(&100u16.to_be_bytes());
                u
            }),
        ),
    ]);
    // A VLAN-tagged reply.
    let inner = eth(0x0800, &ipv4(RS, C, 6, 0, &tcp(8080, 40001, ack)));
    let mut tagged = inner[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x64]);
    tagged.extend_from_slice(&inner[12..]);
    c.push(tagged);
    c
}

/// Valid frames of every kind the program distinguishes.
fn corpus() -> Vec<Vec<u8>> {
    let syn = TcpFlags::SYN;
    let ack = TcpFlags::ACK;
    let mut c = vec![
        eth(0x0800, &ipv4(R, L, 17, 0, &udp(5555, 9000, b"exact"))),
        eth(0x0800, &ipv4(R, L, 17, 0, &udp(5556, 9000, b"listener"))),
        eth(0x0800, &ipv4(R, L2, 17, 0, &udp(5556, 9000, b"wildcard"))),
        // Unclaimed UDP/TCP: to a host address (host rule), elsewhere (default).
        eth(0x0800, &ipv4(R, L, 17, 0, &udp(5556, 9001, b"nobody"))),
        eth(0x0800, &ipv4(R, L2, 17, 0, &udp(5556, 9001, b"nobody"))),
        eth(0x0800, &ipv4(R, L, 6, 0, &tcp(40000, 81, syn))),
        eth(0x0800, &ipv4(R, L, 6, 0, &tcp(40000, 81, ack))),
        eth(0x0800, &ipv4(R, L2, 6, 0, &tcp(40000, 81, syn))),
        eth(0x86dd, &ipv6(R6, L6, 6, &tcp(40000, 81, syn))),
        eth(0x86dd, &ipv6(R6, L6, 17, &udp(5556, 9001, b"v6 nobody"))),
        eth(0x0800, &ipv4(R, L, 17, 0, &udp(5556, 53, b"dns"))),
        eth(0x0800, &ipv4(R, L, 6, 0, &tcp(40000, 80, syn))),
        eth(0x0800, &ipv4(R, L, 6, 0, &tcp(40000, 80, syn | ack))),
        eth(0x0800, &ipv4(R, L, 6, 0, &tcp(40000, 80, ack))),
        eth(0x0800, &ipv4(R, L2, 6, 0, &tcp(40000, 80, syn))),
        eth(0x0800, &ipv4(R, L2, 6, 0, &tcp(40000, 22, syn))),
        eth(0x0800, &ipv4(R, L2, 6, 0, &tcp(40000, 22, ack))),
        eth(0x0800, &ipv4(R, L, 1, 0, &[8, 0, 0, 0, 0, 1, 0, 1])),
        eth(0x0800, &ipv4(R, L2, 1, 0, &[8, 0, 0, 0, 0, 1, 0, 1])),
        eth(0x0800, &ipv4(R, L, 58, 0, &[128, 0, 0, 0])),
        eth(0x0800, &ipv4(R, L, 47, 0, &[0; 8])),
        // First fragment (MF, offset 0): UDP length covers the whole datagram.
        eth(
            0x0800,
            &ipv4(R, L, 17, 0x2000, &{
                let mut u = udp(5556, 9000, &[7; 16]);
                u[4..6].copy_from_slice(&100u16.to_be_bytes());
                u
            }),
        ),
        // Later fragment.
        eth(0x0800, &ipv4(R, L, 17, 0x0003, &[0; 16])),
        arp(R, L),
        arp(R, L2),
        eth(0x86dd, &ipv6(R6, L6, 17, &udp(5556, 53, b"v6 dns"))),
        eth(0x86dd, &ipv6(R6, L6, 6, &tcp(40000, 80, syn))),
        eth(0x86dd, &ipv6(R6, L6, 6, &tcp(40000, 80, ack))),
        eth(0x86dd, &ipv6(R6, L6, 58, &[128, 0, 0, 0, 0, 1, 0, 1])),
        eth(0x88cc, &[0; 46]),
    ];
    // IPv4 with options (IHL 6).
    let mut opt = ipv4(R, L, 17, 0, &udp(5556, 9000, b"opts"));
    opt.splice(20..20, [1, 1, 1, 0]);
    opt[0] = 0x46;
    let total = opt.len() as u16;
    opt[2..4].copy_from_slice(&total.to_be_bytes());
    c.push(eth(0x0800, &opt));
    // Ethernet padding after a short IP packet.
    let mut padded = eth(0x0800, &ipv4(R, L, 17, 0, &udp(5556, 9000, b"")));
    padded.resize(60, 0);
    c.push(padded);
    // VLAN tag, and a second one (QinQ: another ethertype).
    let inner = eth(0x0800, &ipv4(R, L, 17, 0, &udp(5556, 9000, b"vlan")));
    let mut tagged = inner[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x64]);
    tagged.extend_from_slice(&inner[12..]);
    let mut qinq = tagged[..16].to_vec();
    qinq.extend_from_slice(&[0x81, 0x00, 0x00, 0x01]);
    qinq.extend_from_slice(&tagged[16..]);
    c.push(tagged);
    c.push(qinq);
    // IPv6 extension headers: hop-by-hop + destination options, then UDP.
    let mut ext = vec![60, 0, 1, 4, 0, 0, 0, 0]; // hop-by-hop, next: dst opts
    ext.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]); // dst opts, next: UDP
    ext.extend_from_slice(&udp(5556, 53, b"ext"));
    c.push(eth(0x86dd, &ipv6(R6, L6, 0, &ext)));
    // IPv6 fragments: first (M set) and later.
    let mut first = vec![17, 0, 0, 1, 0, 0, 0, 9];
    let mut u = udp(5556, 53, &[1; 8]);
    u[4..6].copy_from_slice(&200u16.to_be_bytes());
    first.extend_from_slice(&u);
    c.push(eth(0x86dd, &ipv6(R6, L6, 44, &first)));
    let mut later = vec![17, 0, 0, 0x40, 0, 0, 0, 9];
    later.extend_from_slice(&[0; 16]);
    c.push(eth(0x86dd, &ipv6(R6, L6, 44, &later)));
    // Nine destination-options headers: one more than the walk allows.
    let mut long = Vec::new();
    for i in 0..9 {
        long.extend_from_slice(&[if i == 8 { 17 } else { 60 }, 0, 1, 4, 0, 0, 0, 0]);
    }
    long.extend_from_slice(&udp(5556, 53, b"x"));
    c.push(eth(0x86dd, &ipv6(R6, L6, 60, &long)));
    c.extend(source_corpus());
    c
}

/// Every truncation and seeded random mutations of the corpus.
fn mutations(base: &[Vec<u8>], seed: u64, per_frame: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng(seed);
    let mut out = Vec::new();
    for f in base {
        for len in 14..f.len() {
            out.push(f[..len].to_vec());
        }
        for _ in 0..per_frame {
            let mut m = f.clone();
            for _ in 0..1 + rng.below(3) {
                let i = rng.below(m.len().min(80));
                m[i] = rng.next() as u8;
            }
            if rng.below(4) == 0 {
                let len = 14 + rng.below(m.len() - 13);
                m.truncate(len);
            }
            out.push(m);
        }
    }
    out
}

fn load() -> Option<LrpXdp> {
    if !testnet::require("xdp_demux") {
        return None;
    }
    let cfg = ProgramConfig {
        max_slots: SLOTS,
        ..ProgramConfig::default()
    };
    Some(LrpXdp::load(&cfg).expect("load the XDP program"))
}

fn differential(default: DefaultAction, seed: u64) {
    let Some(mut x) = load() else { return };
    let d = rules(&mut x, default);
    let base = corpus();
    let mut frames = base.clone();
    frames.extend(mutations(&base, seed, 40));
    let mut by_outcome = std::collections::BTreeMap::new();
    let mut by_hit = std::collections::BTreeMap::new();
    for f in &frames {
        let (action, got, hit) = run(&x, f);
        let (want, want_hit) = expected(&d, f);
        assert_eq!(
            got, want,
            "frame {f:02x?}: program says {got:?}, lrp-core says {want:?}"
        );
        assert_eq!(
            hit, want_hit,
            "frame {f:02x?}: matched by {hit:?}, lrp-core by {want_hit:?}"
        );
        let want_action = match got {
            Outcome::Malformed(_) | Outcome::Drop => XdpAction::Drop,
            Outcome::Pass => XdpAction::Pass,
            // No socket in the slot: the default action.
            Outcome::Channel(_) => match default {
                DefaultAction::Pass => XdpAction::Pass,
                DefaultAction::Drop => XdpAction::Drop,
            },
        };
        assert_eq!(action, want_action, "frame {f:02x?}");
        *by_outcome.entry(format!("{got:?}")).or_insert(0u32) += 1;
        *by_hit.entry(format!("{hit:?}")).or_insert(0u32) += 1;
    }
    eprintln!(
        "{} frames, outcomes: {by_outcome:?}, rules: {by_hit:?}",
        frames.len()
    );
    // The corpus must exercise every rule and most malformed reasons.
    for hit in [Hit::Exact, Hit::Syn, Hit::Listener, Hit::Source, Hit::Host] {
        assert!(
            by_hit.contains_key(&format!("{:?}", Some(hit))),
            "{hit:?} never matched"
        );
    }
    for s in 1..SLOTS {
        assert!(
            by_outcome.contains_key(&format!("Channel({s})")),
            "slot {s} never chosen"
        );
    }
    let malformed = by_outcome
        .keys()
        .filter(|k| k.starts_with("Malformed"))
        .count();
    assert!(
        malformed >= 8,
        "only {malformed} malformed reasons exercised: {by_outcome:?}"
    );
}

#[test]
fn program_matches_lrp_core_with_default_pass() {
    differential(DefaultAction::Pass, 0x5eed_0001);
}

#[test]
fn program_matches_lrp_core_with_default_drop() {
    differential(DefaultAction::Drop, 0x5eed_0002);
}

#[test]
fn soft_mode_sends_every_claimed_frame_to_one_slot() {
    let Some(mut x) = load() else { return };
    let d = rules(&mut x, DefaultAction::Pass);
    x.set_config(&DemuxConfig {
        mode: DemuxMode::Soft { slot: 0 },
        default: DefaultAction::Pass,
    })
    .unwrap();
    assert_eq!(x.demux_config().unwrap().mode, DemuxMode::Soft { slot: 0 });
    // The same lookup as NI mode decides whether lrp claims a frame; every claimed frame
    // goes to slot 0, everything else has the outcome lrp-core gives it.
    let base = corpus();
    let mut frames = base.clone();
    frames.extend(mutations(&base, 0x5eed_0003, 10));
    let mut claimed = 0;
    for f in &frames {
        let (action, got, hit, soft) = run_counted(&x, f);
        let (want, want_hit) = expected(&d, f);
        assert_eq!(hit, want_hit, "frame {f:02x?}");
        match want {
            Outcome::Channel(_) => {
                claimed += 1;
                assert_eq!((got, soft), (Outcome::Channel(0), true), "frame {f:02x?}");
                // No socket in slot 0 here: the default action.
                assert_eq!(action, XdpAction::Pass);
            }
            other => {
                assert_eq!((got, soft), (other, false), "frame {f:02x?}");
            }
        }
    }
    assert!(claimed > 100, "only {claimed} claimed frames");
    // The gates of the rules' slots are not consulted; the soft slot's gate is.
    let listener_frame = eth(0x0800, &ipv4(R, L, 17, 0, &udp(5556, 9000, b"slot 2")));
    x.set_gate(2, GateState::Closed).unwrap();
    assert_eq!(
        run_counted(&x, &listener_frame),
        (
            XdpAction::Pass,
            Outcome::Channel(0),
            Some(Hit::Listener),
            true
        )
    );
    x.set_gate(2, GateState::Open).unwrap();
    x.set_gate(0, GateState::Closed).unwrap();
    let before = x.slot_counters(0).unwrap().gate_drops;
    assert_eq!(x.test_run(&listener_frame).unwrap(), XdpAction::Drop);
    assert_eq!(x.slot_counters(0).unwrap().gate_drops, before + 1);
    x.set_gate(0, GateState::Open).unwrap();
}

#[test]
fn closed_gate_drops_before_the_redirect() {
    let Some(mut x) = load() else { return };
    let _ = rules(&mut x, DefaultAction::Pass);
    let f = eth(
        0x0800,
        &ipv4(R, L, 17, 0, &udp(5556, 9000, b"listener slot 2")),
    );
    let gates = x.gates().unwrap();
    x.set_gate(2, GateState::Closed).unwrap();
    assert_eq!(
        gates.get(2).unwrap(),
        GateState::Closed,
        "a second handle sees the same map"
    );
    let before = x.slot_counters(2).unwrap();
    for _ in 0..5 {
        assert_eq!(x.test_run(&f).unwrap(), XdpAction::Drop);
    }
    let after = x.slot_counters(2).unwrap();
    assert_eq!(after.gate_drops - before.gate_drops, 5);
    assert_eq!(after.no_socket, before.no_socket);
    x.set_gate(2, GateState::Open).unwrap();
    assert_eq!(
        run(&x, &f),
        (XdpAction::Pass, Outcome::Channel(2), Some(Hit::Listener))
    );
}

#[test]
fn syn_only_listener_leaves_other_segments_to_the_default() {
    let Some(mut x) = load() else { return };
    x.set_config(&DemuxConfig::default()).unwrap();
    let l = Listener::syn_only(ch(5));
    x.insert_listener(&ListenerKey::any(Proto::Tcp, 8080), &l)
        .unwrap();
    let syn = eth(0x0800, &ipv4(R, L, 6, 0, &tcp(1000, 8080, TcpFlags::SYN)));
    let ack = eth(0x0800, &ipv4(R, L, 6, 0, &tcp(1000, 8080, TcpFlags::ACK)));
    assert_eq!(
        run(&x, &syn),
        (XdpAction::Pass, Outcome::Channel(5), Some(Hit::Syn))
    );
    assert_eq!(run(&x, &ack), (XdpAction::Pass, Outcome::Pass, None));
    // Even with a host entry for the address: the listener entry claims the port, and
    // its missing plain channel means the default action (what lrp-net's facade does with
    // the SYN-only listener entry), not the host's RST responder.
    x.insert_host(L.into(), ch(9)).unwrap();
    assert_eq!(run(&x, &ack), (XdpAction::Pass, Outcome::Pass, None));
    x.remove_listener(&ListenerKey::any(Proto::Tcp, 8080))
        .unwrap();
    x.remove_listener(&ListenerKey::any(Proto::Tcp, 8080))
        .unwrap(); // absent: fine
                   // No listener any more: the host rule takes the port's segments.
    assert_eq!(
        run(&x, &syn),
        (XdpAction::Pass, Outcome::Channel(9), Some(Hit::Host))
    );
    x.remove_host(L.into()).unwrap();
    assert_eq!(run(&x, &syn), (XdpAction::Pass, Outcome::Pass, None));
}

#[test]
fn source_rule_takes_replies_until_removed() {
    let Some(mut x) = load() else { return };
    x.set_config(&DemuxConfig::default()).unwrap();
    let key = SourceKey::new(Proto::Tcp, RS.into(), 8080);
    let reply = |cport| eth(0x0800, &ipv4(RS, C, 6, 0, &tcp(8080, cport, TcpFlags::ACK)));
    let to_local = eth(0x0800, &ipv4(RS, L, 6, 0, &tcp(8080, 5000, TcpFlags::ACK)));
    assert_eq!(
        run(&x, &reply(40000)),
        (XdpAction::Pass, Outcome::Pass, None)
    );
    x.insert_source(&key, ch(3)).unwrap();
    x.insert_host(L.into(), ch(9)).unwrap();
    for cport in [1, 40000, 65535] {
        assert_eq!(
            run(&x, &reply(cport)),
            (XdpAction::Pass, Outcome::Channel(3), Some(Hit::Source))
        );
    }
    assert_eq!(
        run(&x, &to_local),
        (XdpAction::Pass, Outcome::Channel(3), Some(Hit::Source))
    );
    // Replacing moves it; a listener for the destination takes it back.
    x.insert_source(&key, ch(4)).unwrap();
    assert_eq!(run(&x, &reply(40000)).1, Outcome::Channel(4));
    x.insert_listener(&ListenerKey::any(Proto::Tcp, 40000), &Listener::new(ch(6)))
        .unwrap();
    assert_eq!(
        run(&x, &reply(40000)),
        (XdpAction::Pass, Outcome::Channel(6), Some(Hit::Listener))
    );
    x.remove_source(&key).unwrap();
    x.remove_source(&key).unwrap(); // absent: fine
    assert_eq!(
        run(&x, &reply(40001)),
        (XdpAction::Pass, Outcome::Pass, None)
    );
    assert_eq!(
        run(&x, &to_local),
        (XdpAction::Pass, Outcome::Channel(9), Some(Hit::Host))
    );
    assert!(matches!(
        x.insert_source(&key, ChannelId(SLOTS)),
        Err(XdpError::SlotOutOfRange { .. })
    ));
}

#[test]
fn slots_beyond_the_maps_are_refused() {
    let Some(mut x) = load() else { return };
    let k = FlowKey {
        proto: Proto::Udp,
        src: R.into(),
        dst: L.into(),
        sport: 1,
        dport: 2,
    };
    match x.insert_flow(&k, ChannelId(SLOTS)) {
        Err(XdpError::SlotOutOfRange { slot, max_slots }) => {
            assert_eq!((slot, max_slots), (SLOTS, SLOTS))
        }
        other => panic!("expected SlotOutOfRange, got {other:?}"),
    }
    assert!(matches!(
        x.set_gate(SLOTS, GateState::Closed),
        Err(XdpError::SlotOutOfRange { .. })
    ));
    assert!(matches!(
        x.set_config(&DemuxConfig {
            mode: DemuxMode::Soft { slot: SLOTS },
            default: DefaultAction::Pass
        }),
        Err(XdpError::SlotOutOfRange { .. })
    ));
}
