//! One account and region as the SDK sees it: the hub's configuration in another region,
//! and, in a target account, credentials from `sts:AssumeRole` into its role.

use std::time::Duration;

use aws_config::sts::AssumeRoleProvider;
use aws_config::{Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use chaoslingr_domain::fleet::{Scope, Targets};
use chaoslingr_domain::ports::CallError;

use crate::errors::call_error;
use crate::AwsRecorder;

/// How long the assumed role's credentials last; the SDK renews them before they end.
pub const SESSION_LENGTH: Duration = Duration::from_secs(3600);

/// The credentials of `account`'s target role: assumed from `hub`'s credentials (session
/// `session`, e.g. `chaoslingr-judge`, so CloudTrail there shows who acted), through STS
/// in the hub's region. Nothing is called here: the role is assumed on first use, and the
/// credentials are cached and renewed by the SDK for every client that shares this
/// provider (one per account, whatever its regions).
pub async fn role_credentials(
    hub: &SdkConfig,
    account: &str,
    targets: &Targets,
    session: &str,
) -> SharedCredentialsProvider {
    let hub_region = hub.region().map(|r| r.as_ref().to_string()).unwrap_or_else(|| "us-east-1".into());
    let arn = targets.role_arn(crate::partition(&hub_region), account);
    let mut role = AssumeRoleProvider::builder(arn)
        .session_name(session)
        .session_length(SESSION_LENGTH)
        // STS in the hub's own region: regional endpoints keep working when the target
        // region is one the hub never enabled.
        .region(Region::new(hub_region));
    if let Some(id) = &targets.external_id {
        role = role.external_id(id);
    }
    SharedCredentialsProvider::new(role.configure(hub).build().await)
}

/// The SDK configuration of `scope`: `hub` in the scope's region, with `credentials`
/// (the account's target role, see [`role_credentials`]) when the scope names an
/// account. A role that cannot be assumed shows as that scope's calls failing, and no
/// other's.
pub fn scope_config(hub: &SdkConfig, scope: &Scope, credentials: Option<SharedCredentialsProvider>) -> SdkConfig {
    let mut builder = hub.to_builder().region(Region::new(scope.region.clone()));
    if let Some(c) = credentials {
        builder = builder.credentials_provider(c);
    }
    builder.build()
}

/// The metric a scope that could not be worked on is counted in: `ScopeErrors`, with
/// the `Account` (`self` for the credentials' own) and `Region` dimensions.
pub const SCOPE_ERRORS_METRIC: &str = "ScopeErrors";

impl AwsRecorder {
    /// Counts the scopes a command could not work on (a role that cannot be assumed, a
    /// region not enabled, a service failing there), one datum each, in one request.
    pub async fn count_scope_errors(&self, scopes: &[Scope]) -> Result<(), CallError> {
        if scopes.is_empty() {
            return Ok(());
        }
        let dimension = |name: &str, value: &str| Dimension::builder().name(name).value(value).build();
        let data: Vec<MetricDatum> = scopes
            .iter()
            .map(|scope| {
                MetricDatum::builder()
                    .metric_name(SCOPE_ERRORS_METRIC)
                    .dimensions(dimension("Account", scope.account.as_deref().unwrap_or("self")))
                    .dimensions(dimension("Region", &scope.region))
                    .value(1.0)
                    .unit(StandardUnit::Count)
                    .build()
            })
            .collect();
        self.cloudwatch
            .put_metric_data()
            .namespace(&self.namespace)
            .set_metric_data(Some(data))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| call_error("PutMetricData", &e))
    }
}
