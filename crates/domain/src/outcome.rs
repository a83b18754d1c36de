//! Outcomes and the outcome report: the JSON object published on SNS and printed by
//! `chaoslingr run --json` (schema `chaoslingr.outcome/v1`).

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// How an experiment ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// A preventive control (SCP, permission boundary) refused to open the port.
    Prevented,
    /// Every configured detector noticed the port within the window (or, at the deadline,
    /// at least one did; the others are reported as gaps).
    Detected,
    /// Something removed the rule before the deadline.
    Remediated,
    /// Nothing noticed within the window: a security gap.
    Undetected,
    /// Pre-flight refused to start, or the run was interrupted; the reason says which.
    Aborted,
    /// The experiment could not be carried out or judged (an error, not a finding).
    Failed,
}

impl Outcome {
    pub const ALL: [Outcome; 6] = [
        Outcome::Prevented,
        Outcome::Detected,
        Outcome::Remediated,
        Outcome::Undetected,
        Outcome::Aborted,
        Outcome::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Prevented => "prevented",
            Outcome::Detected => "detected",
            Outcome::Remediated => "remediated",
            Outcome::Undetected => "undetected",
            Outcome::Aborted => "aborted",
            Outcome::Failed => "failed",
        }
    }

    /// The CloudWatch count metric of this outcome.
    pub fn metric_name(self) -> &'static str {
        match self {
            Outcome::Prevented => "Prevented",
            Outcome::Detected => "Detected",
            Outcome::Remediated => "Remediated",
            Outcome::Undetected => "Undetected",
            Outcome::Aborted => "Aborted",
            Outcome::Failed => "Failed",
        }
    }

    /// Whether the hypothesis ("we would detect, block or remediate it") held.
    pub fn hypothesis_held(self) -> bool {
        matches!(self, Outcome::Prevented | Outcome::Detected | Outcome::Remediated)
    }

    /// Outcomes that only make sense once a rule was injected.
    pub fn requires_injection(self) -> bool {
        matches!(self, Outcome::Detected | Outcome::Remediated | Outcome::Undetected)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Outcome {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == s).ok_or_else(|| format!("unknown outcome `{s}`"))
    }
}

/// One detector's result in an outcome report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DetectionReport {
    /// The detector string (`config:<rule>`, `alarm:<name>`, `securityhub…`) or `remediation`.
    pub detector: String,
    pub detected: bool,
    /// From injection to the detector's own timestamp; `null` when not detected.
    pub seconds_to_detect: Option<f64>,
    /// What was seen (or why nothing was), for a human reading the message.
    pub evidence: String,
    /// The detector cannot see this kind of change at all (AWS Config does not record
    /// the resource type continuously): reported, but not a gap of the control.
    pub could_not_see: bool,
}

/// The outcome object of the contract (`chaoslingr.outcome/v1`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutcomeReport {
    pub schema: &'static str,
    pub experiment_id: String,
    pub experiment: &'static str,
    pub account: Option<String>,
    pub region: Option<String>,
    /// The kind of resource the technique changes, as in its ARN: `security-group`,
    /// `network-acl`.
    pub target_type: &'static str,
    /// The target's id (`sg-…`, `acl-…`); `null` when nothing was planned.
    pub target_id: Option<String>,
    /// The change's id (`sgr-…`; `acl-…/<rule number>` for a network ACL entry); `null`
    /// when nothing was injected.
    pub change_id: Option<String>,
    /// `target_id` when the target is a security group, else `null` (kept from the first
    /// version of the schema, when every experiment targeted a security group).
    pub security_group_id: Option<String>,
    /// `change_id` when the target is a security group, else `null`.
    pub security_group_rule_id: Option<String>,
    pub protocol: Option<String>,
    pub from_port: Option<u16>,
    pub to_port: Option<u16>,
    pub cidr: Option<String>,
    pub injected_at: Option<String>,
    pub concluded_at: String,
    pub outcome: Outcome,
    /// Why the experiment ended this way, in one sentence.
    pub reason: String,
    pub detections: Vec<DetectionReport>,
    /// Whether the injected rule is gone (true when nothing was injected).
    pub reverted: bool,
    pub dry_run: bool,
    /// A scheduled pre-flight abort (kill switch on, outside the allowed hours, maximum
    /// active reached): counted and archived, but never posted to Slack, so a schedule
    /// that is paused on purpose makes no noise. Published with the message attribute
    /// `quiet` so the notifier's subscription filters it out.
    pub quiet: bool,
}

pub const SCHEMA: &str = "chaoslingr.outcome/v1";

/// The `target_type` of security groups, whose outcomes also fill `security_group_id`.
pub const SECURITY_GROUP: &str = "security-group";

impl OutcomeReport {
    /// The detectors that were configured but did not notice: the gaps to fix.
    pub fn gaps(&self) -> Vec<&str> {
        self.detections
            .iter()
            .filter(|d| !d.detected && !d.could_not_see && d.detector != crate::detector::REMEDIATION)
            .map(|d| d.detector.as_str())
            .collect()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("outcome reports always serialize")
    }
}

/// The start of an unattended experiment (`chaoslingr.started/v1`), announced by the
/// scheduled inject before any detector could have noticed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StartReport {
    pub schema: &'static str,
    pub experiment_id: String,
    pub experiment: &'static str,
    pub account: Option<String>,
    pub region: Option<String>,
    pub target_type: &'static str,
    pub target_id: String,
    pub change_id: String,
    /// The target and change ids again when the target is a security group, else `null`.
    pub security_group_id: Option<String>,
    pub security_group_rule_id: Option<String>,
    pub protocol: String,
    pub from_port: u16,
    pub to_port: u16,
    pub cidr: String,
    pub injected_at: String,
    pub deadline: String,
    pub detectors: Vec<String>,
}

pub const START_SCHEMA: &str = "chaoslingr.started/v1";

impl StartReport {
    pub fn new(
        technique: crate::technique::TechniqueRef,
        record: &crate::experiment::ExperimentRecord,
        region: Option<String>,
    ) -> Self {
        let is_group = technique.arn_resource == SECURITY_GROUP;
        StartReport {
            schema: START_SCHEMA,
            experiment_id: record.id.to_string(),
            experiment: technique.name,
            account: record.account.clone(),
            region,
            target_type: technique.arn_resource,
            target_id: record.security_group_id.clone(),
            change_id: record.security_group_rule_id.clone(),
            security_group_id: is_group.then(|| record.security_group_id.clone()),
            security_group_rule_id: is_group.then(|| record.security_group_rule_id.clone()),
            protocol: record.protocol.to_string(),
            from_port: record.ports.from,
            to_port: record.ports.to,
            cidr: record.cidr.clone(),
            injected_at: crate::time::rfc3339_millis(record.injected_at),
            deadline: crate::time::rfc3339(record.deadline),
            detectors: record.detectors.iter().map(ToString::to_string).collect(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("start reports always serialize")
    }
}
