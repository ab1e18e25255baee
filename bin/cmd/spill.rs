//! `shmq spill`

use super::count;
use shmq::Queue;
use std::path::Path;
use std::time::Duration;

/// What a round did, as one line.
fn said(spilled: u64, transferred: usize, rejoined: usize) -> String {
    format!(
        "spilled {}; {} moved to the log, {rejoined} back to the ring",
        count(spilled, "message"),
        count(transferred as u64, "group"),
    )
}

/// One round, or (`every`) a round every `every` until killed. A round that
/// fails (a full disk, an I/O error) loses nothing: once, it is the
/// command's error; with `every`, it is reported when it starts failing and
/// when it recovers, and the next round tries again, as producers do.
///
/// What it did goes to stdout: the round's line; with `every`, a line when
/// it starts and one per round that moved a group to the log or back (not
/// per round that only logged messages: those come every `every` while a
/// group lags).
pub fn run(path: &Path, every: Option<Duration>) -> Result<(), String> {
    let q = Queue::open(path).map_err(super::explain)?;
    if q.spill_options().is_none() {
        return Err(format!(
            "{}: the queue has no spill log (create it with --spill-dir)",
            path.display()
        ));
    }
    let Some(d) = every else {
        let r = q.spill_now().map_err(super::explain)?.unwrap_or_default();
        println!("{}", said(r.spilled, r.transferred, r.rejoined));
        return Ok(());
    };
    println!(
        "running a spill round every {} until killed",
        humantime::format_duration(d)
    );
    let mut failing: Option<String> = None;
    loop {
        match q.spill_now() {
            Ok(r) => {
                if let Some(r) = r.filter(|r| r.transferred + r.rejoined > 0) {
                    println!("{}", said(r.spilled, r.transferred, r.rejoined));
                }
                if failing.take().is_some() {
                    eprintln!("shmq spill: rounds succeed again");
                }
            }
            Err(e) => {
                let e = e.to_string();
                if failing.as_ref() != Some(&e) {
                    eprintln!("shmq spill: round failed (retrying every {d:?}): {e}");
                    failing = Some(e);
                }
            }
        }
        std::thread::sleep(d);
    }
}
