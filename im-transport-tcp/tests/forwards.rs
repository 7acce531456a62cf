//! Forwarding: a message the sender can read, sent again elsewhere with the same body and
//! its first origin (sender and time, never the conversation it came from). Checked like
//! any send to the target, and refused for messages the sender cannot read.

mod common;

use common::*;
use im_core::client::ClientError;
use im_core::model::{Body, ConversationId, Forwarded, Seq};
use im_core::protocol::{ErrorCode, reply, request};

async fn forward(
    user: &User,
    conversation: ConversationId,
    seq: Seq,
    to: ConversationId,
    client_id: &str,
) -> Result<reply::Sent, ClientError> {
    user.client
        .call(request::Forward {
            conversation,
            seq,
            to,
            client_id: client_id.to_owned(),
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forward_carries_the_body_and_its_first_origin() {
    let server = start(test_config()).await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    let mut carol = server.user("carol").await;
    befriend(&mut alice, &mut bob).await;
    befriend(&mut bob, &mut carol).await;
    let ab = alice.direct(&bob);
    let bc = bob.direct(&carol);
    let said = alice.client.send_text(ab, "the plan").await.unwrap();
    let original = bob.message().await;

    let sent = forward(&bob, ab, said.seq, bc, "fwd-1").await.unwrap();
    let got = carol.message().await;
    assert_eq!(got.seq, sent.seq);
    assert_eq!(
        got.body,
        Body::Text {
            text: "the plan".into()
        }
    );
    let origin = Forwarded {
        sender: alice.id,
        sent_at: original.sent_at,
    };
    assert_eq!(got.forwarded, Some(origin));
    let again = forward(&bob, ab, said.seq, bc, "fwd-1").await.unwrap();
    assert!(again.duplicate, "a retry stores nothing new");

    // Forwarded again, it still names Alice.
    let back = forward(&carol, bc, got.seq, bc, "fwd-2").await.unwrap();
    let (page, _) = bob.client.history(bc, Default::default()).await.unwrap();
    let last = page.iter().find(|m| m.seq == back.seq).unwrap();
    assert_eq!(last.forwarded, Some(origin));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_what_one_can_read_is_forwarded_and_only_where_one_may_write() {
    let server = start(test_config()).await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    let mut carol = server.user("carol").await;
    let stranger = server.user("stranger").await;
    befriend(&mut alice, &mut bob).await;
    befriend(&mut bob, &mut carol).await;
    let ab = alice.direct(&bob);
    let bc = bob.direct(&carol);
    let said = alice.client.send_text(ab, "between us").await.unwrap();

    // Carol is not in Alice and Bob's chat.
    let snooping = forward(&carol, ab, said.seq, bc, "x1").await;
    assert_eq!(refused_with(snooping), Some(ErrorCode::Forbidden));
    // Bob may not write to a stranger.
    let to_stranger = bob.direct(&stranger);
    let refused = forward(&bob, ab, said.seq, to_stranger, "x2").await;
    assert_eq!(refused_with(refused), Some(ErrorCode::Forbidden));
    // No such message.
    let nothing = forward(&bob, ab, Seq(said.seq.0 + 7), bc, "x3").await;
    assert_eq!(refused_with(nothing), Some(ErrorCode::NotFound));
    // A recalled message is gone, and a group's records are the server's.
    let oops = alice.client.send_text(ab, "oops").await.unwrap();
    alice.client.recall(ab, oops.seq).await.unwrap();
    let recalled = forward(&bob, ab, oops.seq, bc, "x4").await;
    assert_eq!(refused_with(recalled), Some(ErrorCode::Invalid));
    let group = bob.client.create_group("crew", &[carol.id]).await.unwrap();
    let g = ConversationId::Group(group.id);
    let created = forward(&bob, g, Seq(1), bc, "x5").await;
    assert_eq!(refused_with(created), Some(ErrorCode::Invalid));
    // A late member cannot forward what came before they joined.
    let early = bob.client.send_text(g, "before alice").await.unwrap();
    bob.client.add_members(group.id, &[alice.id]).await.unwrap();
    let before = forward(&alice, g, early.seq, ab, "x6").await;
    assert_eq!(refused_with(before), Some(ErrorCode::NotFound));

    let (page, _) = carol.client.history(bc, Default::default()).await.unwrap();
    assert!(page.is_empty(), "nothing refused was stored: {page:?}");
}
