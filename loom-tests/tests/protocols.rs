//! The claim/commit, group-claim, wait/wake and group-add protocols under every
//! interleaving loom explores (preemption bound 3 unless LOOM_MAX_PREEMPTIONS says otherwise).

use loom::sync::Arc;
use loom::thread;
use shmq_loom_tests::group::StartAt;
use shmq_loom_tests::protocol::{ack, claim, due, group, identity, registry, spill};
use shmq_loom_tests::wait::Sleeper;
use shmq_loom_tests::wait::WaitStrategy::{Block, Spin};
use shmq_loom_tests::*;

/// Value a producer puts in its i-th message: producer and counter.
fn val(p: u64, i: u64) -> u64 {
    (p << 32) | i
}

/// Two producers race for claims while one consumer reads; four messages wrap
/// the ring (with a pad) and fill it, so producers also wait for space.
#[test]
fn claim_commit_two_producers_wrap_and_full() {
    model(|| {
        let r = Arc::new(ring());
        let g = add(&r, "g", StartAt::Latest);
        let m = group::attach(&r, g, 1, 1).unwrap();
        let producers: Vec<_> = (0..2u64)
            .map(|p| {
                let r = r.clone();
                thread::spawn(move || {
                    let mut pc = claim::producer_cursor(&r);
                    (0..2)
                        .map(|i| send(&r, &mut pc, val(p, i), Spin))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut got = Vec::new();
        for _ in 0..4 {
            got.push(recv(&r, g, m, Spin));
        }
        let seqs: Vec<Vec<u64>> = producers.into_iter().map(|h| h.join().unwrap()).collect();
        // Dense, in order, every value intact, each producer's order kept.
        for (i, (seq, v)) in got.iter().enumerate() {
            assert_eq!(*seq, i as u64);
            let p = v >> 32;
            assert_eq!(
                seqs[p as usize][(v & 0xffff_ffff) as usize],
                *seq,
                "value {v:#x} at seq {seq}"
            );
        }
        for s in &seqs {
            assert!(s[0] < s[1]);
        }
    });
}

/// Two members of one group compete for three messages: each message goes to
/// exactly one member, and each member's sequence numbers increase. (Producers
/// racing consumers are the claim/commit model's subject; a third spinning
/// thread here would put the model out of CI's reach.)
#[test]
fn group_members_compete_exactly_once() {
    model(|| {
        let (r, g, m) = group_of(2);
        let (m0, m1) = (m[0], m[1]);
        let mut pc = claim::producer_cursor(&r);
        for i in 0..3 {
            send(&r, &mut pc, val(7, i), Spin);
        }
        let taken = Arc::new(loom::sync::atomic::AtomicUsize::new(0));
        let other = {
            let (r, taken) = (r.clone(), taken.clone());
            thread::spawn(move || {
                let mut mine = Vec::new();
                while taken.load(loom::sync::atomic::Ordering::Acquire) < 3 {
                    match try_recv(&r, g, m1) {
                        Some(x) => {
                            mine.push(x);
                            taken.fetch_add(1, loom::sync::atomic::Ordering::AcqRel);
                        }
                        None => thread::yield_now(),
                    }
                }
                mine
            })
        };
        let mut mine = Vec::new();
        while taken.load(loom::sync::atomic::Ordering::Acquire) < 3 {
            match try_recv(&r, g, m0) {
                Some(x) => {
                    mine.push(x);
                    taken.fetch_add(1, loom::sync::atomic::Ordering::AcqRel);
                }
                None => thread::yield_now(),
            }
        }
        let theirs = other.join().unwrap();
        assert!(mine.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(theirs.windows(2).all(|w| w[0].0 < w[1].0));
        let mut all: Vec<_> = mine.into_iter().chain(theirs).collect();
        all.sort();
        assert_eq!(all, (0..3).map(|i| (i, val(7, i))).collect::<Vec<_>>());
    });
}

/// A member takes a nacked message over and is killed holding it. The
/// reaper gives it back, and a live member takes the redelivery, while a
/// producer wraps the ring towards the message: the entry's pin must keep
/// it throughout (it never moves), and it reaches the live member intact.
#[test]
fn redelivery_taker_killed_is_reaped_back_to_pending() {
    model(move || {
        let (r, g, m) = group_of(3);
        let (holder, taker, live) = (m[0], m[1], m[2]);
        let mut pc = claim::producer_cursor(&r);
        for i in 0..3 {
            send(&r, &mut pc, val(7, i), Spin);
        }
        let t = take_and_nack(&r, g, holder);
        die_taking_pending(&r, g, taker);
        let producer = {
            let r = r.clone();
            // Message 3 goes where message 0 is (after a pad): only once it
            // is acknowledged.
            thread::spawn(move || send(&r, &mut pc, val(7, 3), Spin))
        };
        // The reaper (the admin lock keeps other reapers out), then the
        // live member, race the producer.
        let reaped = ack::reap_entries(&r, g, taker);
        assert_eq!(reaped.pending, 1);
        group::detach(&r, g, taker);
        let h = ack::take_pending(&r, g, live, 0, |_| false).expect("pending again");
        assert_eq!((h.entry.seq, h.entry.at, h.entry.attempts), (0, t.pos, 2));
        assert_eq!(value(&r, &t), val(7, 0), "overwritten while pinned");
        ack::finish_hold(&r, g, live, &h, false).expect("held");
        assert_eq!(producer.join().unwrap(), 3);
        assert!(
            ack::entries(&r, g).is_empty(),
            "nothing left in the ack table"
        );
    });
}

/// Two members each hold a message (windows of one), and both nack while
/// one of them takes a pending message over: each message is pending or held
/// exactly once at every step, and both are delivered again. (Before the ack
/// table, taking the older one over overwrote the taker's own pending
/// entry, and the other message was lost.)
#[test]
fn nacks_and_take_overs_never_overwrite_an_entry() {
    model(|| {
        let (r, g, m) = group_of(2);
        let (a, b) = (m[0], m[1]);
        let mut pc = claim::producer_cursor(&r);
        send(&r, &mut pc, val(7, 0), Spin);
        send(&r, &mut pc, val(7, 1), Spin);
        let (hb, _) = take_held(&r, g, b);
        let (ha, _) = take_held(&r, g, a);
        assert_eq!((hb.entry.seq, ha.entry.seq), (0, 1));
        ack::nack_hold(&r, g, &ha).expect("held");
        let other = {
            let r = r.clone();
            thread::spawn(move || {
                ack::nack_hold(&r, g, &hb).expect("held");
            })
        };
        // A takes whatever is pending, while B nacks.
        let first = ack::take_pending(&r, g, a, 0, |_| false).expect("1 is pending");
        other.join().unwrap();
        let second = ack::take_pending(&r, g, b, 0, |_| false).expect("the other is pending");
        let mut seqs = [first.entry.seq, second.entry.seq];
        seqs.sort();
        assert_eq!(seqs, [0, 1]);
        ack::finish_hold(&r, g, a, &first, false).expect("held");
        ack::finish_hold(&r, g, b, &second, false).expect("held");
        assert!(
            ack::entries(&r, g).is_empty(),
            "nothing left in the ack table"
        );
    });
}

/// A holder acknowledges while another member expires the hold (ack
/// deadline passed): exactly one of them wins. The late ack changes nothing
/// (the message is pending and redelivered); an ack that wins leaves
/// nothing pending. Meanwhile a producer wraps the ring towards the message,
/// which the pin keeps until the entry is finished.
#[test]
fn ack_deadline_expiry_races_the_ack() {
    model(|| {
        let (r, g, m) = group_of(2);
        let (holder, other) = (m[0], m[1]);
        ack::set_ack_policy(&r, g, 1, 1);
        let mut pc = claim::producer_cursor(&r);
        for i in 0..3 {
            send(&r, &mut pc, val(7, i), Spin);
        }
        let (h, t) = take_held(&r, g, holder);
        let expirer = {
            let r = r.clone();
            // Long past its deadline (the take's time is 0: set now).
            thread::spawn(move || {
                ack::maintain(&r, g, 5);
                ack::maintain(&r, g, 10)
            })
        };
        let acked = ack::finish_hold(&r, g, holder, &h, false).is_ok();
        let expired = expirer.join().unwrap();
        assert_eq!(acked, expired == 0, "exactly one wins");
        let producer = {
            let r = r.clone();
            thread::spawn(move || send(&r, &mut pc, val(7, 3), Spin))
        };
        if !acked {
            let h2 = ack::take_pending(&r, g, other, 0, |_| false).expect("redelivered");
            assert_eq!((h2.entry.seq, h2.entry.attempts), (0, 1));
            assert_eq!(value(&r, &t), val(7, 0), "overwritten while pinned");
            ack::finish_hold(&r, g, other, &h2, false).expect("held");
        }
        assert_eq!(producer.join().unwrap(), 3);
        assert!(
            ack::entries(&r, g).is_empty(),
            "nothing left in the ack table"
        );
    });
}

/// A producer publishes four messages into a ring that holds three (it
/// wraps, pads its end and waits for space) while a member takes them in
/// batches of up to three with one cursor CAS each: the hazard on a batch's
/// first record must keep all of it, across the pad, from being
/// overwritten while it is read. Dense, in order, every value intact.
#[test]
fn group_batch_take_keeps_the_whole_batch_pinned() {
    model(|| {
        let r = Arc::new(ring());
        let g = add(&r, "g", StartAt::Latest);
        let m = group::attach(&r, g, 1, 1).unwrap();
        let producer = {
            let r = r.clone();
            thread::spawn(move || {
                let mut pc = claim::producer_cursor(&r);
                for i in 0..4 {
                    send(&r, &mut pc, val(1, i), Spin);
                }
            })
        };
        let mut got = Vec::new();
        while got.len() < 4 {
            let batch = try_recv_batch(&r, g, m, 3);
            if batch.is_empty() {
                thread::yield_now();
            }
            got.extend(batch);
        }
        producer.join().unwrap();
        assert_eq!(got, (0..4).map(|i| (i, val(1, i))).collect::<Vec<_>>());
    });
}

/// Two members take three messages in batches of up to two, competing for
/// the cursor: each message goes to exactly one of them, each member's
/// sequence numbers increase, and an aborted claim among them is passed over.
#[test]
fn group_batch_takes_compete_exactly_once() {
    model(|| {
        let (r, g, m) = group_of(2);
        let (m0, m1) = (m[0], m[1]);
        let mut pc = claim::producer_cursor(&r);
        send(&r, &mut pc, val(7, 0), Spin);
        let aborted = abort_one(&r, &mut pc);
        send(&r, &mut pc, val(7, 2), Spin);
        let taken = Arc::new(loom::sync::atomic::AtomicUsize::new(0));
        let member = move |m: usize,
                           taken: Arc<loom::sync::atomic::AtomicUsize>,
                           r: Arc<ring::Ring<LoomRegion>>| {
            let mut mine = Vec::new();
            while taken.load(loom::sync::atomic::Ordering::Acquire) < 2 {
                let batch = try_recv_batch(&r, g, m, 2);
                if batch.is_empty() {
                    thread::yield_now();
                }
                taken.fetch_add(batch.len(), loom::sync::atomic::Ordering::AcqRel);
                mine.extend(batch);
            }
            mine
        };
        let other = {
            let (r, taken) = (r.clone(), taken.clone());
            thread::spawn(move || member(m1, taken, r))
        };
        let mine = member(m0, taken, r);
        let theirs = other.join().unwrap();
        assert!(mine.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(theirs.windows(2).all(|w| w[0].0 < w[1].0));
        let mut all: Vec<_> = mine.into_iter().chain(theirs).collect();
        all.sort();
        assert_eq!(aborted, 1);
        assert_eq!(all, vec![(0, val(7, 0)), (2, val(7, 2))]);
    });
}

/// A consumer that blocks (futex path) on an empty ring is woken by the next
/// commit: a lost wake-up would leave it asleep forever, which loom reports as
/// a deadlock.
#[test]
fn wait_wake_consumer_never_misses_a_commit() {
    model(|| {
        let r = Arc::new(ring());
        let g = add(&r, "g", StartAt::Latest);
        let m = group::attach(&r, g, 1, 1).unwrap();
        let r2 = r.clone();
        let producer = thread::spawn(move || {
            let mut pc = claim::producer_cursor(&r2);
            send(&r2, &mut pc, 42, Spin)
        });
        let (seq, v) = recv(&r, g, m, Block);
        assert_eq!((seq, v), (producer.join().unwrap(), 42));
    });
}

/// A ring with group "g", its one member, and messages 0, 1, 2 filling it.
fn full_ring() -> (Arc<ring::Ring<LoomRegion>>, usize, usize) {
    let r = Arc::new(ring());
    let g = add(&r, "g", StartAt::Latest);
    let m = group::attach(&r, g, 1, 1).unwrap();
    let mut pc = claim::producer_cursor(&r);
    for i in 0..3 {
        send(&r, &mut pc, i, Spin); // fills the 128-byte ring
    }
    (r, g, m)
}

/// A producer blocked on a full ring (futex path) is woken when the consumer
/// releases space.
#[test]
fn wait_wake_producer_never_misses_space() {
    model(|| {
        let (r, g, m) = full_ring();
        // A producer that may sleep announces it in its registry slot.
        let slot = registry::register_producer(&r, 2, 2).unwrap();
        let r2 = r.clone();
        let producer = thread::spawn(move || {
            let mut pc = claim::producer_cursor(&r2);
            pc.set_slot(slot);
            send(&r2, &mut pc, 3, Block)
        });
        assert_eq!(recv(&r, g, m, Spin), (0, 0));
        assert_eq!(producer.join().unwrap(), 3);
        for i in 1..4 {
            assert_eq!(recv(&r, g, m, Spin), (i, i));
        }
    });
}

/// A member killed asleep (it announced its sleep and never withdrew it) is
/// reaped while the other member sleeps and a producer commits: the reaper
/// takes back exactly the dead member's count, the live member is still woken
/// (loom reports a lost wake-up as a deadlock), and nobody is counted at the
/// end.
#[test]
fn wait_wake_reaping_a_member_killed_asleep_loses_no_wake_up() {
    model(|| {
        let r = Arc::new(ring_with(2));
        let g = add(&r, "g", StartAt::Latest);
        let dead = group::attach(&r, g, 1, 1).unwrap();
        let live = group::attach(&r, g, 2, 2).unwrap();
        die_asleep(&r, Sleeper::Member { g, m: dead });
        let r2 = r.clone();
        let reaper = thread::spawn(move || r2.clear_sleeper(Sleeper::Member { g, m: dead }));
        let r3 = r.clone();
        let producer = thread::spawn(move || {
            let mut pc = claim::producer_cursor(&r3);
            send(&r3, &mut pc, 42, Spin)
        });
        let (seq, v) = recv(&r, g, live, Block);
        assert!(reaper.join().unwrap(), "the dead member was marked");
        assert_eq!((seq, v), (producer.join().unwrap(), 42));
        assert_eq!(sleepers(&r, 2), (0, 0, vec![false, false]));
    });
}

/// A producer killed asleep on a full ring is recovered while another
/// producer sleeps there and the consumer frees space: the recovery takes
/// back only the dead producer's count, the live one is woken, and nobody is
/// left counted.
#[test]
fn wait_wake_recovering_a_producer_killed_asleep_loses_no_wake_up() {
    model(|| {
        let (r, g, m) = full_ring();
        let dead = registry::register_producer(&r, 7, 7).unwrap();
        die_asleep(&r, Sleeper::Producer { slot: dead });
        let live = registry::register_producer(&r, 8, 8).unwrap();
        let r2 = r.clone();
        let recovery = thread::spawn(move || registry::recover_claims(&r2, |pid, _| pid != 7));
        let r3 = r.clone();
        let producer = thread::spawn(move || {
            let mut pc = claim::producer_cursor(&r3);
            pc.set_slot(live);
            send(&r3, &mut pc, 3, Block)
        });
        assert_eq!(recv(&r, g, m, Spin), (0, 0));
        let rec = recovery.join().unwrap();
        assert_eq!((rec.sleepers, rec.freed), (1, 1));
        assert_eq!(producer.join().unwrap(), 3);
        assert_eq!(sleepers(&r, 1), (0, 0, vec![false]));
    });
}

/// A group added "from earliest" while a producer laps a ring with no other
/// group: whatever start it gets, everything from there is intact and dense —
/// a producer with a stale scan never overwrites the new group's messages. The
/// last message (seq 3) always reaches it: the ring still holds it.
///
/// Bound 2 by default: at 3 it explores for some ten minutes on 2 cores
/// (`LOOM_MAX_PREEMPTIONS=3`); at 2 the missing generation bump still fails.
#[test]
fn group_add_races_head_advance() {
    model_at(2, || {
        let r = Arc::new(ring());
        let r2 = r.clone();
        let producer = thread::spawn(move || {
            let mut pc = claim::producer_cursor(&r2);
            for i in 0..4 {
                send(&r2, &mut pc, 100 + i, Spin);
            }
        });
        let g = add(&r, "late", StartAt::Earliest);
        let m = group::attach(&r, g, 1, 1).unwrap();
        let mut next = None;
        loop {
            let (seq, v) = recv(&r, g, m, Spin);
            if let Some(n) = next {
                assert_eq!(seq, n, "gap");
            }
            assert_eq!(v, 100 + seq, "overwritten or garbled at seq {seq}");
            next = Some(seq + 1);
            if seq == 3 {
                break;
            }
        }
        producer.join().unwrap();
    });
}

/// A producer abandons a claim (commits it as aborted) while another publishes:
/// the consumer skips the aborted record, never delivers it, and gets the real
/// message with its own sequence number; the aborted one stays unused.
#[test]
fn claim_commit_with_an_aborted_claim() {
    model(|| {
        let r = Arc::new(ring());
        let g = add(&r, "g", StartAt::Latest);
        let m = group::attach(&r, g, 1, 1).unwrap();
        let r2 = r.clone();
        let aborter = thread::spawn(move || {
            let mut pc = claim::producer_cursor(&r2);
            abort_one(&r2, &mut pc)
        });
        let mut pc = claim::producer_cursor(&r);
        let sent = send(&r, &mut pc, 42, Spin);
        let (seq, v) = recv(&r, g, m, Spin);
        let aborted = aborter.join().unwrap();
        assert_eq!((seq, v), (sent, 42));
        assert_ne!(aborted, sent);
        // Nothing else is delivered: the aborted record was skipped.
        assert_eq!(try_recv(&r, g, m), None);
    });
}

/// A producer dies holding its claim (CAS done, never committed) while
/// another publishes; recoveries race the live producer. Only the dead claim
/// is aborted: the live message is delivered once with its own sequence
/// number, nothing else is, and nothing stays stuck.
#[test]
fn recovery_aborts_only_a_dead_producers_claim() {
    model(|| {
        let r = Arc::new(ring());
        let g = add(&r, "g", StartAt::Latest);
        let m = group::attach(&r, g, 1, 1).unwrap();
        let dead = registry::register_producer(&r, 100, 1).unwrap();
        let live = registry::register_producer(&r, 200, 1).unwrap();
        let r2 = r.clone();
        let dier = thread::spawn(move || {
            let mut pc = claim::producer_cursor(&r2);
            pc.set_slot(dead);
            let geo = r2.geometry();
            let end_of = |p: u64| geo.place(p, 8) + layout::record_size(8);
            // The ring has room for both claims: this one cannot fail.
            claim::try_claim(&r2, &mut pc, 1, end_of).expect("room").seq
        });
        let r3 = r.clone();
        let sender = thread::spawn(move || {
            let mut pc = claim::producer_cursor(&r3);
            pc.set_slot(live);
            send(&r3, &mut pc, 42, Spin)
        });
        let dead_seq = dier.join().unwrap();
        let alive = |pid: u64, _| pid != 100;
        // One recovery races the live sender, one runs after it.
        let first = registry::recover_claims(&r, alive);
        let sent = sender.join().unwrap();
        let second = registry::recover_claims(&r, alive);
        assert_ne!(dead_seq, sent);
        assert_eq!(first.claims + second.claims, 1, "{first:?} {second:?}");
        assert_eq!(recv(&r, g, m, Spin), (sent, 42));
        assert_eq!(try_recv(&r, g, m), None);
        // The dead slot is free again, the live one kept.
        assert_eq!(registry::producer_slots(&r).len(), 1);
    });
}

/// A producer claims a record and dies before committing it, while a
/// recovery runs: the recovery may have read TAIL before the claim and the
/// producer's slot after it (dead by then). It must not take the claim for
/// done and free the slot, which would leave the record uncommitted for
/// good (every group stuck at it) and, for a named producer, settle its
/// pseq as published (the model test's seed 409796887). Whatever the
/// interleaving, once a later recovery has run the slot is free and the
/// record aborted.
#[test]
fn recovery_racing_a_claim_then_death_settles_nothing_unseen() {
    model(|| {
        let r = Arc::new(ring());
        let g = add(&r, "g", StartAt::Latest);
        let m = group::attach(&r, g, 1, 1).unwrap();
        let slot = registry::register_producer(&r, 100, 1).unwrap();
        let dead = Arc::new(loom::sync::atomic::AtomicBool::new(false));
        let (r2, dead2) = (r.clone(), dead.clone());
        let dier = thread::spawn(move || {
            let mut pc = claim::producer_cursor(&r2);
            pc.set_slot(slot);
            let geo = r2.geometry();
            let end_of = |p: u64| geo.place(p, 8) + layout::record_size(8);
            let c = claim::try_claim(&r2, &mut pc, 1, end_of).expect("room");
            // Killed between its claim and its commit.
            dead2.store(true, loom::sync::atomic::Ordering::SeqCst);
            c.start
        });
        let d = dead.clone();
        let alive = move |pid: u64, _| pid != 100 || !d.load(loom::sync::atomic::Ordering::SeqCst);
        let first = registry::recover_claims(&r, &alive);
        let pos = dier.join().unwrap();
        let second = registry::recover_claims(&r, &alive);
        assert_eq!(first.freed + second.freed, 1, "{first:?} {second:?}");
        assert_eq!(first.claims + second.claims, 1, "{first:?} {second:?}");
        assert!(
            !matches!(r.slot_at(pos), ring::Slot::Uncommitted),
            "the slot was freed over an uncommitted claim: {first:?} {second:?}"
        );
        assert_eq!(try_recv(&r, g, m), None);
    });
}

/// A batch is all or nothing: a member that takes the batch's first message
/// finds the rest committed at once (the first is committed last), also
/// across the ring's end, where the batch's first record may follow a pad.
#[test]
fn batch_commit_is_all_or_nothing() {
    model(|| {
        let (r, g, m) = group_of(1);
        let m = m[0];
        let mut pc = claim::producer_cursor(&r);
        // The batch's claim starts with a pad (committed first; the first
        // record, last).
        fill_to_lap_end(&r, g, m, &mut pc);
        let r2 = r.clone();
        let producer = thread::spawn(move || {
            let mut pc = claim::producer_cursor(&r2);
            send_batch(&r2, &mut pc, &[10, 11])
        });
        assert_eq!(recv(&r, g, m, Spin), (3, 10));
        // Taken the moment it was committed, or later: the second is there.
        assert_eq!(try_recv(&r, g, m), Some((4, 11)), "part of a batch");
        assert_eq!(producer.join().unwrap(), 3);
    });
}

/// A claim whose first record moved to the next lap: the pad before it is
/// committed first and the record last, so a reader that looks at the
/// record's own position (as `ack::resolve_forward` does for a dead letter)
/// finds it committed only once the whole claim is. (Pad last, a member
/// killed between the two could count its dead letter as published while a
/// recovery then aborts it from the pad on; the reviewer of the batch change
/// found that.) Deterministic.
#[test]
fn a_claims_record_is_committed_after_the_pad_before_it() {
    model(|| {
        let (r, g, m) = group_of(1);
        let m = m[0];
        let mut pc = claim::producer_cursor(&r);
        fill_to_lap_end(&r, g, m, &mut pc);
        let (claim, recs) = claim_batch(&r, &mut pc, &[7]);
        assert_ne!(recs[0], claim.start, "the record moved to the next lap");
        let (first, _) = claim::commit_rest(&r, &claim, std::iter::once((recs[0], 8, KIND_MSG)));
        assert!(matches!(r.slot_at(claim.start), ring::Slot::Pad { .. }));
        assert!(matches!(r.slot_at(recs[0]), ring::Slot::Uncommitted));
        assert_eq!(try_recv(&r, g, m), None);
        claim::commit_first(&r, first);
        assert_eq!(try_recv(&r, g, m), Some((3, 7)));
    });
}

/// A producer killed while it commits a batch (its later records committed,
/// its first not): the recovery aborts the whole claim, so no group gets
/// any of it, while a live producer's message after it is delivered.
#[test]
fn batch_whose_producer_died_mid_commit_is_aborted_whole() {
    model(|| {
        let r = Arc::new(ring());
        let g = add(&r, "g", StartAt::Latest);
        let m = group::attach(&r, g, 1, 1).unwrap();
        let dead = registry::register_producer(&r, 100, 1).unwrap();
        let live = registry::register_producer(&r, 200, 1).unwrap();
        let mut pc = claim::producer_cursor(&r);
        pc.set_slot(dead);
        let (claim, recs) = claim_batch(&r, &mut pc, &[10, 11]);
        // Killed after committing its later record, before its first.
        r.commit(recs[1], KIND_MSG);
        let r3 = r.clone();
        let sender = thread::spawn(move || {
            let mut pc = claim::producer_cursor(&r3);
            pc.set_slot(live);
            send(&r3, &mut pc, 42, Spin)
        });
        let alive = |pid: u64, _| pid != 100;
        let first = registry::recover_claims(&r, alive);
        let sent = sender.join().unwrap();
        let second = registry::recover_claims(&r, alive);
        assert_eq!(sent, claim.seq + 2);
        assert_eq!(first.records + second.records, 2, "{first:?} {second:?}");
        assert_eq!(recv(&r, g, m, Spin), (sent, 42));
        assert_eq!(try_recv(&r, g, m), None);
    });
}

/// A producer dies after announcing a claim at the tail but before its CAS,
/// while another producer claims that very position: the stale intent covers
/// a live claim, and a recovery racing the live producer must not abort it.
#[test]
fn recovery_leaves_a_live_claim_under_a_dead_intent_alone() {
    model(|| {
        let r = Arc::new(ring());
        let g = add(&r, "g", StartAt::Latest);
        let m = group::attach(&r, g, 1, 1).unwrap();
        let dead = registry::register_producer(&r, 100, 1).unwrap();
        let live = registry::register_producer(&r, 200, 1).unwrap();
        // Announced at (0, 0), then gone before the CAS.
        let geo = r.geometry();
        registry::note_intent(&r, dead, 0, 0, geo.place(0, 8) + layout::record_size(8), 1);
        let r3 = r.clone();
        let sender = thread::spawn(move || {
            let mut pc = claim::producer_cursor(&r3);
            pc.set_slot(live);
            send(&r3, &mut pc, 42, Spin)
        });
        let alive = |pid: u64, _| pid != 100;
        let first = registry::recover_claims(&r, alive);
        let sent = sender.join().unwrap();
        let second = registry::recover_claims(&r, alive);
        assert_eq!(sent, 0);
        assert_eq!(first.claims + second.claims, 0, "{first:?} {second:?}");
        assert_eq!(recv(&r, g, m, Spin), (0, 42));
        assert_eq!(try_recv(&r, g, m), None);
        assert_eq!(registry::producer_slots(&r).len(), 1);
    });
}

/// A nacked message is taken over by another member while a producer wraps
/// the ring towards it: its entry's pin (which stays where it is) keeps the
/// producer off it until the taker acknowledges it.
#[test]
fn redelivery_hand_off_keeps_the_message_pinned() {
    model(|| {
        let (r, g, m) = group_of(2);
        let (m0, m1) = (m[0], m[1]);
        let mut pc = claim::producer_cursor(&r);
        send(&r, &mut pc, val(7, 0), Spin);
        // Member 1 takes message 0 with explicit ack, and nacks it.
        let t = take_and_nack(&r, g, m1);
        assert_eq!(t.seq, 0);
        let producer = {
            let r = r.clone();
            thread::spawn(move || {
                // Three more: the third goes where message 0 is, and may only
                // once it is acked. Nobody reads them; the group's cursor
                // allows a full lap past message 0.
                for i in 1..4 {
                    send(&r, &mut pc, val(7, i), Spin);
                }
            })
        };
        let h = ack::take_pending(&r, g, m0, 0, |_| false).expect("pending");
        assert_eq!((h.entry.seq, h.entry.attempts), (0, 1));
        assert_eq!(value(&r, &t), val(7, 0), "overwritten while pinned");
        ack::finish_hold(&r, g, m0, &h, false).expect("held");
        producer.join().unwrap();
    });
}

/// A member gives a message up and, the ring having no room for a copy,
/// hands it over: its ack entry's pin moves to an entry of the dead-letter
/// group (set there, then cleared here), while a producer laps the ring
/// towards the message. The dead-letter group sits in the first slot, so a
/// producer's scan reads its pin before the giving-up group's: a scan that
/// read the new place before the pin was stored and the old one after it was
/// cleared would let the producer overwrite the message; the pin-move
/// counter makes it scan again. The dead-letter member then reads the
/// message intact, with its origin, as a first delivery.
#[test]
fn dead_letter_hand_over_keeps_the_message_pinned() {
    model(|| {
        let geo = layout::Geometry {
            max_groups: 2,
            ..tiny(1)
        };
        let r = Arc::new(ring::Ring::new(LoomRegion::new(&geo), geo, 0x5eed));
        let d = group::add_group(&r, b"dlq", StartAt::Latest, 0, true).expect("group slot");
        let g = add(&r, "g", StartAt::Latest);
        let (gm, dm) = (
            group::attach(&r, g, 1, 1).unwrap(),
            group::attach(&r, d, 2, 1).unwrap(),
        );
        let mut pc = claim::producer_cursor(&r);
        send(&r, &mut pc, val(7, 0), Spin);
        // The dead-letter group's cursor passes message 0 (not addressed
        // to it).
        assert_eq!(try_recv(&r, d, dm), None);
        let t = take_and_nack(&r, g, gm);
        let h = ack::take_pending(&r, g, gm, 0, |_| false).expect("pending");
        let f = ack::begin_forward(&r, g, gm, &h).expect("held");
        let producer = {
            let r = r.clone();
            // Messages 1 and 2, then 3 where message 0 is (after a pad): only
            // once the dead-letter member acknowledged it. Neither group
            // reads them (the dead-letter group's cursor allows the lap).
            thread::spawn(move || {
                for i in 1..4 {
                    send(&r, &mut pc, val(7, i), Spin);
                }
            })
        };
        let arrival = ack::begin_hand_over(&r, g, &f, d).expect("a free entry");
        assert!(ack::commit_hand_over(&r, d, arrival));
        ack::end_forward(&r, g, gm, &f, true);
        let l = ack::take_pending(&r, d, dm, 0, |_| false).expect("handed over");
        assert_eq!((l.entry.seq, l.entry.at), (0, t.pos));
        assert_eq!(l.entry.origin, Some(r.group_id(g)));
        assert_eq!(l.entry.deliveries_before(), 0);
        assert_eq!(value(&r, &t), val(7, 0), "overwritten while pinned");
        ack::finish_hold(&r, d, dm, &l, false).expect("held");
        producer.join().unwrap();
        assert!(ack::entries(&r, g).is_empty() && ack::entries(&r, d).is_empty());
    });
}

/// The spill log of the model: what the files hold (append-only, a log
/// position is an index) and, under the spill lock, where the current run of
/// records began. Members read the log without the spill lock, as they read
/// the files, but through a lock of its own, since loom cannot see file I/O.
struct ModelLog {
    run_start: loom::sync::Mutex<usize>,
    recs: loom::sync::Mutex<Vec<(u64, u64)>>,
}

/// One spill round as `spiller.rs` runs it, reduced to the shared-memory
/// protocol of `spill.rs`: rejoin, copy the committed records from FRONT into
/// the log, move FRONT past them, transfer the group if its next message is
/// logged (always, not only when it lags: every transfer the protocol allows
/// is explored), retire FRONT when the group is back on the ring.
fn spill_round(r: &shmq_loom_tests::ring::Ring<LoomRegion>, log: &ModelLog, g: usize) {
    use shmq_loom_tests::layout::{unpack, DISK_BIT};
    use shmq_loom_tests::ring::Slot;
    let mut run_start = log.run_start.lock().unwrap();
    spill::rejoin(r, g);
    let (fseq, fpos) = match spill::front_now(r) {
        Some(f) => f,
        None => {
            *run_start = log.recs.lock().unwrap().len();
            spill::activate_front(r)
        }
    };
    let (mut seq, mut pos) = (fseq, fpos);
    loop {
        match r.slot_at(pos) {
            Slot::Uncommitted => break,
            Slot::Pad { next } => pos = next,
            Slot::Record {
                seq: rseq, next, ..
            } => {
                assert_eq!(rseq, seq, "a record below FRONT was overwritten");
                let mut buf = [0u8; 8];
                // SAFETY: FRONT is at or below `pos` and only the holder of
                // the spill lock moves it.
                unsafe { spill::copy_payload(r, pos, &mut buf) };
                log.recs
                    .lock()
                    .unwrap()
                    .push((seq, u64::from_le_bytes(buf)));
                seq += 1;
                pos = next;
            }
            Slot::Bad => panic!("bad record at {pos}"),
        }
    }
    if pos != fpos {
        spill::advance_front(r, seq, pos);
    }
    let start = *run_start;
    spill::transfer(r, g, u64::MAX, |s| {
        let recs = log.recs.lock().unwrap();
        (start..recs.len())
            .find(|&i| recs[i].0 == s)
            .map(|i| i as u64)
    });
    if unpack(r.cursor_now(g)).0 & DISK_BIT == 0 {
        spill::retire_front(r);
    }
}

/// A producer wraps the ring while its one group's member reads: whenever the
/// ring is full the producer runs a spill round, which logs what the group
/// has not read and moves the group onto the log; the member reads the log
/// (CAS on the cursor word, racing the spiller's transfer and rejoin), runs
/// the round that brings the group back once it has read everything, and
/// goes on in the ring. It must get every message once, in order, intact:
/// FRONT has to keep the producer off records not yet logged, the transfer
/// and the member's ring take must not both win, and the rejoin must land
/// exactly at FRONT.
#[test]
fn spill_hand_off_loses_and_repeats_nothing() {
    use shmq_loom_tests::group::Take;
    use shmq_loom_tests::layout::{unpack, DISK_BIT};
    const N: u64 = 7;
    model(|| {
        let r = Arc::new(ring());
        let g = add(&r, "g", StartAt::Latest);
        let m = group::attach(&r, g, 1, 1).unwrap();
        let log = Arc::new(ModelLog {
            run_start: loom::sync::Mutex::new(0),
            recs: loom::sync::Mutex::new(Vec::new()),
        });
        let producer = {
            let (r, log) = (r.clone(), log.clone());
            thread::spawn(move || {
                let mut pc = claim::producer_cursor(&r);
                for i in 0..N {
                    send_or(&r, &mut pc, val(7, i), || spill_round(&r, &log, g));
                }
            })
        };
        let mut got = Vec::new();
        while (got.len() as u64) < N {
            match group::try_take(&r, g, m, None).expect("corrupt") {
                Some(Take::Ring(t)) => {
                    got.push((t.seq, value(&r, &t)));
                    group::release(&r, g, m);
                }
                Some(Take::Disk(cur)) => {
                    let (seq, at) = unpack(cur);
                    let rec = log.recs.lock().unwrap().get(at as usize).copied();
                    match rec {
                        Some((s, v)) => {
                            assert_eq!(s, seq & !DISK_BIT, "the cursor is off the log");
                            if spill::disk_advance(&r, g, cur, s, 1) {
                                got.push((s, v));
                            }
                        }
                        // Read everything logged: a round brings us back.
                        None => spill_round(&r, &log, g),
                    }
                }
                None => thread::yield_now(),
            }
        }
        producer.join().unwrap();
        assert_eq!(got, (0..N).map(|i| (i, val(7, i))).collect::<Vec<_>>());
    });
}

/// A producer dies after committing its claim but before clearing its
/// intent; the ring then moves on a lap, reusing the claim's bytes, before
/// anyone recovers. The recovery must see that the claim was completed (the
/// bytes now belong to a later lap), not mistake the later lap's record for
/// an uncommitted one and write ABORT over it.
#[test]
fn recovery_after_the_ring_moved_on_leaves_later_laps_alone() {
    model(|| {
        let r = ring();
        let g = add(&r, "g", StartAt::Latest);
        let m = group::attach(&r, g, 1, 1).unwrap();
        let dead = registry::register_producer(&r, 100, 1).unwrap();
        let geo = r.geometry();
        let end_of = |p: u64| geo.place(p, 8) + layout::record_size(8);
        // The dead producer's claim, committed without `note_done`.
        let mut pc = claim::producer_cursor(&r);
        pc.set_slot(dead);
        let claim = claim::try_claim(&r, &mut pc, 1, end_of).expect("room");
        let rec = geo.place(claim.start, 8);
        // SAFETY: `rec` is the one record of our claim, placed for 8 bytes.
        unsafe { r.write_record(rec, claim.seq, 0, &7u64.to_le_bytes()) };
        r.commit(rec, KIND_MSG);
        assert_eq!(recv(&r, g, m, Spin), (0, 7));
        // A live producer laps the ring: message 3 lands where message 0 was.
        let mut live = claim::producer_cursor(&r);
        for i in 1..4 {
            assert_eq!(send(&r, &mut live, 10 + i, Spin), i);
            assert_eq!(recv(&r, g, m, Spin), (i, 10 + i));
        }
        let mut pending = claim::producer_cursor(&r);
        assert_eq!(send(&r, &mut pending, 14, Spin), 4);
        let rec = registry::recover_claims(&r, |pid, _| pid != 100);
        assert_eq!((rec.claims, rec.records, rec.freed), (0, 0, 1), "{rec:?}");
        assert_eq!(recv(&r, g, m, Spin), (4, 14));
        assert_eq!(try_recv(&r, g, m), None);
    });
}

/// A named producer dies at each point of a publish (after its claim, after
/// committing, after storing its `next`) while an anonymous producer
/// publishes and recoveries run: the name's `next` counts the message
/// exactly when it was committed (and so delivered), and the name is
/// released for the next producer.
#[test]
fn recovery_settles_a_dead_named_producers_last_pseq() {
    for dies_after in 0..3 {
        model(move || {
            let r = Arc::new(ring());
            let g = add(&r, "g", StartAt::Latest);
            let m = group::attach(&r, g, 1, 1).unwrap();
            let dead = registry::register_producer(&r, 100, 1).unwrap();
            let live = registry::register_producer(&r, 200, 1).unwrap();
            let (i, next) =
                identity::attach_identity(&r, b"named", dead, |_| None).expect("a free name");
            assert_eq!(next, 0);
            registry::set_identity(&r, dead, i);
            let r2 = r.clone();
            let named = thread::spawn(move || {
                let geo = r2.geometry();
                let mut pc = claim::producer_cursor(&r2);
                pc.set_slot(dead);
                pc.set_identity(i, 0);
                let len = 8 + layout::PRODUCER_EXT as u64;
                let end_of = |p: u64| geo.place(p, len) + layout::record_size(len);
                let claim = claim::try_claim(&r2, &mut pc, 1, end_of).expect("room");
                let rec = geo.place(claim.start, len);
                // SAFETY: `rec` is our claim's one record, placed for 8
                // payload bytes and the extension.
                unsafe {
                    r2.write_record_as(
                        rec,
                        claim.seq,
                        0,
                        Some((i as u64, 0)),
                        0,
                        &7u64.to_le_bytes(),
                    )
                };
                if dies_after == 0 {
                    return;
                }
                let n = claim::commit_records(&r2, &claim, std::iter::once((rec, len, KIND_MSG)));
                if dies_after == 1 {
                    return;
                }
                claim::publish_identity(&r2, &claim, n);
                // Dies before clearing its intent.
            });
            let r3 = r.clone();
            let sender = thread::spawn(move || {
                let mut pc = claim::producer_cursor(&r3);
                pc.set_slot(live);
                send(&r3, &mut pc, 42, Spin)
            });
            named.join().unwrap();
            let alive = |pid: u64, _| pid != 100;
            registry::recover_claims(&r, alive);
            sender.join().unwrap();
            registry::recover_claims(&r, alive);
            let committed = dies_after >= 1;
            let mut got = Vec::new();
            while let Some((_, v)) = try_recv(&r, g, m) {
                got.push(v);
            }
            got.sort();
            let want: Vec<u64> = if committed { vec![7, 42] } else { vec![42] };
            assert_eq!(got, want);
            let info = &identity::identities(&r)[0];
            assert_eq!(info.last_pseq, committed.then_some(0), "{info:?}");
            assert!(!info.held(), "the name is released");
        });
    }
}

/// A consumer looks up the name of a message's producer id while one
/// process removes the name and another, after it (as the admin lock orders
/// them), creates a name of the same length in the freed slot: the consumer gets
/// the old name or nothing, never the new name for the old id (the
/// generation is a seqlock around the name's words). Fails without the
/// reader's second look at the generation, or without the Release fence
/// before a new name's words.
#[test]
fn identity_removed_and_reused_never_lends_its_id_the_new_name() {
    model(|| {
        let r = Arc::new(ring());
        let (i, _) = identity::attach_identity(&r, b"old", 0, |_| None).unwrap();
        let old = identity::identity_id(&r, i);
        // The creator starts after the removal, as the admin lock would
        // order them, but in a thread of its own: its stores are not the
        // remover's.
        let r2 = r.clone();
        let admin = thread::spawn(move || {
            identity::remove_identity(&r2, b"old", |_| None).unwrap();
            let r3 = r2.clone();
            thread::spawn(move || {
                let (j, _) = identity::attach_identity(&r3, b"new", 0, |_| None).unwrap();
                identity::identity_id(&r3, j)
            })
            .join()
            .unwrap()
        });
        let r4 = r.clone();
        let reader = thread::spawn(move || identity::name_of_id(&r4, old));
        let seen = reader.join().unwrap();
        let new = admin.join().unwrap();
        assert!(
            seen.is_none() || seen.as_deref() == Some(&b"old"[..]),
            "{seen:?}"
        );
        assert_eq!(identity::name_of_id(&r, old), None);
        assert_ne!(new, old);
        assert_eq!(new as u32, old as u32, "the freed slot is reused");
        assert_eq!(identity::name_of_id(&r, new).as_deref(), Some(&b"new"[..]));
    });
}

/// Ordering by key: member A holds a key's first message and acknowledges
/// it while member B takes the key's second one from the cursor. B is
/// handed the second only after A's hold ended: it parks the message while
/// A's entry is in use, and takes it over once `blocked` lets it. Fails if
/// a take from the cursor ignores the table (`key_busy`), or if a parked
/// message may be taken over early (`blocked`).
#[test]
fn a_keys_next_message_waits_for_the_hold_of_the_one_before() {
    use loom::sync::atomic::{AtomicBool, Ordering::SeqCst};
    model(|| {
        let (r, g, m) = keyed_group_of(2);
        let (a, b) = (m[0], m[1]);
        let mut pc = claim::producer_cursor(&r);
        send_keyed(&r, &mut pc, b"k", 0);
        send_keyed(&r, &mut pc, b"k", 1);
        let (ha, t) = take_held(&r, g, a);
        assert_eq!((t.seq, ha.entry.key != 0), (0, true));
        let holds = Arc::new(AtomicBool::new(true));
        let acker = {
            let (r, holds) = (r.clone(), holds.clone());
            thread::spawn(move || {
                holds.store(false, SeqCst);
                ack::finish_hold(&r, g, a, &ha, false).expect("held");
                order::finished(&r, g);
            })
        };
        let (hb, t) = take_held(&r, g, b);
        assert_eq!(t.seq, 1);
        let handed = if order::key_busy(&r, g, hb.idx, t.key_hash(&r), t.seq) {
            ack::park(&r, g, &hb).expect("held");
            loop {
                let blocked = order::blocked(&r, g);
                if let Some(h) = ack::take_pending(&r, g, b, 0, |s| blocked.contains(&s)) {
                    // Never handed out before: no redelivery.
                    assert_eq!(h.entry.deliveries_before(), 0);
                    break h;
                }
                thread::yield_now();
            }
        } else {
            hb
        };
        assert!(!holds.load(SeqCst), "seq 1 handed out while seq 0 was held");
        acker.join().unwrap();
        ack::finish_hold(&r, g, b, &handed, false).expect("held");
        assert!(ack::entries(&r, g).is_empty());
    });
}

/// An auto-ack member that took a message under its hazard and cannot give
/// it up at once (an expired message whose dead letter finds no room)
/// adopts it into the ack table, then drops its hazard, while a producer
/// laps the ring towards it: the entry's pin, stored before the hazard is
/// released, keeps the record (scans read a group's hazards before its
/// pins). Taken over, it counts no delivery. Fails with the hazard released
/// before the adoption.
#[test]
fn a_message_adopted_from_a_hazard_stays_pinned() {
    model(|| {
        let (r, g, m) = group_of(1);
        let a = m[0];
        let mut pc = claim::producer_cursor(&r);
        send(&r, &mut pc, val(7, 0), Spin);
        let t = group::try_take(&r, g, a, None)
            .expect("corrupt")
            .and_then(|t| t.ring())
            .expect("message 0");
        let producer = {
            let r = r.clone();
            // Messages 1 and 2, then 3 where message 0 is (after a pad).
            thread::spawn(move || {
                for i in 1..4 {
                    send(&r, &mut pc, val(7, i), Spin);
                }
            })
        };
        assert!(ack::adopt(&r, g, a, t.seq, t.pos, 0));
        group::release(&r, g, a);
        assert_eq!(value(&r, &t), val(7, 0), "overwritten while pinned");
        let h = ack::take_pending(&r, g, a, 0, |_| false).expect("adopted");
        assert_eq!((h.entry.seq, h.entry.deliveries_before()), (0, 0));
        ack::finish_hold(&r, g, a, &h, false).expect("held");
        producer.join().unwrap();
    });
}

/// The NEXT DUE hint (protocol/due.rs): a message scheduled while the
/// releaser releases another stays covered by the hint. The directory of
/// scheduled messages is a mutex-guarded set here (a rename and a listing
/// are each atomic in the file system). The message due at 10 is there; the
/// releaser, at time 15, releases it while a scheduler adds one due at 20.
/// Afterwards the hint must be 20 or earlier, never 0 (none) or later:
/// with the releaser's second listing after its raise removed, loom finds
/// the interleaving that hides the new message (the scheduler's lowering
/// sees 10 and does nothing, then the raise sets 0).
#[test]
fn a_message_scheduled_during_a_release_stays_in_the_hint() {
    model(|| {
        let r = Arc::new(ring());
        let dir = Arc::new(loom::sync::Mutex::new(std::collections::BTreeSet::new()));
        dir.lock().unwrap().insert(10u64);
        due::lower(&r, 10);
        let (r2, dir2) = (r.clone(), dir.clone());
        let scheduler = thread::spawn(move || {
            dir2.lock().unwrap().insert(20u64);
            due::lower(&r2, 20);
        });
        // The releaser.
        let read = due::read(&r);
        let left = {
            let mut d = dir.lock().unwrap();
            d.retain(|&due| due > 15);
            d.iter().next().copied().unwrap_or(0)
        };
        if due::raise(&r, read, left) {
            let first = dir.lock().unwrap().iter().next().copied();
            if let Some(first) = first {
                due::lower(&r, first);
            }
        }
        scheduler.join().unwrap();
        let hint = due::next_due(&r);
        assert!(
            hint != 0 && hint <= 20,
            "hint {hint} hides the message due at 20"
        );
    });
}
