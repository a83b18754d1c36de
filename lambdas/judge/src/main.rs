//! The judge function, invoked every minute: observes every active experiment, concludes
//! and reverts what is decided or past its deadline, and finishes whatever a crashed tick
//! left. It is the durable timer (a window of hours costs nothing) and the safety net
//! (no experiment outlives its deadline by more than a tick, whoever started it).
//!
//! Settings and AWS clients are built once per cold start.

use chaoslingr_scheduled::Scheduled;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

// One event at a time, and every call it makes is I/O: one thread is enough, and each
// worker thread more costs memory (its stack and a malloc arena) for nothing.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let functions = Scheduled::from_env("judge").await.inspect_err(|e| tracing::error!(error = %e, "cannot start"))?;
    let functions = &functions;
    // The payload stays a `Value` for the runtime: the handler reads it into the typed event
    // (`chaoslingr_scheduled::event`), so that a malformed one is failed as
    // `ChaoSlingr.NotRetryable.BadEvent` naming the field, not with the runtime's own errorType.
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<Value>| async move { functions.judge(event.payload).await },
    ))
    .await
}
