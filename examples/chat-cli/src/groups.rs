//! `groups`, `create-group`.

use im_core::model::Group;
use serde_json::{Value, json};

use crate::context::Context;
use crate::error::CliError;
use crate::names::{Names, find_user};

/// `groups`: one line per group; send to one with `#<id>`.
pub(crate) async fn groups(cx: &Context) -> Result<(), CliError> {
    let session = cx.session().await?;
    let groups = session.client.my_groups().await?;
    let mut names = Names::default();
    names
        .resolve(&session.client, groups.iter().map(|g| g.owner))
        .await?;
    if groups.is_empty() && !cx.out.json {
        eprintln!("(no groups yet; create one with: chat-cli create-group <name>)");
    }
    for group in &groups {
        cx.out.emit(
            || {
                format!(
                    "#{}\t{}\towner {}",
                    group.id,
                    group.name,
                    names.name(group.owner)
                )
            },
            || group_json(group, &names),
        )?;
    }
    Ok(())
}

/// `create-group <name> [--members user1,user2]`.
pub(crate) async fn create_group(
    cx: &Context,
    name: &str,
    members: &[String],
) -> Result<(), CliError> {
    let session = cx.session().await?;
    let mut names = Names::default();
    names.insert(&session.me);
    let mut ids = Vec::with_capacity(members.len());
    for username in members.iter().map(|m| m.trim()).filter(|m| !m.is_empty()) {
        let user = find_user(&session.client, username).await?;
        names.insert(&user);
        ids.push(user.id);
    }
    let group = session.client.create_group(name, &ids).await?;
    cx.out.emit(
        || {
            format!(
                "created group #{} \"{}\"; send to it with: chat-cli send '#{}' <text>",
                group.id, group.name, group.id
            )
        },
        || group_json(&group, &names),
    )
}

/// The protocol's group object plus its owner's username.
fn group_json(group: &Group, names: &Names) -> Value {
    let mut value = json!(group);
    if let (Value::Object(map), Some(owner)) = (&mut value, names.get(group.owner)) {
        map.insert("owner_username".to_owned(), owner.into());
    }
    value
}
