//! Isolation: a channel that is never read cannot hurt one that is. Its excess is
//! discarded early (SOFT-LRP), dropped at its closed gate before the copy (NI-LRP), or —
//! in the eager baseline — dropped at its full queue after the protocol work was spent.
//!
//! Sizing (deterministic): per round 8 frames for the stalled channel and 2 for the
//! served one, 20 rounds; the shared RX ring (256), the fill ring (256) and the pool
//! (1024) are never the bottleneck, so only the stalled channel's capacity (32) decides.

mod sim_common;

use lrp_core::account::DropReason;
use lrp_core::flow::Proto;
use lrp_net::sim::SimConfig;
use lrp_net::{ChannelStats, Mode, Nic, NicConfig, Rule};
use sim_common::{assert_conserved, config, seq_of, udp_to};

const ROUNDS: u32 = 20;
const FLOOD_PER_ROUND: u32 = 8;
const SERVED_PER_ROUND: u32 = 2;
const FLOOD_CAPACITY: usize = 32;

/// Run the scenario; returns the stalled and the served channel's final statistics and
/// the NIC.
fn run(config: NicConfig) -> (ChannelStats, ChannelStats, Nic) {
    let (nic, peer) = Nic::sim(SimConfig::new(config)).unwrap();
    let stalled = nic
        .channel(Rule::listener(Proto::Udp, None, 5000), FLOOD_CAPACITY)
        .unwrap();
    let served = nic
        .channel(Rule::listener(Proto::Udp, None, 6000), 64)
        .unwrap();
    let (mut sent, mut next) = (0u32, 0u32);
    for round in 0..ROUNDS {
        // The flood first, so that the served frames arrive behind it.
        for i in 0..FLOOD_PER_ROUND {
            peer.inject(&udp_to(5000, round * FLOOD_PER_ROUND + i));
        }
        for _ in 0..SERVED_PER_ROUND {
            assert!(
                peer.inject(&udp_to(6000, sent)),
                "the NIC itself never drops here"
            );
            sent += 1;
        }
        // The served receiver drains its channel (running the poll step itself).
        let mut got = Vec::new();
        while served.try_recv_batch(16, &mut got) > 0 {}
        for f in &got {
            assert_eq!(seq_of(f), next, "served in order, nothing lost");
            next += 1;
        }
        nic.poll_rx(256); // a service pass (gates, refill)
    }
    assert_eq!(
        next,
        ROUNDS * SERVED_PER_ROUND,
        "served channel got everything"
    );
    assert_conserved(&nic, 0);
    let s = (stalled.stats(), served.stats());
    // Keep the channels open until the stats are read; closing returns the queued frames.
    drop((stalled, served));
    assert_conserved(&nic, 0);
    (s.0, s.1, nic)
}

const SENT_TO_STALLED: u64 = (ROUNDS * FLOOD_PER_ROUND) as u64;
const SENT_TO_SERVED: u64 = (ROUNDS * SERVED_PER_ROUND) as u64;

fn assert_served_unharmed(served: &ChannelStats) {
    assert_eq!(served.rx_packets, SENT_TO_SERVED);
    assert_eq!(served.account.total_drops(), 0);
}

#[test]
fn soft_lrp_discards_the_excess_early() {
    let (stalled, served, nic) = run(config(Mode::SoftLrp));
    assert_served_unharmed(&served);
    assert_eq!(stalled.rx_packets, 0);
    assert_eq!(stalled.queued, FLOOD_CAPACITY);
    assert_eq!(
        stalled.soft_discards,
        SENT_TO_STALLED - FLOOD_CAPACITY as u64
    );
    assert_eq!(
        stalled.account.drops(DropReason::SoftDiscard),
        stalled.soft_discards
    );
    assert_eq!((stalled.gate_drops, stalled.endpoint_full_drops), (0, 0));
    // Nothing was dropped anywhere else.
    let ns = nic.stats();
    assert_eq!(ns.account.total_drops(), 0);
    assert_eq!(ns.backend.rx_accepted, SENT_TO_STALLED + SENT_TO_SERVED);
}

#[test]
fn ni_lrp_drops_the_excess_at_the_gate_before_the_copy() {
    let (stalled, served, nic) = run(config(Mode::NiLrp));
    assert_served_unharmed(&served);
    // The gate closes at 3/4 of the 32-frame ring and, unread, never reopens.
    let close_at = (FLOOD_CAPACITY * 3 / 4) as u64;
    assert_eq!(stalled.queued as u64, close_at);
    assert_eq!(stalled.gate_drops, SENT_TO_STALLED - close_at);
    assert_eq!(stalled.ring_full_drops, 0);
    assert_eq!(stalled.gate_closings, 1);
    assert_eq!(stalled.soft_discards, 0);
    let b = nic.stats().backend;
    assert_eq!(b.gate_drops, stalled.gate_drops);
    // Gate drops never took a buffer: only admitted frames were written to a ring.
    assert_eq!(b.rx_accepted, close_at + SENT_TO_SERVED);
}

#[test]
fn ni_lrp_without_gate_drops_at_the_full_ring_after_the_copy() {
    let (stalled, served, nic) = run(config(Mode::NiLrp).gate(false));
    assert_served_unharmed(&served);
    assert_eq!(stalled.queued, FLOOD_CAPACITY);
    assert_eq!(
        stalled.ring_full_drops,
        SENT_TO_STALLED - FLOOD_CAPACITY as u64
    );
    assert_eq!(stalled.gate_drops, 0);
    assert_eq!(nic.stats().backend.ni_ring_full, stalled.ring_full_drops);
}

#[test]
fn eager_drops_the_excess_only_after_protocol_work() {
    let (stalled, served, nic) = run(config(Mode::Eager));
    assert_served_unharmed(&served);
    assert_eq!(stalled.queued, FLOOD_CAPACITY);
    // Every frame was processed (classified, checksummed, looked up) before the excess
    // was dropped at the endpoint queue.
    assert_eq!(
        stalled.endpoint_full_drops,
        SENT_TO_STALLED - FLOOD_CAPACITY as u64
    );
    assert_eq!(stalled.soft_discards, 0);
    assert_eq!(stalled.gate_drops, 0);
    // The eager path counts frames as received when it queues them after processing.
    assert_eq!(stalled.account.rx_packets, FLOOD_CAPACITY as u64);
    let ns = nic.stats();
    assert_eq!(ns.rx_frames, SENT_TO_STALLED + SENT_TO_SERVED);
    assert_eq!(ns.eager_backlog, 0);
}
