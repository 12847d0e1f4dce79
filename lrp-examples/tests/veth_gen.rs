//! `lrp-gen` on a real veth pair: it sends exactly what it is asked to, with valid
//! checksums and the spoofed sources it is given, and refuses to run outside a named test
//! namespace. The receiving side is Linux (a kernel UDP socket) for the UDP blaster and an
//! lrp channel with a SYN rule for the SYN flooder (which must never reach a kernel that
//! would answer it). Bounded in count and time; `testnet::require` makes a missing
//! capability a loud skip (a failure with `LRP_REQUIRE_XDP=1`).

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lrp_core::flow::{classify, Classification};
use lrp_core::wire::verify;
use lrp_net::testnet::{self, TestNet, TestNetConfig};
use lrp_net::{Mode, Nic, NicConfig, Proto, Rule};

/// The tests of this file run one at a time: each loads both cores.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Spoofed sources on the link's subnet that are neither end's address (a frame "from"
/// the receiver's own address would be dropped as a martian): its upper half.
fn spoofed(net: &TestNet) -> String {
    let o = net.peer().ipv4().octets();
    assert!(
        o[3] < 128 && net.local().ipv4().octets()[3] < 128,
        "test addresses below .128"
    );
    format!("{}.{}.{}.128/25", o[0], o[1], o[2])
}

/// Run `lrp-gen` in the peer namespace toward the local end; its stdout.
fn gen(net: &TestNet, dst: SocketAddr, extra: &[&str]) -> String {
    let peer = net.peer();
    let args = [
        "netns",
        "exec",
        peer.ns().name(),
        env!("CARGO_BIN_EXE_lrp-gen"),
        "--iface",
        peer.ifname(),
        "--dst",
        &dst.to_string(),
        "--dst-mac",
        &mac(net.local().mac()),
        "--src-net",
        &spoofed(net),
    ];
    let out = Command::new("ip")
        .args(args)
        .args(extra)
        .output()
        .expect("running lrp-gen");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "lrp-gen {extra:?}: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn udp_blaster_delivers_its_count_to_a_linux_socket() {
    if !testnet::require("udp_blaster_delivers_its_count_to_a_linux_socket") {
        return;
    }
    let _serial = serial();
    const N: u64 = 3000;
    let net = TestNet::new(&TestNetConfig::default()).expect("test network");
    let dst = SocketAddr::from((net.local().ipv4(), 9000));
    let sock = net.local().ns().udp_socket(dst).expect("local UDP socket");
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let got = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let receiver = {
        let (got, stop) = (Arc::clone(&got), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let mut sources = HashSet::new();
            while !stop.load(Ordering::Relaxed) {
                if let Ok((n, from)) = sock.recv_from(&mut buf) {
                    assert_eq!(n, 64, "payload size");
                    got.fetch_add(1, Ordering::Relaxed);
                    sources.insert(from);
                }
            }
            sources.len()
        })
    };
    let out = gen(
        &net,
        dst,
        &["--rate", "20000", "--count", "3000", "udp", "--size", "64"],
    );
    assert!(out.contains("sent 3000 frames"), "{out}");
    // Every datagram arrives with valid checksums: it is either received, or dropped by
    // the kernel for lack of socket buffer (a busy receiver thread), never as bad.
    let counter = |name: &str| -> u64 {
        let o = net
            .local()
            .ns()
            .exec("nstat", &["-az", name])
            .expect("nstat");
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .find_map(|l| {
                let mut f = l.split_whitespace();
                (f.next() == Some(name)).then(|| f.next()?.parse().ok())?
            })
            .unwrap_or(0)
    };
    let end = Instant::now() + Duration::from_secs(10);
    while got.load(Ordering::Relaxed) + counter("UdpRcvbufErrors") < N && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    let sources = receiver.join().expect("receiver");
    let (got, rcvbuf, csum) = (
        got.load(Ordering::Relaxed),
        counter("UdpRcvbufErrors"),
        counter("UdpInCsumErrors"),
    );
    eprintln!(
        "{out}kernel socket received {got} from {sources} distinct sources; \
         {rcvbuf} dropped for socket buffer, {csum} bad checksums"
    );
    assert_eq!(csum, 0, "bad checksums");
    assert_eq!(
        got + rcvbuf,
        N,
        "every datagram reached the Linux socket's host"
    );
    assert!(got >= N * 9 / 10, "received {got} of {N}");
    assert!(sources > 1000, "many sources: {sources}");
    // 126 addresses times 64512 ports: sources repeat rarely.
}

#[test]
fn syn_flooder_sends_valid_spoofed_syns() {
    if !testnet::require("syn_flooder_sends_valid_spoofed_syns") {
        return;
    }
    let _serial = serial();
    const N: usize = 2000;
    let net = TestNet::new(&TestNetConfig::default()).expect("test network");
    let ip = net.local().ipv4();
    let ifname = net.local().ifname().to_owned();
    // An lrp channel takes the SYNs to :80 (a SYN rule), so the local kernel never sees
    // them and never answers the spoofed sources.
    let (nic, syns) = net
        .local()
        .ns()
        .run(move || {
            let nic = Nic::open(&ifname, NicConfig::default().mode(Mode::SoftLrp)).unwrap();
            let syns = nic
                .channel(
                    Rule::listener(Proto::Tcp, IpAddr::V4(ip), 80).syn_only(),
                    4096,
                )
                .unwrap();
            (nic, syns)
        })
        .expect("a thread in the local namespace");
    let out = gen(
        &net,
        SocketAddr::from((ip, 80)),
        &["--rate", "20000", "--count", "2000", "--seed", "9", "syn"],
    );
    assert!(out.contains("sent 2000 frames"), "{out}");
    let mut frames = Vec::new();
    let end = Instant::now() + Duration::from_secs(10);
    while frames.len() < N && Instant::now() < end {
        syns.wait(Some(Duration::from_millis(100))).unwrap();
        syns.try_recv_batch(256, &mut frames);
    }
    let mut sources = HashSet::new();
    for f in &frames {
        let class = classify(f);
        let Classification::Flow { key, flags, .. } = class else {
            panic!("not a flow: {class:?}");
        };
        assert!(flags.is_syn_only());
        assert_eq!((key.dst, key.dport), (IpAddr::V4(ip), 80));
        verify(f, &class).expect("valid IPv4 and TCP checksums");
        sources.insert((key.src, key.sport));
    }
    eprintln!(
        "{out}SYN channel: {} frames, {} distinct sources; {}",
        frames.len(),
        sources.len(),
        syns.stats()
    );
    assert_eq!(frames.len(), N);
    assert!(
        sources.len() > N * 9 / 10,
        "spoofed sources: {}",
        sources.len()
    );
    drop(frames);
    drop(syns);
    drop(nic);
}

#[test]
fn the_generator_refuses_the_host_namespace() {
    let out = Command::new(env!("CARGO_BIN_EXE_lrp-gen"))
        .args([
            "--iface",
            "lo",
            "--dst",
            "127.0.0.1:9",
            "--dst-mac",
            "02:00:00:00:00:01",
            "--src-net",
            "127.0.0.0/8",
            "--count",
            "1",
            "syn",
        ])
        .output()
        .expect("running lrp-gen");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to generate traffic"), "{err}");
}
