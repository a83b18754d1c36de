//! A loopback AWS Lambda Runtime API, so end-to-end tests can run the real compiled function binaries the way
//! Lambda runs a custom runtime's `bootstrap`: no AWS, no cargo-lambda.
//!
//! [`FunctionProcess::start`] serves the Runtime API (version 2018-06-01) on a free 127.0.0.1 port and spawns the
//! function binary with `AWS_LAMBDA_RUNTIME_API` pointing at it. [`FunctionProcess::invoke`] queues one event; the
//! function's runtime long-polls `GET /2018-06-01/runtime/invocation/next`, receives it with the `Lambda-Runtime-*`
//! headers that `lambda_runtime` needs, and posts the result to `/invocation/{id}/response` or `/invocation/{id}/error`.
//! Invocations are served one at a time, as in one Lambda execution environment; later invocations on the same
//! process are warm.
//!
//! As in Lambda, an invocation that outlives its timeout ends with `Sandbox.Timedout` and the execution environment is
//! torn down (the process is killed), and a process that exits ends every pending invocation with `Runtime.ExitError`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Child;
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::task::JoinHandle;

/// The account in every ARN the Runtime API hands out.
pub const ACCOUNT_ID: &str = "123456789012";
/// `FunctionError::error_type` when the process exits (or is killed) before the invocation completes.
pub const EXIT_ERROR: &str = "Runtime.ExitError";
/// `FunctionError::error_type` when the invocation's timeout passes first.
pub const TIMED_OUT: &str = "Sandbox.Timedout";

const PREFIX: &str = "/2018-06-01/runtime/";
const REQUEST_ID: &str = "lambda-runtime-aws-request-id";
const DEADLINE_MS: &str = "lambda-runtime-deadline-ms";
const FUNCTION_ARN: &str = "lambda-runtime-invoked-function-arn";
const TRACE_ID: &str = "lambda-runtime-trace-id";
const ERROR_TYPE: &str = "lambda-runtime-function-error-type";

/// How an invocation ended, as Lambda reports it to the invoker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionError {
    /// `errorType` posted by the function, or [`EXIT_ERROR`] / [`TIMED_OUT`].
    pub error_type: String,
    pub error_message: String,
}

impl FunctionError {
    fn new(error_type: impl Into<String>, error_message: impl Into<String>) -> FunctionError {
        FunctionError { error_type: error_type.into(), error_message: error_message.into() }
    }

    /// From a posted error document `{"errorType": .., "errorMessage": ..}`.
    fn from_document(doc: &Value, fallback_type: &str) -> FunctionError {
        let error_type = doc.get("errorType").and_then(Value::as_str).unwrap_or(fallback_type);
        let error_message = match doc.get("errorMessage").and_then(Value::as_str) {
            Some(message) => message.to_string(),
            None => doc.as_str().map_or_else(|| doc.to_string(), str::to_string),
        };
        FunctionError::new(error_type, error_message)
    }
}

impl fmt::Display for FunctionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error_type, self.error_message)
    }
}

impl std::error::Error for FunctionError {}

/// One finished invocation.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The `Lambda-Runtime-Aws-Request-Id` the function was given.
    pub request_id: String,
    /// The posted response (JSON; a body that is not JSON becomes a string), or how it failed.
    pub result: Result<Value, FunctionError>,
    /// From the moment the function received the event until it posted the result (Lambda's `Duration`); when it
    /// never received the event, the time `invoke` waited.
    pub duration: Duration,
}

/// A function binary running against its own private Runtime API. Dropping it kills the process.
pub struct FunctionProcess {
    api: RuntimeApi,
    proc: Arc<Proc>,
    logs: Arc<Logs>,
    tasks: Vec<JoinHandle<()>>,
}

impl FunctionProcess {
    /// Starts the Runtime API on 127.0.0.1 and spawns `bin` with `AWS_LAMBDA_RUNTIME_API` pointing at it.
    ///
    /// The function gets the standard Lambda environment for function `name` (`AWS_LAMBDA_FUNCTION_NAME`,
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128`, `AWS_LAMBDA_FUNCTION_VERSION=$LATEST`, `AWS_LAMBDA_LOG_GROUP_NAME`,
    /// `AWS_LAMBDA_LOG_STREAM_NAME`, `AWS_LAMBDA_LOG_FORMAT=JSON`, `AWS_LAMBDA_LOG_LEVEL=INFO`,
    /// `AWS_LAMBDA_INITIALIZATION_TYPE=on-demand`, `AWS_EXECUTION_ENV`, `AWS_REGION`/`AWS_DEFAULT_REGION` = us-east-1),
    /// no shared AWS config or credentials files and no instance metadata (as in Lambda), then `env`, which overrides
    /// any of these. Inherited `AWS_*`, `CHAOSLINGR_*` and `RUST_LOG` variables are removed first, so only what the
    /// test passes reaches the function. stdout and stderr lines are captured (see [`FunctionProcess::logs`]).
    pub async fn start(name: &str, bin: &Path, env: &[(&str, &str)]) -> FunctionProcess {
        assert!(
            bin.exists(),
            "the function binary {} does not exist; run `cargo xtask test` (it builds the functions first)",
            bin.display()
        );
        let api = RuntimeApi::start(name).await;

        let mut cmd = tokio::process::Command::new(bin);
        for (k, _) in std::env::vars_os() {
            let b = k.as_encoded_bytes();
            if b.starts_with(b"AWS_") || b.starts_with(b"CHAOSLINGR_") || b == b"RUST_LOG" {
                cmd.env_remove(&k);
            }
        }
        let empty_config = crate::workspace_root().join("tests/harness/empty-aws-config");
        let empty_config = empty_config.to_str().expect("UTF-8 path");
        let log_stream = log_stream_name();
        let standard: [(&str, &str); 15] = [
            ("AWS_LAMBDA_RUNTIME_API", &api.addr.to_string()),
            ("AWS_LAMBDA_FUNCTION_NAME", name),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            ("AWS_LAMBDA_LOG_GROUP_NAME", &format!("/aws/lambda/{name}")),
            ("AWS_LAMBDA_LOG_STREAM_NAME", &log_stream),
            ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
            ("AWS_LAMBDA_LOG_LEVEL", "INFO"),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand"),
            ("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023"),
            ("AWS_REGION", crate::REGION),
            ("AWS_DEFAULT_REGION", crate::REGION),
            ("AWS_CONFIG_FILE", empty_config),
            ("AWS_SHARED_CREDENTIALS_FILE", empty_config),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ];
        cmd.envs(standard).envs(env.iter().copied());
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);

        let spawned = Instant::now();
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn the function binary {}: {e}", bin.display()));
        let pid = child.id().expect("a just-spawned child has a pid");
        let logs = Arc::new(Logs::default());
        let mut tasks = Vec::new();
        if let Some(out) = child.stdout.take() {
            tasks.push(tokio::spawn(read_lines(out, logs.clone())));
        }
        if let Some(err) = child.stderr.take() {
            tasks.push(tokio::spawn(read_lines(err, logs.clone())));
        }
        let proc = Arc::new(Proc {
            child: Mutex::new(child),
            pid,
            spawned,
            exit: watch::channel(None).0,
            peak_rss_kib: AtomicU64::new(0),
            api: api.state.clone(),
        });
        // Notices the exit promptly (so pending invocations end) and samples the peak RSS while the process lives.
        tasks.push(tokio::spawn({
            let proc = proc.clone();
            async move {
                while proc.sample().is_none() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }));
        FunctionProcess { api, proc, logs, tasks }
    }

    /// Queues one event and waits, at most `timeout` (which is also the invocation deadline given to the function,
    /// counted from now), for its response or error. When the process exits first the result is a
    /// [`EXIT_ERROR`] error; when the timeout passes first it is a [`TIMED_OUT`] error and the process is killed, as
    /// Lambda tears down a timed-out execution environment.
    pub async fn invoke(&self, event: Value, timeout: Duration) -> Invocation {
        let (invocation, timed_out) = self.api.invoke(event, timeout, self.proc.exit.subscribe()).await;
        if timed_out {
            self.proc.kill();
        }
        invocation
    }

    /// Time from spawn until the runtime first asked for an event (the cold start, Lambda's `Init Duration`); None
    /// before that.
    pub fn init_duration(&self) -> Option<Duration> {
        self.api.state.first_poll.get().map(|t| t.saturating_duration_since(self.proc.spawned))
    }

    /// The document the runtime posted to `/runtime/init/error`, if any. Invocations then fail with its
    /// `errorType` and `errorMessage`.
    pub fn init_error(&self) -> Option<Value> {
        self.api.state.init_error.lock().unwrap().clone()
    }

    /// Peak resident memory of the process so far (`VmHWM` from `/proc/<pid>/status`), in KiB: sampled every 10 ms
    /// while it runs, so after it exited this is the last sample. None if never sampled.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        self.proc.sample();
        Some(self.proc.peak_rss_kib.load(Ordering::Relaxed)).filter(|&kib| kib > 0)
    }

    /// Every log line so far, stdout and stderr interleaved in arrival order.
    ///
    /// The lines are read from pipes by background tasks, so a line printed just before the function posted its
    /// result may arrive a moment after `invoke` returns: use [`FunctionProcess::wait_for_log`] to wait for one.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lines.lock().unwrap().clone()
    }

    /// The log lines so far that contain `needle`.
    pub fn logs_containing(&self, needle: &str) -> Vec<String> {
        self.logs.lines.lock().unwrap().iter().filter(|l| l.contains(needle)).cloned().collect()
    }

    /// Waits (at most `timeout`) for a log line containing `needle`, and returns the first such line.
    pub async fn wait_for_log(&self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let added = self.logs.added.notified();
            tokio::pin!(added);
            added.as_mut().enable();
            if let Some(line) = self.logs_containing(needle).into_iter().next() {
                return Some(line);
            }
            if tokio::time::timeout_at(deadline, added).await.is_err() {
                return self.logs_containing(needle).into_iter().next();
            }
        }
    }

    /// Kills the process with SIGKILL (a crash) and reaps it; invocations in flight then end with [`EXIT_ERROR`].
    pub fn kill(&self) {
        self.proc.kill();
    }

    /// Whether the process is still running.
    pub fn is_running(&self) -> bool {
        self.proc.sample().is_none()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.proc.pid
    }
}

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        self.proc.kill();
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The function's process, shared with the task that watches it.
struct Proc {
    child: Mutex<Child>,
    pid: u32,
    spawned: Instant,
    /// Set once the process has exited (and was reaped).
    exit: watch::Sender<Option<ExitStatus>>,
    /// 0 until sampled.
    peak_rss_kib: AtomicU64,
    api: Arc<ApiState>,
}

impl Proc {
    /// Reaps the process if it exited (returning its status), else samples its peak RSS. The sample is taken under
    /// the child's lock, so the pid cannot have been reaped and reused meanwhile.
    fn sample(&self) -> Option<ExitStatus> {
        let mut child = self.child.lock().unwrap();
        match child.try_wait() {
            Ok(None) => {
                if let Some(kib) = read_vm_hwm_kib(self.pid) {
                    self.peak_rss_kib.fetch_max(kib, Ordering::Relaxed);
                }
                None
            }
            Ok(Some(status)) => {
                drop(child);
                if self.exit.borrow().is_none() {
                    self.exit.send_replace(Some(status));
                    self.api.close();
                }
                Some(status)
            }
            // Not ours to wait for any more (cannot happen while we own the Child); report it as running.
            Err(_) => None,
        }
    }

    /// SIGKILL, then reap (SIGKILL takes effect at once; give up after 5 s rather than hang).
    fn kill(&self) {
        let _ = self.child.lock().unwrap().start_kill();
        let give_up = Instant::now() + Duration::from_secs(5);
        while self.sample().is_none() && Instant::now() < give_up {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

#[derive(Default)]
struct Logs {
    lines: Mutex<Vec<String>>,
    added: Notify,
}

async fn read_lines(pipe: impl AsyncRead + Unpin, logs: Arc<Logs>) {
    let mut reader = BufReader::new(pipe);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf).trim_end_matches(['\n', '\r']).to_string();
                logs.lines.lock().unwrap().push(line);
                logs.added.notify_waiters();
            }
        }
    }
}

/// `VmHWM` (peak resident set size) of a live process, in KiB.
fn read_vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
    line.trim().trim_end_matches("kB").trim().parse().ok()
}

/* ------------------------------------ the Runtime API server ------------------------------------ */

/// The Runtime API for one function, served on 127.0.0.1 until dropped.
struct RuntimeApi {
    addr: SocketAddr,
    state: Arc<ApiState>,
    server: JoinHandle<()>,
}

struct ApiState {
    function_arn: String,
    queue_tx: mpsc::UnboundedSender<Queued>,
    queue_rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Queued>>,
    /// Invocations that `invoke` still waits for, by request id.
    in_flight: Mutex<HashMap<String, InFlight>>,
    first_poll: OnceLock<Instant>,
    init_error: Mutex<Option<Value>>,
    /// Set when the function process is gone: pending polls for the next event give up.
    closed: watch::Sender<bool>,
}

/// An event waiting for the runtime to ask for it.
struct Queued {
    request_id: String,
    body: Bytes,
    deadline_ms: u64,
    trace_id: String,
}

struct InFlight {
    /// When the runtime received the event.
    received: Option<Instant>,
    done: oneshot::Sender<(Result<Value, FunctionError>, Option<Instant>)>,
}

impl ApiState {
    fn close(&self) {
        self.closed.send_replace(true);
    }
}

impl RuntimeApi {
    async fn start(function_name: &str) -> RuntimeApi {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let addr = listener.local_addr().expect("local addr");
        let (queue_tx, queue_rx) = mpsc::unbounded_channel();
        let state = Arc::new(ApiState {
            function_arn: format!("arn:aws:lambda:{}:{ACCOUNT_ID}:function:{function_name}", crate::REGION),
            queue_tx,
            queue_rx: tokio::sync::Mutex::new(queue_rx),
            in_flight: Mutex::new(HashMap::new()),
            first_poll: OnceLock::new(),
            init_error: Mutex::new(None),
            closed: watch::channel(false).0,
        });
        let server = tokio::spawn(serve(listener, state.clone()));
        RuntimeApi { addr, state, server }
    }

    /// Queues `event` and waits for its end; `exited` turns `Some` when the function process exits. The flag is true
    /// when the invocation timed out.
    async fn invoke(
        &self,
        event: Value,
        timeout: Duration,
        mut exited: watch::Receiver<Option<ExitStatus>>,
    ) -> (Invocation, bool) {
        let started = Instant::now();
        let request_id = new_request_id();
        let (done_tx, mut done_rx) = oneshot::channel();
        {
            // Checked under the lock that `/init/error` takes to fail the invocations in flight.
            let mut in_flight = self.state.in_flight.lock().unwrap();
            let init_error = self.state.init_error.lock().unwrap().clone();
            if let Some(doc) = init_error {
                let result = Err(FunctionError::from_document(&doc, "Runtime.InitError"));
                return (Invocation { request_id, result, duration: Duration::ZERO }, false);
            }
            in_flight.insert(request_id.clone(), InFlight { received: None, done: done_tx });
        }
        let deadline_ms = epoch_ms(SystemTime::now() + timeout);
        let body = Bytes::from(serde_json::to_vec(&event).expect("a JSON value serializes"));
        let queued = Queued { request_id: request_id.clone(), body, deadline_ms, trace_id: new_trace_id() };
        // The receiver lives as long as the state, which `self` holds.
        let _ = self.state.queue_tx.send(queued);

        enum End {
            Done(Result<Value, FunctionError>, Option<Instant>),
            Exited(ExitStatus),
            TimedOut,
        }
        let process_exit = async {
            // Copy the status out first: the borrow must not live across the await below,
            // or the invocation could not be sent to another task.
            let status = exited.wait_for(Option::is_some).await.ok().map(|s| *s);
            match status {
                Some(status) => status,
                None => std::future::pending().await,
            }
        };
        let mut end = tokio::select! {
            biased;
            done = &mut done_rx => match done {
                Ok((result, received)) => End::Done(result, received),
                Err(_) => End::Done(Err(FunctionError::new("Runtime.Unknown", "the invocation was dropped")), None),
            },
            Some(status) = process_exit => End::Exited(status),
            () = tokio::time::sleep(timeout) => End::TimedOut,
        };
        let mut received = None;
        if !matches!(end, End::Done(..)) {
            match self.state.in_flight.lock().unwrap().remove(&request_id) {
                Some(entry) => received = entry.received,
                // The result was posted at the same moment: it wins.
                None => {
                    if let Ok((result, at)) = done_rx.try_recv() {
                        end = End::Done(result, at);
                    }
                }
            }
        }
        let (result, timed_out) = match end {
            End::Done(result, at) => {
                received = at;
                (result, false)
            }
            End::Exited(status) => {
                let message = format!("RequestId: {request_id} Error: Runtime exited with error: {status}");
                (Err(FunctionError::new(EXIT_ERROR, message)), false)
            }
            End::TimedOut => {
                let message =
                    format!("RequestId: {request_id} Error: Task timed out after {:.2} seconds", timeout.as_secs_f64());
                (Err(FunctionError::new(TIMED_OUT, message)), true)
            }
        };
        let duration = received.unwrap_or(started).elapsed();
        (Invocation { request_id, result, duration }, timed_out)
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.state.close();
        self.server.abort();
    }
}

async fn serve(listener: tokio::net::TcpListener, state: Arc<ApiState>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(route(&state, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

async fn route(state: &ApiState, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let Some(rest) = path.strip_prefix(PREFIX) else { return not_found() };
    let segments: Vec<&str> = rest.split('/').collect();
    match (req.method().clone(), segments.as_slice()) {
        (Method::GET, ["invocation", "next"]) => next_event(state).await,
        (Method::POST, ["invocation", id, "response"]) => {
            let body = read_body(req).await;
            let result = if body.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()))
            };
            complete(state, id, Ok(result))
        }
        (Method::POST, ["invocation", id, "error"]) => {
            let header_type = req.headers().get(ERROR_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
            let doc = document(&read_body(req).await);
            complete(state, id, Err(FunctionError::from_document(&doc, header_type.as_deref().unwrap_or("Unhandled"))))
        }
        (Method::POST, ["init", "error"]) => {
            let doc = document(&read_body(req).await);
            let error = FunctionError::from_document(&doc, "Runtime.InitError");
            // As in Lambda, a failed init fails the invocations waiting for it (and later ones, see `invoke`).
            let pending: Vec<InFlight> = {
                let mut in_flight = state.in_flight.lock().unwrap();
                *state.init_error.lock().unwrap() = Some(doc);
                in_flight.drain().map(|(_, f)| f).collect()
            };
            for f in pending {
                let _ = f.done.send((Err(error.clone()), f.received));
            }
            accepted()
        }
        _ => not_found(),
    }
}

/// `GET /invocation/next`: the long poll.
async fn next_event(state: &ApiState) -> Response<Full<Bytes>> {
    state.first_poll.get_or_init(Instant::now);
    let mut closed = state.closed.subscribe();
    let gone = || {
        json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"errorType": "Sandbox.Closed", "errorMessage": "the function is shutting down"}),
        )
    };
    let mut queue = tokio::select! {
        queue = state.queue_rx.lock() => queue,
        _ = closed.wait_for(|c| *c) => return gone(),
    };
    loop {
        let queued = tokio::select! {
            queued = queue.recv() => queued,
            _ = closed.wait_for(|c| *c) => None,
        };
        let Some(q) = queued else { return gone() };
        {
            let mut in_flight = state.in_flight.lock().unwrap();
            // An event whose `invoke` already gave up (timed out) is not delivered.
            let Some(entry) = in_flight.get_mut(&q.request_id) else { continue };
            entry.received = Some(Instant::now());
        }
        let mut rsp = Response::new(Full::new(q.body));
        let headers = rsp.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in [
            (REQUEST_ID, q.request_id),
            (DEADLINE_MS, q.deadline_ms.to_string()),
            (FUNCTION_ARN, state.function_arn.clone()),
            (TRACE_ID, q.trace_id),
        ] {
            headers.insert(name, HeaderValue::from_str(&value).expect("header values are ASCII"));
        }
        return rsp;
    }
}

/// Ends the invocation `id` (which the runtime must have received) with `result`.
fn complete(state: &ApiState, id: &str, result: Result<Value, FunctionError>) -> Response<Full<Bytes>> {
    let entry = {
        let mut in_flight = state.in_flight.lock().unwrap();
        match in_flight.get(id) {
            Some(f) if f.received.is_some() => in_flight.remove(id),
            _ => None,
        }
    };
    match entry {
        Some(f) => {
            let _ = f.done.send((result, f.received));
            accepted()
        }
        None => json_response(
            StatusCode::BAD_REQUEST,
            json!({"errorType": "InvalidRequestID", "errorMessage": format!("Invalid request ID: {id}")}),
        ),
    }
}

async fn read_body(req: Request<Incoming>) -> Bytes {
    req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default()
}

/// A posted error document; a body that is not JSON becomes a string.
fn document(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into()))
}

fn accepted() -> Response<Full<Bytes>> {
    json_response(StatusCode::ACCEPTED, json!({"status": "OK"}))
}

fn not_found() -> Response<Full<Bytes>> {
    json_response(StatusCode::NOT_FOUND, json!({"errorType": "NotFound", "errorMessage": "unknown Runtime API path"}))
}

fn json_response(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut rsp = Response::new(Full::new(Bytes::from(body.to_string())));
    *rsp.status_mut() = status;
    rsp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    rsp
}

/* ------------------------------------------ identifiers ------------------------------------------ */

fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos());
    hasher.finish()
}

/// A version 4 UUID, as Lambda's request ids are.
fn new_request_id() -> String {
    let (a, b) = (random_u64(), random_u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// An X-Ray trace header: `Root=1-<epoch seconds>-<96 bits>;Parent=<64 bits>;Sampled=0`.
fn new_trace_id() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    format!("Root=1-{secs:08x}-{:08x}{:016x};Parent={:016x};Sampled=0", random_u64() as u32, random_u64(), random_u64())
}

fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

/// `YYYY/MM/DD/[$LATEST]<32 hex digits>`, like Lambda's log stream names.
fn log_stream_name() -> String {
    let days = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() / 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}/{m:02}/{d:02}/[$LATEST]{:016x}{:016x}", random_u64(), random_u64())
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    //! The server driven by a plain HTTP client standing in for the function's runtime, and the process handling
    //! driven by a shell script that never polls.

    use super::*;
    use hyper::HeaderMap;
    use hyper_util::client::legacy::{connect::HttpConnector, Client};
    use hyper_util::rt::TokioExecutor;
    use std::os::unix::process::ExitStatusExt;
    use std::path::PathBuf;

    const NEXT: &str = "/2018-06-01/runtime/invocation/next";

    /// A stand-in for the function's runtime: a plain HTTP/1 client on the Runtime API.
    struct Runtime {
        base: String,
        client: Client<HttpConnector, Full<Bytes>>,
    }

    struct Reply {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    }

    impl Reply {
        fn header(&self, name: &str) -> &str {
            self.headers.get(name).unwrap_or_else(|| panic!("no {name} header")).to_str().unwrap()
        }

        fn json(&self) -> Value {
            serde_json::from_slice(&self.body).expect("a JSON body")
        }
    }

    impl Runtime {
        fn at(addr: impl fmt::Display) -> Runtime {
            Runtime { base: format!("http://{addr}"), client: Client::builder(TokioExecutor::new()).build_http() }
        }

        async fn call(&self, method: Method, path: &str, body: &str, headers: &[(&str, &str)]) -> Reply {
            let mut req = Request::builder().method(method).uri(format!("{}{path}", self.base));
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            let req = req.body(Full::new(Bytes::from(body.to_string()))).unwrap();
            let rsp = self.client.request(req).await.expect("the Runtime API answers");
            let (parts, body) = rsp.into_parts();
            Reply { status: parts.status, headers: parts.headers, body: body.collect().await.unwrap().to_bytes() }
        }

        async fn next(&self) -> Reply {
            self.call(Method::GET, NEXT, "", &[]).await
        }

        async fn respond(&self, id: &str, body: &str) -> Reply {
            self.call(Method::POST, &format!("/2018-06-01/runtime/invocation/{id}/response"), body, &[]).await
        }

        async fn fail(&self, id: &str, body: &str, headers: &[(&str, &str)]) -> Reply {
            self.call(Method::POST, &format!("/2018-06-01/runtime/invocation/{id}/error"), body, headers).await
        }
    }

    /// An exit watch for a function process that never exits (unless the test says so).
    fn no_exit() -> (watch::Sender<Option<ExitStatus>>, watch::Receiver<Option<ExitStatus>>) {
        watch::channel(None)
    }

    fn now_ms() -> u64 {
        epoch_ms(SystemTime::now())
    }

    #[tokio::test]
    async fn next_delivers_the_event_with_lambda_headers_and_the_response_completes_invoke() {
        let api = RuntimeApi::start("echo").await;
        let runtime = Runtime::at(api.addr);
        let (_exit, exited) = no_exit();
        let event = json!({"detail": {"n": 1}, "list": [1, 2, 3]});

        let invoked_at = now_ms();
        let ((inv, timed_out), delivered) =
            tokio::join!(api.invoke(event.clone(), Duration::from_secs(30), exited), async {
                let next = runtime.next().await;
                let id = next.header("Lambda-Runtime-Aws-Request-Id").to_string();
                let posted = runtime.respond(&id, r#"{"ok": true}"#).await;
                (next, id, posted)
            });
        let (next, id, posted) = delivered;

        assert_eq!(next.status, StatusCode::OK);
        assert_eq!(next.json(), event);
        assert_eq!(next.header("content-type"), "application/json");
        assert_eq!(id.len(), 36, "a UUID: {id}");
        assert_eq!(id.matches('-').count(), 4, "a UUID: {id}");
        assert_eq!(
            next.header("Lambda-Runtime-Invoked-Function-Arn"),
            "arn:aws:lambda:us-east-1:123456789012:function:echo"
        );
        let trace = next.header("Lambda-Runtime-Trace-Id");
        assert!(trace.starts_with("Root=1-") && trace.contains(";Parent=") && trace.ends_with(";Sampled=0"), "{trace}");
        let deadline: u64 = next.header("Lambda-Runtime-Deadline-Ms").parse().expect("epoch milliseconds");
        let expected = invoked_at + 30_000;
        assert!(deadline >= expected && deadline < expected + 2_000, "deadline {deadline}, expected about {expected}");

        assert_eq!(posted.status, StatusCode::ACCEPTED);
        assert!(!timed_out);
        assert_eq!(inv.request_id, id);
        assert_eq!(inv.result, Ok(json!({"ok": true})));
        assert!(inv.duration < Duration::from_secs(5));
        assert!(api.state.first_poll.get().is_some());
    }

    #[tokio::test]
    async fn warm_invocations_each_get_their_own_request_id() {
        let api = RuntimeApi::start("echo").await;
        let runtime = Runtime::at(api.addr);
        let (_exit, exited) = no_exit();
        let mut ids = Vec::new();
        for n in 0..4 {
            let (inv, ()) = tokio::join!(
                async { api.invoke(json!({"n": n}), Duration::from_secs(30), exited.clone()).await.0 },
                async {
                    let next = runtime.next().await;
                    let echo = json!({"echo": next.json()}).to_string();
                    assert_eq!(runtime.respond(next.header(REQUEST_ID), &echo).await.status, StatusCode::ACCEPTED);
                }
            );
            assert_eq!(inv.result, Ok(json!({"echo": {"n": n}})));
            ids.push(inv.request_id);
        }
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "{ids:?}");
    }

    #[tokio::test]
    async fn a_posted_error_becomes_a_function_error() {
        let api = RuntimeApi::start("echo").await;
        let runtime = Runtime::at(api.addr);
        let (_exit, exited) = no_exit();

        // As `lambda_runtime` posts it: a Diagnostic document and an `unhandled` error-type header.
        let (inv, posted) = tokio::join!(api.invoke(json!({}), Duration::from_secs(30), exited.clone()), async {
            let next = runtime.next().await;
            let doc = r#"{"errorType": "&str", "errorMessage": "asked to fail"}"#;
            runtime.fail(next.header(REQUEST_ID), doc, &[("Lambda-Runtime-Function-Error-Type", "unhandled")]).await
        });
        assert_eq!(posted.status, StatusCode::ACCEPTED);
        assert_eq!(inv.0.result, Err(FunctionError::new("&str", "asked to fail")));

        // A body that is not a document: the header names the type.
        let (inv, posted) = tokio::join!(api.invoke(json!({}), Duration::from_secs(30), exited), async {
            let next = runtime.next().await;
            runtime
                .fail(next.header(REQUEST_ID), "plain text", &[("Lambda-Runtime-Function-Error-Type", "Custom")])
                .await
        });
        assert_eq!(posted.status, StatusCode::ACCEPTED);
        assert_eq!(inv.0.result, Err(FunctionError::new("Custom", "plain text")));
    }

    #[tokio::test]
    async fn unknown_paths_are_404_and_unknown_request_ids_400() {
        let api = RuntimeApi::start("echo").await;
        let runtime = Runtime::at(api.addr);
        for (method, path) in [
            (Method::GET, "/"),
            (Method::GET, "/2018-06-01/runtime/invocation"),
            (Method::POST, NEXT),
            (Method::GET, "/2018-06-01/runtime/invocation/abc/response"),
            (Method::POST, "/2018-06-01/runtime/invocation/abc/result"),
            (Method::POST, "/2020-01-01/runtime/init/error"),
            (Method::GET, "/2018-06-01/runtime/restore/next"),
        ] {
            let reply = runtime.call(method.clone(), path, "{}", &[]).await;
            assert_eq!(reply.status, StatusCode::NOT_FOUND, "{method} {path}");
        }
        assert_eq!(runtime.respond("no-such-id", "{}").await.status, StatusCode::BAD_REQUEST);
        assert_eq!(runtime.fail("no-such-id", "{}", &[]).await.status, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn a_timed_out_invocation_ends_and_is_never_delivered() {
        let api = RuntimeApi::start("echo").await;
        let runtime = Runtime::at(api.addr);
        let (_exit, exited) = no_exit();

        let started = Instant::now();
        let (late, timed_out) = api.invoke(json!({"late": true}), Duration::from_millis(150), exited.clone()).await;
        assert!(timed_out);
        assert!(started.elapsed() >= Duration::from_millis(150) && started.elapsed() < Duration::from_secs(5));
        let error = late.result.unwrap_err();
        assert_eq!(error.error_type, TIMED_OUT);
        assert!(error.error_message.contains("Task timed out after 0.15 seconds"), "{error}");

        // The runtime now asks: it gets the next event, not the timed-out one, and cannot answer the old id.
        let (inv, ()) = tokio::join!(api.invoke(json!({"late": false}), Duration::from_secs(30), exited), async {
            let next = runtime.next().await;
            assert_eq!(next.json(), json!({"late": false}));
            assert_eq!(runtime.respond(&late.request_id, "{}").await.status, StatusCode::BAD_REQUEST);
            runtime.respond(next.header(REQUEST_ID), "1").await;
        });
        assert_eq!(inv.0.result, Ok(json!(1)));
    }

    #[tokio::test]
    async fn an_exit_ends_the_pending_invocation() {
        let api = RuntimeApi::start("echo").await;
        let runtime = Runtime::at(api.addr);
        let (exit, exited) = no_exit();
        let ((inv, timed_out), ()) = tokio::join!(api.invoke(json!({}), Duration::from_secs(30), exited), async {
            let next = runtime.next().await;
            assert_eq!(next.status, StatusCode::OK);
            exit.send_replace(Some(ExitStatus::from_raw(9))); // killed by SIGKILL
        });
        assert!(!timed_out);
        let error = inv.result.unwrap_err();
        assert_eq!(error.error_type, EXIT_ERROR);
        assert!(error.error_message.contains("Runtime exited with error: signal: 9"), "{error}");
        assert!(error.error_message.contains(&inv.request_id), "{error}");
    }

    #[tokio::test]
    async fn an_init_error_fails_pending_and_later_invocations() {
        let api = RuntimeApi::start("echo").await;
        let runtime = Runtime::at(api.addr);
        let (_exit, exited) = no_exit();
        let doc = r#"{"errorType": "Runtime.Config", "errorMessage": "CHAOSLINGR_TOPIC_ARN is not set"}"#;
        let (inv, posted) = tokio::join!(api.invoke(json!({}), Duration::from_secs(30), exited.clone()), async {
            crate::poll_until("the invocation to be pending", Duration::from_secs(10), || async {
                !api.state.in_flight.lock().unwrap().is_empty()
            })
            .await;
            runtime.call(Method::POST, "/2018-06-01/runtime/init/error", doc, &[(ERROR_TYPE, "Runtime.Config")]).await
        });
        assert_eq!(posted.status, StatusCode::ACCEPTED);
        let expected = FunctionError::new("Runtime.Config", "CHAOSLINGR_TOPIC_ARN is not set");
        assert_eq!(inv.0.result, Err(expected.clone()));
        assert_eq!(api.state.init_error.lock().unwrap().clone(), Some(serde_json::from_str(doc).unwrap()));
        let later = api.invoke(json!({}), Duration::from_secs(30), exited).await.0;
        assert_eq!(later.result, Err(expected));
    }

    #[test]
    fn identifiers_look_like_lambdas() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(20_089), (2025, 1, 1));
        let stream = log_stream_name();
        assert!(stream.contains("/[$LATEST]") && stream.len() == "2025/01/01/[$LATEST]".len() + 32, "{stream}");
        let id = new_request_id();
        assert_eq!(&id[14..15], "4", "{id}");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
        assert_ne!(new_request_id(), new_request_id());
        let trace = new_trace_id();
        let root = trace.strip_prefix("Root=1-").unwrap().split(';').next().unwrap();
        assert_eq!(root.len(), 8 + 1 + 24, "{trace}");
    }

    /* ----------------- process handling, with a shell script as the "function" ----------------- */

    /// A "function" that prints its environment (stdout) and a line to stderr, then sleeps without ever polling, or
    /// exits with `$FAKE_EXIT`.
    fn fake_function() -> &'static Path {
        static SCRIPT: OnceLock<PathBuf> = OnceLock::new();
        SCRIPT.get_or_init(|| {
            let dir = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
            let path = dir.join("chaoslingr-fake-function.sh");
            let tmp = dir.join(format!("chaoslingr-fake-function.{}.tmp", std::process::id()));
            let script = "#!/bin/sh\n\
                env | grep -E '^(AWS_|CHAOSLINGR_|RUST_LOG=|EXTRA=)' | sort\n\
                echo 'to stderr' >&2\n\
                if [ -n \"$FAKE_EXIT\" ]; then exit \"$FAKE_EXIT\"; fi\n\
                exec sleep 60\n";
            std::fs::write(&tmp, script).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
            // Renamed into place whole, so a concurrent run never executes a half-written file.
            std::fs::rename(&tmp, &path).unwrap();
            path
        })
    }

    #[tokio::test]
    async fn a_function_process_gets_the_lambda_environment_and_its_logs_are_captured() {
        let f =
            FunctionProcess::start("fake", fake_function(), &[("EXTRA", "1"), ("AWS_LAMBDA_LOG_LEVEL", "DEBUG")]).await;
        let api_line = f.wait_for_log("AWS_LAMBDA_RUNTIME_API=", Duration::from_secs(10)).await.expect("env printed");
        f.wait_for_log("to stderr", Duration::from_secs(10)).await.expect("stderr captured");
        let addr = api_line.strip_prefix("AWS_LAMBDA_RUNTIME_API=").unwrap().to_string();
        assert!(addr.starts_with("127.0.0.1:") && !addr.contains("://"), "{addr}");
        f.wait_for_log("EXTRA=1", Duration::from_secs(10)).await.expect("the test's env");
        let logs = f.logs();
        for line in [
            "AWS_LAMBDA_FUNCTION_NAME=fake",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128",
            "AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/fake",
            "AWS_LAMBDA_LOG_FORMAT=JSON",
            "AWS_LAMBDA_LOG_LEVEL=DEBUG",
            "AWS_REGION=us-east-1",
        ] {
            assert!(logs.iter().any(|l| l == line), "{line} not in {logs:#?}");
        }
        assert!(f.logs_containing("AWS_LAMBDA_LOG_STREAM_NAME=").len() == 1, "{logs:#?}");
        assert!(f.logs_containing("CHAOSLINGR_").is_empty() && f.logs_containing("RUST_LOG").is_empty(), "{logs:#?}");
        assert!(f.is_running());
        assert!(f.init_duration().is_none(), "it never asked for an event");
        assert!(f.peak_rss_kib().is_some_and(|kib| kib > 0));

        // The test answers as the runtime would; the process is just the sandbox.
        let runtime = Runtime::at(&addr);
        let (inv, ()) = tokio::join!(f.invoke(json!({"x": 1}), Duration::from_secs(30)), async {
            let next = runtime.next().await;
            runtime.respond(next.header(REQUEST_ID), r#"{"x": 2}"#).await;
        });
        assert_eq!(inv.result, Ok(json!({"x": 2})));
        assert!(f.init_duration().is_some());

        // A crash mid-invocation.
        let (inv, ()) = tokio::join!(f.invoke(json!({}), Duration::from_secs(30)), async {
            let next = runtime.next().await;
            assert_eq!(next.status, StatusCode::OK);
            f.kill();
        });
        let error = inv.result.unwrap_err();
        assert_eq!(error.error_type, EXIT_ERROR);
        assert!(error.error_message.contains("signal: 9"), "{error}");
        assert!(!f.is_running());
        // Dead: later invocations end at once.
        let started = Instant::now();
        assert_eq!(f.invoke(json!({}), Duration::from_secs(30)).await.result.unwrap_err().error_type, EXIT_ERROR);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_timeout_tears_the_process_down() {
        let f = FunctionProcess::start("fake", fake_function(), &[]).await;
        let started = Instant::now();
        let inv = f.invoke(json!({}), Duration::from_millis(300)).await;
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(inv.result.unwrap_err().error_type, TIMED_OUT);
        assert!(!f.is_running());
    }

    #[tokio::test]
    async fn an_exit_during_init_ends_the_invocation_with_its_status() {
        let f = FunctionProcess::start("fake", fake_function(), &[("FAKE_EXIT", "3")]).await;
        let inv = f.invoke(json!({}), Duration::from_secs(30)).await;
        let error = inv.result.unwrap_err();
        assert_eq!(error.error_type, EXIT_ERROR);
        assert!(error.error_message.ends_with("Runtime exited with error: exit status: 3"), "{error}");
        assert!(!f.is_running());
        assert!(f.wait_for_log("to stderr", Duration::from_secs(10)).await.is_some());
    }

    #[tokio::test]
    #[should_panic(expected = "does not exist")]
    async fn a_missing_binary_is_a_failure_with_instructions() {
        FunctionProcess::start("fake", Path::new("/nonexistent/bootstrap"), &[]).await;
    }
}
