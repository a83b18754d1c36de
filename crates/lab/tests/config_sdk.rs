//! The lab's AWS Config answers, read by the real `aws-sdk-config` client: if the SDK's own
//! deserializers accept them (timestamps, enums, `NextToken`, `__type` errors), the
//! product's Config detector reads them exactly as it reads the real service.
//!
//! The lab is served in-process on 127.0.0.1; Config requests never reach the upstream.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_sdk_config::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_config::error::ProvideErrorMetadata;
use aws_sdk_config::types::{ComplianceType, ResourceType};
use chaoslingr_lab::proxy::{self, Front};
use chaoslingr_lab::rules::Permission;
use chaoslingr_lab::settings::{parse_fault, FileSettings};
use chaoslingr_lab::state::LabState;
use tokio::net::TcpListener;

const RULE: &str = "vpc-sg-open-only-to-authorized-ports";

fn open(port: i32) -> Permission {
    Permission { protocol: "tcp".into(), from: port, to: port, world_open: true }
}

/// A lab whose Config has recorded `offending` NON_COMPLIANT and `clean` COMPLIANT
/// groups, served on a loopback port with the given page size and Config fault.
async fn lab(offending: usize, clean: usize, page_size: usize, fault: &str) -> aws_sdk_config::Client {
    let mut settings = FileSettings::default().resolve().expect("default settings");
    settings.config.latency = Duration::ZERO;
    settings.config_page_size = page_size;
    settings.config.fault = parse_fault(fault).expect("fault");
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_millis(1_790_000_000_123);
    let mut state = LabState::new(settings, t0);
    let mut groups: Vec<(String, Vec<Permission>)> = Vec::new();
    for i in 0..offending {
        groups.push((format!("sg-bad{i:04}"), vec![open(443), open(31337)]));
    }
    for i in 0..clean {
        groups.push((format!("sg-ok{i:04}"), vec![open(443)]));
    }
    state.scan(&groups, t0);
    state.promote(t0);

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let port = listener.local_addr().expect("addr").port();
    // Nothing listens upstream: a request that leaked past the Config handler would fail.
    let front = Arc::new(Front::new(Arc::new(Mutex::new(state)), "http://127.0.0.1:9".parse().unwrap()));
    tokio::spawn(proxy::serve(listener, front));

    let conf = aws_sdk_config::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "lab-test"))
        .retry_config(aws_sdk_config::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_config::Client::from_conf(conf)
}

#[tokio::test]
async fn compliance_by_resource_parses_with_real_timestamps() {
    let client = lab(1, 1, 100, "none").await;
    let out = client
        .get_compliance_details_by_resource()
        .resource_type("AWS::EC2::SecurityGroup")
        .resource_id("sg-bad0000")
        .compliance_types(ComplianceType::NonCompliant)
        .send()
        .await
        .expect("the SDK parses GetComplianceDetailsByResource");
    let results = out.evaluation_results();
    assert_eq!(results.len(), 1);
    let r = &results[0];
    assert_eq!(r.compliance_type(), Some(&ComplianceType::NonCompliant));
    let q = r.evaluation_result_identifier().and_then(|i| i.evaluation_result_qualifier()).expect("qualifier");
    assert_eq!(q.config_rule_name(), Some(RULE));
    assert_eq!(q.resource_id(), Some("sg-bad0000"));
    let recorded = r.result_recorded_time().expect("ResultRecordedTime");
    // Epoch seconds with a fraction, as the service sends them; the SDK reads them through
    // an f64, so allow the last millisecond to round.
    let millis = recorded.to_millis().unwrap();
    assert!((1_790_000_000_122..=1_790_000_000_123).contains(&millis), "milliseconds survive: {millis}");
    assert_eq!(r.config_rule_invoked_time().map(|t| t.secs()), Some(1_790_000_000));
    assert!(r.annotation().unwrap_or_default().contains("tcp 31337"), "{:?}", r.annotation());

    let clean = client
        .get_compliance_details_by_resource()
        .resource_type("AWS::EC2::SecurityGroup")
        .resource_id("sg-ok0000")
        .compliance_types(ComplianceType::NonCompliant)
        .send()
        .await
        .expect("parse");
    assert!(clean.evaluation_results().is_empty(), "a compliant group has no NON_COMPLIANT result");
}

#[tokio::test]
async fn compliance_by_rule_pages_with_next_token() {
    let client = lab(7, 3, 100, "none").await;
    // Limit 3 over 7 NON_COMPLIANT results: pages of 3, 3, 1.
    let mut token: Option<String> = None;
    let mut pages = Vec::new();
    let mut ids = Vec::new();
    loop {
        let out = client
            .get_compliance_details_by_config_rule()
            .config_rule_name(RULE)
            .compliance_types(ComplianceType::NonCompliant)
            .limit(3)
            .set_next_token(token.clone())
            .send()
            .await
            .expect("the SDK parses GetComplianceDetailsByConfigRule");
        pages.push(out.evaluation_results().len());
        for r in out.evaluation_results() {
            let q = r.evaluation_result_identifier().unwrap().evaluation_result_qualifier().unwrap();
            ids.push(q.resource_id().unwrap().to_string());
        }
        token = out.next_token().map(String::from);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, vec![3, 3, 1]);
    let expected: Vec<String> = (0..7).map(|i| format!("sg-bad{i:04}")).collect();
    assert_eq!(ids, expected, "every result once, in order");

    // The SDK's own paginator follows the same tokens.
    let all: Vec<_> = client
        .get_compliance_details_by_config_rule()
        .config_rule_name(RULE)
        .limit(4)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .expect("paginate");
    assert_eq!(all.len(), 10, "7 NON_COMPLIANT and 3 COMPLIANT results across pages");
}

#[tokio::test]
async fn the_service_page_size_caps_results_by_resource() {
    let client = lab(1, 0, 1, "none").await;
    // One group with one rule has one result; a page size of 1 still ends without a token.
    let out = client
        .get_compliance_details_by_resource()
        .resource_type("AWS::EC2::SecurityGroup")
        .resource_id("sg-bad0000")
        .send()
        .await
        .expect("parse");
    assert_eq!(out.evaluation_results().len(), 1);
    assert!(out.next_token().is_none());
}

#[tokio::test]
async fn rules_and_recorder_status_parse() {
    let client = lab(0, 0, 100, "none").await;
    let rules = client.describe_config_rules().config_rule_names(RULE).send().await.expect("DescribeConfigRules");
    let rule = &rules.config_rules()[0];
    assert_eq!(rule.config_rule_name(), Some(RULE));
    assert_eq!(rule.source().and_then(|s| s.source_identifier()), Some("VPC_SG_OPEN_ONLY_TO_AUTHORIZED_PORTS"));
    assert_eq!(
        rule.scope().map(|s| s.compliance_resource_types().to_vec()),
        Some(vec![ResourceType::SecurityGroup.as_str().to_string()])
    );
    let params: serde_json::Value = serde_json::from_str(rule.input_parameters().unwrap()).unwrap();
    assert_eq!(params["authorizedTcpPorts"], "443");

    let status = client.describe_configuration_recorder_status().send().await.expect("recorder status");
    let rec = &status.configuration_recorders_status()[0];
    assert!(rec.recording());
    assert!(rec.last_start_time().is_some());
}

#[tokio::test]
async fn errors_arrive_as_the_sdk_error_codes() {
    let client = lab(1, 0, 100, "none").await;
    let err = client
        .get_compliance_details_by_config_rule()
        .config_rule_name("no-such-rule")
        .send()
        .await
        .expect_err("unknown rule");
    assert!(err.as_service_error().map(|e| e.is_no_such_config_rule_exception()).unwrap_or(false), "{err:?}");

    let err = client
        .get_compliance_details_by_config_rule()
        .config_rule_name(RULE)
        .next_token("not-a-token")
        .send()
        .await
        .expect_err("bad token");
    assert!(err.as_service_error().map(|e| e.is_invalid_next_token_exception()).unwrap_or(false), "{err:?}");

    let err = client.get_compliance_details_by_resource().resource_id("sg-1").send().await.expect_err("missing type");
    assert_eq!(err.code(), Some("ValidationException"), "{err:?}");
}

#[tokio::test]
async fn injected_throttling_fails_n_requests_then_recovers() {
    let client = lab(1, 0, 100, "throttle:2").await;
    let call = || {
        client
            .get_compliance_details_by_resource()
            .resource_type("AWS::EC2::SecurityGroup")
            .resource_id("sg-bad0000")
            .send()
    };
    for _ in 0..2 {
        let err = call().await.expect_err("throttled");
        assert_eq!(err.code(), Some("ThrottlingException"), "{err:?}");
    }
    assert_eq!(call().await.expect("recovered").evaluation_results().len(), 1);
}

#[tokio::test]
async fn injected_server_errors_are_5xx() {
    let client = lab(1, 0, 100, "error").await;
    let err = client.describe_config_rules().send().await.expect_err("5xx");
    assert_eq!(err.code(), Some("InternalFailure"), "{err:?}");
    let raw = err.raw_response().expect("raw response");
    assert_eq!(raw.status().as_u16(), 500);
}
