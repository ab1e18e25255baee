//! A member's holds in its group's ack table, redeliveries taken over from
//! it, and messages given up to the dead-letter group (ack.rs).

use super::log::*;
use super::record::*;
use crate::error::{Reason, RecvError, SpillError};
use crate::protocol::ack::Hold;
use crate::protocol::group::Taken;
use crate::protocol::layout::*;
use crate::protocol::ring::Slot;
use crate::protocol::{ack, claim, group, order, registry};
use crate::queue::Queue;
use crate::sync::Ordering;

/// A member's entries in its group's ack table (ack.rs).
#[derive(Default)]
pub(super) struct Acks {
    /// Messages it holds unacknowledged (explicit ack), in the order taken.
    pub(super) held: Vec<Hold>,
    /// A redelivery taken with auto-ack, finished once copied.
    pub(super) auto: Option<Hold>,
    /// The entry set aside for its next explicit take.
    pub(super) reserved: Option<(usize, u64)>,
    /// Its own window, if it set one (the group's otherwise).
    pub(super) window: Option<u64>,
    /// Takes left until the next look at the clock for upkeep.
    pub(super) countdown: u32,
    /// Monotonic ns of the next upkeep (0: not yet scheduled).
    pub(super) next_upkeep: u64,
    /// Messages whose holds others ended (the ack deadline), most recent
    /// last: an ack or nack of one says so rather than "not held".
    pub(super) expired: std::collections::VecDeque<u64>,
}

/// How many ended holds a member remembers, to answer a late ack.
pub(super) const EXPIRED_KEPT: usize = 1024;

impl Acks {
    /// Drops the holds others ended from `held`, remembering them.
    pub(super) fn prune(
        &mut self,
        ring: &crate::protocol::ring::Ring<crate::os::mapping::RawRegion>,
        g: usize,
    ) {
        let expired = &mut self.expired;
        self.held.retain(|h| {
            let still = ack::still_held(ring, g, h);
            if !still {
                if expired.len() == EXPIRED_KEPT {
                    expired.pop_front();
                }
                expired.push_back(h.entry.seq);
            }
            still
        });
    }
}

/// Takes over a message of group `g` waiting for redelivery, if any: the
/// member then holds it (with auto-ack, until it is copied). Messages past
/// the group's `max_attempts` are given up on the way: published to its
/// dead-letter group if it has one (then finished), otherwise only counted.
/// A dead letter that cannot be published now stays pending, for a later
/// receive; this one goes on to other pending messages and the cursor.
pub(super) fn take_redelivery(
    q: &Queue,
    g: usize,
    m: usize,
    disk: &mut Option<Disk>,
    acks: &mut Acks,
    explicit: bool,
) -> Result<Option<Got>, RecvError> {
    let ring = q.ring();
    let since = match ack::ack_wait_ns(ring, g) {
        0 => 0,
        _ => crate::os::clock::monotonic_ns(),
    };
    // Dead letters that found no room in this poll.
    let mut no_room: Vec<u64> = Vec::new();
    // In a group ordered by key: messages behind an earlier one of their key.
    let blocked = order::blocked(ring, g);
    while let Some(h) = ack::take_pending(ring, g, m, since, |s| {
        no_room.contains(&s) || blocked.contains(&s)
    }) {
        let max = ack::max_attempts(ring, g);
        let why = if max != 0 && h.entry.deliveries_before() >= max {
            Some(GiveUp::Attempts)
        } else {
            None
        };
        let got = match why {
            Some(_) => None,
            None => Some(redelivered(q, g, disk, &h)),
        };
        let why = match got {
            Some(Ok(got)) if expired(ring, crate::protocol::ttl::group_ttl(ring, g), &got) => {
                Some(GiveUp::Expired)
            }
            _ => why,
        };
        if let Some(why) = why {
            if !give_up(q, g, m, disk, &h, why)? {
                no_room.push(h.entry.seq);
            }
            continue;
        }
        match got.expect("taken over, not given up") {
            Ok(got) => {
                group::note_delivered(ring, g, m, 1);
                if h.entry.deliveries_before() > 0 {
                    ack::note_redelivered(ring, g);
                }
                if explicit {
                    acks.held.push(h);
                } else {
                    acks.auto = Some(h);
                }
                return Ok(Some(got));
            }
            Err((e, keep)) => {
                if keep {
                    // The log could not be read now: pending again, for
                    // whoever tries next (the error says why).
                    let _ = ack::put_back(ring, g, &h);
                } else if ack::finish_hold(ring, g, m, &h, false).is_ok() {
                    // Gone for good (a damaged queue): not held by anyone.
                }
                return Err(e);
            }
        }
    }
    Ok(None)
}

/// Why a member gives a message up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum GiveUp {
    /// Delivered `max_attempts` times already.
    Attempts,
    /// Its time to live ran out (ttl.rs).
    Expired,
}

/// Member `m` gives up its hold `h` on a message of group `g` (taken over
/// or just taken): published to the group's dead-letter group if it has
/// one (exactly once, ack.rs), then finished; otherwise finished and
/// counted. Returns false if the dead letter found no room now: the message
/// is pending again, for a later receive (this member's or another's).
pub(super) fn give_up(
    q: &Queue,
    g: usize,
    m: usize,
    disk: &mut Option<Disk>,
    h: &Hold,
    why: GiveUp,
) -> Result<bool, RecvError> {
    let ring = q.ring();
    // Counted once settled; parked messages of its key may go now.
    let count = || {
        if why == GiveUp::Expired {
            crate::protocol::ttl::note_expired(ring, g);
        }
        order::finished(ring, g);
    };
    let Some(d) = ack::dead_letter_target(ring, g) else {
        // No dead-letter group: only counted.
        if ack::finish_hold(ring, g, m, h, false).is_ok() {
            ack::note_dead_lettered(ring, g);
            count();
        }
        return Ok(true);
    };
    // Its deadline cannot end it from here on. Ended by someone else
    // already: not ours to give up.
    let Ok(f) = ack::begin_forward(ring, g, m, h) else {
        return Ok(true);
    };
    match forward_dead_letter(q, g, disk, &f, d) {
        Ok(true) => {
            ack::end_forward(ring, g, m, &f, true);
            count();
            Ok(true)
        }
        Ok(false) if hand_over(ring, g, &f, d) => {
            ack::end_forward(ring, g, m, &f, true);
            count();
            Ok(true)
        }
        Ok(false) => {
            // Pending again, untouched; retried on a later receive (and by
            // other members).
            ack::end_forward(ring, g, m, &f, false);
            Ok(false)
        }
        Err(e) => {
            ack::end_forward(ring, g, m, &f, false);
            Err(e)
        }
    }
}

/// Hands the message of forward `f` (group `g` gives it up; its dead letter
/// found no room in the ring) over to dead-letter group `d` as it is: its
/// entry moves into `d`'s ack table, pinning the original record (ack.rs,
/// `begin_hand_over`). Returns false if `d`'s table is full (or the message
/// is itself a dead letter handed over, which moves only once): the forward
/// is then undone, and retried later.
pub(super) fn hand_over(
    ring: &crate::protocol::ring::Ring<crate::os::mapping::RawRegion>,
    g: usize,
    f: &Hold,
    d: usize,
) -> bool {
    if f.entry.origin.is_some() {
        return false;
    }
    let Some(arrival) = ack::begin_hand_over(ring, g, f, d) else {
        return false;
    };
    crate::spill::rounds::crash_point("hand-over-arriving");
    if !ack::commit_hand_over(ring, d, arrival) {
        ack::abort_hand_over(ring, g, f, d, Some(arrival));
        return false;
    }
    crate::spill::rounds::crash_point("hand-over-committed");
    true
}

/// Publishes the message of forward `h` (group `g` gives it up) to
/// dead-letter group `d`, addressed to it alone. Returns false if there is
/// no room for it now (producers keep room for dead letters, ring.rs, so
/// this waits only for other groups and holds). The entry records where the
/// dead letter is claimed before it is committed (ack.rs), so a member
/// killed at any point leaves it either published once or pending.
pub(super) fn forward_dead_letter(
    q: &Queue,
    g: usize,
    disk: &mut Option<Disk>,
    h: &Hold,
    d: usize,
) -> Result<bool, RecvError> {
    let got = redelivered(q, g, disk, h).map_err(|(e, _)| e)?;
    publish_letter(q, g, disk, got, h.entry.seq, Some(h.idx), d)
}

/// Publishes message `got` of group `g` (sequence number `seq`, which this
/// member holds: by entry `entry` if given, else by its hazard) as a dead
/// letter to group `d`. Returns false if there is no room for it now.
pub(super) fn publish_letter(
    q: &Queue,
    g: usize,
    disk: &Option<Disk>,
    got: Got,
    seq: u64,
    entry: Option<usize>,
    d: usize,
) -> Result<bool, RecvError> {
    let mut ring_copy = Vec::new();
    let (payload, tag): (&[u8], _) = match got {
        Got::Ring(t, r) => {
            ring_copy.resize(t.payload_len(), 0);
            // SAFETY: what this member holds the message by (the entry
            // taken over, or its hazard) pins the record until the caller
            // settles it, after this returns.
            unsafe { group::read_payload(q.ring(), &t, &mut ring_copy) };
            (&ring_copy, ring_meta(q.ring(), &t, r).producer)
        }
        Got::Disk(_) => match disk {
            Some(d) => (&d.buf[..], d.meta.and_then(|m| m.producer)),
            None => (&[][..], None),
        },
    };
    if payload.len() > q.geo().max_msg as usize {
        // Only a damaged log gives one this long.
        return Err(RecvError::DeadLetter {
            seq,
            source: crate::SendError::TooLarge {
                len: payload.len(),
                max: q.geo().max_msg as usize,
            },
        });
    }
    // Published through the protocol's claim from the registry slot kept
    // for dead letters, taken for this one letter and freed after it, so
    // that neither members nor producers ever keep each other out.
    let Some(slot) = q.dead_letter_slot() else {
        // Another member is publishing one: try again later.
        return Ok(false);
    };
    let ring = q.ring();
    // Freed when this returns (or unwinds), after the crash point below.
    let _slot = SlotLease { ring, slot };
    let mut pc = claim::producer_cursor(ring);
    pc.set_slot(slot);
    pc.for_dead_letter_of(match got {
        Got::Ring(t, _) => Some(t.pos),
        Got::Disk(_) => None,
    });
    // The dead letter keeps its producer's id and pseq.
    let dl = claim::DeadLetter {
        payload,
        flags: dead_letter_flags(d, g),
        ext: tag.map(|t| (t.id, t.pseq)),
        origin: (seq, ring.group_id(g)),
        ts_ns: crate::os::clock::now_ns(),
    };
    let mut publish = || {
        claim::publish_dead_letter(ring, &mut pc, &dl, |seq, pos| {
            if let Some(i) = entry {
                ack::note_forward(ring, g, i, seq, pos);
            }
            crate::spill::rounds::crash_point("dead-letter-claimed");
        })
        .ok()
    };
    // No room now, or none on a full disk: pending again, retried.
    let published = publish().is_some() || q.rounds_until(false, &mut publish).got.is_some();
    if published {
        crate::spill::rounds::crash_point("dead-letter-published");
    }
    Ok(published)
}

/// The registry slot kept for dead letters, held for one letter: freed when
/// dropped, so that a panic cannot keep every other member from
/// forwarding.
struct SlotLease<'a> {
    ring: &'a crate::protocol::ring::Ring<crate::os::mapping::RawRegion>,
    slot: usize,
}

impl Drop for SlotLease<'_> {
    fn drop(&mut self) {
        registry::unregister_producer(self.ring, self.slot);
    }
}

/// Reads the message of hold `h`, just taken over. On failure, the error
/// and whether the message may still be readable later (a spill log read
/// that failed) rather than gone.
pub(super) fn redelivered(
    q: &Queue,
    g: usize,
    disk: &mut Option<Disk>,
    h: &Hold,
) -> Result<Got, (RecvError, bool)> {
    let ring = q.ring();
    let e = h.entry;
    if !e.on_disk() {
        // The entry's pin keeps the record.
        return match ring.slot_at(e.at) {
            Slot::Record {
                len,
                seq,
                ts_ns,
                flags,
                ..
            } if seq == e.seq => match ring.read_key_head(e.at, len, flags) {
                Ok(key) => {
                    let (_, key_len) = key.unwrap_or((0, 0));
                    Ok(Got::Ring(
                        Taken {
                            seq,
                            pos: e.at,
                            len,
                            ts_ns,
                            flags,
                            key_len,
                        },
                        Again::of(&e),
                    ))
                }
                Err(()) => Err((
                    RecvError::Corrupt(Reason::new(format!(
                        "unacknowledged message {} at ring position {} has a bad key",
                        e.seq, e.at
                    ))),
                    false,
                )),
            },
            _ => Err((
                RecvError::Corrupt(Reason::new(format!(
                    "unacknowledged message {} at ring position {} is gone",
                    e.seq, e.at
                ))),
                false,
            )),
        };
    }
    let Some(spill) = q.spill() else {
        return Err((
            RecvError::Corrupt(Reason::new(
                "unacknowledged message on disk but the queue has no spill log",
            )),
            false,
        ));
    };
    let d = disk.get_or_insert_with(|| Disk {
        reader: spill.reader(),
        buf: Vec::new(),
        last_round: None,
        meta: None,
    });
    let pos = e.at & !DISK_BIT;
    let rec = d.reader.read(pos, &mut d.buf).map_err(|err| {
        // Below the log's retained start (published before retention
        // deletes anything): gone for good, not to be tried again. Only
        // an auto-ack member's expired message adopted from the log can
        // point there (expiry.rs): retention keeps what entries point into
        // from their announcement on.
        let first = ring.header().log_first_pos().load(Ordering::Relaxed);
        (RecvError::Spill(err.into()), pos >= first)
    })?;
    if rec.seq != e.seq {
        return Err((
            RecvError::Spill(SpillError::Corrupt(Reason::new(format!(
                "log position {} holds sequence {}, the unacknowledged message is {}",
                e.at & !DISK_BIT,
                rec.seq,
                e.seq
            )))),
            true,
        ));
    }
    let _ = g;
    let meta = disk_meta(&rec, Again::of(&e), &mut d.buf);
    Ok(d.got(meta, e.at))
}
