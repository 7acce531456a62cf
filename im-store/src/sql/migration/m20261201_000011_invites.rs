//! `im_invites`: one row per invite code, keyed by the code's SHA-256 (hex), with the
//! registrations it still admits, its expiry, when it was made and the operator's note.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(super) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("im_invites")
                .if_not_exists()
                .col(string_len("id", 64).primary_key())
                .col(big_integer("uses_left"))
                .col(big_integer("expires_at"))
                .col(big_integer("created_at"))
                .col(text("note"))
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("im_invites").if_exists().take())
            .await
    }
}
