//! The HTTP examples on a real veth pair with AF_XDP, against Linux programs in the peer
//! namespace: curl, wrk, kernel TCP clients, nginx.
//!
//! Every test builds its own [`TestNet`], takes the local address away from the local
//! kernel (the lrp stack owns it) and runs the lrp side inside the local namespace —
//! the example binaries under `ip netns exec`, or the library on a thread that entered
//! the namespace. Every wait is bounded; `testnet::require` makes a missing capability a
//! loud skip (or a failure with `LRP_REQUIRE_XDP=1`).
//!
//! * `curl` fetches 0 B, 1 KiB, 64 KiB and 1 MiB objects from the `http-server` binary,
//!   byte-identical, over keep-alive and one connection per request.
//! * Backlog: 200 sequential and 64 concurrent Linux clients are all accepted and
//!   served, then `wrk` runs for 5 s with `Connection: close` without a single error. In
//!   NI-LRP the NIC has 32 slots, so that most of the 64 connections are soft channels,
//!   and wrk keeps 48 connections open, so that soft channels open and slots are freed
//!   and taken again all through its run.
//! * Client direction: the `http-get` binary fetches a file from nginx, in every mode.
//! * The teaching examples (`examples/udp_echo.rs`, `examples/tcp_hello.rs`) serve a Linux
//!   UDP client and curl.

mod support;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpStream as LinuxTcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use support::{parse_wrk, serial, TempDir};

use lrp_examples::http::{fetch, serve_connection, ServerConfig};
use lrp_examples::object::{self, ObjectSource};
use lrp_net::stack::{Stack, StackConfig, TcpListener};
use lrp_net::testnet::{self, NetNs, TestNet, TestNetConfig};
use lrp_net::{Mode, Nic, NicConfig};

/// A test network whose local kernel does not own the local address.
fn network() -> TestNet {
    let net = TestNet::new(&TestNetConfig::default()).expect("test network");
    let local = net.local();
    local
        .ns()
        .exec("ip", &["addr", "flush", "dev", local.ifname()])
        .expect("flush the local kernel's address");
    net
}

/// The lrp address of `net` as the examples take it.
fn cidr(net: &TestNet) -> String {
    format!("{}/24", net.local().ipv4())
}

/// A program started in a namespace, killed (by its pid) and reaped on drop.
struct Background {
    child: Child,
    what: String,
}

impl Background {
    /// Start `program args` in `ns` (`ip netns exec` execs the program itself, so the
    /// child's pid is the program's). Its stderr is forwarded to ours, line by line; the
    /// first line containing `ready` (if any) is awaited, at most 10 s.
    fn start(ns: &NetNs, program: &str, args: &[&str], ready: Option<&str>) -> Background {
        let what = format!("{program} {}", args.join(" "));
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns.name(), program])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {what}: {e}"));
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        let marker = ready.map(str::to_owned);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("  | {line}");
                if marker.as_deref().is_some_and(|m| line.contains(m)) {
                    let _ = tx.send(());
                }
            }
        });
        let mut bg = Background { child, what };
        if ready.is_some() && rx.recv_timeout(Duration::from_secs(10)).is_err() {
            let status = bg.child.try_wait();
            panic!("{} did not become ready: {status:?}", bg.what);
        }
        bg
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Run a command in `ns`, bounded by its own timeout options; its stdout, or a panic with
/// its stderr.
fn exec(ns: &NetNs, program: &str, args: &[&str]) -> String {
    match ns.exec(program, args) {
        Ok(out) => String::from_utf8_lossy(&out.stdout).into_owned(),
        Err(e) => panic!("{program} {}: {e}", args.join(" ")),
    }
}

/// Wait (at most 10 s) until a TCP connection from `ns` to `to` succeeds.
fn wait_for_tcp(ns: &NetNs, to: SocketAddr) {
    let ok = ns
        .run(move || {
            let end = Instant::now() + Duration::from_secs(10);
            while Instant::now() < end {
                if LinuxTcpStream::connect_timeout(&to, Duration::from_millis(500)).is_ok() {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            false
        })
        .expect("a thread in the namespace");
    assert!(ok, "{to} never accepted a connection");
}

fn check_object(body: &[u8], size: usize, what: &str) {
    assert_eq!(body.len(), size, "{what}: body length");
    assert_eq!(object::verify(0, body), None, "{what}: body differs");
}

#[test]
fn curl_fetches_objects_from_the_http_server_binary() {
    if !testnet::require("curl_fetches_objects_from_the_http_server_binary") {
        return;
    }
    let _serial = serial();
    const SIZES: [usize; 4] = [0, 1024, 64 * 1024, 1 << 20];
    let net = network();
    let ip = net.local().ipv4();
    let _server = Background::start(
        net.local().ns(),
        env!("CARGO_BIN_EXE_http-server"),
        &[
            "--iface",
            net.local().ifname(),
            "--ip",
            &cidr(&net),
            "--port",
            "80",
            "--mode",
            "ni",
        ],
        Some("listening on"),
    );
    let dir = TempDir::new("curl");
    let file = |tag: &str, size: usize| dir.path().join(format!("{tag}-{size}"));
    // All four on one keep-alive connection (curl reuses it for URLs of one host) ...
    let mut args: Vec<String> = ["-sS", "--fail", "--max-time", "20"]
        .map(String::from)
        .to_vec();
    for size in SIZES {
        args.push(format!("http://{ip}/obj/{size}"));
        args.push("-o".into());
        args.push(file("ka", size).display().to_string());
    }
    args.push("-w".into());
    args.push("%{num_connects} ".into());
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let connects = exec(net.peer().ns(), "curl", &a);
    eprintln!("curl keep-alive: new connections per transfer: {connects}");
    let connects: Vec<u32> = connects
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    assert_eq!(
        connects.iter().sum::<u32>(),
        1,
        "one connection for all four"
    );
    // ... and each on its own HTTP/1.0 connection.
    for size in SIZES {
        let out = file("close", size).display().to_string();
        let url = format!("http://{ip}/obj/{size}");
        let status = exec(
            net.peer().ns(),
            "curl",
            &[
                "-sS",
                "--fail",
                "-0",
                "--max-time",
                "20",
                "-o",
                &out,
                "-w",
                "%{http_code}",
                &url,
            ],
        );
        assert_eq!(status, "200");
    }
    for size in SIZES {
        for tag in ["ka", "close"] {
            let body = std::fs::read(file(tag, size)).expect("curl's output");
            check_object(&body, size, &format!("curl {tag} /obj/{size}"));
        }
    }
}

/// An in-process HTTP server on a stack in the local namespace, serving until dropped.
struct Server {
    stop: Arc<AtomicBool>,
    served: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<TcpListener>>,
}

impl Server {
    fn start(listener: TcpListener) -> Server {
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicUsize::new(0));
        let (s, n) = (Arc::clone(&stop), Arc::clone(&served));
        let thread = std::thread::spawn(move || {
            let cfg = Arc::new(ServerConfig::default());
            let src = Arc::new(ObjectSource::new(16 * 1024));
            while !s.load(Ordering::Acquire) {
                let (mut conn, peer) = match listener.accept_timeout(Duration::from_millis(100)) {
                    Ok(c) => c,
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
                    Err(e) => panic!("accept: {e}"),
                };
                let (cfg, src, n) = (Arc::clone(&cfg), Arc::clone(&src), Arc::clone(&n));
                std::thread::spawn(move || {
                    let _ = conn.set_nodelay(true);
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                    match serve_connection(&mut conn, &cfg, &src) {
                        Ok(_) => {
                            n.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => eprintln!("server: {peer}: {e}"),
                    }
                });
            }
            listener
        });
        Server {
            stop,
            served,
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> TcpListener {
        self.stop.store(true, Ordering::Release);
        let t = self.thread.take().expect("running");
        t.join().expect("server thread")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One `GET /obj/<size>` from a kernel TCP socket; panics on any failure.
fn linux_get(to: SocketAddr, size: usize, what: &str) {
    let mut s = LinuxTcpStream::connect_timeout(&to, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{what}: connect: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let r = fetch(
        &mut s,
        &to.to_string(),
        &format!("/obj/{size}"),
        false,
        1 << 20,
    )
    .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(r.head.status, 200, "{what}");
    check_object(&r.body, size, what);
}

/// Serve from a stack on a NIC configured with `config`: `SEQUENTIAL` connections one
/// after the other, then `concurrent` at once (all established, each with its own NIC
/// channel, before any request), then, with `wrk`, 5 s of `wrk` with one request per
/// connection. Every request must succeed.
fn backlog_run(config: NicConfig, concurrent: usize, wrk: bool) {
    const SEQUENTIAL: usize = 200;
    let (mode, slots) = (config.mode, config.ni_slots);
    let net = network();
    let local = net.local();
    let (ifname, ip) = (local.ifname().to_owned(), local.ipv4());
    let stack = local
        .ns()
        .run(move || -> Result<Stack, String> {
            let nic =
                Nic::open(&ifname, config).map_err(|e| format!("Nic::open({ifname}): {e}"))?;
            // The stack takes the interface's MAC address and MTU from the NIC.
            Stack::new(nic, StackConfig::new(ip, 24)).map_err(|e| e.to_string())
        })
        .expect("a thread in the local namespace")
        .unwrap_or_else(|e| panic!("{e}"));
    let to = SocketAddr::from((ip, 80));
    let listener = stack.tcp_listen(to, 128).unwrap();
    let server = Server::start(listener);

    // Sequential connections from one Linux client thread.
    net.peer()
        .ns()
        .run(move || {
            for i in 0..SEQUENTIAL {
                linux_get(to, 100 + i, &format!("{mode:?} sequential {i}"));
            }
        })
        .expect("a thread in the peer namespace");

    // Concurrent connections: all established before any request is sent. The test
    // thread joins the barrier once every connection has its channel in the NIC.
    let barrier = Arc::new(Barrier::new(concurrent + 1));
    let clients: Vec<_> = (0..concurrent)
        .map(|i| {
            let b = Arc::clone(&barrier);
            net.peer().ns().spawn(move || {
                let mut s = LinuxTcpStream::connect_timeout(&to, Duration::from_secs(10))
                    .unwrap_or_else(|e| panic!("{mode:?} concurrent {i}: connect: {e}"));
                s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                b.wait();
                let size = 4096 + i;
                let r = fetch(&mut s, "lrp", &format!("/obj/{size}"), false, 1 << 20)
                    .unwrap_or_else(|e| panic!("{mode:?} concurrent {i}: {e}"));
                assert_eq!(r.head.status, 200);
                check_object(&r.body, size, &format!("{mode:?} concurrent {i}"));
            })
        })
        .collect();
    // Every connection's channel, the listener's and the host channel's, open at once.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (open, soft) = loop {
        let s = stack.nic().stats();
        if s.channels >= concurrent + 2 || Instant::now() > deadline {
            break (s.channels, s.soft_channels);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    barrier.wait();
    for c in clients {
        c.join().expect("client thread").expect("peer namespace");
    }
    assert!(
        open >= concurrent + 2,
        "{mode:?}: {open} NIC channels open with {concurrent} connections established"
    );
    // NI-LRP: the channels beyond the NIC's slots are soft channels (more if a slot was
    // freed after a soft channel opened); none in the other modes.
    match mode {
        Mode::NiLrp => assert!(
            soft >= open.saturating_sub(slots as usize) && soft < open,
            "{mode:?}: {open} channels, {slots} NI slots, {soft} soft"
        ),
        _ => assert_eq!(soft, 0, "{mode:?}"),
    }
    eprintln!("{mode:?}: {open} channels open at once, {soft} of them soft");
    let served = server.served.load(Ordering::Relaxed);

    let requests = if wrk {
        // More wrk connections than the NIC has slots, so that connections beyond them
        // open soft channels (and closed ones free their slots) all through the run
        // whatever the build's speed: a connection refused for want of a slot shows up
        // as wrk read/write errors (RSTs), as it did at release speed with 16.
        let connections = format!("-c{}", slots as usize + 16);
        let url = format!("http://{ip}/obj/1024");
        let out = exec(
            net.peer().ns(),
            "wrk",
            &[
                "-t2",
                &connections,
                "-d5s",
                "--timeout",
                "5s",
                "-H",
                "Connection: close",
                &url,
            ],
        );
        eprintln!("{mode:?}: wrk:\n{out}");
        let (requests, errors) = parse_wrk(&out);
        assert!(
            errors.is_empty(),
            "{mode:?}: wrk reported errors: {errors:?}"
        );
        assert!(requests > 0, "{mode:?}: wrk completed no request");
        requests
    } else {
        0
    };
    let listener = server.stop();
    let stats = listener.stats();
    eprintln!(
        "{mode:?}: served {served} before wrk; listener accepted {}, backlog-full {}, \
         handshake CPU {:.1} ms; NIC channels open at the end: {}",
        listener.accepted(),
        stats.backlog_full,
        stats.cpu_ns as f64 / 1e6,
        stack.nic().stats().channels
    );
    assert!(
        served >= SEQUENTIAL + concurrent,
        "{mode:?}: served {served}"
    );
    assert!(listener.accepted() >= (SEQUENTIAL + concurrent) as u64 + requests);
    assert_eq!(stats.backlog_full, 0, "{mode:?}: no SYN was refused");
}

#[test]
fn backlog_of_sequential_and_concurrent_linux_clients_then_wrk_without_errors() {
    if !testnet::require("backlog_of_sequential_and_concurrent_linux_clients_then_wrk") {
        return;
    }
    let _serial = serial();
    backlog_run(NicConfig::default().mode(Mode::SoftLrp), 64, false);
    // NI-LRP with 32 slots (XSKMAP entries), two of which the host channel and the
    // listener hold: of the 64 connections open at once at least 34 are soft channels,
    // fed from the listener's ring, and every one is accepted and served.
    backlog_run(
        NicConfig::default().mode(Mode::NiLrp).ni_slots(32),
        64,
        true,
    );
}

#[test]
fn http_get_fetches_a_file_from_nginx_in_every_mode() {
    if !testnet::require("http_get_fetches_a_file_from_nginx_in_every_mode") {
        return;
    }
    let _serial = serial();
    const SIZE: usize = 1 << 20;
    for mode in ["ni", "soft", "eager"] {
        let net = network();
        let peer_ip: Ipv4Addr = net.peer().ipv4();
        let dir = TempDir::new("nginx");
        let www = dir.path().join("www");
        std::fs::create_dir_all(&www).unwrap();
        let mut body = vec![0u8; SIZE];
        object::fill(0, &mut body);
        std::fs::write(www.join("big.bin"), &body).unwrap();
        std::fs::write(www.join("small.txt"), &body[..1000]).unwrap();
        let d = dir.path().display();
        // One process, no user switch: nginx runs as the test's user in the peer namespace.
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log;\nevents {{ worker_connections 64; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  \
             proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  \
             uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
             server {{ listen {peer_ip}:8080; root {d}/www; }}\n}}\n"
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let conf_path = conf_path.display().to_string();
        let prefix = format!("{d}/");
        let error_log = format!("{d}/error.log");
        let _nginx = Background::start(
            net.peer().ns(),
            "nginx",
            &["-p", &prefix, "-e", &error_log, "-c", &conf_path],
            None,
        );
        let server = SocketAddr::from((peer_ip, 8080));
        wait_for_tcp(net.peer().ns(), server);
        let server = server.to_string();
        let get = |path: &str, size: usize, extra: &[&str]| {
            let size = size.to_string();
            let cidr = cidr(&net);
            let mut args = vec![
                "--iface",
                net.local().ifname(),
                "--ip",
                &cidr,
                "--mode",
                mode,
                "--server",
                &server,
                "--path",
                path,
                "--expect-size",
                &size,
                "--verify-object",
                "--timeout-ms",
                "10000",
            ];
            args.extend_from_slice(extra);
            let out = exec(net.local().ns(), env!("CARGO_BIN_EXE_http-get"), &args);
            eprintln!("{mode}: {}", out.trim());
            assert!(out.contains("all 200, bodies verified"), "{mode}: {out}");
        };
        get("/big.bin", SIZE, &[]);
        get("/small.txt", 1000, &["--count", "5", "--keep-alive"]);
        get("/small.txt", 1000, &["--count", "5"]);
    }
}

#[test]
fn wrk_output_is_parsed() {
    let clean = "Running 5s test @ http://10.77.0.1/obj/1024\n  2 threads and 16 connections\n  \
                 Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency     1.20ms  \
                 300.00us   9.00ms   90.00%\n  12345 requests in 5.00s, 14.00MB read\n\
                 Requests/sec:   2469.00\nTransfer/sec:      2.80MB\n";
    assert_eq!(parse_wrk(clean), (12345, vec![]));
    let bad = format!(
        "{clean}  Socket errors: connect 0, read 3, write 0, timeout 0\n  Non-2xx or 3xx \
         responses: 5\n"
    );
    let (n, errors) = parse_wrk(&bad);
    assert_eq!(n, 12345);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(parse_wrk("unable to connect").0, 0);
}

/// A teaching example (`examples/NAME.rs`), as `cargo test` builds it beside this test.
fn example(name: &str) -> String {
    let exe = std::env::current_exe().expect("test executable");
    // target/<profile>/deps/veth_http-HASH -> target/<profile>/examples/NAME
    let path = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("examples").join(name))
        .expect("target directory");
    assert!(
        path.exists(),
        "{} is missing: `cargo test --workspace` builds the examples (or run \
         `cargo build -p lrp-examples --examples` first)",
        path.display()
    );
    path.display().to_string()
}

#[test]
fn teaching_examples_serve_linux_peers() {
    if !testnet::require("teaching_examples_serve_linux_peers") {
        return;
    }
    let _serial = serial();
    let net = network();
    let ip = net.local().ipv4();
    let ip_arg = ip.to_string();
    // udp_echo: a Linux UDP client gets its datagrams back (retried while the example
    // starts; bounded).
    {
        let _echo = Background::start(
            net.local().ns(),
            &example("udp_echo"),
            &[
                "--iface",
                net.local().ifname(),
                "--addr",
                &ip_arg,
                "--port",
                "7",
            ],
            None,
        );
        let to = SocketAddr::from((ip, 7));
        let peer_ip = net.peer().ipv4();
        let echoed = net
            .peer()
            .ns()
            .run(move || -> std::io::Result<usize> {
                let s = std::net::UdpSocket::bind((peer_ip, 0))?;
                s.set_read_timeout(Some(Duration::from_millis(200)))?;
                let mut buf = [0u8; 64];
                let mut echoed = 0;
                let end = Instant::now() + Duration::from_secs(15);
                let mut i = 0u32;
                // Datagrams sent before the example was up may wait in the kernel's ARP
                // queue and be answered late: count every echo of any datagram sent.
                while echoed < 5 && Instant::now() < end {
                    s.send_to(format!("datagram {i}").as_bytes(), to)?;
                    i += 1;
                    while let Ok((n, from)) = s.recv_from(&mut buf) {
                        let sent = std::str::from_utf8(&buf[..n])
                            .ok()
                            .and_then(|m| m.strip_prefix("datagram "))
                            .and_then(|k| k.parse::<u32>().ok())
                            .is_some_and(|k| k < i);
                        if from == to && sent {
                            echoed += 1;
                        }
                    }
                }
                Ok(echoed)
            })
            .expect("a thread in the peer namespace")
            .expect("peer UDP socket");
        // The inner loop drains every echo that is there, so it may count past 5.
        assert!(echoed >= 5, "udp_echo example echoed {echoed} datagrams");
    }
    // tcp_hello: curl gets its greeting.
    {
        let _hello = Background::start(
            net.local().ns(),
            &example("tcp_hello"),
            &[
                "--iface",
                net.local().ifname(),
                "--addr",
                &ip_arg,
                "--port",
                "8080",
            ],
            None,
        );
        wait_for_tcp(net.peer().ns(), SocketAddr::from((ip, 8080)));
        let url = format!("http://{ip}:8080/");
        let body = exec(
            net.peer().ns(),
            "curl",
            &["-sS", "--fail", "-0", "--max-time", "10", &url],
        );
        assert!(body.starts_with("hello "), "tcp_hello answered {body:?}");
    }
}
