//! The [`Presence`] contract, clause by clause.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use crate::model::{DeviceId, Platform, Timestamp, UserId};
use crate::presence::{NodeId, Presence, PresenceEntry};

fn entry(user: u64, device: &str, node: &str) -> PresenceEntry {
    PresenceEntry {
        user: UserId(user),
        device: DeviceId::new(device).expect("valid device id"),
        platform: Platform::Mobile,
        node: NodeId::new(node),
        since: Timestamp::now(),
    }
}

fn devices(entries: &[PresenceEntry]) -> BTreeSet<(u64, String, String)> {
    entries
        .iter()
        .map(|e| (e.user.0, e.device.to_string(), e.node.to_string()))
        .collect()
}

const TTL: Duration = Duration::from_secs(30);

/// `online` lists the live entries of the users asked for, and only theirs.
pub async fn online_devices_are_listed_per_user(p: Arc<dyn Presence>) {
    p.set_online(
        &[
            entry(1, "a", "n1"),
            entry(1, "b", "n2"),
            entry(2, "c", "n1"),
        ],
        TTL,
    )
    .await
    .expect("set_online");
    let got = p.online(&[UserId(1)]).await.expect("online");
    assert_eq!(
        devices(&got),
        BTreeSet::from([(1, "a".into(), "n1".into()), (1, "b".into(), "n2".into())])
    );
    assert_eq!(
        p.online(&[UserId(1), UserId(2)])
            .await
            .expect("online")
            .len(),
        3
    );
    assert!(p.online(&[UserId(3)]).await.expect("online").is_empty());
    assert!(p.online(&[]).await.expect("online").is_empty());
}

/// `online_elsewhere` leaves out the entries on the given node.
pub async fn online_elsewhere_leaves_out_the_node_s_own(p: Arc<dyn Presence>) {
    p.set_online(
        &[
            entry(1, "a", "n1"),
            entry(1, "b", "n2"),
            entry(2, "c", "n1"),
        ],
        TTL,
    )
    .await
    .expect("set_online");
    let got = p
        .online_elsewhere(&[UserId(1), UserId(2)], &NodeId::new("n1"))
        .await
        .expect("online_elsewhere");
    assert_eq!(
        devices(&got),
        BTreeSet::from([(1, "b".into(), "n2".into())])
    );
    let none = p
        .online_elsewhere(&[UserId(2)], &NodeId::new("n1"))
        .await
        .expect("online_elsewhere");
    assert!(none.is_empty());
}

/// A later `set_online` for the same device replaces its entry (it moved nodes).
pub async fn set_online_replaces_a_device_s_entry(p: Arc<dyn Presence>) {
    p.set_online(&[entry(1, "a", "n1")], TTL)
        .await
        .expect("set_online");
    p.set_online(&[entry(1, "a", "n2")], TTL)
        .await
        .expect("set_online");
    let got = p.online(&[UserId(1)]).await.expect("online");
    assert_eq!(
        devices(&got),
        BTreeSet::from([(1, "a".into(), "n2".into())])
    );
}

/// `set_offline` removes an entry only if it still names that node.
pub async fn set_offline_removes_only_the_named_node_s_entry(p: Arc<dyn Presence>) {
    p.set_online(&[entry(1, "a", "n2"), entry(1, "b", "n1")], TTL)
        .await
        .expect("set_online");
    // A stale node must not take offline a device that moved to n2.
    p.set_offline(
        UserId(1),
        &DeviceId::new("a").expect("id"),
        &NodeId::new("n1"),
    )
    .await
    .expect("set_offline");
    assert_eq!(p.online(&[UserId(1)]).await.expect("online").len(), 2);
    p.set_offline(
        UserId(1),
        &DeviceId::new("a").expect("id"),
        &NodeId::new("n2"),
    )
    .await
    .expect("set_offline");
    let got = p.online(&[UserId(1)]).await.expect("online");
    assert_eq!(
        devices(&got),
        BTreeSet::from([(1, "b".into(), "n1".into())])
    );
    // Removing what is not there is fine.
    p.set_offline(
        UserId(9),
        &DeviceId::new("z").expect("id"),
        &NodeId::new("n1"),
    )
    .await
    .expect("set_offline of nothing");
}

/// Entries disappear after their lease unless refreshed.
pub async fn entries_expire_unless_refreshed(p: Arc<dyn Presence>) {
    let ttl = Duration::from_millis(1500);
    p.set_online(&[entry(1, "a", "n1"), entry(1, "b", "n1")], ttl)
        .await
        .expect("set_online");
    tokio::time::sleep(Duration::from_millis(900)).await;
    // Refresh only "b".
    p.set_online(&[entry(1, "b", "n1")], ttl)
        .await
        .expect("refresh");
    tokio::time::sleep(Duration::from_millis(900)).await;
    let got = p.online(&[UserId(1)]).await.expect("online");
    assert_eq!(
        devices(&got),
        BTreeSet::from([(1, "b".into(), "n1".into())]),
        "the unrefreshed entry should have expired, the refreshed one not"
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(p.online(&[UserId(1)]).await.expect("online").is_empty());
}
