//! Consumers: members of a group, receiving by copy or in place.
//!
//! - `record`: what a member took (a ring record or a logged message), its
//!   metadata, and whether its time to live ran out;
//! - `log`: reading the group's backlog from the spill log;
//! - `redelivery`: holds, redeliveries and dead letters (the ack table);
//! - `expiry`: messages whose time to live ran out, given up untaken.

mod expiry;
mod log;
mod record;
mod redelivery;

use crate::protocol::{ack, group, order};
use expiry::*;
use log::*;
use record::*;
use redelivery::*;

use crate::error::{AckError, GroupError, Reason, RecvError};
use crate::message::{Message, Meta};
use crate::os::liveness;
use crate::protocol::ack::{taken_hold, Hold};
use crate::protocol::group::{Take, Taken};
use crate::protocol::layout::{unpack, DISK_BIT, FLAG_TTL};
use crate::protocol::wait::{Sleeper, WaitStrategy};
use crate::queue::{reap_group, Queue};
use crate::staged::schedule;
use std::time::{Duration, Instant};

/// While a consumer waits, how often it looks again without being woken, on
/// a queue with a spill log (a round run elsewhere may have moved its group).
const SPILL_RECHECK: Duration = Duration::from_millis(20);
/// How often a consumer waiting behind an uncommitted record checks whether
/// its producer died.
const STUCK_CHECK: Duration = Duration::from_millis(50);
/// How often an idle consumer (nothing stuck at its cursor when it last
/// looked) looks again whether it waits behind a claim whose producer died.
const IDLE_RECHECK: Duration = Duration::from_secs(1);
/// How many times a receive that may wait polls the ring at its cursor
/// before it sets up the full wait (which spins `sync::SPIN_POLLS` more
/// polls first, whatever the strategy).
const FAST_POLLS: u32 = 64;

/// When a message counts as consumed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Ack {
    /// When it is handed out (at-most-once: a member that dies while
    /// processing it loses it).
    #[default]
    Auto,
    /// When the member calls [`Consumer::ack`] (at-least-once: a message
    /// handed to a member that nacks it, leaves or dies first, or holds it
    /// past the group's ack deadline, is delivered again, with
    /// [`Message::redelivered`] counting the attempts). A member holds up to
    /// its window of unacknowledged messages at a time
    /// ([`ConsumerBuilder::max_unacked`], [`Queue::set_ack_policy`]; default 1)
    /// and acknowledges them in any order.
    Explicit,
}

/// How to join a consumer group ([`Queue::consumer`]): the acknowledgement
/// mode, the window and the wait strategy are fixed when the member attaches.
#[derive(Debug)]
#[must_use = "a consumer builder does nothing until `attach`"]
pub struct ConsumerBuilder<'q> {
    q: &'q Queue,
    group: &'q str,
    ack: Ack,
    window: Option<u64>,
    wait: WaitStrategy,
}

impl<'q> ConsumerBuilder<'q> {
    pub(crate) fn new(q: &'q Queue, group: &'q str) -> Self {
        ConsumerBuilder {
            q,
            group,
            ack: Ack::Auto,
            window: None,
            wait: WaitStrategy::default(),
        }
    }

    /// How the member acknowledges. Default [`Ack::Auto`].
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("work", shmq::StartAt::Latest)?;
    /// let mut worker = q.consumer("work").ack(shmq::Ack::Explicit).attach()?;
    /// q.producer().attach()?.send(b"job")?;
    /// let job = worker.recv()?;
    /// assert_eq!(worker.unacked(), [job.seq]);
    /// worker.ack(job.seq)?;
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn ack(mut self, ack: Ack) -> Self {
        self.ack = ack;
        self
    }

    /// With [`Ack::Explicit`], how many messages the member may hold
    /// unacknowledged at once (at least 1). Default: the group's
    /// ([`Queue::set_ack_policy`], 1 unless set). All members of a group
    /// share its ack table (`QueueOptions::ack_entries` entries).
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("work", shmq::StartAt::Latest)?;
    /// let mut w = q.consumer("work").ack(shmq::Ack::Explicit).max_unacked(2).attach()?;
    /// q.producer().attach()?.send_batch(&[b"a", b"b", b"c"])?;
    /// w.recv()?;
    /// w.recv()?;
    /// assert!(matches!(w.try_recv(), Err(shmq::RecvError::AckPending { seq: 0 })));
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn max_unacked(mut self, n: u64) -> Self {
        self.window = Some(n.max(1));
        self
    }

    /// How the member waits for messages. Default [`WaitStrategy::Block`].
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("md", shmq::StartAt::Latest)?;
    /// let c = q.consumer("md").wait_strategy(shmq::WaitStrategy::Spin).attach()?;
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn wait_strategy(mut self, w: WaitStrategy) -> Self {
        self.wait = w;
        self
    }

    /// Joins the group as a new member.
    ///
    /// # Errors
    /// [`GroupError::Unknown`], [`GroupError::MembersFull`],
    /// [`GroupError::Io`].
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// assert!(matches!(
    ///     q.consumer("nobody").attach(),
    ///     Err(shmq::GroupError::Unknown(_))
    /// ));
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn attach(self) -> Result<Consumer, GroupError> {
        let (g, m) = self.q.attach_consumer(self.group)?;
        // Scheduled messages left by processes that all died are found
        // (and released, if due) by the next member (staged/schedule.rs).
        let _ = self.q.rescan_scheduled();
        schedule::poll(self.q);
        let mut c = Consumer::new(self.q.clone(), g, m);
        c.ack = self.ack;
        c.acks.window = self.window;
        c.wait = self.wait;
        Ok(c)
    }
}

/// A member of a consumer group. Each message of the group goes to exactly one
/// member; a member sees increasing sequence numbers (in a group ordered by
/// key, increasing per key: a key's message that waited for its earlier one
/// comes after later messages of other keys). Leaves the group when
/// dropped (the group keeps its position).
pub struct Consumer {
    q: Queue,
    g: usize,
    m: usize,
    wait: WaitStrategy,
    ack: Ack,
    /// The records of the last batch (`recv_batch`), kept for its allocation.
    batch: Vec<Taken>,
    /// Reading the spill log, created when the group first reads it.
    disk: Option<Disk>,
    /// This member's entries in the group's ack table.
    acks: Acks,
    /// The group's default time to live (ns) and whether it is ordered by
    /// key, as of the last upkeep (`refresh`): read on every take.
    ttl_ns: u64,
    keyed: bool,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ring = self.q.ring();
        f.debug_struct("Consumer")
            .field("queue", &self.q.path())
            .field("group", &String::from_utf8_lossy(&ring.slot_name(self.g)))
            .field("member", &self.m)
            .field("ack", &self.ack)
            .field("unacked", &self.unacked())
            .finish_non_exhaustive()
    }
}

/// Takes between two looks at the clock for upkeep on the fast path.
const UPKEEP_COUNTDOWN: u32 = 256;
/// How often a member does its group's upkeep (dead members, ack deadlines,
/// the pending hint) at most, and at least while it waits.
const UPKEEP_EVERY: Duration = Duration::from_secs(1);

/// How a take is held until acknowledged.
#[derive(Clone, Copy)]
enum TakeHold {
    /// Automatic acknowledgement: nothing to hold.
    Auto,
    /// Explicit, but the group's ack table has no free entry now.
    NoEntry,
    /// Explicit, in this reserved ack-table entry, taken at this time (ns).
    Entry((usize, u64), u64),
}

impl TakeHold {
    /// The entry and time the protocol's take records, if any.
    fn entry(self) -> Option<((usize, u64), u64)> {
        match self {
            TakeHold::Entry(r, since) => Some((r, since)),
            TakeHold::Auto | TakeHold::NoEntry => None,
        }
    }
}

#[derive(Clone, Copy)]
enum Mode {
    Try,
    /// Wait up to this long (`None`: forever). The deadline is computed only
    /// once the first poll found nothing: no clock read per message.
    Until(Option<Duration>),
}

impl Consumer {
    pub(crate) fn new(q: Queue, g: usize, m: usize) -> Self {
        Consumer {
            q,
            g,
            m,
            wait: WaitStrategy::default(),
            ack: Ack::Auto,
            batch: Vec::new(),
            disk: None,
            acks: Acks {
                countdown: UPKEEP_COUNTDOWN,
                ..Acks::default()
            },
            ttl_ns: 0,
            keyed: false,
        }
        .refreshed()
    }

    /// With the group's configuration read again (its time to live, its
    /// order by key).
    fn refreshed(mut self) -> Self {
        self.refresh();
        self
    }

    /// Reads the group's configuration again: what a change to it takes
    /// effect on this member by (`upkeep`, at least every second).
    fn refresh(&mut self) {
        let ring = self.q.ring();
        self.ttl_ns = crate::protocol::ttl::group_ttl(ring, self.g);
        self.keyed = order::keyed(ring, self.g);
    }

    /// How this member acknowledges ([`ConsumerBuilder::ack`]).
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("work", shmq::StartAt::Latest)?;
    /// let c = q.consumer("work").ack(shmq::Ack::Explicit).attach()?;
    /// assert_eq!(c.ack_mode(), shmq::Ack::Explicit);
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn ack_mode(&self) -> Ack {
        self.ack
    }

    /// This member's window: how many messages it may hold unacknowledged
    /// at once ([`ConsumerBuilder::max_unacked`], else the group's).
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("work", shmq::StartAt::Latest)?;
    /// let c = q.consumer("work").ack(shmq::Ack::Explicit).max_unacked(8).attach()?;
    /// assert_eq!(c.max_unacked(), 8);
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn max_unacked(&self) -> u64 {
        self.acks
            .window
            .unwrap_or_else(|| ack::max_unacked(self.q.ring(), self.g))
    }

    /// The messages this member holds unacknowledged, in the order taken
    /// (a hold whose ack deadline passed is no longer listed).
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("work", shmq::StartAt::Latest)?;
    /// let mut w = q.consumer("work").ack(shmq::Ack::Explicit).max_unacked(2).attach()?;
    /// q.producer().attach()?.send_batch(&[b"a", b"b"])?;
    /// w.recv()?;
    /// w.recv()?;
    /// assert_eq!(w.unacked(), [0, 1]);
    /// w.ack(0)?;
    /// assert_eq!(w.unacked(), [1]);
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn unacked(&self) -> Vec<u64> {
        let ring = self.q.ring();
        self.acks
            .held
            .iter()
            .filter(|h| ack::still_held(ring, self.g, h))
            .map(|h| h.entry.seq)
            .collect()
    }

    /// Acknowledges message `seq` (received with [`Ack::Explicit`]): it
    /// counts as consumed and will not be delivered again.
    ///
    /// # Errors
    /// [`AckError::NotHeld`] if this member does not hold `seq`;
    /// [`AckError::Expired`] if it held it past the group's ack deadline
    /// (it went back for redelivery, and this ack changes nothing).
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("work", shmq::StartAt::Latest)?;
    /// let mut w = q.consumer("work").ack(shmq::Ack::Explicit).attach()?;
    /// q.producer().attach()?.send(b"job")?;
    /// let job = w.recv()?;
    /// w.ack(job.seq)?;
    /// // Done: acknowledged once, never delivered again.
    /// assert!(matches!(w.ack(job.seq), Err(shmq::AckError::NotHeld { .. })));
    /// assert_eq!(w.try_recv(), Err(shmq::RecvError::Empty));
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn ack(&mut self, seq: u64) -> Result<(), AckError> {
        let h = self.release_hold(seq)?;
        let ring = self.q.ring();
        // Kept for the next take, unless the table is tight (an idle member
        // must not keep an entry another one needs).
        let keep = self.acks.reserved.is_none() && !ack::table_tight(ring, self.g);
        match ack::finish_hold(ring, self.g, self.m, &h, keep) {
            Ok(r) => {
                if r.is_some() {
                    self.acks.reserved = r;
                }
                ack::note_acked(ring, self.g, self.m);
                order::finished(ring, self.g);
                Ok(())
            }
            Err(()) => Err(AckError::Expired { seq }),
        }
    }

    /// Gives message `seq` back: it failed here, and is delivered again (to
    /// any member of the group) with its attempt count one higher, or given
    /// up once the group's `max_attempts` is reached.
    ///
    /// # Errors
    /// As for [`Consumer::ack`].
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("work", shmq::StartAt::Latest)?;
    /// let mut w = q.consumer("work").ack(shmq::Ack::Explicit).attach()?;
    /// q.producer().attach()?.send(b"job")?;
    /// let first = w.recv()?;
    /// w.nack(first.seq)?;
    /// // Delivered again, flagged as a redelivery.
    /// let again = w.recv()?;
    /// assert_eq!((again.seq, again.redelivered), (first.seq, 1));
    /// w.ack(again.seq)?;
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn nack(&mut self, seq: u64) -> Result<(), AckError> {
        let h = self.release_hold(seq)?;
        ack::nack_hold(self.q.ring(), self.g, &h).map_err(|()| AckError::Expired { seq })
    }

    /// Removes this member's hold on `seq` from its list (the latest, if it
    /// was handed `seq` more than once).
    fn release_hold(&mut self, seq: u64) -> Result<Hold, AckError> {
        match self.acks.held.iter().rposition(|h| h.entry.seq == seq) {
            Some(i) => Ok(self.acks.held.remove(i)),
            None => match self.acks.expired.iter().rposition(|&s| s == seq) {
                // One answer per ended hold: a member handed `seq` again
                // after its hold ended, whose second hold ended too, gets
                // `Expired` for each.
                Some(i) => {
                    self.acks.expired.remove(i);
                    Err(AckError::Expired { seq })
                }
                None => Err(AckError::NotHeld {
                    seq,
                    held: self.unacked().first().copied(),
                }),
            },
        }
    }

    /// After a copy: auto-ack finishes the message; explicit keeps it (and
    /// its pin) until `ack`. With auto-ack a redelivery (taken over as an
    /// entry) is finished as acknowledged; a fresh message only drops the
    /// hazard.
    // Inlined: see `group::try_take` (group.rs).
    #[inline(always)]
    fn finish(&mut self, got: Got) {
        let ring = self.q.ring();
        if let Some(h) = self.acks.auto.take() {
            // Kept for the next take (a group ordered by key takes every
            // message with an entry), unless the table is tight.
            let keep = self.acks.reserved.is_none() && !ack::table_tight(ring, self.g);
            if let Ok(r) = ack::finish_hold(ring, self.g, self.m, &h, keep) {
                if r.is_some() {
                    self.acks.reserved = r;
                }
                ack::note_acked(ring, self.g, self.m);
                order::finished(ring, self.g);
            }
            return;
        }
        match (self.ack, got) {
            (Ack::Auto, Got::Ring(..)) => group::release(ring, self.g, self.m),
            (Ack::Explicit, _) | (Ack::Auto, Got::Disk(_)) => {}
        }
    }

    /// The group's upkeep, if it is due (see `UPKEEP_EVERY`): dead members
    /// of the group are reaped (their messages redelivered), holds past the
    /// ack deadline expired, the pending hint repaired.
    #[cold]
    fn upkeep(&mut self, force: bool) {
        self.acks.countdown = UPKEEP_COUNTDOWN;
        self.refresh();
        schedule::poll(&self.q);
        let ring = self.q.ring();
        let now = crate::os::clock::monotonic_ns();
        if !force && now < self.acks.next_upkeep {
            return;
        }
        let wait = ack::ack_wait_ns(ring, self.g);
        // With an ack deadline, often enough to keep its lateness small.
        let every = match wait {
            0 => UPKEEP_EVERY.as_nanos() as u64,
            w => (w / 4).clamp(1_000_000, UPKEEP_EVERY.as_nanos() as u64),
        };
        self.acks.next_upkeep = now + every;
        // A scheduled message whose hint a crash lost is found within a
        // second by any member (staged/schedule.rs).
        self.q.rescan_if_changed();
        self.q.reap_dead_members_of(self.g);
        ack::maintain(ring, self.g, now);
        // Holds of ours that others ended (expired): off our list.
        self.acks.prune(ring, self.g);
    }

    /// How the next take is held, or an error when the window is full. In
    /// a group ordered by key, auto-ack takes are held by an entry too
    /// (order.rs), until the message is copied.
    #[inline(always)]
    fn hold_for_take(&mut self) -> Result<TakeHold, RecvError> {
        if self.ack != Ack::Explicit && !self.keyed {
            return Ok(TakeHold::Auto);
        }
        let ring = self.q.ring();
        if self.ack == Ack::Explicit && self.acks.held.len() as u64 >= self.max_unacked() {
            self.acks.prune(ring, self.g);
            if let Some(oldest) = self.acks.held.first() {
                if self.acks.held.len() as u64 >= self.max_unacked() {
                    return Err(RecvError::AckPending {
                        seq: oldest.entry.seq,
                    });
                }
            }
        }
        if self.acks.reserved.is_none() {
            self.acks.reserved = ack::reserve(ring, self.g, self.m);
        }
        let since = match ack::ack_wait_ns(ring, self.g) {
            0 => 0,
            _ => crate::os::clock::monotonic_ns(),
        };
        Ok(match self.acks.reserved {
            Some(r) => TakeHold::Entry(r, since),
            None => TakeHold::NoEntry,
        })
    }

    /// Keeps the hold of a take with an entry: until `ack` (explicit), or
    /// until the message is copied (auto-ack, in a group ordered by key).
    #[inline(always)]
    fn keep_hold(&mut self, h: Hold) {
        match self.ack {
            Ack::Explicit => self.acks.held.push(h),
            Ack::Auto => self.acks.auto = Some(h),
        }
    }

    /// The next message for the caller: one taken and not expired (those
    /// that are, are given up on the way: expiry.rs), and in a group
    /// ordered by key, none of whose key an earlier one is still out (those
    /// are parked on the way: order.rs).
    // Inlined, with `group::try_take` in it: see there (group.rs).
    #[inline(always)]
    fn take(&mut self, mode: Mode) -> Result<Got, RecvError> {
        self.take_any::<true>(mode)
    }

    /// `plain` for any take.
    #[inline(always)]
    fn plain_got(&self, got: &Got) -> bool {
        match got {
            Got::Ring(t, _) => self.plain(t),
            Got::Disk(d) => self.ttl_ns == 0 && !self.keyed && d.ttl_ns.is_none(),
        }
    }

    /// Whether a message taken from the ring needs no judging (`judge`):
    /// the usual case, a group with no time to live, not ordered by key,
    /// and a message with no TTL, is decided by this one branch.
    #[inline(always)]
    fn plain(&self, t: &Taken) -> bool {
        self.ttl_ns == 0 && !self.keyed && t.flags & FLAG_TTL == 0
    }

    /// `judge` of a message just taken from the ring (a separate function,
    /// so that the fast path builds no `Got` to pass).
    #[cold]
    #[inline(never)]
    fn judge_taken(&mut self, t: Taken, mode: Mode) -> Result<Got, RecvError> {
        self.judge(Got::Ring(t, Again::default()), mode)
    }

    /// Hands `got` over if it is neither expired nor behind its key;
    /// otherwise gives it up or parks it, and takes the next (out of the
    /// inlined receive path).
    #[cold]
    #[inline(never)]
    fn judge(&mut self, mut got: Got, mode: Mode) -> Result<Got, RecvError> {
        loop {
            if expired(self.q.ring(), self.ttl_ns, &got) {
                self.expire(got)?;
            } else if self.must_wait(&got) {
                self.park(got);
            } else {
                return Ok(got);
            }
            got = self.take_any::<false>(mode)?;
        }
    }

    /// The hold of the take that gave `got`, if held by an entry (the
    /// latest of an explicit member's, or an auto-ack member's one).
    fn hold_of(&self, got: &Got) -> Option<&Hold> {
        match self.ack {
            Ack::Explicit => self.acks.held.last(),
            Ack::Auto => self.acks.auto.as_ref(),
        }
        .filter(|h| h.entry.seq == got.seq())
    }

    /// `hold_of`, taken off the member's list (to be settled otherwise).
    fn take_hold_of(&mut self, got: &Got) -> Option<Hold> {
        self.hold_of(got)?;
        match self.ack {
            Ack::Explicit => self.acks.held.pop(),
            Ack::Auto => self.acks.auto.take(),
        }
    }

    /// Whether message `got`, just taken from the cursor of a group ordered
    /// by key, must wait for an earlier message of its key still in the
    /// table. (A redelivery was taken over only if none is: `blocked`.) The
    /// key's hash is the one its take announced in its entry.
    #[inline(always)]
    fn must_wait(&self, got: &Got) -> bool {
        if !self.keyed {
            return false;
        }
        match self.hold_of(got) {
            // Never delivered before: a take from the cursor, or a parked
            // message taken over (`blocked` let it: not busy).
            Some(h) if h.entry.attempts == 0 && h.entry.key != 0 => {
                order::key_busy(self.q.ring(), self.g, h.idx, h.entry.key, h.entry.seq)
            }
            _ => false,
        }
    }

    /// Parks message `got`: pending in the table, behind its key's earlier
    /// message, without being handed out (ack.rs `park`).
    #[cold]
    fn park(&mut self, got: Got) {
        if let Some(h) = self.take_hold_of(&got) {
            // Ended by someone else (its deadline): theirs now.
            let _ = ack::park(self.q.ring(), self.g, &h);
        }
    }

    /// The next message; with `JUDGE`, one handed over by `judge` (the
    /// fast path judges where it takes, so that its result is returned as
    /// it is made, with no copy through the stack: that alone cost a third
    /// more per receive).
    #[inline(always)]
    fn take_any<const JUDGE: bool>(&mut self, mode: Mode) -> Result<Got, RecvError> {
        // A wake of this process (the last release) may have found nobody.
        self.q.after_stale_wake();
        self.acks.countdown -= 1;
        if self.acks.countdown == 0 {
            self.upkeep(false);
        }
        let hold = self.hold_for_take()?;
        // Fast path, the usual case: no redelivery waiting, a message in the
        // ring at the cursor. The log and a corrupt record are left to the
        // full poll. A receive that may wait looks again at an empty ring
        // FAST_POLLS times before the full wait is set up: a message that
        // arrives meanwhile is handed over from here, sooner than from the
        // full wait's loop (docs/benchmarks.md), and every wait strategy
        // spins longer than that anyway.
        let ring = self.q.ring();
        let polls = match mode {
            Mode::Try | Mode::Until(Some(Duration::ZERO)) => 1,
            Mode::Until(_) => FAST_POLLS,
        };
        let mut empty = false;
        // An explicit take with no free entry goes the full way (pending
        // entries need none).
        if !matches!(hold, TakeHold::NoEntry) {
            let hold = hold.entry();
            for i in 0..polls {
                if ack::has_pending(ring, self.g) {
                    empty = false;
                    break;
                }
                match group::try_take(ring, self.g, self.m, hold) {
                    Ok(Some(Take::Ring(t))) => {
                        if let Some((r, _)) = hold {
                            self.keep_hold(taken_hold(r, self.m, t.seq, t.pos, t.key_hash(ring)));
                            self.acks.reserved = None;
                        }
                        if JUDGE && !self.plain(&t) {
                            return self.judge_taken(t, mode);
                        }
                        return Ok(Got::Ring(t, Again::default()));
                    }
                    Ok(None) => empty = true,
                    _ => {
                        empty = false;
                        break;
                    }
                }
                if i + 1 < polls {
                    crate::sync::spin_hint();
                }
            }
        }
        match self.take_slow(mode, empty) {
            Ok(got) if JUDGE && !self.plain_got(&got) => self.judge(got, mode),
            r => r,
        }
    }

    /// Everything but the fast path: redeliveries, the log, waiting.
    /// `empty`: the fast path just found nothing at the cursor.
    #[inline(never)]
    fn take_slow(&mut self, mode: Mode, empty: bool) -> Result<Got, RecvError> {
        let (g, m) = (self.g, self.m);
        let explicit = self.ack == Ack::Explicit;
        let deadline = match mode {
            Mode::Try => None,
            Mode::Until(t) => t.map(|t| Instant::now() + t),
        };
        let spill = self.q.spill().is_some();
        // The fast path missed for a reason other than an empty ring: poll
        // the full way once before setting up a wait (`wait_for` also polls
        // first, so only `Mode::Try` would otherwise miss this look).
        if !empty {
            if let Some(r) = self.poll_full() {
                return r;
            }
        }
        if let Mode::Try = mode {
            // A member polling with `try_recv` releases what is due too.
            if schedule::next_due(self.q.ring()) != 0 && schedule::poll(&self.q) {
                if let Some(r) = self.poll_full() {
                    return r;
                }
            }
            let e = self.nothing_now(explicit);
            self.give_back_reservation();
            return Err(e);
        }
        // Whether the last look found the cursor not behind a claim.
        let mut settled = false;
        let q = self.q.clone();
        let ring = q.ring();
        loop {
            // Waiting behind a claimed record that is not committed: its
            // producer may have died, which no wake-up will tell. So wait in
            // slices, and between slices compare the cursor with TAIL: every
            // STUCK_CHECK until that found nothing stuck, then every
            // IDLE_RECHECK (a claim made later may die too, and the wake-up
            // of a later commit ends no slice). TAIL is read only after a
            // slice: a consumer that read it at each wait would pull the
            // producers' hottest line away from them once per message.
            let cur = unpack(ring.cursor_now(g));
            let mut every = match (spill, settled) {
                (true, _) => SPILL_RECHECK,
                (false, false) => STUCK_CHECK,
                (false, true) => IDLE_RECHECK,
            };
            if ack::ack_wait_ns(ring, g) != 0 {
                // Holds past the deadline are found by waiting members too.
                every = every.min(Duration::from_nanos(
                    (ack::ack_wait_ns(ring, g) / 4).max(1_000_000),
                ));
            }
            // Scheduled messages: released when due by a waiting member
            // (staged/schedule.rs), which waits no longer than that.
            let due = schedule::next_due(ring);
            if due != 0 {
                let now = crate::os::clock::now_ns();
                if due <= now {
                    schedule::poll(&q);
                    // Released, or another process is at it: look again
                    // soon, not at once; or when this process's back-off
                    // ends (polls before would do nothing).
                    let wait = schedule::backing_off(&q).unwrap_or_default();
                    every = every.min(wait.max(Duration::from_millis(1)));
                } else {
                    every = every.min(Duration::from_nanos(due - now));
                }
            }
            // The slice starts when the wait first looks at the clock.
            let slice = || {
                let s = Instant::now() + every;
                Some(deadline.map_or(s, |d| d.min(s)))
            };
            let wait = self.wait;
            let r = {
                let this = &mut *self;
                // A new earliest due time (a schedule wakes the waiters)
                // ends the slice, to plan the wait again.
                let mut poll = || {
                    if schedule::next_due(ring) != due {
                        return Some(None);
                    }
                    this.poll_full().map(Some)
                };
                ring.wait_for(Sleeper::Member { g, m }, wait, slice, &mut poll)
            };
            if let Some(Some(r)) = r {
                return r;
            }
            let stuck = cur.0 & DISK_BIT == 0
                && unpack(ring.cursor_now(g)) == cur
                && cur.1 < ring.tail_now().1;
            if stuck {
                q.recover_dead_producers();
            }
            settled = !stuck;
            // Dead members of the group, expired holds: found by members
            // that wait, with no new member, gc or send needed.
            self.upkeep(false);
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(RecvError::Timeout);
            }
        }
    }

    /// Nothing to take now: with the group's ack table tight, the entry
    /// reserved for the next take goes back (another member may need it).
    fn give_back_reservation(&mut self) {
        let ring = self.q.ring();
        if ack::table_tight(ring, self.g) {
            if let Some(r) = self.acks.reserved.take() {
                ack::unreserve(ring, self.g, self.m, r);
            }
        }
    }

    /// What a receive that found nothing returns without waiting: empty,
    /// or, for an explicit take with the group's ack table full, that.
    fn nothing_now(&self, explicit: bool) -> RecvError {
        if explicit && self.acks.reserved.is_none() {
            RecvError::AckTableFull {
                entries: self.q.ring().geo.ack_entries,
            }
        } else {
            RecvError::Empty
        }
    }

    /// One full poll: redeliveries, then the cursor (ring or log). `None`:
    /// nothing now.
    fn poll_full(&mut self) -> Option<Result<Got, RecvError>> {
        let (g, m) = (self.g, self.m);
        let q = self.q.clone();
        let ring = q.ring();
        let explicit = self.ack == Ack::Explicit;
        loop {
            // The window first: a member holding all it may hold takes
            // nothing, redeliveries included.
            let hold = match self.hold_for_take() {
                Ok(h) => h,
                Err(e) => return Some(Err(e)),
            };
            // Redeliveries first: they are older than anything at the cursor.
            if ack::has_pending(ring, g) {
                match take_redelivery(&q, g, m, &mut self.disk, &mut self.acks, explicit) {
                    Ok(Some(got)) => return Some(Ok(got)),
                    Ok(None) => {}
                    Err(e) => return Some(Err(e)),
                }
            }
            // Explicit with the ack table full: nothing to take into.
            if matches!(hold, TakeHold::NoEntry) {
                return None;
            }
            let hold = hold.entry();
            let got = match group::try_take(ring, g, m, hold) {
                Ok(Some(Take::Ring(t))) => Got::Ring(t, Again::default()),
                Ok(None) => {
                    self.give_back_reservation();
                    return None;
                }
                Err(e) => return Some(Err(RecvError::Corrupt(Reason::new(e.0)))),
                Ok(Some(Take::Disk(cur))) => match take_disk(&q, g, m, &mut self.disk, cur, hold) {
                    Ok(DiskStep::Got(meta, at, key)) => {
                        if let Some((r, _)) = hold {
                            self.keep_hold(taken_hold(r, m, meta.seq, at, key));
                            self.acks.reserved = None;
                        }
                        let got = self.disk.as_mut().map(|d| d.got(meta, at));
                        return got.map(Ok);
                    }
                    Ok(DiskStep::Retry) => continue,
                    Ok(DiskStep::CaughtUp) => {
                        self.give_back_reservation();
                        return None;
                    }
                    Err(e) => return Some(Err(e)),
                },
            };
            if let (Some((r, _)), Got::Ring(t, _)) = (hold, got) {
                self.keep_hold(taken_hold(r, m, t.seq, t.pos, t.key_hash(ring)));
                self.acks.reserved = None;
            }
            return Some(Ok(got));
        }
    }

    // Inlined: see `group::try_take` (group.rs).
    #[inline(always)]
    fn copy_out(&mut self, got: Got, buf: &mut Vec<u8>) -> Meta {
        let meta = match got {
            Got::Ring(t, redelivered) => {
                let ring = self.q.ring();
                // Every byte is overwritten below: only resize (and zero-fill)
                // when the length changes, not on every message.
                buf.resize(t.payload_len(), 0);
                // SAFETY: `got` is this member's take, not finished yet: its
                // hazard or its entry pins the record.
                unsafe { group::read_payload(ring, &t, buf) };
                ring_meta(ring, &t, redelivered)
            }
            Got::Disk(d) => {
                if let Some(d) = &self.disk {
                    buf.clear();
                    buf.extend_from_slice(&d.buf);
                }
                self.disk_meta(d)
            }
        };
        self.finish(got);
        meta
    }

    /// The metadata of message `d`, the one last read from the spill log
    /// (`Disk::got` keeps it there).
    fn disk_meta(&self, d: DiskGot) -> Meta {
        self.disk
            .as_ref()
            .and_then(|x| x.meta)
            .unwrap_or_else(|| d.bare())
    }

    fn recv_mode(&mut self, mode: Mode) -> Result<Message, RecvError> {
        let got = self.take(mode)?;
        let mut payload = Vec::new();
        let meta = match (got, &mut self.disk) {
            (Got::Disk(g), Some(d)) => {
                payload = std::mem::take(&mut d.buf);
                let meta = d.meta.unwrap_or_else(|| g.bare());
                self.finish(got);
                meta
            }
            _ => self.copy_out(got, &mut payload),
        };
        Ok(Message {
            seq: meta.seq,
            ts_ns: meta.ts_ns,
            payload,
            redelivered: meta.redelivered,
            dead_letter_from: meta.dead_letter_from,
            dead_letter_seq: meta.dead_letter_seq,
            producer: meta.producer,
            ttl: meta.ttl,
            key: meta.key,
        })
    }

    /// Receives the next message of the group, waiting as long as it takes.
    ///
    /// # Errors
    /// [`RecvError::Corrupt`] if the queue memory is damaged;
    /// [`RecvError::Spill`] if the group reads the spill log and that fails;
    /// with [`Ack::Explicit`], [`RecvError::AckPending`] while the member
    /// holds its whole window and [`RecvError::AckTableFull`].
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("audit", shmq::StartAt::Latest)?;
    /// let mut audit = q.consumer("audit").attach()?;
    /// let seq = q.producer().attach()?.send(b"hello")?;
    /// let msg = audit.recv()?;
    /// assert_eq!((msg.seq, &msg.payload[..]), (seq, &b"hello"[..]));
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn recv(&mut self) -> Result<Message, RecvError> {
        self.recv_mode(Mode::Until(None))
    }

    /// Receives the next message if one is there now.
    ///
    /// # Errors
    /// [`RecvError::Empty`]; otherwise as for [`Consumer::recv`].
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("audit", shmq::StartAt::Latest)?;
    /// let mut audit = q.consumer("audit").attach()?;
    /// assert_eq!(audit.try_recv(), Err(shmq::RecvError::Empty));
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn try_recv(&mut self) -> Result<Message, RecvError> {
        self.recv_mode(Mode::Try)
    }

    /// Receives the next message, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`RecvError::Timeout`]; otherwise as for [`Consumer::recv`].
    ///
    /// ```
    /// # use std::time::Duration;
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("audit", shmq::StartAt::Latest)?;
    /// let mut audit = q.consumer("audit").attach()?;
    /// let r = audit.recv_timeout(Duration::from_millis(1));
    /// assert_eq!(r, Err(shmq::RecvError::Timeout));
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Message, RecvError> {
        self.recv_mode(Mode::Until(Some(timeout)))
    }

    /// Receives the next message in place (zero copy), waiting as long as it
    /// takes. The ring space stays reserved until the guard drops, so drop
    /// it soon. (A message read from the spill log is in a buffer of the
    /// consumer's.)
    ///
    /// # Errors
    /// As for [`Consumer::recv`].
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("audit", shmq::StartAt::Latest)?;
    /// let mut audit = q.consumer("audit").attach()?;
    /// q.producer().attach()?.send(b"hello")?;
    /// let msg = audit.recv_ref()?;
    /// assert_eq!(msg.as_bytes(), b"hello");
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn recv_ref(&mut self) -> Result<RecvGuard<'_>, RecvError> {
        self.recv_ref_mode(Mode::Until(None))
    }

    /// [`Consumer::recv_ref`] if a message is there now.
    ///
    /// # Errors
    /// [`RecvError::Empty`]; otherwise as for [`Consumer::recv`].
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("audit", shmq::StartAt::Latest)?;
    /// let mut audit = q.consumer("audit").attach()?;
    /// assert!(audit.try_recv_ref().is_err());
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn try_recv_ref(&mut self) -> Result<RecvGuard<'_>, RecvError> {
        self.recv_ref_mode(Mode::Try)
    }

    /// [`Consumer::recv_ref`], waiting at most `timeout`.
    ///
    /// # Errors
    /// [`RecvError::Timeout`]; otherwise as for [`Consumer::recv`].
    ///
    /// ```
    /// # use std::time::Duration;
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("audit", shmq::StartAt::Latest)?;
    /// let mut audit = q.consumer("audit").attach()?;
    /// q.producer().attach()?.send(b"hello")?;
    /// let msg = audit.recv_ref_timeout(Duration::from_secs(1))?;
    /// assert_eq!(msg.seq(), 0);
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn recv_ref_timeout(&mut self, timeout: Duration) -> Result<RecvGuard<'_>, RecvError> {
        self.recv_ref_mode(Mode::Until(Some(timeout)))
    }

    fn recv_ref_mode(&mut self, mode: Mode) -> Result<RecvGuard<'_>, RecvError> {
        let got = self.take(mode)?;
        Ok(RecvGuard { c: self, got })
    }

    /// Receives up to `max` messages at once, in place (zero copy), waiting
    /// as long as it takes for the first: `f` is called with each message's
    /// metadata and payload, in sequence order. Returns how many it was
    /// called with (at least one, at most `max`; 0 only for `max == 0`).
    ///
    /// The messages waiting at the group's cursor are taken with one cursor
    /// update and one hazard, which cuts the per-message cost of a consumer
    /// that keeps up with a fast producer. Redeliveries and messages read
    /// from the spill log come one per call. With [`Ack::Explicit`] a batch
    /// is one message. Auto-ack is at most once per message, so a member
    /// killed while `f` works through a batch loses the rest of it for its
    /// group.
    ///
    /// # Errors
    /// As for [`Consumer::recv`].
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("audit", shmq::StartAt::Latest)?;
    /// let mut audit = q.consumer("audit").attach()?;
    /// q.producer().attach()?.send_batch(&[b"a", b"b", b"c"])?;
    /// let mut seen = Vec::new();
    /// let n = audit.recv_batch(64, |meta, payload| seen.push((meta.seq, payload.to_vec())))?;
    /// assert_eq!((n, seen[2].clone()), (3, (2, b"c".to_vec())));
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn recv_batch(
        &mut self,
        max: usize,
        f: impl FnMut(&Meta, &[u8]),
    ) -> Result<usize, RecvError> {
        self.recv_batch_mode(max, Mode::Until(None), f)
    }

    /// [`Consumer::recv_batch`] of what is there now.
    ///
    /// # Errors
    /// [`RecvError::Empty`]; otherwise as for [`Consumer::recv`].
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("audit", shmq::StartAt::Latest)?;
    /// let mut audit = q.consumer("audit").attach()?;
    /// assert_eq!(audit.try_recv_batch(64, |_, _| ()), Err(shmq::RecvError::Empty));
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn try_recv_batch(
        &mut self,
        max: usize,
        f: impl FnMut(&Meta, &[u8]),
    ) -> Result<usize, RecvError> {
        self.recv_batch_mode(max, Mode::Try, f)
    }

    /// [`Consumer::recv_batch`], waiting at most `timeout` for the first
    /// message.
    ///
    /// # Errors
    /// [`RecvError::Timeout`]; otherwise as for [`Consumer::recv`].
    ///
    /// ```
    /// # use std::time::Duration;
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("audit", shmq::StartAt::Latest)?;
    /// let mut audit = q.consumer("audit").attach()?;
    /// let r = audit.recv_batch_timeout(64, Duration::from_millis(1), |_, _| ());
    /// assert_eq!(r, Err(shmq::RecvError::Timeout));
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn recv_batch_timeout(
        &mut self,
        max: usize,
        timeout: Duration,
        f: impl FnMut(&Meta, &[u8]),
    ) -> Result<usize, RecvError> {
        self.recv_batch_mode(max, Mode::Until(Some(timeout)), f)
    }

    /// A blocking iterator over the group's messages: each item is what
    /// [`Consumer::recv`] returns. It never ends by itself (stop taking
    /// items, or use [`Consumer::try_iter`]).
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("audit", shmq::StartAt::Latest)?;
    /// let mut audit = q.consumer("audit").attach()?;
    /// q.producer().attach()?.send_batch(&[b"a", b"b"])?;
    /// let seqs: Vec<u64> = audit.iter().take(2).map(|m| m.map(|m| m.seq)).collect::<Result<_, _>>()?;
    /// assert_eq!(seqs, [0, 1]);
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn iter(&mut self) -> Iter<'_> {
        Iter { c: self }
    }

    /// An iterator over the messages there now: it ends when
    /// [`Consumer::try_recv`] finds none.
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("audit", shmq::StartAt::Latest)?;
    /// let mut audit = q.consumer("audit").attach()?;
    /// q.producer().attach()?.send_batch(&[b"a", b"b"])?;
    /// assert_eq!(audit.try_iter().count(), 2);
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn try_iter(&mut self) -> TryIter<'_> {
        TryIter { c: self }
    }

    fn recv_batch_mode(
        &mut self,
        max: usize,
        mode: Mode,
        mut f: impl FnMut(&Meta, &[u8]),
    ) -> Result<usize, RecvError> {
        if max == 0 {
            return Ok(0);
        }
        // A group ordered by key takes one message at a time, with an entry.
        let batches = self.ack == Ack::Auto && !self.keyed;
        let got = if batches {
            self.q.after_stale_wake();
            match self.deliver_batch(max, &mut f) {
                Some(0) => self.take(mode)?,
                Some(n) => return Ok(n),
                // Empty: the short poll at the cursor, then the wait.
                None => self.take(mode)?,
            }
        } else {
            self.take(mode)?
        };
        // Nothing the batch path takes was at the cursor: one message the
        // full way (waiting, redeliveries, the log, errors), then what
        // followed it.
        let g = RecvGuard { c: self, got };
        f(&g.meta(), g.as_bytes());
        drop(g);
        let mut n = 1;
        if batches && max > 1 {
            n += self.deliver_batch(max - 1, &mut f).unwrap_or(0);
        }
        Ok(n)
    }

    /// The batch path of `recv_batch`: takes up to `max` ring messages at the
    /// cursor (none while redeliveries wait: they go first), hands them to
    /// `f`, and releases them. Returns how many (`None`: nothing committed
    /// at the cursor).
    fn deliver_batch(&mut self, max: usize, f: &mut impl FnMut(&Meta, &[u8])) -> Option<usize> {
        let ring = self.q.ring();
        if ack::has_pending(ring, self.g) {
            return Some(0);
        }
        let n = group::try_take_batch(ring, self.g, self.m, max, &mut self.batch)?;
        let mut delivered = 0;
        if n > 0 {
            // Released after the last borrow, also if `f` panics.
            let _release = Release(ring, self.g, self.m);
            for t in &self.batch {
                if ring_expired(ring, self.ttl_ns, t) {
                    // A ring record cannot be too long for a dead letter,
                    // the one error this could meet.
                    let got = Got::Ring(*t, Again::default());
                    let _ = expire_unheld(&self.q, self.g, self.m, &self.disk, got);
                    continue;
                }
                // SAFETY: the batch's hazard pins every record in it until
                // `_release` drops, after the loop and every borrow.
                f(&ring_meta(ring, t, Again::default()), unsafe {
                    ring_payload(ring, t)
                });
                delivered += 1;
            }
        }
        Some(delivered)
    }
}

/// A blocking iterator over a group's messages ([`Consumer::iter`]).
#[derive(Debug)]
#[must_use = "iterators are lazy"]
pub struct Iter<'a> {
    c: &'a mut Consumer,
}

impl Iterator for Iter<'_> {
    type Item = Result<Message, RecvError>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(self.c.recv())
    }
}

/// An iterator over the messages there now ([`Consumer::try_iter`]).
#[derive(Debug)]
#[must_use = "iterators are lazy"]
pub struct TryIter<'a> {
    c: &'a mut Consumer,
}

impl Iterator for TryIter<'_> {
    type Item = Result<Message, RecvError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.c.try_recv() {
            Err(RecvError::Empty) => None,
            r => Some(r),
        }
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        group::detach(self.q.ring(), self.g, self.m);
    }
}

/// A message read in place. Producers do not overwrite it while the guard lives.
#[must_use = "the message stays taken (and its room reserved) until the guard drops"]
pub struct RecvGuard<'a> {
    c: &'a mut Consumer,
    got: Got,
}

impl std::fmt::Debug for RecvGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvGuard")
            .field("meta", &self.meta())
            .field("len", &self.as_bytes().len())
            .finish()
    }
}

impl RecvGuard<'_> {
    /// Sequence number.
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("audit", shmq::StartAt::Latest)?;
    /// let mut audit = q.consumer("audit").attach()?;
    /// let seq = q.producer().attach()?.send(b"hello")?;
    /// assert_eq!(audit.recv_ref()?.seq(), seq);
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn seq(&self) -> u64 {
        self.got.seq()
    }

    /// Publish time, nanoseconds since the Unix epoch.
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("a", shmq::StartAt::Latest)?;
    /// q.add_group("b", shmq::StartAt::Latest)?;
    /// let (mut a, mut b) = (q.consumer("a").attach()?, q.consumer("b").attach()?);
    /// q.producer().attach()?.send(b"tick")?;
    /// // Stamped once, when published: every group sees the same time.
    /// let copied = a.recv()?;
    /// let in_place = b.recv_ref()?;
    /// assert_eq!(in_place.ts_ns(), copied.ts_ns);
    /// assert!(in_place.ts_ns() > 1_577_836_800_000_000_000); // after 2020-01-01
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn ts_ns(&self) -> u64 {
        match self.got {
            Got::Ring(t, _) => t.ts_ns,
            Got::Disk(d) => d.ts_ns,
        }
    }

    /// Deliveries before this one (see [`Message::redelivered`]).
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("work", shmq::StartAt::Latest)?;
    /// let mut w = q.consumer("work").ack(shmq::Ack::Explicit).attach()?;
    /// q.producer().attach()?.send(b"job")?;
    /// let seq = {
    ///     let m = w.recv_ref()?;
    ///     assert_eq!(m.redelivered(), 0);
    ///     m.seq()
    /// };
    /// w.nack(seq)?;
    /// assert_eq!(w.recv_ref()?.redelivered(), 1);
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn redelivered(&self) -> u64 {
        match self.got {
            Got::Ring(_, r) => r.redelivered,
            Got::Disk(d) => d.redelivered,
        }
    }

    /// Everything but the payload.
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("audit", shmq::StartAt::Latest)?;
    /// let mut audit = q.consumer("audit").attach()?;
    /// let mut p = q.producer().name("ingest").attach()?;
    /// p.send_as(42, b"line 42")?;
    /// let meta = audit.recv_ref()?.meta();
    /// assert_eq!(meta.seq, 0);
    /// assert_eq!(meta.producer.map(|t| (t.id, t.pseq)), Some((p.id().unwrap(), 42)));
    /// assert_eq!(meta.dead_letter_from, None);
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn meta(&self) -> Meta {
        match self.got {
            Got::Ring(t, r) => ring_meta(self.c.q.ring(), &t, r),
            Got::Disk(d) => self.c.disk_meta(d),
        }
    }

    /// The payload, in the ring (or, for a message from the spill log, in the
    /// consumer's buffer).
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("audit", shmq::StartAt::Latest)?;
    /// let mut audit = q.consumer("audit").attach()?;
    /// q.producer().attach()?.send(b"hello")?;
    /// let msg = audit.recv_ref()?;
    /// // Read in the ring, without a copy.
    /// assert_eq!(msg.as_bytes(), b"hello");
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn as_bytes(&self) -> &[u8] {
        match self.got {
            // SAFETY: the guard's take is finished (its pin released) only
            // when the guard drops, and the borrow cannot outlive `&self`.
            Got::Ring(t, _) => unsafe { ring_payload(self.c.q.ring(), &t) },
            Got::Disk(_) => self.c.disk.as_ref().map_or(&[], |d| &d.buf[..]),
        }
    }
}

impl Drop for RecvGuard<'_> {
    fn drop(&mut self) {
        self.c.finish(self.got);
    }
}

/// Making consumers.
impl Queue {
    /// A builder for a member of group `group`: [`Ack::Auto`](crate::Ack)
    /// and [`WaitStrategy::Block`](crate::WaitStrategy) unless told
    /// otherwise. [`ConsumerBuilder::attach`] joins the group. Members of one
    /// group share its messages; each message goes to exactly one of them.
    ///
    /// ```
    /// use shmq::{Ack, StartAt};
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("work", StartAt::Latest)?;
    /// let mut worker = q.consumer("work").ack(Ack::Explicit).attach()?;
    /// q.producer().attach()?.send(b"job")?;
    /// let job = worker.recv()?;
    /// worker.ack(job.seq)?;
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn consumer<'q>(&'q self, group: &'q str) -> ConsumerBuilder<'q> {
        ConsumerBuilder::new(self, group)
    }

    /// Joins group `name` as a new member.
    pub(crate) fn attach_consumer(&self, name: &str) -> Result<(usize, usize), GroupError> {
        let _g = self.admin(true).map_err(GroupError::Io)?;
        let ring = self.ring();
        let g = group::find_group(ring, name.as_bytes())
            .ok_or_else(|| GroupError::Unknown(name.to_owned()))?;
        reap_group(ring, g);
        let (pid, start) = liveness::current();
        let m = group::attach(ring, g, pid, start).ok_or(GroupError::MembersFull {
            group: name.to_owned(),
            max: ring.geo.max_members,
        })?;
        Ok((g, m))
    }
}
