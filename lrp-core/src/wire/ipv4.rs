//! IPv4 (RFC 791): header with options, fragment fields, header checksum.
//!
//! smoltcp's `Ipv4Repr` keeps only what a host endpoint needs (no ident, flags, DSCP or
//! options) and refuses fragments; a forwarder rewrites headers in place and must keep
//! them all, so the view and `Repr` here carry every field.

use std::net::Ipv4Addr;

use super::field::Field;
use super::{checksum, get_array, get_u16, set_u16, IpProtocol, Malformed, Result};

/// Length of an IPv4 header without options.
pub const HEADER_LEN: usize = 20;
/// Longest IPv4 header (IHL 15).
pub const MAX_HEADER_LEN: usize = 60;

mod field {
    use super::Field;
    pub(super) const VER_IHL: usize = 0;
    pub(super) const DSCP_ECN: usize = 1;
    pub(super) const LENGTH: Field = 2..4;
    pub(super) const IDENT: Field = 4..6;
    pub(super) const FLG_OFF: Field = 6..8;
    pub(super) const TTL: usize = 8;
    pub(super) const PROTOCOL: usize = 9;
    pub(super) const CHECKSUM: Field = 10..12;
    pub(super) const SRC_ADDR: Field = 12..16;
    pub(super) const DST_ADDR: Field = 16..20;
}

/// Byte offset of the source address in the header.
pub const SRC_ADDR_OFFSET: usize = field::SRC_ADDR.start;
/// Byte offset of the destination address in the header.
pub const DST_ADDR_OFFSET: usize = field::DST_ADDR.start;
/// Byte offset of the header checksum.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM.start;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// A read/write view of an IPv4 packet.
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

    /// Wrap a buffer (the packet, possibly followed by Ethernet padding) and check it.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Packet::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Check that no accessor panics:
    /// - [`Malformed::TruncatedIp`]: shorter than 20 bytes;
    /// - [`Malformed::BadIpHeaderLen`]: IHL below 5, or the header is longer than the buffer;
    /// - [`Malformed::BadIpTotalLen`]: total length beyond the buffer or below the header.
    ///
    /// The version is not checked here ([`Repr::parse`] does). [`Packet::set_header_len`]
    /// and [`Packet::set_total_len`] invalidate the check.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Malformed::TruncatedIp);
        }
        let header_len = usize::from(self.header_len());
        if header_len < HEADER_LEN || header_len > len {
            return Err(Malformed::BadIpHeaderLen);
        }
        let total_len = usize::from(self.total_len());
        if total_len > len || total_len < header_len {
            return Err(Malformed::BadIpTotalLen);
        }
        Ok(())
    }

    /// Unwrap the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The version field (4 for a valid packet).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// The header length in bytes (IHL × 4).
    #[inline]
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// Differentiated services code point.
    #[inline]
    pub fn dscp(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] >> 2
    }

    /// Explicit congestion notification bits.
    #[inline]
    pub fn ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] & 0x03
    }

    /// Total length: header and payload, excluding Ethernet padding.
    #[inline]
    pub fn total_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// Identification (for fragment reassembly).
    #[inline]
    pub fn ident(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::IDENT.start)
    }

    /// The don't-fragment flag.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLG_OFF.start) & FLAG_DF != 0
    }

    /// The more-fragments flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLG_OFF.start) & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the field × 8).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (get_u16(self.buffer.as_ref(), field::FLG_OFF.start) & OFFSET_MASK) << 3
    }

    /// Whether this is a fragment (more fragments follow, or the offset is nonzero).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLG_OFF.start) & (FLAG_MF | OFFSET_MASK) != 0
    }

    /// Time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// The protocol of the payload.
    #[inline]
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::PROTOCOL])
    }

    /// The header checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(get_array::<4>(self.buffer.as_ref(), field::SRC_ADDR.start))
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(get_array::<4>(self.buffer.as_ref(), field::DST_ADDR.start))
    }

    /// The options: the header bytes after the fixed 20.
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.header_len())]
    }

    /// The header, options included.
    #[inline]
    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..usize::from(self.header_len())]
    }

    /// Whether the header checksum verifies.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::sum(self.header()) == 0xffff
    }

    /// The payload: from the end of the header to the total length (padding excluded).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[usize::from(self.header_len())..usize::from(self.total_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set the version field.
    #[inline]
    pub fn set_version(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (value << 4);
    }

    /// Set the header length in bytes (rounded down to a multiple of 4). Invalidates
    /// [`Packet::check_len`].
    #[inline]
    pub fn set_header_len(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | ((value / 4) & 0x0f);
    }

    /// Set the DSCP (6 bits).
    #[inline]
    pub fn set_dscp(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *b = (*b & 0x03) | (value << 2);
    }

    /// Set the ECN bits (2 bits).
    #[inline]
    pub fn set_ecn(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *b = (*b & 0xfc) | (value & 0x03);
    }

    /// Set the total length. Invalidates [`Packet::check_len`].
    #[inline]
    pub fn set_total_len(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::LENGTH.start, value);
    }

    /// Set the identification.
    #[inline]
    pub fn set_ident(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::IDENT.start, value);
    }

    /// Set the flags and fragment offset (offset in bytes; its low 3 bits are dropped).
    /// The reserved flag is cleared.
    #[inline]
    pub fn set_frag(&mut self, dont_frag: bool, more_frags: bool, offset: u16) {
        let mut v = (offset >> 3) & OFFSET_MASK;
        if dont_frag {
            v |= FLAG_DF;
        }
        if more_frags {
            v |= FLAG_MF;
        }
        set_u16(self.buffer.as_mut(), field::FLG_OFF.start, v);
    }

    /// Set the time to live.
    #[inline]
    pub fn set_ttl(&mut self, value: u8) {
        self.buffer.as_mut()[field::TTL] = value;
    }

    /// Set the protocol.
    #[inline]
    pub fn set_protocol(&mut self, value: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = value.into();
    }

    /// Set the header checksum field.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM.start, value);
    }

    /// Set the source address.
    #[inline]
    pub fn set_src_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&value.octets());
    }

    /// Set the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&value.octets());
    }

    /// The options, mutably.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.header_len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }

    /// Compute and write the header checksum.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.header());
        self.set_checksum(c);
    }

    /// The payload, mutably (up to the total length).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (start, end) = (
            usize::from(self.header_len()),
            usize::from(self.total_len()),
        );
        &mut self.buffer.as_mut()[start..end]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// An IPv4 header, every field kept (the checksum is computed on emission).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr<'a> {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Protocol of the payload.
    pub protocol: IpProtocol,
    /// Payload length (total length minus header length).
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
    /// DSCP (6 bits).
    pub dscp: u8,
    /// ECN (2 bits).
    pub ecn: u8,
    /// Identification.
    pub ident: u16,
    /// Don't fragment.
    pub dont_frag: bool,
    /// More fragments.
    pub more_frags: bool,
    /// Fragment offset in bytes (a multiple of 8).
    pub frag_offset: u16,
    /// Options, as raw bytes (a multiple of 4, at most 40 bytes).
    pub options: &'a [u8],
}

impl<'a> Repr<'a> {
    /// Parse a checked packet. Fails with [`Malformed::BadIpVersion`] if the version is
    /// not 4, or with the [`Packet::check_len`] reasons. The checksum is not verified
    /// (use [`Packet::verify_checksum`]). The reserved flag bit is not kept.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>) -> Result<Repr<'a>> {
        packet.check_len()?;
        if packet.version() != 4 {
            return Err(Malformed::BadIpVersion);
        }
        let buf: &'a [u8] = packet.buffer.as_ref();
        let header_len = usize::from(packet.header_len());
        Ok(Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: usize::from(packet.total_len()) - header_len,
            ttl: packet.ttl(),
            dscp: packet.dscp(),
            ecn: packet.ecn(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
            more_frags: packet.more_frags(),
            frag_offset: packet.frag_offset(),
            options: &buf[HEADER_LEN..header_len],
        })
    }

    /// The header length this `Repr` emits: 20 plus the options.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.options.len()
    }

    /// Write the header, with its checksum, into `packet`, which must be at least
    /// [`Repr::buffer_len`] long. Options longer than 40 bytes or not a multiple of 4
    /// make an invalid header; a total length above 65535 is written as 65535.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        let header_len = self.buffer_len();
        packet.set_version(4);
        packet.set_header_len(u8::try_from(header_len).unwrap_or(u8::MAX));
        packet.set_dscp(self.dscp);
        packet.set_ecn(self.ecn);
        packet.set_total_len(u16::try_from(header_len + self.payload_len).unwrap_or(u16::MAX));
        packet.set_ident(self.ident);
        packet.set_frag(self.dont_frag, self.more_frags, self.frag_offset);
        packet.set_ttl(self.ttl);
        packet.set_protocol(self.protocol);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        packet.buffer.as_mut()[HEADER_LEN..header_len].copy_from_slice(self.options);
        packet.set_checksum(0);
        let c = checksum::checksum(&packet.buffer.as_ref()[..header_len]);
        packet.set_checksum(c);
    }
}

#[cfg(test)]
mod test {
    use super::*;

    // IPv4/UDP DNS query header: 192.168.1.10 -> 192.168.1.20, ident 0x1c46, DF, TTL 64,
    // followed by its 37-byte UDP datagram.
    static UDP_PACKET: [u8; 57] = [
        0x45, 0x00, 0x00, 0x39, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x11, 0x9a, 0xff, 0xc0, 0xa8, 0x01,
        0x0a, 0xc0, 0xa8, 0x01, 0x14, 0xcf, 0x08, 0x00, 0x35, 0x00, 0x25, 0x31, 0xbc, 0xab, 0xcd,
        0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x65, 0x78, 0x61, 0x6d,
        0x70, 0x6c, 0x65, 0x03, 0x63, 0x6f, 0x6d, 0x00, 0x00, 0x01, 0x00, 0x01,
    ];

    // A header with a record-route option (7 bytes, end of list, padding), no DF, ident 0x77,
    // followed by an 11-byte UDP datagram.
    static WITH_OPTIONS: [u8; 39] = [
        0x47, 0x00, 0x00, 0x27, 0x00, 0x77, 0x00, 0x00, 0x40, 0x11, 0xe9, 0xd9, 0xc0, 0xa8, 0x01,
        0x0a, 0xc0, 0xa8, 0x01, 0x14, 0x07, 0x07, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0xd2,
        0x16, 0x2e, 0x00, 0x0b, 0x7d, 0xf8, 0x6f, 0x70, 0x74,
    ];

    // A non-first fragment: MF set, offset 32 bytes, ident 0x99.
    static LATER_FRAGMENT: [u8; 24] = [
        0x45, 0x00, 0x00, 0x18, 0x00, 0x99, 0x20, 0x04, 0x40, 0x11, 0xd6, 0xc9, 0xc0, 0xa8, 0x01,
        0x0a, 0xc0, 0xa8, 0x01, 0x14, 0xde, 0xad, 0xbe, 0xef,
    ];

    #[test]
    fn parse_udp() {
        let p = Packet::new_checked(&UDP_PACKET[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 57);
        assert_eq!(p.ident(), 0x1c46);
        assert!(p.dont_frag() && !p.more_frags() && !p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), IpProtocol::Udp);
        assert_eq!(p.src_addr(), Ipv4Addr::new(192, 168, 1, 10));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(192, 168, 1, 20));
        assert!(p.verify_checksum());
        assert_eq!(p.payload(), &UDP_PACKET[20..]);
        assert!(p.options().is_empty());
    }

    #[test]
    fn parse_options_and_fragment() {
        let p = Packet::new_checked(&WITH_OPTIONS[..]).unwrap();
        assert_eq!(p.header_len(), 28);
        assert_eq!(p.options(), &[7, 7, 4, 0, 0, 0, 0, 0]);
        assert!(p.verify_checksum());
        assert!(!p.dont_frag());
        assert_eq!(p.payload().len(), 11);

        let f = Packet::new_checked(&LATER_FRAGMENT[..]).unwrap();
        assert!(f.more_frags() && f.is_fragment());
        assert_eq!(f.frag_offset(), 32);
        assert!(f.verify_checksum());
    }

    #[test]
    fn padding_is_not_payload() {
        let mut padded = [0u8; 60];
        padded[..24].copy_from_slice(&LATER_FRAGMENT);
        let p = Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(p.payload(), &[0xde, 0xad, 0xbe, 0xef]);
    }

    #[test]
    fn check_len_reasons() {
        assert_eq!(
            Packet::new_checked(&UDP_PACKET[..19]),
            Err(Malformed::TruncatedIp)
        );
        let mut ihl4 = UDP_PACKET;
        ihl4[0] = 0x44;
        assert_eq!(
            Packet::new_checked(&ihl4[..]),
            Err(Malformed::BadIpHeaderLen)
        );
        let mut ihl15 = LATER_FRAGMENT;
        ihl15[0] = 0x4f;
        assert_eq!(
            Packet::new_checked(&ihl15[..]),
            Err(Malformed::BadIpHeaderLen)
        );
        assert_eq!(
            Packet::new_checked(&UDP_PACKET[..56]),
            Err(Malformed::BadIpTotalLen)
        );
        let mut short_total = UDP_PACKET;
        short_total[3] = 19;
        assert_eq!(
            Packet::new_checked(&short_total[..]),
            Err(Malformed::BadIpTotalLen)
        );
        let mut v6 = UDP_PACKET;
        v6[0] = 0x65;
        let p = Packet::new_checked(&v6[..]).unwrap();
        assert_eq!(Repr::parse(&p), Err(Malformed::BadIpVersion));
    }

    fn roundtrip(bytes: &[u8]) {
        let p = Packet::new_checked(bytes).unwrap();
        let repr = Repr::parse(&p).unwrap();
        let mut out = vec![0xa5u8; bytes.len()];
        let mut q = Packet::new_unchecked(&mut out[..]);
        repr.emit(&mut q);
        q.payload_mut().copy_from_slice(p.payload());
        assert_eq!(&out[..], bytes);
        let back = Packet::new_checked(&out[..]).unwrap();
        assert_eq!(Repr::parse(&back).unwrap(), repr);
    }

    #[test]
    fn emit_parse_roundtrip() {
        roundtrip(&UDP_PACKET);
        roundtrip(&WITH_OPTIONS);
        roundtrip(&LATER_FRAGMENT);
    }

    #[test]
    fn setters_and_fill_checksum() {
        let mut buf = UDP_PACKET;
        let mut p = Packet::new_checked(&mut buf[..]).unwrap();
        p.set_dst_addr(Ipv4Addr::new(10, 1, 2, 3));
        p.set_ttl(63);
        assert!(!p.verify_checksum());
        p.fill_checksum();
        assert!(p.verify_checksum());
        p.set_frag(false, true, 1480);
        assert!(p.more_frags() && !p.dont_frag());
        assert_eq!(p.frag_offset(), 1480);
        p.set_dscp(46);
        p.set_ecn(1);
        assert_eq!((p.dscp(), p.ecn()), (46, 1));
    }
}
