//! The director's connection table: lookup cost from 1K to 10M entries.
//!
//! * `conntrack/hit/<entries>`: `ConnTable::lookup` of a random existing flow, time not
//!   advancing (no relink).
//! * `conntrack/hit_touch/<entries>`: the same with time advancing past the touch
//!   granularity on every lookup, so each hit also moves its entry to the tail of its
//!   expiry list (the per-packet cost of a flow seen less often than every 10 ms).
//! * `conntrack/miss/<entries>`: lookup of a flow that is not in the table.
//!
//! Each table is filled to its cap (`max_entries` = the size). Before each group the
//! bench prints the build time, bytes per entry and the table's total memory. Lookups
//! walk a pool of keys chosen at random from the whole table, so large tables miss the
//! cache the way real traffic does. The 10M table takes about 810 MB and builds in ~10 s.
//!
//! Reading the numbers: a hit is three dependent random memory accesses (hashbrown's
//! control byte, its slot, the slab entry), a miss usually one. Once the table outgrows
//! the caches the cost is memory latency, not hashing: on the 2-core development VM (4 KiB
//! pages, nested paging) one dependent random load measured ~300 ns over 76 MB and
//! ~650 ns over 760 MB, and hits ~1.0 µs at 1M and ~1.6 µs at 10M entries, misses
//! ~0.23 / ~0.34 µs, against ~45 ns for a hit at 1K. Huge pages and batched lookups
//! with prefetch are the levers, not the hash table's shape.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use lrp_core::flow::{FlowKey, Proto};
use lrp_examples::director::conntrack::{ConnState, ConnTable, ConnTableConfig, SECOND};
use lrp_examples::director::scheduler::ServerId;

const SIZES: [usize; 3] = [1_000, 1_000_000, 10_000_000];
const POOL: usize = 1 << 16;

/// xorshift64*: deterministic, dependency-free randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// The `n`-th client flow to the virtual service (unique for n < 2^32); `miss` keys use
/// another virtual port, so they are never in the table.
fn key(n: u32, miss: bool) -> FlowKey {
    FlowKey {
        proto: Proto::Tcp,
        src: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (n >> 6))),
        dst: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        sport: 1024 + (n & 63) as u16,
        dport: if miss { 443 } else { 80 },
    }
}

fn build(entries: usize) -> ConnTable {
    let start = Instant::now();
    let mut table = ConnTable::new(ConnTableConfig::new(entries));
    for n in 0..entries as u32 {
        table
            .insert(key(n, false), ServerId(n % 16), ConnState::Established, 0)
            .expect("the table is sized for every entry");
    }
    eprintln!(
        "conntrack {entries} entries: built in {:.2} s, {:.1} bytes/entry, {:.1} MiB total",
        start.elapsed().as_secs_f64(),
        table.bytes_per_entry(),
        table.memory_bytes() as f64 / (1 << 20) as f64,
    );
    table
}

fn bench_conntrack(c: &mut Criterion) {
    let mut group = c.benchmark_group("conntrack");
    group
        .throughput(Throughput::Elements(1))
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    for entries in SIZES {
        let mut table = build(entries);
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let pool: Vec<FlowKey> = (0..POOL)
            .map(|_| key((rng.next() % entries as u64) as u32, false))
            .collect();
        let misses: Vec<FlowKey> = (0..POOL)
            .map(|_| key((rng.next() % entries as u64) as u32, true))
            .collect();
        let mut i = 0;
        group.bench_function(BenchmarkId::new("hit", entries), |b| {
            b.iter(|| {
                i = (i + 1) % POOL;
                black_box(table.lookup(black_box(&pool[i]), 0))
            })
        });
        let mut now = 0;
        group.bench_function(BenchmarkId::new("hit_touch", entries), |b| {
            b.iter(|| {
                i = (i + 1) % POOL;
                now += SECOND / 100;
                black_box(table.lookup(black_box(&pool[i]), now))
            })
        });
        group.bench_function(BenchmarkId::new("miss", entries), |b| {
            b.iter(|| {
                i = (i + 1) % POOL;
                black_box(table.lookup(black_box(&misses[i]), now))
            })
        });
        assert_eq!(table.len(), entries, "nothing expired during the bench");
    }
    group.finish();
}

criterion_group!(benches, bench_conntrack);
criterion_main!(benches);
