//! Disabled accounts: `im_users.disabled_at`, when an operator disabled the account,
//! `NULL` while it is enabled. Existing accounts are enabled.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(super) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("im_users")
                .add_column(ColumnDef::new("disabled_at").big_integer().null())
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("im_users")
                .drop_column("disabled_at")
                .to_owned(),
        )
        .await
    }
}
