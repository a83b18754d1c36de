//! ChaoSlingr's adapters onto the official AWS SDK.
//!
//! [`AwsDetectors`] (AWS Config, CloudWatch alarms, Security Hub) and [`AwsRecorder`]
//! (CloudWatch metrics, SNS) implement capability traits of `chaoslingr_domain::ports`;
//! [`ec2`] is the EC2 plumbing the techniques' own adapters share (each technique's
//! adapter lives in its folder of `chaoslingr-techniques`). Endpoints,
//! region and credentials come from the standard AWS environment (`AWS_PROFILE`,
//! `AWS_REGION`, `AWS_ENDPOINT_URL`, ...), never from code.

mod detectors;
pub mod ec2;
mod errors;
pub mod metrics_history;
mod recorder;
pub mod scope;

pub use detectors::AwsDetectors;
pub use ec2::{denial_source_of, AwsClock, Ec2};
pub use errors::call_error;
pub use recorder::{metric_data, AwsRecorder};

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

/// Loads the standard AWS configuration chain (environment, profile, SSO, IMDS), with
/// timeouts so that no call can hang an experiment (and its revert) forever.
pub async fn load_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(Duration::from_secs(20))
                .operation_timeout(Duration::from_secs(60))
                .build(),
        )
        .load()
        .await
}

/// The shared adapters, built once from one SDK configuration: the EC2 plumbing the
/// techniques build on, the detectors and the recorder.
#[derive(Debug, Clone)]
pub struct AwsAdapters {
    pub ec2: Ec2,
    pub detectors: AwsDetectors,
    pub recorder: AwsRecorder,
    pub region: Option<String>,
}

impl AwsAdapters {
    pub fn new(conf: &SdkConfig, namespace: String, topic_arn: Option<String>) -> Self {
        let region = conf.region().map(|r| r.to_string());
        let cloudwatch = aws_sdk_cloudwatch::Client::new(conf);
        AwsAdapters {
            ec2: Ec2::from_conf(conf),
            detectors: AwsDetectors::new(
                cloudwatch.clone(),
                aws_sdk_config::Client::new(conf),
                aws_sdk_securityhub::Client::new(conf),
                region.clone(),
            ),
            recorder: AwsRecorder::new(cloudwatch, aws_sdk_sns::Client::new(conf), namespace, topic_arn),
            region,
        }
    }

    /// The adapters of one account and region: the techniques' EC2 and the detectors on
    /// `scope` (the target's credentials and region), the recorder on `hub` (metrics and
    /// the topic stay with the deployment).
    pub fn for_scope(hub: &SdkConfig, scope: &SdkConfig, namespace: String, topic_arn: Option<String>) -> Self {
        let on_scope = AwsAdapters::new(scope, namespace.clone(), topic_arn.clone());
        AwsAdapters { recorder: AwsAdapters::new(hub, namespace, topic_arn).recorder, ..on_scope }
    }
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
