//! Statistics of channels and NICs, and the frame [`Census`].

use std::fmt;

use lrp_core::account::{AccountSnapshot, DropReason};
use lrp_core::demux::ChannelId;
use serde::Serialize;

use crate::backend::BackendStats;
use crate::config::Mode;
use crate::pool::PoolCensus;

/// Statistics of one channel. Counters are monotonic; a snapshot taken while frames move
/// is approximate, one taken at a quiescent point exact.
///
/// Every drop is counted once, under the one reason that says where it happened:
///
/// | field | where the frame was dropped | protocol work spent on it |
/// |---|---|---|
/// | `gate_drops` | NI-LRP: in the NIC, at the channel's closed gate, before the copy | none |
/// | `ring_full_drops` | NI-LRP: in the NIC, at the channel's full ring, after the copy | none |
/// | `soft_discards` | SOFT-LRP (and NI-LRP soft channels): at the full channel, by the software demux | none |
/// | `endpoint_full_drops` | EAGER: at the full endpoint queue | all of it |
/// | `kernel_drops` | NI-LRP: other drops the kernel counted on the channel's socket | none |
///
/// [`early_discards`](Self::early_discards) sums the first three (dropped before any
/// protocol work); `account` has every reason, including those the stack records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ChannelStats {
    /// The channel.
    #[serde(serialize_with = "ser_channel_id")]
    pub id: ChannelId,
    /// NI-LRP: a soft channel, without a slot in the NIC (see
    /// [`Nic::channel`](crate::Nic::channel)): its frames are moved to it in software, and
    /// it has no gate (its full-queue drops count as `soft_discards`). `false` in the
    /// other modes.
    pub soft: bool,
    /// Frames the channel handed to its receiver (`try_recv`, `try_recv_batch`).
    pub rx_packets: u64,
    /// Bytes of those frames.
    pub rx_bytes: u64,
    /// NI-LRP: frames dropped by the NIC at the closed gate, before the copy.
    pub gate_drops: u64,
    /// NI-LRP: frames dropped by the NIC at the full ring, after the copy.
    pub ring_full_drops: u64,
    /// SOFT-LRP, and NI-LRP soft channels: frames discarded by the software demux because
    /// the channel was full.
    pub soft_discards: u64,
    /// EAGER: frames dropped at the full endpoint queue after protocol processing.
    pub endpoint_full_drops: u64,
    /// NI-LRP: other kernel drops of the channel's socket (zero on the simulated NIC).
    pub kernel_drops: u64,
    /// Frames queued for transmission through this channel.
    pub tx_packets: u64,
    /// Bytes of those frames.
    pub tx_bytes: u64,
    /// Frames dropped because the TX ring was full.
    pub tx_drops: u64,
    /// CPU nanoseconds charged to this channel (by the stack's lazy protocol work).
    pub cpu_ns: u64,
    /// Frames waiting in the channel now.
    pub queued: usize,
    /// The channel's capacity.
    pub capacity: usize,
    /// How many times the channel's gate closed.
    pub gate_closings: u64,
    /// The full account, with every drop reason (including those recorded by the stack,
    /// e.g. bad checksums) and the NIC-counted gate and ring-full drops folded in.
    pub account: AccountSnapshot,
}

impl ChannelStats {
    /// Frames dropped before any protocol work was spent on them: gate, ring-full and
    /// soft discards (the LRP modes' early discard).
    pub fn early_discards(&self) -> u64 {
        self.gate_drops + self.ring_full_drops + self.soft_discards
    }

    /// Drops for one reason (every reason, including the stack's).
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.account.drops(reason)
    }
}

fn ser_channel_id<S: serde::Serializer>(id: &ChannelId, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u32(id.0)
}

/// Drop reasons of an account with a non-zero count, as `reason count` pairs.
pub(crate) fn write_drops(f: &mut fmt::Formatter<'_>, account: &AccountSnapshot) -> fmt::Result {
    for (i, (reason, n)) in account.nonzero_drops().enumerate() {
        f.write_str(if i == 0 { ", drops: " } else { ", " })?;
        write!(f, "{reason} {n}")?;
    }
    Ok(())
}

impl fmt::Display for ChannelStats {
    /// One line, zero counters left out:
    /// `channel 3: rx 10 pkts 640 B, queued 0/64, cpu 12.5 µs, gate drops 7, ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "channel {}{}: rx {} pkts {} B, tx {} pkts {} B, queued {}/{}, cpu {:.1} µs",
            self.id.0,
            if self.soft { " (soft)" } else { "" },
            self.rx_packets,
            self.rx_bytes,
            self.tx_packets,
            self.tx_bytes,
            self.queued,
            self.capacity,
            self.cpu_ns as f64 / 1e3,
        )?;
        if self.gate_closings > 0 {
            write!(f, ", gate closed {}x", self.gate_closings)?;
        }
        if self.kernel_drops > 0 {
            write!(f, ", kernel drops {}", self.kernel_drops)?;
        }
        write_drops(f, &self.account)
    }
}

/// Statistics of the NIC as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NicStats {
    /// The receive path.
    pub mode: Mode,
    /// Open channels.
    pub channels: usize,
    /// NI-LRP: how many of them are soft channels, without a slot in the NIC (see
    /// [`Nic::channel`](crate::Nic::channel)). Zero in the other modes.
    pub soft_channels: usize,
    /// Frames the poll step took from the shared RX ring.
    pub rx_frames: u64,
    /// Drops that belong to no channel (malformed, unclaimed, shared queue full, eager
    /// protocol drops) and the CPU time of the poll step.
    pub account: AccountSnapshot,
    /// Frames waiting in the eager shared input queue.
    pub eager_backlog: usize,
    /// The backend's counters.
    pub backend: BackendStats,
}

impl fmt::Display for NicStats {
    /// Two lines: the facade (`mode`, channels, poll step) and the NIC's counters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} channels ({} soft), poll step rx {} frames, cpu {:.1} µs",
            self.mode,
            self.channels,
            self.soft_channels,
            self.rx_frames,
            self.account.cpu_ns as f64 / 1e3,
        )?;
        if self.eager_backlog > 0 {
            write!(f, ", eager backlog {}", self.eager_backlog)?;
        }
        write_drops(f, &self.account)?;
        write!(f, "\nnic: {}", self.backend)
    }
}

/// Where every frame of the pool is, for checking that none is lost. See
/// [`Nic::census`](crate::Nic::census).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Census {
    /// Frames in the pool.
    pub total: usize,
    /// On the pool's free list.
    pub free: usize,
    /// Posted in the fill ring.
    pub fill: usize,
    /// In RX rings (the shared one, or NI-LRP channel rings), not yet taken.
    pub rx: usize,
    /// Queued in channels (SOFT-LRP and EAGER endpoint queues, the eager input queue).
    pub channels: usize,
    /// Held by the application (`Frame` handles outside any channel).
    pub held: usize,
    /// Queued for transmission.
    pub tx: usize,
    /// Transmitted, not yet returned to the pool.
    pub completion: usize,
    /// The pool's own audit of its chunk states.
    pub pool: PoolCensus,
}

impl Census {
    /// Whether every frame is accounted for exactly once: the parts sum to the total, the
    /// ring counts match the chunks in the kernel state, the channel and application
    /// counts match the chunks held, and the pool saw no violation.
    pub fn is_conserved(&self) -> bool {
        let parts =
            self.free + self.fill + self.rx + self.channels + self.held + self.tx + self.completion;
        parts == self.total
            && self.pool.is_conserved()
            && self.pool.violations == 0
            && self.free == self.pool.free
            && self.fill + self.rx + self.tx + self.completion == self.pool.kernel
            && self.channels + self.held == self.pool.held
    }
}

impl fmt::Display for Census {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} frames: free {}, fill {}, rx {}, channels {}, held {}, tx {}, completion {} ({})",
            self.total,
            self.free,
            self.fill,
            self.rx,
            self.channels,
            self.held,
            self.tx,
            self.completion,
            if self.is_conserved() {
                "conserved"
            } else {
                "NOT conserved"
            },
        )
    }
}
