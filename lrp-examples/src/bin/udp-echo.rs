//! UDP echo server on lrp: every datagram goes back to its sender.
//!
//! With `--sim`, the example also plays the client on the simulated wire: it sends
//! `--count` datagrams, checks every echo, and prints the socket's statistics.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::Parser;
use lrp_examples::net::NetOpts;
use lrp_net::sim::SimPeer;

/// UDP echo server on lrp: every datagram goes back to its sender.
///
/// With --sim, the example also plays the client on the simulated wire: it sends --count
/// datagrams, checks every echo, and prints the time per round trip.
#[derive(Debug, Parser)]
#[command(name = "udp-echo", version)]
struct Cli {
    /// UDP port to serve
    #[arg(long, value_name = "N", default_value_t = 7)]
    port: u16,
    /// The socket's channel capacity in frames
    #[arg(long, value_name = "N", default_value_t = 1024)]
    capacity: usize,
    /// With --sim: datagrams the built-in client sends
    #[arg(long, value_name = "N", default_value_t = 1000)]
    count: u32,
    /// Print the socket's statistics every S seconds (0: never)
    #[arg(long, value_name = "S", default_value_t = 0)]
    stats_every: u64,
    #[command(flatten)]
    net: NetOpts,
}

fn main() {
    let Cli {
        port,
        capacity,
        count,
        stats_every: every,
        net: opts,
    } = Cli::parse();

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
        if !peer.send_udp(client, server, payload.as_bytes()) {
            fail("the simulated NIC dropped a request");
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut echoed = false;
        while !echoed {
            peer.drain_tx(|f| {
                if f.ends_with(payload.as_bytes()) {
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

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;

    use super::*;
    use lrp_examples::net::check_command_line;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("udp-echo").chain(args.iter().copied()))
    }

    #[test]
    fn command_line_is_clap_with_help_and_status_2() {
        check_command_line::<Cli>(
            &[
                "--port",
                "--capacity",
                "--count",
                "--stats-every",
                "--iface",
                "--sim",
                "--mode",
            ],
            &[
                (&["--sim", "--mode", "bogus"][..], ErrorKind::InvalidValue),
                (
                    &["--iface", "veth0", "--mode", "bogus"],
                    ErrorKind::InvalidValue,
                ),
                (&["--sim", "--port", "65536"], ErrorKind::ValueValidation),
                (&["--sim", "--count", "many"], ErrorKind::ValueValidation),
                (&[][..], ErrorKind::MissingRequiredArgument),
                (&["--sim", "--iface", "veth0"], ErrorKind::ArgumentConflict),
                (
                    &["--iface", "veth0", "--frobnicate"],
                    ErrorKind::UnknownArgument,
                ),
            ],
        );
    }

    #[test]
    fn options_and_defaults() {
        let c = parse(&["--sim"]).unwrap();
        assert_eq!(
            (c.port, c.capacity, c.count, c.stats_every),
            (7, 1024, 1000, 0)
        );
        assert!(c.net.sim);
        let c = parse(&[
            "--iface",
            "veth0",
            "--port=9",
            "--capacity",
            "64",
            "--stats-every",
            "2",
        ])
        .unwrap();
        assert_eq!((c.port, c.capacity, c.stats_every), (9, 64, 2));
        assert_eq!(c.net.iface.as_deref(), Some("veth0"));
    }
}
