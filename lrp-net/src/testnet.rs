//! A network-namespace harness for tests and experiments on real kernel networking.
//!
//! [`TestNet::new`] builds two fresh network namespaces joined by a veth pair:
//!
//! ```text
//!   namespace "local" (lrp runs here)            namespace "peer" (Linux sockets)
//!   veth <local.ifname>  10.77.N.1/24  <====>  veth <peer.ifname>  10.77.N.2/24
//! ```
//!
//! Names are unique per process, per call and per run (pid, counter, random), so tests
//! may run in parallel; traffic never leaves the two namespaces. Dropping the [`TestNet`]
//! deletes both namespaces (and with them the veth pair), also while unwinding from a
//! panic. Namespaces left behind by a process that was killed are removed by the next
//! [`TestNet::new`] (they carry the dead process's pid in their name).
//!
//! Options ([`TestNetConfig`]): MTU, queue count, IPv6 (off by default, so that no
//! router/neighbor solicitations disturb exact frame counts), static neighbor entries
//! (so no ARP is needed), and `ethtool -K <peer> tx off` on the sender side (on by
//! default: veth's TX checksum offload otherwise leaves partial UDP/TCP checksums that a
//! userspace stack would see as wrong).
//!
//! Code runs inside a namespace in two ways: [`NetNs::exec`] runs a command under
//! `ip netns exec`, and [`NetNs::run`] / [`NetNs::spawn`] run a closure on a new thread
//! that has entered the namespace (`setns` applies per thread). Sockets and AF_XDP
//! objects created there belong to that namespace and can then be used from any thread.
//!
//! Tests start with [`require`], which reports whether the harness can work here (root,
//! `ip`, `ethtool`), prints a loud skip message if not, and turns the skip into a panic
//! when `LRP_REQUIRE_XDP=1`.
//!
//! ```no_run
//! use lrp_net::testnet::{self, TestNet, TestNetConfig};
//!
//! if !testnet::require("my_test") {
//!     return;
//! }
//! let net = TestNet::new(&TestNetConfig::default()).unwrap();
//! let sock = net.peer().ns().run(|| std::net::UdpSocket::bind("0.0.0.0:0")).unwrap().unwrap();
//! sock.send_to(b"hi", (net.local().ipv4(), 9000)).unwrap();
//! ```

use std::collections::hash_map::RandomState;
use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Environment variable that turns a skipped real-XDP test into a failure.
pub const REQUIRE_ENV: &str = "LRP_REQUIRE_XDP";

/// Prefix of every namespace this harness creates.
const NS_PREFIX: &str = "lrpt-";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Errors of the harness.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestNetError {
    /// The harness cannot work on this machine (the message says why).
    #[error("network namespaces unavailable: {0}")]
    Unavailable(String),
    /// A command failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// A system call or file operation failed.
    #[error("{op}: {source}")]
    Io {
        /// What was attempted.
        op: String,
        /// The error.
        source: io::Error,
    },
    /// A closure run inside a namespace panicked.
    #[error("a thread inside namespace `{0}` panicked")]
    Panicked(String),
}

fn io_err(op: impl Into<String>) -> impl FnOnce(io::Error) -> TestNetError {
    let op = op.into();
    move |source| TestNetError::Io { op, source }
}

/// Whether this process can build test networks: root (or `CAP_SYS_ADMIN` and
/// `CAP_NET_ADMIN`), and the `ip` and `ethtool` commands. `Err` says what is missing.
pub fn availability() -> Result<(), String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("cannot read /proc/self/status: {e}"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or("")
    };
    let euid = field("Uid:").split_whitespace().nth(1).unwrap_or("");
    let caps = u64::from_str_radix(field("CapEff:"), 16).unwrap_or(0);
    let needed = (1u64 << 21) | (1u64 << 12); // CAP_SYS_ADMIN, CAP_NET_ADMIN
    if euid != "0" && caps & needed != needed {
        return Err(format!(
            "not root (euid {euid}) and missing CAP_SYS_ADMIN/CAP_NET_ADMIN (CapEff {caps:#x})"
        ));
    }
    for (cmd, arg) in [("ip", "-V"), ("ethtool", "--version")] {
        match Command::new(cmd).arg(arg).output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => return Err(format!("`{cmd} {arg}` failed: {}", o.status)),
            Err(e) => {
                return Err(format!(
                    "`{cmd}` not found ({e}); install iproute2 / ethtool"
                ))
            }
        }
    }
    Ok(())
}

/// Call at the start of a test that needs real namespaces. Returns `true` if it can
/// run. Otherwise prints a loud skip message to stderr and returns `false` — or panics
/// if `LRP_REQUIRE_XDP=1`, so CI cannot pass by skipping.
pub fn require(test: &str) -> bool {
    match availability() {
        Ok(()) => true,
        Err(reason) => {
            if std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1") {
                panic!("{test}: cannot run the real-XDP test: {reason} ({REQUIRE_ENV}=1)");
            }
            // Written to the stderr handle, not with `eprintln!`: the test harness
            // captures the macros' output of passing tests, and a skip must be seen.
            let _ = writeln!(
                io::stderr(),
                "\n!!!!!!!! SKIPPED {test}: {reason}.\n!!!!!!!! Set {REQUIRE_ENV}=1 to make \
                 this a failure.\n"
            );
            false
        }
    }
}

/// Run a command; its stdout on success.
fn run_cmd(program: &str, args: &[&str]) -> Result<Output, TestNetError> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(io_err(format!("spawning `{program}`")))?;
    if !out.status.success() {
        return Err(TestNetError::Command {
            command: format!("{program} {}", args.join(" ")),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(out)
}

fn base36(mut v: u64, width: usize) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut s = vec![b'0'; width];
    for d in s.iter_mut().rev() {
        *d = DIGITS[(v % 36) as usize];
        v /= 36;
    }
    String::from_utf8_lossy(&s).into_owned()
}

fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// A network namespace created by this harness (a handle; the [`TestNet`] that made it
/// deletes it).
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// The namespace's name (as in `ip netns list`).
    pub fn name(&self) -> &str {
        &self.name
    }

    fn path(&self) -> PathBuf {
        let run = PathBuf::from("/run/netns").join(&self.name);
        if run.exists() {
            run
        } else {
            PathBuf::from("/var/run/netns").join(&self.name)
        }
    }

    /// Run `program args...` inside the namespace (`ip netns exec`); its output if it
    /// exits successfully.
    pub fn exec(&self, program: &str, args: &[&str]) -> Result<Output, TestNetError> {
        let mut full = vec!["netns", "exec", self.name.as_str(), program];
        full.extend_from_slice(args);
        run_cmd("ip", &full)
    }

    /// Move the calling thread into this namespace, for good.
    fn enter_current_thread(&self) -> Result<(), TestNetError> {
        let path = self.path();
        let f = File::open(&path).map_err(io_err(format!("opening {}", path.display())))?;
        // SAFETY: setns on a valid, open namespace fd owned by `f`, with the matching
        // namespace type. It changes only the calling thread's network namespace; callers
        // use it on threads they spawned for that purpose, which exit afterwards.
        let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        if rc != 0 {
            return Err(TestNetError::Io {
                op: format!("setns into {}", self.name),
                source: io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    /// Run `f` on a new thread that has entered this namespace, and wait for it. Sockets
    /// (and AF_XDP objects, BPF attachments) it creates belong to this namespace and may
    /// be returned and used from any thread.
    pub fn run<R, F>(&self, f: F) -> Result<R, TestNetError>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        std::thread::scope(|s| {
            let h = std::thread::Builder::new()
                .name(format!("netns:{}", self.name))
                .spawn_scoped(s, || {
                    self.enter_current_thread()?;
                    Ok(f())
                })
                .map_err(io_err("spawning a thread"))?;
            h.join()
                .map_err(|_| TestNetError::Panicked(self.name.clone()))?
        })
    }

    /// Start `f` on a new thread that has entered this namespace.
    pub fn spawn<R, F>(&self, f: F) -> JoinHandle<Result<R, TestNetError>>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let me = NetNs {
            name: self.name.clone(),
        };
        std::thread::spawn(move || {
            me.enter_current_thread()?;
            Ok(f())
        })
    }

    /// A UDP socket bound to `addr` inside this namespace.
    pub fn udp_socket(&self, addr: SocketAddr) -> Result<UdpSocket, TestNetError> {
        self.run(move || UdpSocket::bind(addr))?
            .map_err(io_err(format!("binding UDP {addr}")))
    }

    /// Start a kernel UDP sender inside this namespace (see [`UdpFlood`]).
    pub fn spawn_udp_sender(
        &self,
        flood: UdpFlood,
    ) -> JoinHandle<Result<UdpSendReport, TestNetError>> {
        let me = NetNs {
            name: self.name.clone(),
        };
        std::thread::spawn(move || {
            me.enter_current_thread()?;
            flood.run()
        })
    }

    /// The kernel's counters of interface `ifname` in this namespace.
    pub fn link_stats(&self, ifname: &str) -> Result<LinkStats, TestNetError> {
        let files: Vec<String> = ["rx_packets", "tx_packets", "rx_dropped", "tx_dropped"]
            .iter()
            .map(|f| format!("/sys/class/net/{ifname}/statistics/{f}"))
            .collect();
        let args: Vec<&str> = files.iter().map(String::as_str).collect();
        let out = self.exec("cat", &args)?;
        let text = String::from_utf8_lossy(&out.stdout);
        let v: Vec<u64> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
        match v[..] {
            [rx_packets, tx_packets, rx_dropped, tx_dropped] => Ok(LinkStats {
                rx_packets,
                tx_packets,
                rx_dropped,
                tx_dropped,
            }),
            _ => Err(TestNetError::Io {
                op: format!("parsing the statistics of {ifname}"),
                source: io::Error::new(io::ErrorKind::InvalidData, text.into_owned()),
            }),
        }
    }
}

/// Interface counters (`/sys/class/net/<if>/statistics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkStats {
    /// Frames received.
    pub rx_packets: u64,
    /// Frames transmitted.
    pub tx_packets: u64,
    /// Frames dropped on receive.
    pub rx_dropped: u64,
    /// Frames dropped on transmit.
    pub tx_dropped: u64,
}

/// One end of the veth pair.
#[derive(Debug)]
pub struct Endpoint {
    ns: NetNs,
    ifname: String,
    ipv4: Ipv4Addr,
    ipv6: Option<Ipv6Addr>,
    mac: [u8; 6],
}

impl Endpoint {
    /// The namespace this end lives in.
    pub fn ns(&self) -> &NetNs {
        &self.ns
    }

    /// The veth interface name (unique, at most 15 bytes).
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The IPv4 address (a /24 shared with the other end).
    pub fn ipv4(&self) -> Ipv4Addr {
        self.ipv4
    }

    /// The IPv6 address (a /64), if IPv6 is enabled.
    pub fn ipv6(&self) -> Option<Ipv6Addr> {
        self.ipv6
    }

    /// The MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// The interface index, as seen inside the namespace.
    pub fn ifindex(&self) -> Result<u32, TestNetError> {
        let path = format!("/sys/class/net/{}/ifindex", self.ifname);
        let out = self.ns.exec("cat", &[path.as_str()])?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|_| TestNetError::Io {
                op: format!("reading the ifindex of {}", self.ifname),
                source: io::Error::from(io::ErrorKind::InvalidData),
            })
    }
}

/// Options of a [`TestNet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestNetConfig {
    /// MTU of both ends (`None`: the default, 1500). veth driver-mode XDP needs <= ~3500.
    pub mtu: Option<u32>,
    /// TX and RX queue count of both ends (`None`: 1).
    pub queues: Option<u32>,
    /// Give both ends IPv6 addresses (fd77:N::1 and ::2 /64). Off: IPv6 is disabled in
    /// both namespaces, so no neighbor/router solicitation adds frames to exact counts.
    pub ipv6: bool,
    /// Install permanent neighbor entries for each other's addresses, so no ARP (or NDP)
    /// is needed — e.g. when lrp owns the local end and does not answer ARP.
    pub static_neighbors: bool,
    /// `ethtool -K <peer> tx off`: the peer's kernel computes full checksums instead of
    /// leaving them to (nonexistent) veth offload.
    pub peer_tx_checksum_off: bool,
}

impl Default for TestNetConfig {
    fn default() -> Self {
        TestNetConfig {
            mtu: None,
            queues: None,
            ipv6: false,
            static_neighbors: false,
            peer_tx_checksum_off: true,
        }
    }
}

/// Two namespaces and a veth pair; deleted on drop. See the [module docs](self).
#[derive(Debug)]
pub struct TestNet {
    local: Endpoint,
    peer: Endpoint,
}

fn mac_string(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Delete namespaces of this harness whose creating process no longer exists.
fn remove_stale_namespaces() {
    for dir in ["/run/netns", "/var/run/netns"] {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(NS_PREFIX) else {
                continue;
            };
            let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
                continue;
            };
            if !PathBuf::from(format!("/proc/{pid}")).exists() {
                let _ = run_cmd("ip", &["netns", "del", &name]);
            }
        }
    }
}

impl TestNet {
    /// Build the namespaces and the veth pair. See [`TestNetConfig`].
    pub fn new(config: &TestNetConfig) -> Result<TestNet, TestNetError> {
        availability().map_err(TestNetError::Unavailable)?;
        remove_stale_namespaces();
        let pid = std::process::id();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let rnd = random_u64();
        let tag = format!("{pid}-{n}-{:04x}", rnd & 0xffff);
        let short = format!(
            "{}{}{}",
            base36(u64::from(pid), 5),
            base36(u64::from(n), 3),
            base36(rnd >> 16, 2)
        );
        let subnet = (n % 250) as u8;
        let mac = |last: u8| {
            let r = (rnd >> 32).to_be_bytes();
            [0x02, 0x4c, r[5], r[6], r[7], last]
        };
        let ipv6 = |last: u16| Ipv6Addr::new(0xfd77, u16::from(subnet), 0, 0, 0, 0, 0, last);
        let net = TestNet {
            local: Endpoint {
                ns: NetNs {
                    name: format!("{NS_PREFIX}{tag}-l"),
                },
                ifname: format!("l{short}a"),
                ipv4: Ipv4Addr::new(10, 77, subnet, 1),
                ipv6: config.ipv6.then(|| ipv6(1)),
                mac: mac(1),
            },
            peer: Endpoint {
                ns: NetNs {
                    name: format!("{NS_PREFIX}{tag}-p"),
                },
                ifname: format!("l{short}b"),
                ipv4: Ipv4Addr::new(10, 77, subnet, 2),
                ipv6: config.ipv6.then(|| ipv6(2)),
                mac: mac(2),
            },
        };
        // From here on, dropping `net` (on any error below) deletes what was created.
        run_cmd("ip", &["netns", "add", net.local.ns.name()])?;
        run_cmd("ip", &["netns", "add", net.peer.ns.name()])?;
        for ep in [&net.local, &net.peer] {
            let v6 = if config.ipv6 { "0" } else { "1" };
            let all = format!("net.ipv6.conf.all.disable_ipv6={v6}");
            let default = format!("net.ipv6.conf.default.disable_ipv6={v6}");
            ep.ns.exec("sysctl", &["-qw", &all, &default])?;
        }
        let queues = config.queues.unwrap_or(1).to_string();
        let (lmac, pmac) = (mac_string(&net.local.mac), mac_string(&net.peer.mac));
        run_cmd(
            "ip",
            &[
                "-n",
                net.local.ns.name(),
                "link",
                "add",
                &net.local.ifname,
                "address",
                &lmac,
                "numtxqueues",
                &queues,
                "numrxqueues",
                &queues,
                "type",
                "veth",
                "peer",
                "name",
                &net.peer.ifname,
                "address",
                &pmac,
                "numtxqueues",
                &queues,
                "numrxqueues",
                &queues,
                "netns",
                net.peer.ns.name(),
            ],
        )?;
        for (ep, other) in [(&net.local, &net.peer), (&net.peer, &net.local)] {
            let ns = ep.ns.name();
            if let Some(mtu) = config.mtu {
                run_cmd(
                    "ip",
                    &["-n", ns, "link", "set", &ep.ifname, "mtu", &mtu.to_string()],
                )?;
            }
            let v4 = format!("{}/24", ep.ipv4);
            run_cmd("ip", &["-n", ns, "addr", "add", &v4, "dev", &ep.ifname])?;
            if let Some(a) = ep.ipv6 {
                let v6 = format!("{a}/64");
                run_cmd(
                    "ip",
                    &["-n", ns, "addr", "add", &v6, "dev", &ep.ifname, "nodad"],
                )?;
            }
            run_cmd("ip", &["-n", ns, "link", "set", "lo", "up"])?;
            run_cmd("ip", &["-n", ns, "link", "set", &ep.ifname, "up"])?;
            if config.static_neighbors {
                let omac = mac_string(&other.mac);
                let mut addrs = vec![IpAddr::V4(other.ipv4)];
                addrs.extend(other.ipv6.map(IpAddr::V6));
                for a in addrs {
                    let a = a.to_string();
                    run_cmd(
                        "ip",
                        &[
                            "-n",
                            ns,
                            "neigh",
                            "replace",
                            &a,
                            "lladdr",
                            &omac,
                            "dev",
                            &ep.ifname,
                            "nud",
                            "permanent",
                        ],
                    )?;
                }
            }
        }
        if config.peer_tx_checksum_off {
            net.peer
                .ns
                .exec("ethtool", &["-K", &net.peer.ifname, "tx", "off"])?;
        }
        Ok(net)
    }

    /// The end where lrp runs (XDP program, AF_XDP sockets).
    pub fn local(&self) -> &Endpoint {
        &self.local
    }

    /// The end with ordinary Linux sockets.
    pub fn peer(&self) -> &Endpoint {
        &self.peer
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        for ns in [&self.local.ns, &self.peer.ns] {
            if let Err(e) = run_cmd("ip", &["netns", "del", ns.name()]) {
                // Not fatal (the namespace may not have been created), but say so: a
                // leftover namespace would otherwise go unnoticed.
                if ns.path().exists() {
                    eprintln!("testnet: could not delete namespace {}: {e}", ns.name());
                }
            }
        }
    }
}

/// The payload of datagram number `seq` of a [`UdpFlood`] of `len` bytes: the sequence
/// number (big endian, truncated to `len`), then bytes `(seq + i) as u8`. Receivers use
/// it to check what arrived.
pub fn udp_payload(seq: u64, len: usize) -> Vec<u8> {
    let mut p: Vec<u8> = (0..len)
        .map(|i| (seq as usize).wrapping_add(i) as u8)
        .collect();
    let n = len.min(8);
    p[..n].copy_from_slice(&seq.to_be_bytes()[..n]);
    p
}

/// A kernel UDP sender: `count` datagrams of `payload_len` bytes to `dst`, in bursts of
/// `burst` separated by `pause` (set `pause` to zero for a flood). Run inside a
/// namespace with [`NetNs::spawn_udp_sender`]. Bounded by `count` and `timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpFlood {
    /// Destination.
    pub dst: SocketAddr,
    /// Local address to bind (port 0: ephemeral).
    pub bind: SocketAddr,
    /// Number of datagrams.
    pub count: u64,
    /// UDP payload bytes (see [`udp_payload`]).
    pub payload_len: usize,
    /// Datagrams per burst.
    pub burst: u32,
    /// Sleep between bursts.
    pub pause: Duration,
    /// Give up after this long.
    pub timeout: Duration,
}

impl UdpFlood {
    /// `count` datagrams of `payload_len` bytes to `dst` from an ephemeral port, paced at
    /// 32 per 50 µs, within 30 s.
    pub fn new(dst: SocketAddr, count: u64, payload_len: usize) -> UdpFlood {
        let bind = match dst {
            SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
            SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
        };
        UdpFlood {
            dst,
            bind,
            count,
            payload_len,
            burst: 32,
            pause: Duration::from_micros(50),
            timeout: Duration::from_secs(30),
        }
    }

    /// Send from the calling thread (which must be in the right namespace).
    pub fn run(&self) -> Result<UdpSendReport, TestNetError> {
        let sock =
            UdpSocket::bind(self.bind).map_err(io_err(format!("binding UDP {}", self.bind)))?;
        let local = sock.local_addr().map_err(io_err("local_addr"))?;
        let start = Instant::now();
        let deadline = start + self.timeout;
        let mut report = UdpSendReport {
            sent: 0,
            retries: 0,
            local,
            elapsed: Duration::ZERO,
        };
        let mut payload = vec![0u8; self.payload_len];
        while report.sent < self.count && Instant::now() < deadline {
            for _ in 0..self.burst.max(1) {
                if report.sent >= self.count {
                    break;
                }
                payload.copy_from_slice(&udp_payload(report.sent, self.payload_len));
                match sock.send_to(&payload, self.dst) {
                    Ok(_) => report.sent += 1,
                    Err(e)
                        if matches!(
                            e.raw_os_error(),
                            Some(libc::ENOBUFS) | Some(libc::EAGAIN) | Some(libc::ECONNREFUSED)
                        ) =>
                    {
                        // Transient (or an ICMP error from an earlier datagram): retry.
                        report.retries += 1;
                        std::thread::sleep(Duration::from_micros(100));
                        break;
                    }
                    Err(e) => return Err(io_err(format!("sending to {}", self.dst))(e)),
                }
            }
            if !self.pause.is_zero() {
                std::thread::sleep(self.pause);
            }
        }
        report.elapsed = start.elapsed();
        Ok(report)
    }
}

/// What a [`UdpFlood`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpSendReport {
    /// Datagrams the kernel accepted.
    pub sent: u64,
    /// Transient send errors retried.
    pub retries: u64,
    /// The sender's address.
    pub local: SocketAddr,
    /// How long it took.
    pub elapsed: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base36_is_fixed_width() {
        assert_eq!(base36(0, 3), "000");
        assert_eq!(base36(35, 2), "0z");
        assert_eq!(base36(36 * 36, 2), "00"); // truncated to the width
        assert_eq!(base36(4_194_304, 5), "2hwcg");
    }

    #[test]
    fn interface_names_fit_ifnamsiz() {
        let short = format!(
            "{}{}{}",
            base36(4_194_304, 5),
            base36(999_999, 3),
            base36(u64::MAX, 2)
        );
        assert!(format!("l{short}a").len() <= 15);
    }

    #[test]
    fn udp_payload_carries_the_sequence() {
        let p = udp_payload(0x0102_0304_0506_0708, 12);
        assert_eq!(&p[..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(p.len(), 12);
        assert_eq!(udp_payload(7, 3), vec![0, 0, 0]);
        assert!(udp_payload(1, 0).is_empty());
    }
}
