//! The outcome archive: every outcome object (`chaoslingr.outcome/v1`) kept in S3, one
//! object per experiment, so that `chaoslingr report` can answer which controls caught
//! what, how fast, over months, and an auditor can fetch any one experiment's record.
//!
//! Objects are keyed `{prefix}outcomes/v1/YYYY/MM/DD/{experiment_id}.json` by the UTC day
//! the experiment concluded:
//!
//! - the experiment id makes a redelivered SNS message overwrite its own object, so the
//!   archive holds each outcome once whatever SNS or Lambda retried;
//! - the date makes a period cheap to read (one listing per month of the period) and the
//!   archive queryable by Athena with date partitions;
//! - the schema version in the path lets a later schema live beside this one.
//!
//! The archive function ([`function::Archiver`]) writes them from the topic; `chaoslingr
//! report --archive s3://BUCKET/PREFIX` reads them ([`Archive::read`]).

pub mod function;

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use chaoslingr_domain::outcome::SCHEMA;
use chaoslingr_domain::time::{parse_rfc3339, rfc3339};
use futures_util::stream::{self, StreamExt};
use serde_json::Value;
use tracing::{debug, info};

/// The folder of this schema's objects under the prefix.
pub const FOLDER: &str = "outcomes/v1/";

/// How many objects are fetched at once when reading a period.
pub const READ_CONCURRENCY: usize = 32;

/// Where the archive lives: `s3://BUCKET/PREFIX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub bucket: String,
    /// Empty, or ends with `/`.
    pub prefix: String,
}

impl FromStr for Location {
    type Err = ArchiveError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |problem: &str| ArchiveError::BadLocation { location: s.to_string(), problem: problem.to_string() };
        let rest = s.strip_prefix("s3://").ok_or_else(|| bad("expected s3://BUCKET or s3://BUCKET/PREFIX"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
            && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !valid_bucket {
            return Err(bad(
                "the bucket name must be 3 to 63 lowercase letters, digits, dots or hyphens, starting and ending with a letter or digit",
            ));
        }
        if prefix.starts_with('/') || prefix.contains("//") {
            return Err(bad("the prefix must not contain an empty folder (`//`)"));
        }
        let prefix = if prefix.is_empty() || prefix.ends_with('/') { prefix.to_string() } else { format!("{prefix}/") };
        Ok(Location { bucket: bucket.to_string(), prefix })
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// What can go wrong keeping or reading outcomes.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("archive location `{location}`: {problem}")]
    BadLocation { location: String, problem: String },
    /// The object is not an outcome this archive keeps.
    #[error("not an archivable outcome: {0}")]
    NotAnOutcome(String),
    /// An S3 call failed.
    #[error("S3 {operation} on {location}: {message}")]
    S3 { operation: &'static str, location: String, code: Option<String>, message: String, retryable: bool },
}

impl ArchiveError {
    /// Whether the same call, made again unchanged, may succeed.
    pub fn retryable(&self) -> bool {
        matches!(self, ArchiveError::S3 { retryable: true, .. })
    }
}

/// Error codes of the moment: the same call, made again, may succeed. Every other
/// answer of S3 (a denial, a missing bucket, a refused request) needs a person.
const TRANSIENT: [&str; 7] = [
    "SlowDown",
    "RequestTimeout",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalError",
    "ServiceUnavailable",
];

fn s3_error<E>(operation: &'static str, location: String, e: &SdkError<E>) -> ArchiveError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let (code, message, retryable) = match e {
        SdkError::ServiceError(s) => {
            let code = s.err().code().map(String::from);
            let status = s.raw().status().as_u16();
            let transient = status >= 500 || status == 429 || code.as_deref().is_some_and(|c| TRANSIENT.contains(&c));
            let message = match (&code, s.err().message()) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                (Some(c), None) => c.clone(),
                (None, _) => format!("HTTP {status}"),
            };
            (code, message, transient)
        }
        // The request could not even be built: the same request fails the same way.
        SdkError::ConstructionFailure(_) => (None, error_chain(e), false),
        other => (None, error_chain(other), true),
    };
    ArchiveError::S3 { operation, location, code, message, retryable }
}

/// The text of a failure that is not an S3 answer (timeout, connection), with its causes.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The key of one outcome object: `{prefix}outcomes/v1/YYYY/MM/DD/{experiment_id}.json`,
/// by the UTC day it concluded. Refuses objects that are not outcomes, and experiment ids
/// that could not be a key of their own (`/`, `..`, control characters).
pub fn key_for(location: &Location, outcome: &Value) -> Result<String, ArchiveError> {
    let text = |k: &str| outcome.get(k).and_then(Value::as_str);
    if text("schema") != Some(SCHEMA) {
        return Err(ArchiveError::NotAnOutcome(format!(
            "schema is {}, expected {SCHEMA}",
            text("schema").map(|s| format!("`{s}`")).unwrap_or_else(|| "missing".into())
        )));
    }
    let id = text("experiment_id").ok_or_else(|| ArchiveError::NotAnOutcome("no experiment_id".into()))?;
    let safe = !id.is_empty()
        && id.len() <= 200
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
        && !id.starts_with('.');
    if !safe {
        return Err(ArchiveError::NotAnOutcome(format!("experiment_id `{id}` cannot name an object")));
    }
    let concluded = text("concluded_at").ok_or_else(|| ArchiveError::NotAnOutcome(format!("{id}: no concluded_at")))?;
    let at = parse_rfc3339(concluded)
        .ok_or_else(|| ArchiveError::NotAnOutcome(format!("{id}: concluded_at `{concluded}` is not RFC 3339")))?;
    Ok(format!("{}{FOLDER}{}/{id}.json", location.prefix, day_folder(at)))
}

/// `YYYY/MM/DD` of `t`, in UTC.
fn day_folder(t: SystemTime) -> String {
    let date = &rfc3339(t)[..10];
    date.replace('-', "/")
}

/// The month folders (`{prefix}outcomes/v1/YYYY/MM/`) that can hold outcomes concluded in
/// `[since, until]`.
pub fn month_prefixes(location: &Location, since: SystemTime, until: SystemTime) -> Vec<String> {
    let month = |t: SystemTime| rfc3339(t)[..7].replace('-', "/");
    let last = month(until);
    let mut out = Vec::new();
    let mut t = since;
    loop {
        let m = month(t);
        if out.last() != Some(&m) {
            out.push(m.clone());
        }
        if m >= last {
            break;
        }
        t += Duration::from_secs(86_400);
    }
    out.into_iter().map(|m| format!("{}{FOLDER}{m}/", location.prefix)).collect()
}

/// Whether a key's day folder lies within `[since, until]` (by day).
fn key_in_days(location: &Location, key: &str, since: SystemTime, until: SystemTime) -> bool {
    let Some(rest) = key.strip_prefix(&location.prefix).and_then(|k| k.strip_prefix(FOLDER)) else {
        return false;
    };
    let day = rest.get(..10).unwrap_or_default();
    let first = day_folder(since);
    let last = day_folder(until);
    rest.ends_with(".json") && day >= first.as_str() && day <= last.as_str()
}

/// What reading a period found.
#[derive(Debug, Default)]
pub struct Read {
    /// Every object of the period that holds JSON.
    pub outcomes: Vec<Value>,
    /// Objects listed in the period's folders.
    pub listed: usize,
    /// Objects that could not be fetched or read as JSON, with why (an object expired
    /// between the listing and the read, a denied read): the report says so and goes on.
    pub unreadable: Vec<String>,
    /// Listing and fetching calls made.
    pub calls: usize,
}

/// The archive in one bucket and prefix.
#[derive(Clone)]
pub struct Archive {
    s3: aws_sdk_s3::Client,
    location: Location,
}

impl Archive {
    /// An archive at `location`, through `config`. With a custom endpoint (an emulator, a
    /// VPC endpoint) requests use path-style addressing, which every S3 endpoint serves.
    pub fn new(config: &SdkConfig, location: Location) -> Self {
        let mut s3 = aws_sdk_s3::config::Builder::from(config);
        if config.endpoint_url().is_some() {
            s3 = s3.force_path_style(true);
        }
        Archive { s3: aws_sdk_s3::Client::from_conf(s3.build()), location }
    }

    /// An archive on a prepared client (tests).
    pub fn with_client(s3: aws_sdk_s3::Client, location: Location) -> Self {
        Archive { s3, location }
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Keeps one outcome object; returns its key. Writing the same outcome again writes
    /// the same key with the same bytes.
    pub async fn put(&self, outcome: &Value) -> Result<String, ArchiveError> {
        let key = key_for(&self.location, outcome)?;
        let body = serde_json::to_vec(outcome).expect("JSON values serialize");
        self.s3
            .put_object()
            .bucket(&self.location.bucket)
            .key(&key)
            .content_type("application/json")
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| s3_error("PutObject", format!("s3://{}/{key}", self.location.bucket), &e))?;
        debug!(key, "archived");
        Ok(key)
    }

    /// Every outcome object concluded on the days `[since, until]` touch: one listing
    /// per month folder, then the objects fetched [`READ_CONCURRENCY`] at a time.
    pub async fn read(&self, since: SystemTime, until: SystemTime) -> Result<Read, ArchiveError> {
        let mut keys = Vec::new();
        let mut calls = 0;
        for prefix in month_prefixes(&self.location, since, until) {
            let mut pages =
                self.s3.list_objects_v2().bucket(&self.location.bucket).prefix(&prefix).into_paginator().send();
            while let Some(page) = pages.next().await {
                calls += 1;
                let page =
                    page.map_err(|e| s3_error("ListObjectsV2", format!("s3://{}/{prefix}", self.location.bucket), &e))?;
                keys.extend(
                    page.contents()
                        .iter()
                        .filter_map(|o| o.key())
                        .filter(|k| key_in_days(&self.location, k, since, until))
                        .map(String::from),
                );
            }
        }
        let listed = keys.len();
        let fetched: Vec<Result<(String, Vec<u8>), ArchiveError>> = stream::iter(keys)
            .map(|key| async move {
                let object = self
                    .s3
                    .get_object()
                    .bucket(&self.location.bucket)
                    .key(&key)
                    .send()
                    .await
                    .map_err(|e| s3_error("GetObject", format!("s3://{}/{key}", self.location.bucket), &e))?;
                let bytes = object.body.collect().await.map_err(|e| ArchiveError::S3 {
                    operation: "GetObject",
                    location: format!("s3://{}/{key}", self.location.bucket),
                    code: None,
                    message: e.to_string(),
                    retryable: true,
                })?;
                Ok::<_, ArchiveError>((key, bytes.into_bytes().to_vec()))
            })
            .buffer_unordered(READ_CONCURRENCY)
            .collect()
            .await;
        calls += listed;
        let mut read = Read { listed, calls, ..Read::default() };
        let mut bodies = Vec::new();
        for f in fetched {
            match f {
                Ok(body) => bodies.push(body),
                Err(e) => read.unreadable.push(e.to_string()),
            }
        }
        bodies.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, body) in bodies {
            match serde_json::from_slice::<Value>(&body) {
                Ok(v) => read.outcomes.push(v),
                Err(e) => read.unreadable.push(format!("s3://{}/{key}: not JSON: {e}", self.location.bucket)),
            }
        }
        info!(location = %self.location, listed, calls, "read the archive");
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn loc(s: &str) -> Location {
        s.parse().unwrap()
    }

    fn at(s: &str) -> SystemTime {
        parse_rfc3339(s).unwrap()
    }

    #[test]
    fn locations_are_parsed_and_refused_clearly() {
        assert_eq!(loc("s3://my-bucket"), Location { bucket: "my-bucket".into(), prefix: String::new() });
        assert_eq!(loc("s3://my-bucket/"), Location { bucket: "my-bucket".into(), prefix: String::new() });
        assert_eq!(loc("s3://my-bucket/a/b").prefix, "a/b/");
        assert_eq!(loc("s3://my.bucket-1/chaoslingr/").to_string(), "s3://my.bucket-1/chaoslingr/");
        for (bad, says) in [
            ("my-bucket", "expected s3://"),
            ("https://my-bucket", "expected s3://"),
            ("s3://My_Bucket", "lowercase"),
            ("s3://ab", "3 to 63"),
            ("s3://-bucket", "starting and ending"),
            ("s3://bucket//x", "empty folder"),
        ] {
            let e = bad.parse::<Location>().unwrap_err().to_string();
            assert!(e.contains(says) && e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn an_outcome_is_keyed_by_the_day_it_concluded_and_its_id() {
        let o = json!({"schema": SCHEMA, "experiment_id": "cs-20261202t1200-ab12", "concluded_at": "2026-12-02T23:59:59.500Z"});
        assert_eq!(
            key_for(&loc("s3://bkt/chaoslingr/"), &o).unwrap(),
            "chaoslingr/outcomes/v1/2026/12/02/cs-20261202t1200-ab12.json"
        );
        assert_eq!(key_for(&loc("s3://bucket"), &o).unwrap(), "outcomes/v1/2026/12/02/cs-20261202t1200-ab12.json");
        for (bad, says) in [
            (json!({"schema": "chaoslingr.started/v1", "experiment_id": "cs-1"}), "schema is `chaoslingr.started/v1`"),
            (json!({"experiment_id": "cs-1"}), "schema is missing"),
            (json!({"schema": SCHEMA, "concluded_at": "2026-12-02T00:00:00Z"}), "no experiment_id"),
            (json!({"schema": SCHEMA, "experiment_id": "../x", "concluded_at": "2026-12-02T00:00:00Z"}), "cannot name"),
            (json!({"schema": SCHEMA, "experiment_id": "a/b", "concluded_at": "2026-12-02T00:00:00Z"}), "cannot name"),
            (json!({"schema": SCHEMA, "experiment_id": "cs-1"}), "no concluded_at"),
            (json!({"schema": SCHEMA, "experiment_id": "cs-1", "concluded_at": "noon"}), "not RFC 3339"),
        ] {
            let e = key_for(&loc("s3://bucket"), &bad).unwrap_err();
            assert!(matches!(e, ArchiveError::NotAnOutcome(_)));
            assert!(e.to_string().contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn a_period_is_read_month_by_month_and_day_by_day() {
        let l = loc("s3://bkt/p/");
        assert_eq!(
            month_prefixes(&l, at("2026-10-20T00:00:00Z"), at("2026-12-02T10:00:00Z")),
            ["p/outcomes/v1/2026/10/", "p/outcomes/v1/2026/11/", "p/outcomes/v1/2026/12/"]
        );
        assert_eq!(
            month_prefixes(&l, at("2025-12-31T23:00:00Z"), at("2026-01-01T01:00:00Z")),
            ["p/outcomes/v1/2025/12/", "p/outcomes/v1/2026/01/"]
        );
        assert_eq!(month_prefixes(&l, at("2026-12-01T00:00:00Z"), at("2026-12-02T00:00:00Z")).len(), 1);
        let (since, until) = (at("2026-10-20T12:00:00Z"), at("2026-11-02T00:00:00Z"));
        assert!(key_in_days(&l, "p/outcomes/v1/2026/10/20/cs-1.json", since, until));
        assert!(key_in_days(&l, "p/outcomes/v1/2026/11/02/cs-1.json", since, until));
        assert!(!key_in_days(&l, "p/outcomes/v1/2026/10/19/cs-1.json", since, until));
        assert!(!key_in_days(&l, "p/outcomes/v1/2026/11/03/cs-1.json", since, until));
        assert!(!key_in_days(&l, "p/outcomes/v1/2026/10/20/notes.txt", since, until));
        assert!(!key_in_days(&l, "q/outcomes/v1/2026/10/20/cs-1.json", since, until));
    }
}
