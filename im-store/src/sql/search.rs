//! [`SearchStore`] on SQL: each database's own full-text index over
//! `im_messages.search_text` (see migration 7), joined in the same query with what the
//! user may read.

use async_trait::async_trait;
use im_core::model::{Body, Message, UserId};
use im_core::storage::{SearchQuery, SearchStore, SearchTerms, StorageResult, indexed_text};
use sea_orm::{DbBackend, EntityTrait, Statement, Value};

use super::entity::message;
use super::messages::to_message;
use super::{SqlStorage, conversation_key, db_error, i};

/// What a MySQL/MariaDB word is stored with in front: its `FULLTEXT` index leaves out
/// words shorter than `innodb_ft_min_token_size` (3 by default) and stop words ("the",
/// "who", …), and with a two-letter mark before each, every word is long enough and none
/// is a stop word, whatever the server's settings.
const MYSQL_MARK: &str = "zq";

/// What `im_messages.search_text` holds for a body on this database: its
/// [`indexed_text`], with [`MYSQL_MARK`] before each word on MySQL.
pub(crate) fn stored_text(backend: DbBackend, body: &Body) -> Option<String> {
    let text = indexed_text(body)?;
    Some(match backend {
        DbBackend::MySql => {
            let mut marked = String::with_capacity(text.len() * 2);
            for (n, word) in text.split(' ').enumerate() {
                if n > 0 {
                    marked.push(' ');
                }
                marked.push_str(MYSQL_MARK);
                marked.push_str(word);
            }
            marked
        }
        _ => text,
    })
}

/// The query in the database's own full-text syntax. The terms hold letters and digits
/// only, so none of them can carry syntax of its own.
fn match_expression(backend: DbBackend, terms: &SearchTerms) -> String {
    let mut parts = Vec::with_capacity(terms.terms().len());
    for term in terms.terms() {
        let star = if term.prefix { "*" } else { "" };
        parts.push(match backend {
            DbBackend::Postgres => {
                let star = if term.prefix { ":*" } else { "" };
                format!("'{}'{star}", term.word)
            }
            DbBackend::MySql => format!("+{MYSQL_MARK}{}{star}", term.word),
            _ => format!("\"{}\"{star}", term.word),
        });
    }
    parts.join(if backend == DbBackend::Postgres {
        " & "
    } else {
        " "
    })
}

/// The search as one statement for this database, with its values.
///
/// `readable` lists the user's conversations with the first seq they may read there:
/// their direct chats from the start, their groups from the seq they joined at. The
/// order by descending id lets each database walk its index from the newest match and
/// stop at the limit.
fn statement(backend: DbBackend, user: UserId, query: &SearchQuery) -> Statement {
    let mut values: Vec<Value> = Vec::with_capacity(7);
    // Each value gets its own placeholder: MySQL's `?` cannot be numbered.
    let mut bind = |value: Value| {
        values.push(value);
        match backend {
            DbBackend::Postgres => format!("${}", values.len()),
            _ => "?".to_owned(),
        }
    };
    let (group_key, order) = match backend {
        DbBackend::Postgres => ("'g:' || group_id::text", "m.id"),
        DbBackend::MySql => ("CONCAT('g:', group_id) COLLATE utf8mb4_bin", "m.id"),
        _ => ("'g:' || group_id", "im_messages_fts.rowid"),
    };
    let user_1 = bind(i(user.0).into());
    let user_2 = bind(i(user.0).into());
    let expression = bind(match_expression(backend, &query.terms).into());
    let matches = match backend {
        DbBackend::Postgres => format!("m.search_tsv @@ {expression}::tsquery"),
        DbBackend::MySql => format!("MATCH (m.search_text) AGAINST ({expression} IN BOOLEAN MODE)"),
        _ => format!("im_messages_fts MATCH {expression}"),
    };
    let from = match backend {
        DbBackend::Sqlite => "im_messages_fts JOIN im_messages m ON m.id = im_messages_fts.rowid",
        _ => "im_messages m",
    };
    let before = bind(query.before.map_or(i64::MAX, |id| i(id.0)).into());
    let user_3 = bind(i(user.0).into());
    let mut sql = format!(
        "WITH readable (conversation, first_seq) AS ( \
           SELECT conversation, 1 FROM im_user_conversations WHERE user_id = {user_1} \
           UNION ALL \
           SELECT {group_key}, joined_seq FROM im_members WHERE user_id = {user_2}) \
         SELECT m.* FROM {from} \
         JOIN readable r ON r.conversation = m.conversation \
         WHERE {matches} AND {order} < {before} AND m.seq >= r.first_seq \
         AND NOT EXISTS (SELECT 1 FROM im_hidden h \
           WHERE h.user_id = {user_3} AND h.conversation = m.conversation AND h.seq = m.seq)"
    );
    if let Some(conversation) = query.conversation {
        let conversation = bind(conversation_key(conversation).into());
        sql.push_str(&format!(" AND m.conversation = {conversation}"));
    }
    let limit = bind(i64::from(query.limit).into());
    sql.push_str(&format!(" ORDER BY {order} DESC LIMIT {limit}"));
    Statement::from_sql_and_values(backend, sql, values)
}

#[async_trait]
impl SearchStore for SqlStorage {
    async fn search(&self, user: UserId, query: &SearchQuery) -> StorageResult<Vec<Message>> {
        let backend = self.read.get_database_backend();
        let rows = message::Entity::find()
            .from_raw_sql(statement(backend, user, query))
            .all(&self.read)
            .await
            .map_err(db_error)?;
        rows.into_iter().map(to_message).collect()
    }
}
