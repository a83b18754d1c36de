//! `port-change` on EC2: opted-in security groups, their ingress rules, and the
//! experiment's own rule, created with its record in one call.

use aws_sdk_ec2::types::{
    Filter, IpPermission, IpRange, Ipv6Range, ResourceType, SecurityGroup, SecurityGroupRule, Tag, TagSpecification,
};
use aws_sdk_ec2::Client;
use chaoslingr_domain::port_choice::ExistingRule;
use chaoslingr_domain::ports::{
    AuthorizeOutcome, CallError, Changes, FailureKind, IngressRequest, Markers, RevokeOutcome, Targets,
};
use chaoslingr_domain::selection::GroupInfo;
use chaoslingr_domain::tags::{self, TaggedRule};
use tracing::{debug, instrument};

use chaoslingr_aws::call_error;
use chaoslingr_aws::ec2::{tag_pairs, Ec2};
use chaoslingr_domain::technique::TechniqueRef;

/// The largest page EC2 serves for the describe calls used here.
const PAGE_SIZE: i32 = 1000;

/// [`Ingress`] for `port-change`: security groups and their ingress rules, on the EC2 API.
#[derive(Debug, Clone)]
pub struct Ec2Ingress {
    ec2: Ec2,
}

impl Ec2Ingress {
    /// On a ready-made client (tests); see [`Ec2::new`].
    pub fn new(client: Client) -> Self {
        Ec2Ingress { ec2: Ec2::new(client) }
    }

    /// On shared EC2 plumbing (one client for every technique).
    pub fn on(ec2: Ec2) -> Self {
        Ec2Ingress { ec2 }
    }

    /// Attaches an STS client for decoding authorization failures.
    pub fn with_sts(mut self, sts: aws_sdk_sts::Client) -> Self {
        self.ec2 = self.ec2.with_sts(sts);
        self
    }
}

impl Ec2Ingress {
    /// Every security-group rule matching `filter`, across every page.
    async fn rules_where(&self, filter: Filter) -> Result<Vec<TaggedRule>, CallError> {
        let mut out = Vec::new();
        let mut pages = self
            .ec2
            .client
            .describe_security_group_rules()
            .filters(filter)
            .max_results(PAGE_SIZE)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| call_error("DescribeSecurityGroupRules", &e))?;
            out.extend(page.security_group_rules().iter().map(tagged_rule));
        }
        Ok(out)
    }
}

fn group_info(g: &SecurityGroup) -> GroupInfo {
    GroupInfo {
        id: g.group_id().unwrap_or_default().to_string(),
        name: g.group_name().unwrap_or_default().to_string(),
        vpc_id: g.vpc_id().map(str::to_string),
        owner_id: g.owner_id().map(str::to_string),
        tags: tag_pairs(g.tags()),
        ingress: g
            .ip_permissions()
            .iter()
            .map(|p| ExistingRule {
                ip_protocol: p.ip_protocol().unwrap_or("-1").to_string(),
                from_port: p.from_port(),
                to_port: p.to_port(),
            })
            .collect(),
    }
}

fn tagged_rule(r: &SecurityGroupRule) -> TaggedRule {
    TaggedRule {
        security_group_id: r.group_id().unwrap_or_default().to_string(),
        security_group_rule_id: r.security_group_rule_id().unwrap_or_default().to_string(),
        account: r.group_owner_id().map(str::to_string),
        ip_protocol: r.ip_protocol().unwrap_or("-1").to_string(),
        from_port: r.from_port(),
        to_port: r.to_port(),
        cidr: r.cidr_ipv4().or(r.cidr_ipv6()).map(str::to_string),
        description: r.description().map(str::to_string),
        is_egress: r.is_egress().unwrap_or(false),
        tags: tag_pairs(r.tags()),
    }
}

impl Targets for Ec2Ingress {
    fn techniques(&self) -> &'static [TechniqueRef] {
        &super::ONLY
    }

    /// `DescribeSecurityGroups` with a server-side `tag-key` filter, every page.
    #[instrument(skip(self), err)]
    async fn groups_with_tag_key(&self, tag_key: &str) -> Result<Vec<GroupInfo>, CallError> {
        let mut out = Vec::new();
        let mut pages = self
            .ec2
            .client
            .describe_security_groups()
            .filters(Filter::builder().name("tag-key").values(tag_key).build())
            .max_results(PAGE_SIZE)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| call_error("DescribeSecurityGroups", &e))?;
            out.extend(page.security_groups().iter().map(group_info));
        }
        debug!(groups = out.len(), tag_key, "listed groups by tag key");
        Ok(out)
    }

    #[instrument(skip(self), err)]
    async fn group(&self, group_id: &str) -> Result<Option<GroupInfo>, CallError> {
        match self.ec2.client.describe_security_groups().group_ids(group_id).send().await {
            Ok(out) => Ok(out.security_groups().iter().find(|g| g.group_id() == Some(group_id)).map(group_info)),
            Err(e) => {
                let err = call_error("DescribeSecurityGroups", &e);
                if err.kind == FailureKind::NotFound {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    fn aws_time(&self) -> Option<std::time::SystemTime> {
        self.ec2.clock.now()
    }
}

impl Changes for Ec2Ingress {
    /// `DescribeSecurityGroupRules` filtered on the experiment-id tag key, every page.
    #[instrument(skip(self), err)]
    async fn experiment_rules(&self) -> Result<Vec<TaggedRule>, CallError> {
        let rules = self.rules_where(Filter::builder().name("tag-key").values(tags::EXPERIMENT_ID).build()).await?;
        Ok(rules.into_iter().filter(|r| !r.is_egress && r.experiment_id().is_some()).collect())
    }

    /// `DescribeSecurityGroupRules` filtered on the group id, every page.
    #[instrument(skip(self), err)]
    async fn group_rules(&self, group_id: &str) -> Result<Vec<TaggedRule>, CallError> {
        self.rules_where(Filter::builder().name("group-id").values(group_id).build()).await
    }

    #[instrument(skip(self), err)]
    async fn rule(&self, rule_id: &str) -> Result<Option<TaggedRule>, CallError> {
        match self.ec2.client.describe_security_group_rules().security_group_rule_ids(rule_id).send().await {
            Ok(out) => Ok(out
                .security_group_rules()
                .iter()
                .find(|r| r.security_group_rule_id() == Some(rule_id))
                .map(tagged_rule)),
            Err(e) => {
                let err = call_error("DescribeSecurityGroupRules", &e);
                if err.kind == FailureKind::NotFound {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    /// One `AuthorizeSecurityGroupIngress` call that creates the rule *with* its tags
    /// (`TagSpecifications`), so an untagged, unrevertable rule can never exist.
    #[instrument(skip(self, request), fields(group = %request.security_group_id, ports = %request.ports, protocol = %request.protocol, dry_run = request.dry_run), err)]
    async fn authorize(&self, request: &IngressRequest) -> Result<AuthorizeOutcome, CallError> {
        let mut permission = IpPermission::builder()
            .ip_protocol(request.protocol.as_str())
            .from_port(i32::from(request.ports.from))
            .to_port(i32::from(request.ports.to));
        permission = if request.cidr.contains(':') {
            permission
                .ipv6_ranges(Ipv6Range::builder().cidr_ipv6(&request.cidr).description(&request.description).build())
        } else {
            permission.ip_ranges(IpRange::builder().cidr_ip(&request.cidr).description(&request.description).build())
        };
        let tags: Vec<Tag> = request.tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect();
        let result = self
            .ec2
            .client
            .authorize_security_group_ingress()
            .group_id(&request.security_group_id)
            .ip_permissions(permission.build())
            .tag_specifications(
                TagSpecification::builder().resource_type(ResourceType::SecurityGroupRule).set_tags(Some(tags)).build(),
            )
            .dry_run(request.dry_run)
            .send()
            .await;
        match result {
            Ok(out) => match out.security_group_rules().first().and_then(|r| r.security_group_rule_id()) {
                Some(id) => Ok(AuthorizeOutcome::Created { rule_id: id.to_string() }),
                None => Err(CallError::new(
                    "AuthorizeSecurityGroupIngress",
                    FailureKind::Other,
                    None,
                    "EC2 did not return the id of the created rule",
                )),
            },
            Err(e) => {
                let err = call_error("AuthorizeSecurityGroupIngress", &e);
                match (err.kind, err.code.as_deref()) {
                    (_, Some("DryRunOperation")) => Ok(AuthorizeOutcome::WouldSucceed),
                    (FailureKind::Denied, _) => Ok(self.ec2.denied(err).await),
                    _ => Err(err),
                }
            }
        }
    }

    /// `RevokeSecurityGroupIngress` by rule id; "already gone" is success.
    #[instrument(skip(self), err)]
    async fn revoke(&self, group_id: &str, rule_id: &str) -> Result<RevokeOutcome, CallError> {
        match self
            .ec2
            .client
            .revoke_security_group_ingress()
            .group_id(group_id)
            .security_group_rule_ids(rule_id)
            .send()
            .await
        {
            Ok(_) => Ok(RevokeOutcome::Revoked),
            Err(e) => {
                let err = call_error("RevokeSecurityGroupIngress", &e);
                if err.kind == FailureKind::NotFound {
                    Ok(RevokeOutcome::AlreadyGone)
                } else {
                    Err(err)
                }
            }
        }
    }
}

impl Markers for Ec2Ingress {
    /// `CreateTags` on the group: the marker of an experiment.
    #[instrument(skip(self, tags), err)]
    async fn tag_group(&self, group_id: &str, tags: &[(String, String)]) -> Result<(), CallError> {
        self.ec2.tag(group_id, tags).await
    }

    /// `DeleteTags` on the group, by key (whatever the values).
    #[instrument(skip(self, keys), err)]
    async fn untag_group(&self, group_id: &str, keys: &[&str]) -> Result<(), CallError> {
        self.ec2.untag(group_id, keys).await
    }
}
