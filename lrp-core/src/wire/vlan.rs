//! IEEE 802.1Q VLAN tag: the 4 bytes between an Ethernet header whose ethertype is
//! `0x8100` and the payload.
//!
//! Written here because smoltcp has no 802.1Q tag view; smoltcp's `EthernetFrame` and
//! `EthernetRepr` (ethertype [`TPID`]) carry the addresses, this [`Repr`] the tag:
//!
//! ```text
//! dst(6) src(6) 0x8100(2) | TCI(2) ethertype(2) | payload
//! smoltcp's EthernetFrame | vlan::Repr          |
//! ```
//!
//! A second tag (QinQ) is not looked through: the inner ethertype is then `0x8100`, which
//! the classifier reports as an other ethertype.

use super::{EthernetProtocol, Malformed, Result};

/// The Tag Protocol Identifier: the outer ethertype of a tagged frame.
pub const TPID: EthernetProtocol = EthernetProtocol::Unknown(0x8100);
/// Length of the tag (TCI and inner ethertype).
pub const TAG_LEN: usize = 4;

/// An 802.1Q tag: priority, drop eligibility, VLAN id, and the ethertype it wraps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Priority code point (3 bits, 0..=7).
    pub pcp: u8,
    /// Drop eligible indicator.
    pub dei: bool,
    /// VLAN identifier (12 bits, 0..=4095).
    pub vid: u16,
    /// The ethertype of the payload after the tag.
    pub ethertype: EthernetProtocol,
}

impl Repr {
    /// Parse the tag at the start of `tag` (an `EthernetFrame`'s payload);
    /// [`Malformed::TruncatedEthernet`] if it is shorter than [`TAG_LEN`].
    pub fn parse(tag: &[u8]) -> Result<Repr> {
        let Some(&[tci_hi, tci_lo, et_hi, et_lo]) = tag.first_chunk::<TAG_LEN>() else {
            return Err(Malformed::TruncatedEthernet);
        };
        let tci = u16::from_be_bytes([tci_hi, tci_lo]);
        Ok(Repr {
            pcp: (tci >> 13) as u8,
            dei: tci & 0x1000 != 0,
            vid: tci & 0x0fff,
            ethertype: EthernetProtocol::from(u16::from_be_bytes([et_hi, et_lo])),
        })
    }

    /// The tag length ([`TAG_LEN`]).
    pub const fn buffer_len(&self) -> usize {
        TAG_LEN
    }

    /// Write the tag into the first [`TAG_LEN`] bytes of `tag`. Out-of-range `pcp` and
    /// `vid` bits are masked off.
    pub fn emit(&self, tag: &mut [u8]) {
        let tci =
            (u16::from(self.pcp & 0x7) << 13) | (u16::from(self.dei) << 12) | self.vid & 0x0fff;
        tag[..2].copy_from_slice(&tci.to_be_bytes());
        tag[2..TAG_LEN].copy_from_slice(&u16::from(self.ethertype).to_be_bytes());
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use smoltcp::wire::{EthernetAddress, EthernetFrame, EthernetRepr};

    // A tagged frame: PCP 3, VID 100, inner ethertype IPv6, 4 payload bytes.
    static TAGGED: [u8; 22] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // dst (broadcast)
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56, // src
        0x81, 0x00, 0x60, 0x64, // 802.1Q, TCI
        0x86, 0xdd, // IPv6
        0x60, 0x00, 0x00, 0x00,
    ];

    const TAG: Repr = Repr {
        pcp: 3,
        dei: false,
        vid: 100,
        ethertype: EthernetProtocol::Ipv6,
    };

    #[test]
    fn parse_tagged_frame() {
        let f = EthernetFrame::new_checked(&TAGGED[..]).unwrap();
        assert_eq!(f.ethertype(), TPID);
        assert_eq!(Repr::parse(f.payload()), Ok(TAG));
        assert_eq!(&f.payload()[TAG_LEN..], &[0x60, 0, 0, 0]);
        assert_eq!(
            Repr::parse(&f.payload()[..3]),
            Err(Malformed::TruncatedEthernet)
        );
    }

    #[test]
    fn emit_tagged_frame() {
        let eth = EthernetRepr {
            src_addr: EthernetAddress([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]),
            dst_addr: EthernetAddress::BROADCAST,
            ethertype: TPID,
        };
        let mut out = [0xa5u8; 22];
        let mut f = EthernetFrame::new_unchecked(&mut out[..]);
        eth.emit(&mut f);
        TAG.emit(f.payload_mut());
        f.payload_mut()[TAG_LEN..].copy_from_slice(&TAGGED[18..]);
        assert_eq!(out, TAGGED);
    }

    #[test]
    fn tci_bits() {
        let all = Repr {
            pcp: 7,
            dei: true,
            vid: 4095,
            ethertype: EthernetProtocol::Ipv4,
        };
        let mut buf = [0u8; TAG_LEN];
        all.emit(&mut buf);
        assert_eq!(buf, [0xff, 0xff, 0x08, 0x00]);
        assert_eq!(Repr::parse(&buf), Ok(all));
        let wide = Repr {
            pcp: 0xff,
            vid: 0xffff,
            ..all
        };
        wide.emit(&mut buf);
        assert_eq!(Repr::parse(&buf), Ok(all));
    }
}
