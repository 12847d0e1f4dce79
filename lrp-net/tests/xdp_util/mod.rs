//! Shared helpers of the `xdp_*` integration tests: frame builders, a frame parser for
//! what the tests receive, the UDP echo rewrite, and the serialization lock.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Mutex, MutexGuard};

use lrp_core::wire::checksum;
use lrp_net::testnet::NetNs;

/// Tests that push real traffic through veth take this lock: on a 2-core machine, two
/// floods at once would starve each other's receive loops.
pub(crate) fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
pub(crate) const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];

/// Ethernet header + payload.
pub(crate) fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&MAC_B);
    f.extend_from_slice(&MAC_A);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An IPv4 packet (header checksum filled in) carrying `l4`.
pub(crate) fn ipv4(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    flags_offset: u16,
    l4: &[u8],
) -> Vec<u8> {
    let total = (20 + l4.len()) as u16;
    let mut p = vec![0x45, 0, 0, 0, 0, 1, 0, 0, 64, proto, 0, 0];
    p[2..4].copy_from_slice(&total.to_be_bytes());
    p[6..8].copy_from_slice(&flags_offset.to_be_bytes());
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let c = checksum::checksum(&p);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(l4);
    p
}

/// An IPv6 packet carrying `payload` (extension headers included) with next header `nh`.
pub(crate) fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, nh: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    p.push(nh);
    p.push(64);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(payload);
    p
}

/// A UDP header + payload (checksum left zero: the demux does not look at it).
pub(crate) fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let len = (8 + payload.len()) as u16;
    let mut u = Vec::with_capacity(len as usize);
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&len.to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

/// A 20-byte TCP header with `flags`.
pub(crate) fn tcp(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[12] = 0x50;
    t[13] = flags;
    t
}

/// An ARP request for `target` from `sender`.
pub(crate) fn arp(sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut a = vec![0, 1, 8, 0, 6, 4, 0, 1];
    a.extend_from_slice(&MAC_A);
    a.extend_from_slice(&sender.octets());
    a.extend_from_slice(&[0; 6]);
    a.extend_from_slice(&target.octets());
    eth(0x0806, &a)
}

/// A received UDP/IPv4 frame, as the tests look at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UdpView {
    pub(crate) src: Ipv4Addr,
    pub(crate) dst: Ipv4Addr,
    pub(crate) sport: u16,
    pub(crate) dport: u16,
    pub(crate) payload: Vec<u8>,
    /// The UDP checksum verified (or was zero).
    pub(crate) checksum_ok: bool,
}

/// Parse an untagged Ethernet/IPv4/UDP frame without options.
pub(crate) fn parse_udp4(frame: &[u8]) -> Option<UdpView> {
    if frame.len() < 42 || frame[12..14] != [0x08, 0x00] || frame[14] != 0x45 || frame[23] != 17 {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([frame[16], frame[17]]));
    let ip = frame.get(14..14 + total)?;
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let seg = &ip[20..];
    let ulen = usize::from(u16::from_be_bytes([seg[4], seg[5]]));
    if ulen != seg.len() {
        return None;
    }
    let checksum_ok =
        seg[6..8] == [0, 0] || checksum::verify_l4(&IpAddr::V4(src), &IpAddr::V4(dst), 17, seg);
    Some(UdpView {
        src,
        dst,
        sport: u16::from_be_bytes([seg[0], seg[1]]),
        dport: u16::from_be_bytes([seg[2], seg[3]]),
        payload: seg[8..].to_vec(),
        checksum_ok,
    })
}

/// Turn a received Ethernet/IPv4/UDP frame (no options) into its reply in place: swap
/// MACs, addresses and ports, reset the TTL, recompute the IPv4 header checksum and the
/// UDP checksum.
pub(crate) fn udp4_echo_in_place(frame: &mut [u8]) {
    let (dst_mac, src_mac) = (frame[0..6].to_vec(), frame[6..12].to_vec());
    frame[0..6].copy_from_slice(&src_mac);
    frame[6..12].copy_from_slice(&dst_mac);
    let total = usize::from(u16::from_be_bytes([frame[16], frame[17]]));
    let ip = &mut frame[14..14 + total];
    let (s, d) = (ip[12..16].to_vec(), ip[16..20].to_vec());
    ip[12..16].copy_from_slice(&d);
    ip[16..20].copy_from_slice(&s);
    ip[8] = 64;
    ip[10..12].copy_from_slice(&[0, 0]);
    let c = checksum::checksum(&ip[..20]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let seg = &mut ip[20..];
    let (sp, dp) = (seg[0..2].to_vec(), seg[2..4].to_vec());
    seg[0..2].copy_from_slice(&dp);
    seg[2..4].copy_from_slice(&sp);
    seg[6..8].copy_from_slice(&[0, 0]);
    let c = checksum::udp_finish(checksum::l4_v4(&src, &dst, 17, seg));
    seg[6..8].copy_from_slice(&c.to_be_bytes());
}

/// A tiny deterministic generator (xorshift64*), for mutation corpora.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A `Udp:` counter of the namespace's kernel (from `/proc/net/snmp`).
pub(crate) fn udp_counter(ns: &NetNs, name: &str) -> u64 {
    let out = ns.exec("cat", &["/proc/net/snmp"]).unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut udp = text.lines().filter(|l| l.starts_with("Udp:"));
    let (names, values) = (udp.next().unwrap(), udp.next().unwrap());
    let i = names
        .split_whitespace()
        .position(|n| n == name)
        .unwrap_or_else(|| panic!("no Udp {name} counter"));
    values.split_whitespace().nth(i).unwrap().parse().unwrap()
}

pub(crate) fn udp_in_csum_errors(ns: &NetNs) -> u64 {
    udp_counter(ns, "InCsumErrors")
}

/// Datagrams the namespace's UDP layer received for a socket: read by it (`InDatagrams`
/// counts at `recvmsg`: drain the socket first), or dropped at its full buffer.
pub(crate) fn udp_received(ns: &NetNs) -> u64 {
    udp_counter(ns, "InDatagrams") + udp_counter(ns, "RcvbufErrors")
}
