//! The ready chat server: the im-core engine with its data in SQLite (or PostgreSQL or
//! MySQL), serving a web chat page, WebSocket and HTTP/JSON on one port and
//! length-prefixed JSON over TCP on another.
//!
//! ```text
//! cargo run --release -p chat-server                       # http://127.0.0.1:8080, ./im-chat.db
//! cargo run --release -p chat-server -- --http 0.0.0.0:8080 --tcp 0.0.0.0:7100
//! cargo run --release -p chat-server -- --database postgres://user@host/im
//! cargo run --release -p chat-server -- --database memory  # nothing kept
//! cargo run --release -p chat-server -- --config chat.toml # settings from a file
//! ```
//!
//! `GET /healthz` answers `200` while the node can serve (its database and, in cluster
//! mode, Redis answer) and `503` naming what fails otherwise; `GET /metrics` has
//! Prometheus metrics, with `im_sessions` and `im_runtime_alive_tasks` read at each
//! scrape (what `loadgen soak` watches for leaks);
//! SIGINT or SIGTERM tells every session the server is going away, waits for them to
//! close, then stops.

mod config;
mod health;
mod web;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use im_core::auth::HashCost;
use im_core::engine::{DevicePolicy, DirectPolicy, ExcessSessions, RateLimits};
use im_core::model::Platform;
use im_core::presence::NodeId;
use im_core::{Engine, EngineConfig};
use im_store::{RedisBroker, RedisPresence, SqlStorage};
use im_transport_tcp::{TcpConfig, TcpTransport};
use im_transport_ws::{Gateway, LocalDirBlobs, WsConfig};
use tracing_subscriber::EnvFilter;
use warp::Filter;

use config::{Resolved, Settings};

/// jemalloc returns freed memory to the system: after a flood of logins (19 MiB per
/// Argon2 hash) the server's memory comes back to where it was, where glibc's malloc kept
/// hundreds of megabytes (measured in docs/benchmarks.md).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    // Logs go to stderr (stdout carries the "listening on" lines), in colour only on a
    // terminal.
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&settings.log).context("invalid --log filter")?)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")?;
    let mut builder = Engine::builder().config(engine_config(&settings));
    if let Some(id) = &settings.node_id {
        anyhow::ensure!(
            valid_node_id(id),
            "--node-id must be 1 to 64 letters, digits, '.', '_' or '-': {id:?}"
        );
        builder = builder.node(NodeId::new(id));
    }
    let mut redis = None;
    if let Some(url) = &settings.redis {
        // Every node must see the same users and messages.
        let shared =
            settings.database.starts_with("postgres") || settings.database.starts_with("mysql");
        anyhow::ensure!(
            shared,
            "cluster mode (--redis) needs a database every node shares: PostgreSQL or MySQL, \
             not {}",
            redact(&settings.database)
        );
        let client = im_store::redis::connect(url)
            .await
            .with_context(|| format!("connecting to Redis at {}", redact(url)))?;
        let prefix = &settings.redis_prefix;
        builder = builder
            .presence(Arc::new(RedisPresence::new(client.clone(), prefix)?))
            .broker(Arc::new(RedisBroker::new(client.clone(), prefix)?));
        redis = Some(client);
    }
    let mut database = None;
    let storage_name = if settings.database == "memory" {
        "memory (not kept across restarts)".to_owned()
    } else {
        let storage = SqlStorage::connect_with_pool(&settings.database, settings.database_pool)
            .await
            .with_context(|| format!("opening the database {}", redact(&settings.database)))?;
        builder = builder.storage(Arc::new(storage.clone()));
        database = Some(storage);
        redact(&settings.database)
    };
    let engine = builder.start().await.context("starting the engine")?;

    let tcp = TcpConfig::default().with_max_frame_bytes(settings.max_frame_bytes);
    let tcp = TcpTransport::bind(&settings.tcp, tcp)
        .await
        .with_context(|| format!("binding TCP {}", settings.tcp))?;
    let blobs = LocalDirBlobs::open(&settings.uploads)
        .await
        .with_context(|| {
            format!(
                "opening the uploads directory {}",
                settings.uploads.display()
            )
        })?;
    let mut ws = WsConfig::default()
        .with_max_frame_bytes(settings.max_frame_bytes)
        .with_max_upload_bytes(settings.max_upload_bytes)
        .with_uploads_per_user_per_minute(settings.uploads_per_minute);
    if let Some(origins) = settings.allowed_origins.clone() {
        ws = ws.with_allowed_origins(origins);
    }
    let gateway = Gateway::new(engine.clone(), ws, Some(Arc::new(blobs)));
    let http = tokio::net::TcpListener::bind(&settings.http)
        .await
        .with_context(|| format!("binding HTTP {}", settings.http))?;
    let http_addr = http.local_addr()?;

    tracing::info!(
        http = %http_addr,
        tcp = %tcp.local_addr(),
        node = %engine.node(),
        storage = %storage_name,
        uploads = %settings.uploads.display(),
        "chat-server listening"
    );
    // For scripts and tests that read the addresses; a reader that went away is no
    // reason to stop serving.
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "chat-server listening on tcp://{}", tcp.local_addr());
        let _ = writeln!(out, "chat-server listening on http://{http_addr}");
        let _ = out.flush();
    }

    let health = health::Health {
        engine: engine.clone(),
        database,
        redis,
    };
    let admin_routes = web::admin(health, metrics);
    let (public, admin) = match &settings.admin {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the admin address {addr}"))?;
            let public = gateway.filter().or(web::page()).unify().boxed();
            (public, Some((listener, admin_routes)))
        }
        None => {
            let public = gateway
                .filter()
                .or(web::page())
                .unify()
                .or(admin_routes)
                .unify()
                .boxed();
            (public, None)
        }
    };
    let routes = public.with(warp::log::custom(|info| {
        tracing::debug!(
            method = %info.method(),
            path = info.path(),
            status = info.status().as_u16(),
            elapsed_ms = info.elapsed().as_millis() as u64,
            "http"
        );
    }));
    let (stop_http, http_stopped) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    // The gateway's own server: TCP_NODELAY on every connection, and WebSockets over
    // the raw socket.
    let drain = Duration::from_secs(5);
    let http_server = tokio::spawn(im_transport_ws::serve(
        http,
        routes,
        stopped(http_stopped.clone()),
        drain,
    ));
    let admin_server = admin.map(|(listener, routes)| {
        if let Ok(addr) = listener.local_addr() {
            use std::io::Write as _;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(
                out,
                "chat-server admin (/healthz, /metrics) on http://{addr}"
            );
            let _ = out.flush();
        }
        tokio::spawn(im_transport_ws::serve(
            listener,
            routes,
            stopped(http_stopped.clone()),
            drain,
        ))
    });
    let tcp_server = tokio::spawn({
        let engine = engine.clone();
        async move { engine.serve(&tcp).await }
    });

    shutdown_signal().await;
    tracing::info!(sessions = engine.session_count(), "shutting down");
    // Sessions first (each gets a `kicked: shutdown` notice after what was queued for
    // it), then the listeners.
    engine.shutdown().await;
    stop_http.send_replace(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), http_server).await;
    if let Some(admin) = admin_server {
        let _ = tokio::time::timeout(Duration::from_secs(1), admin).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), tcp_server).await;
    tracing::info!("stopped");
    Ok(())
}

/// The engine's settings: its own defaults, with what the operator set laid over them.
fn engine_config(settings: &Resolved) -> EngineConfig {
    let defaults = EngineConfig::default();
    let limits = defaults.rate_limits;
    let rate_limits = RateLimits {
        sends_per_user_per_second: settings
            .sends_per_second
            .unwrap_or(limits.sends_per_user_per_second),
        send_burst: settings.send_burst.unwrap_or(limits.send_burst),
        logins_per_username_per_minute: settings
            .logins_per_minute
            .unwrap_or(limits.logins_per_username_per_minute),
        auth_per_address_per_minute: settings
            .auth_per_address_per_minute
            .unwrap_or(limits.auth_per_address_per_minute),
        ..limits
    };
    let hash_cost = HashCost {
        memory_kib: settings
            .hash_memory_kib
            .unwrap_or(defaults.hash_cost.memory_kib),
        iterations: settings
            .hash_iterations
            .unwrap_or(defaults.hash_cost.iterations),
        ..defaults.hash_cost
    };
    let session_queue = settings.session_queue.unwrap_or(defaults.session_queue);
    defaults
        .with_rate_limits(rate_limits)
        .with_hash_cost(hash_cost)
        .with_session_queue(session_queue)
        .with_direct_policy(if settings.open_direct_messages {
            DirectPolicy::Anyone
        } else {
            DirectPolicy::FriendsOnly
        })
        .with_max_group_members(settings.max_group_members)
        .with_max_frame_bytes(settings.max_frame_bytes)
        .with_device_policy(device_policy(settings))
        .with_presence_grace(Duration::from_secs(settings.presence_grace_secs))
        .with_presence_ttl(Duration::from_secs(settings.presence_ttl_secs))
        .with_recall_window(Duration::from_secs(settings.recall_window_secs))
        .with_edit_window(Duration::from_secs(settings.edit_window_secs))
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

fn device_policy(settings: &Resolved) -> DevicePolicy {
    let mut policy = DevicePolicy::default()
        .with_max_sessions(settings.max_sessions)
        .with_on_excess(if settings.refuse_new_sessions {
            ExcessSessions::RefuseNew
        } else {
            ExcessSessions::KickOldest
        });
    if let Some(max) = settings.max_mobile_sessions {
        policy = policy.with_platform_limit(Platform::Mobile, max);
    }
    policy
}

/// A database URL fit for logs: any password is replaced by `***`.
/// Whether `id` is a node id `--node-id` accepts.
fn valid_node_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

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

#[cfg(test)]
mod tests {
    use super::valid_node_id;

    #[test]
    fn node_ids_are_short_plain_names() {
        for ok in ["node-1", "a", "pod_7.eu-west", &"x".repeat(64)] {
            assert!(valid_node_id(ok), "{ok:?} refused");
        }
        for bad in ["", "node 1", "node{1}", "nöde", "a/b", &"x".repeat(65)] {
            assert!(!valid_node_id(bad), "{bad:?} accepted");
        }
    }
}
