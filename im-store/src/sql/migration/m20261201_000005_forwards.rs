//! A forwarded message keeps its origin: `forwarded_sender` and `forwarded_at`, the first
//! sender and time, `NULL` for other messages. Existing rows stay as they are.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(super) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one at a time.
        for column in ["forwarded_sender", "forwarded_at"] {
            m.alter_table(
                Table::alter()
                    .table("im_messages")
                    .add_column(ColumnDef::new(column).big_integer().null())
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for column in ["forwarded_at", "forwarded_sender"] {
            m.alter_table(
                Table::alter()
                    .table("im_messages")
                    .drop_column(column)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
