//! Where everything durable lives: users, devices, contacts, groups, messages, cursors.
//!
//! [`Storage`] is the sum of nine small traits, one per concern, each in its own file.
//! The engine holds it as `Arc<dyn Storage>`. Implementations: [`MemoryStorage`]
//! (tests, single-process apps), `im_store::SqlStorage` (SQLite, PostgreSQL, MySQL), and
//! your own, which proves itself with `storage_conformance!` (feature `testkit`), the
//! suite every implementation must pass.
//!
//! [`MemoryStorage`]: crate::memory::MemoryStorage

mod contacts;
mod devices;
mod groups;
mod invites;
mod messages;
mod pins;
mod reactions;
mod search;
mod users;

pub use contacts::{ContactStore, RequestOutcome};
pub use devices::{DeviceRecord, DeviceStore};
pub use groups::{GROUP_FULL, GroupChange, GroupStore, NewGroup};
pub use invites::{Invite, InviteStore};
pub use messages::{
    AMENDED_AWAY, Amendment, Appended, ConversationState, Cursor, CursorQuery, MessageRange,
    MessageStore, NewMessage,
};
pub use pins::{PINS_FULL, PinStore};
pub use reactions::ReactionStore;
pub use search::{
    MAX_QUERY_BYTES, MAX_TERMS, MAX_WORD_CHARS, QueryError, SearchQuery, SearchStore, SearchTerms,
    Term, indexed_text,
};
pub use users::{NewUser, ProfileChange, UserStore};

/// The `Conflict` of a change that would give a disabled account a friend, a friend
/// request or a group.
pub const ACCOUNT_DISABLED: &str = "the account is disabled";

/// Everything the engine keeps durably.
///
/// # Contract
/// Each part's contract is on its own trait: [`UserStore`], [`DeviceStore`],
/// [`ContactStore`], [`GroupStore`], [`MessageStore`], [`ReactionStore`], [`PinStore`], [`SearchStore`],
/// [`InviteStore`].
/// Across all of them: every method is safe to call concurrently from many tasks, a
/// method that returns `Ok` has made its change durable (as durable as the backend is),
/// and a method that returns `Err` has made no change.
pub trait Storage:
    UserStore
    + DeviceStore
    + ContactStore
    + GroupStore
    + MessageStore
    + ReactionStore
    + PinStore
    + SearchStore
    + InviteStore
    + std::fmt::Debug
{
}

impl<T> Storage for T where
    T: UserStore
        + DeviceStore
        + ContactStore
        + GroupStore
        + MessageStore
        + ReactionStore
        + PinStore
        + SearchStore
        + InviteStore
        + std::fmt::Debug
{
}

/// A storage failure, as every backend reports it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The record does not exist.
    #[error("not found: {0}")]
    NotFound(&'static str),
    /// A uniqueness rule was violated (a username already taken).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The backend does not support this operation.
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    /// The backend is unreachable or overloaded; the call may succeed later.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Anything else the backend reported.
    #[error("storage backend error: {0}")]
    Backend(String),
}

impl StorageError {
    /// Whether retrying the same call later may succeed.
    pub fn is_temporary(&self) -> bool {
        matches!(self, StorageError::Unavailable(_))
    }
}

/// Shorthand for storage results.
pub type StorageResult<T> = Result<T, StorageError>;
