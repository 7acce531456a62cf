//! Storage, presence and broker adapters for [`im_core`]: SeaORM storage (SQLite as the
//! embedded default, PostgreSQL, MySQL/MariaDB) and Redis presence and broker for running
//! many nodes.
//!
//! **Not implemented yet.** This crate is a placeholder in the workspace layout: the SQL
//! storage and the Redis adapters are the next pieces of work, and until they land the
//! engine runs on [`im_core::memory`]. Each adapter will pass the same conformance suites
//! as the memory adapters (`im_core::storage_conformance!` and friends).
