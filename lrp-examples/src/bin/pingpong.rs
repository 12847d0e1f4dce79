//! UDP round-trip latency on lrp.
//!
//! `--role server` echoes datagrams (like `udp-echo`); `--role client` sends `--count`
//! numbered datagrams to `--server`, one at a time, and prints round-trip percentiles.
//! The client works against any UDP echo server (lrp's or a Linux one). With `--sim`,
//! the server runs on lrp and a built-in client plays the far end of the simulated wire.

use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use lrp_examples::cli::{or_exit, Args};
use lrp_examples::net::{NetOpts, NET_HELP};
use lrp_examples::report::percentiles;
use lrp_net::sim::{build, SimPeer};
use lrp_net::stack::UdpSocket;

const USAGE: &str = "\
pingpong: UDP round-trip latency on lrp

Usage: pingpong (--iface IF | --sim) --role server|client [options]

  --role R       server (echo) or client (measure); --sim implies server
  --port N       server: UDP port (default 7000)
  --server A:P   client: the echo server's address
  --count N      client: round trips (default 1000)
  --size B       client: payload bytes (default 32, at least 8)
  --timeout-ms T client: give up on one round trip after T ms (default 1000)
";

fn main() {
    let mut args = Args::from_env(&format!("{USAGE}\n{NET_HELP}"));
    let opts = or_exit(NetOpts::parse(&mut args));
    let role: String = or_exit(args.value_or("role", String::from("server")));
    let port: u16 = or_exit(args.value_or("port", 7000));
    let server: Option<SocketAddr> = or_exit(args.value("server"));
    let count: u32 = or_exit(args.value_or("count", 1000));
    let size: usize = or_exit(args.value_or("size", 32));
    let timeout: u64 = or_exit(args.value_or("timeout-ms", 1000));
    or_exit(args.finish());
    if size < 8 {
        fail("--size must be at least 8 (the sequence number)");
    }

    let (stack, peer) = opts.open().unwrap_or_else(|e| fail(&e));
    match (role.as_str(), peer) {
        (_, Some(peer)) => {
            let local = SocketAddr::new(stack.ip().into(), port);
            let sock = stack
                .udp_bind(local, 1024)
                .unwrap_or_else(|e| fail(&e.to_string()));
            std::thread::spawn(move || serve(&sock));
            let SocketAddr::V4(local) = local else {
                fail("IPv4 only")
            };
            sim_client(&peer, local, count, size);
        }
        ("server", None) => {
            let local = SocketAddr::new(stack.ip().into(), port);
            let sock = stack
                .udp_bind(local, 1024)
                .unwrap_or_else(|e| fail(&e.to_string()));
            eprintln!("pingpong: echoing on {local} ({:?} mode)", stack.mode());
            serve(&sock);
        }
        ("client", None) => {
            let server = server.unwrap_or_else(|| fail("--server is required for the client"));
            let sock = stack
                .udp_bind(SocketAddr::new(stack.ip().into(), 0), 1024)
                .unwrap_or_else(|e| fail(&e.to_string()));
            client(
                &sock,
                server,
                count,
                size,
                Duration::from_millis(timeout.max(1)),
            );
        }
        (other, None) => fail(&format!(
            "unknown role {other:?}: expected server or client"
        )),
    }
}

fn serve(sock: &UdpSocket) {
    let mut buf = vec![0u8; 65536];
    loop {
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                let _ = sock.send_to(&buf[..n], from);
            }
            Err(e) => fail(&format!("receive: {e}")),
        }
    }
}

fn report(mut rtts: Vec<Duration>, lost: u32) {
    let sent = rtts.len() as u32 + lost;
    match percentiles(&mut rtts) {
        Some((p50, p99, p999, max)) => println!(
            "{sent} sent, {lost} lost; rtt p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us, max {:.1} us",
            p50.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6,
            p999.as_secs_f64() * 1e6,
            max.as_secs_f64() * 1e6
        ),
        None => println!("{sent} sent, all lost"),
    }
}

fn client(sock: &UdpSocket, server: SocketAddr, count: u32, size: usize, timeout: Duration) {
    sock.set_read_timeout(Some(timeout))
        .unwrap_or_else(|e| fail(&e.to_string()));
    let mut msg = vec![0u8; size];
    let mut buf = vec![0u8; 65536];
    let mut rtts = Vec::with_capacity(count as usize);
    let mut lost = 0;
    for seq in 0..u64::from(count) {
        msg[..8].copy_from_slice(&seq.to_be_bytes());
        let t0 = Instant::now();
        sock.send_to(&msg, server)
            .unwrap_or_else(|e| fail(&format!("send: {e}")));
        loop {
            match sock.recv_from(&mut buf) {
                Ok((n, from)) if from == server && n >= 8 && buf[..8] == seq.to_be_bytes() => {
                    rtts.push(t0.elapsed());
                    break;
                }
                Ok(_) => continue, // a late echo of an earlier probe
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    lost += 1;
                    break;
                }
                Err(e) => fail(&format!("receive: {e}")),
            }
        }
    }
    report(rtts, lost);
}

fn sim_client(peer: &SimPeer, server: SocketAddrV4, count: u32, size: usize) {
    let client: SocketAddrV4 = "10.0.0.1:40000".parse().unwrap_or_else(|_| fail("addr"));
    let mut payload = vec![0u8; size];
    let mut rtts = Vec::with_capacity(count as usize);
    let mut lost = 0;
    for seq in 0..u64::from(count) {
        payload[..8].copy_from_slice(&seq.to_be_bytes());
        let t0 = Instant::now();
        peer.inject(&build::udp_v4(client, server, &payload));
        let deadline = t0 + Duration::from_secs(1);
        let mut done = false;
        while !done && Instant::now() < deadline {
            peer.drain_tx(|f| {
                if f.len() >= build::UDP_V4_HEADER_LEN + 8
                    && f[build::UDP_V4_HEADER_LEN..build::UDP_V4_HEADER_LEN + 8]
                        == seq.to_be_bytes()
                {
                    done = true;
                }
            });
            if !done {
                std::hint::spin_loop();
            }
        }
        if done {
            rtts.push(t0.elapsed());
        } else {
            lost += 1;
        }
    }
    report(rtts, lost);
}

fn fail(msg: &str) -> ! {
    eprintln!("pingpong: {msg}");
    std::process::exit(1);
}
