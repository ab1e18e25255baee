//! What the `shmq` commands print: the formats scripts read, and the one-line
//! confirmations of the commands that change a queue. Everything here runs
//! the real binary.

use std::io::Write;
use std::process::{Command, Stdio};

const SHMQ: &str = env!("CARGO_BIN_EXE_shmq");

/// What one run of `shmq ARGS` (fed `stdin`) printed, and how it ended.
struct Run {
    code: Option<i32>,
    out: String,
    err: String,
}

fn run_with(args: &[&str], stdin: &[u8]) -> Run {
    let mut child = Command::new(SHMQ)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code(),
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
        err: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `shmq ARGS` with empty stdin, which must succeed; its stdout.
fn ok(args: &[&str]) -> String {
    let r = run_with(args, b"");
    assert_eq!(r.code, Some(0), "shmq {args:?}: {}{}", r.out, r.err);
    r.out
}

/// A queue `dir/q` with group `g` reading from its first message.
fn queue(dir: &tempfile::TempDir) -> String {
    let q = dir.path().join("q").to_str().unwrap().to_owned();
    ok(&["create", &q, "--capacity", "64KiB"]);
    ok(&["group", "add", &q, "g", "--from", "earliest"]);
    q
}

/// `shmq dump` prints each message as SEQ, a tab and the payload as sent
/// (as `recv` prints it); it printed the payloads alone, unnumbered.
#[test]
fn dump_prints_each_message_with_its_sequence_number() {
    let dir = tempfile::tempdir().unwrap();
    let q = queue(&dir);
    let r = run_with(&["send", &q], b"first\nwith\ta tab\n\nlast\n");
    assert_eq!(r.code, Some(0), "{}", r.err);
    assert_eq!(
        ok(&["dump", &q]),
        "0\tfirst\n1\twith\ta tab\n2\t\n3\tlast\n"
    );
    assert_eq!(
        ok(&["dump", &q, "--from", "1", "--count", "2"]),
        "1\twith\ta tab\n2\t\n"
    );
    // The payload column is what `recv` prints for the same messages.
    let dumped: Vec<String> = ok(&["dump", &q])
        .lines()
        .map(|l| l.split_once('\t').unwrap().1.to_owned())
        .collect();
    let received: Vec<String> = ok(&["recv", &q, "g", "--count", "4"])
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(dumped, received);
}

/// Every command takes the queue file first, then the group or producer
/// name, then other positionals, options last: `recv` took its group as
/// `--group GROUP`, unlike `group rm PATH GROUP`.
#[test]
fn every_command_takes_path_then_name_then_options() {
    let usages: &[(&[&str], &str)] = &[
        (&["create"], "create [OPTIONS] <PATH>"),
        (&["send"], "send [OPTIONS] <PATH>"),
        (&["recv"], "recv [OPTIONS] <PATH> <GROUP>"),
        (&["stat"], "stat [OPTIONS] <PATH>"),
        (&["dump"], "dump [OPTIONS] <PATH>"),
        (&["check"], "check [OPTIONS] <PATH>"),
        (&["gc"], "gc <PATH>"),
        (&["spill"], "spill [OPTIONS] <PATH>"),
        (&["group", "add"], "group add [OPTIONS] <PATH> <GROUP>"),
        (&["group", "rm"], "group rm <PATH> <GROUP>"),
        (&["group", "seek"], "group seek <PATH> <GROUP> <TO>"),
        (&["producer", "rm"], "producer rm <PATH> <NAME>"),
        (&["txn", "list"], "txn list [OPTIONS] <PATH>"),
        (&["txn", "commit"], "txn commit <PATH> <PRODUCER> <TXID>"),
        (&["txn", "abort"], "txn abort <PATH> <PRODUCER> <TXID>"),
    ];
    for (cmd, usage) in usages {
        let help = ok(&[cmd, &["--help"][..]].concat());
        assert!(
            help.contains(&format!("Usage: shmq {usage}\n")),
            "shmq {cmd:?}: expected 'Usage: shmq {usage}' in:\n{help}"
        );
    }
    // The group as the second argument, as `group add` and `group rm` take it.
    let dir = tempfile::tempdir().unwrap();
    let q = queue(&dir);
    let r = run_with(&["send", &q], b"hello\n");
    assert_eq!(r.code, Some(0), "{}", r.err);
    assert_eq!(ok(&["recv", &q, "g", "--count", "1"]), "hello\n");
    // The old form is a usage error, and the usage line shows the new one.
    let r = run_with(&["recv", &q, "--group", "g", "--count", "1"], b"");
    assert_eq!(r.code, Some(2), "{}{}", r.out, r.err);
    assert!(
        r.err.contains("Usage: shmq recv <PATH> <GROUP>"),
        "{}",
        r.err
    );
}

/// A child process, killed (if still running) when the test ends or fails.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The keys of a JSON object, sorted.
fn keys(v: &serde_json::Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    k.sort_unstable();
    k
}

fn sorted<'a>(k: &[&'a str]) -> Vec<&'a str> {
    let mut k = k.to_vec();
    k.sort_unstable();
    k
}

/// `stat --json` names every value as the library field it shows (`Stat`,
/// `Geometry`, `GroupStat`, `MemberStat`, `ProducerStat`, `NameStat`,
/// `SpillStat`). It had `members` a count beside a `member_list`, `source`
/// for `on_disk`, `ack_wait_ms`, `producer_names` for `names`, `last_error`
/// for `last_errno`, the geometry spread over the top level (without
/// `ack_entries`) and no `tail_pos`.
#[test]
fn stat_json_keys_are_the_library_field_names() {
    let dir = tempfile::tempdir().unwrap();
    let q = dir.path().join("q").to_str().unwrap().to_owned();
    let spill = dir.path().join("spill").to_str().unwrap().to_owned();
    ok(&["create", &q, "--capacity", "64KiB", "--spill-dir", &spill]);
    ok(&["group", "add", &q, "g", "--ack-wait", "1500ms"]);
    // A live member and a live named producer.
    let member = Killed(
        Command::new(SHMQ)
            .args(["recv", &q, "g"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut producer = Killed(
        Command::new(SHMQ)
            .args(["send", &q, "--producer", "p"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut stdin = producer.0.stdin.take().unwrap();
    writeln!(stdin, "hello").unwrap();
    stdin.flush().unwrap();
    let stat =
        || -> serde_json::Value { serde_json::from_str(&ok(&["stat", &q, "--json"])).unwrap() };
    let t0 = std::time::Instant::now();
    let s = loop {
        let s = stat();
        assert!(s["groups"][0]["members"].is_array(), "{s}");
        let attached = s["groups"][0]["members"]
            .as_array()
            .is_some_and(|m| !m.is_empty())
            && s["producers"].as_array().is_some_and(|p| !p.is_empty())
            && s["tail_seq"] == 1;
        if attached {
            break s;
        }
        assert!(t0.elapsed().as_secs() < 30, "nobody attached: {s}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    drop(stdin);
    assert!(producer.0.wait().unwrap().success());

    assert_eq!(
        keys(&s),
        sorted(&[
            "path",
            "geometry",
            "tail_seq",
            "tail_pos",
            "head_seq",
            "full_waits",
            "stall_waits",
            "aborted",
            "sleeping_consumers",
            "sleeping_producers",
            "groups",
            "producers",
            "names",
            "spill",
            "staged",
        ]),
        "Stat: {s}"
    );
    assert_eq!(
        keys(&s["staged"]),
        sorted(&["scheduled", "next_due_ns", "transactions", "damaged"]),
        "StagedStat: {s}"
    );
    assert_eq!(
        keys(&s["geometry"]),
        sorted(&[
            "capacity",
            "max_msg",
            "max_groups",
            "max_members",
            "max_producers",
            "ack_entries",
            "file_size",
        ]),
        "Geometry: {s}"
    );
    assert_eq!(s["geometry"]["capacity"], 64 << 10);
    let g = &s["groups"][0];
    assert_eq!(
        keys(g),
        sorted(&[
            "name",
            "next_seq",
            "lag",
            "members",
            "on_disk",
            "pending",
            "ack_entries_used",
            "max_unacked",
            "ack_wait",
            "expired",
            "ttl",
            "ttl_expired",
            "ordered_by_key",
            "parked",
            "ack_entries",
            "redelivered",
            "dead_lettered",
            "max_attempts",
            "dead_letter",
            "dead_letters_only",
        ]),
        "GroupStat: {s}"
    );
    assert_eq!(g["on_disk"], false, "{s}");
    assert_eq!(g["ack_wait"], 1.5, "{s}");
    assert!(g["ack_entries"].is_array(), "{s}");
    let members = g["members"].as_array().unwrap();
    assert_eq!(members.len(), 1, "{s}");
    assert_eq!(
        keys(&members[0]),
        sorted(&["pid", "alive", "delivered", "acked", "unacked", "asleep"]),
        "MemberStat: {s}"
    );
    assert_eq!(members[0]["pid"], member.0.id(), "{s}");
    assert_eq!(members[0]["alive"], true, "{s}");
    assert_eq!(
        keys(&s["producers"][0]),
        sorted(&["pid", "name", "alive", "claim_seq", "asleep"]),
        "ProducerStat: {s}"
    );
    assert_eq!(s["producers"][0]["name"], "p", "{s}");
    assert_eq!(
        keys(&s["names"][0]),
        sorted(&[
            "id",
            "name",
            "pid",
            "last_pseq",
            "published",
            "duplicates",
            "attaches",
        ]),
        "NameStat: {s}"
    );
    assert_eq!(s["names"][0]["published"], 1, "{s}");
    assert_eq!(
        keys(&s["spill"]),
        sorted(&[
            "dir",
            "segments",
            "bytes",
            "first_seq",
            "last_seq",
            "spilled",
            "spill_bytes",
            "rounds",
            "transfers",
            "errors",
            "recoveries",
            "last_errno",
            "front_seq",
            "round",
        ]),
        "SpillStat: {s}"
    );
    assert!(s["spill"]["last_errno"].is_null(), "{s}");
}

/// `spill --every` says on stdout that it runs (it printed nothing while its
/// rounds succeeded).
#[test]
fn spill_every_says_it_runs() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let q = dir.path().join("q").to_str().unwrap().to_owned();
    let spill = dir.path().join("spill").to_str().unwrap().to_owned();
    ok(&["create", &q, "--capacity", "64KiB", "--spill-dir", &spill]);
    let mut spiller = Killed(
        Command::new(SHMQ)
            .args(["spill", &q, "--every", "50ms"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // Read on a thread: without the line, the test fails, not hangs.
    let stdout = spiller.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("spill --every printed no line within 10 s");
    assert_eq!(line, "running a spill round every 50ms until killed\n");
}

/// `send --batch N` publishes N lines at a time with one claim, all or
/// nothing: killed (SIGKILL, at the crash point between committing a batch's
/// later records and its first) in its first batch, it leaves no message
/// for any group; run again, it sends every line in batches, in order.
#[test]
fn send_batch_is_all_or_nothing_when_killed() {
    let dir = tempfile::tempdir().unwrap();
    let q = queue(&dir);
    let lines: String = (0..12).map(|i| format!("line {i}\n")).collect();
    let mut child = Command::new(SHMQ)
        .args(["send", &q, "--batch", "5"])
        .env("SHMQ_CRASH_POINT", "producer-batch-rest-committed")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(9), "{out:?}");
    let r = run_with(&["send", &q, "--batch", "5"], lines.as_bytes());
    assert_eq!(r.code, Some(0), "{}", r.err);
    assert_eq!(r.out, "sent 12 messages, seq 5..=16\n");
    let got = ok(&["recv", &q, "g", "--timeout", "500ms"]);
    assert_eq!(got, lines, "the killed batch (seq 0..=4) is nobody's");
    let st: serde_json::Value = serde_json::from_str(&ok(&["stat", &q, "--json"])).unwrap();
    assert_eq!(st["aborted"], 1, "{st}");
    // Batches take no explicit numbering or pacing.
    let r = run_with(
        &[
            "send",
            &q,
            "--count",
            "4",
            "--size",
            "8",
            "--batch",
            "2",
            "--interval",
            "1ms",
        ],
        b"",
    );
    assert_eq!(r.code, Some(2), "{}", r.err);
    assert!(r.err.contains("cannot be used with"), "{}", r.err);
}
