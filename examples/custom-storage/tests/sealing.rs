//! What sealing promises, checked against a real SQLite database: the database holds no
//! plaintext, a changed or moved body is refused, keys rotate, server records stay
//! readable.

use custom_storage::{KeyError, Keyring, SealedStorage};
use im_core::model::{Body, ConversationId, DeviceId, Role, Seq, SystemEvent, Timestamp, UserId};
use im_core::storage::{
    Amendment, GroupStore, MessageRange, MessageStore, NewGroup, NewMessage, StorageError,
};
use im_store::SqlStorage;
use sea_orm::{ConnectionTrait, Statement};

const SECRET: &str = "meet me at noon by the old mill";

fn chat() -> ConversationId {
    ConversationId::direct(UserId(1), UserId(2))
}

fn text(client_id: &str, text: &str) -> NewMessage {
    NewMessage {
        sender: UserId(1),
        sender_device: DeviceId::new("laptop").unwrap(),
        client_id: client_id.to_owned(),
        body: Body::Text {
            text: text.to_owned(),
        },
        sent_at: Timestamp::now(),
        reply_to: None,
        forwarded: None,
        mentions: Vec::new(),
    }
}

fn all() -> MessageRange {
    MessageRange {
        after: Seq::ZERO,
        before: None,
        limit: 100,
        newest: false,
        viewer: None,
    }
}

async fn sealed(keys: Keyring) -> SealedStorage<SqlStorage> {
    SealedStorage::new(SqlStorage::connect("sqlite::memory:").await.unwrap(), keys)
}

/// The `body` column of every stored message, ascending by seq.
async fn raw_bodies(s: &SealedStorage<SqlStorage>) -> Vec<String> {
    let db = s.inner().connection();
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT body FROM im_messages ORDER BY conversation, seq",
        ))
        .await
        .unwrap();
    rows.iter()
        .map(|row| row.try_get::<String>("", "body").unwrap())
        .collect()
}

async fn execute(s: &SealedStorage<SqlStorage>, sql: &str) {
    let db = s.inner().connection();
    db.execute_unprepared(sql).await.unwrap();
}

fn is_unreadable(e: &StorageError) -> bool {
    matches!(e, StorageError::Backend(why) if why.contains("cannot be opened"))
}

#[tokio::test]
async fn the_database_holds_ciphertext_and_readers_get_the_text() {
    let s = sealed(Keyring::new(1, [1; 32])).await;
    let appended = s.append(chat(), text("c1", SECRET)).await.unwrap();
    assert_eq!(appended.message.body, text("", SECRET).body);

    let raw = raw_bodies(&s).await;
    assert_eq!(raw.len(), 1);
    assert!(
        !raw[0].contains("noon"),
        "plaintext in the database: {}",
        raw[0]
    );
    assert!(
        raw[0].contains("im_sealed"),
        "not in the sealed format: {}",
        raw[0]
    );

    let read = s.messages(chat(), all()).await.unwrap();
    assert_eq!(read[0].body, text("", SECRET).body);
    let listed = s.conversations(UserId(2)).await.unwrap();
    assert_eq!(listed[0].last_message.as_ref().unwrap().body, read[0].body);

    // The same text twice seals to different bytes (a fresh nonce each time).
    s.append(chat(), text("c2", SECRET)).await.unwrap();
    let raw = raw_bodies(&s).await;
    assert_ne!(raw[0], raw[1]);
}

#[tokio::test]
async fn a_retry_returns_the_first_message_opened() {
    let s = sealed(Keyring::new(1, [1; 32])).await;
    let first = s.append(chat(), text("c1", SECRET)).await.unwrap();
    let retry = s.append(chat(), text("c1", SECRET)).await.unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.message, first.message);
    assert_eq!(raw_bodies(&s).await.len(), 1);
}

#[tokio::test]
async fn a_changed_body_is_refused_not_shown() {
    let s = sealed(Keyring::new(1, [1; 32])).await;
    s.append(chat(), text("c1", SECRET)).await.unwrap();
    let raw = raw_bodies(&s).await.remove(0);
    // Flip one character of the ciphertext, keeping it valid base64url.
    let at = raw.find("\"im_sealed\":\"").unwrap() + 30;
    let mut tampered = raw.into_bytes();
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    execute(&s, &format!("UPDATE im_messages SET body = '{tampered}'")).await;

    let e = s.messages(chat(), all()).await.unwrap_err();
    assert!(is_unreadable(&e), "{e}");
}

#[tokio::test]
async fn a_body_moved_to_another_row_is_refused() {
    let s = sealed(Keyring::new(1, [1; 32])).await;
    s.append(chat(), text("c1", SECRET)).await.unwrap();
    s.append(chat(), text("c2", "see you")).await.unwrap();
    let other = ConversationId::direct(UserId(1), UserId(3));
    s.append(other, text("c3", "hello carol")).await.unwrap();

    // Copy seq 1's sealed body over seq 2 of the same chat, and over carol's message.
    execute(
        &s,
        "UPDATE im_messages SET body = (SELECT body FROM im_messages WHERE seq = 1 AND client_id = 'c1') \
         WHERE client_id IN ('c2', 'c3')",
    )
    .await;

    let e = s.messages(chat(), all()).await.unwrap_err();
    assert!(is_unreadable(&e), "{e}");
    let e = s.messages(other, all()).await.unwrap_err();
    assert!(is_unreadable(&e), "{e}");
}

#[tokio::test]
async fn a_wrong_key_cannot_read_and_a_rotated_one_can() {
    let old = [1; 32];
    let new = [2; 32];
    let s = sealed(Keyring::new(1, old)).await;
    s.append(chat(), text("c1", SECRET)).await.unwrap();
    // More handles on the same database, each with its own keyring.
    let db = s.inner();

    // Same key id, different key: authentication fails.
    let wrong = SealedStorage::new(db.clone(), Keyring::new(1, new));
    let e = wrong.messages(chat(), all()).await.unwrap_err();
    assert!(is_unreadable(&e), "{e}");

    // Rotated: seals under key 2, still opens key 1's.
    let rotated = SealedStorage::new(db.clone(), Keyring::new(2, new).with_retired(1, old));
    rotated
        .append(chat(), text("c2", "after rotation"))
        .await
        .unwrap();
    let read = rotated.messages(chat(), all()).await.unwrap();
    assert_eq!(read.len(), 2);
    assert_eq!(read[1].body, text("", "after rotation").body);

    // Key 1 retired for good: its messages are reported as such, not shown.
    let dropped = SealedStorage::new(db.clone(), Keyring::new(2, new));
    let e = dropped.messages(chat(), all()).await.unwrap_err();
    assert!(e.to_string().contains("key 1"), "{e}");
}

#[tokio::test]
async fn edits_are_sealed_and_server_records_stay_readable() {
    let s = sealed(Keyring::new(1, [1; 32])).await;
    s.append(chat(), text("c1", SECRET)).await.unwrap();
    let mut event = text("e1", "");
    event.body = Body::System {
        event: SystemEvent::MessageEdited {
            seq: Seq(1),
            body: Box::new(text("", "meet me at one").body),
        },
    };
    let edited_body = text("", "meet me at one").body;
    let recorded = s
        .amend(
            chat(),
            Amendment {
                target: Seq(1),
                body: edited_body.clone(),
                event: event.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(recorded.message.body, event.body);
    let raw = raw_bodies(&s).await;
    assert!(raw.iter().all(|b| !b.contains("meet")), "{raw:?}");
    let read = s.messages(chat(), all()).await.unwrap();
    assert_eq!(read[0].body, edited_body);
    assert!(read[0].edited_at.is_some());
    assert_eq!(read[1].body, event.body);

    // A recall notice is the server's own record: stored readable.
    let mut recall = text("r1", "");
    let notice = Body::System {
        event: SystemEvent::MessageRecalled {
            seq: Seq(1),
            by: UserId(1),
        },
    };
    recall.body = notice.clone();
    s.amend(
        chat(),
        Amendment {
            target: Seq(1),
            body: notice.clone(),
            event: recall,
        },
    )
    .await
    .unwrap();
    let raw = raw_bodies(&s).await;
    assert!(raw[0].contains("message_recalled"), "{}", raw[0]);
    assert_eq!(s.messages(chat(), all()).await.unwrap()[0].body, notice);
}

#[tokio::test]
async fn amending_a_missing_message_is_not_found_and_stores_nothing() {
    let s = sealed(Keyring::new(1, [1; 32])).await;
    s.append(chat(), text("c1", SECRET)).await.unwrap();
    let e = s
        .amend(
            chat(),
            Amendment {
                target: Seq(9),
                body: text("", "x").body,
                event: text("e1", "x"),
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(e, StorageError::NotFound(_)), "{e}");
    assert_eq!(raw_bodies(&s).await.len(), 1);
}

#[tokio::test]
async fn a_group_s_first_record_must_be_a_system_event() {
    let s = sealed(Keyring::new(1, [1; 32])).await;
    let new_group = || NewGroup {
        name: "mill".into(),
        owner: UserId(1),
        open: false,
        created_at: Timestamp::now(),
    };
    let members = vec![(UserId(1), Role::Owner), (UserId(2), Role::Member)];
    // A user's text as the first record could not be bound to the group (no id yet).
    let e = s
        .create_group(new_group(), members.clone(), text("", SECRET))
        .await
        .unwrap_err();
    assert!(matches!(e, StorageError::Unsupported(_)), "{e}");

    let mut record = text("", "");
    record.body = Body::System {
        event: SystemEvent::GroupCreated {
            by: UserId(1),
            name: "mill".into(),
            members: vec![UserId(1), UserId(2)],
        },
    };
    let (group, first) = s
        .create_group(new_group(), members, record.clone())
        .await
        .unwrap();
    assert_eq!(first.body, record.body);
    let chat = ConversationId::Group(group.id);
    s.append(chat, text("g1", SECRET)).await.unwrap();
    let raw = raw_bodies(&s).await;
    assert!(raw.iter().any(|b| b.contains("group_created")), "{raw:?}");
    assert!(raw.iter().all(|b| !b.contains("noon")), "{raw:?}");
    let read = s.messages(chat, all()).await.unwrap();
    assert_eq!(read[1].body, text("", SECRET).body);
}

#[test]
fn keys_are_64_hex_digits() {
    let hex = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
    let key = Keyring::parse_hex_key(hex).unwrap();
    assert_eq!(key[0], 0x00);
    assert_eq!(key[15], 0xff);
    assert_eq!(key[31], 0xff);
    assert_eq!(Keyring::parse_hex_key(&hex[2..]), Err(KeyError));
    assert_eq!(
        Keyring::parse_hex_key(&hex.replace('0', "g")),
        Err(KeyError)
    );
    assert_eq!(Keyring::parse_hex_key(&"é".repeat(32)), Err(KeyError));
    // Keys never reach a log.
    let debug = format!("{:?}", Keyring::new(3, key));
    assert!(
        !debug.contains("17") && debug.contains("current: 3"),
        "{debug}"
    );
}
