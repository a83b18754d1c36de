//! `nacl-entry` on EC2: opted-in network ACLs, their entries, and the experiment's own
//! entry, created only after its record is on the ACL.

use aws_sdk_ec2::types::{Filter, NetworkAcl, NetworkAclEntry, PortRange as AwsPortRange, RuleAction};
use aws_sdk_ec2::Client;
use chaoslingr_aws::call_error;
use chaoslingr_aws::ec2::{tag_pairs, Ec2};
use chaoslingr_domain::ports::{
    AuthorizeOutcome, CallError, Changes, FailureKind, IngressRequest, Markers, RevokeOutcome, Targets,
};
use chaoslingr_domain::selection::GroupInfo;
use chaoslingr_domain::tags::{self, TaggedRule};
use chaoslingr_domain::technique::TechniqueRef;
use tracing::{debug, instrument, warn};

use super::{
    choose_rule_number, entry_as_rule, parse_change_id, protocol_number, record_tags, target_info, Acl, Entry,
};
use chaoslingr_domain::marker;

/// The largest page EC2 serves for `DescribeNetworkAcls`.
const PAGE_SIZE: i32 = 1000;

/// [`Ingress`] for `nacl-entry`: network ACLs and their inbound entries, on the EC2 API.
#[derive(Debug, Clone)]
pub struct NaclEntries {
    ec2: Ec2,
}

fn entry(e: &NetworkAclEntry) -> Entry {
    Entry {
        rule_number: e.rule_number().unwrap_or_default(),
        egress: e.egress().unwrap_or(false),
        allow: e.rule_action() == Some(&RuleAction::Allow),
        protocol: e.protocol().unwrap_or("-1").to_string(),
        ports: e.port_range().map(|p| (p.from().unwrap_or(0), p.to().unwrap_or(65_535))),
        cidr: e.cidr_block().or(e.ipv6_cidr_block()).map(str::to_string),
    }
}

fn acl(a: &NetworkAcl) -> Acl {
    Acl {
        id: a.network_acl_id().unwrap_or_default().to_string(),
        vpc_id: a.vpc_id().map(str::to_string),
        owner_id: a.owner_id().map(str::to_string),
        tags: tag_pairs(a.tags()),
        entries: a.entries().iter().map(entry).collect(),
    }
}

impl NaclEntries {
    /// On a ready-made client (tests); see [`Ec2::new`].
    pub fn new(client: Client) -> Self {
        NaclEntries { ec2: Ec2::new(client) }
    }

    /// On shared EC2 plumbing (one client for every technique).
    pub fn on(ec2: Ec2) -> Self {
        NaclEntries { ec2 }
    }

    /// Every network ACL matching `filter`, across every page.
    async fn acls_where(&self, filter: Filter) -> Result<Vec<Acl>, CallError> {
        let mut out = Vec::new();
        let mut pages =
            self.ec2.client.describe_network_acls().filters(filter).max_results(PAGE_SIZE).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| call_error("DescribeNetworkAcls", &e))?;
            out.extend(page.network_acls().iter().map(acl));
        }
        Ok(out)
    }

    /// One ACL read fresh by its id; an ACL that is gone reads as `None`.
    async fn acl(&self, acl_id: &str) -> Result<Option<Acl>, CallError> {
        match self.ec2.client.describe_network_acls().network_acl_ids(acl_id).send().await {
            Ok(out) => Ok(out.network_acls().iter().map(acl).find(|a| a.id == acl_id)),
            Err(e) => {
                let err = call_error("DescribeNetworkAcls", &e);
                if err.kind == FailureKind::NotFound {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    /// Removes the record written before a create that is known not to have happened.
    async fn forget_record(&self, acl_id: &str) {
        if let Err(e) = self.ec2.untag(acl_id, &marker::KEYS).await {
            warn!(acl = acl_id, error = %e, "could not remove the record of an entry that was not created; the judge will find a record without an entry and close it");
        }
    }
}

impl Targets for NaclEntries {
    fn techniques(&self) -> &'static [TechniqueRef] {
        &super::ONLY
    }

    /// `DescribeNetworkAcls` with a server-side `tag-key` filter, every page.
    #[instrument(skip(self), err)]
    async fn groups_with_tag_key(&self, tag_key: &str) -> Result<Vec<GroupInfo>, CallError> {
        let acls = self.acls_where(Filter::builder().name("tag-key").values(tag_key).build()).await?;
        debug!(acls = acls.len(), tag_key, "listed network ACLs by tag key");
        Ok(acls.iter().map(target_info).collect())
    }

    #[instrument(skip(self), err)]
    async fn group(&self, group_id: &str) -> Result<Option<GroupInfo>, CallError> {
        Ok(self.acl(group_id).await?.as_ref().map(target_info))
    }

    fn aws_time(&self) -> Option<std::time::SystemTime> {
        self.ec2.clock.now()
    }
}

impl Changes for NaclEntries {
    /// The entry each ACL's record names, for every ACL carrying an experiment record.
    #[instrument(skip(self), err)]
    async fn experiment_rules(&self) -> Result<Vec<TaggedRule>, CallError> {
        let acls = self.acls_where(Filter::builder().name("tag-key").values(tags::EXPERIMENT_ID).build()).await?;
        Ok(acls.iter().filter_map(super::recorded_entry).collect())
    }

    /// Every inbound entry of one ACL.
    #[instrument(skip(self), err)]
    async fn group_rules(&self, group_id: &str) -> Result<Vec<TaggedRule>, CallError> {
        let Some(a) = self.acl(group_id).await? else { return Ok(Vec::new()) };
        Ok(a.entries.iter().filter(|e| !e.egress).map(|e| entry_as_rule(&a, e)).collect())
    }

    /// One entry by its id, `acl-…/<rule number>`, read from its ACL.
    #[instrument(skip(self), err)]
    async fn rule(&self, rule_id: &str) -> Result<Option<TaggedRule>, CallError> {
        let Some((acl_id, number)) = parse_change_id(rule_id) else {
            return Err(CallError::new(
                "DescribeNetworkAcls",
                FailureKind::Other,
                None,
                format!("`{rule_id}` is not a network ACL entry id (acl-…/<rule number>)"),
            ));
        };
        let Some(a) = self.acl(acl_id).await? else { return Ok(None) };
        Ok(a.inbound(number).map(|e| entry_as_rule(&a, e)))
    }

    /// Writes the experiment record onto the ACL, then creates the entry: no entry of
    /// ours exists without its record. The rule number is chosen on a fresh read of the
    /// ACL, right before. A create known to have failed takes the record back off; one
    /// whose result is unknown is read back.
    #[instrument(skip(self, request), fields(acl = %request.security_group_id, ports = %request.ports, protocol = %request.protocol, dry_run = request.dry_run), err)]
    async fn authorize(&self, request: &IngressRequest) -> Result<AuthorizeOutcome, CallError> {
        let acl_id = request.security_group_id.as_str();
        let Some(a) = self.acl(acl_id).await? else {
            return Err(CallError::new(
                "DescribeNetworkAcls",
                FailureKind::NotFound,
                None,
                format!("network ACL {acl_id} does not exist"),
            ));
        };
        let number = choose_rule_number(&a.entries, request.protocol, request.ports, &request.cidr)
            .map_err(|why| CallError::new("CreateNetworkAclEntry", FailureKind::Other, None, why))?;
        let create = || {
            let call = self
                .ec2
                .client
                .create_network_acl_entry()
                .network_acl_id(acl_id)
                .rule_number(number)
                .egress(false)
                .rule_action(RuleAction::Allow)
                .protocol(protocol_number(request.protocol))
                .port_range(
                    AwsPortRange::builder().from(i32::from(request.ports.from)).to(i32::from(request.ports.to)).build(),
                );
            if request.cidr.contains(':') {
                call.ipv6_cidr_block(&request.cidr)
            } else {
                call.cidr_block(&request.cidr)
            }
        };
        if request.dry_run {
            return match create().dry_run(true).send().await {
                Ok(_) => Ok(AuthorizeOutcome::WouldSucceed),
                Err(e) => {
                    let err = call_error("CreateNetworkAclEntry", &e);
                    match (err.kind, err.code.as_deref()) {
                        (_, Some("DryRunOperation")) => Ok(AuthorizeOutcome::WouldSucceed),
                        (FailureKind::Denied, _) => Ok(self.ec2.denied(err).await),
                        _ => Err(err),
                    }
                }
            };
        }

        let mut record = record_tags(&request.tags, acl_id, number, request.protocol, request.ports, &request.cidr);
        if request.watched_by_cli {
            record.push((marker::WATCHER.into(), "cli".into()));
        }
        if let Err(err) = self.ec2.tag(acl_id, &record).await {
            // Nothing was created; a refused record write is refused like the change.
            return match err.kind {
                FailureKind::Denied => Ok(self.ec2.denied(err).await),
                _ => Err(err),
            };
        }
        let change = super::change_id(acl_id, number);
        match create().send().await {
            Ok(_) => Ok(AuthorizeOutcome::Created { rule_id: change }),
            Err(e) => {
                let err = call_error("CreateNetworkAclEntry", &e);
                match err.kind {
                    FailureKind::Denied => {
                        self.forget_record(acl_id).await;
                        Ok(self.ec2.denied(err).await)
                    }
                    FailureKind::Transient => {
                        // The entry may exist (a timeout after the write): read it back.
                        match self.rule(&change).await {
                            Ok(Some(r)) if r.description.is_some() => {
                                warn!(change = %change, error = %err, "the create failed but the entry exists; it is ours");
                                Ok(AuthorizeOutcome::Created { rule_id: change })
                            }
                            Ok(_) => {
                                self.forget_record(acl_id).await;
                                Err(err)
                            }
                            Err(_) => Err(err),
                        }
                    }
                    _ => {
                        self.forget_record(acl_id).await;
                        Err(err)
                    }
                }
            }
        }
    }

    /// `DeleteNetworkAclEntry` by rule number (inbound); "already gone" is success.
    #[instrument(skip(self), err)]
    async fn revoke(&self, group_id: &str, rule_id: &str) -> Result<RevokeOutcome, CallError> {
        let Some((acl_id, number)) = parse_change_id(rule_id).filter(|(a, _)| *a == group_id) else {
            return Err(CallError::new(
                "DeleteNetworkAclEntry",
                FailureKind::Other,
                None,
                format!("`{rule_id}` is not an entry of {group_id}"),
            ));
        };
        match self
            .ec2
            .client
            .delete_network_acl_entry()
            .network_acl_id(acl_id)
            .rule_number(number)
            .egress(false)
            .send()
            .await
        {
            Ok(_) => Ok(RevokeOutcome::Revoked),
            Err(e) => {
                let err = call_error("DeleteNetworkAclEntry", &e);
                if err.kind == FailureKind::NotFound {
                    Ok(RevokeOutcome::AlreadyGone)
                } else {
                    Err(err)
                }
            }
        }
    }
}

impl Markers for NaclEntries {
    /// `CreateTags` on the ACL: the marker of an experiment.
    #[instrument(skip(self, tags), err)]
    async fn tag_group(&self, group_id: &str, tags: &[(String, String)]) -> Result<(), CallError> {
        self.ec2.tag(group_id, tags).await
    }

    /// `DeleteTags` on the ACL, by key (whatever the values).
    #[instrument(skip(self, keys), err)]
    async fn untag_group(&self, group_id: &str, keys: &[&str]) -> Result<(), CallError> {
        self.ec2.untag(group_id, keys).await
    }
}
