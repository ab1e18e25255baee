//! Exactly-once publishing with a named producer. A producer process
//! publishes the lines of its input, numbering each message with its line
//! number (the per-producer sequence number, pseq). It is killed (SIGKILL)
//! in the middle; a new one starts under the same name, asks where the last
//! one stopped, and retries from a little before that, as a producer that
//! does not know what was published would. What was published already is
//! refused as a duplicate: every line arrives exactly once.
//!
//! `cargo run --example exactly_once`: the producers are copies of the
//! example (`exactly_once produce PATH`).

use shmq::{Queue, QueueOptions, SendError, StartAt};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const LINES: u64 = 5_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, role, path] = &args[..] {
        if role == "produce" {
            return produce(path);
        }
    }
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("ingest");
    let q = QueueOptions::new().create(&path)?;
    q.ensure_group("store", StartAt::Latest)?;
    let mut store = q.consumer("store").attach()?;

    // The first producer: killed once it has published some of its input.
    let mut first = Command::new(std::env::current_exe()?)
        .args(["produce", path.to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()?;
    let mut got = Vec::new();
    while got.len() < 1000 {
        got.push(store.recv_timeout(Duration::from_secs(10))?);
    }
    first.kill()?; // SIGKILL, maybe in the middle of a publish
    first.wait()?;

    // The second producer, under the same name, finishes the job.
    let second = Command::new(std::env::current_exe()?)
        .args(["produce", path.to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()?;
    let out = second.wait_with_output()?;
    assert!(out.status.success());
    for line in BufReader::new(&out.stdout[..]).lines() {
        println!("second producer: {}", line?);
    }
    while let Ok(m) = store.recv_timeout(Duration::from_millis(500)) {
        got.push(m);
    }

    // Every line exactly once, in order.
    let pseqs: Vec<u64> = got.iter().map(|m| m.producer.unwrap().pseq).collect();
    assert_eq!(pseqs, (0..LINES).collect::<Vec<_>>());
    println!("{LINES} lines published, each exactly once, across a SIGKILL");
    drop((store, q));
    Queue::remove(&path)?;
    Ok(())
}

/// A producer: publishes lines 0..LINES under the name "ingest", starting a
/// hundred lines before where the last producer under the name stopped.
fn produce(path: &str) -> Result<(), Box<dyn std::error::Error>> {
    let q = Queue::open(path)?;
    let mut p = loop {
        match q.producer().name("ingest").attach() {
            // The last one died in the middle of a publish that another
            // process's recovery has not settled yet.
            Err(shmq::ProducerError::Unsettled { .. }) => {
                std::thread::sleep(Duration::from_millis(10))
            }
            r => break r?,
        }
    };
    let start = p.last_pseq().map_or(0, |last| last.saturating_sub(100));
    let mut refused = 0;
    for line in start..LINES {
        match p.send_as(line, format!("line {line}").as_bytes()) {
            Ok(_) => {}
            Err(SendError::Duplicate { .. }) => refused += 1,
            Err(e) => return Err(e.into()),
        }
        if line % 64 == 0 {
            std::thread::sleep(Duration::from_millis(1)); // reading input
        }
    }
    println!("started at line {start}; {refused} already published, refused");
    Ok(())
}
