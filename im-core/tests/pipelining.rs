//! Sends a client pipelines (writes without waiting for each answer) are stored together
//! and answered in order, each on its own: one refused send, or another request between
//! them, changes nothing for the rest.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use im_core::auth::HashCost;
use im_core::client::Client;
use im_core::engine::{DirectPolicy, RateLimits};
use im_core::model::{ConversationId, UserId};
use im_core::transport::{DuplexConnection, duplex};
use im_core::{Engine, EngineConfig};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use serde_json::{Value, json};

const PW: &str = "correct horse battery";

async fn connect(engine: &Engine) -> DuplexConnection {
    let (server, client) = duplex(1024);
    let engine = engine.clone();
    tokio::spawn(async move { engine.serve_connection(server).await });
    client
}

async fn request(socket: &mut DuplexConnection, frame: Value) -> Value {
    socket
        .send(serde_json::to_vec(&frame).unwrap().into())
        .await
        .unwrap();
    next(socket).await
}

async fn next(socket: &mut DuplexConnection) -> Value {
    loop {
        let bytes = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("an answer")
            .expect("open")
            .unwrap();
        let frame: Value = serde_json::from_slice(&bytes).unwrap();
        if frame["type"] != "event" {
            return frame;
        }
    }
}

/// Says hello, registers `name` and logs in on device `d`; the user's id.
async fn log_in(socket: &mut DuplexConnection, name: &str) -> u64 {
    request(socket, json!({"id": 0, "type": "hello", "versions": [1]})).await;
    let registered = request(
        socket,
        json!({"id": 1, "type": "register", "username": name, "password": PW, "display_name": name}),
    )
    .await;
    let login =
        json!({"id": 2, "type": "login", "username": name, "password": PW, "device": {"id": "d"}});
    let session = request(socket, login).await;
    assert_eq!(session["reply"]["type"], "session", "{session}");
    registered["reply"]["user"]["id"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_sends_are_stored_together_and_answered_in_order() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();

    let config = EngineConfig::default()
        .with_hash_cost(HashCost::CHEAPEST)
        .with_direct_policy(DirectPolicy::Anyone)
        .with_rate_limits(RateLimits::unlimited());
    let engine = Engine::builder().config(config).start().await.unwrap();
    let (bob, _) = Client::connect(connect(&engine).await).await.unwrap();
    let bob_id = bob.register("bob", PW, "Bob").await.unwrap().id;
    bob.login("bob", PW, "laptop").await.unwrap();

    let mut alice = connect(&engine).await;
    let alice_id = UserId(log_in(&mut alice, "alice").await);
    let conversation = ConversationId::direct(alice_id, bob_id).to_string();

    // 60 sends written at once, with a ping and an empty (invalid) send among them.
    let mut frames = Vec::new();
    for i in 0..60u64 {
        let id = 100 + i;
        let frame = match i {
            20 => json!({"id": id, "type": "ping"}),
            40 => json!({"id": id, "type": "send", "conversation": conversation,
                "client_id": format!("c-{i}"), "body": {"type": "text", "text": ""}}),
            _ => json!({"id": id, "type": "send", "conversation": conversation,
                "client_id": format!("c-{i}"), "body": {"type": "text", "text": format!("m{i}")}}),
        };
        frames.push(Ok(serde_json::to_vec(&frame).unwrap().into()));
    }
    alice
        .send_all(&mut futures::stream::iter(frames))
        .await
        .unwrap();

    let mut expected_seq = 0;
    for i in 0..60u64 {
        let answer = next(&mut alice).await;
        assert_eq!(answer["id"], 100 + i, "answers come in order: {answer}");
        match i {
            20 => assert_eq!(answer["reply"]["type"], "pong"),
            40 => assert_eq!(answer["error"]["code"], "invalid", "{answer}"),
            _ => {
                expected_seq += 1;
                assert_eq!(answer["reply"]["seq"], expected_seq, "{answer}");
            }
        }
    }
    let history = bob
        .history(
            conversation.parse().unwrap(),
            im_core::protocol::HistoryQuery {
                after: Some(im_core::model::Seq(0)),
                before: None,
                limit: Some(100),
            },
        )
        .await
        .unwrap();
    let texts: Vec<String> = history
        .0
        .iter()
        .map(|m| match &m.body {
            im_core::model::Body::Text { text } => text.clone(),
            other => format!("{other:?}"),
        })
        .collect();
    let sent: Vec<String> = (0..60)
        .filter(|i| *i != 20 && *i != 40)
        .map(|i| format!("m{i}"))
        .collect();
    assert_eq!(texts, sent, "stored in the order sent");

    // At least one batch held more than one send.
    let batches: Vec<f64> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == "im_pipelined_sends")
        .flat_map(|(.., value)| match value {
            DebugValue::Histogram(values) => values.into_iter().map(|v| v.0).collect(),
            _ => Vec::new(),
        })
        .collect();
    assert_eq!(batches.iter().sum::<f64>(), 59.0, "{batches:?}");
    assert!(batches.iter().any(|n| *n > 1.0), "{batches:?}");
}

/// One thread drives everything here (a current-thread runtime), and the sender's
/// connection runs outside tokio's cooperative budget, so nothing drains the members'
/// queues unless the connection that handles the burst lets their writers run.
#[tokio::test]
async fn a_pipelined_burst_to_a_group_reaches_every_member_without_resync() {
    const MEMBERS: usize = 50;
    const SENDS: u64 = 1000;
    let config = EngineConfig::default()
        .with_hash_cost(HashCost::CHEAPEST)
        .with_rate_limits(RateLimits::unlimited())
        .with_session_queue(256);
    let engine = Engine::builder().config(config).start().await.unwrap();

    let (server, mut sender) = duplex(1024);
    tokio::spawn(tokio::task::unconstrained({
        let engine = engine.clone();
        async move { engine.serve_connection(server).await }
    }));
    log_in(&mut sender, "sender").await;
    let group = request(
        &mut sender,
        json!({"id": 3, "type": "create_group", "name": "all", "members": [], "open": true}),
    )
    .await;
    let group = group["reply"]["group"]["id"].as_u64().unwrap();

    let mut counters = Vec::new();
    for i in 0..MEMBERS {
        let mut member = connect(&engine).await;
        log_in(&mut member, &format!("member{i}")).await;
        request(
            &mut member,
            json!({"id": 3, "type": "join_group", "group": group}),
        )
        .await;
        counters.push(tokio::spawn(async move {
            let (mut messages, mut resyncs) = (0u64, 0u64);
            while messages < SENDS {
                let Ok(Some(Ok(bytes))) =
                    tokio::time::timeout(Duration::from_secs(10), member.next()).await
                else {
                    break;
                };
                let frame: Value = serde_json::from_slice(&bytes).unwrap();
                match frame["event"]["type"].as_str() {
                    Some("message") if frame["event"]["message"]["body"]["type"] == "text" => {
                        messages += 1;
                    }
                    Some("resync") => resyncs += 1,
                    _ => {}
                }
            }
            (messages, resyncs)
        }));
    }

    let conversation = format!("g:{group}");
    let frames: Vec<_> = (0..SENDS)
        .map(|i| {
            let frame = json!({"id": 100 + i, "type": "send", "conversation": conversation,
                "client_id": format!("c-{i}"), "body": {"type": "text", "text": format!("m{i}")}});
            Ok(serde_json::to_vec(&frame).unwrap().into())
        })
        .collect();
    let (mut tx, mut rx) = sender.split();
    let acks = tokio::spawn(async move {
        let mut acked = 0;
        while acked < SENDS {
            let Ok(Some(Ok(bytes))) =
                tokio::time::timeout(Duration::from_secs(10), rx.next()).await
            else {
                break;
            };
            let frame: Value = serde_json::from_slice(&bytes).unwrap();
            if frame["type"] == "reply" {
                acked += 1;
            }
        }
        acked
    });
    tx.send_all(&mut futures::stream::iter(frames))
        .await
        .unwrap();
    assert_eq!(acks.await.unwrap(), SENDS);
    for counter in counters {
        assert_eq!(counter.await.unwrap(), (SENDS, 0), "(messages, resyncs)");
    }
}
