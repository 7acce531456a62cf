//! Our protocol's client side, written from docs/protocol.md: connect, `hello`,
//! `register`, `login`, `resume`, groups, `send`, `history`, `conversations`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow, bail};
use serde_json::{Value, json};

use crate::conn::{Conn, Transport};

/// The password of every user the generator registers.
pub(crate) const PASSWORD: &str = "loadgen-password";

/// How long one request may wait for its reply.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// An `error` frame from the server.
#[derive(Debug)]
pub(crate) struct ImError {
    /// The error code (`unauthorized`, `rate_limited`, ...).
    pub(crate) code: String,
    /// The message for people.
    pub(crate) message: String,
}

impl std::fmt::Display for ImError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ImError {}

/// Where the im server is and how to reach it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target {
    /// Its address (HTTP for WebSocket, TCP for TCP).
    pub(crate) addr: SocketAddr,
    /// The transport.
    pub(crate) transport: Transport,
}

impl Target {
    /// Opens a connection (nothing sent yet).
    pub(crate) async fn open(&self) -> anyhow::Result<Conn> {
        match self.transport {
            Transport::Ws => Conn::ws(self.addr, "/ws").await,
            Transport::Tcp => Conn::tcp(self.addr).await,
        }
    }
}

/// A `client_id`, unique per message and time-first (12 hex digits of milliseconds, the
/// process id, a counter), as protocol.md recommends for an ordered index.
pub(crate) fn client_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{ms:012x}{:06x}{n:010x}", std::process::id() & 0xff_ffff)
}

/// The `send` request of a text message (built by hand: this is the hot path, and the
/// text never needs escaping).
pub(crate) fn send_frame(id: u64, conversation: &str, text: &str) -> String {
    format!(
        r#"{{"id":{id},"type":"send","conversation":"{conversation}","client_id":"{}","body":{{"type":"text","text":"{text}"}}}}"#,
        client_id()
    )
}

/// The conversation id of a direct chat between two users.
pub(crate) fn direct_conversation(a: u64, b: u64) -> String {
    format!("d:{}:{}", a.min(b), a.max(b))
}

/// A session after `login`.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The user's id.
    pub(crate) user: u64,
    /// The device token (from `login`).
    pub(crate) token: String,
}

/// One connection speaking the protocol, request by request.
#[derive(Debug)]
pub(crate) struct ImClient {
    conn: Conn,
    next_id: u64,
    /// Events received while waiting for replies.
    pub(crate) events: u64,
}

impl ImClient {
    /// Opens a connection and says `hello`.
    pub(crate) async fn connect(target: &Target) -> anyhow::Result<Self> {
        let conn = target.open().await?;
        let mut client = ImClient {
            conn,
            next_id: 0,
            events: 0,
        };
        client.hello().await?;
        Ok(client)
    }

    /// The `hello` exchange (id 0).
    async fn hello(&mut self) -> anyhow::Result<Value> {
        self.request(json!({"type":"hello","versions":[1],"client":"loadgen"}))
            .await
            .context("hello")
    }

    /// The next request id.
    pub(crate) fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Sends a request and waits for its reply, counting the events that come meanwhile.
    /// An `error` reply becomes an [`ImError`].
    pub(crate) async fn request(&mut self, mut request: Value) -> anyhow::Result<Value> {
        let id = self.next_id();
        request["id"] = json!(id);
        let frame = request.to_string();
        tokio::time::timeout(REQUEST_TIMEOUT, async {
            self.conn.send(&frame).await?;
            loop {
                let Some(frame) = self.conn.recv().await else {
                    bail!("the server closed the connection");
                };
                let value: Value = serde_json::from_slice(&frame).context("a frame not JSON")?;
                match value["type"].as_str() {
                    Some("reply") if value["id"] == id => return Ok(value["reply"].clone()),
                    Some("error") if value["id"] == id || value.get("id").is_none() => {
                        return Err(ImError {
                            code: value["error"]["code"].as_str().unwrap_or("?").into(),
                            message: value["error"]["message"].as_str().unwrap_or("").into(),
                        }
                        .into());
                    }
                    _ => self.events += 1,
                }
            }
        })
        .await
        .map_err(|_| anyhow!("no reply within {REQUEST_TIMEOUT:?}"))?
    }

    /// Registers `username`; returns the new user's id.
    pub(crate) async fn register(&mut self, username: &str) -> anyhow::Result<u64> {
        let reply = self
            .request(json!({"type":"register","username":username,"password":PASSWORD,"display_name":username}))
            .await
            .with_context(|| format!("register {username}"))?;
        reply["user"]["id"].as_u64().context("register: no user id")
    }

    /// Logs in as `username` on device `device`.
    pub(crate) async fn login(&mut self, username: &str, device: &str) -> anyhow::Result<Session> {
        let reply = self
            .request(
                json!({"type":"login","username":username,"password":PASSWORD,
                "device":{"id":device,"name":"loadgen","platform":"other"}}),
            )
            .await
            .with_context(|| format!("login {username}"))?;
        Ok(Session {
            user: reply["user"]["id"].as_u64().context("login: no user id")?,
            token: reply["token"].as_str().context("login: no token")?.into(),
        })
    }

    /// Logs in with a token from an earlier login; returns the user id.
    pub(crate) async fn resume(&mut self, token: &str) -> anyhow::Result<u64> {
        let reply = self
            .request(json!({"type":"resume","token":token}))
            .await
            .context("resume")?;
        reply["user"]["id"].as_u64().context("resume: no user id")
    }

    /// Creates an open group with no other members; returns its id.
    pub(crate) async fn create_open_group(&mut self, name: &str) -> anyhow::Result<u64> {
        let reply = self
            .request(json!({"type":"create_group","name":name,"members":[],"open":true}))
            .await
            .context("create_group")?;
        reply["group"]["id"].as_u64().context("create_group: no id")
    }

    /// Joins an open group.
    pub(crate) async fn join_group(&mut self, group: u64) -> anyhow::Result<()> {
        self.request(json!({"type":"join_group","group":group}))
            .await
            .context("join_group")?;
        Ok(())
    }

    /// The user's conversations (the `conversations` reply's list).
    pub(crate) async fn conversations(&mut self) -> anyhow::Result<Vec<Value>> {
        let reply = self
            .request(json!({"type":"conversations"}))
            .await
            .context("conversations")?;
        Ok(reply["conversations"]
            .as_array()
            .context("conversations: no list")?
            .clone())
    }

    /// One `history` page after `after`: the messages and whether more follow.
    pub(crate) async fn history_after(
        &mut self,
        conversation: &str,
        after: u64,
        limit: u64,
    ) -> anyhow::Result<(Vec<Value>, bool)> {
        let mut reply = self
            .request(
                json!({"type":"history","conversation":conversation,"after":after,"limit":limit}),
            )
            .await
            .context("history")?;
        let messages = match reply["messages"].take() {
            Value::Array(list) => list,
            _ => bail!("history: no messages"),
        };
        Ok((messages, reply["more"].as_bool().unwrap_or(false)))
    }

    /// The connection, to be used directly (split into halves, say).
    pub(crate) fn into_parts(self) -> (Conn, u64) {
        (self.conn, self.next_id)
    }

    /// Closes the connection.
    pub(crate) async fn close(self) {
        self.conn.close().await;
    }
}

/// Registers `username` and logs it in on a new connection (device `lg`).
pub(crate) async fn register_and_login(
    target: &Target,
    username: &str,
) -> anyhow::Result<(ImClient, Session)> {
    let mut client = ImClient::connect(target).await?;
    let mut backoff = Backoff::new();
    loop {
        match client.register(username).await {
            Err(e) if backoff.again(&e).await => {}
            other => {
                other?;
                break;
            }
        }
    }
    loop {
        match client.login(username, "lg").await {
            Err(e) if backoff.again(&e).await => {}
            other => return Ok((client, other?)),
        }
    }
}

/// Tries a set-up step again while the server answers `rate_limited` (its password-hash
/// queue is full under a set-up of many thousands), waiting from 100 ms to 2 s, at most
/// 8 times: a set-up measures what is held afterwards, not how fast logins go.
struct Backoff {
    tries: u32,
    wait: std::time::Duration,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff {
            tries: 0,
            wait: std::time::Duration::from_millis(100),
        }
    }

    /// Whether to try again after `error` (having waited), or give up.
    async fn again(&mut self, error: &anyhow::Error) -> bool {
        let limited = error
            .downcast_ref::<ImError>()
            .is_some_and(|e| e.code == "rate_limited");
        if !limited || self.tries >= 8 {
            return false;
        }
        self.tries += 1;
        tokio::time::sleep(self.wait).await;
        self.wait = (self.wait * 2).min(std::time::Duration::from_secs(2));
        true
    }
}

/// A unique prefix for this run's usernames: `tag` and the clock, in base 36.
pub(crate) fn run_prefix(tag: &str) -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut n = ms % 36u64.pow(7);
    let mut digits = Vec::new();
    for _ in 0..7 {
        digits.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize]);
        n /= 36;
    }
    digits.reverse();
    format!("{tag}{}", String::from_utf8_lossy(&digits))
}
