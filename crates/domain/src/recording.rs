//! Whether AWS Config can see a technique's change at all.
//!
//! A `config:` detector only notices a change that AWS Config records: a configuration
//! recorder must exist, be recording, include the technique's resource type
//! (`AWS::EC2::SecurityGroup`, `AWS::EC2::NetworkAcl`) and record it continuously (a daily
//! recording is seen up to a day late, long after any window). A detector that cannot see
//! is not a gap in the control under test but in Config's set-up, and a month of
//! experiments would only repeat it; so pre-flight says so before the run (see
//! [`blindness`]) and aborts, unless told to run anyway, when the detector is reported as
//! "could not see" instead of as a gap.

use std::fmt;

/// How often a recorder records a resource type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frequency {
    Continuous,
    Daily,
}

impl fmt::Display for Frequency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Frequency::Continuous => "continuously",
            Frequency::Daily => "daily",
        })
    }
}

/// Which resource types a recorder records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every supported type.
    All,
    /// Only these.
    Only(Vec<String>),
    /// Every supported type but these.
    AllExcept(Vec<String>),
}

/// One configuration recorder, with its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigRecorder {
    pub name: String,
    /// The recorder is started (`DescribeConfigurationRecorderStatus`).
    pub recording: bool,
    pub scope: Scope,
    /// The default frequency.
    pub frequency: Frequency,
    /// Per-type frequencies that override the default.
    pub overrides: Vec<(Vec<String>, Frequency)>,
}

impl ConfigRecorder {
    /// Why this recorder does not see changes of `resource_type` as they happen, or `None`.
    pub fn blind_to(&self, resource_type: &str) -> Option<String> {
        let name = &self.name;
        if !self.recording {
            return Some(format!("the configuration recorder `{name}` is not recording"));
        }
        let included = match &self.scope {
            Scope::All => true,
            Scope::Only(types) => types.iter().any(|t| t == resource_type),
            Scope::AllExcept(types) => !types.iter().any(|t| t == resource_type),
        };
        if !included {
            let how = match &self.scope {
                Scope::AllExcept(_) => "excludes",
                _ => "does not include",
            };
            return Some(format!("the configuration recorder `{name}` {how} {resource_type}"));
        }
        let frequency = self
            .overrides
            .iter()
            .find(|(types, _)| types.iter().any(|t| t == resource_type))
            .map(|(_, f)| *f)
            .unwrap_or(self.frequency);
        (frequency != Frequency::Continuous).then(|| {
            format!(
                "the configuration recorder `{name}` records {resource_type} {frequency}, not continuously: a change is seen up to a day later"
            )
        })
    }
}

/// Why AWS Config cannot see changes of `resource_type` in this region, or `None` when
/// some recorder records them continuously.
pub fn blindness(recorders: &[ConfigRecorder], resource_type: &str) -> Option<String> {
    if recorders.is_empty() {
        return Some("AWS Config has no configuration recorder in this region".into());
    }
    let reasons: Vec<String> = recorders.iter().map(|r| r.blind_to(resource_type)).collect::<Option<Vec<_>>>()?;
    Some(reasons.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACL: &str = "AWS::EC2::NetworkAcl";
    const SG: &str = "AWS::EC2::SecurityGroup";

    fn recorder(edit: impl FnOnce(&mut ConfigRecorder)) -> Vec<ConfigRecorder> {
        let mut r = ConfigRecorder {
            name: "default".into(),
            recording: true,
            scope: Scope::All,
            frequency: Frequency::Continuous,
            overrides: vec![],
        };
        edit(&mut r);
        vec![r]
    }

    #[test]
    fn a_recorder_recording_everything_continuously_sees_both_types() {
        assert_eq!(blindness(&recorder(|_| {}), ACL), None);
        assert_eq!(blindness(&recorder(|_| {}), SG), None);
    }

    #[test]
    fn each_way_of_being_blind_is_named() {
        let cases: Vec<(Vec<ConfigRecorder>, &str)> = vec![
            (vec![], "no configuration recorder"),
            (recorder(|r| r.recording = false), "`default` is not recording"),
            (recorder(|r| r.scope = Scope::Only(vec![SG.into()])), "does not include AWS::EC2::NetworkAcl"),
            (recorder(|r| r.scope = Scope::AllExcept(vec![ACL.into()])), "excludes AWS::EC2::NetworkAcl"),
            (recorder(|r| r.frequency = Frequency::Daily), "records AWS::EC2::NetworkAcl daily, not continuously"),
            (
                recorder(|r| r.overrides = vec![(vec![ACL.into()], Frequency::Daily)]),
                "records AWS::EC2::NetworkAcl daily",
            ),
        ];
        for (recorders, expected) in cases {
            let why = blindness(&recorders, ACL).expect("blind");
            assert!(why.contains(expected), "{why} should say {expected}");
        }
    }

    #[test]
    fn an_override_or_another_recorder_can_restore_sight() {
        // Daily by default, but continuous for ACLs.
        let daily_but_acls = recorder(|r| {
            r.frequency = Frequency::Daily;
            r.overrides = vec![(vec![ACL.into()], Frequency::Continuous)];
        });
        assert_eq!(blindness(&daily_but_acls, ACL), None);
        assert!(blindness(&daily_but_acls, SG).is_some());
        // One recorder that sees is enough.
        let mut two = recorder(|r| r.recording = false);
        two.extend(recorder(|r| r.name = "second".into()));
        assert_eq!(blindness(&two, ACL), None);
    }
}
