//! Helpers shared by the `sim_*` integration tests.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddrV4;

use lrp_net::sim::{build, SimConfig, SimPeer};
use lrp_net::{Mode, Nic, NicConfig};

/// Every receive path.
pub const MODES: [Mode; 3] = [Mode::SoftLrp, Mode::NiLrp, Mode::Eager];

/// The remote peer's address.
pub fn client(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new([10, 0, 0, 1].into(), port)
}

/// The local (NIC) address.
pub fn server(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new([10, 0, 0, 2].into(), port)
}

/// A UDP frame to local `port` whose payload is `seq` (big-endian).
pub fn udp_to(port: u16, seq: u32) -> Vec<u8> {
    build::udp_v4(client(40000), server(port), &seq.to_be_bytes())
}

/// The sequence number in a frame built by [`udp_to`].
pub fn seq_of(frame: &[u8]) -> u32 {
    let p = &frame[build::UDP_V4_HEADER_LEN..build::UDP_V4_HEADER_LEN + 4];
    u32::from_be_bytes([p[0], p[1], p[2], p[3]])
}

/// A NIC config with rings large enough that nothing but the channels drops in the tests.
pub fn config(mode: Mode) -> NicConfig {
    NicConfig::default()
        .frame_count(1024)
        .fill_ring(256)
        .rx_ring(256)
        .tx_ring(256)
        .completion_ring(256)
        .mode(mode)
}

/// A simulated NIC in `mode` with [`config`].
pub fn sim(mode: Mode) -> (Nic, SimPeer) {
    Nic::sim(SimConfig::new(config(mode))).expect("sim NIC")
}

/// Assert that no frame is lost and that the application holds exactly `app_held`.
#[track_caller]
pub fn assert_conserved(nic: &Nic, app_held: usize) {
    let c = nic.census();
    assert!(c.is_conserved(), "census not conserved: {c:#?}");
    assert_eq!(c.held, app_held, "frames held by the application: {c:#?}");
}
