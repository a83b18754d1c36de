//! Posting to a webhook receiver on 127.0.0.1: what arrives, and how each answer of the
//! webhook maps to an error. The URL comes from a mocked SSM parameter.
//!
//! Each test is written GIVEN (the receiver's answer) / WHEN (a post) / THEN (what arrived
//! and the error, which never contains the webhook's secret path).

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_smithy_mocks::{mock, Rule};
use chaoslingr_slack::{message, Notifier, NotifyError, WebhookSource};
use support::*;

fn source() -> WebhookSource {
    WebhookSource::Ssm { parameter: "/chaoslingr/slack-webhook".into() }
}

/// A parameter rule answering with the current value of `url`.
fn parameter_holding(url: &Arc<Mutex<String>>) -> Rule {
    let url = Arc::clone(url);
    mock!(aws_sdk_ssm::Client::get_parameter).then_output(move || parameter(&url.lock().unwrap()))
}

/// A notifier whose parameter holds `url`, and the parameter rule (to count reads).
fn notifier_for(url: &str) -> (Notifier, Rule) {
    let rule = parameter_holding(&Arc::new(Mutex::new(url.to_string())));
    let notifier = Notifier::with_clients(ssm(&[&rule]), secretsmanager(&[]), source()).unwrap();
    (notifier, rule)
}

#[tokio::test]
async fn a_post_delivers_the_payload_as_json() {
    // GIVEN a receiver and the payload of a real outcome message
    let receiver = Receiver::start().await;
    let (notifier, _) = notifier_for(&receiver.webhook_url());
    let payload = message::slack_payload(
        r#"{"schema": "chaoslingr.outcome/v1", "experiment_id": "cs-1", "outcome": "undetected",
            "security_group_id": "sg-123", "protocol": "udp", "from_port": 14603, "to_port": 14605,
            "reverted": true, "detections": []}"#,
    )
    .unwrap();

    // WHEN posting it
    notifier.post(&payload).await.unwrap();

    // THEN exactly that JSON arrived, POSTed as application/json to the webhook's path
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].method, "POST");
    assert_eq!(received[0].path, SECRET_PATH);
    assert_eq!(received[0].content_type.as_deref(), Some("application/json"));
    assert_eq!(received[0].json(), payload);
    assert_eq!(received[0].json()["text"], "ChaoSlingr: UNDETECTED on sg-123 (udp 14603-14605)");
}

#[tokio::test]
async fn server_errors_and_rate_limits_are_retryable() {
    for (status, body) in [(500, "internal_error"), (503, "service_unavailable"), (429, "rate_limited")] {
        // GIVEN a webhook answering with a failure of the moment
        let receiver = Receiver::start().await;
        receiver.answer(SECRET_PATH, status, body);
        let (notifier, _) = notifier_for(&receiver.webhook_url());

        // WHEN posting
        let err = notifier.post(&payload()).await.unwrap_err();

        // THEN the error is retryable, gives the status and Slack's word, and hides the path
        assert!(matches!(err, NotifyError::Rejected { status: s, .. } if s == status), "{err:?}");
        assert!(err.retryable(), "{err}");
        let msg = err.to_string();
        assert!(msg.contains(&format!("HTTP {status}")) && msg.contains(body), "{msg}");
        assert!(msg.contains("retry later"), "{msg}");
        assert_no_secret(&msg);
        assert_no_secret(&format!("{err:?}"));
    }
}

#[tokio::test]
async fn invalid_payload_is_final_and_keeps_the_cached_url() {
    // GIVEN a webhook refusing the message itself
    let receiver = Receiver::start().await;
    receiver.answer(SECRET_PATH, 400, "invalid_payload");
    let (notifier, rule) = notifier_for(&receiver.webhook_url());

    // WHEN posting twice
    let err = notifier.post(&payload()).await.unwrap_err();
    let _ = notifier.post(&payload()).await;

    // THEN the error is final and says so, and the URL (not at fault) was read only once
    assert!(!err.retryable());
    let msg = err.to_string();
    assert!(msg.contains("HTTP 400") && msg.contains("invalid_payload"), "{msg}");
    assert!(msg.contains("bug"), "{msg}");
    assert_no_secret(&msg);
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn a_dead_webhook_drops_the_cache_so_the_next_post_reads_the_secret_again() {
    for (status, body) in [(404, "no_service"), (403, "invalid_token"), (410, "channel_is_archived")] {
        // GIVEN a webhook that was revoked
        let receiver = Receiver::start().await;
        receiver.answer(SECRET_PATH, status, body);
        let (notifier, rule) = notifier_for(&receiver.webhook_url());

        // WHEN posting, and posting again (the next invocation)
        let first = notifier.post(&payload()).await.unwrap_err();
        let second = notifier.post(&payload()).await.unwrap_err();

        // THEN both fail for good, telling to create a new webhook, and each read the secret
        for err in [&first, &second] {
            assert!(!err.retryable(), "{err}");
            assert_eq!(err.http_status(), Some(status));
            let msg = err.to_string();
            assert!(msg.contains("create a new incoming webhook"), "{msg}");
            assert_no_secret(&msg);
        }
        assert_eq!(rule.num_calls(), 2, "HTTP {status}");
        assert_eq!(receiver.received().len(), 2);
    }
}

#[tokio::test]
async fn a_rotated_secret_is_picked_up_at_once_when_the_cached_url_is_refused() {
    // GIVEN a cached URL that was revoked after the secret was rotated to a new one
    let receiver = Receiver::start().await;
    let url = Arc::new(Mutex::new(receiver.url("/services/old/XXXXsecretXXXX")));
    let rule = parameter_holding(&url);
    let notifier = Notifier::with_clients(ssm(&[&rule]), secretsmanager(&[]), source()).unwrap();
    notifier.post(&payload()).await.unwrap();
    receiver.answer("/services/old/XXXXsecretXXXX", 404, "no_service");
    *url.lock().unwrap() = receiver.url("/services/new/XXXXsecretXXXX");

    // WHEN posting within the cache lifetime
    notifier.post(&payload()).await.unwrap();

    // THEN the refusal made the notifier read the secret again and deliver to the new URL
    let paths: Vec<String> = receiver.received().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/services/old/XXXXsecretXXXX", "/services/old/XXXXsecretXXXX", "/services/new/XXXXsecretXXXX"]);
    assert_eq!(rule.num_calls(), 2);
}

#[tokio::test]
async fn a_closed_port_is_a_retryable_connection_error() {
    // GIVEN a loopback port nobody listens on
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let (notifier, _) = notifier_for(&format!("http://127.0.0.1:{port}{SECRET_PATH}"));

    // WHEN posting
    let err = notifier.post(&payload()).await.unwrap_err();

    // THEN the connection failure is retryable, explained, and hides the path
    assert!(matches!(err, NotifyError::Unreachable { .. }), "{err:?}");
    assert!(err.retryable());
    let msg = err.to_string();
    assert!(msg.contains(&format!("http://127.0.0.1:{port}/***")), "{msg}");
    assert!(msg.to_lowercase().contains("connect"), "{msg}");
    assert_no_secret(&msg);
    assert_no_secret(&format!("{err:?}"));
}

#[tokio::test]
async fn a_webhook_that_does_not_answer_in_time_is_a_retryable_timeout() {
    // GIVEN a webhook that answers only after two seconds, and a 200 ms limit
    let receiver = Receiver::start().await;
    receiver.answer_slowly(SECRET_PATH, Duration::from_secs(2));
    let (notifier, _) = notifier_for(&receiver.webhook_url());
    let notifier = notifier.with_timeout(Duration::from_millis(200));
    let started = Instant::now();

    // WHEN posting
    let err = notifier.post(&payload()).await.unwrap_err();

    // THEN it gave up at the limit with a retryable timeout
    assert!(matches!(err, NotifyError::Timeout { .. }), "{err:?}");
    assert!(err.retryable());
    assert!(started.elapsed() < Duration::from_millis(1500), "{:?}", started.elapsed());
    assert_no_secret(&err.to_string());
}
