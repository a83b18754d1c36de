//! `cargo xtask bench`: ChaoSlingr for Rust side by side with a Python/boto3 re-creation
//! of the original ChaoSlingr (`infra/bench/original.py`), on one private emulator, in one
//! run; writes BENCHMARKS.md.
//!
//! The measuring itself is done by `infra/bench/probe.py` (wall time, CPU time and peak
//! RSS of a child from `os.wait4`; a loopback Lambda Runtime API for the functions), the
//! same way for every subject. API calls are counted from the detection lab's
//! `--record-calls` log, one access key per measured run.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{header, human, run_ok, Result, Workspace};

/// The Rust target every release binary is built for here: the zips are measured on this
/// machine, so they are x86-64 (the Terraform module deploys arm64 by default).
const TARGET: &str = "x86_64-unknown-linux-gnu";
const REGION: &str = "us-east-1";
/// The lab's Config rule and firewall alarm: the detectors of every Rust experiment here.
const CONFIG_DETECTOR: &str = "config:vpc-sg-open-only-to-authorized-ports";
const ALARM_DETECTOR: &str = "alarm:chaoslingr-lab-firewall";
/// The shortest window the product accepts; the scheduled experiments wait it out.
const WINDOW_SECS: u64 = 10;
const DEFAULT_GROUPS: [usize; 4] = [100, 1_000, 3_000, 10_000];
/// One group in this many is opted in.
const OPT_IN_EVERY: usize = 10;
const FUNCTIONS: [&str; 3] = ["inject", "judge", "notify"];

/// The targets of the benchmark issue.
const TARGET_WALL_RATIO: f64 = 10.0;
const TARGET_MEMORY_RATIO: f64 = 5.0;
const TARGET_CPU_RATIO_LARGE: f64 = 30.0;
const TARGET_COLD_START_MS: f64 = 15.0;
const TARGET_FUNCTION_RSS_MIB: f64 = 16.0;
const TARGET_ZIP_MB: f64 = 4.0;

struct Options {
    groups: Vec<usize>,
    runs: Option<usize>,
    cold_starts: usize,
    build: bool,
    output: Option<PathBuf>,
}

fn parse_options(args: &[String]) -> Result<Options> {
    let mut o = Options { groups: DEFAULT_GROUPS.to_vec(), runs: None, cold_starts: 10, build: true, output: None };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().cloned().ok_or_else(|| format!("{name} needs a value"));
        let count = |name: &str, v: String| -> Result<usize> {
            v.replace('_', "")
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{name} `{v}`: expected a positive number"))
        };
        match arg.as_str() {
            "--groups" => {
                let v = value("--groups")?;
                let mut groups =
                    v.split(',').map(|g| count("--groups", g.trim().to_string())).collect::<Result<Vec<_>>>()?;
                groups.sort_unstable();
                groups.dedup();
                o.groups = groups;
            }
            "--runs" => o.runs = Some(count("--runs", value("--runs")?)?),
            "--cold-starts" => o.cold_starts = count("--cold-starts", value("--cold-starts")?)?,
            "--no-build" => o.build = false,
            "--output" => o.output = Some(PathBuf::from(value("--output")?)),
            other => return Err(format!("`bench` does not take `{other}` (see `cargo xtask help`)")),
        }
    }
    Ok(o)
}

// --- measuring --------------------------------------------------------------------------

/// The `name value` lines a probe printed.
#[derive(Debug, Default, Clone)]
struct Figures(HashMap<String, String>);

impl Figures {
    fn parse(text: &str) -> Figures {
        Figures(
            text.lines()
                .filter_map(|l| l.split_once(' '))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect(),
        )
    }

    fn text(&self, name: &str) -> Result<&str> {
        self.0.get(name).map(String::as_str).ok_or_else(|| format!("the probe reported no `{name}`"))
    }

    fn num(&self, name: &str) -> Result<f64> {
        let v = self.text(name)?;
        v.parse().map_err(|_| format!("the probe reported `{name} {v}`, not a number"))
    }
}

/// One measured run of one subject.
#[derive(Debug, Clone, Default)]
struct Sample {
    wall_ms: f64,
    cpu_ms: f64,
    rss_kib: f64,
    calls: usize,
    /// Cold start (functions) or spawn to the announcement of the open port (the CLI).
    first_ms: Option<f64>,
}

#[derive(Debug, Default)]
struct Series(Vec<Sample>);

impl Series {
    fn median(&self, f: impl Fn(&Sample) -> f64) -> f64 {
        median(&self.0.iter().map(f).collect::<Vec<_>>())
    }
    fn wall(&self) -> f64 {
        self.median(|s| s.wall_ms)
    }
    fn cpu(&self) -> f64 {
        self.median(|s| s.cpu_ms)
    }
    fn rss_mib(&self) -> f64 {
        self.median(|s| s.rss_kib) / 1024.0
    }
    fn max_rss_mib(&self) -> f64 {
        self.0.iter().map(|s| s.rss_kib).fold(0.0, f64::max) / 1024.0
    }
    fn calls(&self) -> String {
        let mut counts: Vec<usize> = self.0.iter().map(|s| s.calls).collect();
        counts.sort_unstable();
        counts.dedup();
        counts.iter().map(ToString::to_string).collect::<Vec<_>>().join("/")
    }
    fn first(&self) -> f64 {
        median(&self.0.iter().filter_map(|s| s.first_ms).collect::<Vec<_>>())
    }
    fn range(&self, f: impl Fn(&Sample) -> f64) -> (f64, f64) {
        let v: Vec<f64> = self.0.iter().map(f).collect();
        (v.iter().copied().fold(f64::INFINITY, f64::min), v.iter().copied().fold(0.0, f64::max))
    }
}

fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// Everything measured at one number of groups.
#[derive(Debug, Default)]
struct Point {
    groups: usize,
    opted_in: usize,
    seed_secs: f64,
    original: Series,
    cli: Series,
    inject: Series,
    judge_watch: Series,
    judge_conclude: Series,
}

/// The calls of one unmeasured, traced run of each subject, as sequential round trips.
type Rounds = Vec<(&'static str, Vec<Vec<String>>)>;

/// Settings that change a process's memory without changing the code, each tried on dry
/// runs of `chaoslingr run` and of the inject function.
const LEVERS: [(&str, &[&str]); 2] = [("as built", &[]), ("`MALLOC_ARENA_MAX=1`", &["MALLOC_ARENA_MAX=1"])];

#[derive(Debug, Default)]
struct Lever {
    name: &'static str,
    cli: Series,
    inject: Series,
}

/// The functions on their own: cold starts, memory, package size.
#[derive(Debug, Default)]
struct FunctionFigures {
    cold: Series,
    /// Cold starts with the system's CA certificates in one bundle file and no directory of
    /// them, as on `provided.al2023` (this host keeps one file per certificate too).
    cold_bundle: Series,
    invoked: Series,
    zip_bytes: u64,
    binary_bytes: u64,
}

// --- the private emulator and lab -------------------------------------------------------

/// A private moto server and detection lab on 127.0.0.1 (not infra/.run's, so a demo or
/// test elsewhere on the machine cannot stop them); both are killed when dropped.
struct Lab {
    children: Vec<Child>,
    emulator: String,
    endpoint: String,
    calls: PathBuf,
    /// `probe.py trace` in front of the lab, for the unmeasured runs that show which
    /// calls go out together.
    trace_endpoint: String,
    trace_log: PathBuf,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot bind a loopback port: {e}"))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// Whether `GET path` on 127.0.0.1:port answers 200.
fn answers(port: u16, path: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}

fn log_file(path: &Path) -> Result<fs::File> {
    fs::File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))
}

fn start_lab(ws: &Workspace, bins: &Bins, dir: &Path) -> Result<Lab> {
    let moto_port = free_port()?;
    let moto_log = dir.join("emulator.log");
    // moto_server with lookups by id indexed (see infra/bench/emulator.py): without it,
    // one listing at 10,000 groups outlasts the SDK's attempt timeout.
    let moto = Command::new(ws.venv_bin("python"))
        .arg(ws.root.join("infra/bench/emulator.py"))
        .args(["-H", "127.0.0.1", "-p", &moto_port.to_string()])
        .stdin(Stdio::null())
        .stdout(log_file(&moto_log)?)
        .stderr(log_file(&dir.join("emulator.err.log"))?)
        .spawn()
        .map_err(|e| format!("cannot start the emulator (infra/bench/emulator.py): {e}"))?;
    let mut lab = Lab {
        children: vec![moto],
        emulator: format!("http://127.0.0.1:{moto_port}"),
        endpoint: String::new(),
        calls: dir.join("calls.jsonl"),
        trace_endpoint: String::new(),
        trace_log: dir.join("trace.jsonl"),
    };
    let started = Instant::now();
    while !answers(moto_port, "/moto-api/") {
        if started.elapsed() > Duration::from_secs(60) {
            return Err(format!(
                "the emulator did not answer on port {moto_port} within 60 s; see {}",
                moto_log.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    let port_file = dir.join("lab.port");
    let lab_log = dir.join("lab.log");
    // No periodic scan (1 h): the firewall and Config never react during a run, and the
    // lab does not read thousands of groups off the emulator while a subject is measured.
    let child = Command::new(&bins.lab)
        .args(["--upstream", &lab.emulator, "--scan-interval", "1h"])
        .arg("--port-file")
        .arg(&port_file)
        .arg("--record-calls")
        .arg(&lab.calls)
        .stdin(Stdio::null())
        .stdout(log_file(&lab_log)?)
        .stderr(log_file(&dir.join("lab.err.log"))?)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bins.lab.display()))?;
    lab.children.push(child);
    let started = Instant::now();
    loop {
        let listening = fs::read_to_string(&lab_log).is_ok_and(|l| l.contains("listening on"));
        if let (true, Ok(port)) = (listening, fs::read_to_string(&port_file)) {
            lab.endpoint = format!("http://127.0.0.1:{}", port.trim());
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            return Err(format!("the lab did not start within 60 s; see {}", dir.join("lab.err.log").display()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    let trace_port_file = dir.join("trace.port");
    let child = Command::new(ws.venv_bin("python"))
        .arg(ws.root.join("infra/bench/probe.py"))
        .args(["trace", "--upstream", &lab.endpoint])
        .arg("--log")
        .arg(&lab.trace_log)
        .arg("--port-file")
        .arg(&trace_port_file)
        .stdin(Stdio::null())
        .stdout(log_file(&dir.join("trace.out.log"))?)
        .stderr(log_file(&dir.join("trace.err.log"))?)
        .spawn()
        .map_err(|e| format!("cannot start the tracing proxy: {e}"))?;
    lab.children.push(child);
    let started = Instant::now();
    loop {
        if let Ok(port) = fs::read_to_string(&trace_port_file).map(|p| p.trim().to_string()) {
            if let Ok(port) = port.parse::<u16>() {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    lab.trace_endpoint = format!("http://127.0.0.1:{port}");
                    return Ok(lab);
                }
            }
        }
        if started.elapsed() > Duration::from_secs(30) {
            return Err(format!("the tracing proxy did not start; see {}", dir.join("trace.err.log").display()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Each access key's calls, in order, from the lab's call log.
fn calls_by_key(path: &Path) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for line in fs::read_to_string(path).unwrap_or_default().lines() {
        if let (Some(key), Some(action)) =
            (crate::json_string_field(line, "access_key"), crate::json_string_field(line, "action"))
        {
            out.entry(key).or_default().push(action);
        }
    }
    out
}

/// The value of a top-level number field of a JSON line.
fn json_number_field(json: &str, key: &str) -> Option<f64> {
    let needle = format!("\"{key}\"");
    let after = json[json.find(&needle)? + needle.len()..].trim_start().strip_prefix(':')?.trim_start();
    let end = after.find([',', '}']).unwrap_or(after.len());
    after[..end].trim().parse().ok()
}

/// One traced call: its action, and when it started and ended.
#[derive(Debug, Clone)]
struct Traced {
    action: String,
    start: f64,
    end: f64,
}

/// Each access key's traced calls, in the order they started.
fn traced_by_key(path: &Path) -> HashMap<String, Vec<Traced>> {
    let mut out: HashMap<String, Vec<Traced>> = HashMap::new();
    for line in fs::read_to_string(path).unwrap_or_default().lines() {
        let key = crate::json_string_field(line, "access_key");
        let action = crate::json_string_field(line, "action");
        let (start, end) = (json_number_field(line, "start"), json_number_field(line, "end"));
        if let (Some(key), Some(action), Some(start), Some(end)) = (key, action, start, end) {
            out.entry(key).or_default().push(Traced { action, start, end });
        }
    }
    for calls in out.values_mut() {
        calls.sort_by(|a, b| a.start.total_cmp(&b.start));
    }
    out
}

/// The calls grouped into sequential round trips: a call that starts before every call of
/// the current group has ended went out together with them.
fn round_trips(calls: &[Traced]) -> Vec<Vec<String>> {
    let mut rounds: Vec<Vec<String>> = Vec::new();
    let mut group_end = f64::NEG_INFINITY;
    for call in calls {
        let action = call.action.split_once(':').map(|(_, op)| op).unwrap_or(&call.action).to_string();
        match rounds.last_mut() {
            Some(group) if call.start < group_end => {
                group.push(action);
                group_end = group_end.max(call.end);
            }
            _ => {
                rounds.push(vec![action]);
                group_end = call.end;
            }
        }
    }
    rounds
}

// --- the subjects -----------------------------------------------------------------------

struct Bins {
    cli: PathBuf,
    lab: PathBuf,
    functions: Vec<(&'static str, PathBuf, PathBuf)>,
}

impl Bins {
    /// cargo-lambda leaves each binary it builds as `lambda/<name>/bootstrap` (moved out of
    /// the release directory), next to the function's zip.
    fn locate(ws: &Workspace) -> Bins {
        let lambda = ws.target_dir.join("lambda");
        Bins {
            cli: lambda.join("chaoslingr").join("bootstrap"),
            lab: ws.target_dir.join(TARGET).join("bench-lab").join("chaoslingr-lab"),
            functions: FUNCTIONS
                .iter()
                .map(|f| (*f, lambda.join(f).join("bootstrap"), lambda.join(f).join("bootstrap.zip")))
                .collect(),
        }
    }

    fn function(&self, name: &str) -> &Path {
        &self.functions.iter().find(|(f, _, _)| *f == name).expect("a known function").1
    }

    fn check(&self) -> Result<()> {
        let mut missing: Vec<String> = Vec::new();
        for path in [&self.cli, &self.lab].into_iter().chain(self.functions.iter().flat_map(|(_, b, z)| [b, z])) {
            if !path.is_file() {
                missing.push(path.display().to_string());
            }
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("missing release build output (run without --no-build): {}", missing.join(", ")))
        }
    }
}

/// Runs the measuring helpers and keeps one example of each command for the report.
struct Bench<'a> {
    ws: &'a Workspace,
    bins: Bins,
    lab: Lab,
    /// Where the subjects send their calls: the lab, or the tracing proxy in front of it.
    via: String,
    /// `KEY=VALUE` settings added to every Rust subject's environment (the levers).
    extra_env: Vec<String>,
    dir: PathBuf,
    topic_arn: String,
    webhook_port: String,
    commands: Vec<(String, String)>,
    calls: HashMap<String, Vec<String>>,
}

impl Bench<'_> {
    fn python(&self) -> PathBuf {
        self.ws.venv_bin("python")
    }

    /// `probe.py ARGS`; its `name value` lines. `what` names it in the report's command list
    /// (the first command of each kind is kept).
    fn probe(&mut self, what: &str, args: &[String]) -> Result<Figures> {
        let mut command = Command::new(self.python());
        command.arg(self.ws.root.join("infra/bench/probe.py")).args(args).current_dir(&self.ws.root);
        if !self.commands.iter().any(|(w, _)| w == what) {
            self.commands.push((what.to_string(), self.ws.show(&command)));
        }
        let output = command
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("cannot run probe.py: {e}"))?;
        if !output.status.success() {
            return Err(format!("`{}` failed ({})", self.ws.show(&command), crate::describe(output.status)));
        }
        Ok(Figures::parse(&String::from_utf8_lossy(&output.stdout)))
    }

    /// The standard AWS settings of one subject: the lab, dummy credentials with the
    /// subject's own access key id (so the call log tells the subjects apart).
    fn aws_env(&self, key: &str) -> Vec<String> {
        [
            ("AWS_ENDPOINT_URL", self.via.as_str()),
            ("AWS_REGION", REGION),
            ("AWS_DEFAULT_REGION", REGION),
            ("AWS_ACCESS_KEY_ID", key),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_CONFIG_FILE", "/dev/null"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]
        .iter()
        .flat_map(|(k, v)| ["--env".to_string(), format!("{k}={v}")])
        .chain(self.extra_env.iter().flat_map(|kv| ["--env".to_string(), kv.clone()]))
        .collect()
    }

    /// The settings every scheduled function gets, as a deployment would set them.
    fn function_env(&self, key: &str) -> Vec<String> {
        let mut env = self.aws_env(key);
        for (k, v) in [
            ("CHAOSLINGR_DETECTORS", format!("{CONFIG_DETECTOR},{ALARM_DETECTOR}")),
            ("CHAOSLINGR_WINDOW", format!("{WINDOW_SECS}s")),
            ("CHAOSLINGR_POLL_INTERVAL", "5s".to_string()),
            ("CHAOSLINGR_TOPIC_ARN", self.topic_arn.clone()),
            ("CHAOSLINGR_SLACK_WEBHOOK", "ssm:/chaoslingr/bench/slack-webhook".to_string()),
        ] {
            env.push("--env".into());
            env.push(format!("{k}={v}"));
        }
        env
    }

    fn calls_of(&mut self, key: &str) -> Vec<String> {
        self.calls = calls_by_key(&self.lab.calls);
        self.calls.get(key).cloned().unwrap_or_default()
    }

    fn out_file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn original(&mut self, key: &str) -> Result<(Sample, Vec<String>)> {
        let stdout = self.out_file(&format!("{key}.out"));
        let mut args = vec!["spawn".to_string()];
        args.extend(self.aws_env(key));
        args.extend(["--stdout".into(), stdout.display().to_string(), "--".into()]);
        args.push(self.python().display().to_string());
        args.push(self.ws.root.join("infra/bench/original.py").display().to_string());
        let f = self.probe("original", &args)?;
        let printed = fs::read_to_string(&stdout).unwrap_or_default();
        if f.num("exit")? != 0.0 || !printed.contains("\"opened\": \"sg-") {
            return Err(format!("original.py did not open and close a port (exit {}): {printed}", f.text("exit")?));
        }
        let calls = self.calls_of(key);
        Ok((
            Sample {
                wall_ms: f.num("wall_ms")?,
                cpu_ms: f.num("cpu_ms")?,
                rss_kib: f.num("max_rss_kib")?,
                calls: calls.len(),
                first_ms: None,
            },
            calls,
        ))
    }

    /// `chaoslingr run` with the lab's Config rule and firewall alarm as detectors, cut
    /// after its first observation by SIGINT (the Ctrl-C path: revert, then record).
    fn cli(&mut self, key: &str) -> Result<(Sample, Vec<String>)> {
        let stdout = self.out_file(&format!("{key}.out"));
        let mut args = vec!["spawn".to_string()];
        args.extend(self.aws_env(key));
        args.extend(["--interrupt-on".into(), " opened ".into()]);
        args.extend(["--stdout".into(), stdout.display().to_string(), "--".into()]);
        args.push(self.bins.cli.display().to_string());
        for a in [
            "run",
            "--detector",
            CONFIG_DETECTOR,
            "--detector",
            ALARM_DETECTOR,
            "--window",
            &format!("{WINDOW_SECS}s"),
            "--poll-interval",
            "5s",
            "--topic-arn",
            &self.topic_arn,
            "--json",
        ] {
            args.push(a.to_string());
        }
        let f = self.probe("chaoslingr run", &args)?;
        let printed = fs::read_to_string(&stdout).unwrap_or_default();
        let ok = f.num("exit")? == 130.0
            && printed.contains("\"outcome\":\"aborted\"")
            && printed.contains("\"reverted\":true")
            && printed.contains("SIGINT");
        if !ok {
            return Err(format!(
                "chaoslingr run did not open, revert and record a port (exit {}): {printed}",
                f.text("exit")?
            ));
        }
        let calls = self.calls_of(key);
        Ok((
            Sample {
                wall_ms: f.num("wall_ms")?,
                cpu_ms: f.num("cpu_ms")?,
                rss_kib: f.num("max_rss_kib")?,
                calls: calls.len(),
                first_ms: Some(f.num("interrupted_at_ms")?),
            },
            calls,
        ))
    }

    /// `chaoslingr run --dry-run` with the same detectors: pre-flight, plan and EC2's
    /// DryRun answer, no write.
    fn cli_dry_run(&mut self, key: &str) -> Result<Sample> {
        let stdout = self.out_file(&format!("{key}.out"));
        let mut args = vec!["spawn".to_string()];
        args.extend(self.aws_env(key));
        args.extend(["--stdout".into(), stdout.display().to_string(), "--".into()]);
        args.push(self.bins.cli.display().to_string());
        for a in ["run", "--dry-run", "--detector", CONFIG_DETECTOR, "--detector", ALARM_DETECTOR, "--json"] {
            args.push(a.to_string());
        }
        let f = self.probe("chaoslingr run --dry-run", &args)?;
        let printed = fs::read_to_string(&stdout).unwrap_or_default();
        if f.num("exit")? != 0.0 || !printed.contains("would-succeed") {
            return Err(format!("chaoslingr run --dry-run did not plan (exit {}): {printed}", f.text("exit")?));
        }
        Ok(Sample {
            wall_ms: f.num("wall_ms")?,
            cpu_ms: f.num("cpu_ms")?,
            rss_kib: f.num("max_rss_kib")?,
            calls: self.calls_of(key).len(),
            first_ms: None,
        })
    }

    /// One cold function process through the loopback Runtime API, invoked with `events`.
    /// Returns the figures and the responses.
    fn function(&mut self, name: &str, key: &str, events: &[&str]) -> Result<(Figures, Vec<String>)> {
        let response = self.out_file(&format!("{key}.response"));
        let mut args = vec!["lambda".to_string(), "--bin".into(), self.bins.function(name).display().to_string()];
        args.extend(["--name".into(), format!("chaoslingr-{name}")]);
        args.extend(self.function_env(key));
        args.extend(["--log".into(), self.out_file(&format!("{key}.log")).display().to_string()]);
        args.extend(["--response-out".into(), response.display().to_string()]);
        if name == "notify" {
            args.extend(["--webhook-port".into(), self.webhook_port.clone()]);
        }
        for e in events {
            args.extend(["--event".into(), e.to_string()]);
        }
        let what = if events.is_empty() { format!("{name} cold start") } else { format!("{name} function") };
        let f = self.probe(&what, &args)?;
        let mut responses = Vec::new();
        for i in 0..events.len() {
            if f.text(&format!("invoke{i}_result"))? != "response" {
                let body = fs::read_to_string(format!("{}.{i}", response.display())).unwrap_or_default();
                return Err(format!("the {name} function failed: {body}"));
            }
            responses.push(fs::read_to_string(format!("{}.{i}", response.display())).unwrap_or_default());
        }
        Ok((f, responses))
    }

    fn function_sample(&mut self, name: &str, key: &str, event: &str, expect: &str) -> Result<(Sample, Vec<String>)> {
        let (f, responses) = self.function(name, key, &[event])?;
        if !responses[0].contains(expect) {
            return Err(format!("the {name} function answered without `{expect}`: {}", responses[0]));
        }
        let calls = self.calls_of(key);
        Ok((
            Sample {
                wall_ms: f.num("wall_ms")?,
                cpu_ms: f.num("cpu_ms")?,
                rss_kib: f.num("vm_hwm_kib")?,
                calls: calls.len(),
                first_ms: Some(f.num("init_ms")?),
            },
            calls,
        ))
    }
}

// --- the run ----------------------------------------------------------------------------

fn line(text: &str) {
    println!("{text}");
    let _ = std::io::stdout().flush();
}

fn measure_point(b: &mut Bench<'_>, point: &mut Point, runs: usize) -> Result<()> {
    let n = point.groups;
    // The baseline and the CLI alternate, so that a slow spell of the machine hits both.
    for r in 1..=runs {
        let (s, _) = b.original(&format!("BXORIG{n}R{r}"))?;
        line(&format!(
            "  original.py      run {r}/{runs}: {:>8.1} ms wall {:>8.1} ms CPU {:>6.1} MiB  {} calls",
            s.wall_ms,
            s.cpu_ms,
            s.rss_kib / 1024.0,
            s.calls
        ));
        point.original.0.push(s);
        let (s, _) = b.cli(&format!("BXCLI{n}R{r}"))?;
        line(&format!(
            "  chaoslingr run   run {r}/{runs}: {:>8.1} ms wall {:>8.1} ms CPU {:>6.1} MiB  {} calls",
            s.wall_ms,
            s.cpu_ms,
            s.rss_kib / 1024.0,
            s.calls
        ));
        point.cli.0.push(s);
    }
    // Then the scheduled path: inject, a judge tick while it is watched, and the judge tick
    // after the deadline that concludes it (so the next run finds no active experiment).
    for r in 1..=runs {
        let (s, _) = b.function_sample("inject", &format!("BXINJECT{n}R{r}"), "{}", "\"status\":\"started\"")?;
        // The rule was injected before the function answered, so its deadline is at most
        // a window from now.
        let due = Instant::now() + Duration::from_secs(WINDOW_SECS) + Duration::from_secs(1);
        line(&format!("  inject function  run {r}/{runs}: {:>8.1} ms wall {:>8.1} ms CPU {:>6.1} MiB  {} calls (cold start {:.1} ms)", s.wall_ms, s.cpu_ms, s.rss_kib / 1024.0, s.calls, s.first_ms.unwrap_or_default()));
        point.inject.0.push(s);
        let (s, _) = b.function_sample("judge", &format!("BXJUDGEW{n}R{r}"), "{}", "\"watching\":[\"cs-")?;
        line(&format!(
            "  judge, watching  run {r}/{runs}: {:>8.1} ms wall {:>8.1} ms CPU {:>6.1} MiB  {} calls",
            s.wall_ms,
            s.cpu_ms,
            s.rss_kib / 1024.0,
            s.calls
        ));
        point.judge_watch.0.push(s);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let (s, _) = b.function_sample("judge", &format!("BXJUDGEC{n}R{r}"), "{}", "\"concluded\":[{")?;
        line(&format!(
            "  judge, concludes run {r}/{runs}: {:>8.1} ms wall {:>8.1} ms CPU {:>6.1} MiB  {} calls",
            s.wall_ms,
            s.cpu_ms,
            s.rss_kib / 1024.0,
            s.calls
        ));
        point.judge_conclude.0.push(s);
    }
    Ok(())
}

/// Dry runs (nothing written, so nothing to close) under each lever, interleaved.
fn measure_levers(b: &mut Bench<'_>, runs: usize) -> Result<Vec<Lever>> {
    let mut levers: Vec<Lever> = LEVERS.iter().map(|(name, _)| Lever { name, ..Lever::default() }).collect();
    for r in 1..=runs {
        for (i, (_, env)) in LEVERS.iter().enumerate() {
            b.extra_env = env.iter().map(ToString::to_string).collect();
            let cli = b.cli_dry_run(&format!("BXLEVERCLI{i}R{r}"));
            let inject = b.function_sample(
                "inject",
                &format!("BXLEVERINJECT{i}R{r}"),
                r#"{"dry_run": true}"#,
                "\"status\":\"dry-run\"",
            );
            b.extra_env.clear();
            levers[i].cli.0.push(cli?);
            levers[i].inject.0.push(inject?.0);
        }
    }
    for l in &levers {
        line(&format!(
            "  {:<26} run --dry-run {:>5.1} MiB, inject dry run {:>5.1} MiB (cold start {:.1} ms)",
            l.name.replace('`', ""),
            l.cli.rss_mib(),
            l.inject.rss_mib(),
            l.inject.first()
        ));
    }
    Ok(levers)
}

/// An SNS notification carrying one outcome, as the notify function receives it.
fn notify_event() -> String {
    let outcome = r#"{\"schema\":\"chaoslingr.outcome/v1\",\"experiment_id\":\"cs-20261126T120000Z-abc123\",\"experiment\":\"port-change\",\"account\":\"123456789012\",\"region\":\"us-east-1\",\"security_group_id\":\"sg-0abc\",\"security_group_rule_id\":\"sgr-0def\",\"protocol\":\"udp\",\"from_port\":14603,\"to_port\":14605,\"cidr\":\"0.0.0.0/0\",\"injected_at\":\"2026-11-26T12:00:00.000Z\",\"concluded_at\":\"2026-11-26T12:15:00.000Z\",\"outcome\":\"undetected\",\"reason\":\"nothing noticed the port within the window\",\"detections\":[{\"detector\":\"alarm:fw\",\"detected\":false,\"seconds_to_detect\":null,\"evidence\":\"alarm OK\"},{\"detector\":\"remediation\",\"detected\":false,\"seconds_to_detect\":null,\"evidence\":\"still present\"}],\"reverted\":true,\"dry_run\":false}"#;
    format!(
        r#"{{"Records":[{{"EventSource":"aws:sns","EventVersion":"1.0","EventSubscriptionArn":"arn:aws:sns:us-east-1:123456789012:chaoslingr-bench-outcomes:1","Sns":{{"Type":"Notification","MessageId":"m-1","TopicArn":"arn:aws:sns:us-east-1:123456789012:chaoslingr-bench-outcomes","Subject":"ChaoSlingr","Message":"{outcome}","Timestamp":"2026-11-26T12:15:00.000Z","SignatureVersion":"1","Signature":"c2lnbmF0dXJl","SigningCertUrl":"https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0.pem","UnsubscribeUrl":"https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe"}}}}]}}"#
    )
}

fn measure_functions(b: &mut Bench<'_>, cold_starts: usize) -> Result<Vec<(&'static str, FunctionFigures)>> {
    let mut out: Vec<(&'static str, FunctionFigures)> =
        FUNCTIONS.iter().map(|f| (*f, FunctionFigures::default())).collect();
    let no_cert_dir = b.dir.join("no-cert-dir");
    fs::create_dir_all(&no_cert_dir).map_err(|e| format!("cannot create {}: {e}", no_cert_dir.display()))?;
    let bundle_only = format!("SSL_CERT_DIR={}", no_cert_dir.display());
    // Interleaved, so that a slow moment of the machine does not land on one function.
    for i in 1..=cold_starts {
        for (name, figures) in out.iter_mut() {
            for bundle in [false, true] {
                if bundle {
                    b.extra_env = vec![bundle_only.clone()];
                }
                let cold = b.function(name, &format!("BXCOLD{}{i}{}", name.to_uppercase(), u8::from(bundle)), &[]);
                b.extra_env.clear();
                let (f, _) = cold?;
                let sample = Sample {
                    wall_ms: f.num("init_ms")?,
                    cpu_ms: f.num("cpu_ms")?,
                    rss_kib: f.num("vm_hwm_kib")?,
                    calls: 0,
                    first_ms: Some(f.num("init_ms")?),
                };
                if bundle {
                    figures.cold_bundle.0.push(sample);
                } else {
                    figures.cold.0.push(sample);
                }
            }
        }
    }
    let event = notify_event();
    for i in 1..=cold_starts.min(5) {
        let (s, _) = b.function_sample("notify", &format!("BXNOTIFY{i}"), &event, "\"posted\":1")?;
        out[2].1.invoked.0.push(s);
    }
    for (name, zip, binary) in b.bins.functions.iter().map(|(n, bin, zip)| (*n, zip, bin)) {
        let size = |p: &Path| fs::metadata(p).map(|m| m.len()).map_err(|e| format!("{}: {e}", p.display()));
        let figures = &mut out.iter_mut().find(|(n, _)| *n == name).expect("known").1;
        figures.zip_bytes = size(zip)?;
        figures.binary_bytes = size(binary)?;
    }
    Ok(out)
}

/// One unmeasured run of each subject through the tracing proxy: which calls go out
/// together, and so how many sequential round trips each path takes.
fn trace_rounds(b: &mut Bench<'_>) -> Result<Rounds> {
    b.via = b.lab.trace_endpoint.clone();
    let traced = traced_runs(b);
    b.via = b.lab.endpoint.clone();
    traced?;
    let by_key = traced_by_key(&b.lab.trace_log);
    let rounds = |key: &str| round_trips(by_key.get(key).map(Vec::as_slice).unwrap_or_default());
    Ok(vec![
        ("original.py", rounds("BXTRACEORIG")),
        ("`chaoslingr run`", rounds("BXTRACECLI")),
        ("inject function", rounds("BXTRACEINJECT")),
        ("judge tick, watching", rounds("BXTRACEJUDGEW")),
        ("judge tick, concluding", rounds("BXTRACEJUDGEC")),
        ("notify function", rounds("BXTRACENOTIFY")),
    ])
}

fn traced_runs(b: &mut Bench<'_>) -> Result<()> {
    b.original("BXTRACEORIG")?;
    b.cli("BXTRACECLI")?;
    b.function_sample("inject", "BXTRACEINJECT", "{}", "\"status\":\"started\"")?;
    let due = Instant::now() + Duration::from_secs(WINDOW_SECS) + Duration::from_secs(1);
    b.function_sample("judge", "BXTRACEJUDGEW", "{}", "\"watching\":[\"cs-")?;
    if let Some(wait) = due.checked_duration_since(Instant::now()) {
        std::thread::sleep(wait);
    }
    b.function_sample("judge", "BXTRACEJUDGEC", "{}", "\"concluded\":[{")?;
    b.function_sample("notify", "BXTRACENOTIFY", &notify_event(), "\"posted\":1")?;
    Ok(())
}

pub fn bench(args: &[String]) -> Result<()> {
    let options = parse_options(args)?;
    if std::env::consts::OS != "linux" || std::env::consts::ARCH != "x86_64" {
        return Err(format!(
            "`bench` measures x86-64 Linux builds through /proc and os.wait4; this is {} {}",
            std::env::consts::OS,
            std::env::consts::ARCH
        ));
    }
    let ws = Workspace::discover()?;
    let started = Instant::now();
    let output = options.output.clone().unwrap_or_else(|| ws.root.join("BENCHMARKS.md"));

    let mut build_commands = Vec::new();
    header("[1/5] Installing the emulator (infra/.venv) and cargo-lambda (infra/.venv-lambda)");
    run_ok(&ws, &mut ws.script("emulator.sh", &["install"]))?;
    run_ok(&ws, &mut ws.script("lambda.sh", &["install"]))?;
    header("[2/5] Building the release binaries (the first time: about half an hour on 2 cores)");
    let mut functions = ws.script("lambda.sh", &["build"]);
    functions.env("CHAOSLINGR_LAMBDA_ARCH", "x86-64");
    // The CLI with the functions' toolchain and settings (`cargo lambda build --release`),
    // so it reuses their compiled dependencies instead of a second hour-long build; the
    // profile and the code are the ones `cargo build --release -p chaoslingr-cli` builds.
    let mut cli = ws.script("lambda.sh", &["cli"]);
    cli.env("CHAOSLINGR_LAMBDA_ARCH", "x86-64");
    // The lab is the bench's tooling, not a subject: its own profile builds much faster.
    let mut lab = ws.cargo(["build", "--profile", "bench-lab", "--target", TARGET, "-p", "chaoslingr-lab"]);
    build_commands.push(format!("CHAOSLINGR_LAMBDA_ARCH=x86-64 {}", ws.show(&functions)));
    build_commands.push(format!("CHAOSLINGR_LAMBDA_ARCH=x86-64 {}", ws.show(&cli)));
    build_commands.push(ws.show(&lab));
    if options.build {
        run_ok(&ws, &mut functions)?;
        run_ok(&ws, &mut cli)?;
        run_ok(&ws, &mut lab)?;
    } else {
        println!("--no-build: using the release binaries already in {}", ws.target_dir.display());
    }
    let bins = Bins::locate(&ws);
    bins.check()?;

    header("[3/5] Starting a private emulator and detection lab on 127.0.0.1");
    let dir = ws.target_dir.join("bench");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let lab = start_lab(&ws, &bins, &dir)?;
    println!("Emulator {}  lab {}  (call log {})", lab.emulator, lab.endpoint, lab.calls.display());
    let machine_before = Machine::read(&ws);
    let via = lab.endpoint.clone();
    let mut b = Bench {
        ws: &ws,
        bins,
        lab,
        via,
        extra_env: Vec::new(),
        dir,
        topic_arn: String::new(),
        webhook_port: String::new(),
        commands: Vec::new(),
        calls: HashMap::new(),
    };
    let floor = b.probe("floor", &["spawn", "--", "/bin/true"].map(String::from))?;
    let floor_kib = floor.num("max_rss_kib")?;
    let hook = b.probe("webhook", &["webhook-url".to_string()])?;
    b.webhook_port = hook.text("port")?.to_string();
    let emulator = b.lab.emulator.clone();
    let setup = b.probe(
        "setup",
        &["setup".into(), "--endpoint".into(), emulator.clone(), "--webhook-url".into(), hook.text("url")?.to_string()],
    )?;
    b.topic_arn = setup.text("topic_arn")?.to_string();

    header("[4/5] Measuring, size by size");
    let mut points = Vec::new();
    let mut rounds: Rounds = Vec::new();
    let mut levers: Vec<Lever> = Vec::new();
    let mut seeded = 0usize;
    let mut vpc: Option<String> = None;
    for (i, &groups) in options.groups.iter().enumerate() {
        let runs = options.runs.unwrap_or(if groups > 1_000 { 3 } else { 5 });
        println!(
            "\n{groups} security groups ({} opted in), {runs} runs of each subject",
            groups.div_ceil(OPT_IN_EVERY)
        );
        let mut seed = vec![
            "seed".to_string(),
            "--endpoint".into(),
            emulator.clone(),
            "--from".into(),
            seeded.to_string(),
            "--to".into(),
            groups.to_string(),
        ];
        seed.extend(["--opt-in-every".into(), OPT_IN_EVERY.to_string()]);
        if let Some(v) = &vpc {
            seed.extend(["--vpc-id".into(), v.clone()]);
        }
        let f = b.probe("seed", &seed)?;
        vpc = Some(f.text("vpc_id")?.to_string());
        let mut point =
            Point { groups, opted_in: groups.div_ceil(OPT_IN_EVERY), seed_secs: f.num("seconds")?, ..Point::default() };
        line(&format!("  seeded {} more groups in {:.1} s", groups - seeded, point.seed_secs));
        seeded = groups;
        if i == 0 {
            // Unmeasured: fills the page cache and Python's bytecode cache for both sides.
            b.original("BXWARMORIG")?;
            b.cli("BXWARMCLI")?;
        }
        measure_point(&mut b, &mut point, runs)?;
        if i == 0 {
            line("  dry runs under settings that change memory (levers), unmeasured against the original");
            levers = measure_levers(&mut b, 3)?;
            line("  one traced run of each subject (unmeasured): which calls go out together");
            // Supplementary: a failure here costs the sequence table, not the run.
            rounds = trace_rounds(&mut b).unwrap_or_else(|e| {
                eprintln!("xtask: warning: the traced runs failed, BENCHMARKS.md will lack the round trips: {e}");
                Vec::new()
            });
        }
        points.push(point);
    }

    header("[5/5] The functions: cold starts, peak memory, package sizes");
    let functions = measure_functions(&mut b, options.cold_starts)?;
    for (name, f) in &functions {
        line(&format!(
            "  {name:<7} cold start median {:>5.1} ms, peak RSS at rest {:>5.1} MiB, zip {:.2} MB",
            f.cold.first(),
            f.cold.rss_mib(),
            f.zip_bytes as f64 / 1e6
        ));
    }
    let machine_after = Machine::read(&ws);
    let report = Report {
        points: &points,
        functions: &functions,
        rounds: &rounds,
        levers: &levers,
        floor_kib,
        commands: &b.commands,
        build_commands: &build_commands,
        machine: &machine_before,
        load_after: &machine_after.load,
        took: started.elapsed(),
        options: &options,
    };
    let existing = fs::read_to_string(&output).ok();
    let text = splice(existing.as_deref(), &report.render());
    fs::write(&output, &text).map_err(|e| format!("cannot write {}: {e}", output.display()))?;
    println!("\n{}", report.headline_text());
    println!("Wrote {} in {}.", output.display(), human(started.elapsed()));
    Ok(())
}

// --- the report -------------------------------------------------------------------------

struct Machine {
    cpu: String,
    cores: usize,
    memory: String,
    kernel: String,
    rustc: String,
    python: String,
    cargo_lambda: String,
    load: String,
    date: String,
    /// The commit the binaries were built from, and whether the tree had other changes.
    source: String,
}

impl Machine {
    fn read(ws: &Workspace) -> Machine {
        let file = |p: &str| fs::read_to_string(p).unwrap_or_default();
        let out = |program: &Path, args: &[&str]| {
            Command::new(program)
                .args(args)
                .stderr(Stdio::null())
                .output()
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_default()
        };
        let cpuinfo = file("/proc/cpuinfo");
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
            .unwrap_or_else(|| "unknown CPU".into());
        let mem_kib: f64 = file("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        let rustc = std::env::var_os("RUSTC").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("rustc"));
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            memory: format!("{:.0} GiB", mem_kib / 1024.0 / 1024.0),
            kernel: format!("Linux {}", file("/proc/sys/kernel/osrelease").trim()),
            rustc: out(&rustc, &["-V"]),
            python: out(
                &ws.venv_bin("python"),
                &["-c", "import sys, boto3, moto; print(f'Python {sys.version.split()[0]}, boto3 {boto3.__version__}, moto {moto.__version__}')"],
            ),
            cargo_lambda: out(&ws.root.join("infra/.venv-lambda/bin/cargo-lambda"), &["lambda", "--version"]),
            load: file("/proc/loadavg").split_whitespace().take(3).collect::<Vec<_>>().join(" "),
            date: out(Path::new("date"), &["-u", "+%Y-%m-%d %H:%M UTC"]),
            source: {
                let git = |args: &[&str]| {
                    Command::new("git")
                        .args(args)
                        .current_dir(&ws.root)
                        .stderr(Stdio::null())
                        .output()
                        .ok()
                        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                        .unwrap_or_default()
                };
                let commit = git(&["rev-parse", "--short", "HEAD"]);
                let dirty = !git(&["status", "--porcelain", "--untracked-files=no"]).is_empty();
                format!("commit {commit}{}", if dirty { " with uncommitted changes in the working tree" } else { "" })
            },
        }
    }
}

struct Report<'a> {
    points: &'a [Point],
    functions: &'a [(&'static str, FunctionFigures)],
    rounds: &'a Rounds,
    levers: &'a [Lever],
    /// Peak RSS of `/bin/true` spawned as the subjects are: the floor of `ru_maxrss`.
    floor_kib: f64,
    commands: &'a [(String, String)],
    build_commands: &'a [String],
    machine: &'a Machine,
    load_after: &'a str,
    took: Duration,
    options: &'a Options,
}

fn ratio(base: f64, ours: f64) -> f64 {
    if ours > 0.0 {
        base / ours
    } else {
        f64::NAN
    }
}

fn verdict(met: bool) -> &'static str {
    if met {
        "**met**"
    } else {
        "**missed**"
    }
}

fn groups_label(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One headline row: what, target, measured, met.
struct Target {
    what: String,
    target: String,
    measured: String,
    met: bool,
}

impl Report<'_> {
    fn smallest(&self) -> &Point {
        &self.points[0]
    }

    fn largest(&self) -> &Point {
        &self.points[self.points.len() - 1]
    }

    fn function(&self, name: &str) -> &FunctionFigures {
        &self.functions.iter().find(|(n, _)| *n == name).expect("known function").1
    }

    fn targets(&self) -> Vec<Target> {
        let mut t = Vec::new();
        let small = self.smallest();
        let large = self.largest();
        for (label, series) in [("`chaoslingr run`", &small.cli), ("inject function", &small.inject)] {
            let r = ratio(small.original.wall(), series.wall());
            t.push(Target {
                what: format!("wall time at {} groups, original ÷ {label}", groups_label(small.groups)),
                target: format!("≥ {TARGET_WALL_RATIO:.0}×"),
                measured: format!("{r:.1}× ({:.0} ms ÷ {:.0} ms)", small.original.wall(), series.wall()),
                met: r >= TARGET_WALL_RATIO,
            });
        }
        for (label, series) in [("`chaoslingr run`", &small.cli), ("inject function", &small.inject)] {
            let r = ratio(small.original.rss_mib(), series.rss_mib());
            t.push(Target {
                what: format!("peak RSS at {} groups, original ÷ {label}", groups_label(small.groups)),
                target: format!("≥ {TARGET_MEMORY_RATIO:.0}×"),
                measured: format!("{r:.1}× ({:.1} MiB ÷ {:.1} MiB)", small.original.rss_mib(), series.rss_mib()),
                met: r >= TARGET_MEMORY_RATIO,
            });
        }
        for (label, series) in [("`chaoslingr run`", &large.cli), ("inject function", &large.inject)] {
            let r = ratio(large.original.cpu(), series.cpu());
            t.push(Target {
                what: format!("client CPU at {} groups, original ÷ {label}", groups_label(large.groups)),
                target: format!("≥ {TARGET_CPU_RATIO_LARGE:.0}×"),
                measured: format!("{r:.1}× ({:.0} ms ÷ {:.0} ms)", large.original.cpu(), series.cpu()),
                met: r >= TARGET_CPU_RATIO_LARGE,
            });
        }
        for (name, f) in self.functions {
            let (_, worst) = f.cold.range(|s| s.wall_ms);
            t.push(Target {
                what: format!("`{name}` cold start (median of {})", f.cold.0.len()),
                target: format!("< {TARGET_COLD_START_MS:.0} ms"),
                measured: format!(
                    "{:.1} ms (max {worst:.1}); {:.1} ms with the CA bundle only",
                    f.cold.first(),
                    f.cold_bundle.first()
                ),
                met: f.cold.first() < TARGET_COLD_START_MS,
            });
        }
        for (name, peak) in self.function_peaks() {
            t.push(Target {
                what: format!("`{name}` peak RSS over an invocation"),
                target: format!("< {TARGET_FUNCTION_RSS_MIB:.0} MiB"),
                measured: format!("{peak:.1} MiB"),
                met: peak < TARGET_FUNCTION_RSS_MIB,
            });
        }
        for (name, f) in self.functions {
            let mb = f.zip_bytes as f64 / 1e6;
            t.push(Target {
                what: format!("`{name}` bootstrap.zip (x86-64)"),
                target: format!("< {TARGET_ZIP_MB:.0} MB"),
                measured: format!("{mb:.2} MB"),
                met: mb < TARGET_ZIP_MB,
            });
        }
        t
    }

    /// The highest peak RSS of each function over its real invocations.
    fn function_peaks(&self) -> Vec<(&'static str, f64)> {
        let inject = self.points.iter().map(|p| p.inject.max_rss_mib()).fold(0.0, f64::max);
        let judge = self
            .points
            .iter()
            .map(|p| p.judge_watch.max_rss_mib().max(p.judge_conclude.max_rss_mib()))
            .fold(0.0, f64::max);
        let notify = self.function("notify").invoked.max_rss_mib();
        vec![("inject", inject), ("judge", judge), ("notify", notify)]
    }

    fn headline_text(&self) -> String {
        let mut s = String::from("Targets:\n");
        for t in self.targets() {
            let _ = writeln!(
                s,
                "  {:<8} {} {}: {}",
                if t.met { "met" } else { "MISSED" },
                t.what.replace('`', ""),
                t.target,
                t.measured
            );
        }
        s
    }

    fn render(&self) -> String {
        let mut md = String::new();
        let m = self.machine;
        let small = self.smallest();
        let large = self.largest();
        let _ = writeln!(
            md,
            "ChaoSlingr for Rust against a Python/boto3 re-creation of the original ChaoSlingr's algorithm \
             ([`infra/bench/original.py`](infra/bench/original.py)), on the same emulator, in one run of \
             `cargo xtask bench` ({} on {}, {} in all). Every figure below comes from that one run; \
             absolute times on this shared machine are noisy, so the comparisons are ratios of medians from \
             the same run.\n",
            m.date,
            m.cpu,
            human(self.took)
        );

        let _ = writeln!(md, "## Headline\n");
        let _ = writeln!(md, "| what | target | measured | |\n|---|---|---|---|");
        for t in self.targets() {
            let _ = writeln!(md, "| {} | {} | {} | {} |", t.what, t.target, t.measured, verdict(t.met));
        }
        let _ = writeln!(md);
        self.render_side_by_side(&mut md, small, large);
        self.render_functions(&mut md);
        self.render_calls(&mut md);
        self.render_gaps(&mut md);
        self.render_levers(&mut md);
        self.render_method(&mut md);
        md
    }

    fn render_side_by_side(&self, md: &mut String, small: &Point, large: &Point) {
        let _ = writeln!(md, "## One experiment, side by side\n");
        let _ = writeln!(
            md,
            "Medians of the runs at each size; the ratio columns are the original's figure divided by ours \
             (higher is better for ChaoSlingr for Rust). One security group in {OPT_IN_EVERY} is opted in. \
             `wall` is spawn to exit (the inject function: spawn to its response, cold start included); \
             `CPU` is user + system time of the process; `RSS` is its peak resident set.\n"
        );
        let _ = writeln!(
            md,
            "| groups (opted in) | subject | runs | wall ms | CPU ms | peak RSS MiB | API calls | wall ratio | CPU ratio | RSS ratio |\n|---|---|---|---|---|---|---|---|---|---|"
        );
        for p in self.points {
            let rows: [(&str, &Series); 3] =
                [("original.py", &p.original), ("`chaoslingr run`", &p.cli), ("inject function", &p.inject)];
            for (label, s) in rows {
                let base = &p.original;
                let is_base = std::ptr::eq(s, base);
                let r = |a: f64, b: f64| if is_base { "—".to_string() } else { format!("{:.1}×", ratio(a, b)) };
                let _ = writeln!(
                    md,
                    "| {} ({}) | {label} | {} | {:.0} | {:.0} | {:.1} | {} | {} | {} | {} |",
                    groups_label(p.groups),
                    groups_label(p.opted_in),
                    s.0.len(),
                    s.wall(),
                    s.cpu(),
                    s.rss_mib(),
                    s.calls(),
                    r(base.wall(), s.wall()),
                    r(base.cpu(), s.cpu()),
                    r(base.rss_mib(), s.rss_mib()),
                );
            }
        }
        let _ = writeln!(md);
        let _ = writeln!(md, "The curve, as ratios (original ÷ ours):\n");
        let _ = writeln!(md, "| groups | wall: run | wall: inject | CPU: run | CPU: inject | RSS: run | RSS: inject | original wall ms | run wall ms | inject wall ms | seeding the added groups, s |\n|---|---|---|---|---|---|---|---|---|---|---|");
        for p in self.points {
            let o = &p.original;
            let _ = writeln!(
                md,
                "| {} | {:.1}× | {:.1}× | {:.1}× | {:.1}× | {:.1}× | {:.1}× | {:.0} | {:.0} | {:.0} | {:.0} |",
                groups_label(p.groups),
                ratio(o.wall(), p.cli.wall()),
                ratio(o.wall(), p.inject.wall()),
                ratio(o.cpu(), p.cli.cpu()),
                ratio(o.cpu(), p.inject.cpu()),
                ratio(o.rss_mib(), p.cli.rss_mib()),
                ratio(o.rss_mib(), p.inject.rss_mib()),
                o.wall(),
                p.cli.wall(),
                p.inject.wall(),
                p.seed_secs,
            );
        }
        let _ = writeln!(md);
        let _ = writeln!(
            md,
            "Where the time of `chaoslingr run` goes at {} groups: spawn to the open port announced (pre-flight, \
             plan, inject, first observation) {:.0} ms of {:.0} ms; the rest is the revert (ownership read, revoke, \
             read-back), the record (CloudWatch and SNS) and removing the group marker. At {} groups: {:.0} of {:.0} ms. \
             The inject function's cold start is {:.1} ms of its {:.0} ms at {} groups.\n",
            groups_label(small.groups),
            small.cli.first(),
            small.cli.wall(),
            groups_label(large.groups),
            large.cli.first(),
            large.cli.wall(),
            small.inject.first(),
            small.inject.wall(),
            groups_label(small.groups),
        );
    }

    fn render_functions(&self, md: &mut String) {
        let _ = writeln!(md, "## The functions: cold start, memory, package\n");
        let _ = writeln!(
            md,
            "Each release function spawned with the Lambda environment against a loopback Runtime API \
             (`infra/bench/probe.py lambda`). Cold start: spawn to its first `GET /2018-06-01/runtime/invocation/next` \
             (settings read and validated, AWS configuration loaded, clients built). Peak RSS: `VmHWM` from \
             `/proc/PID/status`, read after each answer; at rest is after the cold start, invoked is over real \
             invocations (inject: starting an experiment; judge: a watching and a concluding tick; notify: one \
             outcome posted to a loopback webhook). The zips are `cargo lambda build --x86-64` output measured here; \
             the Terraform module deploys arm64 by default (`CHAOSLINGR_LAMBDA_ARCH` in `infra/lambda.sh`), whose \
             zips differ slightly.\n"
        );
        let _ = writeln!(
            md,
            "| function | cold start median ms (min–max, n) | CPU ms | cold start, CA bundle only ms | RSS at rest MiB | peak RSS invoked MiB | bootstrap.zip MB | bootstrap MB |\n|---|---|---|---|---|---|---|---|"
        );
        let peaks = self.function_peaks();
        for (name, f) in self.functions {
            let (lo, hi) = f.cold.range(|s| s.wall_ms);
            let peak = peaks.iter().find(|(n, _)| n == name).map(|(_, p)| *p).unwrap_or(f64::NAN);
            let _ = writeln!(
                md,
                "| `{name}` | {:.1} ({lo:.1}–{hi:.1}, {}) | {:.1} | {:.1} | {:.1} | {peak:.1} | {:.2} | {:.2} |",
                f.cold.first(),
                f.cold.0.len(),
                f.cold.cpu(),
                f.cold_bundle.first(),
                f.cold.rss_mib(),
                f.zip_bytes as f64 / 1e6,
                f.binary_bytes as f64 / 1e6,
            );
        }
        let _ = writeln!(md);
        let _ = writeln!(
            md,
            "`CPU ms` is the process's CPU time up to that first request (median). `CA bundle only`: the same cold \
             start with `SSL_CERT_DIR` pointed at an empty directory, so that the TLS set-up of the AWS SDK's HTTP \
             client reads the system's CA certificates from the one bundle file only. This host (Debian) also keeps \
             one file per certificate in `/etc/ssl/certs`, which the certificate loader finds and reads, about 150 \
             files at every cold start; to our knowledge `provided.al2023` ships the bundle without them, so this \
             column is the closer estimate of a cold start on Lambda.\n"
        );
        let _ = writeln!(md, "Peak RSS of the functions at each size (max over the runs, MiB):\n");
        let _ = writeln!(md, "| groups | inject | judge, watching | judge, concluding |\n|---|---|---|---|");
        for p in self.points {
            let _ = writeln!(
                md,
                "| {} | {:.1} | {:.1} | {:.1} |",
                groups_label(p.groups),
                p.inject.max_rss_mib(),
                p.judge_watch.max_rss_mib(),
                p.judge_conclude.max_rss_mib()
            );
        }
        let _ = writeln!(md);
    }

    fn render_calls(&self, md: &mut String) {
        let _ = writeln!(md, "## API calls per experiment and per judge tick\n");
        let _ = writeln!(
            md,
            "Counted by the detection lab (`--record-calls`), one access key per measured run (a `/` separates \
             differing counts between runs). The Rust subjects watch one Config rule and one CloudWatch alarm \
             (the lab's), publish to an SNS topic, and run with every safety check on.\n"
        );
        let _ = writeln!(
            md,
            "| groups | original.py | `chaoslingr run` | inject | judge tick, watching | judge tick, concluding | scheduled experiment (inject + watching tick + concluding tick) |\n|---|---|---|---|---|---|---|"
        );
        for p in self.points {
            let scheduled = p.inject.median(|s| s.calls as f64)
                + p.judge_watch.median(|s| s.calls as f64)
                + p.judge_conclude.median(|s| s.calls as f64);
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {scheduled:.0} |",
                groups_label(p.groups),
                p.original.calls(),
                p.cli.calls(),
                p.inject.calls(),
                p.judge_watch.calls(),
                p.judge_conclude.calls(),
            );
        }
        let _ = writeln!(md);
        let _ = writeln!(
            md,
            "Which calls go out together: one more run of each subject at {} groups, unmeasured, through a \
             tracing proxy (`probe.py trace`) that logs when each call starts and ends; calls that overlap form \
             one round trip (`‖`), round trips follow each other (`→`).\n",
            groups_label(self.smallest().groups)
        );
        let _ = writeln!(md, "| subject | calls | sequential round trips | sequence |\n|---|---|---|---|");
        for (label, rounds) in self.rounds {
            let calls: usize = rounds.iter().map(Vec::len).sum();
            let sequence = rounds.iter().map(|r| r.join(" ‖ ")).collect::<Vec<_>>().join(" → ");
            let _ = writeln!(md, "| {label} | {calls} | {} | {sequence} |", rounds.len());
        }
        let _ = writeln!(md);
        let _ = writeln!(md, "{CALLS_MINIMUM}");
    }

    fn render_gaps(&self, md: &mut String) {
        let _ = writeln!(md, "## Where a target is missed: why, and what would reach it\n");
        let missed: Vec<Target> = self.targets().into_iter().filter(|t| !t.met).collect();
        if missed.is_empty() {
            let _ = writeln!(md, "Every target was met in this run.\n");
        } else {
            let _ = writeln!(md, "Missed in this run:\n");
            for t in &missed {
                let _ = writeln!(md, "- {}: {} against a target of {}.", t.what, t.measured, t.target);
            }
            let _ = writeln!(md);
        }
        let _ = writeln!(md, "{GAPS}");

        let _ = writeln!(md, "{GAPS_SCALE}");
    }

    fn render_levers(&self, md: &mut String) {
        if self.levers.is_empty() {
            return;
        }
        let small = self.smallest();
        let _ = writeln!(md, "### Memory: what settings alone would buy\n");
        let _ = writeln!(
            md,
            "Dry runs at {} groups (pre-flight, plan and EC2's DryRun answer, nothing written), {} of each, with \
             a setting that needs no code change: one glibc malloc arena (by default one per thread that \
             allocates; the CLI and the functions run on one thread, but the SDK's blocking pool adds more). It is an environment variable a \
             deployment can set on the functions. Peak RSS median, and the ratio to the original's {:.1} MiB:\n",
            groups_label(small.groups),
            self.levers[0].cli.0.len(),
            small.original.rss_mib()
        );
        let _ = writeln!(
            md,
            "| setting | `chaoslingr run --dry-run` MiB | ratio | inject dry run MiB | ratio | inject cold start ms |\n|---|---|---|---|---|---|"
        );
        for l in self.levers {
            let _ = writeln!(
                md,
                "| {} | {:.1} | {:.1}× | {:.1} | {:.1}× | {:.1} |",
                l.name,
                l.cli.rss_mib(),
                ratio(small.original.rss_mib(), l.cli.rss_mib()),
                l.inject.rss_mib(),
                ratio(small.original.rss_mib(), l.inject.rss_mib()),
                l.inject.first()
            );
        }
        let _ = writeln!(md);
    }

    fn render_method(&self, md: &mut String) {
        let m = self.machine;
        let _ = writeln!(md, "## How it was measured\n");
        let _ = writeln!(
            md,
            "Machine: {}, {} cores, {} RAM, {}; load average {} at the start, {} at the end (other work shared the \
             machine). {}; {}; {}. Built from {}.\n",
            m.cpu, m.cores, m.memory, m.kernel, m.load, self.load_after, m.rustc, m.python, m.cargo_lambda, m.source
        );
        let _ = writeln!(md, "{}", METHOD.replace("{FLOOR}", &format!("{:.1}", self.floor_kib / 1024.0)));
        let sizes: Vec<String> = self.options.groups.iter().map(|g| g.to_string()).collect();
        let _ = writeln!(md, "Commands (`cargo xtask bench --groups {}` ran all of them):\n", sizes.join(","));
        let _ = writeln!(md, "```sh");
        for c in self.build_commands {
            let _ = writeln!(md, "{c}");
        }
        for (what, c) in self.commands {
            let _ = writeln!(md, "# {what}\n{}", shorten_paths(c));
        }
        let _ = writeln!(md, "```");
    }
}

/// Where the bench's own part of BENCHMARKS.md starts and ends: the rest of the file (the
/// soak's figures, written from `cargo xtask soak`) is kept as it is.
const BLOCK_START: &str = "<!-- Written by `cargo xtask bench` from here to the end marker. -->";
const BLOCK_END: &str = "<!-- End of what `cargo xtask bench` writes. -->";

/// `existing` with the bench's block replaced by `block`; a file without the block gets it
/// after its title, and no file gets a title.
fn splice(existing: Option<&str>, block: &str) -> String {
    let block = format!("{BLOCK_START}\n\n{}\n\n{BLOCK_END}", block.trim());
    let Some(text) = existing.filter(|t| !t.trim().is_empty()) else {
        return format!("# Benchmarks\n\n{block}\n");
    };
    if let (Some(start), Some(end)) = (text.find(BLOCK_START), text.find(BLOCK_END)) {
        if start < end {
            return format!("{}{block}{}", &text[..start], &text[end + BLOCK_END.len()..]);
        }
    }
    match text.split_once('\n') {
        Some((title, rest)) if title.starts_with("# ") => format!("{title}\n\n{block}\n\n{}\n", rest.trim()),
        _ => format!("# Benchmarks\n\n{block}\n\n{}\n", text.trim()),
    }
}

/// Command lines without the machine-specific prefix of the target directory.
fn shorten_paths(command: &str) -> String {
    let home = std::env::var("HOME").unwrap_or_default();
    if home.is_empty() {
        command.to_string()
    } else {
        command.replace(&home, "~")
    }
}

const CALLS_MINIMUM: &str = "\
What the contract needs, call by call, for a person's run with one Config rule and one alarm watched and \
one observation (DESIGN.md's lifecycle and safety principles):

| step | calls | needed for |
|---|---|---|
| list opted-in groups | 1 per page (1,000 groups) | plan: server-side tag filter, every page |
| list active experiments | 1 per page | pre-flight maximum, and skipping busy groups |
| alarm states | 1 | pre-flight: an alarm detector already in ALARM cannot show a new detection |
| Config compliance of the chosen group | 1 per Config rule | plan: a group already NON_COMPLIANT is not eligible |
| the chosen group, read again | 1 | the opt-in tag re-checked right before the write |
| authorize, tagged at creation | 1 | inject, the durable record on the rule |
| marker on the group | 1 | the record the judge finds whatever happens to the rule's tags |
| active experiments, counted again | 1 | two starters racing past the maximum step back |
| each observation | 4 | the opt-in tag (owners opting out close it), the rule by id, one per detector kind |
| revert | 3 | ownership read, revoke by rule id, read-back verifying it is gone |
| record | 2 | CloudWatch metrics, one SNS message |
| unmark | 1 | only after the port is closed and the outcome recorded |
| **total** | **18** | |

The inject function is the first eight rows plus its announcement (CloudWatch and SNS): 10. A judge tick \
needs, per tick, the marked groups and the tagged rules (2), and per watched experiment one reading per \
detector kind; the by-id read of each marked rule repeats what the tag listing returned unless someone \
stripped the rule's tags, which is why it is kept. A concluding tick adds the revert (3), the final \
readings, CloudWatch and SNS, removing the marker, the conclusion marks on the group (`CreateTags`: \
concluded, counted, recorded) and, before counting, a read-back of the metrics (`GetMetricStatistics`), \
which let a later tick finish a crashed one without deciding, counting or publishing twice. The original made 3 calls (2 without the revoke this re-creation adds), and none of these \
checks. The count of calls is therefore at the contract's minimum; what costs wall time is how many of \
them wait for each other.
";

const GAPS: &str = "\
**Wall time at the smallest size.** On the emulator each API call is a full round trip through the lab \
to moto (a Python server): milliseconds to tens of milliseconds. The Rust processes start in \
milliseconds, so the wall time of `chaoslingr run` and of the inject function is their *sequential* round \
trips; the original's is mostly the Python interpreter importing boto3 and building one client, then 3 \
calls. The calls themselves are all needed (see above), and independent ones go out together (the \
sequences above): the pre-flight reads (opted-in groups, active experiments, alarm states) in one round \
trip; the chosen group's Config compliance with its opt-in re-read, which stays the last read before the \
write; the group marker with the re-count of active experiments after the authorize; the announcement \
(CloudWatch with SNS); each observation of a person's run (the opt-in read, the rule by its id and the \
detectors). What is left in sequence stays there for a guarantee: the marker holds the rule id only the \
authorize returns; announcing waits for the re-count (a starter that steps back must not announce an \
experiment that never ran); the revoke waits for the ownership read and the read-back for the revoke; \
unmarking waits for the record (a crash between them would lose the outcome). Past that, the inject \
function's wall time on the emulator is its cold start plus 5 round trips to moto, and `chaoslingr run`'s \
its start plus 10 (with one observation). The wall-time ratio at this size therefore sets Python's start-up \
against our round trips to moto: for `chaoslingr run` to reach 10×, its whole path would have to fit in about \
5 sequential round trips, which the checks above do not allow. Against AWS every sequential call also costs \
network time, on both sides, so the wall ratio there is smaller than here; the CPU and memory ratios are the \
ones that carry over, since they do not depend on the emulator.
";

const GAPS_SCALE: &str = "\
**Growing with the number of groups.** The original downloads and parses every security group of the \
account on every run (one unpaginated `DescribeSecurityGroups`, filtered on the client), so its CPU and \
memory grow with all groups; ChaoSlingr for Rust asks EC2 for the opted-in groups only. On the emulator \
the other filtered calls (rules by tag, a group or rule by id) make moto scan every group and rule on the \
server, which costs wall time there but no client CPU; the wall ratio at large sizes is therefore a \
property of moto, and EC2 answers those filtered calls from indexes.

**Functions.** The release profile optimises for size across crates (`opt-level = \"s\"`, fat LTO, one \
codegen unit, stripped), and the functions and the CLI run on one thread (`current_thread`): that took the \
binaries from 15–21 MB to 8–12 MB, the zips from 5.4–7.4 MB to 3.2–4.6 MB, and the cold starts and peak \
RSS under the targets. A cold start is mostly loading, not work: mapping the binary, and the TLS set-up of \
the AWS SDK's HTTP client reading the system's CA certificates even though the endpoint here is plain \
http (the `CA bundle only` column shows what the one-file-per-certificate directory of this host costs). \
The judge's zip is the one still over 4 MB: it links EC2, Config, CloudWatch, Security Hub and SNS, and \
its `.text` is almost all AWS SDK code (the serialisers and deserialisers of every operation it calls). \
What would reach 4 MB: `opt-level = \"z\"` for the functions (smaller code, still network-bound), or \
moving the read-only detector calls (Config, Security Hub) onto a smaller hand-written client; neither is \
measured here. Recompressing the zips at the highest deflate level saves under 1%.
";

const METHOD: &str = "\
- **Emulator.** A private moto server ([`infra/bench/emulator.py`](infra/bench/emulator.py): \
  `moto_server` with two lookups by id indexed, the tags of one resource and a security group by id, \
  answered from moto's own dictionaries instead of scans over every tag and every group; the answers \
  are the same, but at 10,000 groups the tag scan made every listing outlast the SDK's 20 s attempt \
  timeout, and the group scan made seeding quadratic) and a private detection lab (`chaoslingr-lab --scan-interval 1h \
  --record-calls FILE`, optimised build, profile `bench-lab`) on 127.0.0.1, started for this run only. Every subject talks to the \
  lab, which forwards to moto and logs each call with its access key. The lab's periodic scan is off so \
  that it does not read every group while a subject is measured; its Config API and firewall alarm still \
  answer. Groups are created straight on moto (`probe.py seed`: sequential query-API calls on one \
  connection, since moto is not safe under concurrent `CreateSecurityGroup`), incrementally from one size \
  to the next.
- **original.py** (the baseline): `infra/.venv/bin/python infra/bench/original.py` with boto3 from the \
  same venv: one unpaginated `DescribeSecurityGroups`, the opt-in tag filtered on the client, \
  `random.choice`, tcp or udp, a range of 1–6 ports within 10000–65000 from 0.0.0.0/0, \
  `AuthorizeSecurityGroupIngress`, then `RevokeSecurityGroupIngress` of the same permission. Its bytecode \
  is cached (one unmeasured warm-up run), as in a Lambda Python runtime.
- **`chaoslingr run`** (release): `run --detector config:vpc-sg-open-only-to-authorized-ports --detector \
  alarm:chaoslingr-lab-firewall --window 10s --poll-interval 5s --topic-arn ARN --json`. The shortest \
  window is 10 s and nothing in the lab fires during a run, so the bench sends SIGINT the moment the run \
  announces the open port (after its first observation): the Ctrl-C path reverts, verifies, records the \
  outcome (`aborted`, to CloudWatch and SNS) and unmarks the group, exactly as at the end of a window. \
  So the figures cover pre-flight, pick, inject, one observation, revert, record; no product setting or \
  validation was changed for the bench.
- **inject function** (release, cold): spawned with the Lambda environment against the loopback Runtime \
  API, invoked once with `{}` (the schedule's event); settings `CHAOSLINGR_DETECTORS` (the same two \
  detectors), `CHAOSLINGR_WINDOW=10s`, `CHAOSLINGR_TOPIC_ARN`. Wall time is spawn to its response, so it \
  includes the cold start, as the original's includes Python's start-up. It does not revert (the judge \
  does, later): its figures cover pre-flight, pick, inject, mark, announce. Each run is followed by a judge \
  tick while the experiment is watched, and, after the deadline, by the judge tick that concludes it.
- **Time and memory.** `probe.py spawn` (original.py, `chaoslingr run`) forks the subject from a \
  minimal interpreter ([`infra/bench/spawn.py`](infra/bench/spawn.py)) and reaps it with `os.wait4`: \
  wall time from the fork to the reap, CPU `ru_utime + ru_stime`, peak RSS `ru_maxrss`. Linux counts into \
  `ru_maxrss` what the child held before its exec, so the spawner stays small: `/bin/true` spawned the \
  same way reports {FLOOR} MiB, below every subject. `probe.py lambda` reaps each function with \
  `os.wait4` for CPU and reads its peak RSS as `VmHWM` from `/proc/PID/status` after each answer (the \
  function then idles, so the mark is final); wall time runs from the spawn to the response.
- **Order.** At each size the baseline and `chaoslingr run` alternate run by run, then the scheduled runs \
  follow; medians are reported, and ratios are taken between medians of the same run.
";

#[cfg(test)]
mod tests {
    use super::*;

    fn call(action: &str, start: f64, end: f64) -> Traced {
        Traced { action: action.to_string(), start, end }
    }

    #[test]
    fn the_bench_replaces_only_its_own_block() {
        let fresh = splice(None, "## Headline\n\nfigures 1\n");
        assert!(fresh.starts_with("# Benchmarks\n\n"), "{fresh}");
        assert!(fresh.contains("figures 1") && fresh.contains(BLOCK_START) && fresh.contains(BLOCK_END));

        let with_soak = format!("{fresh}\n## Soak\n\nno port left open\n");
        let again = splice(Some(&with_soak), "## Headline\n\nfigures 2\n");
        assert!(again.contains("figures 2") && !again.contains("figures 1"), "{again}");
        assert!(again.ends_with("## Soak\n\nno port left open\n"), "{again}");
        assert_eq!(again.matches(BLOCK_START).count(), 1);

        // A file written before the markers keeps its title and everything in it.
        let old = splice(Some("# Benchmarks\n\n## Soak\n\nfigures\n"), "new");
        assert!(old.starts_with(&format!("# Benchmarks\n\n{BLOCK_START}\n\nnew\n\n{BLOCK_END}")), "{old}");
        assert!(old.ends_with("## Soak\n\nfigures\n"), "{old}");
    }

    #[test]
    fn overlapping_calls_form_one_round_trip() {
        // GIVEN a listing, two reads sent together, and a write after both answered
        let calls = [
            call("ec2:DescribeSecurityGroups", 0.0, 1.0),
            call("ec2:DescribeSecurityGroupRules", 1.1, 2.0),
            call("cloudwatch:DescribeAlarms", 1.15, 2.5),
            call("ec2:AuthorizeSecurityGroupIngress", 2.6, 3.0),
        ];
        // WHEN they are grouped THEN the two reads share a round trip
        let rounds = round_trips(&calls);
        assert_eq!(
            rounds,
            vec![
                vec!["DescribeSecurityGroups".to_string()],
                vec!["DescribeSecurityGroupRules".to_string(), "DescribeAlarms".to_string()],
                vec!["AuthorizeSecurityGroupIngress".to_string()],
            ]
        );
        assert!(round_trips(&[]).is_empty());
    }

    #[test]
    fn reads_trace_lines_and_probe_figures() {
        let line = r#"{"access_key": "BX1", "action": "ec2:CreateTags", "start": 1764650000.25, "end": 1764650000.5}"#;
        assert_eq!(json_number_field(line, "start"), Some(1_764_650_000.25));
        assert_eq!(json_number_field(line, "end"), Some(1_764_650_000.5));
        assert_eq!(json_number_field(line, "missing"), None);
        let figures = Figures::parse("wall_ms 12.5\nexit 130\ninterrupted_at_ms never\n");
        assert_eq!(figures.num("wall_ms").unwrap(), 12.5);
        assert_eq!(figures.num("exit").unwrap(), 130.0);
        assert!(figures.num("interrupted_at_ms").is_err());
        assert!(figures.text("cpu_ms").is_err());
    }

    #[test]
    fn medians_labels_and_options() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
        assert_eq!(groups_label(100), "100");
        assert_eq!(groups_label(10_000), "10,000");
        let args: Vec<String> = ["--groups", "1000,100,1_000", "--runs", "2", "--no-build"].map(String::from).to_vec();
        let o = parse_options(&args).unwrap();
        assert_eq!(o.groups, vec![100, 1000]);
        assert_eq!(o.runs, Some(2));
        assert!(!o.build);
        assert!(parse_options(&["--runs".to_string(), "0".to_string()]).is_err());
        assert!(parse_options(&["--what".to_string()]).is_err());
    }
}
