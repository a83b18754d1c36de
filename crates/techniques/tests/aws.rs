//! The techniques' AWS adapters on mocked SDK clients (`aws-smithy-mocks`): what each
//! sends, how it pages, how it reads the answers and how it maps service errors. No
//! network.
//!
//! Each test is written GIVEN (the mocked service) / WHEN (one adapter call) / THEN (the
//! adapter's result and the requests the service received).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_ec2::config::http::HttpResponse;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use aws_smithy_types::body::SdkBody;
use chaoslingr_domain::experiment::{PortRange, Protocol};
use chaoslingr_domain::port_choice::ExistingRule;
use chaoslingr_domain::ports::{
    AuthorizeOutcome, Changes, DenialSource, FailureKind, IngressRequest, RevokeOutcome, Targets,
};
use chaoslingr_domain::selection::GroupInfo;
use chaoslingr_domain::tags::{self, TaggedRule};
use chaoslingr_techniques::port_change::Ec2Ingress;

// ---------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------

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

/// An EC2 (query protocol) error body, as EC2 sends it.
fn ec2_error_body(code: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>{code}</Code><Message>{}</Message></Error></Errors><RequestID>req-1</RequestID></Response>"#,
        match code {
            "UnauthorizedOperation" => "You are not authorized to perform this operation.",
            "DryRunOperation" => "Request would have succeeded, but DryRun flag is set.",
            _ => "The service said no.",
        }
    )
}

fn http_response(status: u16, body: &str) -> HttpResponse {
    HttpResponse::new(status.try_into().unwrap(), SdkBody::from(body.to_string()))
}

fn ec2_error(status: u16, code: &str) -> HttpResponse {
    http_response(status, &ec2_error_body(code))
}

/// An EC2 client on `rules` that does not retry, so an error rule is hit exactly once.
fn ec2_without_retries(rules: &[&Rule]) -> Ec2Ingress {
    Ec2Ingress::new(mock_client!(aws_sdk_ec2, RuleMode::MatchAny, rules, |c| c
        .retry_config(aws_sdk_ec2::config::retry::RetryConfig::disabled())))
}

fn tag(key: &str, value: &str) -> aws_sdk_ec2::types::Tag {
    aws_sdk_ec2::types::Tag::builder().key(key).value(value).build()
}

fn pairs(tags: &[(&str, &str)]) -> Vec<(String, String)> {
    tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

// ---------------------------------------------------------------------------------------
// port-change
// ---------------------------------------------------------------------------------------

mod port_change {
    use super::*;
    use aws_sdk_ec2::operation::authorize_security_group_ingress::{
        AuthorizeSecurityGroupIngressInput, AuthorizeSecurityGroupIngressOutput,
    };
    use aws_sdk_ec2::operation::describe_security_group_rules::{
        DescribeSecurityGroupRulesInput, DescribeSecurityGroupRulesOutput,
    };
    use aws_sdk_ec2::operation::describe_security_groups::{DescribeSecurityGroupsInput, DescribeSecurityGroupsOutput};
    use aws_sdk_ec2::operation::revoke_security_group_ingress::{
        RevokeSecurityGroupIngressInput, RevokeSecurityGroupIngressOutput,
    };
    use aws_sdk_ec2::types::{IpPermission, ResourceType, SecurityGroup, SecurityGroupRule};
    use aws_sdk_ec2::Client;

    const OPT_IN: &str = "chaoslingr:opt-in";

    fn group(id: &str, permissions: Vec<IpPermission>) -> SecurityGroup {
        SecurityGroup::builder()
            .group_id(id)
            .group_name(format!("name-of-{id}"))
            .vpc_id("vpc-1")
            .owner_id("111122223333")
            .tags(tag(OPT_IN, "true"))
            .tags(tag("Name", id))
            .set_ip_permissions(Some(permissions))
            .build()
    }

    fn permission(protocol: &str, ports: Option<(i32, i32)>) -> IpPermission {
        let p = IpPermission::builder().ip_protocol(protocol);
        match ports {
            Some((from, to)) => p.from_port(from).to_port(to).build(),
            None => p.build(),
        }
    }

    fn groups_page(groups: Vec<SecurityGroup>, next: Option<&str>) -> DescribeSecurityGroupsOutput {
        DescribeSecurityGroupsOutput::builder()
            .set_security_groups(Some(groups))
            .set_next_token(next.map(str::to_string))
            .build()
    }

    /// An ingress rule as DescribeSecurityGroupRules returns it.
    fn sg_rule(id: &str, egress: bool, tags: &[(&str, &str)]) -> SecurityGroupRule {
        SecurityGroupRule::builder()
            .security_group_rule_id(id)
            .group_id("sg-0abc")
            .group_owner_id("111122223333")
            .is_egress(egress)
            .ip_protocol("tcp")
            .from_port(20_000)
            .to_port(20_002)
            .cidr_ipv4("0.0.0.0/0")
            .set_tags(Some(tags.iter().map(|(k, v)| tag(k, v)).collect()))
            .build()
    }

    fn rules_page(rules: Vec<SecurityGroupRule>, next: Option<&str>) -> DescribeSecurityGroupRulesOutput {
        DescribeSecurityGroupRulesOutput::builder()
            .set_security_group_rules(Some(rules))
            .set_next_token(next.map(str::to_string))
            .build()
    }

    #[track_caller]
    fn assert_single_tag_key_filter(filters: &[aws_sdk_ec2::types::Filter], key: &str) {
        assert_eq!(filters.len(), 1, "{filters:?}");
        assert_eq!(filters[0].name(), Some("tag-key"));
        assert_eq!(filters[0].values(), [key.to_string()]);
    }

    fn request(cidr: &str) -> IngressRequest {
        IngressRequest {
            security_group_id: "sg-0abc".into(),
            protocol: Protocol::Udp,
            ports: PortRange::new(40_000, 40_004).unwrap(),
            cidr: cidr.into(),
            description: "ChaoSlingr experiment cs-20261123T120000Z-abcdef".into(),
            tags: pairs(&[
                (tags::EXPERIMENT_ID, "cs-20261123T120000Z-abcdef"),
                (tags::INJECTED_AT, "2026-11-23T18:47:00.000Z"),
                (tags::DEADLINE, "2026-11-23T19:02:00Z"),
                (tags::DETECTORS, "alarm:fw"),
            ]),
            dry_run: false,
            watched_by_cli: false,
        }
    }

    fn created(rule_id: &'static str) -> impl Fn() -> AuthorizeSecurityGroupIngressOutput + Send + Sync {
        move || {
            AuthorizeSecurityGroupIngressOutput::builder()
                .r#return(true)
                .security_group_rules(SecurityGroupRule::builder().security_group_rule_id(rule_id).build())
                .build()
        }
    }

    #[tokio::test]
    async fn opted_in_groups_follows_every_page_with_the_tag_filter_and_maps_the_groups() {
        // GIVEN EC2 serving three pages of opted-in groups, chosen by the NextToken sent
        let requests = log::<DescribeSecurityGroupsInput>();
        let rule =
            mock!(Client::describe_security_groups).match_requests(capture(&requests)).then_compute_output(|req| {
                match req.next_token() {
                    None => groups_page(vec![group("sg-1", vec![])], Some("tok/2+=")),
                    Some("tok/2+=") => groups_page(
                        vec![
                            group("sg-2", vec![permission("tcp", Some((443, 443))), permission("-1", None)]),
                            group("sg-3", vec![]),
                        ],
                        Some("tok-3"),
                    ),
                    Some("tok-3") => groups_page(vec![group("sg-4", vec![])], None),
                    Some(other) => panic!("EC2 never issued NextToken {other:?}"),
                }
            });
        let ingress = Ec2Ingress::new(mock_client!(aws_sdk_ec2, RuleMode::MatchAny, [&rule]));

        // WHEN listing the opted-in groups
        let groups = ingress.groups_with_tag_key(OPT_IN).await.unwrap();

        // THEN every page was read, passing each token back exactly
        assert_eq!(rule.num_calls(), 3);
        let requests = seen(&requests);
        let tokens: Vec<Option<&str>> = requests.iter().map(|r| r.next_token()).collect();
        assert_eq!(tokens, [None, Some("tok/2+="), Some("tok-3")]);
        // AND every page was filtered server-side on the configured tag key
        for r in &requests {
            assert_single_tag_key_filter(r.filters(), OPT_IN);
            assert!(r.group_ids().is_empty());
        }
        // AND every group came back, with its tags, owner and ingress rules
        let ids: Vec<&str> = groups.iter().map(|g| g.id.as_str()).collect();
        assert_eq!(ids, ["sg-1", "sg-2", "sg-3", "sg-4"]);
        assert_eq!(
            groups[1],
            GroupInfo {
                id: "sg-2".into(),
                name: "name-of-sg-2".into(),
                vpc_id: Some("vpc-1".into()),
                owner_id: Some("111122223333".into()),
                tags: pairs(&[(OPT_IN, "true"), ("Name", "sg-2")]),
                ingress: vec![
                    ExistingRule { ip_protocol: "tcp".into(), from_port: Some(443), to_port: Some(443) },
                    ExistingRule { ip_protocol: "-1".into(), from_port: None, to_port: None },
                ],
            }
        );
    }

    #[tokio::test]
    async fn experiment_rules_pages_on_the_experiment_tag_and_keeps_only_tagged_ingress_rules() {
        // GIVEN two pages of rules carrying (or, from a filter-ignoring emulator, not
        // carrying) the experiment tag; the last page ends with an empty NextToken
        let ours = [(tags::EXPERIMENT_ID, "cs-20261123T120000Z-abcdef"), ("team", "sec")];
        let requests = log::<DescribeSecurityGroupRulesInput>();
        let rule = mock!(Client::describe_security_group_rules).match_requests(capture(&requests)).then_compute_output(
            move |req| match req.next_token() {
                None => rules_page(
                    vec![
                        sg_rule("sgr-a", false, &ours),
                        sg_rule("sgr-egress", true, &ours),
                        sg_rule("sgr-untagged", false, &[("team", "sec")]),
                    ],
                    Some("rules-2"),
                ),
                Some("rules-2") => rules_page(vec![sg_rule("sgr-b", false, &ours)], Some("")),
                Some(other) => panic!("EC2 never issued NextToken {other:?}"),
            },
        );
        let ingress = Ec2Ingress::new(mock_client!(aws_sdk_ec2, RuleMode::MatchAny, [&rule]));

        // WHEN listing the experiment rules
        let rules = ingress.experiment_rules().await.unwrap();

        // THEN both pages were read with the experiment-id tag-key filter
        assert_eq!(rule.num_calls(), 2);
        let requests = seen(&requests);
        assert_eq!(requests.iter().map(|r| r.next_token()).collect::<Vec<_>>(), [None, Some("rules-2")]);
        for r in &requests {
            assert_single_tag_key_filter(r.filters(), "chaoslingr:experiment-id");
        }
        // AND egress and untagged rules were dropped
        let ids: Vec<&str> = rules.iter().map(|r| r.security_group_rule_id.as_str()).collect();
        assert_eq!(ids, ["sgr-a", "sgr-b"]);
        assert_eq!(
            rules[0],
            TaggedRule {
                security_group_id: "sg-0abc".into(),
                security_group_rule_id: "sgr-a".into(),
                account: Some("111122223333".into()),
                ip_protocol: "tcp".into(),
                from_port: Some(20_000),
                to_port: Some(20_002),
                cidr: Some("0.0.0.0/0".into()),
                description: None,
                is_egress: false,
                tags: pairs(&ours),
            }
        );
    }

    #[tokio::test]
    async fn authorize_creates_one_tagged_rule_in_one_call_and_returns_its_id() {
        // GIVEN EC2 that creates the rule
        let requests = log::<AuthorizeSecurityGroupIngressInput>();
        let rule = mock!(Client::authorize_security_group_ingress)
            .match_requests(capture(&requests))
            .then_output(created("sgr-0new"));
        let ingress = Ec2Ingress::new(mock_client!(aws_sdk_ec2, [&rule]));
        let req = request("0.0.0.0/0");

        // WHEN authorizing an IPv4 source
        let outcome = ingress.authorize(&req).await.unwrap();

        // THEN the created rule's id comes back
        assert_eq!(outcome, AuthorizeOutcome::Created { rule_id: "sgr-0new".into() });
        // AND exactly one call carried the group, one permission and exactly our tags
        let requests = seen(&requests);
        assert_eq!(requests.len(), 1);
        let sent = &requests[0];
        assert_eq!(sent.group_id(), Some("sg-0abc"));
        assert_eq!(sent.dry_run(), Some(false));
        assert_eq!(sent.ip_permissions().len(), 1);
        let p = &sent.ip_permissions()[0];
        assert_eq!(p.ip_protocol(), Some("udp"));
        assert_eq!((p.from_port(), p.to_port()), (Some(40_000), Some(40_004)));
        assert_eq!(p.ip_ranges().len(), 1);
        assert_eq!(p.ip_ranges()[0].cidr_ip(), Some("0.0.0.0/0"));
        assert_eq!(p.ip_ranges()[0].description(), Some(req.description.as_str()));
        assert!(p.ipv6_ranges().is_empty());
        assert!(p.user_id_group_pairs().is_empty() && p.prefix_list_ids().is_empty());
        assert_eq!(sent.tag_specifications().len(), 1);
        let spec = &sent.tag_specifications()[0];
        assert_eq!(spec.resource_type(), Some(&ResourceType::SecurityGroupRule));
        let sent_tags: Vec<(String, String)> =
            spec.tags().iter().map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string())).collect();
        assert_eq!(sent_tags, req.tags);
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn authorize_sends_an_ipv6_source_as_an_ipv6_range() {
        // GIVEN EC2 that creates the rule
        let requests = log::<AuthorizeSecurityGroupIngressInput>();
        let rule = mock!(Client::authorize_security_group_ingress)
            .match_requests(capture(&requests))
            .then_output(created("sgr-0v6"));
        let ingress = Ec2Ingress::new(mock_client!(aws_sdk_ec2, [&rule]));

        // WHEN authorizing `::/0`
        let outcome = ingress.authorize(&request("::/0")).await.unwrap();

        // THEN it went into Ipv6Ranges, not IpRanges
        assert_eq!(outcome, AuthorizeOutcome::Created { rule_id: "sgr-0v6".into() });
        let requests = seen(&requests);
        let p = &requests[0].ip_permissions()[0];
        assert!(p.ip_ranges().is_empty(), "{p:?}");
        assert_eq!(p.ipv6_ranges().len(), 1);
        assert_eq!(p.ipv6_ranges()[0].cidr_ipv6(), Some("::/0"));
        assert_eq!(p.ipv6_ranges()[0].description(), Some("ChaoSlingr experiment cs-20261123T120000Z-abcdef"));
    }

    #[tokio::test]
    async fn authorize_without_a_rule_id_in_the_answer_is_an_error_not_a_success() {
        // GIVEN EC2 that answers `true` but returns no rule
        let rule = mock!(Client::authorize_security_group_ingress)
            .then_output(|| AuthorizeSecurityGroupIngressOutput::builder().r#return(true).build());
        let ingress = Ec2Ingress::new(mock_client!(aws_sdk_ec2, [&rule]));

        // WHEN authorizing
        let err = ingress.authorize(&request("0.0.0.0/0")).await.unwrap_err();

        // THEN the run cannot proceed without an id to revert
        assert_eq!(err.kind, FailureKind::Other);
        assert!(err.message.contains("did not return the id"), "{err}");
    }

    #[tokio::test]
    async fn authorize_maps_denials_to_denied_keeping_the_code_and_attributes_them_only_with_evidence() {
        for code in ["UnauthorizedOperation", "AccessDenied"] {
            // GIVEN EC2 refusing with a 403 and this code
            let rule = mock!(Client::authorize_security_group_ingress).then_http_response(move || ec2_error(403, code));
            let ingress = ec2_without_retries(&[&rule]);

            // WHEN authorizing
            let outcome = ingress.authorize(&request("0.0.0.0/0")).await;

            // THEN it is a denial, not an error
            match outcome {
                Ok(AuthorizeOutcome::Denied { code: got, message, source }) => {
                    assert_eq!(got, code);
                    // No encoded message to decode: never credited to a preventive control.
                    assert!(matches!(source, DenialSource::Unknown(_)), "{source:?}");
                    assert!(!message.is_empty());
                    if code == "UnauthorizedOperation" {
                        assert_eq!(message, "You are not authorized to perform this operation.");
                    }
                }
                other => panic!("{code}: expected Denied, got {other:?}"),
            }
            assert_eq!(rule.num_calls(), 1);
        }
    }

    #[tokio::test]
    async fn authorize_maps_dry_run_operation_to_would_succeed() {
        // GIVEN EC2 answering a dry run with 412 DryRunOperation
        let requests = log::<AuthorizeSecurityGroupIngressInput>();
        let rule = mock!(Client::authorize_security_group_ingress)
            .match_requests(capture(&requests))
            .then_http_response(|| ec2_error(412, "DryRunOperation"));
        let ingress = ec2_without_retries(&[&rule]);
        let req = IngressRequest { dry_run: true, ..request("0.0.0.0/0") };

        // WHEN authorizing as a dry run
        let outcome = ingress.authorize(&req).await;

        // THEN it would have succeeded, and the request said DryRun
        assert_eq!(outcome, Ok(AuthorizeOutcome::WouldSucceed));
        assert_eq!(seen(&requests)[0].dry_run(), Some(true));
    }

    #[tokio::test]
    async fn authorize_maps_throttling_to_transient_and_bad_parameters_to_other() {
        for (status, code, kind) in
            [(503, "RequestLimitExceeded", FailureKind::Transient), (400, "InvalidParameterValue", FailureKind::Other)]
        {
            // GIVEN EC2 failing with this status and code, on a client without retries
            let rule =
                mock!(Client::authorize_security_group_ingress).then_http_response(move || ec2_error(status, code));
            let ingress = ec2_without_retries(&[&rule]);

            // WHEN authorizing
            let err = ingress.authorize(&request("0.0.0.0/0")).await.unwrap_err();

            // THEN it is an error of the right kind, naming the operation and the code
            assert_eq!(err.kind, kind, "{code}: {err}");
            assert_eq!(err.code.as_deref(), Some(code));
            assert_eq!(err.operation, "AuthorizeSecurityGroupIngress");
            assert_eq!(rule.num_calls(), 1);
        }
    }

    #[tokio::test]
    async fn revoke_sends_the_rule_id_and_group_and_treats_not_found_as_already_gone() {
        // GIVEN EC2 that revokes
        let requests = log::<RevokeSecurityGroupIngressInput>();
        let ok = mock!(Client::revoke_security_group_ingress)
            .match_requests(capture(&requests))
            .then_output(|| RevokeSecurityGroupIngressOutput::builder().r#return(true).build());
        let ingress = Ec2Ingress::new(mock_client!(aws_sdk_ec2, [&ok]));

        // WHEN revoking
        let outcome = ingress.revoke("sg-0abc", "sgr-0new").await;

        // THEN it is revoked, by rule id, on the group
        assert_eq!(outcome, Ok(RevokeOutcome::Revoked));
        let requests = seen(&requests);
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].group_id(), Some("sg-0abc"));
        assert_eq!(requests[0].security_group_rule_ids(), ["sgr-0new".to_string()]);
        assert!(requests[0].ip_permissions().is_empty(), "revoking by rule id only");

        for code in ["InvalidPermission.NotFound", "InvalidSecurityGroupRuleId.NotFound"] {
            // GIVEN EC2 saying the rule no longer exists
            let gone = mock!(Client::revoke_security_group_ingress).then_http_response(move || ec2_error(400, code));
            let ingress = ec2_without_retries(&[&gone]);
            // WHEN revoking
            // THEN that is success
            assert_eq!(ingress.revoke("sg-0abc", "sgr-0new").await, Ok(RevokeOutcome::AlreadyGone), "{code}");
        }

        // GIVEN EC2 refusing the revoke
        let denied =
            mock!(Client::revoke_security_group_ingress).then_http_response(|| ec2_error(403, "UnauthorizedOperation"));
        let ingress = ec2_without_retries(&[&denied]);
        // WHEN revoking
        // THEN the failure surfaces: the rule is still there
        let err = ingress.revoke("sg-0abc", "sgr-0new").await.unwrap_err();
        assert_eq!(err.kind, FailureKind::Denied);
    }

    #[tokio::test]
    async fn rule_reads_one_rule_with_its_tags_and_none_when_it_is_gone() {
        // GIVEN EC2 knowing the rule
        let requests = log::<DescribeSecurityGroupRulesInput>();
        let ours = [(tags::EXPERIMENT_ID, "cs-20261123T120000Z-abcdef")];
        let found = mock!(Client::describe_security_group_rules)
            .match_requests(capture(&requests))
            .then_output(move || rules_page(vec![sg_rule("sgr-0new", false, &ours)], None));
        let ingress = Ec2Ingress::new(mock_client!(aws_sdk_ec2, [&found]));

        // WHEN reading it
        let got = ingress.rule("sgr-0new").await.unwrap().expect("the rule exists");

        // THEN it asked for that rule id and returned it with its tags
        assert_eq!(seen(&requests)[0].security_group_rule_ids(), ["sgr-0new".to_string()]);
        assert_eq!(got.security_group_rule_id, "sgr-0new");
        assert_eq!(got.experiment_id(), Some("cs-20261123T120000Z-abcdef"));
        assert_eq!(got.tags, pairs(&ours));

        // GIVEN EC2 saying the rule id does not exist
        let gone = mock!(Client::describe_security_group_rules)
            .then_http_response(|| ec2_error(400, "InvalidSecurityGroupRuleId.NotFound"));
        let ingress = ec2_without_retries(&[&gone]);
        // WHEN reading it / THEN None
        assert_eq!(ingress.rule("sgr-0new").await, Ok(None));

        // GIVEN EC2 refusing to describe
        let denied =
            mock!(Client::describe_security_group_rules).then_http_response(|| ec2_error(403, "UnauthorizedOperation"));
        let ingress = ec2_without_retries(&[&denied]);
        // WHEN reading it / THEN an error, never "gone" (which would read as remediated)
        let err = ingress.rule("sgr-0new").await.unwrap_err();
        assert_eq!(err.kind, FailureKind::Denied);
    }

    #[tokio::test]
    async fn group_reads_one_group_and_none_when_it_is_gone() {
        // GIVEN EC2 knowing the group
        let requests = log::<DescribeSecurityGroupsInput>();
        let found = mock!(Client::describe_security_groups)
            .match_requests(capture(&requests))
            .then_output(|| groups_page(vec![group("sg-0abc", vec![permission("tcp", Some((22, 22)))])], None));
        let ingress = Ec2Ingress::new(mock_client!(aws_sdk_ec2, [&found]));

        // WHEN reading it
        let got = ingress.group("sg-0abc").await.unwrap().expect("the group exists");

        // THEN it asked for that group and mapped it
        assert_eq!(seen(&requests)[0].group_ids(), ["sg-0abc".to_string()]);
        assert_eq!(got.id, "sg-0abc");
        assert_eq!(got.tags, pairs(&[(OPT_IN, "true"), ("Name", "sg-0abc")]));
        assert_eq!(got.ingress, [ExistingRule { ip_protocol: "tcp".into(), from_port: Some(22), to_port: Some(22) }]);

        // GIVEN EC2 saying the group does not exist
        let gone =
            mock!(Client::describe_security_groups).then_http_response(|| ec2_error(400, "InvalidGroup.NotFound"));
        let ingress = ec2_without_retries(&[&gone]);
        // WHEN reading it / THEN None
        assert_eq!(ingress.group("sg-0abc").await, Ok(None));
    }

    #[tokio::test]
    async fn a_throttled_describe_is_retried_by_the_sdk_standard_retry() {
        // GIVEN EC2 throttling once (503 RequestLimitExceeded) and then answering, on a
        // client with the standard retry strategy (backoff shortened to keep the test fast)
        let rule = mock!(Client::describe_security_groups)
            .sequence()
            .http_response(|| ec2_error(503, "RequestLimitExceeded"))
            .output(|| groups_page(vec![group("sg-1", vec![])], None))
            .build();
        let client = mock_client!(aws_sdk_ec2, RuleMode::Sequential, [&rule], |c| c.retry_config(
            aws_sdk_ec2::config::retry::RetryConfig::standard().with_initial_backoff(Duration::from_millis(1))
        ));
        let ingress = Ec2Ingress::new(client);
        let started = Instant::now();

        // WHEN listing the opted-in groups
        let groups = ingress.groups_with_tag_key(OPT_IN).await.unwrap();

        // THEN the SDK retried and the listing succeeded
        assert_eq!(rule.num_calls(), 2);
        assert_eq!(groups.len(), 1);
        assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    }

    #[tokio::test]
    async fn persistent_throttling_gives_up_after_the_standard_attempts_as_transient() {
        // GIVEN EC2 that keeps throttling, on a client with the standard retry strategy
        let rule = mock!(Client::describe_security_groups)
            .sequence()
            .http_response(|| ec2_error(503, "RequestLimitExceeded"))
            .times(3)
            .build();
        let client = mock_client!(aws_sdk_ec2, RuleMode::Sequential, [&rule], |c| c.retry_config(
            aws_sdk_ec2::config::retry::RetryConfig::standard().with_initial_backoff(Duration::from_millis(1))
        ));

        // WHEN listing the opted-in groups
        let err = Ec2Ingress::new(client).groups_with_tag_key(OPT_IN).await.unwrap_err();

        // THEN three attempts were made and the error says "worth retrying later"
        assert_eq!(rule.num_calls(), 3);
        assert_eq!(err.kind, FailureKind::Transient);
        assert_eq!(err.code.as_deref(), Some("RequestLimitExceeded"));
    }
}

// ---------------------------------------------------------------------------------------
// nacl-entry
// ---------------------------------------------------------------------------------------

mod nacl_entry {
    use super::*;
    use aws_sdk_ec2::operation::create_network_acl_entry::{CreateNetworkAclEntryInput, CreateNetworkAclEntryOutput};
    use aws_sdk_ec2::operation::create_tags::{CreateTagsInput, CreateTagsOutput};
    use aws_sdk_ec2::operation::delete_network_acl_entry::{DeleteNetworkAclEntryInput, DeleteNetworkAclEntryOutput};
    use aws_sdk_ec2::operation::delete_tags::{DeleteTagsInput, DeleteTagsOutput};
    use aws_sdk_ec2::operation::describe_network_acls::DescribeNetworkAclsOutput;
    use aws_sdk_ec2::types::{NetworkAcl, NetworkAclEntry, PortRange as AwsPorts, RuleAction};
    use aws_sdk_ec2::Client;
    use chaoslingr_techniques::nacl_entry::NaclEntries;

    const ID: &str = "cs-20261202T140000Z-0a1b2c";

    fn entry(number: i32, allow: bool, protocol: &str, ports: Option<(i32, i32)>) -> NetworkAclEntry {
        let mut e = NetworkAclEntry::builder()
            .rule_number(number)
            .egress(false)
            .rule_action(if allow { RuleAction::Allow } else { RuleAction::Deny })
            .protocol(protocol)
            .cidr_block("0.0.0.0/0");
        if let Some((from, to)) = ports {
            e = e.port_range(AwsPorts::builder().from(from).to(to).build());
        }
        e.build()
    }

    /// The seeded ACL: HTTPS allowed, the rest denied by the default entry; `extra`
    /// entries and `tags` on top.
    fn acl(extra: Vec<NetworkAclEntry>, tags: &[(&str, &str)]) -> DescribeNetworkAclsOutput {
        let mut entries = vec![entry(100, true, "6", Some((443, 443))), entry(32767, false, "-1", None)];
        entries.extend(extra);
        DescribeNetworkAclsOutput::builder()
            .network_acls(
                NetworkAcl::builder()
                    .network_acl_id("acl-0abc")
                    .vpc_id("vpc-1")
                    .owner_id("111122223333")
                    .set_entries(Some(entries))
                    .set_tags(Some(tags.iter().map(|(k, v)| tag(k, v)).collect()))
                    .build(),
            )
            .build()
    }

    fn request() -> IngressRequest {
        IngressRequest {
            security_group_id: "acl-0abc".into(),
            protocol: Protocol::Udp,
            ports: PortRange::new(40_000, 40_004).unwrap(),
            cidr: "0.0.0.0/0".into(),
            description: format!("ChaoSlingr experiment {ID}"),
            tags: pairs(&[("chaoslingr:experiment-id", ID)]),
            dry_run: false,
            watched_by_cli: true,
        }
    }

    /// The order the calls reached EC2 in.
    type Order = Arc<Mutex<Vec<&'static str>>>;

    #[tokio::test]
    async fn authorize_writes_the_record_on_the_acl_before_the_entry_exists() {
        // GIVEN an ACL whose only match for our traffic is the default deny
        let order: Order = Arc::default();
        let tags_sent = log::<CreateTagsInput>();
        let creates = log::<CreateNetworkAclEntryInput>();
        let describe =
            mock!(Client::describe_network_acls).then_output(|| acl(vec![], &[("chaoslingr:opt-in", "true")]));
        let tag_rule = mock!(Client::create_tags)
            .match_requests({
                let (order, log) = (Arc::clone(&order), Arc::clone(&tags_sent));
                move |r: &CreateTagsInput| {
                    order.lock().unwrap().push("CreateTags");
                    log.lock().unwrap().push(r.clone());
                    true
                }
            })
            .then_output(|| CreateTagsOutput::builder().build());
        let create = mock!(Client::create_network_acl_entry)
            .match_requests({
                let (order, log) = (Arc::clone(&order), Arc::clone(&creates));
                move |r: &CreateNetworkAclEntryInput| {
                    order.lock().unwrap().push("CreateNetworkAclEntry");
                    log.lock().unwrap().push(r.clone());
                    true
                }
            })
            .then_output(|| CreateNetworkAclEntryOutput::builder().build());
        let nacl = NaclEntries::new(mock_client!(aws_sdk_ec2, RuleMode::MatchAny, [&describe, &tag_rule, &create]));

        // WHEN authorizing
        let outcome = nacl.authorize(&request()).await.unwrap();

        // THEN the entry just before the default deny was created, after its record
        assert_eq!(outcome, AuthorizeOutcome::Created { rule_id: "acl-0abc/32766".into() });
        assert_eq!(*order.lock().unwrap(), ["CreateTags", "CreateNetworkAclEntry"]);
        let t = &seen(&tags_sent)[0];
        assert_eq!(t.resources(), ["acl-0abc"]);
        let written: Vec<(&str, &str)> = t.tags().iter().map(|t| (t.key().unwrap(), t.value().unwrap())).collect();
        for expected in [
            ("chaoslingr:experiment-id", ID),
            ("chaoslingr:rule-id", "acl-0abc/32766"),
            ("chaoslingr:change", "udp 40000-40004 0.0.0.0/0"),
            ("chaoslingr:watcher", "cli"),
        ] {
            assert!(written.contains(&expected), "{expected:?} not in {written:?}");
        }
        let c = &seen(&creates)[0];
        assert_eq!(c.network_acl_id(), Some("acl-0abc"));
        assert_eq!(
            (c.rule_number(), c.egress(), c.rule_action()),
            (Some(32766), Some(false), Some(&RuleAction::Allow))
        );
        assert_eq!((c.protocol(), c.cidr_block()), (Some("17"), Some("0.0.0.0/0")));
        let p = c.port_range().unwrap();
        assert_eq!((p.from(), p.to()), (Some(40_000), Some(40_004)));
    }

    #[tokio::test]
    async fn a_refused_create_takes_the_record_back_and_reports_the_denial() {
        // GIVEN EC2 that records the tags but refuses the entry
        let untags = log::<DeleteTagsInput>();
        let describe = mock!(Client::describe_network_acls).then_output(|| acl(vec![], &[]));
        let tag_rule = mock!(Client::create_tags).then_output(|| CreateTagsOutput::builder().build());
        let refuse =
            mock!(Client::create_network_acl_entry).then_http_response(|| ec2_error(403, "UnauthorizedOperation"));
        let untag = mock!(Client::delete_tags)
            .match_requests(capture(&untags))
            .then_output(|| DeleteTagsOutput::builder().build());
        let nacl =
            NaclEntries::new(mock_client!(aws_sdk_ec2, RuleMode::MatchAny, [&describe, &tag_rule, &refuse, &untag]));

        // WHEN authorizing
        let outcome = nacl.authorize(&request()).await.unwrap();

        // THEN the denial is reported and the record removed: no record without an entry
        assert!(
            matches!(outcome, AuthorizeOutcome::Denied { ref code, .. } if code == "UnauthorizedOperation"),
            "{outcome:?}"
        );
        let removed = seen(&untags);
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].resources(), ["acl-0abc"]);
        let keys: Vec<&str> = removed[0].tags().iter().filter_map(|t| t.key()).collect();
        assert!(keys.contains(&"chaoslingr:experiment-id") && keys.contains(&"chaoslingr:rule-id"), "{keys:?}");
    }

    #[tokio::test]
    async fn the_entry_goes_before_a_deny_that_would_shadow_it() {
        // GIVEN an ACL with a DENY of udp 40000-40100 at 200
        let creates = log::<CreateNetworkAclEntryInput>();
        let describe = mock!(Client::describe_network_acls)
            .then_output(|| acl(vec![entry(200, false, "17", Some((40_000, 40_100)))], &[]));
        let tag_rule = mock!(Client::create_tags).then_output(|| CreateTagsOutput::builder().build());
        let create = mock!(Client::create_network_acl_entry)
            .match_requests(capture(&creates))
            .then_output(|| CreateNetworkAclEntryOutput::builder().build());
        let nacl = NaclEntries::new(mock_client!(aws_sdk_ec2, RuleMode::MatchAny, [&describe, &tag_rule, &create]));

        // WHEN authorizing THEN rule number 199 is used
        let outcome = nacl.authorize(&request()).await.unwrap();
        assert_eq!(outcome, AuthorizeOutcome::Created { rule_id: "acl-0abc/199".into() });
        assert_eq!(seen(&creates)[0].rule_number(), Some(199));
    }

    #[tokio::test]
    async fn an_entry_reads_as_ours_only_when_the_acls_record_names_it() {
        // GIVEN an ACL recording entry 32766, which exists, next to entry 100
        let tags = [
            ("chaoslingr:experiment-id", ID),
            ("chaoslingr:rule-id", "acl-0abc/32766"),
            ("chaoslingr:injected-at", "2026-12-02T14:00:00.000Z"),
        ];
        let describe = mock!(Client::describe_network_acls)
            .then_output(move || acl(vec![entry(32766, true, "17", Some((40_000, 40_004)))], &tags));
        let nacl = NaclEntries::new(mock_client!(aws_sdk_ec2, RuleMode::MatchAny, [&describe]));

        // WHEN reading both entries and a number that does not exist
        let ours = nacl.rule("acl-0abc/32766").await.unwrap().expect("present");
        let theirs = nacl.rule("acl-0abc/100").await.unwrap().expect("present");
        let none = nacl.rule("acl-0abc/555").await.unwrap();

        // THEN only the recorded one names the experiment and carries the record
        assert!(ours.description.as_deref().is_some_and(|d| d.starts_with(&format!("ChaoSlingr experiment {ID} "))));
        assert_eq!(ours.experiment_id(), Some(ID));
        assert_eq!((ours.ip_protocol.as_str(), ours.from_port, ours.to_port), ("17", Some(40_000), Some(40_004)));
        assert_eq!(theirs.description, None);
        assert!(theirs.tags.is_empty());
        assert_eq!(none, None);
        // AND the listing of experiments finds the recorded entry
        let listed = nacl.experiment_rules().await.unwrap();
        assert_eq!(listed.iter().map(|r| r.security_group_rule_id.as_str()).collect::<Vec<_>>(), ["acl-0abc/32766"]);
    }

    #[tokio::test]
    async fn revoke_deletes_the_inbound_entry_by_number_and_a_missing_one_is_already_gone() {
        // GIVEN EC2 that deletes once, then says the entry does not exist
        let deletes = log::<DeleteNetworkAclEntryInput>();
        let ok = mock!(Client::delete_network_acl_entry)
            .match_requests(capture(&deletes))
            .then_output(|| DeleteNetworkAclEntryOutput::builder().build());
        let gone = mock!(Client::delete_network_acl_entry)
            .then_http_response(|| ec2_error(400, "InvalidNetworkAclEntry.NotFound"));
        let nacl = NaclEntries::new(mock_client!(aws_sdk_ec2, RuleMode::Sequential, [&ok, &gone]));

        // WHEN revoking twice
        let first = nacl.revoke("acl-0abc", "acl-0abc/32766").await.unwrap();
        let second = nacl.revoke("acl-0abc", "acl-0abc/32766").await.unwrap();

        // THEN the inbound entry 32766 was deleted, and the second is already gone
        assert_eq!((first, second), (RevokeOutcome::Revoked, RevokeOutcome::AlreadyGone));
        let d = &seen(&deletes)[0];
        assert_eq!((d.network_acl_id(), d.rule_number(), d.egress()), (Some("acl-0abc"), Some(32766), Some(false)));
        // AND an id of another ACL is refused without a call
        assert!(nacl.revoke("acl-0abc", "acl-0def/5").await.is_err());
    }
}
