//! What the integration tests share: a webhook receiver on loopback and mocked secret stores.

// Each test file uses a different part of this module.
#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_ssm::config::http::HttpResponse;
use aws_sdk_ssm::operation::get_parameter::GetParameterOutput;
use aws_sdk_ssm::types::{Parameter, ParameterType};
use aws_smithy_mocks::{mock_client, Rule, RuleMode};
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The credential part of every webhook URL in these tests. No error, log or `Debug`
/// output may contain it.
pub const SECRET_PATH: &str = "/services/T0001/B0002/XXXXsecretXXXX";
/// A fragment of [`SECRET_PATH`] distinctive enough to search for.
pub const SECRET_MARK: &str = "XXXXsecretXXXX";

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub content_type: Option<String>,
    pub body: Bytes,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
}

/// How the receiver answers requests to one path.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: &'static str,
    pub delay: Duration,
}

impl Default for Reply {
    fn default() -> Self {
        Reply { status: 200, body: "ok", delay: Duration::ZERO }
    }
}

/// A Slack incoming webhook stand-in on 127.0.0.1: records each request, answers `200 ok`
/// unless told otherwise for a path.
pub struct Receiver {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    replies: Arc<Mutex<HashMap<String, Reply>>>,
}

impl Receiver {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let replies: Arc<Mutex<HashMap<String, Reply>>> = Arc::new(Mutex::new(HashMap::new()));
        let (log, answers) = (Arc::clone(&received), Arc::clone(&replies));
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (log, answers) = (Arc::clone(&log), Arc::clone(&answers));
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let (log, answers) = (Arc::clone(&log), Arc::clone(&answers));
                        async move {
                            let (parts, body) = request.into_parts();
                            let body = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
                            let path = parts.uri.path().to_string();
                            log.lock().unwrap().push(Received {
                                method: parts.method.to_string(),
                                path: path.clone(),
                                content_type: parts
                                    .headers
                                    .get(hyper::header::CONTENT_TYPE)
                                    .map(|v| v.to_str().unwrap().to_string()),
                                body,
                            });
                            let reply = answers.lock().unwrap().get(&path).cloned().unwrap_or_default();
                            tokio::time::sleep(reply.delay).await;
                            let response = Response::builder()
                                .status(reply.status)
                                .header(hyper::header::CONTENT_TYPE, "text/plain")
                                .body(Full::new(Bytes::from_static(reply.body.as_bytes())))
                                .unwrap();
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver { addr, received, replies }
    }

    /// Answers requests to `path` with `status` and `body`.
    pub fn answer(&self, path: &str, status: u16, body: &'static str) {
        self.replies.lock().unwrap().insert(path.to_string(), Reply { status, body, delay: Duration::ZERO });
    }

    /// Answers requests to `path` only after `delay`.
    pub fn answer_slowly(&self, path: &str, delay: Duration) {
        self.replies.lock().unwrap().insert(path.to_string(), Reply { delay, ..Reply::default() });
    }

    /// `http://127.0.0.1:<port><path>`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The webhook URL with the secret path.
    pub fn webhook_url(&self) -> String {
        self.url(SECRET_PATH)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

/// Requests a mocked operation received, in order.
pub type Log<I> = Arc<Mutex<Vec<I>>>;

pub fn log<I>() -> Log<I> {
    Arc::new(Mutex::new(Vec::new()))
}

/// A request matcher that accepts everything and keeps a copy of each request.
pub fn capture<I: Clone + Send + 'static>(log: &Log<I>) -> impl Fn(&I) -> bool + Send + Sync + 'static {
    let log = Arc::clone(log);
    move |input: &I| {
        log.lock().unwrap().push(input.clone());
        true
    }
}

pub fn seen<I: Clone>(log: &Log<I>) -> Vec<I> {
    log.lock().unwrap().clone()
}

/// A GetParameter answer holding `value` as a SecureString.
pub fn parameter(value: &str) -> GetParameterOutput {
    GetParameterOutput::builder()
        .parameter(
            Parameter::builder()
                .name("/chaoslingr/slack-webhook")
                .r#type(ParameterType::SecureString)
                .value(value)
                .version(1)
                .build(),
        )
        .build()
}

/// An error answer in the awsJson protocol both SSM and Secrets Manager speak.
pub fn json_error(status: u16, code: &str, message: &str) -> HttpResponse {
    let body = serde_json::json!({ "__type": code, "message": message }).to_string();
    let mut response = HttpResponse::new(status.try_into().unwrap(), SdkBody::from(body));
    response.headers_mut().insert("content-type", "application/x-amz-json-1.1");
    response
}

/// An SSM client on `rules` that does not retry, so an error rule is hit exactly once.
pub fn ssm(rules: &[&Rule]) -> aws_sdk_ssm::Client {
    mock_client!(aws_sdk_ssm, RuleMode::MatchAny, rules, |c| c
        .retry_config(aws_sdk_ssm::config::retry::RetryConfig::disabled()))
}

/// A Secrets Manager client on `rules` that does not retry.
pub fn secretsmanager(rules: &[&Rule]) -> aws_sdk_secretsmanager::Client {
    mock_client!(aws_sdk_secretsmanager, RuleMode::MatchAny, rules, |c| c
        .retry_config(aws_sdk_secretsmanager::config::retry::RetryConfig::disabled()))
}

/// A payload like the ones the message builder makes.
pub fn payload() -> serde_json::Value {
    serde_json::json!({
        "text": "ChaoSlingr: UNDETECTED on sg-123 (udp 14603-14605)",
        "attachments": [{ "color": "#E01E5A", "blocks": [
            { "type": "header",
              "text": { "type": "plain_text", "text": "UNDETECTED — security gap: nothing noticed" } }
        ] }]
    })
}

/// Fails the test if `text` contains the secret part of the webhook URL.
#[track_caller]
pub fn assert_no_secret(text: &str) {
    assert!(!text.contains(SECRET_MARK), "the webhook secret leaked: {text}");
}
