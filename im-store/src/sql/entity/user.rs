//! `im_users`: accounts, their password hashes and last-seen times.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "im_users")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub username: String,
    pub display_name: String,
    pub avatar: Option<String>,
    pub password_hash: String,
    pub created_at: i64,
    pub last_seen: Option<i64>,
    /// When the account was disabled; `NULL` while it is enabled (migration 9).
    pub disabled_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
