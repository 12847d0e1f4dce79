//! # The director — an LVS-style layer-4 load balancer on lrp
//!
//! The director receives connections for *virtual services* (VIP, port, protocol) and
//! forwards each flow to one of the service's real servers, remembering the choice so
//! that every packet of the flow goes to the same server.
//!
//! ## What exists
//!
//! The pure-logic core, with no I/O and no clock (callers pass `now` as nanoseconds):
//!
//! * [`scheduler`] — the [`Scheduler`](scheduler::Scheduler) that picks a
//!   [`RealServer`](scheduler::RealServer) for a new flow: `rr`, `wrr`, `lc`, `wlc`, `sh`
//!   and `mh` (Maglev), weights (0 = drained), and client
//!   [`Persistence`](scheduler::Persistence).
//! * [`maglev`] — Maglev consistent hashing and the stable keyed hash (SipHash-2-4) that
//!   makes several directors behind ECMP agree without sharing state.
//! * [`config`] — the TOML configuration (`lrp-director check --config F`): services,
//!   real servers, schedulers, modes, timeouts, table limits, health checks; errors name
//!   the file, line, column and field.
//! * [`conntrack`] — the [`ConnTable`](conntrack::ConnTable): flow → server with TCP state
//!   tracking, per-state timeouts, incremental expiry, a half-open bound and a memory cap;
//!   keyed (randomly seeded) hashing; O(1) from 1 to 10M entries.
//!
//! And the first piece that does I/O:
//!
//! * [`health`] — health checks of the real servers over lrp TCP (`tcp`: a connection
//!   is accepted; `http`: `GET path` answers the expected status; `none`), with
//!   `interval`, `timeout` and `rise`/`fall` from the configuration. A pure state machine
//!   ([`HealthState`](health::HealthState), [`CheckSchedule`](health::CheckSchedule)) and
//!   a [`Checker`](health::Checker) running the checks on an lrp `Stack` (one scheduling
//!   thread, a small worker pool), publishing up/down in a
//!   [`HealthView`](health::HealthView) that is one atomic load per new flow. Tested on
//!   two bridged simulated stacks and on real veth against Linux servers
//!   (`tests/veth_health.rs`).
//!
//! How they fit together for one packet of a virtual service:
//!
//! ```text
//! conn = table.on_segment(key, flags, dir, now)            // TCP; table.lookup for UDP
//!     or else: server = scheduler.pick(key, &table)          // or pick_persistent
//!              table.insert(key, server, SYN_RECV / ESTABLISHED / UDP, now)
//!              on Err(Full | HalfOpenFull): server = scheduler.consistent_pick(key)
//! periodically: table.expire(now, budget)
//! ```
//!
//! The data path:
//!
//! * [`forward`] — the forwarding engine: a [`Service`](forward::Service) per virtual
//!   service owns its NI channels (new connections on a `syn_only` listener rule,
//!   established traffic on a listener rule, NAT replies on one source rule per real
//!   server), takes frames in batches, consults the table and scheduler, rewrites in
//!   place (NAT: addresses, ports and MACs with incremental checksums; DR: MACs only),
//!   decrements the TTL and transmits without a copy. Servers are added, removed and
//!   re-weighted at run time; [`ServiceStats`](forward::ServiceStats) gives counters,
//!   drops by reason, per-server traffic and the CPU charged to each service. A
//!   [`Director`](forward::Director) polls several services on one NIC. Tested on the
//!   simulated NIC in every receive mode (`tests/director_forward.rs`).
//!
//! And the program around them:
//!
//! * [`run`] — `lrp-director run`: the NIC on `client_iface`, an lrp stack at the
//!   director's `address` (ARP, health checks), ARP answered for the VIPs, real servers'
//!   MACs resolved by ARP when the configuration does not fix them, a
//!   [`Director`](forward::Director) with every configured service, the
//!   [`Checker`](health::Checker)'s transitions applied as weights (down → 0, up → the
//!   configured weight), a poll loop that sleeps when idle, a statistics line per service
//!   every interval, and a clean stop on SIGINT / SIGTERM. Tested end to end on real
//!   veth: a client, the director and three nginx servers on one bridge
//!   (`tests/veth_director.rs`).
//!
//! ## What does not exist yet
//!
//! * Over the control socket ([`control`]): `stats`, `set-weight`, `add-server` and
//!   `remove-server` work; `add-service` and `remove-service` say they are not
//!   implemented yet.
//! * `run` is one-armed and IPv4 only (`server_iface` and IPv6 services are refused).
//! * No TUN (IP-in-IP) mode, no forwarding of ICMP errors or non-first IP fragments of
//!   VIP flows (they go to the kernel).
//! * Health transitions act through weights only: the schedulers do not consult a
//!   [`HealthView`](health::HealthView) themselves, and established flows to a down
//!   server are kept (never cut by policy). Intervals and timeouts are whole seconds in
//!   the configuration (at least 1 s).
//!
//! Time in this module is always a `u64` of nanoseconds on the caller's monotonic clock.

pub mod config;
pub mod conntrack;
pub mod control;
pub mod forward;
pub mod health;
pub mod maglev;
pub mod run;
pub mod scheduler;
