//! Many accounts: `sts:AssumeRole` through the lab.
//!
//! A hub assumes a role in each target account and acts there with the temporary
//! credentials it gets back. The lab watches those answers go by and remembers which access
//! key belongs to which role (so the call log, and IAM enforcement, know that a call was
//! made by `arn:aws:iam::111111111111:role/chaoslingr-target` in account 111111111111),
//! and it can refuse `AssumeRole` into chosen accounts (`--deny-assume-role`,
//! `PUT /_lab/assume-role-denials`), as STS does when the role is missing or does not
//! trust the caller: the emulator itself never refuses an `AssumeRole`.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use serde::Serialize;

/// The parts of an IAM role ARN, `arn:PARTITION:iam::ACCOUNT:role[/PATH]/NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleArn {
    pub partition: String,
    pub account: String,
    /// The role's name, without its path (what an assumed-role ARN names).
    pub name: String,
}

/// Parses an IAM role ARN; `None` for anything else.
pub fn parse_role_arn(arn: &str) -> Option<RoleArn> {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("iam"), Some(""), Some(account), Some(resource)) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let path_and_name = resource.strip_prefix("role/")?;
    let name = path_and_name.rsplit('/').next().filter(|n| !n.is_empty())?;
    if partition.is_empty() || validate_account(account).is_err() {
        return None;
    }
    Some(RoleArn { partition: partition.to_string(), account: account.to_string(), name: name.to_string() })
}

/// An AWS account id: exactly 12 digits.
pub fn validate_account(account: &str) -> Result<String, String> {
    let account = account.trim();
    if account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) {
        Ok(account.to_string())
    } else {
        Err(format!("`{account}` is not an AWS account id (12 digits, e.g. 111111111111)"))
    }
}

/// Temporary credentials an `AssumeRole` handed out: the role they act as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AssumedRole {
    /// `arn:aws:iam::111111111111:role/chaoslingr-target`, as the request named it.
    pub role_arn: String,
    /// The account the credentials act in (the role's).
    pub account: String,
    pub partition: String,
    /// The session's principal, `arn:aws:sts::111111111111:assumed-role/NAME/SESSION`.
    pub arn: String,
}

/// The access key id and the assumed-role ARN of an `AssumeRole` answer (XML, query
/// protocol, or the same fields in JSON): `<Credentials><AccessKeyId>` and
/// `<AssumedRoleUser><Arn>`. `None` when there are no credentials in it.
pub fn parse_assume_role_answer(xml: &str) -> Option<(String, Option<String>)> {
    if xml.trim_start().starts_with('{') {
        // The JSON protocol's answer has the same shape.
        let v: serde_json::Value = serde_json::from_str(xml).ok()?;
        let v = v.get("AssumeRoleResult").unwrap_or(&v);
        let key = v["Credentials"]["AccessKeyId"].as_str().filter(|k| !k.trim().is_empty())?;
        let arn = v["AssumedRoleUser"]["Arn"].as_str().map(String::from);
        return Some((key.trim().to_string(), arn));
    }
    let credentials = element(xml, "Credentials")?;
    let key = element(credentials, "AccessKeyId").map(xml_unescape).filter(|k| !k.trim().is_empty())?;
    let arn = element(xml, "AssumedRoleUser").and_then(|u| element(u, "Arn")).map(xml_unescape);
    Some((key.trim().to_string(), arn.map(|a| a.trim().to_string())))
}

/// The text between `<name>` (or `<name attr..>`) and `</name>`, the first such element.
fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let mut from = 0;
    while let Some(at) = xml[from..].find(&format!("<{name}")) {
        let start = from + at + name.len() + 1;
        let rest = &xml[start..];
        match rest.chars().next() {
            Some('>') => {
                let body = &rest[1..];
                return body.find(&format!("</{name}>")).map(|end| &body[..end]);
            }
            Some(c) if c.is_whitespace() => {
                let open = rest.find('>')?;
                let body = &rest[open + 1..];
                return body.find(&format!("</{name}>")).map(|end| &body[..end]);
            }
            _ => from = start,
        }
    }
    None
}

fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&amp;", "&")
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}

/// STS's answer to an `AssumeRole` it refuses (the role is missing, or its trust policy
/// does not trust `caller`): status, content type and body.
pub fn denied_answer(caller: &str, role_arn: &str, request_id: &str) -> (u16, &'static str, String) {
    let message = format!("User: {caller} is not authorized to perform: sts:AssumeRole on resource: {role_arn}");
    let body = format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
        xml_escape(&message),
        xml_escape(request_id)
    );
    (403, "text/xml", body)
}

/// The same refusal for a JSON-protocol STS request (`X-Amz-Target`).
pub fn denied_json_answer(caller: &str, role_arn: &str) -> (u16, &'static str, String) {
    let message = format!("User: {caller} is not authorized to perform: sts:AssumeRole on resource: {role_arn}");
    (400, "application/x-amz-json-1.0", serde_json::json!({"__type": "AccessDenied", "message": message}).to_string())
}

/// The accounts whose roles cannot be assumed, and the credentials handed out so far.
#[derive(Debug, Default)]
pub struct Roles {
    denied: Mutex<BTreeSet<String>>,
    sessions: Mutex<HashMap<String, AssumedRole>>,
}

impl Roles {
    /// Replaces the accounts whose roles `AssumeRole` refuses; every one is checked first
    /// (nothing changes when one is not an account id). Answers the new set.
    pub fn set_denied<I, S>(&self, accounts: I) -> Result<Vec<String>, String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let set = accounts.into_iter().map(|a| validate_account(a.as_ref())).collect::<Result<BTreeSet<_>, _>>()?;
        let list = set.iter().cloned().collect();
        *self.denied.lock().expect("denials lock") = set;
        Ok(list)
    }

    /// The accounts whose roles `AssumeRole` refuses, sorted.
    pub fn denied(&self) -> Vec<String> {
        self.denied.lock().expect("denials lock").iter().cloned().collect()
    }

    /// Whether `AssumeRole` of this role ARN is refused (its account is denied).
    pub fn refuses(&self, role_arn: &str) -> bool {
        parse_role_arn(role_arn).is_some_and(|r| self.denied.lock().expect("denials lock").contains(&r.account))
    }

    /// Remembers the credentials of a successful `AssumeRole` of `role_arn` (the request's
    /// `RoleArn`) with `session_name` (its `RoleSessionName`) from the answer's XML.
    /// Answers the access key and role, or `None` when either cannot be read.
    pub fn remember(&self, role_arn: &str, session_name: &str, answer: &str) -> Option<(String, AssumedRole)> {
        let role = parse_role_arn(role_arn)?;
        let (key, arn) = parse_assume_role_answer(answer)?;
        let arn = arn.filter(|a| !a.is_empty()).unwrap_or_else(|| {
            format!("arn:{}:sts::{}:assumed-role/{}/{session_name}", role.partition, role.account, role.name)
        });
        let assumed =
            AssumedRole { role_arn: role_arn.to_string(), account: role.account, partition: role.partition, arn };
        self.sessions.lock().expect("sessions lock").insert(key.clone(), assumed.clone());
        Some((key, assumed))
    }

    /// The role an access key acts as, if an `AssumeRole` handed it out.
    pub fn session(&self, access_key: &str) -> Option<AssumedRole> {
        self.sessions.lock().expect("sessions lock").get(access_key).cloned()
    }

    /// Every access key handed out, with its role, by access key.
    pub fn sessions(&self) -> Vec<(String, AssumedRole)> {
        let mut all: Vec<_> =
            self.sessions.lock().expect("sessions lock").iter().map(|(k, r)| (k.clone(), r.clone())).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// moto_server 5.2.5's answer to `AssumeRole` of
    /// `arn:aws:iam::111111111111:role/chaoslingr-target` with session `chaoslingr-hub`.
    pub(crate) const MOTO_ANSWER: &str = r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult><Credentials><AccessKeyId>ASIARTXV5AHDTGQIW5FB</AccessKeyId><SecretAccessKey>ZIsssImCKX7gPQUva23SeJ5H7C6mU7Tsw6z4OTCG</SecretAccessKey><SessionToken>FQoGZXIvYXdzEBYaDM7TgvAGMoRtfjiyT34t8vpDKhMIrGhAxmO5vskeouSVZGL29s7Niatf8vqc1vVdTnMddzqOWiDJVTa/jIdbjNuWZ6FMSm/s+PmXlaDTOgWvPCnrhptsOwjR4q7VnST8VRXyWQX4OtqTquVG4uYIq4tmeB+e0KNjqXEOFYWrJmRzkwakO0Ei8ae+QGoYDIW7h2Vd9EVxWTBMfa3Ch+3T3HIOuf/CMYThqyikzmoy/Nww8CydMS7n3l3t8q4sg8S0Q7Zg861qGOYI9ZO1F1DY5S3bFMchgroatMkBAkISssKPPMGNUj5cPHqKcTdbLrYjnfQYjUICw5Jva7aYCqI=</SessionToken><Expiration>2026-12-02T23:37:34.978692Z</Expiration></Credentials><AssumedRoleUser><AssumedRoleId>AROA3X42LBCDCCQQPCLA9:chaoslingr-hub</AssumedRoleId><Arn>arn:aws:sts::111111111111:assumed-role/chaoslingr-target/chaoslingr-hub</Arn></AssumedRoleUser><PackedPolicySize>6</PackedPolicySize></AssumeRoleResult><ResponseMetadata><RequestId>orUdxZFN0KqAiGHHOkF2yhUpU1RAilI2vv3TF5uQpJsUMlsfKrc9</RequestId></ResponseMetadata></AssumeRoleResponse>"#;

    const ROLE: &str = "arn:aws:iam::111111111111:role/chaoslingr-target";

    #[test]
    fn role_arns_name_their_account_and_role() {
        assert_eq!(
            parse_role_arn(ROLE),
            Some(RoleArn { partition: "aws".into(), account: "111111111111".into(), name: "chaoslingr-target".into() })
        );
        let with_path = parse_role_arn("arn:aws-us-gov:iam::222222222222:role/ops/chaoslingr-target").unwrap();
        assert_eq!((with_path.partition.as_str(), with_path.name.as_str()), ("aws-us-gov", "chaoslingr-target"));
        for not_a_role in [
            "arn:aws:iam::111111111111:user/chaoslingr-target",
            "arn:aws:iam::11111111111:role/x",
            "arn:aws:iam::111111111111:role/",
            "arn:aws:sts::111111111111:assumed-role/chaoslingr-target/s",
            "AKIDJUDGE",
            "",
        ] {
            assert_eq!(parse_role_arn(not_a_role), None, "{not_a_role}");
        }
    }

    #[test]
    fn accounts_are_twelve_digits() {
        assert_eq!(validate_account("333333333333").as_deref(), Ok("333333333333"));
        for bad in ["33333333333", "3333333333333", "33333333333a", "", "arn:aws:iam::333333333333:root"] {
            let e = validate_account(bad).unwrap_err();
            assert!(e.contains("12 digits"), "{e}");
        }
    }

    #[test]
    fn a_moto_assume_role_answer_gives_the_key_and_the_assumed_role() {
        assert_eq!(
            parse_assume_role_answer(MOTO_ANSWER),
            Some((
                "ASIARTXV5AHDTGQIW5FB".to_string(),
                Some("arn:aws:sts::111111111111:assumed-role/chaoslingr-target/chaoslingr-hub".to_string())
            ))
        );
        assert_eq!(
            parse_assume_role_answer("<ErrorResponse><Error><Code>AccessDenied</Code></Error></ErrorResponse>"),
            None
        );
        // AccessKeyId elsewhere than in Credentials is not a credential.
        assert_eq!(parse_assume_role_answer("<X><AccessKeyId>AKID</AccessKeyId></X>"), None);
        let json = r#"{"Credentials": {"AccessKeyId": "ASIAJSON"}, "AssumedRoleUser": {"Arn": "arn:aws:sts::1:assumed-role/r/s"}}"#;
        assert_eq!(
            parse_assume_role_answer(json),
            Some(("ASIAJSON".to_string(), Some("arn:aws:sts::1:assumed-role/r/s".to_string())))
        );
    }

    #[test]
    fn remembered_keys_act_as_the_role_in_its_account() {
        let roles = Roles::default();
        let (key, role) = roles.remember(ROLE, "chaoslingr-hub", MOTO_ANSWER).unwrap();
        assert_eq!(key, "ASIARTXV5AHDTGQIW5FB");
        let expected = AssumedRole {
            role_arn: ROLE.into(),
            account: "111111111111".into(),
            partition: "aws".into(),
            arn: "arn:aws:sts::111111111111:assumed-role/chaoslingr-target/chaoslingr-hub".into(),
        };
        assert_eq!(role, expected);
        assert_eq!(roles.session("ASIARTXV5AHDTGQIW5FB"), Some(expected));
        assert_eq!(roles.session("testing"), None);
        // Without the assumed-role user in the answer, the session ARN is built.
        let bare = "<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>ASIA2</AccessKeyId></Credentials></AssumeRoleResult></AssumeRoleResponse>";
        let (_, role) = roles.remember("arn:aws:iam::222222222222:role/r", "s1", bare).unwrap();
        assert_eq!(role.arn, "arn:aws:sts::222222222222:assumed-role/r/s1");
        assert_eq!(roles.sessions().len(), 2);
        assert_eq!(roles.remember("not-a-role", "s", MOTO_ANSWER), None);
    }

    #[test]
    fn only_roles_in_denied_accounts_are_refused() {
        let roles = Roles::default();
        assert!(!roles.refuses(ROLE));
        assert_eq!(
            roles.set_denied(["333333333333", "222222222222", "333333333333"]).unwrap(),
            ["222222222222", "333333333333"]
        );
        assert!(roles.refuses("arn:aws:iam::333333333333:role/chaoslingr-target"));
        assert!(roles.refuses("arn:aws:iam::222222222222:role/other"));
        assert!(!roles.refuses(ROLE));
        assert!(!roles.refuses("arn:aws:iam::123456789012:role/chaoslingr-target"));
        assert!(!roles.refuses("garbage"));
        // A bad account changes nothing.
        assert!(roles.set_denied(["111111111111", "nope"]).is_err());
        assert_eq!(roles.denied(), ["222222222222", "333333333333"]);
        assert_eq!(roles.set_denied(Vec::<String>::new()).unwrap(), Vec::<String>::new());
        assert!(!roles.refuses("arn:aws:iam::333333333333:role/chaoslingr-target"));
    }

    #[test]
    fn a_refused_assume_role_looks_like_stss() {
        let (status, content_type, body) = denied_answer(
            "arn:aws:iam::123456789012:user/AKIDJUDGE",
            "arn:aws:iam::333333333333:role/chaoslingr-target",
            "6c3d1a0e-0000-4000-8000-000000000001",
        );
        assert_eq!((status, content_type), (403, "text/xml"));
        assert_eq!(
            body,
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>\
             <Code>AccessDenied</Code><Message>User: arn:aws:iam::123456789012:user/AKIDJUDGE is not authorized to \
             perform: sts:AssumeRole on resource: arn:aws:iam::333333333333:role/chaoslingr-target</Message></Error>\
             <RequestId>6c3d1a0e-0000-4000-8000-000000000001</RequestId></ErrorResponse>"
        );
        let (status, _, json) = denied_json_answer("u", "r");
        assert_eq!(status, 400);
        assert!(json.contains("\"__type\":\"AccessDenied\""), "{json}");
    }
}
