//! The lab's HTTP front: one loopback endpoint for every service. AWS Config operations
//! are answered by the lab; detector reads can be made to fail on purpose; everything else
//! is forwarded to the emulator unchanged.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

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
use tokio::net::TcpListener;
use tracing::{debug, warn};

use crate::config_api::{self, TARGET_PREFIX};
use crate::settings::{Fault, FaultKind};
use crate::state::LabState;

/// Shared by every connection.
pub struct Front {
    pub state: Arc<Mutex<LabState>>,
    pub upstream: Uri,
    client: Client<HttpConnector, Full<Bytes>>,
    /// Where to append one JSON line per AWS call (`--record-calls`).
    calls: Option<Mutex<std::fs::File>>,
}

impl Front {
    pub fn new(state: Arc<Mutex<LabState>>, upstream: Uri) -> Self {
        Front { state, upstream, client: Client::builder(TokioExecutor::new()).build_http(), calls: None }
    }

    /// Appends `{"access_key": .., "action": "<iam prefix>:<Operation>"}` for every call to
    /// `file`, so a test can see which IAM actions each caller (told apart by its access
    /// key) actually needed.
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
    let operation = if let Some(t) = target {
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

/// The signing name of the service a request is for, from its SigV4 credential scope
/// (`Credential=AKID/DATE/REGION/SERVICE/aws4_request`).
pub fn service_of(headers: &hyper::HeaderMap) -> Option<String> {
    credential_scope(headers).map(|(_, service)| service.to_string())
}

/// The access key id and service of a request's SigV4 credential scope.
fn credential_scope(headers: &hyper::HeaderMap) -> Option<(&str, &str)> {
    let auth = headers.get("authorization")?.to_str().ok()?;
    let cred = auth.split("Credential=").nth(1)?;
    let scope: Vec<&str> = cred.split([',', ' ']).next()?.split('/').collect();
    (scope.len() >= 5).then(|| (scope[0], scope[3]))
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

async fn handle(front: Arc<Front>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return Ok(respond(400, "text/plain", format!("could not read the request body: {e}"))),
    };
    if let Some(log) = &front.calls {
        if let Some((key, action)) = call_of(&parts.headers, &parts.method, parts.uri.path(), &body) {
            use std::io::Write;
            let line = serde_json::json!({ "access_key": key, "action": action }).to_string();
            let mut f = log.lock().expect("call log lock");
            let _ = writeln!(f, "{line}");
        }
    }
    let service = service_of(&parts.headers);
    let target = parts.headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();

    if let Some(operation) = target.strip_prefix(TARGET_PREFIX) {
        let (status, json) = {
            let mut state = front.state.lock().expect("lab state lock");
            config_api::handle(&mut state, operation, &body, SystemTime::now())
        };
        debug!(operation, status, "answered Config");
        return Ok(respond(status, "application/x-amz-json-1.1", json));
    }
    let is_describe_alarms = service.as_deref() == Some("monitoring")
        && std::str::from_utf8(&body).is_ok_and(|b| b.contains("Action=DescribeAlarms"));
    if is_describe_alarms {
        if let Some(f) = front.state.lock().expect("lab state lock").alarm_fault.take() {
            return Ok(query_fault(f));
        }
    }
    if service.as_deref() == Some("securityhub") && parts.uri.path() == "/findings" {
        if let Some(f) = front.state.lock().expect("lab state lock").findings_fault.take() {
            return Ok(rest_fault(f));
        }
    }
    Ok(forward(&front, parts, body).await)
}

/// Forwards a request to the emulator as it came, and its answer back.
async fn forward(front: &Front, parts: hyper::http::request::Parts, body: Bytes) -> Response<Full<Bytes>> {
    let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let uri: Uri = match format!("{}{}", front.upstream.to_string().trim_end_matches('/'), path).parse() {
        Ok(u) => u,
        Err(e) => return respond(400, "text/plain", format!("bad request path: {e}")),
    };
    let mut builder = Request::builder().method(parts.method).uri(uri);
    for (name, value) in parts.headers.iter() {
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
        assert_eq!(call_of(&hyper::HeaderMap::new(), &post, "/", b""), None);
    }
}
