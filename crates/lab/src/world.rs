//! The lab's controls acting on the emulator: scan security groups and network ACLs, then
//! set the firewall alarms, import Security Hub findings, revoke rules and delete ACL
//! entries as the state decides.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::types::{ComparisonOperator, StateValue, Statistic};
use aws_sdk_ec2::types::Filter;
use aws_sdk_securityhub::types::{AwsSecurityFinding, Resource, Severity, SeverityLabel};
use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;
use tracing::{info, warn};

use crate::nacl::{AclEntry, Opening};
use crate::rules::{Permission, Ports};
use crate::state::{Action, LabState, ScannedAcl, ScannedGroup};

/// SDK clients pointed at the emulator (never at AWS).
#[derive(Clone)]
pub struct Upstream {
    pub ec2: aws_sdk_ec2::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub securityhub: aws_sdk_securityhub::Client,
}

impl Upstream {
    pub async fn new(endpoint: &str, region: &str) -> Self {
        let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(aws_config::Region::new(region.to_string()))
            .credentials_provider(aws_sdk_ec2::config::Credentials::new(
                "testing",
                "testing",
                None,
                None,
                "chaoslingr-lab",
            ))
            .load()
            .await;
        Upstream {
            ec2: aws_sdk_ec2::Client::new(&conf),
            cloudwatch: aws_sdk_cloudwatch::Client::new(&conf),
            securityhub: aws_sdk_securityhub::Client::new(&conf),
        }
    }
}

/// Creates the firewall alarm in OK, so `alarm:<name>` detectors have something to watch.
pub async fn create_alarm(up: &Upstream, name: &str) -> anyhow::Result<()> {
    put_alarm(up, name, "chaoslingr-lab firewall: a new world-open unauthorized port", "UnauthorizedOpenPorts").await
}

/// Creates the firewall's network ACL alarm in OK.
pub async fn create_nacl_alarm(up: &Upstream, name: &str) -> anyhow::Result<()> {
    put_alarm(
        up,
        name,
        "chaoslingr-lab firewall: a new world-open unauthorized inbound network ACL entry",
        "UnauthorizedOpenAclEntries",
    )
    .await
}

async fn put_alarm(up: &Upstream, name: &str, description: &str, metric: &str) -> anyhow::Result<()> {
    up.cloudwatch
        .put_metric_alarm()
        .alarm_name(name)
        .alarm_description(description)
        .namespace("ChaoSlingrLab/Firewall")
        .metric_name(metric)
        .statistic(Statistic::Maximum)
        .period(60)
        .evaluation_periods(1)
        .threshold(0.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .send()
        .await?;
    set_alarm(up, name, false, "chaoslingr-lab started").await
}

async fn set_alarm(up: &Upstream, name: &str, alarm: bool, reason: &str) -> anyhow::Result<()> {
    up.cloudwatch
        .set_alarm_state()
        .alarm_name(name)
        .state_value(if alarm { StateValue::Alarm } else { StateValue::Ok })
        .state_reason(reason)
        .send()
        .await?;
    Ok(())
}

fn permissions(g: &aws_sdk_ec2::types::SecurityGroup) -> Vec<Permission> {
    g.ip_permissions()
        .iter()
        .map(|p| Permission {
            protocol: p.ip_protocol().unwrap_or("-1").to_string(),
            from: p.from_port().unwrap_or(-1),
            to: p.to_port().unwrap_or(-1),
            world_open: p.ip_ranges().iter().any(|r| r.cidr_ip() == Some("0.0.0.0/0"))
                || p.ipv6_ranges().iter().any(|r| r.cidr_ipv6() == Some("::/0")),
        })
        .collect()
}

async fn scan_groups(up: &Upstream) -> anyhow::Result<Vec<ScannedGroup>> {
    let mut out = Vec::new();
    let mut pages = up.ec2.describe_security_groups().into_paginator().send();
    while let Some(page) = pages.next().await {
        out.extend(
            page?.security_groups().iter().map(|g| (g.group_id().unwrap_or_default().to_string(), permissions(g))),
        );
    }
    Ok(out)
}

fn acl_entries(acl: &aws_sdk_ec2::types::NetworkAcl) -> Vec<AclEntry> {
    acl.entries()
        .iter()
        .map(|e| AclEntry {
            rule_number: e.rule_number().unwrap_or_default(),
            egress: e.egress().unwrap_or(false),
            allow: e.rule_action().map(|a| a.as_str()) == Some("allow"),
            protocol: e.protocol().unwrap_or("-1").to_string(),
            cidr: e.cidr_block().map(String::from),
            ipv6_cidr: e.ipv6_cidr_block().map(String::from),
            ports: e.port_range().and_then(|p| Some(Ports { from: p.from()?, to: p.to()? })),
        })
        .collect()
}

async fn scan_acls(up: &Upstream) -> anyhow::Result<Vec<ScannedAcl>> {
    let mut out = Vec::new();
    let mut pages = up.ec2.describe_network_acls().into_paginator().send();
    while let Some(page) = pages.next().await {
        out.extend(
            page?.network_acls().iter().map(|a| (a.network_acl_id().unwrap_or_default().to_string(), acl_entries(a))),
        );
    }
    Ok(out)
}

/// A Security Hub finding from the lab's firewall about `resource`.
struct FindingAbout {
    id: String,
    title: String,
    description: &'static str,
    resource_type: &'static str,
    resource_arn: String,
}

async fn import_finding(
    up: &Upstream,
    state: &Arc<Mutex<LabState>>,
    group_id: &str,
    p: &Permission,
) -> anyhow::Result<()> {
    let (region, account) = {
        let s = state.lock().expect("lab state lock");
        (s.settings.region.clone(), s.settings.account.clone())
    };
    let about = FindingAbout {
        id: format!("chaoslingr-lab/{group_id}/{}-{}-{}", p.protocol, p.from, p.to),
        title: format!("Security group {group_id} allows unrestricted ingress on {p}"),
        description: "The chaoslingr-lab firewall saw a new world-open port that is not authorized.",
        resource_type: "AwsEc2SecurityGroup",
        resource_arn: format!("arn:aws:ec2:{region}:{account}:security-group/{group_id}"),
    };
    import(up, &region, &account, about).await
}

async fn import_acl_finding(
    up: &Upstream,
    state: &Arc<Mutex<LabState>>,
    acl_id: &str,
    o: &Opening,
) -> anyhow::Result<()> {
    let (region, account) = {
        let s = state.lock().expect("lab state lock");
        (s.settings.region.clone(), s.settings.account.clone())
    };
    let about = FindingAbout {
        id: format!("chaoslingr-lab/{acl_id}/entry-{}-{}", o.rule_number, if o.ipv6 { "ipv6" } else { "ipv4" }),
        title: format!("Network ACL {acl_id} allows unrestricted inbound traffic: {o}"),
        description: "The chaoslingr-lab firewall saw a new world-open inbound network ACL entry on a port that is not authorized.",
        resource_type: "AwsEc2NetworkAcl",
        resource_arn: format!("arn:aws:ec2:{region}:{account}:network-acl/{acl_id}"),
    };
    import(up, &region, &account, about).await
}

async fn import(up: &Upstream, region: &str, account: &str, about: FindingAbout) -> anyhow::Result<()> {
    let now = SystemTime::now();
    let at = DateTime::from(now).fmt(Format::DateTime)?;
    let millis = now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_millis();
    let finding = AwsSecurityFinding::builder()
        .schema_version("2018-10-08")
        .id(format!("{}/{millis}", about.id))
        .product_arn(format!("arn:aws:securityhub:{region}:{account}:product/{account}/default"))
        .generator_id("chaoslingr-lab/firewall")
        .aws_account_id(account)
        .types("Software and Configuration Checks/AWS Security Best Practices/Network Reachability")
        .created_at(&at)
        .updated_at(&at)
        .severity(Severity::builder().label(SeverityLabel::High).build())
        .title(about.title)
        .description(about.description)
        .resources(Resource::builder().r#type(about.resource_type).id(about.resource_arn).region(region).build())
        .build();
    up.securityhub.batch_import_findings().findings(finding).send().await?;
    Ok(())
}

async fn revoke(up: &Upstream, group_id: &str, p: &Permission) -> anyhow::Result<()> {
    let rules = up
        .ec2
        .describe_security_group_rules()
        .filters(Filter::builder().name("group-id").values(group_id).build())
        .send()
        .await?;
    let ids: Vec<String> = rules
        .security_group_rules()
        .iter()
        .filter(|r| !r.is_egress().unwrap_or(false))
        .filter(|r| {
            r.ip_protocol() == Some(p.protocol.as_str()) && r.from_port() == Some(p.from) && r.to_port() == Some(p.to)
        })
        .filter(|r| r.cidr_ipv4() == Some("0.0.0.0/0") || r.cidr_ipv6() == Some("::/0"))
        .filter_map(|r| r.security_group_rule_id().map(String::from))
        .collect();
    if !ids.is_empty() {
        up.ec2.revoke_security_group_ingress().group_id(group_id).set_security_group_rule_ids(Some(ids)).send().await?;
    }
    Ok(())
}

/// Deletes the inbound entry `o` names, if that entry is still the one at its number:
/// the remediator removes what it saw, never another entry that took the number since.
async fn delete_entry(up: &Upstream, acl_id: &str, o: &Opening) -> anyhow::Result<()> {
    let out = up.ec2.describe_network_acls().network_acl_ids(acl_id).send().await?;
    let world = |e: &AclEntry| {
        if o.ipv6 {
            e.ipv6_cidr.as_deref() == Some("::/0")
        } else {
            e.cidr.as_deref() == Some("0.0.0.0/0")
        }
    };
    let same =
        out.network_acls().iter().flat_map(acl_entries).any(|e| {
            !e.egress && e.allow && e.rule_number == o.rule_number && e.permission() == o.permission && world(&e)
        });
    if same {
        up.ec2
            .delete_network_acl_entry()
            .network_acl_id(acl_id)
            .rule_number(o.rule_number)
            .egress(false)
            .send()
            .await?;
    }
    Ok(())
}

/// One scan and the actions it calls for.
pub async fn tick(up: &Upstream, state: &Arc<Mutex<LabState>>) -> anyhow::Result<()> {
    let groups = scan_groups(up).await?;
    // A failed ACL read leaves the ACL controls as they were, not the groups'.
    let acls = scan_acls(up).await.map_err(|e| warn!(error = %e, "network ACL scan failed")).ok();
    let actions = {
        let mut s = state.lock().expect("lab state lock");
        let now = SystemTime::now();
        let mut actions = s.scan(&groups, now);
        if let Some(acls) = acls {
            actions.extend(s.scan_acls(&acls, now));
        }
        actions
    };
    for action in actions {
        let result = match &action {
            Action::Alarm { name, alarm: on, reason } => {
                info!(alarm = %name, state = if *on { "ALARM" } else { "OK" }, reason = %reason, "firewall");
                set_alarm(up, name, *on, reason).await
            }
            Action::AclFinding { acl_id, opening } => {
                info!(acl = %acl_id, entry = %opening, "Security Hub finding");
                import_acl_finding(up, state, acl_id, opening).await
            }
            Action::DeleteEntry { acl_id, opening } => {
                info!(acl = %acl_id, entry = %opening, "remediator deletes the entry");
                delete_entry(up, acl_id, opening).await
            }
            Action::Finding { group_id, permission } => {
                info!(group = %group_id, permission = %permission, "Security Hub finding");
                import_finding(up, state, group_id, permission).await
            }
            Action::Revoke { group_id, permission } => {
                info!(group = %group_id, permission = %permission, "remediator revokes");
                revoke(up, group_id, permission).await
            }
        };
        if let Err(e) = result {
            warn!(action = ?action, error = %e, "could not carry out a lab action");
        }
    }
    Ok(())
}

/// Scans forever at `interval`.
pub async fn run(up: Upstream, state: Arc<Mutex<LabState>>, interval: Duration) {
    loop {
        if let Err(e) = tick(&up, &state).await {
            warn!(error = %e, "scan failed");
        }
        tokio::time::sleep(interval).await;
    }
}
