use serde::{Deserialize, Serialize};

use crate::model::{
    ConversationId, Device, Friend, FriendRequest, Group, Member, Message, MessageId, Seq,
    Timestamp, User, UserId,
};

/// One conversation as listed by `conversations`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationSummary {
    /// Which conversation.
    pub conversation: ConversationId,
    /// The seq of its newest message.
    pub last_seq: Seq,
    /// This user's read cursor.
    pub read_seq: Seq,
    /// Messages after the read cursor.
    pub unread: u64,
    /// This user's delivered cursor.
    #[serde(default)]
    pub delivered_seq: Seq,
    /// In a direct conversation, the other user's read cursor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_read_seq: Option<Seq>,
    /// In a direct conversation, the other user's delivered cursor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_delivered_seq: Option<Seq>,
    /// The newest message, for a chat list preview.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_message: Option<Message>,
}

/// The successful answer to a request. Each request has one reply type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reply {
    /// To `hello`.
    Hello {
        /// The version the server picked.
        version: u32,
        /// Server name and version.
        server: String,
        /// The largest frame the server accepts, in bytes.
        max_frame_bytes: u32,
        /// The server closes a connection silent for this long; send `ping` well within it.
        idle_timeout_ms: u64,
    },
    /// To `ping`.
    Pong,
    /// To commands that return nothing.
    Done,
    /// To `register`, `find_user`.
    User {
        /// The user.
        user: User,
    },
    /// To `users`.
    Users {
        /// The users that exist, in no particular order.
        users: Vec<User>,
    },
    /// To `login` and `resume`.
    Session {
        /// Who is logged in.
        user: User,
        /// On which device.
        device: Device,
        /// The device token for `resume` (only after `login`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
    },
    /// To `devices`.
    Devices {
        /// This user's devices.
        devices: Vec<Device>,
    },
    /// To `friends`.
    Friends {
        /// This user's friends.
        friends: Vec<Friend>,
    },
    /// To `friend_requests`.
    FriendRequests {
        /// Requests to this user.
        incoming: Vec<FriendRequest>,
        /// Requests from this user.
        outgoing: Vec<FriendRequest>,
    },
    /// To `blocked_users`.
    Blocked {
        /// Whom this user has blocked.
        users: Vec<UserId>,
    },
    /// To `create_group`, `group_info` and the other group commands: the group as it
    /// is after the command.
    Group {
        /// The group's settings.
        group: Group,
        /// How many members it has.
        member_count: u64,
    },
    /// To `group_members`.
    Members {
        /// Members ordered by user id.
        members: Vec<Member>,
        /// Whether more follow the last one.
        more: bool,
    },
    /// To `my_groups`.
    Groups {
        /// The groups.
        groups: Vec<Group>,
    },
    /// To `send`: the message is durable.
    Sent {
        /// Where it was stored.
        conversation: ConversationId,
        /// Its id.
        message_id: MessageId,
        /// Its seq.
        seq: Seq,
        /// The server time it was stored.
        sent_at: Timestamp,
        /// True when this was a retry of an already stored message.
        duplicate: bool,
    },
    /// To `conversations`.
    Conversations {
        /// This user's conversations, most recent first.
        conversations: Vec<ConversationSummary>,
    },
    /// To `history`.
    History {
        /// Messages, oldest first.
        messages: Vec<Message>,
        /// Whether more messages lie in the direction asked.
        more: bool,
    },
    /// To `mark_read`.
    Read {
        /// The read cursor after the request.
        read_seq: Seq,
    },
    /// To `ack`.
    Delivered {
        /// The delivered cursor after the request.
        delivered_seq: Seq,
    },
    /// To `receipts`.
    Receipts {
        /// Members whose delivered cursor is at or past the seq asked about, by user id.
        /// Those with `read_seq` at or past it have read it.
        receipts: Vec<Receipt>,
        /// Whether more follow the last one.
        more: bool,
    },
    /// To `signal`.
    Signaled {
        /// Whether the callee had a device online to relay it to.
        online: bool,
    },
    /// To `presence`.
    Presence {
        /// The friends asked about.
        users: Vec<PresenceStatus>,
    },
}

/// One member's receipt cursors in a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// Whose.
    pub user: UserId,
    /// Every message up to this seq reached one of their devices.
    pub delivered_seq: Seq,
    /// They have read every message up to this seq.
    pub read_seq: Seq,
}

/// Whether a user is online, and when they were last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceStatus {
    /// Whose.
    pub user: UserId,
    /// Whether a device of theirs is online.
    pub online: bool,
    /// When their last device went offline (absent while online or if never seen).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<Timestamp>,
}
