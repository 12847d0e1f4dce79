//! Fuzz the typed views and `Repr`s of `lrp_core::wire`: parse, emit, compare (see
//! `roundtrip_checks.rs`, which the corpus replay test under `cargo test` shares).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "roundtrip_checks.rs"]
mod roundtrip_checks;

fuzz_target!(|input: &[u8]| roundtrip_checks::run(input));
