//! `shmq dump`

use shmq::Queue;
use std::io::Write;
use std::path::Path;

pub fn run(path: &Path, from: u64, count: Option<u64>, json: bool) -> Result<(), String> {
    let q = Queue::open(path).map_err(super::explain)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut err = None;
    q.dump(from, count.unwrap_or(u64::MAX), |m| {
        if err.is_some() {
            return;
        }
        let r = if json {
            let mut obj = serde_json::json!({
                "seq": m.seq,
                "ts_ns": m.ts_ns,
                "len": m.payload.len(),
                "source": if m.from_log { "spill" } else { "ring" },
            });
            super::json_message(&mut obj, &q, &m.payload, m.producer, m.ttl, m.key);
            writeln!(out, "{obj}")
        } else {
            // SEQ, a tab, the payload as sent: as `recv` prints it, numbered.
            write!(out, "{}\t", m.seq)
                .and_then(|_| out.write_all(&m.payload))
                .and_then(|_| out.write_all(b"\n"))
        };
        err = r.err();
    })
    .map_err(super::explain)?;
    if let Some(e) = err {
        return Err(format!("writing stdout: {e}"));
    }
    out.flush().map_err(|e| format!("writing stdout: {e}"))
}
