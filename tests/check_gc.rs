//! `shmq check` finds broken invariants; `shmq gc` removes dead members.

mod common;

use common::{queue_with_group, wait_members};
use shmq::layout::Geometry;
use shmq::{Queue, QueueOptions, StartAt};
use std::os::unix::fs::FileExt;
use std::process::Command;

const SHMQ: &str = env!("CARGO_BIN_EXE_shmq");

/// A queue with two groups and records that have wrapped the ring.
fn queue(dir: &std::path::Path) -> (std::path::PathBuf, Geometry) {
    let p = dir.join("q");
    let q = QueueOptions::new()
        .capacity(4096)
        .max_msg(256)
        .max_groups(4)
        .create(&p)
        .unwrap();
    q.add_group("a", StartAt::Latest).unwrap();
    q.add_group("b", StartAt::Latest).unwrap();
    let mut prod = q.producer().attach().unwrap();
    let mut a = q.consumer("a").attach().unwrap();
    let mut b = q.consumer("b").attach().unwrap();
    for i in 0..100u32 {
        prod.send(&i.to_le_bytes().repeat(1 + i as usize % 9))
            .unwrap();
        a.recv().unwrap();
        if i < 90 {
            b.recv().unwrap();
        }
    }
    let r = q.check();
    assert!(r.ok(), "{:?}", r.problems);
    assert!(r.records >= 10, "{r:?}");
    assert_eq!(r.groups, 2);
    (p, q.geometry().layout())
}

fn check_cli(p: &std::path::Path) -> (bool, String, String) {
    let out = Command::new(SHMQ)
        .args(["check", p.to_str().unwrap()])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn check_passes_a_good_queue_and_finds_a_bad_record() {
    let dir = tempfile::tempdir().unwrap();
    let (p, geo) = queue(dir.path());
    let (ok, out, _) = check_cli(&p);
    assert!(ok && out.contains("0 problem(s)"), "{out}");
    // Group b has 10 messages unread: break the length of the record at its
    // cursor (retained, since HEAD never passes a group's cursor).
    let b_pos = {
        let f = std::fs::File::open(&p).unwrap();
        let mut w = [0u8; 8];
        // Group slot 1's cursor: (seq << 64 | pos), pos in the low word.
        f.read_exact_at(&mut w, (geo.slot_off(1) + 128) as u64)
            .unwrap();
        u64::from_ne_bytes(w)
    };
    let len_at = geo.ring_at(b_pos) + 8;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .write_all_at(&0xffffu64.to_ne_bytes(), len_at as u64)
        .unwrap();
    let r = Queue::open(&p).unwrap().check();
    assert!(
        r.problems
            .iter()
            .any(|x| x.contains("impossible length 65535")),
        "{:?}",
        r.problems
    );
    let (ok, out, err) = check_cli(&p);
    assert!(!ok);
    assert!(out.contains("problem: record at position"), "{out}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

#[test]
fn check_finds_a_cursor_outside_the_ring() {
    let dir = tempfile::tempdir().unwrap();
    let (p, geo) = queue(dir.path());
    let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    // Group a's cursor position far beyond the tail.
    f.write_all_at(&(1u64 << 40).to_ne_bytes(), (geo.slot_off(0) + 128) as u64)
        .unwrap();
    let r = Queue::open(&p).unwrap().check();
    assert!(
        r.problems.iter().any(|x| x.contains("group 'a': cursor")),
        "{:?}",
        r.problems
    );
}

#[test]
fn gc_removes_killed_members_and_says_which() {
    let dir = tempfile::tempdir().unwrap();
    let (p, q) = queue_with_group(dir.path());
    let ps = p.to_str().unwrap();
    let mut child = Command::new(SHMQ)
        .args(["recv", ps, "g", "--quiet"])
        .spawn()
        .unwrap();
    wait_members(&q, 1);
    let pid = child.id();
    child.kill().unwrap();
    child.wait().unwrap();
    let out = Command::new(SHMQ).args(["gc", ps]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("removed dead member pid {pid} of group 'g'")),
        "{text}"
    );
    assert!(q.stat().groups[0].members.is_empty());
    // Nothing left to remove.
    assert_eq!(q.gc().unwrap(), vec![]);
}

#[test]
fn check_accepts_a_group_being_created() {
    let dir = tempfile::tempdir().unwrap();
    let (p, geo) = queue(dir.path());
    // Group b's slot state word: generation << 8 | state; 1 is CREATING (see
    // src/protocol/layout.rs), as a group add caught half-way leaves it.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&p)
        .unwrap();
    let mut w = [0u8; 8];
    f.read_exact_at(&mut w, geo.slot_off(1) as u64).unwrap();
    let creating = (u64::from_ne_bytes(w) & !0xff) | 1;
    f.write_all_at(&creating.to_ne_bytes(), geo.slot_off(1) as u64)
        .unwrap();
    let r = Queue::open(&p).unwrap().check();
    assert!(r.ok(), "{:?}", r.problems);
    assert_eq!(r.groups, 2);
}

/// Issue 19 defect 8: `check` on a healthy live queue failed now and then
/// ("group cursor outside HEAD..TAIL", "record has sequence N, expected M"):
/// it read TAIL before the cursors and walked records producers were
/// overwriting. Live traffic from threads, many checks: none may fail.
#[test]
fn check_has_no_false_alarms_on_a_live_queue() {
    const CHECKS: usize = 50_000;
    let dir = tempfile::tempdir().unwrap();
    let q = QueueOptions::new()
        .capacity(4096)
        .max_msg(256)
        .max_groups(8)
        .create(dir.path().join("q"))
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut threads = Vec::new();
    for g in 0..4 {
        let name = format!("g{g}");
        q.add_group(&name, StartAt::Latest).unwrap();
        let (q, stop) = (q.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let mut c = q.consumer(&name).attach().unwrap();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = c.recv_timeout(std::time::Duration::from_millis(10));
            }
        }));
    }
    {
        let (q, stop) = (q.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let mut p = q.producer().attach().unwrap();
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = p.send_timeout(
                    &i.to_le_bytes().repeat(1 + i as usize % 20),
                    std::time::Duration::from_millis(10),
                );
                i += 1;
            }
        }));
    }
    while q.stat().tail_seq < 1000 {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let mut failed = Vec::new();
    for _ in 0..CHECKS {
        let r = q.check();
        if !r.problems.is_empty() {
            failed.push(r.problems);
        }
    }
    let sent = q.stat().tail_seq;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    assert!(
        sent > 2000,
        "only {sent} messages: not much of a live queue"
    );
    assert!(
        failed.is_empty(),
        "{} of {CHECKS} checks failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(3)]
    );
}
