//! Ordering by key with real processes: three competing members of a group
//! ordered by key, explicit acks, random processing times, 50 keys, one
//! member SIGKILLed now and then and replaced. Every key's messages are
//! processed in sequence order, never two of one key at once, and nothing is
//! lost. Each member logs when it starts (after its receive returned) and
//! ends (before its ack) each message; the killer logs the time just before
//! each kill, which ends the killed member's processing: its message is
//! redelivered only after the reaper found it dead, so after that time.

mod common;

use shmq::{Ack, Queue, QueueOptions, RecvError, SendOptions, StartAt};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const KEYS: u64 = 50;
const MESSAGES: u64 = 3000;

fn now_ns() -> u64 {
    shmq::clock::now_ns()
}

/// The member's side: receive, log the start, work a random while, log the
/// end, ack; until the stop file appears.
#[test]
fn helper_key_member() {
    let Ok(log) = std::env::var("SHMQ_TEST_KEY_LOG") else {
        return;
    };
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes integers only.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    let q = Queue::open(std::env::var("SHMQ_TEST_QUEUE").unwrap()).unwrap();
    let stop = PathBuf::from(std::env::var("SHMQ_TEST_STOP").unwrap());
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap();
    let mut c = q.consumer("work").ack(Ack::Explicit).attach().unwrap();
    let mut x = now_ns() | 1;
    while !stop.exists() {
        let m = match c.recv_timeout(Duration::from_millis(20)) {
            Ok(m) => m,
            Err(RecvError::Timeout) => continue,
            Err(e) => panic!("{e}"),
        };
        let key = String::from_utf8(m.key.expect("every message has a key").to_vec()).unwrap();
        // One write per line: a kill leaves whole lines only.
        out.write_all(format!("S {} {key} {}\n", m.seq, now_ns()).as_bytes())
            .unwrap();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        std::thread::sleep(Duration::from_micros(x % 1000));
        out.write_all(format!("E {} {}\n", m.seq, now_ns()).as_bytes())
            .unwrap();
        match c.ack(m.seq) {
            Ok(()) | Err(shmq::AckError::Expired { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
}

fn spawn_member(q: &Path, dir: &Path, n: usize) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_key_member",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SHMQ_TEST_QUEUE", q)
        .env("SHMQ_TEST_KEY_LOG", dir.join(format!("member{n}.log")))
        .env("SHMQ_TEST_STOP", dir.join("stop"))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// A processing: (key, seq, start, end).
type Span = (String, u64, u64, u64);

#[test]
fn three_members_with_kills_process_each_keys_messages_in_order_one_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q");
    let q = QueueOptions::new()
        .capacity(1 << 20)
        .ack_entries(256)
        .create(&path)
        .unwrap();
    q.add_group("work", StartAt::Latest).unwrap();
    q.set_ordered_by_key("work", true).unwrap();
    let mut rng = common::Rng::new();
    // What was sent: seq -> key.
    let producer = {
        let q = q.clone();
        let seed = rng.below(u64::MAX);
        std::thread::spawn(move || {
            let mut p = q.producer().attach().unwrap();
            let mut x = seed | 1;
            let mut sent = BTreeMap::new();
            for i in 0..MESSAGES {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let key = format!("k{}", x % KEYS);
                let seq = p
                    .send_with(
                        format!("m{i}").as_bytes(),
                        &SendOptions::new().key(key.as_bytes()),
                    )
                    .unwrap();
                sent.insert(seq, key);
                if i % 100 == 0 {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            sent
        })
    };
    let mut members: Vec<Child> = (0..3).map(|n| spawn_member(&path, dir.path(), n)).collect();
    let mut next = 3;
    // Times just before each kill, by member log.
    let mut killed: HashMap<usize, u64> = HashMap::new();
    let mut slots: Vec<usize> = vec![0, 1, 2];
    let t0 = Instant::now();
    let mut kills = 0;
    let mut next_kill = Instant::now() + Duration::from_millis(30 + rng.below(70));
    let sent = loop {
        if Instant::now() >= next_kill && kills < 20 {
            let i = rng.below(3) as usize;
            killed.insert(slots[i], now_ns());
            members[i].kill().unwrap();
            members[i].wait().unwrap();
            members[i] = spawn_member(&path, dir.path(), next);
            slots[i] = next;
            next += 1;
            kills += 1;
            next_kill = Instant::now() + Duration::from_millis(30 + rng.below(70));
        }
        if producer.is_finished() {
            let s = q.stat();
            let g = &s.groups[0];
            let idle = g.lag == 0 && g.ack_entries.is_empty();
            if idle {
                break producer.join().unwrap();
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "not done: {:?}",
            q.stat().groups[0]
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    std::fs::File::create(dir.path().join("stop")).unwrap();
    for mut m in members {
        m.wait().unwrap();
    }
    // Every processing, from the logs.
    let mut spans: Vec<Span> = Vec::new();
    let mut done: BTreeMap<u64, usize> = BTreeMap::new();
    for n in 0..next {
        let text =
            std::fs::read_to_string(dir.path().join(format!("member{n}.log"))).unwrap_or_default();
        let mut open: Option<(u64, String, u64)> = None;
        for line in text.lines() {
            let t: Vec<&str> = line.split(' ').collect();
            match t[0] {
                "S" => {
                    open = Some((
                        t[1].parse().unwrap(),
                        t[2].to_owned(),
                        t[3].parse().unwrap(),
                    ))
                }
                "E" => {
                    let (seq, key, start) = open.take().unwrap();
                    assert_eq!(seq, t[1].parse::<u64>().unwrap());
                    spans.push((key, seq, start, t[2].parse().unwrap()));
                    *done.entry(seq).or_default() += 1;
                }
                _ => panic!("bad line {line:?}"),
            }
        }
        // Killed while processing: it ended when the member died.
        if let Some((seq, key, start)) = open {
            let end = killed[&n];
            spans.push((key, seq, start, end));
        }
    }
    // Nothing lost.
    for (seq, key) in &sent {
        assert!(
            done.contains_key(seq),
            "seq {seq} (key {key}) never processed to the end"
        );
    }
    // Per key: in sequence order, one at a time.
    let mut by_key: HashMap<&str, Vec<&Span>> = HashMap::new();
    for s in &spans {
        assert_eq!(
            sent.get(&s.1).map(String::as_str),
            Some(s.0.as_str()),
            "{s:?}"
        );
        by_key.entry(&s.0).or_default().push(s);
    }
    let mut overlaps_checked = 0;
    for (key, mut v) in by_key {
        v.sort_by_key(|s| s.2);
        for w in v.windows(2) {
            let (a, b) = (w[0], w[1]);
            assert!(
                b.1 >= a.1,
                "key {key}: seq {} started after seq {}: {a:?} then {b:?}",
                b.1,
                a.1
            );
            assert!(
                b.2 >= a.3,
                "key {key}: seq {} started before seq {} ended: {a:?} then {b:?}",
                b.1,
                a.1
            );
            overlaps_checked += 1;
        }
    }
    let g = q.stat().groups[0].clone();
    eprintln!(
        "{} messages, {} processings, {kills} kills, {} parked, {} redelivered, {overlaps_checked} successive pairs checked",
        sent.len(),
        spans.len(),
        g.parked,
        g.redelivered
    );
    assert!(
        g.parked > 0,
        "no message ever waited for its key: the test proves nothing"
    );
    assert!(kills > 0);
}
