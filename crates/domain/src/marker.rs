//! The group marker: tags every experiment (scheduled or a person's run) writes on its
//! security group right after the rule exists, next to the rule's own tags.
//!
//! Why a second copy: when something else removes the injected rule (an auto-remediator),
//! the rule's tags go with it, and only the group still says an experiment was running —
//! that is how the judge tells `remediated` from "never existed". The marker also carries
//! what the judge has learnt across ticks (which detectors fired, and when) and the
//! conclusion while it is being recorded, so a judge that crashes half-way is finished by
//! the next tick: mark the conclusion, revoke, count (mark counted), publish (mark
//! recorded), remove the marker.
//!
//! Every experiment has one, CLI runs too (with [`WATCHER`] = `cli`): it is found by its
//! own tag key, so the judge finds an experiment even when its group was opted out or
//! its rule's tags were stripped, and the module's IAM lets the functions revoke and
//! remove the marker on any group that carries it.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::detector::Detector;
use crate::experiment::{ExperimentRecord, PortRange, Protocol};
use crate::outcome::Outcome;
use crate::tags::{self, TagError, TaggedRule, DEADLINE, DETECTORS, EXPERIMENT_ID, INJECTED_AT};

/// The injected rule's id.
pub const RULE_ID: &str = "chaoslingr:rule-id";
/// `<protocol> <from>-<to> <cidr>`: the change, so a remediated rule can still be reported.
pub const CHANGE: &str = "chaoslingr:change";
/// Detectors seen firing by earlier ticks: `<index>=<epoch ms>` pairs, comma separated.
pub const SEEN: &str = "chaoslingr:seen";
/// The conclusion, once decided.
pub const OUTCOME: &str = "chaoslingr:outcome";
pub const CONCLUDED_AT: &str = "chaoslingr:concluded-at";
pub const REASON: &str = "chaoslingr:reason";
/// `counted` once the outcome's metrics were put, `true` once it was published too.
pub const RECORDED: &str = "chaoslingr:recorded";
/// `cli` when a person's `chaoslingr run` watches the experiment (the judge leaves it to
/// them until its deadline plus a grace period); absent for scheduled experiments.
pub const WATCHER: &str = "chaoslingr:watcher";

/// Every key a marker may use, for removing it.
pub const KEYS: [&str; 12] = [
    EXPERIMENT_ID,
    INJECTED_AT,
    DEADLINE,
    DETECTORS,
    RULE_ID,
    CHANGE,
    SEEN,
    OUTCOME,
    CONCLUDED_AT,
    REASON,
    RECORDED,
    WATCHER,
];

const MAX_TAG_VALUE: usize = 256;

/// A decided conclusion stored on the marker.
#[derive(Debug, Clone, PartialEq)]
pub struct Conclusion {
    pub outcome: Outcome,
    pub concluded_at: SystemTime,
    pub reason: String,
    /// The outcome's metrics were put (never put twice).
    pub counted: bool,
    /// The outcome was published too: nothing is left to record.
    pub recorded: bool,
}

/// A group marker, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    pub record: ExperimentRecord,
    /// Detectors seen firing by earlier ticks, with their own timestamps.
    pub seen: Vec<(Detector, SystemTime)>,
    pub conclusion: Option<Conclusion>,
    /// Watched by a person's `chaoslingr run`, not by the judge.
    pub watched_by_cli: bool,
}

/// The tags that start a marker for `record`; `cli` when a person's run watches it.
pub fn encode(record: &ExperimentRecord, cli: bool) -> Result<Vec<(String, String)>, TagError> {
    let mut out = tags::encode(&record.id, record.injected_at, record.deadline, &record.detectors)?;
    out.push((RULE_ID.into(), record.security_group_rule_id.clone()));
    out.push((CHANGE.into(), format!("{} {} {}", record.protocol, record.ports, record.cidr)));
    if cli {
        out.push((WATCHER.into(), "cli".into()));
    }
    Ok(out)
}

fn millis(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis()
}

/// The `SEEN` tag for detectors fired so far (indexes into the record's detector list).
///
/// The value is cut to the 256 characters EC2 accepts, keeping the lowest indexes: about
/// fifteen firings fit, and a longer value would make EC2 refuse the whole write, the
/// conclusion mark included. A firing left out is read again from its detector by the
/// next tick; only one that has cleared in between is lost, and only with that many
/// detectors fired.
pub fn encode_seen(record: &ExperimentRecord, seen: &[(Detector, SystemTime)]) -> (String, String) {
    let mut pairs: Vec<(usize, u128)> = seen
        .iter()
        .filter_map(|(d, at)| record.detectors.iter().position(|x| x == d).map(|i| (i, millis(*at))))
        .collect();
    pairs.sort_unstable();
    let mut value = String::new();
    for (i, ms) in pairs {
        let pair = format!("{i}={ms}");
        let separator = usize::from(!value.is_empty());
        if value.len() + separator + pair.len() > MAX_TAG_VALUE {
            break;
        }
        if separator == 1 {
            value.push(',');
        }
        value.push_str(&pair);
    }
    (SEEN.into(), value)
}

/// The tags of a decided conclusion.
pub fn encode_conclusion(c: &Conclusion) -> Vec<(String, String)> {
    let mut reason = c.reason.clone();
    if reason.len() > MAX_TAG_VALUE {
        let mut cut = MAX_TAG_VALUE - 3;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
        reason.push_str("...");
    }
    let mut out = vec![
        (OUTCOME.into(), c.outcome.as_str().to_string()),
        (CONCLUDED_AT.into(), crate::time::rfc3339_millis(c.concluded_at)),
        (REASON.into(), reason),
    ];
    if c.recorded {
        out.push((RECORDED.into(), "true".into()));
    } else if c.counted {
        out.push((RECORDED.into(), "counted".into()));
    }
    out
}

/// Whether a group carries a marker at all.
pub fn is_marked(tags: &[(String, String)]) -> bool {
    tags.iter().any(|(k, _)| k == EXPERIMENT_ID)
}

/// Decodes the marker on `group_id` from its tags.
pub fn decode(group_id: &str, account: Option<&str>, tags: &[(String, String)]) -> Result<Marker, TagError> {
    let get = |key: &'static str| tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    let invalid = |key: &'static str, value: &str, reason: &str| TagError::Invalid {
        rule: format!("marker on {group_id}"),
        key,
        value: value.to_string(),
        reason: reason.to_string(),
    };
    let rule_id = get(RULE_ID).ok_or(TagError::Missing { rule: format!("marker on {group_id}"), key: RULE_ID })?;
    let change = get(CHANGE).ok_or(TagError::Missing { rule: format!("marker on {group_id}"), key: CHANGE })?;
    let parts: Vec<&str> = change.split_whitespace().collect();
    let bad_change = || invalid(CHANGE, change, "expected `<protocol> <from>-<to> <cidr>`");
    let [protocol, ports, cidr] = parts.as_slice() else { return Err(bad_change()) };
    let protocol: Protocol = protocol.parse().map_err(|_| bad_change())?;
    let (from, to) = match ports.split_once('-') {
        Some((a, b)) => (a.parse::<u16>().ok(), b.parse::<u16>().ok()),
        None => (ports.parse::<u16>().ok(), ports.parse::<u16>().ok()),
    };
    let ports = match (from, to) {
        (Some(a), Some(b)) => PortRange::new(a, b).ok_or_else(bad_change)?,
        _ => return Err(bad_change()),
    };

    // The record's own fields decode exactly as on the rule.
    let as_rule = TaggedRule {
        security_group_id: group_id.to_string(),
        security_group_rule_id: rule_id.to_string(),
        account: account.map(String::from),
        ip_protocol: protocol.to_string(),
        from_port: Some(i32::from(ports.from)),
        to_port: Some(i32::from(ports.to)),
        cidr: Some(cidr.to_string()),
        description: None,
        is_egress: false,
        tags: tags.to_vec(),
    };
    let record = tags::decode(&as_rule)?;

    let mut seen = Vec::new();
    if let Some(s) = get(SEEN).filter(|s| !s.is_empty()) {
        for pair in s.split(',') {
            let parsed =
                pair.split_once('=').and_then(|(i, ms)| Some((i.parse::<usize>().ok()?, ms.parse::<u64>().ok()?)));
            let (i, ms) = parsed.ok_or_else(|| invalid(SEEN, s, "expected `<index>=<epoch ms>` pairs"))?;
            let d = record.detectors.get(i).ok_or_else(|| invalid(SEEN, s, "index out of range"))?;
            let at = crate::time::from_epoch_millis(ms).ok_or_else(|| invalid(SEEN, s, "a time past year 9999"))?;
            seen.push((d.clone(), at));
        }
    }

    let conclusion = match get(OUTCOME) {
        None => None,
        Some(o) => {
            let outcome: Outcome = o.parse().map_err(|_| invalid(OUTCOME, o, "unknown outcome"))?;
            let at_s = get(CONCLUDED_AT).unwrap_or_default();
            let concluded_at = crate::time::parse_rfc3339(at_s)
                .ok_or_else(|| invalid(CONCLUDED_AT, at_s, "expected an RFC 3339 UTC timestamp"))?;
            Some(Conclusion {
                outcome,
                concluded_at,
                reason: get(REASON).unwrap_or_default().to_string(),
                counted: get(RECORDED).is_some_and(|v| v == "true" || v == "counted"),
                recorded: get(RECORDED).is_some_and(|v| v == "true"),
            })
        }
    };
    Ok(Marker { record, seen, conclusion, watched_by_cli: get(WATCHER) == Some("cli") })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::{deadline_for, whole_millis};
    use std::time::Duration;

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
            detectors: vec!["config:open-ports".parse().unwrap(), "alarm:fw".parse().unwrap()],
        }
    }

    #[test]
    fn a_marker_round_trips_with_what_was_seen_and_the_conclusion() {
        // GIVEN a marker, a firing seen by an earlier tick and a recorded conclusion
        let r = record();
        let mut tags = encode(&r, false).unwrap();
        let fired = r.injected_at + Duration::from_millis(3_742);
        tags.push(encode_seen(&r, &[(r.detectors[1].clone(), fired)]));
        let c = Conclusion {
            outcome: Outcome::Detected,
            concluded_at: r.injected_at + Duration::from_secs(61),
            reason: "1 of 2 detectors noticed".into(),
            counted: true,
            recorded: true,
        };
        tags.extend(encode_conclusion(&c));

        // WHEN it is read back THEN everything survives
        let m = decode("sg-0123", Some("123456789012"), &tags).unwrap();
        assert_eq!(m.record, r);
        assert_eq!(m.seen, vec![(r.detectors[1].clone(), fired)]);
        assert_eq!(m.conclusion, Some(c));
        assert!(is_marked(&tags));
    }

    #[test]
    fn a_fresh_marker_has_nothing_seen_and_no_conclusion() {
        let r = record();
        let m = decode("sg-0123", Some("123456789012"), &encode(&r, false).unwrap()).unwrap();
        assert!(m.seen.is_empty());
        assert!(m.conclusion.is_none());
        assert!(!m.watched_by_cli);
        let cli = decode("sg-0123", None, &encode(&r, true).unwrap()).unwrap();
        assert!(cli.watched_by_cli);
    }

    #[test]
    fn counted_and_recorded_are_two_steps() {
        let r = record();
        let c = |counted, recorded| Conclusion {
            outcome: Outcome::Undetected,
            concluded_at: r.deadline,
            reason: "x".into(),
            counted,
            recorded,
        };
        for (counted, recorded) in [(false, false), (true, false), (true, true)] {
            let mut tags = encode(&r, false).unwrap();
            tags.extend(encode_conclusion(&c(counted, recorded)));
            let back = decode("sg-0123", None, &tags).unwrap().conclusion.unwrap();
            assert_eq!((back.counted, back.recorded), (counted, recorded));
        }
    }

    #[test]
    fn damaged_markers_are_rejected_naming_the_tag() {
        let r = record();
        let good = encode(&r, false).unwrap();
        let with = |key: &str, value: &str| {
            let mut t: Vec<(String, String)> = good.iter().filter(|(k, _)| k != key).cloned().collect();
            t.push((key.to_string(), value.to_string()));
            decode("sg-0123", None, &t).unwrap_err().to_string()
        };
        assert!(with(CHANGE, "udp 40000").contains(CHANGE) || with(CHANGE, "udp").contains(CHANGE));
        assert!(with(SEEN, "7=1").contains("index out of range"));
        assert!(with(SEEN, "x").contains(SEEN));
        assert!(with(OUTCOME, "won").contains(OUTCOME));
        let no_rule: Vec<(String, String)> = good.iter().filter(|(k, _)| k != RULE_ID).cloned().collect();
        assert!(decode("sg-0123", None, &no_rule).unwrap_err().to_string().contains(RULE_ID));
    }

    #[test]
    fn a_firing_time_past_year_9999_is_refused() {
        // Regression: `0=18446744073709551615` decoded to a firing in year 584 million,
        // which the judge then printed in a reading's evidence, and the formatter panicked.
        let r = record();
        let mut tags = encode(&r, false).unwrap();
        tags.push((SEEN.into(), format!("0={}", u64::MAX)));
        let e = decode("sg-0123", None, &tags).unwrap_err().to_string();
        assert!(e.contains(SEEN) && e.contains("past year 9999"), "{e}");
    }

    #[test]
    fn many_firings_are_cut_to_fit_one_tag_value() {
        // Regression: 32 short detectors fit the detectors tag, but their firings made a
        // `seen` value of over 500 characters, and EC2 refuses the write it is part of
        // (the conclusion mark included).
        let mut r = record();
        r.detectors =
            "abcdefghijklmnopqrstuvwxyzABCDEF".chars().map(|c| format!("alarm:{c}").parse().unwrap()).collect();
        let at = r.injected_at + Duration::from_millis(1_234);
        let seen: Vec<(Detector, SystemTime)> = r.detectors.iter().map(|d| (d.clone(), at)).collect();
        let (key, value) = encode_seen(&r, &seen);
        assert!(value.len() <= MAX_TAG_VALUE, "{} characters", value.len());
        let mut tags = encode(&r, false).unwrap();
        tags.push((key, value));
        let back = decode("sg-0123", None, &tags).unwrap().seen;
        assert!(back.len() >= 14, "only {} firings kept", back.len());
        assert_eq!(back, seen[..back.len()].to_vec(), "the lowest indexes are kept, at their own times");
    }

    #[test]
    fn long_reasons_are_cut_to_a_tag_value() {
        let c = Conclusion {
            outcome: Outcome::Failed,
            concluded_at: UNIX_EPOCH,
            reason: "é".repeat(300),
            counted: false,
            recorded: false,
        };
        let tags = encode_conclusion(&c);
        let reason = &tags.iter().find(|(k, _)| k == REASON).unwrap().1;
        assert!(reason.len() <= 256 && reason.ends_with("..."));
        assert!(!tags.iter().any(|(k, _)| k == RECORDED));
    }
}
