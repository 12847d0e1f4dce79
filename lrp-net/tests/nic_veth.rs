//! `Nic::open` on a real veth pair between two fresh network namespaces, through the public
//! `Nic` / `Channel` API only, with Linux kernel UDP sockets at the far end:
//!
//! * per-channel counts: three ports, two bound to channels, one left to the kernel, in
//!   NI-LRP and SOFT-LRP (and EAGER) — every datagram counted exactly where it belongs;
//! * isolation: one channel is never read while another is flooded with traffic for it;
//!   the stalled channel's losses are its own (gate drops in NI-LRP, early discards in
//!   SOFT-LRP), the read channel receives every datagram sent to it;
//! * TX: an in-place echo whose checksums are fixed incrementally; the Linux peer, with
//!   its receive checksum offload off, verifies every reply (and a deliberately corrupted
//!   one shows that it does);
//! * the frame census after every scenario;
//! * every scenario in generic (SKB) and native (driver) XDP mode.
//!
//! Senders in the peer namespace have TX checksum offload off (the harness's default), so
//! the frames carry full checksums that the receiving channel verifies. Senders pace
//! themselves except the flood of the isolation scenario, and rings are large enough for
//! the paced traffic, so counts are compared exactly.

mod xdp_util;

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lrp_core::flow::{classify, Classification, FlowKey, Proto};
use lrp_core::wire::checksum::Delta;
use lrp_core::wire::{self, nat};
use lrp_net::testnet::{
    self, udp_payload, TestNet, TestNetConfig, TestNetError, UdpFlood, UdpSendReport,
};
use lrp_net::xdp::XdpError;
use lrp_net::{Channel, Error, Frame, Mode, Nic, NicConfig, Rule, XdpAttach};
use xdp_util::{serial, udp_in_csum_errors, udp_received};

const PAYLOAD: usize = 64;

fn net(attach: XdpAttach) -> TestNet {
    TestNet::new(&TestNetConfig {
        // veth refuses native XDP at large MTUs; 3000 (with 4096-byte frames) also
        // exercises frames larger than 2048.
        mtu: (attach == XdpAttach::Driver).then_some(3000),
        // No ARP: the XDP program's pass counter then counts exactly the unbound port.
        static_neighbors: true,
        ..TestNetConfig::default()
    })
    .expect("build the test network")
}

fn config(mode: Mode, attach: XdpAttach) -> NicConfig {
    let frame_size = match attach {
        XdpAttach::Skb => 2048,
        XdpAttach::Driver => 4096,
    };
    NicConfig::default()
        .frame_size(frame_size)
        .frame_count(8192)
        .rx_ring(4096)
        .batch(256)
        .attach(attach)
        .mode(mode)
}

/// `Nic::open` must run in the interface's namespace; the NIC is used from here on.
fn open(net: &TestNet, config: NicConfig) -> Nic {
    let ifname = net.local().ifname().to_owned();
    net.local()
        .ns()
        .run(move || Nic::open(&ifname, config))
        .expect("namespace thread")
        .expect("Nic::open")
}

fn setup(test: &str) -> Option<std::sync::MutexGuard<'static, ()>> {
    testnet::require(test).then(serial)
}

fn send(net: &TestNet, port: u16, count: u64) -> JoinHandle<Result<UdpSendReport, TestNetError>> {
    let dst = SocketAddr::V4(SocketAddrV4::new(net.local().ipv4(), port));
    net.peer()
        .ns()
        .spawn_udp_sender(UdpFlood::new(dst, count, PAYLOAD))
}

fn join(h: JoinHandle<Result<UdpSendReport, TestNetError>>) -> UdpSendReport {
    h.join().expect("sender thread").expect("sender")
}

fn udp_listener(net: &TestNet, port: u16) -> Rule {
    Rule::listener(Proto::Udp, IpAddr::V4(net.local().ipv4()), port)
}

/// Checks received datagrams: to `port`, valid checksums (verified here, in userspace),
/// payloads of `udp_payload`, each sequence number once.
struct Checker {
    port: u16,
    seen: HashSet<u64>,
}

impl Checker {
    fn new(port: u16) -> Checker {
        Checker {
            port,
            seen: HashSet::new(),
        }
    }

    fn check(&mut self, frame: &Frame) {
        let class = classify(frame);
        let Classification::Flow { key, offsets, .. } = class else {
            panic!("not a UDP frame: {class:?}");
        };
        assert_eq!((key.proto, key.dport), (Proto::Udp, self.port));
        wire::verify(frame, &class).expect("valid IPv4 and UDP checksums");
        let payload = &frame[usize::from(offsets.l4) + 8..usize::from(offsets.l3 + offsets.l3_len)];
        let seq = u64::from_be_bytes(payload[..8].try_into().unwrap());
        assert_eq!(payload, &udp_payload(seq, PAYLOAD)[..]);
        assert!(self.seen.insert(seq), "datagram {seq} delivered twice");
    }

    fn assert_complete(&self, count: u64) {
        let missing = (0..count).filter(|s| !self.seen.contains(s)).count();
        assert_eq!(
            missing, 0,
            "{missing} of {count} datagrams to port {} missing",
            self.port
        );
        assert_eq!(self.seen.len() as u64, count);
    }
}

/// Receive from `ch` into `checker` (frames are dropped at once: back to the pool).
fn drain(ch: &Channel, checker: &mut Checker, frames: &mut Vec<Frame>) -> usize {
    frames.clear();
    let n = ch.try_recv_batch(256, frames);
    for f in frames.drain(..) {
        checker.check(&f);
    }
    n
}

/// Run the poll step until nothing has arrived for 20 ms (at most 2 s).
fn settle(nic: &Nic) {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut last = (u64::MAX, u64::MAX);
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline {
        nic.poll_rx(4096);
        let b = nic.stats().backend;
        let now = (b.rx_offered, nic.stats().rx_frames);
        if now != last {
            last = now;
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() > Duration::from_millis(20) {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Run the poll step until the rings are quiet, then check that every frame is where the
/// census says, and return it.
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

// ---- (a) exact counts per channel, the unbound port to the kernel --------------------------

fn per_channel_counts(mode: Mode, attach: XdpAttach) {
    let Some(_g) = setup(&format!("nic_veth per_channel_counts {mode:?} {attach:?}")) else {
        return;
    };
    const N: u64 = 1000;
    let (p0, p1, unbound) = (9000, 9001, 9002);
    let net = net(attach);
    let nic = open(&net, config(mode, attach));
    let ch0 = nic.channel(udp_listener(&net, p0), 2048).unwrap();
    let ch1 = nic.channel(udp_listener(&net, p1), 2048).unwrap();
    // A Linux socket on the unbound port, in lrp's namespace: it receives exactly what the
    // XDP program passes to the kernel (its UDP counters count them even if the socket
    // buffer overflows).
    let udp_before = udp_received(net.local().ns());
    let kernel = net
        .local()
        .ns()
        .udp_socket(SocketAddr::V4(SocketAddrV4::new(
            net.local().ipv4(),
            unbound,
        )))
        .unwrap();
    kernel
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let kernel_reader = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let mut seen = HashSet::new();
        while let Ok((n, _)) = kernel.recv_from(&mut buf) {
            let seq = u64::from_be_bytes(buf[..8].try_into().unwrap());
            assert_eq!(buf[..n], udp_payload(seq, PAYLOAD)[..]);
            assert!(seen.insert(seq) && seq < N);
            if seen.len() as u64 == N {
                break;
            }
        }
        seen.len() as u64
    });
    let senders = [send(&net, p0, N), send(&net, p1, N), send(&net, unbound, N)];
    let (mut c0, mut c1) = (Checker::new(p0), Checker::new(p1));
    let mut frames = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while (c0.seen.len() as u64) < N || (c1.seen.len() as u64) < N {
        assert!(
            Instant::now() < deadline,
            "timed out: {} + {} of {N} each; {:?} {:?}",
            c0.seen.len(),
            c1.seen.len(),
            ch0.stats(),
            nic.stats()
        );
        if drain(&ch0, &mut c0, &mut frames) + drain(&ch1, &mut c1, &mut frames) == 0 {
            ch0.wait(Some(Duration::from_millis(2))).unwrap();
        }
    }
    for h in senders {
        assert_eq!(join(h).sent, N);
    }
    let read_by_socket = kernel_reader.join().unwrap();
    assert!(read_by_socket > 0);
    assert_eq!(
        udp_received(net.local().ns()) - udp_before,
        N,
        "the kernel got every datagram of the unbound port ({read_by_socket} read by the \
         socket, the rest dropped at its full buffer)"
    );
    c0.assert_complete(N);
    c1.assert_complete(N);
    for (ch, name) in [(&ch0, "ch0"), (&ch1, "ch1")] {
        let s = ch.stats();
        assert_eq!(s.rx_packets, N, "{name}: {s:?}");
        assert_eq!(s.rx_bytes, N * (14 + 20 + 8 + PAYLOAD as u64), "{name}");
        assert_eq!(
            (
                s.gate_drops,
                s.ring_full_drops,
                s.kernel_drops,
                s.soft_discards
            ),
            (0, 0, 0, 0),
            "{name}: {s:?}"
        );
        assert_eq!(s.account.rx_packets, N, "{name}");
    }
    let b = nic.stats().backend;
    assert_eq!(b.to_kernel, N, "XDP_PASS: exactly the unbound port: {b:?}");
    assert_eq!(b.rx_accepted, 2 * N, "{b:?}");
    assert_eq!(b.rx_offered, 3 * N, "{b:?}");
    assert_eq!(
        (
            b.rx_no_buffer,
            b.rx_ring_full,
            b.rx_oversized,
            b.to_kernel_dropped
        ),
        (0, 0, 0, 0),
        "{b:?}"
    );
    if mode != Mode::NiLrp {
        assert_eq!(
            nic.stats().rx_frames,
            2 * N,
            "the shared ring carried only claimed frames"
        );
    }
    let c = census_settled(&nic);
    assert_eq!(c.held + c.channels, 0, "{c:?}");
    assert!(c.fill > 0, "{c:?}");
    eprintln!("{mode:?}/{attach:?}: {N} + {N} delivered, {N} to the kernel; census {c:?}");
}

#[test]
fn ni_lrp_counts_skb() {
    per_channel_counts(Mode::NiLrp, XdpAttach::Skb);
}

#[test]
fn soft_lrp_counts_skb() {
    per_channel_counts(Mode::SoftLrp, XdpAttach::Skb);
}

#[test]
fn eager_counts_skb() {
    per_channel_counts(Mode::Eager, XdpAttach::Skb);
}

#[test]
fn ni_lrp_counts_driver() {
    per_channel_counts(Mode::NiLrp, XdpAttach::Driver);
}

#[test]
fn soft_lrp_counts_driver() {
    per_channel_counts(Mode::SoftLrp, XdpAttach::Driver);
}

// ---- (b) isolation: a stalled channel loses only its own traffic --------------------------

fn isolation(mode: Mode, attach: XdpAttach) {
    let Some(_g) = setup(&format!("nic_veth isolation {mode:?} {attach:?}")) else {
        return;
    };
    const N0: u64 = 2000;
    const FLOOD: u64 = 20_000;
    const STALLED: usize = 256;
    let (p0, p1) = (9000, 9001);
    let net = net(attach);
    let nic = open(&net, config(mode, attach));
    let read = nic.channel(udp_listener(&net, p0), 2048).unwrap();
    let stalled = nic.channel(udp_listener(&net, p1), STALLED).unwrap();
    let dst1 = SocketAddr::V4(SocketAddrV4::new(net.local().ipv4(), p1));
    let flood = UdpFlood {
        burst: 256,
        pause: Duration::ZERO,
        ..UdpFlood::new(dst1, FLOOD, PAYLOAD)
    };
    let flooder = net.peer().ns().spawn_udp_sender(flood);
    let victim = send(&net, p0, N0);
    let mut c0 = Checker::new(p0);
    let mut frames = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    // Only `read` is ever read; its receives run the poll step, which watches the gates.
    // Read until the senders are done and nothing more arrives.
    let mut quiet = 0;
    while quiet < 20 {
        assert!(
            Instant::now() < deadline,
            "timed out: senders still running"
        );
        if drain(&read, &mut c0, &mut frames) == 0 {
            read.wait(Some(Duration::from_millis(1))).unwrap();
            if flooder.is_finished() && victim.is_finished() {
                quiet += 1;
            }
        } else {
            quiet = 0;
        }
    }
    assert_eq!(join(victim).sent, N0);
    let flood_sent = join(flooder).sent;
    assert_eq!(flood_sent, FLOOD);
    settle(&nic);
    while drain(&read, &mut c0, &mut frames) > 0 {}
    assert_eq!(
        c0.seen.len() as u64,
        N0,
        "the read channel lost datagrams: {:?} {:?}",
        read.stats(),
        nic.stats()
    );
    c0.assert_complete(N0);
    let r = read.stats();
    assert_eq!(r.rx_packets, N0, "{r:?}");
    assert_eq!(
        (
            r.gate_drops,
            r.ring_full_drops,
            r.kernel_drops,
            r.soft_discards
        ),
        (0, 0, 0, 0),
        "{r:?}"
    );
    let s = stalled.stats();
    assert_eq!(s.rx_packets, 0);
    let lost = s.gate_drops + s.ring_full_drops + s.kernel_drops + s.soft_discards;
    assert_eq!(
        lost + s.queued as u64,
        FLOOD,
        "every flood datagram is queued or counted as the stalled channel's drop: {s:?} {:?}",
        nic.stats()
    );
    assert!(s.queued <= s.capacity, "{s:?}");
    match mode {
        Mode::NiLrp => {
            assert!(s.gate_drops > 0, "{s:?}");
            assert!(
                s.gate_drops > 10 * s.ring_full_drops,
                "the gate takes the drops before the copy: {s:?}"
            );
            assert_eq!(s.soft_discards, 0);
            assert!(s.gate_closings >= 1);
        }
        Mode::SoftLrp | Mode::Eager => {
            assert!(s.soft_discards > 0, "{s:?}");
            assert_eq!((s.gate_drops, s.ring_full_drops), (0, 0), "{s:?}");
            assert_eq!(
                nic.stats().backend.rx_ring_full,
                0,
                "the shared ring kept up"
            );
        }
    }
    let b = nic.stats().backend;
    assert_eq!(
        (b.rx_no_buffer, b.to_kernel),
        (0, 0),
        "no shared loss: {b:?}"
    );
    eprintln!(
        "{mode:?}/{attach:?} isolation: flood {FLOOD} -> queued {}, gate {}, ring-full {}, \
         early discard {}, closings {}; victim {N0}/{N0}",
        s.queued, s.gate_drops, s.ring_full_drops, s.soft_discards, s.gate_closings
    );
    // The stalled channel's frames are still conserved, and come out when it is read.
    let c = census_settled(&nic);
    assert_eq!(c.rx + c.channels, s.queued, "{c:?}");
    let mut left = Vec::new();
    while stalled.try_recv_batch(256, &mut left) > 0 {}
    assert_eq!(left.len(), s.queued);
    drop(left);
    let c = census_settled(&nic);
    assert_eq!(c.held + c.channels + c.rx, 0, "{c:?}");
}

#[test]
fn ni_lrp_isolation_skb() {
    isolation(Mode::NiLrp, XdpAttach::Skb);
}

#[test]
fn soft_lrp_isolation_skb() {
    isolation(Mode::SoftLrp, XdpAttach::Skb);
}

#[test]
fn ni_lrp_isolation_driver() {
    isolation(Mode::NiLrp, XdpAttach::Driver);
}

#[test]
fn soft_lrp_isolation_driver() {
    isolation(Mode::SoftLrp, XdpAttach::Driver);
}

// ---- (c) TX: an in-place echo verified by the Linux peer ----------------------------------

/// The reply to a received UDP/IPv4 frame, in place: MACs swapped, addresses and ports
/// swapped with incremental checksum updates (lrp_core's NAT helpers), TTL decremented,
/// and the ninth payload byte inverted (so the UDP checksum must really be updated).
fn echo_in_place(frame: &mut Frame) {
    let Classification::Flow { key, offsets, .. } = classify(frame) else {
        panic!("not a flow");
    };
    let (mac_dst, mac_src): ([u8; 6], [u8; 6]) = (
        frame[0..6].try_into().unwrap(),
        frame[6..12].try_into().unwrap(),
    );
    frame[0..6].copy_from_slice(&mac_src);
    frame[6..12].copy_from_slice(&mac_dst);
    let client = SocketAddr::new(key.src, key.sport);
    let server = SocketAddr::new(key.dst, key.dport);
    nat::set_endpoint(frame, &offsets, Proto::Udp, nat::Side::Src, server).unwrap();
    nat::set_endpoint(frame, &offsets, Proto::Udp, nat::Side::Dst, client).unwrap();
    nat::decrement_ttl(frame, &offsets).unwrap();
    let at = usize::from(offsets.l4) + 8 + 8; // payload byte 8, the high byte of a word
    let old = u16::from_be_bytes([frame[at], frame[at + 1]]);
    frame[at] = !frame[at];
    let new = u16::from_be_bytes([frame[at], frame[at + 1]]);
    let ck = usize::from(offsets.l4) + 6;
    let sum = u16::from_be_bytes([frame[ck], frame[ck + 1]]);
    let sum = Delta::new().u16(old, new).apply_udp(sum);
    frame[ck..ck + 2].copy_from_slice(&sum.to_be_bytes());
}

fn expected_reply(seq: u64) -> Vec<u8> {
    let mut p = udp_payload(seq, PAYLOAD);
    p[8] = !p[8];
    p
}

fn echo(mode: Mode, attach: XdpAttach) {
    let Some(_g) = setup(&format!("nic_veth echo {mode:?} {attach:?}")) else {
        return;
    };
    const N: u64 = 500;
    let port = 7007;
    let net = net(attach);
    // The peer's kernel must verify every checksum itself: veth marks frames
    // CHECKSUM_UNNECESSARY when receive offload is on.
    net.peer()
        .ns()
        .exec("ethtool", &["-K", net.peer().ifname(), "rx", "off"])
        .unwrap();
    let nic = open(&net, config(mode, attach));
    let ch = nic.channel(udp_listener(&net, port), 1024).unwrap();
    let server = SocketAddr::V4(SocketAddrV4::new(net.local().ipv4(), port));
    let client = net
        .peer()
        .ns()
        .udp_socket(SocketAddr::V4(SocketAddrV4::new(net.peer().ipv4(), 0)))
        .unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let errors_before = udp_in_csum_errors(net.peer().ns());
    let pinger = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        for seq in 0..N {
            client.send_to(&udp_payload(seq, PAYLOAD), server).unwrap();
            let (n, from) = client.recv_from(&mut buf).expect("echo reply");
            assert_eq!(from, server);
            assert_eq!(&buf[..n], &expected_reply(seq)[..], "reply {seq}");
        }
        client
    });
    let mut echoed = 0u64;
    let mut last: Option<Vec<u8>> = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    while echoed < N {
        assert!(Instant::now() < deadline, "timed out after {echoed} echoes");
        let Some(mut f) = ch.try_recv() else {
            ch.wait(Some(Duration::from_millis(5))).unwrap();
            continue;
        };
        let class = classify(&f);
        wire::verify(&f, &class).expect("the Linux sender's checksums");
        echo_in_place(&mut f);
        wire::verify(&f, &classify(&f)).expect("the reply's checksums");
        last = Some(f.to_vec());
        ch.transmit(f).unwrap();
        echoed += 1;
    }
    let client = pinger.join().expect("every reply arrived, intact");
    assert_eq!(udp_in_csum_errors(net.peer().ns()), errors_before);
    // Negative control: a reply with a broken UDP checksum is refused by the peer's kernel
    // (counted), so the good replies were really verified.
    let mut bad = last.unwrap();
    let l4 = match classify(&bad) {
        Classification::Flow { offsets, .. } => usize::from(offsets.l4),
        c => panic!("{c:?}"),
    };
    bad[l4 + 6] ^= 0x5a;
    ch.send(&bad).unwrap();
    let mut buf = [0u8; 64];
    client
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(
        client.recv_from(&mut buf).is_err(),
        "a bad checksum was accepted"
    );
    assert_eq!(udp_in_csum_errors(net.peer().ns()), errors_before + 1);
    let s = ch.stats();
    assert_eq!(
        (s.rx_packets, s.tx_packets, s.tx_drops),
        (N, N + 1, 0),
        "{s:?}"
    );
    let b = nic.stats().backend;
    assert_eq!((b.tx_frames, b.tx_ring_full), (N + 1, 0), "{b:?}");
    let c = census_settled(&nic);
    assert_eq!(
        (c.tx, c.completion, c.held),
        (0, 0, 0),
        "TX frames came back: {c:?}"
    );
    eprintln!("{mode:?}/{attach:?} echo: {N} verified replies; census {c:?}");
}

#[test]
fn ni_lrp_echo_skb() {
    echo(Mode::NiLrp, XdpAttach::Skb);
}

#[test]
fn soft_lrp_echo_skb() {
    echo(Mode::SoftLrp, XdpAttach::Skb);
}

#[test]
fn ni_lrp_echo_driver() {
    echo(Mode::NiLrp, XdpAttach::Driver);
}

#[test]
fn soft_lrp_echo_driver() {
    echo(Mode::SoftLrp, XdpAttach::Driver);
}

// ---- errors a user meets first --------------------------------------------------------------

#[test]
fn open_errors_are_clear() {
    let Some(_g) = setup("nic_veth open_errors_are_clear") else {
        return;
    };
    let net = TestNet::new(&TestNetConfig {
        mtu: Some(3000),
        ..TestNetConfig::default()
    })
    .unwrap();
    let ifname = net.local().ifname().to_owned();
    let try_open = |name: &str, cfg: NicConfig| {
        let name = name.to_owned();
        net.local().ns().run(move || Nic::open(&name, cfg)).unwrap()
    };
    let cfg4k = NicConfig::default().frame_size(4096).frame_count(256);
    // An interface of another namespace does not exist here.
    match try_open("lrp-nonesuch", cfg4k.clone()) {
        Err(e @ Error::Xdp(XdpError::NoSuchInterface(_))) => eprintln!("as expected: {e}"),
        other => panic!("expected NoSuchInterface, got {other:?}"),
    }
    // MTU 3000 does not fit a 2048-byte frame.
    match try_open(&ifname, NicConfig::default().frame_count(256)) {
        Err(e @ Error::Xdp(XdpError::MtuTooLarge { mtu: 3000, .. })) => {
            eprintln!("as expected: {e}")
        }
        other => panic!("expected MtuTooLarge, got {other:?}"),
    }
    // An odd number of 2048-byte frames is not a whole number of pages.
    assert!(matches!(
        try_open(&ifname, NicConfig::default().frame_count(255)),
        Err(Error::InvalidConfig(_))
    ));
    // One NIC per queue: a second one on the same queue is refused (EBUSY), another
    // mode on the same interface too; the first keeps working.
    let first = try_open(&ifname, cfg4k.clone()).unwrap();
    match try_open(&ifname, cfg4k.clone()) {
        Err(e @ Error::Xdp(XdpError::QueueBusy { queue: 0, .. })) => eprintln!("as expected: {e}"),
        other => panic!("expected QueueBusy, got {other:?}"),
    }
    match try_open(&ifname, cfg4k.clone().queue(7)) {
        Err(e @ Error::Xdp(XdpError::InvalidConfig(_))) => eprintln!("as expected: {e}"),
        other => panic!("expected an error for a queue veth does not have, got {other:?}"),
    }
    drop(first);
    // Dropping the NIC detached the program: a driver-mode NIC can attach now.
    let driver = try_open(&ifname, cfg4k.clone().attach(XdpAttach::Driver)).unwrap();
    assert!(driver.census().is_conserved());
    drop(driver);
    // Native XDP on loopback is not supported: the error names the mode. (Loopback's MTU
    // must first fit a frame, or that is the error.)
    net.local()
        .ns()
        .exec("ip", &["link", "set", "dev", "lo", "mtu", "1500"])
        .unwrap();
    match try_open("lo", cfg4k.attach(XdpAttach::Driver)) {
        Err(e @ Error::Xdp(XdpError::ModeNotSupported { .. })) => eprintln!("as expected: {e}"),
        other => panic!("expected ModeNotSupported, got {other:?}"),
    }
}

// ---- two queues, one NIC per queue ------------------------------------------------------------

/// A 2-queue veth served by two NICs (one per queue) with the same rule: every datagram
/// arrives exactly once, on the channel of the queue it came in on (in driver mode both
/// queues carry traffic; in generic mode veth presents every frame on queue 0).
fn two_queues(attach: XdpAttach) {
    let Some(_g) = setup(&format!("nic_veth two_queues {attach:?}")) else {
        return;
    };
    const SENDERS: u16 = 8;
    const N: u64 = 250;
    let port = 9000;
    let net = TestNet::new(&TestNetConfig {
        mtu: (attach == XdpAttach::Driver).then_some(3000),
        queues: Some(2),
        static_neighbors: true,
        ..TestNetConfig::default()
    })
    .unwrap();
    let nics: Vec<Nic> = (0..2)
        .map(|q| open(&net, config(Mode::NiLrp, attach).queue(q)))
        .collect();
    let chans: Vec<Channel> = nics
        .iter()
        // Room for all the traffic in one ring: this test counts, it does not overload.
        .map(|nic| nic.channel(udp_listener(&net, port), 4096).unwrap())
        .collect();
    // Several flows (source ports): the sender's kernel spreads them over its TX queues,
    // and a veth frame arrives on the receive queue of the sender's TX queue.
    let senders: Vec<_> = (0..SENDERS)
        .map(|i| {
            let dst = SocketAddr::V4(SocketAddrV4::new(net.local().ipv4(), port));
            let mut flood = UdpFlood::new(dst, N, PAYLOAD);
            flood.bind = SocketAddr::V4(SocketAddrV4::new(net.peer().ipv4(), 40000 + i));
            net.peer().ns().spawn_udp_sender(flood)
        })
        .collect();
    let mut got = [0u64; 2];
    let mut seen = HashSet::new();
    let mut frames = Vec::new();
    let total = u64::from(SENDERS) * N;
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.iter().sum::<u64>() < total {
        assert!(
            Instant::now() < deadline,
            "timed out: {got:?} of {total}; {:?} / {:?}",
            nics[0].stats().backend,
            nics[1].stats().backend
        );
        let mut n = 0;
        for (q, ch) in chans.iter().enumerate() {
            frames.clear();
            n += ch.try_recv_batch(256, &mut frames);
            for f in frames.drain(..) {
                let Classification::Flow { key, offsets, .. } = classify(&f) else {
                    panic!("not a flow")
                };
                let at = usize::from(offsets.l4) + 8;
                let seq = u64::from_be_bytes(f[at..at + 8].try_into().unwrap());
                assert!(seen.insert((key.sport, seq)), "duplicate");
                got[q] += 1;
            }
        }
        if n == 0 {
            chans[0].wait(Some(Duration::from_millis(1))).unwrap();
        }
    }
    for h in senders {
        assert_eq!(join(h).sent, N);
    }
    eprintln!("{attach:?}: {total} datagrams over two queues: {got:?}");
    assert_eq!(got.iter().sum::<u64>(), total);
    for nic in &nics {
        assert_eq!(nic.stats().backend.to_kernel, 0);
        let c = census_settled(nic);
        assert_eq!(c.held + c.channels + c.rx, 0, "{c:?}");
    }
    match attach {
        // veth's native XDP runs per receive queue: the flows spread.
        XdpAttach::Driver => {
            assert!(
                got[0] > 0 && got[1] > 0,
                "traffic landed on one queue only: {got:?}"
            )
        }
        // Generic XDP on veth sees every frame as queue 0 (veth records no receive queue
        // on its non-NAPI path); queue 1's NIC gets nothing, and nothing is lost.
        XdpAttach::Skb => assert_eq!(got, [total, 0]),
    }
}

#[test]
fn two_queues_skb() {
    two_queues(XdpAttach::Skb);
}

#[test]
fn two_queues_driver() {
    two_queues(XdpAttach::Driver);
}

// ---- more exact channels than NI-LRP slots: the rest are soft channels -------------------

/// NI-LRP with 4 slots: a listener and seven exact channels for seven flows to its port
/// (three with slots of their own, four soft), plus an eighth flow only the listener
/// claims. The exact channels are read first and the listener not at all until they have
/// everything: the soft ones move their frames out of the listener's ring themselves.
/// Every channel receives exactly its flow; the listener then finds its own, in order.
fn soft_fallback(attach: XdpAttach) {
    let Some(_g) = setup(&format!("nic_veth soft_fallback {attach:?}")) else {
        return;
    };
    const N: u64 = 300;
    const FLOWS: u16 = 7;
    const PORT: u16 = 9100;
    const LISTENER_ONLY: u16 = 7999;
    let net = net(attach);
    let nic = open(&net, config(Mode::NiLrp, attach).ni_slots(4));
    let listener = nic.channel(udp_listener(&net, PORT), 4096).unwrap();
    let (peer_ip, local_ip) = (net.peer().ipv4(), net.local().ipv4());
    let exact: Vec<Channel> = (0..FLOWS)
        .map(|i| {
            let key = FlowKey {
                proto: Proto::Udp,
                src: peer_ip.into(),
                dst: local_ip.into(),
                sport: 7000 + i,
                dport: PORT,
            };
            nic.channel(Rule::exact(key), 1024).unwrap()
        })
        .collect();
    let soft: Vec<bool> = exact.iter().map(Channel::is_soft).collect();
    assert_eq!(soft, [false, false, false, true, true, true, true]);
    let sender = |sport: u16| {
        let flood = UdpFlood {
            bind: SocketAddr::V4(SocketAddrV4::new(peer_ip, sport)),
            burst: 8,
            pause: Duration::from_millis(1),
            ..UdpFlood::new(
                SocketAddr::V4(SocketAddrV4::new(local_ip, PORT)),
                N,
                PAYLOAD,
            )
        };
        net.peer().ns().spawn_udp_sender(flood)
    };
    let senders: Vec<_> = (0..FLOWS)
        .map(|i| sender(7000 + i))
        .chain([sender(LISTENER_ONLY)])
        .collect();
    let sport = |f: &Frame| match classify(f) {
        Classification::Flow { key, .. } => key.sport,
        other => panic!("not a UDP frame: {other:?}"),
    };
    let mut checkers: Vec<Checker> = (0..FLOWS).map(|_| Checker::new(PORT)).collect();
    let mut frames = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while checkers.iter().any(|c| (c.seen.len() as u64) < N) {
        assert!(
            Instant::now() < deadline,
            "timed out: {:?} of {N} each; {:?}",
            checkers.iter().map(|c| c.seen.len()).collect::<Vec<_>>(),
            nic.stats()
        );
        let mut got = 0;
        for (i, ch) in exact.iter().enumerate() {
            frames.clear();
            got += ch.try_recv_batch(256, &mut frames);
            for f in frames.drain(..) {
                assert_eq!(sport(&f), 7000 + i as u16, "channel {i} got another flow");
                checkers[i].check(&f);
            }
        }
        if got == 0 {
            exact[FLOWS as usize - 1]
                .wait(Some(Duration::from_millis(2)))
                .unwrap();
        }
    }
    for h in senders {
        assert_eq!(join(h).sent, N);
    }
    // The listener's own flow, in order (through the stash, then its ring).
    let mut seqs = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while (seqs.len() as u64) < N {
        assert!(
            Instant::now() < deadline,
            "listener: {} of {N}; {:?}",
            seqs.len(),
            listener.stats()
        );
        frames.clear();
        if listener.try_recv_batch(256, &mut frames) == 0 {
            listener.wait(Some(Duration::from_millis(2))).unwrap();
        }
        for f in frames.drain(..) {
            assert_eq!(sport(&f), LISTENER_ONLY);
            let Classification::Flow { offsets, .. } = classify(&f) else {
                unreachable!()
            };
            let at = usize::from(offsets.l4) + 8;
            seqs.push(u64::from_be_bytes(f[at..at + 8].try_into().unwrap()));
        }
    }
    assert_eq!(
        seqs,
        (0..N).collect::<Vec<_>>(),
        "the listener's frames in order"
    );
    for (i, (ch, c)) in exact.iter().zip(&checkers).enumerate() {
        c.assert_complete(N);
        let s = ch.stats();
        assert_eq!(s.soft, ch.is_soft());
        assert_eq!(s.rx_packets, N, "channel {i}: {s:?}");
        assert_eq!(
            (s.gate_drops, s.ring_full_drops, s.soft_discards),
            (0, 0, 0),
            "channel {i}: {s:?}"
        );
    }
    let b = nic.stats().backend;
    assert_eq!(
        (b.gate_drops, b.ni_ring_full, b.rx_no_buffer),
        (0, 0, 0),
        "{b:?}"
    );
    let c = census_settled(&nic);
    assert_eq!(c.held + c.channels, 0, "{c:?}");
    eprintln!(
        "{attach:?}: 3 NI + 4 soft exact channels and the listener, {N} datagrams each; \
         census {c:?}"
    );
}

#[test]
fn ni_lrp_soft_fallback_skb() {
    soft_fallback(XdpAttach::Skb);
}

#[test]
fn ni_lrp_soft_fallback_driver() {
    soft_fallback(XdpAttach::Driver);
}
