//! `shmq spill`

use shmq::Queue;
use std::path::Path;
use std::time::Duration;

pub fn run(path: &Path, every: Option<Duration>) -> Result<(), String> {
    let q = Queue::open(path).map_err(|e| e.to_string())?;
    if q.spill_options().is_none() {
        return Err(format!(
            "{}: the queue has no spill log (create it with --spill-dir)",
            path.display()
        ));
    }
    loop {
        let r = q
            .spill_now()
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
        match every {
            None => {
                println!(
                    "spilled {} messages; {} group(s) moved to the log, {} back to the ring",
                    r.spilled, r.transferred, r.rejoined
                );
                return Ok(());
            }
            Some(d) => std::thread::sleep(d),
        }
    }
}
