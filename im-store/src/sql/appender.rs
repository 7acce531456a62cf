//! Group commit: concurrent appends share one transaction.
//!
//! Every `append` is handed to one task per storage. While a batch is being written, new
//! appends queue up; the next batch takes them all (up to [`MAX_BATCH`]) and writes them
//! with a fixed number of statements, whatever its size and however many conversations
//! it spans (multi-row statements are split only past [`RUN`] rows, and on MySQL into
//! power-of-two runs, see [`runs`]):
//!
//! 1. one multi-row upsert advances every conversation counter of the batch by its count
//!    and returns the new values (the upsert holds the counter rows locked until commit,
//!    so no other writer can take those seqs);
//! 2. one multi-row insert of the messages, returning their ids (SQLite numbers its rows
//!    in order, so there they follow from the last one);
//! 3. one multi-row upsert of the senders' cursors, and one of the direct conversations
//!    that just began (only when some did).
//!
//! Then one commit (one fsync) acknowledges the whole batch.
//!
//! Retries are rare, so on SQLite and PostgreSQL a batch does not look its idempotency
//! keys up first: the insert skips rows whose key is taken (`ON CONFLICT (idem_key) DO
//! NOTHING`), and when it returns fewer rows than it was given, the batch is rolled back
//! and written again, this time after one lookup of all its keys (retries get the stored
//! message). MySQL has neither `RETURNING` nor a per-index `DO NOTHING`: there the lookup
//! always comes first, and the counters and ids are read back with one `SELECT` each.
//!
//! If a statement fails before the commit because a key raced another node or a row was
//! refused, the batch is rolled back and each append runs on its own, so one bad append
//! never fails the others. If the database is unreachable, every append of the batch
//! fails as `Unavailable`; if the commit itself fails, too (its outcome is unknown, so it
//! is never replayed: a retry with the same client id finds what was stored). The
//! guarantees are the single append's: gapless seqs, idempotent keys, acknowledged only
//! after commit.

use std::collections::{BTreeMap, HashMap};
use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use im_core::model::{ConversationId, Message, MessageId, Seq, UserId};
use im_core::storage::{Appended, NewMessage, StorageError, StorageResult};
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait,
    QueryFilter, QuerySelect,
};
use tokio::sync::{mpsc, oneshot};

use super::entity::{conversation, cursor, message, user_conversation};
use super::messages::{
    AppendError, append_once, attachment_key, body_json, find_keys, idem_key, mentions_json,
};
use super::search::stored_text;
use super::{conversation_key, i, pad_in_list, runs, u};

/// Most appends written in one transaction.
pub(crate) const MAX_BATCH: usize = 512;

/// Most rows in one multi-row statement: a power of two (see [`runs`]); 512 messages of
/// 8 columns bind 4,096 parameters, far below every database's limit.
const RUN: usize = 512;

struct Job {
    conversation: ConversationId,
    message: NewMessage,
    reply: oneshot::Sender<StorageResult<Appended>>,
}

/// The handle appends go through.
#[derive(Debug, Clone)]
pub(crate) struct Appender {
    jobs: mpsc::Sender<Job>,
    /// What this writer's tests make go wrong.
    #[cfg_attr(not(test), allow(dead_code))]
    faults: Faults,
}

/// Failures a unit test injects into one writer, to prove what happens when a batch
/// panics or its commit fails (neither can be caused from outside on demand). Empty,
/// and every check false, outside tests.
#[derive(Debug, Clone, Default)]
struct Faults(#[cfg(test)] std::sync::Arc<FaultFlags>);

#[cfg(test)]
#[derive(Debug, Default)]
struct FaultFlags {
    panic_next_batch: std::sync::atomic::AtomicBool,
    fail_next_commit: std::sync::atomic::AtomicBool,
}

impl Faults {
    /// Whether the next batch is to panic (once).
    fn panic_now(&self) -> bool {
        #[cfg(test)]
        {
            self.0
                .panic_next_batch
                .swap(false, std::sync::atomic::Ordering::SeqCst)
        }
        #[cfg(not(test))]
        false
    }

    /// Whether the next commit is to fail (once).
    fn fail_commit_now(&self) -> bool {
        #[cfg(test)]
        {
            self.0
                .fail_next_commit
                .swap(false, std::sync::atomic::Ordering::SeqCst)
        }
        #[cfg(not(test))]
        false
    }
}

impl Appender {
    /// Starts the writer task; it ends when the last handle is dropped.
    pub(crate) fn start(db: DatabaseConnection) -> Appender {
        let (jobs, rx) = mpsc::channel(MAX_BATCH * 4);
        let faults = Faults::default();
        tokio::spawn(run(db, rx, faults.clone()));
        Appender { jobs, faults }
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
        let stopped = || {
            StorageError::Unavailable(
                "the append writer dropped this append; retry with the same client id".into(),
            )
        };
        self.jobs.send(job).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

impl Appender {
    /// Appends several, queued in order before any is awaited, so they share the next
    /// batch (or batches, in the same order).
    pub(crate) async fn append_many(
        &self,
        messages: Vec<(ConversationId, NewMessage)>,
    ) -> Vec<StorageResult<Appended>> {
        let stopped = || {
            StorageError::Unavailable(
                "the append writer dropped this append; retry with the same client id".into(),
            )
        };
        let mut answers = Vec::with_capacity(messages.len());
        for (conversation, message) in messages {
            let (reply, answer) = oneshot::channel();
            let job = Job {
                conversation,
                message,
                reply,
            };
            answers.push(match self.jobs.send(job).await {
                Ok(()) => Some(answer),
                Err(_) => None,
            });
        }
        let mut results = Vec::with_capacity(answers.len());
        for answer in answers {
            results.push(match answer {
                Some(answer) => answer.await.unwrap_or_else(|_| Err(stopped())),
                None => Err(stopped()),
            });
        }
        results
    }
}

/// How many times the writer yields, at most, to let the senders it just answered send
/// again before it writes a batch smaller than the last.
const GATHER_ROUNDS: usize = 16;

async fn run(db: DatabaseConnection, mut rx: mpsc::Receiver<Job>, faults: Faults) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    let mut last = 0;
    while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        // The senders the last batch answered were just woken and are about to send
        // their next appends. Taking only the one or two already here would commit them
        // alone and make everyone else wait a whole commit: batches would alternate
        // large and tiny. Yield a few times (microseconds, no timer) to let the rest in.
        let mut rounds = 0;
        while jobs.len() < last && rounds < GATHER_ROUNDS {
            tokio::task::yield_now().await;
            while jobs.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            rounds += 1;
        }
        last = jobs.len();
        metrics::histogram!("im_sql_append_batch").record(jobs.len() as f64);
        let batch: Vec<Job> = std::mem::take(&mut jobs);
        // A bug that panics on one batch must not stop every later append: that batch's
        // transaction rolls back as it is dropped, its appends are answered `unavailable`
        // (their reply channels close), and the writer goes on.
        let write = async {
            assert!(!faults.panic_now(), "a panic injected by a test");
            write_or_split(&db, batch, &faults).await;
        };
        if AssertUnwindSafe(write).catch_unwind().await.is_err() {
            metrics::counter!("im_sql_append_panics_total").increment(1);
            tracing::error!("the append writer panicked on a batch; its appends failed");
        }
    }
}

async fn write_or_split(db: &DatabaseConnection, batch: Vec<Job>, faults: &Faults) {
    if batch.len() > 1 {
        // Where the insert can say which keys were taken, skip the lookup (see above).
        let mut lookup = !db.get_database_backend().support_returning();
        loop {
            match write_batch(db, &batch, lookup, faults).await {
                Ok(results) => {
                    for (job, result) in batch.into_iter().zip(results) {
                        let _ = job.reply.send(Ok(result));
                    }
                    return;
                }
                // Some keys were stored before: write the batch again, looking them up.
                Err(BatchError::KeysTaken) if !lookup => {
                    metrics::counter!("im_sql_batch_lookups_total").increment(1);
                    lookup = true;
                    continue;
                }
                // A key raced by another node, or a row the database refused: the batch
                // was rolled back; replay it one append at a time so only the culprit
                // fails.
                Err(BatchError::KeysTaken | BatchError::Append(AppendError::Raced)) => {
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
                // The database is unreachable: replaying one by one would only wait out
                // one timeout per append. Every append of the batch fails, and none was
                // stored.
                Err(BatchError::Append(AppendError::Storage(e))) => {
                    for job in batch {
                        let _ = job
                            .reply
                            .send(Err(StorageError::Unavailable(e.to_string())));
                    }
                    return;
                }
                // The commit itself failed: it may or may not have reached the disk, so
                // no replay (it could store twice). The senders retry with the same client
                // ids, which finds the messages if they were stored.
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
            break;
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
    Stored(Box<Message>),
    /// New in this batch, at this seq.
    New(Seq),
    /// The same key as an earlier job of this batch.
    SameAs(usize),
}

/// Why a batch failed: before the commit (rolled back, safe to write again), or at it
/// (the outcome is unknown).
enum BatchError {
    Append(AppendError),
    /// The insert skipped rows whose idempotency key was already stored.
    KeysTaken,
    Commit(StorageError),
}

impl<E: Into<AppendError>> From<E> for BatchError {
    fn from(e: E) -> Self {
        BatchError::Append(e.into())
    }
}

async fn write_batch(
    db: &DatabaseConnection,
    batch: &[Job],
    lookup: bool,
    faults: &Faults,
) -> Result<Vec<Appended>, BatchError> {
    let txn = super::begin(db).await?;
    let backend = txn.get_database_backend();
    let keys: Vec<String> = batch
        .iter()
        .map(|j| conversation_key(j.conversation))
        .collect();

    // Retries: keys already stored (when looked up), and keys repeated within the batch.
    let idem: Vec<Option<String>> = batch
        .iter()
        .zip(&keys)
        .map(|(j, k)| idem_key(k, &j.message))
        .collect();
    let stored = if lookup {
        let wanted: Vec<String> = idem.iter().flatten().cloned().collect();
        find_keys(&txn, &wanted).await?
    } else {
        HashMap::new()
    };
    let mut first_of: HashMap<&str, usize> = HashMap::new();
    let mut sources = Vec::with_capacity(batch.len());
    let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
    for (n, (key, id)) in keys.iter().zip(&idem).enumerate() {
        if let Some(id) = id {
            if let Some(found) = stored.get(id) {
                sources.push(Source::Stored(Box::new(found.clone())));
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

    // 1. Counters: each conversation's advanced by its count; its first new seq follows.
    let mut next = advance_counters(&txn, backend, &counts).await?;
    for (source, key) in sources.iter_mut().zip(&keys) {
        if let Source::New(seq) = source {
            let slot = next.get_mut(key.as_str()).ok_or(StorageError::Backend(
                "conversation counter vanished".into(),
            ))?;
            *seq = Seq(u(*slot));
            *slot += 1;
        }
    }

    // 2. The messages, and their ids.
    let mut rows = Vec::new();
    let mut cursors: BTreeMap<(&str, UserId), i64> = BTreeMap::new();
    let mut mentions: BTreeMap<(&str, UserId), i64> = BTreeMap::new();
    let mut opened: Vec<(UserId, &str)> = Vec::new();
    for (((job, key), source), id) in batch.iter().zip(&keys).zip(&sources).zip(&idem) {
        let Source::New(seq) = source else { continue };
        let m = &job.message;
        rows.push(NewRow {
            conversation: key,
            seq: i(seq.0),
            message: m,
            idem_key: id.as_deref(),
            body: body_json(&m.body)?,
            search_text: stored_text(backend, &m.body),
            attachment: attachment_key(&m.body),
        });
        let cursor = cursors.entry((key.as_str(), m.sender)).or_default();
        *cursor = Ord::max(*cursor, i(seq.0));
        for &user in &m.mentions {
            let mark = mentions.entry((key.as_str(), user)).or_default();
            *mark = Ord::max(*mark, i(seq.0));
        }
        if let ConversationId::Direct(a, b) = job.conversation
            && *seq == Seq(1)
        {
            opened.push((a, key.as_str()));
            opened.push((b, key.as_str()));
        }
    }
    let ids = insert_messages(&txn, backend, rows, lookup).await?;

    // 3. The senders' cursors, and the direct conversations that just began.
    raise_many(&txn, backend, &cursors).await?;
    raise_mentions(&txn, backend, &mentions).await?;
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
                message: *message,
                duplicate: true,
            },
            Source::SameAs(earlier) => Appended {
                message: results[earlier].message.clone(),
                duplicate: true,
            },
            Source::New(seq) => {
                let id = ids
                    .get(&(key.as_str(), i(seq.0)))
                    .copied()
                    .ok_or(StorageError::Backend("inserted message not found".into()))?;
                Appended {
                    message: job
                        .message
                        .clone()
                        .stored(MessageId(u(id)), job.conversation, seq),
                    duplicate: false,
                }
            }
        };
        results.push(appended);
    }
    if faults.fail_commit_now() {
        // As a commit that failed before reaching the disk: nothing stored.
        drop(txn);
        return Err(BatchError::Commit(StorageError::Unavailable(
            "a commit failure injected by a test".into(),
        )));
    }
    // Nothing after this may fail: a committed batch must be reported as stored.
    txn.commit()
        .await
        .map_err(|e| BatchError::Commit(super::db_error(e)))?;
    Ok(results)
}

/// A message of the batch, ready to insert.
struct NewRow<'a> {
    conversation: &'a str,
    seq: i64,
    message: &'a NewMessage,
    idem_key: Option<&'a str>,
    body: String,
    search_text: Option<String>,
    attachment: Option<String>,
}

/// What a database proposes in an upsert's update clause: the row's own value of `col`.
fn proposed(backend: DbBackend, col: &'static str) -> Expr {
    match backend {
        DbBackend::MySql => Expr::cust(format!("VALUES(`{col}`)")),
        _ => Expr::col((Alias::new("excluded"), Alias::new(col))),
    }
}

/// Advances each conversation's counter by its count in one upsert, and returns each
/// one's first new seq.
async fn advance_counters<'k>(
    txn: &impl ConnectionTrait,
    backend: DbBackend,
    counts: &BTreeMap<&'k str, i64>,
) -> Result<HashMap<&'k str, i64>, BatchError> {
    use conversation::Column::{Id, LastSeq};
    let mut next = HashMap::with_capacity(counts.len());
    if counts.is_empty() {
        return Ok(next);
    }
    let mut lasts: Vec<(String, i64)> = Vec::with_capacity(counts.len());
    // Sorted by key (a `BTreeMap`), so two batches lock shared counters in one order.
    let all: Vec<(&&str, &i64)> = counts.iter().collect();
    let mut from = 0;
    for run in runs(backend, all.len(), RUN) {
        let chunk = &all[from..from + run];
        from += run;
        let mut upsert = Query::insert();
        upsert
            .into_table(conversation::Entity)
            .columns([Id, LastSeq]);
        for (key, count) in chunk {
            upsert
                .values([Expr::val(**key), Expr::val(**count)])
                .map_err(|e| StorageError::Backend(e.to_string()))?;
        }
        upsert.on_conflict(
            OnConflict::column(Id)
                .value(
                    LastSeq,
                    Expr::col((conversation::Entity, LastSeq)).add(proposed(backend, "last_seq")),
                )
                .to_owned(),
        );
        if backend.support_returning() {
            upsert.returning(Query::returning().columns([Id, LastSeq]));
            for row in txn.query_all_raw(backend.build(&upsert)).await? {
                lasts.push((row.try_get("", "id")?, row.try_get("", "last_seq")?));
            }
        } else {
            txn.execute_raw(backend.build(&upsert)).await?;
            let mut wanted: Vec<String> = chunk.iter().map(|(k, _)| (**k).to_owned()).collect();
            pad_in_list(&mut wanted);
            let read: Vec<(String, i64)> = conversation::Entity::find()
                .select_only()
                .column(Id)
                .column(LastSeq)
                .filter(Id.is_in(wanted))
                .into_tuple()
                .all(txn)
                .await?;
            lasts.extend(read);
        }
    }
    for (key, last) in lasts {
        if let Some((&key, count)) = counts.get_key_value(key.as_str()) {
            next.insert(key, last - count + 1);
        }
    }
    Ok(next)
}

/// Inserts the batch's messages and returns their ids by (conversation, seq). Where the
/// database can, a row whose idempotency key is taken is skipped and the batch answers
/// [`BatchError::KeysTaken`] (or `Raced` if the keys were looked up first: another node
/// stored one since).
async fn insert_messages<'a>(
    txn: &impl ConnectionTrait,
    backend: DbBackend,
    rows: Vec<NewRow<'a>>,
    looked_up: bool,
) -> Result<HashMap<(&'a str, i64), i64>, BatchError> {
    use message::Column as C;
    let mut ids = HashMap::with_capacity(rows.len());
    let sizes = runs(backend, rows.len(), RUN);
    let mut rows = rows.into_iter();
    for size in sizes {
        let chunk: Vec<NewRow<'a>> = rows.by_ref().take(size).collect();
        let mut insert = Query::insert();
        insert.into_table(message::Entity).columns([
            C::Conversation,
            C::Seq,
            C::SenderId,
            C::SenderDevice,
            C::ClientId,
            C::IdemKey,
            C::Body,
            C::SentAt,
            C::ReplyTo,
            C::ForwardedSender,
            C::ForwardedAt,
            C::SearchText,
            C::Mentions,
            C::Attachment,
        ]);
        let size = chunk.len();
        let order: Vec<(&'a str, i64)> = chunk.iter().map(|r| (r.conversation, r.seq)).collect();
        for row in chunk {
            let m = row.message;
            let client_id = (!m.client_id.is_empty()).then_some(m.client_id.as_str());
            insert
                .values([
                    Expr::val(row.conversation),
                    Expr::val(row.seq),
                    Expr::val(i(m.sender.0)),
                    Expr::val(m.sender_device.as_str()),
                    Expr::val(client_id),
                    Expr::val(row.idem_key),
                    Expr::val(row.body),
                    Expr::val(m.sent_at.0),
                    Expr::val(m.reply_to.map(|seq| i(seq.0))),
                    Expr::val(m.forwarded.map(|f| i(f.sender.0))),
                    Expr::val(m.forwarded.map(|f| f.sent_at.0)),
                    Expr::val(row.search_text),
                    Expr::val(mentions_json(&m.mentions)),
                    Expr::val(row.attachment),
                ])
                .map_err(|e| StorageError::Backend(e.to_string()))?;
        }
        let taken = || {
            if looked_up {
                BatchError::Append(AppendError::Raced)
            } else {
                BatchError::KeysTaken
            }
        };
        let skip_taken = OnConflict::column(C::IdemKey).do_nothing().to_owned();
        match backend {
            // The transaction holds SQLite's one write lock, and one statement inserts its
            // rows in order, each with the rowid after the last: the ids are the `size`
            // numbers that end at the last one. (`RETURNING` would hand every row across
            // to this thread on its own: 6.7 ms for 512 rows with it, 4.2 ms without.)
            DbBackend::Sqlite => {
                insert.on_conflict(skip_taken);
                let done = txn.execute_raw(backend.build(&insert)).await?;
                if done.rows_affected() < size as u64 {
                    return Err(taken());
                }
                let first = i64::try_from(done.last_insert_id())
                    .map_err(|_| StorageError::Backend("rowid out of range".into()))?
                    - size as i64
                    + 1;
                for (n, key) in order.into_iter().enumerate() {
                    ids.insert(key, first + n as i64);
                }
            }
            DbBackend::Postgres => {
                insert
                    .on_conflict(skip_taken)
                    .returning(Query::returning().columns([C::Id, C::Conversation, C::Seq]));
                let returned = txn.query_all_raw(backend.build(&insert)).await?;
                if returned.len() < size {
                    return Err(taken());
                }
                let wanted: HashMap<&str, &'a str> = order.iter().map(|(c, _)| (*c, *c)).collect();
                for row in returned {
                    let conversation: String = row.try_get("", "conversation")?;
                    let key = *wanted
                        .get(conversation.as_str())
                        .ok_or(StorageError::Backend(
                            "insert returned a stranger row".into(),
                        ))?;
                    ids.insert((key, row.try_get("", "seq")?), row.try_get("", "id")?);
                }
            }
            // MySQL: no `RETURNING`, and no `DO NOTHING` for one index. The keys were looked
            // up; a raced one fails the insert. The ids are read back by (conversation, seq).
            _ => {
                txn.execute_raw(backend.build(&insert)).await?;
                let mut bounds: BTreeMap<&'a str, (i64, i64)> = BTreeMap::new();
                for &(conversation, seq) in &order {
                    let b = bounds.entry(conversation).or_insert((seq, seq));
                    b.0 = Ord::min(b.0, seq);
                    b.1 = Ord::max(b.1, seq);
                }
                let wanted: HashMap<&str, &'a str> = order.iter().map(|(c, _)| (*c, *c)).collect();
                let mut bounds: Vec<(&str, (i64, i64))> = bounds.into_iter().collect();
                pad_in_list(&mut bounds);
                let mut range = Condition::any();
                for (key, (lo, hi)) in bounds {
                    range = range.add(
                        message::Column::Conversation
                            .eq(key)
                            .and(message::Column::Seq.between(lo, hi)),
                    );
                }
                let found: Vec<(i64, String, i64)> = message::Entity::find()
                    .select_only()
                    .column(C::Id)
                    .column(C::Conversation)
                    .column(C::Seq)
                    .filter(range)
                    .into_tuple()
                    .all(txn)
                    .await?;
                for (id, conversation, seq) in found {
                    if let Some(&key) = wanted.get(conversation.as_str()) {
                        ids.insert((key, seq), id);
                    }
                }
            }
        }
    }
    Ok(ids)
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
    let proposed = |col: &'static str| proposed(backend, col);
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
    let rows = cursors
        .iter()
        .map(|((key, user), seq)| cursor::ActiveModel {
            conversation: Set((*key).to_owned()),
            user_id: Set(i(user.0)),
            delivered_seq: Set(*seq),
            read_seq: Set(*seq),
            mention_seq: NotSet,
        });
    let mut rows = rows.into_iter();
    for run in runs(backend, cursors.len(), RUN) {
        cursor::Entity::insert_many(rows.by_ref().take(run))
            .on_conflict(on_conflict.clone())
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

/// Raises the mention marks of (conversation, user) pairs, each to its own seq, in
/// multi-row upserts: `mention_seq = max(mention_seq, new)`. A user without a cursor row
/// gets one, with both cursors at 0.
pub(crate) async fn raise_mentions(
    db: &impl ConnectionTrait,
    backend: DbBackend,
    marks: &BTreeMap<(&str, UserId), i64>,
) -> Result<(), DbErr> {
    if marks.is_empty() {
        return Ok(());
    }
    let current = Expr::col((cursor::Entity, cursor::Column::MentionSeq));
    let new = proposed(backend, "mention_seq");
    let mut on_conflict =
        OnConflict::columns([cursor::Column::Conversation, cursor::Column::UserId]);
    on_conflict.value(
        cursor::Column::MentionSeq,
        Expr::case(current.clone().lt(new.clone()), new).finally(current),
    );
    let mut rows = marks.iter().map(|((key, user), seq)| cursor::ActiveModel {
        conversation: Set((*key).to_owned()),
        user_id: Set(i(user.0)),
        delivered_seq: Set(0),
        read_seq: Set(0),
        mention_seq: Set(*seq),
    });
    for run in runs(backend, marks.len(), RUN) {
        cursor::Entity::insert_many(rows.by_ref().take(run))
            .on_conflict(on_conflict.clone())
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use im_core::model::{Body, DeviceId, Timestamp};
    use im_core::storage::MessageStore;

    use super::*;
    use crate::SqlStorage;

    fn text(client_id: &str) -> NewMessage {
        NewMessage {
            sender: UserId(1),
            sender_device: DeviceId::new("phone").unwrap(),
            client_id: client_id.to_owned(),
            body: Body::Text {
                text: client_id.to_owned(),
            },
            sent_at: Timestamp::now(),
            reply_to: None,
            forwarded: None,
            mentions: Vec::new(),
        }
    }

    fn chat() -> ConversationId {
        ConversationId::direct(UserId(1), UserId(2))
    }

    /// A batch that panics fails its own appends as `unavailable` (nothing of it
    /// stored), and the writer goes on with the next ones.
    #[tokio::test]
    async fn a_panicking_batch_fails_its_appends_and_the_writer_goes_on() {
        let storage = SqlStorage::connect("sqlite::memory:").await.unwrap();
        storage
            .appender
            .faults
            .0
            .panic_next_batch
            .store(true, Ordering::SeqCst);
        match storage.append(chat(), text("lost")).await {
            Err(StorageError::Unavailable(why)) => assert!(why.contains("retry"), "{why}"),
            other => panic!("an append in a panicking batch gave {other:?}"),
        }
        let next = storage.append(chat(), text("next")).await.unwrap();
        assert_eq!(
            next.message.seq,
            Seq(1),
            "the panicked batch stored nothing"
        );
        // The retry of the lost one is stored now, once.
        let retry = storage.append(chat(), text("lost")).await.unwrap();
        assert_eq!((retry.message.seq, retry.duplicate), (Seq(2), false));
    }

    /// A batch whose commit fails answers every append `unavailable` (the outcome is
    /// unknown, so it is not replayed), and their retries with the same client ids are
    /// stored once.
    #[tokio::test]
    async fn a_failed_commit_fails_the_batch_and_retries_store_once() {
        let storage = SqlStorage::connect("sqlite::memory:").await.unwrap();
        storage
            .appender
            .faults
            .0
            .fail_next_commit
            .store(true, Ordering::SeqCst);
        let batch = || (0..3).map(|n| (chat(), text(&format!("m{n}")))).collect();
        // Queued together, so they share one batch and its one commit.
        let answers = storage.append_many(batch()).await;
        for answer in &answers {
            match answer {
                Err(StorageError::Unavailable(why)) => {
                    assert!(why.contains("same client id"), "{why}")
                }
                other => panic!("an append of a batch whose commit failed gave {other:?}"),
            }
        }
        let retried = storage.append_many(batch()).await;
        let seqs: Vec<(Seq, bool)> = retried
            .into_iter()
            .map(|r| r.map(|a| (a.message.seq, a.duplicate)).unwrap())
            .collect();
        assert_eq!(
            seqs,
            vec![(Seq(1), false), (Seq(2), false), (Seq(3), false)]
        );
        let again = storage.append_many(batch()).await;
        assert!(again.into_iter().all(|r| r.unwrap().duplicate));
    }
}
