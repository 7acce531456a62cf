//! [`ContactStore`] on SQL.

use async_trait::async_trait;
use im_core::model::{Friend, FriendRequest, Timestamp, UserId};
use im_core::storage::{ContactStore, RequestOutcome, StorageError, StorageResult};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{ExprTrait, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder,
};

use super::entity::{block, friend, friend_request};
use super::{SqlStorage, db_error, i, u};

fn to_request(m: friend_request::Model) -> FriendRequest {
    FriendRequest {
        from: UserId(u(m.from_user)),
        to: UserId(u(m.to_user)),
        note: m.note,
        created_at: Timestamp(m.created_at),
    }
}

/// Deletes the requests between two users, both ways.
async fn delete_requests_between(
    db: &impl ConnectionTrait,
    a: UserId,
    b: UserId,
) -> StorageResult<u64> {
    let ab = friend_request::Column::FromUser
        .eq(i(a.0))
        .and(friend_request::Column::ToUser.eq(i(b.0)));
    let ba = friend_request::Column::FromUser
        .eq(i(b.0))
        .and(friend_request::Column::ToUser.eq(i(a.0)));
    let done = friend_request::Entity::delete_many()
        .filter(ab.or(ba))
        .exec(db)
        .await
        .map_err(db_error)?;
    Ok(done.rows_affected)
}

/// Locks both users' rows until the transaction ends, lower id first, so that calls on
/// the same two users run one after the other and never deadlock each other (PostgreSQL
/// and MySQL; SQLite has one writer, and sea-query writes no lock clause for it).
/// With `refuse_disabled` (a request, an accept: a new tie), `Conflict`
/// ([`ACCOUNT_DISABLED`](im_core::storage::ACCOUNT_DISABLED)) if either is a disabled
/// account; a block is a tie nobody minds a disabled account getting.
async fn lock_pair(
    txn: &DatabaseTransaction,
    a: UserId,
    b: UserId,
    refuse_disabled: bool,
) -> StorageResult<()> {
    super::users::lock_users(txn, &[a, b], refuse_disabled).await
}

/// Makes `a` and `b` friends both ways since `at` and deletes the requests between them.
async fn make_friends(
    txn: &DatabaseTransaction,
    a: UserId,
    b: UserId,
    at: Timestamp,
) -> StorageResult<()> {
    delete_requests_between(txn, a, b).await?;
    for (x, y) in [(a, b), (b, a)] {
        let row = friend::ActiveModel {
            user_id: Set(i(x.0)),
            friend_id: Set(i(y.0)),
            since: Set(at.0),
        };
        friend::Entity::insert(row)
            .on_conflict_do_nothing()
            .exec_without_returning(txn)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}

#[async_trait]
impl ContactStore for SqlStorage {
    async fn put_friend_request(&self, request: FriendRequest) -> StorageResult<RequestOutcome> {
        let (from, to) = (request.from, request.to);
        let txn = super::begin(&self.db).await.map_err(db_error)?;
        lock_pair(&txn, from, to, true).await?;
        // Under the pair's lock: a block made at the same moment either came first (and is
        // seen here) or deletes this request after it.
        let either = |a: UserId, b: UserId| {
            block::Column::UserId
                .eq(i(a.0))
                .and(block::Column::TargetId.eq(i(b.0)))
        };
        let blocked = block::Entity::find()
            .filter(either(from, to).or(either(to, from)))
            .count(&txn)
            .await
            .map_err(db_error)?
            > 0;
        if blocked {
            txn.commit().await.map_err(db_error)?;
            return Ok(RequestOutcome::Blocked);
        }
        let friends = friend::Entity::find_by_id((i(from.0), i(to.0)))
            .count(&txn)
            .await
            .map_err(db_error)?
            > 0;
        if friends {
            txn.commit().await.map_err(db_error)?;
            return Ok(RequestOutcome::AlreadyFriends);
        }
        let theirs = friend_request::Entity::find_by_id((i(to.0), i(from.0)))
            .count(&txn)
            .await
            .map_err(db_error)?
            > 0;
        if theirs {
            make_friends(&txn, from, to, request.created_at).await?;
            txn.commit().await.map_err(db_error)?;
            return Ok(RequestOutcome::Accepted);
        }
        let row = friend_request::ActiveModel {
            from_user: Set(i(request.from.0)),
            to_user: Set(i(request.to.0)),
            note: Set(request.note),
            created_at: Set(request.created_at.0),
        };
        let replace = OnConflict::columns([
            friend_request::Column::FromUser,
            friend_request::Column::ToUser,
        ])
        .update_columns([
            friend_request::Column::Note,
            friend_request::Column::CreatedAt,
        ])
        .to_owned();
        friend_request::Entity::insert(row)
            .on_conflict(replace)
            .exec_without_returning(&txn)
            .await
            .map_err(db_error)?;
        txn.commit().await.map_err(db_error)?;
        Ok(RequestOutcome::Pending)
    }

    async fn friend_requests(&self, user: UserId) -> StorageResult<Vec<FriendRequest>> {
        let me = i(user.0);
        Ok(friend_request::Entity::find()
            .filter(
                friend_request::Column::FromUser
                    .eq(me)
                    .or(friend_request::Column::ToUser.eq(me)),
            )
            .order_by_asc(friend_request::Column::CreatedAt)
            .all(&self.read)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(to_request)
            .collect())
    }

    async fn delete_friend_request(&self, from: UserId, to: UserId) -> StorageResult<bool> {
        let done = friend_request::Entity::delete_by_id((i(from.0), i(to.0)))
            .exec(&self.db)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected > 0)
    }

    async fn accept_friend_request(
        &self,
        from: UserId,
        to: UserId,
        at: Timestamp,
    ) -> StorageResult<()> {
        let txn = super::begin(&self.db).await.map_err(db_error)?;
        lock_pair(&txn, from, to, true).await?;
        let done = friend_request::Entity::delete_by_id((i(from.0), i(to.0)))
            .exec(&txn)
            .await
            .map_err(db_error)?;
        if done.rows_affected == 0 {
            return Err(StorageError::NotFound("friend request"));
        }
        make_friends(&txn, from, to, at).await?;
        txn.commit().await.map_err(db_error)
    }

    async fn friends(&self, user: UserId) -> StorageResult<Vec<Friend>> {
        Ok(friend::Entity::find()
            .filter(friend::Column::UserId.eq(i(user.0)))
            .order_by_asc(friend::Column::FriendId)
            .all(&self.read)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(|m| Friend {
                user: UserId(u(m.friend_id)),
                since: Timestamp(m.since),
            })
            .collect())
    }

    async fn is_friend(&self, a: UserId, b: UserId) -> StorageResult<bool> {
        let n = friend::Entity::find_by_id((i(a.0), i(b.0)))
            .count(&self.read)
            .await
            .map_err(db_error)?;
        Ok(n > 0)
    }

    async fn remove_friend(&self, a: UserId, b: UserId) -> StorageResult<bool> {
        let ab = friend::Column::UserId
            .eq(i(a.0))
            .and(friend::Column::FriendId.eq(i(b.0)));
        let ba = friend::Column::UserId
            .eq(i(b.0))
            .and(friend::Column::FriendId.eq(i(a.0)));
        let done = friend::Entity::delete_many()
            .filter(ab.or(ba))
            .exec(&self.db)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected > 0)
    }

    async fn set_blocked(
        &self,
        user: UserId,
        target: UserId,
        blocked: bool,
    ) -> StorageResult<bool> {
        if !blocked {
            let done = block::Entity::delete_by_id((i(user.0), i(target.0)))
                .exec(&self.db)
                .await
                .map_err(db_error)?;
            return Ok(done.rows_affected > 0);
        }
        let txn = super::begin(&self.db).await.map_err(db_error)?;
        // Two blocks at once: the second waits here, then sees the first's row.
        lock_pair(&txn, user, target, false).await?;
        delete_requests_between(&txn, user, target).await?;
        // Asked, not inferred from the insert: MySQL reports a conflict that changed
        // nothing as one row affected.
        let existed = block::Entity::find_by_id((i(user.0), i(target.0)))
            .count(&txn)
            .await
            .map_err(db_error)?
            > 0;
        let row = block::ActiveModel {
            user_id: Set(i(user.0)),
            target_id: Set(i(target.0)),
        };
        block::Entity::insert(row)
            .on_conflict_do_nothing()
            .exec_without_returning(&txn)
            .await
            .map_err(db_error)?;
        txn.commit().await.map_err(db_error)?;
        Ok(!existed)
    }

    async fn is_blocked(&self, user: UserId, target: UserId) -> StorageResult<bool> {
        let n = block::Entity::find_by_id((i(user.0), i(target.0)))
            .count(&self.read)
            .await
            .map_err(db_error)?;
        Ok(n > 0)
    }

    async fn blocked(&self, user: UserId) -> StorageResult<Vec<UserId>> {
        Ok(block::Entity::find()
            .filter(block::Column::UserId.eq(i(user.0)))
            .order_by_asc(block::Column::TargetId)
            .all(&self.read)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(|m| UserId(u(m.target_id)))
            .collect())
    }
}
