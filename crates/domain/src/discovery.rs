//! Finding every experiment in an account and region, the one way `status`, `revert`
//! and the judge all use.
//!
//! Two listings, each by a tag *key* so that no value anyone edits can hide an
//! experiment: groups carrying the marker's experiment-id key (every experiment marks its
//! group, see [`crate::marker`]), and rules carrying the experiment-id tag (for a run
//! that died between creating its rule and marking its group). A marked experiment's rule
//! is then read directly by the id the marker holds, so stripping the rule's tags hides
//! nothing. Each rule found is checked against [`crate::ownership`] once, here.

use std::collections::HashSet;
use std::time::SystemTime;

use crate::engine::{Engine, EngineError};
use crate::experiment::ExperimentRecord;
use crate::marker::{self, Marker};
use crate::ports::{Clock, Detectors, Ingress, Recorder};
use crate::tags::{self, TaggedRule};

/// The rule of an experiment, as a direct read by its id found it.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleState {
    Present(TaggedRule),
    Gone,
    /// The read failed: not knowing is not "gone".
    Unknown(String),
}

impl RuleState {
    pub fn rule(&self) -> Option<&TaggedRule> {
        match self {
            RuleState::Present(r) => Some(r),
            _ => None,
        }
    }
}

/// One experiment found.
#[derive(Debug, Clone)]
pub struct Found {
    pub experiment_id: Option<String>,
    pub security_group_id: String,
    pub security_group_rule_id: String,
    pub rule: RuleState,
    /// From the group marker when there is one, else from the rule's tags.
    pub record: Result<ExperimentRecord, String>,
    pub marker: Option<Marker>,
    /// The group still carries the opt-in tag with the opt-in value (marked groups only;
    /// `true` for rules found by their tags alone).
    pub group_opted_in: bool,
    /// Whether the rule, when present, is ChaoSlingr's ([`crate::ownership`]); `Ok` when
    /// the rule is gone or unreadable (there is nothing to check).
    pub ours: Result<(), String>,
}

impl Found {
    /// The moment after which nobody may keep this experiment open: its deadline, or at
    /// once when the record cannot be read.
    pub fn deadline(&self) -> Option<SystemTime> {
        self.record.as_ref().ok().map(|r| r.deadline)
    }

    /// Whether the rule may still be open and is ours to close.
    pub fn open_and_ours(&self) -> bool {
        !matches!(self.rule, RuleState::Gone) && self.ours.is_ok()
    }
}

/// A group marker that cannot be decoded.
#[derive(Debug, Clone)]
pub struct DamagedMarker {
    pub security_group_id: String,
    pub experiment_id: Option<String>,
    pub error: String,
}

/// Everything found, and what could not be listed.
#[derive(Debug, Clone, Default)]
pub struct Discovered {
    pub experiments: Vec<Found>,
    pub damaged_markers: Vec<DamagedMarker>,
    /// Listings that failed (the rest was still found).
    pub errors: Vec<String>,
}

impl<I: Ingress, D: Detectors, R: Recorder, C: Clock> Engine<I, D, R, C> {
    /// Every experiment in this account and region. Fails only when neither listing
    /// answered; one failed listing is reported in `errors`.
    pub async fn discover(&self) -> Result<Discovered, EngineError> {
        let (groups, rules) =
            tokio::join!(self.ingress.groups_with_tag_key(tags::EXPERIMENT_ID), self.ingress.experiment_rules());
        let mut out = Discovered::default();
        let (groups, rules) = match (groups, rules) {
            (Err(e), Err(_)) => return Err(EngineError::Call(e)),
            (g, r) => {
                if let Err(e) = &g {
                    out.errors.push(format!("could not list marked security groups: {e}"));
                }
                if let Err(e) = &r {
                    out.errors.push(format!("could not list experiment rules: {e}"));
                }
                (g.unwrap_or_default(), r.unwrap_or_default())
            }
        };

        let mut claimed: HashSet<String> = HashSet::new();
        let mut markers = Vec::new();
        for group in groups.iter().filter(|g| marker::is_marked(&g.tags)) {
            match marker::decode(&group.id, group.owner_id.as_deref(), &group.tags) {
                Ok(m) => {
                    claimed.insert(m.record.security_group_rule_id.clone());
                    markers.push((m, self.settings.is_opted_in(group.tag_pairs())));
                }
                Err(e) => out.damaged_markers.push(DamagedMarker {
                    security_group_id: group.id.clone(),
                    experiment_id: group.tags.iter().find(|(k, _)| k == tags::EXPERIMENT_ID).map(|(_, v)| v.clone()),
                    error: e.to_string(),
                }),
            }
        }
        // Each marked experiment's rule, read directly by the id its marker holds.
        let reads = futures_util::future::join_all(
            markers.iter().map(|(m, _)| self.ingress.rule(&m.record.security_group_rule_id)),
        )
        .await;
        for ((m, opted_in), read) in markers.into_iter().zip(reads) {
            let rule = match read {
                Ok(Some(r)) => RuleState::Present(r),
                Ok(None) => RuleState::Gone,
                Err(e) => RuleState::Unknown(e.to_string()),
            };
            let ours = match &rule {
                RuleState::Present(r) => self.owns(r, m.record.id.as_str(), Some(&m.record)).map_err(|e| e.to_string()),
                _ => Ok(()),
            };
            out.experiments.push(Found {
                experiment_id: Some(m.record.id.to_string()),
                security_group_id: m.record.security_group_id.clone(),
                security_group_rule_id: m.record.security_group_rule_id.clone(),
                rule,
                record: Ok(m.record.clone()),
                marker: Some(m),
                group_opted_in: opted_in,
                ours,
            });
        }
        // Rules carrying our tag that no marker names.
        for rule in rules.into_iter().filter(|r| !claimed.contains(&r.security_group_rule_id)) {
            let id = rule.experiment_id().unwrap_or_default().to_string();
            let ours = self.owns(&rule, &id, None).map_err(|e| e.to_string());
            out.experiments.push(Found {
                experiment_id: Some(id),
                security_group_id: rule.security_group_id.clone(),
                security_group_rule_id: rule.security_group_rule_id.clone(),
                record: tags::decode(&rule).map_err(|e| e.to_string()),
                rule: RuleState::Present(rule),
                marker: None,
                group_opted_in: true,
                ours,
            });
        }
        Ok(out)
    }
}
