//! Every table and index the storage uses. Each index serves a query named beside it.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(super) struct Migration;

/// Longest conversation id (`d:` and two 20-digit ids).
const CONVERSATION: u32 = 48;
/// Longest device id and client message id (both are validated to 64).
const CLIENT_KEY: u32 = 64;
/// The idempotency key: a SHA-256 in hex (widened to 80 by the next migration).
const IDEM_KEY: u32 = 64;

/// A string compared byte for byte: ids and keys. MySQL's default collations ignore case,
/// accents and trailing spaces, which would make `Phone` and `phone` one device and two
/// distinct client ids one message.
fn key(m: &SchemaManager, name: &'static str, len: u32) -> ColumnDef {
    let mut col = string_len(name, len);
    if m.get_database_backend() == sea_orm::DbBackend::MySql {
        col.extra("COLLATE utf8mb4_bin");
    }
    col
}

/// Message bodies: MySQL's `TEXT` stops at 64 KiB, so `MEDIUMTEXT` there.
fn body(m: &SchemaManager) -> ColumnDef {
    if m.get_database_backend() == sea_orm::DbBackend::MySql {
        ColumnDef::new("body")
            .custom("MEDIUMTEXT".into_iden())
            .not_null()
            .take()
    } else {
        text("body")
    }
}

fn create(name: &'static str) -> TableCreateStatement {
    Table::create().table(name).if_not_exists().take()
}

fn index(table: &'static str, name: &'static str, cols: &[&'static str]) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table(table).if_not_exists();
    for col in cols {
        index.col(*col);
    }
    index.take()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            create("im_users")
                .col(big_pk_auto("id"))
                .col(string_len_uniq("username", 32))
                .col(string_len("display_name", 255))
                .col(text_null("avatar"))
                .col(text("password_hash"))
                .col(big_integer("created_at"))
                .col(big_integer_null("last_seen"))
                .take(),
        )
        .await?;

        m.create_table(
            create("im_devices")
                .col(big_integer("user_id"))
                .col(key(m, "device_id", CLIENT_KEY))
                .col(string_len("name", 255))
                .col(string_len("platform", 16))
                .col(big_integer("logged_in_at"))
                .col(big_integer("expires_at"))
                .col(string_len("token_hash", 128))
                .primary_key(Index::create().col("user_id").col("device_id"))
                .take(),
        )
        .await?;

        m.create_table(
            create("im_friend_requests")
                .col(big_integer("from_user"))
                .col(big_integer("to_user"))
                .col(text("note"))
                .col(big_integer("created_at"))
                .primary_key(Index::create().col("from_user").col("to_user"))
                .take(),
        )
        .await?;
        // friend_requests(user): the requests to a user.
        m.create_index(index(
            "im_friend_requests",
            "im_friend_requests_to",
            &["to_user"],
        ))
        .await?;

        m.create_table(
            create("im_friends")
                .col(big_integer("user_id"))
                .col(big_integer("friend_id"))
                .col(big_integer("since"))
                .primary_key(Index::create().col("user_id").col("friend_id"))
                .take(),
        )
        .await?;

        m.create_table(
            create("im_blocks")
                .col(big_integer("user_id"))
                .col(big_integer("target_id"))
                .primary_key(Index::create().col("user_id").col("target_id"))
                .take(),
        )
        .await?;

        m.create_table(
            create("im_groups")
                .col(big_pk_auto("id"))
                .col(string_len("name", 255))
                .col(big_integer("owner_id"))
                .col(boolean("open"))
                .col(big_integer("created_at"))
                .take(),
        )
        .await?;

        m.create_table(
            create("im_members")
                .col(big_integer("group_id"))
                .col(big_integer("user_id"))
                .col(string_len("role", 8))
                .col(big_integer("joined_seq"))
                .primary_key(Index::create().col("group_id").col("user_id"))
                .take(),
        )
        .await?;
        // user_groups(user) and conversations(user): a user's groups.
        m.create_index(index("im_members", "im_members_user", &["user_id"]))
            .await?;

        m.create_table(
            create("im_conversations")
                .col(key(m, "id", CONVERSATION).primary_key())
                .col(big_integer("last_seq"))
                .take(),
        )
        .await?;

        m.create_table(
            create("im_messages")
                .col(big_pk_auto("id"))
                .col(key(m, "conversation", CONVERSATION))
                .col(big_integer("seq"))
                .col(big_integer("sender_id"))
                .col(key(m, "sender_device", CLIENT_KEY))
                .col(key(m, "client_id", CLIENT_KEY).null())
                .col(key(m, "idem_key", IDEM_KEY).null())
                .col(body(m))
                .col(big_integer("sent_at"))
                .col(big_integer_null("edited_at"))
                .take(),
        )
        .await?;
        // History pages, last messages, amendments: (conversation, seq) is the timeline,
        // and unique, so two appends can never share a seq.
        m.create_index(
            index(
                "im_messages",
                "im_messages_timeline",
                &["conversation", "seq"],
            )
            .unique()
            .take(),
        )
        .await?;
        // Idempotent appends: a retry finds the first message, a batch all of its retries
        // in one `IN` lookup (NULL keys never clash).
        m.create_index(
            index("im_messages", "im_messages_idempotency", &["idem_key"])
                .unique()
                .take(),
        )
        .await?;

        m.create_table(
            create("im_user_conversations")
                .col(big_integer("user_id"))
                .col(key(m, "conversation", CONVERSATION))
                .primary_key(Index::create().col("user_id").col("conversation"))
                .take(),
        )
        .await?;

        m.create_table(
            create("im_cursors")
                .col(key(m, "conversation", CONVERSATION))
                .col(big_integer("user_id"))
                .col(big_integer("delivered_seq"))
                .col(big_integer("read_seq"))
                .primary_key(Index::create().col("conversation").col("user_id"))
                .take(),
        )
        .await?;

        m.create_table(
            create("im_hidden")
                .col(big_integer("user_id"))
                .col(key(m, "conversation", CONVERSATION))
                .col(big_integer("seq"))
                .primary_key(
                    Index::create()
                        .col("user_id")
                        .col("conversation")
                        .col("seq"),
                )
                .take(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "im_hidden",
            "im_cursors",
            "im_user_conversations",
            "im_messages",
            "im_conversations",
            "im_members",
            "im_groups",
            "im_blocks",
            "im_friends",
            "im_friend_requests",
            "im_devices",
            "im_users",
        ] {
            m.drop_table(Table::drop().table(table).if_exists().take())
                .await?;
        }
        Ok(())
    }
}
