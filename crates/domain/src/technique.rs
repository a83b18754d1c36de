//! What a technique says about itself.
//!
//! A technique is one kind of unauthorized change: `port-change` opens a port with a
//! security-group ingress rule, `nacl-entry` with a network ACL entry. Each lives in its
//! own folder of the `chaoslingr-techniques` crate, with its pure logic and its AWS
//! adapter side by side, and is registered there in one place. The lifecycle
//! ([`crate::engine`]), the judge, the detectors, recording and notification are shared
//! and know no technique by name: they use this description, which the technique's
//! adapter hands them (see [`crate::ports::Ingress::techniques`]).
//!
//! Every technique's change is a tcp or udp port range opened to a source CIDR on a
//! target that carries the opt-in tag, so planning ([`crate::port_choice`]), the durable
//! record ([`crate::tags`], [`crate::marker`]) and the ownership check
//! ([`crate::ownership`]) are shared too. Target ids name their kind (`sg-…`, `acl-…`),
//! which is how a record found anywhere is routed back to its technique.

use std::fmt;

use serde::{Serialize, Serializer};

/// A technique's description, one `static` per technique.
#[derive(Debug, PartialEq, Eq)]
pub struct Technique {
    /// `port-change`, `nacl-entry`: the CLI's `--experiment`, the inject event's
    /// `experiment`, the `Experiment` metric dimension and the outcome's `experiment`.
    pub name: &'static str,
    /// One line for `--help` and the README.
    pub summary: &'static str,
    /// What it targets, in words: `security group`, `network ACL`.
    pub target: &'static str,
    /// The same, plural.
    pub targets: &'static str,
    /// The prefix of its targets' ids: `sg-`, `acl-`.
    pub target_prefix: &'static str,
    /// What it adds, in words: `ingress rule`, `network ACL entry`.
    pub change: &'static str,
    /// The prefix of its changes' ids: `sgr-`, `acl-` (`acl-…/<rule number>`).
    pub change_prefix: &'static str,
    /// The AWS Config resource type its change touches, which a `config:` detector must
    /// record continuously to see it.
    pub config_resource_type: &'static str,
    /// The resource type in its targets' ARNs: `security-group`, `network-acl`.
    pub arn_resource: &'static str,
    /// The experiment record is written onto the target before the change is made (the
    /// change cannot carry it itself): for a short while after injection a marked
    /// target may be without its change, and that is not a removal (see
    /// [`crate::scheduled::SETTLING`]).
    pub record_first: bool,
}

impl Technique {
    /// Whether `target_id` is one of this technique's targets.
    pub fn owns_target(&self, target_id: &str) -> bool {
        target_id.starts_with(self.target_prefix)
    }

    /// Whether `change_id` is one of this technique's changes.
    pub fn owns_change(&self, change_id: &str) -> bool {
        change_id.starts_with(self.change_prefix)
    }

    /// The ARN of one of its targets.
    pub fn target_arn(&self, partition: &str, region: &str, account: &str, target_id: &str) -> String {
        format!("arn:{partition}:ec2:{region}:{account}:{}/{target_id}", self.arn_resource)
    }
}

impl fmt::Display for Technique {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// A technique as it appears in plans and reports: by name.
pub type TechniqueRef = &'static Technique;

/// Serializes a technique as its name.
pub fn serialize_name<S: Serializer>(t: &TechniqueRef, s: S) -> Result<S::Ok, S::Error> {
    t.name.serialize(s)
}

/// Finds the technique named `name` among `known`, or says which exist.
pub fn by_name(known: &[TechniqueRef], name: &str) -> Result<TechniqueRef, String> {
    let name = name.trim();
    known.iter().copied().find(|t| t.name == name).ok_or_else(|| {
        let names: Vec<&str> = known.iter().map(|t| t.name).collect();
        format!("unknown experiment `{name}`; expected one of: {}", names.join(", "))
    })
}

/// Checks that `id` looks like a target of one of `known` (`sg-` or `acl-` and hex
/// digits), naming the accepted forms when not.
pub fn check_target_id(known: &[TechniqueRef], id: &str) -> Result<TechniqueRef, String> {
    let technique = of_target(known, id).filter(|t| {
        let rest = &id[t.target_prefix.len()..];
        !rest.is_empty() && rest.len() <= 32 && rest.chars().all(|c| c.is_ascii_hexdigit())
    });
    technique.ok_or_else(|| {
        let forms: Vec<String> =
            known.iter().map(|t| format!("a {} id such as `{}0123456789abcdef0`", t.target, t.target_prefix)).collect();
        format!("`{id}` is not a target id: expected {}", forms.join(" or "))
    })
}

/// The technique whose targets have ids like `target_id`.
pub fn of_target(known: &[TechniqueRef], target_id: &str) -> Option<TechniqueRef> {
    known.iter().copied().find(|t| t.owns_target(target_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    static A: Technique = Technique {
        name: "a-change",
        summary: "a",
        target: "thing",
        targets: "things",
        target_prefix: "th-",
        change: "entry",
        change_prefix: "thr-",
        config_resource_type: "AWS::EC2::Thing",
        arn_resource: "thing",
        record_first: false,
    };
    static B: Technique = Technique {
        name: "b-change",
        summary: "b",
        target: "other thing",
        targets: "other things",
        target_prefix: "bt-",
        change: "entry",
        change_prefix: "bt-",
        config_resource_type: "AWS::EC2::Other",
        arn_resource: "other",
        record_first: false,
    };

    #[test]
    fn techniques_are_found_by_name_and_by_their_targets_ids() {
        let known = [&A, &B];
        assert_eq!(by_name(&known, " b-change").unwrap().name, "b-change");
        let e = by_name(&known, "port").unwrap_err();
        assert!(e.contains("`port`") && e.contains("a-change, b-change"), "{e}");
        assert_eq!(of_target(&known, "bt-0123").map(|t| t.name), Some("b-change"));
        assert_eq!(of_target(&known, "sg-0123"), None);
        assert_eq!(check_target_id(&known, "bt-0a1f").map(|t| t.name), Ok("b-change"));
        for bad in ["bt-", "bt-xyz", "sg-0a1f", "th-0a1f/2"] {
            let e = check_target_id(&known, bad).unwrap_err();
            assert!(e.contains("a thing id such as `th-0123456789abcdef0` or a other thing id"), "{e}");
        }
        assert_eq!(A.target_arn("aws", "eu-west-1", "1", "th-9"), "arn:aws:ec2:eu-west-1:1:thing/th-9");
    }
}
