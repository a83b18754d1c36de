//! From the JSON ChaoSlingr publishes on SNS to a Slack incoming-webhook payload.
//!
//! The payload is Block Kit inside one attachment, because only attachments get the
//! coloured bar that lets a reader tell a held hypothesis (green) from a security gap
//! (red) at a glance. The top-level `text` is the plain fallback that notifications and
//! screen readers show.
//!
//! Everything taken from the message is escaped for mrkdwn (`&`, `<`, `>`), so a reason or
//! an evidence string can never ping `<!channel>` or smuggle a link, and cut to Slack's
//! length limits, because Slack refuses the whole message (`invalid_blocks`) when one text
//! is too long.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::NotifyError;

/// The schema of outcome messages (one per concluded experiment).
pub const OUTCOME_SCHEMA: &str = "chaoslingr.outcome/v1";
/// The schema of start messages (sent when an unattended experiment opens its port).
pub const STARTED_SCHEMA: &str = "chaoslingr.started/v1";

/// Slack's limit on a header block's text.
pub const HEADER_MAX: usize = 150;
/// Slack's limit on a section block's text (and on a context element's text).
pub const SECTION_TEXT_MAX: usize = 3000;
/// Slack's limit on each of a section block's fields.
pub const FIELD_MAX: usize = 2000;
/// The length kept of the top-level fallback `text`.
pub const FALLBACK_TEXT_MAX: usize = 3000;

/// Attachment colours.
pub mod colour {
    /// The hypothesis held: detected, remediated or prevented.
    pub const HELD: &str = "#2EB67D";
    /// Undetected: a security gap.
    pub const GAP: &str = "#E01E5A";
    /// The experiment failed (an error, not a finding).
    pub const FAILED: &str = "#E8912D";
    /// The injected rule was not reverted, whatever the outcome: someone must act.
    pub const NOT_REVERTED: &str = "#8B0000";
    /// Aborted before anything was opened, or an outcome this version does not know.
    pub const NEUTRAL: &str = "#9E9E9E";
    /// An experiment started.
    pub const STARTED: &str = "#1D9BD1";
}

/// Length budgets for single values inside a composed text.
const NAME_MAX: usize = 200;
const EVIDENCE_MAX: usize = 300;
const FALLBACK_REASON_MAX: usize = 200;

/// A message from the product, as published on SNS.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// `chaoslingr.outcome/v1`
    Outcome(OutcomeNotice),
    /// `chaoslingr.started/v1`
    Started(StartNotice),
}

/// An outcome message (`chaoslingr.outcome/v1`). Everything but the id and the outcome
/// may be missing or null: an aborted run chose no group and opened nothing.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OutcomeNotice {
    pub experiment_id: String,
    pub experiment: Option<String>,
    pub account: Option<String>,
    pub region: Option<String>,
    /// `security-group`, `network-acl`; absent from messages of producers before
    /// techniques, which always targeted a security group.
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub change_id: Option<String>,
    pub security_group_id: Option<String>,
    pub security_group_rule_id: Option<String>,
    pub protocol: Option<String>,
    pub from_port: Option<u16>,
    pub to_port: Option<u16>,
    pub cidr: Option<String>,
    pub injected_at: Option<String>,
    pub concluded_at: Option<String>,
    /// `prevented`, `detected`, `remediated`, `undetected`, `aborted` or `failed`; kept as
    /// a string so an outcome added by a newer producer is still shown, in grey.
    pub outcome: String,
    pub reason: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub detections: Vec<DetectionNotice>,
    pub reverted: Option<bool>,
    pub dry_run: Option<bool>,
    /// A scheduled pre-flight abort: archived, never posted.
    #[serde(default)]
    pub quiet: Option<bool>,
}

/// One detector's result in an outcome message.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DetectionNotice {
    pub detector: String,
    pub detected: bool,
    pub seconds_to_detect: Option<f64>,
    pub evidence: Option<String>,
    /// The detector could not see this kind of change (absent from older producers).
    #[serde(default)]
    pub could_not_see: bool,
}

/// A start message (`chaoslingr.started/v1`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StartNotice {
    pub experiment_id: String,
    pub experiment: Option<String>,
    pub account: Option<String>,
    pub region: Option<String>,
    /// `security-group`, `network-acl`; absent from messages of producers before
    /// techniques, which always targeted a security group.
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub change_id: Option<String>,
    pub security_group_id: Option<String>,
    pub security_group_rule_id: Option<String>,
    pub protocol: Option<String>,
    pub from_port: Option<u16>,
    pub to_port: Option<u16>,
    pub cidr: Option<String>,
    pub injected_at: Option<String>,
    pub deadline: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub detectors: Vec<String>,
}

/// The ids a message gives for its target and change, whichever version produced it.
struct Ids<'a> {
    target_type: Option<&'a str>,
    target_id: Option<&'a str>,
    change_id: Option<&'a str>,
    security_group_id: Option<&'a str>,
    security_group_rule_id: Option<&'a str>,
}

/// What a message says about the target and the change.
trait Target {
    fn ids(&self) -> Ids<'_>;

    /// The target's id: `target_id`, or `security_group_id` from older producers.
    fn target(&self) -> Option<&str> {
        let ids = self.ids();
        ids.target_id.or(ids.security_group_id)
    }

    /// The change's id: `change_id`, or `security_group_rule_id`.
    fn change(&self) -> Option<&str> {
        let ids = self.ids();
        ids.change_id.or(ids.security_group_rule_id)
    }

    /// The label of the target field.
    fn target_label(&self) -> &'static str {
        match self.ids().target_type {
            None | Some("security-group") => "Security group",
            Some("network-acl") => "Network ACL",
            Some(_) => "Target",
        }
    }
}

macro_rules! target_of {
    ($notice:ty) => {
        impl Target for $notice {
            fn ids(&self) -> Ids<'_> {
                Ids {
                    target_type: self.target_type.as_deref(),
                    target_id: self.target_id.as_deref(),
                    change_id: self.change_id.as_deref(),
                    security_group_id: self.security_group_id.as_deref(),
                    security_group_rule_id: self.security_group_rule_id.as_deref(),
                }
            }
        }
    };
}

target_of!(OutcomeNotice);
target_of!(StartNotice);

fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// Reads an SNS message body. Errors (never retryable) say what was wrong with it.
pub fn parse_notice(sns_message: &str) -> Result<Notice, NotifyError> {
    let unreadable = |problem: String| NotifyError::UnreadableMessage { problem };
    let value: Value = serde_json::from_str(sns_message).map_err(|e| unreadable(format!("not JSON ({e})")))?;
    let schema = match value.get("schema") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(unreadable("`schema` is not a string".into())),
        None => return Err(unreadable("no `schema` field".into())),
    };
    match schema.as_str() {
        OUTCOME_SCHEMA => serde_json::from_value(value)
            .map(Notice::Outcome)
            .map_err(|e| unreadable(format!("does not match {OUTCOME_SCHEMA} ({e})"))),
        STARTED_SCHEMA => serde_json::from_value(value)
            .map(Notice::Started)
            .map_err(|e| unreadable(format!("does not match {STARTED_SCHEMA} ({e})"))),
        other => Err(unreadable(format!(
            "unknown schema `{}`; this notifier reads {OUTCOME_SCHEMA} and {STARTED_SCHEMA}",
            truncate_plain(other, 100)
        ))),
    }
}

/// [`parse_notice`] then [`Notice::slack_payload`].
pub fn slack_payload(sns_message: &str) -> Result<Value, NotifyError> {
    parse_notice(sns_message).map(|notice| notice.slack_payload())
}

impl Notice {
    /// The experiment the message is about (for logs).
    pub fn experiment_id(&self) -> &str {
        match self {
            Notice::Outcome(o) => &o.experiment_id,
            Notice::Started(s) => &s.experiment_id,
        }
    }

    /// Whether the message is not for people: a scheduled pre-flight abort, which the
    /// subscription's filter policy normally keeps from the notifier already.
    pub fn is_quiet(&self) -> bool {
        matches!(self, Notice::Outcome(o) if o.quiet == Some(true))
    }

    /// The schema the message declared.
    pub fn schema(&self) -> &'static str {
        match self {
            Notice::Outcome(_) => OUTCOME_SCHEMA,
            Notice::Started(_) => STARTED_SCHEMA,
        }
    }

    /// The incoming-webhook payload: `{"text": …, "attachments": [{"color": …, "blocks": […]}]}`.
    pub fn slack_payload(&self) -> Value {
        match self {
            Notice::Outcome(o) => outcome_payload(o),
            Notice::Started(s) => started_payload(s),
        }
    }
}

/// The outcomes, grouped by what a reader must take from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Held,
    Gap,
    NotRun,
    Failed,
    Unknown,
}

fn verdict(outcome: &str) -> Verdict {
    match outcome {
        "detected" | "remediated" | "prevented" => Verdict::Held,
        "undetected" => Verdict::Gap,
        "aborted" => Verdict::NotRun,
        "failed" => Verdict::Failed,
        _ => Verdict::Unknown,
    }
}

fn meaning(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Held => "hypothesis held",
        Verdict::Gap => "security gap: nothing noticed",
        Verdict::NotRun => "not run",
        Verdict::Failed => "failed",
        Verdict::Unknown => "unknown outcome",
    }
}

fn outcome_payload(o: &OutcomeNotice) -> Value {
    let verdict = verdict(&o.outcome);
    let not_reverted = o.reverted == Some(false);
    let dry_run = o.dry_run == Some(true);
    let label = outcome_label(&o.outcome);
    let ports = port_range(o.protocol.as_deref(), o.from_port, o.to_port);

    let colour = match verdict {
        _ if not_reverted => colour::NOT_REVERTED,
        Verdict::Held => colour::HELD,
        Verdict::Gap => colour::GAP,
        Verdict::Failed => colour::FAILED,
        Verdict::NotRun | Verdict::Unknown => colour::NEUTRAL,
    };

    let mut header = format!("{label} — {}", meaning(verdict));
    if dry_run {
        header.push_str(" (dry run)");
    }
    if not_reverted {
        header.push_str(" — NOT REVERTED");
    }

    let mut blocks = vec![header_block(&header)];
    if not_reverted {
        // The one case where a reader must act now: a port stays open to the world.
        let mut alert = String::from(":rotating_light: *NOT REVERTED*: ");
        match (o.change(), o.target()) {
            (Some(rule), Some(group)) => {
                alert.push_str(&format!("{} on {}", code(rule, NAME_MAX), code(group, NAME_MAX)))
            }
            (None, Some(group)) => alert.push_str(&format!("the injected change on {}", code(group, NAME_MAX))),
            _ => alert.push_str("the injected change"),
        }
        alert.push_str(" may still allow ");
        alert.push_str(&ports.as_deref().map(|p| fit(p, NAME_MAX)).unwrap_or_else(|| "the opened ports".into()));
        if let Some(cidr) = &o.cidr {
            alert.push_str(&format!(" from {}", code(cidr, NAME_MAX)));
        }
        alert.push_str(&format!(
            ". Revert it now: {}",
            code(&format!("chaoslingr revert {}", o.experiment_id), NAME_MAX)
        ));
        blocks.push(section(&alert));
    }

    let reverted_field = match o.reverted {
        Some(true) => "yes".to_string(),
        Some(false) => ":rotating_light: *NO*".to_string(),
        None => "unknown".to_string(),
    };
    let group = group_value(o.target(), o.change());
    blocks.push(json!({
        "type": "section",
        "fields": [
            mrkdwn(&field(o.target_label(), &group)),
            mrkdwn(&field("Opened", &opened_value(ports.as_deref(), o.cidr.as_deref()))),
            mrkdwn(&field("Account / region", &account_region(o.account.as_deref(), o.region.as_deref()))),
            mrkdwn(&field("Reverted", &reverted_field)),
        ]
    }));

    let skip_detectors = o.detections.is_empty() && matches!(verdict, Verdict::NotRun | Verdict::Failed);
    if !skip_detectors {
        blocks.push(section(&detections_text(&o.detections)));
    }

    if let Some(reason) = o.reason.as_deref().filter(|r| !r.trim().is_empty()) {
        const LABEL: &str = "*Why*\n";
        blocks.push(section(&format!("{LABEL}{}", fit(reason, SECTION_TEXT_MAX - LABEL.chars().count()))));
    }

    let mut context = vec![experiment_context(&o.experiment_id, o.experiment.as_deref(), dry_run)];
    let times: Vec<String> = [("injected", &o.injected_at), ("concluded", &o.concluded_at)]
        .into_iter()
        .filter_map(|(what, at)| at.as_deref().map(|at| format!("{what} {}", fit(at, NAME_MAX))))
        .collect();
    if !times.is_empty() {
        context.push(mrkdwn(&times.join(" · ")));
    }
    blocks.push(json!({ "type": "context", "elements": context }));

    let mut text = format!("ChaoSlingr: {label}");
    match (o.target(), &ports) {
        (Some(group), Some(ports)) => {
            text.push_str(&format!(" on {} ({})", fit(group, NAME_MAX), fit(ports, NAME_MAX)))
        }
        (Some(group), None) => text.push_str(&format!(" on {}", fit(group, NAME_MAX))),
        (None, _) => {
            if let Some(reason) = o.reason.as_deref().filter(|r| !r.trim().is_empty()) {
                text.push_str(&format!(": {}", fit(reason, FALLBACK_REASON_MAX)));
            }
        }
    }
    if dry_run {
        text.push_str(" (dry run)");
    }
    if not_reverted {
        text.push_str(" — NOT REVERTED");
    }

    payload(&text, colour, blocks)
}

fn started_payload(s: &StartNotice) -> Value {
    let ports = port_range(s.protocol.as_deref(), s.from_port, s.to_port);
    let mut blocks = vec![header_block("STARTED — port opened, watching the detectors")];
    let mut fields = vec![
        mrkdwn(&field(s.target_label(), &group_value(s.target(), s.change()))),
        mrkdwn(&field("Opened", &opened_value(ports.as_deref(), s.cidr.as_deref()))),
        mrkdwn(&field("Account / region", &account_region(s.account.as_deref(), s.region.as_deref()))),
    ];
    if let Some(deadline) = &s.deadline {
        fields.push(mrkdwn(&field("Watching until", &fit(deadline, NAME_MAX))));
    }
    blocks.push(json!({ "type": "section", "fields": fields }));

    let mut watching = String::from("*Watching*");
    if s.detectors.is_empty() {
        watching.push_str("\n_no detectors configured_");
    }
    let shown = push_lines(&mut watching, s.detectors.iter().map(|d| format!("• {}", code(d, NAME_MAX))));
    if shown == s.detectors.len() {
        watching.push_str("\n• remediation (always watched)");
    }
    blocks.push(section(&watching));

    let mut context = vec![experiment_context(&s.experiment_id, s.experiment.as_deref(), false)];
    if let Some(at) = &s.injected_at {
        context.push(mrkdwn(&format!("injected {}", fit(at, NAME_MAX))));
    }
    blocks.push(json!({ "type": "context", "elements": context }));

    let mut text = String::from("ChaoSlingr: STARTED");
    if let Some(group) = s.target() {
        text.push_str(&format!(" on {}", fit(group, NAME_MAX)));
    }
    if let Some(ports) = &ports {
        text.push_str(&format!(" ({})", fit(ports, NAME_MAX)));
    }
    if let Some(deadline) = &s.deadline {
        text.push_str(&format!(", watching until {}", fit(deadline, NAME_MAX)));
    }
    payload(&text, colour::STARTED, blocks)
}

fn payload(text: &str, colour: &str, blocks: Vec<Value>) -> Value {
    json!({
        "text": clamp(text, FALLBACK_TEXT_MAX),
        "attachments": [{ "color": colour, "blocks": blocks }],
    })
}

/// The detector lines: `✓ `config:rule` 3.7 s — evidence` or `✗ `alarm:fw` not detected`.
fn detections_text(detections: &[DetectionNotice]) -> String {
    let configured: Vec<&DetectionNotice> = detections.iter().filter(|d| d.detector != "remediation").collect();
    let noticed = configured.iter().filter(|d| d.detected).count();
    let mut text = if configured.is_empty() {
        String::from("*Detectors*")
    } else {
        format!("*Detectors* ({noticed} of {} noticed)", configured.len())
    };
    if detections.is_empty() {
        text.push_str("\n_no detector results_");
    }
    let lines = detections.iter().map(|d| {
        let mut line = format!("{} {}", if d.detected { "✓" } else { "✗" }, code(&d.detector, NAME_MAX));
        match (d.detected, d.seconds_to_detect) {
            (true, Some(s)) => line.push_str(&format!(" {}", seconds(s))),
            (true, None) => line.push_str(" detected (time unknown)"),
            (false, _) if d.could_not_see => line.push_str(" could not see this change (not a gap of the control)"),
            (false, _) => line.push_str(" not detected"),
        }
        if let Some(evidence) = d.evidence.as_deref().filter(|e| !e.trim().is_empty()) {
            // Plain, not italic: evidence such as NON_COMPLIANT has underscores that would end the italics.
            line.push_str(&format!(" — {}", fit(evidence.trim(), EVIDENCE_MAX)));
        }
        line
    });
    push_lines(&mut text, lines);
    text
}

/// Appends `\n`-separated lines while the section stays within Slack's limit, then a
/// note of how many did not fit. Returns how many lines were shown.
fn push_lines(text: &mut String, lines: impl ExactSizeIterator<Item = String>) -> usize {
    // Room for "\n… and 9999 more".
    const MORE_NOTE: usize = 20;
    let total = lines.len();
    let mut used = text.chars().count();
    let mut shown = 0;
    for line in lines {
        let len = 1 + line.chars().count();
        if used + len > SECTION_TEXT_MAX - MORE_NOTE {
            break;
        }
        text.push('\n');
        text.push_str(&line);
        used += len;
        shown += 1;
    }
    if shown < total {
        text.push_str(&format!("\n… and {} more", total - shown));
    }
    shown
}

fn seconds(s: f64) -> String {
    format!("{s:.1} s")
}

/// The outcome in capitals for the header, from a known word or, for an unknown one,
/// only its letters, digits, `-` and `_` (headers are plain text; nothing to escape then).
fn outcome_label(outcome: &str) -> String {
    let cleaned: String =
        outcome.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').take(40).collect();
    if cleaned.is_empty() {
        "UNKNOWN".into()
    } else {
        cleaned.to_ascii_uppercase()
    }
}

/// `udp 14603-14605`, `tcp 20000`, or None when no port was chosen.
fn port_range(protocol: Option<&str>, from: Option<u16>, to: Option<u16>) -> Option<String> {
    let ports = match (from, to) {
        (Some(f), Some(t)) if f != t => format!("{f}-{t}"),
        (Some(p), _) | (None, Some(p)) => p.to_string(),
        (None, None) => return None,
    };
    Some(match protocol {
        Some(p) => format!("{p} {ports}"),
        None => format!("port {ports}"),
    })
}

fn group_value(group: Option<&str>, rule: Option<&str>) -> String {
    match (group, rule) {
        (Some(g), Some(r)) => format!("{}\n{}", code(g, NAME_MAX), code(r, NAME_MAX)),
        (Some(g), None) => code(g, NAME_MAX),
        (None, _) => "_none chosen_".into(),
    }
}

fn opened_value(ports: Option<&str>, cidr: Option<&str>) -> String {
    match (ports, cidr) {
        (Some(p), Some(c)) => format!("{} from {}", fit(p, NAME_MAX), code(c, NAME_MAX)),
        (Some(p), None) => fit(p, NAME_MAX),
        (None, _) => "_nothing_".into(),
    }
}

fn account_region(account: Option<&str>, region: Option<&str>) -> String {
    format!("{} / {}", fit(account.unwrap_or("?"), NAME_MAX), fit(region.unwrap_or("?"), NAME_MAX))
}

fn experiment_context(id: &str, experiment: Option<&str>, dry_run: bool) -> Value {
    let mut text = format!("Experiment {}", code(id, NAME_MAX));
    if let Some(kind) = experiment {
        text.push_str(&format!(" ({})", fit(kind, NAME_MAX)));
    }
    if dry_run {
        text.push_str(" · dry run");
    }
    mrkdwn(&text)
}

fn field(label: &str, value: &str) -> String {
    clamp(&format!("*{label}*\n{value}"), FIELD_MAX)
}

fn header_block(text: &str) -> Value {
    let text = truncate_plain(text, HEADER_MAX);
    json!({ "type": "header", "text": { "type": "plain_text", "text": text, "emoji": true } })
}

fn section(text: &str) -> Value {
    json!({ "type": "section", "text": mrkdwn(text) })
}

fn mrkdwn(text: &str) -> Value {
    json!({ "type": "mrkdwn", "text": clamp(text, SECTION_TEXT_MAX) })
}

/// `raw` as an inline code span, escaped and cut to `max` characters in all.
fn code(raw: &str, max: usize) -> String {
    // A backtick inside would end the span early.
    format!("`{}`", fit(&raw.replace('`', "'"), max.saturating_sub(2)))
}

/// Escapes `&`, `<` and `>` as Slack's mrkdwn requires.
pub fn escape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        push_escaped(&mut out, c);
    }
    out
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '&' => out.push_str("&amp;"),
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        c => out.push(c),
    }
}

fn escaped_width(c: char) -> usize {
    match c {
        '&' => 5,
        '<' | '>' => 4,
        _ => 1,
    }
}

/// `raw` escaped and cut to at most `max` characters (an ellipsis marks the cut), never
/// splitting an escape sequence.
fn fit(raw: &str, max: usize) -> String {
    if raw.chars().map(escaped_width).sum::<usize>() <= max {
        return escape(raw);
    }
    let budget = max.saturating_sub(1);
    let mut out = String::new();
    let mut used = 0;
    for c in raw.chars() {
        let width = escaped_width(c);
        if used + width > budget {
            break;
        }
        push_escaped(&mut out, c);
        used += width;
    }
    out.push('…');
    out
}

/// Plain text cut to `max` characters, with an ellipsis when cut.
fn truncate_plain(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The last guard on a composed mrkdwn text. The pieces are budgeted so this never cuts;
/// if it ever did, it backs off to before a partial escape sequence.
fn clamp(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    if let Some(amp) = out.rfind('&') {
        if !out[amp..].contains(';') {
            out.truncate(amp);
        }
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests;
