//! Two engines as two nodes of a cluster, sharing storage, presence and a broker: what
//! must cross from one to the other. For a presence and broker pair (ours: the in-memory
//! ones, `im_store`'s Redis ones; yours), start two engines on them with different
//! [`NodeId`]s and hand them to the scenario.

use crate::protocol::request;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use crate::Engine;
use crate::client::{Client, Events};
use crate::model::{ConversationId, DeviceId, Message, UserId};
use crate::presence::{NodeId, Orphan, Presence, PresenceEntry, PresenceError};
use crate::protocol::{ErrorCode, Event};
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
    bob.call(request::LeaveGroup { group: group.id })
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
        .call(request::Block { user: bob_id })
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
        .call(request::RevokeDevice {
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

/// A presence that a test can cut off: until [`sever`](Severable::sever) it forwards every
/// call, after it fails every one as unavailable. Given to one engine, it makes that node
/// look dead to the others (it stops refreshing its leases) while its process lives on.
#[derive(Debug)]
pub struct Severable {
    inner: Arc<dyn Presence>,
    severed: AtomicBool,
}

impl Severable {
    /// Forwards to `inner` until severed.
    pub fn new(inner: Arc<dyn Presence>) -> Arc<Severable> {
        Arc::new(Severable {
            inner,
            severed: AtomicBool::new(false),
        })
    }

    /// From now on, every call fails.
    pub fn sever(&self) {
        self.severed.store(true, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), PresenceError> {
        if self.severed.load(Ordering::SeqCst) {
            Err(PresenceError::Unavailable("severed by the test".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl Presence for Severable {
    async fn set_online(
        &self,
        entries: &[PresenceEntry],
        ttl: Duration,
    ) -> Result<(), PresenceError> {
        self.check()?;
        self.inner.set_online(entries, ttl).await
    }
    async fn set_offline(
        &self,
        user: UserId,
        device: &DeviceId,
        node: &NodeId,
    ) -> Result<(), PresenceError> {
        self.check()?;
        self.inner.set_offline(user, device, node).await
    }
    async fn online(&self, users: &[UserId]) -> Result<Vec<PresenceEntry>, PresenceError> {
        self.check()?;
        self.inner.online(users).await
    }
    async fn others_online(&self, node: &NodeId) -> Result<bool, PresenceError> {
        self.check()?;
        self.inner.others_online(node).await
    }
    async fn online_elsewhere(
        &self,
        users: &[UserId],
        node: &NodeId,
    ) -> Result<Vec<PresenceEntry>, PresenceError> {
        self.check()?;
        self.inner.online_elsewhere(users, node).await
    }
    async fn claim_lapsed(&self, node: &NodeId) -> Result<Vec<Orphan>, PresenceError> {
        self.check()?;
        self.inner.claim_lapsed(node).await
    }
    async fn claim_own(&self, node: &NodeId) -> Result<Vec<Orphan>, PresenceError> {
        self.check()?;
        self.inner.claim_own(node).await
    }
    async fn leave(
        &self,
        node: &NodeId,
        devices: &[(UserId, DeviceId)],
        after: Duration,
    ) -> Result<(), PresenceError> {
        self.check()?;
        self.inner.leave(node, devices, after).await
    }
}

/// A registered, logged-in user on `engine`.
async fn user(engine: &Engine, name: &str, device: &str) -> (Client, Events, UserId) {
    let (client, events) = connect(engine).await;
    let id = client.register(name, PW, name).await.expect("register").id;
    client.login(name, PW, device).await.expect("login");
    (client, events, id)
}

async fn befriend(a: &Client, a_id: UserId, b: &Client, b_id: UserId) {
    a.request_friend(b_id, "").await.expect("request");
    b.accept_friend(a_id).await.expect("accept");
}

/// The `presence` events `events` gets within `window`, as (user, online).
async fn presence_events(events: &mut Events, window: Duration) -> Vec<(UserId, bool)> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + window;
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, events.next()).await {
        if let Event::Presence { user, online, .. } = event {
            seen.push((user, online));
        }
    }
    seen
}

/// Node `a` dies (its presence, `a_presence`, is severed: it stops refreshing its leases
/// while its sessions stay attached): within a few leases node `b` claims it and tells
/// Bob, on `b`, once, that Alice, who was only on `a`, went offline, and says nothing of
/// Carol, who has a device on `b` too. Both engines must use the cheapest password hash
/// and a `presence_ttl` of about a second; both are shut down at the end.
pub async fn a_dead_node_s_users_go_offline_for_their_friends(
    a: Engine,
    a_presence: Arc<Severable>,
    b: Engine,
) {
    let ttl = b.config().presence_ttl;
    let (alice, _alice_events, alice_id) = user(&a, "alice", "phone").await;
    let (carol, _carol_events, carol_id) = user(&a, "carol", "phone").await;
    let (bob, mut bob_events, bob_id) = user(&b, "bob", "laptop").await;
    let (carol_tablet, _tablet_events) = connect(&b).await;
    carol_tablet
        .login("carol", PW, "tablet")
        .await
        .expect("login");
    befriend(&alice, alice_id, &bob, bob_id).await;
    befriend(&carol, carol_id, &bob, bob_id).await;
    // Whatever the logins and friendships said settles first.
    presence_events(&mut bob_events, ttl / 2).await;

    a_presence.sever();
    let window = ttl * 4 + Duration::from_secs(3);
    let seen = presence_events(&mut bob_events, window).await;
    let alice_offline = seen
        .iter()
        .filter(|&&(u, online)| u == alice_id && !online)
        .count();
    assert_eq!(
        alice_offline, 1,
        "Bob should hear once, within {window:?}, that Alice went offline: {seen:?}"
    );
    assert!(
        !seen.iter().any(|&(u, online)| u == carol_id && !online),
        "Carol is still online on the other node: {seen:?}"
    );
    let users = bob.presence(&[alice_id, carol_id]).await.expect("presence");
    let online: Vec<(UserId, bool)> = users.iter().map(|s| (s.user, s.online)).collect();
    assert!(online.contains(&(alice_id, false)), "{users:?}");
    assert!(online.contains(&(carol_id, true)), "{users:?}");
    assert!(
        users
            .iter()
            .any(|s| s.user == alice_id && s.last_seen.is_some()),
        "Alice's last-seen time was stored: {users:?}"
    );
    // Shut down with the sessions open: they are handed over, not announced.
    a.shutdown().await;
    b.shutdown().await;
    drop((alice, carol, carol_tablet, bob));
}

/// Node `a` shuts down: it hands its users over, and node `b` tells Bob that Carol went
/// offline, once, after the grace period; Dave, who logs in again on `b` within it, is
/// never said to be offline. Both engines must use the cheapest password hash and a
/// `presence_ttl` and `presence_grace` of about a second; `b` is shut down at the end.
pub async fn a_node_shutting_down_hands_its_users_over(a: Engine, b: Engine) {
    let ttl = b.config().presence_ttl;
    let grace = a.config().presence_grace;
    let (carol, _carol_events, carol_id) = user(&a, "carol", "phone").await;
    let (dave, _dave_events, dave_id) = user(&a, "dave", "phone").await;
    let (bob, mut bob_events, bob_id) = user(&b, "bob", "laptop").await;
    befriend(&carol, carol_id, &bob, bob_id).await;
    befriend(&dave, dave_id, &bob, bob_id).await;
    presence_events(&mut bob_events, ttl / 2).await;

    a.shutdown().await;
    let (dave_again, _dave_again_events) = connect(&b).await;
    dave_again
        .login("dave", PW, "phone")
        .await
        .expect("login on b");
    let window = grace + ttl * 2 + Duration::from_secs(3);
    let seen = presence_events(&mut bob_events, window).await;
    let carol_offline = seen
        .iter()
        .filter(|&&(u, online)| u == carol_id && !online)
        .count();
    assert_eq!(
        carol_offline, 1,
        "Bob should hear once that Carol went offline: {seen:?}"
    );
    assert!(
        !seen.iter().any(|&(u, online)| u == dave_id && !online),
        "Dave came back on the other node: {seen:?}"
    );
    b.shutdown().await;
    drop((carol, dave, dave_again, bob));
}

/// A group larger than a node asks presence about one by one (20 members, half on each
/// node): its message reaches every member once on both nodes, the sender's other device
/// too, and never the sending session; typing in it is not echoed to the typist's other
/// device. Both engines must use the cheapest password hash; both are shut down at the
/// end.
pub async fn a_big_group_s_messages_reach_every_node_once(a: Engine, b: Engine) {
    let (alice, _alice_events, alice_id) = user(&a, "alice", "phone").await;
    let (tablet, mut tablet_events) = connect(&b).await;
    tablet.login("alice", PW, "tablet").await.expect("login");
    let mut members = Vec::new();
    for i in 0..19 {
        let node = if i % 2 == 0 { &a } else { &b };
        let (client, events, id) = user(node, &format!("member{i}"), "phone").await;
        befriend(&alice, alice_id, &client, id).await;
        members.push((client, events, id));
    }
    let ids: Vec<UserId> = members.iter().map(|(_, _, id)| *id).collect();
    let group = alice.create_group("big", &ids).await.expect("group");
    let g = ConversationId::Group(group.id);
    let sent = alice.send_text(g, "to everyone").await.expect("send");
    alice.typing(g, true).await.expect("typing");
    // Each member, and Alice's tablet, gets the message once (and the typing): all
    // pushes have had a second to arrive; then whatever each one got is read.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut receivers: Vec<&mut Events> = members.iter_mut().map(|(_, e, _)| e).collect();
    receivers.push(&mut tablet_events);
    for (i, events) in receivers.into_iter().enumerate() {
        let mut copies = 0;
        let mut typing = 0;
        while let Ok(Some(event)) =
            tokio::time::timeout(Duration::from_millis(100), events.next()).await
        {
            match event {
                Event::Message { message }
                    if message.seq == sent.seq && message.conversation == g =>
                {
                    copies += 1
                }
                Event::Typing { user, .. } if user == alice_id => typing += 1,
                _ => {}
            }
        }
        assert_eq!(copies, 1, "receiver {i} got the message {copies} times");
        let want_typing = if i == 19 { 0 } else { 1 };
        assert_eq!(typing, want_typing, "receiver {i} typing events");
    }
    a.shutdown().await;
    b.shutdown().await;
    drop((alice, tablet, members));
}
