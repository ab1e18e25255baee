//! The benchmark suite behind `shmq bench`: cross-process latency and
//! throughput of shmq, side by side in the same run with the physical floor,
//! a pipe, a Unix socket pair and crossbeam-channel. Each side runs in its
//! own process (crossbeam: thread), pinned to its own core when the machine
//! has two or more. The `shmq` binary runs it (`shmq bench`) and is its
//! worker processes (`shmq bench-worker`); the criterion benches of single
//! operations are in `benches/send_recv.rs`.

mod endpoint;
pub mod harness;
mod keyed;
mod plot;
mod spill;
mod staged;
mod worker;

pub use endpoint::Mechanism;
pub use spill::SpillBench;
pub use worker::{run as run_worker, WorkerArgs};

use endpoint::{BareRing, ChannelEnd, Endpoint, FloorEnd, FloorRing, FutexEnd, ShmqEnd, StreamEnd};
use shmq::{Queue, QueueOptions, StartAt};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;
use worker::{pin, Load, Role};

/// Which benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Test {
    /// Round-trip latency, one message in flight.
    Pingpong,
    /// Messages per second, producers and consumers flat out.
    Throughput,
    /// Hand-off latency to a consumer asleep on a futex.
    Wakeup,
    /// What a group spilling to disk costs the producer and the live groups.
    Spill,
    /// A group ordered by key against the same group unordered (threads).
    Keyed,
    /// Delayed delivery: lateness of scheduled messages (threads).
    Delay,
    /// Transactions against plain sends and batches: publish cost.
    Txn,
    /// Ping-pong, throughput, wake-up, and spill at 64 B.
    All,
}

/// Options of `shmq bench`.
#[derive(Clone, Debug)]
pub struct Opts {
    /// Payload sizes to measure, in bytes.
    pub sizes: Vec<usize>,
    /// Messages per measurement.
    pub msgs: u64,
    /// Producer processes (throughput).
    pub producers: u32,
    /// Consumer groups (throughput).
    pub groups: u32,
    /// Members per group (throughput).
    pub members: u32,
    /// Ring bytes (`--capacity`).
    pub capacity: u64,
    /// Mechanisms to measure (empty: all).
    pub only: Vec<Mechanism>,
    /// One JSON object per measurement instead of tables.
    pub json: bool,
    /// Write an SVG latency plot here.
    pub plot: Option<PathBuf>,
    /// The spill benchmark's settings.
    pub spill: SpillBench,
    /// Times every selected measurement is taken, mechanisms interleaved.
    pub rounds: u32,
}

const ALL: [Mechanism; 6] = [
    Mechanism::Floor,
    Mechanism::Ring,
    Mechanism::Shmq,
    Mechanism::Pipe,
    Mechanism::Uds,
    Mechanism::Crossbeam,
];

/// One result row: one measurement of one round.
struct Row {
    mechanism: &'static str,
    test: String,
    size: usize,
    rtt: Option<hdrhistogram::Histogram<u64>>,
    msgs_per_s: Option<f64>,
    /// Which round (0-based) measured it.
    round: u32,
}

struct Ctx {
    dir: tempfile::TempDir,
    exe: PathBuf,
    /// (our CPU, the peer's CPU) when there are at least two.
    cpus: (Option<usize>, Option<usize>),
    /// Ring bytes of every shmq queue (unblocked tests excepted) and of the
    /// floor's SPSC ring.
    capacity: u64,
}

impl Ctx {
    fn worker(&self, args: &[String], cpu: Option<usize>) -> Command {
        let mut c = Command::new(&self.exe);
        c.arg("bench-worker").args(args);
        if let Some(cpu) = cpu {
            c.args(["--cpu", &cpu.to_string()]);
        }
        c.stderr(Stdio::piped());
        c
    }

    /// Starts a worker with no stdin or stdout (its result comes on stderr).
    fn spawn_quiet(&self, args: &[String], cpu: Option<usize>) -> Result<Child, String> {
        self.worker(args, cpu)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn s(x: impl ToString) -> String {
    x.to_string()
}

/// Waits for a worker and returns its JSON result line.
fn finish(child: Child) -> Result<serde_json::Value, String> {
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!(
            "bench worker failed ({}): {}",
            out.status,
            err.trim()
        ));
    }
    serde_json::from_str(err.lines().last().unwrap_or(""))
        .map_err(|e| format!("bench worker said {err:?}: {e}"))
}

fn queue(path: &Path, groups: &[&str], capacity: u64) -> Result<(), String> {
    let q = QueueOptions::new()
        .capacity(capacity)
        .max_msg(QueueOptions::fitting_max_msg(capacity))
        .replace(true)
        .create(path)
        .map_err(|e| e.to_string())?;
    for g in groups {
        q.add_group(g, StartAt::Latest).map_err(|e| e.to_string())?;
    }
    Ok(())
}

enum Peer {
    Proc(Child),
    Thread(std::thread::JoinHandle<Result<String, String>>),
}

impl Peer {
    /// Waits for the peer to finish its loop; its failure is ours.
    fn join(self) -> Result<(), String> {
        match self {
            Peer::Proc(c) => finish(c).map(drop),
            Peer::Thread(t) => t.join().map_err(|_| "echo thread panicked")?.map(drop),
        }
    }
}

/// Sets up a two-way link: our endpoint, and the echoing peer.
/// With `sleeping`, the peer blocks between messages (shmq `Block`, or a bare
/// futex for the floor) and our side spins: the wake-up test.
fn echo_peer(
    ctx: &Ctx,
    m: Mechanism,
    size: usize,
    count: u64,
    sleeping: bool,
) -> Result<(Box<dyn Endpoint>, Peer), String> {
    if sleeping && !matches!(m, Mechanism::Shmq | Mechanism::Floor) {
        return Err(format!(
            "the wake-up test compares shmq with a bare futex, not {}",
            m.name()
        ));
    }
    let mut common = vec![
        s("--mechanism"),
        s(m.name()),
        s("--role"),
        s("echo"),
        s("--size"),
        s(size),
        s("--count"),
        s(count),
    ];
    if sleeping {
        common.extend([s("--wait"), s("block")]);
    }
    let peer_cpu = ctx.cpus.1;
    Ok(match m {
        Mechanism::Shmq => {
            let (ab, ba) = (ctx.path("ab.q"), ctx.path("ba.q"));
            queue(&ab, &["b"], ctx.capacity)?;
            queue(&ba, &["a"], ctx.capacity)?;
            let mut args = common;
            args.extend([
                s("--tx"),
                s(ba.display()),
                s("--rx"),
                s(ab.display()),
                s("--group"),
                s("b"),
            ]);
            let child = ctx.spawn_quiet(&args, peer_cpu)?;
            (
                Box::new(ShmqEnd::new(
                    Some(&ab),
                    Some((&ba, "a")),
                    shmq::WaitStrategy::Spin,
                )?),
                Peer::Proc(child),
            )
        }
        Mechanism::Floor => {
            let f = ctx.path("floor");
            endpoint::floor_file(&f, 2)?;
            let mut args = common;
            args.extend([s("--tx"), s(f.display()), s("--side"), s(1)]);
            let child = ctx.spawn_quiet(&args, peer_cpu)?;
            {
                let ours: Box<dyn Endpoint> = if sleeping {
                    Box::new(FutexEnd::new(&f, 0, false)?)
                } else {
                    Box::new(FloorEnd::new(&f, 0)?)
                };
                (ours, Peer::Proc(child))
            }
        }
        Mechanism::Ring => {
            let (ab, ba) = (ctx.path("ab.ring"), ctx.path("ba.ring"));
            BareRing::file(&ab, ctx.capacity)?;
            BareRing::file(&ba, ctx.capacity)?;
            let mut args = common;
            args.extend([s("--tx"), s(ba.display()), s("--rx"), s(ab.display())]);
            let child = ctx.spawn_quiet(&args, peer_cpu)?;
            (
                Box::new(BareRing::new(Some(&ab), Some(&ba))?),
                Peer::Proc(child),
            )
        }
        Mechanism::Pipe => {
            let mut child = ctx
                .worker(&common, peer_cpu)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .map_err(|e| e.to_string())?;
            let w = child.stdin.take().ok_or("no stdin")?;
            let r = child.stdout.take().ok_or("no stdout")?;
            (Box::new(StreamEnd { r, w }), Peer::Proc(child))
        }
        Mechanism::Uds => {
            let (ours, theirs) =
                std::os::unix::net::UnixStream::pair().map_err(|e| e.to_string())?;
            let child = ctx
                .worker(&common, peer_cpu)
                .stdin(Stdio::from(OwnedFd::from(theirs)))
                .stdout(Stdio::null())
                .spawn()
                .map_err(|e| e.to_string())?;
            let w = ours.try_clone().map_err(|e| e.to_string())?;
            (Box::new(StreamEnd { r: ours, w }), Peer::Proc(child))
        }
        Mechanism::Crossbeam => {
            let (tx1, rx1) = crossbeam_channel::bounded(1);
            let (tx2, rx2) = crossbeam_channel::bounded(1);
            let t = std::thread::spawn(move || {
                pin(peer_cpu);
                let mut ep = ChannelEnd {
                    tx: tx2,
                    rx: rx1,
                    spare: Vec::new(),
                    recycle: None,
                };
                worker::serve(Role::Echo, &mut ep, Load::new(size, count))
            });
            (
                Box::new(ChannelEnd {
                    tx: tx1,
                    rx: rx2,
                    spare: Vec::new(),
                    recycle: None,
                }),
                Peer::Thread(t),
            )
        }
    })
}

/// Round trips through an echoing peer, after a warm-up, into a histogram.
/// With `sleeping` the peer blocks between messages and we pause before each
/// ping so that it really is asleep: the wake-up test.
fn round_trips(
    ctx: &Ctx,
    m: Mechanism,
    size: usize,
    n: u64,
    sleeping: bool,
) -> Result<Row, String> {
    let warm = if sleeping {
        (n / 10).max(10)
    } else {
        (n / 10).max(100)
    };
    let (mut ep, peer) = echo_peer(ctx, m, size, warm + n, sleeping)?;
    let msg = vec![0x5au8; size];
    let mut buf = vec![0u8; size];
    let mut hist = hdrhistogram::Histogram::<u64>::new(3).map_err(|e| e.to_string())?;
    for i in 0..warm + n {
        if sleeping {
            // Long enough for the peer to pass its spin and yield phases.
            std::thread::sleep(std::time::Duration::from_micros(100));
        }
        let t0 = Instant::now();
        ep.send(&msg)?;
        ep.recv(&mut buf)?;
        if i >= warm {
            let _ = hist.record((t0.elapsed().as_nanos() as u64).max(1));
        }
    }
    if buf != msg {
        return Err(format!("{}: payload came back changed", m.name()));
    }
    drop(ep);
    peer.join()?;
    let test = if sleeping { "wakeup" } else { "pingpong" };
    Ok(Row {
        mechanism: m.name(),
        test: test.into(),
        size,
        rtt: Some(hist),
        msgs_per_s: None,
        round: 0,
    })
}

/// 1 -> 1 throughput of a non-shmq mechanism.
fn throughput_pair(ctx: &Ctx, m: Mechanism, size: usize, n: u64) -> Result<Row, String> {
    let base = |role: &str| {
        vec![
            s("--mechanism"),
            s(m.name()),
            s("--role"),
            s(role),
            s("--size"),
            s(size),
            s("--count"),
            s(n),
        ]
    };
    let (src, snk): (serde_json::Value, serde_json::Value) = match m {
        Mechanism::Floor => {
            let f = ctx.path("ring");
            let slot = size.max(8);
            let slots = (ctx.capacity as usize / slot).max(16) as u64;
            FloorRing::file(&f, slot, slots)?;
            let extra = [s("--tx"), s(f.display()), s("--slots"), s(slots)];
            let mut a = base("sink");
            a.extend(extra.clone());
            let sink = ctx.spawn_quiet(&a, ctx.cpus.1)?;
            let mut a = base("source");
            a.extend(extra);
            let source = ctx.spawn_quiet(&a, ctx.cpus.0)?;
            (finish(source)?, finish(sink)?)
        }
        Mechanism::Ring => {
            let f = ctx.path("bare.ring");
            BareRing::file(&f, ctx.capacity)?;
            let mut a = base("sink");
            a.extend([s("--rx"), s(f.display())]);
            let sink = ctx.spawn_quiet(&a, ctx.cpus.1)?;
            let mut a = base("source");
            a.extend([s("--tx"), s(f.display())]);
            let source = ctx.spawn_quiet(&a, ctx.cpus.0)?;
            (finish(source)?, finish(sink)?)
        }
        Mechanism::Pipe => {
            let (r, w) = std::io::pipe().map_err(|e| e.to_string())?;
            let sink = ctx
                .worker(&base("sink"), ctx.cpus.1)
                .stdin(r)
                .stdout(Stdio::null())
                .spawn()
                .map_err(|e| e.to_string())?;
            let source = ctx
                .worker(&base("source"), ctx.cpus.0)
                .stdin(Stdio::null())
                .stdout(w)
                .spawn()
                .map_err(|e| e.to_string())?;
            (finish(source)?, finish(sink)?)
        }
        Mechanism::Uds => {
            let (a, b) = std::os::unix::net::UnixStream::pair().map_err(|e| e.to_string())?;
            let sink = ctx
                .worker(&base("sink"), ctx.cpus.1)
                .stdin(Stdio::from(OwnedFd::from(b)))
                .stdout(Stdio::null())
                .spawn()
                .map_err(|e| e.to_string())?;
            let source = ctx
                .worker(&base("source"), ctx.cpus.0)
                .stdin(Stdio::from(OwnedFd::from(a)))
                .stdout(Stdio::null())
                .spawn()
                .map_err(|e| e.to_string())?;
            (finish(source)?, finish(sink)?)
        }
        Mechanism::Crossbeam => {
            let cap = (1usize << 20) / size.max(64);
            let (tx, rx) = crossbeam_channel::bounded(cap);
            // Used buffers flow back to the source: no allocation per message.
            let (ret_tx, ret_rx) = crossbeam_channel::bounded(cap);
            let (c0, c1) = ctx.cpus;
            let sink = std::thread::spawn(move || {
                pin(c1);
                let (dead_tx, _) = crossbeam_channel::bounded(1);
                let (_, unused) = crossbeam_channel::bounded(1);
                let mut ep = ChannelEnd {
                    tx: dead_tx,
                    rx,
                    spare: Vec::new(),
                    recycle: Some((ret_tx, unused)),
                };
                worker::serve(Role::Sink, &mut ep, Load::new(size, n))
            });
            let source = std::thread::spawn(move || {
                pin(c0);
                let (_, dead_rx) = crossbeam_channel::bounded(1);
                let (unused, _) = crossbeam_channel::bounded(1);
                let mut ep = ChannelEnd {
                    tx,
                    rx: dead_rx,
                    spare: Vec::new(),
                    recycle: Some((unused, ret_rx)),
                };
                worker::serve(Role::Source, &mut ep, Load::new(size, n))
            });
            let parse = |r: Result<String, String>| -> Result<serde_json::Value, String> {
                serde_json::from_str(&r?).map_err(|e| e.to_string())
            };
            let src = parse(source.join().map_err(|_| "source thread panicked")?)?;
            (
                src,
                parse(sink.join().map_err(|_| "sink thread panicked")?)?,
            )
        }
        Mechanism::Shmq => return shmq_throughput(ctx, size, n, Shape::ONE),
    };
    if snk["count"].as_u64() != Some(n) {
        return Err(format!(
            "{}: sink received {} of {n}",
            m.name(),
            snk["count"]
        ));
    }
    let secs = (src["end_ns"]
        .as_u64()
        .unwrap_or(0)
        .max(snk["last_ns"].as_u64().unwrap_or(0))
        - src["start_ns"].as_u64().unwrap_or(0)) as f64
        / 1e9;
    Ok(Row {
        mechanism: m.name(),
        test: "1->1".into(),
        size,
        rtt: None,
        msgs_per_s: Some(n as f64 / secs),
        round: 0,
    })
}

/// Arguments of a shmq worker on queue `q`: a sink of `group`, or a source
/// when there is none; `wait` is "spin" or "block".
fn shmq_worker(q: &Path, role: &str, load: Load, group: Option<&str>, wait: &str) -> Vec<String> {
    let mut a = vec![
        s("--mechanism"),
        s("shmq"),
        s("--role"),
        s(role),
        s("--size"),
        s(load.size),
        s("--count"),
        s(load.count),
    ];
    match group {
        Some(g) => a.extend([s("--rx"), s(q.display()), s("--group"), s(g)]),
        None => a.extend([s("--tx"), s(q.display())]),
    }
    if load.rate > 0 {
        a.extend([s("--rate"), s(load.rate)]);
    }
    if load.latency {
        a.push(s("--latency"));
    }
    if load.batch > 1 {
        a.extend([s("--batch"), s(load.batch)]);
    }
    a.extend([s("--wait"), s(wait)]);
    a
}

/// Suffix of the `unblocked` throughput tests' names.
const UNBLOCKED: &str = "unblocked";

/// Largest ring an `unblocked` throughput test makes.
const UNBLOCKED_RING: u64 = 256 << 20;

/// What a shmq throughput test runs: `producers` processes into `groups`
/// groups of `members`.
#[derive(Clone, Copy)]
struct Shape {
    producers: u32,
    groups: u32,
    members: u32,
    /// The ring holds the whole run (fewer messages if it would pass
    /// `UNBLOCKED_RING`), and the rate is the producer's own, from its first
    /// send to its last: what publishing costs when no consumer holds the
    /// producer back. On a machine with fewer cores than consumers plus one,
    /// this is the only way to see what each extra group costs the producer.
    unblocked: bool,
    /// Consumers take up to this many messages at once (`recv_batch`).
    batch: u32,
}

impl Shape {
    const ONE: Shape = Shape {
        producers: 1,
        groups: 1,
        members: 1,
        unblocked: false,
        batch: 1,
    };
}

/// Messages a batch-receiving sink takes at most at once.
const SINK_BATCH: u32 = 64;

/// shmq throughput of `shape`. The rate is what the producers published per
/// second, from the first producer's start to the last group's last receipt
/// (unblocked: to the last producer's last send).
fn shmq_throughput(ctx: &Ctx, size: usize, n: u64, shape: Shape) -> Result<Row, String> {
    let Shape {
        producers,
        groups,
        members,
        unblocked,
        batch,
    } = shape;
    let q = ctx.path("tp.q");
    let names: Vec<String> = (0..groups).map(|g| format!("g{g}")).collect();
    let names_ref: Vec<&str> = names.iter().map(|x| x.as_str()).collect();
    // A record takes at most the payload plus 64 bytes (header, alignment).
    let record = size as u64 + 64;
    let n = if unblocked {
        let cap = (n * record + n * record / 8)
            .next_power_of_two()
            .clamp(1 << 20, UNBLOCKED_RING);
        queue(&q, &names_ref, cap)?;
        n.min(cap / 8 * 7 / record).max(1)
    } else {
        queue(&q, &names_ref, ctx.capacity)?;
        n
    };
    let total = n * producers as u64;
    // Spinning is right while every consumer has a core to itself; more
    // consumers than the one core they share must sleep when idle, or they
    // spend their time slices spinning against each other. Unblocked, the
    // consumers' pace does not matter, and sleeping ones would make every
    // commit pay a wake-up syscall: that would measure the futex, not the
    // groups.
    let wait = if groups * members > 1 && !unblocked {
        "block"
    } else {
        "spin"
    };
    let mut sinks = Vec::new();
    for g in &names {
        for _ in 0..members {
            // One member knows its count; several stop when idle.
            let count = if members == 1 { total } else { 0 };
            let load = Load {
                batch,
                ..Load::new(size, count)
            };
            let args = shmq_worker(&q, "sink", load, Some(g), wait);
            sinks.push(ctx.spawn_quiet(&args, ctx.cpus.1)?);
        }
    }
    let queue = Queue::open(&q).map_err(|e| e.to_string())?;
    harness::wait_members(
        &queue,
        (groups * members) as usize,
        std::time::Duration::from_secs(20),
    )?;
    // Producers sharing a core must sleep while the ring is full, for the
    // same reason.
    let src_wait = if producers > 1 { "block" } else { "spin" };
    let sources: Vec<Child> = (0..producers)
        .map(|_| {
            let args = shmq_worker(&q, "source", Load::new(size, n), None, src_wait);
            ctx.spawn_quiet(&args, ctx.cpus.0)
        })
        .collect::<Result<_, _>>()?;
    let srcs: Vec<serde_json::Value> = sources.into_iter().map(finish).collect::<Result<_, _>>()?;
    let snks: Vec<serde_json::Value> = sinks.into_iter().map(finish).collect::<Result<_, _>>()?;
    let received: u64 = snks.iter().map(|v| v["count"].as_u64().unwrap_or(0)).sum();
    if received != total * groups as u64 {
        return Err(format!(
            "shmq: sinks received {received} of {}",
            total * groups as u64
        ));
    }
    let start = srcs
        .iter()
        .filter_map(|v| v["start_ns"].as_u64())
        .min()
        .unwrap_or(0);
    // Unblocked: the producers' own time; otherwise until the last receipt.
    let receipts = snks
        .iter()
        .filter(|_| !unblocked)
        .filter_map(|v| v["last_ns"].as_u64());
    let end = srcs
        .iter()
        .filter_map(|v| v["end_ns"].as_u64())
        .chain(receipts)
        .max()
        .unwrap_or(0);
    let secs = end.saturating_sub(start) as f64 / 1e9;
    let test = match (producers, groups, members) {
        (1, 1, 1) => "1->1".to_string(),
        (p, 1, 1) => format!("{p}->1"),
        (1, g, 1) => format!("1->{g} groups"),
        (1, 1, k) => format!("1->group of {k}"),
        (p, g, k) => format!("{p}->{g}x{k}"),
    };
    let test = if batch > 1 {
        format!("{test} batch {batch}")
    } else {
        test
    };
    let test = if unblocked {
        format!("{test} {UNBLOCKED}")
    } else {
        test
    };
    Ok(Row {
        mechanism: "shmq",
        test,
        size,
        rtt: None,
        msgs_per_s: Some(total as f64 / secs),
        round: 0,
    })
}

/// One round: every selected measurement once, appended to `rows`.
fn measure(
    ctx: &Ctx,
    test: Test,
    o: &Opts,
    mechs: &[Mechanism],
    round: u32,
    rows: &mut Vec<Row>,
) -> Result<(), String> {
    let emit = |mut r: Row, rows: &mut Vec<Row>| {
        r.round = round;
        if o.rounds > 1 {
            eprintln!(
                "  done: {} {} {} B (round {} of {})",
                r.mechanism,
                r.test,
                r.size,
                round + 1,
                o.rounds
            );
        } else {
            eprintln!("  done: {} {} {} B", r.mechanism, r.test, r.size);
        }
        rows.push(r);
    };
    if matches!(test, Test::Pingpong | Test::All) {
        for &size in &o.sizes {
            let n = if size > 4096 {
                (o.msgs / 10).max(1000)
            } else {
                o.msgs
            };
            for &m in mechs {
                emit(round_trips(ctx, m, size, n, false)?, rows);
            }
        }
    }
    if matches!(test, Test::Wakeup | Test::All) {
        let n = (o.msgs / 20).max(100);
        for m in [Mechanism::Floor, Mechanism::Shmq]
            .into_iter()
            .filter(|m| mechs.contains(m))
        {
            emit(round_trips(ctx, m, 64, n, true)?, rows);
        }
    }
    if matches!(test, Test::Throughput | Test::All) {
        for &size in &o.sizes {
            let n = if size > 4096 {
                (o.msgs * 10 / 10).max(10_000)
            } else {
                o.msgs * 10
            };
            for &m in mechs {
                emit(throughput_pair(ctx, m, size, n)?, rows);
            }
            if o.only.is_empty() || o.only.contains(&Mechanism::Shmq) {
                let one = Shape::ONE;
                for shape in [
                    Shape {
                        batch: SINK_BATCH,
                        ..one
                    },
                    Shape {
                        producers: o.producers,
                        ..one
                    },
                    Shape {
                        groups: o.groups,
                        ..one
                    },
                    Shape {
                        members: o.members,
                        ..one
                    },
                    Shape {
                        unblocked: true,
                        ..one
                    },
                    Shape {
                        groups: o.groups,
                        unblocked: true,
                        ..one
                    },
                ] {
                    let per = n / shape.producers as u64;
                    emit(shmq_throughput(ctx, size, per, shape)?, rows);
                }
            }
        }
    }
    Ok(())
}

/// `shmq bench`.
pub fn run(test: Test, o: Opts) -> Result<(), String> {
    let dir = harness::shm_tempdir("shmq-bench-")?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let ncpu = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let cpus = if ncpu >= 2 {
        (Some(0), Some(1))
    } else {
        (None, None)
    };
    let ctx = Ctx {
        dir,
        exe,
        cpus,
        capacity: o.capacity,
    };
    if test == Test::Delay {
        let r = staged::run_delay(&ctx, o.msgs)?;
        if o.json {
            r.json_lines().iter().for_each(|l| println!("{l}"));
        } else {
            r.print();
        }
        return Ok(());
    }
    if test == Test::Txn {
        let size = o.sizes.first().copied().unwrap_or(64);
        let r = staged::run_txn(&ctx, size, o.msgs)?;
        if o.json {
            r.json_lines().iter().for_each(|l| println!("{l}"));
        } else {
            r.print();
        }
        return Ok(());
    }
    if test == Test::Keyed {
        let size = o.sizes.first().copied().unwrap_or(64);
        let r = keyed::run(&ctx, size, o.msgs)?;
        if o.json {
            for line in r.json_lines() {
                println!("{line}");
            }
        } else {
            r.print();
        }
        return Ok(());
    }
    pin(cpus.0);
    let mechs: Vec<Mechanism> = ALL
        .into_iter()
        .filter(|m| o.only.is_empty() || o.only.contains(m))
        .collect();
    let mut rows = Vec::new();
    for round in 0..o.rounds {
        measure(&ctx, test, &o, &mechs, round, &mut rows)?;
    }
    let mut spills = Vec::new();
    if matches!(test, Test::Spill | Test::All) {
        let sizes = if test == Test::All {
            vec![64]
        } else {
            o.sizes.clone()
        };
        for size in sizes {
            let r = spill::run(&ctx, &o.spill, size, o.msgs * 10)?;
            eprintln!("  done: spill {size} B");
            spills.push(r);
        }
    }
    let sums = summarize(&rows)?;
    report(&sums, o.json, ncpu, o.capacity, o.rounds);
    for r in &spills {
        if o.json {
            for line in r.json_lines() {
                println!("{line}");
            }
        } else {
            r.print();
        }
    }
    if let Some(path) = &o.plot {
        let curves: Vec<plot::Curve> = sums
            .iter()
            .filter_map(|r| {
                r.rtt.as_ref().map(|h| plot::Curve {
                    mechanism: r.mechanism,
                    test: &r.test,
                    size: r.size,
                    hist: h,
                })
            })
            .collect();
        if curves.is_empty() {
            return Err("--plot draws latency curves: run pingpong, wakeup or all".into());
        }
        std::fs::write(path, plot::svg(&curves)).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// The percentiles every latency row reports.
fn percentiles(h: &hdrhistogram::Histogram<u64>) -> serde_json::Value {
    serde_json::json!({
        "p50": h.value_at_quantile(0.5), "p90": h.value_at_quantile(0.9), "p99": h.value_at_quantile(0.99),
        "p999": h.value_at_quantile(0.999), "p9999": h.value_at_quantile(0.9999), "max": h.max(), "mean": h.mean(),
    })
}

fn floor_of<'a>(rows: &'a [Row], r: &Row) -> Option<&'a Row> {
    rows.iter().find(|f| {
        f.mechanism == "floor"
            && f.round == r.round
            && f.size == r.size
            && (f.test == r.test || (r.rtt.is_none() && f.test == "1->1"))
    })
}

/// For an unblocked broadcast row, the unblocked 1 -> 1 row of its size
/// and round.
fn one_group_of<'a>(rows: &'a [Row], r: &Row) -> Option<&'a Row> {
    let one = format!("1->1 {UNBLOCKED}");
    (r.test.ends_with(UNBLOCKED) && r.test != one)
        .then(|| {
            rows.iter()
                .find(|f| f.round == r.round && f.size == r.size && f.test == one)
        })
        .flatten()
}

/// The median, smallest and largest of some per-round figures.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

impl Spread {
    /// `None` for no figures; the median of an even count is the mean of
    /// the middle two.
    fn of(mut v: Vec<f64>) -> Option<Spread> {
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
        })
    }

    /// `2.27x`, or with several rounds `2.27x (2.10-2.41)`.
    fn ratio_text(&self, rounds: u32) -> String {
        if rounds > 1 {
            format!("{:.2}x ({:.2}-{:.2})", self.median, self.min, self.max)
        } else {
            format!("{:.2}x", self.median)
        }
    }
}

/// One mechanism, test and size over every round.
struct Summary {
    mechanism: &'static str,
    test: String,
    size: usize,
    /// Latency tests: every round's samples together.
    rtt: Option<hdrhistogram::Histogram<u64>>,
    /// Latency tests: each round's p50.
    p50s: Vec<u64>,
    /// Throughput tests: each round's rate.
    rates: Vec<f64>,
    /// Throughput tests: the median round's rate.
    rate: Option<f64>,
    /// Each round's ratio to the floor measured in the same round.
    vs_floor: Option<Spread>,
    /// Unblocked broadcast: each round's ratio to that round's unblocked 1 -> 1.
    vs_one_group: Option<Spread>,
}

/// Groups the rows by mechanism, test and size, in the order first measured.
fn summarize(rows: &[Row]) -> Result<Vec<Summary>, String> {
    let mut out: Vec<Summary> = Vec::new();
    for r in rows {
        if out
            .iter()
            .any(|s| s.mechanism == r.mechanism && s.test == r.test && s.size == r.size)
        {
            continue;
        }
        let same: Vec<&Row> = rows
            .iter()
            .filter(|x| x.mechanism == r.mechanism && x.test == r.test && x.size == r.size)
            .collect();
        let mut hists = same.iter().filter_map(|x| x.rtt.as_ref());
        let rtt = match hists.next() {
            Some(first) => {
                let mut all = first.clone();
                for h in hists {
                    all.add(h).map_err(|e| format!("merging rounds: {e}"))?;
                }
                Some(all)
            }
            None => None,
        };
        let p50 = |h: &hdrhistogram::Histogram<u64>| h.value_at_quantile(0.5);
        let vs_floor = same
            .iter()
            .filter_map(|x| {
                let f = floor_of(rows, x)?;
                match (&x.rtt, &f.rtt, x.msgs_per_s, f.msgs_per_s) {
                    (Some(h), Some(fh), _, _) => Some(p50(h) as f64 / p50(fh).max(1) as f64),
                    (_, _, Some(m), Some(fm)) => Some(m / fm),
                    _ => None,
                }
            })
            .collect();
        let rates: Vec<f64> = same.iter().filter_map(|x| x.msgs_per_s).collect();
        let vs_one_group = same
            .iter()
            .filter_map(|x| Some(x.msgs_per_s? / one_group_of(rows, x)?.msgs_per_s?))
            .collect();
        out.push(Summary {
            mechanism: r.mechanism,
            test: r.test.clone(),
            size: r.size,
            p50s: same
                .iter()
                .filter_map(|x| x.rtt.as_ref().map(p50))
                .collect(),
            rtt,
            rate: Spread::of(rates.clone()).map(|s| s.median),
            rates,
            vs_floor: Spread::of(vs_floor),
            vs_one_group: Spread::of(vs_one_group),
        });
    }
    Ok(out)
}

fn report(sums: &[Summary], json: bool, ncpu: usize, capacity: u64, rounds: u32) {
    if json {
        // A ratio: its median at `key`, with several rounds its range too.
        let put = |o: &mut serde_json::Value, key: &str, v: Spread| {
            o[key] = serde_json::json!(v.median);
            if rounds > 1 {
                o[format!("{key}_range")] = serde_json::json!([v.min, v.max]);
            }
        };
        for r in sums {
            let mut o = serde_json::json!({
                "mechanism": r.mechanism, "test": r.test, "size": r.size, "rounds": rounds,
            });
            if let Some(h) = &r.rtt {
                o["rtt_ns"] = percentiles(h);
                if rounds > 1 {
                    o["p50_rounds"] = serde_json::json!(r.p50s);
                }
                if let Some(v) = r.vs_floor {
                    put(&mut o, "p50_vs_floor", v);
                }
            }
            if let Some(m) = r.rate {
                o["msgs_per_s"] = serde_json::json!(m);
                o["mb_per_s"] = serde_json::json!(m * r.size as f64 / 1e6);
                if rounds > 1 {
                    o["msgs_per_s_rounds"] = serde_json::json!(r.rates);
                }
                if let Some(v) = r.vs_floor {
                    put(&mut o, "vs_floor", v);
                }
                if let Some(v) = r.vs_one_group {
                    put(&mut o, "vs_one_group", v);
                }
            }
            println!("{o}");
        }
        return;
    }
    println!(
        "shmq bench on {ncpu} CPUs (each side pinned to its own core: {}; message timestamps from {}; rings of {} KiB)",
        ncpu >= 2,
        if shmq::clock::timestamps_from_tsc() {
            "the TSC"
        } else {
            "clock_gettime"
        },
        capacity >> 10
    );
    if rounds > 1 {
        println!(
            "{rounds} rounds, mechanisms interleaved in each: percentiles over all rounds' samples, \
             rates of the median round, ratios the median (min-max) of each round's ratio"
        );
    }
    let lat: Vec<&Summary> = sums.iter().filter(|r| r.rtt.is_some()).collect();
    if !lat.is_empty() {
        println!("\nround trip, ns (warm-up excluded); wakeup: the echoing side sleeps, floor = bare futex");
        println!(
            "{:<10} {:<9} {:>6} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>8}  {:>8}",
            "mechanism",
            "test",
            "size",
            "p50",
            "p90",
            "p99",
            "p99.9",
            "p99.99",
            "max",
            "mean",
            "p50/floor"
        );
        for r in lat {
            let Some(h) = r.rtt.as_ref() else { continue };
            println!(
                "{:<10} {:<9} {:>6} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>8.0}  {:>8}",
                r.mechanism,
                r.test,
                r.size,
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.9),
                h.value_at_quantile(0.99),
                h.value_at_quantile(0.999),
                h.value_at_quantile(0.9999),
                h.max(),
                h.mean(),
                r.vs_floor.map_or("-".into(), |v| v.ratio_text(rounds))
            );
        }
    }
    let tp: Vec<&Summary> = sums.iter().filter(|r| r.rate.is_some()).collect();
    if !tp.is_empty() {
        println!("\nthroughput (producer publish rate; every message delivered to every group)");
        println!(
            "{:<10} {:<22} {:>6} {:>12} {:>10}  {:>8}",
            "mechanism", "test", "size", "msgs/s", "MB/s", "vs floor"
        );
        for r in &tp {
            let m = r.rate.unwrap_or(0.0);
            println!(
                "{:<10} {:<22} {:>6} {:>12.0} {:>10.1}  {:>8}",
                r.mechanism,
                r.test,
                r.size,
                m,
                m * r.size as f64 / 1e6,
                r.vs_floor.map_or("-".into(), |v| v.ratio_text(rounds))
            );
        }
        for r in &tp {
            if let Some(v) = r.vs_one_group {
                println!(
                    "{} B: producer rate {} / 1->1, both {UNBLOCKED} (the ring holds the run): {}",
                    r.size,
                    r.test.trim_end_matches(UNBLOCKED).trim_end(),
                    v.ratio_text(rounds)
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Spread;

    #[test]
    fn spread_is_the_median_and_range_of_rounds() {
        assert_eq!(Spread::of(vec![]), None);
        let s = Spread::of(vec![3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        // An even count: the mean of the middle two.
        let s = Spread::of(vec![4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 4.0));
        assert_eq!(s.ratio_text(4), "2.50x (1.00-4.00)");
        assert_eq!(s.ratio_text(1), "2.50x");
    }
}
