//! `search`: full-text search over the messages a user may read. The words are cut by
//! `storage::SearchTerms`; storage matches them and decides what the user may read in
//! the same query, so a message of a group the user just left is never found.

use std::sync::Arc;

use super::Shared;
use super::connection::Conn;
use super::error::{ApiError, ApiResult};
use super::messaging::fitting;
use super::session::SessionHandle;
use crate::protocol::{reply, request};
use crate::storage::{SearchQuery, SearchTerms};

impl Shared {
    pub(super) async fn search(
        &self,
        _: &mut Conn,
        me: &Arc<SessionHandle>,
        request: request::Search,
    ) -> ApiResult<reply::Found> {
        let request::Search {
            query,
            conversation,
            before,
            limit,
        } = request;
        // A query that cannot be searched costs nothing, and is not counted.
        let terms = SearchTerms::parse(&query).map_err(|e| ApiError::invalid(e.to_string()))?;
        self.limits.search(me.user)?;
        if let Some(conversation) = conversation {
            // A clear refusal for a conversation the user is not in (storage would only
            // find nothing).
            self.access(me.user, conversation).await?;
        }
        let limit = limit
            .unwrap_or(self.config.default_page)
            .clamp(1, self.config.max_page.max(1));
        let query = SearchQuery {
            terms,
            conversation,
            before,
            // One more than asked, to learn whether there is more.
            limit: limit + 1,
        };
        let mut messages = self.storage.search(me.user, &query).await?;
        let mut more = messages.len() > limit as usize;
        messages.truncate(limit as usize);
        let keep = fitting(&messages, &[], self.config.max_frame_bytes, false);
        if keep < messages.len() {
            more = true;
            messages.truncate(keep);
        }
        Ok(reply::Found { messages, more })
    }
}
