//! The envelopes this node sends to the others, published in batches by one task.
//!
//! A fan-out used to await its broker publish (and, for a group, the presence check
//! that another node is up) before the next message could be pushed. On a network
//! broker each message then cost a round trip on the sender's side, and the receiving
//! nodes got one envelope per round trip: their writer tasks woke for every frame and
//! wrote one frame per system call. A burst to a 1,000-member group over three nodes
//! cost 6.1 times the server CPU per delivery of one node (docs/benchmarks.md, "Cluster
//! mode").
//!
//! So envelopes are queued here, and one task publishes whatever queued up while it
//! published the previous batch: one [`Broker::publish_many`] per node and one
//! [`Broker::broadcast_many`], at most [`MAX_BATCH`] envelopes each. The sender pushes a
//! pipelined batch of messages without waiting on the broker, and a receiving node gets
//! them together and delivers them before its writers run, so each writer sends them in
//! one write. Order per target is kept (the queue is first in, first out). The queue is
//! bounded: when the broker falls behind, fan-outs wait for room, as they waited on
//! every publish before.
//!
//! Broadcast deliveries to a group are queued without asking presence whether another
//! node is up; the task asks once per batch and drops them when none is (one node, the
//! common case, pays no broker round trip and one presence call per batch).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use tokio::sync::mpsc;

use crate::broker::{Broker, Envelope};
use crate::presence::{NodeId, Presence};

/// Most envelopes in one `publish_many` or `broadcast_many`.
pub(crate) const MAX_BATCH: usize = 128;

/// Envelopes that may wait in the queue before fan-outs wait for room.
const QUEUE: usize = 4 * MAX_BATCH;

/// Where an envelope goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// One node.
    Node(NodeId),
    /// Every node.
    All,
    /// Every node, if another one is up (a group's delivery).
    AllIfOthers,
}

/// The handle fan-outs queue envelopes through.
#[derive(Debug)]
pub(crate) struct Relay {
    queue: mpsc::Sender<(Target, Envelope)>,
}

impl Relay {
    /// Starts the publishing task, which ends when the relay is dropped. Must be called
    /// inside a tokio runtime.
    pub(crate) fn start(
        broker: Arc<dyn Broker>,
        presence: Arc<dyn Presence>,
        node: NodeId,
    ) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(publish_batches(broker, presence, node, rx));
        Relay { queue }
    }

    /// Queues `envelope` for `node`.
    pub(crate) async fn publish(&self, node: NodeId, envelope: Envelope) {
        self.queue(Target::Node(node), envelope).await;
    }

    /// Queues `envelope` for every node.
    pub(crate) async fn broadcast(&self, envelope: Envelope) {
        self.queue(Target::All, envelope).await;
    }

    /// Queues `envelope` for every node, to be dropped if no other node is up when it is
    /// published.
    pub(crate) async fn broadcast_if_others(&self, envelope: Envelope) {
        self.queue(Target::AllIfOthers, envelope).await;
    }

    async fn queue(&self, target: Target, envelope: Envelope) {
        if self.queue.send((target, envelope)).await.is_err() {
            // Only if the runtime is shutting down (the task survives adapter panics).
            tracing::error!("the broker relay is gone; an envelope to other nodes is lost");
        }
    }
}

async fn publish_batches(
    broker: Arc<dyn Broker>,
    presence: Arc<dyn Presence>,
    node: NodeId,
    mut rx: mpsc::Receiver<(Target, Envelope)>,
) {
    let mut batch: Vec<(Target, Envelope)> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        metrics::histogram!("im_relay_batch").record(batch.len() as f64);
        // A panic in an adapter loses this batch, not every batch after it: the task is
        // the node's only way to the others.
        let publish = publish_batch(&*broker, &*presence, &node, &mut batch);
        if AssertUnwindSafe(publish).catch_unwind().await.is_err() {
            batch.clear();
            metrics::counter!("im_relay_panics_total").increment(1);
            tracing::error!(
                "the broker or presence adapter panicked; a batch of envelopes is lost"
            );
        }
    }
}

/// Publishes one batch: one call per node and one broadcast, failures logged (pushes are
/// best effort; sync recovers what remote devices miss).
async fn publish_batch(
    broker: &dyn Broker,
    presence: &dyn Presence,
    node: &NodeId,
    batch: &mut Vec<(Target, Envelope)>,
) {
    let others = if batch.iter().any(|(t, _)| *t == Target::AllIfOthers) {
        match presence.others_online(node).await {
            Ok(others) => others,
            Err(e) => {
                tracing::warn!(error = %e, "presence lookup failed; remote pushes skipped");
                false
            }
        }
    } else {
        false
    };
    let mut all = Vec::new();
    let mut by_node: Vec<(NodeId, Vec<Envelope>)> = Vec::new();
    for (target, envelope) in batch.drain(..) {
        match target {
            Target::All => all.push(envelope),
            Target::AllIfOthers if others => all.push(envelope),
            Target::AllIfOthers => {}
            Target::Node(to) => match by_node.iter_mut().find(|(n, _)| *n == to) {
                Some((_, envelopes)) => envelopes.push(envelope),
                None => by_node.push((to, vec![envelope])),
            },
        }
    }
    if !all.is_empty()
        && let Err(e) = broker.broadcast_many(all).await
    {
        tracing::warn!(error = %e, "broker broadcast failed");
    }
    for (to, envelopes) in by_node {
        if let Err(e) = broker.publish_many(&to, envelopes).await {
            tracing::warn!(node = %to, error = %e, "broker publish failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use async_trait::async_trait;
    use bytes::Bytes;
    use futures::stream::BoxStream;

    use super::*;
    use crate::broker::BrokerError;
    use crate::memory::MemoryPresence;
    use crate::model::{GroupId, UserId};
    use crate::presence::PresenceEntry;
    use crate::protocol::FrameClass;

    /// Records each call a relay makes, with the envelopes in it. With `fail_first`, the
    /// first call fails instead (an error, or a panic when it says so) and is not recorded.
    #[derive(Debug, Default)]
    struct Recording {
        calls: Mutex<Vec<(Option<NodeId>, Vec<Envelope>)>>,
        fail_first: Option<Failure>,
        failed: std::sync::atomic::AtomicBool,
    }

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Failure {
        Error,
        Panic,
    }

    impl Recording {
        fn record(
            &self,
            node: Option<&NodeId>,
            envelopes: Vec<Envelope>,
        ) -> Result<(), BrokerError> {
            if let Some(failure) = self.fail_first
                && !self.failed.swap(true, std::sync::atomic::Ordering::SeqCst)
            {
                if failure == Failure::Panic {
                    panic!("the adapter panicked (on purpose)");
                }
                return Err(BrokerError::Backend("down (on purpose)".into()));
            }
            self.calls.lock().unwrap().push((node.cloned(), envelopes));
            Ok(())
        }
    }

    #[async_trait]
    impl Broker for Recording {
        async fn publish(&self, node: &NodeId, envelope: Envelope) -> Result<(), BrokerError> {
            self.publish_many(node, vec![envelope]).await
        }
        async fn broadcast(&self, envelope: Envelope) -> Result<(), BrokerError> {
            self.broadcast_many(vec![envelope]).await
        }
        async fn publish_many(
            &self,
            node: &NodeId,
            envelopes: Vec<Envelope>,
        ) -> Result<(), BrokerError> {
            self.record(Some(node), envelopes)
        }
        async fn broadcast_many(&self, envelopes: Vec<Envelope>) -> Result<(), BrokerError> {
            self.record(None, envelopes)
        }
        async fn subscribe(&self, _: &NodeId) -> Result<BoxStream<'static, Envelope>, BrokerError> {
            Err(BrokerError::Backend("not for subscribing".into()))
        }
    }

    /// A failed publish, or a panic in the broker adapter, loses that batch only: the
    /// relay goes on publishing what is queued after it.
    #[tokio::test]
    async fn a_failed_or_panicking_publish_loses_one_batch_only() {
        for failure in [Failure::Error, Failure::Panic] {
            let broker = Arc::new(Recording {
                fail_first: Some(failure),
                ..Recording::default()
            });
            let relay = Relay::start(
                broker.clone(),
                Arc::new(MemoryPresence::new()),
                NodeId::new("me"),
            );
            let to = NodeId::new("a");
            relay.publish(to.clone(), deliver(1)).await;
            // The first batch is taken (and fails) before the second is queued.
            for _ in 0..500 {
                if broker.failed.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            relay.publish(to.clone(), deliver(2)).await;
            let calls = published(&broker, 1).await;
            assert_eq!(calls, vec![(Some(to), vec![deliver(2)])], "{failure:?}");
        }
    }

    fn deliver(n: u64) -> Envelope {
        Envelope::Deliver {
            users: vec![UserId(n)],
            skip: None,
            device: None,
            class: FrameClass::Durable,
            frame: Bytes::from(format!("{n}")),
            origin: None,
        }
    }

    fn invalidate(n: u64) -> Envelope {
        Envelope::InvalidateGroup {
            group: GroupId(n),
            origin: NodeId::new("me"),
        }
    }

    /// Waits until the relay has published `n` envelopes.
    async fn published(broker: &Recording, n: usize) -> Vec<(Option<NodeId>, Vec<Envelope>)> {
        for _ in 0..500 {
            let calls = broker.calls.lock().unwrap().clone();
            if calls.iter().map(|(_, e)| e.len()).sum::<usize>() >= n {
                return calls;
            }
            drop(calls);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the relay did not publish {n} envelopes within 5 s");
    }

    /// Envelopes queued while the task could not run go out in one call per target, in
    /// the order they were queued, at most `MAX_BATCH` each.
    #[tokio::test(flavor = "current_thread")]
    async fn what_queued_meanwhile_goes_out_together_in_order() {
        let broker = Arc::new(Recording::default());
        let presence = Arc::new(MemoryPresence::new());
        let relay = Relay::start(broker.clone(), presence, NodeId::new("me"));
        let (a, b) = (NodeId::new("a"), NodeId::new("b"));
        // On one thread, the task runs only once this test awaits something that waits.
        for n in 0..(MAX_BATCH as u64 + 10) {
            relay.publish(a.clone(), deliver(n)).await;
        }
        relay.publish(b.clone(), deliver(1_000)).await;
        relay.broadcast(invalidate(1)).await;
        relay.broadcast(invalidate(2)).await;
        let calls = published(&broker, MAX_BATCH + 13).await;
        let to_a: Vec<Envelope> = calls
            .iter()
            .filter(|(n, _)| n.as_ref() == Some(&a))
            .flat_map(|(_, e)| e.clone())
            .collect();
        assert_eq!(
            to_a,
            (0..MAX_BATCH as u64 + 10).map(deliver).collect::<Vec<_>>()
        );
        assert!(calls.iter().all(|(_, e)| e.len() <= MAX_BATCH));
        // The first MAX_BATCH went out in one call, the rest in a second batch.
        assert_eq!(calls.len(), 4, "{calls:?}");
        let to_all: Vec<Envelope> = calls
            .iter()
            .filter(|(n, _)| n.is_none())
            .flat_map(|(_, e)| e.clone())
            .collect();
        assert_eq!(to_all, vec![invalidate(1), invalidate(2)]);
    }

    /// A group's delivery goes out only while another node is up; other broadcasts
    /// always.
    #[tokio::test]
    async fn group_deliveries_go_out_only_when_another_node_is_up() {
        let broker = Arc::new(Recording::default());
        let presence = Arc::new(MemoryPresence::new());
        let me = NodeId::new("me");
        let relay = Relay::start(broker.clone(), presence.clone(), me.clone());
        relay.broadcast_if_others(deliver(1)).await;
        relay.broadcast(invalidate(1)).await;
        let calls = published(&broker, 1).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(calls, vec![(None, vec![invalidate(1)])]);

        let other = PresenceEntry {
            user: UserId(9),
            device: crate::model::DeviceId::new("phone").unwrap(),
            platform: crate::model::Platform::Web,
            node: NodeId::new("other"),
            since: crate::model::Timestamp(0),
        };
        presence
            .set_online(&[other], Duration::from_secs(60))
            .await
            .unwrap();
        relay.broadcast_if_others(deliver(2)).await;
        let calls = published(&broker, 2).await;
        assert_eq!(calls.last(), Some(&(None, vec![deliver(2)])));
    }
}
