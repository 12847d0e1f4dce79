//! Director health checks on a real veth pair with AF_XDP: the [`Checker`] on an lrp
//! stack in the local namespace, real servers as Linux TCP listeners in the peer
//! namespace (a tiny HTTP responder for the `http` check).
//!
//! The acceptance of the director's health checks: a real server is stopped, the checks
//! take it out within 3 s (with `interval = 1`, `fall = 2`, as a configuration can say
//! it), the other server stays up, and the stopped one comes back after a restart. Every
//! wait is bounded; `testnet::require` makes a missing capability a loud skip.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener as LinuxTcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lrp_examples::director::config::{HealthCheck, HealthConfig};
use lrp_examples::director::health::{
    Checker, CheckerOptions, HealthEvent, ServerId, StartAs, Target, Transition,
};
use lrp_net::stack::{Stack, StackConfig};
use lrp_net::testnet::{self, NetNs, TestNet, TestNetConfig};
use lrp_net::{Nic, NicConfig};

/// The longest any awaited event may take.
const LIMIT: Duration = Duration::from_secs(10);

/// A Linux TCP server in a namespace: accepts, and answers `HTTP/1.0 200` to whatever
/// it is sent. Dropping it closes the listening socket (new SYNs get a RST).
struct LinuxServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl LinuxServer {
    fn start(ns: &NetNs, addr: SocketAddr) -> LinuxServer {
        let listener = ns
            .run(move || LinuxTcpListener::bind(addr))
            .expect("a thread in the peer namespace")
            .unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let Ok((mut c, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let _ = c.set_nonblocking(false);
                let _ = c.set_read_timeout(Some(Duration::from_millis(200)));
                let mut buf = [0u8; 512];
                if matches!(c.read(&mut buf), Ok(n) if n > 0) {
                    let _ = c.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
                }
            }
        });
        LinuxServer {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for LinuxServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Wait (at most [`LIMIT`]) for `(server, transition)`; any transition of a server in
/// `steady` fails the test.
fn wait_for(
    events: &Receiver<HealthEvent>,
    server: ServerId,
    transition: Transition,
    steady: &[ServerId],
) -> HealthEvent {
    let deadline = Instant::now() + LIMIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let e = events
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no {transition:?} of server {server} in {LIMIT:?}"));
        assert!(!steady.contains(&e.server), "unexpected event {e:?}");
        if e.server == server && e.transition == transition {
            return e;
        }
    }
}

#[test]
fn a_stopped_real_server_is_out_within_3_s_and_back_after_restart() {
    if !testnet::require("a_stopped_real_server_is_out_within_3_s_and_back_after_restart") {
        return;
    }
    let net = TestNet::new(&TestNetConfig::default()).expect("test network");
    let local = net.local();
    // The lrp stack owns the local address, not the local kernel.
    local
        .ns()
        .exec("ip", &["addr", "flush", "dev", local.ifname()])
        .expect("flush the local kernel's address");
    let (ifname, ip) = (local.ifname().to_owned(), local.ipv4());
    let stack = local
        .ns()
        .run(move || -> Result<Stack, String> {
            let nic = Nic::open(&ifname, NicConfig::default())
                .map_err(|e| format!("Nic::open({ifname}): {e}"))?;
            Stack::new(nic, StackConfig::new(ip, 24)).map_err(|e| e.to_string())
        })
        .expect("a thread in the local namespace")
        .unwrap_or_else(|e| panic!("{e}"));

    let peer = net.peer();
    let (a, b) = (
        SocketAddr::from((peer.ipv4(), 8080)),
        SocketAddr::from((peer.ipv4(), 8081)),
    );
    let server_a = LinuxServer::start(peer.ns(), a);
    let _server_b = LinuxServer::start(peer.ns(), b);
    // What `interval = 1`, `timeout = 1`, `rise = 2`, `fall = 2` configure.
    let health = |check| HealthConfig {
        check,
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(1),
        rise: 2,
        fall: 2,
    };
    let http = HealthCheck::Http {
        path: "/health".into(),
        status: 200,
    };
    let targets = vec![
        Target {
            addr: a,
            health: health(HealthCheck::Tcp),
        },
        Target {
            addr: b,
            health: health(HealthCheck::Tcp),
        },
        Target {
            addr: a,
            health: health(http.clone()),
        },
        Target {
            addr: b,
            health: health(http),
        },
    ];
    let (tx, events) = mpsc::channel();
    let checker = Checker::new(
        stack,
        targets,
        CheckerOptions {
            workers: 2,
            start: StartAs::Down,
            events: Some(tx),
        },
    )
    .unwrap();
    let view = checker.view();
    for server in 0..4 {
        wait_for(&events, server, Transition::Up, &[]);
    }

    let stopped = Instant::now();
    drop(server_a);
    let mut took = Vec::new();
    for server in [0, 2] {
        let e = wait_for(&events, server, Transition::Down, &[1, 3]);
        took.push(e.at.duration_since(stopped));
    }
    eprintln!("stopped server down after {took:?} (tcp, http)");
    assert!(
        took.iter().all(|&t| t <= Duration::from_secs(3)),
        "{took:?}"
    );
    assert!(!view.is_up(0) && !view.is_up(2) && view.is_up(1) && view.is_up(3));

    let restarted = Instant::now();
    let _server_a = LinuxServer::start(peer.ns(), a);
    for server in [0, 2] {
        let e = wait_for(&events, server, Transition::Up, &[1, 3]);
        eprintln!(
            "server {server} up again after {:?}",
            e.at.duration_since(restarted)
        );
    }
    assert!((0..4).all(|s| view.is_up(s)));
    drop(checker);
}
