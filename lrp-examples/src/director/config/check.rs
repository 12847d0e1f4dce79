//! The second pass: what a type cannot say, checked on the parsed file, every problem
//! collected with its place.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::time::Duration;

use lrp_core::flow::Proto;
use smoltcp::wire::EthernetAddress;
use toml::Spanned;

use super::error::{ConfigError, ConfigErrors, Positions};
use super::raw::{CheckKind, ProtoName, RawConfig, RawHealth, RawServer, RawService, RawTable};
use super::{
    ChannelCapacities, Config, ForwardMode, HealthCheck, HealthConfig, SchedulerKind, ServerConfig,
    ServiceConfig, TableConfig, TableLimit, Timeouts, DEFAULT_ESTABLISHED_CAPACITY,
    DEFAULT_MAGLEV_TABLE_SIZE, DEFAULT_MAX_ENTRIES, DEFAULT_MAX_HALF_OPEN, DEFAULT_REPLY_CAPACITY,
    DEFAULT_SYN_CAPACITY, MAGLEV_SLOTS_PER_SERVER, MAX_CHANNEL_CAPACITY, MAX_ENTRIES,
    MAX_MAGLEV_TABLE_SIZE, MAX_WEIGHT, MIN_TABLE_BYTES,
};

/// Longest interface name Linux accepts (`IFNAMSIZ` − 1).
const MAX_IFNAME: usize = 15;

pub(super) struct Checker<'a> {
    pub(super) file: &'a str,
    pub(super) positions: Positions<'a>,
    pub(super) errors: Vec<ConfigError>,
}

impl Checker<'_> {
    pub(super) fn error(&mut self, span: Option<Range<usize>>, path: String, message: String) {
        let (line, column) = span.map_or((0, 0), |s| self.positions.at(s.start));
        self.errors.push(ConfigError {
            file: self.file.to_string(),
            line,
            column,
            path,
            message,
        });
    }

    pub(super) fn at<T>(&mut self, value: &Spanned<T>, path: impl Into<String>, message: String) {
        self.error(Some(value.span()), path.into(), message);
    }

    pub(super) fn finish(mut self) -> ConfigErrors {
        // File order; stable, so problems at one place keep the order they were found.
        self.errors.sort_by_key(|e| (e.line == 0, e.line, e.column));
        ConfigErrors {
            errors: self.errors,
        }
    }

    /// A value of at least 1, or `default` when absent.
    fn positive(&mut self, value: Option<&Spanned<u32>>, path: &str, default: u32) -> u32 {
        match value {
            None => default,
            Some(v) if *v.get_ref() == 0 => {
                self.at(v, path, "must be at least 1".into());
                default
            }
            Some(v) => *v.get_ref(),
        }
    }

    fn seconds(&mut self, value: Option<&Spanned<u32>>, path: &str, default: Duration) -> Duration {
        match value {
            None => default,
            Some(v) if *v.get_ref() == 0 => {
                self.at(v, path, "0 seconds is not allowed (at least 1)".into());
                default
            }
            Some(v) => Duration::from_secs(u64::from(*v.get_ref())),
        }
    }

    pub(super) fn iface(&mut self, name: &Spanned<String>, path: &str) {
        let n = name.get_ref();
        if n.is_empty() {
            self.at(name, path, "an interface name is required".into());
        } else if n.len() > MAX_IFNAME {
            self.at(
                name,
                path,
                format!("interface name `{n}` is longer than {MAX_IFNAME} bytes"),
            );
        } else if n
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
        {
            self.at(
                name,
                path,
                format!("`{n}` is not an interface name (no `/`, `:` or spaces)"),
            );
        }
    }

    pub(super) fn check(&mut self, raw: RawConfig) -> Option<Config> {
        let director = self.director(&raw.director);
        let table = self.table(&raw.table);
        let health = self.health("health", &raw.health, &HealthConfig::default(), Proto::Tcp);
        let mut services = Vec::with_capacity(raw.services.len());
        let mut keys: HashMap<(IpAddr, u16, Proto), (usize, String)> = HashMap::new();
        let mut names: HashMap<String, usize> = HashMap::new();
        for (i, s) in raw.services.iter().enumerate() {
            let Some(service) = self.service(i, s, &health) else {
                continue;
            };
            let path = format!("service[{i}]");
            if let Some(a) = director.address.filter(|a| service.vip == IpAddr::V4(a.ip)) {
                self.at(
                    &s.get_ref().vip,
                    format!("{path}.vip"),
                    format!("{} is the director's own address ({a}), not a VIP", a.ip),
                );
            }
            let (line, _) = self.positions.at(s.get_ref().name.span().start);
            if let Some(&first) = names.get(&service.name) {
                self.at(
                    &s.get_ref().name,
                    format!("{path}.name"),
                    format!(
                        "service name \"{}\" is used twice (first at line {first})",
                        service.name
                    ),
                );
            }
            names.entry(service.name.clone()).or_insert(line);
            let key = (service.vip, service.port, service.proto);
            let (line, _) = self.positions.at(s.get_ref().port.span().start);
            if let Some((first, other)) = keys.get(&key) {
                self.at(
                    &s.get_ref().port,
                    format!("{path}.port"),
                    format!(
                        "service \"{}\": {}/{} is already service \"{other}\" (line {first})",
                        service.name,
                        SocketAddr::new(service.vip, service.port),
                        service.proto
                    ),
                );
            }
            keys.entry(key).or_insert((line, service.name.clone()));
            services.push(service);
        }
        Some(Config {
            director,
            table: table?,
            health,
            services,
        })
    }

    fn table(&mut self, raw: &RawTable) -> Option<TableConfig> {
        let limit = match (&raw.max_entries, &raw.max_bytes) {
            (Some(_), Some(b)) => {
                self.at(
                    b,
                    "table.max_bytes",
                    "give max_entries or max_bytes, not both".into(),
                );
                None
            }
            (Some(e), None) => {
                let n = *e.get_ref();
                if n == 0 || n > MAX_ENTRIES {
                    self.at(
                        e,
                        "table.max_entries",
                        format!("{n} is out of range 1..={MAX_ENTRIES}"),
                    );
                    None
                } else {
                    Some(TableLimit::Entries(n))
                }
            }
            (None, Some(b)) => {
                let n = *b.get_ref();
                if n < MIN_TABLE_BYTES {
                    self.at(
                        b,
                        "table.max_bytes",
                        format!("{n} bytes is below the minimum of {MIN_TABLE_BYTES} (1 MiB)"),
                    );
                    None
                } else {
                    Some(TableLimit::Bytes(n))
                }
            }
            (None, None) => Some(TableLimit::Entries(DEFAULT_MAX_ENTRIES)),
        };
        let max_half_open = match &raw.max_half_open {
            None => DEFAULT_MAX_HALF_OPEN,
            Some(h) => {
                let n = *h.get_ref();
                match limit {
                    _ if n == 0 => {
                        self.at(h, "table.max_half_open", "must be at least 1".into());
                    }
                    Some(TableLimit::Entries(max)) if n > max => {
                        self.at(
                            h,
                            "table.max_half_open",
                            format!("{n} is more than the table holds (max_entries = {max})"),
                        );
                    }
                    _ => {}
                }
                n
            }
        };
        let t = &raw.timeouts;
        let d = Timeouts::default();
        let timeouts = Timeouts {
            syn_recv: self.seconds(t.syn_recv.as_ref(), "table.timeouts.syn_recv", d.syn_recv),
            established: self.seconds(
                t.established.as_ref(),
                "table.timeouts.established",
                d.established,
            ),
            fin_wait: self.seconds(t.fin_wait.as_ref(), "table.timeouts.fin_wait", d.fin_wait),
            time_wait: self.seconds(
                t.time_wait.as_ref(),
                "table.timeouts.time_wait",
                d.time_wait,
            ),
            close: self.seconds(t.close.as_ref(), "table.timeouts.close", d.close),
            udp: self.seconds(t.udp.as_ref(), "table.timeouts.udp", d.udp),
        };
        Some(TableConfig {
            limit: limit?,
            max_half_open,
            timeouts,
        })
    }

    /// Resolve the health check at `path`: the keys of `raw` over `base` (the built-in
    /// defaults for `[health]`; the resolved `[health]` for a service). Only the keys of
    /// `raw` are checked here, so a bad default is reported once, where it is written.
    /// A UDP service inherits no TCP or HTTP check; it may name `check = "none"` only.
    fn health(
        &mut self,
        path: &str,
        raw: &RawHealth,
        base: &HealthConfig,
        proto: Proto,
    ) -> HealthConfig {
        let interval = self.seconds(
            raw.interval.as_ref(),
            &format!("{path}.interval"),
            base.interval,
        );
        let timeout = self.seconds(
            raw.timeout.as_ref(),
            &format!("{path}.timeout"),
            base.timeout,
        );
        if timeout > interval {
            let (key, at) = match (&raw.timeout, &raw.interval) {
                (Some(t), _) => ("timeout", Some(t)),
                (None, i) => ("interval", i.as_ref()),
            };
            if let Some(at) = at {
                self.at(
                    at,
                    format!("{path}.{key}"),
                    format!(
                        "timeout ({}s) is longer than interval ({}s)",
                        timeout.as_secs(),
                        interval.as_secs()
                    ),
                );
            }
        }
        let rise = self.positive(raw.rise.as_ref(), &format!("{path}.rise"), base.rise);
        let fall = self.positive(raw.fall.as_ref(), &format!("{path}.fall"), base.fall);

        let kind = match (&raw.check, proto) {
            (Some(c), Proto::Udp) if *c.get_ref() != CheckKind::None => {
                self.at(
                    c,
                    format!("{path}.check"),
                    "a UDP service can only have check = \"none\" (TCP and HTTP checks \
                     need a TCP server)"
                        .into(),
                );
                CheckKind::None
            }
            (Some(c), _) => *c.get_ref(),
            (None, Proto::Udp) => CheckKind::None,
            (None, Proto::Tcp) => match base.check {
                HealthCheck::None => CheckKind::None,
                HealthCheck::Tcp => CheckKind::Tcp,
                HealthCheck::Http { .. } => CheckKind::Http,
            },
        };
        if let Some(p) = &raw.http_path {
            let s = p.get_ref();
            if kind != CheckKind::Http {
                self.at(
                    p,
                    format!("{path}.http_path"),
                    "http_path is only used with check = \"http\"".into(),
                );
            } else if !s.starts_with('/') || s.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                self.at(
                    p,
                    format!("{path}.http_path"),
                    format!("`{s}` is not a request path (starts with `/`, no spaces)"),
                );
            }
        }
        if let Some(s) = &raw.http_status {
            if kind != CheckKind::Http {
                self.at(
                    s,
                    format!("{path}.http_status"),
                    "http_status is only used with check = \"http\"".into(),
                );
            } else if !(100..=599).contains(s.get_ref()) {
                self.at(
                    s,
                    format!("{path}.http_status"),
                    format!("{} is not an HTTP status (100 to 599)", s.get_ref()),
                );
            }
        }
        let (base_path, base_status) = match &base.check {
            HealthCheck::Http { path, status } => (path.as_str(), *status),
            _ => ("/", 200),
        };
        let check = match kind {
            CheckKind::None => HealthCheck::None,
            CheckKind::Tcp => HealthCheck::Tcp,
            CheckKind::Http => HealthCheck::Http {
                path: raw
                    .http_path
                    .as_ref()
                    .map_or(base_path.to_string(), |p| p.get_ref().clone()),
                status: raw
                    .http_status
                    .as_ref()
                    .map_or(base_status, |s| *s.get_ref()),
            },
        };
        HealthConfig {
            check,
            interval,
            timeout,
            rise,
            fall,
        }
    }

    fn address(&mut self, value: &Spanned<String>, path: &str, what: &str) -> Option<IpAddr> {
        let s = value.get_ref();
        let Ok(addr) = s.trim().parse::<IpAddr>() else {
            self.at(value, path, format!("`{s}` is not an IPv4 or IPv6 address"));
            return None;
        };
        let bad = if addr.is_unspecified() {
            Some("the unspecified address")
        } else if addr.is_multicast() {
            Some("a multicast address")
        } else if addr == IpAddr::V4(Ipv4Addr::BROADCAST) {
            Some("the broadcast address")
        } else if addr.is_loopback() {
            Some("a loopback address")
        } else {
            None
        };
        if let Some(bad) = bad {
            self.at(
                value,
                path,
                format!("{addr} is {bad}, not a {what} address"),
            );
            return None;
        }
        Some(addr)
    }

    fn service(
        &mut self,
        i: usize,
        raw: &Spanned<RawService>,
        defaults: &HealthConfig,
    ) -> Option<ServiceConfig> {
        let s = raw.get_ref();
        let path = format!("service[{i}]");
        let name = s.name.get_ref().clone();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            self.at(
                &s.name,
                format!("{path}.name"),
                format!("`{name}` is not a service name (letters, digits, `-`, `_`, `.`)"),
            );
        }
        let vip = self.address(&s.vip, &format!("{path}.vip"), "virtual");
        let port = *s.port.get_ref();
        if port == 0 {
            self.at(
                &s.port,
                format!("{path}.port"),
                "port 0 is not a service port".into(),
            );
        }
        let proto = match s.proto {
            ProtoName::Tcp => Proto::Tcp,
            ProtoName::Udp => Proto::Udp,
        };
        let scheduler = s.scheduler.unwrap_or(SchedulerKind::Wlc);
        let persistence = match &s.persistence {
            None => None,
            Some(p) if *p.get_ref() == 0 => {
                self.at(
                    p,
                    format!("{path}.persistence"),
                    "0 seconds: leave persistence out for none".into(),
                );
                None
            }
            Some(p) => Some(Duration::from_secs(u64::from(*p.get_ref()))),
        };
        let capacity = |c: &mut Self, v: &Option<Spanned<u32>>, key: &str, default: u32| match v {
            None => default,
            Some(v) if (1..=MAX_CHANNEL_CAPACITY).contains(v.get_ref()) => *v.get_ref(),
            Some(v) => {
                c.at(
                    v,
                    format!("{path}.{key}"),
                    format!(
                        "{} frames is out of range 1..={MAX_CHANNEL_CAPACITY}",
                        v.get_ref()
                    ),
                );
                default
            }
        };
        let channels = ChannelCapacities {
            syn: capacity(self, &s.syn_capacity, "syn_capacity", DEFAULT_SYN_CAPACITY),
            established: capacity(
                self,
                &s.established_capacity,
                "established_capacity",
                DEFAULT_ESTABLISHED_CAPACITY,
            ),
            reply: capacity(
                self,
                &s.reply_capacity,
                "reply_capacity",
                DEFAULT_REPLY_CAPACITY,
            ),
        };
        if let (ForwardMode::Dr, Some(r)) = (s.mode, &s.reply_capacity) {
            self.at(
                r,
                format!("{path}.reply_capacity"),
                "DR replies go from the servers to the clients, not through the director".into(),
            );
        }
        let health = self.health(
            &format!("{path}.health"),
            s.health.as_ref().unwrap_or(&RawHealth::default()),
            defaults,
            proto,
        );

        if s.servers.is_empty() {
            self.at(
                raw,
                path.clone(),
                format!("service \"{name}\" has no servers: add a [[service.server]]"),
            );
        }
        let mut servers = Vec::with_capacity(s.servers.len());
        let mut seen: HashMap<SocketAddr, usize> = HashMap::new();
        for (j, r) in s.servers.iter().enumerate() {
            let spath = format!("{path}.server[{j}]");
            let Some(server) = self.server(&spath, r.get_ref(), &name, vip, port, s.mode) else {
                continue;
            };
            let sa = server.socket_addr();
            let (line, _) = self.positions.at(r.get_ref().addr.span().start);
            if let Some(first) = seen.get(&sa) {
                self.at(
                    &r.get_ref().addr,
                    spath,
                    format!(
                        "service \"{name}\": server {sa} appears twice (first at line {first})"
                    ),
                );
            }
            seen.entry(sa).or_insert(line);
            servers.push(server);
        }

        let maglev_table_size = match (scheduler, &s.maglev_table_size) {
            (SchedulerKind::Mh, given) => {
                let n = u32::try_from(s.servers.len()).unwrap_or(u32::MAX);
                let needed = n.saturating_mul(MAGLEV_SLOTS_PER_SERVER);
                match given {
                    None => {
                        let m = next_prime(needed.max(DEFAULT_MAGLEV_TABLE_SIZE));
                        if m > MAX_MAGLEV_TABLE_SIZE {
                            self.at(
                                &s.name,
                                format!("{path}.server"),
                                format!(
                                    "{n} servers need a Maglev table over \
                                     {MAX_MAGLEV_TABLE_SIZE} slots"
                                ),
                            );
                        }
                        Some(m)
                    }
                    Some(m) => {
                        let size = *m.get_ref();
                        let key = format!("{path}.maglev_table_size");
                        if size > MAX_MAGLEV_TABLE_SIZE {
                            self.at(
                                m,
                                key,
                                format!("{size} is more than {MAX_MAGLEV_TABLE_SIZE} slots"),
                            );
                        } else if !is_prime(size) {
                            self.at(
                                m,
                                key,
                                format!(
                                    "{size} is not prime (Maglev needs a prime table size; \
                                     the next prime is {})",
                                    next_prime(size)
                                ),
                            );
                        } else if size < needed {
                            self.at(
                                m,
                                key,
                                format!(
                                    "{size} is too small for {n} servers: Maglev needs at \
                                     least {MAGLEV_SLOTS_PER_SERVER} slots per server (use \
                                     {} or more)",
                                    next_prime(needed)
                                ),
                            );
                        }
                        Some(size)
                    }
                }
            }
            (_, Some(m)) => {
                self.at(
                    m,
                    format!("{path}.maglev_table_size"),
                    format!("only used with scheduler = \"mh\" (this service has \"{scheduler}\")"),
                );
                None
            }
            (_, None) => None,
        };

        Some(ServiceConfig {
            name,
            vip: vip?,
            port,
            proto,
            scheduler,
            mode: s.mode,
            persistence,
            maglev_table_size,
            channels,
            health,
            servers,
        })
    }

    fn server(
        &mut self,
        path: &str,
        r: &RawServer,
        service: &str,
        vip: Option<IpAddr>,
        service_port: u16,
        mode: ForwardMode,
    ) -> Option<ServerConfig> {
        let addr = self.address(&r.addr, &format!("{path}.addr"), "real server");
        if let (Some(a), Some(v)) = (addr, vip) {
            if a.is_ipv4() != v.is_ipv4() {
                self.at(
                    &r.addr,
                    format!("{path}.addr"),
                    format!(
                        "service \"{service}\": server {a} is {} but the VIP {v} is {}",
                        family(a),
                        family(v)
                    ),
                );
            } else if a == v {
                self.at(
                    &r.addr,
                    format!("{path}.addr"),
                    format!("service \"{service}\": a real server cannot be the VIP {v}"),
                );
            }
        }
        let port = match &r.port {
            None => service_port,
            Some(p) => {
                let n = *p.get_ref();
                if n == 0 {
                    self.at(
                        p,
                        format!("{path}.port"),
                        "port 0 is not a server port".into(),
                    );
                } else if mode == ForwardMode::Dr && n != service_port {
                    self.at(
                        p,
                        format!("{path}.port"),
                        format!(
                            "service \"{service}\" is DR: server port {n} must equal the \
                             service port {service_port} (DR rewrites only the MAC)"
                        ),
                    );
                }
                n
            }
        };
        let weight = match &r.weight {
            None => 1,
            Some(w) if *w.get_ref() > MAX_WEIGHT => {
                self.at(
                    w,
                    format!("{path}.weight"),
                    format!("weight {} is out of range 0..={MAX_WEIGHT}", w.get_ref()),
                );
                1
            }
            Some(w) => *w.get_ref(),
        };
        let mac = match &r.mac {
            None => None,
            Some(m) => match m.get_ref().trim().parse::<EthernetAddress>() {
                Ok(mac) if mac.is_unicast() && mac != EthernetAddress([0; 6]) => Some(mac),
                Ok(mac) => {
                    self.at(
                        m,
                        format!("{path}.mac"),
                        format!("{mac} is not a unicast MAC"),
                    );
                    None
                }
                Err(()) => {
                    self.at(
                        m,
                        format!("{path}.mac"),
                        format!("`{}` is not a MAC (xx:xx:xx:xx:xx:xx)", m.get_ref()),
                    );
                    None
                }
            },
        };
        Some(ServerConfig {
            addr: addr?,
            port,
            weight,
            mac,
        })
    }
}

fn family(a: IpAddr) -> &'static str {
    if a.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

/// Trial division; sizes are at most 2^32, so at most 2^16 divisions.
pub(super) fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    if n.is_multiple_of(2) {
        return n == 2;
    }
    let n = u64::from(n);
    let mut d = 3u64;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 2;
    }
    true
}

/// The smallest prime at least `n` (saturating at the largest `u32` prime).
fn next_prime(n: u32) -> u32 {
    (n..=u32::MAX)
        .find(|&m| is_prime(m))
        .unwrap_or(4_294_967_291)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primes() {
        assert!(is_prime(2) && is_prime(65_537) && is_prime(4_294_967_291));
        assert!(!is_prime(0) && !is_prime(1) && !is_prime(65_536) && !is_prime(65_535));
        assert_eq!(next_prime(65_536), 65_537);
        assert_eq!(next_prime(u32::MAX), 4_294_967_291);
    }
}
