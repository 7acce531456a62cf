//! The ready chat server: the im-core engine with its data in SQLite (or PostgreSQL or
//! MySQL), serving a web chat page, WebSocket and HTTP/JSON on one port and
//! length-prefixed JSON over TCP on another.
//!
//! ```text
//! cargo run --release -p chat-server                       # http://127.0.0.1:8080, ./im-chat.db
//! cargo run --release -p chat-server -- --http 0.0.0.0:8080 --tcp 0.0.0.0:7100
//! cargo run --release -p chat-server --features postgres -- --database postgres://user@host/im
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

mod admin;
mod cluster;
mod config;
mod files;
mod health;
mod registration;
mod tls;
mod web;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use im_core::Engine;
use im_core::presence::NodeId;
use im_core::storage::Storage;
use im_store::SqlStorage;
use im_transport_tcp::{TcpConfig, TcpTransport};
use im_transport_ws::{Gateway, LocalDirBlobs};
use tracing_subscriber::EnvFilter;
use warp::Filter;

use config::{Config, Invocation, LogFormat, redact};

/// jemalloc returns freed memory to the system: after a flood of logins (19 MiB per
/// Argon2 hash) the server's memory comes back to where it was, where glibc's malloc kept
/// hundreds of megabytes (measured in docs/benchmarks.md).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("chat-server: cannot start the Tokio runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The cause chain on one line, without a backtrace: it is the operator's
            // setting or service that failed, not the program.
            eprintln!("chat-server: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    // Settings are read and checked before anything is opened or bound.
    let Invocation { config, print } = Config::load()?;
    if print {
        print!("{}", config.to_toml()?);
        return Ok(());
    }
    init_logs(&config)?;
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")?;

    // Ctrl-C and SIGTERM stop the server gracefully from here on.
    let stop = shutdown_signal();
    // The certificate, if any, and the listeners next: a bad key or an address in use is
    // found before any file is made.
    let certificates = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(tls::Certificates::load(cert, key)?),
        _ => None,
    };
    if let Some(certificates) = &certificates {
        certificates.clone().watch();
    }
    let http = tokio::net::TcpListener::bind(&config.http)
        .await
        .with_context(|| format!("binding --http {}", config.http))?;
    let admin = match &config.admin {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding --admin {addr}"))?,
        ),
        None => None,
    };
    let tcp = TcpConfig::default().with_max_frame_bytes(config.engine.max_frame_bytes);
    let tcp = match &certificates {
        Some(certificates) => {
            TcpTransport::bind_tls(&config.tcp, tcp, certificates.server_config(&[])?).await
        }
        None => TcpTransport::bind(&config.tcp, tcp).await,
    }
    .with_context(|| format!("binding --tcp {}", config.tcp))?;

    // Then what makes files: a start that fails after it takes them away again.
    let made = files::Made::before(&config);
    let opened = match open(&config).await {
        Ok(opened) => opened,
        Err(e) => {
            made.undo();
            return Err(e);
        }
    };
    let Opened {
        engine,
        blobs,
        database,
        redis,
        storage_name,
    } = opened;
    let gateway = Gateway::new(
        engine.clone(),
        config.gateway.clone(),
        Some(Arc::new(blobs)),
    );
    let http_addr = http.local_addr()?;

    tracing::info!(
        http = %http_addr,
        tcp = %tcp.local_addr(),
        node = %engine.node(),
        storage = %storage_name,
        uploads = %config.uploads.display(),
        "chat-server listening"
    );
    // For scripts and tests that read the addresses; a reader that went away is no
    // reason to stop serving.
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let (tcp_scheme, http_scheme) = match certificates {
            Some(_) => ("tls", "https"),
            None => ("tcp", "http"),
        };
        let _ = writeln!(
            out,
            "chat-server listening on {tcp_scheme}://{}",
            tcp.local_addr()
        );
        let _ = writeln!(out, "chat-server listening on {http_scheme}://{http_addr}");
        let _ = out.flush();
    }

    let health = health::Health {
        engine: engine.clone(),
        database,
        redis,
    };
    let admin_routes = web::admin(health, metrics);
    let (public, admin) = match admin {
        Some(listener) => {
            let public = gateway.filter().or(web::page()).unify().boxed();
            // The admin API beside /healthz and /metrics, when it has a token.
            let private = match config.admin_token.clone() {
                Some(token) => admin_routes
                    .or(admin::routes(engine.clone(), token))
                    .unify()
                    .boxed(),
                None => admin_routes,
            };
            (public, Some((listener, private)))
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
    let http_server = match &certificates {
        Some(certificates) => tokio::spawn(im_transport_ws::serve_tls(
            http,
            certificates.server_config(&[b"http/1.1"])?,
            routes,
            stopped(http_stopped.clone()),
            drain,
        )),
        None => tokio::spawn(im_transport_ws::serve(
            http,
            routes,
            stopped(http_stopped.clone()),
            drain,
        )),
    };
    let admin_server = admin.map(|(listener, routes)| {
        if let Ok(addr) = listener.local_addr() {
            use std::io::Write as _;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "chat-server admin address on http://{addr}");
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

    stop.await;
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

/// Logs to stderr (stdout carries the "listening on" lines): text, in colour only on a
/// terminal, or JSON lines.
fn init_logs(config: &Config) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&config.log).context("invalid --log filter")?;
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => logs.json().with_current_span(false).init(),
    }
    Ok(())
}

/// What the server opened: the engine on its storage, the uploads, and what `/healthz`
/// checks.
struct Opened {
    engine: Engine,
    blobs: LocalDirBlobs,
    database: Option<SqlStorage>,
    redis: Option<cluster::Client>,
    storage_name: String,
}

/// Connects to Redis (cluster mode), opens the uploads directory and the database, and
/// starts the engine.
async fn open(config: &Config) -> anyhow::Result<Opened> {
    let mut builder = Engine::builder().config(config.engine.clone());
    if let Some(id) = &config.node_id {
        builder = builder.node(NodeId::new(id));
    }
    let mut redis = None;
    if let Some(url) = &config.redis {
        let (client, presence, broker) = cluster::connect(url, &config.redis_prefix)
            .await
            .with_context(|| format!("connecting to Redis at {}", redact(url)))?;
        builder = builder.presence(presence).broker(broker);
        redis = Some(client);
    }
    let blobs = LocalDirBlobs::open(&config.uploads)
        .await
        .with_context(|| format!("opening the uploads directory {}", config.uploads.display()))?;
    let mut database = None;
    let (storage, storage_name): (Arc<dyn Storage>, String) = if config.database == "memory" {
        let memory = Arc::new(im_core::memory::MemoryStorage::new());
        (memory, "memory (not kept across restarts)".to_owned())
    } else {
        let storage = SqlStorage::connect_with_pool(&config.database, config.database_pool)
            .await
            .with_context(|| format!("opening the database {}", redact(&config.database)))?;
        database = Some(storage.clone());
        (Arc::new(storage), redact(&config.database))
    };
    // The gate keeps invites in the engine's own storage.
    let gate = registration::CodeGate::new(
        config.registration,
        config.code_command.clone(),
        storage.clone(),
    );
    let engine = builder
        .storage(storage)
        .gate(Arc::new(gate))
        .start()
        .await
        .context("starting the engine")?;
    Ok(Opened {
        engine,
        blobs,
        database,
        redis,
        storage_name,
    })
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM. The handlers are in place when this returns
/// (a signal before that would end the process at once, not gracefully): call it before
/// the server says it is listening.
fn shutdown_signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt()).ok();
        let terminate = signal(SignalKind::terminate()).ok();
        async move {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(interrupt) => {}
                () = wait(terminate) => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
