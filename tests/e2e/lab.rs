//! End-to-end through the detection lab: the CLI talks to `chaoslingr-lab`, which answers
//! AWS Config itself, plays a firewall and a remediator, and forwards everything else to
//! the emulator. Nothing is set by the test mid-run: the lab's controls do the noticing.

use super::*;

const CONFIG: &str = "config:vpc-sg-open-only-to-authorized-ports";
const ALARM: &str = "alarm:chaoslingr-lab-firewall";
const FINDINGS: &str = "securityhub:chaoslingr-lab/firewall";

/// An emulator with one opted-in group (443 open to the world, which the lab's rule
/// authorizes) and the lab in front of it with `args`.
async fn lab_world(args: &[&str]) -> (Emulator, Lab, String) {
    let emu = Emulator::start().await;
    let vpc = create_vpc(&emu).await;
    let g = create_group(&emu, &vpc, "edge", Some("true")).await;
    add_ingress(&emu, &g, "tcp", 443, 443, "0.0.0.0/0").await;
    let lab = Lab::start(&emu, args);
    (emu, lab, g)
}

fn detection<'a>(v: &'a Value, detector: &str) -> &'a Value {
    v["detections"]
        .as_array()
        .expect("detections")
        .iter()
        .find(|d| d["detector"] == detector)
        .unwrap_or_else(|| panic!("no `{detector}` in {v}"))
}

async fn run(lab: &Lab, detectors: &[&str], window: &str) -> Output {
    let mut args = vec!["run", "--window", window, "--poll-interval", "1s", "--json"];
    for d in detectors {
        args.extend(["--detector", d]);
    }
    lab.run_cli(&args, LIMIT).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_and_the_firewall_detect_through_the_lab() {
    // GIVEN Config evaluating after 2s and the firewall alarming after 1s
    let (emu, lab, g) = lab_world(&["--config-latency", "2s", "--firewall-latency", "1s"]).await;

    // WHEN a run watches both
    let out = run(&lab, &[CONFIG, ALARM], "90s").await;

    // THEN both noticed, each with its own time-to-detect from its own timestamp
    assert_eq!(out.status, 0, "stdout: {}\nstderr: {}", out.stdout, out.stderr);
    let v = out.json();
    assert_outcome_schema(&v);
    assert_eq!(v["outcome"], "detected", "{v}");
    assert_eq!(v["security_group_id"], g.as_str());
    let config = detection(&v, CONFIG);
    assert_eq!(config["detected"], true, "{config}");
    let config_secs = config["seconds_to_detect"].as_f64().unwrap();
    assert!((2.0..30.0).contains(&config_secs), "Config recorded {config_secs}s after injection; its latency is 2s");
    assert!(config["evidence"].as_str().unwrap_or_default().contains("NON_COMPLIANT"), "{config}");
    let alarm = detection(&v, ALARM);
    assert_eq!(alarm["detected"], true, "{alarm}");
    let alarm_secs = alarm["seconds_to_detect"].as_f64().unwrap();
    assert!((1.0..30.0).contains(&alarm_secs), "alarm after {alarm_secs}s; the firewall's latency is 1s");

    // AND the port is closed again, and only the opted-in group was ever touched
    assert!(experiment_rules(&emu).await.is_empty());
    assert_eq!(ingress_of(&emu, &g).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_switched_off_is_reported_as_the_gap() {
    // GIVEN Config switched off and the firewall on
    let (emu, lab, _) = lab_world(&["--config-mode", "off", "--firewall-latency", "1s"]).await;

    // WHEN a run watches both for a short window
    let out = run(&lab, &[CONFIG, ALARM], "10s").await;

    // THEN it is detected (the firewall noticed) and Config is named as the gap
    assert_eq!(out.status, 0, "stdout: {}\nstderr: {}", out.stdout, out.stderr);
    let v = out.json();
    assert_eq!(v["outcome"], "detected", "{v}");
    assert_eq!(detection(&v, ALARM)["detected"], true);
    assert_eq!(detection(&v, CONFIG)["detected"], false);
    assert!(detection(&v, CONFIG)["seconds_to_detect"].is_null());
    assert!(v["reason"].as_str().unwrap_or_default().contains(&format!("not noticed by: {CONFIG}")), "{v}");
    assert!(experiment_rules(&emu).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_slower_than_the_window_is_undetected() {
    // GIVEN Config that evaluates an hour late and no firewall
    let (emu, lab, _) = lab_world(&["--config-mode", "slow", "--firewall-mode", "off"]).await;

    // WHEN a run watches Config for 10 seconds
    let out = run(&lab, &[CONFIG], "10s").await;

    // THEN it ends undetected (exit 3) and reverted
    assert_eq!(out.status, 3, "stdout: {}\nstderr: {}", out.stdout, out.stderr);
    let v = out.json();
    assert_eq!(v["outcome"], "undetected", "{v}");
    assert_eq!(v["reverted"], true);
    assert_eq!(detection(&v, CONFIG)["detected"], false);
    assert!(experiment_rules(&emu).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_throttled_then_recovered_still_detects() {
    // GIVEN a Config API that answers the pre-flight reads (the recorder and its status,
    // then the group's compliance), then throttles the next 6 requests (more than one
    // call's SDK retries absorb, so whole watch ticks fail), then recovers
    let (emu, lab, _) =
        lab_world(&["--config-latency", "1s", "--firewall-mode", "off", "--config-fault", "throttle:6@3"]).await;

    // WHEN a run watches Config
    let out = run(&lab, &[CONFIG], "90s").await;

    // THEN the throttled reads were survived and the detection is still measured from
    // Config's own ResultRecordedTime, not from when the API recovered
    assert_eq!(out.status, 0, "stdout: {}\nstderr: {}", out.stdout, out.stderr);
    let v = out.json();
    assert_eq!(v["outcome"], "detected", "{v}");
    let secs = detection(&v, CONFIG)["seconds_to_detect"].as_f64().unwrap();
    assert!(secs >= 1.0, "{secs}");
    assert!(out.stderr.contains("ThrottlingException"), "the watch was throttled and said so: {}", out.stderr);
    assert!(experiment_rules(&emu).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_that_fails_the_whole_watch_cannot_be_judged() {
    // GIVEN a Config API that answers the pre-flight reads (the recorder and its status,
    // then the group's compliance), then fails every request with a 5xx
    let (emu, lab, _) = lab_world(&["--firewall-mode", "off", "--config-fault", "error@3"]).await;

    // WHEN a run watches only Config
    let out = run(&lab, &[CONFIG], "10s").await;

    // THEN the run is `failed` (exit 1), not a false `undetected`, with the error named;
    // and the port is closed regardless
    assert_eq!(out.status, 1, "stdout: {}\nstderr: {}", out.stdout, out.stderr);
    let v = out.json();
    assert_eq!(v["outcome"], "failed", "{v}");
    assert_eq!(v["reverted"], true, "{v}");
    assert!(v["reason"].as_str().unwrap_or_default().contains("InternalFailure"), "{v}");
    assert!(experiment_rules(&emu).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_failing_before_the_injection_aborts_without_writing() {
    // GIVEN a Config API that throttles everything
    let (emu, lab, g) = lab_world(&["--firewall-mode", "off", "--config-fault", "throttle"]).await;
    let before = ingress_of(&emu, &g).await;

    // WHEN a run needs Config's baseline for its pre-flight
    let out = run(&lab, &[CONFIG], "10s").await;

    // THEN it aborts (exit 1) before any write, naming the throttling
    assert_eq!(out.status, 1, "stdout: {}\nstderr: {}", out.stdout, out.stderr);
    let v = out.json();
    assert_eq!(v["outcome"], "aborted", "{v}");
    assert!(v["reason"].as_str().unwrap_or_default().contains("ThrottlingException"), "{v}");
    assert_eq!(ingress_of(&emu, &g).await, before);
    assert!(experiment_rules(&emu).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lab_firewall_imports_a_security_hub_finding() {
    // GIVEN the firewall on, importing findings, and Config off
    let (emu, lab, g) = lab_world(&["--config-mode", "off", "--firewall-latency", "1s"]).await;

    // WHEN a run watches Security Hub for the lab firewall's findings
    let out = run(&lab, &[FINDINGS], "90s").await;

    // THEN the finding about the group is detected, and the port is closed again
    assert_eq!(out.status, 0, "stdout: {}\nstderr: {}", out.stdout, out.stderr);
    let v = out.json();
    assert_eq!(v["outcome"], "detected", "{v}");
    let d = detection(&v, FINDINGS);
    assert!(d["seconds_to_detect"].as_f64().unwrap() >= 1.0, "{d}");
    assert!(d["evidence"].as_str().unwrap_or_default().contains("chaoslingr-lab/firewall"), "{d}");
    assert_eq!(v["security_group_id"], g.as_str());
    assert!(experiment_rules(&emu).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lab_remediator_closes_the_port_first() {
    // GIVEN no detector reacting and the remediator revoking after 2s
    let (emu, lab, g) = lab_world(&["--config-mode", "off", "--firewall-mode", "off", "--remediate-after", "2s"]).await;

    // WHEN a run watches Config
    let out = run(&lab, &[CONFIG], "90s").await;

    // THEN the run ends `remediated` (the hypothesis held), the rule is gone, and the
    // group's own rule is untouched
    assert_eq!(out.status, 0, "stdout: {}\nstderr: {}", out.stdout, out.stderr);
    let v = out.json();
    assert_eq!(v["outcome"], "remediated", "{v}");
    assert!(experiment_rules(&emu).await.is_empty());
    let rules = ingress_of(&emu, &g).await;
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert!(rules[0].starts_with("tcp 443-443 0.0.0.0/0"), "{rules:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lab_refuses_a_non_loopback_upstream_and_bad_settings() {
    for args in [
        vec!["--upstream", "http://10.0.0.1:5000"],
        vec!["--upstream", "https://ec2.us-east-1.amazonaws.com"],
        vec!["--upstream", "http://127.0.0.1:9", "--config-mode", "sometimes"],
        vec!["--upstream", "http://127.0.0.1:9", "--config-fault", "flaky"],
        vec!["--upstream", "http://127.0.0.1:9", "--listen", "0.0.0.0:0"],
    ] {
        let out = std::process::Command::new(lab_bin()).args(&args).output().expect("run chaoslingr-lab");
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(out.stdout.is_empty(), "{args:?} started listening");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.trim().is_empty(), "{args:?} failed without saying why");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_refuses_to_start_when_its_clock_is_off_from_aws() {
    // GIVEN AWS's clock (the `Date` of its answers) 90 s ahead of this machine's
    let (emu, lab, g) = lab_world(&["--firewall-mode", "off", "--config-mode", "off", "--clock-skew", "90s"]).await;
    let before = ingress_of(&emu, &g).await;

    // WHEN a run starts
    let out = run(&lab, &[], "10s").await;

    // THEN it aborts before any write, saying the clock is off
    assert_eq!(out.status, 1, "stdout: {}\nstderr: {}", out.stdout, out.stderr);
    let v = out.json();
    assert_eq!(v["outcome"], "aborted", "{v}");
    let reason = v["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("local clock is 1m") && reason.contains("behind AWS's clock"), "{v}");
    assert_eq!(ingress_of(&emu, &g).await, before);
    assert!(experiment_rules(&emu).await.is_empty());

    // AND a clock 10 s behind AWS's is within the tolerance: the run goes ahead
    let (emu, lab, _) = lab_world(&["--firewall-mode", "off", "--config-mode", "off", "--clock-skew", "-10s"]).await;
    let out = run(&lab, &[], "10s").await;
    assert_eq!(out.status, 3, "stdout: {}\nstderr: {}", out.stdout, out.stderr);
    assert!(experiment_rules(&emu).await.is_empty());
}
