//! Consumer groups: broadcast between groups, unicast within a group.
//!
//! Each group has a `CURSOR = (seq, pos)`: the next message it hands out. Every
//! group reads every record; members of one group compete for the cursor.
//!
//! # Taking a message (members)
//! A member loads the cursor, checks the commit stamp of the record there,
//! publishes the record's position as its *inflight hazard*, and CASes the
//! cursor past the record. The CAS succeeding means the cursor never moved
//! while the member looked, so the record is its alone; the hazard then keeps
//! producers from overwriting it until the member clears it.
//!
//! Producers scan every group's cursor (Acquire), then every hazard
//! ([`scan_groups`]). The hazard store precedes the member's CAS, a
//! Release, and every later write of the cursor is a CAS in that release
//! sequence: a scan that sees the cursor past the record therefore sees the
//! hazard too, and a scan that sees the old cursor limits itself to below the
//! record anyway. Either way the record is not overwritten while it is read,
//! with no fence on the member's path.
//!
//! # Adding a group
//! A new group must start at a position no producer will overwrite. It writes
//! its cursor (HEAD for `earliest`, TAIL for `latest`) and then CASes HEAD to
//! the same position with its generation incremented. A producer advances HEAD
//! only by a CAS from the value it loaded before scanning, so a producer whose
//! scan missed the new group loaded HEAD before the group's CAS and its own CAS
//! fails; one whose load saw the group's CAS (Acquire/Release) sees the group.
//!
//! Group add, remove and member attach are rare and run under the queue's admin
//! lock (flock); the hot paths never take it.

use crate::protocol::ack;
use crate::protocol::layout::*;
use crate::protocol::ring::{pack_head, unpack_head, widen_seq, Ring, Slot};
use crate::protocol::wait::{Event, Sleeper};
use crate::region::Region;
use crate::sync::{AtomicU128, Ordering};

/// Where `group::start_cursor_at` puts a new cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Start {
    /// HEAD: the oldest record the ring holds.
    Head,
    /// TAIL: the next record to be published.
    Tail,
    /// The first record from HEAD on at most this many bytes behind TAIL.
    Within(u64),
}

/// What a producer's scan found.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scan {
    /// Lowest `(seq, pos)` cursor over registered groups, if any.
    pub min_cursor: Option<(u64, u64)>,
    /// Lowest inflight hazard (IDLE when none).
    pub min_inflight: u64,
}

/// Where a new group starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StartAt {
    /// The oldest message the ring still holds.
    Earliest,
    /// The next message to be published.
    Latest,
}

/// A message a member has taken: it holds the hazard until released.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Taken {
    /// Sequence number.
    pub seq: u64,
    /// Ring position of the record.
    pub pos: u64,
    /// Bytes after the header (the payload, and the producer extension if
    /// `flags` has FLAG_PRODUCER); checked by `valid_record`.
    pub len: u32,
    /// Publish timestamp.
    pub ts_ns: u64,
    /// Record flags (a dead letter's addressing, FLAG_PRODUCER: `layout.rs`).
    pub flags: u32,
    /// The key's length (checked against the record's length; 0 without
    /// FLAG_KEY). Its hash is in the record ([`Taken::key_hash`]): a
    /// `Taken` is moved along the receive path, and stays small.
    pub key_len: u32,
}

impl Taken {
    /// Bytes between the header and the payload: the extensions', and the
    /// key block's.
    #[inline]
    pub fn skip(&self) -> usize {
        ext_len(self.flags)
            + if self.flags & FLAG_KEY != 0 {
                key_block(self.key_len as usize)
            } else {
                0
            }
    }

    /// The key's hash (0: none), read from the record, which the caller
    /// keeps (the take's hazard or entry).
    #[inline]
    pub fn key_hash<R: Region>(&self, ring: &Ring<R>) -> u64 {
        if self.flags & FLAG_KEY == 0 {
            return 0;
        }
        match ring.read_key_head(self.pos, self.len, self.flags) {
            Ok(Some((h, _))) => h,
            _ => 0,
        }
    }

    /// Payload bytes.
    #[inline]
    pub fn payload_len(&self) -> usize {
        // `valid_record` checked that the extension fits.
        (self.len as usize).saturating_sub(self.skip())
    }
}

/// What [`try_take`] found at the group's cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Take {
    /// A message in the ring, now this member's (see [`Taken`]).
    Ring(Taken),
    /// The group reads the spill log: this is its cursor word (see `spill.rs`).
    Disk(u128),
}

impl Take {
    /// The ring message, if that is what was taken (the loom harness uses it).
    #[allow(dead_code)]
    pub fn ring(self) -> Option<Taken> {
        match self {
            Take::Ring(t) => Some(t),
            Take::Disk(_) => None,
        }
    }
}

/// The shared memory does not hold what the protocol put there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Corrupt(pub String);

/// A registered group's state, as `stat` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupInfo {
    /// Slot index.
    pub slot: usize,
    /// Name.
    pub name: String,
    /// Next sequence number the group will deliver.
    pub next_seq: u64,
    /// Ring position of that message.
    pub next_pos: u64,
    /// Attached member slots.
    pub members: Vec<MemberInfo>,
    /// Whether the group reads the spill log (`next_pos` is then a log position).
    pub on_disk: bool,
}

/// An attached member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberInfo {
    /// Member slot index.
    pub slot: usize,
    /// Process id.
    pub pid: u64,
    /// Process start time (clock ticks since boot).
    pub start_time: u64,
    /// Messages handed to this member.
    pub delivered: u64,
    /// Position being read, if any.
    pub inflight: Option<u64>,
    /// Sequence numbers of the messages it holds unacknowledged.
    pub unacked: Vec<u64>,
    /// Messages it acknowledged.
    pub acked: u64,
    /// Asleep waiting for messages (wait.rs).
    pub asleep: bool,
}

/// Whether group `g` (a dead-letter group if `dl_only`) passes over a
/// record of `kind` with `flags` rather than delivering it: an abandoned
/// claim (its sequence number stays unused), or a record for other groups (a
/// dead letter, or, in a dead-letter group, a message).
#[inline]
fn passed_over(kind: u64, flags: u32, g: usize, dl_only: bool) -> bool {
    kind == KIND_ABORT
        || ((flags & !FLAG_PRODUCER != 0 || dl_only) && !addressed(flags, g, dl_only))
}

/// Cursors of every registered group, then every hazard.
pub(crate) fn scan_groups<R: Region>(ring: &Ring<R>) -> Scan {
    // The spill front first: see `spill.rs` for why it must precede the
    // group cursors.
    let mut min_cursor: Option<(u64, u64)> = ring.front_for_scan();
    for g in 0..ring.geo.max_groups as usize {
        let st = ring.slot_state(g);
        if st != SLOT_CREATING && st != SLOT_ACTIVE {
            continue;
        }
        // SYNC POINT hazard: Acquire pairs with the members' cursor CAS
        // (Release) in `try_take`: if this load sees a cursor past a record,
        // the hazard stored before that CAS is visible to the loads below.
        let (seq, pos) = unpack(ring.cursor(g).load(Ordering::Acquire));
        if seq & DISK_BIT != 0 {
            // On disk: the spill front stands in for the group.
            continue;
        }
        if min_cursor.is_none_or(|(_, p)| pos < p) {
            min_cursor = Some((seq, pos));
        }
    }
    let moves = ring.header().pin_moves();
    // SYNC POINT pin move: Acquire pairs with the AcqRel bump in
    // `begin_hand_over` (ack.rs): a pin moved before this load is seen
    // where it went.
    let mut before = moves.load(Ordering::Acquire);
    let min_inflight = loop {
        let mut min_inflight = IDLE;
        for g in 0..ring.geo.max_groups as usize {
            let st = ring.slot_state(g);
            if st != SLOT_CREATING && st != SLOT_ACTIVE {
                continue;
            }
            for m in 0..ring.geo.max_members as usize {
                // Acquire pairs with the Release in `release`: the
                // member's reads of the record happen before anything we
                // then overwrite.
                let h = ring.member(g, m).inflight().load(Ordering::Acquire);
                min_inflight = min_inflight.min(h);
            }
            // The pins of the group's ack table (ack.rs), read after the
            // cursors like the hazards: a pin is stored before the cursor
            // CAS that takes its message, and moves only with the counter.
            min_inflight = min_inflight.min(ack::min_entry_pin(ring, g));
        }
        // A pin moved while we read (stored where we had looked, cleared
        // where we looked after: we may have missed it): again. The
        // Acquire pin loads that saw a clear made its bump visible here.
        let after = moves.load(Ordering::Acquire);
        if after == before {
            break min_inflight;
        }
        before = after;
    };
    Scan {
        min_cursor,
        min_inflight,
    }
}

/// Takes the next message for member `m` of group `g`, if one is committed.
/// On `Ok(Some(_))` the member holds a hazard on the record: copy it out,
/// then call [`release`].
///
/// With `hold` (an entry of the group's ack table reserved for `m`, and
/// the time of the take for an ack deadline), the message is recorded in
/// that entry, pinned by it instead of the hazard, before the cursor
/// moves (ack.rs); the entry is HELD on success and reserved again
/// otherwise.
// The hot path is inlined into one function per receive (this, the
// consumer's `take` and `copy_out`) and per send (`try_claim`, the
// producer's `commit`): no calls and no results passed through memory
// between a poll and its return (what that saves: docs/benchmarks.md).
#[inline(always)]
pub fn try_take<R: Region>(
    ring: &Ring<R>,
    g: usize,
    m: usize,
    hold: Option<((usize, u64), u64)>,
) -> Result<Option<Take>, Corrupt> {
    let cursor = ring.cursor(g);
    let hazard = ring.member(g, m).inflight();
    let dl_only = ring.dl_only(g);
    let mut hazard_set = false;
    let result = loop {
        // Acquire pairs with other members' cursor CAS (Release).
        let cur = cursor.load(Ordering::Acquire);
        let (seq, pos) = unpack(cur);
        if seq & DISK_BIT != 0 {
            break Ok(Some(Take::Disk(cur)));
        }
        if !pos.is_multiple_of(ALIGN as u64) {
            break Err(Corrupt(format!("group cursor at unaligned position {pos}")));
        }
        let off = ring.ring_at(pos);
        // SYNC POINT commit (reader side): Acquire pairs with the Release
        // store in `Ring::commit`; the header and payload are visible.
        let w = ring.commit_word(pos).load(Ordering::Acquire);
        if w == ring.stamp(pos, KIND_PAD) {
            let next = pack(seq, pos.wrapping_add(ring.geo.room_to_end(pos)));
            // AcqRel, as for the members' CAS below: every cursor write is
            // an RMW in one release sequence.
            if cursor
                .compare_exchange(cur, next, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                ring.notify(Event::Space);
            }
            continue;
        }
        let kind = if w == ring.stamp(pos, KIND_MSG) {
            KIND_MSG
        } else if w == ring.stamp(pos, KIND_ABORT) {
            KIND_ABORT
        } else {
            break Ok(None); // not committed yet
        };
        let word = ring.region.u64_at(off + 8).load(Ordering::Relaxed);
        let (len, flags) = (word & 0xffff_ffff, (word >> 32) as u32);
        let size = record_size(len);
        // The key block is read only once the record is known to fit the
        // ring (a torn header may say anything).
        let fits = valid_record(len, flags, ring.geo.max_msg) && size <= ring.geo.room_to_end(pos);
        let key = match fits {
            true => ring.read_key_head(pos, len as u32, flags),
            false => Err(()),
        };
        let key = match key {
            Ok(k) => k,
            _ => {
                // A bad length is only real corruption if the cursor did not move
                // meanwhile (otherwise the record may have been reused under us).
                if cursor.load(Ordering::Acquire) == cur {
                    break Err(Corrupt(format!(
                    "record at position {pos} has length {len} and flags {flags:#x}, or a bad key"
                )));
                }
                continue;
            }
        };
        let (key_hash, key_len) = key.unwrap_or((0, 0));
        // The payload's lines, while the hazard and the CAS below run.
        ring.region
            .prefetch(off + RECORD_HEADER, size as usize - RECORD_HEADER);
        let next = pack(seq.wrapping_add(1), pos.wrapping_add(size));
        if passed_over(kind, flags, g, dl_only) {
            // AcqRel: an RMW in the cursor's release sequence, as the take's
            // CAS below (nothing of the record is read).
            if cursor
                .compare_exchange(cur, next, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                ring.notify(Event::Space);
            }
            continue;
        }
        // The hazard (or the entry's pin) must be visible before the
        // cursor moves past the record. Relaxed is enough: the CAS below
        // is a Release, and every later cursor write is an RMW in its
        // release sequence, so any scan whose Acquire load sees the
        // cursor past `pos` also sees this store.
        match hold {
            Some((h, since)) => ack::announce(ring, g, m, h, seq, pos, since, key_hash),
            None => hazard.store(pos, Ordering::Relaxed),
        }
        hazard_set = true;
        // SYNC POINT hazard: Release pairs with the Acquire cursor load in
        // `scan_groups`; Acquire chains with the previous members' CAS.
        if cursor
            .compare_exchange(cur, next, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            continue; // another member took it
        }
        let rseq = ring.region.u64_at(off + 16).load(Ordering::Relaxed);
        let ts_ns = ring.region.u64_at(off + 24).load(Ordering::Relaxed);
        if rseq != seq {
            break Err(Corrupt(format!(
                "record at position {pos} has sequence {rseq}, expected {seq}"
            )));
        }
        if let Some((h, _)) = hold {
            ack::took(ring, g, m, h, seq, pos, key_hash);
        }
        note_delivered(ring, g, m, 1);
        return Ok(Some(Take::Ring(Taken {
            seq,
            pos,
            len: len as u32,
            ts_ns,
            flags,
            key_len,
        })));
    };
    if hazard_set {
        match hold {
            Some((h, _)) => ack::untake(ring, g, h),
            None => release(ring, g, m),
        }
    }
    result
}

/// Takes up to `max` messages at group `g`'s cursor for member `m` with
/// one cursor CAS: the committed records from the cursor on, until `max`
/// messages, an uncommitted record or anything unusual. Records for other
/// groups and aborted claims among them are passed over, as `try_take`
/// passes them. Returns how many messages it put in `out` (cleared
/// first); the member then holds a hazard on the first record, which
/// keeps the whole run from being overwritten (producers stay below the
/// lowest hazard plus one lap), until [`release`].
///
/// `Some(0)` means nothing was taken because the group is on the spill
/// log or the first record needs `try_take`'s care (a bad length, a
/// wrong sequence number): the caller falls back to it. `None`: nothing
/// is committed at the cursor. Without explicit acknowledgement only: an
/// entry holds one message.
// Inlined into `recv_batch`, as `try_take` into a receive.
#[inline(always)]
pub fn try_take_batch<R: Region>(
    ring: &Ring<R>,
    g: usize,
    m: usize,
    max: usize,
    out: &mut Vec<Taken>,
) -> Option<usize> {
    let cursor = ring.cursor(g);
    let hazard = ring.member(g, m).inflight();
    let dl_only = ring.dl_only(g);
    // A hazard left from a failed CAS is dropped before returning empty.
    let nothing = |hazard_set: bool, n: Option<usize>| {
        if hazard_set {
            release(ring, g, m);
        }
        n
    };
    let mut hazard_set = false;
    loop {
        out.clear();
        // Acquire pairs with other members' cursor CAS (Release).
        let cur = cursor.load(Ordering::Acquire);
        let (seq, pos) = unpack(cur);
        if seq & DISK_BIT != 0 || !pos.is_multiple_of(ALIGN as u64) {
            return nothing(hazard_set, Some(0));
        }
        let (mut s, mut p) = (seq, pos);
        // Whether the walk ended at a record not committed yet.
        let mut uncommitted = false;
        // While the cursor stays at `pos`, nothing from it on to one lap
        // later is overwritten, so what is read here holds if the CAS
        // below succeeds (as in `try_take`). Committed records end below
        // HEAD + capacity <= pos + capacity; the bound only guards
        // against a corrupt file.
        while out.len() < max && p.wrapping_sub(pos) < ring.geo.capacity {
            match ring.slot_at(p) {
                Slot::Pad { next } => p = next,
                Slot::Record {
                    kind,
                    len,
                    seq: rseq,
                    ts_ns,
                    flags,
                    next,
                } => {
                    if rseq != s {
                        break;
                    }
                    if !passed_over(kind, flags, g, dl_only) {
                        // A bad key is `try_take`'s to report.
                        let Ok(key) = ring.read_key_head(p, len, flags) else {
                            break;
                        };
                        let (_, key_len) = key.unwrap_or((0, 0));
                        out.push(Taken {
                            seq: s,
                            pos: p,
                            len,
                            ts_ns,
                            flags,
                            key_len,
                        });
                    }
                    s = s.wrapping_add(1);
                    p = next;
                }
                Slot::Uncommitted => {
                    uncommitted = true;
                    break;
                }
                Slot::Bad => break,
            }
        }
        if p == pos {
            return nothing(hazard_set, if uncommitted { None } else { Some(0) });
        }
        // As in `try_take`: the hazard is visible to any scan that sees
        // the cursor past it, through the CAS's release sequence.
        if !out.is_empty() {
            hazard.store(pos, Ordering::Relaxed);
            hazard_set = true;
        }
        // SYNC POINT hazard: Release pairs with the Acquire cursor load in
        // `scan_groups`; Acquire chains with the previous members' CAS.
        if cursor
            .compare_exchange(cur, pack(s, p), Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            continue; // another member moved the cursor: look again
        }
        if out.is_empty() {
            // Only records for others: passed over, room made.
            ring.notify(Event::Space);
            continue;
        }
        note_delivered(ring, g, m, out.len() as u64);
        return Some(out.len());
    }
}

/// Counts `n` messages handed to member `m` of group `g`.
#[inline]
pub fn note_delivered<R: Region>(ring: &Ring<R>, g: usize, m: usize, n: u64) {
    let delivered = ring.member(g, m).delivered();
    // Only this member writes its counter: load + store, no RMW needed.
    delivered.store(
        delivered.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

/// Copies the payload of a taken record into `dst` (`dst.len()` must be
/// its payload length, `Taken::payload_len`).
///
/// # Safety
/// The caller holds what pins `t`'s record: the hazard it was taken
/// under (not yet released) or the ack entry that holds it. Otherwise a
/// producer may be writing these bytes.
pub unsafe fn read_payload<R: Region>(ring: &Ring<R>, t: &Taken, dst: &mut [u8]) {
    debug_assert_eq!(dst.len(), t.payload_len());
    let len = dst.len().min(t.payload_len());
    // SAFETY: the caller pins `t`'s record (this function's contract), so
    // no producer writes these bytes; the length was bounds-checked when
    // the record was taken.
    unsafe {
        ring.region.read(
            ring.ring_at(t.pos) + RECORD_HEADER + t.skip(),
            &mut dst[..len],
        )
    }
}

/// Drops member `m`'s hazard and wakes producers waiting for space.
pub fn release<R: Region>(ring: &Ring<R>, g: usize, m: usize) {
    // SYNC POINT hazard release: Release pairs with the Acquire hazard load in
    // `scan_groups`; our reads of the record happen before its overwrite.
    ring.member(g, m).inflight().store(IDLE, Ordering::Release);
    ring.notify(Event::Space);
}

// ----- registry (callers hold the admin lock) -----

/// Slot of the active group called `name`.
pub fn find_group<R: Region>(ring: &Ring<R>, name: &[u8]) -> Option<usize> {
    (0..ring.geo.max_groups as usize)
        .find(|&g| ring.slot_state(g) == SLOT_ACTIVE && ring.slot_name(g) == name)
}

/// Registers a group in a free slot (the caller checked the name is new and
/// valid). Returns the slot, or `None` when the table is full.
pub fn add_group<R: Region>(
    ring: &Ring<R>,
    name: &[u8],
    start: StartAt,
    created_ns: u64,
    dl_only: bool,
) -> Option<usize> {
    let g = (0..ring.geo.max_groups as usize).find(|&g| ring.slot_state(g) == SLOT_FREE)?;
    let state = ring.group(g).state();
    let gen = state.load(Ordering::Relaxed) >> 8;
    ring.write_name_at(ring.group(g).name_off(), name);
    ring.group(g).created().store(created_ns, Ordering::Relaxed);
    for m in 0..ring.geo.max_members as usize {
        ring.member(g, m).inflight().store(IDLE, Ordering::Relaxed);
        ring.member(g, m)
            .state()
            .store(MEMBER_FREE, Ordering::Relaxed);
        ring.member(g, m).delivered().store(0, Ordering::Relaxed);
    }
    ack::clear_entries(ring, g);
    let s = ring.group(g);
    for word in [
        s.pending(),
        s.max_attempts(),
        s.dead_lettered(),
        s.redelivered(),
        s.dead_letter(),
        s.max_unacked(),
        s.ack_wait(),
        s.expired(),
        s.ttl(),
        s.ttl_expired(),
        s.keyed(),
        s.parked(),
    ] {
        word.store(0, Ordering::Relaxed);
    }
    ring.group(g)
        .dl_only()
        .store(dl_only as u64, Ordering::Relaxed);
    // Park the cursor at the tail so that scans between the state store and
    // the loop below see a harmless value.
    ring.cursor(g)
        .store(ring.tail().load(Ordering::Relaxed), Ordering::Relaxed);
    // Release: scans that see CREATING also see the name and cursor.
    state.store(((gen + 1) << 8) | SLOT_CREATING, Ordering::Release);
    // From earliest, no further back than the room kept for dead letters
    // allows (ring.rs): a message this group gives up must find room
    // for its dead letter beside it.
    let start = match (start, ring.dead_letter_reserve()) {
        (StartAt::Earliest, r) if r > 0 => Start::Within(ring.geo.capacity - r),
        (StartAt::Earliest, _) => Start::Head,
        (StartAt::Latest, _) => Start::Tail,
    };
    start_cursor_at(ring, ring.cursor(g), start);
    // Release: pairs with the Acquire in `slot_state`; a member that finds
    // the group ACTIVE sees its final cursor.
    state.store(((gen + 1) << 8) | SLOT_ACTIVE, Ordering::Release);
    Some(g)
}

/// Sets a new cursor (a group's, or the spill front) to where `start` says
/// and bumps HEAD's generation, so that no producer's scan that missed
/// the cursor can move HEAD past it (see the module docs). The caller has
/// made the cursor visible to scans (state CREATING). Returns the start.
pub(crate) fn start_cursor<R: Region>(ring: &Ring<R>, cursor: &AtomicU128, start: StartAt) -> u128 {
    let start = match start {
        StartAt::Earliest => Start::Head,
        StartAt::Latest => Start::Tail,
    };
    start_cursor_at(ring, cursor, start)
}

/// `start_cursor`, with `Start::Within(n)`: the first record from HEAD
/// on that is at most `n` bytes behind the tail (or the first one not
/// committed yet, if it comes before).
pub(crate) fn start_cursor_at<R: Region>(
    ring: &Ring<R>,
    cursor: &AtomicU128,
    start: Start,
) -> u128 {
    loop {
        // Acquire on both: the tail is read while HEAD holds `v` (the CAS
        // below confirms it), so its seq widens HEAD's 32-bit seq.
        let v = ring.head().load(Ordering::Acquire);
        let (hpos, hseq, hgen) = unpack_head(v);
        let tail = ring.tail().load(Ordering::Acquire);
        let (tseq, tpos) = unpack(tail);
        let start_word = match start {
            Start::Head => pack(widen_seq(tseq, hseq), hpos),
            Start::Tail => tail,
            Start::Within(n) => {
                // While HEAD holds `v` no producer writes from HEAD +
                // capacity on, so these records stay as read; if HEAD
                // moved, the CAS below fails and this is done again.
                let (mut seq, mut pos) = (widen_seq(tseq, hseq), hpos);
                while pos < tpos && tpos - pos > n {
                    match ring.slot_at(pos) {
                        Slot::Pad { next } => pos = next,
                        Slot::Record { next, .. } => {
                            seq = seq.wrapping_add(1);
                            pos = next;
                        }
                        Slot::Uncommitted | Slot::Bad => break,
                    }
                }
                pack(seq, pos.min(tpos))
            }
        };
        // Relaxed: published by the HEAD CAS below (Release) to producers,
        // and by the ACTIVE state store to members.
        cursor.store(start_word, Ordering::Relaxed);
        // SYNC POINT head (group add): Release pairs with the Acquire HEAD
        // load in `refresh_limit`. The generation bump makes any CAS based on
        // a scan that missed this cursor fail.
        let bumped = pack_head(hpos, hseq, hgen.wrapping_add(1));
        if ring
            .head()
            .compare_exchange(v, bumped, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return start_word;
        }
    }
}

/// Unregisters group `g` (the caller checked it has no live members).
pub fn remove_group<R: Region>(ring: &Ring<R>, g: usize) {
    let state = ring.group(g).state();
    let gen = state.load(Ordering::Relaxed) >> 8;
    // Relaxed: the group has no live member, and the state store below
    // publishes these.
    for m in 0..ring.geo.max_members as usize {
        // A member killed asleep is no longer counted.
        ring.clear_sleeper(Sleeper::Member { g, m });
        ring.member(g, m).inflight().store(IDLE, Ordering::Relaxed);
        ring.member(g, m)
            .state()
            .store(MEMBER_FREE, Ordering::Relaxed);
    }
    ack::clear_entries(ring, g);
    // Release: a scan that no longer sees the group was ordered after it.
    state.store(((gen + 1) << 8) | SLOT_FREE, Ordering::Release);
    // Removing a slow group may free space.
    ring.notify(Event::Space);
}

/// Attached members of group `g` as (slot, pid, start_time).
pub fn members<R: Region>(ring: &Ring<R>, g: usize) -> Vec<MemberInfo> {
    (0..ring.geo.max_members as usize)
        .filter(|&m| {
            // Acquire pairs with `attach`'s Release: the identity is visible.
            ring.member(g, m).state().load(Ordering::Acquire) & 0xff == MEMBER_ATTACHED
        })
        .map(|m| {
            let inflight = ring.member(g, m).inflight().load(Ordering::Relaxed);
            MemberInfo {
                slot: m,
                pid: ring.member(g, m).pid().load(Ordering::Relaxed),
                start_time: ring.member(g, m).start().load(Ordering::Relaxed),
                delivered: ring.member(g, m).delivered().load(Ordering::Relaxed),
                inflight: (inflight != IDLE).then_some(inflight),
                unacked: ack::held_by(ring, g, m),
                acked: ring.member(g, m).acked().load(Ordering::Relaxed),
                asleep: ring.is_asleep(Sleeper::Member { g, m }),
            }
        })
        .collect()
}

/// Takes a free member slot of group `g` for process `pid`.
pub fn attach<R: Region>(ring: &Ring<R>, g: usize, pid: u64, start_time: u64) -> Option<usize> {
    let m = (0..ring.geo.max_members as usize).find(|&m| {
        // Acquire pairs with `detach`'s Release: the old owner is done
        // (its entries settled first).
        ring.member(g, m).state().load(Ordering::Acquire) & 0xff == MEMBER_FREE
    })?;
    ring.member(g, m).pid().store(pid, Ordering::Relaxed);
    ring.member(g, m)
        .start()
        .store(start_time, Ordering::Relaxed);
    ring.member(g, m).delivered().store(0, Ordering::Relaxed);
    ring.member(g, m).acked().store(0, Ordering::Relaxed);
    ring.member(g, m).inflight().store(IDLE, Ordering::Relaxed);
    // Release: readers of the state see the identity written above.
    ring.member(g, m)
        .state()
        .store(MEMBER_ATTACHED, Ordering::Release);
    Some(m)
}

/// Frees member slot `m` (its owner leaving, or a dead owner being
/// reaped). Its entries are settled first (`reap_entries`): the messages
/// it held unacknowledged go back to the group for redelivery, keeping
/// their pins; a message it was reading with auto-ack is its own
/// business (at-most-once).
pub fn detach<R: Region>(ring: &Ring<R>, g: usize, m: usize) {
    ack::reap_entries(ring, g, m);
    // Release, as in `release`: pairs with the scan's Acquire hazard
    // load.
    ring.member(g, m).inflight().store(IDLE, Ordering::Release);
    // Release: pairs with `attach`'s Acquire.
    ring.member(g, m)
        .state()
        .store(MEMBER_FREE, Ordering::Release);
    ring.notify(Event::Space);
}

/// Registered groups, for `stat`.
pub fn groups<R: Region>(ring: &Ring<R>) -> Vec<GroupInfo> {
    (0..ring.geo.max_groups as usize)
        .filter(|&g| ring.slot_state(g) == SLOT_ACTIVE)
        .map(|g| {
            // Relaxed: a snapshot for display.
            let (seq, next_pos) = unpack(ring.cursor(g).load(Ordering::Relaxed));
            GroupInfo {
                slot: g,
                name: String::from_utf8_lossy(&ring.slot_name(g)).into_owned(),
                next_seq: seq & !DISK_BIT,
                next_pos,
                members: members(ring, g),
                on_disk: seq & DISK_BIT != 0,
            }
        })
        .collect()
}
