//! Helpers shared by the real-network tests of this crate (each test file includes this
//! module with `mod support;`).

#![allow(dead_code)] // each test file uses part of it

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

/// The tests of one file run one at a time: each loads both cores.
static SERIAL: Mutex<()> = Mutex::new(());

/// Take the file's lock (a failed test poisons it; the next one runs anyway).
pub(crate) fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A scratch directory, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    /// A new directory under the system's temporary directory.
    pub(crate) fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "lrp-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    /// Its path.
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// wrk's summary: (requests, the error lines it printed).
pub(crate) fn parse_wrk(out: &str) -> (u64, Vec<String>) {
    let requests = out
        .lines()
        .find_map(|l| {
            // "  12345 requests in 5.00s, 14.00MB read"
            let (n, rest) = l.trim().split_once(' ')?;
            rest.starts_with("requests in").then(|| n.parse().ok())?
        })
        .unwrap_or(0);
    let errors = out
        .lines()
        .filter(|l| l.contains("Socket errors") || l.contains("Non-2xx"))
        .map(|l| l.trim().to_owned())
        .collect();
    (requests, errors)
}
