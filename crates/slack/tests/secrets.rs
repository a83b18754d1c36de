//! Reading the webhook URL from SSM or Secrets Manager (mocked with `aws-smithy-mocks`),
//! caching it, and mapping read failures. Posts go to a receiver on 127.0.0.1.
//!
//! Each test is written GIVEN (the mocked store and the receiver) / WHEN (posts) / THEN
//! (what the store was asked, what arrived, and the error).

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_secretsmanager::operation::get_secret_value::{GetSecretValueError, GetSecretValueOutput};
use aws_sdk_ssm::operation::get_parameter::{GetParameterError, GetParameterInput};
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use chaoslingr_slack::{Notifier, NotifyError, WebhookSource};
use support::*;

const PARAMETER: &str = "/chaoslingr/slack-webhook";
const SECRET_ID: &str = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:chaoslingr/slack-AbCdEf";

fn ssm_source() -> WebhookSource {
    WebhookSource::Ssm { parameter: PARAMETER.into() }
}

fn secret_source() -> WebhookSource {
    WebhookSource::SecretsManager { secret_id: SECRET_ID.into() }
}

fn secret(value: &str) -> GetSecretValueOutput {
    GetSecretValueOutput::builder().arn(SECRET_ID).name("chaoslingr/slack").secret_string(value).build()
}

#[tokio::test]
async fn ssm_is_read_with_decryption_and_the_configured_name() {
    // GIVEN the webhook URL in an SSM SecureString parameter
    let receiver = Receiver::start().await;
    let url = receiver.webhook_url();
    let requests = log::<GetParameterInput>();
    let rule = mock!(aws_sdk_ssm::Client::get_parameter)
        .match_requests(capture(&requests))
        .then_output(move || parameter(&url));
    let notifier = Notifier::with_clients(ssm(&[&rule]), secretsmanager(&[]), ssm_source()).unwrap();

    // WHEN posting
    notifier.post(&payload()).await.unwrap();

    // THEN the parameter was read by name, decrypted, and the payload reached the URL it holds
    let requests = seen(&requests);
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].name(), Some(PARAMETER));
    assert_eq!(requests[0].with_decryption(), Some(true));
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].path, SECRET_PATH);
    assert_eq!(received[0].json(), payload());
}

#[tokio::test]
async fn a_secretsmanager_secret_may_be_the_url_itself_or_json_with_url_or_webhook_url() {
    let receiver = Receiver::start().await;
    let url = receiver.webhook_url();
    for secret_string in [
        format!("{url}\n"),
        format!(r#"{{"url": "{url}"}}"#),
        format!(r#"{{"webhook_url": "{url}", "channel": "sec-chaos"}}"#),
    ] {
        // GIVEN a Secrets Manager secret in one of the accepted shapes
        let requests = log();
        let value = secret_string.clone();
        let rule = mock!(aws_sdk_secretsmanager::Client::get_secret_value)
            .match_requests(capture(&requests))
            .then_output(move || secret(&value));
        let notifier = Notifier::with_clients(ssm(&[]), secretsmanager(&[&rule]), secret_source()).unwrap();
        let before = receiver.received().len();

        // WHEN posting
        notifier.post(&payload()).await.unwrap();

        // THEN the secret was read by its id and the payload reached the URL inside it
        let requests: Vec<aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueInput> = seen(&requests);
        assert_eq!(requests.len(), 1, "{secret_string}");
        assert_eq!(requests[0].secret_id(), Some(SECRET_ID));
        let received = receiver.received();
        assert_eq!(received.len(), before + 1, "{secret_string}");
        assert_eq!(received[before].path, SECRET_PATH);
    }
}

#[tokio::test]
async fn the_url_is_read_once_for_many_posts() {
    // GIVEN a notifier with the default cache
    let receiver = Receiver::start().await;
    let url = receiver.webhook_url();
    let rule = mock!(aws_sdk_ssm::Client::get_parameter).then_output(move || parameter(&url));
    let notifier = Notifier::with_clients(ssm(&[&rule]), secretsmanager(&[]), ssm_source()).unwrap();

    // WHEN posting twice (two invocations of a warm Lambda)
    notifier.post(&payload()).await.unwrap();
    notifier.post(&payload()).await.unwrap();

    // THEN both arrived but the parameter was read once
    assert_eq!(receiver.received().len(), 2);
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn an_expired_cache_is_read_again_so_a_rotation_takes_effect() {
    // GIVEN a short cache and a parameter whose value is rotated between reads
    let receiver = Receiver::start().await;
    let current = Arc::new(Mutex::new(receiver.url("/services/old/XXXXsecretXXXX")));
    let value = Arc::clone(&current);
    let rule = mock!(aws_sdk_ssm::Client::get_parameter).then_output(move || parameter(&value.lock().unwrap()));
    let notifier = Notifier::with_clients(ssm(&[&rule]), secretsmanager(&[]), ssm_source())
        .unwrap()
        .with_cache_ttl(Duration::from_secs(1));

    // WHEN posting, rotating, posting at once, then posting after the cache expired
    notifier.post(&payload()).await.unwrap();
    *current.lock().unwrap() = receiver.url("/services/new/XXXXsecretXXXX");
    notifier.post(&payload()).await.unwrap();
    // Time, not a condition: the cache's 1-second TTL runs on the clock, so it must pass.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    notifier.post(&payload()).await.unwrap();

    // THEN the second post still used the cached URL and the third read the new one
    let paths: Vec<String> = receiver.received().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/services/old/XXXXsecretXXXX", "/services/old/XXXXsecretXXXX", "/services/new/XXXXsecretXXXX"]);
    assert_eq!(rule.num_calls(), 2);
}

#[tokio::test]
async fn ssm_access_denied_is_final_and_says_what_to_grant() {
    // GIVEN a role that may not read the parameter
    let receiver = Receiver::start().await;
    let rule = mock!(aws_sdk_ssm::Client::get_parameter).then_http_response(|| {
        json_error(400, "AccessDeniedException", "User: arn:aws:sts::111122223333:assumed-role/x is not authorized")
    });
    let notifier = Notifier::with_clients(ssm(&[&rule]), secretsmanager(&[]), ssm_source()).unwrap();

    // WHEN posting
    let err = notifier.post(&payload()).await.unwrap_err();

    // THEN nothing was sent, and the error is not retryable and names the fix
    assert!(receiver.received().is_empty());
    assert!(matches!(&err, NotifyError::SecretUnreadable { code, .. } if code == "AccessDeniedException"), "{err:?}");
    assert!(!err.retryable());
    let msg = err.to_string();
    assert!(msg.contains("ssm:GetParameter"), "{msg}");
    assert!(msg.contains("kms:Decrypt"), "{msg}");
    assert!(msg.contains(PARAMETER), "{msg}");
}

#[tokio::test]
async fn secretsmanager_access_denied_is_final_and_says_what_to_grant() {
    // GIVEN a role that may not read the secret
    let rule = mock!(aws_sdk_secretsmanager::Client::get_secret_value)
        .then_http_response(|| json_error(400, "AccessDeniedException", "not authorized"));
    let notifier = Notifier::with_clients(ssm(&[]), secretsmanager(&[&rule]), secret_source()).unwrap();

    // WHEN posting
    let err = notifier.post(&payload()).await.unwrap_err();

    // THEN the error is not retryable and names the permission and the secret
    assert!(!err.retryable());
    let msg = err.to_string();
    assert!(msg.contains("secretsmanager:GetSecretValue"), "{msg}");
    assert!(msg.contains(SECRET_ID), "{msg}");
}

#[tokio::test]
async fn a_missing_parameter_or_secret_is_final_and_points_at_the_setting() {
    // GIVEN a parameter and a secret that do not exist
    let no_parameter = mock!(aws_sdk_ssm::Client::get_parameter).then_error(|| {
        GetParameterError::ParameterNotFound(aws_sdk_ssm::types::error::ParameterNotFound::builder().build())
    });
    let no_secret = mock!(aws_sdk_secretsmanager::Client::get_secret_value).then_error(|| {
        GetSecretValueError::ResourceNotFoundException(
            aws_sdk_secretsmanager::types::error::ResourceNotFoundException::builder()
                .message("Secrets Manager can't find the specified secret.")
                .build(),
        )
    });
    for (notifier, code) in [
        (
            Notifier::with_clients(ssm(&[&no_parameter]), secretsmanager(&[]), ssm_source()).unwrap(),
            "ParameterNotFound",
        ),
        (
            Notifier::with_clients(ssm(&[]), secretsmanager(&[&no_secret]), secret_source()).unwrap(),
            "ResourceNotFoundException",
        ),
    ] {
        // WHEN posting
        let err = notifier.post(&payload()).await.unwrap_err();

        // THEN the error is final and tells to create it or fix CHAOSLINGR_SLACK_WEBHOOK
        assert!(!err.retryable(), "{err}");
        let msg = err.to_string();
        assert!(msg.contains(code), "{msg}");
        assert!(msg.contains("CHAOSLINGR_SLACK_WEBHOOK"), "{msg}");
    }
}

#[tokio::test]
async fn persistent_throttling_is_retryable_after_the_sdk_gave_up() {
    // GIVEN SSM that keeps throttling, on a client with the standard retry strategy
    let rule = mock!(aws_sdk_ssm::Client::get_parameter)
        .sequence()
        .http_response(|| json_error(400, "ThrottlingException", "Rate exceeded"))
        .times(3)
        .build();
    let client = mock_client!(aws_sdk_ssm, RuleMode::Sequential, [&rule], |c| c.retry_config(
        aws_sdk_ssm::config::retry::RetryConfig::standard().with_initial_backoff(Duration::from_millis(1))
    ));
    let notifier = Notifier::with_clients(client, secretsmanager(&[]), ssm_source()).unwrap();

    // WHEN posting
    let err = notifier.post(&payload()).await.unwrap_err();

    // THEN the SDK tried three times and the error says "worth retrying later"
    assert_eq!(rule.num_calls(), 3);
    assert!(matches!(&err, NotifyError::SecretUnreadable { code, .. } if code == "ThrottlingException"), "{err:?}");
    assert!(err.retryable());
}

#[tokio::test]
async fn a_failing_store_is_retryable() {
    for (status, code) in [(500, "InternalServerError"), (503, "ServiceUnavailable"), (400, "TooManyRequestsException")]
    {
        // GIVEN SSM answering with a server-side failure, once, without SDK retries
        let rule =
            mock!(aws_sdk_ssm::Client::get_parameter).then_http_response(move || json_error(status, code, "try later"));
        let notifier = Notifier::with_clients(ssm(&[&rule]), secretsmanager(&[]), ssm_source()).unwrap();

        // WHEN posting
        let err = notifier.post(&payload()).await.unwrap_err();

        // THEN the error is retryable
        assert!(err.retryable(), "{status} {code}: {err}");
    }
}

#[tokio::test]
async fn a_failed_read_is_not_cached() {
    // GIVEN a store that throttles once, then answers
    let receiver = Receiver::start().await;
    let url = receiver.webhook_url();
    let rule = mock!(aws_sdk_ssm::Client::get_parameter)
        .sequence()
        .http_response(|| json_error(400, "ThrottlingException", "Rate exceeded"))
        .output(move || parameter(&url))
        .build();
    let notifier = Notifier::with_clients(ssm(&[&rule]), secretsmanager(&[]), ssm_source()).unwrap();

    // WHEN posting (fails: no SDK retries here), then posting again (the next invocation)
    let first = notifier.post(&payload()).await;
    let second = notifier.post(&payload()).await;

    // THEN the first failed retryably, the second read the store again and delivered
    assert!(first.unwrap_err().retryable());
    second.unwrap();
    assert_eq!(rule.num_calls(), 2);
    assert_eq!(receiver.received().len(), 1);
}

#[tokio::test]
async fn a_secret_holding_a_bad_url_is_final_and_not_echoed() {
    for (value, expected) in [
        ("http://hooks.slack.com/services/T0001/B0002/XXXXsecretXXXX", "use https"),
        ("hooks.slack.com/services/T0001/B0002/XXXXsecretXXXX", "must start with https://"),
        (r#"{"hook": "https://hooks.slack.com/services/T0001/B0002/XXXXsecretXXXX"}"#, "`url` or `webhook_url`"),
        ("", "empty"),
    ] {
        // GIVEN a secret whose content is not a usable webhook URL
        let rule = mock!(aws_sdk_secretsmanager::Client::get_secret_value).then_output(move || secret(value));
        let notifier = Notifier::with_clients(ssm(&[]), secretsmanager(&[&rule]), secret_source()).unwrap();

        // WHEN posting
        let err = notifier.post(&payload()).await.unwrap_err();

        // THEN the error names the secret and the problem, is final, and does not quote the secret
        let msg = err.to_string();
        assert!(msg.contains(SECRET_ID), "{msg}");
        assert!(msg.contains(expected), "{value}: {msg}");
        assert!(!err.retryable());
        assert_no_secret(&msg);
        assert_no_secret(&format!("{err:?}"));
    }
}

#[tokio::test]
async fn the_notifier_debug_output_never_shows_the_url() {
    // GIVEN a notifier that has read and cached the URL
    let receiver = Receiver::start().await;
    let url = receiver.webhook_url();
    let rule = mock!(aws_sdk_ssm::Client::get_parameter).then_output(move || parameter(&url));
    let notifier = Notifier::with_clients(ssm(&[&rule]), secretsmanager(&[]), ssm_source()).unwrap();
    notifier.post(&payload()).await.unwrap();

    // WHEN formatting it for a log
    let debug = format!("{notifier:?}");

    // THEN the source is shown, the URL is not
    assert!(debug.contains(PARAMETER), "{debug}");
    assert_no_secret(&debug);
}

#[tokio::test]
async fn a_notifier_builds_from_an_sdk_config_without_calling_anything() {
    // GIVEN an SDK configuration as a Lambda's cold start would load it (no endpoint is
    // contacted: nothing is read until the first post)
    let sdk_config = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("eu-west-1"))
        .build();

    // WHEN building the notifier and its defaults
    let notifier = Notifier::new(&sdk_config, "ssm:/chaoslingr/slack-webhook".parse().unwrap()).unwrap();

    // THEN it knows its source, and reports the defaults the Lambda relies on
    assert_eq!(notifier.source(), &ssm_source());
    assert_eq!(chaoslingr_slack::DEFAULT_CACHE_TTL, Duration::from_secs(900));
    assert_eq!(chaoslingr_slack::DEFAULT_TIMEOUT, Duration::from_secs(10));
}
