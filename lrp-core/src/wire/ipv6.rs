//! IPv6 extension headers: a bounded walk over the chain (RFC 8200 §4).
//!
//! Written here because smoltcp has views for single extension headers but no bounded walk
//! over the chain with the ordering rules the classifier needs. Between the fixed header
//! (smoltcp's `Ipv6Packet`) and the upper-layer header an IPv6 packet may carry a chain
//! of extension headers. [`walk_ext_headers`] follows it through hop-by-hop options,
//! routing, fragment and destination options headers (read with smoltcp's
//! `Ipv6ExtHeader` and `Ipv6FragmentHeader` views), at most [`MAX_EXT_HEADERS`] of them,
//! and reports where the upper layer starts and whether the packet is a fragment. Any
//! other next-header value ends the walk (it is the upper layer, or something this walk
//! does not look into, such as AH or ESP).

use smoltcp::wire::{Ipv6ExtHeader, Ipv6FragmentHeader, Ipv6FragmentRepr};

use super::{Malformed, Result};

/// The most extension headers [`walk_ext_headers`] follows before it gives up.
pub const MAX_EXT_HEADERS: usize = 8;

/// Next-header values of the headers the walk enters.
const NH_HOP_BY_HOP: u8 = 0;
const NH_ROUTING: u8 = 43;
const NH_FRAGMENT: u8 = 44;
const NH_DST_OPTS: u8 = 60;
/// Length of a fragment header, whose second byte is reserved (not a length).
const FRAGMENT_HEADER_LEN: usize = 8;

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
    /// The fragment header, if there was one (its `frag_offset` is in 8-octet units). If
    /// its offset is nonzero the walk stopped there: what follows is not a header.
    pub fragment: Option<Ipv6FragmentRepr>,
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
    let mut fragment: Option<Ipv6FragmentRepr> = None;
    loop {
        let rest = payload.get(at..).unwrap_or_default();
        match next {
            NH_HOP_BY_HOP | NH_ROUTING | NH_DST_OPTS => {
                if next == NH_HOP_BY_HOP && count != 0 {
                    return Err(Malformed::BadIpv6ExtHeaders);
                }
                let hdr =
                    Ipv6ExtHeader::new_checked(rest).map_err(|_| Malformed::BadIpv6ExtHeaders)?;
                next = hdr.next_header().into();
                at += (usize::from(hdr.header_len()) + 1) * 8;
            }
            NH_FRAGMENT => {
                let Some(hdr) = rest.first_chunk::<FRAGMENT_HEADER_LEN>() else {
                    return Err(Malformed::BadIpv6ExtHeaders);
                };
                if fragment.is_some() {
                    return Err(Malformed::BadIpv6ExtHeaders);
                }
                // smoltcp's fragment view starts after the next-header and reserved bytes.
                let frag = Ipv6FragmentHeader::new_checked(&hdr[2..])
                    .and_then(|h| Ipv6FragmentRepr::parse(&h))
                    .map_err(|_| Malformed::BadIpv6ExtHeaders)?;
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
    use smoltcp::wire::Ipv6Packet;

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

    /// The fixed header read with smoltcp's view, then the walk over its payload.
    fn chain(packet: &[u8]) -> Result<ExtChain> {
        let p = Ipv6Packet::new_checked(packet).unwrap();
        walk_ext_headers(p.next_header().into(), p.payload())
    }

    #[test]
    fn walk_none() {
        assert_eq!(
            chain(&UDP_PACKET),
            Ok(ExtChain {
                upper: 17,
                len: 0,
                count: 0,
                fragment: None
            })
        );
    }

    #[test]
    fn walk_hbh_dstopts() {
        assert_eq!(
            chain(&EXT_PACKET),
            Ok(ExtChain {
                upper: 17,
                len: 16,
                count: 2,
                fragment: None
            })
        );
    }

    #[test]
    fn walk_fragment() {
        let c = chain(&FRAG_PACKET).unwrap();
        let frag = Ipv6FragmentRepr {
            frag_offset: 0,
            more_frags: true,
            ident: 0xdeadbeef,
        };
        assert_eq!(
            c,
            ExtChain {
                upper: 17,
                len: 8,
                count: 1,
                fragment: Some(frag)
            }
        );
        assert!(c.is_fragment() && !c.is_later_fragment());
        // Same header with a nonzero offset: the walk stops at it.
        let mut later = [0u8; 8];
        later.copy_from_slice(&FRAG_PACKET[40..48]);
        later[3] |= 0x30; // offset 48 bytes, 6 units
        let c = walk_ext_headers(NH_FRAGMENT, &later).unwrap();
        assert!(c.is_later_fragment());
        assert_eq!(c.fragment.unwrap().frag_offset, 6);
        // The reserved byte of a fragment header is not a length.
        later[1] = 0xff;
        assert_eq!(walk_ext_headers(NH_FRAGMENT, &later), Ok(c));
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
}
