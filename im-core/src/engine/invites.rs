//! Invite codes, the operator's side: make one, list them, withdraw one. See
//! [`crate::invites`] for the gate that admits registrations with them.

use std::time::Duration;

use super::error::{ApiError, ApiResult};
use super::{Engine, validate};
use crate::model::Timestamp;
use crate::protocol::ErrorBody;
use crate::storage::Invite;

/// Most registrations one invite may admit.
pub const MAX_INVITE_USES: u32 = 10_000;

/// The longest an invite may stay valid.
pub const MAX_INVITE_LIFETIME: Duration = Duration::from_secs(366 * 24 * 3600);

impl Engine {
    /// Makes an invite code good for `uses` registrations (1 to [`MAX_INVITE_USES`])
    /// until `valid_for` from now (1 minute to [`MAX_INVITE_LIFETIME`]), with a note for
    /// the operator (at most 256 characters). Returns the code, shown this once (storage
    /// keeps only its hash), and the invite as stored.
    pub async fn create_invite(
        &self,
        uses: u32,
        valid_for: Duration,
        note: &str,
    ) -> Result<(String, Invite), ErrorBody> {
        create(uses, valid_for, note, self)
            .await
            .map_err(ApiError::into_body)
    }

    /// Every invite, newest first (used up and expired ones too, until withdrawn).
    pub async fn invites(&self) -> Result<Vec<Invite>, ErrorBody> {
        self.shared
            .storage
            .invites()
            .await
            .map_err(|e| ApiError::from(e).into_body())
    }

    /// Withdraws an invite by its id: its code admits nobody from now on. Whether there
    /// was one.
    pub async fn revoke_invite(&self, id: &str) -> Result<bool, ErrorBody> {
        self.shared
            .storage
            .revoke_invite(id)
            .await
            .map_err(|e| ApiError::from(e).into_body())
    }
}

async fn create(
    uses: u32,
    valid_for: Duration,
    note: &str,
    engine: &Engine,
) -> ApiResult<(String, Invite)> {
    if !(1..=MAX_INVITE_USES).contains(&uses) {
        return Err(ApiError::invalid(format!(
            "uses: 1 to {MAX_INVITE_USES} registrations"
        )));
    }
    if !(Duration::from_secs(60)..=MAX_INVITE_LIFETIME).contains(&valid_for) {
        return Err(ApiError::invalid("valid for: 1 minute to 366 days"));
    }
    let note = validate::note(note)?;
    let code = crate::invites::new_code().map_err(|e| {
        tracing::error!(error = %e, "no randomness for an invite code");
        ApiError::internal()
    })?;
    let now = Timestamp::now();
    let lifetime = i64::try_from(valid_for.as_millis()).unwrap_or(i64::MAX);
    let invite = Invite {
        id: crate::invites::invite_id(&code),
        uses_left: uses,
        expires_at: Timestamp(now.0.saturating_add(lifetime)),
        created_at: now,
        note,
    };
    engine.shared.storage.create_invite(invite.clone()).await?;
    Ok((code, invite))
}
