//! UDP (RFC 768): header view, checksum with the IPv4/IPv6 pseudo header.
//!
//! Checksum rules: over IPv4 a checksum field of `0` means "no checksum" and verifies;
//! over IPv6 the checksum is mandatory (RFC 8200 §8.1) and `0` does not verify. A
//! computed checksum of `0` is sent as `0xffff`.

use std::net::IpAddr;

use super::field::Field;
use super::{checksum, get_u16, set_u16, Malformed, Result};

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;
/// IP protocol number of UDP.
pub const PROTOCOL: u8 = 17;

mod field {
    use super::Field;
    pub(super) const SRC_PORT: Field = 0..2;
    pub(super) const DST_PORT: Field = 2..4;
    pub(super) const LENGTH: Field = 4..6;
    pub(super) const CHECKSUM: Field = 6..8;
}

/// Byte offset of the source port.
pub const SRC_PORT_OFFSET: usize = field::SRC_PORT.start;
/// Byte offset of the destination port.
pub const DST_PORT_OFFSET: usize = field::DST_PORT.start;
/// Byte offset of the checksum.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM.start;

/// A read/write view of a UDP datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap a buffer without checking it (for emission; see the
    /// [no-panic contract](super#the-no-panic-contract)).
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wrap a buffer (the IP payload) and check it.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Packet::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Check that no accessor panics: [`Malformed::TruncatedL4`] if shorter than the
    /// header, [`Malformed::BadUdpLen`] if the length field is below 8 or beyond the
    /// buffer. (The classifier is stricter: it wants the length field to equal the IP
    /// payload length.) [`Packet::set_len`] invalidates the check.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Malformed::TruncatedL4);
        }
        let field_len = usize::from(self.len());
        if field_len < HEADER_LEN || field_len > len {
            return Err(Malformed::BadUdpLen);
        }
        Ok(())
    }

    /// Unwrap the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::SRC_PORT.start)
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::DST_PORT.start)
    }

    /// The length field: header and payload.
    #[inline]
    pub fn len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// Whether the length field says there is no payload.
    #[inline]
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    /// The checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// The payload, up to the length field.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }

    /// The datagram, up to the length field.
    #[inline]
    pub fn datagram(&self) -> &[u8] {
        &self.buffer.as_ref()[..usize::from(self.len())]
    }

    /// Whether the checksum verifies against the pseudo header of `src` and `dst`.
    /// A zero checksum verifies over IPv4 ("no checksum") and fails over IPv6.
    #[inline]
    pub fn verify_checksum(&self, src: &IpAddr, dst: &IpAddr) -> bool {
        if self.checksum() == 0 {
            return src.is_ipv4();
        }
        checksum::verify_l4(src, dst, PROTOCOL, self.datagram())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set the source port.
    #[inline]
    pub fn set_src_port(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::SRC_PORT.start, value);
    }

    /// Set the destination port.
    #[inline]
    pub fn set_dst_port(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::DST_PORT.start, value);
    }

    /// Set the length field. Invalidates [`Packet::check_len`].
    #[inline]
    pub fn set_len(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::LENGTH.start, value);
    }

    /// Set the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM.start, value);
    }

    /// Compute and write the checksum over the pseudo header of `src`, `dst` and the
    /// datagram (a computed `0` is written as `0xffff`).
    #[inline]
    pub fn fill_checksum(&mut self, src: &IpAddr, dst: &IpAddr) {
        self.set_checksum(0);
        let c = checksum::udp_finish(checksum::l4(src, dst, PROTOCOL, self.datagram()));
        self.set_checksum(c);
    }

    /// The payload, mutably (up to the length field).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// A UDP header (the checksum is computed on emission).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Payload length (the length field minus 8).
    pub payload_len: usize,
}

impl Repr {
    /// Parse a checked datagram. The checksum is not verified
    /// (use [`Packet::verify_checksum`]).
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check_len()?;
        Ok(Repr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            payload_len: usize::from(packet.len()) - HEADER_LEN,
        })
    }

    /// The header length ([`HEADER_LEN`]).
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// The datagram length: header and payload.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Write the header with a zero checksum. Write the payload next
    /// ([`Packet::payload_mut`]), then the checksum ([`Packet::fill_checksum`]). A length
    /// above 65535 is written as 65535.
    pub fn emit_header<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len(u16::try_from(self.buffer_len()).unwrap_or(u16::MAX));
        packet.set_checksum(0);
    }

    /// Write the whole datagram: header, `payload` and checksum. The buffer must be at
    /// least [`Repr::buffer_len`] long; `payload` should be `payload_len` long (a longer
    /// one is cut, a shorter one leaves the rest of the payload as it was).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Packet<T>,
        payload: &[u8],
        src: &IpAddr,
        dst: &IpAddr,
    ) {
        self.emit_header(packet);
        let out = packet.payload_mut();
        let n = out.len().min(payload.len());
        out[..n].copy_from_slice(&payload[..n]);
        packet.fill_checksum(src, dst);
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const SRC4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 10));
    const DST4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 20));
    const SRC6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10));
    const DST6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x20));

    // DNS query for example.com A, 192.168.1.10:53000 -> 192.168.1.20:53.
    static DNS_QUERY: [u8; 37] = [
        0xcf, 0x08, 0x00, 0x35, 0x00, 0x25, 0x31, 0xbc, 0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x03, 0x63,
        0x6f, 0x6d, 0x00, 0x00, 0x01, 0x00, 0x01,
    ];

    // "hello", 192.168.1.10:5000 -> 192.168.1.20:6000, sent without checksum.
    static ZERO_CSUM: [u8; 13] = [
        0x13, 0x88, 0x17, 0x70, 0x00, 0x0d, 0x00, 0x00, 0x68, 0x65, 0x6c, 0x6c, 0x6f,
    ];

    // "ext", [2001:db8::10]:1111 -> [2001:db8::20]:2222.
    static V6_DATAGRAM: [u8; 11] = [
        0x04, 0x57, 0x08, 0xae, 0x00, 0x0b, 0xbd, 0xb8, 0x65, 0x78, 0x74,
    ];

    #[test]
    fn parse_dns() {
        let p = Packet::new_checked(&DNS_QUERY[..]).unwrap();
        assert_eq!(p.src_port(), 53000);
        assert_eq!(p.dst_port(), 53);
        assert_eq!(p.len(), 37);
        assert_eq!(p.payload(), &DNS_QUERY[8..]);
        assert!(p.verify_checksum(&SRC4, &DST4));
        assert!(!p.verify_checksum(&SRC4, &IpAddr::V4(Ipv4Addr::new(192, 168, 1, 21))));
    }

    #[test]
    fn zero_checksum() {
        let p = Packet::new_checked(&ZERO_CSUM[..]).unwrap();
        assert_eq!(p.checksum(), 0);
        assert!(
            p.verify_checksum(&SRC4, &DST4),
            "IPv4: zero means no checksum"
        );
        assert!(
            !p.verify_checksum(&SRC6, &DST6),
            "IPv6: a checksum is mandatory"
        );
        let mut buf = ZERO_CSUM;
        let mut q = Packet::new_checked(&mut buf[..]).unwrap();
        q.fill_checksum(&SRC4, &DST4);
        assert_ne!(q.checksum(), 0);
        assert!(q.verify_checksum(&SRC4, &DST4));
    }

    #[test]
    fn v6_checksum() {
        let p = Packet::new_checked(&V6_DATAGRAM[..]).unwrap();
        assert!(p.verify_checksum(&SRC6, &DST6));
        assert!(!p.verify_checksum(&DST6, &DST6));
    }

    #[test]
    fn check_len_reasons() {
        assert_eq!(
            Packet::new_checked(&DNS_QUERY[..7]),
            Err(Malformed::TruncatedL4)
        );
        assert_eq!(
            Packet::new_checked(&DNS_QUERY[..36]),
            Err(Malformed::BadUdpLen)
        );
        let mut short = DNS_QUERY;
        short[5] = 7;
        assert_eq!(Packet::new_checked(&short[..]), Err(Malformed::BadUdpLen));
    }

    #[test]
    fn roundtrip() {
        for (bytes, src, dst) in [(&DNS_QUERY[..], SRC4, DST4), (&V6_DATAGRAM[..], SRC6, DST6)] {
            let p = Packet::new_checked(bytes).unwrap();
            let repr = Repr::parse(&p).unwrap();
            let mut out = vec![0xa5u8; repr.buffer_len()];
            repr.emit(
                &mut Packet::new_unchecked(&mut out[..]),
                p.payload(),
                &src,
                &dst,
            );
            assert_eq!(&out[..], bytes);
            assert_eq!(
                Repr::parse(&Packet::new_checked(&out[..]).unwrap()).unwrap(),
                repr
            );
        }
    }

    #[test]
    fn computed_zero_is_sent_as_ffff() {
        // Find a payload word that makes the computed checksum zero.
        let mut buf = [0u8; 10];
        let repr = Repr {
            src_port: 1,
            dst_port: 2,
            payload_len: 2,
        };
        repr.emit(
            &mut Packet::new_unchecked(&mut buf[..]),
            &[0, 0],
            &SRC4,
            &DST4,
        );
        let c = Packet::new_checked(&buf[..]).unwrap().checksum();
        // Adding the checksum value to the payload makes the sum -0 and the checksum 0.
        let word = c.to_be_bytes();
        repr.emit(
            &mut Packet::new_unchecked(&mut buf[..]),
            &word,
            &SRC4,
            &DST4,
        );
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.checksum(), 0xffff);
        assert!(p.verify_checksum(&SRC4, &DST4));
    }
}
