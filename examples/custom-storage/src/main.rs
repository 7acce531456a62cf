//! The engine over `SealedStorage<SqlStorage>`: two users chat over TCP, then the program
//! prints what the database holds (ciphertext) and what the users read (their text).
//!
//! ```sh
//! cargo run -p custom-storage                         # SQLite in memory, a one-off key
//! IM_SEAL_KEY=$(openssl rand -hex 32) \
//!   cargo run -p custom-storage -- "sqlite://sealed.db?mode=rwc"
//! ```

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use custom_storage::{Keyring, SealedStorage};
use im_core::client::Client;
use im_core::engine::DirectPolicy;
use im_core::model::ConversationId;
use im_core::protocol::{Event, HistoryQuery};
use im_core::{Engine, EngineConfig};
use im_store::SqlStorage;
use im_transport_tcp::{TcpConfig, TcpTransport, connect};
use sea_orm::{ConnectionTrait, Statement};

const PASSWORD: &str = "correct horse battery";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "sqlite::memory:".to_owned());
    let key = match std::env::var("IM_SEAL_KEY") {
        Ok(hex) => Keyring::parse_hex_key(&hex).context("IM_SEAL_KEY")?,
        Err(_) => {
            println!("IM_SEAL_KEY is not set: sealing with a one-off key (nothing stays readable)");
            let mut key = [0u8; 32];
            getrandom::fill(&mut key).context("drawing a key")?;
            key
        }
    };

    let sql = SqlStorage::connect(&url)
        .await
        .with_context(|| format!("opening {url}"))?;
    let database = sql.connection().clone();
    let storage = SealedStorage::new(sql, Keyring::new(1, key));
    let engine = Engine::builder()
        .config(EngineConfig::default().with_direct_policy(DirectPolicy::Anyone))
        .storage(Arc::new(storage))
        .start()
        .await?;
    let transport = TcpTransport::bind("127.0.0.1:0", TcpConfig::default()).await?;
    let addr = transport.local_addr();
    tokio::spawn({
        let engine = engine.clone();
        async move { engine.serve(&transport).await }
    });

    let user = |name: &'static str| async move {
        let (client, events) = Client::connect(connect(addr, &TcpConfig::default()).await?).await?;
        client.register(name, PASSWORD, name).await.ok(); // already there on a second run
        let session = client
            .login(name, PASSWORD, &format!("{name}-laptop"))
            .await?;
        anyhow::Ok((client, events, session.user.id))
    };
    let (alice, _alice_events, alice_id) = user("alice").await?;
    let (bob, mut bob_events, bob_id) = user("bob").await?;
    let chat = ConversationId::direct(alice_id, bob_id);

    let sent = alice
        .send_text(chat, "meet me at noon by the old mill")
        .await?;
    println!("alice sent seq {}", sent.seq.0);
    let pushed = loop {
        match tokio::time::timeout(Duration::from_secs(5), bob_events.next()).await {
            Ok(Some(Event::Message { message })) => break message,
            Ok(Some(_)) => continue,
            _ => bail!("bob got no push"),
        }
    };
    println!("bob was pushed: {:?}", pushed.body);

    println!("\nthe database holds (im_messages.body):");
    let rows = database
        .query_all_raw(Statement::from_string(
            database.get_database_backend(),
            "SELECT seq, body FROM im_messages ORDER BY id DESC LIMIT 3",
        ))
        .await?;
    for row in rows {
        let seq: i64 = row.try_get("", "seq")?;
        let body: String = row.try_get("", "body")?;
        println!("  seq {seq}: {body}");
    }

    println!("\nbob reads his history:");
    let (history, _) = bob.history(chat, HistoryQuery::default()).await?;
    for m in history.iter().rev().take(3) {
        println!("  seq {}: {:?}", m.seq.0, m.body);
    }
    engine.shutdown().await;
    Ok(())
}
