//! The logic of ChaoSlingr's scheduled Lambda functions, called by the thin binaries in
//! `lambdas/`: the [`event`] each function accepts (validated before any AWS call), the
//! [`handlers`] built once per cold start, and the [`error`] type that tells Lambda and
//! the operator whether a failure is worth retrying.
//!
//! - **inject** (on a schedule): pre-flight, plan, inject, mark, announce; it does not wait.
//! - **judge** (every minute): observe every active experiment, conclude and revert what is
//!   decided or overdue, finish whatever a crashed tick left. It is the durable timer and
//!   the safety net.
//!
//! The third function, **notify** (subscribed to the SNS topic, posts each start and
//! outcome to Slack), lives in `chaoslingr-slack`, so that its binary links none of the
//! AWS clients these two use.

pub mod error;
pub mod event;
pub mod handlers;

pub use error::FunctionError;
pub use handlers::Scheduled;
