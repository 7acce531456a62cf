use std::borrow::Cow;

use crate::model::InvalidValue;
use crate::protocol::{ErrorBody, ErrorCode, ProofKind};
use crate::storage::{ACCOUNT_DISABLED, StorageError};

/// Why a request failed, as the engine decides it: a stable code and a message safe to
/// show the client. Backend details are logged here and never put in the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) code: ErrorCode,
    pub(crate) message: Cow<'static, str>,
    pub(crate) retry_after: Option<std::time::Duration>,
    /// For `proof_required`: the proof a gate asked for.
    pub(crate) proof: Option<ProofKind>,
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        ApiError {
            code,
            message: message.into(),
            retry_after: None,
            proof: None,
        }
    }

    pub(crate) fn rate_limited(m: &'static str, wait: std::time::Duration) -> Self {
        ApiError {
            retry_after: Some(wait),
            ..Self::new(ErrorCode::RateLimited, m)
        }
    }

    pub(crate) fn unauthorized(m: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::Unauthorized, m)
    }
    pub(crate) fn forbidden(m: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::Forbidden, m)
    }
    pub(crate) fn not_found(m: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::NotFound, m)
    }
    pub(crate) fn conflict(m: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::Conflict, m)
    }
    pub(crate) fn invalid(m: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::Invalid, m)
    }
    pub(crate) fn too_large(m: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::TooLarge, m)
    }
    pub(crate) fn internal() -> Self {
        Self::new(ErrorCode::Internal, "internal error")
    }

    /// A gate's refusal, as it said it.
    pub(crate) fn from_gate(refusal: ErrorBody) -> Self {
        ApiError {
            code: refusal.code,
            message: refusal.message.into(),
            retry_after: refusal.retry_after_ms.map(std::time::Duration::from_millis),
            proof: refusal.proof,
        }
    }

    pub(crate) fn into_body(self) -> ErrorBody {
        ErrorBody {
            retry_after_ms: self
                .retry_after
                // Rounded up, so a client that waits exactly this long passes.
                .map(|d| u64::try_from(d.as_micros().div_ceil(1000)).unwrap_or(u64::MAX)),
            proof: self.proof,
            ..ErrorBody::new(self.code, self.message)
        }
    }
}

impl From<InvalidValue> for ApiError {
    fn from(e: InvalidValue) -> Self {
        ApiError::invalid(e.to_string())
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound(what) => ApiError::not_found(format!("{what} not found")),
            // Others are not told an account is disabled (its owner is, at login, after
            // the right password): to them it is gone.
            StorageError::Conflict(ACCOUNT_DISABLED) => ApiError::not_found("no such user"),
            StorageError::Conflict(what) => ApiError::conflict(what),
            StorageError::Unsupported(what) => {
                ApiError::new(ErrorCode::Invalid, format!("not supported here: {what}"))
            }
            StorageError::Unavailable(detail) => {
                tracing::warn!(%detail, "storage unavailable");
                ApiError::new(
                    ErrorCode::Unavailable,
                    "storage is unavailable, retry later",
                )
            }
            StorageError::Backend(detail) => {
                tracing::error!(%detail, "storage backend error");
                ApiError::internal()
            }
        }
    }
}
