//! Full-text search over the messages a user may read.
//!
//! Words are cut and folded here, once, for every backend: [`indexed_text`] turns a
//! message body into the space-separated words storage indexes, and [`SearchTerms`]
//! turns what a user typed into the words to look for. A backend then only matches
//! whole words, or words that start with a term, which SQLite's FTS5, PostgreSQL's
//! `tsvector` and MySQL's `FULLTEXT` all do the same way. So one query finds the same
//! messages on every backend, and the memory storage matches with [`SearchTerms::matches`].
//!
//! The rules:
//! - A word is a run of letters and digits (`char::is_alphanumeric`), lower-cased.
//!   Everything else separates words, so no query can carry a backend's query syntax.
//! - Chinese and Japanese are written without spaces: a run of their characters is
//!   indexed as each character and each pair of neighbours (`你好世界` as `你 好 世 界
//!   你好 好世 世界`). A query of one such character looks for that character, a longer
//!   one for all its pairs, so `好世界` finds `你好世界`.
//! - Every other term of two or more characters matches the words it starts
//!   (`pine` finds `pineapple`); a one-character term matches only itself. Words are
//!   indexed by their first [`MAX_WORD_CHARS`] characters.
//! - A message matches when it holds every term. Only text bodies and file names are
//!   indexed; images, custom payloads and system messages (recalled ones too) are not.

use async_trait::async_trait;

use super::StorageResult;
use crate::model::{Body, ConversationId, Message, MessageId, UserId};

/// The most terms one query may have.
pub const MAX_TERMS: usize = 8;

/// The longest query text, in bytes.
pub const MAX_QUERY_BYTES: usize = 256;

/// Words are indexed by their first this many characters (so a pasted key or link does
/// not make an index entry of kilobytes; PostgreSQL refuses lexemes over 2 KiB), and a
/// longer term looks for the words it starts.
pub const MAX_WORD_CHARS: usize = 64;

/// One word to look for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// The word, lower-cased: letters and digits only.
    pub word: String,
    /// Whether it also matches the longer words it starts.
    pub prefix: bool,
}

/// What a user searches for: at least one and at most [`MAX_TERMS`] terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchTerms {
    terms: Vec<Term>,
}

/// Why a query cannot be searched for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// Nothing to look for: no letters or digits.
    #[error("the query has no words to search for")]
    Empty,
    /// Longer than [`MAX_QUERY_BYTES`].
    #[error("the query is longer than {MAX_QUERY_BYTES} bytes")]
    TooLong,
    /// More than [`MAX_TERMS`] terms.
    #[error("the query has more than {MAX_TERMS} words")]
    TooManyTerms,
}

impl SearchTerms {
    /// The terms of what a user typed.
    pub fn parse(query: &str) -> Result<SearchTerms, QueryError> {
        if query.len() > MAX_QUERY_BYTES {
            return Err(QueryError::TooLong);
        }
        let mut terms: Vec<Term> = Vec::new();
        for run in runs(query) {
            match run {
                Run::Word(mut word) => {
                    let prefix = word.chars().nth(1).is_some();
                    truncate_word(&mut word);
                    terms.push(Term { word, prefix });
                }
                Run::Cjk(chars) if chars.len() == 1 => terms.push(Term {
                    word: chars[0].to_string(),
                    prefix: false,
                }),
                Run::Cjk(chars) => terms.extend(chars.windows(2).map(|pair| Term {
                    word: pair.iter().collect(),
                    prefix: false,
                })),
            }
        }
        terms.dedup();
        if terms.is_empty() {
            return Err(QueryError::Empty);
        }
        if terms.len() > MAX_TERMS {
            return Err(QueryError::TooManyTerms);
        }
        Ok(SearchTerms { terms })
    }

    /// The terms, in the order typed.
    pub fn terms(&self) -> &[Term] {
        &self.terms
    }

    /// Whether a message with this [`indexed_text`] holds every term.
    pub fn matches(&self, indexed: &str) -> bool {
        self.terms.iter().all(|term| {
            indexed.split(' ').any(|word| {
                if term.prefix {
                    word.starts_with(term.word.as_str())
                } else {
                    word == term.word
                }
            })
        })
    }
}

/// The words a message is found by, space-separated (see the module's rules), or
/// `None` when it has none: only text bodies and file names are indexed.
pub fn indexed_text(body: &Body) -> Option<String> {
    let text = match body {
        Body::Text { text } => text.as_str(),
        Body::File { name, .. } => name.as_str(),
        _ => return None,
    };
    let mut words: Vec<String> = Vec::new();
    for run in runs(text) {
        match run {
            Run::Word(mut word) => {
                truncate_word(&mut word);
                words.push(word);
            }
            Run::Cjk(chars) => {
                words.extend(chars.iter().map(char::to_string));
                words.extend(chars.windows(2).map(|pair| pair.iter().collect()));
            }
        }
    }
    (!words.is_empty()).then(|| words.join(" "))
}

/// Cuts a word to its first [`MAX_WORD_CHARS`] characters.
fn truncate_word(word: &mut String) {
    if let Some((at, _)) = word.char_indices().nth(MAX_WORD_CHARS) {
        word.truncate(at);
    }
}

/// A maximal run of word characters.
enum Run {
    /// Letters and digits of scripts written with spaces, lower-cased.
    Word(String),
    /// Chinese or Japanese characters.
    Cjk(Vec<char>),
}

fn runs(text: &str) -> Vec<Run> {
    let mut runs = Vec::new();
    let mut word = String::new();
    let mut cjk: Vec<char> = Vec::new();
    for c in text.chars() {
        if is_cjk(c) {
            if !word.is_empty() {
                runs.push(Run::Word(std::mem::take(&mut word)));
            }
            cjk.push(c);
        } else if c.is_alphanumeric() {
            if !cjk.is_empty() {
                runs.push(Run::Cjk(std::mem::take(&mut cjk)));
            }
            word.extend(c.to_lowercase());
        } else {
            if !word.is_empty() {
                runs.push(Run::Word(std::mem::take(&mut word)));
            }
            if !cjk.is_empty() {
                runs.push(Run::Cjk(std::mem::take(&mut cjk)));
            }
        }
    }
    if !word.is_empty() {
        runs.push(Run::Word(word));
    }
    if !cjk.is_empty() {
        runs.push(Run::Cjk(cjk));
    }
    runs
}

/// Characters of scripts written without spaces between words: the CJK ideographs and
/// the Japanese kana. (Korean separates words with spaces and is indexed by word.)
fn is_cjk(c: char) -> bool {
    matches!(c,
        '\u{3040}'..='\u{30FF}'   // Hiragana, Katakana
        | '\u{3400}'..='\u{4DBF}' // CJK Extension A
        | '\u{4E00}'..='\u{9FFF}' // CJK Unified Ideographs
        | '\u{F900}'..='\u{FAFF}' // CJK Compatibility Ideographs
        | '\u{20000}'..='\u{3134F}' // Extensions B to G
    )
}

/// One page of a search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    /// What to look for.
    pub terms: SearchTerms,
    /// Only this conversation (`None`: every conversation the user may read).
    pub conversation: Option<ConversationId>,
    /// Only messages with a lower id (the last one of the previous page).
    pub before: Option<MessageId>,
    /// Most messages to return.
    pub limit: u32,
}

/// Full-text search.
///
/// # Contract
/// `search` returns the messages whose body's [`indexed_text`] holds every term of the
/// query (as [`SearchTerms::matches`] decides), newest first (descending id), with ids
/// below `before`, at most `limit`, and only those `user` may read, decided in the same
/// query as the match (never on a cached view):
/// - in a direct conversation `user` is one of its two users;
/// - in a group `user` is a member now, and the message's seq is at or after the seq
///   they joined at;
/// - not a message `user` hid (`MessageStore::hide`).
///
/// An edit is found by its new text only; a recalled message is not found.
#[async_trait]
pub trait SearchStore: Send + Sync {
    /// One page of the messages `user` may read that match the query, newest first.
    async fn search(&self, user: UserId, query: &SearchQuery) -> StorageResult<Vec<Message>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Option<String> {
        indexed_text(&Body::Text { text: s.into() })
    }

    #[test]
    fn words_are_lower_cased_runs_of_letters_and_digits() {
        assert_eq!(
            text("Hello, WORLD! It's 2026 — café ÉCOLE").as_deref(),
            Some("hello world it s 2026 café école")
        );
        assert_eq!(text(" ... "), None);
        assert_eq!(text(""), None);
    }

    #[test]
    fn chinese_and_japanese_are_indexed_by_character_and_pair() {
        assert_eq!(
            text("你好世界 ok").as_deref(),
            Some("你 好 世 界 你好 好世 世界 ok")
        );
        assert_eq!(text("東京へ").as_deref(), Some("東 京 へ 東京 京へ"));
    }

    #[test]
    fn only_text_and_file_names_are_indexed() {
        let file = Body::File {
            url: "/x".into(),
            mime: "text/plain".into(),
            size: 1,
            name: "Report-2026.pdf".into(),
        };
        assert_eq!(indexed_text(&file).as_deref(), Some("report 2026 pdf"));
        let custom = Body::Custom {
            data: serde_json::json!({"text": "hidden"}),
        };
        assert_eq!(indexed_text(&custom), None);
    }

    #[test]
    fn queries_become_terms_and_syntax_is_just_separators() {
        let terms = SearchTerms::parse("Pine* \"APPLE\" -x OR").unwrap();
        let words: Vec<(&str, bool)> = terms
            .terms()
            .iter()
            .map(|t| (t.word.as_str(), t.prefix))
            .collect();
        assert_eq!(
            words,
            [("pine", true), ("apple", true), ("x", false), ("or", true)]
        );
        assert_eq!(SearchTerms::parse(" *()\"' "), Err(QueryError::Empty));
        assert_eq!(
            SearchTerms::parse(&"a ".repeat(200)),
            Err(QueryError::TooLong)
        );
        assert_eq!(
            SearchTerms::parse("a b c d e f g h i"),
            Err(QueryError::TooManyTerms)
        );
        // The same word twice is one term.
        assert_eq!(SearchTerms::parse("ok OK ok").unwrap().terms().len(), 1);
    }

    #[test]
    fn long_words_are_indexed_and_looked_for_by_their_start() {
        let long = "k".repeat(100);
        let indexed = text(&format!("key {long}")).unwrap();
        assert_eq!(indexed, format!("key {}", "k".repeat(MAX_WORD_CHARS)));
        let terms = SearchTerms::parse(&"k".repeat(90)).unwrap();
        assert_eq!(terms.terms()[0].word.len(), MAX_WORD_CHARS);
        assert!(terms.matches(&indexed));
    }

    #[test]
    fn matching_takes_every_term_and_prefixes_of_two_or_more() {
        let indexed = text("Pineapple pizza, 你好世界").unwrap();
        let found = |q: &str| SearchTerms::parse(q).unwrap().matches(&indexed);
        assert!(found("pine"));
        assert!(found("PIZZA pineapple"));
        assert!(!found("pizza banana"));
        assert!(!found("p"), "one letter matches only itself");
        assert!(!found("apple"), "prefixes, not infixes");
        assert!(found("好世界"));
        assert!(found("界"));
        assert!(!found("世好"));
    }
}
