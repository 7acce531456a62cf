use async_trait::async_trait;

use super::StorageResult;
use crate::model::{ConversationId, Reaction, Seq, UserId};

/// Reactions to messages: one emoji per user per message.
///
/// # Contract
/// - `react` with `Some(emoji)` sets `user`'s reaction to message `seq`, replacing any
///   other; with `None` it removes it. Either is idempotent. Two calls for the same user
///   and message at once leave exactly one of their outcomes, never two reactions.
/// - `reactions` lists the reactions to the messages `after < seq <= until`, ordered by
///   seq, then user.
/// - The engine checks that the message exists and that the user may read it; storage
///   keeps what it is given.
#[async_trait]
pub trait ReactionStore: Send + Sync {
    /// Sets (`Some`) or removes (`None`) `user`'s reaction to message `seq`.
    async fn react(
        &self,
        conversation: ConversationId,
        seq: Seq,
        user: UserId,
        emoji: Option<&str>,
    ) -> StorageResult<()>;

    /// The reactions to messages `after < seq <= until`, by seq then user.
    async fn reactions(
        &self,
        conversation: ConversationId,
        after: Seq,
        until: Seq,
    ) -> StorageResult<Vec<Reaction>>;
}
