//! A SQLite file's write-ahead log is checkpointed off the commit path, so it is reused
//! rather than growing: two equal rounds of appends, with a pause between them for the
//! checkpointer, leave a log about the size of one round, not two.

use std::sync::Arc;
use std::time::Duration;

use im_core::client::new_client_id;
use im_core::model::{Body, ConversationId, DeviceId, Timestamp, UserId};
use im_core::storage::{NewMessage, NewUser, Storage};
use im_store::SqlStorage;

const ROUND: usize = 4000;

async fn round(storage: &Arc<dyn Storage>, users: &[UserId]) {
    // Spread over many conversations, so each batch touches many pages.
    let batch: Vec<_> = (0..ROUND)
        .map(|i| {
            let from = users[i % users.len()];
            let to = users[(i + 1) % users.len()];
            (
                ConversationId::direct(from, to),
                NewMessage {
                    sender: from,
                    sender_device: DeviceId::new("d").unwrap(),
                    client_id: new_client_id(),
                    body: Body::Text {
                        text: "x".repeat(100),
                    },
                    sent_at: Timestamp::now(),
                    reply_to: None,
                    forwarded: None,
                    mentions: Vec::new(),
                },
            )
        })
        .collect();
    for chunk in batch.chunks(512) {
        for result in storage.append_many(chunk.to_vec()).await {
            result.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_reused_instead_of_growing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let storage: Arc<dyn Storage> = Arc::new(SqlStorage::connect(&url).await.unwrap());
    let mut users = Vec::new();
    for i in 0..200 {
        let user = storage
            .create_user(NewUser {
                username: format!("user{i}"),
                display_name: "U".into(),
                avatar: None,
                password_hash: "x".into(),
                created_at: Timestamp::now(),
            })
            .await
            .unwrap();
        users.push(user.id);
    }
    let wal = || std::fs::metadata(dir.path().join("wal.db-wal")).map_or(0, |m| m.len());

    round(&storage, &users).await;
    let after_one = wal();
    assert!(
        after_one > 1 << 20,
        "the log holds the first round: {after_one} bytes"
    );
    // The checkpointer runs twice a second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    round(&storage, &users).await;
    let after_two = wal();
    assert!(
        after_two < after_one * 3 / 2,
        "the log grew from {after_one} to {after_two} bytes: it was not reused"
    );
}
