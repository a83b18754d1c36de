//! Property tests for what the notifier reads from SNS and writes to Slack.
//!
//! The SNS message is untrusted input: anything that can publish to the topic chooses it,
//! and its strings come from tags and detector names that others can set. Whatever it
//! holds, reading it must not panic, and a message that is read must render to a payload
//! Slack accepts (Block Kit refuses the whole message, `invalid_blocks`, when one text is
//! too long) in which no text can ping a channel or smuggle a link.

use chaoslingr_slack::message::{
    colour, escape, DetectionNotice, OutcomeNotice, StartNotice, FALLBACK_TEXT_MAX, FIELD_MAX, HEADER_MAX,
    OUTCOME_SCHEMA, SECTION_TEXT_MAX, STARTED_SCHEMA,
};
use chaoslingr_slack::{parse_notice, slack_payload, Notice, Webhook};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{json, Map, Value};

/// Slack's Block Kit limits that the renderer does not name as constants.
const MAX_BLOCKS: usize = 50;
const MAX_SECTION_FIELDS: usize = 10;
const MAX_CONTEXT_ELEMENTS: usize = 10;

// ---------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------

/// Characters Slack's mrkdwn acts on, and some that grow when escaped or encoded.
const MARKUP: &[char] = &['<', '>', '&', '`', '*', '_', '~', '!', '@', '#', '|', ':', ' ', '\n', 'a', 'é', '🦀'];

/// Any characters, control characters and every plane of unicode included. (Built from
/// `char`s rather than a regex: regex strategies are slow in debug builds.)
fn any_chars(len: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    vec(any::<char>(), len).prop_map(String::from_iter)
}

/// Strings a hostile or careless producer may send: empty, unicode, mrkdwn and escapes
/// (`<!channel>`, links, `&`, backticks), and huge ones.
fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any_chars(0..40),
        2 => vec(select(MARKUP), 0..80).prop_map(String::from_iter),
        1 => Just(String::new()),
        1 => Just("<!channel> <https://evil.example|click> &amp; `code` *bold*".to_string()),
        1 => (1usize..6000, select(vec!["&", "<", ">", "`", "é", "🦀", "a", " ", "\n", "&<>"]))
            .prop_map(|(n, s)| s.repeat(n)),
        1 => any_chars(200..600),
    ]
}

/// Short strings, for the many detections of a long list.
fn short_string() -> impl Strategy<Value = String> {
    prop_oneof![any_chars(0..12), vec(select(MARKUP), 0..12).prop_map(String::from_iter)]
}

fn optional_string() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(hostile_string())
}

/// Outcome words: the known ones, and whatever a newer (or hostile) producer may send.
fn outcome_word() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(vec!["prevented", "detected", "remediated", "undetected", "aborted", "failed"]).prop_map(String::from),
        1 => hostile_string(),
    ]
}

/// Times to detect: what the product sends (milliseconds as seconds) and any finite
/// number JSON can carry.
fn seconds() -> impl Strategy<Value = Option<f64>> {
    proptest::option::of(prop_oneof![
        3 => (0u64..100_000_000).prop_map(|ms| ms as f64 / 1000.0),
        1 => any::<f64>().prop_filter("JSON numbers are finite", |f| f.is_finite()),
    ])
}

fn detection_with(text: impl Strategy<Value = String> + Clone) -> impl Strategy<Value = DetectionNotice> {
    (
        prop_oneof![
            3 => (select(vec!["config:", "alarm:", "securityhub:"]), any::<u32>()).prop_map(|(k, n)| format!("{k}{n}")),
            1 => Just("remediation".to_string()),
            1 => text.clone(),
        ],
        any::<bool>(),
        seconds(),
        proptest::option::of(text),
    )
        .prop_map(|(detector, detected, seconds_to_detect, evidence)| DetectionNotice {
            could_not_see: !detected && detector.len() % 2 == 0,
            detector,
            detected,
            seconds_to_detect,
            evidence,
        })
}

/// A few detections with any strings, or a few hundred with short ones.
fn detections() -> impl Strategy<Value = Vec<DetectionNotice>> {
    prop_oneof![
        3 => vec(detection_with(hostile_string().boxed()), 0..6),
        1 => vec(detection_with(short_string().boxed()), 0..300),
    ]
}

/// Any outcome message the producer may send, every optional field present, null or
/// hostile, with up to a few hundred detections.
fn outcome_notice() -> impl Strategy<Value = OutcomeNotice> {
    let ids = (hostile_string(), optional_string(), optional_string(), optional_string());
    let place = (optional_string(), optional_string(), optional_string());
    let ports = (proptest::option::of(any::<u16>()), proptest::option::of(any::<u16>()), optional_string());
    let times = (optional_string(), optional_string());
    let detections = detections();
    let end = (
        outcome_word(),
        optional_string(),
        detections,
        proptest::option::of(any::<bool>()),
        proptest::option::of(any::<bool>()),
    );
    (ids, place, ports, times, end).prop_map(
        |(
            (experiment_id, experiment, account, region),
            (security_group_id, security_group_rule_id, protocol),
            (from_port, to_port, cidr),
            (injected_at, concluded_at),
            (outcome, reason, detections, reverted, dry_run),
        )| OutcomeNotice {
            experiment_id,
            // Any text, as a newer or hostile producer might send.
            target_type: experiment.clone(),
            target_id: security_group_id.clone(),
            change_id: security_group_rule_id.clone(),
            experiment,
            account,
            region,
            security_group_id,
            security_group_rule_id,
            protocol,
            from_port,
            to_port,
            cidr,
            injected_at,
            concluded_at,
            outcome,
            reason,
            detections,
            reverted,
            dry_run,
            quiet: None,
        },
    )
}

fn start_notice() -> impl Strategy<Value = StartNotice> {
    let ids = (hostile_string(), optional_string(), optional_string(), optional_string());
    let rule = (optional_string(), optional_string(), optional_string());
    let ports = (proptest::option::of(any::<u16>()), proptest::option::of(any::<u16>()), optional_string());
    let times = (optional_string(), optional_string());
    let detectors = prop_oneof![3 => vec(hostile_string(), 0..6), 1 => vec(short_string(), 0..500)];
    (ids, rule, ports, times, detectors).prop_map(
        |(
            (experiment_id, experiment, account, region),
            (security_group_id, security_group_rule_id, protocol),
            (from_port, to_port, cidr),
            (injected_at, deadline),
            detectors,
        )| StartNotice {
            experiment_id,
            // Any text, as a newer or hostile producer might send.
            target_type: experiment.clone(),
            target_id: security_group_id.clone(),
            change_id: security_group_rule_id.clone(),
            experiment,
            account,
            region,
            security_group_id,
            security_group_rule_id,
            protocol,
            from_port,
            to_port,
            cidr,
            injected_at,
            deadline,
            detectors,
        },
    )
}

/// The message the producer would publish for `o`.
fn outcome_json(o: &OutcomeNotice) -> Value {
    let detections: Vec<Value> = o
        .detections
        .iter()
        .map(|d| {
            json!({
                "detector": d.detector, "detected": d.detected,
                "seconds_to_detect": d.seconds_to_detect, "evidence": d.evidence, "could_not_see": d.could_not_see,
            })
        })
        .collect();
    json!({
        "schema": OUTCOME_SCHEMA,
        "experiment_id": o.experiment_id, "experiment": o.experiment,
        "account": o.account, "region": o.region,
        "target_type": o.target_type, "target_id": o.target_id, "change_id": o.change_id,
        "security_group_id": o.security_group_id, "security_group_rule_id": o.security_group_rule_id,
        "protocol": o.protocol, "from_port": o.from_port, "to_port": o.to_port, "cidr": o.cidr,
        "injected_at": o.injected_at, "concluded_at": o.concluded_at,
        "outcome": o.outcome, "reason": o.reason, "detections": detections,
        "reverted": o.reverted, "dry_run": o.dry_run,
    })
}

fn start_json(s: &StartNotice) -> Value {
    json!({
        "schema": STARTED_SCHEMA,
        "experiment_id": s.experiment_id, "experiment": s.experiment,
        "account": s.account, "region": s.region,
        "target_type": s.target_type, "target_id": s.target_id, "change_id": s.change_id,
        "security_group_id": s.security_group_id, "security_group_rule_id": s.security_group_rule_id,
        "protocol": s.protocol, "from_port": s.from_port, "to_port": s.to_port, "cidr": s.cidr,
        "injected_at": s.injected_at, "deadline": s.deadline, "detectors": s.detectors,
    })
}

/// Field names of both schemas, so arbitrary objects often collide with real fields.
const FIELD_NAMES: &[&str] = &[
    "schema",
    "experiment_id",
    "experiment",
    "account",
    "region",
    "target_type",
    "target_id",
    "change_id",
    "security_group_id",
    "security_group_rule_id",
    "protocol",
    "from_port",
    "to_port",
    "cidr",
    "injected_at",
    "concluded_at",
    "deadline",
    "outcome",
    "reason",
    "detections",
    "detectors",
    "detector",
    "detected",
    "seconds_to_detect",
    "evidence",
    "reverted",
    "dry_run",
];

fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![3 => select(FIELD_NAMES.to_vec()).prop_map(String::from), 1 => any_chars(0..12)]
}

/// Any JSON value, nested a few levels, its strings often the schemas or field names.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("JSON numbers are finite", |f| f.is_finite()).prop_map(Value::from),
        select(vec![OUTCOME_SCHEMA, STARTED_SCHEMA, "undetected", "remediation"]).prop_map(Value::from),
        hostile_string().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(json_key(), inner, 0..8).prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

// ---------------------------------------------------------------------------------------
// What a payload Slack accepts looks like
// ---------------------------------------------------------------------------------------

fn chars(v: &Value) -> usize {
    v.as_str().map_or(0, |s| s.chars().count())
}

/// Whether `text` is mrkdwn in which nothing from the message can become markup Slack
/// acts on: no `<` or `>` at all, and every `&` the start of an escape.
fn is_escaped(text: &str) -> bool {
    !text.contains(['<', '>'])
        && text.match_indices('&').all(|(i, _)| ["&amp;", "&lt;", "&gt;"].iter().any(|e| text[i..].starts_with(e)))
}

/// A text object: its type, non-empty (Slack refuses empty texts) and within `max`.
fn check_text(object: &Value, max: usize, what: &str) -> Result<(), TestCaseError> {
    let kind = object["type"].as_str().unwrap_or_default();
    prop_assert!(kind == "mrkdwn" || kind == "plain_text", "{}: text object of type {:?}", what, kind);
    let text = object["text"].as_str();
    prop_assert!(text.is_some(), "{}: no text in {}", what, object);
    let text = text.unwrap();
    prop_assert!(!text.trim().is_empty(), "{}: empty text", what);
    prop_assert!(chars(&object["text"]) <= max, "{}: {} characters, limit {}", what, chars(&object["text"]), max);
    if kind == "mrkdwn" {
        prop_assert!(is_escaped(text), "{}: unescaped markup in {:?}", what, text);
    }
    Ok(())
}

/// Every Block Kit limit the payload's blocks are subject to, and the fallback text's.
fn check_within_slack_limits(payload: &Value) -> Result<(), TestCaseError> {
    // The payload is JSON that survives a round trip through its serialized form.
    let serialized = serde_json::to_string(payload).expect("a payload serializes");
    prop_assert_eq!(&serde_json::from_str::<Value>(&serialized).expect("valid JSON"), payload);

    let text = payload["text"].as_str();
    prop_assert!(text.is_some_and(|t| !t.trim().is_empty()), "no fallback text");
    prop_assert!(chars(&payload["text"]) <= FALLBACK_TEXT_MAX, "fallback text of {}", chars(&payload["text"]));
    prop_assert!(is_escaped(text.unwrap()), "unescaped fallback text {:?}", text);

    let attachments = payload["attachments"].as_array();
    prop_assert!(attachments.is_some_and(|a| a.len() == 1), "one attachment expected");
    let attachment = &attachments.unwrap()[0];
    prop_assert!(attachment["color"].as_str().is_some_and(|c| c.starts_with('#') && c.len() == 7));
    let blocks = attachment["blocks"].as_array();
    prop_assert!(blocks.is_some_and(|b| !b.is_empty() && b.len() <= MAX_BLOCKS), "blocks: {:?}", blocks.map(Vec::len));

    for (i, block) in blocks.unwrap().iter().enumerate() {
        let what = format!("block {i}");
        match block["type"].as_str() {
            Some("header") => {
                prop_assert_eq!(&block["text"]["type"], "plain_text");
                check_text(&block["text"], HEADER_MAX, &what)?;
            }
            Some("section") => {
                prop_assert!(block.get("text").is_some() || block.get("fields").is_some(), "{}: empty section", what);
                if let Some(t) = block.get("text") {
                    check_text(t, SECTION_TEXT_MAX, &what)?;
                }
                if let Some(fields) = block.get("fields") {
                    let fields = fields.as_array();
                    prop_assert!(fields.is_some_and(|f| !f.is_empty() && f.len() <= MAX_SECTION_FIELDS));
                    for f in fields.unwrap() {
                        check_text(f, FIELD_MAX, &what)?;
                    }
                }
            }
            Some("context") => {
                let elements = block["elements"].as_array();
                prop_assert!(elements.is_some_and(|e| !e.is_empty() && e.len() <= MAX_CONTEXT_ELEMENTS));
                for e in elements.unwrap() {
                    check_text(e, SECTION_TEXT_MAX, &what)?;
                }
            }
            other => prop_assert!(false, "{}: unexpected block type {:?}", what, other),
        }
    }
    Ok(())
}

/// serde_json, without its `float_roundtrip` feature, may read a float back one unit in
/// the last place off; the renderer shows a tenth of a second, so that is the same time.
fn same_seconds(read: Option<f64>, sent: Option<f64>) -> bool {
    match (read, sent) {
        (None, None) => true,
        // serde_json's default float parser is exact to within a few units in the last
        // place for ordinary numbers, but not for extreme exponents (1.6e-282 came back
        // off by more): twelve significant digits are the same time to any reader.
        (Some(a), Some(b)) => a == b || (a - b).abs() <= 1e-12 * a.abs().max(b.abs()),
        _ => false,
    }
}

fn header_of(payload: &Value) -> &str {
    payload["attachments"][0]["blocks"][0]["text"]["text"].as_str().unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    /// What the producer publishes is read back field for field.
    #[test]
    fn outcome_messages_parse_back_to_what_was_published(o in outcome_notice()) {
        let notice = parse_notice(&outcome_json(&o).to_string());
        let Ok(Notice::Outcome(mut back)) = notice else {
            return Err(TestCaseError::fail(format!("not read back as an outcome: {notice:?}")));
        };
        prop_assert_eq!(back.detections.len(), o.detections.len());
        for (got, sent) in back.detections.iter_mut().zip(&o.detections) {
            prop_assert!(same_seconds(got.seconds_to_detect, sent.seconds_to_detect));
            got.seconds_to_detect = sent.seconds_to_detect;
        }
        prop_assert_eq!(back, o);
    }

    #[test]
    fn start_messages_parse_back_to_what_was_published(s in start_notice()) {
        let notice = parse_notice(&start_json(&s).to_string());
        prop_assert_eq!(notice.ok(), Some(Notice::Started(s)));
    }

    /// Any outcome, however long or hostile its strings and however many its detectors,
    /// renders within Slack's limits with everything from the message escaped.
    #[test]
    fn any_outcome_renders_within_slacks_limits(o in outcome_notice()) {
        let payload = Notice::Outcome(o.clone()).slack_payload();
        check_within_slack_limits(&payload)?;

        // AND a rule left open is flagged where every reader looks, whatever else the
        // message holds
        let open = o.reverted == Some(false);
        prop_assert_eq!(payload["attachments"][0]["color"] == colour::NOT_REVERTED, open);
        prop_assert_eq!(header_of(&payload).ends_with("NOT REVERTED"), open, "{}", header_of(&payload));
        if open {
            prop_assert!(payload["text"].as_str().unwrap().ends_with(" — NOT REVERTED"));
        }
        // AND the detector section accounts for every detection: shown or counted as left out
        if !o.detections.is_empty() {
            let blocks = payload["attachments"][0]["blocks"].as_array().unwrap();
            let section = blocks.iter().filter_map(|b| b["text"]["text"].as_str()).find(|t| t.starts_with("*Detectors*"));
            prop_assert!(section.is_some(), "no detector section");
            let section = section.unwrap();
            let shown = section.lines().filter(|l| l.starts_with('✓') || l.starts_with('✗')).count();
            let left_out = section
                .rsplit_once("\n… and ")
                .and_then(|(_, n)| n.strip_suffix(" more")?.parse::<usize>().ok())
                .unwrap_or(0);
            prop_assert_eq!(shown + left_out, o.detections.len(), "{}", section);
        }
    }

    #[test]
    fn any_start_message_renders_within_slacks_limits(s in start_notice()) {
        let payload = Notice::Started(s).slack_payload();
        check_within_slack_limits(&payload)?;
        prop_assert_eq!(&payload["attachments"][0]["color"], colour::STARTED);
    }
}

proptest! {
    // Whole generated messages are the expensive part of these cases.
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// A real message with one field replaced by anything (or removed) is refused or
    /// rendered within Slack's limits, never a panic.
    #[test]
    fn mutated_messages_are_refused_or_rendered_within_limits(
        o in outcome_notice(),
        started in any::<bool>(),
        s in start_notice(),
        key in json_key(),
        replacement in proptest::option::of(json_value()),
        in_detection in any::<bool>(),
    ) {
        let mut message = if started { start_json(&s) } else { outcome_json(&o) };
        let target = match message["detections"].as_array_mut() {
            Some(d) if in_detection && !d.is_empty() => &mut d[0],
            _ => &mut message,
        };
        let object = target.as_object_mut().unwrap();
        match replacement {
            Some(v) => {
                object.insert(key, v);
            }
            None => {
                object.remove(&key);
            }
        }
        if let Ok(payload) = slack_payload(&message.to_string()) {
            check_within_slack_limits(&payload)?;
        }
    }

    /// Text that is not JSON, or JSON cut short, is refused with a reason, never a panic.
    #[test]
    fn text_that_is_not_a_whole_message_is_refused(
        o in outcome_notice(), cut in any::<prop::sample::Index>(), junk in any_chars(0..60),
    ) {
        let whole = outcome_json(&o).to_string();
        let at = cut.index(whole.len());
        let at = (0..=at).rev().find(|i| whole.is_char_boundary(*i)).unwrap_or(0);
        prop_assert!(parse_notice(&whole[..at]).is_err());
        if serde_json::from_str::<Value>(&junk).is_err() {
            prop_assert!(parse_notice(&junk).is_err());
        }
    }
}

proptest! {
    /// Arbitrary JSON is read or refused, never a panic; what is read renders within
    /// Slack's limits.
    #[test]
    fn arbitrary_json_is_refused_or_rendered_within_limits(v in json_value()) {
        if let Ok(payload) = slack_payload(&v.to_string()) {
            check_within_slack_limits(&payload)?;
        }
    }

    /// Escaping removes every character Slack's mrkdwn acts on and loses nothing.
    #[test]
    fn escaping_is_total_and_reversible(raw in hostile_string()) {
        let escaped = escape(&raw);
        prop_assert!(is_escaped(&escaped));
        let back = escaped.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&");
        prop_assert_eq!(back, raw);
    }

    /// The webhook path is the credential: it never shows in `Debug`, `Display` or an
    /// error, whatever the rest of the URL.
    #[test]
    fn a_webhook_url_never_shows_its_secret_path(
        scheme in select(vec!["https", "http", "ftp", "HTTPS", ""]),
        userinfo in select(vec!["", "user@", "user:pass@"]),
        host in select(vec!["hooks.slack.com", "127.0.0.1", "localhost", "[::1]", "example.com", "", "a b"]),
        port in select(vec!["", ":443", ":8080", ":99999", ":x"]),
        secret in "[A-Za-z0-9]{24,40}",
        separator in select(vec!["/services/", "/", "?token=", "#", " /"]),
        padding in select(vec!["", " ", "\n", "\t "]),
    ) {
        let url = format!("{padding}{scheme}://{userinfo}{host}{port}{separator}{secret}{padding}");
        match Webhook::parse(&url) {
            Ok(w) => {
                let shown = [format!("{w:?}"), w.to_string(), w.redacted().to_string()];
                prop_assert!(shown.iter().all(|s| !s.contains(&secret)), "{:?}", shown);
            }
            Err(e) => {
                let shown = [format!("{e:?}"), e.to_string()];
                prop_assert!(shown.iter().all(|s| !s.contains(&secret)), "{:?}", shown);
            }
        }
    }
}
