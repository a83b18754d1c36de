//! The archive function, subscribed to the outcome topic (only to messages carrying an
//! `outcome` attribute): each SNS record holding an outcome object becomes one S3 object
//! ([`crate::key_for`]). Start messages and other schemas are skipped and counted, so a
//! topic shared with alarm notifications costs nothing but an invocation.
//!
//! Failures keep the notifier's `errorType`s: S3 throttling, timeouts and server errors are
//! `ChaoSlingr.Retryable.AwsError` (Lambda's asynchronous retries apply, and a retried
//! record overwrites its own object); a denied write, a missing bucket or a bad
//! `CHAOSLINGR_ARCHIVE` need a person.

use aws_lambda_events::event::sns::SnsEvent;
use chaoslingr_slack::function::{load_config, sns_messages, FunctionError};
use serde_json::{json, Value};
use tracing::{info, warn};

use chaoslingr_domain::outcome::SCHEMA;

use crate::{Archive, ArchiveError, Location};

/// The environment variable naming the archive: `s3://BUCKET/PREFIX`.
pub const ARCHIVE_VAR: &str = "CHAOSLINGR_ARCHIVE";

/// The archive function, built once per cold start.
pub struct Archiver {
    archive: Archive,
}

/// Reads `CHAOSLINGR_ARCHIVE`.
pub fn location_from_env() -> Result<Location, FunctionError> {
    let raw = std::env::var(ARCHIVE_VAR).map_err(|_| {
        FunctionError::BadConfig(format!("{ARCHIVE_VAR} is not set; expected s3://BUCKET or s3://BUCKET/PREFIX"))
    })?;
    raw.trim().parse().map_err(|e: ArchiveError| FunctionError::BadConfig(format!("{ARCHIVE_VAR}: {e}")))
}

impl Archiver {
    /// Reads `CHAOSLINGR_ARCHIVE` and loads the AWS configuration.
    pub async fn from_env() -> Result<Self, FunctionError> {
        let location = location_from_env()?;
        let conf = load_config().await;
        Ok(Archiver::new(Archive::new(&conf, location)))
    }

    pub fn new(archive: Archive) -> Self {
        Archiver { archive }
    }

    /// Keeps every outcome of an SNS event. Every record is read before the first write,
    /// so a malformed event writes nothing.
    pub async fn handle(&self, event: SnsEvent) -> Result<Value, FunctionError> {
        let messages = sns_messages(&event)?;
        let mut outcomes = Vec::new();
        let mut skipped = 0;
        for (i, m) in messages.iter().enumerate() {
            let v: Value = serde_json::from_str(m)
                .map_err(|e| FunctionError::BadEvent(format!("Records[{i}].Sns.Message is not JSON: {e}")))?;
            if v.get("schema").and_then(Value::as_str) != Some(SCHEMA) {
                info!(record = i, schema = ?v.get("schema"), "skipped: not an outcome");
                skipped += 1;
                continue;
            }
            // An outcome that cannot be keyed is damaged: it fails the invocation, so it
            // lands in the dead-letter queue instead of vanishing.
            crate::key_for(self.archive.location(), &v)
                .map_err(|e| FunctionError::BadEvent(format!("Records[{i}]: {e}")))?;
            outcomes.push(v);
        }
        let mut keys = Vec::new();
        for (i, v) in outcomes.iter().enumerate() {
            match self.archive.put(v).await {
                Ok(key) => keys.push(key),
                Err(e) => {
                    warn!(record = i, retryable = e.retryable(), error = %e, "could not archive");
                    return Err(if e.retryable() {
                        FunctionError::Transient(e.to_string())
                    } else {
                        FunctionError::Permanent(e.to_string())
                    });
                }
            }
        }
        info!(archived = keys.len(), skipped, location = %self.archive.location(), "archived");
        Ok(json!({ "archived": keys.len(), "skipped": skipped, "keys": keys }))
    }
}
