//! The AWS-free core of ChaoSlingr.
//!
//! Everything that decides something lives here as plain functions over plain data:
//! which security group to target ([`selection`]), which ports to open
//! ([`port_choice`]), whether an experiment is over and how it ended ([`judge`]), how an
//! experiment is written onto and read back from the injected rule's tags ([`tags`]),
//! and the validated configuration ([`config`]). The [`ports`] module names the small
//! capabilities the lifecycle needs from the world, and [`engine`] drives one experiment
//! through its lifecycle over those capabilities. The AWS adapters live in
//! `chaoslingr-aws`; nothing in this crate knows about the SDK.

pub mod config;
pub mod detector;
pub mod discovery;
pub mod engine;
pub mod experiment;
pub mod fleet;
pub mod history;
pub mod judge;
pub mod marker;
pub mod outcome;
pub mod ownership;
pub mod port_choice;
pub mod ports;
pub mod recording;
pub mod scheduled;
pub mod selection;
pub mod tags;
pub mod technique;
pub mod time;

pub use config::{ConfigError, Settings};
pub use detector::Detector;
pub use experiment::{ExperimentId, ExperimentRecord, PortRange, Protocol};
pub use outcome::{Outcome, OutcomeReport};
pub use technique::{Technique, TechniqueRef};
