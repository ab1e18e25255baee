//! The ring: one queue's region and geometry ([`Ring`]), and its words by
//! name. Every other protocol file reaches the region through here: TAIL,
//! HEAD, the spill FRONT and the group cursors; the typed views of
//! `layout.rs` (the header's running words, a group's slot, a member's slot,
//! a producer's registry slot, a name slot, an ack-table entry); and the
//! records themselves (write, commit, classify with [`Ring::slot_at`]). The
//! offsets are the layout's (`layout.rs`); the
//! protocols built on these words are free functions in their own files:
//! `claim` (producers), `group` (takes and cursors), `ack`, `registry`,
//! `identity` and `spill`, each importing the ones below it.
//!
//! HEAD and the record format are described where producers use them
//! (`claim.rs`): a record is written by its claimer and committed by one
//! Release store of its commit word, `stamp(pos, kind)`.

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
            Sleeper::Member { g, m } => self.member(g, m).asleep(),
            Sleeper::Producer { slot } => self.producer_slot(slot).asleep(),
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

    /// The room producers leave for dead letters: two of the largest
    /// records once a group has a dead-letter target, on a geometry that has
    /// room for it (`Geometry::validate` requires it; the loom models' tiny
    /// rings do not).
    pub fn dead_letter_reserve(&self) -> u64 {
        // Relaxed: a setting, read again at every rescan.
        if self.header().dead_letters().load(Ordering::Relaxed) == 0 {
            return 0;
        }
        let r = record_size(self.geo.max_stored());
        if 4 * r <= self.geo.capacity {
            2 * r
        } else {
            0
        }
    }

    /// Producers keep room for dead letters from now on (admin lock held).
    pub fn keep_dead_letter_room(&self) {
        self.header().dead_letters().store(1, Ordering::Relaxed);
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
        // SAFETY: forwarded from the caller (no key).
        unsafe { self.write_keyed_record(pos, seq, ts_ns, ext, flags, None, payload) };
    }

    /// Like `write_record_as`, with the key block of `key` (FLAG_KEY added)
    /// between the extensions and the payload.
    ///
    /// # Safety
    /// As for `write_record_as`, the record placed for the stored length:
    /// `payload.len()` plus the extensions plus the key block
    /// (`key_block(key.len())`).
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn write_keyed_record(
        &self,
        pos: u64,
        seq: u64,
        ts_ns: u64,
        ext: Option<(u64, u64)>,
        flags: u32,
        key: Option<&[u8]>,
        payload: &[u8],
    ) {
        let mut flags = match ext {
            Some((id, pseq)) => {
                self.write_ext(pos, id, pseq);
                flags | FLAG_PRODUCER
            }
            None => flags,
        };
        let mut skip = ext_len(flags);
        if let Some(k) = key {
            flags |= FLAG_KEY;
            self.write_key(pos, flags, k);
            skip += key_block(k.len());
        }
        let stored = (skip + payload.len()) as u32;
        debug_assert!(record_size(stored as u64) <= self.geo.room_to_end(pos));
        self.write_header(pos, seq, ts_ns, stored, flags);
        // SAFETY: the bytes after the header (and extensions) belong to the
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

    /// Writes the TTL extension of the record at `pos` with `flags`
    /// (FLAG_TTL among them), in a claim the caller holds, not committed yet.
    pub(crate) fn write_ttl(&self, pos: u64, flags: u32, ttl_ns: u64) {
        let off = self.ring_at(pos) + RECORD_HEADER + ttl_off(flags);
        // Relaxed: published by the Release store of the commit word.
        self.region.u64_at(off).store(ttl_ns, Ordering::Relaxed);
    }

    /// The time to live (ns) of the record at `pos` with `flags`, if it has
    /// one; the caller keeps the record from being overwritten and checked
    /// its length (`valid_record`), as for `read_ext`.
    pub(crate) fn read_ttl(&self, pos: u64, flags: u32) -> Option<u64> {
        (flags & FLAG_TTL != 0).then(|| {
            let off = self.ring_at(pos) + RECORD_HEADER + ttl_off(flags);
            // Relaxed: made visible by the Acquire load of the commit word.
            self.region.u64_at(off).load(Ordering::Relaxed)
        })
    }

    /// Writes the key block of the record at `pos` with `flags` (FLAG_KEY
    /// among them; `key` at most MAX_KEY bytes), in a claim the caller
    /// holds, not committed yet.
    pub(crate) fn write_key(&self, pos: u64, flags: u32, key: &[u8]) {
        let off = self.ring_at(pos) + RECORD_HEADER + ext_len(flags);
        // Relaxed: published by the Release store of the commit word.
        self.region
            .u64_at(off)
            .store(key_hash(key), Ordering::Relaxed);
        self.region
            .u64_at(off + 8)
            .store(key.len() as u64, Ordering::Relaxed);
        for (i, chunk) in key.chunks(8).enumerate() {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.region
                .u64_at(off + KEY_HEAD + 8 * i)
                .store(u64::from_le_bytes(w), Ordering::Relaxed);
        }
    }

    /// The key hash and length of the record at `pos` with stored length
    /// `len` and `flags`: `Ok(None)` without FLAG_KEY, `Err(())` if the key
    /// block cannot be one (a damaged record). The caller keeps the record
    /// from being overwritten, or discards what it read if the record moved
    /// on (as for its header); `valid_record` checked `len` and `flags`.
    pub(crate) fn read_key_head(
        &self,
        pos: u64,
        len: u32,
        flags: u32,
    ) -> Result<Option<(u64, u32)>, ()> {
        if flags & FLAG_KEY == 0 {
            return Ok(None);
        }
        let off = self.ring_at(pos) + RECORD_HEADER + ext_len(flags);
        // Relaxed: made visible by the Acquire load of the commit word.
        let hash = self.region.u64_at(off).load(Ordering::Relaxed);
        let key_len = self.region.u64_at(off + 8).load(Ordering::Relaxed);
        let body = (len as usize).saturating_sub(ext_len(flags));
        if hash == 0
            || hash >> 63 != 0
            || key_len > MAX_KEY as u64
            || key_block(key_len as usize) > body
        {
            return Err(());
        }
        Ok(Some((hash, key_len as u32)))
    }

    /// The key of the record at `pos` with `flags`, `key_len` bytes long
    /// (`read_key_head` checked it); the caller keeps the record.
    pub(crate) fn read_key(&self, pos: u64, flags: u32, key_len: u32) -> [u8; MAX_KEY] {
        let off = self.ring_at(pos) + RECORD_HEADER + ext_len(flags) + KEY_HEAD;
        let mut key = [0u8; MAX_KEY];
        let n = (key_len as usize).min(MAX_KEY);
        for i in 0..n.div_ceil(8) {
            // Relaxed: made visible by the Acquire load of the commit word.
            let w = self.region.u64_at(off + 8 * i).load(Ordering::Relaxed);
            key[8 * i..8 * i + 8].copy_from_slice(&w.to_le_bytes());
        }
        key
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
        if !valid_record(len, flags, self.geo.max_msg)
            || size > self.geo.room_to_end(pos)
            || self.read_key_head(pos, len as u32, flags).is_err()
        {
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
    pub(crate) fn walk_committed(&self, mut pos: u64, mut seq: u32, want: u64) -> (u64, u32) {
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

    /// The header's running words.
    #[inline]
    pub(crate) fn header(&self) -> Header<'_, R> {
        Header::new(&self.region)
    }

    /// Group `g`'s slot.
    #[inline]
    pub(crate) fn group(&self, g: usize) -> GroupSlot<'_, R> {
        GroupSlot::new(&self.region, self.group_off(g))
    }

    /// Member `m`'s slot in group `g`.
    #[inline]
    pub(crate) fn member(&self, g: usize, m: usize) -> MemberSlot<'_, R> {
        let off = self.group(g).member_off(m);
        debug_assert_eq!(off, self.geo.member_off(g, m));
        MemberSlot::new(&self.region, off)
    }

    /// Entry `i` of group `g`'s ack table.
    #[inline]
    pub(crate) fn entry(&self, g: usize, i: usize) -> AckEntry<'_, R> {
        let off = self.group_off(g) + self.geo.entries_off() + i * ENTRY_SIZE;
        debug_assert_eq!(off, self.geo.entry_off(g, i));
        AckEntry::new(&self.region, off)
    }

    /// The key word of ack entry `i` of group `g` (the key table, layout.rs):
    /// its message's key hash (0: none).
    #[inline]
    pub(crate) fn entry_key(&self, g: usize, i: usize) -> &crate::sync::AtomicU64 {
        debug_assert!(i < self.geo.ack_entries as usize);
        self.region
            .u64_at(self.group_off(g) + self.geo.keys_off() + i * 8)
    }

    /// Producer registry slot `slot`.
    #[inline]
    pub(crate) fn producer_slot(&self, slot: usize) -> ProducerSlot<'_, R> {
        let off = self.producers_off + slot * PRODUCER_SLOT_SIZE;
        debug_assert_eq!(off, self.geo.producer_off(slot));
        ProducerSlot::new(&self.region, off)
    }

    /// Name slot `i`.
    #[inline]
    pub(crate) fn name_slot(&self, i: usize) -> NameSlot<'_, R> {
        let off = self.identities_off + i * IDENTITY_SIZE;
        debug_assert_eq!(off, self.geo.identity_off(i));
        NameSlot::new(&self.region, off)
    }

    /// The cursor word of group `g` (for members on disk re-checking it).
    pub fn cursor_now(&self, g: usize) -> u128 {
        // Acquire pairs with the other cursor writers' CAS.
        self.cursor(g).load(Ordering::Acquire)
    }

    pub(crate) fn cursor(&self, g: usize) -> &AtomicU128 {
        self.group(g).cursor()
    }

    pub(crate) fn slot_state(&self, g: usize) -> u64 {
        // Acquire pairs with the Release state stores in add/remove: the name and
        // cursor written before them are visible.
        self.group(g).state().load(Ordering::Acquire) & 0xff
    }

    /// Whether group `g` is a dead-letter group (delivers only the dead
    /// letters addressed to it).
    #[inline]
    pub fn dl_only(&self, g: usize) -> bool {
        // Relaxed: set before the group became ACTIVE (which a member's attach
        // acquired) and never changed while it is.
        self.group(g).dl_only().load(Ordering::Relaxed) != 0
    }

    /// The id of the group in slot `g`: the slot and its generation, which
    /// every add and remove bumps (`slot | generation << 32`).
    pub fn group_id(&self, g: usize) -> u64 {
        // Acquire pairs with the Release state stores of add/remove, as in
        // `slot_state`.
        let gen = self.group(g).state().load(Ordering::Acquire) >> 8;
        g as u64 | (gen & 0xffff_ffff) << 32
    }

    /// Whether slot `g` holds an active group (members check this on attach).
    pub fn is_active(&self, g: usize) -> bool {
        self.slot_state(g) == SLOT_ACTIVE
    }

    /// Reads the name of slot `g` with atomic loads (another process may be
    /// rewriting a slot that is being freed and reused).
    pub(crate) fn slot_name(&self, g: usize) -> Vec<u8> {
        self.read_name_at(self.group(g).name_off())
    }

    /// Reads a name stored as a length word at `off` followed by `MAX_NAME`
    /// bytes (a group's or a producer identity's), with atomic loads.
    pub(crate) fn read_name_at(&self, off: usize) -> Vec<u8> {
        let len = (self.region.u64_at(off).load(Ordering::Relaxed) as usize).min(MAX_NAME);
        let mut out = Vec::with_capacity(MAX_NAME);
        for i in 0..MAX_NAME / 8 {
            let w = self.region.u64_at(off + 8 + 8 * i).load(Ordering::Relaxed);
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.truncate(len);
        out
    }

    /// Writes a name (at most `MAX_NAME` bytes) as `read_name_at` reads it.
    pub(crate) fn write_name_at(&self, off: usize, name: &[u8]) {
        let mut buf = [0u8; MAX_NAME];
        buf[..name.len()].copy_from_slice(name);
        for i in 0..MAX_NAME / 8 {
            let w = u64::from_le_bytes(buf[8 * i..8 * i + 8].try_into().unwrap_or([0; 8]));
            self.region
                .u64_at(off + 8 + 8 * i)
                .store(w, Ordering::Relaxed);
        }
        self.region
            .u64_at(off)
            .store(name.len() as u64, Ordering::Relaxed);
    }

    /// The owner of registry slot `slot`: (pid, start time, identity slot + 1).
    pub(crate) fn registry_owner(&self, slot: usize) -> Option<(u64, u64, u64)> {
        if slot >= self.geo.registry_slots() {
            return None;
        }
        // Acquire pairs with the Release owner store of registration.
        let pid = self.producer_slot(slot).owner().load(Ordering::Acquire);
        (pid != 0).then(|| {
            (
                pid,
                self.producer_slot(slot).start().load(Ordering::Relaxed),
                self.producer_slot(slot).ident().load(Ordering::Relaxed),
            )
        })
    }

    pub(crate) fn front(&self) -> &AtomicU128 {
        self.region.u128_at(OFF_SPILL_FRONT)
    }

    /// FRONT, if active: what `scan_groups` counts as one more cursor.
    pub(crate) fn front_for_scan(&self) -> Option<(u64, u64)> {
        // Acquire pairs with the Release state stores in activate/retire.
        let st = self.spill_state().load(Ordering::Acquire) & 0xff;
        if st != SLOT_CREATING && st != SLOT_ACTIVE {
            return None;
        }
        // SYNC POINT front: Acquire pairs with the Release store in
        // `advance_front` (the spiller's copy of the records below is done) and
        // orders the group cursor loads that follow after it (rejoin).
        Some(unpack(self.front().load(Ordering::Acquire)))
    }

    pub(crate) fn spill_state(&self) -> &AtomicU64 {
        self.header().spill_state()
    }

    /// Whether group `g` reads the spill log (its cursor is a log position).
    pub(crate) fn on_disk(&self, g: usize) -> bool {
        unpack(self.cursor_now(g)).0 & DISK_BIT != 0
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
