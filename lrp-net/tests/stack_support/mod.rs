//! Test support for the stack tests: a simulated NIC in a chosen mode, a stack on it, and
//! a peer at the far end of the wire — either raw frames (`lrp_net::sim::build`) or a
//! full smoltcp host ([`PeerHost`]) with real ARP, UDP and TCP.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use lrp_net::sim::{build, SimConfig, SimPeer};
use lrp_net::stack::{Stack, StackConfig};
use lrp_net::{Mode, Nic, NicConfig};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};

pub(crate) const MODES: [Mode; 3] = [Mode::NiLrp, Mode::SoftLrp, Mode::Eager];

/// The stack's address (the frames of `sim::build` are addressed to its MAC).
pub(crate) const STACK_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
/// The peer's address.
pub(crate) const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

pub(crate) fn sa(ip: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(ip, port)
}

pub(crate) fn nic_config(mode: Mode) -> NicConfig {
    NicConfig::default().frame_count(4096).mode(mode)
}

/// A simulated NIC in `mode` and a stack on it at 10.0.0.2/24.
pub(crate) fn stack(mode: Mode) -> (Stack, SimPeer) {
    stack_with(mode, |c| c)
}

pub(crate) fn stack_with(
    mode: Mode,
    f: impl FnOnce(StackConfig) -> StackConfig,
) -> (Stack, SimPeer) {
    stack_on(nic_config(mode), f)
}

/// A simulated NIC configured with `nic` and a stack on it at 10.0.0.2/24.
pub(crate) fn stack_on(
    nic: NicConfig,
    f: impl FnOnce(StackConfig) -> StackConfig,
) -> (Stack, SimPeer) {
    let (nic, peer) = Nic::sim(SimConfig::new(nic)).expect("sim NIC");
    let config = f(StackConfig::new(STACK_IP, 24));
    let stack = Stack::new(nic, config).expect("stack");
    (stack, peer)
}

/// Wait (bounded) until `f` holds, taking TX frames off the wire meanwhile with `drain`.
pub(crate) fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    f()
}

/// A smoltcp host on the peer side of the simulated wire.
pub(crate) struct PeerHost {
    pub(crate) sim: SimPeer,
    pub(crate) iface: Interface,
    pub(crate) sockets: SocketSet<'static>,
    rx: VecDeque<Vec<u8>>,
    epoch: Instant,
    /// Frames the stack transmitted, as seen by the peer (all of them, for inspection).
    pub(crate) seen: Vec<Vec<u8>>,
    pub(crate) keep_seen: bool,
}

struct PeerDev<'a> {
    sim: &'a SimPeer,
    rx: &'a mut VecDeque<Vec<u8>>,
}

pub(crate) struct PeerRx(Vec<u8>);
pub(crate) struct PeerTx<'a>(&'a SimPeer);

impl phy::RxToken for PeerRx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for PeerTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = vec![0u8; len];
        let r = f(&mut buf);
        // A full RX ring drops the frame, like a real wire: TCP retransmits.
        let _ = self.0.inject(&buf);
        r
    }
}

fn caps() -> DeviceCapabilities {
    let mut c = DeviceCapabilities::default();
    c.medium = Medium::Ethernet;
    c.max_transmission_unit = 1514;
    c
}

impl phy::Device for PeerDev<'_> {
    type RxToken<'b>
        = PeerRx
    where
        Self: 'b;
    type TxToken<'b>
        = PeerTx<'b>
    where
        Self: 'b;
    fn receive(&mut self, _: smoltcp::time::Instant) -> Option<(PeerRx, PeerTx<'_>)> {
        let f = self.rx.pop_front()?;
        Some((PeerRx(f), PeerTx(self.sim)))
    }
    fn transmit(&mut self, _: smoltcp::time::Instant) -> Option<PeerTx<'_>> {
        Some(PeerTx(self.sim))
    }
    fn capabilities(&self) -> DeviceCapabilities {
        caps()
    }
}

struct NoDev;
impl phy::Device for NoDev {
    type RxToken<'b>
        = PeerRx
    where
        Self: 'b;
    type TxToken<'b>
        = PeerTx<'b>
    where
        Self: 'b;
    fn receive(&mut self, _: smoltcp::time::Instant) -> Option<(PeerRx, PeerTx<'_>)> {
        None
    }
    fn transmit(&mut self, _: smoltcp::time::Instant) -> Option<PeerTx<'_>> {
        None
    }
    fn capabilities(&self) -> DeviceCapabilities {
        caps()
    }
}

impl PeerHost {
    pub(crate) fn new(sim: SimPeer) -> PeerHost {
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(build::PEER_MAC)));
        config.random_seed = 0x5eed;
        let mut iface = Interface::new(config, &mut NoDev, smoltcp::time::Instant::ZERO);
        iface.update_ip_addrs(|a| {
            a.push(IpCidr::new(IpAddress::Ipv4(PEER_IP), 24)).unwrap();
        });
        PeerHost {
            sim,
            iface,
            sockets: SocketSet::new(Vec::new()),
            rx: VecDeque::new(),
            epoch: Instant::now(),
            seen: Vec::new(),
            keep_seen: false,
        }
    }

    pub(crate) fn now(&self) -> smoltcp::time::Instant {
        smoltcp::time::Instant::from_micros(self.epoch.elapsed().as_micros() as i64)
    }

    /// Take what the stack sent and run the peer's interface once.
    pub(crate) fn poll(&mut self) {
        let keep = self.keep_seen;
        let (rx, seen) = (&mut self.rx, &mut self.seen);
        self.sim.drain_tx(|f| {
            if keep {
                seen.push(f.to_vec());
            }
            rx.push_back(f.to_vec());
        });
        let now = self.now();
        let mut dev = PeerDev {
            sim: &self.sim,
            rx: &mut self.rx,
        };
        self.iface.poll(now, &mut dev, &mut self.sockets);
    }

    /// Poll until `f` holds (bounded); returns whether it did.
    pub(crate) fn poll_until(
        &mut self,
        limit: Duration,
        mut f: impl FnMut(&mut PeerHost) -> bool,
    ) -> bool {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            self.poll();
            if f(self) {
                return true;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        false
    }

    pub(crate) fn tcp(&mut self, h: SocketHandle) -> &mut smoltcp::socket::tcp::Socket<'static> {
        self.sockets.get_mut::<smoltcp::socket::tcp::Socket>(h)
    }

    pub(crate) fn add_tcp(&mut self, buf: usize) -> SocketHandle {
        let s = smoltcp::socket::tcp::Socket::new(
            smoltcp::socket::tcp::SocketBuffer::new(vec![0; buf]),
            smoltcp::socket::tcp::SocketBuffer::new(vec![0; buf]),
        );
        self.sockets.add(s)
    }

    /// Start a connection from `local_port` to the stack's `port`.
    pub(crate) fn connect(&mut self, local_port: u16, port: u16) -> SocketHandle {
        let h = self.add_tcp(256 * 1024);
        let cx = self.iface.context();
        self.sockets
            .get_mut::<smoltcp::socket::tcp::Socket>(h)
            .connect(cx, (IpAddress::Ipv4(STACK_IP), port), local_port)
            .expect("connect");
        h
    }
}
