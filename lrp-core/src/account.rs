//! Accounting: packets, bytes, drops and CPU time charged to each endpoint.
//!
//! LRP's fifth mechanism: the CPU spent on an endpoint's protocol processing is charged
//! to that endpoint, and what each endpoint received, sent and lost is readable at run
//! time — "LVS isn't a process, how do I monitor it?" gets an answer. One [`Account`]
//! per endpoint (socket, listener, virtual service); [`Account::snapshot`] gives a plain
//! [`AccountSnapshot`], and [`AccountSnapshot::delta`] turns two snapshots into rates.
//!
//! This module reads no clock: whoever runs the protocol work measures it and calls
//! [`Account::charge_cpu`].
//!
//! All counters are independent `Relaxed` atomics: updates are cheap and never lost,
//! every counter is monotonic, and a snapshot taken while no update is in flight is
//! exact. A snapshot taken concurrently with updates may see some of a batch of updates
//! and not others (for example a packet counted in `rx_packets` but not yet in
//! `rx_bytes`).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Why a frame was dropped. Each reason is counted separately.
///
/// The first three are LRP's early discards, from earliest (cheapest) to latest; the
/// eager baseline's drops are [`EndpointFull`](DropReason::EndpointFull) (after the
/// protocol work was spent) and [`SharedQueueFull`](DropReason::SharedQueueFull).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// NI-LRP: the channel's XDP gate was closed; dropped in the driver before the copy.
    Gate,
    /// NI-LRP: the channel's kernel AF_XDP RX ring was full; dropped after the copy.
    RingFull,
    /// SOFT-LRP: the endpoint's `NiChannel` was full; discarded on demux, before any
    /// protocol work.
    SoftDiscard,
    /// The frame was malformed (see [`Malformed`](crate::flow::Malformed)).
    Malformed,
    /// A checksum did not verify (found by lazy protocol processing).
    BadChecksum,
    /// No endpoint claimed the frame and the default action is to drop.
    NoEndpoint,
    /// Eager baseline: the endpoint's queue was full after protocol processing.
    EndpointFull,
    /// Eager baseline: the shared input queue was full.
    SharedQueueFull,
    /// TCP: a connection request found the listener's accept backlog full.
    BacklogFull,
    /// Protocol processing rejected the frame (for example a TCP segment outside the
    /// window, or for a connection that no longer exists).
    Rejected,
    /// Transmit: the TX ring was full and the outgoing frame was dropped.
    TxFull,
}

impl DropReason {
    /// Number of reasons.
    pub const COUNT: usize = 11;

    /// Every reason, in a stable order (for counters indexed by reason).
    pub const ALL: [DropReason; DropReason::COUNT] = [
        DropReason::Gate,
        DropReason::RingFull,
        DropReason::SoftDiscard,
        DropReason::Malformed,
        DropReason::BadChecksum,
        DropReason::NoEndpoint,
        DropReason::EndpointFull,
        DropReason::SharedQueueFull,
        DropReason::BacklogFull,
        DropReason::Rejected,
        DropReason::TxFull,
    ];

    /// Index of this reason in [`DropReason::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// A short stable name (for metrics and CSV headers).
    pub const fn name(self) -> &'static str {
        match self {
            DropReason::Gate => "gate",
            DropReason::RingFull => "ring_full",
            DropReason::SoftDiscard => "soft_discard",
            DropReason::Malformed => "malformed",
            DropReason::BadChecksum => "bad_checksum",
            DropReason::NoEndpoint => "no_endpoint",
            DropReason::EndpointFull => "endpoint_full",
            DropReason::SharedQueueFull => "shared_queue_full",
            DropReason::BacklogFull => "backlog_full",
            DropReason::Rejected => "rejected",
            DropReason::TxFull => "tx_full",
        }
    }
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Per-endpoint counters, shared between the threads that update them.
#[derive(Debug, Default)]
pub struct Account {
    rx_packets: AtomicU64,
    rx_bytes: AtomicU64,
    tx_packets: AtomicU64,
    tx_bytes: AtomicU64,
    drops: [AtomicU64; DropReason::COUNT],
    cpu_ns: AtomicU64,
}

impl Account {
    /// All counters zero.
    pub fn new() -> Account {
        Account::default()
    }

    /// Count one received frame of `bytes` bytes.
    #[inline]
    pub fn record_rx(&self, bytes: usize) {
        self.record_rx_batch(1, bytes as u64);
    }

    /// Count `packets` received frames totalling `bytes` bytes.
    #[inline]
    pub fn record_rx_batch(&self, packets: u64, bytes: u64) {
        self.rx_packets.fetch_add(packets, Relaxed);
        self.rx_bytes.fetch_add(bytes, Relaxed);
    }

    /// Count one transmitted frame of `bytes` bytes.
    #[inline]
    pub fn record_tx(&self, bytes: usize) {
        self.record_tx_batch(1, bytes as u64);
    }

    /// Count `packets` transmitted frames totalling `bytes` bytes.
    #[inline]
    pub fn record_tx_batch(&self, packets: u64, bytes: u64) {
        self.tx_packets.fetch_add(packets, Relaxed);
        self.tx_bytes.fetch_add(bytes, Relaxed);
    }

    /// Count one dropped frame.
    #[inline]
    pub fn record_drop(&self, reason: DropReason) {
        self.record_drops(reason, 1);
    }

    /// Count `n` dropped frames (for example, gate drops read from a BPF map).
    #[inline]
    pub fn record_drops(&self, reason: DropReason, n: u64) {
        self.drops[reason.index()].fetch_add(n, Relaxed);
    }

    /// Charge `ns` nanoseconds of CPU time, measured by the caller around protocol work
    /// done for this endpoint.
    #[inline]
    pub fn charge_cpu(&self, ns: u64) {
        self.cpu_ns.fetch_add(ns, Relaxed);
    }

    /// Read every counter (see the [module docs](self) for the consistency guarantees).
    pub fn snapshot(&self) -> AccountSnapshot {
        AccountSnapshot {
            rx_packets: self.rx_packets.load(Relaxed),
            rx_bytes: self.rx_bytes.load(Relaxed),
            tx_packets: self.tx_packets.load(Relaxed),
            tx_bytes: self.tx_bytes.load(Relaxed),
            drops: std::array::from_fn(|i| self.drops[i].load(Relaxed)),
            cpu_ns: self.cpu_ns.load(Relaxed),
        }
    }
}

/// A copy of an [`Account`]'s counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AccountSnapshot {
    /// Frames received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames transmitted.
    pub tx_packets: u64,
    /// Bytes transmitted.
    pub tx_bytes: u64,
    /// Drops, indexed by [`DropReason::index`]; see [`AccountSnapshot::drops`].
    pub drops: [u64; DropReason::COUNT],
    /// CPU nanoseconds charged.
    pub cpu_ns: u64,
}

impl AccountSnapshot {
    /// Drops for one reason.
    pub const fn drops(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()]
    }

    /// Drops for all reasons (saturating).
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().fold(0u64, |a, &d| a.saturating_add(d))
    }

    /// The non-zero drop counters, by reason.
    pub fn nonzero_drops(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .into_iter()
            .map(|r| (r, self.drops(r)))
            .filter(|&(_, n)| n > 0)
    }

    /// `self - earlier`, counter by counter, saturating at zero (a counter that went
    /// backwards, e.g. because `earlier` is really later, yields 0, not a wrap).
    pub fn delta(&self, earlier: &AccountSnapshot) -> AccountSnapshot {
        AccountSnapshot {
            rx_packets: self.rx_packets.saturating_sub(earlier.rx_packets),
            rx_bytes: self.rx_bytes.saturating_sub(earlier.rx_bytes),
            tx_packets: self.tx_packets.saturating_sub(earlier.tx_packets),
            tx_bytes: self.tx_bytes.saturating_sub(earlier.tx_bytes),
            drops: std::array::from_fn(|i| self.drops[i].saturating_sub(earlier.drops[i])),
            cpu_ns: self.cpu_ns.saturating_sub(earlier.cpu_ns),
        }
    }

    /// `self + other`, counter by counter, saturating (to total several endpoints, e.g.
    /// the SYN and established channels of one service).
    pub fn plus(&self, other: &AccountSnapshot) -> AccountSnapshot {
        AccountSnapshot {
            rx_packets: self.rx_packets.saturating_add(other.rx_packets),
            rx_bytes: self.rx_bytes.saturating_add(other.rx_bytes),
            tx_packets: self.tx_packets.saturating_add(other.tx_packets),
            tx_bytes: self.tx_bytes.saturating_add(other.tx_bytes),
            drops: std::array::from_fn(|i| self.drops[i].saturating_add(other.drops[i])),
            cpu_ns: self.cpu_ns.saturating_add(other.cpu_ns),
        }
    }
}

impl std::fmt::Display for AccountSnapshot {
    /// `rx 10 pkts 640 B, tx 0 pkts 0 B, cpu 12.5 µs, drops: gate 7, bad_checksum 1`
    /// (drop reasons with a zero count are left out).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rx {} pkts {} B, tx {} pkts {} B, cpu {:.1} µs",
            self.rx_packets,
            self.rx_bytes,
            self.tx_packets,
            self.tx_bytes,
            self.cpu_ns as f64 / 1e3
        )?;
        for (i, (reason, n)) in self.nonzero_drops().enumerate() {
            f.write_str(if i == 0 { ", drops: " } else { ", " })?;
            write!(f, "{reason} {n}")?;
        }
        Ok(())
    }
}

impl serde::Serialize for AccountSnapshot {
    /// The counters by name; `drops` as a map from [`DropReason::name`] to count (every
    /// reason, zeros included, so that a consumer sees a stable set of keys).
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeStruct};

        struct Drops<'a>(&'a [u64; DropReason::COUNT]);
        impl serde::Serialize for Drops<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(Some(DropReason::COUNT))?;
                for r in DropReason::ALL {
                    m.serialize_entry(r.name(), &self.0[r.index()])?;
                }
                m.end()
            }
        }

        let mut st = s.serialize_struct("AccountSnapshot", 6)?;
        st.serialize_field("rx_packets", &self.rx_packets)?;
        st.serialize_field("rx_bytes", &self.rx_bytes)?;
        st.serialize_field("tx_packets", &self.tx_packets)?;
        st.serialize_field("tx_bytes", &self.tx_bytes)?;
        st.serialize_field("cpu_ns", &self.cpu_ns)?;
        st.serialize_field("drops", &Drops(&self.drops))?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_index_order_and_names_are_unique() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
        assert_eq!(DropReason::SoftDiscard.to_string(), "soft_discard");
    }

    #[test]
    fn records_land_in_their_counters() {
        let a = Account::new();
        a.record_rx(100);
        a.record_rx_batch(2, 50);
        a.record_tx(60);
        a.record_tx_batch(3, 30);
        a.record_drop(DropReason::Gate);
        a.record_drops(DropReason::SoftDiscard, 5);
        a.charge_cpu(1_000);
        a.charge_cpu(234);
        let s = a.snapshot();
        assert_eq!((s.rx_packets, s.rx_bytes), (3, 150));
        assert_eq!((s.tx_packets, s.tx_bytes), (4, 90));
        assert_eq!(s.drops(DropReason::Gate), 1);
        assert_eq!(s.drops(DropReason::SoftDiscard), 5);
        assert_eq!(s.drops(DropReason::EndpointFull), 0);
        assert_eq!(s.total_drops(), 6);
        assert_eq!(s.cpu_ns, 1_234);
    }

    #[test]
    fn delta_and_plus_saturate() {
        let a = Account::new();
        a.record_rx(10);
        let t0 = a.snapshot();
        a.record_rx(20);
        a.record_drop(DropReason::RingFull);
        a.charge_cpu(7);
        let t1 = a.snapshot();
        let d = t1.delta(&t0);
        assert_eq!((d.rx_packets, d.rx_bytes, d.cpu_ns), (1, 20, 7));
        assert_eq!(d.drops(DropReason::RingFull), 1);
        // Reversed order saturates to zero instead of wrapping.
        assert_eq!(t0.delta(&t1), AccountSnapshot::default());
        let big = AccountSnapshot {
            rx_packets: u64::MAX,
            ..t1
        };
        assert_eq!(big.plus(&t1).rx_packets, u64::MAX);
        assert_eq!(t0.plus(&d), t1);
        let many = AccountSnapshot {
            drops: [u64::MAX; DropReason::COUNT],
            ..Default::default()
        };
        assert_eq!(many.total_drops(), u64::MAX);
    }

    #[test]
    fn concurrent_updates_are_not_lost() {
        let a = Account::new();
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    for _ in 0..10_000 {
                        a.record_rx(3);
                        a.record_drop(DropReason::EndpointFull);
                        a.charge_cpu(2);
                    }
                });
            }
        });
        let s = a.snapshot();
        assert_eq!((s.rx_packets, s.rx_bytes), (20_000, 60_000));
        assert_eq!(s.drops(DropReason::EndpointFull), 20_000);
        assert_eq!(s.cpu_ns, 40_000);
    }
}
