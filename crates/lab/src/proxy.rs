//! The lab's HTTP front: one loopback endpoint for every service. AWS Config operations
//! are answered by the lab; detector reads can be made to fail on purpose; with IAM
//! enforcement, requests of the enforced access keys are evaluated first and denied ones
//! answered as the service would; everything else is forwarded to the emulator unchanged.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

use crate::config_api::{self, TARGET_PREFIX};
use crate::emulator_gaps;
use crate::iam::{self, Caller, Enforcer, Scope, Verdict};
use crate::recorder::FileRecorder;
use crate::roles::{self, AssumedRole, Roles};
use crate::settings::{Fault, FaultKind};
use crate::state::LabState;
use crate::wire::{self, Decision, FaultPlan, Faults, HoldSpec, Holds, Phase};

/// The admin API's path prefix (unsigned requests only).
pub const ADMIN_PREFIX: &str = "/_lab/";

/// Shared by every connection.
pub struct Front {
    pub state: Arc<Mutex<LabState>>,
    pub upstream: Uri,
    client: Client<HttpConnector, Full<Bytes>>,
    /// Where to append one JSON line per AWS call (`--record-calls`).
    calls: Option<Mutex<std::fs::File>>,
    /// IAM enforcement (`--enforce-iam`), and the emulator's EC2 for reading group tags.
    iam: Option<(Arc<Enforcer>, aws_sdk_ec2::Client)>,
    /// Seconds added to every forwarded answer's `Date` (`--clock-skew`).
    clock_skew: i64,
    /// Requests to hold (`--hold`, `POST /_lab/holds`).
    pub holds: Holds,
    /// Random faults on the wire (`--wire-faults`, `PUT /_lab/faults`).
    pub faults: Faults,
    /// The credentials `AssumeRole` handed out, and the accounts whose roles it refuses
    /// (`--deny-assume-role`, `PUT /_lab/assume-role-denials`).
    pub roles: Roles,
}

impl Front {
    pub fn new(state: Arc<Mutex<LabState>>, upstream: Uri) -> Self {
        Front {
            state,
            upstream,
            client: Client::builder(TokioExecutor::new()).build_http(),
            calls: None,
            iam: None,
            clock_skew: 0,
            holds: Holds::default(),
            faults: Faults::default(),
            roles: Roles::default(),
        }
    }

    /// Appends one line to the call log (`--record-calls`), if there is one.
    ///
    /// The line goes out in a single `write` on a file opened for appending, so the
    /// lines of several labs sharing one log (the end-to-end tests run in parallel)
    /// never interleave: `writeln!` would write the line in pieces.
    fn log(&self, line: Option<Value>) {
        use std::io::Write;
        if let (Some(log), Some(line)) = (&self.calls, line) {
            let mut bytes = line.to_string().into_bytes();
            bytes.push(b'\n');
            let f = log.lock().expect("call log lock");
            let _ = (&*f).write_all(&bytes);
        }
    }

    /// Evaluates the requests of the access keys `enforcer` knows (and of credentials of
    /// the roles it knows) before forwarding them; `ec2` (on the emulator) reads the
    /// current tags of the groups they act on (in the role's account for a role's).
    pub fn with_iam(mut self, enforcer: Arc<Enforcer>, ec2: aws_sdk_ec2::Client) -> Self {
        self.iam = Some((enforcer, ec2));
        self
    }

    /// Shifts the `Date` header of every forwarded answer by `seconds`: AWS as seen from a
    /// machine whose clock is off.
    pub fn with_clock_skew(mut self, seconds: i64) -> Self {
        self.clock_skew = seconds;
        self
    }

    /// Appends `{"access_key": .., "action": "<iam prefix>:<Operation>", "allowed": ..,
    /// "denied": ..}` for every call to `file`, so a test can see which IAM actions each
    /// caller (told apart by its access key) needed and whether enforcement let them
    /// through (`allowed` is null for calls that were not evaluated).
    /// Lines also carry the answer's `status`; for EC2 writes the groups and rules the
    /// request names (`targets`), the `tags` it writes and, for an authorize, the rules it
    /// `created`; `fault`
    /// when a wire fault hit the call, and `held` (`before`/`after`) when it was held.
    /// Calls signed with credentials an `AssumeRole` through the lab handed out carry the
    /// `role_arn` and `account` they act as; an `AssumeRole` carries the `target_role_arn`
    /// and `target_account` it asks for, and when the lab refused it
    /// (`--deny-assume-role`) `denied: true`, `lab_denied_assume_role: true` and
    /// `iam_allowed` (what IAM enforcement said before: true, or null when not evaluated).
    pub fn with_call_log(mut self, file: std::fs::File) -> Self {
        self.calls = Some(Mutex::new(file));
        self
    }
}

/// The IAM action of a request (`ec2:DescribeSecurityGroups`, `cloudwatch:PutMetricData`,
/// ...) and the caller's access key id, from the SigV4 scope and the protocol's operation
/// name (`X-Amz-Target`, a query `Action=`, or a Security Hub REST path).
pub fn call_of(
    headers: &hyper::HeaderMap,
    method: &hyper::Method,
    path: &str,
    body: &[u8],
) -> Option<(String, String)> {
    let (access_key, service) = credential_scope(headers)?;
    let prefix = match service {
        "monitoring" => "cloudwatch",
        other => other,
    };
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok());
    let operation = if service == "s3" {
        s3_operation(method.as_str(), path)
    } else if let Some(t) = target {
        t.rsplit('.').next().unwrap_or(t).to_string()
    } else if let Some(action) = std::str::from_utf8(body)
        .ok()
        .and_then(|b| b.split('&').find_map(|kv| kv.strip_prefix("Action=")).map(String::from))
    {
        action
    } else {
        match (method.as_str(), path) {
            ("POST", "/findings") => "GetFindings".to_string(),
            ("POST", "/findings/import") => "BatchImportFindings".to_string(),
            (m, p) => format!("{m} {p}"),
        }
    };
    Some((access_key.to_string(), format!("{prefix}:{operation}")))
}

/// The IAM action of a path-style S3 request (`/bucket` or `/bucket/key`): what the
/// archive function and `report --archive` call. Others read as `METHOD PATH`.
fn s3_operation(method: &str, path: &str) -> String {
    let object = path.trim_start_matches('/').split_once('/').is_some_and(|(_, key)| !key.is_empty());
    match (method, object) {
        ("PUT", true) => "PutObject",
        ("GET" | "HEAD", true) => "GetObject",
        ("DELETE", true) => "DeleteObject",
        ("GET", false) => "ListBucket",
        ("PUT", false) => "CreateBucket",
        (m, _) => return format!("{m} {path}"),
    }
    .to_string()
}

/// The signing name of the service a request is for, from its SigV4 credential scope
/// (`Credential=AKID/DATE/REGION/SERVICE/aws4_request`).
pub fn service_of(headers: &hyper::HeaderMap) -> Option<String> {
    credential_scope(headers).map(|(_, service)| service.to_string())
}

/// The region a request is signed for, from its SigV4 credential scope.
pub fn region_of(headers: &hyper::HeaderMap) -> Option<String> {
    sigv4_scope(headers).map(|scope| scope[2].to_string()).filter(|r| !r.is_empty())
}

/// The access key id and service of a request's SigV4 credential scope.
fn credential_scope(headers: &hyper::HeaderMap) -> Option<(&str, &str)> {
    sigv4_scope(headers).map(|scope| (scope[0], scope[3]))
}

/// `[AKID, DATE, REGION, SERVICE, aws4_request, ...]` of a request's SigV4 credential scope.
fn sigv4_scope(headers: &hyper::HeaderMap) -> Option<Vec<&str>> {
    let auth = headers.get("authorization")?.to_str().ok()?;
    let cred = auth.split("Credential=").nth(1)?;
    let scope: Vec<&str> = cred.split([',', ' ']).next()?.split('/').collect();
    (scope.len() >= 5).then_some(scope)
}

/// The `RoleArn` and `RoleSessionName` of an `sts:AssumeRole` (query or JSON protocol).
fn assume_role_request(parts: &hyper::http::request::Parts, body: &[u8]) -> Option<(String, String)> {
    let params = query_params(parts, body);
    let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    if let Some(role_arn) = get("RoleArn") {
        return Some((role_arn, get("RoleSessionName").unwrap_or_default()));
    }
    let json: Value = serde_json::from_slice(body).ok()?;
    let role_arn = json.get("RoleArn")?.as_str()?.to_string();
    let session = json.get("RoleSessionName").and_then(Value::as_str).unwrap_or_default().to_string();
    Some((role_arn, session))
}

fn respond(status: u16, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_str(content_type).expect("valid content type"));
    r.headers_mut().insert("x-amzn-requestid", HeaderValue::from_static("chaoslingr-lab"));
    r
}

/// An injected CloudWatch (awsQuery) error.
fn query_fault(fault: Fault) -> Response<Full<Bytes>> {
    let (status, code) = match fault.kind {
        FaultKind::Throttle => (400, "Throttling"),
        FaultKind::ServerError => (500, "InternalFailure"),
    };
    let body = format!(
        "<ErrorResponse xmlns=\"http://monitoring.amazonaws.com/doc/2010-08-01/\"><Error><Type>{}</Type><Code>{code}</Code><Message>injected by chaoslingr-lab</Message></Error><RequestId>chaoslingr-lab</RequestId></ErrorResponse>",
        if status == 500 { "Receiver" } else { "Sender" }
    );
    respond(status, "text/xml", body)
}

/// An injected Security Hub (REST JSON) error.
fn rest_fault(fault: Fault) -> Response<Full<Bytes>> {
    let (status, code) = match fault.kind {
        FaultKind::Throttle => (429, "TooManyRequestsException"),
        FaultKind::ServerError => (500, "InternalException"),
    };
    let mut r = respond(status, "application/json", "{\"Message\":\"injected by chaoslingr-lab\"}".into());
    r.headers_mut().insert("x-amzn-errortype", HeaderValue::from_static(code));
    r
}

/// Why the lab closed a connection without an answer (a hold released, a dropped
/// connection): hyper then closes the connection, as a network failure would.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Dropped(&'static str);

async fn handle(front: Arc<Front>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Dropped> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return Ok(respond(400, "text/plain", format!("could not read the request body: {e}"))),
    };
    let call = call_of(&parts.headers, &parts.method, parts.uri.path(), &body);
    if call.is_none() && parts.uri.path().starts_with(ADMIN_PREFIX) {
        return Ok(admin(&front, &parts, &body).await);
    }
    // Credentials an AssumeRole through the lab handed out act as their role.
    let session = call.as_ref().and_then(|(key, _)| front.roles.session(key));
    let region = region_of(&parts.headers);
    let caller = match (&front.iam, &call) {
        (Some((enforcer, _)), Some((key, _))) => enforcer.caller(key, session.as_ref(), region.as_deref()),
        _ => None,
    };
    let verdict = match (&front.iam, &call, &caller) {
        (Some((enforcer, ec2)), Some((key, action)), Some(caller)) => {
            match enforce(enforcer, ec2, &parts, &body, caller, key, action).await {
                Ok(v) => v,
                Err(e) => {
                    warn!(access_key = %key, action = %action, error = %e, "could not evaluate IAM");
                    return Ok(respond(
                        500,
                        "text/plain",
                        format!("chaoslingr-lab could not evaluate IAM for {action}: {e:#}"),
                    ));
                }
            }
        }
        _ => Verdict::NotEvaluated,
    };
    let mut line = call.as_ref().map(|(key, action)| call_line(key, action, &verdict, &parts, &body));
    if let (Some(l), Some(role)) = (line.as_mut(), &session) {
        l["role_arn"] = role.role_arn.clone().into();
        l["account"] = role.account.clone().into();
    }
    let assume_role = match &call {
        Some((_, action)) if action == "sts:AssumeRole" => assume_role_request(&parts, &body),
        _ => None,
    };
    if let (Some(l), Some((role_arn, _))) = (line.as_mut(), &assume_role) {
        l["target_role_arn"] = role_arn.clone().into();
        if let Some(role) = roles::parse_role_arn(role_arn) {
            l["target_account"] = role.account.into();
        }
    }
    if let Verdict::Denied { denial, token } = &verdict {
        front.log(line);
        let service = service_of(&parts.headers).unwrap_or_default();
        let protocol = iam::protocol_of(&service, parts.headers.contains_key("x-amz-target"));
        let request_id = request_id(&front);
        let (status, content_type, error_type, text) = iam::denied_answer(protocol, denial, token, &request_id);
        let mut r = respond(status, content_type, text);
        if let Some(t) = error_type {
            r.headers_mut().insert("x-amzn-errortype", HeaderValue::from_static(t));
        }
        return Ok(r);
    }
    if let (Some((key, _)), Some((role_arn, _))) = (&call, &assume_role) {
        if front.roles.refuses(role_arn) {
            // The role's account refuses (the role is missing, or does not trust the
            // caller): STS's answer, whatever the caller's own policy allowed.
            let who = caller_arn(&front, key, session.as_ref(), caller.as_ref(), region.as_deref());
            if let Some(l) = line.as_mut() {
                l["iam_allowed"] = l["allowed"].clone();
                l["allowed"] = false.into();
                l["denied"] = true.into();
                l["lab_denied_assume_role"] = true.into();
                l["denied_action"] = "sts:AssumeRole".into();
                l["resources"] = serde_json::json!([role_arn]);
                l["status"] = 403.into();
            }
            front.log(line);
            info!(access_key = %key, caller = %who, role_arn = %role_arn, "AssumeRole refused (--deny-assume-role)");
            let request_id = request_id(&front);
            let (status, content_type, text) = if parts.headers.contains_key("x-amz-target") {
                roles::denied_json_answer(&who, role_arn)
            } else {
                roles::denied_answer(&who, role_arn, &request_id)
            };
            let mut r = respond(status, content_type, text);
            if status == 400 {
                r.headers_mut().insert("x-amzn-errortype", HeaderValue::from_static("AccessDenied"));
            }
            return Ok(r);
        }
    }
    let service = service_of(&parts.headers);
    let protocol = iam::protocol_of(service.as_deref().unwrap_or_default(), parts.headers.contains_key("x-amz-target"));

    // Faults on the wire, then holds before the request goes anywhere.
    let decision = match &call {
        Some((key, _)) => front.faults.decide(service.as_deref().unwrap_or("unknown"), key),
        None => Decision::Pass,
    };
    if decision != Decision::Pass {
        if let Some(l) = line.as_mut() {
            l["fault"] = format!("{decision:?}").to_lowercase().into();
        }
    }
    match decision {
        Decision::Throttle | Decision::Error => {
            front.log(line);
            let (status, content_type, error_type, text) = wire::fault_answer(protocol, decision == Decision::Throttle);
            let mut r = respond(status, content_type, text);
            if let Some(t) = error_type {
                r.headers_mut().insert("x-amzn-errortype", HeaderValue::from_static(t));
            }
            return Ok(r);
        }
        Decision::DropBefore => {
            front.log(line);
            return Err(Dropped("connection dropped before forwarding (wire fault)"));
        }
        _ => {}
    }
    if let Some((key, action)) = &call {
        if let Some(held) = front.holds.take(Phase::Before, key, action, &body, None) {
            if let Some(l) = line.as_mut() {
                l["held"] = "before".into();
            }
            front.log(line);
            announce_hold(held.id, Phase::Before, key, action, None);
            held.until_released().await;
            return Err(Dropped("held before forwarding, then released"));
        }
    }

    let mut response = answer(&front, &call, parts, body.clone(), service.as_deref()).await;

    let status = response.status().as_u16();
    if let (Some((role_arn, session_name)), true) = (&assume_role, status == 200) {
        let (rparts, rbody) = response.into_parts();
        let bytes = rbody.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
        match front.roles.remember(role_arn, session_name, &String::from_utf8_lossy(&bytes)) {
            Some((key, role)) => {
                info!(access_key = %key, role_arn = %role.role_arn, account = %role.account, "assumed role")
            }
            None => warn!(role_arn = %role_arn, "could not read the credentials of an AssumeRole answer"),
        }
        response = Response::from_parts(rparts, Full::new(bytes));
    }
    if let (Some(l), Some((_, action))) = (line.as_mut(), &call) {
        l["status"] = status.into();
        if action.starts_with("ec2:Authorize") {
            let (rparts, rbody) = response.into_parts();
            let bytes = rbody.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
            if let Some(created) = created_rules(action, status, &bytes) {
                l["created"] = created.into();
            }
            response = Response::from_parts(rparts, Full::new(bytes));
        }
    }
    if let Some((key, action)) = &call {
        if let Some(held) = front.holds.take(Phase::After, key, action, &body, Some(status)) {
            if let Some(l) = line.as_mut() {
                l["held"] = "after".into();
            }
            front.log(line);
            announce_hold(held.id, Phase::After, key, action, Some(status));
            held.until_released().await;
            return Err(Dropped("held after the emulator answered, then released"));
        }
    }
    front.log(line);
    match decision {
        Decision::DropAfter => Err(Dropped("connection dropped after the emulator applied the request (wire fault)")),
        Decision::Slow(delay) => {
            tokio::time::sleep(delay).await;
            Ok(response)
        }
        _ => Ok(response),
    }
}

/// The answer to a request that is neither denied nor faulted: the lab's own (Config,
/// STS DecodeAuthorizationMessage, detector faults) or the emulator's.
async fn answer(
    front: &Front,
    call: &Option<(String, String)>,
    parts: hyper::http::request::Parts,
    body: Bytes,
    service: Option<&str>,
) -> Response<Full<Bytes>> {
    if let (Some((enforcer, _)), Some((_, action))) = (&front.iam, call) {
        if action == "sts:DecodeAuthorizationMessage" {
            let params = query_params(&parts, &body);
            let token = params.iter().find(|(k, _)| k == "EncodedMessage").map(|(_, v)| v.as_str()).unwrap_or("");
            let request_id = request_id(front);
            return match enforcer.decode(token) {
                Some(decoded) => respond(200, "text/xml", iam::decode_answer(&decoded, &request_id)),
                None => respond(400, "text/xml", iam::invalid_message_answer(&request_id)),
            };
        }
    }
    let target = parts.headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    if let Some(operation) = target.strip_prefix(TARGET_PREFIX) {
        let (status, json) = {
            let mut state = front.state.lock().expect("lab state lock");
            config_api::handle(&mut state, operation, &body, SystemTime::now())
        };
        debug!(operation, status, "answered Config");
        return respond(status, "application/x-amz-json-1.1", json);
    }
    let is_describe_alarms =
        service == Some("monitoring") && std::str::from_utf8(&body).is_ok_and(|b| b.contains("Action=DescribeAlarms"));
    if is_describe_alarms {
        // A read naming the ACL alarm takes its faults; any other DescribeAlarms the group
        // firewall's (as before there was an ACL alarm).
        let names: Vec<String> = query_params(&parts, &body)
            .into_iter()
            .filter(|(k, _)| k.starts_with("AlarmNames.member."))
            .map(|(_, v)| v)
            .collect();
        let mut state = front.state.lock().expect("lab state lock");
        let names_acl_alarm = names.contains(&state.settings.nacl_firewall_alarm);
        let names_group_alarm = names.contains(&state.settings.firewall_alarm);
        let group_fault = if names_group_alarm || !names_acl_alarm { state.alarm_fault.take() } else { None };
        let acl_fault = if names_acl_alarm { state.nacl_alarm_fault.take() } else { None };
        if let Some(f) = group_fault.or(acl_fault) {
            return query_fault(f);
        }
    }
    if service == Some("securityhub") && parts.uri.path() == "/findings" {
        if let Some(f) = front.state.lock().expect("lab state lock").findings_fault.take() {
            return rest_fault(f);
        }
    }
    match call.as_ref().map(|(_, action)| action.as_str()) {
        Some("ec2:DescribeNetworkAcls") => describe_network_acls(front, parts, body).await,
        Some("ec2:DeleteNetworkAclEntry") => {
            let params = query_params(&parts, &body);
            let response = forward(front, parts, body).await;
            if response.status() == StatusCode::INTERNAL_SERVER_ERROR {
                // The emulator fails on an entry that is not there (see emulator_gaps).
                let text = emulator_gaps::missing_entry_answer(&params, &request_id(front));
                return respond(400, "text/xml;charset=UTF-8", text);
            }
            response
        }
        _ => forward(front, parts, body).await,
    }
}

/// `DescribeNetworkAcls` as AWS answers it, where the emulator does not (see
/// [`emulator_gaps`]).
async fn describe_network_acls(
    front: &Front,
    parts: hyper::http::request::Parts,
    body: Bytes,
) -> Response<Full<Bytes>> {
    let params = query_params(&parts, &body);
    let response = match emulator_gaps::acl_id_filter(&params) {
        None => forward(front, parts, body).await,
        Some((ids, rest)) => {
            let version = params.iter().find(|(k, _)| k == "Version").map(|(_, v)| v.as_str()).unwrap_or("2016-11-15");
            let probe = Bytes::from(format!("Action=DescribeNetworkAcls&Version={version}"));
            let listed = send(front, &parts.method, &parts.headers, "/", probe).await;
            if listed.status() != StatusCode::OK {
                return listed;
            }
            let text = listed.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            let existing = emulator_gaps::listed_acl_ids(&String::from_utf8_lossy(&text));
            let kept: Vec<String> = ids.into_iter().filter(|id| existing.contains(id)).collect();
            match emulator_gaps::by_ids(&rest, &kept) {
                None => {
                    return respond(200, "text/xml;charset=UTF-8", emulator_gaps::no_acls_answer(&request_id(front)))
                }
                Some(rewritten) => {
                    let path = parts.uri.path().to_string();
                    send(front, &parts.method, &parts.headers, &path, Bytes::from(rewritten)).await
                }
            }
        }
    };
    if response.status() != StatusCode::BAD_REQUEST {
        return response;
    }
    let (rparts, rbody) = response.into_parts();
    let bytes = rbody.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    match emulator_gaps::acl_not_found(&String::from_utf8_lossy(&bytes)) {
        Some(fixed) => Response::from_parts(rparts, Full::new(Bytes::from(fixed))),
        None => Response::from_parts(rparts, Full::new(bytes)),
    }
}

/// The principal a request is made by, as STS names it in a refusal: the assumed role's
/// session, the enforced caller, or a user named after the access key in the lab's account.
fn caller_arn(
    front: &Front,
    key: &str,
    session: Option<&AssumedRole>,
    caller: Option<&Caller>,
    region: Option<&str>,
) -> String {
    if let Some(role) = session {
        return role.arn.clone();
    }
    if let Some(caller) = caller {
        return caller.principal.clone();
    }
    let state = front.state.lock().expect("lab state lock");
    Scope::new(region.unwrap_or(&state.settings.region), &state.settings.account).principal(key)
}

/// The call log's line for one call: caller, IAM action, the IAM decision, and for EC2
/// writes the groups and rules the request names (`targets`).
fn call_line(key: &str, action: &str, verdict: &Verdict, parts: &hyper::http::request::Parts, body: &[u8]) -> Value {
    let mut line = serde_json::json!({ "access_key": key, "action": action });
    match verdict {
        Verdict::NotEvaluated => {
            line["allowed"] = Value::Null;
            line["denied"] = false.into();
        }
        Verdict::Allowed { resources } => {
            line["allowed"] = true.into();
            line["denied"] = false.into();
            line["resources"] = serde_json::json!(resources);
        }
        Verdict::Denied { denial, .. } => {
            line["allowed"] = false.into();
            line["denied"] = true.into();
            line["explicit_deny"] = denial.decision.explicit_deny.into();
            line["resources"] = serde_json::json!([denial.check.resource]);
            line["denied_action"] = denial.check.action.clone().into();
            line["matched"] = serde_json::json!(denial.decision.matched);
        }
    }
    let params = query_params(parts, body);
    if let Some(targets) = write_targets(action, &params) {
        line["targets"] = targets.into();
        let tags = tags_written(&params);
        if !tags.is_empty() {
            line["tags"] = serde_json::json!(tags);
        }
    }
    line
}

/// The tags an EC2 write carries (`Tag.N.*` of CreateTags and DeleteTags,
/// `TagSpecification.M.Tag.N.*` of a create), as key -> value.
fn tags_written(params: &iam::Params) -> std::collections::BTreeMap<String, String> {
    let mut keys = std::collections::BTreeMap::new();
    let mut values = std::collections::BTreeMap::new();
    for (k, v) in params {
        let k = k.strip_prefix("TagSpecification.").and_then(|r| r.split_once('.')).map(|(_, r)| r).unwrap_or(k);
        let Some(rest) = k.strip_prefix("Tag.") else { continue };
        if let Some(n) = rest.strip_suffix(".Key") {
            keys.insert(n.to_string(), v.clone());
        } else if let Some(n) = rest.strip_suffix(".Value") {
            values.insert(n.to_string(), v.clone());
        }
    }
    keys.into_iter().map(|(n, k)| (k, values.get(&n).cloned().unwrap_or_default())).collect()
}

/// The security groups, rules and network ACLs an EC2 write names (`GroupId`,
/// `SecurityGroupRuleId.N`, `NetworkAclId`, `ResourceId.N`), or `None` for anything that is
/// not an EC2 write.
pub fn write_targets(action: &str, params: &iam::Params) -> Option<Vec<String>> {
    let operation = action.strip_prefix("ec2:")?;
    if operation.starts_with("Describe") || operation.starts_with("Get") || operation == "DecodeAuthorizationMessage" {
        return None;
    }
    let mut targets: Vec<String> = params
        .iter()
        .filter(|(k, _)| {
            k == "GroupId"
                || k == "NetworkAclId"
                || k.starts_with("SecurityGroupRuleId.")
                || k.starts_with("ResourceId.")
        })
        .map(|(_, v)| v.clone())
        .collect();
    targets.sort();
    targets.dedup();
    Some(targets)
}

/// The rule ids an authorize created, from the emulator's answer (`<securityGroupRuleId>`).
fn created_rules(action: &str, status: u16, body: &[u8]) -> Option<Vec<String>> {
    if !action.starts_with("ec2:Authorize") || !(200..300).contains(&status) {
        return None;
    }
    let text = String::from_utf8_lossy(body);
    Some(
        text.split("<securityGroupRuleId>")
            .skip(1)
            .filter_map(|rest| rest.split('<').next())
            .map(String::from)
            .collect(),
    )
}

/// Says that the lab holds a request, on stdout (one line, flushed) and in the log.
fn announce_hold(id: usize, phase: Phase, key: &str, action: &str, status: Option<u16>) {
    use std::io::Write;
    let when = match phase {
        Phase::Before => "before forwarding".to_string(),
        Phase::After => format!("after the emulator answered {}", status.unwrap_or_default()),
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "chaoslingr-lab holding #{id} {action} of {key} {when} at {}", wire::now_rfc3339());
    let _ = out.flush();
    info!(hold = id, action, access_key = key, phase = ?phase, "holding a request");
}

/// The admin API under `/_lab/` (unsigned requests only):
/// `POST /_lab/holds` (a [`wire::HoldSpec`] as JSON) arms a hold and answers its id;
/// `GET /_lab/holds/ID[?wait=SECONDS]` answers its state, waiting up to SECONDS for it to
/// hold a request; `POST /_lab/holds/ID/release` drops the held connection;
/// `GET /_lab/faults` answers the fault plan and what was injected; `PUT /_lab/faults`
/// (a [`wire::FaultPlan`] as JSON, or `null`) replaces the plan; `GET /_lab/recorder`
/// answers the Config recorder as `DescribeConfigurationRecorders` shows it (`null` when
/// there is none) and `PUT /_lab/recorder` (`[config.recorder]`'s fields as JSON, or `null`
/// for the default) replaces it; `GET /_lab/assume-role-denials` answers the accounts whose
/// roles `AssumeRole` refuses and `PUT /_lab/assume-role-denials` (a JSON array of account
/// ids, or `null` for none) replaces them; `GET /_lab/assumed-roles` answers the
/// credentials `AssumeRole` handed out and the role each acts as.
async fn admin(front: &Front, parts: &hyper::http::request::Parts, body: &[u8]) -> Response<Full<Bytes>> {
    let path = parts.uri.path().trim_start_matches(ADMIN_PREFIX).trim_end_matches('/');
    let json = |status: u16, v: Value| respond(status, "application/json", v.to_string());
    let segments: Vec<&str> = path.split('/').collect();
    let method = parts.method.as_str();
    match (method, segments.as_slice()) {
        ("POST", ["holds"]) => match serde_json::from_slice::<HoldSpec>(body) {
            Ok(spec) => {
                info!(?spec, "hold armed");
                let id = front.holds.arm(spec);
                json(200, serde_json::json!({ "id": id }))
            }
            Err(e) => json(400, serde_json::json!({ "error": format!("not a hold: {e}") })),
        },
        ("GET", ["holds", id]) => {
            let Ok(id) = id.parse::<usize>() else { return json(404, serde_json::json!({"error": "no such hold"})) };
            let wait = parts
                .uri
                .query()
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("wait=")))
                .and_then(|w| w.parse::<f64>().ok())
                .and_then(|w| Duration::try_from_secs_f64(w.min(600.0)).ok());
            let state = match wait {
                Some(limit) => front.holds.wait_holding(id, limit).await,
                None => front.holds.state(id),
            };
            match state {
                Some(s) => json(200, wire::hold_json(id, &s)),
                None => json(404, serde_json::json!({"error": "no such hold"})),
            }
        }
        ("POST", ["holds", id, "release"]) => {
            let id = id.parse::<usize>().unwrap_or(0);
            match front.holds.release(id) {
                Some(s) => json(200, wire::hold_json(id, &s)),
                None => json(404, serde_json::json!({"error": "no such hold"})),
            }
        }
        ("GET", ["faults"]) => {
            json(200, serde_json::json!({ "plan": front.faults.plan(), "counts": front.faults.counts() }))
        }
        ("PUT", ["faults"]) => match serde_json::from_slice::<Option<FaultPlan>>(body) {
            Ok(plan) => match front.faults.set(plan) {
                Ok(()) => json(200, serde_json::json!({ "plan": front.faults.plan() })),
                Err(e) => json(400, serde_json::json!({ "error": e })),
            },
            Err(e) => json(400, serde_json::json!({ "error": format!("not a fault plan: {e}") })),
        },
        ("GET", ["recorder"]) => json(200, serde_json::json!({ "recorder": recorder_view(front) })),
        ("PUT", ["recorder"]) => match serde_json::from_slice::<Option<FileRecorder>>(body) {
            Ok(file) => match file.unwrap_or_default().resolve() {
                Ok(recorder) => {
                    info!(?recorder, "Config recorder replaced");
                    front.state.lock().expect("lab state lock").settings.recorder = recorder;
                    json(200, serde_json::json!({ "recorder": recorder_view(front) }))
                }
                Err(e) => json(400, serde_json::json!({ "error": e })),
            },
            Err(e) => json(400, serde_json::json!({ "error": format!("not a recorder: {e}") })),
        },
        ("GET", ["assume-role-denials"]) => json(200, serde_json::json!({ "accounts": front.roles.denied() })),
        ("PUT", ["assume-role-denials"]) => match serde_json::from_slice::<Option<Vec<String>>>(body) {
            Ok(accounts) => match front.roles.set_denied(accounts.unwrap_or_default()) {
                Ok(accounts) => {
                    info!(?accounts, "AssumeRole refused in these accounts");
                    json(200, serde_json::json!({ "accounts": accounts }))
                }
                Err(e) => json(400, serde_json::json!({ "error": e })),
            },
            Err(e) => json(
                400,
                serde_json::json!({ "error": format!("not a list of account ids such as [\"333333333333\"]: {e}") }),
            ),
        },
        ("GET", ["assumed-roles"]) => {
            let sessions: Vec<Value> = front
                .roles
                .sessions()
                .into_iter()
                .map(|(key, role)| {
                    serde_json::json!({"access_key": key, "role_arn": role.role_arn, "account": role.account, "arn": role.arn})
                })
                .collect();
            json(200, serde_json::json!({ "sessions": sessions }))
        }
        _ => json(404, serde_json::json!({ "error": format!("no admin route {method} {}", parts.uri.path()) })),
    }
}

/// The recorder as `DescribeConfigurationRecorders` shows it, with `recording`; `null`
/// when the account has none.
fn recorder_view(front: &Front) -> Value {
    let state = front.state.lock().expect("lab state lock");
    let s = &state.settings;
    if !s.recorder.present {
        return Value::Null;
    }
    let mut v = s.recorder.recorder_json(&s.region, &s.account);
    v["recording"] = s.recorder.recording.into();
    v
}

fn request_id(front: &Front) -> String {
    match &front.iam {
        Some((enforcer, _)) => {
            let h = enforcer.fresh(32);
            format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
        }
        None => "chaoslingr-lab".into(),
    }
}

/// A query-protocol request's parameters: the form body, or the URI query.
fn query_params(parts: &hyper::http::request::Parts, body: &[u8]) -> iam::Params {
    match std::str::from_utf8(body) {
        Ok(b) if !b.trim().is_empty() && !b.trim_start().starts_with('{') => iam::form_params(b),
        _ => iam::form_params(parts.uri.query().unwrap_or_default()),
    }
}

/// The header the emulator (moto) takes the account a request acts in from.
pub const EMULATOR_ACCOUNT_HEADER: &str = "x-moto-account-id";

/// The tags a security group (`sg-…`) or network ACL (`acl-…`) has in the emulator now;
/// none when it does not exist (or is of another kind). `tags_in` (account, region) reads
/// them in another account (an assumed role's) and region than the lab's.
async fn current_tags(
    ec2: &aws_sdk_ec2::Client,
    tags_in: Option<&(String, String)>,
    id: &str,
) -> Vec<(String, String)> {
    let pair = |t: &aws_sdk_ec2::types::Tag| {
        (t.key().unwrap_or_default().to_string(), t.value().unwrap_or_default().to_string())
    };
    let in_account = |account: &str| {
        let account = account.to_string();
        move |req: &mut aws_sdk_ec2::config::http::HttpRequest| {
            req.headers_mut().insert(EMULATOR_ACCOUNT_HEADER, account.clone());
        }
    };
    let in_region = |region: &str| {
        aws_sdk_ec2::config::Builder::default().region(aws_sdk_ec2::config::Region::new(region.to_string()))
    };
    if id.starts_with("acl-") {
        // By id, not by the `network-acl-id` filter, which the emulator does not implement.
        let read = ec2.describe_network_acls().network_acl_ids(id);
        let result = match tags_in {
            Some((account, region)) => {
                read.customize().mutate_request(in_account(account)).config_override(in_region(region)).send().await
            }
            None => read.send().await,
        };
        return match result {
            Ok(out) => out.network_acls().iter().flat_map(|a| a.tags()).map(pair).collect(),
            Err(e) => {
                debug!(acl = id, error = %aws_sdk_ec2::error::DisplayErrorContext(&e), "no tags read");
                Vec::new()
            }
        };
    }
    let read = ec2.describe_security_groups().group_ids(id);
    let result = match tags_in {
        Some((account, region)) => {
            read.customize().mutate_request(in_account(account)).config_override(in_region(region)).send().await
        }
        None => read.send().await,
    };
    match result {
        Ok(out) => out.security_groups().iter().flat_map(|g| g.tags()).map(pair).collect(),
        Err(e) => {
            debug!(group = id, error = %aws_sdk_ec2::error::DisplayErrorContext(&e), "no tags read");
            Vec::new()
        }
    }
}

/// Evaluates one request of an enforced access key (or assumed role), reading the tags of
/// the security groups and network ACLs it acts on from the emulator at this moment (in
/// the caller's account).
async fn enforce(
    enforcer: &Enforcer,
    ec2: &aws_sdk_ec2::Client,
    parts: &hyper::http::request::Parts,
    body: &[u8],
    caller: &Caller,
    key: &str,
    action: &str,
) -> anyhow::Result<Verdict> {
    let mut params = query_params(parts, body);
    if action.starts_with("s3:") {
        // S3 names its resource in the path (and an object's body is not parameters).
        params = iam::form_params(parts.uri.query().unwrap_or_default());
        params.push((iam::S3_PATH.to_string(), parts.uri.path().to_string()));
    }
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let new_rule = format!("sgr-{}", enforcer.fresh(17));
    let checks = iam::checks_for(action, &params, json.as_ref(), &caller.scope, &new_rule);
    let tags_in = caller.tags_in.as_ref();
    let verdict =
        enforcer.evaluate(caller, checks, |id| async move { Ok(current_tags(ec2, tags_in, &id).await) }).await?;
    match &verdict {
        Verdict::Denied { denial, .. } => {
            let matched = serde_json::json!(denial.decision.matched).to_string();
            let context = serde_json::json!(denial.check.context).to_string();
            info!(
                access_key = key,
                principal = %caller.principal,
                action = %denial.check.action,
                resource = %denial.check.resource,
                explicit_deny = denial.decision.explicit_deny,
                matched,
                context,
                explain = %denial.decision.explain,
                "IAM denied"
            )
        }
        Verdict::Allowed { resources } => {
            info!(access_key = key, principal = %caller.principal, action, resources = %resources.join(" "), "IAM allowed")
        }
        Verdict::NotEvaluated => {}
    }
    Ok(verdict)
}

/// Forwards a request to the emulator as it came, and its answer back.
async fn forward(front: &Front, parts: hyper::http::request::Parts, body: Bytes) -> Response<Full<Bytes>> {
    let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    send(front, &parts.method, &parts.headers, path, body).await
}

/// Sends a request to the emulator with the caller's headers (its signature names the
/// account the emulator acts in), and its answer back.
async fn send(
    front: &Front,
    method: &hyper::Method,
    headers: &hyper::HeaderMap,
    path: &str,
    body: Bytes,
) -> Response<Full<Bytes>> {
    let uri: Uri = match format!("{}{}", front.upstream.to_string().trim_end_matches('/'), path).parse() {
        Ok(u) => u,
        Err(e) => return respond(400, "text/plain", format!("bad request path: {e}")),
    };
    let mut builder = Request::builder().method(method.clone()).uri(uri);
    for (name, value) in headers.iter() {
        if name != HOST && name != "connection" && name != "content-length" {
            builder = builder.header(name, value);
        }
    }
    if let Some(authority) = front.upstream.authority() {
        builder = builder.header(HOST, authority.as_str());
    }
    let request = match builder.body(Full::new(body)) {
        Ok(r) => r,
        Err(e) => return respond(400, "text/plain", format!("could not forward: {e}")),
    };
    match front.client.request(request).await {
        Ok(resp) => {
            let (parts, body) = resp.into_parts();
            let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            let mut out = Response::new(Full::new(bytes));
            *out.status_mut() = parts.status;
            for (name, value) in parts.headers.iter() {
                if name != "transfer-encoding" && name != "connection" && name != "content-length" {
                    out.headers_mut().append(name, value.clone());
                }
            }
            if front.clock_skew != 0 {
                if let Some(date) = skewed_date(SystemTime::now(), front.clock_skew) {
                    out.headers_mut().insert(hyper::header::DATE, date);
                }
            }
            out
        }
        Err(e) => {
            warn!(error = %e, "the emulator did not answer");
            respond(
                502,
                "text/plain",
                format!("chaoslingr-lab could not reach the emulator at {}: {e}", front.upstream),
            )
        }
    }
}

/// An HTTP `Date` value for `now` shifted by `seconds`.
fn skewed_date(now: SystemTime, seconds: i64) -> Option<HeaderValue> {
    let shift = std::time::Duration::from_secs(seconds.unsigned_abs());
    let at = if seconds >= 0 { now.checked_add(shift)? } else { now.checked_sub(shift)? };
    let text = aws_smithy_types::DateTime::from(at).fmt(aws_smithy_types::date_time::Format::HttpDate).ok()?;
    HeaderValue::from_str(&text).ok()
}

/// Serves connections until the task is dropped.
pub async fn serve(listener: TcpListener, front: Arc<Front>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "accept failed");
                continue;
            }
        };
        let front = front.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(front.clone(), req));
            if let Err(e) = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await {
                debug!(error = %e, "connection ended");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labs_sharing_one_call_log_never_interleave_their_lines() {
        let path = std::env::temp_dir().join(format!("chaoslingr-lab-log-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let front = |path: &std::path::Path| {
            let state = Arc::new(Mutex::new(crate::state::LabState::new(
                crate::settings::FileSettings::default().resolve().unwrap(),
                std::time::SystemTime::now(),
            )));
            let file = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
            Arc::new(Front::new(state, Uri::from_static("http://127.0.0.1:1")).with_call_log(file))
        };
        // Two labs (two open files on one path), two writers each, long lines.
        let fronts = [front(&path), front(&path)];
        let padding = "x".repeat(3000);
        std::thread::scope(|s| {
            for (n, f) in fronts.iter().chain(fronts.iter()).enumerate() {
                let padding = &padding;
                s.spawn(move || {
                    for i in 0..300 {
                        f.log(Some(serde_json::json!({"writer": n, "i": i, "padding": padding})));
                    }
                });
            }
        });
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4 * 300);
        for line in lines {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("a torn line ({e}): {line:.80}"));
            assert_eq!(v["padding"].as_str().map(str::len), Some(3000));
        }
    }

    #[test]
    fn a_skewed_date_is_an_http_date_shifted_by_the_skew() {
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_796_176_124);
        assert_eq!(skewed_date(now, 0).unwrap(), "Wed, 02 Dec 2026 01:48:44 GMT");
        assert_eq!(skewed_date(now, 90).unwrap(), "Wed, 02 Dec 2026 01:50:14 GMT");
        assert_eq!(skewed_date(now, -3600).unwrap(), "Wed, 02 Dec 2026 00:48:44 GMT");
    }

    #[test]
    fn ec2_writes_are_logged_with_what_they_name_and_the_tags_they_write() {
        let p = iam::form_params(
            "Action=AuthorizeSecurityGroupIngress&GroupId=sg-1&TagSpecification.1.ResourceType=security-group-rule\
             &TagSpecification.1.Tag.1.Key=chaoslingr%3Aexperiment-id&TagSpecification.1.Tag.1.Value=cs-1",
        );
        assert_eq!(write_targets("ec2:AuthorizeSecurityGroupIngress", &p), Some(vec!["sg-1".to_string()]));
        assert_eq!(tags_written(&p).get("chaoslingr:experiment-id").map(String::as_str), Some("cs-1"));
        let p =
            iam::form_params("Action=DeleteTags&ResourceId.1=sg-2&ResourceId.2=sg-1&Tag.1.Key=chaoslingr%3Aoutcome");
        assert_eq!(write_targets("ec2:DeleteTags", &p), Some(vec!["sg-1".to_string(), "sg-2".to_string()]));
        assert_eq!(tags_written(&p).get("chaoslingr:outcome").map(String::as_str), Some(""));
        assert_eq!(write_targets("ec2:DescribeSecurityGroups", &p), None);
        assert_eq!(write_targets("sns:Publish", &p), None);
    }

    #[test]
    fn the_service_comes_from_the_credential_scope() {
        let mut h = hyper::HeaderMap::new();
        h.insert(
            "authorization",
            HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=testing/20261123/us-east-1/monitoring/aws4_request, SignedHeaders=host, Signature=abc"),
        );
        assert_eq!(service_of(&h).as_deref(), Some("monitoring"));
        assert_eq!(service_of(&hyper::HeaderMap::new()), None);
    }

    #[test]
    fn calls_are_named_as_iam_actions() {
        let mut h = hyper::HeaderMap::new();
        h.insert(
            "authorization",
            HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=AKIDJUDGE/20261123/us-east-1/monitoring/aws4_request, SignedHeaders=host, Signature=abc"),
        );
        let post = hyper::Method::POST;
        assert_eq!(
            call_of(&h, &post, "/", b"Action=DescribeAlarms&Version=2010-08-01"),
            Some(("AKIDJUDGE".into(), "cloudwatch:DescribeAlarms".into()))
        );
        h.insert("x-amz-target", HeaderValue::from_static("StarlingDoveService.GetComplianceDetailsByResource"));
        assert_eq!(call_of(&h, &post, "/", b"{}").unwrap().1, "cloudwatch:GetComplianceDetailsByResource");
        let mut sh = hyper::HeaderMap::new();
        sh.insert(
            "authorization",
            HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=K/20261123/us-east-1/securityhub/aws4_request, SignedHeaders=host, Signature=abc"),
        );
        assert_eq!(call_of(&sh, &post, "/findings", b"{}").unwrap().1, "securityhub:GetFindings");
        let mut s3 = hyper::HeaderMap::new();
        s3.insert(
            "authorization",
            HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=AKIDARCHIVE/20261123/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=abc"),
        );
        let (put, get) = (hyper::Method::PUT, hyper::Method::GET);
        // An object's body is never read as parameters.
        assert_eq!(call_of(&s3, &put, "/b/p/outcomes/v1/x.json", b"Action=Publish").unwrap().1, "s3:PutObject");
        assert_eq!(call_of(&s3, &get, "/b/p/outcomes/v1/x.json", b"").unwrap().1, "s3:GetObject");
        assert_eq!(call_of(&s3, &get, "/b", b"").unwrap().1, "s3:ListBucket");
        assert_eq!(call_of(&s3, &put, "/b", b"").unwrap().1, "s3:CreateBucket");
        assert_eq!(call_of(&hyper::HeaderMap::new(), &post, "/", b""), None);
    }
}
