//! Two engines as two nodes of a cluster, sharing storage, presence and a broker: what
//! must cross from one to the other. For a presence and broker pair (ours: the in-memory
//! ones, `im_store`'s Redis ones; yours), start two engines on them with different
//! [`NodeId`](crate::presence::NodeId)s and hand them to the scenario.

use std::time::Duration;

use crate::Engine;
use crate::client::{Client, Events};
use crate::model::{ConversationId, DeviceId, Message};
use crate::protocol::{ErrorCode, Event, Request};
use crate::transport::duplex;

const PW: &str = "correct horse battery";

/// A client connected to `engine` in process.
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

/// Users on node `a` and node `b` befriend each other and chat both ways (a second device
/// on the other node gets its own user's messages); a group left on `b` and a block made
/// on `a` reach the other node's caches; a device revoked on `a` is kicked on `b`. Both
/// engines must use the cheapest password hash (each user logs in once per device), and
/// are shut down at the end.
pub async fn messages_invalidations_and_kicks_cross_nodes(a: Engine, b: Engine) {
    // Alice on node A; Bob and Alice's tablet on node B.
    let (alice, mut alice_events) = connect(&a).await;
    let (bob, mut bob_events) = connect(&b).await;
    let (tablet, mut tablet_events) = connect(&b).await;
    let alice_id = alice
        .register("alice", PW, "Alice")
        .await
        .expect("register")
        .id;
    let bob_id = bob.register("bob", PW, "Bob").await.expect("register").id;
    alice.login("alice", PW, "phone").await.expect("login");
    bob.login("bob", PW, "laptop").await.expect("login");
    tablet.login("alice", PW, "tablet").await.expect("login");

    // A friend request made on A reaches Bob on B; his accepting reaches Alice on A.
    alice.request_friend(bob_id, "").await.expect("request");
    let from = next_event(&mut bob_events, |e| match e {
        Event::FriendRequest { request } => Some(request.from),
        _ => None,
    })
    .await;
    assert_eq!(from, alice_id);
    bob.accept_friend(alice_id).await.expect("accept");
    let friend = next_event(&mut alice_events, |e| match e {
        Event::FriendAdded { user } => Some(user),
        _ => None,
    })
    .await;
    assert_eq!(friend, bob_id);

    // A message sent on A reaches Bob and Alice's tablet on B; one sent on B reaches
    // Alice on A.
    let chat = ConversationId::direct(alice_id, bob_id);
    let sent = alice.send_text(chat, "across nodes").await.expect("send");
    assert_eq!(next_message(&mut bob_events).await.seq, sent.seq);
    assert_eq!(next_message(&mut tablet_events).await.seq, sent.seq);
    let reply = bob.send_text(chat, "and back").await.expect("send");
    assert_eq!(next_message(&mut alice_events).await.seq, reply.seq);

    // Bob leaves a group through node B; node A's membership cache learns of it, so
    // Alice's next group message is not pushed to him.
    let group = alice.create_group("g", &[bob_id]).await.expect("group");
    let g = ConversationId::Group(group.id);
    alice
        .send_text(g, "warm the cache on A")
        .await
        .expect("send");
    assert_eq!(next_message(&mut bob_events).await.conversation, g); // created
    assert_eq!(next_message(&mut bob_events).await.conversation, g); // warm
    bob.group_request(Request::LeaveGroup { group: group.id })
        .await
        .expect("leave");
    // Give the invalidation its hop through the broker.
    tokio::time::sleep(Duration::from_millis(200)).await;
    alice.send_text(g, "after bob left").await.expect("send");
    alice.send_text(chat, "direct again").await.expect("send");
    let next = next_message(&mut bob_events).await;
    assert_eq!(
        next.conversation, chat,
        "bob was pushed a group message after leaving"
    );

    // Alice blocks Bob on node A; node B's cached tie learns of it, so Bob's next message
    // from B is refused.
    bob.send_text(chat, "warm the contact cache on B")
        .await
        .expect("send");
    alice
        .call(Request::Block { user: bob_id })
        .await
        .expect("block");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused = bob
        .send_text(chat, "after the block")
        .await
        .expect_err("a blocked user's message");
    assert_eq!(refused.code(), Some(ErrorCode::Forbidden), "{refused:?}");

    // Revoking the tablet from node A kicks its session on node B, and its token is gone.
    alice
        .call(Request::RevokeDevice {
            device: DeviceId::new("tablet").expect("id"),
        })
        .await
        .expect("revoke");
    next_event(&mut tablet_events, |e| match e {
        Event::Kicked { .. } => Some(()),
        _ => None,
    })
    .await;
    let err = tablet.conversations().await.expect_err("a kicked session");
    assert!(
        err.code().is_none() || err.code() == Some(ErrorCode::Unauthorized),
        "{err:?}"
    );
    a.shutdown().await;
    b.shutdown().await;
}
