//! What the lab's controls have seen and recorded, advanced by periodic scans of the
//! emulator's security groups and network ACLs. Pure: a scan returns the actions to carry
//! out (set a firewall alarm, import a finding, revoke a rule, delete an ACL entry) instead
//! of performing them, so the timing rules are unit-tested without any server.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use crate::nacl::{self, AclEntry, Opening};
use crate::rules::{violations, Permission};
use crate::settings::{Behaviour, Fault, LabSettings};

/// The resource type of security groups in AWS Config.
pub const SECURITY_GROUP: &str = "AWS::EC2::SecurityGroup";
/// The resource type of network ACLs in AWS Config.
pub const NETWORK_ACL: &str = "AWS::EC2::NetworkAcl";

/// A Config compliance result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compliance {
    Compliant,
    NonCompliant,
}

impl Compliance {
    pub fn as_str(self) -> &'static str {
        match self {
            Compliance::Compliant => "COMPLIANT",
            Compliance::NonCompliant => "NON_COMPLIANT",
        }
    }
}

/// A recorded evaluation of one rule for one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    pub rule: String,
    /// [`SECURITY_GROUP`] or [`NETWORK_ACL`].
    pub resource_type: &'static str,
    pub resource_id: String,
    pub compliance: Compliance,
    pub annotation: String,
    pub invoked: SystemTime,
    pub recorded: SystemTime,
}

#[derive(Debug, Clone)]
struct Pending {
    compliance: Compliance,
    annotation: String,
    invoked: SystemTime,
    due: SystemTime,
}

/// Evaluations are kept by (rule, resource type, resource id): results for groups and
/// ACLs never mix.
type EvaluationKey = (String, &'static str, String);

/// Something the lab must do in the emulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Set the firewall alarm `name` to `ALARM` (true) or `OK` (false).
    Alarm { name: String, alarm: bool, reason: String },
    /// Import a Security Hub finding about a world-open port on a group.
    Finding { group_id: String, permission: Permission },
    /// Revoke a world-open unauthorized permission (the auto-remediator).
    Revoke { group_id: String, permission: Permission },
    /// Import a Security Hub finding about a world-open inbound entry of an ACL.
    AclFinding { acl_id: String, opening: Opening },
    /// Delete a world-open unauthorized inbound entry of an ACL (the auto-remediator).
    DeleteEntry { acl_id: String, opening: Opening },
}

/// A group as scanned: its id and ingress permissions.
pub type ScannedGroup = (String, Vec<Permission>);

/// A network ACL as scanned: its id and entries.
pub type ScannedAcl = (String, Vec<AclEntry>);

/// An ACL entry as the firewall tracks it: the ACL, the rule number, IPv6 or not, and what
/// the entry allows. A different entry later put at the same number is a new entry.
type AclKey = (String, i32, bool, Permission);

fn acl_key(acl_id: &str, o: &Opening) -> AclKey {
    (acl_id.to_string(), o.rule_number, o.ipv6, o.permission.clone())
}

/// The firewall's and the remediator's view of network ACLs.
#[derive(Debug, Default)]
struct AclWatch {
    /// ACLs scanned at least once.
    seen: BTreeSet<String>,
    /// Unauthorized openings an ACL already had when first seen (a VPC's default ACL allows
    /// everything): not a change, so neither alarmed on nor removed.
    baseline: BTreeSet<AclKey>,
    offending: BTreeSet<AclKey>,
    firewall_due: Vec<(SystemTime, String, Opening)>,
    remediation_due: Vec<(SystemTime, String, Opening)>,
    alarm_on: bool,
}

/// Remaining failures of one injected fault.
#[derive(Debug, Clone, Copy, Default)]
pub struct FaultBudget {
    fault: Option<Fault>,
    seen: u32,
}

impl FaultBudget {
    pub fn new(fault: Option<Fault>) -> Self {
        FaultBudget { fault, seen: 0 }
    }

    /// Whether this request fails, and how.
    pub fn take(&mut self) -> Option<Fault> {
        let f = self.fault?;
        let n = self.seen;
        self.seen = self.seen.saturating_add(1);
        if n < f.after {
            return None;
        }
        match f.count {
            Some(count) if n - f.after >= count => None,
            _ => Some(f),
        }
    }
}

/// Everything the lab's controls know.
pub struct LabState {
    pub settings: LabSettings,
    evaluations: BTreeMap<EvaluationKey, Evaluation>,
    pending: BTreeMap<EvaluationKey, Pending>,
    offending: BTreeSet<(String, Permission)>,
    firewall_due: Vec<(SystemTime, String, Permission)>,
    remediation_due: Vec<(SystemTime, String, Permission)>,
    alarm_on: bool,
    pub config_fault: FaultBudget,
    pub alarm_fault: FaultBudget,
    pub findings_fault: FaultBudget,
    /// Faults of Config requests about ACLs, and of DescribeAlarms naming the ACL alarm.
    pub nacl_config_fault: FaultBudget,
    pub nacl_alarm_fault: FaultBudget,
    acls: AclWatch,
    pub started: SystemTime,
}

impl LabState {
    pub fn new(settings: LabSettings, now: SystemTime) -> Self {
        LabState {
            config_fault: FaultBudget::new(settings.config.fault),
            alarm_fault: FaultBudget::new(settings.firewall.fault),
            findings_fault: FaultBudget::new(settings.securityhub_fault),
            nacl_config_fault: FaultBudget::new(settings.nacl_config.fault),
            nacl_alarm_fault: FaultBudget::new(settings.nacl_firewall.fault),
            acls: AclWatch::default(),
            settings,
            evaluations: BTreeMap::new(),
            pending: BTreeMap::new(),
            offending: BTreeSet::new(),
            firewall_due: Vec::new(),
            remediation_due: Vec::new(),
            alarm_on: false,
            started: now,
        }
    }

    /// Records every pending evaluation whose latency has passed.
    pub fn promote(&mut self, now: SystemTime) {
        let due: Vec<EvaluationKey> =
            self.pending.iter().filter(|(_, p)| p.due <= now).map(|(k, _)| k.clone()).collect();
        for key in due {
            let p = self.pending.remove(&key).expect("present");
            self.evaluations.insert(
                key.clone(),
                Evaluation {
                    rule: key.0,
                    resource_type: key.1,
                    resource_id: key.2,
                    compliance: p.compliance,
                    annotation: p.annotation,
                    invoked: p.invoked,
                    recorded: p.due,
                },
            );
        }
    }

    /// Recorded evaluations, in (rule, resource type, resource id) order.
    pub fn evaluations(&self) -> impl Iterator<Item = &Evaluation> {
        self.evaluations.values()
    }

    /// Config's reaction to one evaluation of one resource at `now`: recorded at once the
    /// first time (Config evaluated it long before the lab started); a change is recorded
    /// after `behaviour`'s latency, if the recorder records the type (a day late when it
    /// records it daily), and forgotten if it reverts before then.
    fn evaluate(
        &mut self,
        key: EvaluationKey,
        compliance: Compliance,
        annotation: String,
        behaviour: &Behaviour,
        now: SystemTime,
    ) {
        let Some(current) = self.evaluations.get(&key) else {
            self.evaluations.insert(
                key.clone(),
                Evaluation {
                    rule: key.0,
                    resource_type: key.1,
                    resource_id: key.2,
                    compliance,
                    annotation,
                    invoked: now,
                    recorded: now,
                },
            );
            return;
        };
        let heading_to = self.pending.get(&key).map(|p| p.compliance).unwrap_or(current.compliance);
        if compliance == heading_to {
            return;
        }
        if compliance == current.compliance {
            // Changed back before Config recorded the change.
            self.pending.remove(&key);
            return;
        }
        let recorded_every = self.settings.recorder.records(key.1);
        if let (Some(delay), Some(frequency)) = (behaviour.delay(), recorded_every) {
            self.pending
                .insert(key, Pending { compliance, annotation, invoked: now, due: now + delay + frequency.delay() });
        }
    }

    /// One scan of every group at `now`: Config evaluations are scheduled after their
    /// latency; the firewall and the remediator react to world-open unauthorized
    /// permissions that were not there before.
    pub fn scan(&mut self, groups: &[ScannedGroup], now: SystemTime) -> Vec<Action> {
        let mut actions = Vec::new();
        let rules = self.settings.config_rules.clone();
        for rule in &rules {
            for (group_id, perms) in groups {
                let v = violations(rule, perms);
                let (compliance, annotation) = if v.is_empty() {
                    (Compliance::Compliant, "No unrestricted ingress on unauthorized ports.".to_string())
                } else {
                    let list: Vec<String> = v.iter().map(ToString::to_string).collect();
                    (
                        Compliance::NonCompliant,
                        format!("Unrestricted ingress on unauthorized ports: {}.", list.join(", ")),
                    )
                };
                let key = (rule.name.clone(), SECURITY_GROUP, group_id.clone());
                let behaviour = self.settings.config.clone();
                self.evaluate(key, compliance, annotation, &behaviour, now);
            }
        }
        self.promote(now);

        // The firewall and the remediator judge by the first Config rule's authorized ports.
        let now_offending: BTreeSet<(String, Permission)> = match rules.first() {
            Some(rule) => groups
                .iter()
                .flat_map(|(g, perms)| violations(rule, perms).into_iter().map(move |p| (g.clone(), p)))
                .collect(),
            None => BTreeSet::new(),
        };
        for (g, p) in now_offending.difference(&self.offending) {
            if let Some(delay) = self.settings.firewall.delay() {
                self.firewall_due.push((now + delay, g.clone(), p.clone()));
            }
            if let Some(delay) = self.settings.remediator {
                self.remediation_due.push((now + delay, g.clone(), p.clone()));
            }
        }
        self.offending = now_offending;
        let still =
            |g: &String, p: &Permission, set: &BTreeSet<(String, Permission)>| set.contains(&(g.clone(), p.clone()));
        let offending = self.offending.clone();
        self.firewall_due.retain(|(_, g, p)| still(g, p, &offending));
        self.remediation_due.retain(|(_, g, p)| still(g, p, &offending));

        let (fire, wait): (Vec<_>, Vec<_>) = self.firewall_due.drain(..).partition(|(due, _, _)| *due <= now);
        self.firewall_due = wait;
        for (_, group_id, permission) in fire {
            if !self.alarm_on {
                self.alarm_on = true;
                actions.push(Action::Alarm {
                    name: self.settings.firewall_alarm.clone(),
                    alarm: true,
                    reason: format!("new world-open {permission} on {group_id}"),
                });
            }
            if self.settings.firewall_findings {
                actions.push(Action::Finding { group_id, permission });
            }
        }
        if self.alarm_on && self.offending.is_empty() && self.firewall_due.is_empty() {
            self.alarm_on = false;
            actions.push(Action::Alarm {
                name: self.settings.firewall_alarm.clone(),
                alarm: false,
                reason: "no world-open unauthorized port remains".into(),
            });
        }

        let (revoke, wait): (Vec<_>, Vec<_>) = self.remediation_due.drain(..).partition(|(due, _, _)| *due <= now);
        self.remediation_due = wait;
        for (_, group_id, permission) in revoke {
            actions.push(Action::Revoke { group_id, permission });
        }
        actions
    }

    /// One scan of every network ACL at `now`, as [`LabState::scan`] for groups: the ACL
    /// Config rules are evaluated with `[nacl_config]`'s latency; the firewall (with its own
    /// alarm) and the remediator react to world-open unauthorized inbound ALLOW entries that
    /// appeared since an ACL was first seen (see [`nacl`] for what counts as open).
    pub fn scan_acls(&mut self, acls: &[ScannedAcl], now: SystemTime) -> Vec<Action> {
        let mut actions = Vec::new();
        let openings: Vec<(&String, Vec<Opening>)> = acls.iter().map(|(id, e)| (id, nacl::openings(e))).collect();
        let rules = self.settings.nacl_config_rules.clone();
        let behaviour = self.settings.nacl_config.clone();
        for rule in &rules {
            for (acl_id, open) in &openings {
                let v = nacl::violations(rule, open);
                let compliance = if v.is_empty() { Compliance::Compliant } else { Compliance::NonCompliant };
                let key = (rule.name.clone(), NETWORK_ACL, acl_id.to_string());
                self.evaluate(key, compliance, nacl::annotation(&v), &behaviour, now);
            }
        }
        self.promote(now);

        // The firewall and the remediator judge by the first ACL rule's authorized ports.
        let mut current: BTreeMap<AclKey, (String, Opening)> = BTreeMap::new();
        if let Some(rule) = rules.first() {
            for (acl_id, open) in &openings {
                for (o, _) in nacl::violations(rule, open) {
                    current.insert(acl_key(acl_id, &o), (acl_id.to_string(), o));
                }
            }
        }
        let w = &mut self.acls;
        w.baseline.retain(|k| current.contains_key(k));
        for (acl_id, _) in &openings {
            if w.seen.insert(acl_id.to_string()) {
                w.baseline.extend(current.keys().filter(|k| &k.0 == *acl_id).cloned());
            }
        }
        let now_offending: BTreeSet<AclKey> = current.keys().filter(|k| !w.baseline.contains(k)).cloned().collect();
        for key in now_offending.difference(&w.offending) {
            let (acl_id, opening) = current[key].clone();
            if let Some(delay) = self.settings.nacl_firewall.delay() {
                w.firewall_due.push((now + delay, acl_id.clone(), opening.clone()));
            }
            if let Some(delay) = self.settings.remediator {
                w.remediation_due.push((now + delay, acl_id, opening));
            }
        }
        w.offending = now_offending;
        let offending = w.offending.clone();
        w.firewall_due.retain(|(_, a, o)| offending.contains(&acl_key(a, o)));
        w.remediation_due.retain(|(_, a, o)| offending.contains(&acl_key(a, o)));

        let (fire, wait): (Vec<_>, Vec<_>) = w.firewall_due.drain(..).partition(|(due, _, _)| *due <= now);
        w.firewall_due = wait;
        for (_, acl_id, opening) in fire {
            if !w.alarm_on {
                w.alarm_on = true;
                actions.push(Action::Alarm {
                    name: self.settings.nacl_firewall_alarm.clone(),
                    alarm: true,
                    reason: format!("new world-open inbound {opening} on {acl_id}"),
                });
            }
            if self.settings.nacl_firewall_findings {
                actions.push(Action::AclFinding { acl_id, opening });
            }
        }
        if w.alarm_on && w.offending.is_empty() && w.firewall_due.is_empty() {
            w.alarm_on = false;
            actions.push(Action::Alarm {
                name: self.settings.nacl_firewall_alarm.clone(),
                alarm: false,
                reason: "no new world-open unauthorized inbound entry remains".into(),
            });
        }

        let (delete, wait): (Vec<_>, Vec<_>) = w.remediation_due.drain(..).partition(|(due, _, _)| *due <= now);
        w.remediation_due = wait;
        for (_, acl_id, opening) in delete {
            actions.push(Action::DeleteEntry { acl_id, opening });
        }
        actions
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{FileSettings, Mode};
    use std::time::{Duration, UNIX_EPOCH};

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s)
    }

    fn lab(edit: impl FnOnce(&mut LabSettings)) -> LabState {
        let mut s = FileSettings::default().resolve().unwrap();
        edit(&mut s);
        LabState::new(s, at(0))
    }

    fn open(port: i32) -> Permission {
        Permission { protocol: "tcp".into(), from: port, to: port, world_open: true }
    }

    fn group(perms: Vec<Permission>) -> Vec<ScannedGroup> {
        vec![("sg-1".to_string(), perms)]
    }

    fn noncompliant(state: &LabState) -> Vec<&Evaluation> {
        state.evaluations().filter(|e| e.compliance == Compliance::NonCompliant).collect()
    }

    #[test]
    fn config_records_the_change_after_its_latency_with_real_timestamps() {
        // GIVEN a compliant group (443 is authorized)
        let mut s = lab(|_| {});
        assert!(s.scan(&group(vec![open(443)]), at(0)).is_empty());
        assert!(noncompliant(&s).is_empty());
        // WHEN an unauthorized port opens at t=10
        s.scan(&group(vec![open(443), open(20_000)]), at(10));
        // THEN nothing is recorded before the 3 s latency
        s.scan(&group(vec![open(443), open(20_000)]), at(12));
        assert!(noncompliant(&s).is_empty());
        // AND at t=13 it is, invoked at 10 and recorded at 13
        s.scan(&group(vec![open(443), open(20_000)]), at(13));
        let nc = noncompliant(&s);
        assert_eq!(nc.len(), 1);
        assert_eq!((nc[0].invoked, nc[0].recorded), (at(10), at(13)));
        assert!(nc[0].annotation.contains("tcp 20000"), "{}", nc[0].annotation);
        // AND when it closes, COMPLIANT is recorded after the latency again
        s.scan(&group(vec![open(443)]), at(20));
        s.scan(&group(vec![open(443)]), at(23));
        assert!(noncompliant(&s).is_empty());
    }

    #[test]
    fn config_switched_off_never_records_and_slow_records_late() {
        let mut off = lab(|s| s.config.mode = Mode::Off);
        off.scan(&group(vec![]), at(0));
        off.scan(&group(vec![open(20_000)]), at(1));
        off.scan(&group(vec![open(20_000)]), at(10_000));
        assert!(noncompliant(&off).is_empty());

        let mut slow = lab(|s| s.config.mode = Mode::Slow);
        slow.scan(&group(vec![]), at(0));
        slow.scan(&group(vec![open(20_000)]), at(1));
        slow.scan(&group(vec![open(20_000)]), at(1_000));
        assert!(noncompliant(&slow).is_empty());
        slow.scan(&group(vec![open(20_000)]), at(3_601));
        assert_eq!(noncompliant(&slow).len(), 1);
    }

    #[test]
    fn firewall_alarms_once_after_its_latency_imports_a_finding_and_resets() {
        let mut s = lab(|_| {});
        s.scan(&group(vec![]), at(0));
        assert!(s.scan(&group(vec![open(20_000)]), at(1)).is_empty());
        let actions = s.scan(&group(vec![open(20_000)]), at(3));
        assert_eq!(actions.len(), 2, "{actions:?}");
        assert!(matches!(&actions[0], Action::Alarm { alarm: true, .. }));
        assert_eq!(actions[1], Action::Finding { group_id: "sg-1".into(), permission: open(20_000) });
        assert!(s.scan(&group(vec![open(20_000)]), at(4)).is_empty(), "fires once");
        let actions = s.scan(&group(vec![]), at(5));
        assert!(matches!(&actions[..], [Action::Alarm { alarm: false, .. }]), "{actions:?}");
    }

    #[test]
    fn a_port_closed_before_the_firewall_reacts_is_not_reported() {
        let mut s = lab(|_| {});
        s.scan(&group(vec![]), at(0));
        s.scan(&group(vec![open(20_000)]), at(1));
        assert!(s.scan(&group(vec![]), at(2)).is_empty());
        assert!(s.scan(&group(vec![]), at(10)).is_empty());
    }

    #[test]
    fn the_remediator_revokes_after_its_latency() {
        let mut s = lab(|s| {
            s.remediator = Some(Duration::from_secs(5));
            s.firewall.mode = Mode::Off;
        });
        s.scan(&group(vec![]), at(0));
        s.scan(&group(vec![open(20_000)]), at(1));
        assert!(s.scan(&group(vec![open(20_000)]), at(5)).is_empty());
        assert_eq!(
            s.scan(&group(vec![open(20_000)]), at(6)),
            vec![Action::Revoke { group_id: "sg-1".into(), permission: open(20_000) }]
        );
    }

    fn acl(entries: Vec<AclEntry>) -> Vec<ScannedAcl> {
        vec![("acl-1".to_string(), entries)]
    }

    fn inbound(rule_number: i32, allow: bool, protocol: &str, ports: Option<(i32, i32)>) -> AclEntry {
        AclEntry {
            rule_number,
            egress: false,
            allow,
            protocol: protocol.into(),
            cidr: Some("0.0.0.0/0".into()),
            ipv6_cidr: None,
            ports: ports.map(|(from, to)| crate::rules::Ports { from, to }),
        }
    }

    /// The seeded opted-in ACL: 443/tcp from the world, everything else denied.
    fn seeded() -> Vec<AclEntry> {
        vec![inbound(100, true, "6", Some((443, 443))), inbound(32767, false, "-1", None)]
    }

    fn with_injected() -> Vec<AclEntry> {
        let mut e = seeded();
        e.push(inbound(120, true, "17", Some((40_000, 40_002))));
        e
    }

    fn alarms(actions: &[Action]) -> Vec<(String, bool)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Alarm { name, alarm, .. } => Some((name.clone(), *alarm)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn acl_config_records_under_its_own_rule_type_and_latency() {
        // GIVEN the ACL rule with a 5 s latency and the group rule at its default 3 s
        let mut s = lab(|s| s.nacl_config.latency = Duration::from_secs(5));
        s.scan(&group(vec![open(443)]), at(0));
        s.scan_acls(&acl(seeded()), at(0));
        assert!(noncompliant(&s).is_empty());
        // WHEN an unauthorized udp entry is added at t=10
        s.scan_acls(&acl(with_injected()), at(10));
        s.scan_acls(&acl(with_injected()), at(14));
        assert!(noncompliant(&s).is_empty(), "not before the ACL rule's latency");
        s.scan_acls(&acl(with_injected()), at(15));
        // THEN it is recorded NON_COMPLIANT for the ACL, under the ACL rule and type only
        let nc = noncompliant(&s);
        assert_eq!(nc.len(), 1);
        assert_eq!(
            (nc[0].rule.as_str(), nc[0].resource_type, nc[0].resource_id.as_str()),
            (crate::settings::DEFAULT_NACL_RULE, NETWORK_ACL, "acl-1")
        );
        assert_eq!((nc[0].invoked, nc[0].recorded), (at(10), at(15)));
        assert!(nc[0].annotation.contains("entry 120 (udp 40000-40002 from 0.0.0.0/0)"), "{}", nc[0].annotation);
        // AND the group's evaluation is untouched
        let sg: Vec<_> = s.evaluations().filter(|e| e.resource_type == SECURITY_GROUP).collect();
        assert_eq!((sg.len(), sg[0].compliance), (1, Compliance::Compliant));
    }

    #[test]
    fn acl_config_off_or_unrecorded_never_records_a_change() {
        for edit in [(|s: &mut LabSettings| s.nacl_config.mode = Mode::Off) as fn(&mut LabSettings), |s| {
            s.recorder = crate::recorder::FileRecorder { exclude: vec![NETWORK_ACL.into()], ..Default::default() }
                .resolve()
                .unwrap()
        }] {
            let mut s = lab(edit);
            s.scan_acls(&acl(seeded()), at(0));
            s.scan_acls(&acl(with_injected()), at(1));
            s.scan_acls(&acl(with_injected()), at(100_000));
            assert!(noncompliant(&s).is_empty());
        }
        // A daily recorder records it, a day late.
        let mut daily = lab(|s| {
            s.recorder = crate::recorder::FileRecorder { frequency: Some("DAILY".into()), ..Default::default() }
                .resolve()
                .unwrap()
        });
        daily.scan_acls(&acl(seeded()), at(0));
        daily.scan_acls(&acl(with_injected()), at(1));
        daily.scan_acls(&acl(with_injected()), at(3_600));
        assert!(noncompliant(&daily).is_empty());
        daily.scan_acls(&acl(with_injected()), at(1 + 3 + 86_400));
        assert_eq!(noncompliant(&daily).len(), 1);
    }

    #[test]
    fn the_acl_firewall_alarms_its_own_alarm_once_and_resets() {
        let mut s = lab(|_| {});
        s.scan_acls(&acl(seeded()), at(0));
        assert!(s.scan_acls(&acl(with_injected()), at(1)).is_empty());
        let actions = s.scan_acls(&acl(with_injected()), at(3));
        assert_eq!(alarms(&actions), vec![(crate::settings::DEFAULT_NACL_ALARM.to_string(), true)]);
        let finding = actions.iter().find_map(|a| match a {
            Action::AclFinding { acl_id, opening } => Some((acl_id.clone(), opening.rule_number)),
            _ => None,
        });
        assert_eq!(finding, Some(("acl-1".into(), 120)));
        assert!(s.scan_acls(&acl(with_injected()), at(4)).is_empty(), "fires once");
        // The group firewall never heard of it.
        assert!(s.scan(&group(vec![]), at(4)).is_empty());
        let actions = s.scan_acls(&acl(seeded()), at(5));
        assert_eq!(alarms(&actions), vec![(crate::settings::DEFAULT_NACL_ALARM.to_string(), false)]);
    }

    #[test]
    fn what_an_acl_had_when_first_seen_is_not_a_change() {
        // GIVEN a default ACL that allows everything from the start
        let default_acl = vec![inbound(100, true, "-1", None), inbound(32767, false, "-1", None)];
        let mut s = lab(|s| s.remediator = Some(Duration::from_secs(1)));
        // THEN Config finds it NON_COMPLIANT at once, but the firewall and remediator ignore it
        assert!(s.scan_acls(&acl(default_acl.clone()), at(0)).is_empty());
        assert_eq!(noncompliant(&s).len(), 1);
        assert!(s.scan_acls(&acl(default_acl.clone()), at(100)).is_empty());
        // AND an entry added later to that ACL is a change
        let mut more = default_acl.clone();
        more.push(inbound(90, true, "6", Some((8080, 8080))));
        s.scan_acls(&acl(more.clone()), at(101));
        let actions = s.scan_acls(&acl(more), at(103));
        assert_eq!(alarms(&actions).len(), 1);
        assert!(actions.iter().any(|a| matches!(a, Action::DeleteEntry { opening, .. } if opening.rule_number == 90)));
        assert!(!actions
            .iter()
            .any(|a| matches!(a, Action::DeleteEntry { opening, .. } if opening.rule_number == 100)));
        // AND while the baseline entry remains, the alarm resets once the new one is gone
        let actions = s.scan_acls(&acl(default_acl), at(104));
        assert_eq!(alarms(&actions), vec![(crate::settings::DEFAULT_NACL_ALARM.to_string(), false)]);
    }

    #[test]
    fn the_remediator_deletes_the_new_acl_entry_after_its_latency() {
        let mut s = lab(|s| {
            s.remediator = Some(Duration::from_secs(5));
            s.nacl_firewall.mode = Mode::Off;
        });
        s.scan_acls(&acl(seeded()), at(0));
        s.scan_acls(&acl(with_injected()), at(1));
        assert!(s.scan_acls(&acl(with_injected()), at(5)).is_empty());
        let actions = s.scan_acls(&acl(with_injected()), at(6));
        assert_eq!(actions.len(), 1);
        let Action::DeleteEntry { acl_id, opening } = &actions[0] else { panic!("{actions:?}") };
        assert_eq!((acl_id.as_str(), opening.rule_number, opening.ipv6), ("acl-1", 120, false));
        assert_eq!(opening.permission.to_string(), "udp 40000-40002");
    }

    #[test]
    fn fault_budgets_fail_n_requests_then_recover() {
        use crate::settings::{Fault, FaultKind};
        let mut b = FaultBudget::new(Some(Fault { kind: FaultKind::Throttle, count: Some(2), after: 0 }));
        assert!(b.take().is_some());
        assert!(b.take().is_some());
        assert!(b.take().is_none());
        let mut late = FaultBudget::new(Some(Fault { kind: FaultKind::Throttle, count: Some(2), after: 1 }));
        let seen: Vec<bool> = (0..5).map(|_| late.take().is_some()).collect();
        assert_eq!(seen, vec![false, true, true, false, false]);
        let mut always = FaultBudget::new(Some(Fault { kind: FaultKind::ServerError, count: None, after: 0 }));
        assert!((0..100).all(|_| always.take().is_some()));
        assert!(FaultBudget::new(None).take().is_none());
    }
}
