//! `chaoslingr`: run, watch, revert and inspect security chaos experiments.

// The lifecycle over every technique is one deeply nested future; its layout needs more
// than the default 128 levels of the compiler's query depth.
#![recursion_limit = "256"]

mod inspect;
mod output;
mod report;
mod run;

use std::process::ExitCode;

use anyhow::Context;
use chaoslingr_domain::config::{self, ConfigError, ENV_VARS};
use chaoslingr_domain::engine::EngineError;
use chaoslingr_domain::Settings;
use clap::{Args, Parser, Subcommand};

/// Exit statuses, documented in `--help` and the README.
pub mod exit {
    /// The hypothesis held: detected, remediated or prevented (or the command succeeded).
    pub const OK: u8 = 0;
    /// Something failed: an AWS error, an aborted run, a revert that did not complete.
    pub const FAILURE: u8 = 1;
    /// Bad input or configuration; nothing was changed.
    pub const BAD_INPUT: u8 = 2;
    /// The experiment ended `undetected`: a security gap.
    pub const UNDETECTED: u8 = 3;
    /// Interrupted by Ctrl-C, SIGTERM or SIGHUP (the rule was reverted first).
    pub const INTERRUPTED: u8 = 130;
}

const EXIT_HELP: &str = "\
Exit status:
  0    the hypothesis held (detected, remediated, prevented), or the command succeeded
  1    failure: an AWS error, an aborted run, or a revert that could not be verified
  2    bad input or configuration; nothing was changed
  3    the experiment ended undetected: a security gap was found
  130  interrupted by Ctrl-C, SIGTERM or SIGHUP; the injected rule was reverted first";

fn env_help() -> String {
    let mut s = String::from("Configuration (environment; flags override):\n");
    for (name, what) in ENV_VARS {
        s.push_str(&format!("  {name:<28} {what}\n"));
    }
    s.push_str("  AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL and the other standard AWS settings apply unchanged.\n\n");
    s.push_str(EXIT_HELP);
    s
}

#[derive(Debug, Parser)]
#[command(
    name = "chaoslingr",
    version,
    about = "Security chaos engineering for AWS: open an unauthorized port on an opted-in security group, measure how fast your controls notice, and always revert it.",
    after_long_help = env_help(),
)]
struct Cli {
    /// More logs on stderr (-v info, -vv debug). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    log_json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the opted-in security groups, which are eligible, and why not where not.
    Targets(ListArgs),
    /// Run one experiment: pre-flight, plan, inject, watch, revert, record.
    #[command(after_long_help = env_help())]
    Run(RunArgs),
    /// Show active experiments (from the injected rules' tags) with age and deadline.
    Status(ListArgs),
    /// Revert one experiment by id, or every experiment with --all (the emergency stop).
    Revert(RevertArgs),
    /// One judge tick, as the scheduled judge function runs it: conclude and revert every
    /// experiment that is decided or past its deadline, finish what a crashed tick left.
    Judge(ListArgs),
    /// How well each control detects: per technique and detector, experiments, outcome
    /// counts, detection rate, time-to-detect p50/p90/max against the previous period, the
    /// trend by week and the gaps, from outcome objects (the S3 archive, or files), as a
    /// table, JSON, CSV or a self-contained HTML page. Without either, from the CloudWatch
    /// metrics, saying what those cannot show.
    Report(ReportArgs),
}

#[derive(Debug, Args)]
struct ReportArgs {
    /// The outcome archive the Terraform module keeps (its `archive_url` output):
    /// s3://BUCKET/PREFIX. Read with s3:ListBucket and s3:GetObject (the module's
    /// `archive_reader_policy_json`).
    #[arg(long, value_name = "S3_URL", env = "CHAOSLINGR_ARCHIVE")]
    archive: Option<String>,

    /// Read outcome objects from files instead: a file of JSON lines or a JSON array, or a
    /// directory of such files (*.json, *.jsonl, *.ndjson, searched recursively, so a
    /// copy of the archive reads as it is; repeatable). Start messages and other schemas
    /// are skipped.
    #[arg(long, value_name = "PATH")]
    from: Vec<std::path::PathBuf>,

    /// The period, back from now, e.g. 7d, 30d, 12h [default: 30d].
    #[arg(long, value_name = "DURATION", default_value = "30d")]
    since: String,

    /// Only this technique (port-change, nacl-entry).
    #[arg(long, value_name = "TECHNIQUE")]
    experiment: Option<String>,

    /// table, json (schema chaoslingr.report/v1), csv (one row per experiment, with the
    /// schema version in each row) or html (one self-contained page of SVG charts: no
    /// scripts, no fetches).
    #[arg(long, value_name = "FORMAT", default_value = "table")]
    format: String,

    /// Write the report to this file instead of stdout (its path is printed).
    #[arg(long, value_name = "FILE")]
    out: Option<std::path::PathBuf>,

    /// The CloudWatch namespace read when there is no archive.
    #[arg(long, value_name = "NAMESPACE", env = "CHAOSLINGR_NAMESPACE", default_value = "ChaoSlingr")]
    namespace: String,
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    scopes: ScopeArgs,
}

/// Which accounts and regions a command works in. Without any: the credentials' own
/// account, in AWS_REGION (or CHAOSLINGR_TARGETS and the other variables below).
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Accounts and regions")]
pub struct ScopeArgs {
    /// Target accounts, comma-separated 12-digit ids, each reached by assuming --role
    /// there. Replaces CHAOSLINGR_ACCOUNTS and the accounts of the targets file.
    #[arg(long, value_name = "IDS")]
    accounts: Option<String>,

    /// Regions, comma-separated, e.g. us-east-1,eu-west-1 [default: AWS_REGION].
    /// Replaces CHAOSLINGR_REGIONS.
    #[arg(long, value_name = "REGIONS")]
    regions: Option<String>,

    /// The role assumed in each target account: NAME or PATH/NAME
    /// [default: chaoslingr-target]. Replaces CHAOSLINGR_ROLE.
    #[arg(long, value_name = "ROLE")]
    role: Option<String>,

    /// The external id the target role's trust policy requires. Replaces
    /// CHAOSLINGR_EXTERNAL_ID.
    #[arg(long, value_name = "ID")]
    external_id: Option<String>,

    /// The targets as a JSON file, the form of CHAOSLINGR_TARGETS (which it replaces):
    /// {"accounts": [{"id": "111111111111", "regions": ["eu-west-1"]}, {"id":
    /// "222222222222"}], "regions": ["us-east-1"], "role": "chaoslingr-target",
    /// "external_id": "..."}. The flags above replace its fields.
    #[arg(long, value_name = "FILE")]
    targets_file: Option<std::path::PathBuf>,
}

impl ScopeArgs {
    fn flags(&self) -> Result<config::TargetFlags, Failure> {
        let file = match &self.targets_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| Failure {
                    status: exit::BAD_INPUT,
                    error: anyhow::anyhow!("--targets-file {}: {e}", path.display()),
                })?;
                Some((path.display().to_string(), text))
            }
            None => None,
        };
        Ok(config::TargetFlags {
            file,
            accounts: self.accounts.clone(),
            regions: self.regions.clone(),
            role: self.role.clone(),
            external_id: self.external_id.clone(),
        })
    }

    /// The settings from the environment with these flags over its targets.
    fn settings(&self) -> Result<Settings, Failure> {
        let mut s = Settings::from_env()?;
        s.override_targets(&self.flags()?)?;
        Ok(s)
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The technique to run [default: port-change, or the target's]:
    /// port-change (an ingress rule on a security group) or nacl-entry (an inbound entry
    /// on a network ACL).
    #[arg(long, value_name = "TECHNIQUE")]
    experiment: Option<String>,

    /// Target this security group (sg-…) or network ACL (acl-…) instead of a random
    /// eligible one; it must be opted in.
    #[arg(long, value_name = "ID")]
    target: Option<String>,

    /// How the ports are chosen: `random` (a range inside CHAOSLINGR_PORT_RANGE) or
    /// `risky` (one of 22, 3389 and other well-known risky tcp ports, for controls that
    /// watch only those). Replaces CHAOSLINGR_PORTS [default: random].
    #[arg(long, value_name = "CHOICE")]
    ports: Option<String>,

    /// A detector to watch; repeat for several. Replaces CHAOSLINGR_DETECTORS.
    /// Forms: config:<rule-name>, alarm:<alarm-name>, securityhub, securityhub:<generator-id>.
    #[arg(long = "detector", value_name = "DETECTOR")]
    detectors: Vec<String>,

    /// How long to wait for detection, e.g. 90s, 10m, 1h [default: 15m].
    #[arg(long, value_name = "DURATION")]
    window: Option<String>,

    /// How often to observe the detectors while watching [default: 15s].
    #[arg(long, value_name = "DURATION")]
    poll_interval: Option<String>,

    /// Run even when a `config:` detector cannot see the change (AWS Config does not
    /// record its resource type continuously): the detector is reported as `could not
    /// see` instead of the run being refused. Replaces CHAOSLINGR_ALLOW_BLIND_DETECTORS.
    #[arg(long)]
    allow_blind_detectors: bool,

    /// Plan and ask EC2 whether the change would be allowed (DryRun), without writing.
    #[arg(long)]
    dry_run: bool,

    /// SNS topic to publish the outcome to.
    #[arg(long, value_name = "ARN")]
    topic_arn: Option<String>,

    /// Print the outcome object (schema chaoslingr.outcome/v1) instead of a summary.
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    scopes: ScopeArgs,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["experiment_id", "all", "force"])))]
struct RevertArgs {
    /// The experiment to revert (see `chaoslingr status`).
    experiment_id: Option<String>,

    /// Revert every active experiment in every target account and region (this account
    /// and region by default). Rules that carry ChaoSlingr's tags but are not rules
    /// ChaoSlingr creates are listed, never removed.
    #[arg(long)]
    all: bool,

    /// Remove this one rule (sgr-...) even though it is not recognisably ChaoSlingr's:
    /// for a rule `status` or `revert --all` listed as not ours that you checked yourself.
    #[arg(long, value_name = "RULE_ID")]
    force: Option<String>,

    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    scopes: ScopeArgs,
}

/// A failure with the exit status it maps to.
#[derive(Debug)]
pub struct Failure {
    pub status: u8,
    pub error: anyhow::Error,
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        Failure { status: exit::BAD_INPUT, error: e.into() }
    }
}

impl From<EngineError> for Failure {
    fn from(e: EngineError) -> Self {
        let status = match e {
            EngineError::BadInput(_) => exit::BAD_INPUT,
            EngineError::Call(_) => exit::FAILURE,
        };
        Failure { status, error: e.into() }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Failure { status: exit::FAILURE, error }
    }
}

pub use chaoslingr_techniques::AwsEngine;

/// Builds the engines once: settings validated, AWS configuration loaded, one engine
/// per target account and region (the role in each account is assumed on first use).
async fn fleet(settings: Settings) -> Result<chaoslingr_fleet::Fleet, Failure> {
    let conf = chaoslingr_aws::load_config().await;
    if conf.region().is_none() {
        return Err(Failure {
            status: exit::BAD_INPUT,
            error: anyhow::anyhow!("no AWS region configured: set AWS_REGION or a region in your AWS profile"),
        });
    }
    chaoslingr_fleet::Fleet::new(&conf, settings, "chaoslingr-cli")
        .await
        .map_err(|e| Failure { status: exit::BAD_INPUT, error: anyhow::anyhow!(e) })
}

/// Settings from the environment, then the run flags on top, all validated before any
/// AWS call.
fn run_settings(args: &RunArgs) -> Result<Settings, ConfigError> {
    let mut s = Settings::from_env()?;
    if !args.detectors.is_empty() {
        let joined = args.detectors.join(",");
        s.detectors = config::detectors(&joined, "--detector")?;
    }
    if let Some(w) = &args.window {
        s.window = config::window(w, "--window")?;
        // A short window with the default poll interval would watch only once.
        if args.poll_interval.is_none() && s.poll_interval > s.window / 4 {
            s.poll_interval = (s.window / 4).max(std::time::Duration::from_secs(1));
        }
    }
    if let Some(p) = &args.poll_interval {
        s.poll_interval = config::poll_interval(p, "--poll-interval")?;
    }
    if let Some(p) = &args.ports {
        s.port_choice = config::port_choice(p, "--ports")?;
    }
    if let Some(t) = &args.topic_arn {
        s.topic_arn = Some(config::topic_arn(t, "--topic-arn")?);
    }
    if let Some(t) = &args.target {
        if let Err(why) = chaoslingr_domain::technique::check_target_id(chaoslingr_techniques::all(), t) {
            let expected = why.split_once("expected ").map(|(_, e)| e.to_string()).unwrap_or(why);
            return Err(ConfigError { source_name: "--target".into(), value: t.clone(), expected });
        }
    }
    if let Some(e) = &args.experiment {
        if let Err(why) = chaoslingr_techniques::by_name(e) {
            let expected = why.split_once("expected ").map(|(_, e)| e.to_string()).unwrap_or(why);
            return Err(ConfigError { source_name: "--experiment".into(), value: e.clone(), expected });
        }
    }
    s.dry_run |= args.dry_run;
    s.allow_blind_detectors |= args.allow_blind_detectors;
    s.check().map_err(|mut e| {
        if args.poll_interval.is_some() && e.source_name == "CHAOSLINGR_POLL_INTERVAL" {
            e.source_name = "--poll-interval".into();
        }
        if !args.detectors.is_empty() && e.source_name == "CHAOSLINGR_DETECTORS" {
            e.source_name = "--detector".into();
        }
        e
    })?;
    Ok(s)
}

fn init_logging(verbose: u8, json: bool) {
    let default = match verbose {
        // The SDK's own warning about a refused AssumeRole repeats what the command says.
        0 => "warn,aws_config=error",
        1 => "info,aws_config=warn,aws_smithy_runtime=warn",
        _ => "debug,aws_smithy_runtime=info,hyper=info,aws_config=info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn dispatch(cli: Cli) -> Result<u8, Failure> {
    match cli.command {
        Command::Targets(args) => {
            let fleet = fleet(args.scopes.settings()?).await?;
            inspect::targets(&fleet, args.json).await
        }
        Command::Status(args) => {
            let fleet = fleet(args.scopes.settings()?).await?;
            inspect::status(&fleet, args.json).await
        }
        Command::Revert(args) => {
            let id = match &args.experiment_id {
                Some(id) => Some(
                    id.parse().map_err(|e: String| Failure { status: exit::BAD_INPUT, error: anyhow::anyhow!(e) })?,
                ),
                None => None,
            };
            if let Some(rule) = &args.force {
                let sgr = rule
                    .strip_prefix("sgr-")
                    .is_some_and(|r| !r.is_empty() && r.chars().all(|c| c.is_ascii_hexdigit()));
                let entry = rule.split_once('/').is_some_and(|(acl, n)| {
                    chaoslingr_domain::technique::check_target_id(chaoslingr_techniques::all(), acl).is_ok()
                        && acl.starts_with("acl-")
                        && n.parse::<u16>().is_ok_and(|n| (1..=32766).contains(&n))
                });
                if !(sgr || entry) {
                    return Err(Failure {
                        status: exit::BAD_INPUT,
                        error: anyhow::anyhow!(
                            "--force takes a security group rule id such as `sgr-0123456789abcdef0` or a network ACL entry such as `acl-0123456789abcdef0/32766`, got `{rule}`"
                        ),
                    });
                }
                let fleet = fleet(args.scopes.settings()?).await?;
                return inspect::revert_force(&fleet, rule, args.json).await;
            }
            let fleet = fleet(args.scopes.settings()?).await?;
            inspect::revert(&fleet, id, args.json).await
        }
        Command::Report(args) => {
            let since = humantime::parse_duration(&args.since).map_err(|e| Failure {
                status: exit::BAD_INPUT,
                error: anyhow::anyhow!("--since `{}`: {e} (e.g. 7d, 30d, 12h)", args.since),
            })?;
            report::report(&report::ReportRequest {
                from: args.from,
                archive: args.archive.filter(|a| !a.trim().is_empty()),
                since,
                experiment: args.experiment,
                format: args.format,
                out: args.out,
                namespace: args.namespace,
            })
            .await
        }
        Command::Judge(args) => {
            let fleet = fleet(args.scopes.settings()?).await?;
            inspect::judge(&fleet, args.json).await
        }
        Command::Run(args) => {
            let mut settings = run_settings(&args)?;
            settings.override_targets(&args.scopes.flags()?)?;
            // Signal handlers are installed before anything is written, so a Ctrl-C at
            // any moment is turned into "stop and revert" instead of killing the process.
            let signals = run::Signals::install().context("could not install signal handlers")?;
            let fleet = fleet(settings).await?;
            run::run(&fleet, &args, signals).await
        }
    }
}

// Every call a command makes is I/O, and the concurrent ones are futures on this one
// thread: worker threads would only cost memory.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.log_json);
    match dispatch(cli).await {
        Ok(status) => ExitCode::from(status),
        Err(f) => {
            eprintln!("chaoslingr: error: {:#}", f.error);
            ExitCode::from(f.status)
        }
    }
}
