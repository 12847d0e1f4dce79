//! `lrp-gen`: open-loop traffic generators for experiments, on lrp's AF_XDP transmit
//! path — a UDP blaster from many source addresses and ports, and a SYN flooder with
//! spoofed sources. Rate-limited, bounded in count and time, and refusing to run outside
//! a network namespace (see `lrp_examples::gen`).
//!
//! ```sh
//! ip netns exec client lrp-gen --iface veth1 --dst 10.77.0.1:9000 \
//!     --dst-mac 02:4c:ec:4f:24:01 --src-net 10.77.0.0/24 --rate 200000 --seconds 5 udp --size 64
//! ip netns exec client lrp-gen --iface veth1 --dst 10.77.0.1:80 \
//!     --dst-mac 02:4c:ec:4f:24:01 --src-net 10.200.0.0/16 --rate 80000 --count 400000 syn
//! ```
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use lrp_examples::gen::{self, Kind, Pacer, Sources, Template, MAX_SECONDS};
use lrp_examples::net::{parse_cidr, parse_mac, AttachArg};
use lrp_net::{Mode, Nic, NicConfig};
use smoltcp::wire::{EthernetAddress, Ipv4Cidr};

/// Open-loop traffic generator on AF_XDP (run inside a test network namespace).
#[derive(Debug, Parser)]
#[command(name = "lrp-gen", version)]
struct Cli {
    /// Interface to send on with AF_XDP (in this namespace)
    #[arg(long, value_name = "IF")]
    iface: String,
    /// Destination address and port
    #[arg(long, value_name = "A.B.C.D:PORT")]
    dst: SocketAddr,
    /// Destination MAC (the receiver's, or the next hop's)
    #[arg(long, value_name = "XX:XX:XX:XX:XX:XX", value_parser = parse_mac)]
    dst_mac: EthernetAddress,
    /// Source addresses: hosts of this subnet (spoofed unless it is the interface's own)
    #[arg(long, value_name = "A.B.C.D/LEN", value_parser = parse_cidr)]
    src_net: Ipv4Cidr,
    /// Lowest source port
    #[arg(long, default_value_t = 1024)]
    sport_min: u16,
    /// Highest source port
    #[arg(long, default_value_t = 65535)]
    sport_max: u16,
    /// Frames per second (0: as fast as the TX path goes)
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// Stop after this many frames
    #[arg(long, required_unless_present = "seconds")]
    count: Option<u64>,
    /// Stop after this many seconds (at most 600)
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=MAX_SECONDS))]
    seconds: Option<u64>,
    /// Seed of the source order
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Interface queue
    #[arg(long, default_value_t = 0)]
    queue: u32,
    /// XDP attach mode
    #[arg(long = "xdp", value_enum, default_value_t = AttachArg::Skb)]
    attach: AttachArg,
    /// What to send
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, Subcommand)]
enum What {
    /// UDP datagrams
    Udp {
        /// Payload bytes per datagram
        #[arg(long, default_value_t = 18, value_parser = clap::value_parser!(u16).range(0..=1472))]
        size: u16,
    },
    /// TCP connection requests (SYN) from spoofed sources
    Syn,
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(&cli) {
        eprintln!("lrp-gen: {e}");
        std::process::exit(1);
    }
}

fn run(cli: &Cli) -> Result<(), String> {
    let netns = gen::require_private_netns()?;
    let dst = gen::ipv4(cli.dst)?;
    let mut sources = Sources::new(cli.src_net, (cli.sport_min, cli.sport_max), cli.seed)?;
    let config = NicConfig::default()
        .mode(Mode::SoftLrp)
        .queue(cli.queue)
        .attach(cli.attach.into());
    let nic = Nic::open(&cli.iface, config).map_err(|e| format!("{}: {e}", cli.iface))?;
    let kind = match cli.what {
        What::Udp { size } => Kind::Udp {
            payload: size.into(),
        },
        What::Syn => Kind::Syn,
    };
    let template = Template::new(kind, nic.mac(), cli.dst_mac, sources.next_source(), dst);
    let limit = cli.count.unwrap_or(u64::MAX);
    let end = cli.seconds.map(|s| Instant::now() + Duration::from_secs(s));
    eprintln!(
        "lrp-gen (netns {netns}): {:?} to {dst} from {} addresses of {}, {} frames/s, {} B frames",
        kind,
        sources.addresses(),
        cli.src_net,
        cli.rate,
        template.bytes().len()
    );
    let pacer = Pacer::new(cli.rate);
    let start = Instant::now();
    let (mut sent, mut dropped) = (0u64, 0u64);
    while sent + dropped < limit && end.is_none_or(|e| Instant::now() < e) {
        let now = Instant::now();
        let due = pacer.due(now, sent + dropped, 64.min(limit - sent - dropped));
        if due == 0 {
            let wait = pacer.until_next(now, sent + dropped);
            if wait > Duration::from_micros(100) {
                std::thread::sleep(wait - Duration::from_micros(50));
            }
            continue;
        }
        for _ in 0..due {
            let Some(mut frame) = nic.alloc() else {
                dropped += 1;
                continue;
            };
            frame
                .set_len(template.bytes().len())
                .map_err(|e| format!("frame: {e}"))?;
            template
                .write(&mut frame, sources.next_source())
                .map_err(|e| format!("rewriting the template: {e:?}"))?;
            match nic.transmit(frame) {
                Ok(()) => sent += 1,
                Err(_) => dropped += 1,
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "sent {sent} frames in {secs:.2} s ({:.0}/s), {dropped} dropped (TX ring or pool full)",
        sent as f64 / secs.max(1e-9)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;

    use super::*;
    use lrp_examples::net::check_command_line;

    #[test]
    fn command_line_is_clap_with_help_and_status_2() {
        let base = [
            "--iface",
            "veth0",
            "--dst",
            "10.0.0.1:80",
            "--dst-mac",
            "02:00:00:00:00:01",
            "--src-net",
            "10.200.0.0/16",
        ];
        let with = |extra: &[&'static str]| -> Vec<&'static str> {
            base.iter().copied().chain(extra.iter().copied()).collect()
        };
        let no_bound = with(&["syn"]);
        let too_long = with(&["--seconds", "601", "syn"]);
        let bad_mac = {
            let mut v = with(&["--count", "1", "syn"]);
            v[5] = "02:00";
            v
        };
        let big = with(&["--count", "1", "udp", "--size", "9000"]);
        let ipv6 = {
            let mut v = with(&["--count", "1", "syn"]);
            v[3] = "[::1]:80";
            v
        };
        check_command_line::<Cli>(
            &[
                "--iface",
                "--dst",
                "--dst-mac",
                "--src-net",
                "--rate",
                "--count",
                "--seconds",
            ],
            &[
                (&no_bound, ErrorKind::MissingRequiredArgument),
                (&too_long, ErrorKind::ValueValidation),
                (&bad_mac, ErrorKind::ValueValidation),
                (&big, ErrorKind::ValueValidation),
                (&with(&["--count", "1"]), ErrorKind::MissingSubcommand),
            ],
        );
        // IPv6 parses (a SocketAddr) and is refused when the generator starts.
        let cli = Cli::try_parse_from(std::iter::once("lrp-gen").chain(ipv6)).unwrap();
        assert!(gen::ipv4(cli.dst).is_err());
    }
}
