//! The notifier as a Lambda function: SNS events read end to end, from what the product
//! publishes to the Slack payload (property tests), and the handler posting to a webhook
//! receiver on 127.0.0.1 whose URL comes from a mocked SSM parameter.
//!
//! Whatever the event, reading it never panics; a record that is not from SNS is never
//! read; and a malformed event posts nothing.

mod support;

use std::time::{Duration, UNIX_EPOCH};

use aws_smithy_mocks::{mock, Rule};
use chaoslingr_domain::experiment::ExperimentRecord;
use chaoslingr_domain::outcome::{DetectionReport, StartReport, SCHEMA};
use chaoslingr_domain::{Outcome, OutcomeReport, PortRange, Protocol};
use chaoslingr_slack::function::{sns_event, sns_messages, FunctionError};
use chaoslingr_slack::message::{FALLBACK_TEXT_MAX, HEADER_MAX, SECTION_TEXT_MAX};
use chaoslingr_slack::{parse_notice, slack_payload, Notice, Notifier, Notify, WebhookSource};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{json, Map, Value};
use support::*;

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

// ---------------------------------------------------------------------------------------
// Strategies and helpers
// ---------------------------------------------------------------------------------------

/// Any characters, control characters and every plane of unicode included. (Built from
/// `char`s rather than a regex: regex strategies are slow in debug builds.)
fn any_chars(len: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    vec(any::<char>(), len).prop_map(String::from_iter)
}

/// Keys of an SNS event, or anything.
fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(vec![
            "Records", "EventSource", "EventVersion", "EventSubscriptionArn", "Sns", "Type", "MessageId",
            "TopicArn", "Subject", "Message", "Timestamp", "MessageAttributes",
        ])
        .prop_map(String::from),
        1 => any_chars(0..10),
    ]
}

/// Any JSON value a few levels deep, its strings often meaningful to the parser.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("JSON numbers are finite", |f| f.is_finite()).prop_map(Value::from),
        select(vec!["aws:sns", "aws:sqs", "Notification", "1.0", "2026-11-26T12:15:00.000Z", ""]).prop_map(Value::from),
        any_chars(0..30).prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(json_key(), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// An SNS event as Lambda delivers it, one record per message.
fn sns_delivery(messages: &[String]) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            json!({
                "EventSource": "aws:sns", "EventVersion": "1.0",
                "EventSubscriptionArn": "arn:aws:sns:eu-west-1:111122223333:chaoslingr:1",
                "Sns": {
                    "Type": "Notification", "MessageId": format!("m-{i}"),
                    "TopicArn": "arn:aws:sns:eu-west-1:111122223333:chaoslingr", "Subject": null, "Message": m,
                    "Timestamp": "2026-11-26T12:15:00.000Z", "SignatureVersion": "1", "Signature": "c2lnbmF0dXJl",
                    "SigningCertUrl": "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0.pem",
                    "UnsubscribeUrl": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe",
                    "MessageAttributes": {"outcome": {"Type": "String", "Value": "x"}}
                }
            })
        })
        .collect();
    json!({ "Records": records })
}

/// What the binary does with a payload before handling it: the messages of an SNS event.
fn read(event: &Value) -> Result<Vec<String>, FunctionError> {
    let event = sns_event(event.clone())?;
    Ok(sns_messages(&event)?.into_iter().map(String::from).collect())
}

/// Strings the product may put in a report: tag values, detector names and evidence are
/// partly written by others.
fn report_string() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => any_chars(0..30),
        1 => Just("<!channel> &amp; `x`".to_string()),
        1 => (1usize..4000, select(vec!["&", "<", "é", "🦀", "a"])).prop_map(|(n, s)| s.repeat(n)),
    ]
}

fn detection_report() -> impl Strategy<Value = DetectionReport> {
    (
        prop_oneof![3 => (select(vec!["config:", "alarm:"]), any::<u32>()).prop_map(|(k, n)| format!("{k}{n}")), 1 => Just("remediation".to_string()), 1 => report_string()],
        any::<bool>(),
        proptest::option::of((0u64..86_400_000).prop_map(|ms| ms as f64 / 1000.0)),
        report_string(),
    )
        .prop_map(|(detector, detected, seconds_to_detect, evidence)| DetectionReport {
            could_not_see: false,
            detector,
            detected,
            seconds_to_detect,
            evidence,
        })
}

fn outcome_report() -> impl Strategy<Value = OutcomeReport> {
    let where_ = (
        report_string(),
        proptest::option::of(report_string()),
        proptest::option::of(report_string()),
        proptest::option::of(report_string()),
        proptest::option::of(report_string()),
    );
    let what = (
        proptest::option::of(select(vec!["tcp", "udp"]).prop_map(String::from)),
        proptest::option::of(any::<u16>()),
        proptest::option::of(any::<u16>()),
        proptest::option::of(report_string()),
        proptest::option::of(report_string()),
        report_string(),
    );
    let end = (
        select(Outcome::ALL.to_vec()),
        report_string(),
        prop_oneof![3 => vec(detection_report(), 0..5), 1 => vec(detection_report(), 0..120)],
        any::<bool>(),
        any::<bool>(),
    );
    (where_, what, end).prop_map(
        |(
            (experiment_id, account, region, security_group_id, security_group_rule_id),
            (protocol, from_port, to_port, cidr, injected_at, concluded_at),
            (outcome, reason, detections, reverted, dry_run),
        )| OutcomeReport {
            schema: SCHEMA,
            experiment_id,
            experiment: PORT_CHANGE,
            account,
            region,
            target_type: "security-group",
            target_id: security_group_id.clone(),
            change_id: security_group_rule_id.clone(),
            security_group_id,
            security_group_rule_id,
            protocol,
            from_port,
            to_port,
            cidr,
            injected_at,
            concluded_at,
            outcome,
            reason,
            detections,
            reverted,
            dry_run,
            quiet: false,
        },
    )
}

/// The few limits that show the payload was rendered at all; the slack crate's own
/// properties check every Block Kit limit.
fn check_rendered(payload: &Value) -> Result<(), TestCaseError> {
    let len = |v: &Value| v.as_str().map_or(usize::MAX, |s| s.chars().count());
    prop_assert!(len(&payload["text"]) <= FALLBACK_TEXT_MAX);
    let blocks = payload["attachments"][0]["blocks"].as_array();
    prop_assert!(blocks.is_some_and(|b| !b.is_empty() && b.len() <= 50));
    for block in blocks.unwrap() {
        match block["type"].as_str() {
            Some("header") => prop_assert!(len(&block["text"]["text"]) <= HEADER_MAX),
            _ => {
                if let Some(t) = block.get("text") {
                    prop_assert!(len(&t["text"]) <= SECTION_TEXT_MAX);
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Every outcome the product publishes reaches the notifier field for field and
    /// renders within Slack's limits.
    #[test]
    fn published_outcomes_are_read_back_from_sns_and_rendered(reports in vec(outcome_report(), 1..4)) {
        // GIVEN the product's outcome reports, delivered in one SNS event
        let published: Vec<String> = reports.iter().map(OutcomeReport::to_json).collect();
        let event = sns_delivery(&published);

        // WHEN the notifier reads the event
        let messages = read(&event).expect("an SNS event is read");

        // THEN it has every message, in order, and each reads back as its report
        prop_assert_eq!(&messages, &published);
        for (message, report) in messages.iter().zip(&reports) {
            let Ok(Notice::Outcome(o)) = parse_notice(message) else {
                return Err(TestCaseError::fail(format!("not read as an outcome: {message}")));
            };
            prop_assert_eq!(&o.experiment_id, &report.experiment_id);
            prop_assert_eq!(o.experiment.as_deref(), Some(PORT_CHANGE));
            prop_assert_eq!(&o.account, &report.account);
            prop_assert_eq!(&o.region, &report.region);
            prop_assert_eq!(&o.security_group_id, &report.security_group_id);
            prop_assert_eq!(&o.security_group_rule_id, &report.security_group_rule_id);
            prop_assert_eq!(&o.protocol, &report.protocol);
            prop_assert_eq!((o.from_port, o.to_port), (report.from_port, report.to_port));
            prop_assert_eq!(&o.cidr, &report.cidr);
            prop_assert_eq!(&o.injected_at, &report.injected_at);
            prop_assert_eq!(o.concluded_at.as_ref(), Some(&report.concluded_at));
            prop_assert_eq!(o.outcome.as_str(), report.outcome.as_str());
            prop_assert_eq!(o.reason.as_ref(), Some(&report.reason));
            prop_assert_eq!((o.reverted, o.dry_run), (Some(report.reverted), Some(report.dry_run)));
            prop_assert_eq!(o.detections.len(), report.detections.len());
            for (got, sent) in o.detections.iter().zip(&report.detections) {
                prop_assert_eq!(&got.detector, &sent.detector);
                prop_assert_eq!(got.detected, sent.detected);
                prop_assert_eq!(got.seconds_to_detect, sent.seconds_to_detect);
                prop_assert_eq!(got.evidence.as_ref(), Some(&sent.evidence));
            }
            // AND it renders within Slack's limits
            check_rendered(&slack_payload(message).expect("renders"))?;
        }
    }

    /// Every start the scheduled inject announces reaches the notifier and renders.
    #[test]
    fn published_starts_are_read_back_from_sns_and_rendered(
        group in "sg-[0-9a-f]{8,17}", rule in "sgr-[0-9a-f]{8,17}",
        account in proptest::option::of("[0-9]{12}"), region in proptest::option::of(report_string()),
        protocol in prop_oneof![Just(Protocol::Tcp), Just(Protocol::Udp)],
        from in any::<u16>(), extra in 0u16..6, cidr in report_string(),
        at_ms in 0u64..253_402_214_400_000, window_s in 10u64..=86_400,
        names in vec("[a-z0-9-]{1,20}", 0..8),
    ) {
        // GIVEN a record as the inject writes it and its start report, delivered on SNS
        let injected_at = UNIX_EPOCH + Duration::from_millis(at_ms);
        let record = ExperimentRecord {
            id: "cs-20261123T184700Z-abcdef".parse().unwrap(),
            security_group_id: group,
            security_group_rule_id: rule,
            account,
            protocol,
            ports: PortRange::new(from, from.saturating_add(extra)).unwrap(),
            cidr,
            injected_at,
            deadline: injected_at + Duration::from_secs(window_s),
            detectors: names.iter().map(|n| format!("alarm:{n}").parse().unwrap()).collect(),
        };
        let report = StartReport::new(&PORT_CHANGE_TECHNIQUE, &record, region);
        let messages = read(&sns_delivery(&[report.to_json()])).expect("an SNS event is read");

        // WHEN the notifier reads it THEN it has the start as published
        let Ok(Notice::Started(s)) = parse_notice(&messages[0]) else {
            return Err(TestCaseError::fail(format!("not read as a start: {}", messages[0])));
        };
        prop_assert_eq!(&s.experiment_id, &report.experiment_id);
        prop_assert_eq!(&s.security_group_id, &report.security_group_id);
        prop_assert_eq!(s.target_id.as_ref(), Some(&report.target_id));
        prop_assert_eq!(&s.security_group_rule_id, &report.security_group_rule_id);
        prop_assert_eq!((s.from_port, s.to_port), (Some(report.from_port), Some(report.to_port)));
        prop_assert_eq!(s.protocol.as_ref(), Some(&report.protocol));
        prop_assert_eq!(s.cidr.as_ref(), Some(&report.cidr));
        prop_assert_eq!(s.deadline.as_ref(), Some(&report.deadline));
        prop_assert_eq!(&s.detectors, &report.detectors);
        check_rendered(&slack_payload(&messages[0]).expect("renders"))?;
    }
}

proptest! {
    /// Any JSON is an SNS event or refused, never a panic; what is read has one message
    /// per record, every record from SNS.
    #[test]
    fn arbitrary_sns_events_never_panic(event in json_value()) {
        let Ok(messages) = read(&event) else { return Ok(()) };
        let records = event["Records"].as_array();
        prop_assert!(records.is_some_and(|r| r.len() == messages.len() && !r.is_empty()));
        for (record, message) in records.unwrap().iter().zip(&messages) {
            prop_assert_eq!(&record["EventSource"], "aws:sns");
            prop_assert_eq!(record["Sns"]["Message"].as_str(), Some(message.as_str()));
        }
    }

    /// A real SNS event with one record's field changed to anything is read or refused,
    /// never a panic; a record that is not from SNS is never read, and a refusal is final.
    #[test]
    fn mutated_sns_events_are_refused_or_read_whole(
        messages in vec(any_chars(0..20), 1..4),
        which in any::<prop::sample::Index>(),
        path in select(vec!["EventSource", "Sns", "Message", "Timestamp", "MessageAttributes", "Records"]),
        value in json_value(),
    ) {
        let mut event = sns_delivery(&messages);
        let i = which.index(messages.len());
        match path {
            "Records" => event["Records"] = value,
            "Message" | "Timestamp" | "MessageAttributes" => event["Records"][i]["Sns"][path] = value,
            field => event["Records"][i][field] = value,
        }
        match read(&event) {
            Ok(read) => {
                let records = event["Records"].as_array().unwrap();
                prop_assert_eq!(read.len(), records.len());
                prop_assert!(records.iter().all(|r| r["EventSource"] == "aws:sns"));
                for (record, message) in records.iter().zip(&read) {
                    prop_assert_eq!(record["Sns"]["Message"].as_str(), Some(message.as_str()));
                }
            }
            Err(e) => {
                prop_assert_eq!(e.error_type(), "ChaoSlingr.NotRetryable.BadEvent");
                prop_assert!(!e.retryable());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The handler
// ---------------------------------------------------------------------------------------

/// A notifier function whose webhook URL, in a mocked SSM parameter, is `url`.
fn notify_posting_to(url: &str) -> Notify {
    let url = url.to_string();
    let rule: Rule = mock!(aws_sdk_ssm::Client::get_parameter).then_output(move || parameter(&url));
    let source = WebhookSource::Ssm { parameter: "/chaoslingr/slack-webhook".into() };
    Notify::new(Notifier::with_clients(ssm(&[&rule]), secretsmanager(&[]), source).unwrap())
}

fn outcome_message(id: &str) -> String {
    json!({"schema": "chaoslingr.outcome/v1", "experiment_id": id, "outcome": "undetected",
           "security_group_id": "sg-123", "protocol": "udp", "from_port": 14603, "to_port": 14605,
           "reverted": true, "detections": []})
    .to_string()
}

#[tokio::test]
async fn every_record_is_posted_in_order() {
    // GIVEN a webhook receiver and an SNS event with two outcomes and a quiet one (a
    // scheduled pre-flight abort the subscription filter should have kept away)
    let receiver = Receiver::start().await;
    let notify = notify_posting_to(&receiver.webhook_url());
    let quiet = json!({"schema": "chaoslingr.outcome/v1", "experiment_id": "cs-q", "outcome": "aborted",
                       "reason": "the kill switch is on", "detections": [], "quiet": true})
    .to_string();
    let event = sns_event(sns_delivery(&[outcome_message("cs-1"), quiet, outcome_message("cs-2")])).unwrap();

    // WHEN the function handles it
    let answer = notify.handle(event).await.unwrap();

    // THEN both outcomes were posted, in order, and the quiet one was not
    assert_eq!(answer, json!({"posted": 2, "quiet": 1}));
    let texts: Vec<String> = receiver.received().iter().map(|r| r.json().to_string()).collect();
    assert_eq!(texts.len(), 2);
    assert!(texts[0].contains("cs-1") && texts[1].contains("cs-2"), "{texts:?}");
}

#[tokio::test]
async fn a_malformed_event_posts_nothing() {
    // GIVEN a webhook receiver, and events of which one record is not a ChaoSlingr message
    // or not from SNS
    let receiver = Receiver::start().await;
    let notify = notify_posting_to(&receiver.webhook_url());
    let unreadable = sns_delivery(&[outcome_message("cs-1"), r#"{"schema": "something/v9"}"#.to_string()]);
    let mut not_sns = sns_delivery(&[outcome_message("cs-1"), outcome_message("cs-2")]);
    not_sns["Records"][1]["EventSource"] = json!("aws:sqs");

    for (event, expected) in [(unreadable, "unknown schema `something/v9`"), (not_sns, "Records[1].EventSource")] {
        // WHEN the function handles it
        let e = notify.handle(sns_event(event).unwrap()).await.unwrap_err();

        // THEN it fails as a bad event, naming the problem, and nothing was posted
        assert_eq!(e.error_type(), "ChaoSlingr.NotRetryable.BadEvent", "{e}");
        assert!(e.to_string().contains(expected), "{e}");
    }
    assert!(receiver.received().is_empty());
}

#[tokio::test]
async fn delivery_failures_keep_their_error_types() {
    // GIVEN a webhook nobody listens on, and a parameter the function may not read
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let down = notify_posting_to(&format!("http://127.0.0.1:{port}{SECRET_PATH}"));
    let denied_rule = mock!(aws_sdk_ssm::Client::get_parameter)
        .then_http_response(|| json_error(400, "AccessDeniedException", "not authorized"));
    let source = WebhookSource::Ssm { parameter: "/chaoslingr/slack-webhook".into() };
    let denied = Notify::new(Notifier::with_clients(ssm(&[&denied_rule]), secretsmanager(&[]), source).unwrap());
    let event = || sns_event(sns_delivery(&[outcome_message("cs-1")])).unwrap();

    // WHEN each handles an outcome
    let unreachable = down.handle(event()).await.unwrap_err();
    let forbidden = denied.handle(event()).await.unwrap_err();

    // THEN the closed port is worth retrying and the denied read is not, and neither
    // error shows the webhook's secret path
    assert_eq!(unreachable.error_type(), "ChaoSlingr.Retryable.AwsError", "{unreachable}");
    assert!(unreachable.retryable());
    assert_no_secret(&unreachable.to_string());
    assert_eq!(forbidden.error_type(), "ChaoSlingr.NotRetryable.AwsError", "{forbidden}");
    assert!(!forbidden.retryable());
    let diagnostic: lambda_runtime::Diagnostic = forbidden.into();
    assert_eq!(diagnostic.error_type, "ChaoSlingr.NotRetryable.AwsError");
}
