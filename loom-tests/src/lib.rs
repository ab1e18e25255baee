//! Model checking of shmq's lock-free protocols with loom.
//!
//! The protocol modules below are the library's own source files, compiled a
//! second time against [`sync`] (loom's atomics) and run on [`LoomRegion`]
//! (loom atomics instead of a mapping). Whatever loom proves here it proves of
//! the code that runs on a mapped queue file. Tests are in `tests/`; they run
//! with `cargo test` from the repository root, with a preemption bound of 3.

#![allow(dead_code, missing_docs, clippy::all)]

/// The library's `src/protocol/`, file for file.
pub mod protocol;
#[path = "../../src/region.rs"]
pub mod region;

pub use protocol::{ack, claim, due, group, identity, layout, order, registry, ring, spill, wait};

pub mod loom_region;
pub mod sync;

pub use loom_region::LoomRegion;

/// A model run with the project's bounds: preemption bound 3 unless
/// `LOOM_MAX_PREEMPTIONS` says otherwise.
pub fn model(f: impl Fn() + Sync + Send + 'static) {
    model_at(3, f)
}

/// A model run at preemption bound `default` unless `LOOM_MAX_PREEMPTIONS`
/// says otherwise: for a model too long at bound 3 for the default suite
/// (docs/testing.md says which, and what it takes at 3).
pub fn model_at(default: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(
        std::env::var("LOOM_MAX_PREEMPTIONS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    );
    b.max_branches = 100_000;
    // SHMQ_LOOM_COUNT=1: print how many executions the model explored.
    if std::env::var_os("SHMQ_LOOM_COUNT").is_none() {
        return b.check(f);
    }
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    let n = std::sync::Arc::new(AtomicU64::new(0));
    let counted = n.clone();
    b.check(move || {
        counted.fetch_add(1, Relaxed);
        f()
    });
    eprintln!("loom: {} executions", n.load(Relaxed));
}

use group::StartAt;
use layout::{record_size, Geometry};

/// The record kind of a message (layout.rs keeps it crate-private).
pub const KIND_MSG: u64 = layout::KIND_MSG;
use claim::ProducerCursor;
use ring::Ring;
use wait::{Sleeper, WaitStrategy};

/// A ring of 128 bytes: three 8-byte messages (40-byte records) per lap, so
/// four messages wrap it, pad its end and fill it.
/// `members` member slots in one group slot: the scans producers run are
/// model steps, so the tables are as small as each model allows.
pub fn tiny(members: u32) -> Geometry {
    Geometry {
        capacity: 128,
        max_msg: 8,
        max_groups: 1,
        max_members: members,
        max_producers: 2,
        ack_entries: 2,
    }
}

pub fn ring() -> Ring<LoomRegion> {
    ring_with(1)
}

pub fn ring_with(members: u32) -> Ring<LoomRegion> {
    let geo = tiny(members);
    Ring::new(LoomRegion::new(&geo), geo, 0x5eed)
}

pub fn add(r: &Ring<LoomRegion>, name: &str, start: StartAt) -> usize {
    let g = group::add_group(&r, name.as_bytes(), start, 0, false).expect("group slot");
    g
}

/// A ring with one group "g" of `members` attached members (pids 1, 2, ...):
/// the ring, the group's slot and the members' slots.
pub fn group_of(members: u32) -> (loom::sync::Arc<Ring<LoomRegion>>, usize, Vec<usize>) {
    let r = loom::sync::Arc::new(ring_with(members));
    let g = add(&r, "g", StartAt::Latest);
    let ms = (1..=u64::from(members))
        .map(|pid| group::attach(&r, g, pid, 1).expect("a free member slot"))
        .collect();
    (r, g, ms)
}

/// `who` announces its sleep and is killed before withdrawing it: what a
/// process SIGKILLed in `futex_wait` leaves behind.
pub fn die_asleep(r: &Ring<LoomRegion>, who: Sleeper) {
    r.announce_sleep(who);
}

/// The sleeper counts (DATA, SPACE) and member marks of `r`'s
/// first group, read after the model's threads are joined.
pub fn sleepers(r: &Ring<LoomRegion>, members: usize) -> (u32, u32, Vec<bool>) {
    use region::Region as _;
    use sync::Ordering::Relaxed;
    (
        r.region.u32_at(layout::OFF_DATA_WAITERS).load(Relaxed),
        r.region.u32_at(layout::OFF_SPACE_WAITERS).load(Relaxed),
        (0..members)
            .map(|m| r.is_asleep(Sleeper::Member { g: 0, m }))
            .collect(),
    )
}

/// Where a producer waiting per `w` announces its sleep: its registry slot.
/// Only a producer that may sleep (`Block`) needs one.
fn producer_sleeper(pc: &ProducerCursor, w: WaitStrategy) -> Sleeper {
    assert!(
        w != WaitStrategy::Block || pc.slot.is_some(),
        "a producer that may sleep is registered"
    );
    Sleeper::Producer {
        slot: pc.slot.unwrap_or(0),
    }
}

/// Publishes one 8-byte message carrying `value`, waiting per `w` while full.
pub fn send(r: &Ring<LoomRegion>, pc: &mut ProducerCursor, value: u64, w: WaitStrategy) -> u64 {
    let geo = r.geometry();
    let end_of = |p: u64| geo.place(p, 8) + record_size(8);
    let who = producer_sleeper(pc, w);
    let claim = r
        .wait_for(who, w, || None, || claim::try_claim(&r, pc, 1, end_of).ok())
        .expect("no deadline");
    let rec = geo.place(claim.start, 8);
    // SAFETY: `rec` is the one record of our claim, placed for 8 bytes.
    unsafe { r.write_record(rec, claim.seq, 0, &value.to_le_bytes()) };
    claim::commit_claim(&r, &claim, std::iter::once((rec, 8, KIND_MSG)));
    claim.seq
}

/// Publishes three 8-byte messages and has member `m` of group `g` read them:
/// in the 128-byte ring, the next claim's first record no longer fits
/// before the lap's end, so the claim starts with a pad.
pub fn fill_to_lap_end(r: &Ring<LoomRegion>, g: usize, m: usize, pc: &mut ProducerCursor) {
    for i in 0..3 {
        send(r, pc, i, WaitStrategy::Spin);
        assert_eq!(recv(r, g, m, WaitStrategy::Spin), (i, i));
    }
}

/// Claims `values.len()` 8-byte records in one claim and writes them (not
/// committed): the claim and each record's position.
pub fn claim_batch(
    r: &Ring<LoomRegion>,
    pc: &mut ProducerCursor,
    values: &[u64],
) -> (claim::Claim, Vec<u64>) {
    let geo = r.geometry();
    let n = values.len() as u64;
    let end_of = |mut p: u64| {
        for _ in 0..n {
            p = geo.place(p, 8) + record_size(8);
        }
        p
    };
    let claim = claim::try_claim(&r, pc, n, end_of).expect("room");
    let mut at = claim.start;
    let mut recs = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let rec = geo.place(at, 8);
        // SAFETY: `rec` is record `i` of our claim, placed for 8 bytes.
        unsafe { r.write_record(rec, claim.seq + i as u64, 0, &v.to_le_bytes()) };
        recs.push(rec);
        at = rec + record_size(8);
    }
    (claim, recs)
}

/// Publishes `values` as one batch (one claim, committed all or nothing).
pub fn send_batch(r: &Ring<LoomRegion>, pc: &mut ProducerCursor, values: &[u64]) -> u64 {
    let (claim, recs) = claim_batch(r, pc, values);
    claim::commit_claim(&r, &claim, recs.into_iter().map(|rec| (rec, 8, KIND_MSG)));
    claim.seq
}

/// Publishes one 8-byte message carrying `value`, calling `on_full` (and
/// yielding) each time the ring has no room: a producer that runs spill rounds.
pub fn send_or(
    r: &Ring<LoomRegion>,
    pc: &mut ProducerCursor,
    value: u64,
    mut on_full: impl FnMut(),
) -> u64 {
    let geo = r.geometry();
    let end_of = |p: u64| geo.place(p, 8) + record_size(8);
    let claim = loop {
        match claim::try_claim(&r, pc, 1, end_of) {
            Ok(c) => break c,
            Err(_) => {
                on_full();
                loom::thread::yield_now();
            }
        }
    };
    let rec = geo.place(claim.start, 8);
    // SAFETY: `rec` is the one record of our claim, placed for 8 bytes.
    unsafe { r.write_record(rec, claim.seq, 0, &value.to_le_bytes()) };
    claim::commit_claim(&r, &claim, std::iter::once((rec, 8, KIND_MSG)));
    claim.seq
}

/// Receives one message as member `m` of group `g`: (seq, value).
pub fn recv(r: &Ring<LoomRegion>, g: usize, m: usize, w: WaitStrategy) -> (u64, u64) {
    let t = r
        .wait_for(
            Sleeper::Member { g, m },
            w,
            || None,
            || {
                group::try_take(&r, g, m, None)
                    .expect("corrupt")
                    .map(|t| t.ring().expect("on the ring"))
            },
        )
        .expect("no deadline");
    assert_eq!(t.len, 8);
    let v = value(r, &t);
    group::release(&r, g, m);
    (t.seq, v)
}

/// The 8-byte value a model's message `t` carries (the caller pins it).
pub fn value(r: &Ring<LoomRegion>, t: &group::Taken) -> u64 {
    let mut buf = [0u8; 8];
    // SAFETY: the caller pins `t` (this function's contract).
    unsafe { group::read_payload(&r, t, &mut buf) };
    u64::from_le_bytes(buf)
}

/// Member `m` takes the message at group `g`'s cursor with explicit
/// acknowledgement, through an entry of the ack table it reserves: the
/// message is pinned by the entry. Returns the hold and the record.
pub fn take_held(r: &Ring<LoomRegion>, g: usize, m: usize) -> (ack::Hold, group::Taken) {
    let res = ack::reserve(&r, g, m).expect("a free entry");
    let t = group::try_take(&r, g, m, Some((res, 0)))
        .expect("corrupt")
        .and_then(|t| t.ring())
        .expect("a message at the cursor");
    (ack::taken_hold(res, m, t.seq, t.pos, t.key_hash(r)), t)
}

/// Member `m` takes the message at group `g`'s cursor with explicit
/// acknowledgement and nacks it: it is pending, still pinned by its entry.
/// Returns it.
pub fn take_and_nack(r: &Ring<LoomRegion>, g: usize, m: usize) -> group::Taken {
    let (h, t) = take_held(r, g, m);
    ack::nack_hold(&r, g, &h).expect("held");
    t
}

/// Receives if a message is there now.
pub fn try_recv(r: &Ring<LoomRegion>, g: usize, m: usize) -> Option<(u64, u64)> {
    let t = group::try_take(&r, g, m, None)
        .expect("corrupt")?
        .ring()
        .expect("on the ring");
    let v = value(r, &t);
    group::release(&r, g, m);
    Some((t.seq, v))
}

/// Receives up to `max` messages with one cursor CAS if any are there now:
/// (seq, value) each.
pub fn try_recv_batch(r: &Ring<LoomRegion>, g: usize, m: usize, max: usize) -> Vec<(u64, u64)> {
    let mut taken = Vec::new();
    if group::try_take_batch(&r, g, m, max, &mut taken).unwrap_or(0) == 0 {
        return Vec::new();
    }
    let got = taken
        .iter()
        .map(|t| {
            let mut buf = [0u8; 8];
            assert_eq!(t.len, 8);
            // SAFETY: the batch's hazard pins these records until the
            // release below.
            unsafe { group::read_payload(&r, t, &mut buf) };
            (t.seq, u64::from_le_bytes(buf))
        })
        .collect();
    group::release(&r, g, m);
    got
}

/// Member `m` takes the group's pending entry over and is killed holding
/// it.
pub fn die_taking_pending(r: &Ring<LoomRegion>, g: usize, m: usize) {
    ack::take_pending(&r, g, m, 0, |_| false).expect("a pending entry");
}

/// Claims one 8-byte record and abandons it: commits it as aborted, as a
/// dropped zero-copy claim does. Returns the sequence number it used up.
pub fn abort_one(r: &Ring<LoomRegion>, pc: &mut ProducerCursor) -> u64 {
    let geo = r.geometry();
    let end_of = |p: u64| geo.place(p, 8) + record_size(8);
    let who = producer_sleeper(pc, WaitStrategy::Spin);
    let claim = r
        .wait_for(
            who,
            WaitStrategy::Spin,
            || None,
            || claim::try_claim(&r, pc, 1, end_of).ok(),
        )
        .expect("no deadline");
    let rec = geo.place(claim.start, 8);
    r.write_header(rec, claim.seq, 0, 8, 0);
    claim::commit_claim(&r, &claim, std::iter::once((rec, 8, layout::KIND_ABORT)));
    claim.seq
}

/// A ring for keyed messages: 256 bytes, payloads of 32 bytes at most (an
/// 8-byte value and a key block of 24), one group of `members` members
/// ordered by key, and three ack entries (two holds and a parked message).
pub fn keyed_group_of(members: u32) -> (loom::sync::Arc<Ring<LoomRegion>>, usize, Vec<usize>) {
    let geo = Geometry {
        capacity: 256,
        max_msg: 32,
        max_groups: 1,
        max_members: members,
        max_producers: 2,
        ack_entries: 3,
    };
    let r = loom::sync::Arc::new(Ring::new(LoomRegion::new(&geo), geo, 0x5eed));
    let g = add(&r, "g", StartAt::Latest);
    order::set_keyed(&r, g, true);
    let ms = (1..=u64::from(members))
        .map(|pid| group::attach(&r, g, pid, 1).expect("a free member slot"))
        .collect();
    (r, g, ms)
}

/// Publishes one 8-byte message carrying `value` with key `key` (at most 8
/// bytes), on a ring with room for it.
pub fn send_keyed(r: &Ring<LoomRegion>, pc: &mut ProducerCursor, key: &[u8], value: u64) -> u64 {
    let geo = r.geometry();
    let len = (8 + layout::key_block(key.len())) as u64;
    let end_of = |p: u64| geo.place(p, len) + record_size(len);
    let claim = claim::try_claim(&r, pc, 1, end_of).expect("room");
    let rec = geo.place(claim.start, len);
    // SAFETY: `rec` is the one record of our claim, placed for the key
    // block and 8 bytes.
    unsafe { r.write_keyed_record(rec, claim.seq, 0, None, 0, Some(key), &value.to_le_bytes()) };
    claim::commit_claim(&r, &claim, std::iter::once((rec, len, KIND_MSG)));
    claim.seq
}
