//! The notifier as a Lambda function, subscribed to the outcome topic: each SNS record of
//! the event becomes one Block Kit message posted to the incoming webhook, whose URL is
//! read from SSM or Secrets Manager and cached across invocations (never logged).
//!
//! Every failure is a [`FunctionError`], whose `errorType` (the same strings the scheduled
//! functions report) tells alarms, dead-letter queues and people whether retrying can help.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_lambda_events::event::sns::SnsEvent;
use serde_json::{json, Value};
use tracing::{info, warn};

use crate::{parse_notice, Notifier, NotifyError, WebhookSource};

/// A failed invocation of the notifier.
#[derive(Debug, thiserror::Error)]
pub enum FunctionError {
    /// The event is malformed; nothing was posted.
    #[error("bad event: {0}; nothing was changed")]
    BadEvent(String),
    /// The function's configuration is wrong (`CHAOSLINGR_SLACK_WEBHOOK`).
    #[error("bad configuration: {0}")]
    BadConfig(String),
    /// Reading the webhook URL or posting failed in a way a later invocation may not hit.
    #[error("{0}")]
    Transient(String),
    /// Reading the webhook URL or posting failed in a way that needs a person
    /// (permissions, a missing or malformed secret, a revoked webhook).
    #[error("{0}")]
    Permanent(String),
}

impl FunctionError {
    /// Whether invoking again, unchanged, may succeed.
    pub fn retryable(&self) -> bool {
        matches!(self, FunctionError::Transient(_))
    }

    /// The `errorType` reported to Lambda.
    pub fn error_type(&self) -> &'static str {
        match self {
            FunctionError::BadEvent(_) => "ChaoSlingr.NotRetryable.BadEvent",
            FunctionError::BadConfig(_) => "ChaoSlingr.NotRetryable.BadConfig",
            FunctionError::Permanent(_) => "ChaoSlingr.NotRetryable.AwsError",
            FunctionError::Transient(_) => "ChaoSlingr.Retryable.AwsError",
        }
    }
}

impl From<NotifyError> for FunctionError {
    fn from(e: NotifyError) -> Self {
        match e {
            NotifyError::UnreadableMessage { .. } => FunctionError::BadEvent(e.to_string()),
            NotifyError::BadSetting { .. } => FunctionError::BadConfig(e.to_string()),
            e if e.retryable() => FunctionError::Transient(e.to_string()),
            e => FunctionError::Permanent(e.to_string()),
        }
    }
}

impl From<FunctionError> for lambda_runtime::Diagnostic {
    fn from(e: FunctionError) -> Self {
        lambda_runtime::Diagnostic { error_type: e.error_type().to_string(), error_message: e.to_string() }
    }
}

/// Loads the standard AWS configuration chain (environment, profile, SSO, IMDS), with
/// timeouts so that no secret read can hang an invocation: connect 5 s, attempt 20 s,
/// operation 60 s, as the scheduled functions' `chaoslingr_aws::load_config`.
// Not shared with chaoslingr-aws: depending on it would link the EC2, CloudWatch, Config,
// Security Hub and SNS clients into the notifier, which uses none of them.
pub async fn load_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(Duration::from_secs(20))
                .operation_timeout(Duration::from_secs(60))
                .build(),
        )
        .load()
        .await
}

/// Reads a Lambda payload as an SNS event. A payload of another shape is a
/// [`FunctionError::BadEvent`] naming the field at fault.
///
/// The binary reads the payload with this rather than letting the runtime deserialize it:
/// the runtime would report a payload it cannot read with its own `errorType`, not as
/// `ChaoSlingr.NotRetryable.BadEvent`.
pub fn sns_event(event: Value) -> Result<SnsEvent, FunctionError> {
    let bad = |problem: String| FunctionError::BadEvent(format!("not an SNS event ({problem})"));
    if !event.is_object() {
        return Err(bad(format!("expected a JSON object with a `Records` array, got {}", kind(&event))));
    }
    serde_path_to_error::deserialize(event).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // A missing field is reported at its parent, so the path alone may not name it.
        if path == "." || inner.contains(&format!("`{path}`")) {
            bad(inner)
        } else {
            bad(format!("{path}: {inner}"))
        }
    })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The `Message` of every record of an SNS event, once every record is known to come
/// from SNS.
pub fn sns_messages(event: &SnsEvent) -> Result<Vec<&str>, FunctionError> {
    if event.records.is_empty() {
        return Err(FunctionError::BadEvent("`Records` is empty".into()));
    }
    event
        .records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            if r.event_source != "aws:sns" {
                return Err(FunctionError::BadEvent(format!(
                    "Records[{i}].EventSource is `{}`, expected `aws:sns`",
                    r.event_source
                )));
            }
            Ok(r.sns.message.as_str())
        })
        .collect()
}

/// The notifier, built once per cold start.
pub struct Notify {
    notifier: Notifier,
}

impl Notify {
    /// Reads `CHAOSLINGR_SLACK_WEBHOOK` (`ssm:<name>` or `secretsmanager:<id>`) and loads
    /// the AWS configuration; the secret itself is read on first use.
    pub async fn from_env() -> Result<Self, FunctionError> {
        let source = WebhookSource::from_env()?;
        let conf = load_config().await;
        Ok(Notify::new(Notifier::new(&conf, source)?))
    }

    /// A notifier function posting with `notifier`.
    pub fn new(notifier: Notifier) -> Self {
        Notify { notifier }
    }

    /// Posts every record of an SNS event. Every message is rendered before the first
    /// post, so a malformed event posts nothing.
    /// Quiet outcomes (scheduled pre-flight aborts) are skipped, should the subscription's
    /// filter policy let one through.
    pub async fn handle(&self, event: SnsEvent) -> Result<Value, FunctionError> {
        let notices = sns_messages(&event)?.into_iter().map(parse_notice).collect::<Result<Vec<_>, _>>()?;
        let quiet = notices.iter().filter(|n| n.is_quiet()).count();
        let payloads: Vec<Value> = notices.iter().filter(|n| !n.is_quiet()).map(|n| n.slack_payload()).collect();
        for (i, payload) in payloads.iter().enumerate() {
            if let Err(e) = self.notifier.post(payload).await {
                warn!(record = i, retryable = e.retryable(), error = %e, "could not post to Slack");
                return Err(e.into());
            }
        }
        info!(posted = payloads.len(), quiet, "posted to Slack");
        Ok(json!({ "posted": payloads.len(), "quiet": quiet }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(source: &str, message: &str) -> Value {
        json!({
            "EventSource": source, "EventVersion": "1.0",
            "EventSubscriptionArn": "arn:aws:sns:eu-west-1:111122223333:chaoslingr:1",
            "Sns": {
                "Type": "Notification", "MessageId": "m-1", "TopicArn": "arn:aws:sns:eu-west-1:111122223333:chaoslingr",
                "Subject": null, "Message": message, "Timestamp": "2026-11-26T12:15:00.000Z",
                "SignatureVersion": "1", "Signature": "c2ln", "SigningCertUrl": "https://sns.eu-west-1.amazonaws.com/x.pem",
                "UnsubscribeUrl": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe", "MessageAttributes": {}
            }
        })
    }

    #[test]
    fn messages_are_read_from_every_record() {
        let event = sns_event(json!({"Records": [record("aws:sns", "one"), record("aws:sns", "two")]})).unwrap();
        assert_eq!(sns_messages(&event).unwrap(), vec!["one", "two"]);
    }

    #[test]
    fn events_that_are_not_from_sns_are_refused() {
        let mut no_message = record("aws:sns", "x");
        no_message["Sns"].as_object_mut().unwrap().remove("Message");
        let mut numeric_message = record("aws:sns", "x");
        numeric_message["Sns"]["Message"] = json!(7);
        for (event, expected) in [
            (json!([1]), "JSON object with a `Records` array, got an array"),
            (json!({}), "missing field `Records`"),
            (json!({"Records": {}}), "Records: invalid type: map"),
            (json!({"Records": []}), "`Records` is empty"),
            (json!({"Records": [record("aws:sqs", "x")]}), "Records[0].EventSource is `aws:sqs`, expected `aws:sns`"),
            (json!({"Records": [{"EventSource": "aws:sqs", "body": "x"}]}), "Records[0]: missing field"),
            (json!({"Records": [no_message]}), "Records[0].Sns: missing field `Message`"),
            (json!({"Records": [record("aws:sns", "x"), numeric_message]}), "Records[1].Sns.Message: invalid type"),
        ] {
            let e = sns_event(event.clone()).and_then(|e| sns_messages(&e).map(|_| ())).unwrap_err();
            assert!(e.to_string().contains(expected), "{event}: {e}");
            assert!(e.to_string().ends_with("nothing was changed"), "{e}");
            assert_eq!(e.error_type(), "ChaoSlingr.NotRetryable.BadEvent");
            assert!(!e.retryable());
        }
    }

    #[test]
    fn notifier_errors_keep_the_error_types_of_the_lambda_boundary() {
        let cases = [
            (NotifyError::UnreadableMessage { problem: "not JSON".into() }, "ChaoSlingr.NotRetryable.BadEvent"),
            (
                NotifyError::BadSetting {
                    variable: "CHAOSLINGR_SLACK_WEBHOOK",
                    problem: "is not set".into(),
                    accepted: "",
                },
                "ChaoSlingr.NotRetryable.BadConfig",
            ),
            (
                NotifyError::Unreachable { webhook: "https://hooks.slack.com/***".into(), message: "refused".into() },
                "ChaoSlingr.Retryable.AwsError",
            ),
            (
                NotifyError::Rejected {
                    webhook: "https://hooks.slack.com/***".into(),
                    status: 404,
                    body: "no_service".into(),
                    advice: "",
                },
                "ChaoSlingr.NotRetryable.AwsError",
            ),
        ];
        for (e, error_type) in cases {
            let message = e.to_string();
            let retryable = e.retryable();
            let f = FunctionError::from(e);
            assert_eq!(f.retryable(), retryable, "{f}");
            let d: lambda_runtime::Diagnostic = f.into();
            assert_eq!(d.error_type, error_type);
            assert!(d.error_message.contains(&message), "{}", d.error_message);
        }
    }
}
