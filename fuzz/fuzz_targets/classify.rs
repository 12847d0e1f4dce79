//! Fuzz the early-demultiplexing path: `classify` then `verify` on arbitrary bytes (see
//! `classify_checks.rs`, which the corpus replay test under `cargo test` shares).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "classify_checks.rs"]
mod classify_checks;

fuzz_target!(|frame: &[u8]| classify_checks::run(frame));
