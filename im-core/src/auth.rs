//! Password hashes and device tokens.
//!
//! Passwords are hashed with Argon2id into PHC strings (`$argon2id$v=19$m=…`), which carry
//! their own salt and parameters, so stronger parameters can be adopted later without
//! breaking old hashes. Hashing is CPU-heavy by design: the engine runs it on the
//! blocking pool, never on a runtime worker.
//!
//! A device token is `<user id>.<secret>.<device id>`, where the secret is 256 random
//! bits in unpadded base64url. Storage keeps only the SHA-256 of the secret; a presented
//! token is found by its user and device (the "selector") and its secret's hash compared
//! in constant time (the "verifier"), so neither a database dump nor response timing
//! reveals a usable token.

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::model::{DeviceId, UserId};

/// Argon2 cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HashCost {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for HashCost {
    /// OWASP's recommended minimum for Argon2id: 19 MiB, 2 passes, 1 lane.
    fn default() -> Self {
        HashCost {
            memory_kib: Params::DEFAULT_M_COST,
            iterations: Params::DEFAULT_T_COST,
            parallelism: Params::DEFAULT_P_COST,
        }
    }
}

impl HashCost {
    /// The cheapest cost Argon2 accepts (1 MiB, 1 pass, 1 lane): for tests and
    /// benchmarks that register many users and do not measure hashing. Never for
    /// passwords that matter.
    pub const CHEAPEST: HashCost = HashCost {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
    };
}

/// An authentication failure inside the server (never a wrong password, which is `false`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The hash parameters are out of range.
    #[error("invalid password hash parameters: {0}")]
    Params(String),
    /// Hashing failed (no randomness for the salt).
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// Hashes passwords with Argon2id at a fixed cost.
#[derive(Debug, Clone)]
pub struct PasswordHasher {
    argon2: Argon2<'static>,
}

impl PasswordHasher {
    /// A hasher with the given cost.
    pub fn new(cost: HashCost) -> Result<Self, AuthError> {
        let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
            .map_err(|e| AuthError::Params(e.to_string()))?;
        Ok(PasswordHasher {
            argon2: Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
        })
    }

    /// The PHC string of `password` with a fresh random salt.
    pub fn hash(&self, password: &str) -> Result<String, AuthError> {
        self.argon2
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| AuthError::Hash(e.to_string()))
    }

    /// Whether `password` matches the PHC string `stored`. A malformed `stored` never
    /// matches. The parameters come from `stored`, not from this hasher.
    pub fn verify(&self, password: &str, stored: &str) -> bool {
        self.argon2
            .verify_password(password.as_bytes(), stored)
            .is_ok()
    }
}

/// A freshly issued device token: give `token` to the client, store `hash`.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The whole token, shown to the client once.
    pub token: String,
    /// SHA-256 of the secret, the only part that is stored.
    pub hash: Vec<u8>,
}

/// A token as presented by a client, split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentedToken {
    /// Whose token it claims to be.
    pub user: UserId,
    /// Which device it claims to be.
    pub device: DeviceId,
    /// SHA-256 of the presented secret.
    pub secret_hash: Vec<u8>,
}

/// Length of a token secret in bytes (256 bits).
const SECRET_BYTES: usize = 32;

/// Issues a new random token for a user's device.
pub fn issue_token(user: UserId, device: &DeviceId) -> Result<IssuedToken, AuthError> {
    let mut secret = [0u8; SECRET_BYTES];
    getrandom::fill(&mut secret).map_err(|e| AuthError::Hash(e.to_string()))?;
    let encoded = URL_SAFE_NO_PAD.encode(secret);
    Ok(IssuedToken {
        token: format!("{user}.{encoded}.{device}"),
        hash: Sha256::digest(secret).to_vec(),
    })
}

/// Splits a presented token. `None` when it is not of our shape.
pub fn parse_token(token: &str) -> Option<PresentedToken> {
    // The device id may itself contain dots; the user id and secret cannot.
    let mut parts = token.splitn(3, '.');
    let user = parts.next()?.parse::<u64>().ok()?;
    let secret = URL_SAFE_NO_PAD.decode(parts.next()?).ok()?;
    if secret.len() != SECRET_BYTES {
        return None;
    }
    let device = DeviceId::new(parts.next()?).ok()?;
    Some(PresentedToken {
        user: UserId(user),
        device,
        secret_hash: Sha256::digest(&secret).to_vec(),
    })
}

/// Compares a stored token hash with a presented one in constant time.
pub fn token_hash_matches(stored: &[u8], presented: &[u8]) -> bool {
    stored.len() == presented.len() && bool::from(stored.ct_eq(presented))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> PasswordHasher {
        PasswordHasher::new(HashCost {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap()
    }

    #[test]
    fn password_round_trip() {
        let h = cheap();
        let stored = h.hash("correct horse").unwrap();
        assert!(
            stored.starts_with("$argon2id$v=19$m=64,t=1,p=1$"),
            "{stored}"
        );
        assert!(h.verify("correct horse", &stored));
        assert!(!h.verify("wrong horse", &stored));
        assert!(!h.verify("correct horse", "not a phc string"));
        // Salts differ, so equal passwords give different hashes.
        assert_ne!(stored, h.hash("correct horse").unwrap());
    }

    #[test]
    fn stored_parameters_win_over_the_hasher_s() {
        let stored = cheap().hash("pw-123456").unwrap();
        let default = PasswordHasher::new(HashCost::default()).unwrap();
        assert!(default.verify("pw-123456", &stored));
    }

    #[test]
    fn token_round_trip_and_tampering() {
        let device = DeviceId::new("phone.1").unwrap();
        let issued = issue_token(UserId(42), &device).unwrap();
        let parsed = parse_token(&issued.token).unwrap();
        assert_eq!(parsed.user, UserId(42));
        assert_eq!(parsed.device, device);
        assert!(token_hash_matches(&issued.hash, &parsed.secret_hash));

        let other = issue_token(UserId(42), &device).unwrap();
        assert!(!token_hash_matches(&issued.hash, &other.hash));
        for bad in [
            "",
            "42",
            "x.y.z",
            "42..phone",
            "42.c2hvcnQ.phone",
            "42.AAAA.bad id",
        ] {
            assert!(parse_token(bad).is_none(), "{bad} parsed");
        }
        assert!(!token_hash_matches(&issued.hash, &[]));
    }
}
