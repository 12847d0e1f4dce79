//! # lrp-net — Lazy Receiver Processing on a network interface
//!
//! `lrp-core` holds the I/O-free parts of LRP (classification, the demux table, NI
//! channels, accounting). This crate connects them to frames on a wire, in layers:
//!
//! ```text
//!   stack            sockets over smoltcp: UDP, TCP; lazy protocol work on recv   (stack)
//!     │ Channel::recv / transmit / wait / account
//!   channels         Nic + Channel: demux rules, one NI channel + Account per endpoint,
//!     │              the poll step (SOFT-LRP demux, EAGER baseline)               (nic, soft)
//!     │ backend seam: RX ring(s), fill/completion, TX, per-channel queues + gates
//!   NIC backends     the simulated NIC (Nic::sim); AF_XDP (Nic::open)            (sim, xdp)
//!     │ chunk addresses
//!   frame pool       one mmap'd area = the AF_XDP UMEM; Frame = owned chunk     (pool)
//! ```
//!
//! * [`pool`] — the [`FramePool`]: one page-aligned mapping cut into
//!   chunks, a lock-free free list, and [`Frame`], the owned handle to one
//!   chunk. The same memory is registered as the AF_XDP UMEM, so frames are received,
//!   rewritten and transmitted in place. Chunk ownership is tracked and checked, so no
//!   frame is ever lost or handed out twice ([`Nic::census`]).
//! * NIC backends — own the rings between the pool and the wire. [`sim`] is an in-memory
//!   NIC with the kernel's ring semantics (and a [`SimPeer`](sim::SimPeer) at the far end
//!   of the wire) for tests and benchmarks without root; [`xdp`] is the AF_XDP layer,
//!   which [`Nic::open`] puts behind the same API on a real interface queue.
//! * [`Nic`] and [`Channel`] — the API applications use: open a channel per endpoint
//!   with a [`Rule`], receive its frames, transmit, wait, read its statistics.
//! * `stack` — sockets on top of channels.
//!
//! # The three modes
//!
//! The same program runs in each [`Mode`]; experiments compare them by changing one
//! setting in [`NicConfig`]:
//!
//! | mode | early demux | where frames wait | what is dropped under overload, and when |
//! |---|---|---|---|
//! | [`Mode::NiLrp`] | in the NIC (XDP program) | the channel's own ring in the NIC | the channel's excess, at its closed gate, before the copy |
//! | [`Mode::SoftLrp`] | in the poll step, before any protocol work | the channel's `NiChannel` | the channel's excess, early discard at its full channel |
//! | [`Mode::Eager`] | after protocol work (baseline) | one shared input queue, then the endpoint queue | anybody's frames at the shared queue; the endpoint's after the work was spent |
//!
//! In both LRP modes the protocol work (checksums, UDP/TCP) is done by the receiver,
//! on its own thread, when it calls `recv`, and charged to its [`Account`](lrp_core::account::Account).
//!
//! # Example
//!
//! Two UDP endpoints and an unbound port on the simulated NIC, in SOFT-LRP:
//!
//! ```
//! use lrp_net::{Mode, Nic, NicConfig, Rule};
//! use lrp_net::sim::{build, SimConfig};
//! use lrp_core::flow::Proto;
//! use std::net::SocketAddrV4;
//!
//! let config = NicConfig::default().frame_count(1024).mode(Mode::SoftLrp);
//! let (nic, peer) = Nic::sim(SimConfig::new(config))?;
//! let dns = nic.channel(Rule::listener(Proto::Udp, None, 53), 128)?;
//! let ntp = nic.channel(Rule::listener(Proto::Udp, None, 123), 128)?;
//!
//! let client: SocketAddrV4 = "10.0.0.1:40000".parse()?;
//! for port in [53, 123, 53, 9] {
//!     let server = SocketAddrV4::new([10, 0, 0, 2].into(), port);
//!     assert!(peer.inject(&build::udp_v4(client, server, b"hi")));
//! }
//! nic.poll_rx(64); // the demux step (receivers would also run it from recv)
//!
//! let mut frames = Vec::new();
//! assert_eq!(dns.try_recv_batch(16, &mut frames), 2);
//! assert_eq!(ntp.try_recv_batch(16, &mut frames), 1);
//! assert_eq!(peer.take_kernel().len(), 1); // port 9: nobody's, passed to the kernel
//! assert_eq!(dns.stats().delivered_packets, 2);
//!
//! drop(frames);
//! assert!(nic.census().is_conserved()); // every frame is back where it belongs
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod backend;
mod config;
mod error;
pub mod nic;
mod notify;
pub mod pool;
mod rule;
pub mod sim;
pub mod stack;
mod sys;
#[cfg(feature = "testing")]
pub mod testnet;
pub mod xdp;

pub use backend::BackendStats;
pub use config::{Mode, NicConfig, XdpAttach};
pub use error::{Error, Result};
pub use nic::{Census, Channel, ChannelStats, Nic, NicStats};
pub use pool::{Frame, FramePool};
pub use rule::Rule;
pub use stack::{EagerDriver, SocketStats, Stack, StackConfig, TcpListener, TcpStream, UdpSocket};

// The lrp-core types a user of this crate meets: rules, flows, statistics.
pub use lrp_core::account::{Account, AccountSnapshot, DropReason};
pub use lrp_core::demux::{ChannelId, DefaultAction, ListenerKey};
pub use lrp_core::flow::{FlowKey, Proto};
pub use smoltcp::wire::{EthernetAddress, Ipv4Cidr};
