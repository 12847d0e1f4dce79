//! The director's connection table: which real server each flow was given, and the
//! flow's TCP state, in expected O(1) from one to ten million entries within a fixed
//! memory budget.
//!
//! The LVS users' profile in `reference/` shows why this matters: a 4096-bucket chained
//! table holding a million connections spent 68% of the director's CPU in
//! `__ip_vs_conn_in_get`. Here the table is sized for its cap when it is built and never
//! rehashes to grow.
//!
//! # Layout and memory bound
//!
//! * A **slab** `Vec<Entry>` of exactly `max_entries` slots, allocated once. An entry
//!   holds the [`FlowKey`], the server, the state, the last activity time and the links
//!   of its state's expiry list: 64 bytes, one cache line (a compile-time assert checks
//!   it).
//! * An **index** — a `hashbrown` table of `u32` slab positions — allocated once for
//!   `2 × max_entries` elements, so it is never more than half full: probes stay short,
//!   a removal almost never leaves a tombstone, and when tombstones do use up the spare
//!   room hashbrown cleans them by rehashing *in place* (it only grows a table that is more
//!   than half full). The table therefore never reallocates, and there is no rehash storm
//!   on the way from 1 to 10M entries.
//!
//! Bytes per entry at the cap ([`ConnTable::bytes_per_entry`]):
//!
//! ```text
//! bytes_per_entry = size_of::<Entry>()                           (64)
//!                 + (size_of::<u32>() + 1) · buckets / max_entries    (index: slot + control byte)
//!                 + 16 / max_entries                             (hashbrown's trailing control group)
//! buckets         = next_power_of_two(2 · max_entries · 8 / 7)
//! ```
//!
//! so between 75.4 and 86.9 bytes (about 81 at 10M entries: 808 MB). Memory is
//! *reserved* at construction; the slab's pages are touched as entries are used.
//! [`ConnTableConfig::with_memory_cap`] picks the largest `max_entries` that fits a byte
//! budget. The per-server counters (a small map over server ids) are not included.
//!
//! # Keyed hashing
//!
//! The key is the client's 5-tuple, which **an attacker chooses**. The index hashes it
//! with [`ahash::RandomState`], keyed from the OS random source once per table, so nobody
//! can precompute keys that collide into one long probe sequence. (The schedulers' Maglev
//! hash, in contrast, must be the same on every director and uses a fixed seed; see
//! [`maglev`](super::maglev) for why that is safe there and not here.)
//!
//! # States and timeouts
//!
//! TCP entries move through IPVS's states, driven by [`ConnTable::on_segment`] with the
//! segment's flags and [`Direction`] (the director sees both directions in NAT mode, only
//! the client's in DR mode). Flags are considered in IPVS's order — RST, then SYN, then
//! FIN, then ACK:
//!
//! | segment | SYN_RECV | ESTABLISHED | FIN_WAIT | TIME_WAIT | CLOSE |
//! |---|---|---|---|---|---|
//! | RST (either way) | CLOSE | CLOSE | CLOSE | CLOSE | CLOSE |
//! | SYN without ACK from the client | SYN_RECV | ESTABLISHED | SYN_RECV¹ | SYN_RECV¹ | SYN_RECV¹ |
//! | FIN | FIN_WAIT | FIN_WAIT | TIME_WAIT if the *other* side sent the first FIN | TIME_WAIT | CLOSE |
//! | ACK from the client | ESTABLISHED | ESTABLISHED | FIN_WAIT | TIME_WAIT | CLOSE |
//!
//! ¹ the client reuses the 5-tuple for a new connection; refused (the state stays) if
//! the half-open bound is reached. Any other segment (a SYN-ACK, a server ACK) leaves
//! the state unchanged. UDP entries have the single state [`ConnState::Udp`].
//!
//! Each state has its own idle timeout ([`Timeouts`], IPVS's defaults: SYN_RECV 60 s,
//! ESTABLISHED 900 s, FIN_WAIT 120 s, TIME_WAIT 120 s, CLOSE 10 s, UDP 300 s). An entry
//! expires when `last_seen + timeout(state) <= now`; from then on lookups treat it as
//! absent, and [`ConnTable::expire`] reclaims it.
//!
//! # Expiry: one FIFO per state
//!
//! Each state has a doubly linked list through the slab, ordered by `last_seen`: a
//! packet moves its entry to the tail of its state's list, a state change to the tail
//! of the new state's list. Since all entries of a list share one timeout, the head is
//! always the next to expire: [`ConnTable::expire`] pops expired heads, with bounded
//! work per call (`budget` removals plus one look at each list's head) and exactly:
//! after a call with enough budget, every expired entry is gone and every other entry is
//! untouched. To keep hot flows from relinking on every packet, activity within
//! [`ConnTableConfig::touch_granularity`] of the recorded `last_seen` is not recorded
//! (default 10 ms; timeouts are seconds to minutes).
//!
//! # Full table, half-open bound
//!
//! Nothing is ever evicted early. [`ConnTable::insert`] refuses a new entry when the
//! table holds `max_entries` ([`InsertError::Full`]) or when it would be in SYN_RECV and
//! `max_half_open` entries already are ([`InsertError::HalfOpenFull`]): a SYN flood fills
//! at most `max_half_open` slots and never displaces established flows. The caller then
//! serves the flow without state, by consistent hashing
//! ([`Scheduler::consistent_pick`](super::scheduler::Scheduler::consistent_pick)), so
//! the flow still reaches the same server on every packet.
//!
//! # Time
//!
//! No clock is read: every call takes `now`, a `u64` of nanoseconds on a monotonic clock
//! of the caller's choosing. A `now` earlier than one already seen is treated as the
//! latest seen, which keeps the expiry lists ordered.

use std::fmt;
use std::mem::size_of;

use hashbrown::HashTable;
use lrp_core::flow::{FlowKey, TcpFlags};
use rustc_hash::FxHashMap;

use super::scheduler::{ServerId, ServerLoad};

/// One second in the table's time unit (nanoseconds).
pub const SECOND: u64 = 1_000_000_000;

/// The state of a connection-table entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum ConnState {
    /// The client's SYN was forwarded; the handshake has not completed (half-open).
    SynRecv,
    /// The client acknowledged: data flows.
    Established,
    /// One side sent a FIN.
    FinWait,
    /// Both sides sent a FIN.
    TimeWait,
    /// A RST was seen.
    Close,
    /// A UDP flow (no states; one timeout).
    Udp,
}

const STATES: usize = 6;

impl ConnState {
    /// Every state, in index order.
    pub const ALL: [ConnState; STATES] = [
        ConnState::SynRecv,
        ConnState::Established,
        ConnState::FinWait,
        ConnState::TimeWait,
        ConnState::Close,
        ConnState::Udp,
    ];

    /// IPVS's name for the state (`SYN_RECV`, `ESTABLISHED`, ...; `UDP`).
    pub const fn name(self) -> &'static str {
        match self {
            ConnState::SynRecv => "SYN_RECV",
            ConnState::Established => "ESTABLISHED",
            ConnState::FinWait => "FIN_WAIT",
            ConnState::TimeWait => "TIME_WAIT",
            ConnState::Close => "CLOSE",
            ConnState::Udp => "UDP",
        }
    }

    /// Whether the entry counts against the half-open bound (SYN_RECV).
    pub const fn is_half_open(self) -> bool {
        matches!(self, ConnState::SynRecv)
    }

    /// Whether the entry counts as an *active* connection of its server for `lc`/`wlc`
    /// (ESTABLISHED, and UDP flows; IPVS counts UDP as inactive, which makes no
    /// difference within one UDP service).
    pub const fn is_active(self) -> bool {
        matches!(self, ConnState::Established | ConnState::Udp)
    }

    const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for ConnState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which way a segment travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the client to the virtual service.
    FromClient,
    /// From the real server back to the client (seen in NAT mode only).
    FromServer,
}

/// Idle timeouts per state, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// SYN_RECV.
    pub syn_recv: u64,
    /// ESTABLISHED.
    pub established: u64,
    /// FIN_WAIT.
    pub fin_wait: u64,
    /// TIME_WAIT.
    pub time_wait: u64,
    /// CLOSE.
    pub close: u64,
    /// UDP flows.
    pub udp: u64,
}

impl Timeouts {
    /// IPVS's defaults (`ip_vs_proto_tcp.c`, `ip_vs_proto_udp.c`).
    pub const IPVS: Timeouts = Timeouts {
        syn_recv: 60 * SECOND,
        established: 900 * SECOND,
        fin_wait: 120 * SECOND,
        time_wait: 120 * SECOND,
        close: 10 * SECOND,
        udp: 300 * SECOND,
    };

    /// The timeout of `state`.
    pub const fn of(&self, state: ConnState) -> u64 {
        match state {
            ConnState::SynRecv => self.syn_recv,
            ConnState::Established => self.established,
            ConnState::FinWait => self.fin_wait,
            ConnState::TimeWait => self.time_wait,
            ConnState::Close => self.close,
            ConnState::Udp => self.udp,
        }
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts::IPVS
    }
}

/// How a [`ConnTable`] is sized and timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnTableConfig {
    /// The most entries the table holds (at most `u32::MAX - 1`); memory for all of them
    /// is reserved at construction.
    pub max_entries: usize,
    /// The most entries in SYN_RECV at once. Default: a quarter of `max_entries`.
    pub max_half_open: usize,
    /// Idle timeouts per state. Default: [`Timeouts::IPVS`].
    pub timeouts: Timeouts,
    /// Activity less than this many nanoseconds after an entry's recorded `last_seen` is
    /// not recorded (saves relinking hot flows on every packet). Default 10 ms; 0 records
    /// every advance of time.
    pub touch_granularity: u64,
}

impl ConnTableConfig {
    /// Room for `max_entries`, the other fields at their defaults.
    pub const fn new(max_entries: usize) -> Self {
        ConnTableConfig {
            max_entries,
            max_half_open: max_entries / 4,
            timeouts: Timeouts::IPVS,
            touch_granularity: SECOND / 100,
        }
    }

    /// The most entries that fit in `bytes` ([`ConnTable::max_entries_for`]).
    pub fn with_memory_cap(bytes: usize) -> Self {
        ConnTableConfig::new(ConnTable::max_entries_for(bytes))
    }

    /// Sets the half-open bound.
    pub const fn max_half_open(self, max_half_open: usize) -> Self {
        ConnTableConfig {
            max_half_open,
            ..self
        }
    }

    /// Sets the timeouts.
    pub const fn timeouts(self, timeouts: Timeouts) -> Self {
        ConnTableConfig { timeouts, ..self }
    }

    /// Sets the touch granularity.
    pub const fn touch_granularity(self, touch_granularity: u64) -> Self {
        ConnTableConfig {
            touch_granularity,
            ..self
        }
    }
}

/// A copy of an entry's state, as returned by lookups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conn {
    /// The real server the flow goes to.
    pub server: ServerId,
    /// The connection state.
    pub state: ConnState,
    /// The last recorded activity (nanoseconds).
    pub last_seen: u64,
    /// When the entry expires unless there is activity: `last_seen + timeout(state)`.
    pub expires: u64,
}

/// Why [`ConnTable::insert`] refused an entry. The caller serves the flow statelessly
/// (consistent hashing) instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InsertError {
    /// The table holds `max_entries`.
    #[error("connection table full")]
    Full,
    /// The entry would be half-open and `max_half_open` entries already are.
    #[error("half-open connection bound reached")]
    HalfOpenFull,
    /// The key already has a live entry.
    #[error("flow already in the connection table")]
    Exists,
}

/// Connections of one real server in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServerConns {
    /// Entries in an active state ([`ConnState::is_active`]).
    pub active: u32,
    /// Entries in other states.
    pub inactive: u32,
}

impl ServerConns {
    /// IPVS's load measure: `active × 256 + inactive`.
    pub const fn overhead(self) -> u64 {
        (self.active as u64) * 256 + self.inactive as u64
    }
}

const NIL: u32 = u32::MAX;

/// No FIN seen / FIN from the client / FIN from the server.
const FIN_NONE: u8 = 0;
const FIN_CLIENT: u8 = 1;
const FIN_SERVER: u8 = 2;

/// A slab slot: one cache line.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct Entry {
    key: FlowKey,
    last_seen: u64,
    server: ServerId,
    /// Expiry-list neighbours (slab positions); `next` also links the free list.
    prev: u32,
    next: u32,
    state: ConnState,
    fin_from: u8,
}

const _: () = assert!(size_of::<Entry>() == 64);

#[derive(Debug, Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
}

const EMPTY_LIST: List = List {
    head: NIL,
    tail: NIL,
};

/// The connection table. See the [module documentation](self).
pub struct ConnTable {
    config: ConnTableConfig,
    hasher: ahash::RandomState,
    /// Slab positions, hashed by the entry's key.
    index: HashTable<u32>,
    slab: Vec<Entry>,
    /// Head of the free-slot list (through `Entry::next`).
    free: u32,
    len: usize,
    lists: [List; STATES],
    counts: [usize; STATES],
    per_server: FxHashMap<ServerId, ServerConns>,
    /// The latest `now` seen.
    clock: u64,
    /// The state list `expire` starts with (rotates, so no state starves).
    expire_cursor: usize,
}

impl fmt::Debug for ConnTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnTable")
            .field("config", &self.config)
            .field("len", &self.len)
            .field("counts", &self.counts)
            .field("memory_bytes", &self.memory_bytes())
            .finish_non_exhaustive()
    }
}

/// Elements the index is allocated for: twice the entries, so it stays at most half full.
fn index_capacity(max_entries: usize) -> usize {
    max_entries.saturating_mul(2).max(16)
}

impl ConnTable {
    /// A table for `config.max_entries` entries; allocates all of its memory now
    /// ([`memory_bytes`](Self::memory_bytes)).
    ///
    /// # Panics
    ///
    /// If `max_entries` exceeds `u32::MAX - 1` (slab positions are `u32`).
    pub fn new(config: ConnTableConfig) -> Self {
        assert!(
            config.max_entries < NIL as usize,
            "max_entries {} exceeds u32 positions",
            config.max_entries
        );
        ConnTable {
            config,
            hasher: ahash::RandomState::new(),
            index: HashTable::with_capacity(index_capacity(config.max_entries)),
            slab: Vec::with_capacity(config.max_entries),
            free: NIL,
            len: 0,
            lists: [EMPTY_LIST; STATES],
            counts: [0; STATES],
            per_server: FxHashMap::default(),
            clock: 0,
            expire_cursor: 0,
        }
    }

    /// The bytes a table of `max_entries` allocates (the formula in the module docs).
    pub fn memory_for(max_entries: usize) -> usize {
        let cap = index_capacity(max_entries);
        let buckets = (cap.saturating_mul(8) / 7).next_power_of_two();
        // hashbrown: the slots (aligned up to its 16-byte control alignment), one control
        // byte per bucket, one trailing group of control bytes.
        let slots = (buckets * size_of::<u32>()).next_multiple_of(16);
        max_entries * size_of::<Entry>() + slots + buckets + 16
    }

    /// The largest `max_entries` whose table fits in `bytes`.
    pub fn max_entries_for(bytes: usize) -> usize {
        // memory_for is monotonic: binary search.
        let (mut lo, mut hi) = (0usize, (bytes / size_of::<Entry>()).min(NIL as usize - 1));
        if ConnTable::memory_for(lo) > bytes {
            return 0;
        }
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if ConnTable::memory_for(mid) <= bytes {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        lo
    }

    /// The configuration.
    pub fn config(&self) -> &ConnTableConfig {
        &self.config
    }

    /// Bytes allocated: the slab and the index (excluding the per-server counters).
    pub fn memory_bytes(&self) -> usize {
        self.slab.capacity() * size_of::<Entry>() + self.index.allocation_size()
    }

    /// Bytes per entry with the table at its cap: `memory_bytes / max_entries`.
    pub fn bytes_per_entry(&self) -> f64 {
        self.memory_bytes() as f64 / self.config.max_entries.max(1) as f64
    }

    /// Live entries (including expired ones not yet reclaimed by [`expire`](Self::expire)
    /// or a lookup).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The cap, `max_entries`.
    pub fn capacity(&self) -> usize {
        self.config.max_entries
    }

    /// Entries in `state`.
    pub fn count(&self, state: ConnState) -> usize {
        self.counts[state.index()]
    }

    /// Entries in SYN_RECV.
    pub fn half_open(&self) -> usize {
        self.count(ConnState::SynRecv)
    }

    /// Entries of `server`.
    pub fn server_conns(&self, server: ServerId) -> ServerConns {
        self.per_server.get(&server).copied().unwrap_or_default()
    }

    /// The earliest time at which some entry expires, if any (a hint for when to call
    /// [`expire`](Self::expire)).
    pub fn next_expiry(&self) -> Option<u64> {
        self.lists
            .iter()
            .filter(|l| l.head != NIL)
            .map(|l| self.deadline(&self.slab[l.head as usize]))
            .min()
    }

    /// The entry of `key` without recording activity; `None` if absent or expired at `now`.
    pub fn get(&self, key: &FlowKey, now: u64) -> Option<Conn> {
        let now = now.max(self.clock);
        let i = self.find(key)?;
        let e = &self.slab[i as usize];
        (self.deadline(e) > now).then(|| self.conn(e))
    }

    /// The entry of `key`, recording activity at `now`; an expired entry is removed and
    /// `None` returned (the flow is new).
    #[inline]
    pub fn lookup(&mut self, key: &FlowKey, now: u64) -> Option<Conn> {
        let now = self.advance(now);
        let i = self.find(key)?;
        if self.deadline(&self.slab[i as usize]) <= now {
            self.remove_at(i);
            return None;
        }
        self.touch(i, now);
        Some(self.conn(&self.slab[i as usize]))
    }

    /// A TCP segment of the flow `key` (the client-side 5-tuple, whichever `dir` the
    /// segment travels): records activity and applies the state transition of `flags`
    /// (module docs). Returns the entry after the transition, or `None` if the flow has no
    /// live entry. For a UDP entry the flags are ignored.
    pub fn on_segment(
        &mut self,
        key: &FlowKey,
        flags: TcpFlags,
        dir: Direction,
        now: u64,
    ) -> Option<Conn> {
        let now = self.advance(now);
        let i = self.find(key)?;
        let e = self.slab[i as usize];
        if self.deadline(&e) <= now {
            self.remove_at(i);
            return None;
        }
        let (mut state, mut fin_from) = transition(e.state, e.fin_from, flags, dir);
        if state.is_half_open()
            && !e.state.is_half_open()
            && self.half_open() >= self.config.max_half_open
        {
            (state, fin_from) = (e.state, e.fin_from);
        }
        if state == e.state {
            self.slab[i as usize].fin_from = fin_from;
            self.touch(i, now);
        } else {
            self.unlink(i);
            self.account(e.server, e.state, false);
            let entry = &mut self.slab[i as usize];
            entry.state = state;
            entry.fin_from = fin_from;
            entry.last_seen = now;
            self.account(e.server, state, true);
            self.link_tail(i);
        }
        Some(self.conn(&self.slab[i as usize]))
    }

    /// Adds the flow `key` going to `server` in `state` (SYN_RECV for a client SYN,
    /// ESTABLISHED for a mid-flow packet that missed the table, UDP for a datagram).
    ///
    /// Refused when the table is full, when a half-open entry would exceed the half-open
    /// bound, or when `key` already has a live entry (an expired one is replaced). Nothing
    /// is evicted.
    pub fn insert(
        &mut self,
        key: FlowKey,
        server: ServerId,
        state: ConnState,
        now: u64,
    ) -> Result<Conn, InsertError> {
        let now = self.advance(now);
        let hash = self.hasher.hash_one(key);
        if let Some(i) = self.find_hashed(hash, &key) {
            if self.deadline(&self.slab[i as usize]) > now {
                return Err(InsertError::Exists);
            }
            self.remove_at(i);
        }
        if self.len >= self.config.max_entries {
            return Err(InsertError::Full);
        }
        if state.is_half_open() && self.half_open() >= self.config.max_half_open {
            return Err(InsertError::HalfOpenFull);
        }
        let entry = Entry {
            key,
            last_seen: now,
            server,
            prev: NIL,
            next: NIL,
            state,
            fin_from: FIN_NONE,
        };
        let i = if self.free != NIL {
            let i = self.free;
            self.free = self.slab[i as usize].next;
            self.slab[i as usize] = entry;
            i
        } else {
            // len < max_entries and no free slot: the slab has room without reallocating.
            debug_assert!(self.slab.len() < self.slab.capacity());
            self.slab.push(entry);
            (self.slab.len() - 1) as u32
        };
        let (slab, hasher) = (&self.slab, &self.hasher);
        self.index
            .insert_unique(hash, i, |&j| hasher.hash_one(slab[j as usize].key));
        self.len += 1;
        self.account(server, state, true);
        self.link_tail(i);
        Ok(self.conn(&self.slab[i as usize]))
    }

    /// Removes the entry of `key` (live or expired); returns it.
    pub fn remove(&mut self, key: &FlowKey) -> Option<Conn> {
        let i = self.find(key)?;
        Some(self.remove_at(i))
    }

    /// Removes entries expired at `now`, at most `budget` of them; returns how many were
    /// removed (fewer than `budget` means none expired is left). The work is `O(budget)`
    /// plus one look at each state's oldest entry.
    pub fn expire(&mut self, now: u64, budget: usize) -> usize {
        let now = self.advance(now);
        let mut removed = 0;
        for k in 0..STATES {
            let s = (self.expire_cursor + k) % STATES;
            while removed < budget {
                let head = self.lists[s].head;
                if head == NIL || self.deadline(&self.slab[head as usize]) > now {
                    break;
                }
                self.remove_at(head);
                removed += 1;
            }
        }
        self.expire_cursor = (self.expire_cursor + 1) % STATES;
        removed
    }

    /// Every live entry's key and state, in no particular order (walks the expiry lists;
    /// for tests and diagnostics).
    pub fn iter(&self) -> impl Iterator<Item = (FlowKey, Conn)> + '_ {
        self.lists.iter().flat_map(move |l| {
            let mut i = l.head;
            std::iter::from_fn(move || {
                if i == NIL {
                    return None;
                }
                let e = &self.slab[i as usize];
                i = e.next;
                Some((e.key, self.conn(e)))
            })
        })
    }

    // ---- internals ----------------------------------------------------------------

    fn advance(&mut self, now: u64) -> u64 {
        self.clock = self.clock.max(now);
        self.clock
    }

    fn deadline(&self, e: &Entry) -> u64 {
        e.last_seen.saturating_add(self.config.timeouts.of(e.state))
    }

    fn conn(&self, e: &Entry) -> Conn {
        Conn {
            server: e.server,
            state: e.state,
            last_seen: e.last_seen,
            expires: self.deadline(e),
        }
    }

    #[inline]
    fn find(&self, key: &FlowKey) -> Option<u32> {
        self.find_hashed(self.hasher.hash_one(key), key)
    }

    #[inline]
    fn find_hashed(&self, hash: u64, key: &FlowKey) -> Option<u32> {
        let slab = &self.slab;
        self.index
            .find(hash, |&i| slab[i as usize].key == *key)
            .copied()
    }

    /// Records activity: moves the entry to its list's tail unless within the granularity.
    fn touch(&mut self, i: u32, now: u64) {
        let e = &mut self.slab[i as usize];
        if now <= e.last_seen || now - e.last_seen < self.config.touch_granularity {
            return;
        }
        e.last_seen = now;
        if self.lists[e.state.index()].tail != i {
            self.unlink(i);
            self.link_tail(i);
        }
    }

    fn link_tail(&mut self, i: u32) {
        let s = self.slab[i as usize].state.index();
        let tail = self.lists[s].tail;
        {
            let e = &mut self.slab[i as usize];
            e.prev = tail;
            e.next = NIL;
        }
        if tail == NIL {
            self.lists[s].head = i;
        } else {
            self.slab[tail as usize].next = i;
        }
        self.lists[s].tail = i;
    }

    fn unlink(&mut self, i: u32) {
        let Entry {
            prev, next, state, ..
        } = self.slab[i as usize];
        let s = state.index();
        if prev == NIL {
            self.lists[s].head = next;
        } else {
            self.slab[prev as usize].next = next;
        }
        if next == NIL {
            self.lists[s].tail = prev;
        } else {
            self.slab[next as usize].prev = prev;
        }
    }

    fn account(&mut self, server: ServerId, state: ConnState, add: bool) {
        let c = self.per_server.entry(server).or_default();
        let n = if state.is_active() {
            &mut c.active
        } else {
            &mut c.inactive
        };
        let counted = &mut self.counts[state.index()];
        if add {
            *n += 1;
            *counted += 1;
        } else {
            *n -= 1;
            *counted -= 1;
            if *c == ServerConns::default() {
                self.per_server.remove(&server);
            }
        }
    }

    fn remove_at(&mut self, i: u32) -> Conn {
        let e = self.slab[i as usize];
        let hash = self.hasher.hash_one(e.key);
        if let Ok(occupied) = self.index.find_entry(hash, |&j| j == i) {
            occupied.remove();
        } else {
            // Every slab entry in a list is in the index: an invariant of insert/remove.
            debug_assert!(false, "slab entry {i} missing from the index");
        }
        let conn = self.conn(&e);
        self.unlink(i);
        self.account(e.server, e.state, false);
        self.slab[i as usize].next = self.free;
        self.free = i;
        self.len -= 1;
        conn
    }
}

impl ServerLoad for ConnTable {
    fn overhead(&self, server: ServerId) -> u64 {
        self.server_conns(server).overhead()
    }
}

/// The TCP state machine (see the module docs' table).
fn transition(state: ConnState, fin_from: u8, flags: TcpFlags, dir: Direction) -> (ConnState, u8) {
    use ConnState::*;
    let f = flags.0;
    if state == Udp {
        return (Udp, FIN_NONE);
    }
    if f & TcpFlags::RST != 0 {
        return (Close, FIN_NONE);
    }
    if f & TcpFlags::SYN != 0 {
        return match state {
            FinWait | TimeWait | Close if flags.is_syn_only() && dir == Direction::FromClient => {
                (SynRecv, FIN_NONE)
            }
            _ => (state, fin_from),
        };
    }
    if f & TcpFlags::FIN != 0 {
        let from = match dir {
            Direction::FromClient => FIN_CLIENT,
            Direction::FromServer => FIN_SERVER,
        };
        return match state {
            SynRecv | Established => (FinWait, from),
            FinWait if fin_from != from => (TimeWait, FIN_NONE),
            _ => (state, fin_from),
        };
    }
    if f & TcpFlags::ACK != 0 && dir == Direction::FromClient && state == SynRecv {
        return (Established, FIN_NONE);
    }
    (state, fin_from)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::{IpAddr, Ipv4Addr};

    use lrp_core::flow::Proto;
    use proptest::prelude::*;

    use super::*;

    const SYN: TcpFlags = TcpFlags(TcpFlags::SYN);
    const SYN_ACK: TcpFlags = TcpFlags(TcpFlags::SYN | TcpFlags::ACK);
    const ACK: TcpFlags = TcpFlags(TcpFlags::ACK);
    const FIN: TcpFlags = TcpFlags(TcpFlags::FIN | TcpFlags::ACK);
    const RST: TcpFlags = TcpFlags(TcpFlags::RST);
    use Direction::{FromClient as C, FromServer as S};

    fn key(n: u32) -> FlowKey {
        let [a, b, c, d] = n.to_be_bytes();
        FlowKey {
            proto: Proto::Tcp,
            src: IpAddr::V4(Ipv4Addr::new(10, a, b, c)),
            dst: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            sport: 1024 + u16::from(d),
            dport: 80,
        }
    }

    fn table(max: usize) -> ConnTable {
        ConnTable::new(
            ConnTableConfig::new(max)
                .max_half_open(max)
                .touch_granularity(0),
        )
    }

    fn state_after(t: &mut ConnTable, k: &FlowKey, segs: &[(TcpFlags, Direction)]) -> ConnState {
        let mut now = t.clock;
        let mut s = t.get(k, now).unwrap().state;
        for &(f, d) in segs {
            now += 1;
            s = t.on_segment(k, f, d, now).unwrap().state;
        }
        s
    }

    #[test]
    fn tcp_state_machine() {
        use ConnState::*;
        let mut t = table(16);
        let k = key(1);
        t.insert(k, ServerId(0), SynRecv, 0).unwrap();
        // Handshake (NAT: both directions), then the server closes first, then the client.
        assert_eq!(state_after(&mut t, &k, &[(SYN, C), (SYN_ACK, S)]), SynRecv);
        assert_eq!(state_after(&mut t, &k, &[(ACK, C)]), Established);
        assert_eq!(state_after(&mut t, &k, &[(ACK, S), (SYN, C)]), Established);
        assert_eq!(state_after(&mut t, &k, &[(FIN, S)]), FinWait);
        assert_eq!(state_after(&mut t, &k, &[(FIN, S), (ACK, C)]), FinWait);
        assert_eq!(state_after(&mut t, &k, &[(FIN, C)]), TimeWait);
        // The client reuses the tuple.
        assert_eq!(state_after(&mut t, &k, &[(SYN, C)]), SynRecv);
        assert_eq!(state_after(&mut t, &k, &[(ACK, C), (RST, S)]), Close);
        assert_eq!(state_after(&mut t, &k, &[(ACK, C), (FIN, C)]), Close);
        assert_eq!(state_after(&mut t, &k, &[(SYN_ACK, S)]), Close);
        assert_eq!(state_after(&mut t, &k, &[(SYN, C)]), SynRecv);
        // DR: only the client's side is seen.
        let k2 = key(2);
        t.insert(k2, ServerId(0), SynRecv, t.clock).unwrap();
        assert_eq!(
            state_after(&mut t, &k2, &[(ACK, C), (FIN, C), (ACK, C)]),
            FinWait
        );
        assert_eq!(state_after(&mut t, &k2, &[(FIN, C)]), FinWait);
        // A FIN during the handshake; RST from the client.
        let k3 = key(3);
        t.insert(k3, ServerId(0), SynRecv, t.clock).unwrap();
        assert_eq!(state_after(&mut t, &k3, &[(FIN, C)]), FinWait);
        assert_eq!(state_after(&mut t, &k3, &[(RST, C)]), Close);
        // UDP ignores flags.
        let k4 = key(4);
        t.insert(k4, ServerId(0), Udp, t.clock).unwrap();
        assert_eq!(
            state_after(&mut t, &k4, &[(RST, C), (SYN, C), (FIN, S)]),
            Udp
        );
        assert_eq!(
            t.count(SynRecv) + t.count(Close) + t.count(FinWait) + t.count(Udp),
            4
        );
    }

    #[test]
    fn per_state_timeouts() {
        let timeouts = Timeouts::IPVS;
        for state in ConnState::ALL {
            let mut t = table(4);
            let k = key(7);
            t.insert(k, ServerId(3), state, 1000).unwrap();
            let deadline = 1000 + timeouts.of(state);
            assert_eq!(t.get(&k, deadline - 1).unwrap().expires, deadline);
            assert_eq!(t.expire(deadline - 1, usize::MAX), 0, "{state}");
            assert!(t.lookup(&k, deadline - 1).is_some(), "{state}");
            // The lookup refreshed it: it now lives until (deadline - 1) + timeout.
            assert!(t.get(&k, deadline).is_some());
            assert_eq!(t.expire(deadline - 2 + timeouts.of(state), usize::MAX), 0);
            assert_eq!(t.expire(deadline - 1 + timeouts.of(state), usize::MAX), 1);
            assert!(t.is_empty());
        }
        // A state change restarts the clock with the new state's timeout.
        let mut t = table(4);
        let k = key(8);
        t.insert(k, ServerId(0), ConnState::Established, 0).unwrap();
        t.on_segment(&k, RST, C, 5 * SECOND).unwrap();
        assert_eq!(t.get(&k, 0).unwrap().expires, 15 * SECOND);
        assert!(
            t.lookup(&k, 15 * SECOND).is_none(),
            "expired at the deadline"
        );
        assert!(t.is_empty(), "lookup reclaimed it");
    }

    #[test]
    fn touch_granularity_limits_relinking() {
        let mut t = ConnTable::new(ConnTableConfig::new(4).touch_granularity(SECOND));
        let k = key(1);
        t.insert(k, ServerId(0), ConnState::Udp, 0).unwrap();
        assert_eq!(t.lookup(&k, SECOND - 1).unwrap().last_seen, 0);
        assert_eq!(t.lookup(&k, SECOND).unwrap().last_seen, SECOND);
    }

    #[test]
    fn expiry_is_bounded_and_rotates() {
        let mut t = table(100);
        for n in 0..50 {
            let state = if n % 2 == 0 {
                ConnState::Close
            } else {
                ConnState::Udp
            };
            t.insert(key(n), ServerId(0), state, 0).unwrap();
        }
        let later = Timeouts::IPVS.udp;
        assert_eq!(t.expire(later, 10), 10);
        assert_eq!(t.expire(later, 10), 10);
        assert_eq!(t.len(), 30);
        assert_eq!(t.expire(later, 100), 30);
        assert_eq!(t.expire(later, 100), 0);
        assert_eq!(t.next_expiry(), None);
    }

    #[test]
    fn half_open_bound() {
        let mut t = ConnTable::new(
            ConnTableConfig::new(100)
                .max_half_open(3)
                .touch_granularity(0),
        );
        for n in 0..3 {
            t.insert(key(n), ServerId(0), ConnState::SynRecv, 0)
                .unwrap();
        }
        assert_eq!(
            t.insert(key(10), ServerId(0), ConnState::SynRecv, 0),
            Err(InsertError::HalfOpenFull)
        );
        // Other states are still admitted.
        t.insert(key(11), ServerId(0), ConnState::Established, 0)
            .unwrap();
        // A completed handshake frees a half-open slot.
        t.on_segment(&key(0), ACK, C, 1).unwrap();
        assert_eq!(t.half_open(), 2);
        t.insert(key(10), ServerId(0), ConnState::SynRecv, 1)
            .unwrap();
        // A reused tuple does not go back to SYN_RECV beyond the bound.
        t.on_segment(&key(11), RST, C, 2).unwrap();
        assert_eq!(
            t.on_segment(&key(11), SYN, C, 3).unwrap().state,
            ConnState::Close
        );
        assert_eq!(t.half_open(), 3);
    }

    #[test]
    fn full_table_refuses_and_keeps_established() {
        let mut t = table(64);
        for n in 0..64 {
            t.insert(key(n), ServerId(n % 4), ConnState::Established, 0)
                .unwrap();
        }
        assert_eq!(
            t.insert(key(1000), ServerId(0), ConnState::SynRecv, 1),
            Err(InsertError::Full)
        );
        assert_eq!(
            t.insert(key(1001), ServerId(0), ConnState::Udp, 1),
            Err(InsertError::Full)
        );
        assert_eq!(
            t.insert(key(5), ServerId(0), ConnState::SynRecv, 1),
            Err(InsertError::Exists)
        );
        for n in 0..64 {
            let c = t.lookup(&key(n), 2).unwrap();
            assert_eq!(
                (c.server, c.state),
                (ServerId(n % 4), ConnState::Established)
            );
        }
        assert_eq!(t.len(), 64);
        // Once something leaves, there is room again, in the same memory.
        let before = t.memory_bytes();
        t.remove(&key(3)).unwrap();
        t.insert(key(1000), ServerId(1), ConnState::SynRecv, 3)
            .unwrap();
        assert_eq!(t.memory_bytes(), before);
    }

    #[test]
    fn server_counts_follow_states() {
        let mut t = table(16);
        t.insert(key(1), ServerId(1), ConnState::SynRecv, 0)
            .unwrap();
        t.insert(key(2), ServerId(1), ConnState::Established, 0)
            .unwrap();
        t.insert(key(3), ServerId(2), ConnState::Udp, 0).unwrap();
        assert_eq!(
            t.server_conns(ServerId(1)),
            ServerConns {
                active: 1,
                inactive: 1
            }
        );
        assert_eq!(t.overhead(ServerId(1)), 257);
        t.on_segment(&key(1), ACK, C, 1).unwrap();
        assert_eq!(t.overhead(ServerId(1)), 512);
        t.remove(&key(1));
        t.remove(&key(2));
        assert_eq!(t.server_conns(ServerId(1)), ServerConns::default());
        assert_eq!(t.overhead(ServerId(2)), 256);
    }

    #[test]
    fn memory_formula_matches_allocation() {
        for max in [0, 1, 7, 100, 1000, 4096, 100_000] {
            let t = ConnTable::new(ConnTableConfig::new(max));
            let diff = ConnTable::memory_for(max).abs_diff(t.memory_bytes());
            // hashbrown's trailing control group is 16 bytes with SSE2, 8 elsewhere.
            assert!(
                diff <= 8,
                "max {max}: formula {} vs {}",
                ConnTable::memory_for(max),
                t.memory_bytes()
            );
        }
        let t = ConnTable::new(ConnTableConfig::new(1 << 20));
        let bpe = t.bytes_per_entry();
        assert!((75.0..87.0).contains(&bpe), "{bpe}");
        let cap = 10 << 20;
        let n = ConnTable::max_entries_for(cap);
        assert!(ConnTable::memory_for(n) <= cap && ConnTable::memory_for(n + 1) > cap);
        assert_eq!(ConnTableConfig::with_memory_cap(cap).max_entries, n);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u32, u32, bool),
        Lookup(u32),
        Remove(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u32..64, 0u32..4, any::<bool>()).prop_map(|(k, s, syn)| Op::Insert(k, s, syn)),
            (0u32..64).prop_map(Op::Lookup),
            (0u32..64).prop_map(Op::Remove),
        ]
    }

    proptest! {
        /// insert / lookup / remove agree with a BTreeMap (no time passes), including at
        /// the cap and the half-open bound.
        #[test]
        fn matches_btreemap_model(ops in proptest::collection::vec(op(), 1..400)) {
            let (max, max_half_open) = (40, 10);
            let mut t = ConnTable::new(ConnTableConfig::new(max).max_half_open(max_half_open));
            let mut model: BTreeMap<u32, (ServerId, ConnState)> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Insert(k, s, syn) => {
                        let state = if syn { ConnState::SynRecv } else { ConnState::Established };
                        let half_open = model.values().filter(|v| v.1 == ConnState::SynRecv).count();
                        let expect = if model.contains_key(&k) {
                            Err(InsertError::Exists)
                        } else if model.len() >= max {
                            Err(InsertError::Full)
                        } else if syn && half_open >= max_half_open {
                            Err(InsertError::HalfOpenFull)
                        } else {
                            model.insert(k, (ServerId(s), state));
                            Ok((ServerId(s), state))
                        };
                        let got = t.insert(key(k), ServerId(s), state, 0).map(|c| (c.server, c.state));
                        prop_assert_eq!(got, expect);
                    }
                    Op::Lookup(k) => {
                        let got = t.lookup(&key(k), 0).map(|c| (c.server, c.state));
                        prop_assert_eq!(got, model.get(&k).copied());
                    }
                    Op::Remove(k) => {
                        let got = t.remove(&key(k)).map(|c| (c.server, c.state));
                        prop_assert_eq!(got, model.remove(&k));
                    }
                }
                prop_assert_eq!(t.len(), model.len());
                prop_assert_eq!(t.iter().count(), model.len());
            }
            for (k, v) in &model {
                prop_assert_eq!(t.get(&key(*k), 0).map(|c| (c.server, c.state)), Some(*v));
            }
        }

        /// After `expire(now, ∞)` exactly the entries with `last_seen + timeout <= now` are
        /// gone, whatever the interleaving of inserts, activity and state changes.
        #[test]
        fn expire_removes_exactly_the_expired(
            steps in proptest::collection::vec((0u32..48, 0u64..40, 0u8..5), 1..300),
            at in 0u64..200,
        ) {
            let timeouts = Timeouts {
                syn_recv: 30, established: 90, fin_wait: 20, time_wait: 20, close: 5, udp: 60,
            };
            let mut t = ConnTable::new(
                ConnTableConfig::new(64).max_half_open(64).timeouts(timeouts).touch_granularity(0),
            );
            let mut now = 0;
            for (k, dt, action) in steps {
                now += dt;
                let k = key(k);
                match action {
                    0 => { let _ = t.insert(k, ServerId(0), ConnState::SynRecv, now); }
                    1 => { let _ = t.insert(k, ServerId(0), ConnState::Udp, now); }
                    2 => { t.lookup(&k, now); }
                    3 => { t.on_segment(&k, ACK, C, now); }
                    _ => { t.on_segment(&k, FIN, S, now); }
                }
            }
            let now = now + at;
            let before: Vec<(FlowKey, Conn)> = t.iter().collect();
            let removed = t.expire(now, usize::MAX);
            let mut expected: Vec<FlowKey> =
                before.iter().filter(|(_, c)| c.expires > now).map(|(k, _)| *k).collect();
            let mut after: Vec<FlowKey> = t.iter().map(|(k, _)| k).collect();
            expected.sort();
            after.sort();
            prop_assert_eq!(removed, before.len() - expected.len());
            prop_assert_eq!(after, expected);
            // The survivors are untouched.
            for (k, c) in &before {
                if c.expires > now {
                    prop_assert_eq!(t.get(k, now), Some(*c));
                }
            }
        }
    }
}
