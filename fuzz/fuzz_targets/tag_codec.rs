//! Fuzzes the rule-tag and marker decoders with arbitrary tag sets.
//!
//! The input is read as lines of `key=value` (a line without `=` is a key with an empty
//! value), so the fuzzer quickly finds the real keys and values of the right shape. The
//! invariants are those of `crates/domain/tests/properties.rs`: decoding never panics, a
//! decoded record only names the group and rule it was read from, no record keeps a port
//! open past the window cap, and every time it holds can be printed.

#![no_main]

use chaoslingr_domain::experiment::MAX_WINDOW;
use chaoslingr_domain::marker;
use chaoslingr_domain::tags::{self, TaggedRule};
use chaoslingr_domain::time::rfc3339_millis;
use chaoslingr_domain::ExperimentRecord;
use libfuzzer_sys::fuzz_target;

const GROUP: &str = "sg-0123456789abcdef0";
const RULE: &str = "sgr-0123456789abcdef0";

fn check_record(record: &ExperimentRecord, group: &str) {
    assert_eq!(record.security_group_id, group, "a record names another group");
    let window = record.deadline.duration_since(record.injected_at).expect("deadline before injection");
    assert!(window <= MAX_WINDOW, "a window of {window:?} is past the cap");
    let _ = (rfc3339_millis(record.injected_at), rfc3339_millis(record.deadline));
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let tags: Vec<(String, String)> = text
        .lines()
        .map(|line| match line.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (line.to_string(), String::new()),
        })
        .collect();

    let rule = TaggedRule {
        security_group_id: GROUP.into(),
        security_group_rule_id: RULE.into(),
        account: None,
        ip_protocol: "tcp".into(),
        from_port: Some(40_000),
        to_port: Some(40_002),
        cidr: Some("0.0.0.0/0".into()),
        description: None,
        is_egress: false,
        tags: tags.clone(),
    };
    if let Ok(record) = tags::decode(&rule) {
        check_record(&record, GROUP);
        assert_eq!(record.security_group_rule_id, RULE, "a record names another rule");
    }

    if let Ok(m) = marker::decode(GROUP, None, &tags) {
        check_record(&m.record, GROUP);
        let named = tags.iter().find(|(k, _)| k == marker::RULE_ID).map(|(_, v)| v.as_str());
        assert_eq!(Some(m.record.security_group_rule_id.as_str()), named, "a marker names another rule");
        for (detector, at) in &m.seen {
            assert!(m.record.detectors.contains(detector), "a firing of a detector the record does not have");
            let _ = rfc3339_millis(*at);
        }
        if let Some(c) = &m.conclusion {
            let _ = rfc3339_millis(c.concluded_at);
        }
    }
});
