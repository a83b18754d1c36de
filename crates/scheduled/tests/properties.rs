//! Property tests for the events the scheduled functions accept: the inject and judge
//! events (a schedule's input, which whoever may edit the schedule writes). The
//! notifier's SNS events are tested with it, in `crates/slack/tests/function.rs`.
//!
//! Whatever the event, reading it never panics; what is accepted is exactly what was
//! meant, and overrides can never widen what the configuration allows (a window past
//! the 24 h cap, a detector list that does not fit its tag).

use std::time::Duration;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use chaoslingr_domain::experiment::MAX_WINDOW;
use chaoslingr_domain::tags::MAX_TAG_VALUE;
use chaoslingr_domain::{detector, Settings};
use chaoslingr_scheduled::event::{inject_overrides, judge_event, InjectOverrides};
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
            "target", "detectors", "window", "dry_run", "detail-type", "source", "detail", "version", "time",
            "resources",
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
        select(vec!["Scheduled Event", "aws.events", "2026-11-26T12:15:00Z", "sg-0abc", "config:x", "30m", ""])
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
            experiments: Vec::new(),
            target: i.target.clone(),
            detectors: i.detectors.as_ref().map(|d| d.iter().map(|s| s.trim()).collect::<Vec<_>>().join(",")),
            window: i.window.as_ref().map(|w| w.trim().to_string()),
            ports: None,
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
    /// fields, and any target it names is a security group or network ACL id.
    #[test]
    fn arbitrary_inject_events_never_panic_and_never_widen_the_configuration(event in json_value()) {
        let Ok(o) = inject_overrides(&event) else { return Ok(()) };
        if let Some(t) = &o.target {
            let hex = t.strip_prefix("sg-").or_else(|| t.strip_prefix("acl-"));
            prop_assert!(hex.is_some_and(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit())), "{}", t);
        }
        if let Value::Object(fields) = &event {
            let envelope = fields.get("source") == Some(&json!("aws.events"))
                && fields.get("detail-type") == Some(&json!("Scheduled Event"));
            if envelope {
                prop_assert_eq!(&o, &InjectOverrides::default());
            } else {
                let allowed = ["experiment", "target", "detectors", "window", "ports", "dry_run"];
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
            prop_assert!(e.to_string().contains(&format!("unknown field `{key}`")), "{}", e);
            prop_assert!(!e.retryable());
        } else if let Ok(o) = read {
            if let Ok(s) = o.apply(&Settings::default()) {
                check_settings_within_bounds(&s)?;
            }
        }
    }

    /// The judge takes no overrides: only nothing, `{}` or the EventBridge envelope (well
    /// formed, as EventBridge sends it).
    #[test]
    fn the_judge_accepts_only_empty_or_scheduled_events(event in json_value(), detail in json_value()) {
        let accepted = judge_event(&event).is_ok();
        let expected = match &event {
            Value::Null => true,
            Value::Object(o) => {
                o.is_empty()
                    || (o.get("source") == Some(&json!("aws.events"))
                        && o.get("detail-type") == Some(&json!("Scheduled Event"))
                        && serde_json::from_value::<EventBridgeEvent>(event.clone()).is_ok())
            }
            _ => false,
        };
        prop_assert_eq!(accepted, expected);
        let envelope = json!({"version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "detail": detail});
        prop_assert!(judge_event(&envelope).is_ok());
        prop_assert_eq!(inject_overrides(&envelope).ok(), Some(InjectOverrides::default()));
    }
}
