//! Typed configuration, shared by the CLI and the Lambda functions.
//!
//! Every setting has a `CHAOSLINGR_*` environment variable and a default; the CLI's flags
//! override the environment. A bad value is an error that names the variable (or flag),
//! the value and the accepted form, raised at start-up before any AWS call.

use std::time::{Duration, SystemTime};

use crate::detector::{self, Detector};
use crate::experiment::{PortRange, Protocol};

/// A setting with a value that is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}=`{value}` is invalid: expected {expected}")]
pub struct ConfigError {
    /// The environment variable or CLI flag the value came from.
    pub source_name: String,
    pub value: String,
    pub expected: String,
}

impl ConfigError {
    pub(crate) fn new(source_name: &str, value: &str, expected: impl Into<String>) -> Self {
        ConfigError { source_name: source_name.to_string(), value: value.to_string(), expected: expected.into() }
    }
}

/// A port (range) the group owner declared authorized, for one protocol or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthorizedPort {
    /// `None` means both tcp and udp.
    pub protocol: Option<Protocol>,
    pub ports: PortRange,
}

impl AuthorizedPort {
    pub fn covers(&self, protocol: Protocol) -> bool {
        self.protocol.is_none_or(|p| p == protocol)
    }
}

/// Days and UTC hours during which experiments may start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllowedHours {
    /// Bit `d` set when weekday `d` (0 = Monday) is allowed.
    pub days: u8,
    /// Minutes after midnight UTC; `start > end` spans midnight.
    pub start_minute: u32,
    pub end_minute: u32,
}

impl AllowedHours {
    pub fn contains(&self, t: SystemTime) -> bool {
        let (day, minute) = crate::time::weekday_and_minute(t);
        let in_day = self.days & (1 << day) != 0;
        let in_hours = if self.start_minute <= self.end_minute {
            (self.start_minute..self.end_minute).contains(&minute)
        } else {
            minute >= self.start_minute || minute < self.end_minute
        };
        in_day && in_hours
    }
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn parse_allowed_hours(s: &str) -> Option<AllowedHours> {
    let s = s.trim().to_ascii_lowercase();
    let (days_part, hours_part) = match s.rsplit_once(' ') {
        Some((d, h)) => (Some(d.trim()), h),
        None => (None, s.as_str()),
    };
    let days = match days_part {
        None => 0x7f,
        Some(d) => {
            let mut bits = 0u8;
            for item in d.split(',') {
                let idx = |n: &str| DAYS.iter().position(|x| *x == n.trim());
                match item.split_once('-') {
                    Some((a, b)) => {
                        let (a, b) = (idx(a)?, idx(b)?);
                        let mut i = a;
                        loop {
                            bits |= 1 << i;
                            if i == b {
                                break;
                            }
                            i = (i + 1) % 7;
                        }
                    }
                    None => bits |= 1 << idx(item)?,
                }
            }
            bits
        }
    };
    let minute = |hm: &str| -> Option<u32> {
        let (h, m) = hm.split_once(':')?;
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        (h <= 24 && m < 60 && h * 60 + m <= 1440).then_some(h * 60 + m)
    };
    let (a, b) = hours_part.split_once('-')?;
    let (start_minute, end_minute) = (minute(a)?, minute(b)?);
    (start_minute != end_minute).then_some(AllowedHours { days, start_minute, end_minute })
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Tag key that opts a security group in (`CHAOSLINGR_OPT_IN_TAG`).
    pub opt_in_tag: String,
    /// Tag value that opts in, compared whole and case-insensitively, as IAM does
    /// (`CHAOSLINGR_OPT_IN_VALUE`).
    pub opt_in_value: String,
    /// Detectors watched by every experiment (`CHAOSLINGR_DETECTORS`).
    pub detectors: Vec<Detector>,
    /// How long to wait for detection (`CHAOSLINGR_WINDOW`).
    pub window: Duration,
    /// How often to observe the detectors while watching (`CHAOSLINGR_POLL_INTERVAL`).
    pub poll_interval: Duration,
    /// Run even when a `config:` detector cannot see the technique's changes (AWS Config
    /// does not record the resource type continuously), reporting it as "could not see"
    /// (`CHAOSLINGR_ALLOW_BLIND_DETECTORS`).
    pub allow_blind_detectors: bool,
    /// Random ranges or one well-known risky port (`CHAOSLINGR_PORTS`).
    pub port_choice: crate::port_choice::PortChoice,
    /// Bounds of the injected port range (`CHAOSLINGR_PORT_RANGE`).
    pub port_bounds: PortRange,
    /// Widest injected range, in ports (`CHAOSLINGR_MAX_PORTS`).
    pub max_ports: u16,
    /// Protocols to choose from (`CHAOSLINGR_PROTOCOLS`).
    pub protocols: Vec<Protocol>,
    /// Source of the injected rule (`CHAOSLINGR_CIDR`).
    pub cidr: String,
    /// Ports never injected because the owners declared them authorized
    /// (`CHAOSLINGR_AUTHORIZED_PORTS`).
    pub authorized_ports: Vec<AuthorizedPort>,
    /// Where outcomes are published (`CHAOSLINGR_TOPIC_ARN`); none means no message.
    pub topic_arn: Option<String>,
    /// CloudWatch namespace (`CHAOSLINGR_NAMESPACE`).
    pub namespace: String,
    /// Most experiments active at once in one account, over all its target regions
    /// (`CHAOSLINGR_MAX_ACTIVE`).
    pub max_active: usize,
    /// Most experiments active at once over every target (`CHAOSLINGR_MAX_ACTIVE_TOTAL`).
    pub max_active_total: usize,
    /// The accounts, regions and role experiments run in (`CHAOSLINGR_TARGETS` and
    /// `CHAOSLINGR_ACCOUNTS`, `CHAOSLINGR_REGIONS`, `CHAOSLINGR_ROLE`,
    /// `CHAOSLINGR_EXTERNAL_ID`); the default is the credentials' own account and region.
    pub targets: crate::fleet::Targets,
    /// How many account × region scopes a command or tick works on at once
    /// (`CHAOSLINGR_SCOPE_CONCURRENCY`).
    pub scope_concurrency: usize,
    /// The kill switch (`CHAOSLINGR_ENABLED`): false means every run aborts.
    pub enabled: bool,
    /// Plan and check permissions only, never write (`CHAOSLINGR_DRY_RUN`).
    pub dry_run: bool,
    /// Alarms that stop experiments from starting while in ALARM (`CHAOSLINGR_STOP_ALARMS`).
    pub stop_alarms: Vec<String>,
    /// When experiments may start, in UTC (`CHAOSLINGR_ALLOWED_HOURS`); none means any time.
    pub allowed_hours: Option<AllowedHours>,
    /// How long after its deadline the judge leaves an experiment to the one who started
    /// it when that starter may still be at work: a person's run, or a rule whose group
    /// was never marked (`CHAOSLINGR_ORPHAN_GRACE`).
    pub orphan_grace: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            opt_in_tag: "chaoslingr:opt-in".into(),
            opt_in_value: "true".into(),
            detectors: Vec::new(),
            window: Duration::from_secs(15 * 60),
            poll_interval: Duration::from_secs(15),
            allow_blind_detectors: false,
            port_choice: crate::port_choice::PortChoice::Random,
            port_bounds: PortRange { from: 10_000, to: 65_000 },
            max_ports: 6,
            protocols: vec![Protocol::Tcp, Protocol::Udp],
            cidr: "0.0.0.0/0".into(),
            authorized_ports: Vec::new(),
            topic_arn: None,
            namespace: "ChaoSlingr".into(),
            max_active: 1,
            max_active_total: 5,
            targets: crate::fleet::Targets::default(),
            scope_concurrency: crate::fleet::DEFAULT_CONCURRENCY,
            enabled: true,
            dry_run: false,
            stop_alarms: Vec::new(),
            allowed_hours: None,
            orphan_grace: crate::scheduled::ORPHAN_GRACE,
        }
    }
}

/// Every environment variable the configuration reads, with its accepted form; shown in
/// `--help` and the README.
pub const ENV_VARS: &[(&str, &str)] = &[
    ("CHAOSLINGR_OPT_IN_TAG", "tag key that opts a security group in [default: chaoslingr:opt-in]"),
    ("CHAOSLINGR_OPT_IN_VALUE", "tag value that opts in, whole value, any case [default: true]"),
    ("CHAOSLINGR_DETECTORS", "config:<rule>, alarm:<name>, securityhub[:<id>], comma-separated"),
    ("CHAOSLINGR_WINDOW", "detection window, 10s..24h [default: 15m]"),
    ("CHAOSLINGR_POLL_INTERVAL", "observation cadence while watching, 1s..5m [default: 15s]"),
    (
        "CHAOSLINGR_PORTS",
        "random (a range inside CHAOSLINGR_PORT_RANGE) or risky (one of 22, 3389 and other well-known risky tcp ports) [default: random]",
    ),
    ("CHAOSLINGR_PORT_RANGE", "bounds of injected ports [default: 10000-65000]"),
    (
        "CHAOSLINGR_ALLOW_BLIND_DETECTORS",
        "run even when AWS Config does not record the change's resource type continuously [default: false]",
    ),
    ("CHAOSLINGR_MAX_PORTS", "widest injected range, 1..1000 ports [default: 6]"),
    ("CHAOSLINGR_PROTOCOLS", "tcp, udp or tcp,udp [default: tcp,udp]"),
    ("CHAOSLINGR_CIDR", "source CIDR of the injected rule [default: 0.0.0.0/0]"),
    ("CHAOSLINGR_AUTHORIZED_PORTS", "ports never injected, e.g. tcp:22,tcp:443,udp:53,8000-8080"),
    ("CHAOSLINGR_TOPIC_ARN", "SNS topic for outcomes [default: none]"),
    ("CHAOSLINGR_NAMESPACE", "CloudWatch namespace [default: ChaoSlingr]"),
    ("CHAOSLINGR_MAX_ACTIVE", "most active experiments per account, over its regions [default: 1]"),
    ("CHAOSLINGR_MAX_ACTIVE_TOTAL", "most active experiments over every target account and region [default: 5]"),
    (
        "CHAOSLINGR_TARGETS",
        "accounts and regions as JSON: {\"accounts\":[{\"id\":\"111111111111\",\"regions\":[..]}],\"regions\":[..],\"role\":\"..\",\"external_id\":\"..\"} [default: this account]",
    ),
    ("CHAOSLINGR_ACCOUNTS", "target accounts, comma-separated 12-digit ids, reached through CHAOSLINGR_ROLE [default: this account]"),
    ("CHAOSLINGR_REGIONS", "target regions, comma-separated [default: AWS_REGION]"),
    ("CHAOSLINGR_ROLE", "role assumed in each target account, NAME or PATH/NAME [default: chaoslingr-target]"),
    ("CHAOSLINGR_EXTERNAL_ID", "external id the target role's trust policy requires [default: none]"),
    ("CHAOSLINGR_SCOPE_CONCURRENCY", "account x region scopes worked on at once, 1..64 [default: 8]"),
    ("CHAOSLINGR_ENABLED", "kill switch: false stops every run [default: true]"),
    ("CHAOSLINGR_DRY_RUN", "plan and check permissions without writing [default: false]"),
    ("CHAOSLINGR_STOP_ALARMS", "comma-separated alarms that block starts while in ALARM"),
    ("CHAOSLINGR_ALLOWED_HOURS", "UTC start hours, e.g. `mon-fri 09:00-17:00` [default: any]"),
    (
        "CHAOSLINGR_ORPHAN_GRACE",
        "judge: how long past the deadline a person's run or an unmarked rule is left to its starter, 5s..1h [default: 2m]",
    ),
];

impl Settings {
    /// Reads every `CHAOSLINGR_*` variable through `lookup` (normally `std::env::var`),
    /// validating each; unset or empty variables keep their defaults.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut s = Settings::default();
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        if let Some(v) = get("CHAOSLINGR_OPT_IN_TAG") {
            s.opt_in_tag = tag_key(&v, "CHAOSLINGR_OPT_IN_TAG")?;
        }
        if let Some(v) = get("CHAOSLINGR_OPT_IN_VALUE") {
            s.opt_in_value = opt_in_value(&v, "CHAOSLINGR_OPT_IN_VALUE")?;
        }
        if let Some(v) = get("CHAOSLINGR_DETECTORS") {
            s.detectors = detectors(&v, "CHAOSLINGR_DETECTORS")?;
        }
        if let Some(v) = get("CHAOSLINGR_WINDOW") {
            s.window = window(&v, "CHAOSLINGR_WINDOW")?;
        }
        if let Some(v) = get("CHAOSLINGR_POLL_INTERVAL") {
            s.poll_interval = poll_interval(&v, "CHAOSLINGR_POLL_INTERVAL")?;
        }
        if let Some(v) = get("CHAOSLINGR_ALLOW_BLIND_DETECTORS") {
            s.allow_blind_detectors = boolean(&v, "CHAOSLINGR_ALLOW_BLIND_DETECTORS")?;
        }
        if let Some(v) = get("CHAOSLINGR_PORTS") {
            s.port_choice = port_choice(&v, "CHAOSLINGR_PORTS")?;
        }
        if let Some(v) = get("CHAOSLINGR_PORT_RANGE") {
            s.port_bounds = port_bounds(&v, "CHAOSLINGR_PORT_RANGE")?;
        }
        if let Some(v) = get("CHAOSLINGR_MAX_PORTS") {
            s.max_ports = bounded(&v, "CHAOSLINGR_MAX_PORTS", 1, 1000)? as u16;
        }
        if let Some(v) = get("CHAOSLINGR_PROTOCOLS") {
            s.protocols = protocols(&v, "CHAOSLINGR_PROTOCOLS")?;
        }
        if let Some(v) = get("CHAOSLINGR_CIDR") {
            s.cidr = cidr(&v, "CHAOSLINGR_CIDR")?;
        }
        if let Some(v) = get("CHAOSLINGR_AUTHORIZED_PORTS") {
            s.authorized_ports = authorized_ports(&v, "CHAOSLINGR_AUTHORIZED_PORTS")?;
        }
        if let Some(v) = get("CHAOSLINGR_TOPIC_ARN") {
            s.topic_arn = Some(topic_arn(&v, "CHAOSLINGR_TOPIC_ARN")?);
        }
        if let Some(v) = get("CHAOSLINGR_NAMESPACE") {
            s.namespace = namespace(&v, "CHAOSLINGR_NAMESPACE")?;
        }
        if let Some(v) = get("CHAOSLINGR_MAX_ACTIVE") {
            s.max_active = bounded(&v, "CHAOSLINGR_MAX_ACTIVE", 1, 100)? as usize;
        }
        if let Some(v) = get("CHAOSLINGR_MAX_ACTIVE_TOTAL") {
            s.max_active_total = bounded(&v, "CHAOSLINGR_MAX_ACTIVE_TOTAL", 1, 1000)? as usize;
        }
        if let Some(v) = get("CHAOSLINGR_SCOPE_CONCURRENCY") {
            s.scope_concurrency = bounded(&v, "CHAOSLINGR_SCOPE_CONCURRENCY", 1, 64)? as usize;
        }
        s.targets = targets_from(&get)?;
        if let Some(v) = get("CHAOSLINGR_ENABLED") {
            s.enabled = boolean(&v, "CHAOSLINGR_ENABLED")?;
        }
        if let Some(v) = get("CHAOSLINGR_DRY_RUN") {
            s.dry_run = boolean(&v, "CHAOSLINGR_DRY_RUN")?;
        }
        if let Some(v) = get("CHAOSLINGR_STOP_ALARMS") {
            s.stop_alarms = names(&v, "CHAOSLINGR_STOP_ALARMS")?;
        }
        if let Some(v) = get("CHAOSLINGR_ALLOWED_HOURS") {
            s.allowed_hours = Some(allowed_hours(&v, "CHAOSLINGR_ALLOWED_HOURS")?);
        }
        if let Some(v) = get("CHAOSLINGR_ORPHAN_GRACE") {
            s.orphan_grace = orphan_grace(&v, "CHAOSLINGR_ORPHAN_GRACE")?;
        }
        s.check()?;
        Ok(s)
    }

    /// Applies the CLI's target flags over the targets read from the environment:
    /// `--targets-file FILE` replaces `CHAOSLINGR_TARGETS`, then `--accounts`, `--regions`,
    /// `--role` and `--external-id` replace their fields.
    pub fn override_targets(&mut self, flags: &TargetFlags) -> Result<(), ConfigError> {
        if let Some((path, text)) = &flags.file {
            self.targets = crate::fleet::Targets::from_json(text, &format!("--targets-file {path}"))?;
        }
        if let Some(v) = &flags.accounts {
            self.targets.accounts = crate::fleet::account_list(v, "--accounts")?;
        }
        if let Some(v) = &flags.regions {
            self.targets.regions = crate::fleet::region_list(v, "--regions")?;
        }
        if let Some(v) = &flags.role {
            self.targets.role = Some(crate::fleet::role_name(v, "--role")?);
        }
        if let Some(v) = &flags.external_id {
            self.targets.external_id = Some(crate::fleet::external_id(v, "--external-id")?);
        }
        let source = match (&flags.role, &flags.external_id, &flags.file) {
            (Some(_), _, _) => "--role".to_string(),
            (None, Some(_), _) => "--external-id".to_string(),
            (None, None, Some((path, _))) => format!("--targets-file {path}"),
            (None, None, None) => "CHAOSLINGR_TARGETS".to_string(),
        };
        self.targets.check(&source)
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Settings::from_lookup(|k| std::env::var(k).ok())
    }

    /// Cross-field checks, run after every source has been applied.
    pub fn check(&self) -> Result<(), ConfigError> {
        // The detector list is written into one tag value of every experiment: a list
        // that does not fit must fail here, at start-up, not at every run.
        let list = detector::format_list(&self.detectors);
        if list.len() > crate::tags::MAX_TAG_VALUE {
            return Err(ConfigError::new(
                "CHAOSLINGR_DETECTORS",
                &list,
                format!(
                    "at most {} characters in all (it is written into one tag value); configure fewer detectors or shorter names",
                    crate::tags::MAX_TAG_VALUE
                ),
            ));
        }
        if self.port_choice == crate::port_choice::PortChoice::Risky && !self.protocols.contains(&Protocol::Tcp) {
            return Err(ConfigError::new(
                "CHAOSLINGR_PROTOCOLS",
                &self.protocols.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(","),
                "to include tcp when CHAOSLINGR_PORTS=risky (the risky ports are tcp services)",
            ));
        }
        if self.poll_interval > self.window {
            return Err(ConfigError::new(
                "CHAOSLINGR_POLL_INTERVAL",
                &crate::time::human(self.poll_interval),
                format!("at most the window ({})", crate::time::human(self.window)),
            ));
        }
        Ok(())
    }

    /// Whether a group's tags opt it in. Compared exactly as the module's IAM condition
    /// (`StringEqualsIgnoreCase`) compares it: the whole value, ignoring case only, so
    /// `"TRUE"` opts in and `"true "` does not. A group the code targets is then never
    /// one the role may not change.
    pub fn is_opted_in<'a>(&self, tags: impl IntoIterator<Item = (&'a str, &'a str)>) -> bool {
        tags.into_iter().any(|(k, v)| k == self.opt_in_tag && v.to_lowercase() == self.opt_in_value.to_lowercase())
    }
}

/// The CLI's target flags, as given (see [`Settings::override_targets`]).
#[derive(Debug, Clone, Default)]
pub struct TargetFlags {
    /// `--targets-file FILE`: its path and its text.
    pub file: Option<(String, String)>,
    pub accounts: Option<String>,
    pub regions: Option<String>,
    pub role: Option<String>,
    pub external_id: Option<String>,
}

/// The targets from `CHAOSLINGR_TARGETS` (JSON), then `CHAOSLINGR_ACCOUNTS`,
/// `CHAOSLINGR_REGIONS`, `CHAOSLINGR_ROLE` and `CHAOSLINGR_EXTERNAL_ID` over its fields.
fn targets_from(get: &impl Fn(&str) -> Option<String>) -> Result<crate::fleet::Targets, ConfigError> {
    use crate::fleet;
    let mut t = match get("CHAOSLINGR_TARGETS") {
        Some(v) => fleet::Targets::from_json(&v, "CHAOSLINGR_TARGETS")?,
        None => fleet::Targets::default(),
    };
    if let Some(v) = get("CHAOSLINGR_ACCOUNTS") {
        t.accounts = fleet::account_list(&v, "CHAOSLINGR_ACCOUNTS")?;
    }
    if let Some(v) = get("CHAOSLINGR_REGIONS") {
        t.regions = fleet::region_list(&v, "CHAOSLINGR_REGIONS")?;
    }
    if let Some(v) = get("CHAOSLINGR_ROLE") {
        t.role = Some(fleet::role_name(&v, "CHAOSLINGR_ROLE")?);
    }
    if let Some(v) = get("CHAOSLINGR_EXTERNAL_ID") {
        t.external_id = Some(fleet::external_id(&v, "CHAOSLINGR_EXTERNAL_ID")?);
    }
    let source = if get("CHAOSLINGR_ROLE").is_some() {
        "CHAOSLINGR_ROLE"
    } else if get("CHAOSLINGR_EXTERNAL_ID").is_some() {
        "CHAOSLINGR_EXTERNAL_ID"
    } else {
        "CHAOSLINGR_TARGETS"
    };
    t.check(source)?;
    Ok(t)
}

/// Parsers shared by the environment and the CLI flags; `source` names the variable or
/// flag in the error.
pub fn window(v: &str, source: &str) -> Result<Duration, ConfigError> {
    let expected = "a duration such as `90s`, `10m` or `1h`, between 10s and 24h";
    match crate::time::parse_duration(v) {
        Some(d) if d >= Duration::from_secs(10) && d <= crate::experiment::MAX_WINDOW => Ok(d),
        _ => Err(ConfigError::new(source, v, expected)),
    }
}

pub fn poll_interval(v: &str, source: &str) -> Result<Duration, ConfigError> {
    let expected = "a duration such as `5s` or `30s`, between 1s and 5m";
    match crate::time::parse_duration(v) {
        Some(d) if d >= Duration::from_secs(1) && d <= Duration::from_secs(300) => Ok(d),
        _ => Err(ConfigError::new(source, v, expected)),
    }
}

pub fn orphan_grace(v: &str, source: &str) -> Result<Duration, ConfigError> {
    let expected = "a duration such as `2m` or `30s`, between 5s and 1h";
    match crate::time::parse_duration(v) {
        Some(d) if d >= Duration::from_secs(5) && d <= Duration::from_secs(3600) => Ok(d),
        _ => Err(ConfigError::new(source, v, expected)),
    }
}

pub fn detectors(v: &str, source: &str) -> Result<Vec<Detector>, ConfigError> {
    detector::parse_list(v).map_err(|e| ConfigError::new(source, v, e.to_string()))
}

pub fn port_choice(v: &str, source: &str) -> Result<crate::port_choice::PortChoice, ConfigError> {
    v.parse().map_err(|_| ConfigError::new(source, v, "`random` or `risky`"))
}

pub fn port_bounds(v: &str, source: &str) -> Result<PortRange, ConfigError> {
    let expected = "a port range `FROM-TO` with 1 <= FROM <= TO <= 65535, e.g. `10000-65000`";
    match v.parse::<PortRange>() {
        Ok(r) if r.from >= 1 => Ok(r),
        _ => Err(ConfigError::new(source, v, expected)),
    }
}

pub fn protocols(v: &str, source: &str) -> Result<Vec<Protocol>, ConfigError> {
    let mut out = Vec::new();
    for p in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let p: Protocol = p.parse().map_err(|_| ConfigError::new(source, v, "`tcp`, `udp` or `tcp,udp`"))?;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    if out.is_empty() {
        return Err(ConfigError::new(source, v, "`tcp`, `udp` or `tcp,udp`"));
    }
    Ok(out)
}

pub fn cidr(v: &str, source: &str) -> Result<String, ConfigError> {
    let expected = "an IPv4 CIDR such as `0.0.0.0/0` or `203.0.113.0/24`, or an IPv6 CIDR such as `::/0`";
    let v = v.trim();
    let (addr, len) = v.split_once('/').ok_or_else(|| ConfigError::new(source, v, expected))?;
    let len: u8 = len.parse().map_err(|_| ConfigError::new(source, v, expected))?;
    let ok = match addr.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => len <= 32,
        Ok(std::net::IpAddr::V6(_)) => len <= 128,
        Err(_) => false,
    };
    if ok {
        Ok(v.to_string())
    } else {
        Err(ConfigError::new(source, v, expected))
    }
}

pub fn authorized_ports(v: &str, source: &str) -> Result<Vec<AuthorizedPort>, ConfigError> {
    let expected = "comma-separated `[tcp:|udp:]PORT[-PORT]`, e.g. `tcp:22,tcp:443,udp:53,8000-8080`";
    let mut out = Vec::new();
    for item in v.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (protocol, ports) = match item.split_once(':') {
            Some((p, r)) => (Some(p.parse::<Protocol>().map_err(|_| ConfigError::new(source, v, expected))?), r),
            None => (None, item),
        };
        let ports = ports.parse::<PortRange>().map_err(|_| ConfigError::new(source, v, expected))?;
        out.push(AuthorizedPort { protocol, ports });
    }
    Ok(out)
}

pub fn topic_arn(v: &str, source: &str) -> Result<String, ConfigError> {
    let v = v.trim();
    let parts: Vec<&str> = v.split(':').collect();
    let ok = parts.len() == 6 && parts[0] == "arn" && parts[2] == "sns" && !parts[5].is_empty();
    if ok {
        Ok(v.to_string())
    } else {
        Err(ConfigError::new(source, v, "an SNS topic ARN such as `arn:aws:sns:us-east-1:123456789012:chaoslingr`"))
    }
}

pub fn namespace(v: &str, source: &str) -> Result<String, ConfigError> {
    let v = v.trim();
    if v.is_empty() || v.len() > 255 || v.starts_with("AWS/") {
        return Err(ConfigError::new(source, v, "a CloudWatch namespace of 1-255 characters not starting with `AWS/`"));
    }
    Ok(v.to_string())
}

pub fn tag_key(v: &str, source: &str) -> Result<String, ConfigError> {
    let v = v.trim();
    if v.is_empty() || v.len() > 128 || v.to_ascii_lowercase().starts_with("aws:") {
        return Err(ConfigError::new(source, v, "a tag key of 1-128 characters not starting with `aws:`"));
    }
    Ok(v.to_string())
}

pub fn opt_in_value(v: &str, source: &str) -> Result<String, ConfigError> {
    if v.trim() != v || v.is_empty() {
        return Err(ConfigError::new(
            source,
            v,
            "a tag value without leading or trailing spaces (IAM compares the whole value)",
        ));
    }
    Ok(v.to_string())
}

pub fn boolean(v: &str, source: &str) -> Result<bool, ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::new(source, v, "`true` or `false`")),
    }
}

fn bounded(v: &str, source: &str, min: u64, max: u64) -> Result<u64, ConfigError> {
    match v.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(ConfigError::new(source, v, format!("a whole number from {min} to {max}"))),
    }
}

fn names(v: &str, source: &str) -> Result<Vec<String>, ConfigError> {
    let out: Vec<String> = v.split(',').map(str::trim).filter(|n| !n.is_empty()).map(String::from).collect();
    if out.iter().any(|n| n.len() > 255) {
        return Err(ConfigError::new(source, v, "comma-separated alarm names of at most 255 characters"));
    }
    Ok(out)
}

pub fn allowed_hours(v: &str, source: &str) -> Result<AllowedHours, ConfigError> {
    parse_allowed_hours(v).ok_or_else(|| {
        ConfigError::new(source, v, "`[DAYS ]HH:MM-HH:MM` in UTC, e.g. `mon-fri 09:00-17:00` or `sat,sun 10:00-12:00`")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn targets_come_from_the_json_then_the_single_variables_then_the_flags() {
        let s = from(&[
            (
                "CHAOSLINGR_TARGETS",
                r#"{"accounts": [{"id": "111111111111", "regions": ["eu-west-1"]}], "regions": ["us-east-1"]}"#,
            ),
            ("CHAOSLINGR_ROLE", "team/chaoslingr-target"),
            ("CHAOSLINGR_MAX_ACTIVE_TOTAL", "3"),
            ("CHAOSLINGR_SCOPE_CONCURRENCY", "2"),
        ])
        .unwrap();
        assert_eq!(s.targets.accounts.len(), 1);
        assert_eq!(s.targets.role(), "team/chaoslingr-target");
        assert_eq!((s.max_active_total, s.scope_concurrency), (3, 2));
        let scopes: Vec<String> = s.targets.scopes("ap-south-1").iter().map(ToString::to_string).collect();
        assert_eq!(scopes, ["111111111111/eu-west-1"]);

        let mut s = s;
        let flags = TargetFlags {
            accounts: Some("222222222222,333333333333".into()),
            regions: Some("eu-west-1,us-east-1".into()),
            external_id: Some("ext-123".into()),
            ..TargetFlags::default()
        };
        s.override_targets(&flags).unwrap();
        assert_eq!(s.targets.scopes("x").len(), 4);
        assert_eq!(s.targets.external_id.as_deref(), Some("ext-123"));
        assert_eq!(s.targets.role(), "team/chaoslingr-target", "a flag left out keeps the environment's");

        // Each bad value names its own source, and an external id is never echoed.
        let e = from(&[("CHAOSLINGR_ROLE", "x")]).unwrap_err();
        assert_eq!(e.source_name, "CHAOSLINGR_ROLE");
        assert!(e.to_string().contains("target accounts too"), "{e}");
        let e = from(&[("CHAOSLINGR_EXTERNAL_ID", "secret-value")]).unwrap_err();
        assert_eq!(e.source_name, "CHAOSLINGR_EXTERNAL_ID");
        assert!(!e.to_string().contains("secret-value"), "{e}");
        let e = from(&[("CHAOSLINGR_SCOPE_CONCURRENCY", "0")]).unwrap_err();
        assert_eq!(e.source_name, "CHAOSLINGR_SCOPE_CONCURRENCY");
        let e = from(&[("CHAOSLINGR_REGIONS", "us-east-1,us-east-1")]).unwrap_err();
        assert!(e.to_string().contains("each region once"), "{e}");
        let mut s = Settings::default();
        let e = s.override_targets(&TargetFlags { role: Some("r".into()), ..TargetFlags::default() }).unwrap_err();
        assert_eq!(e.source_name, "--role");
    }

    #[test]
    fn defaults_match_the_contract() {
        let s = from(&[]).unwrap();
        assert_eq!(s.opt_in_tag, "chaoslingr:opt-in");
        assert_eq!(s.window, Duration::from_secs(900));
        assert_eq!(s.port_bounds, PortRange { from: 10_000, to: 65_000 });
        assert_eq!(s.max_ports, 6);
        assert_eq!(s.namespace, "ChaoSlingr");
        assert_eq!(s.max_active, 1);
        assert!(s.enabled && !s.dry_run);
    }

    #[test]
    fn every_variable_is_read() {
        let s = from(&[
            ("CHAOSLINGR_OPT_IN_TAG", "team:chaos"),
            ("CHAOSLINGR_OPT_IN_VALUE", "yes"),
            ("CHAOSLINGR_DETECTORS", "config:vpc-sg-open-only-to-authorized-ports,alarm:fw"),
            ("CHAOSLINGR_WINDOW", "10m"),
            ("CHAOSLINGR_POLL_INTERVAL", "5s"),
            ("CHAOSLINGR_PORT_RANGE", "20000-20100"),
            ("CHAOSLINGR_MAX_PORTS", "3"),
            ("CHAOSLINGR_PROTOCOLS", "udp"),
            ("CHAOSLINGR_CIDR", "::/0"),
            ("CHAOSLINGR_AUTHORIZED_PORTS", "tcp:22, udp:53, 8000-8080"),
            ("CHAOSLINGR_TOPIC_ARN", "arn:aws:sns:eu-west-1:123456789012:outcomes"),
            ("CHAOSLINGR_NAMESPACE", "Security/Chaos"),
            ("CHAOSLINGR_MAX_ACTIVE", "2"),
            ("CHAOSLINGR_ENABLED", "false"),
            ("CHAOSLINGR_DRY_RUN", "1"),
            ("CHAOSLINGR_STOP_ALARMS", "incident-open, deploy-freeze"),
            ("CHAOSLINGR_ALLOWED_HOURS", "mon-fri 09:00-17:00"),
        ])
        .unwrap();
        assert_eq!(s.opt_in_tag, "team:chaos");
        assert_eq!(s.detectors.len(), 2);
        assert_eq!(s.window, Duration::from_secs(600));
        assert_eq!(s.poll_interval, Duration::from_secs(5));
        assert_eq!(s.port_bounds, PortRange { from: 20_000, to: 20_100 });
        assert_eq!(s.max_ports, 3);
        assert_eq!(s.protocols, vec![Protocol::Udp]);
        assert_eq!(s.cidr, "::/0");
        assert_eq!(s.authorized_ports.len(), 3);
        assert_eq!(s.authorized_ports[2], AuthorizedPort { protocol: None, ports: PortRange { from: 8000, to: 8080 } });
        assert!(s.topic_arn.is_some());
        assert_eq!(s.namespace, "Security/Chaos");
        assert_eq!(s.max_active, 2);
        assert!(!s.enabled && s.dry_run);
        assert_eq!(s.stop_alarms, vec!["incident-open", "deploy-freeze"]);
        assert!(s.allowed_hours.is_some());
    }

    #[test]
    fn bad_values_name_the_variable_and_the_accepted_form() {
        let cases = [
            ("CHAOSLINGR_WINDOW", "forever", "duration"),
            ("CHAOSLINGR_WINDOW", "1s", "between 10s and 24h"),
            ("CHAOSLINGR_POLL_INTERVAL", "0s", "between 1s and 5m"),
            ("CHAOSLINGR_PORT_RANGE", "0-10", "1 <= FROM"),
            ("CHAOSLINGR_PORT_RANGE", "9000-100", "FROM-TO"),
            ("CHAOSLINGR_MAX_PORTS", "0", "from 1 to 1000"),
            ("CHAOSLINGR_PROTOCOLS", "icmp", "`tcp`"),
            ("CHAOSLINGR_CIDR", "0.0.0.0/33", "IPv4 CIDR"),
            ("CHAOSLINGR_CIDR", "anywhere", "IPv4 CIDR"),
            ("CHAOSLINGR_AUTHORIZED_PORTS", "ssh", "tcp:22"),
            ("CHAOSLINGR_TOPIC_ARN", "my-topic", "SNS topic ARN"),
            ("CHAOSLINGR_NAMESPACE", "AWS/EC2", "namespace"),
            ("CHAOSLINGR_MAX_ACTIVE", "-1", "whole number"),
            ("CHAOSLINGR_ENABLED", "maybe", "`true` or `false`"),
            ("CHAOSLINGR_DETECTORS", "guardduty", "config:<rule-name>"),
            ("CHAOSLINGR_ALLOWED_HOURS", "office hours", "mon-fri 09:00-17:00"),
            ("CHAOSLINGR_OPT_IN_TAG", "aws:reserved", "not starting with `aws:`"),
        ];
        for (var, value, expected) in cases {
            let e = from(&[(var, value)]).unwrap_err();
            assert_eq!(e.source_name, var);
            let msg = e.to_string();
            assert!(msg.starts_with(&format!("{var}=`")), "{msg}");
            assert!(msg.contains(expected), "{var}={value}: {msg}");
        }
    }

    #[test]
    fn the_orphan_grace_is_bounded() {
        assert_eq!(Settings::default().orphan_grace, Duration::from_secs(120));
        assert_eq!(from(&[("CHAOSLINGR_ORPHAN_GRACE", "10s")]).unwrap().orphan_grace, Duration::from_secs(10));
        for bad in ["1s", "2h", "soon"] {
            let e = from(&[("CHAOSLINGR_ORPHAN_GRACE", bad)]).unwrap_err();
            assert_eq!(e.source_name, "CHAOSLINGR_ORPHAN_GRACE", "{bad}");
        }
    }

    #[test]
    fn poll_interval_cannot_exceed_the_window() {
        let e = from(&[("CHAOSLINGR_WINDOW", "20s"), ("CHAOSLINGR_POLL_INTERVAL", "1m")]).unwrap_err();
        assert_eq!(e.source_name, "CHAOSLINGR_POLL_INTERVAL");
    }

    #[test]
    fn opt_in_is_case_insensitive_on_the_value_only() {
        let s = Settings::default();
        assert!(s.is_opted_in([("chaoslingr:opt-in", "TRUE")]));
        assert!(s.is_opted_in([("Name", "x"), ("chaoslingr:opt-in", "True")]));
        assert!(!s.is_opted_in([("chaoslingr:opt-in", "false")]));
        assert!(!s.is_opted_in([("ChaoSlingr:Opt-In", "true")]));
        assert!(!s.is_opted_in([]));
        // As IAM's StringEqualsIgnoreCase: the whole value, so spaces are not ignored.
        assert!(!s.is_opted_in([("chaoslingr:opt-in", "true ")]));
        assert!(!s.is_opted_in([("chaoslingr:opt-in", " true")]));
    }

    #[test]
    fn an_opt_in_value_with_spaces_is_refused_naming_the_variable() {
        let err = from(&[("CHAOSLINGR_OPT_IN_VALUE", "yes ")]).unwrap_err().to_string();
        assert!(err.contains("CHAOSLINGR_OPT_IN_VALUE") && err.contains("IAM compares the whole value"), "{err}");
        assert_eq!(from(&[("CHAOSLINGR_OPT_IN_VALUE", "Yes")]).unwrap().opt_in_value, "Yes");
    }

    #[test]
    fn a_detector_list_longer_than_a_tag_value_fails_at_start_up() {
        let many: Vec<String> = (0..20).map(|i| format!("alarm:firewall-new-open-port-{i}")).collect();
        let err = from(&[("CHAOSLINGR_DETECTORS", &many.join(","))]).unwrap_err().to_string();
        assert!(err.contains("CHAOSLINGR_DETECTORS") && err.contains("at most 256 characters"), "{err}");
        assert!(from(&[("CHAOSLINGR_DETECTORS", &many[..3].join(","))]).is_ok());
    }

    #[test]
    fn allowed_hours_by_day_and_time() {
        let h = allowed_hours("mon-fri 09:00-17:00", "X").unwrap();
        let t = |s| crate::time::parse_rfc3339(s).unwrap();
        assert!(h.contains(t("2026-11-23T09:00:00Z"))); // Monday
        assert!(!h.contains(t("2026-11-23T17:00:00Z")));
        assert!(!h.contains(t("2026-11-28T12:00:00Z"))); // Saturday
        let night = allowed_hours("22:00-02:00", "X").unwrap();
        assert!(night.contains(t("2026-11-28T23:30:00Z")));
        assert!(night.contains(t("2026-11-29T01:59:00Z")));
        assert!(!night.contains(t("2026-11-29T12:00:00Z")));
        let weekend = allowed_hours("sat,sun 10:00-12:00", "X").unwrap();
        assert!(weekend.contains(t("2026-11-29T11:00:00Z")));
        assert!(!weekend.contains(t("2026-11-27T11:00:00Z")));
        assert!(allowed_hours("fri-mon 00:00-24:00", "X").unwrap().contains(t("2026-11-29T11:00:00Z")));
    }
}
