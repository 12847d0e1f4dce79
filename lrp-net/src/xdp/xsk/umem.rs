//! [`Umem`]: a memory area registered with the kernel for AF_XDP, cut into chunks, and its
//! geometry ([`UmemConfig`]).

use std::ptr::NonNull;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::pool::FramePool;
use crate::xdp::{sys, XdpError};

/// Bytes the kernel reserves at the start of every received frame's chunk in front of the
/// data (`XDP_PACKET_HEADROOM`), on top of [`UmemConfig::headroom`].
pub const XDP_PACKET_HEADROOM: u32 = 256;

/// Ethernet header plus one VLAN tag: what a frame adds to the MTU.
pub const ETHERNET_OVERHEAD: u32 = 14 + 4;

/// Geometry of a UMEM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UmemConfig {
    /// Size of every chunk: a power of two, 2048 or 4096 (aligned-chunk mode).
    pub frame_size: u32,
    /// Extra headroom the kernel leaves in front of received data (default 0).
    pub headroom: u32,
}

impl Default for UmemConfig {
    /// 4096-byte chunks (frames up to 3840 bytes: MTU 3000 works in veth driver mode),
    /// no extra headroom.
    fn default() -> Self {
        UmemConfig {
            frame_size: 4096,
            headroom: 0,
        }
    }
}

/// `xdpilone::Umem` made shareable between threads.
pub(super) struct SharedXskUmem(pub(super) xdpilone::Umem);

// SAFETY: the only field of `xdpilone::Umem` that is not `Send`/`Sync` is the area
// pointer, which xdpilone uses only as an address: it passes it to the kernel at
// registration and computes (but never dereferences) chunk pointers in `Umem::frame`,
// which this crate never calls. The socket fd is reference counted and the device set is
// behind xdpilone's spin lock, so `&Umem` methods are safe to call from any thread.
unsafe impl Send for SharedXskUmem {}
// SAFETY: see `Send`.
unsafe impl Sync for SharedXskUmem {}

pub(super) struct UmemInner {
    pub(super) xsk: SharedXskUmem,
    config: UmemConfig,
    frame_count: u32,
    len: u64,
    /// The UMEM socket itself becomes the first socket (with fill/completion rings) of
    /// the first queue opened; later queues use new sockets.
    pub(super) umem_fd_taken: AtomicBool,
    /// The frame pool whose area this is ([`Umem::from_pool`]); it also keeps the area
    /// mapped while any socket may use it.
    pool: Option<FramePool>,
}

/// A registered UMEM: the memory area the kernel copies received frames into and reads
/// transmitted frames from. Cheap to clone; sockets hold a clone.
#[derive(Clone)]
pub struct Umem {
    pub(super) inner: Arc<UmemInner>,
}

impl std::fmt::Debug for Umem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Umem")
            .field("frame_size", &self.inner.config.frame_size)
            .field("headroom", &self.inner.config.headroom)
            .field("frame_count", &self.inner.frame_count)
            .finish()
    }
}

impl Umem {
    /// Register `area` as a UMEM of `area.len() / frame_size` chunks.
    ///
    /// Raises the soft `RLIMIT_MEMLOCK` if needed and allowed. Fails with
    /// [`XdpError::MemlockLimit`] if the kernel still refuses the registration, and with
    /// [`XdpError::PermissionDenied`] without `CAP_NET_RAW`.
    ///
    /// # Safety
    ///
    /// * `area` must be page aligned, valid for reads and writes for its whole length,
    ///   and stay mapped for as long as this `Umem` or any [`XskQueue`] / [`XskSocket`]
    ///   made from it exists (they hold clones of the `Umem`).
    /// * The kernel writes received frames into chunks posted to a fill ring and reads
    ///   chunks posted to a TX ring, concurrently with the process: the caller must not
    ///   create Rust references to a chunk's bytes while it is posted (between posting it
    ///   and getting it back from an RX or completion ring).
    ///
    /// [`XskQueue`]: super::XskQueue
    /// [`XskSocket`]: super::XskSocket
    pub unsafe fn new(area: NonNull<[u8]>, config: UmemConfig) -> Result<Umem, XdpError> {
        // SAFETY: forwarded to the caller of this function.
        unsafe { Self::register(area, config, None) }
    }

    /// Register the area of `pool` as a UMEM: chunks of the pool's frame size, received
    /// data placed after the pool's headroom (plus [`XDP_PACKET_HEADROOM`]), so frames
    /// received into the pool and frames allocated from it have the same layout. The UMEM
    /// keeps a handle on the pool, so the area stays mapped as long as any socket uses it.
    ///
    /// The area must be a whole number of pages: with 2048-byte frames, use an even
    /// frame count. Errors as [`Umem::new`].
    ///
    /// ```no_run
    /// use lrp_net::pool::FramePool;
    /// use lrp_net::xdp::Umem;
    ///
    /// let pool = FramePool::new(4096, 2048, 0)?;
    /// let umem = Umem::from_pool(&pool)?;
    /// assert_eq!(umem.frame_count(), 4096);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_pool(pool: &FramePool) -> Result<Umem, XdpError> {
        let config = UmemConfig {
            frame_size: pool.frame_size(),
            headroom: pool.headroom(),
        };
        let area = pool.umem_area();
        if !area.len().is_multiple_of(sys::page_size()) {
            return Err(XdpError::InvalidConfig(format!(
                "a UMEM must be a whole number of pages: {} frames of {} bytes are not \
                 (with 2048-byte frames use an even frame count)",
                pool.frame_count(),
                pool.frame_size()
            )));
        }
        // SAFETY: the area is the pool's own page-aligned mapping, kept mapped by the pool
        // handle stored in the Umem (and cloned into every queue and socket). The kernel
        // accesses only chunks posted to a fill or TX ring; through this Umem the safe API
        // posts only chunks the pool moved to its *kernel* state (no `Frame` refers to
        // them: see the `xsk` module docs), and the raw posting functions are `unsafe`.
        unsafe { Self::register(area, config, Some(pool.clone())) }
    }

    /// # Safety
    ///
    /// As [`Umem::new`]; if `pool` is given, `area` is its area.
    unsafe fn register(
        area: NonNull<[u8]>,
        config: UmemConfig,
        pool: Option<FramePool>,
    ) -> Result<Umem, XdpError> {
        let fs = config.frame_size;
        if !fs.is_power_of_two() || !(2048..=4096).contains(&fs) {
            return Err(XdpError::InvalidConfig(format!(
                "frame_size must be 2048 or 4096 (a power of two chunk), not {fs}"
            )));
        }
        if config.headroom + XDP_PACKET_HEADROOM + 128 > fs {
            return Err(XdpError::InvalidConfig(format!(
                "headroom {} leaves no room for data in a {fs}-byte chunk",
                config.headroom
            )));
        }
        let len = area.len();
        let page = sys::page_size();
        if !(area.as_ptr().cast::<u8>() as usize).is_multiple_of(page) || !len.is_multiple_of(page)
        {
            return Err(XdpError::InvalidConfig(
                "the UMEM area must be page aligned".into(),
            ));
        }
        let frame_count = u32::try_from(len / fs as usize)
            .map_err(|_| XdpError::InvalidConfig("UMEM area too large".into()))?;
        if frame_count == 0 || !len.is_multiple_of(fs as usize) {
            return Err(XdpError::InvalidConfig(format!(
                "the UMEM area ({len} bytes) must be a non-zero multiple of frame_size {fs}"
            )));
        }
        let ring = frame_count
            .checked_next_power_of_two()
            .ok_or_else(|| XdpError::InvalidConfig("too many frames for the fill ring".into()))?;
        let xcfg = xdpilone::UmemConfig {
            fill_size: ring,
            complete_size: ring,
            frame_size: fs,
            headroom: config.headroom,
            flags: 0,
        };
        let bytes = len as u64;
        if !sys::has_capability(sys::cap::IPC_LOCK) {
            sys::raise_memlock(bytes);
        }
        // SAFETY: the area is page aligned and a multiple of the frame size (checked
        // above); validity and lifetime are the caller's contract, forwarded.
        let xsk = unsafe { xdpilone::Umem::new(xcfg, area) }.map_err(|e| {
            let errno = e.get_raw().abs();
            if errno == libc::ENOBUFS || errno == libc::ENOMEM {
                XdpError::MemlockLimit {
                    bytes,
                    limit: sys::memlock_limit().0,
                }
            } else {
                XdpError::errno("creating the AF_XDP UMEM socket", "CAP_NET_RAW", errno)
            }
        })?;
        Ok(Umem {
            inner: Arc::new(UmemInner {
                xsk: SharedXskUmem(xsk),
                config,
                frame_count,
                len: bytes,
                umem_fd_taken: AtomicBool::new(false),
                pool,
            }),
        })
    }

    /// The geometry.
    pub fn config(&self) -> UmemConfig {
        self.inner.config
    }

    /// Whether `other` is a handle on the same registered UMEM.
    pub fn same(&self, other: &Umem) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The frame pool this UMEM was registered over ([`Umem::from_pool`]); `None` for
    /// caller memory.
    pub fn pool(&self) -> Option<&FramePool> {
        self.inner.pool.as_ref()
    }

    pub(super) fn require_pool(&self) -> Result<&FramePool, XdpError> {
        self.pool().ok_or_else(|| {
            XdpError::InvalidConfig(
                "this UMEM is caller memory (Umem::new): frame operations need a UMEM made \
                 with Umem::from_pool"
                    .into(),
            )
        })
    }

    /// Chunk size in bytes.
    pub fn frame_size(&self) -> u32 {
        self.inner.config.frame_size
    }

    /// Number of chunks.
    pub fn frame_count(&self) -> u32 {
        self.inner.frame_count
    }

    /// Size of the area in bytes.
    pub fn len(&self) -> u64 {
        self.inner.len
    }

    /// Whether the area is empty (never: a UMEM has at least one chunk).
    pub fn is_empty(&self) -> bool {
        self.inner.len == 0
    }

    /// Offset from a chunk's start where the kernel puts received data
    /// (`headroom + XDP_PACKET_HEADROOM`).
    pub fn rx_data_offset(&self) -> u32 {
        self.inner.config.headroom + XDP_PACKET_HEADROOM
    }

    /// The largest frame a chunk can receive. Larger frames are dropped by the kernel
    /// (counted in [`XskStats::rx_dropped`]).
    ///
    /// [`XskStats::rx_dropped`]: super::XskStats::rx_dropped
    pub fn max_rx_frame(&self) -> u32 {
        self.inner.config.frame_size - self.rx_data_offset()
    }

    /// Check that every frame interface `ifindex` can receive at its MTU (plus Ethernet
    /// header and one VLAN tag) fits in a chunk. Call before attaching the program.
    pub fn check_mtu(&self, ifindex: u32) -> Result<(), XdpError> {
        let ifname = sys::interface_name(ifindex)?;
        let mtu = sys::interface_mtu(&ifname)?;
        let max_frame = mtu.saturating_add(ETHERNET_OVERHEAD);
        let capacity = self.max_rx_frame();
        if max_frame > capacity {
            return Err(XdpError::MtuTooLarge {
                ifname,
                mtu,
                max_frame,
                capacity,
                max_mtu: capacity - ETHERNET_OVERHEAD,
            });
        }
        Ok(())
    }
}
