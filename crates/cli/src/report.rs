//! `report`: how well each control detects, from outcome objects.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chaoslingr_domain::history::{self, Entry};
use chaoslingr_domain::outcome::Outcome;
use chaoslingr_domain::time::rfc3339;
use serde_json::{json, Value};

use crate::output::table;
use crate::{exit, Failure};

/// The schema of `report --format json`.
pub const REPORT_SCHEMA: &str = "chaoslingr.report/v1";

/// The schema version column of `report --format csv`.
pub const CSV_SCHEMA: &str = "chaoslingr.report-row/v1";

/// What `report` was asked for.
pub struct ReportRequest {
    pub from: Vec<PathBuf>,
    pub since: Duration,
    pub experiment: Option<String>,
    pub format: String,
    pub out: Option<PathBuf>,
}

fn bad(message: String) -> Failure {
    Failure { status: exit::BAD_INPUT, error: anyhow::anyhow!(message) }
}

/// Every outcome object in `path`: a file of JSON lines or one JSON array, or a directory
/// of such files (`*.json`, `*.jsonl`, `*.ndjson`). Objects of other schemas (start
/// messages) are skipped.
fn read_outcomes(path: &Path, out: &mut Vec<Entry>) -> Result<(), Failure> {
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .filter(|p| p.extension().is_some_and(|e| e == "json" || e == "jsonl" || e == "ndjson"))
            .collect();
        files.sort();
        for f in files {
            read_outcomes(&f, out)?;
        }
        return Ok(());
    }
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?;
    let values: Vec<Value> = match serde_json::from_str::<Value>(&text) {
        Ok(Value::Array(items)) => items,
        Ok(v) => vec![v],
        Err(_) => text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(n, l)| {
                serde_json::from_str(l).map_err(|e| bad(format!("{}:{}: not JSON: {e}", path.display(), n + 1)))
            })
            .collect::<Result<_, _>>()?,
    };
    for v in values {
        if v.get("schema").and_then(Value::as_str) == Some(chaoslingr_domain::outcome::SCHEMA) {
            out.push(Entry::from_json(&v).map_err(|e| bad(format!("{}: {e}", path.display())))?);
        }
    }
    Ok(())
}

fn seconds(s: Option<f64>) -> String {
    s.map(|s| chaoslingr_domain::time::human(Duration::from_secs_f64(s))).unwrap_or_else(|| "-".into())
}

/// The experiments of the period that ended `undetected`, and every configured detector
/// that missed a change it could see.
fn gaps(entries: &[&Entry]) -> Vec<Value> {
    entries
        .iter()
        .filter(|e| e.outcome == Outcome::Undetected || e.detections.iter().any(|d| is_miss(e, d)))
        .map(|e| {
            json!({
                "experiment_id": e.experiment_id,
                "experiment": e.experiment,
                "account": e.account,
                "region": e.region,
                "target_id": e.target_id,
                "change": e.change,
                "outcome": e.outcome.as_str(),
                "missed_by": e.detections.iter().filter(|d| is_miss(e, d)).map(|d| d.detector.clone()).collect::<Vec<_>>(),
            })
        })
        .collect()
}

fn is_miss(e: &Entry, d: &history::Detection) -> bool {
    e.injected() && !d.detected && !d.could_not_see && d.detector != chaoslingr_domain::detector::REMEDIATION
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub fn report(req: &ReportRequest) -> Result<u8, Failure> {
    let mut entries = Vec::new();
    for path in &req.from {
        read_outcomes(path, &mut entries)?;
    }
    if let Some(name) = &req.experiment {
        chaoslingr_techniques::by_name(name).map_err(bad)?;
        entries.retain(|e| &e.experiment == name);
    }
    let until = SystemTime::now();
    let since = until.checked_sub(req.since).unwrap_or(SystemTime::UNIX_EPOCH);
    let summary = history::summarize(&entries, since, until);
    let in_period: Vec<&Entry> = entries.iter().filter(|e| e.concluded_at >= since && e.concluded_at < until).collect();
    let gaps = gaps(&in_period);

    let text = match req.format.as_str() {
        "json" => {
            let v = json!({
                "schema": REPORT_SCHEMA,
                "since": rfc3339(since),
                "until": rfc3339(until),
                "experiments": in_period.len(),
                "techniques": summary,
                "verdicts": summary.iter().flat_map(|t| t.detectors.iter().map(|d| format!("{}  {}", t.experiment, d.verdict()))).collect::<Vec<_>>(),
                "gaps": gaps,
            });
            serde_json::to_string_pretty(&v).expect("serializable") + "\n"
        }
        "csv" => {
            let mut out = String::from(
                "schema,experiment_id,experiment,account,region,target_id,change,concluded_at,outcome,detected_by,missed_by,could_not_see\n",
            );
            for e in &in_period {
                let names = |keep: &dyn Fn(&history::Detection) -> bool| {
                    e.detections.iter().filter(|d| keep(d)).map(|d| d.detector.as_str()).collect::<Vec<_>>().join(" ")
                };
                let row = [
                    CSV_SCHEMA.to_string(),
                    e.experiment_id.clone(),
                    e.experiment.clone(),
                    e.account.clone().unwrap_or_default(),
                    e.region.clone().unwrap_or_default(),
                    e.target_id.clone().unwrap_or_default(),
                    e.change.clone().unwrap_or_default(),
                    rfc3339(e.concluded_at),
                    e.outcome.as_str().to_string(),
                    names(&|d| d.detected),
                    names(&|d| is_miss(e, d)),
                    names(&|d| d.could_not_see),
                ];
                out.push_str(&row.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(","));
                out.push('\n');
            }
            out
        }
        "table" => {
            let mut out = format!(
                "ChaoSlingr report, {} to {}: {} experiment(s)\n",
                rfc3339(since),
                rfc3339(until),
                in_period.len()
            );
            for t in &summary {
                let counts: Vec<String> = t.outcomes.iter().map(|(o, n)| format!("{n} {o}")).collect();
                out.push_str(&format!("\n{}: {} run(s): {}\n", t.experiment, t.runs, counts.join(", ")));
                let rows: Vec<Vec<String>> = t
                    .detectors
                    .iter()
                    .map(|d| {
                        vec![
                            d.detector.clone(),
                            format!("{}/{}", d.detected, d.watched),
                            d.rate().map(|r| format!("{:.0}%", r * 100.0)).unwrap_or_else(|| "-".into()),
                            seconds(d.p50),
                            seconds(d.p90),
                            seconds(d.max),
                            d.trend().to_string(),
                        ]
                    })
                    .collect();
                if !rows.is_empty() {
                    out.push_str(&table(&["DETECTOR", "DETECTED", "RATE", "P50", "P90", "MAX", "TREND"], &rows));
                }
            }
            if !gaps.is_empty() {
                out.push_str("\nGaps:\n");
                for g in &gaps {
                    out.push_str(&format!(
                        "  {} {} {} on {} ({}, {}): {}{}\n",
                        g["experiment_id"].as_str().unwrap_or_default(),
                        g["experiment"].as_str().unwrap_or_default(),
                        g["change"].as_str().unwrap_or("-"),
                        g["target_id"].as_str().unwrap_or("-"),
                        g["account"].as_str().unwrap_or("-"),
                        g["region"].as_str().unwrap_or("-"),
                        g["outcome"].as_str().unwrap_or_default(),
                        g["missed_by"]
                            .as_array()
                            .filter(|m| !m.is_empty())
                            .map(|m| {
                                let names: Vec<&str> = m.iter().filter_map(Value::as_str).collect();
                                format!(", missed by {}", names.join(", "))
                            })
                            .unwrap_or_default(),
                    ));
                }
            }
            out
        }
        other => return Err(bad(format!("--format `{other}`: expected table, json or csv"))),
    };
    match &req.out {
        Some(path) => {
            std::fs::write(path, text).map_err(|e| bad(format!("cannot write {}: {e}", path.display())))?;
            println!("{}", path.display());
        }
        None => print!("{text}"),
    }
    Ok(exit::OK)
}
