//! Chaos: two groups of `shmq recv --ack explicit` members, killed with
//! SIGKILL at random moments and replaced, hundreds of times, while two
//! producers publish. At the end every group has received every message; a
//! message shows up more than once only as a redelivery (flagged, because the
//! member that had it died before acking); each member's order increases
//! apart from redeliveries; nothing is left pending, unacked or unread.
//!
//! Bounded for CI (about 200 kills); `SHMQ_TEST_SCALE=N` multiplies messages
//! and kills. `SHMQ_CHAOS_SEED` replays a run (the seed is printed).

mod common;

use common::{check_passes, shmq, stat, Rng};

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const SHMQ: &str = env!("CARGO_BIN_EXE_shmq");
const GROUPS: [&str; 2] = ["a", "b"];

/// One delivery as a member printed it: (member number, seq, redelivered,
/// payload).
type Delivery = (u64, u64, u64, String);

/// A member of `group` whose deliveries a thread appends to `log`.
fn member(
    q: &Path,
    group: &str,
    id: u64,
    log: Arc<Mutex<Vec<Delivery>>>,
    timeout: Option<&str>,
) -> (Child, thread::JoinHandle<()>) {
    let mut cmd = Command::new(SHMQ);
    cmd.args([
        "recv",
        q.to_str().unwrap(),
        group,
        "--ack",
        "explicit",
        "--json",
    ]);
    if let Some(t) = timeout {
        cmd.args(["--timeout", t]);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let reader = thread::spawn(move || {
        for l in BufReader::new(out).lines() {
            let l = l.unwrap();
            // Each line is one write(2) of less than PIPE_BUF: whole or absent.
            let v: serde_json::Value =
                serde_json::from_str(&l).unwrap_or_else(|e| panic!("{e}: {l:?}"));
            log.lock().unwrap().push((
                id,
                v["seq"].as_u64().unwrap(),
                v["redelivered"].as_u64().unwrap(),
                v["payload"].as_str().unwrap().to_owned(),
            ));
        }
    });
    (child, reader)
}

#[test]
fn members_killed_at_random_lose_nothing_and_duplicate_only_as_redeliveries() {
    let dir = tempfile::tempdir().unwrap();
    let q = dir.path().join("q");
    let qs = q.to_str().unwrap();
    shmq(&["create", qs, "--capacity", "64KiB"]);
    for g in GROUPS {
        shmq(&["group", "add", qs, g]);
    }
    let scale = common::scale();
    let (producers, per) = (2u64, 5_000 * scale);
    let kills_wanted = 200 * scale;
    let total = producers * per;
    let logs: Vec<Arc<Mutex<Vec<Delivery>>>> = GROUPS.iter().map(|_| Arc::default()).collect();
    let mut next_id = 0u64;
    let mut spawn = |gi: usize, timeout: Option<&str>| {
        next_id += 1;
        member(&q, GROUPS[gi], next_id, logs[gi].clone(), timeout)
    };
    // Two live members per group at all times.
    let mut live: Vec<Vec<(Child, thread::JoinHandle<()>)>> = (0..GROUPS.len())
        .map(|gi| (0..2).map(|_| spawn(gi, None)).collect())
        .collect();
    let feeders: Vec<_> = (0..producers)
        .map(|p| {
            common::shmq_send_lines(&q, per, 200, Duration::from_millis(5), move |c| {
                format!("p{p}-{c}")
            })
        })
        .collect();
    let mut rng = Rng::new();
    let mut kills = 0;
    let mut readers = Vec::new();
    let t0 = Instant::now();
    let mut produced = false;
    while kills < kills_wanted || !produced {
        assert!(t0.elapsed() < Duration::from_secs(300), "chaos phase hangs");
        thread::sleep(Duration::from_millis(2 + rng.below(25)));
        let gi = rng.below(GROUPS.len() as u64) as usize;
        let mi = rng.below(2) as usize;
        let (mut child, reader) = live[gi].swap_remove(mi);
        child.kill().unwrap();
        child.wait().unwrap();
        readers.push(reader);
        kills += 1;
        live[gi].push(spawn(gi, None));
        produced = feeders.iter().all(|(_, f)| f.is_finished()) && {
            stat(&q)["tail_seq"].as_u64() == Some(total)
        };
    }
    for (mut child, feeder) in feeders {
        feeder.join().unwrap();
        drop(child.stdin.take());
        assert!(child.wait().unwrap().success());
    }
    // Calm: the live members finish the work; they exit once idle.
    for group in live {
        for (mut child, reader) in group {
            child.kill().unwrap();
            child.wait().unwrap();
            readers.push(reader);
        }
    }
    let drain: Vec<_> = (0..GROUPS.len()).map(|gi| spawn(gi, Some("3s"))).collect();
    for (mut child, reader) in drain {
        assert!(child.wait().unwrap().success());
        readers.push(reader);
    }
    for r in readers {
        r.join().unwrap();
    }
    eprintln!("{kills} kills");

    let st = stat(&q);
    for (gi, g) in GROUPS.iter().enumerate() {
        let log = logs[gi].lock().unwrap();
        let mut by_seq: BTreeMap<u64, Vec<(u64, String)>> = BTreeMap::new();
        let mut last: HashMap<u64, u64> = HashMap::new();
        for (id, seq, redelivered, payload) in log.iter() {
            by_seq
                .entry(*seq)
                .or_default()
                .push((*redelivered, payload.clone()));
            if *redelivered == 0 {
                if let Some(l) = last.get(id) {
                    assert!(seq > l, "group {g}: member {id} got {seq} after {l}");
                }
                last.insert(*id, *seq);
            }
        }
        assert_eq!(
            by_seq.len() as u64,
            total,
            "group {g}: {} distinct messages of {total}",
            by_seq.len()
        );
        assert_eq!(*by_seq.keys().next_back().unwrap(), total - 1);
        let mut payloads = HashMap::new();
        let mut redelivered = 0;
        for (seq, ds) in &by_seq {
            // At most one delivery is unflagged (none, if its member died
            // before printing it). The log interleaves what the members'
            // reader threads read, not the order of delivery: a killed
            // member's last line may come after another's redelivery of it.
            let fresh = ds.iter().filter(|(r, _)| *r == 0).count();
            assert!(
                fresh <= 1,
                "group {g}: seq {seq} delivered {fresh} times unflagged"
            );
            for (_, p) in &ds[1..] {
                assert_eq!(p, &ds[0].1, "group {g}: seq {seq} garbled");
            }
            redelivered += ds.iter().filter(|(r, _)| *r > 0).count();
            assert!(
                payloads.insert(ds[0].1.clone(), *seq).is_none(),
                "group {g}: {} twice",
                ds[0].1
            );
        }
        for p in 0..producers {
            for c in 0..per {
                assert!(payloads.contains_key(&format!("p{p}-{c}")), "p{p}-{c}");
            }
        }
        let gs = st["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == *g)
            .unwrap();
        eprintln!(
            "group {g}: {} deliveries, {redelivered} flagged redelivered; stat {gs}",
            log.len()
        );
        assert_eq!(gs["lag"], 0, "{gs}");
        assert_eq!(gs["pending"], 0, "nothing left pending: {gs}");
    }
    check_passes(&q);
}
