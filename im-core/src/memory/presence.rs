use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use crate::model::{DeviceId, UserId};
use crate::presence::{NodeId, Presence, PresenceEntry, PresenceError};

/// Presence in this process's memory, with real leases (entries expire when not
/// refreshed). Uses tokio's clock, so tests can pause time.
#[derive(Debug, Default)]
pub struct MemoryPresence {
    users: Mutex<HashMap<UserId, Leases>>,
    /// Per node, when its longest lease ends: a node is up until then (a device that
    /// went offline early leaves it up a little longer, which only costs a lookup).
    nodes: Mutex<HashMap<NodeId, Instant>>,
}

/// A user's online devices, each with its lease's expiry.
type Leases = HashMap<DeviceId, (PresenceEntry, Instant)>;

impl MemoryPresence {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The live entries of `ids`, less those on `except`; copies only what it returns.
    fn collect(&self, ids: &[UserId], except: Option<&NodeId>) -> Vec<PresenceEntry> {
        let now = Instant::now();
        let users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for id in ids {
            for (entry, expires) in users.get(id).into_iter().flat_map(|d| d.values()) {
                if *expires > now && except != Some(&entry.node) {
                    out.push(entry.clone());
                }
            }
        }
        out
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
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        // Expired leases are pruned here, on the (periodic) refresh, not on the hot read.
        users.retain(|_, devices| {
            devices.retain(|_, (_, until)| *until > now);
            !devices.is_empty()
        });
        let mut nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        nodes.retain(|_, until| *until > now);
        for e in entries {
            users
                .entry(e.user)
                .or_default()
                .insert(e.device.clone(), (e.clone(), expires));
            if nodes.get(&e.node) != Some(&expires) {
                nodes.insert(e.node.clone(), expires);
            }
        }
        Ok(())
    }

    async fn set_offline(
        &self,
        user: UserId,
        device: &DeviceId,
        node: &NodeId,
    ) -> Result<(), PresenceError> {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(devices) = users.get_mut(&user) {
            if devices.get(device).is_some_and(|(e, _)| &e.node == node) {
                devices.remove(device);
            }
            if devices.is_empty() {
                users.remove(&user);
            }
        }
        Ok(())
    }

    async fn others_online(&self, node: &NodeId) -> Result<bool, PresenceError> {
        let now = Instant::now();
        let nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        Ok(nodes.iter().any(|(n, until)| n != node && *until > now))
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
