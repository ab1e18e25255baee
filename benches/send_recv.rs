//! Single-process costs: send, receive, and a round trip through a file-backed
//! queue in /dev/shm. Cross-process latency and throughput are `shmq bench`'s
//! job (issue 5); these catch regressions in the per-message path.
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
    let q = Queue::create(
        dir.path().join("bench.q"),
        &QueueOptions {
            capacity: 1 << 22,
            max_msg: 4096,
            ..Default::default()
        },
    )
    .unwrap();
    q.add_group("g", StartAt::Latest).unwrap();
    (dir, q)
}

fn send_then_recv(c: &mut Criterion) {
    let mut group = c.benchmark_group("send+recv");
    for size in [8usize, 64, 1024] {
        let (_dir, q) = queue();
        let mut p = q.producer();
        let mut cons = q.consumer("g").unwrap();
        cons.set_wait_strategy(WaitStrategy::Spin);
        let msg = vec![0xabu8; size];
        let mut buf = Vec::with_capacity(size);
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::new("copy", size), &size, |b, _| {
            b.iter(|| {
                p.send(&msg).unwrap();
                cons.recv_into(&mut buf, None).unwrap()
            })
        });
        group.bench_with_input(BenchmarkId::new("zero-copy", size), &size, |b, _| {
            b.iter(|| {
                let mut g = p.claim_send(size).unwrap();
                g.as_mut_slice().copy_from_slice(&msg);
                g.commit();
                let r = cons.recv_ref(None).unwrap();
                r.as_bytes()[0]
            })
        });
    }
    group.finish();
}

fn batches(c: &mut Criterion) {
    let mut group = c.benchmark_group("batch-of-64");
    let (_dir, q) = queue();
    let mut p = q.producer();
    let mut cons = q.consumer("g").unwrap();
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
                    cons.recv_into(&mut buf, None).unwrap();
                }
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, send_then_recv, batches);
criterion_main!(benches);
