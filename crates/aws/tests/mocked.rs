//! Adapter tests on mocked SDK clients (`aws-smithy-mocks`): what each adapter sends,
//! how it pages, how it reads the answers and how it maps service errors. No network.
//!
//! Each test is written GIVEN (the mocked service) / WHEN (one adapter call) / THEN (the
//! adapter's result and the requests the service received).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_ec2::config::http::HttpResponse;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::DateTime;
use chaoslingr_aws::{AwsDetectors, AwsRecorder};
use chaoslingr_domain::experiment::{ExperimentRecord, PortRange, Protocol};
use chaoslingr_domain::judge::Reading;
use chaoslingr_domain::outcome::{DetectionReport, Outcome, OutcomeReport, SCHEMA};
use chaoslingr_domain::ports::{Detectors, Recorder};
use chaoslingr_domain::technique::Technique;
use chaoslingr_domain::time::rfc3339_millis;
use chaoslingr_domain::Detector;

// ---------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------

/// The technique of the experiments here, as `port-change` describes itself (the adapters
/// read only its Config resource type and ARN resource).
static PORT_CHANGE: Technique = Technique {
    name: "port-change",
    summary: "",
    target: "security group",
    targets: "security groups",
    target_prefix: "sg-",
    change: "ingress rule",
    change_prefix: "sgr-",
    config_resource_type: "AWS::EC2::SecurityGroup",
    arn_resource: "security-group",
    record_first: false,
};

/// The injection time of every experiment here: 2026-11-23T18:47:00Z.
fn t() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_459_620)
}

fn after(secs: f64) -> SystemTime {
    t() + Duration::from_secs_f64(secs)
}

fn before(secs: f64) -> SystemTime {
    t() - Duration::from_secs_f64(secs)
}

fn sdk_time(at: SystemTime) -> DateTime {
    DateTime::from(at)
}

/// Requests a mocked operation received, in order.
type Log<I> = Arc<Mutex<Vec<I>>>;

fn log<I>() -> Log<I> {
    Arc::new(Mutex::new(Vec::new()))
}

/// A request matcher that accepts everything and keeps a copy of each request. It is
/// called once per operation (retries reuse the first match), so the log has one entry
/// per `send()`.
fn capture<I: Clone + Send + 'static>(log: &Log<I>) -> impl Fn(&I) -> bool + Send + Sync + 'static {
    let log = Arc::clone(log);
    move |input: &I| {
        log.lock().unwrap().push(input.clone());
        true
    }
}

fn seen<I: Clone>(log: &Log<I>) -> Vec<I> {
    log.lock().unwrap().clone()
}

fn http_response(status: u16, body: &str) -> HttpResponse {
    HttpResponse::new(status.try_into().unwrap(), SdkBody::from(body.to_string()))
}

fn record(detectors: &[&str]) -> ExperimentRecord {
    ExperimentRecord {
        id: "cs-20261123T120000Z-abcdef".parse().unwrap(),
        security_group_id: "sg-0abc".into(),
        security_group_rule_id: "sgr-0new".into(),
        account: Some("111122223333".into()),
        protocol: Protocol::Tcp,
        ports: PortRange::new(20_000, 20_002).unwrap(),
        cidr: "0.0.0.0/0".into(),
        injected_at: t(),
        deadline: after(900.0),
        detectors: detectors.iter().map(|d| d.parse().unwrap()).collect(),
    }
}

fn detector(s: &str) -> Detector {
    s.parse().unwrap()
}

#[track_caller]
fn assert_fired_at(reading: &Reading, expected: SystemTime) {
    match reading {
        Reading::Fired { at, .. } => assert_eq!(*at, expected, "fired at the wrong time: {reading:?}"),
        other => panic!("expected Fired at {}, got {other:?}", rfc3339_millis(expected)),
    }
}

#[track_caller]
fn assert_quiet(reading: &Reading) {
    assert!(matches!(reading, Reading::Quiet { .. }), "expected Quiet, got {reading:?}");
}

// ---------------------------------------------------------------------------------------
// Detectors
// ---------------------------------------------------------------------------------------

mod detectors {
    use super::*;
    use aws_sdk_cloudwatch::operation::describe_alarms::{DescribeAlarmsInput, DescribeAlarmsOutput};
    use aws_sdk_cloudwatch::types::{AlarmType, CompositeAlarm, MetricAlarm, StateValue};
    use aws_sdk_config::operation::get_compliance_details_by_resource::{
        GetComplianceDetailsByResourceInput, GetComplianceDetailsByResourceOutput,
    };
    use aws_sdk_config::types::{
        ComplianceType, EvaluationResult, EvaluationResultIdentifier, EvaluationResultQualifier,
    };
    use aws_sdk_securityhub::operation::get_findings::{GetFindingsInput, GetFindingsOutput};
    use aws_sdk_securityhub::types::{AwsSecurityFinding, RecordState, Resource, StringFilterComparison};

    const RULE: &str = "vpc-sg-open-only-to-authorized-ports";
    const CONFIG_DETECTOR: &str = "config:vpc-sg-open-only-to-authorized-ports";
    const GROUP_ARN: &str = "arn:aws:ec2:us-east-1:111122223333:security-group/sg-0abc";

    /// Detectors on three mocked clients; a client given no rules panics if called.
    fn detectors(cloudwatch: &[&Rule], config: &[&Rule], securityhub: &[&Rule]) -> AwsDetectors {
        AwsDetectors::new(
            mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, cloudwatch),
            mock_client!(aws_sdk_config, RuleMode::MatchAny, config, |c| c
                .retry_config(aws_sdk_config::config::retry::RetryConfig::disabled())),
            mock_client!(aws_sdk_securityhub, RuleMode::MatchAny, securityhub),
            Some("us-east-1".into()),
        )
    }

    fn evaluation(rule: &str, compliance: ComplianceType, recorded: SystemTime) -> EvaluationResult {
        EvaluationResult::builder()
            .evaluation_result_identifier(
                EvaluationResultIdentifier::builder()
                    .evaluation_result_qualifier(
                        EvaluationResultQualifier::builder()
                            .config_rule_name(rule)
                            .resource_type("AWS::EC2::SecurityGroup")
                            .resource_id("sg-0abc")
                            .build(),
                    )
                    .ordering_timestamp(sdk_time(recorded))
                    .build(),
            )
            .compliance_type(compliance)
            .result_recorded_time(sdk_time(recorded))
            .config_rule_invoked_time(sdk_time(recorded - Duration::from_secs(2)))
            .build()
    }

    fn compliance_page(results: Vec<EvaluationResult>, next: Option<&str>) -> GetComplianceDetailsByResourceOutput {
        GetComplianceDetailsByResourceOutput::builder()
            .set_evaluation_results(Some(results))
            .set_next_token(next.map(str::to_string))
            .build()
    }

    /// Config answering one page of results for every request.
    fn config_answering(results: Vec<EvaluationResult>) -> Rule {
        mock!(aws_sdk_config::Client::get_compliance_details_by_resource)
            .then_output(move || compliance_page(results.clone(), None))
    }

    #[tokio::test]
    async fn config_fires_at_the_earliest_fresh_noncompliant_result_across_pages() {
        // GIVEN Config with a stale NON_COMPLIANT result and a fresh one at T+90s on page
        // one, and the earliest fresh one (T+37.5s) on page two
        let requests = log::<GetComplianceDetailsByResourceInput>();
        let rule = mock!(aws_sdk_config::Client::get_compliance_details_by_resource)
            .match_requests(capture(&requests))
            .then_compute_output(|req| match req.next_token() {
                None => compliance_page(
                    vec![
                        evaluation(RULE, ComplianceType::NonCompliant, before(3600.0)),
                        evaluation(RULE, ComplianceType::NonCompliant, after(90.0)),
                    ],
                    Some("cfg-2"),
                ),
                Some("cfg-2") => {
                    compliance_page(vec![evaluation(RULE, ComplianceType::NonCompliant, after(37.5))], None)
                }
                Some(other) => panic!("Config never issued NextToken {other:?}"),
            });
        let d = detectors(&[], &[&rule], &[]);

        // WHEN observing
        let readings = d.observe(&PORT_CHANGE, &record(&[CONFIG_DETECTOR])).await;

        // THEN the rule fired at its own ResultRecordedTime, T+37.5s
        assert_eq!(readings.len(), 1);
        assert_eq!(readings[0].0, detector(CONFIG_DETECTOR));
        assert_fired_at(&readings[0].1, after(37.5));
        // AND both pages asked for the group's NON_COMPLIANT results
        let requests = seen(&requests);
        assert_eq!(requests.iter().map(|r| r.next_token()).collect::<Vec<_>>(), [None, Some("cfg-2")]);
        for r in &requests {
            assert_eq!(r.resource_type(), Some("AWS::EC2::SecurityGroup"));
            assert_eq!(r.resource_id(), Some("sg-0abc"));
            assert_eq!(r.compliance_types(), [ComplianceType::NonCompliant]);
        }
    }

    #[tokio::test]
    async fn config_stays_quiet_on_stale_results_and_on_other_rules() {
        // GIVEN Config with only a result recorded before the injection
        let stale = config_answering(vec![evaluation(RULE, ComplianceType::NonCompliant, before(0.001))]);
        // WHEN observing / THEN quiet
        let readings = detectors(&[], &[&stale], &[]).observe(&PORT_CHANGE, &record(&[CONFIG_DETECTOR])).await;
        assert_quiet(&readings[0].1);
        assert_eq!(stale.num_calls(), 1);

        // GIVEN Config with a fresh result, but from another rule
        let other = config_answering(vec![evaluation("some-other-rule", ComplianceType::NonCompliant, after(10.0))]);
        // WHEN observing / THEN quiet
        let readings = detectors(&[], &[&other], &[]).observe(&PORT_CHANGE, &record(&[CONFIG_DETECTOR])).await;
        assert_quiet(&readings[0].1);
    }

    #[tokio::test]
    async fn config_failure_is_an_error_reading() {
        // GIVEN Config refusing the call
        let denied = mock!(aws_sdk_config::Client::get_compliance_details_by_resource).then_http_response(|| {
            http_response(
                400,
                r#"{"__type":"AccessDeniedException","message":"not authorized to perform config:GetComplianceDetailsByResource"}"#,
            )
        });

        // WHEN observing
        let readings = detectors(&[], &[&denied], &[]).observe(&PORT_CHANGE, &record(&[CONFIG_DETECTOR])).await;

        // THEN the detector could not be read (neither quiet nor fired)
        match &readings[0].1 {
            Reading::Error { message } => {
                assert!(message.contains("GetComplianceDetailsByResource"), "{message}");
                assert!(message.contains("AccessDeniedException"), "{message}");
            }
            other => panic!("expected Error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn noncompliant_rules_lists_only_rules_with_noncompliant_results() {
        // GIVEN Config (ignoring the ComplianceTypes filter) with results for a, b, c, d
        let rule = config_answering(vec![
            evaluation("a", ComplianceType::NonCompliant, before(86_400.0)),
            evaluation("b", ComplianceType::Compliant, before(60.0)),
            evaluation("d", ComplianceType::NonCompliant, before(60.0)),
            evaluation("c", ComplianceType::NonCompliant, before(60.0)),
        ]);
        let d = detectors(&[], &[&rule], &[]);

        // WHEN asking which of a, b, c are already NON_COMPLIANT
        let rules = ["a".to_string(), "b".to_string(), "c".to_string()];
        let got = d.noncompliant_rules(&PORT_CHANGE, "sg-0abc", &rules).await.unwrap();

        // THEN a and c, in the order asked
        assert_eq!(got, ["a", "c"]);
    }

    fn metric_alarm(name: &str, state: StateValue, updated: SystemTime) -> MetricAlarm {
        MetricAlarm::builder().alarm_name(name).state_value(state).state_updated_timestamp(sdk_time(updated)).build()
    }

    fn alarms_answering(
        metric: Vec<MetricAlarm>,
        composite: Vec<CompositeAlarm>,
        requests: &Log<DescribeAlarmsInput>,
    ) -> Rule {
        mock!(aws_sdk_cloudwatch::Client::describe_alarms).match_requests(capture(requests)).then_output(move || {
            DescribeAlarmsOutput::builder()
                .set_metric_alarms(Some(metric.clone()))
                .set_composite_alarms(Some(composite.clone()))
                .build()
        })
    }

    #[tokio::test]
    async fn an_alarm_fires_at_its_state_update_only_when_in_alarm_since_injection() {
        // GIVEN the alarm entered ALARM at T+12s
        let requests = log();
        let rule = alarms_answering(vec![metric_alarm("fw", StateValue::Alarm, after(12.0))], vec![], &requests);
        // WHEN observing
        let readings = detectors(&[&rule], &[], &[]).observe(&PORT_CHANGE, &record(&["alarm:fw"])).await;
        // THEN fired at T+12s, after asking for that alarm among metric and composite alarms
        assert_eq!(readings[0].0, detector("alarm:fw"));
        assert_fired_at(&readings[0].1, after(12.0));
        let requests = seen(&requests);
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].alarm_names(), ["fw".to_string()]);
        assert!(requests[0].alarm_types().contains(&AlarmType::MetricAlarm));
        assert!(requests[0].alarm_types().contains(&AlarmType::CompositeAlarm));

        // GIVEN the alarm is in ALARM since before the injection / THEN quiet
        let rule = alarms_answering(vec![metric_alarm("fw", StateValue::Alarm, before(1.0))], vec![], &log());
        let readings = detectors(&[&rule], &[], &[]).observe(&PORT_CHANGE, &record(&["alarm:fw"])).await;
        assert_quiet(&readings[0].1);

        // GIVEN the alarm went back to OK after the injection / THEN quiet
        let rule = alarms_answering(vec![metric_alarm("fw", StateValue::Ok, after(30.0))], vec![], &log());
        let readings = detectors(&[&rule], &[], &[]).observe(&PORT_CHANGE, &record(&["alarm:fw"])).await;
        assert_quiet(&readings[0].1);
    }

    #[tokio::test]
    async fn a_missing_alarm_is_an_error_reading() {
        // GIVEN CloudWatch knows no alarm of that name
        let rule = alarms_answering(vec![metric_alarm("other", StateValue::Alarm, after(5.0))], vec![], &log());
        // WHEN observing
        let readings = detectors(&[&rule], &[], &[]).observe(&PORT_CHANGE, &record(&["alarm:fw"])).await;
        // THEN the reading says it does not exist
        match &readings[0].1 {
            Reading::Error { message } => assert!(message.contains("does not exist"), "{message}"),
            other => panic!("expected Error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn alarm_states_include_composite_alarms() {
        // GIVEN one metric alarm and one composite alarm
        let composite = CompositeAlarm::builder()
            .alarm_name("composite-fw")
            .state_value(StateValue::Alarm)
            .state_updated_timestamp(sdk_time(after(3.0)))
            .build();
        let rule = alarms_answering(vec![metric_alarm("fw", StateValue::Ok, before(10.0))], vec![composite], &log());
        let d = detectors(&[&rule], &[], &[]);

        // WHEN reading their states
        let states = d.alarm_states(&["fw".to_string(), "composite-fw".to_string()]).await.unwrap();

        // THEN both are there, with state and update time
        let summary: Vec<(&str, &str, Option<SystemTime>)> =
            states.iter().map(|s| (s.name.as_str(), s.state.as_str(), s.updated)).collect();
        assert_eq!(states[1].state, chaoslingr_domain::ports::AlarmValue::Alarm);
        assert_eq!(summary, [("fw", "OK", Some(before(10.0))), ("composite-fw", "ALARM", Some(after(3.0)))]);
    }

    fn finding(
        id: &str,
        resource: &str,
        generator: &str,
        created: SystemTime,
        state: RecordState,
    ) -> AwsSecurityFinding {
        AwsSecurityFinding::builder()
            .id(id)
            .title(format!("finding {id}"))
            .generator_id(generator)
            .created_at(rfc3339_millis(created))
            .updated_at(rfc3339_millis(created))
            .record_state(state)
            .resources(Resource::builder().r#type("AwsEc2SecurityGroup").id(resource).build())
            .build()
    }

    /// Security Hub as an emulator that ignores every filter: the same findings always.
    fn hub_ignoring_filters(requests: &Log<GetFindingsInput>) -> Rule {
        let other_group = "arn:aws:ec2:us-east-1:111122223333:security-group/sg-0abcdef";
        mock!(aws_sdk_securityhub::Client::get_findings).match_requests(capture(requests)).then_output(move || {
            GetFindingsOutput::builder()
                .findings(finding("other-group", other_group, "G", after(5.0), RecordState::Active))
                .findings(finding("old", GROUP_ARN, "G", before(60.0), RecordState::Active))
                .findings(finding("archived", GROUP_ARN, "G", after(10.0), RecordState::Archived))
                .findings(finding("ours", GROUP_ARN, "G", after(20.0), RecordState::Active))
                .findings(finding("ours-later", GROUP_ARN, "G", after(45.0), RecordState::Active))
                .build()
        })
    }

    #[tokio::test]
    async fn security_hub_fires_only_on_an_active_finding_for_the_group_since_injection() {
        // GIVEN Security Hub returning decoys (another group, an old finding, an archived
        // one, all earlier) and our finding at T+20s from generator G
        let requests = log::<GetFindingsInput>();
        let rule = hub_ignoring_filters(&requests);
        let d = detectors(&[], &[], &[&rule]);

        // WHEN observing with detector securityhub:G
        let readings = d.observe(&PORT_CHANGE, &record(&["securityhub:G"])).await;

        // THEN it fired at T+20s, from the matching finding
        assert_eq!(readings[0].0, detector("securityhub:G"));
        assert_fired_at(&readings[0].1, after(20.0));
        match &readings[0].1 {
            Reading::Fired { evidence, .. } => assert!(evidence.contains("finding ours"), "{evidence}"),
            _ => unreachable!(),
        }
        // AND the request filtered on the group ARN, the window, ACTIVE and the generator
        let requests = seen(&requests);
        assert_eq!(requests.len(), 1);
        let f = requests[0].filters().expect("filters are sent");
        assert_eq!(f.resource_id().len(), 1);
        assert_eq!(f.resource_id()[0].value(), Some(GROUP_ARN));
        assert_eq!(f.resource_id()[0].comparison(), Some(&StringFilterComparison::Equals));
        assert_eq!(f.created_at().len(), 1);
        let window = &f.created_at()[0];
        let parse = |s: Option<&str>| chaoslingr_domain::time::parse_rfc3339(s.expect("bound set")).expect("RFC 3339");
        assert!(parse(window.start()) <= t(), "{window:?}");
        assert!(parse(window.end()) >= after(900.0), "{window:?}");
        assert_eq!(f.record_state()[0].value(), Some("ACTIVE"));
        assert_eq!(f.generator_id()[0].value(), Some("G"));
    }

    #[tokio::test]
    async fn security_hub_ignores_findings_of_another_generator() {
        // GIVEN the same findings, all from generator G
        let rule = hub_ignoring_filters(&log());
        // WHEN observing with another generator
        let readings =
            detectors(&[], &[], &[&rule]).observe(&PORT_CHANGE, &record(&["securityhub:OTHER-GENERATOR"])).await;
        // THEN quiet
        assert_eq!(readings[0].0, detector("securityhub:OTHER-GENERATOR"));
        assert_quiet(&readings[0].1);
        assert_eq!(rule.num_calls(), 1);
    }
}

// ---------------------------------------------------------------------------------------
// Recorder
// ---------------------------------------------------------------------------------------

mod recorder {
    use super::*;
    use aws_sdk_cloudwatch::operation::get_metric_statistics::{GetMetricStatisticsInput, GetMetricStatisticsOutput};
    use aws_sdk_cloudwatch::operation::put_metric_data::{PutMetricDataInput, PutMetricDataOutput};
    use aws_sdk_cloudwatch::types::Datapoint;
    use aws_sdk_cloudwatch::types::{MetricDatum, StandardUnit};
    use aws_sdk_sns::error::ErrorMetadata;
    use aws_sdk_sns::operation::publish::{PublishError, PublishInput, PublishOutput};
    use aws_sdk_sns::types::error::AuthorizationErrorException;

    const TOPIC: &str = "arn:aws:sns:us-east-1:111122223333:chaoslingr-outcomes";

    fn report(reverted: bool) -> OutcomeReport {
        OutcomeReport {
            schema: SCHEMA,
            experiment_id: "cs-20261123T120000Z-abcdef".into(),
            experiment: "port-change",
            account: Some("111122223333".into()),
            region: Some("us-east-1".into()),
            target_type: "security-group",
            target_id: Some("sg-0abc".into()),
            change_id: Some("sgr-0new".into()),
            security_group_id: Some("sg-0abc".into()),
            security_group_rule_id: Some("sgr-0new".into()),
            protocol: Some("tcp".into()),
            from_port: Some(20_000),
            to_port: Some(20_002),
            cidr: Some("0.0.0.0/0".into()),
            injected_at: Some(rfc3339_millis(t())),
            concluded_at: rfc3339_millis(after(60.0)),
            outcome: Outcome::Detected,
            reason: "1 of 2 detectors noticed the port".into(),
            detections: vec![
                DetectionReport {
                    detector: "alarm:fw".into(),
                    detected: true,
                    seconds_to_detect: Some(42.5),
                    evidence: "alarm fw entered ALARM".into(),
                    could_not_see: false,
                },
                DetectionReport {
                    detector: "config:vpc-sg-open-only-to-authorized-ports".into(),
                    detected: false,
                    seconds_to_detect: None,
                    evidence: "no NON_COMPLIANT result".into(),
                    could_not_see: false,
                },
            ],
            reverted,
            dry_run: false,
            quiet: false,
        }
    }

    fn put_metrics(requests: &Log<PutMetricDataInput>) -> Rule {
        mock!(aws_sdk_cloudwatch::Client::put_metric_data)
            .match_requests(capture(requests))
            .then_output(|| PutMetricDataOutput::builder().build())
    }

    fn publish(requests: &Log<PublishInput>) -> Rule {
        mock!(aws_sdk_sns::Client::publish)
            .match_requests(capture(requests))
            .then_output(|| PublishOutput::builder().message_id("msg-1").build())
    }

    fn recorder(cloudwatch: &Rule, sns: &Rule, topic: Option<&str>) -> AwsRecorder {
        AwsRecorder::new(
            mock_client!(aws_sdk_cloudwatch, [cloudwatch]),
            mock_client!(aws_sdk_sns, [sns]),
            "ChaoSlingr".into(),
            topic.map(str::to_string),
        )
    }

    /// The single datum called `name`.
    #[track_caller]
    fn datum<'a>(data: &'a [MetricDatum], name: &str) -> &'a MetricDatum {
        let found: Vec<&MetricDatum> = data.iter().filter(|d| d.metric_name() == Some(name)).collect();
        assert_eq!(found.len(), 1, "expected one {name} datum in {data:?}");
        found[0]
    }

    fn dimensions(d: &MetricDatum) -> Vec<(&str, &str)> {
        d.dimensions().iter().map(|x| (x.name().unwrap(), x.value().unwrap())).collect()
    }

    fn cloudwatch_500() -> HttpResponse {
        HttpResponse::new(
            500.try_into().unwrap(),
            SdkBody::from(
                "<ErrorResponse><Error><Type>Receiver</Type><Code>InternalFailure</Code><Message>lost</Message></Error></ErrorResponse>",
            ),
        )
    }

    fn read_back(requests: &Log<GetMetricStatisticsInput>, counted: bool) -> Rule {
        mock!(aws_sdk_cloudwatch::Client::get_metric_statistics).match_requests(capture(requests)).then_output(
            move || {
                let mut out = GetMetricStatisticsOutput::builder();
                if counted {
                    out = out.datapoints(Datapoint::builder().sum(1.0).build());
                }
                out.build()
            },
        )
    }

    #[tokio::test]
    async fn a_put_whose_answer_was_lost_is_read_back_and_never_counted_twice() {
        for applied in [true, false] {
            // GIVEN a PutMetricData that fails, then a read-back that finds the experiment's
            // datum (the lost put was applied) or not
            let (puts, reads, messages) = (log::<PutMetricDataInput>(), log::<GetMetricStatisticsInput>(), log());
            let failed = mock!(aws_sdk_cloudwatch::Client::put_metric_data)
                .match_requests(capture(&puts))
                .then_http_response(cloudwatch_500);
            let read = read_back(&reads, applied);
            let ok = put_metrics(&puts);
            let sns = publish(&messages);
            let cloudwatch = mock_client!(aws_sdk_cloudwatch, RuleMode::Sequential, [&failed, &read, &ok]);
            let recorder = AwsRecorder::new(cloudwatch, mock_client!(aws_sdk_sns, [&sns]), "ChaoSlingr".into(), None);

            // WHEN counting the outcome
            let failures = recorder.count(&report(true)).await;

            // THEN it is counted once: one put (SDK retries off) and no second one when the
            // read-back shows the first was applied; a second put when it was not
            assert!(failures.is_empty(), "{failures:?}");
            assert_eq!(seen(&puts).len(), if applied { 1 } else { 2 }, "applied: {applied}");
            let r = seen(&reads);
            assert_eq!(r.len(), 1);
            assert_eq!(r[0].metric_name(), Some("Recorded"));
            let dims: Vec<_> = r[0].dimensions().iter().map(|d| (d.name().unwrap(), d.value().unwrap())).collect();
            assert_eq!(dims, [("Experiment", "port-change"), ("ExperimentId", report(true).experiment_id.as_str())]);
        }
    }

    #[tokio::test]
    async fn record_puts_one_batch_of_metrics_and_publishes_the_outcome_json() {
        // GIVEN CloudWatch and SNS that accept everything
        let (metrics, messages) = (log::<PutMetricDataInput>(), log::<PublishInput>());
        let (cw, sns) = (put_metrics(&metrics), publish(&messages));

        // WHEN recording a detected outcome, one detector having noticed after 42.5s
        let failures = recorder(&cw, &sns, Some(TOPIC)).record(&report(true)).await;

        // THEN nothing failed
        assert!(failures.is_empty(), "{failures:?}");
        // AND one PutMetricData call in the namespace carried every metric
        let metrics = seen(&metrics);
        assert_eq!(metrics.len(), 1);
        assert_eq!(metrics[0].namespace(), Some("ChaoSlingr"));
        let data = metrics[0].metric_data();
        for (name, value) in [
            ("Experiments", 1.0),
            ("Prevented", 0.0),
            ("Detected", 1.0),
            ("Remediated", 0.0),
            ("Undetected", 0.0),
            ("Aborted", 0.0),
            ("Failed", 0.0),
            ("RevertFailures", 0.0),
        ] {
            let d = datum(data, name);
            assert_eq!(d.value(), Some(value), "{name}");
            assert_eq!(d.unit(), Some(&StandardUnit::Count), "{name}");
            assert_eq!(dimensions(d), [("Experiment", "port-change")], "{name}");
        }
        let ttd = datum(data, "TimeToDetect");
        assert_eq!(ttd.value(), Some(42.5));
        assert_eq!(ttd.unit(), Some(&StandardUnit::Seconds));
        assert_eq!(dimensions(ttd), [("Experiment", "port-change"), ("Detector", "alarm:fw")]);
        // AND the experiment's own datum, which says it was counted, in the same request
        let recorded = datum(data, "Recorded");
        assert_eq!(recorded.value(), Some(1.0));
        assert_eq!(
            dimensions(recorded),
            [("Experiment", "port-change"), ("ExperimentId", report(true).experiment_id.as_str())]
        );
        assert_eq!(data.len(), 10, "no TimeToDetect for the detector that did not notice");

        // AND one message went to the topic, with the outcome JSON and its attributes
        let messages = seen(&messages);
        assert_eq!(messages.len(), 1);
        let m = &messages[0];
        assert_eq!(m.topic_arn(), Some(TOPIC));
        assert_eq!(m.subject(), Some("ChaoSlingr: detected on sg-0abc"));
        let body: serde_json::Value = serde_json::from_str(m.message().expect("a message")).expect("JSON");
        assert_eq!(body["schema"], "chaoslingr.outcome/v1");
        assert_eq!(body["outcome"], "detected");
        assert_eq!(body["experiment_id"], "cs-20261123T120000Z-abcdef");
        assert_eq!(body["detections"][0]["seconds_to_detect"], 42.5);
        let attrs = m.message_attributes().expect("message attributes");
        assert_eq!(attrs.len(), 2);
        for (key, value) in [("outcome", "detected"), ("experiment", "port-change")] {
            let a = &attrs[key];
            assert_eq!(a.data_type(), "String", "{key}");
            assert_eq!(a.string_value(), Some(value), "{key}");
        }
    }

    #[tokio::test]
    async fn an_unreverted_experiment_counts_one_revert_failure() {
        // GIVEN CloudWatch that accepts everything
        let metrics = log::<PutMetricDataInput>();
        let (cw, sns) = (put_metrics(&metrics), publish(&log()));
        // WHEN recording an outcome whose rule could not be reverted
        let failures = recorder(&cw, &sns, Some(TOPIC)).record(&report(false)).await;
        // THEN RevertFailures is 1
        assert!(failures.is_empty(), "{failures:?}");
        assert_eq!(datum(seen(&metrics)[0].metric_data(), "RevertFailures").value(), Some(1.0));
    }

    #[tokio::test]
    async fn a_failed_publish_is_reported_and_metrics_are_still_put() {
        // GIVEN SNS refusing to publish
        let metrics = log::<PutMetricDataInput>();
        let cw = put_metrics(&metrics);
        let sns = mock!(aws_sdk_sns::Client::publish).then_error(|| {
            PublishError::AuthorizationErrorException(
                AuthorizationErrorException::builder()
                    .message("not authorized to publish")
                    .meta(
                        ErrorMetadata::builder()
                            .code("AuthorizationError")
                            .message("not authorized to publish")
                            .build(),
                    )
                    .build(),
            )
        });

        // WHEN recording
        let failures = recorder(&cw, &sns, Some(TOPIC)).record(&report(true)).await;

        // THEN exactly the publish failure is returned
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert_eq!(failures[0].operation, "Publish");
        assert_eq!(failures[0].code.as_deref(), Some("AuthorizationError"));
        // AND the metrics were put anyway
        assert_eq!(cw.num_calls(), 1);
        assert_eq!(seen(&metrics).len(), 1);
        assert_eq!(sns.num_calls(), 1);
    }

    #[tokio::test]
    async fn without_a_topic_nothing_is_published() {
        // GIVEN no topic configured
        let cw = put_metrics(&log());
        let sns = publish(&log());
        // WHEN recording
        let failures = recorder(&cw, &sns, None).record(&report(true)).await;
        // THEN metrics only
        assert!(failures.is_empty(), "{failures:?}");
        assert_eq!(cw.num_calls(), 1);
        assert_eq!(sns.num_calls(), 0);
    }
}
