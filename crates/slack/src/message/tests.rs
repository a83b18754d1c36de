//! The Slack payload of every outcome and of a start message.
//!
//! Each test is written GIVEN (the SNS message) / WHEN (it is rendered) / THEN (what a
//! reader of the channel sees).

use serde_json::{json, Value};

use super::*;

/// An `undetected` outcome as the product publishes it: one Config rule, one firewall
/// alarm, and the remediation watcher, none of which noticed.
fn undetected() -> Value {
    json!({
        "schema": "chaoslingr.outcome/v1",
        "experiment_id": "cs-20261123T184700Z-abcdef",
        "experiment": "port-change",
        "account": "111122223333",
        "region": "eu-west-1",
        "security_group_id": "sg-123",
        "security_group_rule_id": "sgr-0new",
        "protocol": "udp",
        "from_port": 14603,
        "to_port": 14605,
        "cidr": "0.0.0.0/0",
        "injected_at": "2026-11-23T18:47:00.000Z",
        "concluded_at": "2026-11-23T19:02:00.000Z",
        "outcome": "undetected",
        "reason": "no detector noticed within 900 s",
        "detections": [
            { "detector": "config:restricted-common-ports", "detected": false, "seconds_to_detect": null,
              "evidence": "still COMPLIANT at the deadline" },
            { "detector": "alarm:fw", "detected": false, "seconds_to_detect": null, "evidence": "alarm stayed OK" },
            { "detector": "remediation", "detected": false, "seconds_to_detect": null,
              "evidence": "rule still present" }
        ],
        "reverted": true,
        "dry_run": false
    })
}

fn with(mut base: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

fn render(message: &Value) -> Value {
    slack_payload(&message.to_string()).unwrap()
}

fn colour_of(payload: &Value) -> &str {
    payload["attachments"][0]["color"].as_str().unwrap()
}

fn blocks(payload: &Value) -> &Vec<Value> {
    payload["attachments"][0]["blocks"].as_array().unwrap()
}

fn header(payload: &Value) -> &str {
    let first = &blocks(payload)[0];
    assert_eq!(first["type"], "header");
    first["text"]["text"].as_str().unwrap()
}

/// Every text of the payload (fallback, headers, sections, fields, context), joined.
fn all_text(payload: &Value) -> String {
    let mut texts = vec![payload["text"].as_str().unwrap().to_string()];
    collect_texts(&payload["attachments"], &mut texts);
    texts.join("\n")
}

fn collect_texts(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let (Some(Value::String(kind)), Some(Value::String(text))) = (map.get("type"), map.get("text")) {
                if kind == "mrkdwn" || kind == "plain_text" {
                    out.push(text.clone());
                }
            }
            map.values().for_each(|v| collect_texts(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_texts(v, out)),
        _ => {}
    }
}

/// The text of the section that starts with `prefix`.
fn section_starting(payload: &Value, prefix: &str) -> String {
    blocks(payload)
        .iter()
        .filter_map(|b| b["text"]["text"].as_str())
        .find(|t| t.starts_with(prefix))
        .unwrap_or_else(|| panic!("no section starting with {prefix:?} in {payload:#}"))
        .to_string()
}

fn fields(payload: &Value) -> Vec<String> {
    blocks(payload)
        .iter()
        .find_map(|b| b["fields"].as_array())
        .expect("a section with fields")
        .iter()
        .map(|f| f["text"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn undetected_is_red_and_called_a_security_gap() {
    // GIVEN an undetected outcome
    // WHEN rendering it
    let payload = render(&undetected());

    // THEN the bar is red, the header names the gap and the fallback says where
    assert_eq!(colour_of(&payload), colour::GAP);
    assert_eq!(header(&payload), "UNDETECTED — security gap: nothing noticed");
    assert_eq!(payload["text"], "ChaoSlingr: UNDETECTED on sg-123 (udp 14603-14605)");

    // AND every detector is listed as a gap, with its evidence
    let detectors = section_starting(&payload, "*Detectors*");
    assert!(detectors.starts_with("*Detectors* (0 of 2 noticed)"), "{detectors}");
    let config_line = "✗ `config:restricted-common-ports` not detected — still COMPLIANT at the deadline";
    assert!(detectors.contains(config_line), "{detectors}");
    assert!(detectors.contains("✗ `alarm:fw` not detected — alarm stayed OK"), "{detectors}");
    assert!(detectors.contains("✗ `remediation` not detected"), "{detectors}");

    // AND the facts and the reason are there
    let fields = fields(&payload);
    assert_eq!(fields[0], "*Security group*\n`sg-123`\n`sgr-0new`");
    assert_eq!(fields[1], "*Opened*\nudp 14603-14605 from `0.0.0.0/0`");
    assert_eq!(fields[2], "*Account / region*\n111122223333 / eu-west-1");
    assert_eq!(fields[3], "*Reverted*\nyes");
    assert_eq!(section_starting(&payload, "*Why*"), "*Why*\nno detector noticed within 900 s");
}

#[test]
fn each_held_hypothesis_is_green_with_its_detection_times() {
    for outcome in ["detected", "remediated", "prevented"] {
        // GIVEN an outcome where the hypothesis held: the Config rule after 3.7 s, the
        // alarm never (a gap), remediation after 42 s
        let message = with(
            undetected(),
            json!({
                "outcome": outcome,
                "reason": "config rule turned NON_COMPLIANT",
                "detections": [
                    { "detector": "config:restricted-common-ports", "detected": true, "seconds_to_detect": 3.71,
                      "evidence": "NON_COMPLIANT" },
                    { "detector": "alarm:fw", "detected": false, "seconds_to_detect": null, "evidence": "" },
                    { "detector": "remediation", "detected": true, "seconds_to_detect": 42.0, "evidence": null }
                ]
            }),
        );

        // WHEN rendering it
        let payload = render(&message);

        // THEN green, "hypothesis held", and one line per detector with its time or the gap
        assert_eq!(colour_of(&payload), colour::HELD, "{outcome}");
        assert_eq!(header(&payload), format!("{} — hypothesis held", outcome.to_uppercase()));
        let detectors = section_starting(&payload, "*Detectors*");
        assert!(detectors.starts_with("*Detectors* (1 of 2 noticed)"), "{detectors}");
        assert!(detectors.contains("\n✓ `config:restricted-common-ports` 3.7 s — NON_COMPLIANT"), "{detectors}");
        assert!(detectors.contains("\n✗ `alarm:fw` not detected\n"), "{detectors}");
        assert!(detectors.ends_with("\n✓ `remediation` 42.0 s"), "{detectors}");
    }
}

#[test]
fn a_detection_without_a_time_says_so() {
    // GIVEN a detector that fired but reported no time
    let message = with(
        undetected(),
        json!({ "outcome": "detected",
                "detections": [{ "detector": "securityhub", "detected": true, "seconds_to_detect": null }] }),
    );

    // WHEN rendering
    let detectors = section_starting(&render(&message), "*Detectors*");

    // THEN the line says the time is unknown instead of inventing one
    assert!(detectors.contains("✓ `securityhub` detected (time unknown)"), "{detectors}");
}

#[test]
fn aborted_with_no_group_is_grey_and_says_why() {
    // GIVEN an aborted run that never chose a group: nearly everything null
    let message = json!({
        "schema": "chaoslingr.outcome/v1",
        "experiment_id": "cs-20261123T184700Z-abcdef",
        "experiment": "port-change",
        "account": null, "region": "eu-west-1",
        "security_group_id": null, "security_group_rule_id": null,
        "protocol": null, "from_port": null, "to_port": null, "cidr": null,
        "injected_at": null, "concluded_at": "2026-11-23T18:47:01Z",
        "outcome": "aborted",
        "reason": "kill switch is on",
        "detections": [],
        "reverted": true,
        "dry_run": false
    });

    // WHEN rendering it
    let payload = render(&message);

    // THEN grey, "not run", no detector section, and the reason in the fallback text
    assert_eq!(colour_of(&payload), colour::NEUTRAL);
    assert_eq!(header(&payload), "ABORTED — not run");
    assert_eq!(payload["text"], "ChaoSlingr: ABORTED: kill switch is on");
    assert!(!all_text(&payload).contains("*Detectors*"));
    let fields = fields(&payload);
    assert_eq!(fields[0], "*Security group*\n_none chosen_");
    assert_eq!(fields[1], "*Opened*\n_nothing_");
    assert_eq!(fields[2], "*Account / region*\n? / eu-west-1");
    assert_eq!(section_starting(&payload, "*Why*"), "*Why*\nkill switch is on");
    // AND the context holds the id and the one time known
    let context = blocks(&payload).last().unwrap();
    assert_eq!(context["type"], "context");
    assert_eq!(context["elements"][0]["text"], "Experiment `cs-20261123T184700Z-abcdef` (port-change)");
    assert_eq!(context["elements"][1]["text"], "concluded 2026-11-23T18:47:01Z");
}

#[test]
fn missing_optional_fields_are_as_good_as_null() {
    // GIVEN the smallest outcome message: schema, id and outcome only
    let message = json!({ "schema": "chaoslingr.outcome/v1", "experiment_id": "cs-1", "outcome": "aborted" });

    // WHEN rendering it
    let payload = render(&message);

    // THEN it renders, with the revert state unknown rather than claimed
    assert_eq!(header(&payload), "ABORTED — not run");
    assert_eq!(fields(&payload)[3], "*Reverted*\nunknown");
}

#[test]
fn failed_is_orange() {
    // GIVEN a failed experiment (an error, not a finding)
    let message = with(undetected(), json!({ "outcome": "failed", "reason": "EC2 throttled for 5 minutes" }));

    // WHEN rendering it
    let payload = render(&message);

    // THEN orange, "failed"
    assert_eq!(colour_of(&payload), colour::FAILED);
    assert_eq!(header(&payload), "FAILED — failed");
    assert_eq!(payload["text"], "ChaoSlingr: FAILED on sg-123 (udp 14603-14605)");
}

#[test]
fn a_rule_left_open_is_loud_whatever_the_outcome() {
    for outcome in ["detected", "undetected", "failed"] {
        // GIVEN an outcome whose revert failed
        let message = with(undetected(), json!({ "outcome": outcome, "reverted": false }));

        // WHEN rendering it
        let payload = render(&message);

        // THEN the bar is dark red, header and fallback shout it, and the first section says
        // what is still open and how to close it
        assert_eq!(colour_of(&payload), colour::NOT_REVERTED, "{outcome}");
        assert!(header(&payload).ends_with(" — NOT REVERTED"), "{}", header(&payload));
        assert!(payload["text"].as_str().unwrap().ends_with(" — NOT REVERTED"));
        let alert = blocks(&payload)[1]["text"]["text"].as_str().unwrap();
        assert_eq!(
            alert,
            ":rotating_light: *NOT REVERTED*: `sgr-0new` on `sg-123` may still allow udp 14603-14605 from \
             `0.0.0.0/0`. Revert it now: `chaoslingr revert cs-20261123T184700Z-abcdef`"
        );
        assert_eq!(fields(&payload)[3], "*Reverted*\n:rotating_light: *NO*");
    }
}

#[test]
fn a_reverted_outcome_has_no_alert() {
    // GIVEN a reverted outcome
    // WHEN rendering it
    let payload = render(&undetected());

    // THEN nothing says it is still open
    assert!(!all_text(&payload).contains("NOT REVERTED"));
    assert!(!all_text(&payload).contains(":rotating_light:"));
}

#[test]
fn a_dry_run_says_so_everywhere_a_reader_looks() {
    // GIVEN a dry run
    let message = with(undetected(), json!({ "dry_run": true, "outcome": "detected" }));

    // WHEN rendering it
    let payload = render(&message);

    // THEN header, fallback and context mention it
    assert_eq!(header(&payload), "DETECTED — hypothesis held (dry run)");
    assert_eq!(payload["text"], "ChaoSlingr: DETECTED on sg-123 (udp 14603-14605) (dry run)");
    assert!(blocks(&payload).last().unwrap()["elements"][0]["text"].as_str().unwrap().ends_with(" · dry run"));
}

#[test]
fn an_outcome_this_version_does_not_know_is_shown_in_grey() {
    // GIVEN an outcome added by a newer producer, with markup in its name
    let message = with(undetected(), json!({ "outcome": "quarantined<!channel>" }));

    // WHEN rendering it
    let payload = render(&message);

    // THEN it is still posted, grey, with only the harmless characters of the name
    assert_eq!(colour_of(&payload), colour::NEUTRAL);
    assert_eq!(header(&payload), "QUARANTINEDCHANNEL — unknown outcome");
}

#[test]
fn a_single_port_is_not_shown_as_a_range() {
    // GIVEN a one-port experiment
    let message = with(undetected(), json!({ "protocol": "tcp", "from_port": 20000, "to_port": 20000 }));

    // WHEN rendering
    let payload = render(&message);

    // THEN the port is shown alone
    assert_eq!(payload["text"], "ChaoSlingr: UNDETECTED on sg-123 (tcp 20000)");
}

#[test]
fn text_from_the_message_is_escaped_so_it_cannot_ping_or_link() {
    // GIVEN a message whose free text carries Slack control sequences
    let message = with(
        undetected(),
        json!({
            "reason": "<!channel> look at <https://evil.example|this> & that",
            "security_group_id": "sg-<1>",
            "detections": [{ "detector": "alarm:a&b", "detected": false, "seconds_to_detect": null,
                             "evidence": "<@U123> was paged" }]
        }),
    );

    // WHEN rendering it
    let payload = render(&message);
    let text = all_text(&payload);

    // THEN every &, < and > arrives escaped and no raw control sequence is left
    assert_eq!(
        section_starting(&payload, "*Why*"),
        "*Why*\n&lt;!channel&gt; look at &lt;https://evil.example|this&gt; &amp; that"
    );
    assert!(text.contains("`sg-&lt;1&gt;`"), "{text}");
    assert!(text.contains("✗ `alarm:a&amp;b` not detected — &lt;@U123&gt; was paged"), "{text}");
    assert!(!text.contains("<!channel>") && !text.contains("<@U123>") && !text.contains("<https"), "{text}");
    assert_eq!(payload["text"], "ChaoSlingr: UNDETECTED on sg-&lt;1&gt; (udp 14603-14605)");
}

#[test]
fn a_backtick_cannot_break_out_of_a_code_span() {
    // GIVEN a detector name with a backtick
    let message = with(
        undetected(),
        json!({ "detections": [{ "detector": "alarm:x`*bold*", "detected": false, "seconds_to_detect": null }] }),
    );

    // WHEN rendering
    let detectors = section_starting(&render(&message), "*Detectors*");

    // THEN the span stays one span
    assert!(detectors.contains("✗ `alarm:x'*bold*` not detected"), "{detectors}");
}

#[test]
fn every_text_stays_within_slacks_limits_however_long_the_input() {
    // GIVEN a message with an enormous reason full of characters that grow when escaped,
    // enormous evidence and names, and two hundred detectors
    let huge = "&<>".repeat(5000);
    let detections: Vec<Value> = (0..200)
        .map(|i| {
            json!({ "detector": format!("alarm:{i}-{}", "x".repeat(500)), "detected": i % 2 == 0,
                    "seconds_to_detect": if i % 2 == 0 { json!(i as f64) } else { Value::Null },
                    "evidence": huge.clone() })
        })
        .collect();
    let message = with(
        undetected(),
        json!({
            "reason": huge, "security_group_id": "g".repeat(5000), "cidr": "c".repeat(5000),
            "experiment_id": "e".repeat(5000), "outcome": "u".repeat(500), "reverted": false,
            "detections": detections
        }),
    );

    // WHEN rendering it
    let payload = render(&message);

    // THEN the header, every section text, field and context element fits
    for block in blocks(&payload) {
        let len = |v: &Value| v.as_str().unwrap().chars().count();
        match block["type"].as_str().unwrap() {
            "header" => assert!(len(&block["text"]["text"]) <= HEADER_MAX),
            "section" => {
                if let Some(t) = block.get("text") {
                    assert!(len(&t["text"]) <= SECTION_TEXT_MAX, "{}", len(&t["text"]));
                }
                for f in block["fields"].as_array().into_iter().flatten() {
                    assert!(len(&f["text"]) <= FIELD_MAX, "{}", len(&f["text"]));
                }
            }
            "context" => {
                for e in block["elements"].as_array().unwrap() {
                    assert!(len(&e["text"]) <= SECTION_TEXT_MAX);
                }
            }
            other => panic!("unexpected block {other}"),
        }
    }
    assert!(payload["text"].as_str().unwrap().chars().count() <= FALLBACK_TEXT_MAX);

    // AND cuts are marked, never split an escape, and say how many detectors were left out
    let why = section_starting(&payload, "*Why*");
    assert!(why.ends_with('…'), "{}", &why[why.len() - 20..]);
    assert!(why.trim_end_matches('…').ends_with(';'), "an escape sequence was cut");
    let detectors = section_starting(&payload, "*Detectors*");
    assert!(detectors.starts_with("*Detectors* (100 of 200 noticed)"));
    assert!(regex_like_more(&detectors), "{}", &detectors[detectors.len() - 40..]);
}

/// Whether `text` ends with "… and N more" for some N > 0.
fn regex_like_more(text: &str) -> bool {
    let Some((_, tail)) = text.rsplit_once("\n… and ") else { return false };
    tail.strip_suffix(" more").is_some_and(|n| n.parse::<usize>().is_ok_and(|n| n > 0))
}

#[test]
fn a_start_message_is_blue_and_lists_what_is_watched() {
    // GIVEN a start message
    let message = json!({
        "schema": "chaoslingr.started/v1",
        "experiment_id": "cs-20261123T184700Z-abcdef",
        "experiment": "port-change",
        "account": "111122223333",
        "region": "eu-west-1",
        "security_group_id": "sg-123",
        "security_group_rule_id": "sgr-0new",
        "protocol": "tcp",
        "from_port": 20000,
        "to_port": 20002,
        "cidr": "0.0.0.0/0",
        "injected_at": "2026-11-23T18:47:00.000Z",
        "deadline": "2026-11-23T19:02:00Z",
        "detectors": ["config:restricted-common-ports", "alarm:fw<1>"]
    });

    // WHEN rendering it
    let notice = parse_notice(&message.to_string()).unwrap();
    let payload = notice.slack_payload();

    // THEN blue, "STARTED", the deadline and each detector (escaped) plus remediation
    assert_eq!(notice.experiment_id(), "cs-20261123T184700Z-abcdef");
    assert_eq!(notice.schema(), STARTED_SCHEMA);
    assert_eq!(colour_of(&payload), colour::STARTED);
    assert_eq!(header(&payload), "STARTED — port opened, watching the detectors");
    assert_eq!(payload["text"], "ChaoSlingr: STARTED on sg-123 (tcp 20000-20002), watching until 2026-11-23T19:02:00Z");
    let fields = fields(&payload);
    assert_eq!(fields[1], "*Opened*\ntcp 20000-20002 from `0.0.0.0/0`");
    assert_eq!(fields[3], "*Watching until*\n2026-11-23T19:02:00Z");
    assert_eq!(
        section_starting(&payload, "*Watching*"),
        "*Watching*\n• `config:restricted-common-ports`\n• `alarm:fw&lt;1&gt;`\n• remediation (always watched)"
    );
    assert_eq!(blocks(&payload).last().unwrap()["elements"][1]["text"], "injected 2026-11-23T18:47:00.000Z");
}

#[test]
fn unknown_schemas_and_non_json_are_refused_and_not_retried() {
    // GIVEN messages this notifier must not render
    for (message, expected) in [
        ("not json at all", "not JSON"),
        ("", "not JSON"),
        (
            r#"{"schema": "chaoslingr.outcome/v2", "experiment_id": "x", "outcome": "detected"}"#,
            "unknown schema `chaoslingr.outcome/v2`",
        ),
        (r#"{"experiment_id": "x", "outcome": "detected"}"#, "no `schema` field"),
        (r#"{"schema": 1}"#, "`schema` is not a string"),
        (r#"{"schema": "chaoslingr.outcome/v1", "experiment_id": "x"}"#, "does not match chaoslingr.outcome/v1"),
        (
            r#"{"schema": "chaoslingr.started/v1", "experiment_id": "x", "from_port": 70000}"#,
            "does not match chaoslingr.started/v1",
        ),
        (r#"["chaoslingr.outcome/v1"]"#, "no `schema` field"),
    ] {
        // WHEN parsing
        let err = slack_payload(message).unwrap_err();

        // THEN the error says what is wrong and is final
        assert!(matches!(err, NotifyError::UnreadableMessage { .. }), "{err:?}");
        assert!(err.to_string().contains(expected), "{message:?}: {err}");
        assert!(!err.retryable());
    }
}

#[test]
fn fit_cuts_on_characters_and_never_inside_an_escape() {
    // GIVEN text that grows when escaped
    // WHEN fitting it into small budgets
    // THEN the result is within budget, marked, and made of whole escape sequences
    assert_eq!(fit("a&b", 10), "a&amp;b");
    assert_eq!(fit("a&b", 6), "a…");
    assert_eq!(fit("ééééé", 3), "éé…");
    assert_eq!(fit("<<", 8), "&lt;&lt;");
    assert_eq!(fit("<<", 7), "&lt;…");
}
