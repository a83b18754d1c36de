//! Detectors: AWS Config rule compliance, CloudWatch alarms and Security Hub findings.
//!
//! Every detection is stamped with the detector's own time (Config `ResultRecordedTime`,
//! alarm `StateUpdatedTimestamp`, finding `CreatedAt`) and only counts when that time is
//! at or after the injection, so an old finding or a stale alarm never passes for a fast
//! detection.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_cloudwatch::types::{AlarmType, StateValue};
use aws_sdk_config::types::{
    ComplianceType, ConfigurationRecorder, RecordingFrequency, RecordingStrategyType, ResourceType,
};
use aws_sdk_securityhub::types::{
    AwsSecurityFindingFilters, DateFilter, RecordState, StringFilter, StringFilterComparison,
};
use aws_smithy_types::DateTime;
use chaoslingr_domain::experiment::ExperimentRecord;
use chaoslingr_domain::judge::Reading;
use chaoslingr_domain::ports::{AlarmState, AlarmValue, CallError, Detectors};
use chaoslingr_domain::recording::{ConfigRecorder, Frequency, Scope};
use chaoslingr_domain::technique::TechniqueRef;
use chaoslingr_domain::time::{parse_rfc3339, rfc3339, rfc3339_millis};
use chaoslingr_domain::Detector;
use tracing::instrument;

use crate::errors::call_error;

/// [`Detectors`] on AWS Config, CloudWatch and Security Hub.
#[derive(Debug, Clone)]
pub struct AwsDetectors {
    cloudwatch: aws_sdk_cloudwatch::Client,
    config: aws_sdk_config::Client,
    securityhub: aws_sdk_securityhub::Client,
    region: Option<String>,
    /// The Config recorders as last read, and when: they change rarely, and every
    /// observation of a `config:` detector asks.
    recorders: Arc<Mutex<Option<RecordersRead>>>,
}

/// The Config recorders, and when they were read.
type RecordersRead = (Instant, Vec<ConfigRecorder>);

/// How long a reading of the Config recorders is reused.
const RECORDERS_TTL: Duration = Duration::from_secs(60);

fn frequency(f: &RecordingFrequency) -> Frequency {
    match f {
        RecordingFrequency::Daily => Frequency::Daily,
        _ => Frequency::Continuous,
    }
}

/// A recorder as the domain sees it, from its description and its status.
pub fn config_recorder(r: &ConfigurationRecorder, recording: bool) -> ConfigRecorder {
    let types = |t: &[ResourceType]| t.iter().map(|t| t.as_str().to_string()).collect::<Vec<_>>();
    let group = r.recording_group();
    let strategy = group.and_then(|g| g.recording_strategy()).and_then(|s| s.use_only());
    let scope = match (group, strategy) {
        (None, _) => Scope::All,
        (Some(g), Some(RecordingStrategyType::ExclusionByResourceTypes)) => {
            Scope::AllExcept(g.exclusion_by_resource_types().map(|e| types(e.resource_types())).unwrap_or_default())
        }
        (Some(g), _) if g.all_supported() => Scope::All,
        (Some(g), _) => Scope::Only(types(g.resource_types())),
    };
    let mode = r.recording_mode();
    ConfigRecorder {
        name: r.name().unwrap_or("default").to_string(),
        recording,
        scope,
        frequency: mode.map(|m| frequency(m.recording_frequency())).unwrap_or(Frequency::Continuous),
        overrides: mode
            .map(|m| {
                m.recording_mode_overrides()
                    .iter()
                    .map(|o| (types(o.resource_types()), frequency(o.recording_frequency())))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn system_time(t: &DateTime) -> Option<SystemTime> {
    SystemTime::try_from(*t).ok()
}

/// One NON_COMPLIANT evaluation of a rule for a resource.
#[derive(Debug, Clone, PartialEq)]
struct Evaluation {
    rule: String,
    recorded: Option<SystemTime>,
    invoked: Option<SystemTime>,
}

impl AwsDetectors {
    pub fn new(
        cloudwatch: aws_sdk_cloudwatch::Client,
        config: aws_sdk_config::Client,
        securityhub: aws_sdk_securityhub::Client,
        region: Option<String>,
    ) -> Self {
        AwsDetectors { cloudwatch, config, securityhub, region, recorders: Arc::default() }
    }

    /// `GetComplianceDetailsByResource` for NON_COMPLIANT results, every page.
    #[instrument(skip(self), err)]
    async fn noncompliant_evaluations(
        &self,
        resource_type: &str,
        group_id: &str,
    ) -> Result<Vec<Evaluation>, CallError> {
        let mut out = Vec::new();
        let mut pages = self
            .config
            .get_compliance_details_by_resource()
            .resource_type(resource_type)
            .resource_id(group_id)
            .compliance_types(ComplianceType::NonCompliant)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| call_error("GetComplianceDetailsByResource", &e))?;
            for r in page.evaluation_results() {
                if r.compliance_type() != Some(&ComplianceType::NonCompliant) {
                    continue;
                }
                let rule = r
                    .evaluation_result_identifier()
                    .and_then(|i| i.evaluation_result_qualifier())
                    .and_then(|q| q.config_rule_name())
                    .unwrap_or_default()
                    .to_string();
                out.push(Evaluation {
                    rule,
                    recorded: r.result_recorded_time().and_then(system_time),
                    invoked: r.config_rule_invoked_time().and_then(system_time),
                });
            }
        }
        Ok(out)
    }

    async fn observe_config(
        &self,
        technique: TechniqueRef,
        record: &ExperimentRecord,
        rules: &[String],
    ) -> Vec<(Detector, Reading)> {
        let detector = |rule: &String| Detector::Config { rule: rule.clone() };
        match self.noncompliant_evaluations(technique.config_resource_type, &record.security_group_id).await {
            Err(e) => rules.iter().map(|r| (detector(r), Reading::Error { message: e.to_string() })).collect(),
            Ok(evals) => rules
                .iter()
                .map(|rule| {
                    let fresh = evals
                        .iter()
                        .filter(|e| &e.rule == rule)
                        .filter_map(|e| e.recorded.map(|t| (t, e)))
                        .filter(|(t, _)| *t >= record.injected_at)
                        .min_by_key(|(t, _)| *t);
                    let reading = match fresh {
                        Some((at, e)) => Reading::Fired {
                            at,
                            evidence: format!(
                                "Config rule {rule} recorded {} NON_COMPLIANT at {}{}",
                                record.security_group_id,
                                rfc3339_millis(at),
                                e.invoked
                                    .map(|i| format!(" (evaluation invoked {})", rfc3339_millis(i)))
                                    .unwrap_or_default()
                            ),
                        },
                        None => Reading::Quiet { note: format!("no NON_COMPLIANT result from {rule} since injection") },
                    };
                    (detector(rule), reading)
                })
                .collect(),
        }
    }

    async fn observe_alarms(&self, record: &ExperimentRecord, names: &[String]) -> Vec<(Detector, Reading)> {
        let detector = |name: &String| Detector::Alarm { name: name.clone() };
        match self.alarm_states(names).await {
            Err(e) => names.iter().map(|n| (detector(n), Reading::Error { message: e.to_string() })).collect(),
            Ok(states) => names
                .iter()
                .map(|name| {
                    let reading = match states.iter().find(|a| &a.name == name) {
                        None => Reading::Error { message: format!("alarm {name} does not exist") },
                        Some(a) => match a.updated {
                            Some(at) if a.state == AlarmValue::Alarm && at >= record.injected_at => Reading::Fired {
                                at,
                                evidence: format!("alarm {name} entered ALARM at {}", rfc3339_millis(at)),
                            },
                            _ => Reading::Quiet { note: format!("alarm {name} is {}", a.state) },
                        },
                    };
                    (detector(name), reading)
                })
                .collect(),
        }
    }

    fn target_arn(&self, technique: TechniqueRef, record: &ExperimentRecord) -> Option<String> {
        let region = self.region.as_deref()?;
        let account = record.account.as_deref()?;
        Some(technique.target_arn(crate::partition(region), region, account, &record.security_group_id))
    }

    /// `GetFindings` for the group's ARN created since the injection. The filters are
    /// re-checked here on every finding: some implementations ignore them, and a wrong
    /// match would report a detection that never happened.
    #[instrument(skip(self, technique, record), fields(experiment_id = %record.id), err)]
    async fn securityhub_first_finding(
        &self,
        technique: TechniqueRef,
        record: &ExperimentRecord,
        generator_id: Option<&str>,
    ) -> Result<Option<(SystemTime, String)>, CallError> {
        let suffix = format!("{}/{}", technique.arn_resource, record.security_group_id);
        let mut filters = AwsSecurityFindingFilters::builder()
            .created_at(
                DateFilter::builder()
                    .start(rfc3339(record.injected_at - std::time::Duration::from_secs(1)))
                    .end(rfc3339(record.deadline + std::time::Duration::from_secs(1)))
                    .build(),
            )
            .record_state(StringFilter::builder().value("ACTIVE").comparison(StringFilterComparison::Equals).build());
        filters = match self.target_arn(technique, record) {
            Some(arn) => filters
                .resource_id(StringFilter::builder().value(arn).comparison(StringFilterComparison::Equals).build()),
            None => filters.resource_id(
                StringFilter::builder()
                    .value(&record.security_group_id)
                    .comparison(StringFilterComparison::Contains)
                    .build(),
            ),
        };
        if let Some(g) = generator_id {
            filters = filters
                .generator_id(StringFilter::builder().value(g).comparison(StringFilterComparison::Equals).build());
        }
        let filters = filters.build();
        let mut best: Option<(SystemTime, String)> = None;
        let mut pages = self.securityhub.get_findings().filters(filters).max_results(100).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| call_error("GetFindings", &e))?;
            for f in page.findings() {
                let about_group = f
                    .resources()
                    .iter()
                    .any(|r| r.id().is_some_and(|id| id == record.security_group_id || id.ends_with(&suffix)));
                let generator_ok = generator_id.is_none_or(|g| f.generator_id() == Some(g));
                let active = f.record_state().is_none_or(|s| *s == RecordState::Active);
                let created = f.created_at().and_then(parse_rfc3339_lenient);
                let in_window = created.is_some_and(|t| t >= record.injected_at && t <= record.deadline);
                if about_group && generator_ok && active && in_window {
                    let at = created.expect("checked above");
                    if best.as_ref().is_none_or(|(b, _)| at < *b) {
                        let title = f.title().unwrap_or("finding");
                        best = Some((
                            at,
                            format!(
                                "Security Hub finding \"{title}\" ({}) created {}",
                                f.generator_id().unwrap_or("?"),
                                rfc3339_millis(at)
                            ),
                        ));
                    }
                }
            }
        }
        Ok(best)
    }
}

/// Security Hub timestamps are ISO 8601 strings, with or without fractional seconds.
fn parse_rfc3339_lenient(s: &str) -> Option<SystemTime> {
    parse_rfc3339(s).or_else(|| {
        DateTime::from_str(s, aws_smithy_types::date_time::Format::DateTime).ok().and_then(|d| system_time(&d))
    })
}

/// CloudWatch's state value; one this SDK does not know, or none, is not a firing.
fn alarm_value(value: Option<&StateValue>) -> AlarmValue {
    match value {
        Some(StateValue::Ok) => AlarmValue::Ok,
        Some(StateValue::Alarm) => AlarmValue::Alarm,
        _ => AlarmValue::InsufficientData,
    }
}

impl Detectors for AwsDetectors {
    /// `DescribeConfigurationRecorders` and `DescribeConfigurationRecorderStatus`
    /// together, reused for a minute.
    async fn config_recorders(&self) -> Result<Option<Vec<ConfigRecorder>>, CallError> {
        if let Some((at, recorders)) = self.recorders.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            if at.elapsed() < RECORDERS_TTL {
                return Ok(Some(recorders.clone()));
            }
        }
        let (described, status) = tokio::join!(
            self.config.describe_configuration_recorders().send(),
            self.config.describe_configuration_recorder_status().send()
        );
        let described = described.map_err(|e| call_error("DescribeConfigurationRecorders", &e))?;
        let status = status.map_err(|e| call_error("DescribeConfigurationRecorderStatus", &e))?;
        let recorders: Vec<ConfigRecorder> = described
            .configuration_recorders()
            .iter()
            .map(|r| {
                let recording =
                    status.configuration_recorders_status().iter().any(|s| s.name() == r.name() && s.recording());
                config_recorder(r, recording)
            })
            .collect();
        *self.recorders.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), recorders.clone()));
        Ok(Some(recorders))
    }

    /// `DescribeAlarms` for metric and composite alarms, 100 names per call.
    #[instrument(skip(self), err)]
    async fn alarm_states(&self, names: &[String]) -> Result<Vec<AlarmState>, CallError> {
        let mut out = Vec::new();
        for chunk in names.chunks(100) {
            let mut pages = self
                .cloudwatch
                .describe_alarms()
                .set_alarm_names(Some(chunk.to_vec()))
                .alarm_types(AlarmType::MetricAlarm)
                .alarm_types(AlarmType::CompositeAlarm)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| call_error("DescribeAlarms", &e))?;
                for a in page.metric_alarms() {
                    out.push(AlarmState {
                        name: a.alarm_name().unwrap_or_default().to_string(),
                        state: alarm_value(a.state_value()),
                        updated: a.state_updated_timestamp().and_then(system_time),
                    });
                }
                for a in page.composite_alarms() {
                    out.push(AlarmState {
                        name: a.alarm_name().unwrap_or_default().to_string(),
                        state: alarm_value(a.state_value()),
                        updated: a.state_updated_timestamp().and_then(system_time),
                    });
                }
            }
        }
        Ok(out)
    }

    async fn noncompliant_rules(
        &self,
        technique: TechniqueRef,
        group_id: &str,
        rules: &[String],
    ) -> Result<Vec<String>, CallError> {
        let evals = self.noncompliant_evaluations(technique.config_resource_type, group_id).await?;
        Ok(rules.iter().filter(|r| evals.iter().any(|e| &e.rule == *r)).cloned().collect())
    }

    /// One reading of every detector: one Config call for all Config rules, one
    /// `DescribeAlarms` for all alarms, one `GetFindings` per Security Hub detector.
    #[instrument(skip(self, technique, record), fields(experiment_id = %record.id, experiment = %technique))]
    async fn observe(&self, technique: TechniqueRef, record: &ExperimentRecord) -> Vec<(Detector, Reading)> {
        let mut config_rules = Vec::new();
        let mut alarms = Vec::new();
        let mut hubs = Vec::new();
        for d in &record.detectors {
            match d {
                Detector::Config { rule } => config_rules.push(rule.clone()),
                Detector::Alarm { name } => alarms.push(name.clone()),
                Detector::SecurityHub { generator_id } => hubs.push(generator_id.clone()),
            }
        }
        let config = async {
            if config_rules.is_empty() {
                Vec::new()
            } else {
                self.observe_config(technique, record, &config_rules).await
            }
        };
        let alarm = async {
            if alarms.is_empty() {
                Vec::new()
            } else {
                self.observe_alarms(record, &alarms).await
            }
        };
        let hub = async {
            let mut out = Vec::new();
            for g in &hubs {
                let d = Detector::SecurityHub { generator_id: g.clone() };
                let reading = match self.securityhub_first_finding(technique, record, g.as_deref()).await {
                    Ok(Some((at, evidence))) => Reading::Fired { at, evidence },
                    Ok(None) => Reading::Quiet { note: "no finding on the group since injection".into() },
                    Err(e) => Reading::Error { message: e.to_string() },
                };
                out.push((d, reading));
            }
            out
        };
        let (mut a, b, c) = tokio::join!(config, alarm, hub);
        a.extend(b);
        a.extend(c);
        a
    }
}
