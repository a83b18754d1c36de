//! IAM enforced through the lab: the function policies rendered by Terraform core, used
//! with the functions' access keys on the SDK. Opt-in gates every change, revert authority
//! outlives the opt-in, the opt-in tag stays out of reach, rules must carry the experiment
//! record, and a preventive control's explicit deny is told apart from a missing grant.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{IpPermission, IpRange, ResourceType, Tag, TagSpecification};
use serde_json::json;

use super::*;

const INJECT: &str = "AKIDINJECT";
const JUDGE: &str = "AKIDJUDGE";

/// An EC2 client at the lab signing with `access_key`.
async fn ec2_as(lab: &Lab, access_key: &str) -> aws_sdk_ec2::Client {
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&lab.endpoint)
        .region(aws_config::Region::new(REGION))
        .credentials_provider(aws_sdk_ec2::config::Credentials::new(access_key, "testing", None, None, "e2e"))
        .load()
        .await;
    aws_sdk_ec2::Client::new(&conf)
}

/// A call log of this test's own (not `$CHAOSLINGR_CALLS_LOG`: these denials are expected).
fn own_log() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let path = std::env::temp_dir().join(format!(
        "chaoslingr-iam-{}-{}.jsonl",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_file(&path);
    path
}

fn calls(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON call line"))
        .collect()
}

/// The error code, HTTP status and message of a call that must have failed.
fn refused<T: std::fmt::Debug, E: ProvideErrorMetadata + std::fmt::Debug>(
    result: Result<T, SdkError<E, aws_sdk_ec2::config::http::HttpResponse>>,
) -> (String, u16, String) {
    let e = result.expect_err("the call must be denied");
    let status = e.raw_response().map(|r| r.status().as_u16()).unwrap_or_default();
    (e.code().unwrap_or_default().to_string(), status, e.message().unwrap_or_default().to_string())
}

fn assert_unauthorized(what: &str, (code, status, message): &(String, u16, String)) {
    assert_eq!((code.as_str(), *status), ("UnauthorizedOperation", 403), "{what}: {message}");
    assert!(message.starts_with("You are not authorized to perform this operation. User: "), "{what}: {message}");
    assert!(message.contains("Encoded authorization failure message: "), "{what}: {message}");
}

fn token_of(message: &str) -> &str {
    message.rsplit("Encoded authorization failure message: ").next().expect("encoded message").trim()
}

fn port(n: i32) -> IpPermission {
    IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(n)
        .to_port(n)
        .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
        .build()
}

fn rule_tags(tags: &[(&str, &str)]) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(ResourceType::SecurityGroupRule)
        .set_tags(Some(tags.iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build()).collect()))
        .build()
}

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build()
}

/// Sets (or, with `None`, deletes) a group's tag with the emulator's own credentials.
async fn set_tag(emu: &Emulator, group: &str, key: &str, value: Option<&str>) {
    match value {
        Some(v) => {
            emu.ec2().create_tags().resources(group).tags(tag(key, v)).send().await.expect("tag");
        }
        None => {
            emu.ec2().delete_tags().resources(group).tags(Tag::builder().key(key).build()).send().await.expect("untag");
        }
    }
}

const LAB: [&str; 4] = ["--config-mode", "off", "--firewall-mode", "off"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_keys_write_only_to_opted_in_groups_and_only_tagged_rules() {
    // GIVEN a group opted in, one never opted in with a rule of its own, one tagged "true "
    let emu = Emulator::start().await;
    let vpc = create_vpc(&emu).await;
    let opted_in = create_group(&emu, &vpc, "opted-in", Some("TRUE")).await;
    let neither = create_group(&emu, &vpc, "neither", None).await;
    let spaced = create_group(&emu, &vpc, "spaced", Some("true ")).await;
    add_ingress(&emu, &neither, "tcp", 443, 443, "0.0.0.0/0").await;
    let before = ingress_of(&emu, &neither).await;
    let log = own_log();
    let lab = Lab::start_enforced(&emu, &[&LAB[..], &["--record-calls", log.to_str().unwrap()]].concat());
    let inject = ec2_as(&lab, INJECT).await;
    let judge = ec2_as(&lab, JUDGE).await;
    let record = [(EXPERIMENT_TAG, "cs-20261201T100000Z-aaaaaa")];

    // WHEN inject opens a tagged port on the opted-in group (the value compared ignoring case)
    let ok = inject
        .authorize_security_group_ingress()
        .group_id(&opted_in)
        .ip_permissions(port(20001))
        .tag_specifications(rule_tags(&record))
        .send()
        .await;
    // THEN it is allowed
    let rule = ok.expect("inject may open a tagged rule on an opted-in group").security_group_rules()[0]
        .security_group_rule_id()
        .unwrap()
        .to_string();

    // AND every write of either function to the group nobody opted in is denied, as EC2 denies
    let denied = refused(
        inject
            .authorize_security_group_ingress()
            .group_id(&neither)
            .ip_permissions(port(20002))
            .tag_specifications(rule_tags(&record))
            .send()
            .await,
    );
    assert_unauthorized("authorize on a group neither opted in nor marked", &denied);
    assert!(denied.2.contains(&format!(
        "is not authorized to perform: ec2:AuthorizeSecurityGroupIngress on resource: arn:aws:ec2:us-east-1:123456789012:security-group/{neither}"
    )));
    let existing = before[0].rsplit(' ').next().unwrap().to_string();
    for (name, client) in [("inject", &inject), ("judge", &judge)] {
        let r =
            client.revoke_security_group_ingress().group_id(&neither).security_group_rule_ids(&existing).send().await;
        assert_unauthorized(&format!("{name} revoke on an unmarked, not opted-in group"), &refused(r));
        let r = client.create_tags().resources(&neither).tags(tag(EXPERIMENT_TAG, "cs-x")).send().await;
        assert_unauthorized(&format!("{name} marking a group nobody opted in"), &refused(r));
    }
    // AND "true " is not "true": IAM compares the whole value
    let r = inject
        .authorize_security_group_ingress()
        .group_id(&spaced)
        .ip_permissions(port(20003))
        .tag_specifications(rule_tags(&record))
        .send()
        .await;
    assert_unauthorized("authorize on a group tagged `true `", &refused(r));

    // AND a rule without the experiment record cannot be created, tagged otherwise or not at all
    let r = inject
        .authorize_security_group_ingress()
        .group_id(&opted_in)
        .ip_permissions(port(20004))
        .tag_specifications(rule_tags(&[("chaoslingr:window", "900")]))
        .send()
        .await;
    let untagged = refused(r);
    assert_unauthorized("authorize without the experiment-id tag", &untagged);
    assert!(untagged.2.contains(":security-group-rule/sgr-"), "{}", untagged.2);
    let r = inject.authorize_security_group_ingress().group_id(&opted_in).ip_permissions(port(20005)).send().await;
    assert_unauthorized("authorize without any tags", &refused(r));

    // AND the judge can never open a port
    let r = judge
        .authorize_security_group_ingress()
        .group_id(&opted_in)
        .ip_permissions(port(20006))
        .tag_specifications(rule_tags(&record))
        .send()
        .await;
    assert_unauthorized("the judge opening a port", &refused(r));

    // AND nothing denied reached the emulator
    assert_eq!(ingress_of(&emu, &neither).await, before);
    let opened = ingress_of(&emu, &opted_in).await;
    assert_eq!(opened.len(), 1, "{opened:?}");
    assert!(opened[0].ends_with(&rule), "{opened:?}");
    assert!(group_tags(&emu, &neither).await.is_empty());

    // AND the encoded message decodes to a missing grant, not an explicit deny
    let decoded = decode_authorization_message(&lab.endpoint, INJECT, token_of(&denied.2)).expect("decode");
    assert_eq!(decoded["allowed"], false);
    assert_eq!(decoded["explicitDeny"], false, "{decoded}");
    assert_eq!(decoded["context"]["action"], "ec2:AuthorizeSecurityGroupIngress");
    assert_eq!(
        decoded["context"]["resource"],
        format!("arn:aws:ec2:us-east-1:123456789012:security-group/{neither}").as_str()
    );
    assert!(decode_authorization_message(&lab.endpoint, INJECT, "not-a-token").is_err());

    // AND the tests' own key is not evaluated: it still writes anywhere
    add_ingress(&emu, &neither, "tcp", 8443, 8443, "10.0.0.0/8").await;
    let testing = ec2_as(&lab, "testing").await;
    testing
        .authorize_security_group_ingress()
        .group_id(&neither)
        .ip_permissions(port(20007))
        .send()
        .await
        .expect("the testing key passes unevaluated");

    // AND the call log says which calls were allowed and denied
    let lines = calls(&log);
    let denied_lines: Vec<&Value> = lines.iter().filter(|l| l["denied"] == true).collect();
    assert_eq!(denied_lines.len(), 9, "{lines:#?}");
    assert!(denied_lines.iter().all(|l| l["allowed"] == false && l["explicit_deny"] == false));
    assert!(lines.iter().any(|l| l["access_key"] == INJECT
        && l["action"] == "ec2:AuthorizeSecurityGroupIngress"
        && l["allowed"] == true));
    assert!(lines
        .iter()
        .filter(|l| l["access_key"] == "testing")
        .all(|l| l["allowed"].is_null() && l["denied"] == false));
    let _ = std::fs::remove_file(&log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_opt_in_tag_is_out_of_reach_of_the_functions() {
    // GIVEN an opted-in group carrying ChaoSlingr's marker
    let emu = Emulator::start().await;
    let vpc = create_vpc(&emu).await;
    let group = create_group(&emu, &vpc, "edge", Some("true")).await;
    set_tag(&emu, &group, EXPERIMENT_TAG, Some("cs-1")).await;
    let before = group_tags(&emu, &group).await;
    let lab = Lab::start_enforced(&emu, &LAB);

    for key in [INJECT, JUDGE] {
        let client = ec2_as(&lab, key).await;
        // WHEN a function deletes or changes the opt-in tag, alone or among marker tags
        let attempts = [
            (
                "delete the opt-in tag",
                refused(client.delete_tags().resources(&group).tags(Tag::builder().key(OPT_IN).build()).send().await),
            ),
            (
                "set the opt-in tag to false",
                refused(client.create_tags().resources(&group).tags(tag(OPT_IN, "false")).send().await),
            ),
            (
                "set the opt-in tag among marker tags",
                refused(
                    client
                        .create_tags()
                        .resources(&group)
                        .tags(tag(EXPERIMENT_TAG, "cs-2"))
                        .tags(tag(OPT_IN, "true"))
                        .send()
                        .await,
                ),
            ),
            ("delete every tag (no keys)", refused(client.delete_tags().resources(&group).send().await)),
            (
                "write a tag that is not ChaoSlingr's",
                refused(client.create_tags().resources(&group).tags(tag("owner", "x")).send().await),
            ),
        ];
        // THEN each is denied
        for (what, result) in attempts {
            assert_unauthorized(&format!("{key}: {what}"), &result);
        }
    }
    // AND the group's tags are as they were
    assert_eq!(group_tags(&emu, &group).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revert_authority_outlives_the_opt_in() {
    // GIVEN two groups with an experiment's rule and marker, whose owners then opted out:
    // one set the tag to false, the other deleted it
    let emu = Emulator::start().await;
    let vpc = create_vpc(&emu).await;
    let mut scenes = Vec::new();
    for (name, opt_out) in [("set-false", Some("false")), ("deleted", None)] {
        let group = create_group(&emu, &vpc, name, Some("true")).await;
        let rule = plant_experiment(&emu, &group, 30001, &[(EXPERIMENT_TAG, "cs-20261201T100000Z-bbbbbb")]).await;
        set_tag(&emu, &group, EXPERIMENT_TAG, Some("cs-20261201T100000Z-bbbbbb")).await;
        set_tag(&emu, &group, "chaoslingr:deadline", Some("2026-12-01T10:15:00Z")).await;
        set_tag(&emu, &group, OPT_IN, opt_out).await;
        scenes.push((group, rule));
    }
    let lab = Lab::start_enforced(&emu, &LAB);
    let record = [(EXPERIMENT_TAG, "cs-20261201T110000Z-cccccc")];

    for ((group, rule), key) in scenes.iter().zip([JUDGE, INJECT]) {
        let client = ec2_as(&lab, key).await;
        // WHEN a function opens another port there
        let r = client
            .authorize_security_group_ingress()
            .group_id(group)
            .ip_permissions(port(30002))
            .tag_specifications(rule_tags(&record))
            .send()
            .await;
        // THEN it is denied: opting out stops new experiments (and the judge never opens one)
        assert_unauthorized(&format!("{key}: authorize on an opted-out group"), &refused(r));

        // WHEN it revokes the experiment's rule and removes the marker
        client
            .revoke_security_group_ingress()
            .group_id(group)
            .security_group_rule_ids(rule)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{key} must be able to revoke on an opted-out, marked group: {e:?}"));
        client
            .delete_tags()
            .resources(group)
            .tags(Tag::builder().key("chaoslingr:deadline").build())
            .tags(Tag::builder().key(EXPERIMENT_TAG).build())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{key} must be able to remove its marker: {e:?}"));

        // THEN the port is closed and the marker gone
        assert!(ingress_of(&emu, group).await.is_empty());
        let tags = group_tags(&emu, group).await;
        assert!(tags.iter().all(|(k, _)| k == OPT_IN), "{tags:?}");

        // AND once unmarked and opted out, the group is out of reach again
        let r = client.create_tags().resources(group).tags(tag(EXPERIMENT_TAG, "cs-again")).send().await;
        assert_unauthorized("marking an opted-out group", &refused(r));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preventive_controls_explicit_deny_is_told_apart() {
    // GIVEN a service control policy denying world-open ingress changes
    let emu = Emulator::start().await;
    let vpc = create_vpc(&emu).await;
    let group = create_group(&emu, &vpc, "edge", Some("true")).await;
    let scp = std::env::temp_dir().join(format!("chaoslingr-scp-{}.json", std::process::id()));
    std::fs::write(
        &scp,
        json!({"Version": "2012-10-17", "Statement": [{
            "Sid": "NoIngressChanges", "Effect": "Deny",
            "Action": "ec2:AuthorizeSecurityGroupIngress", "Resource": "*"
        }]})
        .to_string(),
    )
    .unwrap();
    let log = own_log();
    let lab = Lab::start_enforced(
        &emu,
        &[&LAB[..], &["--scp", scp.to_str().unwrap(), "--record-calls", log.to_str().unwrap()]].concat(),
    );
    let inject = ec2_as(&lab, INJECT).await;

    // WHEN inject opens a tagged port on an opted-in group
    let r = inject
        .authorize_security_group_ingress()
        .group_id(&group)
        .ip_permissions(port(40001))
        .tag_specifications(rule_tags(&[(EXPERIMENT_TAG, "cs-20261201T120000Z-dddddd")]))
        .send()
        .await;

    // THEN it is denied, and the decoded message names an explicit deny
    let denied = refused(r);
    assert_unauthorized("authorize under a denying SCP", &denied);
    let decoded = decode_authorization_message(&lab.endpoint, INJECT, token_of(&denied.2)).expect("decode");
    assert_eq!(decoded["explicitDeny"], true, "{decoded}");
    assert_eq!(decoded["matchedStatements"]["items"][0]["statementId"], "NoIngressChanges", "{decoded}");
    assert!(ingress_of(&emu, &group).await.is_empty());

    // AND the SCP does not touch what it does not deny
    inject.describe_security_groups().group_ids(&group).send().await.expect("describe is allowed");
    let lines = calls(&log);
    assert!(lines.iter().any(|l| l["denied"] == true && l["explicit_deny"] == true), "{lines:#?}");
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_file(&scp);
}
