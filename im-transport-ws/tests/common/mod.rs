//! A server with the gateway (WebSocket + HTTP) and a TCP transport on 127.0.0.1:0, and
//! an HTTP client for the API.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use im_core::auth::HashCost;
use im_core::engine::RateLimits;
use im_core::{Engine, EngineConfig};
use im_transport_tcp::{TcpConfig, TcpTransport};
use im_transport_ws::{Gateway, LocalDirBlobs, WsConfig};
use reqwest::{Method, StatusCode, header::HeaderMap};
use serde_json::Value;
use tokio::sync::oneshot;

pub const PASSWORD: &str = "correct horse battery";
pub const WAIT: Duration = Duration::from_secs(10);

/// A cheap hash cost and no rate limits unless a test sets them.
pub fn test_config() -> EngineConfig {
    EngineConfig::default()
        .with_hash_cost(HashCost::CHEAPEST)
        .with_rate_limits(RateLimits::unlimited())
}

pub struct Server {
    pub engine: Engine,
    pub gateway: Gateway,
    pub http: SocketAddr,
    pub tcp: SocketAddr,
    pub uploads: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub async fn start() -> Server {
    start_with(test_config(), WsConfig::default()).await
}

pub async fn start_with(config: EngineConfig, ws: WsConfig) -> Server {
    let storage = im_store::SqlStorage::connect("sqlite::memory:")
        .await
        .unwrap();
    let engine = Engine::builder()
        .storage(Arc::new(storage))
        .config(config)
        .start()
        .await
        .unwrap();
    let uploads = tempfile::tempdir().unwrap();
    let blobs = LocalDirBlobs::open(uploads.path()).await.unwrap();
    let gateway = Gateway::new(engine.clone(), ws, Some(Arc::new(blobs)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(
        warp::serve(gateway.filter())
            .incoming(listener)
            .graceful(async {
                let _ = stopped.await;
            })
            .run(),
    );
    let tcp_transport = TcpTransport::bind("127.0.0.1:0", TcpConfig::default())
        .await
        .unwrap();
    let tcp = tcp_transport.local_addr();
    tokio::spawn({
        let engine = engine.clone();
        async move { engine.serve(&tcp_transport).await }
    });
    Server {
        engine,
        gateway,
        http,
        tcp,
        uploads,
        stop: Some(stop),
    }
}

/// One answer of the HTTP API.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    /// The error code of an error answer.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
}

#[derive(Debug, Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

impl Server {
    pub fn api(&self) -> Api {
        Api {
            base: format!("http://{}", self.http),
            http: reqwest::Client::new(),
        }
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.http)
    }
}

impl Api {
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = tokio::time::timeout(WAIT, request.send())
            .await
            .expect("the server answers in time")
            .unwrap();
        answer(response).await
    }

    pub async fn raw(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = tokio::time::timeout(WAIT, request.send())
            .await
            .expect("the server answers in time")
            .unwrap();
        answer(response).await
    }

    /// Registers and logs in `name` (made unique); returns (user id, token).
    pub async fn user(&self, name: &str) -> (u64, String) {
        let answer = self
            .call(
                Method::POST,
                "/v1/register",
                None,
                Some(serde_json::json!({"username": name, "password": PASSWORD, "display_name": name})),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
        let id = answer.body["user"]["id"].as_u64().unwrap();
        let answer = self
            .call(
                Method::POST,
                "/v1/login",
                None,
                Some(serde_json::json!({"username": name, "password": PASSWORD, "device": {"id": "http-test"}})),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        (id, answer.body["token"].as_str().unwrap().to_owned())
    }

    /// Creates a group of one (the caller); returns its id.
    pub async fn group(&self, token: &str) -> u64 {
        let answer = self
            .call(
                Method::POST,
                "/v1/groups",
                Some(token),
                Some(serde_json::json!({"name": "g"})),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
        answer.body["group"]["id"].as_u64().unwrap()
    }

    /// Uploads `file` for `conversation`.
    pub async fn upload(
        &self,
        token: &str,
        conversation: &str,
        file: reqwest::multipart::Part,
    ) -> Answer {
        let form = reqwest::multipart::Form::new()
            .text("conversation", conversation.to_owned())
            .part("file", file);
        self.raw(
            self.http
                .post(format!("{}/v1/attachments", self.base))
                .bearer_auth(token)
                .multipart(form),
        )
        .await
    }

    /// Makes two users friends.
    pub async fn befriend(&self, a: (u64, &str), b: (u64, &str)) {
        let asked = self
            .call(
                Method::POST,
                "/v1/friend-requests",
                Some(a.1),
                Some(serde_json::json!({"user": b.0})),
            )
            .await;
        assert_eq!(asked.status, StatusCode::NO_CONTENT, "{asked:?}");
        let accepted = self
            .call(
                Method::POST,
                &format!("/v1/friend-requests/{}/accept", a.0),
                Some(b.1),
                None,
            )
            .await;
        assert_eq!(accepted.status, StatusCode::NO_CONTENT, "{accepted:?}");
    }
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    Answer {
        status,
        headers,
        body,
    }
}

/// A valid PNG of `w` × `h` pixels, one colour.
pub fn png(w: u32, h: u32) -> Vec<u8> {
    // Stored (uncompressed) deflate blocks keep this free of a compression crate. Each
    // row is a filter byte (0) then the pixels.
    let mut row = vec![0u8];
    for _ in 0..w {
        row.extend_from_slice(&[200, 40, 90]);
    }
    let raw = row.repeat(h as usize);
    let mut zlib = vec![0x78, 0x01];
    for (i, chunk) in raw.chunks(65_535).enumerate() {
        let last = (i + 1) * 65_535 >= raw.len();
        zlib.push(u8::from(last));
        let len = chunk.len() as u16;
        zlib.extend_from_slice(&len.to_le_bytes());
        zlib.extend_from_slice(&(!len).to_le_bytes());
        zlib.extend_from_slice(chunk);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in &raw {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    zlib.extend_from_slice(&((b << 16) | a).to_be_bytes());

    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    for (kind, data) in [(&b"IHDR"[..], ihdr), (b"IDAT", zlib), (b"IEND", Vec::new())] {
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut crc_input = kind.to_vec();
        crc_input.extend_from_slice(&data);
        png.extend_from_slice(&crc_input);
        png.extend_from_slice(&crc32(&crc_input).to_be_bytes());
    }
    png
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
