//! Changing sent messages: recall, edit, and delete for me.
//!
//! Recall and edit are events in the conversation's timeline: storage appends a
//! `message_recalled` or `message_edited` system message (with the next seq, pushed like
//! any message, replayed by sync) and, in the same atomic step, replaces the original's
//! body, so history never serves a recalled text again. A sender may recall within
//! `recall_window` and edit within `edit_window`; group owners and admins may recall the
//! messages of members below them at any time. Delete for me hides one message from one
//! user's history, on all their devices, and changes nothing for anyone else.

use std::sync::Arc;
use std::time::Duration;

use super::Shared;
use super::access::Access;
use super::connection::Conn;
use super::error::{ApiError, ApiResult};
use super::fanout::{Outgoing, Recipients};
use super::session::SessionHandle;
use super::validate;
use crate::model::{Body, ConversationId, Message, Role, Seq, SystemEvent, Timestamp, UserId};
use crate::protocol::{Event, ServerFrame, reply, request};
use crate::storage::{Amendment, MessageRange, NewMessage};

impl Shared {
    pub(super) async fn recall(
        &self,
        _: &mut Conn,
        me: &Arc<SessionHandle>,
        request: request::Recall,
    ) -> ApiResult<reply::Sent> {
        let request::Recall {
            conversation,
            seq,
            client_id,
        } = request;
        self.limits.send(me.user)?;
        if !client_id.is_empty() {
            validate::client_id(&client_id)?;
        }
        let access = self.access(me.user, conversation).await?;
        let target = self
            .target(&access, conversation, seq, Some(me.user))
            .await?;
        if matches!(target.body, Body::System { .. }) {
            return Err(ApiError::conflict(
                "system messages and recalled messages cannot be recalled",
            ));
        }
        // Moderators (an owner, or an admin above the sender) may recall at any time;
        // a sender, their own message within the window.
        let moderator = match &access {
            Access::Group { members, .. } => {
                let mine = members.get(me.user).map_or(Role::Member, |m| m.role);
                let theirs = members.get(target.sender).map_or(Role::Member, |m| m.role);
                mine >= Role::Admin && (theirs < mine || target.sender == me.user)
            }
            Access::Direct { .. } => false,
        };
        if !moderator {
            if target.sender != me.user {
                return Err(ApiError::forbidden(
                    "only the sender, or an owner or admin above them, may recall a message",
                ));
            }
            within(
                &target,
                self.config.recall_window,
                "the time to recall this message has passed",
            )?;
        }
        let event = SystemEvent::MessageRecalled { seq, by: me.user };
        let body = Body::System {
            event: event.clone(),
        };
        self.amend(me, conversation, &access, seq, client_id, body, event)
            .await
    }

    pub(super) async fn edit(
        &self,
        _: &mut Conn,
        me: &Arc<SessionHandle>,
        request: request::Edit,
    ) -> ApiResult<reply::Sent> {
        let request::Edit {
            conversation,
            seq,
            client_id,
            body,
        } = request;
        self.limits.send(me.user)?;
        if !client_id.is_empty() {
            validate::client_id(&client_id)?;
        }
        validate::body(&body, self.config.max_body_bytes)?;
        let access = self.access(me.user, conversation).await?;
        // New words must not reach someone who blocked the sender.
        if let Access::Direct { peer } = access {
            self.may_message(me.user, peer).await?;
        }
        let target = self
            .target(&access, conversation, seq, Some(me.user))
            .await?;
        if target.sender != me.user {
            return Err(ApiError::forbidden("only the sender may edit a message"));
        }
        self.may_show(me.user, conversation, &body).await?;
        if matches!(target.body, Body::System { .. }) {
            return Err(ApiError::conflict(
                "system messages and recalled messages cannot be edited",
            ));
        }
        within(
            &target,
            self.config.edit_window,
            "the time to edit this message has passed",
        )?;
        let event = SystemEvent::MessageEdited {
            seq,
            body: Box::new(body.clone()),
        };
        self.amend(me, conversation, &access, seq, client_id, body, event)
            .await
    }

    pub(super) async fn delete_for_me(
        &self,
        _: &mut Conn,
        me: &Arc<SessionHandle>,
        request: request::DeleteForMe,
    ) -> ApiResult<reply::Done> {
        let request::DeleteForMe { conversation, seq } = request;
        let access = self.access(me.user, conversation).await?;
        // Hiding twice is not an error (a retry after a lost reply).
        self.target(&access, conversation, seq, None).await?;
        self.storage.hide(me.user, conversation, seq).await?;
        let out = Outgoing::new(ServerFrame::Event {
            event: Event::MessageHidden { conversation, seq },
        });
        self.fan_out(Recipients::Users(&[me.user]), me.skip(), &out, false)
            .await;
        Ok(reply::Done {})
    }

    /// The message at `seq`, if the caller may see it: from their join on, and not one
    /// `viewer` hid (a message deleted for oneself cannot be reacted to, pinned,
    /// forwarded, edited or recalled by its hider; `None` only where acting on a hidden
    /// message again is harmless: hiding it).
    pub(super) async fn target(
        &self,
        access: &Access,
        conversation: ConversationId,
        seq: Seq,
        viewer: Option<UserId>,
    ) -> ApiResult<Message> {
        if seq <= access.floor() {
            return Err(ApiError::not_found("no such message"));
        }
        let range = MessageRange {
            after: Seq(seq.0 - 1),
            before: Some(seq.next()),
            limit: 1,
            newest: false,
            viewer,
        };
        self.storage
            .messages(conversation, range)
            .await?
            .into_iter()
            .next()
            .ok_or(ApiError::not_found("no such message"))
    }

    /// Stores the change and pushes the event to everyone in the conversation.
    #[allow(clippy::too_many_arguments)]
    async fn amend(
        &self,
        me: &SessionHandle,
        conversation: ConversationId,
        access: &Access,
        target: Seq,
        client_id: String,
        body: Body,
        event: SystemEvent,
    ) -> ApiResult<reply::Sent> {
        let appended = self
            .storage
            .amend(
                conversation,
                Amendment {
                    target,
                    body,
                    event: NewMessage {
                        sender: me.user,
                        sender_device: me.device.clone(),
                        client_id,
                        body: Body::System { event },
                        sent_at: Timestamp::now(),
                        reply_to: None,
                        forwarded: None,
                        mentions: Vec::new(),
                    },
                },
            )
            .await?;
        // A retry finds its own event; a client id that named some other message (a send,
        // say) is a mistake to report, not a success.
        if appended.duplicate && !records_change_of(&appended.message, target) {
            return Err(ApiError::conflict(
                "client_id: already used for another message from this device",
            ));
        }
        Ok(self.acknowledge(me, access, appended).await)
    }
}

/// Whether `message` is a recall or edit event of the message at `target`.
fn records_change_of(message: &Message, target: Seq) -> bool {
    matches!(
        &message.body,
        Body::System {
            event: SystemEvent::MessageRecalled { seq, .. } | SystemEvent::MessageEdited { seq, .. },
        } if *seq == target
    )
}

/// Fails with `too_late` unless `message` was sent less than `window` ago.
fn within(message: &Message, window: Duration, too_late: &'static str) -> ApiResult<()> {
    let age = Timestamp::now().0.saturating_sub(message.sent_at.0);
    let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    if age > window_ms {
        return Err(ApiError::forbidden(too_late));
    }
    Ok(())
}
