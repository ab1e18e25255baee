//! Messages whose time to live ran out before this member took them
//! (protocol/ttl.rs): never handed to the caller, given up instead.

use super::log::Disk;
use super::record::Got;
use super::redelivery::{give_up, publish_letter, GiveUp};
use super::{Ack, Consumer};
use crate::error::RecvError;
use crate::os::mapping::RawRegion;
use crate::protocol::group::Taken;
use crate::protocol::layout::FLAG_TTL;
use crate::protocol::ring::Ring;
use crate::protocol::{ack, ttl};
use crate::queue::Queue;

/// Whether message `got` of group `g` has outlived its time to live (its
/// own or the group's). Reads the clock only when one applies.
#[inline(always)]
pub(super) fn expired(ring: &Ring<RawRegion>, g: usize, got: &Got) -> bool {
    match got {
        Got::Ring(t, _) => ring_expired(ring, g, t),
        Got::Disk(meta) => {
            let own = meta.ttl.map(|d| d.as_nanos().min(u64::MAX as u128) as u64);
            past(ttl::expires_at(meta.ts_ns, own, ttl::group_ttl(ring, g)))
        }
    }
}

/// [`expired`] for a ring record this member holds.
#[inline(always)]
pub(super) fn ring_expired(ring: &Ring<RawRegion>, g: usize, t: &Taken) -> bool {
    let group = ttl::group_ttl(ring, g);
    if group == 0 && t.flags & FLAG_TTL == 0 {
        return false;
    }
    past(ttl::expires_at(
        t.ts_ns,
        ring.read_ttl(t.pos, t.flags),
        group,
    ))
}

#[cold]
fn past(at: Option<u64>) -> bool {
    at.is_some_and(|at| crate::os::clock::now_ns() >= at)
}

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
        Got::Disk(meta) => meta.seq,
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
            Got::Disk(meta) => meta.seq,
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
