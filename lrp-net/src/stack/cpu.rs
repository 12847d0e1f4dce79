//! CPU time of protocol work, for LRP's accounting mechanism.
//!
//! The stack charges "how much CPU did *this thread* spend on that endpoint's frames",
//! not wall-clock time: a receiver preempted in the middle of protocol processing must
//! not be billed for the time another task ran. The thread CPU clock
//! (`CLOCK_THREAD_CPUTIME_ID`, read by [`crate::sys::thread_cpu_ns`]) gives exactly that.
//! Reading it is a system call (it is not served from the vDSO), so the stack measures
//! around a whole step (a batch of frames), not around each frame.

use lrp_core::account::Account;

/// CPU time the calling thread has consumed so far, in nanoseconds
/// (`CLOCK_THREAD_CPUTIME_ID`; 0 if the clock cannot be read).
///
/// The clock the stack charges protocol work with: an application (or a test) compares
/// the delta over a run of its receiving thread with [`SocketStats::cpu_ns`] to see how
/// much of the thread's time was protocol processing charged to the socket.
///
/// [`SocketStats::cpu_ns`]: super::SocketStats::cpu_ns
pub fn thread_cpu_ns() -> u64 {
    crate::sys::thread_cpu_ns()
}

/// Measures the calling thread's CPU time from [`CpuMeter::start`] on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuMeter {
    start: u64,
}

impl CpuMeter {
    /// Start measuring now.
    pub(crate) fn start() -> CpuMeter {
        CpuMeter {
            start: crate::sys::thread_cpu_ns(),
        }
    }

    /// CPU nanoseconds this thread spent since [`CpuMeter::start`].
    pub(crate) fn elapsed_ns(&self) -> u64 {
        crate::sys::thread_cpu_ns().saturating_sub(self.start)
    }

    /// Charge the time since [`CpuMeter::start`] to `account`.
    pub(crate) fn charge(self, account: &Account) {
        account.charge_cpu(self.elapsed_ns());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_cpu_time_advances_with_work_not_with_sleep() {
        let m = CpuMeter::start();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        std::hint::black_box(x);
        let account = Account::new();
        m.charge(&account);
        assert!(
            account.snapshot().cpu_ns > 0,
            "CPU time did not advance over a busy loop"
        );

        let m = CpuMeter::start();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let slept = m.elapsed_ns();
        // Sleeping consumes (almost) no CPU: far less than the 50 ms of wall time.
        assert!(slept < 20_000_000, "sleep charged {slept} ns of CPU");
    }
}
