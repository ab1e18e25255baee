//! The loom side of `src/sync/mod.rs`: same names, loom's types.

pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

/// A 16-byte atomic for loom, which has none: a loom `AtomicU64` holding the
/// *number* of the current value in a table of the values this word has
/// held. Every operation is one operation on that loom atomic, with the
/// ordering the protocol asked for:
///
/// - the 16 bytes are single-copy atomic (a load returns one stored value,
///   never halves of two), as `lock cmpxchg16b`, an aligned AVX `vmovdqa`
///   and aarch64's `casp`/`ldxp`+`stxp`/LSE2 `ldp` are;
/// - a `Relaxed` load is a loom `Relaxed` load (it may read a stale value
///   and synchronises with nothing), `Acquire` is `Acquire`, a CAS is one
///   loom RMW with the success and failure orderings given: loom treats the
///   word as any of its atomics with those orderings (modification order,
///   coherence, release sequences, fences), within its usual bounds;
/// - equal values get equal numbers (the table is searched before it grows),
///   so a CAS on the numbers succeeds exactly when the values are equal, ABA
///   included.
///
/// This is no stronger than either production path and no weaker than the
/// contract both honour. aarch64 (`portable-atomic`: LSE2 `ldp`, `casp`, or
/// an `ldxp`/`stxp` loop) gives each operation the ordering it is passed, or
/// a stronger one; x86_64 (`src/sync/atomic128.rs`) is stronger still: its
/// CAS and its stores are `lock cmpxchg16b`, a full barrier, and its load is
/// an aligned `vmovdqa` that x86 orders as an Acquire load (or, without AVX,
/// a `lock cmpxchg16b` again). Anything that goes wrong here with the
/// requested orderings can go wrong on some target, or at least is allowed
/// to by the orderings the code states; what the hardware adds on top
/// (x86's full barriers, "on x86 and aarch64 the 128-bit CAS is a full
/// barrier anyway" in `claim.rs`) is not credited.
///
/// The table is bookkeeping outside the model, not a synchronisation loom
/// sees: loom runs one thread at a time, so its lock is never contended (it
/// is never held across a loom operation), and each execution builds its
/// words afresh.
#[derive(Debug)]
pub struct AtomicU128 {
    /// Index in `values` of the current value.
    id: AtomicU64,
    /// Every value this word has been given a number for, at its number.
    values: std::sync::Mutex<Vec<u128>>,
}

impl AtomicU128 {
    pub fn new(v: u128) -> Self {
        AtomicU128 {
            id: AtomicU64::new(0),
            values: std::sync::Mutex::new(vec![v]),
        }
    }

    /// The number of `v`, given one if it has none.
    fn number(&self, v: u128) -> u64 {
        let mut values = self.values.lock().unwrap();
        match values.iter().position(|&x| x == v) {
            Some(i) => i as u64,
            None => {
                values.push(v);
                (values.len() - 1) as u64
            }
        }
    }

    fn value(&self, id: u64) -> u128 {
        self.values.lock().unwrap()[id as usize]
    }

    pub fn load(&self, o: Ordering) -> u128 {
        self.value(self.id.load(o))
    }

    pub fn store(&self, v: u128, o: Ordering) {
        let id = self.number(v);
        self.id.store(id, o);
    }

    pub fn compare_exchange(
        &self,
        current: u128,
        new: u128,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u128, u128> {
        let (c, n) = (self.number(current), self.number(new));
        self.id
            .compare_exchange(c, n, success, failure)
            .map(|id| self.value(id))
            .map_err(|id| self.value(id))
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
