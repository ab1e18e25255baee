//! The claim/commit protocol: how producers place records in the ring.
//!
//! # Claim
//! `TAIL` holds `(seq, pos)`: the next sequence number and the byte position
//! where the next record goes. A producer claims `n` records by one 128-bit CAS
//! `(seq, pos) -> (seq + n, end)`, so sequence numbers are dense and follow byte
//! order, with no lock: a producer that stalls after its CAS stalls nobody's
//! claim (consumers wait for its commit, which is inherent to an ordered queue).
//! A record never wraps: when it does not fit before the end of the ring the
//! claim also covers a PAD record that fills the rest of the lap.
//!
//! # Commit
//! The producer writes the header fields and payload, then stores the commit
//! word `stamp(pos, kind)` with Release. A consumer that loads the stamp with
//! Acquire sees the whole record. A word from an older lap carries an older
//! position and so never matches.
//!
//! # Space
//! A producer may write below `limit = min(HEAD.pos, lowest inflight hazard) +
//! capacity`. `HEAD` is the oldest record the ring still holds; every group's
//! cursor is at or above it. Each producer caches its limit and rescans the
//! group table only when a claim would pass it ([`refresh_limit`]). The
//! scan advances `HEAD` to the slowest group's cursor (or, with no groups, past
//! committed records) by CAS; see `group.rs` for why a new group can never be
//! overtaken by a stale scan.
//!
//! Once a dead-letter group exists, producers stop `reserve` bytes
//! short of their limit: two of the largest records
//! (`Ring::dead_letter_reserve`). Only the dead letter of the oldest record
//! members hold (ack-table pins and read hazards; group cursors aside) may
//! use them, so that a message given up always finds room for its dead
//! letter while its original is still pinned (ack.rs): with the original at
//! ring offset `o` and everything else read, the tail is at most
//! `o + capacity - 2R`, and a dead letter of at most `R` bytes plus a pad
//! shorter than it ends by `o + capacity`. The dead letters that used the
//! room have originals older than every pin left, so once the group cursors
//! have passed those, the room is back. Dead letters of younger originals
//! wait for room below the reserve like any record: had they used it,
//! several given up at once could leave the oldest pin, whose release alone
//! makes room, with none (a model test seed did). Still open: two groups
//! giving up the same message may both use the room for it (docs/acks.md).
//! A group added from earliest starts
//! no further back than `tail - (capacity - reserve)` for the same reason. A
//! producer learns of the first dead-letter group at its next rescan (add it
//! before traffic).

use crate::protocol::layout::*;
use crate::protocol::ring::*;
use crate::protocol::wait::Event;
use crate::protocol::{group, identity, registry};
use crate::region::Region;
use crate::sync::Ordering;

/// A producer's process-local view of the tail and of its free space.
#[derive(Clone, Copy, Debug)]
pub struct ProducerCursor {
    /// Last tail value seen; the first CAS attempt uses it, so an uncontended
    /// producer claims with a single atomic instruction.
    guess: u128,
    /// Positions below this may be written without rescanning (see module docs).
    limit: u64,
    /// This producer's slot in the registry (registry.rs), if registered: its
    /// claims are then announced there, so a recovery can abort them if the
    /// producer dies before committing.
    pub(crate) slot: Option<usize>,
    /// A named producer's identity slot (identity.rs); needs `slot`.
    pub(crate) ident: Option<usize>,
    /// A named producer: the pseq of the first record of its next claim.
    pub(crate) pseq: u64,
    /// Bytes below its limit this producer leaves free (module docs),
    /// refreshed with the limit.
    reserve: u64,
    /// A dead-letter publisher, with the ring position of the original it
    /// forwards (`Some(None)`: one read from the spill log). It may use the
    /// room kept for dead letters only while that original is the oldest
    /// record anything holds (module docs).
    dead_letter_of: Option<Option<u64>>,
}

impl ProducerCursor {
    /// Bytes this producer may still claim before it must rescan, as far as
    /// it knows (its limit and its last view of the tail are both cached).
    #[inline]
    pub fn headroom(&self) -> u64 {
        self.limit
            .saturating_sub(self.reserve)
            .saturating_sub(unpack(self.guess).1)
    }

    /// Makes this producer the publisher of the dead letter of the message
    /// whose record is at ring position `original` (`None`: read from the
    /// spill log): it may use the room kept for dead letters while that
    /// record is the oldest one anything holds.
    pub fn for_dead_letter_of(&mut self, original: Option<u64>) {
        self.dead_letter_of = Some(original);
    }

    /// Announces this cursor's claims in registry slot `slot` (registry.rs).
    pub fn set_slot(&mut self, slot: usize) {
        self.slot = Some(slot);
    }

    /// Publishes as identity slot `i` (a named producer, identity.rs), the
    /// next claim's first record numbered `pseq`; needs a registry slot.
    pub fn set_identity(&mut self, i: usize, pseq: u64) {
        self.ident = Some(i);
        self.pseq = pseq;
    }

    /// The tail position this producer last saw.
    #[inline]
    pub fn tail_guess(&self) -> u64 {
        unpack(self.guess).1
    }
}

/// A successful claim of `count` records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Claim {
    /// Sequence number of the first record.
    pub seq: u64,
    /// Tail position the claim started at (a PAD may come first).
    pub start: u64,
    /// Position just past the last record.
    pub end: u64,
    /// The claimer's registry slot (cleared once the claim is committed).
    pub slot: Option<usize>,
    /// A named producer's identity slot and the pseq after the claim's last
    /// record, stored as its `next` once the records are committed.
    pub ident: Option<(usize, u64)>,
}

/// The ring has no room for the claim now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

/// A fresh producer view.
pub fn producer_cursor<R: Region>(ring: &Ring<R>) -> ProducerCursor {
    ProducerCursor {
        // Relaxed: only a first guess; the claim CAS checks it.
        guess: ring.tail().load(Ordering::Relaxed),
        limit: 0,
        slot: None,
        ident: None,
        pseq: 0,
        reserve: ring.dead_letter_reserve(),
        dead_letter_of: None,
    }
}

/// Most bytes of records one batch claim may take: it may need a pad
/// shorter than one record before it, and must fit below the limit less
/// the room kept for dead letters (`capacity - reserve - R`; half the
/// ring when none is kept).
pub fn max_batch<R: Region>(ring: &Ring<R>) -> u64 {
    match ring.dead_letter_reserve() {
        0 => ring.geo.capacity / 2,
        reserve => {
            let r = record_size(ring.geo.max_stored());
            (ring.geo.capacity - reserve - r).min(ring.geo.capacity / 2)
        }
    }
}

/// Refreshes a producer's view of the tail and of its limit now.
pub fn rescan<R: Region>(ring: &Ring<R>, pc: &mut ProducerCursor) {
    // Relaxed: a guess, checked by the claim CAS.
    pc.guess = ring.tail().load(Ordering::Relaxed);
    pc.limit = refresh_limit(ring, unpack(pc.guess).1);
}

/// See [`Geometry::place`].
#[inline]
pub fn place<R: Region>(ring: &Ring<R>, pos: u64, len: u64) -> u64 {
    ring.geo.place(pos, len)
}

/// Claims `count` records whose layout from a start position is given by
/// `end_of(start) -> end`. Never blocks; `Err(Full)` when the ring lacks room.
// Inlined into the send path: see `group::try_take` (group.rs).
#[inline(always)]
pub fn try_claim<R: Region>(
    ring: &Ring<R>,
    pc: &mut ProducerCursor,
    count: u64,
    end_of: impl Fn(u64) -> u64,
) -> Result<Claim, Full> {
    let mut cur = pc.guess;
    loop {
        let (seq, pos) = unpack(cur);
        let end = end_of(pos);
        if end > pc.limit.saturating_sub(pc.reserve) {
            pc.reserve = ring.dead_letter_reserve();
            pc.limit = refresh_limit(ring, end.saturating_add(pc.reserve));
            if let Some(Some(at)) = pc.dead_letter_of {
                // The original is the oldest record a member holds:
                // the room is its dead letter's. Any other leaves it
                // (module docs).
                if group::scan_groups(ring).min_inflight == at {
                    pc.reserve = 0;
                }
            }
            if end > pc.limit.saturating_sub(pc.reserve) {
                // `cur` may be stale, but the tail only grows, so the real
                // claim would end even later: Full is the right answer.
                pc.guess = cur;
                if let Some(slot) = pc.slot {
                    // No stale intent may cover a dead producer's claim.
                    registry::note_done(ring, slot);
                }
                return Err(Full);
            }
        }
        if let Some(slot) = pc.slot {
            if pc.ident.is_some() {
                registry::note_pseq(ring, slot, pc.pseq);
            }
            registry::note_intent(ring, slot, seq, pos, end, count);
        }
        let next = pack(seq.wrapping_add(count), end);
        // AcqRel: the CAS publishes nothing itself (records are published by
        // their commit words), but ordering it with the scan that produced
        // `limit` keeps the space reasoning local. On x86 and aarch64 the
        // 128-bit CAS is a full barrier anyway.
        match ring
            .tail()
            .compare_exchange(cur, next, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {
                pc.guess = next;
                if let Some(slot) = pc.slot {
                    registry::note_claimed(ring, slot, pos);
                }
                return Ok(Claim {
                    seq,
                    start: pos,
                    end,
                    slot: pc.slot,
                    ident: pc.ident.map(|i| (i, pc.pseq.wrapping_add(count))),
                });
            }
            Err(actual) => cur = actual,
        }
    }
}

/// Commits a whole claim, given its records as (position, stored length,
/// kind) in order; pads are committed where a record was moved to the next
/// lap. Then, for a named producer, stores its `next`, clears the intent
/// and wakes sleeping consumers.
// The library's producers take the three steps themselves (producer.rs,
// with crash points between them); the loom models call this.
#[allow(dead_code)]
pub fn commit_claim<R: Region>(
    ring: &Ring<R>,
    claim: &Claim,
    records: impl Iterator<Item = (u64, u64, u64)>,
) {
    let published = commit_records(ring, claim, records);
    publish_identity(ring, claim, published);
    finish_claim(ring, claim);
}

/// The first step of `commit_claim`: commits the records; returns how
/// many are messages. [`commit_rest`], then [`commit_first`].
pub fn commit_records<R: Region>(
    ring: &Ring<R>,
    claim: &Claim,
    records: impl Iterator<Item = (u64, u64, u64)>,
) -> u64 {
    let (first, messages) = commit_rest(ring, claim, records);
    commit_first(ring, first);
    messages
}

/// A claim's first record, committed last ([`commit_first`]): its position
/// and kind.
#[derive(Clone, Copy, Debug)]
pub struct First(Option<(u64, u64)>);

/// Commits every record of the claim but its first; returns the first and
/// how many of all are messages.
///
/// All or nothing: the claim's first record is committed last, by
/// [`commit_first`] (a pad before it, where it moved to the next lap, is
/// committed first: it carries no message, and readers stop after it). Every
/// reader walks the ring in order and stops at the first uncommitted record,
/// so no consumer, spill round or dump sees any record of a batch before its
/// first, and a reader whose Acquire load sees the first committed sees the
/// rest (their Release commits precede it). A producer that dies before
/// that last commit leaves its first record uncommitted: the recovery
/// (registry.rs) aborts the whole claim, the records already committed after
/// it too.
pub fn commit_rest<R: Region>(
    ring: &Ring<R>,
    claim: &Claim,
    records: impl Iterator<Item = (u64, u64, u64)>,
) -> (First, u64) {
    let mut pos = claim.start;
    let mut messages = 0;
    let mut first = None;
    for (rec_pos, len, kind) in records {
        // A pad (the rest of a lap) before any record, the first's too: a
        // pad has no sequence number, and a reader that passes it stops at
        // the first record. A record found committed at its position (by a
        // reader that looks there directly, as `ack::resolve_forward` does
        // for a dead letter) then means the whole claim is.
        if rec_pos != pos {
            ring.commit(pos, KIND_PAD);
        }
        if first.is_none() {
            first = Some((rec_pos, kind));
        } else {
            ring.commit(rec_pos, kind);
        }
        messages += u64::from(kind == KIND_MSG);
        pos = rec_pos.wrapping_add(record_size(len));
    }
    debug_assert_eq!(pos, claim.end);
    (First(first), messages)
}

/// Commits the claim's first record: the whole claim becomes visible at
/// once.
#[inline]
pub fn commit_first<R: Region>(ring: &Ring<R>, first: First) {
    if let Some((rec_pos, kind)) = first.0 {
        ring.commit(rec_pos, kind);
    }
}

/// The second step: a named producer's `next` covers the `published`
/// messages just committed, before its intent goes (identity.rs).
#[inline]
pub fn publish_identity<R: Region>(ring: &Ring<R>, claim: &Claim, published: u64) {
    if let Some((i, next)) = claim.ident {
        if published > 0 {
            identity::note_published(ring, i, next, published);
        }
    }
}

/// The last step: clears the intent and wakes sleeping consumers.
pub fn finish_claim<R: Region>(ring: &Ring<R>, claim: &Claim) {
    if let Some(slot) = claim.slot {
        registry::note_done(ring, slot);
    }
    ring.notify(Event::Data);
}

/// A dead letter to publish: a copy of a message a group gave up, addressed
/// to its dead-letter group by `flags` (layout.rs `dead_letter_flags`).
#[derive(Clone, Copy, Debug)]
pub struct DeadLetter<'a> {
    /// The message's bytes.
    pub payload: &'a [u8],
    /// Its addressing flags.
    pub flags: u32,
    /// Its named producer's `(id, pseq)`, kept (the producer extension).
    pub ext: Option<(u64, u64)>,
    /// The queue sequence number the message had, and the id of the group
    /// that gave it up (the origin extension).
    pub origin: (u64, u64),
    /// The time to stamp it with.
    pub ts_ns: u64,
}

/// Publishes dead letter `dl` as one record with producer cursor `pc`
/// (registered in a registry slot, so that a recovery aborts the claim if
/// the publisher dies before the commit). Never waits: `Err(Full)` when the
/// ring has no room now. `claimed(seq, pos)` runs between the claim and the
/// commit, so that the ack entry records where its dead letter is before
/// anyone can see it (ack.rs `note_forward`). Returns the sequence number.
pub fn publish_dead_letter<R: Region>(
    ring: &Ring<R>,
    pc: &mut ProducerCursor,
    dl: &DeadLetter<'_>,
    claimed: impl FnOnce(u64, u64),
) -> Result<u64, Full> {
    let producer = if dl.ext.is_some() { FLAG_PRODUCER } else { 0 };
    let flags = dl.flags | FLAG_ORIGIN_SEQ;
    let len = (ext_len(flags | producer) + dl.payload.len()) as u64;
    let claim = try_claim(ring, pc, 1, |p| {
        ring.geo.place(p, len).wrapping_add(record_size(len))
    })?;
    let rec = place(ring, claim.start, len);
    let (seq, group_id) = dl.origin;
    ring.write_origin(rec, flags | producer, seq, group_id);
    // SAFETY: `rec` is the single record of our claim, placed for exactly
    // the stored length of the payload with its extensions.
    unsafe { ring.write_record_as(rec, claim.seq, dl.ts_ns, dl.ext, flags, dl.payload) };
    claimed(claim.seq, rec);
    commit_records(ring, &claim, std::iter::once((rec, len, KIND_MSG)));
    finish_claim(ring, &claim);
    Ok(claim.seq)
}

/// Recomputes this producer's write limit, advancing HEAD where the groups
/// allow. `need_end` is the end position the caller wants to reach.
pub(crate) fn refresh_limit<R: Region>(ring: &Ring<R>, need_end: u64) -> u64 {
    loop {
        // SYNC POINT head: Acquire pairs with the Release of every HEAD CAS,
        // including a group add's (group.rs): a scan after reading a value
        // sees the groups that were registered before it was written.
        let v = ring.head().load(Ordering::Acquire);
        let (hpos, hseq, gen) = unpack_head(v);
        let scan = group::scan_groups(ring);
        let (tpos, tseq) = match scan.min_cursor {
            Some((seq, pos)) => (pos, seq as u32),
            None => ring.walk_committed(hpos, hseq, need_end.saturating_sub(ring.geo.capacity)),
        };
        let head_pos = if tpos > hpos {
            let new = pack_head(tpos, tseq, gen);
            // SYNC POINT head: Release hands on what our scan acquired (the
            // consumers' releases) to every producer that loads this HEAD
            // with Acquire and then writes below HEAD + capacity.
            match ring
                .head()
                .compare_exchange(v, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => tpos,
                // Another producer moved HEAD, or a group was added (the
                // generation changed): our scan may be stale, so redo it.
                Err(_) => continue,
            }
        } else {
            hpos
        };
        return head_pos
            .min(scan.min_inflight)
            .saturating_add(ring.geo.capacity);
    }
}
