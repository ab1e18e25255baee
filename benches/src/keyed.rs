//! `shmq bench keyed`: what ordering a group by key costs. One producer
//! thread sends keyed messages as fast as it can; three member threads of
//! one group take them with explicit acks (a window of 4 each) and ack each
//! at once. The same messages go to the group unordered, then ordered by key
//! with many keys (1,000: members rarely wait for each other) and with few
//! (10: a key's next message is often parked behind its previous one). The
//! cases are interleaved and each is run [`REPEAT`] times; a rate is the best
//! run (noise only ever slows one), and the ratios compare rates of the same
//! run.

use super::Ctx;
use shmq::{Ack, QueueOptions, RecvError, SendOptions, StartAt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Times each case runs.
const REPEAT: usize = 3;
/// Member threads of the group.
const MEMBERS: usize = 3;

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
    /// Best rate (messages/s) and messages parked, per case.
    rates: Vec<(f64, u64)>,
}

/// Runs every case `REPEAT` times with `msgs` messages of `size` bytes.
pub(crate) fn run(ctx: &Ctx, size: usize, msgs: u64) -> Result<KeyedRun, String> {
    let mut rates = vec![(0.0f64, 0u64); CASES.len()];
    for round in 0..REPEAT {
        for (i, &(name, keys, ordered)) in CASES.iter().enumerate() {
            let (rate, parked) = one(ctx, size, msgs, keys, ordered)?;
            if rate > rates[i].0 {
                rates[i] = (rate, parked);
            }
            eprintln!("  done: keyed {name} (round {} of {REPEAT})", round + 1);
        }
    }
    Ok(KeyedRun { size, msgs, rates })
}

fn one(ctx: &Ctx, size: usize, msgs: u64, keys: u64, ordered: bool) -> Result<(f64, u64), String> {
    let path = ctx.dir.path().join("keyed.q");
    let _ = std::fs::remove_file(&path);
    let q = QueueOptions::new()
        .capacity(ctx.capacity.max(1 << 20))
        .ack_entries(256)
        .create(&path)
        .map_err(|e| e.to_string())?;
    q.add_group("work", StartAt::Latest)
        .map_err(|e| e.to_string())?;
    q.set_ordered_by_key("work", ordered)
        .map_err(|e| e.to_string())?;
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
    let names: Vec<Vec<u8>> = (0..keys).map(|k| format!("key-{k}").into_bytes()).collect();
    let payload = vec![0x5a; size];
    let t0 = Instant::now();
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
            "\nkeyed: 1 producer thread -> {MEMBERS} member threads, explicit acks, {} B, {} messages, best of {REPEAT}",
            self.size, self.msgs
        );
        println!(
            "{:<24} {:>12} {:>14} {:>10}",
            "GROUP", "M MSG/S", "VS UNORDERED", "PARKED"
        );
        let base = self.rates[0].0;
        for (&(name, _, _), &(rate, parked)) in CASES.iter().zip(&self.rates) {
            println!(
                "{:<24} {:>12.2} {:>13.2}x {:>10}",
                name,
                rate / 1e6,
                rate / base,
                parked
            );
        }
    }

    /// One JSON object per case.
    pub fn json_lines(&self) -> Vec<String> {
        let base = self.rates[0].0;
        CASES
            .iter()
            .zip(&self.rates)
            .map(|(&(name, keys, ordered), &(rate, parked))| {
                serde_json::json!({
                    "test": "keyed", "case": name, "keys": keys, "ordered": ordered,
                    "size": self.size, "msgs": self.msgs, "rate": rate,
                    "vs_unordered": rate / base, "parked": parked,
                })
                .to_string()
            })
            .collect()
    }
}
