//! A small HTTP/1.0 and 1.1 server on lrp TCP, serving generated objects:
//! `GET /obj/<size>` (bytes, or with a `k`/`m` suffix) returns `size` bytes of a
//! deterministic pattern (see `lrp_examples::object`), so clients can verify bodies byte
//! for byte. Keep-alive and `Connection: close` follow the protocol; anything else gets
//! a precise error status.
//!
//! One thread accepts (the listener's handshake processing runs there, charged to the
//! listener), and each connection is served on a thread of its own (its processing
//! charged to its own channel).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use lrp_examples::http::{serve_connection, ServerConfig};
use lrp_examples::net::NetOpts;
use lrp_examples::object::{self, ObjectSource};

/// HTTP/1.0 and 1.1 on lrp TCP, serving `GET /obj/<size>[k|m]`.
///
/// Needs --iface (an HTTP client needs a TCP peer; use a veth pair).
#[derive(Debug, Parser)]
#[command(name = "http-server", version)]
struct Cli {
    /// TCP port
    #[arg(long, value_name = "N", default_value_t = 80)]
    port: u16,
    /// Accept backlog
    #[arg(long, value_name = "N", default_value_t = 128)]
    backlog: usize,
    /// Connections served at once; more wait in the backlog
    #[arg(long, value_name = "N", default_value_t = 256)]
    max_conns: usize,
    /// Largest object served (bytes, or with a k/m suffix)
    #[arg(long, value_name = "B", default_value = "64m", value_parser = parse_object_size)]
    max_object: usize,
    /// Close a connection idle for S seconds
    #[arg(long = "idle-secs", value_name = "S", default_value_t = 30)]
    idle: u64,
    /// Print listener statistics every S seconds (0: never)
    #[arg(long = "stats-every", value_name = "S", default_value_t = 0)]
    every: u64,
    #[command(flatten)]
    net: NetOpts,
}

fn parse_object_size(s: &str) -> Result<usize, object::SizeError> {
    object::parse_size(s, usize::MAX)
}

impl Cli {
    /// What clap cannot say declaratively: `--sim` has no TCP peer to serve.
    fn check(&self) -> Result<(), clap::Error> {
        if self.net.sim {
            return Err(Cli::command().error(
                ErrorKind::ArgumentConflict,
                "--sim is not supported: an HTTP client needs a TCP peer; use --iface with a veth pair",
            ));
        }
        Ok(())
    }
}

fn main() {
    let cli = Cli::parse();
    cli.check().unwrap_or_else(|e| e.exit());
    let Cli {
        port,
        backlog,
        max_conns,
        max_object,
        idle,
        every,
        net: opts,
    } = cli;

    let (stack, _) = opts.open().unwrap_or_else(|e| fail(&e));
    let local = SocketAddr::new(stack.ip().into(), port);
    let listener = stack
        .tcp_listen(local, backlog)
        .unwrap_or_else(|e| fail(&e.to_string()));
    eprintln!(
        "http-server: listening on {local} ({:?} mode, backlog {backlog})",
        stack.mode()
    );

    let cfg = Arc::new(ServerConfig { max_object });
    let src = Arc::new(ObjectSource::new(16 * 1024));
    let active = Arc::new(AtomicUsize::new(0));
    let mut last = std::time::Instant::now();
    loop {
        // Bound concurrency: while at the limit, leave connections in the backlog.
        while active.load(Ordering::Acquire) >= max_conns {
            std::thread::sleep(Duration::from_millis(1));
        }
        let (stream, peer) = match listener.accept_timeout(Duration::from_secs(1)) {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
            Err(e) => fail(&format!("accept: {e}")),
        };
        if every > 0 && last.elapsed() >= Duration::from_secs(every) {
            last = std::time::Instant::now();
            let s = listener.stats();
            eprintln!(
                "http-server: accepted {} | syn backlog-full {} | syn evictions {} | handshake cpu {} ms | active {}",
                listener.accepted(),
                s.backlog_full,
                s.syn_evictions,
                s.cpu_ns / 1_000_000,
                active.load(Ordering::Relaxed)
            );
        }
        active.fetch_add(1, Ordering::AcqRel);
        let (cfg, src, active) = (Arc::clone(&cfg), Arc::clone(&src), Arc::clone(&active));
        let spawned = std::thread::Builder::new()
            .name("http-conn".into())
            .spawn(move || {
                let mut stream = stream;
                let _ = stream.set_nodelay(true);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(idle.max(1))));
                if let Err(e) = serve_connection(&mut stream, &cfg, &src) {
                    if !matches!(
                        e.kind(),
                        std::io::ErrorKind::TimedOut | std::io::ErrorKind::ConnectionReset
                    ) {
                        eprintln!("http-server: {peer}: {e}");
                    }
                }
                active.fetch_sub(1, Ordering::AcqRel);
            });
        if let Err(e) = spawned {
            eprintln!("http-server: cannot spawn a thread for {peer}: {e}");
        }
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("http-server: {msg}");
    std::process::exit(1);
}

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;

    use super::*;
    use lrp_examples::net::check_command_line;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("http-server").chain(args.iter().copied()))
    }

    #[test]
    fn command_line_is_clap_with_help_and_status_2() {
        check_command_line::<Cli>(
            &[
                "--port",
                "--backlog",
                "--max-conns",
                "--max-object",
                "--idle-secs",
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
                (
                    &["--iface", "veth0", "--max-object", "huge"],
                    ErrorKind::ValueValidation,
                ),
                (
                    &["--iface", "veth0", "--backlog", "lots"],
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
        let c = parse(&["--iface", "veth0"]).unwrap();
        assert_eq!((c.port, c.backlog, c.max_conns), (80, 128, 256));
        assert_eq!((c.max_object, c.idle, c.every), (64 << 20, 30, 0));
        assert!(c.check().is_ok());
        // The command line of lrp-examples/tests/veth_http.rs and demo/http-demo.sh.
        let c = parse(&[
            "--iface",
            "veth0",
            "--ip",
            "10.99.0.2/24",
            "--mode",
            "ni",
            "--port",
            "80",
            "--stats-every",
            "1",
            "--max-object",
            "2k",
        ])
        .unwrap();
        assert_eq!((c.port, c.every, c.max_object), (80, 1, 2048));
        assert_eq!(c.net.mode, lrp_examples::net::ModeArg::Ni);
    }

    #[test]
    fn sim_is_refused_by_clap() {
        let e = parse(&["--sim"]).unwrap().check().unwrap_err();
        assert_eq!((e.kind(), e.exit_code()), (ErrorKind::ArgumentConflict, 2));
    }
}
