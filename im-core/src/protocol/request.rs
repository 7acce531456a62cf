//! Every request a client can send: one struct each, and the table that ties each to
//! its name on the wire, its reply and the engine method that answers it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::{
    Body, ConversationId, DeviceId, GroupId, MessageId, Platform, Role, Seq, UserId,
};
use crate::protocol::{Command, CommandSchema, ErrorCode, reply};

/// The device a client logs in from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
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

/// Every request: its `type` on the wire, its struct, the reply it gets, and the error
/// codes it may answer besides those any request may get (`invalid`, `unavailable`,
/// `internal`, and `unauthorized` without a session). The name is the variant's in
/// snake case, and the engine method that answers it (in the `engine/` file of its
/// family) has that name too: adding a request is a struct below, a line here, that
/// method, and a route if HTTP should have it.
///
/// `$callback` is called with the whole table, so that the protocol types, the engine's
/// dispatch and the documentation checks enumerate the same list.
macro_rules! for_each_request {
    ($callback:ident) => {
        $callback! {
            // Answered without a session (before login).
            open {
                hello Hello -> Hello [UnsupportedVersion, Conflict];
                ping Ping -> Pong [];
                register Register -> User [Conflict, RateLimited, ProofRequired, Forbidden];
                send_code SendCode -> Done [Forbidden, RateLimited, Unavailable];
                login Login -> Session [Unauthorized, Conflict, RateLimited, DeviceLimit, ProofRequired, Forbidden];
                resume Resume -> Session [Unauthorized, Conflict, DeviceLimit];
            }
            // Answered for a logged-in session only.
            session {
                logout Logout -> Done [];
                devices Devices -> Devices [];
                revoke_device RevokeDevice -> Done [NotFound];
                change_password ChangePassword -> Done [Forbidden];
                update_profile UpdateProfile -> User [];
                find_user FindUser -> User [NotFound];
                users Users -> Users [TooLarge];
                request_friend RequestFriend -> Done [Forbidden, NotFound, Conflict];
                accept_friend AcceptFriend -> Done [NotFound];
                decline_friend DeclineFriend -> Done [NotFound];
                remove_friend RemoveFriend -> Done [NotFound];
                block Block -> Done [NotFound];
                unblock Unblock -> Done [NotFound];
                friends Friends -> Friends [];
                friend_requests FriendRequests -> FriendRequests [];
                blocked_users BlockedUsers -> Blocked [];
                create_group CreateGroup -> Group [Forbidden];
                add_members AddMembers -> Group [Forbidden, NotFound];
                join_group JoinGroup -> Group [Forbidden, NotFound, Conflict];
                leave_group LeaveGroup -> Group [Forbidden, NotFound, Conflict];
                kick_member KickMember -> Group [Forbidden, NotFound, Conflict];
                set_role SetRole -> Group [Forbidden, NotFound, Conflict];
                rename_group RenameGroup -> Group [Forbidden, NotFound];
                transfer_group TransferGroup -> Group [Forbidden, NotFound, Conflict];
                group_info GroupInfo -> Group [Forbidden, NotFound];
                group_members GroupMembers -> Members [Forbidden, NotFound];
                my_groups MyGroups -> Groups [];
                send Send -> Sent [Forbidden, NotFound, TooLarge, RateLimited];
                forward Forward -> Sent [Forbidden, NotFound, TooLarge, RateLimited];
                conversations Conversations -> Conversations [];
                history History -> History [Forbidden, NotFound];
                mark_read MarkRead -> Read [Forbidden, NotFound];
                ack Ack -> Delivered [Forbidden, NotFound];
                receipts Receipts -> Receipts [Forbidden, NotFound];
                typing Typing -> Done [Forbidden, NotFound, RateLimited];
                recall Recall -> Sent [Forbidden, NotFound, Conflict, RateLimited];
                edit Edit -> Sent [Forbidden, NotFound, Conflict, TooLarge, RateLimited];
                delete_for_me DeleteForMe -> Done [Forbidden, NotFound];
                react React -> Reactions [Forbidden, NotFound, RateLimited];
                pin Pin -> Done [Forbidden, NotFound, Conflict];
                unpin Unpin -> Done [Forbidden, NotFound];
                pins Pins -> Pins [Forbidden, NotFound];
                search Search -> Found [Forbidden, NotFound, RateLimited];
                signal Signal -> Signaled [Forbidden, NotFound, RateLimited];
                presence Presence -> Presence [TooLarge];
            }
        }
    };
}
pub(crate) use for_each_request;

macro_rules! define_requests {
    (
        open { $($open:ident $Open:ident -> $OpenOutput:ident [$($open_error:ident),*];)* }
        session { $($name:ident $Request:ident -> $Output:ident [$($error:ident),*];)* }
    ) => {
        define_requests! {
            $($open $Open -> $OpenOutput [$($open_error),*] false;)*
            $($name $Request -> $Output [$($error),*] true;)*
        }
    };
    ($($name:ident $Request:ident -> $Output:ident [$($error:ident),*] $session:literal;)*) => {
        /// A command from a client: `{"type": <name>, ...fields}`. Each variant holds
        /// the struct of the same name, whose [`Command`] impl names its reply.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "type", rename_all = "snake_case")]
        #[non_exhaustive]
        pub enum Request {
            $(
                #[doc = concat!("`", stringify!($name), "`: see [`", stringify!($Request), "`].")]
                $Request($Request),
            )*
        }

        impl Request {
            /// Every request's `type`, in the order of the protocol document.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($name)),*];

            /// Every request, as documents generated from the protocol see it.
            pub const COMMANDS: &'static [CommandSchema] = &[
                $(CommandSchema::of::<$Request>(reply::$Output::NAME),)*
            ];

            /// The command's name as on the wire, for logs and metrics.
            pub fn name(&self) -> &'static str {
                match self {
                    $(Request::$Request(_) => stringify!($name),)*
                }
            }

            /// The request of this `type`, as documents see it.
            pub fn command(name: &str) -> Option<&'static CommandSchema> {
                Request::COMMANDS.iter().find(|c| c.name == name)
            }
        }

        $(
            impl From<$Request> for Request {
                fn from(request: $Request) -> Request {
                    Request::$Request(request)
                }
            }

            impl Command for $Request {
                const NAME: &'static str = stringify!($name);
                const ERRORS: &'static [ErrorCode] = &[$(ErrorCode::$error),*];
                const NEEDS_SESSION: bool = $session;
                type Output = reply::$Output;
            }
        )*
    };
}
for_each_request!(define_requests);

/// Must be the first frame: the protocol versions the client speaks, and the codec
/// it wants for the frames after the reply (`json` unless it asks otherwise).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Hello {
    /// Versions the client speaks.
    pub versions: Vec<u32>,
    /// Free-form client name and version, for logs.
    #[serde(default)]
    pub client: String,
    /// The codec for every frame after the server's reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codec: Option<crate::protocol::Codec>,
}

/// Keep-alive; answered with `pong`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Ping {}

/// Create an account. Does not log in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Register {
    /// 3 to 32 characters from `a-z 0-9 _ .`; compared case-insensitively.
    #[schemars(regex(pattern = r"^[A-Za-z0-9_][A-Za-z0-9_.]{2,31}$"))]
    pub username: String,
    /// 8 to 256 characters.
    #[schemars(length(min = 8, max = 256))]
    pub password: String,
    /// 1 to 64 characters shown to others.
    #[schemars(length(min = 1, max = 64))]
    pub display_name: String,
    /// Avatar URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
    /// What the server's gate asked for, when it answered `proof_required`: a code sent
    /// by `send_code`, a captcha token, an invite. At most 1024 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub proof: Option<String>,
    /// The e-mail address or phone number a code was sent to (`send_code.contact`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 254))]
    pub contact: Option<String>,
}

/// Ask the server to send a verification code to an e-mail address or phone number, for
/// a `register` to show as its `proof`. How the code travels is the server's (its gate's)
/// business; a server that sends none answers `forbidden`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SendCode {
    /// Where the code goes: an e-mail address or a phone number, 3 to 254 characters.
    #[schemars(length(min = 3, max = 254))]
    pub contact: String,
}

/// Log in with a password from a device; returns a device token for `resume`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Login {
    /// The account.
    pub username: String,
    /// Its password.
    pub password: String,
    /// The device logging in.
    pub device: DeviceInfo,
    /// A second factor, when the server's gate answered `proof_required`. At most 1024
    /// characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub proof: Option<String>,
}

/// Log in with a device token from an earlier `login`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Resume {
    /// The token.
    pub token: String,
}

/// Log this device out and revoke its token.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Logout {}

/// List this user's devices.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Devices {}

/// Revoke a device's token and close its session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RevokeDevice {
    /// The device to revoke.
    pub device: DeviceId,
}

/// Change the password; every other device is logged out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChangePassword {
    /// The current password.
    pub old_password: String,
    /// The new one.
    #[schemars(length(min = 8, max = 256))]
    pub new_password: String,
}

/// Change this user's display name or avatar (the fields given; the others stay).
/// Their friends and their own other devices get `user_updated`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct UpdateProfile {
    /// A new display name (1 to 64 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// A new avatar URL (`http(s)://…`, or a path on this server other than an upload's);
    /// an empty string removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
}

/// Look up a user by username (to send a friend request).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FindUser {
    /// The username.
    pub username: String,
}

/// Public profiles of some users.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Users {
    /// Whose (at most 500).
    pub users: Vec<UserId>,
}

/// Ask `user` to be friends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RequestFriend {
    /// Whom to ask.
    pub user: UserId,
    /// A note for them (at most 256 characters).
    #[serde(default)]
    #[schemars(length(max = 256))]
    pub note: String,
}

/// Accept `user`'s friend request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AcceptFriend {
    /// Who asked.
    pub user: UserId,
}

/// Decline `user`'s friend request, or withdraw one's own request to `user`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeclineFriend {
    /// The other party.
    pub user: UserId,
}

/// End a friendship.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RemoveFriend {
    /// The friend.
    pub user: UserId,
}

/// Block `user`: no messages or friend requests either way until unblocked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Block {
    /// Whom.
    pub user: UserId,
}

/// Lift a block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Unblock {
    /// Whom.
    pub user: UserId,
}

/// List friends.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Friends {}

/// List pending friend requests, incoming and outgoing.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct FriendRequests {}

/// List the users this user has blocked.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct BlockedUsers {}

/// Create a group; the caller becomes its owner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CreateGroup {
    /// 1 to 64 characters.
    #[schemars(length(min = 1, max = 64))]
    pub name: String,
    /// First members besides the owner.
    #[serde(default)]
    pub members: Vec<UserId>,
    /// Whether anyone may join without being added.
    #[serde(default)]
    pub open: bool,
}

/// Add users to a group (any member may add their friends).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AddMembers {
    /// The group.
    pub group: GroupId,
    /// Whom to add.
    pub users: Vec<UserId>,
}

/// Join an open group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JoinGroup {
    /// The group.
    pub group: GroupId,
}

/// Leave a group (an owner must transfer ownership first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LeaveGroup {
    /// The group.
    pub group: GroupId,
}

/// Remove a member (owner: anyone; admin: plain members).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KickMember {
    /// The group.
    pub group: GroupId,
    /// Whom to remove.
    pub user: UserId,
}

/// Make a member an admin or a plain member (owner only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SetRole {
    /// The group.
    pub group: GroupId,
    /// Whose role.
    pub user: UserId,
    /// `admin` or `member`.
    pub role: Role,
}

/// Rename a group (owner or admin).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RenameGroup {
    /// The group.
    pub group: GroupId,
    /// 1 to 64 characters.
    #[schemars(length(min = 1, max = 64))]
    pub name: String,
}

/// Hand the group to another member (owner only); the old owner becomes an admin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TransferGroup {
    /// The group.
    pub group: GroupId,
    /// The new owner.
    pub to: UserId,
}

/// A group's settings and member count (members only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GroupInfo {
    /// The group.
    pub group: GroupId,
}

/// A page of a group's members, ordered by user id (members only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GroupMembers {
    /// The group.
    pub group: GroupId,
    /// Only members with a greater user id (the last one of the previous page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<UserId>,
    /// At most this many (default 200, at most 500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// The groups this user is in.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct MyGroups {}

/// Forward a message this user can read to another conversation (or the same): a new
/// message there with the same body and its origin in `forwarded`. Retrying with the same
/// `client_id` returns the first result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Forward {
    /// Where the message is.
    pub conversation: ConversationId,
    /// Which message.
    pub seq: Seq,
    /// Where to forward it.
    pub to: ConversationId,
    /// The sender's own unique id for the new message, as in `send`.
    #[schemars(length(min = 1, max = 64))]
    pub client_id: String,
}

/// Send a message. Retrying with the same `client_id` returns the first result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Send {
    /// Where.
    pub conversation: ConversationId,
    /// The sender's own unique id for this message (1 to 64 characters).
    #[schemars(length(min = 1, max = 64))]
    pub client_id: String,
    /// What.
    pub body: Body,
    /// The seq of a message of the same conversation this one replies to (quotes). It
    /// must exist and be one the sender may read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<Seq>,
    /// Users the message mentions (`@name`): members of the conversation, at most 50.
    /// Each gets the conversation marked until they read it (`mention_seq` in
    /// `conversations`); the sender's own id and repeats are dropped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub mentions: Vec<UserId>,
}

/// This user's conversations with their last seq, read seq and unread count.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Conversations {}

/// Read a conversation's messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct History {
    /// Which conversation.
    pub conversation: ConversationId,
    /// Which part.
    #[serde(flatten)]
    pub query: HistoryQuery,
}

/// Move this user's read cursor forward (it never moves back). The other party of
/// a direct chat, and in a group the senders of the newly read messages, get a
/// `receipt`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MarkRead {
    /// Which conversation.
    pub conversation: ConversationId,
    /// Read up to and including this seq.
    pub seq: Seq,
}

/// Move this user's delivered cursor forward: every message up to `seq` reached a
/// device. The other party of a direct chat gets a `receipt`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Ack {
    /// Which conversation.
    pub conversation: ConversationId,
    /// Delivered up to and including this seq.
    pub seq: Seq,
}

/// Who has received and read a message: a page of the cursors at or past `seq`,
/// ordered by user id (members only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Receipts {
    /// Which conversation.
    pub conversation: ConversationId,
    /// The message.
    pub seq: Seq,
    /// Only users with a greater id (the last one of the previous page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<UserId>,
    /// At most this many (default and maximum 500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// This user is typing (or stopped). Never stored; relayed at most once a second per
/// user and conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Typing {
    /// Where.
    pub conversation: ConversationId,
    /// `false` when the user stopped typing (cleared the input, sent).
    #[serde(default = "yes")]
    pub active: bool,
}

/// Recall one's own message within the recall window (group owners and admins: the
/// messages of members below them, and their own, at any time). Stores a
/// `message_recalled` event in the conversation. Recalling a recalled message
/// answers `conflict`, so a retry after a lost reply can take that as done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Recall {
    /// Where.
    pub conversation: ConversationId,
    /// Which message.
    pub seq: Seq,
    /// The sender's id for the recall event (optional; shares the device's
    /// namespace with `send`).
    #[serde(default)]
    #[schemars(length(max = 64))]
    pub client_id: String,
}

/// Replace the body of one's own message within the edit window. Stores a
/// `message_edited` event in the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Edit {
    /// Where.
    pub conversation: ConversationId,
    /// Which message.
    pub seq: Seq,
    /// Makes a retry safe, as in `send` (optional).
    #[serde(default)]
    #[schemars(length(max = 64))]
    pub client_id: String,
    /// The new body.
    pub body: Body,
}

/// Hide a message from this user's own history, on all their devices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeleteForMe {
    /// Where.
    pub conversation: ConversationId,
    /// Which message.
    pub seq: Seq,
}

/// React to a message with an emoji, replacing this user's reaction to it, or take the
/// reaction back (`emoji` left out or `null`). Everyone in the conversation gets a
/// `reaction` event; `history` pages carry the reactions to their messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct React {
    /// Where.
    pub conversation: ConversationId,
    /// Which message.
    pub seq: Seq,
    /// One emoji, 1 to 32 bytes without spaces or control characters; none removes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 32))]
    pub emoji: Option<String>,
}

/// Pin a message of a conversation for everyone in it (in a group: owners and admins
/// only). Pinning a pinned message changes nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Pin {
    /// Where.
    pub conversation: ConversationId,
    /// Which message.
    pub seq: Seq,
}

/// Unpin a message (who may pin may unpin).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Unpin {
    /// Where.
    pub conversation: ConversationId,
    /// Which message.
    pub seq: Seq,
}

/// The pinned messages of a conversation, the most recently pinned first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Pins {
    /// Which conversation.
    pub conversation: ConversationId,
}

/// Full-text search over the messages this user may read: every conversation, or one.
/// Results come newest first, a page at a time; words match as docs/protocol.md
/// ("Search") describes, the same on every storage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Search {
    /// What to look for: words, each found at the start of a word of the message.
    pub query: String,
    /// Only this conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<ConversationId>,
    /// Only messages older than this one (the last of the previous page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<MessageId>,
    /// At most this many (the server caps it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// Relay a call signal to a friend or a member of a shared group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Signal {
    /// The other party.
    pub to: UserId,
    /// One of their devices; all of them when absent (an offer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceId>,
    /// The caller's id for the call (1 to 64 characters), repeated by every signal.
    pub call_id: String,
    /// The signal.
    pub signal: crate::protocol::Signal,
}

/// Online status and last seen of some friends (others are left out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Presence {
    /// Whose (at most 500).
    pub users: Vec<UserId>,
}

fn yes() -> bool {
    true
}
