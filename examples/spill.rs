//! A slow group spills to disk and catches up. The queue has a 64 KiB ring
//! and a spill directory. Group `live` keeps up with the producer; group
//! `batch` reads nothing until the producer has published forty rings'
//! worth. The producer is never held back: what `batch` has not read goes to
//! the spill log, and `batch` then reads all of it, in order, from the log
//! and back in the ring.
//!
//! `cargo run --example spill`

use shmq::{Queue, QueueOptions, SpillOptions, StartAt};
use std::time::Duration;

const MESSAGES: u64 = 20_000; // 128 bytes each: about 40 rings of 64 KiB

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("events");
    let q = QueueOptions::new()
        .capacity(64 << 10)
        .spill(SpillOptions::new(dir.path().join("events.spill")))
        .create(&path)?;
    q.ensure_group("live", StartAt::Latest)?;
    q.ensure_group("batch", StartAt::Latest)?;

    let mut live = q.consumer("live").attach()?;
    let mut producer = q.producer().attach()?;
    for i in 0..MESSAGES {
        let mut event = [0u8; 128];
        event[..8].copy_from_slice(&i.to_le_bytes());
        producer.send(&event)?;
        // `live` keeps up.
        assert_eq!(live.recv()?.seq, i);
    }
    let stat = q.stat();
    let batch = stat.groups.iter().find(|g| g.name == "batch").unwrap();
    let spill = stat.spill.as_ref().unwrap();
    println!(
        "published {MESSAGES}; group 'batch' is {} behind (reading from disk: {}); \
         {} messages spilled, {} bytes in the log",
        batch.lag, batch.on_disk, spill.spilled, spill.bytes
    );
    assert!(
        batch.on_disk && spill.spilled > 0,
        "the lagging group spilled"
    );

    // The slow group catches up: from the log first, then the ring.
    let mut slow = q.consumer("batch").attach()?;
    for i in 0..MESSAGES {
        let m = slow.recv_timeout(Duration::from_secs(10))?;
        assert_eq!((m.seq, &m.payload[..8]), (i, &i.to_le_bytes()[..]));
    }
    println!("group 'batch' read all {MESSAGES}, in order");
    drop((live, slow, producer, q));
    Queue::remove(&path)?; // the queue file and its spill log
    Ok(())
}
