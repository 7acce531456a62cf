//! The gate: who may register and log in, beyond a valid username and password.
//!
//! An app implements [`Gate`] to ask for a proof: a captcha token, a code sent by e-mail
//! or SMS, an invite, a second factor at login. The client sends the proof in
//! `register.proof` or `login.proof` (and, for a code, the address it went to in
//! `register.contact`); a gate that wants one refuses with `proof_required` and a message
//! saying which, and the client asks the user and sends the request again. `send_code`
//! asks the gate to send a code to an address. Every method has a default that lets
//! everyone in and sends no codes, so an engine without a gate is open as before.
//!
//! ```
//! use async_trait::async_trait;
//! use im_core::gate::{Gate, Registration};
//! use im_core::protocol::{ErrorBody, ErrorCode};
//!
//! /// Registration needs the word of the day: a stand-in for a captcha check.
//! #[derive(Debug)]
//! struct WordOfTheDay;
//!
//! #[async_trait]
//! impl Gate for WordOfTheDay {
//!     async fn admit(&self, registration: &Registration<'_>) -> Result<(), ErrorBody> {
//!         match registration.proof {
//!             Some("swordfish") => Ok(()),
//!             _ => Err(ErrorBody::new(ErrorCode::ProofRequired, "say the word of the day")),
//!         }
//!     }
//! }
//! # let _ = im_core::Engine::builder().gate(std::sync::Arc::new(WordOfTheDay));
//! ```
//!
//! Each refusal reaches the client as it is (`code`, `message`, `retry_after_ms`): use
//! `proof_required` when a proof would help, `forbidden` when nothing would (registration
//! closed), `rate_limited` and `unavailable` as their names say.

use std::fmt;

use async_trait::async_trait;

use crate::model::{DeviceId, Platform, User};
use crate::protocol::{ErrorBody, ErrorCode};
use crate::transport::PeerInfo;

/// A registration as the gate sees it: already checked for a valid username, password
/// and display name, not yet stored.
#[derive(Debug, Clone, Copy)]
pub struct Registration<'a> {
    /// The username asked for, normalised (lower case).
    pub username: &'a str,
    /// The display name asked for.
    pub display_name: &'a str,
    /// What the client sent as proof, if anything.
    pub proof: Option<&'a str>,
    /// The e-mail address or phone number a code was sent to, if the client says.
    pub contact: Option<&'a str>,
    /// Where the request came from.
    pub peer: &'a PeerInfo,
}

/// A login as the gate sees it: the password was right.
#[derive(Debug, Clone, Copy)]
pub struct LoginAttempt<'a> {
    /// Whose password it was.
    pub user: &'a User,
    /// The device logging in.
    pub device: &'a DeviceId,
    /// Its platform.
    pub platform: Platform,
    /// What the client sent as proof (a second factor), if anything.
    pub proof: Option<&'a str>,
    /// Where the request came from.
    pub peer: &'a PeerInfo,
}

/// Decides registrations and logins beyond the password; see the [module](self).
///
/// A gate that uses a proof up (a one-time code, an invite) must do so atomically in
/// whatever it keeps them in, so that two registrations at once cannot both use one.
/// [`admit`](Gate::admit) uses it; if the registration then fails (the username was
/// taken meanwhile), [`abandoned`](Gate::abandoned) is called to give it back.
#[async_trait]
pub trait Gate: Send + Sync + fmt::Debug {
    /// Accepts or refuses a registration. Runs after the request is validated and
    /// rate-limited, before the password is hashed. Default: accepts.
    async fn admit(&self, registration: &Registration<'_>) -> Result<(), ErrorBody> {
        let _ = registration;
        Ok(())
    }

    /// The registration [`admit`](Gate::admit) accepted was stored as `user`.
    async fn registered(&self, user: &User, registration: &Registration<'_>) {
        let _ = (user, registration);
    }

    /// The registration [`admit`](Gate::admit) accepted was not stored (the username
    /// was taken, the database failed): give back what admitting it used up.
    async fn abandoned(&self, registration: &Registration<'_>) {
        let _ = registration;
    }

    /// Sends a code to `contact` (an e-mail address, a phone number) for a later
    /// `register` (or `login`) to show as its proof. Runs after the per-address rate
    /// limit. Default: refused, this server sends no codes.
    async fn send_code(&self, contact: &str, peer: &PeerInfo) -> Result<(), ErrorBody> {
        let _ = (contact, peer);
        Err(ErrorBody::new(
            ErrorCode::Forbidden,
            "this server sends no verification codes",
        ))
    }

    /// Accepts or refuses a login whose password was right: ask for a second factor
    /// here. Default: accepts.
    async fn check_login(&self, login: &LoginAttempt<'_>) -> Result<(), ErrorBody> {
        let _ = login;
        Ok(())
    }
}

/// The gate of an engine built without one: everyone who has a valid username and
/// password may register and log in; no codes are sent.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenGate;

impl Gate for OpenGate {}
