//! `SealedStorage` is a complete storage adapter: the conformance suite every adapter must
//! pass, run over the memory store and over SQLite. This is the whole test file a custom
//! adapter needs (with im-core's `testkit` feature among its dev-dependencies).

use std::sync::Arc;

use custom_storage::{Keyring, SealedStorage};

fn keys() -> Keyring {
    Keyring::new(1, [42; 32])
}

mod over_memory {
    use super::*;
    use im_core::memory::MemoryStorage;

    im_core::storage_conformance!(async {
        Arc::new(SealedStorage::new(MemoryStorage::new(), keys()))
    });
}

mod over_sqlite {
    use super::*;
    use im_store::SqlStorage;

    im_core::storage_conformance!(async {
        let sql = SqlStorage::connect("sqlite::memory:").await.unwrap();
        Arc::new(SealedStorage::new(sql, keys()))
    });
}
