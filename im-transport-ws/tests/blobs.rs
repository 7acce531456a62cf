//! `LocalDirBlobs` against the `BlobStore` conformance suite, each test in a directory
//! of its own; and a store reopened on its directory counts what is already there.

use std::sync::Arc;

use bytes::Bytes;
use im_core::model::{ConversationId, Timestamp, UserId};
use im_transport_ws::{BlobAge, BlobMeta, BlobStore, LocalDirBlobs};

im_transport_ws::blob_conformance!(async {
    // Under target/, where `cargo clean` takes it.
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("blob-conformance")
        .join(im_transport_ws::testkit::unique());
    Arc::new(LocalDirBlobs::open(dir).await.unwrap())
});

#[tokio::test]
async fn a_reopened_store_counts_the_files_already_there() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalDirBlobs::open(dir.path()).await.unwrap();
    let meta = BlobMeta {
        id: "0123456789abcdef0123456789abcdef".into(),
        mime: "image/png".into(),
        size: 11,
        owner: UserId(3),
        conversation: ConversationId::direct(UserId(3), UserId(4)),
        created_at: Timestamp(1_000),
        width: Some(1),
        height: Some(1),
    };
    store
        .put(&meta, Bytes::from_static(b"hello world"))
        .await
        .unwrap();
    // A stray file and a torn write's leftovers are not counted.
    std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
    std::fs::write(dir.path().join(".abc.json.tmp"), "{").unwrap();
    drop(store);
    let again = LocalDirBlobs::open(dir.path()).await.unwrap();
    assert_eq!(again.usage(UserId(3)).await.unwrap(), 11);
    assert_eq!(
        again.older_than(Timestamp(2_000), None, 10).await.unwrap(),
        [BlobAge {
            created_at: meta.created_at,
            id: meta.id.clone()
        }]
    );
    assert!(again.delete(&meta.id).await.unwrap());
    assert_eq!(again.usage(UserId(3)).await.unwrap(), 0);
}
