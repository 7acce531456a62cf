//! [`UserStore`] on SQL.

use async_trait::async_trait;
use im_core::model::{Timestamp, User, UserId};
use im_core::storage::{
    ACCOUNT_DISABLED, NewUser, ProfileChange, StorageError, StorageResult, UserStore,
};
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::entity::user;
use super::{SqlStorage, db_error, i, u};

/// Locks these users' rows until the transaction ends, lowest id first (so that two
/// transactions locking overlapping sets never deadlock each other), and, with
/// `refuse_disabled`, refuses with `Conflict` ([`ACCOUNT_DISABLED`]) if one is a disabled
/// account. A `set_disabled` at the same moment waits for the transaction, or came first
/// and is read here: a locking read sees the newest committed row (PostgreSQL, MySQL;
/// SQLite has one writer, and sea-query writes no lock clause for it).
pub(crate) async fn lock_users(
    txn: &DatabaseTransaction,
    users: &[UserId],
    refuse_disabled: bool,
) -> StorageResult<()> {
    if users.is_empty() {
        return Ok(());
    }
    let disabled: Vec<Option<i64>> = user::Entity::find()
        .select_only()
        .column(user::Column::DisabledAt)
        .filter(user::Column::Id.is_in(users.iter().map(|u| i(u.0))))
        .order_by_asc(user::Column::Id)
        .lock_exclusive()
        .into_tuple()
        .all(txn)
        .await
        .map_err(db_error)?;
    if refuse_disabled && disabled.iter().any(Option::is_some) {
        return Err(StorageError::Conflict(ACCOUNT_DISABLED));
    }
    Ok(())
}

fn to_user(m: user::Model) -> User {
    User {
        id: UserId(u(m.id)),
        username: m.username,
        display_name: m.display_name,
        avatar: m.avatar,
        created_at: Timestamp(m.created_at),
    }
}

fn ids(users: &[UserId]) -> Vec<i64> {
    let mut ids: Vec<i64> = users.iter().map(|u| i(u.0)).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

#[async_trait]
impl UserStore for SqlStorage {
    async fn create_user(&self, new: NewUser) -> StorageResult<User> {
        let row = user::ActiveModel {
            id: NotSet,
            username: Set(new.username.clone()),
            display_name: Set(new.display_name.clone()),
            avatar: Set(new.avatar.clone()),
            password_hash: Set(new.password_hash),
            created_at: Set(new.created_at.0),
            last_seen: Set(None),
            disabled_at: Set(None),
        };
        let id = match user::Entity::insert(row).exec(&self.db).await {
            Ok(done) => done.last_insert_id,
            Err(e) if super::is_unique_violation(&e) => {
                return Err(StorageError::Conflict("username taken"));
            }
            Err(e) => return Err(db_error(e)),
        };
        Ok(User {
            id: UserId(u(id)),
            username: new.username,
            display_name: new.display_name,
            avatar: new.avatar,
            created_at: new.created_at,
        })
    }

    async fn user(&self, id: UserId) -> StorageResult<User> {
        user::Entity::find_by_id(i(id.0))
            .one(&self.read)
            .await
            .map_err(db_error)?
            .map(to_user)
            .ok_or(StorageError::NotFound("user"))
    }

    async fn user_by_name(&self, username: &str) -> StorageResult<User> {
        user::Entity::find()
            .filter(user::Column::Username.eq(username))
            .one(&self.read)
            .await
            .map_err(db_error)?
            .map(to_user)
            .ok_or(StorageError::NotFound("user"))
    }

    async fn users(&self, users: &[UserId]) -> StorageResult<Vec<User>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        Ok(user::Entity::find()
            .filter(user::Column::Id.is_in(ids(users)))
            .all(&self.read)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(to_user)
            .collect())
    }

    async fn password_hash(&self, id: UserId) -> StorageResult<String> {
        user::Entity::find_by_id(i(id.0))
            .one(&self.read)
            .await
            .map_err(db_error)?
            .map(|m| m.password_hash)
            .ok_or(StorageError::NotFound("user"))
    }

    async fn set_password_hash(&self, id: UserId, hash: String) -> StorageResult<()> {
        let done = user::Entity::update_many()
            .col_expr(user::Column::PasswordHash, Expr::value(hash))
            .filter(user::Column::Id.eq(i(id.0)))
            .exec(&self.db)
            .await
            .map_err(db_error)?;
        if done.rows_affected == 0 {
            return Err(StorageError::NotFound("user"));
        }
        Ok(())
    }

    async fn set_disabled(&self, id: UserId, disabled: bool) -> StorageResult<bool> {
        // One conditional update: of two changes at once, the second finds nothing to
        // change, and says so.
        let update = user::Entity::update_many().filter(user::Column::Id.eq(i(id.0)));
        let update = if disabled {
            update
                .col_expr(user::Column::DisabledAt, Expr::value(Timestamp::now().0))
                .filter(user::Column::DisabledAt.is_null())
        } else {
            update
                .col_expr(user::Column::DisabledAt, Expr::value(Option::<i64>::None))
                .filter(user::Column::DisabledAt.is_not_null())
        };
        let done = update.exec(&self.db).await.map_err(db_error)?;
        if done.rows_affected > 0 {
            return Ok(true);
        }
        // Nothing changed: already so, or no such user.
        self.is_disabled(id).await.map(|_| false)
    }

    async fn is_disabled(&self, id: UserId) -> StorageResult<bool> {
        user::Entity::find_by_id(i(id.0))
            .select_only()
            .column(user::Column::DisabledAt)
            .into_tuple::<Option<i64>>()
            .one(&self.read)
            .await
            .map_err(db_error)?
            .map(|at| at.is_some())
            .ok_or(StorageError::NotFound("user"))
    }

    async fn update_profile(&self, id: UserId, change: ProfileChange) -> StorageResult<User> {
        // One statement sets the fields given (and only those, so changes of other
        // fields at once are kept); the read after it, in the same transaction, returns
        // the user as this change left them.
        let txn = super::begin(&self.db).await.map_err(db_error)?;
        if change != ProfileChange::default() {
            let mut update = user::Entity::update_many().filter(user::Column::Id.eq(i(id.0)));
            if let Some(name) = change.display_name {
                update = update.col_expr(user::Column::DisplayName, Expr::value(name));
            }
            if let Some(avatar) = change.avatar {
                update = update.col_expr(user::Column::Avatar, Expr::value(avatar));
            }
            update.exec(&txn).await.map_err(db_error)?;
        }
        let row = user::Entity::find_by_id(i(id.0))
            .one(&txn)
            .await
            .map_err(db_error)?;
        txn.commit().await.map_err(db_error)?;
        row.map(to_user).ok_or(StorageError::NotFound("user"))
    }

    async fn set_last_seen(&self, id: UserId, at: Timestamp) -> StorageResult<()> {
        // Never back: only a later time replaces the stored one.
        let later = user::Column::LastSeen
            .is_null()
            .or(user::Column::LastSeen.lt(at.0));
        user::Entity::update_many()
            .col_expr(user::Column::LastSeen, Expr::value(at.0))
            .filter(user::Column::Id.eq(i(id.0)))
            .filter(later)
            .exec(&self.db)
            .await
            .map_err(db_error)?;
        // No row changed: an unknown user, or a later time already stored.
        let exists = user::Entity::find_by_id(i(id.0))
            .select_only()
            .column(user::Column::Id)
            .into_tuple::<i64>()
            .one(&self.db)
            .await
            .map_err(db_error)?;
        exists.map(|_| ()).ok_or(StorageError::NotFound("user"))
    }

    async fn set_last_seen_many(&self, seen: &[(UserId, Timestamp)]) -> StorageResult<()> {
        // The latest time per user, in ascending id order: two batches lock their rows in
        // the same order, so on PostgreSQL and MySQL they cannot deadlock.
        let mut latest = std::collections::BTreeMap::new();
        for &(id, at) in seen {
            let t = latest.entry(i(id.0)).or_insert(at.0);
            *t = Ord::max(*t, at.0);
        }
        if latest.is_empty() {
            return Ok(());
        }
        // One transaction: the updates share one commit (on SQLite, one fsync of the WAL)
        // instead of one each. Unknown users change no row and are skipped.
        let txn = super::begin(&self.db).await.map_err(db_error)?;
        for (id, at) in latest {
            let later = user::Column::LastSeen
                .is_null()
                .or(user::Column::LastSeen.lt(at));
            user::Entity::update_many()
                .col_expr(user::Column::LastSeen, Expr::value(at))
                .filter(user::Column::Id.eq(id))
                .filter(later)
                .exec(&txn)
                .await
                .map_err(db_error)?;
        }
        txn.commit().await.map_err(db_error)
    }

    async fn last_seen(&self, users: &[UserId]) -> StorageResult<Vec<(UserId, Timestamp)>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(i64, Option<i64>)> = user::Entity::find()
            .select_only()
            .column(user::Column::Id)
            .column(user::Column::LastSeen)
            .filter(user::Column::Id.is_in(ids(users)))
            .filter(user::Column::LastSeen.is_not_null())
            .into_tuple()
            .all(&self.read)
            .await
            .map_err(db_error)?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, at)| at.map(|at| (UserId(u(id)), Timestamp(at))))
            .collect())
    }
}
