//! Call signalling: WebRTC offers, answers, ICE candidates and hang-ups relayed between
//! devices, never stored.
//!
//! A signal goes to one device of the other party (answers and candidates, which name
//! the device they answer) or to all of them (an offer rings every device). Only friends
//! or members of a shared group may signal each other, and a block either way stops it.
//! When a device answers or hangs up, the same user's other devices get `call_handled`
//! so they stop ringing.

use std::collections::HashSet;

use super::Shared;
use super::error::{ApiError, ApiResult};
use super::fanout::Outgoing;
use super::session::SessionHandle;
use crate::broker::Envelope;
use crate::model::{DeviceId, UserId};
use crate::protocol::{Event, Reply, ServerFrame, Signal};

impl Shared {
    pub(super) async fn signal(
        &self,
        me: &SessionHandle,
        to: UserId,
        device: Option<DeviceId>,
        call_id: String,
        signal: Signal,
    ) -> ApiResult<Reply> {
        self.limits.send(me.user)?;
        if call_id.is_empty() || call_id.len() > 64 || call_id.chars().any(char::is_control) {
            return Err(ApiError::invalid("call_id: 1 to 64 characters"));
        }
        let size = serde_json::to_vec(&signal).map_or(usize::MAX, |v| v.len());
        if size > self.config.max_body_bytes {
            return Err(ApiError::too_large(format!(
                "signal: {size} bytes encoded, the limit is {}",
                self.config.max_body_bytes
            )));
        }
        if to == me.user {
            return Err(ApiError::invalid("to: cannot call yourself"));
        }
        self.may_call(me.user, to).await?;

        let settles = signal.settles_call();
        let answered = matches!(signal, Signal::Answer { .. });
        let out = Outgoing::new(ServerFrame::Event {
            event: Event::Signal {
                from: me.user,
                from_device: me.device.clone(),
                call_id: call_id.clone(),
                signal,
            },
        });
        let online = match &device {
            Some(device) => self.deliver_to_device(to, device, &out).await,
            None => self.fan_out(&[to], None, &out).await.is_empty(),
        };
        if settles {
            let handled = Outgoing::new(ServerFrame::Event {
                event: Event::CallHandled {
                    call_id,
                    device: me.device.clone(),
                    answered,
                },
            });
            self.fan_out(&[me.user], me.skip(), &handled).await;
        }
        Ok(Reply::Signaled { online })
    }

    /// Friends, or members of a shared group, with no block either way.
    async fn may_call(&self, me: UserId, peer: UserId) -> ApiResult<()> {
        if self.blocked_between(me, peer).await? {
            return Err(ApiError::forbidden("one of you has blocked the other"));
        }
        if self.storage.is_friend(me, peer).await? {
            return Ok(());
        }
        let mine: HashSet<_> = self
            .storage
            .user_groups(me)
            .await?
            .into_iter()
            .map(|g| g.id)
            .collect();
        let shared = self
            .storage
            .user_groups(peer)
            .await?
            .iter()
            .any(|g| mine.contains(&g.id));
        if shared {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "you can only call friends and members of your groups",
            ))
        }
    }

    /// Delivers to one device, here or on the node presence says it is on. Whether the
    /// device was found online.
    async fn deliver_to_device(&self, user: UserId, device: &DeviceId, out: &Outgoing) -> bool {
        if self.sessions.deliver_to_device(user, device, out) {
            return true;
        }
        let entries = match self.presence.online_elsewhere(&[user], &self.node).await {
            Ok(entries) => entries,
            Err(e) => {
                tracing::warn!(error = %e, "presence lookup failed; signal not relayed");
                return false;
            }
        };
        let Some(entry) = entries.into_iter().find(|e| &e.device == device) else {
            return false;
        };
        let Some(json) = out.bytes(crate::protocol::Codec::Json) else {
            return false;
        };
        let envelope = Envelope::Deliver {
            users: vec![user],
            skip: None,
            device: Some(device.clone()),
            class: out.class(),
            frame: json,
        };
        if let Err(e) = self.broker.publish(&entry.node, envelope).await {
            tracing::warn!(node = %entry.node, error = %e, "broker publish failed");
            return false;
        }
        true
    }
}
