//! Mentions: `im_messages.mentions` (the users a message mentions, a JSON array of ids,
//! `NULL` for none) and `im_cursors.mention_seq` (per user and conversation, the newest
//! seq that mentions the user, 0 for none). Existing rows mention nobody.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(super) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("im_messages")
                .add_column(ColumnDef::new("mentions").text().null())
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table("im_cursors")
                .add_column(
                    ColumnDef::new("mention_seq")
                        .big_integer()
                        .not_null()
                        .default(0),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("im_cursors")
                .drop_column("mention_seq")
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table("im_messages")
                .drop_column("mentions")
                .to_owned(),
        )
        .await
    }
}
