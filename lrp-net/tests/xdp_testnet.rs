//! The namespace harness itself: addresses (IPv4 and IPv6), kernel sockets on both ends,
//! link counters, queue count and MTU, and cleanup on drop and on panic.

mod xdp_util;

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::Duration;

use lrp_net::testnet::{self, TestNet, TestNetConfig};
use xdp_util::serial;

fn ns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists() || Path::new("/var/run/netns").join(name).exists()
}

#[test]
fn both_families_carry_kernel_udp_and_counters_move() {
    if !testnet::require("both_families_carry_kernel_udp") {
        return;
    }
    let _g = serial();
    let cfg = TestNetConfig {
        ipv6: true,
        static_neighbors: true,
        mtu: Some(2000),
        queues: Some(2),
        ..TestNetConfig::default()
    };
    let net = TestNet::new(&cfg).unwrap();
    let (l, p) = (net.local(), net.peer());
    assert!(l.ifname().len() <= 15 && p.ifname().len() <= 15);
    assert_ne!(l.ns().name(), p.ns().name());
    let mtu = l
        .ns()
        .exec("cat", &[&format!("/sys/class/net/{}/mtu", l.ifname())])
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&mtu.stdout).trim(), "2000");
    let q = format!("/sys/class/net/{}/queues", l.ifname());
    let queues = l.ns().exec("ls", &[q.as_str()]).unwrap();
    assert!(
        String::from_utf8_lossy(&queues.stdout).contains("rx-1"),
        "two RX queues"
    );
    let v6 = l.ipv6().expect("IPv6 enabled");
    let before = l.ns().link_stats(l.ifname()).unwrap();
    for dst in [
        SocketAddr::from((l.ipv4(), 7000)),
        SocketAddr::from((v6, 7000)),
    ] {
        let bind: SocketAddr = if dst.is_ipv4() {
            "0.0.0.0:7000"
        } else {
            "[::]:7000"
        }
        .parse()
        .unwrap();
        let server: UdpSocket = l.ns().udp_socket(bind).unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let any: SocketAddr = if dst.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }
            .parse()
            .unwrap();
        let client = p.ns().udp_socket(any).unwrap();
        client.send_to(b"across the veth", dst).unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = server
            .recv_from(&mut buf)
            .expect("datagram from the peer namespace");
        assert_eq!(&buf[..n], b"across the veth");
        let peer_ip: std::net::IpAddr = if dst.is_ipv4() {
            p.ipv4().into()
        } else {
            p.ipv6().unwrap().into()
        };
        assert_eq!(from.ip(), peer_ip);
    }
    let after = l.ns().link_stats(l.ifname()).unwrap();
    assert!(
        after.rx_packets >= before.rx_packets + 2,
        "{before:?} -> {after:?}"
    );
    assert!(l.ifindex().unwrap() > 1);
}

#[test]
fn namespaces_are_removed_on_drop_and_on_panic() {
    if !testnet::require("namespaces_are_removed") {
        return;
    }
    let _g = serial();
    let net = TestNet::new(&TestNetConfig::default()).unwrap();
    let names = [
        net.local().ns().name().to_owned(),
        net.peer().ns().name().to_owned(),
    ];
    assert!(names.iter().all(|n| ns_exists(n)));
    drop(net);
    assert!(names.iter().all(|n| !ns_exists(n)), "{names:?} left behind");

    let (tx, rx) = std::sync::mpsc::channel();
    let r = std::panic::catch_unwind(move || {
        let net = TestNet::new(&TestNetConfig::default()).unwrap();
        tx.send([
            net.local().ns().name().to_owned(),
            net.peer().ns().name().to_owned(),
        ])
        .unwrap();
        panic!("a test failing half-way");
    });
    assert!(r.is_err());
    let names = rx.recv().unwrap();
    assert!(
        names.iter().all(|n| !ns_exists(n)),
        "{names:?} left behind after a panic"
    );
}
