//! Delayed delivery with real processes: messages scheduled for later are
//! invisible until due, then reach every group, each published exactly
//! once, also when the scheduler, the releaser (at each step of a release)
//! or every process is SIGKILLed.

mod common;

use shmq::{Ack, Due, Queue, QueueOptions, RecvError, SendOptions, StartAt};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

fn now_ns() -> u64 {
    shmq::clock::now_ns()
}

fn queue(dir: &Path) -> (PathBuf, Queue) {
    let path = dir.join("q");
    let q = QueueOptions::new().capacity(1 << 20).create(&path).unwrap();
    for g in ["a", "b"] {
        q.add_group(g, StartAt::Earliest).unwrap();
    }
    (path, q)
}

fn after(ms: u64) -> Due {
    Due::After(Duration::from_millis(ms))
}

/// Every message the queue retains (a group that has not read them keeps
/// them): payload -> seqs it was published as.
fn published(q: &Queue) -> BTreeMap<Vec<u8>, Vec<u64>> {
    let mut out: BTreeMap<Vec<u8>, Vec<u64>> = BTreeMap::new();
    q.dump(0, u64::MAX, |m| {
        out.entry(m.payload).or_default().push(m.seq)
    })
    .unwrap();
    out
}

#[test]
fn scheduled_messages_are_invisible_until_due_then_reach_every_group_in_due_order() {
    let dir = tempfile::tempdir().unwrap();
    let (_, q) = queue(dir.path());
    let mut a = q.consumer("a").attach().unwrap();
    let mut p = q.producer().attach().unwrap();
    let opts = SendOptions::new();
    let late = p.schedule(b"late", after(300), &opts).unwrap();
    let early = p.schedule(b"early", after(100), &opts).unwrap();
    let middle = p.schedule(b"middle", after(200), &opts).unwrap();
    p.send(b"now").unwrap();
    assert_eq!(a.try_recv().unwrap().payload, b"now");
    assert_eq!(a.try_recv(), Err(RecvError::Empty));
    let st = q.stat().staged;
    assert_eq!((st.scheduled, st.next_due_ns), (3, Some(early.due_ns)));
    let mut seqs = Vec::new();
    for (s, name) in [(early, "early"), (middle, "middle"), (late, "late")] {
        let m = a.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(now_ns() >= s.due_ns, "{name} delivered before it was due");
        assert!(m.ts_ns >= s.due_ns, "{name} published before it was due");
        assert_eq!(m.payload, name.as_bytes());
        let tag = m.producer.expect("released by the queue's own producer");
        assert_eq!(
            q.producer_name(tag.id).as_deref(),
            Some(shmq::RELEASER_NAME)
        );
        seqs.push(m.seq);
    }
    // Sequence numbers are given at release, after what came before.
    assert_eq!(seqs, [1, 2, 3]);
    let mut b = q.consumer("b").attach().unwrap();
    let got: Vec<Vec<u8>> = b.try_iter().map(|m| m.unwrap().payload).collect();
    assert_eq!(got, [&b"now"[..], b"early", b"middle", b"late"]);
    assert_eq!(q.stat().staged.scheduled, 0);
    assert!(q.check().ok(), "{:?}", q.check());
}

#[test]
fn a_due_time_past_is_delivered_at_once_and_key_and_ttl_go_with_the_message() {
    let dir = tempfile::tempdir().unwrap();
    let (_, q) = queue(dir.path());
    let mut a = q.consumer("a").attach().unwrap();
    let mut p = q.producer().name("orders").attach().unwrap();
    let past = SystemTime::now() - Duration::from_secs(60);
    p.schedule(b"overdue", Due::At(past), &SendOptions::new())
        .unwrap();
    assert_eq!(a.try_recv().unwrap().payload, b"overdue");
    // A TTL shorter than the delay: it counts from the release.
    let opts = SendOptions::new()
        .key(b"acct-7")
        .ttl(Duration::from_millis(500));
    p.schedule(b"keyed", after(50), &opts).unwrap();
    let m = a.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(m.key.as_deref(), Some(&b"acct-7"[..]));
    assert_eq!(m.ttl, Some(Duration::from_millis(500)));
    // No pseq of the scheduling producer was used.
    assert_eq!(p.next_pseq(), Some(0));
    // Refused like a send: too large, key too long.
    let big = vec![0u8; q.geometry().max_msg as usize + 1];
    assert!(matches!(
        p.schedule(&big, after(1), &SendOptions::new()),
        Err(shmq::StagedError::Send(shmq::SendError::TooLarge { .. }))
    ));
    // Users cannot take the releasing producer's name.
    assert!(matches!(
        q.producer().name(shmq::RELEASER_NAME).attach(),
        Err(shmq::ProducerError::InvalidName(_))
    ));
}

/// Helper process roles: "scheduler" schedules 20 messages then waits to be
/// killed; "releaser" releases what is due (killed at a crash point).
#[test]
fn helper_delay() {
    let Ok(role) = std::env::var("SHMQ_TEST_ROLE") else {
        return;
    };
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes integers only.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    let q = Queue::open(std::env::var("SHMQ_TEST_QUEUE").unwrap()).unwrap();
    match role.as_str() {
        "scheduler" => {
            let mut p = q.producer().attach().unwrap();
            for i in 0..20u64 {
                let due = after(100 + 10 * (19 - i));
                p.schedule(format!("m{i}").as_bytes(), due, &SendOptions::new())
                    .unwrap();
            }
            println!("scheduled 20");
            std::thread::sleep(Duration::from_secs(60));
        }
        "releaser" => {
            println!("releasing 1");
            let r = q.release_due();
            println!("released {r:?}");
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn scheduled_messages_survive_every_process_being_killed() {
    let dir = tempfile::tempdir().unwrap();
    let (path, q) = queue(dir.path());
    let (mut child, n) = common::spawn_helper("helper_delay", "scheduler", &path, "scheduled ");
    assert_eq!(n, 20);
    child.kill().unwrap();
    child.wait().unwrap();
    // Nobody polls: due, and still waiting in their files.
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(q.stat().staged.scheduled, 20);
    assert_eq!(q.stat().tail_seq, 0);
    // The first member to attach releases them, in due order.
    let mut a = q.consumer("a").attach().unwrap();
    let got: Vec<String> = a
        .try_iter()
        .map(|m| String::from_utf8(m.unwrap().payload).unwrap())
        .collect();
    let want: Vec<String> = (0..20).rev().map(|i| format!("m{i}")).collect();
    assert_eq!(got, want);
    assert_eq!(q.stat().staged.scheduled, 0);
}

#[test]
fn a_releaser_killed_at_each_step_publishes_every_message_exactly_once() {
    for point in [
        "staged-marked",
        "producer-written",
        "producer-committed",
        "producer-published",
        "staged-published",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (path, q) = queue(dir.path());
        let mut p = q.producer().attach().unwrap();
        for i in 0..5 {
            p.schedule(format!("m{i}").as_bytes(), after(30), &SendOptions::new())
                .unwrap();
        }
        std::thread::sleep(Duration::from_millis(40));
        let st = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "helper_delay", "--nocapture", "--test-threads=1"])
            .env("SHMQ_TEST_ROLE", "releaser")
            .env("SHMQ_TEST_QUEUE", &path)
            .env("SHMQ_CRASH_POINT", point)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(st.signal(), Some(libc::SIGKILL), "{point}: not reached");
        // Another releaser settles what the dead one left and goes on.
        let t0 = Instant::now();
        while q.stat().staged.scheduled > 0 {
            assert!(t0.elapsed() < Duration::from_secs(10), "{point}: stuck");
            let _ = q.release_due();
            std::thread::sleep(Duration::from_millis(5));
        }
        let published = published(&q);
        for i in 0..5 {
            let seqs = &published[format!("m{i}").as_bytes()];
            assert_eq!(seqs.len(), 1, "{point}: m{i} published as {seqs:?}");
        }
        assert_eq!(published.len(), 5, "{point}: {published:?}");
        let mut a = q.consumer("a").attach().unwrap();
        assert_eq!(a.try_iter().count(), 5, "{point}");
        assert!(q.check().ok(), "{point}: {:?}", q.check());
    }
}

/// A member of group `SHMQ_TEST_GROUP` (explicit acks) that logs `seq
/// payload recv_ns` for each message it takes, until the stop file appears.
#[test]
fn helper_delay_member() {
    let Ok(log) = std::env::var("SHMQ_TEST_DELAY_LOG") else {
        return;
    };
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes integers only.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    let q = Queue::open(std::env::var("SHMQ_TEST_QUEUE").unwrap()).unwrap();
    let stop = PathBuf::from(std::env::var("SHMQ_TEST_STOP").unwrap());
    let group = std::env::var("SHMQ_TEST_GROUP").unwrap();
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap();
    let mut c = q.consumer(&group).ack(Ack::Explicit).attach().unwrap();
    while !stop.exists() {
        let m = match c.recv_timeout(Duration::from_millis(20)) {
            Ok(m) => m,
            Err(RecvError::Timeout) => continue,
            Err(e) => panic!("{e}"),
        };
        let t = now_ns();
        out.write_all(
            format!("{} {} {t}\n", m.seq, String::from_utf8(m.payload).unwrap()).as_bytes(),
        )
        .unwrap();
        c.ack(m.seq).unwrap();
    }
}

fn spawn_member(path: &Path, dir: &Path, group: &str, n: usize) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_delay_member",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SHMQ_TEST_QUEUE", path)
        .env("SHMQ_TEST_GROUP", group)
        .env("SHMQ_TEST_DELAY_LOG", dir.join(format!("{group}{n}.log")))
        .env("SHMQ_TEST_STOP", dir.join("stop"))
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

/// Two groups of two member processes each, killed at random and replaced
/// while a producer schedules 300 messages (random delays up to 400 ms)
/// among 300 plain ones: each is published exactly once, none before it
/// was due, and every group gets every one.
#[test]
fn members_killed_at_random_while_messages_come_due_lose_and_duplicate_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (path, q) = queue(dir.path());
    // Read by nobody: the ring keeps every message for `published`.
    q.add_group("audit", StartAt::Earliest).unwrap();
    let mut rng = common::Rng::new();
    let seed = rng.below(u64::MAX) | 1;
    let producer = {
        let q = q.clone();
        std::thread::spawn(move || {
            let mut p = q.producer().attach().unwrap();
            let mut x = seed;
            let mut due = HashMap::new();
            for i in 0..300u64 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let s = p
                    .schedule(
                        format!("d{i}").as_bytes(),
                        after(x % 400),
                        &SendOptions::new(),
                    )
                    .unwrap();
                due.insert(format!("d{i}"), s.due_ns);
                p.send(format!("p{i}").as_bytes()).unwrap();
                std::thread::sleep(Duration::from_millis(x % 5));
            }
            due
        })
    };
    let groups = ["a", "b"];
    let mut next = 0;
    let mut members: Vec<(usize, Child)> = Vec::new();
    for (g, name) in groups.iter().enumerate() {
        for _ in 0..2 {
            members.push((g, spawn_member(&path, dir.path(), name, next)));
            next += 1;
        }
    }
    let t0 = Instant::now();
    let mut kills = 0;
    while t0.elapsed() < Duration::from_millis(1800) {
        std::thread::sleep(Duration::from_millis(20 + rng.below(60)));
        let i = rng.below(members.len() as u64) as usize;
        members[i].1.kill().unwrap();
        members[i].1.wait().unwrap();
        let g = members[i].0;
        members[i].1 = spawn_member(&path, dir.path(), groups[g], next);
        next += 1;
        kills += 1;
    }
    let due = producer.join().unwrap();
    // Everything released and every group drained.
    let t1 = Instant::now();
    loop {
        let st = q.stat();
        let done =
            |g: &shmq::GroupStat| g.name == "audit" || (g.lag == 0 && g.ack_entries_used == 0);
        if st.staged.scheduled == 0 && st.groups.iter().all(done) {
            break;
        }
        assert!(
            t1.elapsed() < Duration::from_secs(30),
            "not drained: {st:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::write(dir.path().join("stop"), b"").unwrap();
    for (_, mut m) in members {
        m.wait().unwrap();
    }
    // Published exactly once each.
    let published = published(&q);
    assert_eq!(
        published.len(),
        600,
        "tail {} {:?}",
        q.stat().tail_seq,
        published.iter().take(3).collect::<Vec<_>>()
    );
    for (payload, seqs) in &published {
        assert_eq!(
            seqs.len(),
            1,
            "{} published as {seqs:?}",
            String::from_utf8_lossy(payload)
        );
    }
    // Every group got every message, none before it was due.
    for g in groups {
        let mut got = std::collections::BTreeSet::new();
        for n in 0..next {
            let Ok(log) = std::fs::read_to_string(dir.path().join(format!("{g}{n}.log"))) else {
                continue;
            };
            for line in log.lines() {
                let f: Vec<&str> = line.split(' ').collect();
                if f.len() != 3 {
                    continue; // a line cut by a kill
                }
                if let Some(d) = due.get(f[1]) {
                    assert!(f[2].parse::<u64>().unwrap() >= *d, "{g}: {} early", f[1]);
                }
                got.insert(f[1].to_owned());
            }
        }
        assert_eq!(got.len(), 600, "group {g} missed messages ({kills} kills)");
    }
    assert!(q.check().ok(), "{:?}", q.check());
}

/// `shmq send PATH ARGS` with `lines` on stdin; its stdout.
fn send_lines(path: &Path, args: &[&str], lines: &[&str]) -> String {
    let mut send = Command::new(env!("CARGO_BIN_EXE_shmq"))
        .arg("send")
        .arg(path)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = send.stdin.take().unwrap();
    for l in lines {
        writeln!(stdin, "{l}").unwrap();
    }
    drop(stdin);
    let out = send.wait_with_output().unwrap();
    assert!(out.status.success(), "shmq send {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn shmq_send_delay_and_deliver_at_with_stat_check_and_a_damaged_file() {
    let dir = tempfile::tempdir().unwrap();
    let (path, q) = common::queue_with_group(dir.path());
    let p = path.to_str().unwrap();
    let out = send_lines(&path, &["--delay", "300ms"], &["one", "two"]);
    assert!(out.contains("scheduled 2 messages"), "{out}");
    let s = common::stat(&path);
    assert_eq!(s["staged"]["scheduled"], 2, "{s}");
    let due = s["staged"]["next_due_ns"].as_u64().unwrap();
    assert!(common::shmq(&["stat", p]).contains("scheduled 2 message(s), the next due in"));
    let lines = common::shmq(&["recv", p, "g", "--count", "2", "--json"]);
    for l in lines.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(v["recv_ns"].as_u64().unwrap() >= due, "{l}");
        assert_eq!(v["producer"], shmq::RELEASER_NAME);
    }
    // --deliver-at a time past: released by the sender itself.
    send_lines(&path, &["--deliver-at", "2020-01-01T00:00:00Z"], &["old"]);
    assert!(common::shmq(&["recv", p, "g", "--count", "1"]).contains("old"));
    // A damaged staged file: moved aside when its turn comes, the others
    // released; stat and check say so.
    // The queue's own directory: `<path>.staged/<nonce>`.
    let root = PathBuf::from(format!("{}.staged", path.canonicalize().unwrap().display()));
    let staged = std::fs::read_dir(&root)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(staged.join(format!("d-{:020}-{:020}", 1, 999)), b"garbage").unwrap();
    send_lines(&path, &["--delay", "1ms"], &["fine"]);
    std::thread::sleep(Duration::from_millis(5));
    assert!(common::shmq(&["recv", p, "g", "--count", "1"]).contains("fine"));
    assert_eq!(common::stat(&path)["staged"]["damaged"], 1);
    let out = Command::new(env!("CARGO_BIN_EXE_shmq"))
        .args(["check", p])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("damaged"),
        "{out:?}"
    );
    drop(q);
}

#[test]
fn removing_a_queue_removes_what_it_staged_and_a_new_queue_starts_clean() {
    let dir = tempfile::tempdir().unwrap();
    let (path, q) = queue(dir.path());
    let mut p = q.producer().attach().unwrap();
    p.schedule(b"x", after(10_000), &SendOptions::new())
        .unwrap();
    let staged = dir.path().canonicalize().unwrap().join("q.staged");
    assert!(staged.exists());
    drop((p, q));
    Queue::remove(&path).unwrap();
    assert!(!staged.exists());
    // Left by hand (a queue file deleted without Queue::remove): a new
    // queue at the path does not inherit it.
    let (_, q) = queue(dir.path());
    q.producer()
        .attach()
        .unwrap()
        .schedule(b"y", after(10_000), &SendOptions::new())
        .unwrap();
    drop(q);
    std::fs::remove_file(&path).unwrap();
    let (_, q) = queue(dir.path());
    assert_eq!(q.stat().staged.scheduled, 0);
}
