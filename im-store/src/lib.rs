//! Storage, presence and broker adapters for [`im_core`].
//!
//! - [`SqlStorage`] (features `sqlite` (default), `postgres`, `mysql`): every part of
//!   [`im_core::storage::Storage`] in a SQL database through SeaORM. SQLite on a file is
//!   the embedded default; PostgreSQL or MySQL/MariaDB serve many nodes. It passes the
//!   same conformance suite as the memory storage (`im_core::storage_conformance!`).
//! - [`RedisPresence`] (feature `redis`): which devices are online on which node, shared
//!   by every node through Redis or Redis Cluster ([`fred`]); it passes the presence
//!   conformance suite (`im_core::presence_conformance!`).
//! - [`RedisBroker`] (feature `redis`): envelopes between nodes over Redis pub/sub (sharded
//!   channels on a Redis Cluster); it passes `im_core::broker_conformance!`.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use im_core::Engine;
//! use im_store::SqlStorage;
//!
//! let storage = SqlStorage::connect("sqlite::memory:").await.unwrap();
//! let engine = Engine::builder().storage(Arc::new(storage)).start().await.unwrap();
//! # engine.shutdown().await;
//! # });
//! ```

#[cfg(feature = "sql")]
pub mod sql;

#[cfg(feature = "sql")]
pub use sql::{DEFAULT_SQL_POOL, SqlStorage};

#[cfg(feature = "redis")]
pub mod redis;

#[cfg(feature = "redis")]
pub use redis::{RedisBroker, RedisPresence};
