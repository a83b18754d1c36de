//! Detectors: the controls an experiment watches, written as strings on the CLI and in
//! the environment (`config:<rule>`, `alarm:<name>`, `securityhub[:<generator-id>]`).

use std::fmt;
use std::str::FromStr;

/// One security control whose reaction to the injected rule is measured.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Detector {
    /// An AWS Config rule that should turn the group NON_COMPLIANT.
    Config { rule: String },
    /// A CloudWatch alarm (a firewall, an IDS, a metric filter) that should go to ALARM.
    Alarm { name: String },
    /// A Security Hub finding on the group, optionally from one generator only.
    SecurityHub { generator_id: Option<String> },
}

/// The name under which remediation (the rule disappearing) is reported. It is always
/// watched and never configured.
pub const REMEDIATION: &str = "remediation";

/// A detector string that is not one of the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid detector `{input}`: {reason}; expected `config:<rule-name>`, `alarm:<alarm-name>`, `securityhub` or `securityhub:<generator-id>`")]
pub struct DetectorParseError {
    pub input: String,
    pub reason: &'static str,
}

impl FromStr for Detector {
    type Err = DetectorParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| DetectorParseError { input: s.to_string(), reason };
        let s = s.trim();
        let (kind, arg) = match s.split_once(':') {
            Some((k, a)) => (k, Some(a)),
            None => (s, None),
        };
        let name = |arg: Option<&str>| -> Result<String, DetectorParseError> {
            match arg {
                None | Some("") => Err(err("the name after `:` is missing")),
                Some(a) if a.contains(',') => Err(err("names cannot contain `,`")),
                Some(a) if a.len() > 255 => Err(err("names are at most 255 characters")),
                Some(a) if a.trim() != a => Err(err("names cannot start or end with spaces")),
                Some(a) => Ok(a.to_string()),
            }
        };
        match kind {
            "config" => Ok(Detector::Config { rule: name(arg)? }),
            "alarm" => Ok(Detector::Alarm { name: name(arg)? }),
            "securityhub" => match arg {
                None => Ok(Detector::SecurityHub { generator_id: None }),
                Some(_) => Ok(Detector::SecurityHub { generator_id: Some(name(arg)?) }),
            },
            "" => Err(err("it is empty")),
            _ => Err(err("unknown kind")),
        }
    }
}

impl fmt::Display for Detector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Detector::Config { rule } => write!(f, "config:{rule}"),
            Detector::Alarm { name } => write!(f, "alarm:{name}"),
            Detector::SecurityHub { generator_id: None } => write!(f, "securityhub"),
            Detector::SecurityHub { generator_id: Some(g) } => write!(f, "securityhub:{g}"),
        }
    }
}

impl serde::Serialize for Detector {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Parses a comma-separated detector list; empty input is an empty list.
pub fn parse_list(s: &str) -> Result<Vec<Detector>, DetectorParseError> {
    let mut out: Vec<Detector> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let d: Detector = part.parse()?;
        if !out.contains(&d) {
            out.push(d);
        }
    }
    Ok(out)
}

/// Formats a detector list the way [`parse_list`] reads it.
pub fn format_list(detectors: &[Detector]) -> String {
    detectors.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_round_trips() {
        for s in [
            "config:vpc-sg-open-only-to-authorized-ports",
            "alarm:fw-new-port",
            "securityhub",
            "securityhub:aws-foundational/EC2.18",
        ] {
            let d: Detector = s.parse().unwrap();
            assert_eq!(d.to_string(), s);
        }
    }

    #[test]
    fn bad_detectors_are_rejected_with_the_accepted_forms() {
        for s in ["config", "config:", "alarm", "guardduty:x", "", "alarm: padded"] {
            let e = s.parse::<Detector>().unwrap_err();
            assert!(e.to_string().contains("expected `config:<rule-name>`"), "{e}");
        }
    }

    #[test]
    fn lists_parse_trim_and_deduplicate() {
        let l = parse_list(" config:a , alarm:b,config:a,, ").unwrap();
        assert_eq!(format_list(&l), "config:a,alarm:b");
        assert!(parse_list("").unwrap().is_empty());
        assert!(parse_list("config:a,bogus").is_err());
    }
}
