//! Registration, login, tokens, devices and passwords.

use std::sync::Arc;

use super::Shared;
use super::connection::Conn;
use super::device_policy::Admission;
use super::error::{ApiError, ApiResult};
use super::fanout::{Outgoing, Recipients};
use super::session::SessionHandle;
use super::validate;
use crate::auth::{issue_token, parse_token, token_hash_matches};
use crate::gate::{LoginAttempt, Registration};
use crate::model::{Device, DeviceId, Platform, Timestamp, User, UserId};
use crate::protocol::{DeviceInfo, Event, KickCode, ServerFrame, reply, request};
use crate::storage::{DeviceRecord, NewUser, ProfileChange, StorageError};
use crate::transport::PeerInfo;

const WRONG_CREDENTIALS: &str = "wrong username or password";
const BAD_TOKEN: &str = "the token is invalid, revoked or expired";
const DISABLED: &str = "this account is disabled";

impl Shared {
    /// Runs a password hash or check on the blocking pool: Argon2 takes tens of
    /// milliseconds of CPU by design and must not stall a runtime worker.
    ///
    /// At most [`EngineConfig::max_concurrent_hashes`](super::EngineConfig) run at once;
    /// the rest wait their turn for up to [`EngineConfig::hash_queue_timeout`](super::EngineConfig)
    /// and are then answered `rate_limited`. Each hash holds its memory cost (19 MiB by
    /// default) while it runs: unbounded, a flood of logins held hundreds of them at
    /// once (measured: 3.7 GB), and the allocator kept most of it afterwards.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&crate::auth::PasswordHasher) -> T + Send + 'static,
    ) -> ApiResult<T> {
        let wait = self.config.hash_queue_timeout;
        let permit = match tokio::time::timeout(wait, self.hashing.clone().acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => return Err(ApiError::internal()),
            Err(_) => {
                metrics::counter!("im_hash_queue_timeouts_total").increment(1);
                return Err(ApiError::rate_limited(
                    "too many logins at once; try again shortly",
                    wait,
                ));
            }
        };
        let hasher = self.hasher.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f(&hasher)
        })
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "password hashing task failed");
            ApiError::internal()
        })
    }

    pub(super) async fn register(
        &self,
        peer: &PeerInfo,
        request: request::Register,
    ) -> ApiResult<reply::User> {
        let request::Register {
            username,
            password,
            display_name,
            avatar,
            proof,
            contact,
        } = request;
        self.limits.address(conn_ip(peer))?;
        let username = validate::username(&username)?;
        validate::password(&password)?;
        let display_name = validate::name("display_name", &display_name)?;
        if let Some(avatar) = &avatar {
            validate::url("avatar", avatar)?;
            self.not_an_upload(avatar).await?;
        }
        validate::proof(proof.as_deref())?;
        if let Some(contact) = &contact {
            validate::contact(contact)?;
        }
        // From the gate's admission to its `registered` or `abandoned`, in a task of its
        // own: a client that goes away meanwhile cannot leave a proof used up (an
        // invite's use, a code) by an account that was never made.
        let shared = self.this.upgrade().ok_or_else(ApiError::internal)?;
        let peer = peer.clone();
        let created = tokio::spawn(async move {
            let registration = Registration {
                username: &username,
                display_name: &display_name,
                proof: proof.as_deref(),
                contact: contact.as_deref(),
                peer: &peer,
            };
            shared
                .gate
                .admit(&registration)
                .await
                .map_err(ApiError::from_gate)?;
            let created = shared
                .create_account(&username, &display_name, avatar, password)
                .await;
            match &created {
                Ok(user) => shared.gate.registered(user, &registration).await,
                Err(_) => shared.gate.abandoned(&registration).await,
            }
            created
        })
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "a registration task failed");
            ApiError::internal()
        })??;
        Ok(reply::User { user: created })
    }

    /// Hashes a new password on the blocking pool.
    pub(super) async fn hash_password(&self, password: String) -> ApiResult<String> {
        self.blocking(move |h| h.hash(&password))
            .await?
            .map_err(|e| {
                tracing::error!(error = %e, "password hashing failed");
                ApiError::internal()
            })
    }

    /// Sends a verification code through the gate, after the per-address limit.
    pub(super) async fn send_code(
        &self,
        peer: &PeerInfo,
        request: request::SendCode,
    ) -> ApiResult<reply::Done> {
        self.limits.address(conn_ip(peer))?;
        validate::contact(&request.contact)?;
        self.gate
            .send_code(request.contact.trim(), peer)
            .await
            .map_err(ApiError::from_gate)?;
        Ok(reply::Done {})
    }

    /// Hashes the password and stores the new user.
    async fn create_account(
        &self,
        username: &str,
        display_name: &str,
        avatar: Option<String>,
        password: String,
    ) -> ApiResult<User> {
        let hash = self.hash_password(password).await?;
        let user = self
            .storage
            .create_user(NewUser {
                username: username.to_owned(),
                display_name: display_name.to_owned(),
                avatar,
                password_hash: hash,
                created_at: Timestamp::now(),
            })
            .await
            .map_err(|e| match e {
                StorageError::Conflict(_) => ApiError::conflict("username is taken"),
                e => e.into(),
            })?;
        Ok(user)
    }

    pub(super) async fn login(
        &self,
        conn: &mut Conn,
        request: request::Login,
    ) -> ApiResult<reply::Session> {
        if conn.session.is_some() {
            return Err(ApiError::conflict("already logged in on this connection"));
        }
        let request::Login {
            username,
            password,
            device,
            proof,
        } = request;
        let login = self
            .check_login(&conn.peer, &username, &password, &device, proof.as_deref())
            .await?;
        let user = login.user.id;
        let admission = self.admit(user, &device.id, device.platform).await?;
        self.storage.put_device(login.record.clone()).await?;
        self.attach(conn, user, device.id, device.platform, admission)
            .await;
        if let Err(e) = self.password_unchanged(&login).await {
            if let Some(session) = conn.session.take() {
                self.end_session(&session).await;
            }
            return Err(e);
        }
        Ok(login.into_reply())
    }

    /// Fails when the password a login checked is no longer the user's, or the account
    /// was disabled meanwhile, after deleting the device the login stored. Called once
    /// the device is stored (and, on a connection, its session attached): a password
    /// change or a disable that ran between the check and now signed out every device
    /// before this one was there to be signed out, and one that runs after this look
    /// will find it.
    pub(super) async fn password_unchanged(&self, login: &CheckedLogin) -> ApiResult<()> {
        let user = login.user.id;
        let disabled = self.storage.is_disabled(user).await?;
        if !disabled && self.storage.password_hash(user).await? == login.checked_hash {
            return Ok(());
        }
        let device = &login.record.device.id;
        // Only the record this login stored: a newer login of the same device stays.
        match self.storage.device(user, device).await {
            Ok(stored) if stored.token_hash == login.record.token_hash => {
                self.storage.delete_device(user, device).await?;
            }
            Ok(_) | Err(StorageError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        if disabled {
            return Err(ApiError::forbidden(DISABLED));
        }
        Err(ApiError::unauthorized(
            "the password was changed while logging in; log in again",
        ))
    }

    /// Checks a login's credentials and makes the device record and token it would
    /// store. Nothing is stored yet.
    pub(super) async fn check_login(
        &self,
        peer: &PeerInfo,
        username: &str,
        password: &str,
        device: &DeviceInfo,
        proof: Option<&str>,
    ) -> ApiResult<CheckedLogin> {
        self.limits.login(username, conn_ip(peer))?;
        validate::proof(proof)?;
        let device_name = if device.name.trim().is_empty() {
            platform_name(device.platform).to_owned()
        } else {
            validate::name("device.name", &device.name)?
        };
        // Unknown users are checked against a dummy hash so that timing does not tell
        // which usernames exist.
        let (user, stored) = match validate::username(username) {
            Ok(name) => match self.storage.user_by_name(&name).await {
                Ok(user) => {
                    let hash = self.storage.password_hash(user.id).await?;
                    (Some(user), hash)
                }
                Err(StorageError::NotFound(_)) => (None, self.dummy_hash.clone()),
                Err(e) => return Err(e.into()),
            },
            Err(_) => (None, self.dummy_hash.clone()),
        };
        let password = password.to_owned();
        let checked_hash = stored.clone();
        let ok = self.blocking(move |h| h.verify(&password, &stored)).await?;
        let user = match (user, ok) {
            (Some(user), true) => user,
            _ => return Err(ApiError::unauthorized(WRONG_CREDENTIALS)),
        };
        // Only now, so that neither a disabled account nor a second factor is revealed to
        // who lacks the password.
        if self.storage.is_disabled(user.id).await? {
            return Err(ApiError::forbidden(DISABLED));
        }
        self.gate
            .check_login(&LoginAttempt {
                user: &user,
                device: &device.id,
                platform: device.platform,
                proof,
                peer,
            })
            .await
            .map_err(ApiError::from_gate)?;

        let issued = issue_token(user.id, &device.id).map_err(|e| {
            tracing::error!(error = %e, "token generation failed");
            ApiError::internal()
        })?;
        let now = Timestamp::now();
        let record = DeviceRecord {
            user: user.id,
            device: Device {
                id: device.id.clone(),
                name: device_name,
                platform: device.platform,
                logged_in_at: now,
                expires_at: now.plus_millis(self.config.token_ttl.as_millis() as i64),
            },
            token_hash: issued.hash,
        };
        Ok(CheckedLogin {
            user,
            record,
            token: issued.token,
            checked_hash,
        })
    }

    pub(super) async fn resume(&self, conn: &mut Conn, token: &str) -> ApiResult<reply::Session> {
        if conn.session.is_some() {
            return Err(ApiError::conflict("already logged in on this connection"));
        }
        let (user, device) = self.verify_token(token).await?;
        let admission = self.admit(user.id, &device.id, device.platform).await?;
        self.attach(conn, user.id, device.id.clone(), device.platform, admission)
            .await;
        // A logout or revoke that ran between the check and the attach has already
        // kicked the device's sessions, before this one was there to be kicked: look
        // again, now that a later revoke would find it.
        if parse_token(token).is_some() && self.verify_token(token).await.is_err() {
            if let Some(session) = conn.session.take() {
                self.end_session(&session).await;
            }
            return Err(ApiError::unauthorized(BAD_TOKEN));
        }
        Ok(reply::Session {
            user,
            device,
            token: None,
        })
    }

    /// Who a token belongs to: one of ours (from `login`), or failing that one the app's
    /// [`Hooks::authenticate`](crate::hooks::Hooks) vouches for. Sessions on an app's
    /// token have no stored device: the app owns their tokens.
    pub(super) async fn verify_token(&self, token: &str) -> ApiResult<(User, Device)> {
        let Some(presented) = parse_token(token) else {
            // Not one of ours: perhaps the app's own (a JWT from its login).
            return self.verify_app_token(token).await;
        };
        let record = match self.storage.device(presented.user, &presented.device).await {
            Ok(record) => record,
            Err(StorageError::NotFound(_)) => return Err(ApiError::unauthorized(BAD_TOKEN)),
            Err(e) => return Err(e.into()),
        };
        if !token_hash_matches(&record.token_hash, &presented.secret_hash)
            || record.device.expires_at <= Timestamp::now()
        {
            return Err(ApiError::unauthorized(BAD_TOKEN));
        }
        let user = self.storage.user(record.user).await?;
        Ok((user, record.device))
    }

    async fn verify_app_token(&self, token: &str) -> ApiResult<(User, Device)> {
        let identity = self
            .hooks
            .authenticate(token)
            .await
            .ok_or(ApiError::unauthorized(BAD_TOKEN))?;
        let user = match self.storage.user(identity.user).await {
            Ok(user) => user,
            Err(StorageError::NotFound(_)) => return Err(ApiError::unauthorized(BAD_TOKEN)),
            Err(e) => return Err(e.into()),
        };
        // The app vouches for the token, not for the account.
        if self.storage.is_disabled(user.id).await? {
            return Err(ApiError::forbidden(DISABLED));
        }
        let now = Timestamp::now();
        let device = Device {
            id: identity.device,
            name: platform_name(identity.platform).to_owned(),
            platform: identity.platform,
            logged_in_at: now,
            expires_at: now.plus_millis(self.config.token_ttl.as_millis() as i64),
        };
        Ok((user, device))
    }

    async fn attach(
        &self,
        conn: &mut Conn,
        user: UserId,
        device: DeviceId,
        platform: Platform,
        admission: Admission,
    ) {
        let session = conn.new_session(self.next_session_id(), user, device, platform);
        // Recorded on the connection before the first await: if the connection task is
        // cancelled mid-way (kicked, shut down), it still ends the session it registered.
        conn.session = Some(session.clone());
        let since = session.since;
        self.begin_session(session).await;
        // Only sessions older than this one: a late kick must not close a newer session
        // of a device that has just come back.
        for device in &admission.kick {
            self.kick(user, Some(device), None, Some(since), KickCode::DeviceLimit)
                .await;
        }
        self.came_online(user, admission.was_online).await;
    }

    pub(super) async fn logout(
        &self,
        conn: &mut Conn,
        me: &Arc<SessionHandle>,
        _: request::Logout,
    ) -> ApiResult<reply::Done> {
        self.storage.delete_device(me.user, &me.device).await?;
        conn.session = None;
        self.end_session(me).await;
        Ok(reply::Done {})
    }

    pub(super) async fn devices(
        &self,
        _: &mut Conn,
        me: &Arc<SessionHandle>,
        _: request::Devices,
    ) -> ApiResult<reply::Devices> {
        let mut devices: Vec<Device> = self
            .storage
            .devices(me.user)
            .await?
            .into_iter()
            .map(|r| r.device)
            .collect();
        devices.sort_by_key(|d| std::cmp::Reverse(d.logged_in_at));
        Ok(reply::Devices { devices })
    }

    pub(super) async fn revoke_device(
        &self,
        conn: &mut Conn,
        me: &Arc<SessionHandle>,
        request: request::RevokeDevice,
    ) -> ApiResult<reply::Done> {
        let device = &request.device;
        if *device == me.device {
            return self.logout(conn, me, request::Logout {}).await;
        }
        if !self.storage.delete_device(me.user, device).await? {
            return Err(ApiError::not_found("no such device"));
        }
        self.kick(me.user, Some(device), None, None, KickCode::Revoked)
            .await;
        Ok(reply::Done {})
    }

    pub(super) async fn change_password(
        &self,
        _: &mut Conn,
        me: &Arc<SessionHandle>,
        request: request::ChangePassword,
    ) -> ApiResult<reply::Done> {
        let request::ChangePassword {
            old_password: old,
            new_password: new,
        } = request;
        validate::password(&new)?;
        let stored = self.storage.password_hash(me.user).await?;
        let hash = self
            .blocking(move |h| h.verify(&old, &stored).then(|| h.hash(&new)))
            .await?
            .ok_or(ApiError::forbidden("the current password is wrong"))?
            .map_err(|e| {
                tracing::error!(error = %e, "password hashing failed");
                ApiError::internal()
            })?;
        self.storage.set_password_hash(me.user, hash).await?;
        self.storage
            .delete_other_devices(me.user, &me.device)
            .await?;
        self.kick(
            me.user,
            None,
            Some(&me.device),
            None,
            KickCode::PasswordChanged,
        )
        .await;
        Ok(reply::Done {})
    }

    pub(super) async fn update_profile(
        &self,
        _: &mut Conn,
        me: &Arc<SessionHandle>,
        request: request::UpdateProfile,
    ) -> ApiResult<reply::User> {
        let request::UpdateProfile {
            display_name,
            avatar,
        } = request;
        let display_name = display_name
            .map(|name| validate::name("display_name", &name))
            .transpose()?;
        let avatar = match avatar {
            None => None,
            Some(url) if url.is_empty() => Some(None),
            Some(url) => {
                validate::url("avatar", &url)?;
                self.not_an_upload(&url).await?;
                Some(Some(url))
            }
        };
        let change = ProfileChange {
            display_name,
            avatar,
        };
        let user = self.storage.update_profile(me.user, change).await?;
        let mut told: Vec<UserId> = self
            .storage
            .friends(me.user)
            .await?
            .iter()
            .map(|f| f.user)
            .collect();
        told.push(me.user);
        let out = Outgoing::new(ServerFrame::Event {
            event: Event::UserUpdated { user: user.clone() },
        });
        self.fan_out(Recipients::Users(&told), me.skip(), &out, false)
            .await;
        Ok(reply::User { user })
    }

    pub(super) async fn find_user(
        &self,
        _: &mut Conn,
        _: &Arc<SessionHandle>,
        request: request::FindUser,
    ) -> ApiResult<reply::User> {
        let name = validate::username(&request.username)
            .map_err(|_| ApiError::not_found("no such user"))?;
        match self.storage.user_by_name(&name).await {
            Ok(user) => Ok(reply::User { user }),
            Err(StorageError::NotFound(_)) => Err(ApiError::not_found("no such user")),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn users(
        &self,
        _: &mut Conn,
        _: &Arc<SessionHandle>,
        request: request::Users,
    ) -> ApiResult<reply::Users> {
        let ids = request.users;
        if ids.len() > 500 {
            return Err(ApiError::too_large("users: at most 500 per request"));
        }
        let users = self.storage.users(&ids).await?;
        Ok(reply::Users { users })
    }
}

/// A login whose password was right: what it stores and answers.
pub(super) struct CheckedLogin {
    pub(super) user: User,
    /// The device record to store.
    pub(super) record: DeviceRecord,
    /// The token the reply carries (only its hash is stored).
    pub(super) token: String,
    /// The password hash the password was checked against (see
    /// [`Shared::password_unchanged`]).
    checked_hash: String,
}

impl CheckedLogin {
    pub(super) fn into_reply(self) -> reply::Session {
        reply::Session {
            user: self.user,
            device: self.record.device,
            token: Some(self.token),
        }
    }
}

/// The peer's IP address, the key of per-address limits.
fn conn_ip(peer: &PeerInfo) -> Option<std::net::IpAddr> {
    peer.addr.map(|a| a.ip())
}

fn platform_name(p: Platform) -> &'static str {
    match p {
        Platform::Mobile => "mobile",
        Platform::Desktop => "desktop",
        Platform::Web => "web",
        Platform::Other => "device",
    }
}
