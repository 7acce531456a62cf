//! Migrations keep what is stored: rolling back every migration after the first (the
//! idempotency keys' and all later ones) and running them again leaves every retry
//! recognised, replies storable, earlier messages searchable and their attachments
//! found, on each database; and
//! nodes starting at once on a fresh PostgreSQL or MySQL
//! database migrate it once, in turn.

mod common;

use std::sync::Arc;

use common::{Server, server_database, server_database_url, sqlite_file};
use im_core::model::{Body, ConversationId, DeviceId, Seq, Timestamp, UserId};
use im_core::storage::{
    MessageRange, MessageStore, NewMessage, SearchQuery, SearchStore, SearchTerms,
};
use im_store::SqlStorage;
use im_store::sql::Migrator;
use sea_orm_migration::MigratorTrait;

fn text(client_id: &str) -> NewMessage {
    NewMessage {
        sender: UserId(1),
        sender_device: DeviceId::new("phone").unwrap(),
        client_id: client_id.to_owned(),
        body: Body::Text {
            text: "kept across migrations".into(),
        },
        sent_at: Timestamp::now(),
        reply_to: None,
        forwarded: None,
        mentions: Vec::new(),
    }
}

/// Stores two messages (one with the longest client id), rolls the idempotency-key
/// migration (and those after it) back and forth, and retries both.
async fn keys_survive_the_key_migration(s: Arc<SqlStorage>) {
    let chat = ConversationId::direct(UserId(1), UserId(2));
    let longest = "x".repeat(64);
    let first = s.append(chat, text("0192a3b4c5d6-first")).await.unwrap();
    let second = s.append(chat, text(&longest)).await.unwrap();
    let photo = NewMessage {
        body: Body::Image {
            url: "/v1/attachments/0123456789abcdef0123456789abcdef".into(),
            mime: "image/png".into(),
            size: 68,
            width: None,
            height: None,
        },
        ..text("a photo")
    };
    let photo = s.append(chat, photo).await.unwrap();

    // Every migration after the first, the idempotency keys' included.
    let after_first = u32::try_from(Migrator::migrations().len() - 1).unwrap();
    Migrator::down(s.connection(), Some(after_first))
        .await
        .unwrap();
    Migrator::up(s.connection(), None).await.unwrap();
    // Running the key migration's rewrite twice must not change the keys again.
    Migrator::down(s.connection(), Some(after_first))
        .await
        .unwrap();
    Migrator::up(s.connection(), None).await.unwrap();

    // The search migration indexed what was stored before it.
    let query = SearchQuery {
        terms: SearchTerms::parse("kept migrations").unwrap(),
        conversation: None,
        before: None,
        limit: 10,
    };
    let found: Vec<_> = s.search(UserId(1), &query).await.unwrap();
    let found: Vec<_> = found.iter().map(|m| m.id).collect();
    assert_eq!(found, [second.message.id, first.message.id]);
    // The attachments migration found the photo stored before it.
    assert_eq!(
        s.attachment_use("/v1/attachments/0123456789abcdef0123456789abcdef", None)
            .await
            .unwrap(),
        Some((chat, photo.message.seq))
    );

    let retry = s.append(chat, text("0192a3b4c5d6-first")).await.unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.message.id, first.message.id);
    let retry = s.append(chat, text(&longest)).await.unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.message.id, second.message.id);
    let fresh = s.append(chat, text("another")).await.unwrap();
    assert!(!fresh.duplicate);
    assert_eq!(fresh.message.seq.0, 4);
    let reply = NewMessage {
        reply_to: Some(Seq(1)),
        ..text("a reply")
    };
    let reply = s.append(chat, reply).await.unwrap();
    assert_eq!(reply.message.reply_to, Some(Seq(1)));
    let range = MessageRange {
        after: Seq(4),
        before: None,
        limit: 10,
        newest: false,
        viewer: None,
    };
    let stored = s.messages(chat, range).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].reply_to, Some(Seq(1)));
}

#[tokio::test]
async fn sqlite() {
    keys_survive_the_key_migration(sqlite_file().await).await;
}

#[tokio::test]
async fn postgres() {
    if let Some(url) = Server::Postgres.url() {
        keys_survive_the_key_migration(server_database(Server::Postgres, &url).await).await;
    }
}

#[tokio::test]
async fn mysql() {
    if let Some(url) = Server::MySql.url() {
        keys_survive_the_key_migration(server_database(Server::MySql, &url).await).await;
    }
}

/// Nodes starting at the same moment on a fresh database each bring the schema up; the
/// migrations run once, one node after the other (an advisory lock), and every node
/// can serve.
async fn nodes_starting_at_once_migrate_once(server: Server, url: &str) {
    for round in 0..3 {
        let url = server_database_url(server, url).await;
        let starts: Vec<_> = (0..4)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { SqlStorage::connect(&url).await })
            })
            .collect();
        let mut nodes = Vec::new();
        for start in starts {
            nodes.push(
                start
                    .await
                    .unwrap()
                    .unwrap_or_else(|e| panic!("round {round}: a node failed to start: {e}")),
            );
        }
        for (n, node) in nodes.iter().enumerate() {
            let chat = ConversationId::direct(UserId(1), UserId(2));
            let sent = node.append(chat, text(&format!("node {n}"))).await.unwrap();
            assert!(!sent.duplicate);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_nodes_starting_at_once() {
    if let Some(url) = Server::Postgres.url() {
        nodes_starting_at_once_migrate_once(Server::Postgres, &url).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_nodes_starting_at_once() {
    if let Some(url) = Server::MySql.url() {
        nodes_starting_at_once_migrate_once(Server::MySql, &url).await;
    }
}
