//! A database that goes away and comes back: while it is gone, appends fail as
//! `Unavailable` (temporary) and quickly; once it is back, the pool reconnects by itself,
//! every acknowledged message is there, and seqs stay gapless.
//!
//! The database is taken away by a proxy the test controls: it cuts every open connection
//! and refuses new ones, as a crashed server or a lost network would, without touching
//! the server the other tests share.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Server, server_database_url};
use im_core::model::{Body, ConversationId, DeviceId, Seq, Timestamp, UserId};
use im_core::storage::{MessageRange, MessageStore, NewMessage, StorageError};
use im_store::SqlStorage;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Forwards connections to `target` while up; when down, closes them all and refuses.
struct Proxy {
    addr: SocketAddr,
    up: watch::Sender<bool>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (up, state) = watch::channel(true);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !*state.borrow() {
                    continue; // dropped: the connection is refused
                }
                let mut state = state.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = state.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Proxy { addr, up }
    }

    fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }
}

/// `url` with its host and port replaced by `addr`.
fn via(url: &str, addr: SocketAddr) -> String {
    let start = url.find("://").unwrap() + 3;
    let rest = &url[start..];
    let auth_end = rest.find('/').unwrap_or(rest.len());
    let host_start = rest[..auth_end].rfind('@').map_or(0, |p| p + 1);
    format!(
        "{}{}{addr}{}",
        &url[..start],
        &rest[..host_start],
        &rest[auth_end..]
    )
}

fn server_addr(url: &str) -> SocketAddr {
    let start = url.find("://").unwrap() + 3;
    let rest = &url[start..];
    let auth = &rest[..rest.find('/').unwrap_or(rest.len())];
    let host = &auth[auth.rfind('@').map_or(0, |p| p + 1)..];
    host.parse()
        .expect("the test server URL names 127.0.0.1:port")
}

fn text(client_id: String) -> NewMessage {
    NewMessage {
        sender: UserId(1),
        sender_device: DeviceId::new("phone").unwrap(),
        client_id,
        body: Body::Text {
            text: "through the outage".into(),
        },
        sent_at: Timestamp::now(),
        reply_to: None,
        forwarded: None,
        mentions: Vec::new(),
    }
}

async fn survives_an_outage(server: Server) {
    let Some(url) = server.url() else { return };
    let direct = server_database_url(server, &url).await;
    let proxy = Proxy::start(server_addr(&direct)).await;
    let storage = SqlStorage::connect(&via(&direct, proxy.addr))
        .await
        .unwrap();
    let chat = ConversationId::direct(UserId(1), UserId(2));

    // Acknowledged before the outage, some of them concurrently (batched).
    let mut acked = Vec::new();
    let sends: Vec<_> = (0..40)
        .map(|n| storage.append(chat, text(format!("before-{n}"))))
        .collect();
    for sent in futures::future::join_all(sends).await {
        acked.push(sent.unwrap().message);
    }

    proxy.set_up(false);
    let began = Instant::now();
    // One at a time, then many at once (so they meet the outage as one batch).
    let mut unknown = Vec::new();
    let mut outcomes = Vec::new();
    for n in 0..5 {
        let client_id = format!("during-{n}");
        outcomes.push(storage.append(chat, text(client_id.clone())).await);
        unknown.push(client_id);
    }
    let batch: Vec<String> = (0..20).map(|n| format!("during-batch-{n}")).collect();
    let sends: Vec<_> = batch
        .iter()
        .map(|id| storage.append(chat, text(id.clone())))
        .collect();
    outcomes.extend(futures::future::join_all(sends).await);
    unknown.extend(batch);
    for outcome in outcomes {
        match outcome {
            Err(e) => assert!(
                matches!(e, StorageError::Unavailable(_)),
                "an outage must read as temporary: {e}"
            ),
            Ok(sent) => panic!("stored while the database was gone: {sent:?}"),
        }
    }
    assert!(
        began.elapsed() < Duration::from_secs(30),
        "failing took {:?}",
        began.elapsed()
    );
    // Reads fail the same way.
    let e = storage.last_seq(chat).await.unwrap_err();
    assert!(e.is_temporary(), "{e}");

    proxy.set_up(true);
    // The pool reconnects by itself: the next append succeeds within a few seconds.
    let deadline = Instant::now() + Duration::from_secs(20);
    let after = loop {
        match storage.append(chat, text("after".into())).await {
            Ok(sent) => break sent.message,
            Err(e) if e.is_temporary() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the database came back but appends still fail: {e}"),
        }
    };
    // Retrying what failed during the outage stores each exactly once.
    for client_id in &unknown {
        let first = storage.append(chat, text(client_id.clone())).await.unwrap();
        let again = storage.append(chat, text(client_id.clone())).await.unwrap();
        assert!(again.duplicate);
        assert_eq!(again.message.id, first.message.id);
    }

    let all = storage
        .messages(
            chat,
            MessageRange {
                after: Seq::ZERO,
                before: None,
                limit: 1000,
                newest: false,
                viewer: None,
            },
        )
        .await
        .unwrap();
    for m in &acked {
        assert!(all.contains(m), "acknowledged message {} lost", m.seq.0);
    }
    assert!(all.iter().any(|m| m.id == after.id));
    let seqs: Vec<u64> = all.iter().map(|m| m.seq.0).collect();
    let expected: Vec<u64> = (1..=all.len() as u64).collect();
    assert_eq!(seqs, expected, "seqs must stay gapless");
    assert_eq!(all.len(), acked.len() + 1 + unknown.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage() {
    survives_an_outage(Server::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_outage() {
    survives_an_outage(Server::MySql).await;
}
