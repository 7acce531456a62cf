use serde::{Deserialize, Serialize};

use crate::model::{ConversationId, DeviceId, FriendRequest, Message, Seq, Timestamp, UserId};
use crate::protocol::Signal;

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
    /// The server is closing this session. Clients should reconnect by themselves only
    /// after `shutdown` (to another node, with backoff); the other codes need the user.
    Kicked {
        /// Why, for programs.
        #[serde(default)]
        code: KickCode,
        /// Why, for the user.
        reason: String,
    },
    /// `user`'s delivered or read cursor in a conversation moved to `seq`: every message
    /// up to it has reached a device of theirs, or been read.
    Receipt {
        /// Where.
        conversation: ConversationId,
        /// Whose cursor.
        user: UserId,
        /// Which cursor.
        kind: ReceiptKind,
        /// Where it is now.
        seq: Seq,
    },
    /// `user` is typing in a conversation (or stopped). Show it for `expires_ms` unless
    /// renewed; it is never stored.
    Typing {
        /// Where.
        conversation: ConversationId,
        /// Who.
        user: UserId,
        /// `false`: stopped.
        active: bool,
        /// How long the indicator lasts without a renewal.
        expires_ms: u32,
    },
    /// A friend came online (first device) or went offline (last device, after the
    /// grace period).
    Presence {
        /// Who.
        user: UserId,
        /// Now online?
        online: bool,
        /// With `online: false`, when.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_seen: Option<Timestamp>,
    },
    /// A call signal from `from`'s device `from_device`; answer that device.
    Signal {
        /// The other party.
        from: UserId,
        /// Their device.
        from_device: DeviceId,
        /// The call.
        call_id: String,
        /// The signal.
        signal: Signal,
    },
    /// Another device of this user answered or declined the call: stop ringing.
    CallHandled {
        /// The call.
        call_id: String,
        /// The device that handled it.
        device: DeviceId,
        /// Answered (`true`) or hung up (`false`).
        answered: bool,
    },
    /// This user hid a message on another device (delete for me).
    MessageHidden {
        /// Where.
        conversation: ConversationId,
        /// Which message.
        seq: Seq,
    },
    /// `by` pinned (or unpinned) message `seq`. Read the list with `pins`.
    Pinned {
        /// Where.
        conversation: ConversationId,
        /// Which message.
        seq: Seq,
        /// Who.
        by: UserId,
        /// `false`: unpinned.
        pinned: bool,
    },
    /// `user` reacted to a message with `emoji`, replacing their reaction to it, or took
    /// it back (`emoji` absent). `reactions` are the message's reactions after the change,
    /// as a `history` page lists them.
    Reaction {
        /// Where.
        conversation: ConversationId,
        /// Which message.
        seq: Seq,
        /// Who.
        user: UserId,
        /// Their reaction now; absent when they took it back.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        emoji: Option<String>,
        /// All the message's reactions now.
        #[serde(default)]
        reactions: Vec<crate::protocol::ReactionSummary>,
    },
    /// A friend (or this user, on their other devices) changed their profile.
    UserUpdated {
        /// The user as they are now.
        user: crate::model::User,
    },
}

/// Which receipt cursor moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptKind {
    /// Reached a device.
    Delivered,
    /// Read.
    Read,
}

/// Why a session was closed, for programs (the `reason` text is for people).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum KickCode {
    /// The same device logged in again (here or on another connection).
    Replaced,
    /// The device was logged out or revoked.
    Revoked,
    /// The password changed; every other device was logged out.
    PasswordChanged,
    /// A newer session took this one's place under the device policy.
    DeviceLimit,
    /// The server is shutting down; reconnect (with backoff).
    Shutdown,
    /// An operator disabled the account; logging in is refused until it is enabled.
    Disabled,
    /// An operator deleted the account.
    Deleted,
    /// Anything else, including a code this version does not know (a newer server's).
    #[default]
    #[serde(other)]
    Other,
}

impl KickCode {
    /// The text sent with the code.
    pub fn reason(self) -> &'static str {
        match self {
            KickCode::Replaced => "this device logged in again",
            KickCode::Revoked => "this device was logged out",
            KickCode::PasswordChanged => "the password was changed",
            KickCode::DeviceLimit => "too many devices: a newer one took this one's place",
            KickCode::Shutdown => "the server is shutting down",
            KickCode::Disabled => "this account was disabled",
            KickCode::Deleted => "this account was deleted",
            KickCode::Other => "closed by the server",
        }
    }
}

impl Event {
    /// How the fan-out may treat this event under backpressure: typing and presence are
    /// droppable (the next one supersedes them); everything else is a durable fact.
    pub fn class(&self) -> FrameClass {
        match self {
            Event::Typing { .. } | Event::Presence { .. } => FrameClass::Droppable,
            _ => FrameClass::Durable,
        }
    }
}
