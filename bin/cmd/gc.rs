//! `shmq gc`

use shmq::Queue;
use std::path::Path;

pub fn run(path: &Path) -> Result<(), String> {
    let q = Queue::open(path).map_err(|e| e.to_string())?;
    let removed = q.gc().map_err(|e| e.to_string())?;
    for (group, pid) in &removed {
        println!("removed dead member pid {pid} of group '{group}'");
    }
    println!("{} dead member(s) removed", removed.len());
    let r = q.gc_producers().map_err(|e| e.to_string())?;
    println!(
        "{} dead producer(s) removed, {} claim(s) they left aborted ({} sequence numbers){}",
        r.freed,
        r.claims,
        r.records,
        if r.ambiguous > 0 {
            format!(", {} left for later (owner unclear)", r.ambiguous)
        } else {
            String::new()
        }
    );
    Ok(())
}
