//! [`MessageStore`] on SQL: appends, history, cursors, amendments and hidden messages.

use std::collections::HashMap;

use async_trait::async_trait;
use im_core::model::{
    Body, ConversationId, DeviceId, Forwarded, Message, MessageId, Seq, Timestamp, UserId,
};
use im_core::storage::{
    AMENDED_AWAY, Amendment, Appended, ConversationState, Cursor, CursorQuery, MessageRange,
    MessageStore, NewMessage, StorageError, StorageResult,
};
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use super::entity::{conversation, cursor, hidden, member, message, user_conversation};
use super::search::stored_text;
use super::{SqlStorage, conversation_key, db_error, i, pad_in_list, parse_conversation, u};

/// How many rows one multi-row statement carries at most (the smallest bind-parameter
/// limit of the three databases divided by the widest row, with room to spare).
pub(crate) const CHUNK: usize = 1000;

pub(crate) fn to_message(m: message::Model) -> StorageResult<Message> {
    let body: Body = serde_json::from_str(&m.body)
        .map_err(|e| StorageError::Backend(format!("bad message body stored: {e}")))?;
    Ok(Message {
        id: MessageId(u(m.id)),
        conversation: parse_conversation(&m.conversation)?,
        seq: Seq(u(m.seq)),
        sender: UserId(u(m.sender_id)),
        sender_device: DeviceId::new(m.sender_device)
            .map_err(|e| StorageError::Backend(format!("bad device id stored: {e}")))?,
        client_id: m.client_id.unwrap_or_default(),
        body,
        sent_at: Timestamp(m.sent_at),
        edited_at: m.edited_at.map(Timestamp),
        reply_to: m.reply_to.map(|seq| Seq(u(seq))),
        forwarded: m
            .forwarded_sender
            .zip(m.forwarded_at)
            .map(|(sender, at)| Forwarded {
                sender: UserId(u(sender)),
                sent_at: Timestamp(at),
            }),
        mentions: m
            .mentions
            .as_deref()
            .map(serde_json::from_str::<Vec<UserId>>)
            .transpose()
            .map_err(|e| StorageError::Backend(format!("bad mentions stored: {e}")))?
            .unwrap_or_default(),
    })
}

/// How `im_messages.mentions` holds a message's mentions: a JSON array, `NULL` for none.
pub(crate) fn mentions_json(mentions: &[UserId]) -> Option<String> {
    (!mentions.is_empty()).then(|| {
        let ids: Vec<String> = mentions.iter().map(|u| u.0.to_string()).collect();
        format!("[{}]", ids.join(","))
    })
}

pub(crate) fn body_json(body: &Body) -> StorageResult<String> {
    serde_json::to_string(body).map_err(|e| StorageError::Backend(format!("encoding a body: {e}")))
}

/// Why an append inside a transaction failed.
#[derive(Debug)]
pub(crate) enum AppendError {
    /// A concurrent append with the same idempotency key won; roll back and read it.
    Raced,
    /// Anything else.
    Storage(StorageError),
}

impl From<DbErr> for AppendError {
    fn from(e: DbErr) -> Self {
        if super::is_unique_violation(&e) {
            AppendError::Raced
        } else {
            AppendError::Storage(db_error(e))
        }
    }
}

impl From<StorageError> for AppendError {
    fn from(e: StorageError) -> Self {
        AppendError::Storage(e)
    }
}

/// How many leading characters of the client id start the idempotency key.
pub(crate) const KEY_PREFIX: usize = 16;

/// What `im_messages.attachment` holds for a body naming an attachment: the SHA-256
/// (hex) of its url, fixed in length whatever the url's (up to 1024 bytes), so that
/// every database can index it.
pub(crate) fn attachment_key(body: &Body) -> Option<String> {
    body.attachment().map(url_key)
}

/// The SHA-256 (hex) of an attachment url.
fn url_key(url: &str) -> String {
    use sha2::{Digest, Sha256};
    super::hex(&Sha256::digest(url.as_bytes()))
}

/// A message's idempotency key (`None` without a client id): the client id's first
/// [`KEY_PREFIX`] characters, then the SHA-256, in hex, of its conversation, sender,
/// device and client id.
///
/// The hash makes the key exact on every database (MySQL's collations would take `abc`
/// and `abc ` for one key) and fixed-width enough for one indexed `IN` lookup per batch.
/// The prefix gives the unique index locality: client ids that start with the time (our
/// client's, UUIDv7, ULID) land next to each other, so a batch's inserts touch a few
/// index pages instead of one random page each. Measured on SQLite, where every page a
/// commit touches is written to the WAL: 12,700 appends/s with hash-only keys against
/// 40,400 with ordered ones (batches of 31, synchronous = FULL).
pub(crate) fn idem_key(conversation: &str, m: &NewMessage) -> Option<String> {
    use sha2::{Digest, Sha256};
    (!m.client_id.is_empty()).then(|| {
        let mut hash = Sha256::new();
        for part in [
            conversation.as_bytes(),
            m.sender.0.to_string().as_bytes(),
            m.sender_device.as_str().as_bytes(),
            m.client_id.as_bytes(),
        ] {
            // Length-prefixed, so no two different keys hash the same input.
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part);
        }
        let mut key = String::with_capacity(KEY_PREFIX + 64);
        key.extend(m.client_id.chars().take(KEY_PREFIX));
        key.push_str(&super::hex(&hash.finalize()));
        key
    })
}

/// The stored message with this idempotency key, if any.
async fn find_by_key(
    db: &impl ConnectionTrait,
    key: &str,
    m: &NewMessage,
) -> Result<Option<Message>, AppendError> {
    let Some(idem) = idem_key(key, m) else {
        return Ok(None);
    };
    let found = message::Entity::find()
        .filter(message::Column::IdemKey.eq(idem))
        .one(db)
        .await?;
    Ok(found.map(to_message).transpose()?)
}

/// The stored messages with these idempotency keys, by key: one indexed `IN` per chunk.
pub(crate) async fn find_keys(
    db: &impl ConnectionTrait,
    keys: &[String],
) -> Result<HashMap<String, Message>, AppendError> {
    let mut found = HashMap::new();
    for chunk in keys.chunks(512) {
        let mut chunk = chunk.to_vec();
        pad_in_list(&mut chunk);
        let rows = message::Entity::find()
            .filter(message::Column::IdemKey.is_in(chunk))
            .all(db)
            .await?;
        for row in rows {
            if let Some(key) = row.idem_key.clone() {
                found.insert(key, to_message(row)?);
            }
        }
    }
    Ok(found)
}

/// Runs `append_in` in its own transaction; a lost race on the idempotency key returns
/// the message that won it.
pub(crate) async fn append_once(
    db: &DatabaseConnection,
    conversation: ConversationId,
    m: NewMessage,
) -> StorageResult<Appended> {
    let txn = super::begin(db).await.map_err(db_error)?;
    match append_in(&txn, conversation, m.clone()).await {
        Ok(appended) => {
            txn.commit().await.map_err(db_error)?;
            Ok(appended)
        }
        Err(AppendError::Raced) => {
            txn.rollback().await.map_err(db_error)?;
            winner(db, &conversation_key(conversation), &m).await
        }
        Err(AppendError::Storage(e)) => Err(e),
    }
}

/// After a lost race on an idempotency key: the message that won it.
async fn winner(db: &impl ConnectionTrait, key: &str, m: &NewMessage) -> StorageResult<Appended> {
    match find_by_key(db, key, m).await {
        Ok(Some(message)) => Ok(Appended {
            message,
            duplicate: true,
        }),
        Ok(None) | Err(AppendError::Raced) => Err(StorageError::Conflict("concurrent append")),
        Err(AppendError::Storage(e)) => Err(e),
    }
}

/// Appends inside the caller's transaction: see the module docs of `sql` for why this is
/// gapless and idempotent.
pub(crate) async fn append_in(
    db: &impl ConnectionTrait,
    conversation: ConversationId,
    m: NewMessage,
) -> Result<Appended, AppendError> {
    let key = conversation_key(conversation);
    if !m.client_id.is_empty()
        && let Some(message) = find_by_key(db, &key, &m).await?
    {
        return Ok(Appended {
            message,
            duplicate: true,
        });
    }
    let bump = OnConflict::column(conversation::Column::Id)
        .value(
            conversation::Column::LastSeq,
            Expr::col((conversation::Entity, conversation::Column::LastSeq)).add(1i64),
        )
        .to_owned();
    conversation::Entity::insert(conversation::ActiveModel {
        id: Set(key.clone()),
        last_seq: Set(1),
    })
    .on_conflict(bump)
    .exec_without_returning(db)
    .await?;
    let seq: i64 = conversation::Entity::find_by_id(key.clone())
        .select_only()
        .column(conversation::Column::LastSeq)
        .into_tuple()
        .one(db)
        .await?
        .ok_or(StorageError::Backend(
            "conversation counter vanished".into(),
        ))?;

    let body = body_json(&m.body)?;
    let row = message::ActiveModel {
        id: NotSet,
        conversation: Set(key.clone()),
        seq: Set(seq),
        sender_id: Set(i(m.sender.0)),
        sender_device: Set(m.sender_device.as_str().to_owned()),
        client_id: Set((!m.client_id.is_empty()).then(|| m.client_id.clone())),
        idem_key: Set(idem_key(&key, &m)),
        body: Set(body),
        sent_at: Set(m.sent_at.0),
        edited_at: Set(None),
        reply_to: Set(m.reply_to.map(|seq| i(seq.0))),
        forwarded_sender: Set(m.forwarded.map(|f| i(f.sender.0))),
        forwarded_at: Set(m.forwarded.map(|f| f.sent_at.0)),
        search_text: Set(stored_text(db.get_database_backend(), &m.body)),
        mentions: Set(mentions_json(&m.mentions)),
        attachment: Set(attachment_key(&m.body)),
    };
    let id = message::Entity::insert(row).exec(db).await?.last_insert_id;
    raise_cursor(db, &key, m.sender, Some(seq), seq).await?;
    let marks = m
        .mentions
        .iter()
        .map(|&user| ((key.as_str(), user), seq))
        .collect();
    super::appender::raise_mentions(db, db.get_database_backend(), &marks).await?;
    if let ConversationId::Direct(a, b) = conversation
        && seq == 1
    {
        for user in [a, b] {
            user_conversation::Entity::insert(user_conversation::ActiveModel {
                user_id: Set(i(user.0)),
                conversation: Set(key.clone()),
            })
            .on_conflict_do_nothing()
            .exec_without_returning(db)
            .await?;
        }
    }
    Ok(Appended {
        message: m.stored(MessageId(u(id)), conversation, Seq(u(seq))),
        duplicate: false,
    })
}

/// `column = max(column, value)`, portably.
fn at_least(column: cursor::Column, value: i64) -> Expr {
    let current = Expr::col((cursor::Entity, column));
    Expr::case(current.clone().lt(value), value)
        .finally(current)
        .into()
}

/// Raises a user's cursors: delivered to at least `delivered`, and read to at least
/// `read` when given. A read cursor never passes the delivered one.
pub(crate) async fn raise_cursor(
    db: &impl ConnectionTrait,
    key: &str,
    user: UserId,
    read: Option<i64>,
    delivered: i64,
) -> Result<(), DbErr> {
    raise_cursors(db, key, &[user], read, delivered).await
}

/// [`raise_cursor`] for many users at once, in multi-row statements.
pub(crate) async fn raise_cursors(
    db: &impl ConnectionTrait,
    key: &str,
    users: &[UserId],
    read: Option<i64>,
    delivered: i64,
) -> Result<(), DbErr> {
    let delivered = Ord::max(delivered, read.unwrap_or(0));
    let mut on_conflict =
        OnConflict::columns([cursor::Column::Conversation, cursor::Column::UserId]);
    on_conflict.value(
        cursor::Column::DeliveredSeq,
        at_least(cursor::Column::DeliveredSeq, delivered),
    );
    if let Some(read) = read {
        on_conflict.value(
            cursor::Column::ReadSeq,
            at_least(cursor::Column::ReadSeq, read),
        );
    }
    for chunk in users.chunks(CHUNK) {
        let rows = chunk.iter().map(|user| cursor::ActiveModel {
            conversation: Set(key.to_owned()),
            user_id: Set(i(user.0)),
            delivered_seq: Set(delivered),
            read_seq: Set(read.unwrap_or(0)),
            mention_seq: NotSet,
        });
        cursor::Entity::insert_many(rows)
            .on_conflict(on_conflict.clone())
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

async fn cursor_of(db: &impl ConnectionTrait, key: &str, user: UserId) -> StorageResult<Cursor> {
    let row = cursor::Entity::find_by_id((key.to_owned(), i(user.0)))
        .one(db)
        .await
        .map_err(db_error)?;
    Ok(row.map_or(
        Cursor {
            user,
            ..Cursor::default()
        },
        to_cursor,
    ))
}

fn to_cursor(m: cursor::Model) -> Cursor {
    Cursor {
        user: UserId(u(m.user_id)),
        delivered: Seq(u(m.delivered_seq)),
        read: Seq(u(m.read_seq)),
    }
}

impl SqlStorage {
    /// Raises a user's cursors (read only when `read` is given) and returns them as they
    /// are after the change, in one transaction.
    async fn raise_and_read(
        &self,
        user: UserId,
        conversation: ConversationId,
        read: Option<Seq>,
        delivered: Seq,
    ) -> StorageResult<Cursor> {
        let key = conversation_key(conversation);
        let txn = super::begin(&self.db).await.map_err(db_error)?;
        raise_cursor(&txn, &key, user, read.map(|s| i(s.0)), i(delivered.0))
            .await
            .map_err(db_error)?;
        let cursor = cursor_of(&txn, &key, user).await?;
        txn.commit().await.map_err(db_error)?;
        Ok(cursor)
    }
}

#[async_trait]
impl MessageStore for SqlStorage {
    async fn append(
        &self,
        conversation: ConversationId,
        message: NewMessage,
    ) -> StorageResult<Appended> {
        // Through the group-commit writer: concurrent appends share a transaction.
        self.appender.append(conversation, message).await
    }

    async fn append_many(
        &self,
        messages: Vec<(ConversationId, NewMessage)>,
    ) -> Vec<StorageResult<Appended>> {
        // Queued together, in order: they go into the same commit (or the next ones, in
        // the same order), not one commit each.
        self.appender.append_many(messages).await
    }

    async fn messages(
        &self,
        conversation: ConversationId,
        range: MessageRange,
    ) -> StorageResult<Vec<Message>> {
        let mut query = message::Entity::find()
            .filter(message::Column::Conversation.eq(conversation_key(conversation)))
            .filter(message::Column::Seq.gt(i(range.after.0)));
        if let Some(before) = range.before {
            query = query.filter(message::Column::Seq.lt(i(before.0)));
        }
        if let Some(viewer) = range.viewer {
            // Served by im_hidden's primary key (user, conversation, seq).
            let hidden = Query::select()
                .column(hidden::Column::Seq)
                .from(hidden::Entity)
                .and_where(hidden::Column::UserId.eq(i(viewer.0)))
                .and_where(hidden::Column::Conversation.eq(conversation_key(conversation)))
                .take();
            query = query.filter(message::Column::Seq.not_in_subquery(hidden));
        }
        query = if range.newest {
            query.order_by_desc(message::Column::Seq)
        } else {
            query.order_by_asc(message::Column::Seq)
        };
        let mut rows = query
            .limit(u64::from(range.limit))
            .all(&self.read)
            .await
            .map_err(db_error)?;
        if range.newest {
            rows.reverse();
        }
        rows.into_iter().map(to_message).collect()
    }

    async fn last_seq(&self, conversation: ConversationId) -> StorageResult<Seq> {
        let last: Option<i64> = conversation::Entity::find_by_id(conversation_key(conversation))
            .select_only()
            .column(conversation::Column::LastSeq)
            .into_tuple()
            .one(&self.read)
            .await
            .map_err(db_error)?;
        Ok(Seq(last.map_or(0, u)))
    }

    async fn set_read(
        &self,
        user: UserId,
        conversation: ConversationId,
        seq: Seq,
    ) -> StorageResult<Seq> {
        let cursor = self
            .raise_and_read(user, conversation, Some(seq), seq)
            .await?;
        Ok(cursor.read)
    }

    async fn set_delivered(
        &self,
        user: UserId,
        conversation: ConversationId,
        seq: Seq,
    ) -> StorageResult<Seq> {
        let cursor = self.raise_and_read(user, conversation, None, seq).await?;
        Ok(cursor.delivered)
    }

    async fn cursors(
        &self,
        conversation: ConversationId,
        query: CursorQuery,
    ) -> StorageResult<Vec<Cursor>> {
        let mut select = cursor::Entity::find()
            .filter(cursor::Column::Conversation.eq(conversation_key(conversation)))
            .filter(cursor::Column::DeliveredSeq.gte(i(query.at_least.0)));
        if let Some(after) = query.after {
            select = select.filter(cursor::Column::UserId.gt(i(after.0)));
        }
        Ok(select
            .order_by_asc(cursor::Column::UserId)
            .limit(u64::from(query.limit))
            .all(&self.read)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(to_cursor)
            .collect())
    }

    async fn conversations(&self, user: UserId) -> StorageResult<Vec<ConversationState>> {
        let me = i(user.0);
        // A fixed number of queries however many conversations there are: the direct
        // ones, the groups, their counters, the user's cursors, the peers' cursors, and
        // the last messages (in chunks).
        let mut keys: Vec<String> = user_conversation::Entity::find()
            .select_only()
            .column(user_conversation::Column::Conversation)
            .filter(user_conversation::Column::UserId.eq(me))
            .into_tuple()
            .all(&self.read)
            .await
            .map_err(db_error)?;
        let groups: Vec<i64> = member::Entity::find()
            .select_only()
            .column(member::Column::GroupId)
            .filter(member::Column::UserId.eq(me))
            .into_tuple()
            .all(&self.read)
            .await
            .map_err(db_error)?;
        keys.extend(groups.into_iter().map(|g| format!("g:{g}")));
        if keys.is_empty() {
            return Ok(Vec::new());
        }

        let mut last: HashMap<String, i64> = HashMap::new();
        let mut mine: HashMap<String, cursor::Model> = HashMap::new();
        let mut peers: HashMap<String, cursor::Model> = HashMap::new();
        let mut newest: HashMap<String, Message> = HashMap::new();
        for chunk in keys.chunks(CHUNK) {
            let counters: Vec<(String, i64)> = conversation::Entity::find()
                .select_only()
                .column(conversation::Column::Id)
                .column(conversation::Column::LastSeq)
                .filter(conversation::Column::Id.is_in(chunk.iter().cloned()))
                .into_tuple()
                .all(&self.read)
                .await
                .map_err(db_error)?;
            last.extend(counters);
            let cursors = cursor::Entity::find()
                .filter(cursor::Column::Conversation.is_in(chunk.iter().cloned()))
                .filter(
                    Condition::any()
                        .add(cursor::Column::UserId.eq(me))
                        .add(cursor::Column::Conversation.like("d:%")),
                )
                .all(&self.read)
                .await
                .map_err(db_error)?;
            for c in cursors {
                if c.user_id == me {
                    mine.insert(c.conversation.clone(), c);
                } else {
                    peers.insert(c.conversation.clone(), c);
                }
            }
        }
        let with_messages: Vec<(&String, i64)> = keys
            .iter()
            .filter_map(|k| last.get(k).map(|s| (k, *s)))
            .collect();
        for chunk in with_messages.chunks(CHUNK / 2) {
            let mut any = Condition::any();
            for (key, seq) in chunk {
                any = any.add(
                    message::Column::Conversation
                        .eq(key.as_str())
                        .and(message::Column::Seq.eq(*seq)),
                );
            }
            for row in message::Entity::find()
                .filter(any)
                .all(&self.read)
                .await
                .map_err(db_error)?
            {
                let key = row.conversation.clone();
                newest.insert(key, to_message(row)?);
            }
        }

        keys.into_iter()
            .map(|key| {
                let conversation = parse_conversation(&key)?;
                let own = mine.get(&key).map(|c| to_cursor(c.clone()));
                let peer = conversation
                    .peer_of(user)
                    .map(|p| {
                        peers
                            .get(&key)
                            .map(|c| to_cursor(c.clone()))
                            .unwrap_or(Cursor {
                                user: p,
                                ..Cursor::default()
                            })
                    })
                    .unwrap_or_default();
                Ok(ConversationState {
                    conversation,
                    last_seq: Seq(last.get(&key).copied().map_or(0, u)),
                    read_seq: own.map_or(Seq::ZERO, |c| c.read),
                    delivered_seq: own.map_or(Seq::ZERO, |c| c.delivered),
                    peer,
                    last_message: newest.remove(&key),
                    mention_seq: Seq(mine.get(&key).map_or(0, |c| u(c.mention_seq))),
                })
            })
            .collect()
    }

    async fn amend(
        &self,
        conversation: ConversationId,
        amendment: Amendment,
    ) -> StorageResult<Appended> {
        let key = conversation_key(conversation);
        let target = i(amendment.target.0);
        let body = body_json(&amendment.body)?;
        let txn = super::begin(&self.db).await.map_err(db_error)?;
        let exists = message::Entity::find()
            .select_only()
            .column(message::Column::Id)
            .filter(message::Column::Conversation.eq(key.as_str()))
            .filter(message::Column::Seq.eq(target))
            .into_tuple::<i64>()
            .one(&txn)
            .await
            .map_err(db_error)?;
        if exists.is_none() {
            return Err(StorageError::NotFound("message"));
        }
        let appended = match append_in(&txn, conversation, amendment.event.clone()).await {
            Ok(appended) => appended,
            Err(AppendError::Raced) => {
                txn.rollback().await.map_err(db_error)?;
                return winner(&self.db, &key, &amendment.event).await;
            }
            Err(AppendError::Storage(e)) => return Err(e),
        };
        if !appended.duplicate {
            // Read only now: the append holds the conversation's counter row until the
            // commit, so an amend of the same conversation that committed meanwhile is
            // visible here, and one still running waits for this one.
            let current: Option<String> = message::Entity::find()
                .select_only()
                .column(message::Column::Body)
                .filter(message::Column::Conversation.eq(key.as_str()))
                .filter(message::Column::Seq.eq(target))
                .into_tuple()
                .one(&txn)
                .await
                .map_err(db_error)?;
            let system = current
                .map(|json| serde_json::from_str::<Body>(&json))
                .transpose()
                .map_err(|e| StorageError::Backend(format!("a stored body does not decode: {e}")))?
                .is_some_and(|b| matches!(b, Body::System { .. }));
            if system {
                txn.rollback().await.map_err(db_error)?;
                return Err(StorageError::Conflict(AMENDED_AWAY));
            }
            message::Entity::update_many()
                .col_expr(message::Column::Body, Expr::value(body))
                .col_expr(
                    message::Column::SearchText,
                    Expr::value(stored_text(txn.get_database_backend(), &amendment.body)),
                )
                .col_expr(
                    message::Column::Attachment,
                    Expr::value(attachment_key(&amendment.body)),
                )
                .col_expr(
                    message::Column::EditedAt,
                    Expr::value(appended.message.sent_at.0),
                )
                .filter(message::Column::Conversation.eq(key.as_str()))
                .filter(message::Column::Seq.eq(target))
                .exec(&txn)
                .await
                .map_err(db_error)?;
        }
        txn.commit().await.map_err(db_error)?;
        Ok(appended)
    }

    async fn attachment_use(
        &self,
        url: &str,
        conversation: Option<ConversationId>,
    ) -> StorageResult<Option<(ConversationId, Seq)>> {
        // One probe of the `(attachment, conversation, seq)` index.
        let mut query = message::Entity::find()
            .select_only()
            .column(message::Column::Conversation)
            .column(message::Column::Seq)
            .filter(message::Column::Attachment.eq(url_key(url)));
        if let Some(conversation) = conversation {
            query = query
                .filter(message::Column::Conversation.eq(conversation_key(conversation)))
                .order_by_desc(message::Column::Seq);
        }
        let found: Option<(String, i64)> =
            query.into_tuple().one(&self.db).await.map_err(db_error)?;
        found
            .map(|(key, seq)| Ok((parse_conversation(&key)?, Seq(u(seq)))))
            .transpose()
    }

    async fn hide(
        &self,
        user: UserId,
        conversation: ConversationId,
        seq: Seq,
    ) -> StorageResult<()> {
        hidden::Entity::insert(hidden::ActiveModel {
            user_id: Set(i(user.0)),
            conversation: Set(conversation_key(conversation)),
            seq: Set(i(seq.0)),
        })
        .on_conflict_do_nothing()
        .exec_without_returning(&self.db)
        .await
        .map_err(db_error)?;
        Ok(())
    }
}
