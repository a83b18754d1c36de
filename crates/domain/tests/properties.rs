//! Property tests for the codecs that read what anyone with `ec2:CreateTags` can write:
//! the rule tags ([`tags`]), the group marker ([`marker`]) and the timestamps inside them
//! ([`chaoslingr_domain::time`]).
//!
//! The invariants that matter for safety: decoding never panics; a decoded record only
//! ever names the group and rule it was read from (so it can never vouch for another
//! rule in [`ownership::check`]); and no record keeps a port open longer than
//! [`MAX_WINDOW`] after its injection, whatever the tags say.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chaoslingr_domain::detector::{self, Detector};
use chaoslingr_domain::experiment::{deadline_for, whole_millis, ExperimentRecord, MAX_WINDOW};
use chaoslingr_domain::marker::{self, Conclusion};
use chaoslingr_domain::ownership;
use chaoslingr_domain::tags::{self, TaggedRule, DEADLINE, DETECTORS, EXPERIMENT_ID, INJECTED_AT, MAX_TAG_VALUE};
use chaoslingr_domain::time::{parse_duration, parse_rfc3339, rfc3339, rfc3339_millis};
use chaoslingr_domain::{ExperimentId, Outcome, PortRange, Protocol, Settings};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

/// 10000-01-01T00:00:00Z: RFC 3339's four-digit years end just before it.
const YEAR_10000: u64 = 253_402_300_800;

// ---------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------

/// Ids in the form ChaoSlingr generates, from any representable start time.
fn experiment_id() -> impl Strategy<Value = ExperimentId> {
    (0..YEAR_10000, 0u32..0x0100_0000).prop_map(|(secs, suffix)| {
        let stamp = rfc3339(UNIX_EPOCH + Duration::from_secs(secs)).replace(['-', ':'], "");
        format!("cs-{stamp}-{suffix:06x}").parse().expect("generated ids are valid")
    })
}

fn group_id() -> impl Strategy<Value = String> {
    "sg-[0-9a-f]{8,17}"
}

fn rule_id() -> impl Strategy<Value = String> {
    "sgr-[0-9a-f]{8,17}"
}

fn account() -> impl Strategy<Value = Option<String>> {
    proptest::option::of("[0-9]{12}")
}

fn protocol() -> impl Strategy<Value = Protocol> {
    prop_oneof![Just(Protocol::Tcp), Just(Protocol::Udp)]
}

fn ports() -> impl Strategy<Value = PortRange> {
    (any::<u16>(), 0u16..8).prop_map(|(from, extra)| PortRange::new(from, from.saturating_add(extra)).unwrap())
}

/// IPv4 and IPv6 CIDRs: one whitespace-free token, as the marker's `change` tag needs.
fn cidr() -> impl Strategy<Value = String> {
    prop_oneof![
        (any::<[u8; 4]>(), 0u8..=32).prop_map(|(a, n)| format!("{}.{}.{}.{}/{n}", a[0], a[1], a[2], a[3])),
        (any::<[u16; 8]>(), 0u8..=128).prop_map(|(a, n)| {
            let groups: Vec<String> = a.iter().map(|g| format!("{g:x}")).collect();
            format!("{}/{n}", groups.join(":"))
        }),
        Just("0.0.0.0/0".to_string()),
        Just("::/0".to_string()),
    ]
}

/// Detector names: any characters but `,`, without surrounding whitespace (the forms
/// [`Detector`]'s parser accepts), unicode included.
fn detector_name() -> impl Strategy<Value = String> {
    prop_oneof!["[a-zA-Z0-9_./:-]{1,24}", "[^,]{1,12}"].prop_filter("names are trimmed", |s| s.trim() == s)
}

fn detector() -> impl Strategy<Value = Detector> {
    prop_oneof![
        detector_name().prop_map(|rule| Detector::Config { rule }),
        detector_name().prop_map(|name| Detector::Alarm { name }),
        Just(Detector::SecurityHub { generator_id: None }),
        detector_name().prop_map(|g| Detector::SecurityHub { generator_id: Some(g) }),
    ]
}

/// Distinct detectors, as a parsed configuration holds them.
fn detectors() -> impl Strategy<Value = Vec<Detector>> {
    vec(detector(), 0..5).prop_map(|all| {
        let mut out: Vec<Detector> = Vec::new();
        for d in all {
            if !out.contains(&d) {
                out.push(d);
            }
        }
        out
    })
}

/// An injection time with millisecond precision that leaves room for a full window
/// before year 10000.
fn injected_at() -> impl Strategy<Value = SystemTime> {
    let last = (YEAR_10000 - MAX_WINDOW.as_secs() - 2) * 1000;
    prop_oneof![0..last, 1_700_000_000_000u64..1_900_000_000_000].prop_map(|ms| UNIX_EPOCH + Duration::from_millis(ms))
}

/// Windows from nothing to the cap, with sub-second parts.
fn window() -> impl Strategy<Value = Duration> {
    prop_oneof![
        (0..=MAX_WINDOW.as_secs(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n).min(MAX_WINDOW)),
        Just(MAX_WINDOW),
        Just(Duration::from_secs(900)),
    ]
}

/// A record as the engine creates it: whole-millisecond injection, deadline from a
/// window within the cap.
fn record() -> impl Strategy<Value = ExperimentRecord> {
    (
        experiment_id(),
        group_id(),
        rule_id(),
        account(),
        protocol(),
        ports(),
        cidr(),
        injected_at(),
        window(),
        detectors(),
    )
        .prop_map(|(id, group, rule, account, protocol, ports, cidr, at, window, detectors)| ExperimentRecord {
            id,
            security_group_id: group,
            security_group_rule_id: rule,
            account,
            protocol,
            ports,
            cidr,
            injected_at: whole_millis(at),
            deadline: deadline_for(at, window),
            detectors,
        })
        .prop_filter("the detector list fits in a tag value", |r| {
            detector::format_list(&r.detectors).len() <= MAX_TAG_VALUE
        })
}

/// The rule EC2 would report for `record`, carrying `tags`.
fn rule_of(record: &ExperimentRecord, tags: Vec<(String, String)>) -> TaggedRule {
    TaggedRule {
        security_group_id: record.security_group_id.clone(),
        security_group_rule_id: record.security_group_rule_id.clone(),
        account: record.account.clone(),
        ip_protocol: record.protocol.to_string(),
        from_port: Some(i32::from(record.ports.from)),
        to_port: Some(i32::from(record.ports.to)),
        cidr: Some(record.cidr.clone()),
        description: Some(format!("{}{} - unauthorized by design", ownership::DESCRIPTION_PREFIX, record.id)),
        is_egress: false,
        tags,
    }
}

fn rule_tags(record: &ExperimentRecord) -> Vec<(String, String)> {
    tags::encode(&record.id, record.injected_at, record.deadline, &record.detectors).expect("the list fits")
}

/// Timestamp-shaped strings, most of them wrong: years before 1970 and past 9999, month
/// 13, hour 24, second 61, long fractions, other offsets.
fn timestamp_like() -> impl Strategy<Value = String> {
    (
        prop_oneof![-2i32..=1, 1969i32..=1971, 1971i32..=9998, 9999i32..=10_001, Just(i32::MAX)],
        0u8..=13,
        0u8..=32,
        0u8..=25,
        0u8..=60,
        0u8..=61,
        proptest::option::of("[0-9]{1,12}"),
        select(vec!["Z", "", "z", "+00:00", "-01:00", "ZZ"]),
    )
        .prop_map(|(y, mo, d, h, mi, s, frac, suffix)| {
            let frac = frac.map(|f| format!(".{f}")).unwrap_or_default();
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{frac}{suffix}")
        })
}

/// Values an attacker or a careless edit may put in a tag.
fn adversarial_value() -> impl Strategy<Value = String> {
    prop_oneof![
        timestamp_like(),
        Just("9999-12-31T23:59:59.999999999Z".to_string()),
        Just("1970-01-01T00:00:00Z".to_string()),
        group_id(),
        rule_id(),
        experiment_id().prop_map(|id| id.to_string()),
        "cs-[a-zA-Z0-9 -]{0,70}",
        detectors().prop_map(|d| detector::format_list(&d)),
        "(config|alarm|securityhub|guardduty)(:[^,]{0,10})?(,(config|alarm):[a-z ]{0,5}){0,3}",
        Just(String::new()),
        Just(u64::MAX.to_string()),
        "[0-9]{1,25}=[0-9]{1,25}(,[0-9]{1,25}=[0-9]{1,25}){0,3}",
        "(tcp|udp|icmp|-1|6|17) [0-9-]{1,12} [^ ]{0,20}",
        "\\PC{0,64}",
        (1usize..5000, any::<char>()).prop_map(|(n, c)| c.to_string().repeat(n)),
    ]
}

/// A tag of the marker with a value of the right shape for its key, most often subtly
/// wrong: firings of detectors that are not there or at times nothing can print, other
/// rules, other changes, unknown outcomes.
fn plausible_tag() -> impl Strategy<Value = (String, String)> {
    let key = |k: &'static str| Just(k.to_string());
    prop_oneof![
        (key(marker::SEEN), "([0-9]=[0-9]{1,20})(,[0-9]{1,2}=[0-9]{1,20}){0,4}"),
        (key(marker::SEEN), Just(format!("0={}", u64::MAX))),
        (key(marker::SEEN), Just(format!("0={}", YEAR_10000 * 1000))),
        (key(marker::RULE_ID), prop_oneof![rule_id(), group_id(), Just(String::new())]),
        (key(marker::CHANGE), "(tcp|udp|6|17|icmp|-1) ([0-9]{1,6}(-[0-9]{1,6})?|-|[0-9]+-) [^ ]{0,20}( x)?"),
        (key(INJECTED_AT), timestamp_like()),
        (key(DEADLINE), timestamp_like()),
        (key(marker::CONCLUDED_AT), timestamp_like()),
        (
            key(marker::OUTCOME),
            prop_oneof![select(Outcome::ALL.map(|o| o.as_str()).to_vec()).prop_map(String::from), "\\PC{0,12}"]
        ),
        (
            key(marker::RECORDED),
            prop_oneof![select(vec!["true", "counted", "false", ""]).prop_map(String::from), "\\PC{0,8}"]
        ),
        (
            key(marker::WATCHER),
            prop_oneof![select(vec!["cli", "CLI", "judge", ""]).prop_map(String::from), "\\PC{0,8}"]
        ),
        (key(EXPERIMENT_ID), prop_oneof![experiment_id().prop_map(|id| id.to_string()), "cs-[a-zA-Z0-9 -]{0,70}"]),
        (key(DETECTORS), detectors().prop_map(|d| detector::format_list(&d))),
    ]
}

fn any_key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => select(marker::KEYS.to_vec()).prop_map(String::from),
        1 => "chaoslingr:[a-z-]{0,12}",
        1 => "\\PC{0,20}",
    ]
}

/// One edit of a tag set.
#[derive(Debug, Clone)]
enum Edit {
    /// Replace the value of every tag with this key (or add it).
    Set(String, String),
    Remove(String),
    /// A second tag with the same key, read before the first.
    DuplicateFirst(String, String),
    /// A second tag with the same key, after the first.
    DuplicateLast(String, String),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        plausible_tag().prop_map(|(k, v)| Edit::Set(k, v)),
        plausible_tag().prop_map(|(k, v)| Edit::DuplicateFirst(k, v)),
        (any_key(), adversarial_value()).prop_map(|(k, v)| Edit::Set(k, v)),
        any_key().prop_map(Edit::Remove),
        (any_key(), adversarial_value()).prop_map(|(k, v)| Edit::DuplicateFirst(k, v)),
        (any_key(), adversarial_value()).prop_map(|(k, v)| Edit::DuplicateLast(k, v)),
    ]
}

fn apply(tags: &mut Vec<(String, String)>, edit: &Edit) {
    match edit {
        Edit::Set(k, v) => {
            tags.retain(|(key, _)| key != k);
            tags.push((k.clone(), v.clone()));
        }
        Edit::Remove(k) => tags.retain(|(key, _)| key != k),
        Edit::DuplicateFirst(k, v) => tags.insert(0, (k.clone(), v.clone())),
        Edit::DuplicateLast(k, v) => tags.push((k.clone(), v.clone())),
    }
}

/// What EC2 reports of a rule besides its tags.
#[derive(Debug, Clone)]
struct ReportedFields {
    ip_protocol: String,
    security_group_id: String,
    account: Option<String>,
    from_port: Option<i32>,
    to_port: Option<i32>,
    cidr: Option<String>,
    is_egress: bool,
}

/// Reported fields that may be anything, not only what ChaoSlingr creates.
fn arbitrary_rule_fields() -> impl Strategy<Value = ReportedFields> {
    (
        prop_oneof![
            4 => select(vec!["tcp", "udp", "6", "17", "TCP", " udp "]).prop_map(String::from),
            1 => select(vec!["-1", "icmp", "58", ""]).prop_map(String::from),
            1 => "\\PC{0,10}",
        ],
        prop_oneof![group_id(), "\\PC{0,20}"],
        proptest::option::of(prop_oneof!["[0-9]{12}", "\\PC{0,20}"]),
        proptest::option::weighted(0.95, prop_oneof![4 => 0i32..=65_535, 1 => any::<i32>()]),
        proptest::option::weighted(0.95, prop_oneof![4 => 0i32..=65_535, 1 => any::<i32>()]),
        proptest::option::weighted(0.9, prop_oneof![cidr(), "\\PC{0,20}"]),
        proptest::bool::weighted(0.1),
    )
        .prop_map(|(ip_protocol, security_group_id, account, from_port, to_port, cidr, is_egress)| {
            ReportedFields { ip_protocol, security_group_id, account, from_port, to_port, cidr, is_egress }
        })
}

/// Whether `record` keeps its port open no longer than the cap and not before it opened.
fn within_the_cap(record: &ExperimentRecord) -> Result<(), TestCaseError> {
    let window = record.deadline.duration_since(record.injected_at);
    prop_assert!(window.is_ok(), "deadline {:?} before injection {:?}", record.deadline, record.injected_at);
    let window = window.unwrap();
    prop_assert!(window <= MAX_WINDOW, "window {:?} past the cap", window);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The rule tags
// ---------------------------------------------------------------------------------------

proptest! {
    /// What the engine writes is what any later process reads, except that a deadline
    /// rounded up past the cap (a 24 h window injected at a fraction of a second) reads
    /// back as the cap.
    #[test]
    fn a_record_round_trips_through_rule_tags(record in record()) {
        // GIVEN the tags the engine writes for a record
        let tags = rule_tags(&record);
        // WHEN a later process reads the rule
        let back = tags::decode(&rule_of(&record, tags)).expect("ChaoSlingr's own tags decode");
        // THEN it has the same record, its deadline never past the cap
        let mut expected = record.clone();
        expected.deadline = record.deadline.min(record.injected_at + MAX_WINDOW);
        prop_assert_eq!(&back, &expected);
        within_the_cap(&back)?;
    }

    /// Encoding refuses exactly the detector lists a tag value cannot hold.
    #[test]
    fn encoding_refuses_only_detector_lists_too_long_for_a_tag(
        id in experiment_id(), at in injected_at(), detectors in vec(detector(), 0..12),
    ) {
        let list = detector::format_list(&detectors);
        let encoded = tags::encode(&id, at, at, &detectors);
        prop_assert_eq!(encoded.is_err(), list.len() > MAX_TAG_VALUE);
        if let Ok(tags) = encoded {
            prop_assert!(tags.iter().all(|(_, v)| v.len() <= MAX_TAG_VALUE));
        }
    }

    /// Whatever the tags say, a decoded record describes the rule it was read from and
    /// keeps it open no longer than the cap.
    #[test]
    fn arbitrary_tag_sets_never_decode_to_another_group_or_rule_or_past_the_window_cap(
        record in record(),
        edits in vec(edit(), 0..6),
        fields in proptest::option::weighted(0.3, arbitrary_rule_fields()),
    ) {
        // GIVEN a rule carrying edited tags, and maybe fields ChaoSlingr never writes
        let mut tags = rule_tags(&record);
        for e in &edits {
            apply(&mut tags, e);
        }
        let mut rule = rule_of(&record, tags);
        if let Some(f) = fields {
            rule.ip_protocol = f.ip_protocol;
            rule.security_group_id = f.security_group_id;
            rule.account = f.account;
            rule.from_port = f.from_port;
            rule.to_port = f.to_port;
            rule.cidr = f.cidr;
            rule.is_egress = f.is_egress;
        }

        // WHEN it is decoded (it must not panic)
        let Ok(back) = tags::decode(&rule) else { return Ok(()) };

        // THEN the record names only this rule, with this rule's change
        prop_assert_eq!(&back.security_group_id, &rule.security_group_id);
        prop_assert_eq!(&back.security_group_rule_id, &rule.security_group_rule_id);
        prop_assert_eq!(&back.account, &rule.account);
        prop_assert_eq!(Some(back.id.as_str()), rule.experiment_id());
        prop_assert_eq!(Ok(back.protocol), rule.ip_protocol.parse::<Protocol>());
        prop_assert_eq!(Some(i32::from(back.ports.from)), rule.from_port);
        prop_assert_eq!(Some(i32::from(back.ports.to)), rule.to_port);
        prop_assert_eq!(Some(&back.cidr), rule.cidr.as_ref());
        prop_assert!(!rule.is_egress);
        // AND its window is within the cap, its times representable
        within_the_cap(&back)?;
        let _ = (rfc3339(back.injected_at), rfc3339_millis(back.deadline));
        // AND its detectors are the distinct ones the tag lists
        let distinct: BTreeSet<&Detector> = back.detectors.iter().collect();
        prop_assert_eq!(distinct.len(), back.detectors.len());
        prop_assert_eq!(
            &back.detectors,
            &detector::parse_list(rule.tag(DETECTORS).unwrap_or_default()).unwrap()
        );
        prop_assert!(rule.tag(INJECTED_AT).is_some() && rule.tag(DEADLINE).is_some());
    }

    /// A record read from one rule never makes another rule ChaoSlingr's, even a rule of
    /// exactly the shape ChaoSlingr creates, in the same group or on the same change.
    #[test]
    fn a_decoded_record_vouches_only_for_the_rule_it_was_read_from(
        record in record(),
        other_group in group_id(),
        other_rule in rule_id(),
        which in 0u8..3,
        from in 10_000u16..=64_995,
        extra in 0u16..=5,
        protocol in protocol(),
    ) {
        let settings = Settings::default();
        // GIVEN a rule of the shape ChaoSlingr creates under the default settings
        let mut record = record;
        record.ports = PortRange::new(from, from + extra).unwrap();
        record.protocol = protocol;
        record.cidr = settings.cidr.clone();
        let ours = rule_of(&record, rule_tags(&record));
        let decoded = tags::decode(&ours).expect("ChaoSlingr's own rule decodes");
        prop_assert_eq!(ownership::check(&ours, record.id.as_str(), Some(&decoded), &settings), Ok(()));

        // AND another rule of the same shape, naming the same experiment, elsewhere
        let mut other = ours.clone();
        match which {
            0 => other.security_group_id = other_group.clone(),
            1 => other.security_group_rule_id = other_rule.clone(),
            _ => {
                other.security_group_id = other_group.clone();
                other.security_group_rule_id = other_rule.clone();
            }
        }
        prop_assume!(
            other.security_group_id != ours.security_group_id
                || other.security_group_rule_id != ours.security_group_rule_id
        );
        prop_assert_eq!(ownership::check(&other, record.id.as_str(), None, &settings), Ok(()));

        // WHEN the first rule's record is asked to vouch for it
        let verdict = ownership::check(&other, record.id.as_str(), Some(&decoded), &settings);
        // THEN it refuses
        prop_assert!(verdict.is_err(), "{:?}", verdict);
    }
}

// ---------------------------------------------------------------------------------------
// The group marker
// ---------------------------------------------------------------------------------------

/// A conclusion as the judge records it: `recorded` only after `counted`.
fn conclusion() -> impl Strategy<Value = Conclusion> {
    (
        select(Outcome::ALL.to_vec()),
        0u64..(YEAR_10000 * 1000),
        prop_oneof!["\\PC{0,80}", "\\PC{200,300}", Just(String::new())],
        0u8..3,
    )
        .prop_map(|(outcome, ms, reason, step)| Conclusion {
            outcome,
            concluded_at: UNIX_EPOCH + Duration::from_millis(ms),
            reason,
            counted: step >= 1,
            recorded: step >= 2,
        })
}

/// Firings as the judge records them: an index into the record's detectors and a time.
fn seen_indexes() -> impl Strategy<Value = Vec<(usize, u64)>> {
    vec((0usize..5, 0u64..(YEAR_10000 * 1000)), 0..5)
}

proptest! {
    /// What one judge tick marks is what the next one reads: the record, the firings and
    /// the conclusion (its reason cut to a tag value).
    #[test]
    fn a_marker_round_trips_with_what_was_seen_and_its_conclusion(
        record in record(),
        cli in any::<bool>(),
        seen in seen_indexes(),
        conclusion in proptest::option::of(conclusion()),
    ) {
        // GIVEN a marker with firings and maybe a conclusion
        let mut tags = marker::encode(&record, cli).expect("the list fits");
        let seen: Vec<(Detector, SystemTime)> = seen
            .into_iter()
            .filter_map(|(i, ms)| Some((record.detectors.get(i)?.clone(), UNIX_EPOCH + Duration::from_millis(ms))))
            .collect();
        tags.push(marker::encode_seen(&record, &seen));
        if let Some(c) = &conclusion {
            tags.extend(marker::encode_conclusion(c));
        }
        prop_assert!(tags.iter().all(|(_, v)| v.len() <= MAX_TAG_VALUE), "{:?}", tags);

        // WHEN the next tick reads the group
        let m = marker::decode(&record.security_group_id, record.account.as_deref(), &tags).expect("decodes");

        // THEN everything survives
        let mut expected = record.clone();
        expected.deadline = record.deadline.min(record.injected_at + MAX_WINDOW);
        prop_assert_eq!(&m.record, &expected);
        prop_assert_eq!(m.watched_by_cli, cli);
        let sorted = |v: &[(Detector, SystemTime)]| {
            let mut v: Vec<(String, SystemTime)> = v.iter().map(|(d, t)| (d.to_string(), *t)).collect();
            v.sort();
            v
        };
        prop_assert_eq!(sorted(&m.seen), sorted(&seen));
        match (&m.conclusion, &conclusion) {
            (None, None) => {}
            (Some(got), Some(c)) => {
                prop_assert_eq!(got.outcome, c.outcome);
                prop_assert_eq!(got.concluded_at, c.concluded_at);
                prop_assert_eq!((got.counted, got.recorded), (c.counted, c.recorded));
                if c.reason.len() <= MAX_TAG_VALUE {
                    prop_assert_eq!(&got.reason, &c.reason);
                } else {
                    // Cut on a character boundary, with a visible ellipsis.
                    prop_assert!(got.reason.len() <= MAX_TAG_VALUE);
                    let kept = got.reason.strip_suffix("...").expect("an ellipsis marks the cut");
                    prop_assert!(c.reason.starts_with(kept));
                    prop_assert!(kept.len() >= MAX_TAG_VALUE - 3 - 3, "cut too short: {} bytes", kept.len());
                }
            }
            (got, want) => prop_assert!(false, "conclusion {:?}, expected {:?}", got, want),
        }
    }

    /// The firings fit in one tag value however many detectors fired, so the write that
    /// also carries the conclusion is never refused by EC2; what is kept reads back as
    /// it was written.
    #[test]
    fn the_seen_tag_always_fits_a_tag_value(
        record in record(),
        names in proptest::collection::btree_set("[a-z0-9]{1,3}", 1..40),
        times in vec(0u64..(YEAR_10000 * 1000), 40),
    ) {
        // GIVEN an experiment with as many short detectors as its tag can list, all fired
        let mut record = record;
        record.detectors = names.into_iter().map(|n| Detector::Alarm { name: n }).collect();
        while detector::format_list(&record.detectors).len() > MAX_TAG_VALUE {
            record.detectors.pop();
        }
        let seen: Vec<(Detector, SystemTime)> = record
            .detectors
            .iter()
            .zip(&times)
            .map(|(d, ms)| (d.clone(), UNIX_EPOCH + Duration::from_millis(*ms)))
            .collect();

        // WHEN the judge marks them
        let (key, value) = marker::encode_seen(&record, &seen);

        // THEN the value fits, and every firing read back is one that was written
        prop_assert!(value.len() <= MAX_TAG_VALUE, "{} characters: {}", value.len(), value);
        let mut tags = marker::encode(&record, false).unwrap();
        tags.push((key, value));
        let m = marker::decode(&record.security_group_id, None, &tags).expect("decodes");
        prop_assert!(!m.seen.is_empty());
        for firing in &m.seen {
            prop_assert!(seen.contains(firing), "{:?} was never seen", firing);
        }
    }

    /// Whatever a group's tags say, its marker describes an experiment in that group,
    /// keeps the port open no longer than the cap, and only ever reports firings of the
    /// experiment's own detectors at times that can be shown.
    #[test]
    fn arbitrary_marker_tags_never_decode_to_another_group_or_past_the_window_cap(
        record in record(),
        cli in any::<bool>(),
        seen in seen_indexes(),
        conclusion in proptest::option::of(conclusion()),
        edits in vec(edit(), 0..6),
        group in prop_oneof![4 => group_id(), 1 => "\\PC{0,20}"],
        account in account(),
    ) {
        // GIVEN a marker, then edited by whoever may tag the group
        let mut tags = marker::encode(&record, cli).expect("the list fits");
        let seen: Vec<(Detector, SystemTime)> = seen
            .into_iter()
            .filter_map(|(i, ms)| Some((record.detectors.get(i)?.clone(), UNIX_EPOCH + Duration::from_millis(ms))))
            .collect();
        tags.push(marker::encode_seen(&record, &seen));
        if let Some(c) = &conclusion {
            tags.extend(marker::encode_conclusion(c));
        }
        for e in &edits {
            apply(&mut tags, e);
        }
        let first = |key: &str| tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());

        // WHEN the judge reads the group it found the marker on (it must not panic)
        let Ok(m) = marker::decode(&group, account.as_deref(), &tags) else { return Ok(()) };

        // THEN the record is of that group and the rule the marker names
        prop_assert_eq!(&m.record.security_group_id, &group);
        prop_assert_eq!(&m.record.account, &account);
        prop_assert_eq!(Some(m.record.security_group_rule_id.clone()), first(marker::RULE_ID));
        prop_assert_eq!(Some(m.record.id.to_string()), first(EXPERIMENT_ID));
        // AND the change is the one the marker names
        let change = first(marker::CHANGE).unwrap_or_default();
        let words: Vec<&str> = change.split_whitespace().collect();
        prop_assert_eq!(words.len(), 3);
        prop_assert_eq!(Ok(m.record.protocol), words[0].parse::<Protocol>());
        prop_assert_eq!(words[1].parse::<PortRange>().ok(), Some(m.record.ports));
        prop_assert_eq!(&m.record.cidr, words[2]);
        // AND the window is within the cap
        within_the_cap(&m.record)?;
        // AND every firing is of one of its detectors, at a time RFC 3339 can show
        for (d, at) in &m.seen {
            prop_assert!(m.record.detectors.contains(d));
            let since_epoch = at.duration_since(UNIX_EPOCH).unwrap();
            prop_assert!(since_epoch.as_secs() < YEAR_10000, "a firing at {since_epoch:?} cannot be shown");
            let _ = rfc3339_millis(*at);
        }
        if let Some(c) = &m.conclusion {
            prop_assert_eq!(Some(c.outcome.as_str().to_string()), first(marker::OUTCOME));
            prop_assert!(!c.recorded || c.counted);
            let _ = rfc3339_millis(c.concluded_at);
        }
        prop_assert_eq!(m.watched_by_cli, first(marker::WATCHER).as_deref() == Some("cli"));
    }
}

// ---------------------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------------------

/// Any `SystemTime` the platform can hold, far before and far after the epoch.
fn any_time() -> impl Strategy<Value = SystemTime> {
    let far = 1u64 << 40;
    prop_oneof![
        (0..YEAR_10000, 0u32..1_000_000_000).prop_map(|(s, n)| UNIX_EPOCH + Duration::new(s, n)),
        (YEAR_10000..far, 0u32..1_000_000_000).prop_map(|(s, n)| UNIX_EPOCH + Duration::new(s, n)),
        (0..far, 0u32..1_000_000_000).prop_map(|(s, n)| UNIX_EPOCH - Duration::new(s, n)),
        Just(UNIX_EPOCH + Duration::from_millis(u64::MAX)),
        Just(UNIX_EPOCH + Duration::new(YEAR_10000 - 1, 999_999_999)),
        Just(UNIX_EPOCH + Duration::from_secs(YEAR_10000)),
        Just(UNIX_EPOCH - Duration::from_nanos(1)),
    ]
}

proptest! {
    /// Formatting is total: a damaged tag can put any time into a record, and a log line
    /// or a message about it must never take the judge down.
    #[test]
    fn formatting_any_time_never_panics(t in any_time()) {
        let (secs, millis) = (rfc3339(t), rfc3339_millis(t));
        prop_assert!(secs.ends_with('Z') && millis.ends_with('Z'));
        // What is printed always parses back.
        prop_assert!(parse_rfc3339(&secs).is_some(), "{}", secs);
        prop_assert!(parse_rfc3339(&millis).is_some(), "{}", millis);
    }

    /// Every time RFC 3339 can show survives the tag round trip at the precision kept.
    #[test]
    fn representable_times_round_trip_through_rfc3339(secs in 0..YEAR_10000, nanos in 0u32..1_000_000_000) {
        let t = UNIX_EPOCH + Duration::new(secs, nanos);
        prop_assert_eq!(parse_rfc3339(&rfc3339(UNIX_EPOCH + Duration::from_secs(secs))), Some(UNIX_EPOCH + Duration::from_secs(secs)));
        prop_assert_eq!(parse_rfc3339(&rfc3339_millis(t)), Some(whole_millis(t)));
    }

    /// Parsing never panics, and whatever it accepts is a time it can print again.
    #[test]
    fn parsing_arbitrary_timestamps_yields_only_representable_times(
        s in prop_oneof![timestamp_like(), "\\PC{0,40}", "[0-9T:.Z+-]{0,40}"],
    ) {
        if let Some(t) = parse_rfc3339(&s) {
            let since_epoch = t.duration_since(UNIX_EPOCH);
            prop_assert!(since_epoch.is_ok(), "{} parsed to before the epoch", s);
            prop_assert!(since_epoch.unwrap().as_secs() < YEAR_10000, "{} parsed past year 9999", s);
            prop_assert!(parse_rfc3339(&rfc3339_millis(t)).is_some());
        }
    }

    /// Durations from events and the environment never panic, however large.
    #[test]
    fn parsing_arbitrary_durations_never_panics(
        s in prop_oneof!["[0-9]{1,30}(ns|us|ms|s|m|h|d|w|M|y)( ?[0-9]{1,30}(s|m|h))?", "\\PC{0,30}"],
    ) {
        let _ = parse_duration(&s);
    }
}
