//! Mutation fuzzing of the queue file: random bytes written over a valid queue
//! (header, group table, ring) and random truncations, then open, stat, attach,
//! receive and send. Corruption may give errors or garbage messages, but never
//! a panic, a crash or a hang (only non-blocking calls are made, so a hang would
//! stop this test). `SHMQ_FUZZ_ITERS=100000 cargo test --release --test
//! fuzz_file` runs it long (`SHMQ_FUZZ_SEED=N` for other mutations); the
//! default is a quick pass for CI.

mod common;

use common::FuzzRng;
use shmq::{Queue, QueueOptions, StartAt};

/// A valid queue with groups, members' positions and wrapped records.
fn template(dir: &std::path::Path) -> Vec<u8> {
    let p = dir.join("template");
    let q = QueueOptions::new()
        .capacity(4096)
        .max_msg(256)
        .max_groups(3)
        .max_members(2)
        .create(&p)
        .unwrap();
    q.add_group("a", StartAt::Earliest).unwrap();
    q.add_group("b", StartAt::Latest).unwrap();
    let mut prod = q.producer().attach().unwrap();
    let mut c = q.consumer("a").attach().unwrap();
    for i in 0..120u32 {
        prod.send(&i.to_le_bytes().repeat(1 + i as usize % 20))
            .unwrap();
        if i % 3 != 0 {
            c.try_recv().unwrap();
        }
        let _ = q.consumer("b").attach().map(|mut m| m.try_recv());
    }
    drop(c);
    std::fs::read(&p).unwrap()
}

/// What an iteration reached, so the test can tell it exercised something.
#[derive(Default, Debug)]
struct Reached {
    opened: u64,
    received: u64,
    errors: u64,
}

fn exercise(path: &std::path::Path, r: &mut Reached) {
    let Ok(q) = Queue::open(path) else { return };
    r.opened += 1;
    let _ = q.check();
    let stat = q.stat();
    let mut prod = q.producer().attach().unwrap();
    for g in &stat.groups {
        let Ok(mut c) = q.consumer(&g.name).attach() else {
            continue;
        };
        for _ in 0..20 {
            match c.try_recv() {
                Ok(_) => r.received += 1,
                Err(shmq::RecvError::Corrupt(_)) => r.errors += 1,
                Err(_) => {}
            }
        }
        for _ in 0..3 {
            let _ = prod.try_send(b"fuzz");
        }
        for _ in 0..5 {
            let _ = c.try_recv();
        }
    }
    let _ = q.add_group("fresh", StartAt::Earliest);
    if let Ok(mut c) = q.consumer("fresh").attach() {
        for _ in 0..10 {
            let _ = c.try_recv();
        }
    }
    let _ = prod.try_send(&[1; 64]);
    let _ = q.stat();
    let _ = q.check();
    let _ = q.gc();
}

#[test]
fn corrupt_files_never_panic_or_hang() {
    let iters: u64 = std::env::var("SHMQ_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let dir = tempfile::tempdir().unwrap();
    let good = template(dir.path());
    let seed = std::env::var("SHMQ_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_1234_abcd_0001u64);
    let mut rng = FuzzRng::new(seed);
    let mut reached = Reached::default();
    for i in 0..iters {
        let mut bytes = good.clone();
        let header_heavy = rng.below(2) == 0;
        for _ in 0..1 + rng.below(16) {
            let span = if header_heavy {
                shmq::layout::HEADER_SIZE + 3 * 512
            } else {
                bytes.len()
            };
            let at = rng.below(span as u64) as usize;
            match rng.below(4) {
                0 => bytes[at] ^= 1 << rng.below(8),
                1 => bytes[at] = rng.next() as u8,
                // Whole 8-byte words: lengths, positions, stamps, cursors.
                _ => {
                    let at = at & !7;
                    let w = match rng.below(4) {
                        0 => u64::MAX - rng.below(1 << 20),
                        1 => rng.below(1 << 16),
                        _ => rng.next(),
                    };
                    if at + 8 <= bytes.len() {
                        bytes[at..at + 8].copy_from_slice(&w.to_ne_bytes());
                    }
                }
            }
        }
        if rng.below(20) == 0 {
            bytes.truncate(rng.below(bytes.len() as u64) as usize);
        }
        let p = dir.path().join(format!("case-{i}"));
        std::fs::write(&p, &bytes).unwrap();
        exercise(&p, &mut reached);
        std::fs::remove_file(&p).unwrap();
    }
    eprintln!("{iters} mutated files (SHMQ_FUZZ_SEED={seed}): {reached:?}");
    // The mutations must leave many files openable, or this tests nothing.
    assert!(reached.opened * 4 >= iters, "{reached:?}");
    assert!(reached.received > iters, "{reached:?}");
}
