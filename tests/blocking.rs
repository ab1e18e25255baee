//! A consumer blocked on an empty queue sleeps (next to no CPU) and wakes on the
//! next send, across processes.

mod common;

use common::{queue_with_group, wait_members};
use std::process::{Command, Stdio};
use std::time::Duration;

const SHMQ: &str = env!("CARGO_BIN_EXE_shmq");

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) are at 11 and 12 after the name.
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no memory effects.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as u64
}

#[test]
fn idle_consumer_sleeps_and_wakes_on_send() {
    let dir = tempfile::tempdir().unwrap();
    let (p, q) = queue_with_group(dir.path());
    let ps = p.to_str().unwrap();
    let child = Command::new(SHMQ)
        .args(["recv", ps, "g", "--count", "1", "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_members(&q, 1);
    // Let it pass its spin phase and fall asleep, then measure one idle second.
    std::thread::sleep(Duration::from_millis(300));
    let before = cpu_ticks(child.id());
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(child.id()) - before;
    // A spinning consumer would use a whole second; a sleeping one a few
    // wake-ups per 100 ms slice to check for signals. Allow 5% of a core.
    let limit = ticks_per_second() / 20;
    assert!(
        used <= limit,
        "idle consumer used {used} ticks of CPU in one second (limit {limit})"
    );

    let mut producer = q.producer().attach().unwrap();
    let seq = producer.send(b"wake up").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["seq"], seq);
    assert_eq!(v["payload"], "wake up");
}

#[test]
fn producer_blocked_on_full_ring_wakes_when_consumer_reads() {
    blocked_producer_wakes(0);
}

/// The same from registry slot 40: the SPACE sleeper count has no per-slot
/// bit to run out of.
#[test]
fn producer_in_a_high_registry_slot_blocked_on_full_ring_wakes() {
    blocked_producer_wakes(40);
}

/// Fills the ring, then blocks a producer in registry slot `idle` (the
/// slots below it held by idle producers) until the consumer reads.
fn blocked_producer_wakes(idle: usize) {
    let q = shmq::QueueOptions::new()
        .capacity(4096)
        .max_msg(64)
        .in_memory()
        .unwrap();
    q.add_group("g", shmq::StartAt::Latest).unwrap();
    let mut c = q.consumer("g").attach().unwrap();
    let mut p = q.producer().attach().unwrap();
    while p.try_send(&[1; 64]).is_ok() {}
    let held: Vec<_> = (1..idle).map(|_| q.producer().attach().unwrap()).collect();
    let q2 = q.clone();
    let t = std::thread::spawn(move || {
        let mut p = q2.producer().attach().unwrap();
        let mut msg = b"blocked until space".to_vec();
        msg.resize(64, b'!');
        p.send(&msg).unwrap()
    });
    // It falls asleep (it wakes every 100 ms to look around, so poll).
    let t0 = std::time::Instant::now();
    loop {
        let st = q.stat();
        let slot = idle.max(1);
        if st.sleeping_producers == 1 && st.producers.get(slot).is_some_and(|p| p.asleep) {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{st:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!t.is_finished(), "the producer should be waiting for space");
    let mut last = None;
    while let Ok(m) = c.recv_timeout(Duration::from_secs(5)) {
        if m.payload.starts_with(b"blocked until space") {
            last = Some(m.seq);
            break;
        }
    }
    assert_eq!(last, Some(t.join().unwrap()));
    assert_eq!(q.stat().sleeping_producers, 0);
    drop(held);
}
