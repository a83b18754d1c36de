//! `chaoslingr report` over the outcome objects real runs printed.

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
    assert!(table.stdout.contains("nacl-entry: 1 run(s)") && table.stdout.contains("Gaps:"), "{}", table.stdout);

    // AND bad input changes nothing and says what is expected
    let bad = run_cli(&emu, &["report", "--from", from, "--format", "pdf"], &[], LIMIT).await;
    assert_eq!(bad.status, 2);
    assert!(bad.stderr.contains("expected table, json or csv"), "{}", bad.stderr);
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("chaoslingr-report-{}-{}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}
