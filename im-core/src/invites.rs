//! Invite codes: an operator makes them ([`Engine::create_invite`]), hands them out,
//! and [`InviteGate`] admits a registration that shows one as its `proof`, each code for
//! as many registrations as it has uses, until it expires. Storage keeps only a hash of
//! each code ([`InviteStore`](crate::storage::InviteStore)), and uses one in one atomic
//! step, so two registrations at once cannot share a last use.
//!
//! ```
//! # tokio_test_block_on(async {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use im_core::invites::InviteGate;
//! use im_core::memory::MemoryStorage;
//! use im_core::storage::Storage;
//!
//! let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
//! let engine = im_core::Engine::builder()
//!     .storage(storage.clone())
//!     .gate(Arc::new(InviteGate::new(storage)))
//!     .start()
//!     .await
//!     .unwrap();
//! let (code, invite) = engine
//!     .create_invite(1, Duration::from_secs(7 * 24 * 3600), "for Ann")
//!     .await
//!     .unwrap();
//! assert_eq!(code.len(), 19); // "xxxx-xxxx-xxxx-xxxx": give it to Ann
//! assert_eq!(invite.uses_left, 1);
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
//! # }
//! ```
//!
//! [`Engine::create_invite`]: crate::Engine::create_invite

use std::fmt::{self, Write as _};
use std::sync::Arc;

use async_trait::async_trait;

use crate::gate::{Gate, Registration};
use crate::model::Timestamp;
use crate::protocol::{ErrorBody, ErrorCode, ProofKind};
use crate::storage::{Storage, StorageError};

/// The letters a code is made of: lower case and digits, without those read as others
/// (0 and o, 1, l and i).
const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";

/// Characters of a code, besides its dashes: 16 of 31 letters, 79 bits.
const LENGTH: usize = 16;

/// A fresh code, `xxxx-xxxx-xxxx-xxxx`.
pub(crate) fn new_code() -> Result<String, getrandom::Error> {
    let mut code = String::with_capacity(LENGTH + LENGTH / 4);
    let mut picked = 0;
    let mut raw = [0u8; 64];
    while picked < LENGTH {
        getrandom::fill(&mut raw)?;
        // Bytes past the last whole multiple of the alphabet are skipped: no letter is
        // likelier than another.
        let fair = 256 - 256 % ALPHABET.len();
        for &b in raw.iter().filter(|&&b| usize::from(b) < fair) {
            if picked == LENGTH {
                break;
            }
            if picked > 0 && picked % 4 == 0 {
                code.push('-');
            }
            code.push(char::from(ALPHABET[usize::from(b) % ALPHABET.len()]));
            picked += 1;
        }
    }
    Ok(code)
}

/// The id an invite is stored under: the SHA-256 (hex) of its code, as typed with any
/// case, spaces or dashes.
pub fn invite_id(code: &str) -> String {
    use sha2::{Digest, Sha256};
    let normal: String = code
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_lowercase)
        .collect();
    let mut id = String::with_capacity(64);
    for b in Sha256::digest(normal.as_bytes()) {
        let _ = write!(id, "{b:02x}");
    }
    id
}

/// A [`Gate`] that admits a registration showing a live invite code as its `proof`,
/// using one of the code's uses (given back if the account is then not made).
pub struct InviteGate {
    storage: Arc<dyn Storage>,
}

impl InviteGate {
    /// Invites kept in `storage` (the engine's own).
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        InviteGate { storage }
    }
}

impl fmt::Debug for InviteGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InviteGate").finish_non_exhaustive()
    }
}

#[async_trait]
impl Gate for InviteGate {
    async fn admit(&self, registration: &Registration<'_>) -> Result<(), ErrorBody> {
        let Some(code) = registration.proof.filter(|c| !c.trim().is_empty()) else {
            return Err(ErrorBody::proof_required(
                ProofKind::Invite,
                "registration on this server needs an invite code",
            ));
        };
        match self
            .storage
            .use_invite(&invite_id(code), Timestamp::now())
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(ErrorBody::proof_required(
                ProofKind::Invite,
                "this invite code is not valid: mistyped, used up, expired or withdrawn",
            )),
            Err(StorageError::Unsupported(_)) => Err(ErrorBody::new(
                ErrorCode::Forbidden,
                "registration is by invite, and this server's storage keeps no invites",
            )),
            Err(e) => {
                tracing::warn!(error = %e, "an invite could not be checked");
                let mut body = ErrorBody::new(
                    ErrorCode::Unavailable,
                    "the invite could not be checked; try again shortly",
                );
                body.retry_after_ms = Some(1000);
                Err(body)
            }
        }
    }

    async fn abandoned(&self, registration: &Registration<'_>) {
        let Some(code) = registration.proof else {
            return;
        };
        if let Err(e) = self.storage.return_invite(&invite_id(code)).await {
            tracing::warn!(error = %e, "an invite's use could not be given back");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_four_groups_of_four_unambiguous_letters() {
        let code = new_code().unwrap();
        let groups: Vec<&str> = code.split('-').collect();
        assert_eq!(groups.len(), 4, "{code}");
        for group in groups {
            assert_eq!(group.len(), 4, "{code}");
            assert!(group.bytes().all(|b| ALPHABET.contains(&b)), "{code}");
        }
        assert_ne!(new_code().unwrap(), code);
    }

    #[test]
    fn a_code_is_found_however_it_is_typed() {
        let id = invite_id("abcd-efgh-jkmn-pqrs");
        assert_eq!(id.len(), 64);
        assert_eq!(invite_id(" ABCD efgh-JKMN pqrs "), id);
        assert_ne!(invite_id("abcd-efgh-jkmn-pqrt"), id);
    }
}
