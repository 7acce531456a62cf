//! `im_messages`: every conversation's timeline; bodies are JSON.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "im_messages")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub conversation: String,
    pub seq: i64,
    pub sender_id: i64,
    pub sender_device: String,
    /// `NULL` for messages without an idempotency key (system messages).
    pub client_id: Option<String>,
    /// The client id's first 16 characters, then the SHA-256 (hex) of conversation,
    /// sender, device and client id (see `messages::idem_key`), unique: one indexed
    /// column serves the retry lookup of a whole batch (`idem_key IN (…)`). `NULL`
    /// without a client id.
    pub idem_key: Option<String>,
    pub body: String,
    pub sent_at: i64,
    pub edited_at: Option<i64>,
    /// The seq, in the same conversation, of the message this one replies to.
    pub reply_to: Option<i64>,
    /// For a forward: who first wrote it, and when (both set, or neither).
    pub forwarded_sender: Option<i64>,
    pub forwarded_at: Option<i64>,
    /// The words the message is found by (`search::stored_text`), `NULL` for messages
    /// without text; each database's full-text index covers it.
    pub search_text: Option<String>,
    /// The users it mentions, as a JSON array of ids; `NULL` for none.
    pub mentions: Option<String>,
    /// For an image or a file: the SHA-256 (hex) of the url it names
    /// (`messages::attachment_key`), indexed with the conversation and seq, so that the
    /// messages naming an upload are found without reading bodies. `NULL` otherwise,
    /// and once the message is recalled.
    pub attachment: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
