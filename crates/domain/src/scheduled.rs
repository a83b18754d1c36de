//! Unattended experiments: the scheduled inject starts one and returns at once; the
//! judge, invoked every minute, is the durable timer and the safety net.
//!
//! State lives on AWS resources only: the rule's tags (see [`crate::tags`]) and the
//! marker on its group (see [`crate::marker`]). A judge tick never needs anything it
//! did not read in that same tick, so windows of hours cost nothing and any tick can
//! finish what a crashed one started.
//!
//! A tick reverts first: every experiment that is concluded, overdue, opted out or
//! damaged is reverted (concurrently, each bounded) before any detector is read for
//! anything else. Then the rest are observed (each reading bounded by
//! [`crate::engine::DETECTOR_READ_TIMEOUT`]) and judged, concurrently, so one slow experiment or
//! detector never delays another's revert.
//!
//! Conclusion order, each step safe to repeat: mark the conclusion on the group, revoke
//! the rule, count the outcome (mark it counted), publish it (mark it recorded), remove
//! the marker. The rule is revoked before the outcome is published so that the message can
//! truthfully say whether the port is closed; the marks make a crash between any two steps
//! harmless, and the separate "counted" mark keeps a judge that dies after publishing from
//! counting the metrics twice.

use std::time::{Duration, SystemTime};

use rand::Rng;
use serde::Serialize;
use tracing::{error, info, warn};

use crate::detector::Detector;
use crate::discovery::{Found, RuleState};
use crate::engine::{Ending, Engine, EngineError, RevertReport, RunEnd, RunRequest, CLOCK_TOLERANCE};
use crate::experiment::ExperimentRecord;
use crate::judge::{self, Reading, Verdict, WatchState};
use crate::marker::{self, Conclusion};
use crate::outcome::{DetectionReport, Outcome, OutcomeReport, StartReport};
use crate::ports::{Clock, Detectors, Ingress, Recorder};
use crate::time::{rfc3339, rfc3339_millis};

/// The longest one revert may take inside a judge tick before the tick moves on (the
/// next tick retries it).
pub const REVERT_BUDGET: Duration = Duration::from_secs(25);

/// The default of `CHAOSLINGR_ORPHAN_GRACE`: how long after its deadline the judge
/// leaves alone an experiment without a group marker, or one a person's run watches: its
/// starter may still be at work, and the judge only steps in as the safety net when that
/// watcher is evidently gone.
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
    /// Experiments this tick leaves to whoever started them (a person's run, not overdue).
    pub left_to_their_starter: Vec<String>,
    /// Rules carrying our tags that are not ChaoSlingr's: reported, never revoked.
    pub not_ours: Vec<String>,
    /// Every revert this tick attempted.
    pub reverts: Vec<RevertReport>,
    /// What went wrong, one line each; the next tick retries.
    pub errors: Vec<String>,
}

impl TickReport {
    /// Whether a port may still be open that should not be: a failed revert.
    pub fn revert_failed(&self) -> bool {
        self.reverts.iter().any(|r| !r.reverted && !r.not_ours)
    }

    fn merge(&mut self, other: TickReport) {
        self.concluded.extend(other.concluded);
        self.watching.extend(other.watching);
        self.left_to_their_starter.extend(other.left_to_their_starter);
        self.not_ours.extend(other.not_ours);
        self.reverts.extend(other.reverts);
        self.errors.extend(other.errors);
    }
}

/// What a tick's first phase found and reverted, for its second phase.
#[derive(Debug)]
pub struct TickReverts {
    found: crate::discovery::Discovered,
    now: SystemTime,
    early: Vec<RevertReport>,
    report: TickReport,
}

impl TickReverts {
    /// The reverts of the first phase.
    pub fn reverts(&self) -> &[RevertReport] {
        &self.early
    }
}

/// How long after its injection time a marked experiment's change may still be missing
/// without being judged gone: techniques that write the record before the change (see
/// `IngressRequest::tags`) create it within this time.
pub const SETTLING: Duration = Duration::from_secs(30);

/// The evidence of a detection remembered from an earlier tick (its own timestamp kept).
pub(crate) fn seen_earlier(d: &Detector, at: SystemTime) -> String {
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
        let (plan, recheck) = match self.prepare(request, rng).await? {
            Ok(prepared) => prepared,
            Err(end) => return Ok(InjectEnd::Ended(end)),
        };
        if self.settings.dry_run {
            return Ok(InjectEnd::Ended(RunEnd::DryRun(self.dry_run(plan).await)));
        }
        let record = match self.inject_plan(&plan, recheck, false, || None).await {
            Ok(record) => record,
            Err(end) => return Ok(InjectEnd::Ended(end)),
        };
        let mut start = StartReport::new(plan.technique, &record, self.region.clone());
        start.account = start.account.or(self.account.clone());
        let failures = self.recorder.record_start(&start).await;
        info!(experiment_id = %record.id, deadline = %rfc3339(record.deadline), "started; the judge concludes it");
        Ok(InjectEnd::Started { record, start, record_failures: failures.iter().map(ToString::to_string).collect() })
    }

    /// The judge's "now": the later of the local clock and AWS's, so that a clock running
    /// behind never keeps a port open past its deadline (closing early is the safe side).
    fn judge_now(&self, report: &mut TickReport) -> SystemTime {
        let local = self.clock.now();
        let Some(aws) = self.ingress.aws_time() else { return local };
        let off = local.duration_since(aws).or_else(|e| Ok::<_, ()>(e.duration())).unwrap_or_default();
        if off > CLOCK_TOLERANCE {
            let line = format!(
                "the local clock is {} away from AWS's; deadlines are judged by the later of the two",
                crate::time::human(off)
            );
            warn!("{line}");
            report.errors.push(line);
        }
        local.max(aws)
    }

    /// One judge tick over every experiment: revert what is concluded, overdue, opted out
    /// or damaged; then observe and judge the rest; record; finish whatever a crashed
    /// tick left. [`Engine::tick_reverts`] then [`Engine::tick_judge`].
    pub async fn judge_tick(&self) -> Result<TickReport, EngineError> {
        let reverted = self.tick_reverts().await?;
        Ok(self.tick_judge(reverted).await)
    }

    /// A tick's first phase: find every experiment and revert, at once, each within its
    /// budget, every one that is concluded, overdue, opted out or damaged; no detector is
    /// read. Across many accounts every account's first phase runs before any account's
    /// second, so closing what is overdue never waits on another account's judging.
    pub async fn tick_reverts(&self) -> Result<TickReverts, EngineError> {
        let mut report = TickReport::default();
        let found = self.discover().await?;
        report.errors.extend(found.errors.iter().cloned());
        let now = self.judge_now(&mut report);

        for f in &found.experiments {
            if let Err(why) = &f.ours {
                warn!(rule = %f.security_group_rule_id, group = %f.security_group_id, reason = %why, "carries our tags but is not ChaoSlingr's; left alone");
                report.not_ours.push(format!("{} in {}: {why}", f.security_group_rule_id, f.security_group_id));
            }
        }

        // 1. Revert first, every experiment at once, each within its budget.
        let closing: Vec<&Found> =
            found.experiments.iter().filter(|f| f.open_and_ours() && self.must_close(f, now)).collect();
        let early: Vec<RevertReport> =
            futures_util::future::join_all(closing.iter().map(|f| self.revert_within_budget(f))).await;
        Ok(TickReverts { found, now, early, report })
    }

    /// A tick's second phase, after [`Engine::tick_reverts`]: observe, judge and record
    /// every experiment; finish what a crashed tick left; remove damaged markers.
    pub async fn tick_judge(&self, reverted: TickReverts) -> TickReport {
        let TickReverts { found, now, early, mut report } = reverted;
        // 2. Observe, judge, record: every experiment at once.
        // Rules that are not ours are never judged, except a marked experiment's own rule
        // that someone changed: that experiment is concluded (and its marker removed).
        let judged = found.experiments.iter().filter(|f| f.ours.is_ok() || f.marker.is_some());
        let ticks = futures_util::future::join_all(judged.map(|f| {
            let reverted = early.iter().find(|r| r.security_group_rule_id == f.security_group_rule_id).cloned();
            self.judge_one(f, now, reverted)
        }))
        .await;
        for t in ticks {
            report.merge(t);
        }

        // Damaged markers: once no rule of theirs is open, the marker goes.
        for d in &found.damaged_markers {
            error!(group = %d.security_group_id, error = %d.error, "damaged experiment marker");
            report.errors.push(format!("{}: damaged marker: {}", d.security_group_id, d.error));
            let still_open = found.experiments.iter().any(|f| {
                f.security_group_id == d.security_group_id
                    && f.experiment_id == d.experiment_id
                    && f.open_and_ours()
                    && !report
                        .reverts
                        .iter()
                        .any(|r| r.security_group_rule_id == f.security_group_rule_id && r.reverted)
            });
            if !still_open {
                if let Err(e) = self.ingress.untag_group(&d.security_group_id, &marker::KEYS).await {
                    report.errors.push(format!("{}: could not remove the damaged marker: {e}", d.security_group_id));
                }
            }
        }
        report
    }

    /// Whether an experiment must be closed now, before anything else is read.
    fn must_close(&self, f: &Found, now: SystemTime) -> bool {
        let Ok(record) = &f.record else {
            // Ours by shape, but its record cannot be read: no deadline to trust.
            return true;
        };
        if record.injected_at > now + CLOCK_TOLERANCE {
            return true;
        }
        match &f.marker {
            Some(m) if m.conclusion.is_some() || !f.group_opted_in => true,
            Some(m) if m.watched_by_cli => now >= record.deadline + self.settings.orphan_grace,
            Some(_) => now >= record.deadline,
            None => now >= record.deadline + self.settings.orphan_grace,
        }
    }

    async fn revert_within_budget(&self, f: &Found) -> RevertReport {
        let id = f.experiment_id.clone().unwrap_or_default();
        let revert =
            self.revert_rule(&id, &f.security_group_id, &f.security_group_rule_id, f.record.as_ref().ok(), false);
        match tokio::time::timeout(REVERT_BUDGET, revert).await {
            Ok(r) => r,
            Err(_) => {
                error!(experiment_id = %id, rule = %f.security_group_rule_id, "REVERT did not finish within its budget; the next tick retries");
                let mut r = RevertReport::new(&id, &f.security_group_id, &f.security_group_rule_id);
                r.error = Some(format!("did not finish within {}", crate::time::human(REVERT_BUDGET)));
                r
            }
        }
    }

    /// Everything a tick does for one experiment after the reverts of phase 1.
    async fn judge_one(&self, f: &Found, now: SystemTime, early: Option<RevertReport>) -> TickReport {
        let mut report = TickReport::default();
        let record = match &f.record {
            Ok(r) => r.clone(),
            Err(e) => {
                // Not decodable but ours by shape: reverted in phase 1, nothing to judge.
                error!(rule = %f.security_group_rule_id, error = %e, "damaged experiment rule; reverted");
                report.errors.push(e.clone());
                report.reverts.extend(early);
                return report;
            }
        };
        // As read at the start of the tick, before any revert of ours.
        let rule_present = match &f.rule {
            RuleState::Present(_) => f.ours.is_ok(),
            RuleState::Gone => false,
            RuleState::Unknown(_) => true,
        };
        let seen = f.marker.as_ref().map(|m| m.seen.clone()).unwrap_or_default();
        let marked = f.marker.is_some();

        if let (Err(why), Some(m)) = (&f.ours, &f.marker) {
            if m.conclusion.is_none() {
                let reason = format!(
                    "the experiment's rule {} was changed by someone else and is no longer ChaoSlingr's ({why}); it was left alone",
                    record.security_group_rule_id
                );
                let c =
                    Conclusion { outcome: Outcome::Failed, concluded_at: now, reason, counted: false, recorded: false };
                let marked = self.mark_conclusion(&record, &c, &seen, true, &mut report).await;
                let detections = self.detections_from(&record, &seen, &c);
                self.finish(&record, c, detections, f, None, marked, &mut report).await;
                return report;
            }
        }

        if let Some(c) = f.marker.as_ref().and_then(|m| m.conclusion.clone()) {
            info!(experiment_id = %record.id, outcome = %c.outcome, counted = c.counted, recorded = c.recorded, "finishing a conclusion an earlier tick marked");
            let detections = self.detections_from(&record, &seen, &c);
            self.finish(&record, c, detections, f, early, true, &mut report).await;
            return report;
        }
        if marked && !f.group_opted_in {
            warn!(experiment_id = %record.id, group = %record.security_group_id, "group opted out during the experiment; closing it");
            let reason = if rule_present {
                format!("{} was opted out during the experiment; the rule was reverted", record.security_group_id)
            } else {
                format!("{} was opted out during the experiment; its rule was already gone", record.security_group_id)
            };
            let c =
                Conclusion { outcome: Outcome::Aborted, concluded_at: now, reason, counted: false, recorded: false };
            let marked = self.mark_conclusion(&record, &c, &seen, true, &mut report).await;
            let detections = self.detections_from(&record, &seen, &c);
            self.finish(&record, c, detections, f, early, marked, &mut report).await;
            return report;
        }
        let record_first = self.technique_for(&record.security_group_id).record_first;
        if !rule_present && marked && record_first && now < record.injected_at + SETTLING {
            // A technique that writes its record onto the target before the change (a
            // network ACL entry) may still be creating it: not gone yet, only not there.
            info!(experiment_id = %record.id, "the change is not there yet; settling");
            report.watching.push(record.id.to_string());
            return report;
        }
        let overdue = self.must_close(f, now);
        let watched_by_person = f.marker.as_ref().is_none_or(|m| m.watched_by_cli);
        if watched_by_person && !overdue {
            report.left_to_their_starter.push(record.id.to_string());
            return report;
        }

        let mut state = WatchState::new(&record);
        let readings = self.observe_bounded(&record).await;
        let verdict = self.step(&record, &mut state, readings, rule_present, &seen, now);
        match verdict {
            Verdict::KeepWatching => {
                let now_seen = fired(&state);
                if now_seen.len() != seen.len() {
                    let tag = marker::encode_seen(&record, &now_seen);
                    if let Err(e) = self.ingress.tag_group(&record.security_group_id, &[tag]).await {
                        report.errors.push(format!("{}: could not remember a detection: {e}", record.id));
                    }
                }
                info!(experiment_id = %record.id, fired = now_seen.len(), of = record.detectors.len(), "watching");
                report.watching.push(record.id.to_string());
            }
            Verdict::Final { outcome, reason, detections } => {
                let reason = if watched_by_person && now >= record.deadline {
                    format!(
                        "{reason} (closed by the judge {} after its deadline)",
                        crate::time::human(now.duration_since(record.deadline).unwrap_or_default())
                    )
                } else {
                    reason
                };
                let c = Conclusion { outcome, concluded_at: now, reason, counted: false, recorded: false };
                let marked = self.mark_conclusion(&record, &c, &fired(&state), marked, &mut report).await;
                self.finish(&record, c, detections, f, early, marked, &mut report).await;
            }
        }
        report
    }

    /// Writes a decided conclusion onto the marker, so a crash from here on cannot make a
    /// later tick decide (and record) differently. An experiment whose group was never
    /// marked (its starter died between the rule and the marker) gets the whole marker
    /// now, so it is finished and unmarked like every other. Returns whether the group
    /// carries the marker.
    async fn mark_conclusion(
        &self,
        record: &ExperimentRecord,
        c: &Conclusion,
        seen: &[(Detector, SystemTime)],
        marked: bool,
        report: &mut TickReport,
    ) -> bool {
        let mut tags = if marked { Vec::new() } else { marker::encode(record, false).unwrap_or_default() };
        if !marked && tags.is_empty() {
            // No marker can be written for this record: record it without one.
            return false;
        }
        tags.extend(marker::encode_conclusion(c));
        tags.push(marker::encode_seen(record, seen));
        // Recording and closing the port matter more than the mark: go on even when it
        // cannot be written (the next tick would then judge afresh).
        match self.ingress.tag_group(&record.security_group_id, &tags).await {
            Ok(()) => true,
            Err(e) => {
                warn!(experiment_id = %record.id, error = %e, "could not mark the conclusion");
                report.errors.push(format!("{}: could not mark the conclusion: {e}", record.id));
                marked
            }
        }
    }

    /// Revoke (unless phase 1 did), count, publish, remove the marker; each step marked.
    #[allow(clippy::too_many_arguments)]
    async fn finish(
        &self,
        record: &ExperimentRecord,
        c: Conclusion,
        detections: Vec<DetectionReport>,
        f: &Found,
        early: Option<RevertReport>,
        marked: bool,
        report: &mut TickReport,
    ) {
        let revert = match early {
            Some(r) => Some(r),
            None if f.open_and_ours() => Some(self.revert_record(record).await),
            None => None,
        };
        let reverted = revert.as_ref().is_none_or(|r| r.reverted);
        if let Some(r) = revert {
            report.reverts.push(r);
        }
        let mut fully_recorded = c.recorded;
        if !c.recorded {
            let technique = self.technique_for(&record.security_group_id);
            let ending = Ending { outcome: c.outcome, reason: c.reason.clone(), detections, reverted };
            let mut outcome = self.report_for(technique, &record.id, None, Some(record), ending);
            outcome.concluded_at = rfc3339_millis(c.concluded_at);
            let mut counted = c.counted;
            if !counted {
                // Someone may have counted it and stopped before marking it (a judge or a
                // person's run killed right after PutMetricData): read the metrics back
                // first. When that read fails, record nothing this tick rather than risk
                // counting twice; the marker stays and the next tick retries.
                match self.recorder.already_counted(&outcome).await {
                    Ok(true) => {
                        info!(experiment_id = %record.id, "already counted by an earlier attempt; not counted again");
                        counted = true;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        report.errors.push(format!(
                            "{}: could not read back whether the outcome was counted ({e}); recording it next tick",
                            record.id
                        ));
                        return;
                    }
                }
            }
            if !counted {
                let failures = self.recorder.count(&outcome).await;
                counted = failures.is_empty();
                for e in failures {
                    report.errors.push(format!("{}: could not count the outcome: {e}", record.id));
                }
                if counted && marked {
                    let done = Conclusion { counted: true, ..c.clone() };
                    if let Err(e) =
                        self.ingress.tag_group(&record.security_group_id, &marker::encode_conclusion(&done)).await
                    {
                        report.errors.push(format!("{}: could not mark the outcome counted: {e}", record.id));
                    }
                }
            }
            let failures = self.recorder.publish(&outcome).await;
            let published = failures.is_empty();
            for e in failures {
                report.errors.push(format!("{}: could not publish the outcome: {e}", record.id));
            }
            fully_recorded = counted && published;
            if fully_recorded && marked {
                let done = Conclusion { counted: true, recorded: true, ..c.clone() };
                if let Err(e) =
                    self.ingress.tag_group(&record.security_group_id, &marker::encode_conclusion(&done)).await
                {
                    report.errors.push(format!("{}: could not mark the outcome recorded: {e}", record.id));
                }
            }
            report.concluded.push(outcome);
        }
        // The marker goes last, and only once the port is closed and the outcome recorded:
        // while it stays, every tick retries what is missing.
        if marked && reverted && fully_recorded {
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
        let gone = c.outcome == Outcome::Remediated;
        state.observe(record, earlier_readings(seen), !gone, c.concluded_at);
        judge::reports(record, &state)
    }
}
