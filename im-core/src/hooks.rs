//! Hooks: where an app plugs its own behaviour into the engine.
//!
//! Implement [`Hooks`] (every method has a no-op default) and pass it to
//! [`EngineBuilder::hooks`](crate::EngineBuilder::hooks). Typical uses: send push
//! notifications to recipients who are offline, keep an audit log, and accept the app's
//! own login tokens (a JWT from an existing login) in `resume`.
//!
//! ```
//! use async_trait::async_trait;
//! use im_core::hooks::{AppIdentity, Hooks};
//! use im_core::model::{DeviceId, Message, Platform, UserId};
//!
//! #[derive(Debug)]
//! struct PushNotifications;
//!
//! #[async_trait]
//! impl Hooks for PushNotifications {
//!     async fn on_message_stored(&self, message: &Message, offline: &[UserId]) {
//!         for user in offline {
//!             // Hand off to APNs/FCM here; keep it quick or spawn.
//!             println!("notify {user} of message {} in {}", message.seq, message.conversation);
//!         }
//!     }
//!
//!     async fn authenticate(&self, token: &str) -> Option<AppIdentity> {
//!         // Verify the app's own token (a JWT, say) and say who it names.
//!         let user = token.strip_prefix("app:")?.parse().ok()?;
//!         Some(AppIdentity {
//!             user: UserId(user),
//!             device: DeviceId::new("app-session").ok()?,
//!             platform: Platform::Web,
//!         })
//!     }
//! }
//! ```

use std::fmt;

use async_trait::async_trait;

use crate::model::{DeviceId, Message, Platform, Timestamp, UserId};
use crate::transport::PeerInfo;

/// Who an app token names, as [`Hooks::authenticate`] decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppIdentity {
    /// The user (must exist in storage).
    pub user: UserId,
    /// The device the session is for.
    pub device: DeviceId,
    /// The kind of device.
    pub platform: Platform,
}

/// The engine's hooks. Every method has a no-op default.
///
/// Hooks are awaited on the connection's task, in order, so a slow hook slows that
/// connection (never the fan-out to others): do the quick part here and spawn the rest.
#[async_trait]
pub trait Hooks: Send + Sync + fmt::Debug {
    /// A message (including a group's system message) was stored and pushed. `offline`
    /// lists the recipients, never the sender, who had no device online on any node:
    /// where push notifications go. Not called for retries of a stored message.
    async fn on_message_stored(&self, message: &Message, offline: &[UserId]) {
        let _ = (message, offline);
    }

    /// Whether [`on_message_stored`](Self::on_message_stored) uses its `offline` list.
    /// Working it out costs a look at every member of a group for each message; return
    /// `false` if the hook does not use it, and it gets an empty list. Default `true`.
    fn wants_offline_recipients(&self) -> bool {
        true
    }

    /// A user's first device came online (not said again for a reconnect within the
    /// presence grace period).
    async fn on_online(&self, user: UserId) {
        let _ = user;
    }

    /// A user's last device went offline and stayed away for the presence grace period;
    /// `last_seen` is when it left.
    async fn on_offline(&self, user: UserId, last_seen: Timestamp) {
        let _ = (user, last_seen);
    }

    /// A connection was opened.
    async fn on_connect(&self, peer: &PeerInfo) {
        let _ = peer;
    }

    /// A connection closed; `user` is who it was logged in as, if anyone.
    async fn on_disconnect(&self, peer: &PeerInfo, user: Option<UserId>, reason: &str) {
        let _ = (peer, user, reason);
    }

    /// Asked on `resume` with a token that is not one of the engine's own device tokens.
    /// Return who it names to accept it; `None` refuses it (`unauthorized`).
    async fn authenticate(&self, token: &str) -> Option<AppIdentity> {
        let _ = token;
        None
    }
}

/// The hooks of an engine that was given none.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoHooks;

impl Hooks for NoHooks {
    fn wants_offline_recipients(&self) -> bool {
        false
    }
}
