//! The stack on a real veth pair with AF_XDP, against Linux in the peer namespace.
//!
//! Every test builds its own [`TestNet`] (two namespaces and a veth pair, removed on
//! drop), takes the local address away from the local kernel (the stack owns it; the
//! kernel must not answer for it), and opens [`Nic::open`] + [`Stack`] on the local veth
//! from a thread inside the local namespace, with the veth's own MAC. The peer side is
//! real Linux: kernel UDP and TCP sockets on threads inside the peer namespace, and
//! `python3` with an `AF_PACKET` socket for hand-made bad frames. Every loop is bounded
//! in count and time; `testnet::require` turns a missing capability into a loud skip (or
//! a failure with `LRP_REQUIRE_XDP=1`).
//!
//! * UDP echo to a Linux client in every mode; closed ports refuse Linux clients (RST,
//!   ICMP port unreachable).
//! * Bad input from the peer while a connection transfers data: bad checksums,
//!   out-of-window RSTs, SYNs to a closed port (answered with a RST), truncated frames —
//!   counted by reason, and the transfer completes intact.
//! * Accounting: a flooded UDP socket is charged for (nearly) all the CPU its thread
//!   spends; a lightly loaded socket's charge does not grow with the flood (NI-LRP). In
//!   EAGER the flood's processing lands on the eager poll step instead.
//!   Run with `--nocapture` to see the numbers.
//! * NI-LRP with few slots: connections beyond them get soft channels whose blocking
//!   reads wait on every feeder ring (regression: more than four feeders used to fail
//!   the wait with "too many descriptors to poll").

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream as LinuxTcpStream, UdpSocket as LinuxUdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lrp_core::account::DropReason;
use lrp_net::stack::{thread_cpu_ns, Stack, StackConfig, UdpSocket};
use lrp_net::testnet::{self, TestNet, TestNetConfig, UdpFlood};
use lrp_net::{Mode, Nic, NicConfig};

const MODES: [Mode; 3] = [Mode::NiLrp, Mode::SoftLrp, Mode::Eager];

/// The tests of this file run one at a time: each loads both cores (floods, transfers),
/// and the accounting test measures CPU time, which concurrent tests would disturb.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Take the file's lock (a failed test poisons it; the next one runs anyway).
fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A stack on the local end of a fresh veth pair. Fields drop in declaration order: the
/// stack (its AF_XDP sockets and XDP program) before the namespaces.
struct Veth {
    stack: Stack,
    net: TestNet,
}

impl Veth {
    /// A test network and a stack in `mode` on its local end, at the local end's address
    /// (removed from the local kernel) and MAC.
    fn open(mode: Mode, stack_config: impl FnOnce(StackConfig) -> StackConfig) -> Veth {
        Veth::open_nic(NicConfig::default().mode(mode), stack_config)
    }

    /// [`open`](Self::open) with a NIC configuration of the caller's.
    fn open_nic(
        nic_config: NicConfig,
        stack_config: impl FnOnce(StackConfig) -> StackConfig,
    ) -> Veth {
        let mode = nic_config.mode;
        let net = TestNet::new(&TestNetConfig::default()).expect("test network");
        let local = net.local();
        // The stack owns the address: the local kernel must neither answer ARP for it nor
        // reset connections to it.
        local
            .ns()
            .exec("ip", &["addr", "flush", "dev", local.ifname()])
            .expect("flush the local kernel's address");
        let ifname = local.ifname().to_owned();
        // The MAC address is the interface's own: the stack takes it from the NIC.
        let config = stack_config(StackConfig::new(local.ipv4(), 24));
        let stack = local
            .ns()
            .run(move || -> Result<Stack, String> {
                let nic = Nic::open(&ifname, nic_config)
                    .map_err(|e| format!("Nic::open({ifname}, {mode:?}): {e}"))?;
                Stack::new(nic, config).map_err(|e| format!("Stack::new: {e}"))
            })
            .expect("a thread in the local namespace")
            .unwrap_or_else(|e| panic!("{e}"));
        Veth { stack, net }
    }

    /// The stack's address with `port`.
    fn addr(&self, port: u16) -> SocketAddr {
        SocketAddr::from((self.stack.ip(), port))
    }

    fn peer_ip(&self) -> Ipv4Addr {
        self.net.peer().ipv4()
    }

    /// A kernel UDP socket in the peer namespace, bound to an ephemeral port.
    fn peer_udp(&self) -> LinuxUdpSocket {
        let s = self
            .net
            .peer()
            .ns()
            .udp_socket(SocketAddr::from((self.peer_ip(), 0)))
            .expect("peer UDP socket");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    }

    /// A kernel TCP connection from the peer namespace to the stack's `port`.
    fn peer_connect(&self, port: u16) -> std::io::Result<LinuxTcpStream> {
        let to = self.addr(port);
        self.net
            .peer()
            .ns()
            .run(move || LinuxTcpStream::connect_timeout(&to, Duration::from_secs(5)))
            .expect("a thread in the peer namespace")
    }
}

fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

#[test]
fn udp_echo_to_a_linux_client_in_every_mode() {
    if !testnet::require("udp_echo_to_a_linux_client_in_every_mode") {
        return;
    }
    let _serial = serial();
    const ROUNDS: usize = 200;
    const BURST: usize = 32;
    for mode in MODES {
        let v = Veth::open(mode, |c| c);
        let sock = v.stack.udp_bind(v.addr(7), 256).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let server = std::thread::spawn(move || -> std::io::Result<UdpSocket> {
            let mut buf = [0u8; 2048];
            for _ in 0..ROUNDS + BURST {
                let (n, from) = sock.recv_from(&mut buf)?;
                sock.send_to(&buf[..n], from)?;
            }
            Ok(sock)
        });
        let client = v.peer_udp();
        client.connect(v.addr(7)).unwrap();
        let mut buf = [0u8; 2048];
        // Ping-pong: every request gets its own reply.
        for i in 0..ROUNDS {
            let payload = format!("{mode:?} datagram {i} {}", "x".repeat(i * 5));
            client.send(payload.as_bytes()).unwrap();
            let n = client
                .recv(&mut buf)
                .unwrap_or_else(|e| panic!("{mode:?}: no echo for datagram {i}: {e}"));
            assert_eq!(&buf[..n], payload.as_bytes(), "{mode:?}");
        }
        // A burst: all of it comes back.
        let mut want: Vec<Vec<u8>> = (0..BURST)
            .map(|i| format!("{mode:?} burst {i}").into_bytes())
            .collect();
        for p in &want {
            client.send(p).unwrap();
        }
        let mut got = Vec::new();
        for _ in 0..BURST {
            let n = client
                .recv(&mut buf)
                .unwrap_or_else(|e| panic!("{mode:?}: burst echo missing: {e}"));
            got.push(buf[..n].to_vec());
        }
        got.sort();
        want.sort();
        assert_eq!(got, want, "{mode:?}");
        let sock = server.join().unwrap().expect("echo server");
        let s = sock.stats();
        eprintln!(
            "{mode:?}: echo socket: {} in, {} out, {:.2} ms CPU charged",
            s.rx_packets,
            s.tx_packets,
            s.cpu_ns as f64 / 1e6
        );
        assert_eq!(s.delivered, (ROUNDS + BURST) as u64, "{mode:?}");
        assert_eq!(s.tx_packets, (ROUNDS + BURST) as u64, "{mode:?}");
        assert_eq!(
            s.early_discards + s.endpoint_full_drops + s.bad_checksum,
            0,
            "{mode:?}"
        );
        assert!(
            v.stack.neighbors().iter().any(|(ip, _)| *ip == v.peer_ip()),
            "{mode:?}: the peer's ARP request taught the stack its address"
        );
    }
}

#[test]
fn closed_ports_refuse_linux_clients_in_every_mode() {
    if !testnet::require("closed_ports_refuse_linux_clients_in_every_mode") {
        return;
    }
    let _serial = serial();
    for mode in MODES {
        let v = Veth::open(mode, |c| c);
        // Something is open, on other ports.
        let _udp = v.stack.udp_bind(v.addr(7), 16).unwrap();
        let _tcp = v.stack.tcp_listen(v.addr(80), 4).unwrap();
        // TCP: the stack answers the SYN with a RST, so connect fails at once.
        let t = Instant::now();
        let err = v.peer_connect(81).expect_err("nobody listens on :81");
        assert_eq!(
            err.kind(),
            std::io::ErrorKind::ConnectionRefused,
            "{mode:?}: {err}"
        );
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "{mode:?}: refused late"
        );
        // UDP: an ICMP port unreachable makes the connected kernel socket's next
        // receive fail with ECONNREFUSED.
        let client = v.peer_udp();
        client.connect(v.addr(9)).unwrap();
        client.send(b"anyone?").unwrap();
        let err = client
            .recv(&mut [0u8; 64])
            .expect_err("no UDP socket on :9");
        assert_eq!(
            err.kind(),
            std::io::ErrorKind::ConnectionRefused,
            "{mode:?}: {err}"
        );
        // The frames left before the counters were updated: wait (bounded) for them.
        let end = Instant::now() + Duration::from_secs(2);
        while v.stack.control_stats().tx_packets < 3 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
        let c = v.stack.control_stats();
        eprintln!(
            "{mode:?}: control channel: {} frames in, {} out",
            c.rx_packets, c.tx_packets
        );
        assert!(c.tx_packets >= 3, "{mode:?}: ARP reply, RST, ICMP: {c:?}");
    }
}

/// The frames `inject` (below) sends, and what it saw.
#[derive(Debug, Default)]
struct Injected {
    bad_checksum: u64,
    oow_rst: u64,
    closed_syn: u64,
    rst_from_closed: u64,
    truncated: u64,
}

/// Runs in the peer namespace: sniff the connection `client_port` <-> `server_port` on
/// `ifname` to learn its sequence numbers, then send `count` frames of each kind of bad
/// input (see the test), and watch for the RSTs the SYNs to `closed_port` must get.
const INJECTOR: &str = r#"
import socket, struct, sys, time
ifname, pmac, smac, pip, sip = sys.argv[1:6]
cport, sport, closed, count = map(int, sys.argv[6:10])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((ifname, 0))
s.settimeout(0.05)
pm, sm = bytes.fromhex(pmac.replace(':', '')), bytes.fromhex(smac.replace(':', ''))
pi, si = socket.inet_aton(pip), socket.inet_aton(sip)

def csum(b):
    if len(b) % 2:
        b += b'\0'
    t = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while t >> 16:
        t = (t & 0xffff) + (t >> 16)
    return ~t & 0xffff

def frame(sp, dp, seq, ack, flags, payload=b'', bad=False):
    th = struct.pack('!HHIIBBHHH', sp, dp, seq & 0xffffffff, ack & 0xffffffff, 5 << 4,
                     flags, 65535, 0, 0)
    c = csum(pi + si + struct.pack('!BBH', 0, 6, len(th) + len(payload)) + th + payload)
    if bad:
        c ^= 0x5a5a
    th = th[:16] + struct.pack('!H', c) + th[18:]
    ih = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(th) + len(payload), 0x1234, 0x4000,
                     64, 6, 0, pi, si)
    ih = ih[:10] + struct.pack('!H', csum(ih)) + ih[12:]
    return sm + pm + b'\x08\x00' + ih + th + payload

def from_stack():
    # TCP segments the stack sent to us: (sport, dport, seq, ack, flags).
    try:
        f = s.recv(4096)
    except socket.timeout:
        return None
    if len(f) < 54 or f[12:14] != b'\x08\x00' or f[23] != 6:
        return None
    if f[26:30] != si or f[30:34] != pi:
        return None
    t = 14 + (f[14] & 15) * 4
    return struct.unpack('!HHIIxB', f[t:t + 14])

end = time.time() + 5
seg = None
while time.time() < end:
    x = from_stack()
    if x and x[0] == sport and x[1] == cport and x[4] & 0x10:
        seg = x
        break
if seg is None:
    print('error=no segment of the connection seen')
    sys.exit(1)
seq, ack = seg[3], seg[2]  # our next sequence number, the stack's
print('seq=%d ack=%d' % (seq, ack))
for i in range(count):
    s.send(frame(cport, sport, seq, ack, 0x18, b'corrupted! ' * 8, bad=True))
print('bad_checksum=%d' % count)
for i in range(count):
    s.send(frame(cport, sport, seq + 0x40000000 + i * 1000, 0, 0x04))
print('oow_rst=%d' % count)
for i in range(count):
    s.send(frame(41000 + i, closed, 7777 + i, 0, 0x02))
print('closed_syn=%d' % count)
for i in range(count):
    f = frame(cport, sport, seq, ack, 0x18, b'cut short ' * 4)
    s.send(f[:14 + 20 + 10] if i % 2 else f[:14 + 12])
print('truncated=%d' % count)
rsts = set()
end = time.time() + 3
while time.time() < end and len(rsts) < count:
    x = from_stack()
    if x and x[0] == closed and 41000 <= x[1] < 41000 + count and x[4] & 0x04:
        rsts.add(x[1])
print('rst_from_closed=%d' % len(rsts))
"#;

fn run_injector(
    v: &Veth,
    client_port: u16,
    server_port: u16,
    closed_port: u16,
    count: u64,
) -> Injected {
    let peer = v.net.peer();
    let mac = |m: [u8; 6]| {
        m.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    let args = [
        "-c".to_owned(),
        INJECTOR.to_owned(),
        peer.ifname().to_owned(),
        mac(peer.mac()),
        mac(v.stack.mac().0),
        v.peer_ip().to_string(),
        v.stack.ip().to_string(),
        client_port.to_string(),
        server_port.to_string(),
        closed_port.to_string(),
        count.to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = peer.ns().exec("python3", &args).expect("python3 injector");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("injector: {}", text.trim().replace('\n', " "));
    let mut r = Injected::default();
    for line in text.lines() {
        let Some((k, val)) = line.split_once('=') else {
            continue;
        };
        let n = val.parse().unwrap_or(0);
        match k {
            "bad_checksum" => r.bad_checksum = n,
            "oow_rst" => r.oow_rst = n,
            "closed_syn" => r.closed_syn = n,
            "rst_from_closed" => r.rst_from_closed = n,
            "truncated" => r.truncated = n,
            _ => {}
        }
    }
    r
}

/// Frames dropped as malformed anywhere before an endpoint: by the XDP program, or by
/// the NIC's demux step.
fn nic_malformed(stack: &Stack) -> u64 {
    let s = stack.nic().stats();
    s.account.drops(DropReason::Malformed) + s.backend.xdp_drop_malformed
}

#[test]
fn bad_input_during_a_transfer_is_counted_and_the_transfer_completes() {
    if !testnet::require("bad_input_during_a_transfer_is_counted_and_the_transfer_completes") {
        return;
    }
    let _serial = serial();
    const TOTAL: usize = 24 << 20;
    const COUNT: u64 = 6;
    for mode in MODES {
        let v = Veth::open(mode, |c| c);
        let listener = v.stack.tcp_listen(v.addr(5000), 4).unwrap();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept_timeout(Duration::from_secs(10))?;
            conn.set_write_timeout(Some(Duration::from_secs(20)))?;
            // A whole number of pattern periods: consecutive chunks continue the pattern.
            let chunk: Vec<u8> = (0..251 * 256).map(pattern).collect();
            let mut sent = 0;
            while sent < TOTAL {
                let n = (TOTAL - sent).min(chunk.len());
                conn.write_all(&chunk[..n])?;
                sent += n;
            }
            let stats = conn.stats();
            conn.close(Duration::from_secs(10))?;
            std::io::Result::Ok(stats)
        });
        let mut client = v.peer_connect(5000).expect("connect to the lrp listener");
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let client_port = client.local_addr().unwrap().port();
        // The reader goes slowly until the injector is done, so the transfer is still
        // running while the bad input arrives.
        let injected = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&injected);
        let reader = std::thread::spawn(move || {
            let mut buf = vec![0u8; 16 * 1024];
            let mut got = 0usize;
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                let n = client.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                if let Some(i) = (0..n).find(|&i| buf[i] != pattern(got + i)) {
                    panic!("byte {} differs", got + i);
                }
                got += n;
                if !flag.load(Ordering::Acquire) {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            std::io::Result::Ok(got)
        });
        let before_malformed = nic_malformed(&v.stack);
        let before_nic_bad = v.stack.nic().stats().account.drops(DropReason::BadChecksum);
        let before_control = v.stack.control_stats();
        let inj = run_injector(&v, client_port, 5000, 5999, COUNT);
        injected.store(true, Ordering::Release);
        let got = reader.join().unwrap().expect("reading the transfer");
        let conn = server.join().unwrap().expect("serving the transfer");
        assert_eq!(got, TOTAL, "{mode:?}: the transfer completed intact");
        let nic_bad = v.stack.nic().stats().account.drops(DropReason::BadChecksum) - before_nic_bad;
        eprintln!(
            "{mode:?}: connection: {} frames in, {} out, bad checksum {} (NIC: {nic_bad}), \
             {:.1} ms CPU charged",
            conn.rx_packets,
            conn.tx_packets,
            conn.bad_checksum,
            conn.cpu_ns as f64 / 1e6
        );
        assert_eq!(inj.bad_checksum, COUNT, "{mode:?}: {inj:?}");
        assert_eq!(inj.oow_rst, COUNT);
        assert_eq!(inj.closed_syn, COUNT);
        assert_eq!(inj.truncated, COUNT);
        if mode == Mode::Eager {
            // Bad checksums: found by the eager poll step, before any endpoint.
            assert_eq!(nic_bad, COUNT, "{mode:?}");
            assert_eq!(conn.bad_checksum, 0, "{mode:?}: {conn:?}");
        } else {
            // Bad checksums: found by the connection's own lazy verification.
            assert_eq!(conn.bad_checksum, COUNT, "{mode:?}: {conn:?}");
            assert_eq!(conn.drops(DropReason::BadChecksum), COUNT);
            assert_eq!(nic_bad, 0, "{mode:?}");
        }
        // Out-of-window RSTs reached the connection (its own channel) and did not reset
        // it: the transfer above completed.
        assert!(conn.rx_packets > COUNT, "{mode:?}");
        // SYNs to a closed port: each answered with a RST by the control path.
        assert_eq!(inj.rst_from_closed, COUNT, "{mode:?}: {inj:?}");
        let control = v.stack.control_stats();
        assert!(
            control.rx_packets >= before_control.rx_packets + COUNT,
            "{mode:?}: {control:?}"
        );
        // Truncated frames: dropped as malformed before any endpoint.
        let malformed = nic_malformed(&v.stack) - before_malformed;
        eprintln!(
            "{mode:?}: malformed drops {malformed}; control channel: {} frames in, {} out",
            control.rx_packets, control.tx_packets
        );
        assert_eq!(malformed, COUNT, "{mode:?}");
    }
}

/// One receiver thread's view of a run: datagrams, the socket's charged CPU and the
/// thread's own CPU time over the run.
#[derive(Debug, Clone, Copy, Default)]
struct Receiver {
    datagrams: u64,
    charged_ns: u64,
    thread_ns: u64,
}

/// Receive on `sock` until `done` is set and the socket has been idle for 200 ms, or 20 s
/// pass, measuring this thread's CPU time and the socket's charge over the run.
fn receive_run(sock: &UdpSocket, done: &AtomicBool) -> Receiver {
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 2048];
    let charged0 = sock.stats().cpu_ns;
    let t0 = thread_cpu_ns();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut datagrams = 0;
    while Instant::now() < deadline {
        match sock.recv_from(&mut buf) {
            Ok(_) => datagrams += 1,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                if done.load(Ordering::Acquire) {
                    break;
                }
            }
            Err(e) => panic!("recv_from: {e}"),
        }
    }
    let thread_ns = thread_cpu_ns() - t0;
    Receiver {
        datagrams,
        charged_ns: sock.stats().cpu_ns - charged0,
        thread_ns,
    }
}

/// A flooded socket and a lightly loaded one, each on its own thread. Returns the two
/// receivers' views and the eager account's CPU delta.
fn accounting_run(v: &Veth, flood: u64, light: u64) -> (Receiver, Receiver, u64) {
    let flooded = Arc::new(v.stack.udp_bind(v.addr(9000), 512).unwrap());
    let quiet = Arc::new(v.stack.udp_bind(v.addr(9001), 64).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    // Resolve the peer's ARP entry first: while it is pending, the peer kernel queues the
    // flood and the light traffic together and drops from that queue.
    let light_sender = v.peer_udp();
    let quiet_addr = v.addr(9001);
    light_sender.send_to(b"warm-up", quiet_addr).unwrap();
    quiet
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    quiet.recv_from(&mut [0u8; 64]).expect("warm-up datagram");
    let eager0 = v.stack.eager_stats().cpu_ns;
    let spawn = |s: &Arc<UdpSocket>, name: &str| {
        let (s, d) = (Arc::clone(s), Arc::clone(&done));
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || receive_run(&s, &d))
            .unwrap()
    };
    let (fa, qa) = (spawn(&flooded, "rx-flooded"), spawn(&quiet, "rx-quiet"));
    // The light traffic: one datagram every 5 ms from a kernel socket in the peer.
    let light_thread = std::thread::spawn(move || {
        for i in 0..light {
            light_sender
                .send_to(&testnet::udp_payload(i, 64), quiet_addr)
                .unwrap();
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let flood_report = (flood > 0).then(|| {
        // As fast as the kernel sends: more than the receiver can process.
        let mut f = UdpFlood::new(v.addr(9000), flood, 64);
        f.pause = Duration::ZERO;
        f.burst = 64;
        f.timeout = Duration::from_secs(3);
        v.net.peer().ns().spawn_udp_sender(f)
    });
    light_thread.join().unwrap();
    if let Some(h) = flood_report {
        let r = h.join().unwrap().expect("flood sender");
        eprintln!(
            "{:?}: flood sent {} in {:?}",
            v.stack.mode(),
            r.sent,
            r.elapsed
        );
    }
    done.store(true, Ordering::Release);
    let (f, q) = (fa.join().unwrap(), qa.join().unwrap());
    // Where frames went, for the record (and to tell a loss in lrp from one before it).
    let b = v.stack.nic().stats().backend;
    let (fs, qs) = (flooded.stats(), quiet.stats());
    eprintln!(
        "{:?}: NIC offered {} accepted {}, gate drops {}, channel ring full {}, shared ring \
         full {}, no buffer {}; flooded socket: {} in, {} discarded early, {} late; quiet \
         socket: {} in, {} discarded early, {} late",
        v.stack.mode(),
        b.rx_offered,
        b.rx_accepted,
        b.gate_drops,
        b.ni_ring_full,
        b.rx_ring_full,
        b.rx_no_buffer,
        fs.rx_packets,
        fs.early_discards,
        fs.endpoint_full_drops,
        qs.rx_packets,
        qs.early_discards,
        qs.endpoint_full_drops,
    );
    (f, q, v.stack.eager_stats().cpu_ns - eager0)
}

#[test]
fn cpu_is_charged_to_the_flooded_socket_in_ni_lrp_and_to_the_eager_step_in_eager() {
    if !testnet::require("cpu_is_charged_to_the_flooded_socket") {
        return;
    }
    let _serial = serial();
    const FLOOD: u64 = 250_000;
    const LIGHT: u64 = 150;

    // NI-LRP, first without the flood (the quiet socket's baseline), then with it.
    let v = Veth::open(Mode::NiLrp, |c| c);
    let (_, base, _) = accounting_run(&v, 0, LIGHT);
    drop(v);
    let v = Veth::open(Mode::NiLrp, |c| c);
    let (flooded, quiet, _) = accounting_run(&v, FLOOD, LIGHT);
    let share = flooded.charged_ns as f64 / flooded.thread_ns.max(1) as f64;
    eprintln!(
        "NI-LRP accounting: flooded socket received {} datagrams, charged {:.2} ms of its \
         thread's {:.2} ms ({:.1}%); quiet socket charged {:.3} ms for {} datagrams under \
         the flood vs {:.3} ms for {} without",
        flooded.datagrams,
        flooded.charged_ns as f64 / 1e6,
        flooded.thread_ns as f64 / 1e6,
        share * 100.0,
        quiet.charged_ns as f64 / 1e6,
        quiet.datagrams,
        base.charged_ns as f64 / 1e6,
        base.datagrams,
    );
    assert!(flooded.datagrams > 1000, "{flooded:?}");
    assert!(
        share >= 0.8,
        "the flooded socket was charged only {:.1}% of its thread's CPU",
        share * 100.0
    );
    assert!(flooded.charged_ns <= flooded.thread_ns + 1_000_000);
    assert_eq!(quiet.datagrams, LIGHT, "the quiet socket lost nothing");
    assert_eq!(base.datagrams, LIGHT);
    assert!(
        quiet.charged_ns <= 3 * base.charged_ns + 5_000_000,
        "the quiet socket's charge grew with another socket's flood: {} ns vs {} ns",
        quiet.charged_ns,
        base.charged_ns
    );
    drop(v);

    // EAGER: the same run; the flood's protocol work is done by the shared poll step.
    let v = Veth::open(Mode::Eager, |c| c);
    let (flooded, quiet, eager) = accounting_run(&v, FLOOD, LIGHT);
    eprintln!(
        "EAGER accounting: eager poll step charged {:.2} ms; flooded socket charged {:.2} ms \
         ({} datagrams, its thread spent {:.2} ms); quiet socket charged {:.3} ms, received \
         {} of {LIGHT} datagrams (the rest lost in the shared queue)",
        eager as f64 / 1e6,
        flooded.charged_ns as f64 / 1e6,
        flooded.datagrams,
        flooded.thread_ns as f64 / 1e6,
        quiet.charged_ns as f64 / 1e6,
        quiet.datagrams,
    );
    assert!(flooded.datagrams > 1000, "{flooded:?}");
    // The socket pays only for copying datagrams out of its buffer; the protocol work of
    // every flood frame (verification, UDP) was done, and paid for, by the eager step.
    assert!(
        eager > 3 * flooded.charged_ns,
        "EAGER: the flood's processing should land on the eager step ({eager} ns), not the \
         socket ({} ns)",
        flooded.charged_ns
    );
    assert!(
        eager / flooded.datagrams > 500,
        "EAGER: the eager step spent only {} ns per delivered datagram",
        eager / flooded.datagrams
    );
}

/// A lrp TCP client against a kernel TCP server in the peer namespace: the bytes arrive
/// intact in both directions.
#[test]
fn lrp_client_exchanges_data_with_a_linux_server() {
    if !testnet::require("lrp_client_exchanges_data_with_a_linux_server") {
        return;
    }
    let _serial = serial();
    const TOTAL: usize = 2 << 20;
    for mode in MODES {
        let v = Veth::open(mode, |c| c);
        let bind = SocketAddr::from((v.peer_ip(), 7000));
        let server = v
            .net
            .peer()
            .ns()
            .run(move || std::net::TcpListener::bind(bind))
            .unwrap()
            .expect("peer listener");
        // The Linux server echoes everything back.
        let echo = std::thread::spawn(move || -> std::io::Result<usize> {
            let (mut s, _) = server.accept()?;
            s.set_read_timeout(Some(Duration::from_secs(20)))?;
            let mut buf = vec![0u8; 64 * 1024];
            let mut total = 0;
            loop {
                let n = s.read(&mut buf)?;
                if n == 0 {
                    return Ok(total);
                }
                s.write_all(&buf[..n])?;
                total += n;
            }
        });
        let mut conn = v
            .stack
            .tcp_connect_timeout(bind, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{mode:?}: connect to the Linux server: {e}"));
        conn.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let data: Vec<u8> = (0..TOTAL).map(pattern).collect();
        let writer_conn = &mut conn;
        let mut back = Vec::with_capacity(TOTAL);
        let mut buf = vec![0u8; 64 * 1024];
        // Write in slices and read what came back in between, so neither side's buffers
        // fill up (the stack's reads and writes share the connection).
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut sent = 0;
        while back.len() < TOTAL && Instant::now() < deadline {
            if sent < TOTAL {
                let n = (TOTAL - sent).min(16 * 1024);
                writer_conn.write_all(&data[sent..sent + n]).unwrap();
                sent += n;
            }
            let n = writer_conn.read(&mut buf).unwrap();
            assert!(n > 0, "{mode:?}: early end of stream");
            back.extend_from_slice(&buf[..n]);
        }
        assert_eq!(back.len(), TOTAL, "{mode:?}");
        assert!(back == data, "{mode:?}: echoed bytes differ");
        let stats = conn.stats();
        conn.close(Duration::from_secs(5)).unwrap();
        assert_eq!(echo.join().unwrap().unwrap(), TOTAL);
        eprintln!(
            "{mode:?}: client connection: {} frames in, {} out, {:.1} ms CPU charged",
            stats.rx_packets,
            stats.tx_packets,
            stats.cpu_ns as f64 / 1e6
        );
        assert_eq!(stats.bad_checksum + stats.malformed, 0, "{mode:?}");
    }
}

#[test]
fn soft_channels_block_in_read_with_many_feeders_and_are_served() {
    if !testnet::require("soft_channels_block_in_read_with_many_feeders_and_are_served") {
        return;
    }
    let _serial = serial();
    const CONNS: usize = 12;
    const IDLE: Duration = Duration::from_millis(400);
    let v = Veth::open_nic(NicConfig::default().mode(Mode::NiLrp).ni_slots(4), |c| c);
    // Four NI channels take every slot, and each is a feeder (a listener or host rule):
    // the host channel, two UDP sockets and the TCP listener.
    let _u1 = v.stack.udp_bind(v.addr(7), 16).unwrap();
    let _u2 = v.stack.udp_bind(v.addr(8), 16).unwrap();
    let listener = v.stack.tcp_listen(v.addr(80), CONNS).unwrap();
    assert_eq!(v.stack.nic().stats().channels, 4);

    // The server: one thread per connection, blocked in `read` until the client speaks.
    let server = std::thread::spawn(move || {
        let mut handlers = Vec::new();
        for _ in 0..CONNS {
            let (mut conn, _) = listener
                .accept_timeout(Duration::from_secs(10))
                .expect("accept");
            handlers.push(std::thread::spawn(move || -> std::io::Result<Duration> {
                conn.set_read_timeout(Some(Duration::from_secs(10)))?;
                let t = Instant::now();
                let mut req = Vec::new();
                let mut buf = [0u8; 64];
                while !req.ends_with(b"\n") {
                    let n = conn.read(&mut buf)?;
                    if n == 0 {
                        return Err(std::io::ErrorKind::UnexpectedEof.into());
                    }
                    req.extend_from_slice(&buf[..n]);
                }
                let blocked = t.elapsed();
                req.make_ascii_uppercase();
                conn.write_all(&req)?;
                conn.close(Duration::from_secs(5))?;
                Ok(blocked)
            }));
        }
        handlers
            .into_iter()
            .map(|h| h.join().expect("handler thread"))
            .collect::<Vec<_>>()
    });

    let mut clients: Vec<LinuxTcpStream> = (0..CONNS)
        .map(|i| {
            v.peer_connect(80)
                .unwrap_or_else(|e| panic!("connect #{i}: {e}"))
        })
        .collect();
    // Every accepted connection beyond the slots has a soft channel.
    let end = Instant::now() + Duration::from_secs(10);
    while v.stack.nic().stats().soft_channels < CONNS && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    let soft = v.stack.nic().stats().soft_channels;
    assert_eq!(soft, CONNS, "connections on soft channels");
    // Idle: the handlers sit in `read` on their soft channels.
    std::thread::sleep(IDLE);
    for (i, c) in clients.iter_mut().enumerate() {
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(format!("request {i}\n").as_bytes()).unwrap();
    }
    // Each reply ends with the server's FIN; dropping the client sends ours, which lets
    // the handler's graceful close finish.
    for (i, mut c) in clients.into_iter().enumerate() {
        let mut reply = String::new();
        c.read_to_string(&mut reply)
            .unwrap_or_else(|e| panic!("reply #{i}: {e}"));
        assert_eq!(reply, format!("REQUEST {i}\n"));
    }
    let blocked = server.join().expect("server thread");
    for (i, b) in blocked.iter().enumerate() {
        let b = b.as_ref().unwrap_or_else(|e| panic!("handler #{i}: {e}"));
        // The read started before the request was sent, and waited for it.
        assert!(*b >= IDLE / 2, "handler #{i} blocked only {b:?}");
    }
    let nic = v.stack.nic().stats();
    eprintln!(
        "NI-LRP, 4 slots, 4 feeders: {CONNS} connections on soft channels served; {}",
        nic
    );
}
