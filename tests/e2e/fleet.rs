//! The scheduled functions of a hub deployment: the inject and judge binaries, with the
//! hub's own IAM policies (`AKIDHUBINJECT`, `AKIDHUBJUDGE`: the module's policies when
//! `targets` is set, which hold no EC2 permission) and the target role's in each account,
//! enforced by the lab. And `fleet_tick_cost`, the measurement behind BENCHMARKS.md's
//! "one judge tick over 3 accounts × 2 regions" (`cargo xtask bench-fleet`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use chaoslingr_e2e::runtime_api::FunctionProcess;
use chaoslingr_e2e::*;
use serde_json::{json, Value};

use crate::lambdas::{function_bin, function_env};

const ACCOUNTS: [&str; 3] = TARGET_ACCOUNTS;
const REGIONS: [&str; 2] = TARGET_REGIONS;
const INVOKE: Duration = Duration::from_secs(90);

fn targets_json() -> String {
    let accounts: Vec<Value> = ACCOUNTS.iter().map(|a| json!({"id": a})).collect();
    json!({"accounts": accounts, "regions": REGIONS, "role": TARGET_ROLE}).to_string()
}

/// `groups` opted-in groups (and one opted out) in every account and region; each
/// opted-in group's scope.
async fn seed_fleet(emu: &Emulator, groups: usize) -> BTreeMap<String, (String, String)> {
    let layout: Vec<(&str, &str, usize)> =
        ACCOUNTS.iter().flat_map(|a| REGIONS.iter().map(move |r| (*a, *r, groups))).collect();
    emu.seed_targets(&layout).await
}

/// A hub function (`inject` or `judge`) with the hub's access key and the targets.
async fn hub_fn(name: &str, key: &str, endpoint: &str, extra: &[(&str, &str)]) -> FunctionProcess {
    let targets = targets_json();
    let mut env = function_env(endpoint, extra);
    env.push(("AWS_ACCESS_KEY_ID", key));
    env.push(("CHAOSLINGR_TARGETS", &targets));
    FunctionProcess::start(name, &function_bin(name), &env).await
}

fn ok(result: &runtime_api::Invocation, f: &FunctionProcess) -> Value {
    match &result.result {
        Ok(v) => v.clone(),
        Err(e) => panic!("invocation failed: {e}\nlogs:\n{}", f.logs().join("\n")),
    }
}

fn scopes_of(outcomes: &[Value]) -> BTreeSet<(String, String)> {
    outcomes
        .iter()
        .map(|o| (o["account"].as_str().unwrap_or("?").to_string(), o["region"].as_str().unwrap_or("?").to_string()))
        .collect()
}

#[tokio::test]
async fn hub_functions_start_and_conclude_experiments_in_target_accounts_under_the_hub_policies() {
    let emu = Emulator::start().await;
    let groups = seed_fleet(&emu, 1).await;
    let lab = Lab::start_recorded(&emu, &[]);
    // The topic in the hub (the rendered hub policies may publish to `outcomes` only);
    // the Config rule is read in each target account with its role.
    let (topic, inbox) = topic_with_inbox(&emu).await;
    let env = [
        ("CHAOSLINGR_WINDOW", "10s"),
        ("CHAOSLINGR_MAX_ACTIVE_TOTAL", "2"),
        ("CHAOSLINGR_TOPIC_ARN", topic.as_str()),
        ("CHAOSLINGR_DETECTORS", "config:vpc-sg-open-only-to-authorized-ports"),
    ];
    let inject = hub_fn("inject", "AKIDHUBINJECT", &lab.endpoint, &env).await;
    let judge = hub_fn("judge", "AKIDHUBJUDGE", &lab.endpoint, &env).await;

    // Two starts: one per account at most (CHAOSLINGR_MAX_ACTIVE=1), two in all; the third
    // is a quiet pre-flight abort.
    let mut started = BTreeSet::new();
    for _ in 0..2 {
        let answer = ok(&inject.invoke(json!({}), INVOKE).await, &inject);
        assert_eq!(answer["status"], "started", "{answer}");
        let start = &answer["start"];
        let target = start["target_id"].as_str().unwrap();
        let scope = (start["account"].as_str().unwrap().to_string(), start["region"].as_str().unwrap().to_string());
        assert_eq!(groups.get(target), Some(&scope), "started where its target is: {start}");
        started.insert(scope);
    }
    let accounts: BTreeSet<&str> = started.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(accounts.len(), 2, "at most one active experiment per account: {started:?}");
    let third = ok(&inject.invoke(json!({}), INVOKE).await, &inject);
    assert_eq!(third["status"], "ended", "{third}");
    assert_eq!(third["outcome"]["outcome"], "aborted");
    assert!(third["outcome"]["reason"].as_str().unwrap().contains("CHAOSLINGR_MAX_ACTIVE_TOTAL"), "{third}");
    assert_eq!(third["outcome"]["quiet"], true);

    // A named target obeys the limits too: one in a started account's other region.
    let (full_account, full_region) = started.iter().next().unwrap().clone();
    let other =
        groups.iter().find(|(_, (a, r))| *a == full_account && *r != full_region).map(|(g, _)| g.clone()).unwrap();
    let named = ok(&inject.invoke(json!({"target": other}), INVOKE).await, &inject);
    assert_eq!(named["status"], "ended", "{named}");
    assert_eq!(named["outcome"]["outcome"], "aborted", "{named}");
    assert!(named["outcome"]["reason"].as_str().unwrap().contains("CHAOSLINGR_MAX_ACTIVE"), "{named}");
    let other_region = if full_region == REGIONS[0] { REGIONS[1] } else { REGIONS[0] };
    let ec2 = emu.ec2_in(&full_account, other_region).await;
    assert!(experiment_rules_on(&ec2).await.is_empty(), "nothing opened in {full_account}/{other_region}");

    let tick = ok(&judge.invoke(json!({}), INVOKE).await, &judge);
    assert_eq!(tick["watching"].as_array().unwrap().len(), 2, "{tick}");
    assert_eq!(tick["scopes"].as_array().unwrap().len(), 6, "{tick}");
    assert!(tick["failed_scopes"].as_array().unwrap().is_empty(), "{tick}");

    let_time_pass("the 10s window", Duration::from_secs(12)).await;
    let tick = ok(&judge.invoke(json!({}), INVOKE).await, &judge);
    let concluded = tick["concluded"].as_array().unwrap();
    assert_eq!(concluded.len(), 2, "{tick}");
    assert!(concluded.iter().all(|o| o["outcome"] == "undetected" && o["reverted"] == true), "{tick}");
    assert_eq!(scopes_of(concluded), started);
    for (account, region) in &started {
        let ec2 = emu.ec2_in(account, region).await;
        assert!(experiment_rules_on(&ec2).await.is_empty(), "{account}/{region}");
    }

    // The hub's topic got both starts and both outcomes, each naming the target's account
    // and region, and the two quiet aborts.
    let mut messages: Vec<Value> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while messages.len() < 6 && Instant::now() < deadline {
        let got = receive_all(&emu, &inbox).await;
        messages.extend(got.into_iter().map(|(body, _)| serde_json::from_str::<Value>(&body).unwrap()));
    }
    let of = |schema: &str, quiet: bool| -> Vec<Value> {
        messages.iter().filter(|m| m["schema"] == schema && (m["quiet"] == true) == quiet).cloned().collect()
    };
    assert_eq!(scopes_of(&of("chaoslingr.started/v1", false)), started, "{messages:?}");
    assert_eq!(scopes_of(&of("chaoslingr.outcome/v1", false)), started, "{messages:?}");
    assert_eq!(of("chaoslingr.outcome/v1", true).len(), 2, "{messages:?}");
}

// ---- the measurement ---------------------------------------------------------------------

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map(|t| t.lines().count()).unwrap_or(0)
}

/// One tick: wall time, calls (lines the lab logged meanwhile), the answer.
async fn tick(judge: &FunctionProcess, log: &Path) -> (Duration, usize, Value) {
    let before = lines(log);
    let t = Instant::now();
    let answer = ok(&judge.invoke(json!({}), INVOKE).await, judge);
    (t.elapsed(), lines(log) - before, answer)
}

/// The calls logged after line `from`, by where they went: the hub (its own key) or a
/// target account (the role's credentials), with their actions.
fn where_calls_went(log: &Path, from: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut by: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for line in text.lines().skip(from) {
        let v: Value = serde_json::from_str(line).unwrap_or(Value::Null);
        let place = v["account"].as_str().map(String::from).unwrap_or_else(|| "hub".into());
        let action = v["action"].as_str().unwrap_or("?").to_string();
        *by.entry(place).or_default().entry(action).or_default() += 1;
    }
    by.iter()
        .map(|(place, actions)| {
            let list: Vec<String> = actions.iter().map(|(a, n)| format!("{a} ×{n}")).collect();
            format!("{place}: {} ({})", actions.values().sum::<usize>(), list.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The cost of one judge tick over 3 accounts × 2 regions, against the emulator through
/// the lab: idle, watching one experiment per scope, with one account's role refused,
/// and concluding; and one account and region on its own for comparison. Prints a
/// Markdown table (`MEASURE` lines too). Knobs: `CHAOSLINGR_FLEET_GROUPS` (opted-in
/// groups per scope, default 20) and `CHAOSLINGR_FLEET_TICKS` (ticks per case, default 5).
#[tokio::test]
#[ignore = "a measurement: run with `cargo xtask bench-fleet`"]
async fn fleet_tick_cost() {
    let per_scope = env_usize("CHAOSLINGR_FLEET_GROUPS", 20);
    let ticks = env_usize("CHAOSLINGR_FLEET_TICKS", 5);
    let emu = Emulator::start().await;
    let seeded = Instant::now();
    let groups = seed_fleet(&emu, per_scope).await;
    eprintln!("seeded {} groups in {:.1}s", groups.len(), seeded.elapsed().as_secs_f64());
    let log = std::env::temp_dir().join(format!("chaoslingr-fleet-calls-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let lab = Lab::start(&emu, &["--record-calls", log.to_str().unwrap()]);
    // One Config rule as the detector: one compliance read per watched experiment.
    let env = [
        ("CHAOSLINGR_WINDOW", "40s"),
        ("CHAOSLINGR_MAX_ACTIVE", "2"),
        ("CHAOSLINGR_MAX_ACTIVE_TOTAL", "6"),
        ("CHAOSLINGR_DETECTORS", "config:vpc-sg-open-only-to-authorized-ports"),
    ];
    let inject = hub_fn("inject", "BXFLEETINJECT", &lab.endpoint, &env).await;
    let judge = hub_fn("judge", "BXFLEETJUDGE", &lab.endpoint, &env).await;
    let mut rows: Vec<String> = Vec::new();
    let mut measure = |case: &str, samples: &[(Duration, usize)]| {
        let mut ms: Vec<f64> = samples.iter().map(|(d, _)| d.as_secs_f64() * 1000.0).collect();
        ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let median = ms[ms.len() / 2];
        let calls: BTreeSet<usize> = samples.iter().map(|(_, c)| *c).collect();
        let calls: Vec<String> = calls.iter().map(ToString::to_string).collect();
        eprintln!(
            "MEASURE {case}: median {median:.0} ms (min {:.0}, max {:.0}), calls {}",
            ms[0],
            ms[ms.len() - 1],
            calls.join("/")
        );
        rows.push(format!(
            "| {case} | {} | {median:.0} ms | {:.0}–{:.0} ms | {} |",
            samples.len(),
            ms[0],
            ms[ms.len() - 1],
            calls.join(" / ")
        ));
    };

    // The first tick assumes the three roles (one per account, shared by its regions).
    let (d, c, first) = tick(&judge, &log).await;
    assert!(first["failed_scopes"].as_array().unwrap().is_empty(), "{first}");
    measure("idle, first tick of a cold function (assumes the 3 roles)", &[(d, c)]);
    let mut idle = Vec::new();
    for _ in 0..ticks {
        let (d, c, _) = tick(&judge, &log).await;
        idle.push((d, c));
    }
    measure("idle (no experiment)", &idle);

    // One experiment in each of the six scopes, named by target.
    let mut by_scope: BTreeMap<(String, String), String> = BTreeMap::new();
    for (g, scope) in &groups {
        by_scope.entry(scope.clone()).or_insert_with(|| g.clone());
    }
    for target in by_scope.values() {
        let answer = ok(&inject.invoke(json!({"target": target}), INVOKE).await, &inject);
        assert_eq!(answer["status"], "started", "{answer}");
    }
    let mut watching = Vec::new();
    let mut split = String::new();
    for _ in 0..ticks {
        let before = lines(&log);
        let (d, c, answer) = tick(&judge, &log).await;
        assert_eq!(answer["watching"].as_array().unwrap().len(), 6, "{answer}");
        watching.push((d, c));
        split = where_calls_went(&log, before);
    }
    measure("watching 6 experiments, one per scope", &watching);
    eprintln!("MEASURE where the last watching tick's calls went: {split}");

    // Account 3's role refused: its two scopes fail, the other four are ticked.
    let (status, body) = lab.admin("PUT", "/_lab/assume-role-denials", &json!([ACCOUNTS[2]])).await;
    assert_eq!(status, 200, "{body}");
    // A new function process: cached credentials would hide the refusal for an hour.
    let denied_judge = hub_fn("judge", "BXFLEETJUDGED", &lab.endpoint, &env).await;
    let mut denied = Vec::new();
    for _ in 0..ticks {
        let (d, c, answer) = tick(&denied_judge, &log).await;
        assert_eq!(answer["failed_scopes"].as_array().unwrap().len(), 2, "{answer}");
        assert_eq!(answer["watching"].as_array().unwrap().len(), 4, "{answer}");
        denied.push((d, c));
    }
    measure("watching, account 3's role refused (2 scopes fail)", &denied);
    drop(denied_judge);
    lab.admin("PUT", "/_lab/assume-role-denials", &json!([])).await;

    let_time_pass("the 40s window", Duration::from_secs(41)).await;
    let (d, c, answer) = tick(&judge, &log).await;
    assert_eq!(answer["concluded"].as_array().unwrap().len(), 6, "{answer}");
    assert_eq!(scopes_of(answer["concluded"].as_array().unwrap()).len(), 6);
    measure("concluding 6 experiments, one per scope", &[(d, c)]);

    // For comparison: a single-account judge in one region of account 1 (its role's
    // credentials as its own), watching one experiment.
    let single_env =
        [("CHAOSLINGR_WINDOW", "40s"), ("CHAOSLINGR_DETECTORS", "config:vpc-sg-open-only-to-authorized-ports")];
    let account_one = emu.account(ACCOUNTS[0], REGIONS[0], TARGET_ROLE).await;
    let creds = aws_credential_types::provider::ProvideCredentials::provide_credentials(
        &account_one.credentials_provider().expect("credentials"),
    )
    .await
    .expect("assumed credentials");
    let mut env = function_env(&lab.endpoint, &single_env);
    let (key, secret, token) = (
        creds.access_key_id().to_string(),
        creds.secret_access_key().to_string(),
        creds.session_token().unwrap_or_default().to_string(),
    );
    env.extend([
        ("AWS_ACCESS_KEY_ID", key.as_str()),
        ("AWS_SECRET_ACCESS_KEY", secret.as_str()),
        ("AWS_SESSION_TOKEN", token.as_str()),
    ]);
    let single_inject = FunctionProcess::start("inject", &function_bin("inject"), &env).await;
    let single_judge = FunctionProcess::start("judge", &function_bin("judge"), &env).await;
    let target = by_scope[&(ACCOUNTS[0].to_string(), REGIONS[0].to_string())].clone();
    let answer = ok(&single_inject.invoke(json!({"target": target}), INVOKE).await, &single_inject);
    assert_eq!(answer["status"], "started", "{answer}");
    let mut single = Vec::new();
    for _ in 0..ticks {
        let (d, c, answer) = tick(&single_judge, &log).await;
        assert_eq!(answer["watching"].as_array().unwrap().len(), 1, "{answer}");
        single.push((d, c));
    }
    measure("single account and region, watching 1 experiment", &single);

    println!(
        "\n{} opted-in groups per scope ({} in all), debug build, {} ticks per case, one function process per case:\n",
        per_scope,
        groups.len(),
        ticks
    );
    println!("| judge tick | ticks | median wall | range | AWS calls per tick |\n|---|---|---|---|---|");
    for r in &rows {
        println!("{r}");
    }
    let _ = std::fs::remove_file(&log);
}
