//! Posting to the webhook: the URL read lazily from its store and cached, the HTTP call,
//! and the mapping of every failure onto [`NotifyError`].

use std::fmt;
use std::time::Duration;

use aws_sdk_ssm::config::http::HttpResponse;
use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{CONTENT_TYPE, USER_AGENT};
use hyper::{Request, StatusCode};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::{NotifyError, Webhook, WebhookSource};

/// How long a webhook URL read from its store is used before it is read again, so a
/// rotated secret takes effect without a redeploy.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(15 * 60);
/// How long one post may take, connection included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Slack answers `ok` or a short error word; anything longer is not worth reading.
const RESPONSE_BODY_LIMIT: usize = 64 * 1024;
const RESPONSE_BODY_SHOWN: usize = 200;

const THROTTLED_OR_UNAVAILABLE: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "InternalServerError",
    "InternalServiceError",
    "InternalFailure",
    "ServiceUnavailable",
    "ServiceUnavailableException",
];
const DENIED: &[&str] = &["AccessDenied", "AccessDeniedException"];
const NOT_FOUND: &[&str] = &["ParameterNotFound", "ParameterVersionNotFound", "ResourceNotFoundException"];
const KEY_PROBLEM: &[&str] = &["InvalidKeyId", "DecryptionFailure", "KMSAccessDeniedException", "KMSDisabledException"];
const CREDENTIALS: &[&str] =
    &["UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException", "InvalidClientTokenId"];

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Posts payloads to the Slack webhook whose URL lives in SSM or Secrets Manager.
///
/// Build one per process (Lambda cold start) and reuse it: the URL is read on the first
/// post, cached for [`DEFAULT_CACHE_TTL`] (see [`Notifier::with_cache_ttl`]), and
/// forgotten as soon as Slack answers 403, 404 or 410, which is how a revoked or rotated
/// webhook shows.
pub struct Notifier {
    source: WebhookSource,
    ssm: aws_sdk_ssm::Client,
    secrets: aws_sdk_secretsmanager::Client,
    http: HttpClient,
    cache: Mutex<Option<Cached>>,
    ttl: Duration,
    timeout: Duration,
}

struct Cached {
    webhook: Webhook,
    read_at: Instant,
}

impl Notifier {
    /// A notifier reading the URL from `source` with clients built from `sdk_config`.
    /// Fails only when no root certificates can be loaded to verify Slack with.
    pub fn new(sdk_config: &aws_config::SdkConfig, source: WebhookSource) -> Result<Self, NotifyError> {
        Self::with_clients(
            aws_sdk_ssm::Client::new(sdk_config),
            aws_sdk_secretsmanager::Client::new(sdk_config),
            source,
        )
    }

    /// As [`Notifier::new`], with the two clients given (for tests on mocked clients). Only
    /// the one `source` names is called.
    pub fn with_clients(
        ssm: aws_sdk_ssm::Client,
        secrets: aws_sdk_secretsmanager::Client,
        source: WebhookSource,
    ) -> Result<Self, NotifyError> {
        let https = HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| NotifyError::Tls { message: e.to_string() })?
            // Plain http is only ever used for loopback: `Webhook` refuses it for any other host.
            .https_or_http()
            .enable_http1()
            .build();
        let http = Client::builder(TokioExecutor::new())
            // A Lambda sandbox is frozen between invocations and pooled connections die
            // silently meanwhile; notifications are rare, so a fresh connection each time.
            .pool_max_idle_per_host(0)
            .build(https);
        Ok(Notifier {
            source,
            ssm,
            secrets,
            http,
            cache: Mutex::new(None),
            ttl: DEFAULT_CACHE_TTL,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// How long a URL read from the store is reused (default 15 minutes). Zero reads it
    /// before every post.
    pub fn with_cache_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The limit on one post, connection included (default 10 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Where the URL is read from.
    pub fn source(&self) -> &WebhookSource {
        &self.source
    }

    /// POSTs `payload` as JSON to the webhook.
    ///
    /// When a cached URL is refused with 403, 404 or 410, the store is read again at once
    /// and, if it now holds a different URL (the secret was rotated), the post is tried
    /// once more with it. Either way a refused URL is not kept.
    pub async fn post(&self, payload: &serde_json::Value) -> Result<(), NotifyError> {
        let body = Bytes::from(serde_json::to_vec(payload).expect("a JSON value always serializes"));
        let (webhook, fresh) = self.webhook().await?;
        let err = match self.send(&webhook, body.clone()).await {
            Ok(()) => return Ok(()),
            Err(err) => err,
        };
        if !gone(&err) {
            return Err(err);
        }
        self.forget(&webhook).await;
        tracing::warn!(webhook = %webhook, status = err.http_status(), source = %self.source,
            "the Slack webhook refused the post; its URL is no longer cached");
        if fresh {
            return Err(err);
        }
        let (latest, _) = self.webhook().await?;
        if latest == webhook {
            self.forget(&latest).await;
            return Err(err);
        }
        tracing::info!(source = %self.source, "the webhook URL was rotated; posting to the new one");
        let retried = self.send(&latest, body).await;
        if retried.as_ref().is_err_and(gone) {
            self.forget(&latest).await;
        }
        retried
    }

    /// The webhook, from the cache when fresh enough, else from the store. The flag says
    /// whether it was just read.
    async fn webhook(&self) -> Result<(Webhook, bool), NotifyError> {
        // Held across the read so concurrent posts read the store once.
        let mut cache = self.cache.lock().await;
        if let Some(cached) = cache.as_ref() {
            if cached.read_at.elapsed() < self.ttl {
                return Ok((cached.webhook.clone(), false));
            }
        }
        let webhook = self.read_webhook().await?;
        tracing::debug!(webhook = %webhook, source = %self.source, "read the Slack webhook URL");
        *cache = Some(Cached { webhook: webhook.clone(), read_at: Instant::now() });
        Ok((webhook, true))
    }

    async fn forget(&self, webhook: &Webhook) {
        let mut cache = self.cache.lock().await;
        if cache.as_ref().is_some_and(|c| &c.webhook == webhook) {
            *cache = None;
        }
    }

    async fn read_webhook(&self) -> Result<Webhook, NotifyError> {
        let location = self.source.describe();
        let secret = match &self.source {
            WebhookSource::Ssm { parameter } => {
                let out = self
                    .ssm
                    .get_parameter()
                    .name(parameter)
                    .with_decryption(true)
                    .send()
                    .await
                    .map_err(|e| read_error(&self.source, &e))?;
                let parameter_out = out.parameter().ok_or_else(|| invalid(&location, "the answer has no parameter"))?;
                if parameter_out.r#type() != Some(&aws_sdk_ssm::types::ParameterType::SecureString) {
                    tracing::warn!(
                        source = %self.source,
                        "the webhook URL parameter is not a SecureString; anyone who can read parameters can post \
                         to the channel"
                    );
                }
                parameter_out.value().ok_or_else(|| invalid(&location, "the parameter has no value"))?.to_string()
            }
            WebhookSource::SecretsManager { secret_id } => {
                let out = self
                    .secrets
                    .get_secret_value()
                    .secret_id(secret_id)
                    .send()
                    .await
                    .map_err(|e| read_error(&self.source, &e))?;
                out.secret_string()
                    .ok_or_else(|| {
                        invalid(
                            &location,
                            "it has no string value (binary secrets are not read); store the URL as the secret string",
                        )
                    })?
                    .to_string()
            }
        };
        Webhook::parse_from(&url_in_secret(&secret, &location)?, &location)
    }

    async fn send(&self, webhook: &Webhook, body: Bytes) -> Result<(), NotifyError> {
        let request = Request::post(webhook.expose_url().clone())
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, concat!("chaoslingr-slack/", env!("CARGO_PKG_VERSION")))
            .body(Full::new(body))
            .expect("a validated URI and fixed headers make a valid request");
        let exchange = async {
            let response = self.http.request(request).await.map_err(|e| NotifyError::Unreachable {
                webhook: webhook.redacted().to_string(),
                message: webhook.scrub(&error_chain(&e)),
            })?;
            let status = response.status();
            // The body only explains a refusal; failing to read it changes nothing.
            let body = Limited::new(response.into_body(), RESPONSE_BODY_LIMIT)
                .collect()
                .await
                .map(|collected| collected.to_bytes())
                .unwrap_or_default();
            Ok::<_, NotifyError>((status, body))
        };
        let (status, body) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| NotifyError::Timeout { webhook: webhook.redacted().to_string(), timeout: self.timeout })??;
        if status.is_success() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&body);
        let mut shown: String = text.trim().chars().take(RESPONSE_BODY_SHOWN).collect();
        if text.trim().chars().count() > RESPONSE_BODY_SHOWN {
            shown.push('…');
        }
        Err(NotifyError::Rejected {
            webhook: webhook.redacted().to_string(),
            status: status.as_u16(),
            body: webhook.scrub(&shown),
            advice: advice(status),
        })
    }
}

impl fmt::Debug for Notifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notifier")
            .field("source", &self.source)
            .field("ttl", &self.ttl)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Whether the answer means this URL will never work again (revoked webhook, deleted channel).
fn gone(err: &NotifyError) -> bool {
    matches!(err.http_status(), Some(403 | 404 | 410))
}

fn advice(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "Slack refused the message itself (the body names the problem); report this as a ChaoSlingr bug",
        401 | 403 => {
            "the webhook is no longer valid (revoked, or its app removed); create a new incoming webhook and store \
             its URL in the parameter or secret"
        }
        404 | 410 => {
            "the webhook or its channel no longer exists; create a new incoming webhook and store its URL in the \
             parameter or secret"
        }
        413 => "the message is too large for Slack; report this as a ChaoSlingr bug",
        429 => "Slack is rate limiting this webhook; retry later",
        500..=599 => "Slack is having trouble; retry later",
        _ => "unexpected answer; check the webhook URL in the parameter or secret",
    }
}

/// The URL inside a secret string: the string itself, or the `url` or `webhook_url`
/// field of a JSON object. Errors never quote the secret.
fn url_in_secret(secret: &str, location: &str) -> Result<String, NotifyError> {
    let trimmed = secret.trim();
    if !trimmed.starts_with('{') {
        return Ok(trimmed.to_string());
    }
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(trimmed).map_err(|e| {
        // serde_json's message gives a line and column, never the text.
        invalid(location, &format!("it starts like JSON but is not a JSON object ({e})"))
    })?;
    ["url", "webhook_url"]
        .iter()
        .find_map(|key| object.get(*key).and_then(|v| v.as_str()))
        .map(str::to_string)
        .ok_or_else(|| invalid(location, "it is JSON without a `url` or `webhook_url` string field"))
}

fn invalid(location: &str, problem: &str) -> NotifyError {
    NotifyError::SecretInvalid { location: location.to_string(), problem: problem.to_string() }
}

/// Classifies a failed SSM or Secrets Manager read.
fn read_error<E>(source: &WebhookSource, err: &SdkError<E, HttpResponse>) -> NotifyError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let location = source.describe();
    let transient = |code: &str| NotifyError::SecretUnreadable {
        location: location.clone(),
        code: code.to_string(),
        message: aws_smithy_types::error::display::DisplayErrorContext(err).to_string(),
        advice: "this is usually transient; retry later".into(),
        retryable: true,
    };
    match err {
        SdkError::TimeoutError(_) => return transient("timeout"),
        SdkError::DispatchFailure(_) => return transient("dispatch failure"),
        SdkError::ResponseError(_) => return transient("unreadable response"),
        _ => {}
    }
    let code = err.code().unwrap_or("unknown").to_string();
    let status = err.raw_response().map(|r| r.status().as_u16());
    let message = err
        .message()
        .map(str::to_string)
        .unwrap_or_else(|| aws_smithy_types::error::display::DisplayErrorContext(err).to_string());
    let (name, store) = match source {
        WebhookSource::Ssm { parameter } => (parameter.as_str(), Store::Ssm),
        WebhookSource::SecretsManager { secret_id } => (secret_id.as_str(), Store::SecretsManager),
    };
    let (advice, retryable) = if THROTTLED_OR_UNAVAILABLE.contains(&code.as_str())
        || status.is_some_and(|s| s == 429 || s >= 500)
    {
        ("throttled or unavailable; this is transient, retry later".to_string(), true)
    } else if DENIED.contains(&code.as_str()) {
        let advice = match store {
            Store::Ssm => format!(
                "grant the function's role ssm:GetParameter on parameter `{name}` and kms:Decrypt on the KMS key that \
                 encrypts it (alias/aws/ssm unless a customer managed key was chosen)"
            ),
            Store::SecretsManager => format!(
                "grant the function's role secretsmanager:GetSecretValue on secret `{name}` (and kms:Decrypt on its \
                 KMS key if it is customer managed)"
            ),
        };
        (advice, false)
    } else if NOT_FOUND.contains(&code.as_str()) {
        let advice = match store {
            Store::Ssm => format!(
                "create a SecureString parameter `{name}` holding the webhook URL in this account and region, or \
                 point CHAOSLINGR_SLACK_WEBHOOK at the right one"
            ),
            Store::SecretsManager => format!(
                "create the secret `{name}` holding the webhook URL in this account and region, or point \
                 CHAOSLINGR_SLACK_WEBHOOK at the right one"
            ),
        };
        (advice, false)
    } else if KEY_PROBLEM.contains(&code.as_str()) {
        let advice = format!(
            "grant the function's role kms:Decrypt on the KMS key that encrypts `{name}`, and check it is enabled"
        );
        (advice, false)
    } else if CREDENTIALS.contains(&code.as_str()) {
        ("the function's AWS credentials were refused; check its role and the region".to_string(), false)
    } else if code == "InvalidRequestException" && store == Store::SecretsManager {
        (
            format!("the secret `{name}` is deleted or scheduled for deletion; restore it or store the URL in another"),
            false,
        )
    } else {
        ("check CHAOSLINGR_SLACK_WEBHOOK and the function's permissions".to_string(), false)
    };
    NotifyError::SecretUnreadable { location, code, message, advice, retryable }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Store {
    Ssm,
    SecretsManager,
}

/// An error and its causes on one line: hyper's own message ("client error (Connect)")
/// says little without the io error underneath.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_string_is_the_url_or_json_with_url_or_webhook_url() {
        // GIVEN the three accepted shapes of a secret string
        let url = "https://hooks.slack.com/services/T0/B0/XXXXsecretXXXX";
        for secret in [
            format!("{url}\n"),
            format!(r#"{{"url": "{url}"}}"#),
            format!(r#"{{"webhook_url": "{url}", "channel": "sec-chaos"}}"#),
        ] {
            // WHEN extracting the URL
            // THEN it is found
            assert_eq!(url_in_secret(&secret, "here").unwrap(), url, "{secret}");
        }
    }

    #[test]
    fn json_secrets_without_a_url_field_are_refused_without_quoting_them() {
        // GIVEN JSON secrets with no usable field, and one that does not parse
        for secret in [
            r#"{"hook": "https://hooks.slack.com/services/T0/B0/XXXXsecretXXXX"}"#,
            r#"{"url": 42, "token": "XXXXsecretXXXX"}"#,
            r#"{"url": "https://hooks.slack.com/services/T0/B0/XXXXsecretXXXX""#,
        ] {
            // WHEN extracting the URL
            let err = url_in_secret(secret, "Secrets Manager secret `slack`").unwrap_err();
            // THEN the error names the secret and the accepted fields, not its content, and is final
            let msg = err.to_string();
            assert!(msg.contains("Secrets Manager secret `slack`"), "{msg}");
            assert!(msg.contains("JSON"), "{msg}");
            assert!(!msg.contains("XXXXsecretXXXX"), "{msg}");
            assert!(!err.retryable());
        }
    }

    #[test]
    fn refusals_that_mean_the_url_is_dead_are_recognised() {
        // GIVEN Slack answers of several statuses
        let rejected =
            |status| NotifyError::Rejected { webhook: String::new(), status, body: String::new(), advice: "" };
        // THEN exactly 403, 404 and 410 drop the cached URL
        for status in [403, 404, 410] {
            assert!(gone(&rejected(status)), "{status}");
        }
        for status in [400, 401, 429, 500] {
            assert!(!gone(&rejected(status)), "{status}");
        }
    }
}
