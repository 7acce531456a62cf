//! One client stops reading while 50 others keep receiving at full speed: the slow one
//! is told to resync and then has every message; the others are not slowed and never
//! lose one.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use futures::{SinkExt, StreamExt};
use im_core::model::{ConversationId, Seq};
use im_core::protocol::Event;
use im_core::protocol::ServerFrame;
use im_transport_tcp::TcpConfig;
use im_transport_tcp::connect;

const FAST: usize = 50;
const MESSAGES: u64 = 2000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_is_told_to_resync_and_does_not_slow_the_others() {
    // Small queues and socket buffers so the slow reader falls behind within a few
    // hundred messages; a long write timeout so it is told to resync rather than closed.
    let config = test_config()
        .with_session_queue(64)
        .with_write_timeout(Duration::from_secs(60));
    let tcp = TcpConfig::default().with_send_buffer_bytes(4096);
    let server = start_with(config, tcp).await;

    let mut sender = server.user("sender").await;
    let mut fast = Vec::new();
    for i in 0..FAST {
        let mut user = server.user(&format!("fast{i}")).await;
        befriend(&mut sender, &mut user).await;
        fast.push(user);
    }
    // The slow reader: a raw connection with a small receive buffer that, once logged
    // in, stops reading its socket altogether.
    let mut slow = server.user("slow").await;
    befriend(&mut sender, &mut slow).await;
    let mut raw = connect(
        server.addr,
        &TcpConfig::default().with_recv_buffer_bytes(4096),
    )
    .await
    .unwrap();
    raw.send(Bytes::from_static(
        br#"{"id":0,"type":"hello","versions":[1]}"#,
    ))
    .await
    .unwrap();
    let login = format!(
        r#"{{"id":1,"type":"login","username":"slow","password":"{PASSWORD}","device":{{"id":"slow-raw"}}}}"#
    );
    raw.send(Bytes::from(login)).await.unwrap();
    for _ in 0..2 {
        let reply: ServerFrame =
            serde_json::from_slice(&raw.next().await.unwrap().unwrap()).unwrap();
        assert!(matches!(reply, ServerFrame::Reply { .. }), "{reply:?}");
    }

    let mut ids: Vec<_> = fast.iter().map(|u| u.id).collect();
    ids.push(slow.id);
    let group = sender.client.create_group("crowd", &ids).await.unwrap();
    let g = ConversationId::Group(group.id);
    let last = Seq(MESSAGES + 1); // seq 1 is the creation notice

    // Each fast reader checks that it receives every seq in order, and no resync.
    let readers: Vec<_> = fast
        .into_iter()
        .map(|mut user| {
            tokio::spawn(async move {
                let mut expected = 1;
                while expected <= last.0 {
                    match user.event().await {
                        Event::Message { message } if message.conversation == g => {
                            assert_eq!(message.seq.0, expected, "fast reader saw a gap");
                            expected += 1;
                        }
                        Event::Resync { .. } => panic!("a fast reader was told to resync"),
                        _ => {}
                    }
                }
                Instant::now()
            })
        })
        .collect();

    // The slow connection does not read its socket during the burst.
    let started = Instant::now();
    for i in 0..MESSAGES {
        let sent = sender.client.send_text(g, &format!("m{i}")).await.unwrap();
        assert_eq!(sent.seq, Seq(i + 2));
    }
    let sent_in = started.elapsed();
    let mut finished = Vec::new();
    for r in readers {
        finished.push(
            tokio::time::timeout(Duration::from_secs(60), r)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    let slowest = finished.iter().max().unwrap().duration_since(started);
    println!(
        "sent {MESSAGES} messages in {sent_in:?}; all {FAST} fast readers had all of them after {slowest:?}"
    );
    // "Not slowed": the last fast reader finishes promptly after the last send, instead
    // of waiting on the slow one (which, with a 60 s write timeout, would be far longer).
    assert!(
        slowest < sent_in + Duration::from_secs(5),
        "fast readers lagged: {slowest:?} vs {sent_in:?}"
    );

    // Now the slow connection reads what reached it: some pushes, then a resync notice.
    let mut pushed = Vec::new();
    let mut resynced = false;
    while let Ok(Some(Ok(bytes))) = tokio::time::timeout(Duration::from_secs(2), raw.next()).await {
        match serde_json::from_slice::<ServerFrame>(&bytes).unwrap() {
            ServerFrame::Event {
                event: Event::Message { message },
            } if message.conversation == g => pushed.push(message.seq),
            ServerFrame::Event {
                event: Event::Resync { .. },
            } => resynced = true,
            _ => {}
        }
    }
    assert!(resynced, "the slow reader was not told to resync");
    assert!(
        (pushed.len() as u64) < MESSAGES,
        "the slow reader was not slow: it got all {} pushes",
        pushed.len()
    );
    assert!(
        pushed.windows(2).all(|w| w[0] < w[1]),
        "pushes out of order"
    );

    // The user syncs (here through its other device) from the end of the part the slow
    // connection received without a gap, and has everything.
    let contiguous = pushed
        .iter()
        .enumerate()
        .take_while(|(i, s)| s.0 == *i as u64 + 1)
        .count() as u64;
    let mut seen = HashMap::from([(g, Seq(contiguous))]);
    let synced = slow.client.sync(&mut seen).await.unwrap();
    let synced_seqs: Vec<u64> = synced
        .iter()
        .filter(|m| m.conversation == g)
        .map(|m| m.seq.0)
        .collect();
    assert_eq!(synced_seqs, (contiguous + 1..=last.0).collect::<Vec<_>>());
    let all: BTreeSet<u64> = pushed.iter().map(|s| s.0).chain(synced_seqs).collect();
    assert_eq!(all, (1..=last.0).collect::<BTreeSet<_>>());
    println!(
        "slow reader: {} pushes before falling behind, {} recovered by sync",
        pushed.len(),
        last.0 - contiguous
    );
    server.engine.shutdown().await;
}
