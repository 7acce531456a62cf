//! `im_friend_requests`: pending requests, one row per (asker, asked).
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "im_friend_requests")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub from_user: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub to_user: i64,
    pub note: String,
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
