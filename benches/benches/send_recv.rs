//! Single-process costs: send, claim/commit and receive alone, a send+receive
//! round trip, and batches, through a file-backed queue in /dev/shm. They catch
//! regressions in the per-message path; cross-process latency and throughput
//! are `shmq bench`'s job.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use shmq::{Queue, QueueOptions, StartAt, WaitStrategy};

fn queue() -> (tempfile::TempDir, Queue) {
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        "/dev/shm".into()
    } else {
        std::env::temp_dir()
    };
    let dir = tempfile::tempdir_in(base).unwrap();
    let q = QueueOptions::new()
        .capacity(1 << 22)
        .max_msg(4096)
        .create(dir.path().join("bench.q"))
        .unwrap();
    q.add_group("g", StartAt::Latest).unwrap();
    (dir, q)
}

fn send_then_recv(c: &mut Criterion) {
    let mut group = c.benchmark_group("send+recv");
    for size in [8usize, 64, 1024] {
        let (_dir, q) = queue();
        let mut p = q.producer().attach().unwrap();
        let mut cons = q
            .consumer("g")
            .wait_strategy(WaitStrategy::Spin)
            .attach()
            .unwrap();
        let msg = vec![0xabu8; size];
        let mut buf = Vec::with_capacity(size);
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::new("copy", size), &size, |b, _| {
            b.iter(|| {
                p.send(&msg).unwrap();
                copy_out(&mut cons, &mut buf)
            })
        });
        group.bench_with_input(BenchmarkId::new("zero-copy", size), &size, |b, _| {
            b.iter(|| {
                let mut g = p.claim_send(size).unwrap();
                g.as_mut_slice().copy_from_slice(&msg);
                g.commit();
                let r = cons.recv_ref().unwrap();
                r.as_bytes()[0]
            })
        });
    }
    group.finish();
}

fn batches(c: &mut Criterion) {
    let mut group = c.benchmark_group("batch-of-64");
    let (_dir, q) = queue();
    let mut p = q.producer().attach().unwrap();
    let mut cons = q.consumer("g").attach().unwrap();
    let msgs: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; 64]).collect();
    let refs: Vec<&[u8]> = msgs.iter().map(|m| &m[..]).collect();
    let mut buf = Vec::new();
    group.throughput(Throughput::Elements(64));
    group.bench_function("send_batch+recv", |b| {
        b.iter_batched(
            || (),
            |_| {
                p.send_batch(&refs).unwrap();
                for _ in 0..64 {
                    copy_out(&mut cons, &mut buf);
                }
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("send_batch+recv_batch", |b| {
        b.iter_batched(
            || (),
            |_| {
                p.send_batch(&refs).unwrap();
                let mut got = 0;
                while got < 64 {
                    got += cons
                        .recv_batch(64, |_, payload| {
                            buf.clear();
                            buf.extend_from_slice(payload);
                        })
                        .unwrap();
                }
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// Most messages timed per chunk: the ring (4 MiB) holds more than this many
/// 64-byte records, so sends never wait and receives never run dry.
const CHUNK: u64 = 20_000;

/// One side alone: `timed` runs on a chunk while `untimed` restores the ring.
fn one_side(
    iters: u64,
    mut timed: impl FnMut(u64),
    mut untimed: impl FnMut(u64),
    untimed_first: bool,
) -> std::time::Duration {
    let mut total = std::time::Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(CHUNK);
        if untimed_first {
            untimed(n);
        }
        let t0 = std::time::Instant::now();
        timed(n);
        total += t0.elapsed();
        if !untimed_first {
            untimed(n);
        }
        left -= n;
    }
    total
}

fn single_sides(c: &mut Criterion) {
    let mut group = c.benchmark_group("one-side-64B");
    group.throughput(Throughput::Elements(1));
    let msg = [0x11u8; 64];
    let (_dir, q) = queue();
    let mut p = q.producer().attach().unwrap();
    let mut cons = q.consumer("g").attach().unwrap();
    let mut buf = Vec::with_capacity(64);
    group.bench_function("send", |b| {
        b.iter_custom(|iters| {
            one_side(
                iters,
                |n| {
                    (0..n).for_each(|_| {
                        p.send(&msg).unwrap();
                    })
                },
                |n| {
                    (0..n).for_each(|_| {
                        copy_out(&mut cons, &mut buf);
                    })
                },
                false,
            )
        })
    });
    group.bench_function("claim+commit", |b| {
        b.iter_custom(|iters| {
            one_side(
                iters,
                |n| {
                    for _ in 0..n {
                        let mut g = p.claim_send(64).unwrap();
                        g.as_mut_slice().copy_from_slice(&msg);
                        g.commit();
                    }
                },
                |n| {
                    (0..n).for_each(|_| {
                        copy_out(&mut cons, &mut buf);
                    })
                },
                false,
            )
        })
    });
    let mut p2 = q.producer().attach().unwrap();
    group.bench_function("recv_copy", |b| {
        b.iter_custom(|iters| {
            one_side(
                iters,
                |n| {
                    (0..n).for_each(|_| {
                        copy_out(&mut cons, &mut buf);
                    })
                },
                |n| {
                    (0..n).for_each(|_| {
                        p2.send(&msg).unwrap();
                    })
                },
                true,
            )
        })
    });
    group.finish();
}

criterion_group!(benches, send_then_recv, batches, single_sides);
criterion_main!(benches);

/// Receives one message and copies it into `buf` (what a consumer that keeps
/// the bytes does).
fn copy_out(c: &mut shmq::Consumer, buf: &mut Vec<u8>) -> u64 {
    let m = c.recv_ref().unwrap();
    buf.clear();
    buf.extend_from_slice(m.as_bytes());
    m.seq()
}
