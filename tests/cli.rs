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
    let received: Vec<String> = ok(&["recv", &q, "--group", "g", "--count", "4"])
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(dumped, received);
}
