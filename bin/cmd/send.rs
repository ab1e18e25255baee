//! `shmq send`

use crate::cli::SendArgs;
use shmq::{Due, Producer, Queue, SendError, SendOptions};
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
        due: match (a.delay, a.deliver_at) {
            (Some(d), _) => Some(Due::After(d)),
            (None, Some(t)) => Some(Due::At(t)),
            (None, None) => None,
        },
        scheduled: 0,
        next_due: None,
        transaction: a.transaction,
    };
    let result =
        send_all(&q, &mut |m| s.one(m), a.count, a.size, a.interval).and_then(|()| s.flush());
    if s.scheduled > 0 {
        let due = s.next_due.unwrap_or(0);
        let secs = due as f64 / 1e9;
        println!(
            "scheduled {}, the first due at {secs:.3} (Unix time)",
            crate::cmd::count(s.scheduled, "message")
        );
    }
    let (seqs, skipped, scheduled) = (s.seqs, s.skipped, s.scheduled);
    // What was sent is reported (on stdout) even when a later message failed
    // (an error before anything was sent stays the one line it is).
    match seqs.first {
        Some(f) => println!(
            "sent {}, seq {f}..={}",
            crate::cmd::count(seqs.count, "message"),
            seqs.last
        ),
        None if result.is_ok() && scheduled == 0 => println!("sent 0 messages"),
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
    /// Messages of the batch (or transaction) being gathered.
    pending: Vec<Vec<u8>>,
    /// Schedule each message instead (--delay, --deliver-at).
    due: Option<Due>,
    scheduled: u64,
    /// When the first scheduled message is due (ns).
    next_due: Option<u64>,
    /// All messages are one transaction, prepared and committed by `flush`.
    transaction: bool,
}

/// The options of message `i` (1-based, for errors), and its payload:
/// `msg` itself, or with `keyed`, what follows its key and tab.
fn options(
    msg: &[u8],
    i: u64,
    keyed: bool,
    ttl: Option<Duration>,
) -> Result<(&[u8], SendOptions<'_>), String> {
    let mut opts = SendOptions::new();
    if let Some(t) = ttl {
        opts = opts.ttl(t);
    }
    if !keyed {
        return Ok((msg, opts));
    }
    let Some(tab) = msg.iter().position(|&b| b == b'\t') else {
        return Err(format!(
            "message {i}: no tab: --keyed reads KEY<TAB>PAYLOAD lines"
        ));
    };
    Ok((&msg[tab + 1..], opts.key(&msg[..tab])))
}

impl Sender {
    /// Sends `msg`, or adds it to the batch (sent once full).
    fn one(&mut self, msg: &[u8]) -> Result<(), String> {
        if self.transaction {
            self.pending.push(msg.to_vec());
            return Ok(());
        }
        let Some(n) = self.batch else {
            let i = self.seqs.count + self.skipped.count + self.scheduled + 1;
            let (msg, opts) = options(msg, i, self.keyed, self.ttl)?;
            if let Some(due) = self.due {
                let s = self
                    .p
                    .schedule(msg, due, &opts)
                    .map_err(|e| format!("message {i}: {e}"))?;
                self.scheduled += 1;
                self.next_due = Some(self.next_due.map_or(s.due_ns, |d| d.min(s.due_ns)));
                return Ok(());
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

    /// Sends the batch gathered so far, if any, with one claim; or the
    /// transaction, prepared then committed.
    fn flush(&mut self) -> Result<(), String> {
        if self.transaction {
            return self.commit_transaction();
        }
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

impl Sender {
    /// Prepares every message gathered as one transaction, then commits it.
    fn commit_transaction(&mut self) -> Result<(), String> {
        let msgs = std::mem::take(&mut self.pending);
        let mut tx = self.p.begin().map_err(|e| e.to_string())?;
        let id = tx.id();
        for (k, m) in msgs.iter().enumerate() {
            let i = k as u64 + 1;
            let (msg, opts) = options(m, i, self.keyed, self.ttl)?;
            tx.send_with(msg, &opts)
                .map_err(|e| format!("transaction {id}, message {i}: {e}"))?;
        }
        let prepared = tx.prepare().map_err(|e| format!("transaction {id}: {e}"))?;
        println!(
            "transaction {id}: prepared {}",
            crate::cmd::count(msgs.len() as u64, "message")
        );
        let first = prepared
            .commit()
            .map_err(|e| format!("transaction {id} stays prepared (shmq txn): {e}"))?;
        for k in 0..msgs.len() as u64 {
            self.seqs.note(first + k);
        }
        println!("transaction {id}: committed");
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
