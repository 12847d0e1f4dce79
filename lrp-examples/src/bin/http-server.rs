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

use lrp_examples::cli::{or_exit, Args};
use lrp_examples::http::{serve_connection, ServerConfig};
use lrp_examples::net::{NetOpts, NET_HELP};
use lrp_examples::object::ObjectSource;

const USAGE: &str = "\
http-server: HTTP/1.0 and 1.1 on lrp TCP, serving GET /obj/<size>[k|m]

Usage: http-server --iface IF [--ip A.B.C.D/LEN] [--port N] [--backlog N] [options]

  --port N          TCP port (default 80)
  --backlog N       accept backlog (default 128)
  --max-conns N     connections served at once; more wait in the backlog (default 256)
  --max-object B    largest object served (default 64m)
  --idle-secs S     close a connection idle for S seconds (default 30)
  --stats-every S   print listener statistics every S seconds (default 0: never)
";

fn main() {
    let mut args = Args::from_env(&format!("{USAGE}\n{NET_HELP}"));
    let opts = or_exit(NetOpts::parse(&mut args));
    let port: u16 = or_exit(args.value_or("port", 80));
    let backlog: usize = or_exit(args.value_or("backlog", 128));
    let max_conns: usize = or_exit(args.value_or("max-conns", 256));
    let max_object: String = or_exit(args.value_or("max-object", String::from("64m")));
    let idle: u64 = or_exit(args.value_or("idle-secs", 30));
    let every: u64 = or_exit(args.value_or("stats-every", 0));
    or_exit(args.finish());
    if opts.sim {
        fail(
            "--sim is not supported: an HTTP client needs a TCP peer; use --iface with a veth pair",
        );
    }
    let max_object = lrp_examples::object::parse_size(&max_object, usize::MAX)
        .unwrap_or_else(|e| fail(&format!("--max-object: {e}")));

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
                "http-server: accepted {} | syn backlog-full {} | handshake cpu {} ms | active {}",
                listener.accepted(),
                s.backlog_full,
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
