//! IAM enforcement (`--enforce-iam`): every request signed with an access key listed in the
//! policies file is evaluated against that key's identity policy (and the `--scp`, if any)
//! before it reaches the emulator, with the request context AWS would build: the resource
//! ARNs of the action, `aws:ResourceTag/*` read from the emulator at that moment,
//! `aws:RequestTag/*`, `aws:TagKeys`, `ec2:CreateAction` and `cloudwatch:namespace`.
//!
//! The decisions come from an external evaluator (`infra/iam/evaluate.mjs`, on
//! `@cloud-copilot/iam-simulate`), spoken to over one JSON line per request. Denied
//! requests are answered the way each service answers them; EC2's encoded authorization
//! failure messages decode through STS `DecodeAuthorizationMessage`, which the lab serves.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::roles::{self, AssumedRole};

/// The request parameters of a query-protocol call (`Action=...&GroupId=...`), decoded, in
/// order.
pub type Params = Vec<(String, String)>;

/// The parameter an S3 request's path is passed to [`checks_for`] as.
pub const S3_PATH: &str = "s3:path";

/// Decodes an `application/x-www-form-urlencoded` body or URI query.
pub fn form_params(text: &str) -> Params {
    text.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn param<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The values of `Prefix.1`, `Prefix.2`, ... in index order.
fn list(params: &Params, prefix: &str) -> Vec<String> {
    let mut items: Vec<(u32, String)> = params
        .iter()
        .filter_map(|(k, v)| {
            let n = k.strip_prefix(prefix)?.strip_prefix('.')?.parse::<u32>().ok()?;
            Some((n, v.clone()))
        })
        .collect();
    items.sort_by_key(|(n, _)| *n);
    items.into_iter().map(|(_, v)| v).collect()
}

/// Tags given as `Prefix.N.Key` / `Prefix.N.Value`, in index order (value empty when absent).
fn tags(params: &Params, prefix: &str) -> Vec<(String, String)> {
    let mut by_index: BTreeMap<u32, (Option<String>, String)> = BTreeMap::new();
    for (k, v) in params {
        let Some(rest) = k.strip_prefix(prefix).and_then(|r| r.strip_prefix('.')) else { continue };
        let Some((n, field)) = rest.split_once('.') else { continue };
        let Ok(n) = n.parse::<u32>() else { continue };
        let entry = by_index.entry(n).or_insert((None, String::new()));
        match field {
            "Key" => entry.0 = Some(v.clone()),
            "Value" => entry.1 = v.clone(),
            _ => {}
        }
    }
    by_index.into_values().filter_map(|(k, v)| k.map(|k| (k, v))).collect()
}

/// The tags of `TagSpecification.N` entries for `resource_type`.
fn tag_specification(params: &Params, resource_type: &str) -> Option<Vec<(String, String)>> {
    let specs: Vec<u32> = params
        .iter()
        .filter_map(|(k, v)| {
            let n = k.strip_prefix("TagSpecification.")?.strip_suffix(".ResourceType")?.parse::<u32>().ok()?;
            (v == resource_type).then_some(n)
        })
        .collect();
    if specs.is_empty() {
        return None;
    }
    Some(specs.iter().flat_map(|n| tags(params, &format!("TagSpecification.{n}.Tag"))).collect())
}

/// A condition key's value in the request context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ContextValue {
    One(String),
    Many(Vec<String>),
}

impl ContextValue {
    fn values(&self) -> Vec<&str> {
        match self {
            ContextValue::One(v) => vec![v.as_str()],
            ContextValue::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

/// One authorization AWS makes for a request: an action on one resource, with its context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub action: String,
    pub resource: String,
    pub context: BTreeMap<String, ContextValue>,
    /// The resource (a security group `sg-…` or network ACL `acl-…`) whose current tags
    /// become `aws:ResourceTag/*`.
    pub tags_of: Option<String>,
}

impl Check {
    fn new(action: &str, resource: String) -> Check {
        Check { action: action.to_string(), resource, context: BTreeMap::new(), tags_of: None }
    }

    /// Evaluated with the current tags of the resource `id`.
    fn with_tags_of(mut self, id: &str) -> Check {
        self.tags_of = Some(id.to_string());
        self
    }

    /// `aws:RequestTag/K = V` for each tag (when `with_values`) and `aws:TagKeys`.
    fn request_tags(mut self, tags: &[(String, String)], with_values: bool) -> Check {
        if tags.is_empty() {
            return self;
        }
        if with_values {
            for (k, v) in tags {
                self.context.insert(format!("aws:RequestTag/{k}"), ContextValue::One(v.clone()));
            }
        }
        self.context.insert("aws:TagKeys".into(), ContextValue::Many(tags.iter().map(|(k, _)| k.clone()).collect()));
        self
    }

    /// `aws:ResourceTag/K = V` for each of the resource's current tags.
    pub fn with_resource_tags(&mut self, tags: &[(String, String)]) {
        for (k, v) in tags {
            self.context.insert(format!("aws:ResourceTag/{k}"), ContextValue::One(v.clone()));
        }
    }
}

/// Where the resources a request acts on live: the lab's account, or the account of the
/// role whose credentials signed the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub partition: String,
    pub region: String,
    pub account: String,
}

impl Scope {
    pub fn new(region: &str, account: &str) -> Scope {
        Scope { partition: "aws".into(), region: region.into(), account: account.into() }
    }

    /// The scope of an assumed role: its partition and account, the request's region.
    pub fn of_role(role: &AssumedRole, region: &str) -> Scope {
        Scope { partition: role.partition.clone(), region: region.into(), account: role.account.clone() }
    }

    fn ec2(&self, kind: &str, id: &str) -> String {
        format!("arn:{}:ec2:{}:{}:{kind}/{id}", self.partition, self.region, self.account)
    }

    /// The ARN of an EC2 resource named by its id (`sg-…`, `sgr-…`, `acl-…`, `vpc-…`, ...).
    fn ec2_resource(&self, id: &str) -> String {
        let kind = match id.rsplit_once('-').map(|(p, _)| p) {
            Some("sg") => "security-group",
            Some("sgr") => "security-group-rule",
            Some("acl") => "network-acl",
            Some("vpc") => "vpc",
            Some("subnet") => "subnet",
            Some("i") => "instance",
            Some("eni") => "network-interface",
            Some("vol") => "volume",
            _ => return "*".into(),
        };
        self.ec2(kind, id)
    }

    pub fn principal(&self, access_key: &str) -> String {
        format!("arn:{}:iam::{}:user/{access_key}", self.partition, self.account)
    }
}

/// The authorizations AWS makes for `action` (`ec2:AuthorizeSecurityGroupIngress`, ...)
/// with these parameters (query protocol) or JSON body. `new_rule` is the id the rule an
/// authorize creates is evaluated as (its real id is only known afterwards).
pub fn checks_for(action: &str, params: &Params, json: Option<&Value>, scope: &Scope, new_rule: &str) -> Vec<Check> {
    let json_str = |name: &str| json.and_then(|j| j.get(name)).and_then(Value::as_str);
    // The same parameter from a query body or a JSON body (newer SDKs speak JSON to
    // CloudWatch and SNS).
    let get = |name: &str| param(params, name).or_else(|| json_str(name));
    match action {
        "ec2:AuthorizeSecurityGroupIngress" | "ec2:AuthorizeSecurityGroupEgress" => {
            let group = param(params, "GroupId").or_else(|| param(params, "GroupName")).unwrap_or("*");
            let rule_tags = tag_specification(params, "security-group-rule").unwrap_or_default();
            let rule = scope.ec2("security-group-rule", new_rule);
            let mut checks = vec![
                Check::new(action, scope.ec2("security-group", group)).with_tags_of(group),
                Check::new(action, rule.clone()).request_tags(&rule_tags, true),
            ];
            if !rule_tags.is_empty() {
                let mut tag = Check::new("ec2:CreateTags", rule).request_tags(&rule_tags, true);
                let operation = action.trim_start_matches("ec2:").to_string();
                tag.context.insert("ec2:CreateAction".into(), ContextValue::One(operation));
                checks.push(tag);
            }
            checks
        }
        "ec2:RevokeSecurityGroupIngress" | "ec2:RevokeSecurityGroupEgress" => {
            let group = param(params, "GroupId").or_else(|| param(params, "GroupName")).unwrap_or("*");
            vec![Check::new(action, scope.ec2("security-group", group)).with_tags_of(group)]
        }
        // Entries have no ARN of their own: AWS authorizes them on the ACL, with its tags.
        "ec2:CreateNetworkAclEntry" | "ec2:DeleteNetworkAclEntry" | "ec2:ReplaceNetworkAclEntry" => {
            let acl = param(params, "NetworkAclId").unwrap_or("*");
            vec![Check::new(action, scope.ec2("network-acl", acl)).with_tags_of(acl)]
        }
        "ec2:CreateTags" | "ec2:DeleteTags" => {
            let tags = tags(params, "Tag");
            list(params, "ResourceId")
                .iter()
                .map(|id| {
                    let check =
                        Check::new(action, scope.ec2_resource(id)).request_tags(&tags, action == "ec2:CreateTags");
                    if id.starts_with("sg-") || id.starts_with("acl-") {
                        check.with_tags_of(id)
                    } else {
                        check
                    }
                })
                .collect()
        }
        "cloudwatch:DescribeAlarms" => {
            let alarm = |name: &str| {
                format!("arn:{}:cloudwatch:{}:{}:alarm:{name}", scope.partition, scope.region, scope.account)
            };
            let mut names = list(params, "AlarmNames.member");
            if let Some(Value::Array(items)) = json.and_then(|j| j.get("AlarmNames")) {
                names.extend(items.iter().filter_map(Value::as_str).map(String::from));
            }
            if names.is_empty() {
                vec![Check::new(action, alarm("*"))]
            } else {
                names.iter().map(|n| Check::new(action, alarm(n))).collect()
            }
        }
        "cloudwatch:PutMetricData" => {
            let mut check = Check::new(action, "*".into());
            if let Some(ns) = get("Namespace") {
                check.context.insert("cloudwatch:namespace".into(), ContextValue::One(ns.to_string()));
            }
            vec![check]
        }
        "sns:Publish" => {
            let topic = get("TopicArn").or_else(|| get("TargetArn")).unwrap_or("*");
            vec![Check::new(action, topic.to_string())]
        }
        "securityhub:GetFindings" | "securityhub:BatchImportFindings" => vec![Check::new(
            action,
            format!("arn:{}:securityhub:{}:{}:hub/default", scope.partition, scope.region, scope.account),
        )],
        "ssm:GetParameter" => {
            let name = json_str("Name").unwrap_or("*");
            let arn = if name.starts_with("arn:") {
                name.to_string()
            } else {
                format!(
                    "arn:{}:ssm:{}:{}:parameter/{}",
                    scope.partition,
                    scope.region,
                    scope.account,
                    name.trim_start_matches('/')
                )
            };
            vec![Check::new(action, arn)]
        }
        "secretsmanager:GetSecretValue" => {
            let id = json_str("SecretId").unwrap_or("*");
            let arn = if id.starts_with("arn:") {
                id.to_string()
            } else {
                format!("arn:{}:secretsmanager:{}:{}:secret:{id}", scope.partition, scope.region, scope.account)
            };
            vec![Check::new(action, arn)]
        }
        // Path-style S3: `/bucket/key` (objects) and `/bucket` (listings).
        "s3:PutObject" | "s3:GetObject" | "s3:DeleteObject" | "s3:ListBucket" => {
            let path = param(params, S3_PATH).unwrap_or("/").trim_start_matches('/');
            let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
            if action == "s3:ListBucket" {
                let mut check = Check::new(action, format!("arn:{}:s3:::{bucket}", scope.partition));
                if let Some(prefix) = param(params, "prefix") {
                    check.context.insert("s3:prefix".into(), ContextValue::One(prefix.to_string()));
                }
                vec![check]
            } else {
                vec![Check::new(action, format!("arn:{}:s3:::{bucket}/{}", scope.partition, percent_decode(key)))]
            }
        }
        // Describe and read calls without resource-level permissions, STS, Config.
        _ => vec![Check::new(action, "*".into())],
    }
}

/// The evaluator's answer for one check.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub allowed: bool,
    pub explicit_deny: bool,
    /// The statements that decided (`{"policy", "sid", "effect"}`).
    pub matched: Vec<Value>,
    /// How each applicable statement matched or not.
    pub explain: Value,
    pub error: Option<String>,
}

impl Decision {
    fn from_line(v: &Value) -> Decision {
        Decision {
            allowed: v["allowed"].as_bool().unwrap_or(false),
            explicit_deny: v["explicit_deny"].as_bool().unwrap_or(false),
            matched: v["matched"].as_array().cloned().unwrap_or_default(),
            explain: v["explain"].clone(),
            error: v["error"].as_str().map(String::from),
        }
    }
}

/// The long-lived evaluator process.
struct Evaluator {
    _child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    next_id: u64,
}

impl Evaluator {
    async fn ask(&mut self, request: &mut Value) -> anyhow::Result<Decision> {
        self.next_id += 1;
        request["id"] = json!(self.next_id);
        let mut line = request.to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await.context("the IAM evaluator stopped reading")?;
        self.stdin.flush().await?;
        let mut answer = String::new();
        if self.stdout.read_line(&mut answer).await? == 0 {
            bail!("the IAM evaluator exited");
        }
        let v: Value = serde_json::from_str(&answer).context("the IAM evaluator answered something not JSON")?;
        if v["id"].as_u64() != Some(self.next_id) {
            bail!("the IAM evaluator answered out of order");
        }
        Ok(Decision::from_line(&v))
    }
}

/// A denied request, kept so its encoded message can be decoded.
#[derive(Debug, Clone)]
pub struct Denial {
    pub principal: String,
    pub check: Check,
    pub decision: Decision,
}

impl Denial {
    /// The decoded message as AWS STS `DecodeAuthorizationMessage` returns it.
    pub fn decoded(&self) -> Value {
        let conditions: Vec<Value> = self
            .check
            .context
            .iter()
            .map(|(k, v)| {
                json!({"key": k, "values": {"items": v.values().iter().map(|x| json!({"value": x})).collect::<Vec<_>>()}})
            })
            .collect();
        let matched: Vec<Value> = self
            .decision
            .matched
            .iter()
            .map(|m| {
                json!({
                    "statementId": m["sid"],
                    "effect": m["effect"].as_str().unwrap_or_default().to_ascii_uppercase(),
                    "policy": m["policy"],
                })
            })
            .collect();
        json!({
            "allowed": false,
            "explicitDeny": self.decision.explicit_deny,
            "matchedStatements": {"items": matched},
            "failures": {"items": []},
            "context": {
                "principal": {"id": self.principal.rsplit('/').next().unwrap_or_default(), "arn": self.principal},
                "action": self.check.action,
                "resource": self.check.resource,
                "conditions": {"items": conditions},
            },
        })
    }
}

/// The outcome of enforcing one request.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Neither the access key nor its assumed role is in the policies file: forwarded
    /// without evaluation.
    NotEvaluated,
    Allowed {
        resources: Vec<String>,
    },
    Denied {
        denial: Box<Denial>,
        token: String,
    },
}

/// Actions AWS never authorizes with IAM policies.
const NEEDS_NO_PERMISSION: [&str; 1] = ["sts:GetCallerIdentity"];

/// Where the evaluator is and what it enforces.
#[derive(Debug, Clone)]
pub struct EnforceOptions {
    pub policies: PathBuf,
    pub scp: Option<PathBuf>,
    pub evaluator: PathBuf,
    pub node: String,
}

/// The default evaluator: the one next to this crate in the repository.
pub fn default_evaluator() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/iam/evaluate.mjs")
}

/// Reads `{"ACCESS_KEY": policy, "arn:aws:iam::ACCOUNT:role/NAME": policy, ...}`: the
/// policy of each access key, and of each role whose assumed-role credentials are
/// enforced (a key that is an ARN must be an IAM role's).
pub fn read_policies(text: &str) -> Result<HashMap<String, Value>, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let map = v.as_object().ok_or("expected an object of access key id (or IAM role ARN) -> IAM policy document")?;
    if map.is_empty() {
        return Err("no access keys or roles: nothing would be enforced".into());
    }
    let mut out = HashMap::new();
    for (key, policy) in map {
        if key.starts_with("arn:") && roles::parse_role_arn(key).is_none() {
            return Err(format!(
                "`{key}`: not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME); keys are access key ids or role ARNs"
            ));
        }
        if policy.get("Statement").is_none() {
            return Err(format!("`{key}`: not an IAM policy document (no Statement)"));
        }
        out.insert(key.clone(), policy.clone());
    }
    Ok(out)
}

/// Who signed a request, as the enforcement sees it: which policy applies, the principal
/// it is evaluated as, and where the resources it acts on live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The policies file's key: the access key id, or the assumed role's ARN.
    pub policy: String,
    /// `arn:aws:iam::123456789012:user/AKIDJUDGE`, or for assumed-role credentials
    /// `arn:aws:sts::111111111111:assumed-role/chaoslingr-target/SESSION`.
    pub principal: String,
    /// Resource ARNs are built in this scope.
    pub scope: Scope,
    /// For assumed-role credentials, the account (the emulator's `x-moto-account-id`) and
    /// region to read resource tags in; `None` reads them as the lab (its own account).
    pub tags_in: Option<(String, String)>,
}

/// The caller an enforcement with `policies` evaluates a request of `access_key` as:
/// credentials of an assumed role with a policy act as that role in its account (and the
/// request's `region`, from its SigV4 scope); an access key with a policy of its own acts
/// in the lab's `scope`. `None`: not evaluated.
pub fn caller_of(
    policies: &HashMap<String, Value>,
    scope: &Scope,
    access_key: &str,
    role: Option<&AssumedRole>,
    region: Option<&str>,
) -> Option<Caller> {
    if let Some(role) = role.filter(|r| policies.contains_key(&r.role_arn)) {
        let region = region.filter(|r| !r.is_empty()).unwrap_or(&scope.region);
        return Some(Caller {
            policy: role.role_arn.clone(),
            principal: role.arn.clone(),
            scope: Scope::of_role(role, region),
            tags_in: Some((role.account.clone(), region.to_string())),
        });
    }
    policies.contains_key(access_key).then(|| Caller {
        policy: access_key.to_string(),
        principal: scope.principal(access_key),
        scope: scope.clone(),
        tags_in: None,
    })
}

/// Evaluates requests of the enforced access keys.
pub struct Enforcer {
    policies: HashMap<String, Value>,
    scp: Option<Value>,
    /// Shared with the task that asks it (see [`Enforcer::evaluate`]).
    evaluator: Arc<tokio::sync::Mutex<Evaluator>>,
    tokens: Mutex<HashMap<String, Denial>>,
    pub scope: Scope,
    counter: AtomicU64,
}

impl Enforcer {
    /// Reads the policies (and SCP), starts the evaluator and checks that it answers.
    pub async fn start(options: &EnforceOptions, scope: Scope) -> anyhow::Result<Enforcer> {
        let text = std::fs::read_to_string(&options.policies)
            .with_context(|| format!("cannot read the IAM policies {}", options.policies.display()))?;
        let policies = read_policies(&text).map_err(|e| anyhow::anyhow!("{}: {e}", options.policies.display()))?;
        let scp = match &options.scp {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).with_context(|| format!("cannot read the SCP {}", path.display()))?;
                let v: Value =
                    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
                if v.get("Statement").is_none() {
                    bail!("{} is not an IAM policy document (no Statement)", path.display());
                }
                Some(v)
            }
            None => None,
        };
        if !options.evaluator.is_file() {
            bail!("the IAM evaluator {} does not exist (see infra/iam.sh)", options.evaluator.display());
        }
        let mut child = Command::new(&options.node)
            .arg(&options.evaluator)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot run `{}` (Node.js 20 or newer) for the IAM evaluator", options.node))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut evaluator = Evaluator { _child: child, stdin, stdout, next_id: 0 };
        let mut probe = json!({
            "principal": scope.principal("probe"),
            "account": scope.account,
            "policy": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ec2:DescribeSecurityGroups", "Resource": "*"}]},
            "scp": null,
            "action": "ec2:DescribeSecurityGroups",
            "resource": "*",
            "context": {},
        });
        let answer = evaluator.ask(&mut probe).await.with_context(|| {
            format!(
                "the IAM evaluator ({} {}) does not work; run infra/iam.sh install",
                options.node,
                options.evaluator.display()
            )
        })?;
        if !answer.allowed {
            bail!("the IAM evaluator denied a trivially allowed request: {answer:?}");
        }
        Ok(Enforcer {
            policies,
            scp,
            evaluator: Arc::new(tokio::sync::Mutex::new(evaluator)),
            tokens: Mutex::new(HashMap::new()),
            scope,
            counter: AtomicU64::new(0),
        })
    }

    /// Whether requests of `access_key` are evaluated (see [`Enforcer::caller`]).
    pub fn enforces(&self, access_key: &str, role: Option<&AssumedRole>) -> bool {
        self.caller(access_key, role, None).is_some()
    }

    /// Who a request of `access_key` (handed out for `role`, if an `AssumeRole` did) in
    /// `region` is evaluated as; `None` when it is not evaluated (see [`caller_of`]).
    pub fn caller(&self, access_key: &str, role: Option<&AssumedRole>, region: Option<&str>) -> Option<Caller> {
        caller_of(&self.policies, &self.scope, access_key, role, region)
    }

    pub fn has_scp(&self) -> bool {
        self.scp.is_some()
    }

    /// A fresh id-like suffix (new rule ids, tokens, request ids).
    pub fn fresh(&self, width: usize) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
        let mut x = (nanos as u64) ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut out = String::new();
        while out.len() < width {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.push_str(&format!("{x:016x}"));
        }
        out.truncate(width);
        out
    }

    /// Evaluates every check of a request in order; the first denied one decides.
    /// `resource_tags` reads a security group's or network ACL's current tags from the
    /// emulator.
    pub async fn evaluate<F, Fut>(
        &self,
        caller: &Caller,
        checks: Vec<Check>,
        resource_tags: F,
    ) -> anyhow::Result<Verdict>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<Vec<(String, String)>>>,
    {
        let Some(policy) = self.policies.get(&caller.policy) else { return Ok(Verdict::NotEvaluated) };
        let principal = caller.principal.clone();
        let mut resources = Vec::new();
        // AWS answers these to any signed request, whatever the policies say.
        if checks.iter().all(|c| NEEDS_NO_PERMISSION.contains(&c.action.as_str())) {
            return Ok(Verdict::Allowed { resources: checks.into_iter().map(|c| c.resource).collect() });
        }
        for mut check in checks {
            if let Some(id) = &check.tags_of {
                let tags = resource_tags(id.clone()).await?;
                check.with_resource_tags(&tags);
            }
            let mut request = json!({
                "principal": principal,
                "account": caller.scope.account,
                "policy": policy,
                "scp": self.scp,
                "action": check.action,
                "resource": check.resource,
                "context": check.context,
            });
            // Asked from a task of its own: a caller that goes away (its connection closed
            // by a killed client) must not leave an answer unread on the evaluator's pipe,
            // where the next question would read it as its own.
            let evaluator = self.evaluator.clone();
            let decision = tokio::spawn(async move { evaluator.lock().await.ask(&mut request).await })
                .await
                .context("the IAM evaluation task failed")??;
            if let Some(e) = &decision.error {
                tracing::warn!(caller = %caller.principal, action = %check.action, resource = %check.resource, error = %e, "the IAM evaluator rejected the request; denied");
            }
            if !decision.allowed {
                let token = self.fresh(96);
                let denial = Denial { principal: principal.clone(), check, decision };
                self.tokens.lock().expect("token lock").insert(token.clone(), denial.clone());
                return Ok(Verdict::Denied { denial: Box::new(denial), token });
            }
            resources.push(check.resource);
        }
        Ok(Verdict::Allowed { resources })
    }

    /// The decoded message of a token this lab issued.
    pub fn decode(&self, token: &str) -> Option<Value> {
        self.tokens.lock().expect("token lock").get(token).map(Denial::decoded)
    }
}

/// The protocol family of a request, for answering in its own error shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Ec2,
    Sns,
    CloudWatch,
    Sts,
    /// Another query-protocol service.
    Query,
    /// `X-Amz-Target` JSON (Config, SSM, Secrets Manager, ...).
    Json,
    /// REST JSON (Security Hub).
    RestJson,
    /// REST XML (S3).
    S3,
}

pub fn protocol_of(service: &str, has_target: bool) -> Protocol {
    if has_target {
        return Protocol::Json;
    }
    match service {
        "ec2" => Protocol::Ec2,
        "sns" => Protocol::Sns,
        "monitoring" => Protocol::CloudWatch,
        "sts" => Protocol::Sts,
        "securityhub" => Protocol::RestJson,
        "s3" => Protocol::S3,
        _ => Protocol::Query,
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}

/// The status, content type, extra `x-amzn-errortype` and body a service answers a denied
/// request with. `token` is EC2's encoded authorization failure message.
pub fn denied_answer(
    protocol: Protocol,
    denial: &Denial,
    token: &str,
    request_id: &str,
) -> (u16, &'static str, Option<&'static str>, String) {
    let Denial { principal, check, decision } = denial;
    let why = if decision.explicit_deny {
        format!(
            "with an explicit deny in {}",
            if decision.matched.iter().any(|m| m["policy"].as_str().is_some_and(|p| p.starts_with("scp"))) {
                "a service control policy"
            } else {
                "an identity-based policy"
            }
        )
    } else {
        format!("because no identity-based policy allows the {} action", check.action)
    };
    let plain = format!(
        "User: {principal} is not authorized to perform: {} on resource: {} {why}",
        check.action, check.resource
    );
    match protocol {
        Protocol::Ec2 => {
            let message = format!(
                "You are not authorized to perform this operation. User: {principal} is not authorized to perform: {} on resource: {}. Encoded authorization failure message: {token}",
                check.action, check.resource
            );
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>{}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>",
                xml_escape(&message)
            );
            (403, "text/xml;charset=UTF-8", None, body)
        }
        Protocol::Sns | Protocol::CloudWatch | Protocol::Sts | Protocol::Query => {
            let (ns, code, message) = match protocol {
                Protocol::Sns => (
                    "http://sns.amazonaws.com/doc/2010-03-31/",
                    "AuthorizationError",
                    plain.replacen(": sns:", ": SNS:", 1),
                ),
                Protocol::CloudWatch => ("http://monitoring.amazonaws.com/doc/2010-08-01/", "AccessDenied", plain),
                Protocol::Sts => ("https://sts.amazonaws.com/doc/2011-06-15/", "AccessDenied", plain),
                _ => ("", "AccessDenied", plain),
            };
            let xmlns = if ns.is_empty() { String::new() } else { format!(" xmlns=\"{ns}\"") };
            let body = format!(
                "<ErrorResponse{xmlns}><Error><Type>Sender</Type><Code>{code}</Code><Message>{}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>",
                xml_escape(&message)
            );
            (403, "text/xml", None, body)
        }
        Protocol::Json => {
            let body = json!({"__type": "AccessDeniedException", "message": plain}).to_string();
            (400, "application/x-amz-json-1.1", Some("AccessDeniedException"), body)
        }
        Protocol::RestJson => {
            let body = json!({"Message": plain, "Code": "AccessDeniedException"}).to_string();
            (403, "application/json", Some("AccessDeniedException"), body)
        }
        Protocol::S3 => {
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code><Message>{}</Message><RequestId>{request_id}</RequestId></Error>",
                xml_escape(&plain)
            );
            (403, "application/xml", None, body)
        }
    }
}

/// STS `DecodeAuthorizationMessage`'s answer (query protocol) for a decoded message.
pub fn decode_answer(decoded: &Value, request_id: &str) -> String {
    format!(
        "<DecodeAuthorizationMessageResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><DecodeAuthorizationMessageResult><DecodedMessage>{}</DecodedMessage></DecodeAuthorizationMessageResult><ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></DecodeAuthorizationMessageResponse>",
        xml_escape(&decoded.to_string())
    )
}

/// STS's answer to a token it did not issue.
pub fn invalid_message_answer(request_id: &str) -> String {
    format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>InvalidAuthorizationMessageException</Code><Message>The message is not a valid encoded authorization message issued by this lab.</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        Scope::new("us-east-1", "123456789012")
    }

    fn ctx(check: &Check) -> Vec<(String, Vec<String>)> {
        check.context.iter().map(|(k, v)| (k.clone(), v.values().iter().map(|s| s.to_string()).collect())).collect()
    }

    #[test]
    fn query_bodies_are_decoded() {
        let p = form_params("Action=CreateTags&Tag.1.Key=chaoslingr%3Aexperiment-id&Tag.1.Value=cs+1%2F2&Empty=");
        assert_eq!(param(&p, "Tag.1.Key"), Some("chaoslingr:experiment-id"));
        assert_eq!(param(&p, "Tag.1.Value"), Some("cs 1/2"));
        assert_eq!(param(&p, "Empty"), Some(""));
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }

    #[test]
    fn an_authorize_with_tags_checks_the_group_the_rule_and_tagging_the_rule() {
        let p = form_params(
            "Action=AuthorizeSecurityGroupIngress&GroupId=sg-0abc&IpPermissions.1.IpProtocol=tcp\
             &TagSpecification.1.ResourceType=security-group-rule\
             &TagSpecification.1.Tag.1.Key=chaoslingr%3Aexperiment-id&TagSpecification.1.Tag.1.Value=cs-1\
             &TagSpecification.1.Tag.2.Key=chaoslingr%3Awindow&TagSpecification.1.Tag.2.Value=900",
        );
        let checks = checks_for("ec2:AuthorizeSecurityGroupIngress", &p, None, &scope(), "sgr-0new");
        assert_eq!(checks.len(), 3);
        assert_eq!(checks[0].resource, "arn:aws:ec2:us-east-1:123456789012:security-group/sg-0abc");
        assert_eq!(checks[0].tags_of.as_deref(), Some("sg-0abc"));
        assert!(checks[0].context.is_empty());
        assert_eq!(checks[1].action, "ec2:AuthorizeSecurityGroupIngress");
        assert_eq!(checks[1].resource, "arn:aws:ec2:us-east-1:123456789012:security-group-rule/sgr-0new");
        assert_eq!(
            ctx(&checks[1]),
            vec![
                ("aws:RequestTag/chaoslingr:experiment-id".into(), vec!["cs-1".into()]),
                ("aws:RequestTag/chaoslingr:window".into(), vec!["900".into()]),
                ("aws:TagKeys".into(), vec!["chaoslingr:experiment-id".into(), "chaoslingr:window".into()]),
            ]
        );
        assert_eq!(checks[2].action, "ec2:CreateTags");
        assert_eq!(checks[2].resource, checks[1].resource);
        assert_eq!(checks[2].context["ec2:CreateAction"], ContextValue::One("AuthorizeSecurityGroupIngress".into()));
        assert_eq!(checks[2].tags_of, None);
    }

    #[test]
    fn an_untagged_authorize_checks_the_rule_without_request_tags() {
        let p = form_params("Action=AuthorizeSecurityGroupIngress&GroupId=sg-1&TagSpecification.1.ResourceType=instance&TagSpecification.1.Tag.1.Key=a&TagSpecification.1.Tag.1.Value=b");
        let checks = checks_for("ec2:AuthorizeSecurityGroupIngress", &p, None, &scope(), "sgr-1");
        assert_eq!(checks.len(), 2);
        assert!(checks[1].context.is_empty());
    }

    #[test]
    fn revoke_is_authorized_on_the_group_only() {
        let p = form_params("Action=RevokeSecurityGroupIngress&GroupId=sg-9&SecurityGroupRuleId.1=sgr-1");
        let checks = checks_for("ec2:RevokeSecurityGroupIngress", &p, None, &scope(), "sgr-x");
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].resource, "arn:aws:ec2:us-east-1:123456789012:security-group/sg-9");
        assert_eq!(checks[0].tags_of.as_deref(), Some("sg-9"));
    }

    #[test]
    fn tag_writes_carry_their_keys_and_values() {
        let p = form_params("Action=CreateTags&ResourceId.1=sg-1&ResourceId.2=sgr-2&Tag.2.Key=b&Tag.2.Value=2&Tag.1.Key=a&Tag.1.Value=1");
        let checks = checks_for("ec2:CreateTags", &p, None, &scope(), "unused");
        assert_eq!(checks.len(), 2);
        assert_eq!(checks[0].tags_of.as_deref(), Some("sg-1"));
        assert_eq!(checks[1].resource, "arn:aws:ec2:us-east-1:123456789012:security-group-rule/sgr-2");
        assert_eq!(checks[1].tags_of, None);
        assert_eq!(
            ctx(&checks[0]),
            vec![
                ("aws:RequestTag/a".into(), vec!["1".into()]),
                ("aws:RequestTag/b".into(), vec!["2".into()]),
                ("aws:TagKeys".into(), vec!["a".into(), "b".into()]),
            ]
        );
        // DeleteTags names keys only; without any, aws:TagKeys is absent (every tag would go).
        let p = form_params("Action=DeleteTags&ResourceId.1=sg-1&Tag.1.Key=chaoslingr%3Aexperiment-id");
        let checks = checks_for("ec2:DeleteTags", &p, None, &scope(), "unused");
        assert_eq!(ctx(&checks[0]), vec![("aws:TagKeys".into(), vec!["chaoslingr:experiment-id".into()])]);
        let p = form_params("Action=DeleteTags&ResourceId.1=sg-1");
        assert!(checks_for("ec2:DeleteTags", &p, None, &scope(), "unused")[0].context.is_empty());
    }

    #[test]
    fn acl_entries_are_authorized_on_the_acl_with_its_tags() {
        // GIVEN the technique's entry writes, as the SDK sends them
        let create = form_params(
            "Action=CreateNetworkAclEntry&NetworkAclId=acl-0abc&RuleNumber=120&Protocol=17&RuleAction=allow\
             &Egress=false&CidrBlock=0.0.0.0%2F0&PortRange.From=40000&PortRange.To=40002",
        );
        let delete = form_params("Action=DeleteNetworkAclEntry&NetworkAclId=acl-0abc&RuleNumber=120&Egress=false");
        for (action, params) in [("ec2:CreateNetworkAclEntry", &create), ("ec2:DeleteNetworkAclEntry", &delete)] {
            // WHEN the lab builds the checks
            let checks = checks_for(action, params, None, &scope(), "unused");
            // THEN there is one, on the ACL's ARN, evaluated with the ACL's current tags
            assert_eq!(checks.len(), 1, "{action}");
            assert_eq!(checks[0].action, action);
            assert_eq!(checks[0].resource, "arn:aws:ec2:us-east-1:123456789012:network-acl/acl-0abc");
            assert_eq!(checks[0].tags_of.as_deref(), Some("acl-0abc"));
            assert!(checks[0].context.is_empty());
        }
    }

    #[test]
    fn tag_writes_on_an_acl_carry_request_tags_and_read_the_acls_tags() {
        let p = form_params(
            "Action=CreateTags&ResourceId.1=acl-0abc&Tag.1.Key=chaoslingr%3Aexperiment-id&Tag.1.Value=cs-1\
             &Tag.2.Key=chaoslingr%3Adeadline&Tag.2.Value=2026-12-02T14%3A30%3A00Z",
        );
        let checks = checks_for("ec2:CreateTags", &p, None, &scope(), "unused");
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].resource, "arn:aws:ec2:us-east-1:123456789012:network-acl/acl-0abc");
        assert_eq!(checks[0].tags_of.as_deref(), Some("acl-0abc"));
        assert_eq!(
            ctx(&checks[0]),
            vec![
                ("aws:RequestTag/chaoslingr:deadline".into(), vec!["2026-12-02T14:30:00Z".into()]),
                ("aws:RequestTag/chaoslingr:experiment-id".into(), vec!["cs-1".into()]),
                ("aws:TagKeys".into(), vec!["chaoslingr:experiment-id".into(), "chaoslingr:deadline".into()]),
            ]
        );
        assert!(!checks[0].context.contains_key("ec2:CreateAction"), "tagging an existing ACL is no create");
        let p = form_params("Action=DeleteTags&ResourceId.1=acl-0abc&Tag.1.Key=chaoslingr%3Aexperiment-id");
        let checks = checks_for("ec2:DeleteTags", &p, None, &scope(), "unused");
        assert_eq!(ctx(&checks[0]), vec![("aws:TagKeys".into(), vec!["chaoslingr:experiment-id".into()])]);
        assert_eq!(checks[0].tags_of.as_deref(), Some("acl-0abc"));
        // Reading ACLs has no resource-level permission.
        let p = form_params("Action=DescribeNetworkAcls&Filter.1.Name=tag-key&Filter.1.Value.1=chaoslingr%3Aopt-in");
        let c = checks_for("ec2:DescribeNetworkAcls", &p, None, &scope(), "unused");
        assert_eq!((c[0].resource.as_str(), c[0].tags_of.clone()), ("*", None));
    }

    #[test]
    fn resource_tags_come_from_the_group() {
        let mut check = Check::new("ec2:RevokeSecurityGroupIngress", "arn".into());
        check.with_resource_tags(&[("chaoslingr:opt-in".into(), "false".into())]);
        assert_eq!(check.context["aws:ResourceTag/chaoslingr:opt-in"], ContextValue::One("false".into()));
    }

    #[test]
    fn other_services_name_their_resources() {
        let s = scope();
        let p = form_params("Action=DescribeAlarms&AlarmNames.member.1=fw&AlarmNames.member.2=stop");
        let c = checks_for("cloudwatch:DescribeAlarms", &p, None, &s, "x");
        assert_eq!(
            c.iter().map(|c| c.resource.as_str()).collect::<Vec<_>>(),
            [
                "arn:aws:cloudwatch:us-east-1:123456789012:alarm:fw",
                "arn:aws:cloudwatch:us-east-1:123456789012:alarm:stop"
            ]
        );
        let c = checks_for("cloudwatch:DescribeAlarms", &form_params("Action=DescribeAlarms"), None, &s, "x");
        assert_eq!(c[0].resource, "arn:aws:cloudwatch:us-east-1:123456789012:alarm:*");
        let c = checks_for(
            "cloudwatch:PutMetricData",
            &form_params("Action=PutMetricData&Namespace=ChaoSlingr"),
            None,
            &s,
            "x",
        );
        assert_eq!(
            (c[0].resource.as_str(), ctx(&c[0])),
            ("*", vec![("cloudwatch:namespace".into(), vec!["ChaoSlingr".into()])])
        );
        let body = json!({"Namespace": "ChaoSlingr", "MetricData": []});
        let c = checks_for("cloudwatch:PutMetricData", &Vec::new(), Some(&body), &s, "x");
        assert_eq!(c[0].context["cloudwatch:namespace"], ContextValue::One("ChaoSlingr".into()));
        let body = json!({"AlarmNames": ["fw"]});
        let c = checks_for("cloudwatch:DescribeAlarms", &Vec::new(), Some(&body), &s, "x");
        assert_eq!(c[0].resource, "arn:aws:cloudwatch:us-east-1:123456789012:alarm:fw");
        let c = checks_for(
            "sns:Publish",
            &form_params("Action=Publish&TopicArn=arn%3Aaws%3Asns%3Aus-east-1%3A123456789012%3Aoutcomes"),
            None,
            &s,
            "x",
        );
        assert_eq!(c[0].resource, "arn:aws:sns:us-east-1:123456789012:outcomes");
        let body = json!({"Name": "/chaoslingr/slack-webhook", "WithDecryption": true});
        let c = checks_for("ssm:GetParameter", &Vec::new(), Some(&body), &s, "x");
        assert_eq!(c[0].resource, "arn:aws:ssm:us-east-1:123456789012:parameter/chaoslingr/slack-webhook");
        let c = checks_for("securityhub:GetFindings", &Vec::new(), None, &s, "x");
        assert_eq!(c[0].resource, "arn:aws:securityhub:us-east-1:123456789012:hub/default");
        let c = checks_for("ec2:DescribeSecurityGroups", &form_params("Action=DescribeSecurityGroups"), None, &s, "x");
        assert_eq!((c[0].resource.as_str(), c[0].tags_of.clone()), ("*", None));
    }

    fn denial(explicit: bool) -> Denial {
        let mut check = Check::new(
            "ec2:AuthorizeSecurityGroupIngress",
            "arn:aws:ec2:us-east-1:123456789012:security-group/sg-1".into(),
        );
        check.with_resource_tags(&[("chaoslingr:opt-in".into(), "false".into())]);
        Denial {
            principal: scope().principal("AKIDINJECT"),
            check,
            decision: Decision {
                allowed: false,
                explicit_deny: explicit,
                matched: if explicit {
                    vec![json!({"policy": "scp:123456789012", "sid": "NoPorts", "effect": "Deny"})]
                } else {
                    vec![]
                },
                explain: Value::Null,
                error: None,
            },
        }
    }

    #[test]
    fn ec2_denials_look_like_ec2s() {
        let (status, content_type, _, body) = denied_answer(Protocol::Ec2, &denial(false), "TOKEN", "rid");
        assert_eq!((status, content_type), (403, "text/xml;charset=UTF-8"));
        assert!(body.contains("<Code>UnauthorizedOperation</Code>"), "{body}");
        assert!(body.contains("You are not authorized to perform this operation. User: arn:aws:iam::123456789012:user/AKIDINJECT is not authorized to perform: ec2:AuthorizeSecurityGroupIngress on resource: arn:aws:ec2:us-east-1:123456789012:security-group/sg-1. Encoded authorization failure message: TOKEN</Message>"), "{body}");
        assert!(body.contains("<RequestID>rid</RequestID>"));
    }

    #[test]
    fn other_services_deny_in_their_own_shape() {
        let d = denial(false);
        let (s, _, _, b) = denied_answer(Protocol::Sns, &d, "t", "r");
        assert_eq!(s, 403);
        assert!(b.contains("<Code>AuthorizationError</Code>") && b.contains("sns.amazonaws.com"), "{b}");
        let (s, _, _, b) = denied_answer(Protocol::CloudWatch, &d, "t", "r");
        assert!(s == 403 && b.contains("<Code>AccessDenied</Code>"), "{b}");
        let (s, _, t, b) = denied_answer(Protocol::Json, &d, "t", "r");
        assert_eq!((s, t), (400, Some("AccessDeniedException")));
        assert!(b.contains("\"__type\":\"AccessDeniedException\""));
        let (s, _, t, _) = denied_answer(Protocol::RestJson, &d, "t", "r");
        assert_eq!((s, t), (403, Some("AccessDeniedException")));
        assert_eq!(protocol_of("ec2", false), Protocol::Ec2);
        assert_eq!(protocol_of("s3", false), Protocol::S3);
        let (s, t, _, b) = denied_answer(Protocol::S3, &d, "t", "r");
        assert_eq!((s, t), (403, "application/xml"));
        assert!(b.contains("<Error><Code>AccessDenied</Code>"), "{b}");
        assert_eq!(protocol_of("config", true), Protocol::Json);
        assert_eq!(protocol_of("monitoring", false), Protocol::CloudWatch);
    }

    #[test]
    fn s3_calls_are_authorized_on_the_object_or_the_bucket() {
        let s = scope();
        let mut p = form_params("x-id=PutObject");
        p.push((S3_PATH.into(), "/bkt/chaoslingr/outcomes/v1/2026/12/02/cs-1%3Ax.json".into()));
        let c = checks_for("s3:PutObject", &p, None, &s, "x");
        assert_eq!(c[0].resource, "arn:aws:s3:::bkt/chaoslingr/outcomes/v1/2026/12/02/cs-1:x.json");
        let mut p = form_params("list-type=2&prefix=chaoslingr%2Foutcomes%2Fv1%2F2026%2F12%2F");
        p.push((S3_PATH.into(), "/bkt".into()));
        let c = checks_for("s3:ListBucket", &p, None, &s, "x");
        assert_eq!(c[0].resource, "arn:aws:s3:::bkt");
        assert_eq!(c[0].context.get("s3:prefix"), Some(&ContextValue::One("chaoslingr/outcomes/v1/2026/12/".into())));
    }

    #[test]
    fn decoded_messages_look_like_stss() {
        let v = denial(true).decoded();
        assert_eq!(v["allowed"], false);
        assert_eq!(v["explicitDeny"], true);
        assert_eq!(v["matchedStatements"]["items"][0]["effect"], "DENY");
        assert_eq!(v["context"]["action"], "ec2:AuthorizeSecurityGroupIngress");
        assert_eq!(v["context"]["principal"]["arn"], "arn:aws:iam::123456789012:user/AKIDINJECT");
        assert_eq!(v["context"]["conditions"]["items"][0]["key"], "aws:ResourceTag/chaoslingr:opt-in");
        assert_eq!(v["context"]["conditions"]["items"][0]["values"]["items"][0]["value"], "false");
        assert_eq!(denial(false).decoded()["explicitDeny"], false);
        let xml = decode_answer(&v, "r");
        assert!(xml.contains("<DecodedMessage>{&quot;allowed&quot;:false"), "{xml}");
    }

    fn assumed(account: &str) -> AssumedRole {
        AssumedRole {
            role_arn: format!("arn:aws:iam::{account}:role/chaoslingr-target"),
            account: account.into(),
            partition: "aws".into(),
            arn: format!("arn:aws:sts::{account}:assumed-role/chaoslingr-target/chaoslingr-hub"),
        }
    }

    fn policies() -> HashMap<String, Value> {
        read_policies(
            r#"{"AKIDJUDGE": {"Version": "2012-10-17", "Statement": []},
                "arn:aws:iam::111111111111:role/chaoslingr-target": {"Version": "2012-10-17", "Statement": []}}"#,
        )
        .unwrap()
    }

    #[test]
    fn assumed_roles_act_in_their_account_and_the_requests_region() {
        // GIVEN credentials of the target role in 111111111111, whose policy is in the file
        let role = assumed("111111111111");
        // WHEN a request signed with them in eu-west-1 is enforced
        let caller = caller_of(&policies(), &scope(), "ASIARTXV5AHDTGQIW5FB", Some(&role), Some("eu-west-1")).unwrap();
        // THEN the role's policy applies, to its session, in its account and that region
        assert_eq!(caller.policy, "arn:aws:iam::111111111111:role/chaoslingr-target");
        assert_eq!(caller.principal, "arn:aws:sts::111111111111:assumed-role/chaoslingr-target/chaoslingr-hub");
        assert_eq!(caller.scope, Scope::new("eu-west-1", "111111111111"));
        assert_eq!(caller.tags_in, Some(("111111111111".to_string(), "eu-west-1".to_string())));
        // AND the resources it acts on are that account's
        let p = form_params("Action=RevokeSecurityGroupIngress&GroupId=sg-9&SecurityGroupRuleId.1=sgr-1");
        let checks = checks_for("ec2:RevokeSecurityGroupIngress", &p, None, &caller.scope, "sgr-x");
        assert_eq!(checks[0].resource, "arn:aws:ec2:eu-west-1:111111111111:security-group/sg-9");
        let p = form_params("Action=AuthorizeSecurityGroupIngress&GroupId=sg-9");
        let checks = checks_for("ec2:AuthorizeSecurityGroupIngress", &p, None, &caller.scope, "sgr-new");
        assert_eq!(checks[1].resource, "arn:aws:ec2:eu-west-1:111111111111:security-group-rule/sgr-new");
        let c =
            checks_for("cloudwatch:DescribeAlarms", &form_params("AlarmNames.member.1=fw"), None, &caller.scope, "x");
        assert_eq!(c[0].resource, "arn:aws:cloudwatch:eu-west-1:111111111111:alarm:fw");
        let c = checks_for("securityhub:GetFindings", &Vec::new(), None, &caller.scope, "x");
        assert_eq!(c[0].resource, "arn:aws:securityhub:eu-west-1:111111111111:hub/default");
        // AND without a region in the signature, the lab's
        let caller = caller_of(&policies(), &scope(), "ASIA1", Some(&role), None).unwrap();
        assert_eq!(caller.scope, Scope::new("us-east-1", "111111111111"));
    }

    #[test]
    fn keys_without_a_policy_stay_unevaluated_and_the_functions_keys_act_as_today() {
        let policies = policies();
        // A role without a policy in the file, and an unknown key: not evaluated.
        assert_eq!(caller_of(&policies, &scope(), "ASIA2", Some(&assumed("222222222222")), Some("us-east-1")), None);
        assert_eq!(caller_of(&policies, &scope(), "testing", None, Some("us-east-1")), None);
        // A function's own key: its policy, as a user of the lab's account, in the lab's scope.
        let judge = caller_of(&policies, &scope(), "AKIDJUDGE", None, Some("eu-west-1")).unwrap();
        assert_eq!(
            judge,
            Caller {
                policy: "AKIDJUDGE".into(),
                principal: "arn:aws:iam::123456789012:user/AKIDJUDGE".into(),
                scope: scope(),
                tags_in: None,
            }
        );
    }

    #[test]
    fn policies_files_may_name_roles() {
        let p = policies();
        assert!(p.contains_key("arn:aws:iam::111111111111:role/chaoslingr-target"));
        assert!(p.contains_key("AKIDJUDGE"));
        let only_roles =
            r#"{"arn:aws:iam::222222222222:role/ops/chaoslingr-target": {"Version": "2012-10-17", "Statement": []}}"#;
        assert_eq!(read_policies(only_roles).unwrap().len(), 1);
        let e = read_policies(r#"{"arn:aws:iam::111111111111:user/x": {"Statement": []}}"#).unwrap_err();
        assert!(e.contains("not an IAM role ARN"), "{e}");
        let e = read_policies(r#"{"arn:aws:iam::111111111111:role/x": {"Version": "2012-10-17"}}"#).unwrap_err();
        assert!(e.contains("no Statement"), "{e}");
    }

    #[test]
    fn policies_files_are_checked() {
        assert!(read_policies(r#"{"AKIDINJECT": {"Version": "2012-10-17", "Statement": []}}"#)
            .unwrap()
            .contains_key("AKIDINJECT"));
        assert!(read_policies("{}").is_err());
        assert!(read_policies(r#"{"K": {"Version": "2012-10-17"}}"#).is_err());
        assert!(read_policies("[]").is_err());
    }
}
