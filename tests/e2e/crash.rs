//! Crash points: the real processes (the inject and judge functions through the loopback
//! Runtime API, and the `chaoslingr` CLI) are killed with SIGKILL at every write step,
//! once before the request reaches the emulator and once after the emulator applied it
//! but before the answer came back. The lab holds the chosen request and says so; nothing
//! in the product knows.
//!
//! After each kill a fresh judge alone, tick after tick, must bring the world back:
//! no experiment rule and no marker left, the outcome published at least once and at most
//! twice (publishing is at least once: a process killed after SNS accepted the message
//! but before its `recorded` mark is published again by the next tick, and one kill
//! interrupts at most one publish), the metrics counted exactly once, and nothing
//! written to any group or rule but the experiment's own (from the lab's call log).
//!
//! Every case has its own emulator and lab; a few run at once, since most of their time
//! is spent waiting for windows and ticks.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use chaoslingr_e2e::runtime_api::FunctionProcess;
use serde_json::json;
use tokio::sync::Semaphore;

use super::lambdas::{function_bin, function_env};
use super::*;

const WINDOW: &str = "10s";
const GRACE: &str = "5s";
/// How long a held request may take to arrive.
const HOLD_WAIT: Duration = Duration::from_secs(60);
/// How long the judge may take to bring the world back after a kill: the window, the
/// grace for unmarked rules and a person's runs, and ticks.
const RECOVERY: Duration = Duration::from_secs(75);
/// Cases running at once in one test.
const PARALLEL: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Inject,
    Judge,
    Cli,
}

impl Who {
    fn access_key(self) -> &'static str {
        match self {
            Who::Inject => "AKIDINJECT",
            Who::Judge => "AKIDJUDGE",
            Who::Cli => "AKIDCLIPERSON",
        }
    }
}

/// One write step: the IAM action, and text the request body contains when the action
/// alone does not single it out (which CreateTags).
#[derive(Debug, Clone, Copy)]
struct Step {
    name: &'static str,
    action: &'static str,
    contains: Option<&'static str>,
}

const fn step(name: &'static str, action: &'static str, contains: Option<&'static str>) -> Step {
    Step { name, action, contains }
}

/// The inject function's writes, in order.
const INJECT_STEPS: [Step; 4] = [
    step("authorize", "ec2:AuthorizeSecurityGroupIngress", None),
    step("group marker", "ec2:CreateTags", Some("chaoslingr:rule-id")),
    step("start metric", "cloudwatch:PutMetricData", None),
    step("start message", "sns:Publish", None),
];

/// The judge's writes when it concludes, in order.
const JUDGE_STEPS: [Step; 8] = [
    step("conclusion mark", "ec2:CreateTags", Some("chaoslingr:outcome")),
    step("revoke", "ec2:RevokeSecurityGroupIngress", None),
    step("outcome metrics", "cloudwatch:PutMetricData", None),
    step("counted mark", "ec2:CreateTags", Some("chaoslingr:recorded=counted")),
    step("outcome message", "sns:Publish", None),
    step("recorded mark", "ec2:CreateTags", Some("chaoslingr:recorded=true")),
    step("marker removal", "ec2:DeleteTags", None),
    // A tick that sees a detector fire before the others remembers it on the marker.
    step("seen mark", "ec2:CreateTags", Some("chaoslingr:seen")),
];

/// A person's run's writes, in order.
const CLI_STEPS: [Step; 6] = [
    step("authorize", "ec2:AuthorizeSecurityGroupIngress", None),
    step("group marker", "ec2:CreateTags", Some("chaoslingr:watcher")),
    step("revoke", "ec2:RevokeSecurityGroupIngress", None),
    step("outcome metrics", "cloudwatch:PutMetricData", None),
    step("outcome message", "sns:Publish", None),
    step("marker removal", "ec2:DeleteTags", None),
];

const PHASES: [&str; 2] = ["before", "after"];

/// One world: an emulator, the lab with IAM enforced, two opted-in groups (the target,
/// and one that must never be touched), one not opted in, and the outcomes' inbox.
struct World {
    emu: Emulator,
    lab: Lab,
    target: String,
    bystanders: Vec<String>,
    topic: String,
    inbox: String,
    log: PathBuf,
}

fn call_log() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let path = std::env::temp_dir().join(format!(
        "chaoslingr-crash-{}-{}.jsonl",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_file(&path);
    path
}

async fn world(config_latency: &str) -> World {
    let emu = Emulator::start().await;
    let vpc = create_vpc(&emu).await;
    let target = create_group(&emu, &vpc, "target", Some("true")).await;
    let other = create_group(&emu, &vpc, "other-opted-in", Some("true")).await;
    let outside = create_group(&emu, &vpc, "not-opted-in", None).await;
    for g in [&target, &other, &outside] {
        add_ingress(&emu, g, "tcp", 443, 443, "0.0.0.0/0").await;
    }
    let (topic, inbox) = topic_with_inbox(&emu).await;
    let log = call_log();
    let lab = Lab::start_enforced(
        &emu,
        &[
            "--config-latency",
            config_latency,
            "--firewall-latency",
            "1s",
            "--record-calls",
            log.to_str().expect("UTF-8 path"),
        ],
    );
    World { emu, lab, target, bystanders: vec![other, outside], topic, inbox, log }
}

impl World {
    fn env(&self) -> Vec<(&str, &str)> {
        let mut env = function_env(
            &self.lab.endpoint,
            &[("CHAOSLINGR_WINDOW", WINDOW), ("CHAOSLINGR_ORPHAN_GRACE", GRACE), ("CHAOSLINGR_TOPIC_ARN", &self.topic)],
        );
        env.push(("CHAOSLINGR_DETECTORS", DETECTORS));
        env
    }

    async fn function(&self, name: &str) -> FunctionProcess {
        let key = format!("AKID{}", name.to_uppercase());
        let mut env = self.env();
        env.push(("AWS_ACCESS_KEY_ID", &key));
        FunctionProcess::start(name, &function_bin(name), &env).await
    }

    fn calls(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON call line"))
            .collect()
    }
}

const DETECTORS: &str = "config:vpc-sg-open-only-to-authorized-ports,alarm:chaoslingr-lab-firewall";

/// Everything seen on the inbox so far (reading consumes it).
struct Inbox(Vec<Value>);

impl Inbox {
    async fn drain(&mut self, w: &World) {
        loop {
            let got = receive_all(&w.emu, &w.inbox).await;
            if got.is_empty() {
                return;
            }
            self.0.extend(got.iter().map(|(b, _)| serde_json::from_str::<Value>(b).expect("JSON message")));
        }
    }

    fn outcomes_of(&self, id: &str) -> usize {
        self.0.iter().filter(|m| m["schema"] == "chaoslingr.outcome/v1" && m["experiment_id"] == id).count()
    }

    fn ids(&self) -> BTreeSet<String> {
        self.0.iter().filter_map(|m| m["experiment_id"].as_str().map(String::from)).collect()
    }
}

/// The experiments the world shows: on rules, on group markers.
async fn visible_ids(w: &World) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for r in experiment_rules(&w.emu).await {
        for t in r.tags() {
            if t.key() == Some(EXPERIMENT_TAG) {
                ids.insert(t.value().unwrap_or_default().to_string());
            }
        }
    }
    for g in std::iter::once(&w.target).chain(&w.bystanders) {
        for (k, v) in group_tags(&w.emu, g).await {
            if k == EXPERIMENT_TAG {
                ids.insert(v);
            }
        }
    }
    ids
}

fn marker_keys(tags: &[(String, String)]) -> Vec<String> {
    tags.iter().map(|(k, _)| k.clone()).filter(|k| k.starts_with("chaoslingr:") && k != OPT_IN).collect()
}

/// The sum of a ChaoSlingr metric with these dimensions over the last hours.
async fn metric_sum(w: &World, metric: &str, dims: &[(&str, &str)]) -> f64 {
    let now = SystemTime::now();
    let mut req = w
        .emu
        .cloudwatch()
        .get_metric_statistics()
        .namespace("ChaoSlingr")
        .metric_name(metric)
        .start_time(aws_smithy_types::DateTime::from(now - Duration::from_secs(3 * 3600)))
        .end_time(aws_smithy_types::DateTime::from(now + Duration::from_secs(3600)))
        .period(3600)
        .statistics(aws_sdk_cloudwatch::types::Statistic::Sum);
    for (name, value) in dims {
        req = req.dimensions(aws_sdk_cloudwatch::types::Dimension::builder().name(*name).value(*value).build());
    }
    let out = req.send().await.expect("GetMetricStatistics");
    out.datapoints().iter().filter_map(|d| d.sum()).sum()
}

/// Kills `who` at `step` (`phase`), lets a fresh judge recover, and checks the world.
/// Returns a one-line summary.
async fn crash_case(who: Who, step: Step, phase: &str) -> String {
    let case = format!("{who:?} killed {phase} `{}` ({})", step.name, step.action);
    // The seen mark needs one detector to fire well before the other.
    let w = world(if step.name == "seen mark" { "6s" } else { "1s" }).await;
    let mut inbox = Inbox(Vec::new());
    let mut spec = json!({ "action": step.action, "phase": phase, "access_key": who.access_key() });
    if let Some(text) = step.contains {
        spec["contains"] = text.into();
    }

    match who {
        Who::Inject => {
            let inject = w.function("inject").await;
            let hold = w.lab.arm_hold(spec).await;
            let invocation = inject.invoke(json!({ "target": w.target }), Duration::from_secs(90));
            tokio::pin!(invocation);
            tokio::select! {
                state = w.lab.wait_held(hold, HOLD_WAIT) => {
                    assert_eq!(state["state"], "holding", "{case}: the hold never held: {state}\n{}", inject.logs().join("\n"));
                }
                done = &mut invocation => panic!("{case}: the inject finished without reaching the hold: {:?}", done.result),
            }
            inject.kill();
            w.lab.release_hold(hold).await;
        }
        Who::Judge => {
            let inject = w.function("inject").await;
            let started = inject.invoke(json!({ "target": w.target }), Duration::from_secs(60)).await;
            assert_eq!(started.result.as_ref().map(|v| v["status"].clone()).ok(), Some(json!("started")), "{case}");
            inject.kill();
            let hold = w.lab.arm_hold(spec).await;
            let judge = w.function("judge").await;
            let deadline = Instant::now() + HOLD_WAIT;
            loop {
                assert!(Instant::now() < deadline, "{case}: no judge tick reached the hold");
                let tick = judge.invoke(json!({}), Duration::from_secs(60));
                tokio::pin!(tick);
                let held = tokio::select! {
                    state = w.lab.wait_held(hold, Duration::from_secs(30)) => state["state"] == "holding",
                    done = &mut tick => {
                        assert!(done.result.is_ok(), "{case}: tick failed: {:?}", done.result);
                        false
                    }
                };
                if held {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            judge.kill();
            w.lab.release_hold(hold).await;
        }
        Who::Cli => {
            let hold = w.lab.arm_hold(spec).await;
            let mut cli = w.lab.cli();
            cli.env("AWS_ACCESS_KEY_ID", who.access_key())
                .env("CHAOSLINGR_DETECTORS", DETECTORS)
                .args(["run", "--target", &w.target, "--window", WINDOW, "--poll-interval", "1s"])
                .args(["--topic-arn", &w.topic, "--json"]);
            let mut child = cli.spawn().expect("spawn chaoslingr");
            let state = w.lab.wait_held(hold, HOLD_WAIT).await;
            if state["state"] != "holding" {
                let _ = child.start_kill();
                let out = child.wait_with_output().await.expect("wait");
                panic!(
                    "{case}: the hold never held: {state}\nstdout: {}\nstderr: {}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            child.start_kill().expect("SIGKILL chaoslingr");
            let status = child.wait().await.expect("reap chaoslingr");
            assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(libc::SIGKILL), "{case}");
            w.lab.release_hold(hold).await;
        }
    }

    // The experiments the kill left behind (none when it came before the rule existed).
    inbox.drain(&w).await;
    let mut ids = visible_ids(&w).await;
    ids.extend(inbox.ids());
    let created: BTreeSet<String> = w
        .calls()
        .iter()
        .filter_map(|c| c["created"].as_array().cloned())
        .flatten()
        .filter_map(|r| r.as_str().map(String::from))
        .collect();
    assert_eq!(ids.len(), created.len(), "{case}: experiments {ids:?}, rules created {created:?}");

    // WHEN a fresh judge ticks until the world is back
    let judge = w.function("judge").await;
    let deadline = Instant::now() + RECOVERY;
    let mut ticks = 0;
    loop {
        let tick = judge.invoke(json!({}), Duration::from_secs(60)).await;
        ticks += 1;
        assert!(tick.result.is_ok(), "{case}: recovery tick failed: {:?}\n{}", tick.result, judge.logs().join("\n"));
        inbox.drain(&w).await;
        let rules_left = experiment_rules(&w.emu).await.len();
        let marker_left = !marker_keys(&group_tags(&w.emu, &w.target).await).is_empty();
        let unpublished = ids.iter().filter(|id| inbox.outcomes_of(id) == 0).count();
        if rules_left == 0 && !marker_left && unpublished == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{case}: after {ticks} ticks: {rules_left} experiment rules, marker left: {marker_left}, {unpublished} outcomes unpublished\nlast tick: {:?}",
            tick.result
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // One more tick: nothing left to do, nothing published again.
    let idle = judge.invoke(json!({}), Duration::from_secs(60)).await;
    assert!(idle.result.is_ok(), "{case}");
    let_time_pass("a message published again would reach the inbox meanwhile", Duration::from_millis(300)).await;
    inbox.drain(&w).await;

    // THEN no experiment rule and no marker anywhere
    assert!(experiment_rules(&w.emu).await.is_empty(), "{case}");
    for g in std::iter::once(&w.target).chain(&w.bystanders) {
        let tags = group_tags(&w.emu, g).await;
        assert!(marker_keys(&tags).is_empty(), "{case}: marker left on {g}: {tags:?}");
    }
    // AND every rule the experiment created is gone; the groups' own rules are intact
    let target_rules = ingress_of(&w.emu, &w.target).await;
    assert_eq!(target_rules.len(), 1, "{case}: {target_rules:?}");
    assert!(target_rules[0].starts_with("tcp 443-443 0.0.0.0/0 "), "{case}: {target_rules:?}");
    for g in &w.bystanders {
        assert_eq!(ingress_of(&w.emu, g).await.len(), 1, "{case}: {g}");
    }
    // AND each experiment's outcome was published at least once and at most twice
    let mut published = Vec::new();
    for id in &ids {
        let n = inbox.outcomes_of(id);
        assert!((1..=2).contains(&n), "{case}: {id} published {n} times");
        published.push(n);
    }
    // AND counted exactly once
    let experiments = metric_sum(&w, "Experiments", &[("Experiment", "port-change")]).await;
    assert_eq!(experiments, ids.len() as f64, "{case}: Experiments counted {experiments} for {ids:?}");
    for id in &ids {
        let recorded = metric_sum(&w, "Recorded", &[("Experiment", "port-change"), ("ExperimentId", id)]).await;
        assert_eq!(recorded, 1.0, "{case}: {id} counted {recorded} times");
    }
    // AND nothing was written to any group or rule but the experiment's own
    let mut allowed: BTreeSet<String> = created.clone();
    allowed.insert(w.target.clone());
    for call in w.calls() {
        let Some(targets) = call["targets"].as_array() else { continue };
        for t in targets.iter().filter_map(Value::as_str) {
            assert!(allowed.contains(t), "{case}: a write to {t}, not the experiment's: {call}");
        }
    }
    let _ = std::fs::remove_file(&w.log);
    format!("{case}: recovered in {ticks} ticks; published {published:?}")
}

/// Runs every step × phase of `who`, a few at a time; fails with every failing case.
async fn crash_all(who: Who, steps: &'static [Step]) {
    let gate = Arc::new(Semaphore::new(PARALLEL));
    let mut cases = tokio::task::JoinSet::new();
    for step in steps {
        for phase in PHASES {
            let gate = gate.clone();
            cases.spawn(async move {
                let _permit = gate.acquire_owned().await.expect("semaphore");
                crash_case(who, *step, phase).await
            });
        }
    }
    let total = cases.len();
    let mut failures = Vec::new();
    while let Some(done) = cases.join_next().await {
        match done {
            Ok(summary) => eprintln!("CRASHPOINT ok {summary}"),
            Err(e) => {
                let message = e
                    .try_into_panic()
                    .ok()
                    .and_then(|p| {
                        p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    })
                    .unwrap_or_else(|| "cancelled".into());
                eprintln!("CRASHPOINT FAILED {message}");
                failures.push(message);
            }
        }
    }
    eprintln!(
        "CRASHPOINTS {who:?}: {} steps x {} kill modes = {total} cases, {} failed",
        steps.len(),
        PHASES.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{} of {total} crash cases failed:\n{}", failures.len(), failures.join("\n\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_inject_function_killed_at_any_write_leaves_nothing_the_judge_cannot_undo() {
    crash_all(Who::Inject, &INJECT_STEPS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_judge_killed_at_any_write_is_finished_by_the_next_judge_exactly_once() {
    crash_all(Who::Judge, &JUDGE_STEPS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_persons_run_killed_at_any_write_is_closed_by_the_judge() {
    crash_all(Who::Cli, &CLI_STEPS).await;
}
