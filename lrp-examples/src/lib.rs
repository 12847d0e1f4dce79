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
//!
//! Every binary parses its command line with `clap` (`--help` lists the options; a bad
//! argument exits with status 2 and clap's message).
//!
//! The reusable parts live here, with unit tests: [`http`] (request routing, serving a
//! connection, a client; message heads are parsed by `httparse`), [`object`] (the
//! deterministic object bodies), [`net`] (the common network options, a `clap`
//! argument group every binary flattens, and opening a stack), [`report`] (rates and
//! percentiles).

pub mod http;
pub mod net;
pub mod object;
pub mod report;

#[cfg(test)]
mod sim_tests;
