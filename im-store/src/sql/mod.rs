//! [`SqlStorage`]: every part of [`im_core::storage::Storage`] on SQLite, PostgreSQL or
//! MySQL/MariaDB through SeaORM.
//!
//! One file per part of the trait (`users`, `devices`, `contacts`, `groups`, `messages`),
//! the entities under `entity/` (one per table) and the schema under `migration/`.
//!
//! How the guarantees are kept:
//! - Appends go through a group-commit writer (`appender`): concurrent appends share one
//!   transaction and one commit, written with a few statements per conversation in the
//!   batch, not per append.
//! - An append runs in one transaction: the idempotency lookup, the conversation's
//!   counter bumped by an upsert (`last_seq = last_seq + 1`, which locks that one row
//!   until commit, so concurrent appends to one conversation queue there and get
//!   consecutive seqs), the message row, and the sender's cursor. A failure rolls the
//!   counter back with everything else, so seqs stay gapless.
//! - `(conversation, seq)` and `(conversation, sender, device, client id)` are unique
//!   indexes: two appends can never share a seq, and a retry that raced its first attempt
//!   fails on the index, rolls back, and returns the first attempt's message.
//! - SQLite allows one writer at a time; its write pool holds one connection, so writes
//!   queue in the pool instead of failing with `SQLITE_BUSY`. It runs in WAL mode with
//!   `synchronous = FULL`: an acknowledged message survives a crash and a power cut.
//!   Reads that stand alone go to two read-only connections of their own, beside the
//!   writer, so they do not wait for its commits.

mod appender;
mod checkpointer;
mod contacts;
mod devices;
pub mod entity;
mod groups;
mod invites;
mod messages;
pub mod migration;
mod pins;
mod reactions;
mod search;
mod users;

use std::time::Duration;

use im_core::model::{ConversationId, Platform, Role};
use im_core::storage::{StorageError, StorageResult};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, IsolationLevel, RuntimeErr, SqliteTransactionMode, Statement, TransactionOptions,
    TransactionTrait,
};
use sea_orm_migration::MigratorTrait;

pub use migration::Migrator;

/// Storage in a SQL database.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use im_core::storage::{NewUser, UserStore};
/// use im_core::model::Timestamp;
/// use im_store::SqlStorage;
///
/// // SQLite in memory; "sqlite://chat.db?mode=rwc" for a file, "postgres://…", "mysql://…".
/// let storage = SqlStorage::connect("sqlite::memory:").await.unwrap();
/// let alice = storage
///     .create_user(NewUser {
///         username: "alice".into(),
///         display_name: "Alice".into(),
///         avatar: None,
///         password_hash: "$argon2id$…".into(),
///         created_at: Timestamp::now(),
///     })
///     .await
///     .unwrap();
/// assert_eq!(storage.user_by_name("alice").await.unwrap().id, alice.id);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct SqlStorage {
    /// Writes (and reads that must follow a write in one transaction).
    db: DatabaseConnection,
    /// Reads that stand alone. On a SQLite file, read-only connections of their own, so
    /// that reads run beside the one writer (WAL allows it) instead of queueing behind
    /// its commits; elsewhere the same pool as `db`.
    read: DatabaseConnection,
    appender: appender::Appender,
    /// Held by every clone; background tasks (the SQLite checkpointer) stop when it goes.
    _alive: std::sync::Arc<()>,
}

/// The most connections [`SqlStorage::connect`] opens to a PostgreSQL or MySQL server.
pub const DEFAULT_SQL_POOL: u32 = 32;

/// How long opening a connection may take, and waiting for one from the pool.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl SqlStorage {
    /// Connects to `url` and brings the schema up to date.
    pub async fn connect(url: &str) -> StorageResult<SqlStorage> {
        let storage = Self::connect_without_migrating(url).await?;
        storage.migrate().await?;
        Ok(storage)
    }

    /// Connects to `url` and brings the schema up to date, with at most `pool`
    /// connections to a PostgreSQL or MySQL server ([`DEFAULT_SQL_POOL`] with
    /// [`connect`](Self::connect); SQLite ignores it). Many processes on one server must
    /// keep their pools' sum under its connection limit (PostgreSQL's `max_connections`
    /// is 100 by default).
    pub async fn connect_with_pool(url: &str, pool: u32) -> StorageResult<SqlStorage> {
        let storage = Self::open(url, pool).await?;
        storage.migrate().await?;
        Ok(storage)
    }

    /// Connects to `url` without touching the schema (for apps that run [`Migrator`]
    /// themselves, before starting).
    pub async fn connect_without_migrating(url: &str) -> StorageResult<SqlStorage> {
        Self::open(url, DEFAULT_SQL_POOL).await
    }

    async fn open(url: &str, pool: u32) -> StorageResult<SqlStorage> {
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .sqlx_logging(false)
            .connect_timeout(CONNECT_TIMEOUT)
            .acquire_timeout(CONNECT_TIMEOUT);
        if url.starts_with("sqlite:") {
            sqlite_options(&mut options, url);
        } else {
            options.max_connections(pool.max(2)).min_connections(1);
            postgres_options(&mut options);
            #[cfg(any(feature = "postgres", feature = "mysql"))]
            first_contact(url).await?;
        }
        let db = Database::connect(options).await.map_err(db_error)?;
        let read = match sqlite_readers(url) {
            Some(options) => Database::connect(options).await.map_err(db_error)?,
            None => db.clone(),
        };
        let alive = std::sync::Arc::new(());
        if let Some(options) = sqlite_checkpointer(url) {
            let checkpoints = Database::connect(options).await.map_err(db_error)?;
            checkpointer::start(checkpoints, std::sync::Arc::downgrade(&alive));
        }
        let appender = appender::Appender::start(db.clone());
        Ok(SqlStorage {
            db,
            read,
            appender,
            _alive: alive,
        })
    }

    /// Applies the migrations that have not run yet. Processes starting at once on one
    /// PostgreSQL or MySQL database take turns: each holds an advisory lock (on a pool
    /// connection kept for it) while its migrator runs, so every migration runs once and
    /// the later ones find the schema up to date.
    pub async fn migrate(&self) -> StorageResult<()> {
        let backend = self.db.get_database_backend();
        let (lock, unlock) = match backend {
            DbBackend::Postgres => (
                "SELECT pg_advisory_lock(8245107739)",
                "SELECT pg_advisory_unlock(8245107739)",
            ),
            DbBackend::MySql => (
                "SELECT GET_LOCK('im_store_migrations', 600)",
                "SELECT RELEASE_LOCK('im_store_migrations')",
            ),
            _ => return Migrator::up(&self.db, None).await.map_err(db_error),
        };
        // A transaction keeps one connection of the pool: the lock's session, which
        // releases it if this process dies.
        let holder = self.db.begin().await.map_err(db_error)?;
        let taken = holder
            .query_one_raw(Statement::from_string(backend, lock))
            .await
            .map_err(db_error)?;
        if backend == DbBackend::MySql {
            let granted = taken
                .map(|row| row.try_get_by_index::<Option<i64>>(0))
                .transpose()
                .map_err(db_error)?
                .flatten();
            if granted != Some(1) {
                return Err(StorageError::Unavailable(
                    "another process held the migration lock for 10 minutes".into(),
                ));
            }
        }
        let migrated = Migrator::up(&self.db, None).await.map_err(db_error);
        let released = holder
            .query_one_raw(Statement::from_string(backend, unlock))
            .await;
        let _ = holder.rollback().await;
        migrated?;
        released.map_err(db_error)?;
        Ok(())
    }

    /// Whether the database answers (a round trip on the pool), for health checks.
    pub async fn ping(&self) -> StorageResult<()> {
        self.db.ping().await.map_err(db_error)
    }

    /// The connection pool, for an app that keeps its own tables in the same database.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }
}

/// One connection (SQLite has one writer; an in-memory database lives as long as its
/// connection), kept open for good; WAL with full sync for durable, fast commits.
#[cfg(feature = "sqlite")]
fn sqlite_options(options: &mut ConnectOptions, _url: &str) {
    use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
    options
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        // In-process: the one connection cannot go stale, and a ping per transaction is a
        // round trip to sqlx's worker thread.
        .test_before_acquire(false)
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(false)
                // Checkpoints run on a connection of their own (`checkpointer`), off the
                // commit path; the writer's own, inside a commit, only past 100,000 pages
                // (400 MB), should that one fall behind.
                .pragma("wal_autocheckpoint", "100000")
                // Statement journals (a multi-row insert that may stop half-way inside a
                // batch's transaction keeps one) in memory, not in a temporary file.
                .pragma("temp_store", "memory")
                // 64 MiB of page cache (SQLite's default is 2 MiB): a batch spread over
                // many conversations touches many index pages, and each one evicted is
                // read back from the OS on the next batch.
                .pragma("cache_size", "-65536")
        });
}

#[cfg(not(feature = "sqlite"))]
fn sqlite_options(_options: &mut ConnectOptions, _url: &str) {}

/// Read-only connections beside the writer, for a SQLite file. Two: this is what runs
/// reads in parallel with a commit on a small machine; more only queue on the same cores.
#[cfg(feature = "sqlite")]
fn sqlite_readers(url: &str) -> Option<ConnectOptions> {
    sqlite_side_pool(url, 2, |o| o.read_only(true).foreign_keys(false))
}

#[cfg(not(feature = "sqlite"))]
fn sqlite_readers(_url: &str) -> Option<ConnectOptions> {
    None
}

/// The connection that runs WAL checkpoints for a SQLite file (see `checkpointer`).
#[cfg(feature = "sqlite")]
fn sqlite_checkpointer(url: &str) -> Option<ConnectOptions> {
    sqlite_side_pool(url, 1, |o| o.pragma("wal_autocheckpoint", "0"))
}

/// A pool of `max` connections to a SQLite file beside the writer's, opened when first
/// used, tuned by `tune`. `None` for an in-memory database, which is private to its one
/// connection.
#[cfg(feature = "sqlite")]
fn sqlite_side_pool(
    url: &str,
    max: u32,
    tune: impl Fn(
        sea_orm::sqlx::sqlite::SqliteConnectOptions,
    ) -> sea_orm::sqlx::sqlite::SqliteConnectOptions
    + Send
    + Sync
    + 'static,
) -> Option<ConnectOptions> {
    if !url.starts_with("sqlite:") || url.contains(":memory:") || url.contains("mode=memory") {
        return None;
    }
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .sqlx_logging(false)
        .max_connections(max)
        .min_connections(0)
        .idle_timeout(None)
        .max_lifetime(None)
        .test_before_acquire(false)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(10))
        .map_sqlx_sqlite_opts(move |o| {
            tune(
                o.create_if_missing(false)
                    .busy_timeout(Duration::from_secs(10)),
            )
        });
    Some(options)
}

#[cfg(not(feature = "sqlite"))]
fn sqlite_checkpointer(_url: &str) -> Option<ConnectOptions> {
    None
}

/// Opens one connection to a PostgreSQL or MySQL server and closes it, to learn at once
/// why the server cannot be used. A pool retries a refused connection until its acquire
/// timeout and then says only "pool timed out"; this says "Connection refused" (or a
/// wrong password, or an unknown database) in milliseconds.
#[cfg(any(feature = "postgres", feature = "mysql"))]
async fn first_contact(url: &str) -> StorageResult<()> {
    use sea_orm::sqlx::Connection as _;
    let unavailable = |e: sea_orm::sqlx::Error| StorageError::Unavailable(e.to_string());
    let attempt = async {
        #[cfg(feature = "postgres")]
        if url.starts_with("postgres") {
            let connection = sea_orm::sqlx::PgConnection::connect(url)
                .await
                .map_err(unavailable)?;
            let _ = connection.close().await;
            return Ok(());
        }
        #[cfg(feature = "mysql")]
        if url.starts_with("mysql") {
            let connection = sea_orm::sqlx::MySqlConnection::connect(url)
                .await
                .map_err(unavailable)?;
            let _ = connection.close().await;
            return Ok(());
        }
        Ok(())
    };
    tokio::time::timeout(CONNECT_TIMEOUT, attempt)
        .await
        .map_err(|_| {
            StorageError::Unavailable(format!(
                "no answer from the database server within {CONNECT_TIMEOUT:?}"
            ))
        })?
}

/// Plans every statement for its parameters. Prepared statements are cached per
/// connection, and PostgreSQL may switch a cached statement to a generic plan chosen while
/// the tables were empty (a sequential scan), which stays as they grow: measured here, the
/// batch's key lookup went from 0.04 ms to 40 ms over 20,000 appends.
#[cfg(feature = "postgres")]
fn postgres_options(options: &mut ConnectOptions) {
    options.map_sqlx_postgres_opts(|o| o.options([("plan_cache_mode", "force_custom_plan")]));
}

#[cfg(not(feature = "postgres"))]
fn postgres_options(_options: &mut ConnectOptions) {}

/// Maps a database error to the storage's: lost connections and timeouts are temporary
/// (`Unavailable`), unique violations are `Conflict`, the rest is `Backend`.
pub(crate) fn db_error(e: DbErr) -> StorageError {
    if let Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) = e.sql_err() {
        return StorageError::Conflict("already exists");
    }
    let temporary = match &e {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(inner)) | DbErr::Query(RuntimeErr::SqlxError(inner)) => {
            match &**inner {
                sea_orm::sqlx::Error::Io(_)
                | sea_orm::sqlx::Error::Tls(_)
                | sea_orm::sqlx::Error::PoolTimedOut
                | sea_orm::sqlx::Error::PoolClosed => true,
                sea_orm::sqlx::Error::Database(db) => temporary_database_error(&**db),
                _ => false,
            }
        }
        _ => false,
    };
    if temporary {
        StorageError::Unavailable(e.to_string())
    } else {
        StorageError::Backend(e.to_string())
    }
}

/// Database errors a retry may get past: deadlocks and serialization failures, lock and
/// busy timeouts, a server shutting down, restarting, out of connections or read-only
/// after a failover.
fn temporary_database_error(db: &dyn sea_orm::sqlx::error::DatabaseError) -> bool {
    #[cfg(feature = "mysql")]
    if let Some(my) = db.try_downcast_ref::<sea_orm::sqlx::mysql::MySqlDatabaseError>() {
        // Deadlock, lock wait timeout, too many connections, shutdown in progress,
        // read-only, killed connection, idle disconnect, error during commit.
        return matches!(
            my.number(),
            1213 | 1205 | 1040 | 1053 | 1290 | 1792 | 1927 | 4031 | 1180
        );
    }
    let Some(code) = db.code() else {
        return false;
    };
    let code: &str = &code;
    // PostgreSQL SQLSTATEs: serialization failure, deadlock, lock not available, query
    // cancelled, admin/crash shutdown, cannot connect now, read-only transaction,
    // connection exceptions (08…), insufficient resources (53…).
    // SQLite result codes: BUSY, LOCKED and their extended forms.
    matches!(
        code,
        "40001" | "40P01" | "55P03" | "57014" | "57P01" | "57P02" | "57P03" | "25006"
    ) || code.starts_with("08")
        || code.starts_with("53")
        || matches!(code, "5" | "6" | "261" | "262" | "517" | "773")
}

/// Whether an error is a unique-key violation.
pub(crate) fn is_unique_violation(e: &DbErr) -> bool {
    matches!(
        e.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

/// Splits `len` rows into runs for multi-row statements. On MySQL every run is a power of
/// two (at most `max`, itself one): a batch statement's text depends on its row count,
/// and sqlx keeps 100 prepared statements per connection, so arbitrary counts evict
/// statements all the time, and closing one on MySQL (a command without an answer)
/// stalls the next for the 40 ms of a delayed ACK. Measured: 536 appends/s across 32
/// conversations before, with every statement of some batches taking 43 ms. Elsewhere a
/// single run up to `max`.
pub(crate) fn runs(backend: DbBackend, len: usize, max: usize) -> Vec<usize> {
    let mut runs = Vec::new();
    let mut left = len;
    while left > 0 {
        let run = if backend == DbBackend::MySql {
            Ord::min(max, 1 << left.ilog2())
        } else {
            Ord::min(max, left)
        };
        runs.push(run);
        left -= run;
    }
    runs
}

/// Pads an `IN (…)` list to a power of two by repeating its last value (which changes
/// nothing it matches), so its text takes one of a few forms (see [`runs`]).
pub(crate) fn pad_in_list<T: Clone>(values: &mut Vec<T>) {
    if let Some(last) = values.last().cloned() {
        values.resize(values.len().next_power_of_two(), last);
    }
}

/// Starts a write transaction. On MySQL at `READ COMMITTED`: InnoDB's default,
/// `REPEATABLE READ`, reads from a snapshot taken at the transaction's first read, before
/// it waits for a lock (a conversation counter), so it misses what the transaction it
/// waited for committed: of two changes adding one member, the second saw no member and
/// failed on the unique key (`concurrent_adds_of_one_member_all_succeed`). It also takes
/// gap locks that make concurrent inserts deadlock. PostgreSQL (`READ COMMITTED`
/// already) keeps its default.
///
/// On SQLite every transaction here writes, so it begins `IMMEDIATE`: it takes the write
/// lock at `BEGIN`, waiting up to the busy timeout for another process's writer. A
/// deferred one reads first and must then become a writer, which SQLite refuses at once
/// ("database is locked", no waiting) when another process wrote meanwhile: two
/// processes on one file then failed each other's appends
/// (`two_processes_on_one_sqlite_file_both_write`).
pub(crate) async fn begin(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    match db.get_database_backend() {
        DbBackend::MySql => {
            db.begin_with_config(Some(IsolationLevel::ReadCommitted), None)
                .await
        }
        DbBackend::Sqlite => {
            db.begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            })
            .await
        }
        _ => db.begin().await,
    }
}

pub(crate) fn conversation_key(c: ConversationId) -> String {
    c.to_string()
}

pub(crate) fn parse_conversation(s: &str) -> StorageResult<ConversationId> {
    s.parse()
        .map_err(|_| StorageError::Backend(format!("bad conversation id in the database: {s}")))
}

pub(crate) fn role_str(role: Role) -> &'static str {
    match role {
        Role::Member => "member",
        Role::Admin => "admin",
        Role::Owner => "owner",
    }
}

pub(crate) fn parse_role(s: &str) -> StorageResult<Role> {
    match s {
        "member" => Ok(Role::Member),
        "admin" => Ok(Role::Admin),
        "owner" => Ok(Role::Owner),
        other => Err(StorageError::Backend(format!(
            "bad role in the database: {other}"
        ))),
    }
}

pub(crate) fn platform_str(p: Platform) -> &'static str {
    match p {
        Platform::Mobile => "mobile",
        Platform::Desktop => "desktop",
        Platform::Web => "web",
        _ => "other",
    }
}

pub(crate) fn parse_platform(s: &str) -> Platform {
    match s {
        "mobile" => Platform::Mobile,
        "desktop" => Platform::Desktop,
        "web" => Platform::Web,
        _ => Platform::Other,
    }
}

/// Ids and seqs are `u64` in the model and `BIGINT` (signed) in every database.
/// Lowercase hex, two characters a byte (token hashes, idempotency keys, attachment keys).
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

pub(crate) fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mysql_runs_are_powers_of_two_and_cover_every_row() {
        for len in 0..1100 {
            let mysql = runs(DbBackend::MySql, len, 512);
            assert_eq!(mysql.iter().sum::<usize>(), len);
            assert!(mysql.iter().all(|r| r.is_power_of_two() && *r <= 512));
            assert!(mysql.len() <= 3 + len / 512 + 9, "{len}: {mysql:?}");
            let other = runs(DbBackend::Postgres, len, 512);
            assert_eq!(other.iter().sum::<usize>(), len);
            assert_eq!(other.len(), len.div_ceil(512));
        }
    }

    #[test]
    fn padded_in_lists_repeat_their_last_value() {
        let mut v = vec![1, 2, 3, 4, 5];
        pad_in_list(&mut v);
        assert_eq!(v, [1, 2, 3, 4, 5, 5, 5, 5]);
        let mut empty: Vec<i32> = Vec::new();
        pad_in_list(&mut empty);
        assert!(empty.is_empty());
    }
}
