//! Usernames for user ids: messages and events name users by id, people by name.

use std::collections::HashMap;

use im_core::client::Client;
use im_core::model::{Body, Message, SystemEvent, User, UserId};
use im_core::protocol::{ErrorCode, Event};

use crate::error::CliError;

/// The most ids one `users` request may ask about.
const USERS_PER_REQUEST: usize = 500;

/// A cache of public profiles, filled with `users` requests as ids show up.
#[derive(Debug, Default)]
pub(crate) struct Names {
    known: HashMap<UserId, User>,
}

impl Names {
    /// Remembers a user already fetched (by `find_user`, say).
    pub(crate) fn insert(&mut self, user: &User) {
        self.known.insert(user.id, user.clone());
    }

    /// Fetches the names of the ids not known yet. Ids of deleted users stay unknown.
    pub(crate) async fn resolve(
        &mut self,
        client: &Client,
        ids: impl IntoIterator<Item = UserId>,
    ) -> Result<(), CliError> {
        let mut missing: Vec<UserId> = ids
            .into_iter()
            .filter(|id| !self.known.contains_key(id))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        for chunk in missing.chunks(USERS_PER_REQUEST) {
            for user in &client.users(chunk).await? {
                self.insert(user);
            }
        }
        Ok(())
    }

    /// The username, or `user:<id>` when unknown.
    pub(crate) fn name(&self, id: UserId) -> String {
        match self.known.get(&id) {
            Some(user) => user.username.clone(),
            None => format!("user:{id}"),
        }
    }

    /// The username if known.
    pub(crate) fn get(&self, id: UserId) -> Option<&str> {
        self.known.get(&id).map(|user| user.username.as_str())
    }

    /// The profile if known.
    pub(crate) fn user(&self, id: UserId) -> Option<&User> {
        self.known.get(&id)
    }
}

/// Looks a user up by username; `not_found` says which name.
pub(crate) async fn find_user(client: &Client, username: &str) -> Result<User, CliError> {
    match client.find_user(username).await {
        Ok(user) => Ok(user),
        Err(e) if e.code() == Some(ErrorCode::NotFound) => Err(CliError::new(
            ErrorCode::NotFound.as_str(),
            format!("no user named {username:?}"),
        )),
        Err(e) => Err(e.into()),
    }
}

/// Every user a message names: its sender and those in a system event.
pub(crate) fn in_message(message: &Message) -> Vec<UserId> {
    let mut ids = vec![message.sender];
    if let Body::System { event } = &message.body {
        match event {
            SystemEvent::GroupCreated { by, members, .. } => {
                ids.push(*by);
                ids.extend(members);
            }
            SystemEvent::MembersAdded { by, users } => {
                ids.push(*by);
                ids.extend(users);
            }
            SystemEvent::MemberJoined { user } | SystemEvent::MemberLeft { user } => {
                ids.push(*user)
            }
            SystemEvent::MemberKicked { by, user } | SystemEvent::RoleChanged { by, user, .. } => {
                ids.extend([*by, *user])
            }
            SystemEvent::Renamed { by, .. } | SystemEvent::MessageRecalled { by, .. } => {
                ids.push(*by)
            }
            SystemEvent::OwnerChanged { from, to } => ids.extend([*from, *to]),
            SystemEvent::MessageEdited { .. } => {}
        }
    }
    ids
}

/// The user an event is about, if any.
pub(crate) fn in_event(event: &Event) -> Option<UserId> {
    match event {
        Event::FriendRequest { request } => Some(request.from),
        Event::FriendAdded { user }
        | Event::FriendRequestDeclined { user }
        | Event::FriendRemoved { user }
        | Event::Blocked { user }
        | Event::Unblocked { user }
        | Event::Receipt { user, .. }
        | Event::Typing { user, .. }
        | Event::Presence { user, .. } => Some(*user),
        Event::Signal { from, .. } => Some(*from),
        _ => None,
    }
}
