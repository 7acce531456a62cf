//! Two chat-server processes in cluster mode (`--redis`) on one PostgreSQL database:
//! users connected to different nodes befriend each other, chat both ways and see each
//! other's typing, a group message reaches members on both nodes, and a device revoked
//! on one node is kicked from the other. Needs `IM_TEST_POSTGRES_URL` and
//! `IM_TEST_REDIS_URL` (`.ci/run` sets both); without them it says so and passes.
//! Built with the features `postgres` and `redis` (`--all-features`, as CI runs it).
#![cfg(all(feature = "postgres", feature = "redis"))]

mod common;

use im_core::protocol::request;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Server;

use im_core::client::{Client, Events};
use im_core::model::{Body, ConversationId, DeviceId, Message, Seq, UserId};
use im_core::protocol::{Event, HistoryQuery, Signal};
use im_transport_tcp::{TcpConfig, connect};

const PASSWORD: &str = "correct horse battery";

/// Starts a node on `database` and `redis` (keys under a prefix named after `test`),
/// with `extra` flags, returning it and its TCP address.
fn start(
    test: &str,
    database: &str,
    redis: &str,
    uploads: &std::path::Path,
    extra: &[&str],
) -> (Server, SocketAddr) {
    let prefix = format!("im-cluster-{test}-{}", std::process::id());
    let uploads = uploads.to_string_lossy();
    let mut args = vec![
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
        "--sends-per-second",
        "1000",
        "--uploads",
        &uploads,
    ];
    args.extend_from_slice(extra);
    common::start(args)
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

fn database_name(test: &str) -> String {
    format!("im_cluster_{test}_{}", std::process::id())
}

/// Runs statements on the PostgreSQL server of `server` (a URL with a database).
async fn admin(server: &str, statements: &[String]) {
    use sea_orm::{ConnectionTrait, Database};
    let admin = Database::connect(server).await.expect("reach PostgreSQL");
    for sql in statements {
        admin.execute_unprepared(sql).await.expect(sql);
    }
}

/// The PostgreSQL and Redis URLs the cluster tests need, or `None` (said loudly).
fn services() -> Option<(String, String)> {
    match (
        std::env::var("IM_TEST_POSTGRES_URL"),
        std::env::var("IM_TEST_REDIS_URL"),
    ) {
        (Ok(postgres), Ok(redis)) => Some((postgres, redis)),
        _ => {
            eprintln!(
                "SKIPPED: IM_TEST_POSTGRES_URL and IM_TEST_REDIS_URL are needed for cluster mode"
            );
            None
        }
    }
}

/// Drops the database [`fresh_database`] made for `test`.
async fn drop_database(server: &str, test: &str) {
    admin(
        server,
        &[format!(
            "DROP DATABASE {} WITH (FORCE)",
            database_name(test)
        )],
    )
    .await;
}

/// A fresh, empty PostgreSQL database named after `test` and this process, as a URL.
async fn fresh_database(server: &str, test: &str) -> String {
    let name = database_name(test);
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
    let Some((postgres, redis)) = services() else {
        return;
    };
    let database = fresh_database(&postgres, "two").await;
    let dir = tempfile::tempdir().unwrap();
    let (node_a, a) = start("two", &database, &redis, &dir.path().join("a"), &[]);
    let (node_b, b) = start("two", &database, &redis, &dir.path().join("b"), &[]);

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
    bob.call(request::Typing {
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
        .call(request::RevokeDevice {
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
    drop_database(&postgres, "two").await;
}

/// What a collector saw on one client's event stream, with when.
#[derive(Debug, Default)]
struct Seen {
    /// Client ids of the messages pushed.
    pushed: HashSet<String>,
    /// Presence events: who, online or not, when.
    presence: Vec<(UserId, bool, Instant)>,
}

/// Records `events` into `seen` until the stream ends.
fn collect(mut events: Events) -> (Arc<Mutex<Seen>>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let task = tokio::spawn({
        let seen = seen.clone();
        async move {
            while let Some(event) = events.next().await {
                let mut seen = seen.lock().unwrap();
                match event {
                    Event::Message { message } => {
                        seen.pushed.insert(message.client_id);
                    }
                    Event::Presence { user, online, .. } => {
                        seen.presence.push((user, online, Instant::now()))
                    }
                    _ => {}
                }
            }
        }
    });
    (seen, task)
}

/// Every stored message of `conversation`, read by `client`, checked gapless.
async fn stored(client: &Client, conversation: ConversationId) -> Vec<Message> {
    let mut all: Vec<Message> = Vec::new();
    loop {
        let query = HistoryQuery {
            after: Some(all.last().map_or(Seq::ZERO, |m| m.seq)),
            before: None,
            limit: Some(200),
        };
        let (page, more) = client.history(conversation, query).await.unwrap();
        all.extend(page);
        if !more {
            break;
        }
    }
    for (i, m) in all.iter().enumerate() {
        assert_eq!(m.seq.0, i as u64 + 1, "a gap in {conversation:?}");
    }
    all
}

/// Sends `count` messages as `who`, alternating over `targets`, with client ids
/// `<who>-<n>`; a send that fails (its node died) is retried with the same id on a
/// session resumed through `fallback` with `token`. Returns the acknowledged client ids
/// per conversation, and how many times it had to resume.
async fn send_all(
    mut session: Client,
    who: &'static str,
    targets: Vec<ConversationId>,
    count: usize,
    fallback: SocketAddr,
    token: String,
) -> (Vec<(ConversationId, String)>, usize, Client) {
    let mut acked = Vec::new();
    let mut resumed = 0;
    let mut i = 0;
    while i < count {
        let conversation = targets[i % targets.len()];
        let id = format!("{who}-{i}");
        let body = Body::Text { text: id.clone() };
        match session.send(conversation, &id, body).await {
            Ok(_) => {
                acked.push((conversation, id));
                i += 1;
                tokio::time::sleep(Duration::from_millis(4)).await;
            }
            Err(e) => {
                assert!(!token.is_empty(), "{who}: a send failed: {e}");
                assert!(resumed < 3, "{who}: sends keep failing: {e}");
                resumed += 1;
                let (again, events) = client(fallback).await;
                again.resume(&token).await.expect("resume on another node");
                drain(events);
                session = again;
            }
        }
    }
    (acked, resumed, session)
}

/// Reads and drops `events` until the stream ends, so the client never stalls on them.
fn drain(mut events: Events) {
    tokio::spawn(async move { while events.next().await.is_some() {} });
}

async fn logged_in(addr: SocketAddr, name: &str, device: &str) -> (Client, Events, UserId, String) {
    let (c, events) = client(addr).await;
    let id = c.register(name, PASSWORD, name).await.unwrap().id;
    let session = c.login(name, PASSWORD, device).await.unwrap();
    (
        c,
        events,
        id,
        session.token.expect("a login returns a token"),
    )
}

async fn befriend(a: &Client, a_id: UserId, b: &Client, b_id: UserId) {
    a.request_friend(b_id, "").await.unwrap();
    b.accept_friend(a_id).await.unwrap();
}

/// Three nodes on PostgreSQL and Redis with clients spread over them: direct and group
/// chat, receipts, typing, presence, a call signal and a device kick cross nodes. Then,
/// mid-traffic, node A is SIGKILLed: Alice's client resumes on node B and carries on,
/// and afterwards every acknowledged message is stored, gapless, and reaches every
/// recipient (pushed, or by sync): lost = 0. Dave, who was on A and does not come back,
/// is announced offline to his friend Bob on B within the lease (plus a claim period and
/// Redis's one-second margin); Alice, back on B at once, is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_lose_nothing_when_one_is_killed() {
    let Some((postgres, redis)) = services() else {
        return;
    };
    const TTL_SECS: u64 = 2;
    const MESSAGES: usize = 150;
    let database = fresh_database(&postgres, "kill").await;
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--presence-ttl", "2s", "--presence-grace", "1s"];
    let (mut node_a, a) = start("kill", &database, &redis, &dir.path().join("a"), &flags);
    let (node_b, b) = start("kill", &database, &redis, &dir.path().join("b"), &flags);
    let (node_c, c) = start("kill", &database, &redis, &dir.path().join("c"), &flags);

    // Alice and Dave on A, Bob on B, Carol on C.
    let (alice, mut alice_events, alice_id, alice_token) = logged_in(a, "alice", "phone").await;
    let (dave, dave_events, dave_id, _) = logged_in(a, "dave", "phone").await;
    let (bob, mut bob_events, bob_id, _) = logged_in(b, "bob", "laptop").await;
    let (carol, carol_events, carol_id, _) = logged_in(c, "carol", "laptop").await;
    drain(dave_events);
    befriend(&alice, alice_id, &bob, bob_id).await;
    befriend(&alice, alice_id, &carol, carol_id).await;
    befriend(&dave, dave_id, &bob, bob_id).await;
    befriend(&bob, bob_id, &carol, carol_id).await;
    let ab = ConversationId::direct(alice_id, bob_id);
    let bc = ConversationId::direct(bob_id, carol_id);

    // A direct message from A reaches B; Bob's read receipt comes back to A.
    let sent = alice.send_text(ab, "hello from a").await.unwrap();
    let got = loop {
        let m = next_message(&mut bob_events).await;
        if m.conversation == ab {
            break m;
        }
    };
    assert_eq!(got.seq, sent.seq);
    bob.mark_read(ab, sent.seq).await.unwrap();
    next_event(&mut alice_events, |e| match e {
        Event::Receipt { user, seq, .. } => (user == bob_id && seq == sent.seq).then_some(()),
        _ => None,
    })
    .await;
    // Typing from C reaches B; B sees C online.
    carol.typing(bc, true).await.unwrap();
    next_event(&mut bob_events, |e| match e {
        Event::Typing { user, .. } => (user == carol_id).then_some(()),
        _ => None,
    })
    .await;
    let status = bob.presence(&[carol_id, alice_id]).await.unwrap();
    assert!(status.iter().all(|s| s.online), "{status:?}");
    // A call signal from B rings Alice's phone on A.
    let online = bob
        .signal(
            alice_id,
            Some(DeviceId::new("phone").unwrap()),
            "call-1",
            Signal::Offer {
                sdp: "v=0".into(),
                video: false,
            },
        )
        .await
        .unwrap();
    assert!(online);
    next_event(&mut alice_events, |e| match e {
        Event::Signal { from, call_id, .. } => {
            (from == bob_id && call_id == "call-1").then_some(())
        }
        _ => None,
    })
    .await;
    // Alice's tablet on C is kicked when she revokes it from A.
    let (tablet, mut tablet_events) = client(c).await;
    tablet.login("alice", PASSWORD, "tablet").await.unwrap();
    alice
        .revoke_device(&DeviceId::new("tablet").unwrap())
        .await
        .unwrap();
    next_event(&mut tablet_events, |e| match e {
        Event::Kicked { .. } => Some(()),
        _ => None,
    })
    .await;
    // A group over the three nodes.
    let group = bob
        .create_group("three nodes", &[alice_id, carol_id, dave_id])
        .await
        .unwrap();
    let g = ConversationId::Group(group.id);
    let posted = bob.send_text(g, "hello all").await.unwrap();
    let reached = loop {
        let m = next_message(&mut alice_events).await;
        if m.conversation == g && m.seq == posted.seq {
            break m;
        }
    };
    assert_eq!(reached.sender, bob_id);

    // Traffic from every node; A dies in the middle of it.
    drain(alice_events);
    let (bob_seen, _bob_task) = collect(bob_events);
    let (carol_seen, _carol_task) = collect(carol_events);
    let alice_send = tokio::spawn(send_all(
        alice,
        "alice",
        vec![ab, g],
        MESSAGES,
        b,
        alice_token,
    ));
    let bob_send = tokio::spawn(send_all(bob, "bob", vec![g], MESSAGES, b, String::new()));
    let carol_send = tokio::spawn(send_all(
        carol,
        "carol",
        vec![bc],
        MESSAGES,
        c,
        String::new(),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    node_a.0.kill().expect("SIGKILL node A");
    let killed = Instant::now();
    node_a.0.wait().expect("node A is gone");
    let (alice_acked, alice_resumed, alice) = alice_send.await.unwrap();
    let (bob_acked, _, bob) = bob_send.await.unwrap();
    let (carol_acked, _, carol) = carol_send.await.unwrap();
    assert!(alice_resumed >= 1, "Alice's sends never crossed the kill");

    // Bob hears that Dave went offline, once the claim of A comes round.
    let deadline = Duration::from_secs(TTL_SECS * 2 + 5);
    let dave_offline = loop {
        let at = bob_seen
            .lock()
            .unwrap()
            .presence
            .iter()
            .find(|&&(u, online, at)| u == dave_id && !online && at > killed)
            .map(|&(_, _, at)| at);
        if let Some(at) = at {
            break at.duration_since(killed);
        }
        assert!(
            killed.elapsed() < deadline,
            "Bob was not told within {deadline:?} that Dave went offline"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Long enough for a claim to have decided about Alice too.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let alice_said_offline = bob_seen
        .lock()
        .unwrap()
        .presence
        .iter()
        .any(|&(u, online, at)| u == alice_id && !online && at > killed);
    assert!(!alice_said_offline, "Alice came back on B at once");

    // Every acknowledged message is stored, and reached each of its recipients.
    let history: HashMap<ConversationId, Vec<Message>> = HashMap::from([
        (ab, stored(&bob, ab).await),
        (bc, stored(&bob, bc).await),
        (g, stored(&bob, g).await),
    ]);
    let stored_ids: HashSet<(ConversationId, &str)> = history
        .iter()
        .flat_map(|(c, ms)| ms.iter().map(move |m| (*c, m.client_id.as_str())))
        .collect();
    let sent = 3 * MESSAGES;
    let acked: Vec<(ConversationId, String, &str)> = alice_acked
        .into_iter()
        .map(|(c, id)| (c, id, "alice"))
        .chain(bob_acked.into_iter().map(|(c, id)| (c, id, "bob")))
        .chain(carol_acked.into_iter().map(|(c, id)| (c, id, "carol")))
        .collect();
    let stored_count = acked
        .iter()
        .filter(|(c, id, _)| stored_ids.contains(&(*c, id.as_str())))
        .count();
    // Recipients: everyone in the conversation but the sender (Dave never came back).
    let members = |c: ConversationId| -> Vec<&'static str> {
        if c == ab {
            vec!["alice", "bob"]
        } else if c == bc {
            vec!["bob", "carol"]
        } else {
            vec!["alice", "bob", "carol"]
        }
    };
    // What each recipient reads back (Alice on B, where she resumed).
    let bob_history: HashSet<String> = history
        .values()
        .flatten()
        .map(|m| m.client_id.clone())
        .collect();
    let alice_history: HashSet<String> = stored(&alice, ab)
        .await
        .into_iter()
        .chain(stored(&alice, g).await)
        .map(|m| m.client_id)
        .collect();
    let carol_history: HashSet<String> = stored(&carol, bc)
        .await
        .into_iter()
        .chain(stored(&carol, g).await)
        .map(|m| m.client_id)
        .collect();
    let (mut deliveries, mut delivered, mut by_push) = (0, 0, 0);
    for (c, id, sender) in &acked {
        for member in members(*c).into_iter().filter(|m| m != sender) {
            deliveries += 1;
            let pushed = match member {
                "bob" => bob_seen.lock().unwrap().pushed.contains(id),
                "carol" => carol_seen.lock().unwrap().pushed.contains(id),
                _ => false,
            };
            let reachable = match member {
                "alice" => alice_history.contains(id),
                "carol" => carol_history.contains(id),
                _ => bob_history.contains(id),
            };
            by_push += usize::from(pushed);
            delivered += usize::from(pushed || reachable);
        }
    }
    let lost = (acked.len() - stored_count) + (deliveries - delivered);
    println!(
        "cluster kill: sent {sent}, acked {}, stored {stored_count}, delivered {delivered} of \
         {deliveries} ({by_push} by push to live nodes, the rest by sync), lost {lost}; \
         Alice resumed {alice_resumed} time(s); Dave offline for Bob {:.1} s after the kill",
        acked.len(),
        dave_offline.as_secs_f64()
    );
    assert_eq!(
        acked.len(),
        sent,
        "every message is acknowledged in the end"
    );
    assert_eq!(lost, 0);

    drop((node_b, node_c, tablet));
    drop_database(&postgres, "kill").await;
}

/// A `redis-server` of the test's own on a free loopback port, killed when dropped.
struct OwnRedis {
    port: u16,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl OwnRedis {
    /// Starts one, or `None` (said loudly) where `redis-server` is not installed.
    fn start() -> Option<OwnRedis> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = tempfile::tempdir().unwrap();
        let child = OwnRedis::spawn(port, dir.path())?;
        Some(OwnRedis {
            port,
            child,
            _dir: dir,
        })
    }

    fn spawn(port: u16, dir: &std::path::Path) -> Option<std::process::Child> {
        let Ok(child) = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .spawn()
        else {
            eprintln!("SKIPPED: redis-server is not installed; a Redis restart is not tested");
            return None;
        };
        // Up once it accepts connections.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(child)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL, then a fresh start on the same port: everything it held is gone.
    fn restart_after(&mut self, down: Duration) {
        self.child.kill().expect("kill redis-server");
        self.child.wait().expect("redis-server is gone");
        std::thread::sleep(down);
        self.child = OwnRedis::spawn(self.port, self._dir.path()).expect("restart redis-server");
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET /healthz` of the node at `http`: the status code and the body.
async fn health(http: SocketAddr) -> (u16, serde_json::Value) {
    let response = reqwest::get(format!("http://{http}/healthz"))
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Redis (one this test started) is killed and started afresh while Bob, on node B,
/// sends to Alice, on node A: `/healthz` says Redis is unreachable meanwhile, every send
/// is acknowledged and stored, Alice is told to `resync` once the broker is back,
/// delivery by push resumes by itself, and nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_mid_traffic_loses_nothing() {
    let Ok(postgres) = std::env::var("IM_TEST_POSTGRES_URL") else {
        eprintln!("SKIPPED: IM_TEST_POSTGRES_URL is needed for cluster mode");
        return;
    };
    let Some(mut redis) = OwnRedis::start() else {
        return;
    };
    const MESSAGES: usize = 200;
    let database = fresh_database(&postgres, "redis").await;
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("im-cluster-redis-{}", std::process::id());
    let node = |name: &str| {
        let uploads = dir.path().join(name);
        common::start_both([
            "--database",
            database.as_str(),
            "--redis",
            redis.url().as_str(),
            "--redis-prefix",
            prefix.as_str(),
            "--hash-memory-kib",
            "1024",
            "--hash-iterations",
            "1",
            "--presence-ttl",
            "2s",
            "--sends-per-second",
            "1000",
            "--uploads",
            uploads.to_str().unwrap(),
        ])
    };
    let (node_a, a, a_http) = node("a");
    let (node_b, b, _) = node("b");
    let (status, body) = health(a_http).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["database"]["ok"], true, "{body}");
    assert_eq!(body["redis"]["ok"], true, "{body}");

    let (alice, mut alice_events, alice_id, _) = logged_in(a, "alice", "phone").await;
    let (bob, _bob_events, bob_id, _) = logged_in(b, "bob", "laptop").await;
    befriend(&alice, alice_id, &bob, bob_id).await;
    let ab = ConversationId::direct(alice_id, bob_id);
    let first = bob.send_text(ab, "before").await.unwrap();
    assert_eq!(next_message(&mut alice_events).await.seq, first.seq);

    let pushed = Arc::new(Mutex::new(HashSet::new()));
    let resyncs = Arc::new(Mutex::new(Vec::new()));
    let _alice_task = tokio::spawn({
        let (pushed, resyncs) = (pushed.clone(), resyncs.clone());
        async move {
            while let Some(event) = alice_events.next().await {
                match event {
                    Event::Message { message } => {
                        pushed.lock().unwrap().insert(message.client_id);
                    }
                    Event::Resync { .. } => resyncs.lock().unwrap().push(Instant::now()),
                    _ => {}
                }
            }
        }
    });
    let sending = tokio::spawn(send_all(bob, "bob", vec![ab], MESSAGES, b, String::new()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let restart = tokio::task::spawn_blocking(move || {
        redis.restart_after(Duration::from_millis(1500));
        redis
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, body) = health(a_http).await;
    assert_eq!(status, 503, "Redis is down: {body}");
    assert_eq!(body["status"], "unavailable", "{body}");
    assert_eq!(body["redis"]["ok"], false, "{body}");
    assert_eq!(body["database"]["ok"], true, "{body}");
    let _redis = restart.await.unwrap();
    let restarted = Instant::now();
    let (acked, resumed, bob) = sending.await.unwrap();
    assert_eq!(resumed, 0, "Bob's node stayed up");

    // Alice was told to resync once the broker was back, and pushes flow again.
    let deadline = Instant::now() + Duration::from_secs(15);
    while resyncs.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "Alice was never told to resync");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let told = resyncs.lock().unwrap()[0].saturating_duration_since(restarted);
    let after = loop {
        let sent = bob
            .send(
                ab,
                "after-restart",
                Body::Text {
                    text: "after".into(),
                },
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        if pushed.lock().unwrap().contains("after-restart") {
            break sent;
        }
        assert!(Instant::now() < deadline, "pushes did not resume");
    };
    let (status, body) = health(a_http).await;
    assert_eq!(status, 200, "{body}");

    // Everything acknowledged is stored, and Alice has it (pushed, or on her resync).
    let history: HashSet<String> = stored(&alice, ab)
        .await
        .into_iter()
        .map(|m| m.client_id)
        .collect();
    let stored_count = acked.iter().filter(|(_, id)| history.contains(id)).count();
    let by_push = acked
        .iter()
        .filter(|(_, id)| pushed.lock().unwrap().contains(id))
        .count();
    let lost = acked.len() - stored_count;
    println!(
        "redis restart: sent {MESSAGES}, acked {}, stored {stored_count}, pushed {by_push}, \
         the rest read on resync; lost {lost}; resync told {:.1} s after Redis was back; \
         first push after it at seq {}",
        acked.len(),
        told.as_secs_f64(),
        after.seq.0
    );
    assert_eq!(acked.len(), MESSAGES);
    assert_eq!(lost, 0);

    drop((node_a, node_b));
    drop_database(&postgres, "redis").await;
}

/// `/healthz` names the database when it stops answering: a node on a PostgreSQL
/// database that is then dropped (its connections ended) answers 503 with the database's
/// error, and has no Redis part outside cluster mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_names_a_database_that_stopped_answering() {
    let Some((postgres, _)) = services() else {
        return;
    };
    let database = fresh_database(&postgres, "health").await;
    let dir = tempfile::tempdir().unwrap();
    let uploads = dir.path().join("up");
    let (node, _, http) = common::start_both([
        "--database",
        database.as_str(),
        "--uploads",
        uploads.to_str().unwrap(),
    ]);
    let (status, body) = health(http).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["database"]["ok"], true, "{body}");
    assert!(body.get("redis").is_none(), "{body}");
    drop_database(&postgres, "health").await;
    let (status, body) = health(http).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unavailable", "{body}");
    assert_eq!(body["database"]["ok"], false, "{body}");
    drop(node);
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
