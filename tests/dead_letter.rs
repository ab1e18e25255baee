//! Dead-letter groups: a message a group gives up after its `max_attempts`
//! goes to the group's dead-letter group, which receives nothing else; every
//! other group receives the message once, and no group sees the dead letter.
//! Also through the spill log (a dead-letter group nobody reads falls a ring
//! behind), over the command line, and across a member killed while giving
//! a message up.

mod common;

use common::stat;
use shmq::{Ack, GroupError, Queue, QueueOptions, RecvError, SpillOptions, StartAt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const SHMQ: &str = env!("CARGO_BIN_EXE_shmq");
const WAIT: Duration = Duration::from_secs(20);

/// Groups "dlq" (dead letters), "g" (gives up after 2 deliveries, to "dlq")
/// and "other" (an ordinary group).
fn create(dir: &Path, capacity: u64, spill: bool) -> (PathBuf, Queue) {
    let path = dir.join("q");
    let q = QueueOptions::new()
        .capacity(capacity)
        .max_msg(1024)
        .spill(spill.then(|| SpillOptions::new(dir.join("spill"))))
        .create(&path)
        .unwrap();
    q.add_dead_letter_group("dlq").unwrap();
    q.add_group("g", StartAt::Latest).unwrap();
    q.add_group("other", StartAt::Latest).unwrap();
    q.set_max_attempts("g", 2).unwrap();
    q.set_dead_letter("g", Some("dlq")).unwrap();
    (path, q)
}

/// What `drain` gets of a message: (seq, payload, from, and the sequence
/// number a dead letter had).
type Got = (u64, Vec<u8>, Option<u64>, Option<u64>);

/// Receives everything group `name` has now.
fn drain(q: &Queue, name: &str) -> Vec<Got> {
    let mut c = q.consumer(name).attach().unwrap();
    let mut got = Vec::new();
    loop {
        match c.try_recv() {
            Ok(m) => got.push((m.seq, m.payload, m.dead_letter_from, m.dead_letter_seq)),
            Err(RecvError::Empty) => return got,
            Err(e) => panic!("{name}: {e}"),
        }
    }
}

/// Member of "g" with explicit ack: nacks `poison` every time, acks the rest,
/// until nothing is left.
fn consume_g(q: &Queue, poison: &[u8]) -> Vec<(u64, u64)> {
    let mut c = q.consumer("g").ack(Ack::Explicit).attach().unwrap();
    let mut got = Vec::new();
    loop {
        match c.try_recv() {
            Ok(m) => {
                got.push((m.seq, m.redelivered));
                if m.payload == poison {
                    c.nack(m.seq).unwrap();
                } else {
                    c.ack(m.seq).unwrap();
                }
            }
            Err(RecvError::Empty) => return got,
            Err(e) => panic!("g: {e}"),
        }
    }
}

#[test]
fn a_given_up_message_goes_to_the_dead_letter_group_only() {
    let dir = tempfile::tempdir().unwrap();
    let (_path, q) = create(dir.path(), 64 << 10, false);
    let mut p = q.producer().attach().unwrap();
    for i in 0..5 {
        p.send(format!("m{i}").as_bytes()).unwrap();
    }
    let got = consume_g(&q, b"m2");
    // m2 delivered twice (0 and 1 earlier deliveries), then given up.
    assert_eq!(
        got,
        vec![(0, 0), (1, 0), (2, 0), (2, 1), (3, 0), (4, 0)],
        "{got:?}"
    );
    let dl = drain(&q, "dlq");
    assert_eq!(dl.len(), 1, "{dl:?}");
    let (seq, payload, from, was) = &dl[0];
    assert_eq!(&payload[..], b"m2");
    // A new record after the five messages; it names the group that gave up
    // and the sequence number the message had.
    assert_eq!(*seq, 5);
    assert_eq!(*was, Some(2));
    assert_eq!(
        q.group_name(from.expect("a dead letter")).as_deref(),
        Some("g")
    );
    // The other group has the five messages, not the dead letter.
    let other = drain(&q, "other");
    let seqs: Vec<u64> = other.iter().map(|m| m.0).collect();
    assert_eq!(seqs, vec![0, 1, 2, 3, 4]);
    assert!(other.iter().all(|m| m.2.is_none() && m.3.is_none()));
    // And g does not get it back either.
    assert!(consume_g(&q, b"m2").is_empty());
    let s = q.stat();
    let g = s.groups.iter().find(|g| g.name == "g").unwrap();
    assert_eq!((g.dead_lettered, g.pending), (1, 0), "{g:?}");
    assert_eq!(g.dead_letter.as_deref(), Some("dlq"));
    let dlq = s.groups.iter().find(|g| g.name == "dlq").unwrap();
    assert!(dlq.dead_letters_only && !g.dead_letters_only);
    // Only a dead-letter group can be a target.
    assert!(matches!(
        q.set_dead_letter("g", Some("other")),
        Err(GroupError::NotDeadLetter(_))
    ));
    // Removing the dead-letter group sends g back to counting.
    q.remove_group("dlq").unwrap();
    let s = q.stat();
    let g = s.groups.iter().find(|g| g.name == "g").unwrap();
    assert_eq!(g.dead_letter, None);
}

#[test]
fn a_dead_letter_group_that_fell_behind_reads_its_letters_from_the_spill_log() {
    let dir = tempfile::tempdir().unwrap();
    let (_path, q) = create(dir.path(), 8192, true);
    let mut p = q.producer().attach().unwrap();
    p.send(b"poison").unwrap();
    assert_eq!(consume_g(&q, b"poison").len(), 2);
    // Many ring laps after the dead letter: nobody reads "dlq" (or "other"),
    // so both go to the spill log, dead letter included.
    for i in 0..2000u32 {
        p.send(&i.to_le_bytes().repeat(16)).unwrap();
    }
    assert_eq!(consume_g(&q, b"poison").len(), 2000);
    let s = q.stat();
    let dlq = s.groups.iter().find(|g| g.name == "dlq").unwrap();
    assert!(dlq.on_disk, "{dlq:?}");
    let dl = drain(&q, "dlq");
    assert_eq!(dl.len(), 1, "{dl:?}");
    assert_eq!(&dl[0].1[..], b"poison");
    assert_eq!(q.group_name(dl[0].2.unwrap()).as_deref(), Some("g"));
    // Read back from the log with its origin extension.
    assert_eq!(dl[0].3, Some(0));
    let other = drain(&q, "other");
    assert_eq!(other.len(), 2001);
    assert!(other.iter().all(|m| m.2.is_none() && m.3.is_none()));
}

#[test]
fn the_command_line_sets_up_dead_letters_and_shows_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q");
    let q = path.to_str().unwrap();
    common::shmq_ok(&["create", q]);
    // A target must exist and be a dead-letter group; a refused add adds nothing.
    let add_g = [
        "group",
        "add",
        q,
        "g",
        "--max-attempts",
        "1",
        "--dead-letter",
        "dlq",
    ];
    let out = Command::new(SHMQ).args(add_g).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown group 'dlq'"));
    common::shmq_ok(&["group", "add", q, "dlq", "--dead-letters"]);
    common::shmq_ok(&add_g);
    let s = stat(&path);
    let groups = s["groups"].as_array().unwrap();
    let find = |n: &str| groups.iter().find(|g| g["name"] == n).unwrap().clone();
    assert_eq!(find("g")["dead_letter"], "dlq");
    assert_eq!(find("dlq")["dead_letters_only"], true);
    // One message, nacked once: given up at once.
    let queue = Queue::open(&path).unwrap();
    queue
        .producer()
        .attach()
        .unwrap()
        .send(b"bad input")
        .unwrap();
    let mut c = queue.consumer("g").ack(Ack::Explicit).attach().unwrap();
    let m = c.recv_timeout(WAIT).unwrap();
    c.nack(m.seq).unwrap();
    assert!(matches!(c.try_recv(), Err(RecvError::Empty)));
    drop(c);
    let out = common::shmq(&[
        "recv",
        q,
        "dlq",
        "--json",
        "--count",
        "1",
        "--timeout",
        "20s",
    ]);
    let line: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(line["payload"], "bad input");
    assert_eq!(line["dead_letter_from"], "g");
    assert_eq!(line["dead_letter_seq"], m.seq);
    assert_eq!(
        stat(&path)["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == "g")
            .unwrap()["dead_lettered"],
        1
    );
}

/// The helper's side: a member of "g" that nacks the one message until it is
/// given up, and is killed (its own `SHMQ_CRASH_POINT`, named in its role)
/// while it publishes the dead letter: after its claim,
/// before the commit (`dead-letter-claimed`), or right after the commit,
/// before settling the message (`dead-letter-published`).
#[test]
fn helper_give_up_and_die() {
    let role = std::env::var("SHMQ_TEST_ROLE").unwrap_or_default();
    let Some(point) = role.strip_prefix("give-up-and-die:") else {
        return;
    };
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes integers only.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    // Read once, on first use, after this (no other thread reads the
    // environment here).
    std::env::set_var("SHMQ_CRASH_POINT", point);
    let q = Queue::open(std::env::var("SHMQ_TEST_QUEUE").unwrap()).unwrap();
    let mut c = q.consumer("g").ack(Ack::Explicit).attach().unwrap();
    println!("member 0");
    for _ in 0..2 {
        let m = c.recv_timeout(WAIT).unwrap();
        c.nack(m.seq).unwrap();
    }
    // Gives the message up: publishes it to "dlq" and dies there.
    let _ = c.try_recv();
    panic!("the crash point was not reached");
}

/// A member killed while it gives a message up: the dead-letter group gets
/// the message exactly once, whether the member died before or after its
/// dead letter was committed, and `g` never sees it again.
///
/// With `full`, the ring is full behind group "other" (no member), so the
/// dead letter finds no room and is handed over instead (the entry moves to
/// the dead-letter group's table): the member dies with the arrival
/// claimed (`hand-over-arriving`) or committed (`hand-over-committed`).
fn killed_while_giving_up(point: &str, published: bool, full: bool) {
    let dir = tempfile::tempdir().unwrap();
    let (path, q) = if full {
        // Filled before the dead-letter group exists, so that no room was
        // kept for dead letters either.
        let path = dir.path().join("q");
        let opts = QueueOptions::new().capacity(64 << 10).max_msg(1024);
        let q = opts.create(&path).unwrap();
        q.add_group("g", StartAt::Latest).unwrap();
        q.add_group("other", StartAt::Latest).unwrap();
        let mut p = q.producer().attach().unwrap();
        p.send(b"poison").unwrap();
        for len in [1000, 0] {
            while p.try_send(&vec![7; len]).is_ok() {}
        }
        q.add_dead_letter_group("dlq").unwrap();
        q.set_max_attempts("g", 2).unwrap();
        q.set_dead_letter("g", Some("dlq")).unwrap();
        (path, q)
    } else {
        let (path, q) = create(dir.path(), 64 << 10, false);
        q.producer().attach().unwrap().send(b"poison").unwrap();
        (path, q)
    };
    let role = format!("give-up-and-die:{point}");
    let (mut child, _) = common::spawn_helper("helper_give_up_and_die", &role, &path, "member ");
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    // Reaped: the forward is settled by its dead letter's record. Committed,
    // the message is done; claimed only (aborted by the recovery), it is
    // pending, and the next member gives it up.
    assert_eq!(q.reap_dead_members(), 1);
    let g = consume_g(&q, b"poison");
    assert!(g.iter().all(|&(s, r)| s != 0 && r == 0), "{point}: {g:?}");
    let dl = drain(&q, "dlq");
    assert_eq!(dl.len(), 1, "{point}: {dl:?}");
    assert_eq!(&dl[0].1[..], b"poison");
    assert_eq!(dl[0].3, Some(0));
    // Handed over, the dead letter is the original record.
    assert_eq!(dl[0].0 == 0, full, "{point}: {dl:?}");
    let s = q.stat();
    let g = s.groups.iter().find(|g| g.name == "g").unwrap();
    assert_eq!((g.pending, g.dead_lettered), (0, 1), "{point}: {g:?}");
    assert!(g.members.iter().all(|m| m.unacked.is_empty()), "{g:?}");
    assert_eq!(s.aborted, u64::from(!published && !full), "{point}: {s:?}");
    assert!(q.check().ok(), "{:?}", q.check().problems);
}

#[test]
fn a_member_killed_after_publishing_a_dead_letter_gives_it_up_exactly_once() {
    killed_while_giving_up("dead-letter-published", true, false);
}

#[test]
fn a_member_killed_after_handing_a_dead_letter_over_gives_it_up_exactly_once() {
    killed_while_giving_up("hand-over-committed", true, true);
}

#[test]
fn a_member_killed_while_handing_a_dead_letter_over_gives_it_up_exactly_once() {
    killed_while_giving_up("hand-over-arriving", false, true);
}

#[test]
fn a_member_killed_before_committing_a_dead_letter_gives_it_up_exactly_once() {
    killed_while_giving_up("dead-letter-claimed", false, false);
}
