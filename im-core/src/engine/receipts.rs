//! Receipts: per user and conversation, a delivered cursor and a read cursor (each a max
//! seq that never moves back), the pushes that tell the other side, and the query "who
//! has received and read message N".
//!
//! Cursors are one row per member per conversation, never one per member per message:
//! marking a group of 10,000 read is one cursor write, a read of the newly read messages
//! (at most [`RECEIPT_SCAN`]) to find their senders, and a push to those senders.

use std::collections::BTreeSet;

use std::sync::Arc;

use super::Shared;
use super::access::Access;
use super::connection::Conn;
use super::error::{ApiError, ApiResult};
use super::fanout::{Outgoing, Recipients};
use super::session::SessionHandle;
use crate::model::{ConversationId, Seq, UserId};
use crate::protocol::{Event, Receipt, ReceiptKind, ServerFrame, reply, request};
use crate::storage::{Cursor, CursorQuery, MessageRange};

/// The most newly read messages whose senders get a read receipt. Senders of older ones
/// (a member catching up on thousands) can ask with `receipts`.
const RECEIPT_SCAN: u32 = 200;

/// Default and largest page of `receipts`.
const RECEIPTS_PAGE: u32 = 500;

impl Shared {
    pub(super) async fn mark_read(
        &self,
        _: &mut Conn,
        me: &Arc<SessionHandle>,
        request: request::MarkRead,
    ) -> ApiResult<reply::Read> {
        let request::MarkRead { conversation, seq } = request;
        let access = self.access(me.user, conversation).await?;
        let last = self.storage.last_seq(conversation).await?;
        let before = self.cursor(me.user, conversation).await?.read;
        let read_seq = self
            .storage
            .set_read(me.user, conversation, seq.min(last))
            .await?;
        if read_seq > before {
            let mut to: Vec<UserId> = vec![me.user];
            match &access {
                Access::Direct { peer } => to.push(*peer),
                Access::Group { .. } => {
                    // The senders of what was just read, as far back as the scan goes.
                    let range = MessageRange {
                        after: before.max(access.floor()),
                        before: Some(read_seq.next()),
                        limit: RECEIPT_SCAN,
                        newest: true,
                        viewer: None,
                    };
                    let senders: BTreeSet<UserId> = self
                        .storage
                        .messages(conversation, range)
                        .await?
                        .iter()
                        .map(|m| m.sender)
                        .filter(|s| *s != me.user)
                        .collect();
                    to.extend(senders);
                }
            }
            self.push_receipt(me, &to, conversation, ReceiptKind::Read, read_seq)
                .await;
        }
        Ok(reply::Read { read_seq })
    }

    pub(super) async fn ack(
        &self,
        _: &mut Conn,
        me: &Arc<SessionHandle>,
        request: request::Ack,
    ) -> ApiResult<reply::Delivered> {
        let request::Ack { conversation, seq } = request;
        let access = self.access(me.user, conversation).await?;
        let last = self.storage.last_seq(conversation).await?;
        let before = self.cursor(me.user, conversation).await?.delivered;
        let delivered_seq = self
            .storage
            .set_delivered(me.user, conversation, seq.min(last))
            .await?;
        // In groups, delivery is only stored (ask with `receipts`): pushing every
        // member's every delivery to the senders would be a storm.
        if delivered_seq > before
            && let Access::Direct { peer } = access
        {
            self.push_receipt(
                me,
                &[peer],
                conversation,
                ReceiptKind::Delivered,
                delivered_seq,
            )
            .await;
        }
        Ok(reply::Delivered { delivered_seq })
    }

    pub(super) async fn receipts(
        &self,
        _: &mut Conn,
        me: &Arc<SessionHandle>,
        request: request::Receipts,
    ) -> ApiResult<reply::Receipts> {
        let request::Receipts {
            conversation,
            seq,
            after,
            limit,
        } = request;
        let access = self.access(me.user, conversation).await?;
        if seq == Seq::ZERO {
            return Err(ApiError::invalid("seq: must be at least 1"));
        }
        let limit = limit.unwrap_or(RECEIPTS_PAGE).clamp(1, RECEIPTS_PAGE);
        let query = CursorQuery {
            at_least: seq,
            after,
            limit: limit + 1,
        };
        let mut cursors = self.storage.cursors(conversation, query).await?;
        let more = cursors.len() > limit as usize;
        cursors.truncate(limit as usize);
        let receipts = cursors
            .into_iter()
            // Former members keep their cursor rows; only current members who were there
            // when the message was sent are shown.
            .filter(|c| match &access {
                Access::Direct { peer } => c.user == *peer || c.user == me.user,
                Access::Group { members, .. } => {
                    members.get(c.user).is_some_and(|m| m.joined_seq <= seq)
                }
            })
            .map(|c| Receipt {
                user: c.user,
                delivered_seq: c.delivered,
                read_seq: c.read,
            })
            .collect();
        Ok(reply::Receipts { receipts, more })
    }

    /// One user's cursors (both zero if they have none).
    async fn cursor(&self, user: UserId, conversation: ConversationId) -> ApiResult<Cursor> {
        let query = CursorQuery {
            at_least: Seq::ZERO,
            after: user.0.checked_sub(1).map(UserId),
            limit: 1,
        };
        let found = self.storage.cursors(conversation, query).await?;
        Ok(found
            .into_iter()
            .find(|c| c.user == user)
            .unwrap_or(Cursor {
                user,
                ..Cursor::default()
            }))
    }

    /// Tells `users` (and the caller's other devices) that the caller's cursor moved.
    async fn push_receipt(
        &self,
        me: &SessionHandle,
        users: &[UserId],
        conversation: ConversationId,
        kind: ReceiptKind,
        seq: Seq,
    ) {
        let out = Outgoing::new(ServerFrame::Event {
            event: Event::Receipt {
                conversation,
                user: me.user,
                kind,
                seq,
            },
        });
        self.fan_out(Recipients::Users(users), me.skip(), &out, false)
            .await;
    }
}
