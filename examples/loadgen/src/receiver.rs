//! The receiving side of every scenario: one task per connection, reading through the
//! fast path (`fastrx.rs`), that counts the pushed messages (found by their time marker,
//! without parsing), records their latency, parses a sample of them fully, notes
//! `resync`/`kicked`/closes, answers socket.io pings and pings the im server so an idle
//! session is not closed.
//!
//! Per frame a receiver touches only its own state: counts, and latency samples kept in
//! a small buffer. It adds to the shared [`RecvStats`] once per read (the delivery count,
//! one relaxed atomic add, for progress and the end of the wait) and when it ends (the
//! rest). Rare events (barrier seen, resync, kicked, closed) go to the shared stats as
//! they happen.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cli::System;
use crate::conn::Conn;
use crate::fastrx::End;
use crate::frame::OutBuf;
use crate::payload;
use crate::socketio;
use crate::stats::{Latency, Samples};

/// How often an im receiver pings (the server's idle timeout is 90 s).
const PING_EVERY: Duration = Duration::from_secs(30);

/// What all the receivers of a scenario saw.
#[derive(Debug, Default)]
pub(crate) struct RecvStats {
    /// Pushed messages carrying a time marker (added once per read).
    pub(crate) delivered: AtomicU64,
    /// Receivers that saw a barrier message.
    pub(crate) synced: AtomicU64,
    /// `resync` events.
    pub(crate) resync_events: AtomicU64,
    /// Receivers that got at least one `resync`.
    pub(crate) resynced: AtomicU64,
    /// `kicked` events.
    pub(crate) kicked: AtomicU64,
    /// Connections the server closed (or that broke) while being read.
    pub(crate) closed: AtomicU64,
    /// Connections that ended on a frame these servers never send.
    pub(crate) protocol_errors: AtomicU64,
    /// The first such frame, for the report.
    pub(crate) first_protocol_error: Mutex<Option<String>>,
    /// When the latest marked push arrived (ns since the start; complete once the
    /// receivers have stopped).
    pub(crate) last_push_ns: AtomicU64,
    /// Pushes parsed fully as JSON (complete once the receivers have stopped).
    pub(crate) sampled: AtomicU64,
    /// Parsed pushes that were not what was expected.
    pub(crate) sample_bad: AtomicU64,
    /// Push latency: arrival minus the time in the marker (complete once the receivers
    /// have stopped).
    pub(crate) latency: Latency,
}

impl RecvStats {
    /// Deliveries so far.
    pub(crate) fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }
}

/// How a receiver behaves.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecvMode {
    /// The system (decides pings, pongs and what a push looks like).
    pub(crate) system: System,
    /// Whether to ping the im server (not before `hello`: that is an error).
    pub(crate) ping: bool,
    /// Parse one marked frame in this many fully.
    pub(crate) sample_every: u64,
}

/// The parts of an im `message` event a sample checks (borrowed: no copy).
#[derive(Deserialize)]
struct ImPush<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    #[serde(borrow)]
    event: ImEvent<'a>,
}

#[derive(Deserialize)]
struct ImEvent<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    #[serde(borrow)]
    message: ImMessage<'a>,
}

#[derive(Deserialize)]
struct ImMessage<'a> {
    #[serde(borrow)]
    body: ImBody<'a>,
}

#[derive(Deserialize)]
struct ImBody<'a> {
    #[serde(borrow)]
    text: &'a str,
}

/// Whether `text` is a message text of this generator.
fn is_text(text: &str) -> bool {
    text.len() == payload::TEXT_BYTES && text.starts_with("~t")
}

/// Checks a sampled push: for im a `message` event whose text holds the marker; for the
/// others the bare payload.
fn sample_ok(system: System, frame: &[u8]) -> bool {
    match system {
        System::Im => serde_json::from_slice::<ImPush<'_>>(frame).is_ok_and(|p| {
            p.kind == "event" && p.event.kind == "message" && is_text(p.event.message.body.text)
        }),
        System::Ceiling => std::str::from_utf8(frame).is_ok_and(is_text),
        System::Socketio => frame
            .strip_prefix(b"42")
            .and_then(|json| serde_json::from_slice::<(&str, &str)>(json).ok())
            .is_some_and(|(event, text)| event == "m" && is_text(text)),
    }
}

/// One receiver's own state.
#[derive(Debug)]
struct Tally {
    mode: RecvMode,
    /// Marked pushes received.
    marked: u64,
    /// Marked pushes until the next sampled one.
    until_sample: u64,
    last_push_ns: u64,
    sampled: u64,
    sample_bad: u64,
    samples: Samples,
    synced: bool,
    resynced: bool,
}

impl Tally {
    fn new(mode: RecvMode) -> Self {
        Tally {
            mode,
            marked: 0,
            until_sample: mode.sample_every.max(1),
            last_push_ns: 0,
            sampled: 0,
            sample_bad: 0,
            samples: Samples::default(),
            synced: false,
            resynced: false,
        }
    }

    /// One data frame that arrived at `now`.
    #[inline]
    fn on_data(&mut self, now: u64, frame: &[u8], out: &mut OutBuf, stats: &RecvStats) {
        if let Some(ns) = payload::find_time(frame) {
            self.marked += 1;
            self.last_push_ns = now;
            self.samples.push_ns(now.saturating_sub(ns), &stats.latency);
            self.until_sample -= 1;
            if self.until_sample == 0 {
                self.until_sample = self.mode.sample_every.max(1);
                self.sampled += 1;
                if !sample_ok(self.mode.system, frame) {
                    self.sample_bad += 1;
                }
            }
        } else {
            self.on_other(frame, out, stats);
        }
    }

    /// A frame without a time marker: the barrier, pings, events.
    #[cold]
    fn on_other(&mut self, frame: &[u8], out: &mut OutBuf, stats: &RecvStats) {
        if payload::contains(frame, b"~sync~") {
            if !self.synced {
                self.synced = true;
                stats.synced.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        match self.mode.system {
            System::Socketio if frame == socketio::PING => out.text(socketio::PONG.as_bytes()),
            System::Im if payload::contains(frame, b"\"resync\"") => {
                stats.resync_events.fetch_add(1, Ordering::Relaxed);
                if !self.resynced {
                    self.resynced = true;
                    stats.resynced.fetch_add(1, Ordering::Relaxed);
                }
            }
            System::Im if payload::contains(frame, b"\"kicked\"") => {
                stats.kicked.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    /// Adds what is still local to the shared stats.
    fn merge(&mut self, stats: &RecvStats) {
        self.samples.flush(&stats.latency);
        stats
            .last_push_ns
            .fetch_max(self.last_push_ns, Ordering::Relaxed);
        stats.sampled.fetch_add(self.sampled, Ordering::Relaxed);
        stats
            .sample_bad
            .fetch_add(self.sample_bad, Ordering::Relaxed);
        self.sampled = 0;
        self.sample_bad = 0;
    }
}

/// Counts a connection that ended while being read.
fn count_end(end: End, stats: &RecvStats) {
    stats.closed.fetch_add(1, Ordering::Relaxed);
    if let End::Protocol(e) = end {
        eprintln!("loadgen: PROTOCOL ERROR from the server, connection dropped: {e}");
        stats.protocol_errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut first) = stats.first_protocol_error.lock() {
            first.get_or_insert_with(|| e.to_string());
        }
    }
}

/// What woke a receiver.
enum Wake {
    Cancelled,
    Ping,
    Read(Result<(), End>),
}

/// Reads `conn` until `cancel` (then closes it politely) or until the server closes it.
pub(crate) async fn read_loop(
    conn: Conn,
    mode: RecvMode,
    stats: Arc<RecvStats>,
    cancel: CancellationToken,
) {
    let mut rx = conn.into_fast();
    let mut tally = Tally::new(mode);
    let mut ping_id: u64 = 1 << 40;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    let pinging = mode.ping && mode.system == System::Im;
    let cancelled = cancel.cancelled();
    tokio::pin!(cancelled);
    let end = loop {
        let before = tally.marked;
        let mut on_data =
            |now, frame: &[u8], out: &mut OutBuf| tally.on_data(now, frame, out, &stats);
        let wake = tokio::select! {
            biased;
            () = &mut cancelled => Wake::Cancelled,
            _ = ping.tick(), if pinging => Wake::Ping,
            read = rx.read(&mut on_data) => Wake::Read(read),
        };
        match wake {
            Wake::Cancelled => break None,
            Wake::Ping => {
                ping_id += 1;
                rx.out
                    .text(format!(r#"{{"id":{ping_id},"type":"ping"}}"#).as_bytes());
            }
            Wake::Read(Ok(())) => {
                let new = tally.marked - before;
                if new > 0 {
                    stats.delivered.fetch_add(new, Ordering::Relaxed);
                }
            }
            Wake::Read(Err(end)) => break Some(end),
        }
        if let Err(end) = rx.flush().await {
            break Some(end);
        }
    };
    tally.merge(&stats);
    match end {
        Some(end) => count_end(end, &stats),
        None => rx.close().await,
    }
}

/// The reading receivers of a scenario: their tasks and what they saw.
#[derive(Debug)]
pub(crate) struct Readers {
    /// What they saw.
    pub(crate) stats: Arc<RecvStats>,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Readers {
    /// No receivers yet.
    pub(crate) fn new() -> Self {
        Readers {
            stats: Arc::default(),
            cancel: CancellationToken::new(),
            tasks: Vec::new(),
        }
    }

    /// Starts reading `conn`.
    pub(crate) fn spawn(&mut self, conn: Conn, mode: RecvMode) {
        self.tasks.push(tokio::spawn(read_loop(
            conn,
            mode,
            self.stats.clone(),
            self.cancel.clone(),
        )));
    }

    /// Receivers started.
    pub(crate) fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Stops every receiver, waiting until each has added its figures to
    /// [`Readers::stats`] (and closed its connection).
    pub(crate) async fn stop(&mut self) {
        self.cancel.cancel();
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

/// What became of a connection that was never read until the end (slow-consumer).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct StalledOutcome {
    /// Marked messages found in what it had buffered.
    pub(crate) messages: u64,
    /// Whether a `resync` was among them.
    pub(crate) resync: bool,
    /// Whether a `kicked` was among them.
    pub(crate) kicked: bool,
    /// Whether the server had closed it (the reading ended before going quiet).
    pub(crate) closed: bool,
}

/// Reads a stalled connection to its end, or until nothing arrives for `quiet`.
pub(crate) async fn drain_stalled(mut conn: Conn, quiet: Duration) -> StalledOutcome {
    let mut outcome = StalledOutcome::default();
    loop {
        match tokio::time::timeout(quiet, conn.recv()).await {
            Ok(Some(frame)) => {
                if payload::find_time(&frame).is_some() {
                    outcome.messages += 1;
                } else if payload::contains(&frame, b"\"resync\"") {
                    outcome.resync = true;
                } else if payload::contains(&frame, b"\"kicked\"") {
                    outcome.kicked = true;
                } else if &frame[..] == socketio::PING {
                    let _ = conn.send(socketio::PONG).await;
                }
            }
            Ok(None) => {
                outcome.closed = true;
                return outcome;
            }
            Err(_) => break,
        }
    }
    conn.close().await;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_checked_per_system() {
        let text = payload::text(42);
        let im = format!(
            r#"{{"type":"event","event":{{"type":"message","message":{{"id":1,"conversation":"g:1","seq":1,"sender":1,"client_id":"x","body":{{"type":"text","text":"{text}"}},"sent_at":1}}}}}}"#
        );
        assert!(sample_ok(System::Im, im.as_bytes()));
        assert!(!sample_ok(
            System::Im,
            im.replace("message", "massage").as_bytes()
        ));
        assert!(sample_ok(System::Ceiling, text.as_bytes()));
        assert!(!sample_ok(System::Ceiling, &text.as_bytes()[1..]));
        let sio = socketio::event_frame(&text);
        assert!(sample_ok(System::Socketio, sio.as_bytes()));
        assert!(!sample_ok(
            System::Socketio,
            sio.replace("\"m\"", "\"n\"").as_bytes()
        ));
    }

    #[test]
    fn a_tally_counts_samples_and_answers_socketio_pings() {
        let stats = RecvStats::default();
        let mode = RecvMode {
            system: System::Socketio,
            ping: true,
            sample_every: 4,
        };
        let mut tally = Tally::new(mode);
        let mut out = OutBuf::new(crate::frame::Framing::Ws);
        for i in 0..10 {
            let frame = socketio::event_frame(&payload::text(i * 1000));
            tally.on_data(20_000, frame.as_bytes(), &mut out, &stats);
        }
        tally.on_data(
            20_000,
            b"42[\"m\",\"~sync~ loadgen barrier\"]",
            &mut out,
            &stats,
        );
        tally.on_data(20_000, b"~sync~", &mut out, &stats);
        assert!(out.is_empty());
        tally.on_data(20_000, socketio::PING, &mut out, &stats);
        assert!(!out.is_empty(), "a pong");
        tally.merge(&stats);
        assert_eq!(tally.marked, 10);
        assert_eq!(stats.synced.load(Ordering::Relaxed), 1);
        assert_eq!(stats.sampled.load(Ordering::Relaxed), 2);
        assert_eq!(stats.sample_bad.load(Ordering::Relaxed), 0);
        assert_eq!(stats.last_push_ns.load(Ordering::Relaxed), 20_000);
        assert_eq!(stats.latency.figures("l")[4].1, serde_json::json!(0.02));
    }
}
