//! Typing indicators: relayed to the others in the conversation, never stored, a flood
//! coalesced to one notice per second, "stopped" let through, strangers refused.

mod common;

use std::time::{Duration, Instant};

use common::*;
use im_core::model::{ConversationId, UserId};
use im_core::protocol::{ErrorCode, Event};

/// Drains typing events for `window`, returning (user, active) for each.
async fn typing_events(user: &mut User, window: Duration) -> Vec<(UserId, bool)> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + window;
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, user.events.next()).await {
        match event {
            Event::Typing {
                user,
                active,
                expires_ms,
                ..
            } => {
                assert_eq!(expires_ms, 6000);
                seen.push((user, active));
            }
            other => panic!("expected only typing, got {other:?}"),
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typing_flood_is_coalesced() {
    let server = start(test_config()).await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    befriend(&mut alice, &mut bob).await;
    let chat = alice.direct(&bob);

    // 300 keystrokes over about 1.5 s: one notice per started second gets through.
    let start = Instant::now();
    for _ in 0..300 {
        alice.client.typing(chat, true).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = start.elapsed();
    let seen = typing_events(&mut bob, Duration::from_millis(300)).await;
    let most = elapsed.as_secs() as usize + 1;
    assert!(
        !seen.is_empty() && seen.len() <= most,
        "{} notices for 300 keystrokes over {elapsed:?}",
        seen.len()
    );
    assert!(seen.iter().all(|&(u, active)| u == alice.id && active));

    // Stopping goes through at once, even within the second.
    alice.client.typing(chat, false).await.unwrap();
    assert_eq!(
        typing_events(&mut bob, Duration::from_millis(300)).await,
        [(alice.id, false)]
    );
    // Typing again soon after (300 ms, past a quarter of the interval) shows again, and
    // stopping again goes through; a start right after that stop is held back.
    alice.client.typing(chat, true).await.unwrap();
    alice.client.typing(chat, false).await.unwrap();
    alice.client.typing(chat, true).await.unwrap();
    assert_eq!(
        typing_events(&mut bob, Duration::from_millis(200)).await,
        [(alice.id, true), (alice.id, false)]
    );
    // The sender's own devices hear nothing, and nothing was stored.
    alice.quiet(100).await;
    assert!(alice.client.conversations().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_typing_and_who_may_type() {
    let server = start(test_config()).await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    let mut carol = server.user("carol").await;
    let mut mallory = server.user("mallory").await;
    befriend(&mut alice, &mut bob).await;
    befriend(&mut alice, &mut carol).await;
    let group = alice
        .client
        .create_group("g", &[bob.id, carol.id])
        .await
        .unwrap();
    bob.message().await;
    carol.message().await;
    let conv = ConversationId::Group(group.id);

    bob.client.typing(conv, true).await.unwrap();
    for u in [&mut alice, &mut carol] {
        assert_eq!(
            typing_events(u, Duration::from_millis(200)).await,
            [(bob.id, true)]
        );
    }
    bob.quiet(100).await;

    // Neither a stranger in a direct chat nor an outsider in a group is relayed.
    let err = mallory
        .client
        .typing(mallory.direct(&alice), true)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden));
    let err = mallory.client.typing(conv, true).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden));
    // Someone else's direct chat is not the stranger's to type in.
    let err = mallory
        .client
        .typing(alice.direct(&bob), true)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden));
    // Nor is a refusal followed by `done` for the notices the interval swallows.
    for active in [true, true, false, true] {
        let err = mallory.client.typing(conv, active).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::Forbidden), "active: {active}");
    }
    alice.quiet(100).await;
    mallory.quiet(50).await;
}
