//! `report`: how well each control detects, over time, from the outcome objects (files,
//! or the S3 archive the module keeps), or, without an archive, from the CloudWatch
//! metrics, saying what those cannot show.

mod html;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chaoslingr_archive::{Archive, Location};
use chaoslingr_domain::history::{self, Entry, TechniqueSummary};
use chaoslingr_domain::outcome::Outcome;
use chaoslingr_domain::time::{human, rfc3339};
use serde::Serialize;
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
    /// `s3://BUCKET/PREFIX` of the archive (`--archive`, `CHAOSLINGR_ARCHIVE`).
    pub archive: Option<String>,
    pub since: Duration,
    pub experiment: Option<String>,
    pub format: String,
    pub out: Option<PathBuf>,
    /// The CloudWatch namespace, for the metrics fallback.
    pub namespace: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Table,
    Json,
    Csv,
    Html,
}

impl Format {
    fn parse(s: &str) -> Result<Format, Failure> {
        match s {
            "table" => Ok(Format::Table),
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            "html" => Ok(Format::Html),
            other => Err(bad(format!("--format `{other}`: expected table, json, csv or html"))),
        }
    }
}

fn bad(message: String) -> Failure {
    Failure { status: exit::BAD_INPUT, error: anyhow::anyhow!(message) }
}

fn failed(message: String) -> Failure {
    Failure { status: exit::FAILURE, error: anyhow::anyhow!(message) }
}

/// Every outcome object in `path`: a file of JSON lines or one JSON array, or a directory
/// (searched recursively, so a downloaded copy of the archive reads as it is) of such files
/// (`*.json`, `*.jsonl`, `*.ndjson`). Objects of other schemas (start messages) are skipped.
fn read_outcomes(path: &Path, out: &mut Vec<Entry>) -> Result<(), Failure> {
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir() || p.extension().is_some_and(|e| e == "json" || e == "jsonl" || e == "ndjson"))
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
    s.map(|s| human(Duration::from_secs_f64(s))).unwrap_or_else(|| "-".into())
}

/// An experiment of the period that ended `undetected`, or that a detector missed.
#[derive(Debug, Clone, Serialize)]
pub struct Gap {
    pub experiment_id: String,
    pub experiment: String,
    pub account: Option<String>,
    pub region: Option<String>,
    pub target_id: Option<String>,
    pub change: Option<String>,
    pub concluded_at: String,
    pub outcome: &'static str,
    pub missed_by: Vec<String>,
}

/// The experiments of the period that ended `undetected`, and every configured detector
/// that missed a change it could see.
fn gaps(entries: &[&Entry]) -> Vec<Gap> {
    entries
        .iter()
        .filter(|e| e.outcome == Outcome::Undetected || e.detections.iter().any(|d| is_miss(e, d)))
        .map(|e| Gap {
            experiment_id: e.experiment_id.clone(),
            experiment: e.experiment.clone(),
            account: e.account.clone(),
            region: e.region.clone(),
            target_id: e.target_id.clone(),
            change: e.change.clone(),
            concluded_at: rfc3339(e.concluded_at),
            outcome: e.outcome.as_str(),
            missed_by: e.detections.iter().filter(|d| is_miss(e, d)).map(|d| d.detector.clone()).collect(),
        })
        .collect()
}

fn is_miss(e: &Entry, d: &history::Detection) -> bool {
    e.injected() && !d.detected && !d.could_not_see && d.detector != chaoslingr_domain::detector::REMEDIATION
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Everything a report shows, from the outcome objects.
pub struct Report<'a> {
    pub since: SystemTime,
    pub until: SystemTime,
    /// Where the outcomes came from, for the reader.
    pub source: String,
    /// The experiments concluded in the period, oldest first.
    pub entries: Vec<&'a Entry>,
    pub summary: Vec<TechniqueSummary>,
    pub gaps: Vec<Gap>,
    /// What the reader should know about the data (unreadable objects).
    pub warnings: Vec<String>,
}

impl<'a> Report<'a> {
    /// The report of `[since, until)` over `entries` (which may reach back one period
    /// more, for the trend).
    pub fn new(entries: &'a [Entry], since: SystemTime, until: SystemTime, source: String) -> Report<'a> {
        let summary = history::summarize(entries, since, until);
        let mut in_period: Vec<&Entry> =
            entries.iter().filter(|e| e.concluded_at >= since && e.concluded_at < until).collect();
        in_period.sort_by(|a, b| a.concluded_at.cmp(&b.concluded_at).then(a.experiment_id.cmp(&b.experiment_id)));
        let gaps = gaps(&in_period);
        Report { since, until, source, entries: in_period, summary, gaps, warnings: Vec::new() }
    }

    /// `technique  detector  detected 18/20 (90%)  p90 4m12s  slower than the previous period`.
    pub fn verdicts(&self) -> Vec<String> {
        self.summary
            .iter()
            .flat_map(|t| t.detectors.iter().map(|d| format!("{}  {}", t.experiment, d.verdict())))
            .collect()
    }

    fn json(&self) -> String {
        let v = json!({
            "schema": REPORT_SCHEMA,
            "since": rfc3339(self.since),
            "until": rfc3339(self.until),
            "source": self.source,
            "experiments": self.entries.len(),
            "techniques": self.summary,
            "verdicts": self.verdicts(),
            "gaps": self.gaps,
            "scopes": history::by_scope(self.entries.iter().copied()),
            "warnings": self.warnings,
        });
        serde_json::to_string_pretty(&v).expect("serializable") + "\n"
    }

    fn csv(&self) -> String {
        let mut out = String::from(
            "schema,experiment_id,experiment,account,region,target_id,change,concluded_at,outcome,scheduled_skip,detected_by,missed_by,could_not_see\n",
        );
        for e in &self.entries {
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
                e.quiet.to_string(),
                names(&|d| d.detected),
                names(&|d| is_miss(e, d)),
                names(&|d| d.could_not_see),
            ];
            out.push_str(&row.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(","));
            out.push('\n');
        }
        out
    }

    fn table(&self) -> String {
        let mut out = format!(
            "ChaoSlingr report, {} to {}: {} experiment(s), from {}\n",
            rfc3339(self.since),
            rfc3339(self.until),
            self.entries.len(),
            self.source
        );
        for w in &self.warnings {
            out.push_str(&format!("warning: {w}\n"));
        }
        for t in &self.summary {
            let counts: Vec<String> = t
                .outcomes
                .iter()
                .map(|(o, n)| format!("{n} {o} ({:.0}%)", t.outcome_rates.get(o).copied().unwrap_or(0.0) * 100.0))
                .collect();
            let skips = if t.scheduled_skips > 0 {
                format!(
                    "; {} aborted in a scheduled pre-flight (kill switch, allowed hours, maximum active)",
                    t.scheduled_skips
                )
            } else {
                String::new()
            };
            out.push_str(&format!("\n{}: {} run(s): {}{skips}\n", t.experiment, t.runs, counts.join(", ")));
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
                out.push_str(&weekly_lines(t));
            }
        }
        let scopes = history::by_scope(self.entries.iter().copied());
        if scopes.len() > 1 {
            let rows: Vec<Vec<String>> = scopes
                .iter()
                .map(|s| {
                    vec![
                        s.account.clone().unwrap_or_else(|| "-".into()),
                        s.region.clone().unwrap_or_else(|| "-".into()),
                        s.runs.to_string(),
                        s.injected.to_string(),
                        s.undetected.to_string(),
                        s.undetected_rate.map(|r| format!("{:.0}%", r * 100.0)).unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect();
            out.push_str("\nBy account and region:\n");
            out.push_str(&table(&["ACCOUNT", "REGION", "RUNS", "INJECTED", "UNDETECTED", "UNDETECTED RATE"], &rows));
        }
        if !self.gaps.is_empty() {
            // The most recent ones; JSON, CSV and HTML list them all.
            let shown = self.gaps.len().min(TABLE_GAPS);
            out.push_str(&format!("\nGaps ({}", self.gaps.len()));
            if shown < self.gaps.len() {
                out.push_str(&format!(", the latest {shown}; --format csv or html lists them all"));
            }
            out.push_str("):\n");
            for g in &self.gaps[self.gaps.len() - shown..] {
                let missed = if g.missed_by.is_empty() {
                    String::new()
                } else {
                    format!(", missed by {}", g.missed_by.join(", "))
                };
                out.push_str(&format!(
                    "  {} {} {} on {} ({}, {}): {}{missed}\n",
                    g.experiment_id,
                    g.experiment,
                    g.change.as_deref().unwrap_or("-"),
                    g.target_id.as_deref().unwrap_or("-"),
                    g.account.as_deref().unwrap_or("-"),
                    g.region.as_deref().unwrap_or("-"),
                    g.outcome,
                ));
            }
        }
        out
    }
}

/// How many gaps the table lists.
const TABLE_GAPS: usize = 20;

/// Each detector's detection rate week by week, one line each:
/// `  by week: config:c  -  2/2  1/2  -` (weeks without a change it could see are `-`).
fn weekly_lines(t: &TechniqueSummary) -> String {
    if t.weeks.len() < 2 {
        return String::new();
    }
    let mut out = format!(
        "  by week from {}:\n",
        t.weeks.first().map(|w| w.starts.get(..10).unwrap_or(&w.starts)).unwrap_or_default()
    );
    let name_width = t.detectors.iter().map(|d| d.detector.chars().count()).max().unwrap_or(0);
    for d in &t.detectors {
        let cells: Vec<String> = t
            .weeks
            .iter()
            .map(|w| {
                let cell = w.detectors.get(&d.detector).map(|r| format!("{}/{}", r.detected, r.watched));
                format!("{:>7}", cell.unwrap_or("-".into()))
            })
            .collect();
        out.push_str(&format!("    {:<name_width$}{}\n", d.detector, cells.join("")));
    }
    out
}

/// Where `report` reads from: files given, else the archive, else the metrics.
enum Source {
    Files(Vec<PathBuf>),
    Archive(Location),
    Metrics,
}

async fn aws_config() -> Result<aws_config::SdkConfig, Failure> {
    let conf = chaoslingr_aws::load_config().await;
    if conf.region().is_none() {
        return Err(bad("no AWS region configured: set AWS_REGION or a region in your AWS profile".into()));
    }
    Ok(conf)
}

pub async fn report(req: &ReportRequest) -> Result<u8, Failure> {
    // Everything that can be wrong with the request is found before any AWS call.
    let format = Format::parse(&req.format)?;
    if let Some(name) = &req.experiment {
        chaoslingr_techniques::by_name(name).map_err(bad)?;
    }
    let source = match (&req.from[..], &req.archive) {
        ([], None) => Source::Metrics,
        ([], Some(a)) => Source::Archive(a.trim().parse().map_err(|e| bad(format!("--archive: {e}")))?),
        (paths, _) => Source::Files(paths.to_vec()),
    };
    let until = SystemTime::now();
    let since = until.checked_sub(req.since).unwrap_or(SystemTime::UNIX_EPOCH);
    // The trend compares with the period as long before this one.
    let before = since.checked_sub(req.since).unwrap_or(SystemTime::UNIX_EPOCH);

    let mut entries = Vec::new();
    let mut warnings = Vec::new();
    let described = match source {
        Source::Files(paths) => {
            for path in &paths {
                read_outcomes(path, &mut entries)?;
            }
            paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        }
        Source::Archive(location) => {
            let archive = Archive::new(&aws_config().await?, location.clone());
            let read = archive.read(before, until).await.map_err(|e| failed(format!("reading the archive: {e}")))?;
            for v in &read.outcomes {
                match Entry::from_json(v) {
                    Ok(e) => entries.push(e),
                    Err(why) => warnings.push(format!("skipped an archived object: {why}")),
                }
            }
            warnings.extend(read.unreadable);
            format!("the archive {location} ({} object(s) read)", read.listed)
        }
        Source::Metrics => {
            if matches!(format, Format::Csv | Format::Html) {
                return Err(bad(format!(
                    "--format {}: needs the outcome archive (--archive s3://BUCKET/PREFIX or CHAOSLINGR_ARCHIVE) or --from files; the CloudWatch metrics hold no per-experiment rows",
                    req.format
                )));
            }
            return metrics_report(req, format, since, until).await;
        }
    };
    if let Some(name) = &req.experiment {
        entries.retain(|e| &e.experiment == name);
    }
    let entries = once_each(entries);
    let mut report = Report::new(&entries, since, until, described);
    report.warnings = warnings;
    let text = match format {
        Format::Json => report.json(),
        Format::Csv => report.csv(),
        Format::Table => report.table(),
        Format::Html => html::render(&report),
    };
    emit(req, &text)
}

/// Each experiment once (the last copy read): SNS delivers at least once, and saved
/// messages may sit beside `run --json` output of the same run.
fn once_each(entries: Vec<Entry>) -> Vec<Entry> {
    let mut last = std::collections::HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        last.insert(e.experiment_id.clone(), i);
    }
    entries.into_iter().enumerate().filter(|(i, e)| last.get(&e.experiment_id) == Some(i)).map(|(_, e)| e).collect()
}

fn emit(req: &ReportRequest, text: &str) -> Result<u8, Failure> {
    match &req.out {
        Some(path) => {
            std::fs::write(path, text).map_err(|e| bad(format!("cannot write {}: {e}", path.display())))?;
            println!("{}", path.display());
        }
        None => print!("{text}"),
    }
    Ok(exit::OK)
}

/// What the metrics cannot show, said wherever a report comes from them.
pub const METRICS_CANNOT_SHOW: &str = "no outcome archive, so this report comes from the CloudWatch metrics, which cannot show each detector's detection rate (a miss is not a metric), the gaps, per-experiment rows, or time-to-detect percentiles where CloudWatch does not answer them; keep the outcome archive (Terraform archive_outcomes) and pass --archive s3://BUCKET/PREFIX";

async fn metrics_report(
    req: &ReportRequest,
    format: Format,
    since: SystemTime,
    until: SystemTime,
) -> Result<u8, Failure> {
    let conf = aws_config().await?;
    let names: Vec<&str> = match &req.experiment {
        Some(n) => vec![n.as_str()],
        None => chaoslingr_techniques::all().iter().map(|t| t.name).collect(),
    };
    let start = history::week_start(since);
    let techniques = chaoslingr_aws::metrics_history::metric_history(&conf, &req.namespace, &names, start, until)
        .await
        .map_err(|e| failed(format!("reading the CloudWatch metrics: {e}")))?;
    let region = conf.region().map(ToString::to_string).unwrap_or_default();
    let source = format!("the CloudWatch metrics (namespace {}, {region})", req.namespace);
    let text = match format {
        Format::Json => {
            let v = json!({
                "schema": REPORT_SCHEMA,
                "since": rfc3339(start),
                "until": rfc3339(until),
                "source": source,
                "cannot_show": METRICS_CANNOT_SHOW,
                "techniques": techniques.iter().map(|t| json!({
                    "experiment": t.experiment,
                    "runs": t.runs,
                    "outcomes": t.outcomes,
                    "weeks": t.weeks.iter().map(|(w, o)| json!({"starts": rfc3339(*w), "outcomes": o})).collect::<Vec<_>>(),
                    "detectors": t.detectors.iter().map(|d| json!({
                        "detector": d.detector, "detected": d.detected, "p50": d.p50, "p90": d.p90, "max": d.max,
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            });
            serde_json::to_string_pretty(&v).expect("serializable") + "\n"
        }
        _ => {
            let mut out = format!(
                "ChaoSlingr report, {} to {}, from {source}\nnote: {METRICS_CANNOT_SHOW}\n",
                rfc3339(start),
                rfc3339(until)
            );
            for t in techniques.iter().filter(|t| t.runs > 0 || !t.outcomes.is_empty()) {
                let counts: Vec<String> = t.outcomes.iter().map(|(o, n)| format!("{n} {o}")).collect();
                out.push_str(&format!("\n{}: {} run(s): {}\n", t.experiment, t.runs, counts.join(", ")));
                let rows: Vec<Vec<String>> = t
                    .detectors
                    .iter()
                    .map(|d| {
                        vec![d.detector.clone(), d.detected.to_string(), seconds(d.p50), seconds(d.p90), seconds(d.max)]
                    })
                    .collect();
                if !rows.is_empty() {
                    out.push_str(&table(&["DETECTOR", "DETECTED", "P50", "P90", "MAX"], &rows));
                }
                for (w, o) in &t.weeks {
                    let counts: Vec<String> = o.iter().map(|(o, n)| format!("{n} {o}")).collect();
                    out.push_str(&format!("  week of {}: {}\n", &rfc3339(*w)[..10], counts.join(", ")));
                }
            }
            out
        }
    };
    emit(req, &text)
}
