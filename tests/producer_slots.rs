//! The producer registry's size is chosen at creation (`--max-producers`):
//! that many producer processes publish at once, the next is refused with a
//! typed error, and a slot freed by a SIGKILLed producer is taken again.

mod common;

use common::{sender, shmq, shmq_ok, stat, Sender};
use shmq::{ProducerError, Queue};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const SHMQ: &str = env!("CARGO_BIN_EXE_shmq");

/// Waits (up to 30 s) until `tail_seq` reaches `n` and `producers` live
/// producers are registered; returns their pids in slot order.
fn wait_for(path: &Path, n: u64, producers: usize) -> Vec<u64> {
    let t0 = Instant::now();
    loop {
        let s = stat(path);
        let live: Vec<u64> = s["producers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["alive"] == true)
            .map(|p| p["pid"].as_u64().unwrap())
            .collect();
        if s["tail_seq"] == n && live.len() == producers {
            return live;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "waiting for {n} messages from {producers} producers: {s}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn forty_producer_processes_publish_at_once_and_the_forty_first_is_refused() {
    const SLOTS: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q");
    let p = path.to_str().unwrap();
    shmq_ok(&["create", p, "--max-producers", &SLOTS.to_string()]);
    shmq_ok(&["group", "add", p, "g"]);
    let s = stat(&path);
    assert_eq!(s["geometry"]["max_producers"], SLOTS, "{s}");

    let mut senders: Vec<Sender> = (0..SLOTS)
        .map(|i| sender(&path, &[], &format!("p{i}")))
        .collect();
    let pids = wait_for(&path, SLOTS as u64, SLOTS);
    let mut spawned: Vec<u64> = senders.iter().map(|s| u64::from(s.child.id())).collect();
    let mut registered = pids.clone();
    spawned.sort_unstable();
    registered.sort_unstable();
    assert_eq!(spawned, registered);

    // Every slot is taken by a live process: the next producer is refused,
    // by the library and by the CLI, with the queue's own limit.
    let q = Queue::open(&path).unwrap();
    match q.producer().attach() {
        Err(ProducerError::RegistryFull { max }) => assert_eq!(max as usize, SLOTS),
        Err(e) => panic!("expected ProducersFull, got {e}"),
        Ok(_) => panic!("a producer beyond {SLOTS} slots was registered"),
    }
    let out = Command::new(SHMQ)
        .args(["send", p, "--count", "1", "--size", "8"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "all {SLOTS} producer slots are taken by live producers (the queue's max_producers); \
             create the queue with a larger --max-producers"
        )),
        "{err}"
    );

    // SIGKILL the producer in slot 35; a new one takes its slot (recovered
    // at registration) and publishes.
    let victim = senders
        .iter()
        .position(|s| u64::from(s.child.id()) == pids[35])
        .unwrap();
    let mut dead = senders.remove(victim);
    dead.child.kill().unwrap();
    dead.child.wait().unwrap();
    senders.push(sender(&path, &[], "late"));
    let late_pid = u64::from(senders.last().unwrap().child.id());
    let now = wait_for(&path, SLOTS as u64 + 1, SLOTS);
    assert_eq!(now[35], late_pid, "the freed slot 35 was reused");

    // One more message from each, then let them all end.
    for (i, s) in senders.iter_mut().enumerate() {
        writeln!(s.stdin, "again{i}").unwrap();
    }
    for s in senders {
        drop(s.stdin);
        let mut child = s.child;
        assert!(child.wait().unwrap().success());
    }
    assert!(stat(&path)["producers"].as_array().unwrap().is_empty());

    // The group got each message exactly once.
    let out = shmq(&[
        "recv",
        p,
        "g",
        "--count",
        &(2 * SLOTS + 1).to_string(),
        "--timeout",
        "5s",
    ]);
    let got: Vec<&str> = out.lines().collect();
    let distinct: BTreeSet<&str> = got.iter().copied().collect();
    assert_eq!(got.len(), 2 * SLOTS + 1, "{out}");
    assert_eq!(distinct.len(), got.len(), "{out}");
    assert!(distinct.contains("late"));
    assert!((0..SLOTS).all(|i| distinct.contains(format!("p{i}").as_str())));
}

/// Names are kept in as many slots as producers: the 41st distinct name is
/// refused with its own error, and a known name still attaches.
#[test]
fn producer_names_fill_max_producers_slots() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q");
    let q = shmq::QueueOptions::new()
        .max_producers(40)
        .create(&path)
        .unwrap();
    for i in 0..40 {
        let mut p = q.producer().name(&format!("n{i}")).attach().unwrap();
        p.send(b"x").unwrap();
    }
    match q.producer().name("n40").attach() {
        Err(ProducerError::NamesFull { max }) => assert_eq!(max, 40),
        Err(e) => panic!("expected ProducerNamesFull, got {e}"),
        Ok(_) => panic!("a 41st name was created"),
    }
    let mut again = q.producer().name("n39").attach().unwrap();
    assert_eq!(again.last_pseq(), Some(0));
    again.send(b"y").unwrap();
    assert_eq!(q.stat().names.len(), 40);
}
