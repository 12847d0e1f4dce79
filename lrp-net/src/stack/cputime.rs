//! Thread CPU time, for charging protocol work to the endpoint it was done for.
//!
//! LRP's accounting mechanism needs "how much CPU did *this thread* spend on that
//! frame", not wall-clock time: a receiver preempted in the middle of protocol processing
//! must not be billed for the time another task ran. `CLOCK_THREAD_CPUTIME_ID` gives
//! exactly that. It is a system call on Linux (not served from the vDSO), so callers
//! measure around a batch of frames, not around each one.
//!
//! This is the only `unsafe` in the stack module.

/// Nanoseconds of CPU time consumed by the calling thread so far.
///
/// Returns 0 if the clock cannot be read (it always can on Linux; the fallback keeps a
/// failure from turning into a panic in a receive path).
pub(crate) fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `clock_gettime` writes one `timespec` through the pointer, which points to
    // a live, properly aligned local; it retains no reference to it after returning.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64)
}

/// Measures the calling thread's CPU time from its creation to [`CpuMeter::elapsed_ns`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuMeter {
    start: u64,
}

impl CpuMeter {
    /// Start measuring now.
    pub(crate) fn start() -> CpuMeter {
        CpuMeter { start: thread_cpu_ns() }
    }

    /// CPU nanoseconds this thread spent since [`CpuMeter::start`].
    pub(crate) fn elapsed_ns(&self) -> u64 {
        thread_cpu_ns().saturating_sub(self.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_cpu_time_advances_with_work_not_with_sleep() {
        let m = CpuMeter::start();
        // Burn some CPU in a way the optimizer cannot remove.
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        std::hint::black_box(x);
        let busy = m.elapsed_ns();
        assert!(busy > 0, "CPU time did not advance over a busy loop");

        let m = CpuMeter::start();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let slept = m.elapsed_ns();
        // Sleeping consumes (almost) no CPU: far less than the 50 ms of wall time.
        assert!(slept < 20_000_000, "sleep charged {slept} ns of CPU");
    }
}
