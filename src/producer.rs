//! Producers: copying send, zero-copy claim, batch send.

use crate::clock::now_ns;
use crate::error::SendError;
use crate::layout::*;
use crate::queue::Queue;
use crate::region::Region;
use crate::ring::{Claim, ProducerCursor};
use crate::sync::Ordering;
use crate::wait::{Event, WaitStrategy};
use std::time::{Duration, Instant};

/// How long a producer waits on a full ring before checking for dead members
/// whose hazards may be what holds it back.
const REAP_EVERY: Duration = Duration::from_millis(100);

/// Publishes messages. Any number of producers, in any processes and threads,
/// publish concurrently without locks. A producer is `Send` (move it to a
/// thread); give each thread its own.
pub struct Producer {
    q: Queue,
    pc: ProducerCursor,
    wait: WaitStrategy,
    /// The queue has a spill log.
    spill: bool,
    /// Tail position before which the spill pressure is not looked at again.
    next_spill_check: u64,
    /// Tail position before which an active spill front is not looked at again.
    next_front_check: u64,
}

/// With a spill log, how long a producer facing a full ring waits before it
/// tries a spill round again.
const SPILL_RETRY: Duration = Duration::from_millis(10);

#[derive(Clone, Copy)]
enum Mode {
    Try,
    Until(Option<Instant>),
}

impl Producer {
    pub(crate) fn new(q: Queue, slot: usize) -> Self {
        let mut pc = q.ring().producer_cursor();
        pc.set_slot(slot);
        let spill = q.inner.spill.is_some();
        Producer {
            q,
            pc,
            wait: WaitStrategy::default(),
            spill,
            next_spill_check: 0,
            next_front_check: 0,
        }
    }

    /// How this producer waits when the ring is full.
    pub fn set_wait_strategy(&mut self, w: WaitStrategy) {
        self.wait = w;
    }

    fn check_len(&self, len: usize) -> Result<(), SendError> {
        let max = self.q.geometry().max_msg as usize;
        if len > max {
            return Err(SendError::TooLarge { len, max });
        }
        Ok(())
    }

    /// With a spill log: once less than half the ring is free, run a spill
    /// round (if no one else is), so that a lagging group moves to disk before
    /// the ring fills. Looked at again only every eighth of a ring.
    ///
    /// While a group is on the log (FRONT active) a round also runs every
    /// eighth of a ring regardless: the producer that runs a round carries its
    /// write, so keeping the log close behind the tail keeps each round, and
    /// the stall it means for this producer's messages, short.
    fn spill_pressure(&mut self) {
        let eighth = self.q.geometry().capacity / 8;
        let pos = self.pc.tail_guess();
        let ring = self.q.ring();
        if self.pc.headroom() >= 4 * eighth {
            if pos < self.next_front_check {
                return;
            }
            self.next_front_check = pos.wrapping_add(eighth);
            if !ring.spilling() {
                return;
            }
        } else if pos < self.next_spill_check {
            return;
        } else {
            ring.rescan(&mut self.pc);
            if self.pc.headroom() >= 4 * eighth && !ring.spilling() {
                return;
            }
        }
        self.next_spill_check = pos.wrapping_add(eighth);
        self.next_front_check = pos.wrapping_add(eighth);
        // An error is recorded in the header (stat shows it); the claim below
        // meets a full ring only if the disk keeps failing.
        let _ = self.q.spill_round(false);
        ring.rescan(&mut self.pc);
    }

    fn claim(
        &mut self,
        count: u64,
        mode: Mode,
        end_of: impl Fn(u64) -> u64,
    ) -> Result<Claim, SendError> {
        if self.spill {
            self.spill_pressure();
        }
        let ring = self.q.ring();
        if let Ok(c) = ring.try_claim(&mut self.pc, count, &end_of) {
            return Ok(c);
        }
        let mut spill_err = None;
        let mut round_blocked = false;
        // Full: rounds may make room at once. Other producers may fill the
        // ring again before this one claims (it may be descheduled right after
        // its round, or the round may find nothing left to log just before
        // they do), so go on while rounds make progress or others publish:
        // the next round logs what they published meanwhile. Bounded, so that
        // a producer outrun every time still ends up waiting its turn.
        let rounds = if self.spill { 64 } else { 0 };
        for _ in 0..rounds {
            let tail_before = ring.tail_now().0;
            match self.q.spill_round(!matches!(mode, Mode::Try)) {
                Ok(r) => {
                    round_blocked = r.is_some_and(|o| o.blocked);
                    if let Ok(c) = ring.try_claim(&mut self.pc, count, &end_of) {
                        return Ok(c);
                    }
                    let progress = r.is_some_and(|o| {
                        o.spilled > 0 || o.transferred > 0 || ring.tail_now().0 != tail_before
                    });
                    if !progress {
                        break;
                    }
                }
                Err(e) => {
                    spill_err = Some(e.to_string());
                    break;
                }
            }
        }
        // Why is it full? Counted apart, since only one is a consumer's doing.
        let need_end = end_of(ring.tail_now().1);
        let counter = if round_blocked || ring.full_behind_operation(need_end) {
            OFF_STALL_WAITS
        } else {
            OFF_FULL_WAITS
        };
        ring.region.u64_at(counter).fetch_add(1, Ordering::Relaxed);
        let deadline = match mode {
            Mode::Try => return Err(spill_err.map_or(SendError::Full, SendError::Spill)),
            Mode::Until(d) => d,
        };
        loop {
            let every = if self.spill { SPILL_RETRY } else { REAP_EVERY };
            let slice_end = Instant::now() + every;
            let until = deadline.map_or(slice_end, |d| d.min(slice_end));
            let pc = &mut self.pc;
            let got = ring.wait_for(Event::Space, self.wait, Some(until), || {
                ring.try_claim(pc, count, &end_of).ok()
            });
            if let Some(c) = got {
                return Ok(c);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(spill_err.map_or(SendError::Timeout, SendError::Spill));
            }
            // A member that died holding a hazard pins the ring, and so does
            // a producer that died holding a claim: free them.
            self.q.reap_dead_members();
            self.q.recover_dead_producers();
            if self.spill {
                match self.q.spill_round(false) {
                    Ok(_) => spill_err = None,
                    Err(e) => spill_err = Some(e.to_string()),
                }
            }
        }
    }

    fn send_mode(&mut self, msg: &[u8], mode: Mode) -> Result<u64, SendError> {
        self.send_flagged(msg, 0, mode)
    }

    /// Publishes a dead letter (`flags`: its addressing, `layout.rs`) if
    /// there is room now.
    pub(crate) fn try_send_dead_letter(
        &mut self,
        msg: &[u8],
        flags: u32,
    ) -> Result<u64, SendError> {
        self.send_flagged(msg, flags, Mode::Try)
    }

    fn send_flagged(&mut self, msg: &[u8], flags: u32, mode: Mode) -> Result<u64, SendError> {
        self.check_len(msg.len())?;
        let len = msg.len() as u64;
        let geo = self.q.geometry();
        let claim = self.claim(1, mode, |p| {
            geo.place(p, len).wrapping_add(record_size(len))
        })?;
        let ring = self.q.ring();
        let rec = ring.place(claim.start, len);
        // SAFETY: `rec` is the single record of the claim we just made, placed
        // for exactly `msg.len()` bytes.
        unsafe { ring.write_record(rec, claim.seq, now_ns(), msg) };
        if flags != 0 {
            ring.write_flags(rec, msg.len() as u32, flags);
        }
        ring.commit_claim(&claim, std::iter::once((rec, len, KIND_MSG)));
        Ok(claim.seq)
    }

    /// Publishes `msg`, waiting while the ring is full. Returns its sequence
    /// number.
    ///
    /// # Errors
    /// [`SendError::TooLarge`] if `msg` is longer than the queue's maximum.
    pub fn send(&mut self, msg: &[u8]) -> Result<u64, SendError> {
        self.send_mode(msg, Mode::Until(None))
    }

    /// Publishes `msg`, waiting at most `timeout` for space.
    ///
    /// # Errors
    /// [`SendError::TooLarge`], or [`SendError::Timeout`] if the ring stayed full.
    pub fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<u64, SendError> {
        self.send_mode(msg, Mode::Until(Some(Instant::now() + timeout)))
    }

    /// Publishes `msg` only if there is room now.
    ///
    /// # Errors
    /// [`SendError::TooLarge`], or [`SendError::Full`].
    pub fn try_send(&mut self, msg: &[u8]) -> Result<u64, SendError> {
        self.send_mode(msg, Mode::Try)
    }

    /// Publishes `msgs` with one claim: consecutive sequence numbers, one
    /// atomic operation on the tail, one wake-up. Returns the first sequence
    /// number. Waits while the ring is full.
    ///
    /// # Errors
    /// [`SendError::TooLarge`] if a message exceeds the maximum or the batch
    /// exceeds half the ring.
    pub fn send_batch(&mut self, msgs: &[&[u8]]) -> Result<u64, SendError> {
        for m in msgs {
            self.check_len(m.len())?;
        }
        let total: u64 = msgs.iter().map(|m| record_size(m.len() as u64)).sum();
        let half = self.q.geometry().capacity / 2;
        if total > half {
            return Err(SendError::TooLarge {
                len: total as usize,
                max: half as usize,
            });
        }
        if msgs.is_empty() {
            return Ok(self.q.ring().tail_now().0);
        }
        let geo = self.q.geometry();
        let layout = |mut p: u64| {
            for m in msgs {
                p = geo
                    .place(p, m.len() as u64)
                    .wrapping_add(record_size(m.len() as u64));
            }
            p
        };
        let claim = self.claim(msgs.len() as u64, Mode::Until(None), layout)?;
        let ring = self.q.ring();
        let ts = now_ns();
        let mut p = claim.start;
        let mut placed = Vec::with_capacity(msgs.len());
        for (i, m) in msgs.iter().enumerate() {
            let rec = ring.place(p, m.len() as u64);
            // SAFETY: `rec` is record i of our claim, placed for m.len() bytes.
            unsafe { ring.write_record(rec, claim.seq.wrapping_add(i as u64), ts, m) };
            placed.push((rec, m.len() as u64, KIND_MSG));
            p = rec.wrapping_add(record_size(m.len() as u64));
        }
        ring.commit_claim(&claim, placed.into_iter());
        Ok(claim.seq)
    }

    /// Claims room for a `len`-byte message to be written in place (zero copy),
    /// waiting while the ring is full. Write through [`SendGuard::as_mut_slice`]
    /// and [`SendGuard::commit`]; dropping the guard uncommitted abandons the
    /// claim (consumers skip it; its sequence number goes unused).
    ///
    /// # Errors
    /// [`SendError::TooLarge`].
    pub fn claim_send(&mut self, len: usize) -> Result<SendGuard<'_>, SendError> {
        self.check_len(len)?;
        let l = len as u64;
        let geo = self.q.geometry();
        let claim = self.claim(1, Mode::Until(None), |p| {
            geo.place(p, l).wrapping_add(record_size(l))
        })?;
        let rec = self.q.ring().place(claim.start, l);
        Ok(SendGuard {
            p: self,
            claim,
            rec,
            len,
            done: false,
        })
    }
}

/// Room for one message in the ring, claimed and not yet published.
pub struct SendGuard<'a> {
    p: &'a mut Producer,
    claim: Claim,
    rec: u64,
    len: usize,
    done: bool,
}

impl SendGuard<'_> {
    /// The message's sequence number.
    pub fn seq(&self) -> u64 {
        self.claim.seq
    }

    /// The payload bytes, to fill in. Their initial content is unspecified.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        let ring = self.p.q.ring();
        let off = ring.ring_at(self.rec) + RECORD_HEADER;
        // SAFETY: these bytes lie inside our claim (placed for `len` bytes, never
        // across the ring's end), which no consumer reads before our commit and
        // no other producer overlaps: they are ours alone until `commit`. Any byte
        // value is a valid u8.
        unsafe { std::slice::from_raw_parts_mut(ring.region.ptr_at(off, self.len), self.len) }
    }

    /// Publishes the message; returns its sequence number.
    pub fn commit(mut self) -> u64 {
        self.finish(KIND_MSG);
        self.claim.seq
    }

    fn finish(&mut self, kind: u64) {
        let ring = self.p.q.ring();
        ring.write_header(self.rec, self.claim.seq, now_ns(), self.len as u32);
        ring.commit_claim(
            &self.claim,
            std::iter::once((self.rec, self.len as u64, kind)),
        );
        self.done = true;
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        if let Some(slot) = self.pc.slot {
            self.q.ring().unregister_producer(slot);
        }
    }
}

impl Drop for SendGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.p
                .q
                .ring()
                .region
                .u64_at(OFF_ABORTED)
                .fetch_add(1, Ordering::Relaxed);
            self.finish(KIND_ABORT);
        }
    }
}
