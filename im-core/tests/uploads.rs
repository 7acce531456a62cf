//! The engine's side of uploads, with a stand-in for the transport's blob store: a
//! message shows someone else's file only where it is shown to its sender already, a
//! store that cannot answer makes the send `unavailable` (not a silent pass), an upload
//! is no avatar, and the first `set_uploads` wins.

use std::sync::Arc;

use async_trait::async_trait;
use im_core::auth::HashCost;
use im_core::client::{Client, ClientError, Events};
use im_core::engine::{RateLimits, Uploads};
use im_core::model::{Body, ConversationId, UserId};
use im_core::protocol::{ErrorBody, ErrorCode, request};
use im_core::transport::duplex;
use im_core::{Engine, EngineConfig};

const PW: &str = "correct horse battery";

/// `/files/mine` was uploaded by user 1 for their chat with user 2; `/files/broken`
/// cannot be looked up; anything else is no upload.
#[derive(Debug)]
struct Stand;

#[async_trait]
impl Uploads for Stand {
    async fn upload(&self, url: &str) -> Result<Option<(UserId, ConversationId)>, ErrorBody> {
        match url {
            "/files/mine" => Ok(Some((
                UserId(1),
                ConversationId::direct(UserId(1), UserId(2)),
            ))),
            "/files/broken" => Err(ErrorBody::new(ErrorCode::Unavailable, "store down")),
            _ => Ok(None),
        }
    }
}

async fn connect(engine: &Engine, name: &str) -> (UserId, Client, Events) {
    let (server, client) = duplex(256);
    let engine2 = engine.clone();
    tokio::spawn(async move { engine2.serve_connection(server).await });
    let (client, events) = Client::connect(client).await.unwrap();
    let user = client.register(name, PW, name).await.unwrap();
    client.login(name, PW, "phone").await.unwrap();
    (user.id, client, events)
}

fn image(url: &str) -> Body {
    Body::Image {
        url: url.to_owned(),
        mime: "image/png".into(),
        size: 1,
        width: None,
        height: None,
    }
}

fn code_of<T: std::fmt::Debug>(result: Result<T, ClientError>) -> ErrorCode {
    match result {
        Err(ClientError::Server(body)) => body.code,
        other => panic!("not a server error: {other:?}"),
    }
}

#[tokio::test]
async fn messages_and_avatars_are_checked_against_the_uploads() {
    let engine = Engine::builder()
        .config(
            EngineConfig::default()
                .with_hash_cost(HashCost::CHEAPEST)
                .with_rate_limits(RateLimits::unlimited())
                .with_direct_policy(im_core::engine::DirectPolicy::Anyone),
        )
        .start()
        .await
        .unwrap();
    assert!(engine.set_uploads(Arc::new(Stand)));
    assert!(!engine.set_uploads(Arc::new(Stand)), "the first call wins");
    let (ann, ann_client, _a) = connect(&engine, "ann").await;
    let (bob, bob_client, _b) = connect(&engine, "bob").await;
    assert_eq!((ann, bob), (UserId(1), UserId(2)));
    let chat = ConversationId::direct(ann, bob);

    // Bob may not show Ann's file before she has shown it to him; she may.
    assert_eq!(
        code_of(bob_client.send(chat, "b1", image("/files/mine")).await),
        ErrorCode::Forbidden
    );
    ann_client
        .send(chat, "a1", image("/files/mine"))
        .await
        .unwrap();
    bob_client
        .send(chat, "b2", image("/files/mine"))
        .await
        .expect("shown to him in this chat");
    // A url that is no upload goes as it is; a store that cannot answer refuses the send.
    bob_client
        .send(chat, "b3", image("https://example.com/cat.png"))
        .await
        .unwrap();
    assert_eq!(
        code_of(bob_client.send(chat, "b4", image("/files/broken")).await),
        ErrorCode::Unavailable
    );
    // An upload is no avatar.
    let avatar = request::UpdateProfile {
        display_name: None,
        avatar: Some("/files/mine".into()),
    };
    assert_eq!(code_of(ann_client.call(avatar).await), ErrorCode::Invalid);
}
