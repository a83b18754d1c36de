//! End-to-end: the `chaoslingr` binary against a private AWS API emulator per test, the
//! way a user runs it. Each test starts from a clean, freshly seeded emulator.

use std::time::{Duration, Instant, SystemTime};

use chaoslingr_e2e::*;
use serde_json::Value;

mod accounts;
mod crash;
mod fleet;
mod iam;
mod lab;
mod lambdas;
mod nacl;
mod report;
mod soak;

const LIMIT: Duration = Duration::from_secs(120);

/// The three groups of the original ChaoSlingr acceptance test, each with one existing rule.
struct Acceptance {
    emu: Emulator,
    opted_in: String,
    opted_out: String,
    untagged: String,
}

async fn acceptance() -> Acceptance {
    let emu = Emulator::start().await;
    let vpc = create_vpc(&emu).await;
    let opted_in = create_group(&emu, &vpc, "tag-true", Some("true")).await;
    let opted_out = create_group(&emu, &vpc, "tag-false", Some("false")).await;
    let untagged = create_group(&emu, &vpc, "no-tag", None).await;
    for g in [&opted_in, &opted_out, &untagged] {
        add_ingress(&emu, g, "tcp", 443, 443, "0.0.0.0/0").await;
    }
    Acceptance { emu, opted_in, opted_out, untagged }
}

async fn all_rules(emu: &Emulator, groups: &[&String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for g in groups {
        out.push(ingress_of(emu, g).await);
    }
    out
}

fn seconds_since_epoch(s: &str) -> f64 {
    let t = chaoslingr_domain_time(s);
    t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs_f64()
}

/// RFC 3339 with milliseconds (`2026-11-23T18:47:00.123Z`) to `SystemTime`.
fn chaoslingr_domain_time(s: &str) -> SystemTime {
    let (date, time) = s.trim_end_matches('Z').split_once('T').expect("RFC 3339");
    let d: Vec<i64> = date.split('-').map(|p| p.parse().unwrap()).collect();
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms.split(':').map(|p| p.parse().unwrap()).collect();
    // days from civil (Howard Hinnant's algorithm)
    let (y, m) = if d[1] <= 2 { (d[0] - 1, d[1] + 9) } else { (d[0], d[1] - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + t[0] * 3600 + t[1] * 60 + t[2];
    let millis: u64 = format!("{frac:0<3}")[..3].parse().unwrap();
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs as u64) + Duration::from_millis(millis)
}

fn assert_outcome_schema(v: &Value) {
    for key in [
        "schema",
        "experiment_id",
        "experiment",
        "account",
        "region",
        "security_group_id",
        "protocol",
        "from_port",
        "to_port",
        "cidr",
        "injected_at",
        "concluded_at",
        "outcome",
        "detections",
        "reverted",
    ] {
        assert!(v.get(key).is_some(), "outcome object lacks `{key}`: {v}");
    }
    assert_eq!(v["schema"], "chaoslingr.outcome/v1");
    assert_eq!(v["experiment"], "port-change");
    for d in v["detections"].as_array().expect("detections array") {
        for key in ["detector", "detected", "seconds_to_detect", "evidence"] {
            assert!(d.get(key).is_some(), "detection lacks `{key}`: {d}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_opted_in_group_is_ever_changed() {
    // GIVEN the original acceptance case: tag `true`, tag `false`, no tag
    let a = acceptance().await;
    let others_before = all_rules(&a.emu, &[&a.opted_out, &a.untagged]).await;
    let opted_in_before = ingress_of(&a.emu, &a.opted_in).await;

    // WHEN `targets` lists them THEN only the opted-in group is eligible; the untagged
    // one is not even listed
    let targets = run_cli(&a.emu, &["targets", "--json"], &[], LIMIT).await;
    assert_eq!(targets.status, 0, "{}", targets.stderr);
    let list = targets.json();
    let list = list.as_array().unwrap();
    let eligible: Vec<&str> =
        list.iter().filter(|t| t["eligible"] == true).map(|t| t["security_group_id"].as_str().unwrap()).collect();
    assert_eq!(eligible, vec![a.opted_in.as_str()]);
    assert!(list.iter().any(|t| t["security_group_id"] == a.opted_out.as_str() && t["reason"] == "not opted in"));
    assert!(!list.iter().any(|t| t["security_group_id"] == a.untagged.as_str()));

    // WHEN experiments run, several times
    for _ in 0..2 {
        let child = {
            let mut c = a.emu.cli();
            c.args(["run", "--window", "10s", "--poll-interval", "1s", "--json"]);
            c.spawn().unwrap()
        };
        // THEN while it runs, the rule is on the opted-in group and nothing else changed
        let rule = wait_for_experiment_rule(&a.emu, Duration::from_secs(30)).await;
        assert_eq!(rule.group_id(), Some(a.opted_in.as_str()));
        assert_eq!(all_rules(&a.emu, &[&a.opted_out, &a.untagged]).await, others_before);
        let out = finish(child, LIMIT).await;
        assert_eq!(out.status, 3, "undetected exits 3: {}", out.stderr);
        assert_eq!(out.json()["security_group_id"], a.opted_in.as_str());
    }
    // AND afterwards every group is exactly as before
    assert_eq!(all_rules(&a.emu, &[&a.opted_out, &a.untagged]).await, others_before);
    assert_eq!(ingress_of(&a.emu, &a.opted_in).await, opted_in_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undetected_run_is_reverted_counted_and_published() {
    // GIVEN an opted-in group with existing rules and a topic with an SQS inbox
    let emu = Emulator::start().await;
    let vpc = create_vpc(&emu).await;
    let g = create_group(&emu, &vpc, "web", Some("TRUE")).await;
    add_ingress(&emu, &g, "tcp", 10_000, 10_100, "10.0.0.0/8").await;
    add_ingress(&emu, &g, "udp", 20_000, 30_000, "10.1.0.0/16").await;
    let before = ingress_of(&emu, &g).await;
    let (topic, queue) = topic_with_inbox(&emu).await;

    // WHEN a run with a short window and no detector completes
    let started = Instant::now();
    let out = run_cli(
        &emu,
        &["run", "--window", "10s", "--poll-interval", "1s", "--topic-arn", &topic, "--json", "--protocols-hint"],
        &[],
        LIMIT,
    )
    .await;
    // (an unknown flag is bad input and changes nothing)
    assert_eq!(out.status, 2, "{}", out.stderr);
    assert_eq!(ingress_of(&emu, &g).await, before);
    let out = run_cli(
        &emu,
        &["run", "--window", "10s", "--poll-interval", "1s", "--topic-arn", &topic, "--json"],
        &[("CHAOSLINGR_PROTOCOLS", "udp")],
        LIMIT,
    )
    .await;

    // THEN it ends undetected (exit 3) after the window, reverted
    assert_eq!(out.status, 3, "stdout: {}\nstderr: {}", out.stdout, out.stderr);
    assert!(started.elapsed() >= Duration::from_secs(9));
    let v = out.json();
    assert_outcome_schema(&v);
    assert_eq!(v["outcome"], "undetected");
    assert_eq!(v["reverted"], true);
    assert_eq!(v["protocol"], "udp");
    assert!(
        v["to_port"].as_u64().unwrap() < 20_000 || v["from_port"].as_u64().unwrap() > 30_000,
        "overlaps an existing rule: {v}"
    );
    assert_eq!(v["region"], REGION);
    let (from, to) = (v["from_port"].as_u64().unwrap(), v["to_port"].as_u64().unwrap());
    assert!((10_000..=65_000).contains(&from) && from <= to && to - from < 6, "{from}-{to}");
    assert_eq!(ingress_of(&emu, &g).await, before, "the group is exactly as before");
    assert!(experiment_rules(&emu).await.is_empty());

    // AND the metrics are in CloudWatch
    let metrics = emu.cloudwatch().list_metrics().namespace("ChaoSlingr").send().await.unwrap();
    let names: Vec<&str> = metrics.metrics().iter().filter_map(|m| m.metric_name()).collect();
    for expected in ["Experiments", "Undetected", "Detected", "RevertFailures"] {
        assert!(names.contains(&expected), "{expected} missing from {names:?}");
    }
    let now = aws_smithy_types::DateTime::from(SystemTime::now() + Duration::from_secs(60));
    let hour_ago = aws_smithy_types::DateTime::from(SystemTime::now() - Duration::from_secs(3600));
    let stat = |name: &'static str| {
        emu.cloudwatch()
            .get_metric_statistics()
            .namespace("ChaoSlingr")
            .metric_name(name)
            .dimensions(aws_sdk_cloudwatch::types::Dimension::builder().name("Experiment").value("port-change").build())
            .start_time(hour_ago)
            .end_time(now)
            .period(3600)
            .statistics(aws_sdk_cloudwatch::types::Statistic::Sum)
            .send()
    };
    let sum = |o: aws_sdk_cloudwatch::operation::get_metric_statistics::GetMetricStatisticsOutput| {
        o.datapoints().iter().filter_map(|d| d.sum()).sum::<f64>()
    };
    assert_eq!(sum(stat("Undetected").await.unwrap()), 1.0);
    assert_eq!(sum(stat("Experiments").await.unwrap()), 1.0);
    assert_eq!(sum(stat("RevertFailures").await.unwrap()), 0.0);

    // AND one SNS message arrived through the SQS subscription, with the schema fields
    // and the filterable attributes
    let messages = receive_all(&emu, &queue).await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    let (body, attrs) = &messages[0];
    let m: Value = serde_json::from_str(body).expect("message is JSON");
    assert_outcome_schema(&m);
    assert_eq!(m["experiment_id"], v["experiment_id"]);
    assert_eq!(m["outcome"], "undetected");
    assert!(attrs.contains(&("outcome".to_string(), "undetected".to_string())), "{attrs:?}");
    assert!(attrs.contains(&("experiment".to_string(), "port-change".to_string())), "{attrs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_revoked_mid_watch_is_remediated() {
    // GIVEN one opted-in group
    let emu = Emulator::start().await;
    let vpc = create_vpc(&emu).await;
    let g = create_group(&emu, &vpc, "app", Some("true")).await;
    let mut c = emu.cli();
    c.args(["run", "--window", "2m", "--poll-interval", "1s", "--json"]);
    let started = Instant::now();
    let child = c.spawn().unwrap();

    // WHEN an auto-remediation revokes the injected rule mid-watch
    let rule = wait_for_experiment_rule(&emu, Duration::from_secs(30)).await;
    let_time_pass(
        "the rule stays open a while before it is revoked: time-to-detect must be at least 1s",
        Duration::from_secs(2),
    )
    .await;
    emu.ec2()
        .revoke_security_group_ingress()
        .group_id(&g)
        .security_group_rule_ids(rule.security_group_rule_id().unwrap())
        .send()
        .await
        .unwrap();

    // THEN the run ends `remediated` (exit 0) long before the window
    let out = finish(child, LIMIT).await;
    assert_eq!(out.status, 0, "stderr: {}", out.stderr);
    assert!(started.elapsed() < Duration::from_secs(60));
    let v = out.json();
    assert_eq!(v["outcome"], "remediated");
    assert_eq!(v["reverted"], true);
    let remediation = v["detections"].as_array().unwrap().iter().find(|d| d["detector"] == "remediation").unwrap();
    assert_eq!(remediation["detected"], true);
    let secs = remediation["seconds_to_detect"].as_f64().unwrap();
    assert!((1.0..30.0).contains(&secs), "remediation seen after {secs}s");
    assert!(experiment_rules(&emu).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_that_fires_mid_watch_is_detected_with_its_own_timestamp() {
    // GIVEN an opted-in group and a firewall alarm in OK
    let emu = Emulator::start().await;
    let vpc = create_vpc(&emu).await;
    create_group(&emu, &vpc, "edge", Some("true")).await;
    let cw = emu.cloudwatch();
    cw.put_metric_alarm()
        .alarm_name("firewall-new-port")
        .namespace("Firewall")
        .metric_name("NewOpenPorts")
        .statistic(aws_sdk_cloudwatch::types::Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(0.0)
        .comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .unwrap();
    cw.set_alarm_state()
        .alarm_name("firewall-new-port")
        .state_value(aws_sdk_cloudwatch::types::StateValue::Ok)
        .state_reason("baseline")
        .send()
        .await
        .unwrap();
    let mut c = emu.cli();
    c.args(["run", "--detector", "alarm:firewall-new-port", "--window", "2m", "--poll-interval", "1s", "--json"]);
    let child = c.spawn().unwrap();

    // WHEN the firewall notices the port three seconds after it opened
    wait_for_experiment_rule(&emu, Duration::from_secs(30)).await;
    let_time_pass("the firewall notices the port three seconds after it opened", Duration::from_secs(3)).await;
    let fired_at = SystemTime::now();
    cw.set_alarm_state()
        .alarm_name("firewall-new-port")
        .state_value(aws_sdk_cloudwatch::types::StateValue::Alarm)
        .state_reason("new world-open port")
        .send()
        .await
        .unwrap();

    // THEN the run ends `detected` (exit 0) with a time-to-detect taken from the alarm's
    // own StateUpdatedTimestamp: the moment we fired it, not the next poll
    let out = finish(child, LIMIT).await;
    assert_eq!(out.status, 0, "stderr: {}", out.stderr);
    let v = out.json();
    assert_outcome_schema(&v);
    assert_eq!(v["outcome"], "detected");
    let d = v["detections"].as_array().unwrap().iter().find(|d| d["detector"] == "alarm:firewall-new-port").unwrap();
    assert_eq!(d["detected"], true);
    let secs = d["seconds_to_detect"].as_f64().unwrap();
    let injected = seconds_since_epoch(v["injected_at"].as_str().unwrap());
    let expected = fired_at.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs_f64() - injected;
    assert!(
        secs >= 2.0 && (secs - expected).abs() < 1.0,
        "seconds_to_detect {secs}, alarm set {expected:.3}s after injection"
    );
    assert!(experiment_rules(&emu).await.is_empty());

    // AND a second run aborts: the alarm is already in ALARM, so it could not show a new
    // detection, and nothing is written
    let out =
        run_cli(&emu, &["run", "--detector", "alarm:firewall-new-port", "--window", "10s", "--json"], &[], LIMIT).await;
    assert_eq!(out.status, 1);
    let v = out.json();
    assert_eq!(v["outcome"], "aborted");
    assert!(v["reason"].as_str().unwrap().contains("alarm:firewall-new-port is already in ALARM"), "{v}");
    assert!(experiment_rules(&emu).await.is_empty());
}

async fn interrupted_mid_watch_leaves_no_rule(sig: &str) {
    // GIVEN a run watching a long window
    let emu = Emulator::start().await;
    let vpc = create_vpc(&emu).await;
    let g = create_group(&emu, &vpc, "db", Some("true")).await;
    let before = ingress_of(&emu, &g).await;
    let mut c = emu.cli();
    c.args(["run", "--window", "10m", "--poll-interval", "1s", "--json"]);
    let child = c.spawn().unwrap();
    // (It injects, marks its group, then watches.)
    poll_until("the run to mark its group", Duration::from_secs(30), || async {
        let tags = group_tags(&emu, &g).await;
        if tags.iter().any(|(k, _)| k == EXPERIMENT_TAG) {
            Ok(())
        } else {
            Err(tags)
        }
    })
    .await;

    // WHEN the user presses Ctrl-C (or the platform sends SIGTERM)
    signal(&child, sig);

    // THEN it reverts before exiting: exit 130, outcome aborted, no rule left
    let out = finish(child, Duration::from_secs(60)).await;
    assert_eq!(out.status, 130, "stderr: {}", out.stderr);
    let v = out.json();
    assert_eq!(v["outcome"], "aborted");
    assert_eq!(v["reverted"], true);
    assert!(out.stderr.contains("reverting the injected rule"), "{}", out.stderr);
    assert!(experiment_rules(&emu).await.is_empty());
    assert_eq!(ingress_of(&emu, &g).await, before);
    // AND the group marker the run wrote is gone too
    let keys: Vec<String> = group_tags(&emu, &g).await.into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, vec![OPT_IN.to_string()], "marker left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_mid_watch_leaves_no_rule() {
    interrupted_mid_watch_leaves_no_rule("INT").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_up_terminal_mid_watch_leaves_no_rule() {
    // An SSH session that drops sends SIGHUP.
    interrupted_mid_watch_leaves_no_rule("HUP").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_watch_leaves_no_rule() {
    interrupted_mid_watch_leaves_no_rule("TERM").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_targets_and_bad_configuration_change_nothing() {
    // GIVEN the acceptance groups
    let a = acceptance().await;
    let groups = [&a.opted_in, &a.opted_out, &a.untagged];
    let before = all_rules(&a.emu, &groups).await;

    // WHEN targeting a group that is not opted in, one without the tag, one that does
    // not exist, or a malformed id; or with a bad setting
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (vec!["run", "--target", &a.opted_out], vec![], "is not opted in"),
        (vec!["run", "--target", &a.untagged], vec![], "is not opted in"),
        (vec!["run", "--target", "sg-0123456789abcdef0"], vec![], "is not opted in"),
        (vec!["run", "--target", "web-servers"], vec![], "--target=`web-servers` is invalid"),
        (vec!["run", "--window", "forever"], vec![], "--window=`forever` is invalid"),
        (vec!["run", "--detector", "guardduty:x"], vec![], "--detector=`guardduty:x` is invalid"),
        (vec!["run"], vec![("CHAOSLINGR_PORT_RANGE", "70000-80000")], "CHAOSLINGR_PORT_RANGE=`70000-80000` is invalid"),
        (vec!["run"], vec![("CHAOSLINGR_TOPIC_ARN", "outcomes")], "CHAOSLINGR_TOPIC_ARN=`outcomes` is invalid"),
        (vec!["revert", "not-an-id"], vec![], "is not an experiment id"),
    ];
    for (args, env, message) in cases {
        let out = run_cli(&a.emu, &args, &env, LIMIT).await;
        // THEN each is refused as bad input (exit 2) with a message saying what is wrong
        assert_eq!(out.status, 2, "{args:?} {env:?}: {}", out.stderr);
        assert!(out.stderr.contains(message), "{args:?}: expected `{message}` in: {}", out.stderr);
        // AND nothing changed
        assert_eq!(all_rules(&a.emu, &groups).await, before, "{args:?} changed a group");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_changes_nothing() {
    // GIVEN the acceptance groups
    let a = acceptance().await;
    let groups = [&a.opted_in, &a.opted_out, &a.untagged];
    let before = all_rules(&a.emu, &groups).await;

    // WHEN running with --dry-run
    let out = run_cli(&a.emu, &["run", "--dry-run", "--json"], &[], LIMIT).await;

    // THEN it shows the plan, EC2 says the change would be allowed, and nothing changed
    assert_eq!(out.status, 0, "{}", out.stderr);
    let v = out.json();
    assert_eq!(v["plan"]["security_group_id"], a.opted_in.as_str());
    assert_eq!(v["permission_check"], "would-succeed");
    assert_eq!(all_rules(&a.emu, &groups).await, before);
    assert!(experiment_rules(&a.emu).await.is_empty());

    // AND the same through the environment
    let out = run_cli(&a.emu, &["run"], &[("CHAOSLINGR_DRY_RUN", "true")], LIMIT).await;
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(out.stdout.contains("Dry run: nothing was changed."), "{}", out.stdout);
    assert_eq!(all_rules(&a.emu, &groups).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revert_all_cleans_up_every_planted_experiment() {
    // GIVEN three experiments left behind (one with a damaged tag) and a legitimate rule
    let emu = Emulator::start().await;
    let vpc = create_vpc(&emu).await;
    let g1 = create_group(&emu, &vpc, "one", Some("true")).await;
    let g2 = create_group(&emu, &vpc, "two", Some("true")).await;
    add_ingress(&emu, &g1, "tcp", 443, 443, "0.0.0.0/0").await;
    let legit = ingress_of(&emu, &g1).await;
    let tags = |id: &'static str, deadline: &'static str| {
        vec![
            (EXPERIMENT_TAG, id),
            ("chaoslingr:injected-at", "2026-01-01T00:00:00.000Z"),
            ("chaoslingr:deadline", deadline),
            ("chaoslingr:detectors", ""),
        ]
    };
    plant_experiment(&emu, &g1, 20_001, &tags("cs-20260101T000000Z-000001", "2026-01-01T00:15:00Z")).await;
    plant_experiment(&emu, &g2, 20_002, &tags("cs-20260101T000000Z-000002", "2026-01-01T00:15:00Z")).await;
    plant_experiment(&emu, &g2, 20_003, &tags("cs-20260101T000000Z-000003", "not-a-time")).await;

    // WHEN listing THEN status shows all three, overdue, the damaged one with its error
    let out = run_cli(&emu, &["status", "--json"], &[], LIMIT).await;
    assert_eq!(out.status, 0, "{}", out.stderr);
    let list = out.json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert!(list.iter().all(|e| e["overdue"] == true));
    assert!(list.iter().any(|e| e["error"].as_str().is_some_and(|s| s.contains("chaoslingr:deadline"))));

    // WHEN reverting one by id THEN only that one goes
    let out = run_cli(&emu, &["revert", "cs-20260101T000000Z-000002"], &[], LIMIT).await;
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(experiment_rules(&emu).await.len(), 2);

    // WHEN the emergency stop runs THEN every experiment rule is gone and the legitimate
    // rule is untouched
    let out = run_cli(&emu, &["revert", "--all"], &[], LIMIT).await;
    assert_eq!(out.status, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("2 reverted, 0 failed, 0 not ours"), "{}", out.stdout);
    assert!(experiment_rules(&emu).await.is_empty());
    assert_eq!(ingress_of(&emu, &g1).await, legit);

    // AND running it again is a successful no-op
    let out = run_cli(&emu, &["revert", "--all"], &[], LIMIT).await;
    assert_eq!(out.status, 0);
    assert!(out.stdout.contains("Nothing to revert"), "{}", out.stdout);
    let out = run_cli(&emu, &["revert", "cs-20260101T000000Z-000001"], &[], LIMIT).await;
    assert_eq!(out.status, 0);
    assert!(out.stdout.contains("Nothing to revert"), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_active_experiment_blocks_a_second_one() {
    // GIVEN one experiment already active (the default maximum is 1)
    let emu = Emulator::start().await;
    let vpc = create_vpc(&emu).await;
    let g = create_group(&emu, &vpc, "one", Some("true")).await;
    create_group(&emu, &vpc, "two", Some("true")).await;
    plant_experiment(
        &emu,
        &g,
        30_000,
        &[
            (EXPERIMENT_TAG, "cs-20990101T000000Z-00000a"),
            ("chaoslingr:injected-at", "2099-01-01T00:00:00.000Z"),
            ("chaoslingr:deadline", "2099-01-01T00:15:00Z"),
            ("chaoslingr:detectors", ""),
        ],
    )
    .await;

    // WHEN another run starts THEN pre-flight aborts it and nothing is written
    let out = run_cli(&emu, &["run", "--window", "10s", "--json"], &[], LIMIT).await;
    assert_eq!(out.status, 1, "{}", out.stderr);
    let v = out.json();
    assert_eq!(v["outcome"], "aborted");
    assert!(v["reason"].as_str().unwrap().contains("maximum is 1"), "{v}");
    assert_eq!(experiment_rules(&emu).await.len(), 1);

    // AND the kill switch aborts too
    let out =
        run_cli(&emu, &["run", "--json"], &[("CHAOSLINGR_ENABLED", "false"), ("CHAOSLINGR_MAX_ACTIVE", "5")], LIMIT)
            .await;
    assert_eq!(out.status, 1);
    assert!(out.json()["reason"].as_str().unwrap().contains("kill switch"));
    assert_eq!(experiment_rules(&emu).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twelve_hundred_opted_in_groups_are_all_reachable() {
    // GIVEN 1,200 opted-in groups (and a few that are not)
    let emu = Emulator::start().await;
    let vpc = create_vpc(&emu).await;
    let mut tasks = tokio::task::JoinSet::new();
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(16));
    let ec2 = emu.ec2();
    for i in 0..1_210 {
        let ec2 = ec2.clone();
        let vpc = vpc.clone();
        let sem = sem.clone();
        tasks.spawn(async move {
            let _permit = sem.acquire().await.unwrap();
            let value = if i < 1_200 { "true" } else { "no" };
            ec2.create_security_group()
                .group_name(format!("fleet-{i:04}"))
                .description("fleet")
                .vpc_id(vpc)
                .tag_specifications(
                    aws_sdk_ec2::types::TagSpecification::builder()
                        .resource_type(aws_sdk_ec2::types::ResourceType::SecurityGroup)
                        .tags(aws_sdk_ec2::types::Tag::builder().key(OPT_IN).value(value).build())
                        .build(),
                )
                .send()
                .await
                .unwrap()
                .group_id()
                .unwrap()
                .to_string()
        });
    }
    let mut created = Vec::new();
    while let Some(id) = tasks.join_next().await {
        created.push(id.unwrap());
    }
    assert_eq!(created.len(), 1_210);

    // WHEN listing targets THEN every one of the 1,200 is listed and eligible
    let out = run_cli(&emu, &["targets", "--json"], &[], LIMIT).await;
    assert_eq!(out.status, 0, "{}", out.stderr);
    let list = out.json();
    let eligible: std::collections::HashSet<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["eligible"] == true)
        .map(|t| t["security_group_id"].as_str().unwrap())
        .collect();
    assert_eq!(eligible.len(), 1_200);

    // AND planning picks among them (selection is uniform over exactly this list; the
    // domain tests prove uniformity)
    let mut picked = std::collections::HashSet::new();
    for _ in 0..3 {
        let out = run_cli(&emu, &["run", "--dry-run", "--json"], &[], LIMIT).await;
        assert_eq!(out.status, 0, "{}", out.stderr);
        let id = out.json()["plan"]["security_group_id"].as_str().unwrap().to_string();
        assert!(eligible.contains(id.as_str()), "{id} is not an eligible group");
        picked.insert(id);
    }
    assert!(picked.len() >= 2, "three random picks among 1,200 should differ: {picked:?}");
}

async fn import_finding(emu: &Emulator, id: &str, group: &str, created: SystemTime) {
    use aws_sdk_securityhub::types::{AwsSecurityFinding, Resource, Severity, SeverityLabel};
    let at = aws_smithy_types::DateTime::from(created)
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .expect("format timestamp");
    let finding = AwsSecurityFinding::builder()
        .schema_version("2018-10-08")
        .id(id)
        .product_arn(format!("arn:aws:securityhub:{REGION}:123456789012:product/123456789012/default"))
        .generator_id("firewall-manager/open-port")
        .aws_account_id("123456789012")
        .types("Software and Configuration Checks/Industry and Regulatory Standards")
        .created_at(&at)
        .updated_at(&at)
        .severity(Severity::builder().label(SeverityLabel::High).build())
        .title("Security group allows unrestricted ingress")
        .description("A world-open port appeared")
        .resources(
            Resource::builder()
                .r#type("AwsEc2SecurityGroup")
                .id(format!("arn:aws:ec2:{REGION}:123456789012:security-group/{group}"))
                .build(),
        )
        .build();
    let client = aws_sdk_securityhub::Client::new(&emu.config);
    let out = client.batch_import_findings().findings(finding).send().await.expect("import finding");
    assert_eq!(out.failed_count(), Some(0), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_security_hub_finding_on_the_group_is_detected_and_others_are_not() {
    // GIVEN an opted-in group, and findings that must not count: an old one on this group
    // and a fresh one on another group (the emulator ignores GetFindings filters, so the
    // detector's own checks are what keeps them out)
    let emu = Emulator::start().await;
    let vpc = create_vpc(&emu).await;
    let g = create_group(&emu, &vpc, "target", Some("true")).await;
    let other = create_group(&emu, &vpc, "other", None).await;
    import_finding(&emu, "old-finding", &g, SystemTime::now() - Duration::from_secs(3600)).await;
    let mut c = emu.cli();
    c.args(["run", "--target", &g, "--detector", "securityhub", "--window", "2m", "--poll-interval", "1s", "--json"]);
    let child = c.spawn().unwrap();
    wait_for_experiment_rule(&emu, Duration::from_secs(30)).await;
    import_finding(&emu, "other-group", &other, SystemTime::now()).await;
    let_time_pass(
        "the finding about this group comes three seconds after injection, the run watching the other one meanwhile",
        Duration::from_secs(3),
    )
    .await;

    // WHEN the finding about this group arrives
    let created = SystemTime::now();
    import_finding(&emu, "this-group", &g, created).await;

    // THEN the run is detected with the finding's own CreatedAt
    let out = finish(child, LIMIT).await;
    assert_eq!(out.status, 0, "stdout: {}\nstderr: {}", out.stdout, out.stderr);
    let v = out.json();
    assert_eq!(v["outcome"], "detected");
    let d = v["detections"].as_array().unwrap().iter().find(|d| d["detector"] == "securityhub").unwrap();
    let secs = d["seconds_to_detect"].as_f64().unwrap();
    let injected = seconds_since_epoch(v["injected_at"].as_str().unwrap());
    let expected = created.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs_f64() - injected;
    assert!(
        secs >= 2.0 && (secs - expected).abs() < 1.0,
        "seconds_to_detect {secs}, finding created {expected:.3}s after injection"
    );
    assert!(experiment_rules(&emu).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn judge_closes_an_experiment_whose_watcher_is_gone() {
    // GIVEN an experiment rule left by a run that died, its deadline long past
    let emu = Emulator::start().await;
    let vpc = create_vpc(&emu).await;
    let g = create_group(&emu, &vpc, "web", Some("true")).await;
    let at = |ago: u64| {
        let t = SystemTime::now() - Duration::from_secs(ago);
        aws_smithy_types::DateTime::from(t).fmt(aws_smithy_types::date_time::Format::DateTime).unwrap()
    };
    let (injected, deadline) = (at(1200), at(600));
    plant_experiment(
        &emu,
        &g,
        40_001,
        &[
            (EXPERIMENT_TAG, "cs-20261126T090000Z-0dead0"),
            ("chaoslingr:injected-at", &injected),
            ("chaoslingr:deadline", &deadline),
            ("chaoslingr:detectors", ""),
        ],
    )
    .await;

    // WHEN someone runs one judge tick from the CLI
    let out = run_cli(&emu, &["judge", "--json"], &[], LIMIT).await;

    // THEN it was concluded and reverted, and the group is as before
    assert_eq!(out.status, 0, "{}", out.stderr);
    let v = out.json();
    assert_eq!(v["concluded"][0]["experiment_id"], "cs-20261126T090000Z-0dead0", "{v}");
    assert_eq!(v["concluded"][0]["reverted"], true);
    assert!(experiment_rules(&emu).await.is_empty());
    assert!(ingress_of(&emu, &g).await.is_empty());

    // AND a second tick has nothing to do
    let out = run_cli(&emu, &["judge"], &[], LIMIT).await;
    assert_eq!(out.status, 0);
    assert!(out.stdout.contains("No active experiments."), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_tagged_as_experiments_but_not_ours_are_listed_never_revoked_unless_forced() {
    // GIVEN an opted-in group with an SSH rule from the office that someone tagged with an
    // experiment id, and a world-open rule tagged so whose description names nothing
    let emu = Emulator::start().await;
    let vpc = create_vpc(&emu).await;
    let g = create_group(&emu, &vpc, "bastion", Some("true")).await;
    let tags = |id: &'static str| {
        vec![
            (EXPERIMENT_TAG, id),
            ("chaoslingr:injected-at", "2026-01-01T00:00:00.000Z"),
            ("chaoslingr:deadline", "2026-01-01T00:15:00Z"),
            ("chaoslingr:detectors", ""),
        ]
    };
    let ssh = plant_rule(&emu, &g, 22, "10.0.0.0/8", "ssh from the office", &tags("cs-20260101T000000Z-00000a")).await;
    let game = plant_rule(&emu, &g, 27_015, "0.0.0.0/0", "game server", &tags("cs-20260101T000000Z-00000b")).await;
    let before = ingress_of(&emu, &g).await;

    // WHEN a person lists, runs the emergency stop, and a judge tick runs
    let status = run_cli(&emu, &["status"], &[], LIMIT).await;
    let all = run_cli(&emu, &["revert", "--all", "--json"], &[], LIMIT).await;
    let judge = run_cli(&emu, &["judge", "--json"], &[], LIMIT).await;

    // THEN both are shown as not ours, neither is revoked, and nothing failed
    assert_eq!(status.status, 0, "{}", status.stderr);
    assert_eq!(status.stdout.matches("NOT OURS").count(), 2, "{}", status.stdout);
    assert_eq!(all.status, 0, "{}", all.stderr);
    let reports = all.json();
    assert_eq!(reports.as_array().unwrap().len(), 2, "{reports}");
    assert!(reports.as_array().unwrap().iter().all(|r| r["not_ours"] == true && r["reverted"] == false));
    assert_eq!(judge.status, 0, "{}", judge.stderr);
    assert_eq!(judge.json()["not_ours"].as_array().unwrap().len(), 2, "{}", judge.stdout);
    assert_eq!(ingress_of(&emu, &g).await, before);

    // WHEN the person names one rule explicitly THEN only that one goes
    let forced = run_cli(&emu, &["revert", "--force", &game], &[], LIMIT).await;
    assert_eq!(forced.status, 0, "{}", forced.stderr);
    let after = ingress_of(&emu, &g).await;
    assert_eq!(after.len(), 1);
    assert!(after[0].contains(&ssh), "{after:?}");
    // AND --force takes a rule id only
    let bad = run_cli(&emu, &["revert", "--force", "cs-20260101T000000Z-00000a"], &[], LIMIT).await;
    assert_eq!(bad.status, 2, "{}", bad.stderr);
}

/// A pseudo-terminal: the run's controlling terminal, hung up by closing its master side
/// (what the kernel does when an SSH session drops).
struct Pty {
    master: std::os::fd::OwnedFd,
    slave: std::os::fd::OwnedFd,
}

impl Pty {
    fn open() -> Pty {
        use std::os::fd::FromRawFd;
        let (mut master, mut slave) = (-1, -1);
        // SAFETY: openpty writes two new descriptors into the out-parameters.
        let rc =
            unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), std::ptr::null()) };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        // Not inherited by any process started meanwhile (this test's or another's): the
        // terminal must hang up when this side closes.
        for fd in [master, slave] {
            // SAFETY: fcntl on a descriptor just opened.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
        // SAFETY: both descriptors were just opened and are owned here alone.
        unsafe {
            Pty { master: std::os::fd::OwnedFd::from_raw_fd(master), slave: std::os::fd::OwnedFd::from_raw_fd(slave) }
        }
    }
}

/// Whether output waits on a pseudo-terminal's master side, unread (nothing is consumed).
fn unread_output(master: &std::os::fd::OwnedFd) -> bool {
    use std::os::fd::AsRawFd;
    let mut fd = libc::pollfd { fd: master.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: poll on one open descriptor, without waiting.
    let ready = unsafe { libc::poll(&mut fd, 1, 0) };
    ready > 0 && fd.revents & libc::POLLIN != 0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_terminal_session_reverts_and_exits_130() {
    // GIVEN a run in its own session whose controlling terminal is a pseudo-terminal
    let emu = Emulator::start().await;
    let vpc = create_vpc(&emu).await;
    let g = create_group(&emu, &vpc, "db", Some("true")).await;
    let pty = Pty::open();
    let mut c = emu.cli();
    c.args(["run", "--window", "10m", "--poll-interval", "1s"]);
    c.stdin(std::process::Stdio::from(pty.slave.try_clone().unwrap()))
        .stdout(std::process::Stdio::from(pty.slave.try_clone().unwrap()))
        .stderr(std::process::Stdio::from(pty.slave.try_clone().unwrap()));
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        c.pre_exec(move || {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = c.spawn().expect("spawn chaoslingr on a terminal");
    drop(pty.slave);
    wait_for_experiment_rule(&emu, Duration::from_secs(30)).await;
    // Once it watches it writes to its terminal (a few lines fit in the terminal's buffer
    // unread).
    poll_until("the run to write to its terminal", Duration::from_secs(30), || async { unread_output(&pty.master) })
        .await;

    // WHEN the terminal goes away (the session drops)
    drop(pty.master);

    // THEN the run reverts, and exits 130 (not a panic on the dead terminal)
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait()).await.expect("exits").unwrap();
    assert_eq!(status.code(), Some(130), "{status:?}");
    assert!(experiment_rules(&emu).await.is_empty());
    assert!(ingress_of(&emu, &g).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_group_is_opted_out_mid_watch_closes_it_as_aborted() {
    // GIVEN a run watching a long window
    let emu = Emulator::start().await;
    let vpc = create_vpc(&emu).await;
    let g = create_group(&emu, &vpc, "db", Some("true")).await;
    let mut c = emu.cli();
    c.args(["run", "--window", "10m", "--poll-interval", "1s", "--json"]);
    let child = c.spawn().unwrap();
    wait_for_experiment_rule(&emu, Duration::from_secs(30)).await;

    // WHEN its owners opt the group out
    emu.ec2()
        .create_tags()
        .resources(&g)
        .tags(aws_sdk_ec2::types::Tag::builder().key(OPT_IN).value("false").build())
        .send()
        .await
        .unwrap();

    // THEN the run closes it at its next observation: `aborted`, reverted, marker gone
    let out = finish(child, Duration::from_secs(60)).await;
    assert_eq!(out.status, 1, "stderr: {}", out.stderr);
    let v = out.json();
    assert_eq!(v["outcome"], "aborted", "{v}");
    assert!(v["reason"].as_str().unwrap().contains("opted out"), "{v}");
    assert_eq!(v["reverted"], true);
    assert!(experiment_rules(&emu).await.is_empty());
    assert!(ingress_of(&emu, &g).await.is_empty());
    let keys: Vec<String> = group_tags(&emu, &g).await.into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, vec![OPT_IN.to_string()], "marker left behind");
}
