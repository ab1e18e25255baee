//! `shmq bench delay` and `shmq bench txn`: what delayed delivery and
//! transactions cost.
//!
//! `delay`: lateness, the time from a scheduled message's due time to the
//! moment a member waiting in `recv` has it. One member thread waits; a
//! producer thread schedules messages due 1 to 20 ms ahead, one every 2 ms
//! or so (*spread*), or [`BURST`] of them due at the same instant
//! (*burst*: the last one's lateness is the release's throughput). The
//! member releases them itself (nothing else polls). Percentiles over
//! every message of [`REPEAT`] runs.
//!
//! `txn`: publish cost, per message and per publish, of a plain `send`, a
//! `send_batch` of 10, a transaction of 10 committed directly (one claim,
//! nothing written to disk), and prepared transactions of 1 and 10
//! (`prepare`, which writes and flushes a file, then `commit`), with the
//! queue in /dev/shm and, where the temporary directory is another file
//! system (a disk), there too: the prepare's flush is what a disk makes
//! dear. The queue has no group, so nothing holds the ring and no publish
//! waits for a reader. Medians of [`REPEAT`] runs, each against the plain
//! send of the same round.

use super::Ctx;
use shmq::{Due, Queue, QueueOptions, RecvError, SendOptions, StartAt};
use std::path::Path;
use std::time::{Duration, Instant};

/// Runs of each case.
const REPEAT: usize = 5;
/// Messages due at once in the burst case.
const BURST: u64 = 100;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn queue(dir: &Path, name: &str, capacity: u64) -> Result<Queue, String> {
    let path = dir.join(name);
    let _ = shmq::Queue::remove(&path);
    let q = QueueOptions::new()
        .capacity(capacity)
        .create(&path)
        .map_err(|e| e.to_string())?;
    q.add_group("work", StartAt::Latest)
        .map_err(|e| e.to_string())?;
    Ok(q)
}

/// The figures of `shmq bench delay`.
pub struct DelayRun {
    msgs: u64,
    /// Per case (spread, burst): p50, p99, max lateness in µs.
    cases: Vec<(&'static str, [f64; 3])>,
}

/// Schedules `msgs` messages (spread) or [`BURST`] (burst) and returns each
/// one's lateness in µs as the waiting member saw it.
fn lateness(ctx: &Ctx, msgs: u64, burst: bool) -> Result<Vec<f64>, String> {
    let q = queue(ctx.dir.path(), "delay.q", ctx.capacity)?;
    let n = if burst { BURST } else { msgs };
    let member = {
        let q = q.clone();
        std::thread::spawn(move || -> Result<Vec<f64>, String> {
            let mut c = q.consumer("work").attach().map_err(|e| e.to_string())?;
            let mut late = Vec::with_capacity(n as usize);
            while (late.len() as u64) < n {
                let m = match c.recv_timeout(Duration::from_secs(10)) {
                    Ok(m) => m,
                    Err(RecvError::Timeout) => return Err("a scheduled message never came".into()),
                    Err(e) => return Err(e.to_string()),
                };
                let now = shmq::clock::now_ns();
                let due = u64::from_le_bytes(m.payload[..8].try_into().unwrap());
                late.push(now.saturating_sub(due) as f64 / 1e3);
            }
            Ok(late)
        })
    };
    // Let the member go to sleep first.
    std::thread::sleep(Duration::from_millis(20));
    let mut p = q.producer().attach().map_err(|e| e.to_string())?;
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let at = shmq::clock::now_ns() + 30_000_000;
    for _ in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let due = if burst {
            at
        } else {
            shmq::clock::now_ns() + 1_000_000 + x % 19_000_000
        };
        let when = std::time::UNIX_EPOCH + Duration::from_nanos(due);
        p.schedule(&due.to_le_bytes(), Due::At(when), &SendOptions::new())
            .map_err(|e| e.to_string())?;
        if !burst {
            std::thread::sleep(Duration::from_micros(1000 + x % 2000));
        }
    }
    member
        .join()
        .map_err(|_| "the member panicked".to_string())?
}

/// Runs `delay` with `msgs` messages per spread run.
pub(crate) fn run_delay(ctx: &Ctx, msgs: u64) -> Result<DelayRun, String> {
    let msgs = msgs.clamp(50, 1000);
    let mut cases = Vec::new();
    for (name, burst) in [("spread", false), ("burst", true)] {
        let mut all = Vec::new();
        for r in 0..REPEAT {
            all.extend(lateness(ctx, msgs, burst)?);
            eprintln!("  done: delay {name} (round {} of {REPEAT})", r + 1);
        }
        all.sort_by(|a, b| a.total_cmp(b));
        let pct = |p: f64| all[((all.len() - 1) as f64 * p) as usize];
        cases.push((name, [pct(0.5), pct(0.99), all[all.len() - 1]]));
    }
    Ok(DelayRun { msgs, cases })
}

impl DelayRun {
    /// The table.
    pub fn print(&self) {
        println!(
            "\ndelay: lateness (due time to a waiting member's receive), µs; spread: {} messages due 1-20 ms ahead, burst: {BURST} due at once; {REPEAT} runs",
            self.msgs
        );
        println!("{:<10} {:>10} {:>10} {:>10}", "CASE", "P50", "P99", "MAX");
        for (name, [p50, p99, max]) in &self.cases {
            println!("{name:<10} {p50:>10.0} {p99:>10.0} {max:>10.0}");
        }
    }

    /// One JSON object per case.
    pub fn json_lines(&self) -> Vec<String> {
        self.cases
            .iter()
            .map(|(name, [p50, p99, max])| {
                serde_json::json!({
                    "test": "delay", "case": name, "msgs": self.msgs,
                    "p50_us": p50, "p99_us": p99, "max_us": max,
                })
                .to_string()
            })
            .collect()
    }
}

/// The ways to publish `txn` compares: name, messages per publish.
const PUBLISHES: [(&str, usize); 5] = [
    ("send", 1),
    ("send_batch 10", 10),
    ("txn 10, commit", 10),
    ("txn 1, prepare+commit", 1),
    ("txn 10, prepare+commit", 10),
];

/// The figures of `shmq bench txn`.
pub struct TxnRun {
    size: usize,
    /// Per file system: its name, and per publish: µs per publish, ns per
    /// message, ratio of ns per message to a plain send's.
    places: Vec<(String, Vec<Row>)>,
}

/// µs per publish, ns per message, ratio to a plain send.
type Row = (f64, f64, f64);

/// µs per publish of kind `k`, `n` publishes, on a queue in `dir`.
fn publish_cost(dir: &Path, capacity: u64, size: usize, k: usize, n: u64) -> Result<f64, String> {
    // No group: nothing holds the ring, so what is timed is the publish
    // alone, never a wait for a reader.
    let path = dir.join("txn.q");
    let _ = shmq::Queue::remove(&path);
    let q = QueueOptions::new()
        .capacity(capacity)
        .create(&path)
        .map_err(|e| e.to_string())?;
    let mut p = q
        .producer()
        .name("bench")
        .attach()
        .map_err(|e| e.to_string())?;
    let payload = vec![0x5a_u8; size];
    let batch: Vec<&[u8]> = vec![&payload[..]; 10];
    let e = |e: shmq::Error| e.to_string();
    let t0 = Instant::now();
    for _ in 0..n {
        match PUBLISHES[k] {
            ("send", _) => {
                p.send(&payload).map_err(|x| e(x.into()))?;
            }
            ("send_batch 10", _) => {
                p.send_batch(&batch).map_err(|x| e(x.into()))?;
            }
            (name, m) => {
                let mut tx = p.begin().map_err(|x| e(x.into()))?;
                for _ in 0..m {
                    tx.send(&payload).map_err(|x| e(x.into()))?;
                }
                if name.contains("prepare") {
                    tx.prepare()
                        .map_err(|x| e(x.into()))?
                        .commit()
                        .map_err(|x| e(x.into()))?;
                } else {
                    tx.commit().map_err(|x| e(x.into()))?;
                }
            }
        }
    }
    let us = t0.elapsed().as_secs_f64() * 1e6 / n as f64;
    drop(p);
    let _ = shmq::Queue::remove(dir.join("txn.q"));
    Ok(us)
}

/// Runs `txn` with `msgs` plain sends' worth of publishes per case.
pub(crate) fn run_txn(ctx: &Ctx, size: usize, msgs: u64) -> Result<TxnRun, String> {
    let mut dirs = vec![("/dev/shm (tmpfs)".to_string(), ctx.dir.path().to_owned())];
    let disk = tempfile::Builder::new()
        .prefix("shmq-bench-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    if !disk.path().starts_with("/dev/shm") {
        dirs.push((
            format!("{} (disk)", std::env::temp_dir().display()),
            disk.path().to_owned(),
        ));
    }
    let mut places = Vec::new();
    for (place, dir) in dirs {
        // Per publish kind, per round: µs per publish.
        let mut us: Vec<Vec<f64>> = vec![Vec::new(); PUBLISHES.len()];
        for round in 0..REPEAT {
            for (k, &(name, m)) in PUBLISHES.iter().enumerate() {
                // Fewer of the costly ones: a flush per prepare.
                let n = if name.contains("prepare") {
                    (msgs / 100).clamp(20, 2000)
                } else {
                    (msgs / m as u64).max(100)
                };
                us[k].push(publish_cost(&dir, ctx.capacity, size, k, n)?);
            }
            eprintln!("  done: txn on {place} (round {} of {REPEAT})", round + 1);
        }
        let rows = PUBLISHES
            .iter()
            .enumerate()
            .map(|(k, &(_, m))| {
                let per_publish = median(us[k].clone());
                let per_msg_ns = per_publish * 1e3 / m as f64;
                let ratio = median(
                    us[k]
                        .iter()
                        .zip(&us[0])
                        .map(|(x, s)| (x / m as f64) / s)
                        .collect(),
                );
                (per_publish, per_msg_ns, ratio)
            })
            .collect();
        places.push((place, rows));
    }
    Ok(TxnRun { size, places })
}

impl TxnRun {
    /// The table.
    pub fn print(&self) {
        for (place, rows) in &self.places {
            println!(
                "\ntxn: publish cost, {} B messages, a named producer, queue on {place}; medians of {REPEAT}",
                self.size
            );
            println!(
                "{:<24} {:>14} {:>12} {:>12}",
                "PUBLISH", "US/PUBLISH", "NS/MSG", "VS SEND"
            );
            for (&(name, _), &(pp, pm, r)) in PUBLISHES.iter().zip(rows) {
                println!("{name:<24} {pp:>14.2} {pm:>12.0} {r:>11.1}x");
            }
        }
    }

    /// One JSON object per place and publish kind.
    pub fn json_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (place, rows) in &self.places {
            for (&(name, m), &(pp, pm, r)) in PUBLISHES.iter().zip(rows) {
                out.push(
                    serde_json::json!({
                        "test": "txn", "place": place, "publish": name, "msgs": m,
                        "size": self.size, "us_per_publish": pp, "ns_per_msg": pm,
                        "vs_send": r,
                    })
                    .to_string(),
                );
            }
        }
        out
    }
}
