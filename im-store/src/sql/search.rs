//! [`SearchStore`] on SQL: each database's own full-text index over
//! `im_messages.search_text` (see migration 7), joined in the same query with what the
//! user may read. Results are newest first, so each database walks its index from the
//! newest match and stops at the page's end.

use async_trait::async_trait;
use im_core::model::{Body, Message, UserId};
use im_core::storage::{SearchQuery, SearchStore, SearchTerms, StorageResult, indexed_text};
use sea_orm::{ConnectionTrait, DbBackend, EntityTrait, Statement, TransactionTrait, Value};

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

/// The most conversations a SQLite search names in its FTS5 query; a user in more is
/// searched with the words alone (and the join with what they may read).
const MAX_NAMED: usize = 1000;

/// A conversation as the one word it is in the SQLite index (`d:1:2` as `dx1x2`), as
/// the migration's triggers write it.
fn fts_conversation(key: &str) -> String {
    key.replace(':', "x")
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
/// stop at the limit. On SQLite, `expression` is the FTS5 query (see
/// [`sqlite_expression`]); elsewhere `None`, and the words alone are matched.
fn statement(
    backend: DbBackend,
    user: UserId,
    query: &SearchQuery,
    expression: Option<String>,
) -> Statement {
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
    let expression = bind(
        expression
            .unwrap_or_else(|| match_expression(backend, &query.terms))
            .into(),
    );
    let matches = match backend {
        DbBackend::Postgres => format!("m.search_tsv @@ {expression}::tsquery"),
        DbBackend::MySql => format!("MATCH (m.search_text) AGAINST ({expression} IN BOOLEAN MODE)"),
        _ => format!("im_messages_fts MATCH {expression}"),
    };
    // CROSS JOIN keeps SQLite's join order: the index first, walked newest first and
    // stopped at the limit, never asked again for each message of the user's.
    let from = match backend {
        DbBackend::Sqlite => {
            "im_messages_fts CROSS JOIN im_messages m ON m.id = im_messages_fts.rowid"
        }
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

/// The FTS5 query for SQLite: the words, within the user's conversations when they are
/// at most [`MAX_NAMED`], so the index walks only matches the user may read. `None`
/// when the user may read no conversation asked for.
async fn sqlite_expression(
    txn: &impl ConnectionTrait,
    user: UserId,
    query: &SearchQuery,
) -> StorageResult<Option<String>> {
    let mut conversations: Vec<String> = match query.conversation {
        Some(conversation) => vec![conversation_key(conversation)],
        None => {
            let user = i(user.0);
            let rows = txn
                .query_all_raw(Statement::from_sql_and_values(
                    DbBackend::Sqlite,
                    "SELECT conversation FROM im_user_conversations WHERE user_id = ? \
                     UNION ALL SELECT 'g:' || group_id FROM im_members WHERE user_id = ?",
                    [user.into(), user.into()],
                ))
                .await
                .map_err(db_error)?;
            rows.iter()
                .map(|row| row.try_get_by_index::<String>(0))
                .collect::<Result<_, _>>()
                .map_err(db_error)?
        }
    };
    if conversations.is_empty() {
        return Ok(None);
    }
    let words = match_expression(DbBackend::Sqlite, &query.terms);
    if conversations.len() > MAX_NAMED {
        return Ok(Some(format!("words : ({words})")));
    }
    for c in &mut conversations {
        *c = format!("\"{}\"", fts_conversation(c));
    }
    Ok(Some(format!(
        "conversation : ({}) AND words : ({words})",
        conversations.join(" OR ")
    )))
}

#[async_trait]
impl SearchStore for SqlStorage {
    async fn search(&self, user: UserId, query: &SearchQuery) -> StorageResult<Vec<Message>> {
        let backend = self.read.get_database_backend();
        let find = |expression| {
            message::Entity::find().from_raw_sql(statement(backend, user, query, expression))
        };
        let rows = if backend == DbBackend::Sqlite {
            // One read transaction: the conversations named in the FTS5 query and the
            // join that decides what the user may read see the same moment.
            let txn = self.read.begin().await.map_err(db_error)?;
            let Some(expression) = sqlite_expression(&txn, user, query).await? else {
                return Ok(Vec::new());
            };
            let rows = find(Some(expression)).all(&txn).await.map_err(db_error)?;
            txn.commit().await.map_err(db_error)?;
            rows
        } else {
            find(None).all(&self.read).await.map_err(db_error)?
        };
        rows.into_iter().map(to_message).collect()
    }
}

#[cfg(test)]
mod tests {
    use im_core::model::{ConversationId, DeviceId, Timestamp};
    use im_core::storage::{MessageStore, NewMessage};

    use super::*;

    fn text(sender: UserId, words: &str) -> NewMessage {
        NewMessage {
            sender,
            sender_device: DeviceId::new("d").unwrap(),
            client_id: String::new(),
            body: Body::Text {
                text: words.to_owned(),
            },
            sent_at: Timestamp::now(),
            reply_to: None,
            forwarded: None,
            mentions: Vec::new(),
        }
    }

    #[test]
    fn queries_in_each_database_s_syntax() {
        let terms = SearchTerms::parse("Pine x 你好").unwrap();
        assert_eq!(
            match_expression(DbBackend::Sqlite, &terms),
            "\"pine\"* \"x\" \"你好\""
        );
        assert_eq!(
            match_expression(DbBackend::Postgres, &terms),
            "'pine':* & 'x' & '你好'"
        );
        assert_eq!(
            match_expression(DbBackend::MySql, &terms),
            "+zqpine* +zqx +zq你好"
        );
        assert_eq!(fts_conversation("d:1:23"), "dx1x23");
        assert_ne!(fts_conversation("d:12:3"), fts_conversation("d:1:23"));
    }

    /// A user in more conversations than a query names is searched by the words alone,
    /// and still sees only their own.
    #[tokio::test]
    async fn a_user_in_very_many_conversations_is_searched_without_naming_them() {
        let s = SqlStorage::connect("sqlite::memory:").await.unwrap();
        let me = UserId(1);
        let mut batch = Vec::new();
        for other in 2..(MAX_NAMED as u64 + 3) {
            batch.push((ConversationId::direct(me, UserId(other)), text(me, "hello")));
        }
        let last = batch.len();
        batch.push((
            ConversationId::direct(UserId(7), UserId(8)),
            text(UserId(7), "hello from elsewhere"),
        ));
        for r in s.append_many(batch).await {
            r.unwrap();
        }
        let query = SearchQuery {
            terms: SearchTerms::parse("hello").unwrap(),
            conversation: None,
            before: None,
            limit: 5_000,
        };
        let found = s.search(me, &query).await.unwrap();
        assert_eq!(found.len(), last);
        assert!(found.iter().all(|m| m.conversation.peer_of(me).is_some()));
        assert!(found.windows(2).all(|w| w[0].id > w[1].id));
    }
}
