//! What every command shares: the global flags, the state file, and the resumed session.

use std::path::PathBuf;

use im_core::client::{Client, Events};
use im_core::model::{Device, User};

use crate::connect::{self, DEFAULT_SERVER};
use crate::error::CliError;
use crate::output::Out;
use crate::state::{self, State};

/// The global flags, resolved.
#[derive(Debug)]
pub(crate) struct Context {
    /// `--server` or `IM_SERVER`, if given.
    server: Option<String>,
    /// The state file.
    pub(crate) state_path: PathBuf,
    /// Where replies go.
    pub(crate) out: Out,
}

/// A connection logged in with the saved token.
#[derive(Debug)]
pub(crate) struct Session {
    /// The connection.
    pub(crate) client: Client,
    /// Its events, for `listen`; the other commands drop them.
    pub(crate) events: Events,
    /// Who is logged in, as the server says.
    pub(crate) me: User,
    /// As which device.
    pub(crate) device: Device,
    /// The server connected to.
    pub(crate) server: String,
    /// The saved state, to update and save back.
    pub(crate) state: State,
}

impl Context {
    pub(crate) fn new(server: Option<String>, state: Option<PathBuf>, json: bool) -> Self {
        Context {
            server: server.filter(|s| !s.trim().is_empty()),
            state_path: state.unwrap_or_else(state::default_path),
            out: Out { json },
        }
    }

    /// The server to talk to: the flag, else the saved session's, else the default.
    /// A session saved over `tcp://` may be used over `ws://` of the same server: the
    /// token belongs to the server, not to the transport.
    pub(crate) fn server(&self, saved: Option<&State>) -> String {
        self.server
            .clone()
            .or_else(|| saved.map(|s| s.server.clone()))
            .unwrap_or_else(|| DEFAULT_SERVER.to_owned())
    }

    /// The saved state, if any.
    pub(crate) fn load(&self) -> Result<Option<State>, CliError> {
        state::load(&self.state_path)
    }

    /// The saved state, or `unauthorized` if nobody is logged in.
    pub(crate) fn logged_in(&self) -> Result<State, CliError> {
        self.load()?.ok_or_else(|| {
            CliError::unauthorized(format!(
                "not logged in (no {}); run: chat-cli login <username> <password>",
                self.state_path.display()
            ))
        })
    }

    /// Connects and resumes the saved session with `token`.
    pub(crate) async fn resume_with(&self, state: State, token: &str) -> Result<Session, CliError> {
        let server = self.server(Some(&state));
        let (client, events) = connect::open(&server).await?;
        let session = client.resume(token).await.map_err(|e| {
            let e = CliError::from(e);
            if e.is_unauthorized() {
                CliError::unauthorized(format!(
                    "{} (the saved session is no longer valid; log in again)",
                    e.message
                ))
            } else {
                e
            }
        })?;
        Ok(Session {
            client,
            events,
            me: session.user,
            device: session.device,
            server,
            state,
        })
    }

    /// Connects and resumes the saved session as its one-shot device.
    pub(crate) async fn session(&self) -> Result<Session, CliError> {
        let state = self.logged_in()?;
        let token = state.token.clone();
        self.resume_with(state, &token).await
    }

    /// Saves `state` to the state file.
    pub(crate) fn save(&self, state: &State) -> Result<(), CliError> {
        state::save(&self.state_path, state)
    }
}
