//! The ready chat server: the im-core engine served over TCP, its data in SQLite.
//!
//! ```text
//! cargo run --release -p chat-server                       # 127.0.0.1:7100, ./im-chat.db
//! cargo run --release -p chat-server -- --tcp 0.0.0.0:7100 # every interface
//! cargo run --release -p chat-server -- --database postgres://user@host/im
//! cargo run --release -p chat-server -- --database memory  # nothing kept
//! ```
//!
//! The WebSocket/HTTP listener, web page and cluster mode come with later releases.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use im_core::engine::{DevicePolicy, DirectPolicy, ExcessSessions};
use im_core::model::Platform;
use im_core::{Engine, EngineConfig};
use im_store::SqlStorage;
use im_transport_tcp::{TcpConfig, TcpTransport};
use tracing_subscriber::EnvFilter;

/// Command-line flags; each can also be set through the environment variable named.
#[derive(Debug, Parser)]
#[command(
    name = "chat-server",
    version,
    about = "An instant-messaging server built on im-core"
)]
struct Args {
    /// Address for the TCP transport (4-byte length-prefixed JSON frames).
    #[arg(long, env = "IM_TCP_LISTEN", default_value = "127.0.0.1:7100")]
    tcp: String,

    /// Let anyone message anyone who has not blocked them, not only friends.
    #[arg(long, env = "IM_OPEN_DIRECT_MESSAGES")]
    open_direct_messages: bool,

    /// Where data is kept: a SQLite file (`sqlite://path?mode=rwc`), PostgreSQL
    /// (`postgres://…`), MySQL/MariaDB (`mysql://…`), or `memory` for nothing kept.
    #[arg(
        long,
        env = "IM_DATABASE_URL",
        default_value = "sqlite://im-chat.db?mode=rwc"
    )]
    database: String,

    /// Largest group.
    #[arg(long, env = "IM_MAX_GROUP_MEMBERS", default_value_t = 2000)]
    max_group_members: usize,

    /// Largest frame in bytes.
    #[arg(long, env = "IM_MAX_FRAME_BYTES", default_value_t = 64 * 1024)]
    max_frame_bytes: usize,

    /// Most sessions one user may have at once, on all devices.
    #[arg(long, env = "IM_MAX_SESSIONS", default_value_t = 5)]
    max_sessions: usize,

    /// Most sessions one user may have on mobile devices (unlimited if not given).
    #[arg(long, env = "IM_MAX_MOBILE_SESSIONS")]
    max_mobile_sessions: Option<usize>,

    /// Refuse a login over the session limits instead of closing the oldest session.
    #[arg(long, env = "IM_REFUSE_NEW_SESSIONS")]
    refuse_new_sessions: bool,

    /// Seconds a user's last device must be gone before friends see them offline.
    #[arg(long, env = "IM_PRESENCE_GRACE_SECS", default_value_t = 5)]
    presence_grace_secs: u64,

    /// Seconds after sending during which a sender may recall a message.
    #[arg(long, env = "IM_RECALL_WINDOW_SECS", default_value_t = 120)]
    recall_window_secs: u64,

    /// Seconds after sending during which a sender may edit a message.
    #[arg(long, env = "IM_EDIT_WINDOW_SECS", default_value_t = 900)]
    edit_window_secs: u64,

    /// Log filter, in `tracing` syntax (`info`, `im_core=debug,info`).
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    log: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Logs go to stderr (stdout carries the one "listening on" line), in colour only on
    // a terminal.
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&args.log).context("invalid --log filter")?)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let config = EngineConfig::default()
        .with_direct_policy(if args.open_direct_messages {
            DirectPolicy::Anyone
        } else {
            DirectPolicy::FriendsOnly
        })
        .with_max_group_members(args.max_group_members)
        .with_max_frame_bytes(args.max_frame_bytes)
        .with_device_policy(device_policy(&args))
        .with_presence_grace(Duration::from_secs(args.presence_grace_secs))
        .with_recall_window(Duration::from_secs(args.recall_window_secs))
        .with_edit_window(Duration::from_secs(args.edit_window_secs));
    let mut builder = Engine::builder().config(config);
    let storage_name = if args.database == "memory" {
        "memory (not kept across restarts)".to_owned()
    } else {
        let storage = SqlStorage::connect(&args.database)
            .await
            .with_context(|| format!("opening the database {}", redact(&args.database)))?;
        builder = builder.storage(Arc::new(storage));
        redact(&args.database)
    };
    let engine = builder.start().await.context("starting the engine")?;

    let tcp = TcpConfig::default().with_max_frame_bytes(args.max_frame_bytes);
    let transport = TcpTransport::bind(&args.tcp, tcp)
        .await
        .with_context(|| format!("binding TCP {}", args.tcp))?;
    tracing::info!(
        tcp = %transport.local_addr(),
        node = %engine.node(),
        storage = %storage_name,
        "chat-server listening"
    );
    println!("chat-server listening on tcp://{}", transport.local_addr());

    let serving = tokio::spawn({
        let engine = engine.clone();
        async move { engine.serve(&transport).await }
    });
    shutdown_signal().await;
    tracing::info!(sessions = engine.session_count(), "shutting down");
    engine.shutdown().await;
    let _ = tokio::time::timeout(Duration::from_secs(1), serving).await;
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

fn device_policy(args: &Args) -> DevicePolicy {
    let mut policy = DevicePolicy::default()
        .with_max_sessions(args.max_sessions)
        .with_on_excess(if args.refuse_new_sessions {
            ExcessSessions::RefuseNew
        } else {
            ExcessSessions::KickOldest
        });
    if let Some(max) = args.max_mobile_sessions {
        policy = policy.with_platform_limit(Platform::Mobile, max);
    }
    policy
}

/// A database URL fit for logs: any password is replaced by `***`.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
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
