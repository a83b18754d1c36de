//! The events the scheduled functions accept, validated before any AWS call.
//!
//! Accepted, for both functions: nothing (`null`), `{}`, and the EventBridge
//! "Scheduled Event" envelope (an EventBridge rule instead of EventBridge Scheduler), read
//! as an [`EventBridgeEvent`]. The inject function also takes overrides from a schedule's
//! input ([`InjectInput`]):
//! `{"experiment": ["port-change", "nacl-entry"], "target": "sg-…", "detectors": ["config:…", "alarm:…"],
//! "window": "30m", "dry_run": true}`. `experiment` names one technique, or several (an
//! array, or a comma-separated string) of which each run picks one at random.
//! Any other field, or a field of the wrong type, is refused with the field named.

use std::fmt;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use chaoslingr_domain::config;
use chaoslingr_domain::Settings;
use serde::de::{DeserializeOwned, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use crate::error::FunctionError;

/// What a scheduled function was invoked with.
#[derive(Debug, Clone, PartialEq)]
pub enum ScheduledEvent<T> {
    /// The envelope an EventBridge rule sends: it carries no input.
    Rule(Box<EventBridgeEvent>),
    /// The schedule's own input; `null` reads as the input's default.
    Input(T),
}

/// The inject function's input from a schedule. Every field may be left out or null.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InjectInput {
    /// The technique, or the techniques one is picked from at random for each run;
    /// otherwise the default technique (or the target's).
    pub experiment: Option<NameList>,
    /// The target to experiment on (`sg-…`, `acl-…`) instead of one chosen at random.
    pub target: Option<String>,
    /// The detectors to watch instead of `CHAOSLINGR_DETECTORS`.
    pub detectors: Option<NameList>,
    /// How long to wait for a detection (`30m`, `1h`), instead of `CHAOSLINGR_WINDOW`.
    pub window: Option<String>,
    /// `random` or `risky`, instead of `CHAOSLINGR_PORTS`.
    pub ports: Option<String>,
    /// Plan only, change nothing.
    pub dry_run: Option<bool>,
}

/// Names (detectors, techniques), as an array of strings or as one comma-separated string.
#[derive(Debug, Clone, PartialEq)]
pub enum NameList {
    Names(Vec<String>),
    Text(String),
}

impl<'de> Deserialize<'de> for NameList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct List;
        impl<'de> Visitor<'de> for List {
            type Value = NameList;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of strings or a comma-separated string")
            }

            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<NameList, E> {
                Ok(NameList::Text(s.to_string()))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NameList, A::Error> {
                let mut names = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(name) = seq.next_element::<String>()? {
                    names.push(name);
                }
                Ok(NameList::Names(names))
            }
        }
        deserializer.deserialize_any(List)
    }
}

impl NameList {
    /// The names, trimmed, without blanks.
    pub fn names(&self) -> Vec<String> {
        self.joined().split(',').map(str::trim).filter(|n| !n.is_empty()).map(String::from).collect()
    }

    /// The names, trimmed, as one comma-separated list.
    fn joined(&self) -> String {
        match self {
            NameList::Names(names) => names.iter().map(|n| n.trim()).collect::<Vec<_>>().join(","),
            NameList::Text(text) => text.trim().to_string(),
        }
    }
}

/// The judge function's input: it takes no fields.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JudgeInput {}

/// What a scheduled inject may override for one invocation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InjectOverrides {
    /// The techniques one run picks from; empty for the default (or the target's).
    pub experiments: Vec<String>,
    pub target: Option<String>,
    pub detectors: Option<String>,
    pub window: Option<String>,
    pub ports: Option<String>,
    pub dry_run: Option<bool>,
}

/// The envelope EventBridge rules send, told apart from a schedule's input by these two
/// fields.
fn is_scheduled_event(obj: &Map<String, Value>) -> bool {
    obj.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event")
        && obj.get("source").and_then(Value::as_str) == Some("aws.events")
}

/// Reads a scheduled function's event: `null`, the EventBridge envelope, or the input `T`.
pub fn read<T: DeserializeOwned + Default>(event: &Value) -> Result<ScheduledEvent<T>, FunctionError> {
    match event {
        Value::Null => Ok(ScheduledEvent::Input(T::default())),
        Value::Object(o) if is_scheduled_event(o) => {
            typed(event, "the EventBridge \"Scheduled Event\" envelope: ").map(|e| ScheduledEvent::Rule(Box::new(e)))
        }
        Value::Object(_) => typed(event, "").map(ScheduledEvent::Input),
        other => {
            Err(FunctionError::BadEvent(format!("the event must be a JSON object (or empty), got {}", kind(other))))
        }
    }
}

/// Deserializes `event`, naming the field at fault.
fn typed<T: DeserializeOwned>(event: &Value, context: &str) -> Result<T, FunctionError> {
    serde_path_to_error::deserialize(event).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // An unknown field's path is the field itself, which serde's message already names;
        // a missing field is reported at its parent.
        if path == "." || inner.contains(&format!("`{path}`")) {
            FunctionError::BadEvent(format!("{context}{inner}"))
        } else {
            FunctionError::BadEvent(format!("{context}field `{path}`: {inner}"))
        }
    })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A string field, trimmed; `None` when left out, refused when blank.
fn non_blank(value: Option<String>, name: &str) -> Result<Option<String>, FunctionError> {
    match value {
        None => Ok(None),
        Some(s) if s.trim().is_empty() => Err(FunctionError::BadEvent(format!("field `{name}` is empty"))),
        Some(s) => Ok(Some(s.trim().to_string())),
    }
}

impl InjectInput {
    /// Checks what serde cannot (a target that is a group id, no blank strings) and
    /// normalises the rest.
    pub fn overrides(self) -> Result<InjectOverrides, FunctionError> {
        let target = non_blank(self.target, "target")?;
        if let Some(t) = &target {
            if let Err(why) = chaoslingr_domain::technique::check_target_id(chaoslingr_techniques::all(), t) {
                return Err(FunctionError::BadEvent(format!("field `target`: {why}")));
            }
        }
        let experiments = self.experiment.as_ref().map(NameList::names).unwrap_or_default();
        if self.experiment.is_some() && experiments.is_empty() {
            return Err(FunctionError::BadEvent("field `experiment` is empty".into()));
        }
        for name in &experiments {
            chaoslingr_techniques::by_name(name)
                .map_err(|e| FunctionError::BadEvent(format!("field `experiment`: {e}")))?;
        }
        Ok(InjectOverrides {
            experiments,
            target,
            detectors: self.detectors.as_ref().map(NameList::joined),
            window: non_blank(self.window, "window")?,
            ports: non_blank(self.ports, "ports")?,
            dry_run: self.dry_run,
        })
    }
}

/// Reads the inject function's event.
pub fn inject_overrides(event: &Value) -> Result<InjectOverrides, FunctionError> {
    match read::<InjectInput>(event)? {
        ScheduledEvent::Rule(_) => Ok(InjectOverrides::default()),
        ScheduledEvent::Input(input) => input.overrides(),
    }
}

impl InjectOverrides {
    /// The cold-start settings with these overrides applied and re-validated.
    pub fn apply(&self, base: &Settings) -> Result<Settings, FunctionError> {
        let bad = |e: chaoslingr_domain::ConfigError| FunctionError::BadEvent(e.to_string());
        let mut s = base.clone();
        if let Some(d) = &self.detectors {
            s.detectors = config::detectors(d, "event field `detectors`").map_err(bad)?;
        }
        if let Some(w) = &self.window {
            s.window = config::window(w, "event field `window`").map_err(bad)?;
        }
        if let Some(p) = &self.ports {
            s.port_choice = config::port_choice(p, "event field `ports`").map_err(bad)?;
        }
        if let Some(d) = self.dry_run {
            s.dry_run = d;
        }
        s.check().map_err(|mut e| {
            if self.detectors.is_some() && e.source_name == "CHAOSLINGR_DETECTORS" {
                e.source_name = "event field `detectors`".into();
            }
            bad(e)
        })?;
        Ok(s)
    }
}

/// Reads the judge function's event: it takes no overrides.
pub fn judge_event(event: &Value) -> Result<(), FunctionError> {
    read::<JudgeInput>(event).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_and_scheduled_events_have_no_overrides() {
        for e in [
            Value::Null,
            json!({}),
            json!({"version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}),
            // An envelope carries no input: fields named like ours in it are not overrides.
            json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}, "dry_run": true}),
        ] {
            assert_eq!(inject_overrides(&e).unwrap(), InjectOverrides::default(), "{e}");
            judge_event(&e).unwrap();
        }
        let nulls = json!({"target": null, "detectors": null, "window": null, "dry_run": null});
        assert_eq!(inject_overrides(&nulls).unwrap(), InjectOverrides::default());
    }

    #[test]
    fn overrides_are_read_and_applied() {
        let o = inject_overrides(&json!({
            "target": "sg-0abc123",
            "detectors": ["config:open-ports", "alarm:fw"],
            "window": "20m",
            "dry_run": true
        }))
        .unwrap();
        assert_eq!(o.target.as_deref(), Some("sg-0abc123"));
        let s = o.apply(&Settings::default()).unwrap();
        assert_eq!(s.detectors.len(), 2);
        assert_eq!(s.window, std::time::Duration::from_secs(1200));
        assert!(s.dry_run);
        let techniques =
            inject_overrides(&json!({"experiment": ["port-change", " nacl-entry"], "ports": "risky"})).unwrap();
        assert_eq!(techniques.experiments, ["port-change", "nacl-entry"]);
        let risky = techniques.apply(&Settings::default()).unwrap();
        assert_eq!(risky.port_choice, chaoslingr_domain::port_choice::PortChoice::Risky);
        let one = inject_overrides(&json!({"experiment": "nacl-entry", "target": "acl-0abc"})).unwrap();
        assert_eq!(
            (one.experiments.as_slice(), one.target.as_deref()),
            (["nacl-entry".to_string()].as_slice(), Some("acl-0abc"))
        );
        let comma = inject_overrides(&json!({"detectors": "securityhub"})).unwrap();
        assert_eq!(comma.apply(&Settings::default()).unwrap().detectors.len(), 1);
    }

    #[test]
    fn malformed_events_are_refused_naming_the_field() {
        let cases = [
            (json!([1, 2]), "JSON object"),
            (json!("go"), "JSON object"),
            (json!({"targte": "sg-1"}), "unknown field `targte`"),
            (json!({"target": 7}), "field `target`: invalid type: integer `7`, expected a string"),
            (json!({"target": "i-0123"}), "is not a target id: expected a security group id"),
            (json!({"experiment": "port-scan"}), "field `experiment`: unknown experiment `port-scan`"),
            (json!({"experiment": []}), "field `experiment` is empty"),
            (json!({"experiment": 3}), "field `experiment`: invalid type: integer `3`"),
            (json!({"target": ""}), "`target` is empty"),
            (json!({"window": " "}), "`window` is empty"),
            (json!({"detectors": [1]}), "field `detectors[0]`: invalid type: integer `1`, expected a string"),
            (json!({"detectors": {"a": 1}}), "field `detectors`: invalid type: map, expected an array of strings"),
            (json!({"dry_run": "yes"}), "field `dry_run`: invalid type: string \"yes\", expected a boolean"),
            (
                json!({"detail-type": "Scheduled Event", "source": "aws.events", "time": "noon", "detail": {}}),
                "envelope: field `time`",
            ),
        ];
        for (event, expected) in cases {
            let e = inject_overrides(&event).unwrap_err();
            assert!(e.to_string().contains(expected), "{event}: {e}");
            assert!(e.to_string().ends_with("nothing was changed"), "{event}: {e}");
            assert!(!e.retryable());
        }
        for (event, expected) in [
            (json!({"detectors": ["guardduty:x"]}), "event field `detectors`"),
            (json!({"window": "forever"}), "event field `window`"),
            (json!({"ports": "all"}), "event field `ports`"),
        ] {
            let e = inject_overrides(&event).unwrap().apply(&Settings::default()).unwrap_err();
            assert!(e.to_string().contains(expected), "{event}: {e}");
        }
        let e = judge_event(&json!({"window": "1m"})).unwrap_err();
        assert!(e.to_string().contains("unknown field `window`, there are no fields"), "{e}");
    }
}
