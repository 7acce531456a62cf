//! Replies: a message may quote a message of its own conversation that its sender can
//! read. The quoted seq travels with the push, the history and the conversation list;
//! a seq that does not exist, or that the sender cannot see (before they joined a
//! group), is refused before anything is stored.

mod common;

use common::*;
use im_core::model::Seq;
use im_core::protocol::{ErrorCode, HistoryQuery};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_reply_carries_the_quoted_seq_everywhere() {
    let server = start(test_config()).await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    befriend(&mut alice, &mut bob).await;
    let chat = alice.direct(&bob);
    let hello = alice
        .client
        .send_text(chat, "lunch at noon?")
        .await
        .unwrap();
    bob.message().await;

    let answer = bob
        .client
        .reply_text(chat, hello.seq, "yes!")
        .await
        .unwrap();
    let pushed = alice.message().await;
    assert_eq!((pushed.seq, pushed.reply_to), (answer.seq, Some(hello.seq)));
    assert_eq!(text(&pushed), "yes!");

    let (page, _) = alice
        .client
        .history(chat, HistoryQuery::default())
        .await
        .unwrap();
    let quoted: Vec<Option<Seq>> = page.iter().map(|m| m.reply_to).collect();
    assert_eq!(quoted, [None, Some(hello.seq)]);
    let listed = alice.client.conversations().await.unwrap();
    let last = listed[0].last_message.as_ref().expect("a last message");
    assert_eq!(last.reply_to, Some(hello.seq));

    // Nothing to quote: seq 0 is malformed, a seq past the end does not exist. Neither
    // is stored.
    let nothing = bob.client.reply_text(chat, Seq::ZERO, "?").await;
    assert_eq!(refused_with(nothing), Some(ErrorCode::Invalid));
    let ahead = bob
        .client
        .reply_text(chat, Seq(answer.seq.0 + 1), "?")
        .await;
    assert_eq!(refused_with(ahead), Some(ErrorCode::NotFound));
    let (page, _) = bob
        .client
        .history(chat, HistoryQuery::default())
        .await
        .unwrap();
    assert_eq!(page.len(), 2, "a refused reply stores nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_member_quotes_only_what_they_can_read() {
    let server = start(test_config()).await;
    let LateJoin {
        early,
        late,
        stranger,
        group: g,
        before,
        after,
        ..
    } = late_join(&server).await;

    // A member since the start quotes anything; the late member only from their join.
    early
        .client
        .reply_text(g, before, "old news")
        .await
        .unwrap();
    let hidden = late.client.reply_text(g, before, "what was that?").await;
    assert_eq!(refused_with(hidden), Some(ErrorCode::NotFound));
    let seen = late.client.reply_text(g, after, "hi all").await.unwrap();
    assert_eq!(seen.seq.0, after.0 + 2);
    // Someone outside the group learns nothing, not even whether the seq exists.
    let outside = stranger.client.reply_text(g, after, "let me in").await;
    assert_eq!(refused_with(outside), Some(ErrorCode::Forbidden));
}
