//! The receive-and-drop loop: the cheapest thing that can be done with AF_XDP frames
//! (take a descriptor, post the chunk straight back to the fill ring), as a throughput
//! baseline for the LRP receive paths. Like `xdpsock -r`.

use std::time::{Duration, Instant};

use super::xsk::{Desc, XskQueue, XskSocket};
use super::XdpError;

/// Limits and polling of [`rx_drop`]. Every run is bounded in frames and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxDropConfig {
    /// Descriptors taken per ring access.
    pub batch: u32,
    /// Stop after this many frames.
    pub max_frames: u64,
    /// Stop after this long.
    pub max_duration: Duration,
    /// Stop when nothing arrived for this long (once at least one frame arrived).
    pub idle_timeout: Duration,
    /// Spin on the ring instead of sleeping in `poll` when it is empty.
    pub busy_poll: bool,
}

impl Default for RxDropConfig {
    fn default() -> Self {
        RxDropConfig {
            batch: 64,
            max_frames: u64::MAX,
            max_duration: Duration::from_secs(10),
            idle_timeout: Duration::from_millis(500),
            busy_poll: false,
        }
    }
}

/// What [`rx_drop`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RxDropReport {
    /// Frames received (and dropped).
    pub frames: u64,
    /// Their bytes.
    pub bytes: u64,
    /// From the first frame to the last (zero if fewer than two frames).
    pub active: Duration,
    /// Whole run.
    pub elapsed: Duration,
    /// `poll` calls made while the ring was empty.
    pub polls: u64,
}

impl RxDropReport {
    /// Frames per second over the active period (`None` without an active period).
    pub fn rate(&self) -> Option<f64> {
        let s = self.active.as_secs_f64();
        (s > 0.0 && self.frames > 1).then(|| (self.frames - 1) as f64 / s)
    }
}

/// Receive on `socket` and recycle every chunk to `queue`'s fill ring at once, until a
/// limit of `config` is reached. The fill ring must have been primed (e.g. with
/// [`XskQueue::fill_from_pool`]); chunks never leave the kernel's RX side, so a frame
/// pool's census stays consistent (they stay in its *kernel* state throughout).
///
/// Fails if `socket` and `queue` do not share one UMEM.
pub fn rx_drop(
    queue: &mut XskQueue,
    socket: &mut XskSocket,
    config: &RxDropConfig,
) -> Result<RxDropReport, XdpError> {
    if !queue.umem().same(socket.umem()) {
        return Err(XdpError::InvalidConfig(
            "rx_drop: the socket and the queue must share one UMEM".into(),
        ));
    }
    let frame_size = u64::from(queue.umem().frame_size());
    let start = Instant::now();
    let deadline = start + config.max_duration;
    let mut report = RxDropReport::default();
    let mut descs: Vec<Desc> = Vec::with_capacity(config.batch as usize);
    let mut recycle: Vec<u64> = Vec::with_capacity(config.batch as usize);
    let mut first: Option<Instant> = None;
    let mut last = start;
    while report.frames < config.max_frames {
        let now = Instant::now();
        if now >= deadline || (first.is_some() && now - last >= config.idle_timeout) {
            break;
        }
        descs.clear();
        let want = u64::from(config.batch.max(1)).min(config.max_frames - report.frames) as u32;
        let n = socket.receive(want, &mut descs);
        if n == 0 {
            if !recycle.is_empty() {
                // SAFETY: see `recycle_to_fill`.
                let done = unsafe { recycle_to_fill(queue, &recycle) };
                recycle.drain(..done);
            }
            if config.busy_poll {
                std::hint::spin_loop();
            } else {
                report.polls += 1;
                let wait = deadline
                    .saturating_duration_since(now)
                    .min(Duration::from_millis(10));
                socket.poll_rx(wait)?;
            }
            continue;
        }
        last = Instant::now();
        first.get_or_insert(last);
        report.frames += u64::from(n);
        for d in &descs {
            report.bytes += u64::from(d.len);
            recycle.push(d.addr - d.addr % frame_size);
        }
        // SAFETY: see `recycle_to_fill`.
        let done = unsafe { recycle_to_fill(queue, &recycle) };
        recycle.drain(..done);
    }
    // Whatever is left goes back too (the fill ring holds every chunk of the queue).
    // SAFETY: see `recycle_to_fill`.
    let done = unsafe { recycle_to_fill(queue, &recycle) };
    recycle.drain(..done);
    if !recycle.is_empty() {
        return Err(XdpError::InvalidConfig(format!(
            "fill ring refused {} recycled chunks: it must hold every chunk of the queue",
            recycle.len()
        )));
    }
    report.elapsed = start.elapsed();
    if let Some(f) = first {
        report.active = last - f;
    }
    Ok(report)
}

/// Post received chunks straight back to the fill ring.
///
/// # Safety
///
/// Every address in `chunks` came from an RX ring of a socket sharing `queue`'s UMEM and
/// was taken by this loop, which never hands it to anybody: the kernel handed the chunk
/// to userspace, nobody references its bytes, and posting it again only gives it back.
unsafe fn recycle_to_fill(queue: &mut XskQueue, chunks: &[u64]) -> usize {
    // SAFETY: forwarded from this function's contract (the chunks are the kernel's own,
    // returned unread).
    unsafe { queue.fill(chunks) }
}
