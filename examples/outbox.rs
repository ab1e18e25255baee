//! A transactional outbox: a payment service changes its own store and
//! publishes what it did, both or neither, across crashes, with
//! transactions (RocketMQ's half messages); and a reminder delivered later
//! (delayed delivery).
//!
//! For each payment the service begins a transaction, sends its events into
//! it, prepares it (flushed to disk: it survives the process), records the
//! payment in its own store (a file here, a database in real life), then
//! commits. A service killed (SIGKILL) between recording and committing
//! leaves the transaction prepared. The next service under the same
//! producer name finds it (`pending_transactions`), asks its store whether
//! the payment was recorded, and commits or aborts accordingly. The ledger
//! group gets the events of every recorded payment exactly once, and no
//! other.
//!
//! `cargo run --example outbox`: the services are copies of the example
//! (`outbox serve PATH STORE FIRST LAST`).

use shmq::{Due, Queue, QueueOptions, RecvError, SendOptions, StartAt};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, role, path, store, first, last] = &args[..] {
        if role == "serve" {
            return serve(
                Path::new(path),
                Path::new(store),
                first.parse()?,
                last.parse()?,
            );
        }
    }
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("payments");
    let store = dir.path().join("store.log");
    let q = QueueOptions::new().create(&path)?;
    q.ensure_group("ledger", StartAt::Latest)?;
    let mut ledger = q.consumer("ledger").attach()?;

    // The first service records payments 0..10 and is killed while
    // committing payment 5: recorded in its store, not yet published.
    let exe = std::env::current_exe()?;
    let serve = |first: &str, last: &str| {
        Command::new(&exe)
            .args([
                "serve",
                path.to_str().unwrap(),
                store.to_str().unwrap(),
                first,
                last,
            ])
            .stdout(Stdio::null())
            .status()
    };
    let st = Command::new(&exe)
        .args([
            "serve",
            path.to_str().unwrap(),
            store.to_str().unwrap(),
            "0",
            "10",
        ])
        .env("OUTBOX_DIE_AT", "5")
        .stdout(Stdio::null())
        .status()?;
    assert!(!st.success(), "the first service was to die");
    let pending = q.transactions()?;
    assert_eq!(pending.len(), 1, "payment 5 was left prepared: {pending:?}");
    println!(
        "a service died holding transaction {} prepared",
        pending[0].id
    );

    // Its successor resolves it from its store, then goes on.
    assert!(serve("6", "10")?.success());
    assert!(q.transactions()?.is_empty());

    let mut events = Vec::new();
    while let Ok(m) = ledger.try_recv() {
        events.push(String::from_utf8(m.payload)?);
    }
    let recorded = std::fs::read_to_string(&store)?;
    for p in 0..10 {
        let wanted = [format!("debit payment {p}"), format!("credit payment {p}")];
        let n = events.iter().filter(|e| wanted.contains(e)).count();
        // Recorded in the store if and only if published, both events once.
        let in_store = recorded.lines().any(|l| l == format!("payment {p}"));
        assert_eq!(n, if in_store { 2 } else { 0 }, "payment {p}");
        assert!(in_store, "payment {p} was recorded before its commit");
    }
    println!("10 payments recorded, their 20 events published once each");

    // A reminder, invisible until due; the waiting member releases it.
    let mut p = q.producer().attach()?;
    let due = Due::After(Duration::from_millis(50));
    let s = p.schedule(b"remind: settle the day", due, &SendOptions::new())?;
    assert_eq!(ledger.try_recv(), Err(RecvError::Empty));
    let m = ledger.recv_timeout(Duration::from_secs(10))?;
    assert!(shmq::clock::now_ns() >= s.due_ns);
    println!(
        "reminder delivered when due: {}",
        String::from_utf8(m.payload)?
    );
    Ok(())
}

/// A service: resolves what its predecessor left prepared, then records
/// payments `first..last`, each with its two events, both or neither. With
/// `OUTBOX_DIE_AT=N` it dies right after recording payment N.
fn serve(
    path: &Path,
    store: &Path,
    first: u64,
    last: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let q = Queue::open(path)?;
    let mut p = q.producer().name("payments").attach()?;
    let recorded = |txid: u64| -> bool {
        std::fs::read_to_string(store)
            .unwrap_or_default()
            .lines()
            .any(|l| l.ends_with(&format!("txn {txid}")))
    };
    for t in p.pending_transactions()? {
        if recorded(t.id) {
            p.commit_prepared(t.id)?;
        } else {
            p.abort_prepared(t.id)?;
        }
    }
    let die_at: Option<u64> = std::env::var("OUTBOX_DIE_AT")
        .ok()
        .and_then(|v| v.parse().ok());
    for pay in first..last {
        let mut tx = p.begin()?;
        tx.send(format!("debit payment {pay}").as_bytes())?;
        tx.send(format!("credit payment {pay}").as_bytes())?;
        let prepared = tx.prepare()?;
        // The local work, in one write: the payment and the transaction it
        // goes with.
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(store)?;
        f.write_all(format!("payment {pay}\ntxn {}\n", prepared.id()).as_bytes())?;
        f.sync_all()?;
        if die_at == Some(pay) {
            // SAFETY: kill(2) on our own pid; no memory is passed.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        }
        prepared.commit()?;
    }
    Ok(())
}
