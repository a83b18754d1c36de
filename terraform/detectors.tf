# Optional detectors and alarms shipped with the module.

locals {
  # CHAOSLINGR_AUTHORIZED_PORTS entries without a protocol prefix count for both.
  config_rule_tcp_ports = [for p in var.authorized_ports : trimprefix(p, "tcp:") if !startswith(p, "udp:")]
  config_rule_udp_ports = [for p in var.authorized_ports : trimprefix(p, "udp:") if !startswith(p, "tcp:")]
  config_rule_parameters = merge(
    length(local.config_rule_tcp_ports) > 0 ? { authorizedTcpPorts = join(",", local.config_rule_tcp_ports) } : {},
    length(local.config_rule_udp_ports) > 0 ? { authorizedUdpPorts = join(",", local.config_rule_udp_ports) } : {},
  )

  # The CIS alarm on network ACL changes exists only for a scheduled nacl-entry technique.
  create_nacl_change_alarm = var.create_nacl_change_alarm && contains(var.experiments, "nacl-entry")
  nacl_change_alarm_name   = "${var.name}-network-acl-changes"
  nacl_change_metric = {
    name      = "NetworkAclChanges"
    namespace = "CloudTrailMetrics"
  }
}

# The AWS Config managed rule that flags security groups open to 0.0.0.0/0 (or ::/0) on
# ports other than the authorized ones: the control the default experiment measures.
# It needs a configuration recorder already recording AWS::EC2::SecurityGroup in this
# region; the module does not create one (an account has at most one per region).
resource "aws_config_config_rule" "open_ports" {
  count = var.create_config_rule ? 1 : 0

  name        = var.config_rule_name
  description = "Security groups may be open to 0.0.0.0/0 or ::/0 only on authorized ports (a ChaoSlingr detector)."

  source {
    owner             = "AWS"
    source_identifier = "VPC_SG_OPEN_ONLY_TO_AUTHORIZED_PORTS"
  }

  scope {
    compliance_resource_types = ["AWS::EC2::SecurityGroup"]
  }

  input_parameters = length(local.config_rule_parameters) > 0 ? jsonencode(local.config_rule_parameters) : null

  tags = var.tags
}

# The CIS benchmark's control for network ACL changes: a metric filter on the CloudTrail
# log group and an alarm on it. It is what notices a nacl-entry experiment (AWS Config's
# managed rule for network ACLs, NACL_NO_UNRESTRICTED_SSH_RDP, looks only at ports 22 and
# 3389, which experiments never open). Created only when nacl-entry is scheduled; it needs
# a trail delivering this region's management events to a log group in this region.
resource "aws_cloudwatch_log_metric_filter" "network_acl_changes" {
  count = local.create_nacl_change_alarm ? 1 : 0

  name           = "${var.name}-network-acl-changes"
  log_group_name = var.cloudtrail_log_group_name
  pattern        = "{ ($.eventName = CreateNetworkAcl) || ($.eventName = CreateNetworkAclEntry) || ($.eventName = DeleteNetworkAcl) || ($.eventName = DeleteNetworkAclEntry) || ($.eventName = ReplaceNetworkAclEntry) || ($.eventName = ReplaceNetworkAclAssociation) }"

  metric_transformation {
    name      = local.nacl_change_metric.name
    namespace = local.nacl_change_metric.namespace
    value     = "1"
  }

  lifecycle {
    precondition {
      condition     = var.cloudtrail_log_group_name != null
      error_message = "With create_nacl_change_alarm = true, set cloudtrail_log_group_name to the CloudWatch Logs group a CloudTrail trail delivers this region's management events to."
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "network_acl_changes" {
  count = local.create_nacl_change_alarm ? 1 : 0

  alarm_name        = local.nacl_change_alarm_name
  alarm_description = "A network ACL was created, deleted or changed (CloudTrail, log group ${coalesce(var.cloudtrail_log_group_name, "-")}). A ChaoSlingr detector for nacl-entry experiments."

  namespace           = aws_cloudwatch_log_metric_filter.network_acl_changes[0].metric_transformation[0].namespace
  metric_name         = aws_cloudwatch_log_metric_filter.network_acl_changes[0].metric_transformation[0].name
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"

  # The judge reads its state; send it to your security team's alerting as well if you
  # keep it as the account's control.
  actions_enabled = true

  tags = var.tags
}

# Tells people when an experiment ends undetected: a security gap. It watches the
# results of every scheduled technique; it is not one of the detectors an experiment
# measures.
resource "aws_cloudwatch_metric_alarm" "undetected" {
  count = var.create_undetected_alarm ? 1 : 0

  alarm_name        = "${var.name}-undetected"
  alarm_description = "A ChaoSlingr experiment (${join(", ", var.experiments)}) opened an unauthorized port and no configured control noticed it within the window. The outcome message on ${local.topic_arn} names the detectors that missed it."

  # Undetected outcomes of all scheduled techniques together; a technique without
  # experiments in the period counts 0.
  metric_query {
    id          = "undetected"
    expression  = "SUM(FILL(METRICS(), 0))"
    label       = "Undetected"
    return_data = true
  }

  dynamic "metric_query" {
    for_each = var.experiments

    content {
      id = "undetected_${replace(metric_query.value, "-", "_")}"

      metric {
        namespace   = var.namespace
        metric_name = "Undetected"
        dimensions = {
          Experiment = metric_query.value
        }
        stat   = "Sum"
        period = 300
      }
    }
  }

  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"

  actions_enabled = true
  alarm_actions   = [local.topic_arn]

  tags = var.tags
}

# A message in the dead-letter queue is an invocation that failed for good. For the
# judge that can mean a revert that did not happen: look at it.
resource "aws_cloudwatch_metric_alarm" "dead_letters" {
  count = var.create_dlq_alarm ? 1 : 0

  alarm_name        = "${var.name}-dead-letters"
  alarm_description = "A ChaoSlingr function invocation failed after its retries and is in ${aws_sqs_queue.dead_letters.name}. Check `chaoslingr status` for experiments left open."

  namespace   = "AWS/SQS"
  metric_name = "ApproximateNumberOfMessagesVisible"
  dimensions = {
    QueueName = aws_sqs_queue.dead_letters.name
  }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"

  actions_enabled = true
  alarm_actions   = [local.topic_arn]

  tags = var.tags
}

# Many accounts: an account and region the functions could not work on (the target role
# is missing, does not trust the hub, or an API refused) is counted in ScopeErrors with
# the dimensions Account and Region, while the other accounts carry on. The judge cannot
# revert there either, so people must know: one Metrics Insights query over every
# Account and Region.
resource "aws_cloudwatch_metric_alarm" "scope_errors" {
  count = var.targets != null && var.create_scope_errors_alarm ? 1 : 0

  alarm_name        = "${var.name}-scope-errors"
  alarm_description = "ChaoSlingr could not work on an account and region of its targets (assuming the target role, or a call there, failed). Experiments there cannot start or be reverted by the judge: the functions' logs name the account, region and error; check the target role, then `chaoslingr status`."

  metric_query {
    id          = "scope_errors"
    expression  = "SELECT SUM(ScopeErrors) FROM SCHEMA(\"${var.namespace}\", Account, Region)"
    period      = 300
    label       = "ScopeErrors"
    return_data = true
  }

  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"

  actions_enabled = true
  alarm_actions   = [local.topic_arn]

  tags = var.tags
}
