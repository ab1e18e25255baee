//! futex(2) on a word of a region: how waiting costs no CPU across processes.
//!
//! Shared (non-private) futexes are keyed by the page's backing object and
//! offset, so sleepers and wakers in different processes that map the same file
//! meet on the same key.

use crate::sync::AtomicU32;
use std::time::Duration;

/// Sleeps while `*word == expected`; returns on wake, timeout, signal or
/// spuriously. The caller re-checks its condition in every case.
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>, private: bool) {
    let op = if private {
        libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG
    } else {
        libc::FUTEX_WAIT
    };
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a live, aligned 32-bit atomic; the kernel only reads it.
    // Errors (EAGAIN: value changed, ETIMEDOUT, EINTR) all mean "re-check".
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            op,
            expected,
            ts_ptr,
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Wakes every thread sleeping on `word`, in any process. Returns how many
/// it woke (0 also if the call failed).
pub(crate) fn wake_all(word: &AtomicU32, private: bool) -> usize {
    let op = if private {
        libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG
    } else {
        libc::FUTEX_WAKE
    };
    // SAFETY: `word` is a live, aligned 32-bit atomic; FUTEX_WAKE does not
    // access user memory beyond using its address as a key.
    let woken = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            op,
            i32::MAX,
            std::ptr::null::<u8>(),
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    usize::try_from(woken).unwrap_or(0)
}
