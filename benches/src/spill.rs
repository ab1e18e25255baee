//! `shmq bench spill`: what a group that spills to disk costs everyone else.
//!
//! Every case runs on a queue with a 1 MiB ring in shared memory and a spill
//! directory on the file system under test, one producer process and one live
//! consumer process ("live", spinning), each pinned to its own core:
//!
//! - **rate**: the producer sends as fast as it can, with no other group
//!   (nothing spills) and then with a second group, "slow", that has no member
//!   and so spills everything. Spilling is done by the producer itself (a spill
//!   round when less than half the ring is free), so its rate is what a
//!   producer keeps while it carries the disk writes.
//! - **catch-up**: "slow" then gets a member, which reads its backlog back from
//!   the log and then from the ring.
//! - **disk**: the bytes the log absorbed per second of production, next to a
//!   plain sequential `write` of the same bytes, in chunks of the size the
//!   spill rounds wrote, into the same directory, synced by the same policy,
//!   run right after it (the page cache is flushed with `sync` before each).
//! - **latency**: the producer sends at a fixed rate (by default 100,000
//!   messages/s, or half the spilling rate if that is less, so both cases are
//!   sustainable) and the live member records
//!   each message's latency from the moment it was due, not from when it was
//!   sent, so a producer stalled in a spill round shows up in the figures.
//!
//! The machines this runs on are shared and noisy, so each case runs
//! [`REPEAT`] times, the cases interleaved: rates are the best run of each
//! (noise only ever slows a run), latency histograms are merged.

use super::worker::{decode_hist, Load};
use super::{finish, percentiles, shmq_worker, Ctx};
use hdrhistogram::Histogram;
use shmq::{Fsync, Queue, QueueOptions, SpillOptions, StartAt};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Options of `shmq bench spill`.
#[derive(Clone, Debug)]
pub struct SpillBench {
    /// Where the spill directories go (a private one is made inside).
    pub dir: PathBuf,
    /// Sync policy of the log (and of the plain writes it is compared with).
    pub fsync: Fsync,
    /// Messages per second for the latency cases (default: 100,000, or half
    /// the spilling rate measured in the same run if that is less).
    pub rate: Option<u64>,
}

/// The ring every case uses.
const RING: u64 = 1 << 20;
/// Bytes the rate case spills at most per size (it writes this much to disk).
const MAX_SPILL: u64 = 256 << 20;
/// Messages per second of the latency cases, unless that is more than half
/// the rate the producer reached while spilling: a feed's rate, not a flood.
const DEFAULT_RATE: f64 = 100_000.0;
/// Bytes of header per record in the log (see spill_log.rs).
const RECORD_HEADER: u64 = 32;

/// Figures of one message size.
pub struct SpillRun {
    size: usize,
    fsync: String,
    /// Messages of the rate cases.
    msgs: u64,
    rate_none: f64,
    rate_spilling: f64,
    catch_up: f64,
    spilled: u64,
    spill_bytes: u64,
    rounds: u64,
    spill_secs: f64,
    write_secs: f64,
    chunk: u64,
    paced: u64,
    lat_none: Histogram<u64>,
    lat_spilling: Histogram<u64>,
}

fn fsync_name(f: Fsync) -> String {
    match f {
        Fsync::Never => "never".into(),
        Fsync::Segment => "segment".into(),
        Fsync::Always => "always".into(),
        Fsync::Interval(d) => format!("interval={}", humantime::format_duration(d)),
    }
}

/// Creates a queue at `path` spilling to `dir`, with groups "live" and, when
/// `slow`, "slow" (which never gets a member while producing).
fn spill_queue(path: &Path, dir: &Path, fsync: Fsync, slow: bool) -> Result<Queue, String> {
    let q = QueueOptions::new()
        .capacity(RING)
        .max_msg(64 << 10)
        .replace(true)
        .spill(SpillOptions {
            fsync,
            ..SpillOptions::new(dir)
        })
        .create(path)
        .map_err(|e| e.to_string())?;
    q.add_group("live", StartAt::Latest)
        .map_err(|e| e.to_string())?;
    if slow {
        q.add_group("slow", StartAt::Latest)
            .map_err(|e| e.to_string())?;
    }
    Ok(q)
}

/// One producer and the "live" member. Returns the producer's result, the
/// member's, and the elapsed seconds from the producer's start to the later of
/// its end and the member's last receipt.
fn produce(
    ctx: &Ctx,
    q: &Path,
    queue: &Queue,
    load: Load,
) -> Result<(serde_json::Value, serde_json::Value, f64), String> {
    let sink_load = Load { rate: 0, ..load };
    let sink = ctx.spawn_quiet(
        &shmq_worker(q, "sink", sink_load, Some("live"), "spin"),
        ctx.cpus.1,
    )?;
    super::harness::wait_members(queue, 1, Duration::from_secs(20))?;
    let source_load = Load {
        latency: false,
        ..load
    };
    let source = ctx.spawn_quiet(
        &shmq_worker(q, "source", source_load, None, "spin"),
        ctx.cpus.0,
    )?;
    let src = finish(source)?;
    let snk = finish(sink)?;
    if snk["count"].as_u64() != Some(load.count) {
        return Err(format!(
            "spill bench: live member received {} of {}",
            snk["count"], load.count
        ));
    }
    let start = src["start_ns"].as_u64().unwrap_or(0);
    let end = src["end_ns"]
        .as_u64()
        .unwrap_or(0)
        .max(snk["last_ns"].as_u64().unwrap_or(0));
    Ok((src, snk, end.saturating_sub(start) as f64 / 1e9))
}

fn latency_of(snk: &serde_json::Value) -> Result<Histogram<u64>, String> {
    decode_hist(snk["latency"].as_str().ok_or("sink sent no latency")?)
}

/// Writes `bytes` sequentially into a new file in `dir`, `chunk` bytes per
/// call, syncing as the log would under `fsync` with segments of
/// `segment_size`. Returns the seconds it took.
fn plain_write(
    dir: &Path,
    bytes: u64,
    chunk: u64,
    fsync: Fsync,
    segment_size: u64,
) -> Result<f64, String> {
    let path = dir.join("plain-write.tmp");
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut f = File::create(&path).map_err(err)?;
    let buf = vec![0xa5u8; chunk.max(1) as usize];
    let t0 = Instant::now();
    let (mut done, mut since_sync, mut last_sync) = (0u64, 0u64, Instant::now());
    while done < bytes {
        let n = buf.len().min((bytes - done) as usize);
        f.write_all(&buf[..n]).map_err(err)?;
        done += n as u64;
        since_sync += n as u64;
        let due = match fsync {
            Fsync::Never => false,
            Fsync::Always => true,
            Fsync::Segment => since_sync >= segment_size,
            Fsync::Interval(d) => last_sync.elapsed() >= d,
        };
        if due {
            f.sync_data().map_err(err)?;
            since_sync = 0;
            last_sync = Instant::now();
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(&path).map_err(err)?;
    Ok(secs)
}

/// Runs every case for one message size.
pub fn run(ctx: &Ctx, o: &SpillBench, size: usize, msgs: u64) -> Result<SpillRun, String> {
    if size < 8 {
        return Err("bench spill needs messages of at least 8 bytes (they carry a time)".into());
    }
    let record = RECORD_HEADER + (size as u64).next_multiple_of(8);
    let n = msgs.min((MAX_SPILL / record).max(10_000));
    if n * record < 2 * RING {
        return Err(format!(
            "bench spill: {n} messages of {size} B do not fill the 1 MiB ring twice; raise --msgs"
        ));
    }
    let disk = tempfile::Builder::new()
        .prefix("shmq-bench-spill-")
        .tempdir_in(&o.dir)
        .map_err(|e| format!("{}: {e}", o.dir.display()))?;
    let fsync = o.fsync;
    let case = |name: &str, slow: bool| -> Result<(PathBuf, Queue, PathBuf), String> {
        let q = ctx.path(&format!("spill-{name}.q"));
        let dir = disk.path().join(name);
        let queue = spill_queue(&q, &dir, fsync, slow)?;
        Ok((q, queue, dir))
    };
    let mut best = Best::default();

    // Rates, with nothing spilling and with "slow" spilling everything,
    // interleaved; the best of each.
    for _ in 0..REPEAT {
        let (q, queue, _) = case("none", false)?;
        nix::unistd::sync();
        let (_, _, secs) = produce(ctx, &q, &queue, Load::new(size, n))?;
        best.none = best.none.min(secs);
        drop(queue);

        let (q, queue, dir) = case("spilling", true)?;
        nix::unistd::sync();
        let (_, _, secs) = produce(ctx, &q, &queue, Load::new(size, n))?;
        let st = queue.stat().spill.ok_or("the queue has no spill log")?;
        if st.spilled == 0 || st.rounds == 0 {
            return Err("bench spill: nothing was spilled".into());
        }
        if secs < best.spilling {
            best.spilling = secs;
            best.stat = Some(st);
        }
        // The slow group catches up from disk.
        let sink = ctx.spawn_quiet(
            &shmq_worker(&q, "sink", Load::new(size, n), Some("slow"), "spin"),
            ctx.cpus.1,
        )?;
        let snk = finish(sink)?;
        if snk["count"].as_u64() != Some(n) {
            return Err(format!("slow group caught up {} of {n}", snk["count"]));
        }
        let secs = (snk["last_ns"].as_u64().unwrap_or(0))
            .saturating_sub(snk["first_ns"].as_u64().unwrap_or(0)) as f64
            / 1e9;
        best.catch_up = best.catch_up.min(secs);
        drop(queue);
        std::fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let st = best.stat.take().ok_or("no spilling run")?;

    // The same bytes written plainly, in chunks of a round's average write.
    let chunk = (st.spill_bytes / st.rounds).max(1);
    for _ in 0..REPEAT {
        nix::unistd::sync();
        let secs = plain_write(
            disk.path(),
            st.spill_bytes,
            chunk,
            fsync,
            SpillOptions::new("").segment_size,
        )?;
        best.write = best.write.min(secs);
    }

    // Latency at a fixed rate, without and with the spilling group,
    // interleaved, each side's histograms merged.
    let rate_spilling = n as f64 / best.spilling;
    let paced = o
        .rate
        .unwrap_or((rate_spilling / 2.0).min(DEFAULT_RATE) as u64)
        .max(1);
    // About a second of sending per run.
    let lat_n = n.min(paced).max(1000);
    let paced_load = Load {
        rate: paced,
        latency: true,
        ..Load::new(size, lat_n)
    };
    let mut lat_none = Histogram::<u64>::new(3).map_err(|e| e.to_string())?;
    let mut lat_spilling = lat_none.clone();
    for _ in 0..REPEAT {
        for (slow, hist) in [(false, &mut lat_none), (true, &mut lat_spilling)] {
            let (q, queue, dir) = case("paced", slow)?;
            nix::unistd::sync();
            let (_, snk, _) = produce(ctx, &q, &queue, paced_load)?;
            hist.add(latency_of(&snk)?).map_err(|e| e.to_string())?;
            if slow && queue.stat().spill.is_none_or(|s| s.spilled == 0) {
                return Err("bench spill: the paced case spilled nothing; raise --msgs".into());
            }
            drop(queue);
            std::fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
    }
    Ok(SpillRun {
        size,
        fsync: fsync_name(fsync),
        msgs: n,
        rate_none: n as f64 / best.none,
        rate_spilling,
        catch_up: n as f64 / best.catch_up.max(1e-9),
        spilled: st.spilled,
        spill_bytes: st.spill_bytes,
        rounds: st.rounds,
        spill_secs: best.spilling,
        write_secs: best.write,
        chunk,
        paced,
        lat_none,
        lat_spilling,
    })
}

/// Runs of each case; rates are the best of them (the machine's noise only
/// ever slows a run down).
const REPEAT: usize = 3;

/// The shortest time seen per case.
struct Best {
    none: f64,
    spilling: f64,
    /// The spill figures of the fastest spilling run.
    stat: Option<shmq::SpillStat>,
    catch_up: f64,
    write: f64,
}

impl Default for Best {
    fn default() -> Self {
        Best {
            none: f64::MAX,
            spilling: f64::MAX,
            stat: None,
            catch_up: f64::MAX,
            write: f64::MAX,
        }
    }
}

impl SpillRun {
    fn spill_mb_s(&self) -> f64 {
        self.spill_bytes as f64 / self.spill_secs / 1e6
    }

    fn write_mb_s(&self) -> f64 {
        self.spill_bytes as f64 / self.write_secs.max(1e-9) / 1e6
    }

    fn p(h: &Histogram<u64>, q: f64) -> u64 {
        h.value_at_quantile(q)
    }

    /// One JSON object per line: rate, latency, disk and catch-up rows.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        use serde_json::json;
        let size = self.size;
        let mb = |m: f64| m * size as f64 / 1e6;
        let ratio = |a: u64, b: u64| a as f64 / b.max(1) as f64;
        vec![
            json!({ "mechanism": "shmq", "test": "spill rate", "size": size, "spilling_groups": 0,
                    "msgs": self.msgs, "msgs_per_s": self.rate_none, "mb_per_s": mb(self.rate_none) }),
            json!({ "mechanism": "shmq", "test": "spill rate", "size": size, "spilling_groups": 1,
                    "msgs": self.msgs, "msgs_per_s": self.rate_spilling, "mb_per_s": mb(self.rate_spilling),
                    "vs_none": self.rate_spilling / self.rate_none }),
            json!({ "mechanism": "shmq", "test": "spill latency", "size": size, "spilling_groups": 0,
                    "rate": self.paced, "latency_ns": percentiles(&self.lat_none) }),
            json!({ "mechanism": "shmq", "test": "spill latency", "size": size, "spilling_groups": 1,
                    "rate": self.paced, "latency_ns": percentiles(&self.lat_spilling),
                    "p50_vs_none": ratio(Self::p(&self.lat_spilling, 0.5), Self::p(&self.lat_none, 0.5)),
                    "p99_vs_none": ratio(Self::p(&self.lat_spilling, 0.99), Self::p(&self.lat_none, 0.99)) }),
            json!({ "mechanism": "shmq", "test": "spill write", "size": size, "fsync": self.fsync,
                    "bytes": self.spill_bytes, "messages": self.spilled, "rounds": self.rounds,
                    "mb_per_s": self.spill_mb_s(), "vs_write": self.spill_mb_s() / self.write_mb_s() }),
            json!({ "mechanism": "write", "test": "spill write", "size": size, "fsync": self.fsync,
                    "bytes": self.spill_bytes, "chunk": self.chunk, "mb_per_s": self.write_mb_s() }),
            json!({ "mechanism": "shmq", "test": "catch-up", "size": size,
                    "msgs_per_s": self.catch_up, "mb_per_s": mb(self.catch_up) }),
        ]
    }

    /// The readable table.
    pub fn print(&self) {
        let h = |x: &Histogram<u64>| {
            format!(
                "{:>8} {:>8} {:>8} {:>9} {:>9}",
                Self::p(x, 0.5),
                Self::p(x, 0.99),
                Self::p(x, 0.999),
                Self::p(x, 0.9999),
                x.max()
            )
        };
        println!(
            "\nspill, {} B messages, 1 MiB ring, fsync {} ({} messages per rate case, best of {REPEAT})",
            self.size, self.fsync, self.msgs
        );
        println!(
            "  producer rate   none spilling {:>10.0} msgs/s   one group spilling {:>10.0} msgs/s   ({:.2}x)",
            self.rate_none,
            self.rate_spilling,
            self.rate_spilling / self.rate_none
        );
        println!(
            "  disk            spill log {:>8.1} MB/s ({} rounds, {} B per round)   plain write {:>8.1} MB/s   ({:.2}x)",
            self.spill_mb_s(),
            self.rounds,
            self.chunk,
            self.write_mb_s(),
            self.spill_mb_s() / self.write_mb_s()
        );
        println!(
            "  catch-up        the spilled group read back at {:.0} msgs/s",
            self.catch_up
        );
        println!(
            "  live latency at {} msgs/s, {REPEAT} runs, ns from due time: {:>8} {:>8} {:>8} {:>9} {:>9}",
            self.paced, "p50", "p99", "p99.9", "p99.99", "max"
        );
        println!("    none spilling      {}", h(&self.lat_none));
        println!("    one group spilling {}", h(&self.lat_spilling));
    }
}
