//! `register`, `send-code`, `login`, `whoami`, `logout`.

use im_core::model::{DeviceId, Platform};
use im_core::protocol::{DeviceInfo, ErrorCode, request};
use serde_json::json;

use crate::connect;
use crate::context::Context;
use crate::error::CliError;
use crate::state::{self, State};

/// What a gated registration shows: the address a code went to, and the code.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Proof<'a> {
    pub(crate) contact: Option<&'a str>,
    pub(crate) code: Option<&'a str>,
}

/// `register <username> <password> [--name <display name>] [--contact <address> --code <code>]`.
pub(crate) async fn register(
    cx: &Context,
    username: &str,
    password: &str,
    name: Option<&str>,
    proof: Proof<'_>,
) -> Result<(), CliError> {
    // A damaged state file must not stop anyone from registering: it only picks the
    // default server here.
    let saved = cx.load().ok().flatten();
    let (client, _events) = connect::open(&cx.server(saved.as_ref())).await?;
    let user = client
        .call(request::Register {
            username: username.to_owned(),
            password: password.to_owned(),
            display_name: name.unwrap_or(username).to_owned(),
            avatar: None,
            proof: proof.code.map(str::to_owned),
            contact: proof.contact.map(str::to_owned),
        })
        .await?
        .user;
    cx.out.emit(
        || format!("registered {} (id {})", user.username, user.id),
        || json!({ "user": user }),
    )
}

/// `send-code <contact>`: asks the server to send a verification code there.
pub(crate) async fn send_code(cx: &Context, contact: &str) -> Result<(), CliError> {
    let saved = cx.load().ok().flatten();
    let (client, _events) = connect::open(&cx.server(saved.as_ref())).await?;
    client.send_code(contact).await?;
    cx.out.emit(
        || format!("a code is on its way to {contact}"),
        || json!({ "sent_to": contact }),
    )
}

/// `login <username> <password> [--device <id>] [--code <second factor>]`: logs in two devices, `<id>` for the
/// one-shot commands and `<id>-listen` for `listen` (see [`State::listen_token`]),
/// saves both tokens and prints the first.
pub(crate) async fn login(
    cx: &Context,
    username: &str,
    password: &str,
    device: &str,
    code: Option<&str>,
) -> Result<(), CliError> {
    let listen_device = format!("{device}-listen");
    DeviceId::new(device)
        .and_then(|_| DeviceId::new(listen_device.as_str()))
        .map_err(|e| {
            CliError::invalid(format!(
                "--device {device:?}: {} (at most {} characters, as `-listen` is appended)",
                e.reason,
                DeviceId::MAX_LEN - "-listen".len()
            ))
        })?;
    let saved = cx.load().ok().flatten();
    let server = cx.server(saved.as_ref());

    // A connection carries one session, so each device logs in on its own.
    let login = |id: &str| request::Login {
        username: username.to_owned(),
        password: password.to_owned(),
        device: DeviceInfo {
            id: DeviceId::new(id).expect("checked above"),
            name: id.to_owned(),
            platform: Platform::Other,
        },
        proof: code.map(str::to_owned),
    };
    let (client, _events) = connect::open(&server).await?;
    let session = client.call(login(device)).await?;
    let (listen_client, _listen_events) = connect::open(&server).await?;
    let listen = listen_client.call(login(&listen_device)).await?;
    let (Some(token), Some(listen_token)) = (session.token, listen.token) else {
        return Err(CliError::new("internal", "the server sent no device token"));
    };

    // Logging in again as the same user on the same server keeps the sync cursors.
    let seen = saved
        .filter(|s| s.user_id == session.user.id && s.server == server)
        .map(|s| s.seen)
        .unwrap_or_default();
    let state = State {
        server: server.clone(),
        username: session.user.username.clone(),
        user_id: session.user.id,
        device: device.to_owned(),
        token: token.clone(),
        listen_device: Some(listen_device.clone()),
        listen_token: Some(listen_token),
        seen,
    };
    cx.save(&state)?;
    cx.out.emit(
        || token.clone(),
        || {
            json!({
                "token": token,
                "user": session.user,
                "device": session.device,
                "listen_device": listen_device,
                "server": server,
            })
        },
    )
}

/// `whoami`: the saved session, as the server confirms it.
pub(crate) async fn whoami(cx: &Context) -> Result<(), CliError> {
    let session = cx.session().await?;
    cx.out.emit(
        || {
            format!(
                "{} (id {}, \"{}\") on {} as device {}",
                session.me.username,
                session.me.id,
                session.me.display_name,
                session.server,
                session.device.id
            )
        },
        || {
            json!({
                "user": session.me,
                "device": session.device,
                "server": session.server,
            })
        },
    )
}

/// `logout`: revokes both devices' tokens and removes the state file.
pub(crate) async fn logout(cx: &Context) -> Result<(), CliError> {
    let username = match cx.session().await {
        Ok(session) => {
            if let Some(device) = &session.state.listen_device {
                let device = DeviceId::new(device.as_str()).map_err(|e| {
                    CliError::invalid(format!("the state file's listen device: {e}"))
                })?;
                match session.client.revoke_device(&device).await {
                    Ok(()) => {}
                    Err(e) if e.code() == Some(ErrorCode::NotFound) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            session.client.logout().await?;
            session.me.username
        }
        // The server already ended the session: only the file is left to forget.
        Err(e) if e.is_unauthorized() => match cx.load()? {
            Some(saved) => saved.username,
            None => return Err(e),
        },
        Err(e) => return Err(e),
    };
    state::remove(&cx.state_path)?;
    cx.out.emit(
        || format!("logged out {username}"),
        || json!({ "logged_out": username }),
    )
}
