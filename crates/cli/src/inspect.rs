//! `targets`, `status` and `revert`.

use std::time::SystemTime;

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
                t.group.id.clone(),
                t.group.name.clone(),
                t.group.vpc_id.clone().unwrap_or_else(|| "-".into()),
                if t.eligibility.is_ok() { "yes".into() } else { "no".into() },
                t.eligibility.as_ref().err().map(ToString::to_string).unwrap_or_default(),
            ]
        })
        .collect();
    print!("{}", table(&["GROUP", "NAME", "VPC", "ELIGIBLE", "WHY NOT"], &rows));
    println!(
        "\n{opted} opted in ({}={}), {eligible} eligible. Groups without the tag key are never listed or touched.",
        s.opt_in_tag, s.opt_in_value
    );
    Ok(exit::OK)
}

pub async fn status(engine: &AwsEngine, json: bool) -> Result<u8, Failure> {
    let active = engine.active().await?;
    let now = SystemTime::now();
    if json {
        let items: Vec<_> = active
            .iter()
            .map(|(rule, rec)| match rec {
                Ok(r) => json!({
                    "experiment_id": r.id,
                    "security_group_id": r.security_group_id,
                    "security_group_rule_id": r.security_group_rule_id,
                    "protocol": r.protocol,
                    "from_port": r.ports.from,
                    "to_port": r.ports.to,
                    "cidr": r.cidr,
                    "injected_at": chaoslingr_domain::time::rfc3339_millis(r.injected_at),
                    "deadline": timestamp(r.deadline),
                    "age_seconds": r.age(now).as_secs(),
                    "overdue": r.is_overdue(now),
                    "detectors": r.detectors,
                }),
                Err(e) => json!({
                    "experiment_id": rule.experiment_id(),
                    "security_group_id": rule.security_group_id,
                    "security_group_rule_id": rule.security_group_rule_id,
                    "error": e.to_string(),
                    "overdue": true,
                }),
            })
            .collect();
        println!("{}", serde_json::to_string(&items).expect("serializable"));
        return Ok(exit::OK);
    }
    if active.is_empty() {
        println!("No active experiments.");
        return Ok(exit::OK);
    }
    let rows: Vec<Vec<String>> = active
        .iter()
        .map(|(rule, rec)| match rec {
            Ok(r) => vec![
                r.id.to_string(),
                r.security_group_id.clone(),
                r.security_group_rule_id.clone(),
                format!("{} {}", r.protocol, r.ports),
                human(r.age(now)),
                timestamp(r.deadline),
                if r.is_overdue(now) {
                    format!("OVERDUE: run `chaoslingr revert {}`", r.id)
                } else {
                    "watching".into()
                },
            ],
            Err(e) => vec![
                rule.experiment_id().unwrap_or("?").to_string(),
                rule.security_group_id.clone(),
                rule.security_group_rule_id.clone(),
                "-".into(),
                "-".into(),
                "-".into(),
                format!("DAMAGED TAGS ({e}): run `chaoslingr revert --all`"),
            ],
        })
        .collect();
    print!("{}", table(&["EXPERIMENT", "GROUP", "RULE", "PORTS", "AGE", "DEADLINE", "STATE"], &rows));
    Ok(exit::OK)
}

pub async fn revert(engine: &AwsEngine, id: Option<ExperimentId>, json: bool) -> Result<u8, Failure> {
    let reports = match &id {
        Some(id) => engine.revert_by_id(id).await,
        None => engine.revert_all().await?,
    };
    let failed = reports.iter().filter(|r| !r.reverted).count();
    if json {
        println!("{}", serde_json::to_string(&reports).expect("serializable"));
    } else if reports.is_empty() {
        match &id {
            Some(id) => println!("Nothing to revert: no rule carries experiment id {id}."),
            None => println!("Nothing to revert: no active experiments."),
        }
    } else {
        for r in &reports {
            if r.reverted {
                let how = if r.already_gone { "was already gone" } else { "revoked and verified gone" };
                println!("{}: rule {} on {} {how}", r.experiment_id, r.security_group_rule_id, r.security_group_id);
            } else {
                println!(
                    "{}: FAILED to revert rule {} on {}: {}",
                    r.experiment_id,
                    r.security_group_rule_id,
                    r.security_group_id,
                    r.error.as_deref().unwrap_or("unknown error")
                );
            }
        }
        println!("{} reverted, {failed} failed.", reports.len() - failed);
    }
    Ok(if failed == 0 { exit::OK } else { exit::FAILURE })
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
            println!("left to its starter (not overdue, no marker) {id}");
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
