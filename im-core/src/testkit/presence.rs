//! The [`Presence`] contract, clause by clause.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

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

/// A lease short enough to wait out.
const SHORT_TTL: Duration = Duration::from_millis(250);

/// How long past the end of a lease to wait before expecting it gone.
const MARGIN: Duration = Duration::from_millis(250);

/// Whether less than `ttl` has passed since `start`. A lease granted by a call made after
/// `start` must then still be live; on a machine so loaded that more time has passed, a
/// check that it is proves nothing, and is skipped rather than failing.
fn fresh(start: Instant, ttl: Duration) -> bool {
    start.elapsed() < ttl
}

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

/// A lease not refreshed within its ttl lapses for `online` and `online_elsewhere` alike;
/// a device that comes back after that is online again.
pub async fn a_lapsed_lease_is_gone_for_every_query(p: Arc<dyn Presence>) {
    let users = [UserId(1), UserId(2)];
    let granted = Instant::now();
    p.set_online(&[entry(1, "a", "n1"), entry(2, "b", "n2")], SHORT_TTL)
        .await
        .expect("set_online");
    let online = p.online(&users).await.expect("online");
    let elsewhere = p
        .online_elsewhere(&users, &NodeId::new("n3"))
        .await
        .expect("online_elsewhere");
    if fresh(granted, SHORT_TTL) {
        assert_eq!(online.len(), 2, "{online:?}");
        assert_eq!(elsewhere.len(), 2, "{elsewhere:?}");
    }
    tokio::time::sleep(SHORT_TTL + MARGIN).await;
    assert!(p.online(&users).await.expect("online").is_empty());
    for node in ["n1", "n2", "n3"] {
        let got = p
            .online_elsewhere(&users, &NodeId::new(node))
            .await
            .expect("online_elsewhere");
        assert!(
            got.is_empty(),
            "lapsed entries listed elsewhere than {node}: {got:?}"
        );
    }
    let granted = Instant::now();
    p.set_online(&[entry(1, "a", "n2")], SHORT_TTL)
        .await
        .expect("set_online");
    let got = p.online(&users).await.expect("online");
    if fresh(granted, SHORT_TTL) {
        assert_eq!(
            devices(&got),
            BTreeSet::from([(1, "a".into(), "n2".into())])
        );
    }
}

/// Each refresh renews the lease for a full ttl, also one that moves the device to
/// another node: refreshed well within its ttl, an entry outlives that ttl many times over.
pub async fn each_refresh_renews_the_lease(p: Arc<dyn Presence>) {
    let ttl = Duration::from_millis(300);
    let step = Duration::from_millis(100);
    let node = |round: u32| if round < 4 { "n1" } else { "n2" };
    let mut granted = Instant::now();
    p.set_online(&[entry(1, "a", node(0))], ttl)
        .await
        .expect("set_online");
    for round in 1..=8 {
        tokio::time::sleep(step).await;
        // Before this refresh: the previous one must have kept the entry alive.
        let got = p.online(&[UserId(1)]).await.expect("online");
        let elsewhere = p
            .online_elsewhere(&[UserId(1)], &NodeId::new("n3"))
            .await
            .expect("online_elsewhere");
        if fresh(granted, ttl) {
            let want = BTreeSet::from([(1, "a".into(), node(round - 1).into())]);
            assert_eq!(devices(&got), want, "round {round}");
            assert_eq!(devices(&elsewhere), want, "round {round}");
        }
        granted = Instant::now();
        p.set_online(&[entry(1, "a", node(round))], ttl)
            .await
            .expect("refresh");
    }
    // Unrefreshed, the last lease runs out like any other.
    tokio::time::sleep(ttl + MARGIN).await;
    assert!(p.online(&[UserId(1)]).await.expect("online").is_empty());
}

/// A device that moved to another node (a later `set_online`) stays online when its old
/// node lets go of it (`set_offline` names the old node); only its new node can take it
/// offline.
pub async fn a_moved_device_outlives_its_old_node_s_set_offline(p: Arc<dyn Presence>) {
    let a = DeviceId::new("a").expect("id");
    let (n1, n2) = (NodeId::new("n1"), NodeId::new("n2"));
    p.set_online(&[entry(1, "a", "n1"), entry(1, "b", "n1")], TTL)
        .await
        .expect("set_online");
    p.set_online(&[entry(1, "a", "n2")], TTL)
        .await
        .expect("move to n2");
    p.set_offline(UserId(1), &a, &n1)
        .await
        .expect("stale set_offline");
    let moved = (1, "a".to_string(), "n2".to_string());
    let stayed = (1, "b".to_string(), "n1".to_string());
    let got = p.online(&[UserId(1)]).await.expect("online");
    assert_eq!(
        devices(&got),
        BTreeSet::from([moved.clone(), stayed.clone()])
    );
    let from_n1 = p
        .online_elsewhere(&[UserId(1)], &n1)
        .await
        .expect("online_elsewhere");
    assert_eq!(devices(&from_n1), BTreeSet::from([moved]));
    let from_n2 = p
        .online_elsewhere(&[UserId(1)], &n2)
        .await
        .expect("online_elsewhere");
    assert_eq!(devices(&from_n2), BTreeSet::from([stayed.clone()]));

    p.set_offline(UserId(1), &a, &n2)
        .await
        .expect("set_offline");
    let got = p.online(&[UserId(1)]).await.expect("online");
    assert_eq!(devices(&got), BTreeSet::from([stayed]));
    assert!(
        p.online_elsewhere(&[UserId(1)], &n1)
            .await
            .expect("online_elsewhere")
            .is_empty()
    );
}

/// `others_online` is true while another node has a live entry (it may also be true when
/// unsure, so only that side is checked, and that a node alone is never told otherwise
/// by its own entries).
pub async fn another_node_s_live_entry_counts_as_others_online(p: Arc<dyn Presence>) {
    let n1 = NodeId::new("n1");
    p.set_online(&[entry(1, "a", "n1")], TTL)
        .await
        .expect("set_online");
    let start = Instant::now();
    p.set_online(&[entry(2, "b", "n2")], SHORT_TTL)
        .await
        .expect("set_online");
    let others = p.others_online(&n1).await.expect("others_online");
    if fresh(start, SHORT_TTL) {
        assert!(
            others,
            "n2 has a live entry, yet n1 is told no other node is up"
        );
    }
    assert!(
        p.others_online(&NodeId::new("n3"))
            .await
            .expect("others_online"),
        "n1 and n2 are up, yet n3 is told no other node is up"
    );
}

/// A device moving to another node while its old node lets go of it, both at once: the
/// old node's `set_offline` never takes the new entry away, and two nodes claiming one
/// device at once leave exactly one entry.
pub async fn a_move_and_the_old_node_s_set_offline_at_once_keep_the_new_entry(
    p: Arc<dyn Presence>,
) {
    let a = DeviceId::new("a").expect("id");
    let n1 = NodeId::new("n1");
    for round in 0..20 {
        p.set_online(&[entry(1, "a", "n1")], TTL)
            .await
            .expect("set_online");
        let moved = entry(1, "a", "n2");
        let (online, offline) = tokio::join!(
            p.set_online(std::slice::from_ref(&moved), TTL),
            p.set_offline(UserId(1), &a, &n1)
        );
        online.expect("the move");
        offline.expect("the old node's set_offline");
        let got = p.online(&[UserId(1)]).await.expect("online");
        assert_eq!(
            devices(&got),
            BTreeSet::from([(1, "a".into(), "n2".into())]),
            "round {round}"
        );
        // Two nodes claim it at once: one entry, naming one of them.
        let (on_n1, on_n2) = ([entry(1, "a", "n1")], [entry(1, "a", "n2")]);
        let (x, y) = tokio::join!(p.set_online(&on_n1, TTL), p.set_online(&on_n2, TTL));
        x.expect("set_online");
        y.expect("set_online");
        let got = p.online(&[UserId(1)]).await.expect("online");
        assert_eq!(got.len(), 1, "round {round}: {got:?}");
        p.set_offline(UserId(1), &a, &got[0].node)
            .await
            .expect("set_offline");
    }
}
