//! Time to live: a message's own (`SendOptions::ttl`, `send --ttl`) and its
//! group's default (`Queue::set_ttl`, `group add --ttl`). A message whose
//! time ran out before a member took it is never handed to one: the group
//! gives it up, to its dead-letter group if it has one, and counts it.
//! Every way a member takes a message is covered: from the cursor (explicit
//! and auto-ack, one at a time and in batches), redelivered, and read from
//! the spill log; and a member killed while giving an expired message up.

mod common;

use shmq::{Ack, Queue, QueueOptions, RecvError, SendOptions, SpillOptions, StartAt};
use std::path::Path;
use std::time::Duration;

const SHMQ: &str = env!("CARGO_BIN_EXE_shmq");
const WAIT: Duration = Duration::from_secs(20);
/// Long enough for `SHORT` to run out, on any machine.
const PAST_SHORT: Duration = Duration::from_millis(30);
const SHORT: Duration = Duration::from_millis(1);
const LONG: Duration = Duration::from_secs(3600);

fn short() -> SendOptions<'static> {
    SendOptions::new().ttl(SHORT)
}

/// Everything group `name` has now, by a member with `ack`: (seq, payload,
/// the seq a dead letter had).
fn drain(q: &Queue, name: &str, ack: Ack) -> Vec<(u64, Vec<u8>, Option<u64>)> {
    let mut c = q.consumer(name).ack(ack).attach().unwrap();
    let mut got = Vec::new();
    loop {
        match c.try_recv() {
            Ok(m) => {
                if ack == Ack::Explicit {
                    c.ack(m.seq).unwrap();
                }
                got.push((m.seq, m.payload, m.dead_letter_seq));
            }
            Err(RecvError::Empty) => return got,
            Err(e) => panic!("{name}: {e}"),
        }
    }
}

fn group<'a>(s: &'a shmq::Stat, name: &str) -> &'a shmq::GroupStat {
    s.groups.iter().find(|g| g.name == name).unwrap()
}

fn payloads(got: &[(u64, Vec<u8>, Option<u64>)]) -> Vec<&[u8]> {
    got.iter().map(|g| &g.1[..]).collect()
}

/// Groups "dlq" (dead letters), "explicit" and "auto" (both give up to
/// "dlq") and "plain" (no dead-letter group).
fn create(path: &Path, capacity: u64, spill: Option<SpillOptions>) -> Queue {
    let q = QueueOptions::new()
        .capacity(capacity)
        .max_msg(1024)
        .spill(spill)
        .create(path)
        .unwrap();
    q.add_dead_letter_group("dlq").unwrap();
    for g in ["explicit", "auto", "plain"] {
        q.add_group(g, StartAt::Latest).unwrap();
    }
    for g in ["explicit", "auto"] {
        q.set_dead_letter(g, Some("dlq")).unwrap();
    }
    q
}

#[test]
fn an_expired_message_is_given_up_by_every_group_and_the_rest_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let q = create(&dir.path().join("q"), 64 << 10, None);
    let mut p = q.producer().attach().unwrap();
    p.send_with(b"stale", &short()).unwrap();
    p.send_with(b"fresh", &SendOptions::new().ttl(LONG))
        .unwrap();
    p.send(b"plain").unwrap();
    std::thread::sleep(PAST_SHORT);
    let explicit = drain(&q, "explicit", Ack::Explicit);
    assert_eq!(payloads(&explicit), [&b"fresh"[..], b"plain"]);
    let mut auto = q.consumer("auto").attach().unwrap();
    let m = auto.recv_timeout(WAIT).unwrap();
    assert_eq!(
        (m.seq, &m.payload[..], m.ttl),
        (1, &b"fresh"[..], Some(LONG))
    );
    assert_eq!(auto.try_recv().unwrap().ttl, None);
    assert_eq!(
        payloads(&drain(&q, "plain", Ack::Auto)),
        [&b"fresh"[..], b"plain"]
    );
    // One dead letter from each group that has a dead-letter group.
    let dl = drain(&q, "dlq", Ack::Auto);
    assert_eq!(dl.len(), 2, "{dl:?}");
    assert!(
        dl.iter().all(|d| &d.1[..] == b"stale" && d.2 == Some(0)),
        "{dl:?}"
    );
    let s = q.stat();
    for g in ["explicit", "auto", "plain"] {
        let g = group(&s, g);
        assert_eq!(
            (g.ttl_expired, g.dead_lettered, g.pending),
            (1, 1, 0),
            "{g:?}"
        );
    }
    assert!(q.check().ok(), "{:?}", q.check().problems);
}

#[test]
fn batches_and_redeliveries_skip_what_expired_and_the_shorter_ttl_applies() {
    let dir = tempfile::tempdir().unwrap();
    let q = create(&dir.path().join("q"), 64 << 10, None);
    // The group's default is shorter than the messages' own TTL.
    q.set_ttl("auto", Some(Duration::from_millis(200))).unwrap();
    let mut p = q.producer().attach().unwrap();
    for i in 0..10u8 {
        let opts = if i % 2 == 0 {
            short()
        } else {
            SendOptions::new().ttl(LONG)
        };
        p.send_with(&[i], &opts).unwrap();
    }
    std::thread::sleep(PAST_SHORT);
    // A batch hands over the five that had not expired, in order.
    let mut auto = q.consumer("auto").attach().unwrap();
    let mut seen = Vec::new();
    let mut n = 0;
    while n < 5 {
        n += auto
            .recv_batch_timeout(64, WAIT, |m, b| seen.push((m.seq, b[0])))
            .unwrap();
    }
    assert_eq!(seen, [(1, 1), (3, 3), (5, 5), (7, 7), (9, 9)]);
    assert_eq!(group(&q.stat(), "auto").ttl_expired, 5);
    // The group's 200 ms: a message sent with an hour is still gone then.
    p.send_with(b"hour", &SendOptions::new().ttl(LONG)).unwrap();
    std::thread::sleep(Duration::from_millis(250));
    assert_eq!(auto.try_recv(), Err(RecvError::Empty));
    assert_eq!(group(&q.stat(), "auto").ttl_expired, 6);

    // Held, nacked after its time ran out: the redelivery is given up.
    let mut e = q.consumer("explicit").ack(Ack::Explicit).attach().unwrap();
    for _ in 0..5 {
        let m = e.recv_timeout(WAIT).unwrap();
        e.ack(m.seq).unwrap();
    }
    let m = e.recv_timeout(WAIT).unwrap();
    assert_eq!(&m.payload[..], b"hour");
    p.send_with(
        b"brief",
        &SendOptions::new().ttl(Duration::from_millis(100)),
    )
    .unwrap();
    e.ack(m.seq).unwrap();
    let m = e.recv_timeout(WAIT).unwrap();
    assert_eq!(&m.payload[..], b"brief");
    std::thread::sleep(Duration::from_millis(150));
    e.nack(m.seq).unwrap();
    assert_eq!(e.try_recv(), Err(RecvError::Empty));
    let g = group(&q.stat(), "explicit").clone();
    assert_eq!(
        (g.ttl_expired, g.pending, g.redelivered),
        (6, 0, 0),
        "{g:?}"
    );
    let dl = drain(&q, "dlq", Ack::Auto);
    // Five short ones and the hour-long one from "auto", six from "explicit".
    assert_eq!(dl.len(), 12, "{dl:?}");
    assert_eq!(
        dl.iter().filter(|d| &d.1[..] == b"brief").count(),
        1,
        "{dl:?}"
    );
}

#[test]
fn messages_read_from_the_spill_log_expire_too() {
    let dir = tempfile::tempdir().unwrap();
    let spill = SpillOptions::new(dir.path().join("spill"));
    let q = create(&dir.path().join("q"), 16 << 10, Some(spill));
    q.set_ttl("plain", Some(Duration::from_millis(300)))
        .unwrap();
    // Nobody reads: every group falls far behind, to the log.
    let mut p = q.producer().attach().unwrap();
    let n = 400u64;
    for i in 0..n {
        let opts = if i % 4 == 0 {
            short()
        } else {
            SendOptions::new()
        };
        p.send_with(&[7; 200], &opts).unwrap();
    }
    let s = q.stat();
    assert!(s.spill.as_ref().unwrap().spilled > 0, "{:?}", s.spill);
    std::thread::sleep(PAST_SHORT);
    // The short ones are gone for every group; the rest is delivered from
    // the log (and the ring), in order.
    let e = drain(&q, "explicit", Ack::Explicit);
    assert_eq!(e.len() as u64, n - n / 4);
    assert!(e.iter().all(|m| m.0 % 4 != 0), "delivered an expired one");
    assert!(e.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(drain(&q, "auto", Ack::Auto).len() as u64, n - n / 4);
    // "plain"'s 300 ms ran out for all of them.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(drain(&q, "plain", Ack::Auto).len(), 0);
    let s = q.stat();
    assert_eq!(group(&s, "explicit").ttl_expired, n / 4);
    assert_eq!(group(&s, "auto").ttl_expired, n / 4);
    assert_eq!(group(&s, "plain").ttl_expired, n);
    assert_eq!(drain(&q, "dlq", Ack::Auto).len() as u64, 2 * n / 4);
}

#[test]
fn an_expired_message_handed_over_to_its_dead_letter_group_does_not_expire_there() {
    // No room for a copy: the expired message is handed over as it is, TTL
    // and all.
    let (_dir, q) = full_with_stale(0);
    let mut g = q.consumer("g").ack(Ack::Explicit).attach().unwrap();
    let m = g.recv_timeout(WAIT).unwrap();
    assert_ne!(&m.payload[..], b"stale");
    let dl = drain(&q, "dlq", Ack::Explicit);
    // Handed over: the original record, under its own sequence number.
    assert_eq!(dl.len(), 1, "{dl:?}");
    assert_eq!(
        (dl[0].0, &dl[0].1[..], dl[0].2),
        (0, &b"stale"[..], Some(0))
    );
    let s = q.stat();
    assert_eq!(group(&s, "g").ttl_expired, 1);
    assert_eq!(group(&s, "dlq").ttl_expired, 0);
}

/// The helper's side: a member of "explicit" that takes an expired message
/// and is killed (its own `SHMQ_CRASH_POINT`, named in its role) while it
/// publishes the dead letter.
#[test]
fn helper_expire_and_die() {
    let role = std::env::var("SHMQ_TEST_ROLE").unwrap_or_default();
    let Some(point) = role.strip_prefix("expire-and-die:") else {
        return;
    };
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes integers only.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    // Read once, on first use, after this (no other thread reads the
    // environment here).
    std::env::set_var("SHMQ_CRASH_POINT", point);
    let q = Queue::open(std::env::var("SHMQ_TEST_QUEUE").unwrap()).unwrap();
    let mut c = q.consumer("explicit").ack(Ack::Explicit).attach().unwrap();
    println!("member 0");
    let _ = c.try_recv();
    panic!("the crash point was not reached");
}

/// A member killed while it gives an expired message up: the dead-letter
/// group gets it exactly once, whether the member died before or after its
/// dead letter was committed.
fn killed_while_expiring(point: &str, published: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q");
    let q = create(&path, 64 << 10, None);
    let mut p = q.producer().attach().unwrap();
    p.send_with(b"stale", &short()).unwrap();
    p.send(b"after").unwrap();
    std::thread::sleep(PAST_SHORT);
    let role = format!("expire-and-die:{point}");
    let (mut child, _) = common::spawn_helper("helper_expire_and_die", &role, &path, "member ");
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    assert_eq!(q.reap_dead_members(), 1);
    // Not published: pending again, and the next member gives it up.
    let e = drain(&q, "explicit", Ack::Explicit);
    assert_eq!(payloads(&e), [&b"after"[..]], "{point}");
    let dl = drain(&q, "dlq", Ack::Auto);
    assert_eq!(dl.len(), 1, "{point}: {dl:?}");
    assert_eq!((&dl[0].1[..], dl[0].2), (&b"stale"[..], Some(0)));
    let s = q.stat();
    let g = group(&s, "explicit");
    assert_eq!((g.pending, g.dead_lettered), (0, 1), "{point}: {g:?}");
    // Counted by whoever settled it: the reaper of a published one does not
    // know why it was given up.
    assert_eq!(g.ttl_expired, u64::from(!published), "{point}: {g:?}");
    assert_eq!(s.aborted, u64::from(!published), "{point}: {s:?}");
    assert!(q.check().ok(), "{:?}", q.check().problems);
}

#[test]
fn a_member_killed_before_committing_an_expired_messages_dead_letter_gives_it_up_once() {
    killed_while_expiring("dead-letter-claimed", false);
}

#[test]
fn a_member_killed_after_publishing_an_expired_messages_dead_letter_gives_it_up_once() {
    killed_while_expiring("dead-letter-published", true);
}

#[test]
fn the_command_line_sends_with_a_ttl_and_shows_what_expired() {
    let dir = tempfile::tempdir().unwrap();
    let q = dir.path().join("q");
    let qs = q.to_str().unwrap();
    common::shmq(&["create", qs, "--capacity", "64KiB"]);
    common::shmq(&["group", "add", qs, "dlq", "--dead-letters"]);
    common::shmq(&[
        "group",
        "add",
        qs,
        "g",
        "--ttl",
        "1h",
        "--dead-letter",
        "dlq",
    ]);
    // A dead-letter group with nothing to give up is refused.
    let out = std::process::Command::new(SHMQ)
        .args(["group", "add", qs, "h", "--dead-letter", "dlq"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--max-attempts or --ttl"));
    let send = |ttl: Option<&str>, line: &str| {
        let mut args = vec!["send", qs];
        if let Some(t) = ttl {
            args.extend(["--ttl", t]);
        }
        let mut child = std::process::Command::new(SHMQ)
            .args(&args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(line.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success());
    };
    send(Some("1ms"), "stale\n");
    send(Some("2h"), "fresh\n");
    std::thread::sleep(PAST_SHORT);
    let out = common::shmq(&["recv", qs, "g", "--count", "1", "--json"]);
    let m: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (m["payload"].as_str(), m["ttl"].as_f64()),
        (Some("fresh"), Some(7200.0))
    );
    let out = common::shmq(&["recv", qs, "dlq", "--count", "1", "--json"]);
    let m: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (m["payload"].as_str(), m["dead_letter_seq"].as_u64()),
        (Some("stale"), Some(0))
    );
    assert!(m.get("ttl").is_none(), "a dead letter keeps no TTL: {m}");
    let s = common::stat(&q);
    let g = s["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "g")
        .unwrap();
    assert_eq!(
        (g["ttl"].as_f64(), g["ttl_expired"].as_u64()),
        (Some(3600.0), Some(1))
    );
    let text = common::shmq(&["stat", qs]);
    assert!(text.contains("time to live 3600s, 1 expired"), "{text}");
}

/// The ring full behind "other" (no member) before the dead-letter group
/// exists, so no room is kept for dead letters: an expired message's dead
/// letter cannot be published at once.
fn full_with_stale(max_attempts: u64) -> (tempfile::TempDir, Queue) {
    let dir = tempfile::tempdir().unwrap();
    let q = QueueOptions::new()
        .capacity(64 << 10)
        .max_msg(1024)
        .create(dir.path().join("q"))
        .unwrap();
    q.add_group("g", StartAt::Latest).unwrap();
    q.add_group("other", StartAt::Latest).unwrap();
    let mut p = q.producer().attach().unwrap();
    p.send_with(b"stale", &short()).unwrap();
    for len in [1000, 0] {
        while p.try_send(&vec![7; len]).is_ok() {}
    }
    q.add_dead_letter_group("dlq").unwrap();
    if max_attempts > 0 {
        q.set_max_attempts("g", max_attempts).unwrap();
    }
    q.set_dead_letter("g", Some("dlq")).unwrap();
    std::thread::sleep(PAST_SHORT);
    (dir, q)
}

#[test]
fn an_auto_ack_member_that_cannot_publish_an_expired_messages_dead_letter_keeps_it_in_the_table() {
    let (_dir, q) = full_with_stale(0);
    let mut g = q.consumer("g").attach().unwrap();
    // The stale one is passed over: kept pending in the ack table, never
    // delivered, then given up from there (handed over: no room for a copy).
    let m = g.recv_timeout(WAIT).unwrap();
    assert_ne!(&m.payload[..], b"stale");
    for _ in 0..3 {
        let _ = g.try_recv();
    }
    let dl = drain(&q, "dlq", Ack::Auto);
    assert_eq!(dl.len(), 1, "{dl:?}");
    assert_eq!((&dl[0].1[..], dl[0].2), (&b"stale"[..], Some(0)));
    let s = q.stat();
    let gs = group(&s, "g");
    assert_eq!(
        (gs.ttl_expired, gs.dead_lettered, gs.pending, gs.redelivered),
        (1, 1, 0, 0),
        "{gs:?}"
    );
}

#[test]
fn an_expired_message_handed_over_for_want_of_room_counts_as_expired_not_as_attempts() {
    // One attempt allowed: the expired take, handed over for want of room
    // for a copy, is given up for its expiry and counts no delivery.
    let (_dir, q) = full_with_stale(1);
    let mut g = q
        .consumer("g")
        .ack(Ack::Explicit)
        .max_unacked(4)
        .attach()
        .unwrap();
    let m = g.recv_timeout(WAIT).unwrap();
    assert_ne!(&m.payload[..], b"stale");
    let dl = drain(&q, "dlq", Ack::Auto);
    assert_eq!(dl.len(), 1, "{dl:?}");
    let s = q.stat();
    let gs = group(&s, "g");
    assert_eq!((gs.ttl_expired, gs.redelivered), (1, 0), "{gs:?}");
}
