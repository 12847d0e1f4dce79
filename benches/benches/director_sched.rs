//! The director's schedulers: the cost of picking a server for a new flow, and of
//! rebuilding the Maglev table when the server set changes.
//!
//! * `maglev/lookup/<servers>`: `Scheduler::consistent_pick` (SipHash-2-4 of the 5-tuple
//!   plus one table read), table size 65537.
//! * `maglev/rebuild/<servers>`: `Scheduler::set_weight` on one server, which rebuilds
//!   the Maglev table (65537 entries) and the source-hash table.
//! * `pick/<algorithm>/<servers>`: `Scheduler::pick` for `rr`, `wrr`, `lc`, `wlc`, `sh`;
//!   `lc`/`wlc` read loads from a slice (what a per-server counter lookup costs is the
//!   caller's).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use lrp_core::flow::{FlowKey, Proto};
use lrp_examples::director::scheduler::{
    Algorithm, NoLoad, RealServer, Scheduler, SchedulerConfig, ServerId,
};

const SERVERS: [u32; 2] = [10, 100];
const POOL: usize = 4096;

fn flow(n: u32) -> FlowKey {
    let z = n.wrapping_mul(0x9e37_79b9);
    FlowKey {
        proto: Proto::Tcp,
        src: IpAddr::V4(Ipv4Addr::from(z)),
        dst: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        sport: 1024 + (z >> 20) as u16,
        dport: 80,
    }
}

fn scheduler(algorithm: Algorithm, n: u32) -> Scheduler {
    Scheduler::with_servers(
        SchedulerConfig::new(algorithm),
        (0..n).map(|i| {
            RealServer::new(SocketAddr::from(([10, 1, (i >> 8) as u8, i as u8], 8080)))
                .weight(1 + i % 5)
        }),
    )
    .expect("valid servers")
}

fn bench_maglev(c: &mut Criterion) {
    let flows: Vec<FlowKey> = (0..POOL as u32).map(flow).collect();
    let mut group = c.benchmark_group("maglev");
    group
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    for n in SERVERS {
        let s = scheduler(Algorithm::Maglev, n);
        let mut i = 0;
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("lookup", n), |b| {
            b.iter(|| {
                i = (i + 1) % POOL;
                black_box(s.consistent_pick(black_box(&flows[i])))
            })
        });
        let mut s = s;
        let id = s.servers().next().map(|(id, _)| id).expect("servers");
        let mut w = 1;
        group.bench_function(BenchmarkId::new("rebuild", n), |b| {
            b.iter(|| {
                w = 3 - w;
                s.set_weight(id, w).expect("known server");
            })
        });
    }
    group.finish();
}

fn bench_pick(c: &mut Criterion) {
    let flows: Vec<FlowKey> = (0..POOL as u32).map(flow).collect();
    let mut group = c.benchmark_group("pick");
    group
        .throughput(Throughput::Elements(1))
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    for algorithm in [
        Algorithm::RoundRobin,
        Algorithm::WeightedRoundRobin,
        Algorithm::LeastConn,
        Algorithm::WeightedLeastConn,
        Algorithm::SourceHash,
    ] {
        for n in SERVERS {
            let mut s = scheduler(algorithm, n);
            let loads: Vec<u64> = (0..u64::from(n)).map(|i| (i * 7919) % 1000).collect();
            let load = |id: ServerId| loads[id.0 as usize];
            let mut i = 0;
            group.bench_function(BenchmarkId::new(algorithm.name(), n), |b| {
                b.iter(|| {
                    i = (i + 1) % POOL;
                    match algorithm {
                        Algorithm::LeastConn | Algorithm::WeightedLeastConn => {
                            black_box(s.pick(black_box(&flows[i]), &load))
                        }
                        _ => black_box(s.pick(black_box(&flows[i]), &NoLoad)),
                    }
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_maglev, bench_pick);
criterion_main!(benches);
