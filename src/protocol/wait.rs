//! Waiting without losing wake-ups: an eventcount on a futex word.
//!
//! Two events live in the header, each a futex word and a sleeper word on a
//! line of its own: DATA (a record was committed; consumers sleep on it) and
//! SPACE (a group moved on; producers sleep on it when the ring is full).
//!
//! Sleeper: read the futex word `e`; announce itself in the sleeper word;
//! SeqCst fence; re-check its condition; if still false, `futex_wait(word, e)`;
//! withdraw its announcement.
//! Waker: make its change (commit a record, move a cursor); SeqCst fence; if the
//! sleeper word is non-zero, bump the futex word and wake everyone.
//!
//! The two fences are ordered one way or the other. If the sleeper's is first,
//! the waker sees the announcement and bumps the word, and the kernel's compare
//! in `futex_wait` makes a sleeper that has not gone to sleep yet return at
//! once. If the waker's is first, the sleeper's re-check sees the change. So no
//! wake-up is lost, and a waker pays a syscall only when someone sleeps.
//!
//! A process killed while asleep never withdraws its announcement, and every
//! later waker would pay a futex syscall for nobody. So each announcement can
//! be undone by whoever reaps the dead process's slot (under the admin lock,
//! before the slot is freed: [`clear_sleeper`]). The sleeper word is a
//! count, and each sleeper also marks itself asleep in its own slot (a
//! member's slot for DATA, a producer's registry slot for SPACE): increment,
//! then mark; on waking, clear the mark, then decrement. The reaper takes the
//! count back only if it clears a mark. A process killed between the two
//! steps of either pair leaves the count one too high (a wasted syscall per
//! wake, never a lost wake-up, which an undercount could cause).
//!
//! A wake that finds nobody (the kernel woke no thread) hints at such a dead
//! sleeper; the production region notes it so that the queue runs a reaping
//! pass soon (`Queue::after_stale_wake`, queue/admin.rs).

use crate::protocol::layout::*;
use crate::region::Region;
use crate::sync::{
    fence, spin_hint, yield_now, AtomicU64, Ordering, CLOCK_POLLS, SPIN_POLLS, YIELD_POLLS,
};
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

/// Who sleeps: decides the event and where the sleep is announced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sleeper {
    /// Member `m` of group `g` waits for data.
    Member {
        /// Group slot.
        g: usize,
        /// Member slot.
        m: usize,
    },
    /// The producer of registry slot `slot` waits for space.
    Producer {
        /// Registry slot.
        slot: usize,
    },
}

impl Sleeper {
    const fn event(self) -> Event {
        match self {
            Sleeper::Member { .. } => Event::Data,
            Sleeper::Producer { .. } => Event::Space,
        }
    }
}

/// How a consumer waits for messages, or a producer for space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
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

/// The waker's half: call after the change a sleeper may wait for.
#[inline]
pub fn notify<R: Region>(region: &R, ev: Event) {
    // SYNC POINT eventcount: pairs with the fence in `sleep`.
    fence(Ordering::SeqCst);
    if region.u32_at(ev.waiters_off()).load(Ordering::Relaxed) != 0 {
        // Release: orders our change before the bump for a sleeper that
        // reads the new word value (it then re-polls and sees the change).
        region
            .u32_at(ev.futex_off())
            .fetch_add(1, Ordering::Release);
        region.wake_all(ev.futex_off());
    }
}

/// Polls `poll` until it yields a value, per `strategy`, until the deadline
/// `deadline()` gives (`None`: none). The deadline is asked for only when the
/// clock is first looked at, after up to `CLOCK_POLLS` polls: a wait that
/// ends sooner reads no clock at all. `mark` is `who`'s asleep mark in its
/// own slot (the ring knows where: `Ring::asleep_mark`).
#[inline]
pub fn wait_for<R: Region, T>(
    region: &R,
    who: Sleeper,
    mark: &AtomicU64,
    strategy: WaitStrategy,
    deadline: impl FnOnce() -> Option<Instant>,
    mut poll: impl FnMut() -> Option<T>,
) -> Option<T> {
    let mut deadline = Some(deadline);
    let mut at: Option<Option<Instant>> = None;
    // Time left until the deadline (`None`: no deadline), or `Err` once
    // it has passed.
    let mut remaining = || match *at.get_or_insert_with(|| deadline.take().and_then(|f| f())) {
        Some(d) => match d.checked_duration_since(Instant::now()) {
            Some(r) if !r.is_zero() => Ok(Some(r)),
            _ => Err(()),
        },
        None => Ok(None),
    };
    let mut polls: u32 = 0;
    loop {
        if let Some(v) = poll() {
            return Some(v);
        }
        polls = polls.saturating_add(1);
        let spinning = strategy == WaitStrategy::Spin || polls < SPIN_POLLS;
        // A clock read costs several polls (a vDSO call), and a spinning
        // waiter that read it after each poll would see a commit that much
        // later: while spinning, it looks at the clock only every
        // CLOCK_POLLS polls.
        if (!spinning || polls.is_multiple_of(CLOCK_POLLS)) && remaining().is_err() {
            return None;
        }
        if spinning {
            spin_hint();
        } else if strategy == WaitStrategy::SpinYield || polls < SPIN_POLLS + YIELD_POLLS {
            yield_now();
        } else {
            let Ok(left) = remaining() else {
                return None;
            };
            if let Some(v) = sleep(region, who, mark, left, &mut poll) {
                return Some(v);
            }
        }
    }
}

/// The sleeper's half of the eventcount.
fn sleep<R: Region, T>(
    region: &R,
    who: Sleeper,
    mark: &AtomicU64,
    timeout: Option<Duration>,
    poll: &mut impl FnMut() -> Option<T>,
) -> Option<T> {
    let ev = who.event();
    // Acquire pairs with the Release bump in `notify`.
    let e = region.u32_at(ev.futex_off()).load(Ordering::Acquire);
    announce_sleep(region, who, mark);
    // SYNC POINT eventcount: pairs with the fence in `notify`.
    fence(Ordering::SeqCst);
    let got = poll();
    if got.is_none() {
        region.wait(ev.futex_off(), e, timeout);
    }
    clear_sleeper(region, who, mark);
    got
}

/// Puts `who` in its event's sleeper word and sets its asleep `mark`.
/// Relaxed: the fence after it in `sleep` orders it before the re-check
/// (module docs); the mark is read only by the sleeper itself and by a
/// reaper after the sleeper died.
pub fn announce_sleep<R: Region>(region: &R, who: Sleeper, mark: &AtomicU64) {
    region
        .u32_at(who.event().waiters_off())
        .fetch_add(1, Ordering::Relaxed);
    mark.store(1, Ordering::Relaxed);
}

/// Whether the sleeper whose asleep mark is `mark` is announced asleep (for
/// `stat`).
pub fn is_asleep(mark: &AtomicU64) -> bool {
    // Relaxed: a snapshot for display.
    mark.load(Ordering::Relaxed) == 1
}

/// Takes `who` (whose asleep mark is `mark`) out of its event's sleeper
/// word: the sleeper on waking, or whoever reaps a process killed while
/// asleep (admin lock held, the owner found dead, its slot not freed yet).
/// Returns whether it was in. Relaxed: a waker that still sees it only pays
/// a wasted wake.
pub fn clear_sleeper<R: Region>(region: &R, who: Sleeper, mark: &AtomicU64) -> bool {
    // Only who clears the mark takes the count back: the sleeper itself or
    // the reaper of a dead one, never both.
    let marked = mark.swap(0, Ordering::Relaxed) == 1;
    if marked {
        region
            .u32_at(who.event().waiters_off())
            .fetch_sub(1, Ordering::Relaxed);
    }
    marked
}
