//! Presence as friends see it: online when the first device comes, offline when the last
//! one has been gone for the grace period (a quick reconnect says nothing), last seen,
//! the query (friends only), and the online/offline hooks.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use common::*;
use im_core::hooks::Hooks;
use im_core::model::{Timestamp, UserId};
use im_core::protocol::Event;
use im_transport_tcp::TcpConfig;

const GRACE: Duration = Duration::from_millis(400);

#[derive(Debug, Default)]
struct Transitions(Mutex<Vec<(UserId, bool)>>);

#[async_trait]
impl Hooks for Transitions {
    async fn on_online(&self, user: UserId) {
        self.0.lock().unwrap().push((user, true));
    }

    async fn on_offline(&self, user: UserId, _last_seen: Timestamp) {
        self.0.lock().unwrap().push((user, false));
    }
}

impl Transitions {
    fn of(&self, user: UserId) -> Vec<bool> {
        let all = self.0.lock().unwrap();
        all.iter()
            .filter(|(u, _)| *u == user)
            .map(|(_, o)| *o)
            .collect()
    }
}

async fn server(hooks: Arc<Transitions>) -> Server {
    let engine = builder()
        .await
        .config(test_config().with_presence_grace(GRACE))
        .hooks(hooks)
        .start()
        .await
        .unwrap();
    serve(engine, TcpConfig::default()).await
}

async fn presence(user: &mut User) -> (UserId, bool, Option<Timestamp>) {
    match user.event().await {
        Event::Presence {
            user,
            online,
            last_seen,
        } => (user, online, last_seen),
        other => panic!("expected presence, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn friends_hear_the_first_device_come_and_the_last_one_go() {
    let hooks = Arc::new(Transitions::default());
    let server = server(hooks.clone()).await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    befriend(&mut alice, &mut bob).await;
    let alice_id = alice.id;

    // A second device of someone already online is no news; nor is it leaving.
    let second = server.device("alice", "alice-2").await;
    bob.quiet(200).await;
    drop(second);
    bob.quiet((GRACE * 2).as_millis() as u64).await;

    // The last device leaves: friends hear it once the grace period has passed.
    let left = Timestamp::now();
    let start = Instant::now();
    drop(alice);
    let (who, online, last_seen) = presence(&mut bob).await;
    assert_eq!((who, online), (alice_id, false));
    assert!(
        start.elapsed() >= GRACE - Duration::from_millis(50),
        "offline announced after {:?}, before the grace period",
        start.elapsed()
    );
    let last_seen = last_seen.expect("offline carries last seen");
    assert!(
        (last_seen.0 - left.0).abs() < 1000,
        "{last_seen:?} vs {left:?}"
    );
    assert_eq!(hooks.of(alice_id), [true, false]);

    // Bob can ask too, and sees the same last seen.
    let statuses = bob.client.presence(&[alice_id, bob.id]).await.unwrap();
    assert_eq!(statuses.len(), 2);
    let a = statuses.iter().find(|s| s.user == alice_id).unwrap();
    assert!(!a.online);
    assert_eq!(a.last_seen, Some(last_seen));
    let b = statuses.iter().find(|s| s.user == bob.id).unwrap();
    assert!(b.online && b.last_seen.is_none());

    // Back online: pushed at once.
    let alice = server.device("alice", "alice-1").await;
    let (who, online, last_seen) = presence(&mut bob).await;
    assert_eq!((who, online, last_seen), (alice_id, true, None));
    assert_eq!(hooks.of(alice_id), [true, false, true]);
    let statuses = bob.client.presence(&[alice_id]).await.unwrap();
    assert!(statuses[0].online);
    drop(alice);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quick_reconnect_says_nothing() {
    let hooks = Arc::new(Transitions::default());
    let server = server(hooks.clone()).await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    befriend(&mut alice, &mut bob).await;
    let alice_id = alice.id;

    for _ in 0..3 {
        drop(alice);
        tokio::time::sleep(GRACE / 4).await;
        alice = server.device("alice", "alice-1").await;
    }
    bob.quiet((GRACE * 2).as_millis() as u64).await;
    assert_eq!(hooks.of(alice_id), [true], "only the first login");
    drop(alice);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_friends_are_told_or_can_ask() {
    let hooks = Arc::new(Transitions::default());
    let server = server(hooks.clone()).await;
    let mut alice = server.user("alice").await;
    let mut bob = server.user("bob").await;
    let mut carol = server.user("carol").await;
    befriend(&mut alice, &mut bob).await;

    // Carol is nobody's friend: her comings and goings reach no one, and asking about
    // others tells her nothing (strangers are left out, not reported offline).
    let statuses = carol.client.presence(&[alice.id, bob.id]).await.unwrap();
    assert!(statuses.is_empty(), "{statuses:?}");
    let statuses = bob.client.presence(&[alice.id, carol.id]).await.unwrap();
    assert_eq!(statuses.len(), 1);
    assert_eq!(statuses[0].user, alice.id);

    drop(bob);
    carol.quiet((GRACE * 2).as_millis() as u64).await;
    let (who, online, _) = presence(&mut alice).await;
    assert!(!online && who != carol.id);
    alice.quiet(100).await;

    // Too many at once is refused.
    let many: Vec<UserId> = (1..=501).map(UserId).collect();
    let err = alice.client.presence(&many).await.unwrap_err();
    assert_eq!(err.code(), Some(im_core::protocol::ErrorCode::TooLarge));
}
