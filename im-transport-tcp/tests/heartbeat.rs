//! Dead peers are detected within the idle timeout; live clients keep themselves alive.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use futures::{SinkExt, StreamExt};
use im_core::client::ClientConfig;
use im_transport_tcp::{TcpConfig, connect};

const IDLE: Duration = Duration::from_millis(400);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_peer_is_closed_within_the_idle_timeout() {
    let server = start(test_config().with_idle_timeout(IDLE)).await;
    let mut raw = connect(server.addr, &TcpConfig::default()).await.unwrap();
    raw.send(Bytes::from_static(
        br#"{"id":0,"type":"hello","versions":[1]}"#,
    ))
    .await
    .unwrap();
    let hello = raw.next().await.unwrap().unwrap();
    assert!(
        std::str::from_utf8(&hello)
            .unwrap()
            .contains(r#""idle_timeout_ms":400"#)
    );
    // Now it says nothing: the server must hang up, not before the timeout, not long after.
    let quiet = Instant::now();
    let end = tokio::time::timeout(Duration::from_secs(5), raw.next())
        .await
        .expect("the server did not close a silent connection");
    assert!(end.is_none() || end.unwrap().is_err());
    let waited = quiet.elapsed();
    assert!(
        waited >= IDLE - Duration::from_millis(50),
        "closed after {waited:?}"
    );
    assert!(waited < IDLE * 3, "closed only after {waited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_keep_idle_connections_alive_and_logged_in_sessions_end_when_dead() {
    let server = start(test_config().with_idle_timeout(IDLE)).await;
    // A client with keep-alive (the default) survives three idle timeouts.
    let alice = server.user("alice").await;
    tokio::time::sleep(IDLE * 3).await;
    alice.client.conversations().await.expect("still connected");
    assert_eq!(server.engine.session_count(), 1);

    // Without keep-alive, the logged-in session is closed and unregistered.
    let (client, _events) = server
        .connect_with(
            TcpConfig::default(),
            ClientConfig {
                keepalive: false,
                ..ClientConfig::default()
            },
        )
        .await;
    client.login("alice", PASSWORD, "silent").await.unwrap();
    assert_eq!(server.engine.session_count(), 2);
    tokio::time::sleep(IDLE * 3).await;
    assert!(
        !client.is_connected(),
        "the silent client was not disconnected"
    );
    assert_eq!(server.engine.session_count(), 1);
}
