//! Waiting without losing wake-ups: an eventcount on a futex word.
//!
//! Two events live in the header, each a futex word and a sleeper count on a
//! line of its own: DATA (a record was committed; consumers sleep on it) and
//! SPACE (a group moved on; producers sleep on it when the ring is full).
//!
//! Sleeper: read the futex word `e`; increment the sleeper count; SeqCst fence;
//! re-check its condition; if still false, `futex_wait(word, e)`; decrement.
//! Waker: make its change (commit a record, move a cursor); SeqCst fence; if the
//! sleeper count is non-zero, bump the futex word and wake everyone.
//!
//! The two fences are ordered one way or the other. If the sleeper's is first,
//! the waker sees the count and bumps the word, and the kernel's compare in
//! `futex_wait` makes a sleeper that has not gone to sleep yet return at once.
//! If the waker's is first, the sleeper's re-check sees the change. So no
//! wake-up is lost, and a waker pays a syscall only when someone sleeps.

use crate::layout::*;
use crate::region::Region;
use crate::ring::Ring;
use crate::sync::{fence, spin_hint, yield_now, Ordering, SPIN_POLLS, YIELD_POLLS};
use std::time::{Duration, Instant};

/// What a waiter is waiting for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A record was committed.
    Data,
    /// A group or member released ring space.
    Space,
}

impl Event {
    const fn futex_off(self) -> usize {
        match self {
            Event::Data => OFF_DATA_FUTEX,
            Event::Space => OFF_SPACE_FUTEX,
        }
    }

    const fn waiters_off(self) -> usize {
        match self {
            Event::Data => OFF_DATA_WAITERS,
            Event::Space => OFF_SPACE_WAITERS,
        }
    }
}

/// How a consumer waits for messages, or a producer for space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WaitStrategy {
    /// Poll in a tight loop: lowest latency, burns a core while waiting.
    Spin,
    /// Poll, then yield the CPU between polls.
    SpinYield,
    /// Poll briefly, then sleep on a futex: no CPU while idle; the waker pays
    /// a syscall only while someone sleeps.
    #[default]
    Block,
}

impl<R: Region> Ring<R> {
    /// The waker's half: call after the change a sleeper may wait for.
    #[inline]
    pub fn notify(&self, ev: Event) {
        // SYNC POINT eventcount: pairs with the fence in `wait_for`.
        fence(Ordering::SeqCst);
        if self.region.u32_at(ev.waiters_off()).load(Ordering::Relaxed) != 0 {
            // Release: orders our change before the bump for a sleeper that
            // reads the new word value (it then re-polls and sees the change).
            self.region
                .u32_at(ev.futex_off())
                .fetch_add(1, Ordering::Release);
            self.region.wake_all(ev.futex_off());
        }
    }

    /// Polls `poll` until it yields a value, per `strategy`, until `deadline`.
    pub fn wait_for<T>(
        &self,
        ev: Event,
        strategy: WaitStrategy,
        deadline: Option<Instant>,
        mut poll: impl FnMut() -> Option<T>,
    ) -> Option<T> {
        let mut polls: u32 = 0;
        loop {
            if let Some(v) = poll() {
                return Some(v);
            }
            let remaining = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(r) if !r.is_zero() => Some(r),
                    _ => return None,
                },
                None => None,
            };
            polls = polls.saturating_add(1);
            match strategy {
                WaitStrategy::Spin => spin_hint(),
                WaitStrategy::SpinYield => {
                    if polls < SPIN_POLLS {
                        spin_hint()
                    } else {
                        yield_now()
                    }
                }
                WaitStrategy::Block => {
                    if polls < SPIN_POLLS {
                        spin_hint();
                    } else if polls < SPIN_POLLS + YIELD_POLLS {
                        yield_now();
                    } else if let Some(v) = self.sleep(ev, remaining, &mut poll) {
                        return Some(v);
                    }
                }
            }
        }
    }

    /// The sleeper's half of the eventcount.
    fn sleep<T>(
        &self,
        ev: Event,
        timeout: Option<Duration>,
        poll: &mut impl FnMut() -> Option<T>,
    ) -> Option<T> {
        let word = self.region.u32_at(ev.futex_off());
        let waiters = self.region.u32_at(ev.waiters_off());
        // Acquire pairs with the Release bump in `notify`.
        let e = word.load(Ordering::Acquire);
        waiters.fetch_add(1, Ordering::Relaxed);
        // SYNC POINT eventcount: pairs with the fence in `notify`.
        fence(Ordering::SeqCst);
        let got = poll();
        if got.is_none() {
            self.region.wait(ev.futex_off(), e, timeout);
        }
        waiters.fetch_sub(1, Ordering::Relaxed);
        got
    }
}
