//! TCP (RFC 9293) segment header: all flags, options kept as raw bytes.
//!
//! smoltcp's `TcpRepr` keeps one control flag and the options it understands, and emits
//! them in its own order; a forwarder must pass segments through unchanged, so the
//! `Repr` here keeps every flag and the option bytes as they were. Options are
//! decoded on demand by [`Packet::options_iter`], with smoltcp's [`TcpOption`] parser.

use std::net::IpAddr;

pub use smoltcp::wire::TcpOption;

use super::field::Field;
use super::{checksum, get_u16, get_u32, set_u16, set_u32, Malformed, Result};
use crate::flow::TcpFlags;

/// Length of the TCP header without options.
pub const HEADER_LEN: usize = 20;
/// Longest TCP header (data offset 15).
pub const MAX_HEADER_LEN: usize = 60;
/// IP protocol number of TCP.
pub const PROTOCOL: u8 = 6;
/// ECE flag bit (byte 13).
pub const FLAG_ECE: u8 = 0x40;
/// CWR flag bit (byte 13).
pub const FLAG_CWR: u8 = 0x80;

mod field {
    use super::Field;
    pub(super) const SRC_PORT: Field = 0..2;
    pub(super) const DST_PORT: Field = 2..4;
    pub(super) const SEQ_NUM: Field = 4..8;
    pub(super) const ACK_NUM: Field = 8..12;
    pub(super) const DATA_OFF: usize = 12;
    pub(super) const FLAGS: usize = 13;
    pub(super) const WIN_SIZE: Field = 14..16;
    pub(super) const CHECKSUM: Field = 16..18;
    pub(super) const URGENT: Field = 18..20;
}

/// Byte offset of the source port.
pub const SRC_PORT_OFFSET: usize = field::SRC_PORT.start;
/// Byte offset of the destination port.
pub const DST_PORT_OFFSET: usize = field::DST_PORT.start;
/// Byte offset of the checksum.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM.start;

/// A read/write view of a TCP segment.
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

    /// Wrap a buffer (exactly the IP payload: the segment ends where the buffer ends)
    /// and check it.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Packet::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Check that no accessor panics: [`Malformed::TruncatedL4`] if shorter than 20
    /// bytes, [`Malformed::BadTcpDataOffset`] if the data offset is below 5 or the header
    /// runs past the buffer. [`Packet::set_header_len`] invalidates the check.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Malformed::TruncatedL4);
        }
        let header_len = usize::from(self.header_len());
        if header_len < HEADER_LEN || header_len > len {
            return Err(Malformed::BadTcpDataOffset);
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

    /// Sequence number.
    #[inline]
    pub fn seq_number(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::SEQ_NUM.start)
    }

    /// Acknowledgment number (meaningful when ACK is set).
    #[inline]
    pub fn ack_number(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::ACK_NUM.start)
    }

    /// Header length in bytes (data offset × 4).
    #[inline]
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::DATA_OFF] >> 4) * 4
    }

    /// The flag byte (byte 13: CWR ECE URG ACK PSH RST SYN FIN).
    #[inline]
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.buffer.as_ref()[field::FLAGS])
    }

    #[inline]
    fn flag(&self, bit: u8) -> bool {
        self.buffer.as_ref()[field::FLAGS] & bit != 0
    }

    /// FIN flag.
    #[inline]
    pub fn fin(&self) -> bool {
        self.flag(TcpFlags::FIN)
    }

    /// SYN flag.
    #[inline]
    pub fn syn(&self) -> bool {
        self.flag(TcpFlags::SYN)
    }

    /// RST flag.
    #[inline]
    pub fn rst(&self) -> bool {
        self.flag(TcpFlags::RST)
    }

    /// PSH flag.
    #[inline]
    pub fn psh(&self) -> bool {
        self.flag(TcpFlags::PSH)
    }

    /// ACK flag.
    #[inline]
    pub fn ack(&self) -> bool {
        self.flag(TcpFlags::ACK)
    }

    /// URG flag.
    #[inline]
    pub fn urg(&self) -> bool {
        self.flag(TcpFlags::URG)
    }

    /// ECE flag.
    #[inline]
    pub fn ece(&self) -> bool {
        self.flag(FLAG_ECE)
    }

    /// CWR flag.
    #[inline]
    pub fn cwr(&self) -> bool {
        self.flag(FLAG_CWR)
    }

    /// Window size (unscaled).
    #[inline]
    pub fn window_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::WIN_SIZE.start)
    }

    /// The checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Urgent pointer.
    #[inline]
    pub fn urgent_at(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::URGENT.start)
    }

    /// The option bytes (between the fixed header and the data offset).
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.header_len())]
    }

    /// The options, decoded one by one. The iteration ends at End of Option List, at the
    /// end of the option bytes, or at the first option that does not parse (a length
    /// running past the header, or a wrong length for MSS, window scale or
    /// SACK-permitted).
    #[inline]
    pub fn options_iter(&self) -> TcpOptions<'_> {
        TcpOptions {
            rest: self.options(),
        }
    }

    /// The payload: after the header, to the end of the buffer.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[usize::from(self.header_len())..]
    }

    /// Whether the checksum verifies against the pseudo header of `src` and `dst`.
    #[inline]
    pub fn verify_checksum(&self, src: &IpAddr, dst: &IpAddr) -> bool {
        checksum::verify_l4(src, dst, PROTOCOL, self.buffer.as_ref())
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

    /// Set the sequence number.
    #[inline]
    pub fn set_seq_number(&mut self, value: u32) {
        set_u32(self.buffer.as_mut(), field::SEQ_NUM.start, value);
    }

    /// Set the acknowledgment number.
    #[inline]
    pub fn set_ack_number(&mut self, value: u32) {
        set_u32(self.buffer.as_mut(), field::ACK_NUM.start, value);
    }

    /// Set the header length in bytes (rounded down to a multiple of 4); the reserved
    /// bits of byte 12 are cleared. Invalidates [`Packet::check_len`].
    #[inline]
    pub fn set_header_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::DATA_OFF] = (value / 4) << 4;
    }

    /// Set the flag byte.
    #[inline]
    pub fn set_flags(&mut self, value: TcpFlags) {
        self.buffer.as_mut()[field::FLAGS] = value.0;
    }

    /// Set the window size.
    #[inline]
    pub fn set_window_len(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::WIN_SIZE.start, value);
    }

    /// Set the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM.start, value);
    }

    /// Set the urgent pointer.
    #[inline]
    pub fn set_urgent_at(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::URGENT.start, value);
    }

    /// The option bytes, mutably.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.header_len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }

    /// The payload, mutably.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = usize::from(self.header_len());
        &mut self.buffer.as_mut()[start..]
    }

    /// Compute and write the checksum over the pseudo header of `src`, `dst` and the
    /// whole buffer.
    #[inline]
    pub fn fill_checksum(&mut self, src: &IpAddr, dst: &IpAddr) {
        self.set_checksum(0);
        let c = checksum::l4(src, dst, PROTOCOL, self.buffer.as_ref());
        self.set_checksum(c);
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// Iterator over decoded TCP options; see [`Packet::options_iter`].
#[derive(Debug, Clone)]
pub struct TcpOptions<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for TcpOptions<'a> {
    type Item = TcpOption<'a>;

    fn next(&mut self) -> Option<TcpOption<'a>> {
        if self.rest.is_empty() {
            return None;
        }
        match TcpOption::parse(self.rest) {
            Ok((_, TcpOption::EndOfList)) | Err(_) => {
                self.rest = &[];
                None
            }
            Ok((rest, option)) => {
                self.rest = rest;
                Some(option)
            }
        }
    }
}

/// A TCP header, every field kept (the checksum is computed on emission).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq_number: u32,
    /// Acknowledgment number.
    pub ack_number: u32,
    /// The flag byte.
    pub flags: TcpFlags,
    /// Window size (unscaled).
    pub window_len: u16,
    /// Urgent pointer.
    pub urgent_at: u16,
    /// Option bytes, raw (a multiple of 4, at most 40 bytes).
    pub options: &'a [u8],
    /// Payload length.
    pub payload_len: usize,
}

impl<'a> Repr<'a> {
    /// Parse a checked segment. The checksum is not verified
    /// (use [`Packet::verify_checksum`]); the reserved bits of byte 12 are not kept.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>) -> Result<Repr<'a>> {
        packet.check_len()?;
        let buf: &'a [u8] = packet.buffer.as_ref();
        let header_len = usize::from(packet.header_len());
        Ok(Repr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            seq_number: packet.seq_number(),
            ack_number: packet.ack_number(),
            flags: packet.flags(),
            window_len: packet.window_len(),
            urgent_at: packet.urgent_at(),
            options: &buf[HEADER_LEN..header_len],
            payload_len: buf.len() - header_len,
        })
    }

    /// The header length: 20 plus the options.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN + self.options.len()
    }

    /// The segment length: header and payload.
    pub const fn buffer_len(&self) -> usize {
        self.header_len() + self.payload_len
    }

    /// Write the header with a zero checksum into `packet` (at least
    /// [`Repr::header_len`] bytes). Write the payload next, then the checksum
    /// ([`Packet::fill_checksum`]).
    pub fn emit_header<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_seq_number(self.seq_number);
        packet.set_ack_number(self.ack_number);
        packet.set_header_len(u8::try_from(self.header_len()).unwrap_or(u8::MAX));
        packet.set_flags(self.flags);
        packet.set_window_len(self.window_len);
        packet.set_checksum(0);
        packet.set_urgent_at(self.urgent_at);
        let end = self.header_len();
        packet.buffer.as_mut()[HEADER_LEN..end].copy_from_slice(self.options);
    }

    /// Write the whole segment into `packet`, which must be exactly
    /// [`Repr::buffer_len`] long (the checksum covers the whole buffer): header,
    /// `payload` (cut or left partly unwritten if its length is not `payload_len`) and
    /// checksum.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Packet<T>,
        payload: &[u8],
        src: &IpAddr,
        dst: &IpAddr,
    ) {
        self.emit_header(packet);
        let start = self.header_len();
        let out = packet.buffer.as_mut().get_mut(start..).unwrap_or_default();
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

    // A Linux-style SYN: MSS 1460, SACK permitted, timestamps, NOP, window scale 7.
    static SYN: [u8; 40] = [
        0x9c, 0x40, 0x00, 0x50, 0x12, 0x34, 0x56, 0x78, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0xfa,
        0xf0, 0xe2, 0x21, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x00, 0x01,
        0xe2, 0x40, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x07,
    ];

    // PSH|ACK with NOP NOP timestamps and an HTTP request.
    static PSH: [u8; 59] = [
        0x9c, 0x40, 0x00, 0x50, 0x12, 0x34, 0x56, 0x79, 0x9a, 0xbc, 0xde, 0xf1, 0x80, 0x18, 0x01,
        0xf6, 0x6d, 0xb6, 0x00, 0x00, 0x01, 0x01, 0x08, 0x0a, 0x00, 0x01, 0xe2, 0x41, 0x00, 0xab,
        0xcd, 0xef, 0x47, 0x45, 0x54, 0x20, 0x2f, 0x20, 0x48, 0x54, 0x54, 0x50, 0x2f, 0x31, 0x2e,
        0x31, 0x0d, 0x0a, 0x48, 0x6f, 0x73, 0x74, 0x3a, 0x20, 0x78, 0x0d, 0x0a, 0x0d, 0x0a,
    ];

    // The same SYN options over IPv6, to port 443.
    static V6_SYN: [u8; 40] = [
        0x9c, 0x41, 0x01, 0xbb, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0xfd,
        0x20, 0x6e, 0xfe, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x00, 0x01,
        0xe2, 0x40, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x07,
    ];

    #[test]
    fn parse_syn() {
        let p = Packet::new_checked(&SYN[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port()), (40000, 80));
        assert_eq!(p.seq_number(), 0x12345678);
        assert_eq!(p.header_len(), 40);
        assert!(p.syn() && !p.ack() && !p.fin() && !p.rst() && !p.psh() && !p.urg());
        assert!(p.flags().is_syn_only());
        assert_eq!(p.window_len(), 64240);
        assert!(p.verify_checksum(&SRC4, &DST4));
        assert!(p.payload().is_empty());
        let opts: Vec<_> = p.options_iter().collect();
        assert_eq!(
            opts,
            [
                TcpOption::MaxSegmentSize(1460),
                TcpOption::SackPermitted,
                TcpOption::TimeStamp {
                    tsval: 0x0001e240,
                    tsecr: 0
                },
                TcpOption::NoOperation,
                TcpOption::WindowScale(7),
            ]
        );
    }

    #[test]
    fn parse_psh() {
        let p = Packet::new_checked(&PSH[..]).unwrap();
        assert!(p.psh() && p.ack() && !p.syn());
        assert_eq!(p.flags(), TcpFlags(TcpFlags::PSH | TcpFlags::ACK));
        assert_eq!(p.ack_number(), 0x9abcdef1);
        assert_eq!(p.payload(), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(p.verify_checksum(&SRC4, &DST4));
        assert!(!p.verify_checksum(&SRC4, &SRC4));
        let v6 = Packet::new_checked(&V6_SYN[..]).unwrap();
        assert!(v6.verify_checksum(&SRC6, &DST6));
    }

    #[test]
    fn check_len_reasons() {
        assert_eq!(Packet::new_checked(&SYN[..19]), Err(Malformed::TruncatedL4));
        assert_eq!(
            Packet::new_checked(&SYN[..39]),
            Err(Malformed::BadTcpDataOffset)
        );
        let mut doff4 = SYN;
        doff4[12] = 0x40;
        assert_eq!(
            Packet::new_checked(&doff4[..]),
            Err(Malformed::BadTcpDataOffset)
        );
    }

    #[test]
    fn malformed_options_end_iteration() {
        let mut seg = SYN;
        seg[21] = 9; // MSS with length 9 runs past... and is the wrong length anyway
        let p = Packet::new_checked(&seg[..]).unwrap();
        assert_eq!(p.options_iter().count(), 0);
        seg[21] = 0; // a zero length must not loop
        let p = Packet::new_checked(&seg[..]).unwrap();
        assert_eq!(p.options_iter().count(), 0);
    }

    #[test]
    fn roundtrip() {
        for (bytes, src, dst) in [
            (&SYN[..], SRC4, DST4),
            (&PSH[..], SRC4, DST4),
            (&V6_SYN[..], SRC6, DST6),
        ] {
            let p = Packet::new_checked(bytes).unwrap();
            let repr = Repr::parse(&p).unwrap();
            assert_eq!(repr.buffer_len(), bytes.len());
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
}
