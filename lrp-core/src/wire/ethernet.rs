//! Ethernet II frames, untagged or with one IEEE 802.1Q VLAN tag.
//!
//! ```text
//! untagged:  dst(6) src(6) ethertype(2) payload
//! tagged:    dst(6) src(6) 0x8100(2) TCI(2) ethertype(2) payload
//! ```
//!
//! A [`Frame`] view looks through one 802.1Q tag: [`Frame::ethertype`] is the inner
//! ethertype and [`Frame::payload`] starts after the tag. A second tag (QinQ) is not
//! looked through: the inner ethertype is then `0x8100`, which the classifier reports
//! as an other ethertype. Addresses and ethertypes are smoltcp's
//! [`EthernetAddress`] and [`EthernetProtocol`].

use super::field::Field;
use super::{get_array, get_u16, set_u16, EthernetAddress, EthernetProtocol, Malformed, Result};

/// Length of an untagged Ethernet II header.
pub const HEADER_LEN: usize = 14;
/// Length of an Ethernet II header with one 802.1Q tag.
pub const VLAN_HEADER_LEN: usize = 18;
/// The Tag Protocol Identifier of an IEEE 802.1Q tag.
pub const TPID_8021Q: u16 = 0x8100;

mod field {
    use super::Field;
    pub(super) const DESTINATION: Field = 0..6;
    pub(super) const SOURCE: Field = 6..12;
    /// The ethertype of an untagged frame, or the TPID of a tagged one.
    pub(super) const ETHERTYPE: Field = 12..14;
    pub(super) const TCI: Field = 14..16;
    pub(super) const INNER_ETHERTYPE: Field = 16..18;
}

/// An IEEE 802.1Q tag control information: priority, drop eligibility, VLAN id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct VlanTag {
    /// Priority code point (3 bits, 0..=7).
    pub pcp: u8,
    /// Drop eligible indicator.
    pub dei: bool,
    /// VLAN identifier (12 bits, 0..=4095).
    pub vid: u16,
}

impl VlanTag {
    /// Decode a 16-bit TCI.
    pub const fn from_tci(tci: u16) -> VlanTag {
        VlanTag {
            pcp: (tci >> 13) as u8,
            dei: tci & 0x1000 != 0,
            vid: tci & 0x0fff,
        }
    }

    /// Encode as a 16-bit TCI. Out-of-range `pcp` and `vid` bits are masked off.
    pub const fn tci(self) -> u16 {
        ((self.pcp as u16 & 0x7) << 13) | ((self.dei as u16) << 12) | (self.vid & 0x0fff)
    }
}

/// A read/write view of an Ethernet II frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wrap a buffer without checking its length (for emission; see the
    /// [no-panic contract](super#the-no-panic-contract)).
    pub const fn new_unchecked(buffer: T) -> Frame<T> {
        Frame { buffer }
    }

    /// Wrap a buffer and check that the header, with its tag if tagged, fits.
    pub fn new_checked(buffer: T) -> Result<Frame<T>> {
        let frame = Frame::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// Check that no accessor panics: the buffer holds the whole header
    /// ([`Malformed::TruncatedEthernet`] otherwise). Writing the TPID field
    /// ([`Frame::set_tpid`]) invalidates the check.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN || (self.is_tagged() && len < VLAN_HEADER_LEN) {
            Err(Malformed::TruncatedEthernet)
        } else {
            Ok(())
        }
    }

    /// Unwrap the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Whether the frame carries an 802.1Q tag.
    #[inline]
    pub fn is_tagged(&self) -> bool {
        self.tpid() == TPID_8021Q
    }

    /// The header length: [`HEADER_LEN`] or, with a tag, [`VLAN_HEADER_LEN`].
    #[inline]
    pub fn header_len(&self) -> usize {
        if self.is_tagged() {
            VLAN_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }

    /// The destination address.
    #[inline]
    pub fn dst_addr(&self) -> EthernetAddress {
        EthernetAddress(get_array(self.buffer.as_ref(), field::DESTINATION.start))
    }

    /// The source address.
    #[inline]
    pub fn src_addr(&self) -> EthernetAddress {
        EthernetAddress(get_array(self.buffer.as_ref(), field::SOURCE.start))
    }

    /// The raw ethertype field at offset 12: the ethertype of an untagged frame, the TPID
    /// (`0x8100`) of a tagged one.
    #[inline]
    pub fn tpid(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::ETHERTYPE.start)
    }

    /// The VLAN tag, if the frame is tagged.
    #[inline]
    pub fn vlan(&self) -> Option<VlanTag> {
        self.is_tagged()
            .then(|| VlanTag::from_tci(get_u16(self.buffer.as_ref(), field::TCI.start)))
    }

    /// The ethertype of the payload (after the tag, if tagged).
    #[inline]
    pub fn ethertype(&self) -> EthernetProtocol {
        EthernetProtocol::from(self.ethertype_raw())
    }

    /// [`Frame::ethertype`] as a number.
    #[inline]
    pub fn ethertype_raw(&self) -> u16 {
        let at = if self.is_tagged() {
            field::INNER_ETHERTYPE.start
        } else {
            field::ETHERTYPE.start
        };
        get_u16(self.buffer.as_ref(), at)
    }

    /// The payload: everything after the header (including any Ethernet padding).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Set the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, value: EthernetAddress) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(value.as_bytes());
    }

    /// Set the source address.
    #[inline]
    pub fn set_src_addr(&mut self, value: EthernetAddress) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(value.as_bytes());
    }

    /// Set the raw field at offset 12 (ethertype of an untagged frame, or the TPID).
    /// Setting it to [`TPID_8021Q`] makes the frame tagged and invalidates
    /// [`Frame::check_len`].
    #[inline]
    pub fn set_tpid(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::ETHERTYPE.start, value);
    }

    /// Set the VLAN tag of a tagged frame (write the TPID first with [`Frame::set_tpid`]).
    #[inline]
    pub fn set_vlan(&mut self, tag: VlanTag) {
        set_u16(self.buffer.as_mut(), field::TCI.start, tag.tci());
    }

    /// Set the ethertype of the payload: the field that [`Frame::ethertype`] reads, after
    /// the tag if the TPID field says the frame is tagged.
    #[inline]
    pub fn set_ethertype(&mut self, value: EthernetProtocol) {
        let at = if self.is_tagged() {
            field::INNER_ETHERTYPE.start
        } else {
            field::ETHERTYPE.start
        };
        set_u16(self.buffer.as_mut(), at, value.into());
    }

    /// The payload, mutably.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let at = self.header_len();
        &mut self.buffer.as_mut()[at..]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Frame<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The header of an Ethernet II frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source address.
    pub src_addr: EthernetAddress,
    /// Destination address.
    pub dst_addr: EthernetAddress,
    /// The 802.1Q tag, if any.
    pub vlan: Option<VlanTag>,
    /// The ethertype of the payload.
    pub ethertype: EthernetProtocol,
}

impl Repr {
    /// Parse a checked frame's header.
    pub fn parse<T: AsRef<[u8]>>(frame: &Frame<T>) -> Result<Repr> {
        frame.check_len()?;
        Ok(Repr {
            src_addr: frame.src_addr(),
            dst_addr: frame.dst_addr(),
            vlan: frame.vlan(),
            ethertype: frame.ethertype(),
        })
    }

    /// The header length this `Repr` emits.
    pub const fn buffer_len(&self) -> usize {
        if self.vlan.is_some() {
            VLAN_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }

    /// Write the header into `frame`, which must be at least [`Repr::buffer_len`] long.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut Frame<T>) {
        frame.set_dst_addr(self.dst_addr);
        frame.set_src_addr(self.src_addr);
        match self.vlan {
            Some(tag) => {
                frame.set_tpid(TPID_8021Q);
                frame.set_vlan(tag);
                set_u16(
                    frame.buffer.as_mut(),
                    field::INNER_ETHERTYPE.start,
                    self.ethertype.into(),
                );
            }
            None => frame.set_tpid(self.ethertype.into()),
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    // An untagged IPv4 frame header followed by 4 payload bytes.
    static UNTAGGED: [u8; 18] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // dst
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // src
        0x08, 0x00, // IPv4
        0x45, 0x00, 0x00, 0x54,
    ];

    // A tagged frame: PCP 3, VID 100, inner ethertype IPv6.
    static TAGGED: [u8; 22] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // dst (broadcast)
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56, // src
        0x81, 0x00, 0x60, 0x64, // 802.1Q, TCI
        0x86, 0xdd, // IPv6
        0x60, 0x00, 0x00, 0x00,
    ];

    #[test]
    fn parse_untagged() {
        let f = Frame::new_checked(&UNTAGGED[..]).unwrap();
        assert!(!f.is_tagged());
        assert_eq!(f.header_len(), HEADER_LEN);
        assert_eq!(f.dst_addr(), EthernetAddress([2, 0, 0, 0, 0, 2]));
        assert_eq!(f.src_addr(), EthernetAddress([2, 0, 0, 0, 0, 1]));
        assert_eq!(f.ethertype(), EthernetProtocol::Ipv4);
        assert_eq!(f.vlan(), None);
        assert_eq!(f.payload(), &[0x45, 0x00, 0x00, 0x54]);
    }

    #[test]
    fn parse_tagged() {
        let f = Frame::new_checked(&TAGGED[..]).unwrap();
        assert!(f.is_tagged());
        assert_eq!(f.header_len(), VLAN_HEADER_LEN);
        assert_eq!(
            f.vlan(),
            Some(VlanTag {
                pcp: 3,
                dei: false,
                vid: 100
            })
        );
        assert_eq!(f.ethertype(), EthernetProtocol::Ipv6);
        assert_eq!(f.payload(), &[0x60, 0, 0, 0]);
    }

    #[test]
    fn truncated() {
        assert_eq!(
            Frame::new_checked(&UNTAGGED[..13]),
            Err(Malformed::TruncatedEthernet)
        );
        assert!(Frame::new_checked(&UNTAGGED[..14]).is_ok());
        assert_eq!(
            Frame::new_checked(&TAGGED[..17]),
            Err(Malformed::TruncatedEthernet)
        );
        assert!(Frame::new_checked(&TAGGED[..18]).is_ok());
    }

    fn roundtrip(bytes: &[u8]) {
        let f = Frame::new_checked(bytes).unwrap();
        let repr = Repr::parse(&f).unwrap();
        let mut out = vec![0xa5u8; bytes.len()];
        let mut g = Frame::new_unchecked(&mut out[..]);
        repr.emit(&mut g);
        g.payload_mut().copy_from_slice(f.payload());
        assert_eq!(&out[..], bytes);
        assert_eq!(
            Repr::parse(&Frame::new_checked(&out[..]).unwrap()).unwrap(),
            repr
        );
    }

    #[test]
    fn emit_parse_roundtrip() {
        roundtrip(&UNTAGGED);
        roundtrip(&TAGGED);
    }

    #[test]
    fn emit_untagged_over_stale_tag() {
        // Reusing a buffer that held a tagged frame must not leave the tag behind.
        let mut buf = TAGGED;
        let repr = Repr {
            src_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
            dst_addr: EthernetAddress([2, 0, 0, 0, 0, 2]),
            vlan: None,
            ethertype: EthernetProtocol::Arp,
        };
        repr.emit(&mut Frame::new_unchecked(&mut buf[..]));
        let f = Frame::new_checked(&buf[..]).unwrap();
        assert_eq!(Repr::parse(&f).unwrap(), repr);
    }

    #[test]
    fn vlan_tci() {
        let t = VlanTag {
            pcp: 7,
            dei: true,
            vid: 4095,
        };
        assert_eq!(t.tci(), 0xffff);
        assert_eq!(VlanTag::from_tci(0xffff), t);
        assert_eq!(
            VlanTag::from_tci(0x6064),
            VlanTag {
                pcp: 3,
                dei: false,
                vid: 100
            }
        );
    }
}
