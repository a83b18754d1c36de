//! `chaoslingr report` over the outcome objects real runs printed.

use std::time::Instant;

use chaoslingr_e2e::*;
use serde_json::Value;

use crate::LIMIT;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_summarises_real_outcomes_per_technique_and_detector_in_every_format() {
    // GIVEN the outcomes of a nacl-entry run the lab's ACL alarm detected, and of a
    // port-change run stopped by the kill switch, saved as `run --json` printed them
    let emu = Emulator::start().await;
    let vpc = create_vpc(&emu).await;
    let _acl = create_acl(&emu, &vpc, Some("true")).await;
    let _group = create_group(&emu, &vpc, "web", Some("true")).await;
    let lab = Lab::start(&emu, &["--nacl-firewall-latency", "1s", "--nacl-config-mode", "off"]);
    let detected = lab
        .run_cli(
            &[
                "run",
                "--experiment",
                "nacl-entry",
                "--detector",
                "alarm:chaoslingr-lab-nacl-changes",
                "--detector",
                "config:nacl-open-only-to-authorized-ports",
                "--window",
                "10s",
                "--poll-interval",
                "1s",
                "--json",
            ],
            LIMIT,
        )
        .await;
    assert_eq!(detected.json()["outcome"], "detected", "{}", detected.stdout);
    let aborted = run_cli(&emu, &["run", "--json"], &[("CHAOSLINGR_ENABLED", "false")], LIMIT).await;
    assert_eq!(aborted.json()["outcome"], "aborted", "{}", aborted.stdout);
    let dir = tempdir();
    std::fs::write(dir.join("nacl.json"), &detected.stdout).unwrap();
    std::fs::write(
        dir.join("lines.jsonl"),
        format!("{}\n{{\"schema\": \"chaoslingr.started/v1\"}}\n", aborted.stdout.trim()),
    )
    .unwrap();
    let from = dir.to_str().unwrap();

    // WHEN the report is asked for as JSON
    let json = run_cli(&emu, &["report", "--from", from, "--since", "1d", "--format", "json"], &[], LIMIT).await;

    // THEN each technique and detector is counted, and the Config rule that missed is a gap
    assert_eq!(json.status, 0, "{}", json.stderr);
    let v = json.json();
    assert_eq!(v["schema"], "chaoslingr.report/v1");
    assert_eq!(v["experiments"], 2);
    let technique =
        |name: &str| v["techniques"].as_array().unwrap().iter().find(|t| t["experiment"] == name).cloned().unwrap();
    assert_eq!(technique("port-change")["outcomes"]["aborted"], 1);
    let nacl = technique("nacl-entry");
    let detector =
        |name: &str| nacl["detectors"].as_array().unwrap().iter().find(|d| d["detector"] == name).cloned().unwrap();
    let alarm = detector("alarm:chaoslingr-lab-nacl-changes");
    assert_eq!((alarm["watched"].as_u64(), alarm["detected"].as_u64()), (Some(1), Some(1)), "{alarm}");
    assert!(alarm["p90"].as_f64().unwrap() >= 1.0, "{alarm}");
    let config = detector("config:nacl-open-only-to-authorized-ports");
    assert_eq!((config["watched"].as_u64(), config["detected"].as_u64()), (Some(1), Some(0)), "{config}");
    let gaps = v["gaps"].as_array().unwrap();
    assert_eq!(gaps.len(), 1, "{v}");
    assert_eq!(gaps[0]["missed_by"][0], "config:nacl-open-only-to-authorized-ports");
    let verdicts: Vec<&str> = v["verdicts"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(
        verdicts.iter().any(|l| l.contains("alarm:chaoslingr-lab-nacl-changes  detected 1/1 (100%)")),
        "{verdicts:?}"
    );

    // AND as CSV, one row per experiment with the schema version, written to a file
    let csv_path = dir.join("report.csv");
    let csv =
        run_cli(&emu, &["report", "--from", from, "--format", "csv", "--out", csv_path.to_str().unwrap()], &[], LIMIT)
            .await;
    assert_eq!(csv.status, 0, "{}", csv.stderr);
    let text = std::fs::read_to_string(&csv_path).unwrap();
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), 3, "{text}");
    assert!(rows[0].starts_with("schema,experiment_id,experiment,"), "{text}");
    assert!(rows[1..].iter().all(|r| r.starts_with("chaoslingr.report-row/v1,")), "{text}");

    // AND as a table, naming the gap
    let table = run_cli(&emu, &["report", "--from", from], &[], LIMIT).await;
    assert_eq!(table.status, 0, "{}", table.stderr);
    assert!(table.stdout.contains("nacl-entry: 1 run(s)") && table.stdout.contains("Gaps (1):"), "{}", table.stdout);

    // AND bad input changes nothing and says what is expected
    let bad = run_cli(&emu, &["report", "--from", from, "--format", "pdf"], &[], LIMIT).await;
    assert_eq!(bad.status, 2);
    assert!(bad.stderr.contains("expected table, json, csv or html"), "{}", bad.stderr);
}

const ARCHIVE: &str = "s3://chaoslingr-outcomes/chaoslingr/";
const CHARTS: [&str; 3] = ["detection-rate", "time-to-detect", "outcomes-per-week"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_reads_hundreds_of_archived_outcomes_and_draws_them_in_a_real_browser() {
    // GIVEN an archive holding a seeded history of 400 outcomes over 8 weeks
    let emu = Emulator::start().await;
    let seeded = emu.seed_history(ARCHIVE, 400, 8, 7);
    assert_eq!(seeded["outcomes"], 400);

    // WHEN the report of the last 60 days is asked for, as JSON and as HTML
    let started = Instant::now();
    let json = run_cli(&emu, &["report", "--archive", ARCHIVE, "--since", "60d", "--format", "json"], &[], LIMIT).await;
    let json_took = started.elapsed();
    assert_eq!(json.status, 0, "{}", json.stderr);
    let dir = tempdir();
    let page = dir.join("report.html");
    let started = Instant::now();
    let html = run_cli(
        &emu,
        &["report", "--archive", ARCHIVE, "--since", "60d", "--format", "html", "--out", page.to_str().unwrap()],
        &[],
        LIMIT,
    )
    .await;
    let html_took = started.elapsed();
    assert_eq!(html.status, 0, "{}", html.stderr);
    eprintln!(
        "MEASURE report outcomes=400 json_ms={:.0} html_ms={:.0} html_bytes={}",
        json_took.as_secs_f64() * 1000.0,
        html_took.as_secs_f64() * 1000.0,
        std::fs::metadata(&page).map(|m| m.len()).unwrap_or(0)
    );

    // THEN every archived outcome is counted, and each detector's numbers are exactly
    // what the objects themselves say
    let v = json.json();
    assert_eq!(v["experiments"], 400, "{}", json.stdout);
    let objects = archived_outcomes(&emu).await;
    assert_eq!(objects.len(), 400);
    let techniques = v["techniques"].as_array().unwrap();
    assert_eq!(techniques.iter().map(|t| t["runs"].as_u64().unwrap()).sum::<u64>(), 400);
    let config = "config:vpc-sg-open-only-to-authorized-ports";
    let detections = |keep: &dyn Fn(&Value) -> bool| {
        objects
            .iter()
            .flat_map(|o| o["detections"].as_array().cloned().unwrap_or_default())
            .filter(|d| d["detector"] == config && keep(d))
            .count() as u64
    };
    let port = techniques.iter().find(|t| t["experiment"] == "port-change").unwrap();
    let d = port["detectors"].as_array().unwrap().iter().find(|d| d["detector"] == config).unwrap();
    assert_eq!(d["detected"].as_u64(), Some(detections(&|d| d["detected"] == true)), "{d}");
    assert_eq!(d["watched"].as_u64(), Some(detections(&|_| true)), "{d}");
    let skips = objects.iter().filter(|o| o["quiet"] == true && o["experiment"] == "port-change").count() as u64;
    assert_eq!(port["scheduled_skips"].as_u64(), Some(skips));
    // One week more than eight when the period does not start on a Monday.
    let weeks = port["weeks"].as_array().unwrap();
    assert!((9..=10).contains(&weeks.len()), "{}", weeks.len());
    assert_eq!(weeks.iter().map(|w| w["runs"].as_u64().unwrap()).sum::<u64>(), port["runs"].as_u64().unwrap());
    // AND per account and region, every experiment but the scheduled skips, once
    let scopes = v["scopes"].as_array().unwrap();
    assert_eq!(scopes.len(), 6, "3 accounts x 2 regions: {scopes:?}");
    let ran = objects.iter().filter(|o| o["quiet"] != true).count() as u64;
    assert_eq!(scopes.iter().map(|s| s["runs"].as_u64().unwrap()).sum::<u64>(), ran);
    let undetected_in = |s: &Value| {
        objects
            .iter()
            .filter(|o| o["account"] == s["account"] && o["region"] == s["region"] && o["outcome"] == "undetected")
            .count() as u64
    };
    assert!(scopes.iter().all(|s| s["undetected"].as_u64() == Some(undetected_in(s))), "{scopes:?}");
    assert!(std::fs::read_to_string(&page).unwrap().contains(r#"data-table="scopes""#));
    let gaps = v["gaps"].as_array().unwrap();
    let undetected = objects.iter().filter(|o| o["outcome"] == "undetected").count();
    assert!(gaps.len() >= undetected && undetected > 0, "{} gaps, {undetected} undetected", gaps.len());

    // AND Chromium draws every chart of the page, fetching nothing, with or without
    // JavaScript, and without a console error
    let shot = dir.join("report.png");
    let (ok, verdict, stderr) = browser_check(&page, &CHARTS, Some(&shot));
    assert!(ok, "the browser check failed: {verdict}\n{stderr}");
    for chart in CHARTS {
        assert!(verdict["charts"][chart]["marks"].as_u64().unwrap_or(0) > 0, "{chart}: {verdict}");
    }
    assert!(std::fs::metadata(&shot).map(|m| m.len() > 10_000).unwrap_or(false), "no screenshot");
}

async fn archived_outcomes(emu: &Emulator) -> Vec<Value> {
    let s3 = emu.s3();
    let mut pages =
        s3.list_objects_v2().bucket("chaoslingr-outcomes").prefix("chaoslingr/outcomes/v1/").into_paginator().send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        for o in page.unwrap().contents() {
            let got = s3.get_object().bucket("chaoslingr-outcomes").key(o.key().unwrap()).send().await.unwrap();
            out.push(serde_json::from_slice(&got.body.collect().await.unwrap().into_bytes()).unwrap());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_archive_report_falls_back_to_the_metrics_and_says_what_it_cannot_show() {
    // GIVEN two runs counted in the metrics (one concluded, one stopped by the kill switch)
    let emu = Emulator::start().await;
    let vpc = create_vpc(&emu).await;
    let _group = create_group(&emu, &vpc, "web", Some("true")).await;
    let done = run_cli(&emu, &["run", "--window", "10s", "--poll-interval", "1s", "--json"], &[], LIMIT).await;
    let outcome = done.json()["outcome"].as_str().unwrap().to_string();
    let aborted = run_cli(&emu, &["run", "--json"], &[("CHAOSLINGR_ENABLED", "false")], LIMIT).await;
    assert_eq!(aborted.json()["outcome"], "aborted");

    // WHEN the report is asked for with neither --archive nor --from
    let table = run_cli(&emu, &["report", "--since", "7d"], &[], LIMIT).await;
    let json = run_cli(&emu, &["report", "--since", "7d", "--format", "json"], &[], LIMIT).await;

    // THEN it counts both from CloudWatch and says what metrics cannot show
    assert_eq!(table.status, 0, "{}", table.stderr);
    assert!(table.stdout.contains("from the CloudWatch metrics (namespace ChaoSlingr"), "{}", table.stdout);
    assert!(table.stdout.contains("cannot show each detector's detection rate"), "{}", table.stdout);
    assert!(table.stdout.contains("port-change: 2 run(s)"), "{}", table.stdout);
    let v = json.json();
    let pc = v["techniques"].as_array().unwrap().iter().find(|t| t["experiment"] == "port-change").cloned().unwrap();
    assert_eq!(pc["outcomes"]["aborted"], 1, "{v}");
    assert_eq!(pc["outcomes"][outcome.as_str()], if outcome == "aborted" { 2 } else { 1 }, "{v}");
    assert!(v["cannot_show"].as_str().unwrap().contains("gaps"), "{v}");

    // AND formats that need per-experiment rows are refused, before any AWS call
    let csv = run_cli(&emu, &["report", "--format", "csv"], &[], LIMIT).await;
    assert_eq!(csv.status, 2);
    assert!(csv.stderr.contains("needs the outcome archive"), "{}", csv.stderr);
    let bad = run_cli(&emu, &["report", "--archive", "bucket-without-scheme"], &[], LIMIT).await;
    assert_eq!(bad.status, 2);
    assert!(bad.stderr.contains("expected s3://BUCKET"), "{}", bad.stderr);
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("chaoslingr-report-{}-{}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

#[test]
fn the_browser_check_fails_pages_that_fetch_run_scripts_or_draw_nothing() {
    // The check the HTML report passes must be able to fail: each fixture breaks one rule.
    let fixtures = workspace_root().join("infra/browser/fixtures");
    let (ok, verdict, stderr) = browser_check(&fixtures.join("report.html"), &CHARTS, None);
    assert!(ok, "the good fixture failed: {verdict}\n{stderr}");
    for (page, says) in [
        ("remote-image.html", "requested https://example.com/x.png"),
        ("script.html", "<script> element"),
        ("empty-chart.html", "chart detection-rate"),
    ] {
        let (ok, verdict, stderr) = browser_check(&fixtures.join(page), &CHARTS, None);
        assert!(!ok, "{page} passed: {verdict}");
        assert_eq!(verdict["ok"], false, "{page}: {verdict}");
        assert!(stderr.contains(says), "{page}: {stderr}");
    }
}
