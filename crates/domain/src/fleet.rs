//! Many accounts and regions from one deployment: the targets, the scopes they make, the
//! limits on active experiments and the uniform choice across every scope.
//!
//! A *scope* is one account and one region. A single-account deployment has one scope
//! per configured region (normally one) in the credentials' own account. A hub deployment
//! names the target accounts: each is reached by assuming a role there
//! (`arn:<partition>:iam::<account>:role/<role>`), in each of its regions.
//!
//! Choice is uniform over every eligible target of every scope together, never "a random
//! account, then a random group": an account with ten opted-in groups is chosen ten times
//! as often as an account with one. [`Limits`] keep at most `per_account` experiments
//! active in one account (over all its regions) and `total` over every target.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;

use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// One account and region.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Scope {
    /// The target account; `None` is the credentials' own account (single-account mode).
    pub account: Option<String>,
    pub region: String,
}

impl Scope {
    pub fn new(account: Option<&str>, region: &str) -> Self {
        Scope { account: account.map(String::from), region: region.to_string() }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.account {
            Some(a) => write!(f, "{a}/{}", self.region),
            None => f.write_str(&self.region),
        }
    }
}

/// The default name of the role assumed in each target account.
pub const DEFAULT_ROLE: &str = "chaoslingr-target";

/// The default of `CHAOSLINGR_SCOPE_CONCURRENCY`.
pub const DEFAULT_CONCURRENCY: usize = 8;

/// One target account and, when they differ from the default, its regions.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AccountTargets {
    pub id: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
}

/// Where experiments may run (`CHAOSLINGR_TARGETS`, `CHAOSLINGR_ACCOUNTS`,
/// `CHAOSLINGR_REGIONS`, `CHAOSLINGR_ROLE`, `CHAOSLINGR_EXTERNAL_ID`; the CLI's
/// `--targets-file`, `--accounts`, `--regions`, `--role`, `--external-id`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Targets {
    /// Target accounts, reached through `role`. Empty: the credentials' own account.
    #[serde(default)]
    pub accounts: Vec<AccountTargets>,
    /// Regions of every account that names none. Empty: the configured AWS region.
    #[serde(default)]
    pub regions: Vec<String>,
    /// The role assumed in each account: a name, with its path if any (`team/name`).
    #[serde(default)]
    pub role: Option<String>,
    /// The external id the role's trust policy asks for.
    #[serde(default)]
    pub external_id: Option<String>,
}

impl Targets {
    /// Whether experiments run through assumed roles in named accounts.
    pub fn is_hub(&self) -> bool {
        !self.accounts.is_empty()
    }

    /// The role name (with its path) assumed in every account.
    pub fn role(&self) -> &str {
        self.role.as_deref().unwrap_or(DEFAULT_ROLE)
    }

    /// The ARN of the role assumed in `account`.
    pub fn role_arn(&self, partition: &str, account: &str) -> String {
        format!("arn:{partition}:iam::{account}:role/{}", self.role())
    }

    /// Every scope, in a stable order: accounts as listed, each with its regions.
    /// `default_region` is the configured AWS region.
    pub fn scopes(&self, default_region: &str) -> Vec<Scope> {
        let default_regions: Vec<String> =
            if self.regions.is_empty() { vec![default_region.to_string()] } else { self.regions.clone() };
        if self.accounts.is_empty() {
            return default_regions.iter().map(|r| Scope::new(None, r)).collect();
        }
        let mut out = Vec::new();
        for a in &self.accounts {
            let regions = if a.regions.is_empty() { &default_regions } else { &a.regions };
            out.extend(regions.iter().map(|r| Scope::new(Some(&a.id), r)));
        }
        out
    }

    /// Parses the JSON form (`CHAOSLINGR_TARGETS`, `--targets-file FILE`) and validates it.
    pub fn from_json(text: &str, source: &str) -> Result<Targets, ConfigError> {
        // The text is not echoed: it may hold the external id.
        let t: Targets = serde_json::from_str(text).map_err(|e| {
            ConfigError::new(
                source,
                "(not shown)",
                format!(
                    "JSON such as {{\"accounts\": [{{\"id\": \"111111111111\", \"regions\": [\"eu-west-1\"]}}], \"regions\": [\"us-east-1\"], \"role\": \"{DEFAULT_ROLE}\", \"external_id\": \"…\"}} ({e})"
                ),
            )
        })?;
        t.check(source)?;
        Ok(t)
    }

    /// Checks every field; `source` names the variable, file or flag.
    pub fn check(&self, source: &str) -> Result<(), ConfigError> {
        let mut seen = HashSet::new();
        for a in &self.accounts {
            account_id(&a.id, source)?;
            if !seen.insert(a.id.as_str()) {
                return Err(ConfigError::new(source, &a.id, "each account once"));
            }
            regions_ok(&a.regions, source)?;
        }
        regions_ok(&self.regions, source)?;
        if let Some(r) = &self.role {
            role_name(r, source)?;
        }
        if let Some(e) = &self.external_id {
            external_id(e, source)?;
        }
        if !self.is_hub() && (self.role.is_some() || self.external_id.is_some()) {
            return Err(ConfigError::new(
                source,
                self.role.as_deref().unwrap_or("(external id hidden)"),
                "target accounts too: a role and an external id are only used to reach named accounts (CHAOSLINGR_ACCOUNTS or `accounts`)",
            ));
        }
        Ok(())
    }
}

/// A 12-digit account id.
pub fn account_id(v: &str, source: &str) -> Result<String, ConfigError> {
    let v = v.trim();
    if v.len() == 12 && v.bytes().all(|b| b.is_ascii_digit()) {
        Ok(v.to_string())
    } else {
        Err(ConfigError::new(source, v, "12-digit AWS account ids, e.g. `111111111111`"))
    }
}

/// A comma-separated list of account ids, each once.
pub fn account_list(v: &str, source: &str) -> Result<Vec<AccountTargets>, ConfigError> {
    let mut out: Vec<AccountTargets> = Vec::new();
    for item in v.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let id = account_id(item, source)?;
        if out.iter().any(|a| a.id == id) {
            return Err(ConfigError::new(source, v, "each account once"));
        }
        out.push(AccountTargets { id, regions: Vec::new() });
    }
    Ok(out)
}

/// Whether `v` looks like an AWS region name (`us-east-1`, `eu-central-2`,
/// `us-gov-west-1`, `cn-north-1`).
pub fn is_region(v: &str) -> bool {
    let parts: Vec<&str> = v.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[0].bytes().all(|b| b.is_ascii_lowercase())
        && parts[1..parts.len() - 1].iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok()
}

fn regions_ok(regions: &[String], source: &str) -> Result<(), ConfigError> {
    let mut seen = HashSet::new();
    for r in regions {
        if !is_region(r) {
            return Err(ConfigError::new(source, r, "region names such as `us-east-1` or `eu-west-1`"));
        }
        if !seen.insert(r) {
            return Err(ConfigError::new(source, r, "each region once"));
        }
    }
    Ok(())
}

/// A comma-separated list of regions, each once.
pub fn region_list(v: &str, source: &str) -> Result<Vec<String>, ConfigError> {
    let out: Vec<String> = v.split(',').map(str::trim).filter(|i| !i.is_empty()).map(String::from).collect();
    if out.is_empty() {
        return Err(ConfigError::new(source, v, "region names such as `us-east-1,eu-west-1`"));
    }
    regions_ok(&out, source)?;
    Ok(out)
}

/// A role name, optionally after its path: `chaoslingr-target`, `team/chaoslingr-target`.
pub fn role_name(v: &str, source: &str) -> Result<String, ConfigError> {
    let expected = "a role name of 1-64 characters [A-Za-z0-9+=,.@_-], optionally after its path (`team/chaoslingr-target`); not an ARN";
    let v = v.trim().trim_start_matches('/');
    let (path, name) = v.rsplit_once('/').unwrap_or(("", v));
    let name_ok =
        (1..=64).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
    let path_ok = path.len() <= 510
        && path.split('/').all(|p| path.is_empty() || (!p.is_empty() && p.chars().all(|c| c.is_ascii_graphic())));
    if name_ok && path_ok && !v.starts_with("arn:") {
        Ok(v.to_string())
    } else {
        Err(ConfigError::new(source, v, expected))
    }
}

/// An external id: 2-1224 characters of `[\w+=,.@:/-]`, as STS accepts.
pub fn external_id(v: &str, source: &str) -> Result<String, ConfigError> {
    let ok = (2..=1224).contains(&v.len()) && v.chars().all(|c| c.is_ascii_alphanumeric() || "_+=,.@:/-".contains(c));
    if ok {
        Ok(v.to_string())
    } else {
        Err(ConfigError::new(source, "(hidden)", "2 to 1224 characters of letters, digits and _+=,.@:/-"))
    }
}

/// The most experiments active at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// In one account, over all its regions (`CHAOSLINGR_MAX_ACTIVE`).
    pub per_account: usize,
    /// Over every target (`CHAOSLINGR_MAX_ACTIVE_TOTAL`).
    pub total: usize,
}

/// The accounts that may take one more experiment, given the active experiments of the
/// scopes that could be listed; `Err` with the reason when none may (the total is
/// reached, or every account is at its own maximum).
///
/// `unknown`: accounts with a scope that could not be listed. Any doubt means no
/// injection there: such an account is closed, and counts toward the total as if it had
/// its maximum (or what was seen, if more).
pub fn open_accounts(
    active: &BTreeMap<Scope, Vec<String>>,
    unknown: &BTreeSet<Option<String>>,
    scopes: &[Scope],
    limits: Limits,
) -> Result<HashSet<Option<String>>, String> {
    let mut per_account: BTreeMap<Option<String>, usize> = BTreeMap::new();
    for (scope, ids) in active {
        *per_account.entry(scope.account.clone()).or_default() += ids.len();
    }
    let accounts: BTreeSet<Option<String>> = scopes.iter().map(|s| s.account.clone()).collect();
    let total: usize = accounts
        .iter()
        .map(|a| {
            let seen = per_account.get(a).copied().unwrap_or_default();
            if unknown.contains(a) {
                seen.max(limits.per_account)
            } else {
                seen
            }
        })
        .sum();
    let unreachable = if unknown.is_empty() {
        String::new()
    } else {
        format!(
            "; {} account(s) could not be listed and count as full ({})",
            unknown.len(),
            unknown.iter().map(|a| a.as_deref().unwrap_or("this account")).collect::<Vec<_>>().join(", ")
        )
    };
    if total >= limits.total {
        let ids: Vec<&str> = active.values().flatten().map(String::as_str).collect();
        return Err(format!(
            "{total} experiment(s) active across the targets ({}){unreachable}, the maximum is {} (CHAOSLINGR_MAX_ACTIVE_TOTAL)",
            ids.join(", "),
            limits.total
        ));
    }
    let open: HashSet<Option<String>> = accounts
        .into_iter()
        .filter(|a| !unknown.contains(a) && per_account.get(a).copied().unwrap_or_default() < limits.per_account)
        .collect();
    if open.is_empty() {
        return Err(format!(
            "every target account already has {} active experiment(s), the maximum per account (CHAOSLINGR_MAX_ACTIVE){unreachable}",
            limits.per_account
        ));
    }
    Ok(open)
}

/// Every candidate of every scope in one uniformly random order: taking the first that
/// passes every remaining check chooses uniformly among all eligible targets, whatever
/// their scope.
pub fn random_order<T>(candidates: Vec<(usize, T)>, rng: &mut impl Rng) -> Vec<(usize, T)> {
    let mut order = candidates;
    order.shuffle(rng);
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn hub() -> Targets {
        Targets::from_json(
            r#"{"accounts": [{"id": "111111111111"}, {"id": "222222222222", "regions": ["eu-west-1"]}],
                "regions": ["us-east-1", "eu-west-1"], "role": "team/chaoslingr-target", "external_id": "ext-1"}"#,
            "CHAOSLINGR_TARGETS",
        )
        .unwrap()
    }

    #[test]
    fn scopes_are_every_account_in_each_of_its_regions() {
        let t = hub();
        let scopes: Vec<String> = t.scopes("ap-south-1").iter().map(ToString::to_string).collect();
        assert_eq!(scopes, ["111111111111/us-east-1", "111111111111/eu-west-1", "222222222222/eu-west-1"]);
        assert_eq!(t.role_arn("aws", "111111111111"), "arn:aws:iam::111111111111:role/team/chaoslingr-target");
        let single = Targets::default();
        assert!(!single.is_hub());
        assert_eq!(single.scopes("eu-west-1"), [Scope::new(None, "eu-west-1")]);
        assert_eq!(single.role(), DEFAULT_ROLE);
        let regions = Targets { regions: vec!["us-east-1".into(), "eu-west-1".into()], ..Targets::default() };
        assert_eq!(regions.scopes("x").len(), 2);
    }

    #[test]
    fn bad_targets_name_their_source_and_the_accepted_form() {
        let bad = [
            (r#"{"accounts": [{"id": "1111"}]}"#, "12-digit"),
            (r#"{"accounts": [{"id": "111111111111"}, {"id": "111111111111"}]}"#, "each account once"),
            (r#"{"accounts": [{"id": "111111111111", "regions": ["mars-1"]}]}"#, "region names"),
            (r#"{"accounts": [{"id": "111111111111"}], "role": "arn:aws:iam::1:role/x"}"#, "not an ARN"),
            (r#"{"accounts": [{"id": "111111111111"}], "external_id": "a b"}"#, "2 to 1224"),
            (r#"{"role": "chaoslingr-target"}"#, "target accounts too"),
            (r#"{"acounts": []}"#, "JSON such as"),
            ("[1]", "JSON such as"),
        ];
        for (text, expected) in bad {
            let e = Targets::from_json(text, "--targets-file t.json").unwrap_err();
            assert_eq!(e.source_name, "--targets-file t.json");
            assert!(e.to_string().contains(expected), "{text}: {e}");
        }
        assert!(e_hidden());
        let e = Targets::from_json(r#"{"external_id": "TOP-SECRET", "rol": "x", "note": "é…"}"#, "X").unwrap_err();
        assert!(!e.to_string().contains("TOP-SECRET"), "{e}");
        assert_eq!(account_list("111111111111, 222222222222", "X").unwrap().len(), 2);
        assert!(account_list("111111111111,111111111111", "X").is_err());
        assert_eq!(region_list("us-east-1,us-gov-west-1,cn-north-1", "X").unwrap().len(), 3);
        assert!(region_list(" ", "X").is_err());
        assert!(is_region("eu-central-2") && !is_region("us-east") && !is_region("US-EAST-1"));
    }

    fn e_hidden() -> bool {
        // An external id is a shared secret of sorts: never echoed in an error.
        let e = external_id("a b c", "CHAOSLINGR_EXTERNAL_ID").unwrap_err();
        !e.to_string().contains("a b c")
    }

    fn active(entries: &[(&str, &str, usize)]) -> BTreeMap<Scope, Vec<String>> {
        entries
            .iter()
            .map(|(a, r, n)| (Scope::new(Some(a), r), (0..*n).map(|i| format!("cs-{a}-{r}-{i}")).collect()))
            .collect()
    }

    #[test]
    fn limits_count_per_account_over_its_regions_and_in_total() {
        let scopes = hub().scopes("us-east-1");
        let limits = Limits { per_account: 1, total: 5 };
        let none = BTreeSet::new();
        let open = open_accounts(&active(&[("111111111111", "eu-west-1", 1)]), &none, &scopes, limits).unwrap();
        assert_eq!(open, HashSet::from([Some("222222222222".to_string())]));
        let all_full = active(&[("111111111111", "eu-west-1", 1), ("222222222222", "eu-west-1", 1)]);
        let e = open_accounts(&all_full, &none, &scopes, limits).unwrap_err();
        assert!(e.contains("maximum per account (CHAOSLINGR_MAX_ACTIVE)"), "{e}");
        let e = open_accounts(&all_full, &none, &scopes, Limits { per_account: 3, total: 2 }).unwrap_err();
        assert!(e.contains("2 experiment(s) active") && e.contains("CHAOSLINGR_MAX_ACTIVE_TOTAL"), "{e}");
        assert_eq!(open_accounts(&all_full, &none, &scopes, Limits { per_account: 2, total: 3 }).unwrap().len(), 2);
    }

    #[test]
    fn an_account_that_could_not_be_listed_is_closed_and_counts_as_full() {
        let scopes = hub().scopes("us-east-1");
        let unknown = BTreeSet::from([Some("111111111111".to_string())]);
        // Account 1's eu-west-1 failed to list: its us-east-1 must not be chosen either.
        let open = open_accounts(&BTreeMap::new(), &unknown, &scopes, Limits { per_account: 1, total: 5 }).unwrap();
        assert_eq!(open, HashSet::from([Some("222222222222".to_string())]));
        // And it counts toward the total as if at its maximum.
        let e = open_accounts(&BTreeMap::new(), &unknown, &scopes, Limits { per_account: 2, total: 2 }).unwrap_err();
        assert!(e.contains("could not be listed and count as full (111111111111)"), "{e}");
        assert!(e.contains("CHAOSLINGR_MAX_ACTIVE_TOTAL"), "{e}");
        let both = BTreeSet::from([Some("111111111111".to_string()), Some("222222222222".to_string())]);
        let e = open_accounts(&BTreeMap::new(), &both, &scopes, Limits { per_account: 1, total: 5 }).unwrap_err();
        assert!(e.contains("CHAOSLINGR_MAX_ACTIVE)") && e.contains("count as full"), "{e}");
    }

    #[test]
    fn choice_is_uniform_over_targets_not_over_accounts() {
        // Account A has one target, account B nine over two regions: a choice of "an
        // account, then a target" would pick A's half the time; uniform picks it a tenth.
        let candidates: Vec<(usize, String)> =
            std::iter::once((0, "a-0".to_string())).chain((0..9).map(|i| (1 + i % 2, format!("b-{i}")))).collect();
        let mut rng = StdRng::seed_from_u64(13);
        let mut counts: BTreeMap<String, u32> = BTreeMap::new();
        for _ in 0..10_000 {
            let first = random_order(candidates.clone(), &mut rng).remove(0);
            *counts.entry(first.1).or_default() += 1;
        }
        assert_eq!(counts.len(), 10);
        for (id, n) in &counts {
            // expected 1000 each; 5 sigma is 150
            assert!((850..=1150).contains(n), "{id} chosen {n} times");
        }
    }
}
