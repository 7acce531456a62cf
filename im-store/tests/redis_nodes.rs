//! Two engines as two nodes of a cluster, sharing storage and, through Redis, presence
//! and the broker (`RedisPresence`, `RedisBroker` on the Redis named by
//! `IM_TEST_REDIS_URL`): friend requests, messages, group and contact cache
//! invalidations and kicks cross from one node to the other.
#![cfg(feature = "redis")]

use std::sync::Arc;
use std::time::Duration;

use im_core::auth::HashCost;
use im_core::client::{Client, Events};
use im_core::memory::MemoryStorage;
use im_core::model::{ConversationId, DeviceId, Message};
use im_core::presence::NodeId;
use im_core::protocol::{ErrorCode, Event, Request};
use im_core::transport::duplex;
use im_core::{Engine, EngineConfig};
use im_store::{RedisBroker, RedisPresence};

const PW: &str = "correct horse battery";

async fn node(name: &str, storage: &Arc<MemoryStorage>, url: &str, prefix: &str) -> Engine {
    let client = im_store::redis::connect(url)
        .await
        .expect("connect to Redis");
    Engine::builder()
        .node(NodeId::new(name))
        .storage(storage.clone())
        .presence(Arc::new(
            RedisPresence::new(client.clone(), prefix).expect("prefix"),
        ))
        .broker(Arc::new(RedisBroker::new(client, prefix).expect("prefix")))
        .config(EngineConfig::default().with_hash_cost(HashCost::CHEAPEST))
        .start()
        .await
        .expect("start a node")
}

async fn connect(engine: &Engine) -> (Client, Events) {
    let (server, client) = duplex(256);
    let engine = engine.clone();
    tokio::spawn(async move { engine.serve_connection(server).await });
    Client::connect(client).await.expect("connect a client")
}

/// The next event that `pick` accepts, within 5 s.
async fn next_event<T>(events: &mut Events, mut pick: impl FnMut(Event) -> Option<T>) -> T {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), events.next()).await {
            Ok(Some(event)) => {
                if let Some(found) = pick(event) {
                    return found;
                }
            }
            other => panic!("not within 5 s: {other:?}"),
        }
    }
}

async fn next_message(events: &mut Events) -> Message {
    next_event(events, |e| match e {
        Event::Message { message } => Some(message),
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_invalidations_and_kicks_cross_nodes_through_redis() {
    let Ok(url) = std::env::var("IM_TEST_REDIS_URL") else {
        eprintln!("SKIPPED: IM_TEST_REDIS_URL is not set; nodes over Redis are not tested");
        return;
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_nanos();
    let prefix = format!("imtest-nodes-{}-{nanos}", std::process::id());
    let storage = Arc::new(MemoryStorage::new());
    let a = node("node-a", &storage, &url, &prefix).await;
    let b = node("node-b", &storage, &url, &prefix).await;

    // Alice on node A; Bob and Alice's tablet on node B.
    let (alice, mut alice_events) = connect(&a).await;
    let (bob, mut bob_events) = connect(&b).await;
    let (tablet, mut tablet_events) = connect(&b).await;
    let alice_id = alice.register("alice", PW, "Alice").await.unwrap().id;
    let bob_id = bob.register("bob", PW, "Bob").await.unwrap().id;
    alice.login("alice", PW, "phone").await.unwrap();
    bob.login("bob", PW, "laptop").await.unwrap();
    tablet.login("alice", PW, "tablet").await.unwrap();

    // A friend request made on A reaches Bob on B; his accepting reaches Alice on A.
    alice.request_friend(bob_id, "").await.unwrap();
    let from = next_event(&mut bob_events, |e| match e {
        Event::FriendRequest { request } => Some(request.from),
        _ => None,
    })
    .await;
    assert_eq!(from, alice_id);
    bob.accept_friend(alice_id).await.unwrap();
    let friend = next_event(&mut alice_events, |e| match e {
        Event::FriendAdded { user } => Some(user),
        _ => None,
    })
    .await;
    assert_eq!(friend, bob_id);

    // A message sent on A reaches Bob and Alice's tablet on B, and one sent on B reaches
    // Alice on A.
    let chat = ConversationId::direct(alice_id, bob_id);
    let sent = alice.send_text(chat, "across nodes").await.unwrap();
    assert_eq!(next_message(&mut bob_events).await.seq, sent.seq);
    assert_eq!(next_message(&mut tablet_events).await.seq, sent.seq);
    let reply = bob.send_text(chat, "and back").await.unwrap();
    assert_eq!(next_message(&mut alice_events).await.seq, reply.seq);

    // Bob leaves a group through node B; node A's membership cache learns of it through
    // a broadcast, so Alice's next group message is not pushed to him.
    let group = alice.create_group("g", &[bob_id]).await.unwrap();
    let g = ConversationId::Group(group.id);
    alice.send_text(g, "warm the cache on A").await.unwrap();
    assert_eq!(next_message(&mut bob_events).await.conversation, g); // created
    assert_eq!(next_message(&mut bob_events).await.conversation, g); // warm
    bob.group_request(Request::LeaveGroup { group: group.id })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    alice.send_text(g, "after bob left").await.unwrap();
    alice.send_text(chat, "direct again").await.unwrap();
    let next = next_message(&mut bob_events).await;
    assert_eq!(
        next.conversation, chat,
        "bob was pushed a group message after leaving"
    );

    // Alice blocks Bob on node A; node B's cached tie learns of it, so Bob's next message
    // from B is refused.
    bob.send_text(chat, "warm the contact cache on B")
        .await
        .unwrap();
    alice.call(Request::Block { user: bob_id }).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused = bob.send_text(chat, "after the block").await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::Forbidden), "{refused:?}");

    // Revoking the tablet from node A kicks its session on node B.
    alice
        .call(Request::RevokeDevice {
            device: DeviceId::new("tablet").unwrap(),
        })
        .await
        .unwrap();
    next_event(&mut tablet_events, |e| match e {
        Event::Kicked { .. } => Some(()),
        _ => None,
    })
    .await;
    a.shutdown().await;
    b.shutdown().await;
}
