//! The director's forwarding engine (NAT and DR on NI channels) on the simulated NIC, in
//! every receive mode: rewrites and checksums, scheduling through the data path, runtime
//! weights, pass-through of non-VIP traffic, per-service early discard under a SYN
//! flood, and robustness against malformed and arbitrary frames.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};

use lrp_core::flow::{classify, Classification, FlowKey, Proto, TcpFlags};
use lrp_core::wire::verify;
use lrp_examples::director::config::ForwardMode;
use lrp_examples::director::conntrack::ConnState;
use lrp_examples::director::forward::{DropCause, ServerSpec, Service, ServiceSpec};
use lrp_examples::director::scheduler::Algorithm;
use lrp_net::sim::{build, SimConfig, SimPeer, NIC_MAC, PEER_MAC};
use lrp_net::{EthernetAddress, Mode, Nic, NicConfig};
use proptest::prelude::*;

const MODES: [Mode; 3] = [Mode::NiLrp, Mode::SoftLrp, Mode::Eager];
const SYN: u8 = TcpFlags::SYN;
const ACK: u8 = TcpFlags::ACK;
const FIN: u8 = TcpFlags::FIN;
const RST: u8 = TcpFlags::RST;
const PSH: u8 = TcpFlags::PSH;

fn vip(last: u8, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, last), port)
}

fn server_addr(i: u8, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(10, 1, 0, 1 + i), port)
}

fn server_mac(i: u8) -> EthernetAddress {
    EthernetAddress([0x02, 0, 0, 0, 0x01, i])
}

fn servers(n: u8, port: u16) -> Vec<ServerSpec> {
    (0..n)
        .map(|i| ServerSpec::new(server_addr(i, port).into(), server_mac(i)))
        .collect()
}

fn client(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(10, 9, 0, 1), port)
}

fn sim(mode: Mode) -> (Nic, SimPeer) {
    Nic::sim(SimConfig::new(
        NicConfig::default().mode(mode).frame_count(1024),
    ))
    .unwrap()
}

fn nat_tcp(nic: &Nic, n: u8) -> Service {
    let spec = ServiceSpec::new(
        "web",
        Proto::Tcp,
        vip(100, 80).into(),
        ForwardMode::Nat,
        servers(n, 8080),
    );
    Service::open(nic, spec).unwrap()
}

/// Classify a transmitted frame, check its checksums, return its key and flags.
fn parse(frame: &[u8]) -> (FlowKey, TcpFlags) {
    let class = classify(frame);
    let Classification::Flow { key, flags, .. } = class else {
        panic!("not a flow: {class:?}");
    };
    verify(frame, &class).expect("valid checksums");
    (key, flags)
}

fn ttl(frame: &[u8]) -> u8 {
    frame[14 + 8]
}

fn dst_mac(frame: &[u8]) -> EthernetAddress {
    EthernetAddress::from_bytes(&frame[0..6])
}

fn src_mac(frame: &[u8]) -> EthernetAddress {
    EthernetAddress::from_bytes(&frame[6..12])
}

/// Inject `frame`, poll the service, return what it transmitted.
fn through(peer: &SimPeer, service: &mut Service, frame: &[u8]) -> Vec<Vec<u8>> {
    peer.inject(frame);
    service.poll(0, 256);
    peer.take_tx()
}

fn sock(a: SocketAddrV4) -> SocketAddr {
    a.into()
}

#[test]
fn nat_tcp_both_ways() {
    for mode in MODES {
        let (nic, peer) = sim(mode);
        let mut svc = nat_tcp(&nic, 2);
        let c = client(40000);
        let v = vip(100, 80);
        // Client SYN: to a server, rewritten.
        let out = through(&peer, &mut svc, &build::tcp_v4(c, v, SYN, b""));
        assert_eq!(out.len(), 1, "{mode:?}");
        let (key, _) = parse(&out[0]);
        let chosen = SocketAddr::new(key.dst, key.dport);
        let i = servers(2, 8080)
            .iter()
            .position(|s| s.addr == chosen)
            .expect("a server") as u8;
        assert_eq!((key.src, key.sport), (IpAddr::V4(*c.ip()), c.port()));
        assert_eq!(dst_mac(&out[0]), server_mac(i));
        assert_eq!(src_mac(&out[0]), NIC_MAC);
        assert_eq!(ttl(&out[0]), 63);
        let ckey = FlowKey {
            proto: Proto::Tcp,
            src: (*c.ip()).into(),
            dst: (*v.ip()).into(),
            sport: c.port(),
            dport: v.port(),
        };
        assert_eq!(svc.table().get(&ckey, 0).unwrap().state, ConnState::SynRecv);
        // Server SYN-ACK: back to the client, from the VIP.
        let s = server_addr(i, 8080);
        let out = through(&peer, &mut svc, &build::tcp_v4(s, c, SYN | ACK, b""));
        assert_eq!(out.len(), 1, "{mode:?}");
        let (key, flags) = parse(&out[0]);
        assert_eq!(flags.0, SYN | ACK);
        assert_eq!(SocketAddr::new(key.src, key.sport), sock(v));
        assert_eq!(SocketAddr::new(key.dst, key.dport), sock(c));
        assert_eq!(dst_mac(&out[0]), EthernetAddress(build::PEER_MAC));
        assert_eq!(src_mac(&out[0]), NIC_MAC);
        assert_eq!(ttl(&out[0]), 63);
        // ACK and data: same server; the state moves to ESTABLISHED.
        for (flags, payload) in [(ACK, &b""[..]), (ACK | PSH, &b"GET / HTTP/1.0\r\n\r\n"[..])] {
            let out = through(&peer, &mut svc, &build::tcp_v4(c, v, flags, payload));
            assert_eq!(out.len(), 1);
            let (key, _) = parse(&out[0]);
            assert_eq!(SocketAddr::new(key.dst, key.dport), chosen);
            assert!(out[0].ends_with(payload));
        }
        assert_eq!(
            svc.table().get(&ckey, 0).unwrap().state,
            ConnState::Established
        );
        // Server data back.
        let out = through(&peer, &mut svc, &build::tcp_v4(s, c, ACK | PSH, b"hello"));
        assert_eq!(out.len(), 1);
        assert_eq!(parse(&out[0]).0.src, IpAddr::V4(*v.ip()));
        assert!(out[0].ends_with(b"hello"));
        // FIN, then RST move the state.
        assert_eq!(
            through(&peer, &mut svc, &build::tcp_v4(c, v, FIN | ACK, b"")).len(),
            1
        );
        assert_eq!(svc.table().get(&ckey, 0).unwrap().state, ConnState::FinWait);
        assert_eq!(
            through(&peer, &mut svc, &build::tcp_v4(s, c, RST, b"")).len(),
            1
        );
        assert_eq!(svc.table().get(&ckey, 0).unwrap().state, ConnState::Close);
        let stats = svc.stats();
        assert_eq!(stats.counters.to_servers_packets, 4);
        assert_eq!(stats.counters.to_clients_packets, 3);
        assert_eq!(stats.counters.new_connections, 1);
        assert_eq!(stats.counters.total_drops(), 0);
        println!("{mode:?}\n{stats}");
        assert!(nic.census().is_conserved());
    }
}

#[test]
fn ttl_expired_is_dropped_and_counted() {
    for mode in MODES {
        let (nic, peer) = sim(mode);
        let mut svc = nat_tcp(&nic, 1);
        let mut f = build::tcp_v4(client(1), vip(100, 80), SYN, b"");
        let mut ip = smoltcp::wire::Ipv4Packet::new_unchecked(&mut f[14..]);
        ip.set_hop_limit(1);
        ip.fill_checksum();
        assert!(through(&peer, &mut svc, &f).is_empty());
        assert_eq!(svc.counters().drops(DropCause::TtlExpired), 1, "{mode:?}");
        assert!(svc.table().is_empty());
    }
}

/// Send `n` SYNs from distinct ports, return the chosen server index of each, in order.
fn spread(peer: &SimPeer, svc: &mut Service, first_port: u16, n: u16) -> Vec<u8> {
    (0..n)
        .map(|k| {
            let out = through(
                peer,
                svc,
                &build::tcp_v4(client(first_port + k), vip(100, 80), SYN, b""),
            );
            assert_eq!(out.len(), 1);
            let (key, _) = parse(&out[0]);
            let IpAddr::V4(a) = key.dst else { panic!() };
            a.octets()[3] - 1
        })
        .collect()
}

#[test]
fn rr_spreads_in_order_and_weight_zero_drains() {
    for mode in MODES {
        let (nic, peer) = sim(mode);
        let mut svc = nat_tcp(&nic, 3);
        let picks = spread(&peer, &mut svc, 10_000, 30);
        let expect: Vec<u8> = (0..30).map(|k| (k % 3) as u8).collect();
        assert_eq!(picks, expect, "{mode:?}");
        // Drain server 0: no new flows; its flow (port 10000) continues.
        svc.set_weight(sock(server_addr(0, 8080)), 0).unwrap();
        let picks = spread(&peer, &mut svc, 20_000, 10);
        assert!(picks.iter().all(|&i| i != 0), "{picks:?}");
        let out = through(
            &peer,
            &mut svc,
            &build::tcp_v4(client(10_000), vip(100, 80), ACK | PSH, b"still here"),
        );
        assert_eq!(parse(&out[0]).0.dst, IpAddr::V4(*server_addr(0, 8080).ip()));
        let stats = svc.stats();
        assert_eq!(stats.servers[0].weight, 0);
        assert_eq!(stats.servers[0].packets, 11);
    }
}

#[test]
fn wrr_ratios() {
    for mode in MODES {
        let (nic, peer) = sim(mode);
        let weighted: Vec<ServerSpec> = servers(3, 8080)
            .into_iter()
            .zip([3, 2, 1])
            .map(|(s, w)| s.weight(w))
            .collect();
        let spec = ServiceSpec::new(
            "web",
            Proto::Tcp,
            vip(100, 80).into(),
            ForwardMode::Nat,
            weighted,
        )
        .algorithm(Algorithm::WeightedRoundRobin);
        let mut svc = Service::open(&nic, spec).unwrap();
        let picks = spread(&peer, &mut svc, 10_000, 60);
        let mut count = [0; 3];
        for p in picks {
            count[p as usize] += 1;
        }
        assert_eq!(count, [30, 20, 10], "{mode:?}");
    }
}

#[test]
fn runtime_add_and_remove_servers() {
    let (nic, peer) = sim(Mode::SoftLrp);
    let mut svc = nat_tcp(&nic, 1);
    assert_eq!(spread(&peer, &mut svc, 10_000, 2), [0, 0]);
    svc.add_server(ServerSpec::new(sock(server_addr(1, 8080)), server_mac(1)))
        .unwrap();
    assert!(svc
        .add_server(ServerSpec::new(sock(server_addr(1, 8080)), server_mac(1)))
        .is_err());
    let picks = spread(&peer, &mut svc, 11_000, 4);
    assert!(picks.contains(&1), "{picks:?}");
    // Replies of the new server are claimed by its source rule.
    let out = through(
        &peer,
        &mut svc,
        &build::tcp_v4(
            server_addr(1, 8080),
            client(11_000 + picks.iter().position(|&p| p == 1).unwrap() as u16),
            SYN | ACK,
            b"",
        ),
    );
    assert_eq!(out.len(), 1);
    // Remove server 0: its flows' next client packet is rescheduled, its replies are no
    // longer claimed (they go to the kernel).
    svc.remove_server(sock(server_addr(0, 8080))).unwrap();
    let out = through(
        &peer,
        &mut svc,
        &build::tcp_v4(client(10_000), vip(100, 80), SYN, b""),
    );
    assert_eq!(parse(&out[0]).0.dst, IpAddr::V4(*server_addr(1, 8080).ip()));
    assert!(through(
        &peer,
        &mut svc,
        &build::tcp_v4(server_addr(0, 8080), client(10_001), ACK, b"")
    )
    .is_empty());
    nic.poll_rx(64);
    assert_eq!(peer.take_kernel().len(), 1);
    assert!(svc.remove_server(sock(server_addr(0, 8080))).is_err());
}

#[test]
fn dr_rewrites_only_macs() {
    for mode in MODES {
        let (nic, peer) = sim(mode);
        let spec = ServiceSpec::new(
            "dr",
            Proto::Tcp,
            vip(100, 80).into(),
            ForwardMode::Dr,
            servers(2, 80),
        );
        let mut svc = Service::open(&nic, spec).unwrap();
        // A server port other than the service's is refused in DR.
        assert!(svc
            .add_server(ServerSpec::new(sock(server_addr(5, 81)), server_mac(5)))
            .is_err());
        let c = client(5000);
        let mut chosen = None;
        for (flags, payload) in [(SYN, &b""[..]), (ACK, b""), (ACK | PSH, b"data")] {
            let sent = build::tcp_v4(c, vip(100, 80), flags, payload);
            let out = through(&peer, &mut svc, &sent);
            assert_eq!(out.len(), 1, "{mode:?}");
            let got = &out[0];
            parse(got);
            assert_eq!(got.len(), sent.len());
            let mac = dst_mac(got);
            assert!(mac == server_mac(0) || mac == server_mac(1));
            assert_eq!(*chosen.get_or_insert(mac), mac);
            assert_eq!(src_mac(got), NIC_MAC);
            for (k, (a, b)) in sent.iter().zip(got.iter()).enumerate().skip(12) {
                // TTL and the IPv4 header checksum change; nothing else.
                if ![14 + 8, 14 + 10, 14 + 11].contains(&k) {
                    assert_eq!(a, b, "byte {k} changed");
                }
            }
            assert_eq!(ttl(got), 63);
        }
        // DR has no reply channel: a "reply" from a server is not the director's.
        assert!(svc.stats().reply.is_none());
    }
}

#[test]
fn udp_nat_datagrams_and_replies() {
    for mode in MODES {
        let (nic, peer) = sim(mode);
        let spec = ServiceSpec::new(
            "dns",
            Proto::Udp,
            vip(100, 53).into(),
            ForwardMode::Nat,
            servers(2, 5353),
        );
        let mut svc = Service::open(&nic, spec).unwrap();
        assert!(svc.stats().syn.is_none());
        let c = client(3333);
        let out = through(&peer, &mut svc, &peer.udp_frame(c, vip(100, 53), b"query"));
        assert_eq!(out.len(), 1, "{mode:?}");
        let (key, _) = parse(&out[0]);
        assert_eq!(key.dport, 5353);
        let s = SocketAddrV4::new(
            match key.dst {
                IpAddr::V4(a) => a,
                IpAddr::V6(_) => unreachable!(),
            },
            5353,
        );
        // The next datagram of the flow goes to the same server.
        let out = through(&peer, &mut svc, &peer.udp_frame(c, vip(100, 53), b"again"));
        assert_eq!(parse(&out[0]).0.dst, key.dst);
        let out = through(&peer, &mut svc, &peer.udp_frame(s, c, b"answer"));
        assert_eq!(out.len(), 1);
        let (key, _) = parse(&out[0]);
        assert_eq!(SocketAddr::new(key.src, key.sport), sock(vip(100, 53)));
        assert_eq!(SocketAddr::new(key.dst, key.dport), sock(c));
        assert_eq!(dst_mac(&out[0]), PEER_MAC);
        assert!(out[0].ends_with(b"answer"));
    }
}

#[test]
fn non_vip_traffic_passes_to_the_kernel_and_unknown_replies_are_dropped() {
    for mode in MODES {
        let (nic, peer) = sim(mode);
        let mut svc = nat_tcp(&nic, 2);
        let others = [
            peer.udp_frame(client(1), vip(2, 9999), b"management"),
            build::tcp_v4(client(1), vip(100, 81), SYN, b""),
            build::arp_request(Ipv4Addr::new(10, 9, 0, 1), Ipv4Addr::new(10, 0, 0, 100)),
            build::icmp_echo_v4(
                Ipv4Addr::new(10, 9, 0, 1),
                Ipv4Addr::new(10, 0, 0, 100),
                1,
                1,
                b"ping",
            ),
        ];
        for f in &others {
            peer.inject(f);
        }
        svc.poll(0, 64);
        nic.poll_rx(64);
        assert!(peer.take_tx().is_empty(), "{mode:?}");
        let kernel = peer.take_kernel();
        assert_eq!(kernel.len(), others.len(), "{mode:?}");
        for f in &others {
            assert!(
                kernel.contains(f),
                "{mode:?}: a frame changed on its way to the kernel"
            );
        }
        // A reply from a server for a flow the director never saw.
        let out = through(
            &peer,
            &mut svc,
            &build::tcp_v4(server_addr(0, 8080), client(7), ACK, b""),
        );
        assert!(out.is_empty());
        assert_eq!(svc.counters().drops(DropCause::NoConnection), 1, "{mode:?}");
        assert_eq!(svc.stats().counters.total_drops(), 1);
    }
}

#[test]
fn malformed_frames_are_counted_and_never_panic() {
    for mode in MODES {
        let (nic, peer) = sim(mode);
        let mut svc = nat_tcp(&nic, 2);
        let c = client(1234);
        let valid = [
            build::tcp_v4(c, vip(100, 80), SYN, b""),
            build::tcp_v4(c, vip(100, 80), ACK | PSH, b"some payload bytes"),
            build::tcp_v4(server_addr(0, 8080), c, ACK, b"reply"),
            build::tcp_v4(server_addr(1, 8080), c, ACK, b"reply"),
        ];
        for f in &valid {
            for len in 0..f.len() {
                peer.inject(&f[..len]);
                svc.poll(0, 64);
                for out in peer.take_tx() {
                    parse(&out);
                }
            }
        }
        // A bad checksum reaches the channel (it classifies) and is counted.
        let mut bad = build::tcp_v4(client(99), vip(100, 80), SYN, b"x");
        *bad.last_mut().unwrap() ^= 0xff;
        assert!(through(&peer, &mut svc, &bad).is_empty());
        let malformed = svc.counters().drops(DropCause::Malformed);
        // EAGER's protocol work may already have dropped the bad checksum.
        assert!(malformed >= 1 || mode == Mode::Eager, "{mode:?}");
        nic.poll_rx(64);
        peer.take_kernel();
        assert!(nic.census().is_conserved());
    }
}

#[test]
fn syn_flood_is_discarded_at_its_service() {
    for mode in MODES {
        let (nic, peer) = sim(mode);
        let a = ServiceSpec::new(
            "a",
            Proto::Tcp,
            vip(100, 80).into(),
            ForwardMode::Nat,
            servers(2, 8080),
        )
        .capacities(4, 64, 64);
        let b = ServiceSpec::new(
            "b",
            Proto::Tcp,
            vip(101, 80).into(),
            ForwardMode::Nat,
            servers(2, 8081),
        )
        .capacities(4, 64, 64);
        let mut a = Service::open(&nic, a).unwrap();
        let mut b = Service::open(&nic, b).unwrap();
        let c = client(5555);
        let out = through(&peer, &mut b, &build::tcp_v4(c, vip(101, 80), SYN, b""));
        assert_eq!(out.len(), 1);
        // The flood against A, and B's established traffic, interleaved; nobody polls.
        for k in 0..400u16 {
            peer.inject(&build::tcp_v4(client(20_000 + k), vip(100, 80), SYN, b""));
            if k % 20 == 0 {
                peer.inject(&build::tcp_v4(c, vip(101, 80), ACK | PSH, b"keep flowing"));
            }
        }
        b.poll(0, 1024);
        let out = peer.take_tx();
        assert_eq!(out.len(), 20, "{mode:?}: B's established flow lost frames");
        a.poll(0, 1024);
        let forwarded_a = peer.take_tx().len();
        let sa = a.stats();
        let sb = b.stats();
        println!("{mode:?}: A forwarded {forwarded_a}\n{sa}{sb}");
        let syn = sa.syn.unwrap();
        assert!(forwarded_a < 400);
        match mode {
            Mode::NiLrp => assert!(syn.gate_drops > 0, "{syn}"),
            Mode::SoftLrp => assert!(syn.soft_discards > 0, "{syn}"),
            Mode::Eager => assert!(syn.endpoint_full_drops > 0, "{syn}"),
        }
        if mode != Mode::Eager {
            assert_eq!(sa.early_discards, syn.early_discards());
            assert!(sa.early_discards > 0);
        }
        assert_eq!(sb.early_discards, 0);
        assert_eq!(sb.counters.to_servers_packets, 21);
        assert!(sb.cpu_ns > 0 || sb.established.cpu_ns == 0);
        let json = serde_json::to_string(&sa).unwrap();
        assert!(json.contains("\"early_discards\""));
    }
}

fn arb_frame() -> impl Strategy<Value = Vec<u8>> {
    let c = client(4000);
    let valid = vec![
        build::tcp_v4(c, vip(100, 80), SYN, b""),
        build::tcp_v4(c, vip(100, 80), ACK | PSH, b"payload"),
        build::tcp_v4(c, vip(100, 80), FIN | ACK, b""),
        build::tcp_v4(server_addr(0, 8080), c, SYN | ACK, b""),
        build::tcp_v4(server_addr(1, 8080), c, ACK, b"data"),
        build::udp_v4(c, vip(100, 80), b"udp to a tcp vip"),
    ];
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..128),
        (
            proptest::sample::select(valid),
            proptest::collection::vec((any::<usize>(), any::<u8>()), 0..3),
            any::<usize>(),
        )
            .prop_map(|(mut f, edits, cut)| {
                for (at, b) in edits {
                    let at = at % f.len();
                    f[at] = b;
                }
                let keep = f.len() - cut % 8;
                f.truncate(keep);
                f
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Arbitrary and mutated frames never panic the engine; whatever it emits has valid
    /// checksums and goes to a configured server or to a client it has seen.
    #[test]
    fn arbitrary_frames(frames in proptest::collection::vec(arb_frame(), 1..40), m in 0usize..3) {
        let mode = MODES[m];
        let (nic, peer) = sim(mode);
        let mut svc = nat_tcp(&nic, 2);
        let server_ips: HashMap<IpAddr, EthernetAddress> = servers(2, 8080)
            .iter()
            .map(|s| (s.addr.ip(), s.mac))
            .collect();
        let mut clients_seen: HashSet<(IpAddr, EthernetAddress)> = HashSet::new();
        for f in &frames {
            if let Classification::Flow { key, .. } = classify(f) {
                if key.dst == IpAddr::V4(*vip(100, 80).ip()) && f.len() >= 12 {
                    clients_seen.insert((key.src, src_mac(f)));
                }
            }
            peer.inject(f);
            svc.poll(0, 64);
            for out in peer.take_tx() {
                let (key, _) = parse(&out);
                let mac = dst_mac(&out);
                let to_server = server_ips.get(&key.dst) == Some(&mac);
                let to_client = clients_seen.contains(&(key.dst, mac));
                prop_assert!(to_server || to_client, "unexpected destination {} {}", key, mac);
            }
        }
        nic.poll_rx(64);
        peer.take_kernel();
        prop_assert!(nic.census().is_conserved());
    }
}
