//! UDP round-trip latency on lrp.
//!
//! `--role server` echoes datagrams (like `udp-echo`); `--role client` sends `--count`
//! numbered datagrams to `--server`, one at a time, and prints round-trip percentiles.
//! The client works against any UDP echo server (lrp's or a Linux one). With `--sim`,
//! the server runs on lrp and a built-in client plays the far end of the simulated wire.

use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, ValueEnum};
use lrp_examples::net::NetOpts;
use lrp_examples::report::percentiles;
use lrp_net::sim::SimPeer;
use lrp_net::stack::UdpSocket;

/// What this run of pingpong does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Role {
    /// Echo datagrams
    Server,
    /// Measure round trips against --server
    Client,
}

/// UDP round-trip latency on lrp.
///
/// The client sends --count numbered datagrams to --server, one at a time, and prints
/// round-trip percentiles; it works against any UDP echo server. With --sim, the server
/// runs on lrp and a built-in client plays the far end of the simulated wire.
#[derive(Debug, Parser)]
#[command(name = "pingpong", version)]
struct Cli {
    /// Server (echo) or client (measure); --sim implies server
    #[arg(long, value_enum, default_value_t = Role::Server)]
    role: Role,
    /// Server: UDP port
    #[arg(long, value_name = "N", default_value_t = 7000)]
    port: u16,
    /// Client: the echo server's address
    #[arg(long, value_name = "A.B.C.D:P")]
    server: Option<SocketAddr>,
    /// Client: round trips
    #[arg(long, value_name = "N", default_value_t = 1000)]
    count: u32,
    /// Client: payload bytes (at least 8, the sequence number)
    #[arg(long, value_name = "B", default_value_t = 32, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(8..))]
    size: usize,
    /// Client: give up on one round trip after T ms
    #[arg(long = "timeout-ms", value_name = "T", default_value_t = 1000)]
    timeout: u64,
    #[command(flatten)]
    net: NetOpts,
}

impl Cli {
    /// What clap cannot say declaratively: the client on a real interface needs
    /// `--server` (with `--sim` the role is always server).
    fn check(&self) -> Result<(), clap::Error> {
        if self.role == Role::Client && !self.net.sim && self.server.is_none() {
            return Err(Cli::command().error(
                ErrorKind::MissingRequiredArgument,
                "--server is required with --role client",
            ));
        }
        Ok(())
    }
}

fn main() {
    let cli = Cli::parse();
    cli.check().unwrap_or_else(|e| e.exit());
    let Cli {
        role,
        port,
        server,
        count,
        size,
        timeout,
        net: opts,
    } = cli;

    let (stack, peer) = opts.open().unwrap_or_else(|e| fail(&e));
    match (role, peer) {
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
        (Role::Server, None) => {
            let local = SocketAddr::new(stack.ip().into(), port);
            let sock = stack
                .udp_bind(local, 1024)
                .unwrap_or_else(|e| fail(&e.to_string()));
            eprintln!("pingpong: echoing on {local} ({:?} mode)", stack.mode());
            serve(&sock);
        }
        (Role::Client, None) => {
            // `Cli::check` refused a client without a server.
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
        peer.send_udp(client, server, &payload);
        let deadline = t0 + Duration::from_secs(1);
        let mut done = false;
        while !done && Instant::now() < deadline {
            peer.drain_tx(|f| {
                // The echo carries our payload (its sequence number first) at its end.
                if f.ends_with(&payload) {
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

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;

    use super::*;
    use lrp_examples::net::check_command_line;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("pingpong").chain(args.iter().copied()))
    }

    #[test]
    fn command_line_is_clap_with_help_and_status_2() {
        check_command_line::<Cli>(
            &[
                "--role",
                "--port",
                "--server",
                "--count",
                "--size",
                "--timeout-ms",
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
                (&["--sim", "--role", "referee"], ErrorKind::InvalidValue),
                (&["--sim", "--size", "7"], ErrorKind::ValueValidation),
                (
                    &["--sim", "--server", "10.0.0.1"],
                    ErrorKind::ValueValidation,
                ),
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
        assert_eq!(c.role, Role::Server);
        assert_eq!((c.port, c.count, c.size, c.timeout), (7000, 1000, 32, 1000));
        assert!(c.check().is_ok());
        let c = parse(&[
            "--iface",
            "veth0",
            "--role",
            "client",
            "--server",
            "10.0.0.1:7",
            "--size",
            "8",
        ])
        .unwrap();
        assert_eq!(c.role, Role::Client);
        assert_eq!(c.server, Some("10.0.0.1:7".parse().unwrap()));
        assert!(c.check().is_ok());
    }

    #[test]
    fn a_client_on_an_interface_needs_a_server() {
        let e = parse(&["--iface", "veth0", "--role", "client"])
            .unwrap()
            .check()
            .unwrap_err();
        assert_eq!(
            (e.kind(), e.exit_code()),
            (ErrorKind::MissingRequiredArgument, 2)
        );
        // With --sim the built-in client plays the far end.
        assert!(parse(&["--sim", "--role", "client"])
            .unwrap()
            .check()
            .is_ok());
    }
}
