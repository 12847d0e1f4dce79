//! The director's configuration, from the outside: a table of bad configurations, each
//! checked through the library (the first error's line, column, key path and message)
//! and through the built `lrp-director check` (exit status 2, the same message on
//! stderr); the example configuration passes; and no input — random text, random bytes,
//! random edits of the example — makes the parser panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use lrp_examples::director::config::{Config, ConfigError};
use proptest::prelude::*;

/// A valid configuration the bad cases are edits of.
const BASE: &str = r#"[director]
client_iface = "eth0"

[[service]]
name = "web"
vip = "192.0.2.10"
port = 80
mode = "nat"

[[service.server]]
addr = "10.1.0.11"
port = 8080

[[service.server]]
addr = "10.1.0.12"
port = 8080
"#;

/// A second service appended to [`BASE`], with `$` replaced.
const SECOND: &str = r#"
[[service]]
name = "other"
vip = "192.0.2.20"
port = 80
mode = "nat"
$
"#;

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("director/example.toml")
}

/// `BASE` with the first `from` replaced by `to` (which must occur).
fn edit(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "{from:?} not in BASE");
    BASE.replacen(from, to, 1)
}

fn with_second(extra: &str) -> String {
    format!("{BASE}{}", SECOND.replace('$', extra))
}

/// One bad configuration and what its first error must say.
struct Case {
    name: &'static str,
    text: String,
    /// The error is at the `nth` (0-based) occurrence of `at` in the text, at its `|` if
    /// it has one (the `|` is not part of the text).
    at: &'static str,
    nth: usize,
    path: &'static str,
    /// A part of the message.
    says: &'static str,
}

fn case(
    name: &'static str,
    text: String,
    at: &'static str,
    path: &'static str,
    says: &'static str,
) -> Case {
    Case {
        name,
        text,
        at,
        nth: 0,
        path,
        says,
    }
}

fn cases() -> Vec<Case> {
    vec![
        case(
            "syntax error: unclosed table header",
            edit("[director]", "[director"),
            "[director|\n",
            "",
            "unclosed table",
        ),
        case(
            "syntax error: duplicate key",
            edit("port = 80\n", "port = 80\nport = 81\n"),
            "|port = 81",
            "",
            "duplicate key",
        ),
        case(
            "unknown field (typo)",
            edit("mode = \"nat\"", "mode = \"nat\"\nshceduler = \"rr\""),
            "shceduler",
            "service[0].shceduler",
            "unknown field `shceduler`, expected one of",
        ),
        case(
            "unknown top-level table",
            format!("{BASE}\n[tables]\nmax_entries = 10\n"),
            "tables",
            "tables",
            "unknown field `tables`",
        ),
        case(
            "unknown scheduler",
            edit("mode = \"nat\"", "mode = \"nat\"\nscheduler = \"fifo\""),
            "\"fifo\"",
            "service[0].scheduler",
            "unknown variant `fifo`, expected one of `rr`, `wrr`, `lc`, `wlc`, `sh`, `mh`",
        ),
        case(
            "unknown forwarding mode",
            edit("mode = \"nat\"", "mode = \"tun\""),
            "\"tun\"",
            "service[0].mode",
            "unknown variant `tun`, expected `nat` or `dr`",
        ),
        case(
            "missing vip",
            edit("vip = \"192.0.2.10\"\n", ""),
            "[[service]]",
            "service[0]",
            "missing field `vip`",
        ),
        case(
            "missing [director]",
            BASE.replacen("[director]\nclient_iface = \"eth0\"\n", "", 1),
            "|\n[[service]]",
            "",
            "missing field `director`",
        ),
        case(
            "bad IP address",
            edit("192.0.2.10", "192.0.2.300"),
            "\"192.0.2.300\"",
            "service[0].vip",
            "`192.0.2.300` is not an IPv4 or IPv6 address",
        ),
        case(
            "port out of range (type error)",
            edit("port = 80\n", "port = 70000\n"),
            "70000",
            "service[0].port",
            "invalid value: integer `70000`, expected u16",
        ),
        case(
            "port as a string (type error)",
            edit("port = 80\n", "port = \"80\"\n"),
            "\"80\"",
            "service[0].port",
            "invalid type: string \"80\", expected u16",
        ),
        case(
            "duplicate service (vip, port, proto)",
            format!(
                "{BASE}\n[[service]]\nname = \"again\"\nvip = \"192.0.2.10\"\nport = 80\n\
                 mode = \"dr\"\n[[service.server]]\naddr = \"10.1.0.99\"\n"
            ),
            "port = |80\nmode = \"dr\"",
            "service[1].port",
            "service \"again\": 192.0.2.10:80/tcp is already service \"web\" (line 7)",
        ),
        case(
            "duplicate service name",
            with_second("[[service.server]]\naddr = \"10.1.0.21\"").replacen(
                "name = \"other\"",
                "name = \"web\"",
                1,
            ),
            "\"web\"",
            "service[1].name",
            "service name \"web\" is used twice (first at line 5)",
        )
        .nth(1),
        case(
            "duplicate server",
            edit("addr = \"10.1.0.12\"", "addr = \"10.1.0.11\""),
            "\"10.1.0.11\"",
            "service[0].server[1]",
            "service \"web\": server 10.1.0.11:8080 appears twice (first at line 11)",
        )
        .nth(1),
        case(
            "empty server list",
            with_second(""),
            "[[service]]",
            "service[1]",
            "service \"other\" has no servers",
        )
        .nth(1),
        case(
            "mixed address families",
            edit("addr = \"10.1.0.12\"", "addr = \"2001:db8::12\""),
            "\"2001:db8::12\"",
            "service[0].server[1].addr",
            "server 2001:db8::12 is IPv6 but the VIP 192.0.2.10 is IPv4",
        ),
        case(
            "server is the VIP",
            edit("addr = \"10.1.0.12\"", "addr = \"192.0.2.10\""),
            "\"192.0.2.10\"",
            "service[0].server[1].addr",
            "a real server cannot be the VIP",
        )
        .nth(1),
        case(
            "multicast VIP",
            edit("192.0.2.10", "239.1.1.1"),
            "\"239.1.1.1\"",
            "service[0].vip",
            "239.1.1.1 is a multicast address",
        ),
        case(
            "Maglev table size not prime",
            edit(
                "mode = \"nat\"",
                "mode = \"nat\"\nscheduler = \"mh\"\nmaglev_table_size = 65536",
            ),
            "65536",
            "service[0].maglev_table_size",
            "65536 is not prime (Maglev needs a prime table size; the next prime is 65537)",
        ),
        case(
            "Maglev table too small for its servers",
            edit(
                "mode = \"nat\"",
                "mode = \"nat\"\nscheduler = \"mh\"\nmaglev_table_size = 199",
            ),
            "199",
            "service[0].maglev_table_size",
            "199 is too small for 2 servers: Maglev needs at least 100 slots per server",
        ),
        case(
            "Maglev table size without the mh scheduler",
            edit(
                "mode = \"nat\"",
                "mode = \"nat\"\nmaglev_table_size = 65537",
            ),
            "65537",
            "service[0].maglev_table_size",
            "only used with scheduler = \"mh\" (this service has \"wlc\")",
        ),
        case(
            "DR with a server port different from the service port",
            edit("mode = \"nat\"", "mode = \"dr\""),
            "8080",
            "service[0].server[0].port",
            "service \"web\" is DR: server port 8080 must equal the service port 80",
        ),
        case(
            "zero timeout",
            format!("{BASE}\n[table.timeouts]\nestablished = 0\n"),
            "established = |0",
            "table.timeouts.established",
            "0 seconds is not allowed",
        ),
        case(
            "both max_entries and max_bytes",
            format!("{BASE}\n[table]\nmax_entries = 1000\nmax_bytes = 67108864\n"),
            "67108864",
            "table.max_bytes",
            "give max_entries or max_bytes, not both",
        ),
        case(
            "weight too large",
            edit("port = 8080\n", "port = 8080\nweight = 70000\n"),
            "70000",
            "service[0].server[0].weight",
            "weight 70000 is out of range 0..=65535",
        ),
        case(
            "negative weight",
            edit("port = 8080\n", "port = 8080\nweight = -1\n"),
            "-1",
            "service[0].server[0].weight",
            "invalid value: integer `-1`, expected u32",
        ),
        case(
            "bad management address",
            edit(
                "client_iface = \"eth0\"",
                "client_iface = \"eth0\"\nmanagement = \"localhost:9100\"",
            ),
            "\"localhost:9100\"",
            "director.management",
            "`localhost:9100` is not ADDRESS:PORT",
        ),
        case(
            "bad MAC",
            edit("port = 8080\n", "port = 8080\nmac = \"02:00:00:00:00\"\n"),
            "\"02:00:00:00:00\"",
            "service[0].server[0].mac",
            "`02:00:00:00:00` is not a MAC",
        ),
        case(
            "multicast MAC",
            edit(
                "port = 8080\n",
                "port = 8080\nmac = \"01:00:5e:00:00:01\"\n",
            ),
            "\"01:00:5e:00:00:01\"",
            "service[0].server[0].mac",
            "01-00-5e-00-00-01 is not a unicast MAC",
        ),
        case(
            "health timeout longer than interval",
            format!("{BASE}\n[health]\ninterval = 2\ntimeout = 5\n"),
            "timeout = |5",
            "health.timeout",
            "timeout (5s) is longer than interval (2s)",
        ),
        case(
            "HTTP check on a UDP service",
            edit(
                "mode = \"nat\"",
                "mode = \"nat\"\nproto = \"udp\"\n[service.health]\ncheck = \"http\"",
            ),
            "\"http\"",
            "service[0].health.check",
            "a UDP service can only have check = \"none\"",
        ),
        case(
            "http_path without an HTTP check",
            format!("{BASE}\n[health]\nhttp_path = \"/healthz\"\n"),
            "\"/healthz\"",
            "health.http_path",
            "http_path is only used with check = \"http\"",
        ),
        case(
            "zero persistence",
            edit("mode = \"nat\"", "mode = \"nat\"\npersistence = 0"),
            "persistence = |0",
            "service[0].persistence",
            "leave persistence out for none",
        ),
        case(
            "zero channel capacity",
            edit("mode = \"nat\"", "mode = \"nat\"\nsyn_capacity = 0"),
            "syn_capacity = |0",
            "service[0].syn_capacity",
            "0 frames is out of range 1..=1048576",
        ),
        case(
            "director address without a prefix",
            edit(
                "client_iface = \"eth0\"",
                "client_iface = \"eth0\"\naddress = \"10.1.0.1\"",
            ),
            "\"10.1.0.1\"",
            "director.address",
            "`10.1.0.1` is not IPV4/PREFIX",
        ),
        case(
            "director address with prefix 33",
            edit(
                "client_iface = \"eth0\"",
                "client_iface = \"eth0\"\naddress = \"10.1.0.1/33\"",
            ),
            "\"10.1.0.1/33\"",
            "director.address",
            "prefix length 33 is not 1 to 32",
        ),
        case(
            "gateway outside the director's subnet",
            edit(
                "client_iface = \"eth0\"",
                "client_iface = \"eth0\"\naddress = \"10.1.0.1/24\"\ngateway = \"10.2.0.1\"",
            ),
            "\"10.2.0.1\"",
            "director.gateway",
            "10.2.0.1 is not another address of the director's subnet 10.1.0.1/24",
        ),
        case(
            "gateway without an address",
            edit(
                "client_iface = \"eth0\"",
                "client_iface = \"eth0\"\ngateway = \"10.1.0.254\"",
            ),
            "\"10.1.0.254\"",
            "director.gateway",
            "a gateway needs the director's `address`",
        ),
        case(
            "VIP is the director's own address",
            edit(
                "client_iface = \"eth0\"",
                "client_iface = \"eth0\"\naddress = \"192.0.2.10/24\"",
            ),
            "\"192.0.2.10\"",
            "service[0].vip",
            "192.0.2.10 is the director's own address (192.0.2.10/24), not a VIP",
        ),
        case(
            "interface name too long",
            edit("\"eth0\"", "\"a-very-long-interface\""),
            "\"a-very-long-interface\"",
            "director.client_iface",
            "longer than 15 bytes",
        ),
    ]
}

impl Case {
    fn nth(mut self, n: usize) -> Case {
        self.nth = n;
        self
    }

    /// 1-based line and column (in characters) of the `nth` occurrence of `at`, at its
    /// `|` marker if it has one.
    fn place(&self) -> (usize, usize) {
        let needle = self.at.replace('|', "");
        let (offset, _) = self
            .text
            .match_indices(&needle)
            .nth(self.nth)
            .unwrap_or_else(|| {
                panic!("{}: {:?} #{} not in the text", self.name, self.at, self.nth)
            });
        let offset = offset + self.at.find('|').unwrap_or(0);
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
        (line, column)
    }
}

fn run_check(path: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lrp-director"))
        .arg("check")
        .arg("--config")
        .arg(path)
        .output()
        .expect("run lrp-director")
}

fn scratch_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("director_config");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn base_is_valid() {
    let c = Config::from_toml("base.toml", BASE).unwrap();
    assert_eq!(c.services.len(), 1);
    assert_eq!(c.services[0].servers.len(), 2);
}

#[test]
fn every_bad_config_names_its_place_and_exits_2() {
    let dir = scratch_dir();
    let cases = cases();
    assert!(cases.len() >= 15);
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let file = dir.join(format!("bad-{i:02}.toml"));
        let file_name = file.display().to_string();
        let errors = match Config::from_toml(&file_name, &case.text) {
            Ok(_) => {
                failures.push(format!("{}: accepted", case.name));
                continue;
            }
            Err(e) => e.errors,
        };
        let first: &ConfigError = &errors[0];
        let (line, column) = case.place();
        let got = (first.line, first.column, first.path.as_str());
        if got != (line, column, case.path) || !first.message.contains(case.says) {
            failures.push(format!(
                "{}: expected {line}:{column}: {}: ...{}...\n    got {first}",
                case.name, case.path, case.says
            ));
            continue;
        }
        let shown = first.to_string();
        assert!(
            shown.starts_with(&format!("{file_name}:{line}:{column}: ")),
            "{shown}"
        );

        std::fs::write(&file, &case.text).unwrap();
        let out = run_check(&file);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(2) || !stderr.contains(&shown) || !out.stdout.is_empty() {
            failures.push(format!(
                "{}: lrp-director check exited {:?}, stderr:\n{stderr}",
                case.name,
                out.status.code()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn every_error_is_reported_not_only_the_first() {
    let text = edit(
        "port = 8080\n",
        "port = 8080\nweight = 70000\nmac = \"zz\"\n",
    )
    .replacen(
        "[director]\nclient_iface = \"eth0\"",
        "[director]\nclient_iface = \"eth0\"\nmanagement = \"nowhere\"",
        1,
    );
    let errors = Config::from_toml("d.toml", &text).unwrap_err().errors;
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "director.management",
            "service[0].server[0].weight",
            "service[0].server[0].mac"
        ]
    );
    // In file order.
    assert!(errors.windows(2).all(|w| w[0].line <= w[1].line));
}

#[test]
fn example_config_passes_check() {
    let path = example_path();
    let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(config.director.management.ip().is_loopback());
    let address = config.director.address.expect("the example sets address");
    assert_eq!(address.to_string(), "10.1.0.1/24");
    assert!(address.contains("10.1.0.11".parse().unwrap()));
    assert!(!address.contains("10.1.1.11".parse().unwrap()));
    assert!(config.services.len() >= 3);
    let out = run_check(&path);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(": OK"), "{stdout}");
    assert!(stdout.contains("address 10.1.0.1/24"), "{stdout}");
    for s in &config.services {
        assert!(stdout.contains(&s.name), "{stdout}");
        for r in &s.servers {
            assert!(stdout.contains(&r.socket_addr().to_string()), "{stdout}");
        }
    }
}

#[test]
fn unreadable_and_non_utf8_files_exit_2() {
    let dir = scratch_dir();
    let missing = dir.join("does-not-exist.toml");
    let out = run_check(&missing);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the configuration"));

    let latin1 = dir.join("latin1.toml");
    std::fs::write(&latin1, b"[director]\nclient_iface = \"eth\xe9\"\n").unwrap();
    let out = run_check(&latin1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains(&format!("{}:2:20: the file is not UTF-8", latin1.display())),
        "{stderr}"
    );
}

#[test]
fn unimplemented_subcommands_say_so_with_status_1() {
    let out = Command::new(env!("CARGO_BIN_EXE_lrp-director"))
        .args(["remove-service", "--service", "web"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not implemented yet"));
    // A control command without a director: status 1, naming the socket.
    let out = Command::new(env!("CARGO_BIN_EXE_lrp-director"))
        .args([
            "set-weight",
            "--socket",
            "/nonexistent/lrp-director.sock",
            "--service",
            "web",
            "--addr",
            "10.1.0.11",
            "--weight",
            "0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/lrp-director.sock"));
    // A bad configuration is still a configuration error for `run`.
    let file = scratch_dir().join("run-bad.toml");
    std::fs::write(&file, "[director]\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lrp-director"))
        .arg("run")
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// Whatever the input, the result is a config or well-placed errors — never a panic.
fn parse_never_panics(text: &str) {
    match Config::from_toml("p.toml", text) {
        Ok(_) => {}
        Err(e) => {
            assert!(!e.errors.is_empty());
            let lines = text.matches('\n').count() + 1;
            for err in &e.errors {
                assert!(err.line >= 1 && err.line <= lines, "{err} ({lines} lines)");
                assert!(err.column >= 1, "{err}");
                assert!(!err.message.is_empty());
            }
        }
    }
}

/// One edit of a text, applied at a position given as a fraction of its length.
#[derive(Debug, Clone)]
enum Mutation {
    Delete { at: f64, len: usize },
    Insert { at: f64, s: String },
    DuplicateLine { at: f64 },
    SwapLines { a: f64, b: f64 },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let piece = prop_oneof![
        Just("[".to_string()),
        Just("]".to_string()),
        Just("[[service]]\n".to_string()),
        Just("[[service.server]]\n".to_string()),
        Just("=".to_string()),
        Just("\"".to_string()),
        Just("\n".to_string()),
        Just("#".to_string()),
        Just("0".to_string()),
        Just("-1".to_string()),
        Just("99999999999999999999".to_string()),
        Just("{".to_string()),
        Just("'''".to_string()),
        Just("€".to_string()),
        "[a-z_.]{1,8}",
        "\\PC{0,6}",
    ];
    prop_oneof![
        (0.0..1.0f64, 1usize..40).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (0.0..1.0f64, piece).prop_map(|(at, s)| Mutation::Insert { at, s }),
        (0.0..1.0f64).prop_map(|at| Mutation::DuplicateLine { at }),
        (0.0..1.0f64, 0.0..1.0f64).prop_map(|(a, b)| Mutation::SwapLines { a, b }),
    ]
}

fn apply(text: &str, m: &Mutation) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    let pos = |f: f64, n: usize| ((f * n as f64) as usize).min(n);
    match m {
        Mutation::Delete { at, len } => {
            let start = pos(*at, chars.len());
            let end = (start + len).min(chars.len());
            chars.drain(start..end);
            chars.into_iter().collect()
        }
        Mutation::Insert { at, s } => {
            let start = pos(*at, chars.len());
            chars.splice(start..start, s.chars());
            chars.into_iter().collect()
        }
        Mutation::DuplicateLine { at } => {
            let mut lines: Vec<&str> = text.lines().collect();
            if !lines.is_empty() {
                let i = pos(*at, lines.len() - 1);
                lines.insert(i, lines[i]);
            }
            lines.join("\n")
        }
        Mutation::SwapLines { a, b } => {
            let mut lines: Vec<&str> = text.lines().collect();
            if !lines.is_empty() {
                let (i, j) = (pos(*a, lines.len() - 1), pos(*b, lines.len() - 1));
                lines.swap(i, j);
            }
            lines.join("\n")
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_text_never_panics(text in "\\PC{0,200}") {
        parse_never_panics(&text);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        parse_never_panics(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn mutated_example_never_panics(edits in proptest::collection::vec(mutation(), 1..6)) {
        let example = std::fs::read_to_string(example_path()).unwrap();
        let text = edits.iter().fold(example, |t, m| apply(&t, m));
        parse_never_panics(&text);
    }

    #[test]
    fn mutated_base_never_panics(edits in proptest::collection::vec(mutation(), 1..4)) {
        let text = edits.iter().fold(BASE.to_string(), |t, m| apply(&t, m));
        parse_never_panics(&text);
    }
}
