//! End to end on the simulated wire: the HTTP server logic on lrp TCP, fetched by the
//! HTTP client on a second lrp stack. Two simulated NICs joined by a bridge thread that
//! carries each one's transmitted frames to the other.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lrp_net::sim::{SimConfig, SimPeer, PEER_MAC};
use lrp_net::stack::{Stack, StackConfig};
use lrp_net::{Mode, Nic, NicConfig};

use crate::http::{fetch, serve_connection, ServerConfig};
use crate::object::{self, ObjectSource};

/// A running bridge between two simulated NICs; stops (bounded join) on drop.
pub(crate) struct Wire {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Wire {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Carry each simulated NIC's transmitted frames to the other, on a thread.
pub(crate) fn bridge(a: SimPeer, b: SimPeer) -> Wire {
    let stop = Arc::new(AtomicBool::new(false));
    let s = Arc::clone(&stop);
    let thread = std::thread::spawn(move || {
        while !s.load(Ordering::Relaxed) {
            let n = a.drain_tx(|f| {
                b.inject(f);
            }) + b.drain_tx(|f| {
                a.inject(f);
            });
            if n == 0 {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    });
    Wire {
        stop,
        thread: Some(thread),
    }
}

/// Two stacks joined by a bridge: a server at 10.0.0.2 and a client at 10.0.0.1.
pub(crate) fn pair(mode: Mode) -> (Stack, Stack, Wire) {
    let nic = || {
        Nic::sim(SimConfig::new(
            NicConfig::default().frame_count(4096).mode(mode),
        ))
        .unwrap()
    };
    let (na, pa) = nic();
    let (nb, pb) = nic();
    let server = Stack::new(na, StackConfig::new("10.0.0.2".parse().unwrap(), 24)).unwrap();
    let client = Stack::new(
        nb,
        StackConfig::new("10.0.0.1".parse().unwrap(), 24).mac(PEER_MAC),
    )
    .unwrap();
    (server, client, bridge(pa, pb))
}

#[test]
fn objects_of_every_bench_size_and_one_mib_survive_lrp_tcp_in_every_mode() {
    for mode in [Mode::NiLrp, Mode::SoftLrp, Mode::Eager] {
        let (server, client, _wire) = pair(mode);
        let listener = server
            .tcp_listen("10.0.0.2:80".parse().unwrap(), 16)
            .unwrap();
        let srv = std::thread::spawn(move || {
            let cfg = ServerConfig::default();
            let src = ObjectSource::new(16 * 1024);
            let mut served = 0;
            // One keep-alive connection, then one connection per request.
            while served < 1 + object::BENCH_SIZES.len() + 1 {
                let (mut s, _) = listener.accept_timeout(Duration::from_secs(20)).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                serve_connection(&mut s, &cfg, &src).unwrap();
                served += 1;
            }
        });
        let to: SocketAddr = "10.0.0.2:80".parse().unwrap();
        let limit = Duration::from_secs(20);
        // Keep-alive: every size on one connection.
        let mut s = client.tcp_connect_timeout(to, limit).unwrap();
        s.set_read_timeout(Some(limit)).unwrap();
        for &size in object::BENCH_SIZES.iter().chain(&[1 << 20]) {
            let r = fetch(&mut s, "10.0.0.2", &format!("/obj/{size}"), true, 2 << 20).unwrap();
            assert_eq!(r.head.status, 200, "{mode:?}");
            assert_eq!(r.body.len(), size, "{mode:?}");
            assert_eq!(object::verify(0, &r.body), None, "{mode:?}: size {size}");
        }
        s.close(limit).unwrap();
        // Connection: close, one connection per object (HTTP/1.0 style, like the bench).
        for &size in object::BENCH_SIZES.iter().chain(&[1 << 20]) {
            let mut s = client.tcp_connect_timeout(to, limit).unwrap();
            s.set_read_timeout(Some(limit)).unwrap();
            let r = fetch(&mut s, "10.0.0.2", &format!("/obj/{size}"), false, 2 << 20).unwrap();
            assert_eq!(r.head.status, 200);
            assert!(!r.head.keep_alive);
            assert_eq!(object::verify(0, &r.body), None, "{mode:?}: size {size}");
            assert_eq!(r.body.len(), size);
        }
        srv.join().unwrap();
    }
}
