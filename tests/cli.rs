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
