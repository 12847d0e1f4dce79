//! Properties of the director's schedulers: exact wrr ratios, Maglev balance and minimal
//! disruption, identical decisions on independently built schedulers, weight 0 drains.
//!
//! Run with `--nocapture` to see the measured Maglev imbalance and remap fractions.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use lrp_core::flow::{FlowKey, Proto};
use lrp_examples::director::maglev::{next_prime, FlowHash};
use lrp_examples::director::scheduler::{
    Algorithm, NoLoad, Persistence, RealServer, Scheduler, SchedulerConfig, SchedulerError,
    ServerId,
};
use proptest::prelude::*;

fn server(i: u32) -> RealServer {
    let [_, _, b, c] = i.to_be_bytes();
    RealServer::new(SocketAddr::from(([10, 1, b, c], 8080)))
}

fn flow(n: u64) -> FlowKey {
    // A deterministic spread of clients (splitmix64 of n).
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    FlowKey {
        proto: Proto::Tcp,
        src: IpAddr::V4(Ipv4Addr::from((z >> 32) as u32)),
        dst: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        sport: z as u16 | 1024,
        dport: 80,
    }
}

fn sched(algorithm: Algorithm, servers: impl IntoIterator<Item = RealServer>) -> Scheduler {
    Scheduler::with_servers(SchedulerConfig::new(algorithm), servers).unwrap()
}

/// Entries per server address in the Maglev table.
fn maglev_counts(s: &Scheduler) -> HashMap<SocketAddr, usize> {
    let mut counts = HashMap::new();
    for id in s.maglev_entries() {
        *counts.entry(s.server(id).unwrap().addr).or_default() += 1;
    }
    counts
}

fn pick_addr(s: &mut Scheduler, f: &FlowKey) -> SocketAddr {
    let id = s.pick(f, &NoLoad).unwrap();
    s.server(id).unwrap().addr
}

fn maglev_addrs(s: &Scheduler) -> Vec<SocketAddr> {
    s.maglev_entries()
        .map(|id| s.server(id).unwrap().addr)
        .collect()
}

fn imbalance(s: &Scheduler, n: usize) -> f64 {
    let counts = maglev_counts(s);
    assert_eq!(counts.len(), n);
    let max = *counts.values().max().unwrap() as f64;
    let mean = counts.values().sum::<usize>() as f64 / n as f64;
    max / mean - 1.0
}

#[test]
fn maglev_equal_weights_imbalance_under_one_percent() {
    let mut worst_default: f64 = 0.0;
    let mut worst_small: f64 = 0.0;
    for n in 2..=20u32 {
        let default = sched(Algorithm::Maglev, (0..n).map(server));
        worst_default = worst_default.max(imbalance(&default, n as usize));
        // The smallest prime table above 100 × servers.
        let size = next_prime(100 * n + 1);
        let small = Scheduler::with_servers(
            SchedulerConfig::new(Algorithm::Maglev).table_size(size),
            (0..n).map(server),
        )
        .unwrap();
        worst_small = worst_small.max(imbalance(&small, n as usize));
    }
    eprintln!(
        "maglev imbalance (max/mean - 1), N = 2..=20 equal weights: \
         M = 65537: {:.4}%, M = next prime > 100N: {:.4}%",
        worst_default * 100.0,
        worst_small * 100.0
    );
    assert!(worst_default <= 0.01 && worst_small <= 0.01);
}

#[test]
fn maglev_remove_one_moves_about_one_nth_and_adding_back_restores() {
    let mut worst_others: f64 = 0.0;
    let mut worst_flows: f64 = 0.0;
    for n in 2..=20u32 {
        for removed in [0, n / 2, n - 1] {
            let mut s = sched(Algorithm::Maglev, (0..n).map(server));
            let before = maglev_addrs(&s);
            let flows: Vec<FlowKey> = (0..20_000).map(flow).collect();
            let picks_before: Vec<ServerId> = flows
                .iter()
                .map(|f| s.consistent_pick(f).unwrap())
                .collect();
            let gone = server(removed).addr;
            let id = s.id_of(gone).unwrap();
            s.remove(id).unwrap();
            let after = maglev_addrs(&s);
            // Every entry of the removed server moved; of the others, few did.
            let others: Vec<usize> = (0..before.len()).filter(|&i| before[i] != gone).collect();
            assert!(after.iter().all(|&a| a != gone));
            let moved = others.iter().filter(|&&i| before[i] != after[i]).count();
            let frac = moved as f64 / others.len() as f64;
            worst_others = worst_others.max(frac);
            assert!(
                frac < 0.02,
                "N={n}: {:.3}% of surviving entries moved",
                frac * 100.0
            );
            // The same on flows.
            let (mut kept_total, mut kept_moved) = (0usize, 0usize);
            for (f, &p) in flows.iter().zip(&picks_before) {
                let now = s.consistent_pick(f).unwrap();
                assert_ne!(now, id);
                if p != id {
                    kept_total += 1;
                    kept_moved += usize::from(now != p);
                }
            }
            worst_flows = worst_flows.max(kept_moved as f64 / kept_total as f64);
            // Adding it back restores the table exactly.
            s.add(server(removed)).unwrap();
            assert_eq!(maglev_addrs(&s), before, "N={n}: re-adding restores");
        }
    }
    eprintln!(
        "maglev remove 1 of N (N = 2..=20, M = 65537): worst fraction of surviving entries \
         moved {:.3}%, of surviving flows moved {:.3}%",
        worst_others * 100.0,
        worst_flows * 100.0
    );
}

#[test]
fn independently_built_schedulers_decide_identically() {
    let servers: Vec<RealServer> = (0..12).map(|i| server(i).weight(1 + i % 3)).collect();
    let mut reversed = servers.clone();
    reversed.reverse();
    for algorithm in Algorithm::ALL {
        let mut a = sched(algorithm, servers.iter().copied());
        let mut b = sched(algorithm, reversed.iter().copied());
        if algorithm == Algorithm::Maglev {
            assert_eq!(maglev_addrs(&a), maglev_addrs(&b));
        }
        for n in 0..5000 {
            let f = flow(n);
            let pa = a.pick(&f, &NoLoad).map(|id| a.server(id).unwrap().addr);
            let pb = b.pick(&f, &NoLoad).map(|id| b.server(id).unwrap().addr);
            assert_eq!(pa, pb, "{algorithm}");
        }
    }
    // A different seed gives a different table (the seed is really used).
    let c = Scheduler::with_servers(
        SchedulerConfig::new(Algorithm::Maglev).seed([1, 2]),
        servers.iter().copied(),
    )
    .unwrap();
    assert_ne!(
        maglev_addrs(&c),
        maglev_addrs(&sched(Algorithm::Maglev, servers))
    );
}

#[test]
fn weight_zero_gets_no_new_flows() {
    for algorithm in Algorithm::ALL {
        let servers = [server(0), server(1).weight(0), server(2).weight(3)];
        let mut s = sched(algorithm, servers);
        let drained = s.id_of(server(1).addr).unwrap();
        let load = |id: ServerId| if id == drained { 0 } else { 1000 };
        for n in 0..3000 {
            assert_ne!(s.pick(&flow(n), &load), Some(drained), "{algorithm}");
            assert_ne!(s.consistent_pick(&flow(n)), Some(drained));
        }
        assert!(!maglev_counts(&s).contains_key(&server(1).addr));
        // Everyone drained: nothing to pick.
        for (id, _) in s.servers().map(|(id, r)| (id, *r)).collect::<Vec<_>>() {
            s.set_weight(id, 0).unwrap();
        }
        assert_eq!(s.pick(&flow(1), &NoLoad), None, "{algorithm}");
        assert_eq!(s.consistent_pick(&flow(1)), None);
    }
    assert_eq!(
        sched(Algorithm::RoundRobin, []).pick(&flow(0), &NoLoad),
        None
    );
}

#[test]
fn round_robin_cycles_in_address_order_skipping_drained() {
    let mut s = sched(
        Algorithm::RoundRobin,
        [
            server(3),
            server(1),
            server(2).weight(0),
            server(4).weight(9),
        ],
    );
    let picks: Vec<SocketAddr> = (0..6).map(|n| pick_addr(&mut s, &flow(n))).collect();
    let [a, c, d] = [server(1).addr, server(3).addr, server(4).addr];
    assert_eq!(picks, [a, c, d, a, c, d]);
}

#[test]
fn least_connections() {
    let mut s = sched(
        Algorithm::LeastConn,
        [server(0), server(1).weight(4), server(2)],
    );
    let ids: Vec<ServerId> = s.servers().map(|(id, _)| id).collect();
    let conns = HashMap::from([(ids[0], 10u64), (ids[1], 12), (ids[2], 9)]);
    assert_eq!(s.pick(&flow(0), &|id| conns[&id]), Some(ids[2]));
    // Ties go to the first in address order.
    assert_eq!(s.pick(&flow(0), &|_| 5), Some(ids[0]));
    // wlc: 12/4 = 3 beats 9/1 and 10/1.
    let mut w = sched(
        Algorithm::WeightedLeastConn,
        [server(0), server(1).weight(4), server(2)],
    );
    let wids: Vec<ServerId> = w.servers().map(|(id, _)| id).collect();
    let conns = HashMap::from([(wids[0], 10u64), (wids[1], 12), (wids[2], 9)]);
    assert_eq!(w.pick(&flow(0), &|id| conns[&id]), Some(wids[1]));
    let conns = HashMap::from([(wids[0], 2u64), (wids[1], 12), (wids[2], 9)]);
    assert_eq!(w.pick(&flow(0), &|id| conns[&id]), Some(wids[0]));
}

#[test]
fn source_hash_keeps_a_client_and_remaps_on_change() {
    let mut s = sched(Algorithm::SourceHash, (0..8).map(server));
    let base = flow(42);
    let first = s.pick(&base, &NoLoad).unwrap();
    for port in [1u16, 2, 3, 65535] {
        let f = FlowKey {
            sport: port,
            ..base
        };
        assert_eq!(s.pick(&f, &NoLoad), Some(first));
    }
    // Removing one of 8 servers moves far more than 1/8 of the clients (documented).
    let flows: Vec<FlowKey> = (0..10_000).map(flow).collect();
    let before: Vec<SocketAddr> = flows.iter().map(|f| pick_addr(&mut s, f)).collect();
    let last = s.id_of(server(7).addr).unwrap();
    s.remove(last);
    let moved = flows
        .iter()
        .zip(&before)
        .filter(|&(f, &b)| pick_addr(&mut s, f) != b)
        .count();
    let frac = moved as f64 / flows.len() as f64;
    eprintln!("sh remove 1 of 8: {:.1}% of clients moved", frac * 100.0);
    assert!(frac > 0.5);
}

#[test]
fn maglev_by_source_address_keeps_a_client() {
    let s = Scheduler::with_servers(
        SchedulerConfig::new(Algorithm::Maglev).flow_hash(FlowHash::SourceAddr),
        (0..8).map(server),
    )
    .unwrap();
    let base = flow(7);
    let first = s.consistent_pick(&base);
    for port in 1000..1100 {
        assert_eq!(
            s.consistent_pick(&FlowKey {
                sport: port,
                ..base
            }),
            first
        );
    }
}

#[test]
fn persistence_sends_a_client_back_within_the_timeout() {
    let mut s = sched(Algorithm::RoundRobin, (0..4).map(server));
    let mut p = Persistence::new(100, 2);
    let f = flow(1);
    let first = s.pick_persistent(&mut p, &f, &NoLoad, 0).unwrap();
    for t in [10, 50, 120, 200] {
        // Refreshed by each new flow: still sticky 80 after the previous one.
        let g = FlowKey {
            sport: t as u16,
            ..f
        };
        assert_eq!(s.pick_persistent(&mut p, &g, &NoLoad, t), Some(first));
    }
    // Idle past the timeout: scheduled afresh (rr has moved on).
    assert_ne!(s.pick_persistent(&mut p, &f, &NoLoad, 300), Some(first));
    // A drained server takes no new flows, persistent or not.
    let mut p = Persistence::new(100, 2);
    let first = s.pick_persistent(&mut p, &f, &NoLoad, 0).unwrap();
    s.set_weight(first, 0).unwrap();
    assert_ne!(s.pick_persistent(&mut p, &f, &NoLoad, 1), Some(first));
    // Bounded: a third client is not remembered; expiry reclaims.
    assert!(p.record(flow(2).src, ServerId(0), 1));
    assert!(!p.record(flow(3).src, ServerId(0), 1));
    assert_eq!(p.len(), 2);
    assert_eq!(p.expire(100, 10), 0);
    assert_eq!(p.expire(101, 10), 2);
    assert!(p.is_empty());
}

#[test]
fn configuration_errors() {
    assert_eq!(
        Scheduler::new(SchedulerConfig::new(Algorithm::Maglev).table_size(65_536)).unwrap_err(),
        SchedulerError::NotPrime(65_536)
    );
    let mut s = Scheduler::new(SchedulerConfig::new(Algorithm::Maglev).table_size(5)).unwrap();
    for i in 0..4 {
        s.add(server(i)).unwrap();
    }
    assert!(matches!(
        s.add(server(9)),
        Err(SchedulerError::TableTooSmall { size: 5, .. })
    ));
    assert_eq!(
        s.add(server(1)),
        Err(SchedulerError::DuplicateServer(server(1).addr))
    );
    assert_eq!(
        s.set_weight(ServerId(99), 1),
        Err(SchedulerError::UnknownServer(ServerId(99)))
    );
    for a in Algorithm::ALL {
        assert_eq!(a.name().parse::<Algorithm>(), Ok(a));
    }
    assert!("lblc".parse::<Algorithm>().is_err());
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Over one cycle of Σw picks, smooth wrr picks each server exactly its weight.
    #[test]
    fn wrr_ratios_exact_over_one_cycle(weights in proptest::collection::vec(0u32..=20, 1..=12)) {
        let total: u32 = weights.iter().sum();
        let mut s = sched(
            Algorithm::WeightedRoundRobin,
            weights.iter().enumerate().map(|(i, &w)| server(i as u32).weight(w)),
        );
        for _cycle in 0..2 {
            let mut counts: HashMap<ServerId, u32> = HashMap::new();
            for n in 0..total {
                *counts.entry(s.pick(&flow(u64::from(n)), &NoLoad).unwrap()).or_default() += 1;
            }
            for (i, &w) in weights.iter().enumerate() {
                let id = s.id_of(server(i as u32).addr).unwrap();
                prop_assert_eq!(counts.get(&id).copied().unwrap_or(0), w);
            }
        }
        if total == 0 {
            prop_assert_eq!(s.pick(&flow(0), &NoLoad), None);
        }
    }

    /// Weighted Maglev: each server's share of the table is within 3% (relative) of its
    /// share of the weights.
    #[test]
    fn weighted_maglev_shares_follow_weights(weights in proptest::collection::vec(1u32..=10, 2..=10)) {
        let s = sched(
            Algorithm::Maglev,
            weights.iter().enumerate().map(|(i, &w)| server(i as u32).weight(w)),
        );
        let counts = maglev_counts(&s);
        let total_w: u32 = weights.iter().sum();
        let m = s.config().table_size as f64;
        for (i, &w) in weights.iter().enumerate() {
            let share = counts[&server(i as u32).addr] as f64 / m;
            let want = f64::from(w) / f64::from(total_w);
            prop_assert!((share / want - 1.0).abs() < 0.03, "server {} w {} share {} want {}", i, w, share, want);
        }
    }
}

/// Not a property, a measurement: the worst relative share error of weighted Maglev over
/// a fixed set of weight vectors (printed with `--nocapture`).
#[test]
fn weighted_maglev_share_error_report() {
    let mut worst: f64 = 0.0;
    for n in 2..=10u32 {
        let weights: Vec<u32> = (0..n).map(|i| 1 + (i * 7 + n) % 10).collect();
        let s = sched(
            Algorithm::Maglev,
            weights
                .iter()
                .enumerate()
                .map(|(i, &w)| server(i as u32).weight(w)),
        );
        let counts = maglev_counts(&s);
        let total_w: u32 = weights.iter().sum();
        for (i, &w) in weights.iter().enumerate() {
            let share = counts[&server(i as u32).addr] as f64 / 65_537.0;
            worst = worst.max((share / (f64::from(w) / f64::from(total_w)) - 1.0).abs());
        }
    }
    eprintln!(
        "weighted maglev: worst relative share error {:.3}%",
        worst * 100.0
    );
    assert!(worst < 0.03);
}
