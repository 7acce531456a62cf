//! Two engines sharing storage, presence and a broker, as two nodes of a cluster do:
//! messages, kicks and group membership changes cross from one node to the other.

use im_core::protocol::request;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use im_core::hooks::Hooks;
use im_core::model::UserId;

use im_core::auth::HashCost;
use im_core::client::{Client, Events};
use im_core::memory::{LocalBroker, MemoryPresence, MemoryStorage};
use im_core::model::{ConversationId, Message};
use im_core::presence::NodeId;
use im_core::protocol::{Event, Request};
use im_core::transport::duplex;
use im_core::{Engine, EngineConfig};

const PW: &str = "correct horse battery";

/// Records the offline recipients of each stored message.
#[derive(Debug, Default)]
struct Offline(Mutex<Vec<Vec<UserId>>>);

#[async_trait]
impl Hooks for Offline {
    async fn on_message_stored(&self, _message: &Message, offline: &[UserId]) {
        self.0.lock().unwrap().push(offline.to_vec());
    }
}

async fn node(
    name: &str,
    storage: &Arc<MemoryStorage>,
    presence: &Arc<MemoryPresence>,
    broker: &Arc<LocalBroker>,
    hooks: Arc<Offline>,
) -> Engine {
    let cheap = HashCost::CHEAPEST;
    Engine::builder()
        .node(NodeId::new(name))
        .storage(storage.clone())
        .presence(presence.clone())
        .broker(broker.clone())
        .hooks(hooks)
        .config(EngineConfig::default().with_hash_cost(cheap))
        .start()
        .await
        .unwrap()
}

async fn connect(engine: &Engine) -> (Client, Events) {
    let (server, client) = duplex(256);
    let engine = engine.clone();
    tokio::spawn(async move { engine.serve_connection(server).await });
    Client::connect(client).await.unwrap()
}

async fn next_message(events: &mut Events) -> Message {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), events.next()).await {
            Ok(Some(Event::Message { message })) => return message,
            Ok(Some(_)) => {}
            other => panic!("no message: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_kicks_and_group_changes_cross_nodes() {
    let storage = Arc::new(MemoryStorage::new());
    let presence = Arc::new(MemoryPresence::new());
    let broker = Arc::new(LocalBroker::new());
    let a = node("node-a", &storage, &presence, &broker, Arc::default()).await;
    let b = node("node-b", &storage, &presence, &broker, Arc::default()).await;
    im_core::testkit::nodes::messages_invalidations_and_kicks_cross_nodes(a, b).await;
}

/// A recipient online on another node is not offline: the hook that would send a push
/// notification is told nobody is offline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recipient_on_another_node_is_not_offline() {
    let storage = Arc::new(MemoryStorage::new());
    let presence = Arc::new(MemoryPresence::new());
    let broker = Arc::new(LocalBroker::new());
    let hooks = Arc::new(Offline::default());
    let a = node("node-a", &storage, &presence, &broker, hooks.clone()).await;
    let b = node("node-b", &storage, &presence, &broker, Arc::default()).await;
    let (alice, _alice_events) = connect(&a).await;
    let (bob, mut bob_events) = connect(&b).await;
    let alice_id = alice.register("alice", PW, "Alice").await.unwrap().id;
    let bob_id = bob.register("bob", PW, "Bob").await.unwrap().id;
    alice.login("alice", PW, "phone").await.unwrap();
    bob.login("bob", PW, "laptop").await.unwrap();
    alice.request_friend(bob_id, "").await.unwrap();
    bob.accept_friend(alice_id).await.unwrap();
    let chat = ConversationId::direct(alice_id, bob_id);
    let sent = alice.send_text(chat, "across nodes").await.unwrap();
    assert_eq!(next_message(&mut bob_events).await.seq, sent.seq);
    assert_eq!(hooks.0.lock().unwrap().last(), Some(&vec![]));
    a.shutdown().await;
    b.shutdown().await;
}

/// A device that moves between nodes keeps its newest session: the "replaced" kick its
/// earlier login broadcast only closes sessions that started before that login, however
/// late it arrives. And the device policy counts sessions on every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_replacement_kick_spares_the_newer_session_and_limits_span_nodes() {
    use im_core::broker::{Broker, Envelope};
    use im_core::model::{DeviceId, Timestamp};
    use im_core::protocol::KickCode;

    let storage = Arc::new(MemoryStorage::new());
    let presence = Arc::new(MemoryPresence::new());
    let broker = Arc::new(LocalBroker::new());
    let hooks = Arc::new(Offline::default());
    let a = node("a", &storage, &presence, &broker, hooks.clone()).await;
    let b = node("b", &storage, &presence, &broker, hooks).await;
    let (admin, _) = connect(&a).await;
    let alice_id = admin.register("alice", PW, "Alice").await.unwrap().id;

    let before = Timestamp::now();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (phone, mut phone_events) = connect(&b).await;
    phone.login("alice", PW, "phone").await.unwrap();

    // A kick for the phone from a login older than this session: ignored.
    let late = Envelope::Kick {
        user: alice_id,
        device: Some(DeviceId::new("phone").unwrap()),
        keep: None,
        started_before: Some(before),
        code: KickCode::Replaced,
        origin: NodeId::new("a"),
    };
    broker.broadcast(late).await.unwrap();
    let quiet = tokio::time::timeout(Duration::from_millis(200), phone_events.next()).await;
    assert!(quiet.is_err(), "the newer session was closed: {quiet:?}");
    // One from a newer login: obeyed.
    let current = Envelope::Kick {
        user: alice_id,
        device: Some(DeviceId::new("phone").unwrap()),
        keep: None,
        started_before: Some(Timestamp::now()),
        code: KickCode::Replaced,
        origin: NodeId::new("a"),
    };
    broker.broadcast(current).await.unwrap();
    match tokio::time::timeout(Duration::from_secs(5), phone_events.next()).await {
        Ok(Some(Event::Kicked { code, .. })) => assert_eq!(code, KickCode::Replaced),
        other => panic!("expected kicked, got {other:?}"),
    }

    // Five sessions spread over both nodes; the sixth, on node A, closes the oldest,
    // which is on node B.
    let mut sessions = Vec::new();
    for n in 0..5 {
        let engine = if n % 2 == 0 { &b } else { &a };
        let (client, events) = connect(engine).await;
        client.login("alice", PW, &format!("d{n}")).await.unwrap();
        sessions.push((client, events));
    }
    let (sixth, _sixth_events) = connect(&a).await;
    sixth.login("alice", PW, "d5").await.unwrap();
    let oldest = &mut sessions[0].1;
    match tokio::time::timeout(Duration::from_secs(5), oldest.next()).await {
        Ok(Some(Event::Kicked { code, .. })) => assert_eq!(code, KickCode::DeviceLimit),
        other => panic!("expected the oldest (on the other node) to be kicked, got {other:?}"),
    }
    for (_, events) in sessions.iter_mut().skip(1) {
        let quiet = tokio::time::timeout(Duration::from_millis(100), events.next()).await;
        assert!(quiet.is_err(), "{quiet:?}");
    }
    a.shutdown().await;
    b.shutdown().await;
}

/// A request handled on its own (HTTP) with a device's token pushes to that device's
/// live sessions on every node alike: the caller gets no pushes, its sessions should.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detached_senders_device_sessions_get_the_push_on_any_node() {
    let storage = Arc::new(MemoryStorage::new());
    let presence = Arc::new(MemoryPresence::new());
    let broker = Arc::new(LocalBroker::new());
    let hooks = Arc::new(Offline::default());
    let a = node("node-a", &storage, &presence, &broker, hooks.clone()).await;
    let b = node("node-b", &storage, &presence, &broker, hooks).await;

    let (alice, mut alice_on_a) = connect(&a).await;
    let (bob, _) = connect(&b).await;
    let alice_id = alice.register("alice", PW, "Alice").await.unwrap().id;
    let bob_id = bob.register("bob", PW, "Bob").await.unwrap().id;
    let session = alice.login("alice", PW, "laptop").await.unwrap();
    bob.login("bob", PW, "phone").await.unwrap();
    alice.request_friend(bob_id, "").await.unwrap();
    bob.accept_friend(alice_id).await.unwrap();

    // The laptop's token, used on node B without a connection.
    let token = session.token.unwrap();
    let peer = im_core::transport::PeerInfo {
        addr: None,
        transport: "http",
    };
    let chat = ConversationId::direct(alice_id, bob_id);
    let send = Request::Send(request::Send {
        conversation: chat,
        client_id: "from-http".into(),
        body: im_core::model::Body::Text {
            text: "sent over http".into(),
        },
        reply_to: None,
        mentions: Vec::new(),
    });
    b.execute(&peer, Some(&token), send).await.unwrap();
    let pushed = next_message(&mut alice_on_a).await;
    assert_eq!(pushed.client_id, "from-http");
}

/// A broker's `Missed` (its link broke and came back) makes the node tell every local
/// session to resync, and only that node's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_gap_tells_every_local_session_to_resync() {
    use im_core::broker::{Broker, Envelope};

    let storage = Arc::new(MemoryStorage::new());
    let presence = Arc::new(MemoryPresence::new());
    let broker = Arc::new(LocalBroker::new());
    let a = node("node-a", &storage, &presence, &broker, Arc::default()).await;
    let b = node("node-b", &storage, &presence, &broker, Arc::default()).await;
    let (alice, mut alice_events) = connect(&a).await;
    let (bob, mut bob_events) = connect(&a).await;
    let (carol, mut carol_events) = connect(&b).await;
    for (client, name) in [(&alice, "alice"), (&bob, "bob"), (&carol, "carol")] {
        client.register(name, PW, name).await.unwrap();
        client.login(name, PW, "phone").await.unwrap();
    }
    broker
        .publish(
            &NodeId::new("node-a"),
            Envelope::Missed {
                reason: "the link to the broker was interrupted".into(),
            },
        )
        .await
        .unwrap();
    for events in [&mut alice_events, &mut bob_events] {
        loop {
            match tokio::time::timeout(Duration::from_secs(5), events.next()).await {
                Ok(Some(Event::Resync { reason })) => {
                    assert!(reason.contains("broker"), "{reason}");
                    break;
                }
                Ok(Some(_)) => {}
                other => panic!("no resync: {other:?}"),
            }
        }
    }
    // Node B's session heard nothing of it.
    let quiet = tokio::time::timeout(Duration::from_millis(300), carol_events.next()).await;
    assert!(
        !matches!(quiet, Ok(Some(Event::Resync { .. }))),
        "{quiet:?}"
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// Two nodes with second-long leases, on `presence` (one for both, or each its own view).
async fn short_lease_node(
    name: &str,
    storage: &Arc<MemoryStorage>,
    presence: Arc<dyn im_core::presence::Presence>,
    broker: &Arc<LocalBroker>,
    hooks: Arc<dyn Hooks>,
) -> Engine {
    Engine::builder()
        .node(NodeId::new(name))
        .storage(storage.clone())
        .presence(presence)
        .broker(broker.clone())
        .hooks(hooks)
        .config(
            EngineConfig::default()
                .with_hash_cost(HashCost::CHEAPEST)
                .with_presence_ttl(Duration::from_secs(1))
                .with_presence_grace(Duration::from_millis(800)),
        )
        .start()
        .await
        .unwrap()
}

/// Counts `on_offline` per user, over every node it is given to.
#[derive(Debug, Default)]
struct Departures(Mutex<Vec<UserId>>);

#[async_trait]
impl Hooks for Departures {
    async fn on_offline(&self, user: UserId, _at: im_core::model::Timestamp) {
        self.0.lock().unwrap().push(user);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_node_s_users_go_offline_for_their_friends() {
    let storage = Arc::new(MemoryStorage::new());
    let presence = Arc::new(MemoryPresence::new());
    let broker = Arc::new(LocalBroker::new());
    let departures = Arc::new(Departures::default());
    let severable = im_core::testkit::nodes::Severable::new(presence.clone());
    let a = short_lease_node(
        "a",
        &storage,
        severable.clone(),
        &broker,
        departures.clone(),
    )
    .await;
    let b = short_lease_node("b", &storage, presence, &broker, departures.clone()).await;
    im_core::testkit::nodes::a_dead_node_s_users_go_offline_for_their_friends(a, severable, b)
        .await;
    // Alice's departure ran the hook once, on the node that claimed hers; Carol's never.
    let alice = storage_user(&storage, "alice").await;
    let carol = storage_user(&storage, "carol").await;
    let gone = departures.0.lock().unwrap().clone();
    assert_eq!(gone.iter().filter(|&&u| u == alice).count(), 1, "{gone:?}");
    assert!(!gone.contains(&carol), "{gone:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_shutting_down_hands_its_users_over() {
    let storage = Arc::new(MemoryStorage::new());
    let presence = Arc::new(MemoryPresence::new());
    let broker = Arc::new(LocalBroker::new());
    let departures = Arc::new(Departures::default());
    let a = short_lease_node("a", &storage, presence.clone(), &broker, departures.clone()).await;
    let b = short_lease_node("b", &storage, presence, &broker, departures.clone()).await;
    im_core::testkit::nodes::a_node_shutting_down_hands_its_users_over(a, b).await;
    let carol = storage_user(&storage, "carol").await;
    let dave = storage_user(&storage, "dave").await;
    let gone = departures.0.lock().unwrap().clone();
    assert_eq!(gone.iter().filter(|&&u| u == carol).count(), 1, "{gone:?}");
    assert!(!gone.contains(&dave), "{gone:?}");
}

async fn storage_user(storage: &Arc<MemoryStorage>, name: &str) -> UserId {
    use im_core::storage::UserStore;
    storage.user_by_name(name).await.expect("registered").id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_group_s_messages_reach_every_node_once() {
    let storage = Arc::new(MemoryStorage::new());
    let presence = Arc::new(MemoryPresence::new());
    let broker = Arc::new(LocalBroker::new());
    let a = node("a", &storage, &presence, &broker, Arc::default()).await;
    let b = node("b", &storage, &presence, &broker, Arc::default()).await;
    im_core::testkit::nodes::a_big_group_s_messages_reach_every_node_once(a, b).await;
}
