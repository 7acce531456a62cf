//! `RedisPresence` and `RedisBroker` pass their conformance suites on a Redis Cluster: three
//! primaries this test starts itself (`redis-server --cluster-enabled yes` on free
//! loopback ports, joined with `redis-cli --cluster create`), in a temporary directory,
//! stopped when the test ends. Without `redis-server` the test says so loudly and passes,
//! unless `IM_REQUIRE_REDIS_CLUSTER` is set (`.ci/run` sets it).
#![cfg(feature = "redis")]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use im_core::broker::Broker;
use im_core::presence::Presence;
use im_core::testkit::broker as brokers;
use im_core::testkit::presence as scenarios;
use im_store::{RedisBroker, RedisPresence};

/// Three cluster primaries, killed when dropped.
struct Cluster {
    servers: Vec<Child>,
    ports: Vec<u16>,
    _dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for server in &mut self.servers {
            let _ = server.kill();
            let _ = server.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Starts the cluster and waits until it serves every slot; `None` (said loudly) when
/// `redis-server` is not installed and nobody requires the test.
fn start_cluster() -> Option<Cluster> {
    if !have("redis-server") || !have("redis-cli") {
        assert!(
            std::env::var_os("IM_REQUIRE_REDIS_CLUSTER").is_none(),
            "IM_REQUIRE_REDIS_CLUSTER is set but redis-server or redis-cli is missing"
        );
        eprintln!("SKIPPED: redis-server or redis-cli not found; Redis Cluster is not tested");
        return None;
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut cluster = Cluster {
        servers: Vec::new(),
        ports: Vec::new(),
        _dir: dir,
    };
    for n in 0..3 {
        let port = free_port();
        let server = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes"])
            .args(["--cluster-config-file", &format!("nodes-{n}.conf")])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(cluster._dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        cluster.servers.push(server);
        cluster.ports.push(port);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let cli = |port: u16, args: &[&str]| {
        Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args)
            .stderr(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    for &port in &cluster.ports {
        while cli(port, &["ping"]).trim() != "PONG" {
            assert!(
                Instant::now() < deadline,
                "redis-server on {port} did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let nodes: Vec<String> = cluster
        .ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    let created = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&nodes)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run redis-cli --cluster create");
    assert!(created.success(), "redis-cli --cluster create failed");
    for &port in &cluster.ports {
        while !cli(port, &["cluster", "info"]).contains("cluster_state:ok") {
            assert!(
                Instant::now() < deadline,
                "the cluster did not come up on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Some(cluster)
}

/// How many keys the primary on `port` holds.
fn keys_on(port: u16) -> u64 {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "dbsize"])
        .output()
        .expect("redis-cli dbsize");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

#[test]
fn the_presence_and_broker_suites_pass_on_a_redis_cluster() {
    let Some(cluster) = start_cluster() else {
        return;
    };
    let url = format!("redis-cluster://127.0.0.1:{}", cluster.ports[0]);
    im_core::testkit::run(async move {
        let client = im_store::redis::connect(&url)
            .await
            .expect("connect to the cluster");
        let fresh = |name: &str| -> Arc<dyn Presence> {
            Arc::new(
                RedisPresence::new(client.clone(), &format!("cluster-{name}")).expect("prefix"),
            )
        };
        scenarios::online_devices_are_listed_per_user(fresh("listed")).await;
        scenarios::online_elsewhere_leaves_out_the_node_s_own(fresh("elsewhere")).await;
        scenarios::set_online_replaces_a_device_s_entry(fresh("replaces")).await;
        scenarios::set_offline_removes_only_the_named_node_s_entry(fresh("offline")).await;
        scenarios::entries_expire_unless_refreshed(fresh("expire")).await;
        scenarios::a_lapsed_lease_is_gone_for_every_query(fresh("lapsed")).await;
        scenarios::each_refresh_renews_the_lease(fresh("renews")).await;
        scenarios::a_moved_device_outlives_its_old_node_s_set_offline(fresh("moved")).await;
        scenarios::another_node_s_live_entry_counts_as_others_online(fresh("others")).await;

        // The users of one lookup live on different primaries: one pipeline still
        // answers for all of them.
        let presence = fresh("spread");
        let entries: Vec<_> = (1..=64u64)
            .map(|u| im_core::presence::PresenceEntry {
                user: im_core::model::UserId(u),
                device: im_core::model::DeviceId::new("d").expect("id"),
                platform: im_core::model::Platform::Web,
                node: im_core::presence::NodeId::new("n1"),
                since: im_core::model::Timestamp::now(),
            })
            .collect();
        presence
            .set_online(&entries, Duration::from_secs(30))
            .await
            .expect("set_online across slots");
        let users: Vec<_> = entries.iter().map(|e| e.user).collect();
        let got = presence.online(&users).await.expect("online across slots");
        assert_eq!(got.len(), 64, "{got:?}");

        // The broker: nodes' channels are sharded, broadcasts cross the cluster.
        let broker = |name: &str| -> Arc<dyn Broker> {
            Arc::new(RedisBroker::new(client.clone(), &format!("cluster-{name}")).expect("prefix"))
        };
        brokers::published_envelopes_reach_the_node_in_order(broker("order")).await;
        brokers::envelopes_reach_only_the_addressed_node(broker("addressed")).await;
        brokers::broadcast_reaches_every_node(broker("broadcast")).await;
    });
    let holding = cluster.ports.iter().filter(|&&p| keys_on(p) > 0).count();
    assert!(
        holding >= 2,
        "the users' keys should spread over the primaries; {holding} of 3 hold any"
    );
    drop(cluster);
}
