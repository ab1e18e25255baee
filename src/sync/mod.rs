//! The one place the protocol code gets its atomics from.
//!
//! The protocol modules (`src/protocol/`, `src/region.rs`) name `crate::sync::*` only, never
//! `std::sync::atomic` directly (`tests/source_rules.rs` enforces it). The model checker in
//! `loom-tests/` compiles the very same protocol source files against its own
//! `sync` module, which maps these names onto loom's types.

#[cfg(target_arch = "x86_64")]
pub(crate) use atomic128::AtomicU128;
#[cfg(not(target_arch = "x86_64"))]
pub(crate) use portable_atomic::AtomicU128;
pub(crate) use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

/// Called in every spin loop of the protocol: a CPU hint here, a scheduling
/// point under loom.
#[inline]
pub(crate) fn spin_hint() {
    std::hint::spin_loop();
}

/// Gives the CPU away for a moment.
#[inline]
pub(crate) fn yield_now() {
    std::thread::yield_now();
}

/// Polls before a blocking waiter starts yielding (a few microseconds).
pub(crate) const SPIN_POLLS: u32 = 256;
/// Yields before a blocking waiter sleeps.
pub(crate) const YIELD_POLLS: u32 = 16;
/// Polls between two looks at the clock while spinning (about a microsecond).
pub(crate) const CLOCK_POLLS: u32 = 64;

/// Whether 128-bit atomics are lock-free on this CPU. A queue is shared between
/// processes, so a lock-based fallback (process-local) would be silently wrong.
pub(crate) fn wide_atomics_lock_free() -> bool {
    AtomicU128::is_lock_free()
}

#[cfg(target_arch = "x86_64")]
mod atomic128;
