//! The experiment: what is injected, its record, and its lifecycle.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::Rng;
use serde::Serialize;

use crate::detector::Detector;

/// The transport protocol of an injected rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "tcp" | "6" => Ok(Protocol::Tcp),
            "udp" | "17" => Ok(Protocol::Udp),
            other => Err(format!("unknown protocol `{other}`; expected `tcp` or `udp`")),
        }
    }
}

/// An inclusive port range, `from <= to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct PortRange {
    pub from: u16,
    pub to: u16,
}

impl PortRange {
    pub fn new(from: u16, to: u16) -> Option<Self> {
        (from <= to).then_some(PortRange { from, to })
    }
    pub fn single(port: u16) -> Self {
        PortRange { from: port, to: port }
    }
    pub fn width(self) -> u32 {
        u32::from(self.to) - u32::from(self.from) + 1
    }
    pub fn overlaps(self, other: PortRange) -> bool {
        self.from <= other.to && other.from <= self.to
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.from == self.to {
            write!(f, "{}", self.from)
        } else {
            write!(f, "{}-{}", self.from, self.to)
        }
    }
}

impl FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parse = |p: &str| p.trim().parse::<u16>().map_err(|_| format!("`{p}` is not a port number (0-65535)"));
        match s.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (parse(a)?, parse(b)?);
                PortRange::new(a, b).ok_or_else(|| format!("range `{s}` ends before it starts"))
            }
            None => Ok(PortRange::single(parse(s)?)),
        }
    }
}

/// Identifies one experiment everywhere: rule tags, logs, metrics, SNS.
///
/// Form: `cs-YYYYMMDDTHHMMSSZ-xxxxxx` (UTC start time and 24 random bits), so ids sort by
/// start time and stay unique across concurrent starts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ExperimentId(String);

impl ExperimentId {
    pub fn generate(now: SystemTime, rng: &mut impl Rng) -> Self {
        let stamp = crate::time::rfc3339(now).replace(['-', ':'], "");
        let suffix: u32 = rng.random_range(0..0x0100_0000);
        ExperimentId(format!("cs-{stamp}-{suffix:06x}"))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ExperimentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ExperimentId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = s.len() <= 64
            && s.starts_with("cs-")
            && s.len() > 3
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if ok {
            Ok(ExperimentId(s.to_string()))
        } else {
            Err(format!("`{s}` is not an experiment id (expected `cs-YYYYMMDDTHHMMSSZ-xxxxxx`)"))
        }
    }
}

/// The longest detection window ChaoSlingr accepts; no record keeps a change open
/// longer than this after its injection, whatever its tags say.
pub const MAX_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// What the planner decided to inject, before anything was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub id: ExperimentId,
    /// The technique, serialized by name as `experiment`.
    #[serde(rename = "experiment", serialize_with = "crate::technique::serialize_name")]
    pub technique: crate::technique::TechniqueRef,
    /// The target (a security group, a network ACL, as the technique says).
    pub security_group_id: String,
    pub account: Option<String>,
    pub protocol: Protocol,
    pub ports: PortRange,
    pub cidr: String,
    pub detectors: Vec<Detector>,
    #[serde(skip)]
    pub window: Duration,
}

impl Plan {
    /// The record of this plan once its change exists: the change's id, when it was
    /// made, and the deadline that follows. Only a record names a change, and only the
    /// lifecycle's inject makes one, from the id the technique's write returned.
    pub fn injected(&self, change_id: String, injected_at: SystemTime) -> ExperimentRecord {
        ExperimentRecord {
            id: self.id.clone(),
            security_group_id: self.security_group_id.clone(),
            security_group_rule_id: change_id,
            account: self.account.clone(),
            protocol: self.protocol,
            ports: self.ports,
            cidr: self.cidr.clone(),
            injected_at: whole_millis(injected_at),
            deadline: deadline_for(injected_at, self.window),
            detectors: self.detectors.clone(),
        }
    }

    /// The rule description, naming the experiment so anyone looking at the group in the
    /// console knows what the rule is and when it goes away. Only characters EC2 allows
    /// in descriptions.
    pub fn description(&self, deadline: SystemTime) -> String {
        format!(
            "ChaoSlingr experiment {} - unauthorized by design, reverted by {}",
            self.id,
            crate::time::rfc3339(deadline)
        )
    }
}

/// Everything known about an injected experiment; stored on the rule and the target (see
/// [`crate::tags`], [`crate::marker`]) so any process can resume or revert it. Its
/// technique is known from the kind of its target's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExperimentRecord {
    pub id: ExperimentId,
    pub security_group_id: String,
    pub security_group_rule_id: String,
    pub account: Option<String>,
    pub protocol: Protocol,
    pub ports: PortRange,
    pub cidr: String,
    pub injected_at: SystemTime,
    pub deadline: SystemTime,
    pub detectors: Vec<Detector>,
}

impl ExperimentRecord {
    pub fn is_overdue(&self, now: SystemTime) -> bool {
        now >= self.deadline
    }
    pub fn age(&self, now: SystemTime) -> Duration {
        now.duration_since(self.injected_at).unwrap_or_default()
    }
}

/// The deadline of an experiment injected at `at` with watch window `window`. Rounded up
/// to a whole second so it survives the RFC 3339 tag round trip exactly.
pub fn deadline_for(at: SystemTime, window: Duration) -> SystemTime {
    let end = at + window;
    let d = end.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = if d.subsec_nanos() > 0 { d.as_secs() + 1 } else { d.as_secs() };
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// Truncates to whole milliseconds: the precision the `injected-at` tag keeps.
pub fn whole_millis(t: SystemTime) -> SystemTime {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    UNIX_EPOCH + Duration::from_millis(d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Outcome;
    use rand::SeedableRng;

    static TECHNIQUE: crate::technique::Technique = crate::technique::Technique {
        name: "port-change",
        summary: "",
        target: "security group",
        targets: "security groups",
        target_prefix: "sg-",
        change: "ingress rule",
        change_prefix: "sgr-",
        config_resource_type: "AWS::EC2::SecurityGroup",
        arn_resource: "security-group",
        record_first: false,
    };

    fn plan() -> Plan {
        Plan {
            id: "cs-20261123T120000Z-abcdef".parse().unwrap(),
            technique: &TECHNIQUE,
            security_group_id: "sg-1".into(),
            account: Some("123456789012".into()),
            protocol: Protocol::Tcp,
            ports: PortRange::new(20000, 20002).unwrap(),
            cidr: "0.0.0.0/0".into(),
            detectors: vec![],
            window: Duration::from_secs(600),
        }
    }

    #[test]
    fn ids_carry_the_start_time_and_differ() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let now = crate::time::parse_rfc3339("2026-11-23T12:00:00Z").unwrap();
        let a = ExperimentId::generate(now, &mut rng);
        let b = ExperimentId::generate(now, &mut rng);
        assert!(a.as_str().starts_with("cs-20261123T120000Z-"), "{a}");
        assert_ne!(a, b);
        assert_eq!(a.as_str().parse::<ExperimentId>().unwrap(), a);
        assert!("sg-123".parse::<ExperimentId>().is_err());
        assert!("cs-a b".parse::<ExperimentId>().is_err());
    }

    #[test]
    fn port_ranges_parse_and_overlap() {
        assert_eq!("22".parse::<PortRange>().unwrap(), PortRange::single(22));
        assert_eq!("8000-8080".parse::<PortRange>().unwrap(), PortRange::new(8000, 8080).unwrap());
        assert!("9-1".parse::<PortRange>().is_err());
        assert!("70000".parse::<PortRange>().is_err());
        let r = PortRange::new(10, 20).unwrap();
        assert!(r.overlaps(PortRange::single(20)));
        assert!(!r.overlaps(PortRange::single(21)));
        assert_eq!(r.width(), 11);
    }

    #[test]
    fn a_plan_becomes_a_record_with_the_change_it_made_and_its_deadline() {
        let p = plan();
        let t0 = UNIX_EPOCH + Duration::from_millis(1_000_000_123) + Duration::from_nanos(456);
        let rec = p.injected("sgr-1".into(), t0);
        assert_eq!(rec.id, p.id);
        assert_eq!(rec.security_group_rule_id, "sgr-1");
        assert_eq!((rec.protocol, rec.ports, rec.cidr.as_str()), (p.protocol, p.ports, p.cidr.as_str()));
        assert_eq!(rec.injected_at, UNIX_EPOCH + Duration::from_millis(1_000_000_123), "kept to the millisecond");
        assert_eq!(rec.deadline, UNIX_EPOCH + Duration::from_secs(1_000_000 + 600 + 1), "rounded up to a second");
        assert!(!rec.is_overdue(t0) && rec.is_overdue(rec.deadline));
    }

    #[test]
    fn outcomes_that_need_a_change_are_named() {
        for o in Outcome::ALL {
            let needs = matches!(o, Outcome::Detected | Outcome::Remediated | Outcome::Undetected);
            assert_eq!(o.requires_injection(), needs, "{o}");
        }
    }

    #[test]
    fn deadlines_round_up_to_whole_seconds() {
        let t = UNIX_EPOCH + Duration::from_millis(1_500);
        assert_eq!(deadline_for(t, Duration::from_secs(10)), UNIX_EPOCH + Duration::from_secs(12));
        assert_eq!(whole_millis(t + Duration::from_nanos(999)), t);
    }
}
