//! Receives a UDP flood and discards it, printing per-second rates: packets and bits
//! received, early discards (before any protocol work), late drops (after it, eager
//! mode), and the CPU time charged to the socket.
//!
//! With `--sim`, a generator thread floods the simulated wire at `--rate` frames per
//! second (0: as fast as it can), so the modes can be compared without root.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::Parser;
use lrp_examples::net::NetOpts;
use lrp_examples::report::rate_line;

/// Receive and discard a UDP flood, print per-second statistics.
///
/// Prints packets and bits received, early discards (before any protocol work), late
/// drops (after it, eager mode) and the CPU time charged to the socket. With --sim, a
/// generator thread floods the simulated wire at --rate frames per second.
#[derive(Debug, Parser)]
#[command(name = "blast-sink", version)]
struct Cli {
    /// UDP port
    #[arg(long, value_name = "N", default_value_t = 9000)]
    port: u16,
    /// The socket's channel capacity in frames
    #[arg(long, value_name = "N", default_value_t = 1024)]
    capacity: usize,
    /// Stop after S seconds (0: run until killed)
    #[arg(long, value_name = "S", default_value_t = 0)]
    seconds: u64,
    /// With --sim: frames per second the built-in generator offers (0: flat out)
    #[arg(long, value_name = "R", default_value_t = 0)]
    rate: u64,
    /// With --sim: UDP payload bytes per frame
    #[arg(long, value_name = "B", default_value_t = 64)]
    size: usize,
    #[command(flatten)]
    net: NetOpts,
}

fn main() {
    let Cli {
        port,
        capacity,
        seconds,
        rate,
        size,
        net: opts,
    } = Cli::parse();

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
        let frame = peer.udp_frame(
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
                s.rx_packets,
                s.early_discards,
                s.endpoint_full_drops,
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

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;

    use super::*;
    use lrp_examples::net::check_command_line;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("blast-sink").chain(args.iter().copied()))
    }

    #[test]
    fn command_line_is_clap_with_help_and_status_2() {
        check_command_line::<Cli>(
            &[
                "--port",
                "--capacity",
                "--seconds",
                "--rate",
                "--size",
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
                (&["--sim", "--rate", "fast"], ErrorKind::ValueValidation),
                (&["--sim", "--size", "big"], ErrorKind::ValueValidation),
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
            (c.port, c.capacity, c.seconds, c.rate, c.size),
            (9000, 1024, 0, 0, 64)
        );
        let c = parse(&[
            "--sim",
            "--rate",
            "1000",
            "--size",
            "1400",
            "--seconds",
            "3",
        ])
        .unwrap();
        assert_eq!((c.rate, c.size, c.seconds), (1000, 1400, 3));
    }
}
