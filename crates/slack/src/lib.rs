//! ChaoSlingr's Slack notifier, the library behind the Slack notifier Lambda.
//!
//! The product publishes one JSON message on SNS when an unattended experiment starts
//! (`chaoslingr.started/v1`) and one when any experiment concludes
//! (`chaoslingr.outcome/v1`). This crate turns such a message into a Slack
//! incoming-webhook payload ([`message`]) and posts it ([`Notifier`]); [`function`] is
//! the Lambda handler around both ([`Notify`]), with the errors it reports to Lambda.
//!
//! The webhook URL is a credential, so it is never configured in clear:
//! `CHAOSLINGR_SLACK_WEBHOOK` names where it is stored ([`WebhookSource`]: an SSM
//! SecureString parameter or a Secrets Manager secret), the [`Notifier`] reads it on first
//! use and caches it for a while, and [`Webhook`] keeps it out of logs, errors and `Debug`.
//!
//! ```no_run
//! # async fn handler(sns_message: &str) -> Result<(), chaoslingr_slack::NotifyError> {
//! use chaoslingr_slack::{message, Notifier, WebhookSource};
//!
//! // Once per cold start:
//! let sdk_config = aws_config::load_from_env().await;
//! let notifier = Notifier::new(&sdk_config, WebhookSource::from_env()?)?;
//!
//! // Per SNS record:
//! let payload = message::slack_payload(sns_message)?;
//! notifier.post(&payload).await // on error, `err.retryable()` tells whether to fail the invocation
//! # }
//! ```

mod error;
pub mod function;
pub mod message;
mod notifier;
mod webhook;

pub use error::NotifyError;
pub use function::Notify;
pub use message::{parse_notice, slack_payload, Notice};
pub use notifier::{Notifier, DEFAULT_CACHE_TTL, DEFAULT_TIMEOUT};
pub use webhook::{Webhook, WebhookSource, WEBHOOK_ENV};
