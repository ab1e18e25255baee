//! Fuzzing of the live shared region: random and plausible-looking words
//! written into a queue's mapping while a producer, explicit- and auto-ack
//! members and the spill machinery stay attached and keep working on it.
//! Another process may write anything at any moment; the attached processes
//! may then get errors or garbage messages, but never a panic, a crash or a
//! hang (only non-blocking calls are made, and a watchdog fails the test if a
//! step does not return).
//!
//! Two tests: corruption between calls, reproducible from
//! `SHMQ_FUZZ_SEED`; and a scribbler process (this test binary re-run with
//! `SHMQ_TEST_ROLE=scribble`) writing into the mapping all the time, so
//! values change between a check and a use. `SHMQ_FUZZ_ITERS=300000 cargo
//! test --release --test fuzz_region` runs them long.

mod common;

use common::FuzzRng;
use shmq::{Ack, Queue, QueueOptions, RecvError, SpillOptions, StartAt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

fn iters(default: u64) -> u64 {
    std::env::var("SHMQ_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn seed() -> u64 {
    std::env::var("SHMQ_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x1ead_5eed_0000_0004)
}

fn options(dir: &Path) -> QueueOptions {
    QueueOptions::new()
        .capacity(4096)
        .max_msg(256)
        .max_groups(3)
        .max_members(2)
        .spill(SpillOptions {
            segment_size: 4096,
            ..SpillOptions::new(dir.join("spill"))
        })
}

/// A shared mapping of the queue file for writing garbage into, through raw
/// pointers (other processes write this memory: no references over it).
struct Scribbler {
    map: memmap2::MmapRaw,
    /// The byte ranges worth hitting: header control words, group table,
    /// producer registry and names, ring. The spill configuration (1408..2048) is
    /// left alone: it is read once at open, which `fuzz_file.rs` covers, and
    /// a mangled directory name would send the spill lock file elsewhere.
    areas: Vec<std::ops::Range<usize>>,
}

impl Scribbler {
    fn new(path: &Path) -> Scribbler {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        let map = memmap2::MmapRaw::map_raw(&f).unwrap();
        let q = Queue::open(path).unwrap();
        let geo = q.geometry().layout();
        let table = geo.group_table_off()..geo.producer_table_off();
        Scribbler {
            areas: vec![
                0..1408,
                geo.producer_table_off()..geo.ring_off(),
                table.clone(),
                table,
                geo.ring_off()..map.len(),
            ],
            map,
        }
    }

    /// Writes 1 to 8 random, nearby or extreme words.
    fn hit(&self, rng: &mut FuzzRng) {
        for _ in 0..1 + rng.below(8) {
            let area = &self.areas[rng.below(self.areas.len() as u64) as usize];
            let at = (area.start + rng.below(area.len() as u64) as usize) & !7;
            let p = self.map.as_mut_ptr().wrapping_add(at) as *mut u64;
            // SAFETY: `at` is 8-aligned and at least 8 bytes before the end of
            // the mapping (areas end on 8-byte boundaries); the mapping lives
            // as long as `self`. Volatile: the queue's users read it
            // concurrently through atomics, as they would another process's
            // writes.
            unsafe {
                let old = p.read_volatile();
                let new = match rng.below(6) {
                    0 => old ^ (1 << rng.below(64)),
                    // Nearby: a position, sequence number or length that
                    // still looks plausible.
                    1 => old.wrapping_add(8 * rng.below(64)),
                    2 => old.wrapping_sub(8 * (1 + rng.below(64))),
                    3 => u64::MAX - rng.below(1 << 20),
                    4 => rng.below(1 << 16),
                    _ => rng.next(),
                };
                p.write_volatile(new);
            }
        }
    }
}

/// What the runs reached, so a test can tell it exercised something.
#[derive(Default, Debug)]
struct Reached {
    sent: u64,
    received: u64,
    redelivered: u64,
    corrupt: u64,
    other_errors: u64,
    rebuilt: u64,
}

/// A queue with two groups (one explicit-ack with two members, one
/// auto-ack), a producer, and traffic already through the spill log.
struct Live {
    _dir: tempfile::TempDir,
    path: PathBuf,
    q: Queue,
    prod: shmq::Producer,
    members: Vec<shmq::Consumer>,
}

impl Live {
    fn new() -> Live {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q");
        let q = options(dir.path()).create(&path).unwrap();
        q.add_group("a", StartAt::Earliest).unwrap();
        q.add_group("b", StartAt::Earliest).unwrap();
        q.set_max_attempts("a", 3).unwrap();
        // Named: its records carry the producer extension, and it keeps the
        // name's pseq in the header.
        let mut prod = q.producer().name("fuzz").attach().unwrap();
        let mut members = Vec::new();
        for (g, ack) in [("a", Ack::Explicit), ("a", Ack::Explicit), ("b", Ack::Auto)] {
            members.push(q.consumer(g).ack(ack).attach().unwrap());
        }
        // More than the ring holds, so group b goes to the log.
        for i in 0..200u32 {
            prod.send(&i.to_le_bytes().repeat(1 + i as usize % 40))
                .unwrap();
            if i % 2 == 0 {
                let _ = members[0].try_recv();
                for s in members[0].unacked() {
                    let _ = members[0].ack(s);
                }
            }
        }
        Live {
            _dir: dir,
            path,
            q,
            prod,
            members,
        }
    }

    /// One random operation of an attached process.
    fn step(&mut self, rng: &mut FuzzRng, r: &mut Reached) {
        let note = |res: Result<(), String>, r: &mut Reached| {
            if res.is_err() {
                r.other_errors += 1;
            }
        };
        match rng.below(16) {
            0..=3 => {
                let len = rng.below(300) as usize;
                let sent = match rng.below(4) {
                    // A pseq of its own: a duplicate as often as not.
                    0 => self.prod.try_send_as(rng.below(1000), &vec![0x5a; len]),
                    _ => self.prod.try_send(&vec![0xa5; len]),
                };
                match sent {
                    Ok(_) => r.sent += 1,
                    Err(e) => note(Err(e.to_string()), r),
                }
            }
            4..=9 => {
                let m = rng.below(self.members.len() as u64) as usize;
                let c = &mut self.members[m];
                // One message, or a batch taken with one cursor CAS (whose
                // walk reads every header it passes).
                let got = if rng.below(2) == 0 {
                    c.try_recv().map(|msg| (1, (msg.redelivered > 0) as u64))
                } else {
                    let mut redelivered = 0;
                    let max = 1 + rng.below(8) as usize;
                    c.try_recv_batch(max, |m, p| {
                        redelivered += (m.redelivered > 0) as u64;
                        std::hint::black_box(p.iter().fold(0u8, |a, b| a ^ b));
                    })
                    .map(|n| (n as u64, redelivered))
                };
                match got {
                    Ok((n, redelivered)) => {
                        r.received += n;
                        r.redelivered += redelivered;
                    }
                    Err(RecvError::Corrupt(_)) => r.corrupt += 1,
                    Err(RecvError::Empty | RecvError::Timeout) => {}
                    Err(e) => note(Err(e.to_string()), r),
                }
                if let Some(&seq) = c.unacked().first() {
                    let res = if rng.below(4) == 0 {
                        c.nack(seq)
                    } else {
                        c.ack(seq)
                    };
                    note(res.map_err(|e| e.to_string()), r);
                }
            }
            10 => {
                let _ = self.q.stat();
            }
            11 => {
                let _ = self.q.check();
            }
            12 => {
                note(self.q.spill_now().map(drop).map_err(|e| e.to_string()), r);
            }
            13 => {
                self.q.reap_dead_members();
                self.q.recover_dead_producers();
                let _ = self.q.gc();
            }
            14 => {
                // Another process opening and joining the damaged queue.
                if let Ok(q2) = Queue::open(&self.path) {
                    if let Ok(mut c) = q2.consumer("b").attach() {
                        for _ in 0..4 {
                            let _ = c.try_recv();
                        }
                    }
                    let _ = q2.producer().attach().map(|mut p| p.try_send(b"x"));
                    let _ = q2.producer().name("other").attach().map(|mut p| {
                        let _ = p.try_send(b"y");
                        let _ = p.try_send_as(p.next_pseq().unwrap_or(0), b"z");
                    });
                }
            }
            _ => {
                let _ = self.q.add_group("c", StartAt::Earliest);
                let _ = self.q.remove_group("c");
            }
        }
    }
}

/// How long one step may take before the run counts as hung.
const STEP_LIMIT: Duration = Duration::from_secs(20);

/// Runs `f` on a thread, which calls its argument after every step, and fails
/// if a step does not return within [`STEP_LIMIT`]: a hang anywhere in the
/// library is a failure, not a stuck CI job.
fn with_watchdog(f: impl FnOnce(&dyn Fn()) -> Reached + Send + 'static) -> Reached {
    let steps = Arc::new(AtomicU64::new(0));
    let (tx, rx) = mpsc::channel();
    let t = {
        let steps = steps.clone();
        std::thread::spawn(move || {
            let reached = f(&|| {
                steps.fetch_add(1, Ordering::Relaxed);
            });
            let _ = tx.send(());
            reached
        })
    };
    let mut seen = 0;
    loop {
        match rx.recv_timeout(STEP_LIMIT) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let now = steps.load(Ordering::Relaxed);
                assert!(
                    now != seen,
                    "step {now} did not return within {STEP_LIMIT:?} (SHMQ_FUZZ_SEED={})",
                    seed()
                );
                seen = now;
            }
        }
    }
    match t.join() {
        Ok(r) => r,
        Err(e) => std::panic::resume_unwind(e),
    }
}

#[test]
fn corruption_between_calls_never_panics_or_hangs() {
    let n = iters(10_000);
    let r = with_watchdog(move |stepped| {
        let mut rng = FuzzRng::new(seed());
        let mut r = Reached::default();
        let mut live = Live::new();
        let mut scribbler = Scribbler::new(&live.path);
        for i in 0..n {
            // A fresh queue now and then: a queue hit many times is mostly
            // refusing to do anything, which exercises little.
            if i % 150 == 149 {
                drop(scribbler);
                live = Live::new();
                scribbler = Scribbler::new(&live.path);
                r.rebuilt += 1;
            }
            if rng.below(3) == 0 {
                scribbler.hit(&mut rng);
            }
            live.step(&mut rng, &mut r);
            stepped();
        }
        r
    });
    eprintln!("{n} steps (SHMQ_FUZZ_SEED={}): {r:?}", seed());
    // The damage must leave the queues working often enough to test them.
    assert!(r.received > n / 10, "{r:?}");
    assert!(r.sent > n / 20, "{r:?}");
    assert!(r.corrupt > 0, "{r:?}");
}

/// The scribbler process: writes into the queue's mapping until killed.
#[test]
fn helper_scribble() {
    if std::env::var("SHMQ_TEST_ROLE").as_deref() != Ok("scribble") {
        return;
    }
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes integers only.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    let s = Scribbler::new(Path::new(&std::env::var("SHMQ_TEST_QUEUE").unwrap()));
    let mut rng = FuzzRng::new(shmq::clock::now_ns());
    println!("scribbling 0");
    loop {
        s.hit(&mut rng);
        std::thread::sleep(Duration::from_micros(rng.below(200)));
    }
}

#[test]
fn concurrent_scribbler_process_never_causes_a_panic_or_hang() {
    let n = iters(10_000);
    let r = with_watchdog(move |stepped| {
        let mut rng = FuzzRng::new(seed() ^ 0xc0c0);
        let mut r = Reached::default();
        let mut i = 0;
        while i < n {
            let mut live = Live::new();
            let (mut child, _) =
                common::spawn_helper("helper_scribble", "scribble", &live.path, "scribbling ");
            for _ in 0..500 {
                live.step(&mut rng, &mut r);
                stepped();
                i += 1;
            }
            child.kill().unwrap();
            child.wait().unwrap();
            r.rebuilt += 1;
        }
        r
    });
    eprintln!("{n} steps against a scribbler process: {r:?}");
    assert!(r.received > 0 && r.sent > 0, "{r:?}");
}
