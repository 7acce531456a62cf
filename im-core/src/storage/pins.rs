use async_trait::async_trait;

use super::StorageResult;
use crate::model::{ConversationId, Pin, Seq};

/// The `Conflict` of a `pin` that would take a conversation over its limit.
pub const PINS_FULL: &str = "the conversation has as many pinned messages as it may";

/// Pinned messages, per conversation.
///
/// # Contract
/// - `pin` pins message `pin.seq` and returns `true`, or returns `false` when it is
///   pinned already (changing nothing). When `max` messages are pinned already it fails
///   with `Conflict(PINS_FULL)`; the count is checked atomically with the insert, so pins
///   made at once never take a conversation over `max`.
/// - `unpin` returns whether the message was pinned.
/// - `pins` lists a conversation's pins, the most recently pinned first (ties: the
///   higher seq first).
/// - The engine checks who may pin and that the message exists; storage keeps what it
///   is given.
#[async_trait]
pub trait PinStore: Send + Sync {
    /// Pins a message, unless `max` are pinned already.
    async fn pin(&self, conversation: ConversationId, pin: Pin, max: usize) -> StorageResult<bool>;

    /// Unpins a message.
    async fn unpin(&self, conversation: ConversationId, seq: Seq) -> StorageResult<bool>;

    /// A conversation's pins, the newest first.
    async fn pins(&self, conversation: ConversationId) -> StorageResult<Vec<Pin>>;
}
