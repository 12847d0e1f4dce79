//! Per-socket statistics: what the endpoint received, what it lost and why, and the CPU
//! time charged to it.

use std::fmt;

use lrp_core::account::DropReason;
use serde::Serialize;

use crate::nic::{Channel, ChannelStats};

/// Statistics of one socket (its NI channel and its account), plus what the socket
/// handed to the application.
///
/// Early discards happen before any protocol work (at the NIC's gate or ring in NI-LRP,
/// at the full channel in SOFT-LRP); endpoint-full drops after it (EAGER's full socket
/// buffer). The names mean the same as in [`ChannelStats`]: `rx_*` are frames taken off
/// the channel, `delivered*` what reached the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SocketStats {
    /// Frames the endpoint took off its channel for protocol processing.
    pub rx_packets: u64,
    /// Bytes of those frames.
    pub rx_bytes: u64,
    /// Frames the endpoint transmitted.
    pub tx_packets: u64,
    /// Bytes of those frames.
    pub tx_bytes: u64,
    /// Datagrams (UDP) or reads (TCP) that delivered data to the application.
    pub delivered: u64,
    /// Payload bytes delivered to the application.
    pub delivered_bytes: u64,
    /// Frames discarded early, before any protocol work: closed gate, full ring (NI-LRP),
    /// full channel (SOFT-LRP); [`ChannelStats::early_discards`].
    pub early_discards: u64,
    /// Frames dropped after protocol processing because the socket buffer was full
    /// (EAGER).
    pub endpoint_full_drops: u64,
    /// Frames whose IP, UDP or TCP checksum failed.
    pub bad_checksum: u64,
    /// Frames that were malformed (truncated, bad lengths).
    pub malformed: u64,
    /// Frames refused by protocol processing (fragments, IPv6, stray segments).
    pub rejected: u64,
    /// Connection requests refused because the accept backlog was full (listeners).
    pub backlog_full: u64,
    /// Handshakes in progress dropped to make room for a newer SYN because the SYN queue
    /// was full ([`StackConfig::syn_backlog`]; listeners).
    ///
    /// [`StackConfig::syn_backlog`]: super::StackConfig::syn_backlog
    pub syn_evictions: u64,
    /// Frames lost because the TX ring or the frame pool was exhausted.
    pub tx_drops: u64,
    /// CPU nanoseconds of protocol processing charged to this socket.
    pub cpu_ns: u64,
    /// Frames waiting in the channel now.
    pub queued: usize,
    /// The channel's capacity.
    pub capacity: usize,
    /// The channel's full statistics (every drop reason, gate closings).
    pub channel: ChannelStats,
}

impl SocketStats {
    pub(crate) fn from_channel(ch: &Channel, delivered: u64, delivered_bytes: u64) -> SocketStats {
        let c = ch.stats();
        let a = &c.account;
        SocketStats {
            rx_packets: c.rx_packets,
            rx_bytes: c.rx_bytes,
            tx_packets: c.tx_packets,
            tx_bytes: c.tx_bytes,
            delivered,
            delivered_bytes,
            early_discards: c.early_discards(),
            endpoint_full_drops: a.drops(DropReason::EndpointFull),
            bad_checksum: a.drops(DropReason::BadChecksum),
            malformed: a.drops(DropReason::Malformed),
            rejected: a.drops(DropReason::Rejected),
            backlog_full: a.drops(DropReason::BacklogFull),
            syn_evictions: 0,
            tx_drops: a.drops(DropReason::TxFull),
            cpu_ns: c.cpu_ns,
            queued: c.queued,
            capacity: c.capacity,
            channel: c,
        }
    }

    /// Drops for one reason.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.channel.account.drops(reason)
    }
}

impl fmt::Display for SocketStats {
    /// One line, drop reasons with a zero count left out:
    /// `rx 10 pkts 640 B, delivered 10 (512 B), tx 10 pkts 640 B, queued 0/64, cpu 80.2 µs`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rx {} pkts {} B, delivered {} ({} B), tx {} pkts {} B, queued {}/{}, cpu {:.1} µs",
            self.rx_packets,
            self.rx_bytes,
            self.delivered,
            self.delivered_bytes,
            self.tx_packets,
            self.tx_bytes,
            self.queued,
            self.capacity,
            self.cpu_ns as f64 / 1e3,
        )?;
        if self.syn_evictions > 0 {
            write!(f, ", syn evictions {}", self.syn_evictions)?;
        }
        crate::nic::write_drops(f, &self.channel.account)
    }
}
