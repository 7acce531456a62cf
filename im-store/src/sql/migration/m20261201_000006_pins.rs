//! `im_pins`: one row per pinned message; the primary key (conversation, seq) keeps a
//! message pinned once and serves the count and the list of a conversation's pins.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(super) struct Migration;

/// As the first migration's conversation ids.
const CONVERSATION: u32 = 48;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let mut conversation = string_len("conversation", CONVERSATION);
        if m.get_database_backend() == sea_orm::DbBackend::MySql {
            conversation.extra("COLLATE utf8mb4_bin");
        }
        m.create_table(
            Table::create()
                .table("im_pins")
                .if_not_exists()
                .col(conversation)
                .col(big_integer("seq"))
                .col(big_integer("pinned_by"))
                .col(big_integer("pinned_at"))
                .primary_key(Index::create().col("conversation").col("seq"))
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("im_pins").if_exists().take())
            .await
    }
}
