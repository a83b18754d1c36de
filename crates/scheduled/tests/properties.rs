//! Property tests for the events the scheduled functions accept: the inject and judge
//! events (a schedule's input, which whoever may edit the schedule writes) and the SNS
//! events the notifier receives, read end to end from what the product publishes to the
//! Slack payload.
//!
//! Whatever the event, reading it never panics; what is accepted is exactly what was
//! meant, and overrides can never widen what the configuration allows (a window past
//! the 24 h cap, a detector list that does not fit its tag).

use std::time::{Duration, UNIX_EPOCH};

use chaoslingr_domain::experiment::{ExperimentRecord, MAX_WINDOW, PORT_CHANGE};
use chaoslingr_domain::outcome::{DetectionReport, StartReport, SCHEMA};
use chaoslingr_domain::tags::MAX_TAG_VALUE;
use chaoslingr_domain::{detector, Outcome, OutcomeReport, PortRange, Protocol, Settings};
use chaoslingr_scheduled::event::{inject_overrides, judge_event, InjectOverrides};
use chaoslingr_scheduled::notify::sns_messages;
use chaoslingr_slack::message::{FALLBACK_TEXT_MAX, HEADER_MAX, SECTION_TEXT_MAX};
use chaoslingr_slack::{parse_notice, slack_payload, Notice};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{json, Map, Value};

// ---------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------

/// Any characters, control characters and every plane of unicode included. (Built from
/// `char`s rather than a regex: regex strategies are slow in debug builds.)
fn any_chars(len: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    vec(any::<char>(), len).prop_map(String::from_iter)
}

/// Keys that are the accepted fields, the envelope's, or anything.
fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(vec![
            "target", "detectors", "window", "dry_run", "detail-type", "source", "detail", "version",
            "Records", "EventSource", "Sns", "Message",
        ])
        .prop_map(String::from),
        1 => any_chars(0..10),
    ]
}

/// Any JSON value a few levels deep, its strings often meaningful to the parsers.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("JSON numbers are finite", |f| f.is_finite()).prop_map(Value::from),
        select(vec!["Scheduled Event", "aws.events", "aws:sns", "sg-0abc", "config:x", "30m", ""])
            .prop_map(Value::from),
        any_chars(0..30).prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(json_key(), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Window strings: well-formed, out of range (zero, u64::MAX seconds, centuries), and
/// not durations at all.
fn window_text() -> impl Strategy<Value = String> {
    prop_oneof![
        (1u64..=1440).prop_map(|m| format!("{m}m")),
        (0u64..200_000).prop_map(|s| format!("{s}s")),
        Just(format!("{}s", u64::MAX)),
        Just(format!("{}h", u64::MAX / 3600 + 1)),
        Just("99999999999999999999999999999y".to_string()),
        (any::<u64>(), select(vec!["ns", "ms", "s", "m", "h", "d", "w", "y"])).prop_map(|(n, u)| format!("{n}{u}")),
        Just("24h 1s".to_string()),
        any_chars(0..12),
    ]
}

fn detector_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (select(vec!["config:", "alarm:", "securityhub:"]), "[a-z0-9-]{1,20}").prop_map(|(k, n)| format!("{k}{n}")),
        1 => Just("securityhub".to_string()),
        1 => any_chars(0..20),
        1 => (1usize..400).prop_map(|n| format!("alarm:{}", "x".repeat(n))),
    ]
}

/// What a schedule's author may mean to override, well-formed.
#[derive(Debug, Clone)]
struct Intended {
    target: Option<String>,
    detectors: Option<Vec<String>>,
    window: Option<String>,
    dry_run: Option<bool>,
}

fn intended() -> impl Strategy<Value = Intended> {
    (
        proptest::option::of("sg-[0-9a-fA-F]{1,17}"),
        proptest::option::of(vec(detector_text(), 0..4)),
        proptest::option::of(window_text().prop_filter("not blank", |w| !w.trim().is_empty())),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(|(target, detectors, window, dry_run)| Intended { target, detectors, window, dry_run })
}

fn as_event(i: &Intended, padding: &str) -> Value {
    let mut event = Map::new();
    if let Some(t) = &i.target {
        event.insert("target".into(), json!(format!("{padding}{t}{padding}")));
    }
    if let Some(d) = &i.detectors {
        event.insert("detectors".into(), json!(d));
    }
    if let Some(w) = &i.window {
        event.insert("window".into(), json!(w));
    }
    if let Some(d) = i.dry_run {
        event.insert("dry_run".into(), json!(d));
    }
    Value::Object(event)
}

/// The settings an accepted override produces may never be wider than the product allows.
fn check_settings_within_bounds(s: &Settings) -> Result<(), TestCaseError> {
    prop_assert!(s.window >= Duration::from_secs(10) && s.window <= MAX_WINDOW, "window {:?}", s.window);
    prop_assert!(detector::format_list(&s.detectors).len() <= MAX_TAG_VALUE);
    prop_assert!(s.check().is_ok());
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The inject and judge events
// ---------------------------------------------------------------------------------------

proptest! {
    /// A well-formed override event is read as meant, and applying it yields settings
    /// within the product's bounds or a refusal naming the event field.
    #[test]
    fn inject_events_are_read_as_meant(i in intended(), padding in select(vec!["", " ", "\t\n"])) {
        // GIVEN an event from a schedule's input
        let event = as_event(&i, padding);
        // WHEN the inject function reads it
        let read = inject_overrides(&event);
        // THEN it has exactly the overrides meant
        let expected = InjectOverrides {
            target: i.target.clone(),
            detectors: i.detectors.as_ref().map(|d| d.iter().map(|s| s.trim()).collect::<Vec<_>>().join(",")),
            window: i.window.as_ref().map(|w| w.trim().to_string()),
            dry_run: i.dry_run,
        };
        prop_assert_eq!(read.as_ref().ok(), Some(&expected), "{:?}", read);

        // AND applied, it never widens the configuration
        match expected.apply(&Settings::default()) {
            Ok(s) => {
                check_settings_within_bounds(&s)?;
                if let Some(d) = i.dry_run {
                    prop_assert_eq!(s.dry_run, d);
                }
            }
            Err(e) => {
                prop_assert!(!e.retryable());
                let message = e.to_string();
                prop_assert!(message.contains("event field") || message.contains("CHAOSLINGR_"), "{}", message);
            }
        }
    }

    /// Any JSON is read or refused, never a panic; what is read holds only the accepted
    /// fields, and any target it names is a security group id.
    #[test]
    fn arbitrary_inject_events_never_panic_and_never_widen_the_configuration(event in json_value()) {
        let Ok(o) = inject_overrides(&event) else { return Ok(()) };
        if let Some(t) = &o.target {
            let hex = t.strip_prefix("sg-");
            prop_assert!(hex.is_some_and(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit())), "{}", t);
        }
        if let Value::Object(fields) = &event {
            let envelope = fields.get("source") == Some(&json!("aws.events"))
                && fields.get("detail-type") == Some(&json!("Scheduled Event"));
            if envelope {
                prop_assert_eq!(&o, &InjectOverrides::default());
            } else {
                let allowed = ["target", "detectors", "window", "dry_run"];
                prop_assert!(fields.keys().all(|k| allowed.contains(&k.as_str())));
            }
        } else {
            prop_assert!(event.is_null());
        }
        if let Ok(s) = o.apply(&Settings::default()) {
            check_settings_within_bounds(&s)?;
        }
    }

    /// A valid event with one field changed to anything, or one field added, is read or
    /// refused, never a panic; an unknown field is refused by name.
    #[test]
    fn mutated_inject_events_are_refused_naming_the_field(
        i in intended(),
        key in json_key(),
        value in json_value(),
    ) {
        let mut event = as_event(&i, "");
        event.as_object_mut().unwrap().insert(key.clone(), value);
        let read = inject_overrides(&event);
        let known = ["target", "detectors", "window", "dry_run"].contains(&key.as_str());
        if !known {
            let e = read.expect_err("an unknown field is refused");
            prop_assert!(e.to_string().contains("unknown field(s)"), "{}", e);
            prop_assert!(!e.retryable());
        } else if let Ok(o) = read {
            if let Ok(s) = o.apply(&Settings::default()) {
                check_settings_within_bounds(&s)?;
            }
        }
    }

    /// The judge takes no overrides: only nothing, `{}` or the EventBridge envelope.
    #[test]
    fn the_judge_accepts_only_empty_or_scheduled_events(event in json_value(), detail in json_value()) {
        let accepted = judge_event(&event).is_ok();
        let expected = match &event {
            Value::Null => true,
            Value::Object(o) => {
                o.is_empty()
                    || (o.get("source") == Some(&json!("aws.events"))
                        && o.get("detail-type") == Some(&json!("Scheduled Event")))
            }
            _ => false,
        };
        prop_assert_eq!(accepted, expected);
        let envelope = json!({"version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "detail": detail});
        prop_assert!(judge_event(&envelope).is_ok());
        prop_assert_eq!(inject_overrides(&envelope).ok(), Some(InjectOverrides::default()));
    }
}

// ---------------------------------------------------------------------------------------
// The notifier: SNS events, from the product's reports to the Slack payload
// ---------------------------------------------------------------------------------------

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
        },
    )
}

/// An SNS event as Lambda delivers it, one record per message.
fn sns_event(messages: &[String]) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            json!({
                "EventSource": "aws:sns", "EventVersion": "1.0",
                "EventSubscriptionArn": "arn:aws:sns:eu-west-1:111122223333:chaoslingr:1",
                "Sns": {"Type": "Notification", "MessageId": format!("m-{i}"), "Message": m,
                        "MessageAttributes": {"outcome": {"Type": "String", "Value": "x"}}}
            })
        })
        .collect();
    json!({ "Records": records })
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
        let event = sns_event(&published);

        // WHEN the notifier reads the event
        let messages = sns_messages(&event).expect("an SNS event is read");

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
        let report = StartReport::new(&record, region);
        let messages = sns_messages(&sns_event(&[report.to_json()])).expect("an SNS event is read");

        // WHEN the notifier reads it THEN it has the start as published
        let Ok(Notice::Started(s)) = parse_notice(&messages[0]) else {
            return Err(TestCaseError::fail(format!("not read as a start: {}", messages[0])));
        };
        prop_assert_eq!(&s.experiment_id, &report.experiment_id);
        prop_assert_eq!(s.security_group_id.as_ref(), Some(&report.security_group_id));
        prop_assert_eq!(s.security_group_rule_id.as_ref(), Some(&report.security_group_rule_id));
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
        let Ok(messages) = sns_messages(&event) else { return Ok(()) };
        let records = event["Records"].as_array();
        prop_assert!(records.is_some_and(|r| r.len() == messages.len() && !r.is_empty()));
        for (record, message) in records.unwrap().iter().zip(&messages) {
            prop_assert_eq!(&record["EventSource"], "aws:sns");
            prop_assert_eq!(record["Sns"]["Message"].as_str(), Some(message.as_str()));
        }
    }

    /// A real SNS event with one record's field changed to anything is read or refused,
    /// never a panic, and a record that is not from SNS is never read.
    #[test]
    fn mutated_sns_events_are_refused_or_read_whole(
        messages in vec(any_chars(0..20), 1..4),
        which in any::<prop::sample::Index>(),
        path in select(vec!["EventSource", "Sns", "Message", "Records"]),
        value in json_value(),
    ) {
        let mut event = sns_event(&messages);
        let i = which.index(messages.len());
        match path {
            "Records" => event["Records"] = value,
            "Message" => event["Records"][i]["Sns"]["Message"] = value,
            field => event["Records"][i][field] = value,
        }
        if let Ok(read) = sns_messages(&event) {
            let records = event["Records"].as_array().unwrap();
            prop_assert_eq!(read.len(), records.len());
            prop_assert!(records.iter().all(|r| r["EventSource"] == "aws:sns"));
        }
    }
}
