//! Ordering by key and time to live in one queue. Three competing workers
//! apply account events; events of one account must be applied one at a
//! time and in order (the group is ordered by key, the account is the key),
//! while different accounts go ahead in parallel. A price quote nobody takes
//! within its time to live is not handed to a worker: it goes to the
//! dead-letter group instead.
//!
//! `cargo run --example ordered`

use shmq::{Ack, QueueOptions, RecvError, SendOptions, StartAt};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ACCOUNTS: usize = 3;
const EVENTS: usize = 150;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let q = QueueOptions::new().create(dir.path().join("accounts"))?;
    q.add_dead_letter_group("stale")?;
    q.add_group("ledger", StartAt::Latest)?;
    q.set_ordered_by_key("ledger", true)?;
    q.set_dead_letter("ledger", Some("stale"))?;

    let mut p = q.producer().attach()?;
    // A quote good for one millisecond, which nobody takes in time.
    p.send_with(b"quote", &SendOptions::new().ttl(Duration::from_millis(1)))?;
    for i in 0..EVENTS {
        let account = format!("acct-{}", i % ACCOUNTS);
        let event = format!("{} {}", account, i / ACCOUNTS);
        p.send_with(
            event.as_bytes(),
            &SendOptions::new().key(account.as_bytes()),
        )?;
    }
    std::thread::sleep(Duration::from_millis(10));

    // Per account: the last event applied, and whether one is being applied.
    let ledger: Arc<Mutex<HashMap<String, (i64, bool)>>> = Arc::default();
    let applied = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let (q, ledger, applied) = (q.clone(), ledger.clone(), applied.clone());
            std::thread::spawn(move || -> Result<(), String> {
                let mut w = q
                    .consumer("ledger")
                    .ack(Ack::Explicit)
                    .attach()
                    .map_err(|e| e.to_string())?;
                while applied.load(Ordering::SeqCst) < EVENTS {
                    let m = match w.recv_timeout(Duration::from_millis(10)) {
                        Ok(m) => m,
                        Err(RecvError::Timeout) => continue,
                        Err(e) => return Err(e.to_string()),
                    };
                    let text = String::from_utf8_lossy(&m.payload).into_owned();
                    let (account, n) = text.split_once(' ').ok_or("an event")?;
                    let n: i64 = n.parse().map_err(|_| "an event number")?;
                    assert_eq!(m.key.as_deref(), Some(account.as_bytes()));
                    {
                        let mut l = ledger.lock().unwrap();
                        let e = l.entry(account.to_owned()).or_insert((-1, false));
                        assert!(!e.1, "two events of {account} at once");
                        assert_eq!(e.0 + 1, n, "{account}: event {n} after {}", e.0);
                        *e = (n, true);
                    }
                    std::thread::sleep(Duration::from_micros(50)); // the work
                    ledger.lock().unwrap().get_mut(account).unwrap().1 = false;
                    w.ack(m.seq).map_err(|e| e.to_string())?;
                    applied.fetch_add(1, Ordering::SeqCst);
                }
                Ok(())
            })
        })
        .collect();
    for w in workers {
        w.join().map_err(|_| "a worker panicked")??;
    }

    let mut stale = q.consumer("stale").attach()?;
    let letter = stale.recv_timeout(Duration::from_secs(5))?;
    assert_eq!(letter.payload, b"quote");
    let s = q.stat();
    let g = s.groups.iter().find(|g| g.name == "ledger").unwrap();
    println!(
        "{} events applied in order per account ({} parked behind their account's previous one); \
         the quote expired ({} expired) and went to 'stale' as seq {}",
        applied.load(Ordering::SeqCst),
        g.parked,
        g.ttl_expired,
        letter.seq
    );
    assert_eq!(g.ttl_expired, 1);
    Ok(())
}
