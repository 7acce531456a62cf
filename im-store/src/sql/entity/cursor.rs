//! `im_cursors`: per user and conversation, the delivered and read seqs.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "im_cursors")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub conversation: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: i64,
    pub delivered_seq: i64,
    pub read_seq: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
