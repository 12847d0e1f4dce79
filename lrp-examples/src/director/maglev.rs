//! Maglev consistent hashing (Eisenbud et al., NSDI 2016, section 3.4) and the stable,
//! keyed hash every director computes identically.
//!
//! # The table
//!
//! A [`MaglevTable`] is an array of `M` entries (`M` prime), each naming a backend.
//! Every backend `i` has a *preference list*, a permutation of `0..M` given by two hashes
//! of its identity: `offset = h1(id) mod M`, `skip = h2(id) mod (M − 1) + 1`, and the
//! `j`-th preference `(offset + j·skip) mod M`. Because `M` is prime and `1 ≤ skip < M`,
//! the list visits every entry exactly once. Population goes in rounds: in each round
//! every backend takes its next preferred entry that is still empty, until all `M`
//! entries are taken. A flow is sent to `table[hash(flow) mod M]`.
//!
//! * **Balance.** With equal weights every backend takes one entry per round, so each ends
//!   up with `⌊M/N⌋` or `⌈M/N⌉` entries: the imbalance is below `N/M` (under 1% once
//!   `M > 100·N`).
//! * **Weights** follow Katran's `MaglevV2`: per round, backend `i` adds its weight to a
//!   running credit and takes one entry each time the credit reaches the largest weight
//!   (subtracting it). The heaviest backend takes one entry per round, a backend of half
//!   its weight one every other round, so shares are proportional to weights. Weight 0
//!   takes no entry (a drained server receives no flows).
//! * **Minimal disruption.** When a backend leaves, its entries are redistributed and
//!   the others mostly keep theirs: a small fraction of entries (a few per cent at most
//!   with `M ≫ N`) change between surviving backends, because a preference a backend
//!   lost to the departed one early in population now shifts later choices.
//! * **Determinism.** The table depends only on `M`, the seed and the set of
//!   `(identity, weight)` pairs — backends are placed in a canonical order (sorted by
//!   identity), not in the order they were added, and no randomness is involved.
//!   Several directors behind ECMP with the same configuration build identical tables
//!   and send every flow to the same real server without sharing state.
//!
//! # Hashing: [`StableHash`]
//!
//! SipHash-2-4 over explicitly encoded bytes (addresses in network order, never
//! `std::hash::Hash` output, whose encoding is not promised to be stable), keyed by a
//! configured 128-bit seed. `ahash` is *not* usable here: its output differs between
//! CPUs (AES instructions or not) and versions, and the whole point is that every
//! director agrees. A **fixed** seed is acceptable for Maglev because the table has a
//! fixed size and no chains: an attacker who knew the seed could at most steer their own
//! flows to one server — it cannot make a lookup slower. (Keep the seed secret anyway,
//! shared by the directors, to deny even that.) The connection table is different: it is
//! a hash table whose probe lengths grow with collisions, so it uses a random key per
//! process (see [`conntrack`](super::conntrack)).

use std::net::{IpAddr, SocketAddr};

use lrp_core::flow::FlowKey;

use super::scheduler::SchedulerError;

/// The default Maglev table size: prime, and more than 100 × the servers of any
/// reasonable service (up to 655 servers at under 1% imbalance).
pub const DEFAULT_TABLE_SIZE: u32 = 65_537;

/// The default hash seed: an arbitrary constant (the first 32 hex digits of π's
/// fractional part). Directors that must agree only need the *same* seed.
pub const DEFAULT_SEED: [u64; 2] = [0x243f_6a88_85a3_08d3, 0x1319_8a2e_0370_7344];

/// Whether `n` is prime (trial division; `n` is a table size, at most a few million).
pub const fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    if n < 4 {
        return true;
    }
    if n.is_multiple_of(2) {
        return false;
    }
    let n = n as u64;
    let mut d = 3u64;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 2;
    }
    true
}

/// The smallest prime `>= n` (`n` at most `u32::MAX - 4`, far above any table size).
pub const fn next_prime(n: u32) -> u32 {
    let mut p = if n < 2 { 2 } else { n };
    while !is_prime(p) {
        p += 1;
    }
    p
}

/// SipHash-2-4 with a 128-bit key: the keyed hash all directors compute identically.
///
/// Stable by construction: the algorithm is fixed (Aumasson and Bernstein's reference
/// SipHash-2-4; the test vector of the paper is checked in the tests) and callers feed it
/// explicitly encoded bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StableHash {
    k0: u64,
    k1: u64,
}

impl StableHash {
    /// A hasher keyed by `seed`.
    pub const fn new(seed: [u64; 2]) -> Self {
        StableHash {
            k0: seed[0],
            k1: seed[1],
        }
    }

    /// A hasher whose key is this one's with both halves xored by `tweak`: independent
    /// hash functions (offset, skip, flow) from one configured seed.
    pub const fn derive(self, tweak: u64) -> Self {
        StableHash {
            k0: self.k0 ^ tweak,
            k1: self.k1 ^ tweak.rotate_left(32),
        }
    }

    /// SipHash-2-4 of `data`.
    #[inline]
    pub fn hash(&self, data: &[u8]) -> u64 {
        let mut v = [
            self.k0 ^ 0x736f_6d65_7073_6575,
            self.k1 ^ 0x646f_7261_6e64_6f6d,
            self.k0 ^ 0x6c79_6765_6e65_7261,
            self.k1 ^ 0x7465_6462_7974_6573,
        ];
        let mut chunks = data.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let m = u64::from_le_bytes(word);
            v[3] ^= m;
            sip_round(&mut v);
            sip_round(&mut v);
            v[0] ^= m;
        }
        let mut last = [0u8; 8];
        let tail = chunks.remainder();
        last[..tail.len()].copy_from_slice(tail);
        // The length byte: the message length mod 256 (SipHash's definition).
        last[7] = data.len() as u8;
        let b = u64::from_le_bytes(last);
        v[3] ^= b;
        sip_round(&mut v);
        sip_round(&mut v);
        v[0] ^= b;
        v[2] ^= 0xff;
        for _ in 0..4 {
            sip_round(&mut v);
        }
        v[0] ^ v[1] ^ v[2] ^ v[3]
    }
}

#[inline(always)]
fn sip_round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13) ^ v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16) ^ v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21) ^ v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17) ^ v[2];
    v[2] = v[2].rotate_left(32);
}

/// A byte buffer for the canonical encoding of addresses and flows (at most 39 bytes:
/// protocol, two IPv6 addresses with their family bytes, two ports).
pub(crate) struct Encoded {
    buf: [u8; 40],
    len: usize,
}

impl Encoded {
    #[inline]
    pub(crate) const fn new() -> Self {
        Encoded {
            buf: [0; 40],
            len: 0,
        }
    }

    #[inline]
    fn push(&mut self, bytes: &[u8]) {
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    /// Appends an IP address: a family byte (4 or 6), then the address in network order.
    #[inline]
    pub(crate) fn ip(mut self, ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(a) => {
                self.push(&[4]);
                self.push(&a.octets());
            }
            IpAddr::V6(a) => {
                self.push(&[6]);
                self.push(&a.octets());
            }
        }
        self
    }

    /// Appends a port (or any u16) in network order.
    #[inline]
    pub(crate) fn port(mut self, port: u16) -> Self {
        self.push(&port.to_be_bytes());
        self
    }

    /// Appends one byte.
    #[inline]
    pub(crate) fn byte(mut self, b: u8) -> Self {
        self.push(&[b]);
        self
    }

    #[inline]
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// What part of a flow picks its Maglev entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FlowHash {
    /// The whole 5-tuple (protocol, client address and port, virtual address and port):
    /// the finest spread, and what Maglev and Katran do. Different connections of one
    /// client may go to different servers.
    #[default]
    FiveTuple,
    /// The client address only: every connection of a client goes to the same server
    /// while the server set is unchanged — stateless persistence, across directors too.
    /// Coarser spread (a large NAT behind one address is one flow).
    SourceAddr,
}

/// The hash functions of a Maglev table, all derived from one seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MaglevHashes {
    offset: StableHash,
    skip: StableHash,
    flow: StableHash,
}

impl MaglevHashes {
    pub(crate) const fn new(seed: [u64; 2]) -> Self {
        let base = StableHash::new(seed);
        MaglevHashes {
            offset: base.derive(0x6f66_6673_6574_0001),
            skip: base.derive(0x736b_6970_0000_0002),
            flow: base.derive(0x666c_6f77_0000_0003),
        }
    }

    /// The hash of a flow under `mode` (also what source hashing uses, with
    /// [`FlowHash::SourceAddr`]).
    #[inline]
    pub(crate) fn flow(&self, flow: &FlowKey, mode: FlowHash) -> u64 {
        let enc = match mode {
            FlowHash::FiveTuple => Encoded::new()
                .byte(flow.proto.ip_number())
                .ip(flow.src)
                .port(flow.sport)
                .ip(flow.dst)
                .port(flow.dport),
            FlowHash::SourceAddr => Encoded::new().ip(flow.src),
        };
        self.flow.hash(enc.bytes())
    }
}

/// A backend's identity for the permutation: its address and port.
fn identity(addr: SocketAddr) -> Encoded {
    Encoded::new().ip(addr.ip()).port(addr.port())
}

/// A populated Maglev lookup table of prime size.
///
/// Entries hold a backend's position in the slice given to [`MaglevTable::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaglevTable {
    /// `table[i]` = index of the backend owning entry `i`; empty when no backend has weight.
    table: Vec<u32>,
    size: u32,
    hashes: MaglevHashes,
}

const EMPTY: u32 = u32::MAX;

impl MaglevTable {
    /// Builds the table of `size` entries for `backends` — `(identity, weight)` pairs.
    /// Entries name positions in `backends`; give them in a canonical order (the
    /// [`Scheduler`](super::scheduler::Scheduler) sorts by address) so that the result
    /// does not depend on the order servers were added.
    ///
    /// Fails if `size` is not prime or not larger than the number of backends.
    ///
    /// Cost: `O(M · log M)` expected probes plus `O(N)` per round; about a millisecond for
    /// `M = 65537` (see the `director_sched` bench).
    pub fn new(
        size: u32,
        seed: [u64; 2],
        backends: &[(SocketAddr, u32)],
    ) -> Result<Self, SchedulerError> {
        if !is_prime(size) {
            return Err(SchedulerError::NotPrime(size));
        }
        if backends.len() >= size as usize {
            return Err(SchedulerError::TableTooSmall {
                size,
                servers: backends.len(),
            });
        }
        Ok(MaglevTable::build(size, seed, backends))
    }

    /// [`new`](Self::new) without the checks: `size` is prime and larger than
    /// `backends.len()` (the scheduler validates both).
    pub(crate) fn build(size: u32, seed: [u64; 2], backends: &[(SocketAddr, u32)]) -> Self {
        debug_assert!(is_prime(size));
        let hashes = MaglevHashes::new(seed);
        let m = size as usize;
        // (backend index, next preferred entry, skip, weight, credit)
        let mut live: Vec<(u32, u32, u32, u64, u64)> = backends
            .iter()
            .enumerate()
            .filter(|(_, &(_, w))| w > 0)
            .map(|(i, &(addr, w))| {
                let id = identity(addr);
                let offset = (hashes.offset.hash(id.bytes()) % u64::from(size)) as u32;
                let skip = (hashes.skip.hash(id.bytes()) % u64::from(size - 1)) as u32 + 1;
                (i as u32, offset, skip, u64::from(w), 0)
            })
            .collect();
        if live.is_empty() {
            return MaglevTable {
                table: Vec::new(),
                size,
                hashes,
            };
        }
        let max_weight = live.iter().map(|b| b.3).max().unwrap_or(1);
        let mut table = vec![EMPTY; m];
        let mut filled = 0usize;
        loop {
            for (index, next, skip, weight, credit) in live.iter_mut() {
                *credit += *weight;
                if *credit < max_weight {
                    continue;
                }
                *credit -= max_weight;
                let mut c = *next;
                // Terminates: the permutation visits every entry and `filled < m`.
                while table[c as usize] != EMPTY {
                    c = step(c, *skip, size);
                }
                table[c as usize] = *index;
                *next = step(c, *skip, size);
                filled += 1;
                if filled == m {
                    return MaglevTable {
                        table,
                        size,
                        hashes,
                    };
                }
            }
        }
    }

    /// The backend position for `flow` hashed by `mode`, or `None` when no backend has a
    /// weight.
    #[inline]
    pub fn lookup(&self, flow: &FlowKey, mode: FlowHash) -> Option<u32> {
        if self.table.is_empty() {
            return None;
        }
        let h = self.hashes.flow(flow, mode);
        Some(self.table[(h % u64::from(self.size)) as usize])
    }

    /// The table entries (backend positions); empty when no backend has a weight.
    pub fn entries(&self) -> &[u32] {
        &self.table
    }
}

/// `(c + skip) mod size` without overflow (`c, skip < size`).
#[inline]
fn step(c: u32, skip: u32, size: u32) -> u32 {
    let n = u64::from(c) + u64::from(skip);
    (if n >= u64::from(size) {
        n - u64::from(size)
    } else {
        n
    }) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siphash_reference_vector() {
        // The SipHash paper, appendix A: key 00..0f, message 00..0e.
        let k0 = u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]);
        let k1 = u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]);
        let msg: Vec<u8> = (0u8..15).collect();
        assert_eq!(StableHash::new([k0, k1]).hash(&msg), 0xa129_ca61_49be_45e5);
    }

    #[test]
    #[allow(deprecated)]
    fn siphash_matches_std_for_all_lengths() {
        use std::hash::Hasher;
        let data: Vec<u8> = (0u8..64).map(|i| i.wrapping_mul(37)).collect();
        for len in 0..data.len() {
            let mut std = std::hash::SipHasher::new_with_keys(7, 11);
            std.write(&data[..len]);
            assert_eq!(
                StableHash::new([7, 11]).hash(&data[..len]),
                std.finish(),
                "{len}"
            );
        }
    }

    #[test]
    fn primes() {
        assert!(is_prime(2) && is_prime(3) && is_prime(65_537) && is_prime(251));
        assert!(!is_prime(0) && !is_prime(1) && !is_prime(65_536) && !is_prime(65_535));
        assert_eq!(next_prime(100), 101);
        assert_eq!(next_prime(65_537), 65_537);
    }

    #[test]
    fn every_entry_is_filled_and_equal_weights_balance() {
        let backends: Vec<(SocketAddr, u32)> = (1..=7)
            .map(|i| (SocketAddr::from(([10, 0, 0, i], 80)), 1))
            .collect();
        let t = MaglevTable::build(1009, DEFAULT_SEED, &backends);
        let mut counts = [0usize; 7];
        for &e in t.entries() {
            counts[e as usize] += 1;
        }
        assert_eq!(counts.iter().sum::<usize>(), 1009);
        let (lo, hi) = (1009 / 7, 1009usize.div_ceil(7));
        assert!(counts.iter().all(|&c| c == lo || c == hi), "{counts:?}");
    }

    #[test]
    fn new_validates() {
        let b = [(SocketAddr::from(([10, 0, 0, 1], 80)), 1)];
        assert_eq!(
            MaglevTable::new(12, DEFAULT_SEED, &b),
            Err(SchedulerError::NotPrime(12))
        );
        assert!(MaglevTable::new(2, DEFAULT_SEED, &[b[0], b[0]]).is_err());
        let t = MaglevTable::new(13, DEFAULT_SEED, &b).unwrap();
        assert!(t.entries().iter().all(|&e| e == 0));
    }

    #[test]
    fn no_weight_no_table() {
        let backends = [(SocketAddr::from(([10, 0, 0, 1], 80)), 0)];
        let t = MaglevTable::build(13, DEFAULT_SEED, &backends);
        assert!(t.entries().is_empty());
    }
}
