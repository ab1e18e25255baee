//! Spill to disk with real processes: `shmq send` producers, `shmq recv`
//! consumers, spilling processes killed with SIGKILL, and a producer whose
//! file size limit makes the log unwritable.

mod common;

use common::{scale, shmq, stat, Rng};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::Duration;

const SHMQ: &str = env!("CARGO_BIN_EXE_shmq");

/// Runs `shmq`, which must succeed; returns its stdout.
/// Runs `shmq`, which must fail; returns its stderr.
fn shmq_fails(args: &[&str]) -> String {
    let out = Command::new(SHMQ).args(args).output().unwrap();
    assert!(!out.status.success(), "shmq {args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

fn group<'a>(s: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    s["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == name)
        .unwrap()
}

/// A 100-byte payload: producer, counter, then filler derived from both.
fn line(p: u32, c: u64) -> String {
    let mut s = format!("{p} {c} ");
    while s.len() < 100 {
        s.push((b'a' + ((p as u64 * 7 + c + s.len() as u64) % 26) as u8) as char);
    }
    s
}

/// A queue with a spill log and groups `fast` and `slow`.
fn setup(dir: &Path, extra: &[&str]) -> PathBuf {
    let q = dir.join("q");
    let spill = dir.join("spill");
    let mut args = vec![
        "create",
        q.to_str().unwrap(),
        "--capacity",
        "64KiB",
        "--spill-dir",
        spill.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    shmq(&args);
    for g in ["fast", "slow"] {
        shmq(&["group", "add", q.to_str().unwrap(), g]);
    }
    q
}

/// A `shmq send` process fed `per` lines as producer `p` by a thread, in
/// chunks of `chunk` lines with `pause` between them.
fn producer(
    q: &Path,
    p: u32,
    per: u64,
    chunk: u64,
    pause: Duration,
) -> (Child, thread::JoinHandle<()>) {
    common::shmq_send_lines(q, per, chunk, pause, move |c| line(p, c))
}

/// A `shmq recv` process for `n` messages of group `g`; the thread checks
/// every payload and each producer's order, and returns the `--stats` line.
fn consumer(
    q: &Path,
    g: &str,
    n: u64,
) -> thread::JoinHandle<(HashMap<u32, u64>, serde_json::Value)> {
    consumer_from(q, g, n, 0)
}

/// As `consumer`, for a group whose first message is counter `first`.
fn consumer_from(
    q: &Path,
    g: &str,
    n: u64,
    first: u64,
) -> thread::JoinHandle<(HashMap<u32, u64>, serde_json::Value)> {
    let mut child = Command::new(SHMQ)
        .args([
            "recv",
            q.to_str().unwrap(),
            g,
            "--count",
            &n.to_string(),
            "--stats",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let g = g.to_owned();
    thread::spawn(move || {
        let mut next: HashMap<u32, u64> = HashMap::new();
        for l in BufReader::new(out).lines() {
            let l = l.unwrap();
            let mut it = l.splitn(3, ' ');
            let p: u32 = it.next().unwrap().parse().unwrap();
            let c: u64 = it.next().unwrap().parse().unwrap();
            assert_eq!(l, line(p, c), "group {g}: garbled payload");
            let want = next.entry(p).or_insert(first);
            assert_eq!(
                c, *want,
                "group {g}: producer {p} gap, duplicate or reorder"
            );
            *want += 1;
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "recv {g}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stats = String::from_utf8(out.stderr).unwrap();
        (next, serde_json::from_str(stats.trim()).unwrap())
    })
}

/// Every producer's `per` messages arrived once, in order, with dense seqs.
fn check(g: &str, got: (HashMap<u32, u64>, serde_json::Value), producers: u32, per: u64) {
    let (next, stats) = got;
    for p in 0..producers {
        assert_eq!(
            next.get(&p).copied().unwrap_or(0),
            per,
            "group {g}: producer {p}"
        );
    }
    let n = producers as u64 * per;
    assert_eq!(stats["received"], n, "{g}: {stats}");
    assert_eq!(stats["in_order"], true, "{g}: {stats}");
    assert_eq!(stats["first_seq"], 0, "{g}: {stats}");
    assert_eq!(stats["last_seq"], n - 1, "{g}: {stats}");
}

#[test]
fn million_messages_slow_group_spills_producers_never_wait() {
    let dir = tempfile::tempdir().unwrap();
    let q = setup(dir.path(), &[]);
    let (producers, per) = (2u32, 500_000 * scale());
    let fast = consumer(&q, "fast", producers as u64 * per);
    let procs: Vec<_> = (0..producers)
        .map(|p| producer(&q, p, per, 10_000, Duration::ZERO))
        .collect();
    for (child, feeder) in procs {
        feeder.join().unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let during = stat(&q);
    check("fast", fast.join().unwrap(), producers, per);
    assert_eq!(group(&during, "slow")["on_disk"], true, "{during}");
    let slow = consumer(&q, "slow", producers as u64 * per).join().unwrap();
    check("slow", slow, producers, per);
    let spill = &during["spill"];
    eprintln!(
        "spill: {spill}; full_waits {}, stall_waits {}",
        during["full_waits"], during["stall_waits"]
    );
    assert!(spill["spilled"].as_u64().unwrap() >= producers as u64 * per - 1000);
    // The producers never met back-pressure from the slow group: no claim
    // found the ring full of unread messages. (stall_waits counts a full ring
    // behind another producer's unfinished claim, which a scheduler on an
    // oversubscribed machine causes and no consumer can help.)
    assert_eq!(
        during["full_waits"], 0,
        "producers were held back: {during}"
    );
}

#[test]
fn spilling_process_killed_at_random_points() {
    let dir = tempfile::tempdir().unwrap();
    // Small segments, so that kills also land in segment rolls and retention.
    let q = setup(dir.path(), &["--segment-size", "32KiB"]);
    let per = 60_000 * scale();
    let kills_wanted = 60 * scale();
    let fast = consumer(&q, "fast", per);
    // Paced, so that production lasts while the spillers are killed.
    let (mut prod, feeder) = producer(&q, 0, per, 200, Duration::from_millis(4));
    let mut rng = Rng::new();
    let mut kills = 0;
    let mut produced = false;
    let points = shmq::CRASH_POINTS;
    while kills < kills_wanted || !produced {
        // A process that does nothing but spill rounds, back to back. Every
        // other one is killed at a random moment; the rest kill themselves
        // (SIGKILL) at a named point of a round, so that narrow windows are
        // hit too.
        let mut cmd = Command::new(SHMQ);
        cmd.args(["spill", q.to_str().unwrap(), "--every", "0s"])
            .stderr(Stdio::null());
        if kills % 2 == 1 {
            cmd.env(
                "SHMQ_CRASH_POINT",
                points[(kills as usize / 2) % points.len()],
            );
        }
        let mut sp = cmd.spawn().unwrap();
        thread::sleep(Duration::from_micros(500 + rng.below(15_000)));
        sp.kill().unwrap(); // SIGKILL (a no-op if it died at its crash point)
        sp.wait().unwrap();
        kills += 1;
        produced = produced || prod.try_wait().unwrap().is_some();
    }
    feeder.join().unwrap();
    let out = prod.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    check("fast", fast.join().unwrap(), 1, per);
    let s = stat(&q);
    eprintln!("{kills} kills; spill: {}", s["spill"]);
    assert!(
        s["spill"]["recoveries"].as_u64().unwrap() > 0,
        "no kill landed inside a round: {s}"
    );
    let slow = consumer(&q, "slow", per).join().unwrap();
    check("slow", slow, 1, per);
    shmq(&["check", q.to_str().unwrap()]);
}

#[test]
fn disk_full_gives_back_pressure_and_an_error_then_resumes() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let q = setup(dir.path(), &["--segment-size", "1MiB"]);
    let per = 5_000u64;
    // A producer that may not grow any file past 64 KiB (RLIMIT_FSIZE): once
    // the log's segment reaches that, its spill rounds fail with EFBIG.
    let mut cmd = Command::new(SHMQ);
    cmd.args(["send", q.to_str().unwrap(), "--timeout", "1s"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe and touches no memory of the
    // parent; it only lowers a limit of the child about to exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 64 << 10,
                rlim_max: 64 << 10,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        })
    };
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = thread::spawn(move || {
        for c in 0..per {
            // The producer gives up part way: a broken pipe then is expected.
            if writeln!(stdin, "{}", line(0, c)).is_err() {
                break;
            }
        }
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the limited producer should give up: {err}"
    );
    assert!(
        err.contains("spilling to disk failed") && err.contains("File too large"),
        "clear error expected: {err}"
    );
    let said = String::from_utf8_lossy(&out.stdout);
    let sent: u64 = said
        .split("sent ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no 'sent N' line on stdout: {said}{err}"));
    assert!(sent > 0 && sent < per, "sent {sent} of {per}");
    let s = stat(&q);
    assert!(s["spill"]["errors"].as_u64().unwrap() > 0, "{s}");
    assert_eq!(s["spill"]["last_errno"], libc::EFBIG, "{s}");
    // Space returns: a producer without the limit sends the rest.
    send_lines(&q, sent..per);
    assert!(stat(&q)["spill"]["last_errno"].is_null());
    for g in ["fast", "slow"] {
        check(g, consumer(&q, g, per).join().unwrap(), 1, per);
    }
}

/// Sends `line(0, c)` for `c` in `range` through one `shmq send`.
fn send_lines(q: &Path, range: std::ops::Range<u64>) {
    let n = range.end - range.start;
    let (child, feeder) =
        common::shmq_send_lines(q, n, n, Duration::ZERO, move |c| line(0, range.start + c));
    feeder.join().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn seek_replay_and_dump_from_a_journal() {
    let dir = tempfile::tempdir().unwrap();
    let q = setup(
        dir.path(),
        &["--segment-size", "16KiB", "--retain-bytes", "1MiB"],
    );
    let qs = q.to_str().unwrap();
    let n = 3000;
    send_lines(&q, 0..n);
    for g in ["fast", "slow"] {
        check(g, consumer(&q, g, n).join().unwrap(), 1, n);
    }
    // dump prints retained messages without moving anything.
    let out = shmq(&["dump", qs, "--from", "100", "--count", "3", "--json"]);
    let seqs: Vec<u64> = out
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["payload"], line(0, v["seq"].as_u64().unwrap()));
            v["seq"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(seqs, [100, 101, 102]);
    // Replay from 100: the group gets 100.. again, from the log then the ring.
    shmq(&["group", "seek", qs, "fast", "100"]);
    let (next, stats) = consumer_from(&q, "fast", n - 100, 100).join().unwrap();
    assert_eq!(next[&0], n);
    assert_eq!(stats["first_seq"], 100);
    assert_eq!(stats["in_order"], true);
    // earliest is the oldest retained; beyond the tail is refused.
    shmq(&["group", "seek", qs, "slow", "earliest"]);
    check("slow", consumer(&q, "slow", n).join().unwrap(), 1, n);
    let err = shmq_fails(&["group", "seek", qs, "slow", "999999"]);
    assert!(err.contains("not retained"), "{err}");
    // latest: nothing until the next message.
    shmq(&["group", "seek", qs, "slow", "latest"]);
    send_lines(&q, n..n + 1);
    let (next, stats) = consumer_from(&q, "slow", 1, n).join().unwrap();
    assert_eq!(
        (next[&0], &stats["first_seq"]),
        (n + 1, &serde_json::json!(n))
    );
    // Retention kept the read segments (1 MiB retained).
    shmq(&["spill", qs]);
    let s = stat(&q);
    assert_eq!(s["spill"]["first_seq"], 0, "{s}");
    assert!(s["spill"]["segments"].as_u64().unwrap() > 10, "{s}");
}

#[test]
fn retention_deletes_only_what_every_group_has_read() {
    let dir = tempfile::tempdir().unwrap();
    let q = setup(dir.path(), &["--segment-size", "16KiB"]);
    let qs = q.to_str().unwrap();
    let n = 4000;
    send_lines(&q, 0..n);
    let before = stat(&q)["spill"]["segments"].as_u64().unwrap();
    assert!(before > 10, "{before} segments");
    // fast reads everything, slow half: a round may delete only below slow.
    check("fast", consumer(&q, "fast", n).join().unwrap(), 1, n);
    let (next, _) = consumer(&q, "slow", n / 2).join().unwrap();
    assert_eq!(next[&0], n / 2);
    shmq(&["spill", qs]);
    let mid = stat(&q);
    let first = mid["spill"]["first_seq"].as_u64().unwrap();
    assert!(first > 0 && first <= n / 2, "{mid}");
    assert!(mid["spill"]["segments"].as_u64().unwrap() < before, "{mid}");
    let (next, stats) = consumer_from(&q, "slow", n / 2, n / 2).join().unwrap();
    assert_eq!(
        (next[&0], &stats["last_seq"]),
        (n, &serde_json::json!(n - 1))
    );
    // Everything read: a round deletes every segment, the one being
    // written too (it used to stay: up to a segment of read messages per
    // queue, and a full disk stayed full).
    shmq(&["spill", qs]);
    let after = stat(&q);
    assert_eq!(after["spill"]["segments"], 0, "{after}");
    assert_eq!(after["spill"]["bytes"], 0, "{after}");
    // A seek before what is retained is refused.
    let err = shmq_fails(&["group", "seek", qs, "slow", "0"]);
    assert!(err.contains("not retained"), "{err}");
}
