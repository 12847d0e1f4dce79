//! UMEM registration and AF_XDP sockets (over xdpilone), at the level of UMEM addresses.
//!
//! Three objects, matching the kernel's, each in a file of its own (`umem.rs`, `queue.rs`,
//! `socket.rs`):
//!
//! * [`Umem`] — a memory area registered with the kernel, cut into fixed-size chunks:
//!   a [`FramePool`]'s area ([`Umem::from_pool`]), or caller memory ([`Umem::new`],
//!   `unsafe`). This layer moves chunk *addresses* (offsets into the area) through rings
//!   and never touches the bytes.
//! * [`XskQueue`] — the single owner of the **fill** and **completion** rings of one
//!   `(interface, queue)`. All sockets bound to that queue share them: frames for every
//!   channel come from this fill ring, and every transmitted frame comes back through
//!   this completion ring. Size the fill ring to hold every frame of the queue (we do:
//!   both rings get the next power of two of the UMEM's frame count), or fill-ring-empty
//!   drops hit all channels at once and break their isolation.
//! * [`XskSocket`] — one AF_XDP socket with its own **RX** and **TX** rings and its own
//!   XSKMAP slot: one NI channel. The first socket of a queue is created with the queue
//!   and binds with the mode flags (copy / zero-copy, need-wakeup); the others bind with
//!   `XDP_SHARED_UMEM` and no flags (the kernel refuses flags there; they inherit them).
//!
//! # Frame ownership
//!
//! Over a pool, the pool's chunk states say who owns each chunk, and the safe ring
//! operations move chunks only through the pool's checked transitions:
//! [`XskQueue::fill_from_pool`] (free → kernel), [`XskSocket::receive_frames`] (kernel →
//! a [`Frame`]), [`XskSocket::transmit_frames`] (a `Frame` → kernel) and
//! [`XskQueue::complete_to_pool`] (kernel → free). The kernel therefore only ever writes
//! or reads chunks no [`Frame`] refers to. The raw operations that post arbitrary
//! addresses ([`XskQueue::fill`], [`XskSocket::transmit`]) are `unsafe`: they are for
//! caller-managed memory, where that guarantee is the caller's.
//!
//! Everything here must be created from a thread that is in the network namespace of the
//! interface: the socket's namespace is fixed when it is created.
//!
//! [`Frame`]: crate::pool::Frame
//! [`FramePool`]: crate::pool::FramePool

mod queue;
mod socket;
mod umem;

pub use queue::{BindMode, QueueConfig, XskQueue};
pub use socket::{Desc, SocketConfig, XskSocket, XskStats};
pub use umem::{Umem, UmemConfig, ETHERNET_OVERHEAD, XDP_PACKET_HEADROOM};
