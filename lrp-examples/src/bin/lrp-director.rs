//! `lrp-director`: the LVS-style L4 load-balancing director on lrp.
//!
//! `check --config F` reads and validates a configuration and prints a summary (exit 0),
//! or prints every problem as `file:line:column: path: message` (exit 2).
//!
//! `run --config F` runs the director on `client_iface` (in the process's network
//! namespace) until SIGINT or SIGTERM, or for `--seconds N`; it prints one line of
//! statistics per service every `--stats-interval` seconds and each health transition
//! on stdout (see `lrp_examples::director::run`). A configuration that cannot run exits
//! with status 2, a system failure (the interface cannot be opened) with status 1.
//!
//! `stats`, `set-weight`, `add-server` and `remove-server` talk to a running director
//! over its Unix control socket (`--socket`, see `lrp_examples::director::control`):
//! exit 0 on success, 1 with the director's error message (or the socket's) on failure,
//! 2 on bad arguments. `add-service` and `remove-service` are not implemented yet: they
//! say so and exit with status 1.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use lrp_examples::director::config::{
    Config, ConfigErrors, ForwardMode, SchedulerKind, DEFAULT_CONTROL_SOCKET,
};
use lrp_examples::director::control;
use lrp_examples::director::run::{self, RunOptions};
use serde_json::{json, Value};
use smoltcp::wire::EthernetAddress;

/// What the unimplemented subcommands say.
const NOT_YET: &str = "not implemented yet: services come from the configuration for now";

/// The LVS-style L4 load-balancing director on lrp.
///
/// Configuration errors exit with status 2, command-line errors too (clap); a failed
/// control command, and the subcommands that are not implemented yet, with status 1.
#[derive(Debug, Parser)]
#[command(name = "lrp-director", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate a configuration without running: print a summary of services and
    /// servers (exit 0), or every problem with its file, line, column and key (exit 2)
    Check {
        /// The configuration file (TOML)
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
    /// Run the director on its interface (one-armed, IPv4) until SIGINT or SIGTERM:
    /// statistics per service and health transitions on stdout
    Run {
        /// The configuration file (TOML)
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// Seconds between two statistics lines per service
        #[arg(long, value_name = "SECONDS", default_value_t = 1.0,
              value_parser = positive_seconds)]
        stats_interval: f64,
        /// Stop after this many seconds (default: run until SIGINT or SIGTERM)
        #[arg(long, value_name = "N", value_parser = positive_seconds)]
        seconds: Option<f64>,
        /// The control socket's path (default: the configuration's control_socket)
        #[arg(long, value_name = "PATH")]
        control_socket: Option<PathBuf>,
    },
    /// Print a running director's statistics per service and real server, like
    /// `ipvsadm -Ln --stats`
    Stats {
        #[command(flatten)]
        control: ControlOpts,
        /// Only this service
        #[arg(long, value_name = "NAME")]
        service: Option<String>,
        /// Print the director's JSON response instead of the table
        #[arg(long)]
        json: bool,
    },
    /// Add a virtual service to a running director (not implemented yet: services
    /// come from the configuration for now)
    AddService {
        #[command(flatten)]
        control: ControlOpts,
        /// Its unique name
        #[arg(long, value_name = "NAME")]
        name: String,
        /// The virtual address
        #[arg(long, value_name = "ADDR")]
        vip: IpAddr,
        /// The virtual port
        #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
        port: u16,
        /// The transport protocol
        #[arg(long, value_enum, default_value_t = ProtoArg::Tcp)]
        proto: ProtoArg,
        /// The scheduler
        #[arg(long, value_enum, default_value_t = SchedulerKind::Wlc)]
        scheduler: SchedulerKind,
        /// The forwarding mode
        #[arg(long, value_enum)]
        mode: ForwardMode,
        /// Client affinity in seconds
        #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u32).range(1..))]
        persistence: Option<u32>,
    },
    /// Remove a virtual service from a running director (not implemented yet: services
    /// come from the configuration for now)
    RemoveService {
        #[command(flatten)]
        control: ControlOpts,
        /// The service's name
        #[arg(long, value_name = "NAME")]
        service: String,
    },
    /// Add a real server to a service of a running director
    AddServer {
        #[command(flatten)]
        control: ControlOpts,
        #[command(flatten)]
        server: ServerArgs,
        /// Its weight (0 to 65535; 0 takes no new connections)
        #[arg(long, value_name = "W", default_value_t = 1,
              value_parser = clap::value_parser!(u32).range(0..=65_535))]
        weight: u32,
        /// Its MAC, for DR (learned by ARP when left out)
        #[arg(long, value_name = "XX:XX:XX:XX:XX:XX", value_parser = parse_mac)]
        mac: Option<EthernetAddress>,
    },
    /// Remove a real server from a service of a running director; its connections are
    /// dropped
    RemoveServer {
        #[command(flatten)]
        control: ControlOpts,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Change a real server's weight in a running director; 0 drains it
    SetWeight {
        #[command(flatten)]
        control: ControlOpts,
        #[command(flatten)]
        server: ServerArgs,
        /// The new weight (0 to 65535)
        #[arg(long, value_name = "W", value_parser = clap::value_parser!(u32).range(0..=65_535))]
        weight: u32,
    },
}

/// Where a running director listens for control commands.
#[derive(Debug, Args)]
struct ControlOpts {
    /// The director's Unix control socket
    #[arg(long, value_name = "PATH", default_value = DEFAULT_CONTROL_SOCKET)]
    socket: PathBuf,
}

/// Which real server of which service.
#[derive(Debug, Args)]
struct ServerArgs {
    /// The service's name
    #[arg(long, value_name = "NAME")]
    service: String,
    /// The real server's address
    #[arg(long, value_name = "ADDR", required_unless_present = "server")]
    addr: Option<IpAddr>,
    /// The real server's port (default: the service's)
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    port: Option<u16>,
    /// The real server as ADDR:PORT (instead of --addr and --port)
    #[arg(long, value_name = "ADDR:PORT", conflicts_with_all = ["addr", "port"])]
    server: Option<SocketAddr>,
}

impl ServerArgs {
    /// The address and port (`None`: the service's).
    fn addr_port(&self) -> (IpAddr, Option<u16>) {
        match (self.server, self.addr) {
            (Some(s), _) => (s.ip(), Some(s.port())),
            (None, Some(a)) => (a, self.port),
            // clap requires one of them.
            (None, None) => (IpAddr::from([0, 0, 0, 0]), self.port),
        }
    }

    /// `ADDR:PORT`, or `ADDR` (the director adds the service's port).
    fn server_string(&self) -> String {
        match self.addr_port() {
            (ip, Some(port)) => SocketAddr::new(ip, port).to_string(),
            (ip, None) => ip.to_string(),
        }
    }
}

/// Transport protocol on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ProtoArg {
    /// TCP
    Tcp,
    /// UDP
    Udp,
}

/// A number of seconds, more than 0 and at most a day.
fn positive_seconds(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if x > 0.0 && x <= 86_400.0 => Ok(x),
        _ => Err("expected seconds, more than 0 and at most 86400".to_string()),
    }
}

/// `xx:xx:xx:xx:xx:xx`, parsed by smoltcp.
fn parse_mac(s: &str) -> Result<EthernetAddress, String> {
    s.trim()
        .parse()
        .map_err(|()| "expected six hex bytes, xx:xx:xx:xx:xx:xx".to_string())
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Check { config } => match load(&config) {
            Ok(c) => {
                println!("{}: OK", config.display());
                print!("{}", c.summary());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Run {
            config,
            stats_interval,
            seconds,
            control_socket,
        } => match load(&config) {
            Ok(c) => {
                let options = RunOptions {
                    stats_interval: Duration::from_secs_f64(stats_interval),
                    duration: seconds.map(Duration::from_secs_f64),
                    control_socket,
                    ..RunOptions::default()
                };
                match run::run(&c, &options, &run::stop_on_signals()) {
                    Ok(_) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("lrp-director run: {}: {e}", config.display());
                        ExitCode::from(if e.is_config() { 2 } else { 1 })
                    }
                }
            }
            Err(code) => code,
        },
        Command::Stats {
            control,
            service,
            json,
        } => command(
            "stats",
            &control,
            &json!({ "command": "stats", "service": service }),
            |v| {
                if json {
                    println!("{v}");
                } else {
                    print!("{}", stats_table(v));
                }
            },
        ),
        Command::AddService { .. } => not_yet("add-service"),
        Command::RemoveService { .. } => not_yet("remove-service"),
        Command::AddServer {
            control,
            server,
            weight,
            mac,
        } => {
            let (addr, port) = server.addr_port();
            command(
                "add-server",
                &control,
                &json!({
                    "command": "add-server",
                    "service": server.service,
                    "addr": addr,
                    "port": port,
                    "weight": weight,
                    "mac": mac.map(|m| m.to_string()),
                }),
                |v| {
                    println!(
                        "{}: server {} added, weight {}",
                        v["service"], v["server"], v["weight"]
                    )
                },
            )
        }
        Command::RemoveServer { control, server } => {
            let (addr, port) = server.addr_port();
            command(
                "remove-server",
                &control,
                &json!({
                    "command": "remove-server",
                    "service": server.service,
                    "addr": addr,
                    "port": port,
                }),
                |v| println!("{}: server {} removed", v["service"], v["server"]),
            )
        }
        Command::SetWeight {
            control,
            server,
            weight,
        } => command(
            "set-weight",
            &control,
            &json!({
                "command": "set-weight",
                "service": server.service,
                "server": server.server_string(),
                "weight": weight,
            }),
            |v| {
                println!(
                    "{}: server {} weight {}",
                    v["service"], v["server"], v["weight"]
                )
            },
        ),
    }
}

/// Send `request` to the director; on success hand the response to `print` (exit 0),
/// else print the error (exit 1).
fn command(
    name: &str,
    control: &ControlOpts,
    request: &Value,
    print: impl FnOnce(&Value),
) -> ExitCode {
    match control::request(&control.socket, request) {
        Ok(v) if v["ok"] == Value::Bool(true) => {
            print(&v);
            ExitCode::SUCCESS
        }
        Ok(v) => {
            let msg = v["error"]
                .as_str()
                .map_or_else(|| v.to_string(), str::to_owned);
            eprintln!("lrp-director {name}: {msg}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("lrp-director {name}: {e}");
            ExitCode::from(1)
        }
    }
}

/// The `stats` response as an `ipvsadm -Ln --stats`-like table: a service line
/// (protocol, VIP:port, scheduler, mode, connections, CPU) and a line per real server
/// (address, weight, active and inactive connections, packets in and out).
fn stats_table(v: &Value) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Prot LocalAddress:Port Scheduler Mode Name Conns CPU\n  -> RemoteAddress:Port{:>9}{:>11}{:>10}{:>12}{:>12}",
        "Weight", "ActiveConn", "InActConn", "InPkts", "OutPkts"
    );
    let empty = Vec::new();
    for s in v["services"].as_array().unwrap_or(&empty) {
        let text = |k: &str| s[k].as_str().unwrap_or("?").to_owned();
        let num = |x: &Value, k: &str| x[k].as_u64().unwrap_or(0);
        let _ = writeln!(
            out,
            "{} {} {} {} {} conns {} cpu {:.0}us",
            text("proto").to_uppercase(),
            text("vip"),
            text("scheduler"),
            text("mode"),
            text("name"),
            num(s, "connections"),
            num(s, "cpu_ns") as f64 / 1e3,
        );
        for r in s["servers"].as_array().unwrap_or(&empty) {
            let _ = writeln!(
                out,
                "  -> {:<18}{:>9}{:>11}{:>10}{:>12}{:>12}",
                r["addr"].as_str().unwrap_or("?"),
                num(r, "weight"),
                num(r, "active"),
                num(r, "inactive"),
                num(r, "packets"),
                num(r, "reply_packets"),
            );
        }
    }
    out
}

/// Load and check `path`; on errors print them all on stderr and give exit status 2.
fn load(path: &Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|errors: ConfigErrors| {
        eprintln!("{errors}");
        let n = errors.errors.len();
        eprintln!(
            "lrp-director: {}: {n} error{}",
            path.display(),
            if n == 1 { "" } else { "s" }
        );
        ExitCode::from(2)
    })
}

fn not_yet(command: &str) -> ExitCode {
    eprintln!("lrp-director {command}: {NOT_YET}");
    ExitCode::from(1)
}

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;

    use super::*;
    use lrp_examples::net::check_command_line;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("lrp-director").chain(args.iter().copied()))
    }

    #[test]
    fn command_line_is_clap_with_help_and_status_2() {
        check_command_line::<Cli>(
            &[
                "check",
                "run",
                "stats",
                "add-service",
                "remove-service",
                "add-server",
                "remove-server",
                "set-weight",
            ],
            &[
                (&[][..], ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand),
                (&["check"], ErrorKind::MissingRequiredArgument),
                (&["frobnicate"], ErrorKind::InvalidSubcommand),
                (&["check", "--config"], ErrorKind::InvalidValue),
                (
                    &["check", "--config", "a", "--bogus"],
                    ErrorKind::UnknownArgument,
                ),
                (
                    &["add-server", "--service", "web", "--addr", "10.0.0.300"],
                    ErrorKind::ValueValidation,
                ),
                (
                    &[
                        "set-weight",
                        "--service",
                        "w",
                        "--addr",
                        "10.0.0.1",
                        "--weight",
                        "65536",
                    ],
                    ErrorKind::ValueValidation,
                ),
                (
                    &[
                        "add-service",
                        "--name",
                        "w",
                        "--vip",
                        "10.0.0.1",
                        "--port",
                        "80",
                        "--mode",
                        "tun",
                    ],
                    ErrorKind::InvalidValue,
                ),
                (
                    &[
                        "add-service",
                        "--name",
                        "w",
                        "--vip",
                        "10.0.0.1",
                        "--port",
                        "0",
                        "--mode",
                        "dr",
                    ],
                    ErrorKind::ValueValidation,
                ),
                (
                    &[
                        "add-server",
                        "--service",
                        "w",
                        "--addr",
                        "10.0.0.1",
                        "--mac",
                        "zz",
                    ],
                    ErrorKind::ValueValidation,
                ),
            ],
        );
    }

    #[test]
    fn every_subcommand_help_renders_and_unimplemented_ones_say_so() {
        use clap::CommandFactory;
        let mut cli = Cli::command();
        for sub in cli.get_subcommands_mut() {
            let name = sub.get_name().to_owned();
            let help = sub.render_long_help().to_string();
            if matches!(name.as_str(), "add-service" | "remove-service") {
                assert!(help.contains("not implemented yet"), "{name}:\n{help}");
            } else {
                assert!(!help.contains("not implemented yet"), "{name}:\n{help}");
            }
        }
    }

    #[test]
    fn subcommand_arguments() {
        match parse(&["check", "-c", "d.toml"]).unwrap().command {
            Command::Check { config } => assert_eq!(config, Path::new("d.toml")),
            c => panic!("{c:?}"),
        }
        match parse(&[
            "add-server",
            "--service",
            "web",
            "--addr",
            "10.0.0.5",
            "--port",
            "8080",
            "--weight",
            "0",
            "--mac",
            "02:00:00:00:00:05",
        ])
        .unwrap()
        .command
        {
            Command::AddServer {
                control,
                server,
                weight,
                mac,
            } => {
                assert_eq!(control.socket, Path::new(DEFAULT_CONTROL_SOCKET));
                assert_eq!(server.service, "web");
                assert_eq!(
                    server.addr_port(),
                    ("10.0.0.5".parse().unwrap(), Some(8080))
                );
                assert_eq!(weight, 0);
                assert_eq!(mac, Some(EthernetAddress([2, 0, 0, 0, 0, 5])));
            }
            c => panic!("{c:?}"),
        }
        match parse(&[
            "add-service",
            "--socket",
            "/tmp/d.sock",
            "--name",
            "dns",
            "--vip",
            "2001:db8::1",
            "--port",
            "53",
            "--proto",
            "udp",
            "--scheduler",
            "mh",
            "--mode",
            "dr",
        ])
        .unwrap()
        .command
        {
            Command::AddService {
                control,
                proto,
                scheduler,
                mode,
                persistence,
                ..
            } => {
                assert_eq!(control.socket, Path::new("/tmp/d.sock"));
                assert_eq!(
                    (proto, scheduler, mode),
                    (ProtoArg::Udp, SchedulerKind::Mh, ForwardMode::Dr)
                );
                assert_eq!(persistence, None);
            }
            c => panic!("{c:?}"),
        }
    }
}
