//! Mapping SDK errors onto the domain's [`CallError`], keeping the service's error code.

use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use chaoslingr_domain::ports::{CallError, FailureKind};

const DENIED: &[&str] =
    &["UnauthorizedOperation", "AccessDenied", "AccessDeniedException", "Client.UnauthorizedOperation"];
const NOT_FOUND: &[&str] = &[
    "InvalidGroup.NotFound",
    "InvalidPermission.NotFound",
    "InvalidSecurityGroupRuleId.NotFound",
    "InvalidSecurityGroupRuleId.Malformed",
    "InvalidNetworkAclID.NotFound",
    "InvalidNetworkAclEntry.NotFound",
    "ResourceNotFoundException",
    "NoSuchConfigRuleException",
    "NotFound",
];
const TRANSIENT: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "TooManyRequestsException",
    "LimitExceededException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalError",
    "InternalFailure",
    "InternalException",
    "Unavailable",
];

/// Classifies an SDK error for `operation`.
pub fn call_error<E>(operation: &'static str, err: &SdkError<E, HttpResponse>) -> CallError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let code = err.code().map(str::to_string);
    let status = err.raw_response().map(|r| r.status().as_u16());
    let kind = match (&code, err) {
        (_, SdkError::TimeoutError(_) | SdkError::DispatchFailure(_)) => FailureKind::Transient,
        (Some(c), _) if DENIED.contains(&c.as_str()) => FailureKind::Denied,
        (Some(c), _) if NOT_FOUND.contains(&c.as_str()) => FailureKind::NotFound,
        (Some(c), _) if TRANSIENT.contains(&c.as_str()) => FailureKind::Transient,
        _ if status.is_some_and(|s| s == 429 || s >= 500) => FailureKind::Transient,
        _ => FailureKind::Other,
    };
    let message = err
        .message()
        .map(str::to_string)
        .unwrap_or_else(|| aws_smithy_types::error::display::DisplayErrorContext(err).to_string());
    CallError::new(operation, kind, code, message)
}
