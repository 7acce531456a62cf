//! The server's own routes beside the gateway's: the chat page (`/`, `/app.js`,
//! `/style.css`, compiled into the binary), and `/healthz` and `/metrics` (on the main
//! listener, or on their own with `--admin`).

use std::fmt::Write as _;

use crate::health::Health;
use im_core::Engine;
use metrics_exporter_prometheus::PrometheusHandle;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::header::{self, HeaderValue};
use warp::reply::Response;

const INDEX_HTML: &str = include_str!("../web/index.html");
const APP_JS: &str = include_str!("../web/app.js");
const STYLE_CSS: &str = include_str!("../web/style.css");

/// What the page may load and connect to: itself only. No inline script or style, so a
/// message that slipped past escaping still could not run.
const CSP: &str = "default-src 'self'; img-src 'self' blob: data:; connect-src 'self'; \
                   style-src 'self'; script-src 'self'; base-uri 'none'; \
                   frame-ancestors 'none'; form-action 'self'";

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = Response::new(body.into());
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
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
    // The files change with the binary; revalidate rather than serve a stale page.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// The page: `/`, `/app.js`, `/style.css`.
pub(crate) fn page() -> BoxedFilter<(Response,)> {
    warp::get()
        .and(
            warp::path::end()
                .map(|| asset(INDEX_HTML, "text/html; charset=utf-8"))
                .or(warp::path!("app.js").map(|| asset(APP_JS, "text/javascript; charset=utf-8")))
                .unify()
                .or(warp::path!("style.css").map(|| asset(STYLE_CSS, "text/css; charset=utf-8")))
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
