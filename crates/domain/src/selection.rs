//! Target choice: uniform over the opted-in groups that can take an experiment.

use std::collections::HashMap;
use std::fmt;

use rand::seq::SliceRandom;
use rand::Rng;

use crate::config::Settings;
use crate::experiment::ExperimentId;
use crate::port_choice::{self, ExistingRule, PortRequest};

/// A security group as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    pub id: String,
    pub name: String,
    pub vpc_id: Option<String>,
    pub owner_id: Option<String>,
    pub tags: Vec<(String, String)>,
    pub ingress: Vec<ExistingRule>,
}

impl GroupInfo {
    pub fn tag_pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// Why a group cannot be targeted now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ineligible {
    /// The opt-in tag is missing or not the opt-in value.
    NotOptedIn,
    /// An experiment is already running on it.
    ActiveExperiment(ExperimentId),
    /// It is already NON_COMPLIANT for a configured Config rule, so that rule could not
    /// show whether it notices the new port.
    AlreadyNonCompliant { rule: String },
    /// Every port in the configured bounds is already open or authorized.
    NoFreePorts(String),
}

impl fmt::Display for Ineligible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ineligible::NotOptedIn => write!(f, "not opted in"),
            Ineligible::ActiveExperiment(id) => write!(f, "experiment {id} is already running on it"),
            Ineligible::AlreadyNonCompliant { rule } => {
                write!(f, "already NON_COMPLIANT for Config rule {rule}, so a new detection could not be told apart")
            }
            Ineligible::NoFreePorts(why) => write!(f, "{why}"),
        }
    }
}

/// The checks that need no further AWS call: opt-in, active experiments, free ports.
/// Config compliance is checked separately, lazily, because it costs a call per group.
pub fn basic_eligibility(
    group: &GroupInfo,
    active: &HashMap<String, ExperimentId>,
    settings: &Settings,
) -> Result<(), Ineligible> {
    if !settings.is_opted_in(group.tag_pairs()) {
        return Err(Ineligible::NotOptedIn);
    }
    if let Some(id) = active.get(&group.id) {
        return Err(Ineligible::ActiveExperiment(id.clone()));
    }
    let req = port_request(group, settings);
    match settings.port_choice {
        port_choice::PortChoice::Random => {
            let any_free = settings.protocols.iter().any(|p| !port_choice::free_ranges(&req, *p).is_empty());
            if !any_free {
                return Err(Ineligible::NoFreePorts(port_choice::NoFreeRange::for_request(&req).to_string()));
            }
        }
        port_choice::PortChoice::Risky => {
            if port_choice::free_risky(&req).is_empty() {
                let none = port_choice::NoFreeRange { risky: true, ..port_choice::NoFreeRange::for_request(&req) };
                return Err(Ineligible::NoFreePorts(none.to_string()));
            }
        }
    }
    Ok(())
}

/// The port request for a group under the settings.
pub fn port_request<'a>(group: &'a GroupInfo, settings: &'a Settings) -> PortRequest<'a> {
    PortRequest {
        existing: &group.ingress,
        authorized: &settings.authorized_ports,
        bounds: settings.port_bounds,
        protocols: &settings.protocols,
        max_ports: settings.max_ports,
    }
}

/// A uniformly random order of candidates. Taking the first one that passes every check
/// picks uniformly among the eligible groups, while checking (and paying for) only as
/// many as needed.
pub fn random_order<'a>(groups: &'a [GroupInfo], rng: &mut impl Rng) -> Vec<&'a GroupInfo> {
    let mut order: Vec<&GroupInfo> = groups.iter().collect();
    order.shuffle(rng);
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn group(id: &str, opt_in: Option<&str>) -> GroupInfo {
        GroupInfo {
            id: id.into(),
            name: id.into(),
            vpc_id: None,
            owner_id: None,
            tags: opt_in.map(|v| vec![("chaoslingr:opt-in".to_string(), v.to_string())]).unwrap_or_default(),
            ingress: vec![],
        }
    }

    fn first_eligible<'a>(
        groups: &'a [GroupInfo],
        active: &HashMap<String, ExperimentId>,
        s: &Settings,
        rng: &mut StdRng,
    ) -> Option<&'a GroupInfo> {
        random_order(groups, rng).into_iter().find(|g| basic_eligibility(g, active, s).is_ok())
    }

    #[test]
    fn the_original_acceptance_case_only_the_opted_in_group_is_chosen() {
        // GIVEN tag `true`, tag `false` and no tag
        let groups = [group("sg-true", Some("true")), group("sg-false", Some("false")), group("sg-none", None)];
        let s = Settings::default();
        let mut rng = StdRng::seed_from_u64(9);
        // WHEN choosing many times THEN only the opted-in group is ever chosen
        for _ in 0..200 {
            assert_eq!(first_eligible(&groups, &HashMap::new(), &s, &mut rng).unwrap().id, "sg-true");
        }
        assert_eq!(basic_eligibility(&groups[1], &HashMap::new(), &s), Err(Ineligible::NotOptedIn));
    }

    #[test]
    fn choice_is_uniform_over_eligible_groups_and_skips_active_ones() {
        let groups: Vec<GroupInfo> = (0..10).map(|i| group(&format!("sg-{i}"), Some("TRUE"))).collect();
        let mut active = HashMap::new();
        active.insert("sg-3".to_string(), "cs-x".parse().unwrap());
        let s = Settings::default();
        let mut rng = StdRng::seed_from_u64(10);
        let mut counts: HashMap<String, u32> = HashMap::new();
        for _ in 0..9_000 {
            let g = first_eligible(&groups, &active, &s, &mut rng).unwrap();
            *counts.entry(g.id.clone()).or_default() += 1;
        }
        assert!(!counts.contains_key("sg-3"));
        assert_eq!(counts.len(), 9);
        for (id, n) in &counts {
            // expected 1000 each; 5 sigma is about 150
            assert!((850..=1150).contains(n), "{id} chosen {n} times");
        }
    }

    #[test]
    fn a_group_with_every_port_open_is_ineligible_with_the_reason() {
        let mut g = group("sg-open", Some("true"));
        g.ingress.push(ExistingRule { ip_protocol: "-1".into(), from_port: None, to_port: None });
        let e = basic_eligibility(&g, &HashMap::new(), &Settings::default()).unwrap_err();
        assert!(e.to_string().contains("no free tcp/udp port range"), "{e}");
    }

    #[test]
    fn an_empty_list_yields_nothing() {
        let mut rng = StdRng::seed_from_u64(11);
        assert!(first_eligible(&[], &HashMap::new(), &Settings::default(), &mut rng).is_none());
    }
}
