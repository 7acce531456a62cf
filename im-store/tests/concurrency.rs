//! 32 writers append 10,240 messages to one conversation at once (each also retrying a
//! tenth of them): on every database the seqs come out gapless and unique, each message
//! is stored exactly once, and each retry returns the first result.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use common::{Server, server_database, sqlite_file};
use im_core::model::{Body, ConversationId, DeviceId, Seq, Timestamp};
use im_core::storage::{MessageRange, NewMessage, NewUser, Storage};
use im_store::SqlStorage;

const WRITERS: usize = 32;
const EACH: usize = 320;

async fn hammer(name: &str, storage: Arc<SqlStorage>) {
    let storage: Arc<dyn Storage> = storage;
    let mut users = Vec::new();
    for u in ["alice", "bob"] {
        let user = storage
            .create_user(NewUser {
                username: u.into(),
                display_name: u.into(),
                avatar: None,
                password_hash: "x".into(),
                created_at: Timestamp::now(),
            })
            .await
            .unwrap();
        users.push(user.id);
    }
    let chat = ConversationId::direct(users[0], users[1]);
    let start = Instant::now();
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let storage = storage.clone();
            let sender = users[w % 2];
            tokio::spawn(async move {
                let device = DeviceId::new(format!("w{w}")).unwrap();
                let mut acked = Vec::with_capacity(EACH);
                for k in 0..EACH {
                    let message = NewMessage {
                        sender,
                        sender_device: device.clone(),
                        client_id: format!("{w}-{k}"),
                        body: Body::Text {
                            text: format!("{w}-{k}"),
                        },
                        sent_at: Timestamp::now(),
                        reply_to: None,
                        forwarded: None,
                        mentions: Vec::new(),
                    };
                    let first = storage.append(chat, message.clone()).await.unwrap();
                    assert!(!first.duplicate);
                    if k % 10 == 0 {
                        let again = storage.append(chat, message).await.unwrap();
                        assert!(again.duplicate, "a retry must not store again");
                        assert_eq!(again.message, first.message);
                    }
                    acked.push(first.message.seq);
                }
                acked
            })
        })
        .collect();
    let mut all = HashSet::new();
    for task in tasks {
        let acked = task.await.unwrap();
        assert!(
            acked.windows(2).all(|w| w[0] < w[1]),
            "one writer's seqs rise"
        );
        for seq in acked {
            assert!(all.insert(seq), "seq {seq:?} acked twice");
        }
    }
    let elapsed = start.elapsed();
    let total = (WRITERS * EACH) as u64;
    assert_eq!(storage.last_seq(chat).await.unwrap(), Seq(total));
    assert_eq!(all.len() as u64, total);

    // The stored timeline: seqs 1..=total, each message once.
    let mut stored = BTreeMap::new();
    let mut after = Seq::ZERO;
    loop {
        let page = storage
            .messages(
                chat,
                MessageRange {
                    after,
                    before: None,
                    limit: 1000,
                    newest: false,
                    viewer: None,
                },
            )
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        for m in page {
            assert!(stored.insert(m.seq.0, m.client_id).is_none());
        }
    }
    let seqs: Vec<u64> = stored.keys().copied().collect();
    assert_eq!(seqs, (1..=total).collect::<Vec<_>>(), "gapless");
    let ids: HashSet<&String> = stored.values().collect();
    assert_eq!(ids.len() as u64, total, "each message stored once");
    println!(
        "{name}: {total} appends from {WRITERS} writers (+{} retries) in {elapsed:?}",
        total / 10
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_stays_gapless_under_32_writers() {
    hammer("sqlite (file)", sqlite_file().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stays_gapless_under_32_writers() {
    let Some(url) = Server::Postgres.url() else {
        return;
    };
    hammer("postgres", server_database(Server::Postgres, &url).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_stays_gapless_under_32_writers() {
    let Some(url) = Server::MySql.url() else {
        return;
    };
    hammer("mysql", server_database(Server::MySql, &url).await).await;
}

/// Two storages on one SQLite file, as two processes would open it (each with a writer
/// of its own): appends from both at once all succeed, gapless, instead of failing with
/// "database is locked" when a transaction that read first cannot become a writer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_sqlite_file_both_write() {
    let dir = std::env::temp_dir().join("im-store-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("two-writers-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let one: Arc<dyn Storage> = Arc::new(SqlStorage::connect(&url).await.unwrap());
    let other: Arc<dyn Storage> = Arc::new(SqlStorage::connect(&url).await.unwrap());
    let chat = ConversationId::direct(im_core::model::UserId(1), im_core::model::UserId(2));
    const EACH: u64 = 200;
    let tasks: Vec<_> = [one.clone(), other]
        .into_iter()
        .enumerate()
        .flat_map(|(p, storage)| {
            (0..4).map(move |w| {
                let storage = storage.clone();
                tokio::spawn(async move {
                    let device = DeviceId::new(format!("p{p}w{w}")).unwrap();
                    for k in 0..EACH {
                        let message = NewMessage {
                            sender: im_core::model::UserId(1 + (w % 2)),
                            sender_device: device.clone(),
                            client_id: format!("{k}"),
                            body: Body::Text {
                                text: format!("{p}-{w}-{k}"),
                            },
                            sent_at: Timestamp::now(),
                            reply_to: None,
                            forwarded: None,
                            mentions: Vec::new(),
                        };
                        storage
                            .append(chat, message)
                            .await
                            .unwrap_or_else(|e| panic!("process {p} writer {w} append {k}: {e}"));
                    }
                })
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(one.last_seq(chat).await.unwrap(), Seq(8 * EACH));
    let _ = std::fs::remove_file(&path);
}
