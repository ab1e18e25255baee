//! What a member took, and the metadata and payload it hands on: from a
//! ring record (under a hazard or an entry's pin) or from the spill log.

use crate::message::strip_ext;
use crate::message::{Meta, ProducerTag};
use crate::protocol::group::Taken;
use crate::protocol::layout::*;
use crate::protocol::ttl;

/// What a consumer took: a record in the ring (under its hazard or an
/// entry's pin), or a message read from the log (payload in `Disk::buf`,
/// metadata in `Disk::meta`). Small: it is moved along the receive path.
#[derive(Clone, Copy, Debug)]
pub(super) enum Got {
    Ring(Taken, Again),
    Disk(DiskGot),
}

impl Got {
    /// The message's sequence number.
    #[inline(always)]
    pub(super) fn seq(&self) -> u64 {
        match self {
            Got::Ring(t, _) => t.seq,
            Got::Disk(d) => d.seq,
        }
    }
}

/// What the receive path needs of a message read from the spill log; the
/// rest of its metadata is in `Disk::meta`.
#[derive(Clone, Copy, Debug)]
pub(super) struct DiskGot {
    pub(super) seq: u64,
    /// Its log position | DISK_BIT.
    pub(super) at: u64,
    pub(super) ts_ns: u64,
    pub(super) redelivered: u64,
    /// Its own time to live (ns).
    pub(super) ttl_ns: Option<u64>,
    /// A dead letter (its own time to live no longer applies).
    pub(super) letter: bool,
    /// Its key's hash (0: none).
    pub(super) key_hash: u64,
}

impl DiskGot {
    /// Its metadata as far as it knows it (what `Disk::meta` holds in full).
    pub(super) fn bare(&self) -> Meta {
        Meta {
            seq: self.seq,
            ts_ns: self.ts_ns,
            redelivered: self.redelivered,
            dead_letter_from: None,
            dead_letter_seq: None,
            producer: None,
            ttl: self.ttl_ns.map(std::time::Duration::from_nanos),
            key: None,
        }
    }

    pub(super) fn of(m: &Meta, at: u64) -> DiskGot {
        DiskGot {
            seq: m.seq,
            at,
            ts_ns: m.ts_ns,
            redelivered: m.redelivered,
            ttl_ns: m.ttl.map(|d| d.as_nanos().min(u64::MAX as u128) as u64),
            letter: m.dead_letter_from.is_some(),
            key_hash: m.key.map_or(0, |k| key_hash(&k)),
        }
    }
}

/// What the group knows of a delivery beyond its record: the deliveries
/// before it in this group, and, for a dead letter handed over (ack.rs,
/// `begin_hand_over`: the original record, not a copy), the sequence number
/// and group it was given up with.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Again {
    pub(super) redelivered: u64,
    pub(super) letter: Option<(u64, u64)>,
}

impl Again {
    pub(super) fn of(e: &crate::protocol::ack::Entry) -> Again {
        Again {
            redelivered: e.deliveries_before(),
            letter: e.origin.map(|o| (e.seq, o)),
        }
    }
}

/// Drops a member's hazard (and wakes producers waiting for space) when it
/// goes out of scope.
pub(super) struct Release<'a>(
    pub(super) &'a crate::protocol::ring::Ring<crate::os::mapping::RawRegion>,
    pub(super) usize,
    pub(super) usize,
);

impl Drop for Release<'_> {
    fn drop(&mut self) {
        crate::protocol::group::release(self.0, self.1, self.2);
    }
}

/// The payload of a record taken under this member's hazard, in place.
///
/// # Safety
/// The caller holds what pins `t`'s record (the hazard it was taken under,
/// or the entry that holds it) for as long as the returned borrow lives:
/// it releases it only after the borrow ends.
pub(super) unsafe fn ring_payload<'a>(
    ring: &'a crate::protocol::ring::Ring<crate::os::mapping::RawRegion>,
    t: &Taken,
) -> &'a [u8] {
    let off = ring.ring_at(t.pos) + RECORD_HEADER + t.skip();
    let len = t.payload_len();
    // SAFETY: the length was bounds-checked when the record was taken (it
    // fits before the ring's end); the member's hazard keeps every producer
    // from writing these bytes until it is released, which the callers do
    // only after the borrow ends (a guard's drop, the end of a batch), and
    // the commit stamp loaded with Acquire made the producer's writes
    // visible. Cooperating processes therefore never write them while this
    // borrow lives.
    unsafe { std::slice::from_raw_parts(ring.region.ptr_at(off, len), len) }
}

/// The metadata of a record taken from the ring (under the caller's hazard).
pub(super) fn ring_meta(
    ring: &crate::protocol::ring::Ring<crate::os::mapping::RawRegion>,
    t: &Taken,
    again: Again,
) -> Meta {
    let origin = again.letter.or_else(|| ring.read_origin(t.pos, t.flags));
    Meta {
        seq: t.seq,
        ts_ns: t.ts_ns,
        redelivered: again.redelivered,
        dead_letter_from: origin.map(|o| o.1),
        dead_letter_seq: origin.map(|o| o.0),
        producer: (t.flags & FLAG_PRODUCER != 0).then(|| {
            let (id, pseq) = ring.read_ext(t.pos);
            ProducerTag { id, pseq }
        }),
        ttl: ring
            .read_ttl(t.pos, t.flags)
            .map(std::time::Duration::from_nanos),
        key: (t.flags & FLAG_KEY != 0).then(|| {
            crate::message::Key::new(ring.read_key(t.pos, t.flags, t.key_len), t.key_len as usize)
        }),
    }
}

/// The metadata of a record read from the spill log, whose stored bytes are
/// in `buf`: its extensions are split off, leaving the payload.
pub(super) fn disk_meta(
    rec: &crate::spill::log::LogRecord,
    again: Again,
    buf: &mut Vec<u8>,
) -> Meta {
    let ext = strip_ext(rec.flags, buf);
    let origin = again.letter.or(ext.origin);
    Meta {
        seq: rec.seq,
        ts_ns: rec.ts_ns,
        redelivered: again.redelivered,
        dead_letter_from: origin.map(|o| o.1),
        dead_letter_seq: origin.map(|o| o.0),
        producer: ext.producer,
        ttl: ext.ttl.map(std::time::Duration::from_nanos),
        key: ext.key.map(|(k, _)| k),
    }
}

/// Whether message `got` has outlived its time to live (its own, or
/// `group_ttl`, its group's default in ns). Reads the clock only when one
/// applies. A dead
/// letter handed over as it is (ack.rs `begin_hand_over`: the original
/// record, its TTL extension included) is judged by its dead-letter group's
/// default alone: the time to live it ran out of was its origin group's
/// reason to give it up.
#[inline(always)]
pub(super) fn expired(
    ring: &crate::protocol::ring::Ring<crate::os::mapping::RawRegion>,
    group_ttl: u64,
    got: &Got,
) -> bool {
    match got {
        Got::Ring(t, again) if again.letter.is_none() => ring_expired(ring, group_ttl, t),
        Got::Ring(t, _) => past(ttl::expires_at(t.ts_ns, None, group_ttl)),
        Got::Disk(d) => {
            let own = if d.letter { None } else { d.ttl_ns };
            past(ttl::expires_at(d.ts_ns, own, group_ttl))
        }
    }
}

/// [`expired`] for a ring record this member took from its group's cursor.
#[inline(always)]
pub(super) fn ring_expired(
    ring: &crate::protocol::ring::Ring<crate::os::mapping::RawRegion>,
    group: u64,
    t: &Taken,
) -> bool {
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
