//! A message may reply to (quote) another of its conversation: `reply_to` holds that
//! message's seq, `NULL` for the others. Existing rows stay as they are.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(super) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("im_messages")
                .add_column(ColumnDef::new("reply_to").big_integer().null())
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("im_messages")
                .drop_column("reply_to")
                .to_owned(),
        )
        .await
    }
}
