//! Errors at the Lambda boundary, each either worth retrying or not.
//!
//! The `errorType` Lambda reports starts with `ChaoSlingr.Retryable.` or
//! `ChaoSlingr.NotRetryable.`, so alarms, dead-letter queues and people can tell a
//! throttled API (the next invocation will do) from a bad event or bad configuration
//! (nothing will change until someone fixes it).

use chaoslingr_domain::engine::EngineError;
use chaoslingr_domain::ports::{CallError, FailureKind};
use chaoslingr_domain::ConfigError;

/// A failed invocation.
#[derive(Debug, thiserror::Error)]
pub enum FunctionError {
    /// The event is malformed; nothing was changed.
    #[error("bad event: {0}; nothing was changed")]
    BadEvent(String),
    /// The function's configuration is wrong; nothing was changed.
    #[error("bad configuration: {0}")]
    BadConfig(String),
    /// An AWS call failed in a way a later invocation may not hit.
    #[error("{0}")]
    Transient(String),
    /// An AWS call failed in a way that needs a person (permissions, a missing resource).
    #[error("{0}")]
    Permanent(String),
    /// A revert failed: a port may still be open. The next judge tick retries it.
    #[error("revert failed, a port may still be open: {0}")]
    RevertFailed(String),
}

impl FunctionError {
    /// Whether invoking again, unchanged, may succeed.
    pub fn retryable(&self) -> bool {
        matches!(self, FunctionError::Transient(_) | FunctionError::RevertFailed(_))
    }

    /// The `errorType` reported to Lambda.
    pub fn error_type(&self) -> &'static str {
        match self {
            FunctionError::BadEvent(_) => "ChaoSlingr.NotRetryable.BadEvent",
            FunctionError::BadConfig(_) => "ChaoSlingr.NotRetryable.BadConfig",
            FunctionError::Permanent(_) => "ChaoSlingr.NotRetryable.AwsError",
            FunctionError::Transient(_) => "ChaoSlingr.Retryable.AwsError",
            FunctionError::RevertFailed(_) => "ChaoSlingr.Retryable.RevertFailed",
        }
    }

    /// Classifies a failed AWS call.
    pub fn from_call(e: &CallError) -> Self {
        match e.kind {
            FailureKind::Transient => FunctionError::Transient(e.to_string()),
            FailureKind::Denied => FunctionError::Permanent(format!("{e}; check the function's IAM role")),
            FailureKind::NotFound | FailureKind::Other => FunctionError::Permanent(e.to_string()),
        }
    }
}

impl From<ConfigError> for FunctionError {
    fn from(e: ConfigError) -> Self {
        FunctionError::BadConfig(e.to_string())
    }
}

impl From<EngineError> for FunctionError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::BadInput(m) => FunctionError::BadEvent(m),
            EngineError::Call(c) => FunctionError::from_call(&c),
        }
    }
}

impl From<FunctionError> for lambda_runtime::Diagnostic {
    fn from(e: FunctionError) -> Self {
        lambda_runtime::Diagnostic { error_type: e.error_type().to_string(), error_message: e.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_errors_are_classified_by_kind() {
        let call = |kind| CallError::new("DescribeSecurityGroups", kind, Some("X".into()), "boom");
        assert!(FunctionError::from_call(&call(FailureKind::Transient)).retryable());
        let denied = FunctionError::from_call(&call(FailureKind::Denied));
        assert!(!denied.retryable());
        assert!(denied.to_string().contains("IAM role"));
        assert_eq!(denied.error_type(), "ChaoSlingr.NotRetryable.AwsError");
        assert!(!FunctionError::from_call(&call(FailureKind::NotFound)).retryable());
    }

    #[test]
    fn bad_input_is_not_retryable_and_says_nothing_changed() {
        let e: FunctionError = EngineError::BadInput("sg-1 is not opted in".into()).into();
        assert!(!e.retryable());
        assert_eq!(e.error_type(), "ChaoSlingr.NotRetryable.BadEvent");
        let d: lambda_runtime::Diagnostic = e.into();
        assert!(d.error_message.contains("nothing was changed"));
        assert!(FunctionError::RevertFailed("sgr-1".into()).retryable());
    }
}
