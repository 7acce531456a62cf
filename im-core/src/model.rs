//! Identifiers and records: the nouns every other module speaks.
//!
//! Ids are small `Copy` newtypes so that a `UserId` can never be passed where a
//! `GroupId` is expected. Numeric ids are assigned by [`Storage`](crate::storage::Storage);
//! a [`DeviceId`] is chosen by the client (it names an installation of an app) and
//! validated here; a [`ConversationId`] is derived, never stored as a free-form string.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! numeric_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
        )]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

numeric_id!(
    /// A registered user, assigned by storage on registration.
    UserId
);
numeric_id!(
    /// A group, assigned by storage on creation.
    GroupId
);
numeric_id!(
    /// A stored message, assigned by storage on append; unique across conversations.
    MessageId
);
numeric_id!(
    /// A position in one conversation's timeline. The first message is seq 1; seq 0
    /// means "nothing yet". Seqs are gapless: every seq from 1 to the last exists.
    Seq
);

impl Seq {
    /// "Before the first message".
    pub const ZERO: Seq = Seq(0);

    /// The seq that follows this one.
    pub fn next(self) -> Seq {
        Seq(self.0 + 1)
    }
}

/// Milliseconds since the Unix epoch, as the server's clock saw them.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Timestamp {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Timestamp(ms)
    }

    /// This time plus `ms` milliseconds (saturating).
    pub fn plus_millis(self, ms: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(ms))
    }
}

/// Why a client-supplied value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidValue {
    /// Which field.
    pub field: &'static str,
    /// What is wrong with it, in words a user can act on.
    pub reason: &'static str,
}

impl InvalidValue {
    pub(crate) fn new(field: &'static str, reason: &'static str) -> Self {
        InvalidValue { field, reason }
    }
}

/// A client-chosen name for one installation of an app (one phone, one browser profile).
///
/// 1 to 64 characters from `[A-Za-z0-9._:-]`. A user's devices are distinct by this id;
/// logging in again with the same id replaces that device's session and token.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct DeviceId(String);

impl DeviceId {
    /// Longest accepted device id.
    pub const MAX_LEN: usize = 64;

    /// Validates and wraps a device id.
    pub fn new(id: impl Into<String>) -> Result<DeviceId, InvalidValue> {
        let id = id.into();
        if id.is_empty() || id.len() > Self::MAX_LEN {
            return Err(InvalidValue::new("device_id", "must be 1 to 64 characters"));
        }
        if !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
        {
            return Err(InvalidValue::new(
                "device_id",
                "may contain only letters, digits and . _ : -",
            ));
        }
        Ok(DeviceId(id))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for DeviceId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        DeviceId::new(s).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for DeviceId {
    fn schema_name() -> Cow<'static, str> {
        "DeviceId".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^[A-Za-z0-9._:-]{1,64}$",
            "description": "A client-chosen name for one installation of an app.",
        })
    }
}

/// A conversation: the direct chat between two users, or a group.
///
/// On the wire it is a string: `d:<lower user id>:<higher user id>` or `g:<group id>`.
/// The direct form is derived from the pair, so both sides name the same conversation
/// without a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConversationId {
    /// A one-to-one chat; the ids are ordered, lower first.
    Direct(UserId, UserId),
    /// A group chat.
    Group(GroupId),
}

impl ConversationId {
    /// The direct conversation between `a` and `b`, in either order.
    pub fn direct(a: UserId, b: UserId) -> ConversationId {
        if a <= b {
            ConversationId::Direct(a, b)
        } else {
            ConversationId::Direct(b, a)
        }
    }

    /// In a direct conversation that includes `me`, the other user.
    pub fn peer_of(&self, me: UserId) -> Option<UserId> {
        match *self {
            ConversationId::Direct(a, b) if a == me => Some(b),
            ConversationId::Direct(a, b) if b == me => Some(a),
            _ => None,
        }
    }

    /// The group, if this is a group conversation.
    pub fn group(&self) -> Option<GroupId> {
        match *self {
            ConversationId::Group(g) => Some(g),
            ConversationId::Direct(..) => None,
        }
    }
}

impl fmt::Display for ConversationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConversationId::Direct(a, b) => write!(f, "d:{a}:{b}"),
            ConversationId::Group(g) => write!(f, "g:{g}"),
        }
    }
}

impl FromStr for ConversationId {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const BAD: InvalidValue = InvalidValue {
            field: "conversation",
            reason: "must be d:<user>:<user> or g:<group>",
        };
        // Digits only, no sign and no leading zero: `u64::from_str` alone would take
        // `+7` and `07`, and one conversation would have many names.
        let num = |t: &str| {
            let canonical = !t.is_empty()
                && t.bytes().all(|b| b.is_ascii_digit())
                && (t == "0" || !t.starts_with('0'));
            if !canonical {
                return Err(BAD);
            }
            t.parse::<u64>().map_err(|_| BAD)
        };
        if let Some(rest) = s.strip_prefix("d:") {
            let (a, b) = rest.split_once(':').ok_or(BAD)?;
            let (a, b) = (UserId(num(a)?), UserId(num(b)?));
            // Only the canonical form is accepted, so one conversation has one name.
            if a >= b {
                return Err(BAD);
            }
            Ok(ConversationId::Direct(a, b))
        } else if let Some(rest) = s.strip_prefix("g:") {
            Ok(ConversationId::Group(GroupId(num(rest)?)))
        } else {
            Err(BAD)
        }
    }
}

impl Serialize for ConversationId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ConversationId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Cow::<'de, str>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for ConversationId {
    fn schema_name() -> Cow<'static, str> {
        "ConversationId".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^(d:[0-9]+:[0-9]+|g:[0-9]+)$",
            "description": "`d:<lower user id>:<higher user id>` or `g:<group id>`.",
        })
    }
}

/// A registered user's public profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct User {
    /// Assigned by storage.
    pub id: UserId,
    /// Unique, lower-case login name.
    pub username: String,
    /// Shown to others.
    pub display_name: String,
    /// Avatar image URL, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
    /// When the account was created.
    pub created_at: Timestamp,
}

/// Which kind of client a device is; device policies (one mobile, one desktop…) key on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    /// iOS or Android app.
    Mobile,
    /// Desktop app.
    Desktop,
    /// Browser.
    Web,
    /// Bots, scripts, servers.
    #[default]
    Other,
}

/// A logged-in device of a user, as shown to that user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Device {
    /// Client-chosen id, unique per user.
    pub id: DeviceId,
    /// Human name ("Alice's phone").
    pub name: String,
    /// Kind of client.
    pub platform: Platform,
    /// When this device last logged in.
    pub logged_in_at: Timestamp,
    /// When its token stops working.
    pub expires_at: Timestamp,
}

/// A pending friend request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FriendRequest {
    /// Who asked.
    pub from: UserId,
    /// Who is asked.
    pub to: UserId,
    /// The asker's note ("hi, it's Bob from work").
    pub note: String,
    /// When it was sent.
    pub created_at: Timestamp,
}

/// One user's reaction to one message: an emoji. A user has at most one per message;
/// reacting again replaces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Reaction {
    /// The message, by its seq in the conversation.
    pub seq: Seq,
    /// Who reacted.
    pub user: UserId,
    /// With what: one emoji (up to 32 bytes, no spaces).
    pub emoji: String,
}

/// A pinned message of a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Pin {
    /// The message, by its seq.
    pub seq: Seq,
    /// Who pinned it.
    pub by: UserId,
    /// When.
    pub at: Timestamp,
}

/// A friend of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Friend {
    /// The friend.
    pub user: UserId,
    /// Since when.
    pub since: Timestamp,
}

/// A member's role in a group. Ordered by power: `Member < Admin < Owner`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Can chat and add friends.
    Member,
    /// Can also rename the group and kick members.
    Admin,
    /// Exactly one per group: can do everything, including appointing admins.
    Owner,
}

/// A group's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Group {
    /// Assigned by storage.
    pub id: GroupId,
    /// Display name.
    pub name: String,
    /// The current owner.
    pub owner: UserId,
    /// Whether anyone may join without being added.
    pub open: bool,
    /// When it was created.
    pub created_at: Timestamp,
}

/// One member of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Member {
    /// The member.
    pub user: UserId,
    /// Their role.
    pub role: Role,
    /// The seq of the system message that recorded their joining. History before it is
    /// not theirs to read.
    pub joined_seq: Seq,
}

/// What a message says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Body {
    /// Plain text.
    Text {
        /// The text.
        text: String,
    },
    /// An image stored elsewhere (an upload URL).
    Image {
        /// Where to fetch it.
        url: String,
        /// Its MIME type.
        mime: String,
        /// Its size in bytes.
        size: u64,
        /// Width in pixels.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        width: Option<u32>,
        /// Height in pixels.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        height: Option<u32>,
    },
    /// A file stored elsewhere.
    File {
        /// Where to fetch it.
        url: String,
        /// Its MIME type.
        mime: String,
        /// Its size in bytes.
        size: u64,
        /// The file name to show.
        name: String,
    },
    /// Application-defined JSON, relayed as is.
    Custom {
        /// The payload.
        data: serde_json::Value,
    },
    /// Written by the server: a change to the conversation itself. Clients cannot send it.
    System {
        /// What happened.
        event: SystemEvent,
    },
}

impl Body {
    /// The URL of the stored file an image or file body names, `None` for other bodies.
    /// Storage indexes it, so that a server can tell whether a live message still names
    /// an upload ([`MessageStore::attachment_use`](crate::storage::MessageStore::attachment_use)).
    pub fn attachment(&self) -> Option<&str> {
        match self {
            Body::Image { url, .. } | Body::File { url, .. } => Some(url),
            _ => None,
        }
    }
}

/// A change recorded in a group's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SystemEvent {
    /// The group was created with these first members (the owner included).
    GroupCreated {
        /// The creator and first owner.
        by: UserId,
        /// The name it was given.
        name: String,
        /// Everyone who was a member at creation.
        members: Vec<UserId>,
    },
    /// Members were added by another member.
    MembersAdded {
        /// Who added them.
        by: UserId,
        /// Who was added.
        users: Vec<UserId>,
    },
    /// A user joined an open group.
    MemberJoined {
        /// Who joined.
        user: UserId,
    },
    /// A member left.
    MemberLeft {
        /// Who left.
        user: UserId,
    },
    /// A member was removed by an owner or admin.
    MemberKicked {
        /// Who removed them.
        by: UserId,
        /// Who was removed.
        user: UserId,
    },
    /// The group was renamed.
    Renamed {
        /// Who renamed it.
        by: UserId,
        /// The new name.
        name: String,
    },
    /// A member's role changed (ownership transfer is its own event).
    RoleChanged {
        /// Who changed it.
        by: UserId,
        /// Whose role.
        user: UserId,
        /// The new role.
        role: Role,
    },
    /// The owner handed the group to another member, and became an admin.
    OwnerChanged {
        /// The previous owner.
        from: UserId,
        /// The new owner.
        to: UserId,
    },
    /// The message `seq` was recalled. Appended to the timeline (so sync replays it),
    /// and also the body the recalled message itself is left with.
    MessageRecalled {
        /// The recalled message.
        seq: Seq,
        /// Who recalled it: its sender, or a group owner or admin.
        by: UserId,
    },
    /// The message `seq` was edited by its sender; `body` is what it says now.
    /// Appended to the timeline, so sync replays it; the message itself also carries
    /// the new body and its `edited_at`.
    MessageEdited {
        /// The edited message.
        seq: Seq,
        /// Its new body.
        body: Box<Body>,
    },
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Message {
    /// Assigned by storage.
    pub id: MessageId,
    /// Where it was sent.
    pub conversation: ConversationId,
    /// Its place in the conversation's timeline.
    pub seq: Seq,
    /// Who sent it.
    pub sender: UserId,
    /// From which of the sender's devices.
    pub sender_device: DeviceId,
    /// The sender's own id for it, which makes retries safe.
    pub client_id: String,
    /// What it says.
    pub body: Body,
    /// When the server stored it.
    pub sent_at: Timestamp,
    /// When it was last edited, if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<Timestamp>,
    /// The seq of the message in the same conversation this one replies to (quotes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<Seq>,
    /// Where a forwarded message first came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarded: Option<Forwarded>,
    /// The users it mentions (`@name`), each a member of the conversation when it was
    /// sent; each of them sees the conversation marked until they read this far.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<UserId>,
}

/// The origin of a forwarded message: who first wrote it, and when. A forward of a
/// forward keeps the first origin. The conversation it came from is not told: its members
/// may not be the readers of the forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Forwarded {
    /// Who wrote it.
    pub sender: UserId,
    /// When it was first sent.
    pub sent_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_conversation_is_symmetric_and_round_trips() {
        let c = ConversationId::direct(UserId(9), UserId(3));
        assert_eq!(c, ConversationId::direct(UserId(3), UserId(9)));
        assert_eq!(c.to_string(), "d:3:9");
        assert_eq!("d:3:9".parse::<ConversationId>().unwrap(), c);
        assert_eq!(c.peer_of(UserId(3)), Some(UserId(9)));
        assert_eq!(c.peer_of(UserId(4)), None);
        assert_eq!(
            serde_json::to_string(&ConversationId::Group(GroupId(5))).unwrap(),
            "\"g:5\""
        );
    }

    #[test]
    fn canonical_conversation_ids_are_accepted() {
        for good in ["d:0:1", "d:90:93", "d:1:18446744073709551615", "g:0", "g:7"] {
            let id: ConversationId = good.parse().expect(good);
            assert_eq!(id.to_string(), good);
        }
    }

    #[test]
    fn malformed_conversation_ids_are_refused() {
        for bad in [
            "", "d:1", "d:9:3", "d:3:3", "g:", "g:x", "x:1", "d:1:2:3", "g:-1",
            // Other spellings of valid ids: one conversation has one name.
            "d:090:93", "d:+90:93", "d:1:+2", "d:01:2", "g:07", "g:+7", "g: 7", "g:7 ", "g:00",
        ] {
            assert!(bad.parse::<ConversationId>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn device_ids_are_validated() {
        assert!(DeviceId::new("phone-1.a_b:c").is_ok());
        assert!(DeviceId::new("").is_err());
        assert!(DeviceId::new("a b").is_err());
        assert!(DeviceId::new("x".repeat(65)).is_err());
        assert!(serde_json::from_str::<DeviceId>("\"bad id\"").is_err());
    }
}
