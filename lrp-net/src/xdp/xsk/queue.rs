//! [`XskQueue`]: the owner of one `(interface, queue)`'s fill and completion rings and
//! the factory of its sockets, with the bind options of its first socket.

use std::sync::atomic::Ordering;

use super::socket::{map_rings, SocketConfig, XskSocket};
use super::umem::Umem;
use crate::xdp::{sys, XdpError};

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

/// The owner of the fill and completion rings of one `(interface, queue)`, and the
/// factory of its sockets. See the [module docs](super).
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
