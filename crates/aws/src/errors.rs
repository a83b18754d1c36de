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
    if let Some(e) = credentials_failure(operation, err) {
        return e;
    }
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

/// The SDK error of the `AssumeRole` behind a target account's credentials.
type AssumeRoleFailure =
    SdkError<aws_sdk_sts::operation::assume_role::AssumeRoleError, aws_sdk_sts::config::http::HttpResponse>;

/// A call that failed before it was sent because its credentials could not be loaded (a
/// target role that cannot be assumed): one readable line naming STS's answer, classed by
/// that answer (`AccessDenied` is a denial, not worth retrying), instead of the SDK's
/// whole chain of wrappers.
fn credentials_failure<E>(operation: &'static str, err: &SdkError<E, HttpResponse>) -> Option<CallError>
where
    E: std::error::Error + 'static,
{
    if !matches!(err, SdkError::DispatchFailure(_)) {
        return None;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    let mut loading = false;
    while let Some(e) = source {
        if e.downcast_ref::<aws_credential_types::provider::error::CredentialsError>().is_some() {
            loading = true;
        }
        if let Some(sts) = e.downcast_ref::<AssumeRoleFailure>() {
            let code = sts.code().map(str::to_string);
            let kind = match code.as_deref() {
                Some(c) if DENIED.contains(&c) => FailureKind::Denied,
                Some(c) if TRANSIENT.contains(&c) => FailureKind::Transient,
                Some(_) => FailureKind::Other,
                None => FailureKind::Transient,
            };
            let said = match (sts.code(), sts.message()) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                (Some(c), None) => c.to_string(),
                _ => short_chain(sts),
            };
            return Some(CallError::new(operation, kind, code, format!("could not assume the target role: {said}")));
        }
        source = e.source();
    }
    loading.then(|| {
        CallError::new(
            operation,
            FailureKind::Transient,
            None,
            format!("could not load credentials: {}", short_chain(err)),
        )
    })
}

/// The distinct messages of an error and its sources, joined, at most 300 characters.
fn short_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = Some(err);
    while let Some(e) = source {
        let text = e.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = e.source();
    }
    let joined = parts.join(": ");
    match joined.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &joined[..i]),
        None => joined,
    }
}
