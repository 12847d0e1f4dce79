//! Frame conservation: whatever the interleaving of arrivals, poll steps, receives,
//! drops, transmits, allocations and channel churn, every frame of the pool is always in
//! exactly one place (free, fill ring, RX ring, a channel, the application, TX ring,
//! completion ring), and the application holds exactly the frames it thinks it holds.

mod sim_common;

use lrp_core::flow::Proto;
use lrp_net::sim::{build, SimConfig};
use lrp_net::{Channel, Frame, Mode, Nic, NicConfig, Rule};
use proptest::prelude::*;
use sim_common::{client, server};

const PORTS: [u16; 3] = [1001, 1002, 1003]; // two channels and an unbound port
const CAPACITIES: [usize; 2] = [4, 8];

#[derive(Debug, Clone)]
enum Op {
    /// A frame to `PORTS[port]` with `len` payload bytes.
    Inject { port: usize, len: usize },
    /// A malformed frame.
    InjectGarbage { len: usize },
    /// A poll step with this budget.
    Poll { budget: usize },
    /// `recv_batch(max)` on a channel; the frames are kept by the application.
    Recv { ch: usize, max: usize },
    /// `recv()` on a channel.
    RecvOne { ch: usize },
    /// The application drops `n` of its frames.
    DropHeld { n: usize },
    /// The application transmits `n` of its frames through a channel.
    Transmit { ch: usize, n: usize },
    /// The application allocates a frame.
    Alloc,
    /// The wire takes what is in the TX ring.
    TakeTx,
    /// Close a channel (with whatever it has queued) and open it again.
    Reopen { ch: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..3usize, 0..64usize).prop_map(|(port, len)| Op::Inject { port, len }),
        1 => (0..80usize).prop_map(|len| Op::InjectGarbage { len }),
        3 => (0..24usize).prop_map(|budget| Op::Poll { budget }),
        3 => (0..2usize, 0..6usize).prop_map(|(ch, max)| Op::Recv { ch, max }),
        2 => (0..2usize).prop_map(|ch| Op::RecvOne { ch }),
        2 => (0..6usize).prop_map(|n| Op::DropHeld { n }),
        2 => (0..2usize, 0..6usize).prop_map(|(ch, n)| Op::Transmit { ch, n }),
        1 => Just(Op::Alloc),
        2 => Just(Op::TakeTx),
        1 => (0..2usize).prop_map(|ch| Op::Reopen { ch }),
    ]
}

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![Just(Mode::SoftLrp), Just(Mode::NiLrp), Just(Mode::Eager)]
}

/// A deliberately tight NIC: 48 frames, small rings, so that exhaustion, full rings,
/// closed gates and a stalled wire all happen.
fn tight(mode: Mode, gate: bool) -> NicConfig {
    NicConfig::default()
        .frame_count(48)
        .fill_ring(16)
        .rx_ring(8)
        .tx_ring(8)
        .completion_ring(8)
        .eager_queue(8)
        .gate(gate)
        .batch(4)
        .mode(mode)
}

fn open(nic: &Nic, i: usize) -> Channel {
    nic.channel(Rule::listener(Proto::Udp, None, PORTS[i]), CAPACITIES[i])
        .unwrap()
}

fn check(nic: &Nic, held: &[Frame]) -> Result<(), TestCaseError> {
    let c = nic.census();
    prop_assert!(c.is_conserved(), "census not conserved: {:#?}", c);
    prop_assert_eq!(c.held, held.len(), "application frames: {:#?}", c);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn no_frame_is_ever_lost(
        mode in mode(),
        gate in any::<bool>(),
        ops in prop::collection::vec(op(), 1..120),
    ) {
        let (nic, peer) = Nic::sim(SimConfig::new(tight(mode, gate))).unwrap();
        let mut channels = [Some(open(&nic, 0)), Some(open(&nic, 1))];
        let mut held: Vec<Frame> = Vec::new();
        check(&nic, &held)?;
        for op in ops {
            match op {
                Op::Inject { port, len } => {
                    let payload = vec![0xab; len];
                    peer.inject(&build::udp_v4(client(7), server(PORTS[port]), &payload));
                }
                Op::InjectGarbage { len } => {
                    peer.inject(&vec![0x5a; len]);
                }
                Op::Poll { budget } => {
                    nic.poll_rx(budget);
                }
                Op::Recv { ch, max } => {
                    if let Some(c) = &channels[ch] {
                        let before = held.len();
                        let n = c.try_recv_batch(max, &mut held);
                        prop_assert_eq!(held.len() - before, n);
                        prop_assert!(n <= max);
                    }
                }
                Op::RecvOne { ch } => {
                    if let Some(f) = channels[ch].as_ref().and_then(Channel::try_recv) {
                        held.push(f);
                    }
                }
                Op::DropHeld { n } => {
                    let keep = held.len().saturating_sub(n);
                    held.truncate(keep);
                }
                Op::Transmit { ch, n } => {
                    if let Some(c) = &channels[ch] {
                        for _ in 0..n {
                            let Some(f) = held.pop() else { break };
                            // A full TX ring drops the frame (and says so): still no loss.
                            let _ = c.transmit(f);
                        }
                    }
                }
                Op::Alloc => {
                    if let Some(c) = &channels[0] {
                        if let Some(f) = c.alloc() {
                            held.push(f);
                        }
                    }
                }
                Op::TakeTx => {
                    peer.take_tx();
                }
                Op::Reopen { ch } => {
                    channels[ch] = None;
                    check(&nic, &held)?;
                    channels[ch] = Some(open(&nic, ch));
                }
            }
            check(&nic, &held)?;
        }
        // Wind down: the application lets go, the wire drains, the NIC reclaims. Every
        // frame must end up free or posted for reception.
        held.clear();
        drop(channels);
        for _ in 0..4 {
            peer.take_tx();
            nic.poll_rx(64);
        }
        let c = nic.census();
        prop_assert!(c.is_conserved());
        prop_assert_eq!(c.free + c.fill, c.total, "{:#?}", c);
    }
}
