//! Which devices are online, and on which node.
//!
//! The engine records each logged-in session here and refreshes the entries while the
//! session lives; the fan-out asks it where a message's recipients are connected, so a
//! message reaches devices on other nodes through the [`Broker`](crate::broker::Broker).
//! Implementations: [`MemoryPresence`](crate::memory::MemoryPresence) (one node) and
//! `im_store::RedisPresence` (many nodes).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::model::{DeviceId, Platform, Timestamp, UserId};

/// Names one server process of a cluster. Unique among the live nodes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(Arc<str>);

impl NodeId {
    /// A node id from a name.
    pub fn new(name: impl AsRef<str>) -> NodeId {
        NodeId(Arc::from(name.as_ref()))
    }

    /// A fresh random node id (`node-<16 hex digits>`).
    pub fn random() -> NodeId {
        let mut bytes = [0u8; 8];
        // If the OS has no randomness, a fixed id still works for a single node.
        let _ = getrandom::fill(&mut bytes);
        NodeId::new(format!("node-{:016x}", u64::from_le_bytes(bytes)))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One online device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceEntry {
    /// Whose device.
    pub user: UserId,
    /// Which device.
    pub device: DeviceId,
    /// Which kind of device.
    pub platform: Platform,
    /// The node its session is on.
    pub node: NodeId,
    /// When the session started.
    pub since: Timestamp,
}

/// A presence failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PresenceError {
    /// The backend is unreachable; the call may succeed later.
    #[error("presence unavailable: {0}")]
    Unavailable(String),
    /// Anything else the backend reported.
    #[error("presence backend error: {0}")]
    Backend(String),
}

impl PresenceError {
    /// Whether retrying later may succeed.
    pub fn is_temporary(&self) -> bool {
        matches!(self, PresenceError::Unavailable(_))
    }
}

/// The registry of online devices.
///
/// # Contract
/// - `set_online` records (or refreshes) each entry, keyed by `(user, device)`, with a
///   lease of `ttl`: an entry not refreshed within `ttl` disappears by itself, so a node
///   that dies takes its devices offline within one lease.
/// - A later `set_online` for the same `(user, device)` replaces the entry (the device
///   reconnected, perhaps to another node).
/// - `set_offline` removes the entry only if it still names `node` (a stale node must
///   not take offline a device that has moved on).
/// - `online` returns the live entries of the given users, in any order.
/// - `online_elsewhere` returns the same, less the entries on `node`. The fan-out calls
///   it for every message while other nodes are up, so backends should filter before
///   copying anything.
/// - `others_online` is `true` while any node other than `node` has a live entry. It
///   may also say `true` when unsure (the default does, always): the fan-out asks it
///   first, and only skips the per-recipient lookup on `false`, which must therefore
///   be exact.
#[async_trait]
pub trait Presence: Send + Sync + fmt::Debug {
    /// Records or refreshes entries with a lease of `ttl`.
    async fn set_online(
        &self,
        entries: &[PresenceEntry],
        ttl: Duration,
    ) -> Result<(), PresenceError>;
    /// Removes a device's entry if it is on `node`.
    async fn set_offline(
        &self,
        user: UserId,
        device: &DeviceId,
        node: &NodeId,
    ) -> Result<(), PresenceError>;
    /// The online devices of `users`.
    async fn online(&self, users: &[UserId]) -> Result<Vec<PresenceEntry>, PresenceError>;

    /// Whether any node other than `node` may have online devices (see the contract).
    async fn others_online(&self, node: &NodeId) -> Result<bool, PresenceError> {
        let _ = node;
        Ok(true)
    }

    /// The online devices of `users` on nodes other than `node`.
    async fn online_elsewhere(
        &self,
        users: &[UserId],
        node: &NodeId,
    ) -> Result<Vec<PresenceEntry>, PresenceError> {
        let mut entries = self.online(users).await?;
        entries.retain(|e| &e.node != node);
        Ok(entries)
    }
}
