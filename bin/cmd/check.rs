//! `shmq check`

use shmq::Queue;
use std::path::Path;

pub fn run(path: &Path, json: bool) -> Result<(), String> {
    // Opening validates the header: a bad one is reported as the open error.
    let q = Queue::open(path).map_err(super::explain)?;
    let r = q.check();
    if json {
        let obj = serde_json::json!({ "ok": r.ok(), "records": r.records, "log_records": r.log_records, "groups": r.groups, "problems": r.problems });
        println!("{obj}");
    } else {
        for p in &r.problems {
            println!("problem: {p}");
        }
        println!(
            "{}: {} records, {} spill log records, {} groups, {} problem(s)",
            path.display(),
            r.records,
            r.log_records,
            r.groups,
            r.problems.len()
        );
    }
    if r.ok() {
        Ok(())
    } else {
        Err(format!(
            "{}: {} problem(s) found",
            path.display(),
            r.problems.len()
        ))
    }
}
