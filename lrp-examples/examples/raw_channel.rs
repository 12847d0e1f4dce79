//! A raw NI channel, as a forwarding application uses one: the frames a demux rule
//! selects, without protocol processing, rewritten in place and sent back out (here:
//! a UDP reflector that swaps the Ethernet addresses). Everything else stays with the
//! kernel (the default action), so the box stays reachable.
//!
//! ```sh
//! cargo run --release --example raw_channel -- --iface veth0 --port 9000
//! ```
use std::time::Duration;

use clap::Parser;
use lrp_net::{Mode, Nic, NicConfig, Proto, Rule};

#[derive(Parser)]
struct Args {
    /// Interface to open with AF_XDP
    #[arg(long)]
    iface: String,
    /// UDP port whose frames the channel takes (any local address)
    #[arg(long)]
    port: u16,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let nic = Nic::open(&args.iface, NicConfig::default().mode(Mode::NiLrp))?;
    // Early demux in the XDP program; a full channel drops at its gate, before the copy.
    let ch = nic.channel(Rule::listener(Proto::Udp, None, args.port), 4096)?;
    let mut frames = Vec::with_capacity(64);
    loop {
        ch.wait(Some(Duration::from_secs(1)))?;
        ch.try_recv_batch(64, &mut frames);
        for mut frame in frames.drain(..) {
            let (dst, src) = frame.split_at_mut(6);
            dst.swap_with_slice(&mut src[..6]);
            ch.transmit(frame)?; // zero copy: the same UMEM chunk goes to the TX ring
        }
        println!("{}", ch.stats());
    }
}
