//! The [`Presence`] contract, clause by clause.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::model::{DeviceId, Platform, Timestamp, UserId};
use crate::presence::{NodeId, Orphan, Presence, PresenceEntry};

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

/// How long after its last device's lease a node may still count as up (Redis adds a
/// second; see `others_online`).
const NODE_LAPSE: Duration = Duration::from_millis(1250);

fn users(orphans: &[Orphan]) -> Vec<u64> {
    let mut users: Vec<u64> = orphans.iter().map(|o| o.user.0).collect();
    users.sort_unstable();
    users
}

/// A node that stops refreshing lapses, and two nodes claiming at the same moment
/// claim it once between them: its users who are online nowhere else come back once,
/// with the last time the node refreshed them; a user who also has a live device
/// elsewhere, and one the node took offline itself, do not. A claim takes the node's
/// entries down: a second claim finds nothing.
pub async fn a_lapsed_node_is_claimed_once_with_the_users_it_left(p: Arc<dyn Presence>) {
    let (n1, n2, n3) = (NodeId::new("n1"), NodeId::new("n2"), NodeId::new("n3"));
    let before = Timestamp::now();
    // n1 will die with users 1, 2 and 3 online; 3 is also on n2; 4 left n1 in time.
    p.set_online(
        &[
            entry(1, "a", "n1"),
            entry(2, "a", "n1"),
            entry(2, "b", "n1"),
            entry(3, "a", "n1"),
            entry(4, "a", "n1"),
        ],
        SHORT_TTL,
    )
    .await
    .expect("set_online");
    p.set_online(&[entry(3, "b", "n2")], TTL)
        .await
        .expect("set_online");
    p.set_offline(UserId(4), &DeviceId::new("a").expect("id"), &n1)
        .await
        .expect("set_offline");
    let after = Timestamp::now();
    let early = p.claim_lapsed(&n2).await.expect("claim_lapsed");
    let granted = Instant::now();
    if fresh(granted, SHORT_TTL) {
        assert!(early.is_empty(), "n1 is still up: {early:?}");
    }

    tokio::time::sleep(SHORT_TTL + NODE_LAPSE).await;
    for round in 0..2 {
        let (by_n2, by_n3) = tokio::join!(p.claim_lapsed(&n2), p.claim_lapsed(&n3));
        let (by_n2, by_n3) = (by_n2.expect("claim_lapsed"), by_n3.expect("claim_lapsed"));
        let mut all = by_n2.clone();
        all.extend(by_n3.iter().cloned());
        if round == 0 {
            assert_eq!(users(&all), [1, 2], "n2 got {by_n2:?}, n3 got {by_n3:?}");
            for o in &all {
                assert!(
                    o.last_seen.0 >= before.0 - 1000 && o.last_seen.0 <= after.0 + 1000,
                    "last seen {:?} not when n1 last refreshed ({before:?}..{after:?})",
                    o.last_seen
                );
            }
        } else {
            assert!(all.is_empty(), "claimed twice: {all:?}");
        }
    }
    let got = p
        .online(&[UserId(1), UserId(2), UserId(3), UserId(4)])
        .await
        .expect("online");
    assert_eq!(
        devices(&got),
        BTreeSet::from([(3, "b".into(), "n2".into())])
    );
    assert!(
        p.claim_lapsed(&n1).await.expect("claim_lapsed").is_empty(),
        "n1's users were claimed already"
    );
}

/// A node never claims itself while lapsed (it is alive: it is asking), and a node that
/// dies and comes back under the same id takes its earlier entries down with
/// `claim_own`, live or not, and gets their users once, also when another node claims
/// the same lapsed life at the same moment.
pub async fn claim_own_takes_an_earlier_life_s_entries(p: Arc<dyn Presence>) {
    let n1 = NodeId::new("n1");
    p.set_online(&[entry(1, "a", "n1")], SHORT_TTL)
        .await
        .expect("set_online");
    p.set_online(&[entry(2, "a", "n1"), entry(3, "a", "n2")], TTL)
        .await
        .expect("set_online");
    tokio::time::sleep(SHORT_TTL + MARGIN).await;
    assert!(
        p.claim_lapsed(&n1).await.expect("claim_lapsed").is_empty(),
        "a node claimed itself"
    );
    let own = p.claim_own(&n1).await.expect("claim_own");
    assert_eq!(users(&own), [1, 2], "{own:?}");
    let got = p
        .online(&[UserId(1), UserId(2), UserId(3)])
        .await
        .expect("online");
    assert_eq!(
        devices(&got),
        BTreeSet::from([(3, "a".into(), "n2".into())])
    );
    assert!(p.claim_own(&n1).await.expect("claim_own").is_empty());
    // A node coming back under its id while another claims its lapsed earlier life, at
    // the same moment: each of its users comes back once, to one of the two.
    p.set_online(&[entry(4, "a", "n3"), entry(5, "a", "n3")], SHORT_TTL)
        .await
        .expect("set_online");
    tokio::time::sleep(SHORT_TTL + NODE_LAPSE).await;
    let n3 = NodeId::new("n3");
    let (own, other) = tokio::join!(p.claim_own(&n3), p.claim_lapsed(&n1));
    let mut all = own.expect("claim_own");
    all.extend(other.expect("claim_lapsed"));
    assert_eq!(users(&all), [4, 5], "{all:?}");
    // The node carries on under its id like any other.
    p.set_online(&[entry(1, "a", "n1")], TTL)
        .await
        .expect("set_online");
    assert_eq!(p.online(&[UserId(1)]).await.expect("online").len(), 1);
}

/// `leave` takes the node's devices offline at once, and hands the node's users over when
/// it lapses `after` from now: the one who came back on another node meanwhile is not
/// returned, the other is, once.
pub async fn leave_hands_the_users_over_after_the_delay(p: Arc<dyn Presence>) {
    let (n1, n2) = (NodeId::new("n1"), NodeId::new("n2"));
    let a = DeviceId::new("a").expect("id");
    p.set_online(&[entry(1, "a", "n1"), entry(2, "a", "n1")], TTL)
        .await
        .expect("set_online");
    p.set_online(&[entry(9, "a", "n2")], TTL)
        .await
        .expect("set_online");
    let delay = Duration::from_millis(600);
    let left = Instant::now();
    p.leave(
        &n1,
        &[(UserId(1), a.clone()), (UserId(2), a.clone())],
        delay,
    )
    .await
    .expect("leave");
    assert!(
        p.online(&[UserId(1), UserId(2)])
            .await
            .expect("online")
            .is_empty(),
        "devices of a node that left are offline at once"
    );
    let early = p.claim_lapsed(&n2).await.expect("claim_lapsed");
    if fresh(left, delay) {
        assert!(early.is_empty(), "claimed before the delay: {early:?}");
    }
    // User 2 reconnects on n2 within the delay.
    p.set_online(&[entry(2, "a", "n2")], TTL)
        .await
        .expect("set_online");
    tokio::time::sleep(delay + NODE_LAPSE).await;
    let claimed = p.claim_lapsed(&n2).await.expect("claim_lapsed");
    assert_eq!(users(&claimed), [1], "{claimed:?}");
    assert!(p.claim_lapsed(&n2).await.expect("claim_lapsed").is_empty());
    let got = p.online(&[UserId(2)]).await.expect("online");
    assert_eq!(
        devices(&got),
        BTreeSet::from([(2, "a".into(), "n2".into())])
    );
}
