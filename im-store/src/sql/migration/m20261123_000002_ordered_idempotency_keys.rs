//! Idempotency keys start with the client id's first characters (see
//! `messages::idem_key`), so inserts into their unique index land near each other. The
//! column widens from 64 to 80 characters, and keys stored before are rewritten to the
//! new form, so retries of those messages are still recognised.

use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(super) struct Migration;

/// Characters of the client id that start a key (`messages::KEY_PREFIX`).
const PREFIX: u32 = 16;

/// Makes `idem_key` a `varchar(width)` (still compared byte for byte on MySQL). SQLite does
/// not enforce a varchar's length, so there it changes nothing.
async fn set_key_width(m: &SchemaManager<'_>, width: u32) -> Result<(), DbErr> {
    let sql = match m.get_database_backend() {
        DbBackend::Postgres => {
            format!("ALTER TABLE im_messages ALTER COLUMN idem_key TYPE varchar({width})")
        }
        DbBackend::MySql => format!(
            "ALTER TABLE im_messages MODIFY idem_key varchar({width}) \
             CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL"
        ),
        _ => return Ok(()),
    };
    m.get_connection().execute_unprepared(&sql).await?;
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        let backend = m.get_database_backend();
        set_key_width(m, 80).await?;
        // A key of the old form is the bare 64-digit hash; a new one is longer (client ids
        // are never empty), so running this twice changes nothing the second time.
        let new_key = match backend {
            DbBackend::MySql => format!("CONCAT(SUBSTRING(client_id, 1, {PREFIX}), idem_key)"),
            _ => format!("SUBSTR(client_id, 1, {PREFIX}) || idem_key"),
        };
        db.execute_unprepared(&format!(
            "UPDATE im_messages SET idem_key = {new_key} \
             WHERE idem_key IS NOT NULL AND LENGTH(idem_key) = 64"
        ))
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        let backend = m.get_database_backend();
        let hash = match backend {
            DbBackend::MySql => "RIGHT(idem_key, 64)",
            _ => "SUBSTR(idem_key, LENGTH(idem_key) - 63)",
        };
        db.execute_unprepared(&format!(
            "UPDATE im_messages SET idem_key = {hash} \
             WHERE idem_key IS NOT NULL AND LENGTH(idem_key) > 64"
        ))
        .await?;
        set_key_width(m, 64).await
    }
}
