//! Last-seen times, written in batches.
//!
//! When a user's last device leaves, the offline timer (`presence.rs`) stores the time
//! before it tells friends. Users rarely leave alone: a node restarting, a network
//! failure or the end of a load test closes thousands of connections at once, and their
//! timers fire together one grace period later. Written one by one, each time is a
//! transaction of its own; on SQLite that is one commit and one fsync each, queued on the
//! one writer ahead of every message sent meanwhile (19,000 closes measured: the
//! server's memory went from 201 to 325 MB while they waited).
//!
//! So the times go through one task, which writes whatever has queued up while it was
//! writing the previous batch in one [`set_last_seen_many`] call (at most
//! [`MAX_BATCH`] users), and then answers each waiting timer (the same 19,000 closes:
//! 199 MB before, 114 MB after).
//!
//! [`set_last_seen_many`]: crate::storage::UserStore::set_last_seen_many

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot};

use crate::model::{Timestamp, UserId};
use crate::storage::Storage;

/// Most users written in one `set_last_seen_many` call.
pub(crate) const MAX_BATCH: usize = 512;

/// One user's time, and who waits for it to be written.
type Entry = (UserId, Timestamp, oneshot::Sender<()>);

/// The handle the offline timers record through.
#[derive(Debug)]
pub(crate) struct LastSeenWriter {
    queue: mpsc::UnboundedSender<Entry>,
    storage: Arc<dyn Storage>,
}

impl LastSeenWriter {
    /// Starts the writing task, which ends when the writer is dropped. Must be called
    /// inside a tokio runtime.
    pub(crate) fn start(storage: Arc<dyn Storage>) -> Self {
        Self::counting(storage, Arc::default())
    }

    /// As [`start`](Self::start), counting the batches written in `batches`.
    fn counting(storage: Arc<dyn Storage>, batches: Arc<AtomicU64>) -> Self {
        let (queue, rx) = mpsc::unbounded_channel();
        tokio::spawn(write_batches(storage.clone(), rx, batches));
        LastSeenWriter { queue, storage }
    }

    /// Stores `at` as the last time `user` was seen, together with the others queued at
    /// the same time; resolves once it is written. A failure is logged (once per batch),
    /// not returned: the caller announces the user offline either way.
    pub(crate) async fn record(&self, user: UserId, at: Timestamp) {
        let (done, written) = oneshot::channel();
        if self.queue.send((user, at, done)).is_ok() && written.await.is_ok() {
            return;
        }
        // The task is gone (it panicked inside the storage adapter): write this one alone.
        if let Err(e) = self.storage.set_last_seen(user, at).await {
            tracing::warn!(error = %e, "storing last seen failed");
        }
    }
}

async fn write_batches(
    storage: Arc<dyn Storage>,
    mut rx: mpsc::UnboundedReceiver<Entry>,
    batches: Arc<AtomicU64>,
) {
    let mut batch: Vec<Entry> = Vec::new();
    let mut seen: Vec<(UserId, Timestamp)> = Vec::new();
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        seen.clear();
        seen.extend(batch.iter().map(|(user, at, _)| (*user, *at)));
        if let Err(e) = storage.set_last_seen_many(&seen).await {
            tracing::warn!(error = %e, users = seen.len(), "storing last seen failed");
        }
        batches.fetch_add(1, Ordering::Relaxed);
        metrics::histogram!("im_last_seen_batch_users").record(seen.len() as f64);
        for (_, _, done) in batch.drain(..) {
            let _ = done.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStorage;
    use crate::storage::NewUser;

    async fn users(storage: &dyn Storage, n: usize) -> Vec<UserId> {
        let mut ids = Vec::with_capacity(n);
        for k in 0..n {
            let user = storage
                .create_user(NewUser {
                    username: format!("user{k}"),
                    display_name: format!("User {k}"),
                    avatar: None,
                    password_hash: "x".into(),
                    created_at: Timestamp(0),
                })
                .await
                .expect("create_user");
            ids.push(user.id);
        }
        ids
    }

    /// 1,200 users leaving at once are written in three batches (512, 512, 176), not
    /// 1,200 transactions, and each one's time is stored before its timer goes on.
    #[tokio::test(flavor = "current_thread")]
    async fn users_leaving_together_are_written_together() {
        let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
        let ids = users(&*storage, 1_200).await;
        let batches = Arc::new(AtomicU64::new(0));
        let writer = LastSeenWriter::counting(storage.clone(), batches.clone());
        let writer = &writer;
        let storage = &storage;
        futures::future::join_all(ids.iter().enumerate().map(|(k, &user)| async move {
            let at = Timestamp(1_000 + k as i64);
            writer.record(user, at).await;
            let stored = storage.last_seen(&[user]).await.expect("last_seen");
            assert_eq!(stored, vec![(user, at)], "written before record returns");
        }))
        .await;
        assert_eq!(batches.load(Ordering::Relaxed), 3);
    }

    /// Once the writing task is gone, a time is still written, on its own.
    #[tokio::test(flavor = "current_thread")]
    async fn without_its_task_a_time_is_written_alone() {
        let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
        let ids = users(&*storage, 1).await;
        let (queue, rx) = mpsc::unbounded_channel();
        drop(rx);
        let writer = LastSeenWriter {
            queue,
            storage: storage.clone(),
        };
        writer.record(ids[0], Timestamp(7)).await;
        assert_eq!(
            storage.last_seen(&ids).await.expect("last_seen"),
            vec![(ids[0], Timestamp(7))]
        );
    }
}
