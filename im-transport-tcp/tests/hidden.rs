//! A message deleted for oneself is gone for that user: reacting to it, pinning it,
//! forwarding it, editing or recalling it answers `not_found` (as for a message that does
//! not exist), while the other user, who did not hide it, still can. Hiding it again is
//! not an error.

mod common;

use common::*;
use im_core::client::new_client_id;
use im_core::model::Body;
use im_core::protocol::{ErrorCode, request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hidden_message_cannot_be_acted_on_by_who_hid_it() {
    let server = start(test_config()).await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    befriend(&mut alice, &mut bob).await;
    let chat = alice.direct(&bob);
    let mine = alice.client.send_text(chat, "my words").await.unwrap().seq;
    let theirs = bob.client.send_text(chat, "bob's words").await.unwrap().seq;
    for seq in [mine, theirs] {
        alice.client.delete_for_me(chat, seq).await.unwrap();
    }
    alice
        .client
        .delete_for_me(chat, mine)
        .await
        .expect("hiding twice is not an error");

    for seq in [mine, theirs] {
        let react = alice.client.react(chat, seq, Some("👍")).await;
        assert_eq!(
            refused_with(react),
            Some(ErrorCode::NotFound),
            "react {seq}"
        );
        let pin = alice
            .client
            .call(request::Pin {
                conversation: chat,
                seq,
            })
            .await;
        assert_eq!(refused_with(pin), Some(ErrorCode::NotFound), "pin {seq}");
        let forward = alice
            .client
            .call(request::Forward {
                conversation: chat,
                seq,
                to: chat,
                client_id: new_client_id(),
            })
            .await;
        assert_eq!(
            refused_with(forward),
            Some(ErrorCode::NotFound),
            "forward {seq}"
        );
    }
    let edit = alice
        .client
        .edit(
            chat,
            mine,
            Body::Text {
                text: "changed".into(),
            },
        )
        .await;
    assert_eq!(refused_with(edit), Some(ErrorCode::NotFound));
    let recall = alice.client.recall(chat, mine).await;
    assert_eq!(refused_with(recall), Some(ErrorCode::NotFound));

    // Bob hid nothing: for him both are there.
    bob.client.react(chat, mine, Some("👍")).await.unwrap();
    bob.client
        .call(request::Pin {
            conversation: chat,
            seq: theirs,
        })
        .await
        .unwrap();
    bob.client.recall(chat, theirs).await.unwrap();
}
