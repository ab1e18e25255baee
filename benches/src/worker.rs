//! The far side of a benchmark, run as `shmq bench-worker` in its own process
//! (or, for crossbeam, in a thread): echo for ping-pong, source or sink for
//! throughput. Results go to stderr as one JSON line (stdout may be a pipe
//! under test).

use super::endpoint::{
    BareRing, Endpoint, FloorEnd, FloorRing, FutexEnd, Mechanism, ShmqEnd, StreamEnd,
};
use base64::Engine;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;
use shmq::clock::now_ns;
use shmq::WaitStrategy;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;

/// What the worker does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// Receive a message, send it back.
    Echo,
    /// Send `count` messages as fast as possible.
    Source,
    /// Receive `count` messages (0: until 300 ms pass with none).
    Sink,
}

/// Arguments of `shmq bench-worker`.
#[derive(clap::Args, Debug, Clone)]
pub struct WorkerArgs {
    /// What to measure.
    #[arg(long, value_enum)]
    pub mechanism: Mechanism,
    /// Which side this worker is.
    #[arg(long, value_enum)]
    pub role: Role,
    /// Payload bytes.
    #[arg(long)]
    pub size: usize,
    /// Messages to send or receive (0: receive until idle).
    #[arg(long)]
    pub count: u64,
    /// shmq: queue to send on. floor: the shared file. ring: the ring to
    /// send on.
    #[arg(long)]
    pub tx: Option<PathBuf>,
    /// shmq: queue to receive from. ring: the ring to receive from.
    #[arg(long)]
    pub rx: Option<PathBuf>,
    /// shmq: the group to receive as.
    #[arg(long)]
    pub group: Option<String>,
    /// floor ping-pong: which mailbox is ours.
    #[arg(long, default_value_t = 1)]
    pub side: usize,
    /// floor ring: number of slots.
    #[arg(long, default_value_t = 0)]
    pub slots: u64,
    /// Pin to this CPU.
    #[arg(long)]
    pub cpu: Option<usize>,
    /// shmq sink: take up to this many waiting messages at once.
    #[arg(long, default_value_t = 1)]
    pub batch: u32,
    /// shmq: how to wait (spin when each side has a core of its own; block when
    /// several workers share one).
    #[arg(long, value_enum, default_value_t = Wait::Spin)]
    pub wait: Wait,
    /// Source: send at this many messages per second (0: as fast as possible),
    /// each carrying the time it was due, so a stalled sender shows up as
    /// latency instead of being hidden (no coordinated omission).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Sink: record each message's latency from the time it was due (the first
    /// 8 bytes, from a paced source) into a histogram; the first tenth is
    /// warm-up and not recorded.
    #[arg(long)]
    pub latency: bool,
}

/// `--wait` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Wait {
    Spin,
    Block,
}

impl Wait {
    fn strategy(self) -> WaitStrategy {
        match self {
            Wait::Spin => WaitStrategy::Spin,
            Wait::Block => WaitStrategy::Block,
        }
    }
}

/// Pins the calling thread to `cpu` (best effort: a refused pin is reported).
pub fn pin(cpu: Option<usize>) {
    if let Some(c) = cpu {
        let mut set = nix::sched::CpuSet::new();
        if set.set(c).is_ok() {
            if let Err(e) = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set) {
                eprintln!("shmq bench: cannot pin to CPU {c}: {e}");
            }
        }
    }
}

/// The endpoint a worker process uses, built from its arguments and stdio.
pub fn endpoint(a: &WorkerArgs) -> Result<Box<dyn Endpoint>, String> {
    Ok(match a.mechanism {
        Mechanism::Shmq => Box::new(ShmqEnd::new(
            a.tx.as_deref(),
            a.rx.as_deref().zip(a.group.as_deref()),
            a.wait.strategy(),
        )?),
        Mechanism::Floor => {
            let path = a.tx.as_deref().ok_or("floor needs --tx")?;
            if a.role == Role::Echo && a.wait == Wait::Block {
                Box::new(FutexEnd::new(path, a.side, true)?)
            } else if a.role == Role::Echo {
                Box::new(FloorEnd::new(path, a.side)?)
            } else {
                Box::new(FloorRing::new(path, a.size.max(8), a.slots)?)
            }
        }
        Mechanism::Ring => Box::new(BareRing::new(a.tx.as_deref(), a.rx.as_deref())?),
        Mechanism::Pipe => Box::new(StreamEnd {
            r: std::io::stdin(),
            w: std::io::stdout(),
        }),
        Mechanism::Uds => {
            // SAFETY: the parent passed our end of the socket pair as fd 0 and
            // nothing else in this process uses fd 0 as stdin.
            let fd = unsafe { OwnedFd::from_raw_fd(0) };
            let s = std::os::unix::net::UnixStream::from(fd);
            let w = s.try_clone().map_err(|e| e.to_string())?;
            Box::new(StreamEnd { r: s, w })
        }
        Mechanism::Crossbeam => return Err("crossbeam runs in-process".into()),
    })
}

/// What a worker's loop does beyond its role.
#[derive(Clone, Copy, Debug, Default)]
pub struct Load {
    /// Message size.
    pub size: usize,
    /// Messages.
    pub count: u64,
    /// See [`WorkerArgs::rate`].
    pub rate: u64,
    /// See [`WorkerArgs::latency`].
    pub latency: bool,
    /// See [`WorkerArgs::batch`] (0 or 1: one at a time).
    pub batch: u32,
}

impl Load {
    pub fn new(size: usize, count: u64) -> Load {
        Load {
            size,
            count,
            ..Load::default()
        }
    }
}

/// Encodes a histogram for the result line (V2 format, base64).
pub fn encode_hist(h: &Histogram<u64>) -> Result<String, String> {
    let mut bytes = Vec::new();
    V2Serializer::new()
        .serialize(h, &mut bytes)
        .map_err(|e| format!("{e:?}"))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// Decodes [`encode_hist`]'s output.
pub fn decode_hist(s: &str) -> Result<Histogram<u64>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| e.to_string())?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("{e:?}"))
}

/// Runs a role on an endpoint; returns the JSON result line.
pub fn serve(role: Role, ep: &mut dyn Endpoint, load: Load) -> Result<String, String> {
    let Load { size, count, .. } = load;
    if (load.rate > 0 || load.latency) && size < 8 {
        return Err("paced sends and latency need messages of at least 8 bytes".into());
    }
    let mut buf = vec![0u8; size];
    match role {
        Role::Echo => {
            for _ in 0..count {
                ep.recv(&mut buf)?;
                ep.send(&buf)?;
            }
            Ok(serde_json::json!({ "role": "echo", "count": count }).to_string())
        }
        Role::Source => {
            let t0 = now_ns();
            let gap = if load.rate > 0 {
                1e9 / load.rate as f64
            } else {
                0.0
            };
            for i in 0..count {
                if load.rate > 0 {
                    let due = t0 + (i as f64 * gap) as u64;
                    while now_ns() < due {
                        std::hint::spin_loop();
                    }
                    buf[..8].copy_from_slice(&due.to_le_bytes());
                } else if size >= 8 {
                    buf[..8].copy_from_slice(&i.to_le_bytes());
                }
                ep.send(&buf)?;
            }
            let t1 = now_ns();
            Ok(serde_json::json!({ "role": "source", "count": count, "start_ns": t0, "end_ns": t1 }).to_string())
        }
        Role::Sink => {
            let (mut first, mut last, mut n) = (0u64, 0u64, 0u64);
            let mut hist = Histogram::<u64>::new(3).map_err(|e| e.to_string())?;
            let warm = count / 10;
            while n < count {
                ep.recv(&mut buf)?;
                last = now_ns();
                if n == 0 {
                    first = last;
                }
                if load.latency && n >= warm {
                    let mut due = [0u8; 8];
                    due.copy_from_slice(&buf[..8]);
                    let _ = hist.record(last.saturating_sub(u64::from_le_bytes(due)).max(1));
                }
                n += 1;
            }
            let mut out = serde_json::json!({ "role": "sink", "count": n, "first_ns": first, "last_ns": last });
            if load.latency {
                out["latency"] = encode_hist(&hist)?.into();
            }
            Ok(out.to_string())
        }
    }
}

/// A shmq sink that receives `count` messages, or with `count == 0` stops
/// after 300 ms without one (members of one group cannot know their share in
/// advance); `batch > 1` takes up to that many at a time (`recv_batch`),
/// copying each payload out as every other sink does.
fn shmq_sink(ep: &mut ShmqEnd, size: usize, count: u64, batch: u32) -> Result<String, String> {
    let c = ep.consumer().ok_or("sink needs --rx")?;
    let mut buf = Vec::with_capacity(size);
    let (mut first, mut last, mut n) = (0u64, 0u64, 0u64);
    let timeout = (count == 0).then_some(Duration::from_millis(300));
    while count == 0 || n < count {
        let left = if count == 0 { u64::MAX } else { count - n };
        let max = u64::from(batch).min(left).max(1) as usize;
        let copy = |_: &shmq::Meta, p: &[u8]| {
            buf.clear();
            buf.extend_from_slice(p);
        };
        let got = match timeout {
            Some(t) => c.recv_batch_timeout(max, t, copy),
            None => c.recv_batch(max, copy),
        };
        match got {
            Ok(k) => {
                last = now_ns();
                if n == 0 {
                    first = last;
                }
                n += k as u64;
            }
            Err(shmq::RecvError::Timeout) => break,
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(
        serde_json::json!({ "role": "sink", "count": n, "first_ns": first, "last_ns": last })
            .to_string(),
    )
}

/// `shmq bench-worker`.
pub fn run(a: WorkerArgs) -> Result<(), String> {
    pin(a.cpu);
    let shmq_sink_only =
        a.mechanism == Mechanism::Shmq && a.role == Role::Sink && (a.count == 0 || a.batch > 1);
    let line = if shmq_sink_only {
        let mut ep = ShmqEnd::new(
            None,
            a.rx.as_deref().zip(a.group.as_deref()),
            a.wait.strategy(),
        )?;
        shmq_sink(&mut ep, a.size, a.count, a.batch)?
    } else {
        let mut ep = endpoint(&a)?;
        let load = Load {
            size: a.size,
            count: a.count,
            rate: a.rate,
            latency: a.latency,
            batch: a.batch,
        };
        serve(a.role, ep.as_mut(), load)?
    };
    eprintln!("{line}");
    Ok(())
}
