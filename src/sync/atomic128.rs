//! 128-bit atomics on x86_64, inlined.
//!
//! TAIL, HEAD, the group cursors and the spill FRONT are 128-bit words, read
//! and CASed on every send and receive. `portable-atomic` implements them with
//! run-time CPU detection: each operation is an out-of-line call through a
//! feature check (its cost: docs/benchmarks.md). Here they are a few inlined
//! instructions:
//!
//! - compare-exchange is `lock cmpxchg16b` (every x86_64 CPU since 2006 except
//!   the first generation; checked once when a queue is opened or created);
//! - a load is `vmovdqa` on CPUs with AVX, where Intel and AMD document
//!   aligned 16-byte SSE/AVX accesses as atomic (Intel SDM vol. 3A §9.1.1, AMD
//!   APM vol. 2 §7.3.2), else a `lock cmpxchg16b` that writes back what it
//!   read;
//! - a store is a compare-exchange loop (rare: group and spill changes).
//!
//! x86 orders every load as an Acquire and `lock`-prefixed instructions as
//! full barriers, so every `Ordering` is met; each `asm!` block is also a
//! compiler barrier (it may read and write any memory). Other architectures
//! use `portable-atomic` (`sync.rs`).

use std::arch::asm;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU8, Ordering};

/// A 16-byte aligned `u128` accessed only atomically.
#[repr(C, align(16))]
pub struct AtomicU128 {
    v: UnsafeCell<u128>,
}

// SAFETY: every access to `v` is an atomic instruction (see the module docs).
unsafe impl Sync for AtomicU128 {}
// SAFETY: as above; the value itself is plain data.
unsafe impl Send for AtomicU128 {}

/// CPU support, detected once: 0 not yet, then `FEAT_SEEN` plus bits.
static FEATURES: AtomicU8 = AtomicU8::new(0);
const FEAT_SEEN: u8 = 1;
const FEAT_CX16: u8 = 2;
const FEAT_AVX: u8 = 4;

#[cold]
fn detect() -> u8 {
    let mut f = FEAT_SEEN;
    if std::is_x86_feature_detected!("cmpxchg16b") {
        f |= FEAT_CX16;
    }
    if std::is_x86_feature_detected!("avx") {
        f |= FEAT_AVX;
    }
    // Relaxed: every thread computes the same value.
    FEATURES.store(f, Ordering::Relaxed);
    f
}

#[inline]
fn features() -> u8 {
    // Relaxed: a cache of a fact about the CPU.
    match FEATURES.load(Ordering::Relaxed) {
        0 => detect(),
        f => f,
    }
}

impl AtomicU128 {
    /// Whether this CPU has the instructions (`cmpxchg16b`). Queues refuse to
    /// open without them: a lock-based fallback would be process-local and so
    /// silently wrong between processes.
    pub fn is_lock_free() -> bool {
        features() & FEAT_CX16 != 0
    }

    /// Compare-and-exchange: `Ok(previous)` if the value was `current` and is
    /// now `new`, else `Err(actual)`. Always sequentially consistent.
    #[inline]
    pub fn compare_exchange(
        &self,
        current: u128,
        new: u128,
        _success: Ordering,
        _failure: Ordering,
    ) -> Result<u128, u128> {
        // SAFETY: `v` is 16-byte aligned and valid for as long as `&self`;
        // the caller's queue was opened only after `is_lock_free` (so the
        // instruction exists).
        let (prev, ok) = unsafe { cmpxchg16b(self.v.get(), current, new) };
        if ok {
            Ok(prev)
        } else {
            Err(prev)
        }
    }

    /// An atomic load (Acquire on x86 whatever `_order` says).
    #[inline]
    pub fn load(&self, _order: Ordering) -> u128 {
        if features() & FEAT_AVX != 0 {
            let lo: u64;
            let hi: u64;
            // SAFETY: `v` is 16-byte aligned and valid; with AVX an aligned
            // 16-byte load is atomic (module docs).
            unsafe {
                asm!(
                    "vmovdqa {x}, xmmword ptr [{src}]",
                    "vmovq {lo}, {x}",
                    "vpextrq {hi}, {x}, 1",
                    src = in(reg) self.v.get(),
                    x = out(xmm_reg) _,
                    lo = out(reg) lo,
                    hi = out(reg) hi,
                    options(nostack, preserves_flags),
                );
            }
            u128::from(lo) | u128::from(hi) << 64
        } else {
            // A CAS that expects 0 either fails and returns the value, or
            // succeeds and writes back the 0 it found.
            // SAFETY: as in `compare_exchange`.
            unsafe { cmpxchg16b(self.v.get(), 0, 0) }.0
        }
    }

    /// An atomic store, as a compare-exchange loop.
    pub fn store(&self, value: u128, order: Ordering) {
        let mut cur = self.load(Ordering::Relaxed);
        while let Err(actual) = self.compare_exchange(cur, value, order, Ordering::Relaxed) {
            cur = actual;
        }
    }
}

/// `lock cmpxchg16b [dst]`: returns the value found and whether it was `old`
/// (and is now `new`).
///
/// # Safety
/// `dst` is valid, 16-byte aligned, only accessed atomically, and the CPU
/// has `cmpxchg16b`.
#[inline]
unsafe fn cmpxchg16b(dst: *mut u128, old: u128, new: u128) -> (u128, bool) {
    let prev_lo: u64;
    let prev_hi: u64;
    let ok_word: u64;
    // SAFETY: forwarded from the caller. rbx may not be named as an operand
    // (LLVM may use it), so the new value's low half goes in through another
    // register and is swapped into rbx around the instruction, and rbx is
    // restored. Every other register the sequence touches is pinned: the
    // compiler may otherwise choose rbx (or its low byte) for a `reg`
    // operand, which the swap or the restore would then overwrite. The
    // address went to rbx once (the fuzzer caught that: the CAS went to the
    // new value's address); the success flag in `bl` would be overwritten by
    // the restore, reporting a failed CAS as done (the model test caught
    // that, once a change of inlining put it there). So the address is in
    // rsi and the flag in cl (a late output: rcx, the new value's high half,
    // is read by cmpxchg16b before `sete` writes it).
    unsafe {
        asm!(
            "xchg {new_lo}, rbx",
            "lock cmpxchg16b xmmword ptr [rsi]",
            "sete cl",
            "mov rbx, {new_lo}",
            in("rsi") dst,
            new_lo = inout(reg) new as u64 => _,
            inout("rax") old as u64 => prev_lo,
            inout("rdx") (old >> 64) as u64 => prev_hi,
            inout("rcx") (new >> 64) as u64 => ok_word,
            options(nostack),
        );
    }
    let ok = ok_word as u8;
    (u128::from(prev_lo) | u128::from(prev_hi) << 64, ok != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas_load_and_store_see_all_128_bits() {
        assert!(AtomicU128::is_lock_free());
        let a = AtomicU128 {
            v: UnsafeCell::new(0),
        };
        let big = (0xdead_beef_u128 << 96) | (7 << 64) | 0x1234_5678_9abc_def0;
        assert_eq!(
            a.compare_exchange(1, big, Ordering::AcqRel, Ordering::Acquire),
            Err(0)
        );
        assert_eq!(
            a.compare_exchange(0, big, Ordering::AcqRel, Ordering::Acquire),
            Ok(0)
        );
        assert_eq!(a.load(Ordering::Acquire), big);
        assert_eq!(
            a.compare_exchange(big, !big, Ordering::AcqRel, Ordering::Acquire),
            Ok(big)
        );
        a.store(u128::MAX - 5, Ordering::Release);
        assert_eq!(a.load(Ordering::Acquire), u128::MAX - 5);
        // The fallback load (no AVX) reads the same value.
        // SAFETY: `a` is aligned and only accessed atomically; the CPU has
        // the instruction (asserted above).
        let found = unsafe { cmpxchg16b(a.v.get(), 0, 0) };
        assert_eq!(found, (u128::MAX - 5, false));
    }

    #[test]
    fn concurrent_increments_are_not_lost() {
        let a = std::sync::Arc::new(AtomicU128 {
            v: UnsafeCell::new(0),
        });
        let step = (1u128 << 64) | 1; // both halves move together
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let a = a.clone();
                std::thread::spawn(move || {
                    for _ in 0..100_000 {
                        let mut cur = a.load(Ordering::Acquire);
                        loop {
                            match a.compare_exchange(
                                cur,
                                cur + step,
                                Ordering::AcqRel,
                                Ordering::Acquire,
                            ) {
                                Ok(_) => break,
                                Err(actual) => cur = actual,
                            }
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(a.load(Ordering::Acquire), 200_000 * step);
    }
}
