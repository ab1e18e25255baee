//! `shmq spill`

use shmq::Queue;
use std::path::Path;
use std::time::Duration;

/// One round, or (`every`) a round every `every` until killed. A round that
/// fails (a full disk, an I/O error) loses nothing: once, it is the
/// command's error; with `every`, it is reported when it starts failing and
/// when it recovers, and the next round tries again, as producers do.
pub fn run(path: &Path, every: Option<Duration>) -> Result<(), String> {
    let q = Queue::open(path).map_err(|e| e.to_string())?;
    if q.spill_options().is_none() {
        return Err(format!(
            "{}: the queue has no spill log (create it with --spill-dir)",
            path.display()
        ));
    }
    let Some(d) = every else {
        let r = q
            .spill_now()
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
        println!(
            "spilled {} messages; {} group(s) moved to the log, {} back to the ring",
            r.spilled, r.transferred, r.rejoined
        );
        return Ok(());
    };
    let mut failing: Option<String> = None;
    loop {
        match q.spill_now() {
            Ok(_) => {
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
