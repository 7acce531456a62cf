//! `im_pins`: the pinned messages of each conversation.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "im_pins")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub conversation: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub seq: i64,
    pub pinned_by: i64,
    pub pinned_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
