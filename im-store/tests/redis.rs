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

mod specifics {
    use std::time::Duration;

    use fred::interfaces::HashesInterface;
    use im_core::model::{DeviceId, Platform, Timestamp, UserId};
    use im_core::presence::{NodeId, Presence, PresenceEntry};
    use im_store::RedisPresence;

    fn entry(user: u64, device: &str, node: &str) -> PresenceEntry {
        PresenceEntry {
            user: UserId(user),
            device: DeviceId::new(device).expect("id"),
            platform: Platform::Web,
            node: NodeId::new(node),
            since: Timestamp::now(),
        }
    }

    /// The presence, its prefix and a client of its own on the same Redis.
    async fn setup() -> Option<(RedisPresence, String, fred::prelude::Client)> {
        let Ok(url) = std::env::var("IM_TEST_REDIS_URL") else {
            eprintln!("SKIPPED: IM_TEST_REDIS_URL is not set; RedisPresence is not tested");
            return None;
        };
        let client = im_store::redis::connect(&url).await.expect("connect");
        let prefix = super::unique_prefix();
        let presence = RedisPresence::new(client.clone(), &prefix).expect("prefix");
        Some((presence, prefix, client))
    }

    /// `others_online` is exact on its `false` side: a node alone hears `false`, and
    /// another hears `true` until the node's last lease (and its margin) has lapsed.
    #[test]
    fn others_online_ends_with_the_other_node_s_last_lease() {
        im_core::testkit::run(async {
            let Some((presence, _, _)) = setup().await else {
                return;
            };
            let (n1, n2) = (NodeId::new("n1"), NodeId::new("n2"));
            assert!(!presence.others_online(&n1).await.expect("others_online"));
            presence
                .set_online(&[entry(1, "a", "n2")], Duration::from_millis(300))
                .await
                .expect("set_online");
            assert!(presence.others_online(&n1).await.expect("others_online"));
            assert!(
                !presence.others_online(&n2).await.expect("others_online"),
                "n2 is the only node, yet it is told of others"
            );
            // The lease, the node's margin of one second, and some slack.
            tokio::time::sleep(Duration::from_millis(300 + 1000 + 300)).await;
            assert!(
                !presence.others_online(&n1).await.expect("others_online"),
                "n2's lease lapsed, yet n1 is told of others"
            );
        });
    }

    /// A value this version cannot read (written by hand, or by another version) hides
    /// neither the user's other devices nor other users, and breaks no write.
    #[test]
    fn a_malformed_entry_hides_nothing_else() {
        im_core::testkit::run(async {
            let Some((presence, prefix, client)) = setup().await else {
                return;
            };
            let ttl = Duration::from_secs(30);
            presence
                .set_online(&[entry(1, "a", "n1"), entry(2, "b", "n1")], ttl)
                .await
                .expect("set_online");
            let key = format!("{prefix}:presence:{{u1}}");
            let far = "99999999999999";
            for (field, value) in [
                ("no-bar", "garbage".to_owned()),
                ("bad-json", format!("{far}|{{not json")),
                ("bad-entry", format!("{far}|{{\"node\":\"n1\"}}")),
            ] {
                let _: () = client.hset(&key, (field, value)).await.expect("HSET");
            }
            let mut got: Vec<String> = presence
                .online(&[UserId(1), UserId(2)])
                .await
                .expect("online")
                .into_iter()
                .map(|e| e.device.to_string())
                .collect();
            got.sort();
            assert_eq!(got, ["a", "b"]);
            for device in ["no-bar", "bad-json", "bad-entry"] {
                presence
                    .set_offline(
                        UserId(1),
                        &DeviceId::new(device).expect("id"),
                        &NodeId::new("n1"),
                    )
                    .await
                    .expect("set_offline of a malformed entry");
            }
            presence
                .set_online(&[entry(1, "c", "n1")], ttl)
                .await
                .expect("set_online beside malformed entries");
            let got = presence.online(&[UserId(1)]).await.expect("online");
            assert_eq!(got.len(), 2, "{got:?}");
        });
    }
}
