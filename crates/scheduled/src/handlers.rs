//! The inject and judge handlers, built once per cold start and called per event.

use chaoslingr_domain::engine::{RunEnd, RunRequest};
use chaoslingr_domain::scheduled::InjectEnd;
use chaoslingr_domain::Settings;
use rand::seq::IndexedRandom;
use rand::SeedableRng;
use serde_json::{json, Value};
use tracing::{error, info};

use crate::error::FunctionError;
use crate::event;

pub use chaoslingr_fleet::Fleet;
pub use chaoslingr_techniques::AwsEngine;

/// Settings and clients (one engine per target account and region, with their cached
/// credentials), built once per cold start.
pub struct Scheduled {
    fleet: Fleet,
}

impl Scheduled {
    /// Reads and validates `CHAOSLINGR_*` and loads the AWS configuration. A bad setting
    /// fails the cold start with the variable named. `function` (`inject`, `judge`) names
    /// the role sessions in the target accounts (`chaoslingr-judge`).
    pub async fn from_env(function: &str) -> Result<Self, FunctionError> {
        let settings = Settings::from_env()?;
        let conf = chaoslingr_aws::load_config().await;
        Scheduled::new(settings, &conf, function).await
    }

    pub async fn new(settings: Settings, conf: &aws_config::SdkConfig, function: &str) -> Result<Self, FunctionError> {
        if conf.region().is_none() {
            return Err(FunctionError::BadConfig("no AWS region configured (AWS_REGION)".into()));
        }
        let fleet =
            Fleet::new(conf, settings, &format!("chaoslingr-{function}")).await.map_err(FunctionError::BadConfig)?;
        Ok(Scheduled { fleet })
    }

    /// The scheduled inject: validates the event, then starts one experiment without
    /// waiting for it. Aborted, prevented and stepped-back runs are answers, not errors:
    /// they were recorded like any outcome.
    pub async fn inject(&self, event: Value) -> Result<Value, FunctionError> {
        let overrides = event::inject_overrides(&event)?;
        let settings = overrides.apply(&self.fleet.settings)?;
        let fleet = self.fleet.with_settings(settings);
        let mut rng = rand::rngs::StdRng::from_os_rng();
        let experiment = overrides.experiments.choose(&mut rng).cloned();
        let request = RunRequest { experiment, target: overrides.target.clone(), scheduled: true };
        let (scope, end) = Box::pin(fleet.inject(&request, &mut rng)).await?;
        match end {
            InjectEnd::Started { record, start, record_failures } => {
                let scope = scope.map(|s| s.to_string()).unwrap_or_default();
                info!(experiment_id = %record.id, group = %record.security_group_id, scope = %scope, "experiment started");
                Ok(json!({ "status": "started", "start": start, "record_failures": record_failures }))
            }
            InjectEnd::Ended(RunEnd::Concluded { report, revert, record_failures }) => {
                info!(experiment_id = %report.experiment_id, outcome = %report.outcome, reason = %report.reason, "no experiment started");
                if !report.reverted {
                    let rule = revert.map(|r| r.security_group_rule_id).unwrap_or_default();
                    error!(experiment_id = %report.experiment_id, rule = %rule, "REVERT FAILED after a step-back");
                    return Err(FunctionError::RevertFailed(format!(
                        "experiment {} rule {rule}: {}",
                        report.experiment_id, report.reason
                    )));
                }
                Ok(json!({ "status": "ended", "outcome": report, "record_failures": record_failures }))
            }
            InjectEnd::Ended(RunEnd::DryRun(plan)) => Ok(json!({ "status": "dry-run", "dry_run": plan })),
        }
    }

    /// One judge tick. A failed revert fails the invocation (retryable) so that it shows
    /// in the function's error metrics; the next tick retries it either way.
    pub async fn judge(&self, event: Value) -> Result<Value, FunctionError> {
        event::judge_event(&event)?;
        // Boxed: the tick's future is deep enough to exceed the compiler's layout depth
        // when inlined into the runtime's own futures.
        let tick = Box::pin(self.fleet.judge_tick()).await?;
        let report = &tick.total;
        info!(
            concluded = report.concluded.len(),
            watching = report.watching.len(),
            left = report.left_to_their_starter.len(),
            errors = report.errors.len(),
            scopes = tick.scopes.len(),
            failed_scopes = tick.failed_scopes.len(),
            "judge tick"
        );
        for f in &tick.failed_scopes {
            error!(account = ?f.account, region = %f.region, error = %f.error, "could not tick this account and region; the others were ticked, the next tick retries it");
        }
        if report.revert_failed() {
            let failed: Vec<String> = report
                .reverts
                .iter()
                .filter(|r| !r.reverted)
                .map(|r| format!("{} ({})", r.security_group_rule_id, r.error.as_deref().unwrap_or("unknown error")))
                .collect();
            return Err(FunctionError::RevertFailed(failed.join(", ")));
        }
        Ok(serde_json::to_value(&tick).expect("tick reports serialize"))
    }
}
