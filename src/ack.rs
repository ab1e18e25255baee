//! Acknowledgements: the unacknowledged message of each member, its
//! redelivery, and its hand-over from one member slot to another.
//!
//! # Entries
//! Every member slot has one *entry* (layout: `entry`, `entry_seq`,
//! `entry_at`, `attempts`): the message handed to the member and not yet
//! acknowledged. A member acknowledging explicitly has at most one (the
//! window is one message); an auto-ack member acknowledges as soon as its copy
//! is made. The entry's states:
//!
//! - `EMPTY`: nothing unacknowledged.
//! - `HELD`: the member has the message. It is written *before* the member's
//!   cursor CAS (like the hazard, `group.rs`), so a member killed at any
//!   instruction leaves either no trace of the take or a `HELD` entry.
//! - `PENDING`: to be delivered again, to whichever member of the group asks
//!   first: the member nacked it, left without acking, or died.
//! - `MOVING | taker << 8`: a member is taking a `PENDING` entry over.
//!
//! # Pins
//! A ring message in an entry stays pinned by the member's `inflight` hazard
//! until it is acknowledged, so that it can be delivered again from the ring;
//! a message read from the spill log is kept by retention instead (the
//! spiller keeps every segment an entry points into). The group's cursor moves
//! on: other messages flow to other members meanwhile, and a restart never
//! loses an unacknowledged one.
//!
//! When a member takes over another slot's `PENDING` entry, the pin moves: the
//! taker stores its own hazard, bumps `hazard_moves`, then clears the old
//! hazard. A producer's scan loads `hazard_moves` before and after reading the
//! hazards and starts again if it changed, so a scan can never read the new
//! slot before the store and the old one after the clear.
//!
//! # Death
//! The reaper (admin lock) finds a dead member's entry `HELD`: if the group's
//! cursor has not passed `entry_seq`, the member's CAS never happened, and the
//! entry is dropped; if another entry holds the same message, this one lost
//! the race for it and is dropped too. Otherwise it becomes `PENDING`. The
//! one case this cannot tell apart: a member killed between a *failed* cursor
//! CAS and its next store, whose rival already finished with the message; it
//! is then delivered once more, flagged as redelivered (at-least-once).
//! An entry `MOVING` to a dead taker goes back to `PENDING`, or, if the taker
//! had finished copying it, the taker's own entry is the one to redeliver.

use crate::layout::*;
use crate::region::Region;
use crate::ring::Ring;
use crate::sync::{AtomicU64, Ordering};
use crate::wait::Event;

/// An unacknowledged message, as an entry records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Sequence number.
    pub seq: u64,
    /// Ring position, or log position | DISK_BIT.
    pub at: u64,
    /// Deliveries before the current one.
    pub attempts: u64,
}

impl Entry {
    /// Whether the message is in the spill log rather than the ring.
    pub fn on_disk(&self) -> bool {
        self.at & DISK_BIT != 0
    }
}

/// What the reaper did with a dead member's entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reaped {
    /// Nothing was unacknowledged.
    Nothing,
    /// Queued for redelivery.
    Pending,
    /// The member never took it (its cursor CAS did not happen, or lost).
    Dropped,
}

impl<R: Region> Ring<R> {
    fn hazard_moves(&self) -> &AtomicU64 {
        self.region.u64_at(OFF_HAZARD_MOVES)
    }

    /// `hazard_moves`, loaded before and after a scan of the hazards.
    pub(crate) fn hazard_moves_now(&self) -> u64 {
        // Acquire: pairs with the taker's RMW (`take_pending`): a scan that
        // sees a cleared old hazard (Acquire) and then this value unchanged
        // from before it started read the taker's new hazard too.
        self.hazard_moves().load(Ordering::Acquire)
    }

    /// State of member `m`'s entry (low 8 bits of `entry`; ENTRY_BAD if the
    /// word is not a valid encoding).
    pub fn entry_state(&self, g: usize, m: usize) -> u64 {
        // Acquire pairs with the Release stores of nack/reap/take_pending:
        // the entry's fields are visible.
        let w = self.member_word(g, m, M_ENTRY).load(Ordering::Acquire);
        // Exactly one of the encodings, or ENTRY_BAD: the CASes expect the
        // whole word, and would fail for ever on a state with stray bits.
        match w & 0xff {
            ENTRY_MOVING if w >> 8 < self.geo.max_members as u64 => ENTRY_MOVING,
            s if s == w && s < ENTRY_MOVING => s,
            _ => ENTRY_BAD,
        }
    }

    /// Member `m`'s entry, whatever its state (fields loaded Relaxed, after
    /// the Acquire state load).
    pub fn entry(&self, g: usize, m: usize) -> (u64, Entry) {
        let st = self.entry_state(g, m);
        (
            st,
            Entry {
                seq: self.member_word(g, m, M_ENTRY_SEQ).load(Ordering::Relaxed),
                at: self.member_word(g, m, M_ENTRY_AT).load(Ordering::Relaxed),
                attempts: self.member_word(g, m, M_ATTEMPTS).load(Ordering::Relaxed),
            },
        )
    }

    /// Records that member `m` is taking `(seq, at)` for the first time: called
    /// before the cursor CAS that takes it. Relaxed: the CAS (Release) publishes
    /// these stores to anyone who sees the cursor past the message, like the
    /// hazard.
    #[inline]
    pub(crate) fn hold(&self, g: usize, m: usize, seq: u64, at: u64) {
        self.member_word(g, m, M_ENTRY_SEQ)
            .store(seq, Ordering::Relaxed);
        self.member_word(g, m, M_ENTRY_AT)
            .store(at, Ordering::Relaxed);
        self.member_word(g, m, M_ATTEMPTS)
            .store(0, Ordering::Relaxed);
        self.member_word(g, m, M_ENTRY)
            .store(ENTRY_HELD, Ordering::Relaxed);
    }

    /// The take `hold` announced did not happen (the CAS failed, or the
    /// record was not a message). Relaxed: only this member writes its
    /// `HELD` entry, and the reaper of a dead member copes with a stale one.
    #[inline]
    pub(crate) fn unhold(&self, g: usize, m: usize) {
        self.member_word(g, m, M_ENTRY)
            .store(ENTRY_EMPTY, Ordering::Relaxed);
    }

    /// Acknowledges member `m`'s entry: the message counts as consumed.
    /// Returns the entry it acknowledged (`None` if it held nothing).
    pub fn ack(&self, g: usize, m: usize) -> Option<Entry> {
        let e = self.settle(g, m)?;
        let acked = self.member_word(g, m, M_ACKED);
        acked.store(
            acked.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
        Some(e)
    }

    /// Ends member `m`'s entry: acknowledged, or given up.
    fn settle(&self, g: usize, m: usize) -> Option<Entry> {
        let (st, e) = self.entry(g, m);
        if st != ENTRY_HELD {
            return None;
        }
        // Release: the state first, so that a member killed between the two
        // stores leaves a pin without an entry (freed by the reaper), never an
        // entry without its pin.
        self.member_word(g, m, M_ENTRY)
            .store(ENTRY_EMPTY, Ordering::Release);
        if !e.on_disk() {
            // SYNC POINT hazard release, as in `Ring::release`: our reads of
            // the record happen before a producer overwrites it.
            self.member_word(g, m, M_INFLIGHT)
                .store(IDLE, Ordering::Release);
            self.notify(Event::Space);
        }
        Some(e)
    }

    /// Gives member `m`'s entry back for redelivery (a nack, or the member
    /// leaving without acking). The pin stays until another member takes it
    /// over. Returns the entry.
    pub fn nack(&self, g: usize, m: usize) -> Option<Entry> {
        let (st, e) = self.entry(g, m);
        if st != ENTRY_HELD {
            return None;
        }
        self.make_pending(g, m);
        Some(e)
    }

    fn make_pending(&self, g: usize, m: usize) {
        // Release: pairs with the Acquire state loads of `take_pending`; the
        // fields written before are visible to the member that takes it.
        self.member_word(g, m, M_ENTRY)
            .store(ENTRY_PENDING, Ordering::Release);
        self.slot_word(g, G_PENDING).fetch_add(1, Ordering::Relaxed);
        self.notify(Event::Data);
    }

    /// Whether group `g` may have entries waiting for redelivery (a hint:
    /// Relaxed, one load on the receive path).
    #[inline]
    pub fn has_pending(&self, g: usize) -> bool {
        self.slot_word(g, G_PENDING).load(Ordering::Relaxed) != 0
    }

    /// Takes over the oldest `PENDING` entry of group `g` for member `m`, whose
    /// own entry is `EMPTY`. On success `m`'s entry is `HELD` with `attempts`
    /// one higher, and a ring message is pinned by `m`'s hazard.
    pub fn take_pending(&self, g: usize, m: usize) -> Option<Entry> {
        let (j, e) = self.claim_pending(g, m)?;
        if self.adopt(g, m, j, e) {
            self.vacate(g, j, e);
        }
        Some(e)
    }

    /// The first step of `take_pending`: CASes the oldest `PENDING` entry of
    /// group `g` (slot `j`) to `MOVING` to `m` and reads it. Returns `j` and
    /// the entry, its attempts one higher.
    pub(crate) fn claim_pending(&self, g: usize, m: usize) -> Option<(usize, Entry)> {
        loop {
            if !self.has_pending(g) {
                return None;
            }
            let (j, _) = (0..self.geo.max_members as usize)
                .map(|j| (j, self.entry(g, j)))
                .filter(|(_, (st, _))| *st == ENTRY_PENDING)
                .map(|(j, (_, e))| (j, e.seq))
                .min_by_key(|&(_, seq)| seq)?;
            // SYNC POINT entry move: AcqRel. Acquire pairs with the Release
            // that made it PENDING (its fields are visible); winning the CAS
            // makes them ours to read, since nobody else writes a MOVING entry.
            if self
                .member_word(g, j, M_ENTRY)
                .compare_exchange(
                    ENTRY_PENDING,
                    ENTRY_MOVING | ((m as u64) << 8),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_err()
            {
                continue;
            }
            // Counted out as soon as it is ours; a reaper that puts it back
            // (we died before finishing) counts it in again.
            self.slot_word(g, G_PENDING).fetch_sub(1, Ordering::Relaxed);
            let (_, e) = self.entry(g, j);
            let e = Entry {
                attempts: e.attempts.saturating_add(1),
                ..e
            };
            return Some((j, e));
        }
    }

    /// The second step: makes `e`, taken over from slot `j` (whose entry is
    /// MOVING to `m`), the HELD entry of `m`, with `m`'s own pin on it.
    /// Returns whether slot `j` is still to be vacated (the last step), that
    /// is, whether it was another slot's entry.
    pub(crate) fn adopt(&self, g: usize, m: usize, j: usize, e: Entry) -> bool {
        self.member_word(g, m, M_ENTRY_SEQ)
            .store(e.seq, Ordering::Relaxed);
        self.member_word(g, m, M_ENTRY_AT)
            .store(e.at, Ordering::Relaxed);
        self.member_word(g, m, M_ATTEMPTS)
            .store(e.attempts, Ordering::Relaxed);
        if j == m {
            // Our own entry, pin included: only the state changes.
            // Release: as in `make_pending`.
            self.member_word(g, m, M_ENTRY)
                .store(ENTRY_HELD, Ordering::Release);
            return false;
        }
        if !e.on_disk() {
            // Relaxed: ordered before the scan-visible RMW below.
            self.member_word(g, m, M_INFLIGHT)
                .store(e.at, Ordering::Relaxed);
        }
        // Release: a reaper that finds us dead and sees j still MOVING to us
        // sees these fields (it compares entry_seq).
        self.member_word(g, m, M_ENTRY)
            .store(ENTRY_HELD, Ordering::Release);
        true
    }

    /// Empties slot `j`, whose entry `e` now lives (pin included) in another
    /// slot: the last step of a move, by the taker or by a reaper finishing
    /// a dead taker's move.
    pub(crate) fn vacate(&self, g: usize, j: usize, e: Entry) {
        if !e.on_disk() {
            // SYNC POINT hazard move: the RMW (Release) orders the new hazard
            // before the old one's clear; see the module docs.
            self.hazard_moves().fetch_add(1, Ordering::AcqRel);
            // Release: pairs with the scan's Acquire hazard load.
            self.member_word(g, j, M_INFLIGHT)
                .store(IDLE, Ordering::Release);
        }
        // Release: pairs with `attach`'s Acquire (the slot is free to reuse).
        self.member_word(g, j, M_ENTRY)
            .store(ENTRY_EMPTY, Ordering::Release);
    }

    /// Settles the entries of dead member `m` of group `g` (admin lock held,
    /// the member detached or being detached): entries it was taking over go
    /// back to PENDING (or are finished), and its own HELD entry becomes
    /// PENDING unless it never took that message.
    pub fn reap_entry(&self, g: usize, m: usize) -> Reaped {
        let moving_to_m = ENTRY_MOVING | ((m as u64) << 8);
        for j in 0..self.geo.max_members as usize {
            if j == m {
                continue;
            }
            // The whole word (the taker is in its upper bits). Relaxed: the
            // admin lock and the dead taker leave nobody else writing it, and
            // `entry` below loads the state again with Acquire.
            if self.member_word(g, j, M_ENTRY).load(Ordering::Relaxed) != moving_to_m {
                continue;
            }
            let (st, mine) = self.entry(g, m);
            let (_, theirs) = self.entry(g, j);
            if st == ENTRY_HELD && mine.seq == theirs.seq {
                // The copy was done: finish the move; ours is redelivered below.
                self.vacate(g, j, theirs);
            } else {
                // Not copied: j's pin is intact (ours, if half set, goes with
                // our slot); it is pending again.
                self.make_pending(g, j);
            }
        }
        let (st, e) = self.entry(g, m);
        if st != ENTRY_HELD {
            return Reaped::Nothing;
        }
        // Acquire pairs with the members' cursor CAS (Release), which follows
        // their `hold`: a cursor past `e.seq` was moved by a take we see.
        let (cseq, _) = unpack(self.cursor(g).load(Ordering::Acquire));
        let taken = e.seq < cseq & !DISK_BIT;
        let rival = (0..self.geo.max_members as usize).any(|j| {
            j != m && {
                let (s, other) = self.entry(g, j);
                s != ENTRY_EMPTY && other.seq == e.seq
            }
        });
        if taken && !rival {
            self.make_pending(g, m);
            Reaped::Pending
        } else {
            // Release: pairs with `attach`'s Acquire (the slot is free again).
            self.member_word(g, m, M_ENTRY)
                .store(ENTRY_EMPTY, Ordering::Release);
            Reaped::Dropped
        }
    }

    /// Lowest log position an entry of any group points into, for retention.
    pub fn min_disk_entry(&self) -> Option<u64> {
        let mut min = None;
        for g in 0..self.geo.max_groups as usize {
            if !self.is_active(g) {
                continue;
            }
            for m in 0..self.geo.max_members as usize {
                let (st, e) = self.entry(g, m);
                if st != ENTRY_EMPTY && e.on_disk() {
                    let at = e.at & !DISK_BIT;
                    min = Some(min.map_or(at, |x: u64| x.min(at)));
                }
            }
        }
        min
    }

    /// Deliveries after which group `g` gives a message up (0: never).
    pub fn max_attempts(&self, g: usize) -> u64 {
        self.slot_word(g, G_MAX_ATTEMPTS).load(Ordering::Relaxed)
    }

    /// Sets group `g`'s delivery limit and dead-letter group (admin lock held).
    pub fn set_redelivery(&self, g: usize, max_attempts: u64, dead_letter: Option<usize>) {
        self.slot_word(g, G_MAX_ATTEMPTS)
            .store(max_attempts, Ordering::Relaxed);
        self.slot_word(g, G_DEAD_LETTER)
            .store(dead_letter.map_or(0, |d| d as u64 + 1), Ordering::Relaxed);
    }

    /// Group `g`'s acknowledgement counters: (pending, redelivered,
    /// dead-lettered, max_attempts, dead-letter group slot).
    pub fn ack_stats(&self, g: usize) -> (u64, u64, u64, u64, Option<usize>) {
        let w = |f| self.slot_word(g, f).load(Ordering::Relaxed);
        let dl = w(G_DEAD_LETTER);
        (
            w(G_PENDING),
            w(G_REDELIVERED),
            w(G_DEAD_LETTERED),
            w(G_MAX_ATTEMPTS),
            (dl != 0).then(|| dl as usize - 1),
        )
    }

    /// Gives up member `m`'s entry after too many attempts (counted).
    pub fn dead_letter(&self, g: usize, m: usize) {
        if self.settle(g, m).is_some() {
            self.slot_word(g, G_DEAD_LETTERED)
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The dead-letter group that group `g` sends what it gives up to: a
    /// slot read from shared memory, so checked (an active dead-letter group).
    pub fn dead_letter_target(&self, g: usize) -> Option<usize> {
        let d = self.slot_word(g, G_DEAD_LETTER).load(Ordering::Relaxed);
        let d = (d as usize).checked_sub(1)?;
        (d < self.geo.max_groups as usize && self.is_active(d) && self.dl_only(d)).then_some(d)
    }

    /// Counts a redelivery handed to a member of group `g`.
    pub fn note_redelivered(&self, g: usize) {
        self.slot_word(g, G_REDELIVERED)
            .fetch_add(1, Ordering::Relaxed);
    }
}
