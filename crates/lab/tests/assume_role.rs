//! Many accounts through the lab: `sts:AssumeRole` refused for chosen accounts in STS's own
//! shape, and the credentials of the others remembered, so later calls signed with them
//! are logged as the role in its account.
//!
//! The lab is served in-process on 127.0.0.1 in front of a stand-in for the emulator that
//! answers every `AssumeRole` as moto_server 5.2.5 does and counts what reaches it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chaoslingr_lab::proxy::{self, Front};
use chaoslingr_lab::settings::FileSettings;
use chaoslingr_lab::state::LabState;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// moto_server 5.2.5's answer to `AssumeRole` of
/// `arn:aws:iam::111111111111:role/chaoslingr-target` with session `chaoslingr-hub`.
const MOTO_ANSWER: &str = r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult><Credentials><AccessKeyId>ASIARTXV5AHDTGQIW5FB</AccessKeyId><SecretAccessKey>ZIsssImCKX7gPQUva23SeJ5H7C6mU7Tsw6z4OTCG</SecretAccessKey><SessionToken>FQoGZXIvYXdzEBYaDM7TgvAGMoRtfjiyT34t8vpDKhMIrGhAxmO5vskeouSVZGL29s7Niatf8vqc1vVdTnMddzqOWiDJVTa/jIdbjNuWZ6FMSm/s+PmXlaDTOgWvPCnrhptsOwjR4q7VnST8VRXyWQX4OtqTquVG4uYIq4tmeB+e0KNjqXEOFYWrJmRzkwakO0Ei8ae+QGoYDIW7h2Vd9EVxWTBMfa3Ch+3T3HIOuf/CMYThqyikzmoy/Nww8CydMS7n3l3t8q4sg8S0Q7Zg861qGOYI9ZO1F1DY5S3bFMchgroatMkBAkISssKPPMGNUj5cPHqKcTdbLrYjnfQYjUICw5Jva7aYCqI=</SessionToken><Expiration>2026-12-02T23:37:34.978692Z</Expiration></Credentials><AssumedRoleUser><AssumedRoleId>AROA3X42LBCDCCQQPCLA9:chaoslingr-hub</AssumedRoleId><Arn>arn:aws:sts::111111111111:assumed-role/chaoslingr-target/chaoslingr-hub</Arn></AssumedRoleUser><PackedPolicySize>6</PackedPolicySize></AssumeRoleResult><ResponseMetadata><RequestId>orUdxZFN0KqAiGHHOkF2yhUpU1RAilI2vv3TF5uQpJsUMlsfKrc9</RequestId></ResponseMetadata></AssumeRoleResponse>"#;

const EMPTY_GROUPS: &str = r#"<DescribeSecurityGroupsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r</requestId><securityGroupInfo/></DescribeSecurityGroupsResponse>"#;

/// Reads one HTTP/1.1 request (headers and a Content-Length body) from `stream`.
async fn read_request(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return Some(text);
            }
        }
    }
}

/// The stand-in emulator: AssumeRole answered as moto answers it, anything else with no
/// security groups. Counts the requests that reach it.
async fn emulator() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { continue };
            let counter = counter.clone();
            tokio::spawn(async move {
                while let Some(request) = read_request(&mut stream).await {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let body = if request.contains("Action=AssumeRole") { MOTO_ANSWER } else { EMPTY_GROUPS };
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if stream.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, seen)
}

struct Lab {
    port: u16,
    upstream_seen: Arc<AtomicUsize>,
    log: std::path::PathBuf,
}

impl Lab {
    async fn start(name: &str) -> Lab {
        let (upstream, upstream_seen) = emulator().await;
        let log = std::env::temp_dir().join(format!("chaoslingr-lab-{name}-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&log);
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&log).expect("call log");
        let state = LabState::new(FileSettings::default().resolve().expect("settings"), std::time::SystemTime::now());
        let front = Front::new(Arc::new(Mutex::new(state)), format!("http://127.0.0.1:{upstream}").parse().unwrap())
            .with_call_log(file);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(proxy::serve(listener, Arc::new(front)));
        Lab { port, upstream_seen, log }
    }

    /// One request to the lab: the status, content type and body.
    async fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String, String) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).await.expect("connect");
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        for (k, v) in headers {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(body);
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.expect("read");
        let status = answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("status");
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        let content_type = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-type:").map(|v| v.trim().to_string()))
            .unwrap_or_default();
        (status, content_type, body.to_string())
    }

    /// A SigV4-signed (in form) query-protocol call by `key` to `service` in `region`.
    async fn call(&self, key: &str, service: &str, region: &str, body: &str) -> (u16, String, String) {
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={key}/20261202/{region}/{service}/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc"
        );
        let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/x-www-form-urlencoded")];
        self.send("POST", "/", &headers, body).await
    }

    async fn admin(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        let (status, _, body) = self.send(method, path, &[("Content-Type", "application/json")], body).await;
        (status, serde_json::from_str(&body).unwrap_or_default())
    }

    fn lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON call per line"))
            .collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.log);
    }
}

fn assume_role(account: &str) -> String {
    format!(
        "Action=AssumeRole&RoleArn=arn%3Aaws%3Aiam%3A%3A{account}%3Arole%2Fchaoslingr-target\
         &RoleSessionName=chaoslingr-hub&ExternalId=xyz-external&Version=2011-06-15"
    )
}

#[tokio::test]
async fn assume_role_is_refused_in_denied_accounts_only_in_stss_shape() {
    let lab = Lab::start("deny").await;
    // GIVEN AssumeRole refused in 333333333333 (and nothing else)
    let (status, body) = lab.admin("PUT", "/_lab/assume-role-denials", r#"["333333333333"]"#).await;
    assert_eq!((status, &body["accounts"]), (200, &serde_json::json!(["333333333333"])), "{body}");
    let (status, body) = lab.admin("GET", "/_lab/assume-role-denials", "").await;
    assert_eq!((status, &body["accounts"]), (200, &serde_json::json!(["333333333333"])));
    // AND a list with a bad account id is refused, changing nothing
    let (status, body) = lab.admin("PUT", "/_lab/assume-role-denials", r#"["333333333333", "12345"]"#).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("`12345` is not an AWS account id"), "{body}");
    let (status, body) = lab.admin("PUT", "/_lab/assume-role-denials", r#"{"accounts": 1}"#).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        lab.admin("GET", "/_lab/assume-role-denials", "").await.1["accounts"],
        serde_json::json!(["333333333333"])
    );

    // WHEN the hub assumes the role in the denied account
    let (status, content_type, body) = lab.call("AKIDJUDGE", "sts", "us-east-1", &assume_role("333333333333")).await;
    // THEN STS refuses it as STS does, and it never reaches the emulator
    assert_eq!((status, content_type.as_str()), (403, "text/xml"), "{body}");
    assert!(
        body.starts_with(
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>\
             <Code>AccessDenied</Code><Message>User: arn:aws:iam::123456789012:user/AKIDJUDGE is not authorized to \
             perform: sts:AssumeRole on resource: arn:aws:iam::333333333333:role/chaoslingr-target</Message></Error>\
             <RequestId>"
        ),
        "{body}"
    );
    assert!(body.ends_with("</RequestId></ErrorResponse>"), "{body}");
    assert_eq!(lab.upstream_seen.load(Ordering::SeqCst), 0);

    // WHEN it assumes the role in another account
    let (status, _, body) = lab.call("AKIDJUDGE", "sts", "us-east-1", &assume_role("111111111111")).await;
    // THEN the emulator answers it
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<AccessKeyId>ASIARTXV5AHDTGQIW5FB</AccessKeyId>"), "{body}");
    assert_eq!(lab.upstream_seen.load(Ordering::SeqCst), 1);

    // AND the call log tells the lab's refusal apart, naming the role
    let lines = lab.lines();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    let refused = &lines[0];
    assert_eq!(refused["action"], "sts:AssumeRole");
    assert_eq!(refused["access_key"], "AKIDJUDGE");
    assert_eq!(refused["denied"], true);
    assert_eq!(refused["allowed"], false);
    assert_eq!(refused["lab_denied_assume_role"], true);
    assert_eq!(refused["iam_allowed"], Value::Null);
    assert_eq!(refused["target_role_arn"], "arn:aws:iam::333333333333:role/chaoslingr-target");
    assert_eq!(refused["target_account"], "333333333333");
    assert_eq!(refused["status"], 403);
    assert!(refused.get("role_arn").is_none(), "the caller is not a role: {refused}");
    let passed = &lines[1];
    assert_eq!((passed["denied"].clone(), passed["status"].clone()), (Value::Bool(false), Value::from(200)));
    assert!(passed.get("lab_denied_assume_role").is_none(), "{passed}");
    assert_eq!(passed["target_account"], "111111111111");

    // WHEN the denials are lifted
    let (status, body) = lab.admin("PUT", "/_lab/assume-role-denials", "null").await;
    assert_eq!((status, &body["accounts"]), (200, &serde_json::json!([])));
    // THEN the role in 333333333333 can be assumed again
    let (status, _, _) = lab.call("AKIDJUDGE", "sts", "us-east-1", &assume_role("333333333333")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn calls_with_assumed_role_credentials_are_logged_as_the_role_in_its_account() {
    let lab = Lab::start("roles").await;
    // GIVEN the hub assumed the target role in 111111111111
    let (status, _, _) = lab.call("testing", "sts", "us-east-1", &assume_role("111111111111")).await;
    assert_eq!(status, 200);
    let (_, body) = lab.admin("GET", "/_lab/assumed-roles", "").await;
    assert_eq!(
        body["sessions"],
        serde_json::json!([{
            "access_key": "ASIARTXV5AHDTGQIW5FB",
            "role_arn": "arn:aws:iam::111111111111:role/chaoslingr-target",
            "account": "111111111111",
            "arn": "arn:aws:sts::111111111111:assumed-role/chaoslingr-target/chaoslingr-hub",
        }])
    );
    // WHEN it calls EC2 with those credentials, and with its own
    let describe = "Action=DescribeSecurityGroups&Version=2016-11-15";
    assert_eq!(lab.call("ASIARTXV5AHDTGQIW5FB", "ec2", "eu-west-1", describe).await.0, 200);
    assert_eq!(lab.call("testing", "ec2", "us-east-1", describe).await.0, 200);
    // THEN the role's call is logged with the role and its account, the hub's without
    let lines = lab.lines();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert_eq!(lines[0]["target_role_arn"], "arn:aws:iam::111111111111:role/chaoslingr-target");
    assert!(lines[0].get("role_arn").is_none(), "{}", lines[0]);
    assert_eq!(lines[1]["access_key"], "ASIARTXV5AHDTGQIW5FB");
    assert_eq!(lines[1]["action"], "ec2:DescribeSecurityGroups");
    assert_eq!(lines[1]["role_arn"], "arn:aws:iam::111111111111:role/chaoslingr-target");
    assert_eq!(lines[1]["account"], "111111111111");
    assert_eq!(lines[1]["allowed"], Value::Null, "not enforced: unevaluated as before");
    assert!(lines[2].get("role_arn").is_none() && lines[2].get("account").is_none(), "{}", lines[2]);
}
