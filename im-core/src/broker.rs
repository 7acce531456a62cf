//! Delivery of frames between the nodes of a cluster.
//!
//! Each node subscribes once to its own address. When a message's few recipients have
//! devices on other nodes, the fan-out publishes one [`Envelope`] per node, carrying the
//! encoded frame and the recipient list; the receiving node delivers it to its local
//! sessions exactly as it does its own messages. For many recipients (a group) it
//! broadcasts one envelope instead of looking up where each is: every other node
//! delivers to those it holds. Implementations:
//! [`LocalBroker`](crate::memory::LocalBroker) (nodes in one process, or one node) and
//! `im_store::RedisBroker`.

use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::model::{DeviceId, GroupId, Timestamp, UserId};
use crate::presence::NodeId;
use crate::protocol::{FrameClass, KickCode};

/// What one node asks another to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Envelope {
    /// Deliver a frame to the local sessions of these users (those the node holds; a
    /// broadcast names users of every node).
    Deliver {
        /// The recipients.
        users: Vec<UserId>,
        /// A session not to deliver to (the sender's own, which got the reply).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        skip: Option<(UserId, DeviceId)>,
        /// Only this device of the recipients (a call signal to one device).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device: Option<DeviceId>,
        /// How the frame may be treated under backpressure.
        class: FrameClass,
        /// The frame, JSON-encoded `ServerFrame`.
        frame: Bytes,
        /// Set when the envelope was broadcast: the node that sent it, which ignores its
        /// own copy (it delivered to its sessions already).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        origin: Option<NodeId>,
    },
    /// A group's membership changed: drop any cached copy of it.
    InvalidateGroup {
        /// The group.
        group: GroupId,
        /// The node that made the change (it has already acted on it).
        origin: NodeId,
    },
    /// Two users' friendship or blocks changed: drop any cached copy of their tie.
    InvalidateContacts {
        /// One of the two.
        a: UserId,
        /// The other.
        b: UserId,
        /// The node that made the change (it has already acted on it).
        origin: NodeId,
    },
    /// Close the local sessions of a user's device (revoked, replaced, password changed).
    Kick {
        /// Whose.
        user: UserId,
        /// Which device; all of the user's devices but `keep` when `None`.
        device: Option<DeviceId>,
        /// With `device: None`, the device to leave alone.
        keep: Option<DeviceId>,
        /// Only sessions that started at or before this time (a device replaced by a
        /// newer login must not have that newer session closed by a late envelope).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        started_before: Option<Timestamp>,
        /// Told to the device.
        code: KickCode,
        /// The node that asked (it has already kicked its own sessions).
        origin: NodeId,
    },
    /// Envelopes addressed to this node may have been lost: its link to the broker broke
    /// and came back, or it fell behind. A broker puts this in its own subscription
    /// stream (it is never published), once the link is whole again; the node tells every
    /// local session to `resync`, since any of them may have missed pushes.
    Missed {
        /// Why, for logs and for the sessions' `resync`.
        reason: String,
    },
}

/// A broker failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// The backend is unreachable; the call may succeed later.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// Anything else the backend reported.
    #[error("broker backend error: {0}")]
    Backend(String),
}

/// Node-to-node delivery.
///
/// # Contract
/// - `subscribe(node)` returns the stream of envelopes published to `node` from then
///   on, in publish order per publisher. A node subscribes once.
/// - `publish(node, e)` delivers `e` to `node`'s subscription, at most once. Delivery is
///   best effort (a node that is down misses it): storage and sync are the truth.
/// - `broadcast(e)` delivers `e` to every subscribed node, the publisher's own included.
/// - `publish_many` and `broadcast_many` are the same as calling `publish` or
///   `broadcast` for each envelope in turn; a broker may carry them together (one
///   network message), which lets the receiving node deliver them in one go. The
///   defaults call the single forms one by one.
/// - A broker that can lose envelopes while its subscription is interrupted (a network
///   broker) puts [`Envelope::Missed`] in the stream once the subscription is whole
///   again, before any envelope that arrives after the gap.
#[async_trait]
pub trait Broker: Send + Sync + fmt::Debug {
    /// Publishes to one node.
    async fn publish(&self, node: &NodeId, envelope: Envelope) -> Result<(), BrokerError>;
    /// Publishes to every node.
    async fn broadcast(&self, envelope: Envelope) -> Result<(), BrokerError>;
    /// Publishes `envelopes` to one node, in order.
    async fn publish_many(
        &self,
        node: &NodeId,
        envelopes: Vec<Envelope>,
    ) -> Result<(), BrokerError> {
        for envelope in envelopes {
            self.publish(node, envelope).await?;
        }
        Ok(())
    }
    /// Publishes `envelopes` to every node, in order.
    async fn broadcast_many(&self, envelopes: Vec<Envelope>) -> Result<(), BrokerError> {
        for envelope in envelopes {
            self.broadcast(envelope).await?;
        }
        Ok(())
    }
    /// The envelopes published to `node`.
    async fn subscribe(&self, node: &NodeId) -> Result<BoxStream<'static, Envelope>, BrokerError>;
}
