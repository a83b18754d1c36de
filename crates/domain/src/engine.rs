//! The lifecycle of one port-change experiment over the [`crate::ports`] traits:
//! pre-flight → plan → inject → watch → revert → record.
//!
//! Safety rules enforced here, whatever the adapters do:
//! - nothing is written before pre-flight, planning and validation are done;
//! - the opt-in tag is re-read right before the rule is created;
//! - once a rule may exist, the revert runs on every path: a final verdict, an error, a
//!   cancellation (Ctrl-C, SIGTERM) and a panic while watching;
//! - the local clock must agree with AWS's within [`CLOCK_TOLERANCE`] before a write;
//! - every experiment marks its group (see [`crate::marker`]) so the judge can finish it;
//! - a revert only ever removes a rule that is ChaoSlingr's (see [`crate::ownership`]).

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, SystemTime};

use futures_util::FutureExt;
use rand::Rng;
use serde::Serialize;
use tracing::{error, info, warn};

use crate::config::Settings;
use crate::detector::Detector;
use crate::experiment::{deadline_for, whole_millis, ExperimentId, ExperimentRecord, Plan};
use crate::judge::{self, Verdict, WatchState};
use crate::outcome::{DetectionReport, Outcome, OutcomeReport, SCHEMA};
use crate::ports::{
    AlarmState, AlarmValue, AuthorizeOutcome, CallError, Clock, DenialSource, Detectors, FailureKind, Ingress,
    IngressRequest, Recorder, RevokeOutcome,
};
use crate::selection::{self, GroupInfo, Ineligible};
use crate::tags::{self, TagError, TaggedRule};
use crate::technique::{self, TechniqueRef};
use crate::time::rfc3339;
use crate::{marker, ownership};

/// Errors that stop a command before anything was written.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The request itself is wrong (exit status 2); nothing was changed.
    #[error("{0}")]
    BadInput(String),
    /// A call failed where no outcome applies (listing, reverting on request).
    #[error(transparent)]
    Call(#[from] CallError),
}

/// How far the local clock may be from AWS's (the `Date` of EC2's answers) before a run
/// refuses to write: injection times and deadlines come from this clock.
pub const CLOCK_TOLERANCE: Duration = Duration::from_secs(30);

/// The planned group read again after it was chosen: what the opt-in re-check right
/// before the write decides on.
pub(crate) type Recheck = Result<Option<GroupInfo>, CallError>;

/// How long one reading of an experiment's detectors may take; a slow or throttled
/// detector then reads as an error instead of holding up the watch or a judge tick.
pub const DETECTOR_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// What `run` was asked to do beyond the settings.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    /// The technique (`port-change`, `nacl-entry`); `None` for the target's technique,
    /// or the default one (the first registered) when no target is named either.
    pub experiment: Option<String>,
    /// Target this group (or ACL) instead of choosing one; it must be opted in.
    pub target: Option<String>,
    /// Started by a schedule, not a person: pre-flight aborts (kill switch, outside the
    /// allowed hours, maximum active) are published marked `quiet`: the archive keeps
    /// them and the report shows them, but Slack is not told on every schedule that
    /// nothing ran.
    pub scheduled: bool,
}

/// What one account and region offers a run (see [`Engine::candidates`]).
#[derive(Debug, Clone, Default)]
pub struct Candidates {
    /// Targets that pass every check but the Config compliance one.
    pub eligible: Vec<GroupInfo>,
    /// Ids of every opted-in target of the technique, eligible or not.
    pub opted_in: Vec<String>,
    /// Ids of the experiments active there.
    pub active: Vec<String>,
}

/// A group and whether it can take an experiment now.
#[derive(Debug, Clone)]
pub struct TargetStatus {
    pub group: GroupInfo,
    pub eligibility: Result<(), Ineligible>,
}

/// What the watch loop reports after every tick, for a progress display.
#[derive(Debug)]
pub struct Progress<'a> {
    pub record: &'a ExperimentRecord,
    pub state: &'a WatchState,
    pub now: SystemTime,
}

/// The result of reverting one experiment rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RevertReport {
    pub experiment_id: String,
    pub security_group_id: String,
    pub security_group_rule_id: String,
    /// The rule is verified gone.
    pub reverted: bool,
    /// It was already gone before we revoked it.
    pub already_gone: bool,
    /// The rule carries our tags but is not ChaoSlingr's (see [`crate::ownership`]): it
    /// was left alone, and `error` says why.
    pub not_ours: bool,
    pub error: Option<String>,
}

impl RevertReport {
    pub(crate) fn new(experiment_id: &str, group_id: &str, rule_id: &str) -> Self {
        RevertReport {
            experiment_id: experiment_id.to_string(),
            security_group_id: group_id.to_string(),
            security_group_rule_id: rule_id.to_string(),
            reverted: false,
            already_gone: false,
            not_ours: false,
            error: None,
        }
    }
}

/// A dry run: what would have been injected, and whether EC2 would allow it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DryRunReport {
    pub schema: &'static str,
    pub plan: Plan,
    /// `would-succeed` or `denied: <reason>`.
    pub permission_check: String,
}

/// How `run` ended.
// One value per run, moved once: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum RunEnd {
    Concluded { report: OutcomeReport, revert: Option<RevertReport>, record_failures: Vec<String> },
    DryRun(DryRunReport),
}

/// Why the watch stopped.
enum WatchEnd {
    Verdict {
        outcome: Outcome,
        reason: String,
        detections: Vec<DetectionReport>,
    },
    Cancelled {
        reason: String,
        detections: Vec<DetectionReport>,
    },
    /// The owners opted the group out. `judge_has_it`: the judge already concluded the
    /// experiment (its marker is gone or carries a conclusion), so this run records
    /// nothing more: one experiment, one outcome.
    OptedOut {
        judge_has_it: bool,
        detections: Vec<DetectionReport>,
    },
}

/// Drives experiments over the capability traits.
pub struct Engine<I, D, R, C> {
    pub ingress: I,
    pub detectors: D,
    pub recorder: R,
    pub clock: C,
    pub settings: Settings,
    /// The AWS region, for reports.
    pub region: Option<String>,
    /// The account, when known without asking (a target account of a hub deployment):
    /// for reports whose change does not name its owner.
    pub account: Option<String>,
}

const REVERT_ATTEMPTS: u32 = 4;

/// What must hold before a revoke.
#[derive(Clone, Copy)]
enum Check<'a> {
    /// The rule must be ChaoSlingr's ([`crate::ownership`]). `created_here`: this
    /// process's own authorize call returned the id, so a failed re-read does not keep
    /// the port open (the rule is revoked anyway).
    Ours { record: Option<&'a ExperimentRecord>, created_here: bool },
    /// A person named the rule (`revert --force`): no ownership check.
    Forced,
}

impl<I: Ingress, D: Detectors, R: Recorder, C: Clock> Engine<I, D, R, C> {
    /// Every opted-in group and whether it is eligible, with the reason when not.
    pub async fn targets(&self) -> Result<Vec<TargetStatus>, EngineError> {
        let groups = self.ingress.groups_with_tag_key(&self.settings.opt_in_tag).await?;
        let mut active = self.active_by_group().await?;
        mark_busy(&mut active, &groups);
        let mut out = Vec::with_capacity(groups.len());
        for group in groups {
            let mut eligibility = selection::basic_eligibility(&group, &active, &self.settings);
            if eligibility.is_ok() {
                eligibility = self.config_eligibility(&group).await?;
            }
            out.push(TargetStatus { group, eligibility });
        }
        out.sort_by(|a, b| a.group.id.cmp(&b.group.id));
        Ok(out)
    }

    /// Every experiment, found through group markers and rule tags (see
    /// [`crate::discovery`]), with whether each rule is ChaoSlingr's.
    pub async fn active(&self) -> Result<crate::discovery::Discovered, EngineError> {
        self.discover().await
    }

    async fn active_by_group(&self) -> Result<HashMap<String, ExperimentId>, CallError> {
        Ok(by_group(&self.ingress.experiment_rules().await?))
    }

    fn config_rules(&self) -> Vec<String> {
        self.settings
            .detectors
            .iter()
            .filter_map(|d| match d {
                Detector::Config { rule } => Some(rule.clone()),
                _ => None,
            })
            .collect()
    }

    async fn config_eligibility(&self, group: &GroupInfo) -> Result<Result<(), Ineligible>, CallError> {
        let rules = self.config_rules();
        if rules.is_empty() {
            return Ok(Ok(()));
        }
        let already = self.detectors.noncompliant_rules(self.technique_for(&group.id), &group.id, &rules).await?;
        Ok(match already.into_iter().next() {
            Some(rule) => Err(Ineligible::AlreadyNonCompliant { rule }),
            None => Ok(()),
        })
    }

    /// Runs one experiment to its end. `cancel` resolves when the user or the platform
    /// asks to stop (Ctrl-C, SIGTERM, the Lambda deadline); the rule is then reverted.
    pub async fn run(
        &self,
        request: &RunRequest,
        rng: &mut (impl Rng + Send),
        progress: &mut (dyn FnMut(&Progress<'_>) + Send),
        cancel: impl Future<Output = String> + Send,
    ) -> Result<RunEnd, EngineError> {
        let (plan, recheck) = match self.prepare(request, rng).await? {
            Ok(prepared) => prepared,
            Err(end) => return Ok(end),
        };
        if self.settings.dry_run {
            return Ok(RunEnd::DryRun(self.dry_run(plan).await));
        }
        self.inject_watch_revert(plan, recheck, progress, cancel).await
    }

    /// Validation, pre-flight and planning: everything before the first write. `Err` is
    /// bad input (nothing changed); `Ok(Err(end))` an aborted run, already recorded.
    pub(crate) async fn prepare(
        &self,
        request: &RunRequest,
        rng: &mut (impl Rng + Send),
    ) -> Result<Result<(Plan, Recheck), RunEnd>, EngineError> {
        let technique = self.requested_technique(request)?;
        // The three pre-flight reads are independent and go out together: the opted-in
        // groups, the active experiments and the alarm states. Nothing is written before
        // all three are back and checked.
        let alarm_names = self.preflight_alarm_names();
        let watches_config = !self.config_rules().is_empty();
        let (groups, active, alarms, recorders) = tokio::join!(
            self.ingress.groups_with_tag_key(&self.settings.opt_in_tag),
            self.ingress.experiment_rules(),
            async {
                if alarm_names.is_empty() {
                    Ok(Vec::new())
                } else {
                    self.detectors.alarm_states(&alarm_names).await
                }
            },
            async {
                if watches_config {
                    self.detectors.config_recorders().await
                } else {
                    Ok(None)
                }
            },
        );
        let groups: Vec<GroupInfo> = match groups {
            Ok(g) => g.into_iter().filter(|g| technique.owns_target(&g.id)).collect(),
            Err(e) => {
                let reason = format!("could not list opted-in {}: {e}", technique.targets);
                return Ok(Err(self.aborted_before_plan(technique, reason).await));
            }
        };
        // Validate the request before anything else: a target that is not opted in is
        // refused without a single write.
        if let Some(target) = &request.target {
            let found = groups.iter().find(|g| &g.id == target);
            if !found.is_some_and(|g| self.settings.is_opted_in(g.tag_pairs())) {
                return Err(EngineError::BadInput(format!(
                    "{} {target} is not opted in (it needs tag {}={}) or does not exist; nothing was changed",
                    technique.target, self.settings.opt_in_tag, self.settings.opt_in_value
                )));
            }
        }

        let active = match active {
            Ok(rules) => rules,
            Err(e) => {
                let reason = format!("could not list active experiments: {e}");
                return Ok(Err(self.aborted_before_plan(technique, reason).await));
            }
        };
        // Not knowing whether Config sees is not a reason to stop: the compliance reads
        // themselves show whether Config answers.
        let blind = match recorders {
            Ok(Some(recorders)) => crate::recording::blindness(&recorders, technique.config_resource_type),
            Ok(None) => None,
            Err(e) => {
                warn!(error = %e, "could not read the AWS Config recorders; assuming they record the change");
                None
            }
        };
        if let Some(why) = blind.filter(|_| !self.settings.allow_blind_detectors) {
            let rules: Vec<String> = self.config_rules().iter().map(|r| format!("config:{r}")).collect();
            let reason = format!(
                "{} cannot see a {technique} change: {why}. Record {} continuously, or run anyway with --allow-blind-detectors (CHAOSLINGR_ALLOW_BLIND_DETECTORS=true) to report it as `could not see`",
                rules.join(", "),
                technique.config_resource_type
            );
            return Ok(Err(self.aborted_before_plan(technique, reason).await));
        }
        if let Err(reason) = self.preflight(&active, alarms) {
            if request.scheduled {
                return Ok(Err(self.aborted_quietly(technique, reason).await));
            }
            return Ok(Err(self.aborted_before_plan(technique, reason).await));
        }

        let plan = match self.plan(technique, &groups, request, &active, rng).await {
            Ok(plan) => plan,
            Err(reason) => return Ok(Err(self.aborted_before_plan(technique, reason).await)),
        };
        info!(experiment_id = %plan.0.id, experiment = %technique, target = %plan.0.security_group_id, protocol = %plan.0.protocol, ports = %plan.0.ports, "planned");
        Ok(Ok(plan))
    }

    /// The alarms pre-flight reads: the stop conditions and the alarm detectors.
    fn preflight_alarm_names(&self) -> Vec<String> {
        let mut names = self.settings.stop_alarms.clone();
        names.extend(self.alarm_detectors());
        names
    }

    fn alarm_detectors(&self) -> Vec<String> {
        self.settings
            .detectors
            .iter()
            .filter_map(|d| match d {
                Detector::Alarm { name } => Some(name.clone()),
                _ => None,
            })
            .collect()
    }

    /// The pre-flight checks that need no AWS call: the kill switch and the allowed
    /// hours. Checked once for every target before anything is listed.
    pub fn schedule_preflight(&self) -> Result<(), String> {
        let s = &self.settings;
        if !s.enabled {
            return Err("the kill switch is on (CHAOSLINGR_ENABLED=false)".into());
        }
        let now = self.clock.now();
        if let Some(hours) = s.allowed_hours {
            if !hours.contains(now) {
                return Err(format!("{} is outside the allowed hours (CHAOSLINGR_ALLOWED_HOURS)", rfc3339(now)));
            }
        }
        Ok(())
    }

    /// What one account and region offers a run of `technique`: its targets that pass
    /// the checks needing no further call (opted in, not busy, free ports), and the ids
    /// of its active experiments (for the limits across accounts).
    pub async fn candidates(&self, technique: TechniqueRef) -> Result<Candidates, CallError> {
        let (groups, rules) =
            tokio::join!(self.ingress.groups_with_tag_key(&self.settings.opt_in_tag), self.ingress.experiment_rules());
        let (groups, rules) = (groups?, rules?);
        let mut active = by_group(&rules);
        mark_busy(&mut active, &groups);
        let mut active_ids: Vec<String> = active.values().map(ToString::to_string).collect();
        active_ids.sort();
        let mine: Vec<GroupInfo> = groups.into_iter().filter(|g| technique.owns_target(&g.id)).collect();
        let opted_in = mine.iter().filter(|g| self.settings.is_opted_in(g.tag_pairs())).map(|g| g.id.clone()).collect();
        let eligible =
            mine.into_iter().filter(|g| selection::basic_eligibility(g, &active, &self.settings).is_ok()).collect();
        Ok(Candidates { eligible, opted_in, active: active_ids })
    }

    /// Whether a candidate is not already NON_COMPLIANT for a configured Config rule (one
    /// call per group, so it is asked only of the candidate about to be chosen).
    pub async fn config_eligible(&self, group: &GroupInfo) -> Result<Result<(), Ineligible>, CallError> {
        self.config_eligibility(group).await
    }

    /// Records an abort decided before anything was planned (published `quiet` when a
    /// schedule started the run and `quiet` is asked, as pre-flight aborts are).
    pub async fn abort_unplanned(
        &self,
        request: &RunRequest,
        reason: String,
        quiet: bool,
    ) -> Result<RunEnd, EngineError> {
        let technique = self.requested_technique(request)?;
        Ok(if quiet && request.scheduled {
            self.aborted_quietly(technique, reason).await
        } else {
            self.aborted_before_plan(technique, reason).await
        })
    }

    /// Pre-flight, on what was read: any doubt means no injection.
    fn preflight(&self, active: &[TaggedRule], alarms: Result<Vec<AlarmState>, CallError>) -> Result<(), String> {
        let s = &self.settings;
        self.schedule_preflight()?;
        let now = self.clock.now();
        // Injection times and deadlines are written from this clock, and the judge reads
        // them with AWS's: refuse to start when the two disagree.
        if let Some(aws) = self.ingress.aws_time() {
            let (off, direction) = match now.duration_since(aws) {
                Ok(ahead) => (ahead, "ahead of"),
                Err(behind) => (behind.duration(), "behind"),
            };
            if off > CLOCK_TOLERANCE {
                return Err(format!(
                    "the local clock is {} {direction} AWS's clock (more than {}): injection times and deadlines would be wrong; synchronise it (NTP) and retry",
                    crate::time::human(off),
                    crate::time::human(CLOCK_TOLERANCE)
                ));
            }
        }
        if active.len() >= s.max_active {
            let ids: Vec<&str> = active.iter().filter_map(|r| r.experiment_id()).collect();
            return Err(format!(
                "{} experiment(s) already active ({}), the maximum is {} (CHAOSLINGR_MAX_ACTIVE)",
                active.len(),
                ids.join(", "),
                s.max_active
            ));
        }
        let states = alarms.map_err(|e| format!("could not read alarm states: {e}"))?;
        for stop in &s.stop_alarms {
            match states.iter().find(|a| &a.name == stop) {
                Some(a) if a.state == AlarmValue::Alarm => {
                    return Err(format!("stop-condition alarm {stop} is in ALARM"))
                }
                Some(_) => {}
                None => return Err(format!("stop-condition alarm {stop} does not exist")),
            }
        }
        for name in &self.alarm_detectors() {
            match states.iter().find(|a| &a.name == name) {
                Some(a) if a.state == AlarmValue::Alarm => {
                    return Err(format!(
                        "detector alarm:{name} is already in ALARM, so it could not show a new detection"
                    ))
                }
                Some(_) => {}
                None => return Err(format!("detector alarm:{name} does not exist")),
            }
        }
        Ok(())
    }

    /// Plan: uniform over eligible groups, then a free port range on the chosen one. The
    /// chosen group's Config compliance and its fresh read for the opt-in re-check go out
    /// together; the re-check is still the last read before the write.
    async fn plan(
        &self,
        technique: TechniqueRef,
        groups: &[GroupInfo],
        request: &RunRequest,
        active_rules: &[TaggedRule],
        rng: &mut (impl Rng + Send),
    ) -> Result<(Plan, Recheck), String> {
        let mut active = by_group(active_rules);
        mark_busy(&mut active, groups);
        let candidates: Vec<&GroupInfo> = match &request.target {
            Some(t) => groups.iter().filter(|g| &g.id == t).collect(),
            None => selection::random_order(groups, rng),
        };
        let mut reasons: HashMap<String, usize> = HashMap::new();
        for group in candidates {
            let mut verdict = selection::basic_eligibility(group, &active, &self.settings);
            let mut recheck = None;
            if verdict.is_ok() {
                let (compliance, fresh) = tokio::join!(self.config_eligibility(group), self.ingress.group(&group.id));
                verdict = compliance.map_err(|e| format!("could not read Config compliance of {}: {e}", group.id))?;
                recheck = Some(fresh);
            }
            match verdict {
                Ok(()) => {
                    let req = selection::port_request(group, &self.settings);
                    let (protocol, ports) = crate::port_choice::choose_by(self.settings.port_choice, &req, rng)
                        .map_err(|e| e.to_string())?;
                    let recheck = recheck.expect("an eligible group was read again");
                    let plan = Plan {
                        id: ExperimentId::generate(self.clock.now(), rng),
                        technique,
                        security_group_id: group.id.clone(),
                        account: group.owner_id.clone(),
                        protocol,
                        ports,
                        cidr: self.settings.cidr.clone(),
                        detectors: self.settings.detectors.clone(),
                        window: self.settings.window,
                    };
                    return Ok((plan, recheck));
                }
                Err(why) if request.target.is_some() => {
                    return Err(format!("target {} is not eligible: {why}", group.id));
                }
                Err(Ineligible::NotOptedIn) => {}
                Err(why) => *reasons.entry(why.to_string()).or_default() += 1,
            }
        }
        let opted_in = groups.iter().filter(|g| self.settings.is_opted_in(g.tag_pairs())).count();
        let mut summary: Vec<String> = reasons.into_iter().map(|(r, n)| format!("{n} {r}")).collect();
        summary.sort();
        Err(if opted_in == 0 {
            format!(
                "no {} is opted in (tag {}={})",
                technique.target, self.settings.opt_in_tag, self.settings.opt_in_value
            )
        } else {
            format!("none of the {opted_in} opted-in {} is eligible: {}", technique.targets, summary.join("; "))
        })
    }

    fn ingress_request(
        &self,
        plan: &Plan,
        injected_at: SystemTime,
        dry_run: bool,
        cli: bool,
    ) -> Result<IngressRequest, TagError> {
        let deadline = deadline_for(injected_at, plan.window);
        Ok(IngressRequest {
            security_group_id: plan.security_group_id.clone(),
            protocol: plan.protocol,
            ports: plan.ports,
            cidr: plan.cidr.clone(),
            description: plan.description(deadline),
            tags: tags::encode(&plan.id, whole_millis(injected_at), deadline, &plan.detectors)?,
            dry_run,
            watched_by_cli: cli,
        })
    }

    pub(crate) async fn dry_run(&self, plan: Plan) -> DryRunReport {
        let permission_check = match self.ingress_request(&plan, self.clock.now(), true, true) {
            Err(e) => format!("invalid: {e}"),
            Ok(req) => match self.ingress.authorize(&req).await {
                Ok(AuthorizeOutcome::WouldSucceed) | Ok(AuthorizeOutcome::Created { .. }) => "would-succeed".into(),
                Ok(AuthorizeOutcome::Denied { code, message, source }) => {
                    let by = match source {
                        DenialSource::ExplicitDeny => "an explicit deny (a preventive control)".to_string(),
                        DenialSource::NotAllowed => "no policy allows it (ChaoSlingr's own role)".to_string(),
                        DenialSource::Unknown(why) => format!("unattributed: {why}"),
                    };
                    format!("denied: {code}: {message} [{by}]")
                }
                Err(e) => format!("error: {e}"),
            },
        };
        DryRunReport { schema: "chaoslingr.dry-run/v1", plan, permission_check }
    }

    async fn inject_watch_revert(
        &self,
        plan: Plan,
        recheck: Recheck,
        progress: &mut (dyn FnMut(&Progress<'_>) + Send),
        cancel: impl Future<Output = String> + Send,
    ) -> Result<RunEnd, EngineError> {
        let mut cancel = std::pin::pin!(cancel);
        let record = match self.inject_plan(&plan, recheck, true, || (&mut cancel).now_or_never()).await {
            Ok(record) => record,
            Err(end) => return Ok(end),
        };

        // From here on the rule exists: the revert below runs whatever the watch does,
        // including when it panics or is cancelled.
        let watched = AssertUnwindSafe(self.watch(&record, progress, cancel)).catch_unwind().await;
        let revert = self.revert_created(&record).await;
        let (outcome, reason, detections) = match watched {
            Ok(WatchEnd::Verdict { outcome, reason, detections }) => (outcome, reason, detections),
            Ok(WatchEnd::Cancelled { reason, detections }) => (Outcome::Aborted, reason, detections),
            Ok(WatchEnd::OptedOut { judge_has_it: true, detections }) => {
                let reason = format!(
                    "{} was opted out during the experiment; the judge closed it and recorded the outcome",
                    record.security_group_id
                );
                info!(experiment_id = %record.id, "opted out; already concluded by the judge");
                let ending = Ending { outcome: Outcome::Aborted, reason, detections, reverted: revert.reverted };
                let report = self.report_for(plan.technique, &plan.id, Some(&plan), Some(&record), ending);
                return Ok(RunEnd::Concluded { report, revert: Some(revert), record_failures: vec![] });
            }
            Ok(WatchEnd::OptedOut { judge_has_it: false, detections }) => (
                Outcome::Aborted,
                format!("{} was opted out during the experiment; the rule was reverted", record.security_group_id),
                detections,
            ),
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                error!(experiment_id = %record.id, panic = %what, "watch panicked; rule reverted");
                (Outcome::Failed, format!("internal error while watching: {what}"), vec![])
            }
        };
        let reverted = revert.reverted;
        let end = self.conclude(&plan, Some(&record), outcome, reason, detections, Some(revert)).await;
        // The marker goes once the port is closed and the outcome recorded; while it stays,
        // the judge closes the experiment after its deadline.
        if reverted {
            if let Err(e) = self.ingress.untag_group(&record.security_group_id, &marker::KEYS).await {
                warn!(experiment_id = %record.id, error = %e, "could not remove the group marker; the judge will");
            }
        }
        Ok(end)
    }

    /// Re-checks the opt-in tag on `recheck` (the planned group read again, after it was
    /// chosen), creates the tagged rule, marks the group, and makes sure this experiment
    /// did not race another one past the maximum. `stop` is asked right before the write;
    /// `cli` says a person's run watches it. `Err` is the concluded run when nothing (or
    /// nothing any more) is open.
    pub(crate) async fn inject_plan(
        &self,
        plan: &Plan,
        recheck: Recheck,
        cli: bool,
        stop: impl FnOnce() -> Option<String>,
    ) -> Result<ExperimentRecord, RunEnd> {
        // Re-check the opt-in tag on a fresh read right before writing: the group may have
        // been opted out since it was listed.
        match recheck {
            Ok(Some(g)) if self.settings.is_opted_in(g.tag_pairs()) => {}
            Ok(_) => {
                return Err(self
                    .aborted(plan, format!("{} was opted out before injection", plan.security_group_id))
                    .await)
            }
            Err(e) => return Err(self.aborted(plan, format!("could not re-check the opt-in tag: {e}")).await),
        }

        // A stop requested during pre-flight or planning means no write at all.
        if let Some(reason) = stop() {
            return Err(self.aborted(plan, format!("{reason} before injection; nothing was changed")).await);
        }

        let injected_at = self.clock.now();
        let request = match self.ingress_request(plan, injected_at, false, cli) {
            Ok(r) => r,
            Err(e) => return Err(self.aborted(plan, e.to_string()).await),
        };
        let rule_id = match self.ingress.authorize(&request).await {
            Ok(AuthorizeOutcome::Created { rule_id }) => rule_id,
            Ok(AuthorizeOutcome::Denied { code, message, source }) => {
                // Only an explicit deny is a preventive control holding: a permission our
                // own role lacks must not be reported as the hypothesis holding.
                let (outcome, reason) = match source {
                    DenialSource::ExplicitDeny => (
                        Outcome::Prevented,
                        format!("a preventive control refused to open the port (explicit deny): {code}: {message}"),
                    ),
                    DenialSource::NotAllowed => (
                        Outcome::Failed,
                        format!(
                            "ChaoSlingr's own role is not allowed to open the port (no policy allows it; not a preventive control): {code}: {message}"
                        ),
                    ),
                    DenialSource::Unknown(why) => (
                        Outcome::Failed,
                        format!(
                            "EC2 refused to open the port and the refusal could not be attributed to a preventive control ({why}): {code}: {message}"
                        ),
                    ),
                };
                return Err(self.conclude(plan, None, outcome, reason, vec![], None).await);
            }
            Ok(AuthorizeOutcome::WouldSucceed) => {
                return Err(self.aborted(plan, "EC2 answered a real call as a dry run".into()).await)
            }
            Err(e) => {
                // The call may have created the rule before failing (a timeout after the
                // write): look for it on the group itself, by what we asked for.
                let (revert, reverted, created) = self.clean_up_failed_authorize(plan).await;
                let reason = format!("could not open the port: {e}");
                let mut end = self.conclude(plan, None, Outcome::Failed, reason, vec![], revert).await;
                if let RunEnd::Concluded { report, .. } = &mut end {
                    report.reverted = reverted;
                    report.security_group_rule_id = created;
                }
                return Err(end);
            }
        };
        let record = plan.injected(rule_id, injected_at);
        info!(experiment_id = %record.id, rule = %record.security_group_rule_id, deadline = %rfc3339(record.deadline), "injected");

        // The durable record the judge finds by itself, whatever happens to the opt-in tag
        // or the rule's tags. Without it the experiment does not run.
        //
        // Two starters can pass pre-flight at the same moment (two schedules, a schedule and
        // a person). Count again now that our rule exists (tagged with its creation, so the
        // other starter's count sees it too), and step back when over the maximum: when
        // both see each other both step back, so never both stay. The count and the marker
        // are independent and go out together; the step-back waits for both.
        let (marked, recount) = tokio::join!(
            async {
                match marker::encode(&record, cli) {
                    Ok(tags) => {
                        self.ingress.tag_group(&record.security_group_id, &tags).await.map_err(|e| e.to_string())
                    }
                    Err(e) => Err(e.to_string()),
                }
            },
            self.ingress.experiment_rules(),
        );
        let step_back = match (marked, recount) {
            (Err(e), _) => {
                Some(format!("could not mark {} for the judge ({e}); stepped back", record.security_group_id))
            }
            (Ok(()), Ok(rules)) => {
                let others: Vec<String> = rules
                    .iter()
                    .filter_map(|r| r.experiment_id())
                    .filter(|id| *id != record.id.as_str())
                    .map(String::from)
                    .collect();
                (others.len() >= self.settings.max_active).then(|| {
                    format!(
                        "another experiment started at the same time ({}); the maximum is {} (CHAOSLINGR_MAX_ACTIVE), so this one stepped back",
                        others.join(", "),
                        self.settings.max_active
                    )
                })
            }
            (Ok(()), Err(e)) => {
                Some(format!("could not re-count active experiments after injecting ({e}); stepped back"))
            }
        };
        if let Some(reason) = step_back {
            warn!(experiment_id = %record.id, reason = %reason, "stepping back");
            let revert = self.revert_created(&record).await;
            if revert.reverted {
                let _ = self.ingress.untag_group(&record.security_group_id, &marker::KEYS).await;
            }
            return Err(self.conclude(plan, Some(&record), Outcome::Aborted, reason, vec![], Some(revert)).await);
        }
        Ok(record)
    }

    /// After an authorize that failed without saying whether it wrote: the group's rules,
    /// read directly, hold the rule if it exists (ours by what we asked for). Returns the
    /// revert, whether the port is known closed, and the rule id if one was created.
    async fn clean_up_failed_authorize(&self, plan: &Plan) -> (Option<RevertReport>, bool, Option<String>) {
        let mut last_error = None;
        for attempt in 0..2u32 {
            if attempt > 0 {
                self.clock.sleep(Duration::from_secs(1)).await;
            }
            match self.ingress.group_rules(&plan.security_group_id).await {
                Ok(rules) => {
                    let ours = rules.iter().find(|r| {
                        ownership::check(r, plan.id.as_str(), None, &self.settings).is_ok()
                            && r.ip_protocol == plan.protocol.as_str()
                            && r.from_port == Some(i32::from(plan.ports.from))
                            && r.to_port == Some(i32::from(plan.ports.to))
                    });
                    let Some(rule) = ours else {
                        info!(experiment_id = %plan.id, "the failed authorize created no rule");
                        return (None, true, None);
                    };
                    let revert = self
                        .revert_rule(
                            plan.id.as_str(),
                            &rule.security_group_id,
                            &rule.security_group_rule_id,
                            None,
                            true,
                        )
                        .await;
                    let reverted = revert.reverted;
                    return (Some(revert), reverted, Some(rule.security_group_rule_id.clone()));
                }
                Err(e) => last_error = Some(e),
            }
        }
        let e = last_error.map(|e| e.to_string()).unwrap_or_default();
        error!(experiment_id = %plan.id, error = %e, "could not tell whether the failed authorize opened the port");
        let mut report = RevertReport::new(plan.id.as_str(), &plan.security_group_id, "");
        report.error = Some(format!("could not read the group's rules to look for the rule: {e}"));
        (Some(report), false, None)
    }

    /// Observes until the judge's verdict is final or `cancel` resolves.
    async fn watch(
        &self,
        record: &ExperimentRecord,
        progress: &mut (dyn FnMut(&Progress<'_>) + Send),
        cancel: impl Future<Output = String> + Send,
    ) -> WatchEnd {
        let mut state = WatchState::new(record);
        let mut cancel = std::pin::pin!(cancel);
        loop {
            // One round trip per observation: the group (for its opt-in tag), the rule and
            // the detectors are read together.
            let round = async { tokio::join!(self.ingress.group(&record.security_group_id), self.read(record)) };
            let (group, (rule, readings)) = tokio::select! {
                biased;
                reason = &mut cancel => {
                    info!(experiment_id = %record.id, reason = %reason, "watch cancelled");
                    return WatchEnd::Cancelled { reason, detections: judge::reports(record, &state) };
                }
                r = round => r,
            };
            // Owners opting out mean: close now, without this round's readings. The judge
            // may have been quicker; then it holds the outcome and this run must not
            // record a second one.
            if let Ok(Some(g)) = group {
                if !self.settings.is_opted_in(g.tag_pairs()) {
                    let ours = g.tags.iter().any(|(k, v)| k == crate::tags::EXPERIMENT_ID && v == record.id.as_str());
                    let concluded = g.tags.iter().any(|(k, _)| k == marker::OUTCOME);
                    warn!(experiment_id = %record.id, "the group was opted out; closing the experiment");
                    let detections = judge::reports(record, &state);
                    return WatchEnd::OptedOut { judge_has_it: !ours || concluded, detections };
                }
            }
            let verdict = self.fold(record, &mut state, rule, readings);
            progress(&Progress { record, state: &state, now: self.clock.now() });
            if let Verdict::Final { outcome, reason, detections } = verdict {
                info!(experiment_id = %record.id, outcome = %outcome, ticks = state.ticks, "watch ended");
                return WatchEnd::Verdict { outcome, reason, detections };
            }
            let now = self.clock.now();
            let until_deadline = record.deadline.duration_since(now).unwrap_or_default();
            let nap = self.settings.poll_interval.min(until_deadline).max(Duration::from_millis(200));
            tokio::select! {
                biased;
                reason = &mut cancel => {
                    info!(experiment_id = %record.id, reason = %reason, "watch cancelled");
                    return WatchEnd::Cancelled { reason, detections: judge::reports(record, &state) };
                }
                _ = self.clock.sleep(nap) => {}
            }
        }
    }

    /// One reading of the rule (by its id) and of every detector, together.
    async fn read(
        &self,
        record: &ExperimentRecord,
    ) -> (Result<Option<TaggedRule>, CallError>, Vec<(Detector, crate::judge::Reading)>) {
        tracing::debug!(experiment_id = %record.id, "observing");
        tokio::join!(self.ingress.rule(&record.security_group_rule_id), self.observe_bounded(record))
    }

    /// Folds one reading into `state` and judges it.
    fn fold(
        &self,
        record: &ExperimentRecord,
        state: &mut WatchState,
        rule: Result<Option<TaggedRule>, CallError>,
        readings: Vec<(Detector, crate::judge::Reading)>,
    ) -> Verdict {
        let now = self.clock.now();
        let rule_present = match rule {
            // Read by its id, whatever its tags: stripped tags do not make it gone.
            Ok(Some(r)) => self.owns(&r, record.id.as_str(), Some(record)).is_ok(),
            Ok(None) => false,
            Err(e) => {
                // Not knowing is not "gone": keep the rule counted as present.
                warn!(experiment_id = %record.id, error = %e, "could not read the rule; assuming it is still there");
                true
            }
        };
        self.step(record, state, readings, rule_present, &[], now)
    }

    /// The one observe-and-judge step of every watcher, a person's run and the judge's
    /// tick alike: folds one reading of the detectors, and whether the change is still
    /// there, into `state`, adds what earlier watchers saw (`seen`, each firing at its own
    /// earliest timestamp: an alarm that fired and returned to OK between readings is not
    /// forgotten), and judges. A record that says it was injected in the future is closed
    /// at once.
    pub(crate) fn step(
        &self,
        record: &ExperimentRecord,
        state: &mut WatchState,
        readings: Vec<(Detector, crate::judge::Reading)>,
        rule_present: bool,
        seen: &[(Detector, SystemTime)],
        now: SystemTime,
    ) -> Verdict {
        state.observe(record, readings, rule_present, now);
        for (d, at) in seen {
            if let Some(track) = state.detectors.get_mut(d) {
                if track.fired.as_ref().is_none_or(|(t, _)| at < t) {
                    track.fired = Some((*at, crate::scheduled::seen_earlier(d, *at)));
                }
            }
        }
        if record.injected_at > now + CLOCK_TOLERANCE {
            return Verdict::Final {
                outcome: Outcome::Failed,
                reason: format!(
                    "the record says the rule was injected at {}, in the future: closed at once",
                    rfc3339(record.injected_at)
                ),
                detections: judge::reports(record, state),
            };
        }
        judge::judge(record, state, now)
    }

    /// One reading of every detector of `record`, within [`DETECTOR_READ_TIMEOUT`].
    /// A `config:` detector that cannot see the technique's changes (see
    /// [`crate::recording`]) reads as blind, whatever its rule says.
    pub async fn observe_bounded(&self, record: &ExperimentRecord) -> Vec<(Detector, crate::judge::Reading)> {
        let technique = self.technique_for(&record.security_group_id);
        let watches_config = record.detectors.iter().any(|d| matches!(d, Detector::Config { .. }));
        let read = async {
            tokio::join!(self.detectors.observe(technique, record), async {
                if watches_config {
                    self.detectors.config_recorders().await
                } else {
                    Ok(None)
                }
            })
        };
        match tokio::time::timeout(DETECTOR_READ_TIMEOUT, read).await {
            Ok((readings, recorders)) => {
                let Some(why) = recorders
                    .ok()
                    .flatten()
                    .and_then(|r| crate::recording::blindness(&r, technique.config_resource_type))
                else {
                    return readings;
                };
                readings
                    .into_iter()
                    .map(|(d, reading)| match (&d, reading) {
                        (Detector::Config { .. }, crate::judge::Reading::Fired { at, evidence }) => {
                            (d, crate::judge::Reading::Fired { at, evidence })
                        }
                        (Detector::Config { .. }, _) => (d, crate::judge::Reading::Blind { reason: why.clone() }),
                        (_, reading) => (d, reading),
                    })
                    .collect()
            }
            Err(_) => {
                let message = format!("no answer within {}", crate::time::human(DETECTOR_READ_TIMEOUT));
                warn!(experiment_id = %record.id, "detectors did not answer in time");
                record
                    .detectors
                    .iter()
                    .map(|d| (d.clone(), crate::judge::Reading::Error { message: message.clone() }))
                    .collect()
            }
        }
    }

    /// Whether `rule` is experiment `experiment_id`'s, created by ChaoSlingr (see
    /// [`crate::ownership`]).
    pub fn owns(
        &self,
        rule: &TaggedRule,
        experiment_id: &str,
        record: Option<&ExperimentRecord>,
    ) -> Result<(), ownership::NotOurs> {
        ownership::check(rule, experiment_id, record, &self.settings)
    }

    /// Reverts one experiment's rule, known from a durable record: checks it is ours,
    /// revokes (idempotent), verifies it is gone. Retries transient failures; never panics.
    pub async fn revert_record(&self, record: &ExperimentRecord) -> RevertReport {
        self.revert_rule(
            record.id.as_str(),
            &record.security_group_id,
            &record.security_group_rule_id,
            Some(record),
            false,
        )
        .await
    }

    /// Reverts the rule this process's own authorize call created.
    pub(crate) async fn revert_created(&self, record: &ExperimentRecord) -> RevertReport {
        self.revert_rule(
            record.id.as_str(),
            &record.security_group_id,
            &record.security_group_rule_id,
            Some(record),
            true,
        )
        .await
    }

    /// Reverts a rule that must be ChaoSlingr's: before every revoke it is read by its id
    /// and checked ([`crate::ownership`]); a rule that is not is never removed.
    /// `created_here`: see [`Check::Ours`].
    pub(crate) async fn revert_rule(
        &self,
        experiment_id: &str,
        group_id: &str,
        rule_id: &str,
        record: Option<&ExperimentRecord>,
        created_here: bool,
    ) -> RevertReport {
        self.revert_checked(experiment_id, group_id, rule_id, Check::Ours { record, created_here }).await
    }

    async fn revert_checked(
        &self,
        experiment_id: &str,
        group_id: &str,
        rule_id: &str,
        check: Check<'_>,
    ) -> RevertReport {
        let mut report = RevertReport::new(experiment_id, group_id, rule_id);
        let mut last_error = None;
        for attempt in 0..REVERT_ATTEMPTS {
            if attempt > 0 {
                self.clock.sleep(Duration::from_millis(500 * 2u64.pow(attempt))).await;
            }
            match (self.ingress.rule(rule_id).await, check) {
                (Ok(None), _) => {
                    report.reverted = true;
                    report.already_gone = attempt == 0;
                    return report;
                }
                (Ok(Some(_)), Check::Forced) => {}
                (Ok(Some(rule)), Check::Ours { record, .. }) => {
                    if let Err(not_ours) = self.owns(&rule, experiment_id, record) {
                        warn!(experiment_id, rule_id, reason = %not_ours, "not ChaoSlingr's rule; leaving it alone");
                        report.not_ours = true;
                        report.error = Some(format!(
                            "{not_ours}; left alone (remove it yourself, or `chaoslingr revert --force {rule_id}`)"
                        ));
                        return report;
                    }
                }
                (Err(e), Check::Forced | Check::Ours { created_here: true, .. }) => {
                    warn!(experiment_id, rule_id, error = %e, "could not re-read the rule; revoking it anyway")
                }
                (Err(e), Check::Ours { created_here: false, .. }) => {
                    warn!(experiment_id, rule_id, error = %e, attempt, "could not read the rule to check it is ours");
                    last_error = Some(format!("could not read the rule to check it is ours: {e}"));
                    continue;
                }
            }
            if let Some(e) = self.revoke_and_verify(group_id, rule_id).await {
                warn!(experiment_id, rule_id, error = %e, attempt, "revert attempt failed");
                last_error = Some(e);
                continue;
            }
            report.reverted = true;
            info!(experiment_id, rule_id, "reverted");
            return report;
        }
        error!(experiment_id, rule_id, error = ?last_error, "REVERT FAILED: the port may still be open");
        report.error = last_error;
        report
    }

    /// Revokes by id and reads back; `None` when the rule is verified gone.
    async fn revoke_and_verify(&self, group_id: &str, rule_id: &str) -> Option<String> {
        match self.ingress.revoke(group_id, rule_id).await {
            Ok(RevokeOutcome::Revoked) | Ok(RevokeOutcome::AlreadyGone) => {}
            Err(e) => return Some(e.to_string()),
        }
        match self.ingress.rule(rule_id).await {
            Ok(None) => None,
            Ok(Some(_)) => Some(format!("rule {rule_id} still present after revoke")),
            Err(e) => Some(format!("could not verify the revert: {e}")),
        }
    }

    /// Reverts the rule of experiment `id`, found through its group marker or its tags.
    pub async fn revert_by_id(&self, id: &ExperimentId) -> Result<Vec<RevertReport>, EngineError> {
        let found = self.discover().await?;
        let mut out = Vec::new();
        for f in found.experiments.iter().filter(|f| f.experiment_id.as_deref() == Some(id.as_str())) {
            out.push(self.revert_found(f).await);
        }
        Ok(out)
    }

    /// The emergency stop: reverts every experiment rule that is ChaoSlingr's, found
    /// through group markers and rule tags, in this account and region. Rules that carry
    /// our tags but are not ours are listed, never revoked. Continues past failures and
    /// reports each.
    pub async fn revert_all(&self) -> Result<Vec<RevertReport>, EngineError> {
        let found = self.discover().await?;
        let mut out = Vec::new();
        for f in &found.experiments {
            out.push(self.revert_found(f).await);
        }
        Ok(out)
    }

    async fn revert_found(&self, f: &crate::discovery::Found) -> RevertReport {
        let id = f.experiment_id.clone().unwrap_or_default();
        if let Err(why) = &f.ours {
            let mut report = RevertReport::new(&id, &f.security_group_id, &f.security_group_rule_id);
            report.not_ours = true;
            report.error = Some(format!(
                "{why}; left alone (remove it yourself, or `chaoslingr revert --force {}`)",
                f.security_group_rule_id
            ));
            return report;
        }
        self.revert_rule(&id, &f.security_group_id, &f.security_group_rule_id, f.record.as_ref().ok(), false).await
    }

    /// Removes one rule a person named explicitly, whether or not it is ChaoSlingr's
    /// (`revert --force`): the only revoke without the ownership check.
    pub async fn revert_force(&self, rule_id: &str) -> Result<RevertReport, EngineError> {
        let Some(rule) = self.ingress.rule(rule_id).await? else {
            let mut report = RevertReport::new("", "", rule_id);
            report.reverted = true;
            report.already_gone = true;
            return Ok(report);
        };
        let id = rule.experiment_id().unwrap_or_default().to_string();
        warn!(rule_id, group = %rule.security_group_id, "removing a rule by explicit request (--force)");
        Ok(self.revert_checked(&id, &rule.security_group_id, rule_id, Check::Forced).await)
    }

    /// A scheduled pre-flight abort: counted and published marked `quiet`, so the archive
    /// keeps it and Slack never sees it.
    pub(crate) async fn aborted_quietly(&self, technique: TechniqueRef, reason: String) -> RunEnd {
        info!(reason = %reason, "aborted in pre-flight (counted, published quiet)");
        self.aborted_unplanned(technique, reason, true).await
    }

    /// An abort before anything was planned: counted and published (marked `quiet` when
    /// `quiet`).
    async fn aborted_unplanned(&self, technique: TechniqueRef, reason: String, quiet: bool) -> RunEnd {
        let id = ExperimentId::generate(self.clock.now(), &mut rand::rng());
        let mut report =
            self.report_for(technique, &id, None, None, Ending::nothing_injected(Outcome::Aborted, reason));
        report.quiet = quiet;
        let failures = self.recorder.record(&report).await;
        RunEnd::Concluded { report, revert: None, record_failures: failures.iter().map(ToString::to_string).collect() }
    }

    /// An abort in pre-flight or planning: nothing was written.
    pub(crate) async fn aborted_before_plan(&self, technique: TechniqueRef, reason: String) -> RunEnd {
        info!(reason = %reason, "aborted before injection");
        self.aborted_unplanned(technique, reason, false).await
    }

    /// An abort after planning, before anything was written.
    pub(crate) async fn aborted(&self, plan: &Plan, reason: String) -> RunEnd {
        info!(reason = %reason, "aborted before injection");
        self.conclude(plan, None, Outcome::Aborted, reason, vec![], None).await
    }

    pub(crate) async fn conclude(
        &self,
        plan: &Plan,
        record: Option<&ExperimentRecord>,
        outcome: Outcome,
        reason: String,
        detections: Vec<DetectionReport>,
        revert: Option<RevertReport>,
    ) -> RunEnd {
        let reverted = revert.as_ref().is_none_or(|r| r.reverted);
        let ending = Ending { outcome, reason, detections, reverted };
        let report = self.report_for(plan.technique, &plan.id, Some(plan), record, ending);
        let failures = self.recorder.record(&report).await;
        info!(experiment_id = %plan.id, outcome = %outcome, reverted, "concluded");
        RunEnd::Concluded { report, revert, record_failures: failures.iter().map(ToString::to_string).collect() }
    }

    /// The technique of a target (or record), known by its id's kind; the default
    /// technique for an id no registered technique claims.
    pub fn technique_for(&self, target_id: &str) -> TechniqueRef {
        self.ingress.technique_of(target_id).unwrap_or(self.ingress.techniques()[0])
    }

    /// The technique a run asks for: named, or the named target's, or the default. A name
    /// no technique has, or a target of another technique, is bad input.
    pub fn requested_technique(&self, request: &RunRequest) -> Result<TechniqueRef, EngineError> {
        let known = self.ingress.techniques();
        let by_target = request.target.as_deref().map(|t| (t, technique::of_target(known, t)));
        match (&request.experiment, by_target) {
            (Some(name), target) => {
                let named = technique::by_name(known, name).map_err(EngineError::BadInput)?;
                match target {
                    Some((t, Some(of_target))) if of_target != named => Err(EngineError::BadInput(format!(
                        "{t} is a {}, which experiment {named} does not target ({named} targets {}); nothing was changed",
                        of_target.target, named.targets
                    ))),
                    _ => Ok(named),
                }
            }
            (None, Some((_, Some(of_target)))) => Ok(of_target),
            (None, _) => Ok(known[0]),
        }
    }

    /// The outcome object of one experiment, planned (`plan`) and injected (`record`) or not.
    pub(crate) fn report_for(
        &self,
        technique: TechniqueRef,
        id: &ExperimentId,
        plan: Option<&Plan>,
        record: Option<&ExperimentRecord>,
        ending: Ending,
    ) -> OutcomeReport {
        debug_assert!(
            record.is_some() || !ending.outcome.requires_injection(),
            "{} needs an injected change",
            ending.outcome
        );
        // What was made, as recorded; else what was planned.
        let target_id = record.map(|r| &r.security_group_id).or(plan.map(|p| &p.security_group_id)).cloned();
        let change_id = record.map(|r| r.security_group_rule_id.clone());
        let change = record.map(|r| (r.protocol, r.ports, &r.cidr)).or(plan.map(|p| (p.protocol, p.ports, &p.cidr)));
        let is_group = technique.arn_resource == crate::outcome::SECURITY_GROUP;
        OutcomeReport {
            schema: SCHEMA,
            experiment_id: id.to_string(),
            experiment: technique.name,
            account: record
                .and_then(|r| r.account.clone())
                .or(plan.and_then(|p| p.account.clone()))
                .or(self.account.clone()),
            region: self.region.clone(),
            target_type: technique.arn_resource,
            security_group_id: target_id.clone().filter(|_| is_group),
            security_group_rule_id: change_id.clone().filter(|_| is_group),
            target_id,
            change_id,
            protocol: change.map(|(protocol, _, _)| protocol.to_string()),
            from_port: change.map(|(_, ports, _)| ports.from),
            to_port: change.map(|(_, ports, _)| ports.to),
            cidr: change.map(|(_, _, cidr)| cidr.clone()),
            injected_at: record.map(|r| crate::time::rfc3339_millis(r.injected_at)),
            concluded_at: crate::time::rfc3339_millis(self.clock.now()),
            outcome: ending.outcome,
            reason: ending.reason,
            detections: ending.detections,
            reverted: ending.reverted,
            dry_run: false,
            quiet: false,
        }
    }
}

/// How an experiment ended, for its outcome object.
#[derive(Debug, Clone)]
pub(crate) struct Ending {
    pub outcome: Outcome,
    pub reason: String,
    pub detections: Vec<DetectionReport>,
    /// The change is gone (true when nothing was injected).
    pub reverted: bool,
}

impl Ending {
    pub(crate) fn nothing_injected(outcome: Outcome, reason: String) -> Self {
        Ending { outcome, reason, detections: Vec::new(), reverted: true }
    }
}

/// A group still marked by an unattended experiment (its rule may already be gone,
/// waiting for the judge to conclude it) is busy too.
fn mark_busy(active: &mut HashMap<String, ExperimentId>, groups: &[GroupInfo]) {
    for g in groups.iter().filter(|g| crate::marker::is_marked(&g.tags)) {
        let id = g.tags.iter().find(|(k, _)| k == crate::tags::EXPERIMENT_ID).and_then(|(_, v)| v.parse().ok());
        active.entry(g.id.clone()).or_insert_with(|| id.unwrap_or_else(|| "cs-unknown".parse().expect("valid id")));
    }
}

/// The active experiment of each group that has one.
fn by_group(rules: &[TaggedRule]) -> HashMap<String, ExperimentId> {
    rules
        .iter()
        .map(|rule| {
            // A rule whose id tag is unreadable still marks its group as busy.
            let id = rule
                .experiment_id()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| "cs-unknown".parse().expect("valid id"));
            (rule.security_group_id.clone(), id)
        })
        .collect()
}

/// Whether an error from the world is worth retrying.
pub fn is_transient(e: &CallError) -> bool {
    e.kind == FailureKind::Transient
}
