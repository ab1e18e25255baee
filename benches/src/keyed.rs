//! `shmq bench keyed`: what ordering a group by key costs its members. A
//! backlog of keyed messages is published first; then [`MEMBERS`] member
//! threads of one group (one per core on the 2-core machines this runs on)
//! take them with explicit acks (a window of 4 each) and ack each at once,
//! and the rate is the backlog over the time until the last ack. The same
//! backlog goes to the group unordered, then ordered by key with many keys
//! (1,000: members rarely wait for each other) and with few (10: a key's
//! next message is often parked behind its previous one). The cases are
//! interleaved and each is run [`REPEAT`] times. Two members on two cores
//! are at the scheduler's mercy (runs of one case differ by 2x or more), so
//! the figures are medians: of each case's rates, and of each round's ratio
//! to the unordered run of the same round.

use super::Ctx;
use shmq::{Ack, QueueOptions, RecvError, SendOptions, StartAt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Times each case runs.
const REPEAT: usize = 7;
/// Member threads of the group.
const MEMBERS: usize = 2;

/// The cases: name, keys, ordered.
const CASES: [(&str, u64, bool); 3] = [
    ("unordered, 1000 keys", 1000, false),
    ("ordered, 1000 keys", 1000, true),
    ("ordered, 10 keys", 10, true),
];

/// The figures of `shmq bench keyed`.
pub struct KeyedRun {
    size: usize,
    msgs: u64,
    /// Per case: median rate (messages/s), median ratio to the unordered
    /// case's rate in the same round, and messages parked (median).
    rates: Vec<(f64, f64, u64)>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Runs every case `REPEAT` times with `msgs` messages of `size` bytes.
pub(crate) fn run(ctx: &Ctx, size: usize, msgs: u64) -> Result<KeyedRun, String> {
    // Per case, per round: (rate, parked).
    let mut runs: Vec<Vec<(f64, u64)>> = vec![Vec::new(); CASES.len()];
    for round in 0..REPEAT {
        for (i, &(name, keys, ordered)) in CASES.iter().enumerate() {
            runs[i].push(one(ctx, size, msgs, keys, ordered)?);
            eprintln!("  done: keyed {name} (round {} of {REPEAT})", round + 1);
        }
    }
    let rates = runs
        .iter()
        .map(|r| {
            let rate = median(r.iter().map(|x| x.0).collect());
            let ratio = median(r.iter().zip(&runs[0]).map(|(x, u)| x.0 / u.0).collect());
            let parked = median(r.iter().map(|x| x.1 as f64).collect()) as u64;
            (rate, ratio, parked)
        })
        .collect();
    Ok(KeyedRun { size, msgs, rates })
}

fn one(ctx: &Ctx, size: usize, msgs: u64, keys: u64, ordered: bool) -> Result<(f64, u64), String> {
    let path = ctx.dir.path().join("keyed.q");
    let _ = std::fs::remove_file(&path);
    // Room for the whole backlog.
    let need = (msgs * (size as u64 + 64)).next_power_of_two() * 2;
    let q = QueueOptions::new()
        .capacity(ctx.capacity.max(need))
        .ack_entries(256)
        .create(&path)
        .map_err(|e| e.to_string())?;
    q.add_group("work", StartAt::Latest)
        .map_err(|e| e.to_string())?;
    q.set_ordered_by_key("work", ordered)
        .map_err(|e| e.to_string())?;
    let names: Vec<Vec<u8>> = (0..keys).map(|k| format!("key-{k}").into_bytes()).collect();
    let payload = vec![0x5a; size];
    let mut p = q.producer().attach().map_err(|e| e.to_string())?;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..msgs {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let key = &names[(x % keys) as usize];
        p.send_with(&payload, &SendOptions::new().key(key))
            .map_err(|e| e.to_string())?;
    }
    let t0 = Instant::now();
    let done = Arc::new(AtomicU64::new(0));
    let members: Vec<_> = (0..MEMBERS)
        .map(|_| {
            let (q, done) = (q.clone(), done.clone());
            std::thread::spawn(move || -> Result<(), String> {
                let mut c = q
                    .consumer("work")
                    .ack(Ack::Explicit)
                    .max_unacked(4)
                    .attach()
                    .map_err(|e| e.to_string())?;
                while done.load(Ordering::Relaxed) < msgs {
                    let seq = match c.recv_ref_timeout(Duration::from_millis(10)) {
                        Ok(m) => m.seq(),
                        Err(RecvError::Timeout | RecvError::AckTableFull { .. }) => continue,
                        Err(e) => return Err(e.to_string()),
                    };
                    c.ack(seq).map_err(|e| e.to_string())?;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            })
        })
        .collect();
    for m in members {
        m.join().map_err(|_| "a member panicked".to_string())??;
    }
    let secs = t0.elapsed().as_secs_f64();
    let parked = q.stat().groups[0].parked;
    Ok((msgs as f64 / secs, parked))
}

impl KeyedRun {
    /// The table.
    pub fn print(&self) {
        println!(
            "\nkeyed: a backlog of {} messages of {} B -> {MEMBERS} member threads, explicit acks, medians of {REPEAT}",
            self.msgs, self.size
        );
        println!(
            "{:<24} {:>12} {:>14} {:>10}",
            "GROUP", "M MSG/S", "VS UNORDERED", "PARKED"
        );
        for (&(name, _, _), &(rate, ratio, parked)) in CASES.iter().zip(&self.rates) {
            println!(
                "{:<24} {:>12.2} {:>13.2}x {:>10}",
                name,
                rate / 1e6,
                ratio,
                parked
            );
        }
    }

    /// One JSON object per case.
    pub fn json_lines(&self) -> Vec<String> {
        CASES
            .iter()
            .zip(&self.rates)
            .map(|(&(name, keys, ordered), &(rate, ratio, parked))| {
                serde_json::json!({
                    "test": "keyed", "case": name, "keys": keys, "ordered": ordered,
                    "size": self.size, "msgs": self.msgs, "rate": rate,
                    "vs_unordered": ratio, "parked": parked,
                })
                .to_string()
            })
            .collect()
    }
}
