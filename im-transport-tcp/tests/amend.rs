//! Recall, edit and delete-for-me: the changes are seq'd events that sync replays, the
//! windows hold, only the sender (or a group owner/admin above them) may recall, and
//! delete-for-me touches nobody else's history.

mod common;

use im_core::protocol::reply;
use im_core::protocol::request;
use std::time::Duration;

use common::*;
use im_core::model::{Body, ConversationId, Message, Role, Seq, SystemEvent};
use im_core::protocol::{ErrorCode, Event, HistoryQuery, Reply, Request};

fn text_body(t: &str) -> Body {
    Body::Text { text: t.into() }
}

async fn history(user: &User, conversation: ConversationId) -> Vec<Message> {
    match user
        .client
        .request(Request::History(request::History {
            conversation,
            query: HistoryQuery::default(),
        }))
        .await
        .unwrap()
    {
        Reply::History(reply::History { messages, .. }) => messages,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recall_and_edit_in_a_direct_chat() {
    let server = start(test_config()).await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    befriend(&mut alice, &mut bob).await;
    let chat = alice.direct(&bob);
    let first = alice.client.send_text(chat, "hello").await.unwrap();
    let typo = alice.client.send_text(chat, "helo agian").await.unwrap();
    let mine = bob.client.send_text(chat, "hi").await.unwrap();
    bob.message().await;
    bob.message().await;
    alice.message().await;

    // Alice edits her typo: Bob gets the edit as the next message of the conversation.
    let edited = alice
        .client
        .edit(chat, typo.seq, text_body("hello again"))
        .await
        .unwrap();
    assert_eq!(edited.seq, mine.seq.next());
    let event = bob.message().await;
    assert_eq!(event.seq, edited.seq);
    match &event.body {
        Body::System {
            event: SystemEvent::MessageEdited { seq, body },
        } => assert_eq!((*seq, body.as_ref()), (typo.seq, &text_body("hello again"))),
        other => panic!("{other:?}"),
    }

    // Alice recalls her first message: Bob gets the recall event.
    let recalled = alice.client.recall(chat, first.seq).await.unwrap();
    let event = bob.message().await;
    assert_eq!(
        event.body,
        Body::System {
            event: SystemEvent::MessageRecalled {
                seq: first.seq,
                by: alice.id
            }
        }
    );
    assert_eq!(event.seq, recalled.seq);

    // History serves the changed messages: the recalled text is gone for good, the
    // edited one carries its new body and when it changed; the events follow in order.
    let all = history(&bob, chat).await;
    let seqs: Vec<u64> = all.iter().map(|m| m.seq.0).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    assert!(matches!(
        all[0].body,
        Body::System {
            event: SystemEvent::MessageRecalled { .. }
        }
    ));
    assert_eq!(all[1].body, text_body("hello again"));
    assert_eq!(all[1].edited_at, Some(edited.sent_at));
    assert_eq!(all[2].edited_at, None);

    // Only the sender may recall or edit in a direct chat.
    let err = bob.client.recall(chat, typo.seq).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden));
    let err = bob
        .client
        .edit(chat, typo.seq, text_body("mine now"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden));
    // A recalled message cannot be recalled again or edited; system messages neither.
    let err = alice.client.recall(chat, first.seq).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Conflict));
    let err = alice
        .client
        .edit(chat, first.seq, text_body("back"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Conflict));
    // Unknown seqs and other people's conversations are refused.
    for seq in [Seq(0), Seq(99)] {
        let err = alice.client.recall(chat, seq).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::NotFound), "{seq:?}");
    }
    let carol = server.user("carol").await;
    let err = carol.client.recall(chat, typo.seq).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden));
    // An edit must be a valid body.
    let err = alice
        .client
        .edit(chat, typo.seq, text_body("   "))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Invalid));
    // Once Bob blocks her, Alice's edits (new words) no longer reach him; a recall (which
    // takes words away) still works.
    bob.client
        .call(request::Block { user: alice.id })
        .await
        .unwrap();
    let err = alice
        .client
        .edit(chat, typo.seq, text_body("please"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden));
    alice.client.recall(chat, typo.seq).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_windows_close() {
    let config = test_config()
        .with_recall_window(Duration::from_millis(300))
        .with_edit_window(Duration::from_millis(300));
    let server = start(config).await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    befriend(&mut alice, &mut bob).await;
    let chat = alice.direct(&bob);
    let sent = alice.client.send_text(chat, "too late").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let err = alice.client.recall(chat, sent.seq).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden), "{err}");
    let err = alice
        .client
        .edit(chat, sent.seq, text_body("x"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden), "{err}");
    // Nothing was appended.
    assert_eq!(history(&alice, chat).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_admins_recall_members_messages_but_not_the_reverse() {
    let config = test_config().with_recall_window(Duration::from_millis(300));
    let server = start(config).await;
    let mut owner = server.user("owner").await;
    let mut admin = server.user("admin").await;
    let mut member = server.user("member").await;
    befriend(&mut owner, &mut admin).await;
    befriend(&mut owner, &mut member).await;
    let group = owner
        .client
        .create_group("g", &[admin.id, member.id])
        .await
        .unwrap();
    let conv = ConversationId::Group(group.id);
    owner
        .client
        .call(request::SetRole {
            group: group.id,
            user: admin.id,
            role: Role::Admin,
        })
        .await
        .unwrap();
    let spam = member.client.send_text(conv, "spam").await.unwrap();
    let official = admin.client.send_text(conv, "rules").await.unwrap();
    let boss = owner.client.send_text(conv, "welcome").await.unwrap();
    // Past the window: the sender can no longer recall, moderators still can.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let err = member.client.recall(conv, spam.seq).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden));
    // A plain member cannot recall others' messages.
    for seq in [official.seq, boss.seq] {
        let err = member.client.recall(conv, seq).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::Forbidden));
    }
    // An admin cannot recall the owner's; the owner can recall the admin's.
    let err = admin.client.recall(conv, boss.seq).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden));
    admin.client.recall(conv, spam.seq).await.unwrap();
    owner.client.recall(conv, official.seq).await.unwrap();
    // Moderators may also take back their own words after the window.
    let late = owner.client.recall(conv, boss.seq).await.unwrap();
    // Nobody may edit someone else's message, moderators included.
    let err = owner
        .client
        .edit(conv, spam.seq, text_body("x"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden));

    // A member's sync replays both recalls after the messages.
    let all = history(&member, conv).await;
    let recalls: Vec<(Seq, _)> = all
        .iter()
        .filter_map(|m| match &m.body {
            Body::System {
                event: SystemEvent::MessageRecalled { seq, by },
            } if m.seq > *seq => Some((*seq, *by)),
            _ => None,
        })
        .collect();
    assert_eq!(
        recalls,
        [
            (spam.seq, admin.id),
            (official.seq, owner.id),
            (boss.seq, owner.id)
        ]
    );
    while member.message().await.seq < late.seq {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_for_me_hides_only_for_me() {
    let server = start(test_config()).await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    befriend(&mut alice, &mut bob).await;
    let mut alice_tablet = server.device("alice", "alice-tablet").await;
    let chat = alice.direct(&bob);
    for n in 1..=3 {
        bob.client.send_text(chat, &format!("m{n}")).await.unwrap();
        alice.message().await;
        alice_tablet.message().await;
    }
    alice.client.delete_for_me(chat, Seq(2)).await.unwrap();
    match alice_tablet.event().await {
        Event::MessageHidden { conversation, seq } => {
            assert_eq!((conversation, seq), (chat, Seq(2)))
        }
        other => panic!("expected message_hidden, got {other:?}"),
    }
    bob.quiet(100).await;
    let mine: Vec<u64> = history(&alice, chat)
        .await
        .iter()
        .map(|m| m.seq.0)
        .collect();
    assert_eq!(mine, [1, 3]);
    let theirs: Vec<u64> = history(&bob, chat).await.iter().map(|m| m.seq.0).collect();
    assert_eq!(theirs, [1, 2, 3]);
    // Hiding twice is fine; hiding what does not exist, or in others' chats, is not.
    alice.client.delete_for_me(chat, Seq(2)).await.unwrap();
    let err = alice.client.delete_for_me(chat, Seq(9)).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotFound));
    let carol = server.user("carol").await;
    let err = carol.client.delete_for_me(chat, Seq(1)).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden));

    // A long run of hidden messages never stalls paging: a fresh device's sync gets past
    // 120 hidden messages (more than a page) to the ones after them.
    for n in 4..=130 {
        bob.client.send_text(chat, &format!("m{n}")).await.unwrap();
    }
    for seq in 4..=123 {
        alice.client.delete_for_me(chat, Seq(seq)).await.unwrap();
    }
    let fresh = server.device("alice", "alice-fresh").await;
    let mut seen = std::collections::HashMap::new();
    let synced: Vec<u64> = fresh
        .client
        .sync(&mut seen)
        .await
        .unwrap()
        .iter()
        .map(|m| m.seq.0)
        .collect();
    let mut want = vec![1, 3];
    want.extend(124..=130);
    assert_eq!(synced, want);
}
