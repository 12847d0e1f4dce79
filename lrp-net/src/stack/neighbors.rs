//! The stack's shared neighbour (ARP) table, and how each endpoint's smoltcp interface
//! learns from it.
//!
//! smoltcp keeps a neighbour cache per `Interface`, fills it only from ARP packets
//! addressed to that interface, and offers no API to insert entries. In lrp every
//! endpoint has its own interface, and ARP reaches only the stack's control (host)
//! channel. So:
//!
//! 1. The control path reads every ARP packet aimed at the stack's address (requests and
//!    replies) and records the sender in this table ([`Neighbors::learn`]) before its own
//!    interface answers the request.
//! 2. Each endpoint interface remembers the table generation it last saw. When the table
//!    changed, or when the interface itself asked for an address it lacks (its ARP request
//!    leaves on the wire and the answer arrives at the control channel), the endpoint
//!    injects synthesized ARP replies ([`arp_reply_frame`]) into its own receive path, so
//!    smoltcp fills its cache through its ordinary, public ARP processing.
//!
//! Static entries ([`Neighbors::insert_static`]) serve tests and set-ups without ARP.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr,
};

/// One learned neighbour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Neighbor {
    /// Its hardware address.
    pub(crate) mac: EthernetAddress,
    /// When it was last confirmed (an ARP packet from it, or a static entry).
    pub(crate) seen: Instant,
}

/// The shared table: IPv4 address to MAC, with a generation counter that changes
/// whenever an entry is added or its MAC changes.
#[derive(Debug)]
pub(crate) struct Neighbors {
    map: Mutex<HashMap<Ipv4Addr, Neighbor>>,
    generation: AtomicU64,
}

/// The most neighbours the table keeps; beyond that the least recently seen is evicted
/// (an attacker sending ARP from many addresses cannot grow it without bound).
const MAX_NEIGHBORS: usize = 4096;

impl Neighbors {
    pub(crate) fn new() -> Neighbors {
        Neighbors {
            map: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Ipv4Addr, Neighbor>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Record that `ip` is at `mac` (seen now). Returns whether the table changed in a way
    /// endpoints must learn (a new address, or a new MAC for a known one).
    pub(crate) fn learn(&self, ip: Ipv4Addr, mac: EthernetAddress, now: Instant) -> bool {
        let mut map = self.lock();
        let changed = match map.get_mut(&ip) {
            Some(n) => {
                n.seen = now;
                let moved = n.mac != mac;
                n.mac = mac;
                moved
            }
            None => {
                if map.len() >= MAX_NEIGHBORS {
                    if let Some(oldest) = map.iter().min_by_key(|(_, n)| n.seen).map(|(k, _)| *k) {
                        map.remove(&oldest);
                    }
                }
                map.insert(ip, Neighbor { mac, seen: now });
                true
            }
        };
        if changed {
            self.generation.fetch_add(1, Ordering::Release);
        }
        changed
    }

    /// A static entry (same as learning it now).
    pub(crate) fn insert_static(&self, ip: Ipv4Addr, mac: EthernetAddress) {
        self.learn(ip, mac, Instant::now());
    }

    /// The current generation: differs from an earlier value iff the table changed.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The MAC of `ip`, if known.
    pub(crate) fn get(&self, ip: Ipv4Addr) -> Option<EthernetAddress> {
        self.lock().get(&ip).map(|n| n.mac)
    }

    /// Every entry, with the generation it belongs to.
    pub(crate) fn snapshot(&self) -> (u64, Vec<(Ipv4Addr, EthernetAddress)>) {
        let map = self.lock();
        let generation = self.generation();
        (generation, map.iter().map(|(ip, n)| (*ip, n.mac)).collect())
    }

    /// Number of entries.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Length of an Ethernet + ARP (IPv4) frame.
pub(crate) const ARP_FRAME_LEN: usize = 14 + 28;

/// A synthesized ARP reply "`their_ip` is at `their_mac`", from them to us. Fed into an
/// endpoint interface's receive path, it fills smoltcp's neighbour cache.
pub(crate) fn arp_reply_frame(
    our_mac: EthernetAddress,
    our_ip: Ipv4Addr,
    their_mac: EthernetAddress,
    their_ip: Ipv4Addr,
) -> Vec<u8> {
    let mut buf = vec![0u8; ARP_FRAME_LEN];
    let eth = EthernetRepr {
        src_addr: their_mac,
        dst_addr: our_mac,
        ethertype: EthernetProtocol::Arp,
    };
    let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.emit(&mut frame);
    let arp = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Reply,
        source_hardware_addr: their_mac,
        source_protocol_addr: their_ip,
        target_hardware_addr: our_mac,
        target_protocol_addr: our_ip,
    };
    arp.emit(&mut ArpPacket::new_unchecked(frame.payload_mut()));
    buf
}

/// The sender of an ARP packet aimed at `our_ip` (a request for our address or a reply
/// to us), if `frame` is one and its sender is a plausible unicast neighbour.
pub(crate) fn arp_sender(frame: &[u8], our_ip: Ipv4Addr) -> Option<(Ipv4Addr, EthernetAddress)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Arp {
        return None;
    }
    let packet = ArpPacket::new_checked(eth.payload()).ok()?;
    let ArpRepr::EthernetIpv4 {
        operation,
        source_hardware_addr,
        source_protocol_addr,
        target_protocol_addr,
        ..
    } = ArpRepr::parse(&packet).ok()?
    else {
        return None;
    };
    if target_protocol_addr != our_ip
        || !matches!(operation, ArpOperation::Request | ArpOperation::Reply)
        || !source_hardware_addr.is_unicast()
        || source_protocol_addr.is_unspecified()
        || source_protocol_addr.is_broadcast()
        || source_protocol_addr.is_multicast()
    {
        return None;
    }
    Some((source_protocol_addr, source_hardware_addr))
}

/// The address an ARP request in `frame` (sent by one of our interfaces) asks for.
pub(crate) fn arp_request_target(frame: &[u8]) -> Option<Ipv4Addr> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Arp {
        return None;
    }
    let packet = ArpPacket::new_checked(eth.payload()).ok()?;
    match ArpRepr::parse(&packet).ok()? {
        ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            target_protocol_addr,
            ..
        } => Some(target_protocol_addr),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);
    const THEM: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);

    #[test]
    fn learning_bumps_the_generation_only_on_change() {
        let n = Neighbors::new();
        let g0 = n.generation();
        let ip = Ipv4Addr::new(10, 0, 0, 1);
        assert!(n.learn(ip, THEM, Instant::now()));
        let g1 = n.generation();
        assert_ne!(g0, g1);
        assert!(!n.learn(ip, THEM, Instant::now()));
        assert_eq!(n.generation(), g1);
        assert!(n.learn(ip, US, Instant::now()));
        assert_ne!(n.generation(), g1);
        assert_eq!(n.get(ip), Some(US));
        assert_eq!(n.len(), 1);
    }

    #[test]
    fn the_table_is_bounded() {
        let n = Neighbors::new();
        let t = Instant::now();
        for i in 0..(MAX_NEIGHBORS as u32 + 10) {
            n.learn(Ipv4Addr::from(0x0a00_0000 + i), THEM, t);
        }
        assert_eq!(n.len(), MAX_NEIGHBORS);
    }

    #[test]
    fn synthesized_replies_parse_back() {
        let us = Ipv4Addr::new(10, 0, 0, 2);
        let them = Ipv4Addr::new(10, 0, 0, 1);
        let f = arp_reply_frame(US, us, THEM, them);
        assert_eq!(f.len(), ARP_FRAME_LEN);
        assert_eq!(arp_sender(&f, us), Some((them, THEM)));
        assert_eq!(arp_sender(&f, them), None, "not aimed at that address");
        assert_eq!(arp_request_target(&f), None, "a reply, not a request");
    }

    #[test]
    fn garbage_is_not_an_arp_sender() {
        let us = Ipv4Addr::new(10, 0, 0, 2);
        for len in 0..60 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            assert_eq!(arp_sender(&junk, us), None);
            assert_eq!(arp_request_target(&junk), None);
        }
        let mut f = arp_reply_frame(
            US,
            us,
            EthernetAddress::BROADCAST,
            Ipv4Addr::new(10, 0, 0, 1),
        );
        assert_eq!(arp_sender(&f, us), None, "broadcast sender MAC refused");
        f = arp_reply_frame(US, us, THEM, Ipv4Addr::UNSPECIFIED);
        assert_eq!(arp_sender(&f, us), None, "unspecified sender IP refused");
    }
}
