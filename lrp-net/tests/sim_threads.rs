//! Receivers on their own threads, blocking in `Channel::wait`, with nobody else running
//! the poll step: the receivers run it themselves. The sender keeps at most `WINDOW`
//! frames outstanding per receiver (below the channel's capacity and its gate), so no
//! channel overflows and every frame must arrive, in order, in every mode — which
//! exercises the wake-ups: a lost one stalls a receiver until its wait times out, and the
//! deadline turns a stall into a failure. Bounded: each wait has a timeout and the whole
//! test a deadline.

mod sim_common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use lrp_core::flow::Proto;
use lrp_net::Rule;
use sim_common::{assert_conserved, seq_of, sim, udp_to, MODES};

const PER_CHANNEL: u32 = 2000;
const WINDOW: u32 = 128;
const DEADLINE: Duration = Duration::from_secs(60);

#[test]
fn blocking_receivers_get_everything_in_order() {
    for mode in MODES {
        let (nic, peer) = sim(mode);
        let ports = [7101u16, 7102];
        let channels: Vec<_> = ports
            .iter()
            .map(|&p| {
                nic.channel(Rule::listener(Proto::Udp, None, p), 256)
                    .unwrap()
            })
            .collect();
        let received = [AtomicU32::new(0), AtomicU32::new(0)];
        let start = Instant::now();
        std::thread::scope(|s| {
            for (ch, received) in channels.iter().zip(&received) {
                s.spawn(move || {
                    let mut next = 0u32;
                    let mut batch = Vec::new();
                    while next < PER_CHANNEL {
                        assert!(
                            start.elapsed() < DEADLINE,
                            "{mode:?}: receiver stuck at {next}"
                        );
                        if ch.try_recv_batch(64, &mut batch) == 0 {
                            // The sender only waits for this receiver's progress, so a
                            // wait that times out means a lost wake-up.
                            let woke = ch.wait(Some(Duration::from_secs(5))).unwrap();
                            assert!(woke, "{mode:?}: lost wake-up at {next}");
                            continue;
                        }
                        for f in batch.drain(..) {
                            assert_eq!(seq_of(&f), next, "{mode:?}: in order, none lost");
                            next += 1;
                        }
                        received.store(next, Ordering::Release);
                    }
                });
            }
            // The sender: a window per receiver; when the NIC has no room (shared ring
            // full, no posted buffer) it backs off and retries.
            s.spawn(|| {
                for seq in 0..PER_CHANNEL {
                    for (&port, received) in ports.iter().zip(&received) {
                        while seq >= received.load(Ordering::Acquire) + WINDOW {
                            assert!(start.elapsed() < DEADLINE, "{mode:?}: window stuck");
                            std::thread::sleep(Duration::from_micros(50));
                        }
                        let frame = udp_to(port, seq);
                        while !peer.inject(&frame) {
                            assert!(start.elapsed() < DEADLINE, "{mode:?}: injector stuck");
                            std::thread::sleep(Duration::from_micros(50));
                        }
                    }
                }
            });
        });
        for ch in &channels {
            let s = ch.stats();
            assert_eq!(s.rx_packets, u64::from(PER_CHANNEL), "{mode:?}");
            assert_eq!(s.account.total_drops(), 0, "{mode:?}");
        }
        assert_conserved(&nic, 0);
    }
}

/// A dedicated poll thread (`wait_rx` + `poll_rx`), a receiver that holds most of the
/// pool for a while, so that the NIC runs out of buffers: reception must resume every
/// time the receiver lets frames go (no frame lost, no stall).
#[test]
fn dedicated_poll_thread_with_a_pool_that_runs_dry() {
    use lrp_net::sim::SimConfig;
    use lrp_net::Nic;
    use std::sync::atomic::AtomicBool;

    const FRAMES: u32 = 3000;
    for mode in MODES {
        let config = sim_common::config(mode)
            .frame_count(32)
            .fill_ring(16)
            .batch(8);
        let (nic, peer) = Nic::sim(SimConfig::new(config)).unwrap();
        let ch = nic
            .channel(Rule::listener(Proto::Udp, None, 7201), 64)
            .unwrap();
        let stop = AtomicBool::new(false);
        let start = Instant::now();
        std::thread::scope(|s| {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    nic.wait_rx(Some(Duration::from_millis(20))).unwrap();
                    nic.poll_rx(64);
                }
            });
            s.spawn(|| {
                let mut next = 0u32;
                let mut held = Vec::new();
                while next < FRAMES {
                    assert!(
                        start.elapsed() < DEADLINE,
                        "{mode:?}: receiver stuck at {next}"
                    );
                    match ch.try_recv() {
                        Some(f) => {
                            assert_eq!(seq_of(&f), next, "{mode:?}");
                            next += 1;
                            // Hold 28 of the 32 frames before letting them go. The
                            // first time, keep them until the NIC has reported running
                            // out of buffers (the other 4 are soon all queued here), so
                            // that the dry pool and the recovery from it are certain.
                            held.push(f);
                            if held.len() == 28 {
                                while peer.stats().rx_no_buffer == 0 {
                                    assert!(start.elapsed() < DEADLINE, "{mode:?}: never dry");
                                    std::thread::sleep(Duration::from_micros(100));
                                }
                                held.clear();
                            }
                        }
                        None => {
                            ch.wait(Some(Duration::from_millis(20))).unwrap();
                        }
                    }
                }
                stop.store(true, Ordering::Relaxed);
            });
            s.spawn(|| {
                for seq in 0..FRAMES {
                    let frame = udp_to(7201, seq);
                    while !peer.inject(&frame) {
                        assert!(start.elapsed() < DEADLINE, "{mode:?}: injector stuck");
                        std::thread::sleep(Duration::from_micros(20));
                    }
                }
            });
        });
        let s = ch.stats();
        assert_eq!(s.rx_packets, u64::from(FRAMES), "{mode:?}");
        assert!(
            peer.stats().rx_no_buffer > 0,
            "{mode:?}: the pool did run dry"
        );
        nic.poll_rx(64);
        assert_conserved(&nic, 0);
    }
}
