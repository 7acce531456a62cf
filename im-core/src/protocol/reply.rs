//! Every successful answer: one struct per reply `type`, and [`Reply`], the enum of them
//! all. Each request names its reply in its [`Command::Output`](super::Command::Output).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::{
    self, ConversationId, Device, Friend, FriendRequest, Member, Message, MessageId, Seq,
    Timestamp, UserId,
};

/// The reactions to one message with one emoji: how many, and who (the first few by user
/// id). Pages and pushes list at most [`ReactionSummary::MAX_EMOJI`] emoji per message,
/// the most used first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReactionSummary {
    /// The message, by its seq.
    pub seq: Seq,
    /// The emoji.
    pub emoji: String,
    /// How many users reacted with it.
    pub count: u32,
    /// The first of them, by user id (at most [`ReactionSummary::MAX_USERS`]).
    pub users: Vec<UserId>,
    /// In a `history` page: whether the reader is one of them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mine: bool,
}

impl ReactionSummary {
    /// Most emoji listed per message.
    pub const MAX_EMOJI: usize = 6;
    /// Most users listed per emoji.
    pub const MAX_USERS: usize = 5;
}

/// To `react`: the message's reactions after the change, as a `history` page lists
/// them (with `mine`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "ReactionsReply")]
pub struct Reactions {
    /// Where.
    pub conversation: ConversationId,
    /// Which message.
    pub seq: Seq,
    /// Its reactions now.
    pub reactions: Vec<ReactionSummary>,
}

/// To `pins`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "PinsReply")]
pub struct Pins {
    /// Which conversation.
    pub conversation: ConversationId,
    /// Its pinned messages, the most recently pinned first.
    pub pins: Vec<model::Pin>,
}

/// One conversation as listed by `conversations`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
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
    /// While a message that mentions this user is unread: the seq of the newest such
    /// message (the chat list's `@` mark, and where to jump).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mentioned: Option<Seq>,
}

/// The successful answer to a request: `{"type": <name>, ...fields}`. Each variant holds
/// the struct of the same name; a request's [`Command::Output`](super::Command::Output)
/// says which one it gets.
macro_rules! define_replies {
    ($($name:ident $Reply:ident,)*) => {
        /// The successful answer to a request. Each request has one reply type, named by
        /// its [`Command::Output`](super::Command::Output).
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "type", rename_all = "snake_case")]
        #[non_exhaustive]
        pub enum Reply {
            $(
                #[doc = concat!("`", stringify!($name), "`: see [`", stringify!($Reply), "`].")]
                $Reply($Reply),
            )*
        }

        impl Reply {
            /// Every reply's `type`.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($name)),*];

            /// The reply's `type` on the wire.
            pub fn name(&self) -> &'static str {
                match self {
                    $(Reply::$Reply(_) => stringify!($name),)*
                }
            }
        }

        $(
            impl $Reply {
                #[doc = concat!("Its `type` on the wire: `", stringify!($name), "`.")]
                pub const NAME: &'static str = stringify!($name);
            }

            impl From<$Reply> for Reply {
                fn from(reply: $Reply) -> Reply {
                    Reply::$Reply(reply)
                }
            }

            impl TryFrom<Reply> for $Reply {
                type Error = Reply;

                fn try_from(reply: Reply) -> Result<$Reply, Reply> {
                    match reply {
                        Reply::$Reply(inner) => Ok(inner),
                        other => Err(other),
                    }
                }
            }
        )*
    };
}

define_replies! {
    hello Hello,
    pong Pong,
    done Done,
    user User,
    users Users,
    session Session,
    devices Devices,
    friends Friends,
    friend_requests FriendRequests,
    blocked Blocked,
    group Group,
    members Members,
    groups Groups,
    sent Sent,
    conversations Conversations,
    history History,
    read Read,
    delivered Delivered,
    receipts Receipts,
    signaled Signaled,
    presence Presence,
    pins Pins,
    reactions Reactions,
    found Found,
}

/// To `hello`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "HelloReply")]
pub struct Hello {
    /// The version the server picked.
    pub version: u32,
    /// Server name and version.
    pub server: String,
    /// The largest frame the server accepts, in bytes.
    pub max_frame_bytes: u32,
    /// The server closes a connection silent for this long; send `ping` well within it.
    pub idle_timeout_ms: u64,
}

/// To `ping`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "PongReply")]
pub struct Pong {}

/// To commands that return nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "DoneReply")]
pub struct Done {}

/// To `register`, `find_user`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "UserReply")]
pub struct User {
    /// The user.
    pub user: model::User,
}

/// To `users`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "UsersReply")]
pub struct Users {
    /// The users that exist, in no particular order.
    pub users: Vec<model::User>,
}

/// To `login` and `resume`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "SessionReply")]
pub struct Session {
    /// Who is logged in.
    pub user: model::User,
    /// On which device.
    pub device: Device,
    /// The device token for `resume` (only after `login`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// To `devices`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "DevicesReply")]
pub struct Devices {
    /// This user's devices.
    pub devices: Vec<Device>,
}

/// To `friends`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "FriendsReply")]
pub struct Friends {
    /// This user's friends.
    pub friends: Vec<Friend>,
}

/// To `friend_requests`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "FriendRequestsReply")]
pub struct FriendRequests {
    /// Requests to this user.
    pub incoming: Vec<FriendRequest>,
    /// Requests from this user.
    pub outgoing: Vec<FriendRequest>,
}

/// To `blocked_users`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "BlockedReply")]
pub struct Blocked {
    /// Whom this user has blocked.
    pub users: Vec<UserId>,
}

/// To `create_group`, `group_info` and the other group commands: the group as it
/// is after the command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "GroupReply")]
pub struct Group {
    /// The group's settings.
    pub group: model::Group,
    /// How many members it has.
    pub member_count: u64,
}

/// To `group_members`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "MembersReply")]
pub struct Members {
    /// Members ordered by user id.
    pub members: Vec<Member>,
    /// Whether more follow the last one.
    pub more: bool,
}

/// To `my_groups`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "GroupsReply")]
pub struct Groups {
    /// The groups.
    pub groups: Vec<model::Group>,
}

/// To `send`: the message is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "SentReply")]
pub struct Sent {
    /// Where it was stored.
    pub conversation: ConversationId,
    /// Its id.
    pub message_id: MessageId,
    /// Its seq.
    pub seq: Seq,
    /// The server time it was stored.
    pub sent_at: Timestamp,
    /// True when this was a retry of an already stored message.
    pub duplicate: bool,
}

/// To `conversations`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "ConversationsReply")]
pub struct Conversations {
    /// This user's conversations, most recent first.
    pub conversations: Vec<ConversationSummary>,
}

/// To `history`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "HistoryReply")]
pub struct History {
    /// Messages, oldest first.
    pub messages: Vec<Message>,
    /// Whether more messages lie in the direction asked.
    pub more: bool,
    /// The reactions to these messages, by seq, the most used emoji of each first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<ReactionSummary>,
}

/// To `search`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "FoundReply")]
pub struct Found {
    /// The matching messages, newest first.
    pub messages: Vec<Message>,
    /// Whether older matches remain (ask again with `before` the last one's id).
    pub more: bool,
}

/// To `mark_read`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "ReadReply")]
pub struct Read {
    /// The read cursor after the request.
    pub read_seq: Seq,
}

/// To `ack`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "DeliveredReply")]
pub struct Delivered {
    /// The delivered cursor after the request.
    pub delivered_seq: Seq,
}

/// To `receipts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "ReceiptsReply")]
pub struct Receipts {
    /// Members whose delivered cursor is at or past the seq asked about, by user id.
    /// Those with `read_seq` at or past it have read it.
    pub receipts: Vec<Receipt>,
    /// Whether more follow the last one.
    pub more: bool,
}

/// To `signal`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "SignaledReply")]
pub struct Signaled {
    /// Whether the callee had a device online to relay it to.
    pub online: bool,
}

/// To `presence`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "PresenceReply")]
pub struct Presence {
    /// The friends asked about.
    pub users: Vec<PresenceStatus>,
}

/// One member's receipt cursors in a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Receipt {
    /// Whose.
    pub user: UserId,
    /// Every message up to this seq reached one of their devices.
    pub delivered_seq: Seq,
    /// They have read every message up to this seq.
    pub read_seq: Seq,
}

/// Whether a user is online, and when they were last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PresenceStatus {
    /// Whose.
    pub user: UserId,
    /// Whether a device of theirs is online.
    pub online: bool,
    /// When their last device went offline (absent while online or if never seen).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<Timestamp>,
}
