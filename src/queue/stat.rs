//! `stat`: the live state of a queue, as `shmq stat` shows it.

use crate::os::liveness;
use crate::protocol::group::GroupInfo;
use crate::protocol::identity::NameStat;
use crate::protocol::layout::*;
use crate::protocol::{ack, group, identity, registry, spill};
use crate::queue::Queue;
use crate::region::Region;

use crate::spill::log::list_segments;
use crate::sync::{AtomicU64, Ordering};

use std::path::PathBuf;

/// Live state of a queue, as `shmq stat` shows it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Stat {
    /// The geometry.
    pub geometry: Geometry,
    /// Next sequence number to be assigned.
    pub tail_seq: u64,
    /// Byte position of the tail.
    pub tail_pos: u64,
    /// Oldest sequence number the ring still holds.
    pub head_seq: u64,
    /// Times a producer found the ring full and had to wait or fail.
    pub full_waits: u64,
    /// Times a producer found the ring full behind a claim another producer
    /// had not committed yet, or behind a message a member was still reading
    /// (a process descheduled or stopped mid-operation), not a group's backlog.
    pub stall_waits: u64,
    /// Claims abandoned without a message (their sequence numbers are skipped).
    pub aborted: u64,
    /// Consumers counted asleep: every commit pays a futex wake while this is
    /// not zero (members killed asleep stay counted until reaped).
    pub sleeping_consumers: u32,
    /// Producers counted asleep on a full ring: every release pays a futex
    /// wake while this is not zero.
    pub sleeping_producers: u32,
    /// Registered groups.
    pub groups: Vec<GroupStat>,
    /// Registered producers.
    pub producers: Vec<ProducerStat>,
    /// Producer names ([`ProducerBuilder::name`](crate::ProducerBuilder::name)).
    pub names: Vec<NameStat>,
    /// The spill log, if the queue has one.
    pub spill: Option<SpillStat>,
    /// Messages scheduled for later and prepared transactions.
    pub staged: crate::staged::StagedStat,
}

/// A dead member [`Queue::gc`] removed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemovedMember {
    /// Its group.
    pub group: String,
    /// Its process.
    pub pid: u64,
    /// It was killed while asleep waiting for messages: wakers no longer
    /// count it (until then every commit paid a futex wake for it).
    pub asleep: bool,
}

/// A registered producer in [`Stat`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ProducerStat {
    /// Its process.
    pub pid: u64,
    /// The name it publishes under, if it is a named producer.
    pub name: Option<String>,
    /// Whether that process is alive (a dead one's slot is freed, and any
    /// claim it left uncommitted aborted, by the next recovery).
    pub alive: bool,
    /// First sequence number of the claim it holds or is about to make.
    pub claim_seq: Option<u64>,
    /// Asleep waiting for space in a full ring.
    pub asleep: bool,
}

/// The spill log in [`Stat`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SpillStat {
    /// Its directory.
    pub dir: PathBuf,
    /// Segment files.
    pub segments: u64,
    /// Bytes of log retained.
    pub bytes: u64,
    /// Oldest and newest retained sequence numbers (`None` while empty).
    pub first_seq: Option<u64>,
    /// See `first_seq`.
    pub last_seq: Option<u64>,
    /// Messages written to the log since creation.
    pub spilled: u64,
    /// Bytes written to the log since creation.
    pub spill_bytes: u64,
    /// Rounds that wrote to the log.
    pub rounds: u64,
    /// Times a group moved from the ring to the log.
    pub transfers: u64,
    /// Rounds that failed (disk full, I/O error).
    pub errors: u64,
    /// Rounds that found the previous round unfinished (its process died)
    /// and recovered the log.
    pub recoveries: u64,
    /// errno of the last failure, if the last round failed.
    pub last_errno: Option<i32>,
    /// Where the spill front is (the next sequence number to be logged), when
    /// it is active.
    pub front_seq: Option<u64>,
    /// A round in progress: the pid of the process running it (holding the
    /// spill lock, unless it died) and how long it has run. Producers that
    /// need a round wait for it (a timed send no longer than its timeout).
    pub round: Option<(u64, std::time::Duration)>,
}

/// One group in [`Stat`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct GroupStat {
    /// Name.
    pub name: String,
    /// Next sequence number the group will deliver.
    pub next_seq: u64,
    /// `tail_seq - next_seq`: messages published and not yet taken by the group.
    pub lag: u64,
    /// Attached members, with their liveness.
    pub members: Vec<MemberStat>,
    /// Whether the group reads the spill log (it fell a ring behind) rather
    /// than the ring.
    pub on_disk: bool,
    /// Messages waiting for redelivery (nacked, left unacknowledged by a
    /// member that left or died, or held past the ack deadline).
    pub pending: u64,
    /// Entries of the group's ack table in use (held or pending), of
    /// `Geometry::ack_entries`.
    pub ack_entries_used: u64,
    /// Messages a member may hold unacknowledged at once (its window).
    pub max_unacked: u64,
    /// The ack deadline, if the group has one.
    pub ack_wait: Option<std::time::Duration>,
    /// Holds ended by the ack deadline (redelivered to another member).
    pub expired: u64,
    /// The group's default time to live ([`Queue::set_ttl`](crate::Queue::set_ttl)), if it has one.
    pub ttl: Option<std::time::Duration>,
    /// Messages whose time to live (their own or the group's) ran out
    /// before a member took them: given up, to the dead-letter group if
    /// there is one (then counted in `dead_lettered` too).
    pub ttl_expired: u64,
    /// Whether the group is ordered by key ([`Queue::set_ordered_by_key`](crate::Queue::set_ordered_by_key)).
    pub ordered_by_key: bool,
    /// Messages taken from the cursor while an earlier one of their key was
    /// out, parked in the ack table until it was finished.
    pub parked: u64,
    /// Entries of the ack table by state, for diagnosis: (state, owning
    /// member slot or None, sequence number), every entry in use.
    pub ack_entries: Vec<(&'static str, Option<usize>, u64)>,
    /// Redeliveries handed out so far.
    pub redelivered: u64,
    /// Messages given up after `max_attempts` deliveries.
    pub dead_lettered: u64,
    /// Deliveries after which a message is given up (0: no limit).
    pub max_attempts: u64,
    /// The dead-letter group given-up messages go to (otherwise they are
    /// only counted).
    pub dead_letter: Option<String>,
    /// Whether this is a dead-letter group: it receives only the messages
    /// other groups gave up and sent to it.
    pub dead_letters_only: bool,
}

/// One member in [`GroupStat`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MemberStat {
    /// Process id.
    pub pid: u64,
    /// Whether that process still runs.
    pub alive: bool,
    /// Messages handed to it.
    pub delivered: u64,
    /// Messages it acknowledged explicitly or by auto-ack of a redelivery.
    pub acked: u64,
    /// The messages it holds unacknowledged, in sequence order.
    pub unacked: Vec<u64>,
    /// Asleep waiting for messages (a dead member still marked asleep was
    /// killed in its sleep; the next reaping takes it out of the count).
    pub asleep: bool,
}

impl Queue {
    /// The queue's live state.
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("audit", shmq::StartAt::Latest)?;
    /// let mut audit = q.consumer("audit").attach()?;
    /// let _p = q.producer().name("ingest").attach()?;
    /// q.producer().attach()?.send_batch(&[b"a", b"b", b"c"])?;
    /// audit.recv()?;
    /// let stat = q.stat();
    /// assert_eq!(stat.tail_seq, 3);
    /// let g = &stat.groups[0];
    /// assert_eq!((g.name.as_str(), g.next_seq, g.lag), ("audit", 1, 2));
    /// assert_eq!(g.members.len(), 1);
    /// assert!(g.members[0].alive);
    /// assert_eq!(stat.producers.len(), 1); // the anonymous one was dropped
    /// assert_eq!(stat.names[0].name, "ingest");
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn stat(&self) -> Stat {
        let ring = self.ring();
        let (tail_seq, tail_pos) = ring.tail_now();
        let (head_seq, _) = ring.head_now();
        let slots = registry::producer_slots(ring);
        let name_stats = identity::identities(ring);
        let infos = group::groups(ring);
        let names: std::collections::HashMap<usize, String> =
            infos.iter().map(|g| (g.slot, g.name.clone())).collect();
        let groups = infos
            .into_iter()
            .map(|g: GroupInfo| {
                let (_, redelivered, dead_lettered, max_attempts, dl) =
                    ack::ack_stats(ring, g.slot);
                let entries = ack::entries(ring, g.slot);
                let pending = entries
                    .iter()
                    .filter(|(_, w, _)| crate::protocol::ack::word_state(*w) == ENTRY_PENDING)
                    .count() as u64;
                let wait = ack::ack_wait_ns(ring, g.slot);
                GroupStat {
                    ack_entries_used: entries
                        .iter()
                        .filter(|(_, w, _)| crate::protocol::ack::word_state(*w) != ENTRY_RESERVED)
                        .count() as u64,
                    max_unacked: ack::max_unacked(ring, g.slot),
                    ack_wait: (wait != 0).then(|| std::time::Duration::from_nanos(wait)),
                    expired: ack::expired(ring, g.slot),
                    ttl: match crate::protocol::ttl::group_ttl(ring, g.slot) {
                        0 => None,
                        ns => Some(std::time::Duration::from_nanos(ns)),
                    },
                    ttl_expired: crate::protocol::ttl::expired(ring, g.slot),
                    ordered_by_key: crate::protocol::order::keyed(ring, g.slot),
                    parked: crate::protocol::order::parked(ring, g.slot),
                    ack_entries: entries
                        .iter()
                        .filter(|(_, w, _)| crate::protocol::ack::word_state(*w) != ENTRY_RESERVED)
                        .map(|(_, w, e)| {
                            let owner = crate::protocol::ack::word_owner(*w);
                            (
                                crate::protocol::ack::state_name(*w),
                                (owner < ring.geo.max_members as usize
                                    && crate::protocol::ack::word_state(*w) != ENTRY_PENDING)
                                    .then_some(owner),
                                e.seq,
                            )
                        })
                        .collect(),
                    dead_letter: dl.and_then(|d| names.get(&d).cloned()),
                    dead_letters_only: ring.dl_only(g.slot),
                    pending,
                    redelivered,
                    dead_lettered,
                    max_attempts,
                    on_disk: g.on_disk,
                    lag: tail_seq.saturating_sub(g.next_seq),
                    name: g.name,
                    next_seq: g.next_seq,
                    members: g
                        .members
                        .iter()
                        .map(|m| MemberStat {
                            pid: m.pid,
                            alive: liveness::is_alive(m.pid, m.start_time),
                            delivered: m.delivered,
                            acked: m.acked,
                            unacked: m.unacked.clone(),
                            asleep: m.asleep,
                        })
                        .collect(),
                }
            })
            .collect();
        Stat {
            staged: crate::staged::stat(self.staged_dir().0),
            geometry: ring.geo,
            tail_seq,
            tail_pos,
            head_seq,
            full_waits: ring.header().full_waits().load(Ordering::Relaxed),
            stall_waits: ring.header().stall_waits().load(Ordering::Relaxed),
            aborted: ring.header().aborted().load(Ordering::Relaxed),
            sleeping_consumers: ring.region.u32_at(OFF_DATA_WAITERS).load(Ordering::Relaxed),
            sleeping_producers: ring
                .region
                .u32_at(OFF_SPACE_WAITERS)
                .load(Ordering::Relaxed),
            groups,
            producers: slots
                .into_iter()
                .map(|p| ProducerStat {
                    name: p
                        .ident
                        .and_then(|i| name_stats.iter().find(|n| n.slot() == i))
                        .map(|n| n.name.clone()),
                    pid: p.pid,
                    alive: liveness::is_alive(p.pid, p.start_time),
                    claim_seq: p.claim.map(|c| c.0),
                    asleep: p.asleep,
                })
                .collect(),
            names: name_stats,
            spill: self.spill_stat(),
        }
    }

    fn spill_stat(&self) -> Option<SpillStat> {
        let sp = self.inner.spill.as_ref()?;
        let ring = self.ring();
        // Relaxed: a snapshot for display.
        let h = ring.header();
        let w = |word: &AtomicU64| word.load(Ordering::Relaxed);
        let (log_end, first_pos) = (w(h.log_end()), w(h.log_first_pos()));
        let retained = log_end > first_pos;
        let errno = w(h.spill_errno());
        Some(SpillStat {
            dir: sp.opts.dir.clone(),
            segments: list_segments(&sp.opts.dir).map_or(0, |s| s.len() as u64),
            bytes: log_end.saturating_sub(first_pos),
            first_seq: retained.then(|| w(h.log_first_seq())),
            last_seq: retained.then(|| w(h.log_end_seq()).wrapping_sub(1)),
            spilled: w(h.spilled()),
            spill_bytes: w(h.spill_bytes()),
            rounds: w(h.spill_rounds()),
            transfers: w(h.spill_transfers()),
            errors: w(h.spill_errors()),
            recoveries: w(h.spill_recoveries()),
            last_errno: (errno != 0).then_some(errno as i32),
            front_seq: spill::front_now(ring).map(|f| f.0),
            round: match (w(h.spill_in_round()), w(h.spill_round_since())) {
                (0, _) => None,
                (pid, since) => Some((
                    pid,
                    std::time::Duration::from_nanos(
                        crate::os::clock::monotonic_ns().saturating_sub(since),
                    ),
                )),
            },
        })
    }
}
