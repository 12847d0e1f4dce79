//! The network options every example takes, and opening a stack with them: a real
//! interface with AF_XDP (`--iface`) or the simulated NIC (`--sim`).
//!
//! [`NetOpts`] is a `clap` argument group that every binary flattens into its own
//! command line; the receive path, XDP attach mode and eager driver are parsed as small
//! local enums and converted into the `lrp_net` types, and addresses are parsed by
//! `smoltcp::wire` ([`Ipv4Cidr`], [`EthernetAddress`]).

use std::net::{Ipv4Addr, SocketAddr};

use clap::{ArgGroup, ValueEnum};
use lrp_net::sim::{SimConfig, SimPeer};
use lrp_net::stack::{EagerDriver, Stack, StackConfig, UdpSocket};
use lrp_net::{Mode, Nic, NicConfig, XdpAttach};
use smoltcp::wire::{EthernetAddress, Ipv4Cidr};

/// A receive path, as the examples spell it on the command line (`--mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// NI-LRP: the XDP program demultiplexes, each socket has its own ring
    #[value(alias = "ni-lrp")]
    Ni,
    /// SOFT-LRP: one shared ring, demultiplexed lazily by the receiving socket
    #[value(alias = "soft-lrp")]
    Soft,
    /// The eager baseline: every frame processed on arrival
    Eager,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Mode {
        match m {
            ModeArg::Ni => Mode::NiLrp,
            ModeArg::Soft => Mode::SoftLrp,
            ModeArg::Eager => Mode::Eager,
        }
    }
}

/// XDP attach mode on the command line (`--xdp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AttachArg {
    /// Generic (SKB) mode: works on every interface
    #[value(alias = "generic")]
    Skb,
    /// Native (driver) mode
    #[value(alias = "native")]
    Driver,
}

impl From<AttachArg> for XdpAttach {
    fn from(a: AttachArg) -> XdpAttach {
        match a {
            AttachArg::Skb => XdpAttach::Skb,
            AttachArg::Driver => XdpAttach::Driver,
        }
    }
}

/// Who runs the eager poll step, on the command line (`--eager-driver`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DriverArg {
    /// A thread of the stack's own
    Thread,
    /// The threads that call into the stack
    Callers,
}

impl From<DriverArg> for EagerDriver {
    fn from(d: DriverArg) -> EagerDriver {
        match d {
            DriverArg::Thread => EagerDriver::Thread,
            DriverArg::Callers => EagerDriver::Callers,
        }
    }
}

/// `A.B.C.D/LEN` with a prefix length of 1 to 32, parsed by smoltcp.
pub fn parse_cidr(s: &str) -> Result<Ipv4Cidr, String> {
    let cidr: Ipv4Cidr = s
        .parse()
        .map_err(|()| "expected A.B.C.D/LEN with LEN from 1 to 32".to_string())?;
    if cidr.prefix_len() == 0 {
        return Err("prefix length must be 1 to 32".into());
    }
    Ok(cidr)
}

/// `xx:xx:xx:xx:xx:xx` (or with `-`), parsed by smoltcp.
pub fn parse_mac(s: &str) -> Result<EthernetAddress, String> {
    s.trim()
        .parse()
        .map_err(|()| "expected six hex bytes, xx:xx:xx:xx:xx:xx".to_string())
}

/// The network options of an example; binaries `#[command(flatten)]` it. Exactly one of
/// `--iface` and `--sim` must be given.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
#[command(next_help_heading = "Network options")]
#[command(group(ArgGroup::new("nic").args(["iface", "sim"]).required(true).multiple(false)))]
pub struct NetOpts {
    /// Interface to open with AF_XDP (requires root)
    #[arg(long, value_name = "IF")]
    pub iface: Option<String>,
    /// Use the simulated NIC instead (no root; the example drives the far end of the
    /// wire itself, where it supports that)
    #[arg(long)]
    pub sim: bool,
    /// The stack's address and prefix
    #[arg(long = "ip", value_name = "A.B.C.D/LEN", default_value = "10.0.0.2/24", value_parser = parse_cidr)]
    pub cidr: Ipv4Cidr,
    /// The stack's MAC (default: the interface's own; with --sim 02:00:00:00:00:02)
    #[arg(long, value_name = "XX:XX:XX:XX:XX:XX", value_parser = parse_mac)]
    pub mac: Option<EthernetAddress>,
    /// Default gateway
    #[arg(long, value_name = "A.B.C.D")]
    pub gateway: Option<Ipv4Addr>,
    /// Receive path
    #[arg(long, value_enum, default_value_t = ModeArg::Soft)]
    pub mode: ModeArg,
    /// Who runs the eager poll step (with --mode eager)
    #[arg(long, value_enum, value_name = "WHO", default_value_t = DriverArg::Thread)]
    pub eager_driver: DriverArg,
    /// Interface queue
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub queue: u32,
    /// Frames in the UMEM / frame pool
    #[arg(long, value_name = "N", default_value_t = 8192)]
    pub frames: u32,
    /// XDP attach mode
    #[arg(long = "xdp", value_enum, default_value_t = AttachArg::Skb)]
    pub attach: AttachArg,
}

impl NetOpts {
    /// The NIC configuration these options ask for.
    pub fn nic_config(&self) -> NicConfig {
        NicConfig::default()
            .queue(self.queue)
            .frame_count(self.frames)
            .mode(self.mode.into())
            .attach(self.attach.into())
    }

    /// Open the NIC and a stack on it. With `--sim` the simulated wire's far end is
    /// returned for the example to drive.
    pub fn open(&self) -> Result<(Stack, Option<SimPeer>), String> {
        let (nic, peer) = if self.sim {
            let (nic, peer) = Nic::sim(SimConfig::new(self.nic_config()))
                .map_err(|e| format!("simulated NIC: {e}"))?;
            (nic, Some(peer))
        } else {
            let ifname = self.iface.as_deref().unwrap_or_default();
            let nic = Nic::open(ifname, self.nic_config())
                .map_err(|e| format!("opening {ifname} with AF_XDP: {e}"))?;
            (nic, None)
        };
        // The MAC address and MTU are the interface's (from the NIC) unless --mac says.
        let mut config = StackConfig::new(self.cidr.address(), self.cidr.prefix_len())
            .eager_driver(self.eager_driver.into());
        if let Some(mac) = self.mac {
            config = config.mac(mac);
        }
        if let Some(gw) = self.gateway {
            config = config.gateway(gw);
        }
        let stack = Stack::new(nic, config).map_err(|e| format!("stack: {e}"))?;
        Ok((stack, peer))
    }

    /// [`open`](Self::open), then bind a UDP socket whose channel holds `capacity` frames
    /// at `port` of the stack's address. Returns the stack, the simulated wire's far end
    /// (with `--sim`), the socket and its address.
    pub fn open_udp(
        &self,
        port: u16,
        capacity: usize,
    ) -> Result<(Stack, Option<SimPeer>, UdpSocket, SocketAddr), String> {
        let (stack, peer) = self.open()?;
        let local = SocketAddr::new(stack.ip().into(), port);
        let sock = stack.udp_bind(local, capacity).map_err(|e| e.to_string())?;
        Ok((stack, peer, sock, local))
    }
}

/// The checks every binary's command line gets in its tests: `--help` renders (clap's
/// own consistency checks pass) and lists `options`, and each of `bad` fails with its
/// clap error kind and exit status 2.
pub fn check_command_line<C: clap::Parser>(
    options: &[&str],
    bad: &[(&[&str], clap::error::ErrorKind)],
) {
    use clap::error::ErrorKind;
    C::command().debug_assert();
    let mut command = C::command();
    let name = command.get_name().to_owned();
    let help = command.render_long_help().to_string();
    for option in options {
        assert!(help.contains(option), "{option} missing from:\n{help}");
    }
    let parse = |args: &[&str]| {
        C::try_parse_from(std::iter::once(name.as_str()).chain(args.iter().copied()))
    };
    let e = parse(&["--help"]).err().expect("--help stops parsing");
    assert_eq!((e.kind(), e.exit_code()), (ErrorKind::DisplayHelp, 0));
    for (args, kind) in bad {
        let e = parse(args)
            .err()
            .unwrap_or_else(|| panic!("{args:?} accepted"));
        assert_eq!(e.kind(), *kind, "{args:?}: {e}");
        assert_eq!(e.exit_code(), 2, "{args:?}");
    }
}

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;
    use clap::{CommandFactory, Parser};

    use super::*;

    /// A command line made of the network options alone.
    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        net: NetOpts,
    }

    fn parse(v: &[&str]) -> Result<NetOpts, clap::Error> {
        Cli::try_parse_from(std::iter::once("t").chain(v.iter().copied())).map(|c| c.net)
    }

    fn kind(v: &[&str]) -> ErrorKind {
        parse(v).unwrap_err().kind()
    }

    #[test]
    fn help_renders() {
        Cli::command().debug_assert();
        let help = Cli::command().render_help().to_string();
        assert!(help.contains("Network options"), "{help}");
        assert!(help.contains("--eager-driver"), "{help}");
    }

    #[test]
    fn parses_every_option() {
        let o = parse(&[
            "--iface",
            "veth0",
            "--ip",
            "192.168.7.2/16",
            "--mac",
            "02:aa:bb:cc:dd:0e",
            "--gateway",
            "192.168.0.1",
            "--mode",
            "eager",
            "--eager-driver",
            "callers",
            "--queue",
            "1",
            "--frames=1024",
            "--xdp",
            "driver",
        ])
        .unwrap();
        assert_eq!(o.iface.as_deref(), Some("veth0"));
        assert!(!o.sim);
        assert_eq!(o.cidr.address(), Ipv4Addr::new(192, 168, 7, 2));
        assert_eq!(o.cidr.prefix_len(), 16);
        assert_eq!(
            o.mac,
            Some(EthernetAddress([0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x0e]))
        );
        assert_eq!(o.gateway, Some(Ipv4Addr::new(192, 168, 0, 1)));
        assert_eq!(Mode::from(o.mode), Mode::Eager);
        assert_eq!(EagerDriver::from(o.eager_driver), EagerDriver::Callers);
        assert_eq!((o.queue, o.frames), (1, 1024));
        assert_eq!(XdpAttach::from(o.attach), XdpAttach::Driver);
        let c = o.nic_config();
        assert_eq!(
            c,
            NicConfig::default()
                .queue(1)
                .frame_count(1024)
                .mode(Mode::Eager)
                .attach(XdpAttach::Driver)
        );
    }

    #[test]
    fn long_names_of_modes_and_attach_modes_are_accepted() {
        let o = parse(&["--sim", "--mode", "ni-lrp", "--xdp", "native"]).unwrap();
        assert_eq!(Mode::from(o.mode), Mode::NiLrp);
        assert_eq!(XdpAttach::from(o.attach), XdpAttach::Driver);
        let o = parse(&["--sim", "--mode", "soft-lrp", "--xdp", "generic"]).unwrap();
        assert_eq!(Mode::from(o.mode), Mode::SoftLrp);
        assert_eq!(XdpAttach::from(o.attach), XdpAttach::Skb);
    }

    #[test]
    fn needs_exactly_one_of_iface_and_sim() {
        assert_eq!(kind(&[]), ErrorKind::MissingRequiredArgument);
        assert_eq!(
            kind(&["--sim", "--iface", "x"]),
            ErrorKind::ArgumentConflict
        );
        let o = parse(&["--sim"]).unwrap();
        assert_eq!(Mode::from(o.mode), Mode::SoftLrp);
        assert_eq!(o.cidr.address(), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(o.cidr.prefix_len(), 24);
        assert_eq!(o.mac, None);
        assert_eq!((o.queue, o.frames), (0, 8192));
    }

    #[test]
    fn rejects_bad_values() {
        for bad in ["10.0.0.1", "10.0.0.1/0", "10.0.0.1/33", "10.0.0/24"] {
            assert_eq!(
                kind(&["--sim", "--ip", bad]),
                ErrorKind::ValueValidation,
                "{bad}"
            );
        }
        for bad in [
            "02:00:00:00:00",
            "02:00:00:00:00:00:00",
            "02:00:00:00:00:zz",
            "02:00:00:00:00:123",
        ] {
            assert_eq!(
                kind(&["--sim", "--mac", bad]),
                ErrorKind::ValueValidation,
                "{bad}"
            );
        }
        assert_eq!(kind(&["--sim", "--mode", "fast"]), ErrorKind::InvalidValue);
        assert_eq!(kind(&["--sim", "--xdp", "hw"]), ErrorKind::InvalidValue);
        assert_eq!(
            kind(&["--sim", "--eager-driver", "x"]),
            ErrorKind::InvalidValue
        );
        assert_eq!(
            kind(&["--sim", "--queue", "4294967296"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            kind(&["--sim", "--gateway", "10.0.0"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(kind(&["--sim", "--mac"]), ErrorKind::InvalidValue);
        assert_eq!(kind(&["--sim", "--bogus"]), ErrorKind::UnknownArgument);
    }

    #[test]
    fn sim_opens_a_stack() {
        let o = parse(&["--sim", "--frames", "512"]).unwrap();
        let (stack, peer) = o.open().unwrap();
        assert!(peer.is_some());
        assert_eq!(stack.ip(), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(stack.mac(), stack.nic().mac());
    }
}
