//! The crate's one error type, and which of its cases are worth retrying.

use std::time::Duration;

/// Everything that can go wrong between an SNS message and a Slack post.
///
/// No case ever carries the webhook URL: webhooks appear only in their redacted form
/// (`https://hooks.slack.com/***`), because anyone holding the URL can post to the channel.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// A setting (environment variable) has a value this crate cannot use.
    #[error("{variable}: {problem}; accepted forms: {accepted}")]
    BadSetting { variable: &'static str, problem: String, accepted: &'static str },

    /// The SNS message is not one this crate can render (not JSON, unknown schema, wrong shape).
    #[error("not a ChaoSlingr notification: {problem}")]
    UnreadableMessage { problem: String },

    /// A webhook URL that is not acceptable (wrong scheme, not a URL). `location` says
    /// where it came from, so the operator knows what to fix.
    #[error("the Slack webhook URL in {location} is not usable: {problem}")]
    InvalidWebhookUrl { location: String, problem: String },

    /// Reading the secret that holds the webhook URL failed.
    #[error("could not read the Slack webhook URL from {location}: {code}: {message}; {advice}")]
    SecretUnreadable {
        location: String,
        /// The service's error code (`AccessDeniedException`, `ParameterNotFound`, …), or
        /// the kind of failure (`timeout`, `dispatch failure`) when there was no answer.
        code: String,
        message: String,
        advice: String,
        retryable: bool,
    },

    /// The secret was read but holds no webhook URL in a form this crate understands.
    #[error("{location} does not hold a Slack webhook URL: {problem}")]
    SecretInvalid { location: String, problem: String },

    /// The HTTP client could not be built (no root certificates to verify Slack with).
    #[error("cannot set up TLS for the Slack webhook: {message}; install the system CA certificates")]
    Tls { message: String },

    /// No HTTP answer: connection refused, reset, DNS or TLS failure.
    #[error("could not deliver to the Slack webhook {webhook}: {message}; this is usually transient, retry later")]
    Unreachable { webhook: String, message: String },

    /// The webhook did not answer in time.
    #[error("the Slack webhook {webhook} did not answer within {timeout:?}; retry later")]
    Timeout { webhook: String, timeout: Duration },

    /// The webhook answered with a non-2xx status.
    #[error("the Slack webhook {webhook} answered HTTP {status} `{body}`: {advice}")]
    Rejected { webhook: String, status: u16, body: String, advice: &'static str },
}

impl NotifyError {
    /// Whether trying the same notification again later may succeed.
    ///
    /// True for failures of the moment (no connection, timeouts, HTTP 429 and 5xx,
    /// throttled or failing secret reads); false for anything that needs a person to
    /// change something first (permissions, a missing or malformed secret, a revoked
    /// webhook, a message Slack refuses).
    pub fn retryable(&self) -> bool {
        match self {
            NotifyError::SecretUnreadable { retryable, .. } => *retryable,
            NotifyError::Unreachable { .. } | NotifyError::Timeout { .. } => true,
            NotifyError::Rejected { status, .. } => *status == 429 || *status >= 500,
            NotifyError::BadSetting { .. }
            | NotifyError::UnreadableMessage { .. }
            | NotifyError::InvalidWebhookUrl { .. }
            | NotifyError::SecretInvalid { .. }
            | NotifyError::Tls { .. } => false,
        }
    }

    /// The HTTP status the webhook answered, if it answered.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            NotifyError::Rejected { status, .. } => Some(*status),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(status: u16) -> NotifyError {
        NotifyError::Rejected { webhook: "https://hooks.slack.com/***".into(), status, body: String::new(), advice: "" }
    }

    #[test]
    fn only_rate_limits_and_server_errors_from_slack_are_retryable() {
        // GIVEN Slack answers of every interesting class
        // WHEN asking whether each is worth retrying
        // THEN 429 and 5xx are, every other 4xx is not
        for status in [429, 500, 502, 503, 504] {
            assert!(rejected(status).retryable(), "HTTP {status} should be retryable");
        }
        for status in [400, 401, 403, 404, 410, 413] {
            assert!(!rejected(status).retryable(), "HTTP {status} should not be retryable");
        }
    }

    #[test]
    fn transport_failures_are_retryable_and_configuration_problems_are_not() {
        // GIVEN one error of each non-HTTP kind
        let webhook = "https://hooks.slack.com/***".to_string();
        let transient = [
            NotifyError::Unreachable { webhook: webhook.clone(), message: "connection refused".into() },
            NotifyError::Timeout { webhook: webhook.clone(), timeout: Duration::from_secs(10) },
        ];
        let permanent = [
            NotifyError::BadSetting { variable: "X", problem: "bad".into(), accepted: "good" },
            NotifyError::UnreadableMessage { problem: "not JSON".into() },
            NotifyError::InvalidWebhookUrl { location: "here".into(), problem: "ftp".into() },
            NotifyError::SecretInvalid { location: "here".into(), problem: "empty".into() },
            NotifyError::Tls { message: "no roots".into() },
        ];

        // THEN the transport failures are retryable and the rest are not
        assert!(transient.iter().all(NotifyError::retryable));
        assert!(permanent.iter().all(|e| !e.retryable()), "{permanent:?}");
    }
}
