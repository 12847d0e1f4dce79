//! `rx_rate` — receive throughput of one channel on a real veth pair, NI-LRP and SOFT-LRP
//! (and EAGER) against a raw AF_XDP receive-and-drop loop, in one run.
//!
//! ```text
//! sudo cargo run --release -p lrp-benches --bin rx_rate -- RESULTS_DIR [options]
//!
//!   --reps N        repetitions of every variant, interleaved (default 5)
//!   --seconds S     flood duration per run (default 2)
//!   --senders K     kernel UDP sender processes in the peer namespace (default 2)
//!   --attach MODE   skb | driver (default skb)
//!   --no-pin        do not pin (see below)
//!   --only NAME     run one variant (raw, raw-spin, ni-lrp, soft-lrp, eager)
//!   --help          the options (parsed with clap; a bad argument exits with status 2)
//!
//! RX_RATE_DEBUG=1   also print each NIC's census and backend counters after its run
//! ```
//!
//! **CPUs.** By default the receiver gets a CPU of its own: the run re-executes itself
//! under `taskset -c 1`, and the senders run as separate processes under `taskset -c 0`.
//! On veth the kernel's receive path — the XDP program, the copy into the UMEM — runs on
//! the sending CPU, so CPU 1 does only what each variant's receiver does, and the receiver
//! CPU time per frame (from `/proc/thread-self/schedstat`) is that work alone. With
//! `--no-pin` everything shares the CPUs, as an unconfigured host would.
//!
//! It builds a test network (two namespaces joined by a veth pair, see
//! `lrp_net::testnet`), then, for every repetition and every variant in a rotating order,
//! floods UDP datagrams from kernel sockets in the peer namespace to one port of the
//! local end for a fixed time, as fast as the senders go, and counts the frames that
//! reach the receiver:
//!
//! * `raw` — `lrp_net::xdp::baseline::rx_drop`: the XDP program (NI mode, a listener on
//!   the port) redirects to one AF_XDP socket; the loop takes each descriptor and posts
//!   the chunk straight back to the fill ring, and sleeps in `poll` when the ring is
//!   empty. The cheapest blocking receiver: the reference of the ratios.
//! * `raw-spin` — the same loop spinning on the ring instead of sleeping: no wake-ups at
//!   all, so it shows what the senders and the kernel path deliver when the receiver
//!   costs them nothing (its CPU per frame is meaningless: it spins).
//! * `ni-lrp`, `soft-lrp`, `eager` — `Nic::open` in that mode, one channel with a listener
//!   rule on the port, and a receiver thread that takes frames with `Channel::recv_batch`
//!   (running the poll step itself when its channel is empty, as an application would)
//!   and drops them.
//!
//! The rate of a run is frames received over the time from the first frame to the last.
//! The table shows the median over the repetitions and the ratio of each variant's median
//! to the raw loop's; the CSV (`RESULTS_DIR/rx_rate.csv`) has every run. Rates on small
//! VMs vary by tens of percent from run to run: compare the ratios of one run, not
//! absolute numbers across runs.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand, ValueEnum};
use lrp_core::demux::{ChannelId, Listener, ListenerKey};
use lrp_core::flow::Proto;
use lrp_net::pool::FramePool;
use lrp_net::testnet::{self, TestNet, TestNetConfig, UdpFlood, UdpSendReport};
use lrp_net::xdp::baseline::{rx_drop, RxDropConfig};
use lrp_net::xdp::{
    interface_index, AttachMode, LrpXdp, ProgramConfig, QueueConfig, SocketConfig, Umem, XdpError,
    XskQueue,
};
use lrp_net::{Mode, Nic, NicConfig, Rule, XdpAttach};

const PORT: u16 = 9000;
const PAYLOAD: usize = 64;
const FRAMES: u32 = 8192;
const RING: u32 = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// `rx_drop`, sleeping in `poll` when the ring is empty.
    Raw,
    /// `rx_drop` spinning on the ring (never sleeps): the sender side's ceiling.
    RawSpin,
    Nic(Mode),
}

impl Variant {
    const ALL: [Variant; 5] = [
        Variant::Raw,
        Variant::RawSpin,
        Variant::Nic(Mode::NiLrp),
        Variant::Nic(Mode::SoftLrp),
        Variant::Nic(Mode::Eager),
    ];

    fn name(self) -> &'static str {
        match self {
            Variant::Raw => "raw",
            Variant::RawSpin => "raw-spin",
            Variant::Nic(Mode::NiLrp) => "ni-lrp",
            Variant::Nic(Mode::SoftLrp) => "soft-lrp",
            Variant::Nic(Mode::Eager) => "eager",
        }
    }
}

/// A variant on the command line (`--only`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum VariantArg {
    /// rx_drop, sleeping in poll when the ring is empty
    Raw,
    /// rx_drop spinning on the ring
    RawSpin,
    /// Nic in NI-LRP mode
    NiLrp,
    /// Nic in SOFT-LRP mode
    SoftLrp,
    /// Nic in eager mode
    Eager,
}

impl From<VariantArg> for Variant {
    fn from(v: VariantArg) -> Variant {
        match v {
            VariantArg::Raw => Variant::Raw,
            VariantArg::RawSpin => Variant::RawSpin,
            VariantArg::NiLrp => Variant::Nic(Mode::NiLrp),
            VariantArg::SoftLrp => Variant::Nic(Mode::SoftLrp),
            VariantArg::Eager => Variant::Nic(Mode::Eager),
        }
    }
}

/// XDP attach mode on the command line (`--attach`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum AttachArg {
    /// Generic (SKB) mode
    Skb,
    /// Native (driver) mode
    Driver,
}

impl From<AttachArg> for XdpAttach {
    fn from(a: AttachArg) -> XdpAttach {
        match a {
            AttachArg::Skb => XdpAttach::Skb,
            AttachArg::Driver => XdpAttach::Driver,
        }
    }
}

/// A duration in seconds, finite and above zero.
fn positive_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        Ok(_) => Err("must be a number of seconds above 0".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Receive throughput of one channel on a veth pair: NI-LRP, SOFT-LRP and EAGER against
/// a raw AF_XDP receive-and-drop loop. Needs root and 2 CPUs (or --no-pin).
///
/// Writes every run to RESULTS_DIR/rx_rate.csv and prints a table of medians.
/// RX_RATE_DEBUG=1 also prints each NIC's census and backend counters after its run.
#[derive(Debug, Parser)]
#[command(name = "rx_rate", version, subcommand_negates_reqs = true)]
struct Cli {
    /// Directory for the CSV (created if missing)
    #[arg(value_name = "RESULTS_DIR", required = true)]
    dir: Option<PathBuf>,
    /// Repetitions of every variant, interleaved
    #[arg(long, value_name = "N", default_value_t = 5,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    reps: usize,
    /// Flood duration per run, in seconds
    #[arg(long, value_name = "S", default_value_t = 2.0, value_parser = positive_seconds)]
    seconds: f64,
    /// Kernel UDP sender processes in the peer namespace
    #[arg(long, value_name = "K", default_value_t = 2,
          value_parser = clap::value_parser!(u16).range(1..))]
    senders: u16,
    /// XDP attach mode
    #[arg(long, value_enum, value_name = "MODE", default_value_t = AttachArg::Skb)]
    attach: AttachArg,
    /// Do not pin the receiver to CPU 1 and the senders to CPU 0
    #[arg(long)]
    no_pin: bool,
    /// Run one variant only
    #[arg(long, value_enum, value_name = "NAME")]
    only: Option<VariantArg>,
    #[command(subcommand)]
    internal: Option<Internal>,
}

/// Modes the run starts itself in; not for users.
#[derive(Debug, Subcommand)]
enum Internal {
    /// One sender process, started by the run in the peer namespace: rx_rate --send DST
    /// BIND SECONDS
    #[command(name = "internal-send", long_flag = "send", hide = true)]
    Send(SendArgs),
}

/// The arguments of `--send`.
#[derive(Debug, Args)]
struct SendArgs {
    /// Where to send
    #[arg(value_name = "DST")]
    dst: SocketAddr,
    /// The sending socket's address
    #[arg(value_name = "BIND")]
    bind: SocketAddr,
    /// How long to send
    #[arg(value_name = "SECONDS", value_parser = positive_seconds)]
    seconds: f64,
}

impl Cli {
    /// The run's options (for the measuring mode, not `--send`).
    fn options(&self) -> Options {
        Options {
            reps: self.reps,
            seconds: self.seconds,
            senders: self.senders,
            attach: self.attach.into(),
            pin: !self.no_pin,
            only: self.only.map(Variant::from),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Options {
    reps: usize,
    seconds: f64,
    senders: u16,
    attach: XdpAttach,
    pin: bool,
    only: Option<Variant>,
}

/// Set in the re-executed, pinned process.
const PINNED_ENV: &str = "LRP_RX_RATE_PINNED";

/// One run's numbers.
#[derive(Debug, Clone, Default)]
struct Run {
    /// Frames the receiver got.
    received: u64,
    /// From the first frame to the last.
    active: Duration,
    /// Datagrams the senders' kernels accepted.
    sent: u64,
    /// How long the senders ran.
    send_time: Duration,
    /// Drops counted on the way (gate, ring full, early discard, no buffer).
    drops: u64,
    /// CPU time of the receiving thread during the run.
    cpu: Duration,
    /// Where the drops happened.
    detail: String,
}

impl Run {
    fn rate(&self) -> f64 {
        let s = self.active.as_secs_f64();
        if s > 0.0 && self.received > 1 {
            (self.received - 1) as f64 / s
        } else {
            0.0
        }
    }

    /// Receiver CPU nanoseconds per frame received.
    fn cpu_per_frame(&self) -> f64 {
        if self.received > 0 {
            self.cpu.as_nanos() as f64 / self.received as f64
        } else {
            0.0
        }
    }

    fn offered(&self) -> f64 {
        let s = self.send_time.as_secs_f64();
        if s > 0.0 {
            self.sent as f64 / s
        } else {
            0.0
        }
    }
}

/// CPU time the calling thread has run (`/proc/thread-self/schedstat`, nanoseconds).
fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .map_or(Duration::ZERO, Duration::from_nanos)
}

/// A flood of datagrams to `dst` from `bind` for `seconds`, as fast as it goes.
fn udp_flood(dst: SocketAddr, bind: SocketAddr, seconds: f64) -> UdpFlood {
    let mut f = UdpFlood::new(dst, u64::MAX, PAYLOAD);
    f.bind = bind;
    f.burst = 256;
    f.pause = Duration::ZERO;
    f.timeout = Duration::from_secs_f64(seconds);
    f
}

/// The kernel senders of one run: threads, or processes pinned to CPU 0.
enum Senders {
    Threads(Vec<std::thread::JoinHandle<Result<UdpSendReport, testnet::TestNetError>>>),
    Processes(Vec<Child>),
}

/// Flood the local end's port from `senders` kernel sockets for `seconds`.
fn flood(net: &TestNet, o: &Options) -> Result<Senders, String> {
    let dst = SocketAddr::V4(SocketAddrV4::new(net.local().ipv4(), PORT));
    let bind = |i: u16| SocketAddr::V4(SocketAddrV4::new(net.peer().ipv4(), 40000 + i));
    if !o.pin {
        return Ok(Senders::Threads(
            (0..o.senders)
                .map(|i| {
                    net.peer()
                        .ns()
                        .spawn_udp_sender(udp_flood(dst, bind(i), o.seconds))
                })
                .collect(),
        ));
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut children = Vec::new();
    for i in 0..o.senders {
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                net.peer().ns().name(),
                "taskset",
                "-c",
                "0",
            ])
            .arg(&exe)
            .args(["--send", &dst.to_string(), &bind(i).to_string()])
            .arg(o.seconds.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting a sender: {e}"))?;
        children.push(child);
    }
    Ok(Senders::Processes(children))
}

/// Datagrams sent and the longest sending time.
fn join_senders(senders: Senders) -> Result<(u64, Duration), String> {
    let mut sent = 0;
    let mut time = Duration::ZERO;
    match senders {
        Senders::Threads(hs) => {
            for h in hs {
                let r = h
                    .join()
                    .map_err(|_| "a sender panicked".to_string())?
                    .map_err(|e| e.to_string())?;
                sent += r.sent;
                time = time.max(r.elapsed);
            }
        }
        Senders::Processes(children) => {
            for c in children {
                let out = c.wait_with_output().map_err(|e| e.to_string())?;
                let text = String::from_utf8_lossy(&out.stdout);
                let mut it = text.split_whitespace();
                let (Some("sent"), Some(n), Some(ns)) = (it.next(), it.next(), it.next()) else {
                    return Err(format!("a sender failed ({}): {text}", out.status));
                };
                sent += n.parse::<u64>().map_err(|e| e.to_string())?;
                let ns: u64 = ns
                    .parse()
                    .map_err(|e: std::num::ParseIntError| e.to_string())?;
                time = time.max(Duration::from_nanos(ns));
            }
        }
    }
    Ok((sent, time))
}

/// `--send DST BIND SECONDS`: one sender process (started in the peer namespace).
fn sender_main(args: &SendArgs) -> ExitCode {
    match udp_flood(args.dst, args.bind, args.seconds).run() {
        Ok(r) => {
            println!("sent {} {}", r.sent, r.elapsed.as_nanos());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sender: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Re-run this process under `taskset -c 1` (the receiver's CPU); returns its status.
fn pinned_rerun() -> ExitCode {
    let Ok(exe) = std::env::current_exe() else {
        eprintln!("cannot find this executable to re-run it pinned");
        return ExitCode::FAILURE;
    };
    let status = Command::new("taskset")
        .args(["-c", "1"])
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(PINNED_ENV, "1")
        .status();
    match status {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(s) => {
            eprintln!("the pinned run failed: {s}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("running taskset (util-linux): {e}");
            ExitCode::FAILURE
        }
    }
}

/// The raw receive-and-drop loop (runs on a thread in the local namespace).
fn run_raw(net: &TestNet, o: &Options, spin: bool) -> Result<Run, String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let ifindex = interface_index(net.local().ifname()).map_err(|x| e(&x))?;
    let frame_size = match o.attach {
        XdpAttach::Skb => 2048,
        XdpAttach::Driver => 4096,
    };
    let pool = FramePool::new(FRAMES, frame_size, 0).map_err(|x| e(&x))?;
    let mut xdp = LrpXdp::load(&ProgramConfig::default()).map_err(|x| e(&x))?;
    let qc = QueueConfig {
        socket: SocketConfig {
            rx_size: RING,
            tx_size: 64,
        },
        ..QueueConfig::default()
    };
    // The previous run's sockets may still hold the queue for a moment (the kernel
    // releases it asynchronously): retry a busy queue briefly, with a fresh UMEM.
    let deadline = Instant::now() + Duration::from_millis(500);
    let (mut queue, mut sock) = loop {
        let umem = Umem::from_pool(&pool).map_err(|x| e(&x))?;
        match XskQueue::open(&umem, ifindex, 0, &qc) {
            Err(XdpError::QueueBusy { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            r => break r.map_err(|x| e(&x))?,
        }
    };
    queue
        .fill_from_pool(FRAMES as usize / 2)
        .map_err(|x| e(&x))?;
    xdp.set_socket(0, &sock).map_err(|x| e(&x))?;
    let key = ListenerKey::new(Proto::Udp, IpAddr::V4(net.local().ipv4()), PORT);
    xdp.insert_listener(&key, &Listener::new(ChannelId(0)))
        .map_err(|x| e(&x))?;
    let mode = match o.attach {
        XdpAttach::Skb => AttachMode::Skb,
        XdpAttach::Driver => AttachMode::Driver,
    };
    xdp.attach(ifindex, mode).map_err(|x| e(&x))?;
    let senders = flood(net, o)?;
    let cfg = RxDropConfig {
        max_duration: Duration::from_secs_f64(o.seconds + 5.0),
        idle_timeout: Duration::from_millis(300),
        busy_poll: spin,
        ..RxDropConfig::default()
    };
    let cpu0 = thread_cpu();
    let r = rx_drop(&mut queue, &mut sock, &cfg).map_err(|x| e(&x))?;
    let cpu = thread_cpu().saturating_sub(cpu0);
    let (sent, send_time) = join_senders(senders)?;
    let st = sock.statistics().map_err(|x| e(&x))?;
    Ok(Run {
        received: r.frames,
        active: r.active,
        sent,
        send_time,
        drops: st.rx_ring_full + st.rx_dropped + st.rx_fill_ring_empty_descs,
        cpu,
        detail: format!(
            "ring-full {} no-buffer {} other {}",
            st.rx_ring_full, st.rx_fill_ring_empty_descs, st.rx_dropped
        ),
    })
}

/// A `Nic` in `mode` with one channel, read by this thread.
fn run_nic(net: &TestNet, o: &Options, mode: Mode) -> Result<Run, String> {
    let frame_size = match o.attach {
        XdpAttach::Skb => 2048,
        XdpAttach::Driver => 4096,
    };
    let config = NicConfig::default()
        .mode(mode)
        .attach(o.attach)
        .frame_size(frame_size)
        .frame_count(FRAMES)
        .rx_ring(RING)
        .batch(256)
        .eager_queue(RING);
    let nic = Nic::open(net.local().ifname(), config).map_err(|e| e.to_string())?;
    let rule = Rule::listener(Proto::Udp, IpAddr::V4(net.local().ipv4()), PORT);
    let ch = nic
        .channel(rule, RING as usize)
        .map_err(|e| e.to_string())?;
    let senders = flood(net, o)?;
    let mut frames = Vec::with_capacity(256);
    let mut received = 0u64;
    let cpu0 = thread_cpu();
    let start = Instant::now();
    let hard_stop = start + Duration::from_secs_f64(o.seconds + 5.0);
    let (mut first, mut last) = (None, start);
    loop {
        frames.clear();
        let n = ch.try_recv_batch(256, &mut frames);
        let now = Instant::now();
        if n > 0 {
            received += n as u64;
            first.get_or_insert(now);
            last = now;
            continue;
        }
        let idle = now - last;
        if now >= hard_stop || (first.is_some() && idle >= Duration::from_millis(300)) {
            break;
        }
        ch.wait(Some(Duration::from_millis(1)))
            .map_err(|e| e.to_string())?;
    }
    let cpu = thread_cpu().saturating_sub(cpu0);
    let (sent, send_time) = join_senders(senders)?;
    let s = ch.stats();
    let b = nic.stats().backend;
    if std::env::var_os("RX_RATE_DEBUG").is_some() {
        eprintln!("census {:?}\nbackend {b:?}", nic.census());
    }
    Ok(Run {
        received,
        active: first.map_or(Duration::ZERO, |f| last - f),
        sent,
        send_time,
        drops: s.gate_drops
            + s.ring_full_drops
            + s.kernel_drops
            + s.soft_discards
            + s.endpoint_full_drops
            + b.rx_no_buffer
            + b.rx_ring_full
            + nic.stats().account.drops.iter().sum::<u64>(),
        cpu,
        detail: format!(
            "gate {} ring-full {} early {} endpoint {} no-buffer {} shared-ring-full {}",
            s.gate_drops,
            s.ring_full_drops + s.kernel_drops,
            s.soft_discards,
            s.endpoint_full_drops,
            b.rx_no_buffer,
            b.rx_ring_full
        ),
    })
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    let n = xs.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Internal::Send(args)) = &cli.internal {
        return sender_main(args);
    }
    let o = cli.options();
    // clap requires RESULTS_DIR unless `--send` was given.
    let Some(dir) = cli.dir else {
        eprintln!("rx_rate: RESULTS_DIR is required");
        return ExitCode::from(2);
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if o.pin && std::env::var_os(PINNED_ENV).is_none() {
        if cpus < 2 {
            eprintln!("pinning needs 2 CPUs; use --no-pin");
            return ExitCode::FAILURE;
        }
        return pinned_rerun();
    }
    if let Err(why) = testnet::availability() {
        eprintln!("rx_rate needs root (network namespaces, XDP): {why}");
        return ExitCode::FAILURE;
    }
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("cannot create {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    let net = match TestNet::new(&TestNetConfig {
        mtu: (o.attach == XdpAttach::Driver).then_some(3000),
        static_neighbors: true,
        ..TestNetConfig::default()
    }) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("building the test network: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "rx_rate: {} reps x {} variants, {} s floods from {} kernel sender(s), {:?} XDP, \
         {PAYLOAD}-byte payloads, {}",
        o.reps,
        Variant::ALL.len(),
        o.seconds,
        o.senders,
        o.attach,
        if o.pin {
            "receiver on CPU 1, senders on CPU 0"
        } else {
            "not pinned"
        }
    );
    let mut csv = String::from(
        "rep,variant,received,active_s,rate_pps,sent,offered_pps,drops,rx_cpu_ns_per_frame\n",
    );
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); Variant::ALL.len()];
    let mut offered: Vec<Vec<f64>> = vec![Vec::new(); Variant::ALL.len()];
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); Variant::ALL.len()];
    for rep in 0..o.reps {
        // Interleave, and rotate the order so no variant always runs first.
        for k in 0..Variant::ALL.len() {
            let i = (k + rep) % Variant::ALL.len();
            let v = Variant::ALL[i];
            if o.only.is_some_and(|only| only != v) {
                continue;
            }
            let result = net.local().ns().run(|| match v {
                Variant::Raw => run_raw(&net, &o, false),
                Variant::RawSpin => run_raw(&net, &o, true),
                Variant::Nic(mode) => run_nic(&net, &o, mode),
            });
            let run = match result.map_err(|e| e.to_string()).and_then(|r| r) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("{} (rep {rep}) failed: {e}", v.name());
                    return ExitCode::FAILURE;
                }
            };
            eprintln!(
                "rep {rep} {:>8}: {:>9.0} pps received ({} frames in {:.3} s), offered {:.0} pps, \
                 drops {} ({}), receiver {:.0} ns/frame",
                v.name(),
                run.rate(),
                run.received,
                run.active.as_secs_f64(),
                run.offered(),
                run.drops,
                run.detail,
                run.cpu_per_frame()
            );
            let _ = writeln!(
                csv,
                "{rep},{},{},{:.6},{:.0},{},{:.0},{},{:.1}",
                v.name(),
                run.received,
                run.active.as_secs_f64(),
                run.rate(),
                run.sent,
                run.offered(),
                run.drops,
                run.cpu_per_frame()
            );
            rates[i].push(run.rate());
            cpu[i].push(run.cpu_per_frame());
            offered[i].push(run.offered());
        }
    }
    let path = dir.join("rx_rate.csv");
    if let Err(e) = std::fs::write(&path, &csv) {
        eprintln!("writing {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    let medians: Vec<f64> = rates.iter_mut().map(|r| median(r)).collect();
    let cpu_medians: Vec<f64> = cpu.iter_mut().map(|c| median(c)).collect();
    let raw = medians[0];
    let raw_cpu = cpu_medians[0];
    println!(
        "\n### rx_rate: one channel, {:?} XDP, {} kernel sender(s), {} x {} s, {}\n",
        o.attach,
        o.senders,
        o.reps,
        o.seconds,
        if o.pin {
            "receiver pinned to CPU 1, senders to CPU 0"
        } else {
            "not pinned"
        }
    );
    println!(
        "| variant | median rx (pps) | min | max | median offered (pps) | rx / raw | \
         receiver CPU (ns/frame) | CPU / raw |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (i, v) in Variant::ALL.iter().enumerate() {
        let r = &rates[i];
        if r.is_empty() {
            continue;
        }
        let min = r.iter().copied().fold(f64::INFINITY, f64::min);
        let max = r.iter().copied().fold(0.0, f64::max);
        let off = median(&mut offered[i]);
        let ratio = if raw > 0.0 { medians[i] / raw } else { 0.0 };
        let cpu_ratio = if raw_cpu > 0.0 {
            cpu_medians[i] / raw_cpu
        } else {
            0.0
        };
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2} | {:.0} | {:.2} |",
            v.name(),
            medians[i],
            min,
            max,
            off,
            ratio,
            cpu_medians[i],
            cpu_ratio
        );
    }
    println!("\nCSV: {}", path.display());
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("rx_rate").chain(args.iter().copied()))
    }

    #[test]
    fn help_renders_without_the_internal_sender() {
        Cli::command().debug_assert();
        let help = Cli::command().render_long_help().to_string();
        for option in [
            "RESULTS_DIR",
            "--reps",
            "--seconds",
            "--senders",
            "--attach",
            "--no-pin",
            "--only",
        ] {
            assert!(help.contains(option), "{option} missing from:\n{help}");
        }
        assert!(!help.contains("--send "), "{help}");
    }

    #[test]
    fn options_and_defaults() {
        let c = parse(&["results/rx_rate"]).unwrap();
        assert_eq!(c.dir, Some(PathBuf::from("results/rx_rate")));
        assert!(c.internal.is_none());
        let o = c.options();
        assert_eq!((o.reps, o.seconds, o.senders), (5, 2.0, 2));
        assert_eq!((o.attach, o.pin, o.only), (XdpAttach::Skb, true, None));
        let o = parse(&[
            "--reps",
            "1",
            "--seconds",
            "0.5",
            "--senders",
            "3",
            "--attach",
            "driver",
            "--no-pin",
            "--only",
            "raw-spin",
            "out",
        ])
        .unwrap()
        .options();
        assert_eq!((o.reps, o.seconds, o.senders), (1, 0.5, 3));
        assert_eq!((o.attach, o.pin), (XdpAttach::Driver, false));
        assert_eq!(o.only, Some(Variant::RawSpin));
        for v in Variant::ALL {
            let o = parse(&["out", "--only", v.name()]).unwrap().options();
            assert_eq!(o.only, Some(v));
        }
    }

    #[test]
    fn the_sender_sub_mode_is_parsed_by_clap() {
        // Exactly what `flood` starts in the peer namespace.
        let c = parse(&["--send", "10.0.0.2:9000", "10.0.0.1:40000", "2"]).unwrap();
        let Some(Internal::Send(a)) = c.internal else {
            panic!("not the sender: {c:?}");
        };
        assert_eq!(a.dst, "10.0.0.2:9000".parse().unwrap());
        assert_eq!(a.bind, "10.0.0.1:40000".parse().unwrap());
        assert_eq!(a.seconds, 2.0);
        let e = parse(&["--send", "10.0.0.2:9000", "nowhere", "2"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ValueValidation);
        let e = parse(&["--send", "10.0.0.2:9000", "10.0.0.1:1"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::MissingRequiredArgument);
    }

    #[test]
    fn bad_arguments_are_clap_errors_with_status_2() {
        for (args, kind) in [
            (&["out", "--only", "bogus"][..], ErrorKind::InvalidValue),
            (&["out", "--attach", "hw"], ErrorKind::InvalidValue),
            (&["out", "--reps", "0"], ErrorKind::ValueValidation),
            (&["out", "--seconds", "0"], ErrorKind::ValueValidation),
            (&["out", "--seconds", "inf"], ErrorKind::ValueValidation),
            (&["out", "--senders", "0"], ErrorKind::ValueValidation),
            (&[][..], ErrorKind::MissingRequiredArgument),
            (&["out", "more"], ErrorKind::UnknownArgument),
        ] {
            let e = parse(args).unwrap_err();
            assert_eq!(e.kind(), kind, "{args:?}: {e}");
            assert_eq!(e.exit_code(), 2);
        }
    }
}
