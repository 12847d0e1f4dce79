//! The director's configuration: a TOML file read with `serde` and the `toml` crate,
//! then checked as a whole, every problem reported at its place in the file.
//!
//! ```toml
//! [director]
//! client_iface = "eth0"              # where clients reach the VIPs
//! mode = "ni"                        # receive path: ni | soft | eager
//!
//! [[service]]
//! name = "web"
//! vip = "192.0.2.10"
//! port = 80
//! proto = "tcp"
//! scheduler = "wlc"                  # rr | wrr | lc | wlc | sh | mh
//! mode = "nat"                       # nat | dr
//!
//! [[service.server]]
//! addr = "10.1.0.11"
//! port = 8080
//! weight = 2
//! ```
//!
//! The full schema, every key with its default in a comment, is
//! `lrp-examples/director/example.toml` in the repository (`lrp-director check --config`
//! it); the defaults are also the `DEFAULT_*` constants of this module. Addresses may be
//! IPv4 or IPv6; a service's VIP and servers are of one family.
//!
//! Decisions worth knowing: `max_entries` and `max_bytes` are alternatives (give one);
//! the timeouts default to IPVS's ([`Timeouts`]); a Maglev table size must be prime and
//! at least [`MAGLEV_SLOTS_PER_SERVER`] × servers; a DR server's port is the service's
//! (DR rewrites only the MAC); `[service.health]` overrides `[health]` key by key, and
//! a UDP service is never checked (`[health]`'s TCP default does not apply to it, and
//! naming a TCP or HTTP check for it is an error).
//!
//! # Two passes, one error format
//!
//! [`Config::from_toml`] first deserializes private mirror types with
//! `#[serde(deny_unknown_fields)]` everywhere, so a misspelt key is an error and not a
//! silently ignored line; syntax and type errors come from `toml` with a byte span,
//! and the path of the key (`service[1].server[0].port`) is found by walking the parsed
//! document to that span. The second pass checks what a type cannot say — duplicate
//! services and servers, address families, DR's fixed ports, Maglev table sizes, zero
//! timeouts — on fields kept as [`toml::Spanned`], so each message carries a line and
//! column too. The second pass reports every problem it finds, not only the first.
//! The result is a [`Config`] of plain types with every default filled in.
//!
//! Every error is a [`ConfigError`] that prints as `file:line:column: path: message`,
//! the way compilers do, so editors can jump to it. No input makes the parser panic
//! (the tests feed it random bytes and mutated configurations).

use std::fmt::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use lrp_core::flow::Proto;
use lrp_net::Mode;
use serde::Deserialize;
use smoltcp::wire::EthernetAddress;

use check::Checker;
use error::{path_at, Positions};
pub use error::{ConfigError, ConfigErrors};
use raw::RawConfig;

mod check;
mod director;
mod error;
mod raw;

/// The metrics / management endpoint when none is configured: loopback only.
pub const DEFAULT_MANAGEMENT: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9100);
/// The control socket (`lrp-director add-server` and friends) when none is configured.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/lrp-director.sock";
/// Connection-table entries when neither `max_entries` nor `max_bytes` is given.
pub const DEFAULT_MAX_ENTRIES: u64 = 1 << 20;
/// Most connection-table entries one director may be configured for.
pub const MAX_ENTRIES: u64 = 1 << 28;
/// Fewest bytes `max_bytes` may give the connection table.
pub const MIN_TABLE_BYTES: u64 = 1 << 20;
/// Half-open (SYN_RECV) entries when `max_half_open` is not given.
pub const DEFAULT_MAX_HALF_OPEN: u64 = 1 << 16;
/// Largest weight of a real server, as `ipvsadm` accepts (0 to 65535; 0 drains it).
pub const MAX_WEIGHT: u32 = 65_535;
/// Default capacity, in frames, of a service's new-connection (SYN) channel.
pub const DEFAULT_SYN_CAPACITY: u32 = 1024;
/// Default capacity, in frames, of a service's established-traffic channel.
pub const DEFAULT_ESTABLISHED_CAPACITY: u32 = 4096;
/// Default capacity, in frames, of a NAT service's reply channel.
pub const DEFAULT_REPLY_CAPACITY: u32 = 4096;
/// Largest channel capacity, in frames.
pub const MAX_CHANNEL_CAPACITY: u32 = 1 << 20;
/// Maglev lookup-table size when `maglev_table_size` is not given: the Maglev paper's
/// default (65537, prime). Raised to the smallest prime of at least
/// [`MAGLEV_SLOTS_PER_SERVER`] × servers for a service with more than 655 servers.
pub const DEFAULT_MAGLEV_TABLE_SIZE: u32 = 65_537;
/// A Maglev table needs at least this many slots per real server: the Maglev paper
/// (Eisenbud et al., NSDI 2016, §3.4) asks for M > 100·N to keep the imbalance between
/// servers within about 1 %. We enforce M ≥ 100·N on the configured servers; a smaller
/// table works but spreads load unevenly, and M < N leaves servers without a slot.
pub const MAGLEV_SLOTS_PER_SERVER: u32 = 100;
/// Largest Maglev table: 2^24 slots of 4 bytes is 64 MiB per service.
pub const MAX_MAGLEV_TABLE_SIZE: u32 = 1 << 24;

/// A checked director configuration. Build it with [`Config::load`] or
/// [`Config::from_toml`]; every default is filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Interfaces, receive path and management endpoints (`[director]`).
    pub director: DirectorConfig,
    /// Connection-table limits and timeouts (`[table]`).
    pub table: TableConfig,
    /// The health-check defaults (`[health]`); each service has its own resolved copy in
    /// [`ServiceConfig::health`].
    pub health: HealthConfig,
    /// The virtual services (`[[service]]`), in file order.
    pub services: Vec<ServiceConfig>,
}

/// The `[director]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectorConfig {
    /// The interface clients reach the VIPs on (`client_iface`).
    pub client_iface: String,
    /// The interface towards the real servers for a two-armed director (`server_iface`);
    /// `None`: one-armed, servers are reached on `client_iface`.
    pub server_iface: Option<String>,
    /// The director's own address and prefix on `client_iface` (`address =
    /// "10.0.0.1/24"`): health checks and ARP resolution of real servers come from it,
    /// and it is the servers' default gateway in NAT. `lrp-director run` requires it.
    pub address: Option<IfaceAddress>,
    /// The router for destinations outside `address`'s subnet (`gateway`), for health
    /// checks of servers behind it.
    pub gateway: Option<Ipv4Addr>,
    /// The interface queue to attach to (`queue`, default 0).
    pub queue: u32,
    /// The receive path (`mode = "ni" | "soft" | "eager"`, default `"ni"`).
    pub mode: Mode,
    /// Where the metrics and management endpoint listens (`management`, default
    /// [`DEFAULT_MANAGEMENT`], loopback only).
    pub management: SocketAddr,
    /// The Unix control socket (`control_socket`, default [`DEFAULT_CONTROL_SOCKET`]).
    pub control_socket: PathBuf,
}

/// An IPv4 address with its prefix length, as `10.0.0.1/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IfaceAddress {
    /// The address.
    pub ip: Ipv4Addr,
    /// The prefix length, 1 to 32.
    pub prefix_len: u8,
}

impl IfaceAddress {
    /// Whether `ip` is in this address's subnet.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX << (32 - u32::from(self.prefix_len));
        u32::from(ip) & mask == u32::from(self.ip) & mask
    }
}

impl fmt::Display for IfaceAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.ip, self.prefix_len)
    }
}

/// The `[table]` table: connection-table limits and per-state timeouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableConfig {
    /// The bound on the table's size (`max_entries` or `max_bytes`).
    pub limit: TableLimit,
    /// Most half-open (SYN_RECV) entries (`max_half_open`).
    pub max_half_open: u64,
    /// Idle timeouts per state (`[table.timeouts]`).
    pub timeouts: Timeouts,
}

/// How the connection table is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableLimit {
    /// At most this many entries (`max_entries`).
    Entries(u64),
    /// At most this many bytes of entries and index (`max_bytes`); the connection table
    /// turns it into entries from its own entry size.
    Bytes(u64),
}

/// Idle timeouts of connection-table entries, per TCP state and for UDP.
///
/// The defaults are IPVS's (`tcp_timeouts[]` in `net/netfilter/ipvs/ip_vs_proto_tcp.c`,
/// `udp_timeouts[]` in `ip_vs_proto_udp.c`): ESTABLISHED 15 min, SYN_RECV 1 min,
/// FIN_WAIT 2 min, TIME_WAIT 2 min, CLOSE 10 s, UDP 5 min.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// After the client's SYN, before the handshake completes (`syn_recv`, 60 s).
    pub syn_recv: Duration,
    /// An established connection (`established`, 900 s).
    pub established: Duration,
    /// After a FIN (`fin_wait`, 120 s).
    pub fin_wait: Duration,
    /// After both FINs (`time_wait`, 120 s).
    pub time_wait: Duration,
    /// After a RST (`close`, 10 s).
    pub close: Duration,
    /// A UDP "connection" (`udp`, 300 s).
    pub udp: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            syn_recv: Duration::from_secs(60),
            established: Duration::from_secs(900),
            fin_wait: Duration::from_secs(120),
            time_wait: Duration::from_secs(120),
            close: Duration::from_secs(10),
            udp: Duration::from_secs(300),
        }
    }
}

/// How the health of a real server is checked, and how often.
///
/// Defaults: a TCP connect every 2 s, 1 s timeout, up after 2 successes, down after 3
/// failures (HAProxy's `inter 2s rise 2 fall 3`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthConfig {
    /// What a check does (`check = "tcp" | "http" | "none"`).
    pub check: HealthCheck,
    /// Time between two checks of one server (`interval`, seconds).
    pub interval: Duration,
    /// How long one check may take (`timeout`, seconds, at most `interval`).
    pub timeout: Duration,
    /// Consecutive successes that bring a down server up (`rise`).
    pub rise: u32,
    /// Consecutive failures that take an up server down (`fall`).
    pub fall: u32,
}

impl Default for HealthConfig {
    fn default() -> HealthConfig {
        HealthConfig {
            check: HealthCheck::Tcp,
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            rise: 2,
            fall: 3,
        }
    }
}

/// What one health check does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthCheck {
    /// No checks: servers are always up (the resolved check of a UDP service unless
    /// it names one).
    None,
    /// A TCP connection to the server's port is accepted.
    Tcp,
    /// `GET path` over HTTP/1.1 answers with `status`.
    Http {
        /// The request path (`http_path`, default `/`).
        path: String,
        /// The expected status code (`http_status`, default 200).
        status: u16,
    },
}

/// Scheduling algorithms, named as `ipvsadm` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SchedulerKind {
    /// Round robin.
    Rr,
    /// Weighted round robin.
    Wrr,
    /// Least connections.
    Lc,
    /// Weighted least connections (the IPVS default).
    Wlc,
    /// Source hashing.
    Sh,
    /// Maglev hashing (consistent; see [`ServiceConfig::maglev_table_size`]).
    Mh,
}

impl SchedulerKind {
    /// The name used in the configuration and by `ipvsadm`.
    pub const fn name(self) -> &'static str {
        match self {
            SchedulerKind::Rr => "rr",
            SchedulerKind::Wrr => "wrr",
            SchedulerKind::Lc => "lc",
            SchedulerKind::Wlc => "wlc",
            SchedulerKind::Sh => "sh",
            SchedulerKind::Mh => "mh",
        }
    }
}

impl fmt::Display for SchedulerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How packets reach the real servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ForwardMode {
    /// NAT: destination (and port) rewritten towards the server, replies come back
    /// through the director and are rewritten back.
    Nat,
    /// Direct routing: only the destination MAC is rewritten; servers hold the VIP and
    /// answer clients directly. Ports cannot change.
    Dr,
}

impl ForwardMode {
    /// The name used in the configuration.
    pub const fn name(self) -> &'static str {
        match self {
            ForwardMode::Nat => "nat",
            ForwardMode::Dr => "dr",
        }
    }
}

impl fmt::Display for ForwardMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Capacities, in frames, of a service's channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelCapacities {
    /// New connections (TCP SYN; first datagrams of UDP flows) (`syn_capacity`).
    pub syn: u32,
    /// Traffic of known connections (`established_capacity`).
    pub established: u32,
    /// Replies from real servers, NAT only (`reply_capacity`).
    pub reply: u32,
}

/// One `[[service]]`: a virtual service (VIP, port, protocol) and its real servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// A unique name, for the command line, logs and metrics (`name`).
    pub name: String,
    /// The virtual address (`vip`).
    pub vip: IpAddr,
    /// The virtual port (`port`).
    pub port: u16,
    /// The transport protocol (`proto`, default tcp).
    pub proto: Proto,
    /// The scheduler (`scheduler`, default wlc).
    pub scheduler: SchedulerKind,
    /// The forwarding mode (`mode`, required).
    pub mode: ForwardMode,
    /// Client affinity: a client's new connections go to the server it used within this
    /// time (`persistence`, seconds; `None`: no persistence).
    pub persistence: Option<Duration>,
    /// The Maglev lookup-table size, a prime (scheduler `mh` only).
    pub maglev_table_size: Option<u32>,
    /// Capacities of the service's channels.
    pub channels: ChannelCapacities,
    /// The resolved health check: `[health]` overridden by `[service.health]`.
    pub health: HealthConfig,
    /// The real servers (`[[service.server]]`), in file order; never empty.
    pub servers: Vec<ServerConfig>,
}

/// One `[[service.server]]`: a real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerConfig {
    /// Its address, of the VIP's family (`addr`).
    pub addr: IpAddr,
    /// Its port (`port`, default the service's; DR requires the service's).
    pub port: u16,
    /// Its weight, 0 to [`MAX_WEIGHT`] (`weight`, default 1; 0 drains it: no new
    /// connections).
    pub weight: u32,
    /// Its MAC, if fixed in the file (`mac`); otherwise learned by ARP / neighbour
    /// discovery.
    pub mac: Option<EthernetAddress>,
}

impl ServerConfig {
    /// The server's socket address.
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.addr, self.port)
    }
}

impl Config {
    /// Read, parse and check the file at `path`. The file name in errors is `path` as
    /// given.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let file = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| ConfigErrors {
            errors: vec![ConfigError {
                file: file.clone(),
                line: 0,
                column: 0,
                path: String::new(),
                message: format!("cannot read the configuration: {e}"),
            }],
        })?;
        match String::from_utf8(bytes) {
            Ok(text) => Config::from_toml(&file, &text),
            Err(e) => {
                let valid = e.utf8_error().valid_up_to();
                let text = String::from_utf8_lossy(e.as_bytes());
                // The lossy text has the same bytes up to the first invalid one.
                let (line, column) = Positions { text: &text }.at(valid);
                Err(ConfigErrors {
                    errors: vec![ConfigError {
                        file,
                        line,
                        column,
                        path: String::new(),
                        message: "the file is not UTF-8 (TOML files must be)".into(),
                    }],
                })
            }
        }
    }

    /// Parse and check `text`; `file` names it in errors.
    pub fn from_toml(file: &str, text: &str) -> Result<Config, ConfigErrors> {
        let mut checker = Checker {
            file,
            positions: Positions { text },
            errors: Vec::new(),
        };
        let raw: RawConfig = match toml::from_str(text) {
            Ok(raw) => raw,
            Err(e) => {
                let span = e.span();
                let path = span.as_ref().map(|s| path_at(text, s)).unwrap_or_default();
                checker.error(span, path, e.message().trim_end().to_string());
                return Err(checker.finish());
            }
        };
        let config = checker.check(raw);
        let errors = checker.finish();
        match config {
            Some(config) if errors.errors.is_empty() => Ok(config),
            _ => Err(errors),
        }
    }

    /// Number of real servers over all services.
    pub fn server_count(&self) -> usize {
        self.services.iter().map(|s| s.servers.len()).sum()
    }

    /// A human-readable summary: the director's settings, then a table of services and
    /// their servers (what `lrp-director check` prints).
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let d = &self.director;
        let t = &self.table;
        let _ = writeln!(
            out,
            "director: client {} address {}{} server {} queue {} mode {} management {}{} \
             control {}",
            d.client_iface,
            d.address.map_or("(none)".into(), |a| a.to_string()),
            d.gateway.map_or(String::new(), |g| format!(" via {g}")),
            d.server_iface.as_deref().unwrap_or("(one-armed)"),
            d.queue,
            d.mode,
            d.management,
            if d.management.ip().is_loopback() {
                " (loopback)"
            } else {
                ""
            },
            d.control_socket.display(),
        );
        let limit = match t.limit {
            TableLimit::Entries(n) => format!("{n} entries"),
            TableLimit::Bytes(n) => format!("{n} bytes"),
        };
        let to = &t.timeouts;
        let _ = writeln!(
            out,
            "table: {limit}, {} half-open; timeouts syn_recv {}s established {}s \
             fin_wait {}s time_wait {}s close {}s udp {}s",
            t.max_half_open,
            to.syn_recv.as_secs(),
            to.established.as_secs(),
            to.fin_wait.as_secs(),
            to.time_wait.as_secs(),
            to.close.as_secs(),
            to.udp.as_secs(),
        );
        let _ = writeln!(
            out,
            "{} services, {} real servers",
            self.services.len(),
            self.server_count()
        );
        let rows: Vec<[String; 6]> = self
            .services
            .iter()
            .map(|s| {
                [
                    s.name.clone(),
                    format!("{}/{}", SocketAddr::new(s.vip, s.port), s.proto),
                    match s.maglev_table_size {
                        Some(m) => format!("{} (M={m})", s.scheduler),
                        None => s.scheduler.to_string(),
                    },
                    s.mode.to_string(),
                    s.persistence
                        .map_or("-".into(), |p| format!("{}s", p.as_secs())),
                    health_summary(&s.health),
                ]
            })
            .collect();
        let header = [
            "SERVICE",
            "VIP:PORT/PROTO",
            "SCHEDULER",
            "MODE",
            "PERSIST",
            "HEALTH",
        ]
        .map(String::from);
        let mut width = [0usize; 6];
        for row in std::iter::once(&header).chain(&rows) {
            for (w, cell) in width.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let server_width = self
            .services
            .iter()
            .flat_map(|s| &s.servers)
            .map(|r| r.socket_addr().to_string().len())
            .max()
            .unwrap_or(0);
        let line = |row: &[String; 6]| {
            let mut line = String::new();
            for (w, cell) in width.iter().zip(row) {
                let _ = write!(line, "{cell:<w$}  ");
            }
            line.trim_end().to_string()
        };
        let _ = writeln!(out, "{}", line(&header));
        for (row, s) in rows.iter().zip(&self.services) {
            let _ = writeln!(out, "{}", line(row));
            for r in &s.servers {
                let _ = writeln!(
                    out,
                    "    -> {:<server_width$}  weight {:<5}  {}",
                    r.socket_addr().to_string(),
                    r.weight,
                    r.mac.map_or("mac learned".into(), |m| format!("mac {m}")),
                );
            }
        }
        out
    }
}

fn health_summary(h: &HealthConfig) -> String {
    let what = match &h.check {
        HealthCheck::None => return "none".into(),
        HealthCheck::Tcp => "tcp".to_string(),
        HealthCheck::Http { path, status } => format!("http GET {path} = {status}"),
    };
    format!(
        "{what} every {}s rise {} fall {}",
        h.interval.as_secs(),
        h.rise,
        h.fall
    )
}

#[cfg(test)]
mod tests {
    use super::check::is_prime;
    use super::*;

    const MINIMAL: &str = r#"
[director]
client_iface = "eth0"

[[service]]
name = "web"
vip = "192.0.2.10"
port = 80
mode = "nat"

[[service.server]]
addr = "10.1.0.11"
port = 8080
"#;

    #[test]
    fn minimal_config_gets_every_default() {
        let c = Config::from_toml("t.toml", MINIMAL).unwrap();
        assert_eq!(c.director.management, DEFAULT_MANAGEMENT);
        assert!(c.director.management.ip().is_loopback());
        assert_eq!(c.director.control_socket, Path::new(DEFAULT_CONTROL_SOCKET));
        assert_eq!(c.director.mode, Mode::NiLrp);
        assert_eq!(c.table.limit, TableLimit::Entries(DEFAULT_MAX_ENTRIES));
        assert_eq!(c.table.timeouts, Timeouts::default());
        assert_eq!(c.table.timeouts.established, Duration::from_secs(900));
        let s = &c.services[0];
        assert_eq!(
            (s.proto, s.scheduler, s.mode),
            (Proto::Tcp, SchedulerKind::Wlc, ForwardMode::Nat)
        );
        assert_eq!(s.health, HealthConfig::default());
        assert_eq!(s.servers[0].weight, 1);
        assert_eq!(
            s.servers[0].socket_addr(),
            "10.1.0.11:8080".parse().unwrap()
        );
        assert_eq!(s.maglev_table_size, None);
    }

    #[test]
    fn maglev_default_grows_with_servers() {
        let mut text = MINIMAL.replace("mode = \"nat\"", "mode = \"nat\"\nscheduler = \"mh\"");
        let c = Config::from_toml("t.toml", &text).unwrap();
        assert_eq!(c.services[0].maglev_table_size, Some(65_537));
        for i in 0..700 {
            let _ = write!(
                text,
                "[[service.server]]\naddr = \"10.2.{}.{}\"\n",
                i / 200,
                i % 200 + 1
            );
        }
        let c = Config::from_toml("t.toml", &text).unwrap();
        let m = c.services[0].maglev_table_size.unwrap();
        assert!(m >= 70_100 && is_prime(m), "{m}");
    }

    #[test]
    fn service_health_overrides_defaults_key_by_key() {
        let text = MINIMAL.replace(
            "[[service.server]]",
            "[service.health]\ncheck = \"http\"\nhttp_path = \"/healthz\"\n\n[[service.server]]",
        ) + "\n[health]\ninterval = 5\nfall = 4\n";
        let c = Config::from_toml("t.toml", &text).unwrap();
        let h = &c.services[0].health;
        assert_eq!(
            h.check,
            HealthCheck::Http {
                path: "/healthz".into(),
                status: 200
            }
        );
        assert_eq!((h.interval.as_secs(), h.rise, h.fall), (5, 2, 4));
    }

    #[test]
    fn udp_service_inherits_no_tcp_check() {
        let text = MINIMAL.replace("port = 80\n", "port = 53\nproto = \"udp\"\n");
        let c = Config::from_toml("t.toml", &text).unwrap();
        assert_eq!(c.services[0].proto, Proto::Udp);
        assert_eq!(c.services[0].health.check, HealthCheck::None);
    }
}
