//! Two chat-server processes in cluster mode (`--redis`) on one PostgreSQL database:
//! users connected to different nodes befriend each other, chat both ways and see each
//! other's typing, a group message reaches members on both nodes, and a device revoked
//! on one node is kicked from the other. Needs `IM_TEST_POSTGRES_URL` and
//! `IM_TEST_REDIS_URL` (`.ci/run` sets both); without them it says so and passes.

mod common;

use std::net::SocketAddr;
use std::process::Command;

use common::Server;
use std::time::Duration;

use im_core::client::{Client, Events};
use im_core::model::{ConversationId, DeviceId, Message};
use im_core::protocol::{Event, Request};
use im_transport_tcp::{TcpConfig, connect};

const PASSWORD: &str = "correct horse battery";

/// Starts a node on `database` and `redis`, returning it and its TCP address.
fn start(database: &str, redis: &str, uploads: &std::path::Path) -> (Server, SocketAddr) {
    let prefix = format!("im-cluster-test-{}", std::process::id());
    let uploads = uploads.to_string_lossy();
    common::start([
        "--database",
        database,
        "--redis",
        redis,
        "--redis-prefix",
        &prefix,
        "--hash-memory-kib",
        "1024",
        "--hash-iterations",
        "1",
        "--uploads",
        &uploads,
    ])
}

async fn client(addr: SocketAddr) -> (Client, Events) {
    let conn = connect(addr, &TcpConfig::default()).await.unwrap();
    Client::connect(conn).await.unwrap()
}

/// The next event that `pick` accepts, within 10 s.
async fn next_event<T>(events: &mut Events, mut pick: impl FnMut(Event) -> Option<T>) -> T {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.next()).await {
            Ok(Some(event)) => {
                if let Some(found) = pick(event) {
                    return found;
                }
            }
            other => panic!("not within 10 s: {other:?}"),
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

fn database_name() -> String {
    format!("im_cluster_{}", std::process::id())
}

/// Runs statements on the PostgreSQL server of `server` (a URL with a database).
async fn admin(server: &str, statements: &[String]) {
    use sea_orm::{ConnectionTrait, Database};
    let admin = Database::connect(server).await.expect("reach PostgreSQL");
    for sql in statements {
        admin.execute_unprepared(sql).await.expect(sql);
    }
}

/// A fresh, empty PostgreSQL database named after this process, as a URL.
async fn fresh_database(server: &str) -> String {
    let name = database_name();
    admin(
        server,
        &[
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ],
    )
    .await;
    let (base, _) = server.rsplit_once('/').expect("a database in the URL");
    format!("{base}/{name}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_serve_as_one() {
    let (Ok(postgres), Ok(redis)) = (
        std::env::var("IM_TEST_POSTGRES_URL"),
        std::env::var("IM_TEST_REDIS_URL"),
    ) else {
        eprintln!(
            "SKIPPED: IM_TEST_POSTGRES_URL and IM_TEST_REDIS_URL are needed for cluster mode"
        );
        return;
    };
    let database = fresh_database(&postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let (node_a, a) = start(&database, &redis, &dir.path().join("a"));
    let (node_b, b) = start(&database, &redis, &dir.path().join("b"));

    let (alice, mut alice_events) = client(a).await;
    let (bob, mut bob_events) = client(b).await;
    let (tablet, mut tablet_events) = client(b).await;
    let alice_id = alice.register("alice", PASSWORD, "Alice").await.unwrap().id;
    let bob_id = bob.register("bob", PASSWORD, "Bob").await.unwrap().id;
    alice.login("alice", PASSWORD, "phone").await.unwrap();
    bob.login("bob", PASSWORD, "laptop").await.unwrap();
    tablet.login("alice", PASSWORD, "tablet").await.unwrap();

    alice.request_friend(bob_id, "hi").await.unwrap();
    next_event(&mut bob_events, |e| match e {
        Event::FriendRequest { request } => (request.from == alice_id).then_some(()),
        _ => None,
    })
    .await;
    bob.accept_friend(alice_id).await.unwrap();
    next_event(&mut alice_events, |e| match e {
        Event::FriendAdded { user } => (user == bob_id).then_some(()),
        _ => None,
    })
    .await;

    // Direct messages both ways, and Alice's tablet on B sees hers.
    let chat = ConversationId::direct(alice_id, bob_id);
    let sent = alice.send_text(chat, "from node a").await.unwrap();
    assert_eq!(next_message(&mut bob_events).await.seq, sent.seq);
    assert_eq!(next_message(&mut tablet_events).await.seq, sent.seq);
    let reply = bob.send_text(chat, "from node b").await.unwrap();
    assert_eq!(next_message(&mut alice_events).await.seq, reply.seq);

    // Typing crosses too.
    bob.call(Request::Typing {
        conversation: chat,
        active: true,
    })
    .await
    .unwrap();
    next_event(&mut alice_events, |e| match e {
        Event::Typing { user, .. } => (user == bob_id).then_some(()),
        _ => None,
    })
    .await;

    // A group message reaches members on both nodes.
    let group = bob.create_group("both nodes", &[alice_id]).await.unwrap();
    let g = ConversationId::Group(group.id);
    let posted = bob.send_text(g, "hello group").await.unwrap();
    let seen = loop {
        let m = next_message(&mut alice_events).await;
        if m.seq == posted.seq && m.conversation == g {
            break m;
        }
    };
    assert_eq!(seen.sender, bob_id);

    // Alice revokes her tablet from node A: its session on node B is kicked.
    alice
        .call(Request::RevokeDevice {
            device: DeviceId::new("tablet").unwrap(),
        })
        .await
        .unwrap();
    next_event(&mut tablet_events, |e| match e {
        Event::Kicked { .. } => Some(()),
        _ => None,
    })
    .await;

    drop((node_a, node_b));
    admin(
        &postgres,
        &[format!("DROP DATABASE {} WITH (FORCE)", database_name())],
    )
    .await;
}

/// Cluster mode on a database that only one process can see is refused, with the reason.
#[test]
fn cluster_mode_refuses_a_database_the_nodes_cannot_share() {
    for database in ["memory", "sqlite://im-cluster-refused.db?mode=rwc"] {
        let out = Command::new(env!("CARGO_BIN_EXE_chat-server"))
            .args(["--tcp", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .args(["--database", database, "--redis", "redis://127.0.0.1:1"])
            .output()
            .expect("the server binary runs");
        assert!(!out.status.success(), "{database}: started anyway");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("needs a database every node shares"),
            "{database}: {stderr}"
        );
    }
    assert!(
        !std::path::Path::new("im-cluster-refused.db").exists(),
        "the refused SQLite file was created"
    );
}

/// A Redis that cannot be reached stops the start, naming it.
#[test]
fn cluster_mode_without_redis_does_not_start() {
    let out = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .args(["--tcp", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .args(["--database", "postgres://nobody@127.0.0.1:1/none"])
        .args(["--redis", "redis://127.0.0.1:1"])
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("the server binary runs");
    assert!(!out.status.success(), "started without Redis");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("connecting to Redis at redis://127.0.0.1:1"),
        "{stderr}"
    );
}
