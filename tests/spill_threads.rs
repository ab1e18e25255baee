//! Spill to disk, in one process with threads (the process tests are in
//! tests/spill.rs): a slow group's backlog goes to the log while a fast group
//! and the producers run at ring speed; everything arrives once, in order.

mod common;
use common::*;
use shmq::{Queue, QueueOptions, SpillOptions, StartAt};
use std::time::Duration;

fn spill_queue(dir: &std::path::Path, capacity: u64, spill: SpillOptions) -> Queue {
    QueueOptions::new()
        .capacity(capacity)
        .max_msg(1024)
        .spill(spill)
        .create(dir.join("q"))
        .unwrap()
}

fn drain(q: &Queue, group: &str, n: u64) -> Received {
    let mut c = q.consumer(group).attach().unwrap();
    (0..n)
        .map(|_| {
            let m = c.recv_timeout(Duration::from_secs(20)).expect("recv");
            (m.seq, m.payload)
        })
        .collect()
}

/// `drain` with `recv_batch`: from the log one message per call, from the
/// ring what waits, up to 32.
fn drain_batches(q: &Queue, group: &str, n: u64) -> Received {
    let mut c = q.consumer(group).attach().unwrap();
    let mut got = Vec::new();
    while (got.len() as u64) < n {
        let max = 32.min(n as usize - got.len());
        c.recv_batch_timeout(max, Duration::from_secs(20), |m, p| {
            got.push((m.seq, p.to_vec()))
        })
        .expect("recv_batch");
    }
    got
}

#[test]
fn slow_group_spills_and_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let spill = SpillOptions {
        segment_size: 64 << 10,
        ..SpillOptions::new(dir.path().join("spill"))
    };
    let q = spill_queue(dir.path(), 16 << 10, spill);
    q.add_group("fast", StartAt::Latest).unwrap();
    q.add_group("slow", StartAt::Latest).unwrap();
    let per = 20_000 * scale();
    let producers = 2;
    let fast = {
        let q = q.clone();
        std::thread::spawn(move || drain(&q, "fast", producers as u64 * per))
    };
    let senders: Vec<_> = (0..producers)
        .map(|p| {
            let q = q.clone();
            std::thread::spawn(move || {
                let mut pr = q.producer().attach().unwrap();
                for i in 0..per {
                    pr.send(&encode(p, i)).unwrap();
                }
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    let fast = fast.join().unwrap();
    let stat = q.stat();
    let spill = stat.spill.clone().expect("spill stat");
    assert!(spill.spilled > 0, "nothing was spilled: {spill:?}");
    assert!(
        stat.groups.iter().any(|g| g.name == "slow" && g.on_disk),
        "slow group should read from disk: {stat:?}"
    );
    let slow = drain_batches(&q, "slow", producers as u64 * per);
    check_group("fast", &[fast], producers, per);
    check_group("slow", &[slow], producers, per);
    // The next poll of a group that has read the whole log moves it back.
    let mut c = q.consumer("slow").attach().unwrap();
    assert!(matches!(c.try_recv(), Err(shmq::RecvError::Empty)));
    let after = q.stat();
    assert!(
        after.groups.iter().all(|g| !g.on_disk),
        "every group back on the ring: {after:?}"
    );
    eprintln!(
        "spilled {} messages in {} rounds, {} transfers; full waits {}",
        spill.spilled, spill.rounds, spill.transfers, stat.full_waits
    );
}

#[test]
fn members_compete_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let q = spill_queue(
        dir.path(),
        8 << 10,
        SpillOptions::new(dir.path().join("spill")),
    );
    q.add_group("g", StartAt::Latest).unwrap();
    let per = 5_000 * scale();
    let mut pr = q.producer().attach().unwrap();
    for i in 0..per {
        pr.send(&encode(0, i)).unwrap();
    }
    assert!(q.stat().groups[0].on_disk);
    let members: Vec<_> = (0..3)
        .map(|_| {
            let q = q.clone();
            std::thread::spawn(move || {
                let mut c = q.consumer("g").attach().unwrap();
                let mut got = Vec::new();
                while let Ok(m) = c.recv_timeout(Duration::from_millis(500)) {
                    got.push((m.seq, m.payload));
                }
                got
            })
        })
        .collect();
    let got: Vec<Received> = members.into_iter().map(|h| h.join().unwrap()).collect();
    check_group("g", &got, 1, per);
}
