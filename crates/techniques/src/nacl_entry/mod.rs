//! `nacl-entry`: opens a tcp or udp port range to the world with one inbound ALLOW entry
//! on an opted-in network ACL, and later deletes exactly that entry.
//!
//! Network ACL entries carry no tags and no description, so the durable record lives on
//! the ACL: its tags get the experiment record *before* the entry is created (the
//! adapter writes them first), so no entry of ours can exist without a record. An entry
//! is identified by its ACL and rule number, `acl-…/<rule number>`, which the record
//! names (`chaoslingr:rule-id`); an entry counts as ChaoSlingr's only when the ACL's
//! record names it and it is an inbound ALLOW entry of the recorded shape (checked by
//! the shared ownership check on the rule view built here, [`entry_as_rule`]).
//!
//! Entries are evaluated in ascending rule number and the first match decides, so the new
//! entry takes a number below every inbound entry that could match the same traffic (a
//! DENY would shadow it) and equal to none ([`choose_rule_number`]). Ports are chosen as
//! for every technique, avoiding every port an inbound ALLOW entry already admits, so the
//! change is never a port that is already reachable from the same source.

pub mod aws;

use chaoslingr_domain::experiment::{PortRange, Protocol};
use chaoslingr_domain::marker;
use chaoslingr_domain::ownership::DESCRIPTION_PREFIX;
use chaoslingr_domain::port_choice::ExistingRule;
use chaoslingr_domain::selection::GroupInfo;
use chaoslingr_domain::tags::{TaggedRule, EXPERIMENT_ID};
use chaoslingr_domain::technique::{Technique, TechniqueRef};

pub use aws::NaclEntries;

/// The technique's description.
pub static TECHNIQUE: Technique = Technique {
    name: "nacl-entry",
    summary: "open a port range to the world with an inbound ALLOW entry on an opted-in network ACL",
    target: "network ACL",
    targets: "network ACLs",
    target_prefix: "acl-",
    change: "network ACL entry",
    change_prefix: "acl-",
    config_resource_type: "AWS::EC2::NetworkAcl",
    arn_resource: "network-acl",
    record_first: true,
};

pub(crate) static ONLY: [TechniqueRef; 1] = [&TECHNIQUE];

/// The highest rule number AWS accepts for an entry (32767 is the default `*` entry).
pub const MAX_RULE_NUMBER: i32 = 32766;

/// One entry of a network ACL, as EC2 describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub rule_number: i32,
    pub egress: bool,
    pub allow: bool,
    /// `-1` (all), `6` (tcp), `17` (udp) or another protocol number.
    pub protocol: String,
    /// The port range; `None` for all ports (all traffic, or a protocol without ports).
    pub ports: Option<(i32, i32)>,
    /// The IPv4 or IPv6 source.
    pub cidr: Option<String>,
}

impl Entry {
    /// Whether this entry would match some traffic of `protocol` on `ports` from a source
    /// of the same address family as `cidr` (conservatively: any overlap counts).
    fn could_match(&self, protocol: Protocol, ports: PortRange, cidr: &str) -> bool {
        let rule = ExistingRule { ip_protocol: self.protocol.clone(), from_port: None, to_port: None };
        if rule.covers(protocol).is_none() {
            return false;
        }
        let same_family = self.cidr.as_deref().is_none_or(|c| c.contains(':') == cidr.contains(':'));
        let overlaps = match self.ports {
            None => true,
            Some((from, to)) => i32::from(ports.from) <= to && from <= i32::from(ports.to),
        };
        same_family && overlaps
    }
}

/// A network ACL as the techniques see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    pub id: String,
    pub vpc_id: Option<String>,
    pub owner_id: Option<String>,
    pub tags: Vec<(String, String)>,
    pub entries: Vec<Entry>,
}

impl Acl {
    fn tag(&self, key: &str) -> Option<&str> {
        self.tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The inbound entry numbered `rule_number`.
    pub fn inbound(&self, rule_number: i32) -> Option<&Entry> {
        self.entries.iter().find(|e| !e.egress && e.rule_number == rule_number)
    }

    /// The change id of the entry the ACL's experiment record names, if any.
    pub fn recorded_change(&self) -> Option<&str> {
        self.tag(marker::RULE_ID)
    }
}

/// The id of an entry: `acl-…/<rule number>`.
pub fn change_id(acl_id: &str, rule_number: i32) -> String {
    format!("{acl_id}/{rule_number}")
}

/// The ACL and rule number of a change id, when it is one of this technique's.
pub fn parse_change_id(id: &str) -> Option<(&str, i32)> {
    let (acl, number) = id.split_once('/')?;
    let number: i32 = number.parse().ok()?;
    (TECHNIQUE.owns_target(acl) && (1..=MAX_RULE_NUMBER).contains(&number)).then_some((acl, number))
}

/// The ACL as a target: its tags, and as existing rules the inbound ALLOW entries, whose
/// ports port choice avoids (so the change never opens a port that is already open).
pub fn target_info(acl: &Acl) -> GroupInfo {
    let name = acl.tag("Name").unwrap_or_default().to_string();
    GroupInfo {
        id: acl.id.clone(),
        name,
        vpc_id: acl.vpc_id.clone(),
        owner_id: acl.owner_id.clone(),
        tags: acl.tags.clone(),
        ingress: acl
            .entries
            .iter()
            .filter(|e| !e.egress && e.allow)
            .map(|e| ExistingRule {
                ip_protocol: e.protocol.clone(),
                from_port: e.ports.map(|(f, _)| f),
                to_port: e.ports.map(|(_, t)| t),
            })
            .collect(),
    }
}

/// One entry as the lifecycle sees a change. The ACL's tags stand in for the entry's own
/// (it has none), and the description naming the experiment (which the shared ownership
/// check requires) is given only to the inbound ALLOW entry the ACL's record names: any
/// other entry, a DENY, an egress entry, is never ChaoSlingr's.
pub fn entry_as_rule(acl: &Acl, entry: &Entry) -> TaggedRule {
    let id = change_id(&acl.id, entry.rule_number);
    let recorded = acl.recorded_change() == Some(id.as_str());
    let description = match acl.tag(EXPERIMENT_ID) {
        Some(experiment) if recorded && entry.allow && !entry.egress => Some(format!(
            "{DESCRIPTION_PREFIX}{experiment} - entry {} of {} (recorded in the ACL's tags)",
            entry.rule_number, acl.id
        )),
        _ => None,
    };
    TaggedRule {
        security_group_id: acl.id.clone(),
        security_group_rule_id: id,
        account: acl.owner_id.clone(),
        ip_protocol: entry.protocol.clone(),
        from_port: entry.ports.map(|(f, _)| f),
        to_port: entry.ports.map(|(_, t)| t),
        cidr: entry.cidr.clone(),
        description,
        is_egress: entry.egress,
        tags: if recorded { acl.tags.clone() } else { Vec::new() },
    }
}

/// The entry the ACL's record names, as a change, when the ACL carries a record and the
/// entry exists.
pub fn recorded_entry(acl: &Acl) -> Option<TaggedRule> {
    acl.tag(EXPERIMENT_ID)?;
    let (acl_id, number) = parse_change_id(acl.recorded_change()?)?;
    if acl_id != acl.id {
        return None;
    }
    acl.inbound(number).map(|e| entry_as_rule(acl, e))
}

/// The rule number for a new inbound ALLOW entry of `protocol` on `ports` from `cidr`:
/// below every inbound entry that could match the same traffic (the default `*` entry
/// included, so the new entry always takes effect) and equal to no inbound entry. The
/// highest such number is taken, leaving the owners' low numbers alone.
pub fn choose_rule_number(entries: &[Entry], protocol: Protocol, ports: PortRange, cidr: &str) -> Result<i32, String> {
    let first_match = entries
        .iter()
        .filter(|e| !e.egress && e.could_match(protocol, ports, cidr))
        .map(|e| e.rule_number)
        .min()
        .unwrap_or(MAX_RULE_NUMBER + 1);
    let taken: std::collections::BTreeSet<i32> = entries.iter().filter(|e| !e.egress).map(|e| e.rule_number).collect();
    (1..first_match.min(MAX_RULE_NUMBER + 1)).rev().find(|n| !taken.contains(n)).ok_or_else(|| {
        format!(
            "no free inbound rule number below {first_match}, the first entry that matches {protocol} {ports} from {cidr}: an entry there would never take effect"
        )
    })
}

/// The record tags written onto the ACL before its entry exists: the experiment record,
/// the entry it is about to create, and the change.
pub fn record_tags(
    record: &[(String, String)],
    acl_id: &str,
    rule_number: i32,
    protocol: Protocol,
    ports: PortRange,
    cidr: &str,
) -> Vec<(String, String)> {
    let mut tags = record.to_vec();
    tags.push((marker::RULE_ID.into(), change_id(acl_id, rule_number)));
    tags.push((marker::CHANGE.into(), format!("{protocol} {ports} {cidr}")));
    tags
}

/// The protocol number a network ACL entry takes.
pub fn protocol_number(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Tcp => "6",
        Protocol::Udp => "17",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chaoslingr_domain::config::Settings;
    use chaoslingr_domain::ownership;

    const ID: &str = "cs-20261202T140000Z-0a1b2c";

    fn entry(rule_number: i32, allow: bool, protocol: &str, ports: Option<(i32, i32)>) -> Entry {
        Entry { rule_number, egress: false, allow, protocol: protocol.into(), ports, cidr: Some("0.0.0.0/0".into()) }
    }

    /// A custom ACL as the seed makes it: HTTPS allowed, everything else denied.
    fn acl(extra: Vec<Entry>) -> Acl {
        let mut entries = vec![
            entry(100, true, "6", Some((443, 443))),
            entry(32767, false, "-1", None),
            Entry { egress: true, ..entry(100, true, "-1", None) },
        ];
        entries.extend(extra);
        Acl { id: "acl-0abc".into(), vpc_id: Some("vpc-1".into()), owner_id: None, tags: vec![], entries }
    }

    fn ports(from: u16, to: u16) -> PortRange {
        PortRange::new(from, to).unwrap()
    }

    #[test]
    fn the_new_entry_goes_just_before_the_first_entry_that_would_match_it() {
        let a = acl(vec![]);
        // Only the default deny matches: the highest number there is.
        assert_eq!(choose_rule_number(&a.entries, Protocol::Tcp, ports(40_000, 40_002), "0.0.0.0/0"), Ok(32766));
        // A DENY of these ports at 200 would shadow anything after it.
        let a = acl(vec![entry(200, false, "6", Some((40_000, 40_010)))]);
        assert_eq!(choose_rule_number(&a.entries, Protocol::Tcp, ports(40_005, 40_005), "0.0.0.0/0"), Ok(199));
        // ...but not udp traffic, nor other ports.
        assert_eq!(choose_rule_number(&a.entries, Protocol::Udp, ports(40_005, 40_005), "0.0.0.0/0"), Ok(32766));
        assert_eq!(choose_rule_number(&a.entries, Protocol::Tcp, ports(50_000, 50_000), "0.0.0.0/0"), Ok(32766));
        // An all-traffic DENY matches every protocol; numbers in use are skipped.
        let a = acl(vec![entry(300, false, "-1", None), entry(299, true, "6", Some((22, 22)))]);
        assert_eq!(choose_rule_number(&a.entries, Protocol::Udp, ports(1_000, 1_000), "0.0.0.0/0"), Ok(298));
        // Egress entries neither block nor collide.
        let mut e = entry(298, false, "-1", None);
        e.egress = true;
        let mut with_egress = a.entries.clone();
        with_egress.push(e);
        assert_eq!(choose_rule_number(&with_egress, Protocol::Udp, ports(1_000, 1_000), "0.0.0.0/0"), Ok(298));
    }

    #[test]
    fn no_number_before_a_deny_at_rule_1_is_an_error_not_a_guess() {
        let a = acl(vec![entry(1, false, "-1", None)]);
        let e = choose_rule_number(&a.entries, Protocol::Tcp, ports(40_000, 40_000), "0.0.0.0/0").unwrap_err();
        assert!(e.contains("below 1") && e.contains("never take effect"), "{e}");
        let full: Vec<Entry> =
            (1..=5).map(|n| entry(n, true, "6", Some((n, n)))).chain([entry(6, false, "-1", None)]).collect();
        assert!(choose_rule_number(&full, Protocol::Tcp, ports(40_000, 40_000), "0.0.0.0/0").is_err());
    }

    #[test]
    fn an_ipv6_deny_does_not_shadow_an_ipv4_entry() {
        let mut v6 = entry(50, false, "-1", None);
        v6.cidr = Some("::/0".into());
        let a = acl(vec![v6]);
        assert_eq!(choose_rule_number(&a.entries, Protocol::Tcp, ports(40_000, 40_000), "0.0.0.0/0"), Ok(32766));
        assert_eq!(choose_rule_number(&a.entries, Protocol::Tcp, ports(40_000, 40_000), "::/0"), Ok(49));
    }

    #[test]
    fn ports_already_allowed_inbound_are_existing_rules_for_port_choice() {
        let info = target_info(&acl(vec![entry(110, false, "17", None)]));
        assert_eq!(info.ingress.len(), 1, "only inbound ALLOW entries: {:?}", info.ingress);
        assert_eq!(info.ingress[0].covers(Protocol::Tcp), Some(ports(443, 443)));
        let open = target_info(&acl(vec![entry(90, true, "-1", None)]));
        assert!(open.ingress.iter().any(|r| r.covers(Protocol::Udp) == Some(ports(0, u16::MAX))));
    }

    #[test]
    fn change_ids_name_the_acl_and_the_rule_number() {
        assert_eq!(change_id("acl-0abc", 32766), "acl-0abc/32766");
        assert_eq!(parse_change_id("acl-0abc/32766"), Some(("acl-0abc", 32766)));
        for bad in ["sgr-0abc", "acl-0abc", "acl-0abc/x", "acl-0abc/0", "acl-0abc/32767", "sg-1/5"] {
            assert_eq!(parse_change_id(bad), None, "{bad}");
        }
    }

    fn recorded_acl(entry_number: i32) -> Acl {
        let mut a = acl(vec![entry(32766, true, "6", Some((40_000, 40_002)))]);
        let record = vec![(EXPERIMENT_ID.to_string(), ID.to_string())];
        a.tags = record_tags(&record, "acl-0abc", entry_number, Protocol::Tcp, ports(40_000, 40_002), "0.0.0.0/0");
        a
    }

    #[test]
    fn only_the_recorded_inbound_allow_entry_is_ours() {
        let settings = Settings::default();
        let a = recorded_acl(32766);
        let ours = recorded_entry(&a).expect("the recorded entry exists");
        assert_eq!(ours.security_group_rule_id, "acl-0abc/32766");
        assert_eq!(ours.experiment_id(), Some(ID));
        assert_eq!(ownership::check(&ours, ID, None, &settings), Ok(()));

        // Another entry of the same ACL, even of the same shape, is not.
        let other = entry_as_rule(&a, &entry(32765, true, "6", Some((40_000, 40_002))));
        assert!(ownership::check(&other, ID, None, &settings).is_err());
        // A DENY at the recorded number is not.
        let deny = entry_as_rule(&a, &entry(32766, false, "6", Some((40_000, 40_002))));
        assert!(ownership::check(&deny, ID, None, &settings).unwrap_err().to_string().contains("does not name"));
        // An ACL whose record names another entry has no entry of ours.
        assert_eq!(recorded_entry(&recorded_acl(32000)), None);
        // Without the experiment id the record is no record.
        let mut untagged = recorded_acl(32766);
        untagged.tags.retain(|(k, _)| k != EXPERIMENT_ID);
        assert_eq!(recorded_entry(&untagged), None);
    }
}
