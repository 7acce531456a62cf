//! Typing indicators: relayed, never stored, coalesced.
//!
//! A client may send `typing` on every keystroke; the engine relays at most one notice
//! per user and conversation per `typing_interval`, except that a change of state goes
//! through sooner: a "stopped" right after a "started" at once (so indicators clear
//! promptly), a "started" after a relayed "stopped" once a quarter of the interval has
//! passed (so typing again right after sending shows, while a client flapping between
//! the two is still held to four starts, and as many stops, per interval). The relayed event says how long to
//! show it (`expires_ms`), so an indicator whose sender vanished clears by itself. The
//! gate is checked before any storage read, so a flood costs a map lookup per frame.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Shared;
use super::access::Access;
use super::error::ApiResult;
use super::fanout::{Outgoing, Recipients, Skip};
use super::session::SessionHandle;
use crate::model::{ConversationId, UserId};
use crate::protocol::{Event, Reply, ServerFrame};

/// When each (user, conversation) last had a notice relayed, and whether it said
/// "typing".
#[derive(Debug, Default)]
pub(crate) struct TypingGate {
    last: Mutex<HashMap<(UserId, ConversationId), (Instant, bool)>>,
}

impl TypingGate {
    /// Whether to relay this notice now; records it if so.
    fn admit(
        &self,
        user: UserId,
        conversation: ConversationId,
        active: bool,
        interval: Duration,
    ) -> bool {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let admit = match last.get(&(user, conversation)) {
            None => true,
            Some(&(at, was_active)) => {
                let since = now.duration_since(at);
                since >= interval
                    || (was_active && !active)
                    || (!was_active && active && since >= interval / 4)
            }
        };
        if admit {
            last.insert((user, conversation), (now, active));
        }
        admit
    }

    /// Forgets entries older than `keep` (called periodically).
    pub(crate) fn housekeeping(&self, keep: Duration) {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        last.retain(|_, (at, _)| now.duration_since(*at) < keep);
    }
}

impl Shared {
    pub(super) async fn typing(
        &self,
        me: &SessionHandle,
        conversation: ConversationId,
        active: bool,
    ) -> ApiResult<Reply> {
        if !self
            .typing
            .admit(me.user, conversation, active, self.config.typing_interval)
        {
            metrics::counter!("im_typing_coalesced_total").increment(1);
            return Ok(Reply::Done);
        }
        let access = self.access(me.user, conversation).await?;
        let to = match &access {
            Access::Direct { peer } => {
                self.may_message(me.user, *peer).await?;
                Recipients::Users(std::slice::from_ref(peer))
            }
            Access::Group { members, .. } => Recipients::Group(members),
        };
        let out = Outgoing::new(ServerFrame::Event {
            event: Event::Typing {
                conversation,
                user: me.user,
                active,
                expires_ms: u32::try_from(self.config.typing_expiry.as_millis())
                    .unwrap_or(u32::MAX),
            },
        });
        // Not echoed to the typist's own devices.
        self.fan_out(to, Skip::User(me.user), &out, false).await;
        Ok(Reply::Done)
    }
}
