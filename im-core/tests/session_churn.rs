//! Logins racing on one device, then everyone leaves: no session and no presence entry
//! may be left behind.

use std::sync::Arc;
use std::time::Duration;

use im_core::auth::HashCost;
use im_core::client::Client;
use im_core::memory::MemoryPresence;
use im_core::model::UserId;
use im_core::presence::Presence;
use im_core::transport::duplex;
use im_core::{Engine, EngineConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_logins_leave_no_session_behind() {
    let presence = Arc::new(MemoryPresence::new());
    let cheap = HashCost {
        memory_kib: 256,
        iterations: 1,
        parallelism: 1,
    };
    let engine = Engine::builder()
        .presence(presence.clone())
        .config(
            EngineConfig::default()
                .with_hash_cost(cheap)
                .with_rate_limits(im_core::engine::RateLimits::unlimited()),
        )
        .start()
        .await
        .unwrap();
    let connect = || {
        let engine = engine.clone();
        async move {
            let (server, client) = duplex(64);
            tokio::spawn(async move { engine.serve_connection(server).await });
            Client::connect(client).await.unwrap().0
        }
    };
    connect()
        .await
        .register("churn", "correct horse", "Churn")
        .await
        .unwrap();

    for _ in 0..20 {
        // Three connections log in as the same device at once: each kicks the others.
        let mut logins = Vec::new();
        for _ in 0..3 {
            let client = connect().await;
            logins.push(tokio::spawn(async move {
                let _ = client.login("churn", "correct horse", "same-device").await;
                client
            }));
        }
        let mut clients = Vec::new();
        for l in logins {
            clients.push(l.await.unwrap());
        }
        assert!(
            engine.session_count() <= 1,
            "{} sessions",
            engine.session_count()
        );
        drop(clients);
    }
    for _ in 0..100 {
        if engine.session_count() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(engine.session_count(), 0);
    let online = presence.online(&[UserId(1)]).await.unwrap();
    assert!(online.is_empty(), "stale presence: {online:?}");
    engine.shutdown().await;
}
