//! Property tests for `NiChannel` and `Gate`: counters agree with a reference model, no
//! frame is lost or duplicated (also across threads), the gate's hysteresis holds.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use lrp_core::channel::{Gate, GateState, NiChannel};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Push(usize),
    Pop,
    PopBatch(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0usize..2000).prop_map(Op::Push),
        2 => Just(Op::Pop),
        1 => (0usize..6).prop_map(Op::PopBatch),
    ]
}

/// Reference hysteresis, written from the specification: closed iff the last occupancy
/// outside the band (open_at, close_at) was >= close_at.
struct ModelGate {
    close_at: usize,
    open_at: usize,
    closed: bool,
    closings: u64,
}

impl ModelGate {
    fn new(cap: usize) -> Self {
        // ceil(3C/4) and floor(C/4), computed the obvious way (small C in tests).
        ModelGate {
            close_at: (3 * cap).div_ceil(4),
            open_at: cap / 4,
            closed: false,
            closings: 0,
        }
    }
    fn observe(&mut self, len: usize) -> Option<GateState> {
        if len >= self.close_at && !self.closed {
            self.closed = true;
            self.closings += 1;
            Some(GateState::Closed)
        } else if len <= self.open_at && self.closed {
            self.closed = false;
            Some(GateState::Open)
        } else {
            None
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn sequential_ops_match_model(cap in 1usize..16, ops in prop::collection::vec(op(), 0..200)) {
        let ch = NiChannel::new(cap);
        let mut model: VecDeque<u64> = VecDeque::new();
        let mut gate = ModelGate::new(cap);
        let (mut pushes, mut ok, mut err, mut popped) = (0u64, 0u64, 0u64, 0u64);
        let (mut bytes_ok, mut bytes_err, mut high) = (0u64, 0u64, 0usize);
        let mut next = 0u64;
        for op in ops {
            match op {
                Op::Push(bytes) => {
                    let id = next;
                    next += 1;
                    pushes += 1;
                    let r = ch.push(id, bytes);
                    if model.len() < cap {
                        prop_assert_eq!(r, Ok(()));
                        model.push_back(id);
                        ok += 1;
                        bytes_ok += bytes as u64;
                        high = high.max(model.len());
                        gate.observe(model.len());
                    } else {
                        prop_assert_eq!(r, Err(id), "early discard hands the same item back");
                        err += 1;
                        bytes_err += bytes as u64;
                        gate.observe(cap);
                    }
                }
                Op::Pop => {
                    let got = ch.pop();
                    prop_assert_eq!(got, model.pop_front());
                    if got.is_some() {
                        popped += 1;
                        if gate.closed {
                            gate.observe(model.len());
                        }
                    }
                }
                Op::PopBatch(max) => {
                    let mut got = Vec::new();
                    let n = ch.pop_batch(max, |x| got.push(x));
                    let want: Vec<u64> = (0..max).map_while(|_| model.pop_front()).collect();
                    prop_assert_eq!(n, got.len());
                    prop_assert_eq!(&got, &want);
                    popped += n as u64;
                    if n > 0 && gate.closed {
                        gate.observe(model.len());
                    }
                }
            }
            let c = ch.counters();
            prop_assert!(ch.len() <= ch.capacity());
            prop_assert_eq!(ch.len(), model.len());
            prop_assert_eq!(c.offered, pushes);
            prop_assert_eq!(c.offered, c.enqueued + c.early_discarded);
            prop_assert_eq!((c.enqueued, c.early_discarded, c.dequeued), (ok, err, popped));
            prop_assert!(c.dequeued <= c.enqueued);
            prop_assert_eq!(c.enqueued - c.dequeued, ch.len() as u64);
            prop_assert_eq!((c.bytes_enqueued, c.bytes_discarded), (bytes_ok, bytes_err));
            prop_assert_eq!(c.high_water, high);
            // Gate: equal to the reference hysteresis, and its invariants.
            prop_assert_eq!(ch.gate_closed(), gate.closed);
            prop_assert_eq!(c.gate_closings, gate.closings);
            if ch.gate_closed() {
                prop_assert!(ch.len() > ch.gate().open_at(), "closed only above the open threshold");
                prop_assert!(c.high_water >= ch.gate().close_at());
            } else {
                prop_assert!(ch.len() < ch.gate().close_at(), "open only below the close threshold");
            }
        }
    }

    #[test]
    fn gate_matches_reference_hysteresis(
        cap in 1usize..10_000,
        lens in prop::collection::vec(0usize..10_000, 0..100),
    ) {
        let g = Gate::new(cap);
        let mut m = ModelGate::new(cap);
        prop_assert_eq!((g.close_at(), g.open_at()), (m.close_at, m.open_at));
        prop_assert!(g.open_at() < g.close_at());
        let mut last = None;
        for len in lens {
            let len = len.min(cap);
            let t = g.observe(len);
            prop_assert_eq!(t, m.observe(len));
            if let Some(s) = t {
                prop_assert_ne!(Some(s), last, "transitions alternate");
                last = Some(s);
                prop_assert_eq!(g.state(), s);
            }
            prop_assert_eq!(g.is_closed(), m.closed);
        }
        prop_assert_eq!(g.closings(), m.closings);
    }

    #[test]
    fn two_producers_two_consumers_lose_and_duplicate_nothing(
        cap in 1usize..64,
        per_producer in 0u64..3000,
    ) {
        let ch = NiChannel::new(cap);
        let done = AtomicBool::new(false);
        let deadline = Instant::now() + Duration::from_secs(20);
        let (rejected, popped) = std::thread::scope(|s| {
            let producers: Vec<_> = (0..2u64)
                .map(|p| {
                    let ch = &ch;
                    s.spawn(move || {
                        let mut rejected = Vec::new();
                        for i in 0..per_producer {
                            if let Err(x) = ch.push(p << 32 | i, 100) {
                                rejected.push(x);
                            }
                            if i % 64 == 0 {
                                std::thread::yield_now();
                            }
                        }
                        rejected
                    })
                })
                .collect();
            let consumers: Vec<_> = (0..2)
                .map(|_| {
                    let (ch, done) = (&ch, &done);
                    s.spawn(move || {
                        let mut got = Vec::new();
                        loop {
                            assert!(ch.len() <= ch.capacity());
                            match ch.pop() {
                                Some(x) => got.push(x),
                                None if done.load(Ordering::Acquire) && ch.is_empty() => break,
                                None => std::thread::yield_now(),
                            }
                            assert!(Instant::now() < deadline, "consumer did not finish in time");
                        }
                        got
                    })
                })
                .collect();
            let rejected: Vec<u64> =
                producers.into_iter().flat_map(|h| h.join().unwrap()).collect();
            done.store(true, Ordering::Release);
            let popped: Vec<Vec<u64>> = consumers.into_iter().map(|h| h.join().unwrap()).collect();
            (rejected, popped)
        });
        // Each consumer sees each producer's items in FIFO order.
        for got in &popped {
            for p in 0..2u64 {
                let mine: Vec<u64> = got.iter().copied().filter(|x| x >> 32 == p).collect();
                prop_assert!(mine.windows(2).all(|w| w[0] < w[1]));
            }
        }
        let popped: Vec<u64> = popped.into_iter().flatten().collect();
        let all: HashSet<u64> = popped.iter().chain(&rejected).copied().collect();
        prop_assert_eq!(all.len() as u64, 2 * per_producer, "nothing lost, nothing duplicated");
        prop_assert_eq!((popped.len() + rejected.len()) as u64, 2 * per_producer);
        let c = ch.counters();
        prop_assert_eq!(c.offered, 2 * per_producer);
        prop_assert_eq!(c.offered, c.enqueued + c.early_discarded);
        prop_assert_eq!(c.early_discarded, rejected.len() as u64);
        prop_assert_eq!(c.enqueued, popped.len() as u64);
        prop_assert_eq!(c.dequeued, c.enqueued);
        prop_assert_eq!(c.bytes_enqueued, 100 * c.enqueued);
        prop_assert!(c.high_water <= cap);
        prop_assert!(ch.is_empty());
        // Quiescent and empty: whatever order the last pushes and pops observed the
        // occupancy in, the gate has settled open.
        prop_assert!(!ch.gate_closed(), "gate left closed on an empty, idle channel");
    }
}
