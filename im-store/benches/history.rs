//! What a `history` page costs `SqlStorage` on a SQLite file since pages carry reactions:
//! the newest 50 messages of a 5,000-message conversation alone, then with the read of
//! their reactions, once where nobody reacted and once with three reactions on every
//! message. The engine makes exactly these two calls per page (`engine/messaging.rs`,
//! `engine/reactions.rs`), so the difference is the reactions' share of a page.
//!
//! Run with `cargo bench -p im-store --bench history`.

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use im_core::client::new_client_id;
use im_core::model::{Body, ConversationId, DeviceId, GroupId, Seq, Timestamp, UserId};
use im_core::storage::{MessageRange, MessageStore, NewMessage, ReactionStore};
use im_store::SqlStorage;
use tokio::runtime::Runtime;

const MESSAGES: u64 = 5_000;
const PAGE: u32 = 50;

fn newest_page() -> MessageRange {
    MessageRange {
        after: Seq::ZERO,
        before: None,
        limit: PAGE + 1,
        newest: true,
        viewer: Some(UserId(1)),
    }
}

/// A conversation of `MESSAGES` messages, with `reactions` users reacting to each.
async fn fill(s: &SqlStorage, conversation: ConversationId, reactions: u64) {
    let device = DeviceId::new("bench").expect("device id");
    let mut batch = Vec::new();
    for _ in 0..MESSAGES {
        batch.push((
            conversation,
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
            },
        ));
        if batch.len() == 500 {
            for r in s.append_many(std::mem::take(&mut batch)).await {
                r.expect("append");
            }
        }
    }
    for seq in 1..=MESSAGES {
        for user in 0..reactions {
            let emoji = ["👍", "❤️", "😂"][user as usize % 3];
            s.react(conversation, Seq(seq), UserId(10 + user), Some(emoji))
                .await
                .expect("react");
        }
    }
}

fn history(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("history.db").display()
    );
    let s = Arc::new(rt.block_on(SqlStorage::connect(&url)).expect("connect"));
    let quiet = ConversationId::Group(GroupId(1));
    let liked = ConversationId::Group(GroupId(2));
    rt.block_on(fill(&s, quiet, 0));
    rt.block_on(fill(&s, liked, 3));

    let mut group = c.benchmark_group("history_page_50");
    group.bench_function("messages only", |b| {
        b.iter(|| {
            rt.block_on(async {
                let page = s.messages(quiet, newest_page()).await.expect("messages");
                assert_eq!(page.len(), PAGE as usize + 1);
            })
        });
    });
    for (name, conversation, per_page) in [
        ("messages + reactions (none)", quiet, 0),
        (
            "messages + reactions (3 per message)",
            liked,
            3 * (PAGE as usize + 1),
        ),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(async {
                    let page = s
                        .messages(conversation, newest_page())
                        .await
                        .expect("messages");
                    let (first, last) = (page[0].seq, page[page.len() - 1].seq);
                    let reactions = s
                        .reactions(conversation, Seq(first.0 - 1), last)
                        .await
                        .expect("reactions");
                    assert_eq!(reactions.len(), per_page);
                })
            });
        });
    }
    group.finish();
}

criterion_group!(benches, history);
criterion_main!(benches);
