use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use futures::channel::mpsc;
use futures::stream::{BoxStream, StreamExt};

use crate::broker::{Broker, BrokerError, Envelope};
use crate::presence::NodeId;

/// A broker for nodes that share one process: a single node, or several engines in one
/// test. Delivery is an in-memory channel per subscribed node.
#[derive(Debug, Default)]
pub struct LocalBroker {
    // Unbounded: the subscriber is the node's own dispatcher task, which only hands frames
    // to session queues without waiting, so it keeps up with any publisher.
    subscribers: Mutex<HashMap<NodeId, Vec<mpsc::UnboundedSender<Envelope>>>>,
}

impl LocalBroker {
    /// An empty broker.
    pub fn new() -> Self {
        Self::default()
    }

    fn send_to(subs: &mut Vec<mpsc::UnboundedSender<Envelope>>, envelope: &Envelope) {
        subs.retain(|tx| tx.unbounded_send(envelope.clone()).is_ok());
    }
}

#[async_trait]
impl Broker for LocalBroker {
    async fn publish(&self, node: &NodeId, envelope: Envelope) -> Result<(), BrokerError> {
        let mut map = self.subscribers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(subs) = map.get_mut(node) {
            Self::send_to(subs, &envelope);
        }
        Ok(())
    }

    async fn broadcast(&self, envelope: Envelope) -> Result<(), BrokerError> {
        let mut map = self.subscribers.lock().unwrap_or_else(|p| p.into_inner());
        for subs in map.values_mut() {
            Self::send_to(subs, &envelope);
        }
        Ok(())
    }

    async fn subscribe(&self, node: &NodeId) -> Result<BoxStream<'static, Envelope>, BrokerError> {
        let (tx, rx) = mpsc::unbounded();
        self.subscribers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(node.clone())
            .or_default()
            .push(tx);
        Ok(rx.boxed())
    }
}
