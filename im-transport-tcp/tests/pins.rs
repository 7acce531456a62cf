//! Pins: a list per conversation. Either user of a direct chat pins; in a group, owners
//! and admins. Everyone gets a `pinned` push; the list is capped (`max_pins`) even for
//! pins made at once; a late member sees no pins of messages from before they joined.

mod common;

use common::*;
use im_core::client::ClientError;
use im_core::model::{ConversationId, Role, Seq};
use im_core::protocol::{ErrorCode, Event, reply, request};

async fn pin(user: &User, conversation: ConversationId, seq: Seq) -> Result<(), ClientError> {
    user.client
        .call(request::Pin { conversation, seq })
        .await
        .map(drop)
}

async fn pinned(user: &User, conversation: ConversationId) -> Vec<u64> {
    let list: reply::Pins = user
        .client
        .call(request::Pins { conversation })
        .await
        .unwrap();
    list.pins.iter().map(|p| p.seq.0).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_pins_are_pushed_listed_and_capped() {
    let mut config = test_config();
    config.max_pins = 2;
    let server = start(config).await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    befriend(&mut alice, &mut bob).await;
    let chat = alice.direct(&bob);
    let mut seqs = Vec::new();
    for n in 0..3 {
        seqs.push(
            alice
                .client
                .send_text(chat, &format!("m{n}"))
                .await
                .unwrap()
                .seq,
        );
    }
    pin(&bob, chat, seqs[0]).await.unwrap();
    loop {
        if let Event::Pinned {
            seq, by, pinned, ..
        } = alice.event().await
        {
            assert_eq!((seq, by, pinned), (seqs[0], bob.id, true));
            break;
        }
    }
    pin(&alice, chat, seqs[1]).await.unwrap();
    pin(&alice, chat, seqs[1]).await.unwrap();
    assert_eq!(pinned(&bob, chat).await, [seqs[1].0, seqs[0].0]);
    let full = pin(&alice, chat, seqs[2]).await;
    assert_eq!(refused_with(full), Some(ErrorCode::Conflict));
    alice
        .client
        .call(request::Unpin {
            conversation: chat,
            seq: seqs[0],
        })
        .await
        .unwrap();
    pin(&alice, chat, seqs[2]).await.unwrap();
    assert_eq!(pinned(&alice, chat).await, [seqs[2].0, seqs[1].0]);
    let nothing = pin(&alice, chat, Seq(99)).await;
    assert_eq!(refused_with(nothing), Some(ErrorCode::NotFound));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_group_admins_pin_and_late_members_see_only_their_part() {
    let server = start(test_config()).await;
    let LateJoin {
        owner,
        mut early,
        mut late,
        stranger,
        group,
        before,
        after,
    } = late_join(&server).await;
    let refused = pin(&early, group, after).await;
    assert_eq!(
        refused_with(refused),
        Some(ErrorCode::Forbidden),
        "a plain member"
    );
    let outside = stranger
        .client
        .call(request::Pins {
            conversation: group,
        })
        .await;
    assert_eq!(refused_with(outside), Some(ErrorCode::Forbidden));
    pin(&owner, group, before).await.unwrap();
    pin(&owner, group, after).await.unwrap();
    // Pushes too: the late member hears only of the pin of what they can read.
    for (user, first) in [(&mut early, before), (&mut late, after)] {
        loop {
            if let Event::Pinned { seq, .. } = user.event().await {
                assert_eq!(seq, first);
                break;
            }
        }
    }
    assert_eq!(pinned(&early, group).await, [after.0, before.0]);
    assert_eq!(
        pinned(&late, group).await,
        [after.0],
        "nothing from before they joined"
    );
    // Made an admin, the late member still cannot unpin what they cannot see.
    let ConversationId::Group(id) = group else {
        unreachable!("a group")
    };
    owner
        .client
        .call(request::SetRole {
            group: id,
            user: late.id,
            role: Role::Admin,
        })
        .await
        .unwrap();
    let unseen = late
        .client
        .call(request::Unpin {
            conversation: group,
            seq: before,
        })
        .await;
    assert_eq!(refused_with(unseen), Some(ErrorCode::NotFound));
    assert_eq!(pinned(&owner, group).await, [after.0, before.0]);
}

/// Two devices pinning at once at the limit: one pin is stored, the other refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pins_at_once_keep_the_limit() {
    let mut config = test_config();
    config.max_pins = 1;
    let server = start(config).await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    befriend(&mut alice, &mut bob).await;
    let laptop = server.device("alice", "laptop").await;
    let chat = alice.direct(&bob);
    let one = alice.client.send_text(chat, "one").await.unwrap().seq;
    let two = alice.client.send_text(chat, "two").await.unwrap().seq;
    let (a, b) = tokio::join!(pin(&alice, chat, one), pin(&laptop, chat, two));
    let stored = [&a, &b].iter().filter(|r| r.is_ok()).count();
    assert_eq!(stored, 1, "{a:?} / {b:?}");
    assert_eq!(pinned(&bob, chat).await.len(), 1);
}
