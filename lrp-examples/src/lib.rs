//! # lrp-examples — programs built on lrp
//!
//! The binaries (`src/bin/`) are small programs a network engineer can run against a
//! real interface (`--iface`, AF_XDP, root) or the simulated NIC (`--sim`), in any receive
//! path (`--mode ni|soft|eager`):
//!
//! | binary | what it does |
//! |---|---|
//! | `udp-echo` | UDP echo server on lrp |
//! | `blast-sink` | receives and discards a UDP flood, prints per-second rates, drops and CPU charged |
//! | `pingpong` | UDP round-trip latency: server, or client against any UDP echo server |
//! | `http-server` | HTTP/1.0 and 1.1 server on lrp TCP serving generated objects `/obj/<size>` |
//! | `http-get` | HTTP client on lrp TCP: fetches (and verifies) objects from any server |
//! | `lrp-director` | the L4 load-balancing director; for now `check --config F` validates its configuration |
//! | `lrp-gen` | open-loop generators on AF_XDP TX: UDP from many sources, spoofed SYN floods (test namespaces only) |
//!
//! Every binary parses its command line with `clap` (`--help` lists the options; a bad
//! argument exits with status 2 and clap's message).
//!
//! To learn the library, read `examples/` first: each is under 60 lines, uses only
//! `lrp_net`'s public API and shows one entry point end to end — `udp_echo`
//! (`Nic::open` → `Stack::new` → `udp_bind` → `recv_from` → `stats`), `tcp_hello`
//! (`tcp_listen` → `accept`), `raw_channel` (a demux `Rule` → `Nic::channel` → rewrite in
//! place → `transmit`) and `sim_udp` (the simulated NIC, no root).
//!
//! The reusable parts live here, with unit tests: [`director`] (the director's
//! configuration, for now), [`gen`] (frame templates, source walks and pacing for
//! `lrp-gen`), [`http`] (request routing, serving a
//! connection, a client; message heads are parsed by `httparse`), [`object`] (the
//! deterministic object bodies), [`net`] (the common network options, a `clap`
//! argument group every binary flattens, and opening a stack), [`report`] (rates and
//! percentiles).
//!
//! [`director`] is the load-balancer director's core, in progress: its configuration
//! (TOML), schedulers (rr, wrr, lc, wlc, sh, Maglev) and the connection table — pure logic
//! with no data path yet — and health checks of the real servers over lrp TCP.

pub mod director;
pub mod gen;
pub mod http;
pub mod net;
pub mod object;
pub mod report;

#[cfg(test)]
mod sim_tests;
