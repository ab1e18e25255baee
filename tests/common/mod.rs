//! Shared helpers: payload encoding and the delivery checks.
#![allow(dead_code)]

use std::collections::HashMap;

/// Multiplier for message counts: `SHMQ_TEST_SCALE=20 cargo test --release`
/// turns the delivery scenarios into a soak run (default 1: a few seconds).
pub fn scale() -> u64 {
    std::env::var("SHMQ_TEST_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(1)
}

/// What one member received: (seq, payload) in arrival order.
pub type Received = Vec<(u64, Vec<u8>)>;

/// Payload: producer id, per-producer counter, then filler derived from both,
/// so a garbled byte anywhere is detected.
pub fn encode(producer: u32, counter: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(48);
    v.extend_from_slice(&producer.to_le_bytes());
    v.extend_from_slice(&counter.to_le_bytes());
    let n = 8 + (counter % 29) as usize; // variable sizes
    for i in 0..n {
        v.push((producer as u64 * 31 + counter * 7 + i as u64) as u8);
    }
    v
}

/// Inverse of `encode`; panics on a garbled payload.
pub fn decode(v: &[u8]) -> (u32, u64) {
    assert!(v.len() >= 12, "short payload {v:?}");
    let p = u32::from_le_bytes(v[0..4].try_into().unwrap());
    let c = u64::from_le_bytes(v[4..12].try_into().unwrap());
    assert_eq!(v, &encode(p, c)[..], "garbled payload");
    (p, c)
}

/// Checks one group's deliveries, given each member's (seq, payload) list in
/// the order it received them: every sequence number 0..total exactly once,
/// each member increasing, each producer's messages in order by sequence,
/// payloads intact.
pub fn check_group(name: &str, members: &[Received], producers: u32, per: u64) {
    let total = producers as u64 * per;
    let mut all: Vec<(u64, (u32, u64))> = Vec::with_capacity(total as usize);
    for (i, m) in members.iter().enumerate() {
        for w in m.windows(2) {
            assert!(
                w[0].0 < w[1].0,
                "group {name} member {i}: seq {} then {}",
                w[0].0,
                w[1].0
            );
        }
        for (seq, payload) in m {
            all.push((*seq, decode(payload)));
        }
    }
    all.sort_by_key(|x| x.0);
    assert_eq!(
        all.len() as u64,
        total,
        "group {name}: received {} of {total}",
        all.len()
    );
    let mut next: HashMap<u32, u64> = HashMap::new();
    for (i, (seq, (p, c))) in all.iter().enumerate() {
        assert_eq!(
            *seq, i as u64,
            "group {name}: gap or duplicate at seq {seq}"
        );
        let want = next.entry(*p).or_insert(0);
        assert_eq!(
            *c, *want,
            "group {name}: producer {p} out of order at seq {seq}"
        );
        *want += 1;
    }
    assert_eq!(next.len() as u32, producers);
    assert!(next.values().all(|&n| n == per));
}

/// Runs `shmq ARGS` (the binary under test) and asserts it succeeded.
pub fn shmq_ok(args: &[&str]) {
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_shmq"))
        .args(args)
        .status()
        .unwrap();
    assert!(st.success(), "shmq {args:?} failed: {st}");
}

/// A queue at `dir/q` made with the CLI, with group "g"; returns its path and
/// an open handle.
pub fn queue_with_group(dir: &std::path::Path) -> (std::path::PathBuf, shmq::Queue) {
    let p = dir.join("q");
    shmq_ok(&["create", p.to_str().unwrap()]);
    shmq_ok(&["group", "add", p.to_str().unwrap(), "g"]);
    let q = shmq::Queue::open(&p).unwrap();
    (p, q)
}

/// A queue at `dir/q` of `capacity` bytes and messages of up to 960 bytes
/// (the most a 4 KiB ring allows), made with the library, with group "g"
/// starting at `start`; returns its path.
pub fn small_queue(
    dir: &std::path::Path,
    capacity: u64,
    start: shmq::StartAt,
) -> std::path::PathBuf {
    let path = dir.join("q");
    let q = shmq::QueueOptions::new()
        .capacity(capacity)
        .max_msg(960)
        .create(&path)
        .unwrap();
    q.add_group("g", start).unwrap();
    path
}

/// Waits (up to 30 s) until the queue's groups have `n` attached members.
pub fn wait_members(q: &shmq::Queue, n: usize) {
    let t0 = std::time::Instant::now();
    while q
        .stat()
        .groups
        .iter()
        .map(|g| g.members.len())
        .sum::<usize>()
        != n
    {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(30),
            "{n} members did not attach"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// A `shmq send` process (the binary under test) fed `line(c)` for `c` in
/// `0..count` on its stdin by a thread, `chunk` lines per write with `pause`
/// after each. Its stderr is piped, for the caller to report.
pub fn shmq_send_lines(
    q: &std::path::Path,
    count: u64,
    chunk: u64,
    pause: std::time::Duration,
    line: impl Fn(u64) -> String + Send + 'static,
) -> (std::process::Child, std::thread::JoinHandle<()>) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_shmq"))
        .args(["send", q.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let mut buf = String::new();
        for c in 0..count {
            buf.push_str(&line(c));
            buf.push('\n');
            if (c + 1) % chunk == 0 || c + 1 == count {
                stdin.write_all(buf.as_bytes()).unwrap();
                buf.clear();
                std::thread::sleep(pause);
            }
        }
    });
    (child, feeder)
}

/// Runs `shmq ARGS`, asserts it succeeded (showing its output otherwise) and
/// returns its stdout.
pub fn shmq(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shmq"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "shmq {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `shmq stat --json` of queue `q`.
pub fn stat(q: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&shmq(&["stat", q.to_str().unwrap(), "--json"])).unwrap()
}

/// `shmq check` passes on queue `q`.
pub fn check_passes(q: &std::path::Path) {
    shmq(&["check", q.to_str().unwrap()]);
}

/// A small xorshift generator for kill timings, seeded from the clock or
/// `SHMQ_CHAOS_SEED` (the seed is printed, so a run can be replayed).
pub struct Rng(u64);

impl Rng {
    pub fn new() -> Self {
        let seed = std::env::var("SHMQ_CHAOS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| shmq::clock::now_ns() | 1);
        eprintln!("SHMQ_CHAOS_SEED={seed}");
        Rng(seed)
    }

    /// Uniform-ish in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A `shmq send` of `count` generated 100-byte messages to `q`, running.
pub fn shmq_send_count(q: &std::path::Path, count: u64) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_shmq"))
        .args(["send", q.to_str().unwrap(), "--count", &count.to_string()])
        .args(["--size", "100"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Re-runs this test binary as a helper process: only test `test` runs, with
/// `SHMQ_TEST_ROLE=role` and `SHMQ_TEST_QUEUE=q`. Returns it once it printed
/// `marker` followed by a number, and that number.
pub fn spawn_helper(
    test: &str,
    role: &str,
    q: &std::path::Path,
    marker: &str,
) -> (std::process::Child, u64) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env("SHMQ_TEST_ROLE", role)
        .env("SHMQ_TEST_QUEUE", q)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let n = loop {
        let line = lines.next().expect("helper ended").unwrap();
        // libtest's "test NAME ... " may precede it on the same line.
        if let Some(i) = line.find(marker) {
            break line[i + marker.len()..].trim().parse().unwrap();
        }
    };
    (child, n)
}

/// xorshift64* for the fuzzers: deterministic, so a failure reproduces from
/// its seed (`SHMQ_FUZZ_SEED`).
pub struct FuzzRng(u64);

impl FuzzRng {
    pub fn new(seed: u64) -> FuzzRng {
        FuzzRng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-ish in `0..n` (`0` for `n == 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A `shmq send PATH ARGS` process (the binary under test) that has been
/// given the line `first` and stays attached while `stdin` is open.
pub struct Sender {
    pub child: std::process::Child,
    pub stdin: std::process::ChildStdin,
}

pub fn sender(q: &std::path::Path, args: &[&str], first: &str) -> Sender {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_shmq"))
        .args(["send", q.to_str().unwrap()])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{first}").unwrap();
    stdin.flush().unwrap();
    Sender { child, stdin }
}

/// A small real file system: a tmpfs of `size` bytes mounted on `dir`
/// (needs root), unmounted when dropped; `None` where it cannot be mounted.
/// With `keep`, its contents are copied beside it (`dir.kept`) first.
#[allow(dead_code)]
pub struct SmallFs {
    dir: std::path::PathBuf,
    keep: bool,
}

#[allow(dead_code)]
impl SmallFs {
    pub fn mount(dir: &std::path::Path, size: u64, keep: bool) -> Option<SmallFs> {
        std::fs::create_dir_all(dir).ok()?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| SmallFs {
            dir: dir.to_owned(),
            keep,
        })
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        if self.keep {
            let _ = std::process::Command::new("cp")
                .arg("-a")
                .arg(&self.dir)
                .arg(self.dir.with_extension("kept"))
                .status();
        }
        let _ = std::process::Command::new("umount").arg(&self.dir).status();
    }
}
