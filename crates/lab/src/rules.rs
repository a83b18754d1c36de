//! The AWS Config managed rule `vpc-sg-open-only-to-authorized-ports`, evaluated the way
//! AWS documents it: a security group that allows unrestricted incoming traffic
//! (`0.0.0.0/0` or `::/0`) is NON_COMPLIANT unless every such TCP or UDP permission lies
//! within the rule's `authorizedTcpPorts` / `authorizedUdpPorts`. An unrestricted
//! all-traffic (`-1`) permission is always NON_COMPLIANT.

use std::fmt;

/// An inclusive port range from a rule parameter such as `443,1020-1025`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub from: i32,
    pub to: i32,
}

impl Ports {
    fn contains(&self, other: Ports) -> bool {
        self.from <= other.from && other.to <= self.to
    }
}

/// Parses a managed-rule port list: comma-separated ports and `FROM-TO` ranges.
pub fn parse_ports(s: &str) -> Result<Vec<Ports>, String> {
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let parse = |p: &str| {
            p.trim()
                .parse::<i32>()
                .ok()
                .filter(|n| (0..=65535).contains(n))
                .ok_or_else(|| format!("`{item}` is not a port or port range (0-65535, e.g. `443` or `1020-1025`)"))
        };
        let ports = match item.split_once('-') {
            Some((a, b)) => Ports { from: parse(a)?, to: parse(b)? },
            None => {
                let p = parse(item)?;
                Ports { from: p, to: p }
            }
        };
        if ports.from > ports.to {
            return Err(format!("`{item}` ends before it starts"));
        }
        out.push(ports);
    }
    Ok(out)
}

/// One rule of the lab's AWS Config, with the managed rule's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenPortsRule {
    pub name: String,
    pub authorized_tcp: Vec<Ports>,
    pub authorized_udp: Vec<Ports>,
    /// The parameters as AWS shows them (`InputParameters`).
    pub input_parameters: String,
}

impl OpenPortsRule {
    pub fn new(name: &str, tcp: &str, udp: &str) -> Result<Self, String> {
        let mut params = serde_json::Map::new();
        if !tcp.trim().is_empty() {
            params.insert("authorizedTcpPorts".into(), tcp.trim().into());
        }
        if !udp.trim().is_empty() {
            params.insert("authorizedUdpPorts".into(), udp.trim().into());
        }
        Ok(OpenPortsRule {
            name: name.to_string(),
            authorized_tcp: parse_ports(tcp).map_err(|e| format!("authorizedTcpPorts: {e}"))?,
            authorized_udp: parse_ports(udp).map_err(|e| format!("authorizedUdpPorts: {e}"))?,
            input_parameters: serde_json::Value::Object(params).to_string(),
        })
    }
}

/// An ingress permission of a group, reduced to what the rule looks at.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Permission {
    /// `tcp`, `udp`, `icmp`, `-1`, or a number.
    pub protocol: String,
    pub from: i32,
    pub to: i32,
    /// Whether the source includes `0.0.0.0/0` or `::/0`.
    pub world_open: bool,
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.protocol == "-1" {
            write!(f, "all traffic")
        } else if self.from == self.to {
            write!(f, "{} {}", self.protocol, self.from)
        } else {
            write!(f, "{} {}-{}", self.protocol, self.from, self.to)
        }
    }
}

/// The world-open permissions the rule finds unauthorized; empty means COMPLIANT.
pub fn violations(rule: &OpenPortsRule, permissions: &[Permission]) -> Vec<Permission> {
    let mut out: Vec<Permission> = permissions
        .iter()
        .filter(|p| p.world_open)
        .filter(|p| {
            let ports = Ports { from: p.from, to: p.to };
            match p.protocol.as_str() {
                "-1" | "all" => true,
                "tcp" | "6" => !rule.authorized_tcp.iter().any(|a| a.contains(ports)),
                "udp" | "17" => !rule.authorized_udp.iter().any(|a| a.contains(ports)),
                _ => false,
            }
        })
        .cloned()
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(protocol: &str, from: i32, to: i32, world_open: bool) -> Permission {
        Permission { protocol: protocol.into(), from, to, world_open }
    }

    #[test]
    fn world_open_ports_outside_the_authorized_ones_are_violations() {
        let rule = OpenPortsRule::new("r", "443,1020-1025", "500").unwrap();
        let perms = [
            perm("tcp", 443, 443, true),
            perm("tcp", 1021, 1024, true),
            perm("tcp", 1024, 1026, true),
            perm("tcp", 22, 22, false),
            perm("udp", 500, 500, true),
            perm("udp", 40_000, 40_002, true),
            perm("icmp", -1, -1, true),
        ];
        let v = violations(&rule, &perms);
        assert_eq!(v, vec![perm("tcp", 1024, 1026, true), perm("udp", 40_000, 40_002, true)]);
    }

    #[test]
    fn unrestricted_all_traffic_is_always_a_violation() {
        let rule = OpenPortsRule::new("r", "0-65535", "0-65535").unwrap();
        assert_eq!(violations(&rule, &[perm("-1", -1, -1, true)]).len(), 1);
        assert!(violations(&rule, &[perm("-1", -1, -1, false)]).is_empty());
    }

    #[test]
    fn no_parameters_means_no_port_is_authorized() {
        let rule = OpenPortsRule::new("r", "", "").unwrap();
        assert_eq!(violations(&rule, &[perm("tcp", 443, 443, true)]).len(), 1);
        assert_eq!(rule.input_parameters, "{}");
    }

    #[test]
    fn parameters_are_validated() {
        assert!(OpenPortsRule::new("r", "https", "").unwrap_err().contains("authorizedTcpPorts"));
        assert!(OpenPortsRule::new("r", "", "9-1").unwrap_err().contains("authorizedUdpPorts"));
        assert!(parse_ports("70000").is_err());
        let r = OpenPortsRule::new("r", "443", "53").unwrap();
        assert_eq!(r.input_parameters, r#"{"authorizedTcpPorts":"443","authorizedUdpPorts":"53"}"#);
    }
}
