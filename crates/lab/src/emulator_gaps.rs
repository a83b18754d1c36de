//! Where the emulator (moto 5.2) answers network-ACL calls unlike AWS, the lab answers as
//! AWS does, so the product is tested against AWS's behaviour rather than the emulator's:
//!
//! - `DescribeNetworkAcls` with the filter `network-acl-id`: moto fails with HTTP 500
//!   (filter not implemented). The lab asks for those ACLs by `NetworkAclId.N` instead,
//!   keeping only the ids that exist, and answers an empty set when none does, as the
//!   filter does in AWS.
//! - `DescribeNetworkAcls` naming an ACL that does not exist: moto's error code is
//!   `InvalidRouteTableID.NotFound`; AWS's is `InvalidNetworkAclID.NotFound`.
//! - `DeleteNetworkAclEntry` of an entry that does not exist: moto fails with HTTP 500;
//!   AWS answers 400 `InvalidNetworkAclEntry.NotFound`, which a revert reads as "already
//!   gone".

use std::collections::BTreeSet;

use crate::iam::Params;

/// The filter moto does not implement.
const ACL_ID_FILTER: &str = "network-acl-id";

/// For a `DescribeNetworkAcls` with the `network-acl-id` filter: the ids it asks for, and
/// the other parameters with that filter taken out (the remaining filters renumbered from
/// 1, as the emulator reads them until the first gap).
pub fn acl_id_filter(params: &Params) -> Option<(Vec<String>, Params)> {
    let filter_of = |k: &str| -> Option<(u32, String)> {
        let rest = k.strip_prefix("Filter.")?;
        let (n, field) = rest.split_once('.')?;
        Some((n.parse().ok()?, field.to_string()))
    };
    let index = params.iter().find_map(|(k, v)| {
        let (n, field) = filter_of(k)?;
        (field == "Name" && v == ACL_ID_FILTER).then_some(n)
    })?;
    let mut ids = Vec::new();
    let mut others: Vec<u32> = Vec::new();
    for (k, v) in params {
        if let Some((n, field)) = filter_of(k) {
            if n == index {
                if field.starts_with("Value.") {
                    ids.push(v.clone());
                }
            } else if !others.contains(&n) {
                others.push(n);
            }
        }
    }
    others.sort_unstable();
    let rest = params
        .iter()
        .filter_map(|(k, v)| match filter_of(k) {
            None => Some((k.clone(), v.clone())),
            Some((n, _)) if n == index => None,
            Some((n, field)) => {
                let new = others.iter().position(|o| *o == n).expect("listed") + 1;
                Some((format!("Filter.{new}.{field}"), v.clone()))
            }
        })
        .collect();
    Some((ids, rest))
}

/// The ids of the ACLs an emulator answer lists (`<networkAclId>`).
pub fn listed_acl_ids(xml: &str) -> BTreeSet<String> {
    xml.split("<networkAclId>").skip(1).filter_map(|rest| rest.split('<').next()).map(String::from).collect()
}

/// `params` asking for exactly `ids` by `NetworkAclId.N` (intersected with any it already
/// named), as a form body; `None` when that leaves no id (the filter matches nothing).
pub fn by_ids(params: &Params, ids: &[String]) -> Option<String> {
    let named: Vec<&String> = params.iter().filter(|(k, _)| k.starts_with("NetworkAclId.")).map(|(_, v)| v).collect();
    let ids: Vec<&String> = ids.iter().filter(|id| named.is_empty() || named.contains(id)).collect();
    if ids.is_empty() {
        return None;
    }
    let mut pairs: Vec<(String, String)> =
        params.iter().filter(|(k, _)| !k.starts_with("NetworkAclId.")).cloned().collect();
    pairs.extend(ids.iter().enumerate().map(|(i, id)| (format!("NetworkAclId.{}", i + 1), id.to_string())));
    Some(pairs.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&"))
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `DescribeNetworkAcls`' answer when the filter matches nothing.
pub fn no_acls_answer(request_id: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DescribeNetworkAclsResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>{request_id}</requestId><networkAclSet/></DescribeNetworkAclsResponse>"
    )
}

/// AWS's error for an entry that does not exist.
pub fn missing_entry_answer(params: &Params, request_id: &str) -> String {
    let rule = params.iter().find(|(k, _)| k == "RuleNumber").map(|(_, v)| v.as_str()).unwrap_or("?");
    let egress = params.iter().any(|(k, v)| k == "Egress" && v == "true");
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>InvalidNetworkAclEntry.NotFound</Code><Message>The network acl entry identified by {rule} ({}) does not exist.</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>",
        if egress { "egress" } else { "ingress" }
    )
}

/// The emulator's not-found answer for `DescribeNetworkAcls` with AWS's error code, or
/// `None` when it is another answer.
pub fn acl_not_found(body: &str) -> Option<String> {
    body.contains("<Code>InvalidRouteTableID.NotFound</Code>").then(|| {
        body.replace("InvalidRouteTableID.NotFound", "InvalidNetworkAclID.NotFound")
            .replace("The routeTable ID", "The networkAcl ID")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iam::form_params;

    #[test]
    fn the_acl_id_filter_becomes_ids_and_other_filters_stay() {
        // GIVEN a read by tag key and by id, the id filter in the middle
        let p = form_params(
            "Action=DescribeNetworkAcls&Version=2016-11-15&Filter.1.Name=tag-key&Filter.1.Value.1=chaoslingr%3Aopt-in\
             &Filter.2.Name=network-acl-id&Filter.2.Value.1=acl-1&Filter.2.Value.2=acl-2\
             &Filter.3.Name=vpc-id&Filter.3.Value.1=vpc-9",
        );
        let (ids, rest) = acl_id_filter(&p).expect("has the filter");
        assert_eq!(ids, vec!["acl-1".to_string(), "acl-2".to_string()]);
        // WHEN only acl-2 exists
        let body = by_ids(&rest, &["acl-2".to_string()]).unwrap();
        // THEN the request names it by id, and the other filters are numbered without a gap
        assert_eq!(
            body,
            "Action=DescribeNetworkAcls&Version=2016-11-15&Filter.1.Name=tag-key&Filter.1.Value.1=chaoslingr%3Aopt-in\
             &Filter.2.Name=vpc-id&Filter.2.Value.1=vpc-9&NetworkAclId.1=acl-2"
        );
        assert!(acl_id_filter(&form_params("Action=DescribeNetworkAcls&Filter.1.Name=tag-key")).is_none());
    }

    #[test]
    fn ids_already_named_narrow_the_filter() {
        let p = form_params("Action=DescribeNetworkAcls&NetworkAclId.1=acl-1&Filter.1.Name=network-acl-id&Filter.1.Value.1=acl-1&Filter.1.Value.2=acl-3");
        let (ids, rest) = acl_id_filter(&p).unwrap();
        assert_eq!(by_ids(&rest, &ids).unwrap(), "Action=DescribeNetworkAcls&NetworkAclId.1=acl-1");
        assert_eq!(by_ids(&rest, &["acl-3".to_string()]), None, "acl-3 is not among the named");
        assert_eq!(by_ids(&rest, &[]), None);
    }

    #[test]
    fn emulator_answers_are_read_and_corrected() {
        let xml = "<networkAclSet><item><networkAclId>acl-1</networkAclId><associationSet><item><networkAclId>acl-1</networkAclId></item></associationSet></item><item><networkAclId>acl-2</networkAclId></item></networkAclSet>";
        assert_eq!(listed_acl_ids(xml), ["acl-1".to_string(), "acl-2".to_string()].into_iter().collect());
        assert!(no_acls_answer("r").contains("<networkAclSet/>"));
        let moto = "<Response><Errors><Error><Code>InvalidRouteTableID.NotFound</Code><Message>The routeTable ID 'acl-9' does not exist</Message></Error></Errors></Response>";
        let fixed = acl_not_found(moto).unwrap();
        assert!(
            fixed.contains("<Code>InvalidNetworkAclID.NotFound</Code>") && fixed.contains("The networkAcl ID 'acl-9'")
        );
        assert_eq!(acl_not_found("<Code>Other</Code>"), None);
        let p = form_params("Action=DeleteNetworkAclEntry&NetworkAclId=acl-1&RuleNumber=120&Egress=false");
        assert!(missing_entry_answer(&p, "r").contains("<Code>InvalidNetworkAclEntry.NotFound</Code>"));
    }
}
