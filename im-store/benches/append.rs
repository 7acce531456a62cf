//! `SqlStorage` appends on a SQLite file: `append_many` of 1, 64 and 512 messages, and
//! 64 concurrent `append`s.
//!
//! Every stored message goes through the group-commit writer (`sql/appender.rs`): the
//! appends queued while a batch commits go into the next transaction together, so one
//! commit (one fsync: WAL with `synchronous = FULL`) is shared by the whole batch. The
//! batch sizes show how well that cost is spread: one message per commit (a lone
//! sender), 64 (one connection's pipelined sends, via `append_many`), 512 (the largest
//! batch), and 64 independent `append` calls in flight at once (64 senders), which the
//! writer gathers into as few commits as it can. Each message has a fresh, time-first
//! client id (`new_client_id`), as real clients send, and all go to one group
//! conversation. Throughput is messages per second; building the messages is not timed.
//!
//! The database lives in a temporary directory on the same disk as the build, so the
//! figures include real fsyncs. Run with `cargo bench -p im-store --bench append`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use im_core::client::new_client_id;
use im_core::model::{Body, ConversationId, DeviceId, GroupId, Timestamp, UserId};
use im_core::storage::{Appended, MessageStore, NewMessage, StorageResult};
use im_store::SqlStorage;
use tokio::runtime::Runtime;

/// `append_many` batch sizes.
const BATCHES: [usize; 3] = [1, 64, 512];

/// Concurrent `append` calls per iteration.
const CONCURRENT: usize = 64;

fn conversation() -> ConversationId {
    ConversationId::Group(GroupId(1))
}

/// A message from `sender`, with a fresh, unique, time-first client id.
fn new_message(sender: u64, device: &DeviceId) -> NewMessage {
    NewMessage {
        sender: UserId(sender),
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

/// Every result stored a new message.
fn check(results: &[StorageResult<Appended>]) {
    for result in results {
        match result {
            Ok(appended) => assert!(!appended.duplicate, "a fresh client id was a duplicate"),
            Err(e) => panic!("append failed: {e}"),
        }
    }
}

/// Times `iters` calls of `append_many` with `size` messages each.
async fn append_many(storage: &SqlStorage, iters: u64, size: usize) -> Duration {
    let device = DeviceId::new("bench").expect("a valid device id");
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let batch: Vec<(ConversationId, NewMessage)> = (0..size)
            .map(|_| (conversation(), new_message(1, &device)))
            .collect();
        let start = Instant::now();
        let results = storage.append_many(batch).await;
        total += start.elapsed();
        check(&results);
    }
    total
}

/// Times `iters` rounds of [`CONCURRENT`] `append` calls in flight at once, from as many
/// senders.
async fn append_concurrently(storage: &SqlStorage, iters: u64) -> Duration {
    let device = DeviceId::new("bench").expect("a valid device id");
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let messages: Vec<NewMessage> = (0..CONCURRENT as u64)
            .map(|sender| new_message(sender + 1, &device))
            .collect();
        let start = Instant::now();
        let results = futures::future::join_all(
            messages
                .into_iter()
                .map(|message| storage.append(conversation(), message)),
        )
        .await;
        total += start.elapsed();
        check(&results);
    }
    total
}

fn sqlite_append(c: &mut Criterion) {
    let rt: Runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("bench.db").display()
    );
    let storage = Arc::new(
        rt.block_on(SqlStorage::connect(&url))
            .expect("the database opens and migrates"),
    );

    let mut group = c.benchmark_group("sqlite_append");
    for size in BATCHES {
        group.throughput(Throughput::Elements(size as u64));
        group.bench_with_input(BenchmarkId::new("append_many", size), &size, |b, &size| {
            b.iter_custom(|iters| {
                let storage = storage.clone();
                rt.block_on(rt.spawn(async move { append_many(&storage, iters, size).await }))
                    .expect("the timed loop does not panic")
            });
        });
    }
    group.throughput(Throughput::Elements(CONCURRENT as u64));
    group.bench_function(BenchmarkId::new("concurrent_append", CONCURRENT), |b| {
        b.iter_custom(|iters| {
            let storage = storage.clone();
            rt.block_on(rt.spawn(async move { append_concurrently(&storage, iters).await }))
                .expect("the timed loop does not panic")
        });
    });
    group.finish();

    // Close the pools before the directory goes.
    drop(storage);
    drop(rt);
    drop(dir);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = sqlite_append
}
criterion_main!(benches);
