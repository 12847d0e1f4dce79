//! Wire formats: typed views over frame bytes, checksums, and the one-pass classifier.
//!
//! This module deals with the packet *representation*, in the style of smoltcp's `wire`:
//!
//! * A **view** (`Packet<T: AsRef<[u8]>>`, [`ethernet::Frame`]) wraps a byte buffer and
//!   reads or writes header fields in place, without copying. The buffer can be a
//!   `&[u8]` borrowed from a UMEM frame, a `&mut [u8]` being rewritten, or a `Vec<u8>`.
//! * A **`Repr`** is a compact, owned (or borrowing) representation of one header, with
//!   `Repr::parse(&view)` and `Repr::emit(&self, &mut view)`. For the formats written here
//!   a `Repr` keeps every field that a valid header can carry, so `emit(parse(bytes))`
//!   reproduces the bytes exactly (unit tests check both directions).
//!
//! | layer | module | source |
//! |---|---|---|
//! | Ethernet II, one 802.1Q tag | [`ethernet`] | written here (smoltcp has no VLAN tag) |
//! | ARP (Ethernet/IPv4) | [`arp`] | smoltcp's `ArpPacket`/`ArpRepr`, re-exported |
//! | IPv4, options and fragment fields | [`ipv4`] | written here (smoltcp's `Ipv4Repr` drops ident, flags, options) |
//! | IPv6 and its extension-header walk | [`ipv6`] | written here (bounded walk, fragment header) |
//! | UDP | [`udp`] | written here |
//! | TCP, all flags, raw options | [`tcp`] | written here; options parsed by smoltcp's `TcpOption` |
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
//! `core::result::Result<T, Malformed>`. (The re-exported smoltcp views report
//! `smoltcp::wire::Error`; [`arp::parse`] maps it to [`Malformed::BadArp`].)
//!
//! # The no-panic contract
//!
//! Wire input is attacker input. The rules, the same as smoltcp's:
//!
//! * [`classify::classify`] and [`verify()`] never panic, on any byte sequence, and never
//!   allocate. (Property tests and the `classify` fuzz target check this.)
//! * A view made by `new_checked(buffer)` (or `new_unchecked` followed by a successful
//!   `check_len()`) validates every length once; after that no getter, no setter of a
//!   fixed-size field, no `payload()` and no `Repr::parse` panics. Setters that change a
//!   length (`set_header_len`, `set_total_len`, `set_payload_len`, `set_len`, ...) say so
//!   in their docs: they invalidate the check.
//! * `new_unchecked` exists for **emission** into a buffer the caller sized with
//!   `Repr::buffer_len()` (plus payload). Never use it on received bytes: its accessors
//!   index the buffer directly and panic if it is too short.
//! * `Repr::emit` never panics when the buffer is at least as long as the `Repr` says
//!   (`buffer_len()`, plus the payload length where the `Repr` has one).
//! * Parsing verifies lengths and structure but no checksum. Checksums are protocol work
//!   and are verified lazily, by the receiver, with [`verify()`] or the views'
//!   `verify_checksum` methods.
//! * The incremental updates in [`checksum`] and the rewrites in [`nat`] are plain
//!   arithmetic on fixed-size values; [`nat`] checks its offsets against the frame and
//!   returns an error instead of indexing out of bounds.

//! # Tests
//!
//! Each format's unit tests hold captured-style byte vectors that parse and re-emit in
//! both directions; the vectors and the fuzz seed frames are generated, with checksums
//! computed independently of this crate, by `fuzz/seeds.py` (`--rust` prints the
//! arrays). `tests/wire_props.rs` (proptest), `tests/wire_malformed.rs` and
//! `tests/wire_fuzz_corpus.rs` (replays `fuzz/corpus`) cover the rest.

pub mod arp;
pub mod checksum;
pub mod classify;
pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod nat;
pub mod tcp;
pub mod udp;
mod verify;

pub use crate::flow::Malformed;
pub use smoltcp::wire::{EthernetAddress, EthernetProtocol, IpProtocol};
pub use verify::verify;

/// Result of a wire check: the value, or the named reason the bytes are malformed.
pub type Result<T> = core::result::Result<T, Malformed>;

/// Byte ranges of header fields, as in smoltcp.
mod field {
    /// A fixed-position field.
    pub(crate) type Field = core::ops::Range<usize>;
}

/// Read a big-endian `u16` at `at`. Callers have checked `at + 2 <= buf.len()`.
#[inline(always)]
fn get_u16(buf: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([buf[at], buf[at + 1]])
}

/// Read a big-endian `u32` at `at`. Callers have checked `at + 4 <= buf.len()`.
#[inline(always)]
fn get_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

/// Write a big-endian `u16` at `at`. Callers have checked `at + 2 <= buf.len()`.
#[inline(always)]
fn set_u16(buf: &mut [u8], at: usize, value: u16) {
    buf[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

/// Write a big-endian `u32` at `at`. Callers have checked `at + 4 <= buf.len()`.
#[inline(always)]
fn set_u32(buf: &mut [u8], at: usize, value: u32) {
    buf[at..at + 4].copy_from_slice(&value.to_be_bytes());
}

/// Copy a fixed-size array out of `buf` at `at`. Callers have checked the length.
#[inline(always)]
fn get_array<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&buf[at..at + N]);
    out
}
