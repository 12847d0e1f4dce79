//! The errors a user meets without the right privileges: each names what is missing, in
//! the raw AF_XDP layer and through `Nic::open`.
//!
//! The test re-runs itself (this test binary, this one test) under `setpriv` with a
//! reduced capability bounding set and under `prlimit` with a small `RLIMIT_MEMLOCK`,
//! and the child checks the error variants. Root is needed to start the children;
//! `setpriv` and `prlimit` come with util-linux.

use std::process::Command;

use lrp_net::pool::FramePool;
use lrp_net::testnet;
use lrp_net::xdp::{LrpXdp, ProgramConfig, Umem, XdpError};
use lrp_net::{Error, Nic, NicConfig};

const CHILD_ENV: &str = "LRP_XDP_ERRORS_CHILD";
const TEST: &str = "missing_privileges_are_named";

fn child(case: &str) {
    match case {
        // No capability at all.
        "no-caps" => {
            match LrpXdp::load(&ProgramConfig::default()) {
                Err(
                    e @ XdpError::PermissionDenied {
                        capability: "CAP_BPF",
                        ..
                    },
                ) => {
                    println!("load: {e}")
                }
                other => panic!("expected PermissionDenied(CAP_BPF), got {other:?}"),
            }
            let pool = FramePool::new(16, 4096, 0).unwrap();
            match Umem::from_pool(&pool) {
                Err(
                    e @ XdpError::PermissionDenied {
                        capability: "CAP_NET_RAW",
                        ..
                    },
                ) => {
                    println!("umem: {e}")
                }
                other => panic!("expected PermissionDenied(CAP_NET_RAW), got {other:?}"),
            }
            // The NIC facade passes the named capability on.
            match Nic::open("lo", NicConfig::default().frame_count(16)) {
                Err(
                    e @ Error::Xdp(XdpError::PermissionDenied {
                        capability: "CAP_NET_RAW",
                        ..
                    }),
                ) => println!("Nic::open: {e}"),
                other => panic!("expected PermissionDenied(CAP_NET_RAW), got {other:?}"),
            }
        }
        // CAP_NET_RAW but no CAP_IPC_LOCK, and a 1 MiB locked-memory limit: a 16 MiB
        // UMEM cannot be registered.
        "memlock" => {
            let pool = FramePool::new(4096, 4096, 0).unwrap();
            match Umem::from_pool(&pool) {
                Err(
                    e @ XdpError::MemlockLimit {
                        bytes: 16_777_216,
                        limit: 1_048_576,
                    },
                ) => {
                    println!("umem: {e}")
                }
                other => panic!("expected MemlockLimit, got {other:?}"),
            }
            let config = NicConfig::default().frame_size(4096).frame_count(4096);
            match Nic::open("lo", config) {
                Err(
                    e @ Error::Xdp(XdpError::MemlockLimit {
                        bytes: 16_777_216,
                        limit: 1_048_576,
                    }),
                ) => println!("Nic::open: {e}"),
                other => panic!("expected MemlockLimit, got {other:?}"),
            }
        }
        other => panic!("unknown case {other}"),
    }
}

fn run_child(case: &str, caps: &str) {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("prlimit")
        .args(["--memlock=1048576:1048576", "setpriv"])
        .arg(format!("--bounding-set=-all{caps}"))
        .args(["--inh-caps=-all", "--"])
        .arg(exe)
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, case)
        .output()
        .expect("run prlimit/setpriv (util-linux)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("--- child {case} ---\n{text}");
    assert!(out.status.success(), "child `{case}` failed: {text}");
    assert!(
        text.contains("1 passed"),
        "child `{case}` did not run the test: {text}"
    );
}

#[test]
fn missing_privileges_are_named() {
    if let Ok(case) = std::env::var(CHILD_ENV) {
        return child(&case);
    }
    if !testnet::require(TEST) {
        return;
    }
    run_child("no-caps", "");
    run_child("memlock", ",+net_raw");
}
