//! The frame pool: one UMEM-shaped memory area, a lock-free free list and owned frame
//! handles.
//!
//! Every frame lrp touches lives in one [`FramePool`]: a single page-aligned anonymous
//! mapping of `frame_count * frame_size` bytes, cut into fixed-size *chunks*. In real
//! AF_XDP mode this same mapping is registered with the kernel as the UMEM
//! ([`FramePool::umem_area`]), so a received frame is read, rewritten and transmitted in
//! place, without a copy; the simulated NIC uses the same pool, so tests exercise the same
//! frame bookkeeping.
//!
//! # Ownership of a chunk
//!
//! Each chunk is, at any time, in exactly one of three states, tracked per chunk in an
//! atomic byte and changed only by compare-and-swap:
//!
//! | state | where the chunk is | who may touch its bytes |
//! |---|---|---|
//! | **free** | on the pool's free list | nobody |
//! | **kernel** | posted to the NIC: fill ring, an RX ring, a TX ring, the completion ring (or the simulated equivalents) | the NIC/kernel only |
//! | **held** | behind exactly one [`Frame`] handle (in an application's hands or queued in a channel) | the owner of that `Frame` |
//!
//! A [`Frame`] is created only by a successful transition *into* **held**, and the state
//! leaves **held** only when that `Frame` is consumed (dropped, or handed to the NIC for
//! transmission). So there is never more than one `Frame` for a chunk, and `&mut` access
//! through [`DerefMut`] is exclusive as far as this process is concerned. The kernel
//! writes only chunks userspace has posted to the fill ring and reads only chunks posted
//! to the TX ring — both **kernel** state, never **held** — so the kernel does not alias
//! a `Frame` either. An address the NIC hands back in the wrong state (a duplicate
//! descriptor, an address never posted) is refused and counted in
//! [`PoolCensus::violations`] instead of creating a second handle.
//!
//! Dropping a `Frame` puts its chunk back on the free list: no frame is ever lost, and a
//! [`FramePool::census`] at a quiescent point always satisfies
//! `free + kernel + held == total`.
//!
//! ```
//! use lrp_net::pool::FramePool;
//!
//! let pool = FramePool::new(8, 2048, 0)?;
//! let mut frame = pool.alloc().expect("a fresh pool has free frames");
//! frame.copy_from(b"hello")?;
//! assert_eq!(&frame[..], b"hello");
//! assert_eq!(pool.census().held, 1);
//! drop(frame); // back on the free list
//! let census = pool.census();
//! assert_eq!((census.free, census.held, census.total), (8, 0, 8));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::io;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

/// Smallest chunk size AF_XDP accepts in aligned mode (`XDP_UMEM_MIN_CHUNK_SIZE`).
pub const MIN_FRAME_SIZE: u32 = 2048;

/// Largest chunk size accepted here (one 4 KiB page, the AF_XDP aligned-mode maximum on
/// x86-64).
pub const MAX_FRAME_SIZE: u32 = 4096;

const FREE: u8 = 0;
const KERNEL: u8 = 1;
const HELD: u8 = 2;

/// Errors of the frame pool.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The pool geometry is not usable (the message says which rule was broken).
    #[error("invalid frame pool configuration: {0}")]
    InvalidConfig(&'static str),
    /// `mmap` of the frame area failed.
    #[error("mapping the frame area failed: {0}")]
    Map(#[source] io::Error),
    /// The NIC returned an address outside the area, or a length beyond its chunk.
    #[error("descriptor out of bounds: addr {addr:#x}, len {len}")]
    OutOfBounds {
        /// The address in the descriptor.
        addr: u64,
        /// The length in the descriptor.
        len: u32,
    },
    /// The NIC returned a chunk that is not in the state the transition requires (for
    /// example a duplicate RX descriptor). The chunk was left untouched.
    #[error("chunk at {addr:#x} is {found}, expected {expected}")]
    WrongState {
        /// The chunk's base address.
        addr: u64,
        /// The state the transition needed.
        expected: &'static str,
        /// The state the chunk was in.
        found: &'static str,
    },
}

/// A length or head adjustment that does not fit in the frame's chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("frame capacity exceeded: {requested} bytes requested, {available} available")]
pub struct CapacityError {
    /// Bytes the operation needed.
    pub requested: usize,
    /// Bytes that were available for it.
    pub available: usize,
}

/// Frame counts of a pool, by chunk state. See the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolCensus {
    /// Chunks in the pool.
    pub total: usize,
    /// Chunks on the free list.
    pub free: usize,
    /// Chunks posted to the NIC (fill, RX, TX and completion rings).
    pub kernel: usize,
    /// Chunks behind a [`Frame`] handle (application or channel queues).
    pub held: usize,
    /// Descriptors the NIC returned in the wrong state or out of bounds (refused). Zero
    /// unless the NIC, or a backend, is broken.
    pub violations: u64,
}

impl PoolCensus {
    /// Whether every chunk is accounted for exactly once: `free + kernel + held == total`.
    pub fn is_conserved(&self) -> bool {
        self.free + self.kernel + self.held == self.total
    }
}

/// A descriptor as the NIC rings carry it: UMEM address of the first data byte and the
/// data length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Desc {
    /// Offset of the first data byte from the start of the area.
    pub(crate) addr: u64,
    /// Data length in bytes.
    pub(crate) len: u32,
}

/// The anonymous mapping backing a pool. Unmapped on drop.
struct Area {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: `Area` is an owned anonymous mapping; the raw pointer is only an address. Access
// to the bytes is mediated by `Frame`, whose exclusivity is enforced by the chunk states
// (module docs), so sharing the address between threads is sound.
unsafe impl Send for Area {}
// SAFETY: see the `Send` impl: `&Area` exposes no access to the bytes by itself.
unsafe impl Sync for Area {}

impl Area {
    fn map(len: usize) -> Result<Area, PoolError> {
        // SAFETY: an anonymous private mapping with a null hint creates fresh memory and
        // touches no existing mapping; the result is checked against MAP_FAILED.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(PoolError::Map(io::Error::last_os_error()));
        }
        let base = NonNull::new(ptr.cast::<u8>())
            .ok_or(PoolError::InvalidConfig("mmap returned a null mapping"))?;
        Ok(Area { base, len })
    }
}

impl Drop for Area {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` are exactly the mapping created in `Area::map`, unmapped once
        // here. Every `Frame` holds an `Arc` to the pool, so no handle outlives the mapping;
        // a backend that registered the area as a UMEM keeps a `FramePool` clone alive for
        // as long as the kernel may access it.
        let rc = unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
        debug_assert_eq!(rc, 0, "munmap of the frame area failed");
    }
}

struct Shared {
    area: Area,
    frame_size: u32,
    frame_shift: u32,
    frame_count: u32,
    headroom: u32,
    /// Base addresses of free chunks. Capacity `frame_count`, so a push of a chunk that
    /// was not free can never fail.
    free: ArrayQueue<u64>,
    /// One state byte per chunk: `FREE`, `KERNEL` or `HELD`.
    state: Box<[AtomicU8]>,
    held: AtomicUsize,
    kernel: AtomicUsize,
    violations: AtomicU64,
}

impl Shared {
    fn state_name(s: u8) -> &'static str {
        match s {
            FREE => "free",
            KERNEL => "kernel",
            HELD => "held",
            _ => "invalid",
        }
    }

    /// Move chunk `idx` from `from` to `to`; on mismatch count a violation.
    fn transition(&self, idx: usize, from: u8, to: u8) -> Result<(), PoolError> {
        match self.state[idx].compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => Ok(()),
            Err(found) => {
                self.violations.fetch_add(1, Ordering::Relaxed);
                Err(PoolError::WrongState {
                    addr: (idx as u64) << self.frame_shift,
                    expected: Self::state_name(from),
                    found: Self::state_name(found),
                })
            }
        }
    }

    /// Put a chunk whose state was just set to `FREE` back on the free list.
    fn push_free(&self, chunk_addr: u64) {
        if self.free.push(chunk_addr).is_err() {
            // Unreachable while the state machine holds: the queue has room for every
            // chunk and a chunk is pushed only on its transition to FREE. Count it rather
            // than panic in a destructor.
            self.violations.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn release_held(&self, chunk_addr: u64) {
        let idx = (chunk_addr >> self.frame_shift) as usize;
        if self.transition(idx, HELD, FREE).is_ok() {
            self.held.fetch_sub(1, Ordering::Relaxed);
            self.push_free(chunk_addr);
        }
    }
}

/// The frame pool: a page-aligned area of `frame_count` chunks of `frame_size` bytes and
/// a lock-free free list. Cheap to clone (a reference-counted handle); `Send + Sync`.
///
/// See the [module docs](self) for the ownership rules and an example.
#[derive(Clone)]
pub struct FramePool {
    shared: Arc<Shared>,
}

impl fmt::Debug for FramePool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FramePool")
            .field("frame_count", &self.shared.frame_count)
            .field("frame_size", &self.shared.frame_size)
            .field("headroom", &self.shared.headroom)
            .field("census", &self.counts())
            .finish()
    }
}

impl FramePool {
    /// Map a pool of `frame_count` chunks of `frame_size` bytes. Frames from
    /// [`alloc`](Self::alloc) start their data `headroom` bytes into the chunk, leaving room
    /// to prepend headers in place ([`Frame::push_head`]).
    ///
    /// `frame_size` must be a power of two in
    /// [`MIN_FRAME_SIZE`]`..=`[`MAX_FRAME_SIZE`] (the AF_XDP aligned-chunk rules),
    /// `frame_count` at least 1, and `headroom` at most half a frame.
    ///
    /// ```
    /// # use lrp_net::pool::FramePool;
    /// assert!(FramePool::new(16, 2048, 64).is_ok());
    /// assert!(FramePool::new(16, 1500, 0).is_err()); // not a power of two
    /// ```
    pub fn new(frame_count: u32, frame_size: u32, headroom: u32) -> Result<FramePool, PoolError> {
        if !frame_size.is_power_of_two() || !(MIN_FRAME_SIZE..=MAX_FRAME_SIZE).contains(&frame_size)
        {
            return Err(PoolError::InvalidConfig(
                "frame_size must be a power of two between 2048 and 4096",
            ));
        }
        if frame_count == 0 {
            return Err(PoolError::InvalidConfig("frame_count must be at least 1"));
        }
        if headroom > frame_size / 2 {
            return Err(PoolError::InvalidConfig(
                "headroom must be at most half a frame",
            ));
        }
        let len = (frame_count as usize)
            .checked_mul(frame_size as usize)
            .filter(|&l| l <= isize::MAX as usize)
            .ok_or(PoolError::InvalidConfig("frame area too large"))?;
        let area = Area::map(len)?;
        let frame_shift = frame_size.trailing_zeros();
        let free = ArrayQueue::new(frame_count as usize);
        for idx in 0..u64::from(frame_count) {
            // Cannot fail: the queue was created with room for exactly these entries.
            let _ = free.push(idx << frame_shift);
        }
        let state = (0..frame_count).map(|_| AtomicU8::new(FREE)).collect();
        Ok(FramePool {
            shared: Arc::new(Shared {
                area,
                frame_size,
                frame_shift,
                frame_count,
                headroom,
                free,
                state,
                held: AtomicUsize::new(0),
                kernel: AtomicUsize::new(0),
                violations: AtomicU64::new(0),
            }),
        })
    }

    /// Take a free frame to build a packet in: empty, data starting after the pool's
    /// headroom. `None` when every chunk is in use.
    ///
    /// ```
    /// # use lrp_net::pool::FramePool;
    /// let pool = FramePool::new(1, 2048, 0)?;
    /// let f = pool.alloc().unwrap();
    /// assert!(f.is_empty());
    /// assert_eq!(f.capacity(), 2048);
    /// assert!(pool.alloc().is_none()); // the only chunk is held
    /// # Ok::<(), lrp_net::pool::PoolError>(())
    /// ```
    pub fn alloc(&self) -> Option<Frame> {
        let s = &self.shared;
        let chunk_addr = s.free.pop()?;
        let idx = (chunk_addr >> s.frame_shift) as usize;
        match s.transition(idx, FREE, HELD) {
            Ok(()) => {
                s.held.fetch_add(1, Ordering::Relaxed);
                Some(Frame {
                    pool: Arc::clone(s),
                    chunk_addr,
                    head: s.headroom,
                    len: 0,
                })
            }
            // A chunk on the free list is always FREE; the violation is counted.
            Err(_) => None,
        }
    }

    /// Size of every chunk in bytes.
    pub fn frame_size(&self) -> u32 {
        self.shared.frame_size
    }

    /// Number of chunks.
    pub fn frame_count(&self) -> u32 {
        self.shared.frame_count
    }

    /// Headroom reserved in front of the data of frames from [`alloc`](Self::alloc).
    pub fn headroom(&self) -> u32 {
        self.shared.headroom
    }

    /// The whole frame area: the pointer and length to register as an AF_XDP UMEM
    /// (`xdpilone::Umem::new(config, pool.umem_area())`). Page aligned.
    ///
    /// Obtaining the pointer is safe; *using* it is the caller's unsafe responsibility: the
    /// area must only be handed to the kernel, and the kernel may only access chunks that
    /// are in the **kernel** state (posted via [`FramePool`]'s crate-internal
    /// `take_for_kernel`). Keep a clone of this `FramePool` alive for as long as the
    /// kernel may access the area.
    pub fn umem_area(&self) -> NonNull<[u8]> {
        let a = &self.shared.area;
        NonNull::slice_from_raw_parts(a.base, a.len)
    }

    /// Cheap counts from the per-state counters (approximate while other threads move
    /// frames; exact at a quiescent point). See [`census`](Self::census) for an audit.
    pub fn counts(&self) -> PoolCensus {
        let s = &self.shared;
        PoolCensus {
            total: s.frame_count as usize,
            free: s.free.len(),
            kernel: s.kernel.load(Ordering::Relaxed),
            held: s.held.load(Ordering::Relaxed),
            violations: s.violations.load(Ordering::Relaxed),
        }
    }

    /// Audit every chunk's state byte and count them. At a quiescent point (no other
    /// thread moving frames) the result is exact, `free` also equals the free-list length,
    /// and [`PoolCensus::is_conserved`] holds. Costs one pass over the state array.
    pub fn census(&self) -> PoolCensus {
        let s = &self.shared;
        let mut c = PoolCensus {
            total: s.frame_count as usize,
            violations: s.violations.load(Ordering::Relaxed),
            ..PoolCensus::default()
        };
        for st in s.state.iter() {
            match st.load(Ordering::Acquire) {
                FREE => c.free += 1,
                KERNEL => c.kernel += 1,
                HELD => c.held += 1,
                _ => c.violations += 1,
            }
        }
        if c.free != s.free.len() {
            // A free chunk missing from the free list (or the reverse) would be a lost
            // frame; report it through the violation count rather than hide it.
            c.violations += 1;
        }
        c
    }

    /// Number of free chunks (free-list length).
    pub fn free_len(&self) -> usize {
        self.shared.free.len()
    }

    /// Whether two handles refer to the same pool.
    pub fn same_pool(&self, other: &FramePool) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// Whether `frame` belongs to this pool.
    pub fn owns(&self, frame: &Frame) -> bool {
        Arc::ptr_eq(&self.shared, &frame.pool)
    }

    // ---- NIC-side transitions (used by the backends) -------------------------------------

    /// Take a free chunk to post to the NIC (fill ring): **free → kernel**. Returns the
    /// chunk's base address.
    pub(crate) fn take_for_kernel(&self) -> Option<u64> {
        let s = &self.shared;
        let chunk_addr = s.free.pop()?;
        let idx = (chunk_addr >> s.frame_shift) as usize;
        s.transition(idx, FREE, KERNEL).ok()?;
        s.kernel.fetch_add(1, Ordering::Relaxed);
        Some(chunk_addr)
    }

    /// Turn a descriptor the NIC produced (RX ring) into a `Frame`: **kernel → held**.
    /// `addr` may point anywhere inside its chunk (the kernel puts data after its own
    /// headroom); the frame's data is `addr..addr+len`.
    pub(crate) fn frame_from_kernel(&self, desc: Desc) -> Result<Frame, PoolError> {
        let s = &self.shared;
        let (idx, head) = self.locate(desc)?;
        s.transition(idx, KERNEL, HELD)?;
        s.kernel.fetch_sub(1, Ordering::Relaxed);
        s.held.fetch_add(1, Ordering::Relaxed);
        Ok(Frame {
            pool: Arc::clone(s),
            chunk_addr: (idx as u64) << s.frame_shift,
            head,
            len: desc.len,
        })
    }

    /// Take back a chunk the NIC is done with (completion ring, or a descriptor the
    /// simulated NIC dropped): **kernel → free**. `addr` may point anywhere inside the
    /// chunk.
    pub(crate) fn release_from_kernel(&self, addr: u64) -> Result<(), PoolError> {
        let s = &self.shared;
        let (idx, _) = self.locate(Desc { addr, len: 0 })?;
        s.transition(idx, KERNEL, FREE)?;
        s.kernel.fetch_sub(1, Ordering::Relaxed);
        s.push_free((idx as u64) << s.frame_shift);
        Ok(())
    }

    /// Chunk index and offset in the chunk of a descriptor, bounds-checked.
    fn locate(&self, desc: Desc) -> Result<(usize, u32), PoolError> {
        let s = &self.shared;
        let idx = desc.addr >> s.frame_shift;
        let head = (desc.addr & u64::from(s.frame_size - 1)) as u32;
        let fits = u64::from(head) + u64::from(desc.len) <= u64::from(s.frame_size);
        if idx >= u64::from(s.frame_count) || !fits {
            s.violations.fetch_add(1, Ordering::Relaxed);
            return Err(PoolError::OutOfBounds {
                addr: desc.addr,
                len: desc.len,
            });
        }
        Ok((idx as usize, head))
    }
}

/// An owned handle to one chunk of a [`FramePool`], holding one frame.
///
/// Dereferences to the frame's bytes (`[u8]`), mutably too: a forwarding application
/// rewrites headers in place and transmits the same chunk. The data occupies
/// `headroom()..headroom() + len()` of the chunk; [`push_head`](Self::push_head) and
/// [`pull_head`](Self::pull_head) move its start (to add or strip an encapsulation
/// header), [`set_len`](Self::set_len) its end. Dropping the `Frame` returns the chunk to
/// the pool's free list.
///
/// ```
/// # use lrp_net::pool::FramePool;
/// let pool = FramePool::new(4, 2048, 64)?;
/// let mut f = pool.alloc().unwrap();
/// f.copy_from(&[0x45, 0, 0, 20])?;   // an IPv4 header, say
/// f.push_head(14)?;                  // make room for an Ethernet header in front
/// f[12..14].copy_from_slice(&[0x08, 0x00]);
/// assert_eq!(f.len(), 18);
/// assert_eq!(f.headroom(), 50);
/// f.pull_head(14)?;                  // and strip it again
/// assert_eq!(&f[..], &[0x45, 0, 0, 20]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Frame {
    pool: Arc<Shared>,
    /// Base address of the chunk (offset from the area start).
    chunk_addr: u64,
    /// Offset of the first data byte within the chunk.
    head: u32,
    /// Data length.
    len: u32,
}

impl Frame {
    /// Bytes available for data from the current start to the end of the chunk.
    pub fn capacity(&self) -> usize {
        (self.pool.frame_size - self.head) as usize
    }

    /// Bytes in front of the data, available to [`push_head`](Self::push_head).
    pub fn headroom(&self) -> usize {
        self.head as usize
    }

    /// Set the data length (grow into, or shrink within, the chunk). Bytes exposed by
    /// growing hold whatever the chunk held before (never uninitialized memory).
    pub fn set_len(&mut self, len: usize) -> Result<(), CapacityError> {
        if len > self.capacity() {
            return Err(CapacityError {
                requested: len,
                available: self.capacity(),
            });
        }
        self.len = len as u32;
        Ok(())
    }

    /// Replace the data with a copy of `data`.
    pub fn copy_from(&mut self, data: &[u8]) -> Result<(), CapacityError> {
        self.set_len(data.len())?;
        self.copy_from_slice(data);
        Ok(())
    }

    /// Extend the data `n` bytes to the front, into the headroom (like `skb_push`). The new
    /// leading bytes hold stale chunk contents; the caller writes the header there.
    pub fn push_head(&mut self, n: usize) -> Result<(), CapacityError> {
        if n > self.headroom() {
            return Err(CapacityError {
                requested: n,
                available: self.headroom(),
            });
        }
        self.head -= n as u32;
        self.len += n as u32;
        Ok(())
    }

    /// Remove `n` bytes from the front of the data (like `skb_pull`), e.g. to strip a
    /// header before handing the payload on.
    pub fn pull_head(&mut self, n: usize) -> Result<(), CapacityError> {
        if n > self.len as usize {
            return Err(CapacityError {
                requested: n,
                available: self.len as usize,
            });
        }
        self.head += n as u32;
        self.len -= n as u32;
        Ok(())
    }

    /// UMEM address of the first data byte (what an AF_XDP descriptor carries).
    pub fn umem_addr(&self) -> u64 {
        self.chunk_addr + u64::from(self.head)
    }

    /// Hand the chunk to the NIC (TX ring): **held → kernel**. Returns the descriptor.
    pub(crate) fn into_kernel(self) -> Desc {
        let this = ManuallyDrop::new(self);
        // SAFETY: `this` is never used again and its destructor does not run, so moving the
        // `Arc` out of it transfers the one strong reference exactly once.
        let pool = unsafe { std::ptr::read(&this.pool) };
        let idx = (this.chunk_addr >> pool.frame_shift) as usize;
        // A Frame's chunk is HELD by construction; `transition` counts a violation if not.
        if pool.transition(idx, HELD, KERNEL).is_ok() {
            pool.held.fetch_sub(1, Ordering::Relaxed);
            pool.kernel.fetch_add(1, Ordering::Relaxed);
        }
        Desc {
            addr: this.chunk_addr + u64::from(this.head),
            len: this.len,
        }
    }

    fn data_ptr(&self) -> *mut u8 {
        // `chunk_addr + head + len <= area len` holds by construction (`locate`, `alloc`)
        // and is maintained by every length/head mutator.
        let off = (self.chunk_addr + u64::from(self.head)) as usize;
        // SAFETY: `off` is within the mapping (see above), so the offset pointer stays in
        // the same allocation.
        unsafe { self.pool.area.base.as_ptr().add(off) }
    }
}

impl Deref for Frame {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: the range `data_ptr()..+len` lies inside this frame's chunk, inside the
        // live mapping (kept alive by `self.pool`); the bytes are initialized (anonymous
        // mappings are zero-filled). This `Frame` is the only handle to the chunk and the
        // kernel does not access held chunks (module docs), so no `&mut` aliases it while
        // `&self` is borrowed.
        unsafe { std::slice::from_raw_parts(self.data_ptr(), self.len as usize) }
    }
}

impl DerefMut for Frame {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; `&mut self` makes this access exclusive among the users
        // of the single handle.
        unsafe { std::slice::from_raw_parts_mut(self.data_ptr(), self.len as usize) }
    }
}

impl AsRef<[u8]> for Frame {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl AsMut<[u8]> for Frame {
    fn as_mut(&mut self) -> &mut [u8] {
        self
    }
}

impl lrp_core::channel::FrameLen for Frame {
    fn frame_len(&self) -> usize {
        self.len()
    }
}

impl Drop for Frame {
    fn drop(&mut self) {
        self.pool.release_held(self.chunk_addr);
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame")
            .field("chunk_addr", &format_args!("{:#x}", self.chunk_addr))
            .field("head", &self.head)
            .field("len", &self.len)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_is_validated() {
        assert!(matches!(
            FramePool::new(4, 1024, 0),
            Err(PoolError::InvalidConfig(_))
        ));
        assert!(matches!(
            FramePool::new(4, 3000, 0),
            Err(PoolError::InvalidConfig(_))
        ));
        assert!(matches!(
            FramePool::new(4, 8192, 0),
            Err(PoolError::InvalidConfig(_))
        ));
        assert!(matches!(
            FramePool::new(0, 2048, 0),
            Err(PoolError::InvalidConfig(_))
        ));
        assert!(matches!(
            FramePool::new(4, 2048, 1025),
            Err(PoolError::InvalidConfig(_))
        ));
        let p = FramePool::new(3, 4096, 256).unwrap();
        assert_eq!(
            (p.frame_count(), p.frame_size(), p.headroom()),
            (3, 4096, 256)
        );
    }

    #[test]
    fn area_is_page_aligned_and_sized() {
        let p = FramePool::new(5, 2048, 0).unwrap();
        let area = p.umem_area();
        assert_eq!(area.len(), 5 * 2048);
        assert_eq!(area.cast::<u8>().as_ptr() as usize % 4096, 0);
    }

    #[test]
    fn alloc_exhausts_and_drop_returns() {
        let p = FramePool::new(3, 2048, 0).unwrap();
        let frames: Vec<Frame> = (0..3).map(|_| p.alloc().unwrap()).collect();
        assert!(p.alloc().is_none());
        let mut addrs: Vec<u64> = frames.iter().map(Frame::umem_addr).collect();
        addrs.sort_unstable();
        assert_eq!(addrs, vec![0, 2048, 4096]);
        assert_eq!(
            p.census(),
            PoolCensus {
                total: 3,
                held: 3,
                ..Default::default()
            }
        );
        drop(frames);
        assert_eq!(
            p.census(),
            PoolCensus {
                total: 3,
                free: 3,
                ..Default::default()
            }
        );
        assert_eq!(p.counts(), p.census());
    }

    #[test]
    fn frames_do_not_alias() {
        let p = FramePool::new(2, 2048, 0).unwrap();
        let mut a = p.alloc().unwrap();
        let mut b = p.alloc().unwrap();
        a.set_len(2048).unwrap();
        b.set_len(2048).unwrap();
        a.fill(0xaa);
        b.fill(0x55);
        assert!(a.iter().all(|&x| x == 0xaa));
        assert!(b.iter().all(|&x| x == 0x55));
    }

    #[test]
    fn length_and_head_adjustments_are_bounded() {
        let p = FramePool::new(1, 2048, 128).unwrap();
        let mut f = p.alloc().unwrap();
        assert_eq!((f.headroom(), f.capacity(), f.len()), (128, 1920, 0));
        assert_eq!(
            f.set_len(1921),
            Err(CapacityError {
                requested: 1921,
                available: 1920
            })
        );
        f.set_len(1920).unwrap();
        assert_eq!(
            f.push_head(129),
            Err(CapacityError {
                requested: 129,
                available: 128
            })
        );
        f.push_head(128).unwrap();
        assert_eq!((f.headroom(), f.len(), f.capacity()), (0, 2048, 2048));
        assert!(f.pull_head(2049).is_err());
        f.pull_head(2048).unwrap();
        assert_eq!((f.headroom(), f.len()), (2048, 0));
        assert_eq!(f.capacity(), 0);
        assert!(f.copy_from(b"x").is_err());
        assert!(f.copy_from(b"").is_ok());
    }

    #[test]
    fn kernel_round_trip_rx_and_tx() {
        let p = FramePool::new(2, 2048, 0).unwrap();
        let a = p.take_for_kernel().unwrap();
        let b = p.take_for_kernel().unwrap();
        assert!(p.take_for_kernel().is_none());
        assert_eq!(p.census().kernel, 2);
        // The "kernel" writes a frame at offset 256 of chunk `a` and hands it back.
        let desc = Desc {
            addr: a + 256,
            len: 5,
        };
        let mut f = p.frame_from_kernel(desc).unwrap();
        f.copy_from_slice(b"hello");
        assert_eq!(&f[..], b"hello");
        assert_eq!((f.headroom(), f.capacity()), (256, 2048 - 256));
        // A duplicate descriptor is refused, not turned into a second handle.
        assert!(matches!(
            p.frame_from_kernel(desc),
            Err(PoolError::WrongState { .. })
        ));
        // Transmit: held -> kernel, then completion: kernel -> free.
        let d = f.into_kernel();
        assert_eq!(d, desc);
        assert_eq!(p.census().kernel, 2);
        p.release_from_kernel(d.addr).unwrap();
        p.release_from_kernel(b).unwrap();
        assert!(p.release_from_kernel(b).is_err());
        let c = p.census();
        assert_eq!((c.free, c.kernel, c.held, c.violations), (2, 0, 0, 2));
    }

    #[test]
    fn out_of_bounds_descriptors_are_refused() {
        let p = FramePool::new(2, 2048, 0).unwrap();
        let a = p.take_for_kernel().unwrap();
        assert!(matches!(
            p.frame_from_kernel(Desc {
                addr: a + 2000,
                len: 49
            }),
            Err(PoolError::OutOfBounds { .. })
        ));
        assert!(p.frame_from_kernel(Desc { addr: 4096, len: 0 }).is_err());
        assert!(p
            .frame_from_kernel(Desc {
                addr: u64::MAX,
                len: u32::MAX
            })
            .is_err());
        assert!(p
            .frame_from_kernel(Desc {
                addr: a + 2000,
                len: 48
            })
            .is_ok());
    }

    #[test]
    fn frames_cross_threads_and_return() {
        let p = FramePool::new(64, 2048, 0).unwrap();
        let frames: Vec<Frame> = (0..64).map(|_| p.alloc().unwrap()).collect();
        let handles: Vec<_> = frames
            .into_iter()
            .map(|mut f| {
                std::thread::spawn(move || {
                    f.copy_from(&[1, 2, 3]).unwrap();
                    f
                })
            })
            .collect();
        for h in handles {
            assert_eq!(&h.join().unwrap()[..], &[1, 2, 3]);
        }
        assert_eq!(p.census().free, 64);
        assert!(p.census().is_conserved());
    }
}
