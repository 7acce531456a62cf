use async_trait::async_trait;
use serde::Serialize;

use super::{StorageError, StorageResult};
use crate::model::Timestamp;

/// An invite code as stored: never the code itself, only its hash, so that whoever reads
/// the database cannot register with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Invite {
    /// The SHA-256 (hex) of the code: how the invite is named once the code is handed
    /// out (listing, revoking).
    pub id: String,
    /// Registrations it still admits.
    pub uses_left: u32,
    /// When it stops admitting any.
    pub expires_at: Timestamp,
    /// When it was made.
    pub created_at: Timestamp,
    /// The operator's note (whom it was for).
    pub note: String,
}

/// Invite codes: each admits a number of registrations until it expires.
///
/// # Contract
/// - `create_invite` stores an invite under its id; `Conflict` when the id exists.
/// - `use_invite(id, now)` uses one of the invite's uses, in one atomic step, when it has
///   one left and `now` is before its `expires_at`, and says whether it did: of more
///   registrations at once than it has uses, exactly as many as it has are admitted.
///   `false` for an unknown id.
/// - `return_invite(id)` gives one use back (a registration it admitted was not stored);
///   nothing for an unknown (revoked) id.
/// - `invites` lists every stored invite, newest first; `revoke_invite` deletes one and
///   says whether it existed.
///
/// Every method has a default that refuses (`Unsupported`), so that an adapter written
/// before invites existed still compiles: a server on it cannot take invites.
#[async_trait]
pub trait InviteStore: Send + Sync {
    /// Stores a new invite.
    async fn create_invite(&self, invite: Invite) -> StorageResult<()> {
        let _ = invite;
        Err(StorageError::Unsupported("invite codes"))
    }
    /// Uses one of an invite's uses, if it has one and has not expired.
    async fn use_invite(&self, id: &str, now: Timestamp) -> StorageResult<bool> {
        let _ = (id, now);
        Err(StorageError::Unsupported("invite codes"))
    }
    /// Gives one use back.
    async fn return_invite(&self, id: &str) -> StorageResult<()> {
        let _ = id;
        Err(StorageError::Unsupported("invite codes"))
    }
    /// Every invite, newest first.
    async fn invites(&self) -> StorageResult<Vec<Invite>> {
        Err(StorageError::Unsupported("invite codes"))
    }
    /// Deletes an invite; whether it existed.
    async fn revoke_invite(&self, id: &str) -> StorageResult<bool> {
        let _ = id;
        Err(StorageError::Unsupported("invite codes"))
    }
}
