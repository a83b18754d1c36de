//! The lab's configuration: a small TOML file, overridden by flags.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::recorder::{FileRecorder, RecorderSettings};
use crate::rules::OpenPortsRule;

/// How a detector behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Reacts after its latency.
    On,
    /// Never reacts: shows an `undetected` gap.
    Off,
    /// Reacts after its slow latency, beyond any reasonable window.
    Slow,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "on" => Ok(Mode::On),
            "off" => Ok(Mode::Off),
            "slow" => Ok(Mode::Slow),
            _ => Err(format!("`{s}` is not a mode; expected `on`, `off` or `slow`")),
        }
    }
}

/// A failure injected into a detector's API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// HTTP 400 `ThrottlingException` (the SDK retries these).
    Throttle,
    /// HTTP 500 `InternalFailure`.
    ServerError,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    /// How many requests fail before the API recovers; `None` means every request.
    pub count: Option<u32>,
    /// How many requests succeed before the failures start (`@M`).
    pub after: u32,
}

/// Parses `none`, or `throttle` / `error`, optionally followed by `:N` (fail N requests,
/// then recover) and `@M` (let M requests through first), e.g. `throttle:6@1`.
pub fn parse_fault(s: &str) -> Result<Option<Fault>, String> {
    let s = s.trim().to_ascii_lowercase();
    if s.is_empty() || s == "none" {
        return Ok(None);
    }
    let (head, after) = match s.split_once('@') {
        Some((h, m)) => (h, m.parse::<u32>().map_err(|_| format!("`{s}`: the number after `@` must be a count"))?),
        None => (s.as_str(), 0),
    };
    let (kind, count) = match head.split_once(':') {
        Some((k, n)) => {
            (k, Some(n.parse::<u32>().map_err(|_| format!("`{s}`: the number after `:` must be a count"))?))
        }
        None => (head, None),
    };
    let kind = match kind {
        "throttle" => FaultKind::Throttle,
        "error" => FaultKind::ServerError,
        _ => return Err(format!("`{s}` is not a fault; expected `none`, `throttle[:N][@M]` or `error[:N][@M]`")),
    };
    Ok(Some(Fault { kind, count, after }))
}

fn parse_duration(s: &str, what: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|_| format!("{what}: `{s}` is not a duration such as `3s` or `1h`"))
}

/// A detector's behaviour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behaviour {
    pub mode: Mode,
    pub latency: Duration,
    pub slow_latency: Duration,
    /// Faults on the API a detector reads (Config, DescribeAlarms, GetFindings).
    pub fault: Option<Fault>,
}

impl Behaviour {
    /// The delay before reacting, or `None` when switched off.
    pub fn delay(&self) -> Option<Duration> {
        match self.mode {
            Mode::On => Some(self.latency),
            Mode::Slow => Some(self.slow_latency),
            Mode::Off => None,
        }
    }
}

/// Everything the lab does.
#[derive(Debug, Clone)]
pub struct LabSettings {
    pub region: String,
    pub account: String,
    pub scan_interval: Duration,
    pub config: Behaviour,
    pub config_rules: Vec<OpenPortsRule>,
    pub config_page_size: usize,
    pub firewall: Behaviour,
    pub firewall_alarm: String,
    pub firewall_findings: bool,
    pub securityhub_fault: Option<Fault>,
    /// Revokes world-open unauthorized group rules and deletes such ACL entries.
    pub remediator: Option<Duration>,
    pub iam: IamSettings,
    /// AWS Config for network ACLs: its own behaviour and rules (the Config API's page
    /// size and recorder are shared with security groups).
    pub nacl_config: Behaviour,
    pub nacl_config_rules: Vec<OpenPortsRule>,
    /// The firewall's watch on network ACL entries, with its own alarm.
    pub nacl_firewall: Behaviour,
    pub nacl_firewall_alarm: String,
    pub nacl_firewall_findings: bool,
    /// The configuration recorder AWS Config describes (and the lab's rules honour).
    pub recorder: RecorderSettings,
    /// The accounts whose roles `sts:AssumeRole` refuses (12-digit account ids, sorted).
    pub deny_assume_role: Vec<String>,
}

/// IAM enforcement: which policies to enforce, and the evaluator that decides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IamSettings {
    /// `{"ACCESS_KEY": policy, ...}`; `None` leaves every request unevaluated.
    pub enforce: Option<PathBuf>,
    /// A service control policy evaluated too for the enforced keys.
    pub scp: Option<PathBuf>,
    /// The evaluator program (`infra/iam/evaluate.mjs`); `None` for the default.
    pub evaluator: Option<PathBuf>,
    /// The Node.js that runs it; `None` for `node`.
    pub node: Option<String>,
}

/// The TOML file's shape; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    pub region: Option<String>,
    pub account: Option<String>,
    pub scan_interval: Option<String>,
    #[serde(default)]
    pub config: FileConfig,
    #[serde(default)]
    pub firewall: FileFirewall,
    #[serde(default)]
    pub securityhub: FileSecurityHub,
    #[serde(default)]
    pub remediator: FileRemediator,
    #[serde(default)]
    pub iam: FileIam,
    #[serde(default)]
    pub nacl_config: FileNaclConfig,
    #[serde(default)]
    pub nacl_firewall: FileFirewall,
    #[serde(default)]
    pub sts: FileSts,
}

/// `[sts]`: STS as the lab plays it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSts {
    /// Accounts whose roles `AssumeRole` refuses, e.g. `["333333333333"]`.
    pub deny_assume_role: Option<Vec<String>>,
}

/// Checks account ids (12 digits each) into a sorted list without repeats.
pub fn deny_assume_role_accounts<S: AsRef<str>>(accounts: &[S]) -> Result<Vec<String>, String> {
    let set = accounts
        .iter()
        .map(|a| crate::roles::validate_account(a.as_ref()))
        .collect::<Result<std::collections::BTreeSet<_>, _>>()?;
    Ok(set.into_iter().collect())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileIam {
    pub enforce: Option<PathBuf>,
    pub scp: Option<PathBuf>,
    pub evaluator: Option<PathBuf>,
    pub node: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub mode: Option<String>,
    pub latency: Option<String>,
    pub slow_latency: Option<String>,
    pub fault: Option<String>,
    pub page_size: Option<usize>,
    pub rules: Option<Vec<FileRule>>,
    pub recorder: Option<FileRecorder>,
}

/// `[nacl_config]`: `[config]`'s fields but the API-wide `page_size` and `recorder`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileNaclConfig {
    pub mode: Option<String>,
    pub latency: Option<String>,
    pub slow_latency: Option<String>,
    pub fault: Option<String>,
    pub rules: Option<Vec<FileRule>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRule {
    pub name: String,
    #[serde(default)]
    pub authorized_tcp_ports: String,
    #[serde(default)]
    pub authorized_udp_ports: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileFirewall {
    pub mode: Option<String>,
    pub latency: Option<String>,
    pub slow_latency: Option<String>,
    pub fault: Option<String>,
    pub alarm: Option<String>,
    pub securityhub_findings: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSecurityHub {
    pub fault: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRemediator {
    pub mode: Option<String>,
    pub latency: Option<String>,
}

/// The default Config rule: the managed rule with 443/tcp authorized.
pub const DEFAULT_RULE: &str = "vpc-sg-open-only-to-authorized-ports";
pub const DEFAULT_ALARM: &str = "chaoslingr-lab-firewall";
/// The default Config rule for network ACLs (a lab rule: AWS has no managed one), with
/// 443/tcp authorized.
pub const DEFAULT_NACL_RULE: &str = "nacl-open-only-to-authorized-ports";
pub const DEFAULT_NACL_ALARM: &str = "chaoslingr-lab-nacl-changes";

fn rules(rules: Option<Vec<FileRule>>, default: &str, what: &str) -> Result<Vec<OpenPortsRule>, String> {
    match rules {
        None => Ok(vec![OpenPortsRule::new(default, "443", "").expect("valid default")]),
        Some(rules) => rules
            .iter()
            .map(|r| {
                OpenPortsRule::new(&r.name, &r.authorized_tcp_ports, &r.authorized_udp_ports)
                    .map_err(|e| format!("{what}.rules `{}`: {e}", r.name))
            })
            .collect(),
    }
}

impl FileSettings {
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Validates the file into settings (flags are applied on top by the caller).
    pub fn resolve(self) -> Result<LabSettings, String> {
        let mode = |m: Option<String>, what: &str| -> Result<Mode, String> {
            m.map(|m| m.parse().map_err(|e| format!("{what}.mode: {e}"))).transpose().map(|m| m.unwrap_or(Mode::On))
        };
        let dur = |d: Option<String>, what: &str, dflt: u64| -> Result<Duration, String> {
            d.map(|d| parse_duration(&d, what)).transpose().map(|d| d.unwrap_or(Duration::from_secs(dflt)))
        };
        let fault = |f: Option<String>, what: &str| -> Result<Option<Fault>, String> {
            f.map(|f| parse_fault(&f).map_err(|e| format!("{what}.fault: {e}"))).transpose().map(Option::flatten)
        };
        let config_rules = rules(self.config.rules, DEFAULT_RULE, "config")?;
        let nacl_config_rules = rules(self.nacl_config.rules, DEFAULT_NACL_RULE, "nacl_config")?;
        if let Some(dup) = nacl_config_rules.iter().find(|n| config_rules.iter().any(|r| r.name == n.name)) {
            return Err(format!(
                "nacl_config.rules `{}`: a [config] rule has that name; Config rule names are unique",
                dup.name
            ));
        }
        let recorder = self.config.recorder.unwrap_or_default().resolve()?;
        let deny_assume_role = deny_assume_role_accounts(&self.sts.deny_assume_role.unwrap_or_default())
            .map_err(|e| format!("sts.deny_assume_role: {e}"))?;
        let remediator_on = match &self.remediator.mode {
            None => false,
            Some(m) => m.parse::<Mode>().map_err(|e| format!("remediator.mode: {e}"))? != Mode::Off,
        };
        Ok(LabSettings {
            region: self.region.unwrap_or_else(|| "us-east-1".into()),
            account: self.account.unwrap_or_else(|| "123456789012".into()),
            scan_interval: dur(self.scan_interval, "scan_interval", 1)?,
            config: Behaviour {
                mode: mode(self.config.mode, "config")?,
                latency: dur(self.config.latency, "config.latency", 3)?,
                slow_latency: dur(self.config.slow_latency, "config.slow_latency", 3600)?,
                fault: fault(self.config.fault, "config")?,
            },
            config_rules,
            config_page_size: self.config.page_size.unwrap_or(100).clamp(1, 100),
            firewall: Behaviour {
                mode: mode(self.firewall.mode, "firewall")?,
                latency: dur(self.firewall.latency, "firewall.latency", 2)?,
                slow_latency: dur(self.firewall.slow_latency, "firewall.slow_latency", 3600)?,
                fault: fault(self.firewall.fault, "firewall")?,
            },
            firewall_alarm: self.firewall.alarm.unwrap_or_else(|| DEFAULT_ALARM.into()),
            firewall_findings: self.firewall.securityhub_findings.unwrap_or(true),
            securityhub_fault: fault(self.securityhub.fault, "securityhub")?,
            remediator: if remediator_on { Some(dur(self.remediator.latency, "remediator.latency", 5)?) } else { None },
            iam: IamSettings {
                enforce: self.iam.enforce,
                scp: self.iam.scp,
                evaluator: self.iam.evaluator,
                node: self.iam.node,
            },
            nacl_config: Behaviour {
                mode: mode(self.nacl_config.mode, "nacl_config")?,
                latency: dur(self.nacl_config.latency, "nacl_config.latency", 3)?,
                slow_latency: dur(self.nacl_config.slow_latency, "nacl_config.slow_latency", 3600)?,
                fault: fault(self.nacl_config.fault, "nacl_config")?,
            },
            nacl_config_rules,
            nacl_firewall: Behaviour {
                mode: mode(self.nacl_firewall.mode, "nacl_firewall")?,
                latency: dur(self.nacl_firewall.latency, "nacl_firewall.latency", 2)?,
                slow_latency: dur(self.nacl_firewall.slow_latency, "nacl_firewall.slow_latency", 3600)?,
                fault: fault(self.nacl_firewall.fault, "nacl_firewall")?,
            },
            nacl_firewall_alarm: self.nacl_firewall.alarm.unwrap_or_else(|| DEFAULT_NACL_ALARM.into()),
            nacl_firewall_findings: self.nacl_firewall.securityhub_findings.unwrap_or(true),
            recorder,
            deny_assume_role,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_give_a_working_lab() {
        let s = FileSettings::default().resolve().unwrap();
        assert_eq!(s.config.mode, Mode::On);
        assert_eq!(s.config.latency, Duration::from_secs(3));
        assert_eq!(s.firewall.latency, Duration::from_secs(2));
        assert_eq!(s.config_rules[0].name, DEFAULT_RULE);
        assert_eq!(s.firewall_alarm, DEFAULT_ALARM);
        assert!(s.remediator.is_none());
        assert!(s.config.fault.is_none());
        assert_eq!(s.iam, IamSettings::default());
        assert!(s.deny_assume_role.is_empty());
    }

    #[test]
    fn assume_role_denials_are_account_ids() {
        let s = FileSettings::parse("[sts]\ndeny_assume_role = [\"333333333333\", \"222222222222\"]")
            .unwrap()
            .resolve()
            .unwrap();
        assert_eq!(s.deny_assume_role, ["222222222222", "333333333333"]);
        let e = FileSettings::parse("[sts]\ndeny_assume_role = [\"33333\"]").unwrap().resolve().unwrap_err();
        assert!(e.starts_with("sts.deny_assume_role: `33333` is not an AWS account id"), "{e}");
    }

    #[test]
    fn a_full_file_is_read() {
        let s = FileSettings::parse(
            r#"
            region = "eu-west-1"
            scan_interval = "500ms"
            [config]
            mode = "slow"
            latency = "1s"
            fault = "throttle:4"
            page_size = 2
            [[config.rules]]
            name = "open-ports"
            authorized_tcp_ports = "443,8443"
            authorized_udp_ports = "53"
            [firewall]
            mode = "off"
            alarm = "fw"
            securityhub_findings = false
            [securityhub]
            fault = "error"
            [remediator]
            mode = "on"
            latency = "10s"
            [iam]
            enforce = "policies.json"
            scp = "deny-ports.json"
            "#,
        )
        .unwrap()
        .resolve()
        .unwrap();
        assert_eq!(s.region, "eu-west-1");
        assert_eq!(s.scan_interval, Duration::from_millis(500));
        assert_eq!(s.config.mode, Mode::Slow);
        assert_eq!(s.config.fault, Some(Fault { kind: FaultKind::Throttle, count: Some(4), after: 0 }));
        assert_eq!(s.config_page_size, 2);
        assert_eq!(s.config_rules[0].authorized_tcp.len(), 2);
        assert_eq!(s.firewall.mode, Mode::Off);
        assert!(!s.firewall_findings);
        assert_eq!(s.securityhub_fault, Some(Fault { kind: FaultKind::ServerError, count: None, after: 0 }));
        assert_eq!(s.remediator, Some(Duration::from_secs(10)));
        assert_eq!(s.iam.enforce, Some(PathBuf::from("policies.json")));
        assert_eq!(s.iam.scp, Some(PathBuf::from("deny-ports.json")));
        assert_eq!(s.iam.evaluator, None);
    }

    #[test]
    fn network_acls_have_their_own_config_and_firewall_with_defaults_like_groups() {
        // GIVEN no [nacl_*] sections
        let s = FileSettings::default().resolve().unwrap();
        // THEN the ACL rule authorizes 443/tcp, both detectors react as the group ones do
        assert_eq!(s.nacl_config_rules.len(), 1);
        assert_eq!(s.nacl_config_rules[0].name, DEFAULT_NACL_RULE);
        assert_eq!(s.nacl_config_rules[0].input_parameters, r#"{"authorizedTcpPorts":"443"}"#);
        assert_eq!((s.nacl_config.mode, s.nacl_config.latency), (Mode::On, Duration::from_secs(3)));
        assert_eq!((s.nacl_firewall.mode, s.nacl_firewall.latency), (Mode::On, Duration::from_secs(2)));
        assert_eq!(s.nacl_firewall_alarm, DEFAULT_NACL_ALARM);
        assert!(s.nacl_firewall_findings);
        assert_eq!(s.recorder, crate::recorder::RecorderSettings::default());

        // WHEN the file sets them
        let s = FileSettings::parse(
            r#"
            [config.recorder]
            exclude = ["AWS::EC2::NetworkAcl"]
            frequency = "DAILY"
            [nacl_config]
            mode = "off"
            latency = "7s"
            fault = "error:1"
            [[nacl_config.rules]]
            name = "acl-ports"
            authorized_tcp_ports = "443,8443"
            authorized_udp_ports = "53"
            [nacl_firewall]
            mode = "slow"
            slow_latency = "2h"
            fault = "throttle"
            alarm = "acl-fw"
            securityhub_findings = false
            "#,
        )
        .unwrap()
        .resolve()
        .unwrap();
        // THEN they are read, and the group settings keep their defaults
        assert_eq!((s.nacl_config.mode, s.nacl_config.latency), (Mode::Off, Duration::from_secs(7)));
        assert_eq!(s.nacl_config.fault, Some(Fault { kind: FaultKind::ServerError, count: Some(1), after: 0 }));
        assert_eq!(s.nacl_config_rules[0].name, "acl-ports");
        assert_eq!(s.nacl_config_rules[0].authorized_udp.len(), 1);
        assert_eq!(s.nacl_firewall.delay(), Some(Duration::from_secs(7200)));
        assert_eq!(s.nacl_firewall.fault.map(|f| f.kind), Some(FaultKind::Throttle));
        assert_eq!(s.nacl_firewall_alarm, "acl-fw");
        assert!(!s.nacl_firewall_findings);
        assert_eq!(s.recorder.records("AWS::EC2::NetworkAcl"), None);
        assert_eq!(s.config_rules[0].name, DEFAULT_RULE);
        assert_eq!(s.firewall_alarm, DEFAULT_ALARM);
        assert_eq!(s.config.mode, Mode::On);
    }

    #[test]
    fn acl_settings_mistakes_are_named() {
        let e = FileSettings::parse("[nacl_config]\nmode = \"maybe\"").unwrap().resolve().unwrap_err();
        assert!(e.contains("nacl_config.mode"), "{e}");
        let e = FileSettings::parse("[nacl_firewall]\nlatency = \"soon\"").unwrap().resolve().unwrap_err();
        assert!(e.contains("nacl_firewall.latency"), "{e}");
        let e = FileSettings::parse("[[nacl_config.rules]]\nname = \"vpc-sg-open-only-to-authorized-ports\"")
            .unwrap()
            .resolve()
            .unwrap_err();
        assert!(e.contains("unique"), "{e}");
        assert!(FileSettings::parse("[nacl_config]\npage_size = 3").unwrap_err().contains("page_size"));
        let e = FileSettings::parse("[config.recorder]\nfrequency = \"weekly\"").unwrap().resolve().unwrap_err();
        assert!(e.contains("config.recorder.frequency"), "{e}");
    }

    #[test]
    fn faults_parse_with_count_and_offset() {
        assert_eq!(parse_fault("none").unwrap(), None);
        assert_eq!(parse_fault("error").unwrap(), Some(Fault { kind: FaultKind::ServerError, count: None, after: 0 }));
        assert_eq!(
            parse_fault("Throttle:6@1").unwrap(),
            Some(Fault { kind: FaultKind::Throttle, count: Some(6), after: 1 })
        );
        assert_eq!(
            parse_fault("error@3").unwrap(),
            Some(Fault { kind: FaultKind::ServerError, count: None, after: 3 })
        );
        for bad in ["flaky", "throttle:x", "throttle:2@", "error@-1"] {
            assert!(parse_fault(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mistakes_are_named() {
        assert!(FileSettings::parse("[config]\nmood = \"on\"").unwrap_err().contains("mood"));
        let e = FileSettings::parse("[config]\nmode = \"sometimes\"").unwrap().resolve().unwrap_err();
        assert!(e.contains("config.mode"), "{e}");
        let e = FileSettings::parse("[firewall]\nfault = \"flaky\"").unwrap().resolve().unwrap_err();
        assert!(e.contains("firewall.fault"), "{e}");
        let e = FileSettings::parse("[config]\nlatency = \"soon\"").unwrap().resolve().unwrap_err();
        assert!(e.contains("config.latency"), "{e}");
    }
}
