//! The detection lab: AWS Config, a firewall and an auto-remediator on loopback, in front
//! of the AWS API emulator, so a whole experiment — injection, detection, time-to-detect,
//! revert — runs offline.
//!
//! One endpoint serves every service: AWS Config operations are answered by the lab
//! ([`config_api`]), detector reads can fail on purpose, everything else is forwarded to
//! the emulator ([`proxy`]). A scan loop ([`world`]) evaluates the managed rule
//! `vpc-sg-open-only-to-authorized-ports` ([`rules`]) on security groups and the lab rule
//! `nacl-open-only-to-authorized-ports` ([`nacl`]) on network ACLs, and drives the firewall
//! alarms (one per resource kind), Security Hub findings and the remediator with
//! configurable latencies ([`state`]). Config's recorder is described from settings
//! ([`recorder`]).
//! With `--enforce-iam`, requests of the listed access keys are evaluated against their IAM
//! policies before they reach the emulator ([`iam`]); so are those of credentials an
//! `sts:AssumeRole` through the lab handed out, against their role's policy, in the role's
//! account ([`roles`], which also refuses `AssumeRole` into chosen accounts).
//! Requests can be held at a chosen point, and random faults put on the wire ([`wire`]),
//! for crash and soak tests.

pub mod config_api;
pub mod emulator_gaps;
pub mod iam;
pub mod nacl;
pub mod proxy;
pub mod recorder;
pub mod roles;
pub mod rules;
pub mod settings;
pub mod state;
pub mod wire;
pub mod world;
