//! [`InviteStore`] on SQL: one row per invite; a use is one conditional update, so that
//! of registrations at once no more are admitted than the invite has uses.

use async_trait::async_trait;
use im_core::model::Timestamp;
use im_core::storage::{Invite, InviteStore, StorageResult};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::entity::invite;
use super::{SqlStorage, db_error, u};

#[async_trait]
impl InviteStore for SqlStorage {
    async fn create_invite(&self, new: Invite) -> StorageResult<()> {
        let row = invite::ActiveModel {
            id: Set(new.id),
            uses_left: Set(i64::from(new.uses_left)),
            expires_at: Set(new.expires_at.0),
            created_at: Set(new.created_at.0),
            note: Set(new.note),
        };
        // A second invite with the id is a unique violation: `Conflict`.
        invite::Entity::insert(row)
            .exec_without_returning(&self.db)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn use_invite(&self, id: &str, now: Timestamp) -> StorageResult<bool> {
        let done = invite::Entity::update_many()
            .col_expr(
                invite::Column::UsesLeft,
                Expr::col(invite::Column::UsesLeft).sub(1),
            )
            .filter(invite::Column::Id.eq(id))
            .filter(invite::Column::UsesLeft.gt(0))
            .filter(invite::Column::ExpiresAt.gt(now.0))
            .exec(&self.db)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected == 1)
    }

    async fn return_invite(&self, id: &str) -> StorageResult<()> {
        invite::Entity::update_many()
            .col_expr(
                invite::Column::UsesLeft,
                Expr::col(invite::Column::UsesLeft).add(1),
            )
            .filter(invite::Column::Id.eq(id))
            .exec(&self.db)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn invites(&self) -> StorageResult<Vec<Invite>> {
        let rows = invite::Entity::find()
            .order_by_desc(invite::Column::CreatedAt)
            .order_by_asc(invite::Column::Id)
            .all(&self.read)
            .await
            .map_err(db_error)?;
        Ok(rows
            .into_iter()
            .map(|row| Invite {
                id: row.id,
                uses_left: u32::try_from(u(row.uses_left)).unwrap_or(u32::MAX),
                expires_at: Timestamp(row.expires_at),
                created_at: Timestamp(row.created_at),
                note: row.note,
            })
            .collect())
    }

    async fn revoke_invite(&self, id: &str) -> StorageResult<bool> {
        let done = invite::Entity::delete_by_id(id.to_owned())
            .exec(&self.db)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected > 0)
    }
}
