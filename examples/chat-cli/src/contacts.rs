//! `friends`, `add-friend`, `accept`, `requests`.

use im_core::model::{FriendRequest, UserId};
use serde_json::json;

use crate::context::Context;
use crate::error::CliError;
use crate::names::{Names, find_user};

/// `friends`: one line per friend.
pub(crate) async fn friends(cx: &Context) -> Result<(), CliError> {
    let session = cx.session().await?;
    let friends = session.client.friends().await?;
    let mut names = Names::default();
    names
        .resolve(&session.client, friends.iter().map(|f| f.user))
        .await?;
    if friends.is_empty() && !cx.out.json {
        eprintln!("(no friends yet; add one with: chat-cli add-friend <username>)");
    }
    for friend in &friends {
        cx.out.emit(
            || match names.user(friend.user) {
                Some(user) => format!("{}\t{}", user.username, user.display_name),
                None => names.name(friend.user),
            },
            || json!({ "user": user_json(&names, friend.user), "since": friend.since }),
        )?;
    }
    Ok(())
}

/// `add-friend <username> [--note ..]`.
pub(crate) async fn add_friend(cx: &Context, username: &str, note: &str) -> Result<(), CliError> {
    let session = cx.session().await?;
    let user = find_user(&session.client, username).await?;
    session.client.request_friend(user.id, note).await?;
    cx.out.emit(
        || format!("asked {} to be friends", user.username),
        || json!({ "requested": user }),
    )
}

/// `accept <username>`.
pub(crate) async fn accept(cx: &Context, username: &str) -> Result<(), CliError> {
    let session = cx.session().await?;
    let user = find_user(&session.client, username).await?;
    session.client.accept_friend(user.id).await?;
    cx.out.emit(
        || format!("you and {} are now friends", user.username),
        || json!({ "accepted": user }),
    )
}

/// `requests`: pending friend requests, incoming first.
pub(crate) async fn requests(cx: &Context) -> Result<(), CliError> {
    let session = cx.session().await?;
    let (incoming, outgoing) = session.client.friend_requests().await?;
    let mut names = Names::default();
    let ids = incoming
        .iter()
        .map(|r| r.from)
        .chain(outgoing.iter().map(|r| r.to));
    names.resolve(&session.client, ids).await?;
    if incoming.is_empty() && outgoing.is_empty() && !cx.out.json {
        eprintln!("(no pending friend requests)");
    }
    let print = |direction: &str, other: UserId, request: &FriendRequest| {
        cx.out.emit(
            || {
                let (arrow, name) = match direction {
                    "incoming" => ("from", names.name(other)),
                    _ => ("to", names.name(other)),
                };
                if request.note.is_empty() {
                    format!("{direction}\t{arrow} {name}")
                } else {
                    format!("{direction}\t{arrow} {name}\t{:?}", request.note)
                }
            },
            || {
                json!({
                    "direction": direction,
                    "user": user_json(&names, other),
                    "note": request.note,
                    "created_at": request.created_at,
                })
            },
        )
    };
    for request in &incoming {
        print("incoming", request.from, request)?;
    }
    for request in &outgoing {
        print("outgoing", request.to, request)?;
    }
    Ok(())
}

/// A user's profile as JSON, or just the id when the profile is gone.
fn user_json(names: &Names, id: UserId) -> serde_json::Value {
    match names.user(id) {
        Some(user) => json!(user),
        None => json!({ "id": id }),
    }
}
