//! [`Broker`] on Redis pub/sub.
//!
//! Each node listens on a channel of its own, `P:node:{<node id>}`, and every node on
//! `P:all` for broadcasts (`P` is the prefix). On a Redis Cluster a node's channel is a
//! sharded channel (`SPUBLISH`/`SSUBSCRIBE`: it lives on the primary of its slot instead of
//! crossing the whole cluster bus); broadcasts, which are rare (cache invalidations,
//! kicks), use classic pub/sub, which reaches every primary. Envelopes travel as
//! MessagePack, the frame inside as raw bytes; those published together (`publish_many`,
//! `broadcast_many`) travel as one message holding an array of them.
//!
//! A subscription is a connection of its own, resubscribed by fred after every reconnect.
//! Pub/sub is at most once: what is published while a node's connection is down is lost
//! for it, as the [`Broker`] contract allows (storage is the truth). So after a
//! reconnection, once its channels are live again, the stream yields
//! [`Envelope::Missed`], and the engine tells its sessions to `resync`; the same when the
//! node falls so far behind that fred drops messages.

use std::time::Duration;

use async_trait::async_trait;
use fred::clients::SubscriberClient;
use fred::prelude::{Client, ClientLike, EventInterface, PubsubInterface};
use fred::types::{ConnectHandle, Message};
use futures::stream::{BoxStream, StreamExt};
use im_core::broker::{Broker, BrokerError, Envelope};
use im_core::presence::NodeId;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use super::{DEFAULT_PREFIX, RECONNECTING, check_prefix, connect, temporary};

/// Messages fred may hold for a subscription before the forwarding task takes them (fred
/// allocates this many slots for each of its notification channels). The task only
/// decodes and queues, so this is slack for a moment without CPU.
const PUBSUB_BUFFER: usize = 4_096;

/// [`Broker`] on Redis or Redis Cluster pub/sub; see the module docs.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use im_core::Engine;
/// use im_store::{RedisBroker, RedisPresence};
///
/// let url = "redis://127.0.0.1:6379";
/// let engine = Engine::builder()
///     .presence(Arc::new(RedisPresence::connect(url).await?))
///     .broker(Arc::new(RedisBroker::connect(url).await?))
///     .start()
///     .await?;
/// # engine.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RedisBroker {
    client: Client,
    prefix: String,
}

impl RedisBroker {
    /// Connects to `url` (`redis://…` or `redis-cluster://…`, see [`connect`]) with the
    /// default key prefix.
    pub async fn connect(url: &str) -> Result<RedisBroker, BrokerError> {
        let client = connect(url).await.map_err(|e| match e {
            im_core::presence::PresenceError::Unavailable(m) => BrokerError::Unavailable(m),
            other => BrokerError::Backend(other.to_string()),
        })?;
        RedisBroker::new(client, DEFAULT_PREFIX)
    }

    /// A broker that publishes through `client` (the app's, connected), under `prefix`;
    /// subscriptions open connections of their own with the same settings.
    pub fn new(client: Client, prefix: &str) -> Result<RedisBroker, BrokerError> {
        check_prefix(prefix).map_err(|e| BrokerError::Backend(e.to_string()))?;
        Ok(RedisBroker {
            client,
            prefix: prefix.to_owned(),
        })
    }

    fn node_channel(&self, node: &NodeId) -> String {
        format!("{}:node:{{{}}}", self.prefix, node)
    }

    fn all_channel(&self) -> String {
        format!("{}:all", self.prefix)
    }

    fn sharded(&self) -> bool {
        self.client.is_clustered()
    }

    /// Fails at once while the client reconnects (see [`RECONNECTING`]).
    fn connected(&self) -> Result<(), BrokerError> {
        if self.client.is_connected() {
            Ok(())
        } else {
            Err(BrokerError::Unavailable(RECONNECTING.into()))
        }
    }
}

fn broker_error(e: fred::error::Error) -> BrokerError {
    if temporary(&e) {
        BrokerError::Unavailable(e.to_string())
    } else {
        BrokerError::Backend(e.to_string())
    }
}

/// One envelope, as a MessagePack map.
fn encode(envelope: &Envelope) -> Result<Vec<u8>, BrokerError> {
    rmp_serde::to_vec_named(envelope)
        .map_err(|e| BrokerError::Backend(format!("encoding an envelope: {e}")))
}

/// Several envelopes (`publish_many`, `broadcast_many`) in one Redis message: a
/// MessagePack array of them.
fn encode_many(envelopes: &[Envelope]) -> Result<Vec<u8>, BrokerError> {
    rmp_serde::to_vec_named(envelopes)
        .map_err(|e| BrokerError::Backend(format!("encoding envelopes: {e}")))
}

/// Whether a message holds an array of envelopes (MessagePack fixarray, array 16 or
/// array 32) rather than one (a map).
fn is_array(bytes: &[u8]) -> bool {
    matches!(bytes.first(), Some(0x90..=0x9f | 0xdc | 0xdd))
}

#[async_trait]
impl Broker for RedisBroker {
    async fn publish(&self, node: &NodeId, envelope: Envelope) -> Result<(), BrokerError> {
        self.publish_bytes(node, encode(&envelope)?).await
    }

    async fn broadcast(&self, envelope: Envelope) -> Result<(), BrokerError> {
        self.broadcast_bytes(encode(&envelope)?).await
    }

    async fn publish_many(
        &self,
        node: &NodeId,
        envelopes: Vec<Envelope>,
    ) -> Result<(), BrokerError> {
        match envelopes.len() {
            0 => Ok(()),
            1 => self.publish_bytes(node, encode(&envelopes[0])?).await,
            _ => self.publish_bytes(node, encode_many(&envelopes)?).await,
        }
    }

    async fn broadcast_many(&self, envelopes: Vec<Envelope>) -> Result<(), BrokerError> {
        match envelopes.len() {
            0 => Ok(()),
            1 => self.broadcast_bytes(encode(&envelopes[0])?).await,
            _ => self.broadcast_bytes(encode_many(&envelopes)?).await,
        }
    }

    async fn subscribe(&self, node: &NodeId) -> Result<BoxStream<'static, Envelope>, BrokerError> {
        let mut perf = self.client.perf_config();
        perf.broadcast_channel_capacity = PUBSUB_BUFFER;
        let subscriber = SubscriberClient::new(
            self.client.client_config(),
            Some(perf),
            Some(self.client.connection_config().clone()),
            self.client.client_reconnect_policy(),
        );
        // Created before connecting: fred reports the first connection as a reconnection
        // too, before `init` returns, and those are drained below.
        let mut reconnects = subscriber.reconnect_rx();
        let connection = subscriber.init().await.map_err(broker_error)?;
        while reconnects.try_recv().is_ok() {}
        let resubscribing = subscriber.manage_subscriptions();
        let tasks = Tasks {
            subscriber,
            connection,
            resubscribing,
        };
        // The receiver first, so that nothing published once the channels are live is
        // missed.
        let mut messages = tasks.subscriber.message_rx();
        let mine = self.node_channel(node);
        let all = self.all_channel();
        let early = match self
            .listen(&tasks.subscriber, &mut messages, &mine, &all)
            .await
        {
            Ok(early) => early,
            Err(e) => {
                tasks.stop().await;
                return Err(e);
            }
        };

        let (tx, rx) = mpsc::unbounded_channel();
        let broker = self.clone();
        tokio::spawn(async move {
            let mut open = early.into_iter().all(|m| forward(m, &tx, &mine, &all));
            while open {
                tokio::select! {
                    message = messages.recv() => {
                        open = match message {
                            Ok(message) => forward(message, &tx, &mine, &all),
                            Err(RecvError::Lagged(missed)) => {
                                tracing::warn!(missed, "envelopes from Redis dropped: the node fell behind");
                                missed_some(&tx, format!("{missed} envelopes from other nodes dropped"))
                            }
                            Err(RecvError::Closed) => false,
                        };
                    }
                    reconnected = reconnects.recv() => {
                        if matches!(reconnected, Err(RecvError::Closed)) {
                            break;
                        }
                        // Whatever was published while the connection was down is lost:
                        // once the subscriptions are live again, say so, then go on.
                        let early = loop {
                            match broker.listen(&tasks.subscriber, &mut messages, &mine, &all).await {
                                Ok(early) => break early,
                                Err(e) => {
                                    tracing::warn!(error = %e, "renewing the subscription; trying again");
                                    tokio::time::sleep(Duration::from_millis(500)).await;
                                    if tx.is_closed() {
                                        break Vec::new();
                                    }
                                }
                            }
                        };
                        open = missed_some(&tx, "the link to Redis was interrupted".to_owned())
                            && early.into_iter().all(|m| forward(m, &tx, &mine, &all));
                    }
                    // The node dropped its stream: stop listening.
                    () = tx.closed() => break,
                }
            }
            tasks.stop().await;
        });
        Ok(
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) })
                .boxed(),
        )
    }
}

impl RedisBroker {
    async fn publish_bytes(&self, node: &NodeId, bytes: Vec<u8>) -> Result<(), BrokerError> {
        self.connected()?;
        let channel = self.node_channel(node);
        let _: i64 = if self.sharded() {
            self.client.spublish(channel, bytes).await
        } else {
            self.client.publish(channel, bytes).await
        }
        .map_err(broker_error)?;
        Ok(())
    }

    async fn broadcast_bytes(&self, bytes: Vec<u8>) -> Result<(), BrokerError> {
        self.connected()?;
        let _: i64 = self
            .client
            .publish(self.all_channel(), bytes)
            .await
            .map_err(broker_error)?;
        Ok(())
    }
}

/// The marker of probe messages (see [`RedisBroker::listen`]).
const PROBE: &[u8] = b"im-probe:";

/// A subscription's connection and the tasks fred runs for it.
struct Tasks {
    subscriber: SubscriberClient,
    connection: ConnectHandle,
    resubscribing: tokio::task::JoinHandle<()>,
}

impl Tasks {
    /// Closes the connection and ends both tasks, whether or not Redis answers.
    async fn stop(self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.subscriber.quit()).await;
        self.resubscribing.abort();
        self.connection.abort();
    }
}

impl RedisBroker {
    /// Subscribes to `all` and to the node's channel `mine`, and returns once both are
    /// live, with what arrived on them meanwhile. fred answers a plain `SUBSCRIBE` before
    /// Redis has, so the node publishes probes to its own channel until one comes back:
    /// its channel is then live, and so is `all`, subscribed before it on the same
    /// connection (on a Redis Cluster, `SSUBSCRIBE` itself waits for Redis's answer).
    async fn listen(
        &self,
        subscriber: &SubscriberClient,
        messages: &mut tokio::sync::broadcast::Receiver<Message>,
        mine: &str,
        all: &str,
    ) -> Result<Vec<Message>, BrokerError> {
        subscriber.subscribe(all).await.map_err(broker_error)?;
        if self.sharded() {
            subscriber.ssubscribe(mine).await
        } else {
            subscriber.subscribe(mine).await
        }
        .map_err(broker_error)?;
        let mut probe = PROBE.to_vec();
        probe.extend_from_slice(mine.as_bytes());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut early = Vec::new();
        loop {
            let _: i64 = if self.sharded() {
                self.client.spublish(mine, probe.clone()).await
            } else {
                self.client.publish(mine, probe.clone()).await
            }
            .map_err(broker_error)?;
            let wait = tokio::time::sleep(Duration::from_millis(100));
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    message = messages.recv() => match message {
                        Ok(m) if *m.channel == *mine && m.value.as_bytes() == Some(&probe[..]) => {
                            return Ok(early);
                        }
                        Ok(m) => early.push(m),
                        Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => {
                            return Err(BrokerError::Unavailable("the subscription closed".into()));
                        }
                    },
                    () = &mut wait => break,
                }
            }
            if tokio::time::Instant::now() > deadline {
                return Err(BrokerError::Unavailable(format!(
                    "the subscription to {mine} did not become live within 10 s"
                )));
            }
        }
    }
}

/// Tells the node that envelopes may have been lost; false once it has dropped its stream.
fn missed_some(tx: &mpsc::UnboundedSender<Envelope>, reason: String) -> bool {
    tx.send(Envelope::Missed { reason }).is_ok()
}

/// Hands a message on `mine` or `all` to the node, decoded; false once the node has
/// dropped its stream.
fn forward(message: Message, tx: &mpsc::UnboundedSender<Envelope>, mine: &str, all: &str) -> bool {
    if *message.channel != *mine && *message.channel != *all {
        return true;
    }
    let Some(bytes) = message.value.as_bytes() else {
        return true;
    };
    if bytes.starts_with(PROBE) {
        return true;
    }
    let decoded = if is_array(bytes) {
        rmp_serde::from_slice::<Vec<Envelope>>(bytes)
    } else {
        rmp_serde::from_slice::<Envelope>(bytes).map(|e| vec![e])
    };
    match decoded {
        Ok(envelopes) => envelopes.into_iter().all(|e| tx.send(e).is_ok()),
        Err(e) => {
            tracing::warn!(error = %e, "an undecodable envelope from Redis");
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use im_core::model::{DeviceId, GroupId, Timestamp, UserId};
    use im_core::protocol::{FrameClass, KickCode};

    use super::*;

    /// Every kind of envelope, with every optional field set, comes back as it went.
    #[test]
    fn every_envelope_survives_messagepack() {
        let device = || DeviceId::new("phone").expect("id");
        let node = NodeId::new("node-1");
        let envelopes = [
            Envelope::Deliver {
                users: vec![UserId(1), UserId(u64::MAX)],
                skip: Some((UserId(1), device())),
                device: Some(device()),
                class: FrameClass::Droppable,
                frame: Bytes::from_static(b"{\"type\":\"event\"}\xff\x00"),
                origin: Some(node.clone()),
            },
            Envelope::Deliver {
                users: Vec::new(),
                skip: None,
                device: None,
                class: FrameClass::Durable,
                frame: Bytes::new(),
                origin: None,
            },
            Envelope::InvalidateGroup {
                group: GroupId(7),
                origin: node.clone(),
            },
            Envelope::InvalidateContacts {
                a: UserId(2),
                b: UserId(3),
                origin: node.clone(),
            },
            Envelope::Kick {
                user: UserId(4),
                device: None,
                keep: Some(device()),
                started_before: Some(Timestamp(1_700_000_000_000)),
                code: KickCode::PasswordChanged,
                origin: node.clone(),
            },
            Envelope::Kick {
                user: UserId(4),
                device: Some(device()),
                keep: None,
                started_before: None,
                code: KickCode::Revoked,
                origin: node,
            },
        ];
        for envelope in &envelopes {
            let bytes = encode(envelope).expect("encode");
            assert!(!is_array(&bytes));
            let back: Envelope = rmp_serde::from_slice(&bytes).expect("decode");
            assert_eq!(&back, envelope);
        }
        // Several in one message, as publish_many sends them, whatever the array's size.
        for n in [2, 15, 16, 70_000] {
            let many: Vec<Envelope> = envelopes.iter().cycle().take(n).cloned().collect();
            let bytes = encode_many(&many).expect("encode");
            assert!(is_array(&bytes), "{n} envelopes not sent as an array");
            let back: Vec<Envelope> = rmp_serde::from_slice(&bytes).expect("decode");
            assert_eq!(back, many);
        }
    }
}
