//! The Slack notifier: each SNS record of the event becomes one Block Kit message posted
//! to the incoming webhook, whose URL is read from SSM or Secrets Manager and cached
//! across invocations (never logged).

use chaoslingr_slack::{slack_payload, Notifier, NotifyError, WebhookSource};
use serde_json::{json, Value};
use tracing::{info, warn};

use crate::error::FunctionError;

/// The `Message` of every SNS record in a Lambda event from an SNS subscription.
pub fn sns_messages(event: &Value) -> Result<Vec<String>, FunctionError> {
    let bad = |m: String| FunctionError::BadEvent(m);
    let records = event
        .get("Records")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("expected an SNS event with a `Records` array".into()))?;
    if records.is_empty() {
        return Err(bad("`Records` is empty".into()));
    }
    records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let source = r.get("EventSource").and_then(Value::as_str).unwrap_or_default();
            if source != "aws:sns" {
                return Err(bad(format!("Records[{i}].EventSource is `{source}`, expected `aws:sns`")));
            }
            r.get("Sns")
                .and_then(|s| s.get("Message"))
                .and_then(Value::as_str)
                .map(String::from)
                .ok_or_else(|| bad(format!("Records[{i}].Sns.Message is missing or not a string")))
        })
        .collect()
}

fn from_notify(e: NotifyError) -> FunctionError {
    match e {
        NotifyError::UnreadableMessage { .. } => FunctionError::BadEvent(e.to_string()),
        NotifyError::BadSetting { .. } => FunctionError::BadConfig(e.to_string()),
        e if e.retryable() => FunctionError::Transient(e.to_string()),
        e => FunctionError::Permanent(e.to_string()),
    }
}

/// The notifier, built once per cold start.
pub struct Notify {
    notifier: Notifier,
}

impl Notify {
    /// Reads `CHAOSLINGR_SLACK_WEBHOOK` (`ssm:<name>` or `secretsmanager:<id>`) and loads
    /// the AWS configuration; the secret itself is read on first use.
    pub async fn from_env() -> Result<Self, FunctionError> {
        let source = WebhookSource::from_env().map_err(from_notify)?;
        let conf = chaoslingr_aws::load_config().await;
        Ok(Notify { notifier: Notifier::new(&conf, source).map_err(from_notify)? })
    }

    /// Posts every record of an SNS event. Every message is rendered before the first
    /// post, so a malformed event posts nothing.
    pub async fn handle(&self, event: Value) -> Result<Value, FunctionError> {
        let messages = sns_messages(&event)?;
        let payloads = messages.iter().map(|m| slack_payload(m).map_err(from_notify)).collect::<Result<Vec<_>, _>>()?;
        for (i, payload) in payloads.iter().enumerate() {
            if let Err(e) = self.notifier.post(payload).await {
                warn!(record = i, retryable = e.retryable(), error = %e, "could not post to Slack");
                return Err(from_notify(e));
            }
        }
        info!(posted = payloads.len(), "posted to Slack");
        Ok(json!({ "posted": payloads.len() }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(message: &str) -> Value {
        json!({"EventSource": "aws:sns", "EventVersion": "1.0", "Sns": {"Type": "Notification", "Message": message}})
    }

    #[test]
    fn messages_are_read_from_every_record() {
        let event = json!({"Records": [record("one"), record("two")]});
        assert_eq!(sns_messages(&event).unwrap(), vec!["one", "two"]);
    }

    #[test]
    fn events_that_are_not_from_sns_are_refused() {
        for (event, expected) in [
            (json!({}), "`Records` array"),
            (json!({"Records": []}), "empty"),
            (json!({"Records": [{"EventSource": "aws:sqs", "body": "x"}]}), "expected `aws:sns`"),
            (json!({"Records": [{"EventSource": "aws:sns", "Sns": {}}]}), "Sns.Message"),
        ] {
            let e = sns_messages(&event).unwrap_err();
            assert!(e.to_string().contains(expected), "{event}: {e}");
            assert!(!e.retryable());
        }
    }
}
