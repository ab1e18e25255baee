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
//! group table only when a claim would pass it ([`Ring::refresh_limit`]). The
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
use crate::protocol::wait::{self, Event, Sleeper, WaitStrategy};
use crate::region::Region;
use crate::sync::{AtomicU128, AtomicU64, Ordering};

/// The protocol's view of one queue: its memory and its validated geometry.
pub struct Ring<R> {
    pub(crate) region: R,
    pub(crate) geo: Geometry,
    pub(crate) nonce: u64,
    /// `geo.ring_off()`, computed once: it is on every record access.
    ring_off: usize,
    /// `geo.producer_table_off()` and `geo.identity_table_off()`, computed
    /// once: a send announces its claim in its registry slot.
    pub(crate) producers_off: usize,
    pub(crate) identities_off: usize,
    /// `geo.slot_size()`, computed once: every take reaches its group's
    /// cursor and its member slot through it.
    slot_size: usize,
    /// `(geo.capacity - 1) & !7`: maps a position to its aligned ring offset
    /// (see `Geometry::ring_at`).
    mask: u64,
}

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

/// HEAD packs `pos` with a 32-bit sequence field and a 32-bit generation.
#[inline]
pub(crate) const fn pack_head(pos: u64, seq_lo: u32, gen: u32) -> u128 {
    ((((gen as u64) << 32) | seq_lo as u64) as u128) << 64 | pos as u128
}

/// Unpacks HEAD into (pos, seq_lo, gen).
#[inline]
pub(crate) const fn unpack_head(w: u128) -> (u64, u32, u32) {
    let meta = (w >> 64) as u64;
    (w as u64, meta as u32, (meta >> 32) as u32)
}

/// What is at a ring position, as its commit word and header say at the
/// moment of reading: every walk over the ring (consumers excepted, whose hot
/// path reads only what it needs) classifies records through [`Ring::slot_at`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// Not committed yet.
    Uncommitted,
    /// A pad: the next record is at `next`.
    Pad {
        /// Start of the next lap.
        next: u64,
    },
    /// A message (KIND_MSG) or an aborted claim (KIND_ABORT).
    Record {
        /// KIND_MSG or KIND_ABORT.
        kind: u64,
        /// Payload length.
        len: u32,
        /// Sequence number.
        seq: u64,
        /// Publish time.
        ts_ns: u64,
        /// Record flags (0, or a dead letter's addressing: `layout.rs`).
        flags: u32,
        /// Position after it.
        next: u64,
    },
    /// The commit word or length is not what the protocol writes.
    Bad,
}

impl<R: Region> Ring<R> {
    /// Wakes the sleepers waiting for `ev`, if any (wait.rs).
    #[inline]
    pub fn notify(&self, ev: Event) {
        wait::notify(&self.region, ev);
    }

    /// Waits for `poll` to yield a value, as `who` (wait.rs).
    #[inline]
    pub fn wait_for<T>(
        &self,
        who: Sleeper,
        strategy: WaitStrategy,
        deadline: impl FnOnce() -> Option<std::time::Instant>,
        poll: impl FnMut() -> Option<T>,
    ) -> Option<T> {
        wait::wait_for(
            &self.region,
            who,
            self.asleep_mark(who),
            strategy,
            deadline,
            poll,
        )
    }

    /// The word in `who`'s own slot that marks it asleep.
    fn asleep_mark(&self, who: Sleeper) -> &AtomicU64 {
        match who {
            Sleeper::Member { g, m } => self.member_word(g, m, M_ASLEEP),
            Sleeper::Producer { slot } => self.pword(slot, P_ASLEEP),
        }
    }

    /// Puts `who` in its event's sleeper word (wait.rs); the loom models
    /// use it to leave a sleeper that died announced.
    #[allow(dead_code)]
    pub fn announce_sleep(&self, who: Sleeper) {
        wait::announce_sleep(&self.region, who, self.asleep_mark(who));
    }

    /// Whether `who` is announced asleep (for `stat`).
    pub fn is_asleep(&self, who: Sleeper) -> bool {
        wait::is_asleep(self.asleep_mark(who))
    }

    /// Takes `who` out of its event's sleeper word: the sleeper on waking,
    /// or the reaper of a process killed asleep (wait.rs). Returns whether
    /// it was in.
    pub fn clear_sleeper(&self, who: Sleeper) -> bool {
        wait::clear_sleeper(&self.region, who, self.asleep_mark(who))
    }

    /// Wraps a region whose header has been validated (or just initialised).
    pub fn new(region: R, geo: Geometry, nonce: u64) -> Self {
        Ring {
            region,
            geo,
            nonce,
            ring_off: geo.ring_off(),
            producers_off: geo.producer_table_off(),
            identities_off: geo.identity_table_off(),
            slot_size: geo.slot_size(),
            mask: (geo.capacity - 1) & !(ALIGN as u64 - 1),
        }
    }

    /// Offset in the region of the byte at ring position `pos`.
    #[inline]
    pub(crate) fn ring_at(&self, pos: u64) -> usize {
        debug_assert_eq!(
            self.ring_off + (pos & self.mask) as usize,
            self.geo.ring_at(pos)
        );
        self.ring_off + (pos & self.mask) as usize
    }

    /// Offset of group slot `g` (`Geometry::slot_off`, with the slot size
    /// computed once).
    #[inline]
    pub(crate) fn group_off(&self, g: usize) -> usize {
        debug_assert_eq!(
            self.geo.group_table_off() + g * self.slot_size,
            self.geo.slot_off(g)
        );
        self.geo.group_table_off() + g * self.slot_size
    }

    /// The geometry.
    pub fn geometry(&self) -> Geometry {
        self.geo
    }

    pub(crate) fn tail(&self) -> &AtomicU128 {
        self.region.u128_at(OFF_TAIL)
    }

    pub(crate) fn head(&self) -> &AtomicU128 {
        self.region.u128_at(OFF_HEAD)
    }

    /// The commit word of the record at `pos`.
    #[inline]
    pub(crate) fn commit_word(&self, pos: u64) -> &AtomicU64 {
        self.region.u64_at(self.ring_at(pos))
    }

    #[inline]
    pub(crate) fn stamp(&self, pos: u64, kind: u64) -> u64 {
        stamp(pos, kind, self.nonce)
    }

    /// `(seq, pos)` of the tail: the next sequence number to be assigned.
    pub fn tail_now(&self) -> (u64, u64) {
        // Acquire: keeps `head_now`'s second HEAD load after this one, and
        // pairs with the producers' tail CAS for callers that read records or
        // the intents announced before it (registry.rs).
        unpack(self.tail().load(Ordering::Acquire))
    }

    /// `(seq, pos)` of the tail, by an RMW: the latest value in TAIL's
    /// modification order, which a plain load need not return. A claim CAS
    /// that this one does not see comes after it, and so do its writes
    /// (registry.rs relies on it).
    pub(crate) fn tail_latest(&self) -> (u64, u64) {
        loop {
            // Relaxed: only a first guess for the CAS.
            let v = self.tail().load(Ordering::Relaxed);
            // AcqRel: reads from the claim CASes' release sequence (Acquire)
            // and orders this process's earlier reads before every later
            // claim (Release). A CAS with an equal value changes nothing.
            if self
                .tail()
                .compare_exchange(v, v, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return unpack(v);
            }
        }
    }

    /// Full `(seq, pos)` of HEAD, the oldest record the ring holds.
    pub fn head_now(&self) -> (u64, u64) {
        loop {
            // Acquire: the tail load below stays between the two HEAD loads.
            let v = self.head().load(Ordering::Acquire);
            let (tseq, _) = self.tail_now();
            // Tail was read while HEAD still held `v`, so tail.seq - head.seq is
            // below 2^31 (see MAX_CAPACITY) and the low 32 bits determine it.
            if self.head().load(Ordering::Acquire) == v {
                let (pos, seq_lo, _) = unpack_head(v);
                return (widen_seq(tseq, seq_lo), pos);
            }
        }
    }

    /// A fresh producer view.
    pub fn producer_cursor(&self) -> ProducerCursor {
        ProducerCursor {
            // Relaxed: only a first guess; the claim CAS checks it.
            guess: self.tail().load(Ordering::Relaxed),
            limit: 0,
            slot: None,
            ident: None,
            pseq: 0,
            reserve: self.dead_letter_reserve(),
            dead_letter_of: None,
        }
    }

    /// The room producers leave for dead letters: two of the largest
    /// records once a group has a dead-letter target, on a geometry that has
    /// room for it (`Geometry::validate` requires it; the loom models' tiny
    /// rings do not).
    pub fn dead_letter_reserve(&self) -> u64 {
        // Relaxed: a setting, read again at every rescan.
        if self.region.u64_at(OFF_DEAD_LETTERS).load(Ordering::Relaxed) == 0 {
            return 0;
        }
        let r = record_size(self.geo.max_stored());
        if 4 * r <= self.geo.capacity {
            2 * r
        } else {
            0
        }
    }

    /// Most bytes of records one batch claim may take: it may need a pad
    /// shorter than one record before it, and must fit below the limit less
    /// the room kept for dead letters (`capacity - reserve - R`; half the
    /// ring when none is kept).
    pub fn max_batch(&self) -> u64 {
        match self.dead_letter_reserve() {
            0 => self.geo.capacity / 2,
            reserve => {
                let r = record_size(self.geo.max_stored());
                (self.geo.capacity - reserve - r).min(self.geo.capacity / 2)
            }
        }
    }

    /// Producers keep room for dead letters from now on (admin lock held).
    pub fn keep_dead_letter_room(&self) {
        self.region
            .u64_at(OFF_DEAD_LETTERS)
            .store(1, Ordering::Relaxed);
    }

    /// Refreshes a producer's view of the tail and of its limit now.
    pub fn rescan(&self, pc: &mut ProducerCursor) {
        // Relaxed: a guess, checked by the claim CAS.
        pc.guess = self.tail().load(Ordering::Relaxed);
        pc.limit = self.refresh_limit(unpack(pc.guess).1);
    }

    /// See [`Geometry::place`].
    #[inline]
    pub fn place(&self, pos: u64, len: u64) -> u64 {
        self.geo.place(pos, len)
    }

    /// Claims `count` records whose layout from a start position is given by
    /// `end_of(start) -> end`. Never blocks; `Err(Full)` when the ring lacks room.
    // Inlined into the send path: see `Ring::try_take` (group.rs).
    #[inline(always)]
    pub fn try_claim(
        &self,
        pc: &mut ProducerCursor,
        count: u64,
        end_of: impl Fn(u64) -> u64,
    ) -> Result<Claim, Full> {
        let mut cur = pc.guess;
        loop {
            let (seq, pos) = unpack(cur);
            let end = end_of(pos);
            if end > pc.limit.saturating_sub(pc.reserve) {
                pc.reserve = self.dead_letter_reserve();
                pc.limit = self.refresh_limit(end.saturating_add(pc.reserve));
                if let Some(Some(at)) = pc.dead_letter_of {
                    // The original is the oldest record a member holds:
                    // the room is its dead letter's. Any other leaves it
                    // (module docs).
                    if self.scan_groups().min_inflight == at {
                        pc.reserve = 0;
                    }
                }
                if end > pc.limit.saturating_sub(pc.reserve) {
                    // `cur` may be stale, but the tail only grows, so the real
                    // claim would end even later: Full is the right answer.
                    pc.guess = cur;
                    if let Some(slot) = pc.slot {
                        // No stale intent may cover a dead producer's claim.
                        self.note_done(slot);
                    }
                    return Err(Full);
                }
            }
            if let Some(slot) = pc.slot {
                if pc.ident.is_some() {
                    self.note_pseq(slot, pc.pseq);
                }
                self.note_intent(slot, seq, pos, end, count);
            }
            let next = pack(seq.wrapping_add(count), end);
            // AcqRel: the CAS publishes nothing itself (records are published by
            // their commit words), but ordering it with the scan that produced
            // `limit` keeps the space reasoning local. On x86 and aarch64 the
            // 128-bit CAS is a full barrier anyway.
            match self
                .tail()
                .compare_exchange(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    pc.guess = next;
                    if let Some(slot) = pc.slot {
                        self.note_claimed(slot, pos);
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

    /// Writes the header fields (not the commit word) and the payload of a
    /// record at `pos`.
    ///
    /// # Safety
    /// `pos` must be the position of a record inside a claim this caller holds
    /// and has not committed, and `payload` must be the length it was placed for.
    // The library's producers use `write_record_as`; the loom models this.
    #[allow(dead_code)]
    pub unsafe fn write_record(&self, pos: u64, seq: u64, ts_ns: u64, payload: &[u8]) {
        // SAFETY: forwarded from the caller.
        unsafe { self.write_record_as(pos, seq, ts_ns, None, 0, payload) };
    }

    /// Like `write_record`, with record `flags` and, for a named producer,
    /// the producer extension `(id, pseq)` before the payload (layout.rs).
    /// With FLAG_ORIGIN_SEQ in `flags` the payload goes after the origin
    /// extension, which the caller writes (`write_origin`).
    ///
    /// # Safety
    /// As for `write_record`, the record placed for the stored length:
    /// `payload.len()` plus the extensions (`ext_len` of the flags written).
    pub unsafe fn write_record_as(
        &self,
        pos: u64,
        seq: u64,
        ts_ns: u64,
        ext: Option<(u64, u64)>,
        flags: u32,
        payload: &[u8],
    ) {
        let flags = match ext {
            Some((id, pseq)) => {
                self.write_ext(pos, id, pseq);
                flags | FLAG_PRODUCER
            }
            None => flags,
        };
        let skip = ext_len(flags);
        let stored = (skip + payload.len()) as u32;
        debug_assert!(record_size(stored as u64) <= self.geo.room_to_end(pos));
        self.write_header(pos, seq, ts_ns, stored, flags);
        // SAFETY: the bytes after the header (and extension) belong to the
        // caller's claim, which no consumer reads before the commit and no
        // producer overlaps.
        unsafe {
            self.region
                .write(self.ring_at(pos) + RECORD_HEADER + skip, payload)
        };
    }

    /// Writes the producer extension of the record at `pos` (in a claim the
    /// caller holds, not committed yet).
    pub(crate) fn write_ext(&self, pos: u64, id: u64, pseq: u64) {
        let off = self.ring_at(pos) + RECORD_HEADER;
        // Relaxed: published by the Release store of the commit word.
        self.region.u64_at(off).store(id, Ordering::Relaxed);
        self.region.u64_at(off + 8).store(pseq, Ordering::Relaxed);
    }

    /// Writes the origin extension of the record at `pos` with `flags`
    /// (FLAG_ORIGIN_SEQ among them), in a claim the caller holds, not
    /// committed yet.
    pub(crate) fn write_origin(&self, pos: u64, flags: u32, seq: u64, group_id: u64) {
        let off = self.ring_at(pos) + RECORD_HEADER + origin_off(flags);
        // Relaxed: published by the Release store of the commit word.
        self.region.u64_at(off).store(seq, Ordering::Relaxed);
        self.region
            .u64_at(off + 8)
            .store(group_id, Ordering::Relaxed);
    }

    /// The origin extension of the record at `pos` with `flags`, if it has
    /// one; the caller keeps the record from being overwritten and checked
    /// its length (`valid_record`), as for `read_ext`.
    pub(crate) fn read_origin(&self, pos: u64, flags: u32) -> Option<(u64, u64)> {
        (flags & FLAG_ORIGIN_SEQ != 0).then(|| {
            let off = self.ring_at(pos) + RECORD_HEADER + origin_off(flags);
            // Relaxed: made visible by the Acquire load of the commit word.
            (
                self.region.u64_at(off).load(Ordering::Relaxed),
                self.region.u64_at(off + 8).load(Ordering::Relaxed),
            )
        })
    }

    /// The producer extension `(id, pseq)` of a record with FLAG_PRODUCER at
    /// `pos`, which the caller keeps from being overwritten (a hazard) and
    /// whose length it checked (`valid_record`).
    pub(crate) fn read_ext(&self, pos: u64) -> (u64, u64) {
        let off = self.ring_at(pos) + RECORD_HEADER;
        // Relaxed: made visible by the Acquire load of the commit word.
        (
            self.region.u64_at(off).load(Ordering::Relaxed),
            self.region.u64_at(off + 8).load(Ordering::Relaxed),
        )
    }

    /// Writes the header fields of a record at `pos`: stored length `len`
    /// and `flags` (layout.rs), sequence number and time (zero-copy sends
    /// write the payload themselves).
    pub fn write_header(&self, pos: u64, seq: u64, ts_ns: u64, len: u32, flags: u32) {
        let off = self.ring_at(pos);
        // Relaxed: published by the Release store of the commit word.
        self.region
            .u64_at(off + 8)
            .store(len as u64 | (flags as u64) << 32, Ordering::Relaxed);
        self.region.u64_at(off + 16).store(seq, Ordering::Relaxed);
        self.region.u64_at(off + 24).store(ts_ns, Ordering::Relaxed);
    }

    /// Publishes the record (or pad) at `pos`.
    #[inline]
    pub fn commit(&self, pos: u64, kind: u64) {
        // SYNC POINT commit: Release pairs with the Acquire load of the commit
        // word in `group.rs` (try_take) and in the no-group walk below, making
        // the header and payload written before it visible to the reader.
        self.commit_word(pos)
            .store(self.stamp(pos, kind), Ordering::Release);
    }

    /// Commits a whole claim, given its records as (position, stored length,
    /// kind) in order; pads are committed where a record was moved to the next
    /// lap. Then, for a named producer, stores its `next`, clears the intent
    /// and wakes sleeping consumers.
    // The library's producers take the three steps themselves (producer.rs,
    // with crash points between them); the loom models call this.
    #[allow(dead_code)]
    pub fn commit_claim(&self, claim: &Claim, records: impl Iterator<Item = (u64, u64, u64)>) {
        let published = self.commit_records(claim, records);
        self.publish_identity(claim, published);
        self.finish_claim(claim);
    }

    /// The first step of `commit_claim`: commits the records; returns how
    /// many are messages.
    pub fn commit_records(
        &self,
        claim: &Claim,
        records: impl Iterator<Item = (u64, u64, u64)>,
    ) -> u64 {
        let mut pos = claim.start;
        let mut messages = 0;
        for (rec_pos, len, kind) in records {
            if rec_pos != pos {
                self.commit(pos, KIND_PAD);
            }
            self.commit(rec_pos, kind);
            messages += u64::from(kind == KIND_MSG);
            pos = rec_pos.wrapping_add(record_size(len));
        }
        debug_assert_eq!(pos, claim.end);
        messages
    }

    /// The second step: a named producer's `next` covers the `published`
    /// messages just committed, before its intent goes (identity.rs).
    #[inline]
    pub fn publish_identity(&self, claim: &Claim, published: u64) {
        if let Some((i, next)) = claim.ident {
            if published > 0 {
                self.note_published(i, next, published);
            }
        }
    }

    /// The last step: clears the intent and wakes sleeping consumers.
    pub fn finish_claim(&self, claim: &Claim) {
        if let Some(slot) = claim.slot {
            self.note_done(slot);
        }
        self.notify(Event::Data);
    }

    /// Recomputes this producer's write limit, advancing HEAD where the groups
    /// allow. `need_end` is the end position the caller wants to reach.
    pub(crate) fn refresh_limit(&self, need_end: u64) -> u64 {
        loop {
            // SYNC POINT head: Acquire pairs with the Release of every HEAD CAS,
            // including a group add's (group.rs): a scan after reading a value
            // sees the groups that were registered before it was written.
            let v = self.head().load(Ordering::Acquire);
            let (hpos, hseq, gen) = unpack_head(v);
            let scan = self.scan_groups();
            let (tpos, tseq) = match scan.min_cursor {
                Some((seq, pos)) => (pos, seq as u32),
                None => self.walk_committed(hpos, hseq, need_end.saturating_sub(self.geo.capacity)),
            };
            let head_pos = if tpos > hpos {
                let new = pack_head(tpos, tseq, gen);
                // SYNC POINT head: Release hands on what our scan acquired (the
                // consumers' releases) to every producer that loads this HEAD
                // with Acquire and then writes below HEAD + capacity.
                match self
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
                .saturating_add(self.geo.capacity);
        }
    }

    /// The record at `pos`. Only a reader whose cursor (a group's, FRONT under
    /// the spill lock, HEAD) keeps it from being overwritten can rely on the
    /// answer; others re-check their cursor or HEAD afterwards. The length is
    /// read once and bounds-checked (`Bad` otherwise).
    pub fn slot_at(&self, pos: u64) -> Slot {
        // SYNC POINT commit (reader side): Acquire pairs with `Ring::commit`.
        let w = self.commit_word(pos).load(Ordering::Acquire);
        if w == self.stamp(pos, KIND_PAD) {
            return Slot::Pad {
                next: pos.wrapping_add(self.geo.room_to_end(pos)),
            };
        }
        let kind = if w == self.stamp(pos, KIND_MSG) {
            KIND_MSG
        } else if w == self.stamp(pos, KIND_ABORT) {
            KIND_ABORT
        } else {
            return Slot::Uncommitted;
        };
        let off = self.ring_at(pos);
        let word = self.region.u64_at(off + 8).load(Ordering::Relaxed);
        let (len, flags) = (word & 0xffff_ffff, (word >> 32) as u32);
        let size = record_size(len);
        if !valid_record(len, flags, self.geo.max_msg) || size > self.geo.room_to_end(pos) {
            return Slot::Bad;
        }
        Slot::Record {
            kind,
            len: len as u32,
            seq: self.region.u64_at(off + 16).load(Ordering::Relaxed),
            ts_ns: self.region.u64_at(off + 24).load(Ordering::Relaxed),
            flags,
            next: pos.wrapping_add(size),
        }
    }

    /// With no group registered nothing needs the old records: walk HEAD over
    /// committed records until `want` is reached or an uncommitted one blocks.
    fn walk_committed(&self, mut pos: u64, mut seq: u32, want: u64) -> (u64, u32) {
        while pos < want {
            match self.slot_at(pos) {
                Slot::Pad { next } => pos = next,
                // An aborted claim used its sequence number too.
                Slot::Record { next, .. } => {
                    pos = next;
                    seq = seq.wrapping_add(1);
                }
                // A bad length means the record was overwritten under us (HEAD
                // moved: the caller's CAS fails) or the file is corrupt: either
                // way, stop walking.
                Slot::Uncommitted | Slot::Bad => break,
            }
        }
        (pos, seq)
    }
}

/// Rebuilds a full sequence number from its low 32 bits and a full sequence
/// number `reference` known to be at most 2^31 ahead of it.
#[inline]
pub(crate) fn widen_seq(reference: u64, lo: u32) -> u64 {
    reference.wrapping_sub((reference as u32).wrapping_sub(lo) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widen() {
        assert_eq!(widen_seq(100, 90), 90);
        assert_eq!(widen_seq((1 << 32) + 5, u32::MAX - 2), (1 << 32) - 3);
        assert_eq!(widen_seq(7, 7), 7);
    }

    #[test]
    fn head_pack() {
        let w = pack_head(12345, 77, 9);
        assert_eq!(unpack_head(w), (12345, 77, 9));
    }
}
