//! The webhook URL (a secret) and where it is stored.
//!
//! A Slack incoming-webhook URL is a bearer credential: whoever has it can post to the
//! channel. So it is never taken from an environment variable or a Terraform variable in
//! clear; [`WebhookSource`] names the SSM SecureString parameter or Secrets Manager secret
//! that holds it, and [`Webhook`] keeps it out of every log line, error and `Debug` output.

use std::fmt;
use std::str::FromStr;

use hyper::Uri;

use crate::NotifyError;

/// The environment variable that names where the webhook URL is stored.
pub const WEBHOOK_ENV: &str = "CHAOSLINGR_SLACK_WEBHOOK";

const ACCEPTED_SOURCES: &str = "`ssm:<parameter name or ARN>` (a SecureString parameter holding the webhook URL) \
     or `secretsmanager:<secret name or ARN>` (a secret whose string is the URL, or JSON with a `url` or \
     `webhook_url` field)";

/// Where the webhook URL is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookSource {
    /// An SSM parameter (name or ARN), read with decryption.
    Ssm { parameter: String },
    /// A Secrets Manager secret (name or ARN).
    SecretsManager { secret_id: String },
}

impl WebhookSource {
    /// Reads [`WEBHOOK_ENV`] from the process environment.
    pub fn from_env() -> Result<Self, NotifyError> {
        match std::env::var(WEBHOOK_ENV) {
            Ok(value) => value.parse(),
            Err(std::env::VarError::NotPresent) => Err(bad_source("is not set".into())),
            Err(std::env::VarError::NotUnicode(_)) => Err(bad_source("is not valid UTF-8".into())),
        }
    }

    /// A human description for messages, e.g. "SSM parameter `/chaoslingr/slack-webhook`".
    pub fn describe(&self) -> String {
        match self {
            WebhookSource::Ssm { parameter } => format!("SSM parameter `{parameter}`"),
            WebhookSource::SecretsManager { secret_id } => format!("Secrets Manager secret `{secret_id}`"),
        }
    }
}

impl FromStr for WebhookSource {
    type Err = NotifyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        // Someone will paste the URL itself into the variable. Say so without echoing it:
        // the value is then a secret sitting in the function's configuration.
        if s.contains("://") {
            return Err(bad_source(
                "holds a URL; store the webhook URL in SSM or Secrets Manager and name the parameter or secret here \
                 (the URL is a credential and must not sit in the function's environment)"
                    .into(),
            ));
        }
        let (kind, name) =
            s.split_once(':').ok_or_else(|| bad_source(format!("`{s}` has no `ssm:` or `secretsmanager:` prefix")))?;
        let name = name.trim();
        if name.is_empty() {
            return Err(bad_source(format!("`{s}` names no parameter or secret after `{kind}:`")));
        }
        if name.chars().any(char::is_whitespace) {
            return Err(bad_source(format!("`{s}`: a parameter or secret name cannot contain whitespace")));
        }
        match kind {
            "ssm" => Ok(WebhookSource::Ssm { parameter: name.to_string() }),
            "secretsmanager" => Ok(WebhookSource::SecretsManager { secret_id: name.to_string() }),
            other => Err(bad_source(format!("unknown store `{other}` in `{s}`"))),
        }
    }
}

impl fmt::Display for WebhookSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WebhookSource::Ssm { parameter } => write!(f, "ssm:{parameter}"),
            WebhookSource::SecretsManager { secret_id } => write!(f, "secretsmanager:{secret_id}"),
        }
    }
}

fn bad_source(problem: String) -> NotifyError {
    NotifyError::BadSetting { variable: WEBHOOK_ENV, problem, accepted: ACCEPTED_SOURCES }
}

/// A validated webhook URL.
///
/// `https` only, except plain `http` to a loopback host (`127.0.0.1`, `localhost`,
/// `[::1]`) for tests. `Debug` and `Display` show only scheme and host
/// (`https://hooks.slack.com/***`); the path, which is the credential, never leaves this
/// type except through [`Webhook::expose_url`].
#[derive(Clone, PartialEq, Eq)]
pub struct Webhook {
    uri: Uri,
    redacted: String,
}

impl Webhook {
    /// Validates `url` (surrounding whitespace, as secrets often carry a trailing newline,
    /// is ignored). Errors describe the problem without repeating the URL.
    pub fn parse(url: &str) -> Result<Self, NotifyError> {
        Self::parse_from(url, "the given value")
    }

    /// As [`Webhook::parse`], naming `location` (where the URL came from) in errors.
    pub(crate) fn parse_from(url: &str, location: &str) -> Result<Self, NotifyError> {
        let invalid = |problem: String| NotifyError::InvalidWebhookUrl { location: location.to_string(), problem };
        let url = url.trim();
        if url.is_empty() {
            return Err(invalid("it is empty".into()));
        }
        if !url.contains("://") {
            return Err(invalid("not an absolute URL; it must start with https://".into()));
        }
        // `http::Uri`'s own errors name the problem, never the input, so they can be shown.
        let uri: Uri = url.parse().map_err(|e: hyper::http::uri::InvalidUri| invalid(format!("not a URL ({e})")))?;
        let scheme = uri.scheme_str().ok_or_else(|| invalid("not an absolute URL (no scheme)".into()))?;
        let authority = uri.authority().ok_or_else(|| invalid("not an absolute URL (no host)".into()))?;
        if authority.as_str().contains('@') {
            return Err(invalid("it carries user credentials before the host; use the URL Slack gave".into()));
        }
        let host = authority.host();
        if host.is_empty() {
            return Err(invalid("it has no host".into()));
        }
        let loopback = matches!(host, "127.0.0.1" | "localhost" | "[::1]");
        match scheme {
            "https" => {}
            "http" if loopback => {}
            "http" => {
                return Err(invalid(format!(
                    "`http://{host}` would send the webhook credential in clear; use https (plain http is accepted \
                     only for 127.0.0.1, localhost and [::1])"
                )))
            }
            other => return Err(invalid(format!("scheme `{other}` is not https"))),
        }
        let redacted = format!("{scheme}://{authority}/***");
        Ok(Webhook { uri, redacted })
    }

    /// The URL with its path hidden: `https://hooks.slack.com/***`.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    /// The full URL. Only for sending the request; never log it.
    pub fn expose_url(&self) -> &Uri {
        &self.uri
    }

    /// Removes any occurrence of the full URL or its path from `text` (say, an error
    /// message from a lower layer or a response body echoed by a proxy).
    pub(crate) fn scrub(&self, text: &str) -> String {
        let full = self.uri.to_string();
        let mut out = text.replace(&full, &self.redacted);
        if let Some(pq) = self.uri.path_and_query() {
            let secret = pq.as_str();
            // A bare `/` is no secret, and replacing it would mangle everything.
            if secret.len() > 1 {
                out = out.replace(secret, "/***");
            }
        }
        out
    }
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Webhook").field(&self.redacted).finish()
    }
}

impl fmt::Display for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET_PATH: &str = "/services/T0001/B0002/XXXXsecretXXXX";

    fn slack_url() -> String {
        format!("https://hooks.slack.com{SECRET_PATH}")
    }

    #[test]
    fn ssm_and_secretsmanager_sources_parse_with_names_and_arns() {
        // GIVEN the accepted forms of CHAOSLINGR_SLACK_WEBHOOK
        let cases = [
            ("ssm:/chaoslingr/slack-webhook", WebhookSource::Ssm { parameter: "/chaoslingr/slack-webhook".into() }),
            (
                "ssm:arn:aws:ssm:eu-west-1:111122223333:parameter/chaoslingr/slack",
                WebhookSource::Ssm {
                    parameter: "arn:aws:ssm:eu-west-1:111122223333:parameter/chaoslingr/slack".into(),
                },
            ),
            ("secretsmanager:chaoslingr/slack", WebhookSource::SecretsManager { secret_id: "chaoslingr/slack".into() }),
            (
                " secretsmanager:arn:aws:secretsmanager:eu-west-1:111122223333:secret:slack-AbCdEf\n",
                WebhookSource::SecretsManager {
                    secret_id: "arn:aws:secretsmanager:eu-west-1:111122223333:secret:slack-AbCdEf".into(),
                },
            ),
        ];
        for (text, expected) in cases {
            // WHEN parsing
            let parsed: WebhookSource = text.parse().unwrap();
            // THEN the store and the full name (ARN colons included) are kept, and Display round-trips
            assert_eq!(parsed, expected, "{text:?}");
            assert_eq!(parsed.to_string().parse::<WebhookSource>().unwrap(), parsed);
        }
    }

    #[test]
    fn bad_sources_name_the_variable_and_the_accepted_forms() {
        // GIVEN values that are not a store and a name
        for bad in ["", "ssm:", "ssm:  ", "/chaoslingr/slack", "s3:bucket/key", "SSM:/x", "ssm:/a b"] {
            // WHEN parsing
            let err = bad.parse::<WebhookSource>().unwrap_err();
            // THEN the error names the variable and both accepted forms, and is not retryable
            let msg = err.to_string();
            assert!(msg.contains("CHAOSLINGR_SLACK_WEBHOOK"), "{bad:?}: {msg}");
            assert!(msg.contains("ssm:<parameter name or ARN>"), "{bad:?}: {msg}");
            assert!(msg.contains("secretsmanager:<secret name or ARN>"), "{bad:?}: {msg}");
            assert!(!err.retryable());
        }
    }

    #[test]
    fn a_url_pasted_into_the_variable_is_refused_without_echoing_it() {
        // GIVEN the webhook URL itself as the variable's value
        let url = slack_url();

        // WHEN parsing it as a source
        let err = url.parse::<WebhookSource>().unwrap_err();

        // THEN it is refused, the message explains why, and the secret path is not in it
        let msg = err.to_string();
        assert!(msg.contains("CHAOSLINGR_SLACK_WEBHOOK"), "{msg}");
        assert!(msg.contains("holds a URL"), "{msg}");
        assert!(!msg.contains("XXXXsecretXXXX"), "{msg}");
        assert!(!format!("{err:?}").contains("XXXXsecretXXXX"));
    }

    #[test]
    fn https_webhooks_are_accepted_and_redacted_everywhere() {
        // GIVEN a real-looking Slack webhook URL with a trailing newline, as secrets often have
        let url = format!("{}\n", slack_url());

        // WHEN validating it
        let webhook = Webhook::parse(&url).unwrap();

        // THEN the URL is kept whole for sending, but Debug and Display show only the host
        assert_eq!(webhook.expose_url().to_string(), slack_url());
        assert_eq!(webhook.redacted(), "https://hooks.slack.com/***");
        assert_eq!(webhook.to_string(), "https://hooks.slack.com/***");
        let debug = format!("{webhook:?}");
        assert_eq!(debug, r#"Webhook("https://hooks.slack.com/***")"#);
        assert!(!debug.contains("XXXXsecretXXXX") && !debug.contains("T0001"));
    }

    #[test]
    fn plain_http_is_accepted_only_for_loopback() {
        // GIVEN http URLs to the three loopback spellings (with ports, as test servers use)
        for ok in ["http://127.0.0.1:8080/hook", "http://localhost:9/x", "http://[::1]:4000/services/a"] {
            // THEN each is accepted
            assert!(Webhook::parse(ok).is_ok(), "{ok}");
        }

        // GIVEN http to anything else, or other schemes
        for (bad, expected) in [
            ("http://hooks.slack.com/services/T0001/B0002/XXXXsecretXXXX", "use https"),
            ("http://10.0.0.1/services/T0001/B0002/XXXXsecretXXXX", "use https"),
            ("http://127.0.0.2/services/T0001/B0002/XXXXsecretXXXX", "use https"),
            ("ftp://hooks.slack.com/services/T0001/B0002/XXXXsecretXXXX", "scheme `ftp`"),
            ("hooks.slack.com/services/T0001/B0002/XXXXsecretXXXX", "not an absolute URL"),
            ("https://user:XXXXsecretXXXX@hooks.slack.com/x", "user credentials"),
            ("https://hooks.slack.com/services/XXXXsecretXXXX with space", "not a URL"),
            ("   ", "empty"),
        ] {
            // WHEN validating
            let err = Webhook::parse(bad).unwrap_err();
            // THEN it is refused with the reason, never repeating the secret part
            let msg = err.to_string();
            assert!(msg.contains(expected), "{bad}: {msg}");
            assert!(!msg.contains("XXXXsecretXXXX"), "{bad}: {msg}");
            assert!(!format!("{err:?}").contains("XXXXsecretXXXX"), "{bad}: {err:?}");
            assert!(!err.retryable());
        }
    }

    #[test]
    fn scrub_removes_the_url_and_its_path_from_foreign_text() {
        // GIVEN a webhook and a lower-layer message that quotes it
        let webhook = Webhook::parse(&slack_url()).unwrap();
        let text = format!("error sending to {}: invalid token for {SECRET_PATH}", slack_url());

        // WHEN scrubbing
        let clean = webhook.scrub(&text);

        // THEN neither the URL nor its path survive
        assert!(!clean.contains("XXXXsecretXXXX"), "{clean}");
        assert!(clean.contains("https://hooks.slack.com/***"), "{clean}");
    }
}
