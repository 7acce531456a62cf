//! What an operator does to accounts and sessions: the engine's side of an admin API.
//! These calls trust their caller (there is no session behind them); put them behind the
//! app's own authentication, as the example server's admin routes do with a token.
//!
//! ```
//! # tokio_test_block_on(async {
//! use im_core::model::UserId;
//! let engine = im_core::Engine::builder().start().await.unwrap();
//! // Nobody registered yet: the user is not found.
//! let missing = engine.disable_user(UserId(7)).await.unwrap_err();
//! assert_eq!(missing.code, im_core::protocol::ErrorCode::NotFound);
//! assert!(engine.sessions().is_empty());
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
//! # }
//! ```

use super::error::{ApiError, ApiResult};
use super::{Engine, Shared, validate};
use crate::model::{DeviceId, Platform, Timestamp, UserId};
use crate::protocol::{ErrorBody, KickCode};
use crate::storage::StorageError;

/// One session on this node, as [`Engine::sessions`] lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SessionInfo {
    /// Whose session.
    pub user: UserId,
    /// On which device.
    pub device: DeviceId,
    /// The device's platform.
    pub platform: Platform,
    /// When it began.
    pub since: Timestamp,
}

impl Engine {
    /// Disables an account: its devices are signed out (their tokens stop working and
    /// their sessions, on every node, are closed with `kicked: disabled`), and logins
    /// are refused with `forbidden` until [`enable_user`](Self::enable_user). Its
    /// messages, groups and friendships stay. `Ok(false)` if it was disabled already.
    pub async fn disable_user(&self, user: UserId) -> Result<bool, ErrorBody> {
        self.shared
            .disable_user(user)
            .await
            .map_err(ApiError::into_body)
    }

    /// Enables a disabled account: its user may log in again. `Ok(false)` if it was
    /// enabled already.
    pub async fn enable_user(&self, user: UserId) -> Result<bool, ErrorBody> {
        self.shared
            .storage
            .set_disabled(user, false)
            .await
            .map_err(|e| ApiError::from(e).into_body())
    }

    /// Whether an account is disabled.
    pub async fn is_disabled(&self, user: UserId) -> Result<bool, ErrorBody> {
        self.shared
            .storage
            .is_disabled(user)
            .await
            .map_err(|e| ApiError::from(e).into_body())
    }

    /// Sets a new password for a user (the same rules as `change_password`: 8 to 256
    /// characters) and signs out every device, as a change of one's own password does
    /// (`kicked: password_changed`).
    pub async fn reset_password(&self, user: UserId, password: &str) -> Result<(), ErrorBody> {
        self.shared
            .reset_password(user, password)
            .await
            .map_err(ApiError::into_body)
    }

    /// Signs a user's device out: its token stops working and its sessions, on every
    /// node, are closed with `kicked: revoked`. `not_found` if the user has no such
    /// device.
    pub async fn sign_out_device(&self, user: UserId, device: &DeviceId) -> Result<(), ErrorBody> {
        let shared = &self.shared;
        match shared.storage.delete_device(user, device).await {
            Ok(true) => {}
            Ok(false) | Err(StorageError::NotFound(_)) => {
                return Err(ApiError::not_found("no such device").into_body());
            }
            Err(e) => return Err(ApiError::from(e).into_body()),
        }
        shared
            .kick(user, Some(device), None, None, KickCode::Revoked)
            .await;
        Ok(())
    }

    /// The sessions on this node now, oldest first. In a cluster each node lists its
    /// own.
    pub fn sessions(&self) -> Vec<SessionInfo> {
        let mut sessions: Vec<SessionInfo> = self
            .shared
            .sessions
            .all()
            .iter()
            .map(|s| SessionInfo {
                user: s.user,
                device: s.device.clone(),
                platform: s.platform,
                since: s.since,
            })
            .collect();
        sessions.sort_by_key(|s| (s.since, s.user));
        sessions
    }
}

impl Shared {
    async fn disable_user(&self, user: UserId) -> ApiResult<bool> {
        let changed = self.storage.set_disabled(user, true).await?;
        // Even if it was disabled already: a device that slipped in is signed out too.
        self.sign_out_everywhere(user, KickCode::Disabled).await?;
        Ok(changed)
    }

    async fn reset_password(&self, user: UserId, password: &str) -> ApiResult<()> {
        validate::password(password)?;
        // Exists? (Before the hash is computed for nothing.)
        self.storage.user(user).await?;
        let password = password.to_owned();
        let hash = self.hash_password(password).await?;
        self.storage.set_password_hash(user, hash).await?;
        self.sign_out_everywhere(user, KickCode::PasswordChanged)
            .await
    }

    /// Deletes every device of a user and closes their sessions on every node. A login
    /// that checked its password before and stores its device after is caught by its own
    /// look afterwards (`password_unchanged`), which finds the account disabled or the
    /// password changed.
    async fn sign_out_everywhere(&self, user: UserId, code: KickCode) -> ApiResult<()> {
        for record in self.storage.devices(user).await? {
            self.storage.delete_device(user, &record.device.id).await?;
        }
        self.kick(user, None, None, None, code).await;
        Ok(())
    }
}
