//! Early demultiplexing cost per packet, and eager vs LRP cost per offered packet.
//!
//! * `lrp_ingress/<case>/<flows>`: `flow::classify` + `Demux::lookup` + `NiChannel::push`
//!   (through `LrpPipeline::ingress`) + one `pop` to keep the channel steady, per frame,
//!   with an exact table of 1, 1K and 1M flows. Cases: `exact_hit` (frames of random
//!   existing flows), `listener_hit` (a SYN to a wildcard listener, exact table probed
//!   and missed), `miss` (nothing matches, default drop).
//! * `classify/exact_hit`: `flow::classify` alone, and `lookup/exact_hit/<flows>`:
//!   `Demux::lookup` alone on pre-classified frames, to split the ingress cost.
//! * `overload/<mode>`: one endpoint (channel of 256) offered a burst of 4096 frames, the
//!   receiver taking 256 per burst; the protocol work (classify + `wire::verify` +
//!   lookup) runs where the mode puts it. Reported per *offered* frame.
//!
//! Frames are hand-built Ethernet/IPv4/UDP-or-TCP byte arrays with valid checksums. Each
//! iteration walks a pool of frames chosen at random, so large tables miss the cache the
//! way real traffic does. Throughput is in frames: criterion's time per element is the
//! cost per packet.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use lrp_core::account::DropReason;
use lrp_core::channel::{Endpoints, FrameLen};
use lrp_core::demux::{ChannelId, DefaultAction, Demux, Listener, ListenerKey};
use lrp_core::eager::{Disposition, LrpPipeline, Mode, Pipeline};
use lrp_core::flow::{self, Classification, FlowKey, Proto, TcpFlags};
use lrp_core::wire;

const LOCAL: [u8; 4] = [10, 0, 0, 2];
const SERVICE_PORT: u16 = 80;
const POOL: usize = 4096;
const ENDPOINTS: u32 = 64;

/// xorshift64*: deterministic, dependency-free randomness for the tables and pools.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

// ---- hand-built frames ------------------------------------------------------------------

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

fn add_bytes(mut sum: u32, data: &[u8]) -> u32 {
    for pair in data.chunks(2) {
        let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    sum
}

/// Ethernet + IPv4 (no options, DF) + the given transport segment, with its checksum
/// (at `csum_at` within the segment) computed over the pseudo header.
fn ipv4_frame(proto: u8, src: [u8; 4], dst: [u8; 4], mut l4: Vec<u8>, csum_at: usize) -> Vec<u8> {
    let l4_len = l4.len() as u16;
    let mut pseudo = add_bytes(0, &src);
    pseudo = add_bytes(pseudo, &dst);
    pseudo += u32::from(proto) + u32::from(l4_len);
    let csum = !fold(add_bytes(pseudo, &l4));
    l4[csum_at..csum_at + 2].copy_from_slice(&csum.to_be_bytes());

    let mut f = Vec::with_capacity(14 + 20 + l4.len());
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00]);
    let total = 20 + l4_len;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[6] = 0x40; // DF
    ip[8] = 64;
    ip[9] = proto;
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    let hcsum = !fold(add_bytes(0, &ip));
    ip[10..12].copy_from_slice(&hcsum.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&l4);
    f
}

fn tcp_frame(src: [u8; 4], sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut seg = vec![0u8; 20 + 6];
    seg[0..2].copy_from_slice(&sport.to_be_bytes());
    seg[2..4].copy_from_slice(&dport.to_be_bytes());
    seg[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    seg[12] = 5 << 4;
    seg[13] = flags;
    seg[14..16].copy_from_slice(&64240u16.to_be_bytes());
    seg[20..].copy_from_slice(b"hello!");
    ipv4_frame(6, src, LOCAL, seg, 16)
}

fn udp_frame(src: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let mut seg = vec![0u8; 8 + 18];
    seg[0..2].copy_from_slice(&sport.to_be_bytes());
    seg[2..4].copy_from_slice(&dport.to_be_bytes());
    seg[4..6].copy_from_slice(&26u16.to_be_bytes());
    seg[8..].copy_from_slice(b"eighteen bytes ok!");
    ipv4_frame(17, src, LOCAL, seg, 6)
}

/// A frame descriptor as an AF_XDP stack would queue it: an index into the pool.
#[derive(Debug, Clone, Copy)]
struct Desc {
    index: u32,
    len: u32,
}

impl FrameLen for Desc {
    fn frame_len(&self) -> usize {
        self.len as usize
    }
}

// ---- setups -------------------------------------------------------------------------------

/// A demux with `flows` established TCP flows from random 10.128/9 peers to LOCAL:80, a
/// wildcard TCP listener on :80 with a SYN channel, and 64 endpoints.
struct Setup {
    demux: Demux,
    endpoints: Endpoints<Desc>,
    keys: Vec<FlowKey>,
}

fn setup(flows: usize, rng: &mut Rng) -> Setup {
    let mut endpoints = Endpoints::new();
    for _ in 0..ENDPOINTS {
        endpoints.insert(1024);
    }
    let mut demux = Demux::with_capacity(DefaultAction::Drop, flows);
    let mut keys = Vec::with_capacity(flows);
    while keys.len() < flows {
        let r = rng.next();
        let a = r as u32;
        let src = [10, 0x80 | (a >> 16) as u8, (a >> 8) as u8, a as u8];
        let key = FlowKey {
            proto: Proto::Tcp,
            src: IpAddr::V4(Ipv4Addr::from(src)),
            dst: IpAddr::V4(Ipv4Addr::from(LOCAL)),
            sport: (r >> 32) as u16 | 1024,
            dport: SERVICE_PORT,
        };
        let channel = ChannelId(keys.len() as u32 % (ENDPOINTS - 2));
        if demux.insert_flow(key, channel).is_none() {
            keys.push(key);
        }
    }
    demux.insert_listener(
        ListenerKey::any(Proto::Tcp, SERVICE_PORT),
        Listener::new(ChannelId(ENDPOINTS - 2)).with_syn_channel(ChannelId(ENDPOINTS - 1)),
    );
    Setup {
        demux,
        endpoints,
        keys,
    }
}

fn octets(addr: IpAddr) -> [u8; 4] {
    match addr {
        IpAddr::V4(a) => a.octets(),
        IpAddr::V6(_) => unreachable!("benchmark flows are IPv4"),
    }
}

fn pool(setup: &Setup, case: &str, rng: &mut Rng) -> Vec<Vec<u8>> {
    (0..POOL)
        .map(|_| {
            let r = rng.next();
            match case {
                "exact_hit" => {
                    let k = setup.keys[(r % setup.keys.len() as u64) as usize];
                    tcp_frame(octets(k.src), k.sport, k.dport, TcpFlags::ACK)
                }
                // Peers outside 10.128/9 are never in the exact table.
                "listener_hit" => tcp_frame(
                    [192, 168, r as u8, (r >> 8) as u8],
                    40000,
                    SERVICE_PORT,
                    TcpFlags::SYN,
                ),
                "miss" => udp_frame([192, 168, r as u8, (r >> 8) as u8], 5353, 9999),
                _ => unreachable!(),
            }
        })
        .collect()
}

// ---- benches -----------------------------------------------------------------------------

fn bench_ingress(c: &mut Criterion) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // Sanity: the frames must classify as flows, or the numbers mean nothing.
    let probe = tcp_frame([10, 128, 0, 1], 1234, SERVICE_PORT, TcpFlags::ACK);
    let probe_class = flow::classify(&probe);
    let real_classify = matches!(probe_class, Classification::Flow { .. });
    eprintln!(
        "demux bench: flow::classify is {}",
        if real_classify {
            "real"
        } else {
            "a placeholder (frames classify as malformed)"
        }
    );
    if real_classify {
        assert_eq!(
            wire::verify(&probe, &probe_class),
            Ok(()),
            "hand-built checksums"
        );
    }

    let mut ingress = c.benchmark_group("lrp_ingress");
    ingress.throughput(Throughput::Elements(POOL as u64));
    let mut lookup = Vec::new();
    for flows in [1usize, 1_000, 1_000_000] {
        let s = setup(flows, &mut rng);
        let lrp = LrpPipeline::new();
        let mut exact_frames = Vec::new();
        for case in ["exact_hit", "listener_hit", "miss"] {
            let frames = pool(&s, case, &mut rng);
            ingress.bench_function(BenchmarkId::new(case, flows), |b| {
                b.iter(|| {
                    for (i, f) in frames.iter().enumerate() {
                        let desc = Desc {
                            index: i as u32,
                            len: f.len() as u32,
                        };
                        match lrp.ingress(&s.demux, &s.endpoints, desc, f) {
                            Ok(id) => {
                                let ep = s.endpoints.get(id);
                                black_box(ep.and_then(|ep| ep.channel().pop()));
                            }
                            Err(u) => {
                                black_box(u);
                            }
                        }
                    }
                })
            });
            if case == "exact_hit" {
                exact_frames = frames;
            }
        }
        let classes: Vec<Classification> = exact_frames.iter().map(|f| flow::classify(f)).collect();
        lookup.push((flows, s.demux, classes, exact_frames));
    }
    ingress.finish();

    // The parse alone, to split the ingress cost (same frames as exact_hit/1000000).
    let mut group = c.benchmark_group("classify");
    group.throughput(Throughput::Elements(POOL as u64));
    if let Some((_, _, _, frames)) = lookup.last() {
        group.bench_function("exact_hit", |b| {
            b.iter(|| {
                for f in frames {
                    black_box(flow::classify(black_box(f)));
                }
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("lookup");
    group.throughput(Throughput::Elements(POOL as u64));
    for (flows, demux, classes, _) in &lookup {
        group.bench_function(BenchmarkId::new("exact_hit", flows), |b| {
            b.iter(|| {
                for class in classes {
                    black_box(demux.lookup(black_box(class)));
                }
            })
        });
    }
    group.finish();
}

fn bench_overload(c: &mut Criterion) {
    const BURST: usize = 4096;
    const RECEIVER_BUDGET: usize = 256;
    let frames: Vec<Vec<u8>> = (0..BURST)
        .map(|i| udp_frame([10, 1, (i >> 8) as u8, i as u8], 5000, 9000))
        .collect();
    // Each mode gets its own endpoint (and account); ids are the same, so is the demux.
    let registry = || {
        let mut endpoints: Endpoints<Desc> = Endpoints::new();
        let ep = endpoints.insert(RECEIVER_BUDGET);
        (endpoints, ep)
    };
    let mut demux = Demux::new(DefaultAction::Drop);
    demux.insert_listener(
        ListenerKey::any(Proto::Udp, 9000),
        Listener::new(registry().1.id()),
    );
    // The protocol work: parse, verify checksums, find the endpoint.
    let work = |d: &mut Desc| {
        let bytes = &frames[d.index as usize];
        let class = flow::classify(bytes);
        match wire::verify(bytes, &class) {
            Ok(()) => Disposition::from_verdict(&class, demux.lookup(&class)),
            Err(_) => Disposition::Drop(DropReason::BadChecksum),
        }
    };

    let mut group = c.benchmark_group("overload");
    group.throughput(Throughput::Elements(BURST as u64));
    for mode in [Mode::Eager, Mode::Lrp] {
        // The eager path's shared queue holds a whole burst: interrupt-level processing
        // keeps up with arrivals, the endpoint queue is what overflows.
        let pipeline: Pipeline<Desc> = Pipeline::new(mode, BURST);
        let (endpoints, ep) = registry();
        let name = match mode {
            Mode::Eager => "eager",
            Mode::Lrp => "lrp",
        };
        group.bench_function(name, |b| {
            b.iter(|| {
                for (i, f) in frames.iter().enumerate() {
                    let desc = Desc {
                        index: i as u32,
                        len: f.len() as u32,
                    };
                    if let Err(u) = pipeline.ingress(&demux, &endpoints, desc, f) {
                        black_box(u);
                    }
                }
                pipeline.poll(&endpoints, BURST, work, |u| {
                    black_box(u);
                });
                pipeline.receive(
                    &ep,
                    RECEIVER_BUDGET,
                    work,
                    |d| {
                        black_box(d);
                    },
                    |u| {
                        black_box(u);
                    },
                );
            })
        });
        let s = ep.account().snapshot();
        eprintln!(
            "overload/{name}: endpoint rx {} soft_discard {} endpoint_full {} (all iterations)",
            s.rx_packets,
            s.drops(DropReason::SoftDiscard),
            s.drops(DropReason::EndpointFull)
        );
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_ingress, bench_overload
}
criterion_main!(benches);
