//! Ports in use on the stack and the choice of ephemeral ports (RFC 6056: the search
//! starts at a random port of the range).

use std::collections::HashSet;
use std::net::{SocketAddr, SocketAddrV4};

use super::{lock, StackInner, IPV4_ONLY};
use crate::error::{Error, Result};

/// Ports in use on the stack.
#[derive(Debug, Default)]
pub(super) struct Ports {
    pub(super) udp: HashSet<u16>,
    pub(super) tcp_listen: HashSet<u16>,
    pub(super) tcp_active: HashSet<(u16, SocketAddrV4)>,
    pub(super) next_ephemeral: u16,
}

const EPHEMERAL: std::ops::RangeInclusive<u16> = 49152..=65535;

impl StackInner {
    /// Check that `addr` is this stack's (or unspecified) and IPv4; returns the port.
    pub(crate) fn local_port(&self, addr: SocketAddr) -> Result<u16> {
        match addr {
            SocketAddr::V4(a) if a.ip().is_unspecified() || *a.ip() == self.cfg.ip => Ok(a.port()),
            SocketAddr::V4(_) => Err(Error::AddrNotAvailable(addr)),
            SocketAddr::V6(_) => Err(Error::Unsupported(IPV4_ONLY)),
        }
    }

    pub(crate) fn claim_udp(&self, port: u16) -> Result<u16> {
        let mut ports = lock(&self.ports);
        if port == 0 {
            return pick_udp(&mut ports);
        }
        if !ports.udp.insert(port) {
            return Err(Error::AddrInUse(SocketAddr::V4(SocketAddrV4::new(
                self.cfg.ip,
                port,
            ))));
        }
        Ok(port)
    }

    pub(crate) fn release_udp(&self, port: u16) {
        lock(&self.ports).udp.remove(&port);
    }

    pub(crate) fn claim_tcp_listen(&self, port: u16) -> Result<()> {
        if port == 0 {
            return Err(Error::InvalidConfig("a TCP listener needs a port"));
        }
        if !lock(&self.ports).tcp_listen.insert(port) {
            return Err(Error::AddrInUse(SocketAddr::V4(SocketAddrV4::new(
                self.cfg.ip,
                port,
            ))));
        }
        Ok(())
    }

    pub(crate) fn release_tcp_listen(&self, port: u16) {
        lock(&self.ports).tcp_listen.remove(&port);
    }

    /// An ephemeral port for a connection to `remote`.
    pub(crate) fn claim_tcp_active(&self, remote: SocketAddrV4) -> Result<u16> {
        let mut ports = lock(&self.ports);
        let span = u32::from(*EPHEMERAL.end() - *EPHEMERAL.start()) + 1;
        for _ in 0..span {
            let p = advance(&mut ports.next_ephemeral);
            if !ports.tcp_listen.contains(&p) && !ports.tcp_active.contains(&(p, remote)) {
                ports.tcp_active.insert((p, remote));
                return Ok(p);
            }
        }
        Err(Error::NoEphemeralPort)
    }

    pub(crate) fn release_tcp_active(&self, port: u16, remote: SocketAddrV4) {
        lock(&self.ports).tcp_active.remove(&(port, remote));
    }
}

/// A port of the ephemeral range chosen by `seed`.
pub(super) fn first_ephemeral(seed: u64) -> u16 {
    let span = u64::from(*EPHEMERAL.end() - *EPHEMERAL.start()) + 1;
    // `seed % span` < span <= 16384: the sum stays within the range.
    *EPHEMERAL.start() + (seed % span) as u16
}

fn advance(next: &mut u16) -> u16 {
    if !EPHEMERAL.contains(next) {
        *next = *EPHEMERAL.start();
    }
    let p = *next;
    *next = if p == *EPHEMERAL.end() {
        *EPHEMERAL.start()
    } else {
        p + 1
    };
    p
}

fn pick_udp(ports: &mut Ports) -> Result<u16> {
    let span = u32::from(*EPHEMERAL.end() - *EPHEMERAL.start()) + 1;
    for _ in 0..span {
        let p = advance(&mut ports.next_ephemeral);
        if ports.udp.insert(p) {
            return Ok(p);
        }
    }
    Err(Error::NoEphemeralPort)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ephemeral_ports_start_anywhere_in_the_range_and_wrap() {
        assert_eq!(first_ephemeral(0), 49152);
        assert_eq!(first_ephemeral(16383), 65535);
        assert_eq!(first_ephemeral(16384), 49152);
        for seed in [1, 7777, u64::MAX] {
            assert!(EPHEMERAL.contains(&first_ephemeral(seed)));
        }
        let mut next = 65535;
        assert_eq!(advance(&mut next), 65535);
        assert_eq!(advance(&mut next), 49152);
        let mut unset = 0;
        assert_eq!(advance(&mut unset), 49152);
        assert_eq!(unset, 49153);
    }
}
