//! Receipts: delivered and read cursors that never move back, pushed to the other side
//! of a direct chat and to the senders in a group, and "who has read message N" paged
//! over a group of 10,000 without a row per member per message.

mod common;

use im_core::protocol::request;
use std::time::Instant;

use common::*;
use im_core::engine::DirectPolicy;
use im_core::model::{Body, ConversationId, DeviceId, Role, Seq, SystemEvent, Timestamp, UserId};
use im_core::protocol::{ErrorCode, Event, ReceiptKind};
use im_core::storage::{NewGroup, NewMessage, NewUser};

async fn receipt(user: &mut User) -> (ConversationId, UserId, ReceiptKind, Seq) {
    loop {
        match user.event().await {
            Event::Receipt {
                conversation,
                user,
                kind,
                seq,
            } => return (conversation, user, kind, seq),
            Event::Message { .. } => continue,
            other => panic!("expected a receipt, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_receipts_reach_the_peer_and_never_move_back() {
    let server = start(test_config()).await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    befriend(&mut alice, &mut bob).await;
    let mut bob_tablet = server.device("bob", "bob-tablet").await;
    let chat = alice.direct(&bob);
    for n in 1..=3 {
        alice
            .client
            .send_text(chat, &format!("m{n}"))
            .await
            .unwrap();
        bob.message().await;
        bob_tablet.message().await;
    }

    // Bob's phone got them all: Alice sees "delivered up to 3".
    assert_eq!(bob.client.ack(chat, Seq(3)).await.unwrap(), Seq(3));
    assert_eq!(
        receipt(&mut alice).await,
        (chat, bob.id, ReceiptKind::Delivered, Seq(3))
    );
    // Bob reads two: Alice sees it, and so does Bob's tablet (its unread count drops).
    assert_eq!(bob.client.mark_read(chat, Seq(2)).await.unwrap(), Seq(2));
    assert_eq!(
        receipt(&mut alice).await,
        (chat, bob.id, ReceiptKind::Read, Seq(2))
    );
    assert_eq!(
        receipt(&mut bob_tablet).await,
        (chat, bob.id, ReceiptKind::Read, Seq(2))
    );

    // Cursors never move back, and a step back (or in place) pushes nothing.
    assert_eq!(bob.client.mark_read(chat, Seq(1)).await.unwrap(), Seq(2));
    assert_eq!(bob.client.ack(chat, Seq(2)).await.unwrap(), Seq(3));
    assert_eq!(bob.client.mark_read(chat, Seq(2)).await.unwrap(), Seq(2));
    // Past the end is clamped to the last message.
    assert_eq!(bob.client.ack(chat, Seq(99)).await.unwrap(), Seq(3));
    alice.quiet(150).await;

    // A reconnecting client gets the peer's cursors with its conversation list.
    let list = alice.client.conversations().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].peer_read_seq, Some(Seq(2)));
    assert_eq!(list[0].peer_delivered_seq, Some(Seq(3)));
    let list = bob.client.conversations().await.unwrap();
    assert_eq!(
        (list[0].read_seq, list[0].delivered_seq, list[0].unread),
        (Seq(2), Seq(3), 1)
    );

    // Reading moves delivered along.
    bob.client.mark_read(chat, Seq(3)).await.unwrap();
    assert_eq!(receipt(&mut alice).await.3, Seq(3));
    let (receipts, more) = alice.client.receipts(chat, Seq(3), None).await.unwrap();
    assert!(!more);
    let theirs = receipts.iter().find(|r| r.user == bob.id).unwrap();
    assert_eq!((theirs.delivered_seq, theirs.read_seq), (Seq(3), Seq(3)));

    // Nobody else may mark, ack or ask about this conversation.
    let carol = server.user("carol").await;
    for result in [
        carol.client.mark_read(chat, Seq(1)).await.map(|_| ()),
        carol.client.ack(chat, Seq(1)).await.map(|_| ()),
        carol.client.receipts(chat, Seq(1), None).await.map(|_| ()),
    ] {
        assert_eq!(result.unwrap_err().code(), Some(ErrorCode::Forbidden));
    }
    let err = alice.client.receipts(chat, Seq(0), None).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Invalid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_read_receipts_go_to_the_senders() {
    let server = start(test_config().with_direct_policy(DirectPolicy::Anyone)).await;
    let mut owner = server.user("owner").await;
    let mut ann = server.user("ann").await;
    let mut ben = server.user("ben").await;
    let mut cat = server.user("cat").await;
    let group = owner
        .client
        .create_group("g", &[ann.id, ben.id, cat.id])
        .await
        .unwrap();
    let conv = ConversationId::Group(group.id);
    for u in [&mut ann, &mut ben, &mut cat] {
        u.message().await;
    }
    let a = ann.client.send_text(conv, "from ann").await.unwrap();
    let b = ben.client.send_text(conv, "from ben").await.unwrap();
    // Everyone gets the other's message (a sender's own session gets a reply instead).
    for u in [&mut owner, &mut cat, &mut ann] {
        while u.message().await.seq < b.seq {}
    }
    assert_eq!(ben.message().await.seq, a.seq);

    // Cat reads both: Ann and Ben (the senders) are told; the owner, whose only message
    // (the group's creation) was read long ago, is not.
    cat.client.mark_read(conv, b.seq).await.unwrap();
    assert_eq!(
        receipt(&mut ann).await,
        (conv, cat.id, ReceiptKind::Read, b.seq)
    );
    assert_eq!(
        receipt(&mut ben).await,
        (conv, cat.id, ReceiptKind::Read, b.seq)
    );
    owner.quiet(150).await;

    // Delivery in a group is stored, not pushed.
    owner.client.ack(conv, b.seq).await.unwrap();
    ann.quiet(100).await;

    // Who has read Ann's message? Ann (her own), Ben (sent after it), Cat. The owner has
    // it delivered but not read.
    let (receipts, more) = ann.client.receipts(conv, a.seq, None).await.unwrap();
    assert!(!more);
    let read: Vec<UserId> = receipts
        .iter()
        .filter(|r| r.read_seq >= a.seq)
        .map(|r| r.user)
        .collect();
    let mut want = vec![ann.id, ben.id, cat.id];
    want.sort();
    assert_eq!(read, want);
    let owner_receipt = receipts.iter().find(|r| r.user == owner.id).unwrap();
    assert!(owner_receipt.delivered_seq >= b.seq && owner_receipt.read_seq < a.seq);

    // Someone who joins later is not listed for messages from before they came, even
    // after reading up to the end.
    let dan = server.user("dan").await;
    owner.client.add_members(group.id, &[dan.id]).await.unwrap();
    let last = dan.client.conversations().await.unwrap()[0].last_seq;
    dan.client.mark_read(conv, last).await.unwrap();
    let (receipts, _) = ann.client.receipts(conv, a.seq, None).await.unwrap();
    assert!(receipts.iter().all(|r| r.user != dan.id), "{receipts:?}");
    let (receipts, _) = ann.client.receipts(conv, last, None).await.unwrap();
    assert!(receipts.iter().any(|r| r.user == dan.id), "{receipts:?}");

    // A member who leaves drops out of the receipts; an outsider may not ask.
    cat.client
        .request(im_core::protocol::Request::LeaveGroup(
            request::LeaveGroup { group: group.id },
        ))
        .await
        .unwrap();
    let (receipts, _) = ann.client.receipts(conv, a.seq, None).await.unwrap();
    assert!(receipts.iter().all(|r| r.user != cat.id));
    let err = cat.client.receipts(conv, a.seq, None).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden));
}

/// The notice that brings someone into a group (its creation, their addition) is not
/// unread to them; what is said after it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notice_that_brings_a_member_in_is_not_unread() {
    let server = start(test_config().with_direct_policy(DirectPolicy::Anyone)).await;
    let mut owner = server.user("owner").await;
    let mut ann = server.user("ann").await;
    let mut ben = server.user("ben").await;
    let group = owner.client.create_group("g", &[ann.id]).await.unwrap();
    let conv = ConversationId::Group(group.id);
    let unread = |list: Vec<im_core::protocol::ConversationSummary>| {
        list.iter()
            .find(|c| c.conversation == conv)
            .map(|c| (c.last_seq.0, c.unread))
    };
    ann.message().await;
    assert_eq!(
        unread(ann.client.conversations().await.unwrap()),
        Some((1, 0))
    );
    owner.client.add_members(group.id, &[ben.id]).await.unwrap();
    ben.message().await;
    assert_eq!(
        unread(ben.client.conversations().await.unwrap()),
        Some((2, 0))
    );
    // Ann was there before Ben came: his arrival is news to her.
    ann.message().await;
    assert_eq!(
        unread(ann.client.conversations().await.unwrap()),
        Some((2, 1))
    );
    owner.client.send_text(conv, "welcome").await.unwrap();
    ben.message().await;
    assert_eq!(
        unread(ben.client.conversations().await.unwrap()),
        Some((3, 1))
    );
    owner.quiet(50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_read_it_in_a_group_of_ten_thousand() {
    const MEMBERS: u64 = 10_000;
    const READERS: u64 = 6_000;
    let config = test_config()
        .with_direct_policy(DirectPolicy::Anyone)
        .with_max_group_members(MEMBERS as usize + 2);
    let server = start(config).await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    let storage = server.engine.storage().clone();

    // The silent members are made straight in storage (registering 10,000 users through
    // the protocol would only test argon2).
    let mut members = vec![(alice.id, Role::Owner), (bob.id, Role::Member)];
    let mut silent = Vec::new();
    for n in 0..MEMBERS {
        let user = storage
            .create_user(NewUser {
                username: format!("m{n}"),
                display_name: format!("m{n}"),
                avatar: None,
                password_hash: "unused".into(),
                created_at: Timestamp::now(),
            })
            .await
            .unwrap();
        members.push((user.id, Role::Member));
        silent.push(user.id);
    }
    let (group, _) = storage
        .create_group(
            NewGroup {
                name: "everyone".into(),
                owner: alice.id,
                open: false,
                created_at: Timestamp::now(),
            },
            members,
            NewMessage {
                sender: alice.id,
                sender_device: DeviceId::new("alice-1").unwrap(),
                client_id: String::new(),
                body: Body::System {
                    event: SystemEvent::GroupCreated {
                        by: alice.id,
                        name: "everyone".into(),
                        members: Vec::new(),
                    },
                },
                sent_at: Timestamp::now(),
                reply_to: None,
                forwarded: None,
                mentions: Vec::new(),
            },
        )
        .await
        .unwrap();
    let conv = ConversationId::Group(group.id);
    let sent = alice
        .client
        .send_text(conv, "hello everyone")
        .await
        .unwrap();
    bob.message().await;
    for user in silent.iter().take(READERS as usize) {
        storage.set_read(*user, conv, sent.seq).await.unwrap();
    }

    // Bob reads it through the protocol: one cursor write, one receipt to Alice.
    let start = Instant::now();
    bob.client.mark_read(conv, sent.seq).await.unwrap();
    let mark_read = start.elapsed();
    assert_eq!(
        receipt(&mut alice).await,
        (conv, bob.id, ReceiptKind::Read, sent.seq)
    );

    // Alice pages through who read it.
    let start = Instant::now();
    let (mut read, mut pages, mut after) = (0u64, 0u32, None);
    loop {
        let (receipts, more) = alice.client.receipts(conv, sent.seq, after).await.unwrap();
        pages += 1;
        assert!(
            receipts.windows(2).all(|w| w[0].user < w[1].user),
            "ordered"
        );
        read += receipts.iter().filter(|r| r.read_seq >= sent.seq).count() as u64;
        after = receipts.last().map(|r| r.user);
        if !more {
            break;
        }
    }
    // The readers, Bob, and Alice herself (her own message).
    assert_eq!(read, READERS + 2);
    assert_eq!(pages, (READERS as u32 + 2).div_ceil(500));
    println!(
        "group of {}: mark_read {mark_read:?}; {read} readers listed in {pages} pages in {:?}",
        MEMBERS + 2,
        start.elapsed()
    );
}
