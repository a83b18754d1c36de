//! What the lab's controls have seen and recorded, advanced by periodic scans of the
//! emulator's security groups. Pure: a scan returns the actions to carry out (set the
//! firewall alarm, import a finding, revoke a rule) instead of performing them, so the
//! timing rules are unit-tested without any server.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use crate::rules::{violations, Permission};
use crate::settings::{Fault, LabSettings};

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

/// A recorded evaluation of one rule for one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    pub rule: String,
    pub group_id: String,
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

/// Something the lab must do in the emulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Set the firewall alarm to `ALARM` (true) or `OK` (false).
    Alarm { alarm: bool, reason: String },
    /// Import a Security Hub finding about a world-open port on a group.
    Finding { group_id: String, permission: Permission },
    /// Revoke a world-open unauthorized permission (the auto-remediator).
    Revoke { group_id: String, permission: Permission },
}

/// A group as scanned: its id and ingress permissions.
pub type ScannedGroup = (String, Vec<Permission>);

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
    evaluations: BTreeMap<(String, String), Evaluation>,
    pending: BTreeMap<(String, String), Pending>,
    offending: BTreeSet<(String, Permission)>,
    firewall_due: Vec<(SystemTime, String, Permission)>,
    remediation_due: Vec<(SystemTime, String, Permission)>,
    alarm_on: bool,
    pub config_fault: FaultBudget,
    pub alarm_fault: FaultBudget,
    pub findings_fault: FaultBudget,
    pub started: SystemTime,
}

impl LabState {
    pub fn new(settings: LabSettings, now: SystemTime) -> Self {
        LabState {
            config_fault: FaultBudget::new(settings.config.fault),
            alarm_fault: FaultBudget::new(settings.firewall.fault),
            findings_fault: FaultBudget::new(settings.securityhub_fault),
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
        let due: Vec<(String, String)> =
            self.pending.iter().filter(|(_, p)| p.due <= now).map(|(k, _)| k.clone()).collect();
        for key in due {
            let p = self.pending.remove(&key).expect("present");
            self.evaluations.insert(
                key.clone(),
                Evaluation {
                    rule: key.0,
                    group_id: key.1,
                    compliance: p.compliance,
                    annotation: p.annotation,
                    invoked: p.invoked,
                    recorded: p.due,
                },
            );
        }
    }

    /// Recorded evaluations, in (rule, group) order.
    pub fn evaluations(&self) -> impl Iterator<Item = &Evaluation> {
        self.evaluations.values()
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
                let key = (rule.name.clone(), group_id.clone());
                let Some(current) = self.evaluations.get(&key) else {
                    // First sight: Config evaluated this group long before the lab started.
                    self.evaluations.insert(
                        key.clone(),
                        Evaluation {
                            rule: key.0,
                            group_id: key.1,
                            compliance,
                            annotation,
                            invoked: now,
                            recorded: now,
                        },
                    );
                    continue;
                };
                let heading_to = self.pending.get(&key).map(|p| p.compliance).unwrap_or(current.compliance);
                if compliance == heading_to {
                    continue;
                }
                if compliance == current.compliance {
                    // Changed back before Config recorded the change.
                    self.pending.remove(&key);
                    continue;
                }
                if let Some(delay) = self.settings.config.delay() {
                    self.pending.insert(key, Pending { compliance, annotation, invoked: now, due: now + delay });
                }
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
                actions
                    .push(Action::Alarm { alarm: true, reason: format!("new world-open {permission} on {group_id}") });
            }
            if self.settings.firewall_findings {
                actions.push(Action::Finding { group_id, permission });
            }
        }
        if self.alarm_on && self.offending.is_empty() && self.firewall_due.is_empty() {
            self.alarm_on = false;
            actions.push(Action::Alarm { alarm: false, reason: "no world-open unauthorized port remains".into() });
        }

        let (revoke, wait): (Vec<_>, Vec<_>) = self.remediation_due.drain(..).partition(|(due, _, _)| *due <= now);
        self.remediation_due = wait;
        for (_, group_id, permission) in revoke {
            actions.push(Action::Revoke { group_id, permission });
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
