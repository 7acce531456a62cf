//! The engine fanning one group message out to N local sessions (N = 10, 100, 1,000).
//!
//! This is the path every group message takes (`engine/fanout.rs`): the send is
//! authorised and stored, the push is encoded once, and the same bytes are queued to
//! each member's session, whose writer hands them to its connection. One iteration is
//! one `send` by a member (a `Client`) until every one of the N other members has read
//! the push from its in-process connection. The receivers are bare `DuplexConnection`s
//! drained by tasks that only count frames, so the time measured is the server's, not a
//! client's decoding. Throughput is deliveries (N per iteration).
//!
//! The engine runs on the in-memory adapters and a 2-worker tokio runtime; registering,
//! logging in and creating the group happen before the timed part.
//!
//! Run with `cargo bench -p im-core --bench fanout`.

use im_core::protocol::reply;
use im_core::protocol::request;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures::{SinkExt, StreamExt};
use im_core::auth::HashCost;
use im_core::client::{Client, Events, new_client_id};
use im_core::engine::{DirectPolicy, RateLimits};
use im_core::model::{Body, ConversationId, DeviceId, Platform, UserId};
use im_core::protocol::{
    ClientFrame, Codec, DeviceInfo, Event, PROTOCOL_VERSION, Reply, Request, ServerFrame,
};
use im_core::transport::{DuplexConnection, duplex};
use im_core::{Engine, EngineConfig};
use tokio::runtime::Runtime;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

const PASSWORD: &str = "correct horse battery";

/// Group sizes (receivers, besides the sender).
const SIZES: [u64; 3] = [10, 100, 1_000];

/// Frames each in-process connection buffers per direction.
const DUPLEX_CAPACITY: usize = 1024;

/// A group of `n` logged-in receivers and a sender, on one engine.
struct Room {
    engine: Engine,
    sender: Client,
    /// Kept so that the sender's connection task has somewhere to put its events.
    _sender_events: Events,
    conversation: ConversationId,
    n: u64,
    /// Frames read by all receivers together.
    delivered: Arc<AtomicU64>,
    /// Woken each time `delivered` reaches a multiple of `n`.
    all_in: Arc<Notify>,
    drains: Vec<JoinHandle<()>>,
}

fn config(n: u64) -> EngineConfig {
    EngineConfig::default()
        .with_hash_cost(HashCost::CHEAPEST)
        .with_rate_limits(RateLimits::unlimited())
        .with_direct_policy(DirectPolicy::Anyone)
        .with_max_group_members(n as usize + 16)
        // Receivers never send: keep the engine from closing them as idle mid-run.
        .with_idle_timeout(Duration::from_secs(3_600))
}

/// A fresh in-process connection served by `engine`; returns the client's end.
fn connect(engine: &Engine) -> DuplexConnection {
    let (server, client) = duplex(DUPLEX_CAPACITY);
    let engine = engine.clone();
    tokio::spawn(async move { engine.serve_connection(server).await });
    client
}

/// Sends `request` on a bare connection and returns its reply, skipping events.
async fn request(conn: &mut DuplexConnection, id: u64, request: Request) -> Reply {
    let frame = Codec::Json
        .encode(&ClientFrame { id, request })
        .expect("the request encodes");
    conn.send(frame).await.expect("the connection is open");
    loop {
        let bytes = tokio::time::timeout(Duration::from_secs(30), conn.next())
            .await
            .expect("a reply within 30 s")
            .expect("the connection is open")
            .expect("a whole frame");
        match Codec::Json.decode::<ServerFrame>(&bytes) {
            Ok(ServerFrame::Reply { id: got, reply }) if got == id => return reply,
            Ok(ServerFrame::Event { .. }) => continue,
            other => panic!("unexpected answer to request {id}: {other:?}"),
        }
    }
}

/// A bare connection, logged in as `username`.
async fn receiver(engine: &Engine, username: &str) -> DuplexConnection {
    let mut conn = connect(engine);
    let hello = Request::Hello(request::Hello {
        versions: vec![PROTOCOL_VERSION],
        client: "fanout-bench".to_owned(),
        codec: None,
    });
    let reply = request(&mut conn, 0, hello).await;
    assert!(
        matches!(reply, Reply::Hello(reply::Hello { .. })),
        "{reply:?}"
    );
    let login = Request::Login(request::Login {
        username: username.to_owned(),
        password: PASSWORD.to_owned(),
        device: DeviceInfo {
            id: DeviceId::new("bench").expect("a valid device id"),
            name: "bench".to_owned(),
            platform: Platform::Other,
        },
        proof: None,
    });
    let reply = request(&mut conn, 1, login).await;
    assert!(
        matches!(reply, Reply::Session(reply::Session { .. })),
        "{reply:?}"
    );
    conn
}

fn text() -> Body {
    Body::Text {
        text: "x".repeat(100),
    }
}

impl Room {
    async fn new(n: u64) -> Room {
        let engine = Engine::builder()
            .config(config(n))
            .start()
            .await
            .expect("the engine starts");

        // Accounts: the sender and the receivers, registered over one connection.
        let (admin, _admin_events) = Client::connect(connect(&engine))
            .await
            .expect("hello succeeds");
        admin
            .register("sender", PASSWORD, "Sender")
            .await
            .expect("registration succeeds");
        let mut members: Vec<UserId> = Vec::with_capacity(n as usize);
        for i in 0..n {
            let name = format!("recv{i}");
            let user = admin
                .register(&name, PASSWORD, &name)
                .await
                .expect("registration succeeds");
            members.push(user.id);
        }
        drop(admin);

        let (sender, sender_events) = Client::connect(connect(&engine))
            .await
            .expect("hello succeeds");
        sender
            .login("sender", PASSWORD, "bench")
            .await
            .expect("login succeeds");
        let group = sender
            .call(request::CreateGroup {
                name: "fanout".to_owned(),
                members,
                open: true,
            })
            .await
            .expect("the group is created");
        let conversation = ConversationId::Group(group.group.id);

        // Receivers log in after the group exists, so nothing is pending for them.
        let mut receivers = Vec::with_capacity(n as usize);
        for i in 0..n {
            receivers.push(receiver(&engine, &format!("recv{i}")).await);
        }

        // One message outside the timed part: it warms the membership cache and the
        // group's room, and proves that each receiver's next frame is that push, so
        // counting frames counts deliveries.
        let client_id = new_client_id();
        sender
            .send(conversation, &client_id, text())
            .await
            .expect("the send succeeds");
        for conn in &mut receivers {
            let bytes = tokio::time::timeout(Duration::from_secs(30), conn.next())
                .await
                .expect("the push within 30 s")
                .expect("the connection is open")
                .expect("a whole frame");
            match Codec::Json.decode::<ServerFrame>(&bytes) {
                Ok(ServerFrame::Event {
                    event: Event::Message { message },
                }) if message.client_id == client_id => {}
                other => panic!("expected the message push, got {other:?}"),
            }
        }

        let delivered = Arc::new(AtomicU64::new(0));
        let all_in = Arc::new(Notify::new());
        let drains = receivers
            .into_iter()
            .map(|mut conn| {
                let delivered = delivered.clone();
                let all_in = all_in.clone();
                tokio::spawn(async move {
                    while let Some(Ok(_frame)) = conn.next().await {
                        if (delivered.fetch_add(1, Ordering::AcqRel) + 1).is_multiple_of(n) {
                            all_in.notify_one();
                        }
                    }
                })
            })
            .collect();

        Room {
            engine,
            sender,
            _sender_events: sender_events,
            conversation,
            n,
            delivered,
            all_in,
            drains,
        }
    }

    /// Sends one message per entry of `client_ids`, each time waiting until all `n`
    /// receivers have read its push; returns the time taken.
    async fn run(&self, client_ids: Vec<String>) -> Duration {
        let mut expected = self.delivered.load(Ordering::Acquire);
        let start = Instant::now();
        for client_id in client_ids {
            expected += self.n;
            self.sender
                .send(self.conversation, &client_id, text())
                .await
                .expect("the send succeeds");
            while self.delivered.load(Ordering::Acquire) < expected {
                self.all_in.notified().await;
            }
        }
        start.elapsed()
    }

    async fn close(self) {
        self.engine.shutdown().await;
        for drain in self.drains {
            drain.abort();
        }
    }
}

fn fanout(c: &mut Criterion) {
    let rt: Runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");

    let mut group = c.benchmark_group("fanout");
    for n in SIZES {
        let room = Arc::new(rt.block_on(Room::new(n)));
        group.throughput(Throughput::Elements(n));
        group.bench_with_input(BenchmarkId::new("group_send", n), &room, |b, room| {
            b.iter_custom(|iters| {
                // Client ids are made before the clock starts.
                let client_ids: Vec<String> = (0..iters).map(|_| new_client_id()).collect();
                let room = room.clone();
                // The timed loop runs on the runtime's workers, like the engine's tasks,
                // not on the bench thread.
                rt.block_on(rt.spawn(async move { room.run(client_ids).await }))
                    .expect("the timed loop does not panic")
            });
        });
        let room = Arc::into_inner(room).expect("the bench holds no other handle");
        rt.block_on(room.close());
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = fanout
}
criterion_main!(benches);
