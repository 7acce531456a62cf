//! The [`BlobStore`] conformance suite (feature `testkit`), one `pub async fn` per
//! clause of the trait's contract, run by [`blob_conformance!`](crate::blob_conformance):
//! [`LocalDirBlobs`](crate::LocalDirBlobs) runs it, and so can a store of yours (S3, a
//! database), in a test file of its crate:
//!
//! ```
//! use std::sync::Arc;
//! im_transport_ws::blob_conformance!(async {
//!     let dir = std::env::temp_dir().join(format!("blobs-doc-{}", std::process::id()));
//!     let dir = dir.join(im_transport_ws::testkit::unique());
//!     Arc::new(im_transport_ws::LocalDirBlobs::open(dir).await.unwrap())
//! });
//! # fn main() {}
//! ```
//!
//! The expression is evaluated once per test and must give an `Arc` of a store that is
//! empty.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::TryStreamExt as _;
use im_core::model::{ConversationId, Timestamp, UserId};

use crate::blob::{BlobAge, BlobError, BlobMeta, BlobStore};

/// Expands to one test per clause of the [`BlobStore`](crate::BlobStore) contract.
#[macro_export]
macro_rules! blob_conformance {
    ($make:expr) => {
        $crate::blob_conformance!(@tests ($make), [
            stored_files_read_back_whole,
            unknown_and_malformed_ids_are_absent,
            deleted_files_are_gone,
            usage_counts_each_owners_bytes,
            a_quota_holds_even_for_uploads_at_once,
            old_files_are_listed_oldest_first,
        ]);
    };
    (@tests ($make:expr), [$($name:ident),* $(,)?]) => {
        $(
            #[test]
            fn $name() {
                ::im_core::testkit::run(async {
                    let store: ::std::sync::Arc<dyn $crate::BlobStore> = ($make).await;
                    $crate::testkit::$name(store).await;
                });
            }
        )*
    };
}

/// A name no other test of this process uses, for a fresh directory or bucket prefix.
pub fn unique() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut raw = [0u8; 8];
    getrandom::fill(&mut raw).expect("randomness");
    format!("{n}-{}", u64::from_le_bytes(raw))
}

fn meta(owner: u64, size: usize, created_at: i64) -> BlobMeta {
    BlobMeta {
        id: crate::blob::new_id().expect("randomness"),
        mime: "application/octet-stream".into(),
        size: size as u64,
        owner: UserId(owner),
        conversation: ConversationId::direct(UserId(owner), UserId(owner + 1_000)),
        created_at: Timestamp(created_at),
        width: None,
        height: None,
    }
}

fn bytes(size: usize, fill: u8) -> Bytes {
    Bytes::from(vec![fill; size])
}

async fn read_all(store: &dyn BlobStore, id: &str) -> Option<Bytes> {
    let body = store.read(id).await.expect("read")?;
    let chunks: Vec<Bytes> = body.try_collect().await.expect("a whole body");
    let mut all = BytesMut::new();
    for chunk in chunks {
        all.extend_from_slice(&chunk);
    }
    Some(all.freeze())
}

/// `put` stores the bytes and the metadata; `meta` and `read` give them back, a large
/// file whole.
pub async fn stored_files_read_back_whole(store: Arc<dyn BlobStore>) {
    let small = meta(1, 5, 1_000);
    store.put(&small, bytes(5, b'a')).await.expect("put");
    assert_eq!(
        store.meta(&small.id).await.expect("meta"),
        Some(small.clone())
    );
    assert_eq!(read_all(&*store, &small.id).await, Some(bytes(5, b'a')));
    let large = meta(1, 3 << 20, 1_001);
    store.put(&large, bytes(3 << 20, b'b')).await.expect("put");
    assert_eq!(
        read_all(&*store, &large.id).await,
        Some(bytes(3 << 20, b'b'))
    );
    assert_eq!(read_all(&*store, &small.id).await, Some(bytes(5, b'a')));
}

/// An id never stored, or one that is not an id at all (it comes from a URL), is
/// absent: `None`, never an error, never a file outside the store.
pub async fn unknown_and_malformed_ids_are_absent(store: Arc<dyn BlobStore>) {
    let stored = meta(1, 3, 1_000);
    store.put(&stored, bytes(3, b'x')).await.expect("put");
    for id in [
        "0123456789abcdef0123456789abcdef",
        "../../etc/passwd",
        "",
        "ABCDEF0123456789ABCDEF0123456789",
        &format!("{}.json", stored.id),
        &format!("./{}", stored.id),
    ] {
        assert_eq!(store.meta(id).await.expect("meta"), None, "{id:?}");
        assert!(store.read(id).await.expect("read").is_none(), "{id:?}");
        assert!(!store.delete(id).await.expect("delete"), "{id:?}");
    }
}

/// `delete` removes a file (`true`), after which it is absent; a second delete finds
/// nothing (`false`), and other files stay.
pub async fn deleted_files_are_gone(store: Arc<dyn BlobStore>) {
    let (gone, kept) = (meta(1, 4, 1_000), meta(1, 4, 1_001));
    store.put(&gone, bytes(4, b'g')).await.expect("put");
    store.put(&kept, bytes(4, b'k')).await.expect("put");
    assert!(store.delete(&gone.id).await.expect("delete"));
    assert_eq!(store.meta(&gone.id).await.expect("meta"), None);
    assert!(store.read(&gone.id).await.expect("read").is_none());
    assert!(!store.delete(&gone.id).await.expect("delete again"));
    assert_eq!(read_all(&*store, &kept.id).await, Some(bytes(4, b'k')));
}

/// `usage` is the bytes an owner's stored files take, less deleted ones.
pub async fn usage_counts_each_owners_bytes(store: Arc<dyn BlobStore>) {
    assert_eq!(store.usage(UserId(1)).await.expect("usage"), 0);
    let a = meta(1, 100, 1_000);
    let b = meta(1, 50, 1_001);
    let other = meta(2, 70, 1_002);
    for m in [&a, &b, &other] {
        store
            .put(m, bytes(m.size as usize, b'u'))
            .await
            .expect("put");
    }
    assert_eq!(store.usage(UserId(1)).await.expect("usage"), 150);
    assert_eq!(store.usage(UserId(2)).await.expect("usage"), 70);
    store.delete(&a.id).await.expect("delete");
    assert_eq!(store.usage(UserId(1)).await.expect("usage"), 50);
}

/// `put_within` refuses a file that would take its owner past the quota
/// (`QuotaExceeded`, nothing stored); of two uploads at once that fit one at a time but
/// not together, one is stored.
pub async fn a_quota_holds_even_for_uploads_at_once(store: Arc<dyn BlobStore>) {
    let first = meta(1, 60, 1_000);
    store
        .put_within(&first, bytes(60, b'q'), 100)
        .await
        .expect("under the quota");
    let over = meta(1, 41, 1_001);
    let refused = store.put_within(&over, bytes(41, b'q'), 100).await;
    assert!(
        matches!(
            refused,
            Err(BlobError::QuotaExceeded {
                used: 60,
                limit: 100
            })
        ),
        "{refused:?}"
    );
    assert_eq!(store.meta(&over.id).await.expect("meta"), None);
    assert_eq!(store.usage(UserId(1)).await.expect("usage"), 60);
    store
        .put_within(&meta(2, 100, 1_002), bytes(100, b'q'), 100)
        .await
        .expect("another owner has a quota of their own");

    for round in 0..10 {
        let owner = 10 + round;
        let (one, two) = (meta(owner, 70, 2_000), meta(owner, 70, 2_001));
        let (s1, s2) = (store.clone(), store.clone());
        let (r1, r2) = tokio::join!(
            tokio::spawn(async move { s1.put_within(&one, bytes(70, b'r'), 100).await }),
            tokio::spawn(async move { s2.put_within(&two, bytes(70, b'r'), 100).await }),
        );
        let stored = [r1.expect("task"), r2.expect("task")]
            .iter()
            .filter(|r| r.is_ok())
            .count();
        assert_eq!(stored, 1, "round {round}");
        assert_eq!(store.usage(UserId(owner)).await.expect("usage"), 70);
    }
}

/// `older_than` lists the files created before a time, oldest first (then by id), at
/// most `limit` of them, after the file given: pages that list each file once, also
/// while files are deleted between pages.
pub async fn old_files_are_listed_oldest_first(store: Arc<dyn BlobStore>) {
    // Two files share a creation time: the id orders them.
    let files: Vec<BlobMeta> = [3_000, 1_000, 2_000, 5_000, 2_000]
        .iter()
        .map(|&at| meta(1, 1, at))
        .collect();
    for m in &files {
        store.put(m, bytes(1, b'o')).await.expect("put");
    }
    let age = |m: &BlobMeta| BlobAge {
        created_at: m.created_at,
        id: m.id.clone(),
    };
    let mut expected: Vec<BlobAge> = files
        .iter()
        .filter(|m| m.created_at < Timestamp(4_000))
        .map(age)
        .collect();
    expected.sort();
    let old = store
        .older_than(Timestamp(4_000), None, 10)
        .await
        .expect("older_than");
    assert_eq!(old, expected);
    // Page by page, two at a time; the first page's files are deleted before the next.
    let first = store
        .older_than(Timestamp(4_000), None, 2)
        .await
        .expect("older_than");
    assert_eq!(first, expected[..2]);
    for gone in &first {
        assert!(store.delete(&gone.id).await.expect("delete"));
    }
    let second = store
        .older_than(Timestamp(4_000), first.last(), 2)
        .await
        .expect("older_than");
    assert_eq!(second, expected[2..4]);
    let last = store
        .older_than(Timestamp(4_000), second.last(), 2)
        .await
        .expect("older_than");
    assert!(last.is_empty(), "{last:?}");
    assert!(
        store
            .older_than(Timestamp(1_000), None, 10)
            .await
            .expect("older_than")
            .is_empty()
    );
}
