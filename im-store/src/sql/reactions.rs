//! [`ReactionStore`] on SQL.

use async_trait::async_trait;
use im_core::model::{ConversationId, Reaction, Seq, UserId};
use im_core::storage::{ReactionStore, StorageResult};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::entity::reaction;
use super::{SqlStorage, conversation_key, db_error, i, u};

#[async_trait]
impl ReactionStore for SqlStorage {
    async fn react(
        &self,
        conversation: ConversationId,
        seq: Seq,
        user: UserId,
        emoji: Option<&str>,
    ) -> StorageResult<()> {
        let key = conversation_key(conversation);
        match emoji {
            // One statement either way: an upsert on the primary key replaces the user's
            // reaction, so two at once leave one of them.
            Some(emoji) => {
                let row = reaction::ActiveModel {
                    conversation: Set(key),
                    seq: Set(i(seq.0)),
                    user_id: Set(i(user.0)),
                    emoji: Set(emoji.to_owned()),
                };
                let replace = OnConflict::columns([
                    reaction::Column::Conversation,
                    reaction::Column::Seq,
                    reaction::Column::UserId,
                ])
                .update_column(reaction::Column::Emoji)
                .to_owned();
                reaction::Entity::insert(row)
                    .on_conflict(replace)
                    .exec_without_returning(&self.db)
                    .await
                    .map_err(db_error)?;
            }
            None => {
                reaction::Entity::delete_many()
                    .filter(reaction::Column::Conversation.eq(key))
                    .filter(reaction::Column::Seq.eq(i(seq.0)))
                    .filter(reaction::Column::UserId.eq(i(user.0)))
                    .exec(&self.db)
                    .await
                    .map_err(db_error)?;
            }
        }
        Ok(())
    }

    async fn reactions(
        &self,
        conversation: ConversationId,
        after: Seq,
        until: Seq,
    ) -> StorageResult<Vec<Reaction>> {
        if until <= after {
            return Ok(Vec::new());
        }
        let rows = reaction::Entity::find()
            .filter(reaction::Column::Conversation.eq(conversation_key(conversation)))
            .filter(reaction::Column::Seq.gt(i(after.0)))
            .filter(reaction::Column::Seq.lte(i(until.0)))
            .order_by_asc(reaction::Column::Seq)
            .order_by_asc(reaction::Column::UserId)
            .all(&self.db)
            .await
            .map_err(db_error)?;
        Ok(rows
            .into_iter()
            .map(|r| Reaction {
                seq: Seq(u(r.seq)),
                user: UserId(u(r.user_id)),
                emoji: r.emoji,
            })
            .collect())
    }
}
