//! The AF_XDP layer on a real veth pair between two fresh network namespaces, with
//! Linux kernel UDP sockets as peers: per-slot delivery (NI-LRP), SOFT-LRP, isolation
//! of a stalled channel by its gate, TX (echo), the receive-and-drop baseline, and the
//! errors a user meets first. Every scenario runs in generic (SKB) and native (driver)
//! XDP mode and ends with a frame census.
//!
//! Senders pace themselves and every ring and the fill ring are large enough for all the
//! traffic of a scenario, so nothing is legitimately lost and counts are compared
//! exactly; the one exception is the stalled channel of the isolation scenario, whose
//! losses are accounted for exactly instead (gate drops + ring-full drops + ring
//! occupancy = sent).

mod xdp_util;

use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lrp_core::channel::GateState;
use lrp_core::demux::{ChannelId, DefaultAction, Listener, ListenerKey};
use lrp_core::flow::Proto;
use lrp_net::pool::{FramePool, PoolCensus};
use lrp_net::testnet::{
    self, udp_payload, TestNet, TestNetConfig, TestNetError, UdpFlood, UdpSendReport,
};
use lrp_net::xdp::baseline::{rx_drop, RxDropConfig};
use lrp_net::xdp::{
    interface_index, AttachMode, DemuxConfig, DemuxMode, Dispatcher, LrpXdp, ProgramConfig,
    QueueConfig, SlotGate, SocketConfig, Umem, XdpError, XskQueue, XskSocket,
};
use lrp_net::Frame;
use xdp_util::*;

const FRAMES: u32 = 4096;
const PAYLOAD: usize = 100;

fn net_config(mode: AttachMode) -> TestNetConfig {
    TestNetConfig {
        // veth refuses native XDP at large MTUs; 3000 also exercises frames > 1500.
        mtu: (mode == AttachMode::Driver).then_some(3000),
        static_neighbors: true,
        ..TestNetConfig::default()
    }
}

/// The program, a frame pool and its UMEM, one queue and one socket per entry of
/// `rx_sizes` (socket `i` in slot `i`), frames posted, attached in `mode`. Call on a thread
/// in the local namespace.
struct Rig {
    xdp: LrpXdp,
    pool: FramePool,
    queue: XskQueue,
    socks: Vec<XskSocket>,
}

impl Rig {
    fn new(net: &TestNet, mode: AttachMode, rx_sizes: &[u32]) -> Rig {
        let ifindex = interface_index(net.local().ifname()).unwrap();
        let mut xdp = LrpXdp::load(&ProgramConfig::default()).unwrap();
        let pool = FramePool::new(FRAMES, 4096, 0).unwrap();
        let umem = Umem::from_pool(&pool).unwrap();
        let qc = QueueConfig {
            socket: SocketConfig {
                rx_size: rx_sizes[0],
                tx_size: 2048,
            },
            ..QueueConfig::default()
        };
        let (mut queue, first) = XskQueue::open(&umem, ifindex, 0, &qc).unwrap();
        let mut socks = vec![first];
        for &rx in &rx_sizes[1..] {
            socks.push(
                queue
                    .add_socket(&SocketConfig {
                        rx_size: rx,
                        tx_size: 2048,
                    })
                    .unwrap(),
            );
        }
        assert_eq!(
            queue.fill_from_pool(FRAMES as usize).unwrap(),
            FRAMES as usize,
            "the fill ring holds every frame"
        );
        for (slot, s) in socks.iter().enumerate() {
            xdp.set_socket(slot as u32, s).unwrap();
        }
        xdp.attach(ifindex, mode).unwrap();
        assert_eq!(xdp.attachment(), Some((ifindex, mode)));
        Rig {
            xdp,
            pool,
            queue,
            socks,
        }
    }

    fn listen(&mut self, net: &TestNet, port: u16, slot: u32) {
        let key = ListenerKey::new(Proto::Udp, IpAddr::V4(net.local().ipv4()), port);
        self.xdp
            .insert_listener(&key, &Listener::new(ChannelId(slot)))
            .unwrap();
    }

    /// Take up to 256 frames from socket `i`, parse them, give the chunks back.
    fn drain(&mut self, i: usize, into: &mut Vec<UdpView>) -> usize {
        let mut frames: Vec<Frame> = Vec::new();
        let n = self.socks[i].receive_frames(256, &mut frames).unwrap();
        for f in frames {
            let view = parse_udp4(&f).expect("a UDP/IPv4 frame");
            into.push(view);
            // Dropping the frame returns its chunk to the pool.
        }
        self.queue.fill_from_pool(usize::MAX).unwrap();
        n as usize
    }

    /// Drain every socket until nothing arrives for a while, then check the pool's census:
    /// nothing held, no violation, and the chunks in the kernel's hands are at least those
    /// waiting in RX rings (the rest are posted for reception).
    fn census(&mut self) -> PoolCensus {
        let mut sink = Vec::new();
        for i in 0..self.socks.len() {
            // Bounded: the senders are done, so each ring empties in a few rounds.
            for _ in 0..1000 {
                if self.drain(i, &mut sink) == 0 {
                    break;
                }
            }
        }
        while self.queue.complete_to_pool(256).unwrap() > 0 {}
        self.queue.fill_from_pool(usize::MAX).unwrap();
        let c = self.pool.census();
        assert!(c.is_conserved(), "{c:?}");
        assert_eq!((c.held, c.violations), (0, 0), "{c:?}");
        let in_rings: u32 = self.socks.iter().map(XskSocket::rx_len).sum();
        assert!(c.kernel >= in_rings as usize, "{c:?}");
        assert_eq!(c.free + c.kernel, FRAMES as usize);
        c
    }
}

/// Transmit everything in `frames` on socket 0, kicking and reaping completions until
/// the kernel has sent (completed) all of it or `timeout` passes. Returns how many were
/// queued; frames not queued in time stay in `frames`.
fn transmit_all(rig: &mut Rig, frames: &mut Vec<Frame>, timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    let mut sent = 0;
    let sock = &mut rig.socks[0];
    while !frames.is_empty() || sock.tx_pending() > 0 {
        sent += sock.transmit_frames(frames).unwrap();
        sock.kick().unwrap();
        rig.queue.complete_to_pool(256).unwrap();
        if Instant::now() >= deadline {
            break;
        }
        std::thread::yield_now();
    }
    while rig.queue.complete_to_pool(256).unwrap() > 0 {}
    sent
}

/// Start a paced sender of `count` datagrams to `port` of the local end.
fn send(net: &TestNet, port: u16, count: u64) -> JoinHandle<Result<UdpSendReport, TestNetError>> {
    let dst = SocketAddr::V4(SocketAddrV4::new(net.local().ipv4(), port));
    net.peer()
        .ns()
        .spawn_udp_sender(UdpFlood::new(dst, count, PAYLOAD))
}

fn join(h: JoinHandle<Result<UdpSendReport, TestNetError>>) -> UdpSendReport {
    h.join().expect("sender thread").expect("sender")
}

/// Check that `got` holds datagrams 0..count to `port`, each once, with good checksums.
fn assert_complete(got: &[UdpView], port: u16, count: u64) {
    let mut seen = vec![false; count as usize];
    for v in got {
        assert_eq!(v.dport, port, "a datagram for another port arrived here");
        assert!(
            v.checksum_ok,
            "bad UDP checksum (is `ethtool -K <peer> tx off` in effect?)"
        );
        let seq = u64::from_be_bytes(v.payload[..8].try_into().unwrap());
        assert_eq!(v.payload, udp_payload(seq, PAYLOAD));
        assert!(
            seq < count && !seen[seq as usize],
            "datagram {seq} duplicated or unexpected"
        );
        seen[seq as usize] = true;
    }
    let missing = seen.iter().filter(|s| !**s).count();
    assert_eq!(
        missing, 0,
        "{missing} of {count} datagrams to port {port} missing"
    );
}

fn setup(mode: AttachMode) -> Option<(std::sync::MutexGuard<'static, ()>, TestNet)> {
    if !testnet::require(&format!("xdp_veth ({mode:?})")) {
        return None;
    }
    let guard = serial();
    Some((
        guard,
        TestNet::new(&net_config(mode)).expect("build the test network"),
    ))
}

// ---- NI-LRP: two bound ports, one unbound -------------------------------------------

fn per_slot_delivery(mode: AttachMode) {
    let Some((_g, net)) = setup(mode) else { return };
    const N: u64 = 1000;
    let (p0, p1, unbound) = (9000, 9001, 9002);
    net.local()
        .ns()
        .run(|| {
            let mut rig = Rig::new(&net, mode, &[2048, 2048]);
            rig.listen(&net, p0, 0);
            rig.listen(&net, p1, 1);
            let senders = [send(&net, p0, N), send(&net, p1, N), send(&net, unbound, N)];
            let mut got = [Vec::new(), Vec::new()];
            let deadline = Instant::now() + Duration::from_secs(20);
            while (got[0].len() as u64) < N || (got[1].len() as u64) < N {
                assert!(
                    Instant::now() < deadline,
                    "timed out: {} {}",
                    got[0].len(),
                    got[1].len()
                );
                let n = rig.drain(0, &mut got[0]) + rig.drain(1, &mut got[1]);
                if n == 0 {
                    rig.socks[0].poll_rx(Duration::from_millis(5)).unwrap();
                }
            }
            let sent: Vec<u64> = senders.into_iter().map(|h| join(h).sent).collect();
            assert_eq!(sent, vec![N, N, N]);
            let c = rig.census();
            assert_complete(&got[0], p0, N);
            assert_complete(&got[1], p1, N);
            for slot in 0..2 {
                let sc = rig.xdp.slot_counters(slot).unwrap();
                assert_eq!(
                    (sc.redirected, sc.gate_drops, sc.no_socket),
                    (N, 0, 0),
                    "slot {slot}"
                );
                let st = rig.socks[slot as usize].statistics().unwrap();
                assert_eq!(
                    (st.rx_ring_full, st.rx_dropped, st.rx_fill_ring_empty_descs),
                    (0, 0, 0)
                );
            }
            let pc = rig.xdp.counters().unwrap();
            // Static neighbors and no IPv6: the only other frames are the unbound port's.
            assert_eq!(pc.passed, N, "{pc:?}");
            assert_eq!(
                (pc.malformed_total(), pc.dropped_default, pc.bad_slot),
                (0, 0, 0)
            );
            assert_eq!(pc.hit_listener, 2 * N);
            eprintln!("{mode:?}: per-slot delivery exact; census {c:?}");
        })
        .unwrap();
}

#[test]
fn skb_per_slot_delivery() {
    per_slot_delivery(AttachMode::Skb);
}

#[test]
fn driver_per_slot_delivery() {
    per_slot_delivery(AttachMode::Driver);
}

// ---- SOFT-LRP: every claimed frame to slot 0 ----------------------------------------

fn soft_mode(mode: AttachMode) {
    let Some((_g, net)) = setup(mode) else { return };
    const N: u64 = 1000;
    let ports = [9000u16, 9001, 9002];
    net.local()
        .ns()
        .run(|| {
            let mut rig = Rig::new(&net, mode, &[4096]);
            // In SOFT mode the rule that claims a frame does not choose its slot: port 9000
            // (a listener naming slot 5, which has no socket) and 9001/9002 (unclaimed UDP
            // to a host address: the host rule) all go to the soft slot.
            rig.listen(&net, ports[0], 5);
            let soft = DemuxConfig {
                mode: DemuxMode::Soft { slot: 0 },
                default: DefaultAction::Pass,
            };
            rig.xdp.set_config(&soft).unwrap();
            rig.xdp
                .insert_host(IpAddr::V4(net.local().ipv4()), ChannelId(0))
                .unwrap();
            let senders: Vec<_> = ports.iter().map(|&p| send(&net, p, N)).collect();
            let mut got = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(20);
            while (got.len() as u64) < 3 * N {
                assert!(Instant::now() < deadline, "timed out at {}", got.len());
                if rig.drain(0, &mut got) == 0 {
                    rig.socks[0].poll_rx(Duration::from_millis(5)).unwrap();
                }
            }
            for h in senders {
                assert_eq!(join(h).sent, N);
            }
            rig.census();
            for p in ports {
                let mine: Vec<UdpView> = got.iter().filter(|v| v.dport == p).cloned().collect();
                assert_complete(&mine, p, N);
            }
            let sc = rig.xdp.slot_counters(0).unwrap();
            assert_eq!(sc.redirected, 3 * N);
            let pc = rig.xdp.counters().unwrap();
            assert_eq!(
                (pc.hit_soft, pc.hit_listener, pc.hit_host, pc.passed),
                (3 * N, N, 2 * N, 0)
            );
            assert_eq!(rig.socks[0].statistics().unwrap().rx_ring_full, 0);
        })
        .unwrap();
}

#[test]
fn skb_soft_mode() {
    soft_mode(AttachMode::Skb);
}

#[test]
fn driver_soft_mode() {
    soft_mode(AttachMode::Driver);
}

// ---- isolation: a stalled channel is cut off by its gate ------------------------------

fn isolation(mode: AttachMode) {
    let Some((_g, net)) = setup(mode) else { return };
    const N0: u64 = 2000;
    const FLOOD: u64 = 20_000;
    const RX1: u32 = 512;
    let (p0, p1) = (9000, 9001);
    net.local()
        .ns()
        .run(|| {
            let mut rig = Rig::new(&net, mode, &[2048, RX1]);
            rig.listen(&net, p0, 0);
            rig.listen(&net, p1, 1);
            let mut gates = rig.xdp.gates().unwrap();
            let gate1 = SlotGate::new(1, rig.socks[1].rx_capacity());
            let dst1 = SocketAddr::V4(SocketAddrV4::new(net.local().ipv4(), p1));
            let flood = UdpFlood { burst: 256, pause: Duration::ZERO, ..UdpFlood::new(dst1, FLOOD, PAYLOAD) };
            let flooder = net.peer().ns().spawn_udp_sender(flood);
            let victim = send(&net, p0, N0);
            let mut got = Vec::new();
            let mut max_occupancy = 0;
            let deadline = Instant::now() + Duration::from_secs(30);
            // Slot 1 is never read; its gate is driven from its ring occupancy.
            while (got.len() as u64) < N0 || !flooder.is_finished() || !victim.is_finished() {
                assert!(Instant::now() < deadline, "timed out at {}", got.len());
                let occ = rig.socks[1].rx_len();
                max_occupancy = max_occupancy.max(occ);
                gate1.observe(occ, &mut gates).unwrap();
                if rig.drain(0, &mut got) == 0 {
                    rig.socks[0].poll_rx(Duration::from_millis(1)).unwrap();
                }
            }
            let flood_sent = join(flooder).sent;
            assert_eq!(join(victim).sent, N0);
            assert_eq!(flood_sent, FLOOD);
            // The victim channel got everything, untouched by the flood.
            assert_complete(&got, p0, N0);
            let st0 = rig.socks[0].statistics().unwrap();
            assert_eq!((st0.rx_ring_full, st0.rx_dropped, st0.rx_fill_ring_empty_descs), (0, 0, 0));
            assert_eq!(rig.xdp.slot_counters(0).unwrap().redirected, N0);
            // The stalled channel: every datagram is accounted for.
            let sc1 = rig.xdp.slot_counters(1).unwrap();
            let st1 = rig.socks[1].statistics().unwrap();
            let in_ring = u64::from(rig.socks[1].rx_len());
            assert_eq!(sc1.redirected + sc1.gate_drops, FLOOD, "{sc1:?}");
            assert_eq!(sc1.redirected, in_ring + st1.rx_ring_full + st1.rx_dropped, "{sc1:?} {st1:?}");
            assert!(in_ring <= u64::from(RX1));
            assert_eq!(gate1.state(), GateState::Closed);
            assert_eq!(gates.get(1).unwrap(), GateState::Closed);
            assert!(sc1.gate_drops > 0);
            assert!(
                sc1.gate_drops > st1.rx_ring_full,
                "the gate should take most drops before the copy: {sc1:?} {st1:?}"
            );
            eprintln!(
                "{mode:?} isolation: flood {FLOOD} -> {} redirected ({in_ring} in ring, {} ring-full), \
                 {} gate drops; max occupancy {max_occupancy}/{RX1}; gate closings {}",
                sc1.redirected,
                st1.rx_ring_full,
                sc1.gate_drops,
                gate1.closings()
            );
            // Drain the stalled ring; the gate reopens and the census balances.
            rig.census();
            assert_eq!(gate1.observe(rig.socks[1].rx_len(), &mut gates).unwrap(), Some(GateState::Open));
            assert_eq!(gates.get(1).unwrap(), GateState::Open);
        })
        .unwrap();
}

#[test]
fn skb_isolation_by_gate() {
    isolation(AttachMode::Skb);
}

#[test]
fn driver_isolation_by_gate() {
    isolation(AttachMode::Driver);
}

// ---- TX: echo every datagram back -----------------------------------------------------

fn echo(mode: AttachMode) {
    let Some((_g, net)) = setup(mode) else { return };
    const N: u64 = 500;
    let port = 7007;
    let server = SocketAddr::V4(SocketAddrV4::new(net.local().ipv4(), port));
    let client = net
        .peer()
        .ns()
        .udp_socket(SocketAddr::V4(SocketAddrV4::new(net.peer().ipv4(), 0)))
        .unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    net.local()
        .ns()
        .run(|| {
            let mut rig = Rig::new(&net, mode, &[2048]);
            rig.listen(&net, port, 0);
            // The client pings, one datagram at a time, on its own thread.
            let pinger = std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                let mut replies = 0u64;
                for seq in 0..N {
                    let p = udp_payload(seq, PAYLOAD);
                    client.send_to(&p, server).unwrap();
                    let (n, from) = client.recv_from(&mut buf).expect("echo reply");
                    assert_eq!(from, server);
                    assert_eq!(&buf[..n], &p[..], "reply {seq}");
                    replies += 1;
                }
                replies
            });
            let mut echoed = 0u64;
            let mut tx: Vec<Frame> = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(20);
            while echoed < N {
                assert!(Instant::now() < deadline, "timed out after {echoed} echoes");
                let mut frames = Vec::new();
                if rig.socks[0].receive_frames(64, &mut frames).unwrap() == 0 {
                    rig.socks[0].poll_rx(Duration::from_millis(5)).unwrap();
                    continue;
                }
                for mut f in frames {
                    let v = parse_udp4(&f).expect("UDP");
                    assert!(v.checksum_ok, "bad UDP checksum from the Linux sender");
                    udp4_echo_in_place(&mut f);
                    let reply = parse_udp4(&f).unwrap();
                    assert!(reply.checksum_ok && reply.dport == v.sport && reply.sport == v.dport);
                    tx.push(f);
                }
                echoed += tx.len() as u64;
                let n = tx.len();
                let sent = transmit_all(&mut rig, &mut tx, Duration::from_secs(5));
                assert_eq!(sent, n);
                rig.queue.fill_from_pool(usize::MAX).unwrap();
            }
            assert_eq!(pinger.join().expect("pinger"), N);
            let c = rig.census();
            assert_eq!(rig.xdp.slot_counters(0).unwrap().redirected, N);
            let st = rig.socks[0].statistics().unwrap();
            assert_eq!((st.tx_invalid_descs, st.rx_ring_full), (0, 0));
            eprintln!("{mode:?} echo: {N} replies; census {c:?}");
        })
        .unwrap();
}

#[test]
fn skb_echo_tx() {
    echo(AttachMode::Skb);
}

#[test]
fn driver_echo_tx() {
    echo(AttachMode::Driver);
}

// ---- the receive-and-drop baseline ----------------------------------------------------

fn baseline(mode: AttachMode) {
    let Some((_g, net)) = setup(mode) else { return };
    const N: u64 = 20_000;
    net.local()
        .ns()
        .run(|| {
            let mut rig = Rig::new(&net, mode, &[2048]);
            rig.listen(&net, 9000, 0);
            let sender = send(&net, 9000, N);
            let cfg = RxDropConfig {
                max_frames: N,
                max_duration: Duration::from_secs(30),
                idle_timeout: Duration::from_secs(2),
                ..RxDropConfig::default()
            };
            let r = rx_drop(&mut rig.queue, &mut rig.socks[0], &cfg).unwrap();
            assert_eq!(join(sender).sent, N);
            assert_eq!(r.frames, N, "{r:?}");
            assert_eq!(r.bytes, N * (14 + 20 + 8 + PAYLOAD as u64));
            assert_eq!(rig.socks[0].statistics().unwrap().rx_ring_full, 0);
            rig.census();
            eprintln!(
                "{mode:?} rx_drop: {r:?}, {:.0} frames/s (paced sender)",
                r.rate().unwrap_or(0.0)
            );
        })
        .unwrap();
}

#[test]
fn skb_rx_drop_baseline() {
    baseline(AttachMode::Skb);
}

#[test]
fn driver_rx_drop_baseline() {
    baseline(AttachMode::Driver);
}

// ---- errors -------------------------------------------------------------------------------

#[test]
fn second_umem_on_a_busy_queue_is_reported() {
    let Some((_g, net)) = setup(AttachMode::Skb) else {
        return;
    };
    net.local()
        .ns()
        .run(|| {
            let ifindex = interface_index(net.local().ifname()).unwrap();
            let pa = FramePool::new(64, 4096, 0).unwrap();
            let a = Umem::from_pool(&pa).unwrap();
            let (_qa, _sa) = XskQueue::open(&a, ifindex, 0, &QueueConfig::default()).unwrap();
            let pb = FramePool::new(64, 4096, 0).unwrap();
            let b = Umem::from_pool(&pb).unwrap();
            match XskQueue::open(&b, ifindex, 0, &QueueConfig::default()) {
                Err(e @ XdpError::QueueBusy { .. }) => eprintln!("as expected: {e}"),
                other => panic!("expected QueueBusy, got {other:?}"),
            }
            // The same UMEM cannot open the same queue twice either.
            assert!(matches!(
                XskQueue::open(&a, ifindex, 0, &QueueConfig::default()),
                Err(XdpError::InvalidConfig(_))
            ));
        })
        .unwrap();
}

#[test]
fn mtu_larger_than_a_chunk_is_refused_before_attach() {
    if !testnet::require("mtu_larger_than_a_chunk") {
        return;
    }
    let _g = serial();
    let net = TestNet::new(&TestNetConfig {
        mtu: Some(3000),
        ..TestNetConfig::default()
    })
    .unwrap();
    net.local()
        .ns()
        .run(|| {
            let ifindex = interface_index(net.local().ifname()).unwrap();
            let pool = FramePool::new(64, 2048, 0).unwrap();
            let small = Umem::from_pool(&pool).unwrap();
            match XskQueue::open(&small, ifindex, 0, &QueueConfig::default()) {
                Err(
                    e @ XdpError::MtuTooLarge {
                        mtu: 3000,
                        max_frame: 3018,
                        capacity: 1792,
                        ..
                    },
                ) => {
                    eprintln!("as expected: {e}")
                }
                other => panic!("expected MtuTooLarge, got {other:?}"),
            }
            assert!(matches!(
                interface_index("lrp-no-such0"),
                Err(XdpError::NoSuchInterface(_))
            ));
        })
        .unwrap();
}

#[test]
fn driver_mode_refuses_a_jumbo_veth_mtu() {
    if !testnet::require("driver_mode_refuses_a_jumbo_veth_mtu") {
        return;
    }
    let _g = serial();
    let net = TestNet::new(&TestNetConfig {
        mtu: Some(9000),
        ..TestNetConfig::default()
    })
    .unwrap();
    net.local()
        .ns()
        .run(|| {
            let ifindex = interface_index(net.local().ifname()).unwrap();
            let mut xdp = LrpXdp::load(&ProgramConfig::default()).unwrap();
            match xdp.attach(ifindex, AttachMode::Driver) {
                Err(e @ XdpError::MtuTooLargeForDriverMode { .. }) => eprintln!("as expected: {e}"),
                other => panic!("expected MtuTooLargeForDriverMode, got {other:?}"),
            }
            // An interface without native XDP (loopback): the mode is named in the error.
            let lo = interface_index("lo").unwrap();
            let mut other = LrpXdp::load(&ProgramConfig::default()).unwrap();
            match other.attach(lo, AttachMode::Driver) {
                Err(
                    e @ XdpError::ModeNotSupported {
                        mode: AttachMode::Driver,
                        ..
                    },
                ) => {
                    eprintln!("as expected: {e}")
                }
                other => panic!("expected ModeNotSupported, got {other:?}"),
            }
            // Generic mode works at any MTU.
            xdp.attach(ifindex, AttachMode::Skb).unwrap();
            xdp.detach().unwrap();
            assert_eq!(xdp.attachment(), None);
        })
        .unwrap();
}

// ---- the dispatcher: one demux program per queue --------------------------------------

/// Wait (at most 5 s) until `done`.
fn wait_for(mut done: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Frames of a queue no program is registered for go to the kernel and are counted; once
/// a program is registered for the queue they reach its socket.
fn dispatcher(mode: AttachMode) {
    let Some((_g, net)) = setup(mode) else { return };
    const N: u64 = 300;
    let port = 9000;
    // A Linux socket on the port: what the kernel gets shows in its UDP counters once
    // read (`InDatagrams` counts at `recvmsg`), or as dropped at its full buffer.
    let kernel = net
        .local()
        .ns()
        .udp_socket(SocketAddr::V4(SocketAddrV4::new(net.local().ipv4(), port)))
        .unwrap();
    kernel
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let kernel_got = || {
        let mut buf = [0u8; 2048];
        while kernel.recv_from(&mut buf).is_ok() {}
        udp_received(net.local().ns())
    };
    let before = kernel_got();
    net.local()
        .ns()
        .run(|| {
            let ifindex = interface_index(net.local().ifname()).unwrap();
            let mut d = Dispatcher::attach(ifindex, mode).unwrap();
            assert_eq!((d.ifindex(), d.mode()), (ifindex, mode));
            // Nothing registered: the kernel's socket gets everything.
            let h = send(&net, port, N);
            assert_eq!(join(h).sent, N);
            wait_for(|| kernel_got() - before == N, "passed to the kernel");
            assert_eq!(d.unserved(0).unwrap(), N);
            // A demux program for queue 0 with a listener on the port: its socket gets
            // everything.
            let pool = FramePool::new(1024, 4096, 0).unwrap();
            let umem = Umem::from_pool(&pool).unwrap();
            let (mut queue, mut sock) =
                XskQueue::open(&umem, ifindex, 0, &QueueConfig::default()).unwrap();
            queue.fill_from_pool(1024).unwrap();
            let mut xdp = LrpXdp::load(&ProgramConfig::default()).unwrap();
            xdp.set_socket(0, &sock).unwrap();
            let key = ListenerKey::new(Proto::Udp, IpAddr::V4(net.local().ipv4()), port);
            xdp.insert_listener(&key, &Listener::new(ChannelId(0)))
                .unwrap();
            d.register(0, &xdp).unwrap();
            let h = send(&net, port, N);
            let mut got = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(10);
            while (got.len() as u64) < N {
                assert!(Instant::now() < deadline, "timed out at {}", got.len());
                let mut frames = Vec::new();
                if sock.receive_frames(64, &mut frames).unwrap() == 0 {
                    sock.poll_rx(Duration::from_millis(5)).unwrap();
                }
                got.extend(frames.iter().map(|f| parse_udp4(f).expect("UDP")));
            }
            assert_eq!(join(h).sent, N);
            assert_complete(&got, port, N);
            assert_eq!(d.unserved(0).unwrap(), N, "no more unserved frames");
            assert_eq!(xdp.slot_counters(0).unwrap().redirected, N);
            // Unregistered again: back to the kernel.
            d.unregister(0).unwrap();
            d.unregister(0).unwrap(); // not registered: fine
            assert!(d.unregister(1000).is_err());
            let h = send(&net, port, 10);
            assert_eq!(join(h).sent, 10);
            wait_for(
                || kernel_got() - before == N + 10,
                "passed to the kernel again",
            );
            assert_eq!(d.unserved(0).unwrap(), N + 10);
            drop(got);
            while queue.complete_to_pool(256).unwrap() > 0 {}
            let c = pool.census();
            assert!(
                c.is_conserved() && c.held == 0 && c.violations == 0,
                "{c:?}"
            );
        })
        .unwrap();
}

#[test]
fn skb_dispatcher() {
    dispatcher(AttachMode::Skb);
}

#[test]
fn driver_dispatcher() {
    dispatcher(AttachMode::Driver);
}
