//! The lab's AWS Config configuration recorder: what `DescribeConfigurationRecorders` and
//! `DescribeConfigurationRecorderStatus` answer, so a pre-flight that checks "is Config
//! recording this resource type, continuously?" can be tested in every case. The lab's
//! Config rules honour it too: a resource type the recorder does not record gets no new
//! evaluations, and one recorded daily is evaluated a day late.

use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serde_json::{json, Value};

/// How often a resource type is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frequency {
    Continuous,
    Daily,
}

impl Frequency {
    pub fn as_str(self) -> &'static str {
        match self {
            Frequency::Continuous => "CONTINUOUS",
            Frequency::Daily => "DAILY",
        }
    }

    fn parse(s: &str, what: &str) -> Result<Frequency, String> {
        match s.trim().to_ascii_uppercase().as_str() {
            "CONTINUOUS" => Ok(Frequency::Continuous),
            "DAILY" => Ok(Frequency::Daily),
            _ => Err(format!("{what}: `{s}` is not a recording frequency; expected `CONTINUOUS` or `DAILY`")),
        }
    }

    /// When a change recorded at this frequency reaches the rules, at the latest.
    pub fn delay(self) -> Duration {
        match self {
            Frequency::Continuous => Duration::ZERO,
            Frequency::Daily => Duration::from_secs(24 * 3600),
        }
    }
}

/// Which resource types the recorder records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every supported type (`ALL_SUPPORTED_RESOURCE_TYPES`).
    All,
    /// Only these (`INCLUSION_BY_RESOURCE_TYPES`).
    Only(Vec<String>),
    /// Every supported type but these (`EXCLUSION_BY_RESOURCE_TYPES`).
    Except(Vec<String>),
}

/// A recording-frequency override for some resource types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    pub description: Option<String>,
    pub resource_types: Vec<String>,
    pub frequency: Frequency,
}

/// The recorder named `default`, as the account has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecorderSettings {
    /// `false`: the account has no configuration recorder at all.
    pub present: bool,
    pub recording: bool,
    pub scope: Scope,
    pub frequency: Frequency,
    pub overrides: Vec<Override>,
}

impl Default for RecorderSettings {
    fn default() -> Self {
        RecorderSettings {
            present: true,
            recording: true,
            scope: Scope::All,
            frequency: Frequency::Continuous,
            overrides: Vec::new(),
        }
    }
}

/// `[config.recorder]` in the lab's TOML, or the body of `PUT /_lab/recorder`; every field
/// optional.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRecorder {
    pub present: Option<bool>,
    pub recording: Option<bool>,
    pub all_supported: Option<bool>,
    #[serde(default)]
    pub resource_types: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    pub frequency: Option<String>,
    #[serde(default)]
    pub overrides: Vec<FileOverride>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileOverride {
    pub resource_types: Vec<String>,
    pub frequency: String,
    pub description: Option<String>,
}

fn check_types(types: &[String], what: &str) -> Result<(), String> {
    for t in types {
        let parts: Vec<&str> = t.split("::").collect();
        if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
            return Err(format!("{what}: `{t}` is not a resource type such as `AWS::EC2::NetworkAcl`"));
        }
    }
    Ok(())
}

impl FileRecorder {
    /// Validates the way AWS Config's `PutConfigurationRecorder` would.
    pub fn resolve(self) -> Result<RecorderSettings, String> {
        const W: &str = "config.recorder";
        check_types(&self.resource_types, &format!("{W}.resource_types"))?;
        check_types(&self.exclude, &format!("{W}.exclude"))?;
        let scope = if !self.exclude.is_empty() {
            if self.all_supported == Some(true) || !self.resource_types.is_empty() {
                return Err(format!(
                    "{W}: `exclude` records every type but those; it needs all_supported = false (or unset) and no resource_types"
                ));
            }
            Scope::Except(self.exclude)
        } else if self.all_supported.unwrap_or(true) {
            if !self.resource_types.is_empty() {
                return Err(format!("{W}: resource_types lists what to record; it needs all_supported = false"));
            }
            Scope::All
        } else {
            Scope::Only(self.resource_types)
        };
        let frequency = match &self.frequency {
            Some(f) => Frequency::parse(f, &format!("{W}.frequency"))?,
            None => Frequency::Continuous,
        };
        let overrides = self
            .overrides
            .into_iter()
            .map(|o| {
                if o.resource_types.is_empty() {
                    return Err(format!("{W}.overrides: each override needs resource_types"));
                }
                check_types(&o.resource_types, &format!("{W}.overrides"))?;
                Ok(Override {
                    description: o.description,
                    resource_types: o.resource_types,
                    frequency: Frequency::parse(&o.frequency, &format!("{W}.overrides.frequency"))?,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(RecorderSettings {
            present: self.present.unwrap_or(true),
            recording: self.recording.unwrap_or(true),
            scope,
            frequency,
            overrides,
        })
    }
}

impl RecorderSettings {
    /// How often `resource_type` is recorded, or `None` when it is not recorded (no
    /// recorder, recording stopped, or the type left out).
    pub fn records(&self, resource_type: &str) -> Option<Frequency> {
        if !self.present || !self.recording {
            return None;
        }
        let included = match &self.scope {
            Scope::All => true,
            Scope::Only(types) => types.iter().any(|t| t == resource_type),
            Scope::Except(types) => !types.iter().any(|t| t == resource_type),
        };
        if !included {
            return None;
        }
        let by_override = self.overrides.iter().find(|o| o.resource_types.iter().any(|t| t == resource_type));
        Some(by_override.map(|o| o.frequency).unwrap_or(self.frequency))
    }

    /// `DescribeConfigurationRecorders`' `ConfigurationRecorders` entry.
    pub fn recorder_json(&self, region: &str, account: &str) -> Value {
        let (all_supported, resource_types, excluded, use_only) = match &self.scope {
            Scope::All => (true, Vec::new(), Vec::new(), "ALL_SUPPORTED_RESOURCE_TYPES"),
            Scope::Only(types) => (false, types.clone(), Vec::new(), "INCLUSION_BY_RESOURCE_TYPES"),
            Scope::Except(types) => (false, Vec::new(), types.clone(), "EXCLUSION_BY_RESOURCE_TYPES"),
        };
        let overrides: Vec<Value> = self
            .overrides
            .iter()
            .map(|o| {
                let mut v = json!({
                    "resourceTypes": o.resource_types,
                    "recordingFrequency": o.frequency.as_str(),
                });
                if let Some(d) = &o.description {
                    v["description"] = json!(d);
                }
                v
            })
            .collect();
        json!({
            "arn": format!("arn:aws:config:{region}:{account}:configuration-recorder/default/chaoslingr-lab"),
            "name": "default",
            "roleARN": format!("arn:aws:iam::{account}:role/aws-service-role/config.amazonaws.com/AWSServiceRoleForConfig"),
            "recordingGroup": {
                "allSupported": all_supported,
                "includeGlobalResourceTypes": false,
                "resourceTypes": resource_types,
                "exclusionByResourceTypes": { "resourceTypes": excluded },
                "recordingStrategy": { "useOnly": use_only },
            },
            "recordingMode": {
                "recordingFrequency": self.frequency.as_str(),
                "recordingModeOverrides": overrides,
            },
        })
    }

    /// `DescribeConfigurationRecorderStatus`' `ConfigurationRecordersStatus` entry.
    pub fn status_json(&self, started: SystemTime, epoch: impl Fn(SystemTime) -> Value) -> Value {
        let mut v = json!({
            "name": "default",
            "lastStartTime": epoch(started),
            "recording": self.recording,
            "lastStatus": "SUCCESS",
            "lastStatusChangeTime": epoch(started),
        });
        if !self.recording {
            v["lastStopTime"] = epoch(started);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Result<RecorderSettings, String> {
        toml::from_str::<FileRecorder>(toml_text).map_err(|e| e.to_string())?.resolve()
    }

    const ACL: &str = "AWS::EC2::NetworkAcl";
    const SG: &str = "AWS::EC2::SecurityGroup";

    #[test]
    fn the_default_records_everything_continuously() {
        let r = parse("").unwrap();
        assert_eq!(r, RecorderSettings::default());
        assert_eq!(r.records(ACL), Some(Frequency::Continuous));
        let v = r.recorder_json("us-east-1", "123456789012");
        assert_eq!(v["name"], "default");
        assert_eq!(v["recordingGroup"]["allSupported"], true);
        assert_eq!(v["recordingGroup"]["recordingStrategy"]["useOnly"], "ALL_SUPPORTED_RESOURCE_TYPES");
        assert_eq!(v["recordingMode"]["recordingFrequency"], "CONTINUOUS");
        assert_eq!(v["recordingMode"]["recordingModeOverrides"], json!([]));
    }

    #[test]
    fn inclusion_exclusion_and_overrides_shape_the_answer() {
        let only = parse("all_supported = false\nresource_types = [\"AWS::EC2::SecurityGroup\"]").unwrap();
        assert_eq!((only.records(SG), only.records(ACL)), (Some(Frequency::Continuous), None));
        let v = only.recorder_json("us-east-1", "1");
        assert_eq!(v["recordingGroup"]["allSupported"], false);
        assert_eq!(v["recordingGroup"]["resourceTypes"], json!([SG]));
        assert_eq!(v["recordingGroup"]["recordingStrategy"]["useOnly"], "INCLUSION_BY_RESOURCE_TYPES");

        let except = parse("exclude = [\"AWS::EC2::NetworkAcl\"]").unwrap();
        assert_eq!((except.records(SG), except.records(ACL)), (Some(Frequency::Continuous), None));
        let v = except.recorder_json("us-east-1", "1");
        assert_eq!(v["recordingGroup"]["allSupported"], false);
        assert_eq!(v["recordingGroup"]["exclusionByResourceTypes"]["resourceTypes"], json!([ACL]));
        assert_eq!(v["recordingGroup"]["recordingStrategy"]["useOnly"], "EXCLUSION_BY_RESOURCE_TYPES");

        let daily = parse(
            "frequency = \"daily\"\n[[overrides]]\nresource_types = [\"AWS::EC2::SecurityGroup\"]\nfrequency = \"CONTINUOUS\"\ndescription = \"groups live\"",
        )
        .unwrap();
        assert_eq!((daily.records(SG), daily.records(ACL)), (Some(Frequency::Continuous), Some(Frequency::Daily)));
        let v = daily.recorder_json("us-east-1", "1");
        assert_eq!(v["recordingMode"]["recordingFrequency"], "DAILY");
        assert_eq!(
            v["recordingMode"]["recordingModeOverrides"],
            json!([{"description": "groups live", "resourceTypes": [SG], "recordingFrequency": "CONTINUOUS"}])
        );
    }

    #[test]
    fn a_missing_or_stopped_recorder_records_nothing() {
        assert_eq!(parse("present = false").unwrap().records(SG), None);
        let stopped = parse("recording = false").unwrap();
        assert_eq!(stopped.records(SG), None);
        let t = SystemTime::UNIX_EPOCH;
        let s = stopped.status_json(t, |_| json!(0));
        assert_eq!((s["recording"].clone(), s["lastStopTime"].clone()), (json!(false), json!(0)));
        assert!(parse("").unwrap().status_json(t, |_| json!(0)).get("lastStopTime").is_none());
    }

    #[test]
    fn contradictions_are_refused() {
        assert!(parse("all_supported = true\nexclude = [\"AWS::EC2::NetworkAcl\"]").unwrap_err().contains("exclude"));
        assert!(parse("resource_types = [\"AWS::EC2::NetworkAcl\"]").unwrap_err().contains("all_supported = false"));
        assert!(parse("frequency = \"hourly\"").unwrap_err().contains("frequency"));
        assert!(parse("exclude = [\"NetworkAcl\"]").unwrap_err().contains("resource type"));
        assert!(parse("[[overrides]]\nresource_types = []\nfrequency = \"DAILY\"").is_err());
        assert!(parse("recordng = true").unwrap_err().contains("recordng"));
    }
}
