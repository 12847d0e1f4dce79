//! An HTTP client on lrp TCP: fetches a path from a server (lrp's `http-server`, nginx,
//! `python3 -m http.server`, ...) `--count` times, each on a new connection or all on one
//! (`--keep-alive`), and checks the status. For `/obj/<size>` paths of lrp's server it
//! also verifies the body byte for byte; `--expect-size` checks the length of any body.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use lrp_examples::http::fetch;
use lrp_examples::net::NetOpts;
use lrp_examples::object;
use lrp_net::stack::TcpStream;

/// Fetch over HTTP/1.1 with lrp TCP.
///
/// Fetches a path --count times, each on a new connection or all on one (--keep-alive),
/// and checks the status; --verify-object checks bodies of lrp's `/obj/<size>` byte for
/// byte, --expect-size the length of any body. Needs --iface (the server must be a real
/// TCP peer).
#[derive(Debug, Parser)]
#[command(name = "http-get", version)]
struct Cli {
    /// The server
    #[arg(long, value_name = "A.B.C.D:P")]
    server: SocketAddr,
    /// The path
    #[arg(long, value_name = "P", default_value = "/")]
    path: String,
    /// Requests
    #[arg(long, value_name = "N", default_value_t = 1)]
    count: u32,
    /// All requests on one connection (default: one connection each)
    #[arg(long)]
    keep_alive: bool,
    /// Verify the body as lrp's generated object (`/obj/<size>`)
    #[arg(long)]
    verify_object: bool,
    /// Fail unless every body has B bytes
    #[arg(long = "expect-size", value_name = "B")]
    expect: Option<usize>,
    /// Per-request timeout in milliseconds
    #[arg(long = "timeout-ms", value_name = "T", default_value_t = 5000)]
    timeout: u64,
    #[command(flatten)]
    net: NetOpts,
}

impl Cli {
    /// What clap cannot say declaratively: `--sim` has no TCP server to fetch from.
    fn check(&self) -> Result<(), clap::Error> {
        if self.net.sim {
            return Err(Cli::command().error(
                ErrorKind::ArgumentConflict,
                "--sim is not supported: the server must be a real TCP peer; use --iface",
            ));
        }
        Ok(())
    }
}

fn main() {
    let cli = Cli::parse();
    cli.check().unwrap_or_else(|e| e.exit());
    let Cli {
        server,
        path,
        count,
        keep_alive,
        verify_object,
        expect,
        timeout,
        net: opts,
    } = cli;
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
                    .tcp_connect_timeout(server, timeout)
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

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;

    use super::*;
    use lrp_examples::net::check_command_line;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("http-get").chain(args.iter().copied()))
    }

    #[test]
    fn command_line_is_clap_with_help_and_status_2() {
        check_command_line::<Cli>(
            &[
                "--server",
                "--path",
                "--count",
                "--keep-alive",
                "--verify-object",
                "--expect-size",
                "--timeout-ms",
                "--iface",
                "--sim",
                "--mode",
            ],
            &[
                (&["--sim", "--mode", "bogus"][..], ErrorKind::InvalidValue),
                (
                    &[
                        "--server",
                        "10.0.0.1:80",
                        "--iface",
                        "veth0",
                        "--mode",
                        "bogus",
                    ],
                    ErrorKind::InvalidValue,
                ),
                (
                    &["--iface", "veth0", "--server", "nowhere"],
                    ErrorKind::ValueValidation,
                ),
                (&["--iface", "veth0"], ErrorKind::MissingRequiredArgument),
                (
                    &["--server", "10.0.0.1:80"],
                    ErrorKind::MissingRequiredArgument,
                ),
                (
                    &["--server", "10.0.0.1:80", "--sim", "--iface", "veth0"],
                    ErrorKind::ArgumentConflict,
                ),
                (
                    &[
                        "--server",
                        "10.0.0.1:80",
                        "--iface",
                        "veth0",
                        "--frobnicate",
                    ],
                    ErrorKind::UnknownArgument,
                ),
            ],
        );
    }

    #[test]
    fn options_and_defaults() {
        let c = parse(&["--iface", "veth0", "--server", "10.0.0.1:80"]).unwrap();
        assert_eq!(c.server, "10.0.0.1:80".parse().unwrap());
        assert_eq!((c.path.as_str(), c.count, c.timeout), ("/", 1, 5000));
        assert!(!c.keep_alive && !c.verify_object);
        assert_eq!(c.expect, None);
        assert!(c.check().is_ok());
        // The command line of lrp-examples/tests/veth_http.rs.
        let c = parse(&[
            "--iface",
            "veth0",
            "--ip",
            "10.77.0.2/24",
            "--mode",
            "soft",
            "--server",
            "10.77.0.1:8080",
            "--path",
            "/small.txt",
            "--expect-size",
            "1000",
            "--verify-object",
            "--timeout-ms",
            "10000",
            "--count",
            "5",
            "--keep-alive",
        ])
        .unwrap();
        assert_eq!(
            (c.path.as_str(), c.count, c.timeout),
            ("/small.txt", 5, 10000)
        );
        assert!(c.keep_alive && c.verify_object);
        assert_eq!(c.expect, Some(1000));
    }

    #[test]
    fn sim_is_refused_by_clap() {
        let e = parse(&["--sim", "--server", "10.0.0.1:80"])
            .unwrap()
            .check()
            .unwrap_err();
        assert_eq!((e.kind(), e.exit_code()), (ErrorKind::ArgumentConflict, 2));
    }
}
