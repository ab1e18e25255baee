//! Named producers: per-producer sequence numbers (pseqs), duplicate
//! rejection, and the last committed pseq surviving a producer killed at any
//! point of a publish, so that a producer retrying after a crash publishes
//! each message exactly once.

mod common;

use common::{check_passes, shmq, stat, Rng};
use shmq::{ProducerError, ProducerTag, Queue, QueueOptions, SendError, StartAt};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn create(dir: &Path, capacity: u64) -> PathBuf {
    common::small_queue(dir, capacity, StartAt::Earliest)
}

/// Everything group "g" has now: (payload, producer tag).
fn drain(q: &Queue) -> Vec<(Vec<u8>, Option<ProducerTag>)> {
    let mut c = q.consumer("g").attach().unwrap();
    let mut out = Vec::new();
    while let Ok(m) = c.recv_timeout(Duration::from_millis(200)) {
        out.push((m.payload, m.producer));
    }
    out
}

#[test]
fn pseqs_number_messages_and_refuse_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open(create(dir.path(), 64 << 10)).unwrap();
    let mut p = q.producer().name("ingest").attach().unwrap();
    let id = p.id().unwrap();
    assert_eq!(
        (p.name(), p.last_pseq(), p.next_pseq()),
        (Some("ingest"), None, Some(0))
    );
    p.send(b"a").unwrap(); // pseq 0
    p.send_batch(&[b"b", b"c"]).unwrap(); // 1, 2
    let mut g = p.claim_send(1).unwrap(); // 3
    g.as_mut_slice().copy_from_slice(b"d");
    g.commit();
    drop(p.claim_send(1).unwrap()); // abandoned: 4 stays unpublished
    assert_eq!(p.last_pseq(), Some(3));
    p.send_as(4, b"e").unwrap();
    assert_eq!(
        p.send_as(4, b"e again"),
        Err(SendError::Duplicate { pseq: 4, last: 4 })
    );
    assert_eq!(
        p.try_send_as(2, b"old"),
        Err(SendError::Duplicate { pseq: 2, last: 4 })
    );
    p.send_as(10, b"f").unwrap(); // gaps are allowed
    assert_eq!(
        p.send_as(u64::MAX, b"x"),
        Err(SendError::PseqOutOfRange(u64::MAX))
    );
    // One producer per name at a time.
    match q.producer().name("ingest").attach() {
        Err(ProducerError::NameInUse { pid, .. }) => {
            assert_eq!(pid, std::process::id() as u64)
        }
        other => panic!("expected ProducerNameInUse, got {:?}", other.err()),
    }
    drop(p);
    // A later producer under the name continues after the last pseq.
    let mut p = q.producer().name("ingest").attach().unwrap();
    assert_eq!((p.id(), p.last_pseq()), (Some(id), Some(10)));
    assert_eq!(
        p.send_as(10, b"f again"),
        Err(SendError::Duplicate { pseq: 10, last: 10 })
    );
    p.send(b"g").unwrap(); // 11
                           // An anonymous producer's messages carry nothing, and it has no pseqs.
    let mut anon = q.producer().attach().unwrap();
    anon.send(b"anon").unwrap();
    assert_eq!(anon.send_as(0, b"x"), Err(SendError::NotNamed));
    assert_eq!(q.producer_name(id).as_deref(), Some("ingest"));
    // In place (zero copy), the payload starts after the extension.
    q.add_group("peek", StartAt::Earliest).unwrap();
    let mut peek = q.consumer("peek").attach().unwrap();
    let guard = peek.recv_ref_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(guard.as_bytes(), b"a");
    assert_eq!(guard.meta().producer, Some(ProducerTag { id, pseq: 0 }));
    drop(guard);
    let (buf, meta) = {
        let m = peek.recv_ref().unwrap();
        (m.as_bytes().to_vec(), m.meta())
    };
    assert_eq!(
        (buf.as_slice(), meta.producer),
        (&b"b"[..], Some(ProducerTag { id, pseq: 1 }))
    );
    let got = drain(&q);
    let tag = |pseq| Some(ProducerTag { id, pseq });
    let want: Vec<(Vec<u8>, Option<ProducerTag>)> = vec![
        (b"a".to_vec(), tag(0)),
        (b"b".to_vec(), tag(1)),
        (b"c".to_vec(), tag(2)),
        (b"d".to_vec(), tag(3)),
        (b"e".to_vec(), tag(4)),
        (b"f".to_vec(), tag(10)),
        (b"g".to_vec(), tag(11)),
        (b"anon".to_vec(), None),
    ];
    assert_eq!(got, want);
    let s = q.stat();
    let n = &s.names[0];
    assert_eq!(
        (
            n.name.as_str(),
            n.last_pseq,
            n.published,
            n.duplicates,
            n.attaches
        ),
        ("ingest", Some(11), 7, 3, 2)
    );
    assert_eq!(n.pid, Some(std::process::id() as u64));
    assert!(matches!(
        q.producer().name("bad name").attach(),
        Err(ProducerError::InvalidName(_))
    ));
}

/// Dead letters keep the producer tag of the message they copy, and the
/// spill log keeps tags too.
#[test]
fn tags_survive_the_spill_log_and_dead_lettering() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q");
    let q = QueueOptions::new()
        .capacity(4096)
        .max_msg(64)
        .spill(shmq::SpillOptions::new(dir.path().join("spill")))
        .create(&path)
        .unwrap();
    q.add_group("g", StartAt::Earliest).unwrap();
    q.add_dead_letter_group("dlq").unwrap();
    q.set_max_attempts("g", 1).unwrap();
    q.set_dead_letter("g", Some("dlq")).unwrap();
    let mut p = q.producer().name("sensor").attach().unwrap();
    let id = p.id().unwrap();
    // An abandoned claim first: an aborted record with the extension's flag,
    // which the log keeps as an aborted sequence number.
    drop(p.claim_send(4).unwrap());
    // Far more than the ring holds: most of it goes through the log.
    for i in 0..500u64 {
        p.send_as(1000 + i, format!("m{i}").as_bytes()).unwrap();
    }
    assert!(q.stat().spill.unwrap().spilled > 0, "nothing was spilled");
    // `dump` shows the tags too.
    let mut dumped = Vec::new();
    q.dump(0, 3, |m| dumped.push((m.from_log, m.producer)))
        .unwrap();
    let want: Vec<_> = (1000..1003)
        .map(|pseq| (true, Some(ProducerTag { id, pseq })))
        .collect();
    assert_eq!(dumped, want);
    let got = drain(&q);
    assert_eq!(got.len(), 500);
    for (i, (payload, tag)) in got.iter().enumerate() {
        assert_eq!(payload, format!("m{i}").as_bytes());
        assert_eq!(
            *tag,
            Some(ProducerTag {
                id,
                pseq: 1000 + i as u64
            })
        );
    }
    // Give up one message: the dead letter carries the original tag.
    p.send_as(5000, b"poison").unwrap();
    let mut c = q.consumer("g").ack(shmq::Ack::Explicit).attach().unwrap();
    let m = c.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(m.producer, Some(ProducerTag { id, pseq: 5000 }));
    c.nack(m.seq).unwrap();
    assert!(c.try_recv().is_err()); // given up, forwarded
    let mut dl = q.consumer("dlq").attach().unwrap();
    let d = dl.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(d.payload, b"poison");
    assert_eq!(d.producer, Some(ProducerTag { id, pseq: 5000 }));
    assert!(d.dead_letter_from.is_some());
}

/// `shmq send --producer NAME --pseq 0`, fed `lines`, with `SHMQ_CRASH_POINT`
/// set to `crash` if given. Returns whether it exited normally, and its
/// stdout and stderr.
fn send_lines(q: &Path, lines: &[String], crash: Option<&str>) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shmq"));
    cmd.args([
        "send",
        q.to_str().unwrap(),
        "--producer",
        "p",
        "--pseq",
        "0",
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    if let Some(c) = crash {
        cmd.env("SHMQ_CRASH_POINT", c);
    }
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // The sender may die before reading everything: ignore a broken pipe.
    let _ = stdin.write_all(lines.join("\n").as_bytes());
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A producer killed at each point of its first publish (records written
/// but not committed; committed but the name's last pseq not updated; that
/// updated but the intent not cleared) and then run again from pseq 0
/// publishes every line exactly once. Without the recovery settling the
/// dead producer's last pseq, the second crash point publishes line 0 twice;
/// counting an uncommitted claim would lose it at the first.
#[test]
fn a_producer_killed_mid_publish_and_retried_publishes_each_line_once() {
    let lines: Vec<String> = (0..5).map(|i| format!("line {i}")).collect();
    for crash in [
        "producer-written",
        "producer-committed",
        "producer-published",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = create(dir.path(), 64 << 10);
        let (ok, err) = send_lines(&path, &lines, Some(crash));
        assert!(!ok, "{crash}: the sender was not killed: {err}");
        // `shmq gc` recovers the dead producer and settles its name.
        let out = shmq(&["gc", path.to_str().unwrap()]);
        let aborted = if crash == "producer-written" { 1 } else { 0 };
        assert!(
            out.contains(&format!(
                "1 dead producer(s) removed (0 killed asleep), {aborted} claim(s)"
            )),
            "{crash}: {out}"
        );
        let name = &stat(&path)["names"][0];
        assert_eq!(name["pid"], serde_json::Value::Null, "{crash}: {name}");
        assert_eq!(name["last_pseq"] == 0, aborted == 0, "{crash}: {name}");
        let (ok, err) = send_lines(&path, &lines, None);
        assert!(ok, "{crash}: {err}");
        let skipped = if crash == "producer-written" { 0 } else { 1 };
        assert_eq!(
            err.contains("skipped 1 duplicate ("),
            skipped == 1,
            "{crash}: {err}"
        );
        let q = Queue::open(&path).unwrap();
        let got = drain(&q);
        let payloads: Vec<String> = got
            .iter()
            .map(|(p, _)| String::from_utf8(p.clone()).unwrap())
            .collect();
        assert_eq!(payloads, lines, "{crash}");
        let pseqs: Vec<u64> = got.iter().map(|(_, t)| t.unwrap().pseq).collect();
        assert_eq!(pseqs, [0, 1, 2, 3, 4], "{crash}");
        let st = stat(&path);
        assert_eq!(st["names"][0]["last_pseq"], 4, "{crash}: {st}");
        assert_eq!(st["names"][0]["published"], 5, "{crash}: {st}");
        check_passes(&path);
    }
}

/// Real processes, SIGKILLed at random moments: `shmq send --producer p
/// --pseq 0 --count N` run again and again until one run finishes. Every
/// run starts over from pseq 0, so everything already committed is refused
/// as a duplicate (the runs are given longer and longer before the kill, so
/// that one gets past the duplicates and finishes). At the end the group has
/// every pseq exactly once, in order, each with its own payload.
#[test]
fn a_producer_killed_at_random_and_restarted_publishes_exactly_once() {
    let n: u64 = 200_000 * common::scale();
    let dir = tempfile::tempdir().unwrap();
    // Nobody reads until the end, so the ring holds the whole run (a record
    // is 72 bytes: header, producer extension, 24-byte payload); a ring it
    // fills would block every run for good.
    let capacity = (n * 72 + n * 9).next_power_of_two().max(16 << 20);
    let path = create(dir.path(), capacity);
    let q = path.to_str().unwrap();
    let mut rng = Rng::new();
    let mut kills = 0;
    loop {
        let mut child = Command::new(env!("CARGO_BIN_EXE_shmq"))
            .args(["send", q, "--producer", "p", "--pseq", "0"])
            .args(["--count", &n.to_string(), "--size", "24"])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(1 + rng.below(20 + 10 * kills)));
        if child.try_wait().unwrap().is_some() {
            break;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        assert!(kills < 10_000, "the sender never finishes");
    }
    eprintln!("{kills} kills");
    assert!(kills > 0, "the sender was never killed");
    let qq = Queue::open(&path).unwrap();
    let got = drain(&qq);
    assert_eq!(got.len() as u64, n, "kills {kills}");
    for (i, (payload, tag)) in got.iter().enumerate() {
        assert_eq!(tag.unwrap().pseq, i as u64);
        let text = String::from_utf8_lossy(payload);
        assert!(text.starts_with(&format!("msg {i} ")), "pseq {i}: {text}");
    }
    let st = stat(&path);
    assert_eq!(st["names"][0]["last_pseq"], n - 1);
    shmq(&["check", q]);
}

/// Removing a name frees its slot for another name, and its id (which the
/// messages published under it keep carrying) names nothing from then on,
/// even once the slot holds another name; a producer using the name again
/// starts over with a new id. Refused while a live producer holds the name.
#[test]
fn a_removed_name_frees_its_slot_and_its_id_names_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q");
    let q = QueueOptions::new().max_producers(2).create(&path).unwrap();
    q.add_group("g", StartAt::Earliest).unwrap();
    let mut a = q.producer().name("a").attach().unwrap();
    let old_a = a.id().unwrap();
    for m in [b"a0", b"a1", b"a2"] {
        a.send(m).unwrap();
    }
    // Held by a live producer: refused.
    assert!(matches!(
        q.remove_producer_name("a"),
        Err(ProducerError::NameInUse { .. })
    ));
    drop(a);
    drop(q.producer().name("b").attach().unwrap());
    assert!(matches!(
        q.producer().name("c").attach(),
        Err(ProducerError::NamesFull { max: 2 })
    ));

    q.remove_producer_name("a").unwrap();
    assert_eq!(q.producer_name(old_a), None);
    let names: Vec<String> = q.stat().names.into_iter().map(|n| n.name).collect();
    assert_eq!(names, ["b"]);
    // "c" takes a's slot, under a new id.
    let mut c = q.producer().name("c").attach().unwrap();
    let c_id = c.id().unwrap();
    assert_ne!(c_id, old_a);
    assert_eq!(c_id as u32, old_a as u32, "the same slot");
    assert_eq!(c.last_pseq(), None);
    c.send(b"c0").unwrap();
    drop(c);
    assert_eq!(q.producer_name(old_a), None);
    assert_eq!(q.producer_name(c_id).as_deref(), Some("c"));
    let got: Vec<(Vec<u8>, Option<String>)> = drain(&q)
        .into_iter()
        .map(|(p, t)| (p, q.producer_name(t.unwrap().id)))
        .collect();
    assert_eq!(
        got,
        [
            (b"a0".to_vec(), None),
            (b"a1".to_vec(), None),
            (b"a2".to_vec(), None),
            (b"c0".to_vec(), Some("c".to_owned())),
        ]
    );

    // "a" again: a new name with no history, so pseq 0 is not a duplicate.
    q.remove_producer_name("b").unwrap();
    let mut a = q.producer().name("a").attach().unwrap();
    assert_eq!(a.last_pseq(), None);
    assert_ne!(a.id(), Some(old_a));
    a.send_as(0, b"again").unwrap();
    drop(a);
    assert!(matches!(
        q.remove_producer_name("zzz"),
        Err(ProducerError::UnknownName(n)) if n == "zzz"
    ));
    check_passes(&path);
}

/// `shmq producer rm` removes the name a SIGKILLed `shmq send --producer`
/// held (the dead producer is recovered first), and says so for a name
/// that does not exist.
#[test]
fn producer_rm_removes_a_dead_producers_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = create(dir.path(), 64 << 10);
    let p = path.to_str().unwrap();
    // Attached under "p" while `held.stdin` is open.
    let mut held = common::sender(&path, &["--producer", "p"], "one");
    let t0 = std::time::Instant::now();
    while stat(&path)["names"][0]["last_pseq"] != 0 {
        assert!(t0.elapsed() < Duration::from_secs(30), "{}", stat(&path));
        std::thread::sleep(Duration::from_millis(10));
    }
    let rm = |name: &str| {
        Command::new(env!("CARGO_BIN_EXE_shmq"))
            .args(["producer", "rm", p, name])
            .output()
            .unwrap()
    };
    let out = rm("p");
    assert!(!out.status.success(), "removed while its producer lives");
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use by live process"));
    held.child.kill().unwrap(); // SIGKILL
    held.child.wait().unwrap();
    let out = rm("p");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let st = stat(&path);
    assert_eq!(st["names"], serde_json::json!([]), "{st}");
    assert_eq!(st["producers"], serde_json::json!([]), "{st}");
    let out = rm("p");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no producer name 'p'"));
    check_passes(&path);
}

/// `recv --json` and `dump --json` give a named producer's messages their
/// name, id and pseq; once the name is removed, the same id with a null name.
#[test]
fn json_lines_carry_the_producer_name_id_and_pseq() {
    let dir = tempfile::tempdir().unwrap();
    let path = create(dir.path(), 64 << 10);
    let p = path.to_str().unwrap();
    let (ok, err) = send_lines(&path, &["x".to_owned(), "y".to_owned()], None);
    assert!(ok, "{err}");
    let id = stat(&path)["names"][0]["id"].clone();
    let lines = |args: &[&str]| -> Vec<serde_json::Value> {
        shmq(args)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let got = lines(&["recv", p, "g", "--count", "2", "--json"]);
    for (k, m) in got.iter().enumerate() {
        assert_eq!(m["producer"], "p", "{m}");
        assert_eq!(m["producer_id"], id, "{m}");
        assert_eq!(m["pseq"], k, "{m}");
    }
    shmq(&["producer", "rm", p, "p"]);
    let dumped = lines(&["dump", p, "--from", "0", "--count", "2", "--json"]);
    assert_eq!(dumped.len(), 2);
    for (k, m) in dumped.iter().enumerate() {
        assert_eq!(m["producer"], serde_json::Value::Null, "{m}");
        assert_eq!(m["producer_id"], id, "{m}");
        assert_eq!(m["pseq"], k, "{m}");
    }
}
