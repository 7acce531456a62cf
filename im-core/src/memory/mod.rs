//! Complete in-memory adapters: [`MemoryStorage`], [`MemoryPresence`], [`LocalBroker`].
//!
//! They pass the same conformance suites as the database adapters, so they are the
//! reference implementations, the fastest way to run tests, and enough for a
//! single-process app that keeps nothing across restarts.

mod broker;
mod presence;
mod storage;

pub use broker::LocalBroker;
pub use presence::MemoryPresence;
pub use storage::MemoryStorage;
