//! The HTTP API (`/v1/...`) through the gateway's warp filter: a route of the table (or a
//! path of arbitrary segments), its parameters filled with arbitrary values, arbitrary
//! query strings, methods, tokens and bodies. Whatever comes in, the answer is never a
//! panic or a `500`, and every `/v1/` answer with a body is a JSON object (an error names
//! its `code`).
//!
//! One engine (memory storage) serves every input; two users exist, and the input picks
//! whether to present the first one's token, a malformed one, or none.

#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use im_core::auth::HashCost;
use im_core::engine::RateLimits;
use im_core::{Engine, EngineConfig};
use im_transport_ws::routes::{Param, ROUTES};
use im_transport_ws::{Gateway, WsConfig};
use libfuzzer_sys::fuzz_target;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

#[derive(Arbitrary, Debug)]
struct Input {
    /// A route of the table, or (past its end) a path made of `segments`.
    route: u8,
    /// Overrides the route's method.
    method: Option<u8>,
    /// Values for the route's parameters, in order.
    values: Vec<Value>,
    /// Query parameters beyond the route's own.
    extra_query: Vec<(u8, Value)>,
    segments: Vec<Value>,
    token: u8,
    body: Body,
}

#[derive(Arbitrary, Debug)]
enum Value {
    Small(u8),
    Large(u64),
    Conversation(u8, u8, bool),
    Text(String),
}

#[derive(Arbitrary, Debug)]
enum Body {
    None,
    /// Bytes, labelled JSON or not.
    Raw(bool, Vec<u8>),
    Object(Vec<(u8, Json)>),
}

#[derive(Arbitrary, Debug)]
enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Ints(Vec<u32>),
    Object(Vec<(u8, bool)>),
}

/// Field names the API's bodies use, for bodies that get past the first checks.
const FIELDS: &[&str] = &[
    "username",
    "password",
    "display_name",
    "avatar",
    "device",
    "id",
    "name",
    "platform",
    "old_password",
    "new_password",
    "user",
    "users",
    "note",
    "members",
    "open",
    "to",
    "role",
    "client_id",
    "body",
    "type",
    "text",
    "seq",
    "active",
    "call_id",
    "signal",
    "sdp",
    "conversation",
    "data",
    "url",
];

const JSON: Option<&str> = Some("application/json");

const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"];

impl Value {
    fn render(&self) -> String {
        match self {
            Value::Small(n) => n.to_string(),
            Value::Large(n) => n.to_string(),
            Value::Conversation(a, _, true) => format!("g:{a}"),
            Value::Conversation(a, b, false) => format!("d:{a}:{b}"),
            Value::Text(s) => s.clone(),
        }
    }
}

impl Json {
    fn value(&self) -> serde_json::Value {
        use serde_json::Value as V;
        match self {
            Json::Null => V::Null,
            Json::Bool(b) => V::Bool(*b),
            Json::Int(n) => V::from(*n),
            Json::Float(f) => serde_json::Number::from_f64(*f).map_or(V::Null, V::Number),
            Json::Text(s) => V::from(s.as_str()),
            Json::Ints(v) => V::from(v.clone()),
            Json::Object(fields) => V::Object(
                fields
                    .iter()
                    .map(|(k, b)| (field(*k).to_owned(), V::Bool(*b)))
                    .collect(),
            ),
        }
    }
}

fn field(k: u8) -> &'static str {
    FIELDS[usize::from(k) % FIELDS.len()]
}

/// Percent-encodes everything but unreserved characters, so any text fits in a path.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

struct Server {
    runtime: tokio::runtime::Runtime,
    filter: BoxedFilter<(Response,)>,
    token: String,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (filter, token) = runtime.block_on(async {
            let config = EngineConfig::default()
                .with_hash_cost(HashCost::CHEAPEST)
                .with_rate_limits(RateLimits::unlimited());
            let engine = Engine::builder().config(config).start().await.unwrap();
            let filter = Gateway::new(engine, WsConfig::default(), None).filter();
            let mut token = String::new();
            for name in ["alice", "bob"] {
                let body = serde_json::json!({
                    "username": name, "password": "correct horse", "display_name": name
                });
                call(
                    &filter,
                    "POST",
                    "/v1/register",
                    None,
                    JSON,
                    body.to_string(),
                )
                .await;
                let body = serde_json::json!({
                    "username": name, "password": "correct horse", "device": {"id": "fuzz"}
                });
                let (status, reply) =
                    call(&filter, "POST", "/v1/login", None, JSON, body.to_string()).await;
                assert_eq!(status, StatusCode::OK, "login: {reply}");
                if token.is_empty() {
                    token = reply["token"].as_str().unwrap().to_owned();
                }
            }
            (filter, token)
        });
        Server {
            runtime,
            filter,
            token,
        }
    })
}

async fn call(
    filter: &BoxedFilter<(Response,)>,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: impl AsRef<[u8]>,
) -> (StatusCode, serde_json::Value) {
    let mut request = warp::test::request().method(method).path(path);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    if let Some(token) = token {
        request = request.header("authorization", token);
    }
    let response = request.body(body).reply(filter).await;
    let status = response.status();
    let bytes = response.body();
    let json = if bytes.is_empty() || !path.starts_with("/v1/") {
        serde_json::Value::Null
    } else {
        let json: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_else(|e| {
            panic!("{method} {path}: {status}, a body that is not JSON ({e}): {bytes:?}")
        });
        assert!(
            json.is_object(),
            "{method} {path}: {status}, not an object: {json}"
        );
        if !status.is_success() {
            assert!(
                json["code"].is_string(),
                "{method} {path}: {status}, no code: {json}"
            );
        }
        json
    };
    (status, json)
}

fuzz_target!(|input: Input| {
    let server = server();
    let mut values = input.values.iter();
    let (method, mut path, mut query) = match ROUTES.get(usize::from(input.route)) {
        Some(route) => {
            let mut path = route.path.to_owned();
            let mut query = Vec::new();
            for (name, kind) in route.params {
                let value = values.next().map_or_else(|| "1".to_owned(), Value::render);
                let value = match kind {
                    Param::IntList => format!("{value},2"),
                    Param::Int | Param::Text => value,
                };
                let slot = format!("{{{name}}}");
                if path.contains(&slot) {
                    path = path.replace(&slot, &encode(&value));
                } else {
                    query.push(format!("{name}={}", encode(&value)));
                }
            }
            (route.method.as_str().to_owned(), path, query)
        }
        None => {
            let segments: Vec<String> =
                input.segments.iter().map(|s| encode(&s.render())).collect();
            (
                "GET".to_owned(),
                format!("/v1/{}", segments.join("/")),
                Vec::new(),
            )
        }
    };
    let method = input.method.map_or(method, |m| {
        METHODS[usize::from(m) % METHODS.len()].to_owned()
    });
    for (k, v) in &input.extra_query {
        query.push(format!("{}={}", field(*k), encode(&v.render())));
    }
    if !query.is_empty() {
        path = format!("{path}?{}", query.join("&"));
    }
    // The upgrade route needs a connection, not a request.
    if path.starts_with("/ws") {
        return;
    }
    let token = match input.token % 3 {
        0 => Some(format!("Bearer {}", server.token)),
        1 => Some(format!("Bearer {}x", server.token)),
        _ => None,
    };
    let content_type = match &input.body {
        Body::None => None,
        // Not labelled JSON, as a careless client sends it.
        Body::Raw(false, _) => Some("text/plain"),
        Body::Raw(true, _) | Body::Object(_) => JSON,
    };
    let body = match &input.body {
        Body::None => Vec::new(),
        Body::Raw(_, bytes) => bytes.clone(),
        Body::Object(fields) => serde_json::Value::Object(
            fields
                .iter()
                .map(|(k, v)| (field(*k).to_owned(), v.value()))
                .collect(),
        )
        .to_string()
        .into_bytes(),
    };
    let (status, reply) = server.runtime.block_on(call(
        &server.filter,
        &method,
        &path,
        token.as_deref(),
        content_type,
        body,
    ));
    assert_ne!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{method} {path}: {reply}"
    );
});
