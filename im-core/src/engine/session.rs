//! Sessions: the registry of logged-in connections on this node, and the task that runs
//! one connection.
//!
//! A connection is one task that drives two halves with `select!`: the reader decodes
//! requests and handles them in order (so a client's sends are stored in the order it
//! sent them), and the writer drains the session's outbound queue. Everything addressed
//! to the session — replies, and pushes from the fan-out — goes through that one bounded
//! queue, so the writer can batch whatever has piled up into one flush.
//!
//! The fan-out never waits on a session: it `try_send`s. Droppable frames (typing,
//! presence) are dropped first: they are queued only while the queue is at least half
//! free. When a durable frame does not fit, the session is marked *lagging*: further
//! durable pushes are dropped (they are in storage) and the writer, after the batch it is
//! writing (at most `max_write_batch` frames), sends one `resync` event telling the
//! client to catch up through sync. A session whose socket accepts nothing for
//! `write_timeout` is closed. Every drop is counted in `im_frames_dropped_total` by
//! reason, every lagging session in `im_sessions_lagged_total`, every disconnect in
//! `im_disconnects_total` by reason.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::sync::{Notify, mpsc};

use super::Shared;
use super::fanout::Outgoing;
use crate::model::{DeviceId, Platform, Timestamp, UserId};
use crate::protocol::{
    ClientFrame, Codec, ErrorBody, ErrorCode, Event, FrameClass, KickCode, ServerFrame,
};
use crate::transport::{BoxConnection, PeerInfo, TransportError};

/// A logged-in session, as the registry and the fan-out see it.
#[derive(Debug)]
pub(crate) struct SessionHandle {
    pub(crate) id: u64,
    pub(crate) user: UserId,
    pub(crate) device: DeviceId,
    pub(crate) platform: Platform,
    pub(crate) codec: Codec,
    pub(crate) since: Timestamp,
    /// A session with no connection (a request handled on its own, as over HTTP).
    detached: bool,
    tx: mpsc::Sender<Bytes>,
    control: Arc<Control>,
}

/// Signals between the session's producers and its writer.
#[derive(Debug, Default)]
pub(crate) struct Control {
    /// Durable frames were dropped; the writer owes the client a `resync`.
    lagged: AtomicBool,
    /// Wakes the writer when `lagged` is set while it waits for frames.
    wake: Notify,
    /// Set to the encoded `kicked` event when the session must close.
    kick: Mutex<Option<Bytes>>,
    /// Wakes the writer to send `kick` and close.
    closing: Notify,
    /// The connection's codec after the hello exchange, for frames the writer makes.
    codec: Mutex<Codec>,
    /// Set with the close request: the reader handles no further request (a revoked or
    /// replaced session must not act while its writer is still flushing).
    closed: AtomicBool,
}

impl Control {
    /// Asks the writer to send what is queued, then `last` if given, then close.
    fn request_close(&self, last: Option<Bytes>) {
        self.closed.store(true, Ordering::Release);
        if let Some(frame) = last {
            let mut kick = self.kick.lock().unwrap_or_else(|p| p.into_inner());
            if kick.is_none() {
                *kick = Some(frame);
            }
        }
        self.closing.notify_one();
    }
}

impl SessionHandle {
    /// What a push this session caused skips: the session itself, which gets a reply
    /// instead; for a detached session nothing, since its caller gets no pushes and the
    /// same device's live sessions (here or elsewhere) should.
    pub(crate) fn skip(&self) -> Option<(u64, &UserId, &DeviceId)> {
        (!self.detached).then_some((self.id, &self.user, &self.device))
    }

    /// Queues a pushed frame without waiting. See the module docs for what happens when
    /// the queue is full.
    pub(crate) fn deliver(&self, frame: &Outgoing) {
        let class = frame.class();
        match class {
            FrameClass::Durable if self.control.lagged.load(Ordering::Acquire) => {
                // The resync the writer is about to send covers this frame.
                metrics::counter!("im_frames_dropped_total", "reason" => "lagging").increment(1);
                return;
            }
            // Droppable frames go first: they only take a queue that is at least half
            // free, so the room that is left is kept for durable ones.
            FrameClass::Droppable if self.tx.capacity() * 2 <= self.tx.max_capacity() => {
                metrics::counter!("im_frames_dropped_total", "reason" => "droppable").increment(1);
                return;
            }
            _ => {}
        }
        let Some(bytes) = frame.bytes(self.codec) else {
            return;
        };
        match self.tx.try_send(bytes) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => match class {
                FrameClass::Droppable => {
                    metrics::counter!("im_frames_dropped_total", "reason" => "droppable")
                        .increment(1);
                }
                FrameClass::Durable => {
                    metrics::counter!("im_frames_dropped_total", "reason" => "queue_full")
                        .increment(1);
                    if !self.control.lagged.swap(true, Ordering::AcqRel) {
                        metrics::counter!("im_sessions_lagged_total").increment(1);
                        self.control.wake.notify_one();
                    }
                }
            },
            // The connection is ending; its registry entry goes with it.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Tells the client why and closes the session.
    pub(crate) fn kick(&self, code: KickCode) {
        let frame = ServerFrame::Event {
            event: Event::Kicked {
                code,
                reason: code.reason().to_owned(),
            },
        };
        if let Ok(bytes) = self.codec.encode(&frame) {
            self.control.request_close(Some(bytes));
        }
    }
}

/// The logged-in sessions of this node, by user.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    // A std lock: it is only held for map operations, never across an await, and the
    // fan-out takes it once per message for all recipients.
    by_user: RwLock<HashMap<UserId, Vec<Arc<SessionHandle>>>>,
}

impl Registry {
    /// Adds a session; returns the sessions of the same device it replaces (to be kicked).
    pub(crate) fn attach(&self, session: Arc<SessionHandle>) -> Vec<Arc<SessionHandle>> {
        let mut map = self.by_user.write().unwrap_or_else(|p| p.into_inner());
        let list = map.entry(session.user).or_default();
        let (replaced, kept): (Vec<_>, Vec<_>) =
            list.drain(..).partition(|s| s.device == session.device);
        *list = kept;
        list.push(session);
        replaced
    }

    /// Removes a session if it is still registered.
    pub(crate) fn detach(&self, user: UserId, session_id: u64) {
        let mut map = self.by_user.write().unwrap_or_else(|p| p.into_inner());
        if let Some(list) = map.get_mut(&user) {
            list.retain(|s| s.id != session_id);
            if list.is_empty() {
                map.remove(&user);
            }
        }
    }

    /// Delivers to the sessions of `users` here, except `skip_session`; adds to `absent`
    /// the users with no session here at all.
    pub(crate) fn deliver(
        &self,
        users: &[UserId],
        skip_session: Option<u64>,
        frame: &Outgoing,
        absent: &mut Vec<UserId>,
    ) {
        let map = self.by_user.read().unwrap_or_else(|p| p.into_inner());
        for user in users {
            match map.get(user) {
                Some(sessions) => {
                    for s in sessions {
                        if Some(s.id) != skip_session {
                            s.deliver(frame);
                        }
                    }
                }
                None => absent.push(*user),
            }
        }
    }

    /// Like [`deliver`](Self::deliver), skipping a device instead of a session id
    /// (envelopes from other nodes name the sender's device), and only to `only`'s
    /// sessions if given.
    pub(crate) fn deliver_skip_device(
        &self,
        users: &[UserId],
        skip: Option<&(UserId, DeviceId)>,
        only: Option<&DeviceId>,
        frame: &Outgoing,
    ) {
        let map = self.by_user.read().unwrap_or_else(|p| p.into_inner());
        for user in users {
            for s in map.get(user).into_iter().flatten() {
                if skip.is_none_or(|(u, d)| *u != s.user || *d != s.device)
                    && only.is_none_or(|d| *d == s.device)
                {
                    s.deliver(frame);
                }
            }
        }
    }

    /// Delivers to one device's session here; whether there was one.
    pub(crate) fn deliver_to_device(
        &self,
        user: UserId,
        device: &DeviceId,
        frame: &Outgoing,
    ) -> bool {
        let map = self.by_user.read().unwrap_or_else(|p| p.into_inner());
        let mut found = false;
        for s in map.get(&user).into_iter().flatten() {
            if &s.device == device {
                s.deliver(frame);
                found = true;
            }
        }
        found
    }

    /// Kicks a user's sessions: one device's, or all but `keep`'s; with `started_before`,
    /// only those that started no later.
    pub(crate) fn kick(
        &self,
        user: UserId,
        device: Option<&DeviceId>,
        keep: Option<&DeviceId>,
        started_before: Option<Timestamp>,
        code: KickCode,
    ) {
        let map = self.by_user.read().unwrap_or_else(|p| p.into_inner());
        for s in map.get(&user).into_iter().flatten() {
            let hit = match device {
                Some(d) => &s.device == d,
                None => keep != Some(&s.device),
            };
            if hit && started_before.is_none_or(|t| s.since <= t) {
                s.kick(code);
            }
        }
    }

    /// Whether the user has any session here.
    pub(crate) fn has_user(&self, user: UserId) -> bool {
        let map = self.by_user.read().unwrap_or_else(|p| p.into_inner());
        map.contains_key(&user)
    }

    /// Whether a session of this device is registered.
    pub(crate) fn has_device(&self, user: UserId, device: &DeviceId) -> bool {
        let map = self.by_user.read().unwrap_or_else(|p| p.into_inner());
        map.get(&user)
            .is_some_and(|list| list.iter().any(|s| &s.device == device))
    }

    /// Every session, for presence refresh.
    pub(crate) fn all(&self) -> Vec<Arc<SessionHandle>> {
        let map = self.by_user.read().unwrap_or_else(|p| p.into_inner());
        map.values().flatten().cloned().collect()
    }

    /// How many sessions there are.
    pub(crate) fn len(&self) -> usize {
        let map = self.by_user.read().unwrap_or_else(|p| p.into_inner());
        map.values().map(Vec::len).sum()
    }
}

/// The per-connection state the request handlers see.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) peer: PeerInfo,
    /// The codec of frames after the hello exchange.
    pub(crate) codec: Codec,
    pub(crate) greeted: bool,
    pub(crate) session: Option<Arc<SessionHandle>>,
    detached: bool,
    tx: mpsc::Sender<Bytes>,
    control: Arc<Control>,
}

impl Conn {
    /// A connection with no socket behind it, for a request handled on its own (the
    /// HTTP binding): whatever would be pushed to it goes nowhere.
    pub(crate) fn detached(peer: PeerInfo, codec: Codec) -> Self {
        let (tx, _) = mpsc::channel(1);
        Conn {
            peer,
            codec,
            greeted: true,
            session: None,
            detached: true,
            tx,
            control: Arc::new(Control::default()),
        }
    }

    /// Makes this connection a logged-in session of `user` on `device`.
    pub(crate) fn new_session(
        &self,
        id: u64,
        user: UserId,
        device: DeviceId,
        platform: Platform,
    ) -> Arc<SessionHandle> {
        Arc::new(SessionHandle {
            id,
            user,
            device,
            platform,
            codec: self.codec,
            since: Timestamp::now(),
            detached: self.detached,
            tx: self.tx.clone(),
            control: self.control.clone(),
        })
    }
}

/// Runs one connection until the peer leaves, the session is kicked, the socket stalls,
/// or the engine shuts down.
pub(crate) async fn run(shared: Arc<Shared>, conn: BoxConnection) {
    let (tx, rx) = mpsc::channel(shared.config.session_queue.max(1));
    let control = Arc::new(Control::default());
    let mut state = Conn {
        peer: conn.peer().clone(),
        codec: Codec::Json,
        greeted: false,
        session: None,
        detached: false,
        tx,
        control: control.clone(),
    };
    metrics::counter!("im_connections_total", "transport" => state.peer.transport).increment(1);
    tracing::debug!(peer = ?state.peer, "connection opened");
    shared.hooks.on_connect(&state.peer).await;

    let (sink, stream) = conn.split();
    let writer = write_loop(&shared, sink, rx, &control);
    tokio::pin!(writer);
    // The reader is never dropped in the middle of a request: a stored message is always
    // pushed and a group change always invalidated. It stops only where it waits for the
    // next frame, when told to (the writer ended) or when the server shuts down.
    let writer_ended = Notify::new();
    let reason = {
        let reader = read_loop(&shared, &mut state, stream, &writer_ended);
        tokio::pin!(reader);
        tokio::select! {
            reason = &mut reader => Ok(reason),
            reason = &mut writer => {
                // Nothing more can be sent (kicked, stalled, socket gone). Let a request
                // in flight finish its work; its reply has nowhere to go.
                writer_ended.notify_one();
                let _ = tokio::time::timeout(shared.config.write_timeout, &mut reader).await;
                Err(reason)
            }
        }
    };
    let reason = match reason {
        Err(reason) => reason,
        // The reader stopped or the server is going away: let the writer send what is
        // queued (a final error, a kick notice), then close, within the write timeout.
        Ok(reason) => {
            match (&state.session, reason) {
                (Some(session), "server shutdown") => session.kick(KickCode::Shutdown),
                _ => control.request_close(None),
            }
            let _ = tokio::time::timeout(shared.config.write_timeout, &mut writer).await;
            reason
        }
    };

    let user = state.session.as_ref().map(|s| s.user);
    if let Some(session) = state.session.take() {
        shared.end_session(&session).await;
    }
    shared.hooks.on_disconnect(&state.peer, user, reason).await;
    metrics::counter!("im_disconnects_total", "reason" => reason).increment(1);
    tracing::debug!(peer = ?state.peer, reason, "connection closed");
}

async fn read_loop(
    shared: &Arc<Shared>,
    state: &mut Conn,
    mut stream: futures::stream::SplitStream<BoxConnection>,
    writer_ended: &Notify,
) -> &'static str {
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        // Any frame counts as a sign of life; silence past the idle timeout is a dead peer.
        let next = tokio::select! {
            biased;
            _ = writer_ended.notified() => return "writer gone",
            _ = super::stopped(&mut shutdown) => return "server shutdown",
            next = tokio::time::timeout(shared.config.idle_timeout, stream.next()) => next,
        };
        let item = match next {
            Ok(Some(item)) => item,
            Ok(None) => return "peer closed",
            Err(_) => {
                metrics::counter!("im_idle_timeouts_total").increment(1);
                return "idle timeout";
            }
        };
        let bytes = match item {
            Ok(bytes) => bytes,
            Err(TransportError::TooLarge { .. }) => {
                let error = ErrorBody::new(ErrorCode::TooLarge, "frame too large");
                send_error(state, shared.config.max_frame_bytes, None, error).await;
                return "frame too large";
            }
            Err(_) => return "read error",
        };
        // The engine's own limit holds whatever the transport allows.
        if bytes.len() > shared.config.max_frame_bytes {
            let error = ErrorBody::new(
                ErrorCode::TooLarge,
                format!(
                    "frame of {} bytes exceeds the limit of {}",
                    bytes.len(),
                    shared.config.max_frame_bytes
                ),
            );
            send_error(state, shared.config.max_frame_bytes, None, error).await;
            return "frame too large";
        }
        let frame: ClientFrame = match state.codec.decode(&bytes) {
            Ok(frame) => frame,
            Err(e) => {
                // Answer with the id if the frame had one, so the client can match it.
                let id = peek_id(state.codec, &bytes);
                let error = ErrorBody::new(ErrorCode::Invalid, e.to_string());
                send_error(state, shared.config.max_frame_bytes, id, error).await;
                continue;
            }
        };
        if state.control.closed.load(Ordering::Acquire) {
            return "closing";
        }
        let id = frame.id;
        let before = state.codec;
        let response = match shared.handle(state, frame.request).await {
            Ok(reply) => ServerFrame::Reply { id, reply },
            Err(e) => ServerFrame::Error {
                id: Some(id),
                error: e.into_body(),
            },
        };
        if state.codec != before {
            *state
                .control
                .codec
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = state.codec;
        }
        // The reply to `hello` goes out in the codec the hello came in.
        if send(state, before, shared.config.max_frame_bytes, &response)
            .await
            .is_err()
        {
            return "writer gone";
        }
    }
}

async fn write_loop(
    shared: &Arc<Shared>,
    mut sink: futures::stream::SplitSink<BoxConnection, Bytes>,
    mut rx: mpsc::Receiver<Bytes>,
    control: &Control,
) -> &'static str {
    let batch_max = shared.config.max_write_batch.max(1);
    let mut batch = Vec::with_capacity(batch_max);
    loop {
        tokio::select! {
            biased;
            _ = control.closing.notified() => {
                // Whatever is already queued goes first (replies, pushes), then the
                // closing notice, if any.
                while let Ok(frame) = rx.try_recv() {
                    batch.push(frame);
                }
                let kick = control.kick.lock().unwrap_or_else(|p| p.into_inner()).take();
                let kicked = kick.is_some();
                batch.extend(kick);
                let _ = tokio::time::timeout(shared.config.write_timeout, async {
                    for frame in batch.drain(..) {
                        sink.feed(frame).await?;
                    }
                    sink.close().await
                })
                .await;
                return if kicked { "kicked" } else { "closed" };
            }
            n = rx.recv_many(&mut batch, batch_max) => {
                if n == 0 {
                    return "queue closed";
                }
            }
            _ = control.wake.notified() => {}
        }
        // Claim the lag before writing: a durable frame dropped after this point finds
        // `lagged` clear and is queued behind the resync instead.
        let resync = control.lagged.swap(false, Ordering::AcqRel);
        let write = async {
            for frame in batch.drain(..) {
                sink.feed(frame).await?;
            }
            if resync {
                let frame = ServerFrame::Event {
                    event: Event::Resync {
                        reason: "session queue overflowed".to_owned(),
                    },
                };
                let codec = *control.codec.lock().unwrap_or_else(|p| p.into_inner());
                if let Ok(bytes) = codec.encode(&frame) {
                    sink.feed(bytes).await?;
                }
            }
            sink.flush().await
        };
        match tokio::time::timeout(shared.config.write_timeout, write).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return "write error",
            Err(_) => {
                metrics::counter!("im_write_timeouts_total").increment(1);
                return "write timeout";
            }
        }
    }
}

/// Sends a reply through the session queue, waiting for room: only this connection's own
/// requests wait here, which is backpressure on the client that is not reading.
///
/// A reply over `limit` is never handed to the transport (it would refuse it and the
/// connection would die): the client gets `too_large`, with the request's id, instead.
async fn send(state: &Conn, codec: Codec, limit: usize, frame: &ServerFrame) -> Result<(), ()> {
    let encoded = codec.encode(frame).and_then(|bytes| {
        if bytes.len() <= limit {
            return Ok(bytes);
        }
        let id = match frame {
            ServerFrame::Reply { id, .. } => Some(*id),
            ServerFrame::Error { id, .. } => *id,
            ServerFrame::Event { .. } => None,
        };
        let message = format!(
            "the reply ({} bytes) exceeds the frame limit of {limit}; ask for a smaller page",
            bytes.len()
        );
        let error = ErrorBody::new(ErrorCode::TooLarge, message);
        codec.encode(&ServerFrame::Error { id, error })
    });
    match encoded {
        Ok(bytes) => state.tx.send(bytes).await.map_err(|_| ()),
        Err(e) => {
            tracing::error!(error = %e, "failed to encode a reply");
            Ok(())
        }
    }
}

async fn send_error(state: &Conn, limit: usize, id: Option<u64>, error: ErrorBody) {
    let _ = send(state, state.codec, limit, &ServerFrame::Error { id, error }).await;
}

fn peek_id(codec: Codec, bytes: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct IdOnly {
        id: u64,
    }
    codec.decode::<IdOnly>(bytes).ok().map(|f| f.id)
}

#[cfg(test)]
mod tests {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    use super::*;
    use crate::model::{ConversationId, GroupId};

    fn session(capacity: usize) -> (SessionHandle, mpsc::Receiver<Bytes>) {
        let (tx, rx) = mpsc::channel(capacity);
        let session = SessionHandle {
            id: 1,
            user: UserId(1),
            device: DeviceId::new("d").unwrap(),
            platform: Platform::Other,
            codec: Codec::Json,
            since: Timestamp::now(),
            detached: false,
            tx,
            control: Arc::new(Control::default()),
        };
        (session, rx)
    }

    fn typing() -> Outgoing {
        Outgoing::new(ServerFrame::Event {
            event: Event::Typing {
                conversation: ConversationId::Group(GroupId(1)),
                user: UserId(2),
                active: true,
                expires_ms: 6000,
            },
        })
    }

    fn durable() -> Outgoing {
        Outgoing::new(ServerFrame::Event {
            event: Event::FriendAdded { user: UserId(2) },
        })
    }

    #[test]
    fn droppable_frames_go_first_and_every_drop_is_counted() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let (s, mut rx) = session(4);
        metrics::with_local_recorder(&recorder, || {
            s.deliver(&typing()); // queued: the queue is empty
            s.deliver(&durable()); // queued
            s.deliver(&typing()); // dropped: only half the queue is free
            assert!(!s.control.lagged.load(Ordering::Acquire));
            s.deliver(&durable()); // queued: durable frames use the whole queue
            s.deliver(&durable()); // queued: the queue is now full
            s.deliver(&durable()); // dropped: the session is now lagging
            assert!(s.control.lagged.load(Ordering::Acquire));
            s.deliver(&durable()); // dropped: covered by the resync to come
        });
        let mut queued = 0;
        while rx.try_recv().is_ok() {
            queued += 1;
        }
        assert_eq!(queued, 4);

        let counters: Vec<(String, Vec<String>, u64)> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter_map(|(key, _, _, value)| match value {
                DebugValue::Counter(n) => Some((
                    key.key().name().to_owned(),
                    key.key().labels().map(|l| l.value().to_owned()).collect(),
                    n,
                )),
                _ => None,
            })
            .collect();
        let count = |name: &str, label: Option<&str>| {
            counters
                .iter()
                .filter(|(n, labels, _)| {
                    n == name && label.is_none_or(|l| labels.iter().any(|x| x == l))
                })
                .map(|(_, _, v)| *v)
                .sum::<u64>()
        };
        assert_eq!(count("im_frames_dropped_total", Some("droppable")), 1);
        assert_eq!(count("im_frames_dropped_total", Some("queue_full")), 1);
        assert_eq!(count("im_frames_dropped_total", Some("lagging")), 1);
        assert_eq!(count("im_sessions_lagged_total", None), 1);
    }
}
