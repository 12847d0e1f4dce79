//! Receives a UDP flood and discards it, printing per-second rates: packets and bits
//! received, early discards (before any protocol work), late drops (after it, eager
//! mode), and the CPU time charged to the socket.
//!
//! With `--sim`, a generator thread floods the simulated wire at `--rate` frames per
//! second (0: as fast as it can), so the modes can be compared without root.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lrp_examples::cli::{or_exit, Args};
use lrp_examples::net::{NetOpts, NET_HELP};
use lrp_examples::report::rate_line;
use lrp_net::sim::build;

const USAGE: &str = "\
blast-sink: receive and discard a UDP flood, print per-second statistics

Usage: blast-sink (--iface IF | --sim) [--port N] [--capacity N] [--seconds S] [options]

  --port N       UDP port (default 9000)
  --capacity N   the socket's channel capacity in frames (default 1024)
  --seconds S    stop after S seconds (default 0: run until killed)
  --rate R       with --sim: frames per second the built-in generator offers (default 0: flat out)
  --size B       with --sim: UDP payload bytes per frame (default 64)
";

fn main() {
    let mut args = Args::from_env(&format!("{USAGE}\n{NET_HELP}"));
    let opts = or_exit(NetOpts::parse(&mut args));
    let port: u16 = or_exit(args.value_or("port", 9000));
    let capacity: usize = or_exit(args.value_or("capacity", 1024));
    let seconds: u64 = or_exit(args.value_or("seconds", 0));
    let rate: u64 = or_exit(args.value_or("rate", 0));
    let size: usize = or_exit(args.value_or("size", 64));
    or_exit(args.finish());

    let (stack, peer, sock, local) = opts.open_udp(port, capacity).unwrap_or_else(|e| fail(&e));
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap_or_else(|e| fail(&e.to_string()));
    eprintln!(
        "blast-sink: {local}, {:?} mode, channel of {capacity} frames",
        stack.mode()
    );

    let end = (seconds > 0).then(|| Instant::now() + Duration::from_secs(seconds));
    if let Some(peer) = peer {
        let SocketAddr::V4(dst) = local else {
            fail("IPv4 only")
        };
        let frame = build::udp_v4(
            "10.0.0.1:5000".parse().unwrap_or_else(|_| fail("addr")),
            dst,
            &vec![0u8; size],
        );
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut sent: u64 = 0;
            loop {
                if end.is_some_and(|e| Instant::now() >= e) {
                    return;
                }
                if rate > 0 {
                    let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
                    if sent >= due {
                        std::thread::sleep(Duration::from_micros(100));
                        continue;
                    }
                }
                peer.inject(&frame);
                sent += 1;
                // The TX ring fills with nothing; keep the wire's far end drained.
                if sent.is_multiple_of(1024) {
                    peer.drain_tx(|_| {});
                }
            }
        });
    }

    let mut buf = vec![0u8; 65536];
    let mut prev = sock.stats();
    let mut tick = Instant::now();
    loop {
        let _ = sock.recv_from(&mut buf); // discard; a timeout just ends the wait
        if tick.elapsed() >= Duration::from_secs(1) {
            let cur = sock.stats();
            println!("{}", rate_line(&prev, &cur, tick.elapsed()));
            if stack.mode() == lrp_net::Mode::Eager {
                println!(
                    "  eager poll step: cpu {} ms total",
                    stack.eager_stats().cpu_ns / 1_000_000
                );
            }
            prev = cur;
            tick = Instant::now();
        }
        if end.is_some_and(|e| Instant::now() >= e) {
            let s = sock.stats();
            println!(
                "total: {} packets, {} early discards, {} late drops, {} bad, cpu {} ms",
                s.packets,
                s.early_discards,
                s.late_drops,
                s.bad_checksum + s.malformed,
                s.cpu_ns / 1_000_000
            );
            return;
        }
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("blast-sink: {msg}");
    std::process::exit(1);
}
