//! The outbound path of one connection: a bounded queue of encoded frames, the rules for
//! what happens when it is full, and the writer task that drains it into the socket.
//!
//! Everything addressed to a connection — replies, and pushes from the fan-out — goes
//! through its one queue, so the writer can batch whatever has piled up into one flush
//! (write coalescing: about 0.2 µs per delivery, against 7 µs for a write and flush per
//! frame).
//!
//! The fan-out never waits on a connection: it [`push`](Outbox::push)es. A queue is bounded
//! twice: in frames (`session_queue`) and in bytes (`session_queue_bytes`), so a reader
//! that falls behind on large frames holds no more memory than on small ones. Droppable
//! frames (typing, presence) are dropped first: they are queued only while the queue is at
//! least half free by both measures. When a durable frame does not fit, the connection is
//! marked *lagging*:
//! further durable pushes are dropped (they are in storage) and the writer, after the
//! batch it is writing, sends one `resync` event telling the client to catch up through
//! sync. A socket that accepts nothing for `write_timeout` is closed. Every drop is
//! counted in `im_frames_dropped_total` by reason, every lagging session in
//! `im_sessions_lagged_total`.
//!
//! The writer runs as a task of its own, so a push wakes only the writer: the reader,
//! idle in another task, is not polled (with one task for both, every push also polled
//! the socket for reading, which costs a read buffer fill in some transports).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{Sink, SinkExt};
use tokio::sync::mpsc;

use super::fanout::Outgoing;
use crate::protocol::{Codec, Event, FrameClass, ServerFrame};
use crate::transport::TransportError;

/// The sending side of a connection's queue. Cheap to clone (the session handle and the
/// connection each hold one).
#[derive(Debug, Clone)]
pub(crate) struct Outbox {
    tx: mpsc::Sender<Bytes>,
    signals: Arc<Signals>,
    /// The most bytes queued at once (a frame is always taken by an empty queue).
    max_bytes: usize,
}

/// Signals between the queue's producers and its writer. The writer waits on the queue
/// alone and looks at these after each batch: a lagging queue is full, so the writer is
/// awake anyway, and a close request puts an empty frame in the queue to wake it. (A
/// `Notify` per signal costs a lock on every wake-up of every writer.)
#[derive(Debug, Default)]
struct Signals {
    /// Durable frames were dropped; the writer owes the client a `resync`.
    lagged: AtomicBool,
    /// Bytes in the queue: added before a frame goes in, taken off as the writer takes
    /// frames out.
    queued_bytes: AtomicUsize,
    /// The last frame to send before closing (a `kicked` notice), if any.
    last: Mutex<Option<Bytes>>,
    /// Set with the close request: the writer sends what is queued, then `last`, then
    /// closes; the reader handles no further request (a revoked or replaced session must
    /// not act while its writer is still flushing).
    closed: AtomicBool,
    /// The connection's codec after the hello exchange, for frames the writer makes.
    codec: Mutex<Codec>,
}

/// The receiving side, owned by the writer.
#[derive(Debug)]
pub(crate) struct Inbox {
    rx: mpsc::Receiver<Bytes>,
    signals: Arc<Signals>,
}

impl Outbox {
    /// A queue of at most `capacity` frames and about `max_bytes` bytes.
    pub(crate) fn new(capacity: usize, max_bytes: usize) -> (Outbox, Inbox) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let signals = Arc::new(Signals::default());
        (
            Outbox {
                tx,
                signals: signals.clone(),
                max_bytes,
            },
            Inbox { rx, signals },
        )
    }

    /// A queue whose frames go nowhere, for a request handled without a connection.
    pub(crate) fn nowhere() -> Outbox {
        Outbox::new(1, usize::MAX).0
    }

    /// Whether `len` more bytes fit within `budget`. An empty queue takes any frame, so a
    /// budget below the frame limit cannot wedge a session.
    fn fits(&self, len: usize, budget: usize) -> bool {
        let queued = self.signals.queued_bytes.load(Ordering::Acquire);
        queued == 0 || queued.saturating_add(len) <= budget
    }

    /// Queues a pushed frame in `codec` without waiting. See the module docs for what
    /// happens when the queue is full.
    pub(crate) fn push(&self, frame: &Outgoing, codec: Codec) {
        let class = frame.class();
        match class {
            FrameClass::Durable if self.signals.lagged.load(Ordering::Acquire) => {
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
        let Some(bytes) = frame.bytes(codec) else {
            return;
        };
        let len = bytes.len();
        let budget = match class {
            FrameClass::Droppable => self.max_bytes / 2,
            FrameClass::Durable => self.max_bytes,
        };
        let sent = if self.fits(len, budget) {
            // Counted before it goes in: the writer may take it out at once.
            self.signals.queued_bytes.fetch_add(len, Ordering::AcqRel);
            let sent = self.tx.try_send(bytes);
            if sent.is_err() {
                self.signals.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            }
            sent
        } else {
            Err(mpsc::error::TrySendError::Full(bytes))
        };
        match sent {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => match class {
                FrameClass::Droppable => {
                    metrics::counter!("im_frames_dropped_total", "reason" => "droppable")
                        .increment(1);
                }
                FrameClass::Durable => {
                    metrics::counter!("im_frames_dropped_total", "reason" => "queue_full")
                        .increment(1);
                    // The queue is full, so the writer has work and will see the mark.
                    if !self.signals.lagged.swap(true, Ordering::AcqRel) {
                        metrics::counter!("im_sessions_lagged_total").increment(1);
                    }
                }
            },
            // The connection is ending; its registry entry goes with it.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Queues a reply, waiting for room: only the connection's own requests wait here,
    /// which is backpressure on a client that does not read. `Err` once the writer is
    /// gone.
    pub(crate) async fn reply(&self, bytes: Bytes) -> Result<(), ()> {
        let len = bytes.len();
        self.signals.queued_bytes.fetch_add(len, Ordering::AcqRel);
        self.tx.send(bytes).await.map_err(|_| {
            self.signals.queued_bytes.fetch_sub(len, Ordering::AcqRel);
        })
    }

    /// Asks the writer to send what is queued, then `last` if given, then close. The
    /// first `last` asked for is the one sent.
    pub(crate) fn close(&self, last: Option<Bytes>) {
        if let Some(frame) = last {
            let mut slot = self.signals.last.lock().unwrap_or_else(|p| p.into_inner());
            if slot.is_none() {
                *slot = Some(frame);
            }
        }
        self.signals.closed.store(true, Ordering::Release);
        // Wakes an idle writer. A full queue needs no wake-up, and the writer of a closed
        // queue is gone.
        let _ = self.tx.try_send(Bytes::new());
    }

    /// Whether a close was asked for.
    pub(crate) fn is_closed(&self) -> bool {
        self.signals.closed.load(Ordering::Acquire)
    }

    /// Records the codec the connection switched to, for frames the writer makes itself.
    pub(crate) fn set_codec(&self, codec: Codec) {
        *self.signals.codec.lock().unwrap_or_else(|p| p.into_inner()) = codec;
    }

    #[cfg(test)]
    pub(crate) fn is_lagging(&self) -> bool {
        self.signals.lagged.load(Ordering::Acquire)
    }
}

/// Why a writer stopped.
pub(crate) type WriterEnd = &'static str;

/// Drains `inbox` into `sink` until the connection closes: everything queued is written,
/// then flushed once. Ends with the reason, for the disconnect metric.
pub(crate) async fn write_loop<S>(
    mut sink: S,
    mut inbox: Inbox,
    max_batch: usize,
    write_timeout: Duration,
) -> WriterEnd
where
    S: Sink<Bytes, Error = TransportError> + Unpin,
{
    let max_batch = max_batch.max(1);
    // Allocated on the first frame, and given back after a large batch: an idle
    // connection keeps no batch buffer.
    let mut batch: Vec<Bytes> = Vec::new();
    let signals = inbox.signals.clone();
    loop {
        if inbox.rx.recv_many(&mut batch, max_batch).await == 0 {
            return "queue closed";
        }
        let taken: usize = batch.iter().map(Bytes::len).sum();
        signals.queued_bytes.fetch_sub(taken, Ordering::AcqRel);
        if signals.closed.load(Ordering::Acquire) {
            // Whatever is already queued goes first (replies, pushes), then the closing
            // notice, if any.
            while let Ok(frame) = inbox.rx.try_recv() {
                batch.push(frame);
            }
            batch.retain(|frame| !frame.is_empty());
            let last = signals
                .last
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            let kicked = last.is_some();
            batch.extend(last);
            let _ = tokio::time::timeout(write_timeout, async {
                for frame in batch.drain(..) {
                    sink.feed(frame).await?;
                }
                sink.close().await
            })
            .await;
            return if kicked { "kicked" } else { "closed" };
        }
        // Claim the lag before writing: a durable frame dropped after this point finds
        // `lagged` clear and is queued behind the resync instead.
        let resync = signals.lagged.swap(false, Ordering::AcqRel);
        // Boxed, like the reader's request handling: an idle writer keeps no room for it.
        let write = Box::pin(async {
            for frame in batch.drain(..) {
                within(write_timeout, sink.feed(frame)).await?;
            }
            if resync {
                let frame = ServerFrame::Event {
                    event: Event::Resync {
                        reason: "session queue overflowed".to_owned(),
                    },
                };
                let codec = *signals.codec.lock().unwrap_or_else(|p| p.into_inner());
                if let Ok(bytes) = codec.encode(&frame) {
                    within(write_timeout, sink.feed(bytes)).await?;
                }
            }
            within(write_timeout, sink.flush()).await
        });
        match write.await {
            Ok(()) => {}
            Err(WriteFailed::Error) => return "write error",
            Err(WriteFailed::Stalled) => {
                metrics::counter!("im_write_timeouts_total").increment(1);
                return "write timeout";
            }
        }
        if batch.capacity() > 64 {
            batch = Vec::new();
        }
    }
}

/// Why a write ended the connection.
enum WriteFailed {
    /// The transport failed.
    Error,
    /// The socket accepted nothing for the write timeout.
    Stalled,
}

/// Runs one write step (feeding one frame, or a flush of what the transport buffered),
/// failing if it does not finish within `limit`. The limit is per step, not per batch:
/// a client that reads slowly but steadily keeps its connection however long a large
/// batch takes, and falls behind into `resync` instead; one whose socket takes nothing
/// for `limit` is closed.
async fn within<F>(limit: Duration, step: F) -> Result<(), WriteFailed>
where
    F: std::future::Future<Output = Result<(), TransportError>>,
{
    let mut step = std::pin::pin!(step);
    // Most steps finish at once: they need no timer.
    let done = match futures::FutureExt::now_or_never(step.as_mut()) {
        Some(done) => done,
        None => tokio::time::timeout(limit, step)
            .await
            .map_err(|_| WriteFailed::Stalled)?,
    };
    done.map_err(|_| WriteFailed::Error)
}

#[cfg(test)]
mod tests {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    use super::*;
    use crate::model::{ConversationId, GroupId, UserId};

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

    fn durable_frame() -> ServerFrame {
        ServerFrame::Event {
            event: Event::FriendAdded { user: UserId(2) },
        }
    }

    fn durable() -> Outgoing {
        Outgoing::new(durable_frame())
    }

    #[test]
    fn droppable_frames_go_first_and_every_drop_is_counted() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let (outbox, mut inbox) = Outbox::new(4, usize::MAX);
        let json = Codec::Json;
        metrics::with_local_recorder(&recorder, || {
            outbox.push(&typing(), json); // queued: the queue is empty
            outbox.push(&durable(), json); // queued
            outbox.push(&typing(), json); // dropped: only half the queue is free
            assert!(!outbox.is_lagging());
            outbox.push(&durable(), json); // queued: durable frames use the whole queue
            outbox.push(&durable(), json); // queued: the queue is now full
            outbox.push(&durable(), json); // dropped: the session is now lagging
            assert!(outbox.is_lagging());
            outbox.push(&durable(), json); // dropped: covered by the resync to come
        });
        let mut queued = 0;
        while inbox.rx.try_recv().is_ok() {
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

    /// The queue is bounded in bytes too: durable frames past the budget make the session
    /// lag, droppable ones stop at half of it, and what the writer takes out makes room.
    #[test]
    fn the_byte_budget_bounds_the_queue() {
        let json = Codec::Json;
        let frame_len = json.encode(&durable_frame()).unwrap().len();
        // Room for three durable frames; the count limit is far away.
        let (outbox, mut inbox) = Outbox::new(64, 3 * frame_len);
        for _ in 0..3 {
            outbox.push(&durable(), json);
        }
        assert!(!outbox.is_lagging());
        outbox.push(&typing(), json); // dropped: past half the budget
        outbox.push(&durable(), json); // dropped: past the budget, and now lagging
        assert!(outbox.is_lagging());
        let mut queued = Vec::new();
        while let Ok(frame) = inbox.rx.try_recv() {
            queued.push(frame);
        }
        assert_eq!(queued.len(), 3);

        // The writer gives back the bytes it takes out (done here by hand).
        let taken: usize = queued.iter().map(Bytes::len).sum();
        inbox
            .signals
            .queued_bytes
            .fetch_sub(taken, Ordering::AcqRel);
        inbox.signals.lagged.store(false, Ordering::Release);
        outbox.push(&typing(), json); // queued: the queue is empty
        assert!(inbox.rx.try_recv().is_ok());

        // An empty queue takes a frame bigger than the whole budget.
        let (outbox, mut inbox) = Outbox::new(64, 1);
        outbox.push(&durable(), json);
        assert!(!outbox.is_lagging());
        assert!(inbox.rx.try_recv().is_ok());
    }

    #[tokio::test]
    async fn a_lagging_queue_is_drained_then_told_to_resync() {
        let (outbox, inbox) = Outbox::new(2, usize::MAX);
        for _ in 0..5 {
            outbox.push(&durable(), Codec::Json);
        }
        let (sink, mut written) = futures::channel::mpsc::unbounded::<Bytes>();
        let sink = sink.sink_map_err(|_| TransportError::Closed);
        let writer = tokio::spawn(write_loop(sink, inbox, 256, Duration::from_secs(5)));
        let mut frames = Vec::new();
        for _ in 0..3 {
            frames.push(futures::StreamExt::next(&mut written).await.unwrap());
        }
        assert!(
            frames[..2]
                .iter()
                .all(|f| f.starts_with(b"{\"type\":\"event\""))
        );
        assert!(
            String::from_utf8_lossy(&frames[2]).contains("\"resync\""),
            "{:?}",
            frames[2]
        );
        outbox.close(None);
        assert_eq!(writer.await.unwrap(), "closed");
    }

    /// A sink that takes one frame every `pace`, or never with `None`.
    fn paced_sink(
        pace: Option<Duration>,
    ) -> (
        impl Sink<Bytes, Error = TransportError> + Unpin,
        std::sync::Arc<std::sync::atomic::AtomicUsize>,
    ) {
        let taken = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = taken.clone();
        let sink = futures::sink::unfold((), move |(), _frame: Bytes| {
            let count = count.clone();
            async move {
                match pace {
                    Some(pace) => tokio::time::sleep(pace).await,
                    None => std::future::pending::<()>().await,
                }
                count.fetch_add(1, Ordering::Relaxed);
                Ok::<_, TransportError>(())
            }
        });
        (Box::pin(sink), taken)
    }

    /// A client reading slowly but steadily is not closed, however long the batch takes
    /// to write: the timeout is for a socket that takes nothing.
    #[tokio::test(start_paused = true)]
    async fn a_slow_but_steady_reader_keeps_its_connection() {
        let (outbox, inbox) = Outbox::new(64, usize::MAX);
        for _ in 0..40 {
            outbox.push(&durable(), Codec::Json);
        }
        // 40 frames at one per 100 ms: 4 s, four times the write timeout.
        let (sink, taken) = paced_sink(Some(Duration::from_millis(100)));
        let writer = tokio::spawn(write_loop(sink, inbox, 256, Duration::from_secs(1)));
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert!(!writer.is_finished(), "the slow reader was closed");
        assert_eq!(taken.load(Ordering::Relaxed), 40);
        // Every byte counted in was counted out as the writer took the frames.
        assert_eq!(outbox.signals.queued_bytes.load(Ordering::Acquire), 0);
        outbox.close(None);
        assert_eq!(writer.await.unwrap(), "closed");
    }

    /// A socket that takes nothing is closed after the write timeout, not later.
    #[tokio::test(start_paused = true)]
    async fn a_stalled_socket_is_closed_after_the_write_timeout() {
        let (outbox, inbox) = Outbox::new(64, usize::MAX);
        outbox.push(&durable(), Codec::Json);
        outbox.push(&durable(), Codec::Json);
        let (sink, _) = paced_sink(None);
        let started = tokio::time::Instant::now();
        let end = write_loop(sink, inbox, 256, Duration::from_secs(1)).await;
        assert_eq!(end, "write timeout");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_secs(1) && took < Duration::from_millis(1_100),
            "closed after {took:?}"
        );
    }
}
