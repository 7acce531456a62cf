//! Attachments: `im_messages.attachment`, for an image or a file, the SHA-256 (hex) of
//! the url it names (`messages::attachment_key`), `NULL` for other bodies and recalled
//! messages; indexed with `(conversation, seq)`, so that a server finds the messages
//! naming an upload in one probe (who may fetch it, whether it may be removed).
//!
//! Messages stored before are filled in here, a thousand rows per batch.

use sea_orm::{DbBackend, FromQueryResult, Statement};
use sea_orm_migration::prelude::*;

use crate::sql::messages::attachment_key;

#[derive(DeriveMigrationName)]
pub(super) struct Migration;

/// Rows read per batch of the backfill.
const BATCH: i64 = 1000;

#[derive(FromQueryResult)]
struct Row {
    id: i64,
    body: String,
}

/// Fills `attachment` for the messages stored before this migration. Only bodies that
/// hold a url are read back (the others cannot name an attachment).
async fn backfill(m: &SchemaManager<'_>) -> Result<(), DbErr> {
    let db = m.get_connection();
    let backend = m.get_database_backend();
    let mut after = 0_i64;
    loop {
        let page = Row::find_by_statement(Statement::from_sql_and_values(
            backend,
            match backend {
                DbBackend::Postgres => {
                    "SELECT id, body FROM im_messages WHERE id > $1 \
                     AND body LIKE '%\"url\"%' ORDER BY id LIMIT $2"
                }
                _ => {
                    "SELECT id, body FROM im_messages WHERE id > ? \
                     AND body LIKE '%\"url\"%' ORDER BY id LIMIT ?"
                }
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
            let Some(key) = attachment_key(&body) else {
                continue;
            };
            db.execute_raw(Statement::from_sql_and_values(
                backend,
                match backend {
                    DbBackend::Postgres => "UPDATE im_messages SET attachment = $1 WHERE id = $2",
                    _ => "UPDATE im_messages SET attachment = ? WHERE id = ?",
                },
                [key.into(), row.id.into()],
            ))
            .await?;
        }
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("im_messages")
                .add_column(ColumnDef::new("attachment").string_len(64).null())
                .to_owned(),
        )
        .await?;
        backfill(m).await?;
        // Built once, over the filled column.
        m.create_index(
            Index::create()
                .name("im_messages_attachment")
                .table("im_messages")
                .col("attachment")
                .col("conversation")
                .col("seq")
                .if_not_exists()
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name("im_messages_attachment")
                .table("im_messages")
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table("im_messages")
                .drop_column("attachment")
                .to_owned(),
        )
        .await
    }
}
