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
use chaoslingr_domain::scheduled::{InjectEnd, TickReport, TickReverts};
use chaoslingr_domain::time::human;
use chaoslingr_domain::Settings;
use chaoslingr_techniques::AwsEngine;
use futures_util::stream::{self, StreamExt};
use rand::Rng;
use serde::Serialize;
use tracing::{info, warn};

/// The longest one scope's first phase of a judge tick (finding its experiments and
/// reverting what must close; each revert has its own budget inside it,
/// [`chaoslingr_domain::scheduled::REVERT_BUDGET`]) may take. Every scope's first phase
/// runs before any scope's second.
pub const TICK_REVERT_BUDGET: Duration = Duration::from_secs(30);

/// The longest one scope's second phase of a judge tick (reading detectors, concluding,
/// recording) may take. With the first, within the module's 60-second judge timeout.
pub const TICK_JUDGE_BUDGET: Duration = Duration::from_secs(25);

/// The longest one scope's listing may take when choosing, or for `targets` and
/// `status` across several scopes.
pub const LIST_BUDGET: Duration = Duration::from_secs(30);

/// The longest the Config compliance check of one candidate may take when choosing.
pub const CONFIG_CHECK_BUDGET: Duration = Duration::from_secs(10);

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
    hub_adapters: AwsAdapters,
    /// The hub's own region (for the partition of role ARNs).
    hub_region: String,
    recorder: AwsRecorder,
    /// The scopes whose last command failed (kept across the invocations of one warm
    /// function): worked on after the others, so that however many of them hang, they
    /// never hold up a healthy scope's turn.
    suspects: Arc<Mutex<BTreeSet<Scope>>>,
}

/// The order scopes are worked on: those that did not fail last time first, then those
/// that did, each part in a random order (so that, when there are more scopes than the
/// concurrency bound and time runs out, it is never the same scopes that wait).
pub fn work_order(scopes: &[Scope], suspects: &BTreeSet<Scope>, rng: &mut impl Rng) -> Vec<usize> {
    use rand::seq::SliceRandom;
    let (mut healthy, mut failed): (Vec<usize>, Vec<usize>) =
        (0..scopes.len()).partition(|i| !suspects.contains(&scopes[*i]));
    healthy.shuffle(rng);
    failed.shuffle(rng);
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
        // One role, one credentials cache per account, whatever its regions.
        let mut roles = BTreeMap::new();
        for scope in settings.targets.scopes(&region) {
            let credentials = match &scope.account {
                Some(account) => {
                    if !roles.contains_key(account) {
                        let role =
                            chaoslingr_aws::scope::role_credentials(hub, account, &settings.targets, session).await;
                        roles.insert(account.clone(), role);
                    }
                    roles.get(account).cloned()
                }
                None => None,
            };
            let conf = chaoslingr_aws::scope::scope_config(hub, &scope, credentials);
            let adapters = AwsAdapters::for_scope(hub, &conf, namespace.clone(), topic.clone());
            let engine = engine_in(&scope, &adapters, &settings);
            members.push(Member { scope, engine, adapters });
        }
        let mut hub_adapters = AwsAdapters::new(hub, namespace, topic);
        hub_adapters.region = None;
        Ok(Fleet::assemble(settings, members, hub_adapters, region, Arc::default()))
    }

    fn assemble(
        settings: Settings,
        members: Vec<Member>,
        hub_adapters: AwsAdapters,
        hub_region: String,
        suspects: Arc<Mutex<BTreeSet<Scope>>>,
    ) -> Fleet {
        let recorder = hub_adapters.recorder.clone();
        let hub = chaoslingr_techniques::engine_on(hub_adapters.clone(), settings.clone());
        Fleet { settings, members, hub, hub_adapters, hub_region, recorder, suspects }
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
        Fleet::assemble(settings, members, self.hub_adapters.clone(), self.hub_region.clone(), self.suspects.clone())
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
    /// each within `budget` (none: until it ends); the answers in scope order. With
    /// several scopes, one that fails or runs out of time is an `Err` with the reason,
    /// counted in `ScopeErrors`; scopes that failed last time go last.
    pub async fn each<'a, T, E, F, Fut>(&'a self, budget: Option<Duration>, f: F) -> Vec<ScopeResult<T>>
    where
        F: Fn(usize, &'a AwsEngine) -> Fut,
        Fut: Future<Output = Result<T, E>> + 'a,
        E: std::fmt::Display,
        T: 'a,
    {
        let all: Vec<usize> = (0..self.members.len()).collect();
        self.each_of(&all, budget, f).await.into_iter().map(|(_, r)| r).collect()
    }

    /// [`Fleet::each`] over the scopes `which` (indices into `members`): their answers,
    /// with their indices, in scope order.
    async fn each_of<'a, T, E, F, Fut>(
        &'a self,
        which: &[usize],
        budget: Option<Duration>,
        f: F,
    ) -> Vec<(usize, ScopeResult<T>)>
    where
        F: Fn(usize, &'a AwsEngine) -> Fut,
        Fut: Future<Output = Result<T, E>> + 'a,
        E: std::fmt::Display,
        T: 'a,
    {
        // One account and region of one's own: exactly the engine's own command, no
        // budget, nothing counted.
        let budget = budget.filter(|_| !self.is_single());
        let suspects = self.suspects.lock().map(|s| s.clone()).unwrap_or_default();
        let order: Vec<usize> =
            work_order(&self.scopes(), &suspects, &mut rand::rng()).into_iter().filter(|i| which.contains(i)).collect();
        let runs = order.into_iter().map(|i| {
            let m = &self.members[i];
            let work = f(i, &m.engine);
            async move {
                let answer = match budget {
                    Some(b) => tokio::time::timeout(b, work).await.map_err(|_| b),
                    None => Ok(work.await),
                };
                let result = match answer {
                    Ok(Ok(v)) => Ok(v),
                    Ok(Err(e)) => Err(self.describe_failure(&m.scope, &e.to_string())),
                    Err(b) => Err(self.describe_failure(&m.scope, &format!("no answer within {}", human(b)))),
                };
                (i, ScopeResult { scope: m.scope.clone(), result })
            }
        });
        let mut out: Vec<(usize, ScopeResult<T>)> =
            stream::iter(runs).buffer_unordered(self.settings.scope_concurrency.max(1)).collect().await;
        out.sort_by_key(|(i, _)| *i);
        if let Ok(mut s) = self.suspects.lock() {
            for (_, r) in &out {
                if r.result.is_err() {
                    s.insert(r.scope.clone());
                } else {
                    s.remove(&r.scope);
                }
            }
        }
        if !self.is_single() {
            let failed: Vec<Scope> =
                out.iter().filter(|(_, r)| r.result.is_err()).map(|(_, r)| r.scope.clone()).collect();
            self.count_failures(&failed).await;
        }
        out
    }

    fn describe_failure(&self, scope: &Scope, error: &str) -> String {
        match &scope.account {
            Some(account) => {
                let role = self.settings.targets.role_arn(chaoslingr_aws::partition(&self.hub_region), account);
                format!("{scope} (through {role}): {error}")
            }
            None if self.is_single() => error.to_string(),
            None => format!("{scope}: {error}"),
        }
    }

    /// Counts the scopes that could not be worked on (`ScopeErrors`), in one request; a
    /// failure to count is logged, never fatal.
    async fn count_failures(&self, failed: &[Scope]) {
        for scope in failed {
            info!(scope = %scope, "could not work in this account and region");
        }
        if let Err(e) = self.recorder.count_scope_errors(failed).await {
            warn!(error = %e, "could not count the scope errors");
        }
    }

    /// One judge tick in every scope, in two phases: first every scope finds its
    /// experiments and reverts what must close (at once, bounded), then every scope that
    /// answered reads its detectors, concludes and records. So closing what is overdue
    /// never waits on another account's judging, and a scope that fails is reported,
    /// counted, and holds up no other.
    pub async fn judge_tick(&self) -> Result<FleetTick, EngineError> {
        if self.is_single() {
            let report = Box::pin(self.members[0].engine.judge_tick()).await?;
            let summary = summary(&self.members[0].scope, &report, false);
            return Ok(FleetTick { total: report, scopes: vec![summary], failed_scopes: Vec::new() });
        }
        let first = self.each(Some(TICK_REVERT_BUDGET), |_, engine| Box::pin(engine.tick_reverts())).await;
        let mut phases: Vec<Mutex<Option<TickReverts>>> = Vec::new();
        let mut early: BTreeMap<usize, Vec<RevertReport>> = BTreeMap::new();
        let mut failed: BTreeMap<usize, String> = BTreeMap::new();
        for (i, r) in first.into_iter().enumerate() {
            match r.result {
                Ok(phase) => {
                    early.insert(i, phase.reverts().to_vec());
                    phases.push(Mutex::new(Some(phase)));
                }
                Err(e) => {
                    failed.insert(i, e);
                    phases.push(Mutex::new(None));
                }
            }
        }
        let answered: Vec<usize> = early.keys().copied().collect();
        let second = self
            .each_of(&answered, Some(TICK_JUDGE_BUDGET), |i, engine| {
                let phase = phases[i].lock().ok().and_then(|mut p| p.take());
                Box::pin(async move {
                    match phase {
                        Some(p) => Ok(engine.tick_judge(p).await),
                        None => Err("the first phase's result is missing".to_string()),
                    }
                })
            })
            .await;
        let mut out = FleetTick::default();
        let mut judged: BTreeMap<usize, Result<TickReport, String>> = BTreeMap::new();
        for (i, r) in second {
            judged.insert(i, r.result);
        }
        for (i, m) in self.members.iter().enumerate() {
            let scope = &m.scope;
            let result = match (failed.remove(&i), judged.remove(&i)) {
                (Some(e), _) => Err(e),
                (None, Some(Ok(report))) => Ok(report),
                (None, Some(Err(e))) => {
                    // The reverts of the first phase happened; the report of the second is lost.
                    out.total.reverts.extend(early.remove(&i).unwrap_or_default());
                    Err(e)
                }
                (None, None) => Err(format!("{scope}: not ticked")),
            };
            match result {
                Ok(report) => {
                    out.scopes.push(summary(scope, &report, false));
                    let TickReport { concluded, watching, left_to_their_starter, not_ours, reverts, errors } = report;
                    out.total.concluded.extend(concluded);
                    out.total.watching.extend(watching);
                    out.total.left_to_their_starter.extend(left_to_their_starter);
                    out.total.not_ours.extend(not_ours.into_iter().map(|n| format!("{scope}: {n}")));
                    out.total.reverts.extend(reverts);
                    out.total.errors.extend(errors.into_iter().map(|e| format!("{scope}: {e}")));
                }
                Err(error) => {
                    out.scopes.push(summary(scope, &TickReport::default(), true));
                    out.total.errors.push(error.clone());
                    out.failed_scopes.push(ScopeFailure {
                        account: scope.account.clone(),
                        region: scope.region.clone(),
                        error,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Every opted-in target of every scope and whether it is eligible.
    pub async fn targets(&self) -> Vec<ScopeResult<Vec<TargetStatus>>> {
        self.each(Some(LIST_BUDGET), |_, engine| engine.targets()).await
    }

    /// Every experiment of every scope.
    pub async fn active(&self) -> Vec<ScopeResult<chaoslingr_domain::discovery::Discovered>> {
        self.each(Some(LIST_BUDGET), |_, engine| engine.active()).await
    }

    /// The emergency stop in every scope at once: every experiment ChaoSlingr owns is
    /// reverted; a scope that fails does not stop the others. No budget: every revert
    /// runs to its end (each is bounded by its attempts and the SDK's timeouts).
    pub async fn revert_all(&self) -> Vec<ScopeResult<Vec<RevertReport>>> {
        self.each(None, |_, engine| engine.revert_all()).await
    }

    /// Reverts experiment `id`, wherever it is.
    pub async fn revert_by_id(&self, id: &ExperimentId) -> Vec<ScopeResult<Vec<RevertReport>>> {
        self.each(None, |_, engine| engine.revert_by_id(id)).await
    }

    /// Where a run goes: with one scope, there (its engine decides everything). With
    /// several: the kill switch and the allowed hours first; then every scope lists its
    /// candidates (at once, bounded); the limits per account and in total (an account
    /// that could not be listed is closed and counts as full); a named target is looked
    /// up in every scope and must be in an account under its maximum; otherwise one
    /// uniformly random order over every candidate of every open account, and the first
    /// that passes its Config check is chosen. The run then goes to that scope with the
    /// target named, where the engine checks everything again before writing.
    pub async fn choose(&self, request: &RunRequest, rng: &mut (impl Rng + Send)) -> Result<Chosen<'_>, EngineError> {
        if self.is_single() {
            return Ok(Chosen::Scope { member: &self.members[0], request: request.clone() });
        }
        let technique = self.hub.requested_technique(request)?;
        if let Err(reason) = self.hub.schedule_preflight() {
            return Ok(Chosen::Ended(self.hub.abort_unplanned(request, reason, true).await?));
        }
        let listed = self.each(Some(LIST_BUDGET), |_, engine| engine.candidates(technique)).await;
        let mut unknown: BTreeSet<Option<String>> = BTreeSet::new();
        let mut failures: Vec<String> = Vec::new();
        let mut answered: Vec<(usize, chaoslingr_domain::engine::Candidates)> = Vec::new();
        for (i, r) in listed.into_iter().enumerate() {
            match r.result {
                Ok(c) => answered.push((i, c)),
                Err(e) => {
                    info!(error = %e, "a scope could not be listed; its account takes no experiment now");
                    unknown.insert(r.scope.account.clone());
                    failures.push(e);
                }
            }
        }
        if answered.is_empty() {
            let reason = format!("no target account and region could be listed: {}", failures.join("; "));
            return Ok(Chosen::Ended(self.hub.abort_unplanned(request, reason, false).await?));
        }
        let could_not_list = |reason: &mut String| {
            if !failures.is_empty() {
                reason.push_str(&format!("; {} could not be listed: {}", failures.len(), failures.join("; ")));
            }
        };
        let active: BTreeMap<Scope, Vec<String>> =
            answered.iter().map(|(i, c)| (self.members[*i].scope.clone(), c.active.clone())).collect();
        let limits = Limits { per_account: self.settings.max_active, total: self.settings.max_active_total };
        let open = plan::open_accounts(&active, &unknown, &self.scopes(), limits);

        if let Some(target) = &request.target {
            let found: Vec<usize> =
                answered.iter().filter(|(_, c)| c.opted_in.iter().any(|t| t == target)).map(|(i, _)| *i).collect();
            let member = match found.as_slice() {
                [i] => &self.members[*i],
                [] => {
                    let mut reason = format!(
                        "{target} is not an opted-in {} (tag {}={}) in any of the {} target account(s) and region(s) listed",
                        technique.target,
                        self.settings.opt_in_tag,
                        self.settings.opt_in_value,
                        answered.len()
                    );
                    could_not_list(&mut reason);
                    return Err(EngineError::BadInput(format!("{reason}; nothing was changed")));
                }
                many => {
                    let scopes: Vec<String> = many.iter().map(|i| self.members[*i].scope.to_string()).collect();
                    return Err(EngineError::BadInput(format!(
                        "{target} exists in several targets ({}); name one account and region (--accounts, --regions); nothing was changed",
                        scopes.join(", ")
                    )));
                }
            };
            let refused = match &open {
                Err(reason) => Some(reason.clone()),
                Ok(open) if !open.contains(&member.scope.account) => Some(format!(
                    "{} already has {} active experiment(s) or could not be listed whole, the maximum per account is {} (CHAOSLINGR_MAX_ACTIVE)",
                    member.scope.account.as_deref().unwrap_or("this account"),
                    active.iter().filter(|(s, _)| s.account == member.scope.account).map(|(_, ids)| ids.len()).sum::<usize>(),
                    limits.per_account
                )),
                Ok(_) => None,
            };
            if let Some(reason) = refused {
                return Ok(Chosen::Ended(self.hub.abort_unplanned(request, reason, true).await?));
            }
            return Ok(Chosen::Scope { member, request: request.clone() });
        }

        let open = match open {
            Ok(open) => open,
            Err(reason) => return Ok(Chosen::Ended(self.hub.abort_unplanned(request, reason, true).await?)),
        };
        let candidates: Vec<(usize, &chaoslingr_domain::selection::GroupInfo)> = answered
            .iter()
            .filter(|(i, _)| open.contains(&self.members[*i].scope.account))
            .flat_map(|(i, c)| c.eligible.iter().map(move |g| (*i, g)))
            .collect();
        let count = candidates.len();
        let (mut noncompliant, mut unreadable) = (0, Vec::new());
        for (i, group) in plan::random_order(candidates, rng) {
            let member = &self.members[i];
            let check = tokio::time::timeout(CONFIG_CHECK_BUDGET, member.engine.config_eligible(group)).await;
            match check {
                Ok(Ok(Ok(()))) => {
                    info!(scope = %member.scope, target = %group.id, of = count, "chosen");
                    let request = RunRequest {
                        experiment: Some(technique.name.to_string()),
                        target: Some(group.id.clone()),
                        scheduled: request.scheduled,
                    };
                    return Ok(Chosen::Scope { member, request });
                }
                Ok(Ok(Err(why))) => {
                    info!(scope = %member.scope, target = %group.id, reason = %why, "not eligible");
                    noncompliant += 1;
                }
                Ok(Err(e)) => {
                    warn!(scope = %member.scope, target = %group.id, error = %e, "could not read Config compliance");
                    unreadable.push(format!("{} in {}: {e}", group.id, member.scope));
                }
                Err(_) => {
                    warn!(scope = %member.scope, target = %group.id, "Config compliance did not answer");
                    unreadable.push(format!(
                        "{} in {}: Config did not answer within {}",
                        group.id,
                        member.scope,
                        human(CONFIG_CHECK_BUDGET)
                    ));
                }
            }
        }
        let mut reason = format!(
            "no eligible {} in {} target account(s) and region(s): {count} candidate(s) in accounts under their maximum, {noncompliant} already NON_COMPLIANT, {} whose Config compliance could not be read",
            technique.target,
            answered.len(),
            unreadable.len()
        );
        if !unreadable.is_empty() {
            reason.push_str(&format!(" ({})", unreadable.join("; ")));
        }
        could_not_list(&mut reason);
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
    use rand::SeedableRng;

    #[test]
    fn scopes_that_failed_last_time_are_worked_on_last() {
        let scopes: Vec<Scope> = ["111111111111", "222222222222", "333333333333"]
            .iter()
            .flat_map(|a| ["us-east-1", "eu-west-1"].map(|r| Scope::new(Some(a), r)))
            .collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut all = work_order(&scopes, &BTreeSet::new(), &mut rng);
        all.sort();
        assert_eq!(all, [0, 1, 2, 3, 4, 5]);
        let suspects = BTreeSet::from([scopes[0].clone(), scopes[3].clone()]);
        let mut firsts = BTreeSet::new();
        for _ in 0..50 {
            let order = work_order(&scopes, &suspects, &mut rng);
            let (healthy, failed) = order.split_at(4);
            let mut healthy = healthy.to_vec();
            healthy.sort();
            assert_eq!(healthy, [1, 2, 4, 5], "{order:?}");
            let mut failed = failed.to_vec();
            failed.sort();
            assert_eq!(failed, [0, 3], "{order:?}");
            firsts.insert(order[0]);
        }
        // The healthy ones take turns at the front: never the same ones waiting.
        assert_eq!(firsts.len(), 4, "{firsts:?}");
    }
}
