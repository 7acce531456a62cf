//! Reactions: one emoji per user per message, replaced by the next and taken back with
//! none. They are not timeline events (a reaction neither takes a seq nor counts as
//! unread): storage keeps the current reaction of each user, every session in the
//! conversation gets a `reaction` push, and `history` pages carry the reactions to their
//! messages, which is how a device that was away catches up.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use super::Shared;
use super::access::Access;
use super::connection::Conn;
use super::error::ApiResult;
use super::fanout::Outgoing;
use super::session::SessionHandle;
use super::validate;
use crate::model::{ConversationId, Message, Reaction, Seq, UserId};
use crate::protocol::{Event, ReactionSummary, ServerFrame, reply, request};

impl Shared {
    pub(super) async fn react(
        &self,
        _: &mut Conn,
        me: &Arc<SessionHandle>,
        request: request::React,
    ) -> ApiResult<reply::Reactions> {
        let request::React {
            conversation,
            seq,
            emoji,
        } = request;
        self.limits.send(me.user)?;
        if let Some(emoji) = &emoji {
            validate::emoji(emoji)?;
        }
        let access = self.access(me.user, conversation).await?;
        if let Access::Direct { peer } = access {
            self.may_message(me.user, peer).await?;
        }
        self.target(&access, conversation, seq, Some(me.user))
            .await?;
        self.storage
            .react(conversation, seq, me.user, emoji.as_deref())
            .await?;
        // The message's reactions after the change, so that a client shows counts without
        // knowing what this user's reaction was before. Two changes at once may arrive in
        // either order; the next page read (or the next change) is exact again.
        let now = self
            .storage
            .reactions(conversation, Seq(seq.0 - 1), seq)
            .await?;
        let mine = summarize(now.clone(), Some(me.user));
        let out = Outgoing::new(ServerFrame::Event {
            event: Event::Reaction {
                conversation,
                seq,
                user: me.user,
                emoji,
                reactions: summarize(now, None),
            },
        });
        self.push_about_message(me, &access, seq, &out).await;
        Ok(reply::Reactions {
            conversation,
            seq,
            reactions: mine,
        })
    }

    /// The reactions to `messages` (a page of one conversation, ascending), as `reader`
    /// sees them.
    pub(super) async fn reactions_to(
        &self,
        conversation: ConversationId,
        messages: &[Message],
        reader: UserId,
    ) -> ApiResult<Vec<ReactionSummary>> {
        let (Some(first), Some(last)) = (messages.first(), messages.last()) else {
            return Ok(Vec::new());
        };
        let rows = self
            .storage
            .reactions(conversation, Seq(first.seq.0.saturating_sub(1)), last.seq)
            .await?;
        let shown: HashSet<Seq> = messages.iter().map(|m| m.seq).collect();
        let rows = rows
            .into_iter()
            .filter(|r| shown.contains(&r.seq))
            .collect();
        Ok(summarize(rows, Some(reader)))
    }
}

/// Reactions (ordered by seq, then user) grouped by message and emoji: the most used
/// emoji of each message first, at most [`ReactionSummary::MAX_EMOJI`] of them, each
/// with its count and its first [`ReactionSummary::MAX_USERS`] users.
pub(super) fn summarize(rows: Vec<Reaction>, reader: Option<UserId>) -> Vec<ReactionSummary> {
    let mut by_seq: BTreeMap<Seq, BTreeMap<String, ReactionSummary>> = BTreeMap::new();
    for Reaction { seq, user, emoji } in rows {
        let entry = by_seq
            .entry(seq)
            .or_default()
            .entry(emoji)
            .or_insert_with_key(|emoji| ReactionSummary {
                seq,
                emoji: emoji.clone(),
                count: 0,
                users: Vec::new(),
                mine: false,
            });
        entry.count += 1;
        if entry.users.len() < ReactionSummary::MAX_USERS {
            entry.users.push(user);
        }
        entry.mine |= reader == Some(user);
    }
    let mut out = Vec::new();
    for emoji in by_seq.into_values() {
        let mut emoji: Vec<ReactionSummary> = emoji.into_values().collect();
        // Most used first; ties in emoji order, so every reader sees the same list.
        emoji.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.emoji.cmp(&b.emoji)));
        out.extend(emoji.into_iter().take(ReactionSummary::MAX_EMOJI));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(seq: u64, user: u64, emoji: &str) -> Reaction {
        Reaction {
            seq: Seq(seq),
            user: UserId(user),
            emoji: emoji.to_owned(),
        }
    }

    #[test]
    fn summaries_count_name_the_first_users_and_keep_the_most_used() {
        let mut rows = vec![r(1, 1, "👍"), r(1, 2, "❤️"), r(1, 3, "👍"), r(2, 2, "🎉")];
        // Seven more emoji on message 3, one user each, and one used twice.
        for (user, emoji) in ["a", "b", "c", "d", "e", "f", "g"].iter().enumerate() {
            rows.push(r(3, 10 + user as u64, emoji));
        }
        rows.push(r(3, 30, "g"));
        rows.sort_by_key(|r| (r.seq, r.user));
        let out = summarize(rows, Some(UserId(2)));
        let view: Vec<(u64, &str, u32, bool)> = out
            .iter()
            .map(|s| (s.seq.0, s.emoji.as_str(), s.count, s.mine))
            .collect();
        assert_eq!(
            view,
            [
                (1, "👍", 2, false),
                (1, "❤️", 1, true),
                (2, "🎉", 1, true),
                (3, "g", 2, false),
                (3, "a", 1, false),
                (3, "b", 1, false),
                (3, "c", 1, false),
                (3, "d", 1, false),
                (3, "e", 1, false),
            ]
        );
        assert_eq!(out[0].users, [UserId(1), UserId(3)]);

        let many: Vec<Reaction> = (0..9).map(|u| r(1, u, "👍")).collect();
        let out = summarize(many, None);
        assert_eq!(
            (out[0].count, out[0].users.len()),
            (9, ReactionSummary::MAX_USERS)
        );
    }
}
