//! A client that negotiates MessagePack talks to the same engine as JSON clients: the
//! hello reply is JSON, every frame after it MessagePack, and pushes between the two kinds
//! of client carry the same messages.

use im_core::auth::HashCost;
use im_core::client::{Client, ClientConfig};
use im_core::engine::{DirectPolicy, RateLimits};
use im_core::model::ConversationId;
use im_core::protocol::{Codec, Event};
use im_core::transport::duplex;
use im_core::{Engine, EngineConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msgpack_and_json_clients_chat() {
    let config = EngineConfig::default()
        .with_direct_policy(DirectPolicy::Anyone)
        .with_rate_limits(RateLimits::unlimited())
        .with_hash_cost(HashCost::CHEAPEST);
    let engine = Engine::builder().config(config).start().await.unwrap();
    let connect = |codec: Codec| {
        let engine = engine.clone();
        async move {
            let (server, client) = duplex(64);
            tokio::spawn(async move { engine.serve_connection(server).await });
            let config = ClientConfig {
                codec,
                ..ClientConfig::default()
            };
            Client::connect_with(client, config).await.unwrap()
        }
    };
    let (packed, mut packed_events) = connect(Codec::MessagePack).await;
    let (plain, mut plain_events) = connect(Codec::Json).await;
    let a = packed
        .register("packed", "correct horse", "P")
        .await
        .unwrap();
    let b = plain.register("plain", "correct horse", "J").await.unwrap();
    packed.login("packed", "correct horse", "p").await.unwrap();
    plain.login("plain", "correct horse", "j").await.unwrap();
    let chat = ConversationId::direct(a.id, b.id);

    packed.send_text(chat, "from msgpack").await.unwrap();
    plain.send_text(chat, "from json").await.unwrap();
    let got_plain = match plain_events.next().await {
        Some(Event::Message { message }) => message,
        other => panic!("{other:?}"),
    };
    let got_packed = match packed_events.next().await {
        Some(Event::Message { message }) => message,
        other => panic!("{other:?}"),
    };
    assert_eq!((got_plain.seq.0, got_plain.sender), (1, a.id));
    assert_eq!((got_packed.seq.0, got_packed.sender), (2, b.id));
    let (history, _) = packed.history(chat, Default::default()).await.unwrap();
    assert_eq!(history.len(), 2);
    engine.shutdown().await;
}
