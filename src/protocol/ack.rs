//! Acknowledgements: each group's ack table, the messages its members hold
//! unacknowledged and those waiting for redelivery.
//!
//! # Entries
//! A group slot ends with `ack_entries` entries (layout: `state`, `seq`,
//! `at`, `since`, `pin`). An entry records one message of the group that is
//! not finished: held by a member, or given back for redelivery. A member's
//! unacknowledged messages and the group's pending redeliveries are entries
//! of the same table, each in an entry of its own, so nothing can overwrite
//! an entry that still means something: a member may hold several (its
//! window), ack or nack them in any order, and take a pending one over
//! without touching any other.
//!
//! The state word is `state | owner << 8 | attempts << 24 | ticket << 48`;
//! every transition writes a new word with the ticket one higher. The states:
//!
//! - `FREE`: nothing; its pin is IDLE.
//! - `RESERVED` (owner m): member m's next entry, set aside so that its next
//!   take writes it without a search or a CAS. Pin IDLE.
//! - `TAKING` (owner m): written by m *before* the cursor CAS that takes the
//!   message, with the message's fields and pin, like the inflight hazard
//!   (`group.rs`): a member killed at any instruction leaves either no trace
//!   of the take or a `TAKING` entry for the reaper to judge.
//! - `HELD` (owner m): m has the message.
//! - `PENDING`: to be delivered again, to whichever member of the group asks
//!   first (nacked, its holder left or died, or its ack deadline passed).
//! - `FINISHING` (owner m): m acknowledged it (or gave it up) and is
//!   clearing its pin; FREE or RESERVED next.
//! - `FORWARDING` (owner m, or ORPHAN): m gave the message up and is
//!   publishing its dead letter; `dl_seq`/`dl_pos` say where once claimed,
//!   and `dl_pos` pins it. If m dies, the dead letter's record tells (after
//!   the dead producer's claim is recovered): committed, the message is
//!   done; aborted or never claimed, it is pending again; still uncommitted,
//!   the entry is ORPHAN until a member's upkeep finds out. So a message
//!   given up reaches its dead-letter group exactly once, or stays pending.
//!
//! Who writes what: the owner writes its own `RESERVED`/`TAKING`/`FINISHING` entries
//! with plain stores (nobody else writes them while it lives). Every
//! transition out of `HELD` or `PENDING` is a CAS from the exact word the
//! writer saw, because several parties may race for it: the holder (ack,
//! nack), any member of the group (taking a pending entry over, expiring a
//! hold past its deadline) and the reaper of a dead holder. The loser of a
//! race finds the word changed and acts on nothing: a late ack of an expired
//! hold is refused ([`crate::AckError::Expired`]), never applied to whatever
//! the entry holds now.
//!
//! # Pins
//! A ring message in an entry stays pinned by the entry's own `pin` until
//! the entry is finished: producers' scans read every entry's pin
//! (`scan_groups`, below the group's `entries_hwm`) as they read the
//! members' hazards. A redelivery takes the entry over where it is; a pin
//! moves only when a dead letter is handed over (`begin_hand_over`: the
//! arriving entry's pin is set before the origin's is dropped, and the
//! header's pin-move counter makes scans look again). A message read from the spill log is kept by retention
//! instead (the spiller keeps every segment an entry points into).
//!
//! # Death
//! The reaper (admin lock) settles a dead member's entries: `RESERVED` is
//! freed, and so is `FINISHING` (its pin cleared); `HELD` becomes `PENDING`; `TAKING` becomes `PENDING` if the
//! group's cursor passed the message and no other entry holds it (then the
//! dead member's CAS is the one that took it, or its rival already finished
//! with the message: in that one case it is delivered once more, flagged as
//! redelivered; at-least-once), and is freed otherwise.

use crate::protocol::layout::*;
use crate::protocol::ring::{Ring, Slot};
use crate::protocol::wait::Event;
use crate::region::Region;
use crate::sync::{AtomicU64, Ordering};

/// An unacknowledged message, as an entry records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Sequence number.
    pub seq: u64,
    /// Ring position, or log position | DISK_BIT.
    pub at: u64,
    /// Deliveries before the current one (for a dead letter handed over,
    /// counting from its hand-over: see [`Entry::deliveries_before`]).
    pub attempts: u64,
    /// A dead letter handed over (`hand_over`): the id of the group that
    /// gave it up. `None` for every other message.
    pub origin: Option<u64>,
    /// The message's key hash (0: none), for a group ordered by key.
    pub key: u64,
}

impl Entry {
    /// Whether the message is in the spill log rather than the ring.
    pub fn on_disk(&self) -> bool {
        self.at & DISK_BIT != 0
    }

    /// Deliveries of the message in this group before the current one. A
    /// dead letter handed over arrives PENDING with attempts 0, so its first
    /// take counts one: that one is not a redelivery.
    pub fn deliveries_before(&self) -> u64 {
        self.attempts - u64::from(self.origin.is_some() && self.attempts > 0)
    }
}

/// The origin word of an entry as an id (`None`: not a dead letter).
#[inline]
fn origin_of(word: u64) -> Option<u64> {
    (word & ORIGIN_SET != 0).then_some(word & !ORIGIN_SET)
}

/// A member's hold on an entry: the entry's index, the state word the
/// member's last transition wrote, and the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hold {
    /// Index in the group's ack table.
    pub idx: usize,
    /// The entry's state word as the member left it.
    pub word: u64,
    /// The message.
    pub entry: Entry,
}

/// What the reaper did with a dead member's entries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reaped {
    /// Messages queued for redelivery.
    pub pending: u64,
    /// Announced takes that never happened (the cursor CAS did not, or
    /// lost), and reservations: freed.
    pub dropped: u64,
}

/// The state of an entry's word.
#[inline]
pub const fn word_state(w: u64) -> u64 {
    w & 0xff
}

/// The owning member slot of an entry's word.
#[inline]
pub const fn word_owner(w: u64) -> usize {
    ((w >> 8) & 0xffff) as usize
}

/// The attempts count of an entry's word.
#[inline]
pub const fn word_attempts(w: u64) -> u64 {
    (w >> 24) & MAX_ATTEMPTS_LIMIT
}

/// The name of the state of word `w` (`stat`).
pub fn state_name(w: u64) -> &'static str {
    match word_state(w) {
        ENTRY_FREE => "free",
        ENTRY_RESERVED => "reserved",
        ENTRY_TAKING => "taking",
        ENTRY_HELD => "held",
        ENTRY_PENDING => "pending",
        ENTRY_FINISHING => "finishing",
        ENTRY_FORWARDING if word_owner(w) == ORPHAN => "forwarding (orphan)",
        ENTRY_FORWARDING => "forwarding",
        ENTRY_ARRIVING => "arriving",
        _ => "invalid",
    }
}

/// The word after `w` in state `state`, owned by `owner`, with `attempts`:
/// the ticket one higher.
#[inline]
pub const fn next_word(w: u64, state: u64, owner: usize, attempts: u64) -> u64 {
    let ticket = ((w >> 48) + 1) & 0xffff;
    state | (owner as u64 & 0xffff) << 8 | (attempts & MAX_ATTEMPTS_LIMIT) << 24 | ticket << 48
}

/// The hold member `m` has after taking `(seq, at)` through its reserved
/// entry `hold` (what `ack::took` stores).
#[inline]
pub const fn taken_hold(hold: (usize, u64), m: usize, seq: u64, at: u64, key: u64) -> Hold {
    let (idx, reserved) = hold;
    Hold {
        idx,
        word: next_word(next_word(reserved, ENTRY_TAKING, m, 0), ENTRY_HELD, m, 0),
        entry: Entry {
            seq,
            at,
            attempts: 0,
            origin: None,
            key,
        },
    }
}

/// Entries of group `g` that may be in use: those below its high-water
/// mark (a value from shared memory, so bounded by the table).
#[inline]
pub(crate) fn entries_in_use<R: Region>(ring: &Ring<R>, g: usize) -> usize {
    // Acquire pairs with the AcqRel `fetch_max` in `reserve`: an entry
    // reserved before a take whose cursor CAS this process saw is below
    // the mark it reads.
    let hwm = ring.group(g).entries_hwm().load(Ordering::Acquire);
    hwm.min(ring.geo.ack_entries as u64) as usize
}

/// Entry `i`'s state word. Acquire pairs with the Release (or AcqRel) of
/// whoever wrote it: the fields written before are visible.
#[inline]
pub(crate) fn entry_state_word<R: Region>(ring: &Ring<R>, g: usize, i: usize) -> u64 {
    ring.entry(g, i).state().load(Ordering::Acquire)
}

/// Entry `i`'s message fields (Relaxed, after an Acquire state load).
pub(crate) fn entry_fields<R: Region>(ring: &Ring<R>, g: usize, i: usize, w: u64) -> Entry {
    let key = ring.entry_key(g, i).load(Ordering::Relaxed);
    Entry {
        seq: ring.entry(g, i).seq().load(Ordering::Relaxed),
        at: ring.entry(g, i).at().load(Ordering::Relaxed),
        attempts: word_attempts(w),
        origin: origin_of(ring.entry(g, i).origin().load(Ordering::Relaxed)),
        key,
    }
}

/// Whether word `w` is a valid encoding for this geometry (a corrupt
/// mapping may hold anything: nothing acts on an entry that is not).
fn valid_word<R: Region>(ring: &Ring<R>, w: u64) -> bool {
    let owner_ok = word_owner(w) < ring.geo.max_members as usize;
    match word_state(w) {
        ENTRY_FREE | ENTRY_PENDING => true,
        ENTRY_RESERVED | ENTRY_TAKING | ENTRY_HELD | ENTRY_FINISHING => owner_ok,
        ENTRY_FORWARDING => owner_ok || word_owner(w) == ORPHAN,
        ENTRY_ARRIVING => {
            word_owner(w) < ring.geo.max_groups as usize
                && word_attempts(w) < ring.geo.ack_entries as u64
        }
        _ => false,
    }
}

/// Sets aside a free entry of group `g` for member `m`'s next take.
/// Returns its index and word; `None` when every entry is in use.
pub fn reserve<R: Region>(ring: &Ring<R>, g: usize, m: usize) -> Option<(usize, u64)> {
    for i in 0..ring.geo.ack_entries as usize {
        let st = ring.entry(g, i).state();
        let w = st.load(Ordering::Relaxed);
        if word_state(w) != ENTRY_FREE {
            continue;
        }
        let r = next_word(w, ENTRY_RESERVED, m, 0);
        // Acquire: a free entry's last holder finished with it (its pin
        // cleared) before it freed it.
        if st
            .compare_exchange(w, r, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            continue;
        }
        // A pin left by a holder killed between its ack and the clear.
        ring.entry(g, i).pin().store(IDLE, Ordering::Relaxed);
        // SYNC POINT entries hwm: AcqRel, before any take through this
        // entry; see `entries_in_use`.
        ring.group(g)
            .entries_hwm()
            .fetch_max(i as u64 + 1, Ordering::AcqRel);
        return Some((i, r));
    }
    None
}

/// Gives back member `m`'s reserved entry `(i, reserved)` (its pin is
/// IDLE). Release: pairs with a reserver's Acquire CAS.
pub fn unreserve<R: Region>(ring: &Ring<R>, g: usize, m: usize, hold: (usize, u64)) {
    let (i, reserved) = hold;
    ring.entry(g, i)
        .state()
        .store(next_word(reserved, ENTRY_FREE, m, 0), Ordering::Release);
}

/// Whether group `g`'s ack table has been full (every entry used at
/// some point): members then keep no entry reserved while idle.
#[inline]
pub fn table_tight<R: Region>(ring: &Ring<R>, g: usize) -> bool {
    entries_in_use(ring, g) >= ring.geo.ack_entries as usize
}

/// Announces member `m`'s take of `(seq, at)` through its reserved entry
/// `(i, reserved)`: called before the cursor CAS. `pin` is the ring
/// position to pin (None for a message in the spill log); `since` the
/// monotonic time of the take (0 when the group has no ack deadline:
/// `maintain` starts the clock if one is set later). Relaxed: the
/// cursor CAS (Release) publishes these stores to anyone who sees the
/// cursor past the message, like the inflight hazard.
#[inline]
#[allow(clippy::too_many_arguments)]
pub(crate) fn announce<R: Region>(
    ring: &Ring<R>,
    g: usize,
    m: usize,
    hold: (usize, u64),
    seq: u64,
    at: u64,
    since: u64,
    key: u64,
) {
    let (i, reserved) = hold;
    let e = ring.entry(g, i);
    e.seq().store(seq, Ordering::Relaxed);
    e.at().store(at, Ordering::Relaxed);
    e.since().store(since, Ordering::Relaxed);
    e.origin().store(0, Ordering::Relaxed);
    ring.entry_key(g, i).store(key, Ordering::Relaxed);
    let pin = if at & DISK_BIT == 0 { at } else { IDLE };
    e.pin().store(pin, Ordering::Relaxed);
    e.state()
        .store(next_word(reserved, ENTRY_TAKING, m, 0), Ordering::Relaxed);
}

/// The take announced through `(i, reserved)` happened (its cursor CAS
/// succeeded): the entry is HELD. Returns the hold.
#[inline]
pub(crate) fn took<R: Region>(
    ring: &Ring<R>,
    g: usize,
    m: usize,
    hold: (usize, u64),
    seq: u64,
    at: u64,
    key: u64,
) -> Hold {
    let h = taken_hold(hold, m, seq, at, key);
    // Release: pairs with the Acquire state loads of expirers (`maintain`
    // reads `since` after it).
    ring.entry(g, h.idx)
        .state()
        .store(h.word, Ordering::Release);
    h
}

/// The take announced through `(i, reserved)` did not happen (the CAS
/// failed, or the record was not a message): the entry is reserved again.
/// Relaxed: only this member writes its own TAKING entry, and the
/// reaper of a dead member copes with a stale one.
#[inline]
pub(crate) fn untake<R: Region>(ring: &Ring<R>, g: usize, hold: (usize, u64)) {
    let (i, reserved) = hold;
    ring.entry(g, i).pin().store(IDLE, Ordering::Relaxed);
    ring.entry(g, i).state().store(reserved, Ordering::Relaxed);
}

/// Ends member `m`'s hold `h`: acknowledged (`dead_letter`: given up).
/// With `keep`, the entry stays reserved for `m`'s next take (returned).
/// `Err(())` if the hold was ended by someone else (its deadline passed,
/// or its member was taken for dead): nothing is changed then.
pub fn finish_hold<R: Region>(
    ring: &Ring<R>,
    g: usize,
    m: usize,
    h: &Hold,
    keep: bool,
) -> Result<Option<(usize, u64)>, ()> {
    let st = ring.entry(g, h.idx).state();
    // First the entry becomes ours alone (nobody else writes a
    // FINISHING entry), so that the pin is cleared while no other
    // party can hand the entry on; a member killed in between leaves a
    // FINISHING entry, which its reaper clears. Relaxed on failure: we
    // act on nothing then.
    let finishing = next_word(h.word, ENTRY_FINISHING, m, 0);
    st.compare_exchange(h.word, finishing, Ordering::AcqRel, Ordering::Relaxed)
        .map_err(|_| ())?;
    if !h.entry.on_disk() {
        // SYNC POINT hazard release, as in `group::release`: our reads of
        // the record happen before a producer overwrites it.
        ring.entry(g, h.idx).pin().store(IDLE, Ordering::Release);
    }
    let new = if keep {
        next_word(finishing, ENTRY_RESERVED, m, 0)
    } else {
        next_word(finishing, ENTRY_FREE, m, 0)
    };
    // Release: pairs with a reserver's Acquire CAS: a FREE entry's pin
    // is IDLE.
    st.store(new, Ordering::Release);
    if !h.entry.on_disk() {
        ring.notify(Event::Space);
    }
    Ok(keep.then_some((h.idx, new)))
}

/// Counts an acknowledgement by member `m`.
pub fn note_acked<R: Region>(ring: &Ring<R>, g: usize, m: usize) {
    let acked = ring.member(g, m).acked();
    // Only this member writes its counter: load + store, no RMW needed.
    acked.store(
        acked.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
}

/// Gives hold `h` back for redelivery (a nack, or its member leaving).
/// The pin stays. `Err(())` if the hold was ended by someone else.
pub fn nack_hold<R: Region>(ring: &Ring<R>, g: usize, h: &Hold) -> Result<(), ()> {
    to_pending(ring, g, h.idx, h.word)
}

/// CASes entry `i` from `w` (HELD or TAKING) to PENDING, attempts kept.
fn to_pending<R: Region>(ring: &Ring<R>, g: usize, i: usize, w: u64) -> Result<(), ()> {
    pending_as(ring, g, i, w, word_attempts(w))
}

/// CASes entry `i` from `w` (HELD or TAKING) to PENDING with `attempts`.
fn pending_as<R: Region>(
    ring: &Ring<R>,
    g: usize,
    i: usize,
    w: u64,
    attempts: u64,
) -> Result<(), ()> {
    let p = next_word(w, ENTRY_PENDING, 0, attempts);
    // Release: pairs with the Acquire state loads of `take_pending`; the
    // fields written before are visible to the member that takes it.
    ring.entry(g, i)
        .state()
        .compare_exchange(w, p, Ordering::AcqRel, Ordering::Relaxed)
        .map_err(|_| ())?;
    ring.group(g).pending().fetch_add(1, Ordering::Relaxed);
    ring.notify(Event::Data);
    Ok(())
}

/// Whether group `g` may have entries waiting for redelivery (a hint:
/// Relaxed, one load on the receive path; `maintain` repairs it).
#[inline]
pub fn has_pending<R: Region>(ring: &Ring<R>, g: usize) -> bool {
    ring.group(g).pending().load(Ordering::Relaxed) != 0
}

/// Takes over the oldest PENDING entry of group `g` whose sequence
/// number `skip` does not exclude, for member `m`: on success `m` holds
/// it, with attempts one higher, pinned where it is. `since`: as for
/// `announce`.
pub fn take_pending<R: Region>(
    ring: &Ring<R>,
    g: usize,
    m: usize,
    since: u64,
    skip: impl Fn(u64) -> bool,
) -> Option<Hold> {
    loop {
        if !has_pending(ring, g) {
            return None;
        }
        let (i, w, _) = (0..entries_in_use(ring, g))
            .filter_map(|i| {
                let w = entry_state_word(ring, g, i);
                (word_state(w) == ENTRY_PENDING)
                    .then(|| (i, w, ring.entry(g, i).seq().load(Ordering::Relaxed)))
            })
            .filter(|&(_, _, seq)| !skip(seq))
            .min_by_key(|&(_, _, seq)| seq)?;
        // The hold's start, written before the CAS that makes it ours:
        // an expirer that sees our HELD word sees it (a loser's store
        // changes a winner's by the time between them).
        ring.entry(g, i).since().store(since, Ordering::Relaxed);
        let attempts = match word_attempts(w) {
            NEVER_DELIVERED => 0,
            a => (a + 1).min(NEVER_DELIVERED - 1),
        };
        let held = next_word(w, ENTRY_HELD, m, attempts);
        // SYNC POINT entry take-over: AcqRel. Acquire pairs with the
        // Release that made it PENDING (its fields are visible); Release
        // publishes `since` to expirers.
        if ring
            .entry(g, i)
            .state()
            .compare_exchange(w, held, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            continue;
        }
        // Counted out once it is ours; whoever makes it pending again
        // counts it in again. Saturating: the count is a hint, and a
        // decrement must not wrap it to "always pending".
        let _ = ring
            .group(g)
            .pending()
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(1))
            });
        return Some(Hold {
            idx: i,
            word: held,
            entry: entry_fields(ring, g, i, held),
        });
    }
}

/// Parks member `m`'s hold `h`, just taken from the cursor of a group
/// ordered by key while an earlier message of its key is in the table
/// (order.rs): PENDING, never handed out, so that it is taken over once
/// the earlier one is finished. `Err(())` if the hold was ended by someone
/// else.
pub fn park<R: Region>(ring: &Ring<R>, g: usize, h: &Hold) -> Result<(), ()> {
    // Never handed out: in the word the CAS writes, so that a hold ended
    // by someone else (its deadline) and its entry reused is never marked.
    pending_as(ring, g, h.idx, h.word, NEVER_DELIVERED)?;
    ring.group(g).parked().fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Puts a message member `m` of group `g` took without an entry (an
/// auto-ack take under its hazard, or a read of the log, at `at`) into the
/// ack table as PENDING, never delivered: what a member does with an
/// expired message whose dead letter it could not publish at once, so
/// that it is given up from the table later, like any other (expiry.rs).
/// Returns false if the table has no free entry. The caller still holds
/// its hazard: the entry's pin is stored before the hazard is released, and
/// scans read a group's hazards before its pins (`scan_groups`).
pub fn adopt<R: Region>(ring: &Ring<R>, g: usize, m: usize, seq: u64, at: u64, key: u64) -> bool {
    let Some((i, reserved)) = reserve(ring, g, m) else {
        return false;
    };
    let e = ring.entry(g, i);
    e.seq().store(seq, Ordering::Relaxed);
    e.at().store(at, Ordering::Relaxed);
    e.since().store(0, Ordering::Relaxed);
    e.origin().store(0, Ordering::Relaxed);
    ring.entry_key(g, i).store(key, Ordering::Relaxed);
    let pin = if at & DISK_BIT == 0 { at } else { IDLE };
    e.pin().store(pin, Ordering::Relaxed);
    // Release: pairs with the Acquire state loads of `take_pending`; the
    // fields above are visible to the member that takes it over.
    e.state().store(
        next_word(reserved, ENTRY_PENDING, 0, NEVER_DELIVERED),
        Ordering::Release,
    );
    ring.group(g).pending().fetch_add(1, Ordering::Relaxed);
    ring.notify(Event::Data);
    true
}

/// After group `g` was moved to `from` (`group seek`, admin lock held, no
/// live member): frees the PENDING entries of messages at or after `from`
/// that were never delivered (parked behind their key, or adopted), which
/// the cursor hands out again. Returns how many.
pub(crate) fn drop_undelivered_from<R: Region>(ring: &Ring<R>, g: usize, from: u64) -> u64 {
    let mut n = 0;
    for i in 0..entries_in_use(ring, g) {
        let st = ring.entry(g, i).state();
        let w = entry_state_word(ring, g, i);
        if word_state(w) != ENTRY_PENDING || word_attempts(w) != NEVER_DELIVERED {
            continue;
        }
        if ring.entry(g, i).seq().load(Ordering::Relaxed) < from {
            continue;
        }
        // No member runs (the caller's contract) and the admin lock keeps
        // reapers out: the pin goes first, as a FREE entry's pin is IDLE.
        // Release: as in `finish_hold` (pairs with scans' Acquire).
        ring.entry(g, i).pin().store(IDLE, Ordering::Release);
        let free = next_word(w, ENTRY_FREE, 0, 0);
        // Release: pairs with a reserver's Acquire CAS.
        if st
            .compare_exchange(w, free, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            let _ =
                ring.group(g)
                    .pending()
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |p| {
                        Some(p.saturating_sub(1))
                    });
            n += 1;
        }
    }
    n
}

/// Gives back a pending entry just taken over (`take_pending`) without
/// counting the attempt: a dead letter that cannot be published now.
pub fn put_back<R: Region>(ring: &Ring<R>, g: usize, h: &Hold) -> Result<(), ()> {
    // The next take counts as this one would have: "minus one" for a
    // first delivery (NEVER_DELIVERED).
    let attempts = match word_attempts(h.word) {
        0 => NEVER_DELIVERED,
        a => a - 1,
    };
    let p = next_word(h.word, ENTRY_PENDING, 0, attempts);
    // Release: as in `to_pending`.
    ring.entry(g, h.idx)
        .state()
        .compare_exchange(h.word, p, Ordering::AcqRel, Ordering::Relaxed)
        .map_err(|_| ())?;
    ring.group(g).pending().fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Whether hold `h` is still the member's (nobody expired or reaped it).
pub fn still_held<R: Region>(ring: &Ring<R>, g: usize, h: &Hold) -> bool {
    ring.entry(g, h.idx).state().load(Ordering::Relaxed) == h.word
}

/// Group `g`'s upkeep, run by its members now and then (at least every
/// second while they wait): holds past the group's ack deadline go back
/// for redelivery, and the pending hint is recounted. Returns how many
/// holds expired.
pub fn maintain<R: Region>(ring: &Ring<R>, g: usize, now_mono_ns: u64) -> u64 {
    let wait = ack_wait_ns(ring, g);
    let mut expired = 0;
    let mut pending = 0;
    for i in 0..entries_in_use(ring, g) {
        let w = entry_state_word(ring, g, i);
        match word_state(w) {
            ENTRY_PENDING => pending += 1,
            ENTRY_FORWARDING
                if word_owner(w) == ORPHAN && resolve_forward(ring, g, i, w) == Some(false) =>
            {
                pending += 1
            }
            ENTRY_HELD if wait != 0 && valid_word(ring, w) => {
                let since = ring.entry(g, i).since();
                let t = since.load(Ordering::Relaxed);
                if t == 0 {
                    // Taken while the group had no deadline: its clock
                    // starts now.
                    since.store(now_mono_ns, Ordering::Relaxed);
                } else if now_mono_ns.saturating_sub(t) > wait && to_pending(ring, g, i, w).is_ok()
                {
                    expired += 1;
                    pending += 1;
                }
            }
            _ => {}
        }
    }
    if expired > 0 {
        ring.group(g)
            .expired()
            .fetch_add(expired, Ordering::Relaxed);
    }
    // The hint is only ever made non-zero late (between a CAS to PENDING
    // and its increment) or left non-zero by a member killed between a
    // take-over and its decrement: set it to what is there.
    let hint = ring.group(g).pending();
    if (hint.load(Ordering::Relaxed) == 0) != (pending == 0) {
        hint.store(pending, Ordering::Relaxed);
    }
    expired
}

/// Settles the entries of dead member `m` of group `g` (admin lock held;
/// also for a member leaving, which holds nothing in TAKING): its holds
/// go back for redelivery, its announced takes are judged, its
/// reservations freed.
pub fn reap_entries<R: Region>(ring: &Ring<R>, g: usize, m: usize) -> Reaped {
    let mut out = Reaped::default();
    let n = entries_in_use(ring, g);
    for i in 0..n {
        let w = entry_state_word(ring, g, i);
        if !valid_word(ring, w) || word_owner(w) != m {
            continue;
        }
        match word_state(w) {
            ENTRY_FORWARDING => match resolve_forward(ring, g, i, w) {
                Some(false) => out.pending += 1,
                Some(true) => {}
                None => {
                    // Its dead letter's claim is not settled yet: any
                    // member's upkeep finishes it later.
                    let orphan = next_word(w, ENTRY_FORWARDING, ORPHAN, word_attempts(w));
                    // AcqRel, as every state CAS: Acquire sees the dead
                    // member's fields, Release hands them to the finisher.
                    let _ = ring.entry(g, i).state().compare_exchange(
                        w,
                        orphan,
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    );
                }
            },
            ENTRY_RESERVED | ENTRY_FINISHING => {
                // Release on the pins: pairs with the scans' Acquire pin
                // loads, as in `finish_hold`. Only the dead owner wrote
                // these, and the admin lock keeps other reapers out.
                ring.entry(g, i).dl_pos().store(IDLE, Ordering::Release);
                ring.entry(g, i).pin().store(IDLE, Ordering::Release);
                // Release: pairs with a reserver's Acquire CAS (a FREE
                // entry's pins are IDLE).
                ring.entry(g, i)
                    .state()
                    .store(next_word(w, ENTRY_FREE, m, 0), Ordering::Release);
                out.dropped += 1;
            }
            // An expirer may have been first: then it is pending.
            ENTRY_HELD if to_pending(ring, g, i, w).is_ok() => out.pending += 1,
            ENTRY_TAKING => {
                let e = entry_fields(ring, g, i, w);
                if was_taken(ring, g, i, e.seq) && to_pending(ring, g, i, w).is_ok() {
                    out.pending += 1;
                } else {
                    // Release, both: as for RESERVED above.
                    ring.entry(g, i).pin().store(IDLE, Ordering::Release);
                    ring.entry(g, i)
                        .state()
                        .store(next_word(w, ENTRY_FREE, m, 0), Ordering::Release);
                    out.dropped += 1;
                }
            }
            _ => {}
        }
    }
    if out.pending + out.dropped > 0 {
        ring.notify(Event::Space);
    }
    out
}

/// Member `m` starts giving up its hold `h` to a dead-letter group: the
/// entry is FORWARDING (no deadline ends it now). `Err(())` if the hold
/// was ended by someone else.
pub fn begin_forward<R: Region>(ring: &Ring<R>, g: usize, m: usize, h: &Hold) -> Result<Hold, ()> {
    ring.entry(g, h.idx)
        .dl_seq()
        .store(u64::MAX, Ordering::Relaxed);
    ring.entry(g, h.idx).dl_pos().store(IDLE, Ordering::Relaxed);
    let f = next_word(h.word, ENTRY_FORWARDING, m, word_attempts(h.word));
    // Release: a reaper that finds us dead sees the fields above.
    ring.entry(g, h.idx)
        .state()
        .compare_exchange(h.word, f, Ordering::AcqRel, Ordering::Relaxed)
        .map_err(|_| ())?;
    Ok(Hold { word: f, ..*h })
}

/// The dead letter of FORWARDING entry `i` is claimed as `seq` at ring
/// position `pos`, written, not yet committed: pinned from now on.
/// Relaxed: the commit's Release store publishes both to whoever sees
/// the dead letter, and a scan that sees a cursor past it sees the pin.
pub fn note_forward<R: Region>(ring: &Ring<R>, g: usize, i: usize, seq: u64, pos: u64) {
    ring.entry(g, i).dl_pos().store(pos, Ordering::Relaxed);
    ring.entry(g, i).dl_seq().store(seq, Ordering::Relaxed);
}

/// Ends member `m`'s forward `f`: `published`, the message is done
/// (counted as dead-lettered); otherwise (no room, nothing claimed) it
/// is pending again, this attempt not counted.
pub fn end_forward<R: Region>(ring: &Ring<R>, g: usize, m: usize, f: &Hold, published: bool) {
    let st = ring.entry(g, f.idx).state();
    if !published {
        // Nothing was claimed: no dead letter to pin.
        ring.entry(g, f.idx).dl_pos().store(IDLE, Ordering::Relaxed);
        let _ = put_back(ring, g, f);
        return;
    }
    let finishing = next_word(f.word, ENTRY_FINISHING, m, 0);
    // AcqRel: Release publishes the forward's fields to a reaper that finds
    // us dead in FINISHING; Acquire orders the clears below after the CAS.
    if st
        .compare_exchange(f.word, finishing, Ordering::AcqRel, Ordering::Relaxed)
        .is_err()
    {
        return; // nobody else writes a FORWARDING entry of a live member
    }
    note_dead_lettered(ring, g);
    // Release: as in `finish_hold`.
    ring.entry(g, f.idx).dl_pos().store(IDLE, Ordering::Release);
    if !f.entry.on_disk() {
        ring.entry(g, f.idx).pin().store(IDLE, Ordering::Release);
    }
    // Release: pairs with a reserver's Acquire CAS.
    st.store(next_word(finishing, ENTRY_FREE, m, 0), Ordering::Release);
    ring.notify(Event::Space);
}

/// Settles FORWARDING entry `i` (word `w`) whose member is dead: by its
/// dead letter's record, which `dl_pos` pins. `Some(true)`: published,
/// the entry is freed; `Some(false)`: not, it is pending again; `None`:
/// the claim is not settled yet (or another settler won). The dead
/// member's claim must have been recovered first (admin lock: the
/// reaper; or any member's upkeep, for an ORPHAN entry).
pub(crate) fn resolve_forward<R: Region>(
    ring: &Ring<R>,
    g: usize,
    i: usize,
    w: u64,
) -> Option<bool> {
    let dl_seq = ring.entry(g, i).dl_seq().load(Ordering::Relaxed);
    let dl_pos = ring.entry(g, i).dl_pos().load(Ordering::Relaxed);
    let published = if dl_seq & HANDOVER != 0 {
        resolve_hand_over(ring, g, i, dl_seq)
    } else if dl_seq == u64::MAX || dl_pos == IDLE {
        false
    } else {
        match ring.slot_at(dl_pos) {
            Slot::Record { seq, kind, .. } if seq == dl_seq => kind == KIND_MSG,
            Slot::Uncommitted => return None,
            // Not what it claimed (a damaged queue): deliver again
            // rather than risk a loss.
            _ => false,
        }
    };
    let st = ring.entry(g, i).state();
    if published {
        let done = next_word(w, ENTRY_FINISHING, word_owner(w), 0);
        // AcqRel: as in `end_forward` (one resolver wins the entry).
        st.compare_exchange(w, done, Ordering::AcqRel, Ordering::Relaxed)
            .ok()?;
        note_dead_lettered(ring, g);
        // Release, all three: pins pair with the scans' Acquire loads,
        // the FREE state with a reserver's Acquire CAS (`finish_hold`).
        ring.entry(g, i).dl_pos().store(IDLE, Ordering::Release);
        ring.entry(g, i).pin().store(IDLE, Ordering::Release);
        st.store(next_word(done, ENTRY_FREE, 0, 0), Ordering::Release);
        ring.notify(Event::Space);
    } else {
        // As `put_back`: the give-up's take does not count.
        let attempts = match word_attempts(w) {
            0 => NEVER_DELIVERED,
            a => a - 1,
        };
        let p = next_word(w, ENTRY_PENDING, 0, attempts);
        // The dead letter was aborted or never claimed: nothing to pin
        // (cleared first: a member may take the entry at once).
        ring.entry(g, i).dl_pos().store(IDLE, Ordering::Relaxed);
        // Release: as in `to_pending` (the taker sees the cleared pin);
        // Acquire: the forwarder's fields read above.
        st.compare_exchange(w, p, Ordering::AcqRel, Ordering::Relaxed)
            .ok()?;
        ring.group(g).pending().fetch_add(1, Ordering::Relaxed);
        ring.notify(Event::Data);
    }
    Some(published)
}

/// Member `m` of group `g`, whose forward `f` found no room for a dead
/// letter, starts handing the message itself over to dead-letter group
/// `d`: a free entry of `d`'s table becomes ARRIVING (owner: `g`,
/// attempts: `f`'s index), with the message's fields, its origin and a
/// pin of its own. No copy, so no room in the ring is needed: this is
/// what keeps a ring full of given-up messages from waiting for ever
/// (docs/acks.md). Returns the entry and its word; `None` when `d`'s
/// table is full (the forward is then undone by `end_forward`).
///
/// `f`'s `dl_seq` says where the message goes before any entry of `d`
/// is touched, so a reaper of `m` finds whatever `m` left
/// (`resolve_hand_over`).
pub fn begin_hand_over<R: Region>(
    ring: &Ring<R>,
    g: usize,
    f: &Hold,
    d: usize,
) -> Option<(usize, u64)> {
    let mark = HANDOVER | (d as u64) << 32;
    let src = ring.entry(g, f.idx).dl_seq();
    src.store(mark, Ordering::Relaxed);
    for j in 0..ring.geo.ack_entries as usize {
        let st = ring.entry(d, j).state();
        let w = st.load(Ordering::Relaxed);
        if word_state(w) != ENTRY_FREE {
            continue;
        }
        let a = next_word(w, ENTRY_ARRIVING, g, f.idx as u64);
        // Acquire: as in `reserve` (a free entry's pins are IDLE).
        if st
            .compare_exchange(w, a, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            continue;
        }
        let e = &f.entry;
        ring.entry(d, j).seq().store(e.seq, Ordering::Relaxed);
        ring.entry(d, j).at().store(e.at, Ordering::Relaxed);
        ring.entry(d, j).since().store(0, Ordering::Relaxed);
        ring.entry_key(d, j).store(0, Ordering::Relaxed);
        ring.entry(d, j).dl_seq().store(u64::MAX, Ordering::Relaxed);
        ring.entry(d, j).dl_pos().store(IDLE, Ordering::Relaxed);
        ring.entry(d, j)
            .origin()
            .store(ring.group_id(g) | ORIGIN_SET, Ordering::Relaxed);
        // The message gets a second pin, here; `f`'s is cleared only
        // once this one is counted (`end_forward`).
        let pin = if e.on_disk() { IDLE } else { e.at };
        ring.entry(d, j).pin().store(pin, Ordering::Relaxed);
        // SYNC POINT entries hwm: as in `reserve`; before the bump below,
        // so that a scan that sees the bump reads this entry.
        ring.group(d)
            .entries_hwm()
            .fetch_max(j as u64 + 1, Ordering::AcqRel);
        if pin != IDLE {
            // SYNC POINT pin move: AcqRel. A scan that read this pin (or
            // its hwm) before they were stored and `f`'s pin after it was
            // cleared would miss both. Release: a scan whose first load
            // of the counter sees this bump sees the pin and the hwm
            // above. One that loaded the count before it loads it again
            // after its pins, and if it saw `f`'s pin cleared (a Release
            // store after this), that load sees the bump: it scans again.
            ring.header().pin_moves().fetch_add(1, Ordering::AcqRel);
        }
        src.store(mark | (j as u64 + 1), Ordering::Relaxed);
        return Some((j, a));
    }
    src.store(u64::MAX, Ordering::Relaxed);
    None
}

/// Commits the hand-over `(j, a)` of `begin_hand_over` into group `d`:
/// the entry becomes PENDING there, a dead letter for `d`'s members.
/// Returns false if `d`'s table was cleared meanwhile (the group was
/// removed): the entry is gone and the forward must be undone. The
/// forward's own entry is then finished with `end_forward(.., true)`.
pub fn commit_hand_over<R: Region>(ring: &Ring<R>, d: usize, (j, a): (usize, u64)) -> bool {
    let p = next_word(a, ENTRY_PENDING, 0, 0);
    // Release: pairs with the Acquire state loads of `take_pending`.
    if ring
        .entry(d, j)
        .state()
        .compare_exchange(a, p, Ordering::AcqRel, Ordering::Relaxed)
        .is_err()
    {
        return false;
    }
    ring.group(d).pending().fetch_add(1, Ordering::Relaxed);
    ring.notify(Event::Data);
    true
}

/// Undoes a hand-over whose commit failed or was never tried: `f`'s
/// mark first says "nothing claimed" (a reaper then looks for an
/// ARRIVING entry itself), then the arrival, if still there, is freed.
pub fn abort_hand_over<R: Region>(
    ring: &Ring<R>,
    g: usize,
    f: &Hold,
    d: usize,
    arrival: Option<(usize, u64)>,
) {
    ring.entry(g, f.idx)
        .dl_seq()
        .store(HANDOVER | (d as u64) << 32, Ordering::Relaxed);
    if let Some((j, a)) = arrival {
        free_arrival(ring, d, j, a);
    }
    ring.entry(g, f.idx)
        .dl_seq()
        .store(u64::MAX, Ordering::Relaxed);
}

/// Frees ARRIVING entry `j` of group `d` (word `a`), pin first.
fn free_arrival<R: Region>(ring: &Ring<R>, d: usize, j: usize, a: u64) {
    let st = ring.entry(d, j).state();
    if st.load(Ordering::Relaxed) != a {
        return;
    }
    // Release: as in `finish_hold`. The message's other pin (the
    // forward's entry) still holds it.
    ring.entry(d, j).pin().store(IDLE, Ordering::Release);
    // Release: pairs with a reserver's Acquire CAS.
    let _ = st.compare_exchange(
        a,
        next_word(a, ENTRY_FREE, 0, 0),
        Ordering::Release,
        Ordering::Relaxed,
    );
}

/// Settles a hand-over whose member died (`resolve_forward`, `dl_seq`
/// with HANDOVER): true if the dead-letter group got the message
/// (its entry is no longer the ARRIVING one this forward made), false
/// if not (any such arrival is freed).
fn resolve_hand_over<R: Region>(ring: &Ring<R>, g: usize, i: usize, dl_seq: u64) -> bool {
    let d = ((dl_seq >> 32) & 0xffff) as usize;
    let j1 = (dl_seq & 0xffff_ffff) as usize;
    if d >= ring.geo.max_groups as usize || j1 > ring.geo.ack_entries as usize {
        return false; // damaged: deliver again rather than risk a loss
    }
    let ours = |j: usize| {
        let a = entry_state_word(ring, d, j);
        (word_state(a) == ENTRY_ARRIVING && word_owner(a) == g && word_attempts(a) == i as u64)
            .then_some(a)
    };
    if j1 == 0 {
        // Killed before its claim was noted: a claimed entry, if any,
        // is ARRIVING and names this forward (perhaps above the
        // table's high-water mark, not raised yet).
        for j in 0..ring.geo.ack_entries as usize {
            if let Some(a) = ours(j) {
                free_arrival(ring, d, j, a);
            }
        }
        return false;
    }
    match ours(j1 - 1) {
        Some(a) => {
            free_arrival(ring, d, j1 - 1, a);
            false
        }
        None => true,
    }
}

/// Whether the take of `seq` that entry `i` announced happened: the
/// group's cursor passed it and no other entry holds it (a rival that
/// won the cursor CAS and holds or gave back the message). A rival still
/// TAKING is no proof either way: the message is then redelivered
/// (at-least-once) rather than risked.
fn was_taken<R: Region>(ring: &Ring<R>, g: usize, i: usize, seq: u64) -> bool {
    // Acquire pairs with the members' cursor CAS (Release), which follows
    // their announcement: a cursor past `seq` was moved by a take we see.
    let (cseq, _) = unpack(ring.cursor(g).load(Ordering::Acquire));
    if seq >= cseq & !DISK_BIT {
        return false;
    }
    !(0..entries_in_use(ring, g)).any(|j| {
        j != i && {
            let w = entry_state_word(ring, g, j);
            matches!(word_state(w), ENTRY_HELD | ENTRY_PENDING)
                && ring.entry(g, j).seq().load(Ordering::Relaxed) == seq
        }
    })
}

/// The entries of group `g` that are not free, as (index, word, entry).
pub fn entries<R: Region>(ring: &Ring<R>, g: usize) -> Vec<(usize, u64, Entry)> {
    (0..entries_in_use(ring, g))
        .filter_map(|i| {
            let w = entry_state_word(ring, g, i);
            (word_state(w) != ENTRY_FREE).then(|| (i, w, entry_fields(ring, g, i, w)))
        })
        .collect()
}

/// Sequence numbers member `m` of group `g` holds (HELD entries), in
/// order.
pub fn held_by<R: Region>(ring: &Ring<R>, g: usize, m: usize) -> Vec<u64> {
    let mut v: Vec<u64> = entries(ring, g)
        .into_iter()
        .filter(|(_, w, _)| word_state(*w) == ENTRY_HELD && word_owner(*w) == m)
        .map(|(_, _, e)| e.seq)
        .collect();
    v.sort_unstable();
    v
}

/// Lowest log position an entry of any group points into, for retention.
pub fn min_disk_entry<R: Region>(ring: &Ring<R>) -> Option<u64> {
    let mut min = None;
    for g in 0..ring.geo.max_groups as usize {
        if !ring.is_active(g) {
            continue;
        }
        for (_, w, e) in entries(ring, g) {
            let live = matches!(
                word_state(w),
                ENTRY_TAKING | ENTRY_HELD | ENTRY_PENDING | ENTRY_FORWARDING | ENTRY_ARRIVING
            );
            if live && e.on_disk() {
                let at = e.at & !DISK_BIT;
                min = Some(min.map_or(at, |x: u64| x.min(at)));
            }
        }
    }
    min
}

/// Lowest ring position pinned by an entry of group `g` (IDLE: none).
#[inline]
pub(crate) fn min_entry_pin<R: Region>(ring: &Ring<R>, g: usize) -> u64 {
    let mut min = IDLE;
    for i in 0..entries_in_use(ring, g) {
        // Acquire pairs with the Release pin clears: the holder's reads
        // of the record happen before anything we then overwrite.
        min = min.min(ring.entry(g, i).pin().load(Ordering::Acquire));
        min = min.min(ring.entry(g, i).dl_pos().load(Ordering::Acquire));
    }
    min
}

/// Clears group `g`'s ack table (group add and remove, admin lock held).
pub(crate) fn clear_entries<R: Region>(ring: &Ring<R>, g: usize) {
    for i in 0..ring.geo.ack_entries as usize {
        ring.entry(g, i).pin().store(IDLE, Ordering::Relaxed);
        ring.entry(g, i).dl_pos().store(IDLE, Ordering::Relaxed);
        let w = ring.entry(g, i).state().load(Ordering::Relaxed);
        ring.entry(g, i)
            .state()
            .store(next_word(w, ENTRY_FREE, 0, 0), Ordering::Relaxed);
    }
    ring.group(g).entries_hwm().store(0, Ordering::Relaxed);
}

/// Deliveries after which group `g` gives a message up (0: never).
pub fn max_attempts<R: Region>(ring: &Ring<R>, g: usize) -> u64 {
    ring.group(g).max_attempts().load(Ordering::Relaxed)
}

/// Sets group `g`'s delivery limit and dead-letter group (admin lock held).
pub fn set_redelivery<R: Region>(
    ring: &Ring<R>,
    g: usize,
    max_attempts: u64,
    dead_letter: Option<usize>,
) {
    if dead_letter.is_some() {
        ring.keep_dead_letter_room();
    }
    ring.group(g)
        .max_attempts()
        .store(max_attempts.min(MAX_ATTEMPTS_LIMIT), Ordering::Relaxed);
    ring.group(g)
        .dead_letter()
        .store(dead_letter.map_or(0, |d| d as u64 + 1), Ordering::Relaxed);
}

/// Messages a member of group `g` may hold unacknowledged (at least 1).
pub fn max_unacked<R: Region>(ring: &Ring<R>, g: usize) -> u64 {
    ring.group(g)
        .max_unacked()
        .load(Ordering::Relaxed)
        .clamp(1, ring.geo.ack_entries as u64)
}

/// Group `g`'s ack deadline in ns (0: none).
pub fn ack_wait_ns<R: Region>(ring: &Ring<R>, g: usize) -> u64 {
    ring.group(g).ack_wait().load(Ordering::Relaxed)
}

/// Sets group `g`'s window and ack deadline (admin lock held).
pub fn set_ack_policy<R: Region>(ring: &Ring<R>, g: usize, max_unacked: u64, ack_wait_ns: u64) {
    ring.group(g)
        .max_unacked()
        .store(max_unacked, Ordering::Relaxed);
    ring.group(g)
        .ack_wait()
        .store(ack_wait_ns, Ordering::Relaxed);
}

/// Group `g`'s acknowledgement counters: (pending, redelivered,
/// dead-lettered, max_attempts, dead-letter group slot).
pub fn ack_stats<R: Region>(ring: &Ring<R>, g: usize) -> (u64, u64, u64, u64, Option<usize>) {
    let s = ring.group(g);
    let w = |word: &AtomicU64| word.load(Ordering::Relaxed);
    let dl = w(s.dead_letter());
    (
        w(s.pending()),
        w(s.redelivered()),
        w(s.dead_lettered()),
        w(s.max_attempts()),
        (dl != 0).then(|| dl as usize - 1),
    )
}

/// Holds of group `g` ended by its ack deadline.
pub fn expired<R: Region>(ring: &Ring<R>, g: usize) -> u64 {
    ring.group(g).expired().load(Ordering::Relaxed)
}

/// Counts a message of group `g` given up after too many attempts.
pub fn note_dead_lettered<R: Region>(ring: &Ring<R>, g: usize) {
    ring.group(g)
        .dead_lettered()
        .fetch_add(1, Ordering::Relaxed);
}

/// The dead-letter group that group `g` sends what it gives up to: a
/// slot read from shared memory, so checked (an active dead-letter group).
pub fn dead_letter_target<R: Region>(ring: &Ring<R>, g: usize) -> Option<usize> {
    let d = ring.group(g).dead_letter().load(Ordering::Relaxed);
    let d = (d as usize).checked_sub(1)?;
    (d < ring.geo.max_groups as usize && ring.is_active(d) && ring.dl_only(d)).then_some(d)
}

/// Counts a redelivery handed to a member of group `g`.
pub fn note_redelivered<R: Region>(ring: &Ring<R>, g: usize) {
    ring.group(g).redelivered().fetch_add(1, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_tickets_wrap() {
        let w = next_word(0, ENTRY_HELD, 1023, 77);
        assert_eq!(
            (word_state(w), word_owner(w), word_attempts(w)),
            (ENTRY_HELD, 1023, 77)
        );
        assert_eq!(w >> 48, 1);
        let max = 0xffff_u64 << 48 | ENTRY_FREE;
        assert_eq!(next_word(max, ENTRY_FREE, 0, 0) >> 48, 0);
        let sat = next_word(0, ENTRY_PENDING, 0, u64::MAX);
        assert_eq!(word_attempts(sat), MAX_ATTEMPTS_LIMIT);
        assert_eq!(word_state(sat), ENTRY_PENDING);
    }
}
