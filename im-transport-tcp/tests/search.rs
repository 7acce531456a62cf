//! Search through the engine, over TCP: every conversation a user may read (a late
//! member's group only from their joining on), one conversation with a clear refusal for
//! a stranger, pages that go back with `before`, what a user hid left out for them only,
//! bad queries `invalid`, and a flood `rate_limited`.

mod common;

use common::*;
use im_core::client::ClientError;
use im_core::engine::RateLimits;
use im_core::model::{ConversationId, MessageId};
use im_core::protocol::{ErrorCode, reply, request};

async fn search(
    user: &User,
    query: &str,
    conversation: Option<ConversationId>,
    before: Option<MessageId>,
    limit: Option<u32>,
) -> Result<reply::Found, ClientError> {
    user.client
        .call(request::Search {
            query: query.to_owned(),
            conversation,
            before,
            limit,
        })
        .await
}

async fn texts(user: &User, query: &str) -> Vec<String> {
    search(user, query, None, None, None)
        .await
        .unwrap()
        .messages
        .iter()
        .map(|m| text(m).to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_finds_what_each_user_may_read_newest_first() {
    let server = start(test_config()).await;
    let LateJoin {
        owner,
        early,
        late,
        stranger,
        group,
        ..
    } = late_join(&server).await;
    // late_join sent "before" and "after" to the group; more words now.
    let chat = owner.direct(&early);
    owner
        .client
        .send_text(group, "team lunch friday")
        .await
        .unwrap();
    owner
        .client
        .send_text(chat, "Lunch, just us?")
        .await
        .unwrap();
    let hidden = early
        .client
        .send_text(chat, "lunch is on me")
        .await
        .unwrap();

    assert_eq!(
        texts(&owner, "lunch").await,
        ["lunch is on me", "Lunch, just us?", "team lunch friday"]
    );
    assert_eq!(texts(&late, "lunch").await, ["team lunch friday"]);
    assert_eq!(
        texts(&late, "before").await,
        Vec::<String>::new(),
        "sent before they joined"
    );
    assert_eq!(texts(&early, "before").await, ["before"]);
    assert_eq!(texts(&stranger, "lunch").await, Vec::<String>::new());

    // Hidden for the one who hid it.
    early
        .client
        .call(request::DeleteForMe {
            conversation: chat,
            seq: hidden.seq,
        })
        .await
        .unwrap();
    assert_eq!(
        texts(&early, "lunch").await,
        ["Lunch, just us?", "team lunch friday"]
    );
    assert_eq!(texts(&owner, "lunch").await.len(), 3);

    // One conversation; a stranger is refused it, not shown an empty page.
    let only = search(&owner, "lunch", Some(group), None, None)
        .await
        .unwrap();
    assert_eq!(only.messages.len(), 1);
    assert_eq!(only.messages[0].conversation, group);
    let refused = search(&stranger, "lunch", Some(group), None, None).await;
    assert_eq!(refused_with(refused), Some(ErrorCode::Forbidden));
    let refused = search(&stranger, "lunch", Some(chat), None, None).await;
    assert!(matches!(
        refused_with(refused),
        Some(ErrorCode::Forbidden | ErrorCode::NotFound)
    ));

    // Pages go back with `before`.
    for n in 0..5 {
        owner
            .client
            .send_text(chat, &format!("page word {n}"))
            .await
            .unwrap();
    }
    let first = search(&early, "page", None, None, Some(2)).await.unwrap();
    assert!(first.more);
    assert_eq!(
        first.messages.iter().map(text).collect::<Vec<_>>(),
        ["page word 4", "page word 3"]
    );
    let mut seen: Vec<String> = first.messages.iter().map(|m| text(m).to_owned()).collect();
    let mut before = first.messages.last().map(|m| m.id);
    loop {
        let page = search(&early, "page", None, before, Some(2)).await.unwrap();
        seen.extend(page.messages.iter().map(|m| text(m).to_owned()));
        before = page.messages.last().map(|m| m.id);
        if !page.more {
            break;
        }
    }
    assert_eq!(
        seen,
        [
            "page word 4",
            "page word 3",
            "page word 2",
            "page word 1",
            "page word 0"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_queries_are_invalid_and_floods_rate_limited() {
    let mut config = test_config();
    config.rate_limits = RateLimits {
        searches_per_user_per_minute: 3,
        ..RateLimits::unlimited()
    };
    let server = start(config).await;
    let alice = server.user("alice").await;
    for bad in ["", " *\"()- ", &"word ".repeat(60), "a b c d e f g h i"] {
        let refused = search(&alice, bad, None, None, None).await;
        assert_eq!(refused_with(refused), Some(ErrorCode::Invalid), "{bad:?}");
    }
    // Those cost nothing and were not counted; three searches a minute were allowed.
    for _ in 0..3 {
        search(&alice, "hello", None, None, None).await.unwrap();
    }
    let limited = search(&alice, "hello", None, None, None).await;
    assert_eq!(refused_with(limited), Some(ErrorCode::RateLimited));
}
