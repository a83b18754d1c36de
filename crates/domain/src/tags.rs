//! The tag codec: an experiment record written onto the injected rule's tags at creation
//! and read back by whoever resumes, judges or reverts it.
//!
//! The rule itself carries the group, protocol, ports and source; the tags add what only
//! the experiment knows. Because the tags are part of the `AuthorizeSecurityGroupIngress`
//! call, a rule without them never exists.

use std::time::SystemTime;

use crate::detector::{self, Detector};
use crate::experiment::{ExperimentId, ExperimentRecord, PortRange, Protocol, MAX_WINDOW};
use crate::time::{parse_rfc3339, rfc3339, rfc3339_millis};

pub const EXPERIMENT_ID: &str = "chaoslingr:experiment-id";
pub const INJECTED_AT: &str = "chaoslingr:injected-at";
pub const DEADLINE: &str = "chaoslingr:deadline";
pub const DETECTORS: &str = "chaoslingr:detectors";

/// EC2 accepts tag values of at most 256 characters.
pub const MAX_TAG_VALUE: usize = 256;

/// Tags that do not describe a valid experiment, or a record that cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    #[error("rule {rule}: tag `{key}` is missing; it was not created by ChaoSlingr or was edited")]
    Missing { rule: String, key: &'static str },
    #[error("rule {rule}: tag `{key}`=`{value}` is invalid: {reason}")]
    Invalid { rule: String, key: &'static str, value: String, reason: String },
    #[error("rule {rule}: {reason}")]
    Rule { rule: String, reason: String },
    #[error("the detector list `{0}` is longer than the 256 characters a tag value holds; configure fewer detectors or shorter names")]
    DetectorsTooLong(String),
}

/// Encodes what only the experiment knows into rule tags.
pub fn encode(
    id: &ExperimentId,
    injected_at: SystemTime,
    deadline: SystemTime,
    detectors: &[Detector],
) -> Result<Vec<(String, String)>, TagError> {
    let list = detector::format_list(detectors);
    if list.len() > MAX_TAG_VALUE {
        return Err(TagError::DetectorsTooLong(list));
    }
    Ok(vec![
        (EXPERIMENT_ID.to_string(), id.to_string()),
        (INJECTED_AT.to_string(), rfc3339_millis(injected_at)),
        (DEADLINE.to_string(), rfc3339(deadline)),
        (DETECTORS.to_string(), list),
    ])
}

/// A rule as read from EC2, with its tags: the input of [`decode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedRule {
    pub security_group_id: String,
    pub security_group_rule_id: String,
    pub account: Option<String>,
    /// `tcp`, `udp`, `-1`, or a protocol number, as EC2 reports it.
    pub ip_protocol: String,
    pub from_port: Option<i32>,
    pub to_port: Option<i32>,
    pub cidr: Option<String>,
    /// The rule's description: ChaoSlingr names the experiment there (see
    /// [`crate::ownership`]).
    pub description: Option<String>,
    pub is_egress: bool,
    pub tags: Vec<(String, String)>,
}

impl TaggedRule {
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The experiment id tag, if any: enough to know the rule is ours even when the other
    /// tags were damaged.
    pub fn experiment_id(&self) -> Option<&str> {
        self.tag(EXPERIMENT_ID)
    }
}

/// Decodes an experiment record from a rule and its tags.
pub fn decode(rule: &TaggedRule) -> Result<ExperimentRecord, TagError> {
    let name = &rule.security_group_rule_id;
    let get = |key: &'static str| rule.tag(key).ok_or(TagError::Missing { rule: name.clone(), key });
    let invalid = |key: &'static str, value: &str, reason: String| TagError::Invalid {
        rule: name.clone(),
        key,
        value: value.to_string(),
        reason,
    };

    let id_s = get(EXPERIMENT_ID)?;
    let id: ExperimentId = id_s.parse().map_err(|e| invalid(EXPERIMENT_ID, id_s, e))?;
    let at_s = get(INJECTED_AT)?;
    let injected_at =
        parse_rfc3339(at_s).ok_or_else(|| invalid(INJECTED_AT, at_s, "expected an RFC 3339 UTC timestamp".into()))?;
    let dl_s = get(DEADLINE)?;
    let deadline =
        parse_rfc3339(dl_s).ok_or_else(|| invalid(DEADLINE, dl_s, "expected an RFC 3339 UTC timestamp".into()))?;
    if deadline < injected_at {
        return Err(invalid(DEADLINE, dl_s, "the deadline is before the injection".into()));
    }
    // Tags can be edited by whoever may tag: no record keeps a port open longer than the
    // longest window ChaoSlingr ever configures.
    let deadline = deadline.min(injected_at + MAX_WINDOW);
    let det_s = get(DETECTORS)?;
    let detectors = detector::parse_list(det_s).map_err(|e| invalid(DETECTORS, det_s, e.to_string()))?;

    let rule_err = |reason: String| TagError::Rule { rule: name.clone(), reason };
    if rule.is_egress {
        return Err(rule_err("is an egress rule; experiments only inject ingress".into()));
    }
    let protocol: Protocol = rule.ip_protocol.parse().map_err(rule_err)?;
    let port = |p: Option<i32>| p.and_then(|p| u16::try_from(p).ok());
    let ports = match (port(rule.from_port), port(rule.to_port)) {
        (Some(a), Some(b)) => {
            PortRange::new(a, b).ok_or_else(|| rule_err(format!("port range {a}-{b} is reversed")))?
        }
        _ => return Err(rule_err("has no port range".into())),
    };
    let cidr = rule.cidr.clone().ok_or_else(|| rule_err("has no CIDR source".into()))?;

    Ok(ExperimentRecord {
        id,
        security_group_id: rule.security_group_id.clone(),
        security_group_rule_id: rule.security_group_rule_id.clone(),
        account: rule.account.clone(),
        protocol,
        ports,
        cidr,
        injected_at,
        deadline,
        detectors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::{deadline_for, whole_millis};
    use std::time::{Duration, UNIX_EPOCH};

    fn record() -> ExperimentRecord {
        let at = whole_millis(UNIX_EPOCH + Duration::from_millis(1_795_459_620_123));
        ExperimentRecord {
            id: "cs-20261124T172700Z-0a1b2c".parse().unwrap(),
            security_group_id: "sg-0123".into(),
            security_group_rule_id: "sgr-0456".into(),
            account: Some("123456789012".into()),
            protocol: Protocol::Udp,
            ports: PortRange::new(40_000, 40_004).unwrap(),
            cidr: "0.0.0.0/0".into(),
            injected_at: at,
            deadline: deadline_for(at, Duration::from_secs(900)),
            detectors: vec![
                "config:vpc-sg-open-only-to-authorized-ports".parse().unwrap(),
                "alarm:fw".parse().unwrap(),
            ],
        }
    }

    fn as_rule(r: &ExperimentRecord, tags: Vec<(String, String)>) -> TaggedRule {
        TaggedRule {
            security_group_id: r.security_group_id.clone(),
            security_group_rule_id: r.security_group_rule_id.clone(),
            account: r.account.clone(),
            ip_protocol: r.protocol.to_string(),
            from_port: Some(i32::from(r.ports.from)),
            to_port: Some(i32::from(r.ports.to)),
            cidr: Some(r.cidr.clone()),
            description: None,
            is_egress: false,
            tags,
        }
    }

    #[test]
    fn a_record_round_trips_through_tags() {
        let r = record();
        let tags = encode(&r.id, r.injected_at, r.deadline, &r.detectors).unwrap();
        assert_eq!(tags[1], (INJECTED_AT.to_string(), "2026-11-23T18:47:00.123Z".to_string()));
        let back = decode(&as_rule(&r, tags)).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn no_detectors_round_trips_as_an_empty_tag() {
        let mut r = record();
        r.detectors.clear();
        let tags = encode(&r.id, r.injected_at, r.deadline, &r.detectors).unwrap();
        assert_eq!(decode(&as_rule(&r, tags)).unwrap().detectors, vec![]);
    }

    #[test]
    fn bad_tags_are_rejected_naming_the_tag() {
        let r = record();
        let good = encode(&r.id, r.injected_at, r.deadline, &r.detectors).unwrap();
        let with = |key: &str, value: Option<&str>| {
            let mut t: Vec<(String, String)> = good.iter().filter(|(k, _)| k != key).cloned().collect();
            if let Some(v) = value {
                t.push((key.to_string(), v.to_string()));
            }
            decode(&as_rule(&r, t)).unwrap_err().to_string()
        };
        assert!(with(EXPERIMENT_ID, None).contains("`chaoslingr:experiment-id` is missing"));
        assert!(with(EXPERIMENT_ID, Some("x y")).contains("chaoslingr:experiment-id"));
        assert!(with(INJECTED_AT, Some("yesterday")).contains("RFC 3339"));
        assert!(with(DEADLINE, Some("2000-01-01T00:00:00Z")).contains("before the injection"));
        assert!(with(DETECTORS, Some("guardduty:x")).contains("chaoslingr:detectors"));
        assert!(with(DEADLINE, None).contains("missing"));
    }

    #[test]
    fn rules_that_cannot_be_experiments_are_rejected() {
        let r = record();
        let tags = encode(&r.id, r.injected_at, r.deadline, &r.detectors).unwrap();
        let mut rule = as_rule(&r, tags.clone());
        rule.ip_protocol = "-1".into();
        assert!(decode(&rule).unwrap_err().to_string().contains("unknown protocol"));
        let mut rule = as_rule(&r, tags.clone());
        rule.is_egress = true;
        assert!(decode(&rule).is_err());
        let mut rule = as_rule(&r, tags);
        rule.cidr = None;
        assert!(decode(&rule).is_err());
    }

    #[test]
    fn a_deadline_past_the_longest_window_is_capped() {
        let r = record();
        let far = r.injected_at + Duration::from_secs(30 * 86_400);
        let tags = encode(&r.id, r.injected_at, far, &r.detectors).unwrap();
        let back = decode(&as_rule(&r, tags)).unwrap();
        assert_eq!(back.deadline, r.injected_at + MAX_WINDOW);
    }

    #[test]
    fn detector_lists_too_long_for_a_tag_are_refused() {
        let r = record();
        let many: Vec<Detector> =
            (0..30).map(|i| format!("alarm:firewall-alarm-number-{i}").parse().unwrap()).collect();
        assert!(matches!(encode(&r.id, r.injected_at, r.deadline, &many), Err(TagError::DetectorsTooLong(_))));
    }
}
