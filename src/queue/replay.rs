//! Replay: moving a group to any retained sequence number (`seek`), and
//! reading retained messages without moving any group (`dump`).
//!
//! Retained means: in the ring (HEAD..TAIL), or in the spill log's current
//! unbroken run (from `run_seq`, which FRONT has covered without a break, up
//! to FRONT). A log kept as a journal (a retention policy) keeps FRONT active,
//! so everything it retains can be replayed; otherwise the log holds what
//! lagging groups needed.

use crate::error::GroupError;
use crate::message::strip_ext;
use crate::protocol::layout::*;
use crate::protocol::ring::Slot;
use crate::protocol::{group, spill};
use crate::queue::Queue;
use crate::region::Region;
use crate::spill::log::LogError;
use crate::sync::{AtomicU64, Ordering};

/// Where `seek` moves a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SeekTo {
    /// The oldest retained message (in the log, or else in the ring).
    Earliest,
    /// The next message to be published.
    Latest,
    /// This sequence number.
    Seq(u64),
}

/// A retained message, as `dump` yields it (dead letters, copies of earlier
/// messages addressed to a dead-letter group, are not shown).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Retained {
    /// Sequence number.
    pub seq: u64,
    /// Publish time.
    pub ts_ns: u64,
    /// The bytes.
    pub payload: Vec<u8>,
    /// Whether it came from the spill log (else from the ring).
    pub from_log: bool,
    /// Its named producer and pseq (see [`crate::Message::producer`]).
    pub producer: Option<crate::ProducerTag>,
    /// Its own time to live (see [`crate::Message::ttl`]).
    pub ttl: Option<std::time::Duration>,
    /// Its key (see [`crate::Message::key`]).
    pub key: Option<crate::Key>,
}

impl Queue {
    /// The range of sequence numbers a group can be moved to: from the oldest
    /// retained (log or ring) to the tail.
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// assert_eq!(q.retained(), (0, 0));
    /// q.producer().attach()?.send_batch(&[b"a", b"b", b"c"])?;
    /// // Seq 0 to 2 are in the ring; 3 is the next to be published.
    /// assert_eq!(q.retained(), (0, 3));
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn retained(&self) -> (u64, u64) {
        let ring = self.ring();
        let (tail, _) = ring.tail_now();
        let (head, _) = ring.head_now();
        (self.log_floor().unwrap_or(head).min(head), tail)
    }

    /// Oldest sequence number replayable from the log, if any.
    fn log_floor(&self) -> Option<u64> {
        self.inner.spill.as_ref()?;
        let ring = self.ring();
        spill::front_now(ring)?;
        // Relaxed: read under the spill lock (or as a hint for `retained`).
        let h = ring.header();
        let w = |word: &AtomicU64| word.load(Ordering::Relaxed);
        if w(h.log_end()) <= w(h.log_first_pos()) {
            return None;
        }
        Some(w(h.log_first_seq()).max(w(h.log_run_seq())))
    }

    /// Moves group `name` so that the next message it hands out is `to`.
    /// Refused while the group has live members (stop them first, as with
    /// `remove_group`). Returns the sequence number it now starts at.
    ///
    /// # Errors
    /// [`GroupError::Unknown`], [`GroupError::HasMembers`],
    /// [`GroupError::NotRetained`] for a sequence number outside
    /// [`Queue::retained`], [`GroupError::Io`] if the admin lock cannot be
    /// taken, [`GroupError::Spill`] if the spill lock cannot.
    ///
    /// ```
    /// use shmq::{GroupError, SeekTo, StartAt};
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("audit", StartAt::Latest)?;
    /// let mut audit = q.consumer("audit").attach()?;
    /// q.producer().attach()?.send_batch(&[b"a", b"b", b"c"])?;
    /// assert_eq!(audit.try_iter().count(), 3);
    /// // Only a group without live members moves.
    /// let r = q.seek_group("audit", SeekTo::Seq(1));
    /// assert!(matches!(r, Err(GroupError::HasMembers { .. })));
    /// drop(audit);
    /// assert_eq!(q.seek_group("audit", SeekTo::Seq(1))?, 1);
    /// let mut audit = q.consumer("audit").attach()?;
    /// assert_eq!(audit.recv()?.payload, b"b");
    /// assert_eq!(audit.recv()?.payload, b"c");
    /// drop(audit);
    /// assert_eq!(q.seek_group("audit", SeekTo::Earliest)?, 0);
    /// assert_eq!(q.seek_group("audit", SeekTo::Latest)?, 3);
    /// let r = q.seek_group("audit", SeekTo::Seq(9));
    /// assert!(matches!(r, Err(GroupError::NotRetained { seq: 9, first: 0, last: 3 })));
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn seek_group(&self, name: &str, to: SeekTo) -> Result<u64, GroupError> {
        let _admin = self.admin(true).map_err(GroupError::Io)?;
        let g = self.idle_group(name)?;
        let spill = |e: crate::spill::log::LogError| GroupError::Spill(e.into());
        let r = match &self.inner.spill {
            Some(sp) => sp.locked(|| self.seek_locked(g, to)).map_err(spill)?,
            None => self.seek_locked(g, to),
        };
        // Messages parked in a group ordered by key (never delivered) that
        // the cursor hands out again from its new place: once is enough.
        if let Ok(seq) = r {
            crate::protocol::ack::drop_undelivered_from(self.ring(), g, seq);
        }
        r
    }

    fn seek_locked(&self, g: usize, to: SeekTo) -> Result<u64, GroupError> {
        let ring = self.ring();
        let (tail, _) = ring.tail_now();
        let floor = self.log_floor();
        let target = match to {
            SeekTo::Latest => tail,
            // The ring may hold messages below the log's floor (retention
            // deleted them from a journal, HEAD has not passed them).
            SeekTo::Earliest => {
                let head = ring.head_now().0;
                floor.map_or(head, |f| f.min(head))
            }
            SeekTo::Seq(s) => s,
        };
        let not_retained = || {
            let (lo, hi) = self.retained();
            GroupError::NotRetained {
                seq: target,
                first: lo,
                last: hi,
            }
        };
        if target > tail {
            return Err(not_retained());
        }
        let before = ring.cursor_now(g);
        if target >= ring.head_now().0 {
            // Park the cursor at HEAD first, by the group-add protocol: from
            // then on the group's own cursor protects the ring from HEAD on.
            let start = unpack(group::start_cursor(
                ring,
                ring.cursor(g),
                crate::protocol::group::StartAt::Earliest,
            ));
            if start.0 > target {
                // HEAD moved past the target meanwhile.
                spill::set_cursor(ring, g, before);
                return Err(not_retained());
            }
            // In the ring: walk from HEAD to it.
            let (mut seq, mut pos) = start;
            while seq < target {
                match ring.slot_at(pos) {
                    Slot::Pad { next } => pos = next,
                    Slot::Record { next, .. } => {
                        seq = seq.wrapping_add(1);
                        pos = next;
                    }
                    // Claimed but not committed yet: the target is past the
                    // committed tail; settle for the first uncommitted record.
                    Slot::Uncommitted => break,
                    Slot::Bad => {
                        spill::set_cursor(ring, g, before);
                        return Err(not_retained());
                    }
                }
            }
            spill::set_cursor(ring, g, pack(seq, pos));
            return Ok(seq);
        }
        // In the log: only within its unbroken run up to FRONT.
        let (Some(sp), Some(floor)) = (&self.inner.spill, floor) else {
            return Err(not_retained());
        };
        if target < floor {
            return Err(not_retained());
        }
        // Relaxed: we hold the spill lock, which orders this after the store.
        let log_end = ring.header().log_end().load(Ordering::Relaxed);
        let mut reader = sp.reader();
        let at = reader
            .find(target, log_end)
            .ok()
            .flatten()
            .ok_or_else(not_retained)?;
        let (rec, _) = reader.read_head(at).map_err(|_| not_retained())?;
        spill::set_cursor(ring, g, pack(rec.seq | DISK_BIT, at));
        Ok(rec.seq)
    }

    /// Calls `f` with every retained message from `from` up to the tail as
    /// it was when the dump started, oldest first, at most `count` of them,
    /// without moving any group. It reads the log while the log holds the
    /// next message (it goes back to it when producers move the ring past
    /// the message it would show next), and the ring from there. Messages
    /// the ring overwrites before they are read and that the log does not
    /// hold (no journal) are not shown.
    ///
    /// # Errors
    /// Reading the log failed.
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("audit", shmq::StartAt::Latest)?;
    /// let mut audit = q.consumer("audit").attach()?;
    /// q.producer().attach()?.send_batch(&[b"a", b"b", b"c", b"d"])?;
    /// let mut seen = Vec::new();
    /// let shown = q.dump(1, 2, |m| seen.push((m.seq, m.payload, m.from_log)))?;
    /// assert_eq!(shown, 2);
    /// assert_eq!(seen, [(1, b"b".to_vec(), false), (2, b"c".to_vec(), false)]);
    /// // No group moved: audit still gets everything.
    /// assert_eq!(audit.try_iter().count(), 4);
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn dump(
        &self,
        from: u64,
        count: u64,
        mut f: impl FnMut(Retained),
    ) -> Result<u64, crate::SpillError> {
        let ring = self.ring();
        let end = ring.tail_now().0;
        let mut shown = 0;
        let mut next = from;
        let mut reader = self.inner.spill.as_ref().map(|sp| sp.reader());
        let mut payload = Vec::new();
        let log_end_now = || spill::log_end(ring);
        // The log's end at the last pass over it: a new pass only once it
        // has grown (each pass reads it to the end), so the dump goes back
        // and forth between log and ring only as often as rounds publish.
        let mut seen: Option<u64> = None;
        // The ring next, not the log: the log showed a gap the ring may fill.
        let mut ring_next = false;
        // The log's floor when a segment vanished under a read: the log is
        // read again (from its new floor) only once per deletion.
        let mut vanished_at: Option<Option<u64>> = None;
        // The `next` at which the log last showed a gap the ring was to fill:
        // a second gap at the same `next` is passed over (the ring could not
        // fill it), so that log and ring never hand `next` back and forth.
        let mut gap_at: Option<u64> = None;
        'dump: while shown < count && next < end {
            // The log, for as long as it holds `next` (it grows meanwhile).
            let log_end = log_end_now();
            let log_turn = seen != Some(log_end) && !std::mem::take(&mut ring_next);
            if let Some(reader) = reader.as_mut().filter(|_| log_turn) {
                seen = Some(log_end);
                // Retention deletes segments meanwhile: a read of one gone
                // sends the dump back to the log's new floor, once.
                let mut vanished = || {
                    let floor = self.log_floor();
                    if vanished_at != Some(floor) {
                        vanished_at = Some(floor);
                        seen = None;
                    }
                };
                let Some(found) = still_retained(reader.find(next, log_end))? else {
                    vanished();
                    continue 'dump;
                };
                if let Some(mut at) = found {
                    while at < log_end && shown < count && next < end {
                        let Some(rec) =
                            still_retained(reader.read_ahead(at, log_end, &mut payload))?
                        else {
                            vanished();
                            break;
                        };
                        at += rec.size;
                        if rec.seq < next {
                            continue;
                        }
                        if rec.seq >= end {
                            break 'dump;
                        }
                        if rec.seq > next && ring.head_now().0 < rec.seq && gap_at != Some(next) {
                            gap_at = Some(next);
                            // The log no longer holds `next` (retention
                            // deleted it, or it was never logged), and the
                            // ring may: HEAD is below the record found. This
                            // pass did not read the log to its end.
                            ring_next = true;
                            seen = None;
                            continue 'dump;
                        }
                        next = rec.seq.saturating_add(1);
                        if rec.kind != KIND_MSG || flags_target(rec.flags).is_some() {
                            continue;
                        }
                        shown += 1;
                        let ext = strip_ext(rec.flags, &mut payload);
                        f(Retained {
                            seq: rec.seq,
                            ts_ns: rec.ts_ns,
                            payload: std::mem::take(&mut payload),
                            from_log: true,
                            producer: ext.producer,
                            ttl: ext.ttl.map(std::time::Duration::from_nanos),
                            key: ext.key.map(|(k, _)| k),
                        });
                    }
                }
                // The log may have grown while it was read.
                continue 'dump;
            }
            // The ring, from HEAD or from `next`: each copy is kept only if
            // HEAD had not passed it when the copy was done (producers write
            // only below HEAD + ring).
            let (mut seq, mut pos) = ring.head_now();
            let back_to_log = |next| self.log_holds(next) && seen != Some(log_end_now());
            if seq > next && back_to_log(next) {
                continue 'dump;
            }
            // HEAD passed `next`, which the log no longer holds either, but
            // the log holds what lies between: from there, not from HEAD.
            if let Some(floor) = self.log_floor_between(next, seq) {
                next = floor;
                seen = None;
                continue 'dump;
            }
            while shown < count && seq < end {
                // Whether what was to be read next is gone from the ring:
                // overwritten before or while it was copied, or its slot
                // taken by a later lap (its stamp of another position).
                let overtaken = match ring.slot_at(pos) {
                    Slot::Pad { next: n } => {
                        pos = n;
                        false
                    }
                    Slot::Record {
                        kind,
                        len,
                        seq: rseq,
                        ts_ns,
                        flags,
                        next: after,
                    } if rseq == seq => {
                        if seq < next {
                            // Not shown: passed without a copy.
                            seq = seq.wrapping_add(1);
                            pos = after;
                            continue;
                        }
                        // Word by word with atomic loads: a producer may reuse
                        // the space meanwhile (nothing protects it), which
                        // the HEAD check below detects; atomics keep that
                        // race defined.
                        let mut payload = Vec::with_capacity(len as usize + 8);
                        let off = ring.geo.ring_at(pos) + RECORD_HEADER;
                        for i in 0..(len as usize).div_ceil(8) {
                            let w = ring.region.u64_at(off + 8 * i).load(Ordering::Relaxed);
                            payload.extend_from_slice(&w.to_ne_bytes());
                        }
                        payload.truncate(len as usize);
                        // Acquire: orders the copy before this load (pairs
                        // with the producers' HEAD CAS, which precedes their
                        // writes).
                        crate::sync::fence(Ordering::Acquire);
                        let (_, hpos) = ring.head_now();
                        if hpos > pos {
                            true
                        } else {
                            if kind == KIND_MSG && flags_target(flags).is_none() {
                                shown += 1;
                                let ext = strip_ext(flags, &mut payload);
                                f(Retained {
                                    seq,
                                    ts_ns,
                                    payload,
                                    from_log: false,
                                    producer: ext.producer,
                                    ttl: ext.ttl.map(std::time::Duration::from_nanos),
                                    key: ext.key.map(|(k, _)| k),
                                });
                            }
                            seq = seq.wrapping_add(1);
                            next = seq;
                            pos = after;
                            false
                        }
                    }
                    Slot::Record { .. } => true,
                    // The end of what is committed, unless HEAD passed it.
                    Slot::Uncommitted | Slot::Bad if ring.head_now().1 > pos => true,
                    Slot::Uncommitted | Slot::Bad => break,
                };
                if overtaken {
                    // From the log if it has `next`; or, deleted there too,
                    // from what the log holds after it below HEAD; else on
                    // from HEAD.
                    if back_to_log(next) {
                        continue 'dump;
                    }
                    (seq, pos) = ring.head_now();
                    if let Some(floor) = self.log_floor_between(next, seq) {
                        next = floor;
                        seen = None;
                        continue 'dump;
                    }
                }
            }
            break;
        }
        Ok(shown)
    }

    /// The log's oldest retained sequence number, if it lies above `next`
    /// and below `head` (the ring's HEAD seq) and the log holds it: what a
    /// dump that found `next` gone from both the log and the ring shows
    /// next, rather than jump to HEAD over what the log still has.
    fn log_floor_between(&self, next: u64, head: u64) -> Option<u64> {
        let floor = self.log_floor()?;
        (next < floor && floor < head && self.log_holds(floor)).then_some(floor)
    }

    /// Whether the spill log holds sequence number `seq` (it is retained
    /// and below the log's end).
    fn log_holds(&self, seq: u64) -> bool {
        // Relaxed: a hint; the log read that follows checks what it finds.
        let log_end_seq = self.ring().header().log_end_seq().load(Ordering::Relaxed);
        self.log_floor().is_some_and(|first| seq >= first) && seq < log_end_seq
    }
}

/// A log read's result, `None` where the log no longer holds the record
/// (a segment every group had read was deleted): for a dump, the end of
/// what the log shows, not an error.
fn still_retained<T>(r: Result<T, LogError>) -> Result<Option<T>, LogError> {
    match r {
        Err(LogError::Missing(_)) => Ok(None),
        r => r.map(Some),
    }
}
