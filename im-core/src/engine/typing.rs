//! Typing indicators: relayed, never stored, coalesced.
//!
//! A client may send `typing` on every keystroke; the engine relays at most one notice
//! per user and conversation per `typing_interval`, except that a change of state goes
//! through sooner: a "stopped" right after a "started" at once (so indicators clear
//! promptly), a "started" after a relayed "stopped" once a quarter of the interval has
//! passed (so typing again right after sending shows, while a client flapping between
//! the two is still held to four starts, and as many stops, per interval). The relayed
//! event says how long to show it (`expires_ms`), so an indicator whose sender vanished
//! clears by itself. The gate is checked before any storage read, so a flood costs a map
//! lookup per frame; a refused notice holds the interval too, and the notices it covers
//! get the same refusal (never `done` for a notice that would not be allowed).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use std::sync::Arc;

use super::Shared;
use super::access::Access;
use super::connection::Conn;
use super::error::{ApiError, ApiResult};
use super::fanout::{Outgoing, Recipients, Skip};
use super::session::SessionHandle;
use crate::model::{ConversationId, UserId};
use crate::protocol::{Event, ServerFrame, reply, request};

/// The last notice of a (user, conversation) that was checked.
#[derive(Debug)]
struct Slot {
    at: Instant,
    /// Whether it said "typing".
    active: bool,
    /// Why it was refused, if it was: repeated to the notices the interval swallows.
    refused: Option<ApiError>,
}

/// When each (user, conversation) last had a notice checked, what it said and how it was
/// answered.
#[derive(Debug, Default)]
pub(crate) struct TypingGate {
    last: Mutex<HashMap<(UserId, ConversationId), Slot>>,
}

/// What to do with a notice.
enum Admission {
    /// Check and relay it.
    Check,
    /// Swallow it: answer `done`.
    Swallow,
    /// The last one was refused within the interval: answer the same.
    Refuse(ApiError),
}

impl TypingGate {
    /// What to do with this notice now; records it if it is to be checked.
    fn admit(
        &self,
        user: UserId,
        conversation: ConversationId,
        active: bool,
        interval: Duration,
    ) -> Admission {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let check = match last.get(&(user, conversation)) {
            None => true,
            Some(slot) => {
                let since = now.duration_since(slot.at);
                if since < interval
                    && let Some(error) = &slot.refused
                {
                    return Admission::Refuse(error.clone());
                }
                since >= interval
                    || (slot.active && !active)
                    || (!slot.active && active && since >= interval / 4)
            }
        };
        if !check {
            return Admission::Swallow;
        }
        let slot = Slot {
            at: now,
            active,
            refused: None,
        };
        last.insert((user, conversation), slot);
        Admission::Check
    }

    /// Records that the notice just admitted was refused with `error`.
    fn refused(&self, user: UserId, conversation: ConversationId, error: &ApiError) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = last.get_mut(&(user, conversation)) {
            slot.refused = Some(error.clone());
        }
    }

    /// Forgets entries older than `keep` (called periodically).
    pub(crate) fn housekeeping(&self, keep: Duration) {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        last.retain(|_, slot| now.duration_since(slot.at) < keep);
    }
}

impl Shared {
    pub(super) async fn typing(
        &self,
        _: &mut Conn,
        me: &Arc<SessionHandle>,
        request: request::Typing,
    ) -> ApiResult<reply::Done> {
        let request::Typing {
            conversation,
            active,
        } = request;
        let interval = self.config.typing_interval;
        match self.typing.admit(me.user, conversation, active, interval) {
            Admission::Check => {}
            Admission::Swallow => {
                metrics::counter!("im_typing_coalesced_total").increment(1);
                return Ok(reply::Done {});
            }
            Admission::Refuse(error) => return Err(error),
        }
        let access = match self.typing_access(me, conversation).await {
            Ok(access) => access,
            Err(error) => {
                // The swallowed notices that follow within the interval are answered the
                // same, still without a check.
                self.typing.refused(me.user, conversation, &error);
                return Err(error);
            }
        };
        let to = match &access {
            Access::Direct { peer } => Recipients::Users(std::slice::from_ref(peer)),
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
        Ok(reply::Done {})
    }

    /// Whom `me` may show typing to in `conversation`: its members, or a peer they may
    /// message.
    async fn typing_access(
        &self,
        me: &SessionHandle,
        conversation: ConversationId,
    ) -> ApiResult<Access> {
        let access = self.access(me.user, conversation).await?;
        if let Access::Direct { peer } = &access {
            self.may_message(me.user, *peer).await?;
        }
        Ok(access)
    }
}
