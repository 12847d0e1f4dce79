//! A UDP echo server on lrp: the whole path from an interface to a socket's statistics.
//!
//! As root, on an interface whose address lrp should own (the kernel must not answer for
//! it: `ip addr flush dev IFACE` first):
//!
//! ```sh
//! cargo run --release --example udp_echo -- --iface veth0 --addr 10.0.0.2 --mode ni
//! ```
use std::net::Ipv4Addr;

use clap::Parser;
use lrp_net::{Mode, Nic, NicConfig, Stack, StackConfig};

#[derive(Parser)]
struct Args {
    /// Interface to open with AF_XDP
    #[arg(long)]
    iface: String,
    /// The stack's IPv4 address (lrp owns it, not the kernel)
    #[arg(long)]
    addr: Ipv4Addr,
    /// Prefix length of its subnet
    #[arg(long, default_value_t = 24)]
    prefix: u8,
    /// UDP port to echo on
    #[arg(long, default_value_t = 7)]
    port: u16,
    /// Receive path: ni (XDP demux), soft (userspace demux), eager (baseline)
    #[arg(long, default_value = "ni", value_parser = ["ni", "soft", "eager"])]
    mode: String,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mode = match args.mode.as_str() {
        "ni" => Mode::NiLrp,
        "soft" => Mode::SoftLrp,
        _ => Mode::Eager,
    };
    // Loads the XDP program, maps the frame pool as the UMEM, reads the interface's MAC
    // address and MTU.
    let nic = Nic::open(&args.iface, NicConfig::default().mode(mode))?;
    println!("{} ({}), MTU {}, {mode}", args.iface, nic.mac(), nic.mtu());
    let stack = Stack::new(nic, StackConfig::new(args.addr, args.prefix))?;
    // The socket's own NI channel: 1024 frames, then early discard.
    let sock = stack.udp_bind((args.addr, args.port).into(), 1024)?;
    let mut buf = [0u8; 2048];
    for n in 1u64.. {
        // Checksums and UDP processing run here, on this thread, charged to `sock`.
        let (len, from) = sock.recv_from(&mut buf)?;
        sock.send_to(&buf[..len], from)?;
        if n % 10_000 == 0 {
            println!("{}", sock.stats());
        }
    }
    Ok(())
}
