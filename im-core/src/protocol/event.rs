use serde::{Deserialize, Serialize};

use crate::model::{FriendRequest, Message, UserId};

/// How a frame may be treated when a session cannot keep up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameClass {
    /// Never dropped silently: if it cannot be queued, the session is told to resync
    /// (and it is in storage, so sync recovers it).
    Durable,
    /// Ephemeral (typing, presence): dropped first under pressure.
    Droppable,
}

/// Something the server tells a session without being asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A message was stored in one of this user's conversations (including system
    /// messages about group changes, and this user's own messages sent from another
    /// device).
    Message {
        /// The message.
        message: Message,
    },
    /// Someone asked to be this user's friend.
    FriendRequest {
        /// The request.
        request: FriendRequest,
    },
    /// `user` and this user are now friends (this user's request was accepted, or this
    /// user accepted on another device).
    FriendAdded {
        /// The new friend.
        user: UserId,
    },
    /// The friend request between this user and `user` was declined.
    FriendRequestDeclined {
        /// The other party.
        user: UserId,
    },
    /// `user` and this user are no longer friends.
    FriendRemoved {
        /// The former friend.
        user: UserId,
    },
    /// This user blocked `user` (sent to the user's other devices).
    Blocked {
        /// Who was blocked.
        user: UserId,
    },
    /// This user unblocked `user` (sent to the user's other devices).
    Unblocked {
        /// Who was unblocked.
        user: UserId,
    },
    /// The server dropped pushes for this session because it fell behind. Nothing is
    /// lost: ask for `conversations` and fetch `history` after the last seq seen.
    Resync {
        /// Why, for logs.
        reason: String,
    },
    /// The server is closing this session (same device logged in elsewhere, device
    /// revoked, password changed, server shutting down).
    Kicked {
        /// Why, for the user.
        reason: String,
    },
}

impl Event {
    /// How the fan-out may treat this event under backpressure.
    pub fn class(&self) -> FrameClass {
        // Every event defined so far is a durable fact; typing and presence (droppable)
        // arrive with the real-time issue.
        FrameClass::Durable
    }
}
