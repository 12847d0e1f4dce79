//! UDP echo server on lrp: every datagram goes back to its sender.
//!
//! With `--sim`, the example also plays the client on the simulated wire: it sends
//! `--count` datagrams, checks every echo, and prints the socket's statistics.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lrp_examples::cli::{or_exit, Args};
use lrp_examples::net::{NetOpts, NET_HELP};
use lrp_net::sim::{build, SimPeer};

const USAGE: &str = "\
udp-echo: UDP echo server on lrp

Usage: udp-echo (--iface IF | --sim) [--ip A.B.C.D/LEN] [--port N] [--capacity N] [options]

  --port N       UDP port to serve (default 7)
  --capacity N   the socket's channel capacity in frames (default 1024)
  --count N      with --sim: datagrams the built-in client sends (default 1000)
  --stats-every S  print the socket's statistics every S seconds (default 0: never)
";

fn main() {
    let mut args = Args::from_env(&format!("{USAGE}\n{NET_HELP}"));
    let opts = or_exit(NetOpts::parse(&mut args));
    let port: u16 = or_exit(args.value_or("port", 7));
    let capacity: usize = or_exit(args.value_or("capacity", 1024));
    let count: u32 = or_exit(args.value_or("count", 1000));
    let every: u64 = or_exit(args.value_or("stats-every", 0));
    or_exit(args.finish());

    let (stack, peer, sock, local) = opts.open_udp(port, capacity).unwrap_or_else(|e| fail(&e));
    eprintln!("udp-echo: serving {local} in {:?} mode", stack.mode());

    let server = std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        let mut last = Instant::now();
        loop {
            match sock.recv_from(&mut buf) {
                Ok((n, from)) => {
                    if let Err(e) = sock.send_to(&buf[..n], from) {
                        eprintln!("udp-echo: send to {from}: {e}");
                    }
                }
                Err(e) => fail(&format!("receive: {e}")),
            }
            if every > 0 && last.elapsed() >= Duration::from_secs(every) {
                last = Instant::now();
                eprintln!("udp-echo: {:?}", sock.stats());
            }
        }
    });

    match peer {
        Some(peer) => {
            sim_client(&peer, local, count);
            std::process::exit(0);
        }
        None => {
            let _ = server.join();
        }
    }
}

/// The built-in client on the simulated wire: send, wait for the echo, compare.
fn sim_client(peer: &SimPeer, server: SocketAddr, count: u32) {
    let SocketAddr::V4(server) = server else {
        fail("IPv4 only")
    };
    let client = "10.0.0.1:40000"
        .parse()
        .unwrap_or_else(|_| fail("client address"));
    let start = Instant::now();
    for i in 0..count {
        let payload = format!("echo {i}");
        if !peer.inject(&build::udp_v4(client, server, payload.as_bytes())) {
            fail("the simulated NIC dropped a request");
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut echoed = false;
        while !echoed {
            peer.drain_tx(|f| {
                if f.len() >= build::UDP_V4_HEADER_LEN
                    && f[build::UDP_V4_HEADER_LEN..] == *payload.as_bytes()
                {
                    echoed = true;
                }
            });
            if Instant::now() > deadline {
                fail(&format!("no echo for datagram {i}"));
            }
            if !echoed {
                std::thread::sleep(Duration::from_micros(20));
            }
        }
    }
    let dt = start.elapsed();
    println!(
        "udp-echo --sim: {count} datagrams echoed in {:.3} s ({:.1} us per round trip)",
        dt.as_secs_f64(),
        dt.as_secs_f64() * 1e6 / f64::from(count.max(1))
    );
}

fn fail(msg: &str) -> ! {
    eprintln!("udp-echo: {msg}");
    std::process::exit(1);
}
