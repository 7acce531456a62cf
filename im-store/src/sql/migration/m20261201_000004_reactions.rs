//! `im_reactions`: one row per user per message they reacted to. The primary key
//! (conversation, seq, user) keeps one reaction per user and message, and serves the
//! read of a page's reactions (a range of seqs in one conversation).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(super) struct Migration;

/// As the first migration's conversation ids.
const CONVERSATION: u32 = 48;
/// The longest reaction the engine accepts, in bytes.
const EMOJI: u32 = 32;

/// A column compared byte for byte (see the first migration): MySQL's default collations
/// would make distinct emoji equal.
fn binary(m: &SchemaManager, name: &'static str, len: u32) -> ColumnDef {
    let mut col = string_len(name, len);
    if m.get_database_backend() == sea_orm::DbBackend::MySql {
        col.extra("COLLATE utf8mb4_bin");
    }
    col
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("im_reactions")
                .if_not_exists()
                .col(binary(m, "conversation", CONVERSATION))
                .col(big_integer("seq"))
                .col(big_integer("user_id"))
                .col(binary(m, "emoji", EMOJI))
                .primary_key(
                    Index::create()
                        .col("conversation")
                        .col("seq")
                        .col("user_id"),
                )
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("im_reactions").if_exists().take())
            .await
    }
}
