//! `chaoslingr-lab`: the detection lab server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use chaoslingr_lab::iam::{EnforceOptions, Enforcer, Scope};
use chaoslingr_lab::proxy::{self, Front};
use chaoslingr_lab::rules::OpenPortsRule;
use chaoslingr_lab::settings::{deny_assume_role_accounts, parse_fault, FileSettings, LabSettings, Mode};
use chaoslingr_lab::state::LabState;
use chaoslingr_lab::wire::{FaultPlan, HoldSpec, WireFault};
use chaoslingr_lab::world::{self, Upstream};
use clap::Parser;
use hyper::Uri;
use tokio::net::TcpListener;

const AFTER_HELP: &str = "\
What it does:
  Listens on 127.0.0.1 and forwards every request to the AWS API emulator unchanged,
  except AWS Config (GetComplianceDetailsByResource, GetComplianceDetailsByConfigRule,
  DescribeConfigRules, DescribeConfigurationRecorders,
  DescribeConfigurationRecorderStatus), which it answers itself.
  Every --scan-interval it reads the emulator's security groups and network ACLs and:
    - evaluates the managed rule vpc-sg-open-only-to-authorized-ports on groups, recording
      each change after --config-latency (real ConfigRuleInvokedTime / ResultRecordedTime);
    - evaluates the lab rule nacl-open-only-to-authorized-ports on ACLs (resource type
      AWS::EC2::NetworkAcl) after --nacl-config-latency: an inbound ALLOW entry from
      0.0.0.0/0 or ::/0 that opens an unauthorized tcp/udp port is NON_COMPLIANT (entries
      in rule-number order, first match wins; only world-wide entries hide later ones);
    - as a firewall, sets the CloudWatch alarm --firewall-alarm to ALARM after
      --firewall-latency when a new world-open unauthorized port appears on a group (and
      back to OK when none remains), and imports a Security Hub finding about the group;
      likewise --nacl-firewall-alarm (chaoslingr-lab-nacl-changes) after
      --nacl-firewall-latency for a new such inbound ACL entry (what an ACL allowed when
      first seen, like a default ACL's allow-all, is not new);
    - optionally revokes such rules and deletes such entries after --remediate-after (the
      auto-remediator).
  The Config recorder it describes comes from [config.recorder] (default: one recorder,
  `default`, recording every type continuously); its rules honour it (a type not
  recorded gets no new evaluation, one recorded DAILY a day late).

Modes: on (react after the latency), off (never react), slow (react after an hour).
Faults: none, throttle[:N][@M], error[:N][@M] — after letting M requests through (0
without @M), the next N requests (all, without :N) to that detector's API fail with
throttling or a 5xx: Config for --config-fault (--nacl-config-fault for requests about
ACLs: their resource type or rules), DescribeAlarms for --firewall-fault
(--nacl-firewall-fault when it names the ACL alarm), GetFindings for --securityhub-fault. `throttle:6@1` lets the CLI's pre-flight read
through, then throttles the watch until it has failed 6 times.

Point the CLI at the lab, not at the emulator:
  AWS_ENDPOINT_URL=http://127.0.0.1:PORT chaoslingr run \\
      --detector config:vpc-sg-open-only-to-authorized-ports \\
      --detector alarm:chaoslingr-lab-firewall

IAM enforcement (--enforce-iam POLICIES.json, a JSON object of access key id (or IAM role
ARN, see Many accounts) -> IAM policy document, e.g. from `infra/terraform.sh policies`): every request signed with a
listed access key is evaluated against that key's policy (and the --scp service control
policy, if given) by the evaluator (infra/iam/evaluate.mjs on @cloud-copilot/iam-simulate,
installed by `infra/iam.sh install`, run with Node.js 20+), with the request's context:
the resource ARNs of the action (the security group; the security-group-rule an authorize
creates, and ec2:CreateTags on it with ec2:CreateAction when it is tagged at creation; the
topic; the alarms; the parameter), aws:ResourceTag/* of the group as the emulator holds it
at that moment, aws:RequestTag/* and aws:TagKeys, and cloudwatch:namespace. A denied
request is not forwarded and is answered as the service answers it (EC2: 403
UnauthorizedOperation with an encoded authorization failure message, which STS
DecodeAuthorizationMessage on the lab decodes; SNS AuthorizationError; CloudWatch and
STS AccessDenied; JSON services AccessDeniedException). Other access keys pass
unevaluated. Every decision is logged, and --record-calls lines carry `allowed` (null
when not evaluated) and `denied`.

Many accounts: credentials that an sts:AssumeRole through the lab handed out (the answer's
AccessKeyId, for the request's RoleArn) act as that role in the role's account, as in the
emulator. The lab remembers them: --record-calls lines of calls signed with them carry
`role_arn` (arn:aws:iam::111111111111:role/chaoslingr-target) and `account`
(111111111111); AssumeRole lines carry the `target_role_arn` and `target_account` asked
for. The policies file may also map role ARNs to policies (the target role's, per
account): a call signed by credentials of such a role is enforced against that policy as
the principal arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION, with resource ARNs in the
role's account and the region the request is signed for, and the tags of the groups and
ACLs read in that account and region (the emulator's x-moto-account-id header). Roles
without a policy stay unevaluated.
  --deny-assume-role 333333333333 (repeatable, or [sts] deny_assume_role = [...]) refuses
  sts:AssumeRole of every role in that account, as STS does when the role is missing or
  does not trust the caller: 403 text/xml ErrorResponse, Code AccessDenied, `User: CALLER
  is not authorized to perform: sts:AssumeRole on resource: ROLE_ARN`. It is not forwarded;
  its call log line has `denied: true`, `lab_denied_assume_role: true`, `allowed: false`
  and `iam_allowed` (IAM enforcement's decision before: true, or null when not evaluated;
  a request IAM denies is answered as IAM's denial instead). Any other AssumeRole passes.

Holds and wire faults, for crash and soak tests (nothing in ChaoSlingr knows of them):
  --hold ec2:AuthorizeSecurityGroupIngress#1:after holds the first authorize once the
  emulator applied it (`:before`: before it is forwarded, so it never applies). The lab
  prints `chaoslingr-lab holding #ID ACTION of ACCESS_KEY ...` and never answers it: kill
  the caller, then release the hold (the connection is closed). The admin API, for
  unsigned requests on the same port:
    POST /_lab/holds   {\"action\": \"ec2:CreateTags\", \"phase\": \"after\", \"nth\": 1,
                        \"access_key\": \"AKIDJUDGE\", \"contains\": \"chaoslingr:recorded\"}
                       (access_key and contains optional; contains matches the decoded
                       request body) -> {\"id\": N}
    GET  /_lab/holds/N?wait=SECONDS   its state: armed, holding or released
    POST /_lab/holds/N/release        close the held connection
    GET  /_lab/faults                 the wire-fault plan and the faults injected
    PUT  /_lab/faults  {\"rate\": 0.05, \"kinds\": [\"throttle\",\"error\",\"drop\",\"slow\"],
                        \"slow\": 25, \"access_keys\": [], \"seed\": 1}, or null for none
    GET  /_lab/assume-role-denials    {\"accounts\": [...]}: where AssumeRole is refused
    PUT  /_lab/assume-role-denials [\"333333333333\"] replaces them (null or [] for none)
    GET  /_lab/assumed-roles          {\"sessions\": [{\"access_key\", \"role_arn\", \"account\",
                                      \"arn\"}]}: the credentials AssumeRole handed out
    GET  /_lab/recorder               the Config recorder (null when there is none)
    PUT  /_lab/recorder {\"present\": true, \"recording\": true, \"exclude\":
                        [\"AWS::EC2::NetworkAcl\"], \"frequency\": \"DAILY\", ...} ([config.recorder]'s
                        fields), or null for the default
  --wire-faults RATE gives that fraction of requests a fault: throttle (the service's
  throttling error), error (5xx), drop (the connection closed without an answer, half
  before forwarding and half after the emulator applied the request) or slow (applied,
  answered after --slow-answer, beyond the SDK's attempt timeout). Call log lines show
  `fault` and `held`.

A TOML file (--config) sets the same things; flags override it. Example:
  scan_interval = \"1s\"
  [config]
  mode = \"on\"            # on | off | slow
  latency = \"3s\"
  fault = \"none\"         # none | throttle[:N][@M] | error[:N][@M]
  [[config.rules]]
  name = \"vpc-sg-open-only-to-authorized-ports\"
  authorized_tcp_ports = \"443\"
  authorized_udp_ports = \"\"
  [config.recorder]      # DescribeConfigurationRecorders / ...RecorderStatus
  present = true         # false: the account has no recorder
  recording = true
  all_supported = true   # false with resource_types = [...]: only those
  exclude = []           # e.g. [\"AWS::EC2::NetworkAcl\"]: all but those
  frequency = \"CONTINUOUS\"   # or DAILY
  # [[config.recorder.overrides]]
  # resource_types = [\"AWS::EC2::NetworkAcl\"]
  # frequency = \"DAILY\"
  [firewall]
  mode = \"on\"
  latency = \"2s\"
  alarm = \"chaoslingr-lab-firewall\"
  securityhub_findings = true
  [nacl_config]          # network ACLs: [config]'s fields but page_size and recorder
  mode = \"on\"
  latency = \"3s\"
  fault = \"none\"
  [[nacl_config.rules]]
  name = \"nacl-open-only-to-authorized-ports\"
  authorized_tcp_ports = \"443\"
  [nacl_firewall]        # [firewall]'s fields, for ACL entries
  mode = \"on\"
  latency = \"2s\"
  alarm = \"chaoslingr-lab-nacl-changes\"
  securityhub_findings = true
  [securityhub]
  fault = \"none\"
  [remediator]
  mode = \"off\"
  latency = \"5s\"
  [sts]
  deny_assume_role = [\"333333333333\"]   # AssumeRole refused in these accounts
  [iam]
  enforce = \"target/chaoslingr-iam-policies.json\"   # off when absent
  scp = \"deny-ports.json\"                          # optional
  evaluator = \"infra/iam/evaluate.mjs\"             # default: the repository's
  node = \"node\"";

#[derive(Debug, Parser)]
#[command(
    name = "chaoslingr-lab",
    version,
    about = "The ChaoSlingr detection lab: AWS Config, a firewall and an auto-remediator on loopback, in front of the AWS API emulator.",
    after_long_help = AFTER_HELP
)]
struct Args {
    /// The emulator to forward to, e.g. http://127.0.0.1:5000 (loopback only).
    #[arg(long, env = "CHAOSLINGR_LAB_UPSTREAM", value_name = "URL")]
    upstream: String,

    /// Where to listen (loopback only); port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
    listen: SocketAddr,

    /// A TOML file with the lab's settings (see --help).
    #[arg(long = "config", value_name = "FILE")]
    config_file: Option<PathBuf>,

    /// Write the chosen port to this file once listening.
    #[arg(long, value_name = "FILE")]
    port_file: Option<PathBuf>,

    /// How often to scan the emulator's security groups [default: 1s].
    #[arg(long, value_name = "DURATION")]
    scan_interval: Option<String>,

    /// AWS Config: on, off or slow [default: on].
    #[arg(long, value_name = "MODE")]
    config_mode: Option<String>,
    /// AWS Config evaluation latency [default: 3s].
    #[arg(long, value_name = "DURATION")]
    config_latency: Option<String>,
    /// Failures of the Config API: none, throttle[:N][@M], error[:N][@M].
    #[arg(long, value_name = "FAULT")]
    config_fault: Option<String>,
    /// Largest page of Config results [default: 100].
    #[arg(long, value_name = "N")]
    config_page_size: Option<usize>,
    /// authorizedTcpPorts of the Config rule (and the firewall), e.g. 443,8443 [default: 443].
    #[arg(long, value_name = "PORTS")]
    authorized_tcp_ports: Option<String>,
    /// authorizedUdpPorts of the Config rule (and the firewall) [default: none].
    #[arg(long, value_name = "PORTS")]
    authorized_udp_ports: Option<String>,

    /// Firewall: on, off or slow [default: on].
    #[arg(long, value_name = "MODE")]
    firewall_mode: Option<String>,
    /// Firewall reaction latency [default: 2s].
    #[arg(long, value_name = "DURATION")]
    firewall_latency: Option<String>,
    /// Failures of DescribeAlarms: none, throttle[:N][@M], error[:N][@M].
    #[arg(long, value_name = "FAULT")]
    firewall_fault: Option<String>,
    /// The CloudWatch alarm the firewall sets [default: chaoslingr-lab-firewall].
    #[arg(long, value_name = "NAME")]
    firewall_alarm: Option<String>,
    /// Do not import Security Hub findings when the firewall reacts.
    #[arg(long)]
    no_findings: bool,
    /// Failures of GetFindings: none, throttle[:N][@M], error[:N][@M].
    #[arg(long, value_name = "FAULT")]
    securityhub_fault: Option<String>,

    /// Append one JSON line per AWS call (caller's access key, IAM action, and with
    /// --enforce-iam whether it was allowed or denied) to this file.
    #[arg(long, value_name = "FILE")]
    record_calls: Option<PathBuf>,

    /// Enforce IAM: evaluate the requests of each access key in this JSON file
    /// ({"ACCESS_KEY": policy document, ...}) against its policy (see --help).
    #[arg(long, value_name = "POLICIES.json")]
    enforce_iam: Option<PathBuf>,
    /// A service control policy evaluated too for the enforced access keys (its explicit
    /// Deny is a preventive control: explicitDeny true in the decoded message).
    #[arg(long, value_name = "FILE")]
    scp: Option<PathBuf>,
    /// The IAM evaluator program [default: infra/iam/evaluate.mjs of the repository].
    #[arg(long, env = "CHAOSLINGR_IAM_EVALUATOR", value_name = "FILE")]
    iam_evaluator: Option<PathBuf>,
    /// The Node.js that runs the evaluator [default: node].
    #[arg(long, env = "CHAOSLINGR_NODE", value_name = "PROGRAM")]
    node: Option<String>,

    /// Network ACLs' Config rule: on, off or slow [default: on].
    #[arg(long, value_name = "MODE")]
    nacl_config_mode: Option<String>,
    /// Network ACLs' Config evaluation latency [default: 3s].
    #[arg(long, value_name = "DURATION")]
    nacl_config_latency: Option<String>,
    /// Failures of Config requests about network ACLs: none, throttle[:N][@M], error[:N][@M].
    #[arg(long, value_name = "FAULT")]
    nacl_config_fault: Option<String>,
    /// The firewall's network ACL watch: on, off or slow [default: on].
    #[arg(long, value_name = "MODE")]
    nacl_firewall_mode: Option<String>,
    /// Its reaction latency [default: 2s].
    #[arg(long, value_name = "DURATION")]
    nacl_firewall_latency: Option<String>,
    /// Failures of DescribeAlarms naming its alarm: none, throttle[:N][@M], error[:N][@M].
    #[arg(long, value_name = "FAULT")]
    nacl_firewall_fault: Option<String>,
    /// The CloudWatch alarm it sets [default: chaoslingr-lab-nacl-changes].
    #[arg(long, value_name = "NAME")]
    nacl_firewall_alarm: Option<String>,

    /// Revoke world-open unauthorized rules and delete such network ACL entries after this
    /// latency (the auto-remediator).
    #[arg(long, value_name = "DURATION")]
    remediate_after: Option<String>,

    /// Play AWS's clock this far from the local one: every forwarded answer's `Date`
    /// header is shifted by it (`90s` ahead, `-90s` behind), as a machine with a wrong
    /// clock would see AWS. For testing ChaoSlingr's clock checks.
    #[arg(long, value_name = "[-]DURATION", allow_hyphen_values = true)]
    clock_skew: Option<String>,

    /// Hold a request: SERVICE:Operation[#N][:before|:after], e.g.
    /// `ec2:AuthorizeSecurityGroupIngress#1:after` holds the first authorize after the
    /// emulator applied it. Repeatable; more with POST /_lab/holds (see --help).
    #[arg(long, value_name = "SPEC")]
    hold: Vec<String>,

    /// Put random faults on the wire: this fraction (0 to 1) of requests gets one.
    #[arg(long, value_name = "RATE")]
    wire_faults: Option<f64>,
    /// The kinds of wire faults to choose from [default: throttle,error,drop,slow].
    #[arg(long, value_name = "KINDS", value_delimiter = ',')]
    wire_fault_kinds: Vec<String>,
    /// How long a `slow` answer takes; longer than the SDK's attempt timeout [default: 25s].
    #[arg(long, value_name = "DURATION")]
    slow_answer: Option<String>,
    /// Seed of the wire faults, for a reproducible sequence [default: 1].
    #[arg(long, value_name = "N")]
    wire_fault_seed: Option<u64>,
    /// Only requests signed with these access keys get wire faults [default: every caller].
    #[arg(long, value_name = "KEYS", value_delimiter = ',')]
    wire_fault_keys: Vec<String>,

    /// Refuse sts:AssumeRole of any role in this account (12 digits), as STS does when the
    /// role is missing or does not trust the caller: 403 AccessDenied. Repeatable; more
    /// with PUT /_lab/assume-role-denials (see --help).
    #[arg(long, value_name = "ACCOUNT")]
    deny_assume_role: Vec<String>,
}

/// The wire-fault plan from the flags, or `None` without --wire-faults.
fn fault_plan(args: &Args) -> anyhow::Result<Option<FaultPlan>> {
    let Some(rate) = args.wire_faults else {
        if !args.wire_fault_kinds.is_empty() || args.slow_answer.is_some() || args.wire_fault_seed.is_some() {
            bail!("--wire-fault-kinds, --slow-answer and --wire-fault-seed need --wire-faults RATE");
        }
        return Ok(None);
    };
    let kinds = if args.wire_fault_kinds.is_empty() {
        WireFault::ALL.to_vec()
    } else {
        args.wire_fault_kinds
            .iter()
            .map(|k| k.parse::<WireFault>().map_err(|e| anyhow::anyhow!("--wire-fault-kinds: {e}")))
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    let slow = match &args.slow_answer {
        Some(v) => duration(v, "--slow-answer")?,
        None => Duration::from_secs(25),
    };
    let plan = FaultPlan {
        rate,
        kinds,
        slow,
        access_keys: args.wire_fault_keys.clone(),
        seed: args.wire_fault_seed.unwrap_or(1),
    };
    plan.validate().map_err(|e| anyhow::anyhow!("--wire-faults: {e}"))?;
    Ok(Some(plan))
}

/// `90s` or `-90s` as signed seconds.
fn signed_seconds(s: &str, flag: &str) -> anyhow::Result<i64> {
    let (negative, rest) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let secs = i64::try_from(duration(rest, flag)?.as_secs()).context("too large")?;
    Ok(if negative { -secs } else { secs })
}

fn loopback_uri(s: &str) -> anyhow::Result<Uri> {
    let uri: Uri = s.parse().with_context(|| format!("--upstream `{s}` is not a URL"))?;
    match uri.host() {
        Some("127.0.0.1" | "localhost" | "[::1]" | "::1") if uri.scheme_str() == Some("http") => Ok(uri),
        _ => bail!("--upstream `{s}` must be an http:// URL on 127.0.0.1: the lab never talks to anything else"),
    }
}

fn duration(s: &str, flag: &str) -> anyhow::Result<Duration> {
    humantime::parse_duration(s).with_context(|| format!("{flag} `{s}` is not a duration such as `3s` or `1h`"))
}

fn settings(args: &Args) -> anyhow::Result<LabSettings> {
    let file = match &args.config_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            FileSettings::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        }
        None => FileSettings::default(),
    };
    let mut s = file.resolve().map_err(|e| anyhow::anyhow!("lab settings: {e}"))?;
    let mode = |m: &str, flag: &str| m.parse::<Mode>().map_err(|e| anyhow::anyhow!("{flag}: {e}"));
    let fault = |f: &str, flag: &str| parse_fault(f).map_err(|e| anyhow::anyhow!("{flag}: {e}"));
    if let Some(v) = &args.scan_interval {
        s.scan_interval = duration(v, "--scan-interval")?;
    }
    if let Some(v) = &args.config_mode {
        s.config.mode = mode(v, "--config-mode")?;
    }
    if let Some(v) = &args.config_latency {
        s.config.latency = duration(v, "--config-latency")?;
    }
    if let Some(v) = &args.config_fault {
        s.config.fault = fault(v, "--config-fault")?;
    }
    if let Some(v) = args.config_page_size {
        s.config_page_size = v.clamp(1, 100);
    }
    if args.authorized_tcp_ports.is_some() || args.authorized_udp_ports.is_some() {
        let first = s.config_rules.first().cloned().expect("at least one rule");
        let tcp = args
            .authorized_tcp_ports
            .clone()
            .unwrap_or_else(|| ports_param(&first.input_parameters, "authorizedTcpPorts"));
        let udp = args
            .authorized_udp_ports
            .clone()
            .unwrap_or_else(|| ports_param(&first.input_parameters, "authorizedUdpPorts"));
        s.config_rules[0] =
            OpenPortsRule::new(&first.name, &tcp, &udp).map_err(|e| anyhow::anyhow!("--authorized-*-ports: {e}"))?;
    }
    if let Some(v) = &args.firewall_mode {
        s.firewall.mode = mode(v, "--firewall-mode")?;
    }
    if let Some(v) = &args.firewall_latency {
        s.firewall.latency = duration(v, "--firewall-latency")?;
    }
    if let Some(v) = &args.firewall_fault {
        s.firewall.fault = fault(v, "--firewall-fault")?;
    }
    if let Some(v) = &args.firewall_alarm {
        s.firewall_alarm = v.clone();
    }
    if args.no_findings {
        s.firewall_findings = false;
    }
    if let Some(v) = &args.securityhub_fault {
        s.securityhub_fault = fault(v, "--securityhub-fault")?;
    }
    if let Some(v) = &args.nacl_config_mode {
        s.nacl_config.mode = mode(v, "--nacl-config-mode")?;
    }
    if let Some(v) = &args.nacl_config_latency {
        s.nacl_config.latency = duration(v, "--nacl-config-latency")?;
    }
    if let Some(v) = &args.nacl_config_fault {
        s.nacl_config.fault = fault(v, "--nacl-config-fault")?;
    }
    if let Some(v) = &args.nacl_firewall_mode {
        s.nacl_firewall.mode = mode(v, "--nacl-firewall-mode")?;
    }
    if let Some(v) = &args.nacl_firewall_latency {
        s.nacl_firewall.latency = duration(v, "--nacl-firewall-latency")?;
    }
    if let Some(v) = &args.nacl_firewall_fault {
        s.nacl_firewall.fault = fault(v, "--nacl-firewall-fault")?;
    }
    if let Some(v) = &args.nacl_firewall_alarm {
        s.nacl_firewall_alarm = v.clone();
    }
    if s.nacl_firewall_alarm == s.firewall_alarm {
        bail!("the network ACL alarm and the security group alarm must differ (both `{}`)", s.firewall_alarm);
    }
    if let Some(v) = &args.remediate_after {
        s.remediator = Some(duration(v, "--remediate-after")?);
    }
    if let Some(v) = &args.enforce_iam {
        s.iam.enforce = Some(v.clone());
    }
    if let Some(v) = &args.scp {
        s.iam.scp = Some(v.clone());
    }
    if let Some(v) = &args.iam_evaluator {
        s.iam.evaluator = Some(v.clone());
    }
    if let Some(v) = &args.node {
        s.iam.node = Some(v.clone());
    }
    if !args.deny_assume_role.is_empty() {
        s.deny_assume_role = deny_assume_role_accounts(&args.deny_assume_role)
            .map_err(|e| anyhow::anyhow!("--deny-assume-role: {e}"))?;
    }
    if s.iam.scp.is_some() && s.iam.enforce.is_none() {
        bail!("--scp needs --enforce-iam: only the enforced access keys are evaluated");
    }
    Ok(s)
}

fn ports_param(input_parameters: &str, key: &str) -> String {
    serde_json::from_str::<serde_json::Value>(input_parameters)
        .ok()
        .and_then(|v| v.get(key).and_then(|p| p.as_str()).map(String::from))
        .unwrap_or_default()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,aws_config=warn,aws_smithy_runtime=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let upstream = loopback_uri(&args.upstream)?;
    if !args.listen.ip().is_loopback() {
        bail!("--listen {} must be a loopback address", args.listen);
    }
    let settings = settings(&args)?;
    let holds = args
        .hold
        .iter()
        .map(|h| h.parse::<HoldSpec>().map_err(|e| anyhow::anyhow!("--hold: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let plan = fault_plan(&args)?;
    let up = Upstream::new(&args.upstream, &settings.region).await;
    world::create_alarm(&up, &settings.firewall_alarm)
        .await
        .with_context(|| format!("could not create the firewall alarm in the emulator at {}", args.upstream))?;
    world::create_nacl_alarm(&up, &settings.nacl_firewall_alarm).await.with_context(|| {
        format!("could not create the network ACL firewall alarm in the emulator at {}", args.upstream)
    })?;

    let listener = TcpListener::bind(args.listen).await.with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    if let Some(path) = &args.port_file {
        std::fs::write(path, addr.port().to_string()).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let enforcer = match &settings.iam.enforce {
        Some(policies) => {
            let options = EnforceOptions {
                policies: policies.clone(),
                scp: settings.iam.scp.clone(),
                evaluator: settings.iam.evaluator.clone().unwrap_or_else(chaoslingr_lab::iam::default_evaluator),
                node: settings.iam.node.clone().unwrap_or_else(|| "node".into()),
            };
            let scope = Scope::new(&settings.region, &settings.account);
            Some(Arc::new(Enforcer::start(&options, scope).await.context("--enforce-iam")?))
        }
        None => None,
    };
    let interval = settings.scan_interval;
    let summary = format!(
        "config {} ({}), firewall {} ({}, alarm {}), nacl config {} ({}), nacl firewall {} ({}, alarm {}), remediator {}",
        format!("{:?}", settings.config.mode).to_lowercase(),
        humantime::format_duration(settings.config.latency),
        format!("{:?}", settings.firewall.mode).to_lowercase(),
        humantime::format_duration(settings.firewall.latency),
        settings.firewall_alarm,
        format!("{:?}", settings.nacl_config.mode).to_lowercase(),
        humantime::format_duration(settings.nacl_config.latency),
        format!("{:?}", settings.nacl_firewall.mode).to_lowercase(),
        humantime::format_duration(settings.nacl_firewall.latency),
        settings.nacl_firewall_alarm,
        settings.remediator.map(|d| humantime::format_duration(d).to_string()).unwrap_or_else(|| "off".into()),
    );
    let summary = match &plan {
        Some(p) => format!(
            "{summary}, wire faults {:.1}% ({})",
            p.rate * 100.0,
            p.kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join(",")
        ),
        None => summary,
    };
    let summary = if settings.deny_assume_role.is_empty() {
        summary
    } else {
        format!("{summary}, AssumeRole refused in {}", settings.deny_assume_role.join(","))
    };
    let summary = match &settings.iam.enforce {
        Some(p) => format!(
            "{summary}, IAM enforced ({}{})",
            p.display(),
            settings.iam.scp.as_ref().map(|s| format!(", SCP {}", s.display())).unwrap_or_default()
        ),
        None => format!("{summary}, IAM not enforced"),
    };
    let deny_assume_role = settings.deny_assume_role.clone();
    let state = Arc::new(Mutex::new(LabState::new(settings, SystemTime::now())));
    // A first scan before answering anything: pre-existing state is Config's baseline.
    world::tick(&up, &state).await.context("first scan of the emulator failed")?;
    println!("chaoslingr-lab listening on http://{addr} (forwarding to {}); {summary}", args.upstream);
    let ec2 = up.ec2.clone();
    tokio::spawn(world::run(up, state.clone(), interval));
    let mut front = Front::new(state, upstream);
    for spec in holds {
        front.holds.arm(spec);
    }
    front.faults.set(plan).map_err(|e| anyhow::anyhow!("--wire-faults: {e}"))?;
    front.roles.set_denied(&deny_assume_role).map_err(|e| anyhow::anyhow!("--deny-assume-role: {e}"))?;
    if let Some(skew) = &args.clock_skew {
        front = front.with_clock_skew(signed_seconds(skew, "--clock-skew")?);
    }
    if let Some(enforcer) = enforcer {
        front = front.with_iam(enforcer, ec2);
    }
    if let Some(path) = &args.record_calls {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {} for --record-calls", path.display()))?;
        front = front.with_call_log(file);
    }
    let front = Arc::new(front);
    tokio::select! {
        _ = proxy::serve(listener, front) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}
