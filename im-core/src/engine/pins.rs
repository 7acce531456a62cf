//! Pinned messages: a list per conversation that anyone in it reads with `pins`. In a
//! direct chat either user pins (unless one blocked the other); in a group, owners and
//! admins. The limit (`max_pins`) is checked by storage with the insert, so pins made at
//! once never exceed it. Everyone in the conversation gets a `pinned` push.

use std::sync::Arc;

use super::Shared;
use super::access::Access;
use super::connection::Conn;
use super::error::{ApiError, ApiResult};
use super::fanout::Outgoing;
use super::session::SessionHandle;
use crate::model::{ConversationId, Pin, Role, Seq, Timestamp};
use crate::protocol::{Event, ServerFrame, reply, request};
use crate::storage::{PINS_FULL, StorageError};

impl Shared {
    pub(super) async fn pin(
        &self,
        _: &mut Conn,
        me: &Arc<SessionHandle>,
        request: request::Pin,
    ) -> ApiResult<reply::Done> {
        let request::Pin { conversation, seq } = request;
        let access = self.may_pin(me, conversation).await?;
        self.target(&access, conversation, seq, Some(me.user))
            .await?;
        let pin = Pin {
            seq,
            by: me.user,
            at: Timestamp::now(),
        };
        let added = match self
            .storage
            .pin(conversation, pin, self.config.max_pins)
            .await
        {
            Ok(added) => added,
            Err(StorageError::Conflict(PINS_FULL)) => {
                return Err(ApiError::conflict(format!(
                    "at most {} messages may be pinned; unpin one first",
                    self.config.max_pins
                )));
            }
            Err(e) => return Err(e.into()),
        };
        if added {
            self.push_pinned(me, &access, conversation, seq, true).await;
        }
        Ok(reply::Done {})
    }

    pub(super) async fn unpin(
        &self,
        _: &mut Conn,
        me: &Arc<SessionHandle>,
        request: request::Unpin,
    ) -> ApiResult<reply::Done> {
        let request::Unpin { conversation, seq } = request;
        let access = self.may_pin(me, conversation).await?;
        // An admin who joined later cannot see pins from before, nor unpin them.
        if seq <= access.floor() {
            return Err(ApiError::not_found("no such message"));
        }
        if self.storage.unpin(conversation, seq).await? {
            self.push_pinned(me, &access, conversation, seq, false)
                .await;
        }
        Ok(reply::Done {})
    }

    pub(super) async fn pins(
        &self,
        _: &mut Conn,
        me: &Arc<SessionHandle>,
        request: request::Pins,
    ) -> ApiResult<reply::Pins> {
        let request::Pins { conversation } = request;
        let access = self.access(me.user, conversation).await?;
        let floor = access.floor();
        // A member who joined later does not see pins of messages from before.
        let pins = self
            .storage
            .pins(conversation)
            .await?
            .into_iter()
            .filter(|p| p.seq > floor)
            .collect();
        Ok(reply::Pins { conversation, pins })
    }

    /// What `me` may see of `conversation`, if they may pin there.
    async fn may_pin(&self, me: &SessionHandle, conversation: ConversationId) -> ApiResult<Access> {
        let access = self.access(me.user, conversation).await?;
        match &access {
            Access::Direct { peer } => self.may_message(me.user, *peer).await?,
            Access::Group { members, .. } => {
                let role = members.get(me.user).map(|m| m.role);
                if role < Some(Role::Admin) {
                    return Err(ApiError::forbidden("only owners and admins pin messages"));
                }
            }
        }
        Ok(access)
    }

    async fn push_pinned(
        &self,
        me: &SessionHandle,
        access: &Access,
        conversation: ConversationId,
        seq: Seq,
        pinned: bool,
    ) {
        let out = Outgoing::new(ServerFrame::Event {
            event: Event::Pinned {
                conversation,
                seq,
                by: me.user,
                pinned,
            },
        });
        self.push_about_message(me, access, seq, &out).await;
    }
}
