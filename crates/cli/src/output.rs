//! Human output: the live progress line, the final summary, tables.

use std::time::SystemTime;

use chaoslingr_domain::detector::REMEDIATION;
use chaoslingr_domain::engine::{DryRunReport, Progress, RevertReport};
use chaoslingr_domain::time::{human, rfc3339};
use chaoslingr_domain::{Outcome, OutcomeReport};

fn clock(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, (s % 3600) / 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// `elapsed 0:42 / 15:00 | config:x waiting | alarm:fw ✓ 12.3s | remediation watching`
pub fn progress_line(p: &Progress<'_>) -> String {
    let r = p.record;
    let elapsed = p.now.duration_since(r.injected_at).unwrap_or_default();
    let window = r.deadline.duration_since(r.injected_at).unwrap_or_default();
    let mut parts = vec![format!(
        "{} {} {} elapsed {} / {}",
        r.security_group_id,
        r.protocol,
        r.ports,
        clock(elapsed),
        clock(window)
    )];
    for (d, track) in &p.state.detectors {
        let state = match (&track.fired, &track.last_error) {
            (Some((at, _)), _) => {
                format!("✓ {:.1}s", at.duration_since(r.injected_at).unwrap_or_default().as_secs_f64())
            }
            (None, Some(_)) if track.successful_reads == 0 => "error".to_string(),
            _ => "waiting".to_string(),
        };
        parts.push(format!("{d} {state}"));
    }
    parts.push(match p.state.rule_gone_at {
        Some(_) => format!("{REMEDIATION} ✓"),
        None => format!("{REMEDIATION} watching"),
    });
    parts.join(" | ")
}

fn verdict_line(o: Outcome) -> &'static str {
    match o {
        Outcome::Detected => "HELD: your controls noticed the unauthorized port",
        Outcome::Remediated => "HELD: something removed the unauthorized port before the deadline",
        Outcome::Prevented => "HELD: a preventive control refused to open the port",
        Outcome::Undetected => {
            "DID NOT HOLD: an unauthorized port stayed open and nothing noticed. This is a security gap"
        }
        Outcome::Aborted => "NOT TESTED: the experiment did not run to its end",
        Outcome::Failed => "NOT TESTED: the experiment failed",
    }
}

pub fn print_summary(
    report: &OutcomeReport,
    revert: Option<&RevertReport>,
    record_failures: &[String],
    started: SystemTime,
) {
    let mut out = String::new();
    out.push_str(&format!(
        "\nChaoSlingr experiment {}: {}\n",
        report.experiment_id,
        report.outcome.as_str().to_uppercase()
    ));
    out.push_str(&format!("  experiment  {}\n", report.experiment));
    if let Some(g) = &report.target_id {
        let place: Vec<&str> = [report.account.as_deref(), report.region.as_deref()].into_iter().flatten().collect();
        out.push_str(&format!(
            "  target      {} {g}{}\n",
            report.target_type,
            if place.is_empty() { String::new() } else { format!(" ({})", place.join(", ")) }
        ));
    }
    if let (Some(p), Some(from), Some(to), Some(cidr)) =
        (&report.protocol, report.from_port, report.to_port, &report.cidr)
    {
        let ports = if from == to { from.to_string() } else { format!("{from}-{to}") };
        let rule = report.change_id.as_deref().map(|r| format!(" as {r}")).unwrap_or_default();
        let at = report.injected_at.as_deref().map(|t| format!(" at {t}")).unwrap_or_default();
        let verb = if report.injected_at.is_some() { "opened" } else { "planned" };
        out.push_str(&format!("  change      {verb} {p} {ports} from {cidr}{rule}{at}\n"));
    }
    if !report.detections.is_empty() {
        out.push_str("  detectors\n");
        let width = report.detections.iter().map(|d| d.detector.len()).max().unwrap_or(0);
        for d in &report.detections {
            let (mark, time) = match (d.detected, d.seconds_to_detect) {
                (true, Some(s)) => ("✓", format!("{s:.1}s")),
                (true, None) => ("✓", "-".to_string()),
                (false, _) if d.detector == REMEDIATION => ("·", "not removed".to_string()),
                (false, _) => ("✗", "not detected".to_string()),
            };
            out.push_str(&format!("    {mark} {:<width$}  {:<13} {}\n", d.detector, time, d.evidence));
        }
    }
    let reverted = match revert {
        Some(r) if r.reverted && r.already_gone => "yes (the rule was already gone)".to_string(),
        Some(r) if r.reverted => format!("yes, verified gone ({})", r.security_group_rule_id),
        Some(r) => format!(
            "NO: {}. Run `chaoslingr revert {}` now, or remove rule {} from {} by hand",
            r.error.as_deref().unwrap_or("unknown error"),
            report.experiment_id,
            r.security_group_rule_id,
            r.security_group_id
        ),
        None if report.reverted => "nothing to revert (no rule was created)".to_string(),
        None => format!("NO: run `chaoslingr revert {}` now", report.experiment_id),
    };
    out.push_str(&format!("  reverted    {reverted}\n"));
    out.push_str(&format!("  reason      {}\n", report.reason));
    let took = SystemTime::now().duration_since(started).unwrap_or_default();
    out.push_str(&format!("  took        {} (concluded {})\n", human(took), report.concluded_at));
    out.push_str(&format!("  hypothesis  {}\n", verdict_line(report.outcome)));
    let gaps = report.gaps();
    if !gaps.is_empty() && report.outcome.hypothesis_held() {
        out.push_str(&format!("  gaps        did not notice within the window: {}\n", gaps.join(", ")));
    }
    for f in record_failures {
        out.push_str(&format!("  warning     could not record the outcome: {f}\n"));
    }
    print!("{out}");
}

pub fn print_dry_run(report: &DryRunReport) {
    let p = &report.plan;
    println!("Dry run: nothing was changed.");
    println!("  would open  {} {} from {} on {}", p.protocol, p.ports, p.cidr, p.security_group_id);
    println!("  experiment  {}", p.id);
    println!("  window      {}", human(p.window));
    let detectors: Vec<String> = p.detectors.iter().map(ToString::to_string).collect();
    println!(
        "  detectors   {}",
        if detectors.is_empty() { "none (remediation only)".to_string() } else { detectors.join(", ") }
    );
    println!("  permission  {}", report.permission_check);
}

/// A plain left-aligned table.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{:<w$}  ", c, w = widths[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

pub fn timestamp(t: SystemTime) -> String {
    rfc3339(t)
}
