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
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::{DeviceId, Platform, Timestamp, UserId};

/// Names one server process of a cluster. Unique among the live nodes.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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

/// The least time a lapsed entry is kept for [`Presence::claim_lapsed`] past its lease.
pub const KEEP_LAPSED: Duration = Duration::from_secs(60);

/// A user who was online on a node that stopped without taking them offline (it died,
/// or it shut down and handed its users over), and has no device online anywhere now:
/// their friends are still to be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    /// Who.
    pub user: UserId,
    /// The last time that node said the user was online.
    pub last_seen: Timestamp,
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
/// - A node whose leases all lapsed stopped (it died, or [`leave`](Presence::leave) set
///   it to lapse). `claim_lapsed` claims every such node other than the caller, at
///   once for all callers: each lapsed node is claimed by exactly one of them, however
///   many ask at the same moment. The claim drops the node's entries and returns each
///   of its users who has no live entry left as an [`Orphan`], so that the engine tells
///   their friends and runs `on_offline` once. Lapsed entries stay visible to the claim
///   for at least one more `ttl` past their lease, and at least [`KEEP_LAPSED`].
/// - `claim_own` does the same for the caller's own id, at start: entries of an earlier
///   process under the same id are taken down, whatever their lease.
/// - `leave` is a graceful stop: the given entries of `node` lapse at once (gone for
///   `online`), and the node lapses `after` from now (at most one `ttl`), when another
///   node's `claim_lapsed` takes the users that did not come back elsewhere.
/// - The defaults suit a backend with one node: nothing to claim, and `leave` takes the
///   entries offline one by one.
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

    /// Claims the lapsed nodes other than `node`; their users left with no live device
    /// (see the contract).
    async fn claim_lapsed(&self, node: &NodeId) -> Result<Vec<Orphan>, PresenceError> {
        let _ = node;
        Ok(Vec::new())
    }

    /// Takes down the entries an earlier process left under this node's id; their users
    /// left with no live device.
    async fn claim_own(&self, node: &NodeId) -> Result<Vec<Orphan>, PresenceError> {
        let _ = node;
        Ok(Vec::new())
    }

    /// A graceful stop of `node`: `devices` go offline now, and the node's users are
    /// handed to whichever node claims it `after` from now (see the contract).
    async fn leave(
        &self,
        node: &NodeId,
        devices: &[(UserId, DeviceId)],
        after: Duration,
    ) -> Result<(), PresenceError> {
        let _ = after;
        for (user, device) in devices {
            self.set_offline(*user, device, node).await?;
        }
        Ok(())
    }
}
