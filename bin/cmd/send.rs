//! `shmq send`

use crate::cli::SendArgs;
use shmq::{Producer, Queue, SendError, SendOptions};
use std::io::{BufRead, BufReader};
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

/// Publishes one message: numbered `pseq` if given, waiting up to `timeout`,
/// with `opts` (which `--pseq` never comes with).
fn publish(
    p: &mut Producer,
    msg: &[u8],
    pseq: Option<u64>,
    opts: &SendOptions,
    timeout: Option<Duration>,
) -> Result<u64, SendError> {
    match (pseq, timeout) {
        (Some(n), Some(t)) => p.send_as_timeout(n, msg, t),
        (Some(n), None) => p.send_as(n, msg),
        (None, Some(t)) => p.send_with_timeout(msg, opts, t),
        (None, None) => p.send_with(msg, opts),
    }
}

pub fn run(a: &SendArgs) -> Result<(), String> {
    let q = Queue::open(&a.path).map_err(super::explain)?;
    let p = match &a.producer {
        Some(name) => q.producer().name(name).attach(),
        None => q.producer().attach(),
    }
    .map_err(super::explain)?;
    if let (Some(name), Some(last)) = (&a.producer, p.last_pseq()) {
        println!("producer '{name}': last pseq committed {last}");
    }
    let mut s = Sender {
        p,
        seqs: SeqRange::default(),
        skipped: SeqRange::default(),
        pseq: a.pseq,
        timeout: a.timeout,
        ttl: a.ttl,
        keyed: a.keyed,
        batch: a.batch.map(|n| n as usize),
        pending: Vec::new(),
    };
    let result =
        send_all(&q, &mut |m| s.one(m), a.count, a.size, a.interval).and_then(|()| s.flush());
    let (seqs, skipped) = (s.seqs, s.skipped);
    // What was sent is reported (on stdout) even when a later message failed
    // (an error before anything was sent stays the one line it is).
    match seqs.first {
        Some(f) => println!(
            "sent {}, seq {f}..={}",
            crate::cmd::count(seqs.count, "message"),
            seqs.last
        ),
        None if result.is_ok() => println!("sent 0 messages"),
        None => {}
    }
    if let Some(f) = skipped.first {
        println!(
            "skipped {} (pseq {f}..={}, committed before)",
            crate::cmd::count(skipped.count, "duplicate"),
            skipped.last
        );
    }
    result
}

/// Publishes messages one at a time, or in batches of `batch`.
struct Sender {
    p: Producer,
    seqs: SeqRange,
    skipped: SeqRange,
    pseq: Option<u64>,
    timeout: Option<Duration>,
    ttl: Option<Duration>,
    /// Each message is `KEY<TAB>PAYLOAD`.
    keyed: bool,
    batch: Option<usize>,
    /// Messages of the batch being gathered.
    pending: Vec<Vec<u8>>,
}

impl Sender {
    /// Sends `msg`, or adds it to the batch (sent once full).
    fn one(&mut self, msg: &[u8]) -> Result<(), String> {
        let Some(n) = self.batch else {
            let i = self.seqs.count + self.skipped.count + 1;
            let mut opts = SendOptions::new();
            if let Some(t) = self.ttl {
                opts = opts.ttl(t);
            }
            let mut msg = msg;
            if self.keyed {
                let Some(tab) = msg.iter().position(|&b| b == b'\t') else {
                    return Err(format!(
                        "message {i}: no tab: --keyed reads KEY<TAB>PAYLOAD lines"
                    ));
                };
                opts = opts.key(&msg[..tab]);
                msg = &msg[tab + 1..];
            }
            match publish(&mut self.p, msg, self.pseq, &opts, self.timeout) {
                Ok(seq) => self.seqs.note(seq),
                Err(SendError::Duplicate { pseq, .. }) => self.skipped.note(pseq),
                Err(e) => return Err(format!("message {i}: {e}")),
            }
            self.pseq = self.pseq.map(|n| n.saturating_add(1));
            return Ok(());
        };
        self.pending.push(msg.to_vec());
        if self.pending.len() >= n {
            self.flush()?;
        }
        Ok(())
    }

    /// Sends the batch gathered so far, if any, with one claim.
    fn flush(&mut self) -> Result<(), String> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let msgs: Vec<&[u8]> = self.pending.iter().map(|m| &m[..]).collect();
        let r = match self.timeout {
            Some(t) => self.p.send_batch_timeout(&msgs, t),
            None => self.p.send_batch(&msgs),
        };
        let first = r.map_err(|e| {
            format!(
                "batch of {} from message {}: {e}",
                msgs.len(),
                self.seqs.count + 1
            )
        })?;
        for k in 0..msgs.len() as u64 {
            self.seqs.note(first + k);
        }
        self.pending.clear();
        Ok(())
    }
}

fn send_all(
    q: &Queue,
    send: &mut impl FnMut(&[u8]) -> Result<(), String>,
    count: Option<u64>,
    size: Option<u64>,
    interval: Option<Duration>,
) -> Result<(), String> {
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
                send(&buf)?;
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
                send(&line)?;
            }
        }
    }
    Ok(())
}
