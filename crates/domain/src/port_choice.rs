//! Port choice: a tcp or udp range that is truly unauthorized on the target group.
//!
//! The range never overlaps an existing ingress rule of the group (of the same protocol,
//! or an all-traffic `-1` rule) nor a port the owner declared authorized. That keeps the
//! change genuinely new (a detector has something to notice) and guarantees that
//! reverting our rule can never remove access someone relies on.

use rand::seq::IndexedRandom;
use rand::Rng;

use crate::config::AuthorizedPort;
use crate::experiment::{PortRange, Protocol};

/// An ingress rule that already exists on the group, as far as port choice cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingRule {
    /// `tcp`, `udp`, `icmp`, `-1` (all traffic) or a protocol number, as EC2 reports it.
    pub ip_protocol: String,
    pub from_port: Option<i32>,
    pub to_port: Option<i32>,
}

impl ExistingRule {
    /// The ports of `protocol` this rule already opens, if any.
    pub fn covers(&self, protocol: Protocol) -> Option<PortRange> {
        let p = self.ip_protocol.to_ascii_lowercase();
        let matches = p == "-1" || p == "all" || p.parse::<Protocol>().is_ok_and(|rp| rp == protocol);
        if !matches {
            return None;
        }
        if p == "-1" || p == "all" {
            return Some(PortRange { from: 0, to: u16::MAX });
        }
        let clamp = |v: Option<i32>, dflt: u16| match v {
            Some(v) if (0..=65535).contains(&v) => v as u16,
            _ => dflt,
        };
        // A tcp/udp rule without ports (or with -1) opens every port.
        let (from, to) = (clamp(self.from_port, 0), clamp(self.to_port, u16::MAX));
        Some(PortRange::new(from, to).unwrap_or(PortRange { from: 0, to: u16::MAX }))
    }
}

/// How the ports of an experiment are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PortChoice {
    /// A random range inside the configured bounds (the default): a port nobody expects.
    #[default]
    Random,
    /// One well-known risky tcp port ([`RISKY_PORTS`]): the ports managed controls such
    /// as Config `restricted-ssh`, `restricted-common-ports`, `nacl-no-unrestricted-ssh-rdp`
    /// and Security Hub EC2.19/EC2.21 look at.
    Risky,
}

impl PortChoice {
    pub fn as_str(self) -> &'static str {
        match self {
            PortChoice::Random => "random",
            PortChoice::Risky => "risky",
        }
    }
}

impl std::str::FromStr for PortChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "random" => Ok(PortChoice::Random),
            "risky" => Ok(PortChoice::Risky),
            other => Err(format!("unknown port choice `{other}`; expected `random` or `risky`")),
        }
    }
}

/// The well-known risky ports (tcp) of [`PortChoice::Risky`], with what usually listens
/// there: SSH and RDP first (Config `restricted-ssh`, `nacl-no-unrestricted-ssh-rdp`,
/// Security Hub EC2.21), then the high-risk ports of Security Hub EC2.19, which include
/// the defaults of Config `restricted-common-ports` (20, 21, 3389, 3306, 4333).
pub const RISKY_PORTS: [(u16, &str); 24] = [
    (22, "SSH"),
    (3389, "RDP"),
    (20, "FTP data"),
    (21, "FTP"),
    (23, "Telnet"),
    (25, "SMTP"),
    (110, "POP3"),
    (135, "Microsoft RPC"),
    (143, "IMAP"),
    (445, "SMB"),
    (1433, "SQL Server"),
    (1434, "SQL Server browser"),
    (3000, "web development servers"),
    (3306, "MySQL"),
    (4333, "mSQL"),
    (5000, "web development servers"),
    (5432, "PostgreSQL"),
    (5500, "VNC"),
    (5601, "Kibana"),
    (8080, "HTTP proxies"),
    (8088, "Hadoop"),
    (8888, "web development servers"),
    (9200, "Elasticsearch"),
    (9300, "Elasticsearch"),
];

/// Whether `ports` is one risky port.
pub fn is_risky(ports: PortRange) -> bool {
    ports.from == ports.to && RISKY_PORTS.iter().any(|(p, _)| *p == ports.from)
}

/// The risky ports still free on the target: not open already (to any source) and not
/// declared authorized.
pub fn free_risky(req: &PortRequest<'_>) -> Vec<u16> {
    if !req.protocols.contains(&Protocol::Tcp) {
        return Vec::new();
    }
    RISKY_PORTS
        .iter()
        .map(|(p, _)| *p)
        .filter(|p| {
            let port = PortRange::single(*p);
            !req.existing.iter().filter_map(|r| r.covers(Protocol::Tcp)).any(|r| r.overlaps(port))
                && !req.authorized.iter().any(|a| a.covers(Protocol::Tcp) && a.ports.overlaps(port))
        })
        .collect()
}

/// Chooses under `choice`: a random range ([`choose`]), or one free risky port, uniformly.
pub fn choose_by(
    choice: PortChoice,
    req: &PortRequest<'_>,
    rng: &mut impl Rng,
) -> Result<(Protocol, PortRange), NoFreeRange> {
    match choice {
        PortChoice::Random => choose(req, rng),
        PortChoice::Risky => free_risky(req)
            .choose(rng)
            .map(|p| (Protocol::Tcp, PortRange::single(*p)))
            .ok_or(NoFreeRange { protocols: "tcp".into(), bounds: PortRange { from: 0, to: 0 }, risky: true }),
    }
}

/// Why no range could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct NoFreeRange {
    pub protocols: String,
    pub bounds: PortRange,
    /// The risky ports were asked for, not a range.
    pub risky: bool,
}

impl NoFreeRange {
    fn describe(&self) -> String {
        if self.risky {
            "no free risky port: every one of them is already allowed or declared authorized (or tcp is not among the protocols)".into()
        } else {
            format!(
                "no free {} port range inside {}: every port is already allowed by an existing ingress rule or declared authorized",
                self.protocols, self.bounds
            )
        }
    }
}

impl NoFreeRange {
    pub fn for_request(req: &PortRequest<'_>) -> Self {
        NoFreeRange {
            protocols: req.protocols.iter().map(|p| p.as_str()).collect::<Vec<_>>().join("/"),
            bounds: req.bounds,
            risky: false,
        }
    }
}

/// What port choice needs to know.
#[derive(Debug, Clone)]
pub struct PortRequest<'a> {
    pub existing: &'a [ExistingRule],
    pub authorized: &'a [AuthorizedPort],
    pub bounds: PortRange,
    pub protocols: &'a [Protocol],
    pub max_ports: u16,
}

/// Free sub-ranges of `bounds` for `protocol`.
pub fn free_ranges(req: &PortRequest<'_>, protocol: Protocol) -> Vec<PortRange> {
    let mut taken: Vec<PortRange> = req
        .existing
        .iter()
        .filter_map(|r| r.covers(protocol))
        .chain(req.authorized.iter().filter(|a| a.covers(protocol)).map(|a| a.ports))
        .collect();
    taken.sort_by_key(|r| r.from);
    let mut free = Vec::new();
    let mut cursor = u32::from(req.bounds.from);
    let end = u32::from(req.bounds.to);
    for t in taken {
        let (tf, tt) = (u32::from(t.from), u32::from(t.to));
        if tt < cursor {
            continue;
        }
        if tf > end {
            break;
        }
        if tf > cursor {
            free.push(PortRange { from: cursor as u16, to: (tf - 1) as u16 });
        }
        cursor = tt + 1;
        if cursor > end {
            break;
        }
    }
    if cursor <= end {
        free.push(PortRange { from: cursor as u16, to: end as u16 });
    }
    free
}

/// Chooses a protocol uniformly among those with room, a width uniformly from
/// 1..=`max_ports` (narrowed only when no gap is that wide), and a start uniformly among
/// every position where a range of that width fits.
pub fn choose(req: &PortRequest<'_>, rng: &mut impl Rng) -> Result<(Protocol, PortRange), NoFreeRange> {
    let candidates: Vec<(Protocol, Vec<PortRange>)> =
        req.protocols.iter().map(|p| (*p, free_ranges(req, *p))).filter(|(_, f)| !f.is_empty()).collect();
    let Some((protocol, free)) = candidates.choose(rng) else {
        return Err(NoFreeRange::for_request(req));
    };
    let widest = free.iter().map(|r| r.width()).max().unwrap_or(1);
    let max_width = u32::from(req.max_ports.max(1)).min(widest);
    let width = rng.random_range(1..=max_width);
    let positions: u64 = free.iter().filter(|r| r.width() >= width).map(|r| u64::from(r.width() - width + 1)).sum();
    let mut pick = rng.random_range(0..positions);
    for r in free.iter().filter(|r| r.width() >= width) {
        let n = u64::from(r.width() - width + 1);
        if pick < n {
            let from = u32::from(r.from) + pick as u32;
            return Ok((*protocol, PortRange { from: from as u16, to: (from + width - 1) as u16 }));
        }
        pick -= n;
    }
    unreachable!("pick is below the number of positions")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn rule(p: &str, from: i32, to: i32) -> ExistingRule {
        ExistingRule { ip_protocol: p.into(), from_port: Some(from), to_port: Some(to) }
    }

    fn req<'a>(
        existing: &'a [ExistingRule],
        authorized: &'a [AuthorizedPort],
        bounds: (u16, u16),
        protocols: &'a [Protocol],
    ) -> PortRequest<'a> {
        PortRequest {
            existing,
            authorized,
            bounds: PortRange { from: bounds.0, to: bounds.1 },
            protocols,
            max_ports: 6,
        }
    }

    #[test]
    fn choices_stay_in_bounds_and_width_like_the_original() {
        let mut rng = StdRng::seed_from_u64(1);
        let r = req(&[], &[], (10_000, 65_000), &[Protocol::Tcp, Protocol::Udp]);
        let mut seen_tcp = false;
        let mut seen_udp = false;
        let mut widths = std::collections::BTreeSet::new();
        for _ in 0..2_000 {
            let (p, range) = choose(&r, &mut rng).unwrap();
            assert!(range.from >= 10_000 && range.to <= 65_000);
            assert!((1..=6).contains(&range.width()));
            widths.insert(range.width());
            seen_tcp |= p == Protocol::Tcp;
            seen_udp |= p == Protocol::Udp;
        }
        assert!(seen_tcp && seen_udp);
        assert_eq!(widths.len(), 6, "every width 1..=6 is chosen: {widths:?}");
    }

    #[test]
    fn never_overlaps_existing_rules_or_authorized_ports() {
        let mut rng = StdRng::seed_from_u64(2);
        let existing = [rule("tcp", 100, 104), rule("udp", 90, 120), rule("icmp", -1, -1), rule("6", 110, 111)];
        let authorized = [AuthorizedPort { protocol: Some(Protocol::Tcp), ports: PortRange::single(107) }];
        let r = req(&existing, &authorized, (100, 120), &[Protocol::Tcp, Protocol::Udp]);
        for _ in 0..1_000 {
            let (p, range) = choose(&r, &mut rng).unwrap();
            assert_eq!(p, Protocol::Tcp, "udp is fully taken");
            for taken in [PortRange::new(100, 104).unwrap(), PortRange::single(107), PortRange::new(110, 111).unwrap()]
            {
                assert!(!range.overlaps(taken), "{range} overlaps {taken}");
            }
        }
        let free = free_ranges(&r, Protocol::Tcp);
        assert_eq!(
            free,
            vec![
                PortRange::new(105, 106).unwrap(),
                PortRange::new(108, 109).unwrap(),
                PortRange::new(112, 120).unwrap()
            ]
        );
    }

    #[test]
    fn an_all_traffic_rule_leaves_nothing() {
        let mut rng = StdRng::seed_from_u64(3);
        let existing = [ExistingRule { ip_protocol: "-1".into(), from_port: None, to_port: None }];
        let e = choose(&req(&existing, &[], (10_000, 65_000), &[Protocol::Tcp, Protocol::Udp]), &mut rng).unwrap_err();
        assert!(e.to_string().contains("no free tcp/udp port range inside 10000-65000"), "{e}");
    }

    #[test]
    fn authorized_ports_without_protocol_block_both() {
        let mut rng = StdRng::seed_from_u64(4);
        let authorized = [AuthorizedPort { protocol: None, ports: PortRange::new(1, 65535).unwrap() }];
        assert!(choose(&req(&[], &authorized, (1, 65535), &[Protocol::Udp]), &mut rng).is_err());
    }

    #[test]
    fn a_single_free_port_is_found() {
        let mut rng = StdRng::seed_from_u64(5);
        let existing = [rule("tcp", 10_000, 10_499), rule("tcp", 10_501, 11_000)];
        for _ in 0..50 {
            let got = choose(&req(&existing, &[], (10_000, 11_000), &[Protocol::Tcp]), &mut rng).unwrap();
            assert_eq!(got, (Protocol::Tcp, PortRange::single(10_500)));
        }
    }

    #[test]
    fn risky_ports_are_single_well_known_tcp_ports_never_already_open() {
        let mut rng = StdRng::seed_from_u64(7);
        // SSH is open already (to any source), RDP declared authorized.
        let existing = [rule("tcp", 22, 22), rule("udp", 3306, 3306)];
        let authorized = [AuthorizedPort { protocol: Some(Protocol::Tcp), ports: PortRange::single(3389) }];
        let r = req(&existing, &authorized, (10_000, 65_000), &[Protocol::Tcp, Protocol::Udp]);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..2_000 {
            let (p, range) = choose_by(PortChoice::Risky, &r, &mut rng).unwrap();
            assert_eq!(p, Protocol::Tcp);
            assert!(is_risky(range), "{range}");
            assert!(range.from != 22 && range.from != 3389, "{range} is already open or authorized");
            seen.insert(range.from);
        }
        assert!(seen.contains(&3306), "a udp rule does not make tcp 3306 reachable");
        assert_eq!(seen.len(), RISKY_PORTS.len() - 2, "every free risky port is chosen: {seen:?}");
        // Without tcp, or with every risky port open, there is nothing to choose.
        let udp_only = req(&[], &[], (10_000, 65_000), &[Protocol::Udp]);
        assert!(choose_by(PortChoice::Risky, &udp_only, &mut rng)
            .unwrap_err()
            .to_string()
            .contains("no free risky port"));
        let all = [ExistingRule { ip_protocol: "-1".into(), from_port: None, to_port: None }];
        assert!(choose_by(PortChoice::Risky, &req(&all, &[], (1, 2), &[Protocol::Tcp]), &mut rng).is_err());
        assert_eq!("RISKY".parse::<PortChoice>(), Ok(PortChoice::Risky));
        assert!("ssh".parse::<PortChoice>().unwrap_err().contains("`random` or `risky`"));
    }

    #[test]
    fn starts_are_spread_over_every_gap() {
        let mut rng = StdRng::seed_from_u64(6);
        let existing = [rule("udp", 1_005, 1_094)];
        let r = PortRequest { max_ports: 1, ..req(&existing, &[], (1_000, 1_099), &[Protocol::Udp]) };
        let mut low = 0;
        let mut high = 0;
        for _ in 0..1_000 {
            let (_, range) = choose(&r, &mut rng).unwrap();
            if range.from < 1_005 {
                low += 1
            } else {
                high += 1
            }
        }
        // 5 free ports below, 5 above: about half each.
        assert!((400..=600).contains(&low), "low={low} high={high}");
    }
}
