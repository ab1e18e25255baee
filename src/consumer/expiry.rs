//! Messages whose time to live ran out before this member took them
//! (protocol/ttl.rs): never handed to the caller, given up instead.

use super::log::Disk;
use super::record::Got;
use super::redelivery::{give_up, publish_letter, GiveUp};
use super::{Ack, Consumer};
use crate::error::RecvError;
use crate::protocol::{ack, ttl};
use crate::queue::Queue;

/// Gives up an expired message that this member holds by nothing but its
/// hazard (an auto-ack take) or its read of the log: published to the
/// group's dead-letter group if it has one and the ring has room for it,
/// counted either way. With auto-ack, a member killed before it publishes
/// the dead letter loses it, as it would lose the message itself.
pub(super) fn expire_unheld(
    q: &Queue,
    g: usize,
    disk: &Option<Disk>,
    got: Got,
) -> Result<(), RecvError> {
    let ring = q.ring();
    let seq = match got {
        Got::Ring(t, _) => t.seq,
        Got::Disk(d) => d.seq,
    };
    if let Some(d) = ack::dead_letter_target(ring, g) {
        if publish_letter(q, g, disk, got, seq, None, d)? {
            ack::note_dead_lettered(ring, g);
        }
    } else {
        ack::note_dead_lettered(ring, g);
    }
    ttl::note_expired(ring, g);
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
        let seq = match got {
            Got::Ring(t, _) => t.seq,
            Got::Disk(d) => d.seq,
        };
        let hold = match self.ack {
            Ack::Explicit => match self.acks.held.last() {
                Some(h) if h.entry.seq == seq => self.acks.held.pop(),
                _ => None,
            },
            Ack::Auto => self.acks.auto.take(),
        };
        match hold {
            // No room for its dead letter now: pending again, for a later
            // receive.
            Some(h) => {
                give_up(&self.q, self.g, self.m, &mut self.disk, &h, GiveUp::Expired).map(|_| ())
            }
            None => {
                let r = expire_unheld(&self.q, self.g, &self.disk, got);
                self.finish(got);
                r
            }
        }
    }
}
