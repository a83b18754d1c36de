//! The archive function, subscribed to the outcome topic: keeps every outcome object as one
//! S3 object (`{prefix}outcomes/v1/YYYY/MM/DD/{experiment_id}.json`) in the archive named by
//! `CHAOSLINGR_ARCHIVE` (`s3://BUCKET/PREFIX`), for `chaoslingr report --archive`.
//! Failures of the moment are reported as retryable errors, so Lambda's asynchronous
//! retries apply; a retried record overwrites its own object.

use chaoslingr_archive::function::Archiver;
use chaoslingr_slack::function::sns_event;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

// One event at a time, and every call it makes is I/O: one thread is enough.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let archiver = Archiver::from_env().await.inspect_err(|e| tracing::error!(error = %e, "cannot start"))?;
    let archiver = &archiver;
    // The payload is read by `sns_event`, not by the runtime, so a payload of another
    // shape fails as `ChaoSlingr.NotRetryable.BadEvent`, naming the field.
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        archiver.handle(sns_event(event.payload)?).await
    }))
    .await
}
