//! Fresh databases for tests: SQLite in memory or in a temporary file, and a new database
//! on the PostgreSQL or MySQL server the environment names.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use im_store::SqlStorage;

static NEXT: AtomicU32 = AtomicU32::new(0);

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

pub async fn sqlite_memory() -> Arc<SqlStorage> {
    Arc::new(SqlStorage::connect("sqlite::memory:").await.unwrap())
}

/// A SQLite file under the system's temporary directory, removed by the next run.
pub async fn sqlite_file() -> Arc<SqlStorage> {
    let dir = std::env::temp_dir().join("im-store-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{}.db", unique("t")));
    let url = format!("sqlite://{}?mode=rwc", path.display());
    Arc::new(SqlStorage::connect(&url).await.unwrap())
}

/// Which server a test database lives on.
#[derive(Debug, Clone, Copy)]
pub enum Server {
    Postgres,
    MySql,
}

impl Server {
    fn env(self) -> &'static str {
        match self {
            Server::Postgres => "IM_TEST_POSTGRES_URL",
            Server::MySql => "IM_TEST_MYSQL_URL",
        }
    }

    /// The server's URL, or `None` (with a loud note) when the environment names none.
    pub fn url(self) -> Option<String> {
        match std::env::var(self.env()) {
            Ok(url) if !url.is_empty() => Some(url),
            _ => {
                eprintln!(
                    "SKIPPED: {} is not set; this test needs a real server (.ci/run sets it)",
                    self.env()
                );
                None
            }
        }
    }
}

/// `url` with its database replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |p| p + 3);
    let path_start = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |p| scheme_end + p);
    let mut out = format!("{}/{database}", &base[..path_start]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// A new, empty database on `server`, migrated. Databases left by earlier test runs
/// whose process is gone are dropped first.
pub async fn server_database(server: Server, url: &str) -> Arc<SqlStorage> {
    let url = server_database_url(server, url).await;
    Arc::new(SqlStorage::connect(&url).await.unwrap())
}

/// Creates a new, empty database on `server` and returns its URL.
pub async fn server_database_url(server: Server, url: &str) -> String {
    use sea_orm::{ConnectionTrait, Database};
    let admin = Database::connect(url)
        .await
        .expect("cannot reach the test server");
    drop_stale(server, &admin).await;
    let name = unique("imtest");
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let _ = admin.close().await;
    with_database(url, &name)
}

async fn drop_stale(server: Server, admin: &sea_orm::DatabaseConnection) {
    use sea_orm::{ConnectionTrait, Statement};
    let list = match server {
        Server::Postgres => {
            "SELECT datname AS name FROM pg_database WHERE datname LIKE 'imtest\\_%'"
        }
        Server::MySql => {
            "SELECT schema_name AS name FROM information_schema.schemata WHERE schema_name LIKE 'imtest\\_%'"
        }
    };
    let rows = admin
        .query_all_raw(Statement::from_string(admin.get_database_backend(), list))
        .await
        .unwrap_or_default();
    for row in rows {
        let Ok(name) = row.try_get::<String>("", "name") else {
            continue;
        };
        let pid = name.split('_').nth(1).unwrap_or("");
        if pid == std::process::id().to_string()
            || std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            continue;
        }
        let drop = match server {
            Server::Postgres => format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            Server::MySql => format!("DROP DATABASE IF EXISTS {name}"),
        };
        let _ = admin.execute_unprepared(&drop).await;
    }
}
