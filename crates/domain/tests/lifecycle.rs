//! The experiment lifecycle end to end: `Engine` driven over in-memory fakes of the
//! `ports` traits (security groups, detectors, the recorder and a clock).
//!
//! The fake clock only moves when the engine sleeps, so a 15-minute window runs in
//! microseconds and every timestamp in these tests is exact.

use std::collections::{BTreeMap, HashMap};
use std::future::{pending, Future};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use chaoslingr_domain::config::{self, Settings};
use chaoslingr_domain::detector::Detector;
use chaoslingr_domain::engine::{Engine, EngineError, Progress, RevertReport, RunEnd, RunRequest};
use chaoslingr_domain::experiment::{ExperimentRecord, PortRange, Protocol};
use chaoslingr_domain::judge::Reading;
use chaoslingr_domain::marker;
use chaoslingr_domain::outcome::{Outcome, OutcomeReport};
use chaoslingr_domain::ports::{
    AlarmState, AlarmValue, AuthorizeOutcome, CallError, Changes, Clock, DenialSource, Detectors, FailureKind,
    IngressRequest, Markers, Recorder, RevokeOutcome, Targets,
};
use chaoslingr_domain::scheduled::{InjectEnd, ORPHAN_GRACE};
use chaoslingr_domain::selection::{GroupInfo, Ineligible};
use chaoslingr_domain::tags::{self, TaggedRule};
use chaoslingr_domain::technique::{Technique, TechniqueRef};
use chaoslingr_domain::time::parse_rfc3339;
use rand::rngs::StdRng;
use rand::SeedableRng;

/// A Monday, at noon UTC.
const T0: &str = "2026-11-23T12:00:00Z";
const OPT_IN_TAG: &str = "chaoslingr:opt-in";
const ACCOUNT: &str = "123456789012";
const CONFIG_RULE: &str = "vpc-sg-open-only-to-authorized-ports";

/// The technique the fakes carry out: security groups and their rules, as `port-change`.
static PORT_CHANGE: Technique = Technique {
    name: "port-change",
    summary: "an ingress rule on a security group",
    target: "security group",
    targets: "security groups",
    target_prefix: "sg-",
    change: "ingress rule",
    change_prefix: "sgr-",
    config_resource_type: "AWS::EC2::SecurityGroup",
    arn_resource: "security-group",
    record_first: false,
};
static TECHNIQUES: [TechniqueRef; 1] = [&PORT_CHANGE];

/// A poisoned lock (a test that panicked on purpose) still holds valid fake state.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

// ---------------------------------------------------------------------------------------
// Fakes
// ---------------------------------------------------------------------------------------

/// Time that only moves when the engine sleeps.
#[derive(Clone)]
struct FakeClock(Arc<Mutex<SystemTime>>);

impl FakeClock {
    fn at(rfc3339: &str) -> Self {
        FakeClock(Arc::new(Mutex::new(parse_rfc3339(rfc3339).expect("valid timestamp"))))
    }
}

impl Clock for FakeClock {
    fn now(&self) -> SystemTime {
        *lock(&self.0)
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        let time = Arc::clone(&self.0);
        async move {
            *lock(&time) += duration;
            tokio::task::yield_now().await;
        }
    }
}

/// Security groups and their rules, with switches for the ways EC2 can misbehave.
#[derive(Default)]
struct World {
    groups: Vec<GroupInfo>,
    rules: BTreeMap<String, TaggedRule>,
    /// Every rule ever created by `authorize`, kept after it is revoked.
    created: Vec<TaggedRule>,
    /// Calls that change something, in order: `authorize sg-1`, `revoke sg-1 sgr-0001`, ...
    calls: Vec<String>,
    next_rule: u32,
    /// IAM refuses to open the port, with this attribution (an SCP's explicit deny by
    /// default).
    deny_authorize: bool,
    deny_source: Option<DenialSource>,
    /// The module's IAM, modelled: writes to a group are allowed only while it is opted in
    /// (exactly as `StringEqualsIgnoreCase` compares) or carries the experiment-id marker
    /// key, and never on the opt-in tag itself. Off only where a test says so.
    ignore_iam: bool,
    /// AWS's clock runs this far ahead of the local one (negative: behind), in seconds.
    aws_clock_offset: Option<i64>,
    /// The rule is written, then the call fails (a timeout after the write).
    fail_authorize_after_create: bool,
    /// How many revoke calls fail transiently before they start working.
    fail_revoke_times: u32,
    /// The fresh read right before injection shows the group opted out.
    opt_out_before_inject: bool,
    /// From this moment on, reads show the group's opt-in tag set to `false`.
    opt_out_at: Option<SystemTime>,
    /// Something other than ChaoSlingr removes an experiment rule this long after injection.
    remediate_after: Option<Duration>,
    /// Another starter's experiment rule appears on `sg-2` while ours is being created.
    concurrent_on_authorize: bool,
}

impl World {
    fn new_rule_id(&mut self) -> String {
        self.next_rule += 1;
        format!("sgr-{:04}", self.next_rule)
    }

    /// The module's IAM conditions for writing to `group_id` with tag keys `keys`.
    fn iam_allows(&self, group_id: &str, keys: &[&str]) -> Result<(), CallError> {
        if self.ignore_iam {
            return Ok(());
        }
        let denied = |why: &str| {
            Err(CallError::new("EC2", FailureKind::Denied, Some("UnauthorizedOperation".into()), why.to_string()))
        };
        let Some(g) = self.groups.iter().find(|g| g.id == group_id) else { return Ok(()) };
        let opted_in = g.tags.iter().any(|(k, v)| k == OPT_IN_TAG && v.to_lowercase() == "true");
        let marked = g.tags.iter().any(|(k, _)| k == tags::EXPERIMENT_ID);
        if !opted_in && !marked {
            return denied("the group is neither opted in nor marked");
        }
        if keys.iter().any(|k| *k == OPT_IN_TAG || !k.starts_with("chaoslingr:")) {
            return denied("only chaoslingr:* keys, never the opt-in key");
        }
        Ok(())
    }
}

#[derive(Clone)]
struct FakeWorld {
    state: Arc<Mutex<World>>,
    clock: FakeClock,
    trace: Trace,
}

/// Which calls were in flight together: a call that starts while none is in flight opens
/// a new round trip, one that starts while others are still waiting joins theirs. Each
/// traced call yields once before answering, so calls the engine issues together overlap.
#[derive(Clone, Default)]
struct Trace(Arc<Mutex<(usize, Rounds)>>);

type Rounds = Vec<Vec<&'static str>>;

struct InFlight(Trace);

impl Drop for InFlight {
    fn drop(&mut self) {
        lock(&(self.0).0).0 -= 1;
    }
}

impl Trace {
    async fn enter(&self, call: &'static str) -> InFlight {
        {
            let mut t = lock(&self.0);
            if t.0 == 0 {
                t.1.push(Vec::new());
            }
            t.0 += 1;
            t.1.last_mut().expect("a round").push(call);
        }
        tokio::task::yield_now().await;
        InFlight(self.clone())
    }

    /// The round trips so far, each sorted, and forgets them.
    fn take(&self) -> Rounds {
        let mut rounds = std::mem::take(&mut lock(&self.0).1);
        rounds.iter_mut().for_each(|r| r.sort_unstable());
        rounds
    }
}

impl FakeWorld {
    fn with<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        f(&mut lock(&self.state))
    }

    /// The authorize and revoke calls made so far.
    fn writes(&self) -> Vec<String> {
        self.with(|w| {
            w.calls.iter().filter(|c| c.starts_with("authorize") || c.starts_with("revoke")).cloned().collect()
        })
    }

    fn revokes(&self) -> usize {
        self.with(|w| w.calls.iter().filter(|c| c.starts_with("revoke")).count())
    }

    fn rule_ids(&self) -> Vec<String> {
        self.with(|w| w.rules.keys().cloned().collect())
    }

    fn created(&self) -> Vec<TaggedRule> {
        self.with(|w| w.created.clone())
    }

    /// Puts a rule on a group directly, as if an earlier run had: the shape and
    /// description ChaoSlingr gives its rules.
    fn plant(&self, group_id: &str, tags: Vec<(String, String)>) -> String {
        let id = tags.iter().find(|(k, _)| k == tags::EXPERIMENT_ID).map(|(_, v)| v.clone()).unwrap_or_default();
        let description = format!("ChaoSlingr experiment {id} - unauthorized by design");
        self.plant_rule(group_id, tags, "tcp", 20_000, 20_000, "0.0.0.0/0", &description)
    }

    /// Puts any rule on a group, as a person (or an attacker with tag rights) might.
    #[allow(clippy::too_many_arguments)]
    fn plant_rule(
        &self,
        group_id: &str,
        tags: Vec<(String, String)>,
        protocol: &str,
        from: i32,
        to: i32,
        cidr: &str,
        description: &str,
    ) -> String {
        self.with(|w| {
            let id = w.new_rule_id();
            let rule = TaggedRule {
                security_group_id: group_id.into(),
                security_group_rule_id: id.clone(),
                account: Some(ACCOUNT.into()),
                ip_protocol: protocol.into(),
                from_port: Some(from),
                to_port: Some(to),
                cidr: Some(cidr.into()),
                description: Some(description.into()),
                is_egress: false,
                tags,
            };
            w.rules.insert(id.clone(), rule);
            id
        })
    }
}

impl Targets for FakeWorld {
    fn techniques(&self) -> &'static [TechniqueRef] {
        &TECHNIQUES
    }

    async fn groups_with_tag_key(&self, tag_key: &str) -> Result<Vec<GroupInfo>, CallError> {
        let _call = self.trace.enter("groups").await;
        Ok(self.with(|w| w.groups.iter().filter(|g| g.tags.iter().any(|(k, _)| k == tag_key)).cloned().collect()))
    }

    async fn group(&self, group_id: &str) -> Result<Option<GroupInfo>, CallError> {
        let _call = self.trace.enter("group").await;
        Ok(self.with(|w| {
            let mut group = w.groups.iter().find(|g| g.id == group_id).cloned();
            if w.opt_out_before_inject {
                if let Some(g) = &mut group {
                    g.tags.retain(|(k, _)| k != OPT_IN_TAG);
                }
            }
            if w.opt_out_at.is_some_and(|at| self.clock.now() >= at) {
                if let Some(g) = w.groups.iter_mut().find(|g| g.id == group_id) {
                    g.tags.retain(|(k, _)| k != OPT_IN_TAG);
                    g.tags.push((OPT_IN_TAG.into(), "false".into()));
                }
                group = w.groups.iter().find(|g| g.id == group_id).cloned();
            }
            group
        }))
    }

    fn aws_time(&self) -> Option<SystemTime> {
        let offset = self.with(|w| w.aws_clock_offset)?;
        let now = self.clock.now();
        Some(if offset >= 0 { now + secs(offset as u64) } else { now - secs(offset.unsigned_abs()) })
    }
}

impl Changes for FakeWorld {
    async fn experiment_rules(&self) -> Result<Vec<TaggedRule>, CallError> {
        let _call = self.trace.enter("experiment_rules").await;
        Ok(self.with(|w| w.rules.values().filter(|r| r.tag(tags::EXPERIMENT_ID).is_some()).cloned().collect()))
    }

    async fn group_rules(&self, group_id: &str) -> Result<Vec<TaggedRule>, CallError> {
        let _call = self.trace.enter("group_rules").await;
        Ok(self.with(|w| w.rules.values().filter(|r| r.security_group_id == group_id).cloned().collect()))
    }

    async fn rule(&self, rule_id: &str) -> Result<Option<TaggedRule>, CallError> {
        let _call = self.trace.enter("rule").await;
        let now = self.clock.now();
        Ok(self.with(|w| {
            if let (Some(after), Some(rule)) = (w.remediate_after, w.rules.get(rule_id)) {
                let injected = rule.tag(tags::INJECTED_AT).and_then(parse_rfc3339);
                if injected.is_some_and(|at| now >= at + after) {
                    w.rules.remove(rule_id);
                    w.calls.push(format!("remediated {rule_id}"));
                }
            }
            w.rules.get(rule_id).cloned()
        }))
    }

    async fn authorize(&self, request: &IngressRequest) -> Result<AuthorizeOutcome, CallError> {
        let _call = self.trace.enter("authorize").await;
        self.with(|w| {
            let dry = if request.dry_run { "(dry-run)" } else { "" };
            w.calls.push(format!("authorize{dry} {}", request.security_group_id));
            if w.deny_authorize {
                return Ok(AuthorizeOutcome::Denied {
                    code: "UnauthorizedOperation".into(),
                    message: "You are not authorized to perform this operation.".into(),
                    source: w.deny_source.clone().unwrap_or(DenialSource::ExplicitDeny),
                });
            }
            let Some(group) = w.groups.iter().find(|g| g.id == request.security_group_id) else {
                return Err(CallError::new(
                    "AuthorizeSecurityGroupIngress",
                    FailureKind::NotFound,
                    Some("InvalidGroup.NotFound".into()),
                    format!("{} does not exist", request.security_group_id),
                ));
            };
            if request.dry_run {
                return Ok(AuthorizeOutcome::WouldSucceed);
            }
            let account = group.owner_id.clone();
            let rule_id = w.new_rule_id();
            let rule = TaggedRule {
                security_group_id: request.security_group_id.clone(),
                security_group_rule_id: rule_id.clone(),
                account,
                ip_protocol: request.protocol.to_string(),
                from_port: Some(i32::from(request.ports.from)),
                to_port: Some(i32::from(request.ports.to)),
                cidr: Some(request.cidr.clone()),
                description: Some(request.description.clone()),
                is_egress: false,
                tags: request.tags.clone(),
            };
            w.rules.insert(rule_id.clone(), rule.clone());
            w.created.push(rule);
            if w.concurrent_on_authorize {
                let other = w.new_rule_id();
                let mut theirs = w.created.last().cloned().expect("just created");
                theirs.security_group_id = "sg-2".into();
                theirs.security_group_rule_id = other.clone();
                theirs.tags = experiment_tags("cs-20261123T120000Z-0ther0", parse_rfc3339(T0).unwrap());
                w.rules.insert(other, theirs);
            }
            if w.fail_authorize_after_create {
                return Err(CallError::new(
                    "AuthorizeSecurityGroupIngress",
                    FailureKind::Transient,
                    Some("RequestTimeout".into()),
                    "the connection timed out after the rule was written",
                ));
            }
            Ok(AuthorizeOutcome::Created { rule_id })
        })
    }

    async fn revoke(&self, group_id: &str, rule_id: &str) -> Result<RevokeOutcome, CallError> {
        let _call = self.trace.enter("revoke").await;
        self.with(|w| {
            w.calls.push(format!("revoke {group_id} {rule_id}"));
            if let Err(e) = w.iam_allows(group_id, &[]) {
                w.calls.push(format!("denied revoke {group_id} {rule_id}"));
                return Err(e);
            }
            if w.fail_revoke_times > 0 {
                w.fail_revoke_times -= 1;
                return Err(CallError::new(
                    "RevokeSecurityGroupIngress",
                    FailureKind::Transient,
                    Some("RequestLimitExceeded".into()),
                    "rate exceeded",
                ));
            }
            match w.rules.get(rule_id) {
                Some(r) if r.security_group_id == group_id => {
                    w.rules.remove(rule_id);
                    Ok(RevokeOutcome::Revoked)
                }
                Some(_) => Err(CallError::new(
                    "RevokeSecurityGroupIngress",
                    FailureKind::NotFound,
                    Some("InvalidSecurityGroupRuleId.NotFound".into()),
                    format!("{rule_id} is not a rule of {group_id}"),
                )),
                None => Ok(RevokeOutcome::AlreadyGone),
            }
        })
    }
}

impl Markers for FakeWorld {
    async fn tag_group(&self, group_id: &str, tags: &[(String, String)]) -> Result<(), CallError> {
        let _call = self.trace.enter("tag_group").await;
        self.with(|w| {
            w.calls.push(format!("tag {group_id}"));
            let keys: Vec<&str> = tags.iter().map(|(k, _)| k.as_str()).collect();
            if let Err(e) = w.iam_allows(group_id, &keys) {
                w.calls.push(format!("denied tag {group_id}"));
                return Err(e);
            }
            let g = w.groups.iter_mut().find(|g| g.id == group_id).expect("tagging a known group");
            for (k, v) in tags {
                g.tags.retain(|(key, _)| key != k);
                g.tags.push((k.clone(), v.clone()));
            }
            Ok(())
        })
    }

    async fn untag_group(&self, group_id: &str, keys: &[&str]) -> Result<(), CallError> {
        let _call = self.trace.enter("untag_group").await;
        self.with(|w| {
            w.calls.push(format!("untag {group_id}"));
            if let Err(e) = w.iam_allows(group_id, keys) {
                w.calls.push(format!("denied untag {group_id}"));
                return Err(e);
            }
            let g = w.groups.iter_mut().find(|g| g.id == group_id).expect("untagging a known group");
            g.tags.retain(|(k, _)| !keys.contains(&k.as_str()));
            Ok(())
        })
    }
}

/// The security controls, scripted.
#[derive(Default)]
struct Controls {
    /// Alarm name -> state (`OK`, `ALARM`); absent alarms do not exist.
    alarms: HashMap<String, String>,
    /// Group -> Config rules that already report it NON_COMPLIANT.
    noncompliant: HashMap<String, Vec<String>>,
    /// A detector fires, stamped injection + this, once the clock has passed that time.
    fires_after: HashMap<Detector, Duration>,
    /// `observe` panics with this message.
    panic_on_observe: Option<String>,
    /// The groups whose Config compliance was asked for, in order.
    compliance_queries: Vec<String>,
    /// Reading the detectors of these experiments never answers (a throttled or
    /// degraded service).
    hang_for: Vec<String>,
}

#[derive(Clone)]
struct FakeDetectors {
    state: Arc<Mutex<Controls>>,
    clock: FakeClock,
    trace: Trace,
    /// The world's call log, so tests see detector reads in order with the writes.
    world: Arc<Mutex<World>>,
}

impl FakeDetectors {
    fn with<R>(&self, f: impl FnOnce(&mut Controls) -> R) -> R {
        f(&mut lock(&self.state))
    }

    fn alarm(&self, name: &str, state: &str) {
        self.with(|c| c.alarms.insert(name.into(), state.into()));
    }

    fn fires_after(&self, detector: &str, after: Duration) {
        self.with(|c| c.fires_after.insert(detector.parse().expect("valid detector"), after));
    }
}

impl Detectors for FakeDetectors {
    async fn alarm_states(&self, names: &[String]) -> Result<Vec<AlarmState>, CallError> {
        let _call = self.trace.enter("alarm_states").await;
        Ok(self.with(|c| {
            names
                .iter()
                .filter_map(|n| {
                    c.alarms.get(n).map(|s| {
                        let state = match s.as_str() {
                            "OK" => AlarmValue::Ok,
                            "ALARM" => AlarmValue::Alarm,
                            _ => AlarmValue::InsufficientData,
                        };
                        AlarmState { name: n.clone(), state, updated: None }
                    })
                })
                .collect()
        }))
    }

    async fn noncompliant_rules(
        &self,
        _technique: TechniqueRef,
        group_id: &str,
        rules: &[String],
    ) -> Result<Vec<String>, CallError> {
        let _call = self.trace.enter("compliance").await;
        Ok(self.with(|c| {
            c.compliance_queries.push(group_id.to_string());
            let bad = c.noncompliant.get(group_id).cloned().unwrap_or_default();
            rules.iter().filter(|r| bad.contains(r)).cloned().collect()
        }))
    }

    async fn observe(&self, _technique: TechniqueRef, record: &ExperimentRecord) -> Vec<(Detector, Reading)> {
        let _call = self.trace.enter("observe").await;
        lock(&self.world).calls.push(format!("observe {}", record.id));
        if self.with(|c| c.hang_for.contains(&record.id.to_string())) {
            pending::<()>().await;
        }
        let now = self.clock.now();
        // Take what is needed and drop the lock before panicking.
        let (panic_with, fires_after) = self.with(|c| (c.panic_on_observe.clone(), c.fires_after.clone()));
        if let Some(message) = panic_with {
            panic!("{message}");
        }
        record
            .detectors
            .iter()
            .map(|d| {
                let reading = match fires_after.get(d) {
                    Some(after) if now >= record.injected_at + *after => {
                        Reading::Fired { at: record.injected_at + *after, evidence: format!("{d} fired") }
                    }
                    _ => Reading::Quiet { note: format!("{d} quiet") },
                };
                (d.clone(), reading)
            })
            .collect()
    }
}

/// Keeps every outcome it is asked to count (metrics) and to publish (SNS).
#[derive(Clone, Default)]
struct FakeRecorder {
    counted: Arc<Mutex<Vec<OutcomeReport>>>,
    published: Arc<Mutex<Vec<OutcomeReport>>>,
}

impl Recorder for FakeRecorder {
    /// Read back from what was counted, as the AWS recorder reads its `Recorded` datum.
    async fn already_counted(&self, report: &OutcomeReport) -> Result<bool, CallError> {
        Ok(lock(&self.counted).iter().any(|r| r.experiment_id == report.experiment_id))
    }

    async fn count(&self, report: &OutcomeReport) -> Vec<CallError> {
        lock(&self.counted).push(report.clone());
        vec![]
    }

    async fn publish(&self, report: &OutcomeReport) -> Vec<CallError> {
        lock(&self.published).push(report.clone());
        vec![]
    }
}

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

type TestEngine = Engine<FakeWorld, FakeDetectors, FakeRecorder, FakeClock>;

/// The fakes, shared with the engine so a test can script and inspect them.
struct Harness {
    clock: FakeClock,
    world: FakeWorld,
    detectors: FakeDetectors,
    recorder: FakeRecorder,
}

impl Harness {
    fn new(groups: Vec<GroupInfo>) -> Self {
        let clock = FakeClock::at(T0);
        let trace = Trace::default();
        let world = FakeWorld {
            state: Arc::new(Mutex::new(World { groups, ..World::default() })),
            clock: clock.clone(),
            trace: trace.clone(),
        };
        let detectors =
            FakeDetectors { state: Arc::default(), clock: clock.clone(), trace, world: Arc::clone(&world.state) };
        Harness { clock, world, detectors, recorder: FakeRecorder::default() }
    }

    /// One opted-in group, `sg-1`.
    fn one_group() -> Self {
        Harness::new(vec![group("sg-1", Some("true"))])
    }

    fn engine(&self, settings: Settings) -> TestEngine {
        Engine {
            ingress: self.world.clone(),
            detectors: self.detectors.clone(),
            recorder: self.recorder.clone(),
            clock: self.clock.clone(),
            settings,
            region: Some("eu-west-1".into()),
            account: None,
        }
    }

    /// Every outcome counted in the metrics.
    fn reports(&self) -> Vec<OutcomeReport> {
        lock(&self.recorder.counted).clone()
    }

    /// Every outcome published.
    fn published(&self) -> Vec<OutcomeReport> {
        lock(&self.recorder.published).clone()
    }

    fn elapsed(&self) -> Duration {
        self.clock.now().duration_since(parse_rfc3339(T0).unwrap()).unwrap()
    }
}

fn group(id: &str, opt_in: Option<&str>) -> GroupInfo {
    let mut tags = vec![("Name".to_string(), format!("{id}-name"))];
    if let Some(v) = opt_in {
        tags.push((OPT_IN_TAG.to_string(), v.to_string()));
    }
    GroupInfo {
        id: id.into(),
        name: format!("{id}-name"),
        vpc_id: Some("vpc-1".into()),
        owner_id: Some(ACCOUNT.into()),
        tags,
        ingress: vec![],
    }
}

fn settings(detectors: &[&str], window: Duration) -> Settings {
    Settings {
        detectors: detectors.iter().map(|d| d.parse().expect("valid detector")).collect(),
        window,
        ..Settings::default()
    }
}

/// Runs with a seeded rng, no progress display and no cancellation.
async fn run(engine: &TestEngine, request: &RunRequest, seed: u64) -> Result<RunEnd, EngineError> {
    let mut rng = StdRng::seed_from_u64(seed);
    engine.run(request, &mut rng, &mut |_: &Progress<'_>| {}, pending()).await
}

fn concluded(end: RunEnd) -> (OutcomeReport, Option<RevertReport>) {
    match end {
        RunEnd::Concluded { report, revert, record_failures } => {
            assert!(record_failures.is_empty(), "{record_failures:?}");
            (report, revert)
        }
        RunEnd::DryRun(d) => panic!("expected a concluded run, got a dry run: {d:?}"),
    }
}

fn detection<'a>(report: &'a OutcomeReport, detector: &str) -> &'a chaoslingr_domain::outcome::DetectionReport {
    report
        .detections
        .iter()
        .find(|d| d.detector == detector)
        .unwrap_or_else(|| panic!("no detection report for {detector}: {:?}", report.detections))
}

fn experiment_tags(id: &str, injected_at: SystemTime) -> Vec<(String, String)> {
    let detectors: Vec<Detector> = vec![];
    tags::encode(&id.parse().unwrap(), injected_at, injected_at + secs(900), &detectors).unwrap()
}

// ---------------------------------------------------------------------------------------
// Runs that reach a verdict
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn an_unnoticed_port_is_undetected_and_reverted_at_the_deadline() {
    // GIVEN one opted-in group and an alarm detector that stays OK, window 10m, poll 15s
    let h = Harness::one_group();
    h.detectors.alarm("fw", "OK");
    let engine = h.engine(settings(&["alarm:fw"], secs(600)));
    let mut ticks: Vec<SystemTime> = Vec::new();

    // WHEN the experiment runs
    let mut rng = StdRng::seed_from_u64(1);
    let mut progress = |p: &Progress<'_>| ticks.push(p.now);
    let end = engine.run(&RunRequest::default(), &mut rng, &mut progress, pending()).await.unwrap();
    let (report, revert) = concluded(end);

    // THEN nothing noticed: undetected, with the gap named
    assert_eq!(report.outcome, Outcome::Undetected, "{}", report.reason);
    assert!(report.reason.contains("alarm:fw"), "{}", report.reason);
    assert!(!detection(&report, "alarm:fw").detected);
    assert!(!detection(&report, "remediation").detected);
    // AND the watch lasted the whole window, observing every 15s
    assert!(h.elapsed() >= secs(600), "{:?}", h.elapsed());
    assert_eq!(ticks.len(), 41, "ticks at 0s, 15s, ..., 600s");
    // AND the rule was created, then revoked by us and verified gone
    let revert = revert.expect("a revert report");
    assert!(revert.reverted && !revert.already_gone && revert.error.is_none(), "{revert:?}");
    assert!(report.reverted);
    assert!(h.world.rule_ids().is_empty());
    assert_eq!(h.world.writes(), ["authorize sg-1", "revoke sg-1 sgr-0001"]);
    // AND exactly one outcome was recorded, the one returned
    let reports = h.reports();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0], report);
    assert_eq!(report.schema, "chaoslingr.outcome/v1");
    assert_eq!(report.experiment, "port-change");
    assert_eq!(report.security_group_id.as_deref(), Some("sg-1"));
    assert_eq!(report.security_group_rule_id.as_deref(), Some("sgr-0001"));
    assert_eq!(report.account.as_deref(), Some(ACCOUNT));
    assert_eq!(report.region.as_deref(), Some("eu-west-1"));
    assert_eq!(report.injected_at.as_deref(), Some("2026-11-23T12:00:00.000Z"));
    assert!(!report.dry_run);
    // AND the ports were inside the bounds and at most 6 wide
    let (from, to) = (report.from_port.unwrap(), report.to_port.unwrap());
    let ports = PortRange::new(from, to).expect("from <= to");
    assert!(from >= 10_000 && to <= 65_000, "{ports}");
    assert!((1..=6).contains(&ports.width()), "{ports}");
    // AND the rule that existed was exactly what the report says, tagged with the experiment
    let created = h.world.created();
    assert_eq!(created.len(), 1);
    let rule = &created[0];
    assert_eq!(Some(rule.ip_protocol.clone()), report.protocol);
    assert_eq!((rule.from_port, rule.to_port), (Some(i32::from(from)), Some(i32::from(to))));
    assert_eq!(rule.cidr.as_deref(), Some("0.0.0.0/0"));
    let record = tags::decode(rule).expect("the rule's tags decode");
    assert_eq!(record.id.as_str(), report.experiment_id);
    assert_eq!(record.deadline.duration_since(record.injected_at).unwrap(), secs(600));
    assert_eq!(record.detectors, vec!["alarm:fw".parse::<Detector>().unwrap()]);
}

#[tokio::test]
async fn detection_times_come_from_the_detectors_own_timestamps() {
    // GIVEN an alarm that fires at +42s and a Config rule at +95s, polled every 15s
    let h = Harness::one_group();
    h.detectors.alarm("fw", "OK");
    h.detectors.fires_after("alarm:fw", secs(42));
    h.detectors.fires_after(&format!("config:{CONFIG_RULE}"), secs(95));
    let engine = h.engine(settings(&["alarm:fw", &format!("config:{CONFIG_RULE}")], secs(600)));

    // WHEN the experiment runs
    let (report, revert) = concluded(run(&engine, &RunRequest::default(), 2).await.unwrap());

    // THEN detected, with 42s and 95s (not the 45s and 105s at which they were polled)
    assert_eq!(report.outcome, Outcome::Detected, "{}", report.reason);
    assert!(report.reason.contains("all 2 detectors"), "{}", report.reason);
    let alarm = detection(&report, "alarm:fw");
    assert!(alarm.detected);
    assert_eq!(alarm.seconds_to_detect, Some(42.0));
    let config = detection(&report, &format!("config:{CONFIG_RULE}"));
    assert!(config.detected);
    assert_eq!(config.seconds_to_detect, Some(95.0));
    assert!(!detection(&report, "remediation").detected);
    assert!(report.gaps().is_empty());
    // AND the watch stopped as soon as both had fired, long before the deadline
    assert!(h.elapsed() >= secs(95) && h.elapsed() < secs(120), "{:?}", h.elapsed());
    // AND the rule was reverted
    assert!(revert.unwrap().reverted);
    assert!(report.reverted);
    assert!(h.world.rule_ids().is_empty());
    assert_eq!(h.world.writes(), ["authorize sg-1", "revoke sg-1 sgr-0001"]);
}

#[tokio::test]
async fn a_rule_removed_by_someone_else_is_remediated_and_needs_no_revoke() {
    // GIVEN auto-remediation that deletes the rule 50s after injection, and a quiet alarm
    let h = Harness::one_group();
    h.detectors.alarm("fw", "OK");
    h.world.with(|w| w.remediate_after = Some(secs(50)));
    let engine = h.engine(settings(&["alarm:fw"], secs(600)));

    // WHEN the experiment runs
    let (report, revert) = concluded(run(&engine, &RunRequest::default(), 3).await.unwrap());

    // THEN remediated, measured to the first observation that found it gone (60s)
    assert_eq!(report.outcome, Outcome::Remediated, "{}", report.reason);
    let remediation = detection(&report, "remediation");
    assert!(remediation.detected);
    assert_eq!(remediation.seconds_to_detect, Some(60.0));
    assert!(!detection(&report, "alarm:fw").detected);
    assert!(h.elapsed() < secs(120), "{:?}", h.elapsed());
    // AND the revert found it already gone and never called revoke
    let revert = revert.unwrap();
    assert!(revert.reverted && revert.already_gone, "{revert:?}");
    assert!(report.reverted);
    assert_eq!(h.world.writes(), ["authorize sg-1"]);
    assert!(h.world.with(|w| w.calls.contains(&"remediated sgr-0001".to_string())));
}

#[tokio::test]
async fn a_refused_authorize_is_prevented_and_nothing_is_left_behind() {
    // GIVEN an SCP that denies AuthorizeSecurityGroupIngress
    let h = Harness::one_group();
    h.world.with(|w| w.deny_authorize = true);
    let engine = h.engine(Settings::default());

    // WHEN the experiment runs
    let (report, revert) = concluded(run(&engine, &RunRequest::default(), 4).await.unwrap());

    // THEN prevented, with EC2's reason, and no rule exists or was revoked
    assert_eq!(report.outcome, Outcome::Prevented);
    assert!(report.outcome.hypothesis_held());
    assert!(report.reason.contains("UnauthorizedOperation"), "{}", report.reason);
    assert!(revert.is_none());
    assert!(report.reverted, "nothing was injected, so nothing is open");
    assert_eq!(report.security_group_rule_id, None);
    assert_eq!(report.injected_at, None);
    assert!(h.world.rule_ids().is_empty());
    assert_eq!(h.world.writes(), ["authorize sg-1"]);
    // AND the outcome was recorded
    let reports = h.reports();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].outcome, Outcome::Prevented);
    assert_eq!(reports[0].security_group_id.as_deref(), Some("sg-1"));
}

// ---------------------------------------------------------------------------------------
// Every path after injection reverts
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_cancelled_run_is_aborted_with_the_reason_and_reverted() {
    // GIVEN a cancel signal fired from the progress display once 30s have passed
    let h = Harness::one_group();
    h.detectors.alarm("fw", "OK");
    let engine = h.engine(settings(&["alarm:fw"], secs(600)));
    let (tx, rx) = tokio::sync::oneshot::channel::<String>();
    let mut tx = Some(tx);
    let mut progress = |p: &Progress<'_>| {
        if p.now >= p.record.injected_at + secs(30) {
            if let Some(tx) = tx.take() {
                let _ = tx.send("SIGTERM received".to_string());
            }
        }
    };
    let cancel = async move { rx.await.unwrap_or_else(|_| "the cancel sender was dropped".into()) };

    // WHEN the experiment runs
    let mut rng = StdRng::seed_from_u64(5);
    let end = engine.run(&RunRequest::default(), &mut rng, &mut progress, cancel).await.unwrap();
    let (report, revert) = concluded(end);

    // THEN aborted with the cancel reason, right after the 30s tick
    assert_eq!(report.outcome, Outcome::Aborted);
    assert_eq!(report.reason, "SIGTERM received");
    assert!(h.elapsed() >= secs(30) && h.elapsed() < secs(45), "{:?}", h.elapsed());
    // AND what was seen until then is still reported
    assert!(!detection(&report, "alarm:fw").detected);
    // AND the rule was reverted
    assert!(revert.unwrap().reverted);
    assert!(report.reverted);
    assert!(h.world.rule_ids().is_empty());
    assert_eq!(h.world.writes(), ["authorize sg-1", "revoke sg-1 sgr-0001"]);
    assert_eq!(h.reports().len(), 1);
}

#[tokio::test]
async fn a_stop_requested_before_injection_writes_nothing() {
    // GIVEN a cancel signal that has already fired (Ctrl-C during pre-flight or planning)
    let h = Harness::one_group();
    let engine = h.engine(settings(&[], secs(600)));
    let cancel = std::future::ready("interrupted by Ctrl-C (SIGINT)".to_string());

    // WHEN the experiment runs
    let mut rng = StdRng::seed_from_u64(8);
    let end = engine.run(&RunRequest::default(), &mut rng, &mut |_: &Progress<'_>| {}, cancel).await.unwrap();
    let (report, revert) = concluded(end);

    // THEN it is aborted before any write
    assert_eq!(report.outcome, Outcome::Aborted);
    assert!(report.reason.contains("before injection"), "{}", report.reason);
    assert!(revert.is_none());
    assert!(h.world.writes().is_empty(), "{:?}", h.world.writes());
}

#[tokio::test]
async fn a_panic_while_watching_is_failed_and_the_rule_is_still_reverted() {
    // GIVEN a detector adapter that panics when observed
    let h = Harness::one_group();
    h.detectors.alarm("fw", "OK");
    h.detectors.with(|c| c.panic_on_observe = Some("detector adapter exploded".into()));
    let engine = h.engine(settings(&["alarm:fw"], secs(600)));

    // WHEN the experiment runs
    let (report, revert) = concluded(run(&engine, &RunRequest::default(), 6).await.unwrap());

    // THEN failed, naming the panic
    assert_eq!(report.outcome, Outcome::Failed);
    assert!(report.reason.contains("detector adapter exploded"), "{}", report.reason);
    // AND the rule that had been created was reverted anyway
    assert_eq!(h.world.created().len(), 1);
    assert!(revert.unwrap().reverted);
    assert!(report.reverted);
    assert!(h.world.rule_ids().is_empty());
    assert_eq!(h.world.writes(), ["authorize sg-1", "revoke sg-1 sgr-0001"]);
    assert_eq!(h.reports().len(), 1);
}

#[tokio::test]
async fn a_rule_created_by_a_failed_authorize_is_found_by_its_tag_and_removed() {
    // GIVEN an authorize call that writes the rule and then times out
    let h = Harness::one_group();
    h.world.with(|w| w.fail_authorize_after_create = true);
    let engine = h.engine(Settings::default());

    // WHEN the experiment runs
    let (report, revert) = concluded(run(&engine, &RunRequest::default(), 7).await.unwrap());

    // THEN failed, with the call's error
    assert_eq!(report.outcome, Outcome::Failed);
    assert!(report.reason.contains("could not open the port"), "{}", report.reason);
    assert!(report.reason.contains("RequestTimeout"), "{}", report.reason);
    // AND the rule it did create, tagged with this experiment, was revoked and is gone
    let created = h.world.created();
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].experiment_id(), Some(report.experiment_id.as_str()));
    let revert = revert.expect("the cleanup is reported");
    assert_eq!(revert.security_group_rule_id, "sgr-0001");
    assert!(revert.reverted && !revert.already_gone, "{revert:?}");
    assert!(report.reverted);
    assert!(h.world.rule_ids().is_empty());
    assert_eq!(h.world.writes(), ["authorize sg-1", "revoke sg-1 sgr-0001"]);
}

#[tokio::test]
async fn a_revoke_that_fails_transiently_is_retried_until_it_works() {
    // GIVEN revoke throttled twice, then working
    let h = Harness::one_group();
    h.world.with(|w| w.fail_revoke_times = 2);
    let engine = h.engine(settings(&[], secs(60)));

    // WHEN the experiment runs to its end
    let (report, revert) = concluded(run(&engine, &RunRequest::default(), 8).await.unwrap());

    // THEN the third revoke removed the rule
    assert_eq!(report.outcome, Outcome::Undetected, "{}", report.reason);
    let revert = revert.unwrap();
    assert!(revert.reverted && !revert.already_gone && revert.error.is_none(), "{revert:?}");
    assert!(report.reverted);
    assert_eq!(h.world.revokes(), 3);
    assert!(h.world.rule_ids().is_empty());
}

#[tokio::test]
async fn a_revoke_that_never_works_is_reported_as_not_reverted() {
    // GIVEN revoke failing on every call
    let h = Harness::one_group();
    h.world.with(|w| w.fail_revoke_times = u32::MAX);
    let engine = h.engine(settings(&[], secs(60)));

    // WHEN the experiment runs to its end
    let (report, revert) = concluded(run(&engine, &RunRequest::default(), 9).await.unwrap());

    // THEN the verdict stands, but the revert failed after several attempts and says why
    assert_eq!(report.outcome, Outcome::Undetected, "{}", report.reason);
    let revert = revert.unwrap();
    assert!(!revert.reverted, "{revert:?}");
    assert!(revert.error.as_deref().is_some_and(|e| e.contains("RequestLimitExceeded")), "{revert:?}");
    assert!(h.world.revokes() >= 3, "retried: {:?}", h.world.writes());
    // AND the recorded outcome says the port may still be open; it is
    assert!(!report.reverted);
    assert!(!h.reports()[0].reverted);
    assert_eq!(h.world.rule_ids(), ["sgr-0001"]);
}

// ---------------------------------------------------------------------------------------
// Nothing is written unless every check passed
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_target_that_is_not_opted_in_or_does_not_exist_is_bad_input() {
    // GIVEN a group opted in, one tagged `false`, and a target that does not exist
    let h = Harness::new(vec![group("sg-1", Some("true")), group("sg-off", Some("false"))]);
    let engine = h.engine(Settings::default());

    for target in ["sg-off", "sg-ghost"] {
        // WHEN it is targeted
        let request = RunRequest { experiment: None, target: Some(target.into()), scheduled: false };
        let err = run(&engine, &request, 10).await.expect_err("refused");

        // THEN it is refused as bad input, naming the target
        match err {
            EngineError::BadInput(msg) => assert!(msg.contains(target) && msg.contains("not opted in"), "{msg}"),
            other => panic!("expected BadInput for {target}, got {other:?}"),
        }
    }
    // AND nothing was written or recorded
    assert!(h.world.writes().is_empty(), "{:?}", h.world.writes());
    assert!(h.reports().is_empty());
}

#[tokio::test]
async fn an_opted_in_target_is_the_one_injected() {
    // GIVEN several opted-in groups
    let h = Harness::new(vec![group("sg-1", Some("true")), group("sg-2", Some("TRUE")), group("sg-3", Some("true"))]);
    let engine = h.engine(settings(&[], secs(60)));

    // WHEN sg-2 is targeted
    let request = RunRequest { experiment: None, target: Some("sg-2".into()), scheduled: false };
    let (report, _) = concluded(run(&engine, &request, 11).await.unwrap());

    // THEN it is the one that got the rule
    assert_eq!(report.security_group_id.as_deref(), Some("sg-2"));
    assert_eq!(h.world.writes(), ["authorize sg-2", "revoke sg-2 sgr-0001"]);
}

#[tokio::test]
async fn a_group_opted_out_after_listing_is_not_injected() {
    // GIVEN a group whose opt-in tag is gone by the time it is re-read before writing
    let h = Harness::one_group();
    h.world.with(|w| w.opt_out_before_inject = true);
    let engine = h.engine(Settings::default());

    // WHEN the experiment runs
    let (report, revert) = concluded(run(&engine, &RunRequest::default(), 12).await.unwrap());

    // THEN aborted without any write
    assert_eq!(report.outcome, Outcome::Aborted);
    assert!(report.reason.contains("sg-1 was opted out before injection"), "{}", report.reason);
    assert!(revert.is_none());
    assert!(h.world.writes().is_empty(), "{:?}", h.world.writes());
    assert!(h.world.created().is_empty());
    // AND the aborted plan is recorded
    let reports = h.reports();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].security_group_id.as_deref(), Some("sg-1"));
}

/// Runs and checks that pre-flight aborted with `expected` in the reason, before planning
/// and without a single write.
async fn assert_preflight_abort(h: &Harness, settings: Settings, expected: &str) {
    let writes_before = h.world.writes();
    let reports_before = h.reports().len();
    let end = run(&h.engine(settings), &RunRequest::default(), 13).await.expect("an abort is an outcome, not an error");
    let (report, revert) = concluded(end);
    assert_eq!(report.outcome, Outcome::Aborted, "{}", report.reason);
    assert!(report.reason.contains(expected), "expected `{expected}` in: {}", report.reason);
    assert!(revert.is_none());
    assert!(report.reverted);
    assert_eq!(report.security_group_id, None, "nothing was planned");
    assert_eq!(h.world.writes(), writes_before, "nothing was written");
    assert_eq!(h.reports().len(), reports_before + 1, "the abort is recorded");
}

#[tokio::test]
async fn the_kill_switch_aborts_before_any_write() {
    // GIVEN CHAOSLINGR_ENABLED=false
    let h = Harness::one_group();
    let s = Settings { enabled: false, ..Settings::default() };
    // WHEN run THEN aborted, no write
    assert_preflight_abort(&h, s, "kill switch").await;
}

#[tokio::test]
async fn the_maximum_of_active_experiments_aborts_before_any_write() {
    // GIVEN an experiment already active on another group, max_active 1
    let h = Harness::new(vec![group("sg-1", Some("true")), group("sg-2", Some("true"))]);
    let earlier = parse_rfc3339("2026-11-23T11:55:00Z").unwrap();
    let planted = h.world.plant("sg-2", experiment_tags("cs-20261123T115500Z-00beef", earlier));
    // WHEN run THEN aborted, naming the active experiment
    assert_preflight_abort(&h, Settings::default(), "cs-20261123T115500Z-00beef").await;
    // AND the active experiment was left alone
    assert_eq!(h.world.rule_ids(), [planted]);
}

#[tokio::test]
async fn a_stop_alarm_in_alarm_or_missing_aborts_and_an_ok_one_does_not() {
    // GIVEN a stop-condition alarm in ALARM
    let h = Harness::one_group();
    h.detectors.alarm("ops-page", "ALARM");
    let s = Settings { stop_alarms: vec!["ops-page".into()], window: secs(60), ..Settings::default() };
    // WHEN run THEN aborted
    assert_preflight_abort(&h, s.clone(), "stop-condition alarm ops-page is in ALARM").await;

    // GIVEN a stop-condition alarm that does not exist WHEN run THEN aborted
    let missing = Settings { stop_alarms: vec!["no-such-alarm".into()], ..s.clone() };
    assert_preflight_abort(&h, missing, "stop-condition alarm no-such-alarm does not exist").await;

    // GIVEN the alarm back to OK WHEN run THEN the experiment goes ahead
    h.detectors.alarm("ops-page", "OK");
    let (report, _) = concluded(run(&h.engine(s), &RunRequest::default(), 14).await.unwrap());
    assert_eq!(report.outcome, Outcome::Undetected);
    assert_eq!(h.world.writes(), ["authorize sg-1", "revoke sg-1 sgr-0001"]);
}

#[tokio::test]
async fn an_alarm_detector_already_in_alarm_aborts_naming_it() {
    // GIVEN the detector alarm is already in ALARM, so it could not show a new detection
    let h = Harness::one_group();
    h.detectors.alarm("fw", "ALARM");
    // WHEN run THEN aborted, naming the alarm
    assert_preflight_abort(&h, settings(&["alarm:fw"], secs(600)), "detector alarm:fw is already in ALARM").await;
}

#[tokio::test]
async fn a_missing_alarm_detector_aborts() {
    // GIVEN a configured alarm detector that does not exist
    let h = Harness::one_group();
    // WHEN run THEN aborted
    assert_preflight_abort(&h, settings(&["alarm:fw"], secs(600)), "detector alarm:fw does not exist").await;
}

#[tokio::test]
async fn a_run_outside_the_allowed_hours_aborts() {
    // GIVEN it is Monday noon and experiments may only start at weekends
    let h = Harness::one_group();
    let hours = config::allowed_hours("sat,sun 10:00-12:00", "CHAOSLINGR_ALLOWED_HOURS").unwrap();
    let s = Settings { allowed_hours: Some(hours), ..Settings::default() };
    // WHEN run THEN aborted
    assert_preflight_abort(&h, s, "outside the allowed hours").await;
}

#[tokio::test]
async fn a_group_already_noncompliant_for_the_config_detector_is_never_chosen() {
    // GIVEN two opted-in groups, sg-a already NON_COMPLIANT for the configured Config rule,
    // and a group that is not opted in
    let h = Harness::new(vec![group("sg-a", Some("true")), group("sg-b", Some("true")), group("sg-c", Some("false"))]);
    h.detectors.with(|c| c.noncompliant.insert("sg-a".into(), vec![CONFIG_RULE.into()]));
    h.detectors.fires_after(&format!("config:{CONFIG_RULE}"), secs(20));
    let engine = h.engine(settings(&[&format!("config:{CONFIG_RULE}")], secs(120)));

    // WHEN many experiments run with different seeds
    for seed in 0..16 {
        let (report, _) = concluded(run(&engine, &RunRequest::default(), seed).await.unwrap());
        // THEN sg-b is always the target
        assert_eq!(report.security_group_id.as_deref(), Some("sg-b"), "seed {seed}");
        assert_eq!(report.outcome, Outcome::Detected, "seed {seed}: {}", report.reason);
    }
    assert!(h.world.writes().iter().all(|c| c.contains("sg-b")), "{:?}", h.world.writes());
    assert!(h.world.rule_ids().is_empty());
    // AND sg-a was really considered (and skipped) at least once, not just never drawn
    let queries = h.detectors.with(|c| c.compliance_queries.clone());
    assert!(queries.iter().any(|g| g == "sg-a"), "{queries:?}");
    assert!(!queries.iter().any(|g| g == "sg-c"), "not opted in: no Config call needed");

    // WHEN the targets are listed
    let targets = engine.targets().await.unwrap();

    // THEN each group comes with its eligibility and the reason when not eligible
    let ids: Vec<&str> = targets.iter().map(|t| t.group.id.as_str()).collect();
    assert_eq!(ids, ["sg-a", "sg-b", "sg-c"]);
    assert_eq!(targets[0].eligibility, Err(Ineligible::AlreadyNonCompliant { rule: CONFIG_RULE.into() }));
    assert!(targets[0].eligibility.as_ref().unwrap_err().to_string().contains(CONFIG_RULE));
    assert_eq!(targets[1].eligibility, Ok(()));
    assert_eq!(targets[2].eligibility, Err(Ineligible::NotOptedIn));
}

#[tokio::test]
async fn a_dry_run_checks_permission_without_creating_anything() {
    // GIVEN dry-run mode
    let h = Harness::one_group();
    let s = Settings { dry_run: true, ..Settings::default() };
    let engine = h.engine(s);

    // WHEN run
    let end = run(&engine, &RunRequest::default(), 15).await.unwrap();

    // THEN the plan is reported with EC2's answer, and no rule was created
    let RunEnd::DryRun(dry) = end else { panic!("expected a dry run, got {end:?}") };
    assert_eq!(dry.schema, "chaoslingr.dry-run/v1");
    assert_eq!(dry.permission_check, "would-succeed");
    assert_eq!(dry.plan.security_group_id, "sg-1");
    assert!(dry.plan.ports.from >= 10_000 && dry.plan.ports.to <= 65_000);
    assert!(matches!(dry.plan.protocol, Protocol::Tcp | Protocol::Udp));
    assert_eq!(h.world.writes(), ["authorize(dry-run) sg-1"]);
    assert!(h.world.rule_ids().is_empty());
    assert!(h.world.created().is_empty());

    // GIVEN an SCP that denies the call WHEN dry-run again THEN the denial is reported
    h.world.with(|w| w.deny_authorize = true);
    let RunEnd::DryRun(dry) = run(&engine, &RunRequest::default(), 16).await.unwrap() else { panic!("dry run") };
    assert!(dry.permission_check.starts_with("denied: UnauthorizedOperation"), "{}", dry.permission_check);
    assert!(h.world.rule_ids().is_empty());
}

// ---------------------------------------------------------------------------------------
// Reverting on request
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn revert_all_removes_every_experiment_rule_even_damaged_ones_and_nothing_else() {
    // GIVEN two intact experiment rules, one whose deadline tag was damaged, and a rule
    // that is not an experiment's
    let h = Harness::new(vec![group("sg-1", Some("true")), group("sg-2", Some("true"))]);
    let earlier = parse_rfc3339("2026-11-23T11:00:00Z").unwrap();
    h.world.plant("sg-1", experiment_tags("cs-20261123T110000Z-00000a", earlier));
    h.world.plant("sg-2", experiment_tags("cs-20261123T110000Z-00000b", earlier));
    let mut damaged = experiment_tags("cs-20261123T110000Z-00000c", earlier);
    damaged.retain(|(k, _)| k != tags::DEADLINE);
    damaged.push((tags::DEADLINE.into(), "soon".into()));
    let damaged_id = h.world.plant("sg-2", damaged);
    let customer = h.world.plant("sg-1", vec![("Name".into(), "ssh from the office".into())]);
    let engine = h.engine(Settings::default());

    // WHEN the active experiments are listed
    let active = engine.active().await.unwrap();
    // THEN all three experiment rules show, the damaged one with its tag error
    assert_eq!(active.experiments.len(), 3);
    let damaged = active.experiments.iter().find(|f| f.security_group_rule_id == damaged_id).unwrap();
    let error = damaged.record.as_ref().unwrap_err();
    assert!(error.contains(tags::DEADLINE), "{error}");
    assert!(damaged.ours.is_ok(), "the damaged rule is still ours by its shape");

    // WHEN everything is reverted
    let reports = engine.revert_all().await.unwrap();

    // THEN each experiment rule was revoked and verified gone; the other rule stays
    assert_eq!(reports.len(), 3);
    assert!(reports.iter().all(|r| r.reverted && r.error.is_none()), "{reports:?}");
    assert!(reports.iter().any(|r| r.security_group_rule_id == damaged_id && r.experiment_id.ends_with("00000c")));
    assert_eq!(h.world.rule_ids(), [customer.as_str()]);
    assert_eq!(h.world.revokes(), 3);

    // WHEN reverted again THEN nothing to do, no call, still success
    let again = engine.revert_all().await.unwrap();
    assert!(again.is_empty(), "{again:?}");
    assert_eq!(h.world.revokes(), 3);
    assert_eq!(h.world.rule_ids(), [customer]);
}

#[tokio::test]
async fn a_rule_not_tagged_with_the_experiment_is_never_removed() {
    // GIVEN a rule of another experiment and a rule that is no experiment's
    let h = Harness::one_group();
    let earlier = parse_rfc3339("2026-11-23T11:00:00Z").unwrap();
    let other = h.world.plant("sg-1", experiment_tags("cs-20261123T110000Z-0000aa", earlier));
    let customer = h.world.plant("sg-1", vec![("Name".into(), "https".into())]);
    let engine = h.engine(Settings::default());
    let mine = |rule_id: &str| ExperimentRecord {
        id: "cs-20261123T110000Z-0000bb".parse().unwrap(),
        security_group_id: "sg-1".into(),
        security_group_rule_id: rule_id.into(),
        account: None,
        protocol: Protocol::Tcp,
        ports: PortRange::single(20_000),
        cidr: "0.0.0.0/0".into(),
        injected_at: earlier,
        deadline: earlier + secs(900),
        detectors: vec![],
    };

    for rule_id in [&other, &customer] {
        // WHEN asked to revert it as this experiment's rule
        let report = engine.revert_record(&mine(rule_id)).await;

        // THEN it is refused, with the reason
        assert!(!report.reverted && !report.already_gone, "{report:?}");
        assert!(report.not_ours, "{report:?}");
        let error = report.error.unwrap_or_default();
        assert!(error.contains("not ChaoSlingr's"), "{error}");
    }
    // AND reverting by this experiment's id finds nothing of its own
    assert!(engine.revert_by_id(&"cs-20261123T110000Z-0000bb".parse().unwrap()).await.unwrap().is_empty());
    // AND both rules are still there, never revoked
    assert_eq!(h.world.rule_ids(), [other, customer]);
    assert_eq!(h.world.revokes(), 0);
}

// ---------------------------------------------------------------------------------------
// Racing starters, and the scheduled mode (inject now, judge later)
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_run_that_raced_another_starter_past_the_maximum_steps_back() {
    // GIVEN two opted-in groups, a maximum of one, and another starter whose rule
    // appears on sg-2 while ours is being created (both passed pre-flight)
    let h = Harness::new(vec![group("sg-1", Some("true")), group("sg-2", Some("true"))]);
    h.world.with(|w| w.concurrent_on_authorize = true);
    let engine = h.engine(settings(&[], secs(600)));

    // WHEN our run injects
    let (report, revert) = concluded(
        run(&engine, &RunRequest { experiment: None, target: Some("sg-1".into()), scheduled: false }, 3).await.unwrap(),
    );

    // THEN it counted again, saw the other one, and stepped back: aborted, reverted,
    // and only the other starter's rule is left
    assert_eq!(report.outcome, Outcome::Aborted, "{}", report.reason);
    assert!(
        report.reason.contains("cs-20261123T120000Z-0ther0") && report.reason.contains("stepped back"),
        "{}",
        report.reason
    );
    assert!(revert.expect("a revert").reverted);
    assert!(report.reverted);
    let left = h.world.rule_ids();
    assert_eq!(left.len(), 1);
    assert_eq!(h.world.with(|w| w.rules[&left[0]].security_group_id.clone()), "sg-2");
}

fn group_tags(h: &Harness, id: &str) -> Vec<(String, String)> {
    h.world.with(|w| w.groups.iter().find(|g| g.id == id).unwrap().tags.clone())
}

fn advance(h: &Harness, by: Duration) {
    *lock(&h.clock.0) += by;
}

#[tokio::test]
async fn a_scheduled_inject_marks_the_group_and_returns_at_once() {
    // GIVEN one opted-in group
    let h = Harness::one_group();
    h.detectors.alarm("fw", "OK");
    let engine = h.engine(settings(&["alarm:fw"], secs(600)));

    // WHEN the scheduled inject runs
    let end = engine.inject(&RunRequest::default(), &mut StdRng::seed_from_u64(5)).await.unwrap();

    // THEN the rule is open, the group carries the marker, nothing waited, and no
    // outcome was recorded yet
    let InjectEnd::Started { record, start, .. } = end else { panic!("expected a start, got {end:?}") };
    assert_eq!(h.elapsed(), Duration::ZERO);
    assert_eq!(h.world.rule_ids(), vec![record.security_group_rule_id.clone()]);
    let marker = marker::decode("sg-1", Some(ACCOUNT), &group_tags(&h, "sg-1")).expect("a marker");
    assert_eq!(marker.record, record);
    assert!(marker.conclusion.is_none());
    assert_eq!(start.schema, "chaoslingr.started/v1");
    assert!(h.reports().is_empty());

    // AND once a remediator removed the rule (the judge has not concluded yet), the
    // marker alone keeps the group busy: `targets` says so and a second inject skips it
    h.world.with(|w| w.rules.clear());
    let targets = engine.targets().await.unwrap();
    assert!(targets[0].eligibility.as_ref().unwrap_err().to_string().contains(record.id.as_str()));
    let again = engine.inject(&RunRequest::default(), &mut StdRng::seed_from_u64(6)).await.unwrap();
    let InjectEnd::Ended(end) = again else { panic!("a second experiment started") };
    assert_eq!(concluded(end).0.outcome, Outcome::Aborted);
}

#[tokio::test]
async fn independent_calls_go_out_together_and_every_safety_read_still_comes_first() {
    // GIVEN one opted-in group, watched by a Config rule and an alarm
    let h = Harness::one_group();
    h.detectors.alarm("fw", "OK");
    let engine = h.engine(settings(&[&format!("config:{CONFIG_RULE}"), "alarm:fw"], secs(600)));

    // WHEN the scheduled inject runs
    let end = engine.inject(&RunRequest::default(), &mut StdRng::seed_from_u64(5)).await.unwrap();
    assert!(matches!(end, InjectEnd::Started { .. }), "{end:?}");

    // THEN it takes four round trips: the pre-flight reads together; the chosen group's
    // compliance with its opt-in re-read; the authorize alone, after both; the marker with
    // the re-count of active experiments
    assert_eq!(
        h.world.trace.take(),
        vec![
            vec!["alarm_states", "experiment_rules", "groups"],
            vec!["compliance", "group"],
            vec!["authorize"],
            vec!["experiment_rules", "tag_group"],
        ]
    );

    // AND a person's run observes in one round trip each time: the opt-in read, the rule
    // by its id and the detectors, together; the revert stays read, revoke, read back
    h.world.with(|w| w.rules.clear());
    h.world.with(|w| w.groups[0].tags.retain(|(k, _)| !k.starts_with("chaoslingr:") || k == OPT_IN_TAG));
    h.detectors.fires_after(&format!("config:{CONFIG_RULE}"), secs(1));
    let end = run(&engine, &RunRequest::default(), 7).await.unwrap();
    assert_eq!(concluded(end).0.outcome, Outcome::Detected);
    let rounds = h.world.trace.take();
    assert_eq!(rounds[3], vec!["experiment_rules", "tag_group"], "{rounds:?}");
    assert!(rounds[4..rounds.len() - 4].iter().all(|r| r == &vec!["group", "observe", "rule"]), "{rounds:?}");
    assert_eq!(
        rounds[rounds.len() - 4..],
        [vec!["rule"], vec!["revoke"], vec!["rule"], vec!["untag_group"]],
        "{rounds:?}"
    );
}

#[tokio::test]
async fn the_judge_remembers_a_detection_across_ticks_and_concludes_with_its_own_time() {
    // GIVEN a scheduled experiment watched by an alarm (fires at +42s) and a Config rule
    // (fires at +200s), window 10m
    let h = Harness::one_group();
    h.detectors.alarm("fw", "OK");
    h.detectors.fires_after("alarm:fw", secs(42));
    h.detectors.fires_after(&format!("config:{CONFIG_RULE}"), secs(200));
    let engine = h.engine(settings(&["alarm:fw", &format!("config:{CONFIG_RULE}")], secs(600)));
    let InjectEnd::Started { record, .. } =
        engine.inject(&RunRequest::default(), &mut StdRng::seed_from_u64(7)).await.unwrap()
    else {
        panic!("expected a start")
    };

    // WHEN the judge ticks at +60s
    advance(&h, secs(60));
    let tick = engine.judge_tick().await.unwrap();

    // THEN it keeps watching and remembers the alarm on the marker
    assert_eq!(tick.watching, vec![record.id.to_string()]);
    let m = marker::decode("sg-1", Some(ACCOUNT), &group_tags(&h, "sg-1")).unwrap();
    assert_eq!(m.seen, vec![("alarm:fw".parse().unwrap(), record.injected_at + secs(42))]);

    // WHEN the alarm returns to normal before the next tick, and Config fires
    h.detectors.with(|c| c.fires_after.remove(&"alarm:fw".parse().unwrap()));
    advance(&h, secs(180));
    let tick = engine.judge_tick().await.unwrap();

    // THEN the experiment is detected by both, each with its own time, reverted, recorded
    // once, and the marker is gone
    assert_eq!(tick.concluded.len(), 1, "{tick:?}");
    let report = &tick.concluded[0];
    assert_eq!(report.outcome, Outcome::Detected, "{}", report.reason);
    assert_eq!(detection(report, "alarm:fw").seconds_to_detect, Some(42.0));
    assert_eq!(detection(report, &format!("config:{CONFIG_RULE}")).seconds_to_detect, Some(200.0));
    assert!(report.reverted);
    assert!(h.world.rule_ids().is_empty());
    assert_eq!(h.reports(), vec![report.clone()]);
    assert!(!marker::is_marked(&group_tags(&h, "sg-1")));
    // AND in the crash-safe order: marker, seen, conclusion, revoke, counted, recorded,
    // unmark (detector reads aside)
    let order: Vec<String> = h.world.with(|w| w.calls.iter().filter(|c| !c.starts_with("observe")).cloned().collect());
    assert_eq!(
        order,
        [
            "authorize sg-1",
            "tag sg-1",
            "tag sg-1",
            "tag sg-1",
            "revoke sg-1 sgr-0001",
            "tag sg-1",
            "tag sg-1",
            "untag sg-1"
        ]
    );
}

#[tokio::test]
async fn the_judge_leaves_a_watched_run_alone_until_its_deadline_has_long_passed() {
    // GIVEN a rule without a marker (a CLI run, watched by its starter), window 15m
    let h = Harness::one_group();
    let rule = h.world.plant("sg-1", experiment_tags("cs-20261123T120000Z-c11c11", parse_rfc3339(T0).unwrap()));
    let engine = h.engine(settings(&[], secs(900)));

    // WHEN the judge ticks before the deadline plus grace
    advance(&h, secs(900) + ORPHAN_GRACE - secs(1));
    let tick = engine.judge_tick().await.unwrap();

    // THEN it leaves it to its starter
    assert_eq!(tick.left_to_their_starter, vec!["cs-20261123T120000Z-c11c11".to_string()]);
    assert_eq!(h.world.rule_ids(), vec![rule.clone()]);

    // WHEN the starter is evidently gone
    advance(&h, secs(2));
    let tick = engine.judge_tick().await.unwrap();

    // THEN the judge closes it and records why
    assert!(h.world.rule_ids().is_empty());
    assert_eq!(tick.concluded.len(), 1);
    assert!(tick.concluded[0].reason.contains("after its deadline"), "{}", tick.concluded[0].reason);
    // AND it marked the group for the conclusion (a whole marker, so a crash from there
    // is finished like any other) and unmarked it once recorded: no tag is left behind
    assert!(!marker::is_marked(&group_tags(&h, "sg-1")));
    let left: Vec<_> = group_tags(&h, "sg-1")
        .into_iter()
        .filter(|(k, _)| k.starts_with("chaoslingr:") && k != "chaoslingr:opt-in")
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let calls = h.world.with(|w| w.calls.clone());
    assert_eq!(calls.iter().filter(|c| c.starts_with("untag")).count(), 1, "{calls:?}");
}

#[tokio::test]
async fn a_group_opted_out_mid_experiment_is_closed_once_under_the_modules_iam_and_unmarked() {
    // GIVEN a scheduled experiment on sg-1
    let h = Harness::one_group();
    let engine = h.engine(settings(&[], secs(600)));
    let InjectEnd::Started { record, .. } =
        engine.inject(&RunRequest::default(), &mut StdRng::seed_from_u64(9)).await.unwrap()
    else {
        panic!("expected a start")
    };

    // WHEN its owners opt it out and the judge ticks, twice
    h.world.with(|w| {
        let g = w.groups.iter_mut().find(|g| g.id == "sg-1").unwrap();
        g.tags.retain(|(k, _)| k != OPT_IN_TAG);
        g.tags.push((OPT_IN_TAG.to_string(), "false".to_string()));
    });
    let writes_before = h.world.with(|w| w.calls.iter().filter(|c| c.contains("tag")).count());
    advance(&h, secs(30));
    let first = engine.judge_tick().await.unwrap();
    let second = engine.judge_tick().await.unwrap();

    // THEN the port is closed (IAM allows the revoke: the group carries the marker) and
    // `aborted` recorded exactly once, and the marker is removed
    assert!(h.world.rule_ids().is_empty());
    assert_eq!(first.concluded.len(), 1);
    assert_eq!(first.concluded[0].outcome, Outcome::Aborted);
    assert_eq!(first.concluded[0].experiment_id, record.id.to_string());
    assert!(second.concluded.is_empty(), "{second:?}");
    assert_eq!(h.reports().len(), 1, "{first:?}");
    assert_eq!(h.published().len(), 1);
    assert!(!marker::is_marked(&group_tags(&h, "sg-1")));
    assert!(h.world.with(|w| !w.calls.iter().any(|c| c.starts_with("denied"))));
    // AND only ChaoSlingr's own keys were written, never the opt-in tag
    assert_eq!(group_tags(&h, "sg-1").iter().find(|(k, _)| k == OPT_IN_TAG).map(|(_, v)| v.as_str()), Some("false"));
    assert!(h.world.with(|w| w.calls.iter().filter(|c| c.contains("tag")).count()) > writes_before);
}

// ---------------------------------------------------------------------------------------
// Safety under the module's IAM: ownership, opt-out, stripped tags, revert first, clocks
// ---------------------------------------------------------------------------------------

/// A scheduled experiment on `sg-1`, started at T0 with `window`.
async fn scheduled_on_sg1(h: &Harness, engine: &TestEngine) -> ExperimentRecord {
    let end = engine.inject(&RunRequest::default(), &mut StdRng::seed_from_u64(21)).await.unwrap();
    let InjectEnd::Started { record, .. } = end else { panic!("expected a start, got {end:?}") };
    assert_eq!(record.security_group_id, "sg-1");
    assert!(marker::is_marked(&group_tags(h, "sg-1")));
    record
}

#[tokio::test]
async fn a_group_whose_opt_in_tag_was_deleted_is_still_found_closed_once_and_unmarked() {
    // GIVEN a scheduled experiment, and owners who delete the opt-in tag key altogether
    let h = Harness::one_group();
    let engine = h.engine(settings(&[], secs(600)));
    let record = scheduled_on_sg1(&h, &engine).await;
    h.world.with(|w| w.groups[0].tags.retain(|(k, _)| k != OPT_IN_TAG));

    // WHEN the judge ticks (long before the deadline) and again
    advance(&h, secs(60));
    let first = engine.judge_tick().await.unwrap();
    let second = engine.judge_tick().await.unwrap();

    // THEN the group was found by its marker key, the port closed at the first tick under
    // the modelled IAM (marked group), `aborted` recorded once, and the marker removed
    assert!(h.world.rule_ids().is_empty(), "{first:?}");
    assert_eq!(first.concluded.len(), 1, "{first:?}");
    assert_eq!(first.concluded[0].outcome, Outcome::Aborted);
    assert!(first.concluded[0].reason.contains("opted out"), "{}", first.concluded[0].reason);
    assert_eq!(first.concluded[0].experiment_id, record.id.to_string());
    assert!(second.concluded.is_empty() && second.reverts.is_empty(), "{second:?}");
    assert_eq!(h.reports().len(), 1);
    assert!(!marker::is_marked(&group_tags(&h, "sg-1")));
    assert!(h.world.with(|w| !w.calls.iter().any(|c| c.starts_with("denied"))));
}

#[tokio::test]
async fn the_modelled_iam_denies_writes_to_a_group_neither_opted_in_nor_marked() {
    // GIVEN a group that is not opted in and carries no marker, and an (attacker-planted)
    // rule on it that looks like ChaoSlingr's and is overdue
    let h = Harness::new(vec![group("sg-1", Some("true")), group("sg-9", None)]);
    let earlier = parse_rfc3339("2026-11-23T10:00:00Z").unwrap();
    let planted = h.world.plant("sg-9", experiment_tags("cs-20261123T100000Z-00a77a", earlier));
    let engine = h.engine(Settings::default());

    // WHEN the judge ticks
    let tick = engine.judge_tick().await.unwrap();

    // THEN the revoke was tried (the rule looks like ours) and IAM denied it: the tick
    // reports a failed revert and the rule stays
    assert!(h.world.with(|w| w.calls.iter().any(|c| c == &format!("denied revoke sg-9 {planted}"))));
    assert!(tick.revert_failed(), "{tick:?}");
    assert_eq!(h.world.rule_ids(), vec![planted]);
}

#[tokio::test]
async fn rules_carrying_our_tags_but_not_our_shape_are_reported_and_never_revoked() {
    // GIVEN rules someone tagged with an experiment id: SSH from the office, a wide range,
    // a udp rule whose description names nothing, and an undecodable one; all long overdue
    let h = Harness::one_group();
    let earlier = parse_rfc3339("2026-11-23T10:00:00Z").unwrap();
    let tagged = |id: &str| experiment_tags(id, earlier);
    let ssh = h.world.plant_rule(
        "sg-1",
        tagged("cs-20261123T100000Z-000001"),
        "tcp",
        22,
        22,
        "10.0.0.0/8",
        "ChaoSlingr experiment cs-20261123T100000Z-000001 - x",
    );
    let wide = h.world.plant_rule(
        "sg-1",
        tagged("cs-20261123T100000Z-000002"),
        "tcp",
        20_000,
        20_100,
        "0.0.0.0/0",
        "ChaoSlingr experiment cs-20261123T100000Z-000002 - x",
    );
    let nameless = h.world.plant_rule(
        "sg-1",
        tagged("cs-20261123T100000Z-000003"),
        "udp",
        30_000,
        30_000,
        "0.0.0.0/0",
        "game server",
    );
    let garbled = h.world.plant_rule(
        "sg-1",
        vec![(tags::EXPERIMENT_ID.into(), "not-an-id".into())],
        "tcp",
        443,
        443,
        "0.0.0.0/0",
        "https",
    );
    let engine = h.engine(Settings::default());

    // WHEN the judge ticks, and a person runs `revert --all`
    let tick = engine.judge_tick().await.unwrap();
    let reports = engine.revert_all().await.unwrap();

    // THEN none was revoked; each is reported as not ours, with the reason
    assert_eq!(h.world.revokes(), 0, "{:?}", h.world.with(|w| w.calls.clone()));
    assert_eq!(tick.not_ours.len(), 4, "{tick:?}");
    assert!(!tick.revert_failed());
    assert_eq!(reports.len(), 4);
    assert!(reports.iter().all(|r| r.not_ours && !r.reverted), "{reports:?}");
    let why = |rule: &str| reports.iter().find(|r| r.security_group_rule_id == rule).unwrap().error.clone().unwrap();
    assert!(why(&ssh).contains("outside the configured bounds") || why(&ssh).contains("not the configured"));
    assert!(why(&wide).contains("more than the 6"), "{}", why(&wide));
    assert!(why(&nameless).contains("does not name experiment"), "{}", why(&nameless));
    assert!(why(&garbled).contains("revert --force"), "{}", why(&garbled));
    assert_eq!(h.world.rule_ids().len(), 4);

    // WHEN a person names one explicitly THEN that one, and only it, is removed
    let forced = engine.revert_force(&nameless).await.unwrap();
    assert!(forced.reverted, "{forced:?}");
    assert_eq!(h.world.rule_ids().len(), 3);
    assert!(!h.world.rule_ids().contains(&nameless));
}

#[tokio::test]
async fn a_rule_whose_tags_were_stripped_is_closed_at_its_deadline_not_called_remediated() {
    // GIVEN a scheduled experiment whose rule's tags a clean-up job strips
    let h = Harness::one_group();
    let engine = h.engine(settings(&[], secs(600)));
    let record = scheduled_on_sg1(&h, &engine).await;
    h.world.with(|w| w.rules.values_mut().for_each(|r| r.tags.clear()));

    // WHEN the judge ticks before the deadline
    advance(&h, secs(60));
    let tick = engine.judge_tick().await.unwrap();
    // THEN the rule is found by its id through the marker: still watching, still open
    assert_eq!(tick.watching, vec![record.id.to_string()], "{tick:?}");
    assert_eq!(h.world.rule_ids(), vec![record.security_group_rule_id.clone()]);

    // WHEN the deadline passes
    advance(&h, secs(600));
    let tick = engine.judge_tick().await.unwrap();
    // THEN it is closed, judged on its detectors (undetected), never `remediated`
    assert!(h.world.rule_ids().is_empty());
    assert_eq!(tick.concluded.len(), 1);
    assert_eq!(tick.concluded[0].outcome, Outcome::Undetected, "{}", tick.concluded[0].reason);
    assert!(tick.reverts.iter().any(|r| r.reverted && !r.already_gone), "{tick:?}");
    assert!(!marker::is_marked(&group_tags(&h, "sg-1")));
}

#[tokio::test]
async fn a_rule_gone_only_after_its_deadline_is_closed_not_remediated() {
    // GIVEN a scheduled experiment whose rule something removes after the deadline but
    // before the judge's next tick
    let h = Harness::one_group();
    let engine = h.engine(settings(&[], secs(600)));
    let record = scheduled_on_sg1(&h, &engine).await;
    advance(&h, secs(300));
    assert_eq!(engine.judge_tick().await.unwrap().watching.len(), 1);
    advance(&h, secs(330));
    h.world.with(|w| w.rules.clear());

    // WHEN the judge ticks
    let tick = engine.judge_tick().await.unwrap();

    // THEN the outcome is not `remediated`
    assert_eq!(tick.concluded.len(), 1);
    assert_eq!(tick.concluded[0].outcome, Outcome::Undetected, "{}", tick.concluded[0].reason);
    assert_eq!(tick.concluded[0].experiment_id, record.id.to_string());
}

#[tokio::test]
async fn a_tick_reverts_what_is_overdue_before_reading_any_detector() {
    // GIVEN two scheduled experiments (maximum 2): one on sg-1 with a 60 s window, one on
    // sg-2 with 10 minutes whose detector reads never answer (a degraded service)
    let h = Harness::new(vec![group("sg-1", Some("true")), group("sg-2", Some("true"))]);
    h.detectors.alarm("fw", "OK");
    let short = h.engine(Settings { max_active: 2, ..settings(&["alarm:fw"], secs(60)) });
    let long = h.engine(Settings { max_active: 2, ..settings(&["alarm:fw"], secs(600)) });
    let first = RunRequest { experiment: None, target: Some("sg-1".into()), scheduled: true };
    let InjectEnd::Started { record: a, .. } = short.inject(&first, &mut StdRng::seed_from_u64(1)).await.unwrap()
    else {
        panic!("expected a start")
    };
    let second = RunRequest { experiment: None, target: Some("sg-2".into()), scheduled: true };
    let InjectEnd::Started { record: b, .. } = long.inject(&second, &mut StdRng::seed_from_u64(2)).await.unwrap()
    else {
        panic!("expected a start")
    };
    h.detectors.with(|c| c.hang_for = vec![a.id.to_string(), b.id.to_string()]);
    advance(&h, secs(61));

    // WHEN the judge ticks
    let tick = short.judge_tick().await.unwrap();

    // THEN the overdue experiment's revoke came before any detector read, the hanging
    // reads were cut off (the tick ended), and the other experiment is still watched
    let calls = h.world.with(|w| w.calls.clone());
    let revoke = calls.iter().position(|c| c == &format!("revoke sg-1 {}", a.security_group_rule_id));
    let first_read = calls.iter().position(|c| c.starts_with("observe"));
    assert!(revoke.is_some() && first_read.is_some() && revoke < first_read, "{calls:?}");
    assert_eq!(h.world.rule_ids(), vec![b.security_group_rule_id.clone()]);
    assert_eq!(tick.watching, vec![b.id.to_string()], "{tick:?}");
    assert_eq!(tick.concluded.len(), 1);
    assert!(tick.concluded[0].reverted);
}

#[tokio::test]
async fn a_run_refuses_to_start_when_the_local_clock_is_off_from_aws() {
    // GIVEN AWS's clock 45 s ahead of the local one
    let h = Harness::one_group();
    h.world.with(|w| w.aws_clock_offset = Some(45));
    // WHEN run THEN aborted before any write, naming the clock
    assert_preflight_abort(&h, Settings::default(), "local clock is 45s behind AWS's clock").await;

    // GIVEN 20 s off, within the tolerance WHEN run THEN it runs
    h.world.with(|w| w.aws_clock_offset = Some(-20));
    let (report, _) = concluded(run(&h.engine(settings(&[], secs(60))), &RunRequest::default(), 3).await.unwrap());
    assert_eq!(report.outcome, Outcome::Undetected, "{}", report.reason);
}

#[tokio::test]
async fn a_judge_behind_aws_closes_by_aws_clock_and_a_future_injection_is_closed_at_once() {
    // GIVEN a scheduled experiment (10 minutes), and a judge whose clock is 5 minutes
    // behind AWS's
    let h = Harness::new(vec![group("sg-1", Some("true")), group("sg-2", Some("true"))]);
    let engine = h.engine(Settings { max_active: 2, ..settings(&[], secs(600)) });
    let record = scheduled_on_sg1(&h, &engine).await;
    h.world.with(|w| w.aws_clock_offset = Some(300));
    advance(&h, secs(301));
    // WHEN it ticks at local +301 s (AWS +601 s) THEN the experiment is overdue by AWS's
    // clock and closed, and the skew is reported
    let tick = engine.judge_tick().await.unwrap();
    assert_eq!(tick.concluded.len(), 1, "{tick:?}");
    assert!(tick.errors.iter().any(|e| e.contains("away from AWS's")), "{:?}", tick.errors);
    assert!(!h.world.rule_ids().contains(&record.security_group_rule_id));

    // GIVEN a rule on sg-2 whose injection time says one day in the future
    h.world.with(|w| w.aws_clock_offset = None);
    let future = h.clock.now() + secs(86_400);
    let planted = h.world.plant("sg-2", experiment_tags("cs-20261124T120000Z-00f00d", future));
    // WHEN the judge ticks THEN it is closed at once, `failed`, saying why
    let tick = engine.judge_tick().await.unwrap();
    assert!(!h.world.rule_ids().contains(&planted), "{tick:?}");
    assert_eq!(tick.concluded.len(), 1, "{tick:?}");
    assert_eq!(tick.concluded[0].outcome, Outcome::Failed);
    assert!(tick.concluded[0].reason.contains("in the future"), "{}", tick.concluded[0].reason);
}

#[tokio::test]
async fn an_opt_in_value_iam_would_not_match_is_never_targeted() {
    // GIVEN groups tagged `true ` (trailing space) and `TRUE`
    let h = Harness::new(vec![group("sg-1", Some("true ")), group("sg-2", Some("TRUE"))]);
    let engine = h.engine(settings(&[], secs(60)));
    // WHEN targets are listed and a run picks one
    let targets = engine.targets().await.unwrap();
    // THEN only the one IAM's StringEqualsIgnoreCase matches is eligible, and chosen
    let eligible: Vec<&str> = targets.iter().filter(|t| t.eligibility.is_ok()).map(|t| t.group.id.as_str()).collect();
    assert_eq!(eligible, ["sg-2"]);
    let (report, _) = concluded(run(&engine, &RunRequest::default(), 4).await.unwrap());
    assert_eq!(report.security_group_id.as_deref(), Some("sg-2"));
    assert!(!h.world.with(|w| w.calls.iter().any(|c| c.starts_with("denied"))));
}

#[tokio::test]
async fn a_denial_by_chaoslingrs_own_role_is_failed_not_prevented() {
    for (source, outcome, says) in [
        (DenialSource::NotAllowed, Outcome::Failed, "own role is not allowed"),
        (DenialSource::Unknown("no message".into()), Outcome::Failed, "could not be attributed"),
        (DenialSource::ExplicitDeny, Outcome::Prevented, "explicit deny"),
    ] {
        // GIVEN EC2 refusing, attributed as `source`
        let h = Harness::one_group();
        h.world.with(|w| {
            w.deny_authorize = true;
            w.deny_source = Some(source.clone());
        });
        // WHEN run
        let (report, revert) = concluded(run(&h.engine(Settings::default()), &RunRequest::default(), 5).await.unwrap());
        // THEN only an explicit deny is `prevented`
        assert_eq!(report.outcome, outcome, "{source:?}: {}", report.reason);
        assert!(report.reason.contains(says), "{}", report.reason);
        assert!(revert.is_none() && h.world.rule_ids().is_empty());
    }
}

#[tokio::test]
async fn a_failed_authorize_is_reported_reverted_only_when_the_group_was_read() {
    // GIVEN an authorize that writes the rule and times out, and a clean-up job that
    // strips the rule's tags at once (the tag listing would find nothing)
    let h = Harness::one_group();
    h.world.with(|w| w.fail_authorize_after_create = true);
    let engine = h.engine(Settings::default());
    // WHEN the experiment runs
    h.world.with(|w| w.rules.values_mut().for_each(|r| r.tags.clear()));
    let (report, revert) = concluded(run(&engine, &RunRequest::default(), 7).await.unwrap());
    // THEN the rule was found on the group by its shape and description, and removed
    assert_eq!(report.outcome, Outcome::Failed);
    assert!(revert.expect("a revert").reverted);
    assert!(report.reverted);
    assert!(h.world.rule_ids().is_empty());
}

#[tokio::test]
async fn scheduled_preflight_aborts_are_counted_and_published_quiet() {
    // GIVEN the kill switch on
    let h = Harness::one_group();
    let engine = h.engine(Settings { enabled: false, ..Settings::default() });
    // WHEN the schedule fires, and a person runs
    let scheduled = RunRequest { experiment: None, target: None, scheduled: true };
    let InjectEnd::Ended(end) = engine.inject(&scheduled, &mut StdRng::seed_from_u64(1)).await.unwrap() else {
        panic!("started with the kill switch on")
    };
    assert_eq!(concluded(end).0.outcome, Outcome::Aborted);
    // THEN the scheduled abort is counted and published marked quiet (archived, never
    // posted to Slack); the person's is counted and published as usual
    assert_eq!((h.reports().len(), h.published().len()), (1, 1));
    assert!(h.published()[0].quiet, "{:?}", h.published()[0]);
    assert!(h.published()[0].reason.contains("kill switch"), "{}", h.published()[0].reason);
    concluded(run(&engine, &RunRequest::default(), 1).await.unwrap());
    assert_eq!((h.reports().len(), h.published().len()), (2, 2));
    assert!(!h.published()[1].quiet, "a person's abort is not quiet");
}

#[tokio::test]
async fn a_judge_that_died_after_publishing_republishes_but_never_counts_twice() {
    // GIVEN a concluded experiment whose judge died after counting and publishing, before
    // marking it recorded (the marker says `counted`)
    let h = Harness::one_group();
    let engine = h.engine(settings(&[], secs(600)));
    let record = scheduled_on_sg1(&h, &engine).await;
    h.world.with(|w| w.rules.clear());
    let c = marker::Conclusion {
        outcome: Outcome::Undetected,
        concluded_at: record.deadline,
        reason: "nothing noticed".into(),
        counted: true,
        recorded: false,
    };
    engine.ingress.tag_group("sg-1", &marker::encode_conclusion(&c)).await.unwrap();

    // WHEN the next tick runs
    advance(&h, secs(700));
    let tick = engine.judge_tick().await.unwrap();

    // THEN it published the outcome, did not count it again, and removed the marker
    assert_eq!(tick.concluded.len(), 1, "{tick:?}");
    assert_eq!(h.published().len(), 1);
    assert!(h.reports().is_empty(), "counted again: {:?}", h.reports());
    assert!(!marker::is_marked(&group_tags(&h, "sg-1")));
}

#[tokio::test]
async fn a_judge_that_died_between_counting_and_its_mark_is_not_counted_twice() {
    // GIVEN a concluded experiment whose judge died right after PutMetricData, before it
    // could mark the outcome counted (the marker says neither counted nor recorded)
    let h = Harness::one_group();
    let engine = h.engine(settings(&[], secs(600)));
    let record = scheduled_on_sg1(&h, &engine).await;
    h.world.with(|w| w.rules.clear());
    let c = marker::Conclusion {
        outcome: Outcome::Undetected,
        concluded_at: record.deadline,
        reason: "nothing noticed".into(),
        counted: false,
        recorded: false,
    };
    engine.ingress.tag_group("sg-1", &marker::encode_conclusion(&c)).await.unwrap();
    let earlier = OutcomeReport {
        schema: "chaoslingr.outcome/v1",
        experiment_id: record.id.to_string(),
        experiment: "port-change",
        account: None,
        region: None,
        target_type: "security-group",
        target_id: Some("sg-1".into()),
        change_id: Some(record.security_group_rule_id.clone()),
        security_group_id: Some("sg-1".into()),
        security_group_rule_id: Some(record.security_group_rule_id.clone()),
        protocol: None,
        from_port: None,
        to_port: None,
        cidr: None,
        injected_at: None,
        concluded_at: "2026-12-01T00:00:00.000Z".into(),
        outcome: Outcome::Undetected,
        reason: "nothing noticed".into(),
        detections: vec![],
        reverted: true,
        dry_run: false,
        quiet: false,
    };
    lock(&h.recorder.counted).push(earlier);

    // WHEN the next tick runs
    advance(&h, secs(700));
    let tick = engine.judge_tick().await.unwrap();

    // THEN the metrics read back say it was counted: published, not counted again, unmarked
    assert_eq!(tick.concluded.len(), 1, "{tick:?}");
    assert_eq!(h.published().len(), 1);
    assert_eq!(h.reports().len(), 1, "counted again: {:?}", h.reports());
    assert!(!marker::is_marked(&group_tags(&h, "sg-1")));
}

#[tokio::test]
async fn a_cli_run_marks_its_group_while_it_runs_and_unmarks_it_after() {
    // GIVEN a person's run (window 60 s)
    let h = Harness::one_group();
    let engine = h.engine(settings(&[], secs(60)));
    // WHEN it runs to its end THEN it marked the group once and removed the marker
    let (report, _) = concluded(run(&engine, &RunRequest::default(), 8).await.unwrap());
    assert_eq!(report.outcome, Outcome::Undetected);
    assert!(!marker::is_marked(&group_tags(&h, "sg-1")));
    let writes = h.world.with(|w| w.calls.clone());
    assert!(writes.iter().filter(|c| c.starts_with("tag sg-1")).count() == 1, "{writes:?}");
    assert!(writes.iter().any(|c| c == "untag sg-1"), "{writes:?}");
}

#[tokio::test]
async fn the_judge_leaves_a_marked_cli_run_to_its_watcher_then_closes_it_if_the_watcher_died() {
    // GIVEN a person's run that died right after marking its group (window 15 minutes)
    let h = Harness::one_group();
    let engine = h.engine(settings(&[], secs(900)));
    let at = parse_rfc3339(T0).unwrap();
    let id = "cs-20261123T120000Z-c11c12";
    let rule_id = h.world.plant("sg-1", experiment_tags(id, at));
    let record = ExperimentRecord {
        id: id.parse().unwrap(),
        security_group_id: "sg-1".into(),
        security_group_rule_id: rule_id.clone(),
        account: Some(ACCOUNT.into()),
        protocol: Protocol::Tcp,
        ports: PortRange::single(20_000),
        cidr: "0.0.0.0/0".into(),
        injected_at: at,
        deadline: at + secs(900),
        detectors: vec![],
    };
    engine.ingress.tag_group("sg-1", &marker::encode(&record, true).unwrap()).await.unwrap();

    // WHEN the judge ticks after the deadline but within the grace
    advance(&h, secs(900) + ORPHAN_GRACE - secs(1));
    let tick = engine.judge_tick().await.unwrap();
    // THEN it leaves it to the person's run
    assert_eq!(tick.left_to_their_starter, vec![id.to_string()], "{tick:?}");
    assert_eq!(h.world.rule_ids(), vec![rule_id]);

    // WHEN the grace is over THEN the judge closes it once, says so, and unmarks
    advance(&h, secs(2));
    let tick = engine.judge_tick().await.unwrap();
    assert!(h.world.rule_ids().is_empty());
    assert_eq!(tick.concluded.len(), 1, "{tick:?}");
    assert!(tick.concluded[0].reason.contains("after its deadline"), "{}", tick.concluded[0].reason);
    assert!(!marker::is_marked(&group_tags(&h, "sg-1")));
}

#[tokio::test]
async fn a_marked_experiments_rule_changed_by_someone_else_is_concluded_and_left_alone() {
    // GIVEN a scheduled experiment whose rule someone modified into SSH from the office
    let h = Harness::one_group();
    let engine = h.engine(settings(&[], secs(600)));
    let record = scheduled_on_sg1(&h, &engine).await;
    h.world.with(|w| {
        let r = w.rules.get_mut(&record.security_group_rule_id).unwrap();
        (r.from_port, r.to_port, r.cidr) = (Some(22), Some(22), Some("10.0.0.0/8".into()));
    });

    // WHEN the judge ticks
    advance(&h, secs(60));
    let tick = engine.judge_tick().await.unwrap();

    // THEN it is not revoked; the experiment is concluded `failed` saying why, once, and
    // its marker removed so the group is not busy forever
    assert_eq!(h.world.revokes(), 0);
    assert_eq!(h.world.rule_ids(), vec![record.security_group_rule_id.clone()]);
    assert_eq!(tick.concluded.len(), 1, "{tick:?}");
    assert_eq!(tick.concluded[0].outcome, Outcome::Failed);
    assert!(tick.concluded[0].reason.contains("changed by someone else"), "{}", tick.concluded[0].reason);
    assert_eq!(tick.not_ours.len(), 1);
    assert!(!marker::is_marked(&group_tags(&h, "sg-1")));
    let again = engine.judge_tick().await.unwrap();
    assert!(again.concluded.is_empty(), "{again:?}");
}

#[tokio::test]
async fn a_cli_run_whose_group_is_opted_out_closes_it_at_its_next_tick_with_one_outcome() {
    // GIVEN a person's run (10 minutes, observing every 15 s) and owners who opt the
    // group out 60 s in
    let h = Harness::one_group();
    let start = parse_rfc3339(T0).unwrap();
    h.world.with(|w| w.opt_out_at = Some(start + secs(60)));
    let engine = h.engine(settings(&[], secs(600)));

    // WHEN it runs
    let (report, revert) = concluded(run(&engine, &RunRequest::default(), 11).await.unwrap());

    // THEN it ends at its next observation as `aborted` (never `remediated`), the rule
    // reverted under the modelled IAM (the group carries the marker), one outcome
    // recorded, and the marker removed
    assert_eq!(report.outcome, Outcome::Aborted, "{}", report.reason);
    assert!(report.reason.contains("opted out"), "{}", report.reason);
    assert!(h.elapsed() < secs(90), "{:?}", h.elapsed());
    assert!(revert.expect("a revert").reverted);
    assert!(h.world.rule_ids().is_empty());
    assert_eq!(h.reports().len(), 1);
    assert!(!marker::is_marked(&group_tags(&h, "sg-1")));
    assert!(h.world.with(|w| !w.calls.iter().any(|c| c.starts_with("denied"))));
}
