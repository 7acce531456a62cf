//! Two engines as two nodes of a cluster, sharing storage and, through Redis, presence
//! and the broker (`RedisPresence`, `RedisBroker` on the Redis named by
//! `IM_TEST_REDIS_URL`): the cross-node scenario of `im_core::testkit::nodes`.
#![cfg(feature = "redis")]

use std::sync::Arc;
use std::time::Duration;

use im_core::auth::HashCost;
use im_core::memory::MemoryStorage;
use im_core::presence::{NodeId, Presence};
use im_core::{Engine, EngineConfig};
use im_store::{RedisBroker, RedisPresence};

async fn node(name: &str, storage: &Arc<MemoryStorage>, url: &str, prefix: &str) -> Engine {
    node_with(name, storage, url, prefix, EngineConfig::default(), |p| p).await
}

/// A node with `config`, its presence passed through `wrap`.
async fn node_with(
    name: &str,
    storage: &Arc<MemoryStorage>,
    url: &str,
    prefix: &str,
    config: EngineConfig,
    wrap: impl FnOnce(Arc<dyn Presence>) -> Arc<dyn Presence>,
) -> Engine {
    let client = im_store::redis::connect(url)
        .await
        .expect("connect to Redis");
    Engine::builder()
        .node(NodeId::new(name))
        .storage(storage.clone())
        .presence(wrap(Arc::new(
            RedisPresence::new(client.clone(), prefix).expect("prefix"),
        )))
        .broker(Arc::new(RedisBroker::new(client, prefix).expect("prefix")))
        .config(config.with_hash_cost(HashCost::CHEAPEST))
        .start()
        .await
        .expect("start a node")
}

/// Second-long leases and grace, for the scenarios that wait for them.
fn short_leases() -> EngineConfig {
    EngineConfig::default()
        .with_presence_ttl(Duration::from_secs(1))
        .with_presence_grace(Duration::from_millis(800))
}

/// The Redis URL and a key prefix of the test's own, or `None` (said loudly).
fn redis(name: &str) -> Option<(String, String)> {
    let Ok(url) = std::env::var("IM_TEST_REDIS_URL") else {
        eprintln!("SKIPPED: IM_TEST_REDIS_URL is not set; nodes over Redis are not tested");
        return None;
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_nanos();
    Some((url, format!("imtest-{name}-{}-{nanos}", std::process::id())))
}

/// A node that stops refreshing its leases (as a killed one does) is claimed by the
/// other, which tells its users' friends they went offline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_node_s_users_go_offline_for_their_friends() {
    use im_core::testkit::nodes::Severable;
    let Some((url, prefix)) = redis("dead") else {
        return;
    };
    let storage = Arc::new(MemoryStorage::new());
    let mut severable = None;
    let a = node_with("node-a", &storage, &url, &prefix, short_leases(), |p| {
        let s = Severable::new(p);
        severable = Some(s.clone());
        s
    })
    .await;
    let b = node_with("node-b", &storage, &url, &prefix, short_leases(), |p| p).await;
    let severable = severable.expect("set by the wrapper");
    im_core::testkit::nodes::a_dead_node_s_users_go_offline_for_their_friends(a, severable, b)
        .await;
}

/// A node that shuts down hands its users over through Redis: the other node announces
/// the one who did not come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_shutting_down_hands_its_users_over() {
    let Some((url, prefix)) = redis("handover") else {
        return;
    };
    let storage = Arc::new(MemoryStorage::new());
    let a = node_with("node-a", &storage, &url, &prefix, short_leases(), |p| p).await;
    let b = node_with("node-b", &storage, &url, &prefix, short_leases(), |p| p).await;
    im_core::testkit::nodes::a_node_shutting_down_hands_its_users_over(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_invalidations_and_kicks_cross_nodes_through_redis() {
    let Some((url, prefix)) = redis("nodes") else {
        return;
    };
    let storage = Arc::new(MemoryStorage::new());
    let a = node("node-a", &storage, &url, &prefix).await;
    let b = node("node-b", &storage, &url, &prefix).await;
    im_core::testkit::nodes::messages_invalidations_and_kicks_cross_nodes(a, b).await;
}

/// A node that shuts down gracefully takes its devices offline in Redis at once, not a
/// lease later: each session's end removes its entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_takes_the_node_s_devices_offline() {
    let Some((url, prefix)) = redis("shutdown") else {
        return;
    };
    let storage = Arc::new(MemoryStorage::new());
    let a = node("node-a", &storage, &url, &prefix).await;
    let (server, client) = im_core::transport::duplex(64);
    tokio::spawn({
        let a = a.clone();
        async move { a.serve_connection(server).await }
    });
    let (alice, _events) = im_core::client::Client::connect(client)
        .await
        .expect("connect");
    let id = alice
        .register("alice", "correct horse battery", "Alice")
        .await
        .expect("register")
        .id;
    alice
        .login("alice", "correct horse battery", "phone")
        .await
        .expect("login");
    let presence = RedisPresence::new(
        im_store::redis::connect(&url).await.expect("connect"),
        &prefix,
    )
    .expect("prefix");
    assert_eq!(presence.online(&[id]).await.expect("online").len(), 1);
    a.shutdown().await;
    assert!(
        presence.online(&[id]).await.expect("online").is_empty(),
        "the device is still online after its node shut down"
    );
}

/// A group larger than the fan-out looks up one by one goes out as one broadcast.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_group_s_messages_reach_every_node_once() {
    let Some((url, prefix)) = redis("big-group") else {
        return;
    };
    let storage = Arc::new(MemoryStorage::new());
    let a = node("node-a", &storage, &url, &prefix).await;
    let b = node("node-b", &storage, &url, &prefix).await;
    im_core::testkit::nodes::a_big_group_s_messages_reach_every_node_once(a, b).await;
}
