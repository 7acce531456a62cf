//! The schema, as migrations run by [`Migrator`]. Their history lives in our own table,
//! `im_migrations`, so the tables sit beside an app's own (and its own SeaORM migrations)
//! in one database without clashing.
//!
//! [`SqlStorage::connect`](super::SqlStorage::connect) runs them on start; an app that
//! migrates separately calls [`Migrator::up`](sea_orm_migration::MigratorTrait::up) itself
//! and connects with [`SqlStorage::connect_without_migrating`](super::SqlStorage::connect_without_migrating).

use sea_orm_migration::prelude::*;

mod m20261123_000001_create_tables;
mod m20261123_000002_ordered_idempotency_keys;
mod m20261201_000003_message_replies;
mod m20261201_000004_reactions;
mod m20261201_000005_forwards;
mod m20261201_000006_pins;
mod m20261201_000007_search;
mod m20261201_000008_mentions;
mod m20261201_000009_disabled_users;
mod m20261201_000010_attachments;
mod m20261201_000011_invites;

/// Runs the storage's migrations.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_create_tables::Migration),
            Box::new(m20261123_000002_ordered_idempotency_keys::Migration),
            Box::new(m20261201_000003_message_replies::Migration),
            Box::new(m20261201_000004_reactions::Migration),
            Box::new(m20261201_000005_forwards::Migration),
            Box::new(m20261201_000006_pins::Migration),
            Box::new(m20261201_000007_search::Migration),
            Box::new(m20261201_000008_mentions::Migration),
            Box::new(m20261201_000009_disabled_users::Migration),
            Box::new(m20261201_000010_attachments::Migration),
            Box::new(m20261201_000011_invites::Migration),
        ]
    }

    fn migration_table_name() -> DynIden {
        "im_migrations".into_iden()
    }
}
