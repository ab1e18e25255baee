//! Fan-out: every group gets every message. One producer process, two
//! groups, each read by its own consumer process; each consumer checks that
//! it got every sequence number once and in order.
//!
//! `cargo run --example fan_out`: the example starts its consumers as copies
//! of itself (`fan_out consume PATH GROUP`).

use shmq::{Queue, QueueOptions, StartAt};
use std::process::{Command, Stdio};
use std::time::Duration;

const MESSAGES: u64 = 10_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, role, path, group] = &args[..] {
        if role == "consume" {
            return consume(path, group);
        }
    }
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("prices");
    // A small ring: the producer waits for the slower group, nothing is lost.
    let q = QueueOptions::new().capacity(64 << 10).create(&path)?;
    q.ensure_group("risk", StartAt::Latest)?;
    q.ensure_group("archive", StartAt::Latest)?;

    let consumers = ["risk", "archive"]
        .iter()
        .map(|g| {
            Command::new(std::env::current_exe()?)
                .args(["consume", path.to_str().unwrap(), g])
                .stdout(Stdio::piped())
                .spawn()
        })
        .collect::<Result<Vec<_>, _>>()?;

    let mut producer = q.producer().attach()?;
    for i in 0..MESSAGES {
        producer.send(format!("tick {i}").as_bytes())?;
    }
    for c in consumers {
        let out = c.wait_with_output()?;
        print!("{}", String::from_utf8_lossy(&out.stdout));
        assert!(out.status.success(), "a consumer failed");
    }
    Queue::remove(&path)?;
    Ok(())
}

/// A consumer process: reads `MESSAGES` messages of `group`.
fn consume(path: &str, group: &str) -> Result<(), Box<dyn std::error::Error>> {
    let q = Queue::open(path)?;
    let mut member = q.consumer(group).attach()?;
    for want in 0..MESSAGES {
        let m = member.recv_timeout(Duration::from_secs(30))?;
        assert_eq!(m.seq, want, "{group}: out of order");
        assert_eq!(m.payload, format!("tick {want}").as_bytes());
    }
    println!("{group}: {MESSAGES} messages, every sequence number once, in order");
    Ok(())
}
