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

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        let backend = m.get_database_backend();
        match backend {
            DbBackend::Postgres => {
                db.execute_unprepared(
                    "ALTER TABLE im_messages ALTER COLUMN idem_key TYPE varchar(80)",
                )
                .await?;
            }
            DbBackend::MySql => {
                db.execute_unprepared(
                    "ALTER TABLE im_messages MODIFY idem_key varchar(80) \
                     CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL",
                )
                .await?;
            }
            // SQLite does not enforce a varchar's length.
            _ => {}
        }
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
        match backend {
            DbBackend::Postgres => {
                db.execute_unprepared(
                    "ALTER TABLE im_messages ALTER COLUMN idem_key TYPE varchar(64)",
                )
                .await?;
            }
            DbBackend::MySql => {
                db.execute_unprepared(
                    "ALTER TABLE im_messages MODIFY idem_key varchar(64) \
                     CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL",
                )
                .await?;
            }
            _ => {}
        }
        Ok(())
    }
}
