//! The director's forwarding engine: NAT and DR on NI channels.
//!
//! A [`Service`] is one virtual service (VIP, port, protocol) on a [`Nic`]. It owns
//! its NI channels, each chosen by a demux rule, each with its own capacity, early
//! discard and account:
//!
//! | channel | rule | what it carries |
//! |---|---|---|
//! | SYN (TCP only) | `Rule::listener(tcp, vip, port).syn_only()` | connection requests (SYN without ACK) |
//! | established | `Rule::listener(proto, vip, port)` | every other client frame of the service (UDP: all of them) |
//! | reply (NAT only) | one `Rule::source(proto, server addr, server port)` per real server | the servers' replies, addressed to clients |
//!
//! so a SYN flood against one service fills and is discarded at that service's SYN
//! channel (at its closed gate in NI-LRP, by the software demux in SOFT-LRP) while its
//! established flows, and every other service, keep flowing. Nothing else is claimed:
//! frames not for a VIP (ARP, ICMP, management traffic, non-first IP fragments) take the
//! NIC's default action — passed to the host kernel — and no host rule is opened for a
//! VIP. (Answering ARP for the VIP is the host's business, e.g. an address on `lo` or
//! the interface; ICMP errors about VIP flows are not forwarded.)
//!
//! # The path of a frame
//!
//! [`Service::poll`] takes frames from the channels in batches (into one reused `Vec`,
//! no allocation per batch), classifies each ([`lrp_core::flow::classify`]), verifies
//! its checksums ([`ServiceSpec::verify_checksums`]) and:
//!
//! * **client → VIP**: the connection table ([`ConnTable`]) is consulted with the
//!   client's 5-tuple (TCP: [`ConnTable::on_segment`], which also moves the TCP state;
//!   UDP: [`ConnTable::lookup`]). A new flow (a SYN, or a UDP datagram without an entry)
//!   gets a server from the scheduler ([`Scheduler::pick`], or
//!   [`Scheduler::pick_persistent`] with persistence) and an entry; if the table refuses
//!   it (full, half-open bound) the flow is served statelessly by
//!   [`Scheduler::consistent_pick`]. A mid-flow TCP segment without an entry (director
//!   restart, expired entry) also goes where [`Scheduler::consistent_pick`] says and is
//!   re-entered as ESTABLISHED (not for a RST). Then the TTL is decremented (a frame whose
//!   TTL reaches 0 is dropped) and the frame is rewritten in place — **NAT**: destination
//!   VIP:port → server:port ([`nat::set_endpoint`], RFC 1624 incremental checksums), MACs
//!   → server's / ours; **DR**: only the MACs (destination: the server's, source: the
//!   NIC's); the IP header changes only by its TTL and checksum — and transmitted on the
//!   channel it came from, zero copy.
//! * **server → client (NAT)**: the reply's key is turned into the client's key (the
//!   client endpoint is the reply's destination, and the service's VIP:port is fixed),
//!   so no reverse index is needed and the 64-byte table entry is unchanged. The entry
//!   must exist and name the replying server; otherwise the reply is dropped and counted
//!   ([`DropCause::NoConnection`]). The source is rewritten server → VIP:port, the
//!   destination MAC set to the client's next hop, the TCP state advanced
//!   ([`Direction::FromServer`]).
//!
//! # The client's next hop
//!
//! The director learns where to send a client's replies from the client's own frames:
//! the source MAC of its last frame (on a one-armed LAN that is the client itself or the
//! router in front of it). It is kept **per client address**, not per connection (the
//! connection table's entry stays one cache line), in a bounded map of two generations:
//! when the current generation holds [`ServiceSpec::max_clients`] addresses it becomes
//! the previous one and a new generation starts, so active clients (who refresh their
//! entry with every frame) are always found, memory stays under `2 × max_clients`
//! entries, and nothing is ever scanned. A client silent for two generations is
//! forgotten; a reply to it is dropped ([`DropCause::UnknownClient`]) until it sends
//! again. The map is keyed with a random seed (client addresses are attacker-chosen).
//!
//! # Real servers
//!
//! Their MACs are static, from the [`ServerSpec`] (the configuration's `mac`): resolving
//! them by ARP or neighbour discovery is not done here. Servers change at run time:
//! [`Service::add_server`], [`Service::set_weight`] (0 drains: no new flows, existing
//! ones continue) and [`Service::remove_server`]. A removed server's table entries are
//! **left to expire**, not scanned for; the next client packet of such a flow finds
//! that its server is gone, removes the entry and is treated as a table miss (a SYN or
//! UDP datagram is scheduled anew, a mid-flow TCP segment goes by consistent hashing —
//! the new server will reset it), and its replies, should any still arrive, are
//! dropped as [`DropCause::NoConnection`] (its source rule is gone with it, so they
//! usually go to the kernel instead). A real server's endpoint can belong to one NAT
//! service per NIC (the source rule is owned by one channel).
//!
//! # Accounting
//!
//! The engine's work on a batch — classification, checksum verification, table,
//! rewrite, transmission — is measured on the polling thread's CPU clock
//! ([`lrp_net::stack::thread_cpu_ns`]) and charged to the account of the channel the
//! batch came from, so [`ServiceStats::cpu_ns`] is the CPU each service costs.
//!
//! Time (`now_ns`) is passed in by the caller, on its monotonic clock, as for the
//! connection table.

mod clients;
mod spec;
mod stats;

use std::net::{IpAddr, SocketAddr};

use lrp_core::flow::{classify, Classification, FlowKey, Offsets, Proto, TcpFlags};
use lrp_core::wire::nat::{self, Side};
use lrp_core::wire::verify;
use lrp_net::stack::thread_cpu_ns;
use lrp_net::{Channel, Frame, Nic, Rule};
use rustc_hash::FxHashMap;
use smoltcp::wire::EthernetAddress;

use super::config::ForwardMode;
use super::conntrack::{ConnState, ConnTable, Direction, InsertError};
use super::scheduler::{Persistence, RealServer, Scheduler, SchedulerError, ServerId};
use clients::ClientMacs;
pub use spec::{ForwardError, ServerSpec, ServiceSpec, DEFAULT_MAX_CLIENTS, DEFAULT_TABLE_ENTRIES};
pub use stats::{DropCause, ForwardCounters, PollReport, ServerStats, ServiceStats};

/// Frames taken from a channel at a time.
const BATCH: usize = 64;
/// Connection-table and persistence entries reclaimed per poll, at most.
const EXPIRE_BUDGET: usize = 256;

/// A real server as the engine keeps it.
#[derive(Debug, Clone, Copy)]
struct ServerEntry {
    addr: SocketAddr,
    mac: EthernetAddress,
    packets: u64,
    bytes: u64,
    reply_packets: u64,
    reply_bytes: u64,
}

/// Which way a forwarded frame went, to count it once it is on the TX ring.
#[derive(Debug, Clone, Copy)]
enum Sent {
    ToServer(ServerId),
    ToClient(ServerId),
}

/// Which channel a batch came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    /// SYN or established channel: client → VIP.
    Client,
    /// Reply channel: server → client.
    Reply,
}

/// The per-service state that is not a channel: scheduler, table, servers, counters.
#[derive(Debug)]
struct Engine {
    vip: IpAddr,
    port: u16,
    proto: Proto,
    mode: ForwardMode,
    nic_mac: EthernetAddress,
    verify: bool,
    scheduler: Scheduler,
    persistence: Option<Persistence>,
    table: ConnTable,
    servers: FxHashMap<ServerId, ServerEntry>,
    by_addr: FxHashMap<SocketAddr, ServerId>,
    clients: ClientMacs,
    counters: ForwardCounters,
}

fn set_macs(frame: &mut [u8], dst: EthernetAddress, src: EthernetAddress) {
    // classify() returned Flow: the frame has an Ethernet header.
    frame[0..6].copy_from_slice(dst.as_bytes());
    frame[6..12].copy_from_slice(src.as_bytes());
}

impl Engine {
    /// Process one frame in place; `Ok` means transmit it.
    fn handle(&mut self, frame: &mut [u8], path: Path, now: u64) -> Result<Sent, DropCause> {
        let class = classify(frame);
        let Classification::Flow {
            key,
            flags,
            offsets,
        } = class
        else {
            return Err(DropCause::Malformed);
        };
        if key.proto != self.proto || (self.verify && verify(frame, &class).is_err()) {
            return Err(DropCause::Malformed);
        }
        match path {
            Path::Client => self.client_frame(frame, &key, flags, &offsets, now),
            Path::Reply => self.server_frame(frame, &key, flags, &offsets, now),
        }
    }

    fn decrement_ttl(frame: &mut [u8], offsets: &Offsets) -> Result<(), DropCause> {
        match nat::decrement_ttl(frame, offsets) {
            Ok(0) => Err(DropCause::TtlExpired),
            Ok(_) => Ok(()),
            Err(_) => Err(DropCause::Malformed),
        }
    }

    fn client_frame(
        &mut self,
        frame: &mut [u8],
        key: &FlowKey,
        flags: TcpFlags,
        offsets: &Offsets,
        now: u64,
    ) -> Result<Sent, DropCause> {
        if key.dst != self.vip || key.dport != self.port {
            return Err(DropCause::Malformed);
        }
        Self::decrement_ttl(frame, offsets)?;
        let id = self.route(key, flags, now)?;
        let server = self.servers[&id];
        if self.mode == ForwardMode::Nat {
            nat::set_endpoint(frame, offsets, key.proto, Side::Dst, server.addr)
                .map_err(|_| DropCause::Malformed)?;
            let mut mac = [0u8; 6];
            mac.copy_from_slice(&frame[6..12]);
            self.clients.learn(key.src, EthernetAddress(mac));
        }
        set_macs(frame, server.mac, self.nic_mac);
        Ok(Sent::ToServer(id))
    }

    /// The server of a client frame's flow: its table entry, or a new choice.
    fn route(&mut self, key: &FlowKey, flags: TcpFlags, now: u64) -> Result<ServerId, DropCause> {
        let tcp = key.proto == Proto::Tcp;
        let hit = if tcp {
            self.table
                .on_segment(key, flags, Direction::FromClient, now)
        } else {
            self.table.lookup(key, now)
        };
        if let Some(conn) = hit {
            if self.servers.contains_key(&conn.server) {
                return Ok(conn.server);
            }
            // Its server was removed: forget the entry, treat the frame as a miss.
            self.table.remove(key);
        }
        if !tcp || flags.is_syn_only() {
            let picked = match &mut self.persistence {
                Some(p) => self.scheduler.pick_persistent(p, key, &self.table, now),
                None => self.scheduler.pick(key, &self.table),
            }
            .ok_or(DropCause::NoServer)?;
            self.counters.new_connections += 1;
            let state = if tcp {
                ConnState::SynRecv
            } else {
                ConnState::Udp
            };
            return match self.table.insert(*key, picked, state, now) {
                Ok(_) | Err(InsertError::Exists) => Ok(picked),
                Err(InsertError::Full | InsertError::HalfOpenFull) => {
                    self.counters.untracked += 1;
                    self.scheduler
                        .consistent_pick(key)
                        .ok_or(DropCause::NoServer)
                }
            };
        }
        self.counters.table_misses += 1;
        let id = self
            .scheduler
            .consistent_pick(key)
            .ok_or(DropCause::NoServer)?;
        if flags.0 & TcpFlags::RST == 0 {
            // Refused when full: the flow stays stateless, consistent hashing keeps it.
            let _ = self.table.insert(*key, id, ConnState::Established, now);
        }
        Ok(id)
    }

    fn server_frame(
        &mut self,
        frame: &mut [u8],
        key: &FlowKey,
        flags: TcpFlags,
        offsets: &Offsets,
        now: u64,
    ) -> Result<Sent, DropCause> {
        let from = SocketAddr::new(key.src, key.sport);
        let id = *self.by_addr.get(&from).ok_or(DropCause::NoConnection)?;
        let client_key = FlowKey {
            proto: key.proto,
            src: key.dst,
            sport: key.dport,
            dst: self.vip,
            dport: self.port,
        };
        match self.table.get(&client_key, now) {
            Some(conn) if conn.server == id => {}
            _ => return Err(DropCause::NoConnection),
        }
        let mac = self.clients.get(key.dst).ok_or(DropCause::UnknownClient)?;
        Self::decrement_ttl(frame, offsets)?;
        nat::set_endpoint(
            frame,
            offsets,
            key.proto,
            Side::Src,
            SocketAddr::new(self.vip, self.port),
        )
        .map_err(|_| DropCause::Malformed)?;
        if key.proto == Proto::Tcp {
            self.table
                .on_segment(&client_key, flags, Direction::FromServer, now);
        } else {
            self.table.lookup(&client_key, now);
        }
        set_macs(frame, mac, self.nic_mac);
        Ok(Sent::ToClient(id))
    }

    fn count_sent(&mut self, sent: Sent, len: usize) {
        let len = len as u64;
        let c = &mut self.counters;
        match sent {
            Sent::ToServer(id) => {
                c.to_servers_packets += 1;
                c.to_servers_bytes += len;
                if let Some(s) = self.servers.get_mut(&id) {
                    s.packets += 1;
                    s.bytes += len;
                }
            }
            Sent::ToClient(id) => {
                c.to_clients_packets += 1;
                c.to_clients_bytes += len;
                if let Some(s) = self.servers.get_mut(&id) {
                    s.reply_packets += 1;
                    s.reply_bytes += len;
                }
            }
        }
    }
}

/// One virtual service on a NIC: its channels, scheduler, connection table and counters.
/// See the [module docs](self) for what it does with a frame.
#[derive(Debug)]
pub struct Service {
    name: String,
    nic: Nic,
    syn: Option<Channel>,
    established: Channel,
    reply: Option<Channel>,
    reply_capacity: usize,
    engine: Engine,
    batch: Vec<Frame>,
}

impl Service {
    /// Open the service's channels on `nic` and add its servers. Fails if a channel
    /// cannot be opened (a rule already owned by another channel, no NI-LRP slot left),
    /// if the scheduler refuses its configuration or a server, or if a server is of the
    /// wrong address family or (DR) port.
    pub fn open(nic: &Nic, spec: ServiceSpec) -> Result<Service, ForwardError> {
        let caps = spec.channels;
        if caps.syn == 0 || caps.established == 0 || caps.reply == 0 {
            return Err(ForwardError::ZeroCapacity);
        }
        let scheduler = Scheduler::new(spec.scheduler)?;
        let syn = match spec.proto {
            Proto::Tcp => Some(nic.channel(
                Rule::listener(Proto::Tcp, spec.vip, spec.port).syn_only(),
                caps.syn as usize,
            )?),
            Proto::Udp => None,
        };
        let established = nic.channel(
            Rule::listener(spec.proto, spec.vip, spec.port),
            caps.established as usize,
        )?;
        let mut service = Service {
            name: spec.name,
            nic: nic.clone(),
            syn,
            established,
            reply: None,
            reply_capacity: caps.reply as usize,
            engine: Engine {
                vip: spec.vip,
                port: spec.port,
                proto: spec.proto,
                mode: spec.mode,
                nic_mac: nic.mac(),
                verify: spec.verify_checksums,
                scheduler,
                persistence: spec
                    .persistence
                    .map(|(timeout, max)| Persistence::new(timeout, max)),
                table: ConnTable::new(spec.table),
                servers: FxHashMap::default(),
                by_addr: FxHashMap::default(),
                clients: ClientMacs::new(spec.max_clients),
                counters: ForwardCounters::default(),
            },
            batch: Vec::with_capacity(BATCH),
        };
        for server in spec.servers {
            service.add_server(server)?;
        }
        Ok(service)
    }

    /// The service's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The VIP and port.
    pub fn vip(&self) -> SocketAddr {
        SocketAddr::new(self.engine.vip, self.engine.port)
    }

    /// The transport protocol.
    pub fn proto(&self) -> Proto {
        self.engine.proto
    }

    /// NAT or DR.
    pub fn mode(&self) -> ForwardMode {
        self.engine.mode
    }

    /// The connection table (read-only).
    pub fn table(&self) -> &ConnTable {
        &self.engine.table
    }

    /// The scheduler (read-only; change servers through the `Service`).
    pub fn scheduler(&self) -> &Scheduler {
        &self.engine.scheduler
    }

    /// The forwarding counters.
    pub fn counters(&self) -> &ForwardCounters {
        &self.engine.counters
    }

    /// The id of the server at `addr`.
    pub fn server_id(&self, addr: SocketAddr) -> Option<ServerId> {
        self.engine.by_addr.get(&addr).copied()
    }

    fn source_rule(&self, addr: SocketAddr) -> Rule {
        Rule::source(self.engine.proto, addr.ip(), addr.port())
    }

    /// Add a real server at run time (NAT: and the source rule for its replies). On
    /// error nothing changed.
    pub fn add_server(&mut self, server: ServerSpec) -> Result<ServerId, ForwardError> {
        let e = &self.engine;
        if server.addr.is_ipv4() != e.vip.is_ipv4() {
            return Err(ForwardError::FamilyMismatch(server.addr));
        }
        if e.mode == ForwardMode::Dr && server.addr.port() != e.port {
            return Err(ForwardError::DrPort(server.addr));
        }
        if e.by_addr.contains_key(&server.addr) {
            return Err(SchedulerError::DuplicateServer(server.addr).into());
        }
        let nat = e.mode == ForwardMode::Nat;
        if nat {
            let rule = self.source_rule(server.addr);
            match &self.reply {
                Some(ch) => ch.add_rule(rule)?,
                None => self.reply = Some(self.nic.channel(rule, self.reply_capacity)?),
            }
        }
        let real = RealServer::new(server.addr).weight(server.weight);
        let id = match self.engine.scheduler.add(real) {
            Ok(id) => id,
            Err(err) => {
                if let (true, Some(ch)) = (nat, &self.reply) {
                    ch.remove_rule(&self.source_rule(server.addr));
                }
                return Err(err.into());
            }
        };
        self.engine.servers.insert(
            id,
            ServerEntry {
                addr: server.addr,
                mac: server.mac,
                packets: 0,
                bytes: 0,
                reply_packets: 0,
                reply_bytes: 0,
            },
        );
        self.engine.by_addr.insert(server.addr, id);
        Ok(id)
    }

    /// Remove a real server at run time. Its connection-table entries are left to
    /// expire (see the [module docs](self#real-servers)).
    pub fn remove_server(&mut self, addr: SocketAddr) -> Result<(), ForwardError> {
        let id = self
            .engine
            .by_addr
            .remove(&addr)
            .ok_or(ForwardError::UnknownServer(addr))?;
        self.engine.scheduler.remove(id);
        self.engine.servers.remove(&id);
        if let Some(ch) = &self.reply {
            ch.remove_rule(&self.source_rule(addr));
        }
        Ok(())
    }

    /// Change a server's weight at run time; 0 drains it (no new flows, flows in the
    /// table continue).
    pub fn set_weight(&mut self, addr: SocketAddr, weight: u32) -> Result<(), ForwardError> {
        let id = self
            .server_id(addr)
            .ok_or(ForwardError::UnknownServer(addr))?;
        self.engine.scheduler.set_weight(id, weight)?;
        Ok(())
    }

    /// Forward what waits in the service's channels: up to `budget` frames from each
    /// (established first, then replies, then new connections), then reclaim expired
    /// table and persistence entries. Never blocks.
    pub fn poll(&mut self, now_ns: u64, budget: usize) -> PollReport {
        let mut report = PollReport::default();
        let Service {
            syn,
            established,
            reply,
            engine,
            batch,
            ..
        } = self;
        drain(
            established,
            Path::Client,
            engine,
            batch,
            now_ns,
            budget,
            &mut report,
        );
        if let Some(ch) = reply {
            drain(ch, Path::Reply, engine, batch, now_ns, budget, &mut report);
        }
        if let Some(ch) = syn {
            drain(ch, Path::Client, engine, batch, now_ns, budget, &mut report);
        }
        engine.table.expire(now_ns, EXPIRE_BUDGET);
        if let Some(p) = &mut engine.persistence {
            p.expire(now_ns, EXPIRE_BUDGET);
        }
        report
    }

    /// Block until one of the service's channels has a frame or `timeout` passes. Only
    /// the established channel is waited on (a director serving several services polls
    /// them in a loop instead); returns whether it has a frame.
    pub fn wait(&self, timeout: Option<std::time::Duration>) -> Result<bool, ForwardError> {
        Ok(self.established.wait(timeout)?)
    }

    /// The service's statistics: counters, servers, and its channels' statistics with
    /// the CPU charged to them.
    pub fn stats(&self) -> ServiceStats {
        let e = &self.engine;
        let mut servers: Vec<ServerStats> = e
            .scheduler
            .servers()
            .filter_map(|(id, real)| {
                let s = e.servers.get(&id)?;
                let conns = e.table.server_conns(id);
                Some(ServerStats {
                    addr: s.addr,
                    weight: real.weight,
                    active: conns.active,
                    inactive: conns.inactive,
                    packets: s.packets,
                    bytes: s.bytes,
                    reply_packets: s.reply_packets,
                    reply_bytes: s.reply_bytes,
                })
            })
            .collect();
        servers.sort_by_key(|s| s.addr);
        let mut stats = ServiceStats {
            name: self.name.clone(),
            proto: match e.proto {
                Proto::Tcp => "tcp",
                Proto::Udp => "udp",
            },
            vip: self.vip(),
            mode: e.mode.name(),
            connections: e.table.len(),
            counters: e.counters,
            cpu_ns: 0,
            early_discards: 0,
            syn: self.syn.as_ref().map(Channel::stats),
            established: self.established.stats(),
            reply: self.reply.as_ref().map(Channel::stats),
            servers,
        };
        stats.sum_channels();
        stats
    }
}

/// Take up to `budget` frames from `ch` in batches, forward or drop each, and charge the
/// batch's CPU time to the channel.
fn drain(
    ch: &Channel,
    path: Path,
    engine: &mut Engine,
    batch: &mut Vec<Frame>,
    now: u64,
    budget: usize,
    report: &mut PollReport,
) {
    let mut left = budget;
    while left > 0 {
        batch.clear();
        let n = ch.try_recv_batch(left.min(BATCH), batch);
        if n == 0 {
            break;
        }
        left = left.saturating_sub(n);
        let start = thread_cpu_ns();
        for mut frame in batch.drain(..) {
            report.received += 1;
            let verdict = engine.handle(&mut frame, path, now);
            let len = frame.len();
            match verdict.map(|sent| (sent, ch.transmit(frame))) {
                Ok((sent, Ok(()))) => {
                    engine.count_sent(sent, len);
                    report.forwarded += 1;
                }
                Ok((_, Err(_))) => {
                    engine.counters.drop(DropCause::TxFull);
                    report.dropped += 1;
                }
                Err(cause) => {
                    // The frame goes back to the pool here.
                    engine.counters.drop(cause);
                    report.dropped += 1;
                }
            }
        }
        ch.account()
            .charge_cpu(thread_cpu_ns().saturating_sub(start));
    }
}

/// Several virtual services on one NIC, polled in turn.
#[derive(Debug)]
pub struct Director {
    nic: Nic,
    services: Vec<Service>,
}

impl Director {
    /// A director with no services on `nic`.
    pub fn new(nic: Nic) -> Director {
        Director {
            nic,
            services: Vec::new(),
        }
    }

    /// The NIC.
    pub fn nic(&self) -> &Nic {
        &self.nic
    }

    /// Open a service (see [`Service::open`]).
    pub fn add_service(&mut self, spec: ServiceSpec) -> Result<&mut Service, ForwardError> {
        let service = Service::open(&self.nic, spec)?;
        self.services.push(service);
        Ok(self.services.last_mut().expect("just pushed"))
    }

    /// Close a service (its channels and their rules); returns its final statistics.
    pub fn remove_service(&mut self, name: &str) -> Option<ServiceStats> {
        let i = self.services.iter().position(|s| s.name == name)?;
        let service = self.services.remove(i);
        Some(service.stats())
    }

    /// The service named `name`.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }

    /// The service named `name`, to change its servers.
    pub fn service_mut(&mut self, name: &str) -> Option<&mut Service> {
        self.services.iter_mut().find(|s| s.name == name)
    }

    /// Every service, in the order they were added.
    pub fn services(&self) -> impl ExactSizeIterator<Item = &Service> {
        self.services.iter()
    }

    /// [`Service::poll`] every service.
    pub fn poll(&mut self, now_ns: u64, budget: usize) -> PollReport {
        let mut report = PollReport::default();
        for s in &mut self.services {
            report.add(s.poll(now_ns, budget));
        }
        report
    }

    /// Every service's statistics.
    pub fn stats(&self) -> Vec<ServiceStats> {
        self.services.iter().map(Service::stats).collect()
    }
}
