//! A client whose app does not drain events still gets its replies, and is told to
//! resync once it catches up.

use std::time::Duration;

use im_core::auth::HashCost;
use im_core::client::{Client, ClientConfig};
use im_core::engine::{DirectPolicy, RateLimits};
use im_core::model::ConversationId;
use im_core::protocol::Event;
use im_core::transport::duplex;
use im_core::{Engine, EngineConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_are_read_while_events_overflow_and_a_resync_follows() {
    let config = EngineConfig::default()
        .with_direct_policy(DirectPolicy::Anyone)
        .with_rate_limits(RateLimits::unlimited())
        .with_hash_cost(HashCost::CHEAPEST);
    let engine = Engine::builder().config(config).start().await.unwrap();
    let connect = |buffer: usize| {
        let engine = engine.clone();
        async move {
            let (server, client) = duplex(64);
            tokio::spawn(async move { engine.serve_connection(server).await });
            let config = ClientConfig {
                event_buffer: buffer,
                ..ClientConfig::default()
            };
            Client::connect_with(client, config).await.unwrap()
        }
    };
    let (alice, _) = connect(64).await;
    let (bob, mut bob_events) = connect(4).await;
    let a = alice.register("alice", "correct horse", "A").await.unwrap();
    let b = bob.register("bob", "correct horse", "B").await.unwrap();
    alice.login("alice", "correct horse", "a").await.unwrap();
    bob.login("bob", "correct horse", "b").await.unwrap();
    let chat = ConversationId::direct(a.id, b.id);
    for i in 0..100 {
        alice.send_text(chat, &format!("{i}")).await.unwrap();
    }
    // Bob's app has not read a single event, yet his requests are answered at once.
    let list = tokio::time::timeout(Duration::from_secs(2), bob.conversations())
        .await
        .expect("a reply stuck behind undrained events")
        .unwrap();
    assert_eq!(list[0].last_seq.0, 100);
    // Draining: at most the buffer's worth of messages, then the resync notice.
    let mut messages = 0;
    loop {
        match tokio::time::timeout(Duration::from_secs(2), bob_events.next()).await {
            Ok(Some(Event::Message { .. })) => messages += 1,
            Ok(Some(Event::Resync { .. })) => break,
            other => panic!("expected a resync, got {other:?}"),
        }
    }
    assert!(messages <= 4, "{messages} messages before the resync");
    engine.shutdown().await;
}
