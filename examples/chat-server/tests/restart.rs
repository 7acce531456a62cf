//! The server on a SQLite file is killed (SIGKILL) in the middle of traffic; after a
//! restart every message that was acknowledged is there, with the seq it was acked with,
//! and sync delivers it.

mod common;

use im_core::protocol::request;
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use im_core::client::Client;
use im_core::model::{ConversationId, Seq};
use im_core::protocol::{ErrorCode, Request};
use im_transport_tcp::{TcpConfig, connect};

use common::Server;

const PASSWORD: &str = "correct horse battery";

/// Starts the server binary on `db`, returning it and its TCP address.
fn start(db: &Path) -> (Server, SocketAddr) {
    let uploads = db.with_extension("uploads");
    let database = format!("sqlite://{}?mode=rwc", db.display());
    common::start([
        OsStr::new("--uploads"),
        uploads.as_os_str(),
        OsStr::new("--database"),
        OsStr::new(&database),
    ])
}

async fn client(addr: SocketAddr) -> Client {
    let conn = connect(addr, &TcpConfig::default()).await.unwrap();
    Client::connect(conn).await.unwrap().0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_sigkill() {
    let dir = std::env::temp_dir().join(format!("im-restart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("chat.db");
    let (mut server, addr) = start(&db);

    let setup = client(addr).await;
    let alice = setup.register("alice", PASSWORD, "Alice").await.unwrap().id;
    let bob = setup.register("bob", PASSWORD, "Bob").await.unwrap().id;
    let a = client(addr).await;
    a.login("alice", PASSWORD, "setup").await.unwrap();
    let b = client(addr).await;
    b.login("bob", PASSWORD, "phone").await.unwrap();
    a.request_friend(bob, "hi").await.unwrap();
    b.accept_friend(alice).await.unwrap();
    let chat = ConversationId::direct(alice, bob);

    // Four devices of Alice send as fast as they are acknowledged.
    let acked: Arc<Mutex<BTreeMap<u64, String>>> = Arc::default();
    let mut senders = Vec::new();
    for n in 0..4 {
        let acked = acked.clone();
        let c = client(addr).await;
        c.login("alice", PASSWORD, &format!("dev-{n}"))
            .await
            .unwrap();
        senders.push(tokio::spawn(async move {
            let mut k = 0;
            loop {
                let id = format!("d{n}-{k}");
                let body = im_core::model::Body::Text { text: id.clone() };
                match c.send(chat, &id, body).await {
                    Ok(sent) => {
                        acked.lock().unwrap().insert(sent.seq.0, id);
                        k += 1;
                    }
                    // The server's send limit (20/s per user after a burst of 100):
                    // retry the same message, as a client would.
                    Err(e) if e.code() == Some(ErrorCode::RateLimited) => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    // Kill it, mid-traffic, once a good number are acknowledged.
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < 200 {
        assert!(Instant::now() < deadline, "too few acks");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.0.kill().expect("SIGKILL");
    server.0.wait().unwrap();
    for s in senders {
        let _ = s.await;
    }
    let acked = acked.lock().unwrap().clone();

    // After a restart, every acknowledged message is there with its seq, and the
    // timeline is gapless (a message stored but not acked may follow the last ack).
    let (_server, addr) = start(&db);
    let b = client(addr).await;
    b.login("bob", PASSWORD, "tablet").await.unwrap();
    let mut seen = HashMap::new();
    let synced = b.sync(&mut seen).await.unwrap();
    let stored: BTreeMap<u64, String> = synced
        .iter()
        .filter(|m| m.conversation == chat)
        .map(|m| match &m.body {
            im_core::model::Body::Text { text } => (m.seq.0, text.clone()),
            other => panic!("unexpected body {other:?}"),
        })
        .collect();
    let seqs: Vec<u64> = stored.keys().copied().collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "gapless");
    for (seq, id) in &acked {
        assert_eq!(
            stored.get(seq),
            Some(id),
            "acked message {id} at seq {seq} lost"
        );
    }
    assert!(stored.len() >= acked.len());
    let last = b.conversations().await.unwrap()[0].last_seq;
    assert_eq!(last, Seq(stored.len() as u64));
    println!(
        "{} acknowledged before SIGKILL, {} stored after restart",
        acked.len(),
        stored.len()
    );
    let _ = b.request(Request::Logout(request::Logout {})).await;
    let _ = std::fs::remove_dir_all(&dir);
}
