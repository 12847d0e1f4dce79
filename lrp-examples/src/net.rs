//! The network options every example takes, and opening a stack with them: a real
//! interface with AF_XDP (`--iface`) or the simulated NIC (`--sim`).

use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;

use lrp_net::sim::{build, SimConfig, SimPeer};
use lrp_net::stack::{EagerDriver, Stack, StackConfig, UdpSocket};
use lrp_net::{Mode, Nic, NicConfig, XdpAttach};

use crate::cli::{Args, CliError};

/// Usage text for the options [`NetOpts::parse`] reads.
pub const NET_HELP: &str = "\
Network options:
  --iface IF          interface to open with AF_XDP (requires root)
  --sim               use the simulated NIC instead (no root; the example drives the
                      far end of the wire itself, where it supports that)
  --ip A.B.C.D/LEN    the stack's address and prefix (default 10.0.0.2/24)
  --mac XX:XX:..      the stack's MAC (default: the interface's own; with --sim 02:00:00:00:00:02)
  --gateway A.B.C.D   default gateway
  --mode ni|soft|eager  receive path: NI-LRP, SOFT-LRP (default) or the eager baseline
  --eager-driver thread|callers  who runs the eager poll step (default thread)
  --queue N           interface queue (default 0)
  --frames N          frames in the UMEM / frame pool (default 8192)
  --xdp skb|driver    XDP attach mode (default skb)";

/// A receive path, as the examples spell it on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModeArg(pub Mode);

impl FromStr for ModeArg {
    type Err = String;
    fn from_str(s: &str) -> Result<ModeArg, String> {
        match s {
            "ni" | "ni-lrp" => Ok(ModeArg(Mode::NiLrp)),
            "soft" | "soft-lrp" => Ok(ModeArg(Mode::SoftLrp)),
            "eager" => Ok(ModeArg(Mode::Eager)),
            _ => Err("expected ni, soft or eager".into()),
        }
    }
}

/// An IPv4 address with a prefix length, `A.B.C.D/LEN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The address.
    pub ip: Ipv4Addr,
    /// The prefix length (1 to 32).
    pub prefix: u8,
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        let (ip, prefix) = s.split_once('/').ok_or("expected A.B.C.D/LEN")?;
        let ip: Ipv4Addr = ip.parse().map_err(|e| format!("{e}"))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| "prefix length is not a number")?;
        if prefix == 0 || prefix > 32 {
            return Err("prefix length must be 1 to 32".into());
        }
        Ok(Cidr { ip, prefix })
    }
}

/// A MAC address, `xx:xx:xx:xx:xx:xx`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mac(pub [u8; 6]);

impl FromStr for Mac {
    type Err = String;
    fn from_str(s: &str) -> Result<Mac, String> {
        let mut out = [0u8; 6];
        let mut parts = s.trim().split(':');
        for b in out.iter_mut() {
            let p = parts
                .next()
                .ok_or("expected six hex bytes separated by ':'")?;
            if p.is_empty() || p.len() > 2 {
                return Err("expected six hex bytes separated by ':'".into());
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| "not a hex byte")?;
        }
        if parts.next().is_some() {
            return Err("more than six bytes".into());
        }
        Ok(Mac(out))
    }
}

/// XDP attach mode on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttachArg(pub XdpAttach);

impl FromStr for AttachArg {
    type Err = String;
    fn from_str(s: &str) -> Result<AttachArg, String> {
        match s {
            "skb" | "generic" => Ok(AttachArg(XdpAttach::Skb)),
            "driver" | "native" => Ok(AttachArg(XdpAttach::Driver)),
            _ => Err("expected skb or driver".into()),
        }
    }
}

/// Who runs the eager poll step, on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriverArg(pub EagerDriver);

impl FromStr for DriverArg {
    type Err = String;
    fn from_str(s: &str) -> Result<DriverArg, String> {
        match s {
            "thread" => Ok(DriverArg(EagerDriver::Thread)),
            "callers" => Ok(DriverArg(EagerDriver::Callers)),
            _ => Err("expected thread or callers".into()),
        }
    }
}

/// The network options of an example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetOpts {
    /// Interface to open with AF_XDP.
    pub iface: Option<String>,
    /// Use the simulated NIC.
    pub sim: bool,
    /// The stack's address.
    pub cidr: Cidr,
    /// The stack's MAC, if given.
    pub mac: Option<[u8; 6]>,
    /// Default gateway.
    pub gateway: Option<Ipv4Addr>,
    /// Receive path.
    pub mode: Mode,
    /// Who runs the eager poll step.
    pub eager_driver: EagerDriver,
    /// Interface queue.
    pub queue: u32,
    /// Frames in the pool.
    pub frames: u32,
    /// XDP attach mode.
    pub attach: XdpAttach,
}

impl NetOpts {
    /// Read the options documented in [`NET_HELP`]; exactly one of `--iface` and `--sim`
    /// must be given.
    pub fn parse(args: &mut Args) -> Result<NetOpts, CliError> {
        let iface: Option<String> = args.value("iface")?;
        let sim = args.flag("sim");
        if iface.is_some() == sim {
            return Err(CliError::Required("iface (or --sim)".into()));
        }
        Ok(NetOpts {
            iface,
            sim,
            cidr: args.value_or(
                "ip",
                Cidr {
                    ip: Ipv4Addr::new(10, 0, 0, 2),
                    prefix: 24,
                },
            )?,
            mac: args.value::<Mac>("mac")?.map(|m| m.0),
            gateway: args.value("gateway")?,
            mode: args.value_or("mode", ModeArg(Mode::SoftLrp))?.0,
            eager_driver: args
                .value_or("eager-driver", DriverArg(EagerDriver::Thread))?
                .0,
            queue: args.value_or("queue", 0)?,
            frames: args.value_or("frames", 8192)?,
            attach: args.value_or("xdp", AttachArg(XdpAttach::Skb))?.0,
        })
    }

    /// The NIC configuration these options ask for.
    pub fn nic_config(&self) -> NicConfig {
        NicConfig::default()
            .queue(self.queue)
            .frame_count(self.frames)
            .mode(self.mode)
            .attach(self.attach)
    }

    /// Open the NIC and a stack on it. With `--sim` the simulated wire's far end is
    /// returned for the example to drive.
    pub fn open(&self) -> Result<(Stack, Option<SimPeer>), String> {
        let (nic, peer, default_mac) = if self.sim {
            let (nic, peer) = Nic::sim(SimConfig::new(self.nic_config()))
                .map_err(|e| format!("simulated NIC: {e}"))?;
            (nic, Some(peer), Some(build::LOCAL_MAC))
        } else {
            let ifname = self.iface.as_deref().unwrap_or_default();
            let nic = Nic::open(ifname, self.nic_config())
                .map_err(|e| format!("opening {ifname} with AF_XDP: {e}"))?;
            (nic, None, interface_mac(ifname).ok())
        };
        let mac = self
            .mac
            .or(default_mac)
            .ok_or("cannot read the interface's MAC address: give --mac")?;
        let mut config = StackConfig::new(self.cidr.ip, self.cidr.prefix)
            .mac(mac)
            .eager_driver(self.eager_driver);
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

/// The MAC address of interface `ifname`, from sysfs.
pub fn interface_mac(ifname: &str) -> Result<[u8; 6], String> {
    if ifname.is_empty() || ifname.contains('/') || ifname.contains("..") {
        return Err(format!("invalid interface name {ifname:?}"));
    }
    let path = format!("/sys/class/net/{ifname}/address");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    text.parse::<Mac>()
        .map(|m| m.0)
        .map_err(|e| format!("{path}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Args {
        Args::new("t".into(), v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn parses_every_option() {
        let mut a = args(&[
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
            "--frames",
            "1024",
            "--xdp",
            "driver",
        ]);
        let o = NetOpts::parse(&mut a).unwrap();
        a.finish().unwrap();
        assert_eq!(o.iface.as_deref(), Some("veth0"));
        assert!(!o.sim);
        assert_eq!(
            o.cidr,
            Cidr {
                ip: Ipv4Addr::new(192, 168, 7, 2),
                prefix: 16
            }
        );
        assert_eq!(o.mac, Some([0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x0e]));
        assert_eq!(o.gateway, Some(Ipv4Addr::new(192, 168, 0, 1)));
        assert_eq!(o.mode, Mode::Eager);
        assert_eq!(o.eager_driver, EagerDriver::Callers);
        assert_eq!((o.queue, o.frames), (1, 1024));
        assert_eq!(o.attach, XdpAttach::Driver);
    }

    #[test]
    fn needs_exactly_one_of_iface_and_sim() {
        assert!(NetOpts::parse(&mut args(&[])).is_err());
        assert!(NetOpts::parse(&mut args(&["--sim", "--iface", "x"])).is_err());
        let o = NetOpts::parse(&mut args(&["--sim"])).unwrap();
        assert_eq!(o.mode, Mode::SoftLrp);
        assert_eq!(o.cidr.prefix, 24);
    }

    #[test]
    fn rejects_bad_values() {
        assert!("10.0.0.1".parse::<Cidr>().is_err());
        assert!("10.0.0.1/0".parse::<Cidr>().is_err());
        assert!("10.0.0.1/33".parse::<Cidr>().is_err());
        assert!("10.0.0/24".parse::<Cidr>().is_err());
        assert!("02:00:00:00:00".parse::<Mac>().is_err());
        assert!("02:00:00:00:00:00:00".parse::<Mac>().is_err());
        assert!("02:00:00:00:00:zz".parse::<Mac>().is_err());
        assert!("02:00:00:00:00:123".parse::<Mac>().is_err());
        assert!("lazy".parse::<ModeArg>().is_err());
        assert!(NetOpts::parse(&mut args(&["--sim", "--mode", "fast"])).is_err());
    }

    #[test]
    fn sim_opens_a_stack() {
        let o = NetOpts::parse(&mut args(&["--sim", "--frames", "512"])).unwrap();
        let (stack, peer) = o.open().unwrap();
        assert!(peer.is_some());
        assert_eq!(stack.ip(), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(stack.mac(), build::LOCAL_MAC);
    }

    #[test]
    fn interface_names_are_checked() {
        assert!(interface_mac("../etc").is_err());
        assert!(interface_mac("").is_err());
        assert!(interface_mac("lrp-no-such-if0").is_err());
    }
}
