//! ChaoSlingr's techniques, one folder each, and the registry.
//!
//! A technique is one kind of unauthorized change. Its folder holds its description (a
//! [`Technique`]), its pure logic and its AWS adapter side by side; the adapter
//! implements the domain's [`Ingress`] for that technique's targets and changes. The
//! lifecycle, the judge, the detectors, recording and notification are shared, and know
//! no technique by name.
//!
//! [`REGISTRY`] is the one place techniques are registered: the CLI's `--experiment`,
//! the inject event's `experiment`, `targets`, `status`, `revert --all` and every judge
//! tick take the list from there. [`Techniques`] puts every registered adapter behind one
//! [`Ingress`], routing each call by the kind of id it names (`sg-…`, `acl-…`), so one
//! engine runs, finds and reverts experiments of every technique.
//!
//! Adding a technique: a folder beside [`port_change`] and [`nacl_entry`] with its
//! `static TECHNIQUE` and an adapter implementing [`Ingress`], and one line in
//! [`REGISTRY`].

pub mod nacl_entry;
pub mod port_change;

use std::future::Future;
use std::pin::Pin;
use std::time::SystemTime;

use chaoslingr_aws::{AwsAdapters, AwsDetectors, AwsRecorder, Ec2};
use chaoslingr_domain::engine::Engine;
use chaoslingr_domain::ports::{
    AuthorizeOutcome, CallError, Changes, FailureKind, Ingress, IngressRequest, Markers, RevokeOutcome, SystemClock,
    Targets,
};
use chaoslingr_domain::selection::GroupInfo;
use chaoslingr_domain::tags::TaggedRule;
use chaoslingr_domain::technique::{Technique, TechniqueRef};
use chaoslingr_domain::Settings;

/// A technique and the constructor of its adapter on the shared EC2 plumbing.
pub type Registration = (TechniqueRef, fn(&Ec2) -> Box<dyn Adapter>);

/// Every technique, the default (`port-change`) first.
pub static REGISTRY: [Registration; 2] = [
    (&port_change::TECHNIQUE, |ec2| Box::new(port_change::Ec2Ingress::on(ec2.clone()))),
    (&nacl_entry::TECHNIQUE, |ec2| Box::new(nacl_entry::NaclEntries::on(ec2.clone()))),
];

static ALL: [TechniqueRef; REGISTRY.len()] = {
    let mut all: [TechniqueRef; REGISTRY.len()] = [REGISTRY[0].0; REGISTRY.len()];
    let mut i = 0;
    while i < REGISTRY.len() {
        all[i] = REGISTRY[i].0;
        i += 1;
    }
    all
};

/// Every registered technique, the default first.
pub fn all() -> &'static [TechniqueRef] {
    &ALL
}

/// The technique named `name`, or an error listing the names.
pub fn by_name(name: &str) -> Result<TechniqueRef, String> {
    chaoslingr_domain::technique::by_name(all(), name)
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A technique's adapter behind a pointer: [`Ingress`] with boxed futures, implemented
/// for every [`Ingress`].
pub trait Adapter: Send + Sync {
    fn technique(&self) -> TechniqueRef;
    fn groups_with_tag_key<'a>(&'a self, tag_key: &'a str) -> Boxed<'a, Result<Vec<GroupInfo>, CallError>>;
    fn group<'a>(&'a self, group_id: &'a str) -> Boxed<'a, Result<Option<GroupInfo>, CallError>>;
    fn experiment_rules(&self) -> Boxed<'_, Result<Vec<TaggedRule>, CallError>>;
    fn group_rules<'a>(&'a self, group_id: &'a str) -> Boxed<'a, Result<Vec<TaggedRule>, CallError>>;
    fn rule<'a>(&'a self, rule_id: &'a str) -> Boxed<'a, Result<Option<TaggedRule>, CallError>>;
    fn authorize<'a>(&'a self, request: &'a IngressRequest) -> Boxed<'a, Result<AuthorizeOutcome, CallError>>;
    fn revoke<'a>(&'a self, group_id: &'a str, rule_id: &'a str) -> Boxed<'a, Result<RevokeOutcome, CallError>>;
    fn tag_group<'a>(&'a self, group_id: &'a str, tags: &'a [(String, String)]) -> Boxed<'a, Result<(), CallError>>;
    fn untag_group<'a>(&'a self, group_id: &'a str, keys: &'a [&'a str]) -> Boxed<'a, Result<(), CallError>>;
    fn aws_time(&self) -> Option<SystemTime>;
}

impl<T: Ingress> Adapter for T {
    fn technique(&self) -> TechniqueRef {
        Targets::techniques(self)[0]
    }
    fn groups_with_tag_key<'a>(&'a self, tag_key: &'a str) -> Boxed<'a, Result<Vec<GroupInfo>, CallError>> {
        Box::pin(Targets::groups_with_tag_key(self, tag_key))
    }
    fn group<'a>(&'a self, group_id: &'a str) -> Boxed<'a, Result<Option<GroupInfo>, CallError>> {
        Box::pin(Targets::group(self, group_id))
    }
    fn experiment_rules(&self) -> Boxed<'_, Result<Vec<TaggedRule>, CallError>> {
        Box::pin(Changes::experiment_rules(self))
    }
    fn group_rules<'a>(&'a self, group_id: &'a str) -> Boxed<'a, Result<Vec<TaggedRule>, CallError>> {
        Box::pin(Changes::group_rules(self, group_id))
    }
    fn rule<'a>(&'a self, rule_id: &'a str) -> Boxed<'a, Result<Option<TaggedRule>, CallError>> {
        Box::pin(Changes::rule(self, rule_id))
    }
    fn authorize<'a>(&'a self, request: &'a IngressRequest) -> Boxed<'a, Result<AuthorizeOutcome, CallError>> {
        Box::pin(Changes::authorize(self, request))
    }
    fn revoke<'a>(&'a self, group_id: &'a str, rule_id: &'a str) -> Boxed<'a, Result<RevokeOutcome, CallError>> {
        Box::pin(Changes::revoke(self, group_id, rule_id))
    }
    fn tag_group<'a>(&'a self, group_id: &'a str, tags: &'a [(String, String)]) -> Boxed<'a, Result<(), CallError>> {
        Box::pin(Markers::tag_group(self, group_id, tags))
    }
    fn untag_group<'a>(&'a self, group_id: &'a str, keys: &'a [&'a str]) -> Boxed<'a, Result<(), CallError>> {
        Box::pin(Markers::untag_group(self, group_id, keys))
    }
    fn aws_time(&self) -> Option<SystemTime> {
        Targets::aws_time(self)
    }
}

/// Every registered technique's adapter behind one [`Ingress`]: listings cover every
/// technique (their calls go out together), everything about one target or change goes
/// to the technique whose ids look like it.
pub struct Techniques {
    adapters: Vec<Box<dyn Adapter>>,
}

impl std::fmt::Debug for Techniques {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.adapters.iter().map(|a| a.technique().name).collect();
        f.debug_struct("Techniques").field("adapters", &names).finish()
    }
}

impl Techniques {
    /// Every registered technique on one EC2 client.
    pub fn on(ec2: &Ec2) -> Self {
        Techniques { adapters: REGISTRY.iter().map(|(_, adapter)| adapter(ec2)).collect() }
    }

    /// The given adapters (tests).
    pub fn of(adapters: Vec<Box<dyn Adapter>>) -> Self {
        Techniques { adapters }
    }

    fn for_target(&self, id: &str, operation: &'static str) -> Result<&dyn Adapter, CallError> {
        self.adapters.iter().find(|a| a.technique().owns_target(id)).map(|a| a.as_ref()).ok_or_else(|| {
            CallError::new(
                operation,
                FailureKind::Other,
                None,
                format!("`{id}` is a target of no registered technique"),
            )
        })
    }

    fn for_change(&self, rule_id: &str, operation: &'static str) -> Result<&dyn Adapter, CallError> {
        self.adapters.iter().find(|a| a.technique().owns_change(rule_id)).map(|a| a.as_ref()).ok_or_else(|| {
            CallError::new(
                operation,
                FailureKind::Other,
                None,
                format!("`{rule_id}` is a change of no registered technique"),
            )
        })
    }
}

async fn concat<T>(parts: Vec<Boxed<'_, Result<Vec<T>, CallError>>>) -> Result<Vec<T>, CallError> {
    let mut out = Vec::new();
    for part in futures_util::future::join_all(parts).await {
        out.extend(part?);
    }
    Ok(out)
}

impl Targets for Techniques {
    fn techniques(&self) -> &'static [TechniqueRef] {
        all()
    }

    async fn groups_with_tag_key(&self, tag_key: &str) -> Result<Vec<GroupInfo>, CallError> {
        concat(self.adapters.iter().map(|a| a.groups_with_tag_key(tag_key)).collect()).await
    }

    async fn group(&self, group_id: &str) -> Result<Option<GroupInfo>, CallError> {
        self.for_target(group_id, "describe")?.group(group_id).await
    }

    fn aws_time(&self) -> Option<SystemTime> {
        self.adapters.iter().find_map(|a| a.aws_time())
    }
}

impl Changes for Techniques {
    async fn experiment_rules(&self) -> Result<Vec<TaggedRule>, CallError> {
        concat(self.adapters.iter().map(|a| a.experiment_rules()).collect()).await
    }

    async fn group_rules(&self, group_id: &str) -> Result<Vec<TaggedRule>, CallError> {
        self.for_target(group_id, "describe")?.group_rules(group_id).await
    }

    async fn rule(&self, rule_id: &str) -> Result<Option<TaggedRule>, CallError> {
        self.for_change(rule_id, "describe")?.rule(rule_id).await
    }

    async fn authorize(&self, request: &IngressRequest) -> Result<AuthorizeOutcome, CallError> {
        self.for_target(&request.security_group_id, "authorize")?.authorize(request).await
    }

    async fn revoke(&self, group_id: &str, rule_id: &str) -> Result<RevokeOutcome, CallError> {
        self.for_target(group_id, "revoke")?.revoke(group_id, rule_id).await
    }
}

impl Markers for Techniques {
    async fn tag_group(&self, group_id: &str, tags: &[(String, String)]) -> Result<(), CallError> {
        self.for_target(group_id, "CreateTags")?.tag_group(group_id, tags).await
    }

    async fn untag_group(&self, group_id: &str, keys: &[&str]) -> Result<(), CallError> {
        self.for_target(group_id, "DeleteTags")?.untag_group(group_id, keys).await
    }
}

/// The engine on AWS, as the CLI and the functions run it.
pub type AwsEngine = Engine<Techniques, AwsDetectors, AwsRecorder, SystemClock>;

/// Builds the engine on AWS from one SDK configuration and validated settings: the one
/// place the CLI and the functions get it from.
pub fn aws_engine(conf: &aws_config::SdkConfig, settings: Settings) -> AwsEngine {
    let adapters = AwsAdapters::new(conf, settings.namespace.clone(), settings.topic_arn.clone());
    engine_on(adapters, settings)
}

/// The engine on adapters already built (to reuse their clients across invocations).
pub fn engine_on(adapters: AwsAdapters, settings: Settings) -> AwsEngine {
    Engine {
        ingress: Techniques::on(&adapters.ec2),
        detectors: adapters.detectors,
        recorder: adapters.recorder,
        clock: SystemClock,
        settings,
        region: adapters.region,
        account: None,
    }
}

/// Names and one-line summaries of every technique, for help texts.
pub fn help() -> String {
    REGISTRY.iter().map(|(t, _)| describe(t)).collect::<Vec<_>>().join("\n")
}

fn describe(t: &Technique) -> String {
    format!("  {:<12} {}", t.name, t.summary)
}
