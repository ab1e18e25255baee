//! Explicit acknowledgements: a message handed to a member that nacks it,
//! leaves or dies (SIGKILL) before acking is delivered again, flagged with its
//! attempt count; its ring slot stays pinned meanwhile; a group's
//! `max_attempts` ends the loop.
//!
//! The dying member is this test binary re-run as a helper
//! (`SHMQ_TEST_ROLE=take-and-hang`): it takes one message with explicit ack,
//! says which, and sleeps until killed.

mod common;

use common::{check_passes, stat};
use shmq::{Ack, AckError, Queue, QueueOptions, RecvError, SpillOptions, StartAt};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

const SHMQ: &str = env!("CARGO_BIN_EXE_shmq");
const WAIT: Duration = Duration::from_secs(20);

/// The helper's side. Does nothing unless run as the helper.
#[test]
fn helper_take_and_hang() {
    if std::env::var("SHMQ_TEST_ROLE").as_deref() != Ok("take-and-hang") {
        return;
    }
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes integers only.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    let q = Queue::open(std::env::var("SHMQ_TEST_QUEUE").unwrap()).unwrap();
    let mut c = q.consumer("g").ack(Ack::Explicit).attach().unwrap();
    let m = c.recv_timeout(WAIT).unwrap();
    let mut out = std::io::stdout();
    writeln!(out, "took {}", m.seq).unwrap();
    out.flush().unwrap();
    std::thread::sleep(Duration::from_secs(120));
}

fn take_and_hang(q: &Path) -> (Child, u64) {
    common::spawn_helper("helper_take_and_hang", "take-and-hang", q, "took ")
}

fn create(dir: &Path, capacity: u64, spill: bool) -> (PathBuf, Queue) {
    let path = dir.join("q");
    let q = QueueOptions::new()
        .capacity(capacity)
        .max_msg(960)
        // Small segments, so that retention has something to delete.
        .spill(spill.then(|| SpillOptions {
            segment_size: 4096,
            ..SpillOptions::new(dir.join("spill"))
        }))
        .create(&path)
        .unwrap();
    q.add_group("g", StartAt::Latest).unwrap();
    (path, q)
}

/// `shmq recv --ack explicit --json` for `n` messages: (seq, redelivered).
fn recv_explicit(q: &Path, n: u64) -> Vec<(u64, u64)> {
    let out = Command::new(SHMQ)
        .args([
            "recv",
            q.to_str().unwrap(),
            "g",
            "--ack",
            "explicit",
            "--json",
            "--count",
            &n.to_string(),
            "--timeout",
            "20s",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["seq"].as_u64().unwrap(),
                v["redelivered"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_member_killed_holding_a_message_gets_it_redelivered_and_its_slot_stays_pinned() {
    let dir = tempfile::tempdir().unwrap();
    // 4 KiB: 30 records of 100 bytes fill it; 100 messages must wrap it
    // several times around the pinned one.
    let (path, _q) = create(dir.path(), 4096, false);
    assert!(common::shmq_send_count(&path, 1).wait().unwrap().success());
    let (mut helper, took) = take_and_hang(&path);
    assert_eq!(took, 0);
    let st = stat(&path);
    assert_eq!(st["groups"][0]["members"][0]["unacked"][0], 0, "{st}");
    // Everything else goes to another member while the helper holds 0; the
    // ring wraps only up to the pinned record.
    let mut sender = common::shmq_send_count(&path, 100);
    let first = recv_explicit(&path, 20);
    assert_eq!(
        first,
        (1..21).map(|s| (s, 0)).collect::<Vec<_>>(),
        "others flow past the unacked message"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        sender.try_wait().unwrap().is_none(),
        "the pinned record must hold the producer back"
    );
    helper.kill().unwrap();
    helper.wait().unwrap();
    // The next member first gets the dead member's message, flagged, then
    // the rest; the sender, freed, finishes.
    let rest = recv_explicit(&path, 81);
    assert_eq!(rest[0], (0, 1), "redelivered first, attempt 1");
    assert_eq!(
        rest[1..],
        (21..101).map(|s| (s, 0)).collect::<Vec<_>>()[..],
        "then everything else once, in order"
    );
    assert!(sender.wait().unwrap().success());
    let st = stat(&path);
    let g = &st["groups"][0];
    assert_eq!(g["redelivered"], 1, "{st}");
    assert_eq!(g["pending"], 0, "{st}");
    assert_eq!(g["members"].as_array().unwrap().len(), 0, "{st}");
    check_passes(&path);
}

#[test]
fn nack_redelivers_to_any_member_until_max_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let (_path, q) = create(dir.path(), 64 << 10, false);
    q.set_max_attempts("g", 3).unwrap();
    let mut a = q.consumer("g").ack(Ack::Explicit).attach().unwrap();
    let mut b = q.consumer("g").ack(Ack::Explicit).attach().unwrap();
    let mut p = q.producer().attach().unwrap();
    p.send(b"poison").unwrap();
    p.send(b"fine").unwrap();

    let m = a.recv_timeout(WAIT).unwrap();
    assert_eq!((m.seq, m.redelivered), (0, 0));
    assert!(matches!(
        a.recv_timeout(WAIT),
        Err(RecvError::AckPending { seq: 0 })
    ));
    assert_eq!(
        a.ack(1),
        Err(AckError::NotHeld {
            seq: 1,
            held: Some(0)
        })
    );
    a.nack(0).unwrap();
    // Redeliveries come before new messages, to whichever member asks.
    let m = b.recv_timeout(WAIT).unwrap();
    assert_eq!(
        (m.seq, m.redelivered, &m.payload[..]),
        (0, 1, &b"poison"[..])
    );
    b.nack(0).unwrap();
    let m = a.recv_timeout(WAIT).unwrap();
    assert_eq!((m.seq, m.redelivered), (0, 2));
    a.nack(0).unwrap();
    // Three deliveries failed: given up, not delivered a fourth time.
    let m = b.recv_timeout(WAIT).unwrap();
    assert_eq!((m.seq, m.redelivered, &m.payload[..]), (1, 0, &b"fine"[..]));
    b.ack(1).unwrap();
    assert_eq!(b.ack(1), Err(AckError::NotHeld { seq: 1, held: None }));
    let g = &q.stat().groups[0];
    assert_eq!(
        (g.dead_lettered, g.redelivered, g.pending),
        (1, 2, 0),
        "{g:?}"
    );
    assert!(matches!(a.try_recv(), Err(RecvError::Empty)));
}

#[test]
fn a_member_leaving_without_acking_hands_its_message_to_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let (_path, q) = create(dir.path(), 64 << 10, false);
    let mut p = q.producer().attach().unwrap();
    for i in 0..3u8 {
        p.send(&[i]).unwrap();
    }
    {
        let mut c = q.consumer("g").ack(Ack::Explicit).attach().unwrap();
        assert_eq!(c.recv_timeout(WAIT).unwrap().seq, 0);
        // Dropped unacked: as good as a crash, minus the reaper.
    }
    assert_eq!(q.stat().groups[0].pending, 1);
    // An auto-ack member takes redeliveries too (and acks them at once).
    let mut c = q.consumer("g").attach().unwrap();
    let got: Vec<_> = (0..3)
        .map(|_| {
            let m = c.recv_timeout(WAIT).unwrap();
            (m.seq, m.redelivered)
        })
        .collect();
    assert_eq!(got, [(0, 1), (1, 0), (2, 0)]);
    assert_eq!(q.stat().groups[0].pending, 0);
    assert!(c.unacked().is_empty());
}

#[test]
fn an_unacked_message_read_from_the_spill_log_survives_retention() {
    let dir = tempfile::tempdir().unwrap();
    let (_path, q) = create(dir.path(), 4096, true);
    let mut p = q.producer().attach().unwrap();
    // Far more than the ring holds, with nobody reading: the group moves to
    // the log, which spans many segments.
    let n = 2000u32;
    for i in 0..n {
        p.send(&[i.to_le_bytes().as_slice(), &[7u8; 60]].concat())
            .unwrap();
    }
    q.spill_now().unwrap();
    assert!(q.stat().groups[0].on_disk, "the group should read the log");
    let segments = q.stat().spill.unwrap().segments;
    assert!(segments > 3, "{segments} segments");
    // B holds message 0, read from the log, unacknowledged.
    let mut b = q.consumer("g").ack(Ack::Explicit).attach().unwrap();
    assert_eq!(b.recv_timeout(WAIT).unwrap().seq, 0);
    // C reads everything else; rounds retire the segments it has read, but
    // not the one B's message is in.
    let mut c = q.consumer("g").attach().unwrap();
    for i in 1..n {
        assert_eq!(c.recv_timeout(WAIT).unwrap().seq, i as u64);
    }
    q.spill_now().unwrap();
    q.spill_now().unwrap();
    // B leaves without acking: its message, on disk, goes to a new member
    // (whose reader has no segment open yet).
    drop(b);
    drop(c);
    let mut c = q.consumer("g").attach().unwrap();
    let m = c.recv_timeout(WAIT).unwrap();
    assert_eq!((m.seq, m.redelivered), (0, 1));
    assert_eq!(&m.payload[..4], &0u32.to_le_bytes());
    // Once nothing needs them, the old segments go.
    q.spill_now().unwrap();
    let left = q.stat().spill.unwrap().segments;
    assert!(left < segments, "{left} of {segments} segments left");
}
