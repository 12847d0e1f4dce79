//! `LRP_XDP_OBJECT` makes the loader use an object file instead of the embedded one (CI
//! rebuilds the object from source and runs the tests against it). One test in this
//! binary, because it changes the process environment.

use lrp_net::testnet;
use lrp_net::xdp::program::{EMBEDDED_OBJECT, OBJECT_ENV};
use lrp_net::xdp::{LrpXdp, ProgramConfig, XdpAction, XdpError};

#[test]
fn object_override_from_the_environment() {
    if !testnet::require("object_override_from_the_environment") {
        return;
    }
    let saved = std::env::var_os(OBJECT_ENV);
    let committed = concat!(env!("CARGO_MANIFEST_DIR"), "/bpf/lrp_xdp.o");

    std::env::set_var(OBJECT_ENV, "/nonexistent/lrp_xdp.o");
    let missing = LrpXdp::load(&ProgramConfig::default());

    std::env::set_var(OBJECT_ENV, committed);
    let from_file = LrpXdp::load(&ProgramConfig::default());

    match saved {
        Some(v) => std::env::set_var(OBJECT_ENV, v),
        None => std::env::remove_var(OBJECT_ENV),
    }

    match missing {
        Err(XdpError::ObjectFile { path, .. }) => assert_eq!(path, "/nonexistent/lrp_xdp.o"),
        other => panic!("expected ObjectFile, got {other:?}"),
    }
    let x = from_file.expect("load the committed object through LRP_XDP_OBJECT");
    // A frame of an unknown ethertype takes the default action (pass).
    let mut frame = vec![0u8; 60];
    frame[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
    assert_eq!(x.test_run(&frame).unwrap(), XdpAction::Pass);
    assert_eq!(x.counters().unwrap().passed, 1);
    // The committed object is the embedded one.
    assert_eq!(std::fs::read(committed).unwrap(), EMBEDDED_OBJECT);
}
