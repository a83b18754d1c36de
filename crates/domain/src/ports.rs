//! What the lifecycle needs from the world, one small trait per capability. The AWS
//! adapters (`chaoslingr-aws`) implement them on the SDK; tests implement them in memory.

use std::future::Future;
use std::time::{Duration, SystemTime};

use crate::detector::Detector;
use crate::experiment::{ExperimentRecord, PortRange, Protocol};
use crate::judge::Reading;
use crate::outcome::{OutcomeReport, StartReport};
use crate::selection::GroupInfo;
use crate::tags::TaggedRule;

/// How a call to the world failed, as far as the lifecycle cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Refused by IAM, an SCP or a permission boundary.
    Denied,
    /// The thing asked about does not exist.
    NotFound,
    /// Throttling, 5xx, timeouts: worth retrying.
    Transient,
    /// Anything else.
    Other,
}

/// A failed call, with the service's error code when it gave one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} failed: {message}{}", code.as_ref().map(|c| format!(" ({c})")).unwrap_or_default())]
pub struct CallError {
    pub operation: &'static str,
    pub kind: FailureKind,
    pub code: Option<String>,
    pub message: String,
}

impl CallError {
    pub fn new(operation: &'static str, kind: FailureKind, code: Option<String>, message: impl Into<String>) -> Self {
        CallError { operation, kind, code, message: message.into() }
    }
}

/// The rule to create: everything `AuthorizeSecurityGroupIngress` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressRequest {
    pub security_group_id: String,
    pub protocol: Protocol,
    pub ports: PortRange,
    pub cidr: String,
    pub description: String,
    /// Written onto the rule in the same call, so no untagged rule ever exists.
    pub tags: Vec<(String, String)>,
    /// Ask EC2 whether the call would succeed, without making it.
    pub dry_run: bool,
}

/// What `AuthorizeSecurityGroupIngress` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeOutcome {
    Created {
        rule_id: String,
    },
    /// Refused by a preventive control: the `prevented` outcome.
    Denied {
        code: String,
        message: String,
    },
    /// Dry run: the call would have succeeded.
    WouldSucceed,
}

/// What `RevokeSecurityGroupIngress` did; both are success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeOutcome {
    Revoked,
    AlreadyGone,
}

/// Security groups and their ingress rules.
pub trait Ingress: Send + Sync {
    /// Every group carrying the opt-in tag key, across every page. The value is checked by
    /// the caller so that it can be compared case-insensitively.
    fn opted_in_groups(&self, tag_key: &str) -> impl Future<Output = Result<Vec<GroupInfo>, CallError>> + Send;
    /// One group, read fresh (used to re-check the opt-in tag right before writing).
    fn group(&self, group_id: &str) -> impl Future<Output = Result<Option<GroupInfo>, CallError>> + Send;
    /// Every ingress rule carrying the experiment-id tag, across every page.
    fn experiment_rules(&self) -> impl Future<Output = Result<Vec<TaggedRule>, CallError>> + Send;
    /// One rule, or `None` when it no longer exists.
    fn rule(&self, rule_id: &str) -> impl Future<Output = Result<Option<TaggedRule>, CallError>> + Send;
    fn authorize(&self, request: &IngressRequest) -> impl Future<Output = Result<AuthorizeOutcome, CallError>> + Send;
    fn revoke(&self, group_id: &str, rule_id: &str) -> impl Future<Output = Result<RevokeOutcome, CallError>> + Send;
    /// Adds or overwrites tags on a security group (the marker of an unattended
    /// experiment, see [`crate::marker`]).
    fn tag_group(
        &self,
        group_id: &str,
        tags: &[(String, String)],
    ) -> impl Future<Output = Result<(), CallError>> + Send;
    /// Removes tags (by key) from a security group.
    fn untag_group(&self, group_id: &str, keys: &[&str]) -> impl Future<Output = Result<(), CallError>> + Send;
}

/// A CloudWatch alarm's current state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmState {
    pub name: String,
    /// `OK`, `ALARM` or `INSUFFICIENT_DATA`.
    pub state: String,
    pub updated: Option<SystemTime>,
}

/// The security controls being measured.
pub trait Detectors: Send + Sync {
    /// Current state of the named alarms; alarms that do not exist are absent.
    fn alarm_states(&self, names: &[String]) -> impl Future<Output = Result<Vec<AlarmState>, CallError>> + Send;
    /// Which of the given Config rules already report the group NON_COMPLIANT.
    fn noncompliant_rules(
        &self,
        group_id: &str,
        rules: &[String],
    ) -> impl Future<Output = Result<Vec<String>, CallError>> + Send;
    /// One reading of every detector of the experiment.
    fn observe(&self, record: &ExperimentRecord) -> impl Future<Output = Vec<(Detector, Reading)>> + Send;
}

/// Where outcomes go: CloudWatch metrics and the SNS topic.
pub trait Recorder: Send + Sync {
    /// Records one outcome; returns the failures (each already logged) so the caller can
    /// report them. Recording never stops a revert.
    fn record(&self, report: &OutcomeReport) -> impl Future<Output = Vec<CallError>> + Send;
    /// Announces that an unattended experiment started (metric `Started`, one SNS
    /// message); returns what failed. Recording nothing is a valid implementation.
    fn record_start(&self, start: &StartReport) -> impl Future<Output = Vec<CallError>> + Send {
        let _ = start;
        async { Vec::new() }
    }
}

/// Wall-clock time and waiting, so tests can run a 15-minute window in microseconds.
pub trait Clock: Send + Sync {
    fn now(&self) -> SystemTime;
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(duration)
    }
}
