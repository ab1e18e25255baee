//! `shmq recv`

use crate::cli::{AckArg, RecvArgs};
use shmq::{now_ns, Ack, Queue, RecvError};
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
    } = *args;
    let explicit = ack == AckArg::Explicit;
    let q = Queue::open(path).map_err(|e| e.to_string())?;
    let mut c = q.consumer(group).map_err(|e| e.to_string())?;
    if explicit {
        c.set_ack(Ack::Explicit);
    }
    install_handlers();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut hist = hdrhistogram::Histogram::<u64>::new(3).map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let (mut received, mut first, mut last, mut in_order) = (0u64, None::<u64>, None::<u64>, true);
    let mut idle_since = Instant::now();
    let write_err = |e: std::io::Error| format!("writing stdout: {e}");
    while count.is_none_or(|n| received < n) && !STOP.load(Ordering::Relaxed) {
        // Try without waiting first; flush what we have before blocking.
        let meta = match c.recv_into(&mut buf, Some(Duration::ZERO)) {
            Ok(m) => m,
            Err(RecvError::Timeout) => {
                out.flush().map_err(write_err)?;
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
                match c.recv_into(&mut buf, Some(wait)) {
                    Ok(m) => m,
                    Err(RecvError::Timeout) => continue,
                    Err(e) => return Err(e.to_string()),
                }
            }
            Err(e) => return Err(e.to_string()),
        };
        let latency = now_ns().saturating_sub(meta.ts_ns);
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
                c.ack(meta.seq).map_err(|e| e.to_string())?;
            }
            continue;
        }
        if json {
            let mut obj = serde_json::json!({
                "seq": meta.seq,
                "len": buf.len(),
                "ts_ns": meta.ts_ns,
                "redelivered": meta.redelivered,
            });
            if let Some(from) = meta.dead_letter_from {
                obj["dead_letter_from"] = q
                    .group_name(from)
                    .unwrap_or_else(|| from.to_string())
                    .into();
            }
            super::json_message(&mut obj, &q, &buf, meta.producer);
            serde_json::to_writer(&mut out, &obj).map_err(|e| format!("writing stdout: {e}"))?;
            out.write_all(b"\n").map_err(write_err)?;
        } else {
            out.write_all(&buf).map_err(write_err)?;
            out.write_all(b"\n").map_err(write_err)?;
        }
        if explicit {
            // At-least-once: the line is out of this process before the
            // message counts as consumed.
            out.flush().map_err(write_err)?;
            c.ack(meta.seq).map_err(|e| e.to_string())?;
        }
    }
    out.flush().map_err(write_err)?;
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
