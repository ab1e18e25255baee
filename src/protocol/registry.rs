//! The producer registry: which producer holds which claim, so that the claim
//! of a producer that died between its claim and its commit is found and
//! aborted instead of wedging the queue (every consumer waits, in order, for
//! the record it claimed).
//!
//! # Slots
//! `max_producers` slots of 128 bytes after the group table (layout.rs). A producer
//! takes a free slot under the admin lock and records its pid and process
//! start time, so that a reused pid is not mistaken for it (liveness.rs).
//!
//! # Intents
//! Before each claim CAS on `TAIL = (s, p)` for `n` records ending at `end`,
//! the producer stores `end`, `s` and `n`, then `CLAIM = p | INTENT` with
//! Release; the CAS (AcqRel) orders all of them before it. After a successful
//! CAS it stores `p | CLAIMED`; after committing every record, `CLAIM = 0`
//! with Release. A producer whose claim fails for lack of room clears its
//! intent, so a live producer's non-zero `CLAIM` always means "about to CAS"
//! or "holding this claim".
//!
//! # Recovery ([`recover_claims`], under the admin lock)
//! Read `TAIL`, then each slot: its owner's liveness first, then `CLAIM`,
//! so that a dead owner's `CLAIM` is its last (read the other way round, a
//! producer could claim and die in between, its claim unseen). A dead
//! slot's claim at or past the `TAIL` read may have been made after that
//! read: it is left to a later recovery unless `TAIL` has not moved past it
//! since (then its CAS never happened).
//!
//! Take a dead slot with a non-zero `CLAIM`. Walk the committed records from
//! its `p` (or from HEAD, once HEAD is inside the claim) to the first
//! uncommitted position `q` below its `end`. If there is none, or `q` is not
//! below `TAIL`, the claim was completed or never made: clear the slot. A walk
//! that finds `q` then makes sure the ring did not move a lap under it (a
//! completed claim's bytes reused by newer records look uncommitted at the
//! old positions; see `stuck_in`). Otherwise some producer claimed `q` and has not committed
//! it. Its owner wrote an intent covering `q` before its CAS, which our Acquire
//! load of `TAIL` made visible, and keeps it until after its commit, which the
//! Release of `CLAIM = 0` would make visible to the re-check of `q`. So if no
//! live slot's intent covers `q`, the owner is dead: the one dead slot covering
//! `q` that says CLAIMED, or if none does, the only dead slot covering it (it
//! died between its CAS and its CLAIMED store). Two dead producers both
//! covering `q` without one CLAIMED would need two deaths within a few
//! instructions of each other; that case is left alone and counted, never
//! guessed. The owner's remaining records, from `q` and its sequence number to
//! `end`, are written as ABORT records (pads where the lap ends), which
//! consumers skip and which the spill log keeps as aborted sequence numbers.
//! Live intents that merely look like they cover `q` (a stale guess about to
//! fail its CAS) only postpone recovery.

use crate::protocol::identity;
use crate::protocol::layout::{
    ext_len, record_size, ALIGN, FLAG_ORIGIN_SEQ, FLAG_PRODUCER, KIND_ABORT, KIND_PAD,
    RECORD_HEADER,
};
use crate::protocol::ring::{unpack_head, widen_seq, Ring, Slot};
use crate::protocol::wait::{Event, Sleeper};
use crate::region::Region;
use crate::sync::Ordering;

/// Low bits of CLAIM: the producer is about to CAS for the claim at `p`.
const INTENT: u64 = 1;
/// Low bits of CLAIM: the producer's CAS for the claim at `p` succeeded.
const CLAIMED: u64 = 2;
const STATE_MASK: u64 = 7;

/// `S_PSEQ` of a named producer's claim it abandoned (a dropped zero-copy
/// claim): whatever happens to it, it published no pseq.
const PSEQ_NONE: u64 = u64::MAX;

/// How often a recovery walks a claim again because the ring moved under it
/// (see `stuck_in`) before leaving the claim to a later recovery.
const WALK_TRIES: usize = 64;

/// What a dead producer's claim left behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Left {
    /// Nothing uncommitted: the claim was completed, or never made.
    Nothing,
    /// The records from position `.0` (sequence number `.1`) are not committed.
    Stuck(u64, u64),
    /// The ring kept moving under every walk: look again later.
    Unsure,
}

/// One slot as read by a recovery.
#[derive(Clone, Copy, Debug)]
struct Snapshot {
    slot: usize,
    alive: bool,
    state: u64,
    pos: u64,
    end: u64,
    seq: u64,
    count: u64,
    /// Identity slot + 1 (0: anonymous).
    ident: u64,
    /// Pseq of the claim's first record.
    pseq: u64,
}

impl Snapshot {
    fn covers(&self, q: u64) -> bool {
        self.state != 0 && self.pos <= q && q < self.end
    }
}

/// What a recovery did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recovery {
    /// Claims of dead producers aborted.
    pub claims: u64,
    /// Sequence numbers written as aborted.
    pub records: u64,
    /// Slots of dead producers freed.
    pub freed: u64,
    /// Stuck claims left alone because their owner could not be told apart.
    pub ambiguous: u64,
    /// Dead producers that were asleep waiting for space: wakers no longer
    /// count them (until then every release paid a futex wake for them).
    pub sleepers: u64,
}

/// A registered producer's slot, as `stat` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotInfo {
    /// Slot index.
    pub slot: usize,
    /// Owner pid.
    pub pid: u64,
    /// Owner process start time (liveness.rs).
    pub start_time: u64,
    /// `(seq, pos)` of the claim it holds or is about to make.
    pub claim: Option<(u64, u64)>,
    /// The identity slot it publishes under (a named producer).
    pub ident: Option<usize>,
    /// Asleep waiting for space (wait.rs).
    pub asleep: bool,
}

/// Takes a free slot for a producer of process `(pid, start)` (admin lock
/// held). `None` if all are taken.
pub fn register_producer<R: Region>(ring: &Ring<R>, pid: u64, start: u64) -> Option<usize> {
    let slot = (0..ring.geo.max_producers as usize).find(|&s| {
        // Relaxed: slots change owner only under the admin lock we hold.
        ring.producer_slot(s).owner().load(Ordering::Relaxed) == 0
    })?;
    register_in(ring, slot, pid, start);
    Some(slot)
}

/// Takes the registry's last slot, kept for a member publishing a dead
/// letter, for process `(pid, start)` (admin lock held). `None` while
/// another member uses it.
pub fn register_dead_letters<R: Region>(ring: &Ring<R>, pid: u64, start: u64) -> Option<usize> {
    let slot = ring.geo.max_producers as usize;
    // Relaxed: slots change owner only under the admin lock we hold.
    if ring.producer_slot(slot).owner().load(Ordering::Relaxed) != 0 {
        return None;
    }
    register_in(ring, slot, pid, start);
    Some(slot)
}

/// Registers `(pid, start)` in free slot `slot` (admin lock held).
fn register_in<R: Region>(ring: &Ring<R>, slot: usize, pid: u64, start: u64) {
    let s = ring.producer_slot(slot);
    for word in [s.claim(), s.end(), s.seq(), s.count(), s.ident(), s.pseq()] {
        word.store(0, Ordering::Relaxed);
    }
    ring.producer_slot(slot)
        .start()
        .store(start, Ordering::Relaxed);
    // Release: a recovery that sees the owner sees the cleared fields.
    ring.producer_slot(slot)
        .owner()
        .store(pid, Ordering::Release);
}

/// Marks registry slot `slot` as publishing under identity `i` (admin
/// lock held, before its first claim).
pub fn set_identity<R: Region>(ring: &Ring<R>, slot: usize, i: usize) {
    ring.producer_slot(slot)
        .ident()
        .store(i as u64 + 1, Ordering::Relaxed);
}

/// Frees a producer's slot when it is dropped (no claim in progress),
/// releasing its name first.
pub fn unregister_producer<R: Region>(ring: &Ring<R>, slot: usize) {
    let ident = ring.producer_slot(slot).ident().load(Ordering::Relaxed);
    if let Some(i) = ident.checked_sub(1) {
        identity::release_identity(ring, i as usize, slot);
    }
    ring.producer_slot(slot).claim().store(0, Ordering::Relaxed);
    // Release: pairs with the Acquire owner load of a recovery.
    ring.producer_slot(slot).owner().store(0, Ordering::Release);
}

/// Records the pseq of the first record of a named producer's next claim
/// (PSEQ_NONE: one it abandons), before `note_intent` publishes it.
#[inline]
pub(crate) fn note_pseq<R: Region>(ring: &Ring<R>, slot: usize, pseq: u64) {
    // Relaxed: published by the Release of `note_intent` (or, for an
    // abandoned claim, read by a recovery only once this process is dead).
    ring.producer_slot(slot)
        .pseq()
        .store(pseq, Ordering::Relaxed);
}

/// A named producer abandons its claim: it publishes no pseq.
pub(crate) fn note_abandoned<R: Region>(ring: &Ring<R>, slot: usize) {
    note_pseq(ring, slot, PSEQ_NONE);
}

/// Records the intent to claim `count` records at `(seq, pos)` ending at
/// `end`. Called right before the claim CAS, whose AcqRel orders it.
#[inline]
pub fn note_intent<R: Region>(
    ring: &Ring<R>,
    slot: usize,
    seq: u64,
    pos: u64,
    end: u64,
    count: u64,
) {
    ring.producer_slot(slot).end().store(end, Ordering::Relaxed);
    ring.producer_slot(slot).seq().store(seq, Ordering::Relaxed);
    ring.producer_slot(slot)
        .count()
        .store(count, Ordering::Relaxed);
    // SYNC POINT intent: Release pairs with the Acquire CLAIM load of a
    // recovery: who sees this intent sees its end, seq and count.
    ring.producer_slot(slot)
        .claim()
        .store(pos | INTENT, Ordering::Release);
}

/// The claim CAS for the intent succeeded.
#[inline]
pub(crate) fn note_claimed<R: Region>(ring: &Ring<R>, slot: usize, pos: u64) {
    // Relaxed: read by a recovery only once this process is dead.
    ring.producer_slot(slot)
        .claim()
        .store(pos | CLAIMED, Ordering::Relaxed);
}

/// The claim is committed (or was never made).
#[inline]
pub(crate) fn note_done<R: Region>(ring: &Ring<R>, slot: usize) {
    // SYNC POINT intent: Release pairs with the Acquire CLAIM load of a
    // recovery: who sees the intent gone sees the commits before it.
    ring.producer_slot(slot).claim().store(0, Ordering::Release);
}

/// The registered producers.
pub fn producer_slots<R: Region>(ring: &Ring<R>) -> Vec<SlotInfo> {
    (0..ring.geo.registry_slots())
        .filter_map(|s| {
            // Acquire pairs with the Release owner store of registration.
            let pid = ring.producer_slot(s).owner().load(Ordering::Acquire);
            (pid != 0).then(|| {
                // Acquire pairs with `note_intent`.
                let claim = ring.producer_slot(s).claim().load(Ordering::Acquire);
                SlotInfo {
                    slot: s,
                    pid,
                    start_time: ring.producer_slot(s).start().load(Ordering::Relaxed),
                    ident: ring
                        .producer_slot(s)
                        .ident()
                        .load(Ordering::Relaxed)
                        .checked_sub(1)
                        .map(|i| i as usize),
                    asleep: ring.is_asleep(Sleeper::Producer { slot: s }),
                    claim: (claim & STATE_MASK != 0).then(|| {
                        (
                            ring.producer_slot(s).seq().load(Ordering::Relaxed),
                            claim & !STATE_MASK,
                        )
                    }),
                }
            })
        })
        .collect()
}

fn snapshot<R: Region>(ring: &Ring<R>, alive: &impl Fn(u64, u64) -> bool) -> Vec<Snapshot> {
    (0..ring.geo.registry_slots())
        .filter_map(|s| {
            // Acquire pairs with the Release owner store of registration.
            let pid = ring.producer_slot(s).owner().load(Ordering::Acquire);
            if pid == 0 {
                return None;
            }
            let start = ring.producer_slot(s).start().load(Ordering::Relaxed);
            // Liveness first: a producer seen dead makes no more stores, so
            // the claim read after it is its last. Read the other way round,
            // a producer could claim and die between the two reads, and its
            // claim would be taken for none.
            let alive = alive(pid, start);
            // SYNC POINT intent (reader side): Acquire pairs with
            // `note_intent` and `note_done`.
            let claim = ring.producer_slot(s).claim().load(Ordering::Acquire);
            Some(Snapshot {
                slot: s,
                alive,
                state: claim & STATE_MASK,
                pos: claim & !STATE_MASK,
                end: ring.producer_slot(s).end().load(Ordering::Relaxed),
                seq: ring.producer_slot(s).seq().load(Ordering::Relaxed),
                count: ring.producer_slot(s).count().load(Ordering::Relaxed),
                ident: ring.producer_slot(s).ident().load(Ordering::Relaxed),
                pseq: ring.producer_slot(s).pseq().load(Ordering::Relaxed),
            })
        })
        .collect()
}

/// Finds the claims of dead producers and aborts what they left
/// uncommitted, then frees their slots; see the module docs. The caller
/// holds the admin lock, so recoveries do not race each other; `alive`
/// tells whether a (pid, start time) is a live process.
pub fn recover_claims<R: Region>(ring: &Ring<R>, alive: impl Fn(u64, u64) -> bool) -> Recovery {
    let mut out = Recovery::default();
    // SYNC POINT intent: Acquire on TAIL (a release sequence of claim
    // CASes) makes every intent written before a claim below it visible.
    let tail = ring.tail_now();
    let slots = snapshot(ring, &alive);
    for d in slots.iter().filter(|s| !s.alive) {
        // Killed asleep: wakers stop counting it. (Its slot is not reused
        // before it is freed below, and a dead owner sets no bit again.)
        if ring.clear_sleeper(Sleeper::Producer { slot: d.slot }) {
            out.sleepers += 1;
        }
        // Records of d's claim that were committed (identity.rs): none
        // unless its CAS succeeded, since it commits only after CLAIMED.
        let mut committed = 0;
        if d.state != 0 {
            match stuck_in(ring, d, tail) {
                Left::Nothing => {
                    if d.state == CLAIMED {
                        committed = d.count;
                    }
                }
                Left::Unsure => continue,
                Left::Stuck(q, q_seq) => {
                    if slots.iter().any(|s| s.alive && s.covers(q)) {
                        continue; // possibly a live owner: not ours to touch
                    }
                    let cands: Vec<&Snapshot> =
                        slots.iter().filter(|s| !s.alive && s.covers(q)).collect();
                    let claimed: Vec<&&Snapshot> =
                        cands.iter().filter(|s| s.state == CLAIMED).collect();
                    let owner = match (claimed.len(), cands.len()) {
                        (1, _) => *claimed[0],
                        (0, 1) => cands[0],
                        _ => {
                            out.ambiguous += 1;
                            continue;
                        }
                    };
                    if owner.slot != d.slot {
                        continue; // handled when the loop reaches the owner
                    }
                    match abort_rest(ring, owner, q, q_seq) {
                        Some(n) => {
                            out.claims += 1;
                            out.records += n;
                            if d.state == CLAIMED {
                                committed = q_seq.wrapping_sub(d.seq).min(d.count);
                            }
                        }
                        None => {
                            out.ambiguous += 1;
                            continue;
                        }
                    }
                }
            }
        }
        if let Some(i) = d.ident.checked_sub(1) {
            let next = (committed > 0 && d.pseq != PSEQ_NONE)
                .then(|| (d.pseq.saturating_add(committed), committed));
            identity::settle_identity(ring, i as usize, d.slot, next);
        }
        ring.producer_slot(d.slot)
            .claim()
            .store(0, Ordering::Relaxed);
        // Release: pairs with the Acquire owner load of a registration
        // scan; the slot is reusable.
        ring.producer_slot(d.slot)
            .owner()
            .store(0, Ordering::Release);
        out.freed += 1;
    }
    if out.records > 0 {
        ring.header()
            .aborted()
            .fetch_add(out.claims, Ordering::Relaxed);
        ring.notify(Event::Data);
        ring.notify(Event::Space);
    }
    out
}

/// What `d`'s claim left uncommitted: walking its records from `d.pos`
/// (or from HEAD, once HEAD is inside it), the first uncommitted position
/// below `d.end` and its sequence number, if it is below the tail.
///
/// The walk reads bytes a later lap may be reusing: a claim committed
/// long ago whose owner died before clearing its intent (after its last
/// commit, before `note_done`) is, once the ring moved on, covered by
/// newer records, whose stamps do not match its positions. So a walk that
/// found something uncommitted checks that nothing it read was reused:
/// an RMW on TAIL reads its latest value, and a claim reaching past
/// `start + capacity` (the only kind that could have written over the
/// walk) either precedes that RMW in TAIL's order, and then TAIL shows it,
/// or follows it, and then its writes follow our reads. A claim that far
/// means HEAD had passed `start`, which it never does over an uncommitted
/// record: the walk starts again from HEAD. A record that really is stuck
/// keeps HEAD at or below it, so the walk ends after at most as many
/// retries as HEAD moves inside the claim.
///
/// `tail` was read before the slots were: a claim made after it may be
/// one whose intent the snapshot missed, so the walk stops there.
fn stuck_in<R: Region>(ring: &Ring<R>, d: &Snapshot, tail: (u64, u64)) -> Left {
    let (tseq, tail_pos) = tail;
    if !d.pos.is_multiple_of(ALIGN as u64) {
        return Left::Nothing;
    }
    if d.pos >= tail_pos {
        // The claim may have been made after `tail` was read, by a producer
        // that died before the snapshot saw it dead: this walk would stop
        // short of it and take it for done. If TAIL has moved past its
        // start since, a later recovery (reading TAIL first) walks it; if
        // not, the producer died before its CAS and claimed nothing. (An
        // RMW reads TAIL's latest value: a CAS of the dead producer's is
        // in it.)
        let (_, latest) = ring.tail_latest();
        return if latest <= d.pos {
            Left::Nothing
        } else {
            Left::Unsure
        };
    }
    for _ in 0..WALK_TRIES {
        // Acquire: pairs with the Release of HEAD's CASes (ring.rs).
        let (hpos, hseq, _) = unpack_head(ring.head().load(Ordering::Acquire));
        let (mut pos, mut seq) = if hpos > d.pos {
            if hpos >= d.end.min(tail_pos) {
                return Left::Nothing; // HEAD passed the whole claim
            }
            (hpos, widen_seq(tseq, hseq))
        } else {
            (d.pos, d.seq)
        };
        let start = pos;
        let stuck = loop {
            if pos >= d.end || pos >= tail_pos {
                return Left::Nothing;
            }
            let next = match ring.slot_at(pos) {
                Slot::Pad { next } => next,
                Slot::Record { next, .. } => {
                    seq = seq.wrapping_add(1);
                    next
                }
                Slot::Uncommitted => break Some((pos, seq)),
                // Reused under us, or corrupt: the check below tells.
                Slot::Bad => break None,
            };
            if next <= pos {
                return Left::Nothing; // corrupt positions: `check` reports them
            }
            pos = next;
        };
        let (_, latest) = ring.tail_latest();
        if latest <= start.saturating_add(ring.geo.capacity) {
            return match stuck {
                Some((q, q_seq)) => Left::Stuck(q, q_seq),
                None => Left::Nothing, // corrupt: `check` reports it
            };
        }
    }
    Left::Unsure
}

/// Writes ABORT records for `owner`'s records from `q` (sequence number
/// `q_seq`) to its end. Returns how many, or `None` if the claim's
/// numbers cannot be laid out (a corrupt slot).
fn abort_rest<R: Region>(ring: &Ring<R>, owner: &Snapshot, q: u64, q_seq: u64) -> Option<u64> {
    let last = owner.seq.checked_add(owner.count)?;
    if q_seq < owner.seq || q_seq >= last || q >= owner.end {
        return None;
    }
    let plan = abort_layout(
        q,
        owner.end,
        last - q_seq,
        ring.geo.capacity,
        max_record(ring),
    )?;
    // Sequence numbers in order, then written later records first and the
    // one consumers wait on last: nothing is taken before the whole claim
    // is laid out.
    let mut seq = q_seq;
    let numbered: Vec<(u64, Option<(u64, u64)>)> = plan
        .into_iter()
        .map(|(pos, size)| {
            (
                pos,
                size.map(|sz| {
                    seq = seq.wrapping_add(1);
                    (sz, seq.wrapping_sub(1))
                }),
            )
        })
        .collect();
    for &(pos, rec) in numbered.iter().rev() {
        match rec {
            None => ring.commit(pos, KIND_PAD),
            Some((size, seq)) => {
                let (len, flags) = abort_header(&ring.geo, size);
                ring.write_header(pos, seq, 0, len as u32, flags);
                ring.commit(pos, KIND_ABORT);
            }
        }
    }
    Some(last - q_seq)
}

/// Largest record the ring accepts (header, producer extension and the
/// largest payload).
fn max_record<R: Region>(ring: &Ring<R>) -> u64 {
    record_size(ring.geo.max_stored())
}

/// Lays `n` records over `[from, to)` in a ring of `capacity` bytes, none
/// crossing a lap end, each of `RECORD_HEADER` to `max_record` bytes: a list of
/// `(pos, Some(size))` records and `(pos, None)` pads, in order. `None` if it
/// cannot be done (the claim did it, so only a corrupt slot gets here).
pub(crate) fn abort_layout(
    from: u64,
    to: u64,
    n: u64,
    capacity: u64,
    max_record: u64,
) -> Option<Vec<(u64, Option<u64>)>> {
    let min = RECORD_HEADER as u64;
    // Read from shared memory: nothing below may overflow.
    if to < from || to - from > capacity || n > capacity / min {
        return None;
    }
    let lap_end = (from / capacity + 1).checked_mul(capacity)?;
    let (a, b) = if to > lap_end {
        (lap_end - from, to - lap_end)
    } else {
        (to - from, 0)
    };
    // Records after the lap end: as many as fit, the rest before it.
    let in_b = if b > 0 { n.min(b / min) } else { 0 };
    let in_a = n - in_b;
    if in_a * min > a || (in_b == 0 && b > 0) || to - from > capacity {
        return None;
    }
    let mut plan = Vec::new();
    if b > 0 {
        // Before the lap end: smallest records, then a pad to the lap end.
        for i in 0..in_a {
            plan.push((from + i * min, Some(min)));
        }
        if in_a * min < a {
            plan.push((from + in_a * min, None));
        }
        cover(&mut plan, lap_end, b, in_b, max_record)?;
    } else {
        cover(&mut plan, from, a, in_a, max_record)?;
    }
    Some(plan)
}

/// Appends `k` records covering exactly `len` bytes from `start`.
fn cover(
    plan: &mut Vec<(u64, Option<u64>)>,
    start: u64,
    len: u64,
    k: u64,
    max_record: u64,
) -> Option<()> {
    let min = RECORD_HEADER as u64;
    if k == 0 || len < k * min || len > k * max_record {
        return None;
    }
    let mut pos = start;
    for i in 0..k {
        let left = k - i - 1;
        let size = (start + len - pos - left * min).min(max_record);
        plan.push((pos, Some(size)));
        pos += size;
    }
    Some(())
}

/// The stored length and flags of an aborted record that takes `size`
/// bytes: a length whose record size is `size` and that `valid_record`
/// accepts, within max_msg (the largest size may round it up), or, for a
/// larger record (a named producer's, a dead letter's), with extensions.
fn abort_header(geo: &crate::protocol::layout::Geometry, size: u64) -> (u64, u32) {
    let body = size.saturating_sub(RECORD_HEADER as u64);
    let all = FLAG_PRODUCER | FLAG_ORIGIN_SEQ;
    [0, FLAG_PRODUCER, all]
        .into_iter()
        .map(|f| (body.min(geo.max_msg as u64 + ext_len(f) as u64), f))
        .find(|&(len, _)| record_size(len) == size)
        .unwrap_or((body.min(geo.max_stored()), all))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_record_size_gets_a_valid_aborted_header() {
        for max_msg in [8u32, 60, 64, 1000, 1024] {
            let geo = crate::protocol::layout::Geometry {
                capacity: 1 << 16,
                max_msg,
                max_groups: 1,
                max_members: 1,
                max_producers: 1,
                ack_entries: 1,
            };
            let mut size = record_size(0);
            while size <= record_size(geo.max_stored()) {
                let (len, flags) = abort_header(&geo, size);
                assert!(
                    record_size(len) == size
                        && crate::protocol::layout::valid_record(len, flags, max_msg),
                    "max_msg {max_msg}, size {size}: len {len}, flags {flags:#x}"
                );
                size += 8;
            }
        }
    }

    fn check(from: u64, to: u64, n: u64, cap: u64, max: u64) {
        let plan = abort_layout(from, to, n, cap, max).unwrap();
        assert_eq!(plan.iter().filter(|r| r.1.is_some()).count() as u64, n);
        let mut pos = from;
        for &(p, size) in &plan {
            assert_eq!(p, pos, "{plan:?}");
            pos = match size {
                Some(s) => {
                    assert!((32..=max).contains(&s) && s % 8 == 0, "{plan:?}");
                    assert!(p % cap + s <= cap, "crosses the lap: {plan:?}");
                    p + s
                }
                None => (p / cap + 1) * cap,
            };
        }
        assert_eq!(pos, to, "{plan:?}");
    }

    #[test]
    fn layouts_cover_the_claim_exactly() {
        check(0, 40, 1, 128, 40);
        check(0, 80, 2, 128, 40);
        check(96, 168, 1, 128, 40); // pad at 96, one record after the lap end
        check(88, 168, 2, 128, 40); // one before the lap end, pad, one after
        check(1000, 1000 + 3 * 4128, 3, 1 << 20, 4128);
        check((1 << 20) - 64, (1 << 20) + 64, 3, 1 << 20, 4128);
        assert_eq!(abort_layout(0, 40, 2, 128, 40), None);
        assert_eq!(abort_layout(0, 400, 2, 128, 40), None);
    }
}
