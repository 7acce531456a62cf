use async_trait::async_trait;

use super::{StorageError, StorageResult};
use crate::model::{
    Body, ConversationId, DeviceId, Forwarded, Message, MessageId, Seq, Timestamp, UserId,
};

/// A message to append; storage assigns its id and seq.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    /// Who sends it.
    pub sender: UserId,
    /// From which device.
    pub sender_device: DeviceId,
    /// The sender's id for it; empty for system messages (which are never deduplicated).
    pub client_id: String,
    /// What it says.
    pub body: Body,
    /// Server time.
    pub sent_at: Timestamp,
    /// The seq of the message in the same conversation it replies to, checked by the
    /// engine (it exists and the sender may read it). Storage keeps it as given.
    pub reply_to: Option<Seq>,
    /// For a forward: where the message first came from. Storage keeps it as given.
    pub forwarded: Option<Forwarded>,
    /// The users it mentions, checked by the engine (members of the conversation, not
    /// the sender, each once). Storage keeps them, and raises each one's mention mark
    /// (`ConversationState::mention_seq`) in the same atomic step as the append.
    pub mentions: Vec<UserId>,
}

impl NewMessage {
    /// The message as stored with this id, in this conversation, at this seq (not yet
    /// edited). For storage implementations.
    pub fn stored(self, id: MessageId, conversation: ConversationId, seq: Seq) -> Message {
        Message {
            id,
            conversation,
            seq,
            sender: self.sender,
            sender_device: self.sender_device,
            client_id: self.client_id,
            body: self.body,
            sent_at: self.sent_at,
            reply_to: self.reply_to,
            forwarded: self.forwarded,
            mentions: self.mentions,
            edited_at: None,
        }
    }
}

/// The result of an append.
#[derive(Debug, Clone, PartialEq)]
pub struct Appended {
    /// The stored message.
    pub message: Message,
    /// True when an earlier append with the same idempotency key stored it.
    pub duplicate: bool,
}

/// Which messages of a conversation to read: those with `after < seq < before` (less
/// those `viewer` hid), the `limit` oldest of them or the `limit` newest, always returned
/// in ascending order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageRange {
    /// Exclusive lower bound (`Seq::ZERO` for the start).
    pub after: Seq,
    /// Exclusive upper bound (`None` for the end).
    pub before: Option<Seq>,
    /// Most messages to return.
    pub limit: u32,
    /// Take the newest `limit` in the range instead of the oldest.
    pub newest: bool,
    /// Leave out the messages this user deleted for themselves (`hide`); the page is
    /// still `limit` long when the range holds enough others.
    pub viewer: Option<UserId>,
}

/// A conversation as one user sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationState {
    /// Which.
    pub conversation: ConversationId,
    /// Its newest seq.
    pub last_seq: Seq,
    /// The user's read cursor.
    pub read_seq: Seq,
    /// The user's delivered cursor (never below `read_seq`).
    pub delivered_seq: Seq,
    /// In a direct conversation, the other user's cursors (zero in groups).
    pub peer: Cursor,
    /// Its newest message.
    pub last_message: Option<Message>,
    /// The newest seq of a message that mentions the user (0: none). The conversation
    /// is marked for them while it is above `read_seq`.
    pub mention_seq: Seq,
}

/// One user's receipt cursors in one conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cursor {
    /// Whose (`UserId(0)` in an empty peer cursor).
    pub user: UserId,
    /// Every message up to this seq reached one of the user's devices.
    pub delivered: Seq,
    /// The user has read every message up to this seq.
    pub read: Seq,
}

/// Which cursors of a conversation to list: those with `delivered >= at_least`, of users
/// above `after`, ascending by user, at most `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CursorQuery {
    /// Only cursors that delivered at least this seq (a read cursor never lags the
    /// delivered one, so this includes everyone who read it).
    pub at_least: Seq,
    /// Only users with a greater id (the last one of the previous page).
    pub after: Option<UserId>,
    /// Most cursors to return.
    pub limit: u32,
}

/// A change to a stored message, appended to its timeline as a seq'd event.
#[derive(Debug, Clone, PartialEq)]
pub struct Amendment {
    /// The message to change.
    pub target: Seq,
    /// Its body from now on (the edited body, or the recall notice).
    pub body: Body,
    /// The event to append, recording the change (its `sent_at` becomes the target's
    /// `edited_at`).
    pub event: NewMessage,
}

/// The `Conflict` of an `amend` whose target is a system message (an event, or a message
/// recalled already).
pub const AMENDED_AWAY: &str = "system messages and recalled messages cannot be changed";

/// Conversation timelines and per-user cursors.
///
/// # Contract
/// - `append` stores the message with the conversation's next seq: seqs start at 1 and
///   are gapless and unique per conversation, also under any number of concurrent
///   appends. Message ids are unique across all conversations.
/// - Idempotency: when `client_id` is not empty, a second append with the same
///   `(conversation, sender, sender_device, client_id)` stores nothing and returns the
///   first message with `duplicate: true`.
/// - `append_many` appends each message as `append` would, in the order given (within a
///   conversation, a later message gets a higher seq), and answers each on its own: one
///   that fails leaves the others stored. It is how the engine hands over the sends one
///   connection pipelined; a backend that commits in batches makes them one commit.
/// - A direct conversation is listed by `conversations` for both of its users from its
///   first message on; a group conversation for its current members.
/// - A successful, non-duplicate append also moves the sender's read cursor up to the
///   new seq, in the same atomic step (one's own message is read).
/// - `messages` returns the messages in the [`MessageRange`], ascending by seq.
/// - `last_seq` is 0 for a conversation with no messages.
/// - `set_read` moves a user's read cursor to `max(current, seq)` (never back) and
///   returns the result; cursors start at 0. It moves the delivered cursor along: a
///   delivered cursor is never below the read cursor.
/// - `set_delivered` moves the delivered cursor to `max(current, seq)` and returns it.
/// - `cursors` lists the cursors matching the [`CursorQuery`], ascending by user.
///   A user with no cursor row has both at 0. `conversations` reports, for a direct
///   conversation, the other user's cursors as `peer`.
/// - `amend` atomically appends `event` (with the next seq, idempotent like `append`)
///   and replaces the target's body, setting its `edited_at` to the event's `sent_at`.
///   `NotFound` when the target seq does not exist; on a duplicate nothing changes.
///   `Conflict` ([`AMENDED_AWAY`]), changing nothing, when the target is a system
///   message — an event, or a message recalled already — checked in the same atomic step,
///   so of two recalls of one message at the same moment one succeeds and the other is
///   `Conflict`, and an edit racing a recall never rewrites the recalled text.
/// - `hide` hides one message from one user (delete for me): `messages` with that user as
///   `viewer` leaves it out. Hiding twice is not an error.
/// - `attachment_use` finds a live message naming an attachment: one whose body is an
///   image or a file with that url ([`Body::attachment`]) now — a message recalled, or
///   edited to another body, no longer names it — in the given conversation (the newest
///   such message there), or in any conversation. Once a recall has returned, the
///   recalled message is not found.
#[async_trait]
pub trait MessageStore: Send + Sync {
    /// Appends a message, assigning the next seq.
    async fn append(
        &self,
        conversation: ConversationId,
        message: NewMessage,
    ) -> StorageResult<Appended>;
    /// Appends several messages in order, each with its own result. The default appends
    /// them one after another.
    async fn append_many(
        &self,
        messages: Vec<(ConversationId, NewMessage)>,
    ) -> Vec<StorageResult<Appended>> {
        let mut results = Vec::with_capacity(messages.len());
        for (conversation, message) in messages {
            results.push(self.append(conversation, message).await);
        }
        results
    }
    /// Reads part of a conversation.
    async fn messages(
        &self,
        conversation: ConversationId,
        range: MessageRange,
    ) -> StorageResult<Vec<Message>>;
    /// The newest seq of a conversation.
    async fn last_seq(&self, conversation: ConversationId) -> StorageResult<Seq>;
    /// Moves a read cursor forward.
    async fn set_read(
        &self,
        user: UserId,
        conversation: ConversationId,
        seq: Seq,
    ) -> StorageResult<Seq>;
    /// Moves a delivered cursor forward.
    async fn set_delivered(
        &self,
        user: UserId,
        conversation: ConversationId,
        seq: Seq,
    ) -> StorageResult<Seq>;
    /// A page of the conversation's receipt cursors.
    async fn cursors(
        &self,
        conversation: ConversationId,
        query: CursorQuery,
    ) -> StorageResult<Vec<Cursor>>;
    /// Every conversation of `user`, with cursors and the newest message.
    async fn conversations(&self, user: UserId) -> StorageResult<Vec<ConversationState>>;
    /// Changes a stored message (edit, recall) and records the change in the timeline.
    async fn amend(
        &self,
        conversation: ConversationId,
        amendment: Amendment,
    ) -> StorageResult<Appended>;
    /// Hides a message from one user.
    async fn hide(&self, user: UserId, conversation: ConversationId, seq: Seq)
    -> StorageResult<()>;
    /// A live message whose body names the attachment `url`, in `conversation` when
    /// given (the newest there), in any conversation otherwise: where it is. The default
    /// cannot tell (`Unsupported`); a server then lets the members of the conversation a
    /// file was uploaded for fetch it, recalled or not, and never removes files.
    async fn attachment_use(
        &self,
        url: &str,
        conversation: Option<ConversationId>,
    ) -> StorageResult<Option<(ConversationId, Seq)>> {
        let _ = (url, conversation);
        Err(StorageError::Unsupported(
            "find the messages naming an attachment",
        ))
    }
}
