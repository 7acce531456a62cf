//! The two network readers, over real loopback sockets: arbitrary bytes into the TCP
//! transport's length-delimited reader, and arbitrary WebSocket messages (text, binary,
//! ping) into `/ws`. Whatever arrives, the server answers with well-formed frames (a
//! length prefix and a JSON frame on TCP; JSON text on WebSocket), closes the connection
//! once the client is done, and keeps serving the next one.
//!
//! One engine (memory storage) behind both transports serves every input.

#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use arbitrary::Arbitrary;
use futures::{SinkExt, StreamExt};
use im_core::auth::HashCost;
use im_core::engine::RateLimits;
use im_core::{Engine, EngineConfig};
use im_transport_tcp::{TcpConfig, TcpTransport};
use im_transport_ws::{Gateway, WsConfig};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

/// How long the server may take to answer and close once the client is done.
const WAIT: Duration = Duration::from_secs(10);

#[derive(Arbitrary, Debug)]
enum Input {
    /// Bytes written to a TCP connection, in these chunks, then the write side shut.
    Tcp(Vec<Vec<u8>>),
    /// Messages sent on a WebSocket, then a close.
    WebSocket(Vec<WsMessage>),
}

#[derive(Arbitrary, Debug)]
enum WsMessage {
    Text(String),
    Binary(Vec<u8>),
    /// A JSON frame with this id and type, to get past the parser now and then.
    Frame(u8, u8),
    Ping(Vec<u8>),
}

/// Request types, for frames that parse.
const TYPES: &[&str] = &[
    "hello",
    "ping",
    "login",
    "resume",
    "send",
    "history",
    "conversations",
];

struct Servers {
    runtime: tokio::runtime::Runtime,
    tcp: SocketAddr,
    ws: SocketAddr,
}

fn servers() -> &'static Servers {
    static SERVERS: OnceLock<Servers> = OnceLock::new();
    SERVERS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (tcp, ws) = runtime.block_on(async {
            let config = EngineConfig::default()
                .with_hash_cost(HashCost::CHEAPEST)
                .with_rate_limits(RateLimits::unlimited());
            let engine = Engine::builder().config(config).start().await.unwrap();
            let transport = TcpTransport::bind("127.0.0.1:0", TcpConfig::default())
                .await
                .unwrap();
            let tcp = transport.local_addr();
            tokio::spawn({
                let engine = engine.clone();
                async move { engine.serve(&transport).await }
            });
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let ws = listener.local_addr().unwrap();
            let filter = Gateway::new(engine, WsConfig::default(), None).filter();
            tokio::spawn(im_transport_ws::serve(
                listener,
                filter,
                std::future::pending(),
                Duration::from_secs(1),
            ));
            (tcp, ws)
        });
        Servers { runtime, tcp, ws }
    })
}

async fn tcp(addr: SocketAddr, chunks: Vec<Vec<u8>>) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    for chunk in chunks.iter().take(16) {
        if stream.write_all(chunk).await.is_err() {
            break; // the server closed first (a frame over the limit, say)
        }
    }
    let _ = stream.shutdown().await;
    let mut answer = Vec::new();
    match tokio::time::timeout(WAIT, stream.read_to_end(&mut answer)).await {
        Ok(_) => {}
        Err(_) => panic!("the TCP connection was not closed within {WAIT:?} of the client's end"),
    }
    // What arrived is whole frames (the last may be cut by a reset), each JSON.
    let mut rest = &answer[..];
    while rest.len() >= 4 {
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        let Some(frame) = rest.get(4..4 + len) else {
            break;
        };
        serde_json::from_slice::<serde_json::Value>(frame)
            .unwrap_or_else(|e| panic!("a TCP frame that is not JSON ({e}): {frame:?}"));
        rest = &rest[4 + len..];
    }
}

async fn websocket(addr: SocketAddr, messages: Vec<WsMessage>) {
    let url = format!("ws://{addr}/ws");
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    for message in messages.into_iter().take(16) {
        let message = match message {
            WsMessage::Text(text) => Message::text(text),
            WsMessage::Binary(bytes) => Message::binary(bytes),
            WsMessage::Frame(id, kind) => Message::text(format!(
                r#"{{"id":{id},"type":"{}","versions":[1]}}"#,
                TYPES[usize::from(kind) % TYPES.len()]
            )),
            WsMessage::Ping(bytes) => Message::Ping(bytes.into_iter().take(125).collect()),
        };
        if socket.send(message).await.is_err() {
            break;
        }
    }
    let _ = socket.close(None).await;
    let read = async {
        while let Some(Ok(message)) = socket.next().await {
            if let Message::Text(text) = message {
                serde_json::from_str::<serde_json::Value>(&text)
                    .unwrap_or_else(|e| panic!("a WebSocket frame that is not JSON ({e}): {text}"));
            }
        }
    };
    if tokio::time::timeout(WAIT, read).await.is_err() {
        panic!("the WebSocket was not closed within {WAIT:?} of the client's close");
    }
}

fuzz_target!(|input: Input| {
    let servers = servers();
    servers.runtime.block_on(async {
        match input {
            Input::Tcp(chunks) => tcp(servers.tcp, chunks).await,
            Input::WebSocket(messages) => websocket(servers.ws, messages).await,
        }
    });
});
