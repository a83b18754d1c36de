# Every feature of the module: both techniques (security-group rules and network ACL
# entries), the AWS Config rule and the CIS network ACL alarm as detectors next to a
# firewall alarm and Security Hub, authorized ports shared by the experiments and the
# rule, allowed hours, a stop alarm, the Slack notifier reading its webhook from SSM, the
# outcome archive in S3 with a policy for the people who read it, and the dashboard.
#
# Prerequisites: the zips (infra/lambda.sh build), an AWS Config configuration recorder
# recording AWS::EC2::SecurityGroup in the region, a CloudTrail trail delivering the
# region's management events to CloudWatch Logs, and the Slack webhook URL stored as an
# SSM SecureString (see README.md beside this file).

terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.30, < 7.0"
    }
  }
}

provider "aws" {
  region = var.region
}

variable "region" {
  description = "AWS region to deploy to."
  type        = string
  default     = "eu-west-1"
}

variable "enabled" {
  description = "The kill switch: false stops new experiments without destroying anything."
  type        = bool
  default     = true
}

variable "slack_webhook_ssm_parameter" {
  description = "Name of the existing SSM SecureString parameter holding the Slack incoming-webhook URL."
  type        = string
  default     = "/chaoslingr/slack-webhook"
}

variable "cloudtrail_log_group_name" {
  description = "Name of the CloudWatch Logs group a CloudTrail trail delivers this region's management events to."
  type        = string
  default     = "aws-cloudtrail-logs-management"
}

variable "firewall_alarm_name" {
  description = "Name of an existing CloudWatch alarm raised by the network firewall or IDS when a new port is reachable."
  type        = string
  default     = "firewall-new-open-port"
}

variable "incident_alarm_name" {
  description = "Name of an existing alarm that means \"not now\" (an incident in progress): no experiment starts while it is in ALARM."
  type        = string
  default     = "oncall-incident-open"
}

module "chaoslingr" {
  source = "../.."

  name    = "chaoslingr"
  enabled = var.enabled

  # Experiments: hourly 10:00-16:00 on weekdays in Berlin; the functions additionally
  # refuse to start outside 08:00-16:00 UTC, Monday to Friday.
  schedule_timezone = "Europe/Berlin"
  inject_schedule   = "cron(0 10-16 ? * MON-FRI *)"
  allowed_hours     = "mon-fri 08:00-16:00"
  stop_alarms       = [var.incident_alarm_name]

  # What is changed: each run picks one technique at random, an ingress rule on an
  # opted-in security group or an inbound entry on an opted-in network ACL.
  experiments = ["port-change", "nacl-entry"]

  # What is measured. The module's Config rule (security groups) and its CIS alarm on
  # network ACL changes are added to these detectors.
  detectors = [
    "alarm:${var.firewall_alarm_name}",
    "securityhub",
  ]
  create_config_rule        = true
  config_rule_name          = "vpc-sg-open-only-to-authorized-ports"
  create_nacl_change_alarm  = true
  cloudtrail_log_group_name = var.cloudtrail_log_group_name
  window                    = "15m"

  # What is injected: one to six tcp or udp ports above 10000, open to the world, never
  # a port the owners declared authorized (the Config rule allows the same ports).
  authorized_ports = ["tcp:22", "tcp:443", "udp:53"]
  port_range       = "10000-65000"
  max_ports        = 6
  protocols        = ["tcp", "udp"]
  cidr             = "0.0.0.0/0"
  max_active       = 1

  # Slack: the notifier reads the URL from SSM at run time; it never passes through
  # Terraform or its state.
  slack_webhook_ssm_parameter = var.slack_webhook_ssm_parameter

  # Every outcome, quiet pre-flight aborts included, kept as one object per experiment
  # in an encrypted bucket for about two years, under
  # s3://<bucket>/security/chaoslingr/outcomes/v1/.
  archive_outcomes       = true
  archive_prefix         = "security/chaoslingr/"
  archive_retention_days = 731

  log_retention_days = 365
  log_level          = "INFO"
  tracing_enabled    = true

  tags = {
    project = "chaoslingr"
    owner   = "security-engineering"
  }
}

# Read access to the archive for the people who run `chaoslingr report --archive`:
# attach this policy to their role or group (auditors, the security team).
resource "aws_iam_policy" "archive_reader" {
  name        = "chaoslingr-archive-reader"
  description = "List and read ChaoSlingr's outcome archive (chaoslingr report --archive)."
  policy      = module.chaoslingr.archive_reader_policy_json
}

output "inject_function_name" {
  description = "Invoke it by hand to start an experiment now (see README.md)."
  value       = module.chaoslingr.inject_function_name
}

output "judge_function_name" {
  description = "The judge, invoked every minute."
  value       = module.chaoslingr.judge_function_name
}

output "notify_function_name" {
  description = "The Slack notifier."
  value       = module.chaoslingr.notify_function_name
}

output "topic_arn" {
  description = "Starts and outcomes are published here."
  value       = module.chaoslingr.topic_arn
}

output "detectors" {
  description = "The detectors every experiment measures."
  value       = module.chaoslingr.detectors
}

output "experiments" {
  description = "The techniques the schedule picks from."
  value       = module.chaoslingr.experiments
}

output "archive_url" {
  description = "The outcome archive: `chaoslingr report --archive <this>`."
  value       = module.chaoslingr.archive_url
}

output "archive_reader_policy_arn" {
  description = "Attach it to whoever reads the archive."
  value       = aws_iam_policy.archive_reader.arn
}

output "dashboard_name" {
  description = "The CloudWatch dashboard with the results."
  value       = module.chaoslingr.dashboard_name
}

output "dead_letter_queue_url" {
  description = "Failed invocations end up here."
  value       = module.chaoslingr.dead_letter_queue_url
}
