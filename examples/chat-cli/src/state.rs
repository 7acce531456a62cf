//! The state file: the saved session and the `sync` cursors, as JSON.
//!
//! ```json
//! {"server":"tcp://127.0.0.1:7100","username":"alice","user_id":1,
//!  "device":"chat-cli","token":"1.…","listen_device":"chat-cli-listen","listen_token":"1.…",
//!  "seen":{"d:1:2":7,"g:3":12}}
//! ```
//!
//! It holds device tokens, so it is written owner-only (mode 0600 on unix), and always
//! whole: to a temporary file next to it, then renamed over it, so a crash never leaves
//! half a file.

use std::collections::{BTreeMap, HashMap};
use std::io::{ErrorKind, Write as _};
use std::path::{Path, PathBuf};

use im_core::model::{ConversationId, Seq, UserId};
use serde::{Deserialize, Serialize};

use crate::error::CliError;

/// A logged-in session and what `sync` has already shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct State {
    /// The server logged in to, as given to `--server`.
    pub(crate) server: String,
    /// Who.
    pub(crate) username: String,
    /// Their id (direct conversation ids are made of user ids).
    pub(crate) user_id: UserId,
    /// The device the one-shot commands resume as.
    pub(crate) device: String,
    /// Its token.
    pub(crate) token: String,
    /// The device `listen` resumes as. A second device, because resuming a device
    /// closes that device's other session: `listen` would otherwise be kicked by every
    /// command run beside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) listen_device: Option<String>,
    /// Its token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) listen_token: Option<String>,
    /// Per conversation, the last seq `sync` printed.
    #[serde(default)]
    pub(crate) seen: BTreeMap<ConversationId, Seq>,
}

impl State {
    /// The cursors in the form [`im_core::client::Client::sync`] takes.
    pub(crate) fn seen_map(&self) -> HashMap<ConversationId, Seq> {
        self.seen.iter().map(|(c, s)| (*c, *s)).collect()
    }
}

/// Where the state file is: `--state`, `IM_CLI_STATE`, or `~/.im-chat-cli.json`.
pub(crate) fn default_path() -> PathBuf {
    let home = std::env::var_os("HOME")
        .or_else(|| std::env::var_os("USERPROFILE"))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".im-chat-cli.json")
}

/// The saved state, or `None` when nobody is logged in (no file).
pub(crate) fn load(path: &Path) -> Result<Option<State>, CliError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(CliError::new(
                "io",
                format!("reading {}: {e}", path.display()),
            ));
        }
    };
    serde_json::from_str(&text).map(Some).map_err(|e| {
        CliError::invalid(format!(
            "{} is not a chat-cli state file ({e}); delete it and log in again",
            path.display()
        ))
    })
}

/// Writes the state whole, owner-only.
pub(crate) fn save(path: &Path, state: &State) -> Result<(), CliError> {
    let io = |e: std::io::Error| CliError::new("io", format!("writing {}: {e}", path.display()));
    let mut text = serde_json::to_string_pretty(state)
        .map_err(|e| CliError::new("internal", e.to_string()))?;
    text.push('\n');
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&tmp).and_then(|mut file| {
        file.write_all(text.as_bytes())?;
        file.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    Ok(())
}

/// Forgets the session (on logout). A missing file is already forgotten.
pub(crate) fn remove(path: &Path) -> Result<(), CliError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CliError::new(
            "io",
            format!("removing {}: {e}", path.display()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> State {
        State {
            server: "tcp://127.0.0.1:7100".to_owned(),
            username: "alice".to_owned(),
            user_id: UserId(1),
            device: "chat-cli".to_owned(),
            token: "t".to_owned(),
            listen_device: Some("chat-cli-listen".to_owned()),
            listen_token: Some("u".to_owned()),
            seen: [(ConversationId::direct(UserId(2), UserId(1)), Seq(7))].into(),
        }
    }

    #[test]
    fn state_round_trips_and_is_owner_only() {
        let dir = std::env::temp_dir().join(format!("chat-cli-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        assert_eq!(load(&path).unwrap(), None);
        save(&path, &sample()).unwrap();
        assert_eq!(load(&path).unwrap(), Some(sample()));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(r#""d:1:2": 7"#), "{text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        remove(&path).unwrap();
        remove(&path).unwrap();
        assert_eq!(load(&path).unwrap(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_corrupt_state_file_is_invalid() {
        let path = std::env::temp_dir().join(format!("chat-cli-bad-{}", std::process::id()));
        std::fs::write(&path, "not json").unwrap();
        let err = load(&path).unwrap_err();
        assert_eq!(err.code, "invalid");
        let _ = std::fs::remove_file(&path);
    }
}
