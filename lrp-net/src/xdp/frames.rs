//! An owned UMEM area with a free list, a per-chunk ledger and move-only frame handles:
//! the frame bookkeeping of the raw AF_XDP layer, for standalone use (tests, the
//! receive-and-drop baseline). The NIC facade does the same with its frame pool.
//!
//! Every chunk is in exactly one state, changed only by compare-and-swap:
//!
//! | state | where | bytes touched by |
//! |---|---|---|
//! | free | on the free list | nobody |
//! | rx | posted to the fill ring, in the kernel, or in an RX ring not yet read | the kernel |
//! | held | behind exactly one [`Frame`] | the `Frame`'s owner |
//! | tx | posted to a TX ring, or in the completion ring not yet reaped | the kernel |
//!
//! A [`Frame`] is created only by a successful transition into *held* and consumed by
//! the transition out of it, so there is at most one per chunk and the byte accessors
//! ([`FrameArea::data`], [`FrameArea::data_mut`]) never alias each other or the kernel.
//! A descriptor the kernel returns in the wrong state (never posted, duplicated) is
//! refused and counted in [`FrameCensus::violations`].
//!
//! [`FrameArea::census`] at a quiescent point satisfies
//! `free + rx + held + tx == total` with zero violations; frames in RX rings are part of
//! `rx` (subtract the sockets' [`XskSocket::rx_len`] to split them off).

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;

use super::sys::Mapping;
use super::xsk::{Desc, Umem, UmemConfig, XskQueue, XskSocket};
use super::XdpError;

const FREE: u8 = 0;
const RX: u8 = 1;
const HELD: u8 = 2;
const TX: u8 = 3;

static NEXT_AREA_ID: AtomicU32 = AtomicU32::new(1);

/// A chunk of a [`FrameArea`] owned by userspace: received, or allocated to build a
/// frame in. Move-only; give it back with [`FrameArea::release`] or
/// [`FrameArea::transmit`] (a dropped `Frame` leaks its chunk until the area is dropped,
/// and shows up as `held` in the census).
#[derive(Debug)]
#[must_use = "a Frame owns a UMEM chunk; release or transmit it"]
pub struct Frame {
    /// UMEM address of the first data byte.
    addr: u64,
    len: u32,
    area: u32,
}

impl Frame {
    /// UMEM address of the first data byte.
    pub fn addr(&self) -> u64 {
        self.addr
    }

    /// Data length in bytes.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether the frame holds no data.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Chunk counts of a [`FrameArea`] by state. See the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameCensus {
    /// Chunks in the area.
    pub total: usize,
    /// On the free list.
    pub free: usize,
    /// Posted for reception: fill ring, kernel, or an RX ring not yet read.
    pub rx: usize,
    /// Behind a [`Frame`].
    pub held: usize,
    /// Posted for transmission: TX ring or completion ring.
    pub tx: usize,
    /// Descriptors refused because their chunk was in the wrong state or out of bounds,
    /// plus free-list inconsistencies found by the census. Zero unless something is broken.
    pub violations: u64,
}

impl FrameCensus {
    /// `free + rx + held + tx == total` and no violations.
    pub fn is_conserved(&self) -> bool {
        self.free + self.rx + self.held + self.tx == self.total && self.violations == 0
    }
}

/// An owned, page-aligned UMEM area of `frame_count` chunks, registered with the kernel,
/// with a free list and the chunk ledger of the [module docs](self). `Send + Sync`.
pub struct FrameArea {
    map: Arc<Mapping>,
    umem: Umem,
    id: u32,
    frame_size: u32,
    frame_count: u32,
    /// Where received data starts in a chunk; also where allocated frames start.
    data_offset: u32,
    state: Box<[AtomicU8]>,
    free: ArrayQueue<u64>,
    violations: AtomicU64,
}

impl std::fmt::Debug for FrameArea {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameArea")
            .field("id", &self.id)
            .field("frame_size", &self.frame_size)
            .field("frame_count", &self.frame_count)
            .field("free", &self.free.len())
            .finish()
    }
}

impl FrameArea {
    /// Map `frame_count` chunks of `config.frame_size` bytes and register them as a UMEM.
    /// Every chunk starts free.
    pub fn new(frame_count: u32, config: UmemConfig) -> Result<FrameArea, XdpError> {
        let len = (frame_count as usize)
            .checked_mul(config.frame_size as usize)
            .filter(|&l| l > 0 && l <= isize::MAX as usize)
            .ok_or_else(|| {
                XdpError::InvalidConfig("frame area size is zero or too large".into())
            })?;
        let map = Arc::new(Mapping::anonymous(len).map_err(|e| XdpError::Syscall {
            op: "mmap",
            source: e,
        })?);
        let keep: Arc<dyn Send + Sync> = map.clone();
        // SAFETY: the mapping is fresh, page aligned, readable and writable for `len`
        // bytes, and `keep` keeps it mapped as long as the Umem and its sockets exist.
        // Rust references to chunk bytes are created only for chunks in the HELD state,
        // which are never posted to a ring (module docs).
        let umem = unsafe { Umem::with_keepalive(map.as_slice_ptr(), config, Some(keep)) }?;
        let free = ArrayQueue::new(frame_count as usize);
        for idx in 0..u64::from(frame_count) {
            // Cannot fail: the queue has room for exactly `frame_count` entries.
            let _ = free.push(idx * u64::from(config.frame_size));
        }
        Ok(FrameArea {
            map,
            data_offset: umem.rx_data_offset(),
            umem,
            id: NEXT_AREA_ID.fetch_add(1, Ordering::Relaxed),
            frame_size: config.frame_size,
            frame_count,
            state: (0..frame_count).map(|_| AtomicU8::new(FREE)).collect(),
            free,
            violations: AtomicU64::new(0),
        })
    }

    /// The registered UMEM (to open queues on).
    pub fn umem(&self) -> &Umem {
        &self.umem
    }

    /// Number of chunks.
    pub fn frame_count(&self) -> u32 {
        self.frame_count
    }

    /// Chunk size.
    pub fn frame_size(&self) -> u32 {
        self.frame_size
    }

    /// Bytes a frame from [`FrameArea::alloc`] can hold.
    pub fn frame_capacity(&self) -> usize {
        (self.frame_size - self.data_offset) as usize
    }

    fn chunk_of(&self, addr: u64) -> Option<usize> {
        let idx = addr / u64::from(self.frame_size);
        (idx < u64::from(self.frame_count)).then_some(idx as usize)
    }

    fn transition(&self, idx: usize, from: u8, to: u8) -> bool {
        let ok = self.state[idx]
            .compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if !ok {
            self.violations.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    fn push_free(&self, chunk: u64) {
        if self.free.push(chunk).is_err() {
            // Unreachable while the ledger holds (room for every chunk, pushed only on the
            // transition to FREE); counted rather than panicking.
            self.violations.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn chunk_base(&self, addr: u64) -> u64 {
        addr - addr % u64::from(self.frame_size)
    }

    /// Post free chunks to `queue`'s fill ring until it or the free list is exhausted.
    /// Returns how many were posted.
    pub fn refill(&self, queue: &mut XskQueue) -> usize {
        let mut posted = 0;
        let mut batch = [0u64; 64];
        loop {
            let mut n = 0;
            while n < batch.len() {
                let Some(chunk) = self.free.pop() else { break };
                match self.chunk_of(chunk) {
                    Some(idx) if self.transition(idx, FREE, RX) => {
                        batch[n] = chunk;
                        n += 1;
                    }
                    _ => {}
                }
            }
            if n == 0 {
                return posted;
            }
            let done = queue.fill(&batch[..n]);
            posted += done;
            if done < n {
                // Fill ring full: the rest go back to the free list.
                for &chunk in &batch[done..n] {
                    if let Some(idx) = self.chunk_of(chunk) {
                        if self.transition(idx, RX, FREE) {
                            self.push_free(chunk);
                        }
                    }
                }
                return posted;
            }
        }
    }

    /// Take up to `max` received frames from `socket` into `out`. Returns how many.
    /// Descriptors whose chunk was not posted for reception are refused and counted.
    pub fn recv(&self, socket: &mut XskSocket, max: u32, out: &mut Vec<Frame>) -> usize {
        let mut descs = Vec::with_capacity(max.min(256) as usize);
        let mut total = 0;
        let mut left = max;
        while left > 0 {
            descs.clear();
            let n = socket.receive(left.min(256), &mut descs);
            if n == 0 {
                break;
            }
            left -= n;
            for d in &descs {
                if let Some(f) = self.take_received(*d) {
                    out.push(f);
                    total += 1;
                }
            }
        }
        total
    }

    fn take_received(&self, d: Desc) -> Option<Frame> {
        let Some(idx) = self.chunk_of(d.addr) else {
            self.violations.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let offset = d.addr % u64::from(self.frame_size);
        if offset + u64::from(d.len) > u64::from(self.frame_size) {
            self.violations.fetch_add(1, Ordering::Relaxed);
            if self.transition(idx, RX, FREE) {
                self.push_free(self.chunk_base(d.addr));
            }
            return None;
        }
        self.transition(idx, RX, HELD).then_some(Frame {
            addr: d.addr,
            len: d.len,
            area: self.id,
        })
    }

    /// Give a frame's chunk back to the free list.
    ///
    /// # Panics
    ///
    /// If `frame` belongs to another `FrameArea`.
    pub fn release(&self, frame: Frame) {
        let idx = self.index_of(&frame);
        if self.transition(idx, HELD, FREE) {
            self.push_free(self.chunk_base(frame.addr));
        }
    }

    /// Take a free chunk to build a frame in: empty, data starting where received data
    /// would. `None` if every chunk is in use.
    pub fn alloc(&self) -> Option<Frame> {
        let chunk = self.free.pop()?;
        let idx = self.chunk_of(chunk)?;
        self.transition(idx, FREE, HELD).then_some(Frame {
            addr: chunk + u64::from(self.data_offset),
            len: 0,
            area: self.id,
        })
    }

    /// Queue frames from the front of `frames` on `socket`'s TX ring (as many as fit) and
    /// kick the kernel. Returns how many were queued; they are removed from `frames`.
    /// Their chunks come back through [`FrameArea::reap`].
    ///
    /// # Panics
    ///
    /// If a frame belongs to another `FrameArea`.
    pub fn transmit(
        &self,
        socket: &mut XskSocket,
        frames: &mut Vec<Frame>,
    ) -> Result<usize, XdpError> {
        let k = frames.len().min(socket.tx_capacity() as usize);
        let mut descs = Vec::with_capacity(k);
        // Mark first: once a descriptor is in the ring the kernel may complete it at once.
        // HELD -> TX cannot fail: a `Frame` exists only for a HELD chunk.
        for f in &frames[..k] {
            let _ = self.transition(self.index_of(f), HELD, TX);
            descs.push(Desc {
                addr: f.addr,
                len: f.len,
            });
        }
        let n = socket.transmit(&descs);
        for f in &frames[n..k] {
            let _ = self.transition(self.index_of(f), TX, HELD);
        }
        frames.drain(..n);
        if n > 0 {
            socket.kick()?;
        }
        Ok(n)
    }

    /// Move transmitted chunks from `queue`'s completion ring to the free list. Returns how
    /// many.
    pub fn reap(&self, queue: &mut XskQueue) -> usize {
        let mut addrs = Vec::new();
        let mut total = 0;
        loop {
            addrs.clear();
            if queue.complete(256, &mut addrs) == 0 {
                return total;
            }
            for &a in &addrs {
                match self.chunk_of(a) {
                    Some(idx) if self.transition(idx, TX, FREE) => {
                        self.push_free(self.chunk_base(a));
                        total += 1;
                    }
                    Some(_) => {}
                    None => {
                        self.violations.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    /// Transmit everything in `frames`, kicking and reaping until the kernel has sent
    /// (completed) all of it or `timeout` passes. Returns how many were sent; frames not
    /// queued in time stay in `frames`.
    pub fn transmit_all(
        &self,
        socket: &mut XskSocket,
        queue: &mut XskQueue,
        frames: &mut Vec<Frame>,
        timeout: Duration,
    ) -> Result<usize, XdpError> {
        let deadline = Instant::now() + timeout;
        let mut sent = 0;
        while !frames.is_empty() || socket.tx_pending() > 0 {
            if !frames.is_empty() {
                sent += self.transmit(socket, frames)?;
            }
            if socket.tx_pending() > 0 {
                socket.kick()?;
            }
            self.reap(queue);
            if Instant::now() >= deadline {
                break;
            }
            if !frames.is_empty() || socket.tx_pending() > 0 {
                std::thread::yield_now();
            }
        }
        self.reap(queue);
        Ok(sent)
    }

    fn index_of(&self, f: &Frame) -> usize {
        assert_eq!(f.area, self.id, "Frame belongs to a different FrameArea");
        // In bounds: frames are created only for chunks of this area.
        (f.addr / u64::from(self.frame_size)) as usize
    }

    fn ptr(&self, f: &Frame) -> *mut u8 {
        let _ = self.index_of(f);
        let base: NonNull<[u8]> = self.map.as_slice_ptr();
        // In bounds: `addr` lies in a chunk of this area (checked on creation).
        base.cast::<u8>().as_ptr().wrapping_add(f.addr as usize)
    }

    /// The frame's data.
    ///
    /// # Panics
    ///
    /// If `frame` belongs to another `FrameArea`.
    pub fn data<'a>(&'a self, frame: &'a Frame) -> &'a [u8] {
        let p = self.ptr(frame);
        // SAFETY: `frame` exists, so its chunk is HELD: the kernel does not access it and
        // no other `Frame` for it exists; `addr..addr+len` was checked to lie inside the
        // chunk, inside the live mapping (`self.map`) which outlives the borrow.
        unsafe { std::slice::from_raw_parts(p, frame.len as usize) }
    }

    /// The frame's data, mutably.
    ///
    /// # Panics
    ///
    /// If `frame` belongs to another `FrameArea`.
    pub fn data_mut<'a>(&'a self, frame: &'a mut Frame) -> &'a mut [u8] {
        let p = self.ptr(frame);
        // SAFETY: as in `data`; `&mut Frame` makes this the only access to the chunk.
        unsafe { std::slice::from_raw_parts_mut(p, frame.len as usize) }
    }

    /// Set the frame's length (for example after building it in
    /// [`FrameArea::buffer_mut`]). Fails if it does not fit in the chunk.
    pub fn set_len(&self, frame: &mut Frame, len: usize) -> Result<(), XdpError> {
        let room = u64::from(self.frame_size) - frame.addr % u64::from(self.frame_size);
        if len as u64 > room {
            return Err(XdpError::InvalidConfig(format!(
                "frame length {len} exceeds the {room} bytes left in its chunk"
            )));
        }
        frame.len = len as u32;
        Ok(())
    }

    /// All bytes from the frame's start to the end of its chunk (to build a frame in; then
    /// [`FrameArea::set_len`]).
    ///
    /// # Panics
    ///
    /// If `frame` belongs to another `FrameArea`.
    pub fn buffer_mut<'a>(&'a self, frame: &'a mut Frame) -> &'a mut [u8] {
        let p = self.ptr(frame);
        let room = u64::from(self.frame_size) - frame.addr % u64::from(self.frame_size);
        // SAFETY: as in `data_mut`; the range ends at the end of the frame's chunk.
        unsafe { std::slice::from_raw_parts_mut(p, room as usize) }
    }

    /// Audit every chunk's state. Exact at a quiescent point (no thread moving frames, no
    /// frames in flight in the kernel beyond what the states say).
    pub fn census(&self) -> FrameCensus {
        let mut c = FrameCensus {
            total: self.frame_count as usize,
            violations: self.violations.load(Ordering::Relaxed),
            ..FrameCensus::default()
        };
        for s in self.state.iter() {
            match s.load(Ordering::Acquire) {
                FREE => c.free += 1,
                RX => c.rx += 1,
                HELD => c.held += 1,
                TX => c.tx += 1,
                _ => c.violations += 1,
            }
        }
        if c.free != self.free.len() {
            c.violations += 1;
        }
        c
    }
}
