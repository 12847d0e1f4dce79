//! An HTTP client on lrp TCP: fetches a path from a server (lrp's `http-server`, nginx,
//! `python3 -m http.server`, ...) `--count` times, each on a new connection or all on one
//! (`--keep-alive`), and checks the status. For `/obj/<size>` paths of lrp's server it
//! also verifies the body byte for byte; `--expect-size` checks the length of any body.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lrp_examples::cli::{or_exit, Args};
use lrp_examples::http::fetch;
use lrp_examples::net::{NetOpts, NET_HELP};
use lrp_examples::object;
use lrp_net::stack::TcpStream;

const USAGE: &str = "\
http-get: fetch over HTTP/1.1 with lrp TCP

Usage: http-get --iface IF --server A.B.C.D:P [--path /obj/1k] [--count N] [options]

  --server A:P      the server
  --path P          the path (default /)
  --count N         requests (default 1)
  --keep-alive      all requests on one connection (default: one connection each)
  --verify-object   verify the body as lrp's generated object (/obj/<size>)
  --expect-size B   fail unless every body has B bytes
  --timeout-ms T    per-request timeout (default 5000)
";

fn main() {
    let mut args = Args::from_env(&format!("{USAGE}\n{NET_HELP}"));
    let opts = or_exit(NetOpts::parse(&mut args));
    let server: SocketAddr = or_exit(args.required("server"));
    let path: String = or_exit(args.value_or("path", String::from("/")));
    let count: u32 = or_exit(args.value_or("count", 1));
    let keep_alive = args.flag("keep-alive");
    let verify_object = args.flag("verify-object");
    let expect: Option<usize> = or_exit(args.value("expect-size"));
    let timeout: u64 = or_exit(args.value_or("timeout-ms", 5000));
    or_exit(args.finish());
    if opts.sim {
        fail("--sim is not supported: the server must be a real TCP peer; use --iface");
    }
    let timeout = Duration::from_millis(timeout.max(1));

    let (stack, _) = opts.open().unwrap_or_else(|e| fail(&e));
    let host = server.to_string();
    let start = Instant::now();
    let mut bytes = 0usize;
    let mut conn: Option<TcpStream> = None;
    for i in 0..count {
        let stream = match conn.take() {
            Some(s) => s,
            None => {
                let s = stack
                    .tcp_connect(server, timeout)
                    .unwrap_or_else(|e| fail(&format!("connect {server}: {e}")));
                let _ = s.set_nodelay(true);
                let _ = s.set_read_timeout(Some(timeout));
                let _ = s.set_write_timeout(Some(timeout));
                s
            }
        };
        let mut stream = stream;
        let resp = fetch(&mut stream, &host, &path, keep_alive, 1 << 30)
            .unwrap_or_else(|e| fail(&format!("request {i}: {e}")));
        if resp.head.status != 200 {
            fail(&format!("request {i}: status {}", resp.head.status));
        }
        if let Some(n) = expect {
            if resp.body.len() != n {
                fail(&format!(
                    "request {i}: body of {} bytes, expected {n}",
                    resp.body.len()
                ));
            }
        }
        if verify_object {
            if let Some(at) = object::verify(0, &resp.body) {
                fail(&format!(
                    "request {i}: body differs from the object at byte {at}"
                ));
            }
        }
        bytes += resp.body.len();
        if keep_alive && resp.head.keep_alive {
            conn = Some(stream);
        } else {
            let _ = stream.close(timeout);
        }
    }
    let dt = start.elapsed();
    println!(
        "http-get: {count} requests, {bytes} body bytes in {:.3} s ({:.1} req/s), all 200{}",
        dt.as_secs_f64(),
        f64::from(count) / dt.as_secs_f64().max(1e-9),
        if verify_object {
            ", bodies verified"
        } else {
            ""
        }
    );
}

fn fail(msg: &str) -> ! {
    eprintln!("http-get: {msg}");
    std::process::exit(1);
}
