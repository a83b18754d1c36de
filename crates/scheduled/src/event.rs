//! The events the scheduled functions accept, validated before any AWS call.
//!
//! Accepted, for both functions: nothing (`null`), `{}`, and the EventBridge
//! "Scheduled Event" envelope (an EventBridge rule instead of EventBridge Scheduler).
//! The inject function also takes overrides from a schedule's input:
//! `{"target": "sg-…", "detectors": ["config:…", "alarm:…"], "window": "30m", "dry_run": true}`.
//! Any other field, or a field of the wrong type, is refused with the field named.

use chaoslingr_domain::config;
use chaoslingr_domain::Settings;
use serde_json::{Map, Value};

use crate::error::FunctionError;

/// What a scheduled inject may override for one invocation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InjectOverrides {
    pub target: Option<String>,
    pub detectors: Option<String>,
    pub window: Option<String>,
    pub dry_run: Option<bool>,
}

const INJECT_FIELDS: &[&str] = &["target", "detectors", "window", "dry_run"];

/// The envelope EventBridge rules send: no overrides in it.
fn is_scheduled_event(obj: &Map<String, Value>) -> bool {
    obj.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event")
        && obj.get("source").and_then(Value::as_str) == Some("aws.events")
}

fn object(event: &Value) -> Result<Option<&Map<String, Value>>, FunctionError> {
    match event {
        Value::Null => Ok(None),
        Value::Object(o) if is_scheduled_event(o) => Ok(None),
        Value::Object(o) => Ok(Some(o)),
        other => {
            Err(FunctionError::BadEvent(format!("the event must be a JSON object (or empty), got {}", kind(other))))
        }
    }
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

fn refuse_unknown(obj: &Map<String, Value>, allowed: &[&str]) -> Result<(), FunctionError> {
    let mut unknown: Vec<&str> = obj.keys().map(String::as_str).filter(|k| !allowed.contains(k)).collect();
    unknown.sort_unstable();
    if unknown.is_empty() {
        return Ok(());
    }
    let accepted = if allowed.is_empty() { "none".to_string() } else { allowed.join(", ") };
    Err(FunctionError::BadEvent(format!("unknown field(s) {}; accepted fields: {accepted}", unknown.join(", "))))
}

fn string_field(obj: &Map<String, Value>, name: &str) -> Result<Option<String>, FunctionError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_string())),
        Some(Value::String(_)) => Err(FunctionError::BadEvent(format!("field `{name}` is empty"))),
        Some(other) => Err(FunctionError::BadEvent(format!("field `{name}` must be a string, got {}", kind(other)))),
    }
}

/// Reads the inject function's event.
pub fn inject_overrides(event: &Value) -> Result<InjectOverrides, FunctionError> {
    let Some(obj) = object(event)? else { return Ok(InjectOverrides::default()) };
    refuse_unknown(obj, INJECT_FIELDS)?;
    let target = string_field(obj, "target")?;
    if let Some(t) = &target {
        let valid =
            t.strip_prefix("sg-").is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_hexdigit()));
        if !valid {
            return Err(FunctionError::BadEvent(format!("field `target` `{t}` is not a security group id (sg-…)")));
        }
    }
    let detectors = match obj.get("detectors") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => {
            let mut names = Vec::with_capacity(items.len());
            for item in items {
                match item.as_str() {
                    Some(s) => names.push(s.trim().to_string()),
                    None => {
                        return Err(FunctionError::BadEvent(format!(
                            "field `detectors` must hold strings, got {}",
                            kind(item)
                        )))
                    }
                }
            }
            Some(names.join(","))
        }
        Some(Value::String(s)) => Some(s.trim().to_string()),
        Some(other) => {
            return Err(FunctionError::BadEvent(format!(
                "field `detectors` must be an array of strings, got {}",
                kind(other)
            )))
        }
    };
    let window = string_field(obj, "window")?;
    let dry_run = match obj.get("dry_run") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => {
            return Err(FunctionError::BadEvent(format!("field `dry_run` must be true or false, got {}", kind(other))))
        }
    };
    Ok(InjectOverrides { target, detectors, window, dry_run })
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
    match object(event)? {
        None => Ok(()),
        Some(obj) => refuse_unknown(obj, &[]),
    }
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
        ] {
            assert_eq!(inject_overrides(&e).unwrap(), InjectOverrides::default(), "{e}");
            judge_event(&e).unwrap();
        }
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
        let comma = inject_overrides(&json!({"detectors": "securityhub"})).unwrap();
        assert_eq!(comma.apply(&Settings::default()).unwrap().detectors.len(), 1);
    }

    #[test]
    fn malformed_events_are_refused_naming_the_field() {
        let cases = [
            (json!([1, 2]), "JSON object"),
            (json!("go"), "JSON object"),
            (json!({"targte": "sg-1"}), "unknown field(s) targte"),
            (json!({"target": 7}), "`target` must be a string"),
            (json!({"target": "i-0123"}), "not a security group id"),
            (json!({"target": ""}), "`target` is empty"),
            (json!({"detectors": [1]}), "must hold strings"),
            (json!({"detectors": {"a": 1}}), "array of strings"),
            (json!({"dry_run": "yes"}), "true or false"),
        ];
        for (event, expected) in cases {
            let e = inject_overrides(&event).unwrap_err();
            assert!(e.to_string().contains(expected), "{event}: {e}");
            assert!(!e.retryable());
        }
        for (event, expected) in [
            (json!({"detectors": ["guardduty:x"]}), "event field `detectors`"),
            (json!({"window": "forever"}), "event field `window`"),
        ] {
            let e = inject_overrides(&event).unwrap().apply(&Settings::default()).unwrap_err();
            assert!(e.to_string().contains(expected), "{event}: {e}");
        }
        let e = judge_event(&json!({"window": "1m"})).unwrap_err();
        assert!(e.to_string().contains("accepted fields: none"), "{e}");
    }
}
