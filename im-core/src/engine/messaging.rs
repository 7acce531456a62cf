//! Sending, conversation lists, history and read cursors.
//!
//! A send is authorised, stored (storage assigns the seq atomically and makes it
//! durable), acknowledged to the sender only after that, and then pushed to every
//! session of the recipients and to the sender's other devices.

use std::sync::Arc;

use super::Shared;
use super::access::Access;
use super::connection::Conn;
use super::error::{ApiError, ApiResult};
use super::fanout::Recipients;
use super::session::SessionHandle;
use super::validate;
use crate::model::{ConversationId, Forwarded, Seq, Timestamp, UserId};
use crate::protocol::{ConversationSummary, reply, request};
use crate::storage::{Appended, MessageRange, NewMessage};

impl Shared {
    pub(super) async fn send(
        &self,
        _: &mut Conn,
        me: &Arc<SessionHandle>,
        request: request::Send,
    ) -> ApiResult<reply::Sent> {
        let conversation = request.conversation;
        let (access, message) = self.prepare_send(me, request, true).await?;
        let appended = self.storage.append(conversation, message).await?;
        Ok(self.acknowledge(me, &access, appended).await)
    }

    /// Sends that one connection pipelined, in the order it sent them: each is checked
    /// on its own, the ones allowed are stored together (one commit on a store that
    /// batches), then each is acknowledged and pushed. One answer per send, in order.
    pub(crate) async fn send_many(
        &self,
        me: &SessionHandle,
        sends: Vec<request::Send>,
    ) -> Vec<ApiResult<reply::Sent>> {
        let mut answers: Vec<Option<ApiResult<reply::Sent>>> = Vec::with_capacity(sends.len());
        let mut allowed = Vec::new();
        let mut batch = Vec::new();
        for send in sends {
            let conversation = send.conversation;
            match self.prepare_send(me, send, true).await {
                Ok((access, message)) => {
                    allowed.push((answers.len(), access));
                    batch.push((conversation, message));
                    answers.push(None);
                }
                Err(e) => answers.push(Some(Err(e))),
            }
        }
        let stored = self.storage.append_many(batch).await;
        for ((slot, access), result) in allowed.into_iter().zip(stored) {
            answers[slot] = Some(match result {
                Ok(appended) => Ok(self.acknowledge(me, &access, appended).await),
                Err(e) => Err(e.into()),
            });
        }
        answers
            .into_iter()
            .map(|answer| answer.unwrap_or_else(|| Err(ApiError::internal())))
            .collect()
    }

    /// Everything a send checks before it is stored: rate, client id, body, that the
    /// sender may write to the conversation, that a quoted message is one they can
    /// read, and, for a body of their own (not a forward's), that a file it shows is
    /// theirs to show there (`may_show`).
    async fn prepare_send(
        &self,
        me: &SessionHandle,
        request: request::Send,
        own_body: bool,
    ) -> ApiResult<(Access, NewMessage)> {
        let request::Send {
            conversation,
            client_id,
            body,
            reply_to,
            mentions,
        } = request;
        self.limits.send(me.user)?;
        validate::client_id(&client_id)?;
        validate::body(&body, self.config.max_body_bytes)?;
        let access = self.access(me.user, conversation).await?;
        if let Access::Direct { peer } = access {
            self.may_message(me.user, peer).await?;
        }
        if let Some(quoted) = reply_to {
            self.check_quotable(conversation, &access, quoted).await?;
        }
        if own_body {
            self.may_show(me.user, conversation, &body).await?;
        }
        let mentions = mentioned(me.user, &access, mentions)?;
        let message = NewMessage {
            sender: me.user,
            sender_device: me.device.clone(),
            client_id,
            body,
            sent_at: Timestamp::now(),
            reply_to,
            forwarded: None,
            mentions,
        };
        Ok((access, message))
    }

    /// Forwards a message the sender can read: a new message in `to` with its body and
    /// its first origin, checked like any send to `to`.
    pub(super) async fn forward(
        &self,
        _: &mut Conn,
        me: &Arc<SessionHandle>,
        request: request::Forward,
    ) -> ApiResult<reply::Sent> {
        let request::Forward {
            conversation,
            seq,
            to,
            client_id,
        } = request;
        let source = self.access(me.user, conversation).await?;
        let original = self
            .target(&source, conversation, seq, Some(me.user))
            .await?;
        let origin = original.forwarded.unwrap_or(Forwarded {
            sender: original.sender,
            sent_at: original.sent_at,
        });
        let send = request::Send {
            conversation: to,
            client_id,
            body: original.body,
            reply_to: None,
            mentions: Vec::new(),
        };
        // A recalled message, or a group's record of a change, is a system body, which
        // `prepare_send` refuses like any client-sent one.
        // The body is one the sender can read: any file it shows may go on with it.
        let (access, mut message) = self.prepare_send(me, send, false).await?;
        message.forwarded = Some(origin);
        let appended = self.storage.append(to, message).await?;
        Ok(self.acknowledge(me, &access, appended).await)
    }

    /// A message may quote one of its conversation that is stored and that its sender
    /// can read (in a group, from their join on). Seqs only grow, so a seq stored now
    /// stays stored: the check cannot be raced.
    async fn check_quotable(
        &self,
        conversation: ConversationId,
        access: &Access,
        quoted: Seq,
    ) -> ApiResult<()> {
        if quoted == Seq::ZERO {
            return Err(ApiError::invalid("reply_to: seqs start at 1"));
        }
        if quoted <= access.floor() || quoted > self.storage.last_seq(conversation).await? {
            return Err(ApiError::not_found(format!(
                "reply_to: no message {quoted} to reply to"
            )));
        }
        Ok(())
    }

    /// The `sent` reply for an append (a send, or a recall or edit event), after pushing
    /// a newly stored message to everyone in the conversation. A retry was pushed when it
    /// was first stored (or its pushes are recoverable by sync if the server stopped in
    /// between); pushing again would only duplicate.
    pub(super) async fn acknowledge(
        &self,
        me: &SessionHandle,
        access: &Access,
        appended: Appended,
    ) -> reply::Sent {
        let message = appended.message;
        let reply = reply::Sent {
            conversation: message.conversation,
            message_id: message.id,
            seq: message.seq,
            sent_at: message.sent_at,
            duplicate: appended.duplicate,
        };
        if !appended.duplicate {
            metrics::counter!("im_messages_stored_total").increment(1);
            let pair;
            let to = match access {
                Access::Direct { peer } => {
                    pair = [me.user, *peer];
                    Recipients::Users(&pair)
                }
                Access::Group { members, .. } => Recipients::Group(members),
            };
            self.push_message(to, me, message).await;
        }
        reply
    }

    pub(super) async fn conversations(
        &self,
        _: &mut Conn,
        me: &Arc<SessionHandle>,
        _: request::Conversations,
    ) -> ApiResult<reply::Conversations> {
        let mut conversations: Vec<ConversationSummary> = self
            .storage
            .conversations(me.user)
            .await?
            .into_iter()
            .map(|c| ConversationSummary {
                conversation: c.conversation,
                last_seq: c.last_seq,
                read_seq: c.read_seq,
                unread: c.last_seq.0.saturating_sub(c.read_seq.0),
                delivered_seq: c.delivered_seq,
                peer_read_seq: c.conversation.peer_of(me.user).map(|_| c.peer.read),
                peer_delivered_seq: c.conversation.peer_of(me.user).map(|_| c.peer.delivered),
                last_message: c.last_message,
                mentioned: (c.mention_seq > c.read_seq).then_some(c.mention_seq),
            })
            .collect();
        conversations.sort_by(|a, b| {
            let at = |c: &ConversationSummary| c.last_message.as_ref().map(|m| m.sent_at);
            at(b).cmp(&at(a)).then(a.conversation.cmp(&b.conversation))
        });
        Ok(reply::Conversations { conversations })
    }

    pub(super) async fn history(
        &self,
        _: &mut Conn,
        me: &Arc<SessionHandle>,
        request: request::History,
    ) -> ApiResult<reply::History> {
        let request::History {
            conversation,
            query,
        } = request;
        let access = self.access(me.user, conversation).await?;
        let floor = access.floor();
        let limit = query
            .limit
            .unwrap_or(self.config.default_page)
            .clamp(1, self.config.max_page.max(1));
        // One more than asked, to learn whether there is more.
        let range = MessageRange {
            after: query.after.map_or(floor, |a| a.max(floor)),
            before: query.before,
            limit: limit + 1,
            newest: query.after.is_none(),
            // Messages this user deleted for themselves are left out; pages stay full.
            viewer: Some(me.user),
        };
        let mut messages = self.storage.messages(conversation, range).await?;
        let mut more = messages.len() > limit as usize;
        if more {
            if range.newest {
                messages.remove(0);
            } else {
                messages.truncate(limit as usize);
            }
        }
        let mut reactions = self.reactions_to(conversation, &messages, me.user).await?;
        // A page of large messages could exceed the frame limit: keep what fits (the
        // messages nearest the cursor, with their reactions) and let the client ask for
        // the rest.
        let keep = fitting(
            &messages,
            &reactions,
            self.config.max_frame_bytes,
            range.newest,
        );
        if keep < messages.len() {
            more = true;
            if range.newest {
                messages.drain(..messages.len() - keep);
            } else {
                messages.truncate(keep);
            }
            let (first, last) = (messages[0].seq, messages[messages.len() - 1].seq);
            reactions.retain(|r| (first..=last).contains(&r.seq));
        }
        Ok(reply::History {
            messages,
            more,
            reactions,
        })
    }
}

/// The most users one message may mention.
pub(crate) const MAX_MENTIONS: usize = 50;

/// A send's mentions as stored: members of the conversation only (in a direct chat, its
/// other user), without the sender and without repeats, in the order given. The member
/// list is the one the send was checked against; a member who leaves meanwhile keeps a
/// mark on a conversation they no longer see.
fn mentioned(me: UserId, access: &Access, asked: Vec<UserId>) -> ApiResult<Vec<UserId>> {
    if asked.len() > MAX_MENTIONS {
        return Err(ApiError::invalid(format!(
            "mentions: at most {MAX_MENTIONS} users"
        )));
    }
    let mut mentions: Vec<UserId> = Vec::with_capacity(asked.len());
    for user in asked {
        if user == me || mentions.contains(&user) {
            continue;
        }
        let member = match access {
            Access::Direct { peer } => *peer == user,
            Access::Group { members, .. } => members.get(user).is_some(),
        };
        if !member {
            return Err(ApiError::invalid(format!(
                "mentions: user {user} is not in this conversation"
            )));
        }
        mentions.push(user);
    }
    Ok(mentions)
}

/// How many messages of a page fit in one frame of `max_frame_bytes`, counting from the
/// end when `from_end` (the newest, for scroll-back) and from the start otherwise. At
/// least one, so a page always makes progress.
pub(super) fn fitting(
    messages: &[crate::model::Message],
    reactions: &[crate::protocol::ReactionSummary],
    max_frame_bytes: usize,
    from_end: bool,
) -> usize {
    // Room for the reply's own envelope: type, id, flags.
    let mut budget = max_frame_bytes.saturating_sub(256);
    let mut extra: std::collections::HashMap<Seq, usize> = std::collections::HashMap::new();
    for r in reactions {
        let size = serde_json::to_vec(r).map_or(usize::MAX, |v| v.len() + 1);
        let at = extra.entry(r.seq).or_default();
        *at = at.saturating_add(size);
    }
    let order: Box<dyn Iterator<Item = &crate::model::Message>> = if from_end {
        Box::new(messages.iter().rev())
    } else {
        Box::new(messages.iter())
    };
    let mut n = 0;
    for m in order {
        // Separator included; sizes are measured, not guessed (JSON escaping varies).
        let size = serde_json::to_vec(m).map_or(usize::MAX, |v| v.len() + 1);
        let size = size.saturating_add(extra.get(&m.seq).copied().unwrap_or(0));
        if size > budget {
            break;
        }
        budget -= size;
        n += 1;
    }
    n.max(1).min(messages.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Body, DeviceId, Message, MessageId, UserId};
    use crate::protocol::ReactionSummary;

    fn message(seq: u64) -> Message {
        Message {
            id: MessageId(seq),
            conversation: ConversationId::direct(UserId(1), UserId(2)),
            seq: Seq(seq),
            sender: UserId(1),
            sender_device: DeviceId::new("d").unwrap(),
            client_id: format!("c{seq}"),
            body: Body::Text {
                text: "x".repeat(1000),
            },
            sent_at: Timestamp(0),
            edited_at: None,
            reply_to: None,
            forwarded: None,
            mentions: Vec::new(),
        }
    }

    /// A page's reactions count against the frame with their message: a page that fits
    /// exactly without them loses its oldest message (read newest first) when that one
    /// carries reactions.
    #[test]
    fn reactions_count_against_the_frame_with_their_message() {
        let messages: Vec<Message> = (1..=3).map(message).collect();
        let sizes: usize = messages
            .iter()
            .map(|m| serde_json::to_vec(m).unwrap().len() + 1)
            .sum();
        let frame = 256 + sizes;
        assert_eq!(fitting(&messages, &[], frame, true), 3);
        let reactions = vec![ReactionSummary {
            seq: Seq(1),
            emoji: "👍".into(),
            count: 1,
            users: vec![UserId(2)],
            mine: false,
        }];
        assert_eq!(fitting(&messages, &reactions, frame, true), 2);
        // Read oldest first, the same reactions cost the newest message its place.
        assert_eq!(fitting(&messages, &reactions, frame, false), 2);
        let on_newest = vec![ReactionSummary {
            seq: Seq(3),
            ..reactions[0].clone()
        }];
        assert_eq!(fitting(&messages, &on_newest, frame + 200, true), 3);
    }
}
