//! `report --format html`: one self-contained page (inline CSS and SVG, no script, no
//! fetch), readable offline, printable and attachable to an audit. Charts:
//!
//! - `detection-rate`: each detector's detection rate, week by week;
//! - `time-to-detect`: every detection's time, per detector, with its p50 and p90;
//! - `outcomes-per-week`: how the experiments ended, stacked by week;
//!
//! then the gaps table. Every drawn datum has class `mark` and a `<title>` (its tooltip),
//! and every chart has a `<title>` and `data-chart` naming it, so tests and assistive
//! technology can find them.

use std::fmt::Write as _;
use std::time::Duration;

use chaoslingr_domain::history::quantile;
use chaoslingr_domain::time::{human, rfc3339};

use super::{seconds, Report, CSV_SCHEMA, REPORT_SCHEMA};

/// Colours for series, distinguishable in print and for common colour blindness.
const PALETTE: [&str; 8] = ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#000000"];

/// Each outcome's colour: held hypotheses green/blue, the gap red, the rest grey/orange.
fn outcome_colour(outcome: &str) -> &'static str {
    match outcome {
        "prevented" => "#1b7837",
        "detected" => "#5aae61",
        "remediated" => "#2166ac",
        "undetected" => "#d73027",
        "failed" => "#f46d43",
        _ => "#969696",
    }
}

const OUTCOMES: [&str; 6] = ["prevented", "detected", "remediated", "undetected", "failed", "aborted"];

const WIDTH: f64 = 960.0;

/// Escapes text for HTML and SVG content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn pct(r: f64) -> String {
    format!("{:.0}%", r * 100.0)
}

/// A round upper bound for an axis: 1, 2 or 5 times a power of ten, at least `v`.
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * p).find(|c| *c >= v).unwrap_or(10.0 * p)
}

/// A round upper bound for a time axis, in seconds: 5 s, 10 s, 15 s, 30 s, 1, 2, 3, 5,
/// 10, 15, 20, 30 minutes, 1, 2, 3, 6, 12, 24 hours, then whole days.
fn time_ceiling(v: f64) -> f64 {
    const STEPS: [f64; 18] = [
        5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0, 900.0, 1200.0, 1800.0, 3600.0, 7200.0, 10800.0,
        21600.0, 43200.0, 86400.0,
    ];
    STEPS.into_iter().find(|s| *s >= v).unwrap_or_else(|| (v / 86400.0).ceil() * 86400.0)
}

/// The week label of an RFC 3339 week start: `2026-11-30` → `Nov 30`.
fn week_label(starts: &str) -> String {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let month: usize = starts.get(5..7).and_then(|m| m.parse().ok()).unwrap_or(1);
    let day: u32 = starts.get(8..10).and_then(|d| d.parse().ok()).unwrap_or(1);
    format!("{} {day}", MONTHS[(month.clamp(1, 12)) - 1])
}

/// One series: a technique's detector.
struct Series {
    label: String,
    colour: &'static str,
}

fn series(report: &Report) -> Vec<(usize, usize, Series)> {
    let mut out = Vec::new();
    for (t, tech) in report.summary.iter().enumerate() {
        for (d, det) in tech.detectors.iter().enumerate() {
            let colour = PALETTE[out.len() % PALETTE.len()];
            let label = if report.summary.len() > 1 {
                format!("{} · {}", tech.experiment, det.detector)
            } else {
                det.detector.clone()
            };
            out.push((t, d, Series { label, colour }));
        }
    }
    out
}

fn open_chart(out: &mut String, name: &str, title: &str, height: f64) {
    let _ = write!(
        out,
        r#"<svg data-chart="{name}" role="img" aria-labelledby="{name}-title" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" xmlns="http://www.w3.org/2000/svg"><title id="{name}-title">{}</title>"#,
        esc(title)
    );
}

/// A legend of `items`, in two columns below a plot starting at `y`.
fn legend(out: &mut String, x: f64, y: f64, items: &[(String, &str)]) {
    let column = (WIDTH - x) / 2.0;
    for (i, (label, colour)) in items.iter().enumerate() {
        let yy = y + (i / 2) as f64 * 18.0;
        let x = x + column * (i % 2) as f64;
        let _ = write!(
            out,
            r#"<rect x="{x}" y="{}" width="12" height="12" fill="{colour}"/><text x="{}" y="{}" class="legend">{}</text>"#,
            yy - 10.0,
            x + 18.0,
            yy,
            esc(label)
        );
    }
}

/// `steps + 1` horizontal gridlines over a plot `(left, top, width, height)`, from the
/// bottom up, each labelled on the left with `label(step)`.
fn gridlines(
    out: &mut String,
    (left, top, plot_w, plot_h): (f64, f64, f64, f64),
    steps: usize,
    label: impl Fn(usize) -> String,
) {
    for step in 0..=steps {
        let y = top + plot_h - plot_h * step as f64 / steps as f64;
        let _ = write!(
            out,
            r#"<line x1="{left}" x2="{}" y1="{y}" y2="{y}" class="grid"/><text x="{}" y="{}" class="axis" text-anchor="end">{}</text>"#,
            left + plot_w,
            left - 6.0,
            y + 4.0,
            esc(&label(step))
        );
    }
}

/// Detection rate per detector per week: a line per detector over 0–100 %.
fn detection_rate(report: &Report) -> String {
    let all = series(report);
    let weeks = report.summary.first().map(|t| t.weeks.len()).unwrap_or(0);
    let (left, top, plot_w, plot_h) = (56.0, 20.0, 860.0, 220.0);
    let legend_y = top + plot_h + 48.0;
    let height = legend_y + 18.0 * all.len().div_ceil(2) as f64 + 4.0;
    let mut out = String::new();
    open_chart(&mut out, "detection-rate", "Detection rate per detector, by week", height);
    gridlines(&mut out, (left, top, plot_w, plot_h), 4, |step| format!("{}%", step * 25));
    let x_of = |w: usize| left + if weeks <= 1 { plot_w / 2.0 } else { plot_w * w as f64 / (weeks - 1) as f64 };
    if let Some(tech) = report.summary.first() {
        let every = weeks.div_ceil(8).max(1);
        for (w, week) in tech.weeks.iter().enumerate().filter(|(w, _)| w % every == 0) {
            let _ = write!(
                out,
                r#"<text x="{}" y="{}" class="axis" text-anchor="middle">{}</text>"#,
                x_of(w),
                top + plot_h + 18.0,
                esc(&week_label(&week.starts))
            );
        }
    }
    let mut drawn = 0;
    for (t, d, s) in &all {
        let tech = &report.summary[*t];
        let det = &tech.detectors[*d];
        let points: Vec<(f64, f64, String)> = tech
            .weeks
            .iter()
            .enumerate()
            .filter_map(|(w, week)| {
                let r = week.detectors.get(&det.detector)?;
                let rate = r.rate()?;
                let tip = format!(
                    "{}, week of {}: detected {}/{} ({})",
                    s.label,
                    week.starts.get(..10).unwrap_or(&week.starts),
                    r.detected,
                    r.watched,
                    pct(rate)
                );
                Some((x_of(w), top + plot_h - plot_h * rate, tip))
            })
            .collect();
        if points.len() > 1 {
            let path: Vec<String> = points.iter().map(|(x, y, _)| format!("{x:.1},{y:.1}")).collect();
            let _ = write!(
                out,
                r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>"#,
                path.join(" "),
                s.colour
            );
        }
        for (x, y, tip) in &points {
            drawn += 1;
            let _ = write!(
                out,
                r#"<circle class="mark" cx="{x:.1}" cy="{y:.1}" r="4.5" fill="{}"><title>{}</title></circle>"#,
                s.colour,
                esc(tip)
            );
        }
    }
    if drawn == 0 {
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" class="empty" text-anchor="middle">No change was made that a detector could see in this period.</text>"#,
            left + plot_w / 2.0,
            top + plot_h / 2.0
        );
    }
    let items: Vec<(String, &str)> = all.iter().map(|(_, _, s)| (s.label.clone(), s.colour)).collect();
    legend(&mut out, left, legend_y, &items);
    out.push_str("</svg>");
    out
}

/// Every detection's time-to-detect, one row per detector, with its p50 and p90.
fn time_to_detect(report: &Report) -> String {
    let all = series(report);
    let row_h = 46.0;
    let (left, top, plot_w) = (56.0, 8.0, 860.0);
    let rows = all.len().max(1) as f64;
    let height = top + rows * row_h + 44.0;
    // Every detection time, per series.
    let times: Vec<Vec<f64>> = all
        .iter()
        .map(|(t, d, _)| {
            let tech = &report.summary[*t];
            let detector = &tech.detectors[*d].detector;
            let mut v: Vec<f64> = report
                .entries
                .iter()
                .filter(|e| e.experiment == tech.experiment)
                .flat_map(|e| &e.detections)
                .filter(|x| &x.detector == detector && x.detected)
                .filter_map(|x| x.seconds)
                .collect();
            v.sort_by(f64::total_cmp);
            v
        })
        .collect();
    let max = time_ceiling(times.iter().flatten().copied().fold(0.0, f64::max));
    let x_of = |s: f64| left + plot_w * (s / max).clamp(0.0, 1.0);
    let mut out = String::new();
    open_chart(&mut out, "time-to-detect", "Time to detect, every detection, per detector (bars: p50 and p90)", height);
    let axis_y = top + rows * row_h + 6.0;
    for step in 0..=5 {
        let s = max * step as f64 / 5.0;
        let x = x_of(s);
        let _ = write!(
            out,
            r#"<line x1="{x}" x2="{x}" y1="{top}" y2="{axis_y}" class="grid"/><text x="{x}" y="{}" class="axis" text-anchor="middle">{}</text>"#,
            axis_y + 16.0,
            esc(&human(Duration::from_secs_f64(s)))
        );
    }
    let mut drawn = 0;
    for (i, ((_, _, s), v)) in all.iter().zip(&times).enumerate() {
        let mid = top + row_h * i as f64 + 30.0;
        let _ = write!(out, r#"<text x="{left}" y="{}" class="label">{}</text>"#, mid - 16.0, esc(&s.label));
        for (j, secs) in v.iter().enumerate() {
            drawn += 1;
            // A fixed jitter spreads equal times so each stays visible.
            let jitter = ((j * 7919) % 13) as f64 - 6.0;
            let _ = write!(
                out,
                r#"<circle class="mark" cx="{:.1}" cy="{:.1}" r="3.5" fill="{}" fill-opacity="0.6"><title>{}: {}</title></circle>"#,
                x_of(*secs),
                mid + jitter,
                s.colour,
                esc(&s.label),
                esc(&human(Duration::from_secs_f64(*secs)))
            );
        }
        for (q, name) in [(0.5, "p50"), (0.9, "p90")] {
            if let Some(at) = quantile(v, q) {
                let x = x_of(at);
                let _ = write!(
                    out,
                    r#"<line class="quantile" x1="{x:.1}" x2="{x:.1}" y1="{}" y2="{}" stroke="{}" stroke-width="{}"><title>{} {name}: {}</title></line>"#,
                    mid - 12.0,
                    mid + 12.0,
                    s.colour,
                    if name == "p90" { 3 } else { 2 },
                    esc(&s.label),
                    esc(&human(Duration::from_secs_f64(at)))
                );
            }
        }
    }
    if drawn == 0 {
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" class="empty" text-anchor="middle">Nothing was detected in this period.</text>"#,
            left + plot_w / 2.0,
            top + row_h / 2.0
        );
    }
    out.push_str("</svg>");
    out
}

/// How the experiments ended, week by week, stacked.
fn outcomes_per_week(report: &Report) -> String {
    let weeks = report.summary.first().map(|t| t.weeks.len()).unwrap_or(0);
    // Per week, per outcome, over every technique.
    let counts: Vec<Vec<usize>> = (0..weeks)
        .map(|w| {
            OUTCOMES
                .iter()
                .map(|o| report.summary.iter().filter_map(|t| t.weeks.get(w)?.outcomes.get(o)).sum())
                .collect()
        })
        .collect();
    let tallest = counts.iter().map(|c| c.iter().sum::<usize>()).max().unwrap_or(0);
    // Five gridlines on whole numbers.
    let max = nice_ceiling(tallest as f64).max(5.0);
    let (left, top, plot_w, plot_h) = (56.0, 20.0, 860.0, 220.0);
    let legend_y = top + plot_h + 48.0;
    let height = legend_y + 18.0 * OUTCOMES.len().div_ceil(2) as f64 + 4.0;
    let mut out = String::new();
    open_chart(&mut out, "outcomes-per-week", "Outcomes per week, every technique", height);
    gridlines(&mut out, (left, top, plot_w, plot_h), 5, |step| (max * step as f64 / 5.0).to_string());
    let slot = if weeks == 0 { plot_w } else { plot_w / weeks as f64 };
    let bar = (slot * 0.7).min(60.0);
    let every = weeks.div_ceil(8).max(1);
    for (w, c) in counts.iter().enumerate() {
        let x = left + slot * w as f64 + (slot - bar) / 2.0;
        let starts = report.summary.first().map(|t| t.weeks[w].starts.clone()).unwrap_or_default();
        if w % every == 0 {
            let _ = write!(
                out,
                r#"<text x="{:.1}" y="{}" class="axis" text-anchor="middle">{}</text>"#,
                x + bar / 2.0,
                top + plot_h + 18.0,
                esc(&week_label(&starts))
            );
        }
        let mut y = top + plot_h;
        for (o, n) in OUTCOMES.iter().zip(c).filter(|(_, n)| **n > 0) {
            let h = plot_h * *n as f64 / max;
            y -= h;
            let _ = write!(
                out,
                r#"<rect class="mark" x="{x:.1}" y="{y:.1}" width="{bar:.1}" height="{h:.1}" fill="{}"><title>week of {}: {n} {o}</title></rect>"#,
                outcome_colour(o),
                esc(starts.get(..10).unwrap_or(&starts))
            );
        }
    }
    if tallest == 0 {
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" class="empty" text-anchor="middle">No experiment concluded in this period.</text>"#,
            left + plot_w / 2.0,
            top + plot_h / 2.0
        );
    }
    let items: Vec<(String, &str)> = OUTCOMES.iter().map(|o| (o.to_string(), outcome_colour(o))).collect();
    legend(&mut out, left, legend_y, &items);
    out.push_str("</svg>");
    out
}

const STYLE: &str = r#"
body{font:14px/1.45 -apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1a1a1a;margin:24px auto;max-width:1000px;padding:0 16px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#555;margin:0}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eee;vertical-align:top}
th{background:#f6f6f6}td.num{text-align:right;font-variant-numeric:tabular-nums}
.verdicts{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px;background:#f8f8f8;padding:8px 12px;white-space:pre-wrap;border-left:3px solid #0072b2}
svg{max-width:100%;height:auto;display:block}
svg .grid{stroke:#e5e5e5;stroke-width:1}svg .axis{font-size:11px;fill:#555}svg .label,svg .legend{font-size:12px;fill:#1a1a1a}
svg .empty{font-size:13px;fill:#777}
.bad{color:#b2182b;font-weight:600}.good{color:#1b7837}.warn{color:#8a6d00}
footer{margin-top:32px;color:#777;font-size:12px}
@media print{body{margin:0}h2{break-after:avoid}svg{break-inside:avoid}}
"#;

/// The page.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let title = format!(
        "ChaoSlingr detection report, {} to {}",
        rfc3339(report.since).get(..10).unwrap_or_default(),
        rfc3339(report.until).get(..10).unwrap_or_default()
    );
    let _ = write!(
        out,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><meta name="generator" content="chaoslingr report ({REPORT_SCHEMA})"><title>{}</title><style>{STYLE}</style></head><body>"#,
        esc(&title)
    );
    let _ = write!(
        out,
        r#"<header><h1>{}</h1><p class="meta">{} experiment(s) concluded from {} to {}, read from {}.</p></header>"#,
        esc(&title),
        report.entries.len(),
        esc(&rfc3339(report.since)),
        esc(&rfc3339(report.until)),
        esc(&report.source)
    );
    for w in &report.warnings {
        let _ = write!(out, r#"<p class="warn">Warning: {}</p>"#, esc(w));
    }

    out.push_str("<h2>Verdicts</h2>");
    let verdicts = report.verdicts();
    if verdicts.is_empty() {
        out.push_str("<p>No detector watched an experiment in this period.</p>");
    } else {
        let _ = write!(out, r#"<div class="verdicts">{}</div>"#, esc(&verdicts.join("\n")));
    }
    out.push_str(r#"<h2>Per technique and detector</h2><table data-table="summary"><thead><tr><th>Technique</th><th>Runs</th><th>Outcomes</th><th>Detector</th><th>Detected</th><th>Rate</th><th>p50</th><th>p90</th><th>Max</th><th>Trend</th></tr></thead><tbody>"#);
    for t in &report.summary {
        let counts: Vec<String> = t
            .outcomes
            .iter()
            .map(|(o, n)| format!("{n} {o} ({})", pct(t.outcome_rates.get(o).copied().unwrap_or(0.0))))
            .collect();
        let skips = if t.scheduled_skips > 0 {
            format!("; {} aborted in a scheduled pre-flight", t.scheduled_skips)
        } else {
            String::new()
        };
        let span = t.detectors.len().max(1);
        let _ = write!(
            out,
            r#"<tr><td rowspan="{span}">{}</td><td rowspan="{span}" class="num">{}</td><td rowspan="{span}">{}{}</td>"#,
            esc(&t.experiment),
            t.runs,
            esc(&counts.join(", ")),
            esc(&skips)
        );
        if t.detectors.is_empty() {
            out.push_str(r#"<td colspan="7">no detector configured</td></tr>"#);
        }
        for (i, d) in t.detectors.iter().enumerate() {
            if i > 0 {
                out.push_str("<tr>");
            }
            let class = match d.rate() {
                Some(r) if r < 1.0 => "bad",
                Some(_) => "good",
                None => "",
            };
            let _ = write!(
                out,
                r#"<td>{}</td><td class="num">{}/{}{}</td><td class="num {class}">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td>{}</td></tr>"#,
                esc(&d.detector),
                d.detected,
                d.watched,
                if d.could_not_see > 0 { format!(" (could not see {})", d.could_not_see) } else { String::new() },
                d.rate().map(pct).unwrap_or_else(|| "-".into()),
                seconds(d.p50),
                seconds(d.p90),
                seconds(d.max),
                esc(d.trend())
            );
        }
    }
    out.push_str("</tbody></table>");

    out.push_str("<h2>Detection rate by week</h2>");
    out.push_str(&detection_rate(report));
    out.push_str("<h2>Time to detect</h2>");
    out.push_str(&time_to_detect(report));
    out.push_str("<h2>Outcomes per week</h2>");
    out.push_str(&outcomes_per_week(report));

    let scopes = chaoslingr_domain::history::by_scope(report.entries.iter().copied());
    if scopes.len() > 1 {
        out.push_str(r#"<h2>By account and region</h2><table data-table="scopes"><thead><tr><th>Account</th><th>Region</th><th>Runs</th><th>Injected</th><th>Undetected</th><th>Undetected rate</th></tr></thead><tbody>"#);
        for s in &scopes {
            let _ = write!(
                out,
                r#"<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class="{}">{}</td><td>{}</td></tr>"#,
                esc(s.account.as_deref().unwrap_or("-")),
                esc(s.region.as_deref().unwrap_or("-")),
                s.runs,
                s.injected,
                if s.undetected > 0 { "bad" } else { "" },
                s.undetected,
                s.undetected_rate.map(|r| format!("{:.0}%", r * 100.0)).unwrap_or_else(|| "-".into()),
            );
        }
        out.push_str("</tbody></table>");
    }
    let _ = write!(out, r#"<h2>Gaps ({})</h2>"#, report.gaps.len());
    out.push_str(r#"<table data-table="gaps"><thead><tr><th>Concluded</th><th>Experiment</th><th>Technique</th><th>Account</th><th>Region</th><th>Target</th><th>Change</th><th>Outcome</th><th>Missed by</th></tr></thead><tbody>"#);
    for g in &report.gaps {
        let _ = write!(
            out,
            r#"<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class="{}">{}</td><td>{}</td></tr>"#,
            esc(&g.concluded_at),
            esc(&g.experiment_id),
            esc(&g.experiment),
            esc(g.account.as_deref().unwrap_or("-")),
            esc(g.region.as_deref().unwrap_or("-")),
            esc(g.target_id.as_deref().unwrap_or("-")),
            esc(g.change.as_deref().unwrap_or("-")),
            if g.outcome == "undetected" { "bad" } else { "" },
            esc(g.outcome),
            esc(&g.missed_by.join(", "))
        );
    }
    if report.gaps.is_empty() {
        out.push_str(
            r#"<tr><td colspan="9">No gaps: every change was caught by every detector that could see it.</td></tr>"#,
        );
    }
    out.push_str("</tbody></table>");
    let _ = write!(
        out,
        r#"<footer>Generated by <code>chaoslingr report --format html</code> at {}. The same data: <code>--format json</code> ({REPORT_SCHEMA}) and <code>--format csv</code> ({CSV_SCHEMA}, one row per experiment).</footer></body></html>"#,
        esc(&rfc3339(report.until))
    );
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chaoslingr_domain::history::Entry;
    use chaoslingr_domain::time::{parse_rfc3339, rfc3339_millis};
    use serde_json::json;
    use std::time::SystemTime;

    fn entry(id: &str, at: SystemTime, outcome: &str, detections: serde_json::Value) -> Entry {
        Entry::from_json(&json!({
            "schema": "chaoslingr.outcome/v1", "experiment_id": id, "experiment": "port-change",
            "account": "123456789012", "region": "eu-west-1", "target_id": "sg-1<script>",
            "protocol": "tcp", "from_port": 40000, "to_port": 40000,
            "concluded_at": rfc3339_millis(at), "outcome": outcome, "detections": detections,
        }))
        .unwrap()
    }

    #[test]
    fn the_page_has_every_chart_with_marks_and_escapes_what_it_shows() {
        let until = parse_rfc3339("2026-12-02T12:00:00Z").unwrap();
        let since = until - Duration::from_secs(21 * 86_400);
        let day = |d: u64| since + Duration::from_secs(d * 86_400 + 3600);
        let entries = vec![
            entry(
                "cs-1",
                day(1),
                "detected",
                json!([{"detector": "alarm:a", "detected": true, "seconds_to_detect": 42.0}]),
            ),
            entry("cs-2", day(9), "undetected", json!([{"detector": "alarm:a", "detected": false}])),
            entry("cs-3", day(15), "aborted", json!([])),
        ];
        let report = Report::new(&entries, since, until, "files <a>".into());
        let page = render(&report);
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(!page.contains("<script"), "no script, not even an escaped target's");
        assert!(page.contains("sg-1&lt;script&gt;") && page.contains("files &lt;a&gt;"));
        for chart in ["detection-rate", "time-to-detect", "outcomes-per-week"] {
            let start = page.find(&format!(r#"data-chart="{chart}""#)).unwrap_or_else(|| panic!("no {chart}"));
            let end = start + page[start..].find("</svg>").unwrap();
            assert!(page[start..end].contains(r#"class="mark""#), "{chart} drew nothing");
        }
        // Two weeks with a rate (100 %, 0 %), one detection, three weeks' bars.
        let rate = &page[page.find(r#"data-chart="detection-rate""#).unwrap()..];
        let rate = &rate[..rate.find("</svg>").unwrap()];
        assert_eq!(rate.matches(r#"class="mark""#).count(), 2, "{rate}");
        assert!(rate.contains("detected 1/1 (100%)") && rate.contains("detected 0/1 (0%)"));
        assert!(page.contains("<title>alarm:a: 42s</title>"));
        assert!(page.contains(r#"data-table="gaps""#) && page.contains("cs-2"));
        assert!(
            !page.contains("http://")
                || page.matches("http://").count() == page.matches("xmlns=\"http://www.w3.org/2000/svg\"").count()
        );
    }

    #[test]
    fn an_empty_period_says_so_instead_of_drawing_nothing() {
        let until = parse_rfc3339("2026-12-02T12:00:00Z").unwrap();
        let report = Report::new(&[], until - Duration::from_secs(7 * 86_400), until, "files".into());
        let page = render(&report);
        assert!(page.contains("No experiment concluded in this period."));
        assert!(page.contains("No gaps"));
    }

    #[test]
    fn axes_end_on_round_numbers() {
        assert_eq!(
            [0.0, 0.4, 1.0, 3.0, 7.0, 42.0, 120.0, 901.0].map(nice_ceiling),
            [1.0, 0.5, 1.0, 5.0, 10.0, 50.0, 200.0, 1000.0]
        );
        assert_eq!(week_label("2026-11-30T00:00:00Z"), "Nov 30");
        assert_eq!(
            [0.0, 4.0, 42.0, 552.0, 3601.0, 90000.0].map(time_ceiling),
            [5.0, 5.0, 60.0, 600.0, 7200.0, 172800.0]
        );
    }
}
