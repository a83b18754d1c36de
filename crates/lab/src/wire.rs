//! What the lab can do to a request on the wire, for tests that must prove the product
//! survives it: **holds** (a chosen request is stopped, before it reaches the emulator or
//! after the emulator applied it, so a test can kill the caller at exactly that point) and
//! **random faults** (throttling, 5xx, dropped connections, answers slower than the SDK's
//! attempt timeout), with counts by kind and service.
//!
//! Neither needs anything in the product: the product talks to the lab as it talks to AWS.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{oneshot, watch};

/// Where a request is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Before the request is forwarded: the emulator never sees it.
    Before,
    /// After the emulator applied it, before the answer reaches the caller.
    After,
}

/// Which request to hold: the `nth` (from 1) request, counted from when the hold is armed,
/// whose IAM action is `action`, and if given, whose caller is `access_key` and whose
/// decoded body contains `contains`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldSpec {
    pub action: String,
    #[serde(default)]
    pub access_key: Option<String>,
    #[serde(default)]
    pub contains: Option<String>,
    #[serde(default = "first")]
    pub nth: u32,
    pub phase: Phase,
}

fn first() -> u32 {
    1
}

impl std::str::FromStr for HoldSpec {
    type Err = String;

    /// `ACTION[#N][:before|:after]`, e.g. `ec2:AuthorizeSecurityGroupIngress#2:after`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "`{s}` is not a hold; expected SERVICE:Operation[#N][:before|:after], e.g. ec2:AuthorizeSecurityGroupIngress#1:after"
            )
        };
        let (rest, phase) = match s.rsplit_once(':') {
            Some((rest, "before")) => (rest, Phase::Before),
            Some((rest, "after")) => (rest, Phase::After),
            _ => (s, Phase::Before),
        };
        let (action, nth) = match rest.split_once('#') {
            Some((a, n)) => (a, n.parse::<u32>().ok().filter(|n| *n >= 1).ok_or_else(bad)?),
            None => (rest, 1),
        };
        let (service, operation) = action.split_once(':').ok_or_else(bad)?;
        if service.is_empty() || operation.is_empty() || operation.contains(':') {
            return Err(bad());
        }
        Ok(HoldSpec { action: action.to_string(), access_key: None, contains: None, nth, phase })
    }
}

/// A request as a hold reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeldRequest {
    pub action: String,
    pub access_key: String,
    /// The emulator's HTTP status, for a request held after it was applied.
    pub status: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum HoldState {
    Armed { seen: u32 },
    Holding { request: HeldRequest },
    Released { request: HeldRequest },
}

struct Hold {
    spec: HoldSpec,
    state: watch::Sender<HoldState>,
    release: Option<oneshot::Sender<()>>,
}

/// The holds armed on the lab.
#[derive(Default)]
pub struct Holds {
    holds: Mutex<Vec<Hold>>,
}

/// A request the lab is holding: wait on it, then drop the connection.
pub struct Held {
    pub id: usize,
    release: oneshot::Receiver<()>,
}

impl Held {
    /// Resolves when the hold is released (or the lab is shutting down).
    pub async fn until_released(self) {
        let _ = self.release.await;
    }
}

/// What `contains` is matched against: the decoded body, then one `key=value` line per
/// tag the request carries (`Tag.N.Key` / `Tag.N.Value`), so that `chaoslingr:recorded=true`
/// singles out the CreateTags that writes that tag.
pub fn searchable(body: &[u8]) -> String {
    let text = decoded_body(body);
    let mut keys = BTreeMap::new();
    let mut values = BTreeMap::new();
    for pair in text.split('&') {
        let Some((k, v)) = pair.split_once('=') else { continue };
        let Some(rest) = k.strip_prefix("Tag.") else { continue };
        if let Some(n) = rest.strip_suffix(".Key") {
            keys.insert(n.to_string(), v.to_string());
        } else if let Some(n) = rest.strip_suffix(".Value") {
            values.insert(n.to_string(), v.to_string());
        }
    }
    let mut out = text;
    for (n, k) in keys {
        out.push('\n');
        out.push_str(&k);
        out.push('=');
        out.push_str(values.get(&n).map(String::as_str).unwrap_or_default());
    }
    out
}

/// The decoded text of a form body: `%3A` -> `:`, `+` -> space.
pub fn decoded_body(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Holds {
    /// Arms a hold; returns its id.
    pub fn arm(&self, spec: HoldSpec) -> usize {
        let mut holds = self.holds.lock().expect("holds lock");
        let (state, _) = watch::channel(HoldState::Armed { seen: 0 });
        holds.push(Hold { spec, state, release: None });
        holds.len()
    }

    /// The hold `id`'s state, or `None` when there is no such hold.
    pub fn state(&self, id: usize) -> Option<HoldState> {
        let holds = self.holds.lock().expect("holds lock");
        holds.get(id.checked_sub(1)?).map(|h| h.state.borrow().clone())
    }

    /// Waits until hold `id` holds a request (or was released), at most `limit`.
    pub async fn wait_holding(&self, id: usize, limit: Duration) -> Option<HoldState> {
        let mut rx = {
            let holds = self.holds.lock().expect("holds lock");
            holds.get(id.checked_sub(1)?)?.state.subscribe()
        };
        let _ = tokio::time::timeout(limit, rx.wait_for(|s| !matches!(s, HoldState::Armed { .. }))).await;
        let state = rx.borrow().clone();
        Some(state)
    }

    /// Releases hold `id`: its connection is dropped, the request never answered.
    pub fn release(&self, id: usize) -> Option<HoldState> {
        let mut holds = self.holds.lock().expect("holds lock");
        let hold = holds.get_mut(id.checked_sub(1)?)?;
        if let Some(tx) = hold.release.take() {
            let _ = tx.send(());
        }
        hold.state.send_modify(|s| {
            if let HoldState::Holding { request } = s {
                *s = HoldState::Released { request: request.clone() };
            }
        });
        let state = hold.state.borrow().clone();
        Some(state)
    }

    /// Whether this request is to be held at `phase`: the first armed hold it matches
    /// counts it, and takes it when it is that hold's `nth`.
    pub fn take(&self, phase: Phase, access_key: &str, action: &str, body: &[u8], status: Option<u16>) -> Option<Held> {
        let mut holds = self.holds.lock().expect("holds lock");
        let mut decoded: Option<String> = None;
        for (i, hold) in holds.iter_mut().enumerate() {
            let seen = match &*hold.state.borrow() {
                HoldState::Armed { seen } => *seen,
                _ => continue,
            };
            let spec = &hold.spec;
            if spec.phase != phase || spec.action != action {
                continue;
            }
            if spec.access_key.as_deref().is_some_and(|k| k != access_key) {
                continue;
            }
            if let Some(needle) = &spec.contains {
                let text = decoded.get_or_insert_with(|| searchable(body));
                if !text.contains(needle.as_str()) {
                    continue;
                }
            }
            let seen = seen + 1;
            if seen < spec.nth {
                hold.state.send_replace(HoldState::Armed { seen });
                return None;
            }
            let (tx, rx) = oneshot::channel();
            hold.release = Some(tx);
            let request = HeldRequest { action: action.to_string(), access_key: access_key.to_string(), status };
            hold.state.send_replace(HoldState::Holding { request });
            return Some(Held { id: i + 1, release: rx });
        }
        None
    }
}

// ---- random faults ----------------------------------------------------------------------

/// A fault on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WireFault {
    /// The service's throttling error; the request is not applied.
    Throttle,
    /// HTTP 5xx; the request is not applied.
    Error,
    /// The connection is closed without an answer: half of them before the request is
    /// forwarded, half after the emulator applied it.
    Drop,
    /// The request is applied, and the answer is sent only after `slow` (longer than the
    /// SDK's attempt timeout, so the caller has given up and retried).
    Slow,
}

impl WireFault {
    pub const ALL: [WireFault; 4] = [WireFault::Throttle, WireFault::Error, WireFault::Drop, WireFault::Slow];

    pub fn name(self) -> &'static str {
        match self {
            WireFault::Throttle => "throttle",
            WireFault::Error => "error",
            WireFault::Drop => "drop",
            WireFault::Slow => "slow",
        }
    }
}

impl std::str::FromStr for WireFault {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        WireFault::ALL
            .into_iter()
            .find(|k| k.name() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| format!("`{s}` is not a wire fault; expected throttle, error, drop or slow"))
    }
}

/// What to inject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultPlan {
    /// The probability that a request gets a fault, 0.0 to 1.0.
    pub rate: f64,
    /// The kinds to choose from, uniformly.
    pub kinds: Vec<WireFault>,
    /// How long a `slow` answer takes.
    #[serde(with = "secs_f64")]
    pub slow: Duration,
    /// Only requests of these access keys get faults; empty means every caller.
    #[serde(default)]
    pub access_keys: Vec<String>,
    pub seed: u64,
}

mod secs_f64 {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

impl FaultPlan {
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.rate) {
            return Err(format!("the fault rate {} is not between 0 and 1", self.rate));
        }
        if self.rate > 0.0 && self.kinds.is_empty() {
            return Err("a fault rate above 0 needs at least one kind".into());
        }
        Ok(())
    }
}

/// What was injected, by service and kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FaultCounts {
    pub requests: u64,
    /// service -> kind -> count.
    pub injected: BTreeMap<String, BTreeMap<String, u64>>,
    /// Faults whose request the emulator applied (a dropped answer, a slow answer).
    pub applied: u64,
}

/// The decision for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Pass,
    Throttle,
    Error,
    DropBefore,
    DropAfter,
    Slow(Duration),
}

/// Random faults, reproducible from the plan's seed (for one order of requests).
pub struct Faults {
    inner: Mutex<FaultsInner>,
}

struct FaultsInner {
    plan: Option<FaultPlan>,
    rng: u64,
    counts: FaultCounts,
}

/// splitmix64: small, fast, and good enough to spread faults.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn unit(state: &mut u64) -> f64 {
    (next(state) >> 11) as f64 / (1u64 << 53) as f64
}

impl Default for Faults {
    fn default() -> Self {
        Faults { inner: Mutex::new(FaultsInner { plan: None, rng: 0, counts: FaultCounts::default() }) }
    }
}

impl Faults {
    /// Replaces the plan (`None` stops injecting); counts are kept.
    pub fn set(&self, plan: Option<FaultPlan>) -> Result<(), String> {
        if let Some(p) = &plan {
            p.validate()?;
        }
        let mut inner = self.inner.lock().expect("faults lock");
        inner.rng = plan.as_ref().map(|p| p.seed).unwrap_or(0);
        inner.plan = plan;
        Ok(())
    }

    pub fn plan(&self) -> Option<FaultPlan> {
        self.inner.lock().expect("faults lock").plan.clone()
    }

    pub fn counts(&self) -> FaultCounts {
        self.inner.lock().expect("faults lock").counts.clone()
    }

    /// Decides the fate of one request of `access_key` to `service`, and counts it.
    pub fn decide(&self, service: &str, access_key: &str) -> Decision {
        let mut inner = self.inner.lock().expect("faults lock");
        let FaultsInner { plan, rng, counts } = &mut *inner;
        let Some(plan) = plan.as_ref() else { return Decision::Pass };
        if !plan.access_keys.is_empty() && !plan.access_keys.iter().any(|k| k == access_key) {
            return Decision::Pass;
        }
        counts.requests += 1;
        if plan.rate <= 0.0 || unit(rng) >= plan.rate {
            return Decision::Pass;
        }
        let kind = plan.kinds[(next(rng) % plan.kinds.len() as u64) as usize];
        let decision = match kind {
            WireFault::Throttle => Decision::Throttle,
            WireFault::Error => Decision::Error,
            WireFault::Drop if next(rng) % 2 == 0 => Decision::DropBefore,
            WireFault::Drop => Decision::DropAfter,
            WireFault::Slow => Decision::Slow(plan.slow),
        };
        if matches!(decision, Decision::DropAfter | Decision::Slow(_)) {
            counts.applied += 1;
        }
        *counts.injected.entry(service.to_string()).or_default().entry(kind.name().to_string()).or_default() += 1;
        decision
    }
}

/// The answer a service gives when it throttles (`throttle`) or fails (`!throttle`):
/// status, content type, `x-amzn-errortype`, body.
pub fn fault_answer(
    protocol: crate::iam::Protocol,
    throttle: bool,
) -> (u16, &'static str, Option<&'static str>, String) {
    use crate::iam::Protocol;
    let message = "injected by chaoslingr-lab";
    match protocol {
        Protocol::Ec2 => {
            let (status, code) = if throttle { (503, "RequestLimitExceeded") } else { (500, "InternalError") };
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>chaoslingr-lab</RequestID></Response>"
            );
            (status, "text/xml;charset=UTF-8", None, body)
        }
        Protocol::Sns | Protocol::CloudWatch | Protocol::Sts | Protocol::Query => {
            let (status, kind, code) = match (throttle, protocol) {
                (true, _) => (400, "Sender", "Throttling"),
                (false, Protocol::Sns) => (500, "Receiver", "InternalError"),
                (false, _) => (500, "Receiver", "InternalFailure"),
            };
            let body = format!(
                "<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>chaoslingr-lab</RequestId></ErrorResponse>"
            );
            (status, "text/xml", None, body)
        }
        Protocol::Json => {
            let (status, code) = if throttle { (400, "ThrottlingException") } else { (500, "InternalServerException") };
            let body = serde_json::json!({"__type": code, "message": message}).to_string();
            (status, "application/x-amz-json-1.1", Some(code), body)
        }
        Protocol::RestJson => {
            let (status, code) = if throttle { (429, "TooManyRequestsException") } else { (500, "InternalException") };
            let body = serde_json::json!({"Message": message, "Code": code}).to_string();
            (status, "application/json", Some(code), body)
        }
        Protocol::S3 => {
            let (status, code) = if throttle { (503, "SlowDown") } else { (500, "InternalError") };
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>chaoslingr-lab</RequestId></Error>"
            );
            (status, "application/xml", None, body)
        }
    }
}

/// The admin API's answers, as JSON.
pub fn hold_json(id: usize, state: &HoldState) -> Value {
    let mut v = serde_json::to_value(state).unwrap_or(Value::Null);
    v["id"] = id.into();
    v
}

/// A timestamp for the lab's "holding" lines.
pub fn now_rfc3339() -> String {
    aws_smithy_types::DateTime::from(SystemTime::now())
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_parse_from_the_flag() {
        let h: HoldSpec = "ec2:AuthorizeSecurityGroupIngress#2:after".parse().unwrap();
        assert_eq!((h.action.as_str(), h.nth, h.phase), ("ec2:AuthorizeSecurityGroupIngress", 2, Phase::After));
        let h: HoldSpec = "sns:Publish".parse().unwrap();
        assert_eq!((h.nth, h.phase), (1, Phase::Before));
        for bad in ["Publish", "sns:Publish#0", "sns:Publish#x", ":Publish", "sns:"] {
            assert!(bad.parse::<HoldSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_nth_matching_request_is_held_and_others_pass() {
        let holds = Holds::default();
        let id = holds.arm(HoldSpec {
            action: "ec2:CreateTags".into(),
            access_key: Some("AKIDJUDGE".into()),
            contains: Some("chaoslingr:recorded=true".into()),
            nth: 2,
            phase: Phase::After,
        });
        let body = b"Action=CreateTags&Tag.1.Key=chaoslingr%3Arecorded&Tag.1.Value=true";
        // wrong phase, key, action, body: not counted
        assert!(holds.take(Phase::Before, "AKIDJUDGE", "ec2:CreateTags", body, None).is_none());
        assert!(holds.take(Phase::After, "AKIDINJECT", "ec2:CreateTags", body, Some(200)).is_none());
        assert!(holds.take(Phase::After, "AKIDJUDGE", "ec2:DeleteTags", body, Some(200)).is_none());
        assert!(holds.take(Phase::After, "AKIDJUDGE", "ec2:CreateTags", b"Action=CreateTags", Some(200)).is_none());
        assert_eq!(holds.state(id), Some(HoldState::Armed { seen: 0 }));
        // the first match is counted, the second held
        assert!(holds.take(Phase::After, "AKIDJUDGE", "ec2:CreateTags", body, Some(200)).is_none());
        let held = holds.take(Phase::After, "AKIDJUDGE", "ec2:CreateTags", body, Some(200)).expect("held");
        assert_eq!(held.id, id);
        assert!(matches!(holds.state(id), Some(HoldState::Holding { .. })));
        // a held hold takes nothing more
        assert!(holds.take(Phase::After, "AKIDJUDGE", "ec2:CreateTags", body, Some(200)).is_none());
        assert!(matches!(holds.release(id), Some(HoldState::Released { .. })));
        assert_eq!(holds.state(99), None);
    }

    #[test]
    fn tags_are_matched_as_key_value_pairs() {
        let text = searchable(b"Action=CreateTags&Tag.1.Key=chaoslingr%3Aoutcome&Tag.1.Value=detected&Tag.2.Key=chaoslingr%3Arecorded&Tag.2.Value=counted");
        assert!(text.contains("chaoslingr:recorded=counted"), "{text}");
        assert!(text.contains("chaoslingr:outcome=detected"), "{text}");
        assert!(!text.contains("chaoslingr:recorded=true"), "{text}");
    }

    #[test]
    fn form_bodies_are_decoded_for_matching() {
        assert_eq!(
            decoded_body(b"a=chaoslingr%3Aexperiment-id&b=x+y&c=%zz&d=%4"),
            "a=chaoslingr:experiment-id&b=x y&c=%zz&d=%4"
        );
    }

    #[test]
    fn faults_follow_the_rate_and_are_counted_by_service_and_kind() {
        let faults = Faults::default();
        assert_eq!(faults.decide("ec2", "K"), Decision::Pass);
        assert!(faults
            .set(Some(FaultPlan {
                rate: 1.5,
                kinds: WireFault::ALL.to_vec(),
                slow: Duration::from_secs(1),
                access_keys: vec![],
                seed: 1
            }))
            .is_err());
        faults
            .set(Some(FaultPlan {
                rate: 0.25,
                kinds: WireFault::ALL.to_vec(),
                slow: Duration::from_secs(3),
                access_keys: vec!["K".into()],
                seed: 7,
            }))
            .unwrap();
        let mut faulted = 0;
        for _ in 0..4000 {
            if faults.decide("ec2", "K") != Decision::Pass {
                faulted += 1;
            }
            assert_eq!(faults.decide("ec2", "OTHER"), Decision::Pass);
        }
        assert!((800..1200).contains(&faulted), "{faulted} of 4000 at rate 0.25");
        let counts = faults.counts();
        assert_eq!(counts.requests, 4000);
        let ec2 = &counts.injected["ec2"];
        assert_eq!(ec2.values().sum::<u64>(), faulted);
        for kind in ["throttle", "error", "drop", "slow"] {
            assert!(ec2[kind] > 150, "{kind}: {ec2:?}");
        }
        assert!(counts.applied >= ec2["slow"]);
    }
}
