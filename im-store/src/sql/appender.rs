//! Group commit: concurrent appends share one transaction.
//!
//! Every `append` is handed to one task per storage. While a batch is being written, new
//! appends queue up; the next batch takes them all (up to [`MAX_BATCH`]) and writes them
//! with a number of statements that does not grow with the batch (only with the number
//! of conversations in it):
//!
//! 1. one lookup of the batch's idempotency keys (retries get the stored message);
//! 2. per conversation, one upsert that advances its counter by the batch's count for it,
//!    then one read of all the counters (the upserts hold the counter rows locked until
//!    commit, so no other writer can take those seqs);
//! 3. one multi-row insert of the messages, one read of their ids;
//! 4. one multi-row upsert of the senders' cursors, and of the new direct conversations.
//!
//! Then one commit (one fsync) acknowledges the whole batch. If a statement fails before
//! the commit because a key raced another node or a row was refused, the batch is rolled
//! back and each append runs on its own, so one bad append never fails the others. If the
//! database is unreachable, every append of the batch fails as `Unavailable`; if the
//! commit itself fails, too (its outcome is unknown, so it is never replayed: a retry
//! with the same client id finds what was stored). The guarantees are the single
//! append's: gapless seqs, idempotent keys, acknowledged only after commit.

use std::collections::{BTreeMap, HashMap};

use im_core::model::{ConversationId, Message, MessageId, Seq, UserId};
use im_core::storage::{Appended, NewMessage, StorageError, StorageResult};
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait,
    QueryFilter, QuerySelect, TransactionTrait,
};
use tokio::sync::{mpsc, oneshot};

use super::entity::{conversation, cursor, message, user_conversation};
use super::messages::{AppendError, CHUNK, append_once, body_json, find_keys, idem_key};
use super::{conversation_key, i, u};

/// Most appends written in one transaction.
pub(crate) const MAX_BATCH: usize = 512;

struct Job {
    conversation: ConversationId,
    message: NewMessage,
    reply: oneshot::Sender<StorageResult<Appended>>,
}

/// The handle appends go through.
#[derive(Debug, Clone)]
pub(crate) struct Appender {
    jobs: mpsc::Sender<Job>,
}

impl Appender {
    /// Starts the writer task; it ends when the last handle is dropped.
    pub(crate) fn start(db: DatabaseConnection) -> Appender {
        let (jobs, rx) = mpsc::channel(MAX_BATCH * 4);
        tokio::spawn(run(db, rx));
        Appender { jobs }
    }

    /// Appends through the next batch. Dropping the returned future does not cancel the
    /// append (it may still be stored), exactly as a lost connection would not.
    pub(crate) async fn append(
        &self,
        conversation: ConversationId,
        message: NewMessage,
    ) -> StorageResult<Appended> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            conversation,
            message,
            reply,
        };
        let stopped = || StorageError::Unavailable("the append writer stopped".into());
        self.jobs.send(job).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn run(db: DatabaseConnection, mut rx: mpsc::Receiver<Job>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        metrics::histogram!("im_sql_append_batch").record(jobs.len() as f64);
        let batch: Vec<Job> = std::mem::take(&mut jobs);
        write_or_split(&db, batch).await;
    }
}

async fn write_or_split(db: &DatabaseConnection, batch: Vec<Job>) {
    if batch.len() > 1 {
        match write_batch(db, &batch).await {
            Ok(results) => {
                for (job, result) in batch.into_iter().zip(results) {
                    let _ = job.reply.send(Ok(result));
                }
                return;
            }
            // A key raced by another node, or a row the database refused: the batch was
            // rolled back; replay it one append at a time so only the culprit fails.
            Err(BatchError::Append(AppendError::Raced)) => {
                metrics::counter!("im_sql_batch_replays_total").increment(1);
                tracing::debug!(
                    size = batch.len(),
                    "batch append raced; appending one by one"
                );
            }
            Err(BatchError::Append(AppendError::Storage(e))) if !e.is_temporary() => {
                metrics::counter!("im_sql_batch_replays_total").increment(1);
                tracing::warn!(error = %e, size = batch.len(), "batch append failed; appending one by one");
            }
            // The database is unreachable: replaying one by one would only wait out one
            // timeout per append. Every append of the batch fails, and none was stored.
            Err(BatchError::Append(AppendError::Storage(e))) => {
                for job in batch {
                    let _ = job
                        .reply
                        .send(Err(StorageError::Unavailable(e.to_string())));
                }
                return;
            }
            // The commit itself failed: it may or may not have reached the disk, so no
            // replay (it could store twice). The senders retry with the same client ids,
            // which finds the messages if they were stored.
            Err(BatchError::Commit(e)) => {
                tracing::warn!(error = %e, size = batch.len(), "batch commit failed");
                for job in batch {
                    let _ = job.reply.send(Err(StorageError::Unavailable(format!(
                        "commit failed, outcome unknown; retry with the same client id: {e}"
                    ))));
                }
                return;
            }
        }
    }
    for job in batch {
        let result = append_once(db, job.conversation, job.message).await;
        let _ = job.reply.send(result);
    }
}

/// Where a job's message comes from.
enum Source {
    /// Stored before this batch (a retry).
    Stored(Message),
    /// New in this batch, at this seq.
    New(Seq),
    /// The same key as an earlier job of this batch.
    SameAs(usize),
}

/// Why a batch failed: before the commit (rolled back, safe to replay), or at it (the
/// outcome is unknown).
enum BatchError {
    Append(AppendError),
    Commit(StorageError),
}

impl<E: Into<AppendError>> From<E> for BatchError {
    fn from(e: E) -> Self {
        BatchError::Append(e.into())
    }
}

async fn write_batch(db: &DatabaseConnection, batch: &[Job]) -> Result<Vec<Appended>, BatchError> {
    let txn = db.begin().await?;
    let backend = txn.get_database_backend();
    let keys: Vec<String> = batch
        .iter()
        .map(|j| conversation_key(j.conversation))
        .collect();

    // 1. Retries: keys already stored, and keys repeated within the batch.
    let idem: Vec<Option<String>> = batch
        .iter()
        .zip(&keys)
        .map(|(j, k)| idem_key(k, &j.message))
        .collect();
    let wanted: Vec<String> = idem.iter().flatten().cloned().collect();
    let stored = find_keys(&txn, &wanted).await?;
    let mut first_of: HashMap<&str, usize> = HashMap::new();
    let mut sources = Vec::with_capacity(batch.len());
    let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
    for (n, (key, id)) in keys.iter().zip(&idem).enumerate() {
        if let Some(id) = id {
            if let Some(found) = stored.get(id) {
                sources.push(Source::Stored(found.clone()));
                continue;
            }
            if let Some(&earlier) = first_of.get(id.as_str()) {
                sources.push(Source::SameAs(earlier));
                continue;
            }
            first_of.insert(id, n);
        }
        *counts.entry(key.as_str()).or_default() += 1;
        sources.push(Source::New(Seq::ZERO));
    }

    // 2. Counters: advance each conversation's by its count, then read them all.
    for (key, count) in &counts {
        let bump = OnConflict::column(conversation::Column::Id)
            .value(
                conversation::Column::LastSeq,
                Expr::col((conversation::Entity, conversation::Column::LastSeq)).add(*count),
            )
            .to_owned();
        conversation::Entity::insert(conversation::ActiveModel {
            id: Set((*key).to_owned()),
            last_seq: Set(*count),
        })
        .on_conflict(bump)
        .exec_without_returning(&txn)
        .await?;
    }
    let mut next: HashMap<String, i64> = HashMap::new();
    if !counts.is_empty() {
        let lasts: Vec<(String, i64)> = conversation::Entity::find()
            .select_only()
            .column(conversation::Column::Id)
            .column(conversation::Column::LastSeq)
            .filter(conversation::Column::Id.is_in(counts.keys().map(|k| (*k).to_owned())))
            .into_tuple()
            .all(&txn)
            .await?;
        for (key, last) in lasts {
            let count = counts.get(key.as_str()).copied().unwrap_or(0);
            next.insert(key, last - count + 1);
        }
    }
    for (source, key) in sources.iter_mut().zip(&keys) {
        if let Source::New(seq) = source {
            let slot = next.get_mut(key).ok_or(StorageError::Backend(
                "conversation counter vanished".into(),
            ))?;
            *seq = Seq(u(*slot));
            *slot += 1;
        }
    }

    // 3. The messages, in multi-row inserts; then their ids.
    let mut rows = Vec::new();
    let mut cursors: BTreeMap<(&str, UserId), i64> = BTreeMap::new();
    let mut opened: Vec<(UserId, &str)> = Vec::new();
    for (((job, key), source), id) in batch.iter().zip(&keys).zip(&sources).zip(&idem) {
        let Source::New(seq) = source else { continue };
        let m = &job.message;
        rows.push(message::ActiveModel {
            id: NotSet,
            conversation: Set(key.clone()),
            seq: Set(i(seq.0)),
            sender_id: Set(i(m.sender.0)),
            sender_device: Set(m.sender_device.as_str().to_owned()),
            client_id: Set((!m.client_id.is_empty()).then(|| m.client_id.clone())),
            idem_key: Set(id.clone()),
            body: Set(body_json(&m.body)?),
            sent_at: Set(m.sent_at.0),
            edited_at: Set(None),
        });
        let cursor = cursors.entry((key.as_str(), m.sender)).or_default();
        *cursor = Ord::max(*cursor, i(seq.0));
        if let ConversationId::Direct(a, b) = job.conversation
            && *seq == Seq(1)
        {
            opened.push((a, key.as_str()));
            opened.push((b, key.as_str()));
        }
    }
    let mut ids: HashMap<(String, i64), i64> = HashMap::new();
    for chunk in rows.chunks(CHUNK / 10) {
        let mut range = Condition::any();
        let mut bounds: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        for row in chunk {
            let (key, seq) = (row.conversation.clone().unwrap(), row.seq.clone().unwrap());
            let b = bounds.entry(key).or_insert((seq, seq));
            b.0 = Ord::min(b.0, seq);
            b.1 = Ord::max(b.1, seq);
        }
        message::Entity::insert_many(chunk.iter().cloned())
            .exec_without_returning(&txn)
            .await?;
        for (key, (lo, hi)) in bounds {
            range = range.add(
                message::Column::Conversation
                    .eq(key)
                    .and(message::Column::Seq.between(lo, hi)),
            );
        }
        let found: Vec<(i64, String, i64)> = message::Entity::find()
            .select_only()
            .column(message::Column::Id)
            .column(message::Column::Conversation)
            .column(message::Column::Seq)
            .filter(range)
            .into_tuple()
            .all(&txn)
            .await?;
        for (id, key, seq) in found {
            ids.insert((key, seq), id);
        }
    }

    // 4. The senders' cursors, and the direct conversations that just began.
    raise_many(&txn, backend, &cursors).await?;
    if !opened.is_empty() {
        let rows = opened
            .iter()
            .map(|(user, key)| user_conversation::ActiveModel {
                user_id: Set(i(user.0)),
                conversation: Set((*key).to_owned()),
            });
        user_conversation::Entity::insert_many(rows)
            .on_conflict_do_nothing()
            .exec_without_returning(&txn)
            .await?;
    }
    let mut results: Vec<Appended> = Vec::with_capacity(batch.len());
    for ((job, key), source) in batch.iter().zip(&keys).zip(sources) {
        let appended = match source {
            Source::Stored(message) => Appended {
                message,
                duplicate: true,
            },
            Source::SameAs(earlier) => Appended {
                message: results[earlier].message.clone(),
                duplicate: true,
            },
            Source::New(seq) => {
                let id = ids
                    .get(&(key.clone(), i(seq.0)))
                    .copied()
                    .ok_or(StorageError::Backend("inserted message not found".into()))?;
                let m = job.message.clone();
                Appended {
                    message: Message {
                        id: MessageId(u(id)),
                        conversation: job.conversation,
                        seq,
                        sender: m.sender,
                        sender_device: m.sender_device,
                        client_id: m.client_id,
                        body: m.body,
                        sent_at: m.sent_at,
                        edited_at: None,
                    },
                    duplicate: false,
                }
            }
        };
        results.push(appended);
    }
    // Nothing after this may fail: a committed batch must be reported as stored.
    txn.commit()
        .await
        .map_err(|e| BatchError::Commit(super::db_error(e)))?;
    Ok(results)
}

/// Raises many (conversation, user) read and delivered cursors, each to its own seq, in
/// multi-row upserts: `col = max(col, new)`, where `new` is the row's own value.
async fn raise_many(
    db: &impl ConnectionTrait,
    backend: DbBackend,
    cursors: &BTreeMap<(&str, UserId), i64>,
) -> Result<(), DbErr> {
    if cursors.is_empty() {
        return Ok(());
    }
    let proposed = |col: &'static str| -> Expr {
        match backend {
            DbBackend::MySql => Expr::cust(format!("VALUES(`{col}`)")),
            _ => Expr::col((Alias::new("excluded"), Alias::new(col))),
        }
    };
    let at_least = |column: cursor::Column, name: &'static str| -> Expr {
        let current = Expr::col((cursor::Entity, column));
        Expr::case(current.clone().lt(proposed(name)), proposed(name))
            .finally(current)
            .into()
    };
    let mut on_conflict =
        OnConflict::columns([cursor::Column::Conversation, cursor::Column::UserId]);
    on_conflict
        .value(
            cursor::Column::DeliveredSeq,
            at_least(cursor::Column::DeliveredSeq, "delivered_seq"),
        )
        .value(
            cursor::Column::ReadSeq,
            at_least(cursor::Column::ReadSeq, "read_seq"),
        );
    let rows: Vec<cursor::ActiveModel> = cursors
        .iter()
        .map(|((key, user), seq)| cursor::ActiveModel {
            conversation: Set((*key).to_owned()),
            user_id: Set(i(user.0)),
            delivered_seq: Set(*seq),
            read_seq: Set(*seq),
        })
        .collect();
    for chunk in rows.chunks(CHUNK) {
        cursor::Entity::insert_many(chunk.iter().cloned())
            .on_conflict(on_conflict.clone())
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}
