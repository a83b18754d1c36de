//! The history the CloudWatch metrics keep, for `chaoslingr report` when there is no
//! outcome archive: per technique, how many experiments ran and how each ended, week by
//! week; per detector, how many changes it detected and its time-to-detect p50, p90 and
//! max. Metrics are aggregates: they cannot say which experiments a detector missed, so
//! no detection rate per detector, no gaps and no per-experiment rows come from here.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::types::{Dimension, DimensionFilter, Metric, MetricDataQuery, MetricStat};
use aws_smithy_types::DateTime;
use chaoslingr_domain::ports::CallError;
use chaoslingr_domain::Outcome;

use crate::errors::call_error;

/// One detector, from its `TimeToDetect` samples.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricDetector {
    pub detector: String,
    /// Changes it detected (the samples).
    pub detected: u64,
    /// `None` when CloudWatch (or an emulator) did not answer the percentile.
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub max: Option<f64>,
}

/// One technique over the period.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricTechnique {
    pub experiment: String,
    pub runs: u64,
    pub outcomes: BTreeMap<&'static str, u64>,
    /// `(week start, outcomes)`, for the weeks that had any.
    pub weeks: Vec<(SystemTime, BTreeMap<&'static str, u64>)>,
    pub detectors: Vec<MetricDetector>,
}

const WEEK: i32 = 7 * 86_400;

fn dim(name: &str, value: &str) -> Dimension {
    Dimension::builder().name(name).value(value).build()
}

fn query(id: String, namespace: &str, name: &str, dims: Vec<Dimension>, period: i32, stat: &str) -> MetricDataQuery {
    let metric = Metric::builder().namespace(namespace).metric_name(name).set_dimensions(Some(dims)).build();
    MetricDataQuery::builder()
        .id(id)
        .metric_stat(MetricStat::builder().metric(metric).period(period).stat(stat).build())
        .return_data(true)
        .build()
}

/// Runs `queries` (at most 500 per call) and returns each id's `(timestamp, value)` points.
async fn run(
    cw: &aws_sdk_cloudwatch::Client,
    queries: Vec<MetricDataQuery>,
    since: SystemTime,
    until: SystemTime,
) -> Result<BTreeMap<String, Vec<(SystemTime, f64)>>, CallError> {
    let mut out: BTreeMap<String, Vec<(SystemTime, f64)>> = BTreeMap::new();
    for chunk in queries.chunks(500) {
        let mut pages = cw
            .get_metric_data()
            .set_metric_data_queries(Some(chunk.to_vec()))
            .start_time(DateTime::from(since))
            // A minute on: CloudWatch (and the emulator) cut the end to whole seconds or
            // minutes, which would leave out what was counted a moment ago.
            .end_time(DateTime::from(until + Duration::from_secs(60)))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| call_error("GetMetricData", &e))?;
            for r in page.metric_data_results() {
                let points = out.entry(r.id().unwrap_or_default().to_string()).or_default();
                for (t, v) in r.timestamps().iter().zip(r.values()) {
                    let t = SystemTime::try_from(*t).unwrap_or(SystemTime::UNIX_EPOCH);
                    points.push((t, *v));
                }
            }
        }
    }
    Ok(out)
}

/// One period covering `[since, until + 60 s)` in a single bucket, in whole hours:
/// CloudWatch answers data older than 15 days only for periods that are multiples of 300
/// seconds, and older than 63 days only for multiples of 3600.
fn whole_period(since: SystemTime, until: SystemTime) -> i32 {
    let span = (until + Duration::from_secs(60)).duration_since(since).unwrap_or_default().as_secs();
    let hours = span.div_ceil(3600).max(1);
    i32::try_from(hours * 3600).unwrap_or(i32::MAX / 3600 * 3600)
}

/// The metrics' history of `[since, until)` in `namespace`, for `techniques`; `since`
/// should be a week start so that weeks line up with the archive's.
pub async fn metric_history(
    conf: &aws_config::SdkConfig,
    namespace: &str,
    techniques: &[&str],
    since: SystemTime,
    until: SystemTime,
) -> Result<Vec<MetricTechnique>, CallError> {
    let cw = &aws_sdk_cloudwatch::Client::new(conf);
    // The detectors that ever detected, per technique: the dimension sets of TimeToDetect.
    let mut detectors: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut pages = cw
        .list_metrics()
        .namespace(namespace)
        .metric_name("TimeToDetect")
        .dimensions(DimensionFilter::builder().name("Experiment").build())
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| call_error("ListMetrics", &e))?;
        for m in page.metrics() {
            let value = |n: &str| m.dimensions().iter().find(|d| d.name() == Some(n)).and_then(|d| d.value());
            if let (Some(e), Some(d)) = (value("Experiment"), value("Detector")) {
                detectors.entry(e.to_string()).or_default().push(d.to_string());
            }
        }
    }
    let whole = whole_period(since, until);
    let mut counts = Vec::new();
    let mut times = Vec::new();
    let mut percentiles = Vec::new();
    for (t, name) in techniques.iter().enumerate() {
        counts.push(query(format!("runs{t}"), namespace, "Experiments", vec![dim("Experiment", name)], whole, "Sum"));
        for (o, outcome) in Outcome::ALL.iter().enumerate() {
            let dims = vec![dim("Experiment", name)];
            counts.push(query(format!("o{t}_{o}"), namespace, outcome.metric_name(), dims, WEEK, "Sum"));
        }
        for (d, detector) in detectors.get(*name).into_iter().flatten().enumerate() {
            let dims = || vec![dim("Experiment", name), dim("Detector", detector)];
            times.push(query(format!("n{t}_{d}"), namespace, "TimeToDetect", dims(), whole, "SampleCount"));
            times.push(query(format!("max{t}_{d}"), namespace, "TimeToDetect", dims(), whole, "Maximum"));
            percentiles.push(query(format!("p50_{t}_{d}"), namespace, "TimeToDetect", dims(), whole, "p50"));
            percentiles.push(query(format!("p90_{t}_{d}"), namespace, "TimeToDetect", dims(), whole, "p90"));
        }
    }
    counts.extend(times);
    let values = run(cw, counts, since, until).await?;
    // Percentiles in a call of their own: an endpoint that cannot answer them (an
    // emulator) costs the report its p50 and p90, not its counts.
    let pct = match run(cw, percentiles, since, until).await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "CloudWatch did not answer the time-to-detect percentiles");
            BTreeMap::new()
        }
    };
    let total = |id: &str| values.get(id).map(|p| p.iter().map(|(_, v)| v).sum::<f64>());
    let single = |map: &BTreeMap<String, Vec<(SystemTime, f64)>>, id: &str| {
        map.get(id).and_then(|p| p.iter().map(|(_, v)| *v).reduce(f64::max))
    };
    let mut out = Vec::new();
    for (t, name) in techniques.iter().enumerate() {
        let mut outcomes = BTreeMap::new();
        let mut weeks: BTreeMap<SystemTime, BTreeMap<&'static str, u64>> = BTreeMap::new();
        for (o, outcome) in Outcome::ALL.iter().enumerate() {
            for (week, v) in values.get(&format!("o{t}_{o}")).into_iter().flatten() {
                if *v > 0.0 {
                    *weeks.entry(*week).or_default().entry(outcome.as_str()).or_insert(0) += *v as u64;
                    *outcomes.entry(outcome.as_str()).or_insert(0) += *v as u64;
                }
            }
        }
        let detectors = detectors
            .get(*name)
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(d, detector)| MetricDetector {
                detector: detector.clone(),
                detected: total(&format!("n{t}_{d}")).unwrap_or(0.0) as u64,
                p50: single(&pct, &format!("p50_{t}_{d}")),
                p90: single(&pct, &format!("p90_{t}_{d}")),
                max: single(&values, &format!("max{t}_{d}")),
            })
            .filter(|d| d.detected > 0)
            .collect();
        let runs = total(&format!("runs{t}")).unwrap_or(0.0) as u64;
        out.push(MetricTechnique {
            experiment: name.to_string(),
            runs,
            outcomes,
            weeks: weeks.into_iter().collect(),
            detectors,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_period_is_one_bucket_of_whole_hours() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        for days in [1u64, 7, 30, 64, 365] {
            let p = whole_period(t0, t0 + Duration::from_secs(days * 86_400 + 17)) as u64;
            assert_eq!(p % 3600, 0, "{days}d: {p}");
            assert!(p >= days * 86_400 + 77 && p < days * 86_400 + 77 + 3600, "{days}d: {p}");
        }
        assert_eq!(whole_period(t0, t0), 3600);
    }
}
