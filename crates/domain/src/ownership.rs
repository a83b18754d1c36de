//! What makes a security-group rule ChaoSlingr's own, defined once and checked before
//! every revoke.
//!
//! A tag proves nothing: in many accounts anyone who may tag a rule can put
//! `chaoslingr:experiment-id` on it. A rule is ours only if it is exactly the kind of rule
//! ChaoSlingr creates — inbound tcp or udp, from the configured source CIDR, on a range
//! inside the configured port bounds and no wider than the configured maximum, with a
//! description naming the experiment — and, where a durable record of the experiment
//! exists (the group marker, or the id returned by our own authorize call), it is the
//! record's rule with the record's change. Anything else carrying our tags is reported
//! and left alone; only a person naming a rule explicitly (`revert --force`) removes it.

use std::fmt;

use crate::config::Settings;
use crate::experiment::{ExperimentRecord, PortRange, Protocol};
use crate::tags::TaggedRule;

/// Why a rule is not ChaoSlingr's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotOurs {
    pub rule_id: String,
    pub reason: String,
}

impl fmt::Display for NotOurs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rule {} is not ChaoSlingr's: {}", self.rule_id, self.reason)
    }
}

impl std::error::Error for NotOurs {}

/// The words every experiment rule's description starts with, followed by its id.
pub const DESCRIPTION_PREFIX: &str = "ChaoSlingr experiment ";

/// Whether `rule` is the rule of experiment `experiment_id` that ChaoSlingr created under
/// `settings`, and, when `record` is given, the record's own rule and change.
pub fn check(
    rule: &TaggedRule,
    experiment_id: &str,
    record: Option<&ExperimentRecord>,
    settings: &Settings,
) -> Result<(), NotOurs> {
    let no = |reason: String| Err(NotOurs { rule_id: rule.security_group_rule_id.clone(), reason });
    if rule.is_egress {
        return no("it is an egress rule; experiments only add ingress".into());
    }
    let protocol: Protocol = match rule.ip_protocol.parse() {
        Ok(p) => p,
        Err(_) => return no(format!("protocol `{}` is neither tcp nor udp", rule.ip_protocol)),
    };
    let port = |p: Option<i32>| p.and_then(|p| u16::try_from(p).ok());
    let Some(ports) = port(rule.from_port).zip(port(rule.to_port)).and_then(|(a, b)| PortRange::new(a, b)) else {
        return no("it has no valid port range".into());
    };
    let bounds = settings.port_bounds;
    // A risky port lies outside the bounds by design: it is ours only when the record
    // says this experiment opened exactly it (checked below).
    let risky_on_record = crate::port_choice::is_risky(ports) && record.is_some_and(|r| r.ports == ports);
    if (ports.from < bounds.from || ports.to > bounds.to) && !risky_on_record {
        return no(format!("ports {ports} are outside the configured bounds {bounds} (CHAOSLINGR_PORT_RANGE)"));
    }
    if ports.width() > u32::from(settings.max_ports) {
        return no(format!(
            "ports {ports} span {} ports, more than the {} ChaoSlingr opens (CHAOSLINGR_MAX_PORTS)",
            ports.width(),
            settings.max_ports
        ));
    }
    match rule.cidr.as_deref() {
        Some(c) if c == settings.cidr => {}
        Some(c) => return no(format!("its source {c} is not the configured {} (CHAOSLINGR_CIDR)", settings.cidr)),
        None => return no("its source is not a CIDR".into()),
    }
    let expected = format!("{DESCRIPTION_PREFIX}{experiment_id} ");
    if !rule.description.as_deref().is_some_and(|d| d.starts_with(&expected)) {
        return no(format!("its description does not name experiment {experiment_id}"));
    }
    if let Some(r) = record {
        if r.id.as_str() != experiment_id {
            return no(format!("the record is of experiment {}, not {experiment_id}", r.id));
        }
        if r.security_group_rule_id != rule.security_group_rule_id || r.security_group_id != rule.security_group_id {
            return no(format!(
                "the record of {experiment_id} names rule {} in {}",
                r.security_group_rule_id, r.security_group_id
            ));
        }
        if r.protocol != protocol || r.ports != ports || rule.cidr.as_deref() != Some(r.cidr.as_str()) {
            return no(format!(
                "it is {protocol} {ports} from {}, but experiment {experiment_id} opened {} {} from {}",
                rule.cidr.as_deref().unwrap_or("-"),
                r.protocol,
                r.ports,
                r.cidr
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    const ID: &str = "cs-20261124T172700Z-0a1b2c";

    fn record() -> ExperimentRecord {
        let at = UNIX_EPOCH + Duration::from_secs(1_795_459_620);
        ExperimentRecord {
            id: ID.parse().unwrap(),
            security_group_id: "sg-0123".into(),
            security_group_rule_id: "sgr-0456".into(),
            account: None,
            protocol: Protocol::Tcp,
            ports: PortRange::new(40_000, 40_002).unwrap(),
            cidr: "0.0.0.0/0".into(),
            injected_at: at,
            deadline: at + Duration::from_secs(900),
            detectors: vec![],
        }
    }

    fn rule() -> TaggedRule {
        TaggedRule {
            security_group_id: "sg-0123".into(),
            security_group_rule_id: "sgr-0456".into(),
            account: None,
            ip_protocol: "tcp".into(),
            from_port: Some(40_000),
            to_port: Some(40_002),
            cidr: Some("0.0.0.0/0".into()),
            description: Some(format!("ChaoSlingr experiment {ID} - unauthorized by design, reverted by 2026")),
            is_egress: false,
            tags: vec![],
        }
    }

    fn verdict(edit: impl FnOnce(&mut TaggedRule), record: Option<&ExperimentRecord>) -> Result<(), String> {
        let mut r = rule();
        edit(&mut r);
        check(&r, ID, record, &Settings::default()).map_err(|e| e.to_string())
    }

    #[test]
    fn the_rule_chaoslingr_creates_is_ours_with_or_without_a_record() {
        assert_eq!(verdict(|_| {}, None), Ok(()));
        assert_eq!(verdict(|_| {}, Some(&record())), Ok(()));
        // Tags play no part: a rule whose tags were stripped is still ours.
        assert_eq!(verdict(|r| r.tags.clear(), Some(&record())), Ok(()));
    }

    #[test]
    fn a_tagged_rule_of_another_shape_is_never_ours() {
        type Edit = Box<dyn FnOnce(&mut TaggedRule)>;
        let cases: Vec<(Edit, &str)> = vec![
            (Box::new(|r| r.ip_protocol = "-1".into()), "neither tcp nor udp"),
            (Box::new(|r| r.is_egress = true), "egress"),
            (Box::new(|r| r.cidr = Some("10.0.0.0/8".into())), "not the configured 0.0.0.0/0"),
            (Box::new(|r| r.cidr = None), "not a CIDR"),
            (Box::new(|r| (r.from_port, r.to_port) = (Some(22), Some(22))), "outside the configured bounds"),
            (Box::new(|r| r.to_port = Some(40_010)), "more than the 6"),
            (Box::new(|r| r.from_port = None), "no valid port range"),
            (Box::new(|r| r.description = Some("prod SSH bastion".into())), "does not name experiment"),
            (Box::new(|r| r.description = None), "does not name experiment"),
            (
                Box::new(|r| r.description = Some(format!("ChaoSlingr experiment {ID}x - ..."))),
                "does not name experiment",
            ),
        ];
        for (edit, why) in cases {
            let err = verdict(edit, None).unwrap_err();
            assert!(err.contains(why), "{err} should say {why}");
        }
    }

    #[test]
    fn with_a_record_the_rule_must_be_the_records_rule_and_change() {
        let r = record();
        assert!(verdict(|x| x.security_group_rule_id = "sgr-9".into(), Some(&r)).unwrap_err().contains("names rule"));
        assert!(verdict(|x| x.to_port = Some(40_001), Some(&r)).unwrap_err().contains("opened tcp 40000-40002"));
        assert!(verdict(|x| x.ip_protocol = "udp".into(), Some(&r)).unwrap_err().contains("opened tcp"));
        let mut other = record();
        other.id = "cs-20261124T172700Z-ffffff".parse().unwrap();
        // A risky port outside the bounds is ours only with a record that opened it.
        let mut ssh = record();
        ssh.ports = PortRange::single(22);
        let on_22 = |x: &mut TaggedRule| (x.from_port, x.to_port) = (Some(22), Some(22));
        assert_eq!(verdict(on_22, Some(&ssh)), Ok(()));
        assert!(verdict(on_22, None).unwrap_err().contains("outside the configured bounds"));
        assert!(verdict(on_22, Some(&r)).unwrap_err().contains("outside the configured bounds"));
        let on_23 = |x: &mut TaggedRule| (x.from_port, x.to_port) = (Some(2222), Some(2222));
        let mut not_risky = record();
        not_risky.ports = PortRange::single(2222);
        assert!(verdict(on_23, Some(&not_risky)).unwrap_err().contains("outside the configured bounds"));
        assert!(verdict(|_| {}, Some(&other)).unwrap_err().contains("record is of experiment"));
    }
}
