//! Harness for the end-to-end tests: a private AWS API emulator (moto server) on a free
//! loopback port per test, seeding helpers on the official SDK, and the `chaoslingr`
//! binary run the way a user runs it.
//!
//! The emulator is installed by `cargo xtask test` (or `infra/emulator.sh install`). A
//! missing emulator or binary is a test failure with instructions, never a skip.

use std::future::Future;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ec2::types::{
    Filter, IpPermission, IpRange, ResourceType, RuleAction, SecurityGroupRule, Tag, TagSpecification,
};
use std::io::{Read, Write};

pub mod runtime_api;
pub const REGION: &str = "us-east-1";
pub const OPT_IN: &str = "chaoslingr:opt-in";
pub const EXPERIMENT_TAG: &str = "chaoslingr:experiment-id";
/// The target accounts of the many-accounts tests, their regions, and the role assumed
/// in each.
pub const TARGET_ACCOUNTS: [&str; 3] = ["111111111111", "222222222222", "333333333333"];
pub const TARGET_REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];
pub const TARGET_ROLE: &str = "chaoslingr-target";

// ---- waiting: for a condition, or for time itself ----

/// How often [`poll_until`] probes.
pub const POLL_EVERY: Duration = Duration::from_millis(100);

/// What one probe of [`poll_until`] saw: ready, with a value, or not yet, with what it saw
/// instead (for the message when the wait times out).
pub trait Observation {
    type Ready;
    fn ready(self) -> Result<Self::Ready, String>;
}

/// `true` is ready.
impl Observation for bool {
    type Ready = ();
    fn ready(self) -> Result<(), String> {
        if self {
            Ok(())
        } else {
            Err("false".into())
        }
    }
}

/// `Some` is ready.
impl<T> Observation for Option<T> {
    type Ready = T;
    fn ready(self) -> Result<T, String> {
        self.ok_or_else(|| "None".into())
    }
}

/// `Ok` is ready; `Err` is what was seen instead (a state, or a call that failed).
impl<T, E: std::fmt::Debug> Observation for Result<T, E> {
    type Ready = T;
    fn ready(self) -> Result<T, String> {
        self.map_err(|seen| format!("{seen:?}"))
    }
}

/// Waits for a condition rather than for a fixed time: awaits `probe()` at once, then
/// every [`POLL_EVERY`], until it is ready (`true`, `Some(v)` or `Ok(v)`; see
/// [`Observation`]), and returns its value.
///
/// Panics once `timeout` has passed, naming `what` was awaited and the last observation,
/// so a failure says what never happened and what was seen instead. The probe is asked
/// one last time at the deadline. Keep `timeout` generous: it only bounds a failing test;
/// a passing one waits only as long as the condition takes.
///
/// ```ignore
/// poll_until("the remediator to revoke the rule", Duration::from_secs(30), || async {
///     experiment_rules(&emu).await.is_empty()
/// })
/// .await;
/// ```
pub async fn poll_until<O, F>(what: &str, timeout: Duration, probe: impl FnMut() -> F) -> O::Ready
where
    O: Observation,
    F: Future<Output = O>,
{
    match poll_within(timeout, probe).await {
        Ok(ready) => ready,
        Err(last) => panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}"),
    }
}

/// [`poll_until`] without the panic: `Err` holds the last observation once `timeout` has
/// passed, for a caller that tries something else then.
pub async fn poll_within<O, F>(timeout: Duration, mut probe: impl FnMut() -> F) -> Result<O::Ready, String>
where
    O: Observation,
    F: Future<Output = O>,
{
    let deadline = Instant::now() + timeout;
    loop {
        // On the heap: a probe of a few SDK calls is a large future in a debug build, and
        // the test awaiting this one may be large already.
        let seen = match Box::pin(probe()).await.ready() {
            Ok(ready) => return Ok(ready),
            Err(seen) => seen,
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(seen);
        }
        tokio::time::sleep(POLL_EVERY.min(deadline - now)).await;
    }
}

/// Lets real time pass: for a test that needs the wall clock itself to move on (a window
/// or deadline that must elapse, a time-to-detect that must be measurable), never for
/// waiting on something to happen (use [`poll_until`]). `why` says which, at the call
/// site and in the test's output.
pub async fn let_time_pass(why: &str, duration: Duration) {
    eprintln!("letting {duration:?} pass: {why}");
    tokio::time::sleep(duration).await;
}

/// The checkout these tests run in. `cargo test` says so at run time; the path compiled in
/// is only a fallback, because a test binary reused from a shared target directory may
/// have been compiled in another checkout.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir.parent().expect("tests/ is inside the workspace").to_path_buf()
}

fn moto_server() -> PathBuf {
    let path = std::env::var_os("CHAOSLINGR_MOTO_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("infra/.venv/bin/moto_server"));
    assert!(
        path.exists(),
        "the AWS API emulator is not installed at {}; run `cargo xtask test` (or `infra/emulator.sh install`) first",
        path.display()
    );
    path
}

/// Loads `html` in headless Chromium (`infra/browser.sh check`, which installs Debian's
/// chromium and the pinned playwright-core when missing), with JavaScript off and on, and
/// returns its verdict: every chart in `charts` drawn, no request but the page itself, no
/// console error, no script. Writes a full-page PNG to `screenshot` when given.
pub fn browser_check(html: &Path, charts: &[&str], screenshot: Option<&Path>) -> (bool, serde_json::Value, String) {
    let mut cmd = std::process::Command::new(workspace_root().join("infra/browser.sh"));
    cmd.arg("check").arg(html).args(["--charts", &charts.join(",")]);
    if let Some(png) = screenshot {
        cmd.arg("--screenshot").arg(png);
    }
    let out = cmd.output().expect("run infra/browser.sh check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let verdict = stdout.lines().rev().find_map(|l| serde_json::from_str(l).ok()).unwrap_or(serde_json::Value::Null);
    (out.status.success(), verdict, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The `chaoslingr` binary under test.
pub fn chaoslingr_bin() -> PathBuf {
    let path = std::env::var_os("CHAOSLINGR_BIN").map(PathBuf::from).unwrap_or_else(|| {
        // target/debug/deps/e2e-HASH -> target/debug/chaoslingr
        let exe = std::env::current_exe().expect("test executable path");
        exe.parent().and_then(Path::parent).expect("target/debug").join("chaoslingr")
    });
    assert!(
        path.exists(),
        "the chaoslingr binary is not built at {}; run `cargo xtask test` (it builds it first)",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind a loopback port").local_addr().expect("local addr").port()
}

/// Whether process `pid` holds the listening TCP socket of `port` (Linux: its socket
/// inodes against /proc/net/tcp). Elsewhere it cannot tell and answers true.
fn listens_on(pid: u32, port: u16) -> bool {
    let Ok(tcp) = std::fs::read_to_string("/proc/net/tcp") else { return true };
    let inodes: Vec<String> = tcp
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let local_port = u16::from_str_radix(f.get(1)?.rsplit(':').next()?, 16).ok()?;
            let inode = f.get(9)?;
            (local_port == port && f.get(3) == Some(&"0A")).then(|| format!("socket:[{inode}]"))
        })
        .collect();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return false };
    fds.filter_map(Result::ok)
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .any(|link| inodes.iter().any(|i| link.to_string_lossy() == i.as_str()))
}

fn ready(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(s.read(&mut buf), Ok(n) if n >= 12 && buf[..12].ends_with(b"200"))
}

/// A private emulator, killed when dropped.
pub struct Emulator {
    child: Child,
    pub endpoint: String,
    pub config: SdkConfig,
}

impl Emulator {
    pub async fn start() -> Emulator {
        let server = moto_server();
        let mut last_err = String::new();
        for _attempt in 0..3 {
            let port = free_port();
            let mut child = std::process::Command::new(&server)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                // Each request's account comes from its credentials (those from
                // `AssumeRole` act in the role's account), never from a fixed one.
                .env_remove("MOTO_ACCOUNT_ID")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start moto_server");
            // Until it answers, or exits (another process took the port first).
            let up = poll_within(Duration::from_secs(30), || {
                // Ours only when our child holds the port: two tests handed the same free
                // port would otherwise both use the first emulator to bind it.
                let seen = if ready(port) && listens_on(child.id(), port) {
                    Some(Ok(()))
                } else {
                    child.try_wait().ok().flatten().map(Err)
                };
                std::future::ready(seen)
            })
            .await;
            match up {
                Ok(Ok(())) => {
                    let endpoint = format!("http://127.0.0.1:{port}");
                    let config = sdk_config(&endpoint).await;
                    return Emulator { child, endpoint, config };
                }
                Ok(Err(status)) => last_err = format!("moto_server exited with {status}"),
                Err(_) => last_err = "moto_server did not become ready in 30s".into(),
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("could not start the emulator: {last_err}");
    }

    pub fn ec2(&self) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::new(&self.config)
    }
    pub fn cloudwatch(&self) -> aws_sdk_cloudwatch::Client {
        aws_sdk_cloudwatch::Client::new(&self.config)
    }
    pub fn sns(&self) -> aws_sdk_sns::Client {
        aws_sdk_sns::Client::new(&self.config)
    }
    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.config)
    }
    /// S3, path-style (the emulator has no per-bucket host names).
    pub fn s3(&self) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&self.config).force_path_style(true).build())
    }

    /// Writes a seeded history of `count` outcome objects over the last `weeks` weeks into
    /// the archive at `archive` (`s3://BUCKET/PREFIX`), keyed as the archive function keys
    /// them (`infra/seed.py history`).
    pub fn seed_history(&self, archive: &str, count: usize, weeks: usize, seed: u64) -> serde_json::Value {
        let python = moto_server().with_file_name("python");
        let out = std::process::Command::new(&python)
            .arg(workspace_root().join("infra/seed.py"))
            .args(["history", "--endpoint", &self.endpoint, "--archive", archive])
            .args(["--count", &count.to_string(), "--weeks", &weeks.to_string(), "--seed", &seed.to_string()])
            .output()
            .expect("run infra/seed.py history");
        assert!(out.status.success(), "seed.py history failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("seed.py history prints JSON")
    }

    /// `chaoslingr` with this emulator as its only AWS endpoint and nothing inherited
    /// from the caller's AWS or ChaoSlingr environment.
    pub fn cli(&self) -> tokio::process::Command {
        cli_at(&self.endpoint)
    }

    /// An EC2 client in a target account and region, as its role ([`TARGET_ROLE`]) sees it.
    pub async fn ec2_in(&self, account: &str, region: &str) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::new(&self.account(account, region, TARGET_ROLE).await)
    }

    /// Creates, in each `(account, region, n)` of `layout`, `n` opted-in groups and one
    /// opted-out group, one call at a time (the emulator is not safe under concurrent
    /// group creation). Returns each opted-in group's account and region.
    pub async fn seed_targets(
        &self,
        layout: &[(&str, &str, usize)],
    ) -> std::collections::BTreeMap<String, (String, String)> {
        let mut groups = std::collections::BTreeMap::new();
        for (account, region, opted_in) in layout {
            let ec2 = self.ec2_in(account, region).await;
            let vpc = create_vpc_on(&ec2).await;
            for i in 0..*opted_in {
                let g = create_group_on(&ec2, &vpc, &format!("opted-{i}"), Some("true")).await;
                groups.insert(g, (account.to_string(), region.to_string()));
            }
            create_group_on(&ec2, &vpc, "opted-out", Some("false")).await;
        }
        groups
    }

    /// The SDK configuration of another account (and region) on this emulator: the
    /// credentials of `AssumeRole` into `role` there, which the emulator files under that
    /// account, as AWS would act in it.
    pub async fn account(&self, account: &str, region: &str, role: &str) -> SdkConfig {
        let arn = format!("arn:aws:iam::{account}:role/{role}");
        let provider = aws_config::sts::AssumeRoleProvider::builder(arn)
            .session_name("e2e-seed")
            .region(Region::new(REGION))
            .configure(&self.config)
            .build()
            .await;
        self.config
            .to_builder()
            .region(Region::new(region.to_string()))
            .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(provider))
            .build()
    }
}

/// `chaoslingr` with `endpoint` as its only AWS endpoint and nothing inherited from the
/// caller's AWS or ChaoSlingr environment.
pub fn cli_at(endpoint: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(chaoslingr_bin());
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().to_string();
        if k.starts_with("AWS_") || k.starts_with("CHAOSLINGR_") || k == "RUST_LOG" {
            cmd.env_remove(&k);
        }
    }
    let empty = workspace_root().join("tests/harness/empty-aws-config");
    cmd.env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", &empty)
        .env("AWS_SHARED_CREDENTIALS_FILE", &empty)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// The `chaoslingr-lab` binary under test.
pub fn lab_bin() -> PathBuf {
    let path = std::env::var_os("CHAOSLINGR_LAB_BIN").map(PathBuf::from).unwrap_or_else(|| {
        let exe = std::env::current_exe().expect("test executable path");
        exe.parent().and_then(Path::parent).expect("target/debug").join("chaoslingr-lab")
    });
    assert!(
        path.exists(),
        "the chaoslingr-lab binary is not built at {}; run `cargo xtask test` (it builds it first)",
        path.display()
    );
    path
}

/// The function policies the lab enforces: `$CHAOSLINGR_IAM_POLICIES`.
pub fn iam_policies() -> PathBuf {
    let path = std::env::var_os("CHAOSLINGR_IAM_POLICIES").map(PathBuf::from).unwrap_or_else(|| {
        panic!(
            "CHAOSLINGR_IAM_POLICIES is not set: the function tests run with IAM enforced; run `cargo xtask test` \
             (or `infra/terraform.sh policies target/chaoslingr-iam-policies.json` and set CHAOSLINGR_IAM_POLICIES to it)"
        )
    });
    assert!(
        path.is_file(),
        "CHAOSLINGR_IAM_POLICIES={} does not exist; run `infra/terraform.sh policies {}`",
        path.display(),
        path.display()
    );
    path
}

/// The IAM evaluator the lab runs, installed by `infra/iam.sh install`.
pub fn iam_evaluator() -> PathBuf {
    let root = workspace_root();
    let installed = root.join("infra/.node/node_modules/@cloud-copilot/iam-simulate/package.json");
    assert!(
        installed.is_file(),
        "the IAM evaluator is not installed; run `cargo xtask test` (or `infra/iam.sh install`)"
    );
    root.join("infra/iam/evaluate.mjs")
}

/// Decodes an encoded authorization failure message with STS `DecodeAuthorizationMessage`
/// at `endpoint` (query protocol), signed with `access_key`: the decoded JSON, or the HTTP
/// status and body of the error.
pub fn decode_authorization_message(
    endpoint: &str,
    access_key: &str,
    token: &str,
) -> Result<serde_json::Value, String> {
    let addr = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let body = format!("Action=DecodeAuthorizationMessage&Version=2011-06-15&EncodedMessage={token}");
    let request = format!(
        "POST / HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded; charset=utf-8\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential={access_key}/20261201/{REGION}/sts/aws4_request, SignedHeaders=host, Signature=0\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    stream.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).map_err(|e| e.to_string())?;
    let (head, xml) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(format!("{}: {xml}", head.lines().next().unwrap_or_default()));
    }
    let decoded = xml
        .split("<DecodedMessage>")
        .nth(1)
        .and_then(|rest| rest.split("</DecodedMessage>").next())
        .ok_or_else(|| format!("no DecodedMessage in {xml}"))?;
    let decoded = decoded
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    serde_json::from_str(&decoded).map_err(|e| format!("DecodedMessage is not JSON ({e}): {decoded}"))
}

/// The detection lab in front of an emulator, killed when dropped. Point the CLI at
/// `endpoint` (see [`Lab::cli`]): every service is served there.
pub struct Lab {
    child: Child,
    pub endpoint: String,
    /// The lab's first line of output (its settings).
    pub banner: String,
    _stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl Lab {
    /// Starts `chaoslingr-lab --upstream <emulator> --scan-interval 250ms ARGS` and waits
    /// until it listens. Set `CHAOSLINGR_LAB_LOG=1` to see its log on stderr.
    pub fn start(emu: &Emulator, args: &[&str]) -> Lab {
        use std::io::BufRead;
        let mut cmd = std::process::Command::new(lab_bin());
        cmd.args(["--upstream", &emu.endpoint, "--scan-interval", "250ms"]).args(args);
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().to_string();
            if k.starts_with("AWS_") || (k.starts_with("CHAOSLINGR_") && k != "CHAOSLINGR_LAB_LOG") {
                cmd.env_remove(&k);
            }
        }
        let log = std::env::var_os("CHAOSLINGR_LAB_LOG").is_some();
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(if log { Stdio::inherit() } else { Stdio::null() })
            .spawn()
            .expect("start chaoslingr-lab");
        let mut stdout = std::io::BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut banner = String::new();
        // The lab prints its banner once listening, or exits with an error.
        let n = stdout.read_line(&mut banner).expect("read the lab's first line");
        if n == 0 {
            let status = child.wait().expect("lab exit status");
            panic!("chaoslingr-lab exited ({status}) before listening; rerun with CHAOSLINGR_LAB_LOG=1");
        }
        let endpoint = banner
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected first line from chaoslingr-lab: {banner}"))
            .to_string();
        Lab { child, endpoint, banner, _stdout: stdout }
    }

    /// Starts the lab with IAM enforced: the function policies rendered by Terraform core
    /// (`$CHAOSLINGR_IAM_POLICIES`, written by `cargo xtask test`) are evaluated for every
    /// request signed with a function's access key (`AKIDINJECT`, `AKIDJUDGE`,
    /// `AKIDNOTIFY`). A missing policies file or evaluator fails the test.
    pub fn start_enforced(emu: &Emulator, args: &[&str]) -> Lab {
        let policies = iam_policies();
        let evaluator = iam_evaluator();
        let mut all = vec![
            "--enforce-iam",
            policies.to_str().expect("UTF-8 path"),
            "--iam-evaluator",
            evaluator.to_str().expect("UTF-8 path"),
        ];
        all.extend_from_slice(args);
        Lab::start(emu, &all)
    }

    /// [`Lab::start_enforced`], recording every call to `$CHAOSLINGR_CALLS_LOG` when set
    /// (`cargo xtask test` sets it and then fails on any call of a function or a target
    /// role that was denied).
    pub fn start_recorded(emu: &Emulator, args: &[&str]) -> Lab {
        let log = std::env::var("CHAOSLINGR_CALLS_LOG").ok();
        let mut args = args.to_vec();
        if let Some(path) = &log {
            args.extend(["--record-calls", path.as_str()]);
        }
        Lab::start_enforced(emu, &args)
    }

    /// `chaoslingr` pointed at the lab.
    pub fn cli(&self) -> tokio::process::Command {
        cli_at(&self.endpoint)
    }

    /// Runs `chaoslingr` against the lab to completion (at most `limit`).
    pub async fn run_cli(&self, args: &[&str], limit: Duration) -> Output {
        run_cli_at(&self.endpoint, args, &[], limit).await
    }
}

impl Lab {
    /// One request to the lab's admin API (`/_lab/...`, unsigned): the status and JSON body.
    pub async fn admin(&self, method: &str, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = self.endpoint.trim_start_matches("http://").trim_end_matches('/').to_string();
        let text = if body.is_null() && method == "GET" { String::new() } else { body.to_string() };
        let request = format!(
            "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
            text.len()
        );
        let mut stream = tokio::net::TcpStream::connect(&addr).await.expect("connect to the lab's admin API");
        stream.write_all(request.as_bytes()).await.expect("send to the lab's admin API");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.expect("read the lab's admin answer");
        let answer = String::from_utf8_lossy(&answer);
        let (head, json) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        (status, serde_json::from_str(json).unwrap_or(serde_json::Value::Null))
    }

    /// Arms a hold (`{"action": .., "phase": "before"|"after", "access_key"?, "contains"?,
    /// "nth"?}`) and returns its id.
    pub async fn arm_hold(&self, spec: serde_json::Value) -> usize {
        let (status, v) = self.admin("POST", "/_lab/holds", &spec).await;
        assert_eq!(status, 200, "arming {spec}: {v}");
        v["id"].as_u64().expect("hold id") as usize
    }

    /// Waits up to `limit` for hold `id` to hold a request: its state (`holding` once it does).
    pub async fn wait_held(&self, id: usize, limit: Duration) -> serde_json::Value {
        let path = format!("/_lab/holds/{id}?wait={}", limit.as_secs_f64());
        self.admin("GET", &path, &serde_json::Value::Null).await.1
    }

    /// Releases hold `id`: the held connection is closed, never answered.
    pub async fn release_hold(&self, id: usize) {
        let (status, v) = self.admin("POST", &format!("/_lab/holds/{id}/release"), &serde_json::json!({})).await;
        assert_eq!(status, 200, "release {id}: {v}");
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn sdk_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(REGION))
        .credentials_provider(aws_sdk_ec2::config::Credentials::new("testing", "testing", None, None, "e2e"))
        .load()
        .await
}

/// The finished output of a CLI run.
#[derive(Debug)]
pub struct Output {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}\nstderr:\n{}", self.stdout, self.stderr))
    }
}

/// Runs the CLI to completion (at most `limit`).
pub async fn run_cli(emu: &Emulator, args: &[&str], env: &[(&str, &str)], limit: Duration) -> Output {
    run_cli_at(&emu.endpoint, args, env, limit).await
}

/// Runs the CLI against `endpoint` to completion (at most `limit`).
pub async fn run_cli_at(endpoint: &str, args: &[&str], env: &[(&str, &str)], limit: Duration) -> Output {
    let mut cmd = cli_at(endpoint);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("spawn chaoslingr");
    finish(child, limit).await
}

/// Waits for a spawned CLI to finish (at most `limit`).
pub async fn finish(child: tokio::process::Child, limit: Duration) -> Output {
    let out = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("chaoslingr did not finish within {limit:?}"))
        .expect("wait for chaoslingr");
    Output {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

// ---- seeding and inspection on the SDK ----

pub async fn create_vpc(emu: &Emulator) -> String {
    create_vpc_on(&emu.ec2()).await
}

pub async fn create_vpc_on(ec2: &aws_sdk_ec2::Client) -> String {
    let out = ec2.create_vpc().cidr_block("10.42.0.0/16").send().await.expect("create vpc");
    out.vpc().and_then(|v| v.vpc_id()).expect("vpc id").to_string()
}

/// Creates a group; `opt_in` is the opt-in tag's value, or `None` for no tag.
pub async fn create_group(emu: &Emulator, vpc: &str, name: &str, opt_in: Option<&str>) -> String {
    create_group_on(&emu.ec2(), vpc, name, opt_in).await
}

/// [`create_group`] with any EC2 client (another account or region).
pub async fn create_group_on(ec2: &aws_sdk_ec2::Client, vpc: &str, name: &str, opt_in: Option<&str>) -> String {
    let mut req = ec2.create_security_group().group_name(name).description(format!("e2e {name}")).vpc_id(vpc);
    if let Some(v) = opt_in {
        req = req.tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::SecurityGroup)
                .tags(Tag::builder().key(OPT_IN).value(v).build())
                .build(),
        );
    }
    req.send().await.expect("create security group").group_id().expect("group id").to_string()
}

pub async fn add_ingress(emu: &Emulator, group: &str, protocol: &str, from: i32, to: i32, cidr: &str) {
    emu.ec2()
        .authorize_security_group_ingress()
        .group_id(group)
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol(protocol)
                .from_port(from)
                .to_port(to)
                .ip_ranges(IpRange::builder().cidr_ip(cidr).build())
                .build(),
        )
        .send()
        .await
        .expect("add ingress");
}

/// Plants an experiment rule the way ChaoSlingr writes one, with the given tags: tcp from
/// 0.0.0.0/0, described as experiment `chaoslingr:experiment-id`'s.
pub async fn plant_experiment(emu: &Emulator, group: &str, port: i32, tags: &[(&str, &str)]) -> String {
    let id = tags.iter().find(|(k, _)| *k == "chaoslingr:experiment-id").map(|(_, v)| *v).unwrap_or_default();
    let description = format!("ChaoSlingr experiment {id} - unauthorized by design");
    plant_rule(emu, group, port, "0.0.0.0/0", &description, tags).await
}

/// Plants any tcp rule with the given source, description and tags (a person's rule, or
/// one somebody tagged as an experiment's).
pub async fn plant_rule(
    emu: &Emulator,
    group: &str,
    port: i32,
    cidr: &str,
    description: &str,
    tags: &[(&str, &str)],
) -> String {
    let tags: Vec<Tag> = tags.iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build()).collect();
    let out = emu
        .ec2()
        .authorize_security_group_ingress()
        .group_id(group)
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(port)
                .to_port(port)
                .ip_ranges(IpRange::builder().cidr_ip(cidr).description(description).build())
                .build(),
        )
        .tag_specifications(
            TagSpecification::builder().resource_type(ResourceType::SecurityGroupRule).set_tags(Some(tags)).build(),
        )
        .send()
        .await
        .expect("plant experiment rule");
    out.security_group_rules()[0].security_group_rule_id().expect("rule id").to_string()
}

/// A group's tags, sorted.
pub async fn group_tags(emu: &Emulator, group: &str) -> Vec<(String, String)> {
    let out = emu.ec2().describe_security_groups().group_ids(group).send().await.expect("describe group");
    let mut tags: Vec<(String, String)> = out.security_groups()[0]
        .tags()
        .iter()
        .map(|t| (t.key().unwrap_or_default().to_string(), t.value().unwrap_or_default().to_string()))
        .collect();
    tags.sort();
    tags
}

/// Every ingress rule of a group, as comparable strings (`tcp 443-443 0.0.0.0/0 sgr-…`).
pub async fn ingress_of(emu: &Emulator, group: &str) -> Vec<String> {
    let out = emu
        .ec2()
        .describe_security_group_rules()
        .filters(Filter::builder().name("group-id").values(group).build())
        .send()
        .await
        .expect("describe rules");
    let mut rules: Vec<String> = out
        .security_group_rules()
        .iter()
        .filter(|r| !r.is_egress().unwrap_or(false))
        .map(|r| {
            format!(
                "{} {}-{} {} {}",
                r.ip_protocol().unwrap_or_default(),
                r.from_port().unwrap_or_default(),
                r.to_port().unwrap_or_default(),
                r.cidr_ipv4().or(r.cidr_ipv6()).unwrap_or_default(),
                r.security_group_rule_id().unwrap_or_default()
            )
        })
        .collect();
    rules.sort();
    rules
}

/// Every rule carrying the experiment-id tag.
pub async fn experiment_rules(emu: &Emulator) -> Vec<SecurityGroupRule> {
    experiment_rules_on(&emu.ec2()).await
}

/// [`experiment_rules`] with any EC2 client (another account or region).
pub async fn experiment_rules_on(ec2: &aws_sdk_ec2::Client) -> Vec<SecurityGroupRule> {
    ec2.describe_security_group_rules()
        .filters(Filter::builder().name("tag-key").values(EXPERIMENT_TAG).build())
        .send()
        .await
        .expect("describe experiment rules")
        .security_group_rules()
        .to_vec()
}

/// Polls until an experiment rule exists (the CLI injected), at most `limit`.
pub async fn wait_for_experiment_rule(emu: &Emulator, limit: Duration) -> SecurityGroupRule {
    poll_until("an experiment rule to appear", limit, || async { experiment_rules(emu).await.into_iter().next() }).await
}

// ---- network ACLs ----

/// Creates a custom network ACL as the lab's seed does: inbound tcp 443 from anywhere
/// allowed at rule 100, everything else denied by the default entries. `opt_in` is the
/// opt-in tag's value, or `None` for no tag.
pub async fn create_acl(emu: &Emulator, vpc: &str, opt_in: Option<&str>) -> String {
    let out = emu.ec2().create_network_acl().vpc_id(vpc).send().await.expect("create network ACL");
    let acl = out.network_acl().and_then(|a| a.network_acl_id()).expect("network ACL id").to_string();
    if let Some(v) = opt_in {
        emu.ec2()
            .create_tags()
            .resources(&acl)
            .tags(Tag::builder().key(OPT_IN).value(v).build())
            .send()
            .await
            .expect("tag the network ACL");
    }
    add_acl_entry(emu, &acl, 100, "6", (443, 443), true).await;
    acl
}

/// Adds one inbound entry from 0.0.0.0/0.
pub async fn add_acl_entry(emu: &Emulator, acl: &str, number: i32, protocol: &str, ports: (i32, i32), allow: bool) {
    emu.ec2()
        .create_network_acl_entry()
        .network_acl_id(acl)
        .rule_number(number)
        .egress(false)
        .protocol(protocol)
        .rule_action(if allow { RuleAction::Allow } else { RuleAction::Deny })
        .cidr_block("0.0.0.0/0")
        .port_range(aws_sdk_ec2::types::PortRange::builder().from(ports.0).to(ports.1).build())
        .send()
        .await
        .expect("create network ACL entry");
}

/// The inbound entries of an ACL as comparable strings (`100 allow 6 443-443 0.0.0.0/0`).
pub async fn acl_entries(emu: &Emulator, acl: &str) -> Vec<String> {
    let out = emu.ec2().describe_network_acls().network_acl_ids(acl).send().await.expect("describe network ACL");
    let mut entries: Vec<String> = out.network_acls()[0]
        .entries()
        .iter()
        .filter(|e| !e.egress().unwrap_or(false))
        .map(|e| {
            let ports = e.port_range().map(|p| format!("{}-{}", p.from().unwrap_or(0), p.to().unwrap_or(0)));
            format!(
                "{} {} {} {} {}",
                e.rule_number().unwrap_or_default(),
                e.rule_action().map(|a| a.as_str()).unwrap_or_default(),
                e.protocol().unwrap_or_default(),
                ports.unwrap_or_else(|| "all".into()),
                e.cidr_block().or(e.ipv6_cidr_block()).unwrap_or_default()
            )
        })
        .collect();
    entries.sort();
    entries
}

/// The tags of an ACL, sorted.
pub async fn acl_tags(emu: &Emulator, acl: &str) -> Vec<(String, String)> {
    let out = emu.ec2().describe_network_acls().network_acl_ids(acl).send().await.expect("describe network ACL");
    let mut tags: Vec<(String, String)> = out.network_acls()[0]
        .tags()
        .iter()
        .map(|t| (t.key().unwrap_or_default().to_string(), t.value().unwrap_or_default().to_string()))
        .collect();
    tags.sort();
    tags
}

/// An SNS topic with an SQS queue subscribed (raw delivery): returns (topic ARN, queue URL).
pub async fn topic_with_inbox(emu: &Emulator) -> (String, String) {
    let topic = emu.sns().create_topic().name("outcomes").send().await.expect("create topic");
    let topic_arn = topic.topic_arn().expect("topic arn").to_string();
    let queue = emu.sqs().create_queue().queue_name("outcomes-inbox").send().await.expect("create queue");
    let queue_url = queue.queue_url().expect("queue url").to_string();
    let attrs = emu
        .sqs()
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes");
    let queue_arn = attrs
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .expect("queue arn")
        .clone();
    emu.sns()
        .subscribe()
        .topic_arn(&topic_arn)
        .protocol("sqs")
        .endpoint(queue_arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .expect("subscribe");
    (topic_arn, queue_url)
}

/// Every message waiting on the queue: (body, message attributes as name -> string).
pub async fn receive_all(emu: &Emulator, queue_url: &str) -> Vec<(String, Vec<(String, String)>)> {
    let out = emu
        .sqs()
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .message_attribute_names("All")
        .wait_time_seconds(1)
        .send()
        .await
        .expect("receive");
    out.messages()
        .iter()
        .map(|m| {
            let mut attrs: Vec<(String, String)> = m
                .message_attributes()
                .map(|a| a.iter().map(|(k, v)| (k.clone(), v.string_value().unwrap_or_default().to_string())).collect())
                .unwrap_or_default();
            attrs.sort();
            (m.body().unwrap_or_default().to_string(), attrs)
        })
        .collect()
}

/// Sends a signal to a child process.
pub fn signal(child: &tokio::process::Child, sig: &str) {
    let pid = child.id().expect("child still running");
    let ok = std::process::Command::new("kill").args([&format!("-{sig}"), &pid.to_string()]).status().expect("kill");
    assert!(ok.success(), "kill -{sig} {pid} failed");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn poll_until_returns_what_the_probe_saw_once_ready() {
        let mut probes = 0;
        let got = poll_until("the third probe", Duration::from_secs(10), || {
            probes += 1;
            std::future::ready(if probes == 3 { Ok(probes) } else { Err(format!("probe {probes}")) })
        })
        .await;
        assert_eq!(got, 3);
    }

    #[tokio::test]
    #[should_panic(expected = "waiting for a condition that never holds; last seen: \"probe")]
    async fn poll_until_names_what_it_awaited_and_the_last_observation() {
        let mut probes = 0;
        poll_until("a condition that never holds", Duration::from_millis(300), || {
            probes += 1;
            std::future::ready(Err::<(), _>(format!("probe {probes}")))
        })
        .await;
    }
}
