//! The AWS Config operations ChaoSlingr uses, answered in the AWS JSON 1.1 protocol the
//! way the service answers them (target prefix `StarlingDoveService`, epoch-second
//! timestamps, `NextToken` pagination, `__type` errors), so the unchanged SDK client
//! works against the lab.

use std::time::SystemTime;

use serde_json::{json, Value};

use crate::settings::{Fault, FaultKind};
use crate::state::{Evaluation, LabState};
pub use crate::state::{NETWORK_ACL, SECURITY_GROUP};

/// The `X-Amz-Target` prefix of AWS Config.
pub const TARGET_PREFIX: &str = "StarlingDoveService.";

/// An HTTP answer: status and JSON body.
pub type Answer = (u16, String);

fn epoch(t: SystemTime) -> Value {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    json!((d.as_millis() as f64) / 1000.0)
}

fn error(status: u16, kind: &str, message: &str) -> Answer {
    (status, json!({ "__type": kind, "message": message }).to_string())
}

/// The error answer of an injected fault.
pub fn fault_answer(fault: Fault) -> Answer {
    match fault.kind {
        FaultKind::Throttle => error(400, "ThrottlingException", "Rate exceeded (injected by chaoslingr-lab)"),
        FaultKind::ServerError => error(500, "InternalFailure", "Internal failure (injected by chaoslingr-lab)"),
    }
}

fn result_json(e: &Evaluation) -> Value {
    json!({
        "EvaluationResultIdentifier": {
            "EvaluationResultQualifier": {
                "ConfigRuleName": e.rule,
                "ResourceType": e.resource_type,
                "ResourceId": e.resource_id,
                "EvaluationMode": "DETECTIVE",
            },
            "OrderingTimestamp": epoch(e.invoked),
        },
        "ComplianceType": e.compliance.as_str(),
        "ResultRecordedTime": epoch(e.recorded),
        "ConfigRuleInvokedTime": epoch(e.invoked),
        "Annotation": e.annotation,
    })
}

/// Pages `items` by `NextToken` (an offset the lab issued).
fn page<T: Clone>(items: &[T], token: Option<&str>, size: usize) -> Result<(Vec<T>, Option<String>), Answer> {
    let start = match token {
        None | Some("") => 0,
        Some(t) => t
            .strip_prefix("lab-")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n <= items.len())
            .ok_or_else(|| error(400, "InvalidNextTokenException", "The specified next token is invalid."))?,
    };
    let end = (start + size).min(items.len());
    let next = (end < items.len()).then(|| format!("lab-{end}"));
    Ok((items[start..end].to_vec(), next))
}

fn compliance_filter(req: &Value) -> Result<Vec<String>, Answer> {
    let Some(list) = req.get("ComplianceTypes") else { return Ok(Vec::new()) };
    let list: Vec<String> =
        list.as_array().map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect()).unwrap_or_default();
    for c in &list {
        if !["COMPLIANT", "NON_COMPLIANT", "NOT_APPLICABLE", "INSUFFICIENT_DATA"].contains(&c.as_str()) {
            return Err(error(400, "InvalidParameterValueException", &format!("Invalid ComplianceType: {c}")));
        }
    }
    Ok(list)
}

fn required<'a>(req: &'a Value, field: &str) -> Result<&'a str, Answer> {
    req.get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| error(400, "ValidationException", &format!("1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null")))
}

fn results(page_items: Vec<&Evaluation>, next: Option<String>) -> Answer {
    let mut body = json!({ "EvaluationResults": page_items.into_iter().map(result_json).collect::<Vec<_>>() });
    if let Some(n) = next {
        body["NextToken"] = json!(n);
    }
    (200, body.to_string())
}

/// Whether a request is about network ACLs: their resource type, or one of their rules.
/// Such requests take `[nacl_config]`'s fault; every other Config request `[config]`'s.
fn about_acls(state: &LabState, req: &Value) -> bool {
    let rule = req.get("ConfigRuleName").and_then(Value::as_str);
    req.get("ResourceType").and_then(Value::as_str) == Some(NETWORK_ACL)
        || rule.is_some_and(|r| state.settings.nacl_config_rules.iter().any(|n| n.name == r))
}

/// Answers one Config operation (`X-Amz-Target` without the prefix).
pub fn handle(state: &mut LabState, operation: &str, body: &[u8], now: SystemTime) -> Answer {
    let req: Value = match serde_json::from_slice(if body.is_empty() { b"{}" } else { body }) {
        Ok(v) => v,
        Err(_) => return error(400, "SerializationException", "The request body is not valid JSON."),
    };
    let fault = if about_acls(state, &req) { state.nacl_config_fault.take() } else { state.config_fault.take() };
    if let Some(fault) = fault {
        return fault_answer(fault);
    }
    state.promote(now);
    let result = match operation {
        "GetComplianceDetailsByResource" => by_resource(state, &req),
        "GetComplianceDetailsByConfigRule" => by_rule(state, &req),
        "DescribeConfigRules" => describe_rules(state, &req),
        "DescribeConfigurationRecorders" => recorders(state, &req),
        "DescribeConfigurationRecorderStatus" => recorder_status(state, &req),
        other => Err(error(
            400,
            "UnknownOperationException",
            &format!("chaoslingr-lab does not serve Config operation {other}"),
        )),
    };
    result.unwrap_or_else(|e| e)
}

fn by_resource(state: &LabState, req: &Value) -> Result<Answer, Answer> {
    let resource_type = required(req, "ResourceType")?;
    let resource_id = required(req, "ResourceId")?;
    let types = compliance_filter(req)?;
    let matching: Vec<&Evaluation> = state
        .evaluations()
        .filter(|e| e.resource_type == resource_type && e.resource_id == resource_id)
        .filter(|e| types.is_empty() || types.iter().any(|t| t == e.compliance.as_str()))
        .collect();
    let (items, next) = page(&matching, req.get("NextToken").and_then(Value::as_str), state.settings.config_page_size)?;
    Ok(results(items, next))
}

fn by_rule(state: &LabState, req: &Value) -> Result<Answer, Answer> {
    let rule = required(req, "ConfigRuleName")?;
    let s = &state.settings;
    if !s.config_rules.iter().chain(&s.nacl_config_rules).any(|r| r.name == rule) {
        return Err(error(
            400,
            "NoSuchConfigRuleException",
            &format!("The ConfigRule '{rule}' provided in the request is invalid. Please check the configRule name."),
        ));
    }
    let types = compliance_filter(req)?;
    let limit = match req.get("Limit").and_then(Value::as_u64) {
        None | Some(0) => 100,
        Some(n) if n <= 100 => n as usize,
        Some(_) => return Err(error(400, "InvalidLimitException", "Limit must be at most 100.")),
    };
    let matching: Vec<&Evaluation> = state
        .evaluations()
        .filter(|e| e.rule == rule)
        .filter(|e| types.is_empty() || types.iter().any(|t| t == e.compliance.as_str()))
        .collect();
    let size = limit.min(state.settings.config_page_size);
    let (items, next) = page(&matching, req.get("NextToken").and_then(Value::as_str), size)?;
    Ok(results(items, next))
}

fn describe_rules(state: &LabState, req: &Value) -> Result<Answer, Answer> {
    let s = &state.settings;
    let names: Vec<String> = req
        .get("ConfigRuleNames")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
        .unwrap_or_default();
    let all: Vec<(&crate::rules::OpenPortsRule, bool)> =
        s.config_rules.iter().map(|r| (r, false)).chain(s.nacl_config_rules.iter().map(|r| (r, true))).collect();
    for n in &names {
        if !all.iter().any(|(r, _)| &r.name == n) {
            return Err(error(
                400,
                "NoSuchConfigRuleException",
                &format!("The ConfigRule '{n}' provided in the request is invalid. Please check the configRule name."),
            ));
        }
    }
    let rules: Vec<Value> = all
        .iter()
        .enumerate()
        .filter(|(_, (r, _))| names.is_empty() || names.contains(&r.name))
        .map(|(i, (r, for_acls))| {
            let mut rule = json!({
                "ConfigRuleName": r.name,
                "ConfigRuleArn": format!("arn:aws:config:{}:{}:config-rule/config-rule-lab{:03}", s.region, s.account, i),
                "ConfigRuleId": format!("config-rule-lab{:03}", i),
                "Description": "Checks that security groups allowing unrestricted incoming traffic only allow inbound TCP or UDP on authorized ports (chaoslingr-lab).",
                "Scope": { "ComplianceResourceTypes": [SECURITY_GROUP] },
                "Source": { "Owner": "AWS", "SourceIdentifier": "VPC_SG_OPEN_ONLY_TO_AUTHORIZED_PORTS" },
                "InputParameters": r.input_parameters,
                "ConfigRuleState": "ACTIVE",
                "EvaluationModes": [{ "Mode": "DETECTIVE" }],
            });
            if *for_acls {
                // AWS has no managed rule for this: the lab's is a custom rule.
                rule["Description"] = json!("Checks that network ACL inbound entries allowing unrestricted traffic only allow TCP or UDP on authorized ports (chaoslingr-lab).");
                rule["Scope"] = json!({ "ComplianceResourceTypes": [NETWORK_ACL] });
                rule["Source"] = json!({
                    "Owner": "CUSTOM_LAMBDA",
                    "SourceIdentifier": format!("arn:aws:lambda:{}:{}:function:chaoslingr-lab-{}", s.region, s.account, r.name),
                    "SourceDetails": [{ "EventSource": "aws.config", "MessageType": "ConfigurationItemChangeNotification" }],
                });
            }
            rule
        })
        .collect();
    let (items, next) = page(&rules, req.get("NextToken").and_then(Value::as_str), 25)?;
    let mut body = json!({ "ConfigRules": items });
    if let Some(n) = next {
        body["NextToken"] = json!(n);
    }
    Ok((200, body.to_string()))
}

/// The recorder names a request asks for; an unknown one is an error, as in AWS.
fn recorder_names(state: &LabState, req: &Value) -> Result<(), Answer> {
    let names = req.get("ConfigurationRecorderNames").and_then(Value::as_array);
    for n in names.into_iter().flatten().filter_map(Value::as_str) {
        if !state.settings.recorder.present || n != "default" {
            return Err(error(
                400,
                "NoSuchConfigurationRecorderException",
                &format!("Cannot find configuration recorder with the specified name '{n}'."),
            ));
        }
    }
    Ok(())
}

fn recorders(state: &LabState, req: &Value) -> Result<Answer, Answer> {
    recorder_names(state, req)?;
    let s = &state.settings;
    let list: Vec<Value> =
        if s.recorder.present { vec![s.recorder.recorder_json(&s.region, &s.account)] } else { Vec::new() };
    Ok((200, json!({ "ConfigurationRecorders": list }).to_string()))
}

fn recorder_status(state: &LabState, req: &Value) -> Result<Answer, Answer> {
    recorder_names(state, req)?;
    let r = &state.settings.recorder;
    let list: Vec<Value> = if r.present { vec![r.status_json(state.started, epoch)] } else { Vec::new() };
    Ok((200, json!({ "ConfigurationRecordersStatus": list }).to_string()))
}
