//! Processes SIGKILLed while asleep on the queue's futexes (wait.rs): their
//! sleep announcements are withdrawn when they are reaped, automatically (a
//! wake that finds nobody makes the waker reap) or by `shmq gc`, so wakers
//! stop paying a futex syscall for them.

mod common;

use common::{shmq, small_queue, stat};
use shmq::{Queue, StartAt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SHMQ: &str = env!("CARGO_BIN_EXE_shmq");

/// Polls `cond` on the queue's stat for up to 30 s.
fn wait_until(path: &Path, what: &str, cond: impl Fn(&serde_json::Value) -> bool) {
    let t0 = Instant::now();
    loop {
        let s = stat(path);
        if cond(&s) {
            return;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "{what}: {s}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Starts `spawn()`, waits until `asleep(stat)`, SIGKILLs it, and returns its
/// pid once the stat shows it dead and still announced asleep. The process
/// wakes every 100 ms to look around, so the kill can land while it is
/// awake: then it is reaped and tried again.
fn kill_asleep(
    path: &Path,
    mut spawn: impl FnMut() -> Child,
    asleep: impl Fn(&serde_json::Value) -> bool,
) -> u32 {
    for _ in 0..20 {
        let mut child = spawn();
        wait_until(path, "never fell asleep", &asleep);
        child.kill().unwrap();
        child.wait().unwrap();
        if asleep(&stat(path)) {
            return child.id();
        }
        shmq(&["gc", path.to_str().unwrap()]);
    }
    panic!("20 kills all landed while the process was awake");
}

fn member_asleep(s: &serde_json::Value) -> bool {
    s["sleeping_consumers"] == 1 && s["groups"][0]["members"][0]["asleep"] == true
}

fn recv_child(path: &Path) -> Child {
    Command::new(SHMQ)
        .args(["recv", path.to_str().unwrap(), "g", "--quiet"])
        .spawn()
        .unwrap()
}

/// A consumer killed asleep in `shmq recv` stays counted until a producer's
/// wake finds nobody: that producer reaps it, so the count is back to zero
/// after one send.
#[test]
fn a_consumer_killed_asleep_is_reaped_by_the_next_producer() {
    let dir = tempfile::tempdir().unwrap();
    let path = small_queue(dir.path(), 64 << 10, StartAt::Latest);
    let pid = kill_asleep(&path, || recv_child(&path), member_asleep);
    let s = stat(&path);
    assert_eq!(s["groups"][0]["members"][0]["pid"], pid, "{s}");
    assert_eq!(s["groups"][0]["members"][0]["alive"], false, "{s}");

    let q = Queue::open(&path).unwrap();
    let mut p = q.producer().attach().unwrap();
    p.send(b"anyone?").unwrap();
    let st = q.stat();
    assert_eq!(st.sleeping_consumers, 0);
    assert!(st.groups[0].members.is_empty(), "{:?}", st.groups[0]);

    // The message waits for the group's next member.
    let mut c = q.consumer("g").attach().unwrap();
    assert_eq!(&c.try_recv().unwrap().payload[..], b"anyone?");
}

/// `shmq gc` says which dead member it found asleep, and takes it out of the
/// count.
#[test]
fn gc_withdraws_a_dead_sleepers_count() {
    let dir = tempfile::tempdir().unwrap();
    let path = small_queue(dir.path(), 64 << 10, StartAt::Latest);
    let pid = kill_asleep(&path, || recv_child(&path), member_asleep);
    let out = shmq(&["gc", path.to_str().unwrap()]);
    assert!(
        out.contains(&format!(
            "removed dead member pid {pid} of group 'g' (killed asleep)"
        )),
        "{out}"
    );
    let s = stat(&path);
    assert_eq!(s["sleeping_consumers"], 0, "{s}");
    assert_eq!(s["groups"][0]["members"], serde_json::json!([]), "{s}");
}

/// A producer killed asleep on a full ring stays counted in the SPACE sleeper
/// count until a consumer's wake finds nobody: that consumer recovers it.
#[test]
fn a_producer_killed_asleep_on_a_full_ring_is_recovered_by_a_consumer() {
    producer_killed_asleep_is_recovered(0);
}

/// The same with the sleeper in registry slot 40 (the count and its mark
/// have no per-slot bit to run out of).
#[test]
fn a_producer_killed_asleep_in_a_high_registry_slot_is_recovered() {
    producer_killed_asleep_is_recovered(40);
}

/// Holds `idle` producers in this process, so that the `shmq send` child
/// that falls asleep on the full ring gets registry slot `idle`.
fn producer_killed_asleep_is_recovered(idle: usize) {
    let dir = tempfile::tempdir().unwrap();
    // Group g reads nothing until the producer is dead: the ring fills.
    let path = small_queue(dir.path(), 64 << 10, StartAt::Latest);
    let q = Queue::open(&path).unwrap();
    let held: Vec<_> = (0..idle).map(|_| q.producer().attach().unwrap()).collect();
    let line = "x".repeat(900);
    let spawn = || {
        let mut child = Command::new(SHMQ)
            .args(["send", path.to_str().unwrap()])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let line = line.clone();
        // 200 messages of 900 bytes do not fit in 64 KiB; the write may
        // fail once the child is killed.
        std::thread::spawn(move || {
            use std::io::Write;
            for _ in 0..200 {
                if writeln!(stdin, "{line}").is_err() {
                    return;
                }
            }
        });
        child
    };
    let asleep = |s: &serde_json::Value| {
        s["sleeping_producers"] == 1 && s["producers"][idle]["asleep"] == true
    };
    let pid = kill_asleep(&path, spawn, asleep);
    let s = stat(&path);
    assert_eq!(s["producers"][idle]["pid"], pid, "{s}");
    assert_eq!(s["producers"][idle]["alive"], false, "{s}");

    let mut c = q.consumer("g").attach().unwrap();
    // The first release's wake finds nobody; the next receive recovers the
    // dead producer.
    for _ in 0..2 {
        assert_eq!(c.try_recv().unwrap().payload.len(), 900);
    }
    let st = q.stat();
    assert_eq!(st.sleeping_producers, 0);
    let me = u64::from(std::process::id());
    assert_eq!(st.producers.len(), idle, "{:?}", st.producers);
    assert!(st.producers.iter().all(|p| p.pid == me && !p.asleep));
    drop(held);
    assert!(q.stat().producers.is_empty());
}
