use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use crate::model::{DeviceId, Timestamp, UserId};
use crate::presence::{KEEP_LAPSED, NodeId, Orphan, Presence, PresenceEntry, PresenceError};

/// Presence in this process's memory, with real leases (entries expire when not
/// refreshed), lapsed nodes claimed once, and graceful hand-overs: the whole
/// [`Presence`] contract, for engines sharing one process. Uses tokio's clock, so tests
/// can pause time.
#[derive(Debug, Default)]
pub struct MemoryPresence {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Per user, their devices' leases, lapsed ones included until `keep`.
    users: HashMap<UserId, HashMap<DeviceId, Lease>>,
    /// Per node, when its longest lease ends: a node is up until then (a device that
    /// went offline early leaves it up a little longer, which only costs a lookup), and
    /// lapsed after, until claimed.
    nodes: HashMap<NodeId, Instant>,
}

#[derive(Debug)]
struct Lease {
    entry: PresenceEntry,
    /// When the lease ends.
    expires: Instant,
    /// Until when a lapsed lease stays for `claim_lapsed` (one more ttl, at least
    /// [`KEEP_LAPSED`]).
    keep: Instant,
    /// The last time its node refreshed it.
    seen: Timestamp,
}

impl MemoryPresence {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The live entries of `ids`, less those on `except`; copies only what it returns.
    fn collect(&self, ids: &[UserId], except: Option<&NodeId>) -> Vec<PresenceEntry> {
        let now = Instant::now();
        let state = self.lock();
        let mut out = Vec::new();
        for id in ids {
            for lease in state.users.get(id).into_iter().flat_map(|d| d.values()) {
                if lease.expires > now && except != Some(&lease.entry.node) {
                    out.push(lease.entry.clone());
                }
            }
        }
        out
    }
}

impl State {
    /// Drops the leases on `nodes` (whatever their lease) and returns their users who have
    /// no live lease left.
    fn take_nodes(&mut self, nodes: &HashSet<NodeId>) -> Vec<Orphan> {
        if nodes.is_empty() {
            return Vec::new();
        }
        let now = Instant::now();
        let mut orphans = Vec::new();
        self.users.retain(|&user, devices| {
            let mut seen = None;
            devices.retain(|_, lease| {
                if nodes.contains(&lease.entry.node) {
                    seen = seen.max(Some(lease.seen));
                    false
                } else {
                    true
                }
            });
            if let Some(last_seen) = seen
                && !devices.values().any(|l| l.expires > now)
            {
                orphans.push(Orphan { user, last_seen });
            }
            !devices.is_empty()
        });
        orphans
    }
}

#[async_trait]
impl Presence for MemoryPresence {
    async fn set_online(
        &self,
        entries: &[PresenceEntry],
        ttl: Duration,
    ) -> Result<(), PresenceError> {
        let now = Instant::now();
        let expires = now + ttl;
        let seen = Timestamp::now();
        let mut state = self.lock();
        let State { users, nodes } = &mut *state;
        // What no claim needs any more is pruned here, on the (periodic) refresh, not on
        // the hot read.
        users.retain(|_, devices| {
            devices.retain(|_, lease| lease.keep > now);
            !devices.is_empty()
        });
        let keep = ttl.max(KEEP_LAPSED);
        nodes.retain(|_, until| *until + keep > now);
        for e in entries {
            users.entry(e.user).or_default().insert(
                e.device.clone(),
                Lease {
                    entry: e.clone(),
                    expires,
                    keep: expires + keep,
                    seen,
                },
            );
            let until = nodes.entry(e.node.clone()).or_insert(expires);
            *until = (*until).max(expires);
        }
        Ok(())
    }

    async fn set_offline(
        &self,
        user: UserId,
        device: &DeviceId,
        node: &NodeId,
    ) -> Result<(), PresenceError> {
        let mut state = self.lock();
        if let Some(devices) = state.users.get_mut(&user) {
            if devices.get(device).is_some_and(|l| &l.entry.node == node) {
                devices.remove(device);
            }
            if devices.is_empty() {
                state.users.remove(&user);
            }
        }
        Ok(())
    }

    async fn others_online(&self, node: &NodeId) -> Result<bool, PresenceError> {
        let now = Instant::now();
        let state = self.lock();
        Ok(state
            .nodes
            .iter()
            .any(|(n, until)| n != node && *until > now))
    }

    async fn online(&self, ids: &[UserId]) -> Result<Vec<PresenceEntry>, PresenceError> {
        Ok(self.collect(ids, None))
    }

    async fn online_elsewhere(
        &self,
        ids: &[UserId],
        node: &NodeId,
    ) -> Result<Vec<PresenceEntry>, PresenceError> {
        Ok(self.collect(ids, Some(node)))
    }

    async fn claim_lapsed(&self, node: &NodeId) -> Result<Vec<Orphan>, PresenceError> {
        let now = Instant::now();
        let mut state = self.lock();
        let lapsed: HashSet<NodeId> = state
            .nodes
            .iter()
            .filter(|(n, until)| *n != node && **until <= now)
            .map(|(n, _)| n.clone())
            .collect();
        state.nodes.retain(|n, _| !lapsed.contains(n));
        Ok(state.take_nodes(&lapsed))
    }

    async fn claim_own(&self, node: &NodeId) -> Result<Vec<Orphan>, PresenceError> {
        let mut state = self.lock();
        state.nodes.remove(node);
        Ok(state.take_nodes(&HashSet::from([node.clone()])))
    }

    async fn leave(
        &self,
        node: &NodeId,
        devices: &[(UserId, DeviceId)],
        after: Duration,
    ) -> Result<(), PresenceError> {
        let now = Instant::now();
        let seen = Timestamp::now();
        let mut state = self.lock();
        for (user, device) in devices {
            if let Some(lease) = state
                .users
                .get_mut(user)
                .and_then(|d| d.get_mut(device))
                .filter(|l| &l.entry.node == node)
            {
                // Gone for `online`; kept for the claim, one ttl past its old end.
                lease.expires = now;
                lease.seen = seen;
            }
        }
        state.nodes.insert(node.clone(), now + after);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Platform, Timestamp};

    fn entry(user: u64, node: &str) -> PresenceEntry {
        PresenceEntry {
            user: UserId(user),
            device: DeviceId::new("d").unwrap(),
            platform: Platform::Web,
            node: NodeId::new(node),
            since: Timestamp::now(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_node_alone_is_told_so_until_another_comes_and_after_its_leases_lapse() {
        let p = MemoryPresence::new();
        let (n1, n2) = (NodeId::new("n1"), NodeId::new("n2"));
        assert!(!p.others_online(&n1).await.unwrap());
        p.set_online(&[entry(1, "n1")], Duration::from_secs(30))
            .await
            .unwrap();
        assert!(!p.others_online(&n1).await.unwrap(), "only its own entries");
        p.set_online(&[entry(2, "n2")], Duration::from_secs(5))
            .await
            .unwrap();
        assert!(p.others_online(&n1).await.unwrap());
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(!p.others_online(&n1).await.unwrap(), "n2's lease lapsed");
        assert!(p.others_online(&n2).await.unwrap(), "n1 is still up for n2");
    }
}
