//! What a user's crate does with lrp-net alone: open a NIC (`--iface NAME --addr A`, as
//! root, or `--sim`), a stack on it, a UDP socket, a TCP listener and a raw channel,
//! move traffic, and read the statistics.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use lrp_net::sim::SimConfig;
use lrp_net::{Mode, Nic, NicConfig, Proto, Rule, Stack, StackConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = NicConfig::default().mode(Mode::NiLrp).frame_count(4096);
    let (nic, peer, addr) = match args.first().map(String::as_str) {
        Some("--sim") => {
            let (nic, peer) = Nic::sim(SimConfig::new(config))?;
            (nic, Some(peer), "10.0.0.2".parse::<Ipv4Addr>()?)
        }
        Some("--iface") if args.len() == 4 && args[2] == "--addr" => {
            (Nic::open(&args[1], config)?, None, args[3].parse()?)
        }
        _ => {
            eprintln!("usage: outside-user --sim | --iface NAME --addr IPV4");
            std::process::exit(2);
        }
    };
    println!("NIC {:?}: MAC {}, MTU {}", nic.interface(), nic.mac(), nic.mtu());
    let stack = Stack::new(nic.clone(), StackConfig::new(addr, 24))?;
    let udp = stack.udp_bind(SocketAddr::from((addr, 9000)), 256)?;
    let tcp = stack.tcp_listen(SocketAddr::from((addr, 8080)), 16)?;
    let raw = nic.channel(Rule::listener(Proto::Udp, None, 9001), 256)?;
    // IPv6 is refused with a clear error.
    let v6 = stack.udp_bind("[::1]:9000".parse()?, 16).unwrap_err();
    println!("IPv6 bind: {v6}");

    let Some(peer) = peer else {
        // A real interface: echo UDP until a peer has sent 10 datagrams.
        let mut buf = [0u8; 2048];
        for _ in 0..10 {
            let (n, from) = udp.recv_from(&mut buf)?;
            udp.send_to(&buf[..n], from)?;
        }
        println!("udp: {}", udp.stats());
        return Ok(());
    };
    let client = "10.0.0.1:5000".parse()?;
    for i in 0..10u8 {
        peer.send_udp(client, "10.0.0.2:9000".parse()?, &[i; 32]);
        peer.send_udp(client, "10.0.0.2:9001".parse()?, &[i; 32]);
    }
    udp.set_read_timeout(Some(Duration::from_secs(1)))?;
    let mut buf = [0u8; 64];
    for _ in 0..10 {
        let (n, from) = udp.recv_from(&mut buf)?;
        udp.send_to(&buf[..n], from)?;
    }
    let mut frames = Vec::new();
    raw.wait(Some(Duration::from_secs(1)))?;
    while raw.try_recv_batch(64, &mut frames) > 0 {}
    assert_eq!(frames.len(), 10, "raw channel frames");
    println!("udp: {}", udp.stats());
    println!("tcp listener: {}", tcp.stats());
    println!("raw: {}", raw.stats());
    println!("{}", nic.stats());
    assert_eq!(udp.stats().delivered, 10);
    Ok(())
}
