//! Redis adapters (feature `redis`), through [`fred`]: [`RedisPresence`] (which devices
//! are online on which node) and [`RedisBroker`] (envelopes between nodes).
//!
//! Keys start with a prefix (default `im`), so several deployments or test runs can share
//! one Redis. Keys that one operation touches together carry the same hash tag (`{…}`):
//! they land in one slot of a Redis Cluster, where a script may only touch keys of one
//! slot.

mod broker;
mod presence;

pub use broker::RedisBroker;
/// The Redis client [`connect`] returns (fred's), to share between the adapters.
pub use fred::prelude::Client;
pub use presence::RedisPresence;

use std::time::Duration;

use fred::prelude::{Builder, ClientLike, Config, ReconnectPolicy};
use im_core::presence::PresenceError;

/// Whether Redis answers `PING` (on a Redis Cluster, the node the client picks), for
/// health checks. A client that is reconnecting fails at once (a `PING` would wait for
/// the connection).
pub async fn ping(client: &Client) -> Result<(), PresenceError> {
    if !client.is_connected() {
        return Err(PresenceError::Unavailable(RECONNECTING.into()));
    }
    let _: String = client.ping(None).await.map_err(unavailable)?;
    Ok(())
}

/// What a call made while the client reconnects fails with. The adapters fail at once
/// rather than queue the command until the connection is back (up to the command
/// timeout): a message's sender waits for its fan-out, and a push skipped meanwhile is
/// made up for by the `resync` every session gets once the broker is back.
pub(crate) const RECONNECTING: &str = "not connected to Redis (reconnecting)";

/// The key prefix when none is given.
pub const DEFAULT_PREFIX: &str = "im";

/// How long one command may take before it fails as unavailable. Redis answers in well
/// under a millisecond; this bounds what a message's sender waits when Redis dies with
/// the command in flight (measured: a send that waited the old 5 s).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(1);

/// Connects to Redis: `redis://host:port` for one server, `redis-cluster://host:port` for
/// a Redis Cluster (any of its nodes). The client reconnects by itself, with backoff from
/// 100 ms to 1 s, for as long as the process runs; the adapters' calls made meanwhile
/// fail at once as unavailable, and a command in flight fails after [`COMMAND_TIMEOUT`].
pub async fn connect(url: &str) -> Result<Client, PresenceError> {
    let config = Config::from_url(url).map_err(|e| PresenceError::Backend(e.to_string()))?;
    let mut builder = Builder::from_config(config);
    builder
        .with_connection_config(|c| {
            c.connection_timeout = Duration::from_secs(5);
        })
        .with_performance_config(|p| {
            p.default_command_timeout = COMMAND_TIMEOUT;
        })
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 1_000, 2));
    let client = builder
        .build()
        .map_err(|e| PresenceError::Backend(e.to_string()))?;
    client.init().await.map_err(unavailable)?;
    Ok(client)
}

/// Whether a Redis error may pass (the connection, a timeout, a cluster moving slots).
pub(crate) fn temporary(e: &fred::error::Error) -> bool {
    use fred::error::ErrorKind;
    // Replies of a server that is starting, failing over or busy.
    const PASSING: [&str; 6] = [
        "BUSY",
        "LOADING",
        "TRYAGAIN",
        "MASTERDOWN",
        "READONLY",
        "CLUSTERDOWN",
    ];
    matches!(
        e.kind(),
        ErrorKind::IO
            | ErrorKind::Timeout
            | ErrorKind::Canceled
            | ErrorKind::Backpressure
            | ErrorKind::Cluster
            | ErrorKind::Routing
    ) || PASSING.iter().any(|p| e.details().starts_with(p))
}

/// A Redis error as a presence error: `Unavailable` when it may pass.
pub(crate) fn unavailable(e: fred::error::Error) -> PresenceError {
    if temporary(&e) {
        PresenceError::Unavailable(e.to_string())
    } else {
        PresenceError::Backend(e.to_string())
    }
}

/// Checks a key prefix: not empty, and no `{` or `}` (which would change the hash tags).
pub(crate) fn check_prefix(prefix: &str) -> Result<(), PresenceError> {
    if prefix.is_empty() || prefix.contains(['{', '}']) {
        return Err(PresenceError::Backend(format!(
            "a Redis key prefix must be non-empty and without braces: {prefix:?}"
        )));
    }
    Ok(())
}
