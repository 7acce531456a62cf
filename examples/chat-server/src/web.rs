//! The server's own routes beside the gateway's: the chat page (`/`, `/app.js`,
//! `/style.css`, compiled into the binary, sent gzipped with an ETag), and `/healthz` and `/metrics` (on the main
//! listener, or on their own with `--admin`).

use std::fmt::Write as _;
use std::hash::{Hash as _, Hasher as _};
use std::io::Write as _;
use std::sync::LazyLock;

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;

use crate::health::Health;
use im_core::Engine;
use metrics_exporter_prometheus::PrometheusHandle;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::header::{self, HeaderValue};
use warp::http::{HeaderMap, StatusCode};
use warp::reply::Response;

const INDEX_HTML: &str = include_str!("../web/index.html");
const APP_JS: &str = include_str!("../web/app.js");
const STYLE_CSS: &str = include_str!("../web/style.css");

/// What the page may load and connect to: itself only. No inline script or style, so a
/// message that slipped past escaping still could not run.
const CSP: &str = "default-src 'self'; img-src 'self' blob: data:; connect-src 'self'; \
                   style-src 'self'; script-src 'self'; base-uri 'none'; \
                   frame-ancestors 'none'; form-action 'self'";

/// One file of the page, as it is sent: its bytes, the same gzipped once at first use,
/// and a tag that changes when the bytes do.
struct Asset {
    plain: Bytes,
    gzipped: Bytes,
    etag: HeaderValue,
    content_type: &'static str,
}

impl Asset {
    fn new(body: &'static str, content_type: &'static str) -> Asset {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
        // Writing to a Vec cannot fail.
        let gzipped = encoder
            .write_all(body.as_bytes())
            .and_then(|()| encoder.finish())
            .unwrap_or_default();
        let mut hasher = std::hash::DefaultHasher::new();
        body.hash(&mut hasher);
        // Weak: the plain and the gzipped bytes are the same file, and If-None-Match
        // compares weakly anyway.
        let etag = HeaderValue::from_str(&format!("W/\"{:016x}\"", hasher.finish()))
            .unwrap_or_else(|_| HeaderValue::from_static("W/\"0\""));
        Asset {
            plain: Bytes::from_static(body.as_bytes()),
            gzipped: Bytes::from(gzipped),
            etag,
            content_type,
        }
    }

    /// The file for a request: `304 Not Modified` when the browser's copy is current,
    /// gzipped when the browser takes gzip (and gzip is smaller), plain otherwise.
    fn respond(&self, headers: &HeaderMap) -> Response {
        let current = headers
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|tag| {
                let tag = tag.trim();
                tag == "*"
                    || tag.trim_start_matches("W/") == self.etag_text().trim_start_matches("W/")
            });
        let mut response = if current {
            let mut response = Response::new(Bytes::new().into());
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            response
        } else if accepts_gzip(headers) && self.gzipped.len() < self.plain.len() {
            let mut response = Response::new(self.gzipped.clone().into());
            response
                .headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            response
        } else {
            Response::new(self.plain.clone().into())
        };
        let headers = response.headers_mut();
        headers.insert(header::ETAG, self.etag.clone());
        headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type),
        );
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        // The files change with the binary: the browser asks each time, and the ETag
        // makes the answer a `304` without a body while they have not.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        response
    }

    fn etag_text(&self) -> &str {
        self.etag.to_str().unwrap_or_default()
    }
}

/// Whether `Accept-Encoding` takes gzip (`gzip`, `gzip;q=0.5`, `*`; not `gzip;q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or_default().trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

static INDEX: LazyLock<Asset> =
    LazyLock::new(|| Asset::new(INDEX_HTML, "text/html; charset=utf-8"));
static APP: LazyLock<Asset> =
    LazyLock::new(|| Asset::new(APP_JS, "text/javascript; charset=utf-8"));
static STYLE: LazyLock<Asset> = LazyLock::new(|| Asset::new(STYLE_CSS, "text/css; charset=utf-8"));

/// The page: `/`, `/app.js`, `/style.css`.
pub(crate) fn page() -> BoxedFilter<(Response,)> {
    let file = |asset: &'static LazyLock<Asset>| {
        warp::header::headers_cloned().map(move |headers: HeaderMap| asset.respond(&headers))
    };
    warp::get()
        .and(
            warp::path::end()
                .and(file(&INDEX))
                .or(warp::path!("app.js").and(file(&APP)))
                .unify()
                .or(warp::path!("style.css").and(file(&STYLE)))
                .unify(),
        )
        .boxed()
}

/// The operator's routes: `/healthz` and `/metrics`.
pub(crate) fn admin(health: Health, metrics: PrometheusHandle) -> BoxedFilter<(Response,)> {
    let engine = health.engine.clone();
    let health = warp::path!("healthz").and(warp::get()).then(move || {
        let health = health.clone();
        async move { health.respond().await }
    });
    let metrics = warp::path!("metrics").and(warp::get()).map(move || {
        let mut body = metrics.render();
        live_gauges(&engine, &mut body);
        let mut response = Response::new(body.into());
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        );
        response
    });
    health.or(metrics).unify().boxed()
}

/// Appends two gauges read at the moment of the scrape: `im_sessions` (the engine's live
/// sessions) and `im_runtime_alive_tasks` (the Tokio runtime's live tasks). A session or
/// task that outlives its connection is a leak RSS shows only much later; the soak
/// (`loadgen soak`) watches both stay flat. Read here rather than kept up to date: they
/// cost nothing between scrapes. Written as text after the recorder's output because
/// this crate does not depend on `metrics` itself; the exposition format is two lines
/// per gauge.
fn live_gauges(engine: &Engine, body: &mut String) {
    let _ = writeln!(body, "# TYPE im_sessions gauge");
    let _ = writeln!(body, "im_sessions {}", engine.session_count());
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        let _ = writeln!(body, "# TYPE im_runtime_alive_tasks gauge");
        let _ = writeln!(
            body,
            "im_runtime_alive_tasks {}",
            runtime.metrics().num_alive_tasks()
        );
    }
}
