//! Delayed delivery: messages scheduled for later ([`Producer::schedule`]),
//! released when due by whichever attached process polls, with no daemon.
//!
//! # Scheduling
//! A scheduled message is written to the queue's staging directory as a
//! file of its own (file.rs), named after its due time and a schedule id
//! from the header's STAGE SEQ, and invisible to every group: it has no
//! sequence number yet. Then the header's NEXT DUE hint is lowered to its
//! due time if that is earlier, and waiting members are woken, so that
//! they wait no longer than until it is due.
//!
//! # Release
//! When it is due, the message is published like any other message and
//! gets its sequence number then (as RocketMQ re-publishes a delayed
//! message from its schedule topic): it comes after what was published
//! before it was due. Releasing is done by the queue's own named producer
//! [`RELEASER_NAME`], which one process at a time attaches to; each due
//! file is published through it exactly once (publish.rs), in due order.
//! A process that finds the name taken leaves the release to its holder.
//!
//! Who polls: every member waiting for messages wakes at the NEXT DUE time
//! at the latest (consumer/mod.rs), a member that keeps receiving looks at
//! its upkeep (every 256 receives), and so does [`Queue::release_due`]. A
//! scheduled message is released within a few milliseconds of its due time
//! while a member of any group waits; with no process attached it waits
//! in its file (a crash of every process loses nothing) until one is.
//!
//! # The hint
//! NEXT DUE is never above the earliest due time in the directory, so no
//! poller sleeps past one. It is lowered (a CAS loop, to the minimum) after
//! a file is written, and raised only by the releaser, by one CAS from the
//! value it read *before* listing the directory to the earliest due time
//! it left in it: a file written after that listing lowers the hint after
//! that read, so either the CAS fails (the hint stays low) or the file's
//! own lowering comes after it. A releaser that dies leaves the hint as it
//! was, at or below every file it left. A hint too low costs a poll that
//! finds nothing due, and that poll corrects it.

use super::dir::{self, Name, SCHEDULED_PREFIX};
use super::file::{encode, Staged, StagedMsg, KIND_SCHEDULED};
use super::publish::{self, Outcome};
use crate::error::{ProducerError, SendError, StagedError};
use crate::os::clock::now_ns;
use crate::protocol::layout::RELEASER_NAME;
use crate::protocol::ring::Ring;
use crate::protocol::wait::Event;
use crate::region::Region;
use crate::sync::Ordering;
use crate::{Producer, Queue, SendOptions};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// When a scheduled message is due ([`Producer::schedule`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Due {
    /// This long after it is scheduled.
    After(Duration),
    /// At this wall-clock time (CLOCK_REALTIME); a time past is due at once.
    At(SystemTime),
}

impl Due {
    /// Its wall-clock time in ns since the epoch, for a message scheduled
    /// at `now` (ns); at least 1.
    fn ns(self, now: u64) -> u64 {
        let clamp = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        match self {
            Due::After(d) => now.saturating_add(clamp(d)),
            Due::At(t) => t.duration_since(UNIX_EPOCH).map_or(0, clamp),
        }
        .max(1)
    }
}

/// A message scheduled for later delivery ([`Producer::schedule`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Scheduled {
    /// Its schedule id, unique in the queue.
    pub id: u64,
    /// When it is due: ns since the Unix epoch (CLOCK_REALTIME).
    pub due_ns: u64,
}

impl Producer {
    /// Schedules `msg` (with `opts`: a key, a TTL) for delivery when `due`
    /// comes: until then no group sees it; then it is published like a
    /// message sent at that moment, and gets its sequence number then. A
    /// TTL counts from then. Kept in a file in the queue's staging
    /// directory (`<queue path>.staged`) until released, so it survives
    /// every process crashing; released by any attached process that polls
    /// (members waiting for messages do), within milliseconds of its due
    /// time while a member waits. Each scheduled message is published
    /// exactly once, by the queue's own producer
    /// [`RELEASER_NAME`](crate::RELEASER_NAME): its messages carry that
    /// producer's id, not this one's, and no pseq of this producer.
    ///
    /// # Errors
    /// [`StagedError::Send`] with [`SendError::TooLarge`] or
    /// [`SendError::KeyTooLong`]; [`StagedError::Io`] if the file cannot
    /// be written.
    ///
    /// ```
    /// use std::time::Duration;
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("audit", shmq::StartAt::Latest)?;
    /// let mut audit = q.consumer("audit").attach()?;
    /// let mut p = q.producer().attach()?;
    /// let s = p.schedule(b"reminder", shmq::Due::After(Duration::from_millis(20)), &shmq::SendOptions::new())?;
    /// p.send(b"now")?;
    /// assert_eq!(audit.recv()?.payload, b"now");
    /// assert_eq!(q.stat().staged.scheduled, 1);
    /// // The member waits until it is due, and releases it.
    /// let m = audit.recv()?;
    /// assert_eq!(m.payload, b"reminder");
    /// assert!(shmq::clock::now_ns() >= s.due_ns);
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn schedule(
        &mut self,
        msg: &[u8],
        due: Due,
        opts: &SendOptions,
    ) -> Result<Scheduled, StagedError> {
        schedule(self.queue(), msg, due, opts)
    }
}

fn schedule(q: &Queue, msg: &[u8], due: Due, opts: &SendOptions) -> Result<Scheduled, StagedError> {
    let m = StagedMsg::new(msg, opts);
    m.check(q.geo().max_msg as usize)?;
    let ring = q.ring();
    let now = now_ns();
    let due_ns = due.ns(now);
    // Relaxed: ids need only be unique.
    let id = ring.header().stage_seq().fetch_add(1, Ordering::Relaxed) + 1;
    let staged = Staged {
        kind: KIND_SCHEDULED,
        id,
        due_or_producer: due_ns,
        made_ns: now,
        msgs: vec![m],
    };
    let (dir, mode) = q.staged_dir();
    dir::write_new(
        dir,
        &dir::scheduled_name(due_ns, id),
        &encode(&staged),
        mode,
        false,
    )
    .map_err(|source| StagedError::Io {
        what: format!("{}: cannot schedule a message", dir.display()),
        source,
    })?;
    lower_hint(ring, due_ns);
    // Waiting members plan their wait by the hint: they look again.
    ring.notify(Event::Data);
    if due_ns <= now {
        // Best effort: a poller releases it otherwise.
        let _ = q.release_due();
    }
    Ok(Scheduled { id, due_ns })
}

/// The NEXT DUE hint: when the earliest scheduled message is due (ns),
/// 0 if none is known.
#[inline]
pub(crate) fn next_due<R: Region>(ring: &Ring<R>) -> u64 {
    // Relaxed: a hint; what it leads to is read from the directory.
    ring.header().next_due().load(Ordering::Relaxed)
}

/// Lowers the hint to `due` if it is later (or unset).
fn lower_hint<R: Region>(ring: &Ring<R>, due: u64) {
    let h = ring.header().next_due();
    // SeqCst: ordered after this process's rename of the file (a syscall)
    // and against the releaser's read and CAS (module docs).
    let mut cur = h.load(Ordering::SeqCst);
    while cur == 0 || due < cur {
        match h.compare_exchange_weak(cur, due, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => break,
            Err(c) => cur = c,
        }
    }
}

/// What a waiting member calls: releases what is due if the hint says so,
/// leaving errors for `stat`, `check` and [`Queue::release_due`] to show.
/// Whether it released any.
pub(crate) fn poll(q: &Queue) -> bool {
    let hint = next_due(q.ring());
    hint != 0 && hint <= now_ns() && q.release_due().is_ok_and(|n| n > 0)
}

impl Queue {
    /// Publishes every scheduled message that is due
    /// ([`Producer::schedule`]), in due order, each exactly once; returns
    /// how many. Members waiting for messages do this on their own; call it
    /// from a process that attaches no member to have messages released
    /// anyway. Returns 0 at once when nothing is due, or when another
    /// thread or process is releasing (it releases them). Stops at a full
    /// ring (what is left is released by a later poll).
    ///
    /// # Errors
    /// [`StagedError::Io`]; [`StagedError::Damaged`] for a file that was
    /// moved aside (the others are released); [`StagedError::Producer`] if
    /// the queue's releasing producer cannot attach (its name cannot be
    /// made: the table of names is full).
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("audit", shmq::StartAt::Latest)?;
    /// let mut p = q.producer().attach()?;
    /// let past = SystemTime::now() - Duration::from_secs(1);
    /// p.schedule(b"late", shmq::Due::At(past), &shmq::SendOptions::new())?;
    /// // Released by `schedule` itself, which found it due already.
    /// assert_eq!(q.release_due()?, 0);
    /// assert_eq!(q.consumer("audit").attach()?.recv()?.payload, b"late");
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn release_due(&self) -> Result<usize, StagedError> {
        let ring = self.ring();
        // SeqCst: read before the directory is listed (module docs).
        let hint = ring.header().next_due().load(Ordering::SeqCst);
        let now = now_ns();
        if hint == 0 || hint > now {
            return Ok(0);
        }
        let mut p = match self.named_producer_unchecked(RELEASER_NAME) {
            Ok(p) => p,
            Err(
                ProducerError::NameInUse { .. }
                | ProducerError::Unsettled { .. }
                | ProducerError::RegistryFull { .. },
            ) => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        let (dir, _) = self.staged_dir();
        let io = |source| StagedError::Io {
            what: format!("{}: cannot release scheduled messages", dir.display()),
            source,
        };
        let max_msg = self.geo().max_msg as usize;
        publish::settle(dir, SCHEDULED_PREFIX, 'r', p.next_pseq().unwrap_or(0)).map_err(io)?;
        let (mut released, mut left, mut error, mut stop) = (0, 0u64, None, false);
        for (name, parsed) in dir::list(dir).map_err(io)? {
            let Name::Scheduled {
                due_ns,
                releasing: None,
                ..
            } = parsed
            else {
                continue;
            };
            if stop || due_ns > now {
                left = if left == 0 { due_ns } else { left.min(due_ns) };
                continue;
            }
            let next = p.next_pseq().unwrap_or(0);
            let mut send = |msgs: &[StagedMsg], pseq| p.send_staged(msgs, Some(pseq), false);
            match publish::publish_once(dir, &name, 'r', next, max_msg, &mut send) {
                Ok(Outcome::Published(_)) => released += 1,
                Ok(Outcome::Gone) => {}
                Ok(Outcome::Refused(e)) => {
                    left = if left == 0 { due_ns } else { left.min(due_ns) };
                    stop = true;
                    if !matches!(e, SendError::Full) {
                        error = Some(StagedError::Send(e));
                    }
                }
                Err(e @ StagedError::Damaged { .. }) => {
                    error.get_or_insert(e);
                }
                Err(e) => {
                    left = if left == 0 { due_ns } else { left.min(due_ns) };
                    stop = true;
                    error = Some(e);
                }
            }
        }
        // SeqCst: see the module docs. A failed CAS means a schedule
        // lowered the hint meanwhile, and it stays.
        let _ = ring.header().next_due().compare_exchange(
            hint,
            left,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        drop(p);
        match error {
            Some(e) => Err(e),
            None => Ok(released),
        }
    }

    /// Sets the NEXT DUE hint from the staging directory, so that nothing
    /// left there by processes that all died waits for a hint (a scheduler
    /// killed between writing its file and lowering the hint, while a
    /// releaser raised it). Called when a member attaches.
    pub(crate) fn rescan_scheduled(&self) {
        let (dir, _) = self.staged_dir();
        if let Ok(files) = dir::list(dir) {
            if let Some(due) = files.iter().find_map(|(_, n)| match n {
                Name::Scheduled { due_ns, .. } => Some(*due_ns),
                Name::Txn { .. } => None,
            }) {
                lower_hint(self.ring(), due);
            }
        }
    }
}
