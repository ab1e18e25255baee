//! Transactional messages with real processes: a named producer's
//! transaction is published all at once, with consecutive sequence numbers,
//! exactly once, or never; one prepared survives its producer's SIGKILL
//! (at any step) and is resolved by the next producer under the name or by
//! `shmq txn`.

mod common;

use shmq::{Queue, QueueOptions, RecvError, StagedError, StartAt, TxnState};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn queue(dir: &Path) -> (PathBuf, Queue) {
    let path = dir.join("q");
    let q = QueueOptions::new().capacity(1 << 20).create(&path).unwrap();
    // Read by nobody: the ring keeps every message for `published`.
    q.add_group("audit", StartAt::Earliest).unwrap();
    (path, q)
}

/// Every message the queue retains: payload -> seqs.
fn published(q: &Queue) -> BTreeMap<String, Vec<u64>> {
    let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    q.dump(0, u64::MAX, |m| {
        out.entry(String::from_utf8(m.payload).unwrap())
            .or_default()
            .push(m.seq)
    })
    .unwrap();
    out
}

#[test]
fn a_commit_publishes_all_at_once_in_order_with_consecutive_seqs_among_other_producers() {
    let dir = tempfile::tempdir().unwrap();
    let (_, q) = queue(dir.path());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let noise = {
        let (q, stop) = (q.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut p = q.producer().attach().unwrap();
            let mut i = 0;
            // Bounded: group "audit" reads nothing, and the ring must keep
            // room for the transactions.
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && i < 4000 {
                p.send(format!("noise {i}").as_bytes()).unwrap();
                i += 1;
                if i % 64 == 0 {
                    std::thread::sleep(Duration::from_micros(100));
                }
            }
        })
    };
    let mut p = q.producer().name("payments").attach().unwrap();
    for t in 0..50u64 {
        let mut tx = p.begin().unwrap();
        for k in 0..1 + t % 7 {
            tx.send(format!("tx {t} part {k}").as_bytes()).unwrap();
        }
        let n = tx.len() as u64;
        let first = if t.is_multiple_of(2) {
            tx.prepare().unwrap().commit().unwrap()
        } else {
            tx.commit().unwrap()
        };
        let got = published(&q);
        for k in 0..n {
            assert_eq!(got[&format!("tx {t} part {k}")], [first + k], "tx {t}");
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    noise.join().unwrap();
    // Pseqs numbered on across transactions: 1 + 2 + ... per transaction.
    let total: u64 = (0..50).map(|t| 1 + t % 7).sum();
    assert_eq!(p.next_pseq(), Some(total));
    assert!(q.transactions().unwrap().is_empty());
}

#[test]
fn rollback_abort_and_drop_publish_nothing_and_limits_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (_, q) = queue(dir.path());
    let mut p = q.producer().name("payments").attach().unwrap();
    let mut tx = p.begin().unwrap();
    tx.send(b"rolled back").unwrap();
    tx.rollback();
    let mut tx = p.begin().unwrap();
    tx.send(b"dropped").unwrap();
    drop(tx);
    let mut tx = p.begin().unwrap();
    tx.send(b"aborted").unwrap();
    let prepared = tx.prepare().unwrap();
    let id = prepared.id();
    prepared.abort().unwrap();
    assert!(published(&q).is_empty());
    assert!(matches!(p.commit_prepared(id), Err(StagedError::UnknownTransaction(i)) if i == id));
    assert!(matches!(
        p.abort_prepared(id),
        Err(StagedError::UnknownTransaction(_))
    ));
    // Anonymous producers have none.
    let mut anon = q.producer().attach().unwrap();
    assert!(matches!(anon.begin(), Err(StagedError::NotNamed)));
    // A transaction must fit one claim.
    let mut tx = p.begin().unwrap();
    let big = vec![7u8; q.geometry().max_msg as usize];
    let mut refused = None;
    for _ in 0..64 {
        if let Err(e) = tx.send(&big) {
            refused = Some(e);
            break;
        }
    }
    assert!(
        matches!(
            refused,
            Some(StagedError::Send(shmq::SendError::TooLarge { .. }))
        ),
        "{refused:?}"
    );
    // What fit is still one transaction.
    let n = tx.len() as u64;
    let first = tx.commit().unwrap();
    assert_eq!(published(&q).len(), 1);
    assert_eq!(q.stat().tail_seq, first + n);
    // An empty one publishes nothing.
    let tail = q.stat().tail_seq;
    assert_eq!(
        p.begin().unwrap().prepare().unwrap().commit().unwrap(),
        tail
    );
    assert_eq!(q.stat().tail_seq, tail);
}

/// The producer's side: a transaction of `SHMQ_TEST_TXN_N` messages,
/// prepared, then committed (a crash point may kill it on the way).
#[test]
fn helper_txn() {
    let Ok(role) = std::env::var("SHMQ_TEST_ROLE") else {
        return;
    };
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes integers only.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    let q = Queue::open(std::env::var("SHMQ_TEST_QUEUE").unwrap()).unwrap();
    let mut p = q.producer().name("payments").attach().unwrap();
    match role.as_str() {
        "open" => {
            let mut tx = p.begin().unwrap();
            for k in 0..3 {
                tx.send(format!("open {k}").as_bytes()).unwrap();
            }
            println!("sent 3");
            std::thread::sleep(Duration::from_secs(60));
        }
        "commit" => {
            let mut tx = p.begin().unwrap();
            for k in 0..5 {
                tx.send(format!("txn {k}").as_bytes()).unwrap();
            }
            let prepared = tx.prepare().unwrap();
            println!("prepared {}", prepared.id());
            prepared.commit().unwrap();
            println!("committed 1");
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn a_producer_killed_with_a_transaction_open_publishes_none_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let (path, q) = queue(dir.path());
    let (mut child, n) = common::spawn_helper("helper_txn", "open", &path, "sent ");
    assert_eq!(n, 3);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(published(&q).is_empty());
    assert!(q.transactions().unwrap().is_empty());
    let mut p = q.producer().name("payments").attach().unwrap();
    assert!(p.pending_transactions().unwrap().is_empty());
}

#[test]
fn a_producer_killed_at_each_step_of_a_commit_leaves_it_prepared_or_published_exactly_once() {
    // Crash points, in the order a commit passes them; `None`: not killed.
    let points = [
        Some("txn-prepared"),
        Some("staged-marked"),
        Some("producer-written"),
        Some("producer-batch-rest-committed"),
        Some("producer-committed"),
        Some("producer-published"),
        Some("staged-published"),
        None,
    ];
    for point in points {
        for resolve_by_commit in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let (path, q) = queue(dir.path());
            let mut cmd = Command::new(std::env::current_exe().unwrap());
            cmd.args(["--exact", "helper_txn", "--nocapture", "--test-threads=1"])
                .env("SHMQ_TEST_ROLE", "commit")
                .env("SHMQ_TEST_QUEUE", &path)
                .stdout(Stdio::piped());
            if let Some(p) = point {
                cmd.env("SHMQ_CRASH_POINT", p);
            }
            let out = cmd.output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert_eq!(
                out.status.signal().is_some(),
                point.is_some(),
                "{point:?}: {stdout}"
            );
            // Known unless it was killed inside the prepare.
            let printed: Option<u64> = stdout
                .split("prepared ")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .and_then(|n| n.parse().ok());
            assert!(
                printed.is_some() || point == Some("txn-prepared"),
                "{point:?}: {stdout}"
            );
            // The successor under the name.
            let mut p = q.producer().name("payments").attach().unwrap();
            // Publishing under the name first takes no pseq of the
            // transaction's (its attach settled the dead one's commit).
            p.send(b"first").unwrap();
            let pending = p.pending_transactions().unwrap();
            let got = published(&q);
            let parts = (0..5)
                .filter(|k| got.contains_key(&format!("txn {k}")))
                .count();
            match pending.as_slice() {
                [] => assert_eq!(parts, 5, "{point:?}: neither pending nor published"),
                [t] => {
                    let txid = t.id;
                    assert!(printed.is_none_or(|p| p == txid), "{point:?}: {t:?}");
                    assert_eq!((t.messages, t.state), (5, TxnState::Prepared));
                    assert_eq!(parts, 0, "{point:?}: pending and published");
                    if resolve_by_commit {
                        p.commit_prepared(txid).unwrap();
                    } else {
                        p.abort_prepared(txid).unwrap();
                    }
                }
                more => panic!("{point:?}: {more:?}"),
            }
            // Whatever happened: all of it once, consecutive, or none.
            let got = published(&q);
            let seqs: Vec<u64> = (0..5)
                .filter_map(|k| {
                    got.get(&format!("txn {k}")).map(|s| {
                        assert_eq!(s.len(), 1, "{point:?}: txn {k} published as {s:?}");
                        s[0]
                    })
                })
                .collect();
            match seqs.len() {
                0 => assert!(!resolve_by_commit && !pending.is_empty(), "{point:?}: lost"),
                5 => assert!(
                    seqs.windows(2).all(|w| w[1] == w[0] + 1),
                    "{point:?}: {seqs:?}"
                ),
                n => panic!("{point:?}: {n} of 5 published"),
            }
            // The name numbers on past the transaction, never reusing its pseqs.
            p.send(b"after").unwrap();
            let mut audit = q.consumer("audit").attach().unwrap();
            let mut pseqs = Vec::new();
            while let Ok(m) = audit.try_recv() {
                pseqs.push(m.producer.unwrap().pseq);
            }
            assert!(
                pseqs.windows(2).all(|w| w[1] > w[0]),
                "{point:?}: {pseqs:?}"
            );
            assert!(q.transactions().unwrap().is_empty());
            assert!(q.check().ok(), "{point:?}: {:?}", q.check());
        }
    }
}

/// `shmq send --transaction` killed after the prepare; `shmq txn list`
/// shows it, `txn commit` publishes it once, `txn abort` another; the
/// name cannot be removed while one is pending; a live producer's
/// transactions are not touched by hand.
#[test]
fn shmq_txn_list_commit_and_abort_resolve_what_a_killed_sender_prepared() {
    let dir = tempfile::tempdir().unwrap();
    let (path, q) = common::queue_with_group(dir.path());
    let p = path.to_str().unwrap();
    let send_killed = |lines: &str| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_shmq"))
            .args(["send", p, "--producer", "ingest", "--transaction"])
            .env("SHMQ_CRASH_POINT", "txn-prepared")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(lines.as_bytes()).unwrap();
        assert_eq!(c.wait().unwrap().signal(), Some(libc::SIGKILL));
    };
    send_killed("a\nb\nc\n");
    send_killed("x\n");
    let list = common::shmq(&["txn", "list", p, "--json"]);
    let txns: Vec<serde_json::Value> = list
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(txns.len(), 2, "{list}");
    assert_eq!(txns[0]["producer"], "ingest");
    assert_eq!(txns[0]["state"], "prepared");
    assert_eq!(txns[0]["messages"], 3);
    assert!(common::shmq(&["stat", p]).contains("2 prepared transaction(s)"));
    let out = Command::new(env!("CARGO_BIN_EXE_shmq"))
        .args(["producer", "rm", p, "ingest"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("prepared transaction"));
    let (t0, t1) = (txns[0]["id"].to_string(), txns[1]["id"].to_string());
    // Refused while a live producer holds the name.
    let holder = q.producer().name("ingest").attach().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_shmq"))
        .args(["txn", "commit", p, "ingest", &t0])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
    drop(holder);
    let out = common::shmq(&["txn", "commit", p, "ingest", &t0]);
    assert!(out.contains("committed: 3 messages, seq 0..=2"), "{out}");
    common::shmq(&["txn", "abort", p, "ingest", &t1]);
    assert!(common::shmq(&["txn", "list", p]).contains("no prepared transactions"));
    let got = common::shmq(&["recv", p, "g", "--timeout", "200ms"]);
    assert_eq!(got, "a\nb\nc\n");
    // Committed once: again is refused.
    let out = Command::new(env!("CARGO_BIN_EXE_shmq"))
        .args(["txn", "commit", p, "ingest", &t0])
        .output()
        .unwrap();
    assert!(!out.status.success());
    common::shmq(&["producer", "rm", p, "ingest"]);
}

/// A producer process doing transactions in a loop (random sizes, commit
/// or abort, each decision logged before it is carried out and its outcome
/// after), SIGKILLed at random and restarted; each run first resolves what
/// its predecessor left prepared (commit if the txid is even). In the end
/// every transaction is published whole, once, with consecutive sequence
/// numbers, or not at all; every commit that returned is published, every
/// abort that returned is not.
#[test]
fn helper_txn_loop() {
    let Ok(log) = std::env::var("SHMQ_TEST_TXN_LOG") else {
        return;
    };
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes integers only.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    let q = Queue::open(std::env::var("SHMQ_TEST_QUEUE").unwrap()).unwrap();
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap();
    let mut line = |s: String| out.write_all(format!("{s}\n").as_bytes()).unwrap();
    let mut p = loop {
        match q.producer().name("payments").attach() {
            Ok(p) => break p,
            Err(shmq::ProducerError::Unsettled { .. } | shmq::ProducerError::NameInUse { .. }) => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(e) => panic!("{e}"),
        }
    };
    for t in p.pending_transactions().unwrap() {
        if t.id.is_multiple_of(2) {
            p.commit_prepared(t.id).unwrap();
            line(format!("committed {}", t.id));
        } else {
            p.abort_prepared(t.id).unwrap();
            line(format!("aborted {}", t.id));
        }
    }
    let mut x = shmq::clock::now_ns() | 1;
    loop {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut tx = p.begin().unwrap();
        let id = tx.id();
        let n = 1 + x % 6;
        for k in 0..n {
            tx.send(format!("t{id} {k}/{n}").as_bytes()).unwrap();
        }
        if x.is_multiple_of(5) {
            continue; // dropped: rolled back
        }
        let prepared = tx.prepare().unwrap();
        std::thread::sleep(Duration::from_micros(x % 300));
        if x.is_multiple_of(3) {
            prepared.abort().unwrap();
            line(format!("aborted {id}"));
        } else {
            prepared.commit().unwrap();
            line(format!("committed {id}"));
        }
    }
}

#[test]
fn a_producer_killed_at_random_publishes_each_transaction_whole_once_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let (path, q) = queue(dir.path());
    let log = dir.path().join("txn.log");
    let spawn = || {
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "helper_txn_loop",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("SHMQ_TEST_QUEUE", &path)
            .env("SHMQ_TEST_TXN_LOG", &log)
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut rng = common::Rng::new();
    let t0 = Instant::now();
    let mut kills = 0;
    while t0.elapsed() < Duration::from_millis(1500) && q.stat().tail_seq < 20_000 {
        let mut c = spawn();
        std::thread::sleep(Duration::from_millis(5 + rng.below(60)));
        c.kill().unwrap();
        c.wait().unwrap();
        kills += 1;
    }
    // A last run resolves what the last kill left, then is stopped.
    let mut c = spawn();
    let t1 = Instant::now();
    while !q.transactions().unwrap().is_empty() {
        assert!(t1.elapsed() < Duration::from_secs(10), "not resolved");
        std::thread::sleep(Duration::from_millis(5));
    }
    c.kill().unwrap();
    c.wait().unwrap();
    let mut by_txn: BTreeMap<u64, Vec<(u64, u64, u64)>> = BTreeMap::new();
    let got = published(&q);
    for (payload, seqs) in &got {
        assert_eq!(seqs.len(), 1, "{payload} published as {seqs:?}");
        let (t, kn) = payload[1..].split_once(' ').unwrap();
        let (k, n) = kn.split_once('/').unwrap();
        by_txn.entry(t.parse().unwrap()).or_default().push((
            seqs[0],
            k.parse().unwrap(),
            n.parse().unwrap(),
        ));
    }
    for (t, mut parts) in by_txn.clone() {
        parts.sort();
        let n = parts[0].2;
        assert_eq!(parts.len() as u64, n, "transaction {t} in part: {parts:?}");
        for (i, w) in parts.iter().enumerate() {
            assert_eq!(
                (w.0, w.1),
                (parts[0].0 + i as u64, i as u64),
                "transaction {t}: {parts:?}"
            );
        }
    }
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    let mut outcomes = 0;
    for l in log.lines() {
        let Some((what, id)) = l.split_once(' ') else {
            continue;
        };
        let Ok(id) = id.parse::<u64>() else {
            continue; // a line cut by a kill
        };
        match what {
            "committed" => assert!(by_txn.contains_key(&id), "committed {id} not published"),
            "aborted" => assert!(!by_txn.contains_key(&id), "aborted {id} published"),
            _ => continue,
        }
        outcomes += 1;
    }
    assert!(
        outcomes > 0 && kills > 5,
        "{outcomes} outcomes, {kills} kills"
    );
    assert!(q.check().ok(), "{:?}", q.check());
    let _ = RecvError::Empty;
}
