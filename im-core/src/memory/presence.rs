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
}

/// A user's online devices, each with its lease's expiry.
type Leases = HashMap<DeviceId, (PresenceEntry, Instant)>;

impl MemoryPresence {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Presence for MemoryPresence {
    async fn set_online(
        &self,
        entries: &[PresenceEntry],
        ttl: Duration,
    ) -> Result<(), PresenceError> {
        let expires = Instant::now() + ttl;
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        for e in entries {
            users
                .entry(e.user)
                .or_default()
                .insert(e.device.clone(), (e.clone(), expires));
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

    async fn online(&self, ids: &[UserId]) -> Result<Vec<PresenceEntry>, PresenceError> {
        let now = Instant::now();
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for id in ids {
            if let Some(devices) = users.get_mut(id) {
                // Expired leases are pruned lazily, on read.
                devices.retain(|_, (_, expires)| *expires > now);
                out.extend(devices.values().map(|(e, _)| e.clone()));
                if devices.is_empty() {
                    users.remove(id);
                }
            }
        }
        Ok(out)
    }
}
