//! The app's hooks: the push hook gets exactly the offline recipients; connections are
//! reported; app tokens are accepted through `authenticate`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use im_core::auth::HashCost;
use im_core::client::{Client, Events};
use im_core::engine::DirectPolicy;
use im_core::hooks::{AppIdentity, Hooks};
use im_core::model::{Body, ConversationId, DeviceId, Message, Platform, Seq, UserId};
use im_core::protocol::ErrorCode;
use im_core::transport::{PeerInfo, duplex};
use im_core::{Engine, EngineConfig};

const PW: &str = "correct horse battery";

#[derive(Debug, Default)]
struct Recorder {
    stored: Mutex<Vec<(ConversationId, Seq, Vec<UserId>)>>,
    connects: Mutex<usize>,
    disconnects: Mutex<Vec<Option<UserId>>>,
}

#[async_trait]
impl Hooks for Recorder {
    async fn on_message_stored(&self, message: &Message, offline: &[UserId]) {
        let mut offline = offline.to_vec();
        offline.sort();
        self.stored
            .lock()
            .unwrap()
            .push((message.conversation, message.seq, offline));
    }

    async fn on_connect(&self, _peer: &PeerInfo) {
        *self.connects.lock().unwrap() += 1;
    }

    async fn on_disconnect(&self, _peer: &PeerInfo, user: Option<UserId>, _reason: &str) {
        self.disconnects.lock().unwrap().push(user);
    }

    async fn authenticate(&self, token: &str) -> Option<AppIdentity> {
        let user = token.strip_prefix("app:")?.parse().ok()?;
        Some(AppIdentity {
            user: UserId(user),
            device: DeviceId::new("app-web").ok()?,
            platform: Platform::Web,
        })
    }
}

impl Recorder {
    fn last(&self) -> (ConversationId, Seq, Vec<UserId>) {
        self.stored
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("no message stored")
    }
    fn count(&self) -> usize {
        self.stored.lock().unwrap().len()
    }
}

/// An engine with these hooks, open direct messages and a cheap password hash.
async fn engine_with(hooks: Arc<dyn Hooks>) -> Engine {
    let config = EngineConfig::default()
        .with_direct_policy(DirectPolicy::Anyone)
        .with_hash_cost(HashCost::CHEAPEST);
    Engine::builder()
        .hooks(hooks)
        .config(config)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_see_offline_recipients_connections_and_app_tokens() {
    let hooks = Arc::new(Recorder::default());
    let engine = engine_with(hooks.clone()).await;

    let (admin, _) = connect(&engine).await;
    let mut ids = Vec::new();
    for name in ["alice", "bob", "carol", "dave"] {
        ids.push(admin.register(name, PW, name).await.unwrap().id);
    }
    let [alice_id, bob_id, carol_id, dave_id] = ids[..] else {
        unreachable!()
    };
    let (alice, _alice_events) = connect(&engine).await;
    alice.login("alice", PW, "phone").await.unwrap();
    let (bob, _bob_events) = connect(&engine).await;
    bob.login("bob", PW, "phone").await.unwrap();

    // Carol and Dave have no device online: the group's creation notice and a message
    // are theirs to be notified of. Alice (the sender) and Bob (online) are not.
    let group = alice
        .create_group("g", &[bob_id, carol_id, dave_id])
        .await
        .unwrap();
    let g = ConversationId::Group(group.id);
    assert_eq!(hooks.last(), (g, Seq(1), vec![carol_id, dave_id]));
    alice.send_text(g, "hello").await.unwrap();
    assert_eq!(hooks.last(), (g, Seq(2), vec![carol_id, dave_id]));

    // Carol comes online with an app token (the authenticate hook vouches for it).
    let (carol, _carol_events) = connect(&engine).await;
    let session = carol.resume(&format!("app:{}", carol_id.0)).await.unwrap();
    assert_eq!(session.user.id, carol_id);
    assert_eq!(session.device.platform, Platform::Web);
    alice.send_text(g, "carol is here").await.unwrap();
    assert_eq!(hooks.last(), (g, Seq(3), vec![dave_id]));

    // Direct chats: an online recipient is not offline; an offline one is.
    let ab = ConversationId::direct(alice_id, bob_id);
    alice.send_text(ab, "hi bob").await.unwrap();
    assert_eq!(hooks.last(), (ab, Seq(1), vec![]));
    let ad = ConversationId::direct(alice_id, dave_id);
    alice.send_text(ad, "hi dave").await.unwrap();
    assert_eq!(hooks.last(), (ad, Seq(1), vec![dave_id]));

    // A retry stores nothing, so the hook is not called again.
    let body = Body::Text {
        text: "once".into(),
    };
    let before = hooks.count();
    alice.send(ad, "same-id", body.clone()).await.unwrap();
    alice.send(ad, "same-id", body).await.unwrap();
    assert_eq!(hooks.count(), before + 1);

    // App tokens the hook refuses, or naming no user, are unauthorized.
    let (stranger, _) = connect(&engine).await;
    for bad in ["app:999", "not-a-token", "app:x"] {
        let err = stranger.resume(bad).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::Unauthorized), "{bad}");
    }

    // Connections are reported, and a logged-in one says who it was.
    assert_eq!(*hooks.connects.lock().unwrap(), 5);
    drop(bob);
    drop(_bob_events);
    for _ in 0..100 {
        if hooks.disconnects.lock().unwrap().contains(&Some(bob_id)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(hooks.disconnects.lock().unwrap().contains(&Some(bob_id)));
    engine.shutdown().await;
}

/// A push hook that takes its time, as one calling APNs would.
#[derive(Debug, Default)]
struct SlowPush {
    done: Mutex<Vec<Seq>>,
}

#[async_trait]
impl Hooks for SlowPush {
    async fn on_message_stored(&self, message: &Message, _offline: &[UserId]) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.done.lock().unwrap().push(message.seq);
    }
}

/// A connection that is closed while a request is in flight (here: its device logs in
/// again elsewhere while the push hook of its send is running) finishes that request's
/// work before it goes: the message stored is also pushed and handed to the hook.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_finishes_when_its_connection_is_closed() {
    let hooks = Arc::new(SlowPush::default());
    let engine = engine_with(hooks.clone()).await;
    let (admin, _) = connect(&engine).await;
    let alice_id = admin.register("alice", PW, "Alice").await.unwrap().id;
    let bob_id = admin.register("bob", PW, "Bob").await.unwrap().id;
    let (alice, _alice_events) = connect(&engine).await;
    alice.login("alice", PW, "phone").await.unwrap();

    let chat = ConversationId::direct(alice_id, bob_id);
    let send = tokio::spawn(async move { alice.send_text(chat, "last words").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The same device logs in again: the first connection is kicked mid-request.
    let (again, _again_events) = connect(&engine).await;
    again.login("alice", PW, "phone").await.unwrap();
    let _ = send.await;

    for _ in 0..100 {
        if !hooks.done.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(*hooks.done.lock().unwrap(), [Seq(1)]);
    engine.shutdown().await;
}
