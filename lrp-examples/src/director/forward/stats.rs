//! The forwarding engine's counters and the per-service statistics that
//! `lrp-director stats` prints ("CPU per service").

use std::fmt;
use std::net::SocketAddr;

use lrp_net::ChannelStats;
use serde::Serialize;

/// Why the engine dropped a frame it took from one of its channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropCause {
    /// A new flow, and no server takes new flows (none, or all at weight 0).
    NoServer,
    /// A reply from a real server that matches no live connection of that server.
    NoConnection,
    /// A reply whose client's next-hop MAC is not known (forgotten after two generations
    /// of other clients).
    UnknownClient,
    /// TTL / hop limit reached 0.
    TtlExpired,
    /// Not a UDP/TCP frame of the service, truncated, or a bad checksum.
    Malformed,
    /// The TX ring was full.
    TxFull,
}

/// Counters of one service's forwarding, monotonic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ForwardCounters {
    /// Frames sent toward real servers.
    pub to_servers_packets: u64,
    /// Bytes of those frames.
    pub to_servers_bytes: u64,
    /// Frames sent back toward clients (NAT replies).
    pub to_clients_packets: u64,
    /// Bytes of those frames.
    pub to_clients_bytes: u64,
    /// New flows scheduled (SYNs and first datagrams, tracked or not).
    pub new_connections: u64,
    /// Flows forwarded without a table entry (table full or half-open bound reached:
    /// consistent hashing chose the server).
    pub untracked: u64,
    /// Mid-flow packets that missed the table and were sent by consistent hashing
    /// (director restart, expired entry, removed server).
    pub table_misses: u64,
    /// Drops: no server available.
    pub drop_no_server: u64,
    /// Drops: reply without a connection.
    pub drop_no_connection: u64,
    /// Drops: reply to a client whose MAC is unknown.
    pub drop_unknown_client: u64,
    /// Drops: TTL expired.
    pub drop_ttl_expired: u64,
    /// Drops: malformed (incl. bad checksums).
    pub drop_malformed: u64,
    /// Drops: TX ring full.
    pub drop_tx_full: u64,
}

impl ForwardCounters {
    /// Count one drop.
    pub(super) fn drop(&mut self, reason: DropCause) {
        *match reason {
            DropCause::NoServer => &mut self.drop_no_server,
            DropCause::NoConnection => &mut self.drop_no_connection,
            DropCause::UnknownClient => &mut self.drop_unknown_client,
            DropCause::TtlExpired => &mut self.drop_ttl_expired,
            DropCause::Malformed => &mut self.drop_malformed,
            DropCause::TxFull => &mut self.drop_tx_full,
        } += 1;
    }

    /// Drops for one reason.
    pub fn drops(&self, reason: DropCause) -> u64 {
        match reason {
            DropCause::NoServer => self.drop_no_server,
            DropCause::NoConnection => self.drop_no_connection,
            DropCause::UnknownClient => self.drop_unknown_client,
            DropCause::TtlExpired => self.drop_ttl_expired,
            DropCause::Malformed => self.drop_malformed,
            DropCause::TxFull => self.drop_tx_full,
        }
    }

    /// Every drop, whatever the reason.
    pub fn total_drops(&self) -> u64 {
        self.drop_no_server
            + self.drop_no_connection
            + self.drop_unknown_client
            + self.drop_ttl_expired
            + self.drop_malformed
            + self.drop_tx_full
    }
}

/// One real server's share of a service's traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ServerStats {
    /// The server.
    pub addr: SocketAddr,
    /// Its weight now.
    pub weight: u32,
    /// Its connections in an active state (table entries).
    pub active: u32,
    /// Its connections in other states.
    pub inactive: u32,
    /// Frames sent to it.
    pub packets: u64,
    /// Bytes sent to it.
    pub bytes: u64,
    /// NAT: its replies forwarded to clients.
    pub reply_packets: u64,
    /// Bytes of those replies.
    pub reply_bytes: u64,
}

/// Statistics of one virtual service: forwarding counters, servers, and its channels'
/// statistics with the CPU charged to them (the engine's work on the service's frames,
/// measured on the polling thread's CPU clock).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceStats {
    /// The service's name.
    pub name: String,
    /// `tcp` or `udp`.
    pub proto: &'static str,
    /// The VIP and port.
    pub vip: SocketAddr,
    /// `nat` or `dr`.
    pub mode: &'static str,
    /// Live connection-table entries.
    pub connections: usize,
    /// Forwarding counters.
    pub counters: ForwardCounters,
    /// CPU nanoseconds charged to the service (sum over its channels).
    pub cpu_ns: u64,
    /// Frames discarded early at the service's channels (gate, ring full, soft discard),
    /// before any work was spent on them.
    pub early_discards: u64,
    /// The new-connection (SYN) channel; `None` for UDP.
    pub syn: Option<ChannelStats>,
    /// The established-traffic channel (all client traffic for UDP).
    pub established: ChannelStats,
    /// The reply channel (NAT, once a server was added); `None` otherwise.
    pub reply: Option<ChannelStats>,
    /// Per real server.
    pub servers: Vec<ServerStats>,
}

impl ServiceStats {
    /// Builds the sums from the channels' statistics.
    pub(super) fn sum_channels(&mut self) {
        let all = [
            self.syn.as_ref(),
            Some(&self.established),
            self.reply.as_ref(),
        ];
        self.cpu_ns = all.iter().flatten().map(|c| c.cpu_ns).sum();
        self.early_discards = all.iter().flatten().map(|c| c.early_discards()).sum();
    }
}

impl fmt::Display for ServiceStats {
    /// A few lines: the service, its counters, each channel, each server.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.counters;
        writeln!(
            f,
            "service {} ({} {} {}): {} conns, cpu {:.1} µs, early discards {}",
            self.name,
            self.proto,
            self.vip,
            self.mode,
            self.connections,
            self.cpu_ns as f64 / 1e3,
            self.early_discards
        )?;
        writeln!(
            f,
            "  to servers {} pkts {} B, to clients {} pkts {} B, new {}, untracked {}, misses {}",
            c.to_servers_packets,
            c.to_servers_bytes,
            c.to_clients_packets,
            c.to_clients_bytes,
            c.new_connections,
            c.untracked,
            c.table_misses
        )?;
        if c.total_drops() > 0 {
            writeln!(
                f,
                "  drops: no server {}, no connection {}, unknown client {}, ttl {}, malformed {}, tx full {}",
                c.drop_no_server,
                c.drop_no_connection,
                c.drop_unknown_client,
                c.drop_ttl_expired,
                c.drop_malformed,
                c.drop_tx_full
            )?;
        }
        for (name, ch) in [
            ("syn", self.syn.as_ref()),
            ("established", Some(&self.established)),
            ("reply", self.reply.as_ref()),
        ] {
            if let Some(ch) = ch {
                writeln!(f, "  {name}: {ch}")?;
            }
        }
        for s in &self.servers {
            writeln!(
                f,
                "  server {} weight {}: {} active {} inactive, {} pkts {} B, replies {} pkts {} B",
                s.addr,
                s.weight,
                s.active,
                s.inactive,
                s.packets,
                s.bytes,
                s.reply_packets,
                s.reply_bytes
            )?;
        }
        Ok(())
    }
}

/// What one [`Service::poll`](super::Service::poll) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PollReport {
    /// Frames taken from the channels.
    pub received: usize,
    /// Frames transmitted.
    pub forwarded: usize,
    /// Frames dropped (counted by reason in [`ForwardCounters`]).
    pub dropped: usize,
}

impl PollReport {
    /// Add another report's numbers.
    pub fn add(&mut self, other: PollReport) {
        self.received += other.received;
        self.forwarded += other.forwarded;
        self.dropped += other.dropped;
    }
}
