//! [`Broker`] on Redis pub/sub.
//!
//! Each node listens on a channel of its own, `P:node:{<node id>}`, and every node on
//! `P:all` for broadcasts (`P` is the prefix). On a Redis Cluster a node's channel is a
//! sharded channel (`SPUBLISH`/`SSUBSCRIBE`: it lives on the primary of its slot instead of
//! crossing the whole cluster bus); broadcasts, which are rare (cache invalidations,
//! kicks), use classic pub/sub, which reaches every primary. Envelopes travel as
//! MessagePack, the frame inside as raw bytes.
//!
//! A subscription is a connection of its own, resubscribed by fred after every reconnect.
//! Pub/sub is at most once: what is published while a node's connection is down is lost
//! for it, as the [`Broker`] contract allows (storage is the truth).

use async_trait::async_trait;
use fred::clients::SubscriberClient;
use fred::prelude::{Client, ClientLike, EventInterface, PubsubInterface};
use futures::stream::{BoxStream, StreamExt};
use im_core::broker::{Broker, BrokerError, Envelope};
use im_core::presence::NodeId;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use super::{DEFAULT_PREFIX, check_prefix, connect, temporary};

/// Messages fred may hold for a subscription before the forwarding task takes them. The
/// task only decodes and queues, so this is slack for a moment without CPU.
const PUBSUB_BUFFER: usize = 65_536;

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
}

fn broker_error(e: fred::error::Error) -> BrokerError {
    if temporary(&e) {
        BrokerError::Unavailable(e.to_string())
    } else {
        BrokerError::Backend(e.to_string())
    }
}

fn encode(envelope: &Envelope) -> Result<Vec<u8>, BrokerError> {
    rmp_serde::to_vec_named(envelope)
        .map_err(|e| BrokerError::Backend(format!("encoding an envelope: {e}")))
}

#[async_trait]
impl Broker for RedisBroker {
    async fn publish(&self, node: &NodeId, envelope: Envelope) -> Result<(), BrokerError> {
        let bytes = encode(&envelope)?;
        let channel = self.node_channel(node);
        let _: i64 = if self.sharded() {
            self.client.spublish(channel, bytes).await
        } else {
            self.client.publish(channel, bytes).await
        }
        .map_err(broker_error)?;
        Ok(())
    }

    async fn broadcast(&self, envelope: Envelope) -> Result<(), BrokerError> {
        let _: i64 = self
            .client
            .publish(self.all_channel(), encode(&envelope)?)
            .await
            .map_err(broker_error)?;
        Ok(())
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
        subscriber.init().await.map_err(broker_error)?;
        let _resubscribing = subscriber.manage_subscriptions();
        let mine = self.node_channel(node);
        let all = self.all_channel();
        // The receiver first, so nothing published once a subscription is confirmed
        // can be missed.
        let mut messages = subscriber.message_rx();
        subscriber
            .subscribe(all.clone())
            .await
            .map_err(broker_error)?;
        if self.sharded() {
            subscriber.ssubscribe(mine.clone()).await
        } else {
            subscriber.subscribe(mine.clone()).await
        }
        .map_err(broker_error)?;

        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let message = tokio::select! {
                    message = messages.recv() => message,
                    // The node dropped its stream: stop listening.
                    () = tx.closed() => break,
                };
                match message {
                    Ok(message) => {
                        if *message.channel != *mine && *message.channel != *all {
                            continue;
                        }
                        let Some(bytes) = message.value.as_bytes() else {
                            continue;
                        };
                        match rmp_serde::from_slice::<Envelope>(bytes) {
                            Ok(envelope) => {
                                if tx.send(envelope).is_err() {
                                    break;
                                }
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "an undecodable envelope from Redis")
                            }
                        }
                    }
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "envelopes from Redis dropped: the node fell behind")
                    }
                    Err(RecvError::Closed) => break,
                }
            }
            let _ = subscriber.quit().await;
        });
        Ok(
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) })
                .boxed(),
        )
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
            },
            Envelope::Deliver {
                users: Vec::new(),
                skip: None,
                device: None,
                class: FrameClass::Durable,
                frame: Bytes::new(),
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
        for envelope in envelopes {
            let bytes = encode(&envelope).expect("encode");
            let back: Envelope = rmp_serde::from_slice(&bytes).expect("decode");
            assert_eq!(back, envelope);
        }
    }
}
