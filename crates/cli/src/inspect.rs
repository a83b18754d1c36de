//! `targets`, `status` and `revert`.

use std::time::SystemTime;

use chaoslingr_domain::discovery::RuleState;
use chaoslingr_domain::experiment::ExperimentId;
use chaoslingr_domain::time::human;
use serde_json::json;

use crate::output::{table, timestamp};
use crate::{exit, AwsEngine, Failure};

pub async fn targets(engine: &AwsEngine, json: bool) -> Result<u8, Failure> {
    let targets = engine.targets().await?;
    let s = &engine.settings;
    if json {
        let items: Vec<_> = targets
            .iter()
            .map(|t| {
                json!({
                    "experiment": engine.technique_for(&t.group.id).name,
                    "target_id": t.group.id,
                    "security_group_id": t.group.id,
                    "name": t.group.name,
                    "vpc_id": t.group.vpc_id,
                    "eligible": t.eligibility.is_ok(),
                    "reason": t.eligibility.as_ref().err().map(ToString::to_string),
                })
            })
            .collect();
        println!("{}", serde_json::to_string(&items).expect("serializable"));
        return Ok(exit::OK);
    }
    let eligible = targets.iter().filter(|t| t.eligibility.is_ok()).count();
    let opted = targets
        .iter()
        .filter(|t| !matches!(t.eligibility, Err(chaoslingr_domain::selection::Ineligible::NotOptedIn)))
        .count();
    let rows: Vec<Vec<String>> = targets
        .iter()
        .map(|t| {
            vec![
                engine.technique_for(&t.group.id).name.to_string(),
                t.group.id.clone(),
                t.group.name.clone(),
                t.group.vpc_id.clone().unwrap_or_else(|| "-".into()),
                if t.eligibility.is_ok() { "yes".into() } else { "no".into() },
                t.eligibility.as_ref().err().map(ToString::to_string).unwrap_or_default(),
            ]
        })
        .collect();
    print!("{}", table(&["EXPERIMENT", "TARGET", "NAME", "VPC", "ELIGIBLE", "WHY NOT"], &rows));
    println!(
        "\n{opted} opted in ({}={}), {eligible} eligible. Security groups and network ACLs without the tag key are never listed or touched.",
        s.opt_in_tag, s.opt_in_value
    );
    Ok(exit::OK)
}

pub async fn status(engine: &AwsEngine, json: bool) -> Result<u8, Failure> {
    let found = engine.active().await?;
    let now = SystemTime::now();
    if json {
        let mut items: Vec<_> = found
            .experiments
            .iter()
            .map(|f| {
                let mut item = json!({
                    "experiment_id": f.experiment_id,
                    "experiment": engine.technique_for(&f.security_group_id).name,
                    "target_id": f.security_group_id,
                    "change_id": f.security_group_rule_id,
                    "security_group_id": f.security_group_id,
                    "security_group_rule_id": f.security_group_rule_id,
                    "marked": f.marker.is_some(),
                    "rule": match &f.rule {
                        RuleState::Present(_) => "present".to_string(),
                        RuleState::Gone => "gone".to_string(),
                        RuleState::Unknown(e) => format!("unknown: {e}"),
                    },
                    "ours": f.ours.is_ok(),
                    "not_ours_reason": f.ours.as_ref().err(),
                });
                match &f.record {
                    Ok(r) => {
                        let extra = json!({
                            "protocol": r.protocol,
                            "from_port": r.ports.from,
                            "to_port": r.ports.to,
                            "cidr": r.cidr,
                            "injected_at": chaoslingr_domain::time::rfc3339_millis(r.injected_at),
                            "deadline": timestamp(r.deadline),
                            "age_seconds": r.age(now).as_secs(),
                            "overdue": r.is_overdue(now),
                            "detectors": r.detectors,
                        });
                        if let (Some(o), Some(e)) = (item.as_object_mut(), extra.as_object()) {
                            o.extend(e.clone());
                        }
                    }
                    Err(e) => {
                        item["error"] = json!(e);
                        item["overdue"] = json!(true);
                    }
                }
                item
            })
            .collect();
        for d in &found.damaged_markers {
            items.push(json!({
                "experiment_id": d.experiment_id,
                "security_group_id": d.security_group_id,
                "marked": true,
                "error": format!("damaged marker: {}", d.error),
            }));
        }
        println!("{}", serde_json::to_string(&items).expect("serializable"));
        return Ok(exit::OK);
    }
    for e in &found.errors {
        eprintln!("warning: {e}");
    }
    if found.experiments.is_empty() && found.damaged_markers.is_empty() {
        println!("No active experiments.");
        return Ok(exit::OK);
    }
    let mut rows: Vec<Vec<String>> = found
        .experiments
        .iter()
        .map(|f| {
            let id = f.experiment_id.clone().unwrap_or_else(|| "?".into());
            let state = match (&f.ours, &f.rule, &f.record) {
                (Err(why), _, _) => format!("NOT OURS, left alone ({why})"),
                (_, RuleState::Gone, _) => "rule gone; the judge records the outcome".into(),
                (_, _, Err(e)) => format!("DAMAGED TAGS ({e}): run `chaoslingr revert {id}`"),
                (_, _, Ok(r)) if r.is_overdue(now) => format!("OVERDUE: run `chaoslingr revert {}`", r.id),
                _ => "watching".into(),
            };
            match &f.record {
                Ok(r) => vec![
                    id,
                    engine.technique_for(&f.security_group_id).name.to_string(),
                    f.security_group_id.clone(),
                    f.security_group_rule_id.clone(),
                    format!("{} {}", r.protocol, r.ports),
                    human(r.age(now)),
                    timestamp(r.deadline),
                    state,
                ],
                Err(_) => vec![
                    id,
                    engine.technique_for(&f.security_group_id).name.to_string(),
                    f.security_group_id.clone(),
                    f.security_group_rule_id.clone(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    state,
                ],
            }
        })
        .collect();
    for d in &found.damaged_markers {
        rows.push(vec![
            d.experiment_id.clone().unwrap_or_else(|| "?".into()),
            engine.technique_for(&d.security_group_id).name.to_string(),
            d.security_group_id.clone(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            format!("DAMAGED MARKER ({}); the judge removes it", d.error),
        ]);
    }
    print!(
        "{}",
        table(&["EXPERIMENT ID", "EXPERIMENT", "TARGET", "CHANGE", "PORTS", "AGE", "DEADLINE", "STATE"], &rows)
    );
    Ok(exit::OK)
}

pub async fn revert(engine: &AwsEngine, id: Option<ExperimentId>, json: bool) -> Result<u8, Failure> {
    let reports = match &id {
        Some(id) => engine.revert_by_id(id).await?,
        None => engine.revert_all().await?,
    };
    let failed = reports.iter().filter(|r| !r.reverted && !r.not_ours).count();
    let not_ours = reports.iter().filter(|r| r.not_ours).count();
    if json {
        println!("{}", serde_json::to_string(&reports).expect("serializable"));
    } else if reports.is_empty() {
        match &id {
            Some(id) => println!("Nothing to revert: no experiment {id} was found."),
            None => println!("Nothing to revert: no active experiments."),
        }
    } else {
        print_reverts(&reports);
        println!("{} reverted, {failed} failed, {not_ours} not ours (left alone).", reports.len() - failed - not_ours);
    }
    Ok(if failed == 0 { exit::OK } else { exit::FAILURE })
}

/// `revert --force RULE_ID`: the one revoke without the ownership check.
pub async fn revert_force(engine: &AwsEngine, rule_id: &str, json: bool) -> Result<u8, Failure> {
    let report = engine.revert_force(rule_id).await?;
    if json {
        println!("{}", serde_json::to_string(&[&report]).expect("serializable"));
    } else {
        print_reverts(std::slice::from_ref(&report));
    }
    Ok(if report.reverted { exit::OK } else { exit::FAILURE })
}

fn print_reverts(reports: &[chaoslingr_domain::engine::RevertReport]) {
    for r in reports {
        let id = if r.experiment_id.is_empty() { "-" } else { r.experiment_id.as_str() };
        if r.reverted {
            let how = if r.already_gone { "was already gone" } else { "revoked and verified gone" };
            println!("{id}: rule {} on {} {how}", r.security_group_rule_id, r.security_group_id);
        } else if r.not_ours {
            println!(
                "{id}: NOT OURS, left alone: rule {} on {}: {}",
                r.security_group_rule_id,
                r.security_group_id,
                r.error.as_deref().unwrap_or_default()
            );
        } else {
            println!(
                "{id}: FAILED to revert rule {} on {}: {}",
                r.security_group_rule_id,
                r.security_group_id,
                r.error.as_deref().unwrap_or("unknown error")
            );
        }
    }
}

/// One judge tick. Exit 1 when a revert failed (a port may still be open).
pub async fn judge(engine: &AwsEngine, json: bool) -> Result<u8, Failure> {
    let report = Box::pin(engine.judge_tick()).await?;
    if json {
        println!("{}", serde_json::to_string(&report).expect("serializable"));
    } else {
        for c in &report.concluded {
            println!(
                "concluded {} {} on {} (reverted: {}): {}",
                c.experiment_id,
                c.outcome,
                c.security_group_id.as_deref().unwrap_or("-"),
                if c.reverted { "yes" } else { "NO" },
                c.reason
            );
        }
        for id in &report.watching {
            println!("watching  {id}");
        }
        for id in &report.left_to_their_starter {
            println!("left to its starter (a person's run, not overdue) {id}");
        }
        for r in &report.not_ours {
            println!("not ours  {r} (left alone)");
        }
        for e in &report.errors {
            println!("error     {e}");
        }
        if report.concluded.is_empty() && report.watching.is_empty() && report.left_to_their_starter.is_empty() {
            println!("No active experiments.");
        }
    }
    Ok(if report.revert_failed() { exit::FAILURE } else { exit::OK })
}
