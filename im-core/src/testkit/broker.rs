//! The [`Broker`] contract, clause by clause.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;

use crate::broker::{Broker, Envelope};
use crate::model::{GroupId, UserId};
use crate::presence::NodeId;
use crate::protocol::FrameClass;

fn deliver(n: u64) -> Envelope {
    Envelope::Deliver {
        users: vec![UserId(n)],
        skip: None,
        device: None,
        class: FrameClass::Durable,
        frame: Bytes::from(format!("{{\"n\":{n}}}")),
        origin: None,
    }
}

async fn next(s: &mut BoxStream<'static, Envelope>) -> Envelope {
    tokio::time::timeout(Duration::from_secs(5), s.next())
        .await
        .expect("no envelope within 5 s")
        .expect("subscription ended")
}

async fn nothing(s: &mut BoxStream<'static, Envelope>) {
    if let Ok(e) = tokio::time::timeout(Duration::from_millis(300), s.next()).await {
        panic!("expected nothing, got {e:?}");
    }
}

/// What is published to a node arrives there, whole and in order.
pub async fn published_envelopes_reach_the_node_in_order(b: Arc<dyn Broker>) {
    let node = NodeId::new("conformance-a");
    let mut sub = b.subscribe(&node).await.expect("subscribe");
    for n in 0..100 {
        b.publish(&node, deliver(n)).await.expect("publish");
    }
    for n in 0..100 {
        assert_eq!(next(&mut sub).await, deliver(n));
    }
}

/// A node does not receive what was published to another.
pub async fn envelopes_reach_only_the_addressed_node(b: Arc<dyn Broker>) {
    let (a, other) = (NodeId::new("conformance-a"), NodeId::new("conformance-b"));
    let mut sub_a = b.subscribe(&a).await.expect("subscribe");
    let mut sub_b = b.subscribe(&other).await.expect("subscribe");
    b.publish(&a, deliver(1)).await.expect("publish");
    assert_eq!(next(&mut sub_a).await, deliver(1));
    nothing(&mut sub_b).await;
    // Publishing to a node nobody subscribed to is not an error.
    b.publish(&NodeId::new("conformance-nobody"), deliver(2))
        .await
        .expect("publish to nobody");
}

/// `broadcast` reaches every subscribed node, the publisher's included.
pub async fn broadcast_reaches_every_node(b: Arc<dyn Broker>) {
    let (a, other) = (NodeId::new("conformance-a"), NodeId::new("conformance-b"));
    let mut sub_a = b.subscribe(&a).await.expect("subscribe");
    let mut sub_b = b.subscribe(&other).await.expect("subscribe");
    let e = Envelope::InvalidateGroup {
        group: GroupId(7),
        origin: a.clone(),
    };
    b.broadcast(e.clone()).await.expect("broadcast");
    assert_eq!(next(&mut sub_a).await, e);
    assert_eq!(next(&mut sub_b).await, e);
}

/// `publish_many` and `broadcast_many` deliver what the single forms called in turn
/// would: every envelope, once, in order, to the nodes addressed.
pub async fn envelopes_published_together_arrive_in_order(b: Arc<dyn Broker>) {
    let (a, other) = (NodeId::new("conformance-a"), NodeId::new("conformance-b"));
    let mut sub_a = b.subscribe(&a).await.expect("subscribe");
    let mut sub_b = b.subscribe(&other).await.expect("subscribe");
    b.publish(&a, deliver(0)).await.expect("publish");
    b.publish_many(&a, (1..200).map(deliver).collect())
        .await
        .expect("publish_many");
    b.publish_many(&a, Vec::new()).await.expect("publish none");
    b.publish(&a, deliver(200)).await.expect("publish");
    b.publish_many(&a, vec![deliver(201)])
        .await
        .expect("publish_many of one");
    for n in 0..=201 {
        assert_eq!(next(&mut sub_a).await, deliver(n));
    }
    let invalidations: Vec<Envelope> = (1..=3)
        .map(|g| Envelope::InvalidateGroup {
            group: GroupId(g),
            origin: a.clone(),
        })
        .collect();
    b.broadcast_many(invalidations.clone())
        .await
        .expect("broadcast_many");
    for sub in [&mut sub_a, &mut sub_b] {
        // The other node got nothing of what went to `a`: the broadcast comes first.
        for e in &invalidations {
            assert_eq!(&next(sub).await, e);
        }
        nothing(sub).await;
    }
}
