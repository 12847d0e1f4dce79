//! The BPF map layouts of `lrp-net/bpf/lrp_xdp.h`, mirrored as `#[repr(C)]` structs.
//!
//! Every struct has a compile-time size assertion against the C layout, explicit (zeroed)
//! padding, and implements [`aya::Pod`] so it can be a map key or value. The loader also
//! checks every map's key and value size in the loaded object against these structs
//! (aya refuses a typed map whose sizes differ), so an object built from a different
//! header is rejected at load time instead of misreading memory.
//!
//! Conventions (as in the header): addresses are 16 bytes, IPv4 in the first 4 with the
//! rest zero and `family` saying which; ports are in network byte order, as on the wire.
//!
//! This is one of the few modules of `lrp-net` with `unsafe`: the `unsafe impl Pod`s.

use std::net::IpAddr;

use lrp_core::demux::{ListenerKey, SourceKey};
use lrp_core::flow::{FlowKey, Proto};

/// Default number of slots (`LRP_MAX_SLOTS`): XSKMAP, gate and per-slot stats entries.
pub const DEFAULT_MAX_SLOTS: u32 = 64;
/// Default capacity of the exact 5-tuple map (`LRP_MAX_FLOWS`).
pub const DEFAULT_MAX_FLOWS: u32 = 16384;
/// Default capacity of the listener map (`LRP_MAX_LISTENERS`).
pub const DEFAULT_MAX_LISTENERS: u32 = 1024;
/// Default capacity of the host map (`LRP_MAX_HOSTS`).
pub const DEFAULT_MAX_HOSTS: u32 = 64;
/// Default capacity of the source map (`LRP_MAX_SOURCES`).
pub const DEFAULT_MAX_SOURCES: u32 = 1024;
/// Receive queues the dispatcher can serve (`LRP_MAX_QUEUES`): entries of its program
/// array and of its per-queue counter of frames on unserved queues.
pub const MAX_QUEUES: u32 = 64;

/// `LRP_NO_SLOT`: "no channel" in a [`RawListener`].
pub const NO_SLOT: u32 = u32::MAX;

/// `LRP_FAMILY_ANY`: the family of the wildcard listener key.
pub const FAMILY_ANY: u8 = 0;
/// `LRP_FAMILY_V4`.
pub const FAMILY_V4: u8 = 4;
/// `LRP_FAMILY_V6`.
pub const FAMILY_V6: u8 = 6;

/// `LRP_MODE_NI`: the program demultiplexes to per-endpoint slots.
pub const MODE_NI: u32 = 0;
/// `LRP_MODE_SOFT`: every frame a rule claims goes to one slot (userspace demultiplexes).
pub const MODE_SOFT: u32 = 1;

/// `XDP_DROP`.
pub const XDP_DROP: u32 = 1;
/// `XDP_PASS`.
pub const XDP_PASS: u32 = 2;

/// `LRP_MALFORMED_REASONS`: the length of [`RawGlobalStats::malformed`], indexed like
/// `lrp_core::flow::Malformed::ALL`.
pub const MALFORMED_REASONS: usize = 11;

/// `struct lrp_config`: the single entry of the `config` array map.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RawConfig {
    /// [`MODE_NI`] or [`MODE_SOFT`].
    pub mode: u32,
    /// [`XDP_DROP`] drops unmatched frames; anything else passes them to the kernel.
    pub default_action: u32,
    /// SOFT mode: the slot that receives every frame a rule claims.
    pub soft_slot: u32,
    /// Zero.
    pub reserved: u32,
}

/// `struct lrp_flow_key`: key of the exact 5-tuple map `flows` (value: slot, `u32`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RawFlowKey {
    /// Source address (the remote peer for a received frame).
    pub src: [u8; 16],
    /// Destination address (the local side).
    pub dst: [u8; 16],
    /// Source port, network byte order.
    pub sport: [u8; 2],
    /// Destination port, network byte order.
    pub dport: [u8; 2],
    /// IP protocol number (6 or 17).
    pub proto: u8,
    /// [`FAMILY_V4`] or [`FAMILY_V6`].
    pub family: u8,
    /// Zero.
    pub pad: [u8; 2],
}

/// `struct lrp_listener_key`: key of the `listeners` map.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RawListenerKey {
    /// Local address; all zero for the wildcard.
    pub addr: [u8; 16],
    /// Local port, network byte order.
    pub port: [u8; 2],
    /// IP protocol number.
    pub proto: u8,
    /// [`FAMILY_V4`], [`FAMILY_V6`], or [`FAMILY_ANY`] for the wildcard.
    pub family: u8,
}

/// `struct lrp_listener`: value of the `listeners` map.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RawListener {
    /// Slot for the listener's traffic, or [`NO_SLOT`] (default action).
    pub slot: u32,
    /// Slot for TCP connection requests (SYN without ACK), or [`NO_SLOT`].
    pub syn_slot: u32,
}

/// `struct lrp_source_key`: key of the `sources` map (value: slot, `u32`). Same layout as
/// [`RawListenerKey`], without a wildcard.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RawSourceKey {
    /// Remote address: the frame's source address.
    pub addr: [u8; 16],
    /// Remote port: the frame's source port, network byte order.
    pub port: [u8; 2],
    /// IP protocol number.
    pub proto: u8,
    /// [`FAMILY_V4`] or [`FAMILY_V6`].
    pub family: u8,
}

/// `struct lrp_host_key`: key of the `hosts` map (value: slot, `u32`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RawHostKey {
    /// The local address.
    pub addr: [u8; 16],
    /// [`FAMILY_V4`] or [`FAMILY_V6`].
    pub family: u8,
    /// Zero.
    pub pad: [u8; 3],
}

/// `struct lrp_slot_stats`: per-CPU, per-slot outcome counters.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RawSlotStats {
    /// Frames redirected to the slot's socket (`bpf_redirect_map` said `XDP_REDIRECT`).
    pub redirected: u64,
    /// Frames dropped at the slot's closed gate, before any copy.
    pub gate_drops: u64,
    /// Frames for the slot while no socket was in its XSKMAP entry (default action).
    pub no_socket: u64,
}

/// `struct lrp_global_stats`: per-CPU counters not tied to a slot.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RawGlobalStats {
    /// Unmatched frames passed to the kernel.
    pub passed: u64,
    /// Unmatched frames dropped (default action drop).
    pub dropped_default: u64,
    /// Frames whose map entry named a slot beyond the maps (default action).
    pub bad_slot: u64,
    /// Malformed frames dropped, by `lrp_core::flow::Malformed` index.
    pub malformed: [u64; MALFORMED_REASONS],
    /// Slots chosen by the exact table.
    pub hit_exact: u64,
    /// Slots chosen as a listener's SYN channel.
    pub hit_syn: u64,
    /// Slots chosen by a listener.
    pub hit_listener: u64,
    /// Slots chosen by the host table.
    pub hit_host: u64,
    /// Frames sent to the SOFT-mode slot.
    pub hit_soft: u64,
    /// Non-first IP fragments (default action).
    pub fragments: u64,
    /// Slots chosen by the source table.
    pub hit_source: u64,
}

const _: () = {
    assert!(std::mem::size_of::<RawConfig>() == 16);
    assert!(std::mem::size_of::<RawFlowKey>() == 40);
    assert!(std::mem::size_of::<RawListenerKey>() == 20);
    assert!(std::mem::size_of::<RawListener>() == 8);
    assert!(std::mem::size_of::<RawSourceKey>() == 20);
    assert!(std::mem::size_of::<RawHostKey>() == 20);
    assert!(std::mem::size_of::<RawSlotStats>() == 24);
    assert!(std::mem::size_of::<RawGlobalStats>() == 8 * (3 + MALFORMED_REASONS + 7));
    // Ports are byte arrays, so the keys have alignment 1 where C has 2; sizes and
    // offsets are identical, and the kernel copies keys as bytes.
    assert!(std::mem::align_of::<RawFlowKey>() == 1);
    assert!(std::mem::align_of::<RawListenerKey>() == 1);
    assert!(std::mem::align_of::<RawSourceKey>() == 1);
    assert!(std::mem::align_of::<RawHostKey>() == 1);
};

// SAFETY: each type below is `#[repr(C)]`, `Copy`, made only of integers and integer
// arrays with explicit padding fields (the size assertions above prove there is no
// implicit padding), so every bit pattern is a valid value and no uninitialized byte is
// ever handed to the kernel.
unsafe impl aya::Pod for RawConfig {}
// SAFETY: see `RawConfig`.
unsafe impl aya::Pod for RawFlowKey {}
// SAFETY: see `RawConfig`.
unsafe impl aya::Pod for RawListenerKey {}
// SAFETY: see `RawConfig`.
unsafe impl aya::Pod for RawListener {}
// SAFETY: see `RawConfig`.
unsafe impl aya::Pod for RawSourceKey {}
// SAFETY: see `RawConfig`.
unsafe impl aya::Pod for RawHostKey {}
// SAFETY: see `RawConfig`.
unsafe impl aya::Pod for RawSlotStats {}
// SAFETY: see `RawConfig`.
unsafe impl aya::Pod for RawGlobalStats {}

/// The 16-byte address and family of an IP address, as the maps store it.
pub fn encode_addr(addr: IpAddr) -> ([u8; 16], u8) {
    let mut out = [0u8; 16];
    match addr {
        IpAddr::V4(a) => {
            out[..4].copy_from_slice(&a.octets());
            (out, FAMILY_V4)
        }
        IpAddr::V6(a) => (a.octets(), FAMILY_V6),
    }
}

const fn proto_number(proto: Proto) -> u8 {
    proto.ip_number()
}

impl From<&FlowKey> for RawFlowKey {
    /// The map key of a 5-tuple as the frame carries it (`src` = remote peer).
    ///
    /// A key whose `src` and `dst` are of different families can never match a frame;
    /// it is encoded with the family of `dst`.
    fn from(k: &FlowKey) -> Self {
        let (src, _) = encode_addr(k.src);
        let (dst, family) = encode_addr(k.dst);
        RawFlowKey {
            src,
            dst,
            sport: k.sport.to_be_bytes(),
            dport: k.dport.to_be_bytes(),
            proto: proto_number(k.proto),
            family,
            pad: [0; 2],
        }
    }
}

impl From<&ListenerKey> for RawListenerKey {
    /// `addr: None` (every local address) becomes the wildcard key: family
    /// [`FAMILY_ANY`], all-zero address.
    fn from(k: &ListenerKey) -> Self {
        let (addr, family) = match k.addr {
            Some(a) => encode_addr(a),
            None => ([0; 16], FAMILY_ANY),
        };
        RawListenerKey {
            addr,
            port: k.port.to_be_bytes(),
            proto: proto_number(k.proto),
            family,
        }
    }
}

impl From<&SourceKey> for RawSourceKey {
    fn from(k: &SourceKey) -> Self {
        let (addr, family) = encode_addr(k.addr);
        RawSourceKey {
            addr,
            port: k.port.to_be_bytes(),
            proto: proto_number(k.proto),
            family,
        }
    }
}

impl From<IpAddr> for RawHostKey {
    fn from(a: IpAddr) -> Self {
        let (addr, family) = encode_addr(a);
        RawHostKey {
            addr,
            family,
            pad: [0; 3],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn flow_key_encoding_matches_the_header_conventions() {
        let k = FlowKey {
            proto: Proto::Udp,
            src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            sport: 0x1234,
            dport: 53,
        };
        let r = RawFlowKey::from(&k);
        assert_eq!(&r.src[..4], &[10, 0, 0, 1]);
        assert_eq!(&r.src[4..], &[0; 12]);
        assert_eq!(&r.dst[..4], &[10, 0, 0, 2]);
        assert_eq!(r.sport, [0x12, 0x34]);
        assert_eq!(r.dport, [0, 53]);
        assert_eq!((r.proto, r.family, r.pad), (17, FAMILY_V4, [0, 0]));
    }

    #[test]
    fn listener_wildcard_is_family_any_and_zero_address() {
        let w = RawListenerKey::from(&ListenerKey::any(Proto::Tcp, 80));
        assert_eq!(
            (w.addr, w.port, w.proto, w.family),
            ([0; 16], [0, 80], 6, FAMILY_ANY)
        );
        let v6 = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
        let s = RawListenerKey::from(&ListenerKey::new(Proto::Tcp, IpAddr::V6(v6), 443));
        assert_eq!(
            (s.addr, s.port, s.family),
            (v6.octets(), [1, 187], FAMILY_V6)
        );
    }

    #[test]
    fn malformed_indices_match_the_c_enum() {
        use lrp_core::flow::Malformed as M;
        // enum lrp_malformed in lrp_xdp.h.
        let c_order = [
            M::TruncatedEthernet,
            M::TruncatedIp,
            M::BadIpHeaderLen,
            M::BadIpVersion,
            M::BadIpTotalLen,
            M::BadIpv6ExtHeaders,
            M::TruncatedL4,
            M::BadTcpDataOffset,
            M::BadUdpLen,
            M::BadArp,
            M::BadChecksum,
        ];
        assert_eq!(M::ALL.len(), MALFORMED_REASONS);
        for (i, m) in c_order.iter().enumerate() {
            assert_eq!(m.index(), i, "{m:?}");
        }
    }

    #[test]
    fn source_key_encoding() {
        let v4 = RawSourceKey::from(&SourceKey::new(
            Proto::Udp,
            IpAddr::V4(Ipv4Addr::new(192, 168, 1, 10)),
            0x1f90,
        ));
        assert_eq!(&v4.addr[..4], &[192, 168, 1, 10]);
        assert_eq!(&v4.addr[4..], &[0; 12]);
        assert_eq!(
            (v4.port, v4.proto, v4.family),
            ([0x1f, 0x90], 17, FAMILY_V4)
        );
        let a = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x10);
        let v6 = RawSourceKey::from(&SourceKey::new(Proto::Tcp, IpAddr::V6(a), 443));
        assert_eq!(
            (v6.addr, v6.port, v6.proto, v6.family),
            (a.octets(), [1, 187], 6, FAMILY_V6)
        );
    }

    #[test]
    fn host_key_v4() {
        let h = RawHostKey::from(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)));
        assert_eq!(&h.addr[..4], &[192, 0, 2, 7]);
        assert_eq!((h.family, h.pad), (FAMILY_V4, [0; 3]));
    }
}
