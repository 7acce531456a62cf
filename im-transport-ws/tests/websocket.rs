//! The WebSocket endpoint: chatting across transports, frame limits, the origin check
//! and heartbeats.

mod common;

use im_core::protocol::reply;
use im_core::protocol::request;
use std::time::Duration;

use bytes::Bytes;
use common::{PASSWORD, WAIT, start, start_with, test_config};
use futures::{SinkExt, StreamExt};
use im_core::client::{Client, Events};
use im_core::model::{Body, ConversationId, GroupId, Message, Seq};
use im_core::protocol::Event;
use im_core::protocol::HistoryQuery;
use im_transport_tcp::TcpConfig;
use im_transport_ws::WsConfig;
use reqwest::Method;
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};

async fn next_message(events: &mut Events) -> Message {
    loop {
        let event = tokio::time::timeout(WAIT, events.next())
            .await
            .expect("timed out waiting for a message")
            .expect("connection closed");
        if let Event::Message { message } = event {
            return message;
        }
    }
}

/// The next `count` text messages pushed, as (seq, sender, text).
async fn pushed_texts(events: &mut Events, count: usize) -> Vec<(u64, u64, String)> {
    let mut texts = Vec::with_capacity(count);
    while texts.len() < count {
        let m = next_message(events).await;
        if matches!(m.body, Body::Text { .. }) {
            texts.push(line(&m));
        }
    }
    texts
}

fn line(m: &Message) -> (u64, u64, String) {
    let text = match &m.body {
        Body::Text { text } => text.clone(),
        _ => "(system)".to_owned(),
    };
    (m.seq.0, m.sender.0, text)
}

/// Three users in one group, one on each transport: a WebSocket client, a TCP client
/// and an HTTP caller. Each sends while the others do; the two connected clients see
/// every message pushed, the HTTP caller reads history, and all three have the same
/// messages in the same order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_tcp_and_http_users_see_the_same_conversation() {
    let server = start().await;
    let api = server.api();
    let (alice, ta) = api.user("alice").await;
    let (bob, tb) = api.user("bob").await;
    let (carol, tc) = api.user("carol").await;
    api.befriend((alice, &ta), (bob, &tb)).await;
    api.befriend((alice, &ta), (carol, &tc)).await;

    let ws = im_transport_ws::connect(&server.ws_url(), 64 * 1024)
        .await
        .unwrap();
    let (ws_client, mut ws_events) = Client::connect(ws).await.unwrap();
    ws_client.login("alice", PASSWORD, "browser").await.unwrap();
    let tcp = im_transport_tcp::connect(server.tcp, &TcpConfig::default())
        .await
        .unwrap();
    let (tcp_client, mut tcp_events) = Client::connect(tcp).await.unwrap();
    tcp_client.login("bob", PASSWORD, "desktop").await.unwrap();

    let group = api
        .call(
            Method::POST,
            "/v1/groups",
            Some(&ta),
            Some(json!({"name": "mixed", "members": [bob, carol]})),
        )
        .await;
    let g = group.body["group"]["id"].as_u64().unwrap();
    let conversation = ConversationId::Group(GroupId(g));

    const EACH: usize = 10;
    let ws_sends = async {
        for i in 0..EACH {
            ws_client
                .send_text(conversation, &format!("ws {i}"))
                .await
                .unwrap();
        }
    };
    let tcp_sends = async {
        for i in 0..EACH {
            tcp_client
                .send_text(conversation, &format!("tcp {i}"))
                .await
                .unwrap();
        }
    };
    let http_sends = async {
        for i in 0..EACH {
            let sent = api
                .call(
                    Method::POST,
                    &format!("/v1/conversations/g:{g}/messages"),
                    Some(&tc),
                    Some(json!({"client_id": format!("http-{i}"), "body": {"type": "text", "text": format!("http {i}")}})),
                )
                .await;
            assert_eq!(sent.status, 201, "{sent:?}");
        }
    };
    tokio::join!(ws_sends, tcp_sends, http_sends);

    // Pushes: each connected client gets the other two senders' messages (its own come
    // back as replies, not pushes).
    let mut pushed_ws = pushed_texts(&mut ws_events, 2 * EACH).await;
    let mut pushed_tcp = pushed_texts(&mut tcp_events, 2 * EACH).await;
    // History, read over each transport.
    let texts = |messages: Vec<Message>| -> Vec<(u64, u64, String)> {
        messages
            .iter()
            .filter(|m| matches!(m.body, Body::Text { .. }))
            .map(line)
            .collect()
    };
    let query = HistoryQuery {
        after: Some(Seq(0)),
        before: None,
        limit: Some(100),
    };
    let seen_ws = texts(ws_client.history(conversation, query).await.unwrap().0);
    let seen_tcp = texts(tcp_client.history(conversation, query).await.unwrap().0);
    let history = api
        .call(
            Method::GET,
            &format!("/v1/conversations/g:{g}/messages?after=0&limit=100"),
            Some(&tc),
            None,
        )
        .await;
    let seen_http = texts(
        history.body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| serde_json::from_value::<Message>(m.clone()).unwrap())
            .collect(),
    );
    assert_eq!(seen_ws.len(), 3 * EACH);
    assert_eq!(
        seen_ws, seen_tcp,
        "WebSocket and TCP clients read different histories"
    );
    assert_eq!(seen_ws, seen_http, "HTTP reads a different history");
    let others = |me: u64| -> Vec<(u64, u64, String)> {
        seen_ws
            .iter()
            .filter(|(_, s, _)| *s != me)
            .cloned()
            .collect()
    };
    // Pushes of messages stored in one batch may overtake each other (the protocol says
    // so; clients place messages by seq), so compare them in seq order.
    pushed_ws.sort();
    pushed_tcp.sort();
    assert_eq!(pushed_ws, others(alice), "the WebSocket client's pushes");
    assert_eq!(pushed_tcp, others(bob), "the TCP client's pushes");
    // Each sender's messages in the order sent, and seqs strictly increasing.
    for (prefix, sender) in [("ws", alice), ("tcp", bob), ("http", carol)] {
        let mine: Vec<String> = seen_ws
            .iter()
            .filter(|(_, s, _)| *s == sender)
            .map(|(_, _, t)| t.clone())
            .collect();
        let expected: Vec<String> = (0..EACH).map(|i| format!("{prefix} {i}")).collect();
        assert_eq!(mine, expected);
    }
    assert!(seen_ws.windows(2).all(|w| w[0].0 < w[1].0));
}

async fn raw_socket(
    url: &str,
    origin: Option<&str>,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    tungstenite::Error,
> {
    let mut request = url.into_client_request().unwrap();
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
    }
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(s, _)| s)
}

#[tokio::test]
async fn a_frame_over_the_limit_gets_too_large_and_the_socket_closes() {
    let ws = WsConfig::default().with_max_frame_bytes(4096);
    let server = start_with(test_config().with_max_frame_bytes(4096), ws).await;
    let mut socket = raw_socket(&server.ws_url(), None).await.unwrap();
    socket
        .send(WsMessage::text(r#"{"id":0,"type":"hello","versions":[1]}"#))
        .await
        .unwrap();
    let hello = tokio::time::timeout(WAIT, socket.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        hello.to_text().unwrap().contains(r#""type":"hello""#),
        "{hello:?}"
    );
    let big = format!(r#"{{"id":1,"type":"ping","pad":"{}"}}"#, "x".repeat(8000));
    socket.send(WsMessage::text(big)).await.unwrap();
    let mut saw_too_large = false;
    let mut closed = false;
    let deadline = tokio::time::Instant::now() + WAIT;
    while let Ok(Some(frame)) = tokio::time::timeout_at(deadline, socket.next()).await {
        match frame {
            Ok(WsMessage::Text(text)) => {
                assert!(!text.contains("pong"), "the oversized ping was answered");
                saw_too_large |= text.contains(r#""code":"too_large""#);
            }
            Ok(WsMessage::Close(_)) | Err(_) => {
                closed = true;
                break;
            }
            Ok(_) => {}
        }
    }
    assert!(saw_too_large, "no too_large error before the close");
    assert!(closed, "the socket stayed open after an oversized frame");
}

/// The close code of the first close frame the server sends, within `WAIT`.
async fn close_code(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Option<u16> {
    let deadline = tokio::time::Instant::now() + WAIT;
    while let Ok(Some(frame)) = tokio::time::timeout_at(deadline, socket.next()).await {
        match frame {
            Ok(WsMessage::Close(frame)) => return frame.map(|f| u16::from(f.code)),
            Err(_) => return None,
            Ok(_) => {}
        }
    }
    None
}

/// A text message that is not UTF-8 closes the socket with 1007 (RFC 6455, 7.4.1); one
/// over the frame limit with 1009, after the `too_large` error; a reserved opcode with
/// 1002.
#[tokio::test]
async fn protocol_violations_close_with_their_status_code() {
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

    let ws = WsConfig::default().with_max_frame_bytes(4096);
    let server = start_with(test_config().with_max_frame_bytes(4096), ws).await;
    let mut socket = raw_socket(&server.ws_url(), None).await.unwrap();
    let not_utf8 = Frame::message(
        Bytes::from_static(b"{\"id\":0,\"type\":\"hello\xff\xfe\"}"),
        OpCode::Data(Data::Text),
        true,
    );
    socket.send(WsMessage::Frame(not_utf8)).await.unwrap();
    assert_eq!(close_code(&mut socket).await, Some(1007));

    let mut socket = raw_socket(&server.ws_url(), None).await.unwrap();
    let big = format!(r#"{{"id":1,"type":"ping","pad":"{}"}}"#, "x".repeat(8000));
    socket.send(WsMessage::text(big)).await.unwrap();
    assert_eq!(close_code(&mut socket).await, Some(1009));

    // A frame with an opcode RFC 6455 reserves is a protocol error: 1002.
    let mut socket = raw_socket(&server.ws_url(), None).await.unwrap();
    let reserved = Frame::message(
        Bytes::from_static(b"{}"),
        OpCode::Data(Data::Reserved(3)),
        true,
    );
    socket.send(WsMessage::Frame(reserved)).await.unwrap();
    assert_eq!(close_code(&mut socket).await, Some(1002));
}

#[tokio::test]
async fn only_allowed_origins_may_open_a_socket() {
    let ws = WsConfig::default().with_allowed_origins(["https://chat.example".to_owned()]);
    let server = start_with(test_config(), ws).await;
    let refused = raw_socket(&server.ws_url(), Some("https://evil.example")).await;
    match refused {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403),
        other => panic!("a foreign origin got {other:?}"),
    }
    raw_socket(&server.ws_url(), Some("https://chat.example"))
        .await
        .expect("the allowed origin connects");
    raw_socket(&server.ws_url(), None)
        .await
        .expect("a client without an Origin (not a browser) connects");
}

#[tokio::test]
async fn idle_sockets_are_pinged() {
    let ws = WsConfig::default().with_ping_interval(Duration::from_millis(100));
    let server = start_with(test_config(), ws).await;
    let mut socket = raw_socket(&server.ws_url(), None).await.unwrap();
    let mut pings = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while pings < 2 {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Ok(Some(Ok(WsMessage::Ping(_)))) => pings += 1,
            Ok(Some(Ok(_))) => {}
            other => panic!("expected pings, got {other:?}"),
        }
    }
}

/// After a `hello` asking for MessagePack, frames travel as binary messages both ways.
#[cfg(feature = "msgpack")]
#[tokio::test]
async fn msgpack_frames_are_binary_messages() {
    use im_core::protocol::{ClientFrame, Codec, Reply, Request, ServerFrame};

    let server = start().await;
    let mut socket = raw_socket(&server.ws_url(), None).await.unwrap();
    socket
        .send(WsMessage::text(
            r#"{"id":0,"type":"hello","versions":[1],"codec":"msgpack"}"#,
        ))
        .await
        .unwrap();
    let hello = tokio::time::timeout(WAIT, socket.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(hello.is_text(), "the hello reply is JSON: {hello:?}");
    let ping = Codec::MessagePack
        .encode(&ClientFrame {
            id: 1,
            request: Request::Ping(request::Ping {}),
        })
        .unwrap();
    socket.send(WsMessage::binary(ping)).await.unwrap();
    let pong = tokio::time::timeout(WAIT, socket.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let WsMessage::Binary(bytes) = pong else {
        panic!("expected a binary frame, got {pong:?}");
    };
    let frame: ServerFrame = Codec::MessagePack.decode(&bytes).unwrap();
    assert!(
        matches!(
            frame,
            ServerFrame::Reply {
                id: 1,
                reply: Reply::Pong(reply::Pong {})
            }
        ),
        "{frame:?}"
    );
}

/// Logging a device in over HTTP replaces its token, and ends its sessions like a second
/// login on a connection does.
#[tokio::test]
async fn an_http_login_replaces_the_devices_live_session() {
    let server = start().await;
    let api = server.api();
    api.user("alice").await;
    let ws = im_transport_ws::connect(&server.ws_url(), 64 * 1024)
        .await
        .unwrap();
    let (client, mut events) = Client::connect(ws).await.unwrap();
    client.login("alice", PASSWORD, "laptop").await.unwrap();
    let login = api
        .call(
            Method::POST,
            "/v1/login",
            None,
            Some(json!({"username": "alice", "password": PASSWORD, "device": {"id": "laptop"}})),
        )
        .await;
    assert_eq!(login.status, 200);
    let kicked = tokio::time::timeout(WAIT, async {
        loop {
            match events.next().await {
                Some(Event::Kicked { code, .. }) => return Some(code),
                Some(_) => continue,
                None => return None,
            }
        }
    })
    .await
    .expect("the old session hears in time");
    assert_eq!(kicked, Some(im_core::protocol::KickCode::Replaced));
}
