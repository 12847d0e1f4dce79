//! IPv6 (RFC 8200): the fixed header, extension headers, and a bounded walk over them.
//!
//! Between the fixed header and the upper-layer header an IPv6 packet may carry a chain
//! of extension headers. [`walk_ext_headers`] follows the chain through hop-by-hop
//! options, routing, fragment and destination options headers, at most
//! [`MAX_EXT_HEADERS`] of them, and reports where the upper layer starts and whether the
//! packet is a fragment. Any other next-header value ends the walk (it is the upper
//! layer, or something this walk does not look into, such as AH or ESP).
//!
//! The views: [`Packet`] (fixed header), [`ExtHeader`] (the generic
//! next-header/length/data layout of hop-by-hop, routing and destination options) and
//! [`FragmentHeader`], each with its `Repr`.

use std::net::Ipv6Addr;

use super::field::Field;
use super::{get_array, get_u16, get_u32, set_u16, set_u32, IpProtocol, Malformed, Result};

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;
/// The most extension headers [`walk_ext_headers`] follows before it gives up.
pub const MAX_EXT_HEADERS: usize = 8;
/// Length of a fragment header.
pub const FRAGMENT_HEADER_LEN: usize = 8;

/// Next-header value of a hop-by-hop options header.
pub const NH_HOP_BY_HOP: u8 = 0;
/// Next-header value of a routing header.
pub const NH_ROUTING: u8 = 43;
/// Next-header value of a fragment header.
pub const NH_FRAGMENT: u8 = 44;
/// Next-header value of a destination options header.
pub const NH_DST_OPTS: u8 = 60;
/// Next-header value "no next header".
pub const NH_NO_NEXT: u8 = 59;

mod field {
    use super::Field;
    pub(super) const VER_TC_FLOW: Field = 0..4;
    pub(super) const LENGTH: Field = 4..6;
    pub(super) const NXT_HDR: usize = 6;
    pub(super) const HOP_LIMIT: usize = 7;
    pub(super) const SRC_ADDR: Field = 8..24;
    pub(super) const DST_ADDR: Field = 24..40;
}

/// Byte offset of the source address in the fixed header.
pub const SRC_ADDR_OFFSET: usize = field::SRC_ADDR.start;
/// Byte offset of the destination address in the fixed header.
pub const DST_ADDR_OFFSET: usize = field::DST_ADDR.start;

/// A read/write view of an IPv6 packet (fixed header and payload).
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

    /// Check that no accessor panics: [`Malformed::TruncatedIp`] if shorter than the fixed
    /// header, [`Malformed::BadIpTotalLen`] if the payload length runs past the buffer.
    /// The version is not checked here ([`Repr::parse`] does).
    /// [`Packet::set_payload_len`] invalidates the check.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            Err(Malformed::TruncatedIp)
        } else if HEADER_LEN + usize::from(self.payload_len()) > len {
            Err(Malformed::BadIpTotalLen)
        } else {
            Ok(())
        }
    }

    /// Unwrap the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    fn ver_tc_flow(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::VER_TC_FLOW.start)
    }

    /// The version field (6 for a valid packet).
    #[inline]
    pub fn version(&self) -> u8 {
        (self.ver_tc_flow() >> 28) as u8
    }

    /// Traffic class (DSCP and ECN).
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (self.ver_tc_flow() >> 20) as u8
    }

    /// Flow label (20 bits).
    #[inline]
    pub fn flow_label(&self) -> u32 {
        self.ver_tc_flow() & 0x000f_ffff
    }

    /// Payload length: everything after the fixed header, extension headers included.
    #[inline]
    pub fn payload_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// The first next-header value (an extension header or the upper layer).
    #[inline]
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::NXT_HDR])
    }

    /// Hop limit.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(get_array::<16>(self.buffer.as_ref(), field::SRC_ADDR.start))
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(get_array::<16>(self.buffer.as_ref(), field::DST_ADDR.start))
    }

    /// The payload (extension headers and upper layer), padding excluded.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + usize::from(self.payload_len())]
    }

    /// Walk the extension headers of the payload (see [`walk_ext_headers`]).
    #[inline]
    pub fn ext_chain(&self) -> Result<ExtChain> {
        walk_ext_headers(self.buffer.as_ref()[field::NXT_HDR], self.payload())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    fn set_ver_tc_flow(&mut self, value: u32) {
        set_u32(self.buffer.as_mut(), field::VER_TC_FLOW.start, value);
    }

    /// Set the version field.
    #[inline]
    pub fn set_version(&mut self, value: u8) {
        let v = (self.ver_tc_flow() & 0x0fff_ffff) | (u32::from(value & 0x0f) << 28);
        self.set_ver_tc_flow(v);
    }

    /// Set the traffic class.
    #[inline]
    pub fn set_traffic_class(&mut self, value: u8) {
        let v = (self.ver_tc_flow() & 0xf00f_ffff) | (u32::from(value) << 20);
        self.set_ver_tc_flow(v);
    }

    /// Set the flow label (20 bits; higher bits are dropped).
    #[inline]
    pub fn set_flow_label(&mut self, value: u32) {
        let v = (self.ver_tc_flow() & 0xfff0_0000) | (value & 0x000f_ffff);
        self.set_ver_tc_flow(v);
    }

    /// Set the payload length. Invalidates [`Packet::check_len`].
    #[inline]
    pub fn set_payload_len(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::LENGTH.start, value);
    }

    /// Set the first next-header value.
    #[inline]
    pub fn set_next_header(&mut self, value: IpProtocol) {
        self.buffer.as_mut()[field::NXT_HDR] = value.into();
    }

    /// Set the hop limit.
    #[inline]
    pub fn set_hop_limit(&mut self, value: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = value;
    }

    /// Set the source address.
    #[inline]
    pub fn set_src_addr(&mut self, value: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&value.octets());
    }

    /// Set the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, value: Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&value.octets());
    }

    /// The payload, mutably.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The fixed IPv6 header, every field kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv6Addr,
    /// Destination address.
    pub dst_addr: Ipv6Addr,
    /// The first next header (an extension header or the upper layer).
    pub next_header: IpProtocol,
    /// Payload length (extension headers included).
    pub payload_len: usize,
    /// Hop limit.
    pub hop_limit: u8,
    /// Traffic class.
    pub traffic_class: u8,
    /// Flow label (20 bits).
    pub flow_label: u32,
}

impl Repr {
    /// Parse a checked packet; [`Malformed::BadIpVersion`] if the version is not 6.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        packet.check_len()?;
        if packet.version() != 6 {
            return Err(Malformed::BadIpVersion);
        }
        Ok(Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: usize::from(packet.payload_len()),
            hop_limit: packet.hop_limit(),
            traffic_class: packet.traffic_class(),
            flow_label: packet.flow_label(),
        })
    }

    /// The header length this `Repr` emits.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Write the fixed header into `packet` (at least [`HEADER_LEN`] bytes). A payload
    /// length above 65535 is written as 65535 (jumbograms are not supported).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_ver_tc_flow(
            (6 << 28) | (u32::from(self.traffic_class) << 20) | (self.flow_label & 0x000f_ffff),
        );
        packet.set_payload_len(u16::try_from(self.payload_len).unwrap_or(u16::MAX));
        packet.set_next_header(self.next_header);
        packet.set_hop_limit(self.hop_limit);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
    }
}

/// A view of an extension header with the generic layout of hop-by-hop options,
/// routing and destination options headers: next header (1 byte), length in 8-octet
/// units not counting the first 8 (1 byte), then data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ExtHeader<T> {
    /// Wrap a buffer without checking it (for emission).
    pub const fn new_unchecked(buffer: T) -> ExtHeader<T> {
        ExtHeader { buffer }
    }

    /// Wrap a buffer that starts with an extension header and check that the header fits
    /// ([`Malformed::BadIpv6ExtHeaders`] otherwise).
    pub fn new_checked(buffer: T) -> Result<ExtHeader<T>> {
        let header = ExtHeader::new_unchecked(buffer);
        header.check_len()?;
        Ok(header)
    }

    /// Check that no accessor panics.
    pub fn check_len(&self) -> Result<()> {
        let buf = self.buffer.as_ref();
        match buf.get(1) {
            Some(&units) if ext_len(units) <= buf.len() => Ok(()),
            _ => Err(Malformed::BadIpv6ExtHeaders),
        }
    }

    /// The next header after this one.
    #[inline]
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[0])
    }

    /// The whole header length in bytes: `(length field + 1) * 8`.
    #[inline]
    pub fn header_len(&self) -> usize {
        ext_len(self.buffer.as_ref()[1])
    }

    /// The data after the two fixed bytes (options, or the routing data).
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[2..self.header_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ExtHeader<T> {
    /// Set the next header.
    #[inline]
    pub fn set_next_header(&mut self, value: IpProtocol) {
        self.buffer.as_mut()[0] = value.into();
    }

    /// Set the raw length field (8-octet units beyond the first 8). Invalidates the check.
    #[inline]
    pub fn set_len_units(&mut self, value: u8) {
        self.buffer.as_mut()[1] = value;
    }

    /// The data, mutably.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        &mut self.buffer.as_mut()[2..end]
    }
}

#[inline(always)]
fn ext_len(units: u8) -> usize {
    (usize::from(units) + 1) * 8
}

/// A hop-by-hop, routing or destination options header, its data kept raw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExtHeaderRepr<'a> {
    /// The next header.
    pub next_header: IpProtocol,
    /// The data after the two fixed bytes: `6 + 8k` bytes, `k` at most 255.
    pub data: &'a [u8],
}

impl<'a> ExtHeaderRepr<'a> {
    /// Parse a checked header.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(header: &ExtHeader<&'a T>) -> Result<ExtHeaderRepr<'a>> {
        header.check_len()?;
        let buf: &'a [u8] = header.buffer.as_ref();
        Ok(ExtHeaderRepr {
            next_header: header.next_header(),
            data: &buf[2..header.header_len()],
        })
    }

    /// The header length this `Repr` emits (`2 + data.len()`).
    pub const fn buffer_len(&self) -> usize {
        2 + self.data.len()
    }

    /// Write the header into `header` (at least [`ExtHeaderRepr::buffer_len`] bytes).
    /// Data whose length is not `6 + 8k` makes an invalid header.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, header: &mut ExtHeader<T>) {
        header.set_next_header(self.next_header);
        let units = (self.buffer_len() / 8).saturating_sub(1);
        header.set_len_units(u8::try_from(units).unwrap_or(u8::MAX));
        let buf = header.buffer.as_mut();
        buf[2..2 + self.data.len()].copy_from_slice(self.data);
    }
}

/// A view of a fragment header (RFC 8200 §4.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> FragmentHeader<T> {
    /// Wrap a buffer without checking it (for emission).
    pub const fn new_unchecked(buffer: T) -> FragmentHeader<T> {
        FragmentHeader { buffer }
    }

    /// Wrap a buffer that starts with a fragment header; [`Malformed::BadIpv6ExtHeaders`]
    /// if shorter than 8 bytes.
    pub fn new_checked(buffer: T) -> Result<FragmentHeader<T>> {
        let header = FragmentHeader::new_unchecked(buffer);
        header.check_len()?;
        Ok(header)
    }

    /// Check that no accessor panics.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < FRAGMENT_HEADER_LEN {
            Err(Malformed::BadIpv6ExtHeaders)
        } else {
            Ok(())
        }
    }

    /// The next header (of the fragmentable part).
    #[inline]
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[0])
    }

    /// Fragment offset in bytes.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        get_u16(self.buffer.as_ref(), 2) & 0xfff8
    }

    /// The M flag: more fragments follow.
    #[inline]
    pub fn more_frags(&self) -> bool {
        get_u16(self.buffer.as_ref(), 2) & 1 != 0
    }

    /// Identification.
    #[inline]
    pub fn ident(&self) -> u32 {
        get_u32(self.buffer.as_ref(), 4)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> FragmentHeader<T> {
    /// Set the next header.
    #[inline]
    pub fn set_next_header(&mut self, value: IpProtocol) {
        self.buffer.as_mut()[0] = value.into();
    }

    /// Set the offset (bytes; the low 3 bits are dropped) and the M flag. The reserved
    /// bits are cleared.
    #[inline]
    pub fn set_frag(&mut self, offset: u16, more_frags: bool) {
        let buf = self.buffer.as_mut();
        buf[1] = 0;
        set_u16(buf, 2, (offset & 0xfff8) | u16::from(more_frags));
    }

    /// Set the identification.
    #[inline]
    pub fn set_ident(&mut self, value: u32) {
        set_u32(self.buffer.as_mut(), 4, value);
    }
}

/// A fragment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragmentRepr {
    /// The next header of the fragmentable part.
    pub next_header: IpProtocol,
    /// Offset in bytes (a multiple of 8).
    pub frag_offset: u16,
    /// More fragments follow.
    pub more_frags: bool,
    /// Identification.
    pub ident: u32,
}

impl FragmentRepr {
    /// Parse a checked header. The reserved bits are not kept.
    pub fn parse<T: AsRef<[u8]>>(header: &FragmentHeader<T>) -> Result<FragmentRepr> {
        header.check_len()?;
        Ok(FragmentRepr {
            next_header: header.next_header(),
            frag_offset: header.frag_offset(),
            more_frags: header.more_frags(),
            ident: header.ident(),
        })
    }

    /// The header length ([`FRAGMENT_HEADER_LEN`]).
    pub const fn buffer_len(&self) -> usize {
        FRAGMENT_HEADER_LEN
    }

    /// Write the header into `header` (at least 8 bytes).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, header: &mut FragmentHeader<T>) {
        header.set_next_header(self.next_header);
        header.set_frag(self.frag_offset, self.more_frags);
        header.set_ident(self.ident);
    }
}

/// What [`walk_ext_headers`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtChain {
    /// The next-header value after the last extension header walked: the upper-layer
    /// protocol (or 59, no next header, or a header this walk does not enter).
    pub upper: u8,
    /// Bytes of extension headers: the upper layer starts this far into the payload.
    pub len: usize,
    /// How many extension headers were walked.
    pub count: usize,
    /// The fragment header, if there was one. If its offset is nonzero the walk stopped
    /// there: what follows is not a header.
    pub fragment: Option<FragmentRepr>,
}

impl ExtChain {
    /// Whether the packet is a fragment other than the first (it has no upper-layer
    /// header).
    #[inline]
    pub fn is_later_fragment(&self) -> bool {
        matches!(self.fragment, Some(f) if f.frag_offset != 0)
    }

    /// Whether the packet is any fragment (first or later).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        matches!(self.fragment, Some(f) if f.frag_offset != 0 || f.more_frags)
    }
}

/// Walk the extension-header chain of an IPv6 payload, starting with next-header value
/// `first` (from the fixed header).
///
/// Follows hop-by-hop (only allowed first), routing, fragment (once) and destination
/// options headers. Fails with [`Malformed::BadIpv6ExtHeaders`] if a header is
/// truncated, the chain has more than [`MAX_EXT_HEADERS`] headers, hop-by-hop is not
/// first, or there are two fragment headers. Never panics; bounded work.
#[inline]
pub fn walk_ext_headers(first: u8, payload: &[u8]) -> Result<ExtChain> {
    let mut next = first;
    let mut at = 0usize;
    let mut count = 0usize;
    let mut fragment: Option<FragmentRepr> = None;
    loop {
        match next {
            NH_HOP_BY_HOP | NH_ROUTING | NH_DST_OPTS => {
                if next == NH_HOP_BY_HOP && count != 0 {
                    return Err(Malformed::BadIpv6ExtHeaders);
                }
                let hdr = payload.get(at..).unwrap_or_default();
                let &[nh, units, ..] = hdr else {
                    return Err(Malformed::BadIpv6ExtHeaders);
                };
                let len = ext_len(units);
                if len > hdr.len() {
                    return Err(Malformed::BadIpv6ExtHeaders);
                }
                next = nh;
                at += len;
            }
            NH_FRAGMENT => {
                let Some(hdr) = payload.get(at..).and_then(|h| h.first_chunk::<8>()) else {
                    return Err(Malformed::BadIpv6ExtHeaders);
                };
                if fragment.is_some() {
                    return Err(Malformed::BadIpv6ExtHeaders);
                }
                let off_m = u16::from_be_bytes([hdr[2], hdr[3]]);
                let frag = FragmentRepr {
                    next_header: IpProtocol::from(hdr[0]),
                    frag_offset: off_m & 0xfff8,
                    more_frags: off_m & 1 != 0,
                    ident: u32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]),
                };
                fragment = Some(frag);
                next = hdr[0];
                at += FRAGMENT_HEADER_LEN;
                if frag.frag_offset != 0 {
                    count += 1;
                    return Ok(ExtChain {
                        upper: next,
                        len: at,
                        count,
                        fragment,
                    });
                }
            }
            upper => {
                return Ok(ExtChain {
                    upper,
                    len: at,
                    count,
                    fragment,
                })
            }
        }
        count += 1;
        if count > MAX_EXT_HEADERS {
            return Err(Malformed::BadIpv6ExtHeaders);
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    // IPv6/UDP DNS query 2001:db8::10 -> 2001:db8::20, flow label 0x12345.
    static UDP_PACKET: [u8; 77] = [
        0x60, 0x01, 0x23, 0x45, 0x00, 0x25, 0x11, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0xcf, 0x08, 0x00, 0x35, 0x00,
        0x25, 0x59, 0x89, 0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x07, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x03, 0x63, 0x6f, 0x6d, 0x00, 0x00, 0x01,
        0x00, 0x01,
    ];

    // Hop-by-hop (router alert, PadN) + destination options (PadN) + UDP "ext".
    static EXT_PACKET: [u8; 67] = [
        0x60, 0x00, 0x00, 0x00, 0x00, 0x1b, 0x00, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0x3c, 0x00, 0x05, 0x02, 0x00,
        0x00, 0x01, 0x00, 0x11, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00, 0x04, 0x57, 0x08, 0xae,
        0x00, 0x0b, 0xbd, 0xb8, 0x65, 0x78, 0x74,
    ];

    // Fragment header (offset 0, M set, ident 0xdeadbeef) + the first 16 bytes of UDP.
    static FRAG_PACKET: [u8; 64] = [
        0x60, 0x00, 0x00, 0x00, 0x00, 0x18, 0x2c, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0x11, 0x00, 0x00, 0x01, 0xde,
        0xad, 0xbe, 0xef, 0x0d, 0x05, 0x11, 0x5c, 0x00, 0x6c, 0x85, 0x13, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00,
    ];

    #[test]
    fn parse_fixed_header() {
        let p = Packet::new_checked(&UDP_PACKET[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.payload_len(), 37);
        assert_eq!(p.next_header(), IpProtocol::Udp);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr(), "2001:db8::10".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.dst_addr(), "2001:db8::20".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.payload(), &UDP_PACKET[40..]);
        let chain = p.ext_chain().unwrap();
        assert_eq!(
            chain,
            ExtChain {
                upper: 17,
                len: 0,
                count: 0,
                fragment: None
            }
        );
    }

    #[test]
    fn walk_hbh_dstopts() {
        let p = Packet::new_checked(&EXT_PACKET[..]).unwrap();
        let chain = p.ext_chain().unwrap();
        assert_eq!(
            chain,
            ExtChain {
                upper: 17,
                len: 16,
                count: 2,
                fragment: None
            }
        );
        let hbh = ExtHeader::new_checked(p.payload()).unwrap();
        assert_eq!(hbh.next_header(), IpProtocol::Ipv6Opts);
        assert_eq!(hbh.header_len(), 8);
        assert_eq!(hbh.data(), &[5, 2, 0, 0, 1, 0]);
    }

    #[test]
    fn walk_fragment() {
        let p = Packet::new_checked(&FRAG_PACKET[..]).unwrap();
        let chain = p.ext_chain().unwrap();
        let frag = FragmentRepr {
            next_header: IpProtocol::Udp,
            frag_offset: 0,
            more_frags: true,
            ident: 0xdeadbeef,
        };
        assert_eq!(
            chain,
            ExtChain {
                upper: 17,
                len: 8,
                count: 1,
                fragment: Some(frag)
            }
        );
        assert!(chain.is_fragment() && !chain.is_later_fragment());
        // Same header with a nonzero offset: the walk stops at it.
        let mut later = [0u8; 8];
        frag.emit(&mut FragmentHeader::new_unchecked(&mut later[..]));
        later[3] |= 0x30; // offset 48
        let chain = walk_ext_headers(NH_FRAGMENT, &later).unwrap();
        assert!(chain.is_later_fragment());
        assert_eq!(chain.fragment.unwrap().frag_offset, 48);
    }

    #[test]
    fn walk_rejects_bad_chains() {
        // Truncated: a hop-by-hop header claiming 16 bytes in 8.
        assert_eq!(
            walk_ext_headers(0, &[17, 1, 0, 0, 0, 0, 0, 0]),
            Err(Malformed::BadIpv6ExtHeaders)
        );
        assert_eq!(
            walk_ext_headers(0, &[17]),
            Err(Malformed::BadIpv6ExtHeaders)
        );
        assert_eq!(
            walk_ext_headers(44, &[17, 0, 0, 0]),
            Err(Malformed::BadIpv6ExtHeaders)
        );
        // Hop-by-hop after a destination options header.
        let late_hbh = [0, 0, 0, 0, 0, 0, 0, 0, 17, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            walk_ext_headers(60, &late_hbh),
            Err(Malformed::BadIpv6ExtHeaders)
        );
        // Two fragment headers.
        let two_frag = [44, 0, 0, 1, 0, 0, 0, 1, 17, 0, 0, 1, 0, 0, 0, 1];
        assert_eq!(
            walk_ext_headers(44, &two_frag),
            Err(Malformed::BadIpv6ExtHeaders)
        );
        // Eight destination options headers are fine, nine are too many.
        let mut chain = [0u8; 8 * 9];
        for h in chain.chunks_mut(8) {
            h[0] = 60;
        }
        chain[8 * 7] = 17;
        assert_eq!(walk_ext_headers(60, &chain[..64]).unwrap().count, 8);
        chain[8 * 7] = 60;
        chain[8 * 8] = 17;
        assert_eq!(
            walk_ext_headers(60, &chain),
            Err(Malformed::BadIpv6ExtHeaders)
        );
    }

    #[test]
    fn check_len_reasons() {
        assert_eq!(
            Packet::new_checked(&UDP_PACKET[..39]),
            Err(Malformed::TruncatedIp)
        );
        assert_eq!(
            Packet::new_checked(&UDP_PACKET[..76]),
            Err(Malformed::BadIpTotalLen)
        );
        let mut v4 = UDP_PACKET;
        v4[0] = 0x40;
        let p = Packet::new_checked(&v4[..]).unwrap();
        assert_eq!(Repr::parse(&p), Err(Malformed::BadIpVersion));
    }

    #[test]
    fn roundtrip_fixed_header() {
        for bytes in [&UDP_PACKET[..], &EXT_PACKET[..], &FRAG_PACKET[..]] {
            let p = Packet::new_checked(bytes).unwrap();
            let repr = Repr::parse(&p).unwrap();
            let mut out = vec![0xa5u8; bytes.len()];
            let mut q = Packet::new_unchecked(&mut out[..]);
            repr.emit(&mut q);
            q.payload_mut().copy_from_slice(p.payload());
            assert_eq!(&out[..], bytes);
            assert_eq!(
                Repr::parse(&Packet::new_checked(&out[..]).unwrap()).unwrap(),
                repr
            );
        }
    }

    #[test]
    fn roundtrip_ext_headers() {
        let p = Packet::new_checked(&EXT_PACKET[..]).unwrap();
        let payload = p.payload();
        for at in [0, 8] {
            let bytes = &payload[at..at + 8];
            let repr = ExtHeaderRepr::parse(&ExtHeader::new_checked(bytes).unwrap()).unwrap();
            let mut out = [0xa5u8; 8];
            assert_eq!(repr.buffer_len(), 8);
            repr.emit(&mut ExtHeader::new_unchecked(&mut out[..]));
            assert_eq!(&out[..], bytes);
            let back = ExtHeaderRepr::parse(&ExtHeader::new_checked(&out[..]).unwrap()).unwrap();
            assert_eq!(back, repr);
        }
        let f = Packet::new_checked(&FRAG_PACKET[..]).unwrap();
        let bytes = &f.payload()[..8];
        let repr = FragmentRepr::parse(&FragmentHeader::new_checked(bytes).unwrap()).unwrap();
        let mut out = [0xa5u8; 8];
        repr.emit(&mut FragmentHeader::new_unchecked(&mut out[..]));
        assert_eq!(&out[..], bytes);
        assert_eq!(
            FragmentRepr::parse(&FragmentHeader::new_checked(&out[..]).unwrap()),
            Ok(repr)
        );
    }
}
