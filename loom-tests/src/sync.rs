//! The loom side of `src/sync/mod.rs`: same names, loom's types.

pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

/// loom has no 128-bit atomics. This one is a loom mutex around the value: each
/// operation is atomic and synchronises like an AcqRel operation on one word,
/// which is at least as strong as what the protocol asks of its 128-bit words,
/// so loom still explores every interleaving of them.
#[derive(Debug)]
pub struct AtomicU128(loom::sync::Mutex<u128>);

impl AtomicU128 {
    pub fn new(v: u128) -> Self {
        AtomicU128(loom::sync::Mutex::new(v))
    }

    pub fn load(&self, _o: Ordering) -> u128 {
        *self.0.lock().unwrap()
    }

    pub fn store(&self, v: u128, _o: Ordering) {
        *self.0.lock().unwrap() = v;
    }

    pub fn compare_exchange(
        &self,
        current: u128,
        new: u128,
        _s: Ordering,
        _f: Ordering,
    ) -> Result<u128, u128> {
        let mut g = self.0.lock().unwrap();
        if *g == current {
            *g = new;
            Ok(current)
        } else {
            Err(*g)
        }
    }
}

/// Every spin is a scheduling point for the model checker.
pub(crate) fn spin_hint() {
    loom::thread::yield_now();
}

pub(crate) fn yield_now() {
    loom::thread::yield_now();
}

/// Spin phases shrink to one step so the models reach the sleeping path.
pub(crate) const SPIN_POLLS: u32 = 1;
pub(crate) const YIELD_POLLS: u32 = 1;
/// The models have no deadlines; every poll may look at the clock.
pub(crate) const CLOCK_POLLS: u32 = 1;
