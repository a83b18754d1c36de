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
use chaoslingr_lab::nacl::AclEntry;
use chaoslingr_lab::proxy::{self, Front};
use chaoslingr_lab::recorder::FileRecorder;
use chaoslingr_lab::rules::{Permission, Ports};
use chaoslingr_lab::settings::{parse_fault, FileSettings};
use chaoslingr_lab::state::LabState;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
    serve(state).await.0
}

/// Serves `state` on a loopback port: a Config client for it, and the port.
async fn serve(state: LabState) -> (aws_sdk_config::Client, u16) {
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
    (aws_sdk_config::Client::from_conf(conf), port)
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

const ACL_RULE: &str = "nacl-open-only-to-authorized-ports";
const ACL: &str = "AWS::EC2::NetworkAcl";

fn entry(rule_number: i32, allow: bool, protocol: &str, ports: Option<(i32, i32)>) -> AclEntry {
    AclEntry {
        rule_number,
        egress: false,
        allow,
        protocol: protocol.into(),
        cidr: Some("0.0.0.0/0".into()),
        ipv6_cidr: None,
        ports: ports.map(|(from, to)| Ports { from, to }),
    }
}

/// A lab that has seen `acl-open` gain an unauthorized entry and `acl-443` stay as seeded,
/// with the recorder `recorder`.
async fn acl_lab(recorder: FileRecorder) -> (aws_sdk_config::Client, u16) {
    let mut settings = FileSettings::default().resolve().expect("default settings");
    settings.nacl_config.latency = Duration::ZERO;
    settings.recorder = recorder.resolve().expect("recorder");
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000);
    let mut state = LabState::new(settings, t0);
    let seeded = vec![entry(100, true, "6", Some((443, 443))), entry(32767, false, "-1", None)];
    let mut opened = seeded.clone();
    opened.push(entry(120, true, "17", Some((40_000, 40_002))));
    state.scan(&[("acl-open".to_string(), vec![open(31337)])], t0);
    state.scan_acls(&[("acl-open".to_string(), seeded.clone()), ("acl-443".to_string(), seeded.clone())], t0);
    let t1 = t0 + Duration::from_secs(5);
    state.scan_acls(&[("acl-open".to_string(), opened), ("acl-443".to_string(), seeded)], t1);
    serve(state).await
}

#[tokio::test]
async fn acl_compliance_is_answered_for_the_acl_resource_type_only() {
    let (client, _) = acl_lab(FileRecorder::default()).await;
    let by = |resource_type: &'static str, id: &'static str| {
        client
            .get_compliance_details_by_resource()
            .resource_type(resource_type)
            .resource_id(id)
            .compliance_types(ComplianceType::NonCompliant)
            .send()
    };
    let out = by(ACL, "acl-open").await.expect("the SDK parses ACL results");
    let results = out.evaluation_results();
    assert_eq!(results.len(), 1);
    let q = results[0].evaluation_result_identifier().unwrap().evaluation_result_qualifier().unwrap();
    assert_eq!(
        (q.config_rule_name(), q.resource_type(), q.resource_id()),
        (Some(ACL_RULE), Some(ACL), Some("acl-open"))
    );
    assert!(results[0].annotation().unwrap_or_default().contains("entry 120"), "{:?}", results[0].annotation());
    assert_eq!(results[0].config_rule_invoked_time().map(|t| t.secs()), Some(1_790_000_005));
    assert!(by(ACL, "acl-443").await.expect("parse").evaluation_results().is_empty());
    // A group and an ACL with the same id never share results.
    let sg = by("AWS::EC2::SecurityGroup", "acl-open").await.expect("parse");
    let sg_rules: Vec<_> = sg
        .evaluation_results()
        .iter()
        .filter_map(|r| r.evaluation_result_identifier()?.evaluation_result_qualifier()?.config_rule_name())
        .collect();
    assert_eq!(sg_rules, vec![RULE]);

    let by_rule =
        client.get_compliance_details_by_config_rule().config_rule_name(ACL_RULE).send().await.expect("by ACL rule");
    assert_eq!(by_rule.evaluation_results().len(), 2, "both ACLs, NON_COMPLIANT and COMPLIANT");

    let rules = client.describe_config_rules().send().await.expect("DescribeConfigRules");
    let names: Vec<_> = rules.config_rules().iter().filter_map(|r| r.config_rule_name()).collect();
    assert_eq!(names, vec![RULE, ACL_RULE]);
    let acl_rule = &rules.config_rules()[1];
    assert_eq!(
        acl_rule.scope().map(|s| s.compliance_resource_types().to_vec()),
        Some(vec![ResourceType::NetworkAcl.as_str().to_string()])
    );
    assert_eq!(acl_rule.source().map(|s| s.owner().as_str()), Some("CUSTOM_LAMBDA"));
}

#[tokio::test]
async fn acl_requests_take_the_acl_config_fault_only() {
    let mut settings = FileSettings::default().resolve().expect("default settings");
    settings.nacl_config.fault = parse_fault("throttle:1").unwrap();
    let (client, _) = serve(LabState::new(settings, SystemTime::now())).await;
    let sg = client.get_compliance_details_by_resource().resource_type("AWS::EC2::SecurityGroup").resource_id("sg-1");
    sg.clone().send().await.expect("group requests are not faulted");
    let acl = client.get_compliance_details_by_resource().resource_type(ACL).resource_id("acl-1");
    assert_eq!(acl.clone().send().await.expect_err("throttled").code(), Some("ThrottlingException"));
    acl.send().await.expect("recovered");
    let by_rule = client.get_compliance_details_by_config_rule().config_rule_name(ACL_RULE).send().await;
    by_rule.expect("the one failure is spent");
}

fn recorder(toml_text: &str) -> FileRecorder {
    toml::from_str(toml_text).expect("recorder TOML")
}

#[tokio::test]
async fn every_recorder_case_parses_with_the_sdk() {
    use aws_sdk_config::types::{RecordingFrequency, RecordingStrategyType};
    // GIVEN the default recorder
    let (client, _) = acl_lab(FileRecorder::default()).await;
    let out = client.describe_configuration_recorders().send().await.expect("DescribeConfigurationRecorders");
    let r = &out.configuration_recorders()[0];
    assert_eq!(r.name(), Some("default"));
    let g = r.recording_group().expect("recordingGroup");
    assert!(g.all_supported());
    assert_eq!(
        g.recording_strategy().and_then(|s| s.use_only()),
        Some(&RecordingStrategyType::AllSupportedResourceTypes)
    );
    assert_eq!(r.recording_mode().map(|m| m.recording_frequency()), Some(&RecordingFrequency::Continuous));

    // Only some types.
    let (client, _) = acl_lab(recorder("all_supported = false\nresource_types = [\"AWS::EC2::SecurityGroup\"]")).await;
    let out = client.describe_configuration_recorders().send().await.expect("inclusion");
    let g = out.configuration_recorders()[0].recording_group().unwrap();
    assert!(!g.all_supported());
    assert_eq!(g.resource_types(), &[ResourceType::SecurityGroup]);
    assert_eq!(
        g.recording_strategy().and_then(|s| s.use_only()),
        Some(&RecordingStrategyType::InclusionByResourceTypes)
    );

    // All but ACLs, daily, groups continuously.
    let (client, _) = acl_lab(recorder(
        "exclude = [\"AWS::EC2::NetworkAcl\"]\nfrequency = \"DAILY\"\n[[overrides]]\nresource_types = [\"AWS::EC2::SecurityGroup\"]\nfrequency = \"CONTINUOUS\"\ndescription = \"groups live\"",
    ))
    .await;
    let out = client.describe_configuration_recorders().send().await.expect("exclusion");
    let r = &out.configuration_recorders()[0];
    let g = r.recording_group().unwrap();
    assert_eq!(
        g.exclusion_by_resource_types().map(|e| e.resource_types().to_vec()),
        Some(vec![ResourceType::NetworkAcl])
    );
    assert_eq!(
        g.recording_strategy().and_then(|s| s.use_only()),
        Some(&RecordingStrategyType::ExclusionByResourceTypes)
    );
    let m = r.recording_mode().unwrap();
    assert_eq!(m.recording_frequency(), &RecordingFrequency::Daily);
    let o = &m.recording_mode_overrides()[0];
    assert_eq!(
        (o.description(), o.resource_types(), o.recording_frequency()),
        (Some("groups live"), &[ResourceType::SecurityGroup][..], &RecordingFrequency::Continuous)
    );

    // Stopped.
    let (client, _) = acl_lab(recorder("recording = false")).await;
    let status = client.describe_configuration_recorder_status().send().await.expect("status");
    let s = &status.configuration_recorders_status()[0];
    assert!(!s.recording());
    assert!(s.last_stop_time().is_some());

    // None at all.
    let (client, _) = acl_lab(recorder("present = false")).await;
    assert!(client.describe_configuration_recorders().send().await.expect("none").configuration_recorders().is_empty());
    let status = client.describe_configuration_recorder_status().send().await.expect("no status");
    assert!(status.configuration_recorders_status().is_empty());
    let err = client
        .describe_configuration_recorders()
        .configuration_recorder_names("default")
        .send()
        .await
        .expect_err("no such recorder");
    assert!(
        err.as_service_error().map(|e| e.is_no_such_configuration_recorder_exception()).unwrap_or(false),
        "{err:?}"
    );
}

/// One unsigned request to the lab's admin API; the status and body.
async fn admin(port: u16, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    let status = answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("status");
    let json = answer.split("\r\n\r\n").nth(1).and_then(|b| serde_json::from_str(b).ok()).unwrap_or_default();
    (status, json)
}

#[tokio::test]
async fn the_recorder_changes_at_run_time_through_the_admin_api() {
    let (client, port) = acl_lab(FileRecorder::default()).await;
    // WHEN the recorder is replaced with one that leaves ACLs out
    let (status, body) = admin(port, "PUT", "/_lab/recorder", r#"{"exclude": ["AWS::EC2::NetworkAcl"]}"#).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["recorder"]["recordingGroup"]["recordingStrategy"]["useOnly"], "EXCLUSION_BY_RESOURCE_TYPES");
    // THEN Config describes it so
    let out = client.describe_configuration_recorders().send().await.expect("parse");
    let g = out.configuration_recorders()[0].recording_group().unwrap();
    assert_eq!(
        g.exclusion_by_resource_types().map(|e| e.resource_types().to_vec()),
        Some(vec![ResourceType::NetworkAcl])
    );
    // AND a contradiction is refused, leaving it as it was
    let (status, body) =
        admin(port, "PUT", "/_lab/recorder", r#"{"all_supported": true, "exclude": ["AWS::EC2::NetworkAcl"]}"#).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap_or_default().contains("exclude"), "{body}");
    let (_, body) = admin(port, "GET", "/_lab/recorder", "").await;
    assert_eq!(body["recorder"]["recordingGroup"]["allSupported"], false);
    // AND no recorder, then the default again
    admin(port, "PUT", "/_lab/recorder", r#"{"present": false}"#).await;
    assert!(client.describe_configuration_recorders().send().await.unwrap().configuration_recorders().is_empty());
    let (_, body) = admin(port, "GET", "/_lab/recorder", "").await;
    assert!(body["recorder"].is_null(), "{body}");
    let (status, _) = admin(port, "PUT", "/_lab/recorder", "null").await;
    assert_eq!(status, 200);
    let out = client.describe_configuration_recorder_status().send().await.unwrap();
    assert!(out.configuration_recorders_status()[0].recording());
}
