//! `im_cursors`: per user and conversation, the delivered and read seqs, and the newest
//! seq that mentions the user.
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
    /// The newest seq of a message that mentions the user (0: none).
    pub mention_seq: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
