//! EC2: opted-in security groups, their ingress rules, and the experiment's own rule.

use aws_sdk_ec2::types::{
    Filter, IpPermission, IpRange, Ipv6Range, ResourceType, SecurityGroup, SecurityGroupRule, Tag, TagSpecification,
};
use aws_sdk_ec2::Client;
use chaoslingr_domain::port_choice::ExistingRule;
use chaoslingr_domain::ports::{
    AuthorizeOutcome, CallError, DenialSource, FailureKind, Ingress, IngressRequest, RevokeOutcome,
};
use chaoslingr_domain::selection::GroupInfo;
use chaoslingr_domain::tags::{self, TaggedRule};
use tracing::{debug, instrument};

use crate::errors::call_error;

/// The largest page EC2 serves for the describe calls used here.
const PAGE_SIZE: i32 = 1000;

/// [`Ingress`] on the EC2 API.
#[derive(Debug, Clone)]
pub struct Ec2Ingress {
    client: Client,
    /// Decodes EC2's encoded authorization failure messages, to tell a preventive
    /// control's explicit deny from a permission ChaoSlingr's own role lacks.
    sts: Option<aws_sdk_sts::Client>,
    clock: AwsClock,
}

impl Ec2Ingress {
    /// On a ready-made client (tests): no authorization-message decoding, and AWS's clock
    /// is read only from responses that pass through [`Ec2Ingress::from_conf`]'s client.
    pub fn new(client: Client) -> Self {
        Ec2Ingress { client, sts: None, clock: AwsClock::default() }
    }

    /// The EC2 client for `conf`, reading AWS's clock off every response's `Date`, and STS
    /// for decoding authorization failures.
    pub fn from_conf(conf: &aws_config::SdkConfig) -> Self {
        let clock = AwsClock::default();
        let ec2 = aws_sdk_ec2::config::Builder::from(conf).interceptor(clock.clone()).build();
        Ec2Ingress { client: Client::from_conf(ec2), sts: Some(aws_sdk_sts::Client::new(conf)), clock }
    }

    /// Attaches an STS client for decoding authorization failures.
    pub fn with_sts(mut self, sts: aws_sdk_sts::Client) -> Self {
        self.sts = Some(sts);
        self
    }

    /// Who refused, from the encoded message EC2 puts after "Encoded authorization
    /// failure message:" (decoded by STS: `explicitDeny` says whether a Deny matched).
    async fn denial_source(&self, message: &str) -> DenialSource {
        const MARK: &str = "Encoded authorization failure message:";
        let Some(encoded) = message.split_once(MARK).map(|(_, e)| e.trim()).filter(|e| !e.is_empty()) else {
            return DenialSource::Unknown("EC2 gave no encoded authorization message".into());
        };
        let encoded = encoded.split_whitespace().next().unwrap_or(encoded).trim_end_matches('.');
        let Some(sts) = &self.sts else {
            return DenialSource::Unknown("no STS client to decode the authorization message".into());
        };
        let decoded = match sts.decode_authorization_message().encoded_message(encoded).send().await {
            Ok(out) => out.decoded_message().unwrap_or_default().to_string(),
            Err(e) => {
                let err = call_error("DecodeAuthorizationMessage", &e);
                return DenialSource::Unknown(format!("could not decode the authorization message: {err}"));
            }
        };
        denial_source_of(&decoded)
    }
}

impl Ec2Ingress {
    /// Every security-group rule matching `filter`, across every page.
    async fn rules_where(&self, filter: Filter) -> Result<Vec<TaggedRule>, CallError> {
        let mut out = Vec::new();
        let mut pages =
            self.client.describe_security_group_rules().filters(filter).max_results(PAGE_SIZE).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| call_error("DescribeSecurityGroupRules", &e))?;
            out.extend(page.security_group_rules().iter().map(tagged_rule));
        }
        Ok(out)
    }
}

/// The [`DenialSource`] of a decoded authorization message.
pub fn denial_source_of(decoded: &str) -> DenialSource {
    match serde_json::from_str::<serde_json::Value>(decoded).ok().and_then(|v| v.get("explicitDeny")?.as_bool()) {
        Some(true) => DenialSource::ExplicitDeny,
        Some(false) => DenialSource::NotAllowed,
        None => DenialSource::Unknown("the decoded authorization message has no `explicitDeny`".into()),
    }
}

/// AWS's clock, as told by the `Date` header of the latest response, kept with the
/// local monotonic instant it arrived at. `Date` has whole seconds only, which is ample
/// for the 30-second tolerance it is used for.
#[derive(Debug, Clone, Default)]
pub struct AwsClock {
    seen: std::sync::Arc<std::sync::Mutex<Option<(std::time::SystemTime, std::time::Instant)>>>,
}

impl AwsClock {
    /// AWS's time now, if any response told it.
    pub fn now(&self) -> Option<std::time::SystemTime> {
        let seen = *self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.map(|(at, when)| at + when.elapsed())
    }

    /// Reads an HTTP `Date` header value.
    pub fn observe(&self, date: &str) {
        if let Ok(t) = aws_smithy_types::DateTime::from_str(date, aws_smithy_types::date_time::Format::HttpDate) {
            if let Ok(at) = std::time::SystemTime::try_from(t) {
                *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Some((at, std::time::Instant::now()));
            }
        }
    }
}

impl aws_sdk_ec2::config::Intercept for AwsClock {
    fn name(&self) -> &'static str {
        "ChaoSlingrAwsClock"
    }

    fn read_after_transmit(
        &self,
        context: &aws_sdk_ec2::config::interceptors::BeforeDeserializationInterceptorContextRef<'_>,
        _runtime_components: &aws_sdk_ec2::config::RuntimeComponents,
        _cfg: &mut aws_sdk_ec2::config::ConfigBag,
    ) -> Result<(), aws_sdk_ec2::error::BoxError> {
        if let Some(date) = context.response().headers().get("date") {
            self.observe(date);
        }
        Ok(())
    }
}

fn tag_pairs(tags: &[Tag]) -> Vec<(String, String)> {
    tags.iter().map(|t| (t.key().unwrap_or_default().to_string(), t.value().unwrap_or_default().to_string())).collect()
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

impl Ingress for Ec2Ingress {
    /// `DescribeSecurityGroups` with a server-side `tag-key` filter, every page.
    #[instrument(skip(self), err)]
    async fn groups_with_tag_key(&self, tag_key: &str) -> Result<Vec<GroupInfo>, CallError> {
        let mut out = Vec::new();
        let mut pages = self
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
        match self.client.describe_security_groups().group_ids(group_id).send().await {
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
        match self.client.describe_security_group_rules().security_group_rule_ids(rule_id).send().await {
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
                    (FailureKind::Denied, code) => {
                        let source = self.denial_source(&err.message).await;
                        Ok(AuthorizeOutcome::Denied {
                            code: code.unwrap_or("AccessDenied").to_string(),
                            message: err.message,
                            source,
                        })
                    }
                    _ => Err(err),
                }
            }
        }
    }

    /// `RevokeSecurityGroupIngress` by rule id; "already gone" is success.
    #[instrument(skip(self), err)]
    async fn revoke(&self, group_id: &str, rule_id: &str) -> Result<RevokeOutcome, CallError> {
        match self
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

    /// `CreateTags` on the group: the marker of an unattended experiment.
    #[instrument(skip(self, tags), err)]
    async fn tag_group(&self, group_id: &str, tags: &[(String, String)]) -> Result<(), CallError> {
        let tags: Vec<Tag> = tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect();
        self.client
            .create_tags()
            .resources(group_id)
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| call_error("CreateTags", &e))?;
        Ok(())
    }

    /// `DeleteTags` on the group, by key (whatever the values).
    #[instrument(skip(self, keys), err)]
    async fn untag_group(&self, group_id: &str, keys: &[&str]) -> Result<(), CallError> {
        let tags: Vec<Tag> = keys.iter().map(|k| Tag::builder().key(*k).build()).collect();
        self.client
            .delete_tags()
            .resources(group_id)
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| call_error("DeleteTags", &e))?;
        Ok(())
    }

    fn aws_time(&self) -> Option<std::time::SystemTime> {
        self.clock.now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_explicit_deny_in_the_decoded_message_is_a_preventive_control() {
        assert_eq!(denial_source_of(r#"{"allowed":false,"explicitDeny":true}"#), DenialSource::ExplicitDeny);
        assert_eq!(denial_source_of(r#"{"allowed":false,"explicitDeny":false}"#), DenialSource::NotAllowed);
        assert!(matches!(denial_source_of(r#"{"allowed":false}"#), DenialSource::Unknown(_)));
        assert!(matches!(denial_source_of("not json"), DenialSource::Unknown(_)));
    }

    #[tokio::test]
    async fn a_denial_without_an_encoded_message_or_sts_is_unattributed() {
        let conf =
            aws_sdk_ec2::Config::builder().behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest()).build();
        let ingress = Ec2Ingress::new(Client::from_conf(conf));
        let plain = ingress.denial_source("You are not authorized to perform this operation.").await;
        assert!(matches!(plain, DenialSource::Unknown(ref w) if w.contains("no encoded")), "{plain:?}");
        let encoded = ingress
            .denial_source(
                "You are not authorized to perform this operation. Encoded authorization failure message: abc123",
            )
            .await;
        assert!(matches!(encoded, DenialSource::Unknown(ref w) if w.contains("no STS client")), "{encoded:?}");
    }

    #[test]
    fn the_aws_clock_reads_http_dates_and_advances() {
        let clock = AwsClock::default();
        assert!(clock.now().is_none());
        clock.observe("Wed, 02 Dec 2026 01:48:44 GMT");
        let at = clock.now().unwrap();
        let expected = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_796_176_124);
        assert!(at >= expected && at < expected + std::time::Duration::from_secs(5), "{at:?}");
        clock.observe("garbage");
        assert!(clock.now().unwrap() >= expected);
    }
}
