//! The same program on the simulated NIC, without root: a UDP socket, a peer that
//! floods it past its channel's capacity, and the statistics that show LRP's early
//! discard and the CPU charged to the socket, in each receive path.
//!
//! ```sh
//! cargo run --example sim_udp
//! ```
use lrp_net::sim::SimConfig;
use lrp_net::{Mode, Nic, NicConfig, Stack, StackConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for mode in [Mode::NiLrp, Mode::SoftLrp, Mode::Eager] {
        let (nic, peer) = Nic::sim(SimConfig::new(NicConfig::default().mode(mode)))?;
        let stack = Stack::new(nic, StackConfig::new("10.0.0.2".parse()?, 24))?;
        let sock = stack.udp_bind("10.0.0.2:9000".parse()?, 64)?;
        // 1000 datagrams arrive before the application reads: its 64-frame channel keeps
        // the first ones and discards the rest early, before any protocol work.
        for i in 0..1000u32 {
            peer.send_udp(
                "10.0.0.1:5000".parse()?,
                "10.0.0.2:9000".parse()?,
                &i.to_be_bytes(),
            );
        }
        sock.set_nonblocking(true)?;
        let mut buf = [0u8; 64];
        let mut got = 0;
        while sock.recv_from(&mut buf).is_ok() {
            got += 1;
        }
        let stats = sock.stats();
        println!("{mode}: received {got}; {stats}");
        assert!(got > 0 && got < 1000);
    }
    Ok(())
}
