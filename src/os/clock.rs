//! Publish timestamps: nanoseconds since the Unix epoch (CLOCK_REALTIME),
//! comparable between processes on the host, so consumers can measure
//! delivery latency.
//!
//! Every message carries one, so the clock read is on every send. The kernel's
//! `clock_gettime` is a vDSO call that reads the TSC in order (`lfence;
//! rdtsc`) and converts it, a sizeable part of a whole send + receive
//! (docs/benchmarks.md). Where the kernel itself keeps time with the TSC (its
//! clocksource is `tsc`, which it chooses only when the counter is invariant
//! and synchronised between CPUs), [`now_ns`] reads the TSC without the fence
//! and converts it with a calibration of its own, per thread:
//! - the thread pairs a TSC reading with `clock_gettime` (an anchor); until
//!   its first anchor is `CALIBRATE` (10 ms) old it answers with
//!   `clock_gettime`, then it measures nanoseconds per tick between the two;
//! - from then on it extrapolates from the latest anchor for up to `SPAN`
//!   (50 ms); the first call after that takes a new anchor and measures the
//!   rate again, over a baseline that grows to one to two seconds and then
//!   slides, so NTP's slewing of CLOCK_REALTIME is followed;
//! - a rate that changed by more than 0.1% (the wall clock was stepped) or a
//!   clock that went backwards starts the calibration over.
//!
//! The error is an anchor's uncertainty (half its `rdtsc` pair's window:
//! tens of ns, at most 0.5 us at 4 GHz) plus the rate's over one span (tens
//! of ns once the baseline is a second long): under a microsecond between
//! any two threads or processes, as the unit test checks against the kernel. `SHMQ_CLOCK=kernel` in
//! the environment turns the TSC path off (every read is `clock_gettime`).

/// Nanoseconds since the Unix epoch, CLOCK_REALTIME.
#[inline]
///
/// ```
/// let t = shmq::clock::now_ns();
/// assert!(t > 1_577_836_800_000_000_000); // after 2020-01-01
/// // The clock messages are stamped with.
/// let q = shmq::QueueOptions::new().in_memory()?;
/// q.add_group("audit", shmq::StartAt::Latest)?;
/// let mut audit = q.consumer("audit").attach()?;
/// q.producer().attach()?.send(b"x")?;
/// let latency_ns = shmq::clock::now_ns().saturating_sub(audit.recv()?.ts_ns);
/// println!("delivered in {latency_ns} ns");
/// # Ok::<(), shmq::Error>(())
/// ```
pub fn now_ns() -> u64 {
    #[cfg(target_arch = "x86_64")]
    if let Some(ns) = tsc::now_ns() {
        return ns;
    }
    kernel_ns()
}

/// CLOCK_REALTIME from the kernel (a vDSO call).
fn kernel_ns() -> u64 {
    clock_ns(libc::CLOCK_REALTIME)
}

/// Clock `id` from the kernel, in ns.
#[inline]
fn clock_ns(id: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into `ts`.
    unsafe { libc::clock_gettime(id, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// Nanoseconds of CLOCK_MONOTONIC (one clock for every process on the host,
/// never stepped): ack deadlines are measured with it. Never 0.
pub(crate) fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC).max(1)
}

/// Whether [`now_ns`] (and so every message's timestamp) reads the TSC on
/// this machine, rather than calling `clock_gettime` each time.
///
/// ```
/// // A property of the machine (and of SHMQ_CLOCK=kernel), fixed for the process.
/// let tsc = shmq::clock::timestamps_from_tsc();
/// assert_eq!(shmq::clock::timestamps_from_tsc(), tsc);
/// if !cfg!(target_arch = "x86_64") {
///     assert!(!tsc);
/// }
/// println!("timestamps from {}", if tsc { "the TSC" } else { "clock_gettime" });
/// ```
pub fn timestamps_from_tsc() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        tsc::usable()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(target_arch = "x86_64")]
mod tsc {
    use super::kernel_ns;
    use std::cell::Cell;
    use std::sync::atomic::{AtomicU8, Ordering};

    /// The shortest baseline a rate is measured over.
    const CALIBRATE: u64 = 10_000_000;
    /// Once the baseline is this long, the next one starts (see `Cal::mid`).
    const BASELINE: u64 = 1_000_000_000;
    /// How long a thread extrapolates from one anchor. At most ~1 s keeps
    /// `delta * mult` within 64 bits for any TSC rate (the product is about
    /// `SPAN * 2^32`).
    const SPAN: u64 = 50_000_000;
    /// An anchor whose `rdtsc` pair is further apart than this many ticks
    /// (0.5 us at 4 GHz) was interrupted; it is not used.
    const MAX_WINDOW: u64 = 2_000;

    /// A TSC value and CLOCK_REALTIME read together.
    #[derive(Clone, Copy)]
    struct Anchor {
        tsc: u64,
        ns: u64,
    }

    #[derive(Clone, Copy)]
    struct Cal {
        /// The latest anchor, extrapolated from (`ns == 0`: none yet).
        at: Anchor,
        /// Where the rate is measured from.
        origin: Anchor,
        /// The first anchor taken once `origin` was BASELINE old: the next
        /// origin, when that is 2 * BASELINE old. So, after the first
        /// second, every rate is measured over one to two seconds.
        mid: Option<Anchor>,
        /// Nanoseconds per tick as a 32.32 fixed-point number; 0 while the
        /// rate is not measured yet.
        mult: u64,
        /// Ticks after `at.tsc` for which extrapolation is used (0: none).
        span: u64,
    }

    const NONE: Anchor = Anchor { tsc: 0, ns: 0 };

    impl Cal {
        const UNSET: Cal = Cal::start(NONE);

        /// Calibration starting over from `a`.
        const fn start(a: Anchor) -> Cal {
            Cal {
                at: a,
                origin: a,
                mid: None,
                mult: 0,
                span: 0,
            }
        }
    }

    thread_local! {
        static CAL: Cell<Cal> = const { Cell::new(Cal::UNSET) };
    }

    /// 0: not decided yet; 1: use the TSC; 2: do not.
    static STATE: AtomicU8 = AtomicU8::new(0);

    #[inline]
    pub(super) fn usable() -> bool {
        // Relaxed: a cache of a fact every thread computes the same way.
        match STATE.load(Ordering::Relaxed) {
            1 => true,
            2 => false,
            _ => decide(),
        }
    }

    #[cold]
    fn decide() -> bool {
        let ok = std::env::var("SHMQ_CLOCK").as_deref() != Ok("kernel")
            && std::fs::read_to_string(
                "/sys/devices/system/clocksource/clocksource0/current_clocksource",
            )
            .is_ok_and(|s| s.trim() == "tsc");
        // Relaxed: as above.
        STATE.store(if ok { 1 } else { 2 }, Ordering::Relaxed);
        ok
    }

    #[inline]
    fn rdtsc() -> u64 {
        // SAFETY: rdtsc has no preconditions on x86_64 (user mode may read the
        // counter unless the OS forbids it, which `usable` rules out: the
        // kernel's own vDSO clock would then not use it either).
        unsafe { core::arch::x86_64::_rdtsc() }
    }

    /// `None` when the TSC is not to be used.
    #[inline]
    pub(super) fn now_ns() -> Option<u64> {
        if !usable() {
            return None;
        }
        let t = rdtsc();
        let c = CAL.with(Cell::get);
        let d = t.wrapping_sub(c.at.tsc);
        if d < c.span {
            // d < span keeps the product below 2^64 (see SPAN).
            return Some(c.at.ns.wrapping_add(d.wrapping_mul(c.mult) >> 32));
        }
        Some(resync())
    }

    /// An anchor: the TSC at the midpoint of an `rdtsc` pair around
    /// `clock_gettime`, the narrowest of three tries; `None` if every try
    /// was interrupted.
    fn anchor() -> Option<Anchor> {
        let mut best: Option<(u64, Anchor)> = None;
        for _ in 0..3 {
            let a = rdtsc();
            let ns = kernel_ns();
            let b = rdtsc();
            let w = b.wrapping_sub(a);
            if b >= a && w <= MAX_WINDOW && best.is_none_or(|(bw, _)| w < bw) {
                best = Some((w, Anchor { tsc: a + w / 2, ns }));
            }
        }
        best.map(|(_, a)| a)
    }

    /// Nanoseconds per tick from `from` to `to` (32.32 fixed point).
    fn rate(from: Anchor, to: Anchor) -> u64 {
        let m = (((to.ns - from.ns) as u128) << 32) / (to.tsc - from.tsc) as u128;
        u64::try_from(m).unwrap_or(0)
    }

    /// The slow path: the span ran out, or there is no rate yet.
    #[cold]
    fn resync() -> u64 {
        let c = CAL.with(Cell::get);
        if c.mult == 0 && c.at.ns != 0 {
            // Calibrating: until the baseline is long enough, the kernel's
            // clock is the answer (one read, not an anchor's three).
            let ns = kernel_ns();
            if ns >= c.origin.ns && ns - c.origin.ns < CALIBRATE {
                return ns;
            }
        }
        let Some(a) = anchor() else {
            return kernel_ns();
        };
        let next = if c.at.ns == 0 || a.tsc <= c.at.tsc || a.ns <= c.at.ns {
            // First anchor, or the TSC or the wall clock went backwards:
            // start over from here.
            Cal::start(a)
        } else if a.ns - c.origin.ns < CALIBRATE {
            return a.ns;
        } else {
            let mult = rate(c.origin, a);
            // A rate that moved more than 0.1% from the last one: the wall
            // clock was stepped; measure again from here.
            if mult == 0 || (c.mult != 0 && mult.abs_diff(c.mult) > c.mult >> 10) {
                Cal::start(a)
            } else {
                let age = a.ns - c.origin.ns;
                let (origin, mid) = match c.mid {
                    Some(m) if age >= 2 * BASELINE => (m, Some(a)),
                    None if age >= BASELINE => (c.origin, Some(a)),
                    m => (c.origin, m),
                };
                Cal {
                    at: a,
                    origin,
                    mid,
                    mult,
                    span: u64::try_from(((SPAN as u128) << 32).div_ceil(mult as u128))
                        .unwrap_or(u64::MAX),
                }
            }
        };
        CAL.with(|cell| cell.set(next));
        next.at.ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// After calibration, every reading lies within a few microseconds of a
    /// bracket of kernel readings taken around it.
    #[test]
    fn tracks_the_kernel_clock() {
        let start = kernel_ns();
        let mut checked = 0;
        while kernel_ns() - start < 300_000_000 {
            let before = kernel_ns();
            let t = now_ns();
            let after = kernel_ns();
            if after - before > 20_000 {
                continue; // interrupted: the bracket says nothing
            }
            assert!(
                t + 5_000 >= before && t <= after + 5_000,
                "now_ns {t} outside [{before}, {after}] (tsc: {})",
                timestamps_from_tsc()
            );
            checked += 1;
        }
        assert!(checked > 1000);
    }
}
