//! `shmq recv`

use crate::cli::{AckArg, RecvArgs};
use shmq::clock::now_ns;
use shmq::{Ack, Consumer, Meta, Queue, RecvError};
use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Set by SIGINT/SIGTERM: finish the current message, print the summary, leave
/// the group cleanly.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

fn install_handlers() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    // No SA_RESTART: a futex sleep returns with EINTR and the loop sees STOP.
    let act = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        let _ = unsafe { sigaction(sig, &act) };
    }
}

/// How long one blocking wait lasts before the loop checks STOP again.
const SLICE: Duration = Duration::from_millis(100);

/// Receives one message at a time, or (`size > 1`) a batch at a time, handed
/// out one by one: a batch's messages are consumed when taken, so every one
/// is printed, even after a stop signal.
struct Batches {
    size: usize,
    pending: VecDeque<(Meta, Vec<u8>)>,
}

impl Batches {
    /// The next message into `buf`, waiting up to `wait`; a new batch takes
    /// at most `room` messages (what `--count` still allows).
    fn next(
        &mut self,
        c: &mut Consumer,
        buf: &mut Vec<u8>,
        wait: Duration,
        room: u64,
    ) -> Result<Meta, RecvError> {
        if self.pending.is_empty() && self.size > 1 {
            let max = self.size.min(usize::try_from(room).unwrap_or(usize::MAX));
            c.recv_batch_timeout(max, wait, |m, p| self.pending.push_back((*m, p.to_vec())))?;
        }
        match self.pending.pop_front() {
            Some((m, p)) => {
                buf.clear();
                buf.extend_from_slice(&p);
                Ok(m)
            }
            None => c.recv_ref_timeout(wait).map(|m| {
                buf.clear();
                buf.extend_from_slice(m.as_bytes());
                m.meta()
            }),
        }
    }
}

pub fn run(args: &RecvArgs) -> Result<(), String> {
    let RecvArgs {
        ref path,
        ref group,
        count,
        timeout,
        json,
        quiet,
        stats,
        ack,
        batch,
        max_unacked,
    } = *args;
    let explicit = ack == AckArg::Explicit;
    let q = Queue::open(path).map_err(super::explain)?;
    let mut b = q.consumer(group);
    if explicit {
        b = b.ack(Ack::Explicit);
        if let Some(n) = max_unacked {
            b = b.max_unacked(n);
        }
    }
    let mut c = b.attach().map_err(super::explain)?;
    let window = c.max_unacked() as usize;
    // With --ack explicit: written, not yet acknowledged (up to the window).
    let mut to_ack: Vec<u64> = Vec::new();
    install_handlers();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut hist = hdrhistogram::Histogram::<u64>::new(3).map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let (mut received, mut first, mut last, mut in_order) = (0u64, None::<u64>, None::<u64>, true);
    let mut idle_since = Instant::now();
    let write_err = |e: std::io::Error| format!("writing stdout: {e}");
    let mut batches = Batches {
        size: batch as usize,
        pending: VecDeque::new(),
    };
    while (count.is_none_or(|n| received < n) && !STOP.load(Ordering::Relaxed))
        || !batches.pending.is_empty()
    {
        let room = count.map_or(u64::MAX, |n| n.saturating_sub(received));
        // Try without waiting first; flush what we have before blocking.
        let meta = match batches.next(&mut c, &mut buf, Duration::ZERO, room) {
            Ok(m) => m,
            Err(RecvError::Timeout) => {
                out.flush().map_err(write_err)?;
                ack_all(&mut c, &mut to_ack)?;
                let wait = match timeout {
                    Some(t) => {
                        let left = t.saturating_sub(idle_since.elapsed());
                        if left.is_zero() {
                            break;
                        }
                        left.min(SLICE)
                    }
                    None => SLICE,
                };
                match batches.next(&mut c, &mut buf, wait, room) {
                    Ok(m) => m,
                    Err(RecvError::Timeout) => continue,
                    Err(e) => return Err(e.to_string()),
                }
            }
            Err(e) => return Err(e.to_string()),
        };
        let recv_ns = now_ns();
        let latency = recv_ns.saturating_sub(meta.ts_ns);
        idle_since = Instant::now();
        received += 1;
        first.get_or_insert(meta.seq);
        if last.is_some_and(|l| meta.seq <= l) {
            in_order = false;
        }
        last = Some(meta.seq);
        let _ = hist.record(latency.max(1));
        if quiet {
            if explicit {
                to_ack.push(meta.seq);
                if to_ack.len() >= window {
                    ack_all(&mut c, &mut to_ack)?;
                }
            }
            continue;
        }
        if json {
            let mut obj = serde_json::json!({
                "seq": meta.seq,
                "len": buf.len(),
                "ts_ns": meta.ts_ns,
                "redelivered": meta.redelivered,
                "recv_ns": recv_ns,
            });
            if let Some(from) = meta.dead_letter_from {
                obj["dead_letter_from"] = q
                    .group_name(from)
                    .unwrap_or_else(|| from.to_string())
                    .into();
            }
            if let Some(seq) = meta.dead_letter_seq {
                obj["dead_letter_seq"] = seq.into();
            }
            super::json_message(&mut obj, &q, &buf, meta.producer, meta.ttl, meta.key);
            serde_json::to_writer(&mut out, &obj).map_err(|e| format!("writing stdout: {e}"))?;
            out.write_all(b"\n").map_err(write_err)?;
        } else {
            out.write_all(&buf).map_err(write_err)?;
            out.write_all(b"\n").map_err(write_err)?;
        }
        if explicit {
            // At-least-once: the lines are out of this process before the
            // messages count as consumed; a window's worth at a time.
            to_ack.push(meta.seq);
            if to_ack.len() >= window {
                out.flush().map_err(write_err)?;
                ack_all(&mut c, &mut to_ack)?;
            }
        }
    }
    out.flush().map_err(write_err)?;
    ack_all(&mut c, &mut to_ack)?;
    if stats {
        let summary = serde_json::json!({
            "group": group,
            "received": received,
            "first_seq": first,
            "last_seq": last,
            "in_order": in_order,
            "latency_ns": {
                "p50": hist.value_at_quantile(0.5),
                "p90": hist.value_at_quantile(0.9),
                "p99": hist.value_at_quantile(0.99),
                "p999": hist.value_at_quantile(0.999),
                "max": hist.max(),
            },
        });
        eprintln!("{summary}");
    }
    Ok(())
}

/// Acknowledges every message in `to_ack` (their lines are written and
/// flushed). One held past the group's ack deadline went back for
/// redelivery: said on stderr, and it will be printed again, flagged.
fn ack_all(c: &mut Consumer, to_ack: &mut Vec<u64>) -> Result<(), String> {
    for seq in to_ack.drain(..) {
        match c.ack(seq) {
            Ok(()) => {}
            Err(e @ shmq::AckError::Expired { .. }) => eprintln!("shmq recv: {e}"),
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}
