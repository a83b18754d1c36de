//! Unattended experiments: the scheduled inject starts one and returns at once; the
//! judge, invoked every minute, is the durable timer and the safety net.
//!
//! State lives on AWS resources only: the rule's tags (see [`crate::tags`]) and the
//! marker on its group (see [`crate::marker`]). A judge tick never needs anything it
//! did not read in that same tick, so windows of hours cost nothing and any tick can
//! finish what a crashed one started.
//!
//! Conclusion order, each step safe to repeat: mark the conclusion on the group, revoke
//! the rule, publish and count the outcome, mark it recorded, remove the marker. The rule
//! is revoked before the outcome is published so that the message can truthfully say
//! whether the port is closed; the marker is what makes a crash between any two steps
//! harmless.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use rand::Rng;
use serde::Serialize;
use tracing::{error, info, warn};

use crate::detector::Detector;
use crate::engine::{Engine, EngineError, RevertReport, RunEnd, RunRequest};
use crate::experiment::{Experiment, ExperimentRecord, Plan};
use crate::judge::{self, Reading, Verdict, WatchState};
use crate::marker::{self, Conclusion, Marker};
use crate::outcome::{DetectionReport, OutcomeReport, StartReport};
use crate::ports::{Clock, Detectors, Ingress, Recorder};
use crate::tags::{self, TaggedRule};
use crate::time::{rfc3339, rfc3339_millis};

/// How long after its deadline the judge leaves an experiment without a group marker
/// alone: such an experiment was started by someone who watches it (the CLI), and the
/// judge only steps in as the safety net when that watcher is evidently gone.
pub const ORPHAN_GRACE: Duration = Duration::from_secs(120);

/// How the scheduled inject ended.
// One value per invocation: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum InjectEnd {
    /// The rule is open and marked; the judge takes it from here.
    Started { record: ExperimentRecord, start: StartReport, record_failures: Vec<String> },
    /// Nothing is open: aborted, prevented, failed, stepped back, or a dry run.
    Ended(RunEnd),
}

/// What one judge tick did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TickReport {
    /// Experiments concluded (and recorded) by this tick.
    pub concluded: Vec<OutcomeReport>,
    /// Experiments still being watched, by id.
    pub watching: Vec<String>,
    /// Experiments this tick leaves to whoever started them (no marker, not overdue).
    pub left_to_their_starter: Vec<String>,
    /// Every revert this tick attempted.
    pub reverts: Vec<RevertReport>,
    /// What went wrong, one line each; the next tick retries.
    pub errors: Vec<String>,
}

impl TickReport {
    /// Whether a port may still be open that should not be: a failed revert.
    pub fn revert_failed(&self) -> bool {
        self.reverts.iter().any(|r| !r.reverted)
    }
}

fn plan_of(record: &ExperimentRecord) -> Plan {
    Plan {
        id: record.id.clone(),
        security_group_id: record.security_group_id.clone(),
        account: record.account.clone(),
        protocol: record.protocol,
        ports: record.ports,
        cidr: record.cidr.clone(),
        detectors: record.detectors.clone(),
        window: record.deadline.duration_since(record.injected_at).unwrap_or_default(),
    }
}

/// The evidence of a detection remembered from an earlier tick (its own timestamp kept).
fn seen_earlier(d: &Detector, at: SystemTime) -> String {
    format!("{d} noticed at {} (seen by an earlier judge tick)", rfc3339_millis(at))
}

/// What earlier ticks saw, as readings.
fn earlier_readings(seen: &[(Detector, SystemTime)]) -> Vec<(Detector, Reading)> {
    seen.iter().map(|(d, at)| (d.clone(), Reading::Fired { at: *at, evidence: seen_earlier(d, *at) })).collect()
}

fn fired(state: &WatchState) -> Vec<(Detector, SystemTime)> {
    state.detectors.iter().filter_map(|(d, t)| t.fired.as_ref().map(|(at, _)| (d.clone(), *at))).collect()
}

impl<I: Ingress, D: Detectors, R: Recorder, C: Clock> Engine<I, D, R, C> {
    /// Starts one experiment without waiting for it: pre-flight, plan, inject, mark the
    /// group, announce. Returns as soon as the rule is open.
    pub async fn inject(&self, request: &RunRequest, rng: &mut (impl Rng + Send)) -> Result<InjectEnd, EngineError> {
        let plan = match self.prepare(request, rng).await? {
            Ok(plan) => plan,
            Err(end) => return Ok(InjectEnd::Ended(end)),
        };
        if self.settings.dry_run {
            return Ok(InjectEnd::Ended(RunEnd::DryRun(self.dry_run(plan).await)));
        }
        let mut experiment = Experiment::planned(plan.clone());
        let record = match self.inject_plan(&plan, &mut experiment, || None).await {
            Ok(record) => record,
            Err(end) => return Ok(InjectEnd::Ended(end)),
        };

        // Without the marker the judge could not tell a remediated rule from a vanished
        // one: any doubt means the experiment does not run.
        let marked = match marker::encode(&record) {
            Ok(tags) => self.ingress.tag_group(&record.security_group_id, &tags).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = marked {
            warn!(experiment_id = %record.id, error = %e, "could not mark the group; stepping back");
            let revert = self.revert_record(&record).await;
            let _ = self.ingress.untag_group(&record.security_group_id, &marker::KEYS).await;
            let _ = experiment.conclude(crate::outcome::Outcome::Aborted, &plan);
            let reason =
                format!("could not mark {} for the judge ({e}); the rule was reverted", record.security_group_id);
            let end = self
                .conclude(&plan, Some(&record), crate::outcome::Outcome::Aborted, reason, vec![], Some(revert))
                .await;
            return Ok(InjectEnd::Ended(end));
        }

        let start = StartReport::new(&record, self.region.clone());
        let failures = self.recorder.record_start(&start).await;
        info!(experiment_id = %record.id, deadline = %rfc3339(record.deadline), "started; the judge concludes it");
        Ok(InjectEnd::Started { record, start, record_failures: failures.iter().map(ToString::to_string).collect() })
    }

    /// One judge tick over every active experiment: observe, conclude what is decided,
    /// revert what is concluded or overdue, finish whatever a crashed tick left.
    pub async fn judge_tick(&self) -> Result<TickReport, EngineError> {
        let mut report = TickReport::default();
        let groups = self.ingress.opted_in_groups(&self.settings.opt_in_tag).await?;
        let rules = self.ingress.experiment_rules().await?;
        let mut handled: HashSet<String> = HashSet::new();

        for group in groups.iter().filter(|g| marker::is_marked(&g.tags)) {
            match marker::decode(&group.id, group.owner_id.as_deref(), &group.tags) {
                Ok(m) => {
                    handled.insert(m.record.security_group_rule_id.clone());
                    let rule = rules.iter().find(|r| r.security_group_rule_id == m.record.security_group_rule_id);
                    if self.settings.is_opted_in(group.tag_pairs()) {
                        self.judge_marked(m, rule, &mut report).await;
                    } else {
                        self.close_opted_out(m, rule, &mut report).await;
                    }
                }
                Err(e) => {
                    // A damaged marker cannot be judged: close whatever rule carries its
                    // experiment id, then drop the marker.
                    let id = group.tags.iter().find(|(k, _)| k == tags::EXPERIMENT_ID).map(|(_, v)| v.clone());
                    error!(group = %group.id, error = %e, "damaged experiment marker; reverting its rule");
                    report.errors.push(format!("{}: {e}", group.id));
                    let mut all_gone = true;
                    for rule in
                        rules.iter().filter(|r| r.security_group_id == group.id && r.experiment_id() == id.as_deref())
                    {
                        handled.insert(rule.security_group_rule_id.clone());
                        let r = self
                            .revert_rule(
                                id.as_deref().unwrap_or_default(),
                                &rule.security_group_id,
                                &rule.security_group_rule_id,
                            )
                            .await;
                        all_gone &= r.reverted;
                        report.reverts.push(r);
                    }
                    if all_gone {
                        if let Err(e) = self.ingress.untag_group(&group.id, &marker::KEYS).await {
                            report.errors.push(format!("{}: could not remove the damaged marker: {e}", group.id));
                        }
                    }
                }
            }
        }

        for rule in rules.iter().filter(|r| !handled.contains(&r.security_group_rule_id)) {
            self.judge_unmarked(rule, &mut report).await;
        }
        Ok(report)
    }

    /// An experiment with a group marker: the scheduled kind.
    async fn judge_marked(&self, m: Marker, rule: Option<&TaggedRule>, report: &mut TickReport) {
        let record = m.record.clone();
        let rule_present = rule.is_some_and(|r| r.experiment_id() == Some(record.id.as_str()));
        if let Some(c) = m.conclusion.clone() {
            info!(experiment_id = %record.id, outcome = %c.outcome, recorded = c.recorded, "finishing a conclusion an earlier tick marked");
            let detections = self.detections_from(&record, &m.seen, &c);
            self.finish(&record, c, detections, rule_present, true, report).await;
            return;
        }

        let now = self.clock.now();
        let mut state = WatchState::new(&record);
        let readings = self.detectors.observe(&record).await;
        state.observe(&record, readings, rule_present, now);
        // Earlier ticks' firings count, at their own (earliest) timestamps: an alarm that
        // fired and returned to OK between ticks is not forgotten.
        for (d, at) in &m.seen {
            if let Some(track) = state.detectors.get_mut(d) {
                if track.fired.as_ref().is_none_or(|(t, _)| at < t) {
                    track.fired = Some((*at, seen_earlier(d, *at)));
                }
            }
        }

        match judge::judge(&record, &state, now) {
            Verdict::KeepWatching => {
                let now_seen = fired(&state);
                if now_seen.len() != m.seen.len() {
                    let tag = marker::encode_seen(&record, &now_seen);
                    if let Err(e) = self.ingress.tag_group(&record.security_group_id, &[tag]).await {
                        report.errors.push(format!("{}: could not remember a detection: {e}", record.id));
                    }
                }
                info!(experiment_id = %record.id, fired = now_seen.len(), of = record.detectors.len(), "watching");
                report.watching.push(record.id.to_string());
            }
            Verdict::Final { outcome, reason, detections } => {
                let c = Conclusion { outcome, concluded_at: now, reason, recorded: false };
                let mut tags = marker::encode_conclusion(&c);
                tags.push(marker::encode_seen(&record, &fired(&state)));
                // Recording and closing the port matter more than the mark: go on even
                // when it cannot be written (the next tick would then judge afresh).
                if let Err(e) = self.ingress.tag_group(&record.security_group_id, &tags).await {
                    warn!(experiment_id = %record.id, error = %e, "could not mark the conclusion");
                    report.errors.push(format!("{}: could not mark the conclusion: {e}", record.id));
                }
                self.finish(&record, c, detections, rule_present, true, report).await;
            }
        }
    }

    /// The owners opted the group out during the experiment: close the port now and
    /// record `aborted` once, without writing to the group again (its marker stays; a
    /// later tick finds no rule under it and leaves it alone).
    async fn close_opted_out(&self, m: Marker, rule: Option<&TaggedRule>, report: &mut TickReport) {
        let record = m.record;
        if rule.is_none_or(|r| r.experiment_id() != Some(record.id.as_str())) {
            tracing::debug!(experiment_id = %record.id, group = %record.security_group_id, "marker on an opted-out group, nothing open");
            return;
        }
        warn!(experiment_id = %record.id, group = %record.security_group_id, "group opted out during the experiment; closing it");
        let reason = format!("{} was opted out during the experiment; the rule was reverted", record.security_group_id);
        let c = Conclusion {
            outcome: crate::outcome::Outcome::Aborted,
            concluded_at: self.clock.now(),
            reason,
            recorded: false,
        };
        let detections = self.detections_from(&record, &m.seen, &c);
        self.finish(&record, c, detections, true, false, report).await;
    }

    /// A rule without a marker: started by someone who watches it (the CLI), or a
    /// scheduled inject that crashed before marking. Left alone until its deadline plus
    /// [`ORPHAN_GRACE`], then judged once and closed.
    async fn judge_unmarked(&self, rule: &TaggedRule, report: &mut TickReport) {
        let now = self.clock.now();
        match tags::decode(rule) {
            Ok(record) if now < record.deadline + ORPHAN_GRACE => {
                report.left_to_their_starter.push(record.id.to_string());
            }
            Ok(record) => {
                warn!(experiment_id = %record.id, deadline = %rfc3339(record.deadline), "overdue experiment without a watcher; closing it");
                let mut state = WatchState::new(&record);
                let readings = self.detectors.observe(&record).await;
                state.observe(&record, readings, true, now);
                let (outcome, reason, detections) = match judge::judge(&record, &state, now) {
                    Verdict::Final { outcome, reason, detections } => (outcome, reason, detections),
                    Verdict::KeepWatching => unreachable!("an overdue experiment always has a verdict"),
                };
                let reason = format!(
                    "{reason} (closed by the judge {} after its deadline)",
                    crate::time::human(now.duration_since(record.deadline).unwrap_or_default())
                );
                let c = Conclusion { outcome, concluded_at: now, reason, recorded: false };
                self.finish(&record, c, detections, true, false, report).await;
            }
            Err(e) => {
                // Not decodable, but it carries our experiment id: it is ours and it is
                // open. Close it now rather than guess its deadline.
                error!(rule = %rule.security_group_rule_id, error = %e, "damaged experiment rule; reverting it");
                report.errors.push(e.to_string());
                let id = rule.experiment_id().unwrap_or_default().to_string();
                report.reverts.push(self.revert_rule(&id, &rule.security_group_id, &rule.security_group_rule_id).await);
            }
        }
    }

    /// Revoke, record (unless an earlier tick did), mark recorded, remove the marker.
    async fn finish(
        &self,
        record: &ExperimentRecord,
        c: Conclusion,
        detections: Vec<DetectionReport>,
        rule_present: bool,
        marked: bool,
        report: &mut TickReport,
    ) {
        let revert = if rule_present { Some(self.revert_record(record).await) } else { None };
        let reverted = revert.as_ref().is_none_or(|r| r.reverted);
        if let Some(r) = revert {
            report.reverts.push(r);
        }
        if !c.recorded {
            let plan = plan_of(record);
            let mut outcome = self.report_for(
                &record.id,
                Some(&plan),
                Some(record),
                c.outcome,
                c.reason.clone(),
                detections,
                reverted,
            );
            outcome.concluded_at = rfc3339_millis(c.concluded_at);
            let failures = self.recorder.record(&outcome).await;
            for f in &failures {
                report.errors.push(format!("{}: could not record the outcome: {f}", record.id));
            }
            if marked {
                let done = Conclusion { recorded: true, ..c.clone() };
                if let Err(e) =
                    self.ingress.tag_group(&record.security_group_id, &marker::encode_conclusion(&done)).await
                {
                    report.errors.push(format!("{}: could not mark the outcome recorded: {e}", record.id));
                }
            }
            report.concluded.push(outcome);
        }
        // The marker goes last, and only once the port is closed: while it stays, every
        // tick tries the revert again.
        if marked && reverted {
            if let Err(e) = self.ingress.untag_group(&record.security_group_id, &marker::KEYS).await {
                report.errors.push(format!("{}: could not remove the marker: {e}", record.id));
            }
        }
        if !reverted {
            error!(experiment_id = %record.id, "REVERT FAILED: the next judge tick retries");
        }
    }

    /// Detections rebuilt from a marker, for a conclusion an earlier tick decided.
    fn detections_from(
        &self,
        record: &ExperimentRecord,
        seen: &[(Detector, SystemTime)],
        c: &Conclusion,
    ) -> Vec<DetectionReport> {
        let mut state = WatchState::new(record);
        let gone = c.outcome == crate::outcome::Outcome::Remediated;
        state.observe(record, earlier_readings(seen), !gone, c.concluded_at);
        judge::reports(record, &state)
    }
}
