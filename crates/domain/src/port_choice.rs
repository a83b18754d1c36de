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

/// Why no range could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no free {protocols} port range inside {bounds}: every port is already allowed by an existing ingress rule or declared authorized")]
pub struct NoFreeRange {
    pub protocols: String,
    pub bounds: PortRange,
}

impl NoFreeRange {
    pub fn for_request(req: &PortRequest<'_>) -> Self {
        NoFreeRange {
            protocols: req.protocols.iter().map(|p| p.as_str()).collect::<Vec<_>>().join("/"),
            bounds: req.bounds,
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
