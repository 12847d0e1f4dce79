//! Wire formats: smoltcp's typed views, and what smoltcp does not have — the one-pass
//! classifier, lazy checksum verification, incremental checksums and in-place NAT.
//!
//! Packet *representation* is smoltcp's `wire`, used directly (`smoltcp::wire`):
//!
//! * A **view** (`EthernetFrame`, `Ipv4Packet`, `UdpPacket`, ... over `T: AsRef<[u8]>`)
//!   wraps a byte buffer and reads or writes header fields in place, without copying.
//!   The buffer can be a `&[u8]` borrowed from a UMEM frame, a `&mut [u8]` being
//!   rewritten, or a `Vec<u8>`.
//! * A **`Repr`** (`EthernetRepr`, `Ipv4Repr`, `UdpRepr`, ...) is a compact
//!   representation of one header, with `Repr::parse(&view)` and `Repr::emit(&mut view)`.
//!   smoltcp's `Ipv4Repr` and `TcpRepr` keep what an endpoint needs; fields they drop
//!   (IPv4 ident, flags and options; TCP ECE/CWR and raw options) are read and written
//!   through the views' accessors.
//!
//! This module adds the pieces smoltcp lacks; each module's doc says why in a sentence.
//!
//! | layer | module | source |
//! |---|---|---|
//! | Ethernet II | — | smoltcp's `EthernetFrame`/`EthernetRepr` |
//! | one 802.1Q VLAN tag | [`vlan`] | written here (smoltcp has no VLAN tag) |
//! | ARP (Ethernet/IPv4) | [`arp`] | smoltcp's `ArpPacket`/`ArpRepr`, re-exported |
//! | IPv4 | — | smoltcp's `Ipv4Packet`/`Ipv4Repr` |
//! | IPv6 fixed header | — | smoltcp's `Ipv6Packet`/`Ipv6Repr` |
//! | IPv6 extension-header walk | [`ipv6`] | written here (bounded walk over smoltcp's `Ipv6ExtHeader`/`Ipv6FragmentHeader`) |
//! | UDP | — | smoltcp's `UdpPacket`/`UdpRepr` |
//! | TCP | — | smoltcp's `TcpPacket`/`TcpRepr` |
//! | ICMPv4/ICMPv6 (echo) | [`icmp`] | smoltcp's `Icmpv4Packet`/`Icmpv6Packet` and Reprs, re-exported |
//! | Internet checksum, full and incremental (RFC 1071, RFC 1624) | [`checksum`] | written here |
//! | in-place NAT rewrites with incremental checksum fixes | [`nat`] | written here |
//! | early demultiplexing: one-pass classification | [`classify`] | written here |
//! | lazy validation of checksums | [`verify()`] | written here |
//!
//! # Error vocabulary
//!
//! Every check in this module reports a [`Malformed`] reason, the same named reasons that
//! [`classify::classify`] returns and that the receive path counts. [`Result`] is
//! `core::result::Result<T, Malformed>`. (smoltcp's views report `smoltcp::wire::Error`;
//! [`arp::parse`] maps it to [`Malformed::BadArp`].)
//!
//! # The no-panic contract
//!
//! Wire input is attacker input. The rules, the same as smoltcp's:
//!
//! * [`classify::classify`] and [`verify()`] never panic, on any byte sequence, and never
//!   allocate. (Property tests and the `classify` fuzz target check this.)
//! * [`ipv6::walk_ext_headers`] and [`vlan::Repr::parse`] never panic, on any byte
//!   sequence; they check every length before they read.
//! * A smoltcp view made by `new_checked(buffer)` (or `new_unchecked` followed by a
//!   successful `check_len()`) validates every length once; after that no getter, no
//!   setter of a fixed-size field, no `payload()` and no `Repr::parse` panics. Setters
//!   that change a length (`set_header_len`, `set_total_len`, `set_payload_len`,
//!   `set_len`, ...) invalidate the check.
//! * `new_unchecked` exists for **emission** into a buffer the caller sized with
//!   `Repr::buffer_len()` (plus payload). Never use it on received bytes: its accessors
//!   index the buffer directly and panic if it is too short.
//! * `Repr::emit` (smoltcp's, and [`vlan::Repr::emit`]) never panics when the buffer is at
//!   least as long as the `Repr` says (`buffer_len()`, plus the payload length where the
//!   `Repr` has one).
//! * Parsing here verifies lengths and structure but no checksum. Checksums are protocol
//!   work and are verified lazily, by the receiver, with [`verify()`].
//! * The incremental updates in [`checksum`] and the rewrites in [`nat`] are plain
//!   arithmetic on fixed-size values; [`nat`] checks its offsets against the frame and
//!   returns an error instead of indexing out of bounds.
//!
//! # Tests
//!
//! Each module's unit tests hold captured-style byte vectors, read with smoltcp's views
//! where a frame needs them; the vectors and the fuzz seed frames are generated, with
//! checksums computed independently of this crate, by `fuzz/seeds.py` (`--rust` prints
//! the arrays). `tests/wire_props.rs` (proptest, frames built with smoltcp's `Repr::emit`),
//! `tests/wire_malformed.rs` and `tests/wire_fuzz_corpus.rs` (replays `fuzz/corpus`)
//! cover the rest.

pub mod arp;
pub mod checksum;
pub mod classify;
pub mod icmp;
pub mod ipv6;
pub mod nat;
mod verify;
pub mod vlan;

pub use crate::flow::Malformed;
pub use smoltcp::wire::{EthernetAddress, EthernetProtocol, IpProtocol};
pub use verify::verify;

/// Result of a wire check: the value, or the named reason the bytes are malformed.
pub type Result<T> = core::result::Result<T, Malformed>;
