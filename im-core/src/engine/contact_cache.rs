//! The engine's cache of the ties between two users — whether both exist, whether one
//! has blocked the other, whether they are friends — so that a direct message, a typing
//! notice or a call does not read them from storage every time (three or four reads
//! each, measured as most of a direct send's cost on SQLite).
//!
//! Every friendship or block change invalidates the pair here and, through the broker,
//! on every other node. A read that raced with an invalidation is not cached (a
//! generation counter detects it). Broker delivery is best effort, so entries also expire
//! after [`MAX_AGE`](super::membership::MAX_AGE), like the membership cache's.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use super::membership::MAX_AGE;
use crate::model::UserId;
use crate::storage::{Storage, StorageResult};

/// What holds between two users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tie {
    /// Both users exist.
    pub(crate) exist: bool,
    /// One of them has blocked the other.
    pub(crate) blocked: bool,
    /// They are friends.
    pub(crate) friends: bool,
}

#[derive(Debug)]
pub(crate) struct ContactCache {
    inner: Mutex<Inner>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Inner {
    pairs: HashMap<(UserId, UserId), (Tie, Instant)>,
    generation: u64,
}

/// The pair's key: the same whichever way round it is asked.
fn key(a: UserId, b: UserId) -> (UserId, UserId) {
    if a <= b { (a, b) } else { (b, a) }
}

impl ContactCache {
    pub(crate) fn new(capacity: usize) -> Self {
        ContactCache {
            inner: Mutex::new(Inner::default()),
            capacity: capacity.max(1),
        }
    }

    /// The tie between `a` and `b`, from the cache or storage.
    pub(crate) async fn get(
        &self,
        storage: &dyn Storage,
        a: UserId,
        b: UserId,
    ) -> StorageResult<Tie> {
        let key = key(a, b);
        let generation = {
            let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((tie, at)) = inner.pairs.get(&key)
                && at.elapsed() < MAX_AGE
            {
                return Ok(*tie);
            }
            inner.generation
        };
        let found = storage.users(&[key.0, key.1]).await?;
        let exist = [key.0, key.1]
            .iter()
            .all(|u| found.iter().any(|f| f.id == *u));
        let tie = Tie {
            exist,
            blocked: storage.is_blocked(a, b).await? || storage.is_blocked(b, a).await?,
            friends: storage.is_friend(a, b).await?,
        };
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.generation == generation {
            if inner.pairs.len() >= self.capacity {
                // Crude but bounded, like the membership cache.
                inner.pairs.clear();
            }
            inner.pairs.insert(key, (tie, Instant::now()));
        }
        Ok(tie)
    }

    /// Forgets what holds between `a` and `b`.
    pub(crate) fn invalidate(&self, a: UserId, b: UserId) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.pairs.remove(&key(a, b));
        inner.generation += 1;
    }
}
