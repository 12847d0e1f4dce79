//! # lrp-net — Lazy Receiver Processing on a network interface
//!
//! Sockets and raw channels on a Linux interface queue through AF_XDP, with Lazy
//! Receiver Processing (Druschel & Banga, OSDI '96): every frame is classified to its
//! endpoint the moment it arrives (**early demultiplexing**), waits in that endpoint's
//! own bounded **NI channel**, is dropped at once when that channel is full (**early
//! discard**), and gets its protocol processing only when the endpoint's owner asks for
//! data, on the owner's thread (**lazy processing**), which is charged to the endpoint
//! (**accounting**). The conventional design is here too, as the [`Mode::Eager`]
//! baseline, so that every program can compare the two by changing one setting.
//!
//! # Example
//!
//! A UDP socket on the simulated NIC (no privileges needed; on a real interface, as
//! root, [`Nic::open`] takes the place of [`Nic::sim`] and a real peer that of the
//! [`SimPeer`](sim::SimPeer)):
//!
//! ```
//! use lrp_net::sim::SimConfig;
//! use lrp_net::{Mode, Nic, NicConfig, Stack, StackConfig};
//!
//! let (nic, peer) = Nic::sim(SimConfig::new(NicConfig::default().mode(Mode::SoftLrp)))?;
//! let stack = Stack::new(nic, StackConfig::new("10.0.0.2".parse()?, 24))?;
//! let sock = stack.udp_bind("10.0.0.2:9000".parse()?, 64)?; // its own NI channel
//!
//! peer.send_udp("10.0.0.1:5000".parse()?, "10.0.0.2:9000".parse()?, b"ping");
//! let mut buf = [0u8; 64];
//! let (n, from) = sock.recv_from(&mut buf)?; // checksums and UDP processing run here
//! assert_eq!(&buf[..n], b"ping");
//! sock.send_to(b"pong", from)?;
//!
//! let stats = sock.stats(); // what it received, dropped (and why), CPU charged to it
//! assert_eq!(stats.rx_packets, 1);
//! println!("{stats}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layers
//!
//! Each layer uses only the ones below it:
//!
//! ```text
//!   stack        Stack, UdpSocket, TcpListener, TcpStream: sockets over smoltcp,
//!     │          lazy protocol work on recv/accept/read                      (stack)
//!     │ Channel::try_recv / wait / transmit / account
//!   facade       Nic, Channel: demux rules, one NI channel + Account per endpoint,
//!     │          the poll step (SOFT-LRP demux, EAGER baseline)              (nic)
//!     │ Backend seam: RX ring(s), fill/completion, TX, per-channel queues + gates
//!   backends     the simulated NIC (Nic::sim); AF_XDP (Nic::open)         (sim, backend)
//!     │          over the raw AF_XDP layer: UMEM, sockets, XDP program    (xdp)
//!     │ chunk addresses
//!   frame pool   one mmap'd area = the AF_XDP UMEM; Frame = owned chunk  (pool)
//!   leaves       NicConfig and Mode (config), Rule (rule), Error (error)
//! ```
//!
//! * [`pool`] — the [`FramePool`]: one page-aligned mapping cut into chunks, a lock-free
//!   free list, and [`Frame`], the owned handle to one chunk. The same memory is the
//!   AF_XDP UMEM, so frames are received, rewritten and transmitted in place; no frame is
//!   ever lost or handed out twice ([`Nic::census`]).
//! * [`sim`] — an in-memory NIC with the kernel's ring semantics, for tests and
//!   benchmarks without root; [`xdp`] — the raw AF_XDP layer that [`Nic::open`] puts
//!   behind the same API.
//! * [`Nic`] and [`Channel`] ([`nic`]) — open a channel per endpoint with a [`Rule`],
//!   receive its frames, transmit, wait, read its statistics ([`ChannelStats`]). The
//!   [module docs](nic) say who runs the poll step and which locks are held where.
//! * [`stack`] — sockets on top of channels; [`SocketStats`] per socket.
//!
//! Errors: opening things returns [`Error`]; socket I/O returns [`std::io::Result`]
//! with a meaningful [`std::io::ErrorKind`] (see [`Error::kind`]). The socket stack is
//! IPv4-only: binding or connecting to an IPv6 address fails with
//! [`Error::Unsupported`] / [`std::io::ErrorKind::Unsupported`] (raw channels
//! demultiplex IPv6 too).
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
//! In both LRP modes the protocol work (checksums, UDP/TCP) is done by the receiver, on
//! its own thread, when it calls `recv`, and charged to its [`Account`].
//!
//! # Cargo features
//!
//! * `testing` — lrp's own test scaffolding: `testnet` (network namespaces and veth
//!   pairs for real-interface tests), `sim::build` (frame builders), `xdp::baseline`
//!   (raw AF_XDP baseline programs). Not needed to use the library.

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
pub use lrp_core::demux::{ChannelId, DefaultAction, ListenerKey, SourceKey};
pub use lrp_core::flow::{FlowKey, Proto};
pub use smoltcp::wire::{EthernetAddress, Ipv4Cidr};
