//! The task that runs one connection: it reads requests and handles them in order (so a
//! client's sends are stored in the order it sent them), while a writer task of its own
//! ([`outbox::write_loop`](super::outbox::write_loop)) drains the connection's queue
//! into the socket.

use std::sync::Arc;

use bytes::Bytes;
use futures::{FutureExt, SinkExt, StreamExt};
use tokio::sync::Notify;

use super::Shared;
use super::outbox::Outbox;
use super::session::SessionHandle;
use crate::model::{DeviceId, Platform, Timestamp, UserId};
use crate::protocol::{
    ClientFrame, Codec, ErrorBody, ErrorCode, KickCode, Request, ServerFrame, request,
};
use crate::transport::{BoxConnection, PeerInfo, TransportError};

/// The per-connection state the request handlers see.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) peer: PeerInfo,
    /// The codec of frames after the hello exchange.
    pub(crate) codec: Codec,
    pub(crate) greeted: bool,
    pub(crate) session: Option<Arc<SessionHandle>>,
    detached: bool,
    outbox: Outbox,
    /// The largest frame the connection may be sent (the engine's frame limit).
    max_frame_bytes: usize,
}

impl Conn {
    fn new(peer: PeerInfo, outbox: Outbox, max_frame_bytes: usize) -> Self {
        Conn {
            peer,
            codec: Codec::Json,
            greeted: false,
            session: None,
            detached: false,
            outbox,
            max_frame_bytes,
        }
    }

    /// A connection with no socket behind it, for a request handled on its own (the
    /// HTTP binding): whatever would be pushed to it goes nowhere.
    pub(crate) fn detached(peer: PeerInfo, codec: Codec) -> Self {
        Conn {
            codec,
            greeted: true,
            detached: true,
            ..Conn::new(peer, Outbox::nowhere(), usize::MAX)
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
            outbox: self.outbox.clone(),
        })
    }

    /// Queues a frame for this connection in `codec`, waiting for room (see
    /// [`Outbox::reply`]). A frame over the frame limit is never handed to the transport
    /// (it would refuse it and the connection would die): the client gets `too_large`,
    /// with the request's id, instead.
    async fn send(&self, codec: Codec, frame: &ServerFrame) -> Result<(), ()> {
        let limit = self.max_frame_bytes;
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
            Ok(bytes) => self.outbox.reply(bytes).await,
            Err(e) => {
                tracing::error!(error = %e, "failed to encode a reply");
                Ok(())
            }
        }
    }

    async fn send_error(&self, id: Option<u64>, error: ErrorBody) {
        let _ = self
            .send(self.codec, &ServerFrame::Error { id, error })
            .await;
    }
}

/// Runs one connection until the peer leaves, the session is kicked, the socket stalls,
/// or the engine shuts down.
///
/// A connection that has sent nothing yet has no outbox, no writer and no request state:
/// only this task, waiting for its first frame (measured, that keeps a connection before
/// `hello` to the socket, the transport's buffers and a few hundred bytes here). The rest
/// comes with the first frame, in a boxed future of its own.
pub(crate) async fn run(shared: Arc<Shared>, conn: BoxConnection) {
    let peer = conn.peer().clone();
    metrics::counter!("im_connections_total", "transport" => peer.transport).increment(1);
    tracing::debug!(?peer, "connection opened");
    shared.hooks.on_connect(&peer).await;

    let (mut sink, mut stream) = conn.split();
    let (reason, user) = match first_item(&shared, &mut stream).await {
        Ok(first) => Box::pin(serve(shared.clone(), peer.clone(), sink, stream, first)).await,
        Err(reason) => {
            // Nothing was queued: say goodbye at the transport level and go.
            let _ = tokio::time::timeout(shared.config.write_timeout, sink.close()).await;
            (reason, None)
        }
    };
    shared.hooks.on_disconnect(&peer, user, reason).await;
    metrics::counter!("im_disconnects_total", "reason" => reason).increment(1);
    tracing::debug!(?peer, reason, "connection closed");
}

/// What a stream yields.
type Item = Option<Result<Bytes, TransportError>>;

/// Waits for the connection's first frame (or its end), within the idle timeout.
async fn first_item(
    shared: &Shared,
    stream: &mut futures::stream::SplitStream<BoxConnection>,
) -> Result<Item, &'static str> {
    let mut shutdown = shared.shutdown.subscribe();
    tokio::select! {
        biased;
        _ = super::stopped(&mut shutdown) => Err("server shutdown"),
        next = tokio::time::timeout(shared.config.idle_timeout, stream.next()) => match next {
            Ok(None) => Err("peer closed"),
            Ok(item) => Ok(item),
            Err(_) => {
                metrics::counter!("im_idle_timeouts_total").increment(1);
                Err("idle timeout")
            }
        },
    }
}

/// Serves a connection from its first frame on: its outbox and writer, the reader, and
/// the session's end. Returns why it ended and whose session it was.
async fn serve(
    shared: Arc<Shared>,
    peer: PeerInfo,
    sink: futures::stream::SplitSink<BoxConnection, Bytes>,
    stream: futures::stream::SplitStream<BoxConnection>,
    first: Item,
) -> (&'static str, Option<UserId>) {
    let (outbox, inbox) = Outbox::new(
        shared.config.session_queue,
        shared.config.session_queue_bytes,
    );
    let mut state = Conn::new(peer, outbox.clone(), shared.config.max_frame_bytes);
    let mut writer = tokio::spawn(super::outbox::write_loop(
        sink,
        inbox,
        shared.config.max_write_batch,
        shared.config.write_timeout,
    ));
    // The reader is never dropped in the middle of a request: a stored message is always
    // pushed and a group change always invalidated. It stops only where it waits for the
    // next frame, when told to (the writer ended) or when the server shuts down.
    let writer_ended = Notify::new();
    let reason = {
        let reader = read_loop(&shared, &mut state, stream, first, &writer_ended);
        tokio::pin!(reader);
        tokio::select! {
            reason = &mut reader => Ok(reason),
            reason = &mut writer => {
                // Nothing more can be sent (kicked, stalled, socket gone). Let a request
                // in flight finish its work; its reply has nowhere to go.
                writer_ended.notify_one();
                let _ = tokio::time::timeout(shared.config.write_timeout, &mut reader).await;
                Err(reason.unwrap_or("writer failed"))
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
                _ => outbox.close(None),
            }
            if tokio::time::timeout(shared.config.write_timeout, &mut writer)
                .await
                .is_err()
            {
                writer.abort();
            }
            reason
        }
    };

    let user = state.session.as_ref().map(|s| s.user);
    if let Some(session) = state.session.take() {
        shared.end_session(&session).await;
    }
    (reason, user)
}

/// Most frames taken at once from what a client has already sent.
const MAX_PIPELINE: usize = 128;

async fn read_loop(
    shared: &Arc<Shared>,
    state: &mut Conn,
    mut stream: futures::stream::SplitStream<BoxConnection>,
    first: Item,
    writer_ended: &Notify,
) -> &'static str {
    let mut shutdown = shared.shutdown.subscribe();
    let mut frames = Vec::new();
    // What the stream said that is not handled yet: the first frame, then whatever came
    // after the frames at hand (its end, an error), acted on once they are handled.
    let mut after = Some(first);
    loop {
        let item = match after.take() {
            Some(item) => item,
            None => {
                // Any frame counts as a sign of life; silence past the idle timeout is a
                // dead peer.
                let next = tokio::select! {
                    biased;
                    _ = writer_ended.notified() => return "writer gone",
                    _ = super::stopped(&mut shutdown) => return "server shutdown",
                    next = tokio::time::timeout(shared.config.idle_timeout, stream.next()) => next,
                };
                match next {
                    Ok(item) => item,
                    Err(_) => {
                        metrics::counter!("im_idle_timeouts_total").increment(1);
                        return "idle timeout";
                    }
                }
            }
        };
        match admit(shared, state, item).await {
            Ok(bytes) => frames.push(bytes),
            Err(end) => return end,
        }
        // Whatever else the client has already sent is taken now, so that pipelined
        // sends are stored together (one commit) instead of one commit each. Nothing is
        // waited for: a lone request is handled at once.
        while frames.len() < MAX_PIPELINE {
            match stream.next().now_or_never() {
                Some(Some(Ok(bytes))) if bytes.len() <= shared.config.max_frame_bytes => {
                    frames.push(bytes);
                }
                Some(item) => {
                    after = Some(item);
                    break;
                }
                None => break,
            }
        }
        // Boxed: handling is a deep stack of futures, and a connection that waits for
        // its next frame (most of them, most of the time) should not carry its space.
        if let Err(end) = Box::pin(handle_frames(shared, state, &mut frames)).await {
            return end;
        }
    }
}

/// A frame from the stream, or why the connection ends (after telling the client, for a
/// frame over the limit).
async fn admit(shared: &Shared, state: &Conn, item: Item) -> Result<Bytes, &'static str> {
    let limit = shared.config.max_frame_bytes;
    match item {
        None => Err("peer closed"),
        // The engine's own limit holds whatever the transport allows.
        Some(Ok(bytes)) if bytes.len() <= limit => Ok(bytes),
        Some(Ok(bytes)) => {
            let message = format!(
                "frame of {} bytes exceeds the limit of {limit}",
                bytes.len()
            );
            state
                .send_error(None, ErrorBody::new(ErrorCode::TooLarge, message))
                .await;
            Err("frame too large")
        }
        Some(Err(TransportError::TooLarge { .. })) => {
            let error = ErrorBody::new(ErrorCode::TooLarge, "frame too large");
            state.send_error(None, error).await;
            Err("frame too large")
        }
        Some(Err(_)) => Err("read error"),
    }
}

/// Handles frames in the order they came, and queues their answers. Consecutive sends
/// of a logged-in session go to storage together. `Err` with the reason the connection
/// ends: the writer is gone, or the session was closed (a kicked session acts no more,
/// though its writer may still be flushing).
async fn handle_frames(
    shared: &Arc<Shared>,
    state: &mut Conn,
    frames: &mut Vec<Bytes>,
) -> Result<(), &'static str> {
    let mut sends = Vec::new();
    for bytes in frames.drain(..) {
        if state.outbox.is_closed() {
            return Err("closing");
        }
        // Decoded one at a time: a `hello` may switch the codec of the frames after it.
        let frame: ClientFrame = match state.codec.decode(&bytes) {
            Ok(frame) => frame,
            Err(e) => {
                send_pipelined(shared, state, &mut sends).await?;
                // Answer with the id if the frame had one, so the client can match it.
                let id = peek_id(state.codec, &bytes);
                let error = ErrorBody::new(ErrorCode::Invalid, e.to_string());
                state.send_error(id, error).await;
                continue;
            }
        };
        match frame.request {
            Request::Send(send) if state.session.is_some() => {
                sends.push((frame.id, send));
            }
            request => {
                send_pipelined(shared, state, &mut sends).await?;
                handle_one(shared, state, frame.id, request).await?;
            }
        }
    }
    send_pipelined(shared, state, &mut sends).await
}

/// Stores and answers the sends gathered so far.
async fn send_pipelined(
    shared: &Arc<Shared>,
    state: &mut Conn,
    sends: &mut Vec<(u64, request::Send)>,
) -> Result<(), &'static str> {
    let Some(me) = state.session.clone() else {
        return Ok(());
    };
    if sends.is_empty() {
        return Ok(());
    }
    if state.outbox.is_closed() {
        return Err("closing");
    }
    metrics::counter!("im_requests_total", "type" => "send").increment(sends.len() as u64);
    metrics::histogram!("im_pipelined_sends").record(sends.len() as f64);
    let (ids, sends): (Vec<u64>, Vec<_>) = sends.drain(..).unzip();
    let answers = shared.send_many(&me, sends).await;
    for (id, answer) in ids.into_iter().zip(answers) {
        let response = match answer {
            Ok(sent) => ServerFrame::Reply {
                id,
                reply: sent.into(),
            },
            Err(e) => ServerFrame::Error {
                id: Some(id),
                error: e.into_body(),
            },
        };
        state
            .send(state.codec, &response)
            .await
            .map_err(|()| "writer gone")?;
    }
    // A batch may have queued many pushes for each recipient. Let their writers drain
    // them before the next batch adds more: on a store that answers at once (memory), a
    // client pipelining hundreds of sends would otherwise fill every member's queue
    // while no writer got to run, and turn the burst into `resync`s.
    tokio::task::yield_now().await;
    Ok(())
}

/// Handles one request and queues its answer.
async fn handle_one(
    shared: &Arc<Shared>,
    state: &mut Conn,
    id: u64,
    request: Request,
) -> Result<(), &'static str> {
    let before = state.codec;
    let response = match shared.handle(state, request).await {
        Ok(reply) => ServerFrame::Reply { id, reply },
        Err(e) => ServerFrame::Error {
            id: Some(id),
            error: e.into_body(),
        },
    };
    if state.codec != before {
        state.outbox.set_codec(state.codec);
    }
    // The reply to `hello` goes out in the codec the hello came in.
    state
        .send(before, &response)
        .await
        .map_err(|()| "writer gone")
}

fn peek_id(codec: Codec, bytes: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct IdOnly {
        id: u64,
    }
    codec.decode::<IdOnly>(bytes).ok().map(|f| f.id)
}
