//! The scheduled inject function: validates the event, starts one experiment (pre-flight,
//! plan, inject with the record on the rule's tags, mark the group, announce) and returns
//! without waiting. The judge function concludes and reverts it.
//!
//! Settings and AWS clients are built once per cold start; a bad `CHAOSLINGR_*` value
//! fails the cold start with the variable named.

use chaoslingr_scheduled::Scheduled;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

// One event at a time, and every call it makes is I/O: one thread is enough, and each
// worker thread more costs memory (its stack and a malloc arena) for nothing.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let functions = Scheduled::from_env("inject").await.inspect_err(|e| tracing::error!(error = %e, "cannot start"))?;
    let functions = &functions;
    // The payload stays a `Value` for the runtime: the handler reads it into the typed event
    // (`chaoslingr_scheduled::event`), so that a malformed one is failed as
    // `ChaoSlingr.NotRetryable.BadEvent` naming the field, not with the runtime's own errorType.
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<Value>| async move { functions.inject(event.payload).await },
    ))
    .await
}
