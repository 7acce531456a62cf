use serde::{Deserialize, Serialize};

use crate::model::{Body, ConversationId, DeviceId, GroupId, Platform, Role, Seq, UserId};
use crate::protocol::Signal;

/// The device a client logs in from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// Client-chosen id, stable for the installation.
    pub id: DeviceId,
    /// Human name, shown in the user's device list.
    #[serde(default)]
    pub name: String,
    /// Kind of client.
    #[serde(default)]
    pub platform: Platform,
}

/// Which part of a conversation's history to read. With neither bound, the newest page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HistoryQuery {
    /// Only messages with a seq above this, oldest first (catching up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Seq>,
    /// Only messages with a seq below this, the newest of them (scrolling back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Seq>,
    /// At most this many (the server caps it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// A command from a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Request {
    /// Must be the first frame: the protocol versions the client speaks, and the codec
    /// it wants for the frames after the reply (`json` unless it asks otherwise).
    Hello {
        /// Versions the client speaks.
        versions: Vec<u32>,
        /// Free-form client name and version, for logs.
        #[serde(default)]
        client: String,
        /// The codec for every frame after the server's reply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        codec: Option<crate::protocol::Codec>,
    },
    /// Keep-alive; answered with `pong`.
    Ping,

    /// Create an account. Does not log in.
    Register {
        /// 3 to 32 characters from `a-z 0-9 _ .`; compared case-insensitively.
        username: String,
        /// 8 to 256 characters.
        password: String,
        /// 1 to 64 characters shown to others.
        display_name: String,
        /// Avatar URL.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        avatar: Option<String>,
    },
    /// Log in with a password from a device; returns a device token for `resume`.
    Login {
        /// The account.
        username: String,
        /// Its password.
        password: String,
        /// The device logging in.
        device: DeviceInfo,
    },
    /// Log in with a device token from an earlier `login`.
    Resume {
        /// The token.
        token: String,
    },
    /// Log this device out and revoke its token.
    Logout,
    /// List this user's devices.
    Devices,
    /// Revoke a device's token and close its session.
    RevokeDevice {
        /// The device to revoke.
        device: DeviceId,
    },
    /// Change the password; every other device is logged out.
    ChangePassword {
        /// The current password.
        old_password: String,
        /// The new one.
        new_password: String,
    },
    /// Look up a user by username (to send a friend request).
    FindUser {
        /// The username.
        username: String,
    },
    /// Public profiles of some users.
    Users {
        /// Whose (at most 500).
        users: Vec<UserId>,
    },

    /// Ask `user` to be friends.
    RequestFriend {
        /// Whom to ask.
        user: UserId,
        /// A note for them (at most 256 characters).
        #[serde(default)]
        note: String,
    },
    /// Accept `user`'s friend request.
    AcceptFriend {
        /// Who asked.
        user: UserId,
    },
    /// Decline `user`'s friend request, or withdraw one's own request to `user`.
    DeclineFriend {
        /// The other party.
        user: UserId,
    },
    /// End a friendship.
    RemoveFriend {
        /// The friend.
        user: UserId,
    },
    /// Block `user`: no messages or friend requests either way until unblocked.
    Block {
        /// Whom.
        user: UserId,
    },
    /// Lift a block.
    Unblock {
        /// Whom.
        user: UserId,
    },
    /// List friends.
    Friends,
    /// List pending friend requests, incoming and outgoing.
    FriendRequests,
    /// List the users this user has blocked.
    BlockedUsers,

    /// Create a group; the caller becomes its owner.
    CreateGroup {
        /// 1 to 64 characters.
        name: String,
        /// First members besides the owner.
        #[serde(default)]
        members: Vec<UserId>,
        /// Whether anyone may join without being added.
        #[serde(default)]
        open: bool,
    },
    /// Add users to a group (any member may add their friends).
    AddMembers {
        /// The group.
        group: GroupId,
        /// Whom to add.
        users: Vec<UserId>,
    },
    /// Join an open group.
    JoinGroup {
        /// The group.
        group: GroupId,
    },
    /// Leave a group (an owner must transfer ownership first).
    LeaveGroup {
        /// The group.
        group: GroupId,
    },
    /// Remove a member (owner: anyone; admin: plain members).
    KickMember {
        /// The group.
        group: GroupId,
        /// Whom to remove.
        user: UserId,
    },
    /// Make a member an admin or a plain member (owner only).
    SetRole {
        /// The group.
        group: GroupId,
        /// Whose role.
        user: UserId,
        /// `admin` or `member`.
        role: Role,
    },
    /// Rename a group (owner or admin).
    RenameGroup {
        /// The group.
        group: GroupId,
        /// 1 to 64 characters.
        name: String,
    },
    /// Hand the group to another member (owner only); the old owner becomes an admin.
    TransferGroup {
        /// The group.
        group: GroupId,
        /// The new owner.
        to: UserId,
    },
    /// A group's settings and member count (members only).
    GroupInfo {
        /// The group.
        group: GroupId,
    },
    /// A page of a group's members, ordered by user id (members only).
    GroupMembers {
        /// The group.
        group: GroupId,
        /// Only members with a greater user id (the last one of the previous page).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<UserId>,
        /// At most this many (default 200, at most 500).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// The groups this user is in.
    MyGroups,

    /// Send a message. Retrying with the same `client_id` returns the first result.
    Send {
        /// Where.
        conversation: ConversationId,
        /// The sender's own unique id for this message (1 to 64 characters).
        client_id: String,
        /// What.
        body: Body,
    },
    /// This user's conversations with their last seq, read seq and unread count.
    Conversations,
    /// Read a conversation's messages.
    History {
        /// Which conversation.
        conversation: ConversationId,
        /// Which part.
        #[serde(flatten)]
        query: HistoryQuery,
    },
    /// Move this user's read cursor forward (it never moves back). The other party of
    /// a direct chat, and in a group the senders of the newly read messages, get a
    /// `receipt`.
    MarkRead {
        /// Which conversation.
        conversation: ConversationId,
        /// Read up to and including this seq.
        seq: Seq,
    },
    /// Move this user's delivered cursor forward: every message up to `seq` reached a
    /// device. The other party of a direct chat gets a `receipt`.
    Ack {
        /// Which conversation.
        conversation: ConversationId,
        /// Delivered up to and including this seq.
        seq: Seq,
    },
    /// Who has received and read a message: a page of the cursors at or past `seq`,
    /// ordered by user id (members only).
    Receipts {
        /// Which conversation.
        conversation: ConversationId,
        /// The message.
        seq: Seq,
        /// Only users with a greater id (the last one of the previous page).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<UserId>,
        /// At most this many (default and maximum 500).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// This user is typing (or stopped). Never stored; relayed at most once a second per
    /// user and conversation.
    Typing {
        /// Where.
        conversation: ConversationId,
        /// `false` when the user stopped typing (cleared the input, sent).
        #[serde(default = "yes")]
        active: bool,
    },
    /// Recall one's own message within the recall window (group owners and admins: the
    /// messages of members below them, and their own, at any time). Stores a
    /// `message_recalled` event in the conversation. Recalling a recalled message
    /// answers `conflict`, so a retry after a lost reply can take that as done.
    Recall {
        /// Where.
        conversation: ConversationId,
        /// Which message.
        seq: Seq,
        /// The sender's id for the recall event (optional; shares the device's
        /// namespace with `send`).
        #[serde(default)]
        client_id: String,
    },
    /// Replace the body of one's own message within the edit window. Stores a
    /// `message_edited` event in the conversation.
    Edit {
        /// Where.
        conversation: ConversationId,
        /// Which message.
        seq: Seq,
        /// Makes a retry safe, as in `send` (optional).
        #[serde(default)]
        client_id: String,
        /// The new body.
        body: Body,
    },
    /// Hide a message from this user's own history, on all their devices.
    DeleteForMe {
        /// Where.
        conversation: ConversationId,
        /// Which message.
        seq: Seq,
    },
    /// Relay a call signal to a friend or a member of a shared group.
    Signal {
        /// The other party.
        to: UserId,
        /// One of their devices; all of them when absent (an offer).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device: Option<DeviceId>,
        /// The caller's id for the call (1 to 64 characters), repeated by every signal.
        call_id: String,
        /// The signal.
        signal: Signal,
    },
    /// Online status and last seen of some friends (others are left out).
    Presence {
        /// Whose (at most 500).
        users: Vec<UserId>,
    },
}

fn yes() -> bool {
    true
}

impl Request {
    /// The command's name as on the wire, for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Request::Hello { .. } => "hello",
            Request::Ping => "ping",
            Request::Register { .. } => "register",
            Request::Login { .. } => "login",
            Request::Resume { .. } => "resume",
            Request::Logout => "logout",
            Request::Devices => "devices",
            Request::RevokeDevice { .. } => "revoke_device",
            Request::ChangePassword { .. } => "change_password",
            Request::FindUser { .. } => "find_user",
            Request::Users { .. } => "users",
            Request::RequestFriend { .. } => "request_friend",
            Request::AcceptFriend { .. } => "accept_friend",
            Request::DeclineFriend { .. } => "decline_friend",
            Request::RemoveFriend { .. } => "remove_friend",
            Request::Block { .. } => "block",
            Request::Unblock { .. } => "unblock",
            Request::Friends => "friends",
            Request::FriendRequests => "friend_requests",
            Request::BlockedUsers => "blocked_users",
            Request::CreateGroup { .. } => "create_group",
            Request::AddMembers { .. } => "add_members",
            Request::JoinGroup { .. } => "join_group",
            Request::LeaveGroup { .. } => "leave_group",
            Request::KickMember { .. } => "kick_member",
            Request::SetRole { .. } => "set_role",
            Request::RenameGroup { .. } => "rename_group",
            Request::TransferGroup { .. } => "transfer_group",
            Request::GroupInfo { .. } => "group_info",
            Request::GroupMembers { .. } => "group_members",
            Request::MyGroups => "my_groups",
            Request::Send { .. } => "send",
            Request::Conversations => "conversations",
            Request::History { .. } => "history",
            Request::MarkRead { .. } => "mark_read",
            Request::Ack { .. } => "ack",
            Request::Receipts { .. } => "receipts",
            Request::Typing { .. } => "typing",
            Request::Recall { .. } => "recall",
            Request::Edit { .. } => "edit",
            Request::DeleteForMe { .. } => "delete_for_me",
            Request::Signal { .. } => "signal",
            Request::Presence { .. } => "presence",
        }
    }
}
