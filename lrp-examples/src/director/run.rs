//! `lrp-director run`: the director serving a configuration on a real interface.
//!
//! [`run`] puts the pieces together on one NIC:
//!
//! 1. **The NIC**: [`Nic::open`] on `client_iface` with the configured receive path and
//!    queue, in the calling thread's network namespace. Dropping it at the end detaches
//!    the XDP program.
//! 2. **The director's own stack**: an lrp [`Stack`] at `[director] address` (and
//!    `gateway`). Its host rule answers ARP and ICMP for the address and learns
//!    neighbours; the health checks connect from it. Servers whose `mac` is fixed in the
//!    configuration are static neighbours of it.
//! 3. **ARP for the VIPs**: one small stack per IPv4 VIP, with the director's prefix
//!    length, whose host rule answers ARP (and ping) for the VIP, so that clients on the
//!    link find the director and nobody's kernel has to hold the VIP. Traffic to the
//!    VIP's service ports goes to the services' channels first (their rules come before
//!    host rules); other ports of the VIP are answered as closed.
//! 4. **Real servers' MACs**: a server without `mac` is resolved by ARP from the
//!    director's stack — a TCP connection to its port is attempted, which makes the stack
//!    ask — within [`RunOptions::resolve_timeout`]. A server still unresolved then is
//!    left out of its service, reported, and added as soon as its MAC is learned (the
//!    health checks keep connecting to it, so the stack keeps asking).
//! 5. **The engine**: a [`Director`] with one [`Service`](super::forward::Service) per
//!    configured service ([`ServiceSpec::from_config`]), its table sized by `[table]`.
//! 6. **Health**: a [`Checker`] on the director's stack, targets from the
//!    configuration; a server going down gets weight 0 (no new flows; its established
//!    flows continue), a server coming back its configured weight. Each transition is
//!    printed.
//! 7. **The loop**: the NIC's poll step, [`Director::poll`] (which also expires the
//!    connection tables), and, when a round found nothing, a wait of at most
//!    [`IDLE_WAIT`] on a service's channel, so an idle director sleeps in `poll(2)`
//!    instead of spinning. Every [`RunOptions::stats_interval`] one line per service
//!    ([`stats_line`]) goes to stdout. It ends when the stop flag is set (SIGINT or
//!    SIGTERM, see [`stop_on_signals`]) or after [`RunOptions::duration`].
//!
//! 8. **The control socket**: a [`ControlSocket`] on `[director] control_socket` (or
//!    [`RunOptions::control_socket`]); the loop applies its requests between two poll
//!    rounds: `stats`, `set-weight`, `add-server`,
//!    `remove-server`. A weight set there replaces the configured one for the health
//!    checks too (a server that is down keeps weight 0 until it is up again); a server
//!    added there that is not in the configuration is not health-checked.
//!
//! Limits: one-armed only (`server_iface` is refused), IPv4 only (the lrp stack is
//! IPv4).

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use lrp_net::stack::{Stack, StackConfig};
use lrp_net::{Nic, NicConfig};
use smoltcp::wire::EthernetAddress;

use super::config::{Config, ServiceConfig, TableConfig, TableLimit, MAX_WEIGHT};
use super::conntrack::{ConnTableConfig, Timeouts};
use super::control::{parse_server, ControlSocket, Request};
use super::forward::{Director, ForwardError, ServerSpec, ServiceSpec, ServiceStats};
use super::health::{Checker, CheckerOptions, HealthEvent, Target, Transition};

/// Frames taken from each channel per service per round.
pub const BUDGET: usize = 256;
/// The longest an idle round sleeps before polling again.
pub const IDLE_WAIT: Duration = Duration::from_millis(2);
/// Frames of each VIP stack's host channel (ARP and ping only).
const VIP_HOST_CAPACITY: usize = 64;

/// How [`run`] runs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Time between two statistics lines per service.
    pub stats_interval: Duration,
    /// Stop after this long (`None`: until the stop flag is set).
    pub duration: Option<Duration>,
    /// How long MACs of real servers are looked for by ARP before the services start.
    pub resolve_timeout: Duration,
    /// The control socket's path instead of the configuration's `control_socket`.
    pub control_socket: Option<PathBuf>,
}

impl Default for RunOptions {
    fn default() -> RunOptions {
        RunOptions {
            stats_interval: Duration::from_secs(1),
            duration: None,
            resolve_timeout: Duration::from_secs(3),
            control_socket: None,
        }
    }
}

/// Why [`run`] could not run. The first three are problems of the configuration for
/// `run` (the binary exits with status 2), the others of the system (status 1).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// `[director] address` is missing.
    #[error("director.address is required to run (the director's own IPv4 address and prefix on client_iface, e.g. \"10.0.0.1/24\")")]
    NoAddress,
    /// `server_iface` is set.
    #[error("director.server_iface: two-armed directors are not implemented yet; leave it out (one-armed)")]
    TwoArmed,
    /// A service is IPv6.
    #[error("service \"{0}\": IPv6 services cannot run yet (the lrp stack is IPv4)")]
    Ipv6Service(String),
    /// The NIC or a stack could not be opened.
    #[error("{what}: {source}")]
    Net {
        /// What was being opened.
        what: String,
        /// Why it failed.
        source: lrp_net::Error,
    },
    /// The engine refused a service.
    #[error("service \"{service}\": {source}")]
    Forward {
        /// The service.
        service: String,
        /// Why.
        source: ForwardError,
    },
    /// The control socket could not be opened.
    #[error("control socket {path}: {source}")]
    Control {
        /// Its path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The health checker's threads could not start, or stdout failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

impl RunError {
    /// Whether the configuration, not the system, is at fault.
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            RunError::NoAddress | RunError::TwoArmed | RunError::Ipv6Service(_)
        )
    }
}

/// A health-checked server, in [`Target::from_config`] order.
#[derive(Debug)]
struct Checked {
    service: usize,
    addr: SocketAddr,
    weight: u32,
    /// Whether the checks say it is up.
    up: bool,
    /// Whether it is in its service (its MAC is known).
    added: bool,
    /// Whether it was removed over the control socket (and not added back).
    removed: bool,
}

/// A stop flag that SIGINT and SIGTERM set (and nothing else), for [`run`]'s `stop`.
/// Registered with `signal-hook`, which keeps the handler async-signal-safe (an atomic
/// store). If registration fails the flag is still returned: `--seconds` then bounds the
/// run, and the error is reported on stderr.
pub fn stop_on_signals() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, Arc::clone(&stop)) {
            eprintln!("lrp-director: cannot handle signal {sig}: {e}");
        }
    }
    stop
}

/// The connection-table configuration of `[table]`.
pub fn table_config(table: &TableConfig) -> ConnTableConfig {
    let config = match table.limit {
        TableLimit::Entries(n) => ConnTableConfig::new(usize::try_from(n).unwrap_or(usize::MAX)),
        TableLimit::Bytes(b) => {
            ConnTableConfig::with_memory_cap(usize::try_from(b).unwrap_or(usize::MAX))
        }
    };
    let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    let t = &table.timeouts;
    config
        .max_half_open(usize::try_from(table.max_half_open).unwrap_or(usize::MAX))
        .timeouts(Timeouts {
            syn_recv: ns(t.syn_recv),
            established: ns(t.established),
            fin_wait: ns(t.fin_wait),
            time_wait: ns(t.time_wait),
            close: ns(t.close),
            udp: ns(t.udp),
        })
}

/// One line of a service's statistics: connections, counters, drops, and per server
/// its weight, active / inactive connections and packets forwarded to it.
pub fn stats_line(s: &ServiceStats) -> String {
    let c = &s.counters;
    let mut line = format!(
        "stats {} {}/{} {}: conns {} new {} to-servers {} to-clients {} drops {} cpu {:.0}us |",
        s.name,
        s.vip,
        s.proto,
        s.mode,
        s.connections,
        c.new_connections,
        c.to_servers_packets,
        c.to_clients_packets,
        c.total_drops(),
        s.cpu_ns as f64 / 1e3,
    );
    for r in &s.servers {
        let _ = write!(
            line,
            " {} w{} a{} i{} p{}",
            r.addr, r.weight, r.active, r.inactive, r.packets
        );
    }
    line
}

/// Run the director of `config` until `stop` is set or `options.duration` passes;
/// returns the services' final statistics. Must be called in the network namespace of
/// `client_iface`. See the [module docs](self) for what it does.
pub fn run(
    config: &Config,
    options: &RunOptions,
    stop: &AtomicBool,
) -> Result<Vec<ServiceStats>, RunError> {
    let d = &config.director;
    let address = d.address.ok_or(RunError::NoAddress)?;
    if d.server_iface.is_some() {
        return Err(RunError::TwoArmed);
    }
    if let Some(s) = config.services.iter().find(|s| !s.vip.is_ipv4()) {
        return Err(RunError::Ipv6Service(s.name.clone()));
    }
    let net = |what: String| move |source| RunError::Net { what, source };
    let nic = Nic::open(
        &d.client_iface,
        NicConfig::default().mode(d.mode).queue(d.queue),
    )
    .map_err(net(format!("opening {} queue {}", d.client_iface, d.queue)))?;

    let mut stack_config = StackConfig::new(address.ip, address.prefix_len);
    if let Some(gw) = d.gateway {
        stack_config = stack_config.gateway(gw);
    }
    for server in config.services.iter().flat_map(|s| &s.servers) {
        if let (IpAddr::V4(ip), Some(mac)) = (server.addr, server.mac) {
            stack_config = stack_config.neighbor(ip, mac);
        }
    }
    let stack = Stack::new(nic.clone(), stack_config)
        .map_err(net(format!("the director's stack at {address}")))?;
    let vips: BTreeSet<Ipv4Addr> = config
        .services
        .iter()
        .filter_map(|s| match s.vip {
            IpAddr::V4(v) => Some(v),
            IpAddr::V6(_) => None,
        })
        .collect();
    let mut vip_stacks = Vec::with_capacity(vips.len());
    for vip in vips {
        let cfg = StackConfig::new(vip, address.prefix_len).host_capacity(VIP_HOST_CAPACITY);
        vip_stacks.push(Stack::new(nic.clone(), cfg).map_err(net(format!("the VIP {vip}")))?);
    }

    let mut macs = resolve(&stack, config, options.resolve_timeout);
    let mut director = Director::new(nic.clone());
    let table = table_config(&config.table);
    let mut checked = Vec::new();
    for (i, service) in config.services.iter().enumerate() {
        let mut known = service.clone();
        known.servers.retain(|s| macs.contains_key(&s.addr));
        for s in &mut known.servers {
            s.mac = macs.get(&s.addr).copied();
        }
        let name = service.name.clone();
        let forward = |source| RunError::Forward {
            service: name.clone(),
            source,
        };
        let spec = ServiceSpec::from_config(&known, table).map_err(forward)?;
        director.add_service(spec).map_err(forward)?;
        for s in &service.servers {
            let added = macs.contains_key(&s.addr);
            if !added {
                println!(
                    "lrp-director: {}: server {} has no MAC yet (no ARP reply): left out until it answers",
                    service.name,
                    s.socket_addr()
                );
            }
            checked.push(Checked {
                service: i,
                addr: s.socket_addr(),
                weight: s.weight,
                up: true,
                added,
                removed: false,
            });
        }
    }
    let control_path = options
        .control_socket
        .clone()
        .unwrap_or_else(|| d.control_socket.clone());
    let control = ControlSocket::bind(&control_path).map_err(|source| RunError::Control {
        path: control_path.clone(),
        source,
    })?;
    let (events_tx, events) = mpsc::channel();
    let checker = Checker::new(
        stack.clone(),
        Target::from_config(config),
        CheckerOptions {
            events: Some(events_tx),
            ..CheckerOptions::default()
        },
    )?;
    eprintln!(
        "lrp-director: running on {} ({}, queue {}) at {address}: {} services, {} real servers, control socket {}; ready",
        d.client_iface,
        d.mode,
        d.queue,
        config.services.len(),
        config.server_count(),
        control_path.display()
    );

    let start = Instant::now();
    let deadline = options.duration.map(|t| start + t);
    let mut next_stats = start + options.stats_interval;
    let mut waiter = 0usize;
    while !stop.load(Ordering::Relaxed) && deadline.is_none_or(|t| Instant::now() < t) {
        nic.poll_rx(BUDGET);
        let now_ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let report = director.poll(now_ns, BUDGET);
        if report.received == 0 {
            let n = director.services().len();
            match director.services().nth(waiter % n.max(1)) {
                // An error is an interrupted `poll(2)` (a signal): the loop looks at
                // the stop flag next.
                Some(service) => drop(service.wait(Some(IDLE_WAIT))),
                None => std::thread::sleep(IDLE_WAIT),
            }
            waiter = waiter.wrapping_add(1);
        }
        while let Ok(event) = events.try_recv() {
            apply(&mut director, config, &mut checked, &event);
        }
        while let Some(pending) = control.try_recv() {
            learn(&stack, config, &mut macs);
            let result = handle_request(
                &mut director,
                config,
                &mut checked,
                &stack,
                &macs,
                &pending.request,
            );
            pending.answer(result);
        }
        if Instant::now() >= next_stats {
            next_stats += options.stats_interval;
            add_resolved(&mut director, config, &mut checked, &stack, &mut macs);
            print_stats(&director)?;
        }
    }
    drop(control);
    drop(checker);
    print_stats(&director)?;
    eprintln!("lrp-director: stopped");
    Ok(director.stats())
}

fn print_stats(director: &Director) -> io::Result<()> {
    let mut out = io::stdout().lock();
    for s in director.services() {
        writeln!(out, "{}", stats_line(&s.stats()))?;
    }
    out.flush()
}

/// Apply a health transition to the engine: down → weight 0, up → configured weight.
fn apply(director: &mut Director, config: &Config, checked: &mut [Checked], e: &HealthEvent) {
    let Some(c) = checked.get_mut(e.server) else {
        return;
    };
    let service = &config.services[c.service];
    c.up = e.transition == Transition::Up;
    let weight = if c.up { c.weight } else { 0 };
    println!(
        "health {} {}: {} ({:?}), weight {weight}",
        service.name,
        c.addr,
        if c.up { "up" } else { "down" },
        e.result
    );
    if c.added && !c.removed {
        if let Some(s) = director.service_mut(&service.name) {
            if let Err(err) = s.set_weight(c.addr, weight) {
                println!("lrp-director: {}: {}: {err}", service.name, c.addr);
            }
        }
    }
}

/// Add the servers whose MAC the stack has learned since the start.
fn add_resolved(
    director: &mut Director,
    config: &Config,
    checked: &mut [Checked],
    stack: &Stack,
    macs: &mut HashMap<IpAddr, EthernetAddress>,
) {
    if checked.iter().all(|c| c.added) {
        return;
    }
    learn(stack, config, macs);
    for c in checked.iter_mut().filter(|c| !c.added && !c.removed) {
        let Some(&mac) = macs.get(&c.addr.ip()) else {
            continue;
        };
        let name = &config.services[c.service].name;
        let weight = if c.up { c.weight } else { 0 };
        if let Some(s) = director.service_mut(name) {
            match s.add_server(ServerSpec::new(c.addr, mac).weight(weight)) {
                Ok(_) => println!("lrp-director: {name}: server {} at {mac} added", c.addr),
                Err(err) => println!("lrp-director: {name}: server {}: {err}", c.addr),
            }
        }
        c.added = true;
    }
}

/// The servers' MACs: the configured ones, then what the stack learns by ARP within
/// `timeout` while a TCP connection to each unresolved server is attempted.
fn resolve(stack: &Stack, config: &Config, timeout: Duration) -> HashMap<IpAddr, EthernetAddress> {
    let mut macs = HashMap::new();
    learn(stack, config, &mut macs);
    let missing: Vec<SocketAddr> = servers(config)
        .filter(|(_, s)| !macs.contains_key(&s.addr))
        .map(|(_, s)| s.socket_addr())
        .collect();
    if missing.is_empty() {
        return macs;
    }
    // The attempts run in the background: the answer we want is the ARP reply, not the
    // connection (which is dropped, or fails, whatever the server does).
    for addr in missing.iter().copied() {
        let stack = stack.clone();
        std::thread::spawn(move || drop(stack.tcp_connect_timeout(addr, timeout)));
    }
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        learn(stack, config, &mut macs);
        if missing.iter().all(|a| macs.contains_key(&a.ip())) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    macs
}

/// Every configured server with its service.
fn servers(
    config: &Config,
) -> impl Iterator<Item = (&ServiceConfig, &super::config::ServerConfig)> {
    config
        .services
        .iter()
        .flat_map(|svc| svc.servers.iter().map(move |s| (svc, s)))
}

/// Fill `macs` from the configuration's `mac`s and the stack's neighbour table.
fn learn(stack: &Stack, config: &Config, macs: &mut HashMap<IpAddr, EthernetAddress>) {
    let neighbors = stack.neighbors();
    for (_, s) in servers(config) {
        let mac = s.mac.or_else(|| {
            neighbors
                .iter()
                .find(|(ip, _)| IpAddr::V4(*ip) == s.addr)
                .map(|&(_, mac)| mac)
        });
        if let Some(mac) = mac {
            macs.insert(s.addr, mac);
        }
    }
}

/// Apply a control request to the engine (see [`super::control`]); the response's
/// fields, or an error naming what was wrong.
fn handle_request(
    director: &mut Director,
    config: &Config,
    checked: &mut [Checked],
    stack: &Stack,
    macs: &HashMap<IpAddr, EthernetAddress>,
    request: &Request,
) -> Result<serde_json::Value, String> {
    use serde_json::{json, Value};
    let check_service = |director: &mut Director, name: &str| -> Result<usize, String> {
        director
            .services()
            .position(|s| s.name() == name)
            .ok_or_else(|| format!("unknown service {name:?}"))
    };
    let weight_of = |w: u64| -> Result<u32, String> {
        u32::try_from(w)
            .ok()
            .filter(|w| *w <= MAX_WEIGHT)
            .ok_or_else(|| format!("bad weight {w}: out of range 0..={MAX_WEIGHT}"))
    };
    let checked_of = |checked: &mut [Checked], service: &str, addr: SocketAddr| {
        let i = config.services.iter().position(|s| s.name == service);
        checked
            .iter_mut()
            .position(|c| Some(c.service) == i && c.addr == addr)
    };
    match request {
        Request::Stats { service } => {
            if let Some(name) = service {
                check_service(director, name)?;
            }
            let mut services = Vec::new();
            for s in director.services() {
                if service.as_ref().is_some_and(|n| n != s.name()) {
                    continue;
                }
                let mut v = serde_json::to_value(s.stats()).map_err(|e| e.to_string())?;
                let scheduler = config
                    .services
                    .iter()
                    .find(|c| c.name == s.name())
                    .map_or("?", |c| c.scheduler.name());
                if let Value::Object(map) = &mut v {
                    map.insert("scheduler".into(), scheduler.into());
                }
                services.push(v);
            }
            Ok(json!({ "services": services }))
        }
        Request::SetWeight {
            service,
            server,
            weight,
        } => {
            let _ = check_service(director, service)?;
            let weight = weight_of(*weight)?;
            let s = director.service_mut(service).ok_or("unknown service")?;
            let addr = parse_server(server, s.vip().port())?;
            if s.server_id(addr).is_none() {
                return Err(format!("service {service:?} has no real server {addr}"));
            }
            // A server that the health checks say is down keeps weight 0 until it is up.
            let c = checked_of(checked, service, addr);
            let effective = match c.map(|i| &mut checked[i]) {
                Some(c) => {
                    c.weight = weight;
                    if c.up {
                        weight
                    } else {
                        0
                    }
                }
                None => weight,
            };
            s.set_weight(addr, effective).map_err(|e| e.to_string())?;
            Ok(json!({ "service": service, "server": addr.to_string(), "weight": effective }))
        }
        Request::AddServer {
            service,
            addr,
            port,
            weight,
            mac,
        } => {
            let _ = check_service(director, service)?;
            let weight = weight_of(weight.unwrap_or(1))?;
            let mac = match mac {
                Some(m) => Some(
                    m.trim()
                        .parse::<EthernetAddress>()
                        .map_err(|()| format!("bad MAC {m:?} (expected xx:xx:xx:xx:xx:xx)"))?,
                ),
                None => macs.get(addr).copied().or_else(|| {
                    stack
                        .neighbors()
                        .iter()
                        .find(|(ip, _)| IpAddr::V4(*ip) == *addr)
                        .map(|&(_, mac)| mac)
                }),
            };
            let s = director.service_mut(service).ok_or("unknown service")?;
            let addr = SocketAddr::new(*addr, port.unwrap_or(s.vip().port()));
            let Some(mac) = mac else {
                return Err(format!(
                    "no MAC known for {addr} (the director has not seen it answer ARP): give \"mac\""
                ));
            };
            s.add_server(ServerSpec::new(addr, mac).weight(weight))
                .map_err(|e| e.to_string())?;
            if let Some(i) = checked_of(checked, service, addr) {
                let c = &mut checked[i];
                (c.added, c.removed, c.weight) = (true, false, weight);
                if !c.up {
                    let _ = s.set_weight(addr, 0);
                }
            }
            println!("lrp-director: {service}: server {addr} at {mac} added (control)");
            Ok(json!({ "service": service, "server": addr.to_string(), "weight": weight }))
        }
        Request::RemoveServer {
            service,
            addr,
            port,
        } => {
            let _ = check_service(director, service)?;
            let s = director.service_mut(service).ok_or("unknown service")?;
            let addr = SocketAddr::new(*addr, port.unwrap_or(s.vip().port()));
            s.remove_server(addr)
                .map_err(|e| format!("service {service:?}: {e}"))?;
            if let Some(i) = checked_of(checked, service, addr) {
                checked[i].removed = true;
            }
            println!("lrp-director: {service}: server {addr} removed (control)");
            Ok(json!({ "service": service, "server": addr.to_string() }))
        }
    }
}
