//! The Slack notifier function, subscribed to the outcome topic: posts each experiment's
//! start and outcome to a Slack incoming webhook as a Block Kit message. The webhook URL
//! is read from SSM Parameter Store or Secrets Manager (`CHAOSLINGR_SLACK_WEBHOOK`),
//! cached across invocations and never logged. Delivery failures of the moment are
//! reported as retryable errors, so Lambda's asynchronous retries apply.

use chaoslingr_slack::function::sns_event;
use chaoslingr_slack::Notify;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

// One event at a time, and every call it makes is I/O: one thread is enough, and each
// worker thread more costs memory (its stack and a malloc arena) for nothing.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let notify = Notify::from_env().await.inspect_err(|e| tracing::error!(error = %e, "cannot start"))?;
    let notify = &notify;
    // The payload is read as an `SnsEvent` by `sns_event`, not by the runtime: a payload the
    // runtime cannot deserialize is failed with the runtime's own errorType, where ours
    // says `ChaoSlingr.NotRetryable.BadEvent` and names the field.
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        notify.handle(sns_event(event.payload)?).await
    }))
    .await
}
