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
//! NEXT DUE is never above the earliest due time in the directory once
//! the operations in progress finished, so no poller sleeps past one: its
//! protocol (schedulers lower it, the releaser raises it from what it read
//! before listing, then lists again) is in protocol/due.rs, model-checked
//! by loom. A releaser that dies leaves the hint as it was, at or below
//! every file it left. A scheduler killed between its rename and its
//! lowering leaves a file the hint may not cover: members look again at the
//! directory when it changed (at upkeep, at most once a second each), so do
//! a member attaching and [`Queue::release_due`]; a look that lowers the
//! hint wakes waiting members. A hint too low costs a poll that finds
//! nothing due, and that poll corrects it.
//!
//! # Polling without a storm
//! A poll that finds something due but cannot release it all (another
//! process holds the name or the admin lock, the ring is full) makes this
//! process wait before it tries again: 1 ms, doubling up to 100 ms, reset
//! by a release that leaves nothing due. Polls never block: the admin lock
//! and the ring are tried, not waited for (a member must never wait for
//! room its own group holds).
//!
//! # The releasing name
//! [`RELEASER_NAME`] takes one slot of the table of producer names
//! (`max_producers`), made by the first `schedule` (refused with
//! [`ProducerError::NamesFull`] if there is none), so that a message is
//! never scheduled that could not be released.

use super::dir::{self, Name, SCHEDULED_PREFIX};
use super::file::{encode, Staged, StagedMsg, KIND_SCHEDULED};
use super::publish::{self, Outcome};
use crate::error::{ProducerError, SendError, StagedError};
use crate::os::clock::{monotonic_ns, now_ns};
use crate::protocol::due;
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
    /// directory (`<queue path>.staged/<nonce>`) until released, so it survives
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
    ensure_releaser(q)?;
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
    due::lower(ring, due_ns);
    // Waiting members plan their wait by the hint: they look again.
    ring.notify(Event::Data);
    if due_ns <= now {
        // Best effort: a poller releases it otherwise.
        let _ = q.release_due();
    }
    Ok(Scheduled { id, due_ns })
}

/// Makes sure the queue's releasing producer has its name, so that a
/// message is not scheduled that could never be released (the table of
/// names full): refused then, with [`ProducerError::NamesFull`].
fn ensure_releaser(q: &Queue) -> Result<(), StagedError> {
    if crate::protocol::identity::find_identity(q.ring(), RELEASER_NAME.as_bytes()).is_some() {
        return Ok(());
    }
    match q.named_producer_unchecked(RELEASER_NAME, true) {
        Err(e @ ProducerError::NamesFull { .. }) => Err(e.into()),
        // Made, or in use; or not now (the registry full): made when due.
        _ => Ok(()),
    }
}

/// The NEXT DUE hint (protocol/due.rs): 0 if none is known.
#[inline]
pub(crate) fn next_due<R: Region>(ring: &Ring<R>) -> u64 {
    due::next_due(ring)
}

/// The first wait after a release that left a due message behind (a full
/// ring, the releasing name held elsewhere); doubled up to [`BACKOFF_MAX`].
const BACKOFF_MIN: u64 = 1_000_000;
/// The longest wait between two release attempts of one process.
const BACKOFF_MAX: u64 = 100_000_000;

/// What a polling process calls (a waiting member, upkeep, `try_recv`):
/// releases what is due if the hint says so and this process is not
/// backing off, leaving errors for `stat`, `check` and
/// [`Queue::release_due`] to show. Whether it released any.
pub(crate) fn poll(q: &Queue) -> bool {
    let hint = next_due(q.ring());
    if hint == 0 || hint > now_ns() {
        return false;
    }
    let mono = monotonic_ns();
    if mono < q.release_retry().0 {
        return false;
    }
    let r = release(q, false);
    let mut retry = q.release_retry();
    retry.1 = match r.blocked {
        // Another thread or process is at it: look again soon.
        Some(Blocked::Busy) => BACKOFF_MIN,
        // Not all released (the ring full, a file that cannot be read):
        // try again later, not at every poll of every member.
        Some(Blocked::Stuck) => (retry.1 * 2).clamp(BACKOFF_MIN, BACKOFF_MAX),
        None => 0,
    };
    retry.0 = if retry.1 == 0 { 0 } else { mono + retry.1 };
    r.released > 0
}

/// How long this process waits before its next release attempt, if it is
/// backing off: a waiting member sleeps that long, not less (it would only
/// wake to find polls suppressed).
pub(crate) fn backing_off(q: &Queue) -> Option<Duration> {
    let at = q.release_retry().0;
    at.checked_sub(monotonic_ns())
        .filter(|&d| d > 0)
        .map(Duration::from_nanos)
}

/// Why a release left something due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Blocked {
    /// The name or the admin lock is held elsewhere (being released).
    Busy,
    /// The ring is full, or a file could not be read or moved aside.
    Stuck,
}

/// What a release did.
struct Release {
    released: usize,
    /// Why a due message could not be released (or may not have been: the
    /// release did not run), if one could not.
    blocked: Option<Blocked>,
    error: Option<StagedError>,
}

/// Releases what is due now. `block`: wait for the admin lock (else a lock
/// held elsewhere leaves it for later).
fn release(q: &Queue, block: bool) -> Release {
    let mut out = Release {
        released: 0,
        blocked: Some(Blocked::Busy),
        error: None,
    };
    let ring = q.ring();
    // Read before the directory is listed (protocol/due.rs).
    let hint = due::read(ring);
    let now = now_ns();
    if hint == 0 || hint > now {
        out.blocked = None;
        return out;
    }
    let mut p = match q.named_producer_unchecked(RELEASER_NAME, block) {
        Ok(p) => p,
        // Another thread or process is releasing, or will: the name is
        // held (or its dead holder not settled yet), the admin lock is.
        Err(
            ProducerError::NameInUse { .. }
            | ProducerError::Unsettled { .. }
            | ProducerError::RegistryFull { .. },
        ) => return out,
        Err(ProducerError::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => return out,
        Err(e) => {
            out.blocked = Some(Blocked::Stuck);
            out.error = Some(e.into());
            return out;
        }
    };
    out.blocked = Some(Blocked::Stuck);
    let (dir, _) = q.staged_dir();
    let io = |source| StagedError::Io {
        what: format!("{}: cannot release scheduled messages", dir.display()),
        source,
    };
    let limits = (q.geo().max_msg as usize, q.geo().capacity);
    if let Err(e) = publish::settle(dir, SCHEDULED_PREFIX, 'r', p.next_pseq().unwrap_or(0)) {
        out.error = Some(io(e));
        return out;
    }
    let files = match dir::list(dir) {
        Ok(f) => f,
        Err(e) => {
            out.error = Some(io(e));
            return out;
        }
    };
    let (mut left, mut stop, mut stuck) = (0u64, false, false);
    let mut keep = |due: u64| left = if left == 0 { due } else { left.min(due) };
    for (name, parsed) in files {
        let Name::Scheduled {
            due_ns,
            releasing: None,
            ..
        } = parsed
        else {
            continue;
        };
        if stop || due_ns > now {
            keep(due_ns);
            continue;
        }
        let next = p.next_pseq().unwrap_or(0);
        let mut send = |msgs: &[StagedMsg], pseq| {
            // A scheduled file holds one message (file.rs checks the kind).
            p.send_staged(msgs, Some(pseq), false)
        };
        match publish::publish_once(dir, &name, 'r', next, limits, &mut send) {
            Ok(Outcome::Published(_)) => out.released += 1,
            Ok(Outcome::Gone) => {}
            Ok(Outcome::Refused(SendError::Full | SendError::Spill(_))) => {
                keep(due_ns);
                stop = true;
            }
            Ok(Outcome::Refused(e)) => {
                // Refused for good (too large for this queue): never
                // publishable, and it must not hold back the others.
                if !dir::quarantine(dir, &name) {
                    keep(due_ns);
                    stuck = true;
                }
                out.error.get_or_insert(StagedError::Damaged {
                    file: dir.join(format!("{name}.bad")),
                    reason: crate::error::Reason::new(e.to_string()),
                });
            }
            Err(e @ StagedError::Damaged { .. }) => {
                if dir.join(&name).exists() || dir.join(dir::marked(&name, 'r', next)).exists() {
                    // Not moved aside: it would be tried at every poll.
                    keep(due_ns);
                    stuck = true;
                }
                out.error.get_or_insert(e);
            }
            Err(e) => {
                // This file could not be read, or unmarked: the others
                // go on; it is tried again after a back-off.
                keep(due_ns);
                stuck = true;
                out.error.get_or_insert(e);
            }
        }
    }
    // SeqCst: see the module docs. A failed CAS means a schedule lowered
    // the hint meanwhile, and it stays. After a raise, a file renamed into
    // place after the listing above lowers it again itself, and one renamed
    // before it but after the listing is found by listing again.
    if due::raise(ring, hint, left) && q.rescan_scheduled().is_err() {
        // Without the second listing the raise may hide a file: back to
        // what was read (a poll too early costs nothing).
        due::lower(ring, hint);
    }
    drop(p);
    // Blocked, not merely something come due while it ran (that one the
    // next poll releases at once).
    out.blocked = (stop || stuck).then_some(Blocked::Stuck);
    out
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
    /// the queue's releasing producer cannot attach.
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
        // The directory says what is there, whatever the hint says.
        self.rescan_scheduled().map_err(|source| StagedError::Io {
            what: format!("{}: cannot list", self.staged_dir().0.display()),
            source,
        })?;
        let r = release(self, true);
        match r.error {
            Some(e) => Err(e),
            None => Ok(r.released),
        }
    }

    /// Lowers the NEXT DUE hint to the earliest due time in the staging
    /// directory, so that nothing waits for a hint lost (a scheduler killed
    /// between writing its file and lowering the hint, while a releaser
    /// raised it). Called when a member attaches, by `release_due` and
    /// after a releaser raised the hint.
    pub(crate) fn rescan_scheduled(&self) -> std::io::Result<()> {
        let (dir, _) = self.staged_dir();
        let files = dir::list(dir)?;
        if let Some(due) = files.iter().find_map(|(_, n)| match n {
            Name::Scheduled { due_ns, .. } => Some(*due_ns),
            Name::Txn { .. } => None,
        }) {
            if due::lower(self.ring(), due) {
                // Members waiting by the old hint plan again.
                self.ring().notify(Event::Data);
            }
        }
        Ok(())
    }

    /// `rescan_scheduled` if the staging directory changed since this
    /// process last looked (a member's upkeep).
    pub(crate) fn rescan_if_changed(&self) {
        if self.staged_changed() {
            // A failure is looked at again at the next change, or attach.
            let _ = self.rescan_scheduled();
        }
    }
}
