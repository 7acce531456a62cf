//! `im_transport_ws::serve`, the gateway's own HTTP/1.1 server: WebSockets over the raw
//! socket (also when the client's first frame arrives with the handshake), handshakes
//! that are not ours refused with `426`, the peer's address known to the per-address
//! limits, and a stop when asked.

use std::sync::Arc;
use std::time::Duration;

use im_core::auth::HashCost;
use im_core::engine::RateLimits;
use im_core::{Engine, EngineConfig};
use im_transport_ws::{Gateway, WsConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(5);

struct Served {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
}

async fn serve(config: EngineConfig) -> Served {
    let storage = im_store::SqlStorage::connect("sqlite::memory:")
        .await
        .unwrap();
    let engine = Engine::builder()
        .storage(Arc::new(storage))
        .config(config.with_hash_cost(HashCost::CHEAPEST))
        .start()
        .await
        .unwrap();
    let gateway = Gateway::new(engine, WsConfig::default(), None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(im_transport_ws::serve(
        listener,
        gateway.filter(),
        async {
            let _ = stopped.await;
        },
        Duration::from_secs(1),
    ));
    Served {
        addr,
        stop: Some(stop),
        server,
    }
}

/// A client's text frame, masked as RFC 6455 requires (payloads under 126 bytes).
fn masked_text(payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut frame = vec![0x81, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// Reads up to the end of the HTTP head; returns it and what came after.
async fn read_head(socket: &mut TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let n = tokio::time::timeout(WAIT, socket.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed before the end of the head: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return (String::from_utf8(buf).unwrap(), rest);
        }
    }
}

const UPGRADE: &str = "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_frame_sent_with_the_handshake_is_answered() {
    let served = serve(EngineConfig::default()).await;
    let mut socket = TcpStream::connect(served.addr).await.unwrap();
    // The handshake and the first frame in one write: hyper reads both, and the frame
    // must reach the WebSocket that takes the raw socket over.
    let mut bytes = UPGRADE.as_bytes().to_vec();
    bytes.extend(masked_text(br#"{"id":7,"type":"hello","versions":[1]}"#));
    socket.write_all(&bytes).await.unwrap();
    let (head, mut rest) = read_head(&mut socket).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    // The reply frame: unmasked text, a 7-bit or 16-bit length, then the JSON.
    let frame_len = |b: &[u8]| match b.get(1).map(|l| l & 0x7f) {
        Some(126) if b.len() >= 4 => Some((4, u16::from_be_bytes([b[2], b[3]]) as usize)),
        Some(len) if len < 126 => Some((2, len as usize)),
        _ => None,
    };
    while frame_len(&rest).is_none_or(|(head, len)| rest.len() < head + len) {
        let mut chunk = [0u8; 1024];
        let n = tokio::time::timeout(WAIT, socket.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed before the reply");
        rest.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(rest[0], 0x81, "a final text frame");
    let (head, len) = frame_len(&rest).unwrap();
    let reply = String::from_utf8(rest[head..head + len].to_vec()).unwrap();
    assert!(
        reply.contains(r#""id":7"#) && reply.contains(r#""type":"hello""#),
        "{reply}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_are_not_our_handshake_get_426() {
    let served = serve(EngineConfig::default()).await;
    let plain = reqwest::get(format!("http://{}/ws", served.addr))
        .await
        .unwrap();
    assert_eq!(plain.status(), 426);
    assert_eq!(plain.headers()["upgrade"], "websocket");

    let mut socket = TcpStream::connect(served.addr).await.unwrap();
    let old = UPGRADE.replace("Version: 13", "Version: 8");
    socket.write_all(old.as_bytes()).await.unwrap();
    let (head, _) = read_head(&mut socket).await;
    assert!(head.starts_with("HTTP/1.1 426"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-version: 13"),
        "{head}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peer_address_reaches_the_limits_and_the_server_stops_when_asked() {
    let limits = RateLimits {
        auth_per_address_per_minute: 2,
        ..RateLimits::unlimited()
    };
    let mut served = serve(EngineConfig::default().with_rate_limits(limits)).await;
    let http = reqwest::Client::new();
    let mut statuses = Vec::new();
    for i in 0..3 {
        let response = http
            .post(format!("http://{}/v1/register", served.addr))
            .json(&serde_json::json!({
                "username": format!("user{i}"),
                "password": "correct horse",
                "display_name": "U",
            }))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses[..2], [201, 201]);
    assert_eq!(statuses[2], 429, "the third from one address: {statuses:?}");

    let _ = served.stop.take().unwrap().send(());
    tokio::time::timeout(WAIT, &mut served.server)
        .await
        .expect("the server stopped")
        .unwrap();
    assert!(
        TcpStream::connect(served.addr).await.is_err(),
        "still accepting"
    );
}
