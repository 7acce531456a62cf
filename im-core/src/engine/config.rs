use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::limits::RateLimits;
use crate::auth::HashCost;

/// Who may start a direct conversation with whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DirectPolicy {
    /// Only friends may message each other (and add each other to groups).
    #[default]
    FriendsOnly,
    /// Anyone may message anyone who has not blocked them.
    Anyone,
}

/// The engine's limits and policies. Every field has a production default; set what you
/// need with the `with_*` methods or deserialize it from your app's config file
/// (durations are in milliseconds there).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EngineConfig {
    /// Reported to clients in the `hello` reply.
    pub server_name: String,
    /// Frames queued per session before it counts as lagging. Default 1024.
    pub session_queue: usize,
    /// Most frames written per flush. Default 256.
    pub max_write_batch: usize,
    /// A session whose socket accepts no bytes for this long is closed. Default 10 s.
    #[serde(with = "millis")]
    pub write_timeout: Duration,
    /// A connection that sends nothing (not even `ping`) for this long is closed, so dead
    /// peers are noticed. Announced in the `hello` reply; clients ping at a third of it.
    /// Default 90 s.
    #[serde(with = "millis")]
    pub idle_timeout: Duration,
    /// How long a device token stays valid after login. Default 30 days.
    #[serde(with = "millis")]
    pub token_ttl: Duration,
    /// Presence lease; refreshed at a third of it. Default 30 s.
    #[serde(with = "millis")]
    pub presence_ttl: Duration,
    /// Argon2id cost for new password hashes.
    pub hash_cost: HashCost,
    /// Who may message whom directly.
    pub direct_policy: DirectPolicy,
    /// Largest group. Default 2000.
    pub max_group_members: usize,
    /// Most friends a user may have. Default 5000.
    pub max_friends: usize,
    /// Login, registration and send rates.
    pub rate_limits: RateLimits,
    /// Largest message body in bytes (text, URLs, custom JSON). Default 16 KiB.
    pub max_body_bytes: usize,
    /// Largest frame the engine expects, reported in `hello`; transports enforce it.
    /// Default 64 KiB.
    pub max_frame_bytes: usize,
    /// History page when the client asks for none. Default 50.
    pub default_page: u32,
    /// Largest history page. Default 200.
    pub max_page: u32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            server_name: concat!("im-core/", env!("CARGO_PKG_VERSION")).to_owned(),
            session_queue: 1024,
            max_write_batch: 256,
            write_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(90),
            token_ttl: Duration::from_secs(30 * 24 * 3600),
            presence_ttl: Duration::from_secs(30),
            hash_cost: HashCost::default(),
            direct_policy: DirectPolicy::default(),
            max_group_members: 2000,
            max_friends: 5000,
            rate_limits: RateLimits::default(),
            max_body_bytes: 16 * 1024,
            max_frame_bytes: 64 * 1024,
            default_page: 50,
            max_page: 200,
        }
    }
}

macro_rules! setter {
    ($(#[$doc:meta])* $name:ident, $field:ident: $ty:ty) => {
        $(#[$doc])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.$field = value;
            self
        }
    };
}

impl EngineConfig {
    setter!(
        /// Sets [`session_queue`](Self::session_queue).
        with_session_queue, session_queue: usize
    );
    setter!(
        /// Sets [`write_timeout`](Self::write_timeout).
        with_write_timeout, write_timeout: Duration
    );
    setter!(
        /// Sets [`idle_timeout`](Self::idle_timeout).
        with_idle_timeout, idle_timeout: Duration
    );
    setter!(
        /// Sets [`token_ttl`](Self::token_ttl).
        with_token_ttl, token_ttl: Duration
    );
    setter!(
        /// Sets [`presence_ttl`](Self::presence_ttl).
        with_presence_ttl, presence_ttl: Duration
    );
    setter!(
        /// Sets [`hash_cost`](Self::hash_cost).
        with_hash_cost, hash_cost: HashCost
    );
    setter!(
        /// Sets [`direct_policy`](Self::direct_policy).
        with_direct_policy, direct_policy: DirectPolicy
    );
    setter!(
        /// Sets [`max_group_members`](Self::max_group_members).
        with_max_group_members, max_group_members: usize
    );
    setter!(
        /// Sets [`max_friends`](Self::max_friends).
        with_max_friends, max_friends: usize
    );
    setter!(
        /// Sets [`rate_limits`](Self::rate_limits).
        with_rate_limits, rate_limits: RateLimits
    );
    setter!(
        /// Sets [`max_body_bytes`](Self::max_body_bytes).
        with_max_body_bytes, max_body_bytes: usize
    );
    setter!(
        /// Sets [`max_frame_bytes`](Self::max_frame_bytes).
        with_max_frame_bytes, max_frame_bytes: usize
    );
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}
