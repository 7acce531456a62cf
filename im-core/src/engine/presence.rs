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

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::Shared;
use super::error::{ApiError, ApiResult};
use super::fanout::{Outgoing, Recipients, Skip};
use super::session::SessionHandle;
use crate::model::{Timestamp, UserId};
use crate::protocol::{ErrorCode, Event, PresenceStatus, Reply, ServerFrame};

/// Most users one `presence` request may ask about.
const MAX_QUERY: usize = 500;

/// Pending "went offline" announcements, by user.
#[derive(Debug, Default)]
pub(crate) struct OfflineTimers {
    pending: Mutex<HashMap<UserId, u64>>,
    next: AtomicU64,
}

impl OfflineTimers {
    fn arm(&self, user: UserId) -> u64 {
        let token = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(user, token);
        token
    }

    /// Cancels a pending timer; whether there was one.
    fn cancel(&self, user: UserId) -> bool {
        self.lock().remove(&user).is_some()
    }

    /// Claims the timer `token` when it fires; false if it was cancelled or re-armed.
    fn fire(&self, user: UserId, token: u64) -> bool {
        let mut pending = self.lock();
        if pending.get(&user) == Some(&token) {
            pending.remove(&user);
            true
        } else {
            false
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, u64>> {
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
        let token = self.offline_timers.arm(user);
        let at = Timestamp::now();
        let grace = self.config.presence_grace;
        let this = self.this.clone();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let Some(shared) = this.upgrade() else { return };
            if !shared.offline_timers.fire(user, token) || shared.sessions.has_user(user) {
                return;
            }
            match shared.presence.online(&[user]).await {
                Ok(entries) if !entries.is_empty() => return,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "presence lookup failed; assuming offline"),
            }
            shared.last_seen.record(user, at).await;
            metrics::counter!("im_presence_changes_total", "to" => "offline").increment(1);
            shared.announce(user, false, Some(at)).await;
            shared.hooks.on_offline(user, at).await;
        });
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

    pub(super) async fn presence_status(
        &self,
        me: &SessionHandle,
        users: &[UserId],
    ) -> ApiResult<Reply> {
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
            return Ok(Reply::Presence { users: Vec::new() });
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
        Ok(Reply::Presence { users })
    }
}
