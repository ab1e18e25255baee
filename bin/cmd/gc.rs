//! `shmq gc`

use shmq::Queue;
use std::path::Path;

pub fn run(path: &Path) -> Result<(), String> {
    let q = Queue::open(path).map_err(super::explain)?;
    let removed = q.gc().map_err(super::explain)?;
    for m in &removed {
        println!(
            "removed dead member pid {} of group '{}'{}",
            m.pid,
            m.group,
            if m.asleep { " (killed asleep)" } else { "" }
        );
    }
    println!("{} dead member(s) removed", removed.len());
    let r = q.gc_producers().map_err(super::explain)?;
    println!(
        "{} dead producer(s) removed ({} killed asleep), {} claim(s) they left aborted ({} sequence numbers){}",
        r.freed,
        r.sleepers,
        r.claims,
        r.records,
        if r.ambiguous > 0 {
            format!(", {} left for later (owner unclear)", r.ambiguous)
        } else {
            String::new()
        }
    );
    match q.release_due() {
        Ok(0) => {}
        Ok(n) => println!("{n} scheduled message(s) released (due)"),
        Err(e) => println!("releasing scheduled messages failed: {e}"),
    }
    Ok(())
}
