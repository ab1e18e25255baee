//! Spill rounds: the work that keeps producers at ring speed while a group
//! lags, and brings the group back when it has caught up.
//!
//! There is no daemon. A round runs in whichever process needs one: a producer
//! whose free ring space fell below half, a consumer on disk that has read the
//! whole log, or [`Queue::spill_now`](crate::Queue::spill_now). It runs under the spill lock: a flock on
//! `spill.lock` in the spill directory, which the kernel drops if the holder
//! dies, plus a mutex for the threads of one process. A round:
//!
//! 1. **Recovers** if the previous round never finished (`in_round` still holds
//!    a pid): the log is cut back to the published `log_end`, and the records
//!    after its last index entry are checked by CRC.
//! 2. **Rejoins** groups on disk that have read the whole log (`spill.rs`).
//! 3. **Spills** if a group on the ring lags by more than half the ring, or
//!    groups are on disk, or the log is a journal: the committed records from
//!    FRONT on are copied into one buffer and written with one write per
//!    segment, synced as the fsync policy says, `log_end` is published, and
//!    FRONT moves past them.
//! 4. **Transfers** the groups that lag by more than half the ring onto the log.
//! 5. **Retires** FRONT when no group is on disk (unless the log is a journal),
//!    and deletes segments that every group has read and the retention policy
//!    does not keep.
//!
//! A process killed anywhere in a round loses nothing: records enter the log
//! before FRONT moves past them, groups move onto the log only after the log
//! holds their messages, and anything written but not published is cut by the
//! next round.

use crate::protocol::layout::*;
use crate::protocol::ring::Ring;
use crate::protocol::ring::Slot;
use crate::protocol::wait::Event;
use crate::protocol::{ack, spill};
use crate::region::Region;
use crate::spill::log::{
    encode_record_with, log_record_size, LogError, LogReader, LogWriter, SpillOptions,
};
use crate::sync::Ordering;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::sync::{Mutex, TryLockError};

/// Crash points for the crash tests: a process whose `SHMQ_CRASH_POINT`
/// names one of these (or `dead-letter-published`, between a dead letter's
/// publication and the settling of the message given up) kills itself with SIGKILL the first time a round gets
/// there, so that tests reach windows a random kill rarely hits.
/// Only with the `crash-points` feature (the tests'); a no-op otherwise.
#[cfg(feature = "crash-points")]
pub(crate) fn crash_point(name: &str) {
    static POINT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let point = POINT.get_or_init(|| std::env::var("SHMQ_CRASH_POINT").ok());
    if point.as_deref() == Some(name) {
        // SAFETY: kill(2) on our own pid; no memory is passed.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
}

/// Without the `crash-points` feature there are none.
#[cfg(not(feature = "crash-points"))]
#[inline(always)]
pub(crate) fn crash_point(_name: &str) {}

/// The file in a spill directory whose `flock` is the spill lock.
pub(crate) const LOCK_FILE: &str = "spill.lock";

/// Every crash point of a spill round, in round order (tests).
#[cfg(feature = "crash-points")]
pub const CRASH_POINTS: &[&str] = &[
    "spill-written",
    "spill-published",
    "spill-front-moved",
    "spill-transferred-one",
    "spill-retiring",
];

/// A queue's spill machinery in this process.
pub(crate) struct Spill {
    pub(crate) opts: SpillOptions,
    lock_file: File,
    local: Mutex<Local>,
    nonce: u64,
    max_msg: u32,
}

struct Local {
    writer: LogWriter,
    /// `log_end` as this process's writer left it, and the sequence number
    /// after the last logged record; a different published `log_end` means
    /// another process wrote since, and the writer re-syncs.
    synced_end: Option<u64>,
    end_seq: Option<u64>,
    buf: Vec<u8>,
    recs: Vec<(u64, u64)>,
}

/// What a round did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RoundOutcome {
    /// Records written to the log.
    pub spilled: u64,
    /// Groups moved from the ring onto the log.
    pub transferred: usize,
    /// Groups moved from the log back onto the ring.
    pub rejoined: usize,
    /// The round stopped short of the tail at a claim not committed yet.
    pub blocked: bool,
}

impl Spill {
    pub(crate) fn open(opts: SpillOptions, nonce: u64, max_msg: u32) -> io::Result<Spill> {
        let lock_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(opts.dir.join(LOCK_FILE))?;
        Ok(Spill {
            local: Mutex::new(Local {
                writer: LogWriter::new(&opts, nonce, max_msg),
                synced_end: None,
                end_seq: None,
                buf: Vec::new(),
                recs: Vec::new(),
            }),
            opts,
            lock_file,
            nonce,
            max_msg,
        })
    }

    /// A reader of this queue's log.
    pub(crate) fn reader(&self) -> LogReader {
        LogReader::new(&self.opts.dir, self.nonce, self.max_msg)
    }

    fn flock(&self, block: bool) -> io::Result<bool> {
        let op = if block {
            libc::LOCK_EX
        } else {
            libc::LOCK_EX | libc::LOCK_NB
        };
        loop {
            // SAFETY: flock on a descriptor we own; no memory is passed.
            if unsafe { libc::flock(self.lock_file.as_raw_fd(), op) } == 0 {
                return Ok(true);
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EWOULDBLOCK) if !block => return Ok(false),
                _ => return Err(e),
            }
        }
    }

    /// Holds the spill lock (both halves) while `f` runs: no round runs
    /// meanwhile, so FRONT neither moves nor retires.
    pub(crate) fn locked<T>(&self, f: impl FnOnce() -> T) -> Result<T, LogError> {
        let _local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        self.flock(true)?;
        let out = f();
        self.funlock();
        Ok(out)
    }

    fn funlock(&self) {
        // SAFETY: flock on a descriptor we own.
        unsafe { libc::flock(self.lock_file.as_raw_fd(), libc::LOCK_UN) };
    }
}

impl Spill {
    /// A round on `ring` if the lock is free (`block = false`) or once it is.
    /// `Ok(None)` when another thread or process holds the lock.
    pub(crate) fn round<R: Region>(
        &self,
        ring: &Ring<R>,
        block: bool,
    ) -> Result<Option<RoundOutcome>, LogError> {
        let spill = self;
        let mut local = if block {
            spill.local.lock().unwrap_or_else(|p| p.into_inner())
        } else {
            match spill.local.try_lock() {
                Ok(g) => g,
                Err(TryLockError::Poisoned(p)) => p.into_inner(),
                Err(TryLockError::WouldBlock) => return Ok(None),
            }
        };
        if !spill.flock(block)? {
            return Ok(None);
        }
        let result = self.round_locked(ring, &mut local);
        match &result {
            Ok(_) => ring.header().spill_errno().store(0, Ordering::Relaxed),
            Err(e) => {
                local.synced_end = None;
                ring.header().spill_errors().fetch_add(1, Ordering::Relaxed);
                let errno = match e {
                    LogError::Io(io) => io.raw_os_error().unwrap_or(libc::EIO),
                    _ => libc::EIO,
                };
                ring.header()
                    .spill_errno()
                    .store(errno as u64, Ordering::Relaxed);
                // A journal on a full disk whose log no group needs stops
                // logging rather than hold producers back for ever (the
                // next round that writes starts it again, after a gap):
                // it loses history, never a message.
                let on_disk =
                    (0..ring.geo.max_groups as usize).any(|g| ring.is_active(g) && ring.on_disk(g));
                if errno == libc::ENOSPC
                    && spill.opts.journal()
                    && !on_disk
                    && spill::front_now(ring).is_some()
                {
                    spill::retire_front(ring);
                }
            }
        }
        // Relaxed: only ever read under the lock, which orders it.
        ring.header().spill_in_round().store(0, Ordering::Relaxed);
        ring.header()
            .spill_round_since()
            .store(0, Ordering::Relaxed);
        spill.funlock();
        result.map(Some)
    }

    fn round_locked<R: Region>(
        &self,
        ring: &Ring<R>,
        local: &mut Local,
    ) -> Result<RoundOutcome, LogError> {
        let spill = self;
        let h = ring.header();
        let mut out = RoundOutcome::default();
        // 1. Recover. Relaxed loads and stores: the flock orders rounds.
        let died = h.spill_in_round().load(Ordering::Relaxed) != 0;
        h.spill_in_round()
            .store(std::process::id() as u64, Ordering::Relaxed);
        // Relaxed: for display (`stat`: who holds the lock, since when).
        h.spill_round_since()
            .store(crate::os::clock::monotonic_ns(), Ordering::Relaxed);
        // Relaxed: only the lock holder writes log_end, and the flock orders
        // this load after the previous holder's store.
        let mut log_end = h.log_end().load(Ordering::Relaxed);
        if died {
            h.spill_recoveries().fetch_add(1, Ordering::Relaxed);
        }
        // Another process's round may also have deleted the segment this
        // one was writing (every segment retired): its handle is stale.
        let retired = local
            .writer
            .active_base()
            .is_some_and(|b| b < h.log_first_pos().load(Ordering::Relaxed));
        // The last round failed (a full disk, an I/O error): it may have
        // written past the published end, in this process or another, even
        // started segments there. A writer whose own view still matches the
        // published end would append beside them, and a later segment could
        // start below one of them (model seed 964767984: two segments, the
        // higher one holding the lower sequence numbers, and records past
        // their segment's end). Every writer resyncs, deleting them.
        let failed = h.spill_errno().load(Ordering::Relaxed) != 0;
        if died || retired || failed || local.synced_end != Some(log_end) {
            let (end, end_seq) = local.writer.resync(log_end, died)?;
            local.end_seq = end_seq;
            if end < log_end {
                // Records the log had published are gone (damaged storage).
                // Keep what is left consistent; readers past it get errors.
                spill::publish_log_end(ring, end);
            }
            local.synced_end = Some(end);
            log_end = end;
        }
        let groups: Vec<usize> = (0..ring.geo.max_groups as usize)
            .filter(|&g| ring.is_active(g))
            .collect();
        // The last round found the disk full: retention yields to it (what
        // groups need stays; history the policy keeps goes first).
        if h.spill_errno().load(Ordering::Relaxed) == libc::ENOSPC as u64 {
            self.retire_segments(ring, local, &groups, log_end, false)?;
        }
        // 2. Rejoin.
        for &g in &groups {
            if spill::rejoin(ring, g) {
                out.rejoined += 1;
            }
        }
        // 3. Spill.
        let (_, tail_pos) = ring.tail_now();
        let below = tail_pos.saturating_sub(ring.geo.capacity / 2);
        let lagging = groups.iter().any(|&g| {
            let (seq, pos) = unpack(ring.cursor_now(g));
            seq & DISK_BIT == 0 && pos < below
        });
        let journal = spill.opts.journal();
        let any_disk = groups.iter().any(|&g| ring.on_disk(g));
        if !(lagging || any_disk || journal) {
            if spill::front_now(ring).is_some() {
                spill::retire_front(ring);
            }
            self.retire_segments(ring, local, &groups, log_end, true)?;
            return Ok(out);
        }
        let (fseq, fpos) = match spill::front_now(ring) {
            Some(f) => f,
            None => {
                let f = spill::activate_front(ring);
                h.log_run_seq().store(f.0, Ordering::Relaxed);
                f
            }
        };
        local.buf.clear();
        local.recs.clear();
        // Records a round that died before moving FRONT did log already.
        let logged_below = local.end_seq.unwrap_or(0);
        let batch_first = fseq.max(logged_below);
        let (mut seq, mut pos) = (fseq, fpos);
        loop {
            match ring.slot_at(pos) {
                Slot::Uncommitted => {
                    out.blocked = pos < ring.tail_now().1;
                    break;
                }
                Slot::Pad { next } => pos = next,
                Slot::Record {
                    kind,
                    len,
                    seq: rseq,
                    ts_ns,
                    flags,
                    next,
                } => {
                    if rseq != seq {
                        return Err(LogError::Corrupt(format!(
                            "ring record at position {pos} has sequence {rseq}, expected {seq}"
                        )));
                    }
                    if seq < logged_below {
                        seq = seq.wrapping_add(1);
                        pos = next;
                        continue;
                    }
                    // An aborted record is logged as its sequence number
                    // alone (no bytes, no flags: a named producer's keeps
                    // FLAG_PRODUCER in the ring).
                    let (len, flags) = if kind == KIND_MSG {
                        (len as usize, flags)
                    } else {
                        (0, 0)
                    };
                    encode_record_with(&mut local.buf, seq, ts_ns, kind, flags, len, |dst| {
                        // SAFETY: FRONT is at or below `pos` and only this
                        // round (holding the spill lock) moves it, so producers
                        // do not overwrite the record; `len` was checked by
                        // `slot_at`.
                        unsafe { spill::copy_payload(ring, pos, dst) }
                    });
                    local.recs.push((seq, log_record_size(len as u64)));
                    seq = seq.wrapping_add(1);
                    pos = next;
                }
                Slot::Bad => {
                    return Err(LogError::Corrupt(format!(
                        "ring record at position {pos} has a bad length"
                    )))
                }
            }
        }
        let mut positions = Vec::new();
        if !local.recs.is_empty() {
            positions = local.writer.append(&local.buf, &local.recs)?;
            local.writer.sync_policy()?;
            crash_point("spill-written");
            let end = local.writer.end().unwrap_or(log_end);
            if log_end == h.log_first_pos().load(Ordering::Relaxed) {
                // The log was empty (new, or every segment retired).
                h.log_first_pos().store(log_end, Ordering::Relaxed);
                h.log_first_seq().store(batch_first, Ordering::Relaxed);
            }
            // Members on disk read up to it (`spill::log_end`).
            spill::publish_log_end(ring, end);
            h.log_end_seq().store(seq, Ordering::Relaxed);
            local.synced_end = Some(end);
            log_end = end;
            local.end_seq = Some(seq);
            h.spilled()
                .fetch_add(local.recs.len() as u64, Ordering::Relaxed);
            h.spill_bytes()
                .fetch_add(local.buf.len() as u64, Ordering::Relaxed);
            h.spill_rounds().fetch_add(1, Ordering::Relaxed);
            out.spilled = local.recs.len() as u64;
            crash_point("spill-published");
        }
        if pos != fpos {
            spill::advance_front(ring, seq, pos);
            ring.notify(Event::Data);
            crash_point("spill-front-moved");
        }
        // 4. Transfer, against the tail as it is now: producers went on
        // while this round wrote.
        let below = ring.tail_now().1.saturating_sub(ring.geo.capacity / 2);
        let run_seq = h.log_run_seq().load(Ordering::Relaxed);
        let mut reader = spill.reader();
        for &g in &groups {
            let moved = spill::transfer(ring, g, below, |s| {
                if s >= batch_first && s < seq {
                    positions.get((s - batch_first) as usize).copied()
                } else if s >= run_seq && s < batch_first {
                    // In the log's unbroken run: it must be there (a group's
                    // backlog is never retired), or `check` reports it.
                    let at = reader
                        .find(s, log_end)
                        .ok()
                        .flatten()
                        .filter(|&at| reader.read_head(at).is_ok_and(|(rec, _)| rec.seq == s));
                    if at.is_none() {
                        h.spill_backlog_missing().fetch_add(1, Ordering::Relaxed);
                    }
                    at
                } else {
                    None
                }
            });
            if moved {
                crash_point("spill-transferred-one");
                out.transferred += 1;
                h.spill_transfers().fetch_add(1, Ordering::Relaxed);
            }
        }
        // 5. Retire FRONT and old segments.
        // (Again: step 4 may have moved groups onto the log.)
        if !groups.iter().any(|&g| ring.on_disk(g)) && !journal {
            spill::retire_front(ring);
        }
        crash_point("spill-retiring");
        self.retire_segments(ring, local, &groups, log_end, true)?;
        Ok(out)
    }

    /// Deletes the segments below every group on the log (all but the one
    /// being written when none is), as far as retention allows.
    fn retire_segments<R: Region>(
        &self,
        ring: &Ring<R>,
        local: &mut Local,
        groups: &[usize],
        log_end: u64,
        retain: bool,
    ) -> Result<(), LogError> {
        let keep_from = groups
            .iter()
            .map(|&g| unpack(ring.cursor_now(g)))
            .filter(|(s, _)| s & DISK_BIT != 0)
            .map(|(_, at)| at)
            .min()
            .unwrap_or(log_end)
            .min(log_end);
        // Read after the cursors: a member writes its entry before moving its
        // group's disk cursor past the message, so one of the two shows it.
        let keep_from = ack::min_disk_entry(ring).map_or(keep_from, |at| keep_from.min(at));
        // Groups on the ring keep what they have not read: a journal logs
        // every message, and deleting a lagging group's backlog would leave
        // it no log to move onto (producers then wait on it).
        let keep_seq = groups
            .iter()
            .map(|&g| unpack(ring.cursor_now(g)).0)
            .filter(|s| s & DISK_BIT == 0)
            .min()
            .unwrap_or(u64::MAX);
        // Relaxed: written under the spill lock we hold.
        let end_seq = ring.header().log_end_seq().load(Ordering::Relaxed);
        let h = ring.header();
        let publish = |first_pos, first_seq| {
            // Relaxed: read under the spill lock, or as a hint (`dump`,
            // `retained`) by a reader that learns of a deleted segment only
            // through the file system, whose locks order the unlink after
            // these stores.
            h.log_first_pos().store(first_pos, Ordering::Relaxed);
            h.log_first_seq().store(first_seq, Ordering::Relaxed);
        };
        local
            .writer
            .retire(keep_from, keep_seq, log_end, end_seq, retain, publish)?;
        Ok(())
    }
}
