//! The producer → consumer contract of the SNS messages: what the domain publishes
//! (`OutcomeReport`, `StartReport`) is exactly what this notifier reads.
//!
//! Every field the notifier reads is optional (an aborted run has no group), so a field
//! renamed or added on one side would otherwise pass unnoticed and show as missing in
//! Slack. These tests pin both sides: the producer's field names are listed here, and
//! every value must arrive unchanged.

use std::collections::BTreeSet;
use std::time::{Duration, UNIX_EPOCH};

use chaoslingr_domain::experiment::{deadline_for, ExperimentRecord, PortRange, Protocol};
use chaoslingr_domain::outcome::{DetectionReport, Outcome, OutcomeReport, StartReport, SCHEMA};
use chaoslingr_slack::{parse_notice, Notice};
use serde_json::Value;

/// `port-change` as the producer describes it (the techniques crate is not a dependency
/// of the notifier).
static PORT_CHANGE_TECHNIQUE: chaoslingr_domain::technique::Technique = chaoslingr_domain::technique::Technique {
    name: "port-change",
    summary: "",
    target: "security group",
    targets: "security groups",
    target_prefix: "sg-",
    change: "ingress rule",
    change_prefix: "sgr-",
    config_resource_type: "AWS::EC2::SecurityGroup",
    arn_resource: "security-group",
    record_first: false,
};
const PORT_CHANGE: &str = "port-change";

const OUTCOME_FIELDS: [&str; 22] = [
    "schema",
    "experiment_id",
    "experiment",
    "account",
    "region",
    "target_type",
    "target_id",
    "change_id",
    "security_group_id",
    "security_group_rule_id",
    "protocol",
    "from_port",
    "to_port",
    "cidr",
    "injected_at",
    "concluded_at",
    "outcome",
    "reason",
    "detections",
    "reverted",
    "dry_run",
    "quiet",
];

const DETECTION_FIELDS: [&str; 5] = ["detector", "detected", "seconds_to_detect", "evidence", "could_not_see"];

const START_FIELDS: [&str; 17] = [
    "schema",
    "experiment_id",
    "experiment",
    "account",
    "region",
    "target_type",
    "target_id",
    "change_id",
    "security_group_id",
    "security_group_rule_id",
    "protocol",
    "from_port",
    "to_port",
    "cidr",
    "injected_at",
    "deadline",
    "detectors",
];

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().expect("an object").keys().cloned().collect()
}

fn outcome(outcome: Outcome) -> OutcomeReport {
    OutcomeReport {
        schema: SCHEMA,
        experiment_id: "cs-20261202T101500Z-0a1b2c".into(),
        experiment: PORT_CHANGE,
        account: Some("123456789012".into()),
        region: Some("eu-west-1".into()),
        target_type: "security-group",
        target_id: Some("sg-0123456789abcdef0".into()),
        change_id: Some("sgr-0fedcba9876543210".into()),
        security_group_id: Some("sg-0123456789abcdef0".into()),
        security_group_rule_id: Some("sgr-0fedcba9876543210".into()),
        protocol: Some("udp".into()),
        from_port: Some(40_000),
        to_port: Some(40_004),
        cidr: Some("0.0.0.0/0".into()),
        injected_at: Some("2026-12-02T10:15:00.123Z".into()),
        concluded_at: "2026-12-02T10:30:01.456Z".into(),
        outcome,
        reason: "1 of 2 detectors noticed; alarm:fw did not".into(),
        detections: vec![
            DetectionReport {
                detector: "config:vpc-sg-open-only-to-authorized-ports".into(),
                detected: true,
                seconds_to_detect: Some(61.25),
                evidence: "NON_COMPLIANT recorded at 2026-12-02T10:16:01.373Z".into(),
                could_not_see: false,
            },
            DetectionReport {
                detector: "alarm:fw".into(),
                detected: false,
                seconds_to_detect: None,
                evidence: "".into(),
                could_not_see: false,
            },
        ],
        reverted: true,
        dry_run: false,
        quiet: false,
    }
}

#[test]
fn a_quiet_outcome_is_read_as_quiet_and_others_are_not() {
    let mut report = outcome(Outcome::Aborted);
    assert!(!parse_notice(&report.to_json()).unwrap().is_quiet());
    report.quiet = true;
    assert!(parse_notice(&report.to_json()).unwrap().is_quiet());
    // A message from a producer before `quiet` existed is not quiet.
    let mut old: Value = serde_json::from_str(&report.to_json()).unwrap();
    old.as_object_mut().unwrap().remove("quiet");
    assert!(!parse_notice(&old.to_string()).unwrap().is_quiet());
}

#[test]
fn every_outcome_field_the_domain_publishes_reaches_the_notifier_unchanged() {
    for o in Outcome::ALL {
        // GIVEN an outcome message as the domain publishes it
        let report = outcome(o);
        let json = report.to_json();
        let value: Value = serde_json::from_str(&json).unwrap();

        // THEN the producer's fields are exactly the ones this contract lists
        let expected: BTreeSet<String> = OUTCOME_FIELDS.iter().map(|f| f.to_string()).collect();
        assert_eq!(keys(&value), expected, "the outcome message's fields changed: update the notifier and this test");
        for d in value["detections"].as_array().unwrap() {
            assert_eq!(keys(d), DETECTION_FIELDS.iter().map(|f| f.to_string()).collect());
        }

        // WHEN the notifier reads it THEN every value arrives as it was sent
        let Notice::Outcome(n) = parse_notice(&json).unwrap() else { panic!("read as a start") };
        assert_eq!(n.experiment_id, report.experiment_id);
        assert_eq!(n.experiment.as_deref(), Some(report.experiment));
        assert_eq!(n.account, report.account);
        assert_eq!(n.region, report.region);
        assert_eq!(n.target_type.as_deref(), Some(report.target_type));
        assert_eq!(n.target_id, report.target_id);
        assert_eq!(n.change_id, report.change_id);
        assert_eq!(n.security_group_id, report.security_group_id);
        assert_eq!(n.security_group_rule_id, report.security_group_rule_id);
        assert_eq!(n.protocol, report.protocol);
        assert_eq!((n.from_port, n.to_port), (report.from_port, report.to_port));
        assert_eq!(n.cidr, report.cidr);
        assert_eq!(n.injected_at, report.injected_at);
        assert_eq!(n.concluded_at.as_deref(), Some(report.concluded_at.as_str()));
        assert_eq!(n.outcome, o.as_str());
        assert_eq!(n.reason.as_deref(), Some(report.reason.as_str()));
        assert_eq!(n.reverted, Some(report.reverted));
        assert_eq!(n.dry_run, Some(report.dry_run));
        assert_eq!(n.quiet, Some(report.quiet));
        assert_eq!(n.detections.len(), report.detections.len());
        for (got, sent) in n.detections.iter().zip(&report.detections) {
            assert_eq!(got.detector, sent.detector);
            assert_eq!(got.detected, sent.detected);
            assert_eq!(got.seconds_to_detect, sent.seconds_to_detect);
            assert_eq!(got.evidence.as_deref(), Some(sent.evidence.as_str()));
            assert_eq!(got.could_not_see, sent.could_not_see);
        }
    }
}

#[test]
fn an_outcome_of_a_run_that_chose_nothing_is_still_read() {
    // GIVEN an aborted run's message: no group, no rule, no ports
    let mut report = outcome(Outcome::Aborted);
    report.target_id = None;
    report.change_id = None;
    report.security_group_id = None;
    report.security_group_rule_id = None;
    report.protocol = None;
    report.from_port = None;
    report.to_port = None;
    report.cidr = None;
    report.injected_at = None;
    report.detections.clear();

    // WHEN the notifier reads it THEN the missing parts are missing, not an error
    let Notice::Outcome(n) = parse_notice(&report.to_json()).unwrap() else { panic!("read as a start") };
    assert_eq!((n.security_group_id, n.from_port, n.injected_at), (None, None, None));
    assert_eq!(n.outcome, "aborted");
}

#[test]
fn every_start_field_the_domain_publishes_reaches_the_notifier_unchanged() {
    // GIVEN a start message as the inject function publishes it
    let at = UNIX_EPOCH + Duration::from_millis(1_796_206_500_123);
    let record = ExperimentRecord {
        id: "cs-20261202T101500Z-0a1b2c".parse().unwrap(),
        security_group_id: "sg-0123456789abcdef0".into(),
        security_group_rule_id: "sgr-0fedcba9876543210".into(),
        account: Some("123456789012".into()),
        protocol: Protocol::Tcp,
        ports: PortRange::new(20_000, 20_001).unwrap(),
        cidr: "0.0.0.0/0".into(),
        injected_at: at,
        deadline: deadline_for(at, Duration::from_secs(900)),
        detectors: vec!["config:restricted-common-ports".parse().unwrap(), "securityhub".parse().unwrap()],
    };
    let start = StartReport::new(&PORT_CHANGE_TECHNIQUE, &record, Some("eu-west-1".into()));
    let json = start.to_json();
    let value: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(keys(&value), START_FIELDS.iter().map(|f| f.to_string()).collect());

    // WHEN the notifier reads it THEN every value arrives as it was sent
    let Notice::Started(n) = parse_notice(&json).unwrap() else { panic!("read as an outcome") };
    assert_eq!(n.experiment_id, start.experiment_id);
    assert_eq!(n.experiment.as_deref(), Some(start.experiment));
    assert_eq!(n.account, start.account);
    assert_eq!(n.region, start.region);
    assert_eq!(n.target_type.as_deref(), Some(start.target_type));
    assert_eq!(n.target_id.as_deref(), Some(start.target_id.as_str()));
    assert_eq!(n.change_id.as_deref(), Some(start.change_id.as_str()));
    assert_eq!(n.security_group_id, start.security_group_id);
    assert_eq!(n.security_group_rule_id, start.security_group_rule_id);
    assert_eq!(n.protocol.as_deref(), Some(start.protocol.as_str()));
    assert_eq!((n.from_port, n.to_port), (Some(start.from_port), Some(start.to_port)));
    assert_eq!(n.cidr.as_deref(), Some(start.cidr.as_str()));
    assert_eq!(n.injected_at.as_deref(), Some(start.injected_at.as_str()));
    assert_eq!(n.deadline.as_deref(), Some(start.deadline.as_str()));
    assert_eq!(n.detectors, start.detectors);
}

#[test]
fn a_network_acl_outcome_names_its_target_and_entry_and_leaves_the_group_fields_null() {
    // GIVEN a nacl-entry outcome as the domain builds it: target and change, no group
    let mut report = outcome(Outcome::Detected);
    report.experiment = "nacl-entry";
    report.target_type = "network-acl";
    report.target_id = Some("acl-0123456789abcdef0".into());
    report.change_id = Some("acl-0123456789abcdef0/32766".into());
    report.security_group_id = None;
    report.security_group_rule_id = None;

    // WHEN the notifier reads it and renders it for Slack
    let json = report.to_json();
    let Notice::Outcome(n) = parse_notice(&json).unwrap() else { panic!("read as a start") };
    let slack = chaoslingr_slack::slack_payload(&json).unwrap().to_string();

    // THEN the ACL and its entry are shown as a network ACL, and the technique is named
    assert_eq!(n.experiment.as_deref(), Some("nacl-entry"));
    assert!(slack.contains("Network ACL") && slack.contains("acl-0123456789abcdef0/32766"), "{slack}");
    assert!(!slack.contains("Security group"), "{slack}");
}
