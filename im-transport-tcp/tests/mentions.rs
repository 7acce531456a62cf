//! Mentions: a send names members of its conversation; each one's conversation is
//! marked (`mentioned` in `conversations`) until they read that far, the message they
//! receive says whom it mentions, and names from outside the conversation are refused.

mod common;

use common::*;
use im_core::client::{ClientError, new_client_id};
use im_core::model::{Body, ConversationId, Seq, UserId};
use im_core::protocol::{ErrorCode, reply, request};

async fn send(
    user: &User,
    conversation: ConversationId,
    text: &str,
    mentions: &[UserId],
) -> Result<reply::Sent, ClientError> {
    user.client
        .call(request::Send {
            conversation,
            client_id: new_client_id(),
            body: Body::Text { text: text.into() },
            reply_to: None,
            mentions: mentions.to_vec(),
        })
        .await
}

async fn mentioned(user: &User, conversation: ConversationId) -> Option<Seq> {
    let list: reply::Conversations = user.client.call(request::Conversations {}).await.unwrap();
    list.conversations
        .into_iter()
        .find(|c| c.conversation == conversation)
        .expect("listed")
        .mentioned
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mentions_mark_the_conversation_until_read() {
    let server = start(test_config()).await;
    let LateJoin {
        owner,
        mut early,
        late,
        stranger,
        group,
        ..
    } = late_join(&server).await;

    let refused = send(&owner, group, "hey @stranger", &[stranger.id]).await;
    assert_eq!(refused_with(refused), Some(ErrorCode::Invalid));
    let too_many: Vec<UserId> = (0..51).map(|n| UserId(1000 + n)).collect();
    let refused = send(&owner, group, "everyone", &too_many).await;
    assert_eq!(refused_with(refused), Some(ErrorCode::Invalid));

    let sent = send(
        &owner,
        group,
        "@early look",
        &[early.id, early.id, owner.id],
    )
    .await
    .unwrap();
    // What early receives says they are mentioned; the sender and the repeat are gone.
    let got = loop {
        let m = early.message().await;
        if m.seq == sent.seq {
            break m;
        }
    };
    assert_eq!(got.mentions, [early.id]);
    assert_eq!(mentioned(&early, group).await, Some(sent.seq));
    assert_eq!(mentioned(&late, group).await, None);
    assert_eq!(mentioned(&owner, group).await, None);

    // A later message without mentions leaves the mark where it was; reading clears it.
    let later = owner.client.send_text(group, "anyway").await.unwrap();
    assert_eq!(mentioned(&early, group).await, Some(sent.seq));
    early
        .client
        .call(request::MarkRead {
            conversation: group,
            seq: later.seq,
        })
        .await
        .unwrap();
    assert_eq!(mentioned(&early, group).await, None);

    // In a direct chat, only its other user may be named.
    let chat = owner.direct(&early);
    let refused = send(&owner, chat, "and late?", &[late.id]).await;
    assert_eq!(refused_with(refused), Some(ErrorCode::Invalid));
    let sent = send(&owner, chat, "you", &[early.id]).await.unwrap();
    assert_eq!(mentioned(&early, chat).await, Some(sent.seq));
}
