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

fn keyed(key: &str) -> SendOptions<'_> {
    SendOptions::new().key(key.as_bytes())
}

fn ordered(capacity: u64, spill: Option<shmq::SpillOptions>) -> (tempfile::TempDir, Queue) {
    let dir = tempfile::tempdir().unwrap();
    let q = QueueOptions::new()
        .capacity(capacity)
        .max_msg(256)
        .spill(spill.map(|s: shmq::SpillOptions| s))
        .create(dir.path().join("q"))
        .unwrap();
    q.add_group("work", StartAt::Latest).unwrap();
    q.set_ordered_by_key("work", true).unwrap();
    (dir, q)
}

fn payload(m: &shmq::Message) -> &str {
    std::str::from_utf8(&m.payload).unwrap()
}

#[test]
fn a_nacked_message_comes_back_before_its_keys_next_one_and_other_keys_flow() {
    let (_dir, q) = ordered(64 << 10, None);
    let mut p = q.producer().attach().unwrap();
    for (k, m) in [
        ("a", "a0"),
        ("a", "a1"),
        ("b", "b0"),
        ("", "free"),
        ("a", "a2"),
    ] {
        match k {
            "" => p.send(m.as_bytes()).unwrap(),
            k => p.send_with(m.as_bytes(), &keyed(k)).unwrap(),
        };
    }
    let mut x = q
        .consumer("work")
        .ack(Ack::Explicit)
        .max_unacked(4)
        .attach()
        .unwrap();
    let mut y = q
        .consumer("work")
        .ack(Ack::Explicit)
        .max_unacked(4)
        .attach()
        .unwrap();
    let a0 = x.recv().unwrap();
    assert_eq!((payload(&a0), a0.key.as_deref()), ("a0", Some(&b"a"[..])));
    // a1 waits for a0 (parked on the way); b0 and the keyless one flow.
    assert_eq!(payload(&y.recv().unwrap()), "b0");
    assert_eq!(payload(&y.recv().unwrap()), "free");
    assert_eq!(y.try_recv(), Err(RecvError::Empty));
    // Nacked, a0 comes back before a1, flagged; a1 is no redelivery.
    x.nack(a0.seq).unwrap();
    let again = y.recv().unwrap();
    assert_eq!((payload(&again), again.redelivered), ("a0", 1));
    assert_eq!(x.try_recv(), Err(RecvError::Empty));
    y.ack(again.seq).unwrap();
    let a1 = x.recv().unwrap();
    assert_eq!((payload(&a1), a1.redelivered), ("a1", 0));
    assert_eq!(y.try_recv(), Err(RecvError::Empty));
    x.ack(a1.seq).unwrap();
    assert_eq!(payload(&y.recv().unwrap()), "a2");
    let g = &q.stat().groups[0];
    assert!(g.ordered_by_key && g.parked >= 2, "{g:?}");
}

#[test]
fn auto_ack_members_wait_for_a_keys_message_until_it_is_copied_and_take_one_at_a_time() {
    let (_dir, q) = ordered(64 << 10, None);
    let mut p = q.producer().attach().unwrap();
    for m in ["a0", "a1", "b0", "a2"] {
        p.send_with(m.as_bytes(), &keyed(&m[..1])).unwrap();
    }
    let mut x = q.consumer("work").attach().unwrap();
    let mut y = q.consumer("work").attach().unwrap();
    let guard = x.recv_ref().unwrap();
    assert_eq!(guard.as_bytes(), b"a0");
    // a1 waits while a0 is in x's hands; b0 does not.
    assert_eq!(y.try_recv().unwrap().payload, b"b0");
    assert_eq!(y.try_recv(), Err(RecvError::Empty));
    drop(guard);
    // A batch hands over one message at a time in an ordered group.
    let mut got = Vec::new();
    while got.len() < 2 {
        y.recv_batch(64, |_, b| got.push(b.to_vec())).unwrap();
    }
    assert_eq!(got, [b"a1".to_vec(), b"a2".to_vec()]);
}

#[test]
fn keys_are_checked_and_count_against_max_msg() {
    let (_dir, q) = ordered(64 << 10, None);
    let mut p = q.producer().attach().unwrap();
    let long = [b'k'; shmq::MAX_KEY + 1];
    assert_eq!(
        p.send_with(b"x", &SendOptions::new().key(&long)),
        Err(shmq::SendError::KeyTooLong {
            len: shmq::MAX_KEY + 1,
            max: shmq::MAX_KEY
        })
    );
    // 256 bytes of max_msg: a 64-byte key takes 80 of them.
    let key = [b'k'; shmq::MAX_KEY];
    assert!(p
        .send_with(&[0; 176], &SendOptions::new().key(&key))
        .is_ok());
    assert!(matches!(
        p.send_with(&[0; 177], &SendOptions::new().key(&key)),
        Err(shmq::SendError::TooLarge { .. })
    ));
    // An empty key is a key; a binary one too.
    p.send_with(b"e", &SendOptions::new().key(b"")).unwrap();
    p.send_with(b"z", &SendOptions::new().key(&[0, 255]))
        .unwrap();
    let mut c = q.consumer("work").attach().unwrap();
    let _ = c.recv().unwrap();
    assert_eq!(c.recv().unwrap().key.as_deref(), Some(&b""[..]));
    assert_eq!(c.recv().unwrap().key.as_deref(), Some(&[0u8, 255][..]));
}

#[test]
fn keys_survive_the_spill_log_and_order_holds_there() {
    let dir = tempfile::tempdir().unwrap();
    let (_qdir, q) = ordered(
        16 << 10,
        Some(shmq::SpillOptions::new(dir.path().join("spill"))),
    );
    let mut p = q.producer().attach().unwrap();
    // Nobody reads: the group falls to the log.
    for i in 0..400u32 {
        let k = format!("k{}", i % 3);
        p.send_with(format!("{k}-{i}").as_bytes(), &keyed(&k))
            .unwrap();
    }
    assert!(q.stat().spill.unwrap().spilled > 0);
    let mut x = q
        .consumer("work")
        .ack(Ack::Explicit)
        .max_unacked(3)
        .attach()
        .unwrap();
    let mut y = q
        .consumer("work")
        .ack(Ack::Explicit)
        .max_unacked(3)
        .attach()
        .unwrap();
    // Alternate members, each holding up to 3: a key's next message is never
    // out while its previous one is.
    let mut out: HashMap<String, u64> = HashMap::new();
    let mut held: Vec<(bool, shmq::Message)> = Vec::new();
    let mut seen = 0;
    let mut turn = false;
    let t0 = Instant::now();
    while seen < 400 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "stuck after {seen}: {:?}",
            q.stat().groups[0]
        );
        let c = if turn { &mut x } else { &mut y };
        match c.try_recv() {
            Ok(m) => {
                let key = String::from_utf8(m.key.unwrap().to_vec()).unwrap();
                assert!(payload(&m).starts_with(&key), "{m:?}");
                assert!(
                    !held.iter().any(|(_, h)| h.key == m.key),
                    "two of key {key} out at once"
                );
                if let Some(&last) = out.get(&key) {
                    assert!(m.seq > last, "key {key}: {} after {last}", m.seq);
                }
                out.insert(key, m.seq);
                held.push((turn, m));
                seen += 1;
            }
            // A table full of parked messages is the look-ahead's end.
            Err(
                RecvError::Empty | RecvError::AckPending { .. } | RecvError::AckTableFull { .. },
            ) => {
                // Ack the oldest this member holds.
                if let Some(i) = held.iter().position(|(t, _)| *t == turn) {
                    let (_, m) = held.remove(i);
                    c.ack(m.seq).unwrap();
                }
            }
            Err(e) => panic!("{e}"),
        }
        turn = !turn;
    }
}

#[test]
fn the_command_line_sends_keyed_lines_and_orders_a_group_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let q = dir.path().join("q");
    let qs = q.to_str().unwrap();
    common::shmq(&["create", qs, "--capacity", "64KiB"]);
    common::shmq(&["group", "add", qs, "g", "--ordered-by-key"]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_shmq"))
        .args(["send", qs, "--keyed"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"alice\topen\nbob\topen\nalice\tpay\n")
        .unwrap();
    assert!(child.wait().unwrap().success());
    let out = common::shmq(&[
        "recv", qs, "g", "--count", "3", "--json", "--ack", "explicit",
    ]);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| (l["key"].as_str().unwrap(), l["payload"].as_str().unwrap()))
        .collect();
    assert_eq!(got, [("alice", "open"), ("bob", "open"), ("alice", "pay")]);
    assert!(lines
        .windows(2)
        .all(|w| w[0]["recv_ns"].as_u64() <= w[1]["recv_ns"].as_u64()));
    let dump = common::shmq(&["dump", qs, "--json"]);
    assert!(dump.contains("\"key\":\"alice\""), "{dump}");
    let s = common::stat(&q);
    assert_eq!(s["groups"][0]["ordered_by_key"], true);
    let out = Command::new(env!("CARGO_BIN_EXE_shmq"))
        .args(["send", qs, "--keyed"])
        .stdin(std::process::Stdio::piped())
        .output()
        .unwrap();
    // An empty stdin sends nothing; a line without a tab is refused.
    assert!(out.status.success());
    let mut child = Command::new(env!("CARGO_BIN_EXE_shmq"))
        .args(["send", qs, "--keyed"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"no tab here\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("KEY<TAB>PAYLOAD"));
}

#[test]
fn a_group_not_ordered_by_key_hands_out_a_keys_messages_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let q = QueueOptions::new().create(dir.path().join("q")).unwrap();
    q.add_group("work", StartAt::Latest).unwrap();
    let mut p = q.producer().attach().unwrap();
    p.send_with(b"a0", &keyed("a")).unwrap();
    p.send_with(b"a1", &keyed("a")).unwrap();
    let mut x = q.consumer("work").ack(Ack::Explicit).attach().unwrap();
    let mut y = q.consumer("work").ack(Ack::Explicit).attach().unwrap();
    assert_eq!(x.recv().unwrap().payload, b"a0");
    assert_eq!(y.try_recv().unwrap().payload, b"a1");
    let g = &q.stat().groups[0];
    assert_eq!((g.ordered_by_key, g.parked), (false, 0));
}

#[test]
fn a_seek_back_hands_a_parked_message_out_once() {
    let (_dir, q) = ordered(64 << 10, None);
    let mut p = q.producer().attach().unwrap();
    for m in ["a0", "a1", "b0"] {
        p.send_with(m.as_bytes(), &keyed(&m[..1])).unwrap();
    }
    {
        let mut x = q.consumer("work").ack(Ack::Explicit).attach().unwrap();
        let mut y = q.consumer("work").ack(Ack::Explicit).attach().unwrap();
        let a0 = x.recv().unwrap();
        // a1 is parked on the way to b0.
        assert_eq!(y.recv().unwrap().payload, b"b0");
        x.ack(a0.seq).unwrap();
        // Both leave: y's b0 goes back, pending (a delivery, flagged next).
    }
    assert!(q.stat().groups[0].parked >= 1);
    q.seek_group("work", shmq::SeekTo::Earliest).unwrap();
    let mut c = q
        .consumer("work")
        .ack(Ack::Explicit)
        .max_unacked(8)
        .attach()
        .unwrap();
    let mut unflagged: HashMap<u64, u32> = HashMap::new();
    loop {
        match c.try_recv() {
            Ok(m) => {
                if m.redelivered == 0 {
                    *unflagged.entry(m.seq).or_default() += 1;
                }
                c.ack(m.seq).unwrap();
            }
            Err(RecvError::Empty) => break,
            Err(e) => panic!("{e}"),
        }
    }
    // Every message again from the cursor, each once unflagged: the parked
    // a1 is not handed out a second time from the table.
    assert_eq!(unflagged.len(), 3, "{unflagged:?}");
    assert!(unflagged.values().all(|&n| n == 1), "{unflagged:?}");
}
