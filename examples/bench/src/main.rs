//! Benchmark programs. Each prints its figures; `docs/benchmarks.md` records them with
//! the command that produced them.
//!
//! ```text
//! cargo run --release -p bench -- fanout --receivers 2000 --messages 200
//! cargo run --release -p bench -- fanout --receivers 2000 --messages 200 --write-batch 1
//! cargo run --release -p bench -- fanout --receivers 2000 --messages 200 --transport ws
//! cargo run --release -p bench -- send --senders 32 --messages 1000
//! cargo run --release -p bench -- send --senders 32 --messages 1000 --transport http
//! cargo run --release -p bench -- store --database sqlite:///tmp/bench.db?mode=rwc --writers 32
//! cargo run --release -p bench -- store --database postgres://postgres@127.0.0.1/test --writers 1
//! ```
//!
//! Server and clients share one process (and this machine's cores), over real TCP
//! sockets on 127.0.0.1 (`--transport` picks TCP frames, WebSocket or HTTP). Receivers in `fanout` only count frames, so the figure is the
//! server's fan-out cost, not JSON decoding in the clients.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use clap::{Parser, Subcommand, ValueEnum};
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use im_core::auth::HashCost;
use im_core::client::Client;
use im_core::engine::{DirectPolicy, RateLimits};
use im_core::model::{ConversationId, UserId};
use im_core::protocol::{Event, ServerFrame};
use im_core::transport::BoxConnection;
use im_core::{Engine, EngineConfig};
use im_transport_tcp::{TcpConfig, TcpTransport, connect};
use im_transport_ws::{Gateway, WsConfig};
use tokio::sync::Semaphore;

#[derive(Debug, Parser)]
#[command(about = "Benchmarks for the im engine")]
struct Args {
    #[command(subcommand)]
    bench: Bench,
}

/// How the benchmark's clients reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Transport {
    /// Length-prefixed frames over TCP.
    Tcp,
    /// WebSocket (`/ws`).
    Ws,
    /// HTTP/JSON requests (`/v1`), for `send` only: HTTP callers get no pushes.
    Http,
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// One sender, one group of N receivers: deliveries per second and push latency.
    Fanout {
        /// Group members receiving each message.
        #[arg(long, default_value_t = 1000)]
        receivers: usize,
        /// Messages sent to the group.
        #[arg(long, default_value_t = 200)]
        messages: u64,
        /// Sends in flight at once.
        #[arg(long, default_value_t = 32)]
        window: usize,
        /// Frames per flush in each connection's writer (1 = write and flush each frame).
        #[arg(long, default_value_t = 256)]
        write_batch: usize,
        /// How the receivers connect (the sender always uses TCP).
        #[arg(long, value_enum, default_value_t = Transport::Tcp)]
        transport: Transport,
    },
    /// Many senders, each in its own direct conversation: acknowledged sends per second.
    Send {
        /// Concurrent senders (one connection each).
        #[arg(long, default_value_t = 32)]
        senders: usize,
        /// Messages per sender, each awaiting its ack before the next.
        #[arg(long, default_value_t = 1000)]
        messages: u64,
        /// How the senders connect.
        #[arg(long, value_enum, default_value_t = Transport::Tcp)]
        transport: Transport,
    },
    /// Durable appends per second straight into `SqlStorage`, one writer or many.
    Store {
        /// The database (its tables are created if missing).
        #[arg(long, default_value = "sqlite:///tmp/im-bench.db?mode=rwc")]
        database: String,
        /// Concurrent writers, each awaiting its append before the next.
        #[arg(long, default_value_t = 32)]
        writers: usize,
        /// Appends in all.
        #[arg(long, default_value_t = 50_000)]
        messages: u64,
        /// Conversations the writers spread over (1: all into one).
        #[arg(long, default_value_t = 1)]
        conversations: usize,
    },
}

fn config() -> EngineConfig {
    // Registration is not what is measured: a cheap hash keeps set-up short.
    let mut config = EngineConfig::default()
        .with_hash_cost(HashCost::CHEAPEST)
        .with_direct_policy(DirectPolicy::Anyone)
        .with_max_group_members(1_000_000)
        .with_session_queue(8192)
        .with_session_queue_bytes(64 << 20)
        .with_write_timeout(Duration::from_secs(60))
        .with_rate_limits(RateLimits::unlimited());
    config.max_write_batch = 256;
    config
}

/// Where the benchmark server listens.
#[derive(Debug, Clone, Copy)]
struct Addrs {
    tcp: std::net::SocketAddr,
    http: std::net::SocketAddr,
}

async fn server(config: EngineConfig) -> anyhow::Result<(Engine, Addrs)> {
    let max_frame_bytes = config.max_frame_bytes;
    let engine = Engine::builder().config(config).start().await?;
    let transport = TcpTransport::bind("127.0.0.1:0", TcpConfig::default()).await?;
    let tcp = transport.local_addr();
    tokio::spawn({
        let engine = engine.clone();
        async move { engine.serve(&transport).await }
    });
    let ws = WsConfig::default().with_max_frame_bytes(max_frame_bytes);
    let gateway = Gateway::new(engine.clone(), ws, None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let http = listener.local_addr()?;
    tokio::spawn(warp::serve(gateway.filter()).incoming(listener).run());
    Ok((engine, Addrs { tcp, http }))
}

async fn connection(addrs: Addrs, transport: Transport) -> anyhow::Result<BoxConnection> {
    Ok(match transport {
        Transport::Tcp => Box::new(connect(addrs.tcp, &TcpConfig::default()).await?),
        Transport::Ws => {
            Box::new(im_transport_ws::connect(&format!("ws://{}/ws", addrs.http), 64 * 1024).await?)
        }
        Transport::Http => bail!("HTTP has no connections: use tcp or ws"),
    })
}

async fn client(addrs: Addrs, transport: Transport) -> anyhow::Result<Client> {
    let (client, events) = Client::connect(connection(addrs, transport).await?).await?;
    // Nobody reads these events; dropping the receiver discards them.
    drop(events);
    Ok(client)
}

/// A receiver that logs in over a raw connection and then only counts frames.
async fn raw_login(
    addrs: Addrs,
    transport: Transport,
    name: &str,
) -> anyhow::Result<BoxConnection> {
    let mut conn = connection(addrs, transport).await?;
    let hello = r#"{"id":0,"type":"hello","versions":[1]}"#.to_owned();
    let login = format!(
        r#"{{"id":1,"type":"login","username":"{name}","password":"benchmark password","device":{{"id":"bench"}}}}"#
    );
    conn.send(Bytes::from(hello)).await?;
    conn.send(Bytes::from(login)).await?;
    for _ in 0..2 {
        let frame = conn.next().await.context("closed during login")??;
        if let ServerFrame::Error { error, .. } = serde_json::from_slice(&frame)? {
            bail!("login failed: {error}");
        }
    }
    Ok(conn)
}

/// The send time a benchmark message carries (`t=<micros since start>`), decoding the frame.
fn sent_at(frame: &[u8]) -> Option<u64> {
    match serde_json::from_slice::<ServerFrame>(frame).ok()? {
        ServerFrame::Event {
            event: Event::Message { message },
        } => match message.body {
            im_core::model::Body::Text { text } => text.strip_prefix("t=")?.parse().ok(),
            _ => None,
        },
        _ => None,
    }
}

fn print_latency(name: &str, h: &Histogram<u64>) {
    println!(
        "{name}: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} samples)",
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.9) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.max() as f64 / 1000.0,
        h.len()
    );
}

async fn fanout(
    receivers: usize,
    messages: u64,
    window: usize,
    write_batch: usize,
    transport: Transport,
) -> anyhow::Result<()> {
    let mut config = config();
    config.max_write_batch = write_batch.max(1);
    let (engine, addrs) = server(config).await?;

    let admin = client(addrs, Transport::Tcp).await?;
    let mut ids = Vec::with_capacity(receivers);
    for i in 0..receivers {
        let user = admin
            .register(&format!("recv{i}"), "benchmark password", "receiver")
            .await?;
        ids.push(user.id);
    }
    admin
        .register("sender", "benchmark password", "sender")
        .await?;
    admin.login("sender", "benchmark password", "bench").await?;
    let group = admin.create_group("bench", &ids).await?;
    let g = ConversationId::Group(group.id);

    let start = Instant::now();
    let received = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(receivers);
    for i in 0..receivers {
        let mut conn = raw_login(addrs, transport, &format!("recv{i}")).await?;
        let received = received.clone();
        // Every 50th receiver decodes its frames to measure push latency.
        let sample = i % 50 == 0;
        tasks.push(tokio::spawn(async move {
            let mut latency = Histogram::<u64>::new(3).expect("histogram");
            let mut got = 0;
            while got < messages {
                let Some(Ok(frame)) = conn.next().await else {
                    break;
                };
                if sample {
                    if let Some(sent) = sent_at(&frame) {
                        let now = start.elapsed().as_micros() as u64;
                        let _ = latency.record(now.saturating_sub(sent));
                        got += 1;
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                } else if frame.windows(3).any(|w| w == b"\"t=") {
                    got += 1;
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
            latency
        }));
    }
    println!(
        "{receivers} receivers connected over {transport:?}; sending {messages} messages, {window} in flight"
    );

    let permits = Arc::new(Semaphore::new(window));
    let sends_started = Instant::now();
    let mut sends = Vec::with_capacity(messages as usize);
    for _ in 0..messages {
        let permit = permits.clone().acquire_owned().await?;
        let admin = admin.clone();
        let at = start.elapsed().as_micros();
        sends.push(tokio::spawn(async move {
            let r = admin.send_text(g, &format!("t={at}")).await;
            drop(permit);
            r
        }));
    }
    for s in sends {
        s.await??;
    }
    let sent_in = sends_started.elapsed();
    let mut latency = Histogram::<u64>::new(3)?;
    for t in tasks {
        latency.add(t.await?)?;
    }
    let elapsed = sends_started.elapsed();
    let deliveries = received.load(Ordering::Relaxed);
    println!(
        "fanout ({transport:?}): {deliveries} deliveries ({receivers} x {messages}) in {:.3} s = {:.0} deliveries/s, {:.2} us per delivery; sends acked in {:.3} s; write batch {write_batch}",
        elapsed.as_secs_f64(),
        deliveries as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / deliveries as f64,
        sent_in.as_secs_f64(),
    );
    print_latency("push latency (send to receipt)", &latency);
    engine.shutdown().await;
    Ok(())
}

async fn send(senders: usize, messages: u64, transport: Transport) -> anyhow::Result<()> {
    if transport == Transport::Http {
        return send_http(senders, messages).await;
    }
    let (engine, addrs) = server(config()).await?;
    let admin = client(addrs, Transport::Tcp).await?;
    let peer: UserId = admin
        .register("peer", "benchmark password", "peer")
        .await?
        .id;
    let mut clients = Vec::with_capacity(senders);
    for i in 0..senders {
        let c = client(addrs, transport).await?;
        let name = format!("sender{i}");
        let me = c.register(&name, "benchmark password", "sender").await?.id;
        c.login(&name, "benchmark password", "bench").await?;
        clients.push((c, ConversationId::direct(me, peer)));
    }
    let start = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|(c, conv)| {
            tokio::spawn(async move {
                let mut h = Histogram::<u64>::new(3).expect("histogram");
                for i in 0..messages {
                    let t = Instant::now();
                    c.send_text(conv, &format!("message {i}")).await?;
                    let _ = h.record(t.elapsed().as_micros() as u64);
                }
                anyhow::Ok(h)
            })
        })
        .collect();
    let mut latency = Histogram::<u64>::new(3)?;
    for t in tasks {
        latency.add(t.await??)?;
    }
    let elapsed = start.elapsed();
    let total = senders as u64 * messages;
    println!(
        "send ({transport:?}): {total} acked messages from {senders} connections in {:.3} s = {:.0} messages/s (memory storage)",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    print_latency("ack latency", &latency);
    engine.shutdown().await;
    Ok(())
}

/// `send` over the HTTP API: each sender posts its messages one after another, on its
/// own keep-alive connection.
async fn send_http(senders: usize, messages: u64) -> anyhow::Result<()> {
    let (engine, addrs) = server(config()).await?;
    let base = format!("http://{}", addrs.http);
    let http = reqwest::Client::new();
    let register = |name: String| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let body = serde_json::json!({"username": name, "password": "benchmark password", "display_name": "b"});
            let user: serde_json::Value = http
                .post(format!("{base}/v1/register"))
                .json(&body)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let login = serde_json::json!({"username": name, "password": "benchmark password", "device": {"id": "bench"}});
            let session: serde_json::Value = http
                .post(format!("{base}/v1/login"))
                .json(&login)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let id = user["user"]["id"].as_u64().context("no user id")?;
            let token = session["token"].as_str().context("no token")?.to_owned();
            anyhow::Ok((UserId(id), token))
        }
    };
    let (peer, _) = register("peer".into()).await?;
    let mut callers = Vec::with_capacity(senders);
    for i in 0..senders {
        let (me, token) = register(format!("sender{i}")).await?;
        let conversation = ConversationId::direct(me, peer);
        let url = format!("{base}/v1/conversations/{conversation}/messages");
        callers.push((reqwest::Client::new(), url, token));
    }
    let start = Instant::now();
    let tasks: Vec<_> = callers
        .into_iter()
        .map(|(http, url, token)| {
            tokio::spawn(async move {
                let mut h = Histogram::<u64>::new(3).expect("histogram");
                for i in 0..messages {
                    let t = Instant::now();
                    let body = serde_json::json!({
                        "client_id": im_core::client::new_client_id(),
                        "body": {"type": "text", "text": format!("message {i}")},
                    });
                    http.post(&url)
                        .bearer_auth(&token)
                        .json(&body)
                        .send()
                        .await?
                        .error_for_status()?;
                    let _ = h.record(t.elapsed().as_micros() as u64);
                }
                anyhow::Ok(h)
            })
        })
        .collect();
    let mut latency = Histogram::<u64>::new(3)?;
    for t in tasks {
        latency.add(t.await??)?;
    }
    let elapsed = start.elapsed();
    let total = senders as u64 * messages;
    println!(
        "send (Http): {total} acked messages from {senders} HTTP callers in {:.3} s = {:.0} messages/s (memory storage)",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    print_latency("ack latency", &latency);
    engine.shutdown().await;
    Ok(())
}

/// Appends straight into the SQL storage and reports durable appends per second.
async fn store(
    url: &str,
    writers: usize,
    messages: u64,
    conversations: usize,
) -> anyhow::Result<()> {
    use im_core::model::{Body, DeviceId, Timestamp};
    use im_core::storage::{MessageStore, NewMessage, NewUser, UserStore};

    let storage = Arc::new(im_store::SqlStorage::connect(url).await?);
    let run = Timestamp::now().0;
    let mut users = Vec::new();
    for n in 0..=conversations.max(1) {
        let user = storage
            .create_user(NewUser {
                username: format!("b{run}x{n}"),
                display_name: "bench".into(),
                avatar: None,
                password_hash: "x".into(),
                created_at: Timestamp::now(),
            })
            .await?;
        users.push(user.id);
    }
    // Conversation k is between user 0 and user k + 1.
    let chats: Vec<ConversationId> = (0..conversations.max(1))
        .map(|k| ConversationId::direct(users[0], users[k + 1]))
        .collect();
    let each = messages / writers.max(1) as u64;
    let start = Instant::now();
    let tasks: Vec<_> = (0..writers.max(1))
        .map(|w| {
            let storage = storage.clone();
            let chat = chats[w % chats.len()];
            let sender = users[0];
            tokio::spawn(async move {
                let mut latency = Histogram::<u64>::new(3).expect("histogram");
                let device = DeviceId::new(format!("w{w}")).expect("device id");
                for _ in 0..each {
                    let began = Instant::now();
                    storage
                        .append(
                            chat,
                            NewMessage {
                                sender,
                                sender_device: device.clone(),
                                client_id: im_core::client::new_client_id(),
                                body: Body::Text {
                                    text: "a benchmark message of ordinary length".into(),
                                },
                                sent_at: Timestamp::now(),
                                reply_to: None,
                                forwarded: None,
                                mentions: Vec::new(),
                            },
                        )
                        .await?;
                    latency.record(began.elapsed().as_micros() as u64).ok();
                }
                anyhow::Ok(latency)
            })
        })
        .collect();
    let mut latency = Histogram::<u64>::new(3)?;
    for task in tasks {
        latency.add(task.await??)?;
    }
    let elapsed = start.elapsed();
    let total = each * writers.max(1) as u64;
    let backend = url.split(':').next().unwrap_or("?");
    println!(
        "store {backend}: {writers} writers, {} conversation(s): {total} appends in {:.2} s = {:.0} appends/s; latency p50 {} us, p99 {} us",
        chats.len(),
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        latency.value_at_quantile(0.5),
        latency.value_at_quantile(0.99),
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Args::parse().bench {
        Bench::Fanout {
            receivers,
            messages,
            window,
            write_batch,
            transport,
        } => fanout(receivers, messages, window, write_batch, transport).await,
        Bench::Send {
            senders,
            messages,
            transport,
        } => send(senders, messages, transport).await,
        Bench::Store {
            database,
            writers,
            messages,
            conversations,
        } => store(&database, writers, messages, conversations).await,
    }
}
