//! The README's library example: one queue, two groups, acks, dead letters
//! and a named producer, in one process (each part may be its own).

use shmq::{Ack, Queue, QueueOptions, StartAt};
use std::time::Duration;

fn main() -> Result<(), shmq::Error> {
    let path = "/dev/shm/shmq-quickstart";
    // A 1 MiB ring; `Queue::open(path)` in every other process.
    let q = QueueOptions::new()
        .capacity(1 << 20)
        .replace(true)
        .create(path)?;
    q.ensure_group("billing", StartAt::Latest)?; // groups each get every message
    q.ensure_group("audit", StartAt::Latest)?;

    // In any process: a producer takes a registry slot.
    let mut producer = Queue::open(path)?.producer().attach()?;
    producer.send(b"order 1")?; // waits while the ring is full
    producer.try_send(b"order 2")?; // or Err(SendError::Full)
    let mut slot = producer.claim_send(7)?; // zero copy
    slot.as_mut_slice().copy_from_slice(b"order 3");
    slot.commit();

    // In other processes: members of "billing" share its messages.
    let mut billing = Queue::open(path)?.consumer("billing").attach()?;
    let msg = billing.recv()?; // Message { seq, ts_ns, payload, .. }
    assert_eq!(msg.payload, b"order 1");
    let guard = billing.recv_ref()?; // zero copy: read in place
    println!(
        "{} {}",
        guard.seq(),
        String::from_utf8_lossy(guard.as_bytes())
    );
    drop(guard);
    billing.recv_batch(64, |meta, payload| {
        println!("{} {}", meta.seq, String::from_utf8_lossy(payload)); // up to 64, in place
    })?;

    // At-least-once: a message counts as consumed only when acked.
    let mut audit = q.consumer("audit").ack(Ack::Explicit).attach()?;
    let msg = audit.recv_timeout(Duration::from_secs(1))?;
    audit.nack(msg.seq)?; // delivered again, msg.redelivered counts
    let again = audit.recv_timeout(Duration::from_secs(1))?;
    assert_eq!((again.seq, again.redelivered), (msg.seq, 1));
    audit.ack(again.seq)?;
    q.set_max_attempts("audit", 5)?; // then give a message up,
    q.ensure_dead_letter_group("audit-dlq")?; // to a group that receives
    q.set_dead_letter("audit", Some("audit-dlq"))?; // only what others give up

    // Exactly-once publishing: a named producer numbers its messages (pseq),
    // and a pseq already committed under its name is refused, even after a
    // crash.
    let mut ingest = q.producer().name("ingest").attach()?; // one live producer per name
    let resume = ingest.last_pseq().map_or(0, |l| l + 1); // where the last stopped
    ingest.send_as(resume, b"input record")?; // or Err(SendError::Duplicate)
    let msg = billing.recv_timeout(Duration::from_secs(1))?;
    println!("{:?}", msg.producer); // Some(ProducerTag { id, pseq })

    drop((producer, ingest, billing, audit, q));
    Queue::remove(path)?; // the file, and a spill log if it had one
    Ok(())
}
