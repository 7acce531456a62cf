//! A group's pushes reach exactly its members' sessions on this node, through the
//! group's room, as sessions come and go and members join and leave after the room was
//! first used.

use im_core::protocol::reply;
use im_core::protocol::request;
use std::time::Duration;

use im_core::auth::HashCost;
use im_core::client::{Client, Events};
use im_core::engine::DirectPolicy;
use im_core::model::{ConversationId, GroupId, Message, UserId};
use im_core::protocol::{Event, Reply, Request};
use im_core::transport::duplex;
use im_core::{Engine, EngineConfig};

const PW: &str = "correct horse battery";

async fn engine() -> Engine {
    let config = EngineConfig::default()
        .with_hash_cost(HashCost::CHEAPEST)
        .with_direct_policy(DirectPolicy::Anyone);
    Engine::builder().config(config).start().await.unwrap()
}

async fn connect(engine: &Engine) -> (Client, Events) {
    let (server, client) = duplex(256);
    let engine = engine.clone();
    tokio::spawn(async move { engine.serve_connection(server).await });
    Client::connect(client).await.unwrap()
}

/// A new user, logged in on `device`.
async fn user(engine: &Engine, name: &str, device: &str) -> (Client, Events, UserId) {
    let (client, events) = connect(engine).await;
    let user = client.register(name, PW, name).await.unwrap();
    client.login(name, PW, device).await.unwrap();
    (client, events, user.id)
}

/// Another session of an existing user.
async fn device(engine: &Engine, name: &str, device: &str) -> (Client, Events) {
    let (client, events) = connect(engine).await;
    client.login(name, PW, device).await.unwrap();
    (client, events)
}

/// The texts of the messages pushed to `events` within a short wait.
async fn texts(events: &mut Events) -> Vec<String> {
    let mut seen = Vec::new();
    while let Ok(Some(event)) =
        tokio::time::timeout(Duration::from_millis(300), events.next()).await
    {
        if let Event::Message {
            message: Message { body, .. },
        } = event
            && let im_core::model::Body::Text { text } = body
        {
            seen.push(text);
        }
    }
    seen
}

async fn say(client: &Client, group: GroupId, text: &str) {
    client
        .send_text(ConversationId::Group(group), text)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_pushes_follow_sessions_and_membership() {
    let engine = engine().await;
    let (alice, mut alice_events, _) = user(&engine, "alice", "phone").await;
    let (bob, mut bob_events, bob_id) = user(&engine, "bob", "phone").await;
    let (carol, mut carol_events, carol_id) = user(&engine, "carol", "phone").await;
    let (_dave, mut dave_events, _) = user(&engine, "dave", "phone").await;
    let group = alice
        .create_group("team", &[bob_id, carol_id])
        .await
        .unwrap()
        .id;
    // The first message builds the room.
    say(&alice, group, "one").await;
    assert_eq!(texts(&mut bob_events).await, ["one"]);
    assert_eq!(texts(&mut carol_events).await, ["one"]);
    assert_eq!(
        texts(&mut alice_events).await,
        Vec::<String>::new(),
        "the sender's session gets the reply, not a push"
    );

    // A second device of a member, logged in after the room was built, is in it; the
    // sender's other device is too.
    let (_bob_laptop, mut bob_laptop_events) = device(&engine, "bob", "laptop").await;
    let (_alice_laptop, mut alice_laptop_events) = device(&engine, "alice", "laptop").await;
    say(&alice, group, "two").await;
    assert_eq!(texts(&mut bob_events).await, ["two"]);
    assert_eq!(texts(&mut bob_laptop_events).await, ["two"]);
    assert_eq!(texts(&mut alice_laptop_events).await, ["two"]);

    // Dave joins (the group is opened for him); Carol leaves; Bob's phone disconnects.
    let open = alice
        .request(Request::CreateGroup(request::CreateGroup {
            name: "open".into(),
            members: vec![],
            open: true,
        }))
        .await
        .unwrap();
    let Reply::Group(reply::Group { group: open, .. }) = open else {
        panic!("{open:?}")
    };
    say(&alice, open.id, "empty room").await;
    let (dave2, mut dave2_events) = device(&engine, "dave", "tablet").await;
    dave2
        .request(Request::JoinGroup(request::JoinGroup { group: open.id }))
        .await
        .unwrap();
    let _ = texts(&mut dave2_events).await;
    let _ = texts(&mut dave_events).await;
    say(&alice, open.id, "welcome").await;
    assert_eq!(texts(&mut dave2_events).await, ["welcome"]);
    assert_eq!(texts(&mut dave_events).await, ["welcome"]);

    carol
        .request(Request::LeaveGroup(request::LeaveGroup { group }))
        .await
        .unwrap();
    let _ = texts(&mut carol_events).await;
    drop(bob);
    drop(bob_events);
    tokio::time::sleep(Duration::from_millis(100)).await;
    say(&alice, group, "three").await;
    assert_eq!(
        texts(&mut carol_events).await,
        Vec::<String>::new(),
        "a member who left gets nothing"
    );
    assert_eq!(texts(&mut bob_laptop_events).await, ["three"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_typing_is_not_echoed_to_the_typists_devices() {
    let engine = engine().await;
    let (alice, _alice_events, _) = user(&engine, "alice", "phone").await;
    let (_bob, mut bob_events, bob_id) = user(&engine, "bob", "phone").await;
    let (_alice_laptop, mut laptop_events) = device(&engine, "alice", "laptop").await;
    let group = alice.create_group("team", &[bob_id]).await.unwrap().id;
    let _ = texts(&mut bob_events).await;
    let _ = texts(&mut laptop_events).await;
    alice
        .typing(ConversationId::Group(group), true)
        .await
        .unwrap();
    let typing = |e: &Event| matches!(e, Event::Typing { .. });
    let next = tokio::time::timeout(Duration::from_secs(2), bob_events.next())
        .await
        .unwrap()
        .unwrap();
    assert!(typing(&next), "{next:?}");
    let echoed = tokio::time::timeout(Duration::from_millis(300), laptop_events.next()).await;
    assert!(
        !matches!(echoed, Ok(Some(ref e)) if typing(e)),
        "{echoed:?}"
    );
}
