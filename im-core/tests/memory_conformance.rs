//! The memory adapters are the reference implementations: they pass every suite.

use std::sync::Arc;

use im_core::memory::{LocalBroker, MemoryPresence, MemoryStorage};

mod storage {
    use super::*;
    im_core::storage_conformance!(async { Arc::new(MemoryStorage::new()) });
}

mod presence {
    use super::*;
    im_core::presence_conformance!(async { Arc::new(MemoryPresence::new()) });
}

mod broker {
    use super::*;
    im_core::broker_conformance!(async { Arc::new(LocalBroker::new()) });
}
