//! Every kind of bad input gets its typed error from the library, and one clear
//! line and a non-zero exit from the CLI, never a panic.

use shmq::{GroupError, OpenError, Queue, QueueOptions, SendError, StartAt};
use std::io::{Seek, SeekFrom, Write};
use std::process::Command;

const SHMQ: &str = env!("CARGO_BIN_EXE_shmq");

/// Runs the CLI, expects failure with exactly one stderr line containing `needle`.
fn cli_fails(args: &[&str], needle: &str) {
    let out = Command::new(SHMQ).args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "shmq {args:?} should fail");
    assert!(!err.contains("panicked"), "shmq {args:?} panicked: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line expected, got: {err}"
    );
    assert!(
        err.contains(needle),
        "shmq {args:?}: expected '{needle}' in: {err}"
    );
}

fn small() -> QueueOptions {
    QueueOptions::new()
        .capacity(64 << 10)
        .max_msg(1024)
        .max_groups(2)
        .max_members(2)
}

fn made(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let p = dir.path().join("q");
    small().create(&p).unwrap();
    p
}

#[test]
fn wrong_magic() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("foreign");
    std::fs::write(&p, vec![0x42u8; 70_000]).unwrap();
    assert!(matches!(Queue::open(&p), Err(OpenError::NotAQueue(_))));
    cli_fails(&["stat", p.to_str().unwrap()], "not a shmq queue");
    // Empty and tiny files too.
    std::fs::write(&p, b"").unwrap();
    assert!(matches!(Queue::open(&p), Err(OpenError::NotAQueue(_))));
}

#[test]
fn wrong_version() {
    let dir = tempfile::tempdir().unwrap();
    let p = made(&dir);
    let mut f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    f.seek(SeekFrom::Start(8)).unwrap();
    f.write_all(&99u32.to_ne_bytes()).unwrap();
    drop(f);
    match Queue::open(&p) {
        Err(OpenError::WrongVersion {
            found: 99,
            expected: shmq::FORMAT_VERSION,
            ..
        }) => {}
        other => panic!("expected WrongVersion, got {:?}", other.err()),
    }
    cli_fails(
        &["send", p.to_str().unwrap(), "--count", "1", "--size", "1"],
        "version 99",
    );
}

#[test]
fn truncated_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = made(&dir);
    let len = std::fs::metadata(&p).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    match Queue::open(&p) {
        Err(OpenError::Truncated {
            expected, found, ..
        }) => assert_eq!((expected, found), (len, len / 2)),
        other => panic!("expected Truncated, got {:?}", other.err()),
    }
    cli_fails(&["recv", p.to_str().unwrap(), "g"], "truncated");
    // Cut inside the header.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(100)
        .unwrap();
    assert!(matches!(Queue::open(&p), Err(OpenError::Truncated { .. })));
}

#[test]
fn corrupt_geometry_in_header() {
    let dir = tempfile::tempdir().unwrap();
    let p = made(&dir);
    let mut f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    f.seek(SeekFrom::Start(16)).unwrap();
    f.write_all(&1000u64.to_ne_bytes()).unwrap(); // capacity not a power of two
    drop(f);
    assert!(matches!(Queue::open(&p), Err(OpenError::BadGeometry(_))));
}

#[test]
fn missing_file_and_no_clobber() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("absent");
    assert!(matches!(Queue::open(&p), Err(OpenError::NotFound(_))));
    cli_fails(&["stat", p.to_str().unwrap()], "no such queue file");
    let p = made(&dir);
    assert!(matches!(
        small().create(&p),
        Err(OpenError::AlreadyExists(_))
    ));
    cli_fails(&["create", p.to_str().unwrap()], "exists");
    // Asked to replace, it does.
    assert!(QueueOptions::new().replace(true).create(&p).is_ok());
    // No temporary files are left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn bad_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("q");
    let bad = QueueOptions::new().capacity(1000);
    assert!(matches!(bad.create(&p), Err(OpenError::BadGeometry(_))));
    cli_fails(
        &["create", p.to_str().unwrap(), "--capacity", "1000"],
        "power of two",
    );
    cli_fails(
        &[
            "create",
            p.to_str().unwrap(),
            "--capacity",
            "64KiB",
            "--max-msg",
            "1MiB",
        ],
        "does not fit",
    );
    let out = Command::new(SHMQ)
        .args(["create", p.to_str().unwrap(), "--capacity", "lots"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a size"));
}

#[test]
fn message_too_large() {
    let q = small().in_memory().unwrap();
    let mut p = q.producer().attach().unwrap();
    assert_eq!(
        p.send(&[0u8; 1025]),
        Err(SendError::TooLarge {
            len: 1025,
            max: 1024
        })
    );
    assert_eq!(
        p.try_send(&[0u8; 1025]),
        Err(SendError::TooLarge {
            len: 1025,
            max: 1024
        })
    );
    assert!(p.claim_send(4096).is_err());
    assert!(p.send(&[0u8; 1024]).is_ok());
    let dir = tempfile::tempdir().unwrap();
    let path = made(&dir);
    cli_fails(
        &[
            "send",
            path.to_str().unwrap(),
            "--count",
            "1",
            "--size",
            "2KiB",
        ],
        "maximum message size",
    );
}

#[test]
fn unknown_group() {
    let q = small().in_memory().unwrap();
    assert!(matches!(q.consumer("nope").attach(), Err(GroupError::Unknown(g)) if g == "nope"));
    assert!(matches!(
        q.remove_group("nope"),
        Err(GroupError::Unknown(_))
    ));
    let dir = tempfile::tempdir().unwrap();
    let p = made(&dir);
    cli_fails(
        &["recv", p.to_str().unwrap(), "nope"],
        "unknown group 'nope'",
    );
}

#[test]
fn group_table_full_and_members_full_and_names() {
    let q = small().in_memory().unwrap();
    q.add_group("a", StartAt::Latest).unwrap();
    assert!(matches!(
        q.add_group("a", StartAt::Latest),
        Err(GroupError::Exists(_))
    ));
    q.add_group("b", StartAt::Earliest).unwrap();
    assert!(matches!(
        q.add_group("c", StartAt::Latest),
        Err(GroupError::TableFull { max: 2 })
    ));
    let _m1 = q.consumer("a").attach().unwrap();
    let _m2 = q.consumer("a").attach().unwrap();
    assert!(matches!(
        q.consumer("a").attach(),
        Err(GroupError::MembersFull { max: 2, .. })
    ));
    for bad in ["", "has space", "slash/y", &"x".repeat(65)] {
        assert!(
            matches!(
                q.add_group(bad, StartAt::Latest),
                Err(GroupError::InvalidName(_))
            ),
            "{bad:?}"
        );
    }
    // Removing frees the slot.
    q.remove_group("b").unwrap();
    q.add_group("c", StartAt::Latest).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = made(&dir);
    let ps = p.to_str().unwrap();
    for g in ["x", "y"] {
        assert!(Command::new(SHMQ)
            .args(["group", "add", ps, g])
            .status()
            .unwrap()
            .success());
    }
    cli_fails(&["group", "add", ps, "z"], "group table full");
    cli_fails(&["group", "add", ps, "x"], "exists already");
    cli_fails(&["group", "add", ps, "bad name"], "invalid name");
}

/// A small ring just works with the default options: `max_msg` 0 fits the
/// largest payload to the ring (a quarter of it, less the headers), as the
/// CLI's `create` does. A `max_msg` set by hand that does not fit is still
/// refused.
#[test]
fn small_rings_fit_their_largest_message_by_default() {
    let dir = tempfile::tempdir().unwrap();
    for capacity in [256u64, 512, 4096, 64 << 10, 1 << 20, 4 << 20] {
        let p = dir.path().join(format!("q{capacity}"));
        let q = QueueOptions::new()
            .capacity(capacity)
            .create(&p)
            .unwrap_or_else(|e| panic!("capacity {capacity}: {e}"));
        let max = q.geometry().max_msg;
        assert_eq!(max, QueueOptions::fitting_max_msg(capacity));
        assert!(max <= 64 << 10, "{capacity}: {max}");
        q.add_group("g", StartAt::Latest).unwrap();
        let mut c = q.consumer("g").attach().unwrap();
        let mut p = q.producer().attach().unwrap();
        let big = vec![7u8; max as usize];
        p.send(&big).unwrap();
        assert_eq!(c.try_recv().unwrap().payload, big);
        assert!(matches!(
            p.try_send(&vec![7u8; max as usize + 1]),
            Err(SendError::TooLarge { .. })
        ));
    }
    let too_big = QueueOptions::new().capacity(4096).max_msg(4096);
    assert!(matches!(
        too_big.create(dir.path().join("big")),
        Err(OpenError::BadGeometry(_))
    ));
}

/// Every handle a user holds prints with `{:?}` (what it is, never the
/// shared memory behind it).
#[test]
fn handles_are_debug() {
    let dir = tempfile::tempdir().unwrap();
    let q = small().create(dir.path().join("q")).unwrap();
    q.add_group("g", StartAt::Latest).unwrap();
    let mut p = q.producer().attach().unwrap();
    let mut c = q.consumer("g").attach().unwrap();
    let s = format!("{q:?} {p:?} {c:?}");
    assert!(
        s.contains("Queue") && s.contains("Producer") && s.contains("\"g\""),
        "{s}"
    );
    let guard = p.claim_send(3).unwrap();
    assert!(format!("{guard:?}").contains("SendGuard"));
    guard.commit();
    let r = c.recv_ref().unwrap();
    assert!(format!("{r:?}").contains("len: 3"), "{r:?}");
}

/// A usage error prints as clap formats it — what is wrong, the usage line,
/// a suggestion for a misspelt command — with exit status 2; `shmq` alone
/// lists the commands.
#[test]
fn usage_errors_show_the_usage() {
    let run = |args: &[&str]| {
        let out = Command::new(SHMQ).args(args).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let (code, text) = run(&[]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("Commands:") && text.contains("recv"),
        "{text}"
    );
    let (code, text) = run(&["recv", "/dev/shm/nothing-here"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("<GROUP>") && text.contains("Usage: shmq recv"),
        "{text}"
    );
    let (code, text) = run(&["stta", "/dev/shm/nothing-here"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("'stat'"), "{text}");
}

/// Commands that change state say what they did, in the right number, on
/// stdout (create, group add|rm|seek, producer rm and send said it on
/// stderr), and `send --size` without `--count` is a usage error (it read
/// stdin instead and "sent 0 messages").
#[test]
fn commands_say_what_they_did() {
    let dir = tempfile::tempdir().unwrap();
    let q = dir.path().join("q");
    let q = q.to_str().unwrap();
    let spill = dir.path().join("spill");
    let spill = spill.to_str().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(SHMQ)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // Succeeds, and says `said` on stdout and nothing on stderr.
    let says = |args: &[&str], said: &str| {
        let (code, out, err) = run(args);
        assert_eq!(code, Some(0), "shmq {args:?}: {out}{err}");
        assert!(
            out.contains(said) && err.is_empty(),
            "shmq {args:?}: expected '{said}' on stdout, nothing on stderr; stdout: {out}stderr: {err}"
        );
    };
    says(
        &["create", q, "--capacity", "64KiB", "--spill-dir", spill],
        &format!("created {q}: ring 64 KiB"),
    );
    says(
        &["group", "add", q, "g"],
        "group 'g' added, starting at seq 0",
    );
    says(
        &["group", "add", q, "dlq", "--dead-letters"],
        "dead-letter group 'dlq' added",
    );
    says(
        &["send", q, "--count", "1", "--size", "8"],
        "sent 1 message, seq 0..=0",
    );
    says(
        &["send", q, "--count", "2", "--size", "8", "--producer", "p"],
        "sent 2 messages, seq 1..=2",
    );
    says(
        &[
            "send",
            q,
            "--count",
            "3",
            "--size",
            "8",
            "--producer",
            "p",
            "--pseq",
            "0",
        ],
        "skipped 2 duplicates (pseq 0..=1, committed before)",
    );
    says(&["producer", "rm", q, "p"], "producer name 'p' removed");
    says(
        &["group", "seek", q, "g", "earliest"],
        "group 'g' now starts at seq 0",
    );
    says(&["gc", q], "0 dead member(s) removed");
    says(
        &["spill", q],
        "spilled 0 messages; 0 groups moved to the log, 0 back to the ring",
    );
    let (code, _, err) = run(&["send", q, "--size", "64"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--count"), "{err}");
    says(&["group", "rm", q, "g"], "group 'g' removed");
}

/// Every positional argument of every command says what it is in `--help`.
#[test]
fn every_argument_has_help() {
    let cmds: &[&[&str]] = &[
        &["create"],
        &["send"],
        &["recv"],
        &["dump"],
        &["check"],
        &["gc"],
        &["spill"],
        &["stat"],
        &["group", "add"],
        &["group", "rm"],
        &["group", "seek"],
        &["producer", "rm"],
    ];
    for cmd in cmds {
        let out = Command::new(SHMQ)
            .args(*cmd)
            .arg("--help")
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        let args = help
            .split("Arguments:")
            .nth(1)
            .and_then(|a| a.split("Options:").next())
            .unwrap_or("");
        // `<ARG>  help` (short help), or `<ARG>` with the help on the next
        // line (long help: a command with a long description has it).
        let lines: Vec<&str> = args.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if !line.trim_start().starts_with('<') {
                continue;
            }
            let described = line
                .trim()
                .split_once('>')
                .is_some_and(|(_, d)| !d.trim().is_empty())
                || lines
                    .get(i + 1)
                    .is_some_and(|n| !n.trim().is_empty() && !n.trim().starts_with('<'));
            assert!(
                described,
                "shmq {cmd:?}: '{}' has no help text",
                line.trim()
            );
        }
    }
}
