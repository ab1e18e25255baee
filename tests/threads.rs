//! The delivery scenario with threads on one mapping (the process version is in
//! `processes.rs`), plus in-process API checks.

mod common;

use common::{check_group, encode, Received};
use shmq::{Queue, QueueOptions, RecvError, SendError, StartAt, WaitStrategy};
use std::sync::Arc;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

/// An in-memory queue of `capacity` ring bytes and `max_msg`-byte messages,
/// with group "g".
fn heap(capacity: u64, max_msg: u32) -> Queue {
    let q = QueueOptions::new()
        .capacity(capacity)
        .max_msg(max_msg)
        .in_memory()
        .unwrap();
    q.add_group("g", StartAt::Latest).unwrap();
    q
}

/// `heap`, with a member of "g" and a producer.
fn heap_ends(capacity: u64, max_msg: u32) -> (Queue, shmq::Consumer, shmq::Producer) {
    let q = heap(capacity, max_msg);
    let c = q.consumer("g").attach().unwrap();
    let p = q.producer().attach().unwrap();
    (q, c, p)
}

#[test]
fn four_producers_three_groups_threads() {
    const PRODUCERS: u32 = 4;
    let per: u64 = 50_000 * common::scale();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q");
    let opts = QueueOptions::new().capacity(64 << 10).max_msg(1024);
    let q = opts.create(&path).unwrap();
    for g in ["A", "B", "C"] {
        q.add_group(g, StartAt::Latest).unwrap();
    }
    let total = PRODUCERS as u64 * per;
    let received: Arc<Mutex<Vec<(String, Received)>>> = Arc::default();
    let mut consumers = Vec::new();
    for (group, members) in [("A", 1), ("B", 1), ("C", 3)] {
        let remaining = Arc::new(std::sync::atomic::AtomicU64::new(total));
        for _ in 0..members {
            let mut c = q.consumer(group).attach().unwrap();
            let remaining = remaining.clone();
            let received = received.clone();
            consumers.push(thread::spawn(move || {
                let mut got = Vec::new();
                loop {
                    match c.recv_timeout(std::time::Duration::from_millis(200)) {
                        Ok(m) => {
                            got.push((m.seq, m.payload));
                            remaining.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        Err(shmq::RecvError::Timeout) => {
                            if remaining.load(std::sync::atomic::Ordering::Relaxed) == 0 {
                                break;
                            }
                        }
                        Err(e) => panic!("recv: {e}"),
                    }
                }
                received.lock().unwrap().push((group.to_string(), got));
            }));
        }
    }
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let q = q.clone();
            thread::spawn(move || {
                let mut prod = q.producer().attach().unwrap();
                for i in 0..per {
                    prod.send(&encode(p, i)).unwrap();
                }
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    for c in consumers {
        c.join().unwrap();
    }
    let received = Arc::try_unwrap(received).unwrap().into_inner().unwrap();
    for group in ["A", "B", "C"] {
        let parts: Vec<Received> = received
            .iter()
            .filter(|(g, _)| g == group)
            .map(|(_, v)| v.clone())
            .collect();
        check_group(group, &parts, PRODUCERS, per);
    }
    let stat = q.stat();
    assert_eq!(stat.tail_seq, total);
    assert!(stat.full_waits > 0, "a 64 KiB ring must have filled up");
}

#[test]
fn heap_queue_zero_copy_and_batch() {
    let (q, mut c, mut p) = heap_ends(4096, 256);
    let mut guard = p.claim_send(5).unwrap();
    guard.as_mut_slice().copy_from_slice(b"hello");
    assert_eq!(guard.commit(), 0);
    assert_eq!(p.send_batch(&[b"a", b"", b"ccc"]).unwrap(), 1);
    {
        let r = c.recv_ref().unwrap();
        assert_eq!((r.seq(), r.as_bytes()), (0, &b"hello"[..]));
    }
    for (seq, want) in [(1, &b"a"[..]), (2, b""), (3, b"ccc")] {
        let r = c.recv_ref().unwrap();
        assert_eq!((r.seq(), r.as_bytes()), (seq, want));
    }
    // An abandoned claim is skipped, not delivered.
    drop(p.claim_send(3).unwrap());
    p.send(b"after").unwrap();
    let m = c.recv().unwrap();
    assert_eq!((m.seq, &m.payload[..]), (5, &b"after"[..]));
    assert_eq!(q.stat().aborted, 1);
    assert_eq!(c.try_recv(), Err(shmq::RecvError::Empty));
}

/// Drains `c` with `recv_batch` (up to `max` per call) until `want`
/// messages came: (seq, payload, batch it came in).
fn batches(c: &mut shmq::Consumer, max: usize, want: usize) -> Vec<(u64, Vec<u8>, usize)> {
    let mut got = Vec::new();
    let mut call = 0;
    while got.len() < want {
        let n = c
            .recv_batch_timeout(max, Duration::from_secs(10), |m, p| {
                got.push((m.seq, p.to_vec(), call))
            })
            .unwrap();
        assert!((1..=max).contains(&n), "{n} messages in a batch of {max}");
        call += 1;
    }
    got
}

#[test]
fn recv_batch_takes_what_waits_and_passes_over_aborted_claims_and_pads() {
    // 512-byte ring, 40-byte records for 8-byte payloads: twelve per lap, so
    // the run below wraps (a pad) in the middle of a batch.
    let (q, mut c, mut p) = heap_ends(512, 8);
    assert_eq!(c.recv_batch(0, |_, _| panic!("max 0")).unwrap(), 0);
    assert!(matches!(
        c.try_recv_batch(4, |_, _| ()),
        Err(RecvError::Empty)
    ));
    let mut seq = 0u64;
    for lap in 0..3u64 {
        for i in 0..10u64 {
            if i == 4 {
                drop(p.claim_send(8).unwrap()); // an aborted claim: seq used
            }
            p.send(&(lap * 100 + i).to_le_bytes()).unwrap();
        }
        let got = batches(&mut c, 64, 10);
        // Everything waiting came in one batch, the aborted claim left out.
        assert!(got.iter().all(|g| g.2 == 0), "{got:?}");
        for (i, (s, payload, _)) in got.iter().enumerate() {
            let want_seq = seq + i as u64 + u64::from(i >= 4);
            assert_eq!(*s, want_seq);
            assert_eq!(payload, &(lap * 100 + i as u64).to_le_bytes());
        }
        seq += 11;
    }
    assert_eq!(q.stat().aborted, 3);
    // max bounds a batch; the rest waits for the next call.
    for i in 0..5u64 {
        p.send(&i.to_le_bytes()).unwrap();
    }
    let got = batches(&mut c, 2, 5);
    assert_eq!(
        got.iter().map(|g| g.2).collect::<Vec<_>>(),
        vec![0, 0, 1, 1, 2]
    );
    // Every message counted as delivered, and the hazard released (the ring
    // is free again: a full lap fits).
    let stat = q.stat();
    assert_eq!(stat.groups[0].members[0].delivered, 35);
    for i in 0..12u64 {
        p.try_send(&i.to_le_bytes()).unwrap();
    }
}

#[test]
fn recv_batch_yields_to_redeliveries_and_explicit_ack() {
    let q = QueueOptions::new().in_memory().unwrap();
    q.add_group("g", StartAt::Latest).unwrap();
    let mut p = q.producer().attach().unwrap();
    for i in 0..6u8 {
        p.send(&[i]).unwrap();
    }
    // Explicit: one message per call, held until acknowledged.
    let mut c1 = q.consumer("g").ack(shmq::Ack::Explicit).attach().unwrap();
    let mut seen = Vec::new();
    assert_eq!(c1.recv_batch(8, |m, _| seen.push(m.seq)).unwrap(), 1);
    assert_eq!(seen, [0]);
    assert!(matches!(
        c1.recv_batch(8, |_, _| ()),
        Err(RecvError::AckPending { seq: 0 })
    ));
    c1.nack(0).unwrap(); // back to the group
                         // An auto-ack member gets the redelivery first, alone, then a batch of
                         // what follows it.
    let mut c2 = q.consumer("g").attach().unwrap();
    let mut got = Vec::new();
    let n = c2
        .recv_batch(8, |m, p| got.push((m.seq, m.redelivered, p.to_vec())))
        .unwrap();
    assert_eq!(n, 6);
    assert_eq!(got[0], (0, 1, vec![0]));
    assert_eq!(
        got[1..].iter().map(|g| (g.0, g.1)).collect::<Vec<_>>(),
        (1..6).map(|s| (s, 0)).collect::<Vec<_>>()
    );
}

#[test]
fn recv_batch_members_compete_exactly_once() {
    let q = heap(8192, 64);
    const N: u64 = 20_000;
    let members: Vec<_> = (0..3)
        .map(|_| {
            let mut c = q.consumer("g").attach().unwrap();
            thread::spawn(move || {
                let mut mine = Vec::new();
                loop {
                    match c.recv_batch_timeout(16, Duration::from_millis(500), |m, p| {
                        mine.push((m.seq, u64::from_le_bytes(p.try_into().unwrap())))
                    }) {
                        Ok(_) => {}
                        Err(RecvError::Timeout) => return mine,
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    let mut p = q.producer().attach().unwrap();
    for i in 0..N {
        p.send(&(i * 7).to_le_bytes()).unwrap();
    }
    let mut all = Vec::new();
    for m in members {
        let mine = m.join().unwrap();
        assert!(mine.windows(2).all(|w| w[0].0 < w[1].0));
        all.extend(mine);
    }
    all.sort();
    assert_eq!(all, (0..N).map(|i| (i, i * 7)).collect::<Vec<_>>());
}

#[test]
fn try_send_reports_full_and_recovers() {
    let q = QueueOptions::new()
        .capacity(1024)
        .max_msg(64)
        .in_memory()
        .unwrap();
    q.add_group("slow", StartAt::Latest).unwrap();
    let mut c = q.consumer("slow").attach().unwrap();
    let mut p = q.producer().attach().unwrap();
    let mut sent = 0u64;
    while p.try_send(&[7u8; 64]).is_ok() {
        sent += 1;
    }
    assert_eq!(p.try_send(&[7u8; 64]), Err(shmq::SendError::Full));
    assert!(sent >= 1024 / 96 - 1, "sent {sent}");
    assert_eq!(
        p.send_timeout(&[1u8; 64], std::time::Duration::from_millis(20)),
        Err(shmq::SendError::Timeout)
    );
    for i in 0..sent {
        assert_eq!(c.recv().unwrap().seq, i);
    }
    p.try_send(b"room again").unwrap();
    assert_eq!(c.recv().unwrap().payload, b"room again");
}

#[test]
fn earliest_sees_retained_messages_and_latest_does_not() {
    let q = QueueOptions::new()
        .capacity(4096)
        .max_msg(64)
        .in_memory()
        .unwrap();
    let mut p = q.producer().attach().unwrap();
    // No group yet: messages are retained in the ring until overwritten.
    for i in 0..200u32 {
        p.send(&i.to_le_bytes()).unwrap();
    }
    q.add_group("late", StartAt::Latest).unwrap();
    q.add_group("replay", StartAt::Earliest).unwrap();
    let head = q.stat().head_seq;
    assert!(
        head > 0 && head < 200,
        "ring holds only the newest messages: head {head}"
    );
    let mut late = q.consumer("late").attach().unwrap();
    assert_eq!(late.try_recv(), Err(shmq::RecvError::Empty));
    let mut replay = q.consumer("replay").attach().unwrap();
    for s in head..200 {
        let m = replay.recv().unwrap();
        assert_eq!(m.seq, s);
        assert_eq!(m.payload, (s as u32).to_le_bytes());
    }
    // The ring was full of what "replay" had not read; now there is room.
    p.send(b"new").unwrap();
    assert_eq!(late.recv().unwrap().seq, 200);
    assert_eq!(replay.recv().unwrap().payload, b"new");
}

#[test]
fn spin_strategies_deliver() {
    let q = heap(8192, 64);
    for w in [
        WaitStrategy::Spin,
        WaitStrategy::SpinYield,
        WaitStrategy::Block,
    ] {
        let mut c = q.consumer("g").wait_strategy(w).attach().unwrap();
        let q2 = q.clone();
        let t = thread::spawn(move || {
            let mut p = q2.producer().wait_strategy(w).attach().unwrap();
            for i in 0..2000u32 {
                p.send(&i.to_le_bytes()).unwrap();
            }
        });
        for i in 0..2000u32 {
            assert_eq!(c.recv().unwrap().payload, i.to_le_bytes());
        }
        t.join().unwrap();
    }
}

#[test]
fn timeouts_expire_under_every_wait_strategy() {
    // While spinning, waiters look at the clock only every so many polls:
    // a timeout must still end the wait, not early and not never.
    let q = heap(4096, 64);
    let t = Duration::from_millis(30);
    for w in [
        WaitStrategy::Spin,
        WaitStrategy::SpinYield,
        WaitStrategy::Block,
    ] {
        let mut c = q.consumer("g").wait_strategy(w).attach().unwrap();
        let mut p = q.producer().wait_strategy(w).attach().unwrap();
        let start = Instant::now();
        assert!(
            matches!(c.recv_timeout(t), Err(RecvError::Timeout)),
            "{w:?}"
        );
        assert!(start.elapsed() >= t, "{w:?}: recv gave up early");
        // A timeout of zero still looks once.
        p.send(b"x").unwrap();
        assert_eq!(c.recv_timeout(Duration::ZERO).unwrap().payload, b"x");
        // Fill the ring (nobody reads): the next send times out.
        while p.try_send(&[0; 64]).is_ok() {}
        let start = Instant::now();
        assert!(
            matches!(p.send_timeout(&[0; 64], t), Err(SendError::Timeout)),
            "{w:?}"
        );
        assert!(start.elapsed() >= t, "{w:?}: send gave up early");
        while c.try_recv().is_ok() {}
    }
}

#[test]
fn members_of_a_group_split_and_group_position_persists() {
    let q = QueueOptions::new().in_memory().unwrap();
    q.add_group("g", StartAt::Latest).unwrap();
    let mut p = q.producer().attach().unwrap();
    for i in 0..10u8 {
        p.send(&[i]).unwrap();
    }
    {
        let mut c = q.consumer("g").attach().unwrap();
        for i in 0..4 {
            assert_eq!(c.recv().unwrap().seq, i);
        }
    } // member leaves; the group keeps its place
    let mut c1 = q.consumer("g").attach().unwrap();
    let mut c2 = q.consumer("g").attach().unwrap();
    let mut seen: Vec<u64> = Vec::new();
    for _ in 0..3 {
        seen.push(c1.recv().unwrap().seq);
        seen.push(c2.recv().unwrap().seq);
    }
    seen.sort();
    assert_eq!(seen, (4..10).collect::<Vec<_>>());
}
