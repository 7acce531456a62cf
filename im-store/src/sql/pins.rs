//! [`PinStore`] on SQL.

use async_trait::async_trait;
use im_core::model::{ConversationId, Pin, Seq, Timestamp, UserId};
use im_core::storage::{PINS_FULL, PinStore, StorageError, StorageResult};
use sea_orm::ActiveValue::Set;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};

use super::entity::{conversation, pin};
use super::{SqlStorage, begin, conversation_key, db_error, i, u};

#[async_trait]
impl PinStore for SqlStorage {
    async fn pin(&self, conversation: ConversationId, new: Pin, max: usize) -> StorageResult<bool> {
        let key = conversation_key(conversation);
        let txn = begin(&self.db).await.map_err(db_error)?;
        // The conversation's counter row serialises pins of one conversation on
        // PostgreSQL and MySQL (SQLite's write transaction already does): the count and
        // the insert below see every pin committed before.
        conversation::Entity::find_by_id(key.clone())
            .select_only()
            .column(conversation::Column::Id)
            .lock_exclusive()
            .into_tuple::<String>()
            .one(&txn)
            .await
            .map_err(db_error)?;
        let pinned = pin::Entity::find()
            .filter(pin::Column::Conversation.eq(key.clone()))
            .filter(pin::Column::Seq.eq(i(new.seq.0)))
            .count(&txn)
            .await
            .map_err(db_error)?;
        if pinned > 0 {
            txn.rollback().await.map_err(db_error)?;
            return Ok(false);
        }
        let count = pin::Entity::find()
            .filter(pin::Column::Conversation.eq(key.clone()))
            .count(&txn)
            .await
            .map_err(db_error)?;
        if count >= u64::try_from(max).unwrap_or(u64::MAX) {
            txn.rollback().await.map_err(db_error)?;
            return Err(StorageError::Conflict(PINS_FULL));
        }
        pin::Entity::insert(pin::ActiveModel {
            conversation: Set(key),
            seq: Set(i(new.seq.0)),
            pinned_by: Set(i(new.by.0)),
            pinned_at: Set(new.at.0),
        })
        .exec_without_returning(&txn)
        .await
        .map_err(db_error)?;
        txn.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn unpin(&self, conversation: ConversationId, seq: Seq) -> StorageResult<bool> {
        let done = pin::Entity::delete_many()
            .filter(pin::Column::Conversation.eq(conversation_key(conversation)))
            .filter(pin::Column::Seq.eq(i(seq.0)))
            .exec(&self.db)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected > 0)
    }

    async fn pins(&self, conversation: ConversationId) -> StorageResult<Vec<Pin>> {
        let rows = pin::Entity::find()
            .filter(pin::Column::Conversation.eq(conversation_key(conversation)))
            .order_by_desc(pin::Column::PinnedAt)
            .order_by_desc(pin::Column::Seq)
            .all(&self.db)
            .await
            .map_err(db_error)?;
        Ok(rows
            .into_iter()
            .map(|r| Pin {
                seq: Seq(u(r.seq)),
                by: UserId(u(r.pinned_by)),
                at: Timestamp(r.pinned_at),
            })
            .collect())
    }
}
