//! Reactions: one emoji per user per message, pushed to everyone in the conversation
//! with the message's reactions after the change, and listed in history pages. Only
//! someone who can read the message may react to it.

mod common;

use common::*;
use im_core::model::{ConversationId, Seq};
use im_core::protocol::{ErrorCode, Event, HistoryQuery, ReactionSummary, reply, request};

/// The reactions a `history` page of `conversation` lists for `user`.
async fn page_reactions(user: &User, conversation: ConversationId) -> Vec<ReactionSummary> {
    let page: reply::History = user
        .client
        .call(request::History {
            conversation,
            query: HistoryQuery::default(),
        })
        .await
        .unwrap();
    page.reactions
}

/// The next `reaction` event, skipping others.
async fn reaction(user: &mut User) -> (Seq, Option<String>, Vec<ReactionSummary>) {
    loop {
        if let Event::Reaction {
            seq,
            emoji,
            reactions,
            ..
        } = user.event().await
        {
            return (seq, emoji, reactions);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reactions_are_pushed_replaced_and_listed() {
    let server = start(test_config()).await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    befriend(&mut alice, &mut bob).await;
    let mut alice_laptop = server.device("alice", "laptop").await;
    let chat = alice.direct(&bob);
    let sent = bob.client.send_text(chat, "shipped it").await.unwrap();
    alice.message().await;
    alice_laptop.message().await;

    let replied = alice
        .client
        .react(chat, sent.seq, Some("🎉"))
        .await
        .unwrap();
    let view: Vec<(&str, u32, bool)> = replied
        .iter()
        .map(|r| (r.emoji.as_str(), r.count, r.mine))
        .collect();
    assert_eq!(
        view,
        [("🎉", 1, true)],
        "the reply is the reactions after it"
    );
    let (seq, emoji, now) = reaction(&mut bob).await;
    assert_eq!((seq, emoji.as_deref()), (sent.seq, Some("🎉")));
    assert_eq!(
        (now.len(), now[0].count, now[0].users.clone()),
        (1, 1, vec![alice.id])
    );
    // Her other device hears of it too.
    assert_eq!(reaction(&mut alice_laptop).await.1.as_deref(), Some("🎉"));

    bob.client.react(chat, sent.seq, Some("🎉")).await.unwrap();
    let (_, _, now) = reaction(&mut alice).await;
    assert_eq!((now[0].emoji.as_str(), now[0].count), ("🎉", 2));
    // Alice changes hers: still one per user.
    alice
        .client
        .react(chat, sent.seq, Some("👍"))
        .await
        .unwrap();
    let (_, _, now) = reaction(&mut bob).await;
    let counts: Vec<(&str, u32)> = now.iter().map(|r| (r.emoji.as_str(), r.count)).collect();
    // Ties are in emoji order (by code point), the same for every reader.
    assert_eq!(counts, [("🎉", 1), ("👍", 1)]);

    let listed = page_reactions(&alice, chat).await;
    let seen: Vec<(&str, bool)> = listed.iter().map(|r| (r.emoji.as_str(), r.mine)).collect();
    assert_eq!(seen, [("🎉", false), ("👍", true)]);
    let listed = page_reactions(&bob, chat).await;
    let seen: Vec<(&str, bool)> = listed.iter().map(|r| (r.emoji.as_str(), r.mine)).collect();
    assert_eq!(seen, [("🎉", true), ("👍", false)]);

    // Taken back: gone from pushes and pages.
    alice.client.react(chat, sent.seq, None).await.unwrap();
    let (_, emoji, now) = reaction(&mut bob).await;
    assert_eq!((emoji, now.len()), (None, 1));
    assert_eq!(page_reactions(&bob, chat).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_readers_react_and_only_with_an_emoji() {
    let server = start(test_config()).await;
    let LateJoin {
        mut owner,
        early,
        mut late,
        stranger,
        group: g,
        before,
        after,
    } = late_join(&server).await;

    early.client.react(g, before, Some("👍")).await.unwrap();
    early.client.react(g, after, Some("🎉")).await.unwrap();
    // The late member hears of the reaction to what they can read, not of the other.
    assert_eq!(reaction(&mut owner).await.0, before);
    assert_eq!(reaction(&mut late).await.0, after);
    late.client.react(g, after, Some("👍")).await.unwrap();
    let hidden = late.client.react(g, before, Some("👀")).await;
    assert_eq!(
        refused_with(hidden),
        Some(ErrorCode::NotFound),
        "before they joined"
    );
    let ahead = late.client.react(g, Seq(after.0 + 5), Some("👀")).await;
    assert_eq!(refused_with(ahead), Some(ErrorCode::NotFound));
    let outside = stranger.client.react(g, after, Some("👀")).await;
    assert_eq!(refused_with(outside), Some(ErrorCode::Forbidden));
    for bad in ["", "two words", "tab\there", &"x".repeat(33)] {
        let refused = early.client.react(g, after, Some(bad)).await;
        assert_eq!(refused_with(refused), Some(ErrorCode::Invalid), "{bad:?}");
    }
    let counts: Vec<(u64, u32)> = page_reactions(&owner, g)
        .await
        .iter()
        .map(|r| (r.seq.0, r.count))
        .collect();
    assert_eq!(
        counts,
        [(before.0, 1), (after.0, 1), (after.0, 1)],
        "refusals stored nothing"
    );

    // Across a block, no reactions in a direct chat either.
    let chat = owner.direct(&early);
    let said = early.client.send_text(chat, "hi").await.unwrap();
    early
        .client
        .call(request::Block { user: owner.id })
        .await
        .unwrap();
    let blocked = owner.client.react(chat, said.seq, Some("👍")).await;
    assert_eq!(refused_with(blocked), Some(ErrorCode::Forbidden));
}

/// Two devices of one user reacting to one message at once leave one reaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_reacting_at_once_leave_one_reaction() {
    let server = start(test_config()).await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    befriend(&mut alice, &mut bob).await;
    let laptop = server.device("alice", "laptop").await;
    let chat = alice.direct(&bob);
    for round in 0..8 {
        let sent = bob
            .client
            .send_text(chat, &format!("m{round}"))
            .await
            .unwrap();
        let (one, other) = tokio::join!(
            alice.client.react(chat, sent.seq, Some("👍")),
            laptop.client.react(chat, sent.seq, Some("❤️")),
        );
        one.unwrap();
        other.unwrap();
        let listed = page_reactions(&bob, chat).await;
        let on_this: Vec<&ReactionSummary> = listed.iter().filter(|r| r.seq == sent.seq).collect();
        assert_eq!(on_this.len(), 1, "round {round}: {on_this:?}");
        assert_eq!(on_this[0].count, 1);
    }
}
