//! Full-text search: `im_messages.search_text` holds the words a message is found by
//! (`search::stored_text`, `NULL` for messages without text), indexed by each
//! database's own full-text index:
//! - SQLite: an FTS5 table of each message's words and its conversation (as one word,
//!   `d:1:2` as `dx1x2`, so a search names the user's conversations in its query and
//!   the index never walks other people's matches), kept by triggers;
//! - PostgreSQL: a generated `tsvector` column of those words, with a GIN index;
//! - MySQL/MariaDB: a `FULLTEXT` index on the column.
//!
//! Messages stored before are indexed here, a thousand rows per statement batch.

use sea_orm::{DbBackend, FromQueryResult, Statement};
use sea_orm_migration::prelude::*;

use crate::sql::search::stored_text;

#[derive(DeriveMigrationName)]
pub(super) struct Migration;

/// The FTS5 table and the triggers that keep it in step with `im_messages`. It holds
/// no copy of the text (`content=''`), only the index, and rows are deleted by rowid
/// (`contentless_delete`). The tokenizer splits at spaces only in practice: the words
/// hold letters, digits and marks (see `im_core::storage::indexed_text`), already
/// lower-cased, and the conversation word letters and digits.
const SQLITE_UP: &[&str] = &[
    "CREATE VIRTUAL TABLE IF NOT EXISTS im_messages_fts USING fts5(conversation, words, \
     content='', contentless_delete=1, prefix='2 3 4', \
     tokenize=\"unicode61 remove_diacritics 0 categories 'L* N* Co M* So'\")",
    "CREATE TRIGGER IF NOT EXISTS im_messages_fts_insert AFTER INSERT ON im_messages \
     WHEN new.search_text IS NOT NULL BEGIN \
     INSERT INTO im_messages_fts(rowid, conversation, words) \
     VALUES (new.id, replace(new.conversation, ':', 'x'), new.search_text); END",
    "CREATE TRIGGER IF NOT EXISTS im_messages_fts_delete AFTER DELETE ON im_messages \
     WHEN old.search_text IS NOT NULL BEGIN \
     DELETE FROM im_messages_fts WHERE rowid = old.id; END",
    "CREATE TRIGGER IF NOT EXISTS im_messages_fts_update AFTER UPDATE OF search_text \
     ON im_messages BEGIN \
     DELETE FROM im_messages_fts WHERE rowid = old.id AND old.search_text IS NOT NULL; \
     INSERT INTO im_messages_fts(rowid, conversation, words) \
     SELECT new.id, replace(new.conversation, ':', 'x'), new.search_text \
     WHERE new.search_text IS NOT NULL; END",
];

const SQLITE_DOWN: &[&str] = &[
    "DROP TRIGGER IF EXISTS im_messages_fts_update",
    "DROP TRIGGER IF EXISTS im_messages_fts_delete",
    "DROP TRIGGER IF EXISTS im_messages_fts_insert",
    "DROP TABLE IF EXISTS im_messages_fts",
];

const POSTGRES_UP: &[&str] = &[
    // The words are cut already: the vector takes them as they are, without a parser.
    "ALTER TABLE im_messages ADD COLUMN search_tsv tsvector GENERATED ALWAYS AS \
     (array_to_tsvector(string_to_array(search_text, ' '))) STORED",
    "CREATE INDEX im_messages_search ON im_messages USING GIN (search_tsv)",
];

const POSTGRES_DOWN: &[&str] = &[
    "DROP INDEX IF EXISTS im_messages_search",
    "ALTER TABLE im_messages DROP COLUMN IF EXISTS search_tsv",
];

const MYSQL_UP: &[&str] =
    &["CREATE FULLTEXT INDEX im_messages_search ON im_messages (search_text)"];

const MYSQL_DOWN: &[&str] = &["DROP INDEX im_messages_search ON im_messages"];

/// Rows indexed per batch of the backfill.
const BATCH: i64 = 1000;

#[derive(FromQueryResult)]
struct Row {
    id: i64,
    body: String,
}

/// Fills `search_text` for the messages stored before this migration.
async fn backfill(m: &SchemaManager<'_>) -> Result<(), DbErr> {
    let db = m.get_connection();
    let backend = m.get_database_backend();
    let mut after = 0_i64;
    loop {
        let page = Row::find_by_statement(Statement::from_sql_and_values(
            backend,
            match backend {
                DbBackend::Postgres => {
                    "SELECT id, body FROM im_messages WHERE id > $1 ORDER BY id LIMIT $2"
                }
                _ => "SELECT id, body FROM im_messages WHERE id > ? ORDER BY id LIMIT ?",
            },
            [after.into(), BATCH.into()],
        ))
        .all(db)
        .await?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = last.id;
        for row in page {
            let Ok(body) = serde_json::from_str(&row.body) else {
                continue; // unreadable bodies are reported when read, not here
            };
            let Some(text) = stored_text(backend, &body) else {
                continue;
            };
            db.execute_raw(Statement::from_sql_and_values(
                backend,
                match backend {
                    DbBackend::Postgres => "UPDATE im_messages SET search_text = $1 WHERE id = $2",
                    _ => "UPDATE im_messages SET search_text = ? WHERE id = ?",
                },
                [text.into(), row.id.into()],
            ))
            .await?;
        }
    }
}

async fn run(m: &SchemaManager<'_>, statements: &[&str]) -> Result<(), DbErr> {
    for sql in statements {
        m.get_connection().execute_unprepared(sql).await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("im_messages")
                .add_column(ColumnDef::new("search_text").text().null())
                .to_owned(),
        )
        .await?;
        // Indexed before the backfill: the triggers (SQLite) and generated column
        // (PostgreSQL) index the rows as it fills them.
        match m.get_database_backend() {
            DbBackend::Sqlite => run(m, SQLITE_UP).await?,
            DbBackend::Postgres => run(m, POSTGRES_UP).await?,
            _ => {}
        }
        backfill(m).await?;
        // MySQL builds a FULLTEXT index in one pass over the filled column.
        if m.get_database_backend() == DbBackend::MySql {
            run(m, MYSQL_UP).await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        match m.get_database_backend() {
            DbBackend::Sqlite => run(m, SQLITE_DOWN).await?,
            DbBackend::Postgres => run(m, POSTGRES_DOWN).await?,
            DbBackend::MySql => run(m, MYSQL_DOWN).await?,
            _ => {}
        }
        m.alter_table(
            Table::alter()
                .table("im_messages")
                .drop_column("search_text")
                .to_owned(),
        )
        .await
    }
}
