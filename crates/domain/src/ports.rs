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
use crate::technique::{self, TechniqueRef};

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

/// The change to make: a port range opened to a source on one target (a security group
/// for `port-change`, a network ACL for `nacl-entry`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressRequest {
    /// The target's id (`sg-…`, `acl-…`).
    pub security_group_id: String,
    pub protocol: Protocol,
    pub ports: PortRange,
    pub cidr: String,
    pub description: String,
    /// The experiment record: written onto the rule in the same call (`port-change`), or
    /// onto the target before the change exists (`nacl-entry`), so no change ever exists
    /// without its record.
    pub tags: Vec<(String, String)>,
    /// Ask EC2 whether the call would succeed, without making it.
    pub dry_run: bool,
    /// A person's `chaoslingr run` watches the experiment (the marker's
    /// [`crate::marker::WATCHER`]): for a technique that writes its record onto the
    /// target before the change, so the judge leaves the experiment to its watcher from
    /// the first moment.
    pub watched_by_cli: bool,
}

/// What `AuthorizeSecurityGroupIngress` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeOutcome {
    Created {
        rule_id: String,
    },
    /// Refused by IAM. Only an explicit deny is a preventive control at work (the
    /// `prevented` outcome); see [`DenialSource`].
    Denied {
        code: String,
        message: String,
        source: DenialSource,
    },
    /// Dry run: the call would have succeeded.
    WouldSucceed,
}

/// Who refused a write, as far as AWS tells (EC2's encoded authorization message,
/// decoded with `sts:DecodeAuthorizationMessage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DenialSource {
    /// An explicit `Deny` matched: a service control policy, a permissions boundary or
    /// another deny statement. ChaoSlingr's own policies contain no deny statement, so
    /// this is a preventive control doing its job.
    ExplicitDeny,
    /// No policy allowed the call: ChaoSlingr's own role lacks the permission (or the
    /// group no longer matches its conditions). A fault of the deployment, not a control.
    NotAllowed,
    /// The denial could not be attributed; the text says why.
    Unknown(String),
}

/// What `RevokeSecurityGroupIngress` did; both are success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeOutcome {
    Revoked,
    AlreadyGone,
}

/// The targets of a technique and the changes it makes on them, in three roles: its
/// targets ([`Targets`]), its changes ([`Changes`]) and the marker it keeps on a target
/// ([`Markers`]). Security groups and their ingress rules (`port-change`), network ACLs
/// and their entries (`nacl-entry`), or every registered technique at once (the
/// registry of `chaoslingr-techniques`, which routes each call by the kind of id it
/// names). "Group" and "rule" below stand for any technique's target and change.
pub trait Ingress: Targets + Changes + Markers {}

impl<T: Targets + Changes + Markers> Ingress for T {}

/// The opted-in targets: listing, reading one fresh, and the technique they belong to.
pub trait Targets: Send + Sync {
    /// The techniques this adapter carries out, the default (`port-change`) first.
    fn techniques(&self) -> &'static [TechniqueRef];
    /// The technique whose targets have ids like `target_id`.
    fn technique_of(&self, target_id: &str) -> Option<TechniqueRef> {
        technique::of_target(self.techniques(), target_id)
    }
    /// Every group carrying `tag_key` (the opt-in key, or the marker's experiment-id
    /// key), across every page. Values are checked by the caller.
    fn groups_with_tag_key(&self, tag_key: &str) -> impl Future<Output = Result<Vec<GroupInfo>, CallError>> + Send;
    /// One group, read fresh (used to re-check the opt-in tag right before writing).
    fn group(&self, group_id: &str) -> impl Future<Output = Result<Option<GroupInfo>, CallError>> + Send;
    /// AWS's clock, as the `Date` of the latest EC2 response told it (advanced by the
    /// local monotonic clock since); `None` before any response or when unknown.
    fn aws_time(&self) -> Option<SystemTime> {
        None
    }
}

/// The changes an experiment makes: found, read back, made and reverted.
pub trait Changes: Send + Sync {
    /// Every change carrying an experiment record, across every page.
    fn experiment_rules(&self) -> impl Future<Output = Result<Vec<TaggedRule>, CallError>> + Send;
    /// Every change of one group, recorded or not.
    fn group_rules(&self, group_id: &str) -> impl Future<Output = Result<Vec<TaggedRule>, CallError>> + Send;
    /// One change, read directly by its id (whatever its record), or `None` when it no
    /// longer exists.
    fn rule(&self, rule_id: &str) -> impl Future<Output = Result<Option<TaggedRule>, CallError>> + Send;
    /// Makes the change, with its durable record.
    fn authorize(&self, request: &IngressRequest) -> impl Future<Output = Result<AuthorizeOutcome, CallError>> + Send;
    /// Removes exactly one change; "already gone" is success.
    fn revoke(&self, group_id: &str, rule_id: &str) -> impl Future<Output = Result<RevokeOutcome, CallError>> + Send;
}

/// The marker on a target (see [`crate::marker`]).
pub trait Markers: Send + Sync {
    /// Adds or overwrites tags on a group.
    fn tag_group(
        &self,
        group_id: &str,
        tags: &[(String, String)],
    ) -> impl Future<Output = Result<(), CallError>> + Send;
    /// Removes tags (by key) from a group.
    fn untag_group(&self, group_id: &str, keys: &[&str]) -> impl Future<Output = Result<(), CallError>> + Send;
}

/// A CloudWatch alarm's current state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmState {
    pub name: String,
    pub state: AlarmValue,
    pub updated: Option<SystemTime>,
}

/// The state value of a CloudWatch alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlarmValue {
    Ok,
    Alarm,
    /// Also what an alarm whose state AWS did not say reads as: not firing, not known OK.
    InsufficientData,
}

impl AlarmValue {
    /// CloudWatch's own spelling: `OK`, `ALARM`, `INSUFFICIENT_DATA`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmValue::Ok => "OK",
            AlarmValue::Alarm => "ALARM",
            AlarmValue::InsufficientData => "INSUFFICIENT_DATA",
        }
    }
}

impl std::fmt::Display for AlarmValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The security controls being measured.
pub trait Detectors: Send + Sync {
    /// Current state of the named alarms; alarms that do not exist are absent.
    fn alarm_states(&self, names: &[String]) -> impl Future<Output = Result<Vec<AlarmState>, CallError>> + Send;
    /// Which of the given Config rules already report the target NON_COMPLIANT (as a
    /// resource of the technique's Config resource type).
    fn noncompliant_rules(
        &self,
        technique: TechniqueRef,
        group_id: &str,
        rules: &[String],
    ) -> impl Future<Output = Result<Vec<String>, CallError>> + Send;
    /// The region's AWS Config configuration recorders and their status, for telling a
    /// `config:` detector that cannot see a technique's changes (see
    /// [`crate::recording`]). `None` when this adapter cannot tell: treated as seeing.
    fn config_recorders(
        &self,
    ) -> impl Future<Output = Result<Option<Vec<crate::recording::ConfigRecorder>>, CallError>> + Send {
        async { Ok(None) }
    }
    /// One reading of every detector of the experiment, a change of `technique`.
    fn observe(
        &self,
        technique: TechniqueRef,
        record: &ExperimentRecord,
    ) -> impl Future<Output = Vec<(Detector, Reading)>> + Send;
}

/// Where outcomes go: CloudWatch metrics and the SNS topic.
pub trait Recorder: Send + Sync {
    /// Counts one outcome in the metrics; returns the failures (each already logged).
    fn count(&self, report: &OutcomeReport) -> impl Future<Output = Vec<CallError>> + Send;
    /// Whether this experiment's outcome was already counted in the metrics (by a judge or
    /// a person's run that stopped after `PutMetricData` but before marking it counted):
    /// read back from the metrics themselves. The judge asks before every count, so an
    /// outcome is counted exactly once whatever was interrupted. A recorder whose counts
    /// cannot be read back answers `false`.
    fn already_counted(&self, report: &OutcomeReport) -> impl Future<Output = Result<bool, CallError>> + Send {
        let _ = report;
        async { Ok(false) }
    }
    /// Publishes one outcome (SNS); returns the failures (each already logged).
    fn publish(&self, report: &OutcomeReport) -> impl Future<Output = Vec<CallError>> + Send;
    /// Counts and publishes one outcome; returns the failures so the caller can report
    /// them. Recording never stops a revert.
    fn record(&self, report: &OutcomeReport) -> impl Future<Output = Vec<CallError>> + Send {
        async move {
            let mut failures = self.count(report).await;
            failures.extend(self.publish(report).await);
            failures
        }
    }
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
