//! Publish timestamps.

/// Nanoseconds since the Unix epoch (CLOCK_REALTIME, a vDSO call): comparable
/// between processes on the host, so consumers can measure delivery latency.
#[inline]
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into `ts`.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
