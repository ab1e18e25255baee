//! The delivery scenario with real processes: four `shmq send` producers and five
//! `shmq recv` consumers in three groups, through a 64 KiB ring.

mod common;

use common::{check_group, queue_with_group, shmq_ok, wait_members, Received};
use shmq::Queue;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const SHMQ: &str = env!("CARGO_BIN_EXE_shmq");

/// Text payload: producer, counter and a filler derived from both, so any
/// garbled byte is caught.
fn line(p: u32, c: u64) -> String {
    let fill: String = (0..(c % 23) as usize)
        .map(|i| (b'a' + ((p as u64 * 7 + c + i as u64) % 26) as u8) as char)
        .collect();
    format!("{p} {c} {fill}")
}

/// Turns a text payload back into the binary form `check_group` understands.
fn to_common(payload: &str) -> Vec<u8> {
    let mut it = payload.splitn(3, ' ');
    let p: u32 = it.next().and_then(|s| s.parse().ok()).expect("producer id");
    let c: u64 = it.next().and_then(|s| s.parse().ok()).expect("counter");
    assert_eq!(payload, line(p, c), "garbled payload");
    common::encode(p, c)
}

fn spawn_recv(
    q: &std::path::Path,
    group: &str,
    count: Option<u64>,
    batch: u32,
) -> (Child, thread::JoinHandle<Received>) {
    let mut cmd = Command::new(SHMQ);
    cmd.args(["recv", q.to_str().unwrap(), group, "--json"]);
    cmd.args(["--batch", &batch.to_string()]);
    if let Some(n) = count {
        cmd.args(["--count", &n.to_string()]);
    }
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let out = child.stdout.take().unwrap();
    let reader = thread::spawn(move || {
        BufReader::new(out)
            .lines()
            .map(|l| {
                let l = l.unwrap();
                let v: serde_json::Value = serde_json::from_str(&l).unwrap();
                (
                    v["seq"].as_u64().unwrap(),
                    to_common(v["payload"].as_str().unwrap()),
                )
            })
            .collect()
    });
    (child, reader)
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn four_producer_processes_three_groups() {
    const PRODUCERS: u32 = 4;
    let per: u64 = 50_000 * common::scale();
    let total = PRODUCERS as u64 * per;
    let dir = tempfile::tempdir().unwrap();
    let q = dir.path().join("q");
    let qs = q.to_str().unwrap();
    shmq_ok(&["create", qs, "--capacity", "64KiB", "--max-msg", "1KiB"]);
    for g in ["A", "B", "C"] {
        shmq_ok(&["group", "add", qs, g]);
    }
    let queue = Queue::open(&q).unwrap();

    // A receives one message at a time; B and C's members in batches (one
    // cursor CAS for up to 64 or 8 messages), C's three competing for them.
    let mut consumers = vec![
        ("A", spawn_recv(&q, "A", Some(total), 1)),
        ("B", spawn_recv(&q, "B", Some(total), 64)),
    ];
    for _ in 0..3 {
        consumers.push(("C", spawn_recv(&q, "C", None, 8)));
    }
    wait_until("5 members", Duration::from_secs(30), || {
        queue
            .stat()
            .groups
            .iter()
            .map(|g| g.members.len())
            .sum::<usize>()
            == 5
    });

    let producers: Vec<(Child, thread::JoinHandle<()>)> = (0..PRODUCERS)
        .map(|p| common::shmq_send_lines(&q, per, 2000, Duration::ZERO, move |c| line(p, c)))
        .collect();
    for (mut child, feeder) in producers {
        feeder.join().unwrap();
        assert!(child.wait().unwrap().success(), "a producer failed");
    }
    wait_until("groups to drain", Duration::from_secs(120), || {
        queue.stat().groups.iter().all(|g| g.lag == 0)
    });
    let stat = queue.stat();
    assert_eq!(stat.tail_seq, total);
    assert!(
        stat.full_waits > 0,
        "the 64 KiB ring should have made producers wait"
    );
    // A and B stop by --count; C's members are told to stop.
    for (g, (child, _)) in &consumers {
        if *g == "C" {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            )
            .unwrap();
        }
    }
    let mut by_group: Vec<(&str, Vec<Received>)> =
        vec![("A", vec![]), ("B", vec![]), ("C", vec![])];
    for (g, (mut child, reader)) in consumers {
        assert!(child.wait().unwrap().success(), "consumer of {g} failed");
        let got = reader.join().unwrap();
        by_group
            .iter_mut()
            .find(|(n, _)| *n == g)
            .unwrap()
            .1
            .push(got);
    }
    for (g, parts) in &by_group {
        check_group(g, parts, PRODUCERS, per);
    }
    // C's work was really shared between its members.
    let c = &by_group[2].1;
    assert_eq!(c.len(), 3);
}

#[test]
fn killed_member_is_reaped_and_group_can_be_removed() {
    let dir = tempfile::tempdir().unwrap();
    let (q, queue) = queue_with_group(dir.path());
    let qs = q.to_str().unwrap();
    let mut child = Command::new(SHMQ)
        .args(["recv", qs, "g", "--quiet"])
        .spawn()
        .unwrap();
    wait_members(&queue, 1);
    // Removing a group with a live member is refused.
    let out = Command::new(SHMQ)
        .args(["group", "rm", qs, "g"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("live member"));
    child.kill().unwrap(); // SIGKILL: no chance to leave the group
    child.wait().unwrap();
    let stat = queue.stat();
    assert_eq!(stat.groups[0].members.len(), 1);
    assert!(
        !stat.groups[0].members[0].alive,
        "a killed member must show as dead"
    );
    assert_eq!(queue.reap_dead_members(), 1);
    shmq_ok(&["group", "rm", qs, "g"]);
    assert!(queue.stat().groups.is_empty());
}

#[test]
fn cli_round_trip_json_and_binary_payloads() {
    let dir = tempfile::tempdir().unwrap();
    let q = dir.path().join("q");
    let qs = q.to_str().unwrap();
    shmq_ok(&["create", qs, "--capacity", "64KiB"]);
    shmq_ok(&["group", "add", qs, "g"]);
    let mut send = Command::new(SHMQ)
        .args(["send", qs])
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    send.stdin
        .take()
        .unwrap()
        .write_all(b"hello\n\xff\xfe\n\nlast")
        .unwrap();
    assert!(send.wait().unwrap().success());
    let out = Command::new(SHMQ)
        .args(["recv", qs, "g", "--count", "4", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["payload"], "hello");
    assert_eq!(lines[0]["seq"], 0);
    assert_eq!(lines[0]["len"], 5);
    assert!(lines[0]["ts_ns"].as_u64().unwrap() > 1_600_000_000_000_000_000);
    assert_eq!(lines[1]["payload_b64"], "//4=");
    assert_eq!(lines[2]["payload"], "");
    assert_eq!(lines[3]["payload"], "last");
    // Nothing more: --timeout ends the wait.
    let out = Command::new(SHMQ)
        .args(["recv", qs, "g", "--timeout", "200ms"])
        .output()
        .unwrap();
    assert!(out.status.success() && out.stdout.is_empty());
    let stat = Command::new(SHMQ)
        .args(["stat", qs, "--json"])
        .output()
        .unwrap();
    let s: serde_json::Value = serde_json::from_slice(&stat.stdout).unwrap();
    assert_eq!(s["tail_seq"], 4);
    assert_eq!(s["groups"][0]["name"], "g");
    assert_eq!(s["groups"][0]["next_seq"], 4);
    assert_eq!(s["groups"][0]["lag"], 0);
    assert_eq!(s["groups"][0]["members"], serde_json::json!([]), "{s}");
    let table = Command::new(SHMQ).args(["stat", qs]).output().unwrap();
    assert!(String::from_utf8_lossy(&table.stdout).contains("NEXT_SEQ"));
}
