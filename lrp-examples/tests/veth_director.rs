//! `lrp-director run` end to end on real veth with AF_XDP: a one-armed director in front
//! of three nginx real servers, a Linux client running curl and wrk.
//!
//! The topology, all in namespaces this test creates (unique names, removed on drop,
//! also when a test panics), on one subnet `10.N.0.0/24` with `N` unique per run:
//!
//! ```text
//!                       namespace "br": Linux bridge br0
//!        ┌──────────────────┬──────────┴───────┬─────────────────┬────────────────┐
//!   client .100        director .1          server 1 .11     server 2 .12     server 3 .13
//!   curl, wrk          lrp-director run     nginx            nginx            nginx
//!                      (AF_XDP on eth0;     default route, and a route to the client,
//!                      its kernel has no    via the director (NAT replies come back
//!                      address)             through it)
//! ```
//!
//! The VIP (`.50`) belongs to no kernel: the director answers ARP for it. Each veth has
//! its TX checksum offload off (`ethtool -K .. tx off`), as `lrp_net::testnet` does.
//!
//! NAT with `rr`: 6 curls are answered by servers 1, 2, 3, 1, 2, 3 (each nginx names
//! itself); `lrp-director stats` over the control socket then lists the service and
//! its three servers with connections; `lrp-director set-weight` to 0 drains server 1
//! (6 curls answered by servers 2 and 3 only), back to 1 it answers again; bad control
//! commands exit 1; `wrk -t1 -c8 -d5s` then runs without a single error; the
//! director's final statistics show connections and packets on all three servers.
//!
//! DR with `rr`: the servers hold the VIP on `lo` (`arp_ignore=1`, `arp_announce=2`)
//! and answer the client directly; 6 curls are answered by servers 1, 2, 3, 1, 2, 3 and
//! the director forwards nothing back to clients. Every wait is bounded;
//! `testnet::require` makes a missing capability a loud skip (or a failure with
//! `LRP_REQUIRE_XDP=1`).

mod support;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{parse_wrk, serial, TempDir};

use lrp_net::testnet;

/// Run a command; its output, or a panic naming it with its stderr.
fn run(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} {}: {e}", args.join(" ")));
    assert!(
        out.status.success(),
        "{program} {}: {}\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `program args` in namespace `ns`.
fn exec(ns: &str, program: &str, args: &[&str]) -> Output {
    let mut full = vec!["netns", "exec", ns, program];
    full.extend_from_slice(args);
    run("ip", &full)
}

/// The namespaces of one topology, deleted on drop (their veths and bridge with them).
struct Topology {
    /// Namespace names: br, client, director, server 1..3.
    br: String,
    client: String,
    director: String,
    servers: Vec<String>,
    /// `10.N.0`.
    net: String,
}

impl Topology {
    fn new() -> Topology {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let pid = std::process::id();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() as usize);
        let tag = format!("{}{n}", pid % 100_000);
        // 10.100.0.0 to 10.199.0.0: away from lrp_net::testnet's 10.77.x.
        let net = format!("10.{}.0", 100 + (pid as usize + n * 37 + nanos) % 100);
        let name = |role: &str| format!("lrpd-{tag}-{role}");
        let topo = Topology {
            br: name("br"),
            client: name("cl"),
            director: name("dir"),
            servers: (1..=3).map(|i| name(&format!("s{i}"))).collect(),
            net,
        };
        // Created one by one, so that a failure part way still deletes what exists.
        for ns in topo.all() {
            run("ip", &["netns", "add", ns]);
            let _ = exec(
                ns,
                "sysctl",
                &[
                    "-qw",
                    "net.ipv6.conf.all.disable_ipv6=1",
                    "net.ipv6.conf.default.disable_ipv6=1",
                ],
            );
            exec(ns, "ip", &["link", "set", "lo", "up"]);
        }
        let br = topo.br.clone();
        exec(&br, "ip", &["link", "add", "br0", "type", "bridge"]);
        exec(&br, "ip", &["link", "set", "br0", "up"]);
        let ends: Vec<(String, String, Option<String>)> =
            std::iter::once((topo.client.clone(), "cl".to_string(), Some(".100")))
                .chain(std::iter::once((
                    topo.director.clone(),
                    "dir".to_string(),
                    None,
                )))
                .chain(
                    topo.servers
                        .iter()
                        .enumerate()
                        .map(|(i, s)| (s.clone(), format!("s{}", i + 1), Some(".1x"))),
                )
                .map(|(ns, port, host)| {
                    let addr = host.map(|h| {
                        let h = h.replace('x', &port[1..]);
                        format!("{}{h}/24", topo.net)
                    });
                    (ns, port, addr)
                })
                .collect();
        for (ns, port, addr) in &ends {
            let port = format!("p-{port}");
            exec(
                &br,
                "ip",
                &[
                    "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", ns,
                ],
            );
            exec(&br, "ip", &["link", "set", &port, "master", "br0", "up"]);
            exec(&br, "ethtool", &["-K", &port, "tx", "off"]);
            exec(ns, "ethtool", &["-K", "eth0", "tx", "off"]);
            if let Some(addr) = addr {
                exec(ns, "ip", &["addr", "add", addr, "dev", "eth0"]);
            }
            exec(ns, "ip", &["link", "set", "eth0", "up"]);
        }
        topo
    }

    fn all(&self) -> impl Iterator<Item = &String> {
        [&self.br, &self.client, &self.director]
            .into_iter()
            .chain(&self.servers)
    }

    fn addr(&self, host: u8) -> String {
        format!("{}.{host}", self.net)
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in self.all() {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// A program in a namespace (`ip netns exec` execs it, so the child's pid is the
/// program's): its stdout lines kept, its stderr forwarded to ours; stopped with SIGTERM
/// (then SIGKILL after 5 s) and reaped on drop.
struct Background {
    child: Child,
    what: String,
    stdout: Arc<Mutex<Vec<String>>>,
}

impl Background {
    /// Start it; if `ready` is given, wait (at most 15 s) for a stderr line containing it.
    fn start(ns: &str, program: &str, args: &[&str], ready: Option<&str>) -> Background {
        let what = format!("{program} {}", args.join(" "));
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, program])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {what}: {e}"));
        let (stderr, stdout) = (child.stderr.take().unwrap(), child.stdout.take().unwrap());
        let lines = Arc::new(Mutex::new(Vec::new()));
        let keep = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                eprintln!("  > {line}");
                keep.lock().unwrap().push(line);
            }
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let marker = ready.map(str::to_owned);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("  | {line}");
                if marker.as_deref().is_some_and(|m| line.contains(m)) {
                    let _ = tx.send(());
                }
            }
        });
        let mut bg = Background {
            child,
            what,
            stdout: lines,
        };
        if ready.is_some() && rx.recv_timeout(Duration::from_secs(15)).is_err() {
            let status = bg.child.try_wait();
            panic!("{} did not become ready: {status:?}", bg.what);
        }
        bg
    }

    /// SIGTERM, then wait at most 5 s for it to exit (SIGKILL after); whether it exited
    /// with status 0 by itself.
    fn stop(&mut self) -> bool {
        if let Ok(Some(status)) = self.child.try_wait() {
            return status.success();
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .output();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }

    fn lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop();
    }
}

/// nginx in `ns` on port 80 of every address, answering every request with `server K`;
/// up when it answers on `addr`.
fn nginx(ns: &str, addr: &str, k: usize, dir: &Path) -> Background {
    let d = dir.join(format!("nginx{k}"));
    std::fs::create_dir_all(&d).unwrap();
    let d = d.display();
    // One process, no user switch: nginx runs as the test's user in its namespace.
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/error.log;\nevents {{ worker_connections 256; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  \
         proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  \
         uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
         server {{ listen 80; location / {{ return 200 \"server {k}\\n\"; }} }}\n}}\n"
    );
    let conf_path = format!("{d}/nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let (prefix, error_log) = (format!("{d}/"), format!("{d}/error.log"));
    let bg = Background::start(
        ns,
        "nginx",
        &["-p", &prefix, "-e", &error_log, "-c", &conf_path],
        None,
    );
    // Up when it answers locally (at most 10 s).
    let url = format!("http://{addr}/");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = Command::new("ip")
            .args(["netns", "exec", ns, "curl", "-s", "-m", "1", &url])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&out.stdout).contains(&format!("server {k}")) {
            return bg;
        }
        assert!(
            Instant::now() < deadline,
            "nginx {k} on {addr} never answered"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Per server of a `stats` line: (address, active + inactive connections, packets).
fn parse_stats(line: &str) -> Vec<(String, u64, u64)> {
    let Some((_, servers)) = line.split_once('|') else {
        return Vec::new();
    };
    let words: Vec<&str> = servers.split_whitespace().collect();
    words
        .chunks(5)
        .filter_map(|w| {
            let num = |s: &str, p: char| s.strip_prefix(p)?.parse::<u64>().ok();
            Some((
                w.first()?.to_string(),
                num(w.get(2)?, 'a')? + num(w.get(3)?, 'i')?,
                num(w.get(4)?, 'p')?,
            ))
        })
        .collect()
}

#[test]
fn stats_line_is_parsed() {
    let line = "stats web 10.1.0.50:80/tcp nat: conns 8 new 8 to-servers 10 to-clients 9 \
                drops 0 cpu 12us | 10.1.0.11:80 w1 a1 i2 p40 10.1.0.12:80 w0 a0 i0 p0";
    assert_eq!(
        parse_stats(line),
        vec![
            ("10.1.0.11:80".to_string(), 3, 40),
            ("10.1.0.12:80".to_string(), 0, 0)
        ]
    );
}

/// The director's configuration for `topo`: one NAT (or DR) service on the VIP `.50`
/// with `rr` over the three servers, TCP health checks every second.
fn director_config(topo: &Topology, mode: &str, rx: &str, control: &Path) -> String {
    let servers: String = (1..=3)
        .map(|k| format!("\n[[service.server]]\naddr = \"{}\"\n", topo.addr(10 + k)))
        .collect();
    format!(
        "[director]\nclient_iface = \"eth0\"\naddress = \"{}/24\"\nmode = \"{rx}\"\n\
         control_socket = \"{}\"\n\n\
         [table]\nmax_entries = 65536\nmax_half_open = 16384\n\n\
         [health]\ncheck = \"tcp\"\ninterval = 1\ntimeout = 1\n\n\
         [[service]]\nname = \"web\"\nvip = \"{}\"\nport = 80\nscheduler = \"rr\"\n\
         mode = \"{mode}\"\n{servers}",
        topo.addr(1),
        control.display(),
        topo.addr(50),
    )
}

/// The answers rr gives over the three servers for six requests.
fn rr_order() -> Vec<String> {
    [1, 2, 3, 1, 2, 3]
        .iter()
        .map(|k| format!("server {k}"))
        .collect()
}

/// Stop the director with SIGTERM (it must exit cleanly); its last `stats web` line and
/// all its output lines.
fn stop_for_last_stats(director: &mut Background) -> (String, Vec<String>) {
    assert!(
        director.stop(),
        "the director did not exit cleanly on SIGTERM"
    );
    let lines = director.lines();
    let last = lines
        .iter()
        .rev()
        .find(|l| l.starts_with("stats web"))
        .cloned()
        .unwrap_or_else(|| panic!("no stats line in {lines:?}"));
    (last, lines)
}

/// curl the VIP from the client; the body.
fn curl(topo: &Topology, url: &str) -> String {
    let out = exec(&topo.client, "curl", &["-s", "-m", "5", url]);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn dr_one_armed_rr_curl() {
    if !testnet::require("dr_one_armed_rr_curl") {
        return;
    }
    let _serial = serial();
    let topo = Topology::new();
    let dir = TempDir::new("director-dr");
    let vip = topo.addr(50);
    let mut servers = Vec::new();
    for (k, ns) in topo.servers.iter().enumerate() {
        // DR: the servers hold the VIP on lo, never answer ARP for it, and reply to
        // the client directly.
        exec(
            ns,
            "ip",
            &["addr", "add", &format!("{vip}/32"), "dev", "lo"],
        );
        exec(
            ns,
            "sysctl",
            &[
                "-qw",
                "net.ipv4.conf.all.arp_ignore=1",
                "net.ipv4.conf.all.arp_announce=2",
                "net.ipv4.conf.eth0.arp_ignore=1",
                "net.ipv4.conf.eth0.arp_announce=2",
            ],
        );
        servers.push(nginx(ns, &vip, k + 1, dir.path()));
    }
    let config = dir.path().join("director.toml");
    let socket = dir.path().join("control.sock");
    std::fs::write(&config, director_config(&topo, "dr", "ni", &socket)).unwrap();
    let config = config.display().to_string();
    let mut director = Background::start(
        &topo.director,
        env!("CARGO_BIN_EXE_lrp-director"),
        &["run", "--config", &config, "--seconds", "120"],
        Some("ready"),
    );
    let url = format!("http://{vip}/");
    let seen: Vec<String> = (0..6).map(|_| curl(&topo, &url)).collect();
    eprintln!("curl answers (DR): {seen:?}");
    let expected = rr_order();
    assert_eq!(seen, expected, "rr order over the three servers");
    let (last, _) = stop_for_last_stats(&mut director);
    let last = &last;
    assert!(
        last.contains("to-clients 0"),
        "DR replies bypass the director: {last}"
    );
    for (addr, conns, packets) in parse_stats(last) {
        assert!(conns >= 2 && packets > 0, "{addr}: {last}");
    }
}

#[test]
fn nat_one_armed_rr_curl_and_wrk() {
    if !testnet::require("nat_one_armed_rr_curl_and_wrk") {
        return;
    }
    let _serial = serial();
    let topo = Topology::new();
    let dir = TempDir::new("director");
    let mut servers = Vec::new();
    for (k, ns) in topo.servers.iter().enumerate() {
        // NAT: replies go back through the director. The client is on the servers'
        // link, so its own route (more specific than the default) goes via the
        // director too, or the servers would answer it directly.
        exec(ns, "ip", &["route", "add", "default", "via", &topo.addr(1)]);
        let client = format!("{}/32", topo.addr(100));
        exec(ns, "ip", &["route", "add", &client, "via", &topo.addr(1)]);
        servers.push(nginx(ns, &topo.addr(11 + k as u8), k + 1, dir.path()));
    }
    let config = dir.path().join("director.toml");
    let socket = dir.path().join("control.sock");
    std::fs::write(&config, director_config(&topo, "nat", "ni", &socket)).unwrap();
    let config = config.display().to_string();
    let mut director = Background::start(
        &topo.director,
        env!("CARGO_BIN_EXE_lrp-director"),
        &["run", "--config", &config, "--seconds", "120"],
        Some("ready"),
    );

    let url = format!("http://{}/", topo.addr(50));
    let seen: Vec<String> = (0..6).map(|_| curl(&topo, &url)).collect();
    eprintln!("curl answers: {seen:?}");
    let expected = rr_order();
    assert_eq!(seen, expected, "rr order over the three servers");

    control_socket_stats_and_set_weight(&topo, &socket, &url);

    let out = exec(&topo.client, "wrk", &["-t1", "-c8", "-d5s", &url]);
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{out}");
    let (requests, errors) = parse_wrk(&out);
    assert!(requests > 100, "wrk made {requests} requests:\n{out}");
    assert!(errors.is_empty(), "wrk errors: {errors:?}\n{out}");

    let (last, lines) = stop_for_last_stats(&mut director);
    let last = &last;
    let per_server = parse_stats(last);
    assert_eq!(per_server.len(), 3, "{last}");
    for (addr, conns, packets) in &per_server {
        // 2 curls each, and wrk's 8 connections spread 3/3/2.
        assert!(*conns >= 3 && *packets > 0, "{addr}: {last}");
    }
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("health") && l.contains("down")),
        "no server may go down: {lines:?}"
    );
    assert!(!socket.exists(), "the control socket is removed on exit");
}

/// `lrp-director` with `args`, in the director's namespace: (exit code, stdout, stderr).
fn control(topo: &Topology, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new("ip")
        .args(["netns", "exec", &topo.director])
        .arg(env!("CARGO_BIN_EXE_lrp-director"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Per server line (`  -> ADDR WEIGHT ACTIVE INACTIVE IN OUT`) of the `stats` table:
/// (address, weight, active + inactive connections, packets in).
fn parse_table(table: &str) -> Vec<(String, u64, u64, u64)> {
    table
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.strip_prefix("  -> ")?.split_whitespace().collect();
            let n = |i: usize| w.get(i)?.parse::<u64>().ok();
            Some((w.first()?.to_string(), n(1)?, n(2)? + n(3)?, n(4)?))
        })
        .collect()
}

/// After the rr curls: `stats` lists the service and its servers with connections;
/// weight 0 drains server 1, weight 1 brings it back; bad commands exit 1.
fn control_socket_stats_and_set_weight(topo: &Topology, socket: &Path, url: &str) {
    let socket = socket.display().to_string();
    let (code, table, err) = control(topo, &["stats", "--socket", &socket]);
    eprintln!("lrp-director stats:\n{table}{err}");
    assert_eq!(code, Some(0), "{err}");
    let vip = format!("{}:80", topo.addr(50));
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("TCP ") && l.contains(&vip) && l.contains(" rr ")),
        "service line: {table}"
    );
    let rows = parse_table(&table);
    assert_eq!(rows.len(), 3, "{table}");
    for (k, (addr, weight, conns, packets)) in rows.iter().enumerate() {
        assert_eq!(addr, &format!("{}:80", topo.addr(11 + k as u8)), "{table}");
        assert_eq!(*weight, 1, "{table}");
        assert!(*conns > 0 && *packets > 0, "{addr}: {table}");
    }
    let (code, json, err) = control(topo, &["stats", "--socket", &socket, "--json"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        json.contains("\"ok\":true") && json.contains("\"name\":\"web\""),
        "{json}"
    );

    let server1 = format!("{}:80", topo.addr(11));
    let set_weight = |w: &str| {
        let args = [
            "set-weight",
            "--socket",
            &socket,
            "--service",
            "web",
            "--server",
            &server1,
            "--weight",
            w,
        ];
        let (code, out, err) = control(topo, &args);
        assert_eq!(code, Some(0), "set-weight {w}: {out}{err}");
    };
    set_weight("0");
    let (_, table, _) = control(topo, &["stats", "--socket", &socket]);
    assert_eq!(parse_table(&table)[0].1, 0, "{table}");
    let seen: Vec<String> = (0..6).map(|_| curl(topo, url)).collect();
    eprintln!("curl answers with server 1 at weight 0: {seen:?}");
    assert!(
        seen.iter().all(|s| s == "server 2" || s == "server 3"),
        "weight 0 drains server 1: {seen:?}"
    );
    assert!(
        seen.iter().any(|s| s == "server 2") && seen.iter().any(|s| s == "server 3"),
        "{seen:?}"
    );
    set_weight("1");
    let seen: Vec<String> = (0..6).map(|_| curl(topo, url)).collect();
    eprintln!("curl answers with server 1 back at weight 1: {seen:?}");
    assert!(seen.iter().any(|s| s == "server 1"), "{seen:?}");

    // Failed commands: exit 1 with the reason.
    let (code, _, err) = control(
        topo,
        &[
            "set-weight",
            "--socket",
            &socket,
            "--service",
            "nope",
            "--server",
            &server1,
            "--weight",
            "1",
        ],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("unknown service \"nope\""), "{err}");
    let (code, _, err) = control(
        topo,
        &[
            "set-weight",
            "--socket",
            &socket,
            "--service",
            "web",
            "--server",
            &format!("{}:80", topo.addr(99)),
            "--weight",
            "1",
        ],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("no real server"), "{err}");
    let (code, _, err) = control(topo, &["stats", "--socket", "/nonexistent/lrp.sock"]);
    assert_eq!(code, Some(1), "{err}");
    let (code, _, _) = control(topo, &["set-weight", "--socket", &socket, "--weight", "1"]);
    assert_eq!(code, Some(2), "missing arguments are clap's status 2");
}
