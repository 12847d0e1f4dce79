//! A TCP server on lrp: listen, accept, read a request, answer, and print what each
//! connection cost. One thread per connection (a blocking read charges its protocol work
//! to that connection).
//!
//! ```sh
//! cargo run --release --example tcp_hello -- --iface veth0 --addr 10.0.0.2
//! curl http://10.0.0.2:8080/   # from a peer
//! ```
use std::io::{Read, Write};
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
    /// TCP port to listen on
    #[arg(long, default_value_t = 8080)]
    port: u16,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let nic = Nic::open(&args.iface, NicConfig::default().mode(Mode::SoftLrp))?;
    let stack = Stack::new(nic, StackConfig::new(args.addr, args.prefix))?;
    // Backlog of 128: handshakes in progress plus connections not yet accepted.
    let listener = stack.tcp_listen((args.addr, args.port).into(), 128)?;
    loop {
        // The handshakes are the listener's work, done here, in `accept`.
        let (mut conn, peer) = listener.accept()?;
        std::thread::spawn(move || -> std::io::Result<()> {
            let mut req = [0u8; 4096];
            let n = conn.read(&mut req)?;
            let body = format!("hello {peer}, you sent {n} bytes\n");
            let head = format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
            conn.write_all(head.as_bytes())?;
            conn.write_all(body.as_bytes())?;
            println!("{peer}: {}", conn.stats());
            Ok(())
        });
        println!("listener: {}", listener.stats());
    }
}
