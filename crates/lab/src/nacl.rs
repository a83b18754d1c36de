//! Network ACLs as the lab's controls see them: which inbound entries let the whole world
//! in, on which TCP and UDP ports, and the lab's Config rule
//! `nacl-open-only-to-authorized-ports` on top of that.
//!
//! Semantics (AWS's, reduced to what matters for "open to the world"):
//! - Only inbound (`Egress` false) entries count.
//! - Entries are evaluated in ascending rule number and the first match decides, so an
//!   ALLOW is only effective for the ports no lower-numbered entry already decided.
//! - Only entries whose source is the whole world (`0.0.0.0/0`, or `::/0` for IPv6) decide
//!   for world traffic: a lower-numbered DENY for `10.0.0.0/8` leaves the rest of the world
//!   reaching a later `0.0.0.0/0` ALLOW, so it does not narrow it. IPv4 and IPv6 are
//!   separate: a `0.0.0.0/0` DENY does not hide a `::/0` ALLOW.
//! - Protocol `6` is TCP, `17` UDP, `-1` every protocol (all TCP and UDP ports); other
//!   protocols (ICMP, ...) have no ports and are not judged, as the security-group rule
//!   does not judge them.
//! - Traffic no entry matches is denied. Rule 32767 is AWS's default DENY of every custom
//!   ACL; it is an ordinary entry here (the emulator does not create it, the result is the
//!   same).

use std::fmt;

use crate::rules::{OpenPortsRule, Permission, Ports};

/// One entry of a network ACL, as `DescribeNetworkAcls` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclEntry {
    pub rule_number: i32,
    pub egress: bool,
    pub allow: bool,
    /// `6`, `17`, `-1`, or another protocol number.
    pub protocol: String,
    pub cidr: Option<String>,
    pub ipv6_cidr: Option<String>,
    /// The port range; `None` for protocols without ports (or all ports).
    pub ports: Option<Ports>,
}

impl AclEntry {
    fn world_family(&self) -> Option<Family> {
        if self.cidr.as_deref() == Some("0.0.0.0/0") {
            Some(Family::V4)
        } else if self.ipv6_cidr.as_deref() == Some("::/0") {
            Some(Family::V6)
        } else {
            None
        }
    }

    /// The entry's own permission, in the security-group vocabulary (`tcp`, `udp`, `-1`).
    pub fn permission(&self) -> Permission {
        let protocol = match self.protocol.as_str() {
            "6" | "tcp" => "tcp".to_string(),
            "17" | "udp" => "udp".to_string(),
            "-1" | "all" => "-1".to_string(),
            other => other.to_string(),
        };
        let (from, to) = match (protocol.as_str(), self.ports) {
            ("tcp" | "udp", Some(p)) => (p.from, p.to),
            ("tcp" | "udp", None) => (0, 65535),
            _ => (-1, -1),
        };
        Permission { protocol, from, to, world_open: self.world_family().is_some() }
    }

    /// The TCP and UDP ports the entry matches.
    fn covers(&self) -> (Vec<Ports>, Vec<Ports>) {
        let all = vec![Ports { from: 0, to: 65535 }];
        let own = vec![self.ports.unwrap_or(Ports { from: 0, to: 65535 })];
        match self.protocol.as_str() {
            "6" | "tcp" => (own, Vec::new()),
            "17" | "udp" => (Vec::new(), own),
            "-1" | "all" => (all.clone(), all),
            _ => (Vec::new(), Vec::new()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

/// A world-open inbound ALLOW entry and the ports it really opens to the world (those no
/// lower-numbered world entry decided first).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Opening {
    pub rule_number: i32,
    /// The entry itself (`tcp 20000-20002`, `-1` for every protocol).
    pub permission: Permission,
    /// Whether the entry's source is `::/0` rather than `0.0.0.0/0`.
    pub ipv6: bool,
    /// The TCP and UDP port ranges the world reaches through this entry.
    pub effective: Vec<Permission>,
}

impl fmt::Display for Opening {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = if self.ipv6 { "::/0" } else { "0.0.0.0/0" };
        write!(f, "entry {} ({} from {source})", self.rule_number, self.permission)
    }
}

/// `set` without `minus`; both sorted, non-overlapping inclusive ranges.
fn subtract(set: &[Ports], minus: &[Ports]) -> Vec<Ports> {
    let mut out = Vec::new();
    for p in set {
        let mut pieces = vec![*p];
        for m in minus {
            pieces = pieces
                .into_iter()
                .flat_map(|x| {
                    let mut keep = Vec::new();
                    if m.to < x.from || m.from > x.to {
                        keep.push(x);
                    } else {
                        if m.from > x.from {
                            keep.push(Ports { from: x.from, to: m.from - 1 });
                        }
                        if m.to < x.to {
                            keep.push(Ports { from: m.to + 1, to: x.to });
                        }
                    }
                    keep
                })
                .collect();
        }
        out.extend(pieces);
    }
    out
}

/// `a` and `b` together, sorted and merged.
fn union(a: &[Ports], b: &[Ports]) -> Vec<Ports> {
    let mut all: Vec<Ports> = a.iter().chain(b).copied().collect();
    all.sort_by_key(|p| (p.from, p.to));
    let mut out: Vec<Ports> = Vec::new();
    for p in all {
        match out.last_mut() {
            Some(last) if p.from <= last.to.saturating_add(1) => last.to = last.to.max(p.to),
            _ => out.push(p),
        }
    }
    out
}

/// The world-open inbound ALLOW entries of an ACL whose effect reaches the world, in
/// rule-number order (see the module's semantics).
pub fn openings(entries: &[AclEntry]) -> Vec<Opening> {
    let mut out = Vec::new();
    for family in [Family::V4, Family::V6] {
        let mut inbound: Vec<&AclEntry> =
            entries.iter().filter(|e| !e.egress && e.world_family() == Some(family)).collect();
        inbound.sort_by_key(|e| e.rule_number);
        let (mut decided_tcp, mut decided_udp) = (Vec::new(), Vec::new());
        for e in inbound {
            let (tcp, udp) = e.covers();
            let tcp_open = subtract(&tcp, &decided_tcp);
            let udp_open = subtract(&udp, &decided_udp);
            if e.allow && (!tcp_open.is_empty() || !udp_open.is_empty()) {
                let as_perm = |protocol: &str, p: &Ports| Permission {
                    protocol: protocol.into(),
                    from: p.from,
                    to: p.to,
                    world_open: true,
                };
                let effective = tcp_open
                    .iter()
                    .map(|p| as_perm("tcp", p))
                    .chain(udp_open.iter().map(|p| as_perm("udp", p)))
                    .collect();
                out.push(Opening {
                    rule_number: e.rule_number,
                    permission: e.permission(),
                    ipv6: family == Family::V6,
                    effective,
                });
            }
            decided_tcp = union(&decided_tcp, &tcp);
            decided_udp = union(&decided_udp, &udp);
        }
    }
    out.sort();
    out
}

/// The port ranges of `opening` the rule does not authorize; empty when it opens only
/// authorized ports.
pub fn unauthorized(rule: &OpenPortsRule, opening: &Opening) -> Vec<Permission> {
    let sorted = |v: &[Ports]| union(v, &[]);
    let (tcp_ok, udp_ok) = (sorted(&rule.authorized_tcp), sorted(&rule.authorized_udp));
    opening
        .effective
        .iter()
        .flat_map(|p| {
            let ok = if p.protocol == "tcp" { &tcp_ok } else { &udp_ok };
            subtract(&[Ports { from: p.from, to: p.to }], ok).into_iter().map(move |r| Permission {
                protocol: p.protocol.clone(),
                from: r.from,
                to: r.to,
                world_open: true,
            })
        })
        .collect()
}

/// The openings of an ACL that open an unauthorized port, with those ports.
pub fn violations(rule: &OpenPortsRule, openings: &[Opening]) -> Vec<(Opening, Vec<Permission>)> {
    openings
        .iter()
        .filter_map(|o| {
            let bad = unauthorized(rule, o);
            (!bad.is_empty()).then(|| (o.clone(), bad))
        })
        .collect()
}

/// The Config annotation for an ACL's violations (empty: compliant).
pub fn annotation(violations: &[(Opening, Vec<Permission>)]) -> String {
    if violations.is_empty() {
        return "No inbound entry allows unrestricted traffic on unauthorized ports.".into();
    }
    let parts: Vec<String> = violations
        .iter()
        .map(|(o, bad)| {
            let ports: Vec<String> = bad.iter().map(ToString::to_string).collect();
            format!("{o} opens {}", ports.join(", "))
        })
        .collect();
    format!("Unrestricted inbound traffic on unauthorized ports: {}.", parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(rule_number: i32, allow: bool, protocol: &str, ports: Option<(i32, i32)>, cidr: &str) -> AclEntry {
        let v6 = cidr.contains(':');
        AclEntry {
            rule_number,
            egress: false,
            allow,
            protocol: protocol.into(),
            cidr: (!v6).then(|| cidr.to_string()),
            ipv6_cidr: v6.then(|| cidr.to_string()),
            ports: ports.map(|(from, to)| Ports { from, to }),
        }
    }

    fn tcp(from: i32, to: i32) -> Permission {
        Permission { protocol: "tcp".into(), from, to, world_open: true }
    }

    fn udp(from: i32, to: i32) -> Permission {
        Permission { protocol: "udp".into(), from, to, world_open: true }
    }

    fn default_deny() -> AclEntry {
        entry(32767, false, "-1", None, "0.0.0.0/0")
    }

    #[test]
    fn an_allow_for_the_world_is_an_opening_and_a_deny_is_not() {
        let acl = [entry(100, true, "6", Some((443, 443)), "0.0.0.0/0"), default_deny()];
        let o = openings(&acl);
        assert_eq!(o.len(), 1);
        assert_eq!((o[0].rule_number, o[0].ipv6), (100, false));
        assert_eq!(o[0].permission, tcp(443, 443));
        assert_eq!(o[0].effective, vec![tcp(443, 443)]);
        assert_eq!(o[0].to_string(), "entry 100 (tcp 443 from 0.0.0.0/0)");
    }

    #[test]
    fn lower_rule_numbers_decide_first() {
        // GIVEN a deny of 20000-20005 at 90 and an allow of 20000-20010 at 120
        let acl = [
            entry(120, true, "6", Some((20_000, 20_010)), "0.0.0.0/0"),
            entry(90, false, "6", Some((20_000, 20_005)), "0.0.0.0/0"),
            default_deny(),
        ];
        // THEN only 20006-20010 reach the world through 120
        assert_eq!(openings(&acl)[0].effective, vec![tcp(20_006, 20_010)]);
        // AND an allow wholly behind a lower deny opens nothing
        let hidden = [entry(90, false, "-1", None, "0.0.0.0/0"), entry(120, true, "17", Some((53, 53)), "0.0.0.0/0")];
        assert!(openings(&hidden).is_empty());
        // AND an allow behind the default deny (as it would be at 32767+) opens nothing
        let after_default = [default_deny(), entry(32_767, true, "6", Some((1, 2)), "0.0.0.0/0")];
        assert!(openings(&after_default).is_empty());
    }

    #[test]
    fn narrower_sources_and_other_directions_do_not_count() {
        let acl = [
            entry(50, false, "6", Some((0, 65535)), "10.0.0.0/8"),
            entry(60, true, "6", Some((22, 22)), "10.0.0.0/8"),
            AclEntry { egress: true, ..entry(70, true, "-1", None, "0.0.0.0/0") },
            entry(100, true, "6", Some((8080, 8080)), "0.0.0.0/0"),
        ];
        let o = openings(&acl);
        assert_eq!(o.len(), 1, "{o:?}");
        assert_eq!(o[0].effective, vec![tcp(8080, 8080)], "a 10/8 deny does not hide the world's allow");
    }

    #[test]
    fn ipv4_and_ipv6_are_judged_apart() {
        let acl = [entry(10, false, "-1", None, "0.0.0.0/0"), entry(20, true, "17", Some((500, 501)), "::/0")];
        let o = openings(&acl);
        assert_eq!(o.len(), 1);
        assert!(o[0].ipv6);
        assert_eq!(o[0].effective, vec![udp(500, 501)]);
        assert_eq!(o[0].to_string(), "entry 20 (udp 500-501 from ::/0)");
    }

    #[test]
    fn all_traffic_opens_every_tcp_and_udp_port_not_decided_before() {
        let acl = [entry(50, true, "6", Some((443, 443)), "0.0.0.0/0"), entry(100, true, "-1", None, "0.0.0.0/0")];
        let o = openings(&acl);
        assert_eq!(o[1].permission.protocol, "-1");
        assert_eq!(o[1].effective, vec![tcp(0, 442), tcp(444, 65535), udp(0, 65535)]);
        // ICMP has no ports: not judged.
        assert!(openings(&[entry(100, true, "1", None, "0.0.0.0/0")]).is_empty());
    }

    #[test]
    fn the_rule_flags_unauthorized_ports_only() {
        let rule = OpenPortsRule::new("nacl", "443,1000-2000", "53").unwrap();
        let acl = [
            entry(100, true, "6", Some((443, 443)), "0.0.0.0/0"),
            entry(110, true, "6", Some((1500, 2500)), "0.0.0.0/0"),
            entry(120, true, "17", Some((53, 53)), "::/0"),
            entry(130, true, "17", Some((40_000, 40_002)), "0.0.0.0/0"),
        ];
        let v = violations(&rule, &openings(&acl));
        let summary: Vec<(i32, Vec<Permission>)> = v.iter().map(|(o, bad)| (o.rule_number, bad.clone())).collect();
        assert_eq!(summary, vec![(110, vec![tcp(2001, 2500)]), (130, vec![udp(40_000, 40_002)])]);
        let text = annotation(&v);
        assert!(text.contains("entry 110 (tcp 1500-2500 from 0.0.0.0/0) opens tcp 2001-2500"), "{text}");
        assert!(annotation(&[]).starts_with("No inbound entry"));
        // The default ACL (allow everything) violates a rule that authorizes 443 only.
        let default_acl = [entry(100, true, "-1", None, "0.0.0.0/0"), default_deny()];
        assert_eq!(violations(&OpenPortsRule::new("r", "443", "").unwrap(), &openings(&default_acl)).len(), 1);
    }

    #[test]
    fn port_sets_subtract_and_merge() {
        let p = |from, to| Ports { from, to };
        assert_eq!(subtract(&[p(0, 10)], &[p(3, 4), p(8, 20)]), vec![p(0, 2), p(5, 7)]);
        assert_eq!(subtract(&[p(5, 5)], &[p(5, 5)]), vec![]);
        assert_eq!(union(&[p(5, 9), p(0, 2)], &[p(3, 4), p(20, 30)]), vec![p(0, 9), p(20, 30)]);
    }
}
