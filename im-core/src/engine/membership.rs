//! The engine's cache of group membership, so that a group send does not read the member
//! list from storage every time.
//!
//! Every membership change invalidates the group here and, through the broker, on every
//! other node. A read that raced with an invalidation is not cached (a generation counter
//! detects it). Broker delivery is best effort, so entries also expire after
//! [`MAX_AGE`]: a missed invalidation is served for at most that long.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::model::{Group, GroupId, Member, UserId};
use crate::storage::{Storage, StorageResult};

/// A group and its members as of one read.
#[derive(Debug)]
pub(crate) struct GroupMembers {
    pub(crate) group: Group,
    pub(crate) members: HashMap<UserId, Member>,
    /// The member ids, for the fan-out.
    pub(crate) ids: Vec<UserId>,
}

impl GroupMembers {
    pub(crate) fn get(&self, user: UserId) -> Option<&Member> {
        self.members.get(&user)
    }
}

#[derive(Debug)]
pub(crate) struct MemberCache {
    inner: Mutex<Inner>,
    capacity: usize,
}

/// The longest a cached membership is trusted without a reload.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
struct Inner {
    groups: HashMap<GroupId, (Arc<GroupMembers>, Instant)>,
    generation: u64,
}

impl MemberCache {
    pub(crate) fn new(capacity: usize) -> Self {
        MemberCache {
            inner: Mutex::new(Inner::default()),
            capacity: capacity.max(1),
        }
    }

    /// The group and its members, from the cache or storage.
    pub(crate) async fn get(
        &self,
        storage: &dyn Storage,
        group: GroupId,
    ) -> StorageResult<Arc<GroupMembers>> {
        let generation = {
            let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((hit, at)) = inner.groups.get(&group)
                && at.elapsed() < MAX_AGE
            {
                return Ok(hit.clone());
            }
            inner.generation
        };
        let settings = storage.group(group).await?;
        let members = storage.members(group).await?;
        let loaded = Arc::new(GroupMembers {
            group: settings,
            ids: members.iter().map(|m| m.user).collect(),
            members: members.into_iter().map(|m| (m.user, m)).collect(),
        });
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.generation == generation {
            if inner.groups.len() >= self.capacity {
                // Crude but bounded: a full cache starts over. Hot groups reload at once.
                inner.groups.clear();
            }
            inner.groups.insert(group, (loaded.clone(), Instant::now()));
        }
        Ok(loaded)
    }

    /// Forgets a group.
    pub(crate) fn invalidate(&self, group: GroupId) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.groups.remove(&group);
        inner.generation += 1;
    }
}
