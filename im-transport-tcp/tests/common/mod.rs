//! A server on 127.0.0.1:0 and helpers to drive clients against it.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::Duration;

use im_core::auth::HashCost;
use im_core::client::{Client, ClientConfig, ClientError, Events, Session};
use im_core::engine::RateLimits;
use im_core::model::{ConversationId, DeviceId, Message, Platform, Seq, UserId};
use im_core::protocol::{DeviceInfo, ErrorCode, Event};
use im_core::{Engine, EngineConfig};
use im_transport_tcp::{TcpConfig, TcpTransport, connect};

pub const PASSWORD: &str = "correct horse battery";
pub const WAIT: Duration = Duration::from_secs(10);

pub struct Server {
    pub engine: Engine,
    pub addr: SocketAddr,
    pub tcp: TcpConfig,
}

/// A cheap hash cost and no rate limits: the suites register many users from one address
/// and send in bursts, and neither is under test (`rate_limits.rs` tests the limits).
pub fn test_config() -> EngineConfig {
    EngineConfig::default()
        .with_hash_cost(HashCost::CHEAPEST)
        .with_rate_limits(RateLimits::unlimited())
}

pub async fn start(config: EngineConfig) -> Server {
    start_with(config, TcpConfig::default()).await
}

pub async fn start_with(config: EngineConfig, tcp: TcpConfig) -> Server {
    let engine = builder().await.config(config).start().await.unwrap();
    serve(engine, tcp).await
}

/// An engine builder on the storage under test: SQLite in memory, or the memory storage
/// with `IM_TEST_STORAGE=memory`.
pub async fn builder() -> im_core::EngineBuilder {
    let engine = Engine::builder();
    match std::env::var("IM_TEST_STORAGE").as_deref() {
        Ok("memory") => engine,
        _ => {
            let storage = im_store::SqlStorage::connect("sqlite::memory:")
                .await
                .unwrap();
            engine.storage(std::sync::Arc::new(storage))
        }
    }
}

/// Serves an engine built by the test (with hooks, say) on 127.0.0.1:0.
pub async fn serve(engine: Engine, tcp: TcpConfig) -> Server {
    let transport = TcpTransport::bind("127.0.0.1:0", tcp.clone())
        .await
        .unwrap();
    let addr = transport.local_addr();
    tokio::spawn({
        let engine = engine.clone();
        async move { engine.serve(&transport).await }
    });
    Server { engine, addr, tcp }
}

impl Server {
    pub async fn connect(&self) -> (Client, Events) {
        self.connect_with(TcpConfig::default(), ClientConfig::default())
            .await
    }

    pub async fn connect_with(&self, tcp: TcpConfig, config: ClientConfig) -> (Client, Events) {
        let conn = connect(self.addr, &tcp).await.unwrap();
        Client::connect_with(conn, config).await.unwrap()
    }

    /// Registers `name` and logs in from device `<name>-1`.
    pub async fn user(&self, name: &str) -> User {
        let (client, events) = self.connect().await;
        client.register(name, PASSWORD, name).await.unwrap();
        let session = client
            .login(name, PASSWORD, &format!("{name}-1"))
            .await
            .unwrap();
        User {
            id: session.user.id,
            client,
            events,
            session,
        }
    }

    /// Another device of an existing user.
    pub async fn device(&self, name: &str, device: &str) -> User {
        self.device_on(name, device, Platform::Other).await
    }

    /// Another device of an existing user, of a given platform.
    pub async fn device_on(&self, name: &str, device: &str, platform: Platform) -> User {
        let (client, events) = self.connect().await;
        let session = client
            .login_with(
                name,
                PASSWORD,
                DeviceInfo {
                    id: DeviceId::new(device).unwrap(),
                    name: String::new(),
                    platform,
                },
            )
            .await
            .unwrap();
        User {
            id: session.user.id,
            client,
            events,
            session,
        }
    }
}

pub struct User {
    pub id: UserId,
    pub client: Client,
    pub events: Events,
    pub session: Session,
}

impl User {
    /// The next event, failing the test after [`WAIT`].
    pub async fn event(&mut self) -> Event {
        tokio::time::timeout(WAIT, self.events.next())
            .await
            .expect("timed out waiting for an event")
            .expect("connection closed while waiting for an event")
    }

    /// The next pushed message, skipping other events.
    pub async fn message(&mut self) -> Message {
        loop {
            if let Event::Message { message } = self.event().await {
                return message;
            }
        }
    }

    /// Asserts that no event arrives within `ms` milliseconds.
    pub async fn quiet(&mut self, ms: u64) {
        if let Ok(e) = tokio::time::timeout(Duration::from_millis(ms), self.events.next()).await {
            panic!("expected no event, got {e:?}");
        }
    }

    pub fn direct(&self, other: &User) -> ConversationId {
        ConversationId::direct(self.id, other.id)
    }
}

/// Makes two users friends, checking the pushes on the way.
pub async fn befriend(a: &mut User, b: &mut User) {
    a.client.request_friend(b.id, "hi").await.unwrap();
    match b.event().await {
        Event::FriendRequest { request } => {
            assert_eq!((request.from, request.to), (a.id, b.id));
            assert_eq!(request.note, "hi");
        }
        other => panic!("expected a friend request, got {other:?}"),
    }
    b.client.accept_friend(a.id).await.unwrap();
    match a.event().await {
        Event::FriendAdded { user } => assert_eq!(user, b.id),
        other => panic!("expected friend_added, got {other:?}"),
    }
}

/// A group where one member joined late: `owner` made it with `early`, sent `before`,
/// added `late`, then sent `after`. `stranger` is in no group. For tests of what a late
/// member may and may not see.
pub struct LateJoin {
    pub owner: User,
    pub early: User,
    pub late: User,
    pub stranger: User,
    pub group: ConversationId,
    pub before: Seq,
    pub after: Seq,
}

pub async fn late_join(server: &Server) -> LateJoin {
    let mut owner = server.user("owner").await;
    let mut early = server.user("early").await;
    let mut late = server.user("late").await;
    let stranger = server.user("stranger").await;
    befriend(&mut owner, &mut early).await;
    befriend(&mut owner, &mut late).await;
    let group = owner
        .client
        .create_group("crew", &[early.id])
        .await
        .unwrap();
    let g = ConversationId::Group(group.id);
    let before = owner.client.send_text(g, "before").await.unwrap().seq;
    owner
        .client
        .add_members(group.id, &[late.id])
        .await
        .unwrap();
    let after = owner.client.send_text(g, "after").await.unwrap().seq;
    LateJoin {
        owner,
        early,
        late,
        stranger,
        group: g,
        before,
        after,
    }
}

/// The error code of a request that must be refused.
pub fn refused_with<T: std::fmt::Debug>(r: Result<T, ClientError>) -> Option<ErrorCode> {
    r.expect_err("refused").code()
}

pub fn text(m: &Message) -> &str {
    match &m.body {
        im_core::model::Body::Text { text } => text,
        other => panic!("expected text, got {other:?}"),
    }
}
