//! WAL checkpoints for a SQLite file, off the commit path.
//!
//! In WAL mode every commit appends to the write-ahead log, and a checkpoint copies the
//! log back into the database so it can be reused. SQLite runs one by itself inside the
//! commit that crosses `wal_autocheckpoint` pages, so that commit — and every append
//! waiting on it — waits while tens of megabytes are copied; with many conversations per
//! batch (a page dirtied per conversation) the threshold comes every few dozen commits.
//! Measured through the server (512 senders in 512 direct chats, 7,000 sends/s, 30 s
//! runs): ack p99 12.6–20.1 ms with this, 14.0–22.2 ms with in-commit checkpoints — the
//! disk's own fsync spread is as large as the difference.
//!
//! Here a connection of its own runs a `PASSIVE` checkpoint twice a second: it copies
//! what it can without taking the write lock, so commits go on meanwhile, and the writer
//! reuses the log from its start once all of it is copied. The writer's own automatic
//! checkpoint stays as a backstop, at a threshold this keeps it from reaching.

use std::sync::Weak;
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection};

/// How often the checkpointer runs.
const EVERY: Duration = Duration::from_millis(500);

/// Runs checkpoints on `db` until `alive` is gone (the last handle of the storage was
/// dropped), then closes the connection.
pub(crate) fn start(db: DatabaseConnection, alive: Weak<()>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if alive.upgrade().is_none() {
                break;
            }
            if let Err(e) = db
                .execute_unprepared("PRAGMA wal_checkpoint(PASSIVE)")
                .await
            {
                // The writer's own checkpoint still bounds the log.
                tracing::warn!(error = %e, "SQLite checkpoint failed");
            }
        }
        let _ = db.close().await;
    });
}
