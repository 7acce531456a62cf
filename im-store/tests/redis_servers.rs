//! Tests on Redis servers they start themselves (`redis-server` on free loopback ports, in
//! a temporary directory, killed when the test ends), never the machine's shared one:
//! - `RedisPresence` and `RedisBroker` pass their conformance suites on a Redis Cluster of
//!   three primaries (joined with `redis-cli --cluster create`), and two engines on it
//!   pass the cross-node scenarios of `im_core::testkit::nodes`;
//! - a broker's subscription comes back by itself after Redis restarts.
//!
//! Without `redis-server` the tests say so loudly and pass, unless
//! `IM_REQUIRE_REDIS_CLUSTER` is set (`.ci/run` sets it).
#![cfg(feature = "redis")]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use im_core::auth::HashCost;
use im_core::broker::Broker;
use im_core::memory::MemoryStorage;
use im_core::presence::{NodeId, Presence};
use im_core::testkit::broker as brokers;
use im_core::testkit::presence as scenarios;
use im_core::{Engine, EngineConfig};
use im_store::{RedisBroker, RedisPresence};

/// An engine named `name` on the cluster `client` reaches, keys under `prefix`.
async fn cluster_node(
    client: &im_store::redis::Client,
    name: &str,
    prefix: &str,
    storage: &Arc<MemoryStorage>,
) -> Engine {
    Engine::builder()
        .node(NodeId::new(name))
        .storage(storage.clone())
        .presence(Arc::new(
            RedisPresence::new(client.clone(), prefix).expect("prefix"),
        ))
        .broker(Arc::new(
            RedisBroker::new(client.clone(), prefix).expect("prefix"),
        ))
        .config(EngineConfig::default().with_hash_cost(HashCost::CHEAPEST))
        .start()
        .await
        .expect("start a node")
}

/// Redis servers, killed when dropped.
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

/// Whether the Redis programs are here; when they are not, says so loudly, and fails if
/// the tests are required.
fn redis_installed() -> bool {
    if have("redis-server") && have("redis-cli") {
        return true;
    }
    assert!(
        std::env::var_os("IM_REQUIRE_REDIS_CLUSTER").is_none(),
        "IM_REQUIRE_REDIS_CLUSTER is set but redis-server or redis-cli is missing"
    );
    eprintln!("SKIPPED: redis-server or redis-cli not found; Redis Cluster is not tested");
    false
}

/// Starts `redis-server` on `port` with `extra` arguments, files in `dir`.
fn redis_server(port: u16, dir: &std::path::Path, extra: &[&str]) -> Child {
    Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .args(extra)
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-server")
}

/// Waits until the server on `port` answers PING.
fn wait_for_ping(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "ping"])
            .stderr(Stdio::null())
            .output();
        if out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "PONG") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "redis-server on {port} did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts the cluster and waits until it serves every slot; `None` (said loudly) when
/// `redis-server` is not installed and nobody requires the test.
fn start_cluster() -> Option<Cluster> {
    if !redis_installed() {
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
        let config = format!("nodes-{n}.conf");
        let server = redis_server(
            port,
            cluster._dir.path(),
            &["--cluster-enabled", "yes", "--cluster-config-file", &config],
        );
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
        wait_for_ping(port);
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
        scenarios::a_move_and_the_old_node_s_set_offline_at_once_keep_the_new_entry(fresh("race"))
            .await;
        scenarios::a_lapsed_node_is_claimed_once_with_the_users_it_left(fresh("claimed")).await;
        scenarios::claim_own_takes_an_earlier_life_s_entries(fresh("own")).await;
        scenarios::leave_hands_the_users_over_after_the_delay(fresh("leave")).await;

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
        brokers::envelopes_published_together_arrive_in_order(broker("together")).await;

        // Two engines as two nodes on the cluster behave as one server.
        let storage = Arc::new(MemoryStorage::new());
        let a = cluster_node(&client, "node-a", "cluster-nodes", &storage).await;
        let b = cluster_node(&client, "node-b", "cluster-nodes", &storage).await;
        im_core::testkit::nodes::messages_invalidations_and_kicks_cross_nodes(a, b).await;
        let storage = Arc::new(MemoryStorage::new());
        let a = cluster_node(&client, "node-a", "cluster-group", &storage).await;
        let b = cluster_node(&client, "node-b", "cluster-group", &storage).await;
        im_core::testkit::nodes::a_big_group_s_messages_reach_every_node_once(a, b).await;
    });
    let holding = cluster.ports.iter().filter(|&&p| keys_on(p) > 0).count();
    assert!(
        holding >= 2,
        "the users' keys should spread over the primaries; {holding} of 3 hold any"
    );
    drop(cluster);
}

/// Redis restarts under a subscribed node: fred reconnects and resubscribes by itself, the
/// subscription yields `Missed` (what was published while it was down is lost: pub/sub is
/// at most once, storage is the truth), an engine on it tells its sessions to `resync`, and
/// envelopes published after that reach the node again, in order. Presence on the same
/// client works again too.
#[test]
fn delivery_resumes_by_itself_after_redis_restarts() {
    use futures::StreamExt;
    use im_core::broker::Envelope;
    use im_core::model::GroupId;
    use im_core::presence::NodeId;

    if !redis_installed() {
        return;
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let port = free_port();
    let mut server = Cluster {
        servers: vec![redis_server(port, dir.path(), &[])],
        ports: vec![port],
        _dir: dir,
    };
    wait_for_ping(port);
    let envelope = |n: u64| Envelope::InvalidateGroup {
        group: GroupId(n),
        origin: NodeId::new("elsewhere"),
    };
    im_core::testkit::run(async {
        let url = format!("redis://127.0.0.1:{port}");
        let client = im_store::redis::connect(&url).await.expect("connect");
        let broker = RedisBroker::new(client.clone(), "restart").expect("prefix");
        let presence = RedisPresence::new(client, "restart").expect("prefix");
        let node = NodeId::new("n1");
        let mut envelopes = broker.subscribe(&node).await.expect("subscribe");
        broker.publish(&node, envelope(1)).await.expect("publish");
        let first = tokio::time::timeout(Duration::from_secs(5), envelopes.next()).await;
        assert_eq!(first.ok().flatten(), Some(envelope(1)));

        // An engine on the same Redis, with a logged-in session.
        let engine = im_core::Engine::builder()
            .node(NodeId::new("engine-node"))
            .presence(Arc::new(presence.clone()))
            .broker(Arc::new(broker.clone()))
            .config(
                im_core::EngineConfig::default().with_hash_cost(im_core::auth::HashCost::CHEAPEST),
            )
            .start()
            .await
            .expect("start an engine");
        let (server_side, client_side) = im_core::transport::duplex(64);
        tokio::spawn({
            let engine = engine.clone();
            async move { engine.serve_connection(server_side).await }
        });
        let (alice, mut alice_events) = im_core::client::Client::connect(client_side)
            .await
            .expect("connect");
        alice
            .register("alice", "correct horse battery", "Alice")
            .await
            .expect("register");
        alice
            .login("alice", "correct horse battery", "phone")
            .await
            .expect("login");

        // Restart Redis on the same port.
        let dir = server._dir.path().to_owned();
        for child in &mut server.servers {
            let _ = child.kill();
            let _ = child.wait();
        }
        server.servers = vec![redis_server(port, &dir, &[])];
        wait_for_ping(port);

        // The subscription says it missed envelopes, once it is live again, before any
        // envelope published after the restart. (Publishing meanwhile may fail or be lost.)
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut n = 2;
        let mut told = false;
        loop {
            let _ = broker.publish(&node, envelope(n)).await;
            match tokio::time::timeout(Duration::from_millis(250), envelopes.next()).await {
                Ok(Some(Envelope::Missed { .. })) => told = true,
                Ok(Some(got @ Envelope::InvalidateGroup { .. })) => {
                    assert!(told, "{got:?} arrived after the restart before `Missed`");
                    break;
                }
                // The engine's own broadcasts (its login's `Kick`) reach this node too.
                Ok(Some(Envelope::Kick { .. })) | Err(_) => {}
                Ok(other) => panic!("unexpected: {other:?}"),
            }
            assert!(
                Instant::now() < deadline,
                "nothing got through within 30 s of the restart"
            );
            n += 1;
        }
        // And the engine told its session to resync.
        loop {
            match tokio::time::timeout(Duration::from_secs(30), alice_events.next()).await {
                Ok(Some(im_core::protocol::Event::Resync { .. })) => break,
                Ok(Some(_)) => {}
                other => panic!("alice was not told to resync: {other:?}"),
            }
        }
        engine.shutdown().await;
        // In order from then on.
        for m in 1000..1010 {
            broker.publish(&node, envelope(m)).await.expect("publish");
        }
        let mut got = Vec::new();
        while got.len() < 10 {
            match tokio::time::timeout(Duration::from_secs(5), envelopes.next()).await {
                Ok(Some(Envelope::InvalidateGroup { group, .. })) if group.0 >= 1000 => {
                    got.push(group.0)
                }
                Ok(Some(_)) => {}
                other => panic!("the subscription did not resume: {other:?}"),
            }
        }
        assert_eq!(got, (1000..1010).collect::<Vec<_>>());

        // The scripts were lost with the restart: presence loads them again.
        let entry = im_core::presence::PresenceEntry {
            user: im_core::model::UserId(1),
            device: im_core::model::DeviceId::new("d").expect("id"),
            platform: im_core::model::Platform::Web,
            node: node.clone(),
            since: im_core::model::Timestamp::now(),
        };
        presence
            .set_online(&[entry], Duration::from_secs(30))
            .await
            .expect("set_online after the restart");
        assert_eq!(
            presence
                .online(&[im_core::model::UserId(1)])
                .await
                .expect("online after the restart")
                .len(),
            1
        );
    });
    drop(server);
}
