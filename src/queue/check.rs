//! `shmq check`: validates a queue beyond what opening it checks.
//!
//! Opening already validates the header (magic, version, geometry, size). This
//! checks the live state against the protocol's invariants: TAIL and HEAD
//! aligned and ordered, every group slot in a known state with a valid name and
//! a cursor between HEAD and TAIL, every member slot in a known state, the
//! producer names consistent with the registry, and every
//! record from HEAD to TAIL committed with a stamp for its own position, a
//! length that fits, and dense sequence numbers; every entry of every group's
//! ack table valid, owned by an attached member, and pointing at its message
//! (in the ring, or read back from the spill log); and every record the spill
//! log retains read back through the consumers' own code (header, length,
//! checksum, increasing sequence numbers). On a queue in use one pass is not
//! a snapshot, so `Queue::check` repeats a pass that finds problems (five, a
//! millisecond apart) and reports only what every pass finds; a record a
//! producer is still writing that long shows as uncommitted.

use crate::os::mapping::RawRegion;
use crate::protocol::ack::{word_attempts, word_owner, word_state};
use crate::protocol::layout::*;
use crate::protocol::ring::{Ring, Slot};
use crate::protocol::{ack, group, identity, registry, spill};
use crate::region::Region;
use crate::spill::log::LogReader;
use crate::sync::{AtomicU64, Ordering};

/// What `check` found.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct CheckReport {
    /// Records walked from HEAD to TAIL (messages, pads and aborted claims).
    pub records: u64,
    /// Registered groups.
    pub groups: usize,
    /// Records read back from the spill log.
    pub log_records: u64,
    /// Everything that breaks an invariant, one line each.
    pub problems: Vec<String>,
}

impl CheckReport {
    /// Whether nothing was wrong.
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("audit", shmq::StartAt::Latest)?;
    /// q.producer().attach()?.send(b"x")?;
    /// let report = q.check();
    /// assert!(report.ok());
    /// assert!(report.problems.is_empty());
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The staging directory: every scheduled message and prepared
/// transaction reads back whole (staged/file.rs), none was moved aside as
/// damaged, and none is overdue by more than a minute (nothing releases
/// them: no process polls, or releasing fails).
fn check_staged(q: &crate::Queue, r: &mut CheckReport) {
    use crate::staged::dir;
    let (d, _) = q.staged_dir();
    for bad in dir::damaged(d) {
        r.problems.push(format!(
            "staged file {}: damaged, moved aside",
            d.join(bad).display()
        ));
    }
    let now = crate::os::clock::now_ns();
    for (name, parsed) in dir::list(d).unwrap_or_default() {
        if let Err(dir::ReadError::Damaged(why)) =
            dir::read(d, &name, q.geo().max_msg as usize, q.geo().capacity)
        {
            r.problems
                .push(format!("staged file {}: {why}", d.join(&name).display()));
        }
        if let dir::Name::Scheduled { due_ns, .. } = parsed {
            if now.saturating_sub(due_ns) > 60_000_000_000 {
                r.problems.push(format!(
                    "scheduled message {name}: due {} s ago and not released (no process polls the queue, or releasing fails: Queue::release_due says why)",
                    now.saturating_sub(due_ns) / 1_000_000_000
                ));
            }
        }
    }
}

/// The table of producer names: valid names, none twice, and each name's
/// owner a registered producer publishing under it (and the other way round).
fn check_names(ring: &Ring<RawRegion>, r: &mut CheckReport) {
    let names = identity::identities(ring);
    for (k, n) in names.iter().enumerate() {
        if !valid_name(n.name.as_bytes()) && n.name != RELEASER_NAME {
            r.problems
                .push(format!("producer name {}: invalid name {:?}", n.id, n.name));
        }
        if names[..k].iter().any(|m| m.name == n.name) {
            r.problems
                .push(format!("producer name {:?} is in the table twice", n.name));
        }
        if let Some(slot) = n.owner {
            let ident = ring.registry_owner(slot).map(|(_, _, i)| i);
            if ident != Some(n.slot() as u64 + 1) {
                r.problems.push(format!(
                    "producer name {:?}: held by registry slot {slot}, which does not publish under it",
                    n.name
                ));
            }
        }
    }
    for p in registry::producer_slots(ring) {
        if let Some(i) = p.ident {
            if !names
                .iter()
                .any(|n| n.slot() == i && n.owner == Some(p.slot))
            {
                r.problems.push(format!(
                    "producer slot {} (pid {}) publishes under name {i}, which it does not hold",
                    p.slot, p.pid
                ));
            }
        }
    }
}

/// Validates `ring` (see the module docs).
pub(crate) fn check(ring: &Ring<RawRegion>) -> CheckReport {
    let mut r = CheckReport::default();
    let geo = ring.geo;
    let (tseq, tpos) = ring.tail_now();
    let (hseq, hpos) = ring.head_now();
    let aligned = |p: u64| p.is_multiple_of(ALIGN as u64);
    if !aligned(tpos) || !aligned(hpos) {
        r.problems.push(format!(
            "TAIL position {tpos} or HEAD position {hpos} is not 8-byte aligned"
        ));
    }
    if hpos > tpos || tpos - hpos > geo.capacity {
        r.problems.push(format!(
            "HEAD {hpos} and TAIL {tpos} are not within one ring ({} bytes) of each other",
            geo.capacity
        ));
        return r; // the walk below would be meaningless
    }
    check_names(ring, &mut r);
    for g in 0..geo.max_groups as usize {
        let state = ring.group(g).state().load(Ordering::Relaxed) & 0xff;
        match state {
            SLOT_FREE => continue,
            SLOT_CREATING | SLOT_ACTIVE => {}
            s => {
                r.problems
                    .push(format!("group slot {g}: unknown state {s}"));
                continue;
            }
        }
        r.groups += 1;
        let len = ring
            .region
            .u64_at(ring.group(g).name_off())
            .load(Ordering::Relaxed);
        let name = String::from_utf8_lossy(&ring.slot_name(g)).into_owned();
        if len == 0 || len > MAX_NAME as u64 || !valid_name(&ring.slot_name(g)) {
            r.problems.push(format!(
                "group slot {g}: invalid name ({len} bytes: {name:?})"
            ));
        }
        let (cseq, cpos) = unpack(ring.cursor(g).load(Ordering::Relaxed));
        if cseq & DISK_BIT != 0 {
            // On the spill log: a log position below the published end, a
            // sequence number below FRONT's.
            let (seq, at) = (cseq & !DISK_BIT, cpos);
            let log_end = ring.header().log_end().load(Ordering::Relaxed);
            let logged = ring.header().log_end_seq().load(Ordering::Relaxed);
            let front = spill::front_now(ring);
            // FRONT may trail the log's end for a while if a spiller died
            // between publishing the log and moving FRONT.
            if !aligned(at)
                || at > log_end
                || front.is_none()
                || seq > logged.max(front.map_or(0, |f| f.0))
            {
                r.problems.push(format!(
                    "group '{name}': on the spill log at seq {seq}, log position {at}, but the log ends at {log_end} (seq {logged}) and FRONT is {front:?}"
                ));
            }
        } else {
            // TAIL again, read after the cursor: members move cursors up to
            // it while this runs (HEAD, read before, only lags them).
            let (tseq, tpos) = ring.tail_now();
            if !aligned(cpos) || cpos < hpos || cpos > tpos || cseq < hseq || cseq > tseq {
                r.problems.push(format!(
                    "group '{name}': cursor (seq {cseq}, pos {cpos}) is outside HEAD (seq {hseq}, pos {hpos}) .. TAIL (seq {tseq}, pos {tpos})"
                ));
            }
        }
        for m in 0..geo.max_members as usize {
            let ms = ring.member(g, m).state().load(Ordering::Relaxed) & 0xff;
            if ms != MEMBER_FREE && ms != MEMBER_ATTACHED {
                r.problems.push(format!(
                    "group '{name}' member slot {m}: unknown state {ms}"
                ));
            }
        }
    }
    // Walk the retained records. Producers may overwrite the oldest while
    // this runs: whatever looks wrong at a position HEAD has passed since is
    // not looked at, and the walk goes on from HEAD.
    let (mut pos, mut seq) = (hpos, hseq);
    let mut restarts = 0;
    while pos < tpos {
        let slot = ring.slot_at(pos);
        let fine = match slot {
            Slot::Pad { next } => next <= tpos,
            Slot::Record {
                kind,
                seq: rseq,
                next,
                ..
            } => next <= tpos && (kind != KIND_MSG || rseq == seq),
            Slot::Uncommitted | Slot::Bad => false,
        };
        if !fine && restarts < 1000 {
            let (h, hp) = ring.head_now();
            if hp > pos {
                restarts += 1;
                (pos, seq) = (hp, h);
                continue;
            }
        }
        match slot {
            Slot::Pad { next } => {
                if next > tpos {
                    r.problems
                        .push(format!("pad at position {pos} runs past TAIL {tpos}"));
                    return r;
                }
                pos = next;
            }
            Slot::Uncommitted => {
                r.problems.push(format!(
                    "record at position {pos} (seq {seq}) is not committed: a producer is writing it, died, or the ring is corrupt"
                ));
                return r;
            }
            Slot::Record { len, next, .. } if next > tpos => {
                r.problems.push(format!(
                    "record at position {pos} (seq {seq}) has impossible length {len}"
                ));
                return r;
            }
            Slot::Bad => {
                let word = ring
                    .region
                    .u64_at(ring.ring_at(pos) + 8)
                    .load(Ordering::Relaxed);
                r.problems.push(format!(
                    "record at position {pos} (seq {seq}) has impossible length {} or flags {:#x}",
                    word & 0xffff_ffff,
                    word >> 32
                ));
                return r;
            }
            Slot::Record {
                kind,
                seq: rseq,
                next,
                ..
            } => {
                if kind == KIND_MSG && rseq != seq {
                    r.problems.push(format!(
                        "record at position {pos} has sequence {rseq}, expected {seq}"
                    ));
                }
                pos = next;
                seq = seq.wrapping_add(1);
            }
        }
        r.records += 1;
    }
    // (A walk that went on from HEAD may end past the TAIL it started with.)
    if (pos != tpos || seq != tseq) && !(restarts > 0 && pos >= tpos) {
        r.problems.push(format!(
            "records end at (seq {seq}, pos {pos}) but TAIL is (seq {tseq}, pos {tpos})"
        ));
    }
    r
}

/// The ack tables: each entry in use is a valid state, owned (if held) by an
/// attached member, and its message is where it says: a ring record with its
/// sequence number between HEAD and TAIL, or a spill log record that reads
/// back with it (`log`: the queue's log, if it has one).
pub(crate) fn check_acks(
    ring: &Ring<RawRegion>,
    mut log: Option<&mut LogReader>,
    r: &mut CheckReport,
) {
    let (_, tpos) = ring.tail_now();
    let geo = ring.geo;
    for g in (0..geo.max_groups as usize).filter(|&g| ring.is_active(g)) {
        let name = String::from_utf8_lossy(&ring.slot_name(g)).into_owned();
        let attached: Vec<usize> = group::members(ring, g).iter().map(|m| m.slot).collect();
        for (i, w, e) in ack::entries(ring, g) {
            let st = word_state(w);
            let orphan = st == ENTRY_FORWARDING && word_owner(w) == ORPHAN;
            let owned = !orphan
                && matches!(
                    st,
                    ENTRY_RESERVED | ENTRY_TAKING | ENTRY_HELD | ENTRY_FINISHING | ENTRY_FORWARDING
                );
            // A dead letter on its way in from group `owner`'s entry
            // `attempts` (ack.rs, `begin_hand_over`): its mover settles it.
            let arriving_ok = word_owner(w) < geo.max_groups as usize
                && word_attempts(w) < u64::from(geo.ack_entries);
            if (st == ENTRY_ARRIVING && !arriving_ok)
                || st > ENTRY_ARRIVING
                || (owned && word_owner(w) >= geo.max_members as usize)
            {
                r.problems.push(format!(
                    "group '{name}': ack table entry {i} has an invalid state word {w:#x}"
                ));
                continue;
            }
            if owned && !attached.contains(&word_owner(w)) {
                r.problems.push(format!(
                    "group '{name}': ack table entry {i} (seq {}) belongs to member slot {}, which is not attached",
                    e.seq,
                    word_owner(w)
                ));
            }
            if !matches!(st, ENTRY_HELD | ENTRY_PENDING) {
                continue;
            }
            let what = if st == ENTRY_PENDING {
                "pending redelivery"
            } else {
                "unacknowledged message"
            };
            if !e.on_disk() {
                // Pinned, it may be below HEAD (the cursors passed it), but
                // never a lap behind TAIL.
                let ok = e.at < tpos
                    && tpos - e.at <= geo.capacity
                    && matches!(ring.slot_at(e.at), Slot::Record { seq, kind: KIND_MSG, .. } if seq == e.seq);
                if !ok {
                    r.problems.push(format!(
                        "group '{name}': {what} {} at ring position {} cannot be read: the ring no longer holds it",
                        e.seq, e.at
                    ));
                }
                continue;
            }
            let at = e.at & !DISK_BIT;
            let problem = match log.as_deref_mut() {
                None => Some("the queue has no spill log".to_string()),
                Some(reader) => {
                    let mut buf = Vec::new();
                    match reader.read(at, &mut buf) {
                        Ok(rec) if rec.seq == e.seq => None,
                        Ok(rec) => Some(format!("the log holds seq {} there", rec.seq)),
                        Err(err) => Some(err.to_string()),
                    }
                }
            };
            if let Some(p) = problem {
                r.problems.push(format!(
                    "group '{name}': {what} {} at log position {at} cannot be read: {p}",
                    e.seq
                ));
            }
        }
    }
}

/// The spill log: every record it retains, from the oldest to the published
/// end, read back as consumers read it (header, length, checksum), with
/// increasing sequence numbers.
pub(crate) fn check_log(ring: &Ring<RawRegion>, reader: &mut LogReader, r: &mut CheckReport) {
    let h = ring.header();
    let w = |word: &AtomicU64| word.load(Ordering::Relaxed);
    let missing = w(h.spill_backlog_missing());
    if missing > 0 {
        r.problems.push(format!(
            "spill log: {missing} time(s) a group lagged onto the log's unbroken run and the log no longer held its next message (a backlog was deleted)"
        ));
    }
    let (mut at, end) = (w(h.log_first_pos()), w(h.log_end()));
    let mut buf = Vec::new();
    let mut last: Option<u64> = None;
    while at < end {
        match reader.read_ahead(at, end, &mut buf) {
            Ok(rec) => {
                if last.is_some_and(|l| rec.seq <= l) {
                    r.problems.push(format!(
                        "spill log record at position {at} has seq {} after seq {}",
                        rec.seq,
                        last.unwrap_or(0)
                    ));
                }
                last = Some(rec.seq);
                r.log_records += 1;
                at += rec.size;
            }
            Err(e) => {
                r.problems
                    .push(format!("spill log record at position {at}: {e}"));
                return;
            }
        }
    }
}

/// Passes `Queue::check` makes before it reports a problem.
const CHECK_PASSES: usize = 5;

impl crate::queue::Queue {
    /// Validates the queue's live state against the protocol's invariants (see
    /// [`CheckReport`]); opening it has already validated the header.
    ///
    /// On a queue in use, what one pass reads is not a snapshot: a cursor,
    /// an entry or a record may change between two reads. So a pass that
    /// finds problems is repeated, and only problems every pass finds (up
    /// to five, a millisecond apart) are reported: damage stays,
    /// a race does not.
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("audit", shmq::StartAt::Latest)?;
    /// q.producer().attach()?.send_batch(&[b"a", b"b", b"c"])?;
    /// let report = q.check();
    /// assert!(report.ok(), "{:?}", report.problems);
    /// assert_eq!((report.records, report.groups), (3, 1));
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn check(&self) -> CheckReport {
        let ring = self.ring();
        let mut reader = self.inner.spill.as_ref().map(|s| s.reader());
        let mut pass = || {
            let mut r = crate::queue::check::check(ring);
            if let Some(reader) = reader.as_mut() {
                crate::queue::check::check_log(ring, reader, &mut r);
            }
            crate::queue::check::check_acks(ring, reader.as_mut(), &mut r);
            check_staged(self, &mut r);
            r
        };
        let mut r = pass();
        for _ in 1..CHECK_PASSES {
            if r.problems.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
            let again = pass();
            if again.problems.is_empty() {
                return again;
            }
            r = again;
        }
        r
    }
}
