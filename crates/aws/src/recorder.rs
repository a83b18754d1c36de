//! Recording outcomes: CloudWatch metrics (one `PutMetricData` per outcome) and one SNS
//! message with the outcome JSON.

use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::config::retry::RetryConfig;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit, Statistic};
use aws_sdk_sns::types::MessageAttributeValue;
use aws_smithy_types::DateTime;
use chaoslingr_domain::outcome::StartReport;
use chaoslingr_domain::ports::{CallError, FailureKind, Recorder};
use chaoslingr_domain::{Outcome, OutcomeReport};
use tracing::{error, info, instrument};

use crate::errors::call_error;

/// [`Recorder`] on CloudWatch and SNS.
#[derive(Debug, Clone)]
pub struct AwsRecorder {
    pub(crate) cloudwatch: aws_sdk_cloudwatch::Client,
    sns: aws_sdk_sns::Client,
    pub(crate) namespace: String,
    topic_arn: Option<String>,
}

impl AwsRecorder {
    pub fn new(
        cloudwatch: aws_sdk_cloudwatch::Client,
        sns: aws_sdk_sns::Client,
        namespace: String,
        topic_arn: Option<String>,
    ) -> Self {
        AwsRecorder { cloudwatch, sns, namespace, topic_arn }
    }
}

fn dimension(name: &str, value: &str) -> Dimension {
    Dimension::builder().name(name).value(value).build()
}

fn count(name: &str, value: f64, experiment: &str, at: DateTime) -> MetricDatum {
    MetricDatum::builder()
        .metric_name(name)
        .dimensions(dimension("Experiment", experiment))
        .value(value)
        .unit(StandardUnit::Count)
        .timestamp(at)
        .build()
}

/// The metric data of one outcome: `Experiments`, the outcome's own count (the other
/// outcome counts at zero so dashboards sum cleanly), `TimeToDetect` per detector that
/// noticed, and `RevertFailures`.
pub fn metric_data(report: &OutcomeReport, at: SystemTime) -> Vec<MetricDatum> {
    let at = DateTime::from(at);
    let exp = report.experiment;
    let mut data = vec![count("Experiments", 1.0, exp, at)];
    for o in Outcome::ALL {
        data.push(count(o.metric_name(), if o == report.outcome { 1.0 } else { 0.0 }, exp, at));
    }
    for d in report.detections.iter().filter(|d| d.detected) {
        if let Some(secs) = d.seconds_to_detect {
            data.push(
                MetricDatum::builder()
                    .metric_name("TimeToDetect")
                    .dimensions(dimension("Experiment", exp))
                    .dimensions(dimension("Detector", &d.detector))
                    .value(secs)
                    .unit(StandardUnit::Seconds)
                    .timestamp(at)
                    .build(),
            );
        }
    }
    data.push(count("RevertFailures", if report.reverted { 0.0 } else { 1.0 }, exp, at));
    data.push(recorded(report, at));
    data
}

/// The experiment's own datum, `Recorded` with its `ExperimentId`, put in the same
/// `PutMetricData` request as its counts (accepted or refused as a whole), so that
/// whether an outcome was counted can be read back exactly ([`AwsRecorder::already_counted`]).
fn recorded(report: &OutcomeReport, at: DateTime) -> MetricDatum {
    MetricDatum::builder()
        .metric_name(RECORDED_METRIC)
        .dimensions(dimension("Experiment", report.experiment))
        .dimensions(dimension("ExperimentId", &report.experiment_id))
        .value(1.0)
        .unit(StandardUnit::Count)
        .timestamp(at)
        .build()
}

/// Attempts of one outcome's `PutMetricData`, each after reading back the one before.
const PUT_ATTEMPTS: u32 = 3;

/// The metric that says an experiment's outcome was counted.
pub const RECORDED_METRIC: &str = "Recorded";

/// How far back the read-back looks: an outcome is counted after its deadline, at most
/// 24 hours after injection, and recorded within a day of that.
const READ_BACK: Duration = Duration::from_secs(3 * 24 * 3600);

fn attribute(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder().data_type("String").string_value(value).build().expect("data_type is set")
}

impl AwsRecorder {
    /// Puts the outcome's metrics exactly once. `PutMetricData` is not idempotent: an
    /// attempt whose answer was lost (a timeout, a dropped connection) may have been
    /// applied, and the SDK's own retry would count it again. So each attempt goes out
    /// without the SDK's retries, and after a failed one the experiment's `Recorded`
    /// datum is read back before trying again.
    #[instrument(skip(self, report), fields(experiment_id = %report.experiment_id), err)]
    async fn put_metrics(&self, report: &OutcomeReport) -> Result<(), CallError> {
        let data = metric_data(report, SystemTime::now());
        let mut last = None;
        for attempt in 0..PUT_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                match self.already_counted(report).await {
                    Ok(true) => return Ok(()),
                    Ok(false) => {}
                    // Not knowing whether it was applied: do not risk counting twice.
                    Err(e) => return Err(e),
                }
            }
            let put = self
                .cloudwatch
                .put_metric_data()
                .namespace(&self.namespace)
                .set_metric_data(Some(data.clone()))
                .customize()
                .config_override(aws_sdk_cloudwatch::config::Builder::default().retry_config(RetryConfig::disabled()))
                .send()
                .await;
            match put {
                Ok(_) => return Ok(()),
                Err(e) => {
                    let e = call_error("PutMetricData", &e);
                    if e.kind != FailureKind::Transient {
                        return Err(e);
                    }
                    tracing::warn!(attempt, error = %e, "PutMetricData failed; reading back before trying again");
                    last = Some(e);
                }
            }
        }
        Err(last.expect("at least one attempt"))
    }

    #[instrument(skip(self, report), fields(experiment_id = %report.experiment_id), err)]
    async fn publish_to(&self, topic: &str, report: &OutcomeReport) -> Result<(), CallError> {
        let mut subject =
            format!("ChaoSlingr: {} on {}", report.outcome, report.security_group_id.as_deref().unwrap_or("no target"));
        subject.truncate(100);
        let publish = self
            .sns
            .publish()
            .topic_arn(topic)
            .subject(subject)
            .message(report.to_json())
            .message_attributes("outcome", attribute(report.outcome.as_str()))
            .message_attributes("experiment", attribute(report.experiment));
        // Only on quiet outcomes: the notifier's subscription takes messages without it.
        let publish = if report.quiet { publish.message_attributes("quiet", attribute("true")) } else { publish };
        publish.send().await.map_err(|e| call_error("Publish", &e))?;
        Ok(())
    }
}

impl Recorder for AwsRecorder {
    async fn record_start(&self, start: &StartReport) -> Vec<CallError> {
        let metric = async {
            self.cloudwatch
                .put_metric_data()
                .namespace(&self.namespace)
                .metric_data(count("Started", 1.0, start.experiment, DateTime::from(SystemTime::now())))
                .send()
                .await
                .map_err(|e| call_error("PutMetricData", &e))
                .map(|_| ())
        };
        let publish = async {
            let Some(topic) = &self.topic_arn else { return Ok(()) };
            let mut subject =
                format!("ChaoSlingr: started on {} ({} {})", start.target_id, start.protocol, start.from_port);
            subject.truncate(100);
            self.sns
                .publish()
                .topic_arn(topic)
                .subject(subject)
                .message(start.to_json())
                .message_attributes("event", attribute("started"))
                .message_attributes("experiment", attribute(start.experiment))
                .send()
                .await
                .map_err(|e| call_error("Publish", &e))
                .map(|_| ())
        };
        let (m, p) = tokio::join!(metric, publish);
        info!(target: "chaoslingr::start", experiment_id = %start.experiment_id, report = %start.to_json(), "started");
        let failures: Vec<CallError> = [m.err(), p.err()].into_iter().flatten().collect();
        for f in &failures {
            error!(error = %f, "could not announce the start");
        }
        failures
    }

    async fn already_counted(&self, report: &OutcomeReport) -> Result<bool, CallError> {
        let now = SystemTime::now();
        let out = self
            .cloudwatch
            .get_metric_statistics()
            .namespace(&self.namespace)
            .metric_name(RECORDED_METRIC)
            .dimensions(dimension("Experiment", report.experiment))
            .dimensions(dimension("ExperimentId", &report.experiment_id))
            .start_time(DateTime::from(now - READ_BACK))
            .end_time(DateTime::from(now + Duration::from_secs(600)))
            .period(86_400)
            .statistics(Statistic::Sum)
            .send()
            .await
            .map_err(|e| call_error("GetMetricStatistics", &e))?;
        let counted = out.datapoints().iter().any(|d| d.sum().unwrap_or(0.0) > 0.0);
        info!(experiment_id = %report.experiment_id, counted, "read back whether the outcome was counted");
        Ok(counted)
    }

    async fn count(&self, report: &OutcomeReport) -> Vec<CallError> {
        let failures: Vec<CallError> = self.put_metrics(report).await.err().into_iter().collect();
        for f in &failures {
            error!(error = %f, "could not count the outcome");
        }
        failures
    }

    async fn publish(&self, report: &OutcomeReport) -> Vec<CallError> {
        // One structured line per outcome, whatever else works.
        info!(target: "chaoslingr::outcome", outcome = %report.outcome, experiment_id = %report.experiment_id, report = %report.to_json(), "outcome");
        let Some(topic) = &self.topic_arn else {
            tracing::debug!("no topic configured; outcome not published");
            return Vec::new();
        };
        let failures: Vec<CallError> = self.publish_to(topic, report).await.err().into_iter().collect();
        for f in &failures {
            error!(error = %f, "could not publish the outcome");
        }
        failures
    }

    async fn record(&self, report: &OutcomeReport) -> Vec<CallError> {
        let (mut counted, published) = tokio::join!(self.count(report), self.publish(report));
        counted.extend(published);
        counted
    }
}
