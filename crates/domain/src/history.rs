//! The history of outcomes, summarised per technique and per detector: what `chaoslingr
//! report` prints. Pure: it reads outcome objects (`chaoslingr.outcome/v1`, as published
//! and archived) and answers which controls catch what, how fast, and whether that is
//! getting worse.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::Value;

use crate::detector::REMEDIATION;
use crate::outcome::Outcome;
use crate::time::{human, parse_rfc3339, rfc3339};

/// The longest time to detect an outcome can hold: a week, far past the 24-hour window cap.
const MAX_SECONDS: f64 = 7.0 * 86_400.0;

/// One detector's result in one archived outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub detector: String,
    pub detected: bool,
    pub seconds: Option<f64>,
    pub could_not_see: bool,
}

/// One archived outcome, as much of it as the report uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub experiment_id: String,
    pub experiment: String,
    pub account: Option<String>,
    pub region: Option<String>,
    pub target_id: Option<String>,
    /// `tcp 40000-40002`, when a change was planned.
    pub change: Option<String>,
    pub concluded_at: SystemTime,
    pub outcome: Outcome,
    pub detections: Vec<Detection>,
    /// A scheduled pre-flight abort (kill switch, allowed hours, maximum active).
    pub quiet: bool,
}

impl Entry {
    /// Reads one outcome object; messages of producers before techniques (no
    /// `experiment`, `target_id`) read as `port-change` on `security_group_id`.
    pub fn from_json(v: &Value) -> Result<Entry, String> {
        let text = |key: &str| v.get(key).and_then(Value::as_str).map(String::from);
        if text("schema").as_deref() != Some(crate::outcome::SCHEMA) {
            return Err(format!("not a {} object", crate::outcome::SCHEMA));
        }
        let experiment_id = text("experiment_id").ok_or("no experiment_id")?;
        let concluded = text("concluded_at").ok_or_else(|| format!("{experiment_id}: no concluded_at"))?;
        let concluded_at = parse_rfc3339(&concluded)
            .ok_or_else(|| format!("{experiment_id}: concluded_at `{concluded}` is not RFC 3339"))?;
        let outcome_text = text("outcome").ok_or_else(|| format!("{experiment_id}: no outcome"))?;
        let outcome: Outcome = outcome_text.parse().map_err(|e| format!("{experiment_id}: {e}"))?;
        let port = |key: &str| v.get(key).and_then(Value::as_u64);
        let change = match (text("protocol"), port("from_port"), port("to_port")) {
            (Some(p), Some(a), Some(b)) if a == b => Some(format!("{p} {a}")),
            (Some(p), Some(a), Some(b)) => Some(format!("{p} {a}-{b}")),
            _ => None,
        };
        let mut detections = Vec::new();
        for d in v.get("detections").and_then(Value::as_array).into_iter().flatten() {
            let Some(detector) = d.get("detector").and_then(Value::as_str) else { continue };
            let seconds = d.get("seconds_to_detect").and_then(Value::as_f64);
            // A time no run could have taken (negative, or past the 24-hour window cap by
            // far) is a damaged object, not a measurement.
            if seconds.is_some_and(|s| !(0.0..=MAX_SECONDS).contains(&s)) {
                return Err(format!(
                    "{experiment_id}: {detector}: seconds_to_detect {} is out of range",
                    seconds.unwrap_or_default()
                ));
            }
            detections.push(Detection {
                detector: detector.to_string(),
                detected: d.get("detected").and_then(Value::as_bool).unwrap_or(false),
                seconds,
                could_not_see: d.get("could_not_see").and_then(Value::as_bool).unwrap_or(false),
            });
        }
        Ok(Entry {
            experiment: text("experiment").unwrap_or_else(|| "port-change".into()),
            account: text("account"),
            region: text("region"),
            target_id: text("target_id").or_else(|| text("security_group_id")),
            change,
            concluded_at,
            outcome,
            detections,
            quiet: v.get("quiet").and_then(Value::as_bool).unwrap_or(false),
            experiment_id,
        })
    }

    /// Whether a change was made (only those can be detected or missed).
    pub fn injected(&self) -> bool {
        self.outcome.requires_injection() || self.detections.iter().any(|d| d.detected)
    }
}

/// How one detector did over a period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DetectorSummary {
    pub detector: String,
    /// Experiments it watched whose change was made (and it could see).
    pub watched: usize,
    pub detected: usize,
    /// Experiments it watched but could not see (not counted as misses).
    pub could_not_see: usize,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub max: Option<f64>,
    /// The p90 of the period before, as long as this one.
    pub previous_p90: Option<f64>,
}

impl DetectorSummary {
    pub fn rate(&self) -> Option<f64> {
        (self.watched > 0).then(|| self.detected as f64 / self.watched as f64)
    }

    /// How the time-to-detect compares with the previous period.
    pub fn trend(&self) -> &'static str {
        match (self.p90, self.previous_p90) {
            (Some(now), Some(before)) if now > before * 1.1 => "slower than the previous period",
            (Some(now), Some(before)) if now < before * 0.9 => "faster than the previous period",
            (Some(_), Some(_)) => "as fast as the previous period",
            _ => "no previous period to compare",
        }
    }

    /// One line: `config:x  detected 18/20 (90%)  p90 4m12s  slower than the previous period`.
    pub fn verdict(&self) -> String {
        let rate = self.rate().map(|r| format!(" ({:.0}%)", r * 100.0)).unwrap_or_default();
        let p90 = self.p90.map(|s| format!("  p90 {}", human(Duration::from_secs_f64(s)))).unwrap_or_default();
        let blind =
            if self.could_not_see > 0 { format!("  could not see {}", self.could_not_see) } else { String::new() };
        format!("{}  detected {}/{}{rate}{p90}{blind}  {}", self.detector, self.detected, self.watched, self.trend())
    }
}

/// One technique over a period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TechniqueSummary {
    pub experiment: String,
    pub runs: usize,
    pub outcomes: BTreeMap<&'static str, usize>,
    /// Each outcome's share of the runs (0 to 1).
    pub outcome_rates: BTreeMap<&'static str, f64>,
    /// Of the aborted runs, the scheduled pre-flight aborts (kill switch on, outside the
    /// allowed hours, maximum active reached): the schedule ran, on purpose nothing did.
    pub scheduled_skips: usize,
    pub detectors: Vec<DetectorSummary>,
    /// The period week by week (weeks start on Monday, 00:00 UTC).
    pub weeks: Vec<Week>,
}

/// One week of one technique.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Week {
    /// Monday 00:00 UTC, RFC 3339.
    pub starts: String,
    pub runs: usize,
    pub outcomes: BTreeMap<&'static str, usize>,
    /// Per detector: changes it could see, and how many it detected.
    pub detectors: BTreeMap<String, WeekRate>,
}

/// One detector in one week.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct WeekRate {
    pub watched: usize,
    pub detected: usize,
}

impl WeekRate {
    pub fn rate(&self) -> Option<f64> {
        (self.watched > 0).then(|| self.detected as f64 / self.watched as f64)
    }
}

/// Seconds from the epoch (a Thursday) to the first Monday, 1970-01-05T00:00:00Z.
const FIRST_MONDAY: u64 = 4 * 86_400;
const WEEK: u64 = 7 * 86_400;

/// The Monday 00:00 UTC starting the week `t` is in.
pub fn week_start(t: SystemTime) -> SystemTime {
    let s = t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let monday = if s < FIRST_MONDAY { 0 } else { FIRST_MONDAY + (s - FIRST_MONDAY) / WEEK * WEEK };
    SystemTime::UNIX_EPOCH + Duration::from_secs(monday)
}

/// The week starts from the week of `since` to the week of the last instant before `until`.
pub fn week_starts(since: SystemTime, until: SystemTime) -> Vec<SystemTime> {
    let last = week_start(until.checked_sub(Duration::from_nanos(1)).unwrap_or(until));
    let mut weeks = vec![week_start(since)];
    while let Some(&w) = weeks.last().filter(|&&w| w < last) {
        weeks.push(w + Duration::from_secs(WEEK));
    }
    weeks
}

/// The detectors an entry's change could be seen by, with whether each detected it.
fn seen_by(e: &Entry) -> impl Iterator<Item = &Detection> {
    e.detections.iter().filter(move |d| e.injected() && d.detector != REMEDIATION && (d.detected || !d.could_not_see))
}

/// The value at quantile `q` (nearest rank) of sorted `values`.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

fn p90_of(entries: &[&Entry], detector: &str) -> Option<f64> {
    let mut times: Vec<f64> = entries
        .iter()
        .flat_map(|e| &e.detections)
        .filter(|d| d.detector == detector && d.detected)
        .filter_map(|d| d.seconds)
        .collect();
    times.sort_by(f64::total_cmp);
    quantile(&times, 0.9)
}

/// How the experiments of one account and region ended over a period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScopeSummary {
    pub account: Option<String>,
    pub region: Option<String>,
    /// Experiments concluded, not counting scheduled pre-flight skips.
    pub runs: usize,
    /// Runs whose change was made.
    pub injected: usize,
    /// Of those, the ones no detector noticed and nothing removed: the gaps.
    pub undetected: usize,
    /// Every outcome with its count.
    pub outcomes: BTreeMap<&'static str, usize>,
    /// `undetected / injected`.
    pub undetected_rate: Option<f64>,
}

/// The experiments of `entries` per account and region (scheduled pre-flight skips left
/// out: they concern no target), in account and region order.
pub fn by_scope<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> Vec<ScopeSummary> {
    let mut out: BTreeMap<(Option<String>, Option<String>), ScopeSummary> = BTreeMap::new();
    for e in entries.into_iter().filter(|e| !e.quiet) {
        let s = out.entry((e.account.clone(), e.region.clone())).or_insert_with(|| ScopeSummary {
            account: e.account.clone(),
            region: e.region.clone(),
            runs: 0,
            injected: 0,
            undetected: 0,
            outcomes: BTreeMap::new(),
            undetected_rate: None,
        });
        s.runs += 1;
        s.injected += usize::from(e.injected());
        s.undetected += usize::from(e.outcome == Outcome::Undetected);
        *s.outcomes.entry(e.outcome.as_str()).or_default() += 1;
    }
    out.into_values()
        .map(|mut s| {
            s.undetected_rate = (s.injected > 0).then(|| s.undetected as f64 / s.injected as f64);
            s
        })
        .collect()
}

/// Summarises the outcomes concluded in `[since, until)`, per technique and detector,
/// comparing each detector's p90 with the period of the same length before.
pub fn summarize(entries: &[Entry], since: SystemTime, until: SystemTime) -> Vec<TechniqueSummary> {
    let length = until.duration_since(since).unwrap_or_default();
    let before = since.checked_sub(length).unwrap_or(SystemTime::UNIX_EPOCH);
    let mut names: Vec<&str> = entries
        .iter()
        .filter(|e| e.concluded_at >= since && e.concluded_at < until)
        .map(|e| e.experiment.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let of = |from: SystemTime, to: SystemTime| -> Vec<&Entry> {
                entries
                    .iter()
                    .filter(|e| e.experiment == name && e.concluded_at >= from && e.concluded_at < to)
                    .collect()
            };
            let now = of(since, until);
            let earlier = of(before, since);
            let mut outcomes = BTreeMap::new();
            for e in &now {
                *outcomes.entry(e.outcome.as_str()).or_insert(0) += 1;
            }
            let weeks = week_starts(since, until)
                .into_iter()
                .map(|starts| {
                    let ends = starts + Duration::from_secs(WEEK);
                    let mut week = Week {
                        starts: rfc3339(starts),
                        runs: 0,
                        outcomes: BTreeMap::new(),
                        detectors: BTreeMap::new(),
                    };
                    for e in now.iter().filter(|e| e.concluded_at >= starts && e.concluded_at < ends) {
                        week.runs += 1;
                        *week.outcomes.entry(e.outcome.as_str()).or_insert(0) += 1;
                        for d in seen_by(e) {
                            let rate = week
                                .detectors
                                .entry(d.detector.clone())
                                .or_insert(WeekRate { watched: 0, detected: 0 });
                            rate.watched += 1;
                            rate.detected += usize::from(d.detected);
                        }
                    }
                    week
                })
                .collect();
            let mut detectors: Vec<String> = now
                .iter()
                .flat_map(|e| &e.detections)
                .map(|d| d.detector.clone())
                .filter(|d| d != REMEDIATION)
                .collect();
            detectors.sort();
            detectors.dedup();
            let detectors = detectors
                .into_iter()
                .map(|detector| {
                    let runs: Vec<&Detection> = now
                        .iter()
                        .filter(|e| e.injected())
                        .flat_map(|e| &e.detections)
                        .filter(|d| d.detector == detector)
                        .collect();
                    let could_not_see = runs.iter().filter(|d| d.could_not_see && !d.detected).count();
                    let mut times: Vec<f64> = runs.iter().filter(|d| d.detected).filter_map(|d| d.seconds).collect();
                    times.sort_by(f64::total_cmp);
                    DetectorSummary {
                        watched: runs.len() - could_not_see,
                        detected: runs.iter().filter(|d| d.detected).count(),
                        could_not_see,
                        p50: quantile(&times, 0.5),
                        p90: quantile(&times, 0.9),
                        max: times.last().copied(),
                        previous_p90: p90_of(&earlier, &detector),
                        detector,
                    }
                })
                .collect();
            TechniqueSummary {
                experiment: name.to_string(),
                runs: now.len(),
                outcome_rates: outcomes.iter().map(|(o, n)| (*o, *n as f64 / now.len() as f64)).collect(),
                outcomes,
                scheduled_skips: now.iter().filter(|e| e.quiet).count(),
                detectors,
                weeks,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn experiments_are_counted_per_account_and_region_without_scheduled_skips() {
        let entry = |id: &str, account: &str, region: &str, outcome: &str, quiet: bool| {
            let mut v = json!({"schema": "chaoslingr.outcome/v1", "experiment_id": id, "account": account,
                "region": region, "concluded_at": "2026-11-30T10:00:00Z", "outcome": outcome, "quiet": quiet});
            if outcome != "aborted" {
                v["injected_at"] = json!("2026-11-30T09:50:00Z");
            }
            Entry::from_json(&v).unwrap()
        };
        let entries = [
            entry("cs-1", "111111111111", "eu-west-1", "undetected", false),
            entry("cs-2", "111111111111", "eu-west-1", "detected", false),
            entry("cs-3", "222222222222", "us-east-1", "aborted", false),
            entry("cs-4", "222222222222", "us-east-1", "aborted", true),
        ];
        let scopes = by_scope(&entries);
        assert_eq!(scopes.len(), 2);
        assert_eq!((scopes[0].account.as_deref(), scopes[0].runs, scopes[0].undetected), (Some("111111111111"), 2, 1));
        assert_eq!(scopes[0].undetected_rate, Some(0.5));
        assert_eq!((scopes[1].runs, scopes[1].injected, scopes[1].undetected_rate), (1, 0, None));
        assert_eq!(scopes[1].outcomes.get("aborted"), Some(&1));
    }

    fn at(day: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000 + day * 86_400)
    }

    fn outcome(id: &str, experiment: Option<&str>, day: u64, outcome: &str, detections: Value) -> Entry {
        let mut v = json!({
            "schema": "chaoslingr.outcome/v1",
            "experiment_id": id,
            "security_group_id": "sg-1",
            "protocol": "tcp", "from_port": 40000, "to_port": 40002,
            "concluded_at": crate::time::rfc3339_millis(at(day)),
            "outcome": outcome,
            "detections": detections,
        });
        if let Some(e) = experiment {
            v["experiment"] = json!(e);
        }
        Entry::from_json(&v).unwrap()
    }

    fn det(detector: &str, seconds: Option<f64>) -> Value {
        json!({"detector": detector, "detected": seconds.is_some(), "seconds_to_detect": seconds, "evidence": ""})
    }

    #[test]
    fn outcomes_are_read_old_and_new_and_refused_when_not_outcomes() {
        let e = outcome("cs-1", None, 0, "detected", json!([det("alarm:a", Some(3.0))]));
        assert_eq!((e.experiment.as_str(), e.target_id.as_deref()), ("port-change", Some("sg-1")));
        assert_eq!(e.change.as_deref(), Some("tcp 40000-40002"));
        assert!(e.injected());
        assert!(Entry::from_json(&json!({"schema": "chaoslingr.started/v1"})).unwrap_err().contains("not a"));
        let bad = json!({"schema": "chaoslingr.outcome/v1", "experiment_id": "cs-2", "concluded_at": "noon", "outcome": "detected"});
        assert!(Entry::from_json(&bad).unwrap_err().contains("not RFC 3339"));
        for s in [-1.0, 1e20] {
            let e = outcome("cs-3", None, 0, "detected", json!([det("alarm:a", Some(1.0))]));
            assert_eq!(e.detections[0].seconds, Some(1.0));
            let mut v = json!({"schema": "chaoslingr.outcome/v1", "experiment_id": "cs-3", "outcome": "detected",
                "concluded_at": "2026-12-02T00:00:00Z", "detections": [det("alarm:a", Some(1.0))]});
            v["detections"][0]["seconds_to_detect"] = json!(s);
            assert!(Entry::from_json(&v).unwrap_err().contains("out of range"), "{s}");
        }
    }

    #[test]
    fn each_detector_gets_its_rate_its_times_and_its_trend() {
        // The period before: the alarm at 10s each time.
        let mut entries: Vec<Entry> = (0..5)
            .map(|i| {
                outcome(&format!("cs-old-{i}"), Some("port-change"), i, "detected", json!([det("alarm:a", Some(10.0))]))
            })
            .collect();
        // This period: the alarm slower (20s .. 60s), Config missing twice, one aborted run.
        for (i, secs) in [20.0, 30.0, 40.0, 50.0, 60.0].into_iter().enumerate() {
            let config = if i < 2 { det("config:c", None) } else { det("config:c", Some(100.0 + i as f64)) };
            entries.push(outcome(
                &format!("cs-{i}"),
                Some("port-change"),
                10 + i as u64,
                "detected",
                json!([det("alarm:a", Some(secs)), config, det("remediation", None)]),
            ));
        }
        entries.push(outcome("cs-aborted", Some("port-change"), 12, "aborted", json!([])));
        entries.push(outcome("cs-acl", Some("nacl-entry"), 12, "undetected", json!([det("alarm:n", None)])));

        let summary = summarize(&entries, at(10), at(20));
        assert_eq!(summary.iter().map(|t| t.experiment.as_str()).collect::<Vec<_>>(), ["nacl-entry", "port-change"]);
        let pc = &summary[1];
        assert_eq!(pc.runs, 6);
        assert_eq!((pc.outcomes["detected"], pc.outcomes["aborted"]), (5, 1));
        assert_eq!((pc.outcome_rates["detected"], pc.outcome_rates["aborted"]), (5.0 / 6.0, 1.0 / 6.0));
        let alarm = pc.detectors.iter().find(|d| d.detector == "alarm:a").unwrap();
        assert_eq!((alarm.watched, alarm.detected), (5, 5));
        assert_eq!((alarm.p50, alarm.p90, alarm.max), (Some(40.0), Some(60.0), Some(60.0)));
        assert_eq!(alarm.trend(), "slower than the previous period");
        assert_eq!(alarm.verdict(), "alarm:a  detected 5/5 (100%)  p90 1m  slower than the previous period");
        let config = pc.detectors.iter().find(|d| d.detector == "config:c").unwrap();
        assert_eq!((config.watched, config.detected), (5, 3));
        assert_eq!(config.trend(), "no previous period to compare");
        assert!(pc.detectors.iter().all(|d| d.detector != "remediation"));
        let acl = &summary[0].detectors[0];
        assert_eq!((acl.watched, acl.detected, acl.rate()), (1, 0, Some(0.0)));
    }

    #[test]
    fn a_detector_that_could_not_see_is_not_a_miss() {
        let blind =
            json!([{"detector": "config:c", "detected": false, "seconds_to_detect": null, "could_not_see": true}]);
        let entries = vec![outcome("cs-1", Some("nacl-entry"), 1, "failed", blind)];
        let s = summarize(&entries, at(0), at(7));
        let c = &s[0].detectors[0];
        assert_eq!((c.watched, c.detected, c.could_not_see), (0, 0, 0), "a failed run made no change to see");
        let blind = json!([
            {"detector": "config:c", "detected": false, "could_not_see": true},
            {"detector": "alarm:a", "detected": true, "seconds_to_detect": 2.0}
        ]);
        let s = summarize(&[outcome("cs-2", Some("nacl-entry"), 1, "detected", blind)], at(0), at(7));
        let c = s[0].detectors.iter().find(|d| d.detector == "config:c").unwrap();
        assert_eq!((c.watched, c.could_not_see, c.rate()), (0, 1, None));
        assert!(c.verdict().contains("could not see 1"), "{}", c.verdict());
    }

    #[test]
    fn weeks_start_on_monday_and_cover_the_period_without_holes() {
        let t = |s: &str| parse_rfc3339(s).unwrap();
        // 2026-12-02 is a Wednesday.
        assert_eq!(week_start(t("2026-12-02T15:00:00Z")), t("2026-11-30T00:00:00Z"));
        assert_eq!(week_start(t("2026-11-30T00:00:00Z")), t("2026-11-30T00:00:00Z"));
        assert_eq!(week_start(t("2026-11-29T23:59:59Z")), t("2026-11-23T00:00:00Z"));
        let weeks = week_starts(t("2026-11-02T15:00:00Z"), t("2026-12-02T15:00:00Z"));
        assert_eq!(weeks.first(), Some(&t("2026-11-02T00:00:00Z")));
        assert_eq!(weeks.last(), Some(&t("2026-11-30T00:00:00Z")));
        assert_eq!(weeks.len(), 5);
        assert_eq!(week_starts(t("2026-11-30T00:00:00Z"), t("2026-12-07T00:00:00Z")).len(), 1);
    }

    #[test]
    fn each_week_counts_its_outcomes_and_its_detections() {
        // Days 0.. are from 2026-11-18 (a Wednesday, see `at`).
        let mut entries = vec![
            outcome(
                "cs-1",
                Some("port-change"),
                0,
                "detected",
                json!([det("alarm:a", Some(5.0)), det("config:c", None)]),
            ),
            outcome("cs-2", Some("port-change"), 1, "undetected", json!([det("alarm:a", None), det("config:c", None)])),
            outcome(
                "cs-3",
                Some("port-change"),
                8,
                "detected",
                json!([det("alarm:a", Some(5.0)), det("config:c", Some(9.0))]),
            ),
        ];
        let mut quiet = outcome("cs-4", Some("port-change"), 9, "aborted", json!([]));
        quiet.quiet = true;
        entries.push(quiet);
        let s = summarize(&entries, at(0), at(14));
        let pc = &s[0];
        assert_eq!((pc.runs, pc.scheduled_skips), (4, 1));
        let weeks: Vec<(usize, Option<&WeekRate>)> =
            pc.weeks.iter().map(|w| (w.runs, w.detectors.get("config:c"))).collect();
        assert_eq!(weeks.len(), 3, "{:?}", pc.weeks);
        assert_eq!(weeks[0], (2, Some(&WeekRate { watched: 2, detected: 0 })));
        assert_eq!(weeks[1], (2, Some(&WeekRate { watched: 1, detected: 1 })));
        assert_eq!(weeks[2], (0, None));
        assert_eq!(pc.weeks[1].outcomes.get("aborted"), Some(&1));
        assert_eq!(pc.weeks[0].detectors["alarm:a"].rate(), Some(0.5));
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        assert_eq!((quantile(&v, 0.5), quantile(&v, 0.9), quantile(&v, 1.0)), (Some(5.0), Some(9.0), Some(10.0)));
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[7.0], 0.9), Some(7.0));
    }
}
