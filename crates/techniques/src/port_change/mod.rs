//! `port-change`: opens a tcp or udp port range to the world with one ingress rule on an
//! opted-in security group, the rule created with its experiment record as its tags and
//! a description naming the experiment, and later revokes exactly that rule.
//!
//! The change's pure logic is shared with every technique that opens ports (port choice,
//! the record codec and the ownership check of `chaoslingr-domain`); what is this
//! technique's own is how it reaches EC2 ([`aws`]).

pub mod aws;

use chaoslingr_domain::technique::{Technique, TechniqueRef};

pub use aws::Ec2Ingress;

/// The technique's description.
pub static TECHNIQUE: Technique = Technique {
    name: "port-change",
    summary: "open a port range to the world with an ingress rule on an opted-in security group",
    target: "security group",
    targets: "security groups",
    target_prefix: "sg-",
    change: "ingress rule",
    change_prefix: "sgr-",
    config_resource_type: "AWS::EC2::SecurityGroup",
    arn_resource: "security-group",
    record_first: false,
};

pub(crate) static ONLY: [TechniqueRef; 1] = [&TECHNIQUE];
