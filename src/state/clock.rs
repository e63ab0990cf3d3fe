//! The kernel's clocks that `std` does not name: CLOCK_MONOTONIC as a number (event
//! times, V4L2 buffer times) and the calling thread's CPU time (the stills' budget).
//!
//! Read through libc's `clock_gettime`, which uses the vDSO when there is one and the
//! system call otherwise (rustix's own vDSO parser reads memory that is not mapped under
//! valgrind, which the benchmarks run). Pure reads; nothing here sleeps or sets a clock.

use std::time::Duration;

fn read(clock: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; clock_gettime only writes it.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0).min(999_999_999),
    )
}

/// CLOCK_MONOTONIC now (time since boot, not counting suspend; never set).
pub fn monotonic() -> Duration {
    read(libc::CLOCK_MONOTONIC)
}

/// CPU time the calling thread has used.
pub fn thread_cpu() -> Duration {
    read(libc::CLOCK_THREAD_CPUTIME_ID)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_move_forward() {
        let a = monotonic();
        let mut x = 0u64;
        for i in 0..1_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        assert!(x > 0);
        assert!(monotonic() >= a && a > Duration::ZERO);
        assert!(thread_cpu() > Duration::ZERO);
    }
}
