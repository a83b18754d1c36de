//! EC2 plumbing every technique's adapter shares: one client that reads AWS's clock off
//! every response, STS to attribute a denial, and the target tags (the experiment record
//! and the marker) written and removed with `CreateTags` and `DeleteTags`.

use aws_sdk_ec2::types::Tag;
use aws_sdk_ec2::Client;
use chaoslingr_domain::ports::{AuthorizeOutcome, CallError, DenialSource};

use crate::errors::call_error;

/// The EC2 client of a technique's adapter, with what attributing denials and reading
/// AWS's clock need.
#[derive(Debug, Clone)]
pub struct Ec2 {
    pub client: Client,
    /// Decodes EC2's encoded authorization failure messages, to tell a preventive
    /// control's explicit deny from a permission ChaoSlingr's own role lacks.
    pub sts: Option<aws_sdk_sts::Client>,
    pub clock: AwsClock,
}

impl Ec2 {
    /// On a ready-made client (tests): no authorization-message decoding, and AWS's clock
    /// is read only from responses that pass through [`Ec2::from_conf`]'s client.
    pub fn new(client: Client) -> Self {
        Ec2 { client, sts: None, clock: AwsClock::default() }
    }

    /// The EC2 client for `conf`, reading AWS's clock off every response's `Date`, and STS
    /// for decoding authorization failures.
    pub fn from_conf(conf: &aws_config::SdkConfig) -> Self {
        let clock = AwsClock::default();
        let ec2 = aws_sdk_ec2::config::Builder::from(conf).interceptor(clock.clone()).build();
        Ec2 { client: Client::from_conf(ec2), sts: Some(aws_sdk_sts::Client::new(conf)), clock }
    }

    /// Attaches an STS client for decoding authorization failures.
    pub fn with_sts(mut self, sts: aws_sdk_sts::Client) -> Self {
        self.sts = Some(sts);
        self
    }

    /// Who refused, from the encoded message EC2 puts after "Encoded authorization
    /// failure message:" (decoded by STS: `explicitDeny` says whether a Deny matched).
    pub async fn denial_source(&self, message: &str) -> DenialSource {
        const MARK: &str = "Encoded authorization failure message:";
        let Some(encoded) = message.split_once(MARK).map(|(_, e)| e.trim()).filter(|e| !e.is_empty()) else {
            return DenialSource::Unknown("EC2 gave no encoded authorization message".into());
        };
        let encoded = encoded.split_whitespace().next().unwrap_or(encoded).trim_end_matches('.');
        let Some(sts) = &self.sts else {
            return DenialSource::Unknown("no STS client to decode the authorization message".into());
        };
        let decoded = match sts.decode_authorization_message().encoded_message(encoded).send().await {
            Ok(out) => out.decoded_message().unwrap_or_default().to_string(),
            Err(e) => {
                let err = call_error("DecodeAuthorizationMessage", &e);
                return DenialSource::Unknown(format!("could not decode the authorization message: {err}"));
            }
        };
        denial_source_of(&decoded)
    }

    /// A write refused by IAM, as [`AuthorizeOutcome::Denied`] with who refused it.
    pub async fn denied(&self, err: CallError) -> AuthorizeOutcome {
        let source = self.denial_source(&err.message).await;
        AuthorizeOutcome::Denied {
            code: err.code.unwrap_or_else(|| "AccessDenied".into()),
            message: err.message,
            source,
        }
    }

    /// `CreateTags` on one resource (a target: its experiment record or marker).
    pub async fn tag(&self, resource_id: &str, tags: &[(String, String)]) -> Result<(), CallError> {
        let tags: Vec<Tag> = tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect();
        self.client
            .create_tags()
            .resources(resource_id)
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| call_error("CreateTags", &e))?;
        Ok(())
    }

    /// `DeleteTags` on one resource, by key (whatever the values).
    pub async fn untag(&self, resource_id: &str, keys: &[&str]) -> Result<(), CallError> {
        let tags: Vec<Tag> = keys.iter().map(|k| Tag::builder().key(*k).build()).collect();
        self.client
            .delete_tags()
            .resources(resource_id)
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| call_error("DeleteTags", &e))?;
        Ok(())
    }
}

/// Tags as key-value pairs.
pub fn tag_pairs(tags: &[Tag]) -> Vec<(String, String)> {
    tags.iter().map(|t| (t.key().unwrap_or_default().to_string(), t.value().unwrap_or_default().to_string())).collect()
}

/// The [`DenialSource`] of a decoded authorization message.
pub fn denial_source_of(decoded: &str) -> DenialSource {
    match serde_json::from_str::<serde_json::Value>(decoded).ok().and_then(|v| v.get("explicitDeny")?.as_bool()) {
        Some(true) => DenialSource::ExplicitDeny,
        Some(false) => DenialSource::NotAllowed,
        None => DenialSource::Unknown("the decoded authorization message has no `explicitDeny`".into()),
    }
}

/// AWS's clock, as told by the `Date` header of the latest response, kept with the
/// local monotonic instant it arrived at. `Date` has whole seconds only, which is ample
/// for the 30-second tolerance it is used for.
#[derive(Debug, Clone, Default)]
pub struct AwsClock {
    seen: std::sync::Arc<std::sync::Mutex<Option<(std::time::SystemTime, std::time::Instant)>>>,
}

impl AwsClock {
    /// AWS's time now, if any response told it.
    pub fn now(&self) -> Option<std::time::SystemTime> {
        let seen = *self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.map(|(at, when)| at + when.elapsed())
    }

    /// Reads an HTTP `Date` header value.
    pub fn observe(&self, date: &str) {
        if let Ok(t) = aws_smithy_types::DateTime::from_str(date, aws_smithy_types::date_time::Format::HttpDate) {
            if let Ok(at) = std::time::SystemTime::try_from(t) {
                *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Some((at, std::time::Instant::now()));
            }
        }
    }
}

impl aws_sdk_ec2::config::Intercept for AwsClock {
    fn name(&self) -> &'static str {
        "ChaoSlingrAwsClock"
    }

    fn read_after_transmit(
        &self,
        context: &aws_sdk_ec2::config::interceptors::BeforeDeserializationInterceptorContextRef<'_>,
        _runtime_components: &aws_sdk_ec2::config::RuntimeComponents,
        _cfg: &mut aws_sdk_ec2::config::ConfigBag,
    ) -> Result<(), aws_sdk_ec2::error::BoxError> {
        if let Some(date) = context.response().headers().get("date") {
            self.observe(date);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_explicit_deny_in_the_decoded_message_is_a_preventive_control() {
        assert_eq!(denial_source_of(r#"{"allowed":false,"explicitDeny":true}"#), DenialSource::ExplicitDeny);
        assert_eq!(denial_source_of(r#"{"allowed":false,"explicitDeny":false}"#), DenialSource::NotAllowed);
        assert!(matches!(denial_source_of(r#"{"allowed":false}"#), DenialSource::Unknown(_)));
        assert!(matches!(denial_source_of("not json"), DenialSource::Unknown(_)));
    }

    #[tokio::test]
    async fn a_denial_without_an_encoded_message_or_sts_is_unattributed() {
        let conf =
            aws_sdk_ec2::Config::builder().behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest()).build();
        let ec2 = Ec2::new(Client::from_conf(conf));
        let plain = ec2.denial_source("You are not authorized to perform this operation.").await;
        assert!(matches!(plain, DenialSource::Unknown(ref w) if w.contains("no encoded")), "{plain:?}");
        let encoded = ec2
            .denial_source(
                "You are not authorized to perform this operation. Encoded authorization failure message: abc123",
            )
            .await;
        assert!(matches!(encoded, DenialSource::Unknown(ref w) if w.contains("no STS client")), "{encoded:?}");
    }
    #[test]
    fn the_aws_clock_reads_http_dates_and_advances() {
        let clock = AwsClock::default();
        assert!(clock.now().is_none());
        clock.observe("Wed, 02 Dec 2026 01:48:44 GMT");
        let at = clock.now().unwrap();
        let expected = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_796_176_124);
        assert!(at >= expected && at < expected + std::time::Duration::from_secs(5), "{at:?}");
        clock.observe("garbage");
        assert!(clock.now().unwrap() >= expected);
    }
}
