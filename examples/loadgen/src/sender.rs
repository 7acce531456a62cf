//! The sending side: a writer task that drains a queue of frames and flushes once per
//! batch, and a reader task that matches im `sent` replies to their sends (releasing the
//! send window) or answers socket.io pings.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;

use crate::cli::System;
use crate::clock;
use crate::conn::{Conn, ConnRx, ConnTx};
use crate::im;
use crate::payload;
use crate::report::Report;
use crate::socketio;
use crate::stats::{Latency, rate};

/// Frames written per flush at most.
const BATCH: usize = 256;

/// What the replies to one sender's messages said.
#[derive(Debug, Default)]
pub(crate) struct AckStats {
    /// `sent` replies.
    pub(crate) acked: AtomicU64,
    /// `error` replies to sends.
    pub(crate) errors: AtomicU64,
    /// Of the `errors`, those saying `rate_limited`.
    pub(crate) rate_limited: AtomicU64,
    /// The first error, for the report.
    pub(crate) first_error: Mutex<Option<String>>,
    /// When the latest reply came (ns since the start).
    pub(crate) last_ack_ns: AtomicU64,
    /// Reply latency, from the time in each message's marker.
    pub(crate) latency: Latency,
}

impl AckStats {
    /// Adds `acked`, `send_errors`, `sends_per_sec` (from `first_send_ns` to the last
    /// reply), the `ack_*` latencies and the first send error.
    pub(crate) fn report(&self, first_send_ns: u64, report: &mut Report) {
        let acked = self.acked.load(Ordering::Relaxed);
        let last_ack = self.last_ack_ns.load(Ordering::Relaxed);
        report.figure("acked", acked);
        report.figure("send_errors", self.errors.load(Ordering::Relaxed));
        report.figure(
            "sends_per_sec",
            rate(acked, clock::secs_between(first_send_ns, last_ack)),
        );
        report.figures(self.latency.figures("ack"));
        if let Some(error) = self.first_error.lock().ok().and_then(|e| e.clone()) {
            report.note(format!("first send error: {error}"));
        }
    }
}

/// One sender's own bookkeeping (request ids are per connection).
#[derive(Debug, Default)]
struct Waiting {
    /// Request id → the time its latency counts from, for sends awaiting a reply.
    since: Mutex<HashMap<u64, u64>>,
    /// Replies to this sender's messages.
    answered: AtomicU64,
    /// Whether the server closed the connection (its reading ended on its own).
    closed: AtomicBool,
}

/// One connection that sends marked messages to a conversation (im) or the broadcast.
#[derive(Debug)]
pub(crate) struct Sender {
    system: System,
    conversation: String,
    out: mpsc::UnboundedSender<String>,
    window: Option<Arc<Semaphore>>,
    next_id: u64,
    /// What the replies said (im).
    pub(crate) acks: Arc<AckStats>,
    waiting: Arc<Waiting>,
    /// Messages queued so far.
    pub(crate) sent: u64,
    /// When the first message was queued (ns since the start).
    pub(crate) first_send_ns: Option<u64>,
    /// When the latest message was queued.
    pub(crate) last_send_ns: u64,
    writer: JoinHandle<ConnTx>,
    reader: JoinHandle<()>,
}

impl Sender {
    /// Starts the writer and reader tasks over `conn`. `next_id` is the first request id
    /// not used yet on it; `window` bounds the sends awaiting a reply (im only).
    pub(crate) fn new(
        system: System,
        conn: Conn,
        next_id: u64,
        conversation: String,
        window: Option<usize>,
    ) -> Self {
        Self::with_acks(system, conn, next_id, conversation, window, Arc::default())
    }

    /// Like [`Sender::new`], adding to `acks` (shared by several senders).
    pub(crate) fn with_acks(
        system: System,
        conn: Conn,
        next_id: u64,
        conversation: String,
        window: Option<usize>,
        acks: Arc<AckStats>,
    ) -> Self {
        let (tx, rx) = conn.split();
        let (out, queue) = mpsc::unbounded_channel();
        let waiting = Arc::new(Waiting::default());
        let window = match system {
            System::Im => window.map(|w| Arc::new(Semaphore::new(w.max(1)))),
            _ => None,
        };
        let writer = tokio::spawn(write_loop(system, tx, queue));
        let reader = tokio::spawn(read_loop(
            system,
            rx,
            out.clone(),
            acks.clone(),
            waiting.clone(),
            window.clone(),
        ));
        Sender {
            system,
            conversation,
            out,
            window,
            next_id,
            acks,
            waiting,
            sent: 0,
            first_send_ns: None,
            last_send_ns: 0,
            writer,
            reader,
        }
    }

    fn frame(&mut self, text: &str, wait_from: Option<u64>) -> String {
        match self.system {
            System::Im => {
                let id = self.next_id;
                self.next_id += 1;
                if let (Some(from), Ok(mut waiting)) = (wait_from, self.waiting.since.lock()) {
                    waiting.insert(id, from);
                }
                im::send_frame(id, &self.conversation, text)
            }
            System::Ceiling => text.to_string(),
            System::Socketio => socketio::event_frame(text),
        }
    }

    /// Queues one message whose marker holds `intended` (open loop) or, with `None`, the
    /// time it is queued at, after waiting for room in the window.
    pub(crate) async fn send(&mut self, intended: Option<u64>) -> anyhow::Result<()> {
        if let Some(window) = &self.window {
            window.acquire().await?.forget();
        }
        let now = clock::now_ns();
        let marker = intended.unwrap_or(now);
        let frame = self.frame(&payload::text(marker), Some(marker));
        self.out
            .send(frame)
            .map_err(|_| anyhow::anyhow!("the sender's connection is gone"))?;
        self.sent += 1;
        self.first_send_ns.get_or_insert(now);
        self.last_send_ns = now;
        Ok(())
    }

    /// Queues a barrier message (not counted, not windowed).
    pub(crate) fn send_sync(&mut self) -> anyhow::Result<()> {
        let frame = self.frame(payload::SYNC_TEXT, None);
        self.out
            .send(frame)
            .map_err(|_| anyhow::anyhow!("the sender's connection is gone"))
    }

    /// Whether every queued message got its reply (im), or was queued (others).
    pub(crate) fn all_answered(&self) -> bool {
        match self.system {
            System::Im => self.waiting.answered.load(Ordering::Relaxed) >= self.sent,
            _ => true,
        }
    }

    /// Whether the server closed this sender's connection (socket.io does when a pong
    /// waits behind the sender's own queued messages for longer than its ping timeout).
    pub(crate) fn closed_by_server(&self) -> bool {
        self.waiting.closed.load(Ordering::Relaxed)
    }

    /// Stops both tasks and closes the connection.
    pub(crate) async fn close(self) {
        drop(self.out);
        self.reader.abort();
        if let Ok(mut tx) = self.writer.await {
            tx.close().await;
        }
    }
}

/// Writes what is queued, one flush per batch. On im, pings after 30 s without a write
/// (the server closes connections silent for 90 s; the set-up of a large group may take
/// longer than that).
async fn write_loop(
    system: System,
    mut tx: ConnTx,
    mut queue: mpsc::UnboundedReceiver<String>,
) -> ConnTx {
    const IDLE: Duration = Duration::from_secs(30);
    let mut batch = Vec::with_capacity(BATCH);
    let mut ping_id: u64 = 1 << 41;
    loop {
        let received = if system == System::Im {
            match tokio::time::timeout(IDLE, queue.recv_many(&mut batch, BATCH)).await {
                Ok(n) => n,
                Err(_) => {
                    ping_id += 1;
                    batch.push(format!(r#"{{"id":{ping_id},"type":"ping"}}"#));
                    1
                }
            }
        } else {
            queue.recv_many(&mut batch, BATCH).await
        };
        if received == 0 {
            return tx;
        }
        for frame in batch.drain(..) {
            tx.feed(&frame);
        }
        if tx.flush().await.is_err() {
            return tx;
        }
    }
}

async fn read_loop(
    system: System,
    mut rx: ConnRx,
    out: mpsc::UnboundedSender<String>,
    acks: Arc<AckStats>,
    waiting: Arc<Waiting>,
    window: Option<Arc<Semaphore>>,
) {
    while let Some(frame) = rx.recv().await {
        match system {
            System::Im => {
                if payload::find_time(&frame).is_some() || payload::contains(&frame, b"~sync~") {
                    continue; // a push of a message (from another session of this user)
                }
                let Ok(value) = serde_json::from_slice::<Value>(&frame) else {
                    continue;
                };
                let kind = value["type"].as_str().unwrap_or("");
                if kind != "reply" && kind != "error" {
                    continue;
                }
                let Some(id) = value["id"].as_u64() else {
                    continue;
                };
                let from = waiting.since.lock().ok().and_then(|mut w| w.remove(&id));
                let Some(from) = from else {
                    continue; // a barrier message's reply, or a ping's
                };
                let now = clock::now_ns();
                if kind == "reply" {
                    acks.acked.fetch_add(1, Ordering::Relaxed);
                    acks.latency.record_ns(now.saturating_sub(from));
                } else {
                    acks.errors.fetch_add(1, Ordering::Relaxed);
                    if value["error"]["code"] == "rate_limited" {
                        acks.rate_limited.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Ok(mut first) = acks.first_error.lock() {
                        first.get_or_insert_with(|| value["error"].to_string());
                    }
                }
                acks.last_ack_ns.fetch_max(now, Ordering::Relaxed);
                waiting.answered.fetch_add(1, Ordering::Relaxed);
                if let Some(window) = &window {
                    window.add_permits(1);
                }
            }
            System::Socketio if &frame[..] == socketio::PING => {
                let _ = out.send(socketio::PONG.into());
            }
            _ => {}
        }
    }
    waiting.closed.store(true, Ordering::Relaxed);
}
