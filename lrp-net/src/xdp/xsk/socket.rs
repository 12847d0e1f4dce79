//! [`XskSocket`]: one AF_XDP socket with its own RX and TX rings (one NI channel), its
//! ring sizes, descriptors and the kernel's counters for it.

use std::num::NonZeroU32;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

use xdpilone::xdp::XdpDesc;

use super::umem::Umem;
use crate::pool::{self, Frame, FramePool};
use crate::xdp::{sys, XdpError};

/// Ring sizes of one socket. Both must be powers of two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketConfig {
    /// RX ring entries: the depth of this channel's queue in the kernel.
    pub rx_size: u32,
    /// TX ring entries.
    pub tx_size: u32,
}

impl Default for SocketConfig {
    fn default() -> Self {
        SocketConfig {
            rx_size: 2048,
            tx_size: 2048,
        }
    }
}

impl SocketConfig {
    pub(super) fn validate(&self) -> Result<(NonZeroU32, NonZeroU32), XdpError> {
        let check = |what: &str, v: u32| {
            NonZeroU32::new(v)
                .filter(|v| v.is_power_of_two())
                .ok_or_else(|| {
                    XdpError::InvalidConfig(format!(
                        "{what} must be a non-zero power of two, not {v}"
                    ))
                })
        };
        Ok((
            check("rx_size", self.rx_size)?,
            check("tx_size", self.tx_size)?,
        ))
    }
}

/// A ring descriptor: the UMEM address of the first data byte and the data length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Desc {
    /// Offset of the first data byte from the start of the UMEM area.
    pub addr: u64,
    /// Data length in bytes.
    pub len: u32,
}

/// The kernel's per-socket counters (`XDP_STATISTICS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct XskStats {
    /// Frames dropped for other reasons (e.g. larger than a chunk).
    pub rx_dropped: u64,
    /// Invalid descriptors on the fill ring.
    pub rx_invalid_descs: u64,
    /// Invalid descriptors on the TX ring.
    pub tx_invalid_descs: u64,
    /// Frames dropped because this socket's RX ring was full (after the copy: the XDP
    /// program cannot see it; the gate exists to make this rare).
    pub rx_ring_full: u64,
    /// Times the shared fill ring was empty when a frame arrived (all sockets of the
    /// queue report the same number).
    pub rx_fill_ring_empty_descs: u64,
    /// Times the TX ring was empty when the kernel looked for work.
    pub tx_ring_empty_descs: u64,
}

pub(super) fn map_rings(
    user: &xdpilone::User,
) -> Result<(xdpilone::RingRx, xdpilone::RingTx), XdpError> {
    let rx = user
        .map_rx()
        .map_err(|e| XdpError::errno("mapping the RX ring", "CAP_NET_RAW", e.get_raw()))?;
    let tx = user
        .map_tx()
        .map_err(|e| XdpError::errno("mapping the TX ring", "CAP_NET_RAW", e.get_raw()))?;
    Ok((rx, tx))
}

/// One AF_XDP socket: an RX ring the XDP program fills (through the socket's XSKMAP
/// slot) and a TX ring. One NI channel. `Send`: it can live on the channel's thread.
pub struct XskSocket {
    pub(super) user: xdpilone::User,
    pub(super) rx: xdpilone::RingRx,
    pub(super) tx: xdpilone::RingTx,
    pub(super) umem: Umem,
    pub(super) rx_size: u32,
    pub(super) tx_size: u32,
    pub(super) ifindex: u32,
    pub(super) queue_id: u32,
}

impl std::fmt::Debug for XskSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XskSocket")
            .field("fd", &self.as_raw_fd())
            .field("ifindex", &self.ifindex)
            .field("queue", &self.queue_id)
            .field("rx_len", &self.rx_len())
            .finish()
    }
}

impl XskSocket {
    /// Take up to `max` received descriptors from the RX ring, appending them to `out`.
    /// Returns how many. The chunks are the caller's until posted again.
    pub fn receive(&mut self, max: u32, out: &mut Vec<Desc>) -> u32 {
        if max == 0 {
            return 0;
        }
        let mut r = self.rx.receive(max);
        let mut n = 0;
        while let Some(d) = r.read() {
            out.push(Desc {
                addr: d.addr,
                len: d.len,
            });
            n += 1;
        }
        r.release();
        n
    }

    /// Frames waiting in the RX ring (a relaxed read of the kernel's producer index: the
    /// occupancy that drives the gate).
    pub fn rx_len(&self) -> u32 {
        self.rx.available()
    }

    /// RX ring entries.
    pub fn rx_capacity(&self) -> u32 {
        self.rx_size
    }

    /// Take up to `max` received frames from the RX ring as [`Frame`]s of the UMEM's pool
    /// (**kernel → held**), appending them to `out`. Returns how many descriptors were
    /// taken; a descriptor the pool refuses (out of bounds, or a chunk that was not
    /// posted) is counted as a violation in its census and dropped. Fails only for a UMEM
    /// without a pool.
    pub fn receive_frames(&mut self, max: u32, out: &mut Vec<Frame>) -> Result<u32, XdpError> {
        let pool = self.umem.require_pool()?.clone();
        Ok(self.receive_each(&pool, max, |f| out.push(f)))
    }

    /// [`receive_frames`](Self::receive_frames) handing each frame to `sink`; `pool`
    /// must be this socket's UMEM's pool (the caller checked).
    pub(crate) fn receive_each(
        &mut self,
        pool: &FramePool,
        max: u32,
        mut sink: impl FnMut(Frame),
    ) -> u32 {
        debug_assert!(self.umem.pool().is_some_and(|p| p.same_pool(pool)));
        if max == 0 {
            return 0;
        }
        let mut r = self.rx.receive(max);
        let mut n = 0;
        while let Some(d) = r.read() {
            if let Ok(f) = pool.frame_from_kernel(pool::Desc {
                addr: d.addr,
                len: d.len,
            }) {
                sink(f);
            }
            n += 1;
        }
        r.release();
        n
    }

    /// Queue frames from the front of `frames` for transmission (**held → kernel**): as
    /// many as the TX ring has room for; they are removed from `frames`. Returns how many.
    /// Call [`XskSocket::kick`] afterwards; the chunks come back through the queue's
    /// completion ring ([`XskQueue::complete_to_pool`]).
    ///
    /// Fails for a UMEM without a pool, or if a frame to be sent belongs to another pool
    /// (nothing is queued then).
    ///
    /// [`XskQueue::complete_to_pool`]: super::XskQueue::complete_to_pool
    pub fn transmit_frames(&mut self, frames: &mut Vec<Frame>) -> Result<usize, XdpError> {
        let pool = self.umem.require_pool()?;
        let want = u32::try_from(frames.len()).unwrap_or(u32::MAX);
        if want == 0 {
            return Ok(0);
        }
        let mut w = self.tx.transmit(want);
        let k = (w.capacity() as usize).min(frames.len());
        if frames[..k].iter().any(|f| !pool.owns(f)) {
            return Err(XdpError::InvalidConfig(
                "a frame of another pool cannot be sent through this UMEM".into(),
            ));
        }
        let n = w.insert(frames.drain(..k).map(|f| {
            let d = f.into_kernel();
            XdpDesc {
                addr: d.addr,
                len: d.len,
                options: 0,
            }
        }));
        w.commit();
        debug_assert_eq!(n as usize, k);
        Ok(k)
    }

    /// Queue frames for transmission: as many descriptors from the front of `descs` as
    /// the TX ring has room for. Returns how many (a prefix). Call [`XskSocket::kick`]
    /// afterwards; the chunks come back through the queue's completion ring.
    ///
    /// # Safety
    ///
    /// Every descriptor must lie in one chunk the caller owns and does not write (no
    /// mutable reference to its bytes, no `Frame` of a pool) until the chunk comes back
    /// through the completion ring: the kernel reads it concurrently. Over a pool, use
    /// [`transmit_frames`](Self::transmit_frames) instead.
    pub unsafe fn transmit(&mut self, descs: &[Desc]) -> usize {
        let want = u32::try_from(descs.len()).unwrap_or(u32::MAX);
        if want == 0 {
            return 0;
        }
        let mut w = self.tx.transmit(want);
        let room = w.capacity() as usize;
        let n = w.insert(descs[..room.min(descs.len())].iter().map(|d| XdpDesc {
            addr: d.addr,
            len: d.len,
            options: 0,
        }));
        w.commit();
        n as usize
    }

    /// TX descriptors the kernel has not taken yet.
    pub fn tx_pending(&self) -> u32 {
        self.tx.pending()
    }

    /// TX ring entries.
    pub fn tx_capacity(&self) -> u32 {
        self.tx_size
    }

    /// Ask the kernel to send what is in the TX ring (`sendto`). `Ok(true)`: it took all
    /// it could; `Ok(false)`: call again (copy mode sends a bounded batch per call, or
    /// the completion ring is full and must be drained first).
    pub fn kick(&self) -> Result<bool, XdpError> {
        sys::kick_tx(self.as_fd())
            .map_err(|e| XdpError::os("kicking the TX ring", "CAP_NET_RAW", e))
    }

    /// Whether the kernel asks for a [`kick`](Self::kick) to make TX progress (only with
    /// need-wakeup; copy mode always transmits from the syscall).
    pub fn tx_needs_wakeup(&self) -> bool {
        self.tx.needs_wakeup()
    }

    /// Wait until the RX ring holds a frame or `timeout` passes.
    pub fn poll_rx(&self, timeout: Duration) -> Result<bool, XdpError> {
        sys::poll_in(self.as_fd(), timeout).map_err(|e| XdpError::os("poll", "CAP_NET_RAW", e))
    }

    /// The kernel's counters for this socket.
    pub fn statistics(&self) -> Result<XskStats, XdpError> {
        let s = self.user.statistics_v2().map_err(|e| {
            XdpError::errno("getsockopt(XDP_STATISTICS)", "CAP_NET_RAW", e.get_raw())
        })?;
        Ok(XskStats {
            rx_dropped: s.rx_dropped,
            rx_invalid_descs: s.rx_invalid_descs,
            tx_invalid_descs: s.tx_invalid_descs,
            rx_ring_full: s.rx_ring_full,
            rx_fill_ring_empty_descs: s.rx_fill_ring_empty_descs,
            tx_ring_empty_descs: s.tx_ring_empty_descs,
        })
    }

    /// The UMEM this socket's descriptors point into.
    pub fn umem(&self) -> &Umem {
        &self.umem
    }

    /// Interface index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Queue id.
    pub fn queue_id(&self) -> u32 {
        self.queue_id
    }
}

impl AsRawFd for XskSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.user.as_raw_fd()
    }
}

impl AsFd for XskSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the descriptor is owned by `self.user` (reference counted inside
        // xdpilone) and stays open at least as long as `self`, which the returned borrow
        // cannot outlive.
        unsafe { BorrowedFd::borrow_raw(self.user.as_raw_fd()) }
    }
}
