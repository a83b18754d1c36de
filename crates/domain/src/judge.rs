//! The judge: from what the detectors and EC2 show, decide whether to keep watching or
//! how the experiment ended, with time-to-detect per detector.
//!
//! Time-to-detect is measured from the detector's own timestamp (Config
//! `ResultRecordedTime`, alarm `StateUpdatedTimestamp`, finding `CreatedAt`), never from
//! when we happened to poll. Remediation has no timestamp of its own, so it is measured
//! to the first observation that found the rule gone.

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::detector::{Detector, REMEDIATION};
use crate::experiment::ExperimentRecord;
use crate::outcome::{DetectionReport, Outcome};
use crate::time::{rfc3339, seconds_between};

/// One reading of one detector.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    /// Nothing yet; the note says what was seen (e.g. `alarm OK`).
    Quiet { note: String },
    /// The detector noticed, at its own timestamp.
    Fired { at: SystemTime, evidence: String },
    /// The detector could not be read this time.
    Error { message: String },
    /// The detector cannot see this change at all (AWS Config does not record its
    /// resource type continuously, see [`crate::recording`]): not a gap of the control.
    Blind { reason: String },
}

/// What the watch has learnt so far about one detector.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DetectorTrack {
    pub fired: Option<(SystemTime, String)>,
    pub last_note: Option<String>,
    pub successful_reads: u32,
    pub last_error: Option<String>,
    /// Why the detector cannot see this change, once a reading said so.
    pub blind: Option<String>,
}

/// Accumulated observations of one experiment; firing is sticky (the first valid
/// detection counts even if the detector later returns to normal).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WatchState {
    pub detectors: BTreeMap<Detector, DetectorTrack>,
    /// When the rule was first found missing, if it was.
    pub rule_gone_at: Option<SystemTime>,
    pub ticks: u32,
}

impl WatchState {
    pub fn new(record: &ExperimentRecord) -> Self {
        WatchState {
            detectors: record.detectors.iter().map(|d| (d.clone(), DetectorTrack::default())).collect(),
            rule_gone_at: None,
            ticks: 0,
        }
    }

    /// Folds one tick's readings in. Detections stamped before the injection or after the
    /// deadline are not this experiment's and are ignored.
    pub fn observe(
        &mut self,
        record: &ExperimentRecord,
        readings: Vec<(Detector, Reading)>,
        rule_present: bool,
        now: SystemTime,
    ) {
        self.ticks += 1;
        for (detector, reading) in readings {
            let track = self.detectors.entry(detector).or_default();
            match reading {
                Reading::Quiet { note } => {
                    track.successful_reads += 1;
                    track.last_note = Some(note);
                }
                Reading::Fired { at, evidence } => {
                    track.successful_reads += 1;
                    if at >= record.injected_at && at <= record.deadline {
                        if track.fired.is_none() {
                            track.fired = Some((at, evidence));
                        }
                    } else {
                        track.last_note =
                            Some(format!("ignored a detection at {} outside the experiment", rfc3339(at)));
                    }
                }
                Reading::Error { message } => track.last_error = Some(message),
                Reading::Blind { reason } => {
                    if track.fired.is_none() {
                        track.blind = Some(reason);
                    }
                }
            }
        }
        if !rule_present && self.rule_gone_at.is_none() {
            self.rule_gone_at = Some(now);
        }
    }

    /// Every detector that can see fired (and at least one can).
    pub fn all_fired(&self) -> bool {
        let seeing: Vec<&DetectorTrack> = self.seeing().collect();
        !seeing.is_empty() && seeing.iter().all(|t| t.fired.is_some())
    }

    /// The detectors that can see the change: all but the blind ones.
    fn seeing(&self) -> impl Iterator<Item = &DetectorTrack> {
        self.detectors.values().filter(|t| t.blind.is_none() || t.fired.is_some())
    }
}

/// The judge's decision.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    KeepWatching,
    Final { outcome: Outcome, reason: String, detections: Vec<DetectionReport> },
}

/// Decides, from everything observed, whether the experiment is over.
pub fn judge(record: &ExperimentRecord, state: &WatchState, now: SystemTime) -> Verdict {
    let detections = reports(record, state);
    let fired: Vec<&Detector> = state.detectors.iter().filter(|(_, t)| t.fired.is_some()).map(|(d, _)| d).collect();
    let blind: Vec<String> = state
        .detectors
        .iter()
        .filter(|(_, t)| t.fired.is_none())
        .filter_map(|(d, t)| t.blind.as_ref().map(|why| format!("{d} ({why})")))
        .collect();
    let total = state.detectors.len() - blind.len();
    let could_not_see = if blind.is_empty() { String::new() } else { format!("; could not see: {}", blind.join("; ")) };

    // Only a rule found gone before the deadline was remediated; one gone after it was
    // closed (by ChaoSlingr, or too late to count).
    if let Some(gone) = state.rule_gone_at.filter(|g| *g < record.deadline) {
        let reason = format!(
            "the rule was removed {}s after injection by something other than ChaoSlingr{}",
            seconds_between(record.injected_at, gone).round(),
            if fired.is_empty() {
                String::new()
            } else {
                format!("; {} of {total} detectors noticed first", fired.len())
            }
        );
        return Verdict::Final { outcome: Outcome::Remediated, reason, detections };
    }
    if state.all_fired() {
        let reason = if blind.is_empty() {
            format!("all {total} detectors noticed the port within the window")
        } else {
            format!("all {total} detectors that could see noticed the port within the window{could_not_see}")
        };
        return Verdict::Final { outcome: Outcome::Detected, reason, detections };
    }
    if now < record.deadline {
        return Verdict::KeepWatching;
    }
    let gaps: Vec<String> = state
        .detectors
        .iter()
        .filter(|(_, t)| t.fired.is_none() && t.blind.is_none())
        .map(|(d, _)| d.to_string())
        .collect();
    if !fired.is_empty() {
        let reason = if gaps.is_empty() {
            format!("{} of {total} detectors noticed the port{could_not_see}", fired.len())
        } else {
            format!(
                "{} of {total} detectors noticed the port; not noticed by: {}{could_not_see}",
                fired.len(),
                gaps.join(", ")
            )
        };
        return Verdict::Final { outcome: Outcome::Detected, reason, detections };
    }
    if total == 0 && !blind.is_empty() {
        let reason =
            format!("no configured detector could see the change, so nothing was measured: {}", blind.join("; "));
        return Verdict::Final { outcome: Outcome::Failed, reason, detections };
    }
    let unreadable: Vec<String> = state
        .detectors
        .iter()
        .filter(|(_, t)| t.successful_reads == 0 && t.last_error.is_some())
        .map(|(d, t)| format!("{d} ({})", t.last_error.as_deref().unwrap_or_default()))
        .collect();
    if !unreadable.is_empty() {
        let reason = format!("could not observe: {}; the experiment cannot be judged", unreadable.join("; "));
        return Verdict::Final { outcome: Outcome::Failed, reason, detections };
    }
    let reason = if total == 0 {
        "no detector was configured and nothing removed the rule within the window".to_string()
    } else {
        format!("nothing noticed the port within the window; not noticed by: {}{could_not_see}", gaps.join(", "))
    };
    Verdict::Final { outcome: Outcome::Undetected, reason, detections }
}

/// One report per configured detector, then remediation.
pub fn reports(record: &ExperimentRecord, state: &WatchState) -> Vec<DetectionReport> {
    let mut out: Vec<DetectionReport> = record
        .detectors
        .iter()
        .map(|d| {
            let track = state.detectors.get(d).cloned().unwrap_or_default();
            match track.fired {
                Some((at, evidence)) => DetectionReport {
                    detector: d.to_string(),
                    detected: true,
                    seconds_to_detect: Some(seconds_between(record.injected_at, at)),
                    evidence,
                    could_not_see: false,
                },
                None if track.blind.is_some() => DetectionReport {
                    detector: d.to_string(),
                    detected: false,
                    seconds_to_detect: None,
                    evidence: format!("could not see: {}", track.blind.unwrap_or_default()),
                    could_not_see: true,
                },
                None => DetectionReport {
                    detector: d.to_string(),
                    detected: false,
                    seconds_to_detect: None,
                    could_not_see: false,
                    evidence: track
                        .last_error
                        .filter(|_| track.successful_reads == 0)
                        .map(|e| format!("error: {e}"))
                        .or(track.last_note)
                        .unwrap_or_else(|| "not observed yet".into()),
                },
            }
        })
        .collect();
    out.push(match state.rule_gone_at {
        Some(at) if at >= record.deadline => DetectionReport {
            detector: REMEDIATION.into(),
            detected: false,
            seconds_to_detect: None,
            could_not_see: false,
            evidence: format!(
                "{} was first found gone at {}, after the deadline: closed, not remediated",
                record.security_group_rule_id,
                rfc3339(at)
            ),
        },
        Some(at) => DetectionReport {
            detector: REMEDIATION.into(),
            detected: true,
            could_not_see: false,
            seconds_to_detect: Some(seconds_between(record.injected_at, at)),
            evidence: format!("{} found removed at {}", record.security_group_rule_id, rfc3339(at)),
        },
        None => DetectionReport {
            detector: REMEDIATION.into(),
            detected: false,
            seconds_to_detect: None,
            could_not_see: false,
            evidence: format!("{} was still present", record.security_group_rule_id),
        },
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::{PortRange, Protocol};
    use std::time::{Duration, UNIX_EPOCH};

    const T0: u64 = 1_795_000_000;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(T0 + secs)
    }

    fn record(detectors: &[&str]) -> ExperimentRecord {
        ExperimentRecord {
            id: "cs-20261123T120000Z-000001".parse().unwrap(),
            security_group_id: "sg-1".into(),
            security_group_rule_id: "sgr-1".into(),
            account: None,
            protocol: Protocol::Tcp,
            ports: PortRange::single(20_000),
            cidr: "0.0.0.0/0".into(),
            injected_at: at(0),
            deadline: at(600),
            detectors: detectors.iter().map(|d| d.parse().unwrap()).collect(),
        }
    }

    fn fired(d: &str, secs: u64) -> (Detector, Reading) {
        (d.parse().unwrap(), Reading::Fired { at: at(secs), evidence: format!("{d} fired") })
    }

    fn quiet(d: &str) -> (Detector, Reading) {
        (d.parse().unwrap(), Reading::Quiet { note: "OK".into() })
    }

    #[test]
    fn keeps_watching_until_every_detector_fires_then_reports_each_time_to_detect() {
        // GIVEN two detectors
        let r = record(&["config:c", "alarm:a"]);
        let mut s = WatchState::new(&r);
        // WHEN only the alarm fires (stamped at 42s, polled at 60s)
        s.observe(&r, vec![quiet("config:c"), fired("alarm:a", 42)], true, at(60));
        assert_eq!(judge(&r, &s, at(60)), Verdict::KeepWatching);
        // AND later the Config rule fires at 95s
        s.observe(&r, vec![fired("config:c", 95), quiet("alarm:a")], true, at(120));
        // THEN detected, with times from the detectors' own stamps
        let Verdict::Final { outcome, detections, .. } = judge(&r, &s, at(120)) else { panic!("final expected") };
        assert_eq!(outcome, Outcome::Detected);
        assert_eq!(detections[0].detector, "config:c");
        assert_eq!(detections[0].seconds_to_detect, Some(95.0));
        assert_eq!(detections[1].seconds_to_detect, Some(42.0), "sticky although the alarm returned to OK");
        assert_eq!(detections[2].detector, "remediation");
        assert!(!detections[2].detected);
    }

    #[test]
    fn nothing_noticed_by_the_deadline_is_undetected() {
        let r = record(&["alarm:a"]);
        let mut s = WatchState::new(&r);
        s.observe(&r, vec![quiet("alarm:a")], true, at(599));
        assert_eq!(judge(&r, &s, at(599)), Verdict::KeepWatching);
        s.observe(&r, vec![quiet("alarm:a")], true, at(600));
        let Verdict::Final { outcome, reason, detections } = judge(&r, &s, at(600)) else { panic!() };
        assert_eq!(outcome, Outcome::Undetected);
        assert!(reason.contains("alarm:a"), "{reason}");
        assert_eq!(detections.len(), 2);
        assert!(detections.iter().all(|d| !d.detected));
    }

    #[test]
    fn partial_detection_at_the_deadline_is_detected_with_the_gap_named() {
        let r = record(&["config:c", "alarm:a"]);
        let mut s = WatchState::new(&r);
        s.observe(&r, vec![quiet("config:c"), fired("alarm:a", 10)], true, at(610));
        let Verdict::Final { outcome, reason, .. } = judge(&r, &s, at(610)) else { panic!() };
        assert_eq!(outcome, Outcome::Detected);
        assert!(reason.contains("1 of 2") && reason.contains("config:c"), "{reason}");
    }

    #[test]
    fn a_rule_that_disappears_is_remediated_even_before_detectors_fire() {
        let r = record(&["config:c"]);
        let mut s = WatchState::new(&r);
        s.observe(&r, vec![quiet("config:c")], false, at(30));
        let Verdict::Final { outcome, detections, .. } = judge(&r, &s, at(30)) else { panic!() };
        assert_eq!(outcome, Outcome::Remediated);
        assert_eq!(detections[1].detector, "remediation");
        assert_eq!(detections[1].seconds_to_detect, Some(30.0));
    }

    #[test]
    fn a_rule_first_found_gone_after_the_deadline_is_closed_not_remediated() {
        // GIVEN a rule that a tick after the deadline finds gone (window 600 s)
        let r = record(&["config:c"]);
        let mut s = WatchState::new(&r);
        s.observe(&r, vec![quiet("config:c")], true, at(300));
        s.observe(&r, vec![quiet("config:c")], false, at(610));
        // THEN it is judged on its detectors, and remediation is not credited
        let Verdict::Final { outcome, detections, .. } = judge(&r, &s, at(610)) else { panic!() };
        assert_eq!(outcome, Outcome::Undetected);
        assert!(!detections[1].detected);
        assert!(detections[1].evidence.contains("closed, not remediated"), "{}", detections[1].evidence);
    }

    #[test]
    fn detections_outside_the_experiment_are_ignored() {
        let r = record(&["alarm:a"]);
        let mut s = WatchState::new(&r);
        let before =
            (r.detectors[0].clone(), Reading::Fired { at: at(0) - Duration::from_secs(5), evidence: "old".into() });
        s.observe(&r, vec![before], true, at(10));
        s.observe(&r, vec![fired("alarm:a", 601)], true, at(601));
        let Verdict::Final { outcome, .. } = judge(&r, &s, at(601)) else { panic!() };
        assert_eq!(outcome, Outcome::Undetected);
    }

    #[test]
    fn a_detector_that_never_answered_makes_the_run_failed_not_undetected() {
        let r = record(&["securityhub"]);
        let mut s = WatchState::new(&r);
        let err = (r.detectors[0].clone(), Reading::Error { message: "AccessDenied".into() });
        s.observe(&r, vec![err], true, at(600));
        let Verdict::Final { outcome, reason, detections } = judge(&r, &s, at(600)) else { panic!() };
        assert_eq!(outcome, Outcome::Failed);
        assert!(reason.contains("AccessDenied"));
        assert_eq!(detections[0].evidence, "error: AccessDenied");
    }

    #[test]
    fn a_detector_that_cannot_see_is_reported_as_such_not_as_a_gap() {
        let r = record(&["config:c", "alarm:a"]);
        let blind = || ("config:c".parse().unwrap(), Reading::Blind { reason: "not recorded".into() });
        // The alarm fires: that is every detector that could see.
        let mut s = WatchState::new(&r);
        s.observe(&r, vec![blind(), fired("alarm:a", 42)], true, at(60));
        let Verdict::Final { outcome, reason, detections } = judge(&r, &s, at(60)) else { panic!("not final") };
        assert_eq!(outcome, Outcome::Detected);
        assert!(reason.contains("could not see: config:c (not recorded)"), "{reason}");
        let c = detections.iter().find(|d| d.detector == "config:c").unwrap();
        assert!(c.could_not_see && !c.detected && c.evidence.starts_with("could not see"), "{c:?}");
        // Nothing fires by the deadline: undetected, naming only the alarm as the gap.
        let mut s = WatchState::new(&r);
        s.observe(&r, vec![blind(), quiet("alarm:a")], true, at(600));
        let Verdict::Final { outcome, reason, .. } = judge(&r, &s, at(600)) else { panic!("not final") };
        assert_eq!(outcome, Outcome::Undetected);
        assert!(reason.contains("not noticed by: alarm:a; could not see: config:c"), "{reason}");
        // Only blind detectors: nothing was measured.
        let only = record(&["config:c"]);
        let mut s = WatchState::new(&only);
        s.observe(&only, vec![blind()], true, at(600));
        let Verdict::Final { outcome, .. } = judge(&only, &s, at(600)) else { panic!("not final") };
        assert_eq!(outcome, Outcome::Failed);
    }

    #[test]
    fn without_detectors_only_remediation_is_watched() {
        let r = record(&[]);
        let mut s = WatchState::new(&r);
        s.observe(&r, vec![], true, at(300));
        assert_eq!(judge(&r, &s, at(300)), Verdict::KeepWatching);
        let Verdict::Final { outcome, detections, .. } = judge(&r, &s, at(600)) else { panic!() };
        assert_eq!(outcome, Outcome::Undetected);
        assert_eq!(detections.len(), 1);
    }
}
