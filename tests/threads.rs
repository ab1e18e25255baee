//! The delivery scenario with threads on one mapping (the process version is in
//! `processes.rs`), plus in-process API checks.

mod common;

use common::{check_group, encode, Received};
use shmq::{Queue, QueueOptions, RecvError, SendError, StartAt, WaitStrategy};
use std::sync::Arc;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

#[test]
fn four_producers_three_groups_threads() {
    const PRODUCERS: u32 = 4;
    let per: u64 = 50_000 * common::scale();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q");
    let opts = QueueOptions {
        capacity: 64 << 10,
        max_msg: 1024,
        ..Default::default()
    };
    let q = Queue::create(&path, &opts).unwrap();
    for g in ["A", "B", "C"] {
        q.add_group(g, StartAt::Latest).unwrap();
    }
    let total = PRODUCERS as u64 * per;
    let received: Arc<Mutex<Vec<(String, Received)>>> = Arc::default();
    let mut consumers = Vec::new();
    for (group, members) in [("A", 1), ("B", 1), ("C", 3)] {
        let remaining = Arc::new(std::sync::atomic::AtomicU64::new(total));
        for _ in 0..members {
            let mut c = q.consumer(group).unwrap();
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
                let mut prod = q.producer().unwrap();
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
    let q = Queue::in_memory(&QueueOptions {
        capacity: 4096,
        max_msg: 256,
        ..Default::default()
    })
    .unwrap();
    q.add_group("g", StartAt::Latest).unwrap();
    let mut c = q.consumer("g").unwrap();
    let mut p = q.producer().unwrap();
    let mut guard = p.claim_send(5).unwrap();
    guard.as_mut_slice().copy_from_slice(b"hello");
    assert_eq!(guard.commit(), 0);
    assert_eq!(p.send_batch(&[b"a", b"", b"ccc"]).unwrap(), 1);
    {
        let r = c.recv_ref(None).unwrap();
        assert_eq!((r.seq(), r.as_bytes()), (0, &b"hello"[..]));
    }
    let mut buf = Vec::new();
    for (seq, want) in [(1, &b"a"[..]), (2, b""), (3, b"ccc")] {
        let meta = c.recv_into(&mut buf, None).unwrap();
        assert_eq!((meta.seq, &buf[..]), (seq, want));
    }
    // An abandoned claim is skipped, not delivered.
    drop(p.claim_send(3).unwrap());
    p.send(b"after").unwrap();
    let m = c.recv().unwrap();
    assert_eq!((m.seq, &m.payload[..]), (5, &b"after"[..]));
    assert_eq!(q.stat().aborted, 1);
    assert_eq!(c.try_recv(), Err(shmq::RecvError::Empty));
}

#[test]
fn try_send_reports_full_and_recovers() {
    let q = Queue::in_memory(&QueueOptions {
        capacity: 1024,
        max_msg: 64,
        ..Default::default()
    })
    .unwrap();
    q.add_group("slow", StartAt::Latest).unwrap();
    let mut c = q.consumer("slow").unwrap();
    let mut p = q.producer().unwrap();
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
    let q = Queue::in_memory(&QueueOptions {
        capacity: 4096,
        max_msg: 64,
        ..Default::default()
    })
    .unwrap();
    let mut p = q.producer().unwrap();
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
    let mut late = q.consumer("late").unwrap();
    assert_eq!(late.try_recv(), Err(shmq::RecvError::Empty));
    let mut replay = q.consumer("replay").unwrap();
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
    let q = Queue::in_memory(&QueueOptions {
        capacity: 8192,
        max_msg: 64,
        ..Default::default()
    })
    .unwrap();
    q.add_group("g", StartAt::Latest).unwrap();
    for w in [
        WaitStrategy::Spin,
        WaitStrategy::SpinYield,
        WaitStrategy::Block,
    ] {
        let mut c = q.consumer("g").unwrap();
        c.set_wait_strategy(w);
        let q2 = q.clone();
        let t = thread::spawn(move || {
            let mut p = q2.producer().unwrap();
            p.set_wait_strategy(w);
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
    let q = Queue::in_memory(&QueueOptions {
        capacity: 4096,
        max_msg: 64,
        ..Default::default()
    })
    .unwrap();
    q.add_group("g", StartAt::Latest).unwrap();
    let mut c = q.consumer("g").unwrap();
    let mut p = q.producer().unwrap();
    let t = Duration::from_millis(30);
    for w in [
        WaitStrategy::Spin,
        WaitStrategy::SpinYield,
        WaitStrategy::Block,
    ] {
        c.set_wait_strategy(w);
        p.set_wait_strategy(w);
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
    let q = Queue::in_memory(&QueueOptions::default()).unwrap();
    q.add_group("g", StartAt::Latest).unwrap();
    let mut p = q.producer().unwrap();
    for i in 0..10u8 {
        p.send(&[i]).unwrap();
    }
    {
        let mut c = q.consumer("g").unwrap();
        for i in 0..4 {
            assert_eq!(c.recv().unwrap().seq, i);
        }
    } // member leaves; the group keeps its place
    let mut c1 = q.consumer("g").unwrap();
    let mut c2 = q.consumer("g").unwrap();
    let mut seen: Vec<u64> = Vec::new();
    for _ in 0..3 {
        seen.push(c1.recv().unwrap().seq);
        seen.push(c2.recv().unwrap().seq);
    }
    seen.sort();
    assert_eq!(seen, (4..10).collect::<Vec<_>>());
}
