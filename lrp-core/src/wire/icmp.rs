//! ICMPv4 and ICMPv6: smoltcp's views and `Repr`s, re-exported.
//!
//! smoltcp's ICMP types serve as they are: echo request/reply parse and emit exactly,
//! and the other messages (destination unreachable, NDP, MLD, ...) are covered too. Its
//! `Repr::parse` verifies the checksum according to a [`ChecksumCapabilities`]; on the
//! lazy path verify with [`super::verify()`] and parse with
//! [`ChecksumCapabilities::ignored`] to avoid doing it twice.
//!
//! The classifier only needs the ICMP type byte (see [`super::classify`]).

pub use smoltcp::phy::ChecksumCapabilities;
pub use smoltcp::wire::{
    Icmpv4Message, Icmpv4Packet, Icmpv4Repr, Icmpv6Message, Icmpv6Packet, Icmpv6Repr,
};

/// Length of the ICMP header common to all messages: type, code, checksum.
pub const HEADER_LEN: usize = 4;
/// Length of an echo request/reply header (with identifier and sequence number).
pub const ECHO_HEADER_LEN: usize = 8;
/// IP protocol number of ICMPv4.
pub const PROTOCOL_V4: u8 = 1;
/// IP protocol number (next header) of ICMPv6.
pub const PROTOCOL_V6: u8 = 58;

#[cfg(test)]
mod test {
    use super::*;
    use std::net::Ipv6Addr;

    // ping: echo request, ident 0x1234, seq 1, 56 data bytes 0x00..0x37.
    static ECHO_V4: [u8; 64] = [
        0x08, 0x00, 0xee, 0xb7, 0x12, 0x34, 0x00, 0x01, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06,
        0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15,
        0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x24,
        0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33,
        0x34, 0x35, 0x36, 0x37,
    ];

    // ICMPv6 echo request 2001:db8::10 -> 2001:db8::20, ident 0x4321, seq 7, "ping-data".
    static ECHO_V6: [u8; 17] = [
        0x80, 0x00, 0x12, 0x40, 0x43, 0x21, 0x00, 0x07, 0x70, 0x69, 0x6e, 0x67, 0x2d, 0x64, 0x61,
        0x74, 0x61,
    ];

    const SRC6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);
    const DST6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x20);

    #[test]
    fn echo_v4_roundtrip() {
        let caps = ChecksumCapabilities::default();
        let p = Icmpv4Packet::new_checked(&ECHO_V4[..]).unwrap();
        assert!(p.verify_checksum());
        let repr = Icmpv4Repr::parse(&p, &caps).unwrap();
        let expected_data: Vec<u8> = (0u8..56).collect();
        assert_eq!(
            repr,
            Icmpv4Repr::EchoRequest {
                ident: 0x1234,
                seq_no: 1,
                data: &expected_data
            }
        );
        let mut out = vec![0xa5u8; repr.buffer_len()];
        repr.emit(&mut Icmpv4Packet::new_unchecked(&mut out[..]), &caps);
        assert_eq!(&out[..], &ECHO_V4[..]);
        let back = Icmpv4Packet::new_checked(&out[..]).unwrap();
        assert_eq!(Icmpv4Repr::parse(&back, &caps).unwrap(), repr);
    }

    #[test]
    fn echo_v6_roundtrip() {
        let caps = ChecksumCapabilities::default();
        let p = Icmpv6Packet::new_checked(&ECHO_V6[..]).unwrap();
        assert!(p.verify_checksum(&SRC6, &DST6));
        let repr = Icmpv6Repr::parse(&SRC6, &DST6, &p, &caps).unwrap();
        assert_eq!(
            repr,
            Icmpv6Repr::EchoRequest {
                ident: 0x4321,
                seq_no: 7,
                data: b"ping-data"
            }
        );
        let mut out = vec![0xa5u8; repr.buffer_len()];
        repr.emit(
            &SRC6,
            &DST6,
            &mut Icmpv6Packet::new_unchecked(&mut out[..]),
            &caps,
        );
        assert_eq!(&out[..], &ECHO_V6[..]);
        let back = Icmpv6Packet::new_checked(&out[..]).unwrap();
        assert_eq!(Icmpv6Repr::parse(&SRC6, &DST6, &back, &caps).unwrap(), repr);
    }

    #[test]
    fn bad_checksum_is_caught_unless_ignored() {
        let mut bad = ECHO_V4;
        bad[2] ^= 0xff;
        let p = Icmpv4Packet::new_checked(&bad[..]).unwrap();
        assert!(!p.verify_checksum());
        assert!(Icmpv4Repr::parse(&p, &ChecksumCapabilities::default()).is_err());
        assert!(Icmpv4Repr::parse(&p, &ChecksumCapabilities::ignored()).is_ok());
    }
}
