//! Schedulers: which real server gets a new flow.
//!
//! A [`Scheduler`] holds one virtual service's [`RealServer`]s and picks one for a flow
//! that has no connection-table entry yet, by its [`Algorithm`]:
//!
//! | name | algorithm | needs |
//! |---|---|---|
//! | `rr` | round robin over servers with weight > 0 | — |
//! | `wrr` | smooth weighted round robin (nginx's): over one cycle of `Σw` picks, server `i` is picked exactly `wᵢ` times, interleaved (`5,1,1` gives `a a b a c a a`, not `a a a a a b c` as IPVS's `wrr` would) | — |
//! | `lc` | least connections: smallest [`ServerLoad::overhead`] | the caller's load |
//! | `wlc` | weighted least connections: smallest `overhead / weight` | the caller's load |
//! | `sh` | source hash: a keyed hash of the client address, modulo the total weight of the servers with weight > 0 | — |
//! | `mh` | Maglev consistent hashing ([`maglev`]) of the 5-tuple or the client address ([`FlowHash`]) | — |
//!
//! Ties in `lc`/`wlc` go to the first server in the canonical order (by address).
//!
//! **Weight 0 drains a server**: no algorithm gives it new flows (flows already in the
//! connection table keep going to it; that is the table's business, not the scheduler's).
//!
//! **Load** for `lc`/`wlc` is supplied by the caller through [`ServerLoad`]: the
//! connection table implements it (IPVS's overhead, `active × 256 + inactive`), and so
//! does any `Fn(ServerId) -> u64`.
//!
//! **Remapping.** `sh` maps a client to `hash mod Σw`: any change of the live server set
//! or of a weight shifts almost every client (with `N` equal servers, removing one moves
//! about `(N−1)/N` of the clients, not `1/N`). `mh` moves only the clients of the removed
//! server plus a small fraction of the others (measured in `tests/director_sched.rs`),
//! and is what to use when several directors share the traffic (ECMP) or when the
//! connection table is full.
//!
//! **The consistent fallback.** Whatever the algorithm, every scheduler maintains a
//! Maglev table: [`Scheduler::consistent_pick`] answers from it without state. The
//! director uses it when the connection table is full (new flows are still served, and
//! every director agrees) and for mid-flow packets that miss the table (after a director
//! failover).
//!
//! **Determinism.** Servers are kept sorted by address and all hashing is keyed by the
//! configured seed ([`SchedulerConfig::seed`]), so two schedulers built from the same
//! configuration make the same decisions (for `rr`/`wrr`/`lc`/`wlc`, given the same
//! sequence of calls and loads).
//!
//! **Persistence** ([`Persistence`]): a bounded map client address → server with an idle
//! timeout, consulted before the algorithm ([`Scheduler::pick_persistent`]).
//!
//! No clock is read here: time is a `u64` of nanoseconds passed in by the caller.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use lrp_core::flow::FlowKey;

use super::maglev::{self, FlowHash, MaglevHashes, MaglevTable};

/// Identifies a real server within one [`Scheduler`]: assigned by [`Scheduler::add`],
/// never reused (a connection-table entry naming a removed server cannot silently point
/// at a newer one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerId(pub u32);

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rs{}", self.0)
    }
}

/// A real server: where flows are sent, and its share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RealServer {
    /// Address and port of the server; also its identity for hashing (every director
    /// configured with the same servers computes the same Maglev table).
    pub addr: SocketAddr,
    /// Relative share of new flows; 0 = drained (no new flows).
    pub weight: u32,
}

impl RealServer {
    /// A server with weight 1.
    pub const fn new(addr: SocketAddr) -> Self {
        RealServer { addr, weight: 1 }
    }

    /// The same server with weight `weight`.
    pub const fn weight(self, weight: u32) -> Self {
        RealServer { weight, ..self }
    }
}

/// A scheduling algorithm (the names are `ipvsadm`'s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    /// `rr`: round robin.
    RoundRobin,
    /// `wrr`: smooth weighted round robin.
    WeightedRoundRobin,
    /// `lc`: least connections.
    LeastConn,
    /// `wlc`: weighted least connections.
    WeightedLeastConn,
    /// `sh`: source (client address) hash.
    SourceHash,
    /// `mh`: Maglev consistent hashing.
    #[default]
    Maglev,
}

impl Algorithm {
    /// Every algorithm, in table order.
    pub const ALL: [Algorithm; 6] = [
        Algorithm::RoundRobin,
        Algorithm::WeightedRoundRobin,
        Algorithm::LeastConn,
        Algorithm::WeightedLeastConn,
        Algorithm::SourceHash,
        Algorithm::Maglev,
    ];

    /// The `ipvsadm` name: `rr`, `wrr`, `lc`, `wlc`, `sh`, `mh`.
    pub const fn name(self) -> &'static str {
        match self {
            Algorithm::RoundRobin => "rr",
            Algorithm::WeightedRoundRobin => "wrr",
            Algorithm::LeastConn => "lc",
            Algorithm::WeightedLeastConn => "wlc",
            Algorithm::SourceHash => "sh",
            Algorithm::Maglev => "mh",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algorithm {
    type Err = SchedulerError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| SchedulerError::UnknownAlgorithm(s.to_owned()))
    }
}

/// How a [`Scheduler`] is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// The algorithm for new flows.
    pub algorithm: Algorithm,
    /// Maglev table size `M`: must be prime and larger than the number of servers; keep it
    /// above 100 × servers for under 1% imbalance. Default [`maglev::DEFAULT_TABLE_SIZE`].
    pub table_size: u32,
    /// Key of the stable hashes (Maglev permutations, flow and source hashes). Directors
    /// that must agree need the same seed; see [`maglev`] for why a fixed
    /// seed is fine here. Default [`maglev::DEFAULT_SEED`].
    pub seed: [u64; 2],
    /// What Maglev hashes (`mh` and [`Scheduler::consistent_pick`]). Default: the 5-tuple.
    pub flow_hash: FlowHash,
}

impl SchedulerConfig {
    /// The defaults with `algorithm`.
    pub const fn new(algorithm: Algorithm) -> Self {
        SchedulerConfig {
            algorithm,
            table_size: maglev::DEFAULT_TABLE_SIZE,
            seed: maglev::DEFAULT_SEED,
            flow_hash: FlowHash::FiveTuple,
        }
    }

    /// Sets the Maglev table size (validated by [`Scheduler::new`]).
    pub const fn table_size(self, table_size: u32) -> Self {
        SchedulerConfig { table_size, ..self }
    }

    /// Sets the hash seed.
    pub const fn seed(self, seed: [u64; 2]) -> Self {
        SchedulerConfig { seed, ..self }
    }

    /// Sets what Maglev hashes.
    pub const fn flow_hash(self, flow_hash: FlowHash) -> Self {
        SchedulerConfig { flow_hash, ..self }
    }
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig::new(Algorithm::default())
    }
}

/// Why a scheduler operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchedulerError {
    /// The Maglev table size is not prime (the permutations would not cover the table).
    #[error("maglev table size {0} is not prime")]
    NotPrime(u32),
    /// The Maglev table must have more entries than there are servers.
    #[error("maglev table size {size} too small for {servers} servers")]
    TableTooSmall {
        /// The configured table size.
        size: u32,
        /// The number of servers it would have to hold.
        servers: usize,
    },
    /// A server with this address is already in the set.
    #[error("real server {0} already exists")]
    DuplicateServer(SocketAddr),
    /// No server has this id.
    #[error("no real server {0}")]
    UnknownServer(ServerId),
    /// Not one of `rr`, `wrr`, `lc`, `wlc`, `sh`, `mh`.
    #[error("unknown scheduler {0:?} (expected rr, wrr, lc, wlc, sh or mh)")]
    UnknownAlgorithm(String),
}

/// The load of each real server, for `lc` and `wlc`: supplied by the caller, usually the
/// connection table.
pub trait ServerLoad {
    /// The server's load; smaller is preferred. IPVS's measure is
    /// `active × 256 + inactive` connections.
    fn overhead(&self, server: ServerId) -> u64;
}

impl<F: Fn(ServerId) -> u64> ServerLoad for F {
    fn overhead(&self, server: ServerId) -> u64 {
        self(server)
    }
}

/// No load information: every server has overhead 0 (enough for every algorithm but
/// `lc`/`wlc`, which then always pick the first eligible server).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoLoad;

impl ServerLoad for NoLoad {
    fn overhead(&self, _: ServerId) -> u64 {
        0
    }
}

#[derive(Debug, Clone)]
struct Slot {
    id: ServerId,
    server: RealServer,
    /// Smooth wrr's running weight.
    current: i64,
}

/// One virtual service's real servers and the algorithm that picks among them.
///
/// Mutations (`add`, `remove`, `set_weight`) rebuild the derived tables (Maglev, source
/// hash) at once: `O(M)` — about a millisecond — so they are control-plane operations.
/// Picks never allocate.
#[derive(Debug, Clone)]
pub struct Scheduler {
    config: SchedulerConfig,
    /// Sorted by address: the canonical order every derived table uses.
    servers: Vec<Slot>,
    next_id: u32,
    /// rr: the position to try next.
    rr_next: usize,
    /// sh: (cumulative weight, server position) for servers with weight > 0.
    sh_cumulative: Vec<(u64, usize)>,
    maglev: MaglevTable,
    hashes: MaglevHashes,
}

impl Scheduler {
    /// An empty scheduler (picks return `None` until a server with weight > 0 is added).
    ///
    /// Fails if the table size is not prime.
    pub fn new(config: SchedulerConfig) -> Result<Self, SchedulerError> {
        if !maglev::is_prime(config.table_size) {
            return Err(SchedulerError::NotPrime(config.table_size));
        }
        Ok(Scheduler {
            config,
            servers: Vec::new(),
            next_id: 0,
            rr_next: 0,
            sh_cumulative: Vec::new(),
            maglev: MaglevTable::build(config.table_size, config.seed, &[]),
            hashes: MaglevHashes::new(config.seed),
        })
    }

    /// A scheduler with `servers` added in order (their ids are `0, 1, ...`).
    pub fn with_servers(
        config: SchedulerConfig,
        servers: impl IntoIterator<Item = RealServer>,
    ) -> Result<Self, SchedulerError> {
        let mut s = Scheduler::new(config)?;
        for server in servers {
            s.insert(server)?;
        }
        s.rebuild();
        Ok(s)
    }

    /// The configuration.
    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.config.algorithm
    }

    /// Adds a server; fails if its address is already present or the Maglev table would
    /// not have more entries than servers.
    pub fn add(&mut self, server: RealServer) -> Result<ServerId, SchedulerError> {
        let id = self.insert(server)?;
        self.rebuild();
        Ok(id)
    }

    fn insert(&mut self, server: RealServer) -> Result<ServerId, SchedulerError> {
        let pos = match self
            .servers
            .binary_search_by(|s| s.server.addr.cmp(&server.addr))
        {
            Ok(_) => return Err(SchedulerError::DuplicateServer(server.addr)),
            Err(pos) => pos,
        };
        if self.servers.len() + 1 >= self.config.table_size as usize {
            return Err(SchedulerError::TableTooSmall {
                size: self.config.table_size,
                servers: self.servers.len() + 1,
            });
        }
        let id = ServerId(self.next_id);
        self.next_id += 1;
        self.servers.insert(
            pos,
            Slot {
                id,
                server,
                current: 0,
            },
        );
        Ok(id)
    }

    /// Removes a server; returns it, or `None` if there is no such id.
    pub fn remove(&mut self, id: ServerId) -> Option<RealServer> {
        let pos = self.position(id)?;
        let slot = self.servers.remove(pos);
        self.rebuild();
        Some(slot.server)
    }

    /// Changes a server's weight (0 drains it).
    pub fn set_weight(&mut self, id: ServerId, weight: u32) -> Result<(), SchedulerError> {
        let pos = self.position(id).ok_or(SchedulerError::UnknownServer(id))?;
        self.servers[pos].server.weight = weight;
        self.rebuild();
        Ok(())
    }

    /// The server with this id.
    pub fn server(&self, id: ServerId) -> Option<&RealServer> {
        self.position(id).map(|p| &self.servers[p].server)
    }

    /// The id of the server at `addr`.
    pub fn id_of(&self, addr: SocketAddr) -> Option<ServerId> {
        self.servers
            .binary_search_by(|s| s.server.addr.cmp(&addr))
            .ok()
            .map(|p| self.servers[p].id)
    }

    /// Every server, sorted by address.
    pub fn servers(&self) -> impl ExactSizeIterator<Item = (ServerId, &RealServer)> {
        self.servers.iter().map(|s| (s.id, &s.server))
    }

    /// Number of servers (including drained ones).
    pub fn len(&self) -> usize {
        self.servers.len()
    }

    /// Whether there are no servers.
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    /// Whether the server exists and takes new flows (weight > 0).
    pub fn accepts_new(&self, id: ServerId) -> bool {
        self.server(id).is_some_and(|s| s.weight > 0)
    }

    fn position(&self, id: ServerId) -> Option<usize> {
        self.servers.iter().position(|s| s.id == id)
    }

    fn rebuild(&mut self) {
        let backends: Vec<(SocketAddr, u32)> = self
            .servers
            .iter()
            .map(|s| (s.server.addr, s.server.weight))
            .collect();
        self.maglev = MaglevTable::build(self.config.table_size, self.config.seed, &backends);
        self.sh_cumulative.clear();
        let mut total = 0u64;
        for (pos, s) in self.servers.iter_mut().enumerate() {
            s.current = 0;
            if s.server.weight > 0 {
                total += u64::from(s.server.weight);
                self.sh_cumulative.push((total, pos));
            }
        }
        self.rr_next = 0;
    }

    /// Picks the server for a new flow by the configured algorithm; `None` when no server
    /// has weight > 0. `load` is consulted by `lc` and `wlc` only.
    pub fn pick(&mut self, flow: &FlowKey, load: &impl ServerLoad) -> Option<ServerId> {
        let pos = match self.config.algorithm {
            Algorithm::RoundRobin => self.pick_rr(),
            Algorithm::WeightedRoundRobin => self.pick_wrr(),
            Algorithm::LeastConn => self.pick_lc(load, false),
            Algorithm::WeightedLeastConn => self.pick_lc(load, true),
            Algorithm::SourceHash => self.pick_sh(flow),
            Algorithm::Maglev => return self.consistent_pick(flow),
        }?;
        Some(self.servers[pos].id)
    }

    /// The Maglev choice for `flow`, whatever the algorithm: stateless, identical on every
    /// director with the same configuration. `None` when no server has weight > 0.
    #[inline]
    pub fn consistent_pick(&self, flow: &FlowKey) -> Option<ServerId> {
        let pos = self.maglev.lookup(flow, self.config.flow_hash)?;
        Some(self.servers[pos as usize].id)
    }

    /// The Maglev table: for each entry, the server that owns it (empty when no server has
    /// weight > 0). For measurements and tests.
    pub fn maglev_entries(&self) -> impl ExactSizeIterator<Item = ServerId> + '_ {
        self.maglev
            .entries()
            .iter()
            .map(|&p| self.servers[p as usize].id)
    }

    /// Like [`pick`](Self::pick), but a client that `persistence` remembers goes back to
    /// its server if that server still takes new flows; the choice is then remembered
    /// (or refreshed) for the persistence timeout.
    pub fn pick_persistent(
        &mut self,
        persistence: &mut Persistence,
        flow: &FlowKey,
        load: &impl ServerLoad,
        now: u64,
    ) -> Option<ServerId> {
        let id = match persistence.get(flow.src, now) {
            Some(id) if self.accepts_new(id) => id,
            _ => self.pick(flow, load)?,
        };
        persistence.record(flow.src, id, now);
        Some(id)
    }

    fn pick_rr(&mut self) -> Option<usize> {
        let n = self.servers.len();
        for k in 0..n {
            let pos = (self.rr_next + k) % n;
            if self.servers[pos].server.weight > 0 {
                self.rr_next = (pos + 1) % n;
                return Some(pos);
            }
        }
        None
    }

    /// Smooth weighted round robin: every live server gains its weight, the one with the
    /// largest running weight is picked and loses the total.
    fn pick_wrr(&mut self) -> Option<usize> {
        let mut total = 0i64;
        let mut best: Option<(usize, i64)> = None;
        for (pos, s) in self.servers.iter_mut().enumerate() {
            if s.server.weight == 0 {
                continue;
            }
            let w = i64::from(s.server.weight);
            s.current += w;
            total += w;
            // Strictly greater: ties go to the first server in canonical order.
            if best.is_none_or(|(_, c)| s.current > c) {
                best = Some((pos, s.current));
            }
        }
        let (pos, _) = best?;
        self.servers[pos].current -= total;
        Some(pos)
    }

    fn pick_lc(&self, load: &impl ServerLoad, weighted: bool) -> Option<usize> {
        let mut best: Option<(usize, u64, u64)> = None;
        for (pos, s) in self.servers.iter().enumerate() {
            let w = u64::from(s.server.weight);
            if w == 0 {
                continue;
            }
            let overhead = load.overhead(s.id);
            let better = match best {
                None => true,
                // overhead / w < best_overhead / best_w, without division.
                Some((_, bo, bw)) if weighted => {
                    u128::from(overhead) * u128::from(bw) < u128::from(bo) * u128::from(w)
                }
                Some((_, bo, _)) => overhead < bo,
            };
            if better {
                best = Some((pos, overhead, w));
            }
        }
        best.map(|(pos, _, _)| pos)
    }

    fn pick_sh(&self, flow: &FlowKey) -> Option<usize> {
        let &(total, _) = self.sh_cumulative.last()?;
        let h = self.hashes.flow(flow, FlowHash::SourceAddr) % total;
        // The first server whose cumulative weight exceeds h.
        let i = self.sh_cumulative.partition_point(|&(cum, _)| cum <= h);
        Some(self.sh_cumulative[i].1)
    }
}

/// Persistence: the same client goes to the same server while it keeps coming back
/// within a timeout (IPVS's persistent services, without templates per port).
///
/// A bounded map client address → (server, expiry). Client addresses are chosen by
/// attackers, so the map uses a keyed hash with a random key per process
/// ([`ahash::RandomState`]). When the map is full, new clients are scheduled normally
/// and not remembered (existing entries are never evicted early).
///
/// Expiry: an entry whose idle timeout has passed is ignored by [`get`](Self::get) at
/// once; [`expire`](Self::expire) reclaims memory incrementally from a FIFO of one node
/// per entry (a node whose entry was refreshed is re-queued with the new deadline), at
/// most `budget` nodes per call.
#[derive(Debug, Clone)]
pub struct Persistence {
    timeout: u64,
    max_entries: usize,
    map: HashMap<IpAddr, Sticky, ahash::RandomState>,
    queue: VecDeque<(IpAddr, u64)>,
}

#[derive(Debug, Clone, Copy)]
struct Sticky {
    server: ServerId,
    expires: u64,
}

impl Persistence {
    /// Remembers up to `max_entries` clients for `timeout` nanoseconds after their last
    /// new flow (memory is allocated up front: about 64 bytes per entry).
    pub fn new(timeout: u64, max_entries: usize) -> Self {
        Persistence {
            timeout,
            max_entries,
            map: HashMap::with_capacity_and_hasher(max_entries, ahash::RandomState::new()),
            queue: VecDeque::with_capacity(max_entries),
        }
    }

    /// The idle timeout in nanoseconds.
    pub fn timeout(&self) -> u64 {
        self.timeout
    }

    /// The server remembered for `client`, if its timeout has not passed at `now`.
    pub fn get(&self, client: IpAddr, now: u64) -> Option<ServerId> {
        self.map
            .get(&client)
            .filter(|s| s.expires > now)
            .map(|s| s.server)
    }

    /// Remembers (or refreshes) `client → server` until `now + timeout`. Returns `false`
    /// when the map is full and the client is new (nothing is remembered).
    pub fn record(&mut self, client: IpAddr, server: ServerId, now: u64) -> bool {
        let expires = now.saturating_add(self.timeout);
        if let Some(s) = self.map.get_mut(&client) {
            *s = Sticky { server, expires };
            return true;
        }
        if self.map.len() >= self.max_entries {
            return false;
        }
        self.map.insert(client, Sticky { server, expires });
        self.queue.push_back((client, expires));
        true
    }

    /// Reclaims entries whose timeout has passed at `now`, examining at most `budget`
    /// queue nodes; returns how many entries were removed.
    pub fn expire(&mut self, now: u64, budget: usize) -> usize {
        let mut removed = 0;
        for _ in 0..budget {
            let Some(&(client, deadline)) = self.queue.front() else {
                break;
            };
            if deadline > now {
                break;
            }
            self.queue.pop_front();
            match self.map.get(&client) {
                // Not reachable (one node per entry), but harmless.
                None => {}
                Some(s) if s.expires <= now => {
                    self.map.remove(&client);
                    removed += 1;
                }
                Some(s) => self.queue.push_back((client, s.expires)),
            }
        }
        removed
    }

    /// Number of remembered clients (including expired ones not yet reclaimed).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no client is remembered.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}
