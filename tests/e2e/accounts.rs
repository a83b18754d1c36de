//! Many accounts and regions from one deployment: three target accounts × two regions on
//! one emulator, each reached by assuming the target role there (the emulator files an
//! assumed role's credentials under the role's account), through the detection lab, which
//! can refuse `AssumeRole` into one account as a missing or untrusting role would, and
//! evaluates every call made with a target role's credentials against that role's policy
//! as the Terraform module renders it (`modules/target-role`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chaoslingr_e2e::*;
use serde_json::{json, Value};

const ACCOUNTS: [&str; 3] = TARGET_ACCOUNTS;
const REGIONS: [&str; 2] = TARGET_REGIONS;
const ROLE: &str = TARGET_ROLE;
const LIMIT: Duration = Duration::from_secs(120);

/// The flags that name every target account and region.
fn fleet_flags() -> Vec<String> {
    vec!["--accounts".into(), ACCOUNTS.join(","), "--regions".into(), REGIONS.join(",")]
}

fn with_fleet<'a>(args: &[&'a str], flags: &'a [String]) -> Vec<&'a str> {
    let mut all = args.to_vec();
    all.extend(flags.iter().map(String::as_str));
    all
}

async fn set_denied(lab: &Lab, accounts: &[&str]) {
    let (status, body) = lab.admin("PUT", "/_lab/assume-role-denials", &json!(accounts)).await;
    assert_eq!(status, 200, "setting the AssumeRole denials: {body}");
}

#[tokio::test]
async fn choice_is_uniform_over_every_target_of_every_account_and_region() {
    let emu = Emulator::start().await;
    // One target in account 1, one in account 2, ten in account 3 over its two regions;
    // and one in the hub's own account, which is not a target.
    let groups = emu
        .seed_targets(&[
            (ACCOUNTS[0], REGIONS[0], 1),
            (ACCOUNTS[1], REGIONS[0], 1),
            (ACCOUNTS[2], REGIONS[0], 5),
            (ACCOUNTS[2], REGIONS[1], 5),
        ])
        .await;
    let hub_vpc = create_vpc(&emu).await;
    let hub_group = create_group(&emu, &hub_vpc, "hub", Some("true")).await;
    let lab = Lab::start_recorded(&emu, &[]);

    // The same targets from a file, as CHAOSLINGR_TARGETS holds them.
    let file = std::env::temp_dir().join(format!("chaoslingr-targets-{}.json", std::process::id()));
    let regions = json!(REGIONS);
    let accounts: Vec<Value> = ACCOUNTS.iter().map(|a| json!({"id": a})).collect();
    std::fs::write(&file, json!({"accounts": accounts, "regions": regions, "role": ROLE}).to_string()).unwrap();
    let out = lab.run_cli(&["targets", "--json", "--targets-file", file.to_str().unwrap()], LIMIT).await;
    let _ = std::fs::remove_file(&file);
    assert_eq!(out.status, 0, "targets across accounts: {}", out.stderr);
    let listed = out.json();
    let listed = listed.as_array().expect("a JSON array");
    let opted: BTreeMap<String, (String, String)> = listed
        .iter()
        .filter(|t| t["eligible"] == json!(true))
        .map(|t| {
            let id = t["target_id"].as_str().unwrap().to_string();
            (id, (t["account"].as_str().unwrap().to_string(), t["region"].as_str().unwrap().to_string()))
        })
        .collect();
    assert_eq!(opted, groups, "every opted-in target of every account and region, with its account and region");
    assert!(listed.iter().all(|t| t["target_id"] != json!(hub_group)), "the hub's own group is not a target");

    // Dry runs choose without writing; four at a time.
    let flags = fleet_flags();
    let mut chosen: Vec<(String, String, String)> = Vec::new();
    for _ in 0..8 {
        let args = with_fleet(&["run", "--dry-run", "--json"], &flags);
        let children: Vec<_> = (0..4)
            .map(|_| {
                let mut cmd = lab.cli();
                cmd.args(&args).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
                cmd.spawn().expect("spawn chaoslingr run --dry-run")
            })
            .collect();
        for child in children {
            let out = finish(child, LIMIT).await;
            assert_eq!(out.status, 0, "dry run: {}\n{}", out.stdout, out.stderr);
            let v = out.json();
            let target = v["plan"]["security_group_id"].as_str().expect("the planned target").to_string();
            let (account, region) =
                (v["account"].as_str().unwrap().to_string(), v["region"].as_str().unwrap().to_string());
            assert_eq!(
                groups.get(&target),
                Some(&(account.clone(), region.clone())),
                "{target} is where it was planned"
            );
            chosen.push((target, account, region));
        }
    }
    let n = chosen.len();
    let in_account = |a: &str| chosen.iter().filter(|(_, acc, _)| acc == a).count();
    let small = in_account(ACCOUNTS[0]) + in_account(ACCOUNTS[1]);
    // Uniform over the 12 targets: accounts 1 and 2 hold 2 of them, expected 32 × 2/12 ≈
    // 5.3 (P(more than 13) < 0.001); "an account, then a target" would give them 2/3
    // (about 21).
    assert!(small <= 13, "accounts 1 and 2 chosen {small} of {n} times: not uniform over targets: {chosen:?}");
    let big_regions: BTreeSet<&str> =
        chosen.iter().filter(|(_, acc, _)| acc == ACCOUNTS[2]).map(|(_, _, r)| r.as_str()).collect();
    assert_eq!(big_regions.len(), 2, "account 3's targets in both regions are chosen: {chosen:?}");
    let distinct: BTreeSet<&str> = chosen.iter().map(|(t, _, _)| t.as_str()).collect();
    assert!(distinct.len() >= 6, "{} distinct targets of 12 in {n} choices", distinct.len());

    // Nothing was written anywhere.
    for (account, region, _) in [(ACCOUNTS[0], REGIONS[0], 0), (ACCOUNTS[2], REGIONS[1], 0)] {
        assert!(experiment_rules_on(&emu.ec2_in(account, region).await).await.is_empty());
    }
}

/// Starts a person's run in one account and region and kills it (SIGKILL) once its rule
/// is open: an experiment left open, as after a crash.
async fn leave_open(lab: &Lab, emu: &Emulator, account: &str, region: &str) -> String {
    let mut cmd = lab.cli();
    cmd.args(["run", "--window", "10m", "--accounts", account, "--regions", region])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let child = cmd.spawn().expect("spawn chaoslingr run");
    let ec2 = emu.ec2_in(account, region).await;
    let rule = poll_until(&format!("an experiment rule in {account}/{region}"), LIMIT, || async {
        experiment_rules_on(&ec2).await.into_iter().next()
    })
    .await;
    signal(&child, "KILL");
    let _ = child.wait_with_output().await;
    rule.security_group_rule_id().expect("rule id").to_string()
}

#[tokio::test]
async fn revert_all_reaches_every_account_and_region_and_a_denied_account_fails_only_its_part() {
    let emu = Emulator::start().await;
    let layout: Vec<(&str, &str, usize)> =
        ACCOUNTS.iter().flat_map(|a| REGIONS.iter().map(move |r| (*a, *r, 1))).collect();
    emu.seed_targets(&layout).await;
    let lab = Lab::start_recorded(&emu, &[]);
    let flags = fleet_flags();

    let mut open = BTreeMap::new();
    for (account, region, _) in &layout {
        open.insert((account.to_string(), region.to_string()), leave_open(&lab, &emu, account, region).await);
    }

    // status sees all six, with their account and region.
    let out = lab.run_cli(&with_fleet(&["status", "--json"], &flags), LIMIT).await;
    assert_eq!(out.status, 0, "{}", out.stderr);
    let seen: BTreeSet<(String, String)> = out
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["account"].as_str().unwrap().to_string(), e["region"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(seen, open.keys().cloned().collect(), "status lists an experiment in every account and region");

    // Account 3 refuses the role: the emergency stop closes the other four and says so.
    set_denied(&lab, &[ACCOUNTS[2]]).await;
    let out = lab.run_cli(&with_fleet(&["revert", "--all", "--json"], &flags), LIMIT).await;
    assert_eq!(out.status, 1, "a scope that could not be reached fails the command: {}", out.stderr);
    let reverted: BTreeSet<(String, String)> = out
        .json()
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["reverted"] == json!(true))
        .map(|r| (r["account"].as_str().unwrap_or("?").to_string(), r["region"].as_str().unwrap().to_string()))
        .collect();
    let expected: BTreeSet<(String, String)> =
        open.keys().filter(|(a, _)| a != ACCOUNTS[2]).map(|(a, r)| (a.clone(), r.clone())).collect();
    assert_eq!(reverted, expected, "stdout: {}", out.stdout);
    for region in REGIONS {
        assert!(out.stderr.contains(&format!("{}/{region}", ACCOUNTS[2])), "names the failing scope: {}", out.stderr);
    }
    assert!(out.stderr.contains("could not be reached"), "{}", out.stderr);
    // One readable line per failing scope, naming the role and STS's answer.
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("chaoslingr: error:") && l.contains("could not assume the target role: AccessDenied"))
        .collect();
    assert_eq!(lines.len(), 2, "{}", out.stderr);
    assert!(
        lines.iter().all(|l| l.contains("arn:aws:iam::333333333333:role/chaoslingr-target") && l.len() < 400),
        "{lines:?}"
    );
    for (account, region) in open.keys() {
        let left = experiment_rules_on(&emu.ec2_in(account, region).await).await;
        assert_eq!(left.is_empty(), account != ACCOUNTS[2], "{account}/{region}: {left:?}");
    }

    // The judge ticks the other scopes, reports the failing ones, and counts them.
    let out = lab.run_cli(&with_fleet(&["judge", "--json"], &flags), LIMIT).await;
    assert_eq!(out.status, 1, "{}", out.stderr);
    let tick = out.json();
    let failed: BTreeSet<(String, String)> = tick["failed_scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["account"].as_str().unwrap().to_string(), f["region"].as_str().unwrap().to_string()))
        .collect();
    let expected_failed: BTreeSet<(String, String)> =
        REGIONS.iter().map(|r| (ACCOUNTS[2].to_string(), r.to_string())).collect();
    assert_eq!(failed, expected_failed, "{tick}");
    assert_eq!(tick["scopes"].as_array().unwrap().len(), 6);
    let metrics = emu
        .cloudwatch()
        .list_metrics()
        .namespace("ChaoSlingr")
        .metric_name("ScopeErrors")
        .send()
        .await
        .expect("list metrics");
    let counted: BTreeSet<Vec<(String, String)>> = metrics
        .metrics()
        .iter()
        .map(|m| {
            let mut dims: Vec<(String, String)> = m
                .dimensions()
                .iter()
                .map(|d| (d.name().unwrap_or_default().to_string(), d.value().unwrap_or_default().to_string()))
                .collect();
            dims.sort();
            dims
        })
        .collect();
    let expected_counted: BTreeSet<Vec<(String, String)>> = REGIONS
        .iter()
        .map(|r| vec![("Account".to_string(), ACCOUNTS[2].to_string()), ("Region".to_string(), r.to_string())])
        .collect();
    assert_eq!(
        counted, expected_counted,
        "ScopeErrors counts exactly the failing account's scopes, by Account and Region"
    );

    // Once the role can be assumed again, the emergency stop closes the rest.
    set_denied(&lab, &[]).await;
    let out = lab.run_cli(&with_fleet(&["revert", "--all"], &flags), LIMIT).await;
    assert_eq!(out.status, 0, "{}\n{}", out.stdout, out.stderr);
    for (account, region) in open.keys() {
        assert!(experiment_rules_on(&emu.ec2_in(account, region).await).await.is_empty(), "{account}/{region}");
    }
}

#[tokio::test]
async fn the_judge_concludes_overdue_experiments_in_each_account_and_region_with_both_in_the_outcome() {
    let emu = Emulator::start().await;
    let layout = [(ACCOUNTS[0], REGIONS[1], 1), (ACCOUNTS[1], REGIONS[0], 1)];
    emu.seed_targets(&layout).await;
    let lab = Lab::start_recorded(&emu, &[]);
    for (account, region, _) in layout {
        let mut cmd = lab.cli();
        cmd.args(["run", "--window", "10s", "--accounts", account, "--regions", region])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let child = cmd.spawn().expect("spawn chaoslingr run");
        let ec2 = emu.ec2_in(account, region).await;
        poll_until("the experiment rule", LIMIT, || async { experiment_rules_on(&ec2).await.into_iter().next() }).await;
        signal(&child, "KILL");
        let _ = child.wait_with_output().await;
    }
    // Past the deadline and the grace a person's run gets.
    let_time_pass("the 10s windows and the 5s grace", Duration::from_secs(18)).await;
    let flags = vec![
        "--accounts".to_string(),
        format!("{},{}", ACCOUNTS[0], ACCOUNTS[1]),
        "--regions".into(),
        REGIONS.join(","),
    ];
    let out = run_cli_at(
        &lab.endpoint,
        &with_fleet(&["judge", "--json"], &flags),
        &[("CHAOSLINGR_ORPHAN_GRACE", "5s")],
        LIMIT,
    )
    .await;
    assert_eq!(out.status, 0, "{}\n{}", out.stdout, out.stderr);
    let tick = out.json();
    let concluded: BTreeSet<(String, String)> = tick["concluded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            assert_eq!(o["schema"], "chaoslingr.outcome/v1");
            assert_eq!(o["reverted"], true, "{o}");
            (o["account"].as_str().unwrap().to_string(), o["region"].as_str().unwrap().to_string())
        })
        .collect();
    let expected: BTreeSet<(String, String)> = layout.iter().map(|(a, r, _)| (a.to_string(), r.to_string())).collect();
    assert_eq!(concluded, expected, "{tick}");
    for (account, region, _) in layout {
        assert!(experiment_rules_on(&emu.ec2_in(account, region).await).await.is_empty());
    }
}
