//! A work queue: three worker processes compete for jobs and acknowledge each
//! one when it is done. One worker is killed (SIGKILL) in the middle of a job;
//! the job it held is delivered again, to a worker that is alive, flagged as
//! a redelivery. Every job is done.
//!
//! `cargo run --example work_queue`: the workers are copies of the example
//! (`work_queue work PATH NAME`); each prints one line per job it finished.

use shmq::{Ack, Queue, QueueOptions, StartAt};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

const JOBS: u64 = 300;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, role, path, name] = &args[..] {
        if role == "work" {
            return work(path, name);
        }
    }
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("jobs");
    let q = QueueOptions::new().create(&path)?;
    q.ensure_group("workers", StartAt::Latest)?;
    let mut producer = q.producer().attach()?;
    for job in 0..JOBS {
        producer.send(format!("job {job}").as_bytes())?;
    }

    let workers = ["crasher", "w2", "w3"]
        .iter()
        .map(|name| {
            Command::new(std::env::current_exe()?)
                .args(["work", path.to_str().unwrap(), name])
                .stdout(Stdio::piped())
                .spawn()
        })
        .collect::<Result<Vec<_>, _>>()?;
    // seq -> (worker, deliveries before this one)
    let mut done: BTreeMap<u64, (String, u64)> = BTreeMap::new();
    for w in workers {
        let out = w.wait_with_output()?;
        for line in BufReader::new(&out.stdout[..]).lines() {
            let line = line?;
            let f: Vec<&str> = line.split(' ').collect();
            let (seq, redelivered) = (f[1].parse()?, f[2].parse()?);
            done.insert(seq, (f[0].to_owned(), redelivered));
        }
    }
    let again: Vec<_> = done.iter().filter(|(_, (_, r))| *r > 0).collect();
    println!(
        "{} jobs done; delivered again after the crash: {again:?}",
        done.len()
    );
    assert_eq!(done.len() as u64, JOBS, "every job is done");
    assert!(!again.is_empty(), "the crashed worker's job came back");
    Queue::remove(&path)?;
    Ok(())
}

/// A worker: takes jobs with explicit ack until none comes for a while.
fn work(path: &str, name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let q = Queue::open(path)?;
    let mut worker = q.consumer("workers").ack(Ack::Explicit).attach()?;
    let mut out = std::io::stdout();
    let mut taken = 0;
    loop {
        let job = match worker.recv_timeout(Duration::from_secs(3)) {
            Ok(job) => job,
            Err(shmq::RecvError::Timeout) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        taken += 1;
        if name == "crasher" && taken == 10 {
            // Dies holding its tenth job, unacknowledged.
            // SAFETY: kill(2) on our own pid; no memory is involved.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(1)); // the work
        worker.ack(job.seq)?;
        writeln!(out, "{name} {} {}", job.seq, job.redelivered)?;
        out.flush()?;
    }
}
