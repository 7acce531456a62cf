use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::limits::RateLimits;
use crate::auth::HashCost;
use crate::model::Platform;

/// What happens when a login would exceed the [`DevicePolicy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExcessSessions {
    /// The oldest sessions over the limit are closed with a `kicked` frame
    /// (code `device_limit`).
    #[default]
    KickOldest,
    /// The new login fails with `device_limit`.
    RefuseNew,
}

/// How many sessions a user may have at once, across all nodes. Sessions of the same
/// device replace each other and never count twice.
///
/// ```
/// use im_core::engine::{DevicePolicy, ExcessSessions};
/// use im_core::model::Platform;
/// // One phone, one desktop, any number of browsers, ten sessions in all.
/// let policy = DevicePolicy::default()
///     .with_max_sessions(10)
///     .with_platform_limit(Platform::Mobile, 1)
///     .with_platform_limit(Platform::Desktop, 1)
///     .with_on_excess(ExcessSessions::KickOldest);
/// assert_eq!(policy.platform_limit(Platform::Web), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DevicePolicy {
    /// Most sessions per user. Default 5.
    pub max_sessions: usize,
    /// Most sessions per user on one platform; platforms not listed have no own limit.
    pub per_platform: Vec<(Platform, usize)>,
    /// Kick the oldest or refuse the newest. Default: kick the oldest.
    pub on_excess: ExcessSessions,
}

impl Default for DevicePolicy {
    fn default() -> Self {
        DevicePolicy {
            max_sessions: 5,
            per_platform: Vec::new(),
            on_excess: ExcessSessions::KickOldest,
        }
    }
}

impl DevicePolicy {
    /// Sets [`max_sessions`](Self::max_sessions).
    pub fn with_max_sessions(mut self, max: usize) -> Self {
        self.max_sessions = max;
        self
    }

    /// Limits the sessions on one platform.
    pub fn with_platform_limit(mut self, platform: Platform, max: usize) -> Self {
        self.per_platform.retain(|(p, _)| *p != platform);
        self.per_platform.push((platform, max));
        self
    }

    /// Sets [`on_excess`](Self::on_excess).
    pub fn with_on_excess(mut self, on_excess: ExcessSessions) -> Self {
        self.on_excess = on_excess;
        self
    }

    /// The limit for one platform, if it has its own.
    pub fn platform_limit(&self, platform: Platform) -> Option<usize> {
        self.per_platform
            .iter()
            .find(|(p, _)| *p == platform)
            .map(|(_, max)| *max)
    }
}

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
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Reported to clients in the `hello` reply.
    pub server_name: String,
    /// Frames queued per session before it counts as lagging. Default 1024.
    pub session_queue: usize,
    /// Bytes queued per session before it counts as lagging (about: pushes from several
    /// tasks at once may pass it by a frame each). Default 1 MiB: a reader that falls
    /// behind on large frames holds no more than that, where 1,024 frames of the 64 KiB
    /// frame limit would be 64 MiB.
    pub session_queue_bytes: usize,
    /// Most frames written per flush. Default 256.
    pub max_write_batch: usize,
    /// A session whose socket takes longer than this to accept one frame (or one flush of
    /// what the transport buffered) is closed; a slow but steady reader is not, it falls
    /// behind into `resync`. Default 10 s.
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
    /// Password hashes (registrations, logins, password changes) computed at once; each
    /// holds `hash_cost.memory_kib` while it runs. Default: the number of CPUs.
    pub max_concurrent_hashes: usize,
    /// How long a login waits for its turn to hash before it is answered `rate_limited`.
    /// Default 5 s.
    #[serde(with = "millis")]
    pub hash_queue_timeout: Duration,
    /// Who may message whom directly.
    pub direct_policy: DirectPolicy,
    /// Largest group. Default 2000.
    pub max_group_members: usize,
    /// Most friends a user may have. Default 5000.
    pub max_friends: usize,
    /// Most pinned messages in one conversation. Default 50.
    pub max_pins: usize,
    /// Login, registration and send rates.
    pub rate_limits: RateLimits,
    /// Largest message body content in bytes, as JSON encodes it: a text's string
    /// (escapes counted, quotes not), a custom body's `data`, an image's or file's whole
    /// body. Call signals count their whole encoded signal. Default 16 KiB.
    pub max_body_bytes: usize,
    /// Largest frame the engine expects, reported in `hello`; transports enforce it.
    /// Default 64 KiB.
    pub max_frame_bytes: usize,
    /// History page when the client asks for none. Default 50.
    pub default_page: u32,
    /// Largest history page. Default 200.
    pub max_page: u32,
    /// Concurrent sessions per user and platform.
    pub device_policy: DevicePolicy,
    /// A user's friends hear they went offline only after their last device has been
    /// gone this long, so a quick reconnect says nothing. Default 5 s.
    #[serde(with = "millis")]
    pub presence_grace: Duration,
    /// Typing notices are relayed at most once per this interval per user and
    /// conversation. Default 1 s.
    #[serde(with = "millis")]
    pub typing_interval: Duration,
    /// How long a typing indicator shows without a renewal (sent as `expires_ms`).
    /// Default 6 s.
    #[serde(with = "millis")]
    pub typing_expiry: Duration,
    /// How long after sending a sender may recall a message. Default 2 minutes.
    #[serde(with = "millis")]
    pub recall_window: Duration,
    /// How long after sending a sender may edit a message. Default 15 minutes.
    #[serde(with = "millis")]
    pub edit_window: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            server_name: concat!("im-core/", env!("CARGO_PKG_VERSION")).to_owned(),
            session_queue: 1024,
            session_queue_bytes: 1 << 20,
            max_write_batch: 256,
            write_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(90),
            token_ttl: Duration::from_secs(30 * 24 * 3600),
            presence_ttl: Duration::from_secs(30),
            hash_cost: HashCost::default(),
            max_concurrent_hashes: std::thread::available_parallelism().map_or(2, |n| n.get()),
            hash_queue_timeout: Duration::from_secs(5),
            direct_policy: DirectPolicy::default(),
            max_group_members: 2000,
            max_friends: 5000,
            max_pins: 50,
            rate_limits: RateLimits::default(),
            max_body_bytes: 16 * 1024,
            max_frame_bytes: 64 * 1024,
            default_page: 50,
            max_page: 200,
            device_policy: DevicePolicy::default(),
            presence_grace: Duration::from_secs(5),
            typing_interval: Duration::from_secs(1),
            typing_expiry: Duration::from_secs(6),
            recall_window: Duration::from_secs(120),
            edit_window: Duration::from_secs(15 * 60),
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
        /// Sets [`session_queue_bytes`](Self::session_queue_bytes).
        with_session_queue_bytes, session_queue_bytes: usize
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
        /// Sets [`max_concurrent_hashes`](Self::max_concurrent_hashes).
        with_max_concurrent_hashes, max_concurrent_hashes: usize
    );
    setter!(
        /// Sets [`hash_queue_timeout`](Self::hash_queue_timeout).
        with_hash_queue_timeout, hash_queue_timeout: Duration
    );
    setter!(
        /// Sets [`max_write_batch`](Self::max_write_batch).
        with_max_write_batch, max_write_batch: usize
    );
    setter!(
        /// Sets [`server_name`](Self::server_name).
        with_server_name, server_name: String
    );
    setter!(
        /// Sets [`default_page`](Self::default_page).
        with_default_page, default_page: u32
    );
    setter!(
        /// Sets [`max_page`](Self::max_page).
        with_max_page, max_page: u32
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
    setter!(
        /// Sets [`device_policy`](Self::device_policy).
        with_device_policy, device_policy: DevicePolicy
    );
    setter!(
        /// Sets [`presence_grace`](Self::presence_grace).
        with_presence_grace, presence_grace: Duration
    );
    setter!(
        /// Sets [`typing_interval`](Self::typing_interval).
        with_typing_interval, typing_interval: Duration
    );
    setter!(
        /// Sets [`typing_expiry`](Self::typing_expiry).
        with_typing_expiry, typing_expiry: Duration
    );
    setter!(
        /// Sets [`recall_window`](Self::recall_window).
        with_recall_window, recall_window: Duration
    );
    setter!(
        /// Sets [`edit_window`](Self::edit_window).
        with_edit_window, edit_window: Duration
    );
}

/// Serde support for a [`Duration`] written as whole milliseconds, as every duration in
/// the engine's config is: `#[serde(with = "im_core::engine::millis")]`. Reading also
/// takes a human string (`"90s"`, `"2m"`, `"1h 30m"`, `"30days"`, `"250ms"`), which is what
/// an operator writes in a config file.
///
/// ```
/// use im_core::EngineConfig;
/// let config: EngineConfig =
///     serde_json::from_str(r#"{"idle_timeout": "2m", "recall_window": 60000}"#).unwrap();
/// assert_eq!(config.idle_timeout.as_secs(), 120);
/// assert_eq!(config.recall_window.as_secs(), 60);
/// ```
pub mod millis {
    use std::fmt;
    use std::time::Duration;

    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    /// Writes the duration as milliseconds (saturating).
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    /// Reads milliseconds, or a human duration string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_any(MillisOrText)
    }

    /// Parses a duration as an operator writes it: a number with a unit (`"90s"`, `"2m"`,
    /// `"1h 30m"`, `"250ms"`, `"30days"`), or `"0"`. A bare number is refused: seconds
    /// or milliseconds, a reader could not tell.
    pub fn parse(text: &str) -> Result<Duration, String> {
        let text = text.trim();
        if text == "0" {
            return Ok(Duration::ZERO);
        }
        humantime::parse_duration(text)
            .map_err(|e| format!("{e} in {text:?} (a duration needs a unit: 90s, 2m, 1h, 250ms)"))
    }

    struct MillisOrText;

    impl Visitor<'_> for MillisOrText {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("milliseconds, or a duration such as \"90s\" or \"2m\"")
        }

        fn visit_u64<E: de::Error>(self, ms: u64) -> Result<Duration, E> {
            Ok(Duration::from_millis(ms))
        }

        fn visit_i64<E: de::Error>(self, ms: i64) -> Result<Duration, E> {
            u64::try_from(ms)
                .map(Duration::from_millis)
                .map_err(|_| E::custom(format!("a duration cannot be negative: {ms}")))
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
            parse(text).map_err(E::custom)
        }
    }
}
