//! `targets`, `status` and `revert`.

use std::time::SystemTime;

use chaoslingr_domain::discovery::RuleState;
use chaoslingr_domain::engine::RevertReport;
use chaoslingr_domain::experiment::ExperimentId;
use chaoslingr_domain::time::human;
use serde_json::json;

use chaoslingr_domain::fleet::Scope;
use chaoslingr_fleet::{Fleet, ScopeResult};

use crate::output::{table, timestamp};
use crate::{exit, Failure};

/// The answers of every scope, and the failures: with one scope its failure is the
/// command's (as a single-account command always was); with several, each failure is
/// printed and the others are shown.
fn answered<T>(fleet: &Fleet, results: Vec<ScopeResult<T>>) -> Result<(Vec<(Scope, T)>, usize), Failure> {
    let mut out = Vec::new();
    let mut failed = 0;
    for r in results {
        match r.result {
            Ok(v) => out.push((r.scope, v)),
            Err(e) if fleet.is_single() => return Err(anyhow::anyhow!(e).into()),
            Err(e) => {
                eprintln!("chaoslingr: error: {e}");
                failed += 1;
            }
        }
    }
    Ok((out, failed))
}

/// The account and region columns: shown when there is more than one scope.
fn scope_cells(fleet: &Fleet, scope: &Scope, account: Option<&str>) -> Vec<String> {
    if fleet.is_single() {
        return Vec::new();
    }
    vec![account.or(scope.account.as_deref()).unwrap_or("-").to_string(), scope.region.clone()]
}

fn with_scope_headers<'a>(fleet: &Fleet, headers: &[&'a str]) -> Vec<&'a str> {
    let mut out = if fleet.is_single() { Vec::new() } else { vec!["ACCOUNT", "REGION"] };
    out.extend_from_slice(headers);
    out
}

/// Adds `account` and `region` to a JSON item.
fn scoped(mut item: serde_json::Value, scope: &Scope, account: Option<&str>) -> serde_json::Value {
    item["account"] = json!(account.or(scope.account.as_deref()));
    item["region"] = json!(scope.region);
    item
}

fn status_of(failed: usize) -> u8 {
    if failed == 0 {
        exit::OK
    } else {
        exit::FAILURE
    }
}

pub async fn targets(fleet: &Fleet, json: bool) -> Result<u8, Failure> {
    let (answers, failed) = answered(fleet, fleet.targets().await)?;
    let engine = fleet.hub();
    let s = &fleet.settings;
    let targets: Vec<(&Scope, &chaoslingr_domain::engine::TargetStatus)> =
        answers.iter().flat_map(|(scope, ts)| ts.iter().map(move |t| (scope, t))).collect();
    if json {
        let items: Vec<_> = targets
            .iter()
            .map(|(scope, t)| {
                scoped(
                    json!({
                        "experiment": engine.technique_for(&t.group.id).name,
                        "target_id": t.group.id,
                        "security_group_id": t.group.id,
                        "name": t.group.name,
                        "vpc_id": t.group.vpc_id,
                        "eligible": t.eligibility.is_ok(),
                        "reason": t.eligibility.as_ref().err().map(ToString::to_string),
                    }),
                    scope,
                    t.group.owner_id.as_deref(),
                )
            })
            .collect();
        println!("{}", serde_json::to_string(&items).expect("serializable"));
        return Ok(status_of(failed));
    }
    let eligible = targets.iter().filter(|(_, t)| t.eligibility.is_ok()).count();
    let opted = targets
        .iter()
        .filter(|(_, t)| !matches!(t.eligibility, Err(chaoslingr_domain::selection::Ineligible::NotOptedIn)))
        .count();
    let rows: Vec<Vec<String>> = targets
        .iter()
        .map(|(scope, t)| {
            let mut row = scope_cells(fleet, scope, t.group.owner_id.as_deref());
            row.extend([
                engine.technique_for(&t.group.id).name.to_string(),
                t.group.id.clone(),
                t.group.name.clone(),
                t.group.vpc_id.clone().unwrap_or_else(|| "-".into()),
                if t.eligibility.is_ok() { "yes".into() } else { "no".into() },
                t.eligibility.as_ref().err().map(ToString::to_string).unwrap_or_default(),
            ]);
            row
        })
        .collect();
    let headers = with_scope_headers(fleet, &["EXPERIMENT", "TARGET", "NAME", "VPC", "ELIGIBLE", "WHY NOT"]);
    print!("{}", table(&headers, &rows));
    let across =
        if fleet.is_single() { String::new() } else { format!(" across {} account(s) and region(s)", answers.len()) };
    println!(
        "\n{opted} opted in ({}={}), {eligible} eligible{across}. Security groups and network ACLs without the tag key are never listed or touched.",
        s.opt_in_tag, s.opt_in_value
    );
    if failed > 0 {
        println!("{failed} account(s) and region(s) could not be listed (see above).");
    }
    Ok(status_of(failed))
}

pub async fn status(fleet: &Fleet, json: bool) -> Result<u8, Failure> {
    let (answers, failed) = answered(fleet, fleet.active().await)?;
    let engine = fleet.hub();
    let now = SystemTime::now();
    let experiments: Vec<(&Scope, &chaoslingr_domain::discovery::Found)> =
        answers.iter().flat_map(|(scope, found)| found.experiments.iter().map(move |f| (scope, f))).collect();
    let damaged: Vec<(&Scope, &chaoslingr_domain::discovery::DamagedMarker)> =
        answers.iter().flat_map(|(scope, found)| found.damaged_markers.iter().map(move |d| (scope, d))).collect();
    if json {
        let mut items: Vec<_> = experiments
            .iter()
            .map(|(scope, f)| {
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
                let account = f.record.as_ref().ok().and_then(|r| r.account.clone());
                scoped(item, scope, account.as_deref())
            })
            .collect();
        for (scope, d) in &damaged {
            items.push(scoped(
                json!({
                    "experiment_id": d.experiment_id,
                    "security_group_id": d.security_group_id,
                    "marked": true,
                    "error": format!("damaged marker: {}", d.error),
                }),
                scope,
                None,
            ));
        }
        println!("{}", serde_json::to_string(&items).expect("serializable"));
        return Ok(status_of(failed));
    }
    for (scope, found) in &answers {
        for e in &found.errors {
            if fleet.is_single() {
                eprintln!("warning: {e}");
            } else {
                eprintln!("warning: {scope}: {e}");
            }
        }
    }
    if experiments.is_empty() && damaged.is_empty() {
        println!(
            "{}",
            if failed > 0 {
                "No active experiments in the accounts and regions reached."
            } else {
                "No active experiments."
            }
        );
        return Ok(status_of(failed));
    }
    let mut rows: Vec<Vec<String>> = experiments
        .iter()
        .map(|(scope, f)| {
            let id = f.experiment_id.clone().unwrap_or_else(|| "?".into());
            let state = match (&f.ours, &f.rule, &f.record) {
                (Err(why), _, _) => format!("NOT OURS, left alone ({why})"),
                (_, RuleState::Gone, _) => "rule gone; the judge records the outcome".into(),
                (_, _, Err(e)) => format!("DAMAGED TAGS ({e}): run `chaoslingr revert {id}`"),
                (_, _, Ok(r)) if r.is_overdue(now) => format!("OVERDUE: run `chaoslingr revert {}`", r.id),
                _ => "watching".into(),
            };
            let account = f.record.as_ref().ok().and_then(|r| r.account.clone());
            let mut row = scope_cells(fleet, scope, account.as_deref());
            row.extend(match &f.record {
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
            });
            row
        })
        .collect();
    for (scope, d) in &damaged {
        let mut row = scope_cells(fleet, scope, None);
        row.extend([
            d.experiment_id.clone().unwrap_or_else(|| "?".into()),
            engine.technique_for(&d.security_group_id).name.to_string(),
            d.security_group_id.clone(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            format!("DAMAGED MARKER ({}); the judge removes it", d.error),
        ]);
        rows.push(row);
    }
    let headers = with_scope_headers(
        fleet,
        &["EXPERIMENT ID", "EXPERIMENT", "TARGET", "CHANGE", "PORTS", "AGE", "DEADLINE", "STATE"],
    );
    print!("{}", table(&headers, &rows));
    Ok(status_of(failed))
}

pub async fn revert(fleet: &Fleet, id: Option<ExperimentId>, json: bool) -> Result<u8, Failure> {
    let results = match &id {
        Some(id) => fleet.revert_by_id(id).await,
        None => fleet.revert_all().await,
    };
    let (answers, failed_scopes) = answered(fleet, results)?;
    let reports: Vec<(&Scope, &RevertReport)> =
        answers.iter().flat_map(|(scope, rs)| rs.iter().map(move |r| (scope, r))).collect();
    let failed = reports.iter().filter(|(_, r)| !r.reverted && !r.not_ours).count();
    let not_ours = reports.iter().filter(|(_, r)| r.not_ours).count();
    if json {
        if fleet.is_single() {
            let plain: Vec<&RevertReport> = reports.iter().map(|(_, r)| *r).collect();
            println!("{}", serde_json::to_string(&plain).expect("serializable"));
        } else {
            let items: Vec<_> = reports
                .iter()
                .map(|(scope, r)| scoped(serde_json::to_value(r).expect("serializable"), scope, None))
                .collect();
            println!("{}", serde_json::to_string(&items).expect("serializable"));
        }
    } else if reports.is_empty() {
        match &id {
            Some(id) => println!("Nothing to revert: no experiment {id} was found."),
            None if failed_scopes > 0 => {
                println!("Nothing to revert in the accounts and regions reached: no active experiments there.")
            }
            None => println!("Nothing to revert: no active experiments."),
        }
    } else {
        for (scope, r) in &reports {
            if !fleet.is_single() {
                print!("{scope}  ");
            }
            print_reverts(std::slice::from_ref(*r));
        }
        println!("{} reverted, {failed} failed, {not_ours} not ours (left alone).", reports.len() - failed - not_ours);
    }
    if failed_scopes > 0 {
        eprintln!(
            "chaoslingr: {failed_scopes} account(s) and region(s) could not be reached: any experiment there may still be open; the judge retries every minute"
        );
    }
    Ok(if failed == 0 && failed_scopes == 0 { exit::OK } else { exit::FAILURE })
}

/// `revert --force RULE_ID`: the one revoke without the ownership check.
pub async fn revert_force(fleet: &Fleet, rule_id: &str, json: bool) -> Result<u8, Failure> {
    let [member] = fleet.members.as_slice() else {
        return Err(Failure {
            status: exit::BAD_INPUT,
            error: anyhow::anyhow!(
                "--force removes one rule in one account and region: name them with --accounts and --regions (there are {} targets); nothing was changed",
                fleet.members.len()
            ),
        });
    };
    let report = member.engine.revert_force(rule_id).await?;
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
pub async fn judge(fleet: &Fleet, json: bool) -> Result<u8, Failure> {
    let tick = Box::pin(fleet.judge_tick()).await?;
    let report = &tick.total;
    if json {
        if fleet.is_single() {
            println!("{}", serde_json::to_string(report).expect("serializable"));
        } else {
            println!("{}", serde_json::to_string(&tick).expect("serializable"));
        }
    } else {
        for c in &report.concluded {
            let place = match (&c.account, &c.region) {
                _ if fleet.is_single() => String::new(),
                (Some(a), Some(r)) => format!(" in {a}/{r}"),
                (None, Some(r)) => format!(" in {r}"),
                _ => String::new(),
            };
            println!(
                "concluded {} {} on {}{place} (reverted: {}): {}",
                c.experiment_id,
                c.outcome,
                c.target_id.as_deref().unwrap_or("-"),
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
            if tick.failed_scopes.is_empty() {
                println!("No active experiments.");
            } else {
                println!("No active experiments in the accounts and regions reached.");
            }
        }
        if !fleet.is_single() {
            let ok = tick.scopes.len() - tick.failed_scopes.len();
            println!("{ok} of {} account(s) and region(s) ticked.", tick.scopes.len());
        }
    }
    Ok(if report.revert_failed() || !tick.failed_scopes.is_empty() { exit::FAILURE } else { exit::OK })
}
