//! UMEM registration and AF_XDP sockets (over xdpilone), at the level of UMEM addresses.
//!
//! Three objects, matching the kernel's:
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

use std::num::NonZeroU32;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use xdpilone::xdp::XdpDesc;

use super::sys;
use super::XdpError;
use crate::pool::{self, Frame, FramePool};

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

/// Bind mode of the first socket of a queue (`sxdp_flags`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BindMode {
    /// Let the kernel choose: zero-copy if the driver supports it, else copy.
    #[default]
    Auto,
    /// Force copy mode (`XDP_COPY`).
    Copy,
    /// Force zero-copy (`XDP_ZEROCOPY`); veth refuses it.
    ZeroCopy,
}

/// Ring sizes and bind options of the first socket of a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// Bind mode (copy / zero-copy).
    pub bind: BindMode,
    /// Set `XDP_USE_NEED_WAKEUP`: the kernel tells when the fill or TX ring needs a
    /// syscall to make progress ([`XskQueue::needs_wakeup`]).
    pub need_wakeup: bool,
    /// The first socket's ring sizes.
    pub socket: SocketConfig,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            bind: BindMode::Auto,
            need_wakeup: true,
            socket: SocketConfig::default(),
        }
    }
}

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
    fn validate(&self) -> Result<(NonZeroU32, NonZeroU32), XdpError> {
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

/// `xdpilone::Umem` made shareable between threads.
struct SharedXskUmem(xdpilone::Umem);

// SAFETY: the only field of `xdpilone::Umem` that is not `Send`/`Sync` is the area
// pointer, which xdpilone uses only as an address: it passes it to the kernel at
// registration and computes (but never dereferences) chunk pointers in `Umem::frame`,
// which this crate never calls. The socket fd is reference counted and the device set is
// behind xdpilone's spin lock, so `&Umem` methods are safe to call from any thread.
unsafe impl Send for SharedXskUmem {}
// SAFETY: see `Send`.
unsafe impl Sync for SharedXskUmem {}

struct UmemInner {
    xsk: SharedXskUmem,
    config: UmemConfig,
    frame_count: u32,
    len: u64,
    /// The UMEM socket itself becomes the first socket (with fill/completion rings) of
    /// the first queue opened; later queues use new sockets.
    umem_fd_taken: AtomicBool,
    /// The frame pool whose area this is ([`Umem::from_pool`]); it also keeps the area
    /// mapped while any socket may use it.
    pool: Option<FramePool>,
}

/// A registered UMEM: the memory area the kernel copies received frames into and reads
/// transmitted frames from. Cheap to clone; sockets hold a clone.
#[derive(Clone)]
pub struct Umem {
    inner: Arc<UmemInner>,
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
        // them: see the module docs), and the raw posting functions are `unsafe`.
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

    fn require_pool(&self) -> Result<&FramePool, XdpError> {
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

/// The owner of the fill and completion rings of one `(interface, queue)`, and the
/// factory of its sockets. See the [module docs](self).
pub struct XskQueue {
    device: xdpilone::DeviceQueue,
    umem: Umem,
    info: xdpilone::IfInfo,
    ifname: String,
    ring_size: u32,
}

impl std::fmt::Debug for XskQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XskQueue")
            .field("ifname", &self.ifname)
            .field("queue", &self.info.queue_id())
            .field("fill_pending", &self.fill_pending())
            .finish()
    }
}

fn bind_error(ifname: &str, queue: u32, errno: i32) -> XdpError {
    match errno.abs() {
        libc::EBUSY => XdpError::QueueBusy {
            ifname: ifname.to_owned(),
            queue,
        },
        libc::EOPNOTSUPP => XdpError::InvalidConfig(format!(
            "`{ifname}` does not support the requested AF_XDP bind mode (zero-copy needs \
             driver support; veth is copy-only): use BindMode::Auto or BindMode::Copy"
        )),
        libc::ENODEV | libc::ENXIO => XdpError::NoSuchInterface(ifname.to_owned()),
        libc::EINVAL => XdpError::InvalidConfig(format!(
            "binding an AF_XDP socket to `{ifname}` queue {queue} was refused (EINVAL): \
             the queue may not exist (see `ethtool -l {ifname}`)"
        )),
        e => XdpError::errno("binding the AF_XDP socket", "CAP_NET_RAW", e),
    }
}

impl XskQueue {
    /// Open queue `queue_id` of interface `ifindex`: create its fill and completion rings
    /// (sized to hold every chunk of `umem`) and its first socket, bound with
    /// `config.bind`. Checks the MTU first ([`Umem::check_mtu`]).
    ///
    /// Nothing is received until chunks are posted ([`XskQueue::fill`]) and an XDP
    /// program redirects frames to a socket's XSKMAP slot.
    ///
    /// The first queue opened on a `Umem` uses the UMEM's own socket. If that open fails
    /// after the kernel accepted the rings (bind refused: busy queue, bad mode), the
    /// `Umem` cannot open queues any more: create a new one.
    pub fn open(
        umem: &Umem,
        ifindex: u32,
        queue_id: u32,
        config: &QueueConfig,
    ) -> Result<(XskQueue, XskSocket), XdpError> {
        let (rx_size, tx_size) = config.socket.validate()?;
        let ifname = sys::interface_name(ifindex)?;
        umem.check_mtu(ifindex)?;
        let mut info = xdpilone::IfInfo::invalid();
        info.from_ifindex(ifindex)
            .map_err(|_| XdpError::NoSuchInterface(ifname.clone()))?;
        info.set_queue(queue_id);

        let xumem = &umem.inner.xsk.0;
        let first_queue = !umem.inner.umem_fd_taken.swap(true, Ordering::AcqRel);
        let sock = if first_queue {
            xdpilone::Socket::with_shared(&info, xumem)
        } else {
            xdpilone::Socket::new(&info)
        }
        .map_err(|e| XdpError::errno("creating an AF_XDP socket", "CAP_NET_RAW", e.get_raw()))?;
        let device = xumem.fq_cq(&sock).map_err(|e| match e.get_raw().abs() {
            libc::EINVAL => XdpError::InvalidConfig(format!(
                "queue {queue_id} of `{ifname}` is already open on this UMEM"
            )),
            errno => XdpError::errno("creating the fill/completion rings", "CAP_NET_RAW", errno),
        })?;
        // Only the socket that registers the UMEM may carry bind flags; a socket of
        // another queue sharing the UMEM inherits them.
        let mut flags = 0;
        if first_queue {
            flags |= match config.bind {
                BindMode::Auto => 0,
                BindMode::Copy => xdpilone::SocketConfig::XDP_BIND_COPY,
                BindMode::ZeroCopy => xdpilone::SocketConfig::XDP_BIND_ZEROCOPY,
            };
            if config.need_wakeup {
                flags |= xdpilone::SocketConfig::XDP_BIND_NEED_WAKEUP;
            }
        }
        let scfg = xdpilone::SocketConfig {
            rx_size: Some(rx_size),
            tx_size: Some(tx_size),
            bind_flags: flags,
        };
        let user = xumem
            .rx_tx(&sock, &scfg)
            .map_err(|e| XdpError::errno("creating the RX/TX rings", "CAP_NET_RAW", e.get_raw()))?;
        let (rx, tx) = map_rings(&user)?;
        xumem
            .bind(&user)
            .map_err(|e| bind_error(&ifname, queue_id, e.get_raw()))?;
        let socket = XskSocket {
            user,
            rx,
            tx,
            umem: umem.clone(),
            rx_size: rx_size.get(),
            tx_size: tx_size.get(),
            ifindex,
            queue_id,
        };
        let ring_size = umem.frame_count().next_power_of_two();
        let queue = XskQueue {
            device,
            umem: umem.clone(),
            info,
            ifname,
            ring_size,
        };
        Ok((queue, socket))
    }

    /// Create another socket on this queue (`XDP_SHARED_UMEM`, no bind flags): its own
    /// RX and TX rings, this queue's fill and completion rings.
    pub fn add_socket(&self, config: &SocketConfig) -> Result<XskSocket, XdpError> {
        let (rx_size, tx_size) = config.validate()?;
        let sock = xdpilone::Socket::new(&self.info).map_err(|e| {
            XdpError::errno("creating an AF_XDP socket", "CAP_NET_RAW", e.get_raw())
        })?;
        let scfg = xdpilone::SocketConfig {
            rx_size: Some(rx_size),
            tx_size: Some(tx_size),
            bind_flags: 0,
        };
        let user =
            self.umem.inner.xsk.0.rx_tx(&sock, &scfg).map_err(|e| {
                XdpError::errno("creating the RX/TX rings", "CAP_NET_RAW", e.get_raw())
            })?;
        let (rx, tx) = map_rings(&user)?;
        self.device
            .bind(&user)
            .map_err(|e| bind_error(&self.ifname, self.info.queue_id(), e.get_raw()))?;
        Ok(XskSocket {
            user,
            rx,
            tx,
            umem: self.umem.clone(),
            rx_size: rx_size.get(),
            tx_size: tx_size.get(),
            ifindex: self.info.ifindex(),
            queue_id: self.info.queue_id(),
        })
    }

    /// The UMEM.
    pub fn umem(&self) -> &Umem {
        &self.umem
    }

    /// Interface index.
    pub fn ifindex(&self) -> u32 {
        self.info.ifindex()
    }

    /// Interface name.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// Queue id.
    pub fn queue_id(&self) -> u32 {
        self.info.queue_id()
    }

    /// Entries of the fill ring (and of the completion ring).
    pub fn ring_size(&self) -> u32 {
        self.ring_size
    }

    /// Post free chunks of the UMEM's pool for reception (**free → kernel**): up to `max`,
    /// as many as the fill ring has room for and the pool has free. Returns how many.
    /// Fails only for a UMEM without a pool.
    pub fn fill_from_pool(&mut self, max: usize) -> Result<usize, XdpError> {
        let pool = self.umem.require_pool()?.clone();
        let want = u32::try_from(max).unwrap_or(u32::MAX);
        if want == 0 {
            return Ok(0);
        }
        let mut w = self.device.fill(want);
        let mut posted = 0;
        // The iterator stops at the ring's room (`insert` takes at most `capacity`) or
        // when the pool runs dry; a chunk taken is always inserted.
        let room = w.capacity();
        let n = w.insert(std::iter::from_fn(|| {
            if posted == room {
                return None;
            }
            let chunk = pool.take_for_kernel()?;
            posted += 1;
            Some(chunk)
        }));
        w.commit();
        debug_assert_eq!(n, posted);
        Ok(n as usize)
    }

    /// Return transmitted chunks from the completion ring to the UMEM's pool (**kernel →
    /// free**): up to `max`. Returns how many were taken from the ring (an address the
    /// pool refuses — never posted, or completed twice — is counted as a violation in
    /// its census and otherwise ignored). Fails only for a UMEM without a pool.
    pub fn complete_to_pool(&mut self, max: u32) -> Result<u32, XdpError> {
        let pool = self.umem.require_pool()?.clone();
        if max == 0 {
            return Ok(0);
        }
        let mut r = self.device.complete(max);
        let mut n = 0;
        while let Some(addr) = r.read() {
            let _ = pool.release_from_kernel(addr);
            n += 1;
        }
        r.release();
        Ok(n)
    }

    /// Post chunks for reception: as many addresses from the front of `addrs` as the
    /// fill ring has room for. Returns how many were posted (a prefix of `addrs`).
    ///
    /// # Safety
    ///
    /// Every address must lie in a chunk the caller owns and does not access (no
    /// reference to its bytes, no `Frame` of a pool) until the kernel hands it back in an
    /// RX ring: the kernel writes into it concurrently. Over a pool, use
    /// [`fill_from_pool`](Self::fill_from_pool) instead.
    pub unsafe fn fill(&mut self, addrs: &[u64]) -> usize {
        let want = u32::try_from(addrs.len()).unwrap_or(u32::MAX);
        if want == 0 {
            return 0;
        }
        let mut w = self.device.fill(want);
        let room = w.capacity() as usize;
        let n = w.insert(addrs[..room.min(addrs.len())].iter().copied());
        w.commit();
        n as usize
    }

    /// Chunks posted to the fill ring that the kernel has not taken yet.
    pub fn fill_pending(&self) -> u32 {
        self.device.pending()
    }

    /// Take up to `max` transmitted chunk addresses from the completion ring, appending
    /// them to `out`. Returns how many.
    pub fn complete(&mut self, max: u32, out: &mut Vec<u64>) -> u32 {
        if max == 0 {
            return 0;
        }
        let mut r = self.device.complete(max);
        let mut n = 0;
        while let Some(addr) = r.read() {
            out.push(addr);
            n += 1;
        }
        r.release();
        n
    }

    /// Completions waiting to be taken.
    pub fn completion_pending(&self) -> u32 {
        self.device.available()
    }

    /// Whether the kernel asks for a syscall to keep taking fill-ring entries (only with
    /// [`QueueConfig::need_wakeup`]; copy mode on veth never needs it).
    pub fn needs_wakeup(&self) -> bool {
        self.device.needs_wakeup()
    }

    /// Wake the driver to process the fill ring (a zero-timeout `poll`).
    pub fn wake(&mut self) {
        self.device.wake();
    }
}

fn map_rings(user: &xdpilone::User) -> Result<(xdpilone::RingRx, xdpilone::RingTx), XdpError> {
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
    user: xdpilone::User,
    rx: xdpilone::RingRx,
    tx: xdpilone::RingTx,
    umem: Umem,
    rx_size: u32,
    tx_size: u32,
    ifindex: u32,
    queue_id: u32,
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
