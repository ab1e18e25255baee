//! A producer killed with SIGKILL between its claim and its commit does not
//! wedge the queue: the claim is aborted (consumers skip its sequence number,
//! `stat` counts it), by a consumer waiting behind it or by a producer waiting
//! for the space it holds, and nothing else is lost or reordered.
//!
//! The dying producer is this test binary itself, re-run as a helper process
//! (`SHMQ_TEST_ROLE=claim-and-hang`): it publishes a few messages, claims room
//! for one more, writes half of it, says so, and sleeps until killed.

mod common;

use common::{check_passes, stat};
use shmq::{Queue, StartAt};
use std::io::Write;
use std::path::Path;
use std::process::Child;
use std::time::Duration;

/// The helper's side. Does nothing unless run as the helper.
#[test]
fn helper_claim_and_hang() {
    let sends = match std::env::var("SHMQ_TEST_ROLE").as_deref() {
        Ok("claim-and-hang") => 3,
        Ok("claim-first-and-hang") => 0,
        _ => return,
    };
    // Die with the test that started us, even if it fails before killing us.
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes integers only.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    let path = std::env::var("SHMQ_TEST_QUEUE").unwrap();
    let q = Queue::open(path).unwrap();
    let mut p = q.producer().attach().unwrap();
    for i in 0..sends {
        p.send(&[b'a' + i; 10]).unwrap();
    }
    let mut g = p.claim_send(100).unwrap();
    g.as_mut_slice()[..50].fill(b'X');
    let mut out = std::io::stdout();
    writeln!(out, "claimed {}", g.seq()).unwrap();
    out.flush().unwrap();
    std::thread::sleep(Duration::from_secs(120));
    g.commit();
}

/// Starts the helper on `q`; returns it and the sequence number it claimed.
fn claim_and_hang(q: &Path) -> (Child, u64) {
    common::spawn_helper("helper_claim_and_hang", "claim-and-hang", q, "claimed ")
}

fn create(dir: &Path, capacity: u64) -> std::path::PathBuf {
    common::small_queue(dir, capacity, StartAt::Latest)
}

/// Receives `n` messages from group "g", failing if any takes over 20 s.
fn recv(q: &Queue, n: usize) -> Vec<(u64, Vec<u8>)> {
    let mut c = q.consumer("g").attach().unwrap();
    (0..n)
        .map(|_| {
            let m = c
                .recv_timeout(Duration::from_secs(20))
                .expect("the queue is wedged");
            (m.seq, m.payload)
        })
        .collect()
}

#[test]
fn a_consumer_waiting_behind_a_dead_claim_aborts_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = create(dir.path(), 64 << 10);
    let (mut helper, claimed) = claim_and_hang(&path);
    assert_eq!(claimed, 3);
    // Published after the claim: behind it in the ring.
    assert!(common::shmq_send_count(&path, 50).wait().unwrap().success());
    let st = stat(&path);
    assert_eq!(st["producers"][0]["claim_seq"], claimed, "{st}");
    assert_eq!(st["producers"][0]["alive"], true, "{st}");
    let q = Queue::open(&path).unwrap();
    let consumer = {
        let q = q.clone();
        std::thread::spawn(move || recv(&q, 53))
    };
    // The consumer gets the first three and waits behind the claim.
    std::thread::sleep(Duration::from_millis(300));
    helper.kill().unwrap();
    helper.wait().unwrap();
    let got = consumer.join().unwrap();
    let seqs: Vec<u64> = got.iter().map(|m| m.0).collect();
    let want: Vec<u64> = (0..3).chain(4..54).collect();
    assert_eq!(
        seqs, want,
        "the aborted sequence number is skipped, nothing else"
    );
    for (i, (_, p)) in got.iter().take(3).enumerate() {
        assert_eq!(p, &vec![b'a' + i as u8; 10]);
    }
    assert!(got[3..]
        .iter()
        .all(|(_, p)| p.len() == 100 && !p.contains(&b'X')));
    let st = stat(&path);
    assert_eq!(st["aborted"], 1, "{st}");
    assert_eq!(
        st["producers"].as_array().unwrap().len(),
        0,
        "dead slot freed: {st}"
    );
    check_passes(&path);
}

/// A consumer that had waited long enough to look at TAIL and settle (nothing
/// stuck) when a producer claimed and died is not wedged either: it looks
/// again after a while (`IDLE_RECHECK`), even though the commit behind the
/// claim woke it without ending its wait. No other producer recovers here:
/// the sender registered before the helper died and never finds the ring full.
#[test]
fn a_consumer_already_waiting_when_a_claim_dies_aborts_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = create(dir.path(), 64 << 10);
    let q = Queue::open(&path).unwrap();
    let consumer = {
        let q = q.clone();
        std::thread::spawn(move || {
            let mut c = q.consumer("g").attach().unwrap();
            c.recv_timeout(Duration::from_secs(20))
                .map(|m| (m.seq, m.payload))
        })
    };
    // The consumer waits on the empty queue and settles.
    std::thread::sleep(Duration::from_millis(300));
    let mut p = q.producer().attach().unwrap();
    let (mut helper, claimed) = common::spawn_helper(
        "helper_claim_and_hang",
        "claim-first-and-hang",
        &path,
        "claimed ",
    );
    assert_eq!(claimed, 0);
    helper.kill().unwrap();
    helper.wait().unwrap();
    assert_eq!(p.send(b"behind the dead claim").unwrap(), 1);
    let (seq, payload) = consumer.join().unwrap().expect("the consumer is wedged");
    assert_eq!((seq, &payload[..]), (1, &b"behind the dead claim"[..]));
    assert_eq!(stat(&path)["aborted"], 1);
}

#[test]
fn a_producer_waiting_for_space_held_by_a_dead_claim_aborts_it() {
    let dir = tempfile::tempdir().unwrap();
    // 4 KiB: the sender below fills it behind the claim and must wait.
    let path = create(dir.path(), 4096);
    let (mut helper, claimed) = claim_and_hang(&path);
    // Drain what was committed before the claim, and leave.
    let q = Queue::open(&path).unwrap();
    assert_eq!(recv(&q, 3).len(), 3);
    let mut sender = common::shmq_send_count(&path, 200);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        sender.try_wait().unwrap().is_none(),
        "the ring should be full"
    );
    helper.kill().unwrap();
    helper.wait().unwrap();
    // No consumer is running: the waiting sender must recover on its own.
    let t0 = std::time::Instant::now();
    while stat(&path)["aborted"] != 1 {
        assert!(t0.elapsed() < Duration::from_secs(10), "not recovered");
        std::thread::sleep(Duration::from_millis(20));
    }
    let consumer = {
        let q = q.clone();
        std::thread::spawn(move || recv(&q, 200))
    };
    assert!(sender.wait().unwrap().success());
    let got = consumer.join().unwrap();
    let seqs: Vec<u64> = got.iter().map(|m| m.0).collect();
    assert_eq!(seqs, ((claimed + 1)..(claimed + 201)).collect::<Vec<_>>());
    assert_eq!(stat(&path)["aborted"], 1);
}

/// The helper for `a_batch_killed_mid_commit_is_delivered_to_nobody`:
/// publishes two messages, then a batch of five, and is killed by the crash
/// point between committing the batch's later records and its first.
#[test]
fn helper_batch_and_die() {
    if std::env::var("SHMQ_TEST_ROLE").as_deref() != Ok("batch-and-die") {
        return;
    }
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes integers only.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    let q = Queue::open(std::env::var("SHMQ_TEST_QUEUE").unwrap()).unwrap();
    let mut p = q.producer().attach().unwrap();
    p.send(b"before 0").unwrap();
    p.send(b"before 1").unwrap();
    let mut out = std::io::stdout();
    writeln!(out, "sent 2").unwrap();
    out.flush().unwrap();
    let batch: Vec<Vec<u8>> = (0..5).map(|i| format!("batch {i}").into_bytes()).collect();
    let refs: Vec<&[u8]> = batch.iter().map(|b| &b[..]).collect();
    p.send_batch(&refs).unwrap();
    unreachable!("the crash point kills this process in send_batch");
}

/// A producer SIGKILLed in the middle of committing a batch (four of its five
/// records committed, the first not): no group ever sees any of the batch.
/// The recovery aborts all five sequence numbers, the committed four too,
/// and what came before and after is delivered in order.
#[test]
fn a_batch_killed_mid_commit_is_delivered_to_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::small_queue(dir.path(), 64 << 10, StartAt::Earliest);
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_batch_and_die",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SHMQ_TEST_ROLE", "batch-and-die")
        .env("SHMQ_TEST_QUEUE", &path)
        .env("SHMQ_CRASH_POINT", "producer-batch-rest-committed")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    let q = Queue::open(&path).unwrap();
    assert_eq!(q.stat().tail_seq, 7, "the batch was claimed");
    q.producer().attach().unwrap().send(b"after").unwrap();
    let got = recv(&q, 3);
    assert_eq!(
        got,
        [
            (0, b"before 0".to_vec()),
            (1, b"before 1".to_vec()),
            (7, b"after".to_vec())
        ]
    );
    let mut c = q.consumer("g").attach().unwrap();
    assert!(c.try_recv().is_err(), "nothing else");
    let st = stat(&path);
    assert_eq!(st["aborted"], 1, "{st}");
    check_passes(&path);
}
