//! `SqlStorage` passes the storage conformance suite on SQLite (in memory and on a file),
//! PostgreSQL and MariaDB/MySQL. The server databases are named by `IM_TEST_POSTGRES_URL`
//! and `IM_TEST_MYSQL_URL` (`.ci/run` sets both); each test gets a database of its own.

mod common;

mod sqlite_memory {
    im_core::storage_conformance!(async { super::common::sqlite_memory().await });
}

mod sqlite_file {
    im_core::storage_conformance!(async { super::common::sqlite_file().await });
}

mod postgres {
    use super::common::{Server, server_database};
    im_core::storage_conformance!(optional async {
        match Server::Postgres.url() {
            Some(url) => Some(server_database(Server::Postgres, &url).await),
            None => None,
        }
    });
}

mod mysql {
    use super::common::{Server, server_database};
    im_core::storage_conformance!(optional async {
        match Server::MySql.url() {
            Some(url) => Some(server_database(Server::MySql, &url).await),
            None => None,
        }
    });
}
