//! `nacl-entry` end to end through the CLI: one inbound ALLOW entry on an opted-in network
//! ACL, recorded on the ACL before it exists, watched, and removed exactly; nothing else
//! touched.

use std::time::{Duration, Instant};

use chaoslingr_e2e::*;

use crate::LIMIT;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nacl_entry_run_opens_one_entry_on_the_opted_in_acl_and_removes_exactly_it() {
    // GIVEN an opted-in ACL that denies udp 40000-40100 at rule 200, an ACL that is not
    // opted in, and an opted-in security group (another technique's target)
    let emu = Emulator::start().await;
    let vpc = create_vpc(&emu).await;
    let acl = create_acl(&emu, &vpc, Some("true")).await;
    add_acl_entry(&emu, &acl, 200, "17", (40_000, 40_100), false).await;
    let other = create_acl(&emu, &vpc, Some("false")).await;
    let group = create_group(&emu, &vpc, "web", Some("true")).await;
    let (acl_before, other_before, group_before) =
        (acl_entries(&emu, &acl).await, acl_entries(&emu, &other).await, ingress_of(&emu, &group).await);

    // WHEN a nacl-entry run starts
    let mut c = emu.cli();
    c.args(["run", "--experiment", "nacl-entry", "--window", "10s", "--poll-interval", "1s", "--json"]);
    let started = Instant::now();
    let child = c.spawn().unwrap();

    // THEN while it runs the ACL has exactly one entry more, an inbound ALLOW from the
    // world, and its record names it
    let (entry, tags) = poll_until("the experiment's entry on the ACL", Duration::from_secs(30), || async {
        let now = acl_entries(&emu, &acl).await;
        let added: Vec<String> = now.iter().filter(|e| !acl_before.contains(e)).cloned().collect();
        let tags = acl_tags(&emu, &acl).await;
        let marked = tags.iter().any(|(k, _)| k == "chaoslingr:rule-id");
        (added.len() == 1 && marked).then(|| (added[0].clone(), tags))
    })
    .await;
    let fields: Vec<&str> = entry.split_whitespace().collect();
    assert_eq!(fields[1], "allow", "{entry}");
    assert_eq!(fields[4], "0.0.0.0/0", "{entry}");
    let number: i32 = fields[0].parse().unwrap();
    let rule_id = tags.iter().find(|(k, _)| k == "chaoslingr:rule-id").map(|(_, v)| v.clone()).unwrap();
    assert_eq!(rule_id, format!("{acl}/{number}"));
    let (from, to): (u16, u16) = {
        let (a, b) = fields[3].split_once('-').unwrap();
        (a.parse().unwrap(), b.parse().unwrap())
    };
    if fields[2] == "17" && from <= 40_100 && to >= 40_000 {
        assert!(number < 200, "an entry after the DENY at 200 would never take effect: {entry}");
    }
    assert!(number < 32767 && number != 100 && number != 200, "{entry}");

    // AND the run ends undetected after its window, reverted
    let out = finish(child, LIMIT).await;
    assert_eq!(out.status, 3, "stdout: {}\nstderr: {}", out.stdout, out.stderr);
    assert!(started.elapsed() >= Duration::from_secs(9));
    let v = out.json();
    assert_eq!(v["experiment"], "nacl-entry");
    assert_eq!(v["target_type"], "network-acl");
    assert_eq!(v["target_id"], acl.as_str());
    assert_eq!(v["change_id"], rule_id.as_str());
    assert_eq!(v["security_group_id"], serde_json::Value::Null);
    assert_eq!(v["outcome"], "undetected");
    assert_eq!(v["reverted"], true);
    assert_eq!((v["from_port"].as_u64(), v["to_port"].as_u64()), (Some(u64::from(from)), Some(u64::from(to))));

    // AND every ACL and group is exactly as before, the record gone
    assert_eq!(acl_entries(&emu, &acl).await, acl_before);
    assert!(acl_tags(&emu, &acl).await.iter().all(|(k, _)| k == OPT_IN), "{:?}", acl_tags(&emu, &acl).await);
    assert_eq!(acl_entries(&emu, &other).await, other_before);
    assert_eq!(ingress_of(&emu, &group).await, group_before);

    // AND the metrics carry the technique
    let metrics = emu
        .cloudwatch()
        .list_metrics()
        .namespace("ChaoSlingr")
        .dimensions(
            aws_sdk_cloudwatch::types::DimensionFilter::builder().name("Experiment").value("nacl-entry").build(),
        )
        .send()
        .await
        .unwrap();
    assert!(!metrics.metrics().is_empty(), "no metric with Experiment=nacl-entry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nacl_entry_removed_mid_watch_is_remediated_and_targets_and_status_show_the_kind() {
    // GIVEN an opted-in ACL
    let emu = Emulator::start().await;
    let vpc = create_vpc(&emu).await;
    let acl = create_acl(&emu, &vpc, Some("TRUE")).await;
    let _group = create_group(&emu, &vpc, "web", Some("true")).await;
    let before = acl_entries(&emu, &acl).await;

    // WHEN `targets` lists the targets
    let targets = run_cli(&emu, &["targets", "--json"], &[], LIMIT).await;
    assert_eq!(targets.status, 0, "{}", targets.stderr);
    let listed = targets.json();
    let kinds: Vec<(String, String)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["experiment"].as_str().unwrap().to_string(), t["target_id"].as_str().unwrap().to_string()))
        .collect();
    // THEN both techniques' targets are there, each with its technique
    assert!(kinds.contains(&("nacl-entry".to_string(), acl.clone())), "{kinds:?}");
    assert!(kinds.iter().any(|(k, t)| k == "port-change" && t.starts_with("sg-")), "{kinds:?}");

    // WHEN a run on the ACL (the target names the technique) starts, and someone deletes
    // its entry mid-watch
    let mut c = emu.cli();
    c.args(["run", "--target", &acl, "--window", "2m", "--poll-interval", "1s", "--json"]);
    let child = c.spawn().unwrap();
    let number = poll_until("the experiment's entry", Duration::from_secs(30), || async {
        let now = acl_entries(&emu, &acl).await;
        now.iter().find(|e| !before.contains(e)).map(|e| e.split_whitespace().next().unwrap().parse::<i32>().unwrap())
    })
    .await;
    let status = run_cli(&emu, &["status", "--json"], &[], LIMIT).await;
    let active = status.json();
    assert_eq!(active[0]["experiment"], "nacl-entry", "{active}");
    assert_eq!(active[0]["change_id"], format!("{acl}/{number}"), "{active}");
    let_time_pass("the entry stays a moment before it is removed", Duration::from_secs(2)).await;
    emu.ec2().delete_network_acl_entry().network_acl_id(&acl).rule_number(number).egress(false).send().await.unwrap();

    // THEN the run ends remediated, and the ACL is as before
    let out = finish(child, LIMIT).await;
    assert_eq!(out.status, 0, "stdout: {}\nstderr: {}", out.stdout, out.stderr);
    let v = out.json();
    assert_eq!(v["outcome"], "remediated", "{v}");
    assert_eq!(acl_entries(&emu, &acl).await, before);
    assert!(acl_tags(&emu, &acl).await.iter().all(|(k, _)| k == OPT_IN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revert_all_removes_a_nacl_experiment_left_by_a_killed_run_and_nothing_else() {
    // GIVEN a run killed hard (SIGKILL) mid-watch: its entry and record stay on the ACL
    let emu = Emulator::start().await;
    let vpc = create_vpc(&emu).await;
    let acl = create_acl(&emu, &vpc, Some("true")).await;
    add_acl_entry(&emu, &acl, 300, "6", (8_000, 8_000), true).await;
    let before = acl_entries(&emu, &acl).await;
    let mut c = emu.cli();
    c.args(["run", "--experiment", "nacl-entry", "--window", "5m", "--poll-interval", "1s"]);
    let child = c.spawn().unwrap();
    poll_until("the experiment's entry", Duration::from_secs(30), || async {
        (acl_entries(&emu, &acl).await.len() == before.len() + 1).then_some(())
    })
    .await;
    signal(&child, "KILL");
    let _ = finish(child, LIMIT).await;
    assert_eq!(acl_entries(&emu, &acl).await.len(), before.len() + 1);

    // WHEN someone opts the ACL out, then runs the emergency stop
    emu.ec2()
        .create_tags()
        .resources(&acl)
        .tags(aws_sdk_ec2::types::Tag::builder().key(OPT_IN).value("false").build())
        .send()
        .await
        .unwrap();
    let out = run_cli(&emu, &["revert", "--all", "--json"], &[], LIMIT).await;

    // THEN exactly the experiment's entry is gone (the owners' entry at 300 stays)
    assert_eq!(out.status, 0, "stdout: {}\nstderr: {}", out.stdout, out.stderr);
    assert_eq!(acl_entries(&emu, &acl).await, before);
    let reports = out.json();
    assert_eq!(reports.as_array().unwrap().len(), 1, "{reports}");
    assert_eq!(reports[0]["reverted"], true, "{reports}");
}

const NACL_CONFIG: &str = "config:nacl-open-only-to-authorized-ports";
const NACL_ALARM: &str = "alarm:chaoslingr-lab-nacl-changes";

fn detection<'a>(v: &'a serde_json::Value, detector: &str) -> &'a serde_json::Value {
    v["detections"]
        .as_array()
        .expect("detections")
        .iter()
        .find(|d| d["detector"] == detector)
        .unwrap_or_else(|| panic!("no `{detector}` in {v}"))
}

/// An emulator with one opted-in ACL (HTTPS allowed) and the lab in front with `args`; the
/// ACL exists before the lab first scans, so it is not a change to its firewall.
async fn acl_lab(args: &[&str]) -> (Emulator, Lab, String) {
    let emu = Emulator::start().await;
    let vpc = create_vpc(&emu).await;
    let acl = create_acl(&emu, &vpc, Some("true")).await;
    let lab = Lab::start(&emu, args);
    (emu, lab, acl)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_acl_config_rule_and_the_acl_change_alarm_detect_a_nacl_entry_through_the_lab() {
    // GIVEN the lab's ACL Config rule evaluating after 2s and its ACL alarm after 1s
    let (emu, lab, acl) = acl_lab(&["--nacl-config-latency", "2s", "--nacl-firewall-latency", "1s"]).await;
    let before = acl_entries(&emu, &acl).await;

    // WHEN a nacl-entry run watches both
    let args = [
        "run",
        "--experiment",
        "nacl-entry",
        "--detector",
        NACL_CONFIG,
        "--detector",
        NACL_ALARM,
        "--window",
        "90s",
        "--poll-interval",
        "1s",
        "--json",
    ];
    let out = lab.run_cli(&args, LIMIT).await;

    // THEN both noticed, each at its own time, and the ACL is as before
    assert_eq!(out.status, 0, "stdout: {}\nstderr: {}", out.stdout, out.stderr);
    let v = out.json();
    assert_eq!(v["outcome"], "detected", "{v}");
    assert_eq!(v["target_id"], acl.as_str());
    let config = detection(&v, NACL_CONFIG);
    let secs = config["seconds_to_detect"].as_f64().unwrap_or(-1.0);
    assert!((2.0..30.0).contains(&secs), "Config recorded after {secs}s; its latency is 2s: {config}");
    assert!(config["evidence"].as_str().unwrap_or_default().contains(&acl), "{config}");
    let alarm = detection(&v, NACL_ALARM);
    let secs = alarm["seconds_to_detect"].as_f64().unwrap_or(-1.0);
    assert!((1.0..30.0).contains(&secs), "alarm after {secs}s; its latency is 1s: {alarm}");
    assert_eq!(acl_entries(&emu, &acl).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_recorder_blind_to_acls_is_named_before_the_run_or_reported_as_could_not_see() {
    // GIVEN a Config recorder that records everything but network ACLs
    let (emu, lab, acl) = acl_lab(&["--nacl-firewall-latency", "1s"]).await;
    let before = acl_entries(&emu, &acl).await;
    let recorder = serde_json::json!({"all_supported": false, "exclude": ["AWS::EC2::NetworkAcl"]});
    let (status, answer) = lab.admin("PUT", "/_lab/recorder", &recorder).await;
    assert_eq!(status, 200, "{answer}");

    // WHEN a nacl-entry run watches the ACL Config rule
    let args = ["run", "--experiment", "nacl-entry", "--detector", NACL_CONFIG, "--detector", NACL_ALARM];
    let mut refused = args.to_vec();
    refused.extend(["--window", "20s", "--poll-interval", "1s", "--json"]);
    let out = lab.run_cli(&refused, LIMIT).await;

    // THEN it aborts before writing anything, naming the cause and the way out
    assert_eq!(out.status, 1, "stdout: {}\nstderr: {}", out.stdout, out.stderr);
    let v = out.json();
    assert_eq!(v["outcome"], "aborted", "{v}");
    let reason = v["reason"].as_str().unwrap();
    assert!(reason.contains("excludes AWS::EC2::NetworkAcl") && reason.contains("--allow-blind-detectors"), "{reason}");
    assert_eq!(acl_entries(&emu, &acl).await, before);

    // WHEN the same run is allowed to go ahead blind
    let mut allowed = refused.clone();
    allowed.push("--allow-blind-detectors");
    let out = lab.run_cli(&allowed, LIMIT).await;

    // THEN the alarm is measured, and Config is reported as unable to see, not as a gap
    assert_eq!(out.status, 0, "stdout: {}\nstderr: {}", out.stdout, out.stderr);
    let v = out.json();
    assert_eq!(v["outcome"], "detected", "{v}");
    let config = detection(&v, NACL_CONFIG);
    assert_eq!(config["could_not_see"], true, "{config}");
    assert!(config["evidence"].as_str().unwrap().starts_with("could not see"), "{config}");
    assert_eq!(detection(&v, NACL_ALARM)["detected"], true);
    assert_eq!(acl_entries(&emu, &acl).await, before);
}
