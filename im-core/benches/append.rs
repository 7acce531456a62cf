//! `MemoryStorage` appends: seq assignment in one conversation, one message at a time and
//! 64 at once (`append_many`).
//!
//! Every `send` goes through `MessageStore::append`, which assigns the conversation's
//! next seq and records the idempotency key under the storage's one lock; the memory
//! storage is the reference adapter and the one single-process apps and tests run on,
//! so its cost is the floor under every send. The messages (and their time-first client
//! ids) are built outside the timed part; the storage is replaced every
//! [`CHUNK`] messages (also untimed), so memory stays bounded however many iterations
//! criterion asks for.
//!
//! Run with `cargo bench -p im-core --bench append`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use im_core::client::new_client_id;
use im_core::memory::MemoryStorage;
use im_core::model::{Body, ConversationId, DeviceId, GroupId, Timestamp, UserId};
use im_core::storage::{MessageStore, NewMessage};
use tokio::runtime::Runtime;

/// Messages appended to one storage before it is replaced.
const CHUNK: u64 = 64 * 1024;

/// The batch size of `append_many`.
const MANY: usize = 64;

fn conversation() -> ConversationId {
    ConversationId::Group(GroupId(1))
}

/// A message with a fresh, unique, time-first client id.
fn new_message(device: &DeviceId) -> NewMessage {
    NewMessage {
        sender: UserId(1),
        sender_device: device.clone(),
        client_id: new_client_id(),
        body: Body::Text {
            text: "x".repeat(100),
        },
        sent_at: Timestamp::now(),
        reply_to: None,
        forwarded: None,
        mentions: Vec::new(),
    }
}

/// Times `iters` calls of one `append` each.
fn append_one(rt: &Runtime, iters: u64, device: &DeviceId) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(CHUNK);
        left -= n;
        let storage = MemoryStorage::new();
        let messages: Vec<NewMessage> = (0..n).map(|_| new_message(device)).collect();
        total += rt.block_on(async {
            let start = Instant::now();
            for message in messages {
                let appended = storage
                    .append(conversation(), message)
                    .await
                    .expect("memory appends do not fail");
                black_box(appended);
            }
            start.elapsed()
        });
        // The storage is dropped here, outside the timed part.
    }
    total
}

/// Times `iters` calls of `append_many` with [`MANY`] messages each.
fn append_many(rt: &Runtime, iters: u64, device: &DeviceId) -> Duration {
    let per_storage = (CHUNK / MANY as u64).max(1);
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(per_storage);
        left -= n;
        let storage = MemoryStorage::new();
        let batches: Vec<Vec<(ConversationId, NewMessage)>> = (0..n)
            .map(|_| {
                (0..MANY)
                    .map(|_| (conversation(), new_message(device)))
                    .collect()
            })
            .collect();
        total += rt.block_on(async {
            let start = Instant::now();
            for batch in batches {
                let results = storage.append_many(batch).await;
                black_box(results);
            }
            start.elapsed()
        });
    }
    total
}

fn append(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime");
    let device = DeviceId::new("bench").expect("a valid device id");

    // Correctness of what is timed: seqs are consecutive, nothing is a duplicate.
    rt.block_on(async {
        let storage = MemoryStorage::new();
        for expected in 1..=3 {
            let appended = storage
                .append(conversation(), new_message(&device))
                .await
                .expect("memory appends do not fail");
            assert!(!appended.duplicate);
            assert_eq!(appended.message.seq.0, expected);
        }
        let batch = (0..MANY)
            .map(|_| (conversation(), new_message(&device)))
            .collect();
        let results = storage.append_many(batch).await;
        assert!(
            results
                .iter()
                .all(|r| r.as_ref().is_ok_and(|a| !a.duplicate))
        );
    });

    let mut group = c.benchmark_group("memory_append");
    group.throughput(Throughput::Elements(1));
    group.bench_function("append", |b| {
        b.iter_custom(|iters| append_one(&rt, iters, &device));
    });
    group.throughput(Throughput::Elements(MANY as u64));
    group.bench_function(BenchmarkId::new("append_many", MANY), |b| {
        b.iter_custom(|iters| append_many(&rt, iters, &device));
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = append
}
criterion_main!(benches);
