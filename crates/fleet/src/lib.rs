//! ChaoSlingr across many accounts and regions from one deployment.
//!
//! A [`Fleet`] holds one engine per *scope* (an account and a region, see
//! [`chaoslingr_domain::fleet`]). In a target account the engine's EC2 and detectors use
//! credentials from assuming the target role there; its recorder is the hub's, so
//! metrics and the topic stay with the deployment. A single-account deployment is a
//! fleet of one scope, and then every command is exactly the engine's own.
//!
//! What holds across scopes:
//! - **Choice is uniform over every eligible target of every scope** (see
//!   [`Fleet::choose`]), within a per-account and a total maximum of active experiments.
//! - **Every scope is worked on concurrently, at most `CHAOSLINGR_SCOPE_CONCURRENCY` at a
//!   time, each within a budget**: a judge tick reverts first in every scope, and one
//!   scope that fails (a role that cannot be assumed, a region not enabled, a service
//!   down) is reported and counted (`ScopeErrors`), and never holds up another.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::SdkConfig;
use chaoslingr_aws::{AwsAdapters, AwsRecorder};
use chaoslingr_domain::engine::{EngineError, RevertReport, RunEnd, RunRequest, TargetStatus};
use chaoslingr_domain::experiment::ExperimentId;
use chaoslingr_domain::fleet::{self as plan, Limits, Scope};
use chaoslingr_domain::scheduled::{InjectEnd, TickReport};
use chaoslingr_domain::time::human;
use chaoslingr_domain::Settings;
use chaoslingr_techniques::AwsEngine;
use futures_util::stream::{self, StreamExt};
use rand::Rng;
use serde::Serialize;
use tracing::{info, warn};

/// The longest one scope's part of a judge tick may take: its reverts have their own
/// budget inside it ([`chaoslingr_domain::scheduled::REVERT_BUDGET`]); past this the
/// scope is reported failed and the next tick carries on.
pub const TICK_BUDGET: Duration = Duration::from_secs(50);

/// The longest one scope's listing may take when choosing, or for `targets` and `status`.
pub const LIST_BUDGET: Duration = Duration::from_secs(30);

/// The longest one scope's emergency stop may take.
pub const REVERT_BUDGET: Duration = Duration::from_secs(120);

/// One account and region, and the engine that works there.
pub struct Member {
    pub scope: Scope,
    pub engine: AwsEngine,
    /// The clients the engine is built on, kept to build it again with other settings
    /// without losing their cached credentials.
    adapters: AwsAdapters,
}

/// What one scope answered.
#[derive(Debug, Clone, Serialize)]
pub struct ScopeResult<T> {
    pub scope: Scope,
    pub result: Result<T, String>,
}

/// A scope a command could not work on.
#[derive(Debug, Clone, Serialize)]
pub struct ScopeFailure {
    pub account: Option<String>,
    pub region: String,
    pub error: String,
}

/// One judge tick over every scope.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FleetTick {
    /// Every scope's tick together (errors prefixed with their scope when there are
    /// several).
    #[serde(flatten)]
    pub total: TickReport,
    /// Per scope: what its tick did.
    pub scopes: Vec<ScopeSummary>,
    /// Scopes that could not be ticked: reported, counted in `ScopeErrors`, retried next tick.
    pub failed_scopes: Vec<ScopeFailure>,
}

/// One scope's part of a tick.
#[derive(Debug, Clone, Serialize)]
pub struct ScopeSummary {
    pub account: Option<String>,
    pub region: String,
    pub concluded: usize,
    pub watching: usize,
    pub reverted: usize,
    pub failed: bool,
}

impl FleetTick {
    /// Whether a port may still be open that should not be.
    pub fn revert_failed(&self) -> bool {
        self.total.revert_failed()
    }
}

/// Where a run goes after the choice across scopes.
// One value per run, moved once: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Chosen<'a> {
    /// Run there: the engine of the chosen scope, with the chosen target named.
    Scope { member: &'a Member, request: RunRequest },
    /// Nothing to run: aborted (and recorded) before any scope was written to.
    Ended(RunEnd),
}

/// One engine per account and region, and the hub's recorder.
pub struct Fleet {
    pub settings: Settings,
    pub members: Vec<Member>,
    /// The engine that records what concerns no one scope (an abort before any target
    /// was chosen) with the hub's own credentials; it never touches a target.
    hub: AwsEngine,
    recorder: AwsRecorder,
    /// The scopes whose last command failed (kept across the invocations of one warm
    /// function): worked on after the others, so that however many of them hang, they
    /// never hold up a healthy scope's turn.
    suspects: Arc<Mutex<BTreeSet<Scope>>>,
}

/// The order scopes are worked on: those that did not fail last time first (in their
/// configured order), then those that did.
pub fn work_order(scopes: &[Scope], suspects: &BTreeSet<Scope>) -> Vec<usize> {
    let (mut healthy, failed): (Vec<usize>, Vec<usize>) =
        (0..scopes.len()).partition(|i| !suspects.contains(&scopes[*i]));
    healthy.extend(failed);
    healthy
}

impl Fleet {
    /// Builds every scope's engine from the hub's SDK configuration. `session` names the
    /// assumed-role sessions (`chaoslingr-judge`), so CloudTrail in each target account
    /// shows who acted. Nothing is called here.
    pub async fn new(hub: &SdkConfig, settings: Settings, session: &str) -> Result<Fleet, String> {
        let region = hub.region().map(|r| r.as_ref().to_string()).ok_or("no AWS region configured (AWS_REGION)")?;
        let namespace = settings.namespace.clone();
        let topic = settings.topic_arn.clone();
        let mut members = Vec::new();
        for scope in settings.targets.scopes(&region) {
            let conf = chaoslingr_aws::scope::scope_config(hub, &scope, &settings.targets, session).await;
            let adapters = AwsAdapters::for_scope(hub, &conf, namespace.clone(), topic.clone());
            let engine = engine_in(&scope, &adapters, &settings);
            members.push(Member { scope, engine, adapters });
        }
        let hub_adapters = AwsAdapters::new(hub, namespace, topic);
        Ok(Fleet::assemble(settings, members, hub_adapters, Arc::default()))
    }

    fn assemble(
        settings: Settings,
        members: Vec<Member>,
        hub_adapters: AwsAdapters,
        suspects: Arc<Mutex<BTreeSet<Scope>>>,
    ) -> Fleet {
        let recorder = hub_adapters.recorder.clone();
        let mut hub = chaoslingr_techniques::engine_on(hub_adapters, settings.clone());
        hub.region = None;
        Fleet { settings, members, hub, recorder, suspects }
    }

    /// The same scopes and clients with other settings (an inject event's overrides).
    /// The targets stay those the fleet was built for.
    pub fn with_settings(&self, mut settings: Settings) -> Fleet {
        settings.targets = self.settings.targets.clone();
        let members = self
            .members
            .iter()
            .map(|m| Member {
                scope: m.scope.clone(),
                engine: engine_in(&m.scope, &m.adapters, &settings),
                adapters: m.adapters.clone(),
            })
            .collect();
        let mut hub_adapters = self.members[0].adapters.clone();
        hub_adapters.recorder = self.recorder.clone();
        hub_adapters.region = None;
        Fleet::assemble(settings, members, hub_adapters, self.suspects.clone())
    }

    /// One scope in the credentials' own account: every command is the engine's own.
    pub fn is_single(&self) -> bool {
        self.members.len() == 1 && self.members[0].scope.account.is_none()
    }

    /// The scopes, in their configured order.
    pub fn scopes(&self) -> Vec<Scope> {
        self.members.iter().map(|m| m.scope.clone()).collect()
    }

    /// The engine that names techniques and records what concerns no scope.
    pub fn hub(&self) -> &AwsEngine {
        &self.hub
    }

    /// Runs `f` on every scope's engine, at most `CHAOSLINGR_SCOPE_CONCURRENCY` at once,
    /// each within `budget`; the answers in scope order. A scope that fails or runs out of
    /// time is an `Err` with the reason, and is counted in `ScopeErrors`. Scopes that
    /// failed last time go last.
    pub async fn each<'a, T, E, F, Fut>(&'a self, budget: Duration, f: F) -> Vec<ScopeResult<T>>
    where
        F: Fn(&'a AwsEngine) -> Fut,
        Fut: Future<Output = Result<T, E>> + 'a,
        E: std::fmt::Display,
        T: 'a,
    {
        let suspects = self.suspects.lock().map(|s| s.clone()).unwrap_or_default();
        let order = work_order(&self.scopes(), &suspects);
        let runs = order.into_iter().map(|i| {
            let m = &self.members[i];
            let work = f(&m.engine);
            async move {
                let result = match tokio::time::timeout(budget, work).await {
                    Ok(Ok(v)) => Ok(v),
                    Ok(Err(e)) => Err(self.describe_failure(&m.scope, &e.to_string())),
                    Err(_) => Err(self.describe_failure(&m.scope, &format!("no answer within {}", human(budget)))),
                };
                (i, ScopeResult { scope: m.scope.clone(), result })
            }
        });
        let mut out: Vec<(usize, ScopeResult<T>)> =
            stream::iter(runs).buffer_unordered(self.settings.scope_concurrency.max(1)).collect().await;
        out.sort_by_key(|(i, _)| *i);
        let out: Vec<ScopeResult<T>> = out.into_iter().map(|(_, r)| r).collect();
        if let Ok(mut s) = self.suspects.lock() {
            for r in &out {
                if r.result.is_err() {
                    s.insert(r.scope.clone());
                } else {
                    s.remove(&r.scope);
                }
            }
        }
        self.count_failures(out.iter().filter(|r| r.result.is_err()).map(|r| &r.scope)).await;
        out
    }

    fn describe_failure(&self, scope: &Scope, error: &str) -> String {
        match &scope.account {
            Some(account) => {
                let region = self.hub.region.as_deref().unwrap_or(&scope.region);
                let role = self.settings.targets.role_arn(chaoslingr_aws::partition(region), account);
                format!("{scope} (through {role}): {error}")
            }
            None if self.is_single() => error.to_string(),
            None => format!("{scope}: {error}"),
        }
    }

    /// Counts the scopes that could not be worked on (`ScopeErrors`), all at once; a
    /// failure to count is logged, never fatal.
    async fn count_failures<'s>(&self, failed: impl Iterator<Item = &'s Scope>) {
        let counts = failed.map(|scope| async move {
            warn!(scope = %scope, "scope failed");
            if let Err(e) = self.recorder.count_scope_error(scope).await {
                warn!(scope = %scope, error = %e, "could not count the scope error");
            }
        });
        futures_util::future::join_all(counts).await;
    }

    /// One judge tick in every scope at once (bounded): each reverts first, then judges.
    pub async fn judge_tick(&self) -> Result<FleetTick, EngineError> {
        if self.is_single() {
            let report = Box::pin(self.members[0].engine.judge_tick()).await?;
            let summary = summary(&self.members[0].scope, &report, false);
            return Ok(FleetTick { total: report, scopes: vec![summary], failed_scopes: Vec::new() });
        }
        let ticks = self.each(TICK_BUDGET, |engine| Box::pin(engine.judge_tick())).await;
        let mut out = FleetTick::default();
        for t in ticks {
            match t.result {
                Ok(report) => {
                    out.scopes.push(summary(&t.scope, &report, false));
                    let TickReport { concluded, watching, left_to_their_starter, not_ours, reverts, errors } = report;
                    out.total.concluded.extend(concluded);
                    out.total.watching.extend(watching);
                    out.total.left_to_their_starter.extend(left_to_their_starter);
                    out.total.not_ours.extend(not_ours.into_iter().map(|n| format!("{}: {n}", t.scope)));
                    out.total.reverts.extend(reverts);
                    out.total.errors.extend(errors.into_iter().map(|e| format!("{}: {e}", t.scope)));
                }
                Err(error) => {
                    out.scopes.push(summary(&t.scope, &TickReport::default(), true));
                    out.total.errors.push(error.clone());
                    out.failed_scopes.push(ScopeFailure {
                        account: t.scope.account.clone(),
                        region: t.scope.region.clone(),
                        error,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Every opted-in target of every scope and whether it is eligible.
    pub async fn targets(&self) -> Vec<ScopeResult<Vec<TargetStatus>>> {
        self.each(LIST_BUDGET, |engine| engine.targets()).await
    }

    /// Every experiment of every scope.
    pub async fn active(&self) -> Vec<ScopeResult<chaoslingr_domain::discovery::Discovered>> {
        self.each(LIST_BUDGET, |engine| engine.active()).await
    }

    /// The emergency stop in every scope at once: every experiment ChaoSlingr owns is
    /// reverted; a scope that fails does not stop the others.
    pub async fn revert_all(&self) -> Vec<ScopeResult<Vec<RevertReport>>> {
        self.each(REVERT_BUDGET, |engine| engine.revert_all()).await
    }

    /// Reverts experiment `id`, wherever it is.
    pub async fn revert_by_id(&self, id: &ExperimentId) -> Vec<ScopeResult<Vec<RevertReport>>> {
        self.each(REVERT_BUDGET, |engine| engine.revert_by_id(id)).await
    }

    /// Where a run goes: with one scope, there (its engine decides everything). With
    /// several: the kill switch and the allowed hours first; then every scope lists its
    /// candidates (at once, bounded); the limits per account and in total; then one
    /// uniformly random order over every candidate of every scope, the first that passes
    /// its Config check is chosen, and the run goes to its scope with the target named,
    /// where the engine checks everything again before writing. A named target is
    /// looked up in every scope.
    pub async fn choose(&self, request: &RunRequest, rng: &mut (impl Rng + Send)) -> Result<Chosen<'_>, EngineError> {
        if self.is_single() {
            return Ok(Chosen::Scope { member: &self.members[0], request: request.clone() });
        }
        let technique = self.hub.requested_technique(request)?;
        if let Err(reason) = self.hub.schedule_preflight() {
            return Ok(Chosen::Ended(self.hub.abort_unplanned(request, reason, true).await?));
        }
        let listed = self.each(LIST_BUDGET, |engine| engine.candidates(technique)).await;
        let (listed, failed): (Vec<_>, Vec<_>) = listed.into_iter().enumerate().partition(|(_, r)| r.result.is_ok());
        let failures: Vec<String> = failed.into_iter().filter_map(|(_, r)| r.result.err()).collect();
        for f in &failures {
            warn!(error = %f, "a scope could not be listed; choosing among the others");
        }
        let listed: Vec<(usize, Scope, chaoslingr_domain::engine::Candidates)> =
            listed.into_iter().filter_map(|(i, r)| r.result.ok().map(|c| (i, r.scope, c))).collect();
        if listed.is_empty() {
            let reason = format!("no target account and region could be listed: {}", failures.join("; "));
            return Ok(Chosen::Ended(self.hub.abort_unplanned(request, reason, false).await?));
        }

        if let Some(target) = &request.target {
            let found: Vec<usize> =
                listed.iter().filter(|(_, _, c)| c.opted_in.iter().any(|t| t == target)).map(|(i, _, _)| *i).collect();
            return match found.as_slice() {
                [i] => Ok(Chosen::Scope { member: &self.members[*i], request: request.clone() }),
                [] => Err(EngineError::BadInput(format!(
                    "{target} is not an opted-in {} (tag {}={}) in any of the {} target account(s) and region(s) listed{}; nothing was changed",
                    technique.target,
                    self.settings.opt_in_tag,
                    self.settings.opt_in_value,
                    listed.len(),
                    if failures.is_empty() { String::new() } else { format!(" ({} could not be listed)", failures.len()) }
                ))),
                many => {
                    let scopes: Vec<String> = many.iter().map(|i| self.members[*i].scope.to_string()).collect();
                    Err(EngineError::BadInput(format!(
                        "{target} exists in several targets ({}); name one account and region (--accounts, --regions); nothing was changed",
                        scopes.join(", ")
                    )))
                }
            };
        }

        let active: BTreeMap<Scope, Vec<String>> =
            listed.iter().map(|(_, scope, c)| (scope.clone(), c.active.clone())).collect();
        let limits = Limits { per_account: self.settings.max_active, total: self.settings.max_active_total };
        let scopes = self.scopes();
        let open = match plan::open_accounts(&active, &scopes, limits) {
            Ok(open) => open,
            Err(reason) => return Ok(Chosen::Ended(self.hub.abort_unplanned(request, reason, true).await?)),
        };
        let candidates: Vec<(usize, &chaoslingr_domain::selection::GroupInfo)> = listed
            .iter()
            .filter(|(_, scope, _)| open.contains(&scope.account))
            .flat_map(|(i, _, c)| c.eligible.iter().map(move |g| (*i, g)))
            .collect();
        let count = candidates.len();
        let mut noncompliant = 0;
        for (i, group) in plan::random_order(candidates, rng) {
            let member = &self.members[i];
            match member.engine.config_eligible(group).await {
                Ok(Ok(())) => {
                    info!(scope = %member.scope, target = %group.id, of = count, "chosen");
                    let request = RunRequest {
                        experiment: Some(technique.name.to_string()),
                        target: Some(group.id.clone()),
                        scheduled: request.scheduled,
                    };
                    return Ok(Chosen::Scope { member, request });
                }
                Ok(Err(why)) => {
                    info!(scope = %member.scope, target = %group.id, reason = %why, "not eligible");
                    noncompliant += 1;
                }
                Err(e) => {
                    warn!(scope = %member.scope, target = %group.id, error = %e, "could not read Config compliance")
                }
            }
        }
        let mut reason = format!(
            "no eligible {} in {} target account(s) and region(s): {count} candidate(s) in accounts under their maximum, {noncompliant} already NON_COMPLIANT",
            technique.target,
            listed.len()
        );
        if !failures.is_empty() {
            reason.push_str(&format!("; {} could not be listed: {}", failures.len(), failures.join("; ")));
        }
        Ok(Chosen::Ended(self.hub.abort_unplanned(request, reason, false).await?))
    }

    /// The scheduled inject across every scope: choose, then start the experiment in the
    /// chosen scope without waiting for it. Returns the scope it started in, if any.
    pub async fn inject(
        &self,
        request: &RunRequest,
        rng: &mut (impl Rng + Send),
    ) -> Result<(Option<Scope>, InjectEnd), EngineError> {
        match self.choose(request, rng).await? {
            Chosen::Ended(end) => Ok((None, InjectEnd::Ended(end))),
            Chosen::Scope { member, request } => {
                let end = Box::pin(member.engine.inject(&request, rng)).await?;
                Ok((Some(member.scope.clone()), end))
            }
        }
    }
}

/// A scope's engine: its account named for reports whose change does not name it.
fn engine_in(scope: &Scope, adapters: &AwsAdapters, settings: &Settings) -> AwsEngine {
    let mut engine = chaoslingr_techniques::engine_on(adapters.clone(), settings.clone());
    engine.account = scope.account.clone();
    engine
}

fn summary(scope: &Scope, report: &TickReport, failed: bool) -> ScopeSummary {
    ScopeSummary {
        account: scope.account.clone(),
        region: scope.region.clone(),
        concluded: report.concluded.len(),
        watching: report.watching.len(),
        reverted: report.reverts.iter().filter(|r| r.reverted).count(),
        failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_that_failed_last_time_are_worked_on_last() {
        let scopes: Vec<Scope> = ["111111111111", "222222222222", "333333333333"]
            .iter()
            .flat_map(|a| ["us-east-1", "eu-west-1"].map(|r| Scope::new(Some(a), r)))
            .collect();
        assert_eq!(work_order(&scopes, &BTreeSet::new()), [0, 1, 2, 3, 4, 5]);
        let suspects = BTreeSet::from([scopes[0].clone(), scopes[3].clone()]);
        assert_eq!(work_order(&scopes, &suspects), [1, 2, 4, 5, 0, 3]);
    }
}
