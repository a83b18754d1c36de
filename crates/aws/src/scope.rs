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

/// The SDK configuration of `scope`: `hub` in the scope's region and, when the scope
/// names an account, with credentials from assuming `targets`' role there (session
/// `session`, e.g. `chaoslingr-judge`). Nothing is called here: the role is assumed on
/// the scope's first call and its credentials are cached and renewed by the SDK, so a
/// role that cannot be assumed shows as that scope's calls failing, and no other's.
pub async fn scope_config(hub: &SdkConfig, scope: &Scope, targets: &Targets, session: &str) -> SdkConfig {
    let region = Region::new(scope.region.clone());
    let mut builder = hub.to_builder().region(region.clone());
    if let Some(account) = &scope.account {
        let hub_region = hub.region().map(|r| r.as_ref().to_string()).unwrap_or_else(|| scope.region.clone());
        let arn = targets.role_arn(crate::partition(&hub_region), account);
        let mut role = AssumeRoleProvider::builder(arn)
            .session_name(session)
            .session_length(SESSION_LENGTH)
            // STS in the hub's own region: regional endpoints keep working when the
            // target region is one the hub never enabled.
            .region(hub.region().cloned().unwrap_or(region));
        if let Some(id) = &targets.external_id {
            role = role.external_id(id);
        }
        let provider = role.configure(hub).build().await;
        builder = builder.credentials_provider(SharedCredentialsProvider::new(provider));
    }
    builder.build()
}

/// The metric a scope that could not be worked on is counted in: `ScopeErrors`, with
/// the `Account` (`self` for the credentials' own) and `Region` dimensions.
pub const SCOPE_ERRORS_METRIC: &str = "ScopeErrors";

impl AwsRecorder {
    /// Counts one scope a command could not work on (a role that cannot be assumed, a
    /// region not enabled, a service failing there).
    pub async fn count_scope_error(&self, scope: &Scope) -> Result<(), CallError> {
        let dimension = |name: &str, value: &str| Dimension::builder().name(name).value(value).build();
        let datum = MetricDatum::builder()
            .metric_name(SCOPE_ERRORS_METRIC)
            .dimensions(dimension("Account", scope.account.as_deref().unwrap_or("self")))
            .dimensions(dimension("Region", &scope.region))
            .value(1.0)
            .unit(StandardUnit::Count)
            .build();
        self.cloudwatch
            .put_metric_data()
            .namespace(&self.namespace)
            .metric_data(datum)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| call_error("PutMetricData", &e))
    }
}
