//! Soak: complete scheduled experiments (the real inject and judge functions, one
//! instance each as the module's reserved concurrency of 1 allows, short windows, the
//! lab's Config rule and firewall) through a lab that puts random faults on every call
//! the functions make: throttling, 5xx, dropped connections (before or after the
//! emulator applied the request) and answers slower than the SDK's attempt timeout.
//!
//! At the end the judge ticks on (faults still on) until nothing is left or the drain
//! time runs out, and the soak reports: runs, faults by kind and service, ports left
//! open, outcomes published once / missing / more than once, metrics counted once /
//! missing / more than once, and writes outside the experiments' own groups and rules.
//! Ports left open and foreign writes fail it.
//!
//! `cargo xtask test` runs a short soak; `cargo xtask soak --runs N --fault-rate R`
//! runs the long one (this test is `#[ignore]`d and reads `CHAOSLINGR_SOAK_*`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use chaoslingr_e2e::runtime_api::FunctionProcess;
use serde_json::json;

use super::lambdas::{function_bin, function_env};
use super::*;

/// What a soak is asked to do.
#[derive(Debug, Clone)]
struct SoakPlan {
    runs: usize,
    fault_rate: f64,
    seed: u64,
    groups: usize,
    /// How long a slow answer takes: past the SDK's 20-second attempt timeout.
    slow: &'static str,
    drain: Duration,
}

/// What a soak saw.
#[derive(Debug, Default)]
struct SoakReport {
    invocations: usize,
    inject_results: BTreeMap<String, usize>,
    experiments: usize,
    ticks: usize,
    tick_errors: usize,
    restarts: usize,
    faults: Value,
    ports_left_open: Vec<String>,
    markers_left: Vec<String>,
    published_once: usize,
    published_missing: Vec<String>,
    published_more: Vec<(String, usize)>,
    outcomes: BTreeMap<String, usize>,
    counted_once: usize,
    counted_missing: Vec<String>,
    counted_more: Vec<(String, f64)>,
    foreign_writes: Vec<String>,
    elapsed: Duration,
}

impl SoakReport {
    fn print(&self, plan: &SoakPlan) {
        let mut out = String::new();
        use std::fmt::Write as _;
        let _ = writeln!(
            out,
            "SOAK runs:                {} experiments started by {} inject invocations (asked for {})",
            self.experiments, self.invocations, plan.runs
        );
        let _ = writeln!(out, "SOAK inject results:      {:?}", self.inject_results);
        let _ = writeln!(
            out,
            "SOAK judge ticks:         {} ({} returned an error), function restarts after a timeout: {}",
            self.ticks, self.tick_errors, self.restarts
        );
        let counts = &self.faults["counts"];
        let _ = writeln!(
            out,
            "SOAK faults:              {} of {} function calls at rate {} (seed {}), {} of them applied by the emulator (answer dropped or late)",
            counts["injected"].as_object().map(|m| m.values().flat_map(|k| k.as_object().into_iter().flat_map(|o| o.values())).filter_map(Value::as_u64).sum::<u64>()).unwrap_or(0),
            counts["requests"],
            plan.fault_rate,
            plan.seed,
            counts["applied"]
        );
        if let Some(by_service) = counts["injected"].as_object() {
            for (service, kinds) in by_service {
                let _ = writeln!(out, "SOAK   {service:<12} {kinds}");
            }
        }
        let _ = writeln!(out, "SOAK ports left open:     {} {:?}", self.ports_left_open.len(), self.ports_left_open);
        let _ = writeln!(out, "SOAK markers left:        {} {:?}", self.markers_left.len(), self.markers_left);
        let _ = writeln!(
            out,
            "SOAK outcomes published:  {} once, {} missing, {} more than once {:?}",
            self.published_once,
            self.published_missing.len(),
            self.published_more.len(),
            self.published_more
        );
        let _ = writeln!(out, "SOAK outcomes:            {:?}", self.outcomes);
        let _ = writeln!(
            out,
            "SOAK metrics counted:     {} once, {} missing {:?}, {} more than once {:?}",
            self.counted_once,
            self.counted_missing.len(),
            self.counted_missing,
            self.counted_more.len(),
            self.counted_more
        );
        let _ = writeln!(out, "SOAK foreign writes:      {} {:?}", self.foreign_writes.len(), self.foreign_writes);
        let _ = writeln!(out, "SOAK elapsed:             {:.0}s", self.elapsed.as_secs_f64());
        eprint!("{out}");
    }
}

/// A call log of one world's own (worlds side by side must not share one).
fn soak_log() -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let path = std::env::temp_dir().join(format!("chaoslingr-soak-{}-{n}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

async fn start(name: &str, env: &[(&str, &str)]) -> FunctionProcess {
    let key = format!("AKID{}", name.to_uppercase());
    let mut env = env.to_vec();
    env.push(("AWS_ACCESS_KEY_ID", &key));
    FunctionProcess::start(name, &function_bin(name), &env).await
}

async fn soak(plan: SoakPlan) -> SoakReport {
    let started = Instant::now();
    let emu = Emulator::start().await;
    let vpc = create_vpc(&emu).await;
    let mut opted_in = BTreeSet::new();
    for i in 0..plan.groups {
        let g = create_group(&emu, &vpc, &format!("soak-{i}"), Some("true")).await;
        add_ingress(&emu, &g, "tcp", 443, 443, "0.0.0.0/0").await;
        opted_in.insert(g);
    }
    let mut outside = Vec::new();
    for i in 0..3 {
        let g = create_group(&emu, &vpc, &format!("outside-{i}"), None).await;
        add_ingress(&emu, &g, "tcp", 443, 443, "0.0.0.0/0").await;
        outside.push(g);
    }
    let (topic, inbox) = topic_with_inbox(&emu).await;
    let log = soak_log();
    let rate = plan.fault_rate.to_string();
    let seed = plan.seed.to_string();
    let mut lab_args =
        vec!["--config-latency", "2s", "--firewall-latency", "1s", "--record-calls", log.to_str().expect("UTF-8 path")];
    if plan.fault_rate > 0.0 {
        lab_args.extend([
            "--wire-faults",
            &rate,
            "--wire-fault-seed",
            &seed,
            "--slow-answer",
            plan.slow,
            "--wire-fault-keys",
            "AKIDINJECT,AKIDJUDGE",
        ]);
    }
    let lab = Lab::start_enforced(&emu, &lab_args);
    let max_active = (plan.groups * 2 / 3).max(1).to_string();
    let env = function_env(
        &lab.endpoint,
        &[
            // Detectors that judge each group on its own: a firewall alarm already in ALARM
            // for one experiment cannot time another, and the pre-flight rightly refuses to
            // start one then, so the soak's concurrent experiments leave it out.
            ("CHAOSLINGR_DETECTORS", "config:vpc-sg-open-only-to-authorized-ports,securityhub:chaoslingr-lab/firewall"),
            ("CHAOSLINGR_WINDOW", "10s"),
            ("CHAOSLINGR_ORPHAN_GRACE", "5s"),
            ("CHAOSLINGR_MAX_ACTIVE", &max_active),
            ("CHAOSLINGR_TOPIC_ARN", &topic),
        ],
    );

    let mut report = SoakReport::default();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));

    // The judge: one instance (reserved concurrency 1), ticking back to back, a fresh
    // instance after a timeout (as Lambda replaces a timed-out environment).
    let judge_env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let judge_done = done.clone();
    // Ticks begun and ended, to wait for one whole tick.
    let (begun, ended) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (judge_begun, judge_ended) = (begun.clone(), ended.clone());
    let judge = tokio::spawn(async move {
        let env: Vec<(&str, &str)> = judge_env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut f = start("judge", &env).await;
        let (mut ticks, mut errors, mut restarts) = (0, 0, 0);
        while !judge_done.load(std::sync::atomic::Ordering::SeqCst) {
            judge_begun.fetch_add(1, Ordering::SeqCst);
            let inv = f.invoke(json!({}), Duration::from_secs(60)).await;
            judge_ended.fetch_add(1, Ordering::SeqCst);
            ticks += 1;
            if inv.result.is_err() {
                errors += 1;
            }
            if !f.is_running() {
                restarts += 1;
                f = start("judge", &env).await;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        (ticks, errors, restarts)
    });

    // The inject: one instance, invoked until enough experiments started.
    let mut inject = start("inject", &env).await;
    let mut experiments = BTreeSet::new();
    while experiments.len() < plan.runs {
        let inv = inject.invoke(json!({}), Duration::from_secs(60)).await;
        report.invocations += 1;
        let status = match &inv.result {
            Ok(v) => v["status"].as_str().unwrap_or("?").to_string(),
            Err(e) => format!("error {}", e.error_type),
        };
        let ended = status != "started";
        *report.inject_results.entry(status).or_default() += 1;
        if !inject.is_running() {
            report.restarts += 1;
            inject = start("inject", &env).await;
        }
        let before = experiments.len();
        experiments = started_experiments(&log);
        if experiments.len() / 50 > before / 50 {
            eprintln!(
                "SOAK progress (seed {}): {} of {} experiments started, {:.0}s",
                plan.seed,
                experiments.len(),
                plan.runs,
                started.elapsed().as_secs_f64()
            );
        }
        if report.invocations > plan.runs * 4 + 50 {
            eprintln!(
                "SOAK stopping: {} invocations started only {} experiments",
                report.invocations,
                experiments.len()
            );
            break;
        }
        if ended {
            // Most likely the maximum of active experiments: let the judge catch up.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    drop(inject);

    // Drain: the judge ticks on until nothing is left (faults still on).
    let drain_until = Instant::now() + plan.drain;
    loop {
        let rules = experiment_rules(&emu).await.len();
        let mut marked = 0;
        for g in &opted_in {
            if group_tags(&emu, g).await.iter().any(|(k, _)| k == EXPERIMENT_TAG) {
                marked += 1;
            }
        }
        if (rules == 0 && marked == 0) || Instant::now() > drain_until {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    // One more whole tick after the world looks clean, for the last recordings (a tick can
    // take the SDK's attempt timeout and more when an answer is slow).
    let after = begun.load(Ordering::SeqCst) + 1;
    poll_until("a judge tick begun after the world looked clean", Duration::from_secs(180), || async {
        ended.load(Ordering::SeqCst) >= after
    })
    .await;
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let (ticks, tick_errors, judge_restarts) = judge.await.expect("judge task");
    report.ticks = ticks;
    report.tick_errors = tick_errors;
    report.restarts += judge_restarts;
    report.faults = lab.admin("GET", "/_lab/faults", &Value::Null).await.1;

    // What is left.
    let experiments = started_experiments(&log);
    report.experiments = experiments.len();
    for r in experiment_rules(&emu).await {
        report.ports_left_open.push(format!(
            "{} {} {}-{}",
            r.group_id().unwrap_or_default(),
            r.security_group_rule_id().unwrap_or_default(),
            r.from_port().unwrap_or_default(),
            r.to_port().unwrap_or_default()
        ));
    }
    for g in opted_in.iter().chain(&outside) {
        let keys: Vec<String> = group_tags(&emu, g)
            .await
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| k.starts_with("chaoslingr:") && k != OPT_IN)
            .collect();
        if !keys.is_empty() {
            report.markers_left.push(format!("{g}: {}", keys.join(",")));
        }
    }
    // Outcomes published.
    let mut published: BTreeMap<String, usize> = BTreeMap::new();
    loop {
        // Received messages stay hidden for an hour: with hundreds of them, the default
        // 30 seconds would let the first ones come back before the queue reads empty.
        let out = emu
            .sqs()
            .receive_message()
            .queue_url(&inbox)
            .max_number_of_messages(10)
            .visibility_timeout(3600)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        let got: Vec<String> = out.messages().iter().map(|m| m.body().unwrap_or_default().to_string()).collect();
        if got.is_empty() {
            break;
        }
        for body in got {
            let m: Value = serde_json::from_str(&body).expect("JSON message");
            if m["schema"] == "chaoslingr.outcome/v1" {
                if let Some(id) = m["experiment_id"].as_str() {
                    *published.entry(id.to_string()).or_default() += 1;
                    *report.outcomes.entry(m["outcome"].as_str().unwrap_or("?").to_string()).or_default() += 1;
                }
            }
        }
    }
    for id in &experiments {
        match published.get(id).copied().unwrap_or(0) {
            0 => report.published_missing.push(id.clone()),
            1 => report.published_once += 1,
            n => report.published_more.push((id.clone(), n)),
        }
        let counted = recorded_sum(&emu, id).await;
        if counted == 0.0 {
            report.counted_missing.push(id.clone());
        } else if counted == 1.0 {
            report.counted_once += 1;
        } else {
            report.counted_more.push((id.clone(), counted));
        }
    }
    // Writes outside the experiments' own groups and rules.
    let created: BTreeSet<String> = calls(&log)
        .iter()
        .filter_map(|c| c["created"].as_array().cloned())
        .flatten()
        .filter_map(|r| r.as_str().map(String::from))
        .collect();
    for call in calls(&log) {
        let Some(targets) = call["targets"].as_array() else { continue };
        for t in targets.iter().filter_map(Value::as_str) {
            let ok = if t.starts_with("sg-") { opted_in.contains(t) } else { created.contains(t) };
            // A revoke may name a rule that no longer exists (already revoked): it names
            // nothing else, and the emulator refuses it.
            let refused = call["status"].as_u64().is_some_and(|s| s >= 400) && !t.starts_with("sg-");
            if !ok && !refused {
                report.foreign_writes.push(format!("{} {} -> {t}", call["access_key"], call["action"]));
            }
        }
    }
    report.elapsed = started.elapsed();
    let _ = std::fs::remove_file(&log);
    report
}

fn calls(log: &PathBuf) -> Vec<Value> {
    std::fs::read_to_string(log).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// Every experiment whose rule the emulator created: authorize calls it applied, with
/// the experiment id they tagged the rule with.
fn started_experiments(log: &PathBuf) -> BTreeSet<String> {
    calls(log)
        .iter()
        .filter(|c| c["action"] == "ec2:AuthorizeSecurityGroupIngress")
        .filter(|c| c["created"].as_array().is_some_and(|a| !a.is_empty()))
        .filter_map(|c| c["tags"][EXPERIMENT_TAG].as_str().map(String::from))
        .collect()
}

/// The experiment's `Recorded` metric: 1 when its outcome was counted once.
async fn recorded_sum(emu: &Emulator, id: &str) -> f64 {
    let now = SystemTime::now();
    let dim = |n: &str, v: &str| aws_sdk_cloudwatch::types::Dimension::builder().name(n).value(v).build();
    let out = emu
        .cloudwatch()
        .get_metric_statistics()
        .namespace("ChaoSlingr")
        .metric_name("Recorded")
        .dimensions(dim("Experiment", "port-change"))
        .dimensions(dim("ExperimentId", id))
        .start_time(aws_smithy_types::DateTime::from(now - Duration::from_secs(6 * 3600)))
        .end_time(aws_smithy_types::DateTime::from(now + Duration::from_secs(3600)))
        .period(86_400)
        .statistics(aws_sdk_cloudwatch::types::Statistic::Sum)
        .send()
        .await
        .expect("GetMetricStatistics");
    out.datapoints().iter().filter_map(|d| d.sum()).sum()
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => {
            v.trim().parse().unwrap_or_else(|_| panic!("{name}=`{v}` is not a valid value"))
        }
        _ => default,
    }
}

fn check(report: &SoakReport) {
    assert!(report.ports_left_open.is_empty(), "ports left open: {:?}", report.ports_left_open);
    assert!(report.foreign_writes.is_empty(), "writes outside the experiments: {:?}", report.foreign_writes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_short_soak_through_a_faulty_network_leaves_no_port_open_and_touches_nothing_else() {
    // GIVEN 24 experiments through a lab that faults 4% of the functions' calls
    let plan = SoakPlan {
        runs: 24,
        fault_rate: 0.04,
        seed: 20261202,
        groups: 12,
        slow: "21s",
        drain: Duration::from_secs(150),
    };
    // WHEN they run to the end
    let report = soak(plan.clone()).await;
    report.print(&plan);
    // THEN every port is closed, nothing else was written to, and every outcome was
    // published at least once and counted exactly once
    check(&report);
    assert!(report.experiments >= plan.runs, "{report:?}");
    assert!(report.markers_left.is_empty(), "{:?}", report.markers_left);
    assert!(report.published_missing.is_empty(), "{:?}", report.published_missing);
    assert!(report.counted_missing.is_empty() && report.counted_more.is_empty(), "{report:?}");
}

/// The long soak: `cargo xtask soak --runs N --fault-rate R [--seed S] [--worlds W]`.
/// The runs are shared by W worlds side by side (each its own emulator, lab, inject and
/// judge, seeded S, S+1, ...): a slow answer stalls its own world's function for the SDK's
/// attempt timeout, so one world would spend most of a long soak waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "long; run with `cargo xtask soak`"]
async fn soak_from_the_environment() {
    let runs: usize = env_or("CHAOSLINGR_SOAK_RUNS", 1000);
    let worlds: usize = env_or("CHAOSLINGR_SOAK_WORLDS", 4).clamp(1, 16);
    let plan = SoakPlan {
        runs,
        fault_rate: env_or("CHAOSLINGR_SOAK_FAULT_RATE", 0.05),
        seed: env_or("CHAOSLINGR_SOAK_SEED", 1),
        groups: env_or("CHAOSLINGR_SOAK_GROUPS", 24),
        slow: "21s",
        drain: Duration::from_secs(env_or("CHAOSLINGR_SOAK_DRAIN_SECS", 300)),
    };
    assert!((0.0..=1.0).contains(&plan.fault_rate), "CHAOSLINGR_SOAK_FAULT_RATE must be between 0 and 1");
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..worlds {
        let share = runs / worlds + usize::from(w < runs % worlds);
        let world = SoakPlan { runs: share, seed: plan.seed + w as u64, ..plan.clone() };
        tasks.spawn(async move { soak(world).await });
    }
    let mut total = SoakReport::default();
    while let Some(done) = tasks.join_next().await {
        total.merge(done.expect("a soak world panicked"));
    }
    total.elapsed = started.elapsed();
    eprintln!("SOAK {worlds} worlds side by side");
    total.print(&plan);
    check(&total);
}

impl SoakReport {
    /// Adds another world's report to this one.
    fn merge(&mut self, other: SoakReport) {
        self.invocations += other.invocations;
        for (k, v) in other.inject_results {
            *self.inject_results.entry(k).or_default() += v;
        }
        self.experiments += other.experiments;
        self.ticks += other.ticks;
        self.tick_errors += other.tick_errors;
        self.restarts += other.restarts;
        self.faults = merge_counts(std::mem::take(&mut self.faults), &other.faults);
        self.ports_left_open.extend(other.ports_left_open);
        self.markers_left.extend(other.markers_left);
        self.published_once += other.published_once;
        self.published_missing.extend(other.published_missing);
        self.published_more.extend(other.published_more);
        for (k, v) in other.outcomes {
            *self.outcomes.entry(k).or_default() += v;
        }
        self.counted_once += other.counted_once;
        self.counted_missing.extend(other.counted_missing);
        self.counted_more.extend(other.counted_more);
        self.foreign_writes.extend(other.foreign_writes);
    }
}

/// Sums two `GET /_lab/faults` answers' counts.
fn merge_counts(a: Value, b: &Value) -> Value {
    if a.is_null() {
        return b.clone();
    }
    let mut out = a;
    let add = |x: &Value, y: &Value| json!(x.as_u64().unwrap_or(0) + y.as_u64().unwrap_or(0));
    out["counts"]["requests"] = add(&out["counts"]["requests"], &b["counts"]["requests"]);
    out["counts"]["applied"] = add(&out["counts"]["applied"], &b["counts"]["applied"]);
    if let Some(services) = b["counts"]["injected"].as_object() {
        for (service, kinds) in services {
            for (kind, n) in kinds.as_object().into_iter().flatten() {
                let slot = &mut out["counts"]["injected"][service][kind];
                *slot = add(slot, n);
            }
        }
    }
    out
}
