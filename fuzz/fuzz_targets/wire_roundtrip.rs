//! Fuzz what `lrp_core::wire` writes itself next to smoltcp's views: the VLAN tag round
//! trip, full checksums against smoltcp's, the IPv6 extension-header walk, ARP parsing
//! and NAT rewrites (see `roundtrip_checks.rs`, which the corpus replay test under
//! `cargo test` shares).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "roundtrip_checks.rs"]
mod roundtrip_checks;

fuzz_target!(|input: &[u8]| roundtrip_checks::run(input));
