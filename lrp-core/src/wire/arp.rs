//! ARP for IPv4 over Ethernet: smoltcp's view and `Repr`, re-exported.
//!
//! smoltcp's [`Packet`] and [`Repr`] cover Ethernet/IPv4 ARP completely and round-trip
//! exactly, so they are used as they are. [`parse`] is the shorthand that reports
//! failures in this module's vocabulary ([`Malformed::BadArp`]).

pub use smoltcp::wire::{
    ArpHardware as Hardware, ArpOperation as Operation, ArpPacket as Packet, ArpRepr as Repr,
};

use super::{Malformed, Result};

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;

/// Parse an Ethernet/IPv4 ARP packet (Ethernet padding after it is ignored).
///
/// Fails with [`Malformed::BadArp`] if `bytes` is too short or the hardware/protocol
/// types or lengths are not Ethernet (6) and IPv4 (4).
pub fn parse(bytes: &[u8]) -> Result<Repr> {
    let packet = Packet::new_checked(bytes).map_err(|_| Malformed::BadArp)?;
    Repr::parse(&packet).map_err(|_| Malformed::BadArp)
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::wire::EthernetAddress;
    use std::net::Ipv4Addr;

    // "Who has 192.168.1.20? Tell 192.168.1.10", as captured, without Ethernet padding.
    static REQUEST: [u8; 28] = [
        0x00, 0x01, // hardware: Ethernet
        0x08, 0x00, // protocol: IPv4
        0x06, 0x04, // lengths
        0x00, 0x01, // request
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // sender MAC
        0xc0, 0xa8, 0x01, 0x0a, // sender IP
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // target MAC (unknown)
        0xc0, 0xa8, 0x01, 0x14, // target IP
    ];

    fn request_repr() -> Repr {
        Repr::EthernetIpv4 {
            operation: Operation::Request,
            source_hardware_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
            source_protocol_addr: Ipv4Addr::new(192, 168, 1, 10),
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: Ipv4Addr::new(192, 168, 1, 20),
        }
    }

    #[test]
    fn parse_request() {
        assert_eq!(parse(&REQUEST).unwrap(), request_repr());
        // Padding to the Ethernet minimum does not matter.
        let mut padded = [0u8; 46];
        padded[..28].copy_from_slice(&REQUEST);
        assert_eq!(parse(&padded).unwrap(), request_repr());
    }

    #[test]
    fn roundtrip() {
        let repr = parse(&REQUEST).unwrap();
        let mut out = [0xa5u8; PACKET_LEN];
        assert_eq!(repr.buffer_len(), PACKET_LEN);
        repr.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, REQUEST);
        assert_eq!(parse(&out).unwrap(), request_repr());
    }

    #[test]
    fn bad() {
        assert_eq!(parse(&REQUEST[..27]), Err(Malformed::BadArp));
        let mut wrong_hw = REQUEST;
        wrong_hw[1] = 6; // IEEE 802
        assert_eq!(parse(&wrong_hw), Err(Malformed::BadArp));
        let mut wrong_len = REQUEST;
        wrong_len[5] = 16;
        assert_eq!(parse(&wrong_len), Err(Malformed::BadArp));
    }
}
