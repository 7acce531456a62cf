use async_trait::async_trait;

use super::StorageResult;
use crate::model::{Body, ConversationId, DeviceId, Message, Seq, Timestamp, UserId};

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
}

/// The result of an append.
#[derive(Debug, Clone, PartialEq)]
pub struct Appended {
    /// The stored message.
    pub message: Message,
    /// True when an earlier append with the same idempotency key stored it.
    pub duplicate: bool,
}

/// Which messages of a conversation to read: those with `after < seq < before`, the
/// `limit` oldest of them or the `limit` newest, always returned in ascending order.
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
    /// Its newest message.
    pub last_message: Option<Message>,
}

/// Conversation timelines and per-user cursors.
///
/// # Contract
/// - `append` stores the message with the conversation's next seq: seqs start at 1 and
///   are gapless and unique per conversation, also under any number of concurrent
///   appends. Message ids are unique across all conversations.
/// - Idempotency: when `client_id` is not empty, a second append with the same
///   `(conversation, sender, sender_device, client_id)` stores nothing and returns the
///   first message with `duplicate: true`.
/// - A direct conversation is listed by `conversations` for both of its users from its
///   first message on; a group conversation for its current members.
/// - A successful, non-duplicate append also moves the sender's read cursor up to the
///   new seq, in the same atomic step (one's own message is read).
/// - `messages` returns the messages in the [`MessageRange`], ascending by seq.
/// - `last_seq` is 0 for a conversation with no messages.
/// - `set_read` moves a user's read cursor to `max(current, seq)` (never back) and
///   returns the result; cursors start at 0.
#[async_trait]
pub trait MessageStore: Send + Sync {
    /// Appends a message, assigning the next seq.
    async fn append(
        &self,
        conversation: ConversationId,
        message: NewMessage,
    ) -> StorageResult<Appended>;
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
    /// Every conversation of `user`, with cursors and the newest message.
    async fn conversations(&self, user: UserId) -> StorageResult<Vec<ConversationState>>;
}
