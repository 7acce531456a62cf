//! Online status as friends see it: pushes when a user's first device comes online or
//! their last one leaves, last-seen times, and the `presence` query.
//!
//! Going offline is debounced: when the last session of a user on this node ends, a timer
//! of `presence_grace` starts; a reconnect on this node within it cancels the timer and
//! nothing is said either way. When it fires and no node has a device of the user online
//! (per `Presence`), the last-seen time is stored, friends get `presence` with
//! `online: false`, and [`Hooks::on_offline`](crate::hooks::Hooks::on_offline) runs.
//! A reconnect to another node within the grace period may tell friends `online` once
//! more; the event is a state, so a repeat is harmless.
//!
//! A node that dies takes no one offline itself: its leases lapse, and another node's
//! periodic [`Presence::claim_lapsed`](crate::presence::Presence::claim_lapsed) (which
//! one node wins) returns its users that are online nowhere else, who are then announced
//! here as if their grace timer had fired. A node that shuts down hands its users over the
//! same way ([`Presence::leave`](crate::presence::Presence::leave)), lapsing after the
//! grace period, so that users who reconnect elsewhere are not announced at all.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use std::sync::Arc;

use super::Shared;
use super::connection::Conn;
use super::error::{ApiError, ApiResult};
use super::fanout::{Outgoing, Recipients, Skip};
use super::session::SessionHandle;
use crate::model::{Timestamp, UserId};
use crate::presence::Orphan;
use crate::protocol::{ErrorCode, Event, PresenceStatus, ServerFrame, reply, request};

/// Most users one `presence` request may ask about.
const MAX_QUERY: usize = 500;

/// Pending "went offline" announcements, by user.
#[derive(Debug, Default)]
pub(crate) struct OfflineTimers {
    /// Per user, the timer's token and when their last session here ended.
    pending: Mutex<HashMap<UserId, (u64, Timestamp)>>,
    next: AtomicU64,
}

impl OfflineTimers {
    fn arm(&self, user: UserId, at: Timestamp) -> u64 {
        let token = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(user, (token, at));
        token
    }

    /// Every pending timer, taken (at shutdown, when they will not fire).
    fn take_all(&self) -> Vec<Orphan> {
        self.lock()
            .drain()
            .map(|(user, (_, last_seen))| Orphan { user, last_seen })
            .collect()
    }

    /// Cancels a pending timer; whether there was one.
    fn cancel(&self, user: UserId) -> bool {
        self.lock().remove(&user).is_some()
    }

    /// Claims the timer `token` when it fires; false if it was cancelled or re-armed.
    fn fire(&self, user: UserId, token: u64) -> bool {
        let mut pending = self.lock();
        if pending.get(&user).is_some_and(|(t, _)| *t == token) {
            pending.remove(&user);
            true
        } else {
            false
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, (u64, Timestamp)>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Shared {
    /// After a session registered: tells friends the user came online, unless they
    /// already were (another device, or a reconnect within the grace period).
    pub(crate) async fn came_online(&self, user: UserId, was_online: bool) {
        let reconnected = self.offline_timers.cancel(user);
        if was_online || reconnected {
            return;
        }
        metrics::counter!("im_presence_changes_total", "to" => "online").increment(1);
        self.announce(user, true, None).await;
        self.hooks.on_online(user).await;
    }

    /// After a session ended: if it was the user's last one here, starts the grace timer.
    pub(crate) fn maybe_went_offline(&self, user: UserId) {
        if self.sessions.has_user(user) {
            return;
        }
        let at = Timestamp::now();
        let token = self.offline_timers.arm(user, at);
        let grace = self.config.presence_grace;
        let this = self.this.clone();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let Some(shared) = this.upgrade() else { return };
            if !shared.offline_timers.fire(user, token) {
                return;
            }
            shared
                .went_offline(vec![Orphan {
                    user,
                    last_seen: at,
                }])
                .await;
        });
    }

    /// Announces that `users` went offline, those of them with no session here and no
    /// device online on any node: stores their last-seen time, tells their friends and
    /// runs the `on_offline` hook. One presence lookup for all of them.
    pub(crate) async fn went_offline(&self, mut users: Vec<Orphan>) {
        users.retain(|o| !self.sessions.has_user(o.user));
        if users.is_empty() {
            return;
        }
        let ids: Vec<UserId> = users.iter().map(|o| o.user).collect();
        match self.presence.online(&ids).await {
            Ok(entries) => {
                let online: HashSet<UserId> = entries.into_iter().map(|e| e.user).collect();
                users.retain(|o| !online.contains(&o.user));
            }
            Err(e) => tracing::warn!(error = %e, "presence lookup failed; assuming offline"),
        }
        for Orphan { user, last_seen } in users {
            self.last_seen.record(user, last_seen).await;
            metrics::counter!("im_presence_changes_total", "to" => "offline").increment(1);
            self.announce(user, false, Some(last_seen)).await;
            self.hooks.on_offline(user, last_seen).await;
        }
    }

    /// At shutdown: the users whose grace timers will now never fire are announced at
    /// once (those online nowhere else).
    pub(crate) async fn flush_offline_timers(&self) {
        let pending = self.offline_timers.take_all();
        self.went_offline(pending).await;
    }

    /// Pushes a user's new status to their friends.
    async fn announce(&self, user: UserId, online: bool, last_seen: Option<Timestamp>) {
        let friends: Vec<UserId> = match self.storage.friends(user).await {
            Ok(friends) => friends.into_iter().map(|f| f.user).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "listing friends for a presence push failed");
                return;
            }
        };
        if friends.is_empty() {
            return;
        }
        let out = Outgoing::new(ServerFrame::Event {
            event: Event::Presence {
                user,
                online,
                last_seen,
            },
        });
        self.fan_out(Recipients::Users(&friends), Skip::Nobody, &out, false)
            .await;
    }

    pub(super) async fn presence(
        &self,
        _: &mut Conn,
        me: &Arc<SessionHandle>,
        request: request::Presence,
    ) -> ApiResult<reply::Presence> {
        let users = request.users;
        if users.len() > MAX_QUERY {
            return Err(ApiError::too_large("users: at most 500 per request"));
        }
        let friends: HashSet<UserId> = self
            .storage
            .friends(me.user)
            .await?
            .into_iter()
            .map(|f| f.user)
            .collect();
        let mut asked: Vec<UserId> = users
            .iter()
            .copied()
            .filter(|u| *u == me.user || friends.contains(u))
            .collect();
        asked.sort();
        asked.dedup();
        if asked.is_empty() {
            return Ok(reply::Presence { users: Vec::new() });
        }
        let online: HashSet<UserId> = self
            .presence
            .online(&asked)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "presence lookup failed");
                ApiError::new(
                    ErrorCode::Unavailable,
                    "presence is unavailable, retry later",
                )
            })?
            .into_iter()
            .map(|e| e.user)
            .collect();
        let offline: Vec<UserId> = asked
            .iter()
            .copied()
            .filter(|u| !online.contains(u))
            .collect();
        let seen: HashMap<UserId, Timestamp> = if offline.is_empty() {
            HashMap::new()
        } else {
            self.storage
                .last_seen(&offline)
                .await?
                .into_iter()
                .collect()
        };
        let users = asked
            .into_iter()
            .map(|user| {
                let online = online.contains(&user);
                PresenceStatus {
                    user,
                    online,
                    last_seen: if online {
                        None
                    } else {
                        seen.get(&user).copied()
                    },
                }
            })
            .collect();
        Ok(reply::Presence { users })
    }
}
