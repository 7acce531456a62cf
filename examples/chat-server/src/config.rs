//! The server's settings. Each is a TOML key (in the file given by `--config`), a flag
//! and an `IM_*` environment variable; flags win over the environment, which wins over
//! the file, which wins over the defaults. The defaults are the library's own
//! ([`EngineConfig::default`], [`WsConfig::default`]) and this file's [`Config::default`]
//! for what only the server has (addresses, database, logs): no number is written twice.
//!
//! The file mirrors [`Config`]: the server's own keys at the top, the engine's limits
//! and policies under `[engine]` (every field of [`EngineConfig`]), the WebSocket/HTTP
//! gateway's under `[gateway]` (every field of [`WsConfig`]). `--print-config` prints the
//! settings in force in that form, ready to be saved as a file. Durations are
//! milliseconds in the file (`idle_timeout = 90000`) or a string with a unit
//! (`idle_timeout = "90s"`); flags and variables take the string form.

use std::net::ToSocketAddrs as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::builder::{PossibleValuesParser, ValueParser};
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};
use im_core::EngineConfig;
use im_transport_ws::{TrustedProxy, WsConfig};

use crate::registration::RegistrationMode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Every setting of the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Config {
    /// Address of the page, the WebSocket (`/ws`) and the HTTP API (`/v1`).
    pub(crate) http: String,
    /// Address of `/healthz` and `/metrics` alone, if they should not be on `http`.
    pub(crate) admin: Option<String>,
    /// Bearer token of the admin API on `admin`; without it the API is off.
    pub(crate) admin_token: Option<String>,
    /// Address of the TCP transport.
    pub(crate) tcp: String,
    /// Where data is kept: a SQLite, PostgreSQL or MySQL URL, or `memory`.
    pub(crate) database: String,
    /// Most connections to a PostgreSQL or MySQL database.
    pub(crate) database_pool: u32,
    /// Directory for uploaded files.
    pub(crate) uploads: PathBuf,
    /// Redis URL for cluster mode.
    pub(crate) redis: Option<String>,
    /// Prefix of this cluster's Redis keys and channels.
    pub(crate) redis_prefix: String,
    /// This node's id in a cluster.
    pub(crate) node_id: Option<String>,
    /// Log filter, in `tracing` syntax.
    pub(crate) log: String,
    /// How log lines are written.
    pub(crate) log_format: LogFormat,
    /// Who may register.
    pub(crate) registration: RegistrationMode,
    /// The program that delivers verification codes; without it, the log.
    pub(crate) code_command: Option<PathBuf>,
    /// PEM certificate chain for TLS on the HTTP and TCP listeners.
    pub(crate) tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub(crate) tls_key: Option<PathBuf>,
    /// The engine's limits and policies.
    pub(crate) engine: EngineConfig,
    /// The WebSocket and HTTP gateway's limits.
    pub(crate) gateway: WsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            http: "127.0.0.1:8080".into(),
            admin: None,
            admin_token: None,
            tcp: "127.0.0.1:7100".into(),
            database: "sqlite://im-chat.db?mode=rwc".into(),
            database_pool: im_store::DEFAULT_SQL_POOL,
            uploads: "im-uploads".into(),
            redis: None,
            redis_prefix: "im".into(),
            node_id: None,
            log: "info".into(),
            log_format: LogFormat::Text,
            registration: RegistrationMode::Open,
            code_command: None,
            tls_cert: None,
            tls_key: None,
            engine: EngineConfig::default(),
            gateway: WsConfig::default(),
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum LogFormat {
    /// One human-readable line per event (in colour on a terminal).
    Text,
    /// One JSON object per line, for a log collector.
    Json,
}

/// How the text of a flag or variable becomes the setting's value.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Taken as written.
    Text,
    /// A whole number.
    Number,
    /// A duration with a unit (`90s`, `2m`), kept as milliseconds.
    Duration,
    /// Comma-separated words.
    List,
    /// Comma-separated IP addresses or networks.
    Networks,
    /// One of these words.
    Choice(&'static [&'static str]),
    /// Comma-separated `platform=count` pairs.
    PlatformLimits,
}

/// One setting: where it lives in [`Config`], and its flag and variable.
#[derive(Debug)]
struct Setting {
    /// Dotted path in the config (`engine.rate_limits.send_burst`).
    key: &'static str,
    /// The flag, without its dashes.
    flag: &'static str,
    /// The environment variable.
    env: &'static str,
    kind: Kind,
    help: &'static str,
}

const fn setting(
    key: &'static str,
    flag: &'static str,
    env: &'static str,
    kind: Kind,
    help: &'static str,
) -> Setting {
    Setting {
        key,
        flag,
        env,
        kind,
        help,
    }
}

use Kind::{Choice, Duration, List, Networks, Number, PlatformLimits, Text};

/// The settings that have a flag and a variable, in the order `--help` lists them. Every
/// field of [`Config`] is a key of the file besides; these are the ones an operator
/// tunes. Defaults are not written here: `--help` reads them from [`Config::default`].
#[rustfmt::skip]
const SETTINGS: &[Setting] = &[
    // Where it listens and keeps its data.
    setting("http", "http", "IM_HTTP_LISTEN", Text,
        "Address for the web page, WebSocket (/ws) and HTTP API (/v1)"),
    setting("admin", "admin", "IM_ADMIN_LISTEN", Text,
        "Address for /healthz and /metrics alone (a private one, say); without it they are served on the --http address"),
    setting("admin_token", "admin-token", "IM_ADMIN_TOKEN", Text,
        "Bearer token of the admin API (/admin/v1/…) on the --admin address, at least 16 characters; without it the API is off. Prefer the variable or the file to the flag, which other users of the machine can see"),
    setting("tcp", "tcp", "IM_TCP_LISTEN", Text,
        "Address for the TCP transport (4-byte length-prefixed frames)"),
    setting("database", "database", "IM_DATABASE_URL", Text,
        "Where data is kept: a SQLite file (sqlite://path?mode=rwc), PostgreSQL (postgres://…), MySQL/MariaDB (mysql://…), or `memory` for nothing kept"),
    setting("database_pool", "database-pool", "IM_DATABASE_POOL", Number,
        "Most connections this process opens to a PostgreSQL or MySQL database. Every node of a cluster opens its own: keep nodes × pool under the server's limit (PostgreSQL's max_connections, 100 by default)"),
    setting("uploads", "uploads", "IM_UPLOADS_DIR", Text,
        "Directory for uploaded files"),
    setting("redis", "redis", "IM_REDIS_URL", Text,
        "Redis URL for cluster mode (several nodes sharing presence and delivery): redis://host:port, or redis-cluster://host:port for a Redis Cluster. Needs a database every node shares (PostgreSQL or MySQL)"),
    setting("redis_prefix", "redis-prefix", "IM_REDIS_PREFIX", Text,
        "The prefix of this cluster's Redis keys and channels, so that several clusters can share one Redis"),
    setting("node_id", "node-id", "IM_NODE_ID", Text,
        "This node's id in a cluster: 1 to 64 letters, digits, '.', '_' or '-', unique among the running nodes. Give a restarted node its old id and it takes down what its earlier process left in Redis at once [default: a random id per start]"),
    setting("log", "log", "IM_LOG", Text,
        "Log filter, in tracing syntax (`info`, `im_core=debug,info`)"),
    setting("log_format", "log-format", "IM_LOG_FORMAT", Choice(&["text", "json"]),
        "Log lines as text, or one JSON object per line"),
    setting("tls_cert", "tls-cert", "IM_TLS_CERT", Text,
        "PEM certificate chain (leaf first): the HTTP address serves HTTPS and wss://, the TCP address TLS. Reloaded on SIGHUP and when the file changes"),
    setting("tls_key", "tls-key", "IM_TLS_KEY", Text,
        "PEM private key of --tls-cert"),
    // Who may do what.
    setting("registration", "registration", "IM_REGISTRATION", Choice(&["open", "code", "invite", "closed"]),
        "Who may register: anyone; whoever shows a code sent to their e-mail address or phone; whoever shows an invite code (made with the admin API); or nobody"),
    setting("code_command", "code-command", "IM_CODE_COMMAND", Text,
        "The program that sends verification codes (--registration code), run with the address in IM_CODE_CONTACT and the code in IM_CODE; it exits 0 once the code is on its way. Without it, codes are written to the log (development only)"),
    setting("engine.direct_policy", "direct-policy", "IM_DIRECT_POLICY", Choice(&["friends_only", "anyone"]),
        "Who may message whom directly: friends only, or anyone who has not blocked the sender"),
    setting("engine.max_group_members", "max-group-members", "IM_MAX_GROUP_MEMBERS", Number,
        "Largest group"),
    setting("engine.max_friends", "max-friends", "IM_MAX_FRIENDS", Number,
        "Most friends one user may have"),
    setting("engine.max_pins", "max-pins", "IM_MAX_PINS", Number,
        "Most pinned messages in one conversation"),
    setting("engine.max_body_bytes", "max-body-bytes", "IM_MAX_BODY_BYTES", Number,
        "Largest message body in bytes (a text's JSON-escaped string, a custom body's data)"),
    setting("engine.max_frame_bytes", "max-frame-bytes", "IM_MAX_FRAME_BYTES", Number,
        "Largest frame in bytes, on every transport"),
    setting("engine.recall_window", "recall-window", "IM_RECALL_WINDOW", Duration,
        "How long after sending a sender may recall a message"),
    setting("engine.edit_window", "edit-window", "IM_EDIT_WINDOW", Duration,
        "How long after sending a sender may edit a message"),
    setting("engine.token_ttl", "token-ttl", "IM_TOKEN_TTL", Duration,
        "How long a device's login token stays valid"),
    // Devices and sessions.
    setting("engine.device_policy.max_sessions", "max-sessions", "IM_MAX_SESSIONS", Number,
        "Most sessions one user may have at once, on all devices"),
    setting("engine.device_policy.per_platform", "platform-sessions", "IM_PLATFORM_SESSIONS", PlatformLimits,
        "Most sessions one user may have on one platform, as platform=count pairs (mobile=1,desktop=1); platforms not named have no own limit"),
    setting("engine.device_policy.on_excess", "on-excess-sessions", "IM_ON_EXCESS_SESSIONS", Choice(&["kick_oldest", "refuse_new"]),
        "What a login over the session limits does: close the oldest session, or be refused"),
    // Timeouts and presence.
    setting("engine.idle_timeout", "idle-timeout", "IM_IDLE_TIMEOUT", Duration,
        "A connection that sends nothing (not even a ping) for this long is closed; clients ping at a third of it"),
    setting("engine.write_timeout", "write-timeout", "IM_WRITE_TIMEOUT", Duration,
        "A connection whose socket takes longer than this to accept a write is closed"),
    setting("engine.presence_grace", "presence-grace", "IM_PRESENCE_GRACE", Duration,
        "How long a user's last device must be gone before friends see them offline"),
    setting("engine.presence_ttl", "presence-ttl", "IM_PRESENCE_TTL", Duration,
        "A device's presence lease; a node refreshes its leases every third of it, and a killed node's users are announced offline about a lease after its last refresh"),
    setting("engine.session_queue", "session-queue", "IM_SESSION_QUEUE", Number,
        "Frames queued per session before it must catch up through sync"),
    setting("engine.session_queue_bytes", "session-queue-bytes", "IM_SESSION_QUEUE_BYTES", Number,
        "Bytes queued per session before it must catch up through sync"),
    // Rate limits (0: no limit).
    setting("engine.rate_limits.sends_per_user_per_second", "sends-per-second", "IM_SENDS_PER_SECOND", Number,
        "Messages one user may send per second, sustained; 0 for no limit"),
    setting("engine.rate_limits.send_burst", "send-burst", "IM_SEND_BURST", Number,
        "Messages one user may send in a burst above the sustained rate"),
    setting("engine.rate_limits.logins_per_username_per_minute", "logins-per-minute", "IM_LOGINS_PER_MINUTE", Number,
        "Login attempts per username and address per minute; 0 for no limit"),
    setting("engine.rate_limits.auth_per_address_per_minute", "auth-per-address-per-minute", "IM_AUTH_PER_ADDRESS_PER_MINUTE", Number,
        "Login and registration attempts per address per minute; 0 for no limit. Behind a proxy, set --trusted-proxies or every client shares the proxy's address"),
    setting("engine.rate_limits.searches_per_user_per_minute", "searches-per-minute", "IM_SEARCHES_PER_MINUTE", Number,
        "Searches one user may make per minute; 0 for no limit"),
    // Password hashing.
    setting("engine.hash_cost.memory_kib", "hash-memory-kib", "IM_HASH_MEMORY_KIB", Number,
        "Argon2id memory per password hash, in KiB. Lower only for tests and benchmarks: it is what makes stolen hashes slow to crack"),
    setting("engine.hash_cost.iterations", "hash-iterations", "IM_HASH_ITERATIONS", Number,
        "Argon2id passes per password hash"),
    setting("engine.max_concurrent_hashes", "max-concurrent-hashes", "IM_MAX_CONCURRENT_HASHES", Number,
        "Password hashes computed at once (each holds --hash-memory-kib while it runs) [default: the number of CPUs]"),
    // The WebSocket and HTTP gateway.
    setting("gateway.allowed_origins", "allowed-origins", "IM_ALLOWED_ORIGINS", List,
        "Origins allowed to open a WebSocket, comma-separated (any if not given). Set it to the page's public origin (https://chat.example.com) in production"),
    setting("gateway.trusted_proxies", "trusted-proxies", "IM_TRUSTED_PROXIES", Networks,
        "Addresses or networks (10.0.0.0/8) of reverse proxies whose --forwarded-header names the client; from any other peer it is ignored"),
    setting("gateway.forwarded_header", "forwarded-header", "IM_FORWARDED_HEADER", Choice(&["x-forwarded-for", "forwarded"]),
        "The header the trusted proxies write the client's address in"),
    setting("gateway.ping_interval", "ping-interval", "IM_PING_INTERVAL", Duration,
        "How often the server pings an idle WebSocket to keep proxies from dropping it (0 for never)"),
    setting("gateway.max_body_bytes", "max-request-bytes", "IM_MAX_REQUEST_BYTES", Number,
        "Largest JSON request body of the HTTP API, in bytes"),
    setting("gateway.body_timeout", "body-timeout", "IM_BODY_TIMEOUT", Duration,
        "How long a request body (JSON or upload) may take to arrive"),
    setting("gateway.max_upload_bytes", "max-upload-bytes", "IM_MAX_UPLOAD_BYTES", Number,
        "Largest upload in bytes"),
    setting("gateway.upload_quota_bytes", "upload-quota-bytes", "IM_UPLOAD_QUOTA_BYTES", Number,
        "Bytes one user's uploads may take in all; 0 for no quota"),
    setting("gateway.upload_grace", "upload-grace", "IM_UPLOAD_GRACE", Duration,
        "How long an upload no message shows is kept (never sent, or recalled) before it is removed; 0 keeps every file"),
    setting("gateway.uploads_per_user_per_minute", "uploads-per-minute", "IM_UPLOADS_PER_MINUTE", Number,
        "Uploads one user may make per minute; 0 for no limit"),
    setting("gateway.upload_types", "upload-types", "IM_UPLOAD_TYPES", List,
        "MIME types an upload may have, judged from its content; */* also takes any other file, served as a download only"),
    setting("gateway.max_transfers", "max-transfers", "IM_MAX_TRANSFERS", Number,
        "Uploads and downloads in progress at once, over all users"),
];

/// What the command line asked for.
#[derive(Debug)]
pub(crate) struct Invocation {
    /// The settings in force.
    pub(crate) config: Config,
    /// Print them and stop (`--print-config`).
    pub(crate) print: bool,
}

impl Config {
    /// Reads the flags and environment, then the file they name, if any, and checks the
    /// result; nothing is opened or bound.
    pub(crate) fn load() -> anyhow::Result<Invocation> {
        // clap prints its own errors (and --help) and exits.
        Config::from_matches(&command().get_matches())
    }

    /// [`load`](Self::load) with these arguments (the first is the program's name),
    /// returning clap's errors too.
    #[cfg(test)]
    pub(crate) fn load_from<I, T>(args: I) -> anyhow::Result<Invocation>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Config::from_matches(&command().try_get_matches_from(args)?)
    }

    fn from_matches(matches: &ArgMatches) -> anyhow::Result<Invocation> {
        let file = matches
            .get_one::<PathBuf>("config")
            .map(|p| read_file(p))
            .transpose()?;
        let config = resolve(file, matches)?;
        config.check()?;
        Ok(Invocation {
            config,
            print: matches.get_flag("print_config"),
        })
    }

    /// Refuses settings that could not work, before anything is opened.
    pub(crate) fn check(&self) -> anyhow::Result<()> {
        for (name, addr) in [
            ("http", Some(&self.http)),
            ("tcp", Some(&self.tcp)),
            ("admin", self.admin.as_ref()),
        ] {
            if let Some(addr) = addr {
                listen_address(addr).with_context(|| format!("--{name} {addr:?}"))?;
            }
        }
        // sqlx also takes `sqlite:path` and `sqlite::memory:`.
        let scheme = self.database.split(':').next().unwrap_or_default();
        anyhow::ensure!(
            self.database == "memory"
                || (scheme == "sqlite" && self.database.len() > "sqlite:".len())
                || (self.database.contains("://")
                    && matches!(scheme, "postgres" | "postgresql" | "mysql")),
            "--database {:?}: expected sqlite://…, postgres://…, mysql://… or memory",
            redact(&self.database)
        );
        if let Some(missing) = crate::cluster::missing_driver(scheme) {
            anyhow::bail!("--database {}: {missing}", redact(&self.database));
        }
        anyhow::ensure!(
            self.database_pool >= 1,
            "--database-pool must be at least 1"
        );
        if self.redis.is_some() {
            #[cfg(not(feature = "redis"))]
            anyhow::bail!("--redis: {}", crate::cluster::NO_REDIS);
            #[cfg(feature = "redis")]
            anyhow::ensure!(
                matches!(scheme, "postgres" | "postgresql" | "mysql"),
                "cluster mode (--redis) needs a database every node shares: PostgreSQL or MySQL, not {}",
                redact(&self.database)
            );
        }
        if let Some(id) = &self.node_id {
            anyhow::ensure!(
                valid_node_id(id),
                "--node-id must be 1 to 64 letters, digits, '.', '_' or '-': {id:?}"
            );
        }
        if let Some(token) = &self.admin_token {
            anyhow::ensure!(
                self.admin.is_some(),
                "--admin-token needs --admin: the admin API is served on the admin address only"
            );
            anyhow::ensure!(
                token.chars().count() >= 16 && !token.chars().any(char::is_whitespace),
                "--admin-token must be at least 16 characters, without spaces"
            );
        }
        anyhow::ensure!(
            self.tls_cert.is_some() == self.tls_key.is_some(),
            "--tls-cert and --tls-key go together"
        );
        tracing_subscriber::EnvFilter::try_new(&self.log)
            .with_context(|| format!("--log {:?} is not a log filter", self.log))?;
        let engine = &self.engine;
        anyhow::ensure!(
            engine.presence_ttl >= std::time::Duration::from_secs(1),
            "--presence-ttl must be at least 1s"
        );
        anyhow::ensure!(
            !engine.idle_timeout.is_zero() && !engine.write_timeout.is_zero(),
            "--idle-timeout and --write-timeout must be more than zero"
        );
        anyhow::ensure!(
            engine.device_policy.max_sessions >= 1,
            "--max-sessions must be at least 1"
        );
        anyhow::ensure!(
            engine.max_group_members >= 2,
            "--max-group-members must be at least 2"
        );
        anyhow::ensure!(
            engine.max_frame_bytes >= 1024,
            "--max-frame-bytes must be at least 1024"
        );
        anyhow::ensure!(
            engine.max_concurrent_hashes >= 1,
            "--max-concurrent-hashes must be at least 1"
        );
        im_core::auth::PasswordHasher::new(engine.hash_cost)
            .context("--hash-memory-kib / --hash-iterations")?;
        Ok(())
    }

    /// The settings as a TOML file, with passwords hidden and durations written with
    /// their unit (`"2m"`).
    pub(crate) fn to_toml(&self) -> anyhow::Result<String> {
        let mut shown = self.clone();
        shown.database = redact(&shown.database);
        shown.redis = shown.redis.as_deref().map(redact);
        if shown.admin_token.is_some() {
            shown.admin_token = Some("***".into());
        }
        let mut value = serde_json::to_value(&shown)?;
        let mut durations = Vec::new();
        duration_keys(&value, &mut String::new(), &mut durations);
        for key in durations {
            if let Some(ms) = lookup(&value, &key).and_then(Value::as_u64) {
                let text = humantime::format_duration(std::time::Duration::from_millis(ms));
                place(&mut value, &key, Value::String(text.to_string()));
            }
        }
        // TOML has no null: a setting not set is left out.
        drop_nulls(&mut value);
        let body = toml::to_string(&value).context("writing the settings as TOML")?;
        Ok(format!("# chat-server settings in force\n{body}"))
    }
}

/// Removes every `null` from the tables, at any depth.
fn drop_nulls(value: &mut Value) {
    if let Value::Object(table) = value {
        table.retain(|_, child| !child.is_null());
        table.values_mut().for_each(drop_nulls);
    }
}

/// The keys under `prefix` that hold durations. Which numbers are durations is asked of
/// the config itself: a number is one if the config still reads with `"1s"` in its
/// place, so no list here can fall out of step with the library's fields.
fn duration_keys(value: &Value, prefix: &mut String, found: &mut Vec<String>) {
    let Value::Object(table) = value else { return };
    for (name, child) in table {
        let len = prefix.len();
        if !prefix.is_empty() {
            prefix.push('.');
        }
        prefix.push_str(name);
        match child {
            Value::Object(_) => duration_keys(child, prefix, found),
            Value::Number(_) => {
                let mut probe = Value::Object(Map::new());
                place(&mut probe, prefix, Value::from("1s"));
                if serde_json::from_value::<Config>(probe).is_ok() {
                    found.push(prefix.clone());
                }
            }
            _ => {}
        }
        prefix.truncate(len);
    }
}

/// The command line: `--config`, `--print-config`, and a flag per [`SETTINGS`] entry,
/// whose `--help` shows the default read from [`Config::default`].
fn command() -> Command {
    let defaults = serde_json::to_value(Config::default()).unwrap_or_default();
    let mut command = Command::new("chat-server")
        .version(env!("CARGO_PKG_VERSION"))
        .about(
            "An instant-messaging server built on im-core: a web chat page, WebSocket and \
             HTTP/JSON on one port, length-prefixed JSON over TCP on another.\n\n\
             Every setting is a flag, an IM_* environment variable and a key of the --config \
             file; flags win over variables, which win over the file.",
        )
        .arg(
            Arg::new("config")
                .long("config")
                .env("IM_CONFIG")
                .value_name("FILE")
                .value_parser(clap::value_parser!(PathBuf))
                .help("A TOML file with any of the settings (--print-config shows its form)"),
        )
        .arg(
            Arg::new("print_config")
                .long("print-config")
                .action(ArgAction::SetTrue)
                .help("Print the settings in force, as a TOML file, and stop"),
        );
    for setting in SETTINGS {
        let mut help = setting.help.to_owned();
        if let Some(shown) = lookup(&defaults, setting.key)
            .filter(|_| !help.contains("[default:"))
            .and_then(|v| shown(setting.kind, v))
        {
            help.push_str(&format!(" [default: {shown}]"));
        }
        let arg = Arg::new(setting.key)
            .long(setting.flag)
            .env(setting.env)
            .help(help);
        let arg = match setting.kind {
            Text => arg.value_name("TEXT"),
            Number => arg.value_name("N").value_parser(clap::value_parser!(u64)),
            Duration => arg
                .value_name("DURATION")
                .value_parser(ValueParser::new(parse_duration)),
            List => arg.value_name("LIST").value_delimiter(','),
            Networks => arg
                .value_name("LIST")
                .value_delimiter(',')
                .value_parser(ValueParser::new(|text: &str| {
                    text.parse::<TrustedProxy>().map(|proxy| proxy.to_string())
                })),
            Choice(words) => arg
                .value_name("WORD")
                .value_parser(PossibleValuesParser::new(words.iter().copied())),
            PlatformLimits => arg
                .value_name("PLATFORM=N")
                .value_delimiter(',')
                .value_parser(ValueParser::new(parse_platform_limit)),
        };
        command = command.arg(arg);
    }
    command
}

/// A duration flag's value, as the milliseconds the config keeps.
fn parse_duration(text: &str) -> Result<u64, String> {
    im_core::engine::millis::parse(text).map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `mobile=1` as the `["mobile", 1]` pair the device policy keeps.
fn parse_platform_limit(text: &str) -> Result<(String, u64), String> {
    let (platform, count) = text
        .split_once('=')
        .ok_or_else(|| format!("expected platform=count, got {text:?}"))?;
    let platform = platform.trim().to_owned();
    serde_json::from_value::<im_core::model::Platform>(Value::String(platform.clone()))
        .map_err(|_| format!("unknown platform {platform:?} (web, mobile, desktop, other)"))?;
    let count = count
        .trim()
        .parse()
        .map_err(|_| format!("expected a number after {platform}=, got {count:?}"))?;
    Ok((platform, count))
}

/// A default as `--help` shows it, if it is worth showing.
fn shown(kind: Kind, value: &Value) -> Option<String> {
    match (kind, value) {
        (_, Value::Null) => None,
        (Duration, Value::Number(ms)) => Some(
            humantime::format_duration(std::time::Duration::from_millis(ms.as_u64()?)).to_string(),
        ),
        (_, Value::String(text)) => Some(text.clone()),
        (_, Value::Array(items)) if items.is_empty() => None,
        (_, Value::Array(items)) => Some(
            items
                .iter()
                .map(|item| {
                    item.as_str()
                        .map_or_else(|| item.to_string(), str::to_owned)
                })
                .collect::<Vec<_>>()
                .join(","),
        ),
        (_, other) => Some(other.to_string()),
    }
}

/// Reads a settings file, refusing unknown keys and wrong types with the line they are on.
fn read_file(path: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str::<Config>(&text).with_context(|| format!("in {}", path.display()))?;
    toml::from_str::<Value>(&text).with_context(|| format!("in {}", path.display()))
}

/// The defaults, with the file's settings over them and the flags' and variables' over
/// those.
fn resolve(file: Option<Value>, matches: &ArgMatches) -> anyhow::Result<Config> {
    let mut merged = serde_json::to_value(Config::default())?;
    if let Some(file) = file {
        overlay(&mut merged, file);
    }
    for setting in SETTINGS {
        if !matches!(
            matches.value_source(setting.key),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            continue;
        }
        let value = match setting.kind {
            Text | Choice(_) => matches
                .get_one::<String>(setting.key)
                .cloned()
                .map(Value::from),
            Number | Duration => matches
                .get_one::<u64>(setting.key)
                .copied()
                .map(Value::from),
            List | Networks => matches.get_many::<String>(setting.key).map(|words| {
                words
                    .map(|w| w.trim())
                    .filter(|w| !w.is_empty())
                    .collect::<Vec<_>>()
                    .into()
            }),
            PlatformLimits => matches.get_many::<(String, u64)>(setting.key).map(|pairs| {
                pairs
                    .map(|(platform, count)| {
                        Value::from(vec![Value::from(platform.clone()), Value::from(*count)])
                    })
                    .collect::<Vec<_>>()
                    .into()
            }),
        };
        if let Some(value) = value {
            place(&mut merged, setting.key, value);
        }
    }
    serde_json::from_value(merged).context("the settings do not fit together")
}

/// Lays `top`'s keys over `base`, table by table.
fn overlay(base: &mut Value, top: Value) {
    match (base, top) {
        (Value::Object(base), Value::Object(top)) => {
            for (key, value) in top {
                match base.get_mut(&key) {
                    Some(slot) => overlay(slot, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (slot, value) => *slot = value,
    }
}

/// Sets the value at a dotted path, making tables on the way.
fn place(root: &mut Value, key: &str, value: Value) {
    let mut slot = root;
    for part in key.split('.') {
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        let Value::Object(table) = slot else { return };
        slot = table.entry(part).or_insert(Value::Null);
    }
    *slot = value;
}

/// The value at a dotted path.
fn lookup<'a>(root: &'a Value, key: &str) -> Option<&'a Value> {
    key.split('.').try_fold(root, |value, part| value.get(part))
}

/// Checks that `addr` is `host:port` with a port number, resolving the host.
fn listen_address(addr: &str) -> anyhow::Result<()> {
    let resolved = addr
        .to_socket_addrs()
        .context("expected host:port, such as 127.0.0.1:8080 or [::]:8080")?;
    anyhow::ensure!(resolved.count() > 0, "names no address");
    Ok(())
}

/// Whether `id` is a node id `--node-id` accepts.
pub(crate) fn valid_node_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A URL fit for logs: any password is replaced by `***`.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(args: &[&str]) -> anyhow::Result<Config> {
        Config::load_from(std::iter::once("chat-server").chain(args.iter().copied()))
            .map(|invocation| invocation.config)
    }

    #[test]
    fn every_setting_names_a_key_of_the_config() {
        let defaults = serde_json::to_value(Config::default()).unwrap();
        let mut flags = std::collections::HashSet::new();
        let mut envs = std::collections::HashSet::new();
        for setting in SETTINGS {
            assert!(
                lookup(&defaults, setting.key).is_some(),
                "{} is not a key of the config",
                setting.key
            );
            assert!(flags.insert(setting.flag), "--{} twice", setting.flag);
            assert!(envs.insert(setting.env), "{} twice", setting.env);
            assert!(setting.env.starts_with("IM_"), "{}", setting.env);
        }
        command().debug_assert();
    }

    #[test]
    fn flags_win_over_the_file_which_wins_over_the_library_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("chat.toml");
        std::fs::write(
            &file,
            "http = \"0.0.0.0:80\"\ntcp = \"0.0.0.0:7000\"\n\
             [engine]\nrecall_window = \"1m\"\nedit_window = 5000\nmax_group_members = 50\n\
             [engine.rate_limits]\nsend_burst = 7\n\
             [gateway]\nmax_upload_bytes = 10\nallowed_origins = [\"https://a.example\"]\n",
        )
        .unwrap();
        let config = load(&[
            "--config",
            file.to_str().unwrap(),
            "--http",
            "127.0.0.1:1",
            "--max-group-members",
            "9",
            "--idle-timeout",
            "2m",
            "--platform-sessions",
            "mobile=1,desktop=2",
            "--direct-policy",
            "anyone",
        ])
        .unwrap();
        assert_eq!(config.http, "127.0.0.1:1");
        assert_eq!(config.tcp, "0.0.0.0:7000");
        assert_eq!(config.gateway.max_upload_bytes, 10);
        assert_eq!(
            config.gateway.allowed_origins,
            Some(vec!["https://a.example".to_owned()])
        );
        assert_eq!(config.engine.max_group_members, 9);
        assert_eq!(config.engine.recall_window.as_secs(), 60);
        assert_eq!(config.engine.edit_window.as_millis(), 5000);
        assert_eq!(config.engine.idle_timeout.as_secs(), 120);
        assert_eq!(config.engine.rate_limits.send_burst, 7);
        assert_eq!(
            config.engine.direct_policy,
            im_core::engine::DirectPolicy::Anyone
        );
        assert_eq!(
            config
                .engine
                .device_policy
                .platform_limit(im_core::model::Platform::Mobile),
            Some(1)
        );
        // What nobody set is the library's default.
        let engine = EngineConfig::default();
        assert_eq!(config.engine.max_friends, engine.max_friends);
        assert_eq!(
            config.engine.rate_limits.sends_per_user_per_second,
            engine.rate_limits.sends_per_user_per_second
        );
        assert_eq!(config.database, Config::default().database);
    }

    #[test]
    fn printed_settings_read_back_as_the_same_settings() {
        let config = load(&[
            "--max-pins",
            "3",
            "--log-format",
            "json",
            "--trusted-proxies",
            "10.0.0.0/8",
        ])
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("printed.toml");
        std::fs::write(&file, config.to_toml().unwrap()).unwrap();
        let again = load(&["--config", file.to_str().unwrap()]).unwrap();
        assert_eq!(again, config);
    }

    #[test]
    fn bad_settings_are_refused_before_anything_opens() {
        let dir = tempfile::tempdir().unwrap();
        for (file, needle) in [
            ("htpp = \"x\"", "unknown field"),
            ("[engine]\nmax_group_member = 5", "unknown field"),
            ("[engine]\nidle_timeout = \"soon\"", "idle_timeout"),
            ("[gateway]\nmax_upload_bytes = \"big\"", "max_upload_bytes"),
        ] {
            let path = dir.path().join("bad.toml");
            std::fs::write(&path, file).unwrap();
            let error = format!(
                "{:#}",
                load(&["--config", path.to_str().unwrap()]).unwrap_err()
            );
            assert!(error.contains(needle), "{file}: {error}");
        }
        for (args, needle) in [
            (&["--http", "8080"][..], "--http"),
            (&["--tcp", "127.0.0.1:http"][..], "--tcp"),
            (&["--database", "sqlite.db"][..], "--database"),
            (&["--database", "postgres:db"][..], "--database"),
            (
                &["--redis", "redis://r", "--database", "sqlite://x.db"][..],
                "cluster mode",
            ),
            (&["--node-id", "a b"][..], "--node-id"),
            (&["--log", "im_core=loud"][..], "--log"),
            (&["--presence-ttl", "10ms"][..], "--presence-ttl"),
            (&["--max-sessions", "0"][..], "--max-sessions"),
            (&["--hash-memory-kib", "1"][..], "--hash-memory-kib"),
            (
                &["--trusted-proxies", "10.0.0.0/99"][..],
                "--trusted-proxies",
            ),
            (&["--admin-token", "a-long-enough-token"][..], "--admin"),
            (
                &["--admin", "127.0.0.1:0", "--admin-token", "short"][..],
                "--admin-token",
            ),
            (&["--tls-cert", "cert.pem"][..], "--tls-key"),
        ] {
            let error = format!("{:#}", load(args).unwrap_err());
            assert!(error.contains(needle), "{args:?}: {error}");
        }
    }

    #[test]
    fn every_database_url_sqlx_takes_is_accepted() {
        for url in [
            "memory",
            "sqlite://im-chat.db?mode=rwc",
            "sqlite:im-chat.db",
            "sqlite::memory:",
        ] {
            assert!(load(&["--database", url]).is_ok(), "{url}");
        }
        for url in ["postgres://u@h/db", "postgresql://u@h/db"] {
            let loaded = load(&["--database", url]);
            if cfg!(feature = "postgres") {
                assert!(loaded.is_ok(), "{url}");
            } else {
                let error = format!("{:#}", loaded.unwrap_err());
                assert!(error.contains("--features postgres"), "{error}");
            }
        }
        let loaded = load(&["--database", "mysql://root@h/db"]);
        assert_eq!(loaded.is_ok(), cfg!(feature = "mysql"));
    }

    #[test]
    fn durations_need_a_unit_on_the_command_line() {
        assert_eq!(parse_duration("90s"), Ok(90_000));
        assert_eq!(parse_duration("1h 30m"), Ok(5_400_000));
        assert!(parse_duration("90").is_err(), "a bare number is ambiguous");
        assert_eq!(parse_duration("0"), Ok(0));
    }

    #[test]
    fn passwords_stay_out_of_printed_settings() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u:p@ss@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("sqlite://im.db?mode=rwc"), "sqlite://im.db?mode=rwc");
        let mut config = load(&[
            "--admin",
            "127.0.0.1:0",
            "--admin-token",
            "a-very-secret-admin-token",
        ])
        .unwrap();
        // Set here, past the check: a build without PostgreSQL refuses the URL.
        config.database = "postgres://u:secret@127.0.0.1/db".into();
        config.redis = Some("redis://:secret@127.0.0.1".into());
        let printed = config.to_toml().unwrap();
        assert!(!printed.contains("secret"), "{printed}");
        assert!(
            printed.contains("postgres://u:***@127.0.0.1/db"),
            "{printed}"
        );
    }
}
