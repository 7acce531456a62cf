//! Who may register (`--registration`): anyone, those who show a code sent to their
//! e-mail address or phone (`code`), those who show an invite code an operator made
//! (`invite`: `POST /admin/v1/invites`; im-core's `InviteGate`, invites kept in the
//! database, so any node admits them), or nobody (`closed`).
//!
//! In `code` mode a client first asks for a code (`send_code`), which goes out through
//! the code sender: a program of the operator's (`--code-command`, given the address and
//! the code in `IM_CODE_CONTACT` and `IM_CODE`, never on its command line), or, without
//! one, the server's own log (for development). The registration then shows the code as
//! its proof. A code is six digits, lasts ten minutes, allows five wrong guesses and
//! admits one registration; a new one for the same address waits 30 seconds.
//!
//! The codes live in this process: in cluster mode `send_code` and the `register` that
//! follows must reach the same node (a WebSocket does; plain HTTP calls behind a load
//! balancer may not).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use im_core::gate::{Gate, Registration};
use im_core::invites::InviteGate;
use im_core::protocol::{ErrorBody, ErrorCode, ProofKind};
use im_core::storage::Storage;
use im_core::transport::PeerInfo;
use serde::{Deserialize, Serialize};

/// How long a code lasts.
const CODE_TTL: Duration = Duration::from_secs(10 * 60);
/// Wrong guesses before a code is thrown away.
const MAX_TRIES: u32 = 5;
/// How soon the same address may be sent another code.
const RESEND_AFTER: Duration = Duration::from_secs(30);
/// Codes kept at once; past this, new ones are refused until old ones expire.
const MAX_PENDING: usize = 100_000;
/// How long the code command may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(15);

/// Who may register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RegistrationMode {
    /// Anyone.
    #[default]
    Open,
    /// Whoever shows a code sent to their e-mail address or phone.
    Code,
    /// Whoever shows an invite code.
    Invite,
    /// Nobody.
    Closed,
}

/// A code sent and not yet used.
#[derive(Debug, Clone)]
struct Pending {
    code: String,
    sent: Instant,
    tries: u32,
}

/// The chat server's gate; see the [module](self).
#[derive(Debug)]
pub(crate) struct CodeGate {
    mode: RegistrationMode,
    /// The operator's program that delivers codes; `None`: the log.
    command: Option<PathBuf>,
    pending: Mutex<HashMap<String, Pending>>,
    /// In `invite` mode, the invites in the server's storage.
    invites: Option<InviteGate>,
}

impl CodeGate {
    /// The gate for `mode`; `storage` is the engine's, where invites are kept.
    pub(crate) fn new(
        mode: RegistrationMode,
        command: Option<PathBuf>,
        storage: Arc<dyn Storage>,
    ) -> CodeGate {
        if mode == RegistrationMode::Code && command.is_none() {
            tracing::warn!(
                "--registration code without --code-command: verification codes are written \
                 to this log, for development only"
            );
        }
        CodeGate {
            mode,
            command,
            pending: Mutex::new(HashMap::new()),
            invites: (mode == RegistrationMode::Invite).then(|| InviteGate::new(storage)),
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Delivers a code through the operator's program, or the log.
    async fn deliver(&self, contact: &str, code: &str) -> Result<(), ErrorBody> {
        let Some(command) = &self.command else {
            tracing::warn!(%contact, %code, "verification code (log sender, development only)");
            return Ok(());
        };
        let run = tokio::process::Command::new(command)
            .env("IM_CODE_CONTACT", contact)
            .env("IM_CODE", code)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .output();
        let failed = |why: String| {
            tracing::warn!(command = %command.display(), contact, error = why, "sending a verification code failed");
            Err(ErrorBody::new(
                ErrorCode::Unavailable,
                "the code could not be sent; try again later",
            ))
        };
        match tokio::time::timeout(COMMAND_TIMEOUT, run).await {
            Ok(Ok(output)) if output.status.success() => Ok(()),
            Ok(Ok(output)) => failed(format!(
                "{}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )),
            Ok(Err(e)) => failed(e.to_string()),
            Err(_) => failed(format!("no answer within {COMMAND_TIMEOUT:?}")),
        }
    }
}

#[async_trait]
impl Gate for CodeGate {
    async fn admit(&self, registration: &Registration<'_>) -> Result<(), ErrorBody> {
        match self.mode {
            RegistrationMode::Open => return Ok(()),
            RegistrationMode::Closed => {
                return Err(ErrorBody::new(
                    ErrorCode::Forbidden,
                    "registration is closed on this server",
                ));
            }
            RegistrationMode::Invite => {
                return match &self.invites {
                    Some(invites) => invites.admit(registration).await,
                    None => Err(ErrorBody::new(ErrorCode::Internal, "internal error")),
                };
            }
            RegistrationMode::Code => {}
        }
        let asked = || {
            Err(ErrorBody::proof_required(
                ProofKind::Code,
                "enter your e-mail address or phone number, ask for a code, and enter the code",
            ))
        };
        let (Some(contact), Some(proof)) = (registration.contact, registration.proof) else {
            return asked();
        };
        let Some(contact) = normalise(contact) else {
            return asked();
        };
        // Looked up, checked and used up under one lock: of two registrations showing
        // one code at once, one gets it.
        let mut pending = self.pending();
        let Some(entry) = pending.get_mut(&contact) else {
            return Err(ErrorBody::proof_required(
                ProofKind::Code,
                "no code was sent to that address, or it was used or has expired: ask for a new one",
            ));
        };
        if entry.sent.elapsed() > CODE_TTL {
            pending.remove(&contact);
            return Err(ErrorBody::proof_required(
                ProofKind::Code,
                "the code has expired: ask for a new one",
            ));
        }
        // In time that does not depend on where the first difference is.
        let right = subtle::ConstantTimeEq::ct_eq(entry.code.as_bytes(), proof.trim().as_bytes());
        if !bool::from(right) {
            entry.tries += 1;
            if entry.tries >= MAX_TRIES {
                pending.remove(&contact);
                return Err(ErrorBody::proof_required(
                    ProofKind::Code,
                    "the code is wrong, too many times: ask for a new one",
                ));
            }
            return Err(ErrorBody::proof_required(
                ProofKind::Code,
                "the code is wrong",
            ));
        }
        pending.remove(&contact);
        Ok(())
    }

    async fn abandoned(&self, registration: &Registration<'_>) {
        // The code was right but the account was not made (the username was taken):
        // the same code may try another username.
        if let Some(invites) = &self.invites {
            invites.abandoned(registration).await;
            return;
        }
        if self.mode != RegistrationMode::Code {
            return;
        }
        if let (Some(contact), Some(proof)) =
            (registration.contact.and_then(normalise), registration.proof)
        {
            self.pending().entry(contact).or_insert(Pending {
                code: proof.trim().to_owned(),
                sent: Instant::now(),
                tries: 0,
            });
        }
    }

    async fn send_code(&self, contact: &str, _peer: &PeerInfo) -> Result<(), ErrorBody> {
        match self.mode {
            RegistrationMode::Code => {}
            RegistrationMode::Open => {
                return Err(ErrorBody::new(
                    ErrorCode::Forbidden,
                    "registration needs no code on this server",
                ));
            }
            RegistrationMode::Closed => {
                return Err(ErrorBody::new(
                    ErrorCode::Forbidden,
                    "registration is closed on this server",
                ));
            }
            RegistrationMode::Invite => {
                return Err(ErrorBody::new(
                    ErrorCode::Forbidden,
                    "registration on this server is by invite: ask for an invite code",
                ));
            }
        }
        let Some(contact) = normalise(contact) else {
            return Err(ErrorBody::new(
                ErrorCode::Invalid,
                "contact: an e-mail address (name@example.com) or a phone number (+44 20 7946 0000)",
            ));
        };
        let code = new_code()?;
        {
            let mut pending = self.pending();
            if let Some(last) = pending.get(&contact) {
                let since = last.sent.elapsed();
                if since < RESEND_AFTER {
                    let mut refused = ErrorBody::new(
                        ErrorCode::RateLimited,
                        "a code was just sent to that address; wait before asking again",
                    );
                    refused.retry_after_ms = Some(
                        (RESEND_AFTER - since)
                            .as_millis()
                            .try_into()
                            .unwrap_or(u64::MAX),
                    );
                    return Err(refused);
                }
            }
            if pending.len() >= MAX_PENDING {
                pending.retain(|_, p| p.sent.elapsed() <= CODE_TTL);
                if pending.len() >= MAX_PENDING {
                    return Err(ErrorBody::new(
                        ErrorCode::Unavailable,
                        "too many codes are waiting; try again later",
                    ));
                }
            }
            pending.insert(
                contact.clone(),
                Pending {
                    code: code.clone(),
                    sent: Instant::now(),
                    tries: 0,
                },
            );
        }
        let delivered = self.deliver(&contact, &code).await;
        if delivered.is_err() {
            // Not sent: nothing to guess, and the address may ask again at once.
            let mut pending = self.pending();
            if pending.get(&contact).is_some_and(|p| p.code == code) {
                pending.remove(&contact);
            }
        }
        delivered
    }
}

/// An e-mail address (lower-cased) or a phone number (digits, with its leading `+`), or
/// `None` for anything else.
fn normalise(contact: &str) -> Option<String> {
    let contact = contact.trim();
    if let Some((local, domain)) = contact.rsplit_once('@') {
        let fine = !local.is_empty()
            && local.len() <= 64
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && contact
                .chars()
                .all(|c| c.is_alphanumeric() || "@.!#$%&'*+/=?^_`{|}~-".contains(c));
        return fine.then(|| contact.to_lowercase());
    }
    let plus = contact.starts_with('+');
    let digits: String = contact.chars().filter(char::is_ascii_digit).collect();
    let fine = contact
        .chars()
        .enumerate()
        .all(|(i, c)| c.is_ascii_digit() || " -().".contains(c) || (c == '+' && i == 0))
        && (7..=15).contains(&digits.len());
    fine.then(|| if plus { format!("+{digits}") } else { digits })
}

/// Six random digits.
fn new_code() -> Result<String, ErrorBody> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| {
        tracing::error!(error = %e, "no randomness for a verification code");
        ErrorBody::new(ErrorCode::Internal, "internal error")
    })?;
    // 64 random bits modulo a million: the bias is below one in ten billion.
    Ok(format!("{:06}", u64::from_le_bytes(bytes) % 1_000_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_numbers_are_normalised() {
        assert_eq!(
            normalise(" Ann@Example.COM ").as_deref(),
            Some("ann@example.com")
        );
        assert_eq!(
            normalise("+44 20 7946-0000").as_deref(),
            Some("+442079460000")
        );
        assert_eq!(normalise("(020) 7946 0000").as_deref(), Some("02079460000"));
        for bad in [
            "ann",
            "ann@",
            "@example.com",
            "ann@example",
            "12345",
            "+1 2 3",
            "a b@c.d",
            "44+20794600",
        ] {
            assert_eq!(normalise(bad), None, "{bad:?}");
        }
    }

    const PEER: PeerInfo = PeerInfo {
        addr: None,
        transport: "test",
    };

    fn registration<'a>(username: &'a str, code: &'a str) -> Registration<'a> {
        Registration {
            username,
            display_name: username,
            proof: Some(code),
            contact: Some("Pat@Example.com"),
            peer: &PEER,
        }
    }

    /// The code the log sender stored for the address.
    fn code_for(gate: &CodeGate, contact: &str) -> String {
        gate.pending()[contact].code.clone()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_requests_for_a_code_at_once_send_one() {
        let gate = std::sync::Arc::new(CodeGate::new(RegistrationMode::Code, None, memory()));
        let (a, b) = tokio::join!(
            tokio::spawn({
                let gate = gate.clone();
                async move { gate.send_code("pat@example.com", &PEER).await }
            }),
            tokio::spawn({
                let gate = gate.clone();
                async move { gate.send_code("PAT@example.com", &PEER).await }
            }),
        );
        let results = [a.unwrap(), b.unwrap()];
        let sent = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(sent, 1, "{results:?}");
        let refused = results.iter().find_map(|r| r.as_ref().err()).unwrap();
        assert_eq!(refused.code, ErrorCode::RateLimited);
        assert!(refused.retry_after_ms.is_some_and(|ms| ms > 0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_code_admits_one_of_two_registrations_at_once() {
        let gate = std::sync::Arc::new(CodeGate::new(RegistrationMode::Code, None, memory()));
        gate.send_code("pat@example.com", &PEER).await.unwrap();
        let code = code_for(&gate, "pat@example.com");
        let (a, b) = tokio::join!(
            tokio::spawn({
                let (gate, code) = (gate.clone(), code.clone());
                async move { gate.admit(&registration("pat", &code)).await }
            }),
            tokio::spawn({
                let (gate, code) = (gate.clone(), code.clone());
                async move { gate.admit(&registration("pat2", &code)).await }
            }),
        );
        let results = [a.unwrap(), b.unwrap()];
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            1,
            "{results:?}"
        );
        // Given back (the account was not made): the same code admits once more.
        gate.abandoned(&registration("pat", &code)).await;
        gate.admit(&registration("pat3", &code)).await.unwrap();
        let again = gate.admit(&registration("pat4", &code)).await.unwrap_err();
        assert_eq!(again.code, ErrorCode::ProofRequired);
    }

    #[tokio::test]
    async fn five_wrong_guesses_throw_the_code_away() {
        let gate = CodeGate::new(RegistrationMode::Code, None, memory());
        gate.send_code("pat@example.com", &PEER).await.unwrap();
        let code = code_for(&gate, "pat@example.com");
        let wrong = if code == "000000" { "000001" } else { "000000" };
        for _ in 0..MAX_TRIES {
            let refused = gate.admit(&registration("pat", wrong)).await.unwrap_err();
            assert_eq!(refused.code, ErrorCode::ProofRequired);
        }
        let gone = gate.admit(&registration("pat", &code)).await.unwrap_err();
        assert!(gone.message.contains("ask for a new one"), "{gone:?}");
    }

    #[test]
    fn codes_are_six_digits() {
        for _ in 0..100 {
            let code = new_code().unwrap();
            assert_eq!(code.len(), 6);
            assert!(code.bytes().all(|b| b.is_ascii_digit()));
        }
    }

    fn memory() -> Arc<dyn Storage> {
        Arc::new(im_core::memory::MemoryStorage::new())
    }
}
