//! `shmq demo`: the whole system in a few seconds, with real processes.
//!
//! Creates a queue in a private temporary directory (in /dev/shm when there is
//! one), registers two groups — "audit" with one member and "workers" with
//! three — starts the consumers and two producers as separate `shmq` processes,
//! checks what every group received, prints a latency summary and cleans up.

use shmq::{Queue, QueueOptions, StartAt};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const PRODUCERS: u64 = 2;
const SIZE: u64 = 64;

struct Member {
    group: &'static str,
    child: Child,
    seqs: Option<JoinHandle<Result<Vec<u64>, String>>>,
    stats: Option<JoinHandle<String>>,
}

fn spawn_member(exe: &Path, q: &Path, group: &'static str, json: bool) -> Result<Member, String> {
    let mode = if json { "--json" } else { "--quiet" };
    let mut child = Command::new(exe)
        .args(["recv", &q.to_string_lossy(), group, mode, "--stats"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting a consumer: {e}"))?;
    let out = child.stdout.take().ok_or("no consumer stdout")?;
    let mut err = child.stderr.take().ok_or("no consumer stderr")?;
    let seqs = std::thread::spawn(move || {
        let mut seqs = Vec::new();
        for line in BufReader::new(out).lines() {
            let line = line.map_err(|e| e.to_string())?;
            let v: serde_json::Value =
                serde_json::from_str(&line).map_err(|e| format!("bad line {line:?}: {e}"))?;
            let seq = v["seq"]
                .as_u64()
                .ok_or_else(|| format!("no seq in {line}"))?;
            if v["payload"]
                .as_str()
                .is_none_or(|p| p.len() as u64 != SIZE || !p.starts_with("msg "))
            {
                return Err(format!("garbled payload in {line}"));
            }
            seqs.push(seq);
        }
        Ok(seqs)
    });
    let stats = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    Ok(Member {
        group,
        child,
        seqs: Some(seqs),
        stats: Some(stats),
    })
}

/// What one phase measured.
struct Phase {
    lines: Vec<String>,
    ok: bool,
}

/// Starts the consumers, runs `producers` senders, checks every group's
/// deliveries and collects latency. With `json` the consumers print every
/// message and the demo checks each sequence number; otherwise they report
/// counts only.
fn phase(
    exe: &Path,
    qpath: &Path,
    q: &Queue,
    producers: u64,
    per: u64,
    interval: Option<&str>,
    json: bool,
) -> Result<Phase, String> {
    let total = producers * per;
    let base_seq = q.stat().tail_seq;
    let mut members = vec![spawn_member(exe, qpath, "audit", json)?];
    for _ in 0..3 {
        members.push(spawn_member(exe, qpath, "workers", json)?);
    }
    super::wait_members(q, 4, Duration::from_secs(20))?;
    let started = Instant::now();
    let senders: Vec<Child> = (0..producers)
        .map(|_| {
            let mut cmd = Command::new(exe);
            cmd.args([
                "send",
                &qpath.to_string_lossy(),
                "--count",
                &per.to_string(),
                "--size",
                &SIZE.to_string(),
            ]);
            if let Some(iv) = interval {
                cmd.args(["--interval", iv]);
            }
            // Its "sent N messages" line is not the demo's; an error is.
            cmd.stdout(Stdio::null())
                .spawn()
                .map_err(|e| format!("starting a producer: {e}"))
        })
        .collect::<Result<_, _>>()?;
    for mut p in senders {
        let st = p.wait().map_err(|e| e.to_string())?;
        if !st.success() {
            return Err(format!("a producer failed: {st}"));
        }
    }
    let elapsed = started.elapsed();
    let t0 = Instant::now();
    while q.stat().groups.iter().any(|g| g.lag > 0) {
        if t0.elapsed() > Duration::from_secs(60) {
            return Err("consumers did not catch up within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    for m in &members {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(m.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    let mut lines = vec![format!(
        "{producers} producer process(es) x {per} messages of {SIZE} B in {:.2} s ({:.0}k msg/s)",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64() / 1000.0
    )];
    let mut ok = true;
    for group in ["audit", "workers"] {
        let (mut parts, mut stats) = (Vec::new(), Vec::new());
        for m in members.iter_mut().filter(|m| m.group == group) {
            let st = m.child.wait().map_err(|e| e.to_string())?;
            let seqs = m
                .seqs
                .take()
                .ok_or("reader taken")?
                .join()
                .map_err(|_| "reader thread panicked")??;
            let text = m
                .stats
                .take()
                .ok_or("reader taken")?
                .join()
                .map_err(|_| "reader thread panicked")?;
            if !st.success() {
                return Err(format!("a consumer failed ({st}): {}", text.trim()));
            }
            let s: serde_json::Value =
                serde_json::from_str(text.lines().last().unwrap_or("{}")).unwrap_or_default();
            parts.push(seqs);
            stats.push(s);
        }
        let counts: Vec<u64> = stats
            .iter()
            .map(|s| s["received"].as_u64().unwrap_or(0))
            .collect();
        let received: u64 = counts.iter().sum();
        let in_order = stats.iter().all(|s| s["in_order"].as_bool() == Some(true));
        let exact = if json {
            let mut all: Vec<u64> = parts.iter().flatten().copied().collect();
            all.sort_unstable();
            all.len() as u64 == total
                && all
                    .iter()
                    .enumerate()
                    .all(|(i, &s)| s == base_seq + i as u64)
        } else {
            received == total
        };
        ok &= exact && in_order;
        let split = counts
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(" + ");
        lines.push(format!(
            "{group:<8} received {received}/{total} (per member {split}): {}, {}",
            match (exact, json) {
                (true, true) => "every sequence number exactly once",
                (true, false) => "all of them",
                _ => "MISSING OR DUPLICATED",
            },
            if in_order {
                "each member in order"
            } else {
                "OUT OF ORDER"
            }
        ));
        let p = |k: &str| {
            stats
                .iter()
                .map(|s| s["latency_ns"][k].as_u64().unwrap_or(0))
                .max()
                .unwrap_or(0) as f64
                / 1000.0
        };
        lines.push(format!(
            "{:8} latency publish->receive (worst member): p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us, max {:.1} us",
            "",
            p("p50"),
            p("p99"),
            p("p999"),
            p("max")
        ));
    }
    Ok(Phase { lines, ok })
}

pub fn run(per_producer: u64) -> Result<(), String> {
    let dir = super::shm_tempdir("shmq-demo-")?;
    let qpath = dir.path().join("demo.q");
    let exe = std::env::current_exe().map_err(|e| format!("locating the shmq binary: {e}"))?;
    let opts = QueueOptions::new().capacity(256 << 10).max_msg(4096);
    let q = opts.create(&qpath).map_err(super::explain)?;
    q.add_group("audit", StartAt::Latest)
        .map_err(super::explain)?;
    q.add_group("workers", StartAt::Latest)
        .map_err(super::explain)?;
    println!(
        "shmq demo: queue {} (ring 256 KiB in shared memory)",
        qpath.display()
    );
    println!("groups: audit (1 member) and workers (3 competing members); every group gets every message");
    println!();
    println!("1. flood: producers as fast as they can, consumers print every message as JSON (latency = queueing)");
    let flood = phase(&exe, &qpath, &q, PRODUCERS, per_producer, None, true)?;
    for l in &flood.lines {
        println!("   {l}");
    }
    println!();
    println!("2. paced: one message every 50 us, blocking consumers (latency = hand-off incl. futex wake-up)");
    let paced = phase(
        &exe,
        &qpath,
        &q,
        1,
        (per_producer / 5).max(1),
        Some("50us"),
        false,
    )?;
    for l in &paced.lines {
        println!("   {l}");
    }
    let st = q.stat();
    println!();
    println!(
        "stat: tail_seq {}, producers found the ring full {} times",
        st.tail_seq, st.full_waits
    );
    drop(q);
    let shown = dir.path().display().to_string();
    dir.close().map_err(|e| format!("cleaning up: {e}"))?;
    if flood.ok && paced.ok {
        println!("demo ok; removed {shown}");
        Ok(())
    } else {
        Err("the demo found a delivery error".into())
    }
}
