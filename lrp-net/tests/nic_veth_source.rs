//! Source rules on a real veth pair (`Nic::open`, public API only), as an LVS director in
//! NAT mode uses them: the peer namespace plays a real server whose route to the clients
//! goes through lrp's end (the director), and a Linux UDP socket there sends "replies"
//! from its service port (a fixed port) to client addresses and ports that the director
//! does not own. A channel with `Rule::source(udp, server, port)` receives every one of
//! them — in NI-LRP (the XDP program redirects them to the channel's own socket) and in
//! SOFT-LRP (the program claims them for the shared socket, the facade demultiplexes) —
//! while datagrams from the server's other ports take the default action (`XDP_PASS`),
//! and datagrams from the service port addressed to a local listener stay the listener's.

mod xdp_util;

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lrp_core::flow::{classify, Classification, Proto};
use lrp_core::wire;
use lrp_net::testnet::{
    self, udp_payload, TestNet, TestNetConfig, TestNetError, UdpFlood, UdpSendReport,
};
use lrp_net::{Channel, Frame, Mode, Nic, NicConfig, Rule, XdpAttach};
use xdp_util::serial;

const PAYLOAD: usize = 64;
/// The real server's service port: its replies come from here.
const SERVICE: u16 = 8080;
/// Another port of the real server (not a service: its traffic is not claimed).
const OTHER: u16 = 8081;
/// A local listener port.
const LISTENER: u16 = 9000;
/// The clients' network, routed through the director in the real server's namespace.
const CLIENTS: &str = "203.0.113.0/24";

fn client(i: u8) -> SocketAddrV4 {
    SocketAddrV4::new(
        Ipv4Addr::new(203, 0, 113, 10 + i),
        40000 + u16::from(i) * 1111,
    )
}

fn net(attach: XdpAttach) -> TestNet {
    let net = TestNet::new(&TestNetConfig {
        mtu: (attach == XdpAttach::Driver).then_some(3000),
        // No ARP: the XDP program's pass counter then counts exactly the unclaimed port.
        static_neighbors: true,
        ..TestNetConfig::default()
    })
    .expect("build the test network");
    // NAT mode: the real server's route to the clients is the director.
    let via = net.local().ipv4().to_string();
    let peer_if = net.peer().ifname().to_owned();
    let out = net
        .peer()
        .ns()
        .exec(
            "ip",
            &["route", "add", CLIENTS, "via", &via, "dev", &peer_if],
        )
        .expect("route to the clients");
    assert!(out.status.success(), "ip route add: {out:?}");
    net
}

fn open(net: &TestNet, mode: Mode, attach: XdpAttach) -> Nic {
    let frame_size = match attach {
        XdpAttach::Skb => 2048,
        XdpAttach::Driver => 4096,
    };
    let config = NicConfig::default()
        .frame_size(frame_size)
        .frame_count(8192)
        .rx_ring(4096)
        .batch(256)
        .attach(attach)
        .mode(mode);
    let ifname = net.local().ifname().to_owned();
    net.local()
        .ns()
        .run(move || Nic::open(&ifname, config))
        .expect("namespace thread")
        .expect("Nic::open")
}

/// The thread of [`send_from`]: entering the namespace, then sending, may fail.
type Senders = JoinHandle<Result<Result<Vec<UdpSendReport>, TestNetError>, TestNetError>>;

/// Linux UDP sockets in the real server's namespace, bound to `sport`, sending `count`
/// datagrams to each of `dsts` in turn (one socket at a time: they share the port).
fn send_from(net: &TestNet, sport: u16, dsts: Vec<SocketAddrV4>, count: u64) -> Senders {
    let bind = SocketAddr::V4(SocketAddrV4::new(net.peer().ipv4(), sport));
    net.peer().ns().spawn(move || {
        dsts.into_iter()
            .map(|dst| {
                let mut flood = UdpFlood::new(SocketAddr::V4(dst), count, PAYLOAD);
                flood.bind = bind;
                flood.run()
            })
            .collect::<Result<Vec<_>, _>>()
    })
}

/// Datagrams sent by the senders of [`send_from`].
fn join(h: Senders) -> u64 {
    let reports = h
        .join()
        .expect("sender thread")
        .expect("namespace")
        .expect("sender");
    reports.iter().map(|r| r.sent).sum()
}

/// Receive from `ch` until `want` datagrams arrived, checking each: UDP from the real
/// server's `sport`, valid checksums, a payload of `udp_payload`, each (destination,
/// sequence number) once. Returns the (destination, sequence number) pairs seen.
fn receive(nic: &Nic, ch: &Channel, sport: u16, want: u64) -> HashSet<(SocketAddr, u64)> {
    let mut seen = HashSet::new();
    let mut frames: Vec<Frame> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while (seen.len() as u64) < want {
        assert!(
            Instant::now() < deadline,
            "timed out: {} of {want}; {:?} {:?}",
            seen.len(),
            ch.stats(),
            nic.stats()
        );
        if ch.try_recv_batch(256, &mut frames) == 0 {
            ch.wait(Some(Duration::from_millis(2))).unwrap();
            continue;
        }
        for f in frames.drain(..) {
            let class = classify(&f);
            let Classification::Flow { key, offsets, .. } = class else {
                panic!("not a UDP frame: {class:?}");
            };
            assert_eq!((key.proto, key.sport), (Proto::Udp, sport));
            wire::verify(&f, &class).expect("valid IPv4 and UDP checksums");
            let payload = &f[usize::from(offsets.l4) + 8..usize::from(offsets.l3 + offsets.l3_len)];
            let seq = u64::from_be_bytes(payload[..8].try_into().unwrap());
            assert_eq!(payload, &udp_payload(seq, PAYLOAD)[..]);
            let dst = SocketAddr::new(key.dst, key.dport);
            assert!(seen.insert((dst, seq)), "{dst} #{seq} delivered twice");
        }
    }
    seen
}

/// Run the poll step until the rings are quiet; check the census.
fn census_settled(nic: &Nic) -> lrp_net::Census {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        nic.poll_rx(1024);
        let c = nic.census();
        if (c.tx == 0 && c.completion == 0 && c.rx == 0) || Instant::now() > deadline {
            assert!(c.is_conserved(), "{c:?}");
            assert_eq!(c.pool.violations, 0, "{c:?}");
            return c;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn nat_replies(mode: Mode, attach: XdpAttach) {
    let test = format!("nic_veth_source nat_replies {mode:?} {attach:?}");
    if !testnet::require(&test) {
        return;
    }
    let _g = serial();
    const N: u64 = 500;
    const CLIENTS_N: u8 = 3;
    let net = net(attach);
    let nic = open(&net, mode, attach);
    let rs = IpAddr::V4(net.peer().ipv4());
    let replies = nic
        .channel(Rule::source(Proto::Udp, rs, SERVICE), 2048)
        .unwrap();
    let local = IpAddr::V4(net.local().ipv4());
    let listener = nic
        .channel(Rule::listener(Proto::Udp, local, LISTENER), 2048)
        .unwrap();

    // Replies to three clients at once, and traffic from another port of the server.
    let senders = send_from(&net, SERVICE, (0..CLIENTS_N).map(client).collect(), N);
    let other = send_from(&net, OTHER, vec![client(0)], N);
    let seen = receive(&nic, &replies, SERVICE, u64::from(CLIENTS_N) * N);
    assert_eq!(join(senders), u64::from(CLIENTS_N) * N);
    assert_eq!(join(other), N);
    for i in 0..CLIENTS_N {
        let dst = SocketAddr::V4(client(i));
        assert_eq!(
            seen.iter().filter(|(d, _)| *d == dst).count() as u64,
            N,
            "replies to {dst}"
        );
    }

    // From the service port to a local listener: the listener's, not the source rule's.
    let to_listener = SocketAddrV4::new(net.local().ipv4(), LISTENER);
    let h = send_from(&net, SERVICE, vec![to_listener], N);
    let at_listener = receive(&nic, &listener, SERVICE, N);
    assert_eq!(join(h), N);
    assert!(at_listener
        .iter()
        .all(|(d, _)| *d == SocketAddr::V4(to_listener)));
    nic.poll_rx(1024);
    let mut extra = Vec::new();
    assert_eq!(replies.try_recv_batch(16, &mut extra), 0, "{extra:?}");

    let rs_stats = replies.stats();
    assert_eq!(
        rs_stats.rx_packets,
        u64::from(CLIENTS_N) * N,
        "{rs_stats:?}"
    );
    assert_eq!(
        (
            rs_stats.gate_drops,
            rs_stats.ring_full_drops,
            rs_stats.kernel_drops,
            rs_stats.soft_discards
        ),
        (0, 0, 0, 0),
        "{rs_stats:?}"
    );
    assert_eq!(listener.stats().rx_packets, N);
    // Exactly the other port's datagrams took the default action (XDP_PASS).
    let b = nic.stats().backend;
    assert_eq!(b.to_kernel, N, "{b:?}");
    assert_eq!(b.rx_offered, (u64::from(CLIENTS_N) + 2) * N, "{b:?}");
    assert_eq!(b.rx_accepted, (u64::from(CLIENTS_N) + 1) * N, "{b:?}");
    let c = census_settled(&nic);
    assert_eq!(c.held + c.channels, 0, "{c:?}");
    eprintln!(
        "{mode:?}/{attach:?}: {} replies to {CLIENTS_N} clients on the source channel, {N} \
         to the listener, {N} to the kernel",
        u64::from(CLIENTS_N) * N
    );
}

#[test]
fn ni_lrp_source_rule_skb() {
    nat_replies(Mode::NiLrp, XdpAttach::Skb);
}

#[test]
fn soft_lrp_source_rule_skb() {
    nat_replies(Mode::SoftLrp, XdpAttach::Skb);
}

#[test]
fn ni_lrp_source_rule_driver() {
    nat_replies(Mode::NiLrp, XdpAttach::Driver);
}

#[test]
fn soft_lrp_source_rule_driver() {
    nat_replies(Mode::SoftLrp, XdpAttach::Driver);
}
