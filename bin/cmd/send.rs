//! `shmq send`

use shmq::Queue;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::{Duration, Instant};

/// Fills `buf` with a generated message: its index in decimal, then filler.
fn generate(i: u64, size: usize, buf: &mut Vec<u8>) {
    buf.clear();
    buf.extend_from_slice(format!("msg {i} ").as_bytes());
    buf.resize(size.max(buf.len()), b'.');
    buf.truncate(size);
}

/// What was sent, for the closing line.
#[derive(Default)]
struct SeqRange {
    count: u64,
    first: Option<u64>,
    last: u64,
}

impl SeqRange {
    fn note(&mut self, seq: u64) {
        self.first.get_or_insert(seq);
        self.last = seq;
        self.count += 1;
    }
}

pub fn run(
    path: &Path,
    count: Option<u64>,
    size: Option<u64>,
    interval: Option<Duration>,
    timeout: Option<Duration>,
) -> Result<(), String> {
    let q = Queue::open(path).map_err(|e| e.to_string())?;
    let mut p = q.producer().map_err(|e| e.to_string())?;
    let mut seqs = SeqRange::default();
    let result = send_all(&q, &mut p, &mut seqs, count, size, interval, timeout);
    // What was sent is reported even when a later message failed (an error
    // before anything was sent stays the one line it is).
    match seqs.first {
        Some(f) => eprintln!("sent {} messages, seq {f}..={}", seqs.count, seqs.last),
        None if result.is_ok() => eprintln!("sent 0 messages"),
        None => {}
    }
    result
}

fn send_all(
    q: &Queue,
    p: &mut shmq::Producer,
    seqs: &mut SeqRange,
    count: Option<u64>,
    size: Option<u64>,
    interval: Option<Duration>,
    timeout: Option<Duration>,
) -> Result<(), String> {
    let mut send = |msg: &[u8]| match timeout {
        Some(t) => p.send_timeout(msg, t),
        None => p.send(msg),
    };
    match count {
        Some(n) => {
            let size =
                usize::try_from(size.unwrap_or(0)).map_err(|_| "--size too large".to_string())?;
            let max = q.geometry().max_msg as usize;
            if size > max {
                return Err(format!(
                    "--size {size} exceeds the queue's maximum message size of {max}"
                ));
            }
            let mut buf = Vec::with_capacity(size);
            let start = Instant::now();
            for i in 0..n {
                if let Some(iv) = interval {
                    // Absolute schedule: the average rate is exact even though
                    // each sleep overshoots a little.
                    let due = start + iv * i as u32;
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                }
                generate(i, size, &mut buf);
                let n = seqs.count + 1;
                seqs.note(send(&buf).map_err(|e| format!("message {n}: {e}"))?);
            }
        }
        None => {
            let stdin = std::io::stdin();
            let mut r = BufReader::new(stdin.lock());
            let mut line = Vec::new();
            loop {
                line.clear();
                let n = r
                    .read_until(b'\n', &mut line)
                    .map_err(|e| format!("reading stdin: {e}"))?;
                if n == 0 {
                    break;
                }
                if line.last() == Some(&b'\n') {
                    line.pop();
                }
                let n = seqs.count + 1;
                seqs.note(send(&line).map_err(|e| format!("message {n}: {e}"))?);
            }
        }
    }
    Ok(())
}
