//! Files a start makes, taken away again when the start fails: a server that could not
//! start leaves the directory as it found it (no empty `im-chat.db`, no `im-uploads`).

use std::path::{Path, PathBuf};

use crate::config::Config;

/// What did not exist before the start, and so is the start's to remove.
#[derive(Debug, Default)]
pub(crate) struct Made {
    /// The SQLite file and its companions (`-wal`, `-shm`, `-journal`).
    database: Vec<PathBuf>,
    /// The uploads directory.
    uploads: Option<PathBuf>,
}

impl Made {
    /// Notes which of the files `config` names do not exist yet.
    pub(crate) fn before(config: &Config) -> Made {
        let database = sqlite_path(&config.database)
            .filter(|path| !path.exists())
            .map(|path| {
                ["", "-wal", "-shm", "-journal"]
                    .iter()
                    .map(|suffix| {
                        let mut name = path.as_os_str().to_owned();
                        name.push(suffix);
                        PathBuf::from(name)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let uploads = (!config.uploads.exists()).then(|| config.uploads.clone());
        Made { database, uploads }
    }

    /// Removes what the failed start made. The uploads directory goes only if it is
    /// still empty: a file in it is somebody's.
    pub(crate) fn undo(self) {
        for path in self.database {
            match std::fs::remove_file(&path) {
                Ok(()) => tracing::debug!(path = %path.display(), "removed after a failed start"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(path = %path.display(), error = %e, "could not remove"),
            }
        }
        if let Some(dir) = self.uploads {
            let _ = std::fs::remove_dir(&dir);
        }
    }
}

/// The file of a `sqlite://` URL (`sqlite://im-chat.db?mode=rwc`, `sqlite:///abs/path`),
/// unless it is an in-memory database.
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" || url.contains("mode=memory") {
        return None;
    }
    Some(Path::new(path).to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::sqlite_path;

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(
            sqlite_path("sqlite://im-chat.db?mode=rwc")
                .unwrap()
                .to_str(),
            Some("im-chat.db")
        );
        assert_eq!(
            sqlite_path("sqlite:///var/lib/im/chat.db")
                .unwrap()
                .to_str(),
            Some("/var/lib/im/chat.db")
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("sqlite://x?mode=memory"), None);
        assert_eq!(sqlite_path("postgres://h/db"), None);
    }
}
