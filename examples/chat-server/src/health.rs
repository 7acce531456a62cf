//! `GET /healthz`: whether this node can serve, for a load balancer or an orchestrator.
//!
//! It answers `200` with `"status": "ok"` when the database answers and, in cluster mode,
//! Redis does too; `503` with `"status": "unavailable"` and the failing part's error
//! otherwise. Each check has [`CHECK_TIMEOUT`]; both run at once.

use std::time::Duration;

use im_core::Engine;
use im_store::SqlStorage;
use serde_json::{Value, json};
use warp::Reply as _;
use warp::http::{StatusCode, header};
use warp::reply::Response;

/// How long one check may take before it counts as failed.
pub(crate) const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What `/healthz` checks.
#[derive(Clone)]
pub(crate) struct Health {
    pub(crate) engine: Engine,
    /// The database, unless the server runs on memory.
    pub(crate) database: Option<SqlStorage>,
    /// Redis, in cluster mode.
    pub(crate) redis: Option<crate::cluster::Client>,
}

/// `{"ok": true}`, or `{"ok": false, "error": …}` after a failure or a timeout.
async fn check<E: std::fmt::Display>(probe: impl Future<Output = Result<(), E>>) -> Value {
    match tokio::time::timeout(CHECK_TIMEOUT, probe).await {
        Ok(Ok(())) => json!({ "ok": true }),
        Ok(Err(e)) => json!({ "ok": false, "error": e.to_string() }),
        Err(_) => json!({ "ok": false, "error": format!("no answer within {CHECK_TIMEOUT:?}") }),
    }
}

impl Health {
    /// Runs the checks; the response `/healthz` sends.
    pub(crate) async fn respond(&self) -> Response {
        let database = async {
            match &self.database {
                Some(db) => Some(check(db.ping()).await),
                None => None,
            }
        };
        let redis = async {
            match &self.redis {
                Some(client) => Some(check(crate::cluster::ping(client)).await),
                None => None,
            }
        };
        let (database, redis) = tokio::join!(database, redis);
        let healthy = [&database, &redis]
            .into_iter()
            .flatten()
            .all(|c| c["ok"] == true);
        let mut body = json!({
            "status": if healthy { "ok" } else { "unavailable" },
            "node": self.engine.node().to_string(),
            "sessions": self.engine.session_count(),
        });
        if let Some(database) = database {
            body["database"] = database;
        }
        if let Some(redis) = redis {
            body["redis"] = redis;
        }
        let status = if healthy {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        let reply = warp::reply::with_status(warp::reply::json(&body), status);
        warp::reply::with_header(reply, header::CACHE_CONTROL, "no-store").into_response()
    }
}
