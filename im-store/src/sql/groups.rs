//! [`GroupStore`] on SQL. A group change and the system message recording it commit in
//! one transaction.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use im_core::model::{
    ConversationId, Group, GroupId, Member, Message, Role, Seq, Timestamp, UserId,
};
use im_core::storage::{
    GROUP_FULL, GroupChange, GroupStore, NewGroup, NewMessage, StorageError, StorageResult,
};
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use super::entity::{group, member};
use super::messages::{AppendError, CHUNK, append_in, raise_cursors};
use super::{SqlStorage, conversation_key, db_error, i, parse_role, role_str, u};

fn to_group(m: group::Model) -> Group {
    Group {
        id: GroupId(u(m.id)),
        name: m.name,
        owner: UserId(u(m.owner_id)),
        open: m.open,
        created_at: Timestamp(m.created_at),
    }
}

fn to_member(m: member::Model) -> StorageResult<Member> {
    Ok(Member {
        user: UserId(u(m.user_id)),
        role: parse_role(&m.role)?,
        joined_seq: Seq(u(m.joined_seq)),
    })
}

/// Appends a group's system message; system messages have no idempotency key, so a race
/// cannot happen.
async fn record(
    txn: &DatabaseTransaction,
    group: GroupId,
    message: NewMessage,
) -> StorageResult<Message> {
    match append_in(txn, ConversationId::Group(group), message).await {
        Ok(appended) => Ok(appended.message),
        Err(AppendError::Raced) => Err(StorageError::Conflict("concurrent group change")),
        Err(AppendError::Storage(e)) => Err(e),
    }
}

/// Adds members who joined at `seq`, with their read cursors at it.
async fn add_members(
    db: &impl ConnectionTrait,
    group: GroupId,
    members: &[(UserId, Role)],
    seq: Seq,
) -> StorageResult<()> {
    let key = conversation_key(ConversationId::Group(group));
    for chunk in members.chunks(CHUNK) {
        let rows = chunk.iter().map(|(user, role)| member::ActiveModel {
            group_id: Set(i(group.0)),
            user_id: Set(i(user.0)),
            role: Set(role_str(*role).to_owned()),
            joined_seq: Set(i(seq.0)),
        });
        member::Entity::insert_many(rows)
            .exec_without_returning(db)
            .await
            .map_err(db_error)?;
    }
    let users: Vec<UserId> = members.iter().map(|(user, _)| *user).collect();
    raise_cursors(db, &key, &users, Some(i(seq.0)), i(seq.0))
        .await
        .map_err(db_error)
}

#[async_trait]
impl GroupStore for SqlStorage {
    async fn create_group(
        &self,
        new: NewGroup,
        members: Vec<(UserId, Role)>,
        message: NewMessage,
    ) -> StorageResult<(Group, Message)> {
        let txn = super::begin(&self.db).await.map_err(db_error)?;
        let firsts: Vec<UserId> = members.iter().map(|(user, _)| *user).collect();
        super::users::lock_users(&txn, &firsts, true).await?;
        let row = group::ActiveModel {
            id: NotSet,
            name: Set(new.name.clone()),
            owner_id: Set(i(new.owner.0)),
            open: Set(new.open),
            created_at: Set(new.created_at.0),
        };
        let id = group::Entity::insert(row)
            .exec(&txn)
            .await
            .map_err(db_error)?
            .last_insert_id;
        let id = GroupId(u(id));
        let message = record(&txn, id, message).await?;
        let mut seen = HashSet::new();
        let members: Vec<(UserId, Role)> = members
            .into_iter()
            .filter(|(user, _)| seen.insert(*user))
            .collect();
        add_members(&txn, id, &members, message.seq).await?;
        txn.commit().await.map_err(db_error)?;
        Ok((
            Group {
                id,
                name: new.name,
                owner: new.owner,
                open: new.open,
                created_at: new.created_at,
            },
            message,
        ))
    }

    async fn update_group(
        &self,
        id: GroupId,
        change: GroupChange,
        message: NewMessage,
    ) -> StorageResult<(Group, Message)> {
        let txn = super::begin(&self.db).await.map_err(db_error)?;
        if group::Entity::find_by_id(i(id.0))
            .one(&txn)
            .await
            .map_err(db_error)?
            .is_none()
        {
            return Err(StorageError::NotFound("group"));
        }
        // Appending the record takes the group's counter lock, which every change to the
        // group takes: from here on nobody else changes it until this commits.
        let message = record(&txn, id, message).await?;
        if !change.expect.is_empty() {
            let roles: HashMap<i64, String> = member::Entity::find()
                .select_only()
                .column(member::Column::UserId)
                .column(member::Column::Role)
                .filter(member::Column::GroupId.eq(i(id.0)))
                .filter(member::Column::UserId.is_in(change.expect.iter().map(|(u, _)| i(u.0))))
                .into_tuple::<(i64, String)>()
                .all(&txn)
                .await
                .map_err(db_error)?
                .into_iter()
                .collect();
            for (user, expected) in &change.expect {
                let now = roles.get(&i(user.0)).map(|r| parse_role(r)).transpose()?;
                if now != *expected {
                    return Err(StorageError::Conflict("the group changed meanwhile"));
                }
            }
        }

        if !change.add.is_empty() {
            let added: Vec<UserId> = change.add.iter().map(|(user, _)| *user).collect();
            super::users::lock_users(&txn, &added, true).await?;
            // Members already in the group are left as they are.
            let present: HashSet<i64> = member::Entity::find()
                .select_only()
                .column(member::Column::UserId)
                .filter(member::Column::GroupId.eq(i(id.0)))
                .filter(member::Column::UserId.is_in(change.add.iter().map(|(u, _)| i(u.0))))
                .into_tuple::<i64>()
                .all(&txn)
                .await
                .map_err(db_error)?
                .into_iter()
                .collect();
            let mut seen = HashSet::new();
            let new: Vec<(UserId, Role)> = change
                .add
                .into_iter()
                .filter(|(user, _)| !present.contains(&i(user.0)) && seen.insert(*user))
                .collect();
            add_members(&txn, id, &new, message.seq).await?;
        }
        if !change.remove.is_empty() {
            member::Entity::delete_many()
                .filter(member::Column::GroupId.eq(i(id.0)))
                .filter(member::Column::UserId.is_in(change.remove.iter().map(|u| i(u.0))))
                .exec(&txn)
                .await
                .map_err(db_error)?;
        }
        if let Some(max) = change.max_members {
            let count = member::Entity::find()
                .filter(member::Column::GroupId.eq(i(id.0)))
                .count(&txn)
                .await
                .map_err(db_error)?;
            if count > u64::try_from(max).unwrap_or(u64::MAX) {
                txn.rollback().await.map_err(db_error)?;
                return Err(StorageError::Conflict(GROUP_FULL));
            }
        }
        for (user, role) in change.roles {
            member::Entity::update_many()
                .col_expr(member::Column::Role, Expr::value(role_str(role)))
                .filter(member::Column::GroupId.eq(i(id.0)))
                .filter(member::Column::UserId.eq(i(user.0)))
                .exec(&txn)
                .await
                .map_err(db_error)?;
        }
        if change.name.is_some() || change.owner.is_some() {
            let mut update = group::Entity::update_many().filter(group::Column::Id.eq(i(id.0)));
            if let Some(name) = change.name {
                update = update.col_expr(group::Column::Name, Expr::value(name));
            }
            if let Some(owner) = change.owner {
                update = update.col_expr(group::Column::OwnerId, Expr::value(i(owner.0)));
            }
            update.exec(&txn).await.map_err(db_error)?;
        }
        let updated = group::Entity::find_by_id(i(id.0))
            .one(&txn)
            .await
            .map_err(db_error)?
            .map(to_group)
            .ok_or(StorageError::NotFound("group"))?;
        txn.commit().await.map_err(db_error)?;
        Ok((updated, message))
    }

    async fn group(&self, id: GroupId) -> StorageResult<Group> {
        group::Entity::find_by_id(i(id.0))
            .one(&self.read)
            .await
            .map_err(db_error)?
            .map(to_group)
            .ok_or(StorageError::NotFound("group"))
    }

    async fn members(&self, id: GroupId) -> StorageResult<Vec<Member>> {
        // Unknown groups are `NotFound`, not empty.
        self.group(id).await?;
        member::Entity::find()
            .filter(member::Column::GroupId.eq(i(id.0)))
            .order_by_asc(member::Column::UserId)
            .all(&self.read)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(to_member)
            .collect()
    }

    async fn member(&self, id: GroupId, user: UserId) -> StorageResult<Option<Member>> {
        member::Entity::find_by_id((i(id.0), i(user.0)))
            .one(&self.read)
            .await
            .map_err(db_error)?
            .map(to_member)
            .transpose()
    }

    async fn user_groups(&self, user: UserId) -> StorageResult<Vec<Group>> {
        let ids: Vec<i64> = member::Entity::find()
            .select_only()
            .column(member::Column::GroupId)
            .filter(member::Column::UserId.eq(i(user.0)))
            .into_tuple()
            .all(&self.read)
            .await
            .map_err(db_error)?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut groups = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(CHUNK) {
            groups.extend(
                group::Entity::find()
                    .filter(group::Column::Id.is_in(chunk.iter().copied()))
                    .all(&self.read)
                    .await
                    .map_err(db_error)?
                    .into_iter()
                    .map(to_group),
            );
        }
        Ok(groups)
    }
}
