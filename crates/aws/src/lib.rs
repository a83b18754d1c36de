//! ChaoSlingr's adapters onto the official AWS SDK.
//!
//! Each adapter implements one capability trait of `chaoslingr_domain::ports`:
//! [`Ec2Ingress`] (security groups and rules), [`AwsDetectors`] (AWS Config, CloudWatch
//! alarms, Security Hub) and [`AwsRecorder`] (CloudWatch metrics, SNS). Endpoints,
//! region and credentials come from the standard AWS environment (`AWS_PROFILE`,
//! `AWS_REGION`, `AWS_ENDPOINT_URL`, ...), never from code.

mod detectors;
mod ec2;
mod errors;
mod recorder;

pub use detectors::AwsDetectors;
pub use ec2::Ec2Ingress;
pub use errors::call_error;
pub use recorder::{metric_data, AwsRecorder};

use aws_config::{BehaviorVersion, SdkConfig};

/// Loads the standard AWS configuration chain (environment, profile, SSO, IMDS).
pub async fn load_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// The ARN partition of a region.
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}
