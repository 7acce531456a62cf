//! `RedisPresence` and `RedisBroker` pass their conformance suites against the Redis
//! named by `IM_TEST_REDIS_URL` (`.ci/run` sets it). Each test gets a key prefix of its own, so
//! tests run side by side on one Redis and leave nothing that another reads.
#![cfg(feature = "redis")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use im_store::RedisPresence;

/// A fresh presence under a prefix no other test uses, or `None` (said loudly) without
/// `IM_TEST_REDIS_URL`.
async fn presence() -> Option<Arc<RedisPresence>> {
    let Ok(url) = std::env::var("IM_TEST_REDIS_URL") else {
        eprintln!("SKIPPED: IM_TEST_REDIS_URL is not set; RedisPresence is not tested");
        return None;
    };
    let client = im_store::redis::connect(&url)
        .await
        .expect("connect to Redis");
    Some(Arc::new(
        RedisPresence::new(client, &unique_prefix()).expect("prefix"),
    ))
}

/// A key prefix no other test, and no other run, uses.
fn unique_prefix() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_nanos();
    format!(
        "imtest-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

im_core::presence_conformance!(optional presence());

/// After Redis forgets its scripts (a restart, `SCRIPT FLUSH`), every operation still
/// works: the scripts are sent again with their text.
#[test]
fn forgotten_scripts_are_sent_again() {
    use im_core::model::{DeviceId, Platform, Timestamp, UserId};
    use im_core::presence::{NodeId, Presence, PresenceEntry};
    use std::time::Duration;

    im_core::testkit::run(async {
        let Some(presence) = presence().await else {
            return;
        };
        let url = std::env::var("IM_TEST_REDIS_URL").expect("set when presence() is Some");
        let admin = im_store::redis::connect(&url).await.expect("connect");
        let entry = |device: &str| PresenceEntry {
            user: UserId(1),
            device: DeviceId::new(device).expect("id"),
            platform: Platform::Web,
            node: NodeId::new("n1"),
            since: Timestamp::now(),
        };
        let ttl = Duration::from_secs(30);
        presence
            .set_online(&[entry("a")], ttl)
            .await
            .expect("set_online");
        let flush = || async {
            use fred::interfaces::LuaInterface;
            let _: () = admin.script_flush(false).await.expect("SCRIPT FLUSH");
        };
        flush().await;
        presence
            .set_online(&[entry("b")], ttl)
            .await
            .expect("set_online after a flush");
        flush().await;
        let mut got: Vec<String> = presence
            .online(&[UserId(1)])
            .await
            .expect("online after a flush")
            .into_iter()
            .map(|e| e.device.to_string())
            .collect();
        got.sort();
        assert_eq!(got, ["a", "b"]);
        flush().await;
        presence
            .set_offline(
                UserId(1),
                &DeviceId::new("a").expect("id"),
                &NodeId::new("n1"),
            )
            .await
            .expect("set_offline after a flush");
        flush().await;
        assert!(
            presence
                .others_online(&NodeId::new("n2"))
                .await
                .expect("others_online after a flush")
        );
    });
}

mod broker {
    use std::sync::Arc;

    use im_store::RedisBroker;

    /// A fresh broker under a prefix of its own, or `None` without `IM_TEST_REDIS_URL`.
    async fn broker() -> Option<Arc<RedisBroker>> {
        let Ok(url) = std::env::var("IM_TEST_REDIS_URL") else {
            eprintln!("SKIPPED: IM_TEST_REDIS_URL is not set; RedisBroker is not tested");
            return None;
        };
        let client = im_store::redis::connect(&url)
            .await
            .expect("connect to Redis");
        Some(Arc::new(
            RedisBroker::new(client, &super::unique_prefix()).expect("prefix"),
        ))
    }

    im_core::broker_conformance!(optional broker());
}
