//! The AF_XDP layer: NI-LRP's "network interface".
//!
//! In LRP, the network interface demultiplexes a frame to its endpoint's channel on
//! arrival and drops it there if the channel is full (early demultiplexing, NI channels,
//! early discard). On Linux that interface is built from three kernel pieces, each with a
//! module here:
//!
//! * [`program`] — the XDP program (C source in `lrp-net/bpf/`, object embedded): parses
//!   the headers in the driver hook, finds the endpoint's slot in BPF maps mirroring
//!   [`lrp_core::demux::Demux`], drops the frame if the slot's **gate** is closed, and
//!   otherwise redirects it to the slot's AF_XDP socket. [`LrpXdp`] loads and attaches it
//!   and writes its maps; [`SlotGate`] drives a gate from a ring's occupancy.
//! * [`xsk`] — the UMEM and the AF_XDP sockets (over xdpilone): one fill/completion owner
//!   per `(interface, queue)` ([`XskQueue`]) and one socket per channel ([`XskSocket`]),
//!   each with its own RX ring (the NI channel) and TX ring, all sharing one UMEM — the
//!   area of a [`FramePool`](crate::FramePool), whose checked chunk states say who owns
//!   each chunk ([`Umem::from_pool`]).
//! * [`dispatch`] — [`Dispatcher`]: the program attached to an interface, which hands
//!   each frame to the demux program of its receive queue, so that each queue can be
//!   served by its own NIC instance.
//!
//! [`Nic::open`](crate::Nic::open) puts these together behind the [`Nic`](crate::Nic) /
//! [`Channel`](crate::Channel) API (the AF_XDP backend, `backend/af_xdp/`); the types here are the
//! raw layer, for tools and tests that drive sockets and maps directly.
//! With the `testing` feature, `baseline::rx_drop` is the receive-and-drop loop used as
//! a throughput baseline.
//!
//! # Setup order (raw layer)
//!
//! From a thread in the interface's network namespace:
//!
//! 1. [`LrpXdp::load`] the program (maps empty, gates open, NI mode, default pass);
//! 2. create a [`FramePool`](crate::FramePool) and its [`Umem`] ([`Umem::from_pool`], or
//!    [`Umem::new`] over caller memory), open the queue ([`XskQueue::open`], which checks
//!    the MTU) and add sockets ([`XskQueue::add_socket`]);
//! 3. post frames to the fill ring ([`XskQueue::fill_from_pool`]) and put each socket in
//!    its slot ([`LrpXdp::set_socket`]);
//! 4. insert rules ([`LrpXdp::insert_listener`], ...) and [`LrpXdp::attach`] (one program
//!    for the interface) or register it with a [`Dispatcher`] for its queue.
//!
//! # Safety
//!
//! `unsafe` is confined to [`abi`] (the `Pod` impls), `xsk` (UMEM registration, the raw
//! ring operations on caller memory and the thread-safety of xdpilone's UMEM handle) and
//! `sys` (system calls). Every block carries a `SAFETY` comment.

pub mod abi;
#[cfg(any(test, feature = "testing"))]
pub mod baseline;
pub mod dispatch;
mod error;
pub mod program;
pub(crate) mod sys;
pub mod xsk;

pub use dispatch::Dispatcher;
pub use error::XdpError;
pub use program::{
    AttachMode, DemuxConfig, DemuxMode, Gates, LrpXdp, ProgramConfig, ProgramCounters,
    SlotCounters, SlotGate, XdpAction,
};
pub use sys::{interface_index, interface_mac, interface_mtu, interface_name};
pub use xsk::{
    BindMode, Desc, QueueConfig, SocketConfig, Umem, UmemConfig, XskQueue, XskSocket, XskStats,
};

#[cfg(test)]
mod tests {
    use super::*;

    fn send<T: Send>() {}
    fn sync<T: Sync>() {}

    #[test]
    fn handles_can_move_to_the_threads_that_use_them() {
        send::<XskSocket>();
        send::<XskQueue>();
        send::<LrpXdp>();
        send::<Gates>();
        send::<SlotGate>();
        sync::<SlotGate>();
        send::<Umem>();
        sync::<Umem>();
        send::<Dispatcher>();
    }
}
