//! A member reading its group's backlog from the spill log.

use super::record::*;
use crate::error::{Reason, RecvError, SpillError};
use crate::message::Meta;
use crate::protocol::layout::*;
use crate::protocol::{ack, group, spill};
use crate::queue::Queue;
use crate::spill::log::LogReader;
use std::time::{Duration, Instant};

/// How often a consumer that has read the whole log tries a round to rejoin.
pub(super) const REJOIN_EVERY: Duration = Duration::from_micros(100);

/// A consumer's view of the spill log.
pub(super) struct Disk {
    pub(super) reader: LogReader,
    /// Payload of the last message read from the log.
    pub(super) buf: Vec<u8>,
    pub(super) last_round: Option<Instant>,
    /// The metadata of the message last read (`Got::Disk`).
    pub(super) meta: Option<Meta>,
}

impl Disk {
    /// Keeps `meta`, of the message at `at` (its log position | DISK_BIT)
    /// just read into `buf`: what the receive path carries of it.
    pub(super) fn got(&mut self, meta: Meta, at: u64) -> Got {
        self.meta = Some(meta);
        Got::Disk(DiskGot::of(&meta, at))
    }
}

/// One attempt at the log.
pub(super) enum DiskStep {
    /// A message, its log position | DISK_BIT, and its key's hash (0: none).
    Got(Meta, u64, u64),
    /// The cursor moved (another member, a rejoin): look again.
    Retry,
    /// The group has read everything logged so far.
    CaughtUp,
}

/// One attempt to take the message at the group's disk cursor `cur` (with
/// `hold`, through that reserved entry of the ack table).
pub(super) fn take_disk(
    q: &Queue,
    g: usize,
    m: usize,
    disk: &mut Option<Disk>,
    cur: u128,
    hold: Option<((usize, u64), u64)>,
) -> Result<DiskStep, RecvError> {
    let ring = q.ring();
    let Some(spill) = q.spill() else {
        return Err(RecvError::Corrupt(Reason::new(
            "group is on disk but the queue has no spill log",
        )));
    };
    let d = disk.get_or_insert_with(|| Disk {
        reader: spill.reader(),
        buf: Vec::new(),
        last_round: None,
        meta: None,
    });
    let (seq, at) = unpack(cur);
    let seq = seq & !DISK_BIT;
    let log_end = spill::log_end(ring);
    if at >= log_end {
        // Read everything logged: a round moves the group back to the ring.
        if d.last_round.is_none_or(|t| t.elapsed() >= REJOIN_EVERY) {
            d.last_round = Some(Instant::now());
            // A round that fails (a full disk) fails at writing the log,
            // which is the producers' business: they wait, and `stat` shows
            // the error. This member has read everything; it rejoins the
            // ring at a round that gets that far (rejoining comes first).
            let _ = q.spill_round(false);
            if ring.cursor_now(g) != cur {
                return Ok(DiskStep::Retry);
            }
        }
        return Ok(DiskStep::CaughtUp);
    }
    let rec = match d.reader.read_ahead(at, log_end, &mut d.buf) {
        Ok(r) => r,
        // The group moved on (and retention may have deleted what it read).
        Err(_) if ring.cursor_now(g) != cur => return Ok(DiskStep::Retry),
        Err(e) => return Err(RecvError::Spill(e.into())),
    };
    if rec.seq < seq {
        return Err(RecvError::Spill(SpillError::Corrupt(Reason::new(format!(
            "log position {at} holds sequence {}, the group expects {seq}",
            rec.seq
        )))));
    }
    // An aborted claim, or a record for other groups: the cursor passes it.
    let skip = rec.kind == KIND_ABORT || !addressed(rec.flags, g, ring.dl_only(g));
    let hold = hold.filter(|_| !skip);
    // The key's hash, for an entry of a group ordered by key (a key block
    // that cannot be one is left to the payload: the log's CRC passed it).
    let key = match skip {
        true => 0,
        false => crate::message::key_of(rec.flags, &d.buf)
            .ok()
            .flatten()
            .map_or(0, |(_, h)| h),
    };
    if let Some((h, since)) = hold {
        ack::announce(ring, g, m, h, rec.seq, at | DISK_BIT, since, key);
    }
    if !spill::disk_advance(ring, g, cur, rec.seq, rec.size) {
        if let Some((h, _)) = hold {
            ack::untake(ring, g, h);
        }
        return Ok(DiskStep::Retry);
    }
    if skip {
        return Ok(DiskStep::Retry);
    }
    if let Some((h, _)) = hold {
        ack::took(ring, g, m, h, rec.seq, at | DISK_BIT, key);
    }
    group::note_delivered(ring, g, m, 1);
    Ok(DiskStep::Got(
        disk_meta(&rec, Again::default(), &mut d.buf),
        at | DISK_BIT,
        key,
    ))
}
