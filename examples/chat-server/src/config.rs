//! The server's settings: command-line flags, each also an environment variable, over an
//! optional TOML file (`--config`), over the defaults.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use serde::Deserialize;

/// Command-line flags. Each can also be set through the environment variable named, or
/// in the TOML file given by `--config` (same names, with `_` for `-`). Flags win over
/// the environment, which wins over the file.
#[derive(Debug, Default, Parser, Deserialize)]
#[command(
    name = "chat-server",
    version,
    about = "An instant-messaging server built on im-core: a web chat page, WebSocket and HTTP/JSON on one port, length-prefixed JSON over TCP on another"
)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Settings {
    /// A TOML file with any of these settings.
    #[arg(long, env = "IM_CONFIG")]
    #[serde(skip)]
    pub(crate) config: Option<PathBuf>,

    /// Address for the web page, WebSocket (`/ws`) and HTTP API (`/v1`) [default: 127.0.0.1:8080].
    #[arg(long, env = "IM_HTTP_LISTEN")]
    pub(crate) http: Option<String>,

    /// Address for `/healthz` and `/metrics` alone (a private one, say); without it they
    /// are served on the `--http` address.
    #[arg(long, env = "IM_ADMIN_LISTEN")]
    pub(crate) admin: Option<String>,

    /// Address for the TCP transport (4-byte length-prefixed frames) [default: 127.0.0.1:7100].
    #[arg(long, env = "IM_TCP_LISTEN")]
    pub(crate) tcp: Option<String>,

    /// Where data is kept: a SQLite file (`sqlite://path?mode=rwc`), PostgreSQL
    /// (`postgres://…`), MySQL/MariaDB (`mysql://…`), or `memory` for nothing kept
    /// [default: sqlite://im-chat.db?mode=rwc].
    #[arg(long, env = "IM_DATABASE_URL")]
    pub(crate) database: Option<String>,

    /// Most connections this process opens to a PostgreSQL or MySQL database. Every node
    /// of a cluster opens its own: keep nodes × pool under the server's connection limit
    /// (PostgreSQL's max_connections, 100 by default) [default: 32].
    #[arg(long, env = "IM_DATABASE_POOL")]
    pub(crate) database_pool: Option<u32>,

    /// Directory for uploaded files [default: im-uploads].
    #[arg(long, env = "IM_UPLOADS_DIR")]
    pub(crate) uploads: Option<PathBuf>,

    /// Redis URL for cluster mode (several nodes sharing presence and delivery):
    /// `redis://host:port`, or `redis-cluster://host:port` for a Redis Cluster. Needs a
    /// database every node shares (PostgreSQL or MySQL).
    #[arg(long, env = "IM_REDIS_URL")]
    pub(crate) redis: Option<String>,

    /// The prefix of this cluster's Redis keys and channels, so that several clusters can
    /// share one Redis [default: im].
    #[arg(long, env = "IM_REDIS_PREFIX")]
    pub(crate) redis_prefix: Option<String>,

    /// This node's id in a cluster: 1 to 64 letters, digits, `.`, `_` or `-`, unique
    /// among the running nodes. Give a restarted node its old id (a StatefulSet's pod
    /// name, say) and it takes down what its earlier process left in Redis at once
    /// [default: a random id per start].
    #[arg(long, env = "IM_NODE_ID")]
    pub(crate) node_id: Option<String>,

    /// Let anyone message anyone who has not blocked them, not only friends.
    #[arg(long, env = "IM_OPEN_DIRECT_MESSAGES", num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub(crate) open_direct_messages: Option<bool>,

    /// Largest group [default: 2000].
    #[arg(long, env = "IM_MAX_GROUP_MEMBERS")]
    pub(crate) max_group_members: Option<usize>,

    /// Largest frame in bytes, on every transport [default: 65536].
    #[arg(long, env = "IM_MAX_FRAME_BYTES")]
    pub(crate) max_frame_bytes: Option<usize>,

    /// Largest upload in bytes [default: 5242880].
    #[arg(long, env = "IM_MAX_UPLOAD_BYTES")]
    pub(crate) max_upload_bytes: Option<u64>,

    /// Uploads one user may make per minute; 0 for no limit [default: 30].
    #[arg(long, env = "IM_UPLOADS_PER_MINUTE")]
    pub(crate) uploads_per_minute: Option<u32>,

    /// Origins allowed to open a WebSocket, comma-separated (any if not given). Set it
    /// to the page's public origin (`https://chat.example.com`) in production.
    #[arg(long, env = "IM_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub(crate) allowed_origins: Option<Vec<String>>,

    /// Most sessions one user may have at once, on all devices [default: 5].
    #[arg(long, env = "IM_MAX_SESSIONS")]
    pub(crate) max_sessions: Option<usize>,

    /// Most sessions one user may have on mobile devices (unlimited if not given).
    #[arg(long, env = "IM_MAX_MOBILE_SESSIONS")]
    pub(crate) max_mobile_sessions: Option<usize>,

    /// Refuse a login over the session limits instead of closing the oldest session.
    #[arg(long, env = "IM_REFUSE_NEW_SESSIONS", num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub(crate) refuse_new_sessions: Option<bool>,

    /// Seconds a user's last device must be gone before friends see them offline [default: 5].
    #[arg(long, env = "IM_PRESENCE_GRACE_SECS")]
    pub(crate) presence_grace_secs: Option<u64>,

    /// Seconds a device's presence lease lasts; a node refreshes its leases every third of
    /// it, and a killed node's users are announced offline by another node about a lease
    /// after its last refresh [default: 30].
    #[arg(long, env = "IM_PRESENCE_TTL_SECS")]
    pub(crate) presence_ttl_secs: Option<u64>,

    /// Seconds after sending during which a sender may recall a message [default: 120].
    #[arg(long, env = "IM_RECALL_WINDOW_SECS")]
    pub(crate) recall_window_secs: Option<u64>,

    /// Seconds after sending during which a sender may edit a message [default: 900].
    #[arg(long, env = "IM_EDIT_WINDOW_SECS")]
    pub(crate) edit_window_secs: Option<u64>,

    /// Messages one user may send per second, sustained; 0 for no limit [default: the
    /// engine's, 20].
    #[arg(long, env = "IM_SENDS_PER_SECOND")]
    pub(crate) sends_per_second: Option<u32>,

    /// Messages one user may send in a burst above the sustained rate [default: the
    /// engine's, 100].
    #[arg(long, env = "IM_SEND_BURST")]
    pub(crate) send_burst: Option<u32>,

    /// Login attempts per username and address per minute; 0 for no limit [default: the
    /// engine's, 10].
    #[arg(long, env = "IM_LOGINS_PER_MINUTE")]
    pub(crate) logins_per_minute: Option<u32>,

    /// Login and registration attempts per address per minute; 0 for no limit [default:
    /// the engine's, 60].
    #[arg(long, env = "IM_AUTH_PER_ADDRESS_PER_MINUTE")]
    pub(crate) auth_per_address_per_minute: Option<u32>,

    /// Argon2id memory per password hash, in KiB [default: the engine's, 19456]. Lower
    /// only for tests and benchmarks: it is what makes stolen hashes slow to crack.
    #[arg(long, env = "IM_HASH_MEMORY_KIB")]
    pub(crate) hash_memory_kib: Option<u32>,

    /// Argon2id passes per password hash [default: the engine's, 2].
    #[arg(long, env = "IM_HASH_ITERATIONS")]
    pub(crate) hash_iterations: Option<u32>,

    /// Frames queued per session before it must catch up through sync [default: the
    /// engine's].
    #[arg(long, env = "IM_SESSION_QUEUE")]
    pub(crate) session_queue: Option<usize>,

    /// Log filter, in `tracing` syntax (`info`, `im_core=debug,info`) [default: info].
    #[arg(long, env = "RUST_LOG")]
    pub(crate) log: Option<String>,
}

/// Every setting with its value decided.
#[derive(Debug)]
pub(crate) struct Resolved {
    pub(crate) http: String,
    pub(crate) admin: Option<String>,
    pub(crate) tcp: String,
    pub(crate) database: String,
    pub(crate) database_pool: u32,
    pub(crate) uploads: PathBuf,
    pub(crate) redis: Option<String>,
    pub(crate) redis_prefix: String,
    pub(crate) node_id: Option<String>,
    pub(crate) open_direct_messages: bool,
    pub(crate) max_group_members: usize,
    pub(crate) max_frame_bytes: usize,
    pub(crate) max_upload_bytes: u64,
    pub(crate) uploads_per_minute: u32,
    pub(crate) allowed_origins: Option<Vec<String>>,
    pub(crate) max_sessions: usize,
    pub(crate) max_mobile_sessions: Option<usize>,
    pub(crate) refuse_new_sessions: bool,
    pub(crate) presence_grace_secs: u64,
    pub(crate) presence_ttl_secs: u64,
    pub(crate) recall_window_secs: u64,
    pub(crate) edit_window_secs: u64,
    pub(crate) sends_per_second: Option<u32>,
    pub(crate) send_burst: Option<u32>,
    pub(crate) logins_per_minute: Option<u32>,
    pub(crate) auth_per_address_per_minute: Option<u32>,
    pub(crate) hash_memory_kib: Option<u32>,
    pub(crate) hash_iterations: Option<u32>,
    pub(crate) session_queue: Option<usize>,
    pub(crate) log: String,
}

impl Settings {
    /// Reads the flags and environment, then the file they name, if any.
    pub(crate) fn load() -> anyhow::Result<Resolved> {
        let flags = Settings::parse();
        let file = match &flags.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                toml::from_str::<Settings>(&text)
                    .with_context(|| format!("parsing {}", path.display()))?
            }
            None => Settings::default(),
        };
        Ok(flags.over(file))
    }

    /// These settings, falling back to `file`'s, then to the defaults.
    pub(crate) fn over(self, file: Settings) -> Resolved {
        Resolved {
            http: self
                .http
                .or(file.http)
                .unwrap_or_else(|| "127.0.0.1:8080".into()),
            admin: self.admin.or(file.admin),
            tcp: self
                .tcp
                .or(file.tcp)
                .unwrap_or_else(|| "127.0.0.1:7100".into()),
            database: self
                .database
                .or(file.database)
                .unwrap_or_else(|| "sqlite://im-chat.db?mode=rwc".into()),
            database_pool: self
                .database_pool
                .or(file.database_pool)
                .unwrap_or(im_store::DEFAULT_SQL_POOL),
            uploads: self
                .uploads
                .or(file.uploads)
                .unwrap_or_else(|| "im-uploads".into()),
            redis: self.redis.or(file.redis),
            redis_prefix: self
                .redis_prefix
                .or(file.redis_prefix)
                .unwrap_or_else(|| "im".into()),
            node_id: self.node_id.or(file.node_id),
            open_direct_messages: self
                .open_direct_messages
                .or(file.open_direct_messages)
                .unwrap_or(false),
            max_group_members: self
                .max_group_members
                .or(file.max_group_members)
                .unwrap_or(2000),
            max_frame_bytes: self
                .max_frame_bytes
                .or(file.max_frame_bytes)
                .unwrap_or(64 * 1024),
            max_upload_bytes: self
                .max_upload_bytes
                .or(file.max_upload_bytes)
                .unwrap_or(5 * 1024 * 1024),
            uploads_per_minute: self
                .uploads_per_minute
                .or(file.uploads_per_minute)
                .unwrap_or(30),
            allowed_origins: self.allowed_origins.or(file.allowed_origins),
            max_sessions: self.max_sessions.or(file.max_sessions).unwrap_or(5),
            max_mobile_sessions: self.max_mobile_sessions.or(file.max_mobile_sessions),
            refuse_new_sessions: self
                .refuse_new_sessions
                .or(file.refuse_new_sessions)
                .unwrap_or(false),
            presence_grace_secs: self
                .presence_grace_secs
                .or(file.presence_grace_secs)
                .unwrap_or(5),
            presence_ttl_secs: self
                .presence_ttl_secs
                .or(file.presence_ttl_secs)
                .unwrap_or(30)
                .max(1),
            recall_window_secs: self
                .recall_window_secs
                .or(file.recall_window_secs)
                .unwrap_or(120),
            edit_window_secs: self
                .edit_window_secs
                .or(file.edit_window_secs)
                .unwrap_or(900),
            sends_per_second: self.sends_per_second.or(file.sends_per_second),
            send_burst: self.send_burst.or(file.send_burst),
            logins_per_minute: self.logins_per_minute.or(file.logins_per_minute),
            auth_per_address_per_minute: self
                .auth_per_address_per_minute
                .or(file.auth_per_address_per_minute),
            hash_memory_kib: self.hash_memory_kib.or(file.hash_memory_kib),
            hash_iterations: self.hash_iterations.or(file.hash_iterations),
            session_queue: self.session_queue.or(file.session_queue),
            log: self.log.or(file.log).unwrap_or_else(|| "info".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_which_wins_over_defaults() {
        let file: Settings = toml::from_str(
            "http = \"0.0.0.0:80\"\ntcp = \"0.0.0.0:7000\"\nmax_upload_bytes = 10\nallowed_origins = [\"https://a.example\"]\n",
        )
        .unwrap();
        let flags = Settings::parse_from(["chat-server", "--http", "127.0.0.1:1"]);
        let resolved = flags.over(file);
        assert_eq!(resolved.http, "127.0.0.1:1");
        assert_eq!(resolved.tcp, "0.0.0.0:7000");
        assert_eq!(resolved.max_upload_bytes, 10);
        assert_eq!(
            resolved.allowed_origins,
            Some(vec!["https://a.example".to_owned()])
        );
        assert_eq!(resolved.database, "sqlite://im-chat.db?mode=rwc");
    }

    #[test]
    fn unknown_file_settings_are_refused() {
        assert!(toml::from_str::<Settings>("htpp = \"x\"").is_err());
    }
}
