//! Messages whose time to live ran out before this member took them
//! (protocol/ttl.rs): never handed to the caller, given up instead.

use super::log::Disk;
use super::record::Got;
use super::redelivery::{give_up, publish_letter, GiveUp};
use super::Consumer;
use crate::error::RecvError;
use crate::protocol::{ack, ttl};
use crate::queue::Queue;

/// Gives up an expired message that member `m` holds by nothing but its
/// hazard (an auto-ack take) or its read of the log: published to the
/// group's dead-letter group if it has one, otherwise only counted. A dead
/// letter that cannot be published at once (the registry slot kept for
/// dead letters busy with another member's, no room in the ring) is not
/// dropped: the message goes into the group's ack table, pending, never
/// delivered (`ack::adopt`), and is given up from there like any other,
/// exactly once. Only a member killed before that, or an ack table with no
/// free entry, loses it (auto-ack is at most once); a message read from the
/// log that retention deletes before it is adopted is lost too (the receive
/// that finds it gone returns the log's error, once: `redelivered`).
pub(super) fn expire_unheld(
    q: &Queue,
    g: usize,
    m: usize,
    disk: &Option<Disk>,
    got: Got,
) -> Result<(), RecvError> {
    let ring = q.ring();
    let (seq, at, key) = match got {
        Got::Ring(t, _) => (t.seq, t.pos, t.key_hash(ring)),
        Got::Disk(d) => (d.seq, d.at, d.key_hash),
    };
    let Some(d) = ack::dead_letter_target(ring, g) else {
        ack::note_dead_lettered(ring, g);
        ttl::note_expired(ring, g);
        return Ok(());
    };
    if publish_letter(q, g, disk, got, seq, None, d)? {
        ack::note_dead_lettered(ring, g);
        ttl::note_expired(ring, g);
    } else if !ack::adopt(ring, g, m, seq, at, key) {
        // No entry to keep it in: counted, not given up.
        ttl::note_expired(ring, g);
    }
    Ok(())
}

impl Consumer {
    /// Gives up message `got`, just taken and found expired: by its ack
    /// entry if this member holds it by one (explicit ack, or a redelivery
    /// taken with auto-ack), exactly as `max_attempts` gives one up;
    /// otherwise as [`expire_unheld`] says. The caller takes the next one.
    #[cold]
    #[inline(never)]
    pub(super) fn expire(&mut self, got: Got) -> Result<(), RecvError> {
        match self.take_hold_of(&got) {
            // No room for its dead letter now: pending again, for a later
            // receive.
            Some(h) => {
                give_up(&self.q, self.g, self.m, &mut self.disk, &h, GiveUp::Expired).map(|_| ())
            }
            None => {
                let r = expire_unheld(&self.q, self.g, self.m, &self.disk, got);
                self.finish(got);
                r
            }
        }
    }
}
