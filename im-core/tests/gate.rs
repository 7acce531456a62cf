//! The gate: registrations that need a proof (a one-time code sent by `send_code`),
//! a proof used once even by two registrations at once and given back when its
//! registration fails, and a second factor asked only after a right password.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use im_core::auth::HashCost;
use im_core::client::{Client, ClientError, Events};
use im_core::gate::{Gate, LoginAttempt, Registration};
use im_core::model::{DeviceId, Platform, User};
use im_core::protocol::{DeviceInfo, ErrorBody, ErrorCode, Request, request};
use im_core::transport::{PeerInfo, duplex};
use im_core::{Engine, EngineConfig};

const PW: &str = "correct horse battery";

/// Codes by contact, each good for one registration; logins of `second` need "42".
#[derive(Debug, Default)]
struct Codes {
    pending: Mutex<HashMap<String, String>>,
    sent: Mutex<Vec<String>>,
    registered: Mutex<Vec<String>>,
}

#[async_trait]
impl Gate for Codes {
    async fn admit(&self, registration: &Registration<'_>) -> Result<(), ErrorBody> {
        let (Some(contact), Some(proof)) = (registration.contact, registration.proof) else {
            return Err(ErrorBody::new(
                ErrorCode::ProofRequired,
                "enter the code we sent you",
            ));
        };
        // Checked and used up under one lock: two registrations cannot both use it.
        let mut pending = self.pending.lock().unwrap();
        if pending.get(contact).map(String::as_str) != Some(proof) {
            return Err(ErrorBody::new(
                ErrorCode::ProofRequired,
                "the code is wrong or used",
            ));
        }
        pending.remove(contact);
        Ok(())
    }

    async fn registered(&self, user: &User, _: &Registration<'_>) {
        self.registered.lock().unwrap().push(user.username.clone());
    }

    async fn abandoned(&self, registration: &Registration<'_>) {
        if let (Some(contact), Some(proof)) = (registration.contact, registration.proof) {
            self.pending
                .lock()
                .unwrap()
                .insert(contact.to_owned(), proof.to_owned());
        }
    }

    async fn send_code(&self, contact: &str, _: &PeerInfo) -> Result<(), ErrorBody> {
        if !contact.contains('@') {
            return Err(ErrorBody::new(
                ErrorCode::Invalid,
                "an e-mail address, please",
            ));
        }
        let code = format!("code-{}", self.sent.lock().unwrap().len());
        self.pending
            .lock()
            .unwrap()
            .insert(contact.to_owned(), code.clone());
        self.sent.lock().unwrap().push(code);
        Ok(())
    }

    async fn check_login(&self, login: &LoginAttempt<'_>) -> Result<(), ErrorBody> {
        if login.user.username == "second" && login.proof != Some("42") {
            return Err(ErrorBody::new(
                ErrorCode::ProofRequired,
                "enter the code from your authenticator",
            ));
        }
        Ok(())
    }
}

async fn engine(gate: Arc<dyn Gate>) -> Engine {
    Engine::builder()
        .gate(gate)
        .config(EngineConfig::default().with_hash_cost(HashCost::CHEAPEST))
        .start()
        .await
        .unwrap()
}

async fn connect(engine: &Engine) -> (Client, Events) {
    let (server, client) = duplex(256);
    let engine = engine.clone();
    tokio::spawn(async move { engine.serve_connection(server).await });
    Client::connect(client).await.unwrap()
}

fn register(username: &str, contact: Option<&str>, proof: Option<&str>) -> request::Register {
    request::Register {
        username: username.to_owned(),
        password: PW.to_owned(),
        display_name: username.to_owned(),
        avatar: None,
        proof: proof.map(str::to_owned),
        contact: contact.map(str::to_owned),
    }
}

fn code_of(error: ClientError) -> ErrorCode {
    match error {
        ClientError::Server(body) => body.code,
        other => panic!("not a server error: {other:?}"),
    }
}

#[tokio::test]
async fn a_registration_needs_the_code_that_was_sent() {
    let codes = Arc::new(Codes::default());
    let engine = engine(codes.clone()).await;
    let (client, _events) = connect(&engine).await;

    let without = client.call(register("ann", None, None)).await.unwrap_err();
    assert_eq!(code_of(without), ErrorCode::ProofRequired);
    let refused = client.send_code("no address").await.unwrap_err();
    assert_eq!(code_of(refused), ErrorCode::Invalid);
    client.send_code("ann@example.com").await.unwrap();
    let code = codes.sent.lock().unwrap()[0].clone();
    let wrong = client
        .call(register("ann", Some("ann@example.com"), Some("code-9")))
        .await
        .unwrap_err();
    assert_eq!(code_of(wrong), ErrorCode::ProofRequired);
    let user = client
        .call(register("ann", Some("ann@example.com"), Some(&code)))
        .await
        .unwrap()
        .user;
    assert_eq!(user.username, "ann");
    assert_eq!(*codes.registered.lock().unwrap(), ["ann"]);
    // Used up.
    let again = client
        .call(register("ann2", Some("ann@example.com"), Some(&code)))
        .await
        .unwrap_err();
    assert_eq!(code_of(again), ErrorCode::ProofRequired);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_code_admits_one_of_two_registrations_at_once() {
    let codes = Arc::new(Codes::default());
    let engine = engine(codes.clone()).await;
    let (first, _e1) = connect(&engine).await;
    let (second, _e2) = connect(&engine).await;
    first.send_code("pair@example.com").await.unwrap();
    let code = codes.sent.lock().unwrap()[0].clone();
    for round in 0..20 {
        let (a, b) = tokio::join!(
            first.call(register(
                &format!("left{round}"),
                Some("pair@example.com"),
                Some(&code)
            )),
            second.call(register(
                &format!("right{round}"),
                Some("pair@example.com"),
                Some(&code)
            )),
        );
        assert_eq!(
            usize::from(a.is_ok()) + usize::from(b.is_ok()),
            1,
            "round {round}: {a:?} {b:?}"
        );
        // Back for the next round.
        codes
            .pending
            .lock()
            .unwrap()
            .insert("pair@example.com".into(), code.clone());
    }
}

#[tokio::test]
async fn a_registration_that_fails_gives_its_code_back() {
    let codes = Arc::new(Codes::default());
    let engine = engine(codes.clone()).await;
    let (client, _events) = connect(&engine).await;
    client.send_code("a@example.com").await.unwrap();
    let first = codes.sent.lock().unwrap()[0].clone();
    client
        .call(register("taken", Some("a@example.com"), Some(&first)))
        .await
        .unwrap();
    client.send_code("b@example.com").await.unwrap();
    let second = codes.sent.lock().unwrap()[1].clone();
    let clash = client
        .call(register("taken", Some("b@example.com"), Some(&second)))
        .await
        .unwrap_err();
    assert_eq!(code_of(clash), ErrorCode::Conflict);
    // The code was not used up by a registration that did not happen.
    client
        .call(register("other", Some("b@example.com"), Some(&second)))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_second_factor_is_asked_only_after_the_right_password() {
    let codes = Arc::new(Codes::default());
    let engine = engine(codes.clone()).await;
    let (client, _events) = connect(&engine).await;
    client.send_code("s@example.com").await.unwrap();
    let code = codes.sent.lock().unwrap()[0].clone();
    client
        .call(register("second", Some("s@example.com"), Some(&code)))
        .await
        .unwrap();
    let login = |password: &str, proof: Option<&str>| request::Login {
        username: "second".into(),
        password: password.into(),
        device: DeviceInfo {
            id: DeviceId::new("phone").unwrap(),
            name: String::new(),
            platform: Platform::Mobile,
        },
        proof: proof.map(str::to_owned),
    };
    let wrong_password = client
        .call(login("wrong password!", None))
        .await
        .unwrap_err();
    assert_eq!(code_of(wrong_password), ErrorCode::Unauthorized);
    let wrong_password_right_code = client.call(login("wrong password!", Some("42"))).await;
    assert_eq!(
        code_of(wrong_password_right_code.unwrap_err()),
        ErrorCode::Unauthorized
    );
    let no_code = client.call(login(PW, None)).await.unwrap_err();
    assert_eq!(code_of(no_code), ErrorCode::ProofRequired);
    let session = client.call(login(PW, Some("42"))).await.unwrap();
    assert_eq!(session.user.username, "second");

    // The same over the connectionless path (HTTP's).
    let peer = PeerInfo {
        addr: None,
        transport: "http",
    };
    let refused = engine
        .execute(&peer, None, Request::Login(login(PW, None)))
        .await
        .unwrap_err();
    assert_eq!(refused.code, ErrorCode::ProofRequired);
    assert!(
        engine
            .execute(&peer, None, Request::Login(login(PW, Some("42"))))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn without_a_gate_everyone_registers_and_no_codes_are_sent() {
    let engine = Engine::builder()
        .config(EngineConfig::default().with_hash_cost(HashCost::CHEAPEST))
        .start()
        .await
        .unwrap();
    let (client, _events) = connect(&engine).await;
    client.register("free", PW, "Free").await.unwrap();
    let refused = client.send_code("free@example.com").await.unwrap_err();
    assert_eq!(code_of(refused), ErrorCode::Forbidden);
    // Bad values are refused before any gate sees them.
    let long = "x".repeat(1025);
    let invalid = client
        .call(register("free2", Some("a@b.c"), Some(&long)))
        .await
        .unwrap_err();
    assert_eq!(code_of(invalid), ErrorCode::Invalid);
    let invalid = client.send_code("a\nb@example.com").await.unwrap_err();
    assert_eq!(code_of(invalid), ErrorCode::Invalid);
}

/// Invite codes: a registration without one, or with a wrong one, is asked for one; of
/// six registrations at once with a code of two uses, two are admitted; a use taken by a
/// registration that then fails (a taken username) is given back; a withdrawn or
/// expired code admits nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invite_admits_as_many_registrations_as_its_uses() {
    use im_core::invites::InviteGate;
    use im_core::storage::Storage;
    use std::time::Duration;
    let storage: Arc<dyn Storage> = Arc::new(im_core::memory::MemoryStorage::new());
    let engine = Engine::builder()
        .storage(storage.clone())
        .gate(Arc::new(InviteGate::new(storage.clone())))
        .config(
            EngineConfig::default()
                .with_hash_cost(HashCost::CHEAPEST)
                .with_rate_limits(im_core::engine::RateLimits::unlimited()),
        )
        .start()
        .await
        .unwrap();
    let week = Duration::from_secs(7 * 24 * 3600);
    let (code, invite) = engine.create_invite(2, week, "for the team").await.unwrap();
    assert_eq!(invite.note, "for the team");
    let (client, _events) = connect(&engine).await;
    let asked = client.call(register("ann", None, None)).await.unwrap_err();
    assert_eq!(code_of(asked), ErrorCode::ProofRequired);
    let wrong = client
        .call(register("ann", None, Some("aaaa-bbbb-cccc-dddd")))
        .await
        .unwrap_err();
    assert_eq!(code_of(wrong), ErrorCode::ProofRequired);

    let tasks: Vec<_> = (0..6)
        .map(|n| {
            let engine = engine.clone();
            let code = code.clone();
            tokio::spawn(async move {
                let (client, _events) = connect(&engine).await;
                // Typed as people type it: upper case, spaces for dashes.
                let typed = code.to_uppercase().replace('-', " ");
                client
                    .call(register(&format!("user{n}"), None, Some(&typed)))
                    .await
            })
        })
        .collect();
    let mut admitted = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(reply) => admitted.push(reply.user.username),
            Err(e) => assert_eq!(code_of(e), ErrorCode::ProofRequired),
        }
    }
    assert_eq!(admitted.len(), 2, "{admitted:?}");
    let listed = engine.invites().await.unwrap();
    assert_eq!((listed.len(), listed[0].uses_left), (1, 0));

    // A registration that fails after the gate gives its use back.
    let (code, invite) = engine.create_invite(1, week, "").await.unwrap();
    let taken = client
        .call(register(&admitted[0], None, Some(&code)))
        .await
        .unwrap_err();
    assert_eq!(code_of(taken), ErrorCode::Conflict, "the username is taken");
    client
        .call(register("bea", None, Some(&code)))
        .await
        .expect("the use was given back");

    // Withdrawn: nobody.
    let (code, invite2) = engine.create_invite(5, week, "").await.unwrap();
    assert!(engine.revoke_invite(&invite2.id).await.unwrap());
    assert!(!engine.revoke_invite(&invite2.id).await.unwrap());
    let withdrawn = client
        .call(register("cid", None, Some(&code)))
        .await
        .unwrap_err();
    assert_eq!(code_of(withdrawn), ErrorCode::ProofRequired);
    assert_ne!(invite.id, invite2.id);

    // Out-of-range invites are refused.
    for (uses, valid_for) in [(0, week), (10_001, week), (1, Duration::from_secs(1))] {
        let refused = engine.create_invite(uses, valid_for, "").await.unwrap_err();
        assert_eq!(refused.code, ErrorCode::Invalid);
    }
}
