//! End-to-end: the real compiled Lambda function binaries (`inject`, `judge`, `notify`),
//! run the way Lambda runs them (a loopback Runtime API feeds them events), against the
//! emulator and the detection lab.
//!
//! Lines starting `MEASURE` report each function's cold start (from spawn to its first
//! request for an event) and peak memory; see the README for how they are collected.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chaoslingr_e2e::runtime_api::{FunctionProcess, Invocation};
use serde_json::json;

use super::*;

const CONFIG: &str = "config:vpc-sg-open-only-to-authorized-ports";
const ALARM: &str = "alarm:chaoslingr-lab-firewall";
const FINDINGS: &str = "securityhub:chaoslingr-lab/firewall";
const INVOKE: Duration = Duration::from_secs(60);

/// A function binary built next to the test executable (or under
/// `$CHAOSLINGR_LAMBDA_BIN_DIR`).
pub(crate) fn function_bin(name: &str) -> PathBuf {
    let dir = std::env::var_os("CHAOSLINGR_LAMBDA_BIN_DIR").map(PathBuf::from).unwrap_or_else(|| {
        let exe = std::env::current_exe().expect("test executable path");
        exe.parent().and_then(|p| p.parent()).expect("target/debug").to_path_buf()
    });
    dir.join(name)
}

/// The environment a deployed function gets, pointed at `endpoint`.
pub(crate) fn function_env<'a>(endpoint: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("CHAOSLINGR_POLL_INTERVAL", "1s"),
    ];
    env.extend_from_slice(extra);
    env
}

/// Starts a function with its own access key id (`AKIDINJECT`, ...), so the lab's call
/// log tells the functions apart (see `infra/iam_check.py`).
async fn start_fn(name: &str, env: &[(&str, &str)]) -> FunctionProcess {
    let key = format!("AKID{}", name.to_uppercase());
    let mut env = env.to_vec();
    env.push(("AWS_ACCESS_KEY_ID", &key));
    let f = FunctionProcess::start(name, &function_bin(name), &env).await;
    measure_later(name, &f);
    f
}

fn measure_later(name: &str, f: &FunctionProcess) {
    // The cold start is known once the runtime asked for its first event.
    if let Some(init) = f.init_duration() {
        eprintln!("MEASURE {name} init_ms={:.1}", init.as_secs_f64() * 1000.0);
    }
}

fn report(name: &str, f: &FunctionProcess) {
    eprintln!(
        "MEASURE {name} init_ms={:.1} peak_rss_kib={}",
        f.init_duration().map(|d| d.as_secs_f64() * 1000.0).unwrap_or(f64::NAN),
        f.peak_rss_kib().unwrap_or(0)
    );
}

fn ok(inv: &Invocation, f: &FunctionProcess) -> Value {
    match &inv.result {
        Ok(v) => v.clone(),
        Err(e) => panic!("invocation failed: {e}\nlogs:\n{}", f.logs().join("\n")),
    }
}

fn marker_keys(tags: &[(String, String)]) -> Vec<&str> {
    tags.iter().map(|(k, _)| k.as_str()).filter(|k| k.starts_with("chaoslingr:") && *k != OPT_IN).collect()
}

/// One opted-in group behind the lab, a topic with an SQS inbox.
struct Scene {
    emu: Emulator,
    lab: Lab,
    group: String,
    topic: String,
    inbox: String,
}

async fn scene(lab_args: &[&str]) -> Scene {
    let emu = Emulator::start().await;
    let vpc = create_vpc(&emu).await;
    let group = create_group(&emu, &vpc, "edge", Some("true")).await;
    add_ingress(&emu, &group, "tcp", 443, 443, "0.0.0.0/0").await;
    let (topic, inbox) = topic_with_inbox(&emu).await;
    let lab = start_lab(&emu, lab_args);
    Scene { emu, lab, group, topic, inbox }
}

/// The lab with the functions' IAM policies enforced (see `Lab::start_enforced`),
/// recording every call to `$CHAOSLINGR_CALLS_LOG` when set (`cargo xtask test` sets it and
/// then fails on any call of a function that was denied).
fn start_lab(emu: &Emulator, args: &[&str]) -> Lab {
    Lab::start_recorded(emu, args)
}

/// `Ok` once all three of the lab's controls have noticed the scene's experiment: Config
/// recorded the group NON_COMPLIANT (asked of the lab, which answers Config), the
/// firewall alarm is in ALARM and the firewall's finding is in Security Hub; otherwise
/// what each says so far.
async fn noticed_by_every_control(s: &Scene) -> Result<(), String> {
    use aws_sdk_config::error::DisplayErrorContext;
    let at_lab = aws_sdk_config::config::Builder::from(&s.emu.config).endpoint_url(&s.lab.endpoint).build();
    let config = aws_sdk_config::Client::from_conf(at_lab)
        .get_compliance_details_by_resource()
        .resource_type("AWS::EC2::SecurityGroup")
        .resource_id(&s.group)
        .compliance_types(aws_sdk_config::types::ComplianceType::NonCompliant)
        .send()
        .await
        .map(|o| !o.evaluation_results().is_empty())
        .map_err(|e| DisplayErrorContext(e).to_string());
    let alarm = s
        .emu
        .cloudwatch()
        .describe_alarms()
        .alarm_names("chaoslingr-lab-firewall")
        .send()
        .await
        .map(|o| {
            o.metric_alarms().iter().any(|a| a.state_value() == Some(&aws_sdk_cloudwatch::types::StateValue::Alarm))
        })
        .map_err(|e| DisplayErrorContext(e).to_string());
    let finding = aws_sdk_securityhub::Client::new(&s.emu.config)
        .get_findings()
        .send()
        .await
        .map(|o| {
            o.findings().iter().any(|f| {
                f.generator_id() == Some("chaoslingr-lab/firewall")
                    && f.resources().iter().any(|r| r.id().is_some_and(|id| id.ends_with(&s.group)))
            })
        })
        .map_err(|e| DisplayErrorContext(e).to_string());
    match (&config, &alarm, &finding) {
        (Ok(true), Ok(true), Ok(true)) => Ok(()),
        _ => Err(format!("Config NON_COMPLIANT: {config:?}; alarm in ALARM: {alarm:?}; finding: {finding:?}")),
    }
}

fn bodies(messages: &[(String, Vec<(String, String)>)]) -> Vec<Value> {
    messages.iter().map(|(b, _)| serde_json::from_str(b).expect("JSON message")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_inject_then_judge_ticks_end_detected() {
    // GIVEN Config and the firewall in the lab, and the two functions deployed against it
    let s = scene(&["--config-latency", "2s", "--firewall-latency", "1s"]).await;
    let detectors = format!("{CONFIG},{ALARM},{FINDINGS}");
    let env = function_env(
        &s.lab.endpoint,
        &[("CHAOSLINGR_DETECTORS", &detectors), ("CHAOSLINGR_WINDOW", "5m"), ("CHAOSLINGR_TOPIC_ARN", &s.topic)],
    );
    let inject = start_fn("inject", &env).await;
    let judge = start_fn("judge", &env).await;

    // WHEN the schedule fires the inject
    let started = ok(&inject.invoke(json!({}), INVOKE).await, &inject);

    // THEN one rule is open on the opted-in group, the group carries the marker, and
    // the start was announced
    assert_eq!(started["status"], "started", "{started}");
    let id = started["start"]["experiment_id"].as_str().unwrap().to_string();
    assert_eq!(started["start"]["security_group_id"], s.group.as_str());
    let rules = experiment_rules(&s.emu).await;
    assert_eq!(rules.len(), 1);
    let tags = group_tags(&s.emu, &s.group).await;
    assert!(tags.contains(&(EXPERIMENT_TAG.to_string(), id.clone())), "{tags:?}");
    let start_msgs = receive_all(&s.emu, &s.inbox).await;
    assert_eq!(start_msgs.len(), 1);
    assert_eq!(bodies(&start_msgs)[0]["schema"], "chaoslingr.started/v1");
    assert!(start_msgs[0].1.contains(&("event".to_string(), "started".to_string())), "{:?}", start_msgs[0].1);

    // AND a judge tick right away keeps watching
    let first = ok(&judge.invoke(json!({}), INVOKE).await, &judge);
    assert_eq!(first["watching"], json!([id]), "{first}");
    assert_eq!(experiment_rules(&s.emu).await.len(), 1);

    // WHEN the judge ticks after the controls noticed
    poll_until("Config, the firewall alarm and its finding to notice the port", Duration::from_secs(30), || {
        noticed_by_every_control(&s)
    })
    .await;
    let tick = ok(&judge.invoke(json!({}), INVOKE).await, &judge);

    // THEN it concluded `detected` with both times, reverted, recorded once, and removed
    // the marker
    let concluded = tick["concluded"].as_array().expect("concluded");
    assert_eq!(concluded.len(), 1, "{tick}");
    let outcome = &concluded[0];
    assert_eq!(outcome["outcome"], "detected", "{outcome}");
    assert_eq!(outcome["reverted"], true);
    for d in [CONFIG, ALARM, FINDINGS] {
        let det = outcome["detections"].as_array().unwrap().iter().find(|x| x["detector"] == d).unwrap();
        assert_eq!(det["detected"], true, "{det}");
        assert!(det["seconds_to_detect"].as_f64().unwrap() >= 1.0, "{det}");
    }
    assert!(experiment_rules(&s.emu).await.is_empty());
    assert!(marker_keys(&group_tags(&s.emu, &s.group).await).is_empty());
    let msgs = receive_all(&s.emu, &s.inbox).await;
    assert_eq!(msgs.len(), 1);
    assert_eq!(bodies(&msgs)[0]["experiment_id"], id.as_str());
    assert_eq!(bodies(&msgs)[0]["outcome"], "detected");

    // AND a further tick finds nothing to do
    let idle = ok(&judge.invoke(json!({}), INVOKE).await, &judge);
    assert_eq!(idle["concluded"], json!([]));
    assert_eq!(idle["watching"], json!([]));
    report("inject", &inject);
    report("judge", &judge);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn experiments_nobody_judged_in_time_are_reverted_by_the_next_tick() {
    // GIVEN no control reacting, and an inject with a 10-second window
    let s = scene(&["--config-mode", "off", "--firewall-mode", "off"]).await;
    let env = function_env(
        &s.lab.endpoint,
        &[("CHAOSLINGR_DETECTORS", ALARM), ("CHAOSLINGR_WINDOW", "10s"), ("CHAOSLINGR_TOPIC_ARN", &s.topic)],
    );
    let inject = start_fn("inject", &env).await;
    let started = ok(&inject.invoke(json!({}), INVOKE).await, &inject);
    assert_eq!(started["status"], "started", "{started}");
    inject.kill();
    // AND a rule planted by an inject that died before it could mark the group, already
    // past its deadline and the grace period
    let vpc = create_vpc(&s.emu).await;
    let other = create_group(&s.emu, &vpc, "batch", Some("true")).await;
    let past = |secs: u64| {
        let t = SystemTime::now() - Duration::from_secs(secs);
        aws_smithy_types::DateTime::from(t).fmt(aws_smithy_types::date_time::Format::DateTime).unwrap()
    };
    let (injected, deadline) = (past(600), past(300));
    plant_experiment(
        &s.emu,
        &other,
        31337,
        &[
            (EXPERIMENT_TAG, "cs-20261126T100000Z-dead01"),
            ("chaoslingr:injected-at", &injected),
            ("chaoslingr:deadline", &deadline),
            ("chaoslingr:detectors", ALARM),
        ],
    )
    .await;
    assert_eq!(experiment_rules(&s.emu).await.len(), 2);

    // WHEN the judge first runs after the deadline
    let_time_pass("the inject's 10-second window must be over", Duration::from_secs(11)).await;
    let judge = start_fn("judge", &env).await;
    let tick = ok(&judge.invoke(json!({}), INVOKE).await, &judge);

    // THEN both are concluded and reverted: no port is left open
    assert!(experiment_rules(&s.emu).await.is_empty(), "{tick}");
    let concluded = tick["concluded"].as_array().unwrap();
    assert_eq!(concluded.len(), 2, "{tick}");
    for c in concluded {
        assert_eq!(c["outcome"], "undetected", "{c}");
        assert_eq!(c["reverted"], true);
    }
    let orphan = concluded.iter().find(|c| c["experiment_id"] == "cs-20261126T100000Z-dead01").unwrap();
    assert!(orphan["reason"].as_str().unwrap().contains("after its deadline"), "{orphan}");
    assert!(marker_keys(&group_tags(&s.emu, &s.group).await).is_empty());
    let outcomes: Vec<Value> = bodies(&receive_all(&s.emu, &s.inbox).await)
        .into_iter()
        .filter(|b| b["schema"] == "chaoslingr.outcome/v1")
        .collect();
    assert_eq!(outcomes.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_judge_that_died_after_marking_is_finished_by_the_next_tick() {
    // GIVEN a started experiment whose judge marked `detected` on the group and died
    // before revoking or recording (its marks written exactly as a judge writes them)
    let s = scene(&["--config-mode", "off", "--firewall-mode", "off"]).await;
    let env = function_env(
        &s.lab.endpoint,
        &[("CHAOSLINGR_DETECTORS", ALARM), ("CHAOSLINGR_WINDOW", "10m"), ("CHAOSLINGR_TOPIC_ARN", &s.topic)],
    );
    let inject = start_fn("inject", &env).await;
    let started = ok(&inject.invoke(json!({}), INVOKE).await, &inject);
    let id = started["start"]["experiment_id"].as_str().unwrap().to_string();
    let injected_ms = {
        let at = started["start"]["injected_at"].as_str().unwrap();
        let t = aws_smithy_types::DateTime::from_str(at, aws_smithy_types::date_time::Format::DateTime).unwrap();
        t.to_millis().unwrap()
    };
    let fired_ms = injected_ms + 4_250;
    receive_all(&s.emu, &s.inbox).await;
    let mark = |k: &str, v: String| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build();
    s.emu
        .ec2()
        .create_tags()
        .resources(&s.group)
        .tags(mark("chaoslingr:outcome", "detected".into()))
        .tags(mark("chaoslingr:concluded-at", "2026-11-26T12:00:05.000Z".into()))
        .tags(mark("chaoslingr:reason", "all 1 detectors noticed the port within the window".into()))
        .tags(mark("chaoslingr:seen", format!("0={fired_ms}")))
        .send()
        .await
        .unwrap();

    // WHEN the next tick runs
    let judge = start_fn("judge", &env).await;
    let tick = ok(&judge.invoke(json!({}), INVOKE).await, &judge);

    // THEN it finishes that conclusion: revoked, recorded once with the time the dead
    // judge saw, marker removed — and it does not re-judge (the alarm never fired)
    assert!(experiment_rules(&s.emu).await.is_empty(), "{tick}");
    let msgs = bodies(&receive_all(&s.emu, &s.inbox).await);
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert_eq!(msgs[0]["experiment_id"], id.as_str());
    assert_eq!(msgs[0]["outcome"], "detected");
    assert_eq!(msgs[0]["concluded_at"], "2026-11-26T12:00:05.000Z");
    assert_eq!(msgs[0]["detections"][0]["seconds_to_detect"], 4.25);
    assert!(marker_keys(&group_tags(&s.emu, &s.group).await).is_empty());

    // AND a judge that died after recording (marked recorded) is finished without a
    // second message
    let inject2 = start_fn("inject", &env).await;
    let started = ok(&inject2.invoke(json!({}), INVOKE).await, &inject2);
    assert_eq!(started["status"], "started", "{started}");
    receive_all(&s.emu, &s.inbox).await;
    s.emu
        .ec2()
        .create_tags()
        .resources(&s.group)
        .tags(mark("chaoslingr:outcome", "undetected".into()))
        .tags(mark("chaoslingr:concluded-at", "2026-11-26T12:10:00.000Z".into()))
        .tags(mark("chaoslingr:reason", "nothing noticed".into()))
        .tags(mark("chaoslingr:recorded", "true".into()))
        .send()
        .await
        .unwrap();
    let tick = ok(&judge.invoke(json!({}), INVOKE).await, &judge);
    assert!(experiment_rules(&s.emu).await.is_empty(), "{tick}");
    assert_eq!(tick["concluded"], json!([]), "already recorded: {tick}");
    assert!(receive_all(&s.emu, &s.inbox).await.is_empty());
    assert!(marker_keys(&group_tags(&s.emu, &s.group).await).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_removed_by_a_remediator_is_judged_remediated() {
    // GIVEN the lab's remediator revoking world-open unauthorized rules after 2s
    let s = scene(&["--config-mode", "off", "--firewall-mode", "off", "--remediate-after", "2s"]).await;
    let env = function_env(
        &s.lab.endpoint,
        &[("CHAOSLINGR_DETECTORS", ALARM), ("CHAOSLINGR_WINDOW", "10m"), ("CHAOSLINGR_TOPIC_ARN", &s.topic)],
    );
    let inject = start_fn("inject", &env).await;
    let judge = start_fn("judge", &env).await;
    ok(&inject.invoke(json!({}), INVOKE).await, &inject);

    // WHEN the judge ticks after the remediator acted
    poll_until("the remediator to remove the rule", Duration::from_secs(30), || async {
        experiment_rules(&s.emu).await.is_empty()
    })
    .await;
    let tick = ok(&judge.invoke(json!({}), INVOKE).await, &judge);

    // THEN the marker told it an experiment was running: `remediated`, not forgotten
    let concluded = tick["concluded"].as_array().unwrap();
    assert_eq!(concluded.len(), 1, "{tick}");
    assert_eq!(concluded[0]["outcome"], "remediated");
    assert!(marker_keys(&group_tags(&s.emu, &s.group).await).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_injects_never_open_two_ports() {
    // GIVEN two opted-in groups, a maximum of one active experiment, and two inject
    // functions (two schedules, or a retry racing the original)
    let s = scene(&["--config-mode", "off", "--firewall-mode", "off"]).await;
    let vpc = create_vpc(&s.emu).await;
    create_group(&s.emu, &vpc, "api", Some("true")).await;
    let env = function_env(&s.lab.endpoint, &[("CHAOSLINGR_WINDOW", "10m"), ("CHAOSLINGR_MAX_ACTIVE", "1")]);
    let a = start_fn("inject", &env).await;
    let b = start_fn("inject", &env).await;
    let judge = start_fn("judge", &env).await;

    for round in 0..3 {
        // WHEN both fire at the same moment
        let (ra, rb) = tokio::join!(a.invoke(json!({}), INVOKE), b.invoke(json!({}), INVOKE));
        let (ra, rb) = (ok(&ra, &a), ok(&rb, &b));

        // THEN at most one port is open, and every run that did not start says why
        let open = experiment_rules(&s.emu).await;
        assert!(open.len() <= 1, "round {round}: {} rules open\n{ra}\n{rb}", open.len());
        let started = [&ra, &rb].iter().filter(|r| r["status"] == "started").count();
        assert_eq!(started, open.len(), "round {round}:\n{ra}\n{rb}");
        for r in [&ra, &rb].into_iter().filter(|r| r["status"] != "started") {
            assert_eq!(r["outcome"]["outcome"], "aborted", "{r}");
            assert_eq!(r["outcome"]["reverted"], true, "{r}");
        }

        // AND the emergency stop of the round: conclude and clear before the next one
        let groups: Vec<String> = open.iter().map(|r| r.group_id().unwrap().to_string()).collect();
        for g in groups {
            s.emu
                .ec2()
                .create_tags()
                .resources(&g)
                .tags(
                    aws_sdk_ec2::types::Tag::builder().key("chaoslingr:deadline").value("2000-01-01T00:00:00Z").build(),
                )
                .send()
                .await
                .ok();
        }
        let cli = run_cli_at(&s.lab.endpoint, &["revert", "--all"], &[], LIMIT).await;
        assert_eq!(cli.status, 0, "{}", cli.stderr);
        ok(&judge.invoke(json!({}), INVOKE).await, &judge);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_events_bad_settings_and_the_kill_switch_change_nothing() {
    // GIVEN the functions deployed, and the state of the world
    let s = scene(&["--config-mode", "off", "--firewall-mode", "off"]).await;
    let env = function_env(&s.lab.endpoint, &[("CHAOSLINGR_TOPIC_ARN", &s.topic)]);
    let inject = start_fn("inject", &env).await;
    let judge = start_fn("judge", &env).await;
    let before = (ingress_of(&s.emu, &s.group).await, group_tags(&s.emu, &s.group).await);

    // WHEN each function gets events it must refuse
    let cases = [
        (&inject, json!([1, 2, 3])),
        (&inject, json!("start")),
        (&inject, json!(42)),
        (&inject, json!({"targte": s.group})),
        (&inject, json!({"target": "i-0123456789abcdef0"})),
        (&inject, json!({"target": 17})),
        (&inject, json!({"detectors": ["guardduty:finding"]})),
        (&inject, json!({"detectors": "alarm:"})),
        (&inject, json!({"window": "forever"})),
        (&inject, json!({"window": "1s"})),
        (&inject, json!({"dry_run": "no"})),
        (&inject, json!({"target": "sg-0000000000000dead"})),
        (&judge, json!({"window": "1m"})),
        (&judge, json!([])),
    ];
    for (f, event) in cases {
        let inv = f.invoke(event.clone(), INVOKE).await;
        // THEN each is refused as not retryable, naming the problem
        let e = inv.result.as_ref().expect_err(&format!("{event} was accepted"));
        assert!(e.error_type.starts_with("ChaoSlingr.NotRetryable.Bad"), "{event}: {e}");
        assert!(!e.error_message.is_empty());
    }

    // AND nothing changed: no rule, no tag, no message
    assert_eq!((ingress_of(&s.emu, &s.group).await, group_tags(&s.emu, &s.group).await), before);
    assert!(experiment_rules(&s.emu).await.is_empty());
    assert!(receive_all(&s.emu, &s.inbox).await.is_empty());

    // AND with the kill switch on, a scheduled inject is an aborted run that writes nothing
    // (behind the module's subscription filter of the notifier, which must not see it)
    let notifier_inbox = filtered_inbox(&s.emu, &s.topic, "notifier-inbox", NOTIFY_FILTER).await;
    let archive_inbox = filtered_inbox(&s.emu, &s.topic, "archive-inbox", ARCHIVE_FILTER).await;
    let mut off = env.clone();
    off.push(("CHAOSLINGR_ENABLED", "false"));
    let stopped = start_fn("inject", &off).await;
    let r = ok(&stopped.invoke(json!({}), INVOKE).await, &stopped);
    assert_eq!(r["outcome"]["outcome"], "aborted", "{r}");
    assert!(r["outcome"]["reason"].as_str().unwrap().contains("kill switch"), "{r}");
    assert!(experiment_rules(&s.emu).await.is_empty());
    assert_eq!(group_tags(&s.emu, &s.group).await, before.1);
    // AND the abort is counted in the metrics and published marked quiet: the archive's
    // subscription receives it, the notifier's filter policy keeps it from Slack (no
    // message per skipped schedule)
    let published = receive_all(&s.emu, &s.inbox).await;
    assert_eq!(published.len(), 1, "{published:?}");
    assert!(published[0].1.contains(&("quiet".to_string(), "true".to_string())), "{published:?}");
    assert_eq!(serde_json::from_str::<Value>(&published[0].0).unwrap()["quiet"], true);
    // (and the filters are live: a start message reaches the notifier and not the archive,
    // the quiet abort reaches the archive and not the notifier)
    let attribute = |v: &str| {
        aws_sdk_sns::types::MessageAttributeValue::builder().data_type("String").string_value(v).build().unwrap()
    };
    s.emu
        .sns()
        .publish()
        .topic_arn(&s.topic)
        .message(r#"{"schema": "chaoslingr.started/v1"}"#)
        .message_attributes("event", attribute("started"))
        .message_attributes("experiment", attribute("port-change"))
        .send()
        .await
        .unwrap();
    let to_notifier = receive_all(&s.emu, &notifier_inbox).await;
    assert_eq!(to_notifier.len(), 1, "{to_notifier:?}");
    assert!(
        to_notifier[0].0.contains("chaoslingr.started/v1"),
        "the notifier's filter let a quiet abort through: {to_notifier:?}"
    );
    let to_archive = receive_all(&s.emu, &archive_inbox).await;
    assert_eq!(to_archive.len(), 1, "{to_archive:?}");
    assert_eq!(serde_json::from_str::<Value>(&to_archive[0].0).unwrap()["quiet"], true, "{to_archive:?}");
    let metrics = s.emu.cloudwatch().list_metrics().namespace("ChaoSlingr").metric_name("Aborted").send().await;
    assert!(!metrics.expect("list metrics").metrics().is_empty(), "the abort was not counted");

    // AND a bad setting fails the cold start with the variable named, before any event
    let mut bad = env.clone();
    bad.push(("CHAOSLINGR_WINDOW", "forever"));
    let broken = FunctionProcess::start("inject", &function_bin("inject"), &bad).await;
    let inv = broken.invoke(json!({}), Duration::from_secs(20)).await;
    assert!(inv.result.is_err());
    assert!(!broken.is_running());
    let logs = broken.logs().join("\n");
    assert!(logs.contains("CHAOSLINGR_WINDOW"), "{logs}");
    broken.kill();
    assert!(experiment_rules(&s.emu).await.is_empty());
}

/// A loopback Slack webhook: records every POST (content type, body), answers 200.
struct Webhook {
    port: u16,
    posts: Arc<Mutex<Vec<(String, String)>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Webhook {
    fn start() -> Webhook {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let posts = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (p, st) = (posts.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(std::sync::atomic::Ordering::SeqCst) {
                let Ok((mut conn, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                conn.set_nonblocking(false).unwrap();
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let (mut length, mut content_type) = (0usize, String::new());
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    if let Some(v) = lower.strip_prefix("content-type:") {
                        content_type = v.trim().to_string();
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).ok();
                p.lock().unwrap().push((content_type, String::from_utf8_lossy(&body).into_owned()));
                conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").ok();
            }
            // Dropping the listener closes the port: later posts are refused.
        });
        Webhook { port, posts, stop, thread }
    }

    /// Takes the webhook down: returns once its port is closed, so later posts are refused.
    async fn close(&self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        poll_until("the webhook to close its port", Duration::from_secs(10), || async { self.thread.is_finished() })
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notifier_posts_to_slack_and_fails_retryable_when_the_webhook_is_down() {
    // GIVEN a webhook on loopback whose URL is a SecureString parameter
    let emu = Emulator::start().await;
    let hook = Webhook::start();
    let secret_path = "/services/T000/B000/s3cr3tT0k3n";
    let url = format!("http://127.0.0.1:{}{secret_path}", hook.port);
    aws_sdk_ssm::Client::new(&emu.config)
        .put_parameter()
        .name("/chaoslingr/slack-webhook")
        .value(&url)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    let lab = start_lab(&emu, &["--config-mode", "off", "--firewall-mode", "off"]);
    let env = function_env(&lab.endpoint, &[("CHAOSLINGR_SLACK_WEBHOOK", "ssm:/chaoslingr/slack-webhook")]);
    let notify = start_fn("notify", &env).await;
    let outcome = json!({
        "schema": "chaoslingr.outcome/v1", "experiment_id": "cs-20261126T120000Z-abc123", "experiment": "port-change",
        "account": "123456789012", "region": "us-east-1", "security_group_id": "sg-0abc",
        "security_group_rule_id": "sgr-0def", "protocol": "udp", "from_port": 14603, "to_port": 14605,
        "cidr": "0.0.0.0/0", "injected_at": "2026-11-26T12:00:00.000Z", "concluded_at": "2026-11-26T12:15:00.000Z",
        "outcome": "undetected", "reason": "nothing noticed the port within the window; not noticed by: config:open-ports",
        "detections": [
            {"detector": "config:open-ports", "detected": false, "seconds_to_detect": null, "evidence": "no NON_COMPLIANT result"},
            {"detector": "alarm:fw", "detected": true, "seconds_to_detect": 2.8, "evidence": "alarm fw entered ALARM"},
            {"detector": "remediation", "detected": false, "seconds_to_detect": null, "evidence": "still present"}
        ],
        "reverted": true, "dry_run": false
    });
    // The whole envelope Lambda delivers from an SNS subscription, signature fields included.
    let sns_event = |message: &Value| {
        json!({"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn": "arn:aws:sns:us-east-1:123456789012:outcomes:1",
            "Sns": {"Type": "Notification", "MessageId": "m-1", "TopicArn": "arn:aws:sns:us-east-1:123456789012:outcomes",
                    "Subject": "ChaoSlingr", "Message": message.to_string(), "Timestamp": "2026-11-26T12:15:00.000Z",
                    "SignatureVersion": "1", "Signature": "c2lnbmF0dXJl",
                    "SigningCertUrl": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0.pem",
                    "UnsubscribeUrl": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
                    "MessageAttributes": {"outcome": {"Type": "String", "Value": "undetected"}}}}]})
    };

    // WHEN an outcome arrives over SNS
    let inv = notify.invoke(sns_event(&outcome), INVOKE).await;

    // THEN one readable Block Kit message was posted, with the outcome, the group, the
    // port and each detector's time
    assert_eq!(ok(&inv, &notify)["posted"], 1);
    let posts = hook.posts.lock().unwrap().clone();
    assert_eq!(posts.len(), 1);
    assert!(posts[0].0.starts_with("application/json"), "{}", posts[0].0);
    let body: Value = serde_json::from_str(&posts[0].1).unwrap();
    let text = body.to_string();
    for needle in ["UNDETECTED", "sg-0abc", "14603", "config:open-ports", "2.8", "cs-20261126T120000Z-abc123"] {
        assert!(text.contains(needle), "`{needle}` missing from {text}");
    }
    assert!(body["attachments"][0]["color"].is_string(), "{body}");

    // AND a malformed SNS message posts nothing and is not retryable
    let inv = notify.invoke(sns_event(&json!({"schema": "something/v9"})), INVOKE).await;
    assert!(inv.result.unwrap_err().error_type.contains("NotRetryable"));
    assert_eq!(hook.posts.lock().unwrap().len(), 1);

    // WHEN the webhook is down
    hook.close().await;
    let inv = notify.invoke(sns_event(&outcome), INVOKE).await;

    // THEN the invocation fails as retryable, so Lambda's retries apply
    let e = inv.result.expect_err("the webhook is down");
    assert!(e.error_type.starts_with("ChaoSlingr.Retryable"), "{e}");

    // AND the webhook URL's secret part never appeared in a log line or an error
    let logs = notify.logs().join("\n");
    assert!(!logs.contains("s3cr3tT0k3n"), "the webhook URL leaked into the logs:\n{logs}");
    assert!(!e.error_message.contains("s3cr3tT0k3n"), "{e}");
    report("notify", &notify);
}

// ---------------------------------------------------------------------------------------
// Safety under the module's IAM (the lab enforces the rendered policies)
// ---------------------------------------------------------------------------------------

/// Starts a scheduled experiment (no control reacting) with `window`; returns the
/// experiment id, its rule id and the judge.
async fn started(s: &Scene, window: &str) -> (String, String, FunctionProcess) {
    let env = function_env(
        &s.lab.endpoint,
        &[("CHAOSLINGR_DETECTORS", ALARM), ("CHAOSLINGR_WINDOW", window), ("CHAOSLINGR_TOPIC_ARN", &s.topic)],
    );
    let inject = start_fn("inject", &env).await;
    let judge = start_fn("judge", &env).await;
    let started = ok(&inject.invoke(json!({}), INVOKE).await, &inject);
    assert_eq!(started["status"], "started", "{started}");
    let id = started["start"]["experiment_id"].as_str().unwrap().to_string();
    let rules = experiment_rules(&s.emu).await;
    assert_eq!(rules.len(), 1);
    let rule = rules[0].security_group_rule_id().unwrap().to_string();
    receive_all(&s.emu, &s.inbox).await; // the start announcement
    (id, rule, judge)
}

async fn assert_closed_once_as(s: &Scene, judge: &FunctionProcess, id: &str, outcome: &str) {
    let tick = ok(&judge.invoke(json!({}), INVOKE).await, judge);
    let concluded = tick["concluded"].as_array().expect("concluded");
    assert_eq!(concluded.len(), 1, "{tick}");
    assert_eq!(concluded[0]["experiment_id"], id);
    assert_eq!(concluded[0]["outcome"], outcome, "{}", concluded[0]);
    assert_eq!(concluded[0]["reverted"], true);
    assert!(experiment_rules(&s.emu).await.is_empty());
    assert!(ingress_of(&s.emu, &s.group).await.iter().all(|r| r.starts_with("tcp 443-443")));
    assert!(marker_keys(&group_tags(&s.emu, &s.group).await).is_empty(), "marker left");
    // AND the next tick has nothing to do, and exactly one outcome was published
    let idle = ok(&judge.invoke(json!({}), INVOKE).await, judge);
    assert_eq!(idle["concluded"], json!([]), "{idle}");
    let msgs = receive_all(&s.emu, &s.inbox).await;
    assert_eq!(msgs.len(), 1);
    assert_eq!(bodies(&msgs)[0]["outcome"], outcome);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_opting_out_mid_experiment_close_it_at_the_next_tick_under_the_modules_iam() {
    for how in ["set to false", "tag deleted"] {
        // GIVEN a scheduled experiment on the opted-in group
        let s = scene(&["--config-mode", "off", "--firewall-mode", "off"]).await;
        let (id, _rule, judge) = started(&s, "10m").await;

        // WHEN its owners opt it out (the emulator's own key: not ChaoSlingr's role)
        match how {
            "set to false" => {
                s.emu
                    .ec2()
                    .create_tags()
                    .resources(&s.group)
                    .tags(aws_sdk_ec2::types::Tag::builder().key(OPT_IN).value("false").build())
                    .send()
                    .await
                    .unwrap();
            }
            _ => {
                s.emu
                    .ec2()
                    .delete_tags()
                    .resources(&s.group)
                    .tags(aws_sdk_ec2::types::Tag::builder().key(OPT_IN).build())
                    .send()
                    .await
                    .unwrap();
            }
        }

        // THEN the next tick, allowed by IAM because the group carries the marker, closes
        // the port, records `aborted` once and removes the marker ({how})
        assert_closed_once_as(&s, &judge, &id, "aborted").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_whose_tags_were_stripped_is_closed_at_its_deadline_under_the_modules_iam() {
    // GIVEN a scheduled experiment with a 10-second window, and a tag clean-up job that
    // strips the rule's tags
    let s = scene(&["--config-mode", "off", "--firewall-mode", "off"]).await;
    let (id, rule, judge) = started(&s, "10s").await;
    let keys = ["chaoslingr:experiment-id", "chaoslingr:injected-at", "chaoslingr:deadline", "chaoslingr:detectors"];
    let mut strip = s.emu.ec2().delete_tags().resources(&rule);
    for k in keys {
        strip = strip.tags(aws_sdk_ec2::types::Tag::builder().key(k).build());
    }
    strip.send().await.unwrap();
    assert!(experiment_rules(&s.emu).await.is_empty(), "the tag listing no longer finds it");

    // WHEN the judge ticks before the deadline THEN it is still watched, still open
    let tick = ok(&judge.invoke(json!({}), INVOKE).await, &judge);
    assert_eq!(tick["watching"], json!([id]), "{tick}");
    assert_eq!(ingress_of(&s.emu, &s.group).await.len(), 2);

    // WHEN the deadline passes THEN it is closed and judged on its detectors, not
    // `remediated`
    let_time_pass("the 10-second window must be over", Duration::from_secs(11)).await;
    assert_closed_once_as(&s, &judge, &id, "undetected").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_someone_tagged_as_an_experiment_is_never_revoked_by_the_judge() {
    // GIVEN an SSH rule from the office on the opted-in group that someone tagged with an
    // (overdue) experiment record
    let s = scene(&["--config-mode", "off", "--firewall-mode", "off"]).await;
    let tags = [
        (EXPERIMENT_TAG, "cs-20260101T000000Z-00000a"),
        ("chaoslingr:injected-at", "2026-01-01T00:00:00.000Z"),
        ("chaoslingr:deadline", "2026-01-01T00:15:00Z"),
        ("chaoslingr:detectors", ""),
    ];
    let ssh = plant_rule(&s.emu, &s.group, 22, "10.0.0.0/8", "ssh from the office", &tags).await;
    let env = function_env(&s.lab.endpoint, &[("CHAOSLINGR_TOPIC_ARN", &s.topic)]);
    let judge = start_fn("judge", &env).await;

    // WHEN the judge ticks
    let tick = ok(&judge.invoke(json!({}), INVOKE).await, &judge);

    // THEN it reports the rule as not ours and leaves it
    assert_eq!(tick["not_ours"].as_array().unwrap().len(), 1, "{tick}");
    assert!(tick["not_ours"][0].as_str().unwrap().contains(&ssh), "{tick}");
    assert_eq!(tick["reverts"], json!([]));
    assert!(ingress_of(&s.emu, &s.group).await.iter().any(|r| r.contains(&ssh)));
}

/// A scene whose lab enforces `policies` (a file like the rendered one) with `extra` lab
/// arguments, not recording into the suite's call log (its denials are expected).
async fn scene_with_policies(policies: &std::path::Path, extra: &[&str]) -> Scene {
    let emu = Emulator::start().await;
    let vpc = create_vpc(&emu).await;
    let group = create_group(&emu, &vpc, "edge", Some("true")).await;
    add_ingress(&emu, &group, "tcp", 443, 443, "0.0.0.0/0").await;
    let (topic, inbox) = topic_with_inbox(&emu).await;
    let evaluator = iam_evaluator();
    let mut args = vec![
        "--config-mode",
        "off",
        "--firewall-mode",
        "off",
        "--enforce-iam",
        policies.to_str().expect("UTF-8 path"),
        "--iam-evaluator",
        evaluator.to_str().expect("UTF-8 path"),
    ];
    args.extend_from_slice(extra);
    let lab = Lab::start(&emu, &args);
    Scene { emu, lab, group, topic, inbox }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_explicit_deny_is_prevented_a_permission_the_role_lacks_is_failed() {
    let dir = std::env::temp_dir();
    let rendered: Value = serde_json::from_str(&std::fs::read_to_string(iam_policies()).unwrap()).unwrap();

    // GIVEN (1) the module's policies and an SCP that denies opening ports, and (2) an
    // inject role whose policy lacks the grant to open them
    let scp = dir.join(format!("chaoslingr-e2e-scp-{}.json", std::process::id()));
    let deny = json!({"Version": "2012-10-17", "Statement": [{
        "Sid": "NoWorldOpenPorts", "Effect": "Deny", "Action": "ec2:AuthorizeSecurityGroupIngress", "Resource": "*"
    }]});
    std::fs::write(&scp, deny.to_string()).unwrap();
    let mut lacking = rendered.clone();
    let statements = lacking["AKIDINJECT"]["Statement"].as_array_mut().unwrap();
    statements.retain(|s| s["Sid"] != "ChangeIngressOfOptedInGroups");
    assert!(statements.len() + 1 == rendered["AKIDINJECT"]["Statement"].as_array().unwrap().len());
    let lacking_file = dir.join(format!("chaoslingr-e2e-lacking-{}.json", std::process::id()));
    std::fs::write(&lacking_file, lacking.to_string()).unwrap();

    for (policies, extra, outcome, says) in [
        (iam_policies(), vec!["--scp", scp.to_str().unwrap()], "prevented", "explicit deny"),
        (lacking_file.clone(), vec![], "failed", "own role is not allowed"),
    ] {
        let s = scene_with_policies(&policies, &extra).await;
        let env = function_env(&s.lab.endpoint, &[("CHAOSLINGR_TOPIC_ARN", &s.topic)]);
        let inject = start_fn("inject", &env).await;

        // WHEN the schedule fires
        let ended = ok(&inject.invoke(json!({}), INVOKE).await, &inject);

        // THEN nothing is open, and the outcome says who refused
        assert_eq!(ended["status"], "ended", "{ended}");
        assert_eq!(ended["outcome"]["outcome"], outcome, "{ended}");
        assert!(ended["outcome"]["reason"].as_str().unwrap().contains(says), "{ended}");
        assert!(experiment_rules(&s.emu).await.is_empty());
        assert!(marker_keys(&group_tags(&s.emu, &s.group).await).is_empty());
    }
    let _ = std::fs::remove_file(&scp);
    let _ = std::fs::remove_file(&lacking_file);
}

// ---------------------------------------------------------------------------------------
// nacl-entry through the functions, under the module's IAM
// ---------------------------------------------------------------------------------------

const NACL_CONFIG: &str = "config:nacl-open-only-to-authorized-ports";
const NACL_ALARM: &str = "alarm:chaoslingr-lab-nacl-changes";

/// An opted-in network ACL (created before the lab first scans it) and an opted-in group
/// behind the lab with the policies enforced, and the two functions watching the ACL's
/// detectors.
async fn acl_scene(lab_args: &[&str]) -> (Scene, String, FunctionProcess, FunctionProcess) {
    let emu = Emulator::start().await;
    let vpc = create_vpc(&emu).await;
    let group = create_group(&emu, &vpc, "edge", Some("true")).await;
    let acl = create_acl(&emu, &vpc, Some("true")).await;
    let (topic, inbox) = topic_with_inbox(&emu).await;
    let lab = start_lab(&emu, lab_args);
    let s = Scene { emu, lab, group, topic, inbox };
    let detectors = format!("{NACL_CONFIG},{NACL_ALARM}");
    let env = function_env(
        &s.lab.endpoint,
        &[("CHAOSLINGR_DETECTORS", &detectors), ("CHAOSLINGR_WINDOW", "5m"), ("CHAOSLINGR_TOPIC_ARN", &s.topic)],
    );
    let inject = start_fn("inject", &env).await;
    let judge = start_fn("judge", &env).await;
    (s, acl, inject, judge)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_nacl_entry_is_detected_by_the_judge_and_removed_exactly() {
    // GIVEN the lab's ACL controls answering after a second or two
    let (s, acl, inject, judge) = acl_scene(&["--nacl-config-latency", "2s", "--nacl-firewall-latency", "1s"]).await;
    let before = acl_entries(&s.emu, &acl).await;

    // WHEN a schedule whose input lists only nacl-entry fires the inject
    let started = ok(&inject.invoke(json!({"experiment": ["nacl-entry"]}), INVOKE).await, &inject);

    // THEN one entry more is on the ACL, the ACL carries the record, the group is untouched
    assert_eq!(started["status"], "started", "{started}");
    assert_eq!(started["start"]["experiment"], "nacl-entry");
    assert_eq!(started["start"]["target_id"], acl.as_str());
    let id = started["start"]["experiment_id"].as_str().unwrap().to_string();
    assert_eq!(acl_entries(&s.emu, &acl).await.len(), before.len() + 1);
    assert!(acl_tags(&s.emu, &acl).await.contains(&(EXPERIMENT_TAG.to_string(), id.clone())));
    assert!(experiment_rules(&s.emu).await.is_empty());

    // WHEN the judge ticks until both controls noticed
    let outcome = poll_until("the judge to conclude the nacl-entry experiment", Duration::from_secs(60), || async {
        let tick = ok(&judge.invoke(json!({}), INVOKE).await, &judge);
        tick["concluded"].as_array().and_then(|c| c.first().cloned())
    })
    .await;

    // THEN it is detected by both, the entry and the record are gone, one message went out
    assert_eq!(outcome["experiment_id"], id.as_str());
    assert_eq!(outcome["outcome"], "detected", "{outcome}");
    assert_eq!(outcome["experiment"], "nacl-entry");
    for d in [NACL_CONFIG, NACL_ALARM] {
        let det = outcome["detections"].as_array().unwrap().iter().find(|x| x["detector"] == d).unwrap();
        assert_eq!(det["detected"], true, "{det}");
    }
    assert_eq!(acl_entries(&s.emu, &acl).await, before);
    assert!(marker_keys(&acl_tags(&s.emu, &acl).await).is_empty());
    let msgs = receive_all(&s.emu, &s.inbox).await;
    let outcomes: Vec<Value> = bodies(&msgs).into_iter().filter(|m| m["schema"] == "chaoslingr.outcome/v1").collect();
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    assert_eq!(outcomes[0]["target_type"], "network-acl");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_opting_an_acl_out_mid_experiment_never_lock_the_judge_out_of_its_revert() {
    // GIVEN a scheduled nacl-entry experiment nothing notices
    let (s, acl, inject, judge) = acl_scene(&["--nacl-config-mode", "off", "--nacl-firewall-mode", "off"]).await;
    let before = acl_entries(&s.emu, &acl).await;
    let started = ok(&inject.invoke(json!({"experiment": "nacl-entry"}), INVOKE).await, &inject);
    assert_eq!(started["status"], "started", "{started}");
    let id = started["start"]["experiment_id"].as_str().unwrap().to_string();

    // WHEN its owners delete the opt-in tag (their own key, not ChaoSlingr's role)
    s.emu
        .ec2()
        .delete_tags()
        .resources(&acl)
        .tags(aws_sdk_ec2::types::Tag::builder().key(OPT_IN).build())
        .send()
        .await
        .unwrap();

    // THEN the next tick, allowed by IAM because the ACL carries the record, removes the
    // entry, records `aborted` once and removes the record
    let tick = ok(&judge.invoke(json!({}), INVOKE).await, &judge);
    let concluded = tick["concluded"].as_array().expect("concluded");
    assert_eq!(concluded.len(), 1, "{tick}");
    assert_eq!(concluded[0]["experiment_id"], id.as_str());
    assert_eq!(concluded[0]["outcome"], "aborted", "{}", concluded[0]);
    assert_eq!(concluded[0]["reverted"], true);
    assert_eq!(acl_entries(&s.emu, &acl).await, before);
    assert!(marker_keys(&acl_tags(&s.emu, &acl).await).is_empty(), "record left");
}

/// The filter policy the Terraform module puts on the notifier's subscription
/// (terraform/notifications.tf): ChaoSlingr's own messages, but not the quiet ones.
const NOTIFY_FILTER: &str = r#"{"experiment": [{"exists": true}], "quiet": [{"exists": false}]}"#;

/// The filter policy of the archive function's subscription (terraform/archive.tf):
/// outcomes only.
const ARCHIVE_FILTER: &str = r#"{"outcome": [{"exists": true}]}"#;

/// A queue subscribed to `topic` with `filter` on the message attributes.
async fn filtered_inbox(emu: &Emulator, topic: &str, name: &str, filter: &str) -> String {
    let url = emu.sqs().create_queue().queue_name(name).send().await.unwrap().queue_url().unwrap().to_string();
    let arn = format!("arn:aws:sqs:us-east-1:123456789012:{name}");
    emu.sns()
        .subscribe()
        .topic_arn(topic)
        .protocol("sqs")
        .endpoint(arn)
        .attributes("RawMessageDelivery", "true")
        .attributes("FilterPolicy", filter)
        .attributes("FilterPolicyScope", "MessageAttributes")
        .send()
        .await
        .expect("subscribe with a filter");
    url
}

/// The envelope Lambda delivers from an SNS subscription, one record per message.
fn sns_records(messages: &[&Value]) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            json!({"EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn": "arn:aws:sns:us-east-1:123456789012:outcomes:2",
                "Sns": {"Type": "Notification", "MessageId": format!("m-{i}"), "TopicArn": "arn:aws:sns:us-east-1:123456789012:outcomes",
                        "Subject": "ChaoSlingr", "Message": m.to_string(), "Timestamp": "2026-12-02T12:00:00.000Z",
                        "SignatureVersion": "1", "Signature": "c2lnbmF0dXJl",
                        "SigningCertUrl": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0.pem",
                        "UnsubscribeUrl": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe", "MessageAttributes": {}}})
        })
        .collect();
    json!({ "Records": records })
}

async fn archived_keys(emu: &Emulator, bucket: &str) -> Vec<String> {
    let listed = emu.s3().list_objects_v2().bucket(bucket).send().await.expect("list the archive");
    listed.contents().iter().filter_map(|o| o.key().map(String::from)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_archive_function_keeps_each_outcome_once_and_report_reads_the_archive() {
    // GIVEN the outcome of a real run, a start message, and the archive bucket
    let emu = Emulator::start().await;
    let vpc = create_vpc(&emu).await;
    let _group = create_group(&emu, &vpc, "web", Some("true")).await;
    let run = run_cli(&emu, &["run", "--window", "10s", "--poll-interval", "1s", "--json"], &[], LIMIT).await;
    let outcome = run.json();
    assert_eq!(outcome["schema"], "chaoslingr.outcome/v1", "{}", run.stderr);
    let started = json!({"schema": "chaoslingr.started/v1", "experiment_id": outcome["experiment_id"]});
    emu.s3().create_bucket().bucket("chaoslingr-outcomes").send().await.expect("create the bucket");
    // Through the lab, under the archive policy the Terraform module renders (bucket
    // `chaoslingr-outcomes`, prefix `chaoslingr/` in infra/terraform.sh policies).
    let lab = start_lab(&emu, &["--config-mode", "off", "--firewall-mode", "off"]);
    let env = function_env(&lab.endpoint, &[("CHAOSLINGR_ARCHIVE", "s3://chaoslingr-outcomes/chaoslingr/")]);
    let archive = start_fn("archive", &env).await;

    // WHEN the topic delivers both, and SNS delivers the outcome again
    let first = ok(&archive.invoke(sns_records(&[&outcome, &started]), INVOKE).await, &archive);
    let again = ok(&archive.invoke(sns_records(&[&outcome]), INVOKE).await, &archive);

    // THEN the outcome is one object, keyed by the day it concluded and its id, holding
    // exactly what was published; the start message was skipped
    let day = outcome["concluded_at"].as_str().unwrap()[..10].replace('-', "/");
    let key = format!("chaoslingr/outcomes/v1/{day}/{}.json", outcome["experiment_id"].as_str().unwrap());
    assert_eq!((first["archived"].as_u64(), first["skipped"].as_u64()), (Some(1), Some(1)), "{first}");
    assert_eq!(first["keys"][0], key.as_str());
    assert_eq!(again["keys"][0], key.as_str());
    assert_eq!(archived_keys(&emu, "chaoslingr-outcomes").await, vec![key.clone()]);
    let object = emu.s3().get_object().bucket("chaoslingr-outcomes").key(&key).send().await.unwrap();
    assert_eq!(object.content_type(), Some("application/json"));
    let body: Value = serde_json::from_slice(&object.body.collect().await.unwrap().into_bytes()).unwrap();
    assert_eq!(body, outcome);

    // AND a malformed event writes nothing and is not retried
    let inv = archive.invoke(json!({"Records": [{"EventSource": "aws:sns", "Sns": {"Message": "{"}}]}), INVOKE).await;
    assert!(inv.result.as_ref().is_err_and(|e| e.error_type == "ChaoSlingr.NotRetryable.BadEvent"), "{:?}", inv.result);
    // and so does a damaged outcome, which must reach the dead-letter queue, not vanish
    let mut damaged = outcome.clone();
    damaged["experiment_id"] = json!("../../escape");
    let inv = archive.invoke(sns_records(&[&damaged]), INVOKE).await;
    let e = inv.result.as_ref().expect_err("archived a damaged outcome");
    assert_eq!(e.error_type, "ChaoSlingr.NotRetryable.BadEvent", "{e}");
    assert!(e.error_message.contains("cannot name an object"), "{e}");
    assert_eq!(archived_keys(&emu, "chaoslingr-outcomes").await.len(), 1);

    // AND a write the policy does not grant is refused by IAM: not retryable (through a
    // lab of its own, whose deliberate denial stays out of the suite's calls log)
    let strict = Lab::start_enforced(&emu, &["--config-mode", "off", "--firewall-mode", "off"]);
    let elsewhere = function_env(&strict.endpoint, &[("CHAOSLINGR_ARCHIVE", "s3://chaoslingr-outcomes/other/")]);
    let denied = start_fn("archive", &elsewhere).await;
    let e = denied.invoke(sns_records(&[&outcome]), INVOKE).await.result.expect_err("archived outside its prefix");
    assert_eq!(e.error_type, "ChaoSlingr.NotRetryable.AwsError", "{e}");
    assert!(e.error_message.contains("AccessDenied"), "{e}");
    assert_eq!(archived_keys(&emu, "chaoslingr-outcomes").await.len(), 1);

    // AND a missing bucket needs a person: not retryable, and it says which bucket
    let missing = function_env(&emu.endpoint, &[("CHAOSLINGR_ARCHIVE", "s3://no-such-bucket/x/")]);
    let lost = start_fn("archive", &missing).await;
    let inv = lost.invoke(sns_records(&[&outcome]), INVOKE).await;
    let e = inv.result.as_ref().expect_err("archived into a missing bucket");
    assert_eq!(e.error_type, "ChaoSlingr.NotRetryable.AwsError", "{e}");
    assert!(e.error_message.contains("no-such-bucket") && e.error_message.contains("NoSuchBucket"), "{e}");

    // AND a bad CHAOSLINGR_ARCHIVE fails the cold start, naming it
    let bad = function_env(&emu.endpoint, &[("CHAOSLINGR_ARCHIVE", "my-bucket")]);
    let broken = FunctionProcess::start("archive", &function_bin("archive"), &bad).await;
    let inv = broken.invoke(sns_records(&[&outcome]), Duration::from_secs(20)).await;
    assert!(inv.result.is_err());
    let logs = broken.logs().join("\n");
    assert!(logs.contains("CHAOSLINGR_ARCHIVE") && logs.contains("expected s3://"), "{logs}");
    broken.kill();

    // AND `report --archive` reads it back
    let out = run_cli(
        &emu,
        &["report", "--archive", "s3://chaoslingr-outcomes/chaoslingr/", "--since", "1d", "--format", "json"],
        &[],
        LIMIT,
    )
    .await;
    assert_eq!(out.status, 0, "{}", out.stderr);
    let v = out.json();
    assert_eq!(v["experiments"], 1, "{v}");
    assert!(v["source"].as_str().unwrap().contains("s3://chaoslingr-outcomes/chaoslingr/"), "{v}");
    report("archive", &archive);
}
