//! `shmq check`: validates a queue beyond what opening it checks.
//!
//! Opening already validates the header (magic, version, geometry, size). This
//! checks the live state against the protocol's invariants: TAIL and HEAD
//! aligned and ordered, every group slot in a known state with a valid name and
//! a cursor between HEAD and TAIL, every member slot in a known state, the
//! producer names consistent with the registry, and every
//! record from HEAD to TAIL committed with a stamp for its own position, a
//! length that fits, and dense sequence numbers. On a queue in use, a record a
//! producer is still writing shows as uncommitted; run it on a quiet queue for a
//! definitive answer.

use crate::layout::*;
use crate::raw_region::RawRegion;
use crate::region::Region;
use crate::ring::{Ring, Slot};
use crate::sync::Ordering;

/// What `check` found.
#[derive(Clone, Debug, Default)]
pub struct CheckReport {
    /// Records walked from HEAD to TAIL (messages, pads and aborted claims).
    pub records: u64,
    /// Registered groups.
    pub groups: usize,
    /// Everything that breaks an invariant, one line each.
    pub problems: Vec<String>,
}

impl CheckReport {
    /// Whether nothing was wrong.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The table of producer names: valid names, none twice, and each name's
/// owner a registered producer publishing under it (and the other way round).
fn check_names(ring: &Ring<RawRegion>, r: &mut CheckReport) {
    let names = ring.identities();
    for (k, n) in names.iter().enumerate() {
        if crate::queue::validate_name(&n.name).is_err() {
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
    for p in ring.producer_slots() {
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
        let state = ring
            .region
            .u64_at(geo.slot_off(g) + G_STATE)
            .load(Ordering::Relaxed)
            & 0xff;
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
            .u64_at(geo.slot_off(g) + G_NAME_LEN)
            .load(Ordering::Relaxed);
        let name = String::from_utf8_lossy(&ring.slot_name(g)).into_owned();
        if len == 0 || len > MAX_NAME as u64 || crate::queue::validate_name(&name).is_err() {
            r.problems.push(format!(
                "group slot {g}: invalid name ({len} bytes: {name:?})"
            ));
        }
        let (cseq, cpos) = unpack(ring.cursor(g).load(Ordering::Relaxed));
        if cseq & DISK_BIT != 0 {
            // On the spill log: a log position below the published end, a
            // sequence number below FRONT's.
            let (seq, at) = (cseq & !DISK_BIT, cpos);
            let log_end = ring.region.u64_at(OFF_LOG_END).load(Ordering::Relaxed);
            let logged = ring.region.u64_at(OFF_LOG_END_SEQ).load(Ordering::Relaxed);
            let front = ring.front_now();
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
        } else if !aligned(cpos) || cpos < hpos || cpos > tpos || cseq < hseq || cseq > tseq {
            r.problems.push(format!(
                "group '{name}': cursor (seq {cseq}, pos {cpos}) is outside HEAD (seq {hseq}, pos {hpos}) .. TAIL (seq {tseq}, pos {tpos})"
            ));
        }
        for m in 0..geo.max_members as usize {
            let ms = ring
                .region
                .u64_at(geo.member_off(g, m) + M_STATE)
                .load(Ordering::Relaxed)
                & 0xff;
            if ms != MEMBER_FREE && ms != MEMBER_ATTACHED {
                r.problems.push(format!(
                    "group '{name}' member slot {m}: unknown state {ms}"
                ));
            }
        }
    }
    // Walk the retained records.
    let (mut pos, mut seq) = (hpos, hseq);
    while pos < tpos {
        match ring.slot_at(pos) {
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
    if pos != tpos || seq != tseq {
        r.problems.push(format!(
            "records end at (seq {seq}, pos {pos}) but TAIL is (seq {tseq}, pos {tpos})"
        ));
    }
    r
}
