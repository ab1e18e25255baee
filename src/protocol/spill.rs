//! The spill hand-off: how a group that fell behind leaves the ring for the
//! spill log and comes back, in shared memory. (The log's file format is in
//! `spill/log.rs`; the rounds that drive this protocol are in `spill/rounds.rs`.)
//!
//! # The front
//! `FRONT = (seq, pos)` sits in the header's spill slot, which has a state word
//! like a group slot's. While the slot is ACTIVE, every record below FRONT
//! that a group on disk needs is in the log, and producers treat FRONT as one
//! more group cursor: they never overwrite a record at or above it. Only the
//! spiller (the process holding the spill lock) writes FRONT: it copies the
//! committed records from FRONT on into the log, publishes the log's new end,
//! then moves FRONT past them with a Release store. The copy needs no hazard:
//! FRONT itself keeps producers off those records until the store, and a
//! producer that sees the new FRONT (Acquire, in its scan) sees the copy done.
//!
//! FRONT is activated like a group added at `earliest` (state CREATING, cursor
//! at HEAD, HEAD's generation bumped by CAS: see `group.rs`), so no producer
//! with a stale scan can move HEAD past it.
//!
//! # Leaving the ring
//! A group's cursor word is `(seq, pos)` on the ring and `(seq | DISK_BIT,
//! log position of seq)` on disk. The spiller moves a group whose messages
//! from `seq` on are logged by one CAS on its cursor, from `(seq, pos)` to
//! `(seq | DISK_BIT, at)`. Members take from the ring by CAS on the same word,
//! so either the member's CAS or the spiller's wins, and nothing is taken
//! twice or skipped. The spiller's CAS is an RMW in the cursor's release
//! sequence, so a producer's scan that sees the group on disk (and skips it)
//! still sees every hazard a member stored before taking a ring record.
//!
//! # On disk
//! Members read the record at the cursor's log position, check it, and CAS the
//! cursor to `(seq + 1 | DISK_BIT, at + size)`: the CAS decides which member
//! delivers it. The log below the published `log_end` never changes, and a
//! segment is deleted only once every group's cursor is past it.
//!
//! # Back to the ring
//! A group that has read the whole log has `seq == FRONT.seq`. The spiller
//! (holding the lock, so FRONT does not move) CASes its cursor to FRONT. The
//! records from FRONT on are in the ring, protected by FRONT until then and by
//! the group's own cursor after. A producer's scan loads FRONT before the group
//! cursors: if it sees FRONT moved on, it sees the rejoin that came before the
//! move (Acquire/Release through FRONT); if it sees the old FRONT, that alone
//! keeps it below the group's records. FRONT is retired (state FREE) once no
//! group is on disk, unless the log is kept as a journal.

use crate::protocol::group;
use crate::protocol::group::StartAt;
use crate::protocol::layout::*;
use crate::protocol::ring::{Ring, Slot};
use crate::protocol::wait::Event;
use crate::region::Region;
use crate::sync::Ordering;

/// Where the spill log ends: records below it may be read from the
/// segment files.
#[inline]
pub fn log_end<R: Region>(ring: &Ring<R>) -> u64 {
    // SYNC POINT log_end: Acquire pairs with the Release in
    // `publish_log_end`: the records below it were written (write(2)
    // returned) before the reader looks.
    ring.header().log_end().load(Ordering::Acquire)
}

/// Publishes `end` as the spill log's end (the spill lock held): every
/// record below it is in the files.
pub fn publish_log_end<R: Region>(ring: &Ring<R>, end: u64) {
    // SYNC POINT log_end: Release pairs with the Acquire in `log_end`.
    ring.header().log_end().store(end, Ordering::Release);
}

/// FRONT as `(seq, pos)` when active.
pub fn front_now<R: Region>(ring: &Ring<R>) -> Option<(u64, u64)> {
    // Acquire pairs with the Release state store in `activate_front`.
    let st = ring.spill_state().load(Ordering::Acquire) & 0xff;
    (st == SLOT_ACTIVE).then(|| unpack(ring.front().load(Ordering::Acquire)))
}

/// Whether FRONT is active: a hint for producers deciding whether to run a
/// round. Relaxed: the round itself reads the state under the spill lock,
/// so a stale answer only moves a round earlier or later.
pub(crate) fn spilling<R: Region>(ring: &Ring<R>) -> bool {
    ring.spill_state().load(Ordering::Relaxed) & 0xff == SLOT_ACTIVE
}

/// Activates FRONT at HEAD (spill lock held). Returns its `(seq, pos)`.
pub fn activate_front<R: Region>(ring: &Ring<R>) -> (u64, u64) {
    let state = ring.spill_state();
    let gen = state.load(Ordering::Relaxed) >> 8;
    // Parked at the tail until the start is known, as in `add_group`.
    ring.front()
        .store(ring.tail().load(Ordering::Relaxed), Ordering::Relaxed);
    // Release: a scan that sees CREATING sees the parked value.
    state.store(((gen + 1) << 8) | SLOT_CREATING, Ordering::Release);
    let start = group::start_cursor(ring, ring.front(), StartAt::Earliest);
    // Release: pairs with the Acquire in `front_now`.
    state.store(((gen + 1) << 8) | SLOT_ACTIVE, Ordering::Release);
    unpack(start)
}

/// Retires FRONT: producers stop counting it (spill lock held, no group on
/// disk).
pub fn retire_front<R: Region>(ring: &Ring<R>) {
    let state = ring.spill_state();
    let gen = state.load(Ordering::Relaxed) >> 8;
    // Release: a scan that no longer sees FRONT sees every rejoin before it.
    state.store(((gen + 1) << 8) | SLOT_FREE, Ordering::Release);
    ring.notify(Event::Space);
}

/// Moves FRONT to `(seq, pos)`, past records now in the log (spill lock
/// held).
pub fn advance_front<R: Region>(ring: &Ring<R>, seq: u64, pos: u64) {
    // SYNC POINT front: Release pairs with the Acquire load in
    // `front_for_scan`: our copy of the records below `pos` happens before
    // any producer that sees this value overwrites them.
    ring.front().store(pack(seq, pos), Ordering::Release);
    ring.notify(Event::Space);
}

/// Whether a ring too full for a claim ending at `need_end` waits for an
/// operation in progress rather than for a group's backlog: the oldest
/// record it holds is a claim not committed yet, or HEAD alone would leave
/// room and only a member's hazard (a message being read) is in the way.
pub fn full_behind_operation<R: Region>(ring: &Ring<R>, need_end: u64) -> bool {
    let (_, hpos) = ring.head_now();
    let (_, tpos) = ring.tail_now();
    (hpos < tpos && ring.slot_at(hpos) == Slot::Uncommitted)
        || (need_end <= hpos.saturating_add(ring.geo.capacity)
            && group::scan_groups(ring).min_inflight < hpos)
}

/// Copies the payload of the record at `pos` (length `len`, checked by
/// `slot_at`) into `dst`.
///
/// # Safety
/// The record must be committed and protected from overwrite for the
/// duration (FRONT under the spill lock, or a hazard).
pub unsafe fn copy_payload<R: Region>(ring: &Ring<R>, pos: u64, dst: &mut [u8]) {
    // SAFETY: the caller's guarantee; `len` fits before the ring's end.
    unsafe { ring.region.read(ring.ring_at(pos) + RECORD_HEADER, dst) }
}

/// Moves group `g` onto the log if its cursor is on the ring below `below`
/// and `logged(seq)` gives the log position of its next message. Returns
/// whether it moved.
pub fn transfer<R: Region>(
    ring: &Ring<R>,
    g: usize,
    below: u64,
    mut logged: impl FnMut(u64) -> Option<u64>,
) -> bool {
    let cursor = ring.cursor(g);
    loop {
        // Acquire pairs with the members' cursor CAS.
        let cur = cursor.load(Ordering::Acquire);
        let (seq, pos) = unpack(cur);
        if seq & DISK_BIT != 0 || pos >= below {
            return false;
        }
        let Some(at) = logged(seq) else {
            return false;
        };
        // SYNC POINT hazard: AcqRel, an RMW in the cursor's release sequence
        // (see the module docs).
        if cursor
            .compare_exchange(
                cur,
                pack(seq | DISK_BIT, at),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
        {
            ring.notify(Event::Space);
            return true;
        }
    }
}

/// Moves group `g` back onto the ring at FRONT if it has read the whole
/// log (spill lock held). Returns whether it moved.
pub fn rejoin<R: Region>(ring: &Ring<R>, g: usize) -> bool {
    let Some((fseq, fpos)) = front_now(ring) else {
        return false;
    };
    let cursor = ring.cursor(g);
    // Acquire pairs with the members' cursor CAS.
    let cur = cursor.load(Ordering::Acquire);
    let (seq, _) = unpack(cur);
    if seq & DISK_BIT == 0 || seq & !DISK_BIT != fseq {
        return false;
    }
    // AcqRel: in the cursor's release sequence; the Release half is what
    // members that then take from the ring acquire.
    let ok = cursor
        .compare_exchange(cur, pack(fseq, fpos), Ordering::AcqRel, Ordering::Acquire)
        .is_ok();
    if ok {
        ring.notify(Event::Data);
    }
    ok
}

/// Member side, on disk: claims the record the group's cursor `cur` points
/// at, which the caller read from the log (sequence number `seq`, `size`
/// bytes in the log). Returns false if another member or the spiller moved
/// the cursor first.
pub fn disk_advance<R: Region>(ring: &Ring<R>, g: usize, cur: u128, seq: u64, size: u64) -> bool {
    let (_, at) = unpack(cur);
    let next = pack(seq.wrapping_add(1) | DISK_BIT, at.wrapping_add(size));
    // AcqRel, like every cursor write: one release sequence.
    ring.cursor(g)
        .compare_exchange(cur, next, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
}

/// Points group `g` at `word` (a ring or disk cursor), for `seek`; the
/// caller holds the admin and spill locks and has checked the target.
pub fn set_cursor<R: Region>(ring: &Ring<R>, g: usize, word: u128) {
    let cursor = ring.cursor(g);
    // Acquire pairs with the members' CAS.
    let mut cur = cursor.load(Ordering::Acquire);
    // A CAS loop rather than a store: an RMW, so the cursor's release
    // sequence continues (members' hazards stay visible to scans).
    while let Err(now) = cursor.compare_exchange(cur, word, Ordering::AcqRel, Ordering::Acquire) {
        cur = now;
    }
    ring.notify(Event::Space);
    ring.notify(Event::Data);
}
