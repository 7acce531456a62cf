//! Cluster mode: presence and delivery across nodes through Redis (feature `redis`).
//! A build without the feature has the same names, and says at start that it cannot
//! run a cluster instead of failing later.

use std::sync::Arc;

use im_core::broker::Broker;
use im_core::presence::Presence;

/// What a node of a cluster talks to Redis with.
#[cfg(feature = "redis")]
pub(crate) use im_store::redis::Client;

/// A build without Redis never has a client.
#[cfg(not(feature = "redis"))]
#[derive(Clone)]
pub(crate) enum Client {}

/// Connects to Redis: the client, and the presence and broker on it, their keys and
/// channels under `prefix`.
#[cfg(feature = "redis")]
pub(crate) async fn connect(
    url: &str,
    prefix: &str,
) -> anyhow::Result<(Client, Arc<dyn Presence>, Arc<dyn Broker>)> {
    let client = im_store::redis::connect(url).await?;
    let presence = im_store::RedisPresence::new(client.clone(), prefix)?;
    let broker = im_store::RedisBroker::new(client.clone(), prefix)?;
    Ok((client, Arc::new(presence), Arc::new(broker)))
}

/// Connects to Redis: this build cannot (`Config::check` refuses `--redis` first).
#[cfg(not(feature = "redis"))]
pub(crate) async fn connect(
    _url: &str,
    _prefix: &str,
) -> anyhow::Result<(Client, Arc<dyn Presence>, Arc<dyn Broker>)> {
    anyhow::bail!("{}", NO_REDIS)
}

/// Whether Redis answers.
#[cfg(feature = "redis")]
pub(crate) async fn ping(client: &Client) -> Result<(), String> {
    im_store::redis::ping(client)
        .await
        .map_err(|e| e.to_string())
}

/// Whether Redis answers: there is no client to ask in this build.
#[cfg(not(feature = "redis"))]
pub(crate) async fn ping(client: &Client) -> Result<(), String> {
    match *client {}
}

/// Why `--redis` is refused by a build without the feature.
#[cfg(not(feature = "redis"))]
pub(crate) const NO_REDIS: &str = "this build has no Redis support, which cluster mode \
    (--redis) needs: build it with `cargo build --release -p chat-server --features cluster`";

/// Why a database URL is refused by a build without its driver, if it is.
pub(crate) fn missing_driver(scheme: &str) -> Option<&'static str> {
    match scheme {
        "postgres" | "postgresql" if !cfg!(feature = "postgres") => Some(
            "this build has no PostgreSQL support: build it with \
             `cargo build --release -p chat-server --features postgres` (or `cluster`)",
        ),
        "mysql" if !cfg!(feature = "mysql") => Some(
            "this build has no MySQL/MariaDB support: build it with \
             `cargo build --release -p chat-server --features mysql`",
        ),
        _ => None,
    }
}
